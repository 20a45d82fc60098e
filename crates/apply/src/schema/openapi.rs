//! [`Schema`] over the vendored 1.33 OpenAPI definitions, converted as upstream's `schemaconv` converts them:
//! `x-kubernetes-list-type` (`atomic`, `set`, `map` with `x-kubernetes-list-map-keys`); lists without one
//! but with `x-kubernetes-patch-strategy: merge` are maps keyed by `x-kubernetes-patch-merge-key`, or sets
//! without a key; other lists are atomic. `x-kubernetes-map-type: atomic` makes a struct or map one leaf
//! (also when set beside a `$ref`). Objects without properties are untyped leaves, unless they preserve
//! unknown fields (then deduced).
//!
//! The vendored definitions lack `default`s; the defaults upstream uses for list-map keys are listed here.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use gantry_openapi::{StructuralDefinitions, StructuralSchema};
use serde_json::Value;

use super::{Field, ListKind, Node, ScalarKind, Schema, Shape, Struct};

/// The schema of one kind, over the compiled definitions.
#[derive(Debug, Clone, Copy)]
pub struct OpenApiSchema {
    table: &'static Table,
    root: Node,
}

/// The schema of `group`/`version`/`kind` (`""` for the core group), if its definition is vendored. The
/// first call compiles every definition (milliseconds); later calls are a map lookup.
pub fn schema_for(group: &str, version: &str, kind: &str) -> Option<OpenApiSchema> {
    let table = table();
    let root = *table.kinds.get(&format!("{group}/{version}/{kind}"))?;
    Some(OpenApiSchema { table, root })
}

/// A schema compiled from a root given at run time (a custom resource's, from its CRD), with the vendored
/// definitions it references (`ObjectMeta` and what that references).
#[derive(Debug, Clone)]
pub struct CompiledSchema {
    table: Arc<Table>,
    root: Node,
}

impl CompiledSchema {
    /// Compiles `root`, a whole object's schema (a few milliseconds: the vendored definitions are parsed
    /// again to find what it references). As upstream does for custom resources, `apiVersion` and `kind` are
    /// strings and `metadata` is `ObjectMeta`, whatever `root` says of them.
    pub fn compile(root: &StructuralSchema) -> CompiledSchema {
        const ROOT: &str = "<root>";
        let mut root = root.clone();
        for field in ["apiVersion", "kind"] {
            root.properties.insert(
                field.to_owned(),
                StructuralSchema {
                    types: vec!["string".to_owned()],
                    ..StructuralSchema::default()
                },
            );
        }
        root.properties.insert(
            "metadata".to_owned(),
            StructuralSchema {
                reference: Some(OBJECT_META.to_owned()),
                ..StructuralSchema::default()
            },
        );
        let vendored = gantry_openapi::structural_definitions();
        let mut defs = StructuralDefinitions::default();
        let mut stack = Vec::new();
        references(&root, &mut stack);
        while let Some(name) = stack.pop() {
            if defs.definitions.contains_key(&name) {
                continue;
            }
            if let Some(definition) = vendored.get(&name) {
                references(definition, &mut stack);
                defs.definitions.insert(name, definition.clone());
            }
        }
        defs.definitions.insert(ROOT.to_owned(), root);
        let position = defs
            .definitions
            .keys()
            .position(|name| name == ROOT)
            .unwrap_or_default();
        CompiledSchema {
            table: Arc::new(Table::compile(&defs)),
            root: node(position),
        }
    }
}

impl Schema for CompiledSchema {
    fn root(&self) -> Node {
        self.root
    }

    fn shape(&self, node: Node) -> Shape<'_> {
        self.table.shape(node)
    }
}

/// The definitions `schema` references, at any depth.
fn references(schema: &StructuralSchema, out: &mut Vec<String>) {
    out.extend(schema.reference.iter().cloned());
    for child in schema
        .properties
        .values()
        .chain(schema.items.as_deref())
        .chain(schema.additional_properties.as_deref())
    {
        references(child, out);
    }
}

impl Schema for OpenApiSchema {
    fn root(&self) -> Node {
        self.root
    }

    fn shape(&self, node: Node) -> Shape<'_> {
        self.table.shape(node)
    }
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table::compile(&gantry_openapi::structural_definitions()))
}

#[derive(Debug)]
enum Type {
    Scalar(ScalarKind),
    Untyped,
    Deduced,
    Struct {
        fields: Box<[Field]>,
        rest: Option<Node>,
        atomic: bool,
    },
    Map {
        values: Node,
        atomic: bool,
    },
    List {
        items: Node,
        kind: ListKind,
    },
    /// A `$ref` with `x-kubernetes-map-type` beside it.
    Override {
        target: Node,
        atomic: bool,
    },
}

#[derive(Debug)]
struct Table {
    types: Vec<Type>,
    /// `group/version/kind` → root node.
    kinds: HashMap<String, Node>,
}

/// Definitions Go's types hold by value (never omitted where their parent exists).
const VALUE_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
    "io.k8s.api.core.v1.PodTemplateSpec",
    "io.k8s.api.batch.v1.JobTemplateSpec",
    "io.k8s.api.apps.v1.DeploymentStrategy",
    "io.k8s.api.apps.v1.DaemonSetUpdateStrategy",
    "io.k8s.api.apps.v1.StatefulSetUpdateStrategy",
    "io.k8s.api.core.v1.ResourceRequirements",
    "io.k8s.api.core.v1.VolumeResourceRequirements",
    "io.k8s.api.core.v1.LoadBalancerStatus",
    "io.k8s.api.networking.v1.IngressLoadBalancerStatus",
    "io.k8s.api.core.v1.NodeDaemonEndpoints",
    "io.k8s.api.core.v1.DaemonEndpoint",
    "io.k8s.api.core.v1.NodeSystemInfo",
];

/// Lists Go's types never omit (no `omitempty`): `null` when unset.
const NULL_LISTS: &[(&str, &str)] = &[("io.k8s.api.core.v1.PodSpec", "containers")];

/// Fields of those types that Go holds by pointer after all.
const POINTER_EXCEPTIONS: &[(&str, &str)] = &[
    ("io.k8s.api.core.v1.ReplicationControllerSpec", "template"),
    ("io.k8s.api.core.v1.PodSpec", "resources"),
];

/// List-map keys that may be omitted, with the defaults upstream's OpenAPI gives them.
const KEY_DEFAULTS: &[(&str, &str, &str)] = &[
    ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.LocalObjectReference", "name", ""),
];

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

struct Compiler<'d> {
    defs: &'d StructuralDefinitions,
    index: HashMap<&'d str, Node>,
    types: Vec<Type>,
    deduced: Node,
}

impl Table {
    fn compile(defs: &StructuralDefinitions) -> Table {
        let names: Vec<&str> = defs.definitions.keys().map(String::as_str).collect();
        let mut compiler = Compiler {
            defs,
            index: names
                .iter()
                .enumerate()
                .map(|(i, name)| (*name, node(i)))
                .collect(),
            types: names.iter().map(|_| Type::Untyped).collect(),
            deduced: node(names.len()),
        };
        compiler.types.push(Type::Deduced);
        for (i, (name, schema)) in defs.definitions.iter().enumerate() {
            let body = compiler.body(schema, Some(name));
            compiler.types[i] = body;
        }
        let kinds = defs
            .kinds()
            .filter_map(|((g, v, k), name)| {
                let root = *compiler.index.get(name)?;
                Some((format!("{g}/{v}/{k}"), root))
            })
            .collect();
        Table {
            types: compiler.types,
            kinds,
        }
    }

    fn get(&self, node: Node) -> &Type {
        self.types.get(node.0 as usize).unwrap_or(&Type::Untyped)
    }

    fn shape(&self, node: Node) -> Shape<'_> {
        match self.get(node) {
            Type::Scalar(kind) => Shape::Scalar(*kind),
            Type::Untyped => Shape::Untyped,
            Type::Deduced => Shape::Deduced,
            Type::Struct {
                fields,
                rest,
                atomic,
            } => Shape::Struct(Struct {
                fields,
                rest: *rest,
                atomic: *atomic,
            }),
            Type::Map { values, atomic } => Shape::Map {
                values: *values,
                atomic: *atomic,
            },
            Type::List { items, kind } => Shape::List {
                items: *items,
                kind,
            },
            Type::Override { target, atomic } => match self.shape(*target) {
                Shape::Struct(s) => Shape::Struct(Struct {
                    atomic: *atomic,
                    ..s
                }),
                Shape::Map { values, .. } => Shape::Map {
                    values,
                    atomic: *atomic,
                },
                other => other,
            },
        }
    }
}

fn node(i: usize) -> Node {
    Node(u32::try_from(i).expect("fewer than 2^32 schema nodes"))
}

impl Compiler<'_> {
    fn push(&mut self, t: Type) -> Node {
        self.types.push(t);
        node(self.types.len() - 1)
    }

    /// The node for a property, item or value schema: a definition's node for a `$ref`.
    fn node(&mut self, schema: &StructuralSchema) -> Node {
        if let Some(target) = &schema.reference {
            let Some(&target) = self.index.get(target.as_str()) else {
                return self.push(Type::Untyped);
            };
            return match schema.map_type.as_deref() {
                Some(map_type) => self.push(Type::Override {
                    target,
                    atomic: map_type == "atomic",
                }),
                None => target,
            };
        }
        let body = self.body(schema, None);
        self.push(body)
    }

    fn body(&mut self, schema: &StructuralSchema, name: Option<&str>) -> Type {
        if schema.one_of {
            return Type::Scalar(ScalarKind::Any);
        }
        if let Some(target) = &schema.reference {
            // A definition that is only a reference.
            let target = self.index.get(target.as_str()).copied();
            return match target {
                Some(target) => Type::Override {
                    target,
                    atomic: schema.map_type.as_deref() == Some("atomic"),
                },
                None => Type::Untyped,
            };
        }
        let is = |t: &str| schema.types.iter().any(|x| x == t);
        let atomic = schema.map_type.as_deref() == Some("atomic");
        if !schema.properties.is_empty() {
            return self.structure(schema, name, atomic);
        }
        if let Some(values) = &schema.additional_properties {
            let values = self.node(values);
            return Type::Map { values, atomic };
        }
        if is("array") {
            let items = match &schema.items {
                Some(items) => self.node(items),
                None => self.push(Type::Untyped),
            };
            return Type::List {
                items,
                kind: list_kind(schema),
            };
        }
        if is("object") || schema.types.is_empty() {
            return if schema.preserve_unknown_fields {
                Type::Deduced
            } else {
                Type::Untyped
            };
        }
        Type::Scalar(if is("string") {
            ScalarKind::String
        } else if is("integer") || is("number") {
            ScalarKind::Numeric
        } else if is("boolean") {
            ScalarKind::Boolean
        } else {
            ScalarKind::Any
        })
    }

    fn structure(&mut self, schema: &StructuralSchema, name: Option<&str>, atomic: bool) -> Type {
        let has_object_meta = schema
            .properties
            .get("metadata")
            .and_then(|m| m.reference.as_deref())
            == Some(OBJECT_META);
        let mut fields = Vec::with_capacity(schema.properties.len());
        for (field, property) in &schema.properties {
            let node = self.node(property);
            let target = property.reference.as_deref();
            let by_value = target.is_some_and(|t| VALUE_STRUCTS.contains(&t))
                && !POINTER_EXCEPTIONS
                    .iter()
                    .any(|&(d, f)| Some(d) == name && f == field);
            let spec_or_status = has_object_meta
                && matches!(field.as_str(), "spec" | "status")
                && target
                    .is_some_and(|t| self.defs.get(t).is_some_and(|d| !d.properties.is_empty()));
            fields.push(Field {
                name: field.as_str().into(),
                node,
                default: KEY_DEFAULTS
                    .iter()
                    .find(|&&(d, f, _)| Some(d) == name && f == field)
                    .map(|&(_, _, v)| Value::String(v.to_owned())),
                zero: if by_value || spec_or_status {
                    Some(Value::Object(serde_json::Map::new()))
                } else if NULL_LISTS
                    .iter()
                    .any(|&(d, f)| Some(d) == name && f == field)
                {
                    Some(Value::Null)
                } else {
                    None
                },
            });
        }
        // Properties come sorted from the BTreeMap.
        let rest = if schema.preserve_unknown_fields {
            Some(self.deduced)
        } else {
            schema
                .additional_properties
                .as_ref()
                .map(|values| self.node(values))
        };
        Type::Struct {
            fields: fields.into_boxed_slice(),
            rest,
            atomic,
        }
    }
}

/// Upstream `schemaconv`'s list relationship.
fn list_kind(schema: &StructuralSchema) -> ListKind {
    match schema.list_type.as_deref() {
        Some("set") => ListKind::Set,
        Some("map") if !schema.list_map_keys.is_empty() => ListKind::Map(
            schema
                .list_map_keys
                .iter()
                .map(|k| k.as_str().into())
                .collect(),
        ),
        Some(_) => ListKind::Atomic,
        None => {
            let merge = schema
                .patch_strategy
                .as_deref()
                .is_some_and(|s| s.split(',').any(|s| s.trim() == "merge"));
            match (merge, &schema.patch_merge_key) {
                (true, Some(key)) => ListKind::Map(Box::new([key.as_str().into()])),
                (true, None) => ListKind::Set,
                _ => ListKind::Atomic,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk<'a>(schema: &'a OpenApiSchema, path: &[&str]) -> Shape<'a> {
        let mut node = schema.root();
        for name in path {
            node = match schema.shape(node) {
                Shape::Struct(s) => s.field(name).expect(name).node,
                Shape::Map { values, .. } => values,
                Shape::List { items, .. } => items,
                other => panic!("{name}: {other:?}"),
            };
        }
        schema.shape(node)
    }

    #[test]
    fn deployment_shapes() {
        let schema = schema_for("apps", "v1", "Deployment").expect("vendored");
        let containers = walk(&schema, &["spec", "template", "spec", "containers"]);
        assert!(
            matches!(containers, Shape::List { kind: ListKind::Map(keys), .. } if keys.as_ref() == [Box::<str>::from("name")])
        );
        let ports = walk(
            &schema,
            &["spec", "template", "spec", "containers", "_", "ports"],
        );
        assert!(matches!(ports, Shape::List { kind: ListKind::Map(keys), .. } if keys.len() == 2));
        assert!(matches!(walk(&schema, &["spec", "selector"]), Shape::Struct(s) if s.atomic));
        assert!(matches!(
            walk(&schema, &["metadata", "labels"]),
            Shape::Map { atomic: false, .. }
        ));
        assert!(matches!(
            walk(&schema, &["metadata", "finalizers"]),
            Shape::List {
                kind: ListKind::Set,
                ..
            }
        ));
        assert!(matches!(
            walk(
                &schema,
                &["spec", "template", "spec", "containers", "_", "args"]
            ),
            Shape::List {
                kind: ListKind::Atomic,
                ..
            }
        ));
        assert!(matches!(
            walk(&schema, &["spec", "replicas"]),
            Shape::Scalar(ScalarKind::Numeric)
        ));
        assert!(matches!(
            walk(&schema, &["spec", "strategy", "rollingUpdate", "maxSurge"]),
            Shape::Scalar(ScalarKind::Any)
        ));
        let Shape::Struct(root) = schema.shape(schema.root()) else {
            panic!("struct")
        };
        assert_eq!(
            root.field("spec").expect("spec").zero,
            Some(serde_json::json!({}))
        );
        assert!(root.field("metadata").expect("metadata").zero.is_some());
        assert!(root.field("status").expect("status").zero.is_some());
        assert!(root.field("kind").expect("kind").zero.is_none());
        let Shape::Struct(port) = walk(
            &schema,
            &["spec", "template", "spec", "containers", "_", "ports", "_"],
        ) else {
            panic!("struct")
        };
        assert_eq!(
            port.field("protocol").expect("protocol").default,
            Some(Value::String("TCP".into()))
        );
    }

    #[test]
    fn services_configmaps_and_overrides() {
        let service = schema_for("", "v1", "Service").expect("vendored");
        assert!(matches!(
            walk(&service, &["spec", "ports"]),
            Shape::List { kind: ListKind::Map(keys), .. } if keys.iter().map(AsRef::as_ref).eq(["port", "protocol"])
        ));
        assert!(matches!(
            walk(&service, &["spec", "selector"]),
            Shape::Map { atomic: true, .. }
        ));
        let cm = schema_for("", "v1", "ConfigMap").expect("vendored");
        assert!(matches!(
            walk(&cm, &["data"]),
            Shape::Map { atomic: false, .. }
        ));
        let pv = schema_for("", "v1", "PersistentVolume").expect("vendored");
        assert!(matches!(walk(&pv, &["spec", "claimRef"]), Shape::Struct(s) if !s.atomic));
        let revision = schema_for("apps", "v1", "ControllerRevision").expect("vendored");
        assert!(matches!(walk(&revision, &["data"]), Shape::Untyped));
        assert!(schema_for("example.com", "v1", "Widget").is_none());
    }

    #[test]
    fn every_served_kind_has_a_schema() {
        for r in gantry_api::registry::RESOURCES {
            let schema = schema_for(r.group, r.version, r.kind)
                .unwrap_or_else(|| panic!("{}/{} {}", r.group, r.version, r.kind));
            assert!(
                matches!(schema.shape(schema.root()), Shape::Struct(_)),
                "{}",
                r.kind
            );
        }
    }
}

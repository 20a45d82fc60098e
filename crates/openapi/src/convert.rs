//! The vendored definitions (JSON Schema, as kubernetes-validate wrote them) and their conversion back to the
//! OpenAPI forms upstream serves: see `schemas/PROVENANCE.md` for what differs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// kubernetes-validate's 1.33 definitions, trimmed to the packages Gantry serves (`schemas/trim.py`).
pub(crate) const DEFINITIONS: &str = include_str!("../schemas/definitions.json");

const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const VENDORED_REF: &str = "#/$defs/";
const GVK: &str = "x-kubernetes-group-version-kind";

/// Which document a schema goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// OpenAPI 3.0 `components.schemas`.
    V3,
    /// Swagger 2.0 `definitions` (what kubectl ≤ 1.28 parses from protobuf).
    V2,
}

impl Form {
    fn ref_prefix(self) -> &'static str {
        match self {
            Form::V3 => "#/components/schemas/",
            Form::V2 => "#/definitions/",
        }
    }
}

/// The vendored definitions by name, in JSON Schema form, with an index from group-version-kind to name.
#[derive(Debug)]
pub(crate) struct Definitions {
    pub(crate) schemas: Map<String, Value>,
    /// `group/version/kind` → definition name, from each definition's `x-kubernetes-group-version-kind`.
    kinds: BTreeMap<String, String>,
}

impl Definitions {
    /// Parses the vendored file (a few milliseconds; callers build what they need and drop this).
    pub(crate) fn load() -> Definitions {
        let mut file: Value =
            serde_json::from_str(DEFINITIONS).expect("the vendored definitions are valid JSON");
        let schemas = match file.get_mut("$defs").map(Value::take) {
            Some(Value::Object(schemas)) => schemas,
            _ => panic!("the vendored definitions have no $defs object"),
        };
        let mut defs = Definitions {
            schemas: Map::new(),
            kinds: BTreeMap::new(),
        };
        for (name, schema) in schemas {
            defs.insert(&name, schema);
        }
        defs
    }

    /// The name of the definition of `group`/`version`/`kind`, if vendored.
    pub(crate) fn name_of(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&gvk_key(group, version, kind))
            .map(String::as_str)
    }

    /// Adds a definition in the vendored form (references as `#/$defs/<name>`), indexed by its
    /// `x-kubernetes-group-version-kind`: how custom resources' schemas join the built-in ones.
    pub(crate) fn insert(&mut self, name: &str, schema: Value) {
        for gvk in schema
            .get(GVK)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let part = |key: &str| gvk.get(key).and_then(Value::as_str).unwrap_or_default();
            self.kinds.insert(
                gvk_key(part("group"), part("version"), part("kind")),
                name.to_owned(),
            );
        }
        self.schemas.insert(name.to_owned(), schema);
    }

    /// `roots` and every definition they reference, directly or not (unknown names are skipped).
    pub(crate) fn closure<'a>(
        &'a self,
        roots: impl IntoIterator<Item = &'a str>,
    ) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = roots.into_iter().collect();
        while let Some(name) = stack.pop() {
            let Some((name, schema)) = self.schemas.get_key_value(name) else {
                continue;
            };
            if seen.insert(name.as_str()) {
                references(schema, &mut stack);
            }
        }
        seen
    }

    /// The definition `name` in OpenAPI form.
    pub(crate) fn converted(&self, name: &str, form: Form) -> Option<Value> {
        let mut schema = convert(self.schemas.get(name)?, form);
        if name == INT_OR_STRING
            && let Value::Object(map) = &mut schema
        {
            map.insert("format".into(), json!("int-or-string"));
            if form == Form::V2 {
                map.insert("type".into(), json!("string"));
            }
        }
        Some(schema)
    }
}

pub(crate) fn gvk_key(group: &str, version: &str, kind: &str) -> String {
    format!("{group}/{version}/{kind}")
}

/// The definition names `schema` references (its `$ref`s, at any depth).
fn references<'a>(schema: &'a Value, out: &mut Vec<&'a str>) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix(VENDORED_REF) {
                            out.push(name);
                        }
                    }
                    _ => references(value, out),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// One schema node in OpenAPI form: single types, no added enums, references rewritten (wrapped in `allOf`
/// in v3 when they have siblings, as upstream's v3 documents do, so that explain prints the field's own
/// description), `oneOf` kept in v3 and reduced to `type: string` in v2 (whose schema has no `oneOf`).
pub(crate) fn convert(schema: &Value, form: Form) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let converted = match key.as_str() {
            "enum" => continue,
            "type" => match value {
                Value::Array(types) => match types.iter().find(|t| t.as_str() != Some("null")) {
                    Some(single) => single.clone(),
                    None => continue,
                },
                other => other.clone(),
            },
            "$ref" => match value.as_str().and_then(|r| r.strip_prefix(VENDORED_REF)) {
                Some(name) => Value::String(format!("{}{name}", form.ref_prefix())),
                None => value.clone(),
            },
            "properties" => match value {
                Value::Object(properties) => Value::Object(
                    properties
                        .iter()
                        .map(|(name, property)| (name.clone(), convert(property, form)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "items" | "additionalProperties" => convert(value, form),
            "oneOf" | "anyOf" | "allOf" => match form {
                Form::V3 => Value::Array(
                    value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|alternative| convert(alternative, form))
                        .collect(),
                ),
                // Only IntOrString and Quantity have them: both are strings to a v2 reader.
                Form::V2 => {
                    out.insert("type".into(), json!("string"));
                    continue;
                }
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if form == Form::V3
        && out.len() > 1
        && let Some(reference) = out.remove("$ref")
    {
        out.insert("allOf".into(), json!([{"$ref": reference}]));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_drops_nulls_and_enums_and_rewrites_references() {
        let defs = Definitions::load();
        let deployment = defs
            .converted("io.k8s.api.apps.v1.Deployment", Form::V3)
            .expect("vendored");
        assert_eq!(deployment["type"], "object");
        assert_eq!(
            deployment["properties"]["kind"],
            json!({"description": deployment["properties"]["kind"]["description"], "type": "string"})
        );
        assert_eq!(
            deployment["properties"]["spec"]["allOf"],
            json!([{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}])
        );
        assert_eq!(
            deployment[GVK],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        let v2 = defs
            .converted("io.k8s.api.apps.v1.Deployment", Form::V2)
            .expect("vendored");
        assert_eq!(
            v2["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
        );
        let spec = defs
            .converted("io.k8s.api.apps.v1.DeploymentSpec", Form::V2)
            .expect("vendored");
        assert_eq!(spec["properties"]["replicas"]["type"], "integer");
        assert_eq!(
            spec["properties"]["strategy"]["x-kubernetes-patch-strategy"],
            "retainKeys"
        );
    }

    #[test]
    fn int_or_string_and_quantity_take_upstream_shapes() {
        let defs = Definitions::load();
        let v3 = defs.converted(INT_OR_STRING, Form::V3).expect("vendored");
        assert_eq!(v3["format"], "int-or-string");
        assert_eq!(
            v3["oneOf"],
            json!([{"type": "string"}, {"type": "integer"}])
        );
        assert_eq!(
            defs.converted(INT_OR_STRING, Form::V2).expect("vendored"),
            json!({"type": "string", "format": "int-or-string"})
        );
        assert_eq!(
            defs.converted("io.k8s.apimachinery.pkg.api.resource.Quantity", Form::V2)
                .expect("vendored"),
            json!({"type": "string"})
        );
    }

    #[test]
    fn the_vendored_set_is_closed_under_references() {
        let defs = Definitions::load();
        let mut all = Vec::new();
        for schema in defs.schemas.values() {
            references(schema, &mut all);
        }
        for name in all {
            assert!(
                defs.schemas.contains_key(name),
                "{name} is referenced, not vendored"
            );
        }
    }
}

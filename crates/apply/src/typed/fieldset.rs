//! The fields a value owns (upstream's `ToFieldSet`): every leaf (scalars, atomic lists and maps), every
//! list item, every map key, and struct fields set to `null` or `{}`. Structs themselves are not members.

use serde_json::Value;

use super::{Fields, View, item_element, shape, view};
use crate::fieldpath::{FieldSet, PathElement};
use crate::schema::{Node, ScalarKind, Schema, Shape};
use crate::value::type_name;

/// The fields `value` owns, tolerating values the schema does not describe (unknown fields are deduced,
/// list items without keys are skipped).
pub(crate) fn field_set(schema: &dyn Schema, value: &Value) -> FieldSet {
    let mut walker = Walker {
        schema,
        strict: false,
        errors: Vec::new(),
    };
    walker.build(Some(schema.root()), value).0
}

/// The fields an applied configuration owns, or upstream-like errors (`.spec.foo: field not declared in
/// schema`) where it does not fit the schema.
pub(crate) fn strict_field_set(
    schema: &dyn Schema,
    value: &Value,
) -> Result<FieldSet, Vec<String>> {
    let mut walker = Walker {
        schema,
        strict: true,
        errors: Vec::new(),
    };
    let set = walker.build(Some(schema.root()), value).0;
    if walker.errors.is_empty() {
        Ok(set)
    } else {
        Err(walker
            .errors
            .into_iter()
            .map(|(path, message)| {
                if path.is_empty() {
                    message
                } else {
                    format!("{path}: {message}")
                }
            })
            .collect())
    }
}

struct Walker<'s> {
    schema: &'s dyn Schema,
    strict: bool,
    /// (path relative to the node being built, message); prefixes are added while unwinding.
    errors: Vec<(String, String)>,
}

impl Walker<'_> {
    /// The set below `value` and whether `value` itself is a leaf (a member of its parent).
    fn build(&mut self, node: Option<Node>, value: &Value) -> (FieldSet, bool) {
        if self.strict
            && let Some(message) = mismatch(shape(self.schema, node), value)
        {
            self.errors.push((String::new(), message));
            return (FieldSet::new(), true);
        }
        match view(self.schema, node, Some(value)) {
            View::Leaf => (FieldSet::new(), true),
            View::Object(fields) => (self.object(fields, value), false),
            View::List { items, keying } => {
                let mut set = FieldSet::new();
                let Value::Array(list) = value else {
                    return (set, false);
                };
                for (i, item) in list.iter().enumerate() {
                    let pe = match item_element(&keying, item) {
                        Ok(pe) => pe,
                        Err(message) => {
                            if self.strict {
                                self.errors
                                    .push((String::new(), format!("element {i}: {message}")));
                            }
                            continue;
                        }
                    };
                    if self.strict && set.has_member(&pe) {
                        self.errors
                            .push((String::new(), format!("duplicate entries for key {pe}")));
                        continue;
                    }
                    let mark = self.errors.len();
                    let (child, _) = self.build(Some(items), item);
                    self.prefix_errors(mark, &pe);
                    set.insert_member(&pe);
                    set.insert_child(pe, child);
                }
                (set, false)
            }
        }
    }

    fn object(&mut self, fields: Fields<'_>, value: &Value) -> FieldSet {
        let mut set = FieldSet::new();
        let Value::Object(map) = value else {
            return set;
        };
        for (key, child) in map {
            let entry = fields.entry(key);
            let pe = PathElement::field(key);
            if entry.unknown && self.strict {
                self.errors
                    .push((pe.to_string(), "field not declared in schema".to_owned()));
                continue;
            }
            let mark = self.errors.len();
            let (below, leaf) = self.build(entry.node, child);
            self.prefix_errors(mark, &pe);
            let empty_map = matches!(child, Value::Object(m) if m.is_empty());
            // Keys are visited in order, so pushing keeps the set sorted.
            if leaf || child.is_null() || empty_map || !entry.declared {
                set.members_mut().push(pe.clone());
            }
            if !below.is_empty() {
                set.children_mut().push((pe, below));
            }
        }
        set
    }

    fn prefix_errors(&mut self, mark: usize, pe: &PathElement) {
        for (path, _) in &mut self.errors[mark..] {
            path.insert_str(0, &pe.to_string());
        }
    }
}

/// Why `value` cannot be a value of `shape` (upstream's validation of typed values); `null` fits anything.
fn mismatch(shape: Shape<'_>, value: &Value) -> Option<String> {
    if value.is_null() {
        return None;
    }
    let got = type_name(value);
    match shape {
        Shape::Scalar(kind) => {
            let ok = match kind {
                ScalarKind::String => value.is_string(),
                ScalarKind::Numeric => value.is_number(),
                ScalarKind::Boolean => value.is_boolean(),
                ScalarKind::Any => !value.is_object() && !value.is_array(),
            };
            let expected = match kind {
                ScalarKind::String => "string",
                ScalarKind::Numeric => "numeric (int or float)",
                ScalarKind::Boolean => "boolean",
                ScalarKind::Any => "scalar",
            };
            (!ok).then(|| format!("expected {expected}, got {got}"))
        }
        Shape::Struct(_) | Shape::Map { .. } => {
            (!value.is_object()).then(|| format!("expected map, got {got}"))
        }
        Shape::List { .. } => (!value.is_array()).then(|| format!("expected list, got {got}")),
        Shape::Untyped | Shape::Deduced => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::{DeducedSchema, schema_for};

    #[test]
    fn deployment_config_fields() {
        let schema = schema_for("apps", "v1", "Deployment").expect("vendored");
        let config = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
                                             "args": ["a", "b"], "resources": {}}]}
                }
            }
        });
        let set = strict_field_set(&schema, &config).expect("fits");
        assert_eq!(
            set.to_fields_v1_string(),
            r#"{"f:apiVersion":{},"f:kind":{},"f:metadata":{"f:labels":{"f:app":{}},"f:name":{}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:args":{},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}},"f:resources":{}}}}}}}"#
        );
        assert_eq!(field_set(&schema, &config), set);
    }

    #[test]
    fn config_errors_are_reported_with_paths() {
        let schema = schema_for("apps", "v1", "Deployment").expect("vendored");
        let config = json!({
            "spec": {
                "replicas": "two",
                "bogus": 1,
                "template": {"spec": {"containers": [
                    {"name": "a"}, {"name": "a"}, {"image": "x"}
                ]}}
            }
        });
        let errors = strict_field_set(&schema, &config).expect_err("does not fit");
        assert_eq!(
            errors,
            [
                ".spec.bogus: field not declared in schema",
                ".spec.replicas: expected numeric (int or float), got string",
                r#".spec.template.spec.containers: duplicate entries for key [name="a"]"#,
                r#".spec.template.spec.containers: element 2: associative list with keys has an element that omits key field "name" (and doesn't have default value)"#,
            ]
        );
        // Leniently, unknown fields are owned and bad items skipped.
        let set = field_set(&schema, &config);
        assert!(set.has(&[PathElement::field("spec"), PathElement::field("bogus")]));
    }

    #[test]
    fn deduced_maps_are_granular_and_lists_atomic() {
        let value = json!({"spec": {"a": [1, 2], "b": {"c": null}, "d": {}}});
        assert_eq!(
            field_set(&DeducedSchema, &value).to_fields_v1_string(),
            r#"{"f:spec":{".":{},"f:a":{},"f:b":{".":{},"f:c":{}},"f:d":{}}}"#
        );
    }
}

//! Removing fields from a value (upstream's `RemoveItems`): a member goes with everything below it; a node
//! with members below is walked. A container left empty goes too (upstream leaves `null`, which Go's types
//! drop). Also [`strip_config_nulls`], the same dropping for fields a configuration sets to `null`.

use serde_json::{Map, Value};

use super::{View, item_element, view};
use crate::fieldpath::FieldSet;
use crate::schema::{Node, Schema};

/// Removes `set` from `value` at `node`.
pub(crate) fn remove_items(
    schema: &dyn Schema,
    node: Option<Node>,
    value: &mut Value,
    set: &FieldSet,
) {
    if !set.is_empty() {
        remove(schema, node, value, set);
    }
}

/// Removes `set` below `value`; true when `value` is left an empty container (its parent drops it).
fn remove(schema: &dyn Schema, node: Option<Node>, value: &mut Value, set: &FieldSet) -> bool {
    match view(schema, node, Some(value)) {
        View::Leaf => false,
        View::Object(fields) => {
            let Value::Object(map) = value else {
                return false;
            };
            if map.is_empty() {
                return true;
            }
            map.retain(|key, child| {
                if set.has_field(key) {
                    return false;
                }
                match set.field_child(key) {
                    Some(below) => !remove(schema, fields.entry(key).node, child, below),
                    None => true,
                }
            });
            map.is_empty()
        }
        View::List { items, keying } => {
            let Value::Array(list) = value else {
                return false;
            };
            if list.is_empty() {
                return true;
            }
            let old = std::mem::take(list);
            for mut item in old {
                let Ok(pe) = item_element(&keying, &item) else {
                    list.push(item);
                    continue;
                };
                if set.has_member(&pe) {
                    continue;
                }
                if let Some(below) = set.child(&pe)
                    && remove(schema, Some(items), &mut item, below)
                {
                    item = Value::Object(Map::new());
                }
                list.push(item);
            }
            list.is_empty()
        }
    }
}

/// Drops from `value` the fields `config` sets to `null` in granular objects: a configuration unsets a
/// field with `null`, which stays in upstream's merged object and goes when Go's types decode it. Other
/// `null`s of the object are left as they are.
pub(crate) fn strip_config_nulls(
    schema: &dyn Schema,
    node: Option<Node>,
    value: &mut Value,
    config: &Value,
) {
    match view(schema, node, Some(config)) {
        View::Leaf => {}
        View::Object(fields) => {
            let (Value::Object(map), Value::Object(config)) = (value, config) else {
                return;
            };
            for (key, c) in config {
                match c {
                    Value::Null => {
                        map.remove(key);
                    }
                    Value::Object(_) | Value::Array(_) => {
                        if let Some(v) = map.get_mut(key) {
                            strip_config_nulls(schema, fields.entry(key).node, v, c);
                        }
                    }
                    _ => {}
                }
            }
        }
        View::List { items, keying } => {
            let (Value::Array(list), Value::Array(config)) = (value, config) else {
                return;
            };
            for c in config.iter().filter(|c| c.is_object()) {
                let Ok(pe) = item_element(&keying, c) else {
                    continue;
                };
                let found = list
                    .iter_mut()
                    .find(|v| item_element(&keying, v).is_ok_and(|p| p == pe));
                if let Some(v) = found {
                    strip_config_nulls(schema, Some(items), v, c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fieldpath::PathElement;
    use crate::schema::{DeducedSchema, schema_for};

    #[test]
    fn members_go_with_their_subtrees_and_emptied_containers_go_too() {
        let schema = schema_for("apps", "v1", "Deployment").expect("vendored");
        let mut value = json!({
            "metadata": {"labels": {"app": "web"}, "name": "web"},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "web", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "side", "image": "x"}
            ]}}}
        });
        let containers = [
            PathElement::field("spec"),
            PathElement::field("template"),
            PathElement::field("spec"),
            PathElement::field("containers"),
        ];
        let web_env_a = [
            &containers[..],
            &[
                PathElement::key([("name", json!("web"))]),
                PathElement::field("env"),
                PathElement::key([("name", json!("A"))]),
            ],
        ]
        .concat();
        let side = [
            &containers[..],
            &[PathElement::key([("name", json!("side"))])],
        ]
        .concat();
        let mut set =
            FieldSet::from_fields(&[&["metadata", "labels", "app"], &["spec", "replicas"]]);
        set.insert(&web_env_a);
        set.insert(&side);
        remove_items(&schema, Some(schema.root()), &mut value, &set);
        assert_eq!(
            value,
            json!({
                "metadata": {"name": "web"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "web", "env": [{"name": "B", "value": "2"}]}
                ]}}}
            })
        );
    }

    #[test]
    fn nulls_of_the_configuration_are_dropped() {
        let schema = schema_for("apps", "v1", "Deployment").expect("vendored");
        let mut value = json!({"metadata": {"labels": {"a": null, "b": "1"}},
                               "spec": {"replicas": null, "template": {"metadata": {"creationTimestamp": null},
                                        "spec": {"containers": [{"name": "w", "image": null, "args": [null]}]}}}});
        let config = json!({"metadata": {"labels": {"a": null}},
                            "spec": {"replicas": null, "template": {"spec": {"containers": [{"name": "w", "image": null}]}}}});
        strip_config_nulls(&schema, Some(schema.root()), &mut value, &config);
        assert_eq!(
            value,
            json!({"metadata": {"labels": {"b": "1"}},
                   "spec": {"template": {"metadata": {"creationTimestamp": null},
                            "spec": {"containers": [{"name": "w", "args": [null]}]}}}})
        );
        let mut deduced = json!({"a": {"b": null, "c": 1}});
        strip_config_nulls(
            &DeducedSchema,
            Some(DeducedSchema.root()),
            &mut deduced,
            &json!({"a": {"b": null}}),
        );
        assert_eq!(deduced, json!({"a": {"c": 1}}));
    }
}

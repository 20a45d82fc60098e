//! Unknown fields: the check behind `fieldValidation=Strict` (400) and `Warn` (warnings). A compact model of the
//! vendored definitions (field names and shapes, no descriptions) is built once and walked per request.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::Value;

use crate::convert::{DEFINITIONS, gvk_key};

/// What a value is allowed to hold, as far as field names go.
#[derive(Debug)]
enum Shape {
    /// Scalars, `x-kubernetes-preserve-unknown-fields`, and objects the schema does not describe
    /// (`RawExtension`, `FieldsV1`): anything goes.
    Any,
    /// A definition, by index into [`Model::types`].
    Ref(usize),
    /// An object with these fields (sorted by name) and no others.
    Object(Box<[(Box<str>, Shape)]>),
    /// A map (`additionalProperties`): any keys, values of this shape.
    Map(Box<Shape>),
    Array(Box<Shape>),
}

/// Every vendored definition's shape, and the kinds they describe.
#[derive(Debug)]
pub(crate) struct Model {
    types: Vec<Shape>,
    /// `group/version/kind` → index into `types`.
    kinds: HashMap<String, usize>,
}

/// A vendored schema as far as field names go: deserialized straight from the vendored text, skipping
/// descriptions and everything else, so that building the model allocates little more than the model.
#[derive(Deserialize)]
struct Node {
    #[serde(rename = "$ref")]
    reference: Option<String>,
    properties: Option<BTreeMap<String, Node>>,
    items: Option<Box<Node>>,
    #[serde(rename = "additionalProperties")]
    additional_properties: Option<Additional>,
    #[serde(rename = "x-kubernetes-preserve-unknown-fields", default)]
    preserve_unknown_fields: bool,
    #[serde(rename = "x-kubernetes-group-version-kind", default)]
    kinds: Vec<Gvk>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Additional {
    Allowed(#[allow(dead_code, reason = "any keys either way")] bool),
    Schema(Box<Node>),
}

#[derive(Deserialize)]
struct Gvk {
    group: String,
    version: String,
    kind: String,
}

#[derive(Deserialize)]
struct File {
    #[serde(rename = "$defs")]
    definitions: BTreeMap<String, Node>,
}

impl Model {
    pub(crate) fn build() -> Model {
        let file: File =
            serde_json::from_str(DEFINITIONS).expect("the vendored definitions deserialize");
        let index: HashMap<&str, usize> = file
            .definitions
            .keys()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i))
            .collect();
        let types = file
            .definitions
            .values()
            .map(|node| shape(node, &index))
            .collect();
        let mut kinds = HashMap::new();
        for (i, node) in file.definitions.values().enumerate() {
            for gvk in &node.kinds {
                kinds.insert(gvk_key(&gvk.group, &gvk.version, &gvk.kind), i);
            }
        }
        Model { types, kinds }
    }

    /// The dotted paths (`spec.template.spec.containers[0].bogus`) of the fields in `object` that the schema
    /// of `group`/`version`/`kind` does not know. Empty for a kind without a vendored schema.
    pub(crate) fn unknown_fields(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        object: &Value,
    ) -> Vec<String> {
        let mut found = Vec::new();
        if let Some(&i) = self.kinds.get(&gvk_key(group, version, kind)) {
            self.walk(&Shape::Ref(i), object, &mut String::new(), &mut found);
        }
        found
    }

    /// [`unknown_fields`](Self::unknown_fields), removing them from `object`: what decoding into the
    /// upstream types does when validation is not strict.
    pub(crate) fn prune_unknown_fields(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        object: &mut Value,
    ) -> Vec<String> {
        let mut found = Vec::new();
        if let Some(&i) = self.kinds.get(&gvk_key(group, version, kind)) {
            self.prune(&Shape::Ref(i), object, &mut String::new(), &mut found);
        }
        found
    }

    fn prune(&self, shape: &Shape, value: &mut Value, path: &mut String, found: &mut Vec<String>) {
        match (shape, value) {
            (Shape::Ref(i), value) => {
                if let Some(shape) = self.types.get(*i) {
                    self.prune(shape, value, path, found);
                }
            }
            (Shape::Object(fields), Value::Object(map)) => {
                map.retain(|key, value| {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    let known = match fields
                        .binary_search_by(|(name, _)| name.as_ref().cmp(key.as_str()))
                    {
                        Ok(i) => {
                            self.prune(&fields[i].1, value, path, found);
                            true
                        }
                        Err(_) => {
                            found.push(path.clone());
                            false
                        }
                    };
                    path.truncate(len);
                    known
                });
            }
            (Shape::Map(values), Value::Object(map)) => {
                for (key, value) in map.iter_mut() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    self.prune(values, value, path, found);
                    path.truncate(len);
                }
            }
            (Shape::Array(items), Value::Array(values)) => {
                for (i, value) in values.iter_mut().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.prune(items, value, path, found);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    fn walk(&self, shape: &Shape, value: &Value, path: &mut String, found: &mut Vec<String>) {
        match (shape, value) {
            (Shape::Ref(i), _) => {
                if let Some(shape) = self.types.get(*i) {
                    self.walk(shape, value, path, found);
                }
            }
            (Shape::Object(fields), Value::Object(map)) => {
                for (key, value) in map {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    match fields.binary_search_by(|(name, _)| name.as_ref().cmp(key.as_str())) {
                        Ok(i) => self.walk(&fields[i].1, value, path, found),
                        Err(_) => found.push(path.clone()),
                    }
                    path.truncate(len);
                }
            }
            (Shape::Map(values), Value::Object(map)) => {
                for (key, value) in map {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    self.walk(values, value, path, found);
                    path.truncate(len);
                }
            }
            (Shape::Array(items), Value::Array(values)) => {
                for (i, value) in values.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.walk(items, value, path, found);
                    path.truncate(len);
                }
            }
            // Scalars, nulls, and values of the wrong type (not this check's business).
            _ => {}
        }
    }
}

fn shape(node: &Node, index: &HashMap<&str, usize>) -> Shape {
    if node.preserve_unknown_fields {
        return Shape::Any;
    }
    if let Some(target) = &node.reference {
        let name = target.rsplit('/').next().unwrap_or_default();
        return index.get(name).map_or(Shape::Any, |&i| Shape::Ref(i));
    }
    if let Some(properties) = &node.properties {
        // A sorted map: the fields come out sorted.
        return Shape::Object(
            properties
                .iter()
                .map(|(name, property)| (name.as_str().into(), shape(property, index)))
                .collect(),
        );
    }
    if let Some(Additional::Schema(values)) = &node.additional_properties {
        return Shape::Map(Box::new(shape(values, index)));
    }
    if let Some(items) = &node.items {
        return Shape::Array(Box::new(shape(items, index)));
    }
    Shape::Any
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn model() -> Model {
        Model::build()
    }

    #[test]
    fn known_fields_pass_and_unknown_ones_are_named_by_path() {
        let model = model();
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "any.key/x": "y"}, "annotations": {"a": "b"},
                         "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
            "spec": {
                "replicas": 2,
                "bogusField": true,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "a", "image": "nginx", "ports": [{"containerPort": 80, "nope": 1}],
                         "resources": {"limits": {"cpu": "1", "memory": 128}}},
                        {"name": "b", "image": "nginx", "imagePullPolicyX": "Always", "env": null}
                    ]}
                }
            },
            "status": {"replicas": 1},
        });
        assert_eq!(
            model.unknown_fields("apps", "v1", "Deployment", &deployment),
            [
                "spec.bogusField",
                "spec.template.spec.containers[0].ports[0].nope",
                "spec.template.spec.containers[1].imagePullPolicyX",
            ]
        );
    }

    #[test]
    fn maps_arbitrary_objects_and_core_kinds() {
        let model = model();
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                            "data": {"key": "value", "other": "x"}, "binaryData": {"b": "AAAA"}, "extra": 1});
        assert_eq!(
            model.unknown_fields("", "v1", "ConfigMap", &config),
            ["extra"]
        );
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "bogus": 1},
                            "stringData": {"a": "b"}, "type": "Opaque"});
        assert_eq!(
            model.unknown_fields("", "v1", "Secret", &secret),
            ["metadata.bogus"]
        );
        let revision = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": 1,
                              "data": {"anything": {"goes": [1, 2]}}});
        assert!(
            model
                .unknown_fields("apps", "v1", "ControllerRevision", &revision)
                .is_empty()
        );
        let service = json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8081}]}});
        assert!(
            model
                .unknown_fields("", "v1", "Service", &service)
                .is_empty()
        );
        // Subresource kinds are known too.
        let scale = json!({"spec": {"replicas": 3, "x": 1}});
        assert_eq!(
            model.unknown_fields("autoscaling", "v1", "Scale", &scale),
            ["spec.x"]
        );
    }

    #[test]
    fn unknown_kinds_and_preserved_fields_are_not_checked() {
        let model = model();
        assert!(
            model
                .unknown_fields("example.com", "v1", "Widget", &json!({"spec": {"x": 1}}))
                .is_empty()
        );
        let index = HashMap::new();
        let node: Node = serde_json::from_value(json!({"type": "object",
            "x-kubernetes-preserve-unknown-fields": true, "properties": {"a": {"type": "string"}}}))
        .expect("a schema");
        let preserved = shape(&node, &index);
        assert!(matches!(preserved, Shape::Any));
    }
}

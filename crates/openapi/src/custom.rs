//! `/openapi/v3` documents of custom resources: each served version's `openAPIV3Schema` as the kind's schema
//! (named as upstream names them, `com.example.v1.Widget`), with `metadata` as the built-in `ObjectMeta`, a
//! `<Kind>List`, and the same REST operations as built-in kinds.

use gantry_api::registry::ResourceType;
use serde_json::{Value, json};

use crate::convert::Definitions;
use crate::{Document, json_bytes, v3};

const META: &str = "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.";

/// One served version of a custom resource: what it serves and its CRD's `openAPIV3Schema`.
#[derive(Debug, Clone, Copy)]
pub struct CustomKind<'a> {
    pub resource: &'a ResourceType,
    pub schema: &'a Value,
}

/// The documents of custom resources, one per group-version: (`apis/<group>/<version>`, document).
pub fn custom_v3_documents(kinds: &[CustomKind<'_>]) -> Vec<(String, Document)> {
    crate::built_apart(|| build(kinds))
}

fn build(kinds: &[CustomKind<'_>]) -> Vec<(String, Document)> {
    let mut defs = Definitions::load();
    for kind in kinds {
        add_definitions(&mut defs, kind);
    }
    let mut group_versions: Vec<(&str, &str)> = kinds
        .iter()
        .map(|k| (k.resource.group, k.resource.version))
        .collect();
    group_versions.sort_unstable();
    group_versions.dedup();
    group_versions
        .into_iter()
        .filter_map(|(group, version)| {
            let resources: Vec<&ResourceType> = kinds
                .iter()
                .map(|k| k.resource)
                .filter(|r| r.group == group && r.version == version)
                .collect();
            let document = v3::document_of(&defs, group, version, &resources)?;
            Some((
                v3::path_of(group, version),
                Document::new(json_bytes(&document)),
            ))
        })
        .collect()
}

/// The definition name upstream gives a custom kind: the group reversed, then version and kind.
fn definition_name(r: &ResourceType, kind: &str) -> String {
    let group: Vec<&str> = r.group.rsplit('.').collect();
    format!("{}.{}.{kind}", group.join("."), r.version)
}

fn add_definitions(defs: &mut Definitions, kind: &CustomKind<'_>) {
    let r = kind.resource;
    let gvk = |kind: &str| json!([{"group": r.group, "version": r.version, "kind": kind}]);
    let name = definition_name(r, r.kind);
    let mut schema = kind.schema.clone();
    if !schema.is_object() {
        schema = json!({"type": "object"});
    }
    let properties = &mut schema["properties"];
    if !properties.is_object() {
        *properties = json!({});
    }
    properties["apiVersion"] = json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"});
    properties["kind"] = json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"});
    properties["metadata"] = json!({"$ref": format!("{META}ObjectMeta"), "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"});
    schema["x-kubernetes-group-version-kind"] = gvk(r.kind);
    defs.insert(&name, schema);
    let list_kind = format!("{}List", r.kind);
    defs.insert(
        &definition_name(r, &list_kind),
        json!({
            "description": format!("{list_kind} is a list of {}", r.kind),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": format!("#/$defs/{name}")}},
                "metadata": {"$ref": format!("{META}ListMeta")},
            },
            "x-kubernetes-group-version-kind": gvk(&list_kind),
        }),
    );
}

#[cfg(test)]
mod tests {
    use gantry_api::registry::VERBS;

    use super::*;

    #[test]
    fn a_custom_kind_gets_its_schema_and_operations() {
        let widgets = ResourceType {
            group: "example.com",
            version: "v1",
            kind: "Widget",
            plural: "widgets",
            short_names: &[],
            namespaced: true,
            categories: &[],
            subresources: &[],
            verbs: VERBS,
        };
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"size": {"type": "integer"}}}}});
        let documents = custom_v3_documents(&[CustomKind {
            resource: &widgets,
            schema: &schema,
        }]);
        assert_eq!(documents.len(), 1);
        assert_eq!(documents[0].0, "apis/example.com/v1");
        let document: Value = serde_json::from_slice(&documents[0].1.bytes).unwrap();
        let widget = &document["components"]["schemas"]["com.example.v1.Widget"];
        assert_eq!(
            widget["properties"]["spec"]["properties"]["size"]["type"],
            "integer"
        );
        assert_eq!(
            widget["x-kubernetes-group-version-kind"][0]["kind"],
            "Widget"
        );
        let meta = serde_json::to_string(&widget["properties"]["metadata"]).unwrap();
        assert!(
            meta.contains("#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        );
        assert!(
            document["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
                .is_object()
        );
        let patch = &document["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]
            ["patch"];
        assert!(patch["parameters"].to_string().contains("fieldValidation"));
    }
}

//! `/openapi/v3`: the root and one document per group-version. For now each document names, for every
//! resource, its PATCH operation with `x-kubernetes-group-version-kind` and the `fieldValidation` parameter:
//! what kubectl ≥ 1.29 checks before it trusts the server to validate and sends `apply`/`create -f` without
//! validating client-side. Schemas (for `kubectl explain` and strict field validation) are not generated yet.
//! `/openapi/v2` answers 404, which every kubectl version handles.

use std::sync::OnceLock;

use gantry_api::registry::{self, RESOURCES};
use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::response::{self, Response};

/// The documents, built once: (URL path under `/openapi/v3/`, document, its hash).
fn documents() -> &'static [(String, Value, String)] {
    static DOCUMENTS: OnceLock<Vec<(String, Value, String)>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let mut documents = Vec::new();
        for (group, versions) in registry::groups() {
            for version in versions {
                let path = if group.is_empty() {
                    format!("api/{version}")
                } else {
                    format!("apis/{group}/{version}")
                };
                let document = group_version_document(group, version);
                let hash = hex(ring::digest::digest(
                    &ring::digest::SHA512,
                    document.to_string().as_bytes(),
                )
                .as_ref());
                documents.push((path, document, hash));
            }
        }
        documents
    })
}

/// Answers `/openapi/v3` and `/openapi/v3/<group-version path>`; `None` for anything else under `/openapi`.
pub(crate) fn serve(path: &str) -> Option<Response> {
    let rest = path.strip_prefix("/openapi/v3")?.trim_matches('/');
    if rest.is_empty() {
        let paths: Map<String, Value> = documents()
            .iter()
            .map(|(path, _, hash)| {
                (
                    path.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
                )
            })
            .collect();
        return Some(response::json(StatusCode::OK, &json!({"paths": paths})));
    }
    let (_, document, _) = documents().iter().find(|(path, _, _)| path == rest)?;
    Some(response::json(StatusCode::OK, document))
}

fn group_version_document(group: &str, version: &str) -> Value {
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let item = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": true});
        paths.insert(
            item,
            json!({
                "patch": {
                    "operationId": format!("patch{}", r.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
                    "responses": {"200": {"description": "OK"}},
                }
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_is_listed_with_a_patch_operation_per_resource() {
        let root = documents();
        assert!(root.iter().any(|(p, _, _)| p == "api/v1"));
        assert!(root.iter().any(|(p, _, _)| p == "apis/apps/v1"));
        let (_, apps, _) = root.iter().find(|(p, _, _)| p == "apis/apps/v1").unwrap();
        let patch =
            &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let (_, core, _) = root.iter().find(|(p, _, _)| p == "api/v1").unwrap();
        assert!(
            core["paths"].get("/api/v1/namespaces/{name}").is_some(),
            "cluster-scoped paths have no namespace"
        );
    }
}

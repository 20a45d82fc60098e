//! `/openapi/v3` (root and per group-version documents with upstream's 1.33 schemas) and `/openapi/v2` (gnostic
//! protobuf for kubectl ≤ 1.28, JSON otherwise), served from `gantry-openapi`, which builds each document on
//! first request and keeps its bytes.

use gantry_api::ApiError;
use std::sync::{Arc, Mutex};

use gantry_openapi::{CustomKind, Document, V2_PROTOBUF};
use http::StatusCode;
use serde_json::{Value, json};

use crate::custom::Snapshot;

use crate::response::{self, Response};

/// Answers `/openapi/v3`, `/openapi/v3/<group-version path>` (any `?hash=` is ignored: there is one version of
/// each document) and `/openapi/v2`; `None` for anything else under `/openapi`.
/// `custom` holds the custom resources' group-version documents.
pub(crate) fn serve(
    path: &str,
    accept: Option<&str>,
    custom: &[(String, Document)],
) -> Option<Response> {
    if let Some(rest) = path.strip_prefix("/openapi/v3") {
        let rest = rest.trim_matches('/');
        if rest.is_empty() {
            return Some(response::bytes(
                StatusCode::OK,
                response::JSON,
                v3_root(custom),
            ));
        }
        if let Some(document) = gantry_openapi::v3_document(rest) {
            return Some(response::bytes(
                StatusCode::OK,
                response::JSON,
                document.bytes.as_slice(),
            ));
        }
        let (_, document) = custom.iter().find(|(p, _)| p == rest)?;
        return Some(response::bytes(
            StatusCode::OK,
            response::JSON,
            document.bytes.clone(),
        ));
    }
    if path.trim_end_matches('/') == "/openapi/v2" {
        return Some(match v2_format(accept) {
            Some(V2::Protobuf) => {
                response::bytes(StatusCode::OK, V2_PROTOBUF, gantry_openapi::v2_protobuf())
            }
            Some(V2::Json) => {
                response::bytes(StatusCode::OK, response::JSON, gantry_openapi::v2_json())
            }
            None => response::error(&ApiError::not_acceptable(&[response::JSON, V2_PROTOBUF])),
        });
    }
    None
}

/// The `/openapi/v3` root: the built-in group-versions and the custom ones.
fn v3_root(custom: &[(String, Document)]) -> Vec<u8> {
    let builtin = gantry_openapi::v3_root();
    if custom.is_empty() {
        return builtin.to_vec();
    }
    let mut root: Value = serde_json::from_slice(builtin).unwrap_or_default();
    for (path, document) in custom {
        let url = format!("/openapi/v3/{path}?hash={}", document.hash);
        root["paths"][path] = json!({"serverRelativeURL": url});
    }
    serde_json::to_vec(&root).unwrap_or_default()
}

/// The custom resources' documents, built again only when the CRDs change.
#[derive(Debug, Default)]
pub(crate) struct CustomDocuments {
    built: Mutex<(Fingerprint, Documents)>,
}

type Fingerprint = (usize, gantry_store::Revision);
/// Group-version paths (`apis/example.com/v1`) and their documents.
type Documents = Arc<Vec<(String, Document)>>;

impl CustomDocuments {
    pub(crate) fn of(&self, snapshot: &Snapshot) -> Documents {
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if built.0 != snapshot.fingerprint() {
            let kinds: Vec<CustomKind<'_>> = snapshot
                .served()
                .iter()
                .map(|s| CustomKind {
                    resource: s.resource,
                    schema: &s.version().raw_schema,
                })
                .collect();
            *built = (
                snapshot.fingerprint(),
                Arc::new(gantry_openapi::custom_v3_documents(&kinds)),
            );
        }
        built.1.clone()
    }
}

#[derive(Debug, PartialEq)]
enum V2 {
    Protobuf,
    Json,
}

/// The first acceptable form in `Accept`, in the client's order: kubectl asks for protobuf alone (a JSON body
/// breaks kubectl 1.27); no `Accept`, JSON or a wildcard get JSON, as upstream answers.
fn v2_format(accept: Option<&str>) -> Option<V2> {
    let accept = accept.unwrap_or("").trim();
    if accept.is_empty() {
        return Some(V2::Json);
    }
    accept.split(',').find_map(|range| {
        let media = range.split(';').next().unwrap_or("").trim();
        if media.starts_with("application/com.github.proto-openapi.spec.v2") {
            Some(V2::Protobuf)
        } else if matches!(media, "application/json" | "*/*" | "application/*") {
            Some(V2::Json)
        } else {
            None
        }
    })
}

/// Removes from `object` the fields the schema of `group`/`version`/`kind` lacks and names them as dotted
/// paths (`spec.template.spec.containers[0].bogus`); see [`gantry_openapi::prune_unknown_fields`].
pub(crate) fn prune_unknown_fields(
    group: &str,
    version: &str,
    kind: &str,
    object: &mut Value,
) -> Vec<String> {
    gantry_openapi::prune_unknown_fields(group, version, kind, object)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body(response: Response) -> Vec<u8> {
        response
            .into_body()
            .collect()
            .await
            .expect("infallible")
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn v3_root_and_documents() {
        let root = serve("/openapi/v3", None, &[]).expect("served");
        assert_eq!(root.status(), StatusCode::OK);
        let root: Value = serde_json::from_slice(&body(root).await).expect("JSON");
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .expect("apps/v1 listed");
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let apps = serve("/openapi/v3/apis/apps/v1", None, &[]).expect("served");
        let apps: Value = serde_json::from_slice(&body(apps).await).expect("JSON");
        assert!(apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());
        assert!(serve("/openapi/v3/apis/nope/v1", None, &[]).is_none());
        assert!(serve("/openapi/v4", None, &[]).is_none());
    }

    #[tokio::test]
    async fn v2_follows_accept() {
        let kubectl = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
        let protobuf = serve("/openapi/v2", Some(kubectl), &[]).expect("served");
        assert_eq!(protobuf.headers()["content-type"], V2_PROTOBUF);
        assert_eq!(body(protobuf).await, gantry_openapi::v2_protobuf());
        for accept in [None, Some("application/json"), Some("*/*")] {
            let json = serve("/openapi/v2", accept, &[]).expect("served");
            assert_eq!(json.headers()["content-type"], "application/json");
        }
        let refused = serve("/openapi/v2", Some("application/yaml"), &[]).expect("served");
        assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE);
        assert_eq!(
            v2_format(Some(
                "application/json;q=0.9, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
            )),
            Some(V2::Json)
        );
    }

    #[test]
    fn unknown_fields_are_pruned() {
        let mut object = serde_json::json!({"spec": {"bogus": 1, "replicas": 2}});
        assert_eq!(
            prune_unknown_fields("apps", "v1", "Deployment", &mut object),
            ["spec.bogus"]
        );
        assert_eq!(object, serde_json::json!({"spec": {"replicas": 2}}));
    }
}

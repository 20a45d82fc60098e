//! `/openapi/v3` (root and per group-version documents with upstream's 1.33 schemas) and `/openapi/v2` (gnostic
//! protobuf for kubectl ≤ 1.28, JSON otherwise), served from `gantry-openapi`, which builds each document on
//! first request and keeps its bytes.

use gantry_api::ApiError;
use gantry_openapi::V2_PROTOBUF;
use http::StatusCode;
use serde_json::Value;

use crate::response::{self, Response};

/// Answers `/openapi/v3`, `/openapi/v3/<group-version path>` (any `?hash=` is ignored: there is one version of
/// each document) and `/openapi/v2`; `None` for anything else under `/openapi`.
pub(crate) fn serve(path: &str, accept: Option<&str>) -> Option<Response> {
    if let Some(rest) = path.strip_prefix("/openapi/v3") {
        let rest = rest.trim_matches('/');
        let bytes = if rest.is_empty() {
            gantry_openapi::v3_root()
        } else {
            gantry_openapi::v3_document(rest)?.bytes.as_slice()
        };
        return Some(response::bytes(StatusCode::OK, response::JSON, bytes));
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
        let root = serve("/openapi/v3", None).expect("served");
        assert_eq!(root.status(), StatusCode::OK);
        let root: Value = serde_json::from_slice(&body(root).await).expect("JSON");
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .expect("apps/v1 listed");
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let apps = serve("/openapi/v3/apis/apps/v1", None).expect("served");
        let apps: Value = serde_json::from_slice(&body(apps).await).expect("JSON");
        assert!(apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());
        assert!(serve("/openapi/v3/apis/nope/v1", None).is_none());
        assert!(serve("/openapi/v4", None).is_none());
    }

    #[tokio::test]
    async fn v2_follows_accept() {
        let kubectl = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
        let protobuf = serve("/openapi/v2", Some(kubectl)).expect("served");
        assert_eq!(protobuf.headers()["content-type"], V2_PROTOBUF);
        assert_eq!(body(protobuf).await, gantry_openapi::v2_protobuf());
        for accept in [None, Some("application/json"), Some("*/*")] {
            let json = serve("/openapi/v2", accept).expect("served");
            assert_eq!(json.headers()["content-type"], "application/json");
        }
        let refused = serve("/openapi/v2", Some("application/yaml")).expect("served");
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

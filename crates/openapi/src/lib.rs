//! Gantry's OpenAPI: the `/openapi/v3` root and group-version documents, the `/openapi/v2` document (JSON and
//! gnostic protobuf), and the unknown-field check behind `fieldValidation=Strict`, all from upstream's 1.33
//! definitions (vendored from kubernetes-validate, see `schemas/PROVENANCE.md`) and the kind registry.
//!
//! No I/O. Each document is built on first use (the root with all group-version documents, whose hashes it
//! lists), in one go, and kept as serialized bytes (2.9 MB for all of them); the parsed definitions are
//! dropped after each build, which costs tens of milliseconds where keeping them would cost megabytes. The
//! unknown-field model is built on first use too, straight from the vendored text.

mod convert;
mod custom;
mod strict;
mod structural;
mod v2;
mod v3;

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

pub use custom::{CustomKind, custom_v3_documents};
pub use structural::{StructuralDefinitions, StructuralSchema, structural_definitions};

/// The media type of the `/openapi/v2` protobuf, as upstream labels it. kubectl ≤ 1.28 asks for it under its
/// deprecated name, `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, which is no valid media
/// type (Go's client refuses a response labelled so).
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// A serialized document and its content hash (SHA-512, upper-case hex, as upstream's `?hash=`).
#[derive(Debug, Clone)]
pub struct Document {
    pub bytes: Vec<u8>,
    pub hash: String,
}

impl Document {
    fn new(bytes: Vec<u8>) -> Document {
        let digest = ring::digest::digest(&ring::digest::SHA512, &bytes);
        let hash = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        Document { bytes, hash }
    }
}

/// The `/openapi/v3` documents: the root, and per served group-version its path (`apis/apps/v1`) and document.
#[derive(Debug, Clone)]
struct V3 {
    root: Vec<u8>,
    group_versions: Vec<(String, Document)>,
}

fn v3() -> &'static V3 {
    static V3: OnceLock<V3> = OnceLock::new();
    V3.get_or_init(|| {
        built_apart(|| {
            let defs = convert::Definitions::load();
            let mut group_versions = Vec::new();
            for (group, versions) in gantry_api::registry::groups() {
                for version in versions {
                    if let Some(document) = v3::document(&defs, group, version) {
                        group_versions.push((
                            v3::path_of(group, version),
                            Document::new(json_bytes(&document)),
                        ));
                    }
                }
            }
            let paths: Map<String, Value> = group_versions
                .iter()
                .map(|(path, document)| {
                    let url = format!("/openapi/v3/{path}?hash={}", document.hash);
                    (path.clone(), json!({"serverRelativeURL": url}))
                })
                .collect();
            V3 {
                root: json_bytes(&json!({"paths": paths})),
                group_versions,
            }
        })
    })
}

/// Runs `build` on a short-lived thread and returns a copy of its result. The parsed definitions and the
/// intermediate values (megabytes) then come and go in that thread's allocator arena, which glibc gives back;
/// built on the request's thread they stayed resident (measured on `gantry server` after fetching every
/// document: 22.4 MiB resident this way, 32.6 MiB that way).
fn built_apart<T: Clone + Send>(build: impl FnOnce() -> T + Send) -> T {
    let built = std::thread::scope(|scope| scope.spawn(build).join())
        .expect("building an OpenAPI document does not panic");
    built.clone()
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serializes")
}

/// `/openapi/v3`: `{"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=…"}, …}}`.
/// The first call builds every group-version document (the root carries their hashes).
pub fn v3_root() -> &'static [u8] {
    &v3().root
}

/// The `/openapi/v3/<path>` document, `path` being `api/v1` or `apis/<group>/<version>`.
pub fn v3_document(path: &str) -> Option<&'static Document> {
    v3().group_versions
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, document)| document)
}

/// Builds the `group`/`version` document afresh, uncached (for benchmarks; servers use [`v3_document`]).
pub fn build_v3_document(group: &str, version: &str) -> Option<Document> {
    let defs = convert::Definitions::load();
    v3::document(&defs, group, version).map(|d| Document::new(json_bytes(&d)))
}

/// `/openapi/v2` as gnostic protobuf ([`V2_PROTOBUF`]).
pub fn v2_protobuf() -> &'static [u8] {
    static V2: OnceLock<Vec<u8>> = OnceLock::new();
    V2.get_or_init(|| {
        built_apart(|| v2::protobuf_document(&v2::definitions(&convert::Definitions::load())))
    })
}

/// `/openapi/v2` as JSON.
pub fn v2_json() -> &'static [u8] {
    static V2: OnceLock<Vec<u8>> = OnceLock::new();
    V2.get_or_init(|| {
        built_apart(|| {
            json_bytes(&v2::json_document(v2::definitions(
                &convert::Definitions::load(),
            )))
        })
    })
}

fn model() -> &'static strict::Model {
    static MODEL: OnceLock<strict::Model> = OnceLock::new();
    MODEL.get_or_init(strict::Model::build)
}

/// The fields of `object` (a `group`/`version`/`kind` object as a client sent it) that its schema does not
/// know, as dotted paths with list indexes: `spec.bogusField`, `spec.template.spec.containers[0].bogus`.
/// Upstream words a Strict refusal as `strict decoding error: unknown field "spec.bogusField", unknown field
/// "…"` and a Warn warning as `unknown field "spec.bogusField"`. Fields come in key order (objects are sorted
/// maps here). Empty for kinds without a vendored schema; the first call builds the model (milliseconds).
pub fn unknown_fields(group: &str, version: &str, kind: &str, object: &Value) -> Vec<String> {
    model().unknown_fields(group, version, kind, object)
}

/// [`unknown_fields`], removed from `object` (as decoding into the upstream types drops them when field
/// validation is not strict).
pub fn prune_unknown_fields(
    group: &str,
    version: &str,
    kind: &str,
    object: &mut Value,
) -> Vec<String> {
    model().prune_unknown_fields(group, version, kind, object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_removes_exactly_the_unknown_fields() {
        let mut deployment = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"any.key/works": "x"}}, "bogus": 1,
            "spec": {"replicaz": 2, "template": {"spec": {"containers": [{"name": "c", "imagez": "x"}]}}}});
        let found = prune_unknown_fields("apps", "v1", "Deployment", &mut deployment);
        assert_eq!(
            found,
            [
                "bogus",
                "spec.replicaz",
                "spec.template.spec.containers[0].imagez"
            ]
        );
        assert_eq!(
            deployment,
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"any.key/works": "x"}},
                "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}})
        );
    }

    #[test]
    fn root_lists_every_served_group_version_with_its_hash() {
        let root: Value = serde_json::from_slice(v3_root()).expect("JSON");
        for (group, versions) in gantry_api::registry::groups() {
            for version in versions {
                let path = v3::path_of(group, version);
                let document = v3_document(&path).expect("built");
                assert_eq!(
                    root["paths"][&path]["serverRelativeURL"],
                    format!("/openapi/v3/{path}?hash={}", document.hash)
                );
                assert_eq!(document.hash.len(), 128);
            }
        }
        assert!(v3_document("apis/nope/v1").is_none());
    }

    #[test]
    fn every_registry_kind_has_a_vendored_schema() {
        let defs = convert::Definitions::load();
        for r in gantry_api::registry::RESOURCES {
            assert!(
                defs.name_of(r.group, r.version, r.kind).is_some(),
                "{}/{} {}: no vendored schema (rerun schemas/trim.py with its package)",
                r.group,
                r.version,
                r.kind
            );
            for s in r.subresources {
                if matches!(
                    s.name,
                    "status" | "scale" | "eviction" | "binding" | "token"
                ) {
                    assert!(
                        defs.name_of(s.group, s.version, s.kind).is_some(),
                        "{}",
                        s.kind
                    );
                }
            }
        }
    }

    #[test]
    fn v2_json_and_protobuf_are_built() {
        let json: Value = serde_json::from_slice(v2_json()).expect("JSON");
        assert_eq!(json["swagger"], "2.0");
        assert!(json["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
        assert!(v2_protobuf().len() > 100_000);
    }
}

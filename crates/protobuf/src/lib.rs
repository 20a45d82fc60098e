//! Decodes Kubernetes protobuf request bodies (`Content-Type: application/vnd.kubernetes.protobuf`)
//! into the JSON object a JSON client would have sent.
//!
//! kubectl ≥ 1.32 sends its typed-client writes (`kubectl create namespace|configmap|…`,
//! `kubectl autoscale`) this way, with no JSON fallback. The wire format is the 4 bytes `k8s\0`
//! followed by a `runtime.Unknown` message: `typeMeta` (apiVersion, kind), `raw` (the object's own
//! protobuf), `contentEncoding` and `contentType`.
//!
//! The object is decoded by reflection over a descriptor set compiled from the upstream
//! Kubernetes 1.33 `generated.proto` files (see `proto/PROVENANCE.md` and `regenerate.sh`), then
//! converted to JSON by the `json` module's walker, which knows the Kubernetes JSON forms of `Time`,
//! `MicroTime`, `Duration`, `Quantity`, `IntOrString`, `RawExtension` and `FieldsV1`.
//!
//! Supported: every top-level kind (a message with `metadata`) of core/v1, apps/v1, batch/v1,
//! autoscaling/v1 and v2, policy/v1, rbac.authorization.k8s.io/v1, networking.k8s.io/v1,
//! storage.k8s.io/v1, coordination.k8s.io/v1, discovery.k8s.io/v1, events.k8s.io/v1,
//! authentication.k8s.io/v1, authorization.k8s.io/v1 and scheduling.k8s.io/v1.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};

mod json;

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4 bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// `protoc --include_imports` output for `proto/k8s.io/**/generated.proto`; remade by `regenerate.sh`.
const DESCRIPTOR_SET: &[u8] = include_bytes!("../proto/descriptor_set.bin");

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";

/// API groups whose protos are compiled in: (API group, proto package segment, versions).
const GROUPS: &[(&str, &str, &[&str])] = &[
    ("", "core", &["v1"]),
    ("apps", "apps", &["v1"]),
    ("batch", "batch", &["v1"]),
    ("autoscaling", "autoscaling", &["v1", "v2"]),
    ("policy", "policy", &["v1"]),
    ("rbac.authorization.k8s.io", "rbac", &["v1"]),
    ("networking.k8s.io", "networking", &["v1"]),
    ("storage.k8s.io", "storage", &["v1"]),
    ("coordination.k8s.io", "coordination", &["v1"]),
    ("discovery.k8s.io", "discovery", &["v1"]),
    ("events.k8s.io", "events", &["v1"]),
    ("authentication.k8s.io", "authentication", &["v1"]),
    ("authorization.k8s.io", "authorization", &["v1"]),
    ("scheduling.k8s.io", "scheduling", &["v1"]),
];

/// Why a body could not be decoded. [`ProtobufError::status_code`] says which HTTP status fits.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("protobuf body does not start with the Kubernetes magic bytes")]
    MissingMagic,
    /// The envelope or the object is not valid protobuf for its type.
    #[error("malformed protobuf body: {0}")]
    Malformed(String),
    /// The `(apiVersion, kind)` in the envelope is not a built-in kind this decoder knows.
    #[error("no protobuf decoder for apiVersion {api_version:?}, kind {kind:?}")]
    UnknownKind { api_version: String, kind: String },
    /// The envelope says the object is compressed or not protobuf.
    #[error("unsupported protobuf envelope: {0}")]
    UnsupportedEncoding(String),
    /// A value decoded but has no JSON form (a `RawExtension` that is not JSON, a time out of range).
    #[error("invalid value in protobuf body: {0}")]
    InvalidValue(String),
}

impl ProtobufError {
    /// 415 for kinds or encodings we cannot decode (kubectl prints it as "unknown format"), else 400.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::UnknownKind { .. } | Self::UnsupportedEncoding(_) => 415,
            Self::MissingMagic | Self::Malformed(_) | Self::InvalidValue(_) => 400,
        }
    }
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The descriptor set is a build input checked by the tests; a broken one is a build bug.
        #[allow(clippy::expect_used)]
        DescriptorPool::decode(DESCRIPTOR_SET).expect("embedded descriptor set is valid")
    })
}

/// The message for a top-level `(apiVersion, kind)`, or `None` when it is not supported.
fn object_descriptor(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (_, package, _) = GROUPS
        .iter()
        .find(|(g, _, versions)| *g == group && versions.contains(&version))?;
    if !kind.starts_with(|c: char| c.is_ascii_uppercase())
        || !kind.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let desc = pool().get_message_by_name(&format!("k8s.io.api.{package}.{version}.{kind}"))?;
    // Only objects and lists (which carry ObjectMeta/ListMeta), not nested types like PodSpec.
    let meta = desc.get_field_by_name("metadata")?;
    let meta_kind = meta.kind();
    let meta_name = meta_kind.as_message()?.full_name();
    matches!(
        meta_name,
        "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta"
            | "k8s.io.apimachinery.pkg.apis.meta.v1.ListMeta"
    )
    .then_some(desc)
}

/// Whether [`decode`] knows the kind `kind` of `apiVersion` `api_version`.
pub fn is_supported(api_version: &str, kind: &str) -> bool {
    object_descriptor(api_version, kind).is_some()
}

fn string_field(msg: &DynamicMessage, name: &str) -> String {
    match msg.get_field_by_name(name).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Decodes a Kubernetes protobuf body into the JSON object a JSON client would have sent, with
/// `apiVersion` and `kind` from the envelope's `typeMeta`.
///
/// JSON forms follow Go's `encoding/json` on the Kubernetes types: see the `json` module for the
/// rules on zero values and empty messages.
pub fn decode(body: &[u8]) -> Result<serde_json::Value, ProtobufError> {
    decode_at(body, 0)
}

/// [`decode`] for a body nested `depth` `RawExtension`s deep.
pub(crate) fn decode_at(body: &[u8], depth: usize) -> Result<serde_json::Value, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtobufError::MissingMagic)?;
    let unknown_desc = pool().get_message_by_name(UNKNOWN).ok_or_else(|| {
        ProtobufError::Malformed("runtime.Unknown missing from descriptors".into())
    })?;
    let envelope = DynamicMessage::decode(unknown_desc, rest)
        .map_err(|e| ProtobufError::Malformed(format!("envelope: {e}")))?;

    let (api_version, kind) = match envelope.get_field_by_name("typeMeta").as_deref() {
        Some(Value::Message(tm)) => (string_field(tm, "apiVersion"), string_field(tm, "kind")),
        _ => (String::new(), String::new()),
    };
    let encoding = string_field(&envelope, "contentEncoding");
    if !encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(format!(
            "contentEncoding {encoding:?}"
        )));
    }
    let content_type = string_field(&envelope, "contentType");
    if !content_type.is_empty() && content_type != CONTENT_TYPE {
        return Err(ProtobufError::UnsupportedEncoding(format!(
            "contentType {content_type:?}"
        )));
    }
    let desc =
        object_descriptor(&api_version, &kind).ok_or_else(|| ProtobufError::UnknownKind {
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
    // An envelope without `raw` (a body cut short after `typeMeta`) carries no object.
    let raw = match envelope.get_field_by_name("raw").as_deref() {
        Some(Value::Bytes(b)) if envelope.has_field_by_name("raw") => b.clone(),
        _ => {
            return Err(ProtobufError::Malformed(
                "envelope has no raw object".into(),
            ));
        }
    };
    let object = DynamicMessage::decode(desc, raw)
        .map_err(|e| ProtobufError::Malformed(format!("{kind}: {e}")))?;

    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), api_version.into());
    out.insert("kind".into(), kind.into());
    json::message_fields(&object, &mut out, depth)?;
    Ok(serde_json::Value::Object(out))
}

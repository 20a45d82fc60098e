//! Object metadata the server owns: uid, creationTimestamp, generation and resourceVersion.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use gantry_api::ApiError;
use gantry_store::{KeyValue, Revision};
use serde_json::{Map, Value, json};

/// A stored object, with its resourceVersion set from the store.
pub(crate) fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::internal(format!(
            "stored object {} is not JSON: {e}",
            kv.key.escape_ascii()
        ))
    })?;
    set_resource_version(&mut object, kv.mod_revision);
    Ok(object)
}

/// The bytes to store: the object without its resourceVersion (the store's revision is the truth).
pub(crate) fn encode(object: &Value) -> Result<Bytes, ApiError> {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&object)
        .map(Bytes::from)
        .map_err(ApiError::internal)
}

pub(crate) fn set_resource_version(object: &mut Value, revision: Revision) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(revision.to_string()));
    }
}

/// The object's metadata, created empty if missing; a non-object `metadata` is a bad request.
pub(crate) fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let fields = object
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the object must be a JSON object"))?;
    fields
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// Whether finalizers hold the object back from deletion.
pub(crate) fn has_finalizers(object: &Value) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// Sets what the server owns on a new object; drops what clients may not set. Kinds with a `spec` count its
/// changes in `metadata.generation`, starting at 1.
pub(crate) fn prepare_for_create(object: &mut Value) {
    let has_spec = object.get("spec").is_some();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if has_spec {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now()));
        for owned in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(owned);
        }
    }
}

/// What the API stores differently from what clients may send: a Secret's `stringData` is merged into its
/// `data` (base64) and dropped, as upstream's conversion does.
pub(crate) fn normalize(group: &str, kind: &str, object: &mut Value) -> Result<(), ApiError> {
    if (group, kind) != ("", "Secret") {
        return Ok(());
    }
    let Some(fields) = object.as_object_mut() else {
        return Ok(());
    };
    let Some(string_data) = fields.remove("stringData") else {
        return Ok(());
    };
    let Value::Object(string_data) = string_data else {
        return Err(ApiError::bad_request(
            "stringData must be an object of strings",
        ));
    };
    let data = fields.entry("data").or_insert_with(|| json!({}));
    if data.is_null() {
        *data = json!({});
    }
    let data = data
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("data must be an object of base64 strings"))?;
    for (key, value) in string_data {
        let Value::String(text) = value else {
            return Err(ApiError::bad_request(format!(
                "stringData.{key} must be a string"
            )));
        };
        data.insert(key, json!(BASE64.encode(text)));
    }
    Ok(())
}

/// Keeps what an update may not change (uid, creationTimestamp, deletion marks) and bumps the generation when
/// anything but metadata and status changed.
pub(crate) fn prepare_for_update(object: &mut Value, old: &Value) {
    let changed = spec_of(object) != spec_of(old);
    let old_generation = old.pointer("/metadata/generation").and_then(Value::as_i64);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for kept in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old.pointer(&format!("/metadata/{kept}")) {
                Some(value) => meta.insert(kept.into(), value.clone()),
                None => meta.remove(kept),
            };
        }
        match old_generation {
            Some(generation) => {
                meta.insert("generation".into(), json!(generation + i64::from(changed)))
            }
            None => meta.remove("generation"),
        };
    }
}

/// Everything but metadata and status: what a generation counts changes of.
fn spec_of(object: &Value) -> Map<String, Value> {
    let mut fields = object.as_object().cloned().unwrap_or_default();
    fields.remove("metadata");
    fields.remove("status");
    fields
}

/// Now, as Kubernetes writes timestamps (RFC 3339, whole seconds, UTC).
pub(crate) fn now() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// A time as Kubernetes writes timestamps: RFC 3339, UTC, whole seconds.
pub(crate) fn rfc3339(at: std::time::SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A random (version 4) UUID.
pub(crate) fn new_uid() -> String {
    let mut bytes = [0u8; 16];
    // The system's CSPRNG; it does not fail on Linux.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_version_4_and_distinct() {
        let (a, b) = (new_uid(), new_uid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn timestamps_are_whole_seconds_utc() {
        let now = now();
        assert!(now.ends_with('Z') && now.len() == 20, "{now}");
    }

    #[test]
    fn generation_counts_spec_changes_only() {
        let old = json!({"metadata": {"name": "a", "uid": "u1", "generation": 3, "creationTimestamp": "t"}, "spec": {"x": 1}});
        let mut labelled = json!({"metadata": {"name": "a", "uid": "forged", "labels": {"a": "b"}}, "spec": {"x": 1}, "status": {"y": 2}});
        prepare_for_update(&mut labelled, &old);
        assert_eq!(labelled["metadata"]["generation"], 3);
        assert_eq!(labelled["metadata"]["uid"], "u1");
        assert_eq!(labelled["metadata"]["creationTimestamp"], "t");
        let mut changed = json!({"metadata": {"name": "a"}, "spec": {"x": 2}});
        prepare_for_update(&mut changed, &old);
        assert_eq!(changed["metadata"]["generation"], 4);
    }
}

//! RFC 7386 JSON merge patch, as evanphx/json-patch's `MergePatch` (which the API server uses) applies it.

use serde_json::{Map, Value};

use crate::PatchError;

/// Applies a merge patch: `null` members delete, objects merge recursively, anything else replaces.
///
/// As in Kubernetes, and unlike RFC 7386, a patch that is `null` or a scalar is refused (400
/// `Invalid JSON Patch`), and null members are also pruned from values that are added or replace
/// (including objects inside arrays), so a merge patch never stores a null member.
pub fn merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    match patch {
        Value::Object(p) => {
            let mut out = match target {
                Value::Object(t) => t.clone(),
                _ => Map::new(),
            };
            merge_into(&mut out, p);
            Ok(Value::Object(out))
        }
        Value::Array(_) => Ok(pruned(patch)),
        _ => Err(PatchError::BadRequest("Invalid JSON Patch".into())),
    }
}

fn merge_into(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match (target.get_mut(k), v) {
            (_, Value::Null) => {
                target.remove(k);
            }
            (Some(Value::Object(t)), Value::Object(p)) => merge_into(t, p),
            _ => {
                target.insert(k.clone(), pruned(v));
            }
        }
    }
}

/// The value without null object members, at any depth.
pub(crate) fn pruned(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), pruned(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(pruned).collect()),
        other => other.clone(),
    }
}

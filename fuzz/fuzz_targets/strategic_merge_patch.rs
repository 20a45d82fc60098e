//! Kubernetes strategic merge patch (`application/strategic-merge-patch+json`) with the built-in patch
//! metadata of a kind chosen by the first byte. Input: `<kind byte> <document JSON> NUL <patch JSON>`.
//!
//! Properties: `strategic_merge_patch` never panics, with the kind's schema and without one; and without a
//! schema, a patch free of directives (no `$` key anywhere) applies to an object as a JSON merge patch does
//! (maps merge, `null` deletes, lists are replaced whole), as the documentation of `NoSchema` says.
#![no_main]

use gantry_patch::{BuiltinSchema, NoSchema};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "common.rs"]
mod common;

/// (group, kind): every kind `BuiltinSchema` has a table for, and one it has not.
const KINDS: &[(&str, &str)] = &[
    ("", "Pod"),
    ("apps", "Deployment"),
    ("", "Service"),
    ("", "ConfigMap"),
    ("", "PodTemplate"),
    ("", "ReplicationController"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("", "Node"),
    ("", "ServiceAccount"),
    ("", "Namespace"),
    ("", "PersistentVolumeClaim"),
    ("", "Secret"),
];

fn has_directive(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.starts_with('$') || has_directive(v)),
        Value::Array(a) => a.iter().any(has_directive),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((doc, patch)) = common::document_and_patch(rest) else {
        return;
    };
    let (group, kind) = KINDS[usize::from(selector) % KINDS.len()];
    let schema = BuiltinSchema::for_kind(group, kind);
    let _ = gantry_patch::strategic_merge_patch(&doc, &patch, &schema);
    let plain = gantry_patch::strategic_merge_patch(&doc, &patch, &NoSchema);
    if doc.is_object() && patch.is_object() && !has_directive(&patch) {
        let merged =
            gantry_patch::merge_patch(&doc, &patch).expect("an object merge patch applies");
        match plain {
            Ok(plain) => assert_eq!(
                plain, merged,
                "strategic merge patch without a schema differs from the merge patch {patch}"
            ),
            Err(e) => panic!(
                "strategic merge patch without a schema refuses {patch}, a merge patch applies: {e}"
            ),
        }
    }
});

//! RFC 7386 JSON merge patch (`application/merge-patch+json`) applied to an arbitrary document.
//! Input: `<document JSON> NUL <patch JSON>` (see common.rs).
//!
//! Properties: `merge_patch` never panics; a merge patch is idempotent (applying it to its own result
//! changes nothing); and, as documented, a result never holds a null object member.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "common.rs"]
mod common;

fn has_null_member(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().any(|v| v.is_null() || has_null_member(v)),
        Value::Array(a) => a.iter().any(has_null_member),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((doc, patch)) = common::document_and_patch(data) else {
        return;
    };
    let Ok(once) = gantry_patch::merge_patch(&doc, &patch) else {
        return;
    };
    let twice =
        gantry_patch::merge_patch(&once, &patch).expect("a patch that applied once applies again");
    assert_eq!(once, twice, "merge patch is not idempotent");
    // Nulls the document already had may stay; the patch itself never adds one.
    if !has_null_member(&doc) {
        assert!(
            !has_null_member(&once),
            "merge patch stored a null member: {once}"
        );
    }
});

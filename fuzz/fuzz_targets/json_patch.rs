//! RFC 6902 JSON patch (`application/json-patch+json`) applied to an arbitrary document.
//! Input: `<document JSON> NUL <patch JSON>` (see common.rs).
//!
//! Property: `json_patch` never panics, and a patch of no operations returns the document unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((doc, patch)) = common::document_and_patch(data) else {
        return;
    };
    let _ = gantry_patch::json_patch(&doc, &patch);
    let empty = serde_json::Value::Array(Vec::new());
    assert_eq!(gantry_patch::json_patch(&doc, &empty).ok(), Some(doc));
});

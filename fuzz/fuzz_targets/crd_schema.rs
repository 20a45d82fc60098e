//! A CustomResourceDefinition's structural schema (`gantry_crd::Schema`, an `openAPIV3Schema`) over a
//! custom resource: the structural checks of the raw schema, compiling it, and pruning, defaulting and
//! validating an object with it, as the API server does for custom resources; then the schema as
//! server-side apply sees it (`structural`, compiled by `gantry_apply`).
//! Input: `<schema JSON> NUL <object JSON>`; without a NUL the schema is `{}` and the whole input is the
//! object.
//!
//! Properties:
//! - `Schema::structural_errors`, `Schema::from_value`, and for a schema that compiles (structural or
//!   not) `unknown_fields`, `prune`, `apply_defaults`, `validate` and `structural`, and for a structural
//!   schema apply's `CompiledSchema::compile` of it and `fields_of` under that, never panic;
//! - `prune` removes exactly what `unknown_fields` reported before (the same paths, in the same order);
//!   after it `unknown_fields` is empty and a second `prune` removes nothing and changes nothing;
//! - `apply_defaults` is idempotent: defaulting twice equals defaulting once, for the object as sent and
//!   for the pruned object (the API server's order: prune, then default).
#![no_main]

use std::cell::RefCell;

use gantry_apply::{CompiledSchema, fields_of};
use gantry_crd::Schema;
use gantry_openapi::StructuralSchema;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "common.rs"]
mod common;

thread_local! {
    /// The last schema compiled for apply, which compiling parses the vendored definitions for again
    /// (milliseconds); most mutations change the object, not the schema.
    static COMPILED: RefCell<Option<(StructuralSchema, CompiledSchema)>> = const { RefCell::new(None) };
}

/// Defaults `object` once and twice; both must agree.
fn assert_defaults_idempotent(schema: &Schema, object: &Value, what: &str) -> Value {
    let mut once = object.clone();
    schema.apply_defaults(&mut once);
    let mut twice = once.clone();
    schema.apply_defaults(&mut twice);
    assert_eq!(
        twice, once,
        "defaulting the {what} object twice differs from once: {object}"
    );
    once
}

fuzz_target!(|data: &[u8]| {
    let Some((raw, object)) = common::document_and_patch(data) else {
        return;
    };
    let structural =
        Schema::structural_errors(&raw, "spec.versions[0].schema.openAPIV3Schema").is_empty();
    let Ok(schema) = Schema::from_value(&raw) else {
        return;
    };

    let unknown = schema.unknown_fields(&object);
    let mut pruned = object.clone();
    let removed = schema.prune(&mut pruned);
    assert_eq!(
        removed, unknown,
        "prune removes other fields than unknown_fields reports in {object}"
    );
    let left = schema.unknown_fields(&pruned);
    assert!(
        left.is_empty(),
        "unknown fields {left:?} survive pruning: {pruned}"
    );
    let mut again = pruned.clone();
    let removed_again = schema.prune(&mut again);
    assert!(
        removed_again.is_empty() && again == pruned,
        "a second prune removes {removed_again:?} from {pruned}"
    );

    assert_defaults_idempotent(&schema, &object, "sent");
    let defaulted = assert_defaults_idempotent(&schema, &pruned, "pruned");

    let _ = schema.validate(&object);
    let _ = schema.validate(&defaulted);

    let as_applied = schema.structural();
    // Only for structural schemas, the only ones a CRD may have.
    if structural {
        COMPILED.with_borrow_mut(|last| {
            if last
                .as_ref()
                .is_none_or(|(schema, _)| *schema != as_applied)
            {
                let compiled = CompiledSchema::compile(&as_applied);
                *last = Some((as_applied, compiled));
            }
            if let Some((_, compiled)) = last {
                let _ = fields_of(&defaulted, compiled);
            }
        });
    }
});

//! Server-side apply (`gantry_apply::apply`) of a configuration to a live object with its managed fields,
//! under a schema, force flag and field manager chosen by the first byte.
//! Input: `<selector byte> <live JSON> NUL <configuration JSON>`; a live `null` is a create (no object
//! yet), and without a NUL the live object is `{}`. The selector picks the schema (`selector % 5`: apps/v1
//! Deployment, v1 ConfigMap, v1 Service, v1 Pod, or `DeducedSchema` for a custom `example.com/v1` kind),
//! force (`selector / 5 % 2`) and the manager (`selector / 10 % 3`: `a`, `b`, or `kubectl`, whose
//! conflicts the last-applied annotation of client-side apply may excuse). The live object's
//! `metadata.managedFields` are its managed fields (undecodable ones count as none, as the API server
//! drops them).
//!
//! Properties:
//! - `apply`, and `update` with the configuration as the new object, never panic;
//! - with force an apply never fails with a conflict, and an apply that does fail with conflicts names one;
//! - a successful apply returns the object carrying exactly the managed fields it returns (compared as
//!   JSON, not decoded again: serde_json's default float parsing is not exact), and the
//!   manager's `Apply` entry holds exactly the configuration's fields (`fields_of`; no entry when that is
//!   empty), as `apply`'s documentation says;
//! - applying the same configuration again, by the same manager, without force, to the result with its
//!   managed fields succeeds (no conflicts) and changes nothing: the same object and the same managed
//!   fields, times (`metadata.managedFields[*].time`) aside. One exception, by design: a result without
//!   managed fields (an apply of no fields that also emptied every other entry) is untracked, and the
//!   next apply first hands what it holds to `before-first-apply` as for any untracked object; then only
//!   the object must be the same, and a third apply must change nothing.
//!
//! Those hold for every live value the engine accepts, objects or not (`apply` starts from `{}` only for
//! a create; a live array or string is merged into as it is).
//!
//! `GANTRY_FUZZ_DEBUG=1` prints what the apply answered (to see what a seed reaches).
#![no_main]

use std::sync::LazyLock;

use gantry_apply::{
    ApplyError, Context, DeducedSchema, ManagedFields, ManagedFieldsEntry, Operation, Schema,
    apply, fields_of, managed_for_update, schema_for, update,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "common.rs"]
mod common;

/// (apiVersion the request is for, the kind's schema), indexed by `selector % 5`.
static SCHEMAS: LazyLock<Vec<(&'static str, Box<dyn Schema>)>> = LazyLock::new(|| {
    let builtin = |group: &str, version: &str, kind: &str| -> Box<dyn Schema> {
        Box::new(schema_for(group, version, kind).expect("a vendored kind"))
    };
    vec![
        ("apps/v1", builtin("apps", "v1", "Deployment")),
        ("v1", builtin("", "v1", "ConfigMap")),
        ("v1", builtin("", "v1", "Service")),
        ("v1", builtin("", "v1", "Pod")),
        ("example.com/v1", Box::new(DeducedSchema)),
    ]
});

const MANAGERS: &[&str] = &["a", "b", "kubectl"];

/// The updater that owns what an untracked object holds when it is first applied to.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

const T0: &str = "2025-01-01T00:00:00Z";
const T1: &str = "2025-01-01T00:01:00Z";

/// The entries with their times cleared.
fn timeless(managed: &ManagedFields) -> Vec<ManagedFieldsEntry> {
    managed
        .entries()
        .iter()
        .cloned()
        .map(|mut e| {
            e.time = None;
            e
        })
        .collect()
}

/// The object without `metadata.managedFields`.
fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.remove("managedFields");
    }
    object
}

/// The object with `metadata.managedFields[*].time` removed.
fn without_times(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(Value::Array(entries)) = object.pointer_mut("/metadata/managedFields") {
        for entry in entries {
            if let Value::Object(entry) = entry {
                entry.remove("time");
            }
        }
    }
    object
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((live, config)) = common::document_and_patch(rest) else {
        return;
    };
    let selector = usize::from(selector);
    let (api_version, schema) = &SCHEMAS[selector % SCHEMAS.len()];
    let schema: &dyn Schema = schema.as_ref();
    let force = selector / 5 % 2 == 1;
    let manager = MANAGERS[selector / 10 % MANAGERS.len()];
    let live = (!live.is_null()).then_some(live);
    let managed = live
        .as_ref()
        .and_then(|l| ManagedFields::from_object(l).ok())
        .unwrap_or_default();
    let cx = Context {
        manager,
        api_version,
        subresource: "",
        schema,
        now: T0,
        reset: None,
    };

    // Every other write goes through `update`: the configuration as a PUT body.
    let _ = update(
        live.as_ref(),
        &config,
        &managed_for_update(live.as_ref(), &config, false),
        &cx,
    )
    .to_value();

    let applied = apply(live.as_ref(), &config, &managed, force, &cx);
    if std::env::var_os("GANTRY_FUZZ_DEBUG").is_some() {
        match &applied {
            Ok((object, _)) => eprintln!("{manager} (force {force}) applied: {object}"),
            Err(e) => eprintln!("{manager} (force {force}) failed: {e}"),
        }
    }
    let (object, managed) = match applied {
        Ok(applied) => applied,
        Err(ApplyError::Conflicts(conflicts)) => {
            assert!(!force, "a forced apply conflicts: {conflicts}");
            assert!(!conflicts.is_empty(), "an apply fails with no conflicts");
            let _ = conflicts.to_api_error().to_status();
            return;
        }
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };

    // Compared as JSON, not decoded: serde_json's default float parsing is not exact, so a list-map key
    // holding a float beyond 2^53 (`"port": 4.5555545555555554e108`) may decode from FieldsV1 one ulp off.
    assert_eq!(
        object.pointer("/metadata/managedFields"),
        (!managed.is_empty()).then(|| managed.to_value()).as_ref(),
        "the applied object does not carry the managed fields apply returns: {object}"
    );
    // Not `ManagedFields::get`, which ignores the subresource: the live object may hold an `Apply` entry
    // of the same manager through `/status`.
    let mine = managed
        .entries()
        .iter()
        .find(|e| e.is(manager, Operation::Apply, api_version, ""))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    assert_eq!(
        mine,
        fields_of(&config, schema),
        "the applier's entry is not the configuration's fields"
    );

    let cx = Context { now: T1, ..cx };
    let reapply = |object: &Value, managed: &ManagedFields| {
        apply(Some(object), &config, managed, false, &cx)
            .unwrap_or_else(|e| panic!("applying {config} again to its result fails: {e}"))
    };
    // An apply of nothing (only `apiVersion`, `kind`, `metadata.name`...) that also empties every other
    // entry leaves the object without managed fields: untracked, like an object never applied. The next
    // apply then first gives what it holds to `before-first-apply` (as upstream's first apply to such an
    // object does), and only the object is the same; from there on re-applying changes nothing.
    let (object, managed) = if managed.is_empty() {
        let (again, again_managed) = reapply(&object, &managed);
        assert!(
            again_managed
                .entries()
                .iter()
                .all(|e| e.manager == BEFORE_FIRST_APPLY && e.operation == Operation::Update),
            "applying {config} again to an untracked result records {:?}",
            again_managed.to_value()
        );
        assert_eq!(
            without_managed_fields(&again),
            object,
            "applying {config} twice changes the object"
        );
        (again, again_managed)
    } else {
        (object, managed)
    };
    let (again, again_managed) = reapply(&object, &managed);
    assert_eq!(
        without_times(&again),
        without_times(&object),
        "applying {config} twice changes the object"
    );
    assert_eq!(
        timeless(&again_managed),
        timeless(&managed),
        "applying {config} twice changes the managed fields"
    );
});

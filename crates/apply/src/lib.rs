//! Server-side apply without I/O, with Kubernetes' semantics (structured-merge-diff v4 as in 1.33 and the
//! apiserver's field manager): field paths and sets and their FieldsV1 spelling, `metadata.managedFields`,
//! merging applied configurations (map-lists by key, sets by value, atomic values replaced), removing what
//! an applier stopped applying, conflicts, ownership tracking for other writes, and the migration from
//! kubectl's client-side apply.
//!
//! - [`apply`]: a server-side apply (`PATCH` with `application/apply-patch+yaml`).
//! - [`update`]: every other write (create, update, patch) moves the fields it changed to its manager.
//! - [`managed_for_update`]: which managed fields an update starts from.
//! - [`schema_for`]: the kind's schema from the vendored OpenAPI definitions, or [`DeducedSchema`].
//!
//! Objects are `serde_json::Value`s as the API serves them. Times are RFC 3339 strings given by the caller.

mod conflict;
mod csa;
mod engine;
mod fieldpath;
mod managed;
mod manager;
mod schema;
mod typed;
mod value;

use std::fmt;

use serde_json::Value;

pub use conflict::{Conflict, Conflicts, FIELD_MANAGER_CONFLICT};
pub use engine::ApplyError;
pub use fieldpath::{FieldSet, FieldsV1Error, PathElement, path_string};
pub use managed::{
    LAST_APPLIED_ANNOTATION, ManagedFields, ManagedFieldsEntry, ManagedFieldsError, Operation,
    managed_for_update,
};
pub use manager::{FIELD_MANAGER_MAX_LENGTH, default_manager};
pub use schema::{
    CompiledSchema, DeducedSchema, Field, ListKind, Node, OpenApiSchema, ScalarKind, Schema, Shape,
    Struct, schema_for,
};

/// Who writes, through what, and when.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The field manager (`fieldManager`, or [`default_manager`]).
    pub manager: &'a str,
    /// The request's `group/version` (`apps/v1`, `v1`).
    pub api_version: &'a str,
    /// `""` for the main resource, else `status`, `scale`, …
    pub subresource: &'a str,
    /// The kind's schema.
    pub schema: &'a dyn Schema,
    /// The time recorded in entries that change, RFC 3339 (`2025-01-02T03:04:05Z`).
    pub now: &'a str,
    /// Fields this endpoint resets (upstream's reset fields): nobody owns them through it, and changes to
    /// them are not tracked. `status` for the main resource of kinds with a status subresource; `spec`
    /// and `metadata` for their `/status`.
    pub reset: Option<&'a FieldSet>,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("manager", &self.manager)
            .field("api_version", &self.api_version)
            .field("subresource", &self.subresource)
            .field("now", &self.now)
            .field("reset", &self.reset)
            .finish_non_exhaustive()
    }
}

/// A server-side apply of `config` by `cx.manager` to `live` (`None`: the object is created by it), with
/// the object's current managed fields. Returns the new object, carrying its new managed fields in
/// `metadata.managedFields`, and those fields.
///
/// The result is the live object with the configuration merged in, minus the fields the manager applied
/// last time, no longer applies, and no other manager owns. The manager's `Apply` entry becomes exactly
/// the configuration's fields (less `apiVersion`, `kind`, `metadata.name` and the like). Fields another
/// manager owns whose values would change are conflicts; with `force` they move to the applier instead.
/// Defaulting and validation of the result are the caller's.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    managed: &ManagedFields,
    force: bool,
    cx: &Context<'_>,
) -> Result<(Value, ManagedFields), ApplyError> {
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".to_owned(),
        ));
    }
    let version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if version != cx.api_version {
        return Err(ApplyError::BadRequest(format!(
            "Incorrect version specified in apply patch. Specified patch version: {version}, expected: {}",
            cx.api_version
        )));
    }
    let mut working = live.cloned().unwrap_or_else(engine::empty_object);
    if let Some(Value::Object(metadata)) = working.get_mut("metadata") {
        metadata.remove("managedFields");
    }
    let attempt = |force: bool| {
        let mut entries = managed.entries().to_vec();
        if entries.is_empty() {
            entries = engine::update_entries(None, &working, entries, csa::BEFORE_FIRST_APPLY, cx);
        }
        engine::apply_entries(&working, config, entries, force, cx)
    };
    let (mut object, entries) = match attempt(force) {
        Err(ApplyError::Conflicts(conflicts)) if cx.manager == csa::KUBECTL => {
            match csa::unexcused(&working, &conflicts, cx) {
                Some(rest) if rest.is_empty() => attempt(true)?,
                Some(rest) => return Err(ApplyError::Conflicts(rest)),
                None => return Err(ApplyError::Conflicts(conflicts)),
            }
        }
        other => other?,
    };
    if cx.manager == csa::KUBECTL {
        csa::update_last_applied(&mut object, config);
    }
    let managed = ManagedFields::new(entries);
    managed.write_to(&mut object);
    Ok((object, managed))
}

/// The managed fields after a non-apply write by `cx.manager` from `old` (`None`: a create) to `new`,
/// starting from `managed` (see [`managed_for_update`]). Everything that changed (added, modified,
/// removed) leaves the other managers; what was added or modified becomes the manager's `Update` entry.
/// An existing object without managed fields stays untracked until its first apply, as upstream. Call it
/// with `new` as it will be stored (after defaulting), then [`ManagedFields::write_to`] `new`.
pub fn update(
    old: Option<&Value>,
    new: &Value,
    managed: &ManagedFields,
    cx: &Context<'_>,
) -> ManagedFields {
    let has_uid = |o: &Value| {
        o.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .is_some_and(|u| !u.is_empty())
    };
    if managed.is_empty() && old.is_some_and(has_uid) {
        return ManagedFields::default();
    }
    let entries = engine::update_entries(old, new, managed.entries().to_vec(), cx.manager, cx);
    ManagedFields::new(entries)
}

/// The fields `object` owns as an applied configuration would: every leaf, list item and map key, less
/// `apiVersion`, `kind` and the server's `metadata` fields. Values the schema does not describe are
/// owned as deduced; list items without their keys are skipped.
pub fn fields_of(object: &Value, schema: &dyn Schema) -> FieldSet {
    typed::field_set(schema, object).difference(managed::strip_set())
}

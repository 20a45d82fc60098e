//! The bodies of a Kubernetes PATCH, applied to JSON objects: pure functions over `serde_json::Value`.
//!
//! - [`json_patch`] — `application/json-patch+json` (RFC 6902, as evanphx/json-patch v4 applies it)
//! - [`merge_patch`] — `application/merge-patch+json` (RFC 7386)
//! - [`strategic_merge_patch`] — `application/strategic-merge-patch+json`, with list merge keys from a
//!   [`PatchSchema`] such as [`BuiltinSchema`]
//!
//! Errors carry the HTTP status Kubernetes answers with ([`PatchError::code`]).

mod error;
mod json_patch;
mod merge_patch;
mod schema;
mod strategic;

pub use error::PatchError;
pub use json_patch::{MAX_ACCUMULATED_COPY_BYTES, MAX_JSON_PATCH_OPERATIONS, json_patch};
pub use merge_patch::merge_patch;
pub use schema::{BuiltinSchema, FieldStrategy, NoSchema, PatchSchema};
pub use strategic::strategic_merge_patch;

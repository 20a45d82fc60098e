//! The API server's core, free of I/O: Kubernetes `Status` errors ([`status`]), field errors ([`field`]),
//! label selectors ([`labels`]), field selectors ([`fields`]) and name/metadata validation ([`validation`]).
//! Each follows Kubernetes' apimachinery (1.33): same syntax, same matching, same error messages.

pub mod convert;
pub mod cron;
pub mod defaults;
pub mod duplicates;
pub mod field;
pub mod fields;
pub mod labels;
pub mod quota;
pub mod registry;
pub mod status;
pub mod table;
pub mod validate;
pub mod validation;

pub use status::{ApiError, GroupKind, GroupResource};

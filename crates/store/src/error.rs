use bytes::Bytes;

use crate::{KeyValue, Revision};

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What can go wrong in a store. The API server maps each to a Kubernetes `Status`:
/// `AlreadyExists` 409, `NotFound` 404, `Conflict` 409, `Compacted` 410 Gone, `FutureRevision` 504 (Kubernetes'
/// "Too large resource version"), `InvalidArgument` 400, `Unavailable` 503, `Internal` 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("key {} already exists", show_key(key))]
    AlreadyExists { key: Bytes },

    #[error("key {} not found", show_key(key))]
    NotFound { key: Bytes },

    #[error(
        "key {} was modified: expected mod revision {expected}, found {}",
        show_key(key),
        current.mod_revision
    )]
    Conflict {
        key: Bytes,
        expected: Revision,
        current: Box<KeyValue>,
    },

    #[error("revision {requested} has been compacted; the oldest readable revision is {compacted}")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },

    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The backend cannot serve now but may later: etcd down, disk full, database locked by another process.
    #[error("store unavailable: {0}")]
    Unavailable(String),

    /// The backend failed in a way retrying will not fix: a corrupt database, an unexpected reply.
    #[error("store failure: {0}")]
    Internal(String),
}

/// Keys are bytes; show them as text where they are printable and escaped where they are not.
pub(crate) fn show_key(key: &[u8]) -> String {
    format!("\"{}\"", key.escape_ascii())
}

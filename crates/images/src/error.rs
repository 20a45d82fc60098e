//! The one error type of the image store.

use std::io;
use std::path::{Path, PathBuf};

/// What can go wrong in the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not an image reference.
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },
    /// No such image: locally, or in its registry.
    #[error("image {reference} not found{}", detail_suffix(.detail))]
    NotFound { reference: String, detail: String },
    /// The registry refused or failed a request.
    #[error("pulling {reference}: {message}")]
    Registry { reference: String, message: String },
    /// Content does not hash to the digest that names it.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// An image, manifest, index, config or layer that cannot be used.
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    /// A layer entry that would land outside its layer directory.
    #[error("layer entry {entry:?} refused: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    /// A file operation failed.
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl std::fmt::Display) -> Error {
        Error::Invalid {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// Attaches the path an I/O error happened at.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

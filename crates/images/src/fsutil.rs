//! Crash-safe file operations: durable atomic replace, directory syncs, locks.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one: a temporary
/// file in `tmp` (same filesystem), fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = tempfile::NamedTempFile::new_in(tmp).at(tmp)?;
    file.write_all(bytes).at(file.path())?;
    file.as_file().sync_all().at(file.path())?;
    file.persist(path).map_err(|e| e.error).at(path)?;
    sync_parent(path)
}

/// Makes a rename or unlink in `path`'s directory durable.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Flushes every dirty file of the filesystem holding `dir`: one call instead of an fsync per file
/// of an unpacked layer.
pub(crate) fn sync_filesystem(dir: &Path) -> Result<()> {
    let d = File::open(dir).at(dir)?;
    rustix::fs::syncfs(&d).map_err(std::io::Error::from).at(dir)
}

/// Removes a file or a whole tree; absent is fine.
pub(crate) fn remove_any(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}

/// An exclusive `flock` on a file, released on drop. Taken per operation, so it also excludes the
/// other threads of this process.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

impl Lock {
    pub(crate) fn exclusive(path: &Path) -> Result<Lock> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .at(path)?;
        file.lock().at(path)?;
        Ok(Lock { _file: file })
    }

    /// `None` when another holder has it.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<Lock>> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .at(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e).at(path),
        }
    }
}

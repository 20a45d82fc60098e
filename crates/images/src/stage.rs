//! A staging directory under `tmp/` where a pull or an import puts new blobs and unpacked layers
//! before they are committed. A stage holds a lock file for its life; one whose lock is free at
//! [`ImageStore::open`](crate::ImageStore::open) was left by a crash and is deleted.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Hasher, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::Lock;
use crate::unpack;

pub(crate) const STAGE_PREFIX: &str = "stage-";
pub(crate) const STAGE_LOCK: &str = ".lock";

/// New blobs and layers, verified, waiting in a temporary directory.
#[derive(Debug)]
pub(crate) struct Stage {
    dir: tempfile::TempDir,
    _lock: Lock,
    pub(crate) blobs: Vec<(Digest, PathBuf)>,
    /// `(diff_id, directory, unpacked bytes)`
    pub(crate) layers: Vec<(Digest, PathBuf, u64)>,
    next: usize,
}

impl Stage {
    /// Call with the store lock held, so that cleanup never sees a stage before its lock.
    pub(crate) fn create(tmp: &Path) -> Result<Stage> {
        let dir = tempfile::Builder::new()
            .prefix(STAGE_PREFIX)
            .tempdir_in(tmp)
            .at(tmp)?;
        let lock = Lock::exclusive(&dir.path().join(STAGE_LOCK))?;
        Ok(Stage {
            dir,
            _lock: lock,
            blobs: Vec::new(),
            layers: Vec::new(),
            next: 0,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh path inside the stage.
    pub(crate) fn new_path(&mut self, kind: &str) -> PathBuf {
        self.next += 1;
        self.dir.path().join(format!("{kind}-{}", self.next))
    }

    /// The staged copy of a blob, if any.
    pub(crate) fn blob(&self, digest: &Digest) -> Option<&Path> {
        self.blobs
            .iter()
            .find(|(d, _)| d == digest)
            .map(|(_, p)| p.as_path())
    }

    pub(crate) fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layers.iter().any(|(d, _, _)| d == diff_id)
    }

    /// Stages `bytes` as a blob that must hash to `expected`.
    pub(crate) fn write_blob(&mut self, bytes: &[u8], expected: &Digest, what: &str) -> Result<()> {
        let actual = Digest::of(bytes);
        check(what, expected, &actual)?;
        if self.blob(expected).is_none() {
            let path = self.new_path("blob");
            fs::write(&path, bytes).at(&path)?;
            self.blobs.push((actual, path));
        }
        Ok(())
    }

    /// Stages a copy of the file at `src`, which must hash to `expected`.
    pub(crate) fn copy_blob(&mut self, src: &Path, expected: &Digest, what: &str) -> Result<()> {
        if self.blob(expected).is_some() {
            return Ok(());
        }
        let path = self.new_path("blob");
        let mut out = HashingWriter {
            inner: File::create(&path).at(&path)?,
            hasher: Hasher::new(),
        };
        io::copy(&mut File::open(src).at(src)?, &mut out).at(src)?;
        check(what, expected, &out.hasher.finish())?;
        self.blobs.push((expected.clone(), path));
        Ok(())
    }

    /// Registers a blob a caller wrote to a [`Stage::new_path`] and verified.
    pub(crate) fn add_blob(&mut self, digest: Digest, path: PathBuf) {
        self.blobs.push((digest, path));
    }

    /// Unpacks the layer blob at `blob` into the stage; its uncompressed tar must hash to `diff_id`.
    pub(crate) fn unpack(&mut self, blob: &Path, diff_id: &Digest) -> Result<()> {
        self.unpack_from(unpack::open_layer(blob)?, diff_id)
    }

    /// Unpacks an uncompressed layer tar stream into the stage.
    pub(crate) fn unpack_from(&mut self, tar: impl Read, diff_id: &Digest) -> Result<()> {
        if self.has_layer(diff_id) {
            return Ok(());
        }
        let dir = self.new_path("layer");
        fs::create_dir(&dir).at(&dir)?;
        let unpacked = unpack::unpack_tar(tar, &dir)?;
        check(&format!("layer {diff_id}"), diff_id, &unpacked.diff_id)?;
        self.layers.push((unpacked.diff_id, dir, unpacked.size));
        Ok(())
    }
}

pub(crate) fn check(what: &str, expected: &Digest, actual: &Digest) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            what: what.to_owned(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

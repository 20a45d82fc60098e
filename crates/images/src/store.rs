//! The store on disk and its bookkeeping.
//!
//! ```text
//! ROOT/lock                 flock held by every change
//! ROOT/refs.json            {"docker.io/library/busybox:latest": "sha256:<image id>", …}
//! ROOT/images/<hex>.json    one record per image (id = config digest)
//! ROOT/blobs/sha256/<hex>   manifests, configs, layer blobs, verified
//! ROOT/layers/<hex>/        each layer unpacked once, named by diff_id, shared by images
//! ROOT/tmp/                 stages of pulls and imports, temporary files, trash
//! ```
//!
//! New content is staged and synced in `tmp/`, then renamed into place under the lock; the record
//! is written after its blobs and layers, and `refs.json` after the record, each by atomic
//! rename. A crash therefore leaves at worst unreferenced blobs and layers, which
//! [`ImageStore::open`] removes, and stages, which it deletes.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, Lock};
use crate::image::{Image, ImageRecord};
use crate::reference::Reference;
use crate::stage::Stage;

/// The node's images: content-addressed blobs, unpacked layers, image records and their names.
/// Cheap to clone; every clone (and every process) on the same root sees the same store. Methods
/// other than [`ImageStore::pull`] do blocking file I/O and take a file lock: from async code,
/// call them in `spawn_blocking`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

pub(crate) type Refs = BTreeMap<String, Digest>;

impl ImageStore {
    /// Opens (creating it if needed) the store at `root`, deleting what a crash left behind.
    pub fn open(root: &Path) -> Result<ImageStore> {
        let store = ImageStore {
            root: root.to_path_buf(),
        };
        for dir in [
            store.tmp_dir(),
            store.images_dir(),
            store.blobs_dir(),
            store.layers_dir(),
        ] {
            fs::create_dir_all(&dir).at(&dir)?;
        }
        let _lock = store.lock()?;
        store.clean_tmp()?;
        store.sweep()?;
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The unpacked layer directories of `image`, lowest layer first (overlayfs wants `lowerdir`
    /// top first: reverse them).
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image.layers.iter().map(|d| self.layer_path(d)).collect()
    }

    /// Every image, with its references.
    pub fn list(&self) -> Result<Vec<Image>> {
        let refs = self.read_refs()?;
        let mut images: Vec<Image> = self
            .records()?
            .into_iter()
            .map(|record| {
                let tags = tags_of(&refs, &record.id);
                record.image(tags)
            })
            .collect();
        images.sort_by(|a, b| a.repo_tags.cmp(&b.repo_tags).then_with(|| a.id.cmp(&b.id)));
        Ok(images)
    }

    /// The image `reference` names: a stored reference, or a digest one of its repositories had.
    pub fn get(&self, reference: &Reference) -> Result<Option<Image>> {
        let refs = self.read_refs()?;
        let record = match refs.get(&reference.to_string()) {
            Some(id) => self.read_record(id)?,
            None => self.find_by_repo_digest(reference)?,
        };
        Ok(record.map(|r| {
            let tags = tags_of(&refs, &r.id);
            r.image(tags)
        }))
    }

    /// The image with this id.
    pub fn image(&self, id: &Digest) -> Result<Option<Image>> {
        let refs = self.read_refs()?;
        Ok(self.read_record(id)?.map(|r| r.image(tags_of(&refs, id))))
    }

    /// Marks the image used now, for the least-recently-used order of [`ImageStore::gc`].
    pub fn touch(&self, id: &Digest) -> Result<()> {
        let _lock = self.lock()?;
        let mut record = self
            .read_record(id)?
            .ok_or_else(|| not_found(id.as_str()))?;
        record.last_used = now();
        self.write_record(&record)
    }

    /// Bytes used by blobs and unpacked layers.
    pub fn usage(&self) -> Result<u64> {
        let mut total = 0;
        let blobs = self.blobs_dir();
        for entry in fs::read_dir(&blobs).at(&blobs)? {
            total += entry.and_then(|e| e.metadata()).at(&blobs)?.len();
        }
        let mut seen = HashSet::new();
        for record in self.records()? {
            for layer in record.layers {
                if seen.insert(layer.diff_id) {
                    total += layer.unpacked_size;
                }
            }
        }
        Ok(total)
    }

    // ---- paths

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub(crate) fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    pub(crate) fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(diff_id.hex())
    }

    pub(crate) fn record_path(&self, id: &Digest) -> PathBuf {
        self.images_dir().join(format!("{}.json", id.hex()))
    }

    pub(crate) fn refs_path(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn lock(&self) -> Result<Lock> {
        Lock::exclusive(&self.root.join("lock"))
    }

    /// A new stage for a pull or an import.
    pub(crate) fn stage(&self) -> Result<Stage> {
        let _lock = self.lock()?;
        Stage::create(&self.tmp_dir())
    }

    /// A committed blob or one in `stage`.
    pub(crate) fn find_blob(&self, stage: &Stage, digest: &Digest) -> Option<PathBuf> {
        if let Some(p) = stage.blob(digest) {
            return Some(p.to_path_buf());
        }
        let path = self.blob_path(digest);
        path.exists().then_some(path)
    }

    // ---- records and refs

    pub(crate) fn read_refs(&self) -> Result<Refs> {
        let path = self.refs_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::invalid(path.display().to_string(), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Refs::new()),
            Err(e) => Err(e).at(&path),
        }
    }

    pub(crate) fn write_refs(&self, refs: &Refs) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(refs).map_err(|e| Error::invalid("refs", e))?;
        fsutil::write_atomic(&self.tmp_dir(), &self.refs_path(), &bytes)
    }

    pub(crate) fn read_record(&self, id: &Digest) -> Result<Option<ImageRecord>> {
        let path = self.record_path(id);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::invalid(path.display().to_string(), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(&path),
        }
    }

    pub(crate) fn write_record(&self, record: &ImageRecord) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(record).map_err(|e| Error::invalid("image record", e))?;
        fsutil::write_atomic(&self.tmp_dir(), &self.record_path(&record.id), &bytes)
    }

    /// Every readable record; unreadable ones are logged and skipped.
    pub(crate) fn records(&self) -> Result<Vec<ImageRecord>> {
        let dir = self.images_dir();
        let mut records = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let name = entry.at(&dir)?.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(Digest::from_hex)
            else {
                continue;
            };
            match self.read_record(&id) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "skipping unreadable image record"),
            }
        }
        Ok(records)
    }

    pub(crate) fn find_by_repo_digest(&self, reference: &Reference) -> Result<Option<ImageRecord>> {
        let Some(digest) = reference.digest() else {
            return Ok(None);
        };
        let wanted = format!("{}@{digest}", reference.name());
        Ok(self
            .records()?
            .into_iter()
            .find(|r| r.repo_digests.contains(&wanted)))
    }
}

pub(crate) fn tags_of(refs: &Refs, id: &Digest) -> Vec<String> {
    refs.iter()
        .filter(|(_, v)| *v == id)
        .map(|(k, _)| k.clone())
        .collect()
}

pub(crate) fn not_found(reference: &str) -> Error {
    Error::NotFound {
        reference: reference.to_owned(),
        detail: String::new(),
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

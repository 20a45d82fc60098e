//! Removing images: by reference, by garbage collection, and what a crash left behind.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::fsutil::{self, Lock};
use crate::image::ImageRecord;
use crate::reference::Reference;
use crate::stage::{STAGE_LOCK, STAGE_PREFIX};
use crate::store::{ImageStore, not_found, tags_of};

/// What [`ImageStore::remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// The references dropped.
    pub untagged: Vec<String>,
    /// The image deleted, when no reference to it was left.
    pub deleted: Option<Digest>,
}

/// What [`ImageStore::gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The images deleted, least recently used first.
    pub deleted: Vec<Digest>,
    /// Bytes of blobs and unpacked layers removed.
    pub freed: u64,
}

impl ImageStore {
    /// Drops `reference`. The image goes too when nothing names it any more, with the blobs and
    /// layers no other image uses. A digest reference matching an image's repo digest drops
    /// every reference to that image.
    pub fn remove(&self, reference: &Reference) -> Result<Removal> {
        let _lock = self.lock()?;
        let mut refs = self.read_refs()?;
        let key = reference.to_string();
        let mut removal = Removal::default();
        let id = if let Some(id) = refs.remove(&key) {
            removal.untagged.push(key);
            id
        } else {
            let id = self
                .find_by_repo_digest(reference)?
                .ok_or_else(|| not_found(&key))?
                .id;
            removal.untagged = tags_of(&refs, &id);
            refs.retain(|_, v| v != &id);
            id
        };
        self.write_refs(&refs)?;
        if !refs.values().any(|v| v == &id) {
            self.delete_image(&id)?;
            removal.deleted = Some(id);
        }
        Ok(removal)
    }

    /// Deletes images not in `in_use`, least recently used first, until `bytes_to_free` bytes are
    /// freed or none is left to delete. Their references go with them.
    pub fn gc(&self, bytes_to_free: u64, in_use: &HashSet<Digest>) -> Result<GcReport> {
        let _lock = self.lock()?;
        let mut candidates: Vec<ImageRecord> = self
            .records()?
            .into_iter()
            .filter(|r| !in_use.contains(&r.id))
            .collect();
        candidates.sort_by_key(|r| (r.last_used, r.id.clone()));
        let mut report = GcReport::default();
        for record in candidates {
            if report.freed >= bytes_to_free {
                break;
            }
            let mut refs = self.read_refs()?;
            refs.retain(|_, id| id != &record.id);
            self.write_refs(&refs)?;
            report.freed += self.delete_image(&record.id)?;
            report.deleted.push(record.id);
        }
        Ok(report)
    }

    /// Deletes the record, then the blobs and layers no other record uses. Returns bytes freed.
    fn delete_image(&self, id: &Digest) -> Result<u64> {
        let Some(record) = self.read_record(id)? else {
            return Ok(0);
        };
        let path = self.record_path(id);
        fs::remove_file(&path).at(&path)?;
        fsutil::sync_parent(&path)?;
        let others = self.records()?;
        let used_blobs: HashSet<&Digest> = others.iter().flat_map(ImageRecord::blobs).collect();
        let used_layers: HashSet<&Digest> = others
            .iter()
            .flat_map(|r| r.layers.iter().map(|l| &l.diff_id))
            .collect();
        let mut freed = 0;
        for blob in record.blobs().filter(|b| !used_blobs.contains(b)) {
            let path = self.blob_path(blob);
            freed += fs::metadata(&path).map_or(0, |m| m.len());
            fsutil::remove_any(&path)?;
        }
        for layer in record
            .layers
            .iter()
            .filter(|l| !used_layers.contains(&l.diff_id))
        {
            freed += layer.unpacked_size;
            self.trash(&self.layer_path(&layer.diff_id))?;
        }
        Ok(freed)
    }

    /// Removes a layer directory: first renamed into `tmp/` (atomic, so a crash never leaves a
    /// half-deleted layer under its name), then deleted.
    fn trash(&self, path: &Path) -> Result<()> {
        let trash = tempfile::Builder::new()
            .prefix("trash-")
            .tempdir_in(self.tmp_dir())
            .at(&self.tmp_dir())?;
        let dest = trash.path().join("layer");
        match fs::rename(path, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).at(path),
        }
        fsutil::sync_parent(path)?;
        drop(trash);
        Ok(())
    }

    /// Deletes what crashed writers left in `tmp/`: stages whose lock is free, temporary files, trash.
    pub(crate) fn clean_tmp(&self) -> Result<()> {
        let tmp = self.tmp_dir();
        for entry in fs::read_dir(&tmp).at(&tmp)? {
            let path = entry.at(&tmp)?.path();
            let is_stage = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(STAGE_PREFIX));
            if is_stage && path.is_dir() {
                match Lock::try_exclusive(&path.join(STAGE_LOCK))? {
                    Some(_held) => {}
                    None => continue,
                }
            }
            tracing::info!(path = %path.display(), "removing leftover of an interrupted pull or import");
            fsutil::remove_any(&path)?;
        }
        Ok(())
    }

    /// Drops references to missing images and deletes blobs and layers no record uses (left by a
    /// crash between moving them into place and writing their record).
    pub(crate) fn sweep(&self) -> Result<()> {
        let records = self.records()?;
        let mut refs = self.read_refs()?;
        let before = refs.len();
        refs.retain(|_, id| records.iter().any(|r| &r.id == id));
        if refs.len() != before {
            self.write_refs(&refs)?;
        }
        let blobs: HashSet<&Digest> = records.iter().flat_map(ImageRecord::blobs).collect();
        let layers: HashSet<&Digest> = records
            .iter()
            .flat_map(|r| r.layers.iter().map(|l| &l.diff_id))
            .collect();
        for (dir, used) in [(self.blobs_dir(), &blobs), (self.layers_dir(), &layers)] {
            for entry in fs::read_dir(&dir).at(&dir)? {
                let path = entry.at(&dir)?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(Digest::from_hex);
                if name.is_some_and(|d| used.contains(&d)) {
                    continue;
                }
                tracing::info!(path = %path.display(), "removing content no image uses");
                if path.is_dir() {
                    self.trash(&path)?
                } else {
                    fsutil::remove_any(&path)?
                }
            }
        }
        Ok(())
    }
}

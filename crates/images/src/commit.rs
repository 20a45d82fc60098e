//! Moving staged content into the store and recording the images it makes.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::fsutil;
use crate::image::{Image, ImageRecord, LayerRecord};
use crate::reference::Reference;
use crate::stage::{Stage, check};
use crate::store::{ImageStore, now, tags_of};

/// An image about to be committed.
#[derive(Debug)]
pub(crate) struct NewImage {
    pub(crate) record: ImageRecord,
    pub(crate) names: Vec<Reference>,
}

/// A layer of an image being staged: where its blob is, and what its uncompressed tar hashes to.
#[derive(Debug)]
pub(crate) struct LayerSource {
    pub(crate) diff_id: Digest,
    pub(crate) blob: Option<Digest>,
    pub(crate) blob_size: u64,
    /// The blob or tar to unpack when the layer is not unpacked yet.
    pub(crate) file: PathBuf,
}

impl ImageStore {
    /// Stages `bytes` as the blob `digest` (checked) unless the store or stage has it.
    pub(crate) fn stage_blob(
        &self,
        stage: &mut Stage,
        bytes: &[u8],
        digest: &Digest,
        what: &str,
    ) -> Result<()> {
        if self.find_blob(stage, digest).is_some() {
            return check(what, digest, &Digest::of(bytes));
        }
        stage.write_blob(bytes, digest, what)
    }

    /// Unpacks the layers neither the store nor the stage has yet.
    pub(crate) fn stage_layers(
        &self,
        stage: &mut Stage,
        sources: Vec<LayerSource>,
    ) -> Result<Vec<LayerRecord>> {
        let mut records = Vec::with_capacity(sources.len());
        for source in sources {
            let staged = |stage: &Stage| {
                stage
                    .layers
                    .iter()
                    .find(|(d, _, _)| d == &source.diff_id)
                    .map(|(_, _, size)| *size)
            };
            let unpacked_size = match staged(stage) {
                Some(size) => size,
                None if self.layer_path(&source.diff_id).is_dir() => {
                    self.layer_size(&source.diff_id)?
                }
                None => {
                    stage.unpack(&source.file, &source.diff_id)?;
                    staged(stage).unwrap_or_default()
                }
            };
            records.push(LayerRecord {
                diff_id: source.diff_id,
                blob: source.blob,
                blob_size: source.blob_size,
                unpacked_size,
            });
        }
        Ok(records)
    }

    /// Moves the stage's blobs and layers into place and records `images`. `None` when something
    /// the images rely on and that was already in the store has since been removed: stage again.
    pub(crate) fn commit(&self, stage: Stage, images: Vec<NewImage>) -> Result<Option<Vec<Image>>> {
        let _lock = self.lock()?;
        if !stage.blobs.is_empty() || !stage.layers.is_empty() {
            // One syncfs makes every staged file durable before it becomes visible.
            fsutil::sync_filesystem(stage.path())?;
            for (digest, path) in &stage.blobs {
                let dest = self.blob_path(digest);
                if !dest.exists() {
                    fs::rename(path, &dest).at(&dest)?;
                }
            }
            for (diff_id, path, _) in &stage.layers {
                let dest = self.layer_path(diff_id);
                if !dest.exists() {
                    fs::rename(path, &dest).at(&dest)?;
                }
            }
            fsutil::sync_dir(&self.blobs_dir())?;
            fsutil::sync_dir(&self.layers_dir())?;
        }
        let complete = images.iter().all(|image| {
            image.record.blobs().all(|b| self.blob_path(b).is_file())
                && image
                    .record
                    .layers
                    .iter()
                    .all(|l| self.layer_path(&l.diff_id).is_dir())
        });
        if !complete {
            return Ok(None);
        }
        let mut refs = self.read_refs()?;
        let mut ids = Vec::new();
        for NewImage { mut record, names } in images {
            if let Some(old) = self.read_record(&record.id)? {
                let mut digests: BTreeSet<String> = old.repo_digests.into_iter().collect();
                digests.extend(record.repo_digests);
                record.repo_digests = digests.into_iter().collect();
                record.manifest = record.manifest.or(old.manifest);
                // A docker-archive import keeps no layer blobs: keep those an earlier pull had.
                for (layer, old_layer) in record.layers.iter_mut().zip(old.layers) {
                    if layer.blob.is_none() && old_layer.diff_id == layer.diff_id {
                        layer.blob = old_layer.blob;
                        layer.blob_size = old_layer.blob_size;
                    }
                }
            }
            record.last_used = now();
            self.write_record(&record)?;
            for name in names {
                refs.insert(name.to_string(), record.id.clone());
            }
            ids.push(record);
        }
        self.write_refs(&refs)?;
        Ok(Some(
            ids.into_iter()
                .map(|r| r.image(tags_of(&refs, &r.id)))
                .collect(),
        ))
    }

    /// Unpacked size of a committed layer, from any record that has it.
    pub(crate) fn layer_size(&self, diff_id: &Digest) -> Result<u64> {
        Ok(self
            .records()?
            .iter()
            .flat_map(|r| &r.layers)
            .find(|l| &l.diff_id == diff_id)
            .map_or(0, |l| l.unpacked_size))
    }
}

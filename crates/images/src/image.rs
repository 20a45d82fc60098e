//! What the store knows about an image: the on-disk record and the public view of it.

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The config digest: the image id.
    pub id: Digest,
    /// The references naming it (`docker.io/library/busybox:latest`, or `…@sha256:` when pulled by digest).
    pub repo_tags: Vec<String>,
    /// `registry/repository@<manifest digest>` for each repository it came from.
    pub repo_digests: Vec<String>,
    /// Layer `diff_id`s, lowest first.
    pub layers: Vec<Digest>,
    /// Bytes of file content in its layers (shared layers counted in full).
    pub size: u64,
    /// Milliseconds since the epoch when it was stored or last marked used.
    pub last_used: u64,
    /// How to run it.
    pub config: ImageConfig,
}

/// The parts of the image config the node agent uses to run containers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `80/tcp`, `53/udp`, … sorted.
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub os: String,
    pub architecture: String,
}

impl ImageConfig {
    /// Reads a config blob (OCI or Docker's, which has the same fields).
    pub(crate) fn parse(bytes: &[u8]) -> Result<(ImageConfig, Vec<Digest>)> {
        let config: ImageConfiguration =
            serde_json::from_slice(bytes).map_err(|e| Error::invalid("image config", e))?;
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse())
            .collect::<Result<Vec<Digest>>>()?;
        let run = config.config().clone().unwrap_or_default();
        let sorted = |v: &Option<Vec<String>>| {
            let mut v = v.clone().unwrap_or_default();
            v.sort();
            v
        };
        let image = ImageConfig {
            entrypoint: run.entrypoint().clone().unwrap_or_default(),
            cmd: run.cmd().clone().unwrap_or_default(),
            env: run.env().clone().unwrap_or_default(),
            working_dir: run.working_dir().clone().filter(|w| !w.is_empty()),
            user: run.user().clone().filter(|u| !u.is_empty()),
            exposed_ports: sorted(run.exposed_ports()),
            volumes: sorted(run.volumes()),
            labels: run
                .labels()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            stop_signal: run.stop_signal().clone(),
            os: config.os().to_string(),
            architecture: config.architecture().to_string(),
        };
        Ok((image, diff_ids))
    }
}

/// One layer of a stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LayerRecord {
    pub(crate) diff_id: Digest,
    /// The (usually compressed) blob it came in; none for docker-archive imports, whose
    /// uncompressed tars are not kept.
    pub(crate) blob: Option<Digest>,
    pub(crate) blob_size: u64,
    pub(crate) unpacked_size: u64,
}

/// `images/<id hex>.json`: everything about an image but its names (those are in `refs.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageRecord {
    pub(crate) id: Digest,
    pub(crate) manifest: Option<Digest>,
    pub(crate) repo_digests: Vec<String>,
    pub(crate) layers: Vec<LayerRecord>,
    pub(crate) config: ImageConfig,
    pub(crate) last_used: u64,
}

impl ImageRecord {
    /// Every blob the image holds on to: config, manifest, layer blobs.
    pub(crate) fn blobs(&self) -> impl Iterator<Item = &Digest> {
        std::iter::once(&self.id)
            .chain(self.manifest.iter())
            .chain(self.layers.iter().filter_map(|l| l.blob.as_ref()))
    }

    pub(crate) fn image(&self, repo_tags: Vec<String>) -> Image {
        Image {
            id: self.id.clone(),
            repo_tags,
            repo_digests: self.repo_digests.clone(),
            layers: self.layers.iter().map(|l| l.diff_id.clone()).collect(),
            size: self.layers.iter().map(|l| l.unpacked_size).sum(),
            last_used: self.last_used,
            config: self.config.clone(),
        }
    }
}

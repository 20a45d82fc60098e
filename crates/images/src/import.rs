//! `gantry image import`: OCI image layouts (directories or tars) and `docker save` archives.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::commit::{LayerSource, NewImage};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::{Image, ImageConfig, ImageRecord};
use crate::platform;
use crate::reference::Reference;
use crate::stage::{Stage, check};
use crate::store::ImageStore;
use crate::unpack::Compression;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// One image of a `docker save` archive's `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl ImageStore {
    /// Imports every image in an OCI image layout (a directory, or a tar of one) or a `docker
    /// save` archive (tar, plain or gzip) and names it by its annotations or `RepoTags`. An OCI
    /// `ref.name` that is a bare tag (`latest`) names no repository, so that image is imported
    /// without a name (reachable by id). Multi-platform indexes import the host's platform.
    pub fn import(&self, path: &Path) -> Result<Vec<Image>> {
        for _ in 0..3 {
            let mut stage = self.stage()?;
            let images = if path.is_dir() {
                self.stage_dir(&mut stage, path)?
            } else {
                let dir = stage.new_path("archive");
                extract(path, &dir)?;
                self.stage_dir(&mut stage, &dir)?
            };
            if let Some(images) = self.commit(stage, images)? {
                return Ok(images);
            }
        }
        Err(Error::invalid(
            path.display().to_string(),
            "the store kept changing during the import; try again",
        ))
    }

    fn stage_dir(&self, stage: &mut Stage, dir: &Path) -> Result<Vec<NewImage>> {
        if dir.join("index.json").is_file() {
            self.stage_layout(stage, dir)
        } else if dir.join("manifest.json").is_file() {
            self.stage_archive(stage, dir)
        } else {
            Err(Error::invalid(
                dir.display().to_string(),
                "neither an OCI image layout (index.json) nor a docker-archive (manifest.json)",
            ))
        }
    }

    fn stage_layout(&self, stage: &mut Stage, dir: &Path) -> Result<Vec<NewImage>> {
        let index: ImageIndex = read_json(&dir.join("index.json"))?;
        let mut images = Vec::new();
        for entry in index.manifests() {
            if platform::is_foreign(entry) {
                continue;
            }
            let names = names(entry.annotations().as_ref())?;
            let digest: Digest = entry.digest().to_string().parse()?;
            let bytes = read_blob(dir, &digest)?;
            let manifest = if is_index(entry.media_type().as_ref(), &bytes) {
                let nested: ImageIndex = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::invalid(format!("index {digest}"), e))?;
                let chosen = platform::select(nested.manifests()).ok_or_else(|| {
                    Error::invalid(
                        format!("index {digest}"),
                        format!(
                            "no linux/{} image; it has {}",
                            platform::host_architecture(),
                            platform::offered(nested.manifests())
                        ),
                    )
                })?;
                chosen.digest().to_string().parse()?
            } else {
                digest
            };
            images.push(self.stage_layout_image(stage, dir, &manifest, names)?);
        }
        if images.is_empty() {
            return Err(Error::invalid(
                dir.display().to_string(),
                format!(
                    "no linux/{} image in index.json",
                    platform::host_architecture()
                ),
            ));
        }
        Ok(images)
    }

    fn stage_layout_image(
        &self,
        stage: &mut Stage,
        dir: &Path,
        digest: &Digest,
        names: Vec<Reference>,
    ) -> Result<NewImage> {
        let bytes = read_blob(dir, digest)?;
        let manifest: ImageManifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(format!("manifest {digest}"), e))?;
        self.stage_blob(stage, &bytes, digest, "manifest")?;
        let config_digest: Digest = manifest.config().digest().to_string().parse()?;
        let config_bytes = read_blob(dir, &config_digest)?;
        self.stage_blob(stage, &config_bytes, &config_digest, "config")?;
        let (config, diff_ids) = ImageConfig::parse(&config_bytes)?;
        let layers = layer_pairs(manifest.layers(), diff_ids)?;
        let mut sources = Vec::new();
        for (blob, size, diff_id) in layers {
            if self.find_blob(stage, &blob).is_none() {
                stage.copy_blob(&blob_path(dir, &blob), &blob, &format!("layer blob {blob}"))?;
            }
            let file = self.find_blob(stage, &blob).unwrap_or_default();
            sources.push(LayerSource {
                diff_id,
                blob: Some(blob),
                blob_size: size,
                file,
            });
        }
        let layers = self.stage_layers(stage, sources)?;
        Ok(NewImage {
            record: ImageRecord {
                id: config_digest,
                manifest: Some(digest.clone()),
                repo_digests: Vec::new(),
                layers,
                config,
                last_used: 0,
            },
            names,
        })
    }

    fn stage_archive(&self, stage: &mut Stage, dir: &Path) -> Result<Vec<NewImage>> {
        let entries: Vec<ArchiveEntry> = read_json(&dir.join("manifest.json"))?;
        let mut images = Vec::new();
        for entry in entries {
            let config_path = member(dir, &entry.config)?;
            let config_bytes = fs::read(&config_path).at(&config_path)?;
            let id = Digest::of(&config_bytes);
            self.stage_blob(stage, &config_bytes, &id, "config")?;
            let (config, diff_ids) = ImageConfig::parse(&config_bytes)?;
            if diff_ids.len() != entry.layers.len() {
                return Err(Error::invalid(
                    format!("image {id}"),
                    "the config's diff_ids and the archive's layers differ in number",
                ));
            }
            let mut sources = Vec::new();
            for (layer, diff_id) in entry.layers.iter().zip(diff_ids) {
                let file = member(dir, layer)?;
                sources.push(LayerSource {
                    diff_id,
                    blob: None,
                    blob_size: 0,
                    file,
                });
            }
            let layers = self.stage_layers(stage, sources)?;
            let names = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse(t))
                .collect::<Result<_>>()?;
            images.push(NewImage {
                record: ImageRecord {
                    id,
                    manifest: None,
                    repo_digests: Vec::new(),
                    layers,
                    config,
                    last_used: 0,
                },
                names,
            });
        }
        Ok(images)
    }
}

/// Pairs a manifest's layer descriptors with the config's diff_ids: `(blob, size, diff_id)`.
pub(crate) fn layer_pairs(
    layers: &[Descriptor],
    diff_ids: Vec<Digest>,
) -> Result<Vec<(Digest, u64, Digest)>> {
    if layers.len() != diff_ids.len() {
        return Err(Error::invalid(
            "image",
            "the manifest's layers and the config's diff_ids differ in number",
        ));
    }
    layers
        .iter()
        .zip(diff_ids)
        .map(|(l, diff_id)| Ok((l.digest().to_string().parse()?, l.size(), diff_id)))
        .collect()
}

/// Whether a manifest is an index or manifest list, by its descriptor's media type, the one it
/// declares, or (having neither) by its shape.
pub(crate) fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
    }
    let index_type = |t: &str| t.contains("image.index") || t.contains("manifest.list");
    let probe = serde_json::from_slice::<Probe>(bytes).ok();
    index_type(media_type)
        || probe.is_some_and(|p| {
            p.media_type.as_deref().is_some_and(index_type) || p.manifests.is_some()
        })
}

/// The references an OCI index entry's annotations give it.
fn names(annotations: Option<&HashMap<String, String>>) -> Result<Vec<Reference>> {
    let Some(a) = annotations else {
        return Ok(Vec::new());
    };
    if let Some(name) = a.get(CONTAINERD_NAME) {
        return Ok(vec![Reference::parse(name)?]);
    }
    match a.get(REF_NAME) {
        Some(name) if name.contains([':', '/', '@']) => Ok(vec![Reference::parse(name)?]),
        Some(tag) => {
            tracing::warn!(
                tag,
                "ref.name is a bare tag naming no repository: importing the image without a name"
            );
            Ok(Vec::new())
        }
        None => Ok(Vec::new()),
    }
}

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs/sha256").join(digest.hex())
}

/// A blob of the layout, checked against its digest.
fn read_blob(dir: &Path, digest: &Digest) -> Result<Vec<u8>> {
    let path = blob_path(dir, digest);
    let bytes = fs::read(&path).at(&path)?;
    check(
        &format!("blob {}", path.display()),
        digest,
        &Digest::of(&bytes),
    )?;
    Ok(bytes)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).at(path)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::invalid(path.display().to_string(), e))
}

/// A file named inside an archive, refusing names that leave it.
fn member(dir: &Path, name: &str) -> Result<PathBuf> {
    let rel = Path::new(name);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Error::invalid(
            "docker-archive",
            format!("member {name:?} leaves the archive"),
        ));
    }
    Ok(dir.join(rel))
}

/// Unpacks an archive (tar, plain or gzip) into `dir`.
fn extract(path: &Path, dir: &Path) -> Result<()> {
    let mut reader = BufReader::new(File::open(path).at(path)?);
    let compression = Compression::detect(reader.fill_buf().at(path)?);
    let stream: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(MultiGzDecoder::new(reader)),
        Compression::None => Box::new(reader),
        Compression::Zstd => {
            return Err(Error::invalid(
                path.display().to_string(),
                "zstd-compressed archives are not supported",
            ));
        }
    };
    fs::create_dir(dir).at(dir)?;
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(false);
    archive.set_preserve_mtime(false);
    archive.set_unpack_xattrs(false);
    archive.unpack(dir).map_err(|e| {
        Error::invalid(
            path.display().to_string(),
            format!("not a readable tar archive: {e}"),
        )
    })
}

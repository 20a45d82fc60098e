//! Pulls from OCI and Docker registries (oci-client over rustls with ring). Blobs the store has are
//! not fetched again; everything fetched is checked against its digest before use.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_spec::image::{ImageIndex, ImageManifest};
use tokio::io::AsyncWriteExt;

use crate::commit::{LayerSource, NewImage};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::image::{Image, ImageConfig, ImageRecord};
use crate::import::{is_index, layer_pairs};
use crate::platform;
use crate::reference::Reference;
use crate::stage::{Stage, check};
use crate::store::ImageStore;

/// Every manifest type we read; without the OCI ones some registries answer 404 (MANIFEST_UNKNOWN).
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Blobs fetched at once.
const PARALLEL_DOWNLOADS: usize = 3;

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Registries (`host:port`, as in references) spoken to over plain HTTP instead of HTTPS.
    pub plain_http_registries: Vec<String>,
    /// Basic-auth credentials, also used to obtain bearer tokens.
    pub credentials: Option<Credentials>,
}

/// A registry user and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: Image,
    /// Config and layer blobs fetched (the store had the others).
    pub downloaded_blobs: usize,
    pub downloaded_bytes: u64,
}

/// One registry conversation: the client, its credentials, and the reference for error messages.
struct Session {
    client: Client,
    auth: RegistryAuth,
    target: oci_client::Reference,
    reference: Reference,
}

impl ImageStore {
    /// Pulls `reference` (for a multi-platform image, the linux image of the host's architecture).
    pub async fn pull(&self, reference: &Reference, options: &PullOptions) -> Result<Pulled> {
        // reqwest is built without a default crypto provider; ring is the workspace's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let session = Session {
            client: Client::new(ClientConfig {
                protocol: ClientProtocol::HttpsExcept(options.plain_http_registries.clone()),
                platform_resolver: None,
                connect_timeout: Some(Duration::from_secs(30)),
                read_timeout: Some(Duration::from_secs(120)),
                user_agent: concat!("gantry/", env!("CARGO_PKG_VERSION")),
                ..ClientConfig::default()
            }),
            auth: match &options.credentials {
                Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
                None => RegistryAuth::Anonymous,
            },
            target: oci_reference(reference),
            reference: reference.clone(),
        };
        for _ in 0..3 {
            let store = self.clone();
            let stage = blocking(move || store.stage()).await?;
            let (stage, image, downloaded_blobs, downloaded_bytes) =
                self.stage_pull(&session, stage).await?;
            let store = self.clone();
            if let Some(mut images) = blocking(move || store.commit(stage, vec![image])).await? {
                let image = images.remove(0);
                tracing::info!(reference = %reference, id = %image.id, downloaded_blobs, downloaded_bytes, "pulled image");
                return Ok(Pulled {
                    image,
                    downloaded_blobs,
                    downloaded_bytes,
                });
            }
        }
        Err(session.error("the store kept changing during the pull; try again"))
    }

    async fn stage_pull(
        &self,
        session: &Session,
        mut stage: Stage,
    ) -> Result<(Stage, NewImage, usize, u64)> {
        let reference = &session.reference;
        let (top_digest, top) = session.manifest(&session.target).await?;
        if let Some(wanted) = reference.digest() {
            check(&format!("manifest of {reference}"), wanted, &top_digest)?;
        }
        let (manifest_digest, manifest_bytes) = if is_index("", &top) {
            let index: ImageIndex = serde_json::from_slice(&top)
                .map_err(|e| session.error(format!("invalid index: {e}")))?;
            let chosen = platform::select(index.manifests()).ok_or_else(|| {
                session.error(format!(
                    "no linux/{} image; it has {}",
                    platform::host_architecture(),
                    platform::offered(index.manifests())
                ))
            })?;
            let digest: Digest = chosen.digest().to_string().parse()?;
            let (actual, bytes) = session
                .manifest(&session.target.clone_with_digest(digest.to_string()))
                .await?;
            check(
                &format!("manifest {digest} of {reference}"),
                &digest,
                &actual,
            )?;
            (digest, bytes)
        } else {
            (top_digest.clone(), top)
        };
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| session.error(format!("invalid or unsupported manifest: {e}")))?;
        self.stage_blob(&mut stage, &manifest_bytes, &manifest_digest, "manifest")?;

        let config_digest: Digest = manifest.config().digest().to_string().parse()?;
        let mut downloaded = (0, 0);
        let config_bytes = match self.find_blob(&stage, &config_digest) {
            Some(path) => tokio::fs::read(&path).await.at(&path)?,
            None => {
                let bytes = session.blob_bytes(&config_digest).await?;
                stage.write_blob(&bytes, &config_digest, &format!("config of {reference}"))?;
                downloaded = (1, bytes.len() as u64);
                bytes
            }
        };
        let (config, diff_ids) = ImageConfig::parse(&config_bytes)?;
        let layers = layer_pairs(manifest.layers(), diff_ids)?;

        let mut wanted: Vec<(Digest, u64, PathBuf)> = Vec::new();
        for (blob, size, _) in &layers {
            if self.find_blob(&stage, blob).is_none() && !wanted.iter().any(|(d, _, _)| d == blob) {
                wanted.push((blob.clone(), *size, stage.new_path("blob")));
            }
        }
        let fetched: Vec<(Digest, PathBuf, u64)> = futures::stream::iter(wanted)
            .map(|(digest, size, path)| async move {
                let len = session.download(&digest, size, &path).await?;
                Ok::<_, Error>((digest, path, len))
            })
            .buffer_unordered(PARALLEL_DOWNLOADS)
            .try_collect()
            .await?;
        for (digest, path, len) in fetched {
            downloaded.0 += 1;
            downloaded.1 += len;
            stage.add_blob(digest, path);
        }

        let store = self.clone();
        let name = reference.name();
        let (stage, record) = blocking(move || {
            let sources = layers
                .into_iter()
                .map(|(blob, blob_size, diff_id)| {
                    let file = store.find_blob(&stage, &blob).unwrap_or_default();
                    LayerSource {
                        diff_id,
                        blob: Some(blob),
                        blob_size,
                        file,
                    }
                })
                .collect();
            let layers = store.stage_layers(&mut stage, sources)?;
            let record = ImageRecord {
                id: config_digest,
                manifest: Some(manifest_digest),
                repo_digests: vec![format!("{name}@{top_digest}")],
                layers,
                config,
                last_used: 0,
            };
            Ok((stage, record))
        })
        .await?;
        Ok((
            stage,
            NewImage {
                record,
                names: vec![reference.clone()],
            },
            downloaded.0,
            downloaded.1,
        ))
    }
}

impl Session {
    /// A manifest or index and the digest of its bytes.
    async fn manifest(&self, target: &oci_client::Reference) -> Result<(Digest, Vec<u8>)> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(target, &self.auth, MANIFEST_TYPES)
            .await
            .map_err(|e| self.registry_error(e))?;
        Ok((Digest::of(&bytes), bytes.to_vec()))
    }

    async fn blob_bytes(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.client
            .pull_blob(&self.target, digest.as_str(), &mut out)
            .await
            .map_err(|e| self.registry_error(e))?;
        check(
            &format!("blob {digest} of {}", self.reference),
            digest,
            &Digest::of(&out),
        )?;
        Ok(out)
    }

    /// Streams a blob to `path`, hashing as it goes. Returns its length.
    async fn download(&self, digest: &Digest, size: u64, path: &PathBuf) -> Result<u64> {
        let mut stream = self
            .client
            .pull_blob_stream(&self.target, digest.as_str())
            .await
            .map_err(|e| self.registry_error(e))?;
        let mut file = tokio::fs::File::create(path).await.at(path)?;
        let mut hasher = Hasher::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.stream_error(e))?;
            hasher.update(&chunk);
            file.write_all(&chunk).await.at(path)?;
        }
        file.flush().await.at(path)?;
        let len = hasher.len();
        check(
            &format!("blob {digest} of {}", self.reference),
            digest,
            &hasher.finish(),
        )?;
        if size != 0 && len != size {
            return Err(self.error(format!(
                "blob {digest} is {len} bytes, the manifest says {size}"
            )));
        }
        Ok(len)
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::Registry {
            reference: self.reference.to_string(),
            message: message.into(),
        }
    }

    fn registry_error(&self, e: OciDistributionError) -> Error {
        let reference = self.reference.to_string();
        let missing = |code: &OciErrorCode| {
            matches!(
                code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NotFound
            )
        };
        match e {
            OciDistributionError::RegistryError {
                ref envelope,
                ref url,
            } if envelope.errors.iter().any(|x| missing(&x.code)) => {
                let messages: Vec<&str> =
                    envelope.errors.iter().map(|x| x.message.as_str()).collect();
                Error::NotFound {
                    reference,
                    detail: format!("{} ({url})", messages.join("; ")),
                }
            }
            OciDistributionError::ServerError {
                code: 404, ref url, ..
            } => Error::NotFound {
                reference,
                detail: format!("404 from {url}"),
            },
            OciDistributionError::ImageManifestNotFoundError(detail) => {
                Error::NotFound { reference, detail }
            }
            OciDistributionError::UnauthorizedError { url } => self.error(format!(
                "unauthorized at {url}: the repository does not exist or needs credentials"
            )),
            OciDistributionError::DigestError(DigestError::VerificationError {
                expected,
                actual,
            }) => Error::DigestMismatch {
                what: format!("content of {reference}"),
                expected,
                actual,
            },
            other => self.error(chain(&other)),
        }
    }

    fn stream_error(&self, e: std::io::Error) -> Error {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<DigestError>())
        {
            Some(DigestError::VerificationError { expected, actual }) => Error::DigestMismatch {
                what: format!("blob of {}", self.reference),
                expected: expected.clone(),
                actual: actual.clone(),
            },
            _ => self.error(format!("download failed: {}", chain(&e))),
        }
    }
}

/// An error and its causes, `a: b: c` (reqwest's own message leaves out "connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = cause.source();
    }
    text
}

fn oci_reference(r: &Reference) -> oci_client::Reference {
    let (registry, repository) = (r.registry().to_owned(), r.repository().to_owned());
    match (r.tag(), r.digest()) {
        (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(
            registry,
            repository,
            tag.to_owned(),
            digest.to_string(),
        ),
        (_, Some(digest)) => {
            oci_client::Reference::with_digest(registry, repository, digest.to_string())
        }
        (tag, None) => oci_client::Reference::with_tag(
            registry,
            repository,
            tag.unwrap_or("latest").to_owned(),
        ),
    }
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })?
}

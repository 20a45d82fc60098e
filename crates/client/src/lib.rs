//! Clients for Gantry's own components. This is the only crate that depends on kube-rs (and k8s-openapi, its
//! Kubernetes 1.33 types): everything else that talks to the API goes through here, so one place decides
//! versions, TLS (rustls with ring) and how a client is made.

pub mod events;

use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

pub use k8s_openapi;
pub use kube;
pub use kube::{Api, Client};

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("invalid client configuration: {0}")]
    Config(String),
    #[error("cannot build the client: {0}")]
    Client(#[from] kube::Error),
}

/// A client from a kubeconfig file (its current context).
pub async fn from_kubeconfig(path: &Path) -> Result<Client, ClientError> {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(path).map_err(|source| ClientError::Kubeconfig {
            path: path.display().to_string(),
            source,
        })?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|source| ClientError::Kubeconfig {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Client::try_from(config)?)
}

/// A client for the API server at `url` (`https://host:port`), trusting `ca_pem` and authenticating with the
/// bearer `token`.
pub fn connect(url: &str, ca_pem: &[u8], token: &str) -> Result<Client, ClientError> {
    let cluster_url = url
        .parse()
        .map_err(|e| ClientError::Config(format!("server URL {url:?}: {e}")))?;
    let mut config = kube::Config::new(cluster_url);
    config.root_cert = Some(
        pem_certificates(ca_pem)
            .map_err(|e| ClientError::Config(format!("certificate authority: {e}")))?,
    );
    config.auth_info.token = Some(token.to_owned().into());
    Ok(Client::try_from(config)?)
}

/// A client whose requests `handle` answers in this process: no socket, no TLS, no HTTP framing. The server's
/// own scheduler, controllers and agent use it (`Api::handle` of gantry-apiserver, with their identity).
pub fn in_process<H, F, B>(handle: H) -> Client
where
    H: Fn(http::Request<kube::client::Body>) -> F + Send + Clone + 'static,
    F: Future<Output = http::Response<B>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = tower::service_fn(move |request| {
        let answer = handle(request);
        async move { Ok::<_, std::convert::Infallible>(answer.await) }
    });
    Client::new(service, "default")
}

/// The DER certificates of a PEM bundle.
fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.to_vec()).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if certificates.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certificates)
}

//! An HTTP/2 client over TLS (rustls with ring) for one API server: a fixed set of h2 connections, each
//! carrying many concurrent streams, as client-go does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::{Error, Target};

/// Per-stream and per-connection receive windows: client-go's (Go's HTTP/2 transport) 4 MiB and 1 GiB, so
/// large lists are not throttled by flow control.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 1 << 30;

/// A client of one API server over `connections` HTTP/2 connections.
#[derive(Debug)]
pub struct Client {
    connections: Vec<SendRequest<Full<Bytes>>>,
    next: AtomicUsize,
    base: String,
    authorization: Option<HeaderValue>,
}

impl Client {
    /// Opens `connections` (at least one) HTTP/2 connections to the target.
    pub async fn connect(target: &Target, connections: usize) -> Result<Client, Error> {
        let tls = Arc::new(tls_config(target)?);
        let server_name = ServerName::try_from(target.server_name.clone())
            .map_err(|e| Error::Tls(format!("server name {:?}: {e}", target.server_name)))?;
        let mut senders = Vec::new();
        for _ in 0..connections.max(1) {
            senders.push(open(target, tls.clone(), server_name.clone()).await?);
        }
        let host = if target.host.contains(':') {
            format!("[{}]", target.host)
        } else {
            target.host.clone()
        };
        let authorization = match &target.token {
            Some(token) => Some(
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|e| Error::Kubeconfig(format!("token: {e}")))?,
            ),
            None => None,
        };
        Ok(Client {
            connections: senders,
            next: AtomicUsize::new(0),
            base: format!("https://{host}:{}", target.port),
            authorization,
        })
    }

    /// How many connections the client holds.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// Sends a request on connection `connection` (modulo the count; `None`: round robin) and returns the
    /// response with its body still streaming.
    pub async fn request(
        &self,
        connection: Option<usize>,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<Response<Incoming>, Error> {
        let index = connection.unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed))
            % self.connections.len();
        let mut sender = self.connections[index].clone();
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(ACCEPT, accept);
        if let Some(auth) = &self.authorization {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        let body = match body {
            Some((content_type, bytes)) => {
                builder = builder.header(CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder
            .body(body)
            .map_err(|e| Error::Check(format!("bad request {path}: {e}")))?;
        sender.ready().await?;
        Ok(sender.send_request(request).await?)
    }

    /// Sends a request and reads the whole response body.
    pub async fn send(
        &self,
        connection: Option<usize>,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<(StatusCode, Bytes), Error> {
        let response = self.request(connection, method, path, accept, body).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    /// [`Self::send`], failing unless the status is one of `expect`.
    pub async fn expect(
        &self,
        connection: Option<usize>,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Bytes)>,
        expect: &[StatusCode],
    ) -> Result<Bytes, Error> {
        let (status, bytes) = self
            .send(connection, method.clone(), path, accept, body)
            .await?;
        if !expect.contains(&status) {
            return Err(Error::Status {
                request: format!("{method} {path}"),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned(),
            });
        }
        Ok(bytes)
    }
}

async fn open(
    target: &Target,
    tls: Arc<ClientConfig>,
    server_name: ServerName<'static>,
) -> Result<SendRequest<Full<Bytes>>, Error> {
    let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
    tcp.set_nodelay(true)?;
    let stream = TlsConnector::from(tls).connect(server_name, tcp).await?;
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(Error::Tls(
            "the server did not negotiate HTTP/2 (ALPN h2)".into(),
        ));
    }
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(1 << 20)
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped or the server goes away; requests see the error.
        let _ = connection.await;
    });
    Ok(sender)
}

fn tls_config(target: &Target) -> Result<ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = match (&target.ca_pem, target.insecure) {
        (_, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(gantry_pki::unverified_server(provider)),
        (Some(ca), false) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                let cert = cert.map_err(|e| Error::Tls(format!("certificate authority: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Tls(format!("certificate authority: {e}")))?;
            }
            builder.with_root_certificates(roots)
        }
        (None, false) => return Err(Error::Tls("no certificate authority to trust".into())),
    };
    let mut config = match &target.client_cert {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::Tls(format!("client certificate: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| Error::Tls(format!("client key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Tls(format!("client certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

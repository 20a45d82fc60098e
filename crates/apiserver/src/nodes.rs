//! Calls from the API server to node agents' HTTPS endpoints (what only the node has: container logs, exec,
//! attach, port-forward), with the API server's client certificate. A log's body streams through to the
//! client (`kubectl logs -f`); an upgraded session (WebSocket or SPDY) is spliced byte for byte between the
//! client and the agent, which speaks the streaming protocols.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use gantry_api::ApiError;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::Value;

use crate::response::{Body, Response};

/// The API server's side of node endpoint calls.
#[derive(Clone)]
pub struct NodeClient {
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient").finish_non_exhaustive()
    }
}

impl NodeClient {
    pub fn new(tls: rustls::ClientConfig) -> NodeClient {
        NodeClient { tls: Arc::new(tls) }
    }

    /// Sends `request` to the node endpoint at `address` over a new connection (one that can be upgraded);
    /// an answer other than 2xx or 101 becomes the error the agent explains in plain text.
    async fn send(
        &self,
        address: SocketAddr,
        request: http::Request<http_body_util::Empty<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, ApiError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            ApiError::service_unavailable(format!(
                "the node agent at {address} does not answer: {e}"
            ))
        };
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| unavailable(&e))?;
        let name = ServerName::IpAddress(address.ip().into());
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| unavailable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unavailable(&e))?;
        tokio::spawn(connection.with_upgrades());
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| unavailable(&e))?;
        let status = answer.status();
        if status.is_success() || status == http::StatusCode::SWITCHING_PROTOCOLS {
            return Ok(answer);
        }
        let text = answer
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(ApiError {
            code: status.as_u16(),
            reason: match status.as_u16() {
                400 => "BadRequest",
                404 => "NotFound",
                _ => "InternalError",
            },
            message: String::from_utf8_lossy(&text).trim().to_owned(),
            details: None,
        })
    }

    /// GETs `path_and_query` from the node endpoint at `address`; the answer (status, content type, streaming
    /// body) becomes the response.
    pub(crate) async fn get(
        &self,
        address: SocketAddr,
        path_and_query: &str,
    ) -> Result<Response, ApiError> {
        let request = http::Request::get(path_and_query)
            .header(http::header::HOST, address.to_string())
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(ApiError::internal)?;
        let (parts, body) = self.send(address, request).await?.into_parts();
        // A broken connection ends the body early; the client sees the stream end.
        let frames = BodyStream::new(body).take_while(|frame| std::future::ready(frame.is_ok()));
        let frames =
            frames.filter_map(|frame| std::future::ready(frame.ok().map(Ok::<_, Infallible>)));
        let body: Body = BodyExt::boxed_unsync(StreamBody::new(frames));
        let mut response = http::Response::new(body);
        *response.status_mut() = parts.status;
        if let Some(content_type) = parts.headers.get(http::header::CONTENT_TYPE) {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, content_type.clone());
        }
        Ok(response)
    }
}

/// A client's request to upgrade its connection (exec, attach, port-forward): what the agent needs of it.
pub(crate) struct Upgrade {
    pub(crate) method: http::Method,
    /// The raw query: exec's `command` repeats, once per argument.
    pub(crate) query: String,
    pub(crate) headers: http::HeaderMap,
    pub(crate) client: hyper::upgrade::OnUpgrade,
}

/// The headers of an upgrade that pass between the client and the agent, both ways.
const UPGRADE_HEADERS: [&str; 7] = [
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-accept",
    "x-stream-protocol-version",
];

fn copy_upgrade_headers(from: &http::HeaderMap, to: &mut http::HeaderMap) {
    for name in UPGRADE_HEADERS {
        for value in from.get_all(name) {
            to.append(name, value.clone());
        }
    }
}

impl NodeClient {
    /// Passes `upgrade` on to the node endpoint at `address`: when the agent switches protocols, so does the
    /// client, and the two connections are spliced together until either ends.
    pub(crate) async fn upgrade(
        &self,
        address: SocketAddr,
        path_and_query: &str,
        upgrade: Upgrade,
    ) -> Result<Response, ApiError> {
        let mut request = http::Request::builder()
            .method(upgrade.method)
            .uri(path_and_query)
            .header(http::header::HOST, address.to_string())
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(ApiError::internal)?;
        copy_upgrade_headers(&upgrade.headers, request.headers_mut());
        let mut answer = self.send(address, request).await?;
        if answer.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            return Err(ApiError::bad_request(format!(
                "the node agent did not upgrade the connection (it answered {})",
                answer.status()
            )));
        }
        let agent = hyper::upgrade::on(&mut answer);
        tokio::spawn(async move {
            match futures::future::try_join(upgrade.client, agent).await {
                Ok((client, agent)) => {
                    let (mut client, mut agent) = (TokioIo::new(client), TokioIo::new(agent));
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut agent).await;
                }
                Err(e) => tracing::debug!("a streaming upgrade failed: {e}"),
            }
        });
        let mut response =
            http::Response::new(http_body_util::Full::new(Bytes::new()).boxed_unsync());
        *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        copy_upgrade_headers(answer.headers(), response.headers_mut());
        Ok(response)
    }
}

/// Where a Node's agent answers: its InternalIP (else first address) and `daemonEndpoints.kubeletEndpoint`.
pub(crate) fn endpoint_of(node: &Value) -> Option<SocketAddr> {
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)?;
    let address = addresses
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| addresses.first())
        .and_then(|a| a["address"].as_str())?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())?;
    Some(SocketAddr::new(address.parse().ok()?, port))
}

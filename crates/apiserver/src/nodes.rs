//! Calls from the API server to node agents' HTTPS endpoints (what only the node has: container logs), with the
//! API server's client certificate. The answer's body streams through to the client (`kubectl logs -f`).

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

    /// GETs `path_and_query` from the node endpoint at `address`; the answer (status, content type, streaming
    /// body) becomes the response.
    pub(crate) async fn get(
        &self,
        address: SocketAddr,
        path_and_query: &str,
    ) -> Result<Response, ApiError> {
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
        tokio::spawn(connection);
        let request = http::Request::get(path_and_query)
            .header(http::header::HOST, address.to_string())
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(ApiError::internal)?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| unavailable(&e))?;
        let (parts, body) = answer.into_parts();
        if !parts.status.is_success() {
            // The agent explains itself in plain text: the client gets a Status.
            let text = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(ApiError {
                code: parts.status.as_u16(),
                reason: match parts.status.as_u16() {
                    400 => "BadRequest",
                    404 => "NotFound",
                    _ => "InternalError",
                },
                message: String::from_utf8_lossy(&text).trim().to_owned(),
                details: None,
            });
        }
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

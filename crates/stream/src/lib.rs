//! Kubernetes' streaming protocols, on the serving side (what the kubelet answers on `exec`, `attach` and
//! `portforward`). One endpoint speaks three framings, chosen by the upgrade request's headers
//! ([`accept`]):
//!
//! - WebSocket channels (`v5.channel.k8s.io`, `v4.channel.k8s.io`): binary messages whose first byte names
//!   the channel. kubectl ≥ 1.30 execs this way; the Python client and kube-rs exec and port-forward this way.
//! - SPDY/3.1 (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version`): one SPDY stream per channel, named by its
//!   `streamtype` header. kubectl ≤ 1.29 execs this way, kubectl ≤ 1.30 port-forwards this way, and newer
//!   kubectl falls back to it when a WebSocket upgrade is refused.
//! - SPDY/3.1 frames inside WebSocket binary messages (`SPDY/3.1+portforward.k8s.io`): kubectl ≥ 1.31
//!   port-forwards this way.
//!
//! After the upgrade, [`command::serve`] runs an exec or attach session and [`forward::serve`] a port-forward
//! session over the upgraded connection; what runs the command or dials the port is the caller's.

pub mod command;
pub mod forward;
mod websocket;

use http::{HeaderMap, HeaderValue, header};

/// The framing a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// WebSocket channels; `v5` adds the client's "close channel" signal (`[255, channel]`).
    Channels { v5: bool },
    /// SPDY/3.1 streams.
    Spdy,
    /// SPDY/3.1 frames tunnelled in WebSocket binary messages.
    SpdyInWebSocket,
}

/// What the upgrade is for: the two kinds of session differ in the protocols they offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// exec and attach (remote command).
    Command,
    PortForward,
}

/// An upgrade this side agrees to: the protocol and the headers of the `101 Switching Protocols` answer.
#[derive(Debug)]
pub struct Accepted {
    pub protocol: Protocol,
    pub headers: HeaderMap,
}

const CHANNEL_V5: &str = "v5.channel.k8s.io";
const CHANNEL_V4: &str = "v4.channel.k8s.io";
const SPDY_PORT_FORWARD: &str = "portforward.k8s.io";
const SPDY_IN_WEBSOCKET: &str = "SPDY/3.1+portforward.k8s.io";

/// Chooses the protocol for an upgrade request from its headers, or says why none fits (the caller answers
/// 400, and kubectl then falls back from WebSocket to SPDY).
pub fn accept(purpose: Purpose, request: &HeaderMap) -> Result<Accepted, String> {
    let upgrade = request
        .get(header::UPGRADE)
        .and_then(|u| u.to_str().ok())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if upgrade.eq_ignore_ascii_case("websocket") {
        let offered = listed(request, header::SEC_WEBSOCKET_PROTOCOL);
        let offers = |p: &str| offered.iter().any(|o| o == p);
        let (protocol, name) = match purpose {
            _ if offers(CHANNEL_V5) => (Protocol::Channels { v5: true }, CHANNEL_V5),
            _ if offers(CHANNEL_V4) => (Protocol::Channels { v5: false }, CHANNEL_V4),
            Purpose::PortForward if offers(SPDY_IN_WEBSOCKET) => {
                (Protocol::SpdyInWebSocket, SPDY_IN_WEBSOCKET)
            }
            _ => {
                return Err(format!(
                    "none of the WebSocket subprotocols {offered:?} is served here; use {CHANNEL_V5} or {CHANNEL_V4}"
                ));
            }
        };
        let key = request
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or("a WebSocket upgrade without Sec-WebSocket-Key")?;
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).map_err(|e| e.to_string())?,
        );
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(name),
        );
        return Ok(Accepted { protocol, headers });
    }
    if upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        let offered = listed(request, header::HeaderName::from_static(STREAM_PROTOCOL));
        // Over SPDY, v4 is the newest remote-command protocol the kubelet serves too: v5 only adds what
        // WebSocket lacks (closing one channel).
        let wanted = match purpose {
            Purpose::Command => CHANNEL_V4,
            Purpose::PortForward => SPDY_PORT_FORWARD,
        };
        if !offered.iter().any(|o| o == wanted) {
            return Err(format!(
                "none of the stream protocols {offered:?} is served here; use {wanted}"
            ));
        }
        headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        headers.insert(STREAM_PROTOCOL, HeaderValue::from_static(wanted));
        return Ok(Accepted {
            protocol: Protocol::Spdy,
            headers,
        });
    }
    Err(format!(
        "this endpoint needs an upgrade to WebSocket or SPDY/3.1, not {upgrade:?}"
    ))
}

/// `X-Stream-Protocol-Version`, which SPDY clients send once per protocol they speak.
const STREAM_PROTOCOL: &str = "x-stream-protocol-version";

/// The values of a header that may be repeated and may list several values separated by commas.
fn listed(headers: &HeaderMap, name: impl header::AsHeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn kubectl_exec_gets_websocket_v5_and_falls_back_to_spdy_v4() {
        let ws = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        let accepted = accept(Purpose::Command, &ws).unwrap();
        assert_eq!(accepted.protocol, Protocol::Channels { v5: true });
        assert_eq!(
            accepted.headers["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let spdy = headers(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v5.channel.k8s.io"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
            ("x-stream-protocol-version", "v3.channel.k8s.io"),
        ]);
        let accepted = accept(Purpose::Command, &spdy).unwrap();
        assert_eq!(accepted.protocol, Protocol::Spdy);
        assert_eq!(
            accepted.headers["x-stream-protocol-version"],
            "v4.channel.k8s.io"
        );
    }

    #[test]
    fn port_forward_protocols_follow_the_client() {
        let python = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-key", "a2V5"),
            (
                "sec-websocket-protocol",
                "v4.channel.k8s.io, v5.channel.k8s.io",
            ),
        ]);
        assert_eq!(
            accept(Purpose::PortForward, &python).unwrap().protocol,
            Protocol::Channels { v5: true }
        );
        let kubectl = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-key", "a2V5"),
            ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io"),
        ]);
        assert_eq!(
            accept(Purpose::PortForward, &kubectl).unwrap().protocol,
            Protocol::SpdyInWebSocket
        );
        // Only port-forward tunnels SPDY in WebSocket.
        assert!(accept(Purpose::Command, &kubectl).is_err());
        let old = headers(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "portforward.k8s.io"),
        ]);
        assert_eq!(
            accept(Purpose::PortForward, &old).unwrap().protocol,
            Protocol::Spdy
        );
        assert!(accept(Purpose::PortForward, &headers(&[])).is_err());
    }
}

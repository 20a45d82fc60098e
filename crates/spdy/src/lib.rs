//! The server side of SPDY/3.1 as Kubernetes' streaming clients speak it.
//!
//! `kubectl port-forward` (and `kubectl exec`/`attach`/`cp` where WebSocket is
//! not used) upgrade an HTTP connection to `SPDY/3.1` and then open streams on
//! it with Go's `moby/spdystream`: one stream per channel (`streamtype: error`,
//! `stdin`, `stdout`, `data`, ...). The node agent hands the upgraded byte
//! stream (or one tunnelled inside WebSocket) to [`serve`], and gets the
//! streams the client opens from [`Incoming::next`].
//!
//! Flow control: spdystream implements none. Its framer parses WINDOW_UPDATE
//! but its connection drops it as an unhandled frame type, it sends none, and
//! `Stream.Write` puts each write on the wire as one data frame without
//! consulting any window. So a client streams megabytes (`kubectl cp` through
//! exec stdin) without waiting for us, and expects the same from the server
//! (the kubelet, also spdystream, sends no WINDOW_UPDATE either). This crate
//! therefore keeps no send window, ignores incoming WINDOW_UPDATE and sends
//! none; backpressure comes from TCP alone (see [`StreamReader`]).

mod conn;
pub mod frame;
pub mod headers;

pub use conn::{Incoming, Stream, StreamReader, StreamWriter, serve};

/// A framing or header-compression error; any of them ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("invalid {kind} frame of {len} bytes")]
    InvalidFrame { kind: &'static str, len: usize },
    #[error("header block: {0}")]
    HeaderBlock(String),
}

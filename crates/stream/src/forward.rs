//! Port-forward sessions: TCP connections to a pod's ports carried over the client's connection.
//!
//! - WebSocket channels: the ports come from the `ports` query parameter; port `i` has data channel `2i` and
//!   error channel `2i+1`, each opened by a `[channel, port_lo, port_hi]` message; one TCP connection per port.
//! - SPDY (plain or inside WebSocket): every local connection of the client opens an `error` and a `data`
//!   stream with the same `requestid` and a `port` header; one TCP connection per data stream.

use std::future::Future;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::{Protocol, websocket};

/// The ports of a `ports=80,8080` query (the WebSocket channel protocol's), or why they are wrong.
pub fn ports_from_query(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (key, value) in crate::command::form_pairs(query) {
        if key != "ports" && key != "port" {
            continue;
        }
        for port in value.split(',').filter(|p| !p.is_empty()) {
            match port.trim().parse::<u16>() {
                Ok(p) if p > 0 => ports.push(p),
                _ => return Err(format!("invalid port {port:?}: ports are 1 to 65535")),
            }
        }
    }
    Ok(ports)
}

/// Serves a port-forward session on `io`, an upgraded connection that speaks `protocol`; `dial` connects to
/// a port of the pod. `ports` are the query's (used by the WebSocket channel protocol only).
pub async fn serve<IO, D, Fut>(io: IO, protocol: Protocol, ports: Vec<u16>, dial: D)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    D: Fn(u16) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<TcpStream>> + Send + 'static,
{
    match protocol {
        Protocol::Channels { .. } => over_channels(io, ports, dial).await,
        Protocol::Spdy => over_spdy(gantry_spdy::serve(io), dial).await,
        Protocol::SpdyInWebSocket => {
            over_spdy(gantry_spdy::serve(websocket::tunnel(io).await), dial).await;
        }
    }
}

fn port_message(channel: u8, port: u16) -> Message {
    websocket::on_channel(channel, &port.to_le_bytes())
}

async fn over_channels<IO, D, Fut>(io: IO, ports: Vec<u16>, dial: D)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    D: Fn(u16) -> Fut,
    Fut: Future<Output = io::Result<TcpStream>>,
{
    let (mut sink, mut source) = websocket::open(io).await.split();
    let Ok(ports): Result<Vec<(u8, u16)>, _> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| u8::try_from(i * 2).map(|channel| (channel, *port)))
        .collect()
    else {
        return;
    };
    let (to_client, mut outgoing) = mpsc::channel::<Message>(16);
    let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::new();
    for &(data, port) in &ports {
        for channel in [data, data + 1] {
            if sink.send(port_message(channel, port)).await.is_err() {
                return;
            }
        }
        match dial(port).await {
            Ok(tcp) => {
                let (mut read, write) = tcp.into_split();
                writers.push(Some(write));
                let to_client = to_client.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0; 32 * 1024];
                    while let Ok(n @ 1..) = read.read(&mut buffer).await {
                        let message = websocket::on_channel(data, &buffer[..n]);
                        if to_client.send(message).await.is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => {
                writers.push(None);
                let message = format!("error forwarding port {port}: {e}");
                let _ = sink
                    .send(websocket::on_channel(data + 1, message.as_bytes()))
                    .await;
            }
        }
    }
    drop(to_client);
    let reader = async {
        while let Some(Ok(message)) = source.next().await {
            let data = match message {
                Message::Binary(data) if data.len() > 1 => data,
                Message::Close(_) => break,
                _ => continue,
            };
            let port = usize::from(data[0] / 2);
            if data[0] % 2 == 0
                && let Some(Some(writer)) = writers.get_mut(port)
                && writer.write_all(&data[1..]).await.is_err()
            {
                writers[port] = None;
            }
        }
        for writer in writers.iter_mut().flatten() {
            let _ = writer.shutdown().await;
        }
    };
    // The session ends when every pod connection has closed (or the client has gone).
    let writer = async {
        while let Some(message) = outgoing.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        let _ = sink.send(websocket::close()).await;
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
}

async fn over_spdy<D, Fut>(mut incoming: gantry_spdy::Incoming, dial: D)
where
    D: Fn(u16) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<TcpStream>> + Send + 'static,
{
    let dial = Arc::new(dial);
    // Error streams wait here for the data stream of their request.
    let mut errors: std::collections::HashMap<String, gantry_spdy::StreamWriter> =
        Default::default();
    while let Some(stream) = incoming.next().await {
        let request = stream.header("requestid").unwrap_or_default().to_owned();
        match stream.header("streamtype") {
            Some("error") => {
                errors.insert(request, stream.writer);
            }
            Some("data") => {
                let error = errors.remove(&request);
                let port = stream.header("port").and_then(|p| p.parse::<u16>().ok());
                let dial = dial.clone();
                tokio::spawn(async move {
                    match port {
                        Some(port) => forward_one(stream, error, port, &*dial).await,
                        None => {
                            if let Some(error) = &error {
                                let _ = error
                                    .write(Bytes::from_static(
                                        b"a data stream without a valid port header",
                                    ))
                                    .await;
                                error.finish().await;
                            }
                            stream.writer.finish().await;
                        }
                    }
                });
            }
            other => tracing::debug!(?other, "a port-forward stream of unknown type"),
        }
    }
}

/// Pipes one data stream to a new connection to `port`.
async fn forward_one<D, Fut>(
    mut stream: gantry_spdy::Stream,
    error: Option<gantry_spdy::StreamWriter>,
    port: u16,
    dial: &D,
) where
    D: Fn(u16) -> Fut,
    Fut: Future<Output = io::Result<TcpStream>>,
{
    let tcp = match dial(port).await {
        Ok(tcp) => tcp,
        Err(e) => {
            if let Some(error) = &error {
                let message = format!("error forwarding port {port} to pod: {e}");
                let _ = error.write(message.into()).await;
                error.finish().await;
            }
            stream.writer.finish().await;
            return;
        }
    };
    let (mut read, mut write) = tcp.into_split();
    let writer = stream.writer.clone();
    let from_pod = async move {
        let mut buffer = vec![0; 32 * 1024];
        while let Ok(n @ 1..) = read.read(&mut buffer).await {
            if writer
                .write(Bytes::copy_from_slice(&buffer[..n]))
                .await
                .is_err()
            {
                return;
            }
        }
        writer.finish().await;
    };
    let to_pod = async move {
        while let Some(data) = stream.reader.read().await {
            if write.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    };
    // The client waits for the error stream to end before it closes its connection (and so its half of the
    // data stream): the session is over when the pod's side is.
    tokio::spawn(to_pod);
    from_pod.await;
    if let Some(error) = error {
        error.finish().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[test]
    fn ports_come_from_the_query() {
        assert_eq!(ports_from_query("ports=80,8080").unwrap(), [80, 8080]);
        assert!(ports_from_query("ports=0").is_err());
        assert!(ports_from_query("ports=http").is_err());
    }

    /// The Python client's protocol against a local echo server: port frames first, then data both ways.
    #[tokio::test]
    async fn websocket_channels_reach_the_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buffer = [0; 64];
            let n = tcp.read(&mut buffer).await.unwrap();
            tcp.write_all(&[b"echo: ", &buffer[..n]].concat())
                .await
                .unwrap();
        });
        let (client_io, server_io) = tokio::io::duplex(4096);
        let server = tokio::spawn(serve(
            server_io,
            Protocol::Channels { v5: false },
            vec![port],
            |port| TcpStream::connect(("127.0.0.1", port)),
        ));
        let mut client =
            tokio_tungstenite::WebSocketStream::from_raw_socket(client_io, Role::Client, None)
                .await;
        for channel in [0, 1] {
            let Some(Ok(Message::Binary(first))) = client.next().await else {
                panic!("no port frame");
            };
            assert_eq!(
                &first[..],
                &[&[channel][..], &port.to_le_bytes()].concat()[..]
            );
        }
        client
            .send(websocket::on_channel(0, b"ping"))
            .await
            .unwrap();
        let mut received = Vec::new();
        while let Some(Ok(message)) = client.next().await {
            if let Message::Binary(data) = message {
                assert_eq!(data[0], 0);
                received.extend_from_slice(&data[1..]);
            }
        }
        assert_eq!(received, b"echo: ping");
        server.await.unwrap();
    }
}

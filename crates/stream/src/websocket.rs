//! What the WebSocket framings share: the server side of an upgraded connection, channel messages, and a
//! byte stream carried in binary messages (for SPDY inside WebSocket).

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

/// The server's side of a connection whose upgrade to WebSocket was answered with 101.
pub(crate) async fn open<IO>(io: IO) -> WebSocketStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    WebSocketStream::from_raw_socket(io, Role::Server, None).await
}

/// A binary message on `channel`.
pub(crate) fn on_channel(channel: u8, data: &[u8]) -> Message {
    let mut message = BytesMut::with_capacity(data.len() + 1);
    message.put_u8(channel);
    message.put_slice(data);
    Message::Binary(message.freeze())
}

/// A normal closure.
pub(crate) fn close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// The bytes carried in the binary messages of a WebSocket, as a byte stream: what the client sends is read
/// from the returned end, and what is written to it goes to the client in binary messages. Message
/// boundaries mean nothing (SPDY frames are split anywhere).
pub(crate) async fn tunnel<IO>(io: IO) -> DuplexStream
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    const BUFFER: usize = 64 * 1024;
    let (ours, theirs) = tokio::io::duplex(BUFFER);
    let (mut sink, mut source) = open(io).await.split();
    tokio::spawn(async move {
        let (mut from_us, mut to_us) = tokio::io::split(theirs);
        let inbound = async move {
            while let Some(Ok(message)) = source.next().await {
                match message {
                    Message::Binary(data) if to_us.write_all(&data).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = to_us.shutdown().await;
        };
        let outbound = async move {
            let mut buffer = vec![0; BUFFER];
            while let Ok(n @ 1..) = from_us.read(&mut buffer).await {
                let data = Bytes::copy_from_slice(&buffer[..n]);
                if sink.send(Message::Binary(data)).await.is_err() {
                    return;
                }
            }
            let _ = sink.send(close()).await;
        };
        futures::join!(inbound, outbound);
    });
    ours
}

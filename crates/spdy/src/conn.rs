//! The connection: a reader task that decodes frames and routes them, and a
//! writer task that owns the outgoing header compressor and puts every frame
//! on the wire.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::frame::{FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame, RST_CANCEL, RST_PROTOCOL_ERROR};
use crate::headers::{HeaderCompressor, HeaderDecompressor};

/// Data frames we send carry at most this much (what spdystream's peers use).
const MAX_DATA_FRAME: usize = 32 * 1024;
/// Incoming data frames buffered per stream before the reader waits.
const STREAM_QUEUE: usize = 64;
/// Outgoing frames queued from [`StreamWriter`]s before writes wait.
const WRITE_QUEUE: usize = 64;
/// The writer batches queued frames up to about this many bytes per write.
const WRITE_BATCH: usize = 64 * 1024;

// Our sending side of a stream, shared by the reader task and the writers.
const OPEN: u8 = 0;
const FINISHED: u8 = 1;
const RESET: u8 = 2;

#[derive(Debug)]
enum Out {
    Frame(Frame),
    /// The writer compresses the (empty) header block itself, so compressed
    /// blocks reach the wire in the order they were compressed.
    SynReply(u32),
    GoAway,
}

/// Serves SPDY/3.1 on `io` in spawned tasks (call from within a Tokio runtime).
pub fn serve<IO>(io: IO) -> Incoming
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (r, w) = tokio::io::split(io);
    let (ctrl_tx, ctrl_rx) = mpsc::unbounded_channel();
    let (data_tx, data_rx) = mpsc::channel(WRITE_QUEUE);
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = oneshot::channel();
    let last_id = Arc::new(AtomicU32::new(0));
    tokio::spawn(write_loop(w, ctrl_rx, data_rx, done_tx, last_id.clone()));
    let reader = Reader {
        ctrl: ctrl_tx,
        data: data_tx.clone(),
        incoming: in_tx,
        decompressor: HeaderDecompressor::new(),
        streams: HashMap::new(),
        last_id,
    };
    tokio::spawn(reader.run(r, done_rx));
    Incoming {
        rx: in_rx,
        tx: data_tx,
    }
}

/// The streams a client opens, in order.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::UnboundedReceiver<Stream>,
    tx: mpsc::Sender<Out>,
}

impl Incoming {
    /// The next stream the client opened (already answered with SYN_REPLY);
    /// `None` once the connection has ended (EOF, GOAWAY, an error, [`close`]).
    ///
    /// [`close`]: Incoming::close
    pub async fn next(&mut self) -> Option<Stream> {
        self.rx.recv().await
    }

    /// Sends GOAWAY after every frame already queued, then closes the
    /// connection: all streams end. Dropping `Incoming` does not close it.
    pub async fn close(&self) {
        let _ = self.tx.send(Out::GoAway).await;
    }
}

/// One client-opened stream.
#[derive(Debug)]
pub struct Stream {
    pub id: u32,
    /// The SYN_STREAM headers as sent (names lowercase; several values of one
    /// name stay NUL-separated).
    pub headers: Vec<(String, String)>,
    pub reader: StreamReader,
    pub writer: StreamWriter,
}

impl Stream {
    /// The value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the client sends on a stream.
///
/// Each stream buffers up to [`STREAM_QUEUE`] data frames; when one is full
/// the reader task waits, which stops reading the connection and lets TCP
/// push back on the client. Without SPDY flow control (spdystream has none)
/// that is the only way to keep a fast uploader (`kubectl cp`) from filling
/// memory; the kubelet's spdystream behaves the same. PINGs already read are
/// answered regardless, as control frames bypass queued data. Keep reading
/// every stream you hold, or drop its `StreamReader`: then its data is
/// discarded instead.
#[derive(Debug)]
pub struct StreamReader {
    rx: mpsc::Receiver<Bytes>,
}

impl StreamReader {
    /// The next chunk of data; `None` after the client's FIN or RST_STREAM, or
    /// when the connection ends.
    pub async fn read(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }
}

/// Our sending side of a stream. Clones share it.
#[derive(Debug, Clone)]
pub struct StreamWriter {
    id: u32,
    state: Arc<AtomicU8>,
    tx: mpsc::Sender<Out>,
}

impl StreamWriter {
    /// Queues `data` as data frames of at most 32 KiB. Fails once the stream
    /// was finished or reset (by either side) or the connection is gone.
    pub async fn write(&self, mut data: Bytes) -> io::Result<()> {
        while !data.is_empty() {
            if self.state.load(Ordering::Acquire) != OPEN {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "SPDY stream closed",
                ));
            }
            let chunk = data.split_to(data.len().min(MAX_DATA_FRAME));
            self.send(Frame::Data {
                stream_id: self.id,
                flags: 0,
                data: chunk,
            })
            .await?;
        }
        Ok(())
    }

    /// Sends FIN (an empty data frame with FLAG_FIN) once.
    pub async fn finish(&self) {
        let ok = self
            .state
            .compare_exchange(OPEN, FINISHED, Ordering::AcqRel, Ordering::Acquire);
        if ok.is_ok() {
            let _ = self
                .send(Frame::Data {
                    stream_id: self.id,
                    flags: FLAG_FIN,
                    data: Bytes::new(),
                })
                .await;
        }
    }

    /// Sends RST_STREAM CANCEL, unless the stream was already reset.
    pub async fn reset(&self) {
        if self.state.swap(RESET, Ordering::AcqRel) != RESET {
            let _ = self
                .send(Frame::RstStream {
                    stream_id: self.id,
                    status: RST_CANCEL,
                })
                .await;
        }
    }

    async fn send(&self, frame: Frame) -> io::Result<()> {
        self.tx
            .send(Out::Frame(frame))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "SPDY connection closed"))
    }
}

/// Drains the control queue first (SYN_REPLY, PING answers, RST from the
/// reader; unbounded so the reader never waits on us), then writers' frames.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut ctrl: mpsc::UnboundedReceiver<Out>,
    mut data: mpsc::Receiver<Out>,
    _done: oneshot::Sender<()>,
    last_id: Arc<AtomicU32>,
) {
    let mut compressor = HeaderCompressor::new();
    let mut buf = BytesMut::with_capacity(WRITE_BATCH + MAX_DATA_FRAME);
    loop {
        // `None` from the control queue: the reader is gone, so is the connection.
        let next = tokio::select! {
            biased;
            out = ctrl.recv() => out,
            out = data.recv() => out,
        };
        let Some(mut out) = next else { break };
        let mut closing = false;
        loop {
            match out {
                Out::Frame(frame) => frame.encode(&mut buf),
                Out::SynReply(stream_id) => match compressor.compress::<&str, &str>(&[]) {
                    Ok(block) => Frame::SynReply {
                        stream_id,
                        flags: 0,
                        block: block.into(),
                    }
                    .encode(&mut buf),
                    Err(e) => {
                        debug!(error = %e, "spdy: compressing headers failed");
                        closing = true;
                    }
                },
                Out::GoAway => {
                    let last_good_stream_id = last_id.load(Ordering::Relaxed);
                    Frame::GoAway {
                        last_good_stream_id,
                        status: 0,
                    }
                    .encode(&mut buf);
                    closing = true;
                }
            }
            if closing || buf.len() >= WRITE_BATCH {
                break;
            }
            match ctrl.try_recv().or_else(|_| data.try_recv()) {
                Ok(o) => out = o,
                Err(_) => break,
            }
        }
        if let Err(e) = async {
            w.write_all(&buf).await?;
            w.flush().await
        }
        .await
        {
            debug!(error = %e, "spdy: write failed");
            break;
        }
        buf.clear();
        if closing {
            break;
        }
    }
    let _ = w.shutdown().await;
    // Dropping `_done` stops the reader.
}

struct Entry {
    /// `None` once the client finished its side or stopped being read.
    tx: Option<mpsc::Sender<Bytes>>,
    state: Arc<AtomicU8>,
}

struct Reader {
    ctrl: mpsc::UnboundedSender<Out>,
    data: mpsc::Sender<Out>,
    incoming: mpsc::UnboundedSender<Stream>,
    decompressor: HeaderDecompressor,
    streams: HashMap<u32, Entry>,
    last_id: Arc<AtomicU32>,
}

impl Reader {
    async fn run<R: AsyncRead + Unpin>(mut self, mut r: R, mut done: oneshot::Receiver<()>) {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            loop {
                let frame = match Frame::decode(&mut buf) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => {
                        debug!(error = %e, "spdy: bad frame");
                        return;
                    }
                };
                let go_on = tokio::select! {
                    go_on = self.handle(frame) => go_on,
                    _ = &mut done => false,
                };
                if !go_on {
                    return;
                }
            }
            buf.reserve(32 * 1024);
            tokio::select! {
                n = r.read_buf(&mut buf) => match n {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) => {
                        debug!(error = %e, "spdy: read failed");
                        return;
                    }
                },
                _ = &mut done => return,
            }
        }
    }

    /// Acts on one frame; `false` ends the connection.
    async fn handle(&mut self, frame: Frame) -> bool {
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                block,
                ..
            } => {
                let headers = match self.decompressor.decompress(&block) {
                    Ok(h) => h,
                    Err(e) => {
                        debug!(error = %e, "spdy: bad SYN_STREAM headers");
                        return false;
                    }
                };
                if stream_id == 0 || self.streams.contains_key(&stream_id) {
                    let rst = Frame::RstStream {
                        stream_id,
                        status: RST_PROTOCOL_ERROR,
                    };
                    let _ = self.ctrl.send(Out::Frame(rst));
                    return true;
                }
                // Forget streams both sides are done with.
                self.streams
                    .retain(|_, e| e.tx.is_some() || e.state.load(Ordering::Acquire) == OPEN);
                let (tx, rx) = mpsc::channel(STREAM_QUEUE);
                let ours = if flags & FLAG_UNIDIRECTIONAL != 0 {
                    FINISHED
                } else {
                    OPEN
                };
                let state = Arc::new(AtomicU8::new(ours));
                let entry = Entry {
                    tx: (flags & FLAG_FIN == 0).then_some(tx),
                    state: state.clone(),
                };
                self.streams.insert(stream_id, entry);
                self.last_id.fetch_max(stream_id, Ordering::Relaxed);
                let _ = self.ctrl.send(Out::SynReply(stream_id));
                let stream = Stream {
                    id: stream_id,
                    headers,
                    reader: StreamReader { rx },
                    writer: StreamWriter {
                        id: stream_id,
                        state,
                        tx: self.data.clone(),
                    },
                };
                let _ = self.incoming.send(stream);
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let Some(entry) = self.streams.get_mut(&stream_id) else {
                    return true;
                };
                if let Some(tx) = &entry.tx
                    && !data.is_empty()
                    && tx.send(data).await.is_err()
                {
                    entry.tx = None;
                }
                if flags & FLAG_FIN != 0 {
                    entry.tx = None;
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(entry) = self.streams.remove(&stream_id) {
                    entry.state.store(RESET, Ordering::Release);
                }
            }
            // Odd ids are the client's pings; an even one would be an answer
            // to a ping of ours (we send none), and echoing it would loop.
            Frame::Ping { id } => {
                if id & 1 == 1 {
                    let _ = self.ctrl.send(Out::Frame(Frame::Ping { id }));
                }
            }
            Frame::GoAway { .. } => return false,
            // Decompressed only to keep the shared zlib context in step.
            Frame::Headers { block, .. } | Frame::SynReply { block, .. } => {
                if let Err(e) = self.decompressor.decompress(&block) {
                    debug!(error = %e, "spdy: bad header block");
                    return false;
                }
            }
            Frame::Settings { .. } | Frame::WindowUpdate { .. } | Frame::Unknown { .. } => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
    use tokio::time::timeout;

    use super::*;

    /// A minimal spdystream-like client built from the frame and header modules.
    struct ClientW {
        w: WriteHalf<DuplexStream>,
        compressor: HeaderCompressor,
    }

    struct ClientR {
        r: ReadHalf<DuplexStream>,
        buf: BytesMut,
        decompressor: HeaderDecompressor,
    }

    fn connect() -> (Incoming, ClientW, ClientR) {
        let (server, client) = tokio::io::duplex(16 * 1024);
        let (r, w) = tokio::io::split(client);
        let cw = ClientW {
            w,
            compressor: HeaderCompressor::new(),
        };
        let cr = ClientR {
            r,
            buf: BytesMut::new(),
            decompressor: HeaderDecompressor::new(),
        };
        (serve(server), cw, cr)
    }

    impl ClientW {
        async fn send(&mut self, frame: Frame) {
            let mut buf = BytesMut::new();
            frame.encode(&mut buf);
            self.w.write_all(&buf).await.unwrap();
        }

        async fn open(&mut self, stream_id: u32, headers: &[(&str, &str)]) {
            let block = self.compressor.compress(headers).unwrap().into();
            self.send(Frame::SynStream {
                stream_id,
                assoc_id: 0,
                priority: 0,
                slot: 0,
                flags: 0,
                block,
            })
            .await;
        }

        async fn data(&mut self, stream_id: u32, data: &[u8], fin: bool) {
            let flags = if fin { FLAG_FIN } else { 0 };
            let data = Bytes::copy_from_slice(data);
            self.send(Frame::Data {
                stream_id,
                flags,
                data,
            })
            .await;
        }
    }

    impl ClientR {
        /// The next frame, or `None` at EOF. SYN_REPLY blocks are checked empty.
        async fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(frame) = Frame::decode(&mut self.buf).unwrap() {
                    if let Frame::SynReply { block, .. } = &frame {
                        assert!(self.decompressor.decompress(block).unwrap().is_empty());
                    }
                    return Some(frame);
                }
                if self.r.read_buf(&mut self.buf).await.unwrap() == 0 {
                    return None;
                }
            }
        }
    }

    async fn read_all(reader: &mut StreamReader) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(chunk) = reader.read().await {
            all.extend_from_slice(&chunk);
        }
        all
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn two_streams_exchange_data() {
        timeout(Duration::from_secs(10), async {
            let (mut incoming, mut cw, mut cr) = connect();
            cw.open(
                1,
                &[("streamtype", "error"), ("port", "80"), ("requestid", "0")],
            )
            .await;
            cw.open(
                3,
                &[("streamtype", "data"), ("port", "80"), ("requestid", "0")],
            )
            .await;
            for id in [1, 3] {
                let reply = cr.next().await.unwrap();
                assert!(matches!(reply, Frame::SynReply { stream_id, .. } if stream_id == id));
            }
            let error = incoming.next().await.unwrap();
            assert_eq!((error.id, error.header("StreamType")), (1, Some("error")));
            let mut data = incoming.next().await.unwrap();
            assert_eq!(data.id, 3);
            assert_eq!(data.header("port"), Some("80"));
            assert_eq!(data.header("requestid"), Some("0"));

            cw.data(3, b"GET / HTTP/1.0\r\n\r\n", true).await;
            assert_eq!(read_all(&mut data.reader).await, b"GET / HTTP/1.0\r\n\r\n");
            data.writer
                .write(Bytes::from_static(b"HTTP/1.0 200 OK"))
                .await
                .unwrap();
            data.writer.finish().await;
            data.writer.finish().await; // FIN only once

            let want = [
                Frame::Data {
                    stream_id: 3,
                    flags: 0,
                    data: Bytes::from_static(b"HTTP/1.0 200 OK"),
                },
                Frame::Data {
                    stream_id: 3,
                    flags: FLAG_FIN,
                    data: Bytes::new(),
                },
            ];
            for frame in want {
                assert_eq!(cr.next().await.unwrap(), frame);
            }
            assert!(
                data.writer
                    .write(Bytes::from_static(b"late"))
                    .await
                    .is_err()
            );
            // HEADERS frames are decompressed in step: a later stream still decodes.
            let block = cw.compressor.compress(&[("x", "y")]).unwrap().into();
            cw.send(Frame::Headers {
                stream_id: 1,
                flags: 0,
                block,
            })
            .await;
            cw.open(5, &[("streamtype", "data"), ("port", "81")]).await;
            assert_eq!(incoming.next().await.unwrap().header("port"), Some("81"));
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn ping_is_echoed() {
        timeout(Duration::from_secs(10), async {
            let (_incoming, mut cw, mut cr) = connect();
            cw.send(Frame::Settings {
                flags: 0,
                payload: Bytes::from_static(&[0, 0, 0, 0]),
            })
            .await;
            cw.send(Frame::Ping { id: 1 }).await;
            cw.send(Frame::Ping { id: 2 }).await; // not ours to answer
            cw.send(Frame::Ping { id: 3 }).await;
            assert_eq!(cr.next().await.unwrap(), Frame::Ping { id: 1 });
            assert_eq!(cr.next().await.unwrap(), Frame::Ping { id: 3 });
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn rst_ends_reader_and_writes() {
        timeout(Duration::from_secs(10), async {
            let (mut incoming, mut cw, _cr) = connect();
            cw.open(1, &[("streamtype", "stdin")]).await;
            let mut stream = incoming.next().await.unwrap();
            cw.data(1, b"abc", false).await;
            cw.send(Frame::RstStream {
                stream_id: 1,
                status: RST_CANCEL,
            })
            .await;
            cw.data(1, b"dropped", false).await; // unknown stream by now
            assert_eq!(read_all(&mut stream.reader).await, b"abc");
            assert!(stream.writer.write(Bytes::from_static(b"x")).await.is_err());
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn eof_ends_everything() {
        timeout(Duration::from_secs(10), async {
            let (mut incoming, mut cw, mut cr) = connect();
            cw.data(7, b"for nobody", false).await;
            cw.open(1, &[("streamtype", "stdout")]).await;
            let mut stream = incoming.next().await.unwrap();
            assert!(matches!(cr.next().await, Some(Frame::SynReply { .. })));
            cw.w.shutdown().await.unwrap();
            assert!(incoming.next().await.is_none());
            assert!(stream.reader.read().await.is_none());
            // The writer task exits and shuts its side down: the client sees EOF.
            assert!(cr.next().await.is_none());
            assert!(stream.writer.write(Bytes::from_static(b"x")).await.is_err());
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn goaway_and_close_end_the_connection() {
        timeout(Duration::from_secs(10), async {
            let (mut incoming, mut cw, _cr) = connect();
            cw.send(Frame::GoAway {
                last_good_stream_id: 0,
                status: 0,
            })
            .await;
            assert!(incoming.next().await.is_none());

            let (mut incoming, mut cw, mut cr) = connect();
            cw.open(1, &[("streamtype", "error")]).await;
            let stream = incoming.next().await.unwrap();
            stream
                .writer
                .write(Bytes::from_static(b"bye"))
                .await
                .unwrap();
            incoming.close().await;
            assert!(matches!(cr.next().await, Some(Frame::SynReply { .. })));
            assert!(matches!(cr.next().await, Some(Frame::Data { .. })));
            let goaway = Frame::GoAway {
                last_good_stream_id: 1,
                status: 0,
            };
            assert_eq!(cr.next().await.unwrap(), goaway);
            assert!(cr.next().await.is_none());
            assert!(incoming.next().await.is_none());
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn large_transfers_both_ways() {
        const LEN: usize = (1 << 20) + 12345;
        timeout(Duration::from_secs(30), async {
            let (mut incoming, mut cw, mut cr) = connect();
            cw.open(1, &[("streamtype", "stdin")]).await;
            cw.open(3, &[("streamtype", "stdout")]).await;
            let mut stdin = incoming.next().await.unwrap();
            let stdout = incoming.next().await.unwrap();

            // Upload in 32 KiB frames while the server consumes concurrently.
            let upload = tokio::spawn(async move {
                for chunk in pattern(LEN).chunks(32 * 1024) {
                    cw.data(1, chunk, false).await;
                }
                cw.data(1, b"", true).await;
                cw
            });
            let got = read_all(&mut stdin.reader).await;
            assert!(got == pattern(LEN), "upload corrupted");
            let _cw = upload.await.unwrap();

            let download = tokio::spawn(async move {
                stdout
                    .writer
                    .write(Bytes::from(pattern(LEN)))
                    .await
                    .unwrap();
                stdout.writer.finish().await;
            });
            let mut got = Vec::new();
            loop {
                match cr.next().await.unwrap() {
                    Frame::Data {
                        stream_id: 3,
                        flags,
                        data,
                    } => {
                        assert!(data.len() <= 32 * 1024);
                        got.extend_from_slice(&data);
                        if flags & FLAG_FIN != 0 {
                            break;
                        }
                    }
                    Frame::SynReply { .. } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert!(got == pattern(LEN), "download corrupted");
            download.await.unwrap();
        })
        .await
        .unwrap();
    }
}

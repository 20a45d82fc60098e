//! Remote command sessions (exec and attach): stdin, stdout, stderr and terminal sizes between the client and
//! whatever runs the command, and the exit status at the end.
//!
//! Channels, whichever the framing: 0 stdin, 1 stdout, 2 stderr, 3 error (the exit `Status`), 4 resize
//! (`{"Width":80,"Height":24}` documents). Over SPDY each is a stream whose `streamtype` header names it.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::{Protocol, websocket};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: the client closes one of its channels (`[255, channel]`).
const CLOSE: u8 = 255;

/// client-go registers its WebSocket stream readers only after the 101 and drops output that arrives before
/// (`Unknown stream id 1, discarding message`), so the first output waits this long.
const FIRST_OUTPUT_DELAY: Duration = Duration::from_millis(100);
/// How long a SPDY client may take to open the streams it asked for.
const STREAMS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait, once everything is sent, for a SPDY client to hang up.
const HANG_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which streams the client asked for (the `stdin`, `stdout`, `stderr` and `tty` query parameters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Options {
    /// Reads the options from a query string; `command` parameters are the caller's.
    pub fn from_query(query: &str) -> Options {
        let mut options = Options::default();
        for (key, value) in form_pairs(query) {
            let on = matches!(value.as_str(), "true" | "1");
            match key.as_str() {
                "stdin" | "input" => options.stdin = on,
                "stdout" | "output" => options.stdout = on,
                "stderr" | "error" => options.stderr = on,
                "tty" => options.tty = on,
                _ => {}
            }
        }
        options
    }

    /// Under a terminal stderr is merged into stdout, so there is no stderr stream.
    fn wants_stderr(&self) -> bool {
        self.stderr && !self.tty
    }
}

/// The `key=value` pairs of a query string, percent-decoded.
pub fn form_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// A terminal's size, as the client reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

impl TerminalSize {
    fn from_json(value: &Value) -> Option<TerminalSize> {
        let dimension = |key: &str| value.get(key)?.as_u64()?.try_into().ok();
        Some(TerminalSize {
            width: dimension("Width")?,
            height: dimension("Height")?,
        })
    }
}

/// The command's side of a session. Output ends when `run` has dropped `stdout` and `stderr`; `stdin` ends
/// when the client closes it.
#[derive(Debug)]
pub struct Streams {
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    pub stdout: Option<mpsc::Sender<Bytes>>,
    pub stderr: Option<mpsc::Sender<Bytes>>,
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    /// It could not run (no such container, the runtime failed): the message goes to the client.
    Failed(String),
}

impl Outcome {
    /// The `Status` the client reads on the error channel.
    fn status(&self) -> Value {
        match self {
            Outcome::Exited(0) => json!({"metadata": {}, "status": "Success"}),
            Outcome::Exited(code) => json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: exit status {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            }),
            Outcome::Failed(message) => json!({
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "InternalError",
                "code": 500,
            }),
        }
    }
}

/// The session's side of the channels.
struct Ends {
    stdin: Option<mpsc::Sender<Bytes>>,
    stdout: Option<mpsc::Receiver<Bytes>>,
    stderr: Option<mpsc::Receiver<Bytes>>,
    resize: Option<mpsc::Sender<TerminalSize>>,
}

fn channels(options: Options) -> (Streams, Ends) {
    const DEPTH: usize = 16;
    fn pair<T>(wanted: bool) -> (Option<mpsc::Sender<T>>, Option<mpsc::Receiver<T>>) {
        if wanted {
            let (tx, rx) = mpsc::channel(DEPTH);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        }
    }
    let (stdin_tx, stdin_rx) = pair(options.stdin);
    let (stdout_tx, stdout_rx) = pair(options.stdout);
    let (stderr_tx, stderr_rx) = pair(options.wants_stderr());
    let (resize_tx, resize_rx) = pair(options.tty);
    (
        Streams {
            stdin: stdin_rx,
            stdout: stdout_tx,
            stderr: stderr_tx,
            resize: resize_rx,
        },
        Ends {
            stdin: stdin_tx,
            stdout: stdout_rx,
            stderr: stderr_rx,
            resize: resize_tx,
        },
    )
}

/// Serves a remote command session on `io`, an upgraded connection that speaks `protocol`: `run` runs the
/// command with the session's streams and says how it ended.
pub async fn serve<IO, F, Fut>(io: IO, protocol: Protocol, options: Options, run: F)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(Streams) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let (streams, ends) = channels(options);
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let command = async move {
        let _ = outcome_tx.send(run(streams).await);
    };
    match protocol {
        Protocol::Channels { v5 } => {
            futures::join!(command, over_websocket(io, v5, ends, outcome_rx));
        }
        Protocol::Spdy => {
            futures::join!(command, over_spdy(io, options, ends, outcome_rx));
        }
        Protocol::SpdyInWebSocket => {
            tracing::debug!("remote commands are not tunnelled in WebSocket");
        }
    }
}

/// The receivers of stdout and stderr as one stream of `(channel, data)`, ending when both have.
fn output(ends: &mut Ends) -> impl futures::Stream<Item = (u8, Bytes)> + use<> {
    let tagged = |rx: Option<mpsc::Receiver<Bytes>>, channel: u8| {
        futures::stream::unfold(rx, move |rx| async move {
            let mut rx = rx?;
            let data = rx.recv().await?;
            Some(((channel, data), Some(rx)))
        })
    };
    futures::stream::select(
        tagged(ends.stdout.take(), STDOUT),
        tagged(ends.stderr.take(), STDERR),
    )
}

async fn over_websocket<IO>(io: IO, v5: bool, mut ends: Ends, outcome: oneshot::Receiver<Outcome>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = websocket::open(io).await.split();
    let output = output(&mut ends);
    let (mut stdin, resize) = (ends.stdin, ends.resize);
    // Reading also answers the client's pings, so it goes on until the session is over.
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = source.next().await {
            // The Python client sends text it is given as text messages, channel byte and all.
            let data = match message {
                Message::Binary(data) if !data.is_empty() => data,
                Message::Text(text) if !text.is_empty() => Bytes::from(text),
                Message::Close(_) => break,
                _ => continue,
            };
            match data[0] {
                STDIN => {
                    if let Some(tx) = &stdin {
                        let _ = tx.send(data.slice(1..)).await;
                    }
                }
                RESIZE => {
                    let size = serde_json::from_slice(&data[1..])
                        .ok()
                        .and_then(|v: Value| TerminalSize::from_json(&v));
                    if let (Some(tx), Some(size)) = (&resize, size) {
                        let _ = tx.send(size).await;
                    }
                }
                CLOSE if v5 && data.get(1) == Some(&STDIN) => stdin = None,
                _ => {}
            }
        }
    });
    tokio::time::sleep(FIRST_OUTPUT_DELAY).await;
    let mut output = std::pin::pin!(output);
    let mut connected = true;
    while let Some((channel, data)) = output.next().await {
        // A client that has gone still lets the command finish (and drains its output).
        connected = connected
            && sink
                .send(websocket::on_channel(channel, &data))
                .await
                .is_ok();
    }
    let outcome = outcome
        .await
        .unwrap_or_else(|_| Outcome::Failed("the command was abandoned".into()));
    if connected {
        let status = outcome.status().to_string();
        let _ = sink
            .send(websocket::on_channel(ERROR, status.as_bytes()))
            .await;
        let _ = sink.send(websocket::close()).await;
    }
    reader.abort();
}

async fn over_spdy<IO>(
    io: IO,
    options: Options,
    mut ends: Ends,
    outcome: oneshot::Receiver<Outcome>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut incoming = gantry_spdy::serve(io);
    let mut wanted: Vec<&str> = vec!["error"];
    for (on, kind) in [
        (options.stdin, "stdin"),
        (options.stdout, "stdout"),
        (options.wants_stderr(), "stderr"),
        (options.tty, "resize"),
    ] {
        if on {
            wanted.push(kind);
        }
    }
    let mut opened: Vec<(String, gantry_spdy::Stream)> = Vec::new();
    let deadline = tokio::time::Instant::now() + STREAMS_TIMEOUT;
    while !wanted
        .iter()
        .all(|w| opened.iter().any(|(kind, _)| kind == w))
    {
        match tokio::time::timeout_at(deadline, incoming.next()).await {
            Ok(Some(stream)) => {
                let kind = stream.header("streamtype").unwrap_or_default().to_owned();
                opened.push((kind, stream));
            }
            _ => {
                tracing::debug!(?wanted, "the client did not open the streams it asked for");
                // What runs the command sees its output refused and stdin closed.
                return;
            }
        }
    }
    let mut take = |kind: &str| {
        let at = opened.iter().position(|(k, _)| k == kind)?;
        Some(opened.swap_remove(at).1)
    };
    let (error, stdin, stdout, stderr, resize) = (
        take("error"),
        take("stdin"),
        take("stdout"),
        take("stderr"),
        take("resize"),
    );
    let mut writers: Vec<gantry_spdy::StreamWriter> = Vec::new();
    if let (Some(mut stream), Some(tx)) = (stdin, ends.stdin.take()) {
        writers.push(stream.writer.clone());
        tokio::spawn(async move {
            while let Some(data) = stream.reader.read().await {
                if tx.send(data).await.is_err() {
                    break;
                }
            }
        });
    }
    if let (Some(mut stream), Some(tx)) = (resize, ends.resize.take()) {
        writers.push(stream.writer.clone());
        tokio::spawn(async move {
            // A stream of JSON documents, split anywhere.
            let mut pending = Vec::new();
            while let Some(data) = stream.reader.read().await {
                pending.extend_from_slice(&data);
                let mut documents =
                    serde_json::Deserializer::from_slice(&pending).into_iter::<Value>();
                let mut used = 0;
                while let Some(Ok(document)) = documents.next() {
                    used = documents.byte_offset();
                    if let Some(size) = TerminalSize::from_json(&document) {
                        let _ = tx.send(size).await;
                    }
                }
                pending.drain(..used);
            }
        });
    }
    let output = output(&mut ends);
    let mut output = std::pin::pin!(output);
    while let Some((channel, data)) = output.next().await {
        let stream = if channel == STDOUT { &stdout } else { &stderr };
        if let Some(stream) = stream {
            let _ = stream.writer.write(data).await;
        }
    }
    for stream in [&stdout, &stderr].into_iter().flatten() {
        stream.writer.finish().await;
    }
    let outcome = outcome
        .await
        .unwrap_or_else(|_| Outcome::Failed("the command was abandoned".into()));
    if let Some(error) = &error {
        // An empty error stream means success.
        if outcome != Outcome::Exited(0) {
            let _ = error
                .writer
                .write(outcome.status().to_string().into())
                .await;
        }
        error.writer.finish().await;
    }
    for writer in writers {
        writer.finish().await;
    }
    // The client hangs up once it has read everything; one that does not is hung up on.
    let _ = tokio::time::timeout(HANG_UP_TIMEOUT, async {
        while incoming.next().await.is_some() {}
    })
    .await;
    incoming.close().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn options_and_commands_come_from_the_query() {
        let query = "command=sh&command=-c&command=echo%20hi+there&container=c&stdin=true&stdout=true&tty=1";
        let options = Options::from_query(query);
        assert_eq!(
            options,
            Options {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }
        );
        let command: Vec<String> = form_pairs(query)
            .into_iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(command, ["sh", "-c", "echo hi there"]);
    }

    #[test]
    fn exit_codes_become_the_status_kubectl_reads() {
        assert_eq!(Outcome::Exited(0).status()["status"], "Success");
        let failed = Outcome::Exited(3).status();
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        assert_eq!(Outcome::Failed("no".into()).status()["message"], "no");
    }

    /// A WebSocket client over an in-memory pipe: stdin reaches the command, its output and exit status come
    /// back on their channels, and the session closes.
    #[tokio::test]
    async fn a_websocket_session_carries_stdin_output_and_the_exit_status() {
        use tokio_tungstenite::tungstenite::protocol::Role;
        let (client_io, server_io) = tokio::io::duplex(4096);
        let options = Options {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        let server = tokio::spawn(serve(
            server_io,
            Protocol::Channels { v5: true },
            options,
            |mut streams: Streams| async move {
                let mut stdin = streams.stdin.take().unwrap();
                let stdout = streams.stdout.take().unwrap();
                let stderr = streams.stderr.take().unwrap();
                let mut received = Vec::new();
                while let Some(data) = stdin.recv().await {
                    received.extend_from_slice(&data);
                }
                stdout.send(Bytes::from(received)).await.unwrap();
                stderr.send(Bytes::from_static(b"oops")).await.unwrap();
                Outcome::Exited(7)
            },
        ));
        let mut client =
            tokio_tungstenite::WebSocketStream::from_raw_socket(client_io, Role::Client, None)
                .await;
        client
            .send(websocket::on_channel(STDIN, b"hello "))
            .await
            .unwrap();
        client
            .send(websocket::on_channel(STDIN, b"world"))
            .await
            .unwrap();
        client
            .send(Message::Binary(Bytes::from_static(&[CLOSE, STDIN])))
            .await
            .unwrap();
        let mut by_channel: std::collections::BTreeMap<u8, Vec<u8>> = Default::default();
        while let Some(Ok(message)) = client.next().await {
            if let Message::Binary(data) = message {
                by_channel
                    .entry(data[0])
                    .or_default()
                    .extend_from_slice(&data[1..]);
            }
        }
        server.await.unwrap();
        assert_eq!(by_channel[&STDOUT], b"hello world");
        assert_eq!(by_channel[&STDERR], b"oops");
        let status: Value = serde_json::from_slice(&by_channel[&ERROR]).unwrap();
        assert_eq!(status["details"]["causes"][0]["message"], "7");
    }
}

//! Container probes (startup, readiness, liveness): `exec` in the container, `httpGet`, `tcpSocket` and `grpc`
//! (the gRPC health checking protocol over cleartext HTTP/2) against the pod's IP, each with its timeout, run
//! every `periodSeconds` after `initialDelaySeconds`, and judged by `successThreshold`/`failureThreshold`
//! consecutive results, as the kubelet's prober does.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::events;
use crate::worker::ContainerHost;

/// The three probes a container can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Until it succeeds, the others do not run and the container has not `started`; failing, it kills.
    Startup,
    /// The container's `ready`.
    Readiness,
    /// Failing, it kills the container.
    Liveness,
}

impl Kind {
    /// The container's field that holds the probe.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Startup => "startupProbe",
            Kind::Readiness => "readinessProbe",
            Kind::Liveness => "livenessProbe",
        }
    }

    /// As the kubelet's events name it (`Startup probe failed: …`).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Readiness => "Readiness",
            Kind::Liveness => "Liveness",
        }
    }

    /// The verdict before any result: not ready, alive, not known to have started.
    pub fn initial(self) -> Option<bool> {
        match self {
            Kind::Startup => None,
            Kind::Readiness => Some(false),
            Kind::Liveness => Some(true),
        }
    }
}

/// A probe's timing and thresholds, defaulted as upstream defaults them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(probe: &Value) -> Timing {
        let seconds = |field: &str, default: u64| {
            Duration::from_secs(probe.get(field).and_then(Value::as_u64).unwrap_or(default))
        };
        let count = |field: &str, default: u32| {
            probe
                .get(field)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n > 0)
                .unwrap_or(default)
        };
        Timing {
            initial_delay: seconds("initialDelaySeconds", 0),
            period: seconds("periodSeconds", 10).max(Duration::from_secs(1)),
            timeout: seconds("timeoutSeconds", 1).max(Duration::from_secs(1)),
            success_threshold: count("successThreshold", 1),
            failure_threshold: count("failureThreshold", 3),
        }
    }
}

/// Runs `probe` once against the container `id` of the pod at `pod_ip`; `Err` says why it failed.
pub async fn check(
    probe: &Value,
    container: &Value,
    host: &dyn ContainerHost,
    id: &str,
    pod_ip: Option<&str>,
) -> Result<(), String> {
    let timeout = Timing::of(probe).timeout;
    if let Some(exec) = probe.get("exec") {
        let command: Vec<String> = exec
            .get("command")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        return match host.exec(id, &command, timeout).await {
            Ok(0) => Ok(()),
            Ok(code) => Err(format!(
                "command '{}' exited with {code}",
                command.join(" ")
            )),
            Err(e) => Err(e.to_string()),
        };
    }
    let address = |action: &Value| -> Result<(String, u16), String> {
        let ip = action
            .get("host")
            .and_then(Value::as_str)
            .or(pod_ip)
            .ok_or("the pod has no IP")?
            .to_owned();
        Ok((ip, port(action.get("port"), container)?))
    };
    if let Some(http) = probe.get("httpGet") {
        let (ip, port) = address(http)?;
        let path = http.get("path").and_then(Value::as_str).unwrap_or("/");
        return tokio::time::timeout(timeout, http_get(&ip, port, path))
            .await
            .map_err(|_| format!("Get \"http://{ip}:{port}{path}\": timed out"))?;
    }
    if let Some(tcp) = probe.get("tcpSocket") {
        let (ip, port) = address(tcp)?;
        return match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((ip.as_str(), port)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {ip}:{port}: {e}")),
            Err(_) => Err(format!("dial tcp {ip}:{port}: timed out")),
        };
    }
    if let Some(grpc) = probe.get("grpc") {
        // Always the pod's IP: a grpc action has no host.
        let ip = pod_ip.ok_or("the pod has no IP")?;
        let port = port(grpc.get("port"), container)?;
        let service = grpc
            .get("service")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return grpc_check(ip, port, service, timeout).await;
    }
    Err("the probe names no exec, httpGet, tcpSocket or grpc action".into())
}

/// Runs a lifecycle hook (`preStop`, `postStart`): `exec`, `httpGet` or `sleep`, within `limit`.
pub async fn run_hook(
    hook: &Value,
    container: &Value,
    host: &dyn ContainerHost,
    id: &str,
    pod_ip: Option<&str>,
    limit: Duration,
) -> Result<(), String> {
    if let Some(seconds) = hook.pointer("/sleep/seconds").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_secs(seconds).min(limit)).await;
        return Ok(());
    }
    // An exec or httpGet hook is a probe with the whole limit as its timeout.
    let mut action = hook.clone();
    action["timeoutSeconds"] = Value::from(limit.as_secs().max(1));
    check(&action, container, host, id, pod_ip).await
}

/// A probe's port: a number, or the name of one of the container's ports.
fn port(port: Option<&Value>, container: &Value) -> Result<u16, String> {
    match port {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("invalid port".into()),
        Some(Value::String(name)) => container
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("the container has no port named {name}")),
        _ => Err("the probe has no port".into()),
    }
}

/// An HTTP/1.1 GET; success is a status from 200 to 399.
async fn http_get(ip: &str, port: u16, path: &str) -> Result<(), String> {
    let url = format!("http://{ip}:{port}{path}");
    let mut stream = tokio::net::TcpStream::connect((ip, port))
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let mut head = [0u8; 64];
    let read = stream
        .read(&mut head)
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let status = String::from_utf8_lossy(&head[..read])
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("Get \"{url}\": not an HTTP answer"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {status}"))
    }
}

/// How long a gRPC probe waits between attempts to connect (grpc-go's blocking dial retries until the timeout).
const GRPC_RETRY: Duration = Duration::from_millis(100);

/// The gRPC health checking protocol's `grpc.health.v1.Health/Check` for `service`, over cleartext HTTP/2
/// (prior knowledge) to `ip:port`, within `timeout`: success only for an HTTP 200 answer with `grpc-status` 0
/// and the status `SERVING`. Failures are worded as the kubelet's gRPC prober words them.
pub async fn grpc_check(
    ip: &str,
    port: u16,
    service: &str,
    timeout: Duration,
) -> Result<(), String> {
    let address = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let within = events::go_duration(timeout);
    let deadline = tokio::time::Instant::now() + timeout;
    let connect = || async {
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| e.to_string())?;
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        // The connection ends when the sender is dropped, or with the probe's time.
        tokio::spawn(tokio::time::timeout(timeout, connection));
        Ok::<_, String>(sender)
    };
    let mut sender = loop {
        match tokio::time::timeout_at(deadline, connect()).await {
            Ok(Ok(sender)) => break sender,
            Ok(Err(_)) if tokio::time::Instant::now() < deadline => {
                let next = tokio::time::Instant::now() + GRPC_RETRY;
                tokio::time::sleep_until(next.min(deadline)).await;
            }
            _ => {
                return Err(format!(
                    "timeout: failed to connect service {address:?} within {within}: context deadline exceeded"
                ));
            }
        }
    };
    let request = http::Request::post(format!("http://{address}/grpc.health.v1.Health/Check"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(http::header::USER_AGENT, "kube-probe/1.33")
        .body(Full::new(Bytes::from(grpc_frame(&health_check_request(
            service,
        )))))
        .map_err(|e| format!("error: health rpc probe failed: {e}"))?;
    let rpc = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| rpc_error(14, &e.to_string()))?;
        let (head, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| rpc_error(14, &e.to_string()))?;
        let trailers = body.trailers().cloned();
        Ok::<_, String>((head, trailers, body.to_bytes()))
    };
    let (head, trailers, body) = tokio::time::timeout_at(deadline, rpc)
        .await
        .map_err(|_| format!("timeout: health rpc did not complete within {within}"))??;
    if head.status != http::StatusCode::OK {
        let status = head.status;
        let message = format!(
            "unexpected HTTP status code received from server: {} ({})",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        );
        return Err(rpc_failure(
            grpc_code_of_http(status.as_u16()),
            &message,
            &within,
        ));
    }
    // `grpc-status` in the trailers, or in the headers of a trailers-only answer.
    let field = |name: &str| {
        trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .or_else(|| head.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let Some(code) = field("grpc-status") else {
        let message = "server closed the stream without sending trailers";
        return Err(rpc_failure(13, message, &within));
    };
    let code: u32 = code
        .trim()
        .parse()
        .map_err(|_| rpc_failure(13, &format!("malformed grpc-status: {code:?}"), &within))?;
    if code != 0 {
        let message = percent_decode(&field("grpc-message").unwrap_or_default());
        return Err(rpc_failure(code, &message, &within));
    }
    let status = grpc_message(&body).and_then(serving_status).map_err(|e| {
        rpc_failure(
            13,
            &format!("grpc: failed to unmarshal the received message: {e}"),
            &within,
        )
    })?;
    if status == SERVING {
        Ok(())
    } else {
        Err(format!(
            "service unhealthy (responded with {:?})",
            serving_status_name(status)
        ))
    }
}

/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// A `HealthCheckRequest { string service = 1; }`, protobuf-encoded (empty for the server's overall health).
fn health_check_request(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        let mut length = service.len() as u64;
        while length >= 0x80 {
            message.push((length as u8 & 0x7f) | 0x80);
            length >>= 7;
        }
        message.push(length as u8);
        message.extend_from_slice(service.as_bytes());
    }
    message
}

/// A gRPC length-prefixed message: not compressed, its length (big-endian), itself.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// The one message of a unary answer's body.
fn grpc_message(body: &[u8]) -> Result<&[u8], String> {
    let Some((head, rest)) = body.split_at_checked(5) else {
        return Err("no message in the response".into());
    };
    if head[0] != 0 {
        return Err("compressed messages are not supported".into());
    }
    let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    rest.get(..length)
        .ok_or_else(|| "the message is cut short".into())
}

/// `HealthCheckResponse.status` (field 1, a varint; 0, `UNKNOWN`, when absent), skipping other fields.
fn serving_status(mut message: &[u8]) -> Result<u64, String> {
    fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first().ok_or("truncated varint")?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }
    fn skip(bytes: &mut &[u8], n: u64) -> Result<(), String> {
        let n = usize::try_from(n).map_err(|_| "field too long")?;
        *bytes = bytes.get(n..).ok_or("truncated field")?;
        Ok(())
    }
    let mut status = 0;
    while !message.is_empty() {
        let key = varint(&mut message)?;
        match key & 7 {
            0 => {
                let value = varint(&mut message)?;
                if key >> 3 == 1 {
                    status = value;
                }
            }
            1 => skip(&mut message, 8)?,
            2 => {
                let length = varint(&mut message)?;
                skip(&mut message, length)?;
            }
            5 => skip(&mut message, 4)?,
            wire => return Err(format!("unsupported wire type {wire}")),
        }
    }
    Ok(status)
}

/// `ServingStatus` as its enum's `String()` prints it.
fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// A failed health RPC with gRPC status `code`, as the kubelet's prober reports it.
fn rpc_failure(code: u32, message: &str, within: &str) -> String {
    match code {
        12 => format!(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {message}"
        ),
        4 => format!("timeout: health rpc did not complete within {within}"),
        _ => rpc_error(code, message),
    }
}

/// grpc-go's status error text.
fn rpc_error(code: u32, message: &str) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    let name = usize::try_from(code)
        .ok()
        .and_then(|c| NAMES.get(c))
        .map_or_else(|| format!("Code({code})"), |n| (*n).to_owned());
    format!("error: health rpc probe failed: rpc error: code = {name} desc = {message}")
}

/// The gRPC status grpc-go gives an answer that is not HTTP 200.
fn grpc_code_of_http(status: u16) -> u32 {
    match status {
        400 => 13,             // Internal
        401 => 16,             // Unauthenticated
        403 => 7,              // PermissionDenied
        404 => 12,             // Unimplemented
        429 | 502..=504 => 14, // Unavailable
        _ => 2,                // Unknown
    }
}

/// `grpc-message` is percent-encoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Consecutive results against thresholds, as the kubelet's probe workers count them: the state becomes a
/// success after `success_threshold` successes in a row, a failure after `failure_threshold` failures in a row.
/// It starts as [`Kind::initial`] says (`None`: neither yet, as a startup probe starts).
#[derive(Debug, Clone, Copy)]
pub struct Verdict {
    pub state: Option<bool>,
    last: Option<bool>,
    run: u32,
}

impl Verdict {
    pub fn new(state: Option<bool>) -> Verdict {
        Verdict {
            state,
            last: None,
            run: 0,
        }
    }

    /// Records one result; the new state if it changed.
    pub fn record(&mut self, ok: bool, timing: &Timing) -> Option<bool> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok {
            timing.success_threshold
        } else {
            timing.failure_threshold
        };
        if self.run < threshold || self.state == Some(ok) {
            return None;
        }
        self.state = Some(ok);
        Some(ok)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn timing_defaults_and_thresholds() {
        let timing = Timing::of(&json!({"periodSeconds": 2, "failureThreshold": 2}));
        assert_eq!(timing.period, Duration::from_secs(2));
        assert_eq!(timing.timeout, Duration::from_secs(1));
        assert_eq!(timing.success_threshold, 1);
        let mut verdict = Verdict::new(Kind::Liveness.initial());
        assert_eq!(verdict.record(false, &timing), None);
        assert_eq!(verdict.record(false, &timing), Some(false));
        assert_eq!(verdict.state, Some(false));
        assert_eq!(verdict.record(false, &timing), None);
        assert_eq!(verdict.record(true, &timing), Some(true));
        assert_eq!(verdict.state, Some(true));
        // A success in between starts the count of failures again.
        assert_eq!(verdict.record(false, &timing), None);
        assert_eq!(verdict.record(true, &timing), None);
        assert_eq!(verdict.record(false, &timing), None);
        assert_eq!(verdict.record(false, &timing), Some(false));

        // A startup probe is neither until it succeeds once or fails `failureThreshold` times in a row.
        let mut startup = Verdict::new(Kind::Startup.initial());
        assert_eq!(startup.record(false, &timing), None);
        assert_eq!(startup.state, None);
        assert_eq!(startup.record(true, &timing), Some(true));
        let mut startup = Verdict::new(Kind::Startup.initial());
        assert_eq!(startup.record(false, &timing), None);
        assert_eq!(startup.record(false, &timing), Some(false));

        // Readiness starts failing: failures change nothing, `successThreshold` successes make it pass.
        let timing = Timing::of(&json!({"successThreshold": 2}));
        let mut ready = Verdict::new(Kind::Readiness.initial());
        for _ in 0..5 {
            assert_eq!(ready.record(false, &timing), None);
        }
        assert_eq!(ready.record(true, &timing), None);
        assert_eq!(ready.record(true, &timing), Some(true));
    }

    #[test]
    fn named_ports_come_from_the_container() {
        let container = json!({"ports": [{"name": "http", "containerPort": 8080}]});
        assert_eq!(port(Some(&json!("http")), &container), Ok(8080));
        assert_eq!(port(Some(&json!(81)), &container), Ok(81));
        assert!(port(Some(&json!("nope")), &container).is_err());
    }

    #[tokio::test]
    async fn http_get_judges_the_status_line() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buffer = [0u8; 512];
                let _ = socket.read(&mut buffer).await;
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        assert_eq!(http_get("127.0.0.1", port, "/healthz").await, Ok(()));
        let err = http_get("127.0.0.1", port, "/healthz").await.unwrap_err();
        assert_eq!(err, "HTTP probe failed with statuscode: 503");
    }

    /// A gRPC server (HTTP/2 without TLS) on loopback whose `grpc.health.v1.Health/Check` answers `SERVING` for
    /// the service "", `NOT_SERVING` for "down", and `NOT_FOUND` (a trailers-only answer) for any other; its
    /// port.
    async fn health_server() -> u16 {
        use std::convert::Infallible;

        use http_body_util::StreamBody;
        use hyper::body::Frame;

        type Answer = http::Response<
            StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>,
        >;

        async fn check(
            request: http::Request<hyper::body::Incoming>,
        ) -> Result<Answer, Infallible> {
            assert_eq!(request.uri().path(), "/grpc.health.v1.Health/Check");
            assert_eq!(request.headers()["content-type"], "application/grpc");
            assert_eq!(request.headers()["te"], "trailers");
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let message = grpc_message(&body).unwrap();
            // `HealthCheckRequest { service = 1 }`: empty, or the tag, a one-byte length, the name.
            let service = match message {
                [] => "",
                [0x0a, length, name @ ..] if usize::from(*length) == name.len() => {
                    std::str::from_utf8(name).unwrap()
                }
                other => panic!("not a HealthCheckRequest: {other:?}"),
            };
            let answer = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc");
            let status = match service {
                "" => 1,
                "down" => 2,
                _ => {
                    // Trailers-only: the status in the headers, no body.
                    let answer = answer
                        .header("grpc-status", "5")
                        .header("grpc-message", "unknown%20service")
                        .body(StreamBody::new(futures::stream::iter(vec![])))
                        .unwrap();
                    return Ok(answer);
                }
            };
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            let frames = vec![
                Ok(Frame::data(Bytes::from(grpc_frame(&[0x08, status])))),
                Ok(Frame::trailers(trailers)),
            ];
            Ok(answer
                .body(StreamBody::new(futures::stream::iter(frames)))
                .unwrap())
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), hyper::service::service_fn(check)),
                );
            }
        });
        port
    }

    #[tokio::test]
    async fn grpc_probes_speak_the_health_checking_protocol() {
        let port = health_server().await;
        let second = Duration::from_secs(1);
        assert_eq!(grpc_check("127.0.0.1", port, "", second).await, Ok(()));
        assert_eq!(
            grpc_check("127.0.0.1", port, "down", second).await,
            Err("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        assert_eq!(
            grpc_check("127.0.0.1", port, "other", second).await,
            Err(
                "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
                    .into()
            )
        );
        // Through `check`, as a container's probe: the pod's IP, a named port.
        let probe = json!({"grpc": {"port": "grpc", "service": "down"}, "timeoutSeconds": 1});
        let container = json!({"ports": [{"name": "grpc", "containerPort": port}]});
        let host = NoHost;
        let verdict = check(&probe, &container, &host, "id", Some("127.0.0.1")).await;
        assert_eq!(
            verdict,
            Err("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        let probe = json!({"grpc": {"port": port}});
        assert_eq!(
            check(&probe, &container, &host, "id", Some("127.0.0.1")).await,
            Ok(())
        );

        // Nothing listening: it tries to connect until its time is up.
        let closed = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let started = std::time::Instant::now();
        let err = grpc_check("127.0.0.1", closed, "", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            format!(
                "timeout: failed to connect service \"127.0.0.1:{closed}\" within 300ms: context deadline exceeded"
            )
        );
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn grpc_messages_are_encoded_and_decoded_by_hand() {
        assert_eq!(health_check_request(""), b"");
        assert_eq!(health_check_request("ab"), b"\x0a\x02ab");
        let long = "x".repeat(200);
        assert_eq!(health_check_request(&long)[..3], [0x0a, 0xc8, 0x01]);
        assert_eq!(grpc_frame(b"\x08\x01"), b"\0\0\0\0\x02\x08\x01");
        assert_eq!(
            grpc_message(b"\0\0\0\0\x02\x08\x01\xff"),
            Ok(&b"\x08\x01"[..])
        );
        assert!(grpc_message(b"\0\0\0\0\x05\x08").is_err());
        // Unknown fields are skipped; an absent status is UNKNOWN.
        assert_eq!(serving_status(b"\x12\x01z\x08\x02"), Ok(2));
        assert_eq!(serving_status(b""), Ok(0));
        assert!(serving_status(b"\x08").is_err());
        assert_eq!(percent_decode("unknown%20service%"), "unknown service%");
        assert_eq!(
            rpc_failure(12, "nope", "1s"),
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): nope"
        );
    }

    /// A host without containers: probes here never exec.
    struct NoHost;

    #[async_trait::async_trait]
    impl ContainerHost for NoHost {
        async fn image(
            &self,
            _: &str,
            _: crate::worker::PullPolicy,
        ) -> Result<(String, crate::launch::ImageDefaults), crate::worker::HostError> {
            unreachable!()
        }
        async fn start_sandbox(
            &self,
            _: &Value,
        ) -> Result<crate::worker::SandboxInfo, crate::worker::HostError> {
            unreachable!()
        }
        async fn start_container(
            &self,
            _: &Value,
            _: &crate::worker::SandboxInfo,
            _: &Value,
            _: &crate::launch::Launch,
        ) -> Result<crate::worker::Started, crate::worker::HostError> {
            unreachable!()
        }
        async fn running_container(&self, _: &Value, _: &str) -> Option<crate::worker::Started> {
            unreachable!()
        }
        async fn wait_container(&self, _: &str) -> crate::worker::ExitInfo {
            unreachable!()
        }
        async fn exec(
            &self,
            _: &str,
            _: &[String],
            _: Duration,
        ) -> Result<i32, crate::worker::HostError> {
            unreachable!()
        }
        async fn stop_container(&self, _: &str, _: Duration) {}
        async fn remove_container(&self, _: &str) {}
        async fn stop_sandbox(&self, _: &crate::worker::SandboxInfo) {}
    }
}

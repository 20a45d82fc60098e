//! Container probes (readiness, liveness): `exec` in the container, `httpGet` and `tcpSocket` against the pod's
//! IP, each with its timeout, run every `periodSeconds` after `initialDelaySeconds`, and judged by
//! `successThreshold`/`failureThreshold` consecutive results, as the kubelet's prober does.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::worker::ContainerHost;

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
    Err(
        "the probe names no exec, httpGet or tcpSocket action (grpc probes are not supported yet)"
            .into(),
    )
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

/// Consecutive results against thresholds: the state changes after `success_threshold` successes or
/// `failure_threshold` failures in a row.
#[derive(Debug, Clone, Copy)]
pub struct Verdict {
    pub passing: bool,
    successes: u32,
    failures: u32,
}

impl Verdict {
    pub fn new(passing: bool) -> Verdict {
        Verdict {
            passing,
            successes: 0,
            failures: 0,
        }
    }

    /// Records one result; whether the state changed.
    pub fn record(&mut self, ok: bool, timing: &Timing) -> bool {
        if ok {
            self.failures = 0;
            self.successes += 1;
            if !self.passing && self.successes >= timing.success_threshold {
                self.passing = true;
                return true;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.passing && self.failures >= timing.failure_threshold {
                self.passing = false;
                return true;
            }
        }
        false
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
        let mut verdict = Verdict::new(true);
        assert!(!verdict.record(false, &timing));
        assert!(verdict.record(false, &timing));
        assert!(!verdict.passing);
        assert!(verdict.record(true, &timing));
        assert!(verdict.passing);
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
}

//! The volumes' figures (issue 8), on `gantry server` with its node agent and real containers:
//! - a ConfigMap change visible in mounted volumes: 100 pods mount the same ConfigMap; each round patches it
//!   (curl, the admin token) and polls the 100 pods' files on the node (the files the containers' bind mounts
//!   show) until every one has the new value; the baseline, in the same rounds, is a client's watch of the
//!   ConfigMap (`kubectl get -w`) seeing the change — the floor any node can do;
//! - a pod with one dynamically provisioned claim (default class `local-path`, WaitForFirstConsumer), from the
//!   claim's create request until a watch sees the pod Running; the baseline, alternating with it, is the same
//!   pod with an emptyDir instead.
//!
//! Run as root: `cargo bench -p gantry --bench volumes [-- --rounds 20]` (needs kubectl 1.33 and curl).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark: failed unwraps end it; blocking sleeps are fine

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::node::{IMAGE, KUBECTL, server};
use support::{Server, kubectl_dir, ok, write};

const PODS: usize = 100;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let server = server("10.56.0.0/24", "gbench56");
    let api = Api::new(&server);
    claims(&server, &api, rounds);
    config_maps(&server, &api, rounds);
}

/// Requests to the API server with curl and the admin token.
struct Api {
    url: String,
    token: String,
}

impl Api {
    fn new(server: &Server) -> Api {
        let tokens: Value = serde_json::from_str(
            &std::fs::read_to_string(server.dir.path().join("tokens")).unwrap(),
        )
        .unwrap();
        Api {
            url: server.url(""),
            token: tokens[0]["token"].as_str().unwrap().to_owned(),
        }
    }

    fn send(&self, method: &str, path: &str, content_type: &str, body: &str) {
        let out = Command::new("curl")
            .args(["-sfk", "-o", "/dev/null", "-X", method])
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg("-H")
            .arg(format!("Content-Type: {content_type}"))
            .args(["--data-binary", body])
            .arg(format!("{}{path}", self.url))
            .status()
            .unwrap();
        assert!(out.success(), "{method} {path} failed");
    }
}

/// Lines a long-running kubectl prints, each with when it arrived.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Watch {
    fn start(server: &Server, args: &[&str]) -> Watch {
        let mut child = Command::new(kubectl_dir().join(format!("kubectl.{KUBECTL}")))
            .arg("--kubeconfig")
            .arg(server.kubeconfig())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        Watch { child, lines }
    }

    /// When a line equal to `wanted` arrives (within 30 s).
    fn until(&self, wanted: &str) -> Instant {
        loop {
            let (at, line) = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("never saw {wanted:?}"));
            if line.trim() == wanted {
                return at;
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn claims(server: &Server, api: &Api, rounds: usize) {
    let watch = Watch::start(
        server,
        &[
            "get",
            "pods",
            "-w",
            "-o",
            "jsonpath={.metadata.name} {.status.phase}{\"\\n\"}",
        ],
    );
    let pod = |name: &str, volume: &str| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "volumes": [serde_json::from_str::<Value>(volume).unwrap()],
                "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                    "command": ["sleep", "3600"], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]
            }
        })
        .to_string()
    };
    let (mut with_claim, mut with_empty_dir) = (Vec::new(), Vec::new());
    for round in 0..=rounds {
        let (claim_pod, plain_pod) = (format!("claimed-{round}"), format!("plain-{round}"));
        let claim = serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": format!("data-{round}")},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
        });
        let start = Instant::now();
        api.send(
            "POST",
            "/api/v1/namespaces/default/persistentvolumeclaims",
            "application/json",
            &claim.to_string(),
        );
        let volume = format!(
            r#"{{"name": "data", "persistentVolumeClaim": {{"claimName": "data-{round}"}}}}"#
        );
        api.send(
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            &pod(&claim_pod, &volume),
        );
        let claimed = watch.until(&format!("{claim_pod} Running")) - start;
        let start = Instant::now();
        api.send(
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            &pod(&plain_pod, r#"{"name": "data", "emptyDir": {}}"#),
        );
        let plain = watch.until(&format!("{plain_pod} Running")) - start;
        // The first round warms up (image layers, the agent's first claim watch events).
        if round > 0 {
            with_claim.push(claimed);
            with_empty_dir.push(plain);
        }
        ok(
            KUBECTL,
            server,
            &["delete", "pod", &claim_pod, &plain_pod, "--wait=false"],
        );
    }
    let (claim, plain) = (median(&mut with_claim), median(&mut with_empty_dir));
    println!(
        "pod with a provisioned claim, create → Running: median {claim:?} (p90 {:?}); same pod with an emptyDir: median {plain:?}; ratio {:.2}",
        percentile(&mut with_claim, 0.9),
        claim.as_secs_f64() / plain.as_secs_f64()
    );
}

fn config_maps(server: &Server, api: &Api, rounds: usize) {
    ok(
        KUBECTL,
        server,
        &["create", "configmap", "shared", "--from-literal=v=start"],
    );
    let manifest = format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: readers}}
spec:
  replicas: {PODS}
  selector: {{matchLabels: {{app: readers}}}}
  template:
    metadata: {{labels: {{app: readers}}}}
    spec:
      terminationGracePeriodSeconds: 0
      volumes: [{{name: cfg, configMap: {{name: shared}}}}]
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [sleep, "3600"]
        resources: {{requests: {{cpu: 1m}}}}
        volumeMounts: [{{name: cfg, mountPath: /cfg}}]
"#
    );
    let path = write(server.dir.path(), "readers.yaml", &manifest);
    ok(KUBECTL, server, &["apply", "-f", path.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(600);
    let files: Vec<PathBuf> = loop {
        let list: Value = serde_json::from_str(&ok(
            KUBECTL,
            server,
            &["get", "pods", "-l", "app=readers", "-o", "json"],
        ))
        .unwrap();
        let running: Vec<PathBuf> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .map(|p| {
                let uid = p["metadata"]["uid"].as_str().unwrap();
                server
                    .dir
                    .path()
                    .join(format!("agent/pods/{uid}/volumes/cfg/v"))
            })
            .collect();
        if running.len() == PODS {
            break running;
        }
        assert!(
            Instant::now() < deadline,
            "only {} pods running",
            running.len()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let watch = Watch::start(
        server,
        &[
            "get",
            "configmap",
            "shared",
            "-w",
            "-o",
            "jsonpath={.data.v}{\"\\n\"}",
        ],
    );
    watch.until("start");
    let (mut visible, mut watched) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let value = format!("value-{round}");
        let patch = format!(r#"{{"data":{{"v":"{value}"}}}}"#);
        let start = Instant::now();
        api.send(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/shared",
            "application/merge-patch+json",
            &patch,
        );
        let mut pending: Vec<&PathBuf> = files.iter().collect();
        while !pending.is_empty() {
            pending.retain(|file| {
                if std::fs::read_to_string(file).is_ok_and(|v| v == value) {
                    visible.push(start.elapsed());
                    false
                } else {
                    true
                }
            });
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{} pods never saw {value}",
                pending.len()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        watched.push(watch.until(&value) - start);
    }
    let p99 = percentile(&mut visible, 0.99);
    println!(
        "configmap change visible in {PODS} pods' volumes ({} samples): median {:?}, p99 {p99:?}, max {:?}; a client's watch of it: median {:?}",
        visible.len(),
        median(&mut visible),
        percentile(&mut visible, 1.0),
        median(&mut watched),
    );
    ok(KUBECTL, server, &["delete", "deployment", "readers"]);
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[index]
}

fn median(samples: &mut [Duration]) -> Duration {
    percentile(samples, 0.5)
}

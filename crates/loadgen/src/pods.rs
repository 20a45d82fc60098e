//! The pods workload: how soon pods bound to a node run. A watch on the namespace's pods notes when each pod
//! is first Ready and when it is gone; pods are created one at a time (create → Ready, as `kubectl create`
//! then `kubectl wait` sees it), then a batch at once (all Ready, then all deleted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::stats::Summary;
use crate::workloads::Session;
use crate::{Client, Error};

const JSON: &str = "application/json";

/// The pods workload's figures.
#[derive(Clone, Copy, Debug)]
pub struct PodsResult {
    /// Create request to Ready seen through the watch, one pod at a time.
    pub single: Summary,
    /// Pods created at once.
    pub batch: usize,
    /// From the first create to the last pod Ready.
    pub batch_running: Duration,
    /// From the first delete to the last pod gone.
    pub batch_deleted: Duration,
}

/// When each pod (by name) was first seen Ready and seen deleted.
#[derive(Default)]
struct Seen {
    ready: Mutex<HashMap<String, Instant>>,
    gone: Mutex<HashMap<String, Instant>>,
    changed: Notify,
}

impl Seen {
    async fn wait(&self, deadline: Instant, done: impl Fn(&Seen) -> bool) -> Result<(), Error> {
        loop {
            let notified = self.changed.notified();
            if done(self) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                return Err(Error::Check(
                    "pods did not get there before the deadline".into(),
                ));
            }
        }
    }
}

/// Runs the workload in `session`'s namespace: pods of `image` on `node` (the first Ready node if `None`); the
/// batch stays running for `hold` before it is deleted.
pub async fn run(
    session: &Session,
    node: Option<&str>,
    image: &str,
    singles: usize,
    batch: usize,
    hold: Duration,
    timeout: Duration,
) -> Result<PodsResult, Error> {
    let client = session.client();
    let node = match node {
        Some(node) => node.to_owned(),
        None => ready_node(client).await?,
    };
    let collection = format!("/api/v1/namespaces/{}/pods", session.namespace());
    let seen = Arc::new(Seen::default());
    let watcher = tokio::spawn(watch(
        session.client().clone(),
        collection.clone(),
        seen.clone(),
    ));
    // Give the watch a moment to be established before the first create.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": image, "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"]}]}})
    };
    let create = |name: String| {
        let body = Bytes::from(pod(&name).to_string());
        let collection = collection.clone();
        async move {
            client
                .expect(
                    None,
                    Method::POST,
                    &collection,
                    JSON,
                    Some((JSON, body)),
                    &[StatusCode::CREATED],
                )
                .await
                .map(drop)
        }
    };
    let delete = |name: String| {
        let path = format!("{collection}/{name}");
        async move {
            client
                .expect(
                    None,
                    Method::DELETE,
                    &path,
                    JSON,
                    None,
                    &[StatusCode::OK, StatusCode::ACCEPTED],
                )
                .await
                .map(drop)
        }
    };
    let mut latencies = Vec::with_capacity(singles);
    for i in 0..singles {
        let name = format!("single-{i}");
        let start = Instant::now();
        create(name.clone()).await?;
        seen.wait(start + timeout, |s| {
            s.ready
                .lock()
                .map(|r| r.contains_key(&name))
                .unwrap_or(false)
        })
        .await?;
        let ready_at = seen.ready.lock().map(|r| r[&name]).unwrap_or(start);
        latencies.push(ready_at - start);
        delete(name).await?;
    }
    let names: Vec<String> = (0..batch).map(|i| format!("batch-{i}")).collect();
    let start = Instant::now();
    futures::future::try_join_all(names.iter().cloned().map(create)).await?;
    let all = |map: &Mutex<HashMap<String, Instant>>| {
        map.lock()
            .map(|m| names.iter().all(|n| m.contains_key(n)))
            .unwrap_or(false)
    };
    seen.wait(start + timeout, |s| all(&s.ready)).await?;
    let batch_running = start.elapsed();
    tokio::time::sleep(hold).await;
    let start = Instant::now();
    futures::future::try_join_all(names.iter().cloned().map(delete)).await?;
    seen.wait(start + timeout, |s| all(&s.gone)).await?;
    let batch_deleted = start.elapsed();
    watcher.abort();
    Ok(PodsResult {
        single: Summary::of(&mut latencies),
        batch,
        batch_running,
        batch_deleted,
    })
}

/// The first node whose Ready condition is True.
async fn ready_node(client: &Client) -> Result<String, Error> {
    let nodes: Value = serde_json::from_slice(
        &client
            .expect(
                None,
                Method::GET,
                "/api/v1/nodes",
                JSON,
                None,
                &[StatusCode::OK],
            )
            .await?,
    )?;
    nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| {
            n["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .and_then(|n| n["metadata"]["name"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::Check("no Ready node to run pods on".into()))
}

/// Follows the pods of `collection`, noting when each is first Ready and when it is deleted.
async fn watch(client: Arc<Client>, collection: String, seen: Arc<Seen>) -> Result<(), Error> {
    let path = format!("{collection}?watch=true&allowWatchBookmarks=false");
    let response = client.request(None, Method::GET, &path, JSON, None).await?;
    let mut body = response.into_body();
    let mut buffer: Vec<u8> = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        let now = Instant::now();
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let name = event["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let ready = event["object"]["status"]["conditions"]
                .as_array()
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            if event["type"] == "DELETED" {
                if let Ok(mut gone) = seen.gone.lock() {
                    gone.entry(name).or_insert(now);
                }
            } else if ready && let Ok(mut seen_ready) = seen.ready.lock() {
                seen_ready.entry(name).or_insert(now);
            }
            seen.changed.notify_waiters();
        }
    }
    Ok(())
}

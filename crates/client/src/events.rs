//! Events that the control plane's components (the scheduler, the controllers) write about objects, as
//! `kubectl describe` shows them ("From: default-scheduler"). Recording never blocks: events go on a bounded
//! queue (dropped when it is full) to one task that writes them, several at a time. Repeats of an event
//! (same object, reason and message) patch the first one's `count` and `lastTimestamp`, as client-go's
//! correlator does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Event as KubeEvent;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

/// Events waiting to be written; more are dropped.
const QUEUED: usize = 8192;
/// Writes in flight at once.
const WRITERS: usize = 32;
/// Distinct events remembered for aggregation.
const CORRELATED: usize = 4096;

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Involved {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Involved {
    /// Where events about the object go: its namespace, or `default` for a cluster-scoped one (as upstream).
    pub fn event_namespace(&self) -> &str {
        if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub object: Involved,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Where events go.
#[derive(Debug, Clone)]
pub struct Recorder {
    sender: mpsc::Sender<Event>,
}

impl Recorder {
    /// A recorder whose events `client` writes (in a task of its own) as `component`.
    pub fn start(client: Client, component: &'static str) -> Recorder {
        let (sender, receiver) = mpsc::channel(QUEUED);
        tokio::spawn(write(client, component, receiver));
        Recorder { sender }
    }

    pub fn record(&self, event: Event) {
        if let Err(e) = self.sender.try_send(event) {
            tracing::debug!("event dropped: {e}");
        }
    }
}

/// Now, as RFC 3339 in seconds (what `firstTimestamp` and `lastTimestamp` hold).
pub fn now() -> String {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// The core/v1 Event for `event`, called `name`, seen `count` times since `first`.
pub fn to_json(
    event: &Event,
    component: &str,
    name: &str,
    count: u32,
    first: &str,
    last: &str,
) -> Value {
    let o = &event.object;
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": o.event_namespace()},
        "involvedObject": {"apiVersion": o.api_version, "kind": o.kind, "name": o.name,
            "namespace": o.namespace, "uid": o.uid},
        "reason": event.reason,
        "message": event.message,
        "type": if event.warning { "Warning" } else { "Normal" },
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": component,
        "firstTimestamp": first,
        "lastTimestamp": last,
        "count": count,
    })
}

type Seen = HashMap<(String, &'static str, String), (String, u32, String)>;

async fn write(client: Client, component: &'static str, mut events: mpsc::Receiver<Event>) {
    // (uid, reason, message) → (name, count, first)
    let mut seen: Seen = HashMap::new();
    let mut last_suffix = 0u128;
    let permits = Arc::new(Semaphore::new(WRITERS));
    while let Some(event) = events.recv().await {
        let now = now();
        let key = (
            event.object.uid.clone(),
            event.reason,
            event.message.clone(),
        );
        let (name, count, first, repeat) = match seen.get_mut(&key) {
            Some((name, count, first)) => {
                *count += 1;
                (name.clone(), *count, first.clone(), true)
            }
            None => {
                if seen.len() >= CORRELATED {
                    seen.clear();
                }
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                last_suffix = nanos.max(last_suffix + 1);
                let name = format!("{}.{last_suffix:x}", event.object.name);
                seen.insert(key, (name.clone(), 1, now.clone()));
                (name, 1, now.clone(), false)
            }
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let api: Api<KubeEvent> = Api::namespaced(client.clone(), event.object.event_namespace());
        tokio::spawn(async move {
            let _permit = permit;
            if repeat {
                let patch = json!({"count": count, "lastTimestamp": now});
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => return,
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => {
                        tracing::debug!(object = %event.object.name, "cannot update an event: {e}");
                        return;
                    }
                }
            }
            let body = to_json(&event, component, &name, count, &first, &now);
            let created = match serde_json::from_value::<KubeEvent>(body) {
                Ok(body) => api.create(&PostParams::default(), &body).await.map(drop),
                Err(e) => {
                    tracing::debug!("invalid event: {e}");
                    return;
                }
            };
            if let Err(e) = created {
                tracing::debug!(object = %event.object.name, "cannot write an event: {e}");
            }
        });
    }
}

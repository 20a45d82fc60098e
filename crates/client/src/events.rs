//! Events that the control plane's components (the scheduler, the controllers) write about objects, as
//! `kubectl describe` shows them ("From: default-scheduler"). Recording never blocks: events go on a bounded
//! queue (dropped when it is full) to one task that writes them, several at a time. Repeats of an event
//! (same object, reason and message) patch the first one's `count` and `lastTimestamp`, and many similar
//! events (same object and reason, other messages) are combined into one, as client-go's correlator does.

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

/// (uid, reason, message) → (event name, count, first timestamp).
type Seen = HashMap<(String, &'static str, String), (String, u32, String)>;

/// Distinct messages of one object's events of one reason before they are combined (client-go's
/// `maxEvents` of its EventAggregator).
const SIMILAR_BEFORE_COMBINED: usize = 10;
/// How long the messages of similar events are remembered (client-go's aggregation interval).
const SIMILAR_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);
/// What a combined event's message starts with (client-go's).
const COMBINED: &str = "(combined from similar events): ";

/// Similar events (one object, one reason, one type, any message), as client-go's EventAggregator groups
/// them: after [`SIMILAR_BEFORE_COMBINED`] distinct messages within [`SIMILAR_WINDOW`], the next ones update
/// one combined event instead of each making its own (a ReplicaSet's "Created pod: …" events, for example).
#[derive(Default)]
struct Similar {
    groups: HashMap<
        (String, &'static str, bool),
        (std::time::Instant, std::collections::HashSet<String>),
    >,
}

impl Similar {
    /// Whether `event` is to be combined with its similar events.
    fn combine(&mut self, event: &Event) -> bool {
        if self.groups.len() >= CORRELATED {
            self.groups.clear();
        }
        let now = std::time::Instant::now();
        let group = self
            .groups
            .entry((event.object.uid.clone(), event.reason, event.warning))
            .or_insert_with(|| (now, Default::default()));
        if now.duration_since(group.0) > SIMILAR_WINDOW {
            *group = (now, Default::default());
        }
        if group.1.contains(&event.message) {
            return false;
        }
        if group.1.len() < SIMILAR_BEFORE_COMBINED {
            group.1.insert(event.message.clone());
            return false;
        }
        true
    }
}

async fn write(client: Client, component: &'static str, mut events: mpsc::Receiver<Event>) {
    let mut seen: Seen = HashMap::new();
    let mut similar = Similar::default();
    let mut last_suffix = 0u128;
    let permits = Arc::new(Semaphore::new(WRITERS));
    while let Some(mut event) = events.recv().await {
        let now = now();
        // A combined event is found again by an empty message: its own changes with each event.
        let combined = similar.combine(&event);
        let key_message = if combined {
            event.message = format!("{COMBINED}{}", event.message);
            String::new()
        } else {
            event.message.clone()
        };
        let key = (event.object.uid.clone(), event.reason, key_message);
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
                let patch = json!({"count": count, "lastTimestamp": now, "message": event.message});
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(uid: &str, reason: &'static str, message: &str) -> Event {
        Event {
            object: Involved {
                api_version: "apps/v1",
                kind: "ReplicaSet",
                namespace: "default".into(),
                name: "web".into(),
                uid: uid.into(),
            },
            warning: false,
            reason,
            message: message.into(),
        }
    }

    #[test]
    fn similar_events_are_combined_after_ten_distinct_messages() {
        let mut similar = Similar::default();
        for i in 0..SIMILAR_BEFORE_COMBINED {
            let created = event("u1", "SuccessfulCreate", &format!("Created pod: web-{i}"));
            assert!(!similar.combine(&created), "{i}");
        }
        // A message seen before is a repeat, not a new similar one.
        assert!(!similar.combine(&event("u1", "SuccessfulCreate", "Created pod: web-3")));
        assert!(similar.combine(&event("u1", "SuccessfulCreate", "Created pod: web-10")));
        assert!(similar.combine(&event("u1", "SuccessfulCreate", "Created pod: web-11")));
        // Another reason or another object is not similar.
        assert!(!similar.combine(&event("u1", "SuccessfulDelete", "Deleted pod: web-0")));
        assert!(!similar.combine(&event("u2", "SuccessfulCreate", "Created pod: api-0")));
    }
}

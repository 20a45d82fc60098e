//! Events (core/v1 `Event`s) about the pods this node runs, as the kubelet records them: what `kubectl describe
//! pod` shows under "Events" (`Pulling`, `Pulled`, `Created`, `Started`, `Killing`, `BackOff`, `Unhealthy`,
//! `Failed`, `FailedPostStartHook`, …).
//!
//! A worker hands each event to a [`Recorder`], which never blocks: it puts the event on a bounded channel and
//! drops it (with a debug log) when the channel is full. One task ([`write`]) takes them off the channel and
//! writes them through an [`EventWriter`] (the kube client in the agent). Repeats of an event (same object,
//! type, reason and message) are aggregated as client-go's event correlator does: the first one is created,
//! the next ones PATCH its `count` and `lastTimestamp`, for as long as the correlator remembers it (the
//! [`CORRELATED`] most recent distinct events).

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use gantry_client::k8s_openapi::api::core::v1::Event as KubeEvent;
use gantry_client::kube::api::{Patch, PatchParams, PostParams};
use gantry_client::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The component that reports events (`source.component`, `reportingComponent`), as upstream's node agent.
pub const COMPONENT: &str = "kubelet";

/// Events waiting to be written; more are dropped.
pub const QUEUED: usize = 1024;

/// Distinct events the correlator remembers (client-go's LRU holds 4096).
pub const CORRELATED: usize = 4096;

/// An event's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One thing that happened to a pod or one of its containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    /// The pod's `resourceVersion` the event was about.
    pub resource_version: String,
    /// `spec.containers{NAME}` or `spec.initContainers{NAME}` when the event is about a container.
    pub field_path: Option<String>,
    pub type_: EventType,
    pub reason: String,
    pub message: String,
    /// When it happened (RFC 3339).
    pub time: String,
}

impl Event {
    /// An event about `pod` (its JSON), or about its container at `field_path`.
    pub fn about(
        pod: &Value,
        field_path: Option<String>,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
        time: String,
    ) -> Event {
        let text = |p: &str| {
            pod.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Event {
            namespace: text("/metadata/namespace"),
            pod: text("/metadata/name"),
            uid: text("/metadata/uid"),
            resource_version: text("/metadata/resourceVersion"),
            field_path,
            type_,
            reason: reason.to_owned(),
            message: message.into(),
            time,
        }
    }

    /// The core/v1 Event reported from `node`, called `name`, seen `count` times since `first`.
    pub fn to_json(&self, name: &str, node: &str, count: u32, first: &str) -> Value {
        let mut involved = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "name": self.pod,
            "namespace": self.namespace,
            "uid": self.uid,
        });
        if !self.resource_version.is_empty() {
            involved["resourceVersion"] = json!(self.resource_version);
        }
        if let Some(path) = &self.field_path {
            involved["fieldPath"] = json!(path);
        }
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": self.namespace},
            "involvedObject": involved,
            "reason": self.reason,
            "message": self.message,
            "type": self.type_.as_str(),
            "source": {"component": COMPONENT, "host": node},
            "reportingComponent": COMPONENT,
            "reportingInstance": node,
            "firstTimestamp": first,
            "lastTimestamp": self.time,
            "count": count,
        })
    }

    /// What makes two events the same one, seen again.
    fn key(&self) -> Key {
        (
            self.namespace.clone(),
            self.pod.clone(),
            self.uid.clone(),
            self.field_path.clone(),
            self.type_,
            self.reason.clone(),
            self.message.clone(),
        )
    }
}

/// The `fieldPath` of a pod's container (`init`: one of its `initContainers`).
pub fn field_path(container: &str, init: bool) -> String {
    if init {
        format!("spec.initContainers{{{container}}}")
    } else {
        format!("spec.containers{{{container}}}")
    }
}

/// Where events go: a bounded queue to the writer. Recording never blocks or fails.
#[derive(Debug, Clone)]
pub struct Recorder {
    sender: mpsc::Sender<Event>,
}

impl Recorder {
    /// A recorder and the queue its events arrive on (for [`write`]), holding up to `capacity` events.
    pub fn new(capacity: usize) -> (Recorder, mpsc::Receiver<Event>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (Recorder { sender }, receiver)
    }

    /// Queues `event`; drops it when the queue is full (or the writer is gone).
    pub fn record(&self, event: Event) {
        if let Err(e) = self.sender.try_send(event) {
            let (why, event) = match e {
                mpsc::error::TrySendError::Full(event) => ("the queue is full", event),
                mpsc::error::TrySendError::Closed(event) => ("the writer is gone", event),
            };
            tracing::debug!(pod = %event.pod, reason = %event.reason, "event dropped, {why}: {}", event.message);
        }
    }
}

/// Why a write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The event to patch is gone (expired, deleted).
    NotFound,
    Other(String),
}

/// Writes events to the API.
#[async_trait]
pub trait EventWriter: Send + Sync {
    async fn create(&self, namespace: &str, event: &Value) -> Result<(), WriteError>;
    /// A merge patch of the event `name`.
    async fn patch(&self, namespace: &str, name: &str, patch: &Value) -> Result<(), WriteError>;
}

/// The agent's [`EventWriter`]: the kube client.
pub struct KubeEventWriter {
    pub client: Client,
}

impl std::fmt::Debug for KubeEventWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeEventWriter").finish_non_exhaustive()
    }
}

fn write_error(e: gantry_client::kube::Error) -> WriteError {
    match e {
        gantry_client::kube::Error::Api(e) if e.code == 404 => WriteError::NotFound,
        e => WriteError::Other(e.to_string()),
    }
}

#[async_trait]
impl EventWriter for KubeEventWriter {
    async fn create(&self, namespace: &str, event: &Value) -> Result<(), WriteError> {
        let event: KubeEvent =
            serde_json::from_value(event.clone()).map_err(|e| WriteError::Other(e.to_string()))?;
        let events: Api<KubeEvent> = Api::namespaced(self.client.clone(), namespace);
        events
            .create(&PostParams::default(), &event)
            .await
            .map(drop)
            .map_err(write_error)
    }

    async fn patch(&self, namespace: &str, name: &str, patch: &Value) -> Result<(), WriteError> {
        let events: Api<KubeEvent> = Api::namespaced(self.client.clone(), namespace);
        events
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(drop)
            .map_err(write_error)
    }
}

/// What makes events the same: the object (namespace, name, uid, field path), type, reason and message.
type Key = (
    String,
    String,
    String,
    Option<String>,
    EventType,
    String,
    String,
);

/// An event already written: its name, how often it happened, and when first.
struct Seen {
    name: String,
    count: u32,
    first: String,
}

/// The events written lately, by [`Key`]; the oldest are forgotten beyond `capacity`.
struct Correlator {
    seen: HashMap<Key, Seen>,
    order: VecDeque<Key>,
    capacity: usize,
    last_suffix: u128,
}

impl Correlator {
    fn new(capacity: usize) -> Correlator {
        Correlator {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            last_suffix: 0,
        }
    }

    /// A new event's name: the pod's, then a unique hex suffix (upstream's: the time in nanoseconds).
    fn name(&mut self, pod: &str) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.last_suffix = nanos.max(self.last_suffix + 1);
        format!("{pod}.{:x}", self.last_suffix)
    }

    fn remember(&mut self, key: Key, seen: Seen) {
        if self.seen.insert(key.clone(), seen).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
    }
}

/// Writes the events arriving on `events` (reported from `node`) until every [`Recorder`] is gone.
pub async fn write(mut events: mpsc::Receiver<Event>, writer: &dyn EventWriter, node: &str) {
    write_with(&mut events, writer, node, CORRELATED).await;
}

async fn write_with(
    events: &mut mpsc::Receiver<Event>,
    writer: &dyn EventWriter,
    node: &str,
    capacity: usize,
) {
    let mut correlator = Correlator::new(capacity);
    while let Some(event) = events.recv().await {
        let key = event.key();
        if let Some(seen) = correlator.seen.get_mut(&key) {
            seen.count += 1;
            let patch = json!({"count": seen.count, "lastTimestamp": event.time});
            match writer.patch(&event.namespace, &seen.name, &patch).await {
                Ok(()) => continue,
                // Gone: written again, with everything counted so far.
                Err(WriteError::NotFound) => {}
                Err(WriteError::Other(e)) => {
                    tracing::debug!(pod = %event.pod, reason = %event.reason, "cannot update an event: {e}");
                    continue;
                }
            }
        }
        let (name, count, first) = match correlator.seen.get(&key) {
            Some(seen) => (seen.name.clone(), seen.count, seen.first.clone()),
            None => (correlator.name(&event.pod), 1, event.time.clone()),
        };
        let body = event.to_json(&name, node, count, &first);
        match writer.create(&event.namespace, &body).await {
            Ok(()) => correlator.remember(key, Seen { name, count, first }),
            Err(e) => {
                tracing::debug!(pod = %event.pod, reason = %event.reason, "cannot write an event: {e:?}")
            }
        }
    }
}

/// Formats a duration as Go's `time.Duration` prints one cut to milliseconds (`523ms`, `1.2s`, `2m3.5s`), as
/// upstream's pull messages show them.
pub fn go_duration(d: std::time::Duration) -> String {
    let millis = d.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let (minutes, millis) = (millis / 60_000, millis % 60_000);
    let seconds = format!("{}.{:03}", millis / 1000, millis % 1000);
    let seconds = seconds.trim_end_matches('0').trim_end_matches('.');
    let (hours, minutes) = (minutes / 60, minutes % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// Writes kept in order: ("create", namespace, body) or ("patch", namespace/name, patch).
    #[derive(Default)]
    struct FakeWriter {
        writes: Mutex<Vec<(String, String, Value)>>,
        /// Every patch answers 404.
        patches_gone: bool,
    }

    #[async_trait]
    impl EventWriter for FakeWriter {
        async fn create(&self, namespace: &str, event: &Value) -> Result<(), WriteError> {
            let mut writes = self.writes.lock().unwrap();
            writes.push(("create".into(), namespace.into(), event.clone()));
            Ok(())
        }
        async fn patch(
            &self,
            namespace: &str,
            name: &str,
            patch: &Value,
        ) -> Result<(), WriteError> {
            if self.patches_gone {
                return Err(WriteError::NotFound);
            }
            let mut writes = self.writes.lock().unwrap();
            writes.push(("patch".into(), format!("{namespace}/{name}"), patch.clone()));
            Ok(())
        }
    }

    fn pod() -> Value {
        json!({"metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "42"}})
    }

    fn event(reason: &str, message: &str, time: &str) -> Event {
        Event::about(
            &pod(),
            Some(field_path("c", false)),
            EventType::Warning,
            reason,
            message,
            time.into(),
        )
    }

    #[tokio::test]
    async fn events_are_created_then_repeats_aggregated() {
        let (recorder, queue) = Recorder::new(16);
        recorder.record(event(
            "BackOff",
            "Back-off restarting",
            "2026-01-01T00:00:00Z",
        ));
        recorder.record(event(
            "BackOff",
            "Back-off restarting",
            "2026-01-01T00:00:10Z",
        ));
        recorder.record(event(
            "BackOff",
            "Back-off restarting",
            "2026-01-01T00:00:30Z",
        ));
        recorder.record(event(
            "Started",
            "Started container c",
            "2026-01-01T00:00:31Z",
        ));
        drop(recorder);
        let writer = FakeWriter::default();
        write(queue, &writer, "node-1").await;
        let writes = writer.writes.lock().unwrap().clone();
        let kinds: Vec<&str> = writes.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(kinds, ["create", "patch", "patch", "create"]);
        let created = &writes[0].2;
        let name = created["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web."), "{name}");
        assert!(u128::from_str_radix(&name[4..], 16).is_ok(), "{name}");
        assert_eq!(writes[0].1, "shop");
        assert_eq!(created["metadata"]["namespace"], "shop");
        assert_eq!(
            created["involvedObject"],
            json!({"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "shop", "uid": "u-1",
                "resourceVersion": "42", "fieldPath": "spec.containers{c}"})
        );
        assert_eq!(created["type"], "Warning");
        assert_eq!(created["reason"], "BackOff");
        assert_eq!(
            created["source"],
            json!({"component": "kubelet", "host": "node-1"})
        );
        assert_eq!(created["reportingComponent"], "kubelet");
        assert_eq!(created["reportingInstance"], "node-1");
        assert_eq!(created["count"], 1);
        assert_eq!(created["firstTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(writes[1].1, format!("shop/{name}"));
        assert_eq!(
            writes[2].2,
            json!({"count": 3, "lastTimestamp": "2026-01-01T00:00:30Z"})
        );
        assert_ne!(writes[3].2["metadata"]["name"], name);
        assert_eq!(writes[3].2["count"], 1);
        // A pod-level event has no fieldPath.
        let pod_event = Event::about(&pod(), None, EventType::Normal, "X", "y", "t".into());
        assert!(
            pod_event.to_json("n", "node", 1, "t")["involvedObject"]
                .get("fieldPath")
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_repeat_of_an_event_gone_from_the_api_creates_it_again_with_its_count() {
        let (recorder, queue) = Recorder::new(16);
        recorder.record(event("Unhealthy", "probe failed", "2026-01-01T00:00:00Z"));
        recorder.record(event("Unhealthy", "probe failed", "2026-01-01T00:00:05Z"));
        drop(recorder);
        let writer = FakeWriter {
            patches_gone: true,
            ..FakeWriter::default()
        };
        write(queue, &writer, "n").await;
        let writes = writer.writes.lock().unwrap().clone();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert!(writes.iter().all(|(kind, _, _)| kind == "create"));
        let again = &writes[1].2;
        assert_eq!(again["metadata"]["name"], writes[0].2["metadata"]["name"]);
        assert_eq!(again["count"], 2);
        assert_eq!(again["firstTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(again["lastTimestamp"], "2026-01-01T00:00:05Z");
    }

    #[tokio::test]
    async fn the_correlator_forgets_the_oldest_beyond_its_capacity() {
        let (recorder, mut queue) = Recorder::new(16);
        for message in ["a", "b", "a", "c", "a"] {
            recorder.record(event("Failed", message, "2026-01-01T00:00:00Z"));
        }
        drop(recorder);
        let writer = FakeWriter::default();
        write_with(&mut queue, &writer, "n", 2).await;
        let kinds: Vec<String> = writer
            .writes
            .lock()
            .unwrap()
            .iter()
            .map(|(k, _, v)| format!("{k} {}", v["message"].as_str().unwrap_or("")))
            .collect();
        // a, b; a again (patched); c pushes a out; a is new again.
        assert_eq!(
            kinds,
            ["create a", "create b", "patch ", "create c", "create a"]
        );
    }

    #[test]
    fn a_full_queue_drops_events_without_blocking() {
        let (recorder, mut queue) = Recorder::new(2);
        for i in 0..5 {
            recorder.record(event("Failed", &i.to_string(), "t"));
        }
        let mut got = Vec::new();
        while let Ok(event) = queue.try_recv() {
            got.push(event.message);
        }
        assert_eq!(got, ["0", "1"]);
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_micros(523_400)), "523ms");
        assert_eq!(go_duration(Duration::from_millis(1200)), "1.2s");
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
        assert_eq!(go_duration(Duration::from_millis(123_500)), "2m3.5s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }
}

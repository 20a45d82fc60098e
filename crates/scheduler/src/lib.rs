//! The scheduler: places the pods that name no node (`spec.nodeName` empty, `spec.schedulerName` unset or
//! `default-scheduler`) on a node that can run them, as upstream's kube-scheduler does with its default
//! profile.
//!
//! One task owns all the state. It watches the pods that are not finished and the nodes (kube-rs watchers,
//! which relist on their own after errors) into a [`Cache`] of nodes and of what the pods bound to each
//! use, and a [`Queue`] of the pods to schedule. Each pod taken off the queue is run through the filters
//! and scores of [`plugins`] over the cached nodes, counted on the chosen node at once ("assumed", as
//! upstream does, so the next pod sees it) and bound through the `pods/binding` subresource by a task of
//! its own (at most [`BINDINGS_IN_FLIGHT`] at a time). A pod no node can take gets a `PodScheduled=False`
//! condition and a `FailedScheduling` event saying why, and waits in the queue for a change in the cluster
//! (a node added or changed, a pod gone) and its back-off.
//!
//! Preemption is not implemented: the message says what upstream's would find when no pod has a lower
//! priority than another (which holds while priorities are not assigned).

pub mod cache;
pub mod plugins;
pub mod queue;
pub mod resources;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use gantry_client::k8s_openapi::api::core::v1::{Node, Pod};
use gantry_client::kube::api::{Patch, PatchParams, PostParams};
use gantry_client::kube::runtime::{WatchStreamExt, watcher};
use gantry_client::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

pub use cache::Cache;
pub use plugins::{Algorithm, FitError, PodInfo};
pub use queue::Queue;

use cache::{NodeSpec, Usage};
use gantry_client::events::{self, Event, Recorder};

/// The scheduler's name: pods naming it (or none) are ours; the events' source.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Bindings in flight at once.
pub const BINDINGS_IN_FLIGHT: usize = 256;
/// Status writes (PodScheduled=False) in flight at once.
const STATUS_WRITES_IN_FLIGHT: usize = 32;

/// Whether a pod is the scheduler's to place: no node yet, ours, not being deleted.
pub fn wants_scheduling(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    spec.is_some_and(|s| s.node_name.as_deref().is_none_or(str::is_empty))
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME)
        && pod.metadata.deletion_timestamp.is_none()
}

/// What came of a binding.
#[derive(Debug)]
enum Bound {
    Ok,
    /// The pod is gone or already bound: nothing more to do for it.
    Moot,
    Failed(String),
}

/// Runs the scheduler until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let config = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let mut pod_events = watcher(pods, config.any_semantic())
        .default_backoff()
        .boxed();
    let mut node_events = watcher(nodes, watcher::Config::default().any_semantic())
        .default_backoff()
        .boxed();
    let (bound_tx, mut bound_rx) = mpsc::unbounded_channel();
    let mut scheduler = Scheduler::new(client, bound_tx);
    // Unschedulable pods are looked at again at least this often (for the five-minute flush).
    let mut flush = tokio::time::interval(std::time::Duration::from_secs(30));
    loop {
        // First: it may move unschedulable pods to the back-off queue, which sets the next wake-up.
        let can_schedule = scheduler.can_schedule();
        let wakeup = scheduler
            .queue
            .next_wakeup()
            .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600));
        tokio::select! {
            biased;
            Some((uid, result)) = bound_rx.recv() => scheduler.bound(&uid, result),
            Some(event) = pod_events.next() => match event {
                Ok(event) => scheduler.pod_event(event),
                Err(e) => tracing::warn!("scheduler: watching pods: {e}"),
            },
            Some(event) = node_events.next() => match event {
                Ok(event) => scheduler.node_event(event),
                Err(e) => tracing::warn!("scheduler: watching nodes: {e}"),
            },
            () = tokio::time::sleep_until(wakeup) => scheduler.queue.tick(Instant::now()),
            _ = flush.tick() => scheduler.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_schedule => scheduler.schedule_next(),
        }
    }
}

/// The scheduler's state (owned by the one task of [`run`]).
struct Scheduler {
    client: Client,
    cache: Cache,
    queue: Queue,
    algorithm: Algorithm,
    /// The pods waiting to be placed, by uid.
    pending: HashMap<String, Arc<Pod>>,
    /// The uids (pods) or names (nodes) seen since a watch began a relist.
    pods_listed: Option<HashSet<String>>,
    nodes_listed: Option<HashSet<String>>,
    pods_synced: bool,
    nodes_synced: bool,
    /// The cluster changed since unschedulable pods were last woken.
    changed: bool,
    bindings: usize,
    bound_tx: mpsc::UnboundedSender<(String, Bound)>,
    status_writes: Arc<Semaphore>,
    events: Recorder,
}

impl Scheduler {
    fn new(client: Client, bound_tx: mpsc::UnboundedSender<(String, Bound)>) -> Scheduler {
        Scheduler {
            events: Recorder::start(client.clone(), SCHEDULER_NAME),
            client,
            cache: Cache::default(),
            queue: Queue::default(),
            algorithm: Algorithm::default(),
            pending: HashMap::new(),
            pods_listed: None,
            nodes_listed: None,
            pods_synced: false,
            nodes_synced: false,
            changed: false,
            bindings: 0,
            bound_tx,
            status_writes: Arc::new(Semaphore::new(STATUS_WRITES_IN_FLIGHT)),
        }
    }

    /// Whether a pod can be scheduled now: both watches have listed once, and a binding slot is free. The
    /// unschedulable pods are woken first if the cluster changed.
    fn can_schedule(&mut self) -> bool {
        if !(self.pods_synced && self.nodes_synced) {
            return false;
        }
        if self.changed {
            self.changed = false;
            self.queue.cluster_changed(Instant::now());
        }
        self.bindings < BINDINGS_IN_FLIGHT && self.queue.ready() > 0
    }

    fn pod_event(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.pods_listed = Some(HashSet::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(listed), Some(uid)) = (&mut self.pods_listed, &pod.metadata.uid) {
                    listed.insert(uid.clone());
                }
                self.pod_seen(pod);
            }
            watcher::Event::Apply(pod) => self.pod_seen(pod),
            watcher::Event::Delete(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    self.pod_gone(uid);
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.pods_listed.take() {
                    let known = self.pending.keys().cloned().chain(self.cache.pod_uids());
                    let gone: Vec<String> = known.filter(|uid| !listed.contains(uid)).collect();
                    for uid in gone {
                        self.pod_gone(&uid);
                    }
                }
                self.pods_synced = true;
            }
        }
    }

    fn pod_seen(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        if finished {
            self.pod_gone(&uid);
            return;
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty());
        if let Some(node) = node {
            // Bound (by us or anyone): counted on its node.
            self.pending.remove(&uid);
            self.queue.done(&uid);
            self.cache.add_pod(&uid, node, Usage::of(&pod));
            return;
        }
        if self.cache.has_pod(&uid) {
            // Assumed: its binding is in flight or done (this is an older view of it).
            return;
        }
        if !wants_scheduling(&pod) {
            self.pending.remove(&uid);
            self.queue.done(&uid);
            return;
        }
        let pod = Arc::new(pod);
        match self.pending.insert(uid.clone(), pod.clone()) {
            None => self.queue.add(&uid),
            Some(old) => {
                // Its own status (what we wrote) is no reason to try again; a new spec or labels are.
                if old.spec != pod.spec || old.metadata.labels != pod.metadata.labels {
                    self.queue.pod_changed(&uid, Instant::now());
                }
            }
        }
    }

    fn pod_gone(&mut self, uid: &str) {
        self.pending.remove(uid);
        self.queue.done(uid);
        if self.cache.remove_pod(uid) {
            self.changed = true;
        }
    }

    fn node_event(&mut self, event: watcher::Event<Node>) {
        match event {
            watcher::Event::Init => self.nodes_listed = Some(HashSet::new()),
            watcher::Event::InitApply(node) => {
                if let (Some(listed), Some(name)) = (&mut self.nodes_listed, &node.metadata.name) {
                    listed.insert(name.clone());
                }
                self.node_seen(&node);
            }
            watcher::Event::Apply(node) => self.node_seen(&node),
            watcher::Event::Delete(node) => {
                if let Some(name) = &node.metadata.name {
                    self.cache.remove_node(name);
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.nodes_listed.take() {
                    for name in self.cache.node_names() {
                        if !listed.contains(&name) {
                            self.cache.remove_node(&name);
                        }
                    }
                }
                self.nodes_synced = true;
            }
        }
    }

    fn node_seen(&mut self, node: &Node) {
        let Some(name) = &node.metadata.name else {
            return;
        };
        // Heartbeats change nothing the filters read, and wake nobody.
        if self.cache.set_node(name, NodeSpec::of(node)) {
            self.changed = true;
        }
    }

    fn schedule_next(&mut self) {
        let Some(uid) = self.queue.pop() else { return };
        let Some(pod) = self.pending.get(&uid).cloned() else {
            self.queue.done(&uid);
            return;
        };
        let info = PodInfo::new(pod);
        match self.algorithm.schedule(&info, &self.cache) {
            Ok(node) => {
                self.cache.add_pod(&uid, &node, info.usage.clone());
                self.bindings += 1;
                let client = self.client.clone();
                let results = self.bound_tx.clone();
                let events = self.events.clone();
                tokio::spawn(async move {
                    let result = bind(&client, &info, &node).await;
                    if let Bound::Ok = result {
                        let message = format!(
                            "Successfully assigned {}/{} to {node}",
                            info.namespace, info.name
                        );
                        events.record(about_pod(&info, false, "Scheduled", message));
                    }
                    let _ = results.send((info.uid, result));
                });
            }
            Err(fit) => {
                self.queue.unschedulable(&uid, Instant::now());
                let message = fit.message();
                tracing::debug!(pod = %info.name, namespace = %info.namespace, "unschedulable: {message}");
                self.unschedulable(&info, message);
            }
        }
    }

    /// Says why the pod cannot be placed: the FailedScheduling event, and the PodScheduled condition when
    /// it does not say so already.
    fn unschedulable(&self, info: &PodInfo, message: String) {
        self.events
            .record(about_pod(info, true, "FailedScheduling", message.clone()));
        let current = info
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let said = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message.as_str())
        });
        if said {
            return;
        }
        let Ok(permit) = self.status_writes.clone().try_acquire_owned() else {
            // Too many writes waiting: the next attempt says it.
            return;
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &info.namespace);
        let name = info.name.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let patch = json!({
                "status": {"conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": message, "lastProbeTime": Value::Null,
                    "lastTransitionTime": events::now(),
                }]},
            });
            let written = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await;
            if let Err(e) = written {
                tracing::debug!(pod = %name, "cannot write the PodScheduled condition: {e}");
            }
        });
    }

    fn bound(&mut self, uid: &str, result: Bound) {
        self.bindings = self.bindings.saturating_sub(1);
        match result {
            // Counted on its node until the watch shows it bound.
            Bound::Ok => {
                self.pending.remove(uid);
                self.queue.done(uid);
            }
            Bound::Moot => {
                self.pending.remove(uid);
                self.queue.done(uid);
                self.cache.remove_pod(uid);
            }
            Bound::Failed(message) => {
                self.cache.remove_pod(uid);
                self.queue.retry(uid, Instant::now());
                if let Some(pod) = self.pending.get(uid) {
                    let info = PodInfo::new(pod.clone());
                    let message = format!("Binding rejected: {message}");
                    self.events
                        .record(about_pod(&info, true, "FailedScheduling", message));
                }
            }
        }
    }
}

/// An event about the pod `info` describes.
fn about_pod(info: &PodInfo, warning: bool, reason: &'static str, message: String) -> Event {
    Event {
        object: events::Involved {
            api_version: "v1",
            kind: "Pod",
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            uid: info.uid.clone(),
        },
        warning,
        reason,
        message,
    }
}

/// POSTs the pod's Binding to `node`.
async fn bind(client: &Client, pod: &PodInfo, node: &str) -> Bound {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    match pods
        .create_subresource::<Value, Value>("binding", &pod.name, &PostParams::default(), &binding)
        .await
    {
        Ok(_) => Bound::Ok,
        Err(gantry_client::kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
            tracing::debug!(pod = %pod.name, "binding moot: {}", e.message);
            Bound::Moot
        }
        Err(e) => Bound::Failed(e.to_string()),
    }
}

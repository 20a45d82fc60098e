//! Node lifecycle, as upstream's node lifecycle, taint-eviction and pod garbage collection controllers do
//! it together:
//! - a node whose agent has neither renewed its Lease nor posted its status for the grace period
//!   (`--node-monitor-grace-period`, 50 s) gets its conditions set to `Unknown` ("Kubelet stopped posting
//!   node status."), and its pods' Ready condition goes False (so Services stop sending them traffic);
//! - a node that is not Ready carries the `node.kubernetes.io/not-ready` (Ready False) or
//!   `node.kubernetes.io/unreachable` (Unknown) taints, NoSchedule and NoExecute, taken off when it is
//!   Ready again;
//! - pods on a node with NoExecute taints are evicted (deleted, with a `DisruptionTarget` condition) once
//!   their tolerations run out: at once without a toleration, after `tolerationSeconds` with one (the API
//!   server gives every pod 300 s for these two taints), never with one that has no limit. A pod evicted
//!   from an unreachable node stays Terminating until its node answers or goes, as upstream; its controller
//!   replaces it meanwhile;
//! - pods bound to a node that does not exist are deleted at once (grace 0) after [`ORPHAN_QUARANTINE`].
//!
//! One task owns the state (nodes, when each was last heard of, and a small record of each bound pod) and
//! looks at every node each [`MONITOR_PERIOD`]; writes run in tasks of their own, one at a time per object.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gantry_client::k8s_openapi::api::coordination::v1::Lease;
use gantry_client::k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use gantry_client::k8s_openapi::jiff::Timestamp;
use gantry_client::kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use gantry_scheduler::plugins::tolerates;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::cache::{watch, watch_all};
use gantry_client::events::{Event, Involved, Recorder};

pub const COMPONENT: &str = "node-controller";
/// How often every node is looked at (upstream's `--node-monitor-period` is 5 s).
pub const MONITOR_PERIOD: Duration = Duration::from_secs(1);
/// How long a pod bound to a missing node is left alone (upstream's pod GC waits 40 s).
pub const ORPHAN_QUARANTINE: Duration = Duration::from_secs(40);
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Writes in flight at once.
const IN_FLIGHT: usize = 16;
/// The conditions an agent posts, set to Unknown when it stops posting.
const AGENT_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client, grace: Duration) {
    let mut node_events = watch_all::<Node>(&client);
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let mut lease_events = watch(leases, Default::default());
    let bound = watcher::Config::default().fields("spec.nodeName!=");
    let mut pod_events = watch(Api::<Pod>::all(client.clone()), bound);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut controller = Controller {
        events: Recorder::start(client.clone(), COMPONENT),
        client,
        grace,
        nodes: HashMap::new(),
        pods: HashMap::new(),
        nodes_synced: false,
        leases_synced: false,
        next_no_execute: Instant::now(),
        missing_since: HashMap::new(),
        writing: HashSet::new(),
        done: done_tx,
        permits: Arc::new(Semaphore::new(IN_FLIGHT)),
    };
    let mut ticks = tokio::time::interval(MONITOR_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(key) = done_rx.recv() => { controller.writing.remove(&key); }
            Some(event) = node_events.next() => match event {
                Ok(event) => controller.node_event(event),
                Err(e) => tracing::warn!("node lifecycle: watching nodes: {e}"),
            },
            Some(event) = lease_events.next() => match event {
                Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease)) => controller.lease_seen(&lease),
                Ok(watcher::Event::Init) => controller.leases_synced = false,
                Ok(watcher::Event::InitDone) => controller.leases_synced = true,
                Ok(watcher::Event::Delete(_)) => {}
                Err(e) => {
                    // Heartbeats may be missed until the watch is back: judge no node meanwhile.
                    controller.leases_synced = false;
                    tracing::warn!("node lifecycle: watching leases: {e}");
                }
            },
            Some(event) = pod_events.next() => match event {
                Ok(event) => controller.pod_event(event),
                Err(e) => tracing::warn!("node lifecycle: watching pods: {e}"),
            },
            _ = ticks.tick() => controller.monitor(Instant::now(), Timestamp::now()),
        }
    }
}

/// What the controller keeps of a node.
struct NodeState {
    node: Arc<Node>,
    /// The last heartbeat seen (the Lease's renew time, or the Ready condition's heartbeat time) ...
    heartbeat: (Option<Timestamp>, Option<Timestamp>),
    /// ... and when it was seen to change, on this clock.
    heard: Instant,
}

/// What the controller keeps of a pod bound to a node.
#[derive(Debug, Clone)]
struct BoundPod {
    namespace: String,
    name: String,
    uid: String,
    node: String,
    tolerations: Vec<Toleration>,
    ready: bool,
    deleting: bool,
}

impl BoundPod {
    fn of(pod: &Pod) -> Option<BoundPod> {
        let spec = pod.spec.as_ref()?;
        Some(BoundPod {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
            uid: pod.metadata.uid.clone()?,
            node: spec.node_name.clone().filter(|n| !n.is_empty())?,
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            ready: crate::pods::is_ready(pod),
            deleting: pod.metadata.deletion_timestamp.is_some(),
        })
    }
}

struct Controller {
    client: Client,
    events: Recorder,
    grace: Duration,
    nodes: HashMap<String, NodeState>,
    /// Bound pods by node, then uid.
    pods: HashMap<String, HashMap<String, BoundPod>>,
    nodes_synced: bool,
    /// Whether the Lease watch is listed and unbroken: nodes are only judged silent while it is.
    leases_synced: bool,
    /// When a node may next get the NoExecute taint (upstream's eviction rate limiter).
    next_no_execute: Instant,
    /// Nodes that pods are bound to but that do not exist, since when.
    missing_since: HashMap<String, Instant>,
    /// Objects being written (`node/NAME`, `pod/UID`): not written again until done.
    writing: HashSet<String>,
    done: mpsc::UnboundedSender<String>,
    permits: Arc<Semaphore>,
}

fn ready_condition(
    node: &Node,
) -> Option<&gantry_client::k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The Ready condition's status: "True", "False", "Unknown" (also when it has none).
fn readiness(node: &Node) -> &str {
    ready_condition(node).map_or("Unknown", |c| c.status.as_str())
}

impl Controller {
    fn node_event(&mut self, event: watcher::Event<Node>) {
        match event {
            watcher::Event::Apply(node) | watcher::Event::InitApply(node) => self.node_seen(node),
            watcher::Event::Delete(node) => {
                if let Some(name) = &node.metadata.name {
                    self.nodes.remove(name);
                }
            }
            watcher::Event::Init => {}
            watcher::Event::InitDone => self.nodes_synced = true,
        }
    }

    fn node_seen(&mut self, node: Node) {
        let Some(name) = node.metadata.name.clone() else {
            return;
        };
        let status_heartbeat = ready_condition(&node)
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0);
        let now = Instant::now();
        match self.nodes.get_mut(&name) {
            Some(state) => {
                if state.heartbeat.1 != status_heartbeat {
                    state.heartbeat.1 = status_heartbeat;
                    state.heard = now;
                }
                state.node = Arc::new(node);
            }
            None => {
                self.missing_since.remove(&name);
                self.nodes.insert(
                    name,
                    NodeState {
                        node: Arc::new(node),
                        heartbeat: (None, status_heartbeat),
                        heard: now,
                    },
                );
            }
        }
    }

    fn lease_seen(&mut self, lease: &Lease) {
        let renewed = lease
            .spec
            .as_ref()
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0);
        let Some(state) = lease
            .metadata
            .name
            .as_ref()
            .and_then(|n| self.nodes.get_mut(n))
        else {
            return;
        };
        if state.heartbeat.0 != renewed {
            state.heartbeat.0 = renewed;
            state.heard = Instant::now();
        }
    }

    fn pod_event(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let Some(bound) = BoundPod::of(&pod) else {
                    return;
                };
                self.pods
                    .entry(bound.node.clone())
                    .or_default()
                    .insert(bound.uid.clone(), bound);
            }
            watcher::Event::Delete(pod) => {
                if let Some(bound) = BoundPod::of(&pod)
                    && let Some(on_node) = self.pods.get_mut(&bound.node)
                {
                    on_node.remove(&bound.uid);
                    if on_node.is_empty() {
                        self.pods.remove(&bound.node);
                    }
                }
            }
            // A relist replays every pod: start afresh.
            watcher::Event::Init => self.pods.clear(),
            watcher::Event::InitDone => {}
        }
    }

    /// Looks at every node: stale ones are marked Unknown, taints follow readiness, pods of tainted nodes
    /// are evicted when their time is up, pods of missing nodes are collected.
    fn monitor(&mut self, now: Instant, wall: Timestamp) {
        let mut writes = Vec::new();
        let unhealthy = self
            .nodes
            .values()
            .filter(|s| readiness(&s.node) != "True")
            .count();
        let disruption = Disruption::of(unhealthy, self.nodes.len());
        for (name, state) in &self.nodes {
            let node = &state.node;
            let stale = now.duration_since(state.heard) > self.grace;
            if stale && self.leases_synced && readiness(node) != "Unknown" {
                writes.push(Write::MarkUnknown(node.clone()));
                continue;
            }
            let current = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default();
            let mut wanted = wanted_taints(node, wall);
            let adds_no_execute = |taints: &[Taint]| {
                taints.iter().any(|t| {
                    t.effect == "NoExecute"
                        && matches!(t.key.as_str(), NOT_READY | UNREACHABLE)
                        && !current
                            .iter()
                            .any(|c| c.key == t.key && c.effect == t.effect)
                })
            };
            if adds_no_execute(&wanted) {
                // NoExecute taints (which evict) are added at the rate the cluster's health allows.
                match disruption.interval() {
                    Some(interval) if now >= self.next_no_execute => {
                        self.next_no_execute = now + interval;
                    }
                    _ => wanted.retain(|t| {
                        t.effect != "NoExecute"
                            || current
                                .iter()
                                .any(|c| c.key == t.key && c.effect == t.effect)
                    }),
                }
            }
            if disruption == Disruption::Full {
                // Every node silent at once: the control plane's own trouble, most likely; evict nobody.
                wanted.retain(|t| {
                    t.effect != "NoExecute" || !matches!(t.key.as_str(), NOT_READY | UNREACHABLE)
                });
            }
            if wanted != current {
                writes.push(Write::Taints(node.clone(), wanted));
            }
            let not_ready = readiness(node) != "True";
            if !not_ready && !current.iter().any(|t| t.effect == "NoExecute") {
                // A healthy node without NoExecute taints: nothing to do for its pods.
                continue;
            }
            let no_execute: Vec<&Taint> = node
                .spec
                .iter()
                .flat_map(|s| s.taints.iter().flatten())
                .filter(|t| t.effect == "NoExecute")
                .collect();
            for pod in self.pods.get(name).into_iter().flat_map(HashMap::values) {
                if pod.deleting {
                    continue;
                }
                if eviction_due(&pod.tolerations, &no_execute, wall) {
                    writes.push(Write::Evict(pod.clone()));
                } else if not_ready && pod.ready {
                    writes.push(Write::MarkPodNotReady(pod.clone()));
                }
            }
        }
        if self.nodes_synced {
            let missing: Vec<&String> = self
                .pods
                .keys()
                .filter(|n| !self.nodes.contains_key(*n))
                .collect();
            self.missing_since.retain(|n, _| missing.contains(&n));
            for node in missing {
                let since = *self.missing_since.entry(node.clone()).or_insert(now);
                if now.duration_since(since) >= ORPHAN_QUARANTINE {
                    for pod in self.pods[node].values() {
                        writes.push(Write::DeleteOrphan(pod.clone()));
                    }
                }
            }
        }
        for write in writes {
            self.start(write, wall);
        }
    }

    fn start(&mut self, write: Write, wall: Timestamp) {
        let key = write.key();
        if !self.writing.insert(key.clone()) {
            return;
        }
        let (client, events, done) = (self.client.clone(), self.events.clone(), self.done.clone());
        let permits = self.permits.clone();
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            if let Err(e) = write.run(&client, &events, wall).await {
                tracing::warn!("node lifecycle: {key}: {e}");
            }
            let _ = done.send(key);
        });
    }
}

/// How much of the cluster is not Ready, as upstream's zone states (one zone here): it sets how fast nodes
/// get the NoExecute taints that evict their pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disruption {
    /// Few nodes down: one node per 10 s (`--node-eviction-rate` 0.1).
    Normal,
    /// More than 55 % of the nodes (and at least 3) down: one node per 100 s in clusters of more than 50
    /// nodes (`--secondary-node-eviction-rate` 0.01), none in smaller ones.
    Partial { large: bool },
    /// Every node down: no evictions, and the NoExecute taints come off.
    Full,
}

impl Disruption {
    fn of(unhealthy: usize, total: usize) -> Disruption {
        if total > 0 && unhealthy == total {
            Disruption::Full
        } else if unhealthy >= 3 && unhealthy * 100 > total * 55 {
            Disruption::Partial { large: total > 50 }
        } else {
            Disruption::Normal
        }
    }

    /// The time between two nodes tainted NoExecute; `None`: none is.
    fn interval(self) -> Option<Duration> {
        match self {
            Disruption::Normal => Some(Duration::from_secs(10)),
            Disruption::Partial { large: true } => Some(Duration::from_secs(100)),
            Disruption::Partial { large: false } | Disruption::Full => None,
        }
    }
}

/// The taints a node should carry: its own, with the not-ready or unreachable taints (NoSchedule and
/// NoExecute) matching its Ready condition, and neither when it is Ready. Taints kept keep their
/// `timeAdded`; NoExecute ones added get `now`.
fn wanted_taints(node: &Node, now: Timestamp) -> Vec<Taint> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let key = match readiness(node) {
        "True" => None,
        "False" => Some(NOT_READY),
        _ => Some(UNREACHABLE),
    };
    let mut wanted: Vec<Taint> = current
        .iter()
        .filter(|t| {
            !matches!(t.key.as_str(), NOT_READY | UNREACHABLE) || Some(t.key.as_str()) == key
        })
        .cloned()
        .collect();
    if let Some(key) = key {
        for effect in ["NoSchedule", "NoExecute"] {
            if !wanted.iter().any(|t| t.key == key && t.effect == effect) {
                wanted.push(Taint {
                    key: key.to_owned(),
                    effect: effect.to_owned(),
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                    value: None,
                });
            }
        }
    }
    wanted
}

/// Whether a pod with `tolerations` on a node with the NoExecute `taints` is to be evicted by `now`:
/// some taint it does not tolerate, or one whose shortest tolerationSeconds (from the taint's timeAdded)
/// has run out.
fn eviction_due(tolerations: &[Toleration], taints: &[&Taint], now: Timestamp) -> bool {
    taints.iter().any(|taint| {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return true;
        }
        // Tolerations without a limit tolerate for ever; otherwise the shortest limit counts.
        if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            return false;
        }
        let seconds = matching
            .iter()
            .filter_map(|t| t.toleration_seconds)
            .min()
            .unwrap_or(0)
            .max(0);
        let added = taint.time_added.as_ref().map_or(now, |t| t.0);
        added
            .checked_add(jiff_seconds(seconds))
            .is_ok_and(|deadline| deadline <= now)
    })
}

fn jiff_seconds(seconds: i64) -> gantry_client::k8s_openapi::jiff::SignedDuration {
    gantry_client::k8s_openapi::jiff::SignedDuration::from_secs(seconds)
}

/// One write of the controller.
enum Write {
    MarkUnknown(Arc<Node>),
    Taints(Arc<Node>, Vec<Taint>),
    MarkPodNotReady(BoundPod),
    Evict(BoundPod),
    DeleteOrphan(BoundPod),
}

fn pod_involved(pod: &BoundPod) -> Involved {
    Involved {
        api_version: "v1",
        kind: "Pod",
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
    }
}

impl Write {
    fn key(&self) -> String {
        match self {
            Write::MarkUnknown(node) | Write::Taints(node, _) => {
                format!("node/{}", node.metadata.name.as_deref().unwrap_or_default())
            }
            Write::MarkPodNotReady(pod) | Write::Evict(pod) | Write::DeleteOrphan(pod) => {
                format!("pod/{}", pod.uid)
            }
        }
    }

    async fn run(
        self,
        client: &Client,
        events: &Recorder,
        now: Timestamp,
    ) -> Result<(), gantry_client::kube::Error> {
        let nodes: Api<Node> = Api::all(client.clone());
        let patch = PatchParams::default();
        match self {
            Write::MarkUnknown(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                let stamp = gantry_client::events::now();
                let conditions: Vec<_> = AGENT_CONDITIONS
                    .iter()
                    .map(|type_| {
                        json!({"type": type_, "status": "Unknown", "reason": "NodeStatusUnknown",
                            "message": "Kubelet stopped posting node status.",
                            "lastTransitionTime": stamp})
                    })
                    .collect();
                // A strategic merge patch merges conditions by type, keeping their heartbeat times.
                let body = json!({"status": {"conditions": conditions}});
                nodes
                    .patch_status(&name, &patch, &Patch::Strategic(&body))
                    .await?;
                events.record(Event {
                    object: Involved {
                        api_version: "v1",
                        kind: "Node",
                        namespace: String::new(),
                        name: name.clone(),
                        uid: node.metadata.uid.clone().unwrap_or_default(),
                    },
                    warning: false,
                    reason: "NodeNotReady",
                    message: format!("Node {name} status is now: NodeNotReady"),
                });
            }
            Write::Taints(node, taints) => {
                // The resourceVersion makes the write fail rather than undo a change made meanwhile.
                let body = json!({"metadata": {"resourceVersion": node.metadata.resource_version},
                    "spec": {"taints": taints}});
                let name = node.metadata.name.as_deref().unwrap_or_default();
                nodes.patch(name, &patch, &Patch::Merge(&body)).await?;
            }
            Write::MarkPodNotReady(pod) => {
                let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
                let body = json!({"metadata": {"uid": pod.uid}, "status": {"conditions": [
                    {"type": "Ready", "status": "False", "lastTransitionTime": gantry_client::events::now()}]}});
                pods.patch_status(&pod.name, &patch, &Patch::Strategic(&body))
                    .await?;
            }
            Write::Evict(pod) => {
                let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
                let condition = json!({"status": {"conditions": [{"type": "DisruptionTarget",
                    "status": "True", "reason": "DeletionByTaintManager",
                    "message": "Taint manager: deleting due to NoExecute taint",
                    "lastTransitionTime": Time(now)}]}});
                pods.patch_status(&pod.name, &patch, &Patch::Strategic(&condition))
                    .await?;
                pods.delete(&pod.name, &delete_exactly(&pod, None)).await?;
                events.record(Event {
                    object: pod_involved(&pod),
                    warning: false,
                    reason: "TaintManagerEviction",
                    message: format!("Marking for deletion Pod {}/{}", pod.namespace, pod.name),
                });
            }
            Write::DeleteOrphan(pod) => {
                let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
                pods.delete(&pod.name, &delete_exactly(&pod, Some(0)))
                    .await?;
                events.record(Event {
                    object: pod_involved(&pod),
                    warning: false,
                    reason: "PodGarbageCollected",
                    message: format!("Deleted pod {} of the missing node {}", pod.name, pod.node),
                });
            }
        }
        Ok(())
    }
}

/// Deletes this pod and no other of its name (its uid as precondition).
fn delete_exactly(pod: &BoundPod, grace: Option<u32>) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: grace,
        preconditions: Some(Preconditions {
            uid: Some(pod.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn node(ready: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": "n"}, "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}),
        )
        .unwrap()
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn keys(taints: &[Taint]) -> Vec<(String, String)> {
        taints
            .iter()
            .map(|t| (t.key.clone(), t.effect.clone()))
            .collect()
    }

    #[test]
    fn taints_follow_the_ready_condition_and_keep_the_others() {
        let own = json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]);
        let ready = wanted_taints(&node("True", own.clone()), at(0));
        assert_eq!(
            keys(&ready),
            vec![("dedicated".into(), "NoSchedule".into())]
        );

        let unknown = wanted_taints(&node("Unknown", own.clone()), at(0));
        assert_eq!(
            keys(&unknown),
            vec![
                ("dedicated".into(), "NoSchedule".into()),
                (UNREACHABLE.into(), "NoSchedule".into()),
                (UNREACHABLE.into(), "NoExecute".into()),
            ]
        );
        assert_eq!(unknown[2].time_added, Some(Time(at(0))));
        assert_eq!(unknown[1].time_added, None);

        // Going from Unknown to False swaps the taints; a taint already there keeps its time.
        let tainted = serde_json::to_value(&unknown).unwrap();
        let not_ready = wanted_taints(&node("False", tainted.clone()), at(9));
        assert_eq!(
            keys(&not_ready)[1..],
            [
                (NOT_READY.into(), "NoSchedule".into()),
                (NOT_READY.into(), "NoExecute".into())
            ]
        );
        let still = wanted_taints(&node("Unknown", tainted), at(9));
        assert_eq!(still, unknown);
        // Ready again: only the node's own taint is left.
        let back = wanted_taints(&node("True", serde_json::to_value(&still).unwrap()), at(20));
        assert_eq!(keys(&back), keys(&ready));
    }

    #[test]
    fn evictions_slow_down_and_stop_as_more_of_the_cluster_is_down() {
        assert_eq!(Disruption::of(0, 2), Disruption::Normal);
        assert_eq!(Disruption::of(1, 2), Disruption::Normal);
        assert_eq!(Disruption::of(2, 2), Disruption::Full);
        assert_eq!(Disruption::of(2, 3), Disruption::Normal);
        assert_eq!(Disruption::of(3, 4), Disruption::Partial { large: false });
        assert_eq!(
            Disruption::of(4848, 5000),
            Disruption::Partial { large: true }
        );
        assert_eq!(Disruption::Normal.interval(), Some(Duration::from_secs(10)));
        assert_eq!(Disruption::Partial { large: false }.interval(), None);
        assert_eq!(Disruption::Full.interval(), None);
    }

    #[test]
    fn eviction_waits_for_the_shortest_toleration() {
        let taint = Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(at(0))),
            value: None,
        };
        let toleration = |key: &str, seconds: Option<i64>| Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: seconds,
            value: None,
        };
        // No toleration: at once.
        assert!(eviction_due(&[], &[&taint], at(0)));
        // 300 s (the API server's default): not before.
        let default = [toleration(UNREACHABLE, Some(300))];
        assert!(!eviction_due(&default, &[&taint], at(299)));
        assert!(eviction_due(&default, &[&taint], at(300)));
        // The shortest of several; an unlimited one tolerates for ever.
        let two = [toleration(UNREACHABLE, Some(300)), toleration("", Some(5))];
        assert!(eviction_due(&two, &[&taint], at(5)));
        let forever = [toleration(UNREACHABLE, None)];
        assert!(!eviction_due(&forever, &[&taint], at(1_000_000)));
        // Tolerating another taint does not help.
        assert!(eviction_due(
            &[toleration(NOT_READY, None)],
            &[&taint],
            at(0)
        ));
        // No NoExecute taint: nothing to do.
        assert!(!eviction_due(&[], &[], at(0)));
    }
}

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
//! (a node added or changed, a pod gone; a pod placed, for pods that failed on affinity or spreading) and
//! its back-off.
//!
//! Inter-pod affinity and topology spreading read the pods' labels through the cache's indexes, and the
//! labels of Namespaces (`namespaceSelector`), the selectors of Services and workload controllers (the
//! default spreading); preemption ([`preemption`]) reads PodDisruptionBudgets: all watched here too. A
//! pod that preempts others is nominated to the node (`status.nominatedNodeName`, and the room counted
//! for it against pods of lower priority), its victims get a `DisruptionTarget` condition, a `Preempted`
//! event and are deleted, and it is placed once they are gone.
//!
//! PersistentVolumeClaims, PersistentVolumes and StorageClasses are watched for [`volumes`]: a pod whose
//! claims are missing or unbound (Immediate) is rejected on every node, bound claims send it where their
//! volumes are, and unbound `WaitForFirstConsumer` claims where a volume is available or can be
//! provisioned. Before the binding, the chosen volume's `claimRef` or the claim's `selected-node` is
//! written (assumed in the cache at once, undone if the write fails). Pods with claims that could not be
//! placed are tried again when any of those three kinds change.

pub mod affinity;
pub mod cache;
pub mod plugins;
pub mod preemption;
pub mod queue;
pub mod resources;
pub mod spread;
#[cfg(test)]
mod testing;
pub mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use gantry_api::labels::Selector;
use gantry_client::k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use gantry_client::k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController, Service,
};
use gantry_client::k8s_openapi::api::policy::v1::PodDisruptionBudget;
use gantry_client::k8s_openapi::api::storage::v1::StorageClass;
use gantry_client::kube::Resource;
use gantry_client::kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use gantry_client::kube::runtime::{WatchStreamExt, watcher};
use gantry_client::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

pub use cache::Cache;
pub use plugins::{Algorithm, Decision, FitError, PodInfo};
pub use queue::Queue;

use cache::{Budget, CachedPod, NodeSpec, Nomination, Objects, PREEMPTION_REASON};
use gantry_client::events::{self, Event, Recorder};
use plugins::Victim;

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
    /// The writes before the binding, or the binding, failed: the pod is tried again. The message
    /// of the FailedScheduling event.
    Failed(String),
}

/// Which unschedulable pods a change of a mirrored kind may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wakes {
    /// None: it only changes scores.
    Nobody,
    All,
    /// Those with claims (PersistentVolumeClaims, PersistentVolumes, StorageClasses).
    PodsWithClaims,
}

/// A kind the scheduler mirrors into the cache (besides pods and nodes): what it keeps of each object.
trait Mirrored: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static {
    type Value: PartialEq;
    /// Which pods a change can make schedulable.
    const WAKES: Wakes;
    fn objects(cache: &mut Cache) -> &mut Objects<Self::Value>;
    fn value(&self) -> Self::Value;
}

fn labels_of(labels: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    labels.cloned().unwrap_or_default()
}

impl Mirrored for Namespace {
    type Value = BTreeMap<String, String>;
    const WAKES: Wakes = Wakes::All;
    fn objects(cache: &mut Cache) -> &mut Objects<Self::Value> {
        &mut cache.namespaces
    }
    fn value(&self) -> Self::Value {
        labels_of(self.metadata.labels.as_ref())
    }
}

impl Mirrored for Service {
    type Value = BTreeMap<String, String>;
    const WAKES: Wakes = Wakes::Nobody;
    fn objects(cache: &mut Cache) -> &mut Objects<Self::Value> {
        &mut cache.services
    }
    fn value(&self) -> Self::Value {
        labels_of(self.spec.as_ref().and_then(|s| s.selector.as_ref()))
    }
}

impl Mirrored for ReplicationController {
    type Value = BTreeMap<String, String>;
    const WAKES: Wakes = Wakes::Nobody;
    fn objects(cache: &mut Cache) -> &mut Objects<Self::Value> {
        &mut cache.replication_controllers
    }
    fn value(&self) -> Self::Value {
        labels_of(self.spec.as_ref().and_then(|s| s.selector.as_ref()))
    }
}

impl Mirrored for ReplicaSet {
    type Value = Selector;
    const WAKES: Wakes = Wakes::Nobody;
    fn objects(cache: &mut Cache) -> &mut Objects<Self::Value> {
        &mut cache.replica_sets
    }
    fn value(&self) -> Self::Value {
        affinity::label_selector(self.spec.as_ref().map(|s| &s.selector))
    }
}

impl Mirrored for StatefulSet {
    type Value = Selector;
    const WAKES: Wakes = Wakes::Nobody;
    fn objects(cache: &mut Cache) -> &mut Objects<Self::Value> {
        &mut cache.stateful_sets
    }
    fn value(&self) -> Self::Value {
        affinity::label_selector(self.spec.as_ref().map(|s| &s.selector))
    }
}

impl Mirrored for PodDisruptionBudget {
    type Value = Budget;
    const WAKES: Wakes = Wakes::Nobody;
    fn objects(cache: &mut Cache) -> &mut Objects<Self::Value> {
        &mut cache.budgets
    }
    fn value(&self) -> Self::Value {
        let status = self.status.as_ref();
        Budget {
            selector: affinity::label_selector(
                self.spec.as_ref().and_then(|s| s.selector.as_ref()),
            ),
            disruptions_allowed: status.map_or(0, |s| s.disruptions_allowed),
            disrupted: status
                .and_then(|s| s.disrupted_pods.as_ref())
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

impl Mirrored for PersistentVolumeClaim {
    type Value = volumes::Claim;
    const WAKES: Wakes = Wakes::PodsWithClaims;
    fn objects(cache: &mut Cache) -> &mut Objects<Self::Value> {
        &mut cache.claims
    }
    fn value(&self) -> Self::Value {
        volumes::Claim::of(self)
    }
}

impl Mirrored for PersistentVolume {
    type Value = volumes::Volume;
    const WAKES: Wakes = Wakes::PodsWithClaims;
    fn objects(cache: &mut Cache) -> &mut Objects<Self::Value> {
        &mut cache.volumes
    }
    fn value(&self) -> Self::Value {
        volumes::Volume::of(self)
    }
}

impl Mirrored for StorageClass {
    type Value = volumes::Class;
    const WAKES: Wakes = Wakes::PodsWithClaims;
    fn objects(cache: &mut Cache) -> &mut Objects<Self::Value> {
        &mut cache.classes
    }
    fn value(&self) -> Self::Value {
        volumes::Class::of(self)
    }
}

fn watch_all<K: Mirrored>(
    client: &Client,
) -> BoxStream<'static, watcher::Result<watcher::Event<K>>> {
    watcher(
        Api::<K>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .boxed()
}

/// The relist state of one mirrored kind.
#[derive(Debug, Default)]
struct Mirror {
    listed: Option<HashSet<(String, String)>>,
    synced: bool,
}

fn key_of<K: Resource>(object: &K) -> (String, String) {
    let meta = object.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Mirror {
    /// Applies a watch event to the cache; true when what the cache holds changed.
    fn apply<K: Mirrored>(&mut self, cache: &mut Cache, event: watcher::Event<K>) -> bool {
        match event {
            watcher::Event::Init => {
                self.listed = Some(HashSet::new());
                false
            }
            watcher::Event::InitApply(object) => {
                let (namespace, name) = key_of(&object);
                if let Some(listed) = &mut self.listed {
                    listed.insert((namespace.clone(), name.clone()));
                }
                K::objects(cache).set(&namespace, &name, object.value())
            }
            watcher::Event::Apply(object) => {
                let (namespace, name) = key_of(&object);
                K::objects(cache).set(&namespace, &name, object.value())
            }
            watcher::Event::Delete(object) => {
                let (namespace, name) = key_of(&object);
                K::objects(cache).remove(&namespace, &name)
            }
            watcher::Event::InitDone => {
                self.synced = true;
                let mut changed = false;
                if let Some(listed) = self.listed.take() {
                    let objects = K::objects(cache);
                    for key in objects.keys() {
                        if !listed.contains(&key) {
                            changed |= objects.remove(&key.0, &key.1);
                        }
                    }
                }
                changed
            }
        }
    }
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
    let mut namespace_events = watch_all::<Namespace>(&client);
    let mut service_events = watch_all::<Service>(&client);
    let mut rc_events = watch_all::<ReplicationController>(&client);
    let mut rs_events = watch_all::<ReplicaSet>(&client);
    let mut sts_events = watch_all::<StatefulSet>(&client);
    let mut pdb_events = watch_all::<PodDisruptionBudget>(&client);
    let mut pvc_events = watch_all::<PersistentVolumeClaim>(&client);
    let mut pv_events = watch_all::<PersistentVolume>(&client);
    let mut class_events = watch_all::<StorageClass>(&client);
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
            Some(event) = namespace_events.next() => scheduler.mirror(0, event, "namespaces"),
            Some(event) = service_events.next() => scheduler.mirror(1, event, "services"),
            Some(event) = rc_events.next() => scheduler.mirror(2, event, "replicationcontrollers"),
            Some(event) = rs_events.next() => scheduler.mirror(3, event, "replicasets"),
            Some(event) = sts_events.next() => scheduler.mirror(4, event, "statefulsets"),
            Some(event) = pdb_events.next() => scheduler.mirror(5, event, "poddisruptionbudgets"),
            Some(event) = pvc_events.next() => scheduler.mirror(6, event, "persistentvolumeclaims"),
            Some(event) = pv_events.next() => scheduler.mirror(7, event, "persistentvolumes"),
            Some(event) = class_events.next() => scheduler.mirror(8, event, "storageclasses"),
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
    /// Namespaces, Services, ReplicationControllers, ReplicaSets, StatefulSets, PodDisruptionBudgets,
    /// PersistentVolumeClaims, PersistentVolumes, StorageClasses.
    mirrors: [Mirror; 9],
    /// The cluster changed since unschedulable pods were last woken.
    changed: bool,
    /// A pod was placed (or its labels changed) since the pods waiting for that were last woken.
    pods_changed: bool,
    /// Unschedulable pods with claims: a change of claims, volumes or classes wakes them.
    pods_with_claims: HashSet<String>,
    /// Claims, volumes or classes changed since those pods were last woken.
    volumes_changed: bool,
    /// What the cache assumed of volumes and claims for the pods being bound, by uid.
    assumed_volumes: HashMap<String, volumes::Assumed>,
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
            mirrors: Default::default(),
            changed: false,
            pods_changed: false,
            pods_with_claims: HashSet::new(),
            volumes_changed: false,
            assumed_volumes: HashMap::new(),
            bindings: 0,
            bound_tx,
            status_writes: Arc::new(Semaphore::new(STATUS_WRITES_IN_FLIGHT)),
        }
    }

    /// Whether a pod can be scheduled now: every watch has listed once, and a binding slot is free. The
    /// unschedulable pods are woken first if the cluster changed (those waiting for pods, if pods did).
    fn can_schedule(&mut self) -> bool {
        if !(self.pods_synced && self.nodes_synced && self.mirrors.iter().all(|m| m.synced)) {
            return false;
        }
        if self.changed {
            self.changed = false;
            self.pods_changed = false;
            self.queue.cluster_changed(Instant::now());
        } else if self.pods_changed {
            self.pods_changed = false;
            self.queue.pods_changed(Instant::now());
        }
        if self.volumes_changed {
            self.volumes_changed = false;
            let now = Instant::now();
            for uid in self.pods_with_claims.drain() {
                self.queue.pod_changed(&uid, now);
            }
        }
        self.bindings < BINDINGS_IN_FLIGHT && self.queue.ready() > 0
    }

    fn mirror<K: Mirrored>(
        &mut self,
        which: usize,
        event: watcher::Result<watcher::Event<K>>,
        what: &str,
    ) {
        match event {
            Ok(event) => {
                if self.mirrors[which].apply(&mut self.cache, event) {
                    match K::WAKES {
                        Wakes::Nobody => {}
                        Wakes::All => self.changed = true,
                        Wakes::PodsWithClaims => self.volumes_changed = true,
                    }
                }
            }
            Err(e) => tracing::warn!("scheduler: watching {what}: {e}"),
        }
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
            self.pods_with_claims.remove(&uid);
            self.queue.done(&uid);
            if self.cache.clear_nomination(&uid) {
                self.changed = true;
            }
            let previous = self.cache.pod(&uid);
            let placed = previous.is_none_or(|p| p.node != node);
            let old_labels = previous.map(|p| p.labels.clone());
            let cached = CachedPod::of(&pod, node, previous);
            let relabelled = old_labels.is_some_and(|l| l != cached.labels);
            if self.cache.add_pod(cached) && (placed || relabelled) {
                self.pods_changed = true;
            }
            return;
        }
        if self.cache.has_pod(&uid) {
            // Assumed: its binding is in flight or done (this is an older view of it).
            return;
        }
        if !wants_scheduling(&pod) {
            self.pending.remove(&uid);
            self.pods_with_claims.remove(&uid);
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
        self.pods_with_claims.remove(uid);
        self.pending.remove(uid);
        self.queue.done(uid);
        let nominated = self.cache.clear_nomination(uid);
        if self.cache.remove_pod(uid) || nominated {
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
        match self.algorithm.decide(&info, &self.cache) {
            Decision::Bind(node) => {
                self.pods_with_claims.remove(&uid);
                // Upstream's Reserve: what the pod's claims need, counted as done at once.
                let plan = volumes::plan(&info, &self.cache, &node);
                if let Some(plan) = &plan {
                    let assumed = volumes::assume(&mut self.cache, plan);
                    self.assumed_volumes.insert(uid.clone(), assumed);
                }
                self.cache.clear_nomination(&uid);
                self.cache.add_pod(info.placed(&node));
                self.pods_changed = true;
                self.bindings += 1;
                let client = self.client.clone();
                let results = self.bound_tx.clone();
                let events = self.events.clone();
                tokio::spawn(async move {
                    let result = match &plan {
                        Some(plan) => match volumes::write(&client, plan).await {
                            Ok(()) => bind(&client, &info, &node).await,
                            Err(message) => Bound::Failed(message),
                        },
                        None => bind(&client, &info, &node).await,
                    };
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
            Decision::Preempt {
                node,
                victims,
                message,
            } => {
                self.queue.unschedulable(&uid, Instant::now());
                tracing::debug!(pod = %info.name, namespace = %info.namespace, %node,
                    victims = victims.len(), "preempting: {message}");
                self.preempt(&info, &node, victims);
                self.unschedulable(&info, message, Some(Some(node)));
            }
            Decision::Unschedulable {
                message,
                clear_nomination,
            } => {
                self.queue.unschedulable(&uid, Instant::now());
                if affinity_or_spread(&message) {
                    self.queue.wake_on_pod_changes(&uid);
                }
                if !info.claims.is_empty() {
                    self.pods_with_claims.insert(uid.clone());
                }
                tracing::debug!(pod = %info.name, namespace = %info.namespace, "unschedulable: {message}");
                let cleared = clear_nomination && self.cache.clear_nomination(&uid);
                let nomination = if clear_nomination && (cleared || info.nominated_node.is_some()) {
                    Some(None)
                } else {
                    None
                };
                self.unschedulable(&info, message, nomination);
            }
        }
    }

    /// Nominates the pod to `node`, takes the nomination of pods of lower priority there away (they go
    /// back to the queue), and evicts the victims: a `DisruptionTarget` condition, the deletion, a
    /// `Preempted` event.
    fn preempt(&mut self, info: &PodInfo, node: &str, victims: Vec<Victim>) {
        self.cache.nominate(
            &info.uid,
            Nomination {
                node: node.to_owned(),
                priority: info.priority,
                usage: info.usage.clone(),
            },
        );
        for uid in self.cache.nominated_below(node, info.priority) {
            self.cache.clear_nomination(&uid);
            self.queue.pod_changed(&uid, Instant::now());
            let Some(pod) = self.pending.get(&uid) else {
                continue;
            };
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            tokio::spawn(async move {
                let patch = json!({"status": {"nominatedNodeName": Value::Null}});
                let cleared = pods
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                if let Err(e) = cleared {
                    tracing::debug!(pod = %name, "cannot clear nominatedNodeName: {e}");
                }
            });
        }
        for victim in &victims {
            self.cache.mark_preempted(&victim.uid);
        }
        let client = self.client.clone();
        let events = self.events.clone();
        let message = format!("Preempted by pod {} on node {node}", info.uid);
        tokio::spawn(async move {
            for victim in victims {
                evict(&client, &victim).await;
                events.record(Event {
                    object: events::Involved {
                        api_version: "v1",
                        kind: "Pod",
                        namespace: victim.namespace.clone(),
                        name: victim.name.clone(),
                        uid: victim.uid.clone(),
                    },
                    warning: false,
                    reason: "Preempted",
                    message: message.clone(),
                });
            }
        });
    }

    /// Says why the pod cannot be placed: the FailedScheduling event, and the PodScheduled condition when
    /// it does not say so already; `nomination` sets (or clears: `Some(None)`) `status.nominatedNodeName`.
    fn unschedulable(&self, info: &PodInfo, message: String, nomination: Option<Option<String>>) {
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
        let nominated = nomination
            .as_ref()
            .is_none_or(|n| *n == info.nominated_node);
        if said && nominated {
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
            let mut patch = json!({
                "status": {"conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": message, "lastProbeTime": Value::Null,
                    "lastTransitionTime": events::now(),
                }]},
            });
            if let Some(node) = nomination {
                patch["status"]["nominatedNodeName"] = node.map_or(Value::Null, Value::String);
            }
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
        let assumed = self.assumed_volumes.remove(uid);
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
                if let Some(assumed) = assumed {
                    volumes::forget(&mut self.cache, assumed);
                }
                self.queue.retry(uid, Instant::now());
                if let Some(pod) = self.pending.get(uid) {
                    let info = PodInfo::new(pod.clone());
                    self.events
                        .record(about_pod(&info, true, "FailedScheduling", message));
                }
            }
        }
    }
}

/// Whether an unschedulable pod's message names a failure that a pod placed elsewhere can resolve
/// (pod affinity, spreading).
fn affinity_or_spread(message: &str) -> bool {
    [affinity::REASON_AFFINITY, spread::REASON_SPREAD]
        .iter()
        .any(|r| message.contains(r))
}

/// Evicts a pod for preemption: the `DisruptionTarget` condition (upstream's, so that its controller and
/// `kubectl describe` see why), then the deletion (with the pod's grace period).
async fn evict(client: &Client, victim: &Victim) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &victim.namespace);
    let condition = json!({"status": {"conditions": [{
        "type": "DisruptionTarget", "status": "True", "reason": PREEMPTION_REASON,
        "message": format!("{SCHEDULER_NAME}: preempting to accommodate a higher priority pod"),
        "lastTransitionTime": events::now(),
    }]}});
    let marked = pods
        .patch_status(
            &victim.name,
            &PatchParams::default(),
            &Patch::Strategic(&condition),
        )
        .await;
    if let Err(e) = marked {
        tracing::debug!(pod = %victim.name, "cannot add the DisruptionTarget condition: {e}");
    }
    let params = DeleteParams {
        preconditions: Some(gantry_client::kube::api::Preconditions {
            uid: Some(victim.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pods.delete(&victim.name, &params).await {
        Ok(_) => {}
        Err(gantry_client::kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(pod = %victim.name, "cannot delete a preempted pod: {e}"),
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
        Err(e) => Bound::Failed(format!("Binding rejected: {e}")),
    }
}

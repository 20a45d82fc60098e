//! The scheduler's view of the cluster: every node (what the filters read of it) and what the pods bound or
//! being bound to it use. Pods are added and removed one at a time, so a node's totals, the index of pods by
//! label and the per-node counts of distinct affinity terms are always current without a relist or a scan.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use gantry_api::labels::{Operator, Selector};
use gantry_client::k8s_openapi::api::core::v1::{Node, Pod, Taint};

use crate::affinity::{PodTerms, Term, TermKind};
use crate::resources::{Resources, pod_requests, value};
use crate::volumes::{self, Claim, Class, Volume};

/// The reason of the `DisruptionTarget` condition of a pod the scheduler preempts.
pub const PREEMPTION_REASON: &str = "PreemptionByScheduler";

/// Taint of a node whose Ready condition is False (or missing), as upstream's node lifecycle puts it.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// Taint of a node whose Ready condition is Unknown.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// A host port a pod takes: address (`0.0.0.0` when unset), protocol, port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Whether two ports cannot be on one node: same protocol and port, and either address the wildcard or
    /// both the same.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// The host ports of a pod's containers (and sidecars).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|port| *port > 0)?;
            Some(HostPort {
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port,
            })
        })
        .collect()
}

/// What one pod takes from its node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests: Resources,
    /// Cpu (millicores) and memory with unset requests counted at the defaults, for the scores.
    pub non_zero: (i64, i64),
    pub ports: Vec<HostPort>,
}

impl Usage {
    pub fn of(pod: &Pod) -> Usage {
        let Some(spec) = &pod.spec else {
            return Usage::default();
        };
        let non_zero = pod_requests(spec, true);
        Usage {
            requests: pod_requests(spec, false),
            non_zero: (non_zero.milli_cpu, non_zero.memory),
            ports: host_ports(pod),
        }
    }
}

/// What the filters read of a Node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSpec {
    pub labels: BTreeMap<String, String>,
    /// Its taints, with the not-ready or unreachable taint added when it is not Ready.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    pub allowed_pods: i64,
}

impl NodeSpec {
    pub fn of(node: &Node) -> NodeSpec {
        let spec = node.spec.as_ref();
        let mut taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        let status = node.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        let implied = match ready {
            Some("True") => None,
            Some("Unknown") => Some(UNREACHABLE_TAINT),
            _ => Some(NOT_READY_TAINT),
        };
        if let Some(key) = implied
            && !taints
                .iter()
                .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.to_owned(),
                effect: "NoSchedule".to_owned(),
                ..Taint::default()
            });
        }
        let allocatable = status.and_then(|s| s.allocatable.as_ref());
        NodeSpec {
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            allocatable: allocatable.map(Resources::from_list).unwrap_or_default(),
            allowed_pods: allocatable
                .and_then(|a| a.get("pods"))
                .map(value)
                .unwrap_or(0),
        }
    }
}

/// What the cache keeps of a pod bound (or being bound) to a node: what it uses, and what the affinity,
/// spreading and preemption read of it.
#[derive(Debug, Clone)]
pub struct CachedPod {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub usage: Usage,
    pub labels: BTreeMap<String, String>,
    pub priority: i32,
    /// Being deleted (`deletionTimestamp` set).
    pub terminating: bool,
    /// Being deleted because the scheduler preempted it (upstream's `podTerminatingByPreemption`), or about
    /// to be.
    pub preempted: bool,
    /// `status.startTime` in milliseconds since the epoch.
    pub start: Option<i64>,
    /// Its pod affinity and anti-affinity terms, if any.
    pub terms: Option<Arc<PodTerms>>,
    /// The claims of its `persistentVolumeClaim` volumes (what ReadWriteOncePod counts).
    pub claims: Vec<String>,
}

/// A pod's priority (`spec.priority`, 0 when unset, as upstream's `PodPriority`).
pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

impl CachedPod {
    /// The pod as bound to `node`; the terms of `previous` (the same pod seen before: affinity is
    /// immutable) are kept rather than parsed again.
    pub fn of(pod: &Pod, node: &str, previous: Option<&CachedPod>) -> CachedPod {
        let status = pod.status.as_ref();
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let preempted_condition = status.and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
            c.iter().any(|c| {
                c.type_ == "DisruptionTarget"
                    && c.status == "True"
                    && c.reason.as_deref() == Some(PREEMPTION_REASON)
            })
        });
        let terms = match previous {
            Some(p) => p.terms.clone(),
            None => PodTerms::of(pod).map(Arc::new),
        };
        CachedPod {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            node: node.to_owned(),
            usage: Usage::of(pod),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            priority: priority(pod),
            terminating,
            preempted: (terminating && preempted_condition)
                || previous.is_some_and(|p| p.preempted),
            start: status
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0.as_millisecond()),
            terms,
            claims: volumes::claim_names(pod),
        }
    }

    /// Whether what the scheduler reads of the pod is the same.
    fn same(&self, other: &CachedPod) -> bool {
        self.node == other.node
            && self.usage == other.usage
            && self.labels == other.labels
            && self.priority == other.priority
            && self.terminating == other.terminating
            && self.preempted == other.preempted
            && self.start == other.start
            && self.namespace == other.namespace
    }
}

/// A node and what its pods use. `spec` is `None` for a node not (or no longer) known that pods are bound
/// to anyway.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    pub spec: Option<NodeSpec>,
    pub requested: Resources,
    pub non_zero_requested: (i64, i64),
    pub pods: usize,
    pub ports: HashMap<HostPort, usize>,
    /// The cache's slots of the pods on the node (see [`Cache::pod_at`]).
    pub slots: Vec<u32>,
}

impl NodeInfo {
    /// Counts what a pod uses.
    pub fn add(&mut self, usage: &Usage) {
        self.requested.add(&usage.requests);
        self.non_zero_requested.0 += usage.non_zero.0;
        self.non_zero_requested.1 += usage.non_zero.1;
        self.pods += 1;
        for port in &usage.ports {
            *self.ports.entry(port.clone()).or_default() += 1;
        }
    }

    /// Stops counting what a pod uses.
    pub fn remove(&mut self, usage: &Usage) {
        self.requested.subtract(&usage.requests);
        self.non_zero_requested.0 -= usage.non_zero.0;
        self.non_zero_requested.1 -= usage.non_zero.1;
        self.pods = self.pods.saturating_sub(1);
        for port in &usage.ports {
            if let Some(count) = self.ports.get_mut(port) {
                *count -= 1;
                if *count == 0 {
                    self.ports.remove(port);
                }
            }
        }
    }
}

/// The namespaces a label query looks in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Only(Vec<String>),
}

impl Scope {
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(names) => names.iter().any(|n| n == namespace),
        }
    }
}

/// The pods of one namespace, by label.
#[derive(Debug, Default)]
struct NamespacePods {
    all: HashSet<u32>,
    /// key → value → slots.
    labels: HashMap<String, HashMap<String, HashSet<u32>>>,
}

/// The pods with one and the same affinity term (same kind, weight, owner namespace, selector, topology
/// key), counted by node: what the symmetric checks read, one check per distinct term rather than per pod.
#[derive(Debug, Clone)]
pub struct TermGroup {
    pub kind: TermKind,
    pub term: Term,
    pub nodes: HashMap<String, usize>,
}

/// A nominated pod: where preemption made room for it, and what it will take there.
#[derive(Debug, Clone)]
pub struct Nomination {
    pub node: String,
    pub priority: i32,
    pub usage: Usage,
}

/// Objects of one kind by namespace and name (cluster-scoped ones under the namespace "").
#[derive(Debug, Clone)]
pub struct Objects<T> {
    items: HashMap<String, HashMap<String, T>>,
}

impl<T> Default for Objects<T> {
    fn default() -> Self {
        Objects {
            items: HashMap::new(),
        }
    }
}

impl<T: PartialEq> Objects<T> {
    /// Adds or replaces one; true when it changed.
    pub fn set(&mut self, namespace: &str, name: &str, value: T) -> bool {
        let names = self.items.entry(namespace.to_owned()).or_default();
        if names.get(name) == Some(&value) {
            return false;
        }
        names.insert(name.to_owned(), value);
        true
    }

    /// Removes one; true when it was there.
    pub fn remove(&mut self, namespace: &str, name: &str) -> bool {
        let Some(names) = self.items.get_mut(namespace) else {
            return false;
        };
        let removed = names.remove(name).is_some();
        if names.is_empty() {
            self.items.remove(namespace);
        }
        removed
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&T> {
        self.items.get(namespace)?.get(name)
    }

    /// The objects of one namespace.
    pub fn in_namespace(&self, namespace: &str) -> impl Iterator<Item = (&String, &T)> {
        self.items.get(namespace).into_iter().flatten()
    }

    /// Every (namespace, name).
    pub fn keys(&self) -> Vec<(String, String)> {
        self.items
            .iter()
            .flat_map(|(ns, names)| names.keys().map(|n| (ns.clone(), n.clone())))
            .collect()
    }
}

/// A PodDisruptionBudget as preemption reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub selector: Selector,
    pub disruptions_allowed: i32,
    /// Pods the API server already counted as disrupted.
    pub disrupted: HashSet<String>,
}

/// Every node and the pods on each, by pod uid (bound, or assumed while their binding is in flight), with
/// the indexes the affinity and spreading plugins query (pods by namespace and label, distinct affinity
/// terms by node), and the other objects the plugins read: namespaces' labels, the selectors of Services
/// and workload controllers (for the default spreading), PodDisruptionBudgets (for preemption).
#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Nodes with a spec.
    known: usize,
    slots: Vec<Option<CachedPod>>,
    free: Vec<u32>,
    by_uid: HashMap<String, u32>,
    by_namespace: HashMap<String, NamespacePods>,
    /// Required anti-affinity terms of the pods (what a new pod must not break).
    anti_groups: HashMap<String, TermGroup>,
    /// The other terms (what the scores read).
    score_groups: HashMap<String, TermGroup>,
    nominated: HashMap<String, Nomination>,
    /// Namespaces' labels, by name (under the namespace "").
    pub namespaces: Objects<BTreeMap<String, String>>,
    /// Services' selectors.
    pub services: Objects<BTreeMap<String, String>>,
    pub replica_sets: Objects<Selector>,
    pub stateful_sets: Objects<Selector>,
    /// ReplicationControllers' selectors (label sets).
    pub replication_controllers: Objects<BTreeMap<String, String>>,
    pub budgets: Objects<Budget>,
    /// PersistentVolumeClaims; PersistentVolumes and StorageClasses (under the namespace "").
    pub claims: Objects<Claim>,
    pub volumes: Objects<Volume>,
    pub classes: Objects<Class>,
    /// How many counted pods use each claim ("namespace/name").
    claim_users: HashMap<String, usize>,
}

impl Cache {
    /// The nodes in a fixed order (placeholders for unknown nodes included: skip those without a spec).
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// How many nodes are known.
    pub fn node_count(&self) -> usize {
        self.known
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// The labels of the known node `name`.
    pub fn node_labels(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.node(name)?.spec.as_ref().map(|s| &s.labels)
    }

    fn entry(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.index.get(name) {
            Some(i) => *i,
            None => {
                self.nodes.push(NodeInfo {
                    name: name.to_owned(),
                    ..NodeInfo::default()
                });
                self.index.insert(name.to_owned(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }

    fn drop_if_unused(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.nodes[i].spec.is_some() || self.nodes[i].pods > 0 {
            return;
        }
        self.index.remove(name);
        self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    /// Adds or replaces a node; true when what the filters see of it changed.
    pub fn set_node(&mut self, name: &str, spec: NodeSpec) -> bool {
        let node = self.entry(name);
        if node.spec.as_ref() == Some(&spec) {
            return false;
        }
        let new = node.spec.is_none();
        node.spec = Some(spec);
        if new {
            self.known += 1;
        }
        true
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.nodes[i].spec.take().is_some() {
            self.known -= 1;
        }
        self.drop_if_unused(name);
    }

    /// The names of the known nodes.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.spec.is_some())
            .map(|n| n.name.clone())
            .collect()
    }

    /// Whether the pod `uid` is counted on a node.
    pub fn has_pod(&self, uid: &str) -> bool {
        self.by_uid.contains_key(uid)
    }

    /// The pod `uid`, if counted.
    pub fn pod(&self, uid: &str) -> Option<&CachedPod> {
        self.pod_at(*self.by_uid.get(uid)?)
    }

    /// The pod in a slot (see [`NodeInfo::slots`]).
    pub fn pod_at(&self, slot: u32) -> Option<&CachedPod> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// The pods on a node.
    pub fn pods_on<'a>(&'a self, node: &'a NodeInfo) -> impl Iterator<Item = &'a CachedPod> + 'a {
        node.slots.iter().filter_map(|s| self.pod_at(*s))
    }

    /// Counts the pod on its node (replacing what it was counted as before); false when nothing changed.
    pub fn add_pod(&mut self, pod: CachedPod) -> bool {
        if let Some(old) = self.pod(&pod.uid) {
            if old.same(&pod) {
                return false;
            }
            let uid = pod.uid.clone();
            self.remove_pod(&uid);
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let node = self.entry(&pod.node);
        node.add(&pod.usage);
        node.slots.push(slot);
        let pods = self.by_namespace.entry(pod.namespace.clone()).or_default();
        pods.all.insert(slot);
        for (key, value) in &pod.labels {
            pods.labels
                .entry(key.clone())
                .or_default()
                .entry(value.clone())
                .or_default()
                .insert(slot);
        }
        if let Some(terms) = &pod.terms {
            for (kind, term, key) in terms.all() {
                let groups = if kind == TermKind::RequiredAnti {
                    &mut self.anti_groups
                } else {
                    &mut self.score_groups
                };
                let group = groups.entry(key.to_owned()).or_insert_with(|| TermGroup {
                    kind,
                    term: term.clone(),
                    nodes: HashMap::new(),
                });
                *group.nodes.entry(pod.node.clone()).or_default() += 1;
            }
        }
        for claim in &pod.claims {
            *self
                .claim_users
                .entry(format!("{}/{claim}", pod.namespace))
                .or_default() += 1;
        }
        self.by_uid.insert(pod.uid.clone(), slot);
        self.slots[slot as usize] = Some(pod);
        true
    }

    /// Stops counting the pod `uid`; true when it was counted.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(slot) = self.by_uid.remove(uid) else {
            return false;
        };
        let Some(pod) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return false;
        };
        self.free.push(slot);
        for claim in &pod.claims {
            let key = format!("{}/{claim}", pod.namespace);
            if let Some(count) = self.claim_users.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    self.claim_users.remove(&key);
                }
            }
        }
        let node = self.entry(&pod.node);
        node.remove(&pod.usage);
        node.slots.retain(|s| *s != slot);
        if let Some(pods) = self.by_namespace.get_mut(&pod.namespace) {
            pods.all.remove(&slot);
            for (key, value) in &pod.labels {
                let Some(values) = pods.labels.get_mut(key) else {
                    continue;
                };
                if let Some(slots) = values.get_mut(value) {
                    slots.remove(&slot);
                    if slots.is_empty() {
                        values.remove(value);
                    }
                }
                if values.is_empty() {
                    pods.labels.remove(key);
                }
            }
            if pods.all.is_empty() {
                self.by_namespace.remove(&pod.namespace);
            }
        }
        if let Some(terms) = &pod.terms {
            for (kind, _, key) in terms.all() {
                let groups = if kind == TermKind::RequiredAnti {
                    &mut self.anti_groups
                } else {
                    &mut self.score_groups
                };
                let Some(group) = groups.get_mut(key) else {
                    continue;
                };
                if let Some(count) = group.nodes.get_mut(&pod.node) {
                    *count -= 1;
                    if *count == 0 {
                        group.nodes.remove(&pod.node);
                    }
                }
                if group.nodes.is_empty() {
                    groups.remove(key);
                }
            }
        }
        self.drop_if_unused(&pod.node);
        true
    }

    /// Whether a counted pod uses the claim `namespace/name`.
    pub fn claim_in_use(&self, namespace: &str, name: &str) -> bool {
        !self.claim_users.is_empty()
            && self
                .claim_users
                .contains_key(&format!("{namespace}/{name}"))
    }

    /// Marks a pod as being preempted (until the watch says it is deleted).
    pub fn mark_preempted(&mut self, uid: &str) {
        if let Some(&slot) = self.by_uid.get(uid)
            && let Some(Some(pod)) = self.slots.get_mut(slot as usize)
        {
            pod.preempted = true;
            pod.terminating = true;
        }
    }

    /// The uids of the pods counted.
    pub fn pod_uids(&self) -> Vec<String> {
        self.by_uid.keys().cloned().collect()
    }

    /// Calls `f` with every pod in `scope` whose labels `selector` matches; only the pods with the
    /// rarest label the selector requires are looked at.
    pub fn for_each_matching(
        &self,
        scope: &Scope,
        selector: &Selector,
        mut f: impl FnMut(&CachedPod),
    ) {
        if selector_is_nothing(selector) {
            return;
        }
        let mut visit = |pods: &NamespacePods| {
            let mut best: Option<(usize, Vec<&HashSet<u32>>)> = None;
            for requirement in selector.requirements() {
                let sets: Vec<&HashSet<u32>> = match requirement.operator() {
                    Operator::In | Operator::Equals | Operator::DoubleEquals => {
                        let values = pods.labels.get(requirement.key());
                        requirement
                            .values()
                            .iter()
                            .filter_map(|v| values?.get(v))
                            .collect()
                    }
                    Operator::Exists => pods
                        .labels
                        .get(requirement.key())
                        .into_iter()
                        .flat_map(|values| values.values())
                        .collect(),
                    _ => continue,
                };
                let size = sets.iter().map(|s| s.len()).sum();
                if best.as_ref().is_none_or(|(smallest, _)| size < *smallest) {
                    best = Some((size, sets));
                }
            }
            let candidates = match best {
                Some((_, sets)) => sets,
                None => vec![&pods.all],
            };
            for slot in candidates.into_iter().flatten() {
                if let Some(pod) = self.pod_at(*slot)
                    && selector.matches(&pod.labels)
                {
                    f(pod);
                }
            }
        };
        match scope {
            Scope::All => self.by_namespace.values().for_each(&mut visit),
            Scope::Only(names) => {
                for name in names {
                    if let Some(pods) = self.by_namespace.get(name) {
                        visit(pods);
                    }
                }
            }
        }
    }

    /// The distinct required anti-affinity terms of the pods.
    pub fn anti_groups(&self) -> impl Iterator<Item = &TermGroup> {
        self.anti_groups.values()
    }

    /// The distinct other affinity terms of the pods (required affinity, preferred ones).
    pub fn score_groups(&self) -> impl Iterator<Item = &TermGroup> {
        self.score_groups.values()
    }

    pub fn has_anti_groups(&self) -> bool {
        !self.anti_groups.is_empty()
    }

    pub fn has_score_groups(&self) -> bool {
        !self.score_groups.is_empty()
    }

    /// The labels of a namespace (empty when unknown).
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.namespaces
            .get("", namespace)
            .cloned()
            .unwrap_or_default()
    }

    /// Records that preemption made room for the pod `uid` on `node`.
    pub fn nominate(&mut self, uid: &str, nomination: Nomination) {
        self.nominated.insert(uid.to_owned(), nomination);
    }

    /// Forgets the pod's nomination; true when it had one.
    pub fn clear_nomination(&mut self, uid: &str) -> bool {
        self.nominated.remove(uid).is_some()
    }

    pub fn nomination(&self, uid: &str) -> Option<&Nomination> {
        self.nominated.get(uid)
    }

    /// The pods nominated to `node` (but `except`) with at least priority `priority`: the room they will
    /// take.
    pub fn nominated_on(&self, node: &str, priority: i32, except: &str) -> Vec<&Nomination> {
        if self.nominated.is_empty() {
            return Vec::new();
        }
        self.nominated
            .iter()
            .filter(|(uid, n)| n.node == node && n.priority >= priority && uid.as_str() != except)
            .map(|(_, n)| n)
            .collect()
    }

    /// The pods nominated to `node` with a priority below `priority`.
    pub fn nominated_below(&self, node: &str, priority: i32) -> Vec<String> {
        self.nominated
            .iter()
            .filter(|(_, n)| n.node == node && n.priority < priority)
            .map(|(uid, _)| uid.clone())
            .collect()
    }
}

/// Whether a selector matches nothing (a null `LabelSelector`).
pub fn selector_is_nothing(selector: &Selector) -> bool {
    !selector.is_empty() && selector.requirements().is_empty()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn placed(uid: &str, node: &str, usage: Usage) -> CachedPod {
        CachedPod {
            uid: uid.into(),
            namespace: "ns".into(),
            name: uid.into(),
            node: node.into(),
            usage,
            labels: BTreeMap::new(),
            priority: 0,
            terminating: false,
            preempted: false,
            start: None,
            terms: None,
            claims: Vec::new(),
        }
    }

    fn usage(cpu: i64, port: Option<i32>) -> Usage {
        Usage {
            requests: Resources {
                milli_cpu: cpu,
                ..Resources::default()
            },
            non_zero: (cpu.max(100), 200 << 20),
            ports: port
                .map(|port| HostPort {
                    ip: "0.0.0.0".into(),
                    protocol: "TCP".into(),
                    port,
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn pods_are_counted_on_their_node_once_and_nodes_outlive_their_pods_only_when_known() {
        let mut cache = Cache::default();
        cache.add_pod(placed("a", "n1", usage(100, Some(80))));
        cache.add_pod(placed("a", "n1", usage(100, Some(80))));
        cache.add_pod(placed("b", "n1", usage(300, None)));
        assert_eq!(cache.node_count(), 0);
        let n1 = cache.node("n1").unwrap();
        assert_eq!(
            (n1.requested.milli_cpu, n1.pods, n1.ports.len()),
            (400, 2, 1)
        );
        assert!(cache.set_node("n1", NodeSpec::default()));
        assert!(!cache.set_node("n1", NodeSpec::default()));
        assert_eq!(cache.node_count(), 1);
        // Moved to another node (a relist can say so).
        cache.add_pod(placed("a", "n2", usage(100, Some(80))));
        assert_eq!(cache.node("n1").unwrap().ports.len(), 0);
        assert_eq!(cache.node("n2").unwrap().pods, 1);
        assert!(cache.remove_pod("a"));
        assert!(!cache.remove_pod("a"));
        assert!(cache.node("n2").is_none());
        cache.remove_node("n1");
        assert_eq!(cache.node_count(), 0);
        assert_eq!(cache.node("n1").unwrap().pods, 1);
        cache.remove_pod("b");
        assert!(cache.node("n1").is_none());
        assert!(cache.nodes().is_empty());
    }

    #[test]
    fn a_node_that_is_not_ready_has_the_not_ready_taint() {
        let node = |ready: Option<&str>| -> Node {
            let conditions: Vec<_> = ready
                .map(|s| json!({"type": "Ready", "status": s}))
                .into_iter()
                .collect();
            serde_json::from_value(json!({
                "metadata": {"name": "n", "labels": {"a": "b"}},
                "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
                "status": {"conditions": conditions, "allocatable": {"cpu": "2", "memory": "1Gi", "pods": "110"}},
            }))
            .unwrap()
        };
        let ready = NodeSpec::of(&node(Some("True")));
        assert_eq!(ready.taints.len(), 1);
        assert_eq!(ready.allocatable.milli_cpu, 2000);
        assert_eq!(ready.allowed_pods, 110);
        let keys = |s: NodeSpec| s.taints.iter().map(|t| t.key.clone()).collect::<Vec<_>>();
        assert_eq!(
            keys(NodeSpec::of(&node(Some("False")))),
            ["k", NOT_READY_TAINT]
        );
        assert_eq!(keys(NodeSpec::of(&node(None))), ["k", NOT_READY_TAINT]);
        assert_eq!(
            keys(NodeSpec::of(&node(Some("Unknown")))),
            ["k", UNREACHABLE_TAINT]
        );
    }
}

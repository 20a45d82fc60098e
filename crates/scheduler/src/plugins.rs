//! Filters and scores, as upstream's default plugins: each filter says why a node cannot take a pod (in
//! upstream's words, which `kubectl describe` shows in FailedScheduling events), each score rates the nodes
//! that can. [`Algorithm::decide`] works out what the stateful plugins need once ([`CycleState`]), runs
//! them over the nodes and picks one, or finds pods to preempt ([`crate::preemption`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gantry_client::k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PreferredSchedulingTerm, Taint,
    Toleration,
};

use crate::affinity::{self, PodTerms};
use crate::cache::{Cache, CachedPod, HostPort, NodeInfo, NodeSpec, Usage, priority};
use crate::preemption;
use crate::resources::Resources;
use crate::spread::{self, Constraint};
use crate::volumes::{self, PodClaim};

pub const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const REASON_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";
/// The taint that `spec.unschedulable` stands for (a pod tolerating it may go to such a node).
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
/// Upstream's preemption answer for nodes where evicting pods could not help.
pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Upstream's preemption answer for nodes with no pod of lower priority to evict.
pub const PREEMPTION_NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// A pod being scheduled, with what the plugins read of it worked out once.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub pod: Arc<Pod>,
    pub usage: Usage,
    pub node_name: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    pub required: Option<NodeSelector>,
    pub preferred: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
    pub preemption_never: bool,
    pub labels: BTreeMap<String, String>,
    pub priority: i32,
    /// Its pod affinity and anti-affinity terms.
    pub terms: Option<Arc<PodTerms>>,
    /// Its `DoNotSchedule` and `ScheduleAnyway` spread constraints.
    pub hard_spread: Vec<Constraint>,
    pub soft_spread: Vec<Constraint>,
    /// Whether it has any spread constraint (else the system defaults may apply).
    pub has_spread: bool,
    /// Its controller, when a ReplicaSet, StatefulSet or ReplicationController: (kind, name).
    pub controller: Option<(String, String)>,
    /// `status.nominatedNodeName`.
    pub nominated_node: Option<String>,
    /// The claims its volumes use (empty for most pods: then the volume plugins do nothing).
    pub claims: Vec<PodClaim>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let spec = pod.spec.as_ref();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let affinity = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref());
        PodInfo {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            usage: Usage::of(&pod),
            node_name: spec
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            node_selector: spec
                .and_then(|s| s.node_selector.clone())
                .unwrap_or_default(),
            required: affinity.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .clone()
            }),
            preferred: affinity
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .clone()
                })
                .unwrap_or_default(),
            tolerations: spec.and_then(|s| s.tolerations.clone()).unwrap_or_default(),
            preemption_never: spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never"),
            priority: priority(&pod),
            terms: PodTerms::of(&pod).map(Arc::new),
            hard_spread: spread::constraints(&pod, &labels, "DoNotSchedule"),
            soft_spread: spread::constraints(&pod, &labels, "ScheduleAnyway"),
            has_spread: spec
                .and_then(|s| s.topology_spread_constraints.as_ref())
                .is_some_and(|c| !c.is_empty()),
            controller: pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .filter(|o| {
                    matches!(
                        (o.api_version.as_str(), o.kind.as_str()),
                        ("v1", "ReplicationController") | ("apps/v1", "ReplicaSet" | "StatefulSet")
                    )
                })
                .map(|o| (o.kind.clone(), o.name.clone())),
            nominated_node: pod
                .status
                .as_ref()
                .and_then(|s| s.nominated_node_name.clone())
                .filter(|n| !n.is_empty()),
            claims: volumes::pod_claims(&pod),
            labels,
            pod,
        }
    }

    /// The pod as the cache counts it once placed on `node`.
    pub fn placed(&self, node: &str) -> CachedPod {
        CachedPod {
            uid: self.uid.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            node: node.to_owned(),
            usage: self.usage.clone(),
            labels: self.labels.clone(),
            priority: self.priority,
            terminating: false,
            preempted: false,
            start: None,
            terms: self.terms.clone(),
            claims: self
                .claims
                .iter()
                .filter(|c| !c.ephemeral)
                .map(|c| c.name.clone())
                .collect(),
        }
    }
}

/// Why a node cannot take a pod: upstream's reason strings (one plugin's, possibly several).
pub type Reasons = Vec<String>;

/// A filter's verdict against a node: its reasons, and whether preemption could help (upstream's
/// Unschedulable, or UnschedulableAndUnresolvable when not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reasons: Reasons,
    pub resolvable: bool,
}

impl Failure {
    pub fn resolvable(reason: &str) -> Failure {
        Failure {
            reasons: vec![reason.to_owned()],
            resolvable: true,
        }
    }

    pub fn unresolvable(reason: &str) -> Failure {
        Failure {
            reasons: vec![reason.to_owned()],
            resolvable: false,
        }
    }
}

/// A filter: Ok when the node can take the pod.
pub type Filter = fn(&PodInfo, &NodeInfo, &NodeSpec) -> Result<(), Reasons>;

/// The filters in upstream's order (the first that fails gives a node's reasons). Whether preemption could
/// help on a node failing each one is the bool (upstream's Unschedulable vs UnschedulableAndUnresolvable).
pub const FILTERS: &[(&str, Filter, bool)] = &[
    ("NodeUnschedulable", node_unschedulable, false),
    ("NodeName", node_name, false),
    ("TaintToleration", taint_toleration, false),
    ("NodeAffinity", node_affinity, false),
    ("NodePorts", node_ports, true),
    ("NodeResourcesFit", resources_fit, true),
];

fn fail(reason: impl Into<String>) -> Result<(), Reasons> {
    Err(vec![reason.into()])
}

/// `spec.unschedulable` nodes, unless the pod tolerates the unschedulable taint.
pub fn node_unschedulable(pod: &PodInfo, _: &NodeInfo, node: &NodeSpec) -> Result<(), Reasons> {
    let taint = Taint {
        key: UNSCHEDULABLE_TAINT.into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    };
    if node.unschedulable && !pod.tolerations.iter().any(|t| tolerates(t, &taint)) {
        return fail(REASON_UNSCHEDULABLE);
    }
    Ok(())
}

/// A pod naming its node goes there only.
pub fn node_name(pod: &PodInfo, info: &NodeInfo, _: &NodeSpec) -> Result<(), Reasons> {
    match &pod.node_name {
        Some(name) if *name != info.name => fail(REASON_NODE_NAME),
        _ => Ok(()),
    }
}

/// Whether `toleration` tolerates `taint` (upstream's `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration
        .effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if toleration
        .key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match toleration.operator.as_deref() {
        None | Some("" | "Equal") => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        Some("Exists") => true,
        Some(_) => false,
    }
}

/// NoSchedule and NoExecute taints the pod does not tolerate; the first one is the reason.
pub fn taint_toleration(pod: &PodInfo, _: &NodeInfo, node: &NodeSpec) -> Result<(), Reasons> {
    let untolerated = node.taints.iter().find(|taint| {
        (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
            && !pod.tolerations.iter().any(|t| tolerates(t, taint))
    });
    match untolerated {
        Some(taint) => fail(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or_default()
        )),
        None => Ok(()),
    }
}

/// `nodeSelector` and the required node affinity.
pub fn node_affinity(pod: &PodInfo, info: &NodeInfo, node: &NodeSpec) -> Result<(), Reasons> {
    if matches_node_affinity(pod, &info.name, node) {
        Ok(())
    } else {
        fail(REASON_AFFINITY)
    }
}

/// Whether the node `name` matches the pod's `nodeSelector` and required node affinity.
pub fn matches_node_affinity(pod: &PodInfo, name: &str, node: &NodeSpec) -> bool {
    let selector = pod
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    selector
        && pod.required.as_ref().is_none_or(|r| {
            r.node_selector_terms
                .iter()
                .any(|t| term_matches(t, name, node))
        })
}

/// Whether the node has a NoSchedule or NoExecute taint the pod does not tolerate.
pub fn has_untolerated_taint(pod: &PodInfo, node: &NodeSpec) -> bool {
    node.taints.iter().any(|taint| {
        (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
            && !pod.tolerations.iter().any(|t| tolerates(t, taint))
    })
}

/// A node selector term: all its expressions and fields hold (a term with neither matches nothing).
pub fn term_matches(term: &NodeSelectorTerm, name: &str, node: &NodeSpec) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name"
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_matches(r, Some(name))
        })
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|w| w == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|w| w == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(have), [want]) = (value.and_then(number), values) else {
                return false;
            };
            let Some(want) = number(want) else {
                return false;
            };
            if op == "Gt" { have > want } else { have < want }
        }
        _ => false,
    }
}

/// Host ports already taken on the node.
pub fn node_ports(pod: &PodInfo, info: &NodeInfo, _: &NodeSpec) -> Result<(), Reasons> {
    let taken = |want: &HostPort| info.ports.keys().any(|have| have.conflicts(want));
    if pod.usage.ports.iter().any(taken) {
        return fail(REASON_PORTS);
    }
    Ok(())
}

/// Requests against what is allocatable less what the node's pods request: every short resource is a
/// reason ("Too many pods", "Insufficient cpu", …).
pub fn resources_fit(pod: &PodInfo, info: &NodeInfo, node: &NodeSpec) -> Result<(), Reasons> {
    let mut reasons = Vec::new();
    if info.pods as i64 + 1 > node.allowed_pods {
        reasons.push(REASON_TOO_MANY_PODS.to_owned());
    }
    let want = &pod.usage.requests;
    let (have, used) = (&node.allocatable, &info.requested);
    let mut short = |name: &str, want: i64, have: i64, used: i64| {
        if want > 0 && want > have - used {
            reasons.push(format!("Insufficient {name}"));
        }
    };
    short("cpu", want.milli_cpu, have.milli_cpu, used.milli_cpu);
    short("memory", want.memory, have.memory, used.memory);
    short(
        "ephemeral-storage",
        want.ephemeral_storage,
        have.ephemeral_storage,
        used.ephemeral_storage,
    );
    for (name, amount) in &want.scalar {
        let get = |r: &Resources| r.scalar.get(name).copied().unwrap_or(0);
        short(name, *amount, get(have), get(used));
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// How scores are normalised to 0..=100 over the feasible nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    /// Already 0..=100.
    None,
    /// Scaled so the highest is 100 (upstream's `DefaultNormalizeScore`).
    Max,
    /// Scaled so the highest is 0 and none 100 (reversed: for counts of what is unwanted).
    ReverseMax,
}

pub type Score = fn(&PodInfo, &NodeInfo, &NodeSpec) -> i64;

/// The scores, their normalisation and weight, as upstream's default profile weighs them.
pub const SCORES: &[(&str, Score, Normalize, i64)] = &[
    (
        "TaintToleration",
        prefer_no_schedule,
        Normalize::ReverseMax,
        3,
    ),
    ("NodeAffinity", preferred_affinity, Normalize::Max, 2),
    ("NodeResourcesFit", least_allocated, Normalize::None, 1),
    (
        "NodeResourcesBalancedAllocation",
        balanced_allocation,
        Normalize::None,
        1,
    ),
];

pub const MAX_SCORE: i64 = 100;

/// How many PreferNoSchedule taints the pod does not tolerate.
pub fn prefer_no_schedule(pod: &PodInfo, _: &NodeInfo, node: &NodeSpec) -> i64 {
    let tolerations: Vec<&Toleration> = pod
        .tolerations
        .iter()
        .filter(|t| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
        })
        .collect();
    node.taints
        .iter()
        .filter(|taint| taint.effect == "PreferNoSchedule")
        .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
        .count() as i64
}

/// The sum of the weights of the preferred node affinity terms the node matches.
pub fn preferred_affinity(pod: &PodInfo, info: &NodeInfo, node: &NodeSpec) -> i64 {
    pod.preferred
        .iter()
        .filter(|p| p.weight != 0 && term_matches(&p.preference, &info.name, node))
        .map(|p| i64::from(p.weight))
        .sum()
}

/// What the node's pods and this one ask of cpu and memory (unset requests at the defaults), with what is
/// allocatable.
fn fractions(pod: &PodInfo, info: &NodeInfo, node: &NodeSpec) -> [(i64, i64); 2] {
    [
        (
            info.non_zero_requested.0 + pod.usage.non_zero.0,
            node.allocatable.milli_cpu,
        ),
        (
            info.non_zero_requested.1 + pod.usage.non_zero.1,
            node.allocatable.memory,
        ),
    ]
}

/// Upstream's LeastAllocated: the share of cpu and memory left, equally weighted.
pub fn least_allocated(pod: &PodInfo, info: &NodeInfo, node: &NodeSpec) -> i64 {
    let scores = fractions(pod, info, node).map(|(requested, allocatable)| {
        if allocatable == 0 || requested > allocatable {
            0
        } else {
            (allocatable - requested) * MAX_SCORE / allocatable
        }
    });
    (scores[0] + scores[1]) / 2
}

/// Upstream's BalancedAllocation: nodes whose cpu and memory would be used alike score higher.
pub fn balanced_allocation(pod: &PodInfo, info: &NodeInfo, node: &NodeSpec) -> i64 {
    let [cpu, memory] = fractions(pod, info, node).map(|(requested, allocatable)| {
        if allocatable == 0 {
            1.0
        } else {
            (requested as f64 / allocatable as f64).min(1.0)
        }
    });
    let deviation = (cpu - memory).abs() / 2.0;
    ((1.0 - deviation) * MAX_SCORE as f64) as i64
}

/// Why no node could take a pod: upstream's `FitError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub nodes: usize,
    /// How many nodes gave each reason.
    pub reasons: HashMap<String, usize>,
    /// The nodes (indexes into [`Cache::nodes`]) that failed a filter preemption could help with.
    pub resolvable: Vec<usize>,
    /// What preemption said ("preemption: …"), when it found nothing.
    pub post_filter: Option<String>,
    /// Why a PreFilter rejected the pod before any node was tried (it replaces the counts; boxed to
    /// keep the error small).
    pub pre_filter: Option<Box<str>>,
}

/// "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) …." with the counts sorted as strings, as
/// upstream's `sort.Strings` does.
pub fn histogram(nodes: usize, reasons: &HashMap<String, usize>) -> String {
    let mut counted: Vec<String> = reasons
        .iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    counted.sort();
    let mut message = format!("0/{nodes} nodes are available:");
    if !counted.is_empty() {
        message.push_str(&format!(" {}.", counted.join(", ")));
    }
    message
}

impl FitError {
    /// The message of the FailedScheduling event and the PodScheduled condition.
    pub fn message(&self) -> String {
        if self.nodes == 0 {
            return "no nodes available to schedule pods".into();
        }
        let mut message = match &self.pre_filter {
            Some(pre_filter) => format!("0/{} nodes are available: {pre_filter}.", self.nodes),
            None => histogram(self.nodes, &self.reasons),
        };
        if let Some(post_filter) = &self.post_filter {
            message.push_str(&format!(" {post_filter}."));
        }
        message
    }
}

/// What the stateful plugins work out once per scheduling cycle (upstream's PreFilter state): `None` for
/// a plugin with nothing to check for this pod.
#[derive(Debug, Clone, Default)]
pub struct CycleState {
    pub spread: Option<spread::FilterState>,
    pub affinity: Option<affinity::FilterState>,
    /// VolumeRestrictions and VolumeBinding, for a pod with claims.
    pub volumes: Option<volumes::FilterState>,
    /// Why a PreFilter rejected the pod (on every node, and preemption cannot help).
    pub rejected: Option<String>,
}

impl CycleState {
    pub fn new(pod: &PodInfo, cache: &Cache) -> CycleState {
        let (volumes, rejected) = match volumes::FilterState::new(pod, cache) {
            Ok(volumes) => (volumes, None),
            Err(message) => (None, Some(message)),
        };
        CycleState {
            spread: spread::FilterState::new(pod, cache),
            affinity: affinity::FilterState::new(pod, cache),
            volumes,
            rejected,
        }
    }

    /// PodTopologySpread, then InterPodAffinity (upstream's order, after the other filters).
    pub fn filter(&self, pod: &PodInfo, node: &NodeSpec) -> Result<(), Failure> {
        if let Some(spread) = &self.spread {
            spread.filter(pod, node)?;
        }
        if let Some(affinity) = &self.affinity {
            affinity.filter(node)?;
        }
        Ok(())
    }

    /// Counts `other`, on the node `info`, in or out (`sign` 1 or -1): preemption's simulation.
    pub fn update_with_pod(
        &mut self,
        pod: &PodInfo,
        other: &CachedPod,
        info: &NodeInfo,
        node: &NodeSpec,
        sign: i64,
    ) {
        if let Some(spread) = &mut self.spread {
            spread.update_with_pod(pod, other, info, node, sign);
        }
        if let Some(affinity) = &mut self.affinity {
            affinity.update_with_pod(pod, other, &node.labels, sign);
        }
        if let Some(volumes) = &mut self.volumes {
            volumes.update_with_pod(other, sign);
        }
    }
}

/// Every filter in upstream's order; the first that fails answers. Pods nominated to the node with at
/// least the pod's priority count as placed there (the room preemption made is theirs).
pub fn run_filters(
    pod: &PodInfo,
    info: &NodeInfo,
    node: &NodeSpec,
    state: &CycleState,
    cache: &Cache,
) -> Result<(), Failure> {
    let nominated = cache.nominated_on(&info.name, pod.priority, &pod.uid);
    let with_nominated;
    let info = if nominated.is_empty() {
        info
    } else {
        let mut more = info.clone();
        for n in nominated {
            more.add(&n.usage);
        }
        with_nominated = more;
        &with_nominated
    };
    for (_, filter, resolvable) in FILTERS {
        if let Err(reasons) = filter(pod, info, node) {
            return Err(Failure {
                reasons,
                resolvable: *resolvable,
            });
        }
    }
    if let Some(volumes) = &state.volumes {
        volumes.filter(&info.name, node)?;
    }
    state.filter(pod, node)
}

/// Weight of the PodTopologySpread and InterPodAffinity scores (upstream's default profile).
pub const SPREAD_WEIGHT: i64 = 2;
pub const INTER_POD_AFFINITY_WEIGHT: i64 = 2;

/// A pod to evict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Victim {
    pub uid: String,
    pub namespace: String,
    pub name: String,
}

/// What to do with a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Bind(String),
    /// No node can take the pod now; evicting `victims` from `node` makes room there. `message` says
    /// why no node could take it.
    Preempt {
        node: String,
        victims: Vec<Victim>,
        message: String,
    },
    /// No node can take the pod, and preemption cannot help: why, and whether a nomination it had goes.
    Unschedulable {
        message: String,
        clear_nomination: bool,
    },
}

/// How many feasible nodes to look for before scoring (upstream's `numFeasibleNodesToFind` with the
/// adaptive percentage): all of up to 100 nodes, then a share falling from 50 % to 5 %, at least 100.
pub fn nodes_to_find(nodes: usize) -> usize {
    if nodes < 100 {
        return nodes;
    }
    let percentage = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percentage / 100).max(100)
}

/// Filters and scores over the cache; keeps where the next search starts (so pods spread over the nodes
/// when only a share is searched) and a random state for ties.
#[derive(Debug)]
pub struct Algorithm {
    next_start: usize,
    random: u64,
}

impl Default for Algorithm {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        Algorithm {
            next_start: 0,
            random: seed | 1,
        }
    }
}

impl Algorithm {
    fn next_random(&mut self) -> u64 {
        // xorshift64
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        x
    }

    /// Where `pod` goes, which pods to preempt for it, or why neither.
    pub fn decide(&mut self, pod: &PodInfo, cache: &Cache) -> Decision {
        let mut state = CycleState::new(pod, cache);
        let mut fit = match self.schedule(pod, cache, &state) {
            Ok(node) => return Decision::Bind(node),
            Err(fit) => fit,
        };
        if fit.nodes == 0 {
            return Decision::Unschedulable {
                message: fit.message(),
                clear_nomination: false,
            };
        }
        let seed = self.next_random();
        match preemption::preempt(pod, cache, &mut state, &fit, seed) {
            Ok(candidate) => Decision::Preempt {
                node: candidate.node,
                victims: candidate.victims,
                message: fit.message(),
            },
            Err(failed) => {
                fit.post_filter = Some(failed.message);
                Decision::Unschedulable {
                    message: fit.message(),
                    clear_nomination: failed.clear_nomination,
                }
            }
        }
    }

    /// The node for `pod`, or why there is none (before preemption).
    pub fn schedule(
        &mut self,
        pod: &PodInfo,
        cache: &Cache,
        state: &CycleState,
    ) -> Result<String, FitError> {
        let nodes = cache.nodes();
        let total = cache.node_count();
        let mut error = FitError {
            nodes: total,
            reasons: HashMap::new(),
            resolvable: Vec::new(),
            post_filter: None,
            pre_filter: None,
        };
        if total == 0 {
            return Err(error);
        }
        if let Some(rejected) = &state.rejected {
            error.pre_filter = Some(rejected.as_str().into());
            return Err(error);
        }
        // The node preemption made room on, first (upstream's evaluateNominatedNode).
        let nominated = cache
            .nomination(&pod.uid)
            .map(|n| n.node.as_str())
            .or(pod.nominated_node.as_deref());
        if let Some(name) = nominated
            && let Some(info) = cache.node(name)
            && let Some(spec) = &info.spec
            && run_filters(pod, info, spec, state, cache).is_ok()
        {
            return Ok(name.to_owned());
        }
        let wanted = nodes_to_find(total);
        let mut feasible: Vec<(&NodeInfo, &NodeSpec)> = Vec::new();
        let start = self.next_start % nodes.len();
        let mut visited = 0;
        for i in 0..nodes.len() {
            if feasible.len() >= wanted {
                break;
            }
            visited += 1;
            let index = (start + i) % nodes.len();
            let info = &nodes[index];
            let Some(spec) = &info.spec else { continue };
            match run_filters(pod, info, spec, state, cache) {
                Ok(()) => feasible.push((info, spec)),
                Err(failure) => {
                    for reason in failure.reasons {
                        *error.reasons.entry(reason).or_default() += 1;
                    }
                    if failure.resolvable {
                        error.resolvable.push(index);
                    }
                }
            }
        }
        self.next_start = (start + visited) % nodes.len();
        match feasible.len() {
            0 => return Err(error),
            1 => return Ok(feasible[0].0.name.clone()),
            _ => {}
        }
        let mut totals = vec![0i64; feasible.len()];
        for (_, score, normalize, weight) in SCORES {
            let mut scores: Vec<i64> = feasible
                .iter()
                .map(|(info, spec)| score(pod, info, spec))
                .collect();
            let max = scores.iter().copied().max().unwrap_or(0);
            for s in &mut scores {
                *s = match normalize {
                    Normalize::None => *s,
                    Normalize::Max if max == 0 => 0,
                    Normalize::Max => *s * MAX_SCORE / max,
                    Normalize::ReverseMax if max == 0 => MAX_SCORE,
                    Normalize::ReverseMax => MAX_SCORE - *s * MAX_SCORE / max,
                };
            }
            for (total, s) in totals.iter_mut().zip(scores) {
                *total += s * weight;
            }
        }
        let specs: Vec<&NodeSpec> = feasible.iter().map(|(_, spec)| *spec).collect();
        let stateful = [
            (spread::score(pod, cache, &feasible), SPREAD_WEIGHT),
            (
                affinity::score(pod, cache, &specs),
                INTER_POD_AFFINITY_WEIGHT,
            ),
        ];
        for (scores, weight) in stateful {
            for (total, s) in totals.iter_mut().zip(scores.into_iter().flatten()) {
                *total += s * weight;
            }
        }
        // The best; ties by reservoir sampling, as upstream's selectHost.
        let mut best = 0;
        let mut ties = 1u64;
        for i in 1..totals.len() {
            if totals[i] > totals[best] {
                best = i;
                ties = 1;
            } else if totals[i] == totals[best] {
                ties += 1;
                if self.next_random().is_multiple_of(ties) {
                    best = i;
                }
            }
        }
        Ok(feasible[best].0.name.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use gantry_client::k8s_openapi::api::core::v1::Node;
    use serde_json::{Value, json};

    use super::*;

    fn pod(spec: Value) -> PodInfo {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c"}]);
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": spec,
        }))
        .unwrap();
        PodInfo::new(Arc::new(pod))
    }

    fn requesting(cpu: &str, memory: &str) -> Value {
        json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]})
    }

    fn node(name: &str, labels: Value, spec: Value, cpu: &str) -> (String, NodeSpec) {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "3", "example.com/gpu": "1"}},
        }))
        .unwrap();
        (name.to_owned(), NodeSpec::of(&node))
    }

    fn cache(nodes: Vec<(String, NodeSpec)>) -> Cache {
        let mut cache = Cache::default();
        for (name, spec) in nodes {
            cache.set_node(&name, spec);
        }
        cache
    }

    fn check(pod: &PodInfo, cache: &Cache) -> Result<String, String> {
        match Algorithm::default().decide(pod, cache) {
            Decision::Bind(node) => Ok(node),
            Decision::Unschedulable { message, .. } => Err(message),
            Decision::Preempt { node, .. } => Err(format!("preemption on {node}")),
        }
    }

    /// `p` as placed on `node` under the uid (and name) `uid`.
    fn at(p: &PodInfo, uid: &str, node: &str) -> CachedPod {
        let mut placed = p.placed(node);
        placed.uid = uid.into();
        placed.name = uid.into();
        placed
    }

    #[test]
    fn failures_are_counted_per_reason_in_upstreams_words_and_order() {
        let cache = cache(vec![
            node("small-1", json!({}), json!({}), "1"),
            node("small-2", json!({}), json!({}), "1"),
            node(
                "tainted",
                json!({}),
                json!({"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]}),
                "8",
            ),
        ]);
        let big = pod(requesting("2", "1Gi"));
        assert_eq!(
            check(&big, &cache).unwrap_err(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: x}, 2 Insufficient cpu. \
             preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
             2 No preemption victims found for incoming pod.."
        );
        let tolerating = pod(json!({
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}],
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        }));
        assert_eq!(check(&tolerating, &cache).unwrap(), "tainted");
        let selective =
            pod(json!({"nodeSelector": {"disktype": "ssd"}, "preemptionPolicy": "Never"}));
        assert_eq!(
            check(&selective, &cache).unwrap_err(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: x}, \
             2 node(s) didn't match Pod's node affinity/selector. \
             preemption: not eligible due to preemptionPolicy=Never.."
        );
        assert_eq!(
            check(&selective, &Cache::default()).unwrap_err(),
            "no nodes available to schedule pods"
        );
        // Several resources short on one node: each one counted.
        let one = super::tests::cache(vec![node("n", json!({}), json!({}), "1")]);
        let huge = pod(
            json!({"containers": [{"name": "c", "resources": {"requests":
            {"cpu": "2", "memory": "8Gi", "example.com/gpu": "2"}}}]}),
        );
        let message = check(&huge, &one).unwrap_err();
        assert!(
            message.starts_with(
                "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient example.com/gpu, \
                 1 Insufficient memory."
            ),
            "{message}"
        );
    }

    #[test]
    fn not_ready_and_unschedulable_nodes_take_only_pods_that_tolerate_them() {
        let mut not_ready = node("down", json!({}), json!({}), "1");
        not_ready.1.taints.push(Taint {
            key: crate::cache::NOT_READY_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        });
        let cordoned = node("cordoned", json!({}), json!({"unschedulable": true}), "1");
        let cache = cache(vec![not_ready, cordoned]);
        assert_eq!(
            check(&pod(json!({})), &cache).unwrap_err(),
            "0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
             1 node(s) were unschedulable. preemption: 0/2 nodes are available: \
             2 Preemption is not helpful for scheduling.."
        );
        let tolerant =
            pod(json!({"tolerations": [{"key": UNSCHEDULABLE_TAINT, "operator": "Exists"}]}));
        assert_eq!(check(&tolerant, &cache).unwrap(), "cordoned");
    }

    #[test]
    fn node_affinity_operators_and_fields() {
        let (_, spec) = node("n1", json!({"zone": "a", "cores": "8"}), json!({}), "1");
        let term = |expressions: Value, fields: Value| -> NodeSelectorTerm {
            serde_json::from_value(json!({"matchExpressions": expressions, "matchFields": fields}))
                .unwrap()
        };
        let expr = |key: &str, op: &str, values: Value| json!([{"key": key, "operator": op, "values": values}]);
        let yes = |e: Value| term_matches(&term(e, json!([])), "n1", &spec);
        assert!(yes(expr("zone", "In", json!(["a", "b"]))));
        assert!(!yes(expr("zone", "NotIn", json!(["a"]))));
        assert!(yes(expr("other", "NotIn", json!(["a"]))));
        assert!(yes(expr("zone", "Exists", json!(null))));
        assert!(yes(expr("other", "DoesNotExist", json!(null))));
        assert!(yes(expr("cores", "Gt", json!(["4"]))));
        assert!(!yes(expr("cores", "Lt", json!(["4"]))));
        assert!(!yes(expr("zone", "Gt", json!(["4"]))));
        assert!(!term_matches(&term(json!([]), json!([])), "n1", &spec));
        let field = |op: &str| term(json!([]), expr("metadata.name", op, json!(["n1"])));
        assert!(term_matches(&field("In"), "n1", &spec));
        assert!(!term_matches(&field("NotIn"), "n1", &spec));
        assert!(!term_matches(&field("In"), "n2", &spec));

        let cache = cache(vec![
            node("n1", json!({"zone": "a"}), json!({}), "4"),
            node("n2", json!({"zone": "b"}), json!({}), "4"),
        ]);
        let required = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]},
                                   {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}}),
        );
        assert_eq!(check(&required, &cache).unwrap(), "n2");
        let preferred = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
            [{"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}}]}}}),
        );
        for _ in 0..20 {
            assert_eq!(check(&preferred, &cache).unwrap(), "n2");
        }
    }

    #[test]
    fn scores_prefer_free_untainted_nodes_and_ports_pods_and_counts_fill_up() {
        let mut cache = cache(vec![
            node("busy", json!({}), json!({}), "4"),
            node("free", json!({}), json!({}), "4"),
            node(
                "soft",
                json!({}),
                json!({"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}),
                "4",
            ),
        ]);
        let p = pod(requesting("500m", "256Mi"));
        cache.add_pod(at(&p, "x", "busy"));
        cache.add_pod(at(&p, "y", "busy"));
        for _ in 0..20 {
            assert_eq!(check(&p, &cache).unwrap(), "free");
        }
        // Pod count: busy holds 2 of 3; a third fits, a fourth does not.
        cache.add_pod(at(&p, "z", "busy"));
        let only_busy = pod(json!({"nodeSelector": {}, "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["busy"]}]}]}}}}));
        assert!(
            check(&only_busy, &cache)
                .unwrap_err()
                .contains("1 Too many pods, 2 node(s) didn't match Pod's node affinity/selector.")
        );
        // Host ports.
        let web = pod(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
        );
        cache.add_pod(at(&web, "w1", "free"));
        cache.add_pod(at(&web, "w2", "soft"));
        let message = check(&web, &cache).unwrap_err();
        assert!(
            message.starts_with(
                "0/3 nodes are available: 1 Too many pods, 2 node(s) didn't have free ports for the requested pod ports."
            ),
            "{message}"
        );
        let udp = pod(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]}]}),
        );
        assert!(check(&udp, &cache).is_ok());
    }

    #[test]
    fn tolerations_match_as_upstream() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoExecute".into(),
            ..Taint::default()
        };
        let t = |v: Value| -> Toleration { serde_json::from_value(v).unwrap() };
        assert!(tolerates(&t(json!({"key": "k", "value": "v"})), &taint));
        assert!(tolerates(&t(json!({"operator": "Exists"})), &taint));
        assert!(!tolerates(&t(json!({"key": "k", "value": "w"})), &taint));
        assert!(!tolerates(
            &t(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})),
            &taint
        ));
        assert!(tolerates(
            &t(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})),
            &taint
        ));
    }

    #[test]
    fn a_share_of_many_nodes_is_searched() {
        assert_eq!(nodes_to_find(50), 50);
        assert_eq!(nodes_to_find(100), 100);
        assert_eq!(nodes_to_find(1000), 420);
        assert_eq!(nodes_to_find(5000), 500);
        assert_eq!(nodes_to_find(100_000), 5000);
    }
}

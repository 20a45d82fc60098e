//! The DaemonSet controller, with upstream's semantics: one pod of each DaemonSet on every node that should
//! run it (the template's `nodeName`, `nodeSelector` and required node affinity, and the node's NoSchedule and
//! NoExecute taints against the template's tolerations plus the ones every daemon pod gets:
//! [`daemon_tolerations`]). Pods are placed by the scheduler: each is made with the required node affinity
//! `matchFields metadata.name In [node]` (upstream's way), never with a `nodeName`. Nodes added, removed or
//! changed make pods come or go; failed daemon pods are deleted (with a back-off per node) and made again;
//! a changed template rolls out by `RollingUpdate` (`maxUnavailable`, or `maxSurge`: the new pod first) or
//! waits for pods to be deleted (`OnDelete`). Template revisions are ControllerRevisions (`kubectl rollout
//! history|undo ds/x`; pods carry the `controller-revision-hash` and `pod-template-generation` labels), pruned
//! down to `revisionHistoryLimit`; the status is written through the status subresource when it changes.
//!
//! The task is built as the ReplicaSet controller's (with [`crate::cache`], [`crate::claims`] and
//! [`crate::sync`], shared with the StatefulSet controller): watches of DaemonSets, nodes, pods and
//! ControllerRevisions (pods and revisions indexed by their controller's uid), a work queue of
//! `namespace/name` keys, expectations, writes in tasks of their own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use gantry_client::k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use gantry_client::k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use gantry_client::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use gantry_client::k8s_openapi::jiff::Timestamp;
use gantry_client::kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::{
    api_message, controller_ref, count, involved, is_not_found, key, matches, namespace_of,
    nonempty_selector,
};
use crate::cache::{Owned, Relist, Sets, watch_all};
use crate::history;
use crate::pods;
use crate::sync::{Core, Done, Prepare};
use gantry_client::events::{Event, Recorder};
use gantry_scheduler::plugins::tolerates;

/// The controller's name: the events' source.
pub const COMPONENT: &str = "daemonset-controller";
/// The most pods one sync creates (upstream's `BurstReplicas`).
pub const BURST_REPLICAS: usize = 250;
/// DaemonSets being written for at once.
pub const SYNCS_IN_FLIGHT: usize = 16;
/// The label of a daemon pod's template generation.
pub const GENERATION_LABEL: &str = "pod-template-generation";
/// The annotation upstream's API server keeps the template generation in (`spec.templateGeneration` of
/// extensions/v1beta1).
pub const GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// The first and the longest back-off before a failed daemon pod is deleted again on the same node.
const FAILED_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(900));

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut set_events = watch_all::<DaemonSet>(&client);
    let mut node_events = watch_all::<Node>(&client);
    let mut pod_events = watch_all::<Pod>(&client);
    let mut revision_events = watch_all::<ControllerRevision>(&client);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut controller = Controller::new(client, done_tx);
    loop {
        let can_sync = controller.can_sync();
        let wakeup = controller
            .core
            .queue
            .next_wakeup()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => controller.done(done),
            Some(event) = set_events.next() => match event {
                Ok(event) => controller.set_event(event),
                Err(e) => tracing::warn!("daemonset controller: watching daemonsets: {e}"),
            },
            Some(event) = node_events.next() => match event {
                Ok(event) => controller.node_event(event),
                Err(e) => tracing::warn!("daemonset controller: watching nodes: {e}"),
            },
            Some(event) = pod_events.next() => match event {
                Ok(event) => controller.pod_event(event),
                Err(e) => tracing::warn!("daemonset controller: watching pods: {e}"),
            },
            Some(event) = revision_events.next() => match event {
                Ok(event) => controller.revision_event(event),
                Err(e) => tracing::warn!("daemonset controller: watching controllerrevisions: {e}"),
            },
            () = tokio::time::sleep_until(wakeup) => controller.core.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_sync => controller.sync_next(Instant::now()),
        }
    }
}

// ---- Which nodes run a daemon pod --------------------------------------------------------------------------

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    }
}

/// Adds the tolerations every daemon pod has (upstream's `AddOrUpdateDaemonPodTolerations`): it stays on
/// nodes that are not ready or unreachable, and goes to nodes under disk, memory or pid pressure and to
/// cordoned ones; a hostNetwork pod also to nodes whose network is unavailable.
pub fn daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(toleration(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for want in wanted {
        // The same key, operator, value and effect: replaced by ours (upstream's `MatchToleration`).
        let same = |t: &Toleration| {
            t.key == want.key
                && t.operator.as_deref().unwrap_or("Equal") == "Exists"
                && t.value.as_deref().unwrap_or_default().is_empty()
                && t.effect == want.effect
        };
        match tolerations.iter_mut().find(|t| same(t)) {
            Some(existing) => *existing = want,
            None => tolerations.push(want),
        }
    }
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

/// A node selector term: all its expressions (on labels) and fields (`metadata.name`) hold; an empty term
/// matches nothing.
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name"
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_matches(r, node.metadata.name.as_deref())
        })
}

/// The pod's `nodeSelector` and required node affinity match the node.
pub fn fits_node_affinity(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.as_ref();
    let selector = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node)));
    selector && required
}

/// Whether a DaemonSet with this pod spec should run a pod on `node`, and whether a pod already there may
/// keep running (upstream's `NodeShouldRunDaemonPod`): a node whose untolerated taints are all NoSchedule
/// gets no new pod but keeps the one it has.
pub fn should_run(template: &PodSpec, node: &Node) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if template
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return (false, false);
    }
    let mut spec = template.clone();
    daemon_tolerations(&mut spec);
    if !fits_node_affinity(&spec, node) {
        return (false, false);
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let untolerated = |effects: &[&str]| {
        node.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .any(|taint| {
                effects.contains(&taint.effect.as_str())
                    && !tolerations.iter().any(|t| tolerates(t, taint))
            })
    };
    if untolerated(&["NoSchedule", "NoExecute"]) {
        return (false, !untolerated(&["NoExecute"]));
    }
    (true, true)
}

/// The node a daemon pod is for: its `nodeName`, else the one its required node affinity names (upstream's
/// `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name.to_owned());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|term| {
        term.match_fields.iter().flatten().find_map(|r| {
            match (r.key.as_str(), r.operator.as_str(), r.values.as_deref()) {
                ("metadata.name", "In", Some([name])) => Some(name.clone()),
                _ => None,
            }
        })
    })
}

/// The affinity of a pod for `node` only: the required node affinity becomes `matchFields metadata.name In
/// [node]` (upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`); preferences stay.
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let required = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_owned()]),
            }]),
            match_expressions: None,
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(required);
    affinity
}

// ---- What to do on each node --------------------------------------------------------------------------------

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Oldest first; of the same age, the one further along (upstream's `podByCreationTimestampAndPhase`).
fn oldest_first(pods: &mut [&Pod]) {
    let rank = |p: &Pod| match pods::phase(p) {
        "Running" => 0,
        "Pending" => 1,
        _ => 2,
    };
    pods.sort_by(|a, b| {
        created(a)
            .cmp(&created(b))
            .then_with(|| rank(a).cmp(&rank(b)))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// Whether the pod runs the DaemonSet's current template (upstream's `IsPodUpdated`).
pub fn is_updated(pod: &Pod, hash: &str, generation: Option<&str>) -> bool {
    let labels = pod.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    (!hash.is_empty() && label(history::HASH_LABEL) == Some(hash))
        || (generation.is_some() && label(GENERATION_LABEL) == generation)
}

/// How one DaemonSet stands on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub should_run: bool,
    pub should_continue: bool,
}

/// What the manage step does (upstream's `manage` and `podsShouldBeOnNode`).
#[derive(Debug, Default, PartialEq)]
pub struct Manage {
    /// Nodes that need a pod.
    pub create: Vec<String>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    /// Failed pods deleted now, with their node.
    pub failed: Vec<(String, String)>,
    /// Nodes whose failed pod waits for its back-off.
    pub backing_off: Vec<String>,
}

/// `fits`: each known node's fit; `on_nodes`: the DaemonSet's pods by target node (a node not in `fits` is
/// gone); `surge`: the rolling update may run two pods on a node.
pub fn manage(
    fits: &BTreeMap<String, Fit>,
    on_nodes: &BTreeMap<String, Vec<&Pod>>,
    surge: bool,
    hash: &str,
    min_ready: Duration,
    now: Timestamp,
    in_backoff: impl Fn(&str) -> bool,
) -> Manage {
    let mut out = Manage::default();
    for (node, fit) in fits {
        let pods = on_nodes.get(node).map(Vec::as_slice).unwrap_or_default();
        if fit.should_run && pods.is_empty() {
            out.create.push(node.clone());
        } else if fit.should_continue {
            let mut running = Vec::new();
            for pod in pods {
                if pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                match pods::phase(pod) {
                    "Failed" if in_backoff(node) => out.backing_off.push(node.clone()),
                    "Failed" => {
                        out.failed.push((name(pod), node.clone()));
                        out.delete.push(name(pod));
                    }
                    "Succeeded" => out.delete.push(name(pod)),
                    _ => running.push(*pod),
                }
            }
            if running.len() <= 1 {
                continue;
            }
            oldest_first(&mut running);
            if !surge {
                // One pod a node: the oldest stays.
                out.delete.extend(running[1..].iter().map(|p| name(p)));
                continue;
            }
            // Surging: the oldest new pod and the oldest old one may both stay while the new one is not
            // available and the old one ready.
            let (mut new, mut old) = (None, None);
            for pod in running {
                let slot = if pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(history::HASH_LABEL))
                    == Some(&hash.to_owned())
                {
                    &mut new
                } else {
                    &mut old
                };
                if slot.is_none() {
                    *slot = Some(pod);
                } else {
                    out.delete.push(name(pod));
                }
            }
            if let (Some(new), Some(old)) = (new, old)
                && (!pods::is_ready(old) || pods::is_available(new, min_ready, now))
            {
                out.delete.push(name(old));
            }
        } else {
            out.delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| name(p)),
            );
        }
    }
    // Pods for nodes that are gone.
    for (node, pods) in on_nodes {
        if !fits.contains_key(node) {
            out.delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| name(p)),
            );
        }
    }
    out
}

/// The new and the old pod on a node, or `None` when there are more than one of either (the manage step
/// cleans that up first).
fn updated_and_old<'a>(
    pods: &[&'a Pod],
    hash: &str,
    generation: Option<&str>,
) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_updated(pod, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(*pod);
    }
    Some((new, old))
}

/// A percentage of `total` (rounded up) or a number.
fn scaled(value: Option<&IntOrString>, total: usize) -> usize {
    match value {
        None => 0,
        Some(IntOrString::Int(n)) => usize::try_from(*n).unwrap_or(0),
        Some(IntOrString::String(s)) => {
            let percent = s
                .strip_suffix('%')
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(0);
            (percent * total).div_ceil(100)
        }
    }
}

/// What the rolling update does: pods to delete, nodes to surge onto (upstream's `rollingUpdate`).
#[derive(Debug, Default, PartialEq)]
pub struct Rollout {
    pub delete: Vec<String>,
    pub create: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
pub fn rolling_update(
    fits: &BTreeMap<String, Fit>,
    on_nodes: &BTreeMap<String, Vec<&Pod>>,
    max_surge: usize,
    max_unavailable: usize,
    hash: &str,
    generation: Option<&str>,
    min_ready: Duration,
    now: Timestamp,
) -> Rollout {
    let mut nodes: BTreeMap<&str, Vec<&Pod>> = on_nodes
        .iter()
        .map(|(n, p)| (n.as_str(), p.clone()))
        .collect();
    for (node, fit) in fits {
        if fit.should_run {
            nodes.entry(node.as_str()).or_default();
        }
    }
    let available = |p: &Pod| pods::is_available(p, min_ready, now);
    let should_run = |n: &str| fits.get(n).is_some_and(|f| f.should_run);
    let mut out = Rollout::default();
    if max_surge == 0 {
        // Delete old pods while fewer than maxUnavailable are unavailable; the manage step makes new ones.
        let mut unavailable = 0;
        let mut candidates = Vec::new();
        for pods in nodes.values() {
            match updated_and_old(pods, hash, generation) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(old) {
                        out.delete.push(name(old));
                        unavailable += 1;
                    } else if unavailable < max_unavailable {
                        candidates.push(name(old));
                    }
                }
            }
        }
        let room = max_unavailable
            .saturating_sub(unavailable)
            .min(candidates.len());
        out.delete.extend(candidates.into_iter().take(room));
        return out;
    }
    // Surge: a new pod beside each old one (up to maxSurge at a time), the old one goes once it is available.
    let mut surging = 0;
    let mut candidates = Vec::new();
    for (node, pods) in &nodes {
        let Some((new, old)) = updated_and_old(pods, hash, generation) else {
            surging += 1;
            continue;
        };
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) if !available(old) => {
                if should_run(node) {
                    out.create.push((*node).to_owned());
                } else {
                    out.delete.push(name(old));
                }
            }
            (None, Some(old)) => {
                if !should_run(node) {
                    out.delete.push(name(old));
                } else if surging < max_surge {
                    candidates.push((*node).to_owned());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    out.delete.push(name(old));
                } else {
                    surging += 1;
                }
            }
        }
    }
    let room = max_surge.saturating_sub(surging).min(candidates.len());
    out.create.extend(candidates.into_iter().take(room));
    out
}

/// A DaemonSet's status as its nodes and pods make it (upstream's `updateDaemonSetStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub desired: i32,
    pub current: i32,
    pub misscheduled: i32,
    pub ready: i32,
    pub available: i32,
    pub updated: i32,
    pub observed_generation: Option<i64>,
}

pub fn status(
    fits: &BTreeMap<String, Fit>,
    on_nodes: &BTreeMap<String, Vec<&Pod>>,
    hash: &str,
    generation: Option<&str>,
    min_ready: Duration,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> Status {
    let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
    let (mut ready, mut available, mut updated) = (0, 0, 0);
    for (node, fit) in fits {
        let mut pods = on_nodes.get(node).cloned().unwrap_or_default();
        if fit.should_run {
            desired += 1;
            if pods.is_empty() {
                continue;
            }
            current += 1;
            oldest_first(&mut pods);
            let pod = pods[0];
            if pods::is_ready(pod) {
                ready += 1;
                if pods::is_available(pod, min_ready, now) {
                    available += 1;
                }
            }
            if is_updated(pod, hash, generation) {
                updated += 1;
            }
        } else if !pods.is_empty() {
            misscheduled += 1;
        }
    }
    Status {
        desired: count(desired),
        current: count(current),
        misscheduled: count(misscheduled),
        ready: count(ready),
        available: count(available),
        updated: count(updated),
        observed_generation,
    }
}

fn status_is_current(set: &DaemonSet, status: &Status) -> bool {
    let Some(have) = &set.status else {
        return false;
    };
    have.desired_number_scheduled == status.desired
        && have.current_number_scheduled == status.current
        && have.number_misscheduled == status.misscheduled
        && have.number_ready == status.ready
        && have.number_available.unwrap_or(0) == status.available
        && have.number_unavailable.unwrap_or(0) == status.desired - status.available
        && have.updated_number_scheduled.unwrap_or(0) == status.updated
        && have.observed_generation == status.observed_generation
}

fn status_patch(status: &Status) -> Value {
    let optional = |n: i32| if n == 0 { Value::Null } else { json!(n) };
    json!({"status": {
        "desiredNumberScheduled": status.desired,
        "currentNumberScheduled": status.current,
        "numberMisscheduled": status.misscheduled,
        "numberReady": status.ready,
        "numberAvailable": optional(status.available),
        "numberUnavailable": optional(status.desired - status.available),
        "updatedNumberScheduled": optional(status.updated),
        "observedGeneration": status.observed_generation,
    }})
}

/// The daemon pod for `node` (upstream's `CreatePodTemplate` and the node affinity of `syncNodes`).
pub fn new_pod(set: &DaemonSet, node: &str, hash: &str, generation: &str) -> Option<Pod> {
    let template = &set.spec.as_ref()?.template;
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(GENERATION_LABEL.into(), generation.into());
    if !hash.is_empty() {
        labels.insert(history::HASH_LABEL.into(), hash.into());
    }
    let mut spec = template.spec.clone().unwrap_or_default();
    daemon_tolerations(&mut spec);
    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    Some(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                set.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(set)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

// ---- The controller --------------------------------------------------------------------------------------

/// What one sync writes.
#[derive(Debug)]
enum Step {
    Prepare(Prepare),
    Sync {
        create: Vec<Pod>,
        delete: Vec<Arc<Pod>>,
        /// Failed pods being deleted: (pod, node), for the events.
        failed: Vec<(String, String)>,
        prune: Vec<String>,
        status: Option<Value>,
    },
}

#[derive(Debug)]
struct Work {
    key: String,
    set: Arc<DaemonSet>,
    step: Step,
}

/// The back-off of failed pods on a node: when the last was deleted, and how long until the next may be.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    last: Instant,
    delay: Duration,
}

struct Controller {
    client: Client,
    events: Recorder,
    sets: Sets<DaemonSet>,
    nodes: BTreeMap<String, Arc<Node>>,
    nodes_relist: Relist,
    pods: Owned<Pod>,
    revisions: Owned<ControllerRevision>,
    core: Core,
    /// By `namespace/name/node`.
    failed_backoff: HashMap<String, Backoff>,
    done_tx: mpsc::UnboundedSender<Done>,
}

/// What of a node decides where daemon pods run.
fn node_shape(node: &Node) -> (Option<&BTreeMap<String, String>>, Value) {
    let spec = node.spec.as_ref();
    (
        node.metadata.labels.as_ref(),
        json!([
            spec.and_then(|s| s.taints.as_ref()),
            spec.and_then(|s| s.unschedulable)
        ]),
    )
}

impl Controller {
    fn new(client: Client, done_tx: mpsc::UnboundedSender<Done>) -> Controller {
        Controller {
            events: Recorder::start(client.clone(), COMPONENT),
            client,
            sets: Sets::default(),
            nodes: BTreeMap::new(),
            nodes_relist: Relist::default(),
            pods: Owned::new("DaemonSet"),
            revisions: Owned::new("DaemonSet"),
            core: Core::default(),
            failed_backoff: HashMap::new(),
            done_tx,
        }
    }

    fn can_sync(&self) -> bool {
        self.sets.relist.synced
            && self.nodes_relist.synced
            && self.pods.relist.synced
            && self.revisions.relist.synced
            && !self.core.queue.is_empty()
            && self.core.queue.active() < SYNCS_IN_FLIGHT
    }

    fn set_event(&mut self, event: watcher::Event<DaemonSet>) {
        for k in self.sets.event(event) {
            if self.sets.by_key.contains_key(&k) {
                self.core.queue.add(k);
            } else {
                self.core.forget(&k);
                let prefix = format!("{k}/");
                self.failed_backoff.retain(|b, _| !b.starts_with(&prefix));
            }
        }
    }

    fn queue_all(&mut self) {
        let keys: Vec<String> = self.sets.by_key.keys().cloned().collect();
        for k in keys {
            self.core.queue.add(k);
        }
    }

    fn node_event(&mut self, event: watcher::Event<Node>) {
        let changed = match event {
            watcher::Event::Init => {
                self.nodes_relist.init();
                false
            }
            watcher::Event::InitApply(node) | watcher::Event::Apply(node) => {
                let Some(name) = node.metadata.name.clone() else {
                    return;
                };
                self.nodes_relist.seen(&name);
                let node = Arc::new(node);
                let old = self.nodes.insert(name, node.clone());
                old.is_none_or(|old| node_shape(&old) != node_shape(&node))
            }
            watcher::Event::Delete(node) => node
                .metadata
                .name
                .as_ref()
                .and_then(|n| self.nodes.remove(n))
                .is_some(),
            watcher::Event::InitDone => {
                let gone = self.nodes_relist.done(self.nodes.keys());
                for name in &gone {
                    self.nodes.remove(name);
                }
                !gone.is_empty()
            }
        };
        if changed {
            self.queue_all();
        }
    }

    fn key_of(&self, meta: &ObjectMeta) -> Option<String> {
        let owner = pods::controller_of(meta)?;
        let k = key(namespace_of(meta), &owner.name);
        self.sets
            .by_key
            .get(&k)
            .is_some_and(|s| s.metadata.uid.as_deref() == Some(owner.uid.as_str()))
            .then_some(k)
    }

    fn queue_matching(&mut self, meta: &ObjectMeta) {
        let ns = namespace_of(meta);
        let matching: Vec<String> = self
            .sets
            .by_key
            .iter()
            .filter(|(_, s)| namespace_of(&s.metadata) == ns)
            .filter(|(_, s)| {
                s.spec
                    .as_ref()
                    .and_then(|spec| nonempty_selector(&spec.selector))
                    .is_some_and(|sel| matches(&sel, meta.labels.as_ref()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in matching {
            self.core.queue.add(k);
        }
    }

    fn pod_event(&mut self, event: watcher::Event<Pod>) {
        for change in self.pods.event(event) {
            if let Some(new) = &change.new {
                if let Some(k) = self.key_of(&new.metadata) {
                    let uid = new.metadata.uid.clone().unwrap_or_default();
                    let was_owned = change
                        .old
                        .as_ref()
                        .is_some_and(|o| self.key_of(&o.metadata).as_ref() == Some(&k));
                    if !was_owned {
                        self.core.expectations.creations_observed(&k, 1);
                    }
                    if new.metadata.deletion_timestamp.is_some() {
                        self.core.expectations.deletion_observed(&k, &uid);
                    }
                    self.core.queue.add(k);
                } else if pods::controller_of(&new.metadata).is_none() {
                    self.queue_matching(&new.metadata);
                }
            }
            if let Some(old) = &change.old
                && let Some(k) = self.key_of(&old.metadata)
            {
                if change.new.is_none() {
                    let uid = old.metadata.uid.clone().unwrap_or_default();
                    self.core.expectations.deletion_observed(&k, &uid);
                }
                self.core.queue.add(k);
            }
        }
    }

    fn revision_event(&mut self, event: watcher::Event<ControllerRevision>) {
        for change in self.revisions.event(event) {
            for object in [&change.old, &change.new].into_iter().flatten() {
                if let Some(k) = self.key_of(&object.metadata) {
                    self.core.queue.add(k);
                } else if pods::controller_of(&object.metadata).is_none() {
                    self.queue_matching(&object.metadata);
                }
            }
        }
    }

    fn done(&mut self, done: Done) {
        for revision in done.revisions.iter().cloned() {
            self.revisions.apply(revision);
        }
        let exists = self.sets.by_key.contains_key(&done.key);
        self.core.done(&done, exists);
    }

    fn sync_next(&mut self, now: Instant) {
        let Some(k) = self.core.queue.pop() else {
            return;
        };
        let work = match self.sets.by_key.get(&k).cloned() {
            Some(set) => self.plan(&k, set, now),
            None => {
                self.core.forget(&k);
                None
            }
        };
        let Some(work) = work else {
            self.core.queue.done(&k);
            return;
        };
        let (client, events, done) = (
            self.client.clone(),
            self.events.clone(),
            self.done_tx.clone(),
        );
        tokio::spawn(async move {
            let _ = done.send(work.run(client, events).await);
        });
    }

    fn in_backoff(&self, k: &str, node: &str, now: Instant) -> Option<Duration> {
        let backoff = self.failed_backoff.get(&format!("{k}/{node}"))?;
        let until = backoff.last + backoff.delay;
        (until > now).then(|| until - now)
    }

    fn backoff_next(&mut self, k: &str, node: &str, now: Instant) {
        let (first, max) = FAILED_BACKOFF;
        let entry = self
            .failed_backoff
            .entry(format!("{k}/{node}"))
            .or_insert(Backoff {
                last: now,
                delay: Duration::ZERO,
            });
        entry.delay = if entry.delay.is_zero() || now.duration_since(entry.last) > 2 * max {
            first
        } else {
            (entry.delay * 2).min(max)
        };
        entry.last = now;
    }

    /// Compares the DaemonSet with the nodes, its pods and its history: what to write, if anything.
    fn plan(&mut self, k: &str, set: Arc<DaemonSet>, now: Instant) -> Option<Work> {
        let spec = set.spec.as_ref()?;
        let uid = set.metadata.uid.clone()?;
        let set_name = set.metadata.name.clone()?;
        let ns = namespace_of(&set.metadata).to_owned();
        let Some(selector) = nonempty_selector(&spec.selector) else {
            tracing::warn!(daemonset = %k, "invalid or empty selector");
            return None;
        };
        if set.metadata.deletion_timestamp.is_some() {
            // The garbage collector deletes its pods and history.
            return None;
        }
        let work = |step| {
            Some(Work {
                key: k.to_owned(),
                set: set.clone(),
                step,
            })
        };

        // Claims.
        let selected = |labels: Option<&BTreeMap<String, String>>| matches(&selector, labels);
        let (mut owned, mut release) = (Vec::new(), Vec::new());
        for pod in self.pods.owned_by(&uid) {
            if selected(pod.metadata.labels.as_ref()) {
                owned.push(pod);
            } else {
                release.push(pod);
            }
        }
        let adopt: Vec<Arc<Pod>> = self
            .pods
            .orphans_in(&ns)
            .into_iter()
            .filter(|p| {
                selected(p.metadata.labels.as_ref()) && p.metadata.deletion_timestamp.is_none()
            })
            .collect();
        let (mut revisions, mut release_revisions) = (Vec::new(), Vec::new());
        for revision in self.revisions.owned_by(&uid) {
            if selected(revision.metadata.labels.as_ref()) {
                revisions.push(revision);
            } else {
                release_revisions.push(revision);
            }
        }
        let adopt_revisions: Vec<Arc<ControllerRevision>> = self
            .revisions
            .orphans_in(&ns)
            .into_iter()
            .filter(|r| selected(r.metadata.labels.as_ref()))
            .collect();
        if !adopt.is_empty()
            || !release.is_empty()
            || !adopt_revisions.is_empty()
            || !release_revisions.is_empty()
        {
            return work(Step::Prepare(Prepare::Claim {
                adopt,
                release,
                adopt_revisions,
                release_revisions,
            }));
        }

        // History.
        let collision_count = set.status.as_ref().and_then(|s| s.collision_count);
        let data = history::data(&spec.template);
        let current = match history::plan(&revisions, &data) {
            history::Plan::Current(r) => r,
            history::Plan::Renumber(r, n) => {
                return work(Step::Prepare(Prepare::Renumber(
                    r.metadata.name.clone().unwrap_or_default(),
                    n,
                )));
            }
            history::Plan::Create(n) => {
                return work(Step::Prepare(Prepare::CreateRevision(Box::new(
                    history::new_revision(
                        &*set,
                        &spec.template,
                        data,
                        n,
                        collision_count,
                        history::HASH_LABEL,
                    ),
                ))));
            }
        };
        let hash = history::hash_of(&current, &set_name, history::HASH_LABEL);
        // The template generation: upstream's API server keeps it in an annotation; without it the revision
        // number stands in (both count template changes).
        let annotated = set
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(GENERATION_ANNOTATION))
            .cloned();
        let generation_label = annotated
            .clone()
            .unwrap_or_else(|| current.revision.to_string());
        let generation = annotated.as_deref();

        // Where things stand on each node.
        let template = spec.template.spec.clone().unwrap_or_default();
        let fits: BTreeMap<String, Fit> = self
            .nodes
            .iter()
            .map(|(name, node)| {
                let (should_run, should_continue) = should_run(&template, node);
                (
                    name.clone(),
                    Fit {
                        should_run,
                        should_continue,
                    },
                )
            })
            .collect();
        let mut on_nodes: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
        for pod in &owned {
            let terminal = matches!(pods::phase(pod), "Failed" | "Succeeded");
            if terminal && pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match target_node(pod) {
                Some(node) => on_nodes.entry(node).or_default().push(pod),
                None => tracing::debug!(daemonset = %k, pod = %name(pod), "a pod for no node"),
            }
        }
        let min_ready = Duration::from_secs(
            spec.min_ready_seconds
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        );
        let wall = Timestamp::now();
        let strategy = spec.update_strategy.as_ref();
        let rolling = strategy.and_then(|s| s.type_.as_deref()) != Some("OnDelete");
        let desired = fits.values().filter(|f| f.should_run).count();
        let (max_surge, max_unavailable) = if rolling {
            let rolling_update = strategy.and_then(|s| s.rolling_update.as_ref());
            let default_unavailable = IntOrString::Int(1);
            let surge = scaled(rolling_update.and_then(|r| r.max_surge.as_ref()), desired);
            let unavailable = scaled(
                rolling_update
                    .map(|r| r.max_unavailable.as_ref())
                    .unwrap_or(Some(&default_unavailable)),
                desired,
            );
            if desired > 0 && surge == 0 && unavailable == 0 {
                (0, 1)
            } else {
                (surge, unavailable)
            }
        } else {
            (0, 0)
        };

        let satisfied = self.core.expectations.satisfied(k, now);
        let (mut create_nodes, mut delete_names, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        if satisfied {
            let backoffs: HashMap<&str, Duration> = fits
                .keys()
                .filter_map(|n| self.in_backoff(k, n, now).map(|d| (n.as_str(), d)))
                .collect();
            let managed = manage(
                &fits,
                &on_nodes,
                max_surge > 0,
                &hash,
                min_ready,
                wall,
                |n| backoffs.contains_key(n),
            );
            for node in &managed.backing_off {
                if let Some(wait) = backoffs.get(node.as_str()) {
                    self.core.queue.add_after(k.to_owned(), *wait, now);
                }
            }
            for (_, node) in &managed.failed {
                self.backoff_next(k, node, now);
            }
            create_nodes = managed.create;
            delete_names = managed.delete;
            failed = managed.failed;
            if create_nodes.is_empty() && delete_names.is_empty() && rolling {
                let rollout = rolling_update(
                    &fits,
                    &on_nodes,
                    max_surge,
                    max_unavailable,
                    &hash,
                    generation,
                    min_ready,
                    wall,
                );
                create_nodes = rollout.create;
                delete_names = rollout.delete;
            }
            create_nodes.truncate(BURST_REPLICAS);
        }
        let create: Vec<Pod> = create_nodes
            .iter()
            .filter_map(|node| new_pod(&set, node, &hash, &generation_label))
            .collect();
        let names: HashSet<&str> = delete_names.iter().map(String::as_str).collect();
        let delete: Vec<Arc<Pod>> = owned
            .iter()
            .filter(|p| names.contains(p.metadata.name.as_deref().unwrap_or_default()))
            .cloned()
            .collect();
        if satisfied {
            let uids = delete
                .iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            self.core.expectations.expect(k, create.len(), uids, now);
        }
        self.core.recheck_expectations(k, now);

        // Old history beyond the limit, unless pods still run it.
        let live: HashSet<String> = revisions
            .iter()
            .filter(|r| {
                let h = history::hash_of(r, &set_name, history::HASH_LABEL);
                owned.iter().any(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(history::HASH_LABEL))
                        == Some(&h)
                })
            })
            .filter_map(|r| r.metadata.name.clone())
            .collect();
        let old: Vec<Arc<ControllerRevision>> = revisions
            .iter()
            .filter(|r| r.metadata.uid != current.metadata.uid)
            .cloned()
            .collect();
        let prune = history::to_prune(&old, &live, spec.revision_history_limit.unwrap_or(10));

        // The status; observedGeneration only moves once the controller acted on this generation.
        let observed = if satisfied {
            set.metadata.generation
        } else {
            set.status.as_ref().and_then(|s| s.observed_generation)
        };
        let status = status(
            &fits, &on_nodes, &hash, generation, min_ready, observed, wall,
        );
        if !min_ready.is_zero() && status.ready != status.available {
            self.core.queue.add_after(k.to_owned(), min_ready, now);
        }
        let status = (!status_is_current(&set, &status)).then(|| status_patch(&status));
        if create.is_empty() && delete.is_empty() && prune.is_empty() && status.is_none() {
            return None;
        }
        work(Step::Sync {
            create,
            delete,
            failed,
            prune,
            status,
        })
    }
}

impl Work {
    async fn run(self, client: Client, events: Recorder) -> Done {
        let set = &self.set;
        let ns = namespace_of(&set.metadata).to_owned();
        let set_name = set.metadata.name.clone().unwrap_or_default();
        let involved = involved(&**set);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let sets: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
        let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
        let mut done = Done {
            key: self.key.clone(),
            ..Done::default()
        };
        match self.step {
            Step::Prepare(prepare) => {
                let collision_count = set
                    .status
                    .as_ref()
                    .and_then(|st| st.collision_count)
                    .unwrap_or(0);
                prepare
                    .run(&sets, &pods, &revisions, &**set, collision_count, &mut done)
                    .await;
            }
            Step::Sync {
                create,
                delete,
                failed,
                prune,
                status,
            } => {
                let mut retry = false;
                for (pod, node) in &failed {
                    events.record(Event {
                        object: involved.clone(),
                        warning: true,
                        reason: "FailedDaemonPod",
                        message: format!(
                            "Found failed daemon pod {ns}/{pod} on node {node}, will try to kill it"
                        ),
                    });
                }
                // Creates in slow-start batches (1, 2, 4, …), stopping at a failure.
                let params = PostParams::default();
                let mut queue = create.into_iter();
                let mut batch = 1;
                loop {
                    let now: Vec<Pod> = queue.by_ref().take(batch).collect();
                    if now.is_empty() {
                        break;
                    }
                    let results = join_all(now.iter().map(|pod| pods.create(&params, pod))).await;
                    let mut batch_failed = false;
                    for result in results {
                        match result {
                            Ok(pod) => events.record(Event {
                                object: involved.clone(),
                                warning: false,
                                reason: "SuccessfulCreate",
                                message: format!("Created pod: {}", name(&pod)),
                            }),
                            Err(e) => {
                                done.uncreated += 1;
                                batch_failed = true;
                                events.record(Event {
                                    object: involved.clone(),
                                    warning: true,
                                    reason: "FailedCreate",
                                    message: format!("Error creating: {}", api_message(&e)),
                                });
                            }
                        }
                    }
                    if batch_failed {
                        done.uncreated += queue.len();
                        retry = true;
                        break;
                    }
                    batch *= 2;
                }
                let deletes = delete.iter().map(|pod| {
                    let pods = &pods;
                    async move { (pod, pods.delete(&name(pod), &DeleteParams::default()).await) }
                });
                for (pod, result) in join_all(deletes).await {
                    match result {
                        Ok(_) => events.record(Event {
                            object: involved.clone(),
                            warning: false,
                            reason: "SuccessfulDelete",
                            message: format!("Deleted pod: {}", name(pod)),
                        }),
                        Err(e) => {
                            done.undeleted.extend(pod.metadata.uid.clone());
                            if !is_not_found(&e) {
                                retry = true;
                                events.record(Event {
                                    object: involved.clone(),
                                    warning: true,
                                    reason: "FailedDelete",
                                    message: format!("Error deleting: {}", api_message(&e)),
                                });
                            }
                        }
                    }
                }
                for name in &prune {
                    if let Err(e) = revisions.delete(name, &DeleteParams::default()).await
                        && !is_not_found(&e)
                    {
                        tracing::debug!(revision = %name, "cannot delete old history: {e}");
                        retry = true;
                    }
                }
                if let Some(status) = &status {
                    match sets
                        .patch_status(&set_name, &PatchParams::default(), &Patch::Merge(status))
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => {
                            tracing::debug!(daemonset = %self.key, "cannot write the status: {e}");
                            retry = true;
                        }
                    }
                }
                done.retry = retry;
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn node(name: &str, labels: Value, taints: Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints}}))
        .unwrap()
    }

    fn spec(value: Value) -> PodSpec {
        let mut value = value;
        value["containers"] = json!([{"name": "c", "image": "i"}]);
        serde_json::from_value(value).unwrap()
    }

    fn pod(name: &str, node: &str, hash: &str, created: &str, status: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name, "creationTimestamp": created,
                "labels": {"app": "d", history::HASH_LABEL: hash}},
            "spec": {"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}},
            "status": status}))
        .unwrap()
    }

    fn ready() -> Value {
        json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}]})
    }

    fn now() -> Timestamp {
        "2025-01-01T00:10:00Z".parse().unwrap()
    }

    #[test]
    fn every_daemon_pod_tolerates_what_upstream_adds() {
        let mut s = spec(json!({"tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10},
            {"key": "mine", "operator": "Exists"}]}));
        daemon_tolerations(&mut s);
        let tolerations = s.tolerations.as_ref().unwrap();
        let keys: Vec<(&str, &str)> = tolerations
            .iter()
            .map(|t| {
                (
                    t.key.as_deref().unwrap(),
                    t.effect.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("node.kubernetes.io/not-ready", "NoExecute"),
                ("mine", ""),
                ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ]
        );
        assert_eq!(
            tolerations[0].toleration_seconds, None,
            "ours replaces the same toleration"
        );
        assert!(
            tolerations
                .iter()
                .all(|t| t.operator.as_deref() == Some("Exists"))
        );
        let mut host = spec(json!({"hostNetwork": true}));
        daemon_tolerations(&mut host);
        assert!(
            host.tolerations
                .unwrap()
                .iter()
                .any(|t| t.key.as_deref() == Some("node.kubernetes.io/network-unavailable"))
        );
    }

    #[test]
    fn which_nodes_run_a_daemon_pod() {
        let plain = node("a", json!({"disk": "ssd"}), json!([]));
        let s = spec(json!({}));
        assert_eq!(should_run(&s, &plain), (true, true));
        // nodeSelector.
        let ssd = spec(json!({"nodeSelector": {"disk": "ssd"}}));
        assert_eq!(should_run(&ssd, &plain), (true, true));
        let hdd = node("b", json!({"disk": "hdd"}), json!([]));
        assert_eq!(should_run(&ssd, &hdd), (false, false));
        // Required node affinity, with matchFields.
        let affinity = spec(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["hdd"]}]},
                                   {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}}),
        );
        assert_eq!(should_run(&affinity, &plain), (true, true));
        assert_eq!(should_run(&affinity, &hdd), (true, true), "by its name");
        let other = node("c", json!({"disk": "hdd"}), json!([]));
        assert_eq!(should_run(&affinity, &other), (false, false));
        // A template nodeName.
        let named = spec(json!({"nodeName": "b"}));
        assert_eq!(should_run(&named, &plain), (false, false));
        assert_eq!(should_run(&named, &hdd), (true, true));
        // Taints: NoSchedule keeps what runs, NoExecute not; tolerations and the automatic ones count.
        let no_schedule = node(
            "d",
            json!({}),
            json!([{"key": "k", "value": "v", "effect": "NoSchedule"}]),
        );
        assert_eq!(should_run(&s, &no_schedule), (false, true));
        let no_execute = node("e", json!({}), json!([{"key": "k", "effect": "NoExecute"}]));
        assert_eq!(should_run(&s, &no_execute), (false, false));
        let tolerant = spec(json!({"tolerations": [{"key": "k", "operator": "Exists"}]}));
        assert_eq!(should_run(&tolerant, &no_execute), (true, true));
        assert_eq!(should_run(&tolerant, &no_schedule), (true, true));
        let wrong_value = spec(json!({"tolerations": [{"key": "k", "value": "w"}]}));
        assert_eq!(should_run(&wrong_value, &no_schedule), (false, true));
        let not_ready = node(
            "f",
            json!({}),
            json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                   {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
        );
        assert_eq!(should_run(&s, &not_ready), (true, true), "tolerated by all");
        let prefer = node(
            "g",
            json!({}),
            json!([{"key": "k", "effect": "PreferNoSchedule"}]),
        );
        assert_eq!(should_run(&s, &prefer), (true, true));
    }

    #[test]
    fn daemon_pods_are_pinned_by_node_affinity_not_node_name() {
        let set: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "logs", "namespace": "ns", "uid": "u"},
            "spec": {"selector": {"matchLabels": {"app": "logs"}},
                "template": {"metadata": {"labels": {"app": "logs"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}],
                        "affinity": {"nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "x", "operator": "Exists"}]}]},
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {"weight": 1, "preference": {"matchExpressions": [{"key": "y", "operator": "Exists"}]}}]}}}}}}))
        .unwrap();
        let p = new_pod(&set, "n1", "abc", "3").unwrap();
        assert_eq!(p.metadata.generate_name.as_deref(), Some("logs-"));
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[history::HASH_LABEL], "abc");
        assert_eq!(labels[GENERATION_LABEL], "3");
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.node_name, None);
        let affinity = spec
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap();
        let terms = &affinity
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        assert_eq!(
            serde_json::to_value(&terms[0]).unwrap(),
            json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})
        );
        assert!(
            affinity
                .preferred_during_scheduling_ignored_during_execution
                .is_some()
        );
        assert_eq!(target_node(&p).as_deref(), Some("n1"));
        assert!(spec.tolerations.as_ref().unwrap().len() >= 6);
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("DaemonSet", Some(true))
        );
    }

    fn fits(entries: &[(&str, bool, bool)]) -> BTreeMap<String, Fit> {
        entries
            .iter()
            .map(|(n, r, c)| {
                (
                    (*n).to_owned(),
                    Fit {
                        should_run: *r,
                        should_continue: *c,
                    },
                )
            })
            .collect()
    }

    fn on<'a>(pods: &[&'a Pod]) -> BTreeMap<String, Vec<&'a Pod>> {
        let mut map: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
        for p in pods {
            map.entry(target_node(p).unwrap()).or_default().push(p);
        }
        map
    }

    #[test]
    fn manage_creates_where_missing_and_deletes_where_unwanted() {
        let t = "2025-01-01T00:00:00Z";
        let a = pod("a1", "a", "h", t, ready());
        let c = pod("c1", "c", "h", t, ready());
        let gone = pod("x1", "x", "h", t, ready());
        let failed = pod("d1", "d", "h", t, json!({"phase": "Failed"}));
        let twin_old = pod("e1", "e", "h", "2025-01-01T00:00:00Z", ready());
        let twin_new = pod("e2", "e", "h", "2025-01-01T00:05:00Z", ready());
        let f = fits(&[
            ("a", true, true),
            ("b", true, true),
            ("c", false, false),
            ("d", true, true),
            ("e", true, true),
        ]);
        let m = manage(
            &f,
            &on(&[&a, &c, &gone, &failed, &twin_old, &twin_new]),
            false,
            "h",
            Duration::ZERO,
            now(),
            |_| false,
        );
        assert_eq!(m.create, ["b"]);
        let mut deleted = m.delete.clone();
        deleted.sort();
        assert_eq!(deleted, ["c1", "d1", "e2", "x1"]);
        assert_eq!(m.failed, [("d1".to_owned(), "d".to_owned())]);
        // A failed pod in back-off stays for now.
        let m = manage(
            &f,
            &on(&[&failed]),
            false,
            "h",
            Duration::ZERO,
            now(),
            |n| n == "d",
        );
        assert!(m.failed.is_empty() && !m.delete.contains(&"d1".to_owned()));
        assert_eq!(m.backing_off, ["d"]);
    }

    #[test]
    fn rolling_update_respects_max_unavailable_and_max_surge() {
        let t = "2025-01-01T00:00:00Z";
        let old: Vec<Pod> = ["a", "b", "c"]
            .iter()
            .map(|n| pod(&format!("{n}1"), n, "old", t, ready()))
            .collect();
        let refs: Vec<&Pod> = old.iter().collect();
        let f = fits(&[("a", true, true), ("b", true, true), ("c", true, true)]);
        let r = rolling_update(&f, &on(&refs), 0, 1, "new", None, Duration::ZERO, now());
        assert_eq!(r.delete, ["a1"]);
        assert!(r.create.is_empty());
        let r = rolling_update(&f, &on(&refs), 0, 2, "new", None, Duration::ZERO, now());
        assert_eq!(r.delete, ["a1", "b1"]);
        // One new pod not yet ready uses up maxUnavailable 1.
        let fresh = pod("a2", "a", "new", t, json!({"phase": "Pending"}));
        let refs2 = [&fresh, &old[1], &old[2]];
        let r = rolling_update(&f, &on(&refs2), 0, 1, "new", None, Duration::ZERO, now());
        assert_eq!(r, Rollout::default());
        // Surge: new pods beside the old ones first, up to maxSurge.
        let r = rolling_update(&f, &on(&refs), 1, 0, "new", None, Duration::ZERO, now());
        assert_eq!((r.create, r.delete), (vec!["a".to_owned()], vec![]));
        let surged = pod("a2", "a", "new", t, ready());
        let refs3 = [&old[0], &surged, &old[1], &old[2]];
        let r = rolling_update(&f, &on(&refs3), 1, 0, "new", None, Duration::ZERO, now());
        assert_eq!(r.delete, ["a1"], "the new one is available: the old goes");
        assert_eq!(r.create, ["b"]);
        assert_eq!(scaled(Some(&IntOrString::String("50%".into())), 3), 2);
        assert_eq!(scaled(Some(&IntOrString::Int(2)), 3), 2);
        // A pod labelled with the template generation counts as updated too.
        let mut labelled = old[0].clone();
        labelled
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(GENERATION_LABEL.into(), "2".into());
        assert!(!is_updated(&old[0], "new", Some("2")));
        assert!(is_updated(&labelled, "new", Some("2")));
    }

    #[test]
    fn status_counts_per_node() {
        let t = "2025-01-01T00:00:00Z";
        let a = pod("a1", "a", "h", t, ready());
        let b = pod("b1", "b", "old", t, json!({"phase": "Pending"}));
        let c = pod("c1", "c", "h", t, ready());
        let f = fits(&[
            ("a", true, true),
            ("b", true, true),
            ("c", false, false),
            ("d", true, true),
        ]);
        let s = status(
            &f,
            &on(&[&a, &b, &c]),
            "h",
            None,
            Duration::ZERO,
            Some(4),
            now(),
        );
        assert_eq!(
            (
                s.desired,
                s.current,
                s.misscheduled,
                s.ready,
                s.available,
                s.updated
            ),
            (3, 2, 1, 1, 1, 1)
        );
        let patch = status_patch(&s);
        assert_eq!(patch["status"]["numberUnavailable"], 2);
        assert_eq!(patch["status"]["observedGeneration"], 4);
        let s = status(
            &f,
            &on(&[&a]),
            "h",
            None,
            Duration::from_secs(3600),
            Some(4),
            now(),
        );
        assert_eq!((s.ready, s.available), (1, 0), "not ready for an hour yet");
    }
}

//! The StatefulSet controller, with upstream's semantics: pods `<set>-<ordinal>` (from `spec.ordinals.start`)
//! with a stable identity (hostname = pod name, subdomain = `serviceName`, the `statefulset.kubernetes.io/pod-name`
//! and `apps.kubernetes.io/pod-index` labels), created in order and each only once its predecessors are Running
//! and Ready (and available after `minReadySeconds`) and deleted in reverse order (`OrderedReady`), or all at
//! once (`Parallel`); failed, finished or deleted pods come back with the same name; `RollingUpdate` replaces
//! pods at ordinals at or above the partition, highest first, one at a time, each waiting for the one before to
//! be healthy; `OnDelete` leaves that to whoever deletes pods. Template revisions are ControllerRevisions
//! (`kubectl rollout history|undo sts/x`), pruned down to `revisionHistoryLimit`; the status (replicas,
//! readyReplicas, currentReplicas, updatedReplicas, availableReplicas, currentRevision, updateRevision,
//! observedGeneration, collisionCount) is written through the status subresource when it changes.
//!
//! The task is built as the ReplicaSet controller's: one task owns the watched state (sets, and the pods and
//! ControllerRevisions indexed by their controller's uid, orphans by namespace, the claims by key), a
//! [`WorkQueue`](crate::queue::WorkQueue) of `namespace/name` keys and
//! [`Expectations`](crate::expectations::Expectations); writes run in tasks of their own.
//!
//! Each `volumeClaimTemplates` entry gives every pod a PersistentVolumeClaim `<template>-<set>-<ordinal>`,
//! created before the pod if missing (and for a Pending pod that lost it) and reused by the pod of that
//! ordinal ever after; a claim being deleted holds its pod back until it is gone. The
//! `persistentVolumeClaimRetentionPolicy` is kept in the claims' ownerReferences, as upstream: `whenDeleted:
//! Delete` makes the set their controller (the garbage collector deletes them with it), `whenScaled: Delete`
//! makes the pod of an ordinal scaled away their controller (they go with it; a claim still owned by a pod
//! that is gone holds back the new pod of its ordinal), `Retain` leaves them without either.
//!
//! Not yet: `maxUnavailable` of the rolling update (alpha upstream) is ignored.
//!
//! [`crate::history`], [`crate::cache`], [`crate::claims`] and [`crate::sync`] are shared with the DaemonSet
//! controller.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use gantry_client::k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use gantry_client::k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use gantry_client::k8s_openapi::jiff::Timestamp;
use gantry_client::kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::{
    api_message, controller_ref, count, involved, is_already_exists, is_conflict, is_not_found,
    key, matches, namespace_of, nonempty_selector, split_key,
};
use crate::cache::{Owned, Sets, watch_all};
use crate::history;
use crate::pods;
use crate::sync::{Core, Done, Prepare};
use gantry_client::events::{Event, Recorder};

/// The controller's name: the events' source.
pub const COMPONENT: &str = "statefulset-controller";
/// StatefulSets being written for at once.
pub const SYNCS_IN_FLIGHT: usize = 16;
/// The label naming a stateful pod (its identity).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding a stateful pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut set_events = watch_all::<StatefulSet>(&client);
    let mut pod_events = watch_all::<Pod>(&client);
    let mut revision_events = watch_all::<ControllerRevision>(&client);
    let mut claim_events = watch_all::<PersistentVolumeClaim>(&client);
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
                Err(e) => tracing::warn!("statefulset controller: watching statefulsets: {e}"),
            },
            Some(event) = pod_events.next() => match event {
                Ok(event) => controller.pod_event(event),
                Err(e) => tracing::warn!("statefulset controller: watching pods: {e}"),
            },
            Some(event) = revision_events.next() => match event {
                Ok(event) => controller.revision_event(event),
                Err(e) => tracing::warn!("statefulset controller: watching controllerrevisions: {e}"),
            },
            Some(event) = claim_events.next() => match event {
                Ok(event) => controller.claim_event(event),
                Err(e) => tracing::warn!("statefulset controller: watching persistentvolumeclaims: {e}"),
            },
            () = tokio::time::sleep_until(wakeup) => controller.core.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_sync => controller.sync_next(Instant::now()),
        }
    }
}

/// The StatefulSet a pod's name says it belongs to, and its ordinal (upstream's `getParentNameAndOrdinal`).
pub fn parent_and_ordinal(pod_name: &str) -> Option<(&str, i32)> {
    let (parent, ordinal) = pod_name.rsplit_once('-')?;
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ordinal.parse().ok()?))
}

fn ordinal_of(pod: &Pod, set: &str) -> Option<i32> {
    let (parent, ordinal) = parent_and_ordinal(pod.metadata.name.as_deref()?)?;
    (parent == set).then_some(ordinal)
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn running_and_ready(pod: &Pod) -> bool {
    pods::phase(pod) == "Running" && pods::is_ready(pod)
}

fn running_and_available(pod: &Pod, min_ready: Duration, now: Timestamp) -> bool {
    pods::phase(pod) == "Running" && pods::is_available(pod, min_ready, now)
}

fn is_healthy(pod: &Pod) -> bool {
    running_and_ready(pod) && !is_terminating(pod)
}

fn revision_of(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(history::HASH_LABEL))
        .map(String::as_str)
        .unwrap_or_default()
}

/// What decides a StatefulSet's pods, read from its spec and history.
#[derive(Debug, Clone)]
pub struct Params {
    pub name: String,
    /// `spec.ordinals.start`.
    pub start: i32,
    pub replicas: i32,
    /// `OrderedReady`: one pod at a time, each waiting for its predecessors.
    pub monotonic: bool,
    /// `RollingUpdate` with its partition; `None` for `OnDelete`.
    pub partition: Option<i32>,
    pub min_ready: Duration,
    pub current_revision: String,
    pub update_revision: String,
}

/// Which template a new pod is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    Current,
    Update,
}

/// Why a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Failed,
    Succeeded,
    ScaleDown,
    Update,
}

/// What one sync does to a StatefulSet's pods.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    /// Ordinals to create, with their template.
    pub create: Vec<(i32, Template)>,
    /// Pods to delete (by name).
    pub delete: Vec<(String, Why)>,
    /// Pods whose identity labels must be put back (by name).
    pub relabel: Vec<String>,
    /// A pod is ready but not yet available: look again then.
    pub available_in: Option<Duration>,
}

fn identity_matches(pod: &Pod, set: &str) -> bool {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let labels = pod.metadata.labels.as_ref();
    ordinal_of(pod, set).is_some_and(|o| {
        labels
            .and_then(|l| l.get(POD_NAME_LABEL))
            .map(String::as_str)
            == Some(name)
            && labels.and_then(|l| l.get(POD_INDEX_LABEL)) == Some(&o.to_string())
    })
}

/// Upstream's `updateStatefulSet` (without the writes): given the set's pods (claimed, any state), what to
/// create, delete and relabel now.
pub fn decide(params: &Params, pods: &[&Pod], now: Timestamp) -> Decision {
    let mut decision = Decision::default();
    let count = usize::try_from(params.replicas.max(0)).unwrap_or(0);
    let end = params.start.saturating_add(params.replicas);
    let mut replicas: Vec<Option<&Pod>> = vec![None; count];
    let mut condemned: Vec<&Pod> = Vec::new();
    for pod in pods {
        let Some(ordinal) = ordinal_of(pod, &params.name) else {
            continue;
        };
        if ordinal >= params.start && ordinal < end {
            if let Ok(i) = usize::try_from(ordinal - params.start) {
                replicas[i] = Some(pod);
            }
        } else {
            condemned.push(pod);
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal_of(p, &params.name)));
    let first_unhealthy: Option<&Pod> = replicas
        .iter()
        .map(|p| p.filter(|p| !is_healthy(p)))
        .find(|p| p.is_some())
        .flatten()
        .or_else(|| condemned.iter().rev().find(|p| !is_healthy(p)).copied());
    let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
    let monotonic = params.monotonic;
    let note_available = |pod: &Pod, decision: &mut Decision| {
        if let Some(Some(since)) = pods::ready_since(pod)
            && let Ok(at) = since.checked_add(params.min_ready)
        {
            let wait = at.as_nanosecond() - now.as_nanosecond();
            if wait > 0 {
                let wait = Duration::from_nanos(u64::try_from(wait).unwrap_or(0))
                    + Duration::from_millis(100);
                decision.available_in = Some(
                    decision
                        .available_in
                        .map_or(wait, |w: Duration| w.min(wait)),
                );
            }
        }
    };
    // The replicas, in order.
    for (i, slot) in replicas.iter().enumerate() {
        let ordinal = params.start + i32::try_from(i).unwrap_or(i32::MAX);
        match slot {
            Some(pod) if matches!(pods::phase(pod), "Failed" | "Succeeded") => {
                // Deleted first; made again once the watch shows it gone.
                if !is_terminating(pod) {
                    let why = if pods::phase(pod) == "Failed" {
                        Why::Failed
                    } else {
                        Why::Succeeded
                    };
                    decision.delete.push((name(pod), why));
                }
                if monotonic {
                    return decision;
                }
            }
            None => {
                let index = ordinal - params.start;
                let template = match params.partition {
                    Some(partition) if index < partition => Template::Current,
                    _ => Template::Update,
                };
                decision.create.push((ordinal, template));
                if monotonic {
                    return decision;
                }
            }
            Some(pod) => {
                if monotonic && (is_terminating(pod) || !running_and_ready(pod)) {
                    return decision;
                }
                if monotonic && !running_and_available(pod, params.min_ready, now) {
                    note_available(pod, &mut decision);
                    return decision;
                }
                if !is_terminating(pod) && !identity_matches(pod, &params.name) {
                    decision.relabel.push(name(pod));
                }
            }
        }
    }
    // Then the condemned, highest ordinal first.
    for pod in &condemned {
        if is_terminating(pod) {
            if monotonic {
                return decision;
            }
            continue;
        }
        let first = first_unhealthy.is_some_and(|f| std::ptr::eq(f, *pod));
        if monotonic && !first {
            if !running_and_ready(pod) {
                return decision;
            }
            if !running_and_available(pod, params.min_ready, now) {
                note_available(pod, &mut decision);
                return decision;
            }
        }
        decision.delete.push((name(pod), Why::ScaleDown));
        if monotonic {
            return decision;
        }
    }
    if !decision.create.is_empty() || !decision.delete.is_empty() {
        return decision;
    }
    // The rolling update: the highest ordinal not at the update revision goes, once those above are healthy.
    let Some(partition) = params.partition else {
        return decision;
    };
    let lowest = usize::try_from(partition.max(0)).unwrap_or(0);
    for i in (lowest..count).rev() {
        let Some(pod) = replicas[i] else {
            return decision;
        };
        if revision_of(pod) != params.update_revision && !is_terminating(pod) {
            decision.delete.push((name(pod), Why::Update));
            return decision;
        }
        if !is_healthy(pod) {
            return decision;
        }
    }
    decision
}

/// A StatefulSet's status as its pods make it (upstream's `computeReplicaStatus` and
/// `completeRollingUpdate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub current: i32,
    pub updated: i32,
    pub current_revision: String,
    pub update_revision: String,
    pub observed_generation: Option<i64>,
    pub collision_count: i32,
}

pub fn status(
    params: &Params,
    rolling: bool,
    pods: &[&Pod],
    generation: Option<i64>,
    collision_count: i32,
    now: Timestamp,
) -> Status {
    let created = pods.len();
    let ready = pods.iter().filter(|p| running_and_ready(p)).count();
    let available = pods
        .iter()
        .filter(|p| running_and_ready(p) && running_and_available(p, params.min_ready, now))
        .count();
    let live: Vec<&&Pod> = pods.iter().filter(|p| !is_terminating(p)).collect();
    let current = live
        .iter()
        .filter(|p| revision_of(p) == params.current_revision)
        .count();
    let updated = live
        .iter()
        .filter(|p| revision_of(p) == params.update_revision)
        .count();
    let mut status = Status {
        replicas: count(created),
        ready: count(ready),
        available: count(available),
        current: count(current),
        updated: count(updated),
        current_revision: params.current_revision.clone(),
        update_revision: params.update_revision.clone(),
        observed_generation: generation,
        collision_count,
    };
    if rolling && status.updated == status.replicas && status.ready == status.replicas {
        status.current = status.updated;
        status.current_revision = status.update_revision.clone();
    }
    status
}

fn status_is_current(set: &StatefulSet, status: &Status) -> bool {
    let Some(have) = &set.status else {
        return false;
    };
    have.replicas == status.replicas
        && have.ready_replicas.unwrap_or(0) == status.ready
        && have.available_replicas.unwrap_or(0) == status.available
        && have.current_replicas.unwrap_or(0) == status.current
        && have.updated_replicas.unwrap_or(0) == status.updated
        && have.current_revision.as_deref().unwrap_or_default() == status.current_revision
        && have.update_revision.as_deref().unwrap_or_default() == status.update_revision
        && have.observed_generation == status.observed_generation
        && have.collision_count.unwrap_or(0) == status.collision_count
}

fn status_patch(status: &Status) -> Value {
    let optional = |n: i32| if n == 0 { Value::Null } else { json!(n) };
    json!({"status": {
        "replicas": status.replicas,
        "readyReplicas": optional(status.ready),
        "availableReplicas": status.available,
        "currentReplicas": optional(status.current),
        "updatedReplicas": optional(status.updated),
        "currentRevision": status.current_revision,
        "updateRevision": status.update_revision,
        "observedGeneration": status.observed_generation,
        "collisionCount": status.collision_count,
    }})
}

/// The pod of `set` at `ordinal` from `template`, at `revision` (upstream's `newStatefulSetPod` and
/// `setPodRevision`).
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let name = format!("{set_name}-{ordinal}");
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(history::HASH_LABEL.into(), revision.into());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    // The claims' volumes replace the template's of the same name (upstream's `updateStorage`).
    let claims: Vec<String> = set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    if !claims.is_empty() {
        let mut volumes: Vec<Volume> = spec
            .volumes
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !claims.contains(&v.name))
            .collect();
        for claim in &claims {
            volumes.push(Volume {
                name: claim.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name(claim, &set_name, ordinal),
                    read_only: None,
                }),
                ..Volume::default()
            });
        }
        spec.volumes = Some(volumes);
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(set)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The claim of `template` for the pod at `ordinal` of `set` (upstream's `getPersistentVolumeClaimName`).
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// Whether `claim` is the name of one of the set's claims (some template's, for some ordinal).
pub fn is_claim_of(set: &StatefulSet, claim: &str) -> bool {
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    templates(set).any(|t| {
        let name = t.metadata.name.as_deref().unwrap_or_default();
        claim
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.strip_prefix(set_name))
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn templates(set: &StatefulSet) -> impl Iterator<Item = &PersistentVolumeClaim> {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
}

/// The set's `persistentVolumeClaimRetentionPolicy`: what goes with what (`Retain` unless `Delete`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// `whenDeleted: Delete`: the claims go with the set.
    pub with_set: bool,
    /// `whenScaled: Delete`: the claims of ordinals scaled away go with their pods.
    pub when_scaled: bool,
}

pub fn retention(set: &StatefulSet) -> Retention {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |p: Option<&String>| p.map(String::as_str) == Some("Delete");
    Retention {
        with_set: delete(policy.and_then(|p| p.when_deleted.as_ref())),
        when_scaled: delete(policy.and_then(|p| p.when_scaled.as_ref())),
    }
}

/// The claims of the pod at `ordinal` as the templates make them (upstream's `getPersistentVolumeClaims`):
/// in the set's namespace, with the template's labels and the selector's `matchLabels`, and the set as
/// controller when they go with it (a pod is made in range, so never the pod).
pub fn new_claims(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    let selector = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone());
    let with_set = retention(set).with_set;
    templates(set)
        .map(|template| {
            let mut claim = template.clone();
            let name = claim.metadata.name.as_deref().unwrap_or_default();
            claim.metadata.name = Some(claim_name(name, set_name, ordinal));
            claim.metadata.namespace = set.metadata.namespace.clone();
            match (&mut claim.metadata.labels, &selector) {
                (Some(labels), Some(selector)) => labels.extend(selector.clone()),
                (labels @ None, selector) => labels.clone_from(selector),
                (Some(_), None) => {}
            }
            claim.metadata.owner_references = with_set.then(|| vec![controller_ref(set)]);
            claim.status = None;
            claim
        })
        .collect()
}

/// Why a pod cannot be made yet, because of one of its claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// The claim is being deleted (upstream waits for it to be gone, then makes it again).
    Deleting(String),
    /// Claims go with scaled-down pods and this one is still owned by a pod of this name that is gone: the
    /// garbage collector is about to delete it.
    Stale(String),
}

fn is_pod_ref(r: &OwnerReference, pod: &str) -> bool {
    r.api_version == "v1" && r.kind == "Pod" && r.name == pod
}

fn is_set_ref(r: &OwnerReference, set: &str) -> bool {
    r.api_version == "apps/v1" && r.kind == "StatefulSet" && r.name == set
}

/// The claims to create before the pod at `ordinal` (named `pod`), given the claims that exist (`existing`
/// by name); [`Blocked`] when one of them holds the pod back (upstream's `PodClaimIsStale` and the deletion
/// check of `createPersistentVolumeClaims`).
pub fn claims_to_create(
    set: &StatefulSet,
    ordinal: i32,
    pod: &str,
    existing: impl Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
) -> Result<Vec<PersistentVolumeClaim>, Blocked> {
    let when_scaled = retention(set).when_scaled;
    let mut create = Vec::new();
    for claim in new_claims(set, ordinal) {
        let name = claim.metadata.name.clone().unwrap_or_default();
        let Some(found) = existing(&name) else {
            create.push(claim);
            continue;
        };
        // The pod is not made yet, so any reference to a pod of its name is to an earlier one.
        let stale = when_scaled
            && found
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| is_pod_ref(r, pod));
        if stale {
            return Err(Blocked::Stale(name));
        }
        if found.metadata.deletion_timestamp.is_some() {
            return Err(Blocked::Deleting(name));
        }
    }
    Ok(create)
}

/// The ownerReferences `claim` (of `pod`, at an ordinal `in_range` of the set or scaled away) must have for
/// the set's retention policy, when they differ from its own (upstream's `isClaimOwnerUpToDate` and
/// `updateClaimOwnerRefForSetAndPod`). A claim referring to an earlier set or pod of the same name is left
/// alone (the garbage collector deals with it), and so is one another controller controls, once rid of
/// references to the set and the pod.
pub fn claim_owners(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
    in_range: bool,
) -> Option<Vec<OwnerReference>> {
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let uid = |meta: &ObjectMeta| meta.uid.clone().unwrap_or_default();
    let refs = claim.metadata.owner_references.clone().unwrap_or_default();
    let stale = |is: &dyn Fn(&OwnerReference) -> bool, owner: String| {
        refs.iter().find(|r| is(r)).is_some_and(|r| r.uid != owner)
    };
    if stale(&|r| is_set_ref(r, set_name), uid(&set.metadata))
        || stale(&|r| is_pod_ref(r, pod_name), uid(&pod.metadata))
    {
        return None;
    }
    let ours = |r: &OwnerReference| is_set_ref(r, set_name) || is_pod_ref(r, pod_name);
    let policy = retention(set);
    let unexpected = (policy.with_set || policy.when_scaled)
        && refs.iter().any(|r| !ours(r) && r.controller == Some(true));
    let mut wanted: Vec<OwnerReference> = refs.iter().filter(|r| !ours(r)).cloned().collect();
    if !unexpected {
        if policy.when_scaled && !in_range {
            wanted.push(controller_ref(pod));
        } else if policy.with_set {
            // Scaled away under `whenScaled: Retain`, the claim stays with the set as in range.
            wanted.push(controller_ref(set));
        }
    }
    let same = wanted.len() == refs.len() && wanted.iter().all(|w| refs.contains(w));
    (!same).then_some(wanted)
}

/// What one sync writes.
#[derive(Debug)]
enum Step {
    Prepare(Prepare),
    Manage {
        /// ownerReferences of claims to bring in line with the retention policy (before any deletion).
        owners: Vec<ClaimOwners>,
        /// Claims Pending pods lack (by pod name).
        missing: Vec<(String, PersistentVolumeClaim)>,
        /// Pods to create, each after its claims.
        create: Vec<(Pod, Vec<PersistentVolumeClaim>)>,
        delete: Vec<(Arc<Pod>, Why)>,
        relabel: Vec<Arc<Pod>>,
        prune: Vec<String>,
        status: Option<Value>,
    },
}

/// A claim whose ownerReferences become `refs` (if it is still at `resource_version`).
#[derive(Debug)]
struct ClaimOwners {
    name: String,
    refs: Vec<OwnerReference>,
    resource_version: Option<String>,
}

#[derive(Debug)]
struct Work {
    key: String,
    set: Arc<StatefulSet>,
    step: Step,
}

/// The controller's state (owned by the one task of [`run`]).
struct Controller {
    client: Client,
    events: Recorder,
    sets: Sets<StatefulSet>,
    pods: Owned<Pod>,
    revisions: Owned<ControllerRevision>,
    /// Every PersistentVolumeClaim, by `namespace/name`.
    claims: Sets<PersistentVolumeClaim>,
    core: Core,
    done_tx: mpsc::UnboundedSender<Done>,
}

impl Controller {
    fn new(client: Client, done_tx: mpsc::UnboundedSender<Done>) -> Controller {
        Controller {
            events: Recorder::start(client.clone(), COMPONENT),
            client,
            sets: Sets::default(),
            pods: Owned::new("StatefulSet"),
            revisions: Owned::new("StatefulSet"),
            claims: Sets::default(),
            core: Core::default(),
            done_tx,
        }
    }

    fn can_sync(&self) -> bool {
        self.sets.relist.synced
            && self.pods.relist.synced
            && self.revisions.relist.synced
            && self.claims.relist.synced
            && !self.core.queue.is_empty()
            && self.core.queue.active() < SYNCS_IN_FLIGHT
    }

    fn set_event(&mut self, event: watcher::Event<StatefulSet>) {
        for k in self.sets.event(event) {
            if self.sets.by_key.contains_key(&k) {
                self.core.queue.add(k);
            } else {
                self.core.forget(&k);
            }
        }
    }

    /// The key of the StatefulSet whose uid is `uid`, in `namespace`.
    fn key_of_uid(&self, namespace: &str, owner: Option<&OwnerReference>) -> Option<String> {
        let owner = owner?;
        let k = key(namespace, &owner.name);
        self.sets
            .by_key
            .get(&k)
            .is_none_or(|s| s.metadata.uid.as_deref() == Some(owner.uid.as_str()))
            .then_some(k)
    }

    /// Queues the sets of `namespace` whose selectors match an orphan's labels.
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
            let mut keys = Vec::new();
            if let Some(new) = &change.new {
                let owner = pods::controller_of(&new.metadata);
                if let Some(k) = self.key_of_uid(namespace_of(&new.metadata), owner) {
                    let uid = new.metadata.uid.clone().unwrap_or_default();
                    let was_there = change.old.as_ref().is_some_and(|o| {
                        pods::controller_of(&o.metadata).map(|r| &r.uid) == owner.map(|r| &r.uid)
                    });
                    if !was_there {
                        self.core.expectations.creations_observed(&k, 1);
                    }
                    if is_terminating(new) {
                        self.core.expectations.deletion_observed(&k, &uid);
                    }
                    keys.push(k);
                } else if owner.is_none() {
                    self.queue_matching(&new.metadata);
                }
            }
            if let Some(old) = &change.old {
                let owner = pods::controller_of(&old.metadata);
                if let Some(k) = self.key_of_uid(namespace_of(&old.metadata), owner) {
                    if change.new.is_none() {
                        let uid = old.metadata.uid.clone().unwrap_or_default();
                        self.core.expectations.deletion_observed(&k, &uid);
                    }
                    keys.push(k);
                }
            }
            for k in keys {
                if self.sets.by_key.contains_key(&k) {
                    self.core.queue.add(k);
                }
            }
        }
    }

    fn revision_event(&mut self, event: watcher::Event<ControllerRevision>) {
        for change in self.revisions.event(event) {
            for object in [&change.old, &change.new].into_iter().flatten() {
                let meta = &object.metadata;
                let owner = pods::controller_of(meta);
                if let Some(k) = self.key_of_uid(namespace_of(meta), owner) {
                    if self.sets.by_key.contains_key(&k) {
                        self.core.queue.add(k);
                    }
                } else if owner.is_none() {
                    self.queue_matching(meta);
                }
            }
        }
    }

    /// A claim changed: the sets it belongs to look again (one may wait for it to go).
    fn claim_event(&mut self, event: watcher::Event<PersistentVolumeClaim>) {
        for k in self.claims.event(event) {
            let (ns, name) = split_key(&k);
            let owners: Vec<String> = self
                .sets
                .by_key
                .iter()
                .filter(|(_, s)| namespace_of(&s.metadata) == ns && is_claim_of(s, name))
                .map(|(k, _)| k.clone())
                .collect();
            for owner in owners {
                self.core.queue.add(owner);
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

    /// Compares the StatefulSet with its pods and history: what to write, if anything.
    fn plan(&mut self, k: &str, set: Arc<StatefulSet>, now: Instant) -> Option<Work> {
        let spec = set.spec.as_ref()?;
        let uid = set.metadata.uid.clone()?;
        let set_name = set.metadata.name.clone()?;
        let ns = namespace_of(&set.metadata).to_owned();
        let Some(selector) = nonempty_selector(&spec.selector) else {
            tracing::warn!(statefulset = %k, "invalid or empty selector");
            return None;
        };
        let deleting = set.metadata.deletion_timestamp.is_some();
        let work = |step| {
            Some(Work {
                key: k.to_owned(),
                set: set.clone(),
                step,
            })
        };

        // Claims: members the selector matches are adopted, the others released.
        let member = |p: &Pod| {
            ordinal_of(p, &set_name).is_some() && matches(&selector, p.metadata.labels.as_ref())
        };
        let owned = self.pods.owned_by(&uid);
        let (mut pods, mut release, mut adopt) = (Vec::new(), Vec::new(), Vec::new());
        for pod in owned {
            if member(&pod) {
                pods.push(pod);
            } else if !deleting {
                release.push(pod);
            }
        }
        if !deleting {
            adopt = self
                .pods
                .orphans_in(&ns)
                .into_iter()
                .filter(|p| member(p) && !is_terminating(p))
                .collect();
        }
        let (mut revisions, mut release_revisions, mut adopt_revisions) =
            (Vec::new(), Vec::new(), Vec::new());
        for revision in self.revisions.owned_by(&uid) {
            if matches(&selector, revision.metadata.labels.as_ref()) {
                revisions.push(revision);
            } else if !deleting {
                release_revisions.push(revision);
            }
        }
        if !deleting {
            adopt_revisions = self
                .revisions
                .orphans_in(&ns)
                .into_iter()
                .filter(|r| matches(&selector, r.metadata.labels.as_ref()))
                .collect();
        }
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

        // The history: the update revision holds the template.
        let collision_count = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let data = history::data(&spec.template);
        let update = match history::plan(&revisions, &data) {
            history::Plan::Current(r) => r,
            _ if deleting => return None,
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
                        Some(collision_count),
                        history::REVISION_HASH_LABEL,
                    ),
                ))));
            }
        };
        let update_name = update.metadata.name.clone().unwrap_or_default();
        let current = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.as_deref())
            .and_then(|name| {
                revisions
                    .iter()
                    .find(|r| r.metadata.name.as_deref() == Some(name))
            })
            .cloned()
            .unwrap_or_else(|| update.clone());
        let current_name = current.metadata.name.clone().unwrap_or_default();
        let strategy = spec.update_strategy.as_ref();
        let rolling = strategy.and_then(|s| s.type_.as_deref()) != Some("OnDelete");
        let current_replicas = set
            .status
            .as_ref()
            .and_then(|s| s.current_replicas)
            .unwrap_or(0);
        let partition = rolling.then(|| {
            strategy
                .and_then(|s| s.rolling_update.as_ref())
                .map_or(current_replicas, |r| r.partition.unwrap_or(0))
        });
        let params = Params {
            name: set_name.clone(),
            start: spec
                .ordinals
                .as_ref()
                .and_then(|o| o.start)
                .unwrap_or(0)
                .max(0),
            replicas: spec.replicas.unwrap_or(1).max(0),
            monotonic: spec.pod_management_policy.as_deref() != Some("Parallel"),
            partition,
            min_ready: Duration::from_secs(
                spec.min_ready_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(0),
            ),
            current_revision: current_name.clone(),
            update_revision: update_name.clone(),
        };
        let wall = Timestamp::now();
        let pod_refs: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();

        let decision = if !deleting && self.core.expectations.satisfied(k, now) {
            decide(&params, &pod_refs, wall)
        } else {
            Decision::default()
        };
        let by_name = |name: &str| {
            pods.iter()
                .find(|p| p.metadata.name.as_deref() == Some(name))
                .cloned()
        };
        let current_template = history::template_of(&current).unwrap_or(spec.template.clone());
        let claim_of = |name: &str| self.claims.by_key.get(&key(&ns, name)).cloned();
        let mut create = Vec::new();
        for (ordinal, template) in &decision.create {
            let pod = match template {
                Template::Current => new_pod(&set, &current_template, *ordinal, &current_name),
                Template::Update => new_pod(&set, &spec.template, *ordinal, &update_name),
            };
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            match claims_to_create(&set, *ordinal, &pod_name, claim_of) {
                Ok(claims) => create.push((pod, claims)),
                Err(Blocked::Deleting(claim)) => self.events.record(Event {
                    object: involved(&*set),
                    warning: true,
                    reason: "FailedCreate",
                    message: format!(
                        "create Pod {pod_name} in StatefulSet {set_name} failed error: pvc {claim} is being deleted"
                    ),
                }),
                Err(Blocked::Stale(claim)) => {
                    tracing::debug!(statefulset = %k, claim = %claim, "waiting for a stale claim to go");
                }
            }
        }
        let (owners, missing) = if deleting {
            (Vec::new(), Vec::new())
        } else {
            claim_writes(&set, &params, &pods, claim_of)
        };
        let delete: Vec<(Arc<Pod>, Why)> = decision
            .delete
            .iter()
            .filter_map(|(name, why)| by_name(name).map(|p| (p, *why)))
            .collect();
        let relabel: Vec<Arc<Pod>> = decision.relabel.iter().filter_map(|n| by_name(n)).collect();
        if !create.is_empty() || !delete.is_empty() {
            let uids = delete
                .iter()
                .filter_map(|(p, _)| p.metadata.uid.clone())
                .collect();
            self.core.expectations.expect(k, create.len(), uids, now);
        }
        self.core.recheck_expectations(k, now);

        // Old history beyond the limit goes, but never a revision still in use.
        let mut live: HashSet<String> = pods.iter().map(|p| revision_of(p).to_owned()).collect();
        live.insert(current_name.clone());
        live.insert(update_name.clone());
        let old: Vec<Arc<ControllerRevision>> = revisions
            .iter()
            .filter(|r| r.metadata.uid != update.metadata.uid)
            .cloned()
            .collect();
        let prune = if deleting {
            Vec::new()
        } else {
            history::to_prune(&old, &live, spec.revision_history_limit.unwrap_or(10))
        };

        let status = status(
            &params,
            rolling,
            &pod_refs,
            set.metadata.generation,
            collision_count,
            wall,
        );
        let status = (!status_is_current(&set, &status)).then(|| status_patch(&status));
        // Ready pods become available after minReadySeconds: the status changes then.
        let after = decision.available_in.or_else(|| {
            (!params.min_ready.is_zero())
                .then(|| {
                    pods.iter()
                        .filter(|p| {
                            running_and_ready(p)
                                && !running_and_available(p, params.min_ready, wall)
                        })
                        .filter_map(|p| pods::ready_since(p).flatten())
                        .filter_map(|s| s.checked_add(params.min_ready).ok())
                        .map(|at| {
                            Duration::from_nanos(
                                u64::try_from(at.as_nanosecond() - wall.as_nanosecond())
                                    .unwrap_or(0),
                            ) + Duration::from_millis(100)
                        })
                        .min()
                })
                .flatten()
        });
        if let Some(after) = after {
            self.core.queue.add_after(k.to_owned(), after, now);
        }
        if owners.is_empty()
            && missing.is_empty()
            && create.is_empty()
            && delete.is_empty()
            && relabel.is_empty()
            && prune.is_empty()
            && status.is_none()
        {
            return None;
        }
        work(Step::Manage {
            owners,
            missing,
            create,
            delete,
            relabel,
            prune,
            status,
        })
    }
}

/// The claim writes of the set's existing pods: ownerReferences to bring in line with the retention policy
/// (every pod's, scaled away or not), and claims a Pending pod in range lacks (upstream's
/// `createMissingPersistentVolumeClaims`: someone deleted one before the pod started).
fn claim_writes(
    set: &StatefulSet,
    params: &Params,
    pods: &[Arc<Pod>],
    claim_of: impl Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
) -> (Vec<ClaimOwners>, Vec<(String, PersistentVolumeClaim)>) {
    let (mut owners, mut missing) = (Vec::new(), Vec::new());
    if templates(set).next().is_none() {
        return (owners, missing);
    }
    let end = params.start.saturating_add(params.replicas);
    for pod in pods {
        let Some(ordinal) = ordinal_of(pod, &params.name) else {
            continue;
        };
        if pod.metadata.uid.is_none() {
            continue;
        }
        let in_range = ordinal >= params.start && ordinal < end;
        let pending = in_range && pods::phase(pod) == "Pending" && !is_terminating(pod);
        for claim in new_claims(set, ordinal) {
            let name = claim.metadata.name.clone().unwrap_or_default();
            match claim_of(&name) {
                Some(found) => {
                    if let Some(refs) = claim_owners(&found, set, pod, in_range) {
                        owners.push(ClaimOwners {
                            name,
                            refs,
                            resource_version: found.metadata.resource_version.clone(),
                        });
                    }
                }
                None if pending => {
                    missing.push((pod.metadata.name.clone().unwrap_or_default(), claim));
                }
                None => {}
            }
        }
    }
    (owners, missing)
}

/// Creates `claims` for the pod `pod` (upstream's `createPersistentVolumeClaims`), with an Event for each
/// claim made or refused; `Err` says why the pod cannot be made. A claim already there counts as a
/// failure unless `tolerate_existing` (the cache did not show it yet: the next sync looks again).
async fn create_claims(
    api: &Api<PersistentVolumeClaim>,
    events: &Recorder,
    set: &StatefulSet,
    pod: &str,
    claims: &[PersistentVolumeClaim],
    tolerate_existing: bool,
) -> Result<(), String> {
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    let mut errors = Vec::new();
    for claim in claims {
        let name = claim.metadata.name.as_deref().unwrap_or_default();
        match api.create(&PostParams::default(), claim).await {
            Ok(_) => events.record(Event {
                object: involved(set),
                warning: false,
                reason: "SuccessfulCreate",
                message: format!("create Claim {name} Pod {pod} in StatefulSet {set_name} success"),
            }),
            Err(e) if is_already_exists(&e) => {
                if !tolerate_existing {
                    errors.push(format!("failed to create PVC {name}: {}", api_message(&e)));
                }
            }
            Err(e) => {
                let message = api_message(&e);
                events.record(Event {
                    object: involved(set),
                    warning: true,
                    reason: "FailedCreate",
                    message: format!(
                        "create Claim {name} for Pod {pod} in StatefulSet {set_name} failed error: {message}"
                    ),
                });
                errors.push(format!("failed to create PVC {name}: {message}"));
            }
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

/// Why a pod was not created.
enum CreateError {
    /// One of its claims could not be made.
    Claims(String),
    Pod(gantry_client::kube::Error),
}

impl Work {
    async fn run(self, client: Client, events: Recorder) -> Done {
        let set = &self.set;
        let ns = namespace_of(&set.metadata).to_owned();
        let set_name = set.metadata.name.clone().unwrap_or_default();
        let involved = involved(&**set);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
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
            Step::Manage {
                owners,
                missing,
                create,
                mut delete,
                relabel,
                prune,
                status,
            } => {
                let mut failed = false;
                let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
                // The claims' owners first: a pod scaled away must own its claims before it goes.
                for owner in &owners {
                    let patch = json!({"metadata": {
                        "ownerReferences": owner.refs,
                        "resourceVersion": owner.resource_version}});
                    if let Err(e) = claims
                        .patch(&owner.name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        && !is_not_found(&e)
                    {
                        tracing::debug!(claim = %owner.name, "cannot update the owners: {e}");
                        failed = true;
                    }
                }
                if failed {
                    // Scale down waits for the claims (upstream returns before the condemned).
                    delete.retain(|(pod, why)| {
                        let keep = *why != Why::ScaleDown;
                        if !keep {
                            done.undeleted.extend(pod.metadata.uid.clone());
                        }
                        keep
                    });
                }
                for (pod, claim) in missing {
                    let made = create_claims(&claims, &events, set, &pod, &[claim], true).await;
                    failed |= made.is_err();
                }
                // Creates in slow-start batches (1, 2, 4, …), stopping at a failure; each pod after its
                // claims.
                let mut queue = create.into_iter();
                let mut batch = 1;
                loop {
                    let now: Vec<(Pod, Vec<PersistentVolumeClaim>)> =
                        queue.by_ref().take(batch).collect();
                    if now.is_empty() {
                        break;
                    }
                    let params = PostParams::default();
                    let results = join_all(now.iter().map(|(pod, pod_claims)| {
                        let (claims, events, params, pods) = (&claims, &events, &params, &pods);
                        async move {
                            let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
                            create_claims(claims, events, set, pod_name, pod_claims, false)
                                .await
                                .map_err(CreateError::Claims)?;
                            pods.create(params, pod).await.map_err(CreateError::Pod)
                        }
                    }))
                    .await;
                    let mut batch_failed = false;
                    for ((pod, _), result) in now.iter().zip(results) {
                        let pod_name = pod.metadata.name.clone().unwrap_or_default();
                        let error = match result {
                            Ok(_) => {
                                events.record(Event {
                                    object: involved.clone(),
                                    warning: false,
                                    reason: "SuccessfulCreate",
                                    message: format!(
                                        "create Pod {pod_name} in StatefulSet {set_name} successful"
                                    ),
                                });
                                continue;
                            }
                            Err(CreateError::Claims(message)) => Some(message),
                            // Already there: the watch will show it; not a failure of the set.
                            Err(CreateError::Pod(e)) if is_conflict(&e) => None,
                            Err(CreateError::Pod(e)) => Some(api_message(&e)),
                        };
                        done.uncreated += 1;
                        batch_failed = true;
                        if let Some(error) = error {
                            events.record(Event {
                                object: involved.clone(),
                                warning: true,
                                reason: "FailedCreate",
                                message: format!(
                                    "create Pod {pod_name} in StatefulSet {set_name} failed error: {error}"
                                ),
                            });
                        }
                    }
                    if batch_failed {
                        done.uncreated += queue.len();
                        failed = true;
                        break;
                    }
                    batch *= 2;
                }
                let deletes = delete.iter().map(|(pod, why)| {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let pods = &pods;
                    let (involved, events) = (&involved, &events);
                    let (ns, set_name) = (&ns, &set_name);
                    async move {
                        match why {
                            Why::Failed => events.record(Event {
                                object: involved.clone(),
                                warning: true,
                                reason: "RecreatingFailedPod",
                                message: format!(
                                    "StatefulSet {ns}/{set_name} is recreating failed Pod {name}"
                                ),
                            }),
                            Why::Succeeded => events.record(Event {
                                object: involved.clone(),
                                warning: false,
                                reason: "RecreatingTerminatedPod",
                                message: format!(
                                    "StatefulSet {ns}/{set_name} is recreating terminated Pod {name}"
                                ),
                            }),
                            Why::ScaleDown | Why::Update => {}
                        }
                        (pod, pods.delete(&name, &DeleteParams::default()).await)
                    }
                });
                for (pod, result) in join_all(deletes).await {
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    match result {
                        Ok(_) => events.record(Event {
                            object: involved.clone(),
                            warning: false,
                            reason: "SuccessfulDelete",
                            message: format!(
                                "delete Pod {pod_name} in StatefulSet {set_name} successful"
                            ),
                        }),
                        Err(e) => {
                            done.undeleted.extend(pod.metadata.uid.clone());
                            if !is_not_found(&e) {
                                failed = true;
                                events.record(Event {
                                    object: involved.clone(),
                                    warning: true,
                                    reason: "FailedDelete",
                                    message: format!(
                                        "delete Pod {pod_name} in StatefulSet {set_name} failed error: {}",
                                        api_message(&e)
                                    ),
                                });
                            }
                        }
                    }
                }
                for pod in &relabel {
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    let ordinal = ordinal_of(pod, &set_name).unwrap_or(0);
                    let patch = json!({"metadata": {"labels": {
                        POD_NAME_LABEL: pod_name, POD_INDEX_LABEL: ordinal.to_string()},
                        "resourceVersion": pod.metadata.resource_version}});
                    if let Err(e) = pods
                        .patch(&pod_name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        && !is_not_found(&e)
                    {
                        tracing::debug!(pod = %pod_name, "cannot restore the identity: {e}");
                        failed = true;
                    }
                }
                for name in &prune {
                    if let Err(e) = revisions.delete(name, &DeleteParams::default()).await
                        && !is_not_found(&e)
                    {
                        tracing::debug!(revision = %name, "cannot delete old history: {e}");
                        failed = true;
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
                            tracing::debug!(statefulset = %self.key, "cannot write the status: {e}");
                            failed = true;
                        }
                    }
                }
                done.retry = failed;
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pod(name: &str, revision: &str, status: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name, "labels": {
                "app": "web", POD_NAME_LABEL: name,
                POD_INDEX_LABEL: name.rsplit('-').next().unwrap(),
                history::HASH_LABEL: revision}},
            "status": status}))
        .unwrap()
    }

    fn ready() -> Value {
        json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}]})
    }

    fn pending() -> Value {
        json!({"phase": "Pending"})
    }

    fn now() -> Timestamp {
        "2025-01-01T00:01:00Z".parse().unwrap()
    }

    fn params(replicas: i32) -> Params {
        Params {
            name: "web".into(),
            start: 0,
            replicas,
            monotonic: true,
            partition: Some(0),
            min_ready: Duration::ZERO,
            current_revision: "web-a".into(),
            update_revision: "web-a".into(),
        }
    }

    #[test]
    fn names_and_ordinals() {
        assert_eq!(parent_and_ordinal("web-0"), Some(("web", 0)));
        assert_eq!(parent_and_ordinal("my-web-12"), Some(("my-web", 12)));
        assert_eq!(parent_and_ordinal("web-x"), None);
        assert_eq!(parent_and_ordinal("web-"), None);
        assert_eq!(parent_and_ordinal("web"), None);
        let p = pod("web-3", "r", pending());
        assert_eq!(ordinal_of(&p, "web"), Some(3));
        assert_eq!(ordinal_of(&p, "we"), None);
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time_after_its_predecessor_is_ready() {
        let p = params(3);
        assert_eq!(
            decide(&p, &[], now()).create,
            [(0, Template::Update)],
            "only web-0 first"
        );
        let web0 = pod("web-0", "web-a", pending());
        let d = decide(&p, &[&web0], now());
        assert!(
            d.create.is_empty() && d.delete.is_empty(),
            "waits for web-0: {d:?}"
        );
        let web0 = pod("web-0", "web-a", ready());
        assert_eq!(decide(&p, &[&web0], now()).create, [(1, Template::Update)]);
        // Parallel creates every missing one at once.
        let parallel = Params {
            monotonic: false,
            ..p.clone()
        };
        assert_eq!(
            decide(&parallel, &[], now()).create,
            [
                (0, Template::Update),
                (1, Template::Update),
                (2, Template::Update)
            ]
        );
        // ordinals.start shifts the names.
        let shifted = Params { start: 5, ..p };
        assert_eq!(decide(&shifted, &[], now()).create, [(5, Template::Update)]);
    }

    #[test]
    fn min_ready_seconds_hold_the_next_pod() {
        let p = Params {
            min_ready: Duration::from_secs(120),
            ..params(2)
        };
        let web0 = pod("web-0", "web-a", ready());
        let d = decide(&p, &[&web0], now());
        assert!(d.create.is_empty());
        assert_eq!(
            d.available_in,
            Some(Duration::from_secs(60) + Duration::from_millis(100))
        );
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first_once_all_are_healthy() {
        let p = params(1);
        let pods: Vec<Pod> = (0..3)
            .map(|i| pod(&format!("web-{i}"), "web-a", ready()))
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(
            decide(&p, &refs, now()).delete,
            [("web-2".into(), Why::ScaleDown)]
        );
        // Waits while web-2 terminates.
        let mut going = pods.clone();
        going[2].metadata.deletion_timestamp =
            Some(gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        let refs: Vec<&Pod> = going.iter().collect();
        assert_eq!(decide(&p, &refs, now()), Decision::default());
        // Parallel deletes all the surplus at once.
        let parallel = Params {
            monotonic: false,
            ..p
        };
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(
            decide(&parallel, &refs, now()).delete,
            [
                ("web-2".into(), Why::ScaleDown),
                ("web-1".into(), Why::ScaleDown)
            ]
        );
    }

    #[test]
    fn a_failed_pod_is_deleted_to_be_made_again() {
        let p = params(2);
        let web0 = pod("web-0", "web-a", json!({"phase": "Failed"}));
        let web1 = pod("web-1", "web-a", ready());
        let d = decide(&p, &[&web0, &web1], now());
        assert_eq!(d.delete, [("web-0".into(), Why::Failed)]);
        assert!(d.create.is_empty());
        let d = decide(&p, &[&web1], now());
        assert_eq!(d.create, [(0, Template::Update)], "web-0 gone: made again");
    }

    #[test]
    fn rolling_update_goes_down_from_the_highest_ordinal_to_the_partition() {
        let p = Params {
            update_revision: "web-b".into(),
            partition: Some(1),
            ..params(3)
        };
        let pods: Vec<Pod> = (0..3)
            .map(|i| pod(&format!("web-{i}"), "web-a", ready()))
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(
            decide(&p, &refs, now()).delete,
            [("web-2".into(), Why::Update)]
        );
        // web-2 updated but not ready yet: wait.
        let mut next = pods.clone();
        next[2] = pod("web-2", "web-b", pending());
        let refs: Vec<&Pod> = next.iter().collect();
        assert_eq!(decide(&p, &refs, now()), Decision::default());
        // Ready: web-1 goes; web-0 is below the partition and stays.
        next[2] = pod("web-2", "web-b", ready());
        let refs: Vec<&Pod> = next.iter().collect();
        assert_eq!(
            decide(&p, &refs, now()).delete,
            [("web-1".into(), Why::Update)]
        );
        next[1] = pod("web-1", "web-b", ready());
        let refs: Vec<&Pod> = next.iter().collect();
        assert_eq!(decide(&p, &refs, now()), Decision::default());
        // Below the partition a missing pod is made from the current revision, above from the update.
        let refs: Vec<&Pod> = vec![&next[1], &next[2]];
        assert_eq!(decide(&p, &refs, now()).create, [(0, Template::Current)]);
        // OnDelete never deletes for an update.
        let on_delete = Params {
            partition: None,
            ..p
        };
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(decide(&on_delete, &refs, now()), Decision::default());
    }

    #[test]
    fn missing_identity_labels_are_put_back() {
        let mut web0 = pod("web-0", "web-a", ready());
        web0.metadata
            .labels
            .as_mut()
            .unwrap()
            .remove(POD_INDEX_LABEL);
        assert_eq!(decide(&params(1), &[&web0], now()).relabel, ["web-0"]);
    }

    #[test]
    fn status_counts_and_completes_the_rolling_update() {
        let p = Params {
            current_revision: "web-a".into(),
            update_revision: "web-b".into(),
            ..params(2)
        };
        let a = pod("web-0", "web-a", ready());
        let b = pod("web-1", "web-b", pending());
        let s = status(&p, true, &[&a, &b], Some(3), 0, now());
        assert_eq!(
            (s.replicas, s.ready, s.available, s.current, s.updated),
            (2, 1, 1, 1, 1)
        );
        assert_eq!(s.current_revision, "web-a");
        let a = pod("web-0", "web-b", ready());
        let b = pod("web-1", "web-b", ready());
        let s = status(&p, true, &[&a, &b], Some(3), 0, now());
        assert_eq!((s.current, s.updated), (2, 2));
        assert_eq!(s.current_revision, "web-b", "the update is complete");
        let patch = status_patch(&s);
        assert_eq!(patch["status"]["updateRevision"], "web-b");
        assert_eq!(patch["status"]["observedGeneration"], 3);
    }

    #[test]
    fn pods_have_a_stable_identity() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u"},
            "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "i",
                        "volumeMounts": [{"name": "www", "mountPath": "/www"}]}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {}}]}}))
        .unwrap();
        let spec = set.spec.as_ref().unwrap();
        let p = new_pod(&set, &spec.template, 2, "web-abc");
        assert_eq!(p.metadata.name.as_deref(), Some("web-2"));
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[POD_NAME_LABEL], "web-2");
        assert_eq!(labels[POD_INDEX_LABEL], "2");
        assert_eq!(labels[history::HASH_LABEL], "web-abc");
        assert_eq!(labels["app"], "web");
        let pod_spec = p.spec.as_ref().unwrap();
        assert_eq!(pod_spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(pod_spec.subdomain.as_deref(), Some("nginx"));
        let volume = &pod_spec.volumes.as_ref().unwrap()[0];
        assert_eq!(
            volume.persistent_volume_claim.as_ref().unwrap().claim_name,
            "www-web-2"
        );
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("StatefulSet", "u", Some(true))
        );
    }

    fn claimed_set(policy: Value) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"},
            "spec": {"serviceName": "nginx", "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}},
                "persistentVolumeClaimRetentionPolicy": policy,
                "volumeClaimTemplates": [
                    {"metadata": {"name": "www", "labels": {"tier": "data", "app": "other"}},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "1Gi"}}}},
                    {"metadata": {"name": "logs"}, "spec": {}}]}}))
        .unwrap()
    }

    fn existing_claim(name: &str, owners: Value, deleting: bool) -> Arc<PersistentVolumeClaim> {
        let mut claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "ownerReferences": owners,
                "resourceVersion": "7"}}))
        .unwrap();
        if deleting {
            claim.metadata.deletion_timestamp =
                Some(gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        }
        Arc::new(claim)
    }

    fn set_ref() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "set-uid",
            "controller": true, "blockOwnerDeletion": true})
    }

    fn pod_ref(name: &str, uid: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true})
    }

    fn refs(value: Value) -> Vec<OwnerReference> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn claims_are_named_labelled_and_owned_as_the_policy_says() {
        let retain = claimed_set(json!({}));
        assert_eq!(retention(&retain), Retention::default());
        let claims = new_claims(&retain, 3);
        let names: Vec<_> = claims
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["www-web-3", "logs-web-3"]);
        let www = &claims[0];
        assert_eq!(www.metadata.namespace.as_deref(), Some("ns"));
        let labels = www.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["tier"], "data");
        assert_eq!(labels["app"], "web", "the selector's labels win");
        assert_eq!(claims[1].metadata.labels.as_ref().unwrap()["app"], "web");
        assert!(www.metadata.owner_references.is_none(), "Retain: no owner");
        assert_eq!(
            www.spec.as_ref().unwrap().access_modes.as_deref(),
            Some(&["ReadWriteOnce".to_owned()][..])
        );
        // The pod's volumes name the same claims.
        let pod = new_pod(&retain, &retain.spec.as_ref().unwrap().template, 3, "r");
        let volumes = pod.spec.unwrap().volumes.unwrap();
        let claimed: Vec<_> = volumes
            .iter()
            .map(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .unwrap()
                    .claim_name
                    .clone()
            })
            .collect();
        assert_eq!(claimed, names);

        let with_set = claimed_set(json!({"whenDeleted": "Delete"}));
        assert_eq!(
            retention(&with_set),
            Retention {
                with_set: true,
                when_scaled: false
            }
        );
        let owners = new_claims(&with_set, 0)[0]
            .metadata
            .owner_references
            .clone();
        assert_eq!(owners, Some(refs(json!([set_ref()]))));
        assert!(
            new_claims(&claimed_set(json!({"whenScaled": "Delete"})), 0)[0]
                .metadata
                .owner_references
                .is_none()
        );

        assert!(is_claim_of(&retain, "www-web-0"));
        assert!(is_claim_of(&retain, "logs-web-12"));
        assert!(!is_claim_of(&retain, "www-web-"));
        assert!(!is_claim_of(&retain, "www-webx-0"));
        assert!(!is_claim_of(&retain, "data-web-0"));
        assert!(!is_claim_of(&retain, "www-web-0-1"));
    }

    #[test]
    fn a_pod_waits_for_claims_being_deleted_or_stale_and_reuses_the_others() {
        let set = claimed_set(json!({}));
        let none = |_: &str| None;
        let made = claims_to_create(&set, 0, "web-0", none).unwrap();
        assert_eq!(made.len(), 2, "both claims are made");
        // A retained claim is reused: only the other one is made.
        let kept = existing_claim("www-web-0", json!([]), false);
        let one = |n: &str| (n == "www-web-0").then(|| kept.clone());
        let made = claims_to_create(&set, 0, "web-0", one).unwrap();
        assert_eq!(made[0].metadata.name.as_deref(), Some("logs-web-0"));
        assert_eq!(made.len(), 1);
        // Being deleted: the pod waits.
        let going = existing_claim("www-web-0", json!([]), true);
        let deleting = |n: &str| (n == "www-web-0").then(|| going.clone());
        assert_eq!(
            claims_to_create(&set, 0, "web-0", deleting).unwrap_err(),
            Blocked::Deleting("www-web-0".into())
        );
        // Owned by the pod that was scaled away: stale when claims go with scaled-down pods.
        let owned = existing_claim("logs-web-1", json!([pod_ref("web-1", "old")]), false);
        let stale = |n: &str| (n == "logs-web-1").then(|| owned.clone());
        let scaled = claimed_set(json!({"whenScaled": "Delete"}));
        assert_eq!(
            claims_to_create(&scaled, 1, "web-1", stale).unwrap_err(),
            Blocked::Stale("logs-web-1".into())
        );
        assert_eq!(claims_to_create(&set, 1, "web-1", stale).unwrap().len(), 1);
    }

    #[test]
    fn claim_owners_follow_the_retention_policy() {
        let web1 = pod("web-1", "r", ready());
        let none = existing_claim("www-web-1", json!([]), false);
        let by_set = existing_claim("www-web-1", json!([set_ref()]), false);
        let by_pod = existing_claim("www-web-1", json!([pod_ref("web-1", "web-1")]), false);
        let check = |policy: Value, claim: &PersistentVolumeClaim, in_range: bool| {
            claim_owners(claim, &claimed_set(policy), &web1, in_range)
        };
        // Retain: no owner, in range or not.
        assert_eq!(check(json!({}), &none, false), None);
        assert_eq!(check(json!({}), &by_set, true), Some(vec![]));
        assert_eq!(check(json!({}), &by_pod, false), Some(vec![]));
        // whenDeleted: the set, always.
        let deleted = json!({"whenDeleted": "Delete"});
        assert_eq!(check(deleted.clone(), &by_set, false), None);
        assert_eq!(
            check(deleted.clone(), &none, true),
            Some(refs(json!([set_ref()])))
        );
        assert_eq!(
            check(deleted, &by_pod, true),
            Some(refs(json!([set_ref()])))
        );
        // whenScaled: the pod once scaled away, nobody in range.
        let scaled = json!({"whenScaled": "Delete"});
        assert_eq!(check(scaled.clone(), &none, true), None);
        assert_eq!(
            check(scaled.clone(), &none, false),
            Some(refs(json!([pod_ref("web-1", "web-1")])))
        );
        assert_eq!(
            check(scaled, &by_pod, true),
            Some(vec![]),
            "scaled up again"
        );
        // Both: the set in range, the pod (only) once scaled away.
        let both = json!({"whenDeleted": "Delete", "whenScaled": "Delete"});
        assert_eq!(check(both.clone(), &by_set, true), None);
        assert_eq!(
            check(both.clone(), &by_set, false),
            Some(refs(json!([pod_ref("web-1", "web-1")])))
        );
        // References to an earlier set or pod of the same name: not ours to change.
        let earlier = existing_claim("www-web-1", json!([pod_ref("web-1", "gone")]), false);
        assert_eq!(check(both.clone(), &earlier, true), None);
        // Another controller: ours go, none are added; other owners stay.
        let other = json!({"apiVersion": "x/v1", "kind": "X", "name": "x", "uid": "x",
            "controller": true});
        let foreign = existing_claim("www-web-1", json!([other.clone()]), false);
        assert_eq!(check(both.clone(), &foreign, true), None);
        let mixed = existing_claim("www-web-1", json!([other.clone(), set_ref()]), false);
        assert_eq!(
            check(both.clone(), &mixed, true),
            Some(refs(json!([other])))
        );
        // A reference that does not control is made a controller's.
        let mut loose = set_ref();
        loose["controller"] = json!(false);
        let loose = existing_claim("www-web-1", json!([loose]), false);
        assert_eq!(check(both, &loose, true), Some(refs(json!([set_ref()]))));
    }

    #[test]
    fn existing_pods_get_their_claims_owned_and_missing_ones_made_when_pending() {
        let set = claimed_set(json!({"whenScaled": "Delete"}));
        let p = params(1);
        let web0 = Arc::new(pod("web-0", "web-a", pending()));
        let web1 = Arc::new(pod("web-1", "web-a", ready()));
        let www0 = existing_claim("www-web-0", json!([]), false);
        let www1 = existing_claim("www-web-1", json!([]), false);
        let logs1 = existing_claim("logs-web-1", json!([pod_ref("web-1", "web-1")]), false);
        let lookup = |n: &str| match n {
            "www-web-0" => Some(www0.clone()),
            "www-web-1" => Some(www1.clone()),
            "logs-web-1" => Some(logs1.clone()),
            _ => None,
        };
        let (owners, missing) = claim_writes(&set, &p, &[web0, web1], lookup);
        // web-1 is scaled away: its claim without an owner gets the pod; the other has it already.
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].name, "www-web-1");
        assert_eq!(owners[0].refs, refs(json!([pod_ref("web-1", "web-1")])));
        assert_eq!(owners[0].resource_version.as_deref(), Some("7"));
        // web-0 is Pending without its logs claim: it is made.
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].0, "web-0");
        assert_eq!(missing[0].1.metadata.name.as_deref(), Some("logs-web-0"));
        // Without templates nothing is looked at.
        let plain: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u"},
            "spec": {"selector": {}, "template": {}}}))
        .unwrap();
        let web0 = Arc::new(pod("web-0", "web-a", pending()));
        let (owners, missing) = claim_writes(&plain, &p, &[web0], |_: &str| None);
        assert!(owners.is_empty() && missing.is_empty());
    }
}

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
//! ControllerRevisions indexed by their controller's uid, orphans by namespace), a
//! [`WorkQueue`](crate::queue::WorkQueue) of `namespace/name` keys and
//! [`Expectations`](crate::expectations::Expectations); writes run in tasks of their own.
//!
//! Not yet: `volumeClaimTemplates` get their pod volumes (`<claim>-<set>-<ordinal>`, as upstream) but no
//! PersistentVolumeClaims are created, and `persistentVolumeClaimRetentionPolicy` is ignored (a later volumes
//! issue); `maxUnavailable` of the rolling update (alpha upstream) is ignored.
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
    PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
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
    api_message, controller_ref, count, involved, is_conflict, is_not_found, key, matches,
    namespace_of, nonempty_selector,
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
                    claim_name: format!("{claim}-{name}"),
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

/// What one sync writes.
#[derive(Debug)]
enum Step {
    Prepare(Prepare),
    Manage {
        create: Vec<Pod>,
        delete: Vec<(Arc<Pod>, Why)>,
        relabel: Vec<Arc<Pod>>,
        prune: Vec<String>,
        status: Option<Value>,
    },
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
            core: Core::default(),
            done_tx,
        }
    }

    fn can_sync(&self) -> bool {
        self.sets.relist.synced
            && self.pods.relist.synced
            && self.revisions.relist.synced
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
        let create: Vec<Pod> = decision
            .create
            .iter()
            .map(|(ordinal, template)| match template {
                Template::Current => new_pod(&set, &current_template, *ordinal, &current_name),
                Template::Update => new_pod(&set, &spec.template, *ordinal, &update_name),
            })
            .collect();
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
        if create.is_empty()
            && delete.is_empty()
            && relabel.is_empty()
            && prune.is_empty()
            && status.is_none()
        {
            return None;
        }
        work(Step::Manage {
            create,
            delete,
            relabel,
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
                create,
                delete,
                relabel,
                prune,
                status,
            } => {
                let mut failed = false;
                // Creates in slow-start batches (1, 2, 4, …), stopping at a failure.
                let mut queue = create.into_iter();
                let mut batch = 1;
                loop {
                    let now: Vec<Pod> = queue.by_ref().take(batch).collect();
                    if now.is_empty() {
                        break;
                    }
                    let params = PostParams::default();
                    let results = join_all(now.iter().map(|pod| pods.create(&params, pod))).await;
                    let mut batch_failed = false;
                    for (pod, result) in now.iter().zip(results) {
                        let pod_name = pod.metadata.name.clone().unwrap_or_default();
                        match result {
                            Ok(_) => events.record(Event {
                                object: involved.clone(),
                                warning: false,
                                reason: "SuccessfulCreate",
                                message: format!(
                                    "create Pod {pod_name} in StatefulSet {set_name} successful"
                                ),
                            }),
                            Err(e) => {
                                done.uncreated += 1;
                                batch_failed = true;
                                // Already there: the watch will show it; not a failure of the set.
                                if !is_conflict(&e) {
                                    events.record(Event {
                                        object: involved.clone(),
                                        warning: true,
                                        reason: "FailedCreate",
                                        message: format!(
                                            "create Pod {pod_name} in StatefulSet {set_name} failed error: {}",
                                            api_message(&e)
                                        ),
                                    });
                                }
                            }
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
}

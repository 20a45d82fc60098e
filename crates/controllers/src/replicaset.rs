//! The ReplicaSet controller, with upstream's semantics: keeps `spec.replicas` active pods (owned through a
//! controller ownerReference, matching the selector, not terminating, not finished) for each ReplicaSet,
//! adopts orphan pods its selector matches and releases owned pods it no longer matches, and writes its
//! status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas with minReadySeconds,
//! observedGeneration, the ReplicaFailure condition) through the status subresource when it changes.
//!
//! One task owns the state: the ReplicaSets and pods the watches show, a [`WorkQueue`] of ReplicaSet keys
//! (`namespace/name`) and the [`Expectations`]. A ReplicaSet is queued whenever it or one of its pods (or an
//! orphan its selector matches) changes; each key taken off the queue is compared with its pods at once, and
//! what must be written (adoptions, creates in slow-start batches, deletes, the status) is written by a task
//! of its own, at most [`SYNCS_IN_FLIGHT`] at a time and never two for one ReplicaSet. After it issues creates
//! or deletes, a ReplicaSet is not managed again until the watch has shown them (or the expectations
//! expire), so a burst of events never creates duplicates. Nothing is kept outside the API: a restarted
//! server lists everything again and converges.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use gantry_client::k8s_openapi::api::apps::v1::ReplicaSet;
use gantry_client::k8s_openapi::api::core::v1::Pod;
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use gantry_client::k8s_openapi::jiff::Timestamp;
use gantry_client::kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::{
    api_message, controller_ref, count, involved, is_not_found, key, matches, name_of,
    namespace_of, nonempty_selector, selector_of,
};
use crate::cache::watch_all;
use crate::claims::{adopted, can_adopt, released, write_owners};
use crate::expectations::Expectations;
use crate::pods;
use crate::queue::{Backoff, WorkQueue};
use gantry_client::events::{self, Event, Involved, Recorder};

/// The controller's name: the events' source.
pub const COMPONENT: &str = "replicaset-controller";
/// The most creates or deletes one sync issues (upstream's `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// ReplicaSets being written for at once.
pub const SYNCS_IN_FLIGHT: usize = 16;

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut set_events = watch_all::<ReplicaSet>(&client);
    let mut pod_events = watch_all::<Pod>(&client);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut controller = Controller::new(client, done_tx);
    loop {
        let can_sync = controller.can_sync();
        let wakeup = controller
            .queue
            .next_wakeup()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => controller.done(done),
            Some(event) = set_events.next() => match event {
                Ok(event) => controller.set_event(event),
                Err(e) => tracing::warn!("replicaset controller: watching replicasets: {e}"),
            },
            Some(event) = pod_events.next() => match event {
                Ok(event) => controller.pod_event(event),
                Err(e) => tracing::warn!("replicaset controller: watching pods: {e}"),
            },
            () = tokio::time::sleep_until(wakeup) => controller.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_sync => controller.sync_next(Instant::now()),
        }
    }
}

/// What a sync task reports when it is over.
#[derive(Debug)]
struct Done {
    key: String,
    /// Creations issued that the watch will not show (failed or skipped).
    uncreated: usize,
    /// Pods whose deletion failed.
    undeleted: Vec<String>,
    /// Whether creates or deletes were issued, and what failed of them.
    managed: bool,
    failure: Option<(&'static str, String)>,
    /// Look at the ReplicaSet again now (adoptions written), or after a back-off (a write failed).
    again: bool,
    retry: bool,
}

/// What one sync writes.
#[derive(Debug)]
struct Work {
    key: String,
    set: Arc<ReplicaSet>,
    adopt: Vec<Arc<Pod>>,
    release: Vec<Arc<Pod>>,
    manage: Option<Manage>,
    status: Option<Value>,
}

#[derive(Debug)]
enum Manage {
    Create(usize),
    Delete(Vec<Arc<Pod>>),
}

/// The controller's state (owned by the one task of [`run`]).
struct Controller {
    client: Client,
    events: Recorder,
    sets: HashMap<String, Arc<ReplicaSet>>,
    /// Pods by namespace, then uid.
    pods: HashMap<String, HashMap<String, Arc<Pod>>>,
    expectations: Expectations,
    /// The last manage error of each ReplicaSet (its ReplicaFailure condition).
    failures: HashMap<String, (&'static str, String)>,
    /// Failed syncs in a row, by key.
    backoff: Backoff<String>,
    queue: WorkQueue<String>,
    sets_listed: Option<HashSet<String>>,
    pods_listed: Option<HashSet<String>>,
    sets_synced: bool,
    pods_synced: bool,
    done_tx: mpsc::UnboundedSender<Done>,
}

impl Controller {
    fn new(client: Client, done_tx: mpsc::UnboundedSender<Done>) -> Controller {
        Controller {
            events: Recorder::start(client.clone(), COMPONENT),
            client,
            sets: HashMap::new(),
            pods: HashMap::new(),
            expectations: Expectations::default(),
            failures: HashMap::new(),
            backoff: Backoff::default(),
            queue: WorkQueue::default(),
            sets_listed: None,
            pods_listed: None,
            sets_synced: false,
            pods_synced: false,
            done_tx,
        }
    }

    /// Both watches have listed once, a key is waiting and a sync slot is free.
    fn can_sync(&self) -> bool {
        self.sets_synced
            && self.pods_synced
            && !self.queue.is_empty()
            && self.queue.active() < SYNCS_IN_FLIGHT
    }

    fn set_event(&mut self, event: watcher::Event<ReplicaSet>) {
        match event {
            watcher::Event::Init => self.sets_listed = Some(HashSet::new()),
            watcher::Event::InitApply(set) => {
                let k = key(
                    namespace_of(&set.metadata),
                    set.metadata.name.as_deref().unwrap_or_default(),
                );
                if let Some(listed) = &mut self.sets_listed {
                    listed.insert(k);
                }
                self.set_seen(set);
            }
            watcher::Event::Apply(set) => self.set_seen(set),
            watcher::Event::Delete(set) => {
                let k = key(
                    namespace_of(&set.metadata),
                    set.metadata.name.as_deref().unwrap_or_default(),
                );
                self.set_gone(&k);
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.sets_listed.take() {
                    let gone: Vec<String> = self
                        .sets
                        .keys()
                        .filter(|k| !listed.contains(*k))
                        .cloned()
                        .collect();
                    for k in gone {
                        self.set_gone(&k);
                    }
                }
                self.sets_synced = true;
            }
        }
    }

    fn set_seen(&mut self, set: ReplicaSet) {
        let Some(name) = set.metadata.name.as_deref() else {
            return;
        };
        let k = key(namespace_of(&set.metadata), name);
        self.sets.insert(k.clone(), Arc::new(set));
        self.queue.add(k);
    }

    fn set_gone(&mut self, k: &str) {
        self.sets.remove(k);
        self.expectations.forget(k);
        self.failures.remove(k);
        self.backoff.reset(k);
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
                    self.pod_gone(namespace_of(&pod.metadata), uid);
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.pods_listed.take() {
                    let gone: Vec<(String, String)> = self
                        .pods
                        .iter()
                        .flat_map(|(ns, pods)| {
                            pods.keys().map(move |uid| (ns.clone(), uid.clone()))
                        })
                        .filter(|(_, uid)| !listed.contains(uid))
                        .collect();
                    for (ns, uid) in gone {
                        self.pod_gone(&ns, &uid);
                    }
                }
                self.pods_synced = true;
            }
        }
    }

    /// The key of the ReplicaSet controlling `pod`, unless the cached ReplicaSet of that name is another.
    fn owner_key(&self, pod: &Pod) -> Option<String> {
        let owner = pods::controller_of(&pod.metadata)?;
        if owner.kind != "ReplicaSet" || !owner.api_version.starts_with("apps/") {
            return None;
        }
        let k = key(namespace_of(&pod.metadata), &owner.name);
        match self.sets.get(&k) {
            Some(set) if set.metadata.uid.as_deref() != Some(owner.uid.as_str()) => None,
            _ => Some(k),
        }
    }

    /// Queues the ReplicaSets of the pod's namespace whose selectors match it (for an orphan).
    fn queue_matching(&mut self, pod: &Pod) {
        let ns = namespace_of(&pod.metadata);
        let labels = pod.metadata.labels.as_ref();
        let matching: Vec<String> = self
            .sets
            .iter()
            .filter(|(_, s)| namespace_of(&s.metadata) == ns)
            .filter(|(_, s)| {
                s.spec.as_ref().is_some_and(|spec| {
                    nonempty_selector(&spec.selector).is_some_and(|sel| matches(&sel, labels))
                })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in matching {
            self.queue.add(k);
        }
    }

    fn pod_seen(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let ns = namespace_of(&pod.metadata).to_owned();
        let pod = Arc::new(pod);
        let old = self
            .pods
            .entry(ns)
            .or_default()
            .insert(uid.clone(), pod.clone());
        let owner = self.owner_key(&pod);
        if let Some(k) = &owner {
            let newly_deleting = pod.metadata.deletion_timestamp.is_some()
                && old
                    .as_ref()
                    .is_none_or(|o| o.metadata.deletion_timestamp.is_none());
            if old.is_none() {
                self.expectations.creations_observed(k, 1);
            }
            if newly_deleting {
                self.expectations.deletion_observed(k, &uid);
            }
            self.queue.add(k.clone());
        }
        if let Some(old) = &old
            && let Some(old_owner) = self.owner_key(old)
            && owner.as_ref() != Some(&old_owner)
        {
            self.queue.add(old_owner);
        }
        let labels_changed = old
            .as_ref()
            .is_none_or(|o| o.metadata.labels != pod.metadata.labels);
        if owner.is_none()
            && pods::controller_of(&pod.metadata).is_none()
            && (labels_changed || old.is_some_and(|o| pods::controller_of(&o.metadata).is_some()))
        {
            self.queue_matching(&pod);
        }
    }

    fn pod_gone(&mut self, ns: &str, uid: &str) {
        let Some(pod) = self.pods.get_mut(ns).and_then(|p| p.remove(uid)) else {
            return;
        };
        if self.pods.get(ns).is_some_and(HashMap::is_empty) {
            self.pods.remove(ns);
        }
        if let Some(k) = self.owner_key(&pod) {
            self.expectations.deletion_observed(&k, uid);
            self.queue.add(k);
        }
    }

    fn sync_next(&mut self, now: Instant) {
        let Some(k) = self.queue.pop() else { return };
        let work = match self.sets.get(&k).cloned() {
            Some(set) => self.plan(&k, set, now),
            None => {
                self.set_gone(&k);
                None
            }
        };
        let Some(work) = work else {
            self.queue.done(&k);
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

    /// Compares the ReplicaSet with its pods: what to write, if anything.
    fn plan(&mut self, k: &str, set: Arc<ReplicaSet>, now: Instant) -> Option<Work> {
        let spec = set.spec.as_ref()?;
        let uid = set.metadata.uid.as_deref()?;
        let selector = match selector_of(&spec.selector) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(replicaset = %k, "invalid selector: {e}");
                return None;
            }
        };
        let deleting = set.metadata.deletion_timestamp.is_some();
        let (mut owned, mut adopt, mut release) = (Vec::new(), Vec::new(), Vec::new());
        let in_namespace = self.pods.get(namespace_of(&set.metadata));
        for pod in in_namespace
            .into_iter()
            .flat_map(HashMap::values)
            .filter(|p| pods::is_active(p))
        {
            let matches = matches(&selector, pod.metadata.labels.as_ref());
            match pods::controller_of(&pod.metadata) {
                Some(owner) if owner.uid == uid => {
                    if matches {
                        owned.push(pod.clone());
                    } else if !deleting {
                        release.push(pod.clone());
                    }
                }
                Some(_) => {}
                None if matches && !deleting => adopt.push(pod.clone()),
                None => {}
            }
        }
        if !adopt.is_empty() || !release.is_empty() {
            // Claimed first; the watch then shows them owned (or not) and the ReplicaSet is looked at again.
            return Some(Work {
                key: k.to_owned(),
                set,
                adopt,
                release,
                manage: None,
                status: None,
            });
        }
        let manage = if !deleting && self.expectations.satisfied(k, now) {
            let replicas = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
            if owned.len() < replicas {
                let n = (replicas - owned.len()).min(BURST_REPLICAS);
                self.expectations.expect(k, n, Vec::new(), now);
                Some(Manage::Create(n))
            } else if owned.len() > replicas {
                let n = (owned.len() - replicas).min(BURST_REPLICAS);
                let candidates: Vec<&Pod> = owned.iter().map(AsRef::as_ref).collect();
                let doomed = pods::to_delete(&candidates, &candidates, n, Timestamp::now());
                let doomed: Vec<Arc<Pod>> = owned
                    .iter()
                    .filter(|p| doomed.iter().any(|d| std::ptr::eq(*d, p.as_ref())))
                    .cloned()
                    .collect();
                let uids = doomed
                    .iter()
                    .filter_map(|p| p.metadata.uid.clone())
                    .collect();
                self.expectations.expect(k, 0, uids, now);
                Some(Manage::Delete(doomed))
            } else {
                None
            }
        } else {
            None
        };
        if let Some(expires) = self.expectations.expires(k) {
            self.queue.add_after(
                k.to_owned(),
                expires.saturating_duration_since(now) + Duration::from_secs(1),
                now,
            );
        }
        let owned: Vec<&Pod> = owned.iter().map(AsRef::as_ref).collect();
        let wall = Timestamp::now();
        let (status, available_in) = status(&set, &owned, self.failures.get(k), wall);
        if let Some(wait) = available_in {
            self.queue
                .add_after(k.to_owned(), wait + Duration::from_millis(100), now);
        }
        let status = (!status_is_current(&set, &status)).then(|| status_patch(&status));
        if manage.is_none() && status.is_none() {
            return None;
        }
        Some(Work {
            key: k.to_owned(),
            set,
            adopt: Vec::new(),
            release: Vec::new(),
            manage,
            status,
        })
    }

    fn done(&mut self, done: Done) {
        let k = done.key;
        self.expectations.creations_observed(&k, done.uncreated);
        for uid in &done.undeleted {
            self.expectations.deletion_observed(&k, uid);
        }
        let mut again = done.again;
        let mut retry = done.retry;
        if done.managed {
            match done.failure {
                Some(failure) => {
                    retry = true;
                    again |= self.failures.get(&k) != Some(&failure) && self.sets.contains_key(&k);
                    if self.sets.contains_key(&k) {
                        self.failures.insert(k.clone(), failure);
                    }
                }
                None => again |= self.failures.remove(&k).is_some(),
            }
        }
        self.queue.done(&k);
        if retry {
            let delay = self.backoff.failed(&k);
            self.queue.add_after(k.clone(), delay, Instant::now());
        } else {
            self.backoff.reset(&k);
        }
        if again {
            self.queue.add(k);
        }
    }
}

/// The ReplicaSet's status as its pods make it, and when the next ready pod becomes available.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Status {
    replicas: i32,
    fully_labeled: i32,
    ready: i32,
    available: i32,
    observed_generation: Option<i64>,
    conditions: Vec<Value>,
}

fn status(
    set: &ReplicaSet,
    owned: &[&Pod],
    failure: Option<&(&'static str, String)>,
    now: Timestamp,
) -> (Status, Option<Duration>) {
    let spec = set.spec.as_ref();
    let min_ready = Duration::from_secs(
        spec.and_then(|s| s.min_ready_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0),
    );
    let template_labels: BTreeMap<String, String> = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = owned
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            template_labels
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .count();
    let ready: Vec<&&Pod> = owned.iter().filter(|p| pods::is_ready(p)).collect();
    let available = ready
        .iter()
        .filter(|p| pods::is_available(p, min_ready, now))
        .count();
    // When the first ready pod not yet available will be.
    let available_in = ready
        .iter()
        .filter(|p| !pods::is_available(p, min_ready, now))
        .filter_map(|p| pods::ready_since(p).flatten())
        .filter_map(|since| since.checked_add(min_ready).ok())
        .map(|at| {
            Duration::from_nanos(
                u64::try_from(at.as_nanosecond() - now.as_nanosecond()).unwrap_or(0),
            )
        })
        .min();
    let current: Vec<Value> = set
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    let had_failure = current.iter().any(|c| c["type"] == "ReplicaFailure");
    let conditions = match failure {
        Some(_) if had_failure => current,
        Some((reason, message)) => {
            let mut conditions = current;
            conditions.push(
                json!({"type": "ReplicaFailure", "status": "True", "reason": reason,
                "message": message, "lastTransitionTime": events::now()}),
            );
            conditions
        }
        None => current
            .into_iter()
            .filter(|c| c["type"] != "ReplicaFailure")
            .collect(),
    };
    let status = Status {
        replicas: count(owned.len()),
        fully_labeled: count(fully_labeled),
        ready: count(ready.len()),
        available: count(available),
        observed_generation: set.metadata.generation,
        conditions,
    };
    (status, available_in)
}

fn status_is_current(set: &ReplicaSet, status: &Status) -> bool {
    let Some(current) = &set.status else {
        return false;
    };
    let conditions: Vec<Value> = current
        .conditions
        .iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    current.replicas == status.replicas
        && current.fully_labeled_replicas.unwrap_or(0) == status.fully_labeled
        && current.ready_replicas.unwrap_or(0) == status.ready
        && current.available_replicas.unwrap_or(0) == status.available
        && current.observed_generation == status.observed_generation
        && conditions == status.conditions
}

/// The merge patch of the status subresource (counts of 0 left out, as upstream's omitempty does).
fn status_patch(status: &Status) -> Value {
    let optional = |n: i32| if n == 0 { Value::Null } else { json!(n) };
    json!({"status": {
        "replicas": status.replicas,
        "fullyLabeledReplicas": optional(status.fully_labeled),
        "readyReplicas": optional(status.ready),
        "availableReplicas": optional(status.available),
        "observedGeneration": status.observed_generation,
        "conditions": if status.conditions.is_empty() { Value::Null } else { json!(status.conditions) },
    }})
}

/// A new pod from the ReplicaSet's template (upstream's `GetPodFromTemplate`).
pub fn pod_from_template(set: &ReplicaSet) -> Result<Pod, String> {
    let template = set
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .ok_or("the ReplicaSet has no pod template")?;
    let meta = template.metadata.clone().unwrap_or_default();
    if meta.labels.as_ref().is_none_or(BTreeMap::is_empty) {
        return Err("unable to create pods, no labels".into());
    }
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                set.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: set.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(set)]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    })
}

impl Work {
    async fn run(self, client: Client, events: Recorder) -> Done {
        let set = &self.set;
        let ns = namespace_of(&set.metadata).to_owned();
        let name = set.metadata.name.clone().unwrap_or_default();
        let involved = involved(&**set);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
        let mut done = Done {
            key: self.key.clone(),
            uncreated: 0,
            undeleted: Vec::new(),
            managed: false,
            failure: None,
            again: false,
            retry: false,
        };
        if !self.adopt.is_empty() || !self.release.is_empty() {
            done.again = true;
            done.retry = !claim(&sets, &pods, set, &self.adopt, &self.release).await;
            return done;
        }
        match self.manage {
            Some(Manage::Create(n)) => {
                done.managed = true;
                let (created, failure) = create(&pods, set, n, &events, &involved).await;
                done.uncreated = n - created;
                done.failure = failure.map(|m| ("FailedCreate", m));
            }
            Some(Manage::Delete(doomed)) => {
                done.managed = true;
                let deletes = doomed.iter().map(|pod| {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let pods = &pods;
                    async move { (pod, pods.delete(&name, &DeleteParams::default()).await) }
                });
                for (pod, result) in join_all(deletes).await {
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    match result {
                        Ok(_) => events.record(Event {
                            object: involved.clone(),
                            warning: false,
                            reason: "SuccessfulDelete",
                            message: format!("Deleted pod: {pod_name}"),
                        }),
                        Err(e) => {
                            done.undeleted.extend(pod.metadata.uid.clone());
                            if !is_not_found(&e) {
                                let message = api_message(&e);
                                events.record(Event {
                                    object: involved.clone(),
                                    warning: true,
                                    reason: "FailedDelete",
                                    message: format!("Error deleting: {message}"),
                                });
                                done.failure = Some(("FailedDelete", message));
                            }
                        }
                    }
                }
            }
            None => {}
        }
        if let Some(status) = &self.status {
            let written = sets
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await;
            match written {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    tracing::debug!(replicaset = %self.key, "cannot write the status: {e}");
                    done.retry = true;
                }
            }
        }
        done
    }
}

/// Creates `n` pods in slow-start batches (1, 2, 4, …), stopping at the first batch with a failure (as
/// upstream's `slowStartBatch`, so a bad template fails fast); how many were created, and the first error.
async fn create(
    pods: &Api<Pod>,
    set: &ReplicaSet,
    n: usize,
    events: &Recorder,
    involved: &Involved,
) -> (usize, Option<String>) {
    let pod = match pod_from_template(set) {
        Ok(pod) => pod,
        Err(message) => {
            events.record(Event {
                object: involved.clone(),
                warning: true,
                reason: "FailedCreate",
                message: format!("Error creating: {message}"),
            });
            return (0, Some(message));
        }
    };
    let params = PostParams::default();
    let (mut created, mut remaining, mut batch) = (0, n, n.min(1));
    while batch > 0 {
        let results = join_all((0..batch).map(|_| pods.create(&params, &pod))).await;
        let mut failure = None;
        for result in results {
            match result {
                Ok(pod) => {
                    created += 1;
                    events.record(Event {
                        object: involved.clone(),
                        warning: false,
                        reason: "SuccessfulCreate",
                        message: format!("Created pod: {}", pod.metadata.name.unwrap_or_default()),
                    });
                }
                Err(e) => {
                    let message = api_message(&e);
                    events.record(Event {
                        object: involved.clone(),
                        warning: true,
                        reason: "FailedCreate",
                        message: format!("Error creating: {message}"),
                    });
                    failure.get_or_insert(message);
                }
            }
        }
        if failure.is_some() {
            return (created, failure);
        }
        remaining -= batch;
        batch = (2 * batch).min(remaining);
    }
    (created, None)
}

/// Adopts the orphans (after checking that the ReplicaSet may still adopt: [`can_adopt`]) and releases the
/// pods it no longer selects; whether all went well.
async fn claim(
    sets: &Api<ReplicaSet>,
    pods: &Api<Pod>,
    set: &ReplicaSet,
    adopt: &[Arc<Pod>],
    release: &[Arc<Pod>],
) -> bool {
    let mut ok = true;
    let mut writes = Vec::new();
    if !adopt.is_empty() {
        match can_adopt(sets, set).await {
            Ok(true) => {
                let owner = controller_ref(set);
                writes.extend(
                    adopt
                        .iter()
                        .map(|pod| (pod, adopted(&pod.metadata, &owner))),
                );
            }
            Ok(false) => {}
            Err(e) => {
                let name = name_of(&set.metadata);
                tracing::debug!(replicaset = %name, "cannot read the replicaset before adopting: {e}");
                ok = false;
            }
        }
    }
    let uid = set.metadata.uid.as_deref().unwrap_or_default();
    writes.extend(
        release
            .iter()
            .map(|pod| (pod, released(&pod.metadata, uid))),
    );
    write_owners(pods, writes).await && ok
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn set(value: Value) -> ReplicaSet {
        serde_json::from_value(value).unwrap()
    }

    fn web() -> ReplicaSet {
        set(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "rs-uid", "generation": 2},
            "spec": {"replicas": 2, "minReadySeconds": 10,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "x"}, "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        }))
    }

    fn pod(name: &str, labels: Value, status: Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": name, "uid": name, "labels": labels},
            "status": status}),
        )
        .unwrap()
    }

    #[test]
    fn pods_come_from_the_template_owned_by_the_replicaset() {
        let pod = pod_from_template(&web()).unwrap();
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(pod.metadata.labels.as_ref().unwrap()["tier"], "x");
        assert_eq!(pod.metadata.annotations.as_ref().unwrap()["a"], "b");
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ReplicaSet", "rs-uid")
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(pod.spec.unwrap().containers[0].image.as_deref(), Some("i"));
        let unlabelled = set(json!({"metadata": {"name": "x"}, "spec": {"selector": {},
            "template": {"spec": {"containers": []}}}}));
        assert_eq!(
            pod_from_template(&unlabelled).err().as_deref(),
            Some("unable to create pods, no labels")
        );
    }

    #[test]
    fn status_counts_labelled_ready_and_available_pods() {
        let now: Timestamp = "2025-01-01T00:01:00Z".parse().unwrap();
        let ready = |at: &str| {
            json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": at}]})
        };
        let full = json!({"app": "web", "tier": "x"});
        let a = pod("a", full.clone(), ready("2025-01-01T00:00:00Z"));
        let b = pod("b", full, ready("2025-01-01T00:00:55Z"));
        let c = pod("c", json!({"app": "web"}), json!({"phase": "Pending"}));
        let rs = web();
        let (s, available_in) = status(&rs, &[&a, &b, &c], None, now);
        assert_eq!(
            (s.replicas, s.fully_labeled, s.ready, s.available),
            (3, 2, 2, 1)
        );
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(
            available_in,
            Some(Duration::from_secs(5)),
            "b is ready for 10 s at 00:01:05"
        );
        assert!(!status_is_current(&rs, &s));
        let patch = status_patch(&s);
        assert_eq!(patch["status"]["availableReplicas"], 1);
        assert!(patch["status"]["conditions"].is_null());

        let failure = ("FailedCreate", "quota".to_owned());
        let (s, _) = status(&rs, &[], Some(&failure), now);
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(s.conditions[0]["reason"], "FailedCreate");
        let patch = status_patch(&s);
        assert!(patch["status"]["readyReplicas"].is_null(), "0 is left out");
        let mut rs = web();
        rs.status = serde_json::from_value(patch["status"].clone()).unwrap();
        assert!(status_is_current(&rs, &s));
        let (cleared, _) = status(&rs, &[], None, now);
        assert!(cleared.conditions.is_empty());
        assert!(!status_is_current(&rs, &cleared));
    }
}

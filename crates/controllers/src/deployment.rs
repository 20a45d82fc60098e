//! The Deployment controller, with upstream's semantics: each Deployment owns ReplicaSets, one per pod
//! template it has had; the one whose template equals the Deployment's is the new one (named
//! `<deployment>-<pod-template-hash>`, the hash label added to its selector and template), the others are old.
//! A rollout moves replicas from the old ReplicaSets to the new one by its strategy (RollingUpdate within
//! maxSurge and maxUnavailable, or Recreate: old ones to zero, their pods gone, then the new one);
//! a change of `spec.replicas` mid-rollout is spread proportionally over the active ReplicaSets. Revisions
//! (`deployment.kubernetes.io/revision` on the Deployment and its ReplicaSets, `revision-history` when a
//! rollback reuses an old ReplicaSet), the `desired-replicas`/`max-replicas` annotations, paused Deployments,
//! the Progressing (with its progress deadline) and Available conditions, the cleanup of old ReplicaSets
//! beyond `revisionHistoryLimit` and the status are those kubectl's `rollout` commands read.
//!
//! One task owns the state: the Deployments and ReplicaSets the watches show (ReplicaSets indexed by
//! their controlling Deployment, and orphans by namespace), and a [`WorkQueue`] of Deployment keys
//! (`namespace/name`). A Deployment is queued when it or one of its ReplicaSets (or an orphan its selector
//! matches) changes. Each sync is a task of its own (at most [`SYNCS_IN_FLIGHT`] at a time, never two for one
//! Deployment) that works on a snapshot: it reads the cache only, writes ReplicaSets with their
//! `resourceVersion` (a stale snapshot gets a conflict and the Deployment is synced again once the watch
//! caught up), creates the new ReplicaSet under its deterministic name (so a restarted controller, or one
//! whose cache lags, never makes two) and writes the Deployment's annotations and status last, only when
//! they changed. The ReplicaSet controller's status (its `availableReplicas` honour minReadySeconds) is
//! what the arithmetic reads; pods are only listed, for a Recreate rollout waiting for old pods to be gone.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gantry_api::labels::Selector;
use gantry_client::events::{Event, Involved, Recorder};
use gantry_client::k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use gantry_client::k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ObjectMeta, OwnerReference, Time,
};
use gantry_client::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use gantry_client::k8s_openapi::jiff::Timestamp;
use gantry_client::kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::{
    api_message, controller_ref, involved, is_conflict, is_not_found, key, name_of, namespace_of,
    nonempty_selector, selector_of,
};
use crate::cache::watch_all;
use crate::claims::{adopted, can_adopt, owners_patch, released};
use crate::hash::{FNV32_OFFSET, encode, fnv32a};
use crate::pods;
use crate::queue::{Backoff, WorkQueue};

/// The controller's name: the events' source.
pub const COMPONENT: &str = "deployment-controller";
/// Deployments being synced at once.
pub const SYNCS_IN_FLIGHT: usize = 16;
/// How often a Recreate rollout looks again whether the old pods are gone (pods are not watched).
const OLD_PODS_RECHECK: Duration = Duration::from_millis(500);

/// The label that tells the pods of one template from another's.
pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// The longest `revision-history` annotation (upstream's `maxRevHistoryLengthInChars`).
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Condition types and reasons (upstream's `deploymentutil` constants).
const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";
const REPLICA_FAILURE: &str = "ReplicaFailure";
const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const RS_UPDATED: &str = "ReplicaSetUpdated";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const PAUSED: &str = "DeploymentPaused";
const RESUMED: &str = "DeploymentResumed";
const RS_CREATE_ERROR: &str = "ReplicaSetCreateError";
const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut deployment_events = watch_all::<Deployment>(&client);
    let mut set_events = watch_all::<ReplicaSet>(&client);
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
            Some(event) = deployment_events.next() => match event {
                Ok(event) => controller.deployment_event(event),
                Err(e) => tracing::warn!("deployment controller: watching deployments: {e}"),
            },
            Some(event) = set_events.next() => match event {
                Ok(event) => controller.set_event(event),
                Err(e) => tracing::warn!("deployment controller: watching replicasets: {e}"),
            },
            () = tokio::time::sleep_until(wakeup) => controller.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_sync => controller.sync_next(),
        }
    }
}

/// What a sync task reports when it is over.
#[derive(Debug)]
struct Done {
    key: String,
    /// Look again after this long (a progress deadline, old pods still there).
    requeue: Option<Duration>,
    /// A write failed (or conflicted): try again after a back-off.
    failed: bool,
}

/// The controller's state (owned by the one task of [`run`]).
struct Controller {
    client: Client,
    events: Recorder,
    /// Deployments by namespace, then name.
    deployments: HashMap<String, HashMap<String, Arc<Deployment>>>,
    /// ReplicaSets by namespace, then name.
    sets: HashMap<String, HashMap<String, Arc<ReplicaSet>>>,
    /// The names of the ReplicaSets whose controller is a Deployment, by that Deployment's key.
    by_owner: HashMap<String, HashSet<String>>,
    /// The names of the ReplicaSets without a controller, by namespace.
    orphans: HashMap<String, HashSet<String>>,
    /// Failed syncs in a row, by key.
    backoff: Backoff<String>,
    /// When each key is queued for later (progress deadlines, Recreate's wait), so that the many syncs of
    /// one rollout do not each add the same wakeup.
    later: HashMap<String, Instant>,
    queue: WorkQueue<String>,
    deployments_listed: Option<HashSet<String>>,
    sets_listed: Option<HashSet<String>>,
    deployments_synced: bool,
    sets_synced: bool,
    done_tx: mpsc::UnboundedSender<Done>,
}

/// Where a ReplicaSet is indexed: under its controlling Deployment's key, as an orphan of its namespace, or
/// nowhere (controlled by something else).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Deployment(String),
    Orphan,
    Other,
}

fn owner_of(set: &ReplicaSet) -> Owner {
    match pods::controller_of(&set.metadata) {
        None => Owner::Orphan,
        Some(r) if r.kind == "Deployment" && r.api_version.starts_with("apps/") => {
            Owner::Deployment(key(namespace_of(&set.metadata), &r.name))
        }
        Some(_) => Owner::Other,
    }
}

impl Controller {
    fn new(client: Client, done_tx: mpsc::UnboundedSender<Done>) -> Controller {
        Controller {
            events: Recorder::start(client.clone(), COMPONENT),
            client,
            deployments: HashMap::new(),
            sets: HashMap::new(),
            by_owner: HashMap::new(),
            orphans: HashMap::new(),
            backoff: Backoff::default(),
            later: HashMap::new(),
            queue: WorkQueue::default(),
            deployments_listed: None,
            sets_listed: None,
            deployments_synced: false,
            sets_synced: false,
            done_tx,
        }
    }

    /// Both watches have listed once, a key is waiting and a sync slot is free.
    fn can_sync(&self) -> bool {
        self.deployments_synced
            && self.sets_synced
            && !self.queue.is_empty()
            && self.queue.active() < SYNCS_IN_FLIGHT
    }

    fn deployment_event(&mut self, event: watcher::Event<Deployment>) {
        match event {
            watcher::Event::Init => self.deployments_listed = Some(HashSet::new()),
            watcher::Event::InitApply(d) => {
                if let Some(listed) = &mut self.deployments_listed {
                    listed.insert(key(namespace_of(&d.metadata), name_of(&d.metadata)));
                }
                self.deployment_seen(d);
            }
            watcher::Event::Apply(d) => self.deployment_seen(d),
            watcher::Event::Delete(d) => {
                self.deployment_gone(namespace_of(&d.metadata), name_of(&d.metadata));
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.deployments_listed.take() {
                    let gone: Vec<(String, String)> = self
                        .deployments
                        .iter()
                        .flat_map(|(ns, ds)| ds.keys().map(move |n| (ns.clone(), n.clone())))
                        .filter(|(ns, n)| !listed.contains(&key(ns, n)))
                        .collect();
                    for (ns, n) in gone {
                        self.deployment_gone(&ns, &n);
                    }
                }
                self.deployments_synced = true;
            }
        }
    }

    fn deployment_seen(&mut self, d: Deployment) {
        let (ns, name) = (
            namespace_of(&d.metadata).to_owned(),
            name_of(&d.metadata).to_owned(),
        );
        if name.is_empty() {
            return;
        }
        self.queue.add(key(&ns, &name));
        self.deployments
            .entry(ns)
            .or_default()
            .insert(name, Arc::new(d));
    }

    fn deployment_gone(&mut self, ns: &str, name: &str) {
        if let Some(ds) = self.deployments.get_mut(ns) {
            ds.remove(name);
            if ds.is_empty() {
                self.deployments.remove(ns);
            }
        }
        self.backoff.reset(&key(ns, name));
        self.later.remove(&key(ns, name));
    }

    fn set_event(&mut self, event: watcher::Event<ReplicaSet>) {
        match event {
            watcher::Event::Init => self.sets_listed = Some(HashSet::new()),
            watcher::Event::InitApply(set) => {
                if let Some(listed) = &mut self.sets_listed {
                    listed.insert(key(namespace_of(&set.metadata), name_of(&set.metadata)));
                }
                self.set_seen(set);
            }
            watcher::Event::Apply(set) => self.set_seen(set),
            watcher::Event::Delete(set) => {
                self.set_gone(namespace_of(&set.metadata), name_of(&set.metadata));
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.sets_listed.take() {
                    let gone: Vec<(String, String)> = self
                        .sets
                        .iter()
                        .flat_map(|(ns, s)| s.keys().map(move |n| (ns.clone(), n.clone())))
                        .filter(|(ns, n)| !listed.contains(&key(ns, n)))
                        .collect();
                    for (ns, n) in gone {
                        self.set_gone(&ns, &n);
                    }
                }
                self.sets_synced = true;
            }
        }
    }

    /// Removes the ReplicaSet from the index its owner put it in.
    fn unindex(&mut self, set: &ReplicaSet) {
        let (ns, name) = (namespace_of(&set.metadata), name_of(&set.metadata));
        let (index, k) = match owner_of(set) {
            Owner::Deployment(k) => (&mut self.by_owner, k),
            Owner::Orphan => (&mut self.orphans, ns.to_owned()),
            Owner::Other => return,
        };
        if let Some(names) = index.get_mut(&k) {
            names.remove(name);
            if names.is_empty() {
                index.remove(&k);
            }
        }
    }

    fn set_seen(&mut self, set: ReplicaSet) {
        let (ns, name) = (
            namespace_of(&set.metadata).to_owned(),
            name_of(&set.metadata).to_owned(),
        );
        if name.is_empty() {
            return;
        }
        let old = self
            .sets
            .entry(ns.clone())
            .or_default()
            .insert(name.clone(), Arc::new(set.clone()));
        if let Some(old) = &old {
            self.unindex(old);
        }
        let owner = owner_of(&set);
        match &owner {
            Owner::Deployment(k) => {
                self.by_owner
                    .entry(k.clone())
                    .or_default()
                    .insert(name.clone());
                self.queue.add(k.clone());
            }
            Owner::Orphan => {
                self.orphans.entry(ns).or_default().insert(name);
                let changed = old.as_ref().is_none_or(|o| {
                    o.metadata.labels != set.metadata.labels || owner_of(o) != Owner::Orphan
                });
                if changed {
                    self.queue_matching(&set);
                }
            }
            Owner::Other => {}
        }
        if let Some(Owner::Deployment(k)) = old.as_deref().map(owner_of)
            && owner != Owner::Deployment(k.clone())
        {
            self.queue.add(k);
        }
    }

    fn set_gone(&mut self, ns: &str, name: &str) {
        let Some(set) = self.sets.get_mut(ns).and_then(|s| s.remove(name)) else {
            return;
        };
        if self.sets.get(ns).is_some_and(HashMap::is_empty) {
            self.sets.remove(ns);
        }
        self.unindex(&set);
        if let Owner::Deployment(k) = owner_of(&set) {
            self.queue.add(k);
        }
    }

    /// Queues the Deployments of the orphan's namespace whose selectors match it.
    fn queue_matching(&mut self, set: &ReplicaSet) {
        let labels = set.metadata.labels.clone().unwrap_or_default();
        let ns = namespace_of(&set.metadata);
        let matching: Vec<String> = self
            .deployments
            .get(ns)
            .into_iter()
            .flat_map(HashMap::values)
            .filter(|d| {
                d.spec.as_ref().is_some_and(|s| {
                    nonempty_selector(&s.selector).is_some_and(|sel| sel.matches(&labels))
                })
            })
            .map(|d| key(ns, name_of(&d.metadata)))
            .collect();
        for k in matching {
            self.queue.add(k);
        }
    }

    fn sync_next(&mut self) {
        let Some(k) = self.queue.pop() else { return };
        let (ns, name) = k.split_once('/').unwrap_or(("", &k));
        let Some(d) = self
            .deployments
            .get(ns)
            .and_then(|ds| ds.get(name))
            .cloned()
        else {
            self.queue.done(&k);
            return;
        };
        // Its own ReplicaSets (by name; the sync checks the uid) and the namespace's orphans.
        let in_namespace = self.sets.get(ns);
        let names = self
            .by_owner
            .get(&k)
            .into_iter()
            .flatten()
            .chain(self.orphans.get(ns).into_iter().flatten());
        let sets: Vec<Arc<ReplicaSet>> = names
            .filter_map(|n| in_namespace.and_then(|s| s.get(n)).cloned())
            .collect();
        let syncer = Syncer::new(&self.client, self.events.clone(), d, sets);
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let _ = done.send(syncer.run(k).await);
        });
    }

    fn done(&mut self, done: Done) {
        let k = done.key;
        self.queue.done(&k);
        let now = Instant::now();
        if done.failed {
            let delay = self.backoff.failed(&k);
            self.queue.add_after(k.clone(), delay, now);
        } else {
            self.backoff.reset(&k);
        }
        if let Some(after) = done.requeue {
            let at = now + after;
            let pending = self
                .later
                .get(&k)
                .is_some_and(|t| *t > now && *t <= at + Duration::from_secs(1));
            if !pending {
                self.later.insert(k.clone(), at);
                self.queue.add_after(k, after, now);
            }
        }
    }
}

/// Why a sync stopped early; the Deployment is synced again after a back-off.
#[derive(Debug)]
struct Failed(String);

impl From<gantry_client::kube::Error> for Failed {
    fn from(e: gantry_client::kube::Error) -> Failed {
        Failed(api_message(&e))
    }
}

/// One sync of one Deployment (upstream's `syncDeployment`), on a snapshot of the cache.
struct Syncer {
    /// The Deployment as the cache had it.
    original: Arc<Deployment>,
    /// The Deployment being worked on: its annotations and status are written at the end if they changed.
    d: Deployment,
    /// The snapshot's ReplicaSets; claimed ones replace them, and each write's answer replaces what it wrote.
    sets: Vec<ReplicaSet>,
    deployments: Api<Deployment>,
    set_api: Api<ReplicaSet>,
    pod_api: Api<Pod>,
    events: Recorder,
    involved: Involved,
    now: Timestamp,
    requeue: Option<Duration>,
}

impl Syncer {
    fn new(
        client: &Client,
        events: Recorder,
        d: Arc<Deployment>,
        sets: Vec<Arc<ReplicaSet>>,
    ) -> Syncer {
        let ns = namespace_of(&d.metadata).to_owned();
        let involved = involved(&*d);
        Syncer {
            d: (*d).clone(),
            original: d,
            sets: sets.iter().map(|s| (**s).clone()).collect(),
            deployments: Api::namespaced(client.clone(), &ns),
            set_api: Api::namespaced(client.clone(), &ns),
            pod_api: Api::namespaced(client.clone(), &ns),
            events,
            involved,
            now: now(),
            requeue: None,
        }
    }

    async fn run(mut self, key: String) -> Done {
        let mut failed = false;
        if let Err(Failed(e)) = self.reconcile().await {
            tracing::debug!(deployment = %key, "sync failed: {e}");
            failed = true;
        }
        if let Err(Failed(e)) = self.write_deployment().await {
            tracing::debug!(deployment = %key, "cannot write the deployment: {e}");
            failed = true;
        }
        Done {
            key,
            requeue: self.requeue,
            failed,
        }
    }

    fn record(&self, warning: bool, reason: &'static str, message: String) {
        self.events.record(Event {
            object: self.involved.clone(),
            warning,
            reason,
            message,
        });
    }

    fn requeue_after(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    async fn reconcile(&mut self) -> Result<(), Failed> {
        let Some(spec) = self.d.spec.clone() else {
            return Ok(());
        };
        let selector = selector_of(&spec.selector).map_err(Failed)?;
        if selector.is_empty() {
            self.record(
                true,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let status = self.d.status.get_or_insert_default();
            if status.observed_generation < self.d.metadata.generation {
                status.observed_generation = self.d.metadata.generation;
            }
            return Ok(());
        }
        self.claim(&selector).await?;
        if self.d.metadata.deletion_timestamp.is_some() {
            let new = self.sync_revision(false).await?;
            self.d.status = Some(calculate_status(&self.d, &self.sets, new, self.now));
            return Ok(());
        }
        check_paused_conditions(&mut self.d, self.now);
        if spec.paused == Some(true) {
            let new = self.sync_revision(false).await?;
            return self.scale_sync(new).await;
        }
        let new = self.sync_revision(false).await?;
        if is_scaling_event(&self.d, &self.sets) {
            return self.scale_sync(new).await;
        }
        if is_recreate(&self.d) {
            self.rollout_recreate(new).await
        } else {
            self.rollout_rolling().await
        }
    }

    /// Adopts the orphans the selector matches and releases the owned ReplicaSets it no longer matches
    /// (upstream's `ClaimReplicaSets`); keeps only the claimed ones.
    async fn claim(&mut self, selector: &Selector) -> Result<(), Failed> {
        let uid = self.d.metadata.uid.clone().unwrap_or_default();
        let deleting = self.d.metadata.deletion_timestamp.is_some();
        let mut claimed = Vec::new();
        let mut adopt = Vec::new();
        let mut release = Vec::new();
        for set in std::mem::take(&mut self.sets) {
            let matches = selector.matches(&set.metadata.labels.clone().unwrap_or_default());
            match pods::controller_of(&set.metadata) {
                Some(owner) if owner.uid == uid => {
                    if matches {
                        claimed.push(set);
                    } else if !deleting {
                        release.push(set);
                    }
                }
                Some(_) => {}
                None if matches && !deleting && set.metadata.deletion_timestamp.is_none() => {
                    adopt.push(set);
                }
                None => {}
            }
        }
        let mut result = Ok(());
        if !adopt.is_empty() {
            match can_adopt(&self.deployments, &self.d).await {
                Ok(true) => {
                    let owner = controller_ref(&self.d);
                    for set in adopt {
                        match self
                            .write_owners(&set, adopted(&set.metadata, &owner))
                            .await
                        {
                            Ok(Some(adopted)) => claimed.push(adopted),
                            Ok(None) => {}
                            Err(e) => result = Err(e),
                        }
                    }
                }
                Ok(false) => {}
                Err(e) => result = Err(e.into()),
            }
        }
        for set in release {
            let refs = released(&set.metadata, &uid);
            if let Err(e) = self.write_owners(&set, refs).await {
                result = Err(e);
            }
        }
        self.sets = claimed;
        result
    }

    /// Writes a ReplicaSet's ownerReferences (as it was seen); the written ReplicaSet, None if it is gone.
    async fn write_owners(
        &self,
        set: &ReplicaSet,
        refs: Vec<OwnerReference>,
    ) -> Result<Option<ReplicaSet>, Failed> {
        let patch = owners_patch(&set.metadata, &refs);
        match self
            .set_api
            .patch(
                name_of(&set.metadata),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(set) => Ok(Some(set)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Upstream's `getNewReplicaSet` (with `getAllReplicaSetsAndSyncRevision`): finds the new ReplicaSet and
    /// brings its annotations and minReadySeconds up to date, or creates it when `create`; the Deployment
    /// gets its revision. The index of the new ReplicaSet in `sets`.
    async fn sync_revision(&mut self, create: bool) -> Result<Option<usize>, Failed> {
        let new = find_new(&self.d, &self.sets);
        let max_old = self
            .sets
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new)
            .map(|(_, s)| revision(&s.metadata))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        if let Some(i) = new {
            let mut set = self.sets[i].clone();
            let annotations_changed = set_new_rs_annotations(&self.d, &mut set, new_revision, true);
            let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let spec = set.spec.get_or_insert_default();
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0);
            if annotations_changed || min_ready_changed {
                spec.min_ready_seconds = min_ready;
                let patch = json!({
                    "metadata": {"annotations": set.metadata.annotations, "resourceVersion": set.metadata.resource_version},
                    "spec": {"minReadySeconds": min_ready},
                });
                self.sets[i] = self
                    .set_api
                    .patch(
                        name_of(&set.metadata),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
            }
            let rs_revision = annotation(&self.sets[i].metadata, REVISION).map(str::to_owned);
            set_deployment_revision(&mut self.d, rs_revision.as_deref().unwrap_or_default());
            let name = name_of(&self.sets[i].metadata).to_owned();
            let now = self.now;
            if has_progress_deadline(&self.d) {
                let status = self.d.status.get_or_insert_default();
                if condition(status, PROGRESSING).is_none() {
                    let message = format!("Found new replica set \"{name}\"");
                    set_condition(
                        status,
                        new_condition(PROGRESSING, "True", FOUND_NEW_RS, &message, now),
                    );
                }
            }
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }
        let mut set = new_replica_set(&self.d);
        set.spec.get_or_insert_default().replicas =
            Some(new_rs_new_replicas(&self.d, &self.sets, None));
        set_new_rs_annotations(&self.d, &mut set, new_revision, false);
        let replicas = replicas(&set);
        let set_name = name_of(&set.metadata).to_owned();
        let (created, already_existed) =
            match self.set_api.create(&PostParams::default(), &set).await {
                Ok(created) => (created, false),
                Err(e) if is_conflict(&e) => {
                    // A slow cache, or a hash collision: the ReplicaSet of that name is ours only if it is
                    // controlled by this Deployment and has its template.
                    let existing = self.set_api.get(&set_name).await?;
                    let ours = pods::controller_of(&existing.metadata)
                        .is_some_and(|r| Some(&r.uid) == self.d.metadata.uid.as_ref());
                    let same = existing
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.as_ref())
                        .zip(self.d.spec.as_ref().map(|s| &s.template))
                        .is_some_and(|(a, b)| equal_ignore_hash(a, b));
                    if !(ours && same) {
                        let status = self.d.status.get_or_insert_default();
                        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                        return Err(Failed(format!(
                            "hash collision: replica set {set_name} exists with another template"
                        )));
                    }
                    (existing, true)
                }
                Err(e) => {
                    let message = format!(
                        "Failed to create new replica set \"{set_name}\": {}",
                        api_message(&e)
                    );
                    if has_progress_deadline(&self.d) {
                        let now = self.now;
                        set_condition(
                            self.d.status.get_or_insert_default(),
                            new_condition(PROGRESSING, "False", RS_CREATE_ERROR, &message, now),
                        );
                    }
                    self.record(true, RS_CREATE_ERROR, message.clone());
                    return Err(Failed(message));
                }
            };
        if !already_existed && replicas > 0 {
            self.record(
                false,
                "ScalingReplicaSet",
                format!("Scaled up replica set {set_name} from 0 to {replicas}"),
            );
        }
        set_deployment_revision(&mut self.d, &new_revision.to_string());
        if !already_existed && has_progress_deadline(&self.d) {
            let message = format!("Created new replica set \"{set_name}\"");
            let now = self.now;
            set_condition(
                self.d.status.get_or_insert_default(),
                new_condition(PROGRESSING, "True", NEW_RS_CREATED, &message, now),
            );
        }
        self.sets.push(created);
        Ok(Some(self.sets.len() - 1))
    }

    /// Scales the ReplicaSet at `i` to `size` and brings its replicas annotations up to date; an event says
    /// a change of size (`operation`: "up" or "down", as upstream's `scaleReplicaSet`). Whether it was scaled.
    async fn scale_set(&mut self, i: usize, size: i32, operation: &str) -> Result<bool, Failed> {
        let set = &self.sets[i];
        let old = replicas(set);
        let desired = desired(&self.d);
        let max = desired + max_surge(&self.d);
        let resize = old != size;
        if !resize && !replicas_annotations_need_update(set, desired, max) {
            return Ok(false);
        }
        let patch = json!({
            "metadata": {
                "annotations": {DESIRED_REPLICAS: desired.to_string(), MAX_REPLICAS: max.to_string()},
                "resourceVersion": set.metadata.resource_version,
            },
            "spec": {"replicas": size},
        });
        let name = name_of(&set.metadata).to_owned();
        self.sets[i] = self
            .set_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        if resize {
            let direction = if operation == "up" { "up" } else { "down" };
            self.record(
                false,
                "ScalingReplicaSet",
                format!("Scaled {direction} replica set {name} from {old} to {size}"),
            );
        }
        Ok(resize)
    }

    /// Upstream's `scaleReplicaSetAndRecordEvent`.
    async fn scale_to(&mut self, i: usize, size: i32) -> Result<bool, Failed> {
        if replicas(&self.sets[i]) == size {
            return Ok(false);
        }
        let operation = if replicas(&self.sets[i]) < size {
            "up"
        } else {
            "down"
        };
        self.scale_set(i, size, operation).await
    }

    /// Upstream's `sync`: a scaling event or a paused Deployment; scales, cleans up (when paused) and
    /// writes the status without touching the Progressing condition.
    async fn scale_sync(&mut self, new: Option<usize>) -> Result<(), Failed> {
        let (plan, operation) = scale_plan(&self.d, &self.sets, new);
        for (i, size) in plan {
            match operation {
                Some(op) => self.scale_set(i, size, op).await?,
                None => self.scale_to(i, size).await?,
            };
        }
        if self.d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            self.cleanup(new).await?;
        }
        self.d.status = Some(calculate_status(&self.d, &self.sets, new, self.now));
        Ok(())
    }

    async fn rollout_rolling(&mut self) -> Result<(), Failed> {
        let Some(new) = self.sync_revision(true).await? else {
            return Ok(());
        };
        // Scale up, if we can.
        let target = new_rs_target(&self.d, &self.sets, new);
        if self.scale_to(new, target).await? {
            self.sync_rollout_status(Some(new));
            return Ok(());
        }
        // Scale down, if we can.
        let mut scaled_down = false;
        for (i, size) in old_scale_downs(&self.d, &self.sets, new) {
            scaled_down |= self.scale_to(i, size).await?;
        }
        if scaled_down {
            self.sync_rollout_status(Some(new));
            return Ok(());
        }
        if deployment_complete(&self.d, self.d.status.as_ref()) {
            self.cleanup(Some(new)).await?;
        }
        self.sync_rollout_status(Some(new));
        Ok(())
    }

    async fn rollout_recreate(&mut self, new: Option<usize>) -> Result<(), Failed> {
        // Old ReplicaSets down first.
        let active_old: Vec<usize> = (0..self.sets.len())
            .filter(|i| Some(*i) != new && replicas(&self.sets[*i]) > 0)
            .collect();
        let mut scaled_down = false;
        for i in active_old {
            scaled_down |= self.scale_to(i, 0).await?;
        }
        if scaled_down {
            self.sync_rollout_status(new);
            return Ok(());
        }
        let needs_scale_up = new.is_none_or(|n| replicas(&self.sets[n]) != desired(&self.d));
        if needs_scale_up && self.old_pods_running(new).await? {
            self.requeue_after(OLD_PODS_RECHECK);
            self.sync_rollout_status(new);
            return Ok(());
        }
        let new = match new {
            Some(n) => Some(n),
            None => self.sync_revision(true).await?,
        };
        if let Some(n) = new {
            let size = desired(&self.d);
            self.scale_to(n, size).await?;
        }
        if deployment_complete(&self.d, self.d.status.as_ref()) {
            self.cleanup(new).await?;
        }
        self.sync_rollout_status(new);
        Ok(())
    }

    /// Whether pods of the old ReplicaSets are still there (upstream's `oldPodsRunning`): their status
    /// counts active pods, and a listing finds those still terminating.
    async fn old_pods_running(&self, new: Option<usize>) -> Result<bool, Failed> {
        let old: HashSet<&str> = self
            .sets
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new)
            .filter_map(|(_, s)| s.metadata.uid.as_deref())
            .collect();
        if old.is_empty() {
            return Ok(false);
        }
        let counted = self
            .sets
            .iter()
            .enumerate()
            .any(|(i, s)| Some(i) != new && status_replicas(s) > 0);
        if counted {
            return Ok(true);
        }
        let selector = self
            .d
            .spec
            .as_ref()
            .map(|s| selector_of(&s.selector))
            .transpose()
            .map_err(Failed)?
            .map(|s| s.to_string())
            .unwrap_or_default();
        let listed = self
            .pod_api
            .list(&ListParams::default().labels(&selector))
            .await?;
        Ok(listed.items.iter().any(|pod| {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            pods::controller_of(&pod.metadata).is_some_and(|r| old.contains(r.uid.as_str()))
                && !matches!(phase, Some("Succeeded" | "Failed"))
        }))
    }

    /// Deletes the oldest old ReplicaSets beyond `revisionHistoryLimit` that have no pods left (upstream's
    /// `cleanupDeployment`).
    async fn cleanup(&mut self, new: Option<usize>) -> Result<(), Failed> {
        for i in to_clean_up(&self.d, &self.sets, new) {
            let name = name_of(&self.sets[i].metadata).to_owned();
            match self.set_api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Upstream's `syncRolloutStatus` (the write happens at the end of the sync).
    fn sync_rollout_status(&mut self, new: Option<usize>) {
        let (status, requeue) = rollout_status(&self.d, &self.sets, new, self.now);
        self.d.status = Some(status);
        if let Some(after) = requeue {
            self.requeue_after(after);
        }
    }

    /// Writes the Deployment's revision annotation and its status, each if it changed.
    async fn write_deployment(&mut self) -> Result<(), Failed> {
        let name = name_of(&self.d.metadata).to_owned();
        let mut resource_version = self.original.metadata.resource_version.clone();
        let old = self
            .original
            .metadata
            .annotations
            .clone()
            .unwrap_or_default();
        let new = self.d.metadata.annotations.clone().unwrap_or_default();
        if old.get(REVISION) != new.get(REVISION) {
            let patch = json!({"metadata": {
                "annotations": {REVISION: new.get(REVISION)},
                "resourceVersion": resource_version,
            }});
            let written = self
                .deployments
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            resource_version = written.metadata.resource_version;
        }
        let status = normalized(self.d.status.as_ref());
        if status != normalized(self.original.status.as_ref()) {
            let mut patch = status_patch(&status);
            patch["metadata"] = json!({"resourceVersion": resource_version});
            match self
                .deployments
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

// ---- Pure logic: upstream's deploymentutil, on the snapshot ----

/// Upstream's `checkPausedConditions`: the Progressing condition says when a Deployment is paused or
/// resumed (unless it already says the deadline passed).
fn check_paused_conditions(d: &mut Deployment, now: Timestamp) {
    if !has_progress_deadline(d) {
        return;
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused) == Some(true);
    let status = d.status.get_or_insert_default();
    let reason = condition(status, PROGRESSING).and_then(|c| c.reason.clone());
    if reason.as_deref() == Some(TIMED_OUT) {
        return;
    }
    let paused_condition = reason.as_deref() == Some(PAUSED);
    if paused && !paused_condition {
        let c = new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now);
        set_condition(status, c);
    } else if !paused && paused_condition {
        let c = new_condition(
            PROGRESSING,
            "Unknown",
            RESUMED,
            "Deployment is resumed",
            now,
        );
        set_condition(status, c);
    }
}

/// Now, in whole seconds (what conditions hold).
fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

fn annotation<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(name))
        .map(String::as_str)
}

/// The revision annotation as a number (0 when absent or not a number).
fn revision(meta: &ObjectMeta) -> i64 {
    annotation(meta, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// A ReplicaSet's `spec.replicas`.
fn replicas(set: &ReplicaSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn status_replicas(set: &ReplicaSet) -> i32 {
    set.status.as_ref().map_or(0, |s| s.replicas)
}

fn available(set: &ReplicaSet) -> i32 {
    set.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn ready(set: &ReplicaSet) -> i32 {
    set.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|s| s != i32::MAX)
}

/// An int, or a percentage of `total` rounded up or down (upstream's `GetScaledValueFromIntOrPercent`).
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| {
                    format!("invalid value for IntOrString: {s:?} is not a percentage")
                })?;
            let scaled = percent * i64::from(total);
            let value = if round_up {
                -(-scaled).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            };
            i32::try_from(value).map_err(|e| e.to_string())
        }
    }
}

/// maxSurge and maxUnavailable for `desired` replicas: surge rounds up, unavailable down, and both zero
/// makes unavailable 1 (upstream's `ResolveFenceposts`).
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    // Validation rejects what does not resolve; the safest reading of it is one pod at a time.
    resolve_fenceposts(
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        desired(d),
    )
    .unwrap_or((0, 1))
}

/// Upstream's `MaxSurge`: 0 for Recreate.
fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) { 0 } else { fenceposts(d).0 }
}

/// Upstream's `MaxUnavailable`: 0 for Recreate or no replicas, never more than the replicas.
fn max_unavailable(d: &Deployment) -> i32 {
    let desired = desired(d);
    if is_recreate(d) || desired == 0 {
        return 0;
    }
    fenceposts(d).1.min(desired)
}

/// The pod-template-hash of a template: FNV-1a over its JSON (and the collision count, as upstream's
/// `ComputeHash` adds it), rendered with upstream's `SafeEncodeString` (digits mapped to consonants and
/// digits no word can be spelt with).
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut hash = fnv32a(json, FNV32_OFFSET);
    if let Some(count) = collision_count {
        hash = fnv32a(count.to_le_bytes(), hash);
    }
    encode(hash)
}

/// The template without the pod-template-hash label.
fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(meta) = &mut t.metadata {
        if let Some(labels) = &mut meta.labels {
            labels.remove(HASH_LABEL);
            if labels.is_empty() {
                meta.labels = None;
            }
        }
        if *meta == ObjectMeta::default() {
            t.metadata = None;
        }
    }
    t
}

/// Templates equal but for the pod-template-hash label (upstream's `EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let t = |s: &ReplicaSet| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
    t(a).cmp(&t(b))
        .then_with(|| name_of(&a.metadata).cmp(name_of(&b.metadata)))
}

/// The oldest ReplicaSet whose template is the Deployment's (upstream's `FindNewReplicaSet`).
fn find_new(d: &Deployment, sets: &[ReplicaSet]) -> Option<usize> {
    let template = &d.spec.as_ref()?.template;
    let mut candidates: Vec<usize> = (0..sets.len())
        .filter(|i| {
            sets[*i]
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, template))
        })
        .collect();
    candidates.sort_by(|a, b| by_creation(&sets[*a], &sets[*b]));
    candidates.first().copied()
}

/// A new ReplicaSet for the Deployment's template (no replicas nor annotations yet).
fn new_replica_set(d: &Deployment) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = pod_template_hash(&spec.template, collision_count);
    let mut template = spec.template;
    let meta = template.metadata.get_or_insert_default();
    meta.labels
        .get_or_insert_default()
        .insert(HASH_LABEL.into(), hash.clone());
    let labels = meta.labels.clone();
    let mut selector = spec.selector;
    selector
        .match_labels
        .get_or_insert_default()
        .insert(HASH_LABEL.into(), hash.clone());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", name_of(&d.metadata))),
            namespace: d.metadata.namespace.clone(),
            labels,
            owner_references: Some(vec![controller_ref(d)]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// Annotations of the Deployment that stay off its ReplicaSets.
fn skip_copy(annotation: &str) -> bool {
    matches!(
        annotation,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

/// Upstream's `SetNewReplicaSetAnnotations`: the Deployment's annotations copied, the revision raised to
/// `new_revision` when lower (a reused ReplicaSet keeps its former revisions in `revision-history`), and for
/// a ReplicaSet about to be created, the replicas annotations. Whether anything changed.
fn set_new_rs_annotations(
    d: &Deployment,
    set: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let annotations = set.metadata.annotations.get_or_insert_default();
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy(k) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = annotations.get(REVISION).cloned();
    let old_revision = match old.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(r)) => r,
        Some(Err(_)) => return changed,
    };
    if old_revision < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = annotations
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            if history.is_empty() {
                annotations.insert(REVISION_HISTORY.into(), old);
            } else {
                // Drop the oldest entries while the history would be too long.
                let mut entries: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REVISION_HISTORY_CHARS && start < entries.len() {
                    total -= entries[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REVISION_HISTORY_CHARS {
                    entries.drain(..start);
                    entries.push(&old);
                    let joined = entries.join(",");
                    annotations.insert(REVISION_HISTORY.into(), joined);
                }
            }
        }
    }
    if !exists {
        let desired = desired(d);
        annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
        annotations.insert(MAX_REPLICAS.into(), (desired + max_surge(d)).to_string());
        changed = true;
    }
    changed
}

fn set_deployment_revision(d: &mut Deployment, revision: &str) {
    let annotations = d.metadata.annotations.get_or_insert_default();
    if annotations.get(REVISION).map(String::as_str) != Some(revision) {
        annotations.insert(REVISION.into(), revision.to_owned());
    }
}

fn replicas_annotations_need_update(set: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&set.metadata, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(&set.metadata, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// An active ReplicaSet whose desired-replicas annotation differs from the Deployment's replicas (upstream's
/// `isScalingEvent`).
fn is_scaling_event(d: &Deployment, sets: &[ReplicaSet]) -> bool {
    let desired = desired(d);
    sets.iter().filter(|s| replicas(s) > 0).any(|s| {
        annotation(&s.metadata, DESIRED_REPLICAS)
            .and_then(|a| a.parse::<i32>().ok())
            .is_some_and(|a| a != desired)
    })
}

/// How many replicas the new ReplicaSet may have now (upstream's `NewRSNewReplicas`); `new` None: one about
/// to be created.
fn new_rs_new_replicas(d: &Deployment, sets: &[ReplicaSet], new: Option<usize>) -> i32 {
    let desired = desired(d);
    if is_recreate(d) {
        return desired;
    }
    let new_replicas = new.map_or(0, |i| replicas(&sets[i]));
    let current: i32 = sets.iter().map(replicas).sum();
    let max_total = desired + max_surge(d);
    if current >= max_total {
        return new_replicas;
    }
    let up = (max_total - current).min(desired - new_replicas);
    new_replicas + up
}

/// The size the new ReplicaSet should have now (upstream's `reconcileNewReplicaSet`).
fn new_rs_target(d: &Deployment, sets: &[ReplicaSet], new: usize) -> i32 {
    let desired = desired(d);
    let current = replicas(&sets[new]);
    if current >= desired {
        return desired;
    }
    new_rs_new_replicas(d, sets, Some(new))
}

/// The old ReplicaSets to scale down, and to what, in a rolling update (upstream's
/// `reconcileOldReplicaSets`: unhealthy replicas first, then as many as keep the minimum available).
fn old_scale_downs(d: &Deployment, sets: &[ReplicaSet], new: usize) -> Vec<(usize, i32)> {
    let mut sizes: Vec<i32> = sets.iter().map(replicas).collect();
    let mut old: Vec<usize> = (0..sets.len())
        .filter(|i| *i != new && sizes[*i] > 0)
        .collect();
    let old_pods: i32 = old.iter().map(|i| sizes[*i]).sum();
    if old_pods == 0 {
        return Vec::new();
    }
    let all_pods: i32 = sizes.iter().sum();
    let min_available = desired(d) - max_unavailable(d);
    let new_unavailable = sizes[new] - available(&sets[new]);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    old.sort_by(|a, b| by_creation(&sets[*a], &sets[*b]));
    // Unhealthy replicas first: they would otherwise block the rollout.
    let mut cleaned = 0;
    for &i in &old {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = sizes[i] - available(&sets[i]);
        if sizes[i] == 0 || unhealthy <= 0 {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(unhealthy);
        sizes[i] -= down;
        cleaned += down;
    }
    // Then healthy ones, as far as the minimum available allows. A ReplicaSet's available pods beyond its
    // spec are about to go, so they are not counted (upstream counts them).
    let available_pods: i32 = (0..sets.len())
        .map(|i| available(&sets[i]).min(sizes[i]))
        .sum();
    if available_pods > min_available {
        let total = available_pods - min_available;
        let mut scaled = 0;
        for &i in &old {
            if scaled >= total {
                break;
            }
            if sizes[i] == 0 {
                continue;
            }
            let down = sizes[i].min(total - scaled);
            sizes[i] -= down;
            scaled += down;
        }
    }
    old.into_iter()
        .filter(|i| sizes[*i] != replicas(&sets[*i]))
        .map(|i| (i, sizes[i]))
        .collect()
}

/// What a scaling event does (upstream's `scale`): the sizes to write, and for a proportional scaling its
/// direction (every active ReplicaSet is written then, for its annotations).
fn scale_plan(
    d: &Deployment,
    sets: &[ReplicaSet],
    new: Option<usize>,
) -> (Vec<(usize, i32)>, Option<&'static str>) {
    let desired = desired(d);
    let active: Vec<usize> = (0..sets.len())
        .filter(|i| replicas(&sets[*i]) > 0)
        .collect();
    // One active ReplicaSet (or none: the newest) takes all the replicas.
    let only = match active.as_slice() {
        [] => new.or_else(|| (0..sets.len()).max_by(|a, b| by_creation(&sets[*a], &sets[*b]))),
        [one] => Some(*one),
        _ => None,
    };
    if let Some(i) = only {
        if replicas(&sets[i]) == desired {
            return (Vec::new(), None);
        }
        return (vec![(i, desired)], None);
    }
    if active.is_empty() {
        return (Vec::new(), None);
    }
    // A saturated new ReplicaSet: the old ones go.
    if let Some(n) = new
        && is_saturated(d, &sets[n])
    {
        let plan = active
            .iter()
            .filter(|i| **i != n)
            .map(|i| (*i, 0))
            .collect();
        return (plan, None);
    }
    if is_recreate(d) {
        return (Vec::new(), None);
    }
    let current: i32 = active.iter().map(|i| replicas(&sets[*i])).sum();
    let allowed = if desired > 0 {
        desired + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - current;
    let mut order = active;
    let bigger_first = |a: &usize, b: &usize| replicas(&sets[*b]).cmp(&replicas(&sets[*a]));
    let operation = match to_add.cmp(&0) {
        Ordering::Greater => {
            // Same size: newer first.
            order
                .sort_by(|a, b| bigger_first(a, b).then_with(|| by_creation(&sets[*b], &sets[*a])));
            Some("up")
        }
        Ordering::Less => {
            // Same size: older first.
            order
                .sort_by(|a, b| bigger_first(a, b).then_with(|| by_creation(&sets[*a], &sets[*b])));
            Some("down")
        }
        Ordering::Equal => Some(""),
    };
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(order.len());
    for &i in &order {
        let proportion = if to_add == 0 {
            0
        } else {
            proportion(d, &sets[i], to_add, added)
        };
        sizes.push(replicas(&sets[i]) + proportion);
        added += proportion;
    }
    // The leftover goes to the biggest.
    if let Some(first) = sizes.first_mut()
        && to_add != 0
    {
        *first = (*first + to_add - added).max(0);
    }
    (order.into_iter().zip(sizes).collect(), operation)
}

fn is_saturated(d: &Deployment, set: &ReplicaSet) -> bool {
    let desired = desired(d);
    annotation(&set.metadata, DESIRED_REPLICAS).and_then(|a| a.parse::<i32>().ok()) == Some(desired)
        && replicas(set) == desired
        && available(set) == desired
}

/// How many replicas a ReplicaSet gains (or loses) of `to_add` in a proportional scaling (upstream's
/// `GetReplicaSetProportion`).
fn proportion(d: &Deployment, set: &ReplicaSet, to_add: i32, added: i32) -> i32 {
    let size = replicas(set);
    if size == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if desired(d) == 0 {
        -size
    } else {
        let max = desired(d) + max_surge(d);
        let before = annotation(&set.metadata, MAX_REPLICAS)
            .and_then(|a| a.parse::<i32>().ok())
            .filter(|m| *m != 0)
            .unwrap_or_else(|| {
                d.status
                    .as_ref()
                    .and_then(|s| s.replicas)
                    .unwrap_or(0)
                    .max(1)
            });
        let scaled = (f64::from(size) * f64::from(max) / f64::from(before)).round();
        // The rounded size of a ReplicaSet fits an i32.
        #[allow(clippy::cast_possible_truncation)]
        let scaled = scaled as i32;
        scaled - size
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// The old ReplicaSets to delete: beyond `revisionHistoryLimit`, lowest revisions first, only those with
/// no replicas whose status is current (upstream's `cleanupDeployment`).
fn to_clean_up(d: &Deployment, sets: &[ReplicaSet], new: Option<usize>) -> Vec<usize> {
    let Some(limit) = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .filter(|l| *l != i32::MAX)
    else {
        return Vec::new();
    };
    let mut cleanable: Vec<usize> = (0..sets.len())
        .filter(|i| Some(*i) != new && sets[*i].metadata.deletion_timestamp.is_none())
        .collect();
    let excess = i32::try_from(cleanable.len()).unwrap_or(i32::MAX) - limit;
    if excess <= 0 {
        return Vec::new();
    }
    cleanable.sort_by(|a, b| {
        revision(&sets[*a].metadata)
            .cmp(&revision(&sets[*b].metadata))
            .then_with(|| by_creation(&sets[*a], &sets[*b]))
    });
    cleanable
        .into_iter()
        .take(usize::try_from(excess).unwrap_or(0))
        .filter(|i| {
            let s = &sets[*i];
            let observed = s.status.as_ref().and_then(|s| s.observed_generation);
            status_replicas(s) == 0
                && replicas(s) == 0
                && s.metadata.generation.unwrap_or(0) <= observed.unwrap_or(0)
        })
        .collect()
}

fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Upstream's `SetDeploymentCondition`: nothing changes for the same status and reason; the transition
/// time stays when only the reason changes; the condition goes last.
fn set_condition(status: &mut DeploymentStatus, mut new: DeploymentCondition) {
    if let Some(current) = condition(status, &new.type_) {
        if current.status == new.status && current.reason == new.reason {
            return;
        }
        if current.status == new.status {
            new.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &new.type_);
    status.conditions.get_or_insert_default().push(new);
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = &mut status.conditions {
        conditions.retain(|c| c.type_ != type_);
    }
}

/// The status the ReplicaSets make, with the Deployment's conditions and the Available one (upstream's
/// `calculateStatus`).
fn calculate_status(
    d: &Deployment,
    sets: &[ReplicaSet],
    new: Option<usize>,
    now: Timestamp,
) -> DeploymentStatus {
    let available_replicas: i32 = sets.iter().map(available).sum();
    let total: i32 = sets.iter().map(replicas).sum();
    let current = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sets.iter().map(status_replicas).sum()),
        updated_replicas: Some(new.map_or(0, |n| status_replicas(&sets[n]))),
        ready_replicas: Some(sets.iter().map(ready).sum()),
        available_replicas: Some(available_replicas),
        unavailable_replicas: Some((total - available_replicas).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions,
        terminating_replicas: current.terminating_replicas,
    };
    let available_condition = if available_replicas >= desired(d) - max_unavailable(d) {
        new_condition(
            AVAILABLE,
            "True",
            MIN_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    } else {
        new_condition(
            AVAILABLE,
            "False",
            MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    };
    set_condition(&mut status, available_condition);
    status
}

fn count(n: Option<i32>) -> i32 {
    n.unwrap_or(0)
}

/// Upstream's `DeploymentComplete`: every replica updated and available, the generation observed.
fn deployment_complete(d: &Deployment, status: Option<&DeploymentStatus>) -> bool {
    let desired = desired(d);
    status.is_some_and(|s| {
        count(s.updated_replicas) == desired
            && count(s.replicas) == desired
            && count(s.available_replicas) == desired
            && s.observed_generation >= d.metadata.generation
    })
}

/// Upstream's `DeploymentProgressing`: more updated, ready or available replicas, or fewer old ones.
fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = count(old.replicas) - count(old.updated_replicas);
    let new_old = count(new.replicas) - count(new.updated_replicas);
    count(new.updated_replicas) > count(old.updated_replicas)
        || new_old < old_old
        || count(new.ready_replicas) > count(old.ready_replicas)
        || count(new.available_replicas) > count(old.available_replicas)
}

fn deadline(d: &Deployment) -> Duration {
    let seconds = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(0);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// When the Progressing condition's deadline passes: its last update plus progressDeadlineSeconds.
fn deadline_at(d: &Deployment, c: &DeploymentCondition) -> Option<Timestamp> {
    let from = c.last_update_time.as_ref()?.0;
    from.checked_add(deadline(d)).ok()
}

/// Upstream's `DeploymentTimedOut`.
fn timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = condition(status, PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => deadline_at(d, c).is_some_and(|at| at < now),
    }
}

/// Upstream's `syncRolloutStatus`: the status with the Progressing condition as the rollout's progress
/// makes it and the ReplicaSets' failures; and when to look again for the progress deadline (upstream's
/// `requeueStuckDeployment`).
fn rollout_status(
    d: &Deployment,
    sets: &[ReplicaSet],
    new: Option<usize>,
    now: Timestamp,
) -> (DeploymentStatus, Option<Duration>) {
    let mut status = calculate_status(d, sets, new, now);
    if !has_progress_deadline(d) {
        remove_condition(&mut status, PROGRESSING);
    }
    let current = d
        .status
        .as_ref()
        .and_then(|s| condition(s, PROGRESSING))
        .cloned();
    let complete_before = count(status.replicas) == count(status.updated_replicas)
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
    let name = name_of(&d.metadata);
    let what = match new {
        Some(n) => format!("ReplicaSet \"{}\"", name_of(&sets[n].metadata)),
        None => format!("Deployment \"{name}\""),
    };
    if has_progress_deadline(d) && !complete_before {
        if deployment_complete(d, Some(&status)) {
            let message = format!("{what} has successfully progressed.");
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, &message, now),
            );
        } else if deployment_progressing(d, &status) {
            let message = format!("{what} is progressing.");
            let mut c = new_condition(PROGRESSING, "True", RS_UPDATED, &message, now);
            // Progress moves lastUpdateTime even when the reason stays.
            if let Some(current) = &current {
                if current.status == "True" {
                    c.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, c);
        } else if timed_out(d, &status, now) {
            let message = format!("{what} has timed out progressing.");
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "False", TIMED_OUT, &message, now),
            );
        }
    }
    match replica_failure(sets, new) {
        Some(failure) => set_condition(&mut status, failure),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    let requeue = match &current {
        Some(c)
            if has_progress_deadline(d)
                && !deployment_complete(d, Some(&status))
                && c.reason.as_deref() != Some(TIMED_OUT) =>
        {
            deadline_at(d, c).map(|at| {
                let left = at.as_nanosecond() - now.as_nanosecond();
                Duration::from_nanos(u64::try_from(left).unwrap_or(0)) + Duration::from_secs(1)
            })
        }
        _ => None,
    };
    (status, requeue)
}

/// The ReplicaFailure condition of the new ReplicaSet, else of an old one.
fn replica_failure(sets: &[ReplicaSet], new: Option<usize>) -> Option<DeploymentCondition> {
    let failure = |set: &ReplicaSet| {
        set.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
    };
    new.and_then(|n| failure(&sets[n]))
        .or_else(|| sets.iter().find_map(failure))
}

/// The status as written: zero counts left out (as upstream's omitempty), no empty condition list.
fn normalized(status: Option<&DeploymentStatus>) -> DeploymentStatus {
    let mut s = status.cloned().unwrap_or_default();
    for n in [
        &mut s.replicas,
        &mut s.updated_replicas,
        &mut s.ready_replicas,
        &mut s.available_replicas,
        &mut s.unavailable_replicas,
    ] {
        if *n == Some(0) {
            *n = None;
        }
    }
    if s.conditions.as_ref().is_some_and(Vec::is_empty) {
        s.conditions = None;
    }
    s
}

/// The merge patch of the status subresource (what is absent is removed).
fn status_patch(status: &DeploymentStatus) -> Value {
    json!({"status": {
        "observedGeneration": status.observed_generation,
        "replicas": status.replicas,
        "updatedReplicas": status.updated_replicas,
        "readyReplicas": status.ready_replicas,
        "availableReplicas": status.available_replicas,
        "unavailableReplicas": status.unavailable_replicas,
        "collisionCount": status.collision_count,
        "conditions": status.conditions,
    }})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn deployment(replicas: i32, surge: Value, unavailable: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": 2,
                "annotations": {"kubernetes.io/change-cause": "v2", LAST_APPLIED: "{}", REVISION: "1"}},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": 600, "revisionHistoryLimit": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "V", "value": "2"}]}]}}},
        }))
        .unwrap()
    }

    /// A ReplicaSet `name` created at second `created`, with `spec` replicas of which `available` are.
    fn rs(name: &str, created: u32, spec: i32, available: i32, annotations: Value) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name, "annotations": annotations,
                "creationTimestamp": format!("2025-01-01T00:00:{created:02}Z")},
            "spec": {"replicas": spec, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", HASH_LABEL: name}},
                    "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "V", "value": name}]}]}}},
            "status": {"replicas": spec, "readyReplicas": available, "availableReplicas": available},
        }))
        .unwrap()
    }

    fn int(n: i32) -> IntOrString {
        IntOrString::Int(n)
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn surge_rounds_up_and_unavailable_down() {
        assert_eq!(scaled_value(&pct("25%"), 10, true), Ok(3));
        assert_eq!(scaled_value(&pct("25%"), 10, false), Ok(2));
        assert_eq!(scaled_value(&int(4), 10, false), Ok(4));
        assert!(scaled_value(&pct("25"), 10, true).is_err());
        assert_eq!(
            resolve_fenceposts(Some(&pct("25%")), Some(&pct("25%")), 3),
            Ok((1, 0))
        );
        assert_eq!(
            resolve_fenceposts(Some(&int(0)), Some(&int(0)), 3),
            Ok((0, 1)),
            "both zero: one unavailable"
        );
        assert_eq!(resolve_fenceposts(None, Some(&pct("10%")), 5), Ok((0, 1)));
        let d = deployment(3, json!(0), json!(5));
        assert_eq!(max_unavailable(&d), 3, "never more than the replicas");
        let mut recreate = deployment(3, json!(1), json!(1));
        recreate.spec.as_mut().unwrap().strategy =
            serde_json::from_value(json!({"type": "Recreate"})).unwrap();
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
    }

    #[test]
    fn the_hash_is_stable_and_names_the_new_replicaset() {
        let d = deployment(3, json!(1), json!(0));
        let template = &d.spec.as_ref().unwrap().template;
        let hash = pod_template_hash(template, None);
        assert_eq!(hash, pod_template_hash(&template.clone(), None));
        assert!(
            hash.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)),
            "{hash}"
        );
        assert_ne!(
            hash,
            pod_template_hash(template, Some(1)),
            "the collision count changes it"
        );
        let other = deployment(3, json!(1), json!(0));
        let mut changed = other.spec.unwrap().template;
        changed.spec.as_mut().unwrap().containers[0].image = Some("j".into());
        assert_ne!(hash, pod_template_hash(&changed, None));

        let set = new_replica_set(&d);
        assert_eq!(
            set.metadata.name.as_deref(),
            Some(format!("web-{hash}").as_str())
        );
        assert_eq!(set.metadata.labels.as_ref().unwrap()[HASH_LABEL], hash);
        let spec = set.spec.as_ref().unwrap();
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap()[HASH_LABEL],
            hash
        );
        assert!(equal_ignore_hash(spec.template.as_ref().unwrap(), template));
        assert!(!equal_ignore_hash(&changed, template));
        let owner = &set.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Deployment", "d-uid")
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(find_new(&d, &[rs("a", 1, 1, 1, json!({})), set]), Some(1));
    }

    #[test]
    fn annotations_and_revisions() {
        let d = deployment(3, json!(1), json!(0));
        let mut fresh = new_replica_set(&d);
        assert!(set_new_rs_annotations(&d, &mut fresh, 3, false));
        let a = fresh.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[REVISION], "3");
        assert_eq!(a["kubernetes.io/change-cause"], "v2");
        assert_eq!(
            (a[DESIRED_REPLICAS].as_str(), a[MAX_REPLICAS].as_str()),
            ("3", "4")
        );
        assert!(!a.contains_key(LAST_APPLIED) && !a.contains_key(REVISION_HISTORY));
        assert!(
            !set_new_rs_annotations(&d, &mut fresh, 3, true),
            "nothing new"
        );

        // A rollback reuses revision 1's ReplicaSet: it becomes revision 4 and remembers 1.
        let mut reused = rs("old", 1, 0, 0, json!({REVISION: "1"}));
        assert!(set_new_rs_annotations(&d, &mut reused, 4, true));
        let a = reused.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            (a[REVISION].as_str(), a[REVISION_HISTORY].as_str()),
            ("4", "1")
        );
        assert!(set_new_rs_annotations(&d, &mut reused, 6, true));
        assert_eq!(
            reused.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY],
            "1,4"
        );
        // A lower revision never replaces a higher one.
        assert!(!set_new_rs_annotations(&d, &mut reused, 2, true));
        assert_eq!(revision(&reused.metadata), 6);
    }

    #[test]
    fn a_rolling_update_surges_then_scales_down_within_the_minimum() {
        // 3 replicas, maxSurge 1, maxUnavailable 0.
        let d = deployment(3, json!(1), json!(0));
        let old = rs("old", 1, 3, 3, json!({}));
        let new = rs("new", 2, 0, 0, json!({}));
        let sets = vec![old.clone(), new];
        assert_eq!(new_rs_target(&d, &sets, 1), 1, "one over the 3");
        let sets = vec![old.clone(), rs("new", 2, 1, 0, json!({}))];
        assert_eq!(new_rs_target(&d, &sets, 1), 1, "at the surge limit");
        assert!(
            old_scale_downs(&d, &sets, 1).is_empty(),
            "the new pod is not available yet"
        );
        let sets = vec![old, rs("new", 2, 1, 1, json!({}))];
        assert_eq!(old_scale_downs(&d, &sets, 1), vec![(0, 2)]);
        // Unhealthy old replicas go first, even beyond what availability alone would allow.
        let sets = vec![rs("old", 1, 3, 1, json!({})), rs("new", 2, 1, 1, json!({}))];
        let d2 = deployment(3, json!(1), json!(1));
        assert_eq!(old_scale_downs(&d2, &sets, 1), vec![(0, 1)]);
        // Scaling the new ReplicaSet down to the replicas when it has more.
        let sets = vec![rs("new", 2, 5, 5, json!({}))];
        assert_eq!(new_rs_target(&d, &sets, 0), 3);
        // 25%/25% of 4: surge 1, unavailable 1.
        let d = deployment(4, json!("25%"), json!("25%"));
        let sets = vec![rs("old", 1, 4, 4, json!({}))];
        assert_eq!(new_rs_new_replicas(&d, &sets, None), 1);
        let sets = vec![rs("old", 1, 4, 4, json!({})), rs("new", 2, 1, 0, json!({}))];
        assert_eq!(old_scale_downs(&d, &sets, 1), vec![(0, 3)]);
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        // 10 replicas (max 13 with surge 3) become 20 (max 23) while old has 8 and new 5.
        let mut d = deployment(20, json!(3), json!(2));
        d.status = Some(DeploymentStatus {
            replicas: Some(13),
            ..DeploymentStatus::default()
        });
        let marks = json!({DESIRED_REPLICAS: "10", MAX_REPLICAS: "13"});
        let sets = vec![rs("old", 1, 8, 8, marks.clone()), rs("new", 2, 5, 0, marks)];
        assert!(is_scaling_event(&d, &sets));
        let (plan, op) = scale_plan(&d, &sets, Some(1));
        assert_eq!(op, Some("up"));
        let total: i32 = plan.iter().map(|(_, s)| s).sum();
        assert_eq!(total, 23);
        assert_eq!(plan, vec![(0, 14), (1, 9)]);
        // One active ReplicaSet takes everything.
        let sets = vec![
            rs("old", 1, 0, 0, json!({})),
            rs("new", 2, 10, 10, json!({})),
        ];
        assert_eq!(scale_plan(&d, &sets, Some(1)), (vec![(1, 20)], None));
        // Down to 0: every active ReplicaSet goes to 0.
        let d0 = deployment(0, json!(3), json!(2));
        let sets = vec![rs("old", 1, 8, 8, json!({})), rs("new", 2, 5, 0, json!({}))];
        let (plan, op) = scale_plan(&d0, &sets, Some(1));
        assert_eq!(op, Some("down"));
        assert!(plan.iter().all(|(_, s)| *s == 0), "{plan:?}");
    }

    #[test]
    fn cleanup_keeps_the_history_limit() {
        let d = deployment(3, json!(1), json!(0)); // revisionHistoryLimit 1
        let mut busy = rs("r2", 2, 1, 1, json!({REVISION: "2"}));
        busy.status.as_mut().unwrap().replicas = 1;
        let sets = vec![
            rs("r1", 1, 0, 0, json!({REVISION: "1"})),
            busy,
            rs("r3", 3, 0, 0, json!({REVISION: "3"})),
            rs("new", 4, 3, 3, json!({REVISION: "4"})),
        ];
        assert_eq!(
            to_clean_up(&d, &sets, Some(3)),
            vec![0],
            "r2 still has pods"
        );
    }

    #[test]
    fn conditions_follow_the_rollout() {
        let now: Timestamp = "2025-01-01T01:00:00Z".parse().unwrap();
        let mut d = deployment(3, json!(1), json!(0));
        // The new ReplicaSet's pod is not there yet.
        let mut pending = rs("new", 2, 1, 0, json!({}));
        pending.status.as_mut().unwrap().replicas = 0;
        let sets = vec![rs("old", 1, 3, 3, json!({})), pending];
        let created: Timestamp = "2025-01-01T00:59:00Z".parse().unwrap();
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(3),
            updated_replicas: Some(0),
            ready_replicas: Some(3),
            available_replicas: Some(3),
            conditions: Some(vec![new_condition(
                PROGRESSING,
                "True",
                NEW_RS_CREATED,
                "x",
                created,
            )]),
            ..DeploymentStatus::default()
        });
        // No progress yet, and the deadline is 9 minutes off.
        let (status, requeue) = rollout_status(&d, &sets, Some(1), now);
        let p = condition(&status, PROGRESSING).unwrap();
        assert_eq!(p.reason.as_deref(), Some(NEW_RS_CREATED));
        assert_eq!(requeue, Some(Duration::from_secs(9 * 60 + 1)));
        let a = condition(&status, AVAILABLE).unwrap();
        assert_eq!(
            (a.status.as_str(), a.reason.as_deref()),
            ("True", Some(MIN_AVAILABLE))
        );
        assert_eq!(
            (count(status.replicas), count(status.updated_replicas)),
            (3, 0)
        );
        assert_eq!(
            count(status.unavailable_replicas),
            1,
            "4 wanted, 3 available"
        );

        // An updated replica is progress: lastUpdateTime moves, lastTransitionTime stays.
        let moved = vec![rs("old", 1, 2, 2, json!({})), rs("new", 2, 2, 1, json!({}))];
        let (status, _) = rollout_status(&d, &moved, Some(1), now);
        let p = condition(&status, PROGRESSING).unwrap();
        assert_eq!(p.reason.as_deref(), Some(RS_UPDATED));
        assert_eq!(
            p.message.as_deref(),
            Some("ReplicaSet \"new\" is progressing.")
        );
        assert_eq!(p.last_update_time, Some(Time(now)));
        assert_eq!(p.last_transition_time, Some(Time(created)));
        assert_eq!(count(status.updated_replicas), 2);

        // Nothing moves for longer than the deadline.
        let late: Timestamp = "2025-01-01T01:10:00Z".parse().unwrap();
        d.status = Some(rollout_status(&d, &sets, Some(1), now).0);
        let (status, requeue) = rollout_status(&d, &sets, Some(1), late);
        let p = condition(&status, PROGRESSING).unwrap();
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref()),
            ("False", Some(TIMED_OUT))
        );
        assert_eq!(
            requeue,
            Some(Duration::from_secs(1)),
            "one more look once past"
        );

        // Complete: every replica updated and available.
        let done = vec![rs("old", 1, 0, 0, json!({})), rs("new", 2, 3, 3, json!({}))];
        let (status, requeue) = rollout_status(&d, &done, Some(1), late);
        let p = condition(&status, PROGRESSING).unwrap();
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref()),
            ("True", Some(NEW_RS_AVAILABLE))
        );
        assert_eq!(requeue, None);
        assert!(deployment_complete(&d, Some(&status)));

        // Too few available: MinimumReplicasUnavailable.
        let down = vec![rs("new", 2, 3, 1, json!({}))];
        let (status, _) = rollout_status(&d, &down, Some(0), late);
        let a = condition(&status, AVAILABLE).unwrap();
        assert_eq!(
            (a.status.as_str(), a.reason.as_deref()),
            ("False", Some(MIN_UNAVAILABLE))
        );

        // A ReplicaSet's failure becomes the Deployment's.
        let mut failing = rs("new", 2, 3, 1, json!({}));
        failing.status.as_mut().unwrap().conditions = Some(vec![serde_json::from_value(
            json!({"type": REPLICA_FAILURE, "status": "True", "reason": "FailedCreate", "message": "quota"}),
        )
        .unwrap()]);
        let (status, _) = rollout_status(&d, &[failing], Some(0), late);
        let f = condition(&status, REPLICA_FAILURE).unwrap();
        assert_eq!(f.reason.as_deref(), Some("FailedCreate"));
    }

    #[test]
    fn pausing_and_resuming_show_in_progressing() {
        let now: Timestamp = "2025-01-01T01:00:00Z".parse().unwrap();
        let mut d = deployment(3, json!(1), json!(0));
        d.spec.as_mut().unwrap().paused = Some(true);
        check_paused_conditions(&mut d, now);
        let c = condition(d.status.as_ref().unwrap(), PROGRESSING)
            .unwrap()
            .clone();
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("Unknown", Some(PAUSED))
        );
        let later: Timestamp = "2025-01-01T01:05:00Z".parse().unwrap();
        check_paused_conditions(&mut d, later);
        assert_eq!(
            condition(d.status.as_ref().unwrap(), PROGRESSING),
            Some(&c),
            "already paused: unchanged"
        );
        d.spec.as_mut().unwrap().paused = Some(false);
        check_paused_conditions(&mut d, later);
        let c = condition(d.status.as_ref().unwrap(), PROGRESSING).unwrap();
        assert_eq!(c.reason.as_deref(), Some(RESUMED));
        assert_eq!(c.last_transition_time, Some(Time(now)), "still Unknown");
        assert_eq!(c.last_update_time, Some(Time(later)));
        // A passed deadline is not overwritten.
        let mut late = deployment(3, json!(1), json!(0));
        late.spec.as_mut().unwrap().paused = Some(true);
        let mut status = DeploymentStatus::default();
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "False", TIMED_OUT, "t", now),
        );
        late.status = Some(status);
        check_paused_conditions(&mut late, later);
        let c = condition(late.status.as_ref().unwrap(), PROGRESSING).unwrap();
        assert_eq!(c.reason.as_deref(), Some(TIMED_OUT));
        // Zero counts are left out of what is written.
        let patch = status_patch(&normalized(Some(&DeploymentStatus {
            replicas: Some(0),
            ready_replicas: Some(2),
            ..DeploymentStatus::default()
        })));
        assert!(patch["status"]["replicas"].is_null());
        assert_eq!(patch["status"]["readyReplicas"], 2);
    }
}

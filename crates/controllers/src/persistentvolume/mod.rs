//! The PersistentVolume controller, after upstream's `pkg/controller/volume/persistentvolume`: it binds
//! claims to volumes ([`claims`]: the best Available volume, or the one pre-bound or named; a
//! WaitForFirstConsumer claim only once the scheduler has selected its node; otherwise the class's
//! provisioner is asked through the claim's annotations — on Gantry the node agent of the selected node
//! provisions local-path volumes), keeps volumes' phases ([`volumes`]: Available, Bound, Released, Failed,
//! and the reclaim policy), and grows local-path claims ([`expansion`]). Every decision is a pure function
//! of the objects ([`matching`], [`plan`]); the task here applies them one write at a time.
//!
//! One task owns the state: caches of volumes, claims, StorageClasses and node labels (kept with the
//! objects its own writes returned, so a watch event older than a write does not undo it), and one
//! [`WorkQueue`] of volumes and claims, synced one at a time as upstream's single workers are (two syncs
//! could otherwise bind two claims to one volume). Everything is synced again every [`RESYNC`], as
//! upstream's periodic resync, so a missed change or a failed write converges.

pub mod claims;
pub mod expansion;
pub mod matching;
pub mod objects;
pub mod plan;
pub mod volumes;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use gantry_client::events::{Event, Recorder};
use gantry_client::k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use gantry_client::k8s_openapi::api::storage::v1::StorageClass;
use gantry_client::kube::api::PostParams;
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use tokio::time::Instant;

use crate::api::{api_message, is_not_found, key, name_of, namespace_of, revision};
use crate::cache::{Relist, watch_all};
use crate::queue::{Backoff, WorkQueue};
use objects::{
    ANN_BIND_COMPLETED, ANN_SELECTED_NODE, VOLUME_FAILED, VOLUME_RELEASED, annotation, claim_class,
    claim_ref, claim_ref_key, claim_ref_uid, has_annotation, requested_quantity, volume_name,
    volume_phase,
};
use plan::{Cluster, Plan, Write};

/// The binder's events' source, as upstream's.
pub const COMPONENT: &str = "persistentvolume-controller";
/// The source of ExternalExpanding events (upstream's expand controller).
pub const EXPAND_COMPONENT: &str = "volume_expand";
/// The source of the events of local-path resizes (as an external resizer names itself).
pub const RESIZER_COMPONENT: &str = "external-resizer gantry.io/local-path";
/// How often everything is synced again (upstream's `--pvclaimbinder-sync-period`).
pub const RESYNC: Duration = Duration::from_secs(15);
/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Steps of one sync (a binding is four writes; a default class, a resize add to it).
const MAX_STEPS: usize = 10;

/// What is synced.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Volume(String),
    Claim(String),
}

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut volume_events = watch_all::<PersistentVolume>(&client);
    let mut claim_events = watch_all::<PersistentVolumeClaim>(&client);
    let mut class_events = watch_all::<StorageClass>(&client);
    let mut node_events = watch_all::<Node>(&client);
    let mut controller = Controller::new(client);
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        let can_sync = controller.synced() && !controller.queue.is_empty();
        let wakeup = controller
            .queue
            .next_wakeup()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            Some(event) = volume_events.next() => match event {
                Ok(event) => controller.volume_event(event),
                Err(e) => tracing::warn!("persistentvolume controller: watching persistentvolumes: {e}"),
            },
            Some(event) = claim_events.next() => match event {
                Ok(event) => controller.claim_event(event),
                Err(e) => tracing::warn!("persistentvolume controller: watching persistentvolumeclaims: {e}"),
            },
            Some(event) = class_events.next() => match event {
                Ok(event) => controller.class_event(event),
                Err(e) => tracing::warn!("persistentvolume controller: watching storageclasses: {e}"),
            },
            Some(event) = node_events.next() => match event {
                Ok(event) => controller.node_event(event),
                Err(e) => tracing::warn!("persistentvolume controller: watching nodes: {e}"),
            },
            _ = resync.tick() => controller.resync(),
            () = tokio::time::sleep_until(wakeup) => controller.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_sync => controller.sync_next().await,
        }
    }
}

/// Keeps `object` under `k` unless what is kept is newer (a write's result may come before its event).
fn store<T: gantry_client::kube::Resource>(map: &mut BTreeMap<String, T>, k: String, object: T) {
    if let Some(have) = map.get(&k)
        && have.meta().uid == object.meta().uid
        && let (Some(have), Some(got)) = (revision(have.meta()), revision(object.meta()))
        && got < have
    {
        return;
    }
    map.insert(k, object);
}

struct Controller {
    client: Client,
    binder: Recorder,
    expander: Recorder,
    resizer: Recorder,
    cluster: Cluster,
    relists: [Relist; 4],
    queue: WorkQueue<Key>,
    backoff: Backoff<Key>,
    /// ExternalExpanding events recorded: (claim uid, requested size), so that each is said once.
    expanding_noted: HashSet<(String, String)>,
}

const VOLUMES: usize = 0;
const CLAIMS: usize = 1;
const CLASSES: usize = 2;
const NODES: usize = 3;

impl Controller {
    fn new(client: Client) -> Controller {
        Controller {
            binder: Recorder::start(client.clone(), COMPONENT),
            expander: Recorder::start(client.clone(), EXPAND_COMPONENT),
            resizer: Recorder::start(client.clone(), RESIZER_COMPONENT),
            client,
            cluster: Cluster::default(),
            relists: Default::default(),
            queue: WorkQueue::default(),
            backoff: Backoff::default(),
            expanding_noted: HashSet::new(),
        }
    }

    fn synced(&self) -> bool {
        self.relists.iter().all(|r| r.synced)
    }

    fn resync(&mut self) {
        if !self.synced() {
            return;
        }
        for name in self.cluster.volumes.keys() {
            self.queue.add(Key::Volume(name.clone()));
        }
        for k in self.cluster.claims.keys() {
            self.queue.add(Key::Claim(k.clone()));
        }
    }

    /// Claims not bound yet (they may take a volume that became Available).
    fn queue_unbound_claims(&mut self) {
        for (k, claim) in &self.cluster.claims {
            if !has_annotation(&claim.metadata, ANN_BIND_COMPLETED) {
                self.queue.add(Key::Claim(k.clone()));
            }
        }
    }

    /// Volumes whose `claimRef` or whose name the claim `k` refers to.
    fn queue_volumes_of_claim(&mut self, k: &str, named: &str) {
        if !named.is_empty() {
            self.queue.add(Key::Volume(named.to_owned()));
        }
        for (name, volume) in &self.cluster.volumes {
            if claim_ref_key(volume).as_deref() == Some(k) {
                self.queue.add(Key::Volume(name.clone()));
            }
        }
    }

    fn volume_event(&mut self, event: watcher::Event<PersistentVolume>) {
        match event {
            watcher::Event::Init => self.relists[VOLUMES].init(),
            watcher::Event::InitApply(volume) | watcher::Event::Apply(volume) => {
                let name = name_of(&volume.metadata).to_owned();
                self.relists[VOLUMES].seen(&name);
                self.volume_changed(&volume);
                store(&mut self.cluster.volumes, name, volume);
            }
            watcher::Event::Delete(volume) => {
                self.cluster.volumes.remove(name_of(&volume.metadata));
                self.volume_changed(&volume);
            }
            watcher::Event::InitDone => {
                let gone = self.relists[VOLUMES].done(self.cluster.volumes.keys());
                for name in gone {
                    if let Some(volume) = self.cluster.volumes.remove(&name) {
                        self.volume_changed(&volume);
                    }
                }
            }
        }
    }

    fn volume_changed(&mut self, volume: &PersistentVolume) {
        self.queue
            .add(Key::Volume(name_of(&volume.metadata).to_owned()));
        if let Some(k) = claim_ref_key(volume) {
            self.queue.add(Key::Claim(k));
        }
        if claim_ref(volume).is_none() || claim_ref_uid(volume).is_empty() {
            self.queue_unbound_claims();
        }
    }

    fn claim_event(&mut self, event: watcher::Event<PersistentVolumeClaim>) {
        match event {
            watcher::Event::Init => self.relists[CLAIMS].init(),
            watcher::Event::InitApply(claim) | watcher::Event::Apply(claim) => {
                let k = key(namespace_of(&claim.metadata), name_of(&claim.metadata));
                self.relists[CLAIMS].seen(&k);
                self.queue.add(Key::Claim(k.clone()));
                self.queue_volumes_of_claim(&k, volume_name(&claim));
                store(&mut self.cluster.claims, k, claim);
            }
            watcher::Event::Delete(claim) => {
                let k = key(namespace_of(&claim.metadata), name_of(&claim.metadata));
                self.claim_gone(&k, &claim);
            }
            watcher::Event::InitDone => {
                let gone = self.relists[CLAIMS].done(self.cluster.claims.keys());
                for k in gone {
                    if let Some(claim) = self.cluster.claims.get(&k).cloned() {
                        self.claim_gone(&k, &claim);
                    }
                }
            }
        }
    }

    fn claim_gone(&mut self, k: &str, claim: &PersistentVolumeClaim) {
        self.cluster.claims.remove(k);
        self.backoff.reset(&Key::Claim(k.to_owned()));
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        self.expanding_noted.retain(|(u, _)| *u != uid);
        self.queue_volumes_of_claim(k, volume_name(claim));
    }

    fn class_event(&mut self, event: watcher::Event<StorageClass>) {
        let changed = match event {
            watcher::Event::Init => {
                self.relists[CLASSES].init();
                Vec::new()
            }
            watcher::Event::InitApply(class) | watcher::Event::Apply(class) => {
                let name = name_of(&class.metadata).to_owned();
                self.relists[CLASSES].seen(&name);
                self.cluster.classes.insert(name.clone(), class);
                vec![name]
            }
            watcher::Event::Delete(class) => {
                let name = name_of(&class.metadata).to_owned();
                self.cluster.classes.remove(&name);
                vec![name]
            }
            watcher::Event::InitDone => {
                let gone = self.relists[CLASSES].done(self.cluster.classes.keys());
                for name in &gone {
                    self.cluster.classes.remove(name);
                }
                gone
            }
        };
        if changed.is_empty() {
            return;
        }
        // A new default class concerns the claims without one: they are among the unbound.
        self.queue_unbound_claims();
        for (k, claim) in &self.cluster.claims {
            if changed.iter().any(|c| c == claim_class(claim)) {
                self.queue.add(Key::Claim(k.clone()));
            }
        }
    }

    fn node_event(&mut self, event: watcher::Event<Node>) {
        let changed = match event {
            watcher::Event::Init => {
                self.relists[NODES].init();
                None
            }
            watcher::Event::InitApply(node) | watcher::Event::Apply(node) => {
                let name = name_of(&node.metadata).to_owned();
                self.relists[NODES].seen(&name);
                let labels = node.metadata.labels.unwrap_or_default();
                let old = self.cluster.nodes.insert(name.clone(), labels.clone());
                (old.as_ref() != Some(&labels)).then_some(vec![name])
            }
            watcher::Event::Delete(node) => {
                let name = name_of(&node.metadata).to_owned();
                self.cluster.nodes.remove(&name);
                Some(vec![name])
            }
            watcher::Event::InitDone => {
                let gone = self.relists[NODES].done(self.cluster.nodes.keys());
                for name in &gone {
                    self.cluster.nodes.remove(name);
                }
                Some(gone)
            }
        };
        let Some(changed) = changed else { return };
        for (k, claim) in &self.cluster.claims {
            let selected = annotation(&claim.metadata, ANN_SELECTED_NODE);
            if !has_annotation(&claim.metadata, ANN_BIND_COMPLETED)
                && selected.is_some_and(|s| changed.iter().any(|n| n == s))
            {
                self.queue.add(Key::Claim(k.clone()));
            }
        }
    }

    async fn sync_next(&mut self) {
        let Some(k) = self.queue.pop() else { return };
        let result = match &k {
            Key::Volume(name) => self.sync_volume(name).await,
            Key::Claim(claim) => self.sync_claim(claim).await,
        };
        self.queue.done(&k);
        match result {
            Ok(()) => self.backoff.reset(&k),
            Err(e) => {
                tracing::debug!(?k, "persistentvolume controller: {e}");
                let delay = self.backoff.failed(&k);
                self.queue.add_after(k, delay, Instant::now());
            }
        }
    }

    async fn sync_claim(&mut self, k: &str) -> Result<(), String> {
        let mut recorded = Vec::new();
        for _ in 0..MAX_STEPS {
            let Some(claim) = self.cluster.claims.get(k) else {
                return Ok(());
            };
            let mut plan = claims::decide(claim, &self.cluster);
            let request = requested_quantity(claim)
                .map(|q| q.0.clone())
                .unwrap_or_default();
            let uid = claim.metadata.uid.clone().unwrap_or_default();
            plan.events.retain(|e| {
                e.reason != expansion::EXTERNAL_EXPANDING
                    || self.expanding_noted.insert((uid.clone(), request.clone()))
            });
            if !self.apply(plan, &mut recorded).await? {
                return Ok(());
            }
        }
        self.queue.add(Key::Claim(k.to_owned()));
        Ok(())
    }

    async fn sync_volume(&mut self, name: &str) -> Result<(), String> {
        let mut recorded = Vec::new();
        for _ in 0..MAX_STEPS {
            let Some(volume) = self.cluster.volumes.get(name).cloned() else {
                return Ok(());
            };
            let claim = self.claim_of(&volume).await?;
            let plan = volumes::decide(&volume, claim.as_ref());
            if let Some(k) = &plan.sync_claim {
                self.queue.add(Key::Claim(k.clone()));
            }
            if !self.apply(plan, &mut recorded).await? {
                return Ok(());
            }
        }
        self.queue.add(Key::Volume(name.to_owned()));
        Ok(())
    }

    /// The claim the volume is bound to, if it still exists with the uid of the volume's `claimRef`. The
    /// cache may not show yet a claim that was just made (a provisioner may be quicker than our watch), so
    /// before a volume is released the API server is asked, as upstream does.
    async fn claim_of(
        &mut self,
        volume: &PersistentVolume,
    ) -> Result<Option<PersistentVolumeClaim>, String> {
        let Some(k) = claim_ref_key(volume).filter(|_| !claim_ref_uid(volume).is_empty()) else {
            return Ok(None);
        };
        let uid = claim_ref_uid(volume);
        let cached = self.cluster.claims.get(&k);
        if let Some(claim) = cached
            && claim.metadata.uid.as_deref() == Some(uid)
        {
            return Ok(Some(claim.clone()));
        }
        if cached.is_none() && matches!(volume_phase(volume), VOLUME_RELEASED | VOLUME_FAILED) {
            return Ok(None);
        }
        let (namespace, name) = crate::api::split_key(&k);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        let found = tokio::time::timeout(CALL_TIMEOUT, api.get_opt(name))
            .await
            .map_err(|_| format!("reading claim {k}: timed out"))?
            .map_err(|e| format!("reading claim {k}: {}", api_message(&e)))?;
        let Some(claim) = found else {
            return Ok(None);
        };
        let matching = claim.metadata.uid.as_deref() == Some(uid);
        store(&mut self.cluster.claims, k, claim.clone());
        Ok(matching.then_some(claim))
    }

    /// Makes the plan's write and records its events (each once per sync): whether something was written.
    async fn apply(&mut self, plan: Plan, recorded: &mut Vec<Event>) -> Result<bool, String> {
        if let Some(error) = plan.retry {
            self.record(plan.events, recorded);
            return Err(error);
        }
        let Some(write) = plan.write else {
            self.record(plan.events, recorded);
            return Ok(false);
        };
        match tokio::time::timeout(CALL_TIMEOUT, self.write(&write)).await {
            Err(_) => Err("a write timed out".into()),
            Ok(Err(e)) if is_not_found(&e) => Ok(false),
            Ok(Err(e)) => Err(api_message(&e)),
            Ok(Ok(())) => {
                self.record(plan.events, recorded);
                Ok(true)
            }
        }
    }

    fn record(&self, events: Vec<Event>, recorded: &mut Vec<Event>) {
        for event in events {
            if recorded.contains(&event) {
                continue;
            }
            let recorder = match event.reason {
                expansion::EXTERNAL_EXPANDING => &self.expander,
                expansion::RESIZING | expansion::RESIZE_SUCCESSFUL => &self.resizer,
                _ => &self.binder,
            };
            recorder.record(event.clone());
            recorded.push(event);
        }
    }

    /// One write; its result goes into the cache.
    async fn write(&mut self, write: &Write) -> Result<(), gantry_client::kube::Error> {
        let params = PostParams::default();
        match write {
            Write::Volume(volume) | Write::VolumeStatus(volume) => {
                let api: Api<PersistentVolume> = Api::all(self.client.clone());
                let name = name_of(&volume.metadata);
                let written = if matches!(write, Write::Volume(_)) {
                    api.replace(name, &params, volume).await?
                } else {
                    api.replace_status(name, &params, volume).await?
                };
                let name = name_of(&written.metadata).to_owned();
                store(&mut self.cluster.volumes, name, written);
            }
            Write::Claim(claim) | Write::ClaimStatus(claim) => {
                let namespace = namespace_of(&claim.metadata);
                let api: Api<PersistentVolumeClaim> =
                    Api::namespaced(self.client.clone(), namespace);
                let name = name_of(&claim.metadata);
                let written = if matches!(write, Write::Claim(_)) {
                    api.replace(name, &params, claim).await?
                } else {
                    api.replace_status(name, &params, claim).await?
                };
                let k = key(namespace_of(&written.metadata), name_of(&written.metadata));
                store(&mut self.cluster.claims, k, written);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Fixtures: objects from JSON merged over sensible defaults.

    use super::*;
    use serde_json::{Value, json};

    /// JSON merge patch (`null` removes).
    pub(crate) fn merge(base: &mut Value, patch: Value) {
        match (base, patch) {
            (Value::Object(base), Value::Object(patch)) => {
                for (k, v) in patch {
                    if v.is_null() {
                        base.remove(&k);
                    } else {
                        merge(base.entry(k).or_insert(Value::Null), v);
                    }
                }
            }
            (base, patch) => *base = patch,
        }
    }

    fn from(mut base: Value, patch: Value) -> Value {
        merge(&mut base, patch);
        base
    }

    /// A 5Gi ReadWriteOnce Available volume `pv` without a class, retained.
    pub(crate) fn volume(patch: Value) -> PersistentVolume {
        serde_json::from_value(from(
            json!({"metadata": {"name": "pv", "uid": "pv-uid", "resourceVersion": "1"},
                "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": "/data"}},
                "status": {"phase": "Available"}}),
            patch,
        ))
        .unwrap()
    }

    /// A Pending claim `default/data` of 1Gi ReadWriteOnce, without a class.
    pub(crate) fn claim(patch: Value) -> PersistentVolumeClaim {
        serde_json::from_value(from(
            json!({"metadata": {"name": "data", "namespace": "default", "uid": "claim-uid",
                    "resourceVersion": "1"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                "status": {"phase": "Pending"}}),
            patch,
        ))
        .unwrap()
    }

    /// Gantry's `local-path` class (not marked default here).
    pub(crate) fn class(patch: Value) -> StorageClass {
        serde_json::from_value(from(
            json!({"metadata": {"name": "local-path"}, "provisioner": "gantry.io/local-path",
                "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete",
                "allowVolumeExpansion": true}),
            patch,
        ))
        .unwrap()
    }

    pub(crate) fn cluster(
        volumes: impl IntoIterator<Item = PersistentVolume>,
        claims: impl IntoIterator<Item = PersistentVolumeClaim>,
        classes: impl IntoIterator<Item = StorageClass>,
    ) -> Cluster {
        Cluster {
            volumes: volumes
                .into_iter()
                .map(|v| (name_of(&v.metadata).to_owned(), v))
                .collect(),
            claims: claims
                .into_iter()
                .map(|c| (key(namespace_of(&c.metadata), name_of(&c.metadata)), c))
                .collect(),
            classes: classes
                .into_iter()
                .map(|c| (name_of(&c.metadata).to_owned(), c))
                .collect(),
            nodes: BTreeMap::new(),
        }
    }

    #[test]
    fn the_cache_keeps_the_newer_copy_of_an_object() {
        let mut map = BTreeMap::new();
        store(
            &mut map,
            "pv".into(),
            volume(json!({"metadata": {"resourceVersion": "5"}})),
        );
        store(
            &mut map,
            "pv".into(),
            volume(json!({"metadata": {"resourceVersion": "3"}})),
        );
        assert_eq!(map["pv"].metadata.resource_version.as_deref(), Some("5"));
        // Another object of the same name (a new uid) replaces it whatever its version.
        store(
            &mut map,
            "pv".into(),
            volume(json!({"metadata": {"resourceVersion": "2", "uid": "new"}})),
        );
        assert_eq!(map["pv"].metadata.uid.as_deref(), Some("new"));
    }

    #[test]
    fn a_claim_and_its_provisioned_volume_converge_from_either_side() {
        // The node agent made the volume for the claim: the volume's sync hands over to the claim's,
        // which binds; then the volume's sync finds it Bound.
        let pv = volume(json!({"metadata": {"name": "pvc-claim-uid",
                "annotations": {"pv.kubernetes.io/provisioned-by": "gantry.io/local-path"}},
            "spec": {"storageClassName": "local-path", "persistentVolumeReclaimPolicy": "Delete",
                "claimRef": {"name": "data", "namespace": "default", "uid": "claim-uid"}},
            "status": {"phase": "Pending"}}));
        let pvc = claim(json!({"spec": {"storageClassName": "local-path"},
            "metadata": {"annotations": {"volume.kubernetes.io/selected-node": "n1"}}}));
        let mut c = cluster([pv], [pvc], [class(json!({}))]);
        let plan = volumes::decide(&c.volumes["pvc-claim-uid"], Some(&c.claims["default/data"]));
        assert_eq!(plan.sync_claim.as_deref(), Some("default/data"));
        for _ in 0..10 {
            let plan = claims::decide(&c.claims["default/data"], &c);
            match plan.write {
                Some(Write::Volume(v) | Write::VolumeStatus(v)) => {
                    c.volumes.insert(name_of(&v.metadata).to_owned(), v);
                }
                Some(Write::Claim(v) | Write::ClaimStatus(v)) => {
                    c.claims.insert("default/data".into(), v);
                }
                None => break,
            }
        }
        let plan = volumes::decide(&c.volumes["pvc-claim-uid"], Some(&c.claims["default/data"]));
        assert_eq!(plan, Plan::nothing());
        assert_eq!(volume_phase(&c.volumes["pvc-claim-uid"]), "Bound");
        // The claim deleted: Released, and left to the node agent.
        let plan = volumes::decide(&c.volumes["pvc-claim-uid"], None);
        let Some(Write::VolumeStatus(released)) = plan.write else {
            panic!("{plan:?}")
        };
        assert_eq!(volume_phase(&released), "Released");
        assert_eq!(volumes::decide(&released, None), Plan::nothing());
    }
}

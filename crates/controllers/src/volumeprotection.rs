//! Storage object in use protection, as upstream's `pvcprotection` and `pvprotection` controllers: a
//! PersistentVolumeClaim being deleted keeps its `kubernetes.io/pvc-protection` finalizer while a pod that
//! is scheduled and not terminated uses it (as a `persistentVolumeClaim` volume, or as the generic
//! ephemeral volume `<pod>-<volume>` it controls), so it stays Terminating until its pods are done; a
//! PersistentVolume being deleted keeps `kubernetes.io/pv-protection` while it is Bound. Objects that lack
//! the finalizer (made before admission added it) get it.
//!
//! One task owns the state: the claims and volumes that are being deleted or lack the finalizer, and
//! which claims each pod uses, by namespace; a pod change queues the claims it refers to. Before a claim's
//! finalizer goes, a live list of the namespace's pods confirms that none uses it (the watch may lag).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use gantry_client::k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use gantry_client::kube::api::{ListParams, PostParams};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use tokio::time::Instant;

use crate::api::{api_message, is_not_found, key, name_of, namespace_of, split_key};
use crate::cache::{Relist, watch_all};
use crate::pods;
use crate::queue::{Backoff, WorkQueue};

/// The finalizer that keeps a claim while pods use it.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The finalizer that keeps a volume while it is bound.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";
/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A claim a pod refers to by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimUse {
    pub claim: String,
    /// The generic ephemeral volume's claim (it counts only if the pod controls it).
    pub ephemeral: bool,
}

/// What a pod uses: its uid, and the claims it uses while it counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodUses {
    pub uid: String,
    pub uses: Vec<ClaimUse>,
    /// Every claim it names, whether it counts or not (what a change of the pod concerns).
    pub named: Vec<String>,
}

/// Whether the kubelet is done with the pod or it was force-deleted (`podIsShutDown`).
fn shut_down(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        && pod.metadata.deletion_grace_period_seconds == Some(0)
}

impl PodUses {
    /// What the pod uses: only a scheduled pod that is not terminated uses claims (an unscheduled one
    /// cannot start with a claim being deleted); an ephemeral claim stops counting once the pod is shut
    /// down.
    pub fn of(pod: &Pod) -> PodUses {
        let name = name_of(&pod.metadata);
        let spec = pod.spec.as_ref();
        let mut named = Vec::new();
        let mut uses = Vec::new();
        let counts = spec
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
            && !matches!(pods::phase(pod), "Succeeded" | "Failed");
        for volume in spec.and_then(|s| s.volumes.as_deref()).unwrap_or_default() {
            let (claim, ephemeral) = if let Some(source) = &volume.persistent_volume_claim {
                (source.claim_name.clone(), false)
            } else if volume.ephemeral.is_some() {
                (format!("{name}-{}", volume.name), true)
            } else {
                continue;
            };
            named.push(claim.clone());
            if counts && !(ephemeral && shut_down(pod)) {
                uses.push(ClaimUse { claim, ephemeral });
            }
        }
        PodUses {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            uses,
            named,
        }
    }

    /// Whether the pod uses the claim (of its namespace).
    pub fn uses(&self, claim: &PersistentVolumeClaim) -> bool {
        let name = name_of(&claim.metadata);
        let controller = pods::controller_of(&claim.metadata).map(|o| o.uid.as_str());
        self.uses
            .iter()
            .any(|u| u.claim == name && (!u.ephemeral || controller == Some(self.uid.as_str())))
    }
}

fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// Being deleted and still holding the finalizer (`IsDeletionCandidate`).
pub fn is_deletion_candidate(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.deletion_timestamp.is_some() && has_finalizer(meta, finalizer)
}

/// Not being deleted and without the finalizer (`NeedToAddFinalizer`).
pub fn needs_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.deletion_timestamp.is_none() && !has_finalizer(meta, finalizer)
}

/// What to do with an object's protection finalizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Keep,
    Add,
    Remove,
}

/// A claim's finalizer: it goes once the claim is being deleted and none of `pods` (its namespace's) uses
/// it.
pub fn claim_action<'a>(
    claim: &PersistentVolumeClaim,
    pods: impl IntoIterator<Item = &'a PodUses>,
) -> Action {
    if is_deletion_candidate(&claim.metadata, PVC_PROTECTION) {
        let mut pods = pods.into_iter();
        if pods.any(|p| p.uses(claim)) {
            Action::Keep
        } else {
            Action::Remove
        }
    } else if needs_finalizer(&claim.metadata, PVC_PROTECTION) {
        Action::Add
    } else {
        Action::Keep
    }
}

/// A volume's finalizer: it goes once the volume is being deleted and is not Bound.
pub fn volume_action(volume: &PersistentVolume) -> Action {
    let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref());
    if is_deletion_candidate(&volume.metadata, PV_PROTECTION) {
        if phase == Some("Bound") {
            Action::Keep
        } else {
            Action::Remove
        }
    } else if needs_finalizer(&volume.metadata, PV_PROTECTION) {
        Action::Add
    } else {
        Action::Keep
    }
}

/// The finalizers with `finalizer` added or removed.
fn with_finalizer(meta: &mut ObjectMeta, finalizer: &str, action: Action) {
    let finalizers = meta.finalizers.get_or_insert_with(Vec::new);
    match action {
        Action::Add => finalizers.push(finalizer.to_owned()),
        Action::Remove => finalizers.retain(|f| f != finalizer),
        Action::Keep => {}
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Claim(String),
    Volume(String),
}

/// Runs both protection controllers until their watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut claim_events = watch_all::<PersistentVolumeClaim>(&client);
    let mut volume_events = watch_all::<PersistentVolume>(&client);
    let mut pod_events = watch_all::<Pod>(&client);
    let mut controller = Controller::new(client);
    loop {
        let can_sync = controller.synced() && !controller.queue.is_empty();
        let wakeup = controller
            .queue
            .next_wakeup()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            Some(event) = claim_events.next() => match event {
                Ok(event) => controller.claim_event(event),
                Err(e) => tracing::warn!("pvc protection controller: watching persistentvolumeclaims: {e}"),
            },
            Some(event) = volume_events.next() => match event {
                Ok(event) => controller.volume_event(event),
                Err(e) => tracing::warn!("pv protection controller: watching persistentvolumes: {e}"),
            },
            Some(event) = pod_events.next() => match event {
                Ok(event) => controller.pod_event(event),
                Err(e) => tracing::warn!("pvc protection controller: watching pods: {e}"),
            },
            () = tokio::time::sleep_until(wakeup) => controller.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_sync => controller.sync_next().await,
        }
    }
}

struct Controller {
    client: Client,
    /// Claims (`namespace/name`) and volumes whose finalizer may have to change.
    claims: BTreeMap<String, PersistentVolumeClaim>,
    /// Every claim that exists (`namespace/name`): ephemeral volumes' claims are made only when missing.
    existing_claims: HashSet<String>,
    volumes: BTreeMap<String, PersistentVolume>,
    /// Pods by namespace, then name.
    pods: HashMap<String, HashMap<String, PodUses>>,
    relists: [Relist; 3],
    queue: WorkQueue<Key>,
    backoff: Backoff<Key>,
}

impl Controller {
    fn new(client: Client) -> Controller {
        Controller {
            client,
            claims: BTreeMap::new(),
            existing_claims: HashSet::new(),
            volumes: BTreeMap::new(),
            pods: HashMap::new(),
            relists: Default::default(),
            queue: WorkQueue::default(),
            backoff: Backoff::default(),
        }
    }

    fn synced(&self) -> bool {
        self.relists.iter().all(|r| r.synced)
    }

    fn claim_event(&mut self, event: watcher::Event<PersistentVolumeClaim>) {
        match event {
            watcher::Event::Init => self.relists[0].init(),
            watcher::Event::InitApply(claim) | watcher::Event::Apply(claim) => {
                let k = key(namespace_of(&claim.metadata), name_of(&claim.metadata));
                self.relists[0].seen(&k);
                self.existing_claims.insert(k.clone());
                let relevant = is_deletion_candidate(&claim.metadata, PVC_PROTECTION)
                    || needs_finalizer(&claim.metadata, PVC_PROTECTION);
                if relevant {
                    self.claims.insert(k.clone(), claim);
                    self.queue.add(Key::Claim(k));
                } else {
                    self.claims.remove(&k);
                }
            }
            watcher::Event::Delete(claim) => {
                let k = key(namespace_of(&claim.metadata), name_of(&claim.metadata));
                self.claims.remove(&k);
                self.existing_claims.remove(&k);
                self.backoff.reset(&Key::Claim(k));
            }
            watcher::Event::InitDone => {
                let listed: Vec<String> = self.claims.keys().cloned().collect();
                for k in self.relists[0].done(listed.iter()) {
                    self.claims.remove(&k);
                }
            }
        }
    }

    fn volume_event(&mut self, event: watcher::Event<PersistentVolume>) {
        match event {
            watcher::Event::Init => self.relists[1].init(),
            watcher::Event::InitApply(volume) | watcher::Event::Apply(volume) => {
                let name = name_of(&volume.metadata).to_owned();
                self.relists[1].seen(&name);
                if volume_action(&volume) == Action::Keep {
                    self.volumes.remove(&name);
                } else {
                    self.volumes.insert(name.clone(), volume);
                    self.queue.add(Key::Volume(name));
                }
            }
            watcher::Event::Delete(volume) => {
                let name = name_of(&volume.metadata).to_owned();
                self.volumes.remove(&name);
                self.backoff.reset(&Key::Volume(name));
            }
            watcher::Event::InitDone => {
                let listed: Vec<String> = self.volumes.keys().cloned().collect();
                for name in self.relists[1].done(listed.iter()) {
                    self.volumes.remove(&name);
                }
            }
        }
    }

    fn pod_event(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.relists[2].init(),
            watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                let ns = namespace_of(&pod.metadata).to_owned();
                let name = name_of(&pod.metadata).to_owned();
                self.relists[2].seen(&key(&ns, &name));
                let mut claims = crate::ephemeral::claims_for(&pod);
                claims.retain(|c| {
                    !self
                        .existing_claims
                        .contains(&key(&ns, c.metadata.name.as_deref().unwrap_or_default()))
                });
                if !claims.is_empty() {
                    tokio::spawn(crate::ephemeral::ensure(self.client.clone(), claims));
                }
                let uses = PodUses::of(&pod);
                let old = self
                    .pods
                    .entry(ns.clone())
                    .or_default()
                    .insert(name, uses.clone());
                if old.as_ref() != Some(&uses) {
                    self.queue_claims(&ns, old.iter().chain([&uses]));
                }
            }
            watcher::Event::Delete(pod) => {
                let ns = namespace_of(&pod.metadata).to_owned();
                self.pod_gone(&ns, name_of(&pod.metadata));
            }
            watcher::Event::InitDone => {
                let known: Vec<String> = self
                    .pods
                    .iter()
                    .flat_map(|(ns, pods)| pods.keys().map(move |name| key(ns, name)))
                    .collect();
                for k in self.relists[2].done(known.iter()) {
                    let (ns, name) = split_key(&k);
                    self.pod_gone(ns, name);
                }
            }
        }
    }

    fn pod_gone(&mut self, ns: &str, name: &str) {
        let Some(old) = self.pods.get_mut(ns).and_then(|p| p.remove(name)) else {
            return;
        };
        if self.pods.get(ns).is_some_and(HashMap::is_empty) {
            self.pods.remove(ns);
        }
        self.queue_claims(ns, [&old]);
    }

    /// Queues the claims being deleted that the pods name.
    fn queue_claims<'a>(&mut self, ns: &str, pods: impl IntoIterator<Item = &'a PodUses>) {
        for pod in pods {
            for claim in &pod.named {
                let k = key(ns, claim);
                if self.claims.contains_key(&k) {
                    self.queue.add(Key::Claim(k));
                }
            }
        }
    }

    async fn sync_next(&mut self) {
        let Some(k) = self.queue.pop() else { return };
        let result = match &k {
            Key::Claim(claim) => self.sync_claim(claim).await,
            Key::Volume(name) => self.sync_volume(name).await,
        };
        self.queue.done(&k);
        match result {
            Ok(()) => self.backoff.reset(&k),
            Err(e) => {
                tracing::debug!(?k, "volume protection controller: {e}");
                let delay = self.backoff.failed(&k);
                self.queue.add_after(k, delay, Instant::now());
            }
        }
    }

    async fn sync_claim(&mut self, k: &str) -> Result<(), String> {
        let Some(claim) = self.claims.get(k) else {
            return Ok(());
        };
        let (ns, _) = split_key(k);
        let cached = self.pods.get(ns).into_iter().flat_map(HashMap::values);
        let mut action = claim_action(claim, cached);
        if action == Action::Remove {
            // Confirm with a live list: a pod may be there that the watch has not shown yet.
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let listed = tokio::time::timeout(CALL_TIMEOUT, api.list(&ListParams::default()))
                .await
                .map_err(|_| format!("listing the pods of {ns}: timed out"))?
                .map_err(|e| format!("listing the pods of {ns}: {}", api_message(&e)))?;
            let live: Vec<PodUses> = listed.items.iter().map(PodUses::of).collect();
            action = claim_action(claim, &live);
        }
        if action == Action::Keep {
            return Ok(());
        }
        let mut updated = claim.clone();
        with_finalizer(&mut updated.metadata, PVC_PROTECTION, action);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let name = name_of(&updated.metadata).to_owned();
        let written = tokio::time::timeout(
            CALL_TIMEOUT,
            api.replace(&name, &PostParams::default(), &updated),
        )
        .await
        .map_err(|_| format!("writing claim {k}: timed out"))?;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(format!("writing claim {k}: {}", api_message(&e))),
        }
    }

    async fn sync_volume(&mut self, name: &str) -> Result<(), String> {
        let Some(volume) = self.volumes.get(name) else {
            return Ok(());
        };
        let action = volume_action(volume);
        if action == Action::Keep {
            return Ok(());
        }
        let mut updated = volume.clone();
        with_finalizer(&mut updated.metadata, PV_PROTECTION, action);
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let written = tokio::time::timeout(
            CALL_TIMEOUT,
            api.replace(name, &PostParams::default(), &updated),
        )
        .await
        .map_err(|_| format!("writing volume {name}: timed out"))?;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(format!("writing volume {name}: {}", api_message(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(value: Value) -> Pod {
        let mut base = json!({"metadata": {"name": "web", "namespace": "default", "uid": "pod-uid"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "tmp", "emptyDir": {}}]},
            "status": {"phase": "Running"}});
        crate::persistentvolume::tests::merge(&mut base, value);
        serde_json::from_value(base).unwrap()
    }

    fn deleting_claim(name: &str, extra: Value) -> PersistentVolumeClaim {
        let mut base = json!({"metadata": {"name": name, "namespace": "default",
            "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": [PVC_PROTECTION]}});
        crate::persistentvolume::tests::merge(&mut base, extra);
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_running_pod_uses_its_claims_and_its_ephemeral_ones() {
        let uses = PodUses::of(&pod(json!({})));
        assert_eq!(uses.named, ["data", "web-scratch"]);
        assert!(uses.uses(&deleting_claim("data", json!({}))));
        let owned = json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod",
            "name": "web", "uid": "pod-uid", "controller": true}]}});
        assert!(uses.uses(&deleting_claim("web-scratch", owned)));
        // A claim of that name the pod does not control is not its ephemeral volume.
        assert!(!uses.uses(&deleting_claim("web-scratch", json!({}))));
        assert!(!uses.uses(&deleting_claim("other", json!({}))));
    }

    #[test]
    fn finished_unscheduled_and_shut_down_pods_do_not_hold_claims() {
        let claim = deleting_claim("data", json!({}));
        for done in ["Succeeded", "Failed"] {
            let uses = PodUses::of(&pod(json!({"status": {"phase": done}})));
            assert!(!uses.uses(&claim), "{done}");
            assert_eq!(
                uses.named.len(),
                2,
                "still named: its changes concern the claims"
            );
        }
        let pending = PodUses::of(&pod(
            json!({"spec": {"nodeName": null}, "status": {"phase": "Pending"}}),
        ));
        assert!(!pending.uses(&claim));
        let owned = deleting_claim(
            "web-scratch",
            json!({"metadata": {"ownerReferences": [{"apiVersion": "v1",
            "kind": "Pod", "name": "web", "uid": "pod-uid", "controller": true}]}}),
        );
        let shut = PodUses::of(&pod(
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z",
            "deletionGracePeriodSeconds": 0}}),
        ));
        assert!(!shut.uses(&owned), "an ephemeral claim of a shut-down pod");
        assert!(
            shut.uses(&claim),
            "a claim a shut-down pod still names (upstream keeps it)"
        );
    }

    #[test]
    fn the_claim_finalizer_goes_once_no_pod_uses_it() {
        let claim = deleting_claim("data", json!({}));
        let running = PodUses::of(&pod(json!({})));
        let other = PodUses::of(&pod(json!({"spec": {"volumes": [{"name": "x",
            "persistentVolumeClaim": {"claimName": "x"}}]}})));
        assert_eq!(claim_action(&claim, [&running, &other]), Action::Keep);
        assert_eq!(claim_action(&claim, [&other]), Action::Remove);
        assert_eq!(claim_action(&claim, []), Action::Remove);
        // Not being deleted: the finalizer stays; one without it gets it.
        let live: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "data",
            "finalizers": [PVC_PROTECTION]}}))
            .unwrap();
        assert_eq!(claim_action(&live, []), Action::Keep);
        let bare: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "data"}})).unwrap();
        assert_eq!(claim_action(&bare, []), Action::Add);
        // Being deleted without the finalizer: nothing to do.
        let gone = deleting_claim("data", json!({"metadata": {"finalizers": ["other"]}}));
        assert_eq!(claim_action(&gone, []), Action::Keep);
    }

    #[test]
    fn the_volume_finalizer_goes_once_the_volume_is_not_bound() {
        let volume = |phase: &str, deleting: bool| -> PersistentVolume {
            let mut v = json!({"metadata": {"name": "pv1", "finalizers": [PV_PROTECTION]},
                "status": {"phase": phase}});
            if deleting {
                v["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
            }
            serde_json::from_value(v).unwrap()
        };
        assert_eq!(volume_action(&volume("Bound", true)), Action::Keep);
        assert_eq!(volume_action(&volume("Released", true)), Action::Remove);
        assert_eq!(volume_action(&volume("Available", true)), Action::Remove);
        assert_eq!(volume_action(&volume("Bound", false)), Action::Keep);
        let bare: PersistentVolume =
            serde_json::from_value(json!({"metadata": {"name": "pv1"}})).unwrap();
        assert_eq!(volume_action(&bare), Action::Add);
    }

    #[test]
    fn finalizers_are_added_and_removed_alone() {
        let mut meta = ObjectMeta {
            finalizers: Some(vec!["a".into(), PVC_PROTECTION.into()]),
            ..ObjectMeta::default()
        };
        with_finalizer(&mut meta, PVC_PROTECTION, Action::Remove);
        assert_eq!(meta.finalizers.as_deref(), Some(&["a".to_owned()][..]));
        with_finalizer(&mut meta, PVC_PROTECTION, Action::Add);
        assert_eq!(meta.finalizers.unwrap(), ["a", PVC_PROTECTION]);
    }
}

//! The node's persistent storage: what the agent knows of PersistentVolumeClaims and PersistentVolumes (one
//! reflector each), the paths pods mount for their claims, and the built-in local-path provisioner (like k3s's):
//! a claim of a class whose provisioner is [`PROVISIONER`], placed on this node by the scheduler (the claim's
//! `volume.kubernetes.io/selected-node`), gets a directory under the agent's storage directory and a
//! PersistentVolume bound to it (the PV controller completes the binding); a Released volume it provisioned
//! with reclaim policy Delete loses its directory, then its PV object.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gantry_client::events::{Event, Involved, Recorder};
use gantry_client::k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use gantry_client::k8s_openapi::api::storage::v1::StorageClass;
use gantry_client::kube::api::{DeleteParams, PostParams};
use gantry_client::kube::runtime::reflector::{self, Store};
use gantry_client::kube::runtime::{WatchStreamExt, watcher};
use gantry_client::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The provisioner name of the built-in local-path storage (the default StorageClass `local-path`).
pub const PROVISIONER: &str = "gantry.io/local-path";
/// The annotation the scheduler puts on a WaitForFirstConsumer claim: the node its volume must be made on.
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The label naming the node a local-path volume is on (its provisioner and reclaimer).
const NODE_LABEL: &str = "gantry.io/node";
/// How long a pod's volume set-up waits for its claim to be bound before reporting why (then it retries).
const CLAIM_WAIT: Duration = Duration::from_secs(3);

/// Claims and volumes as the API has them, and the node's local-path provisioner.
pub struct Storage {
    node: String,
    dir: PathBuf,
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    classes: Store<StorageClass>,
    /// Bumped on every change of the three.
    changed: watch::Sender<u64>,
    /// Claims (uids) being provisioned and volumes (names) being deleted right now.
    busy: Mutex<HashSet<String>>,
    client: Client,
    events: Recorder,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("node", &self.node)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Starts following claims, volumes and classes; provisions what is this node's to provision under `dir`.
    pub fn start(client: Client, node: String, dir: PathBuf) -> Arc<Storage> {
        let (claims, claims_writer) = reflector::store();
        let (volumes, volumes_writer) = reflector::store();
        let (classes, classes_writer) = reflector::store();
        let storage = Arc::new(Storage {
            node,
            dir,
            claims,
            volumes,
            classes,
            changed: watch::channel(0).0,
            busy: Mutex::new(HashSet::new()),
            events: Recorder::start(client.clone(), "gantry.io/local-path"),
            client: client.clone(),
        });
        let reflect = |stream: futures::stream::BoxStream<'static, ()>| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let mut stream = stream;
                while stream.next().await.is_some() {
                    storage.changed.send_modify(|n| *n += 1);
                }
            });
        };
        let config = watcher::Config::default;
        reflect(
            reflector::reflector(
                claims_writer,
                watcher(Api::<PersistentVolumeClaim>::all(client.clone()), config()),
            )
            .default_backoff()
            .map(drop)
            .boxed(),
        );
        reflect(
            reflector::reflector(
                volumes_writer,
                watcher(Api::<PersistentVolume>::all(client.clone()), config()),
            )
            .default_backoff()
            .map(drop)
            .boxed(),
        );
        reflect(
            reflector::reflector(
                classes_writer,
                watcher(Api::<StorageClass>::all(client), config()),
            )
            .default_backoff()
            .map(drop)
            .boxed(),
        );
        tokio::spawn(storage.clone().provision_and_reclaim());
        storage
    }

    /// The node path of the volume bound to claim `namespace/name`, waiting a little for the binding.
    pub async fn claim_path(&self, namespace: &str, name: &str) -> Result<PathBuf, String> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        loop {
            let why = match self.bound_path(namespace, name) {
                Ok(path) => return Ok(path),
                Err(why) => why,
            };
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(why),
            }
        }
    }

    fn bound_path(&self, namespace: &str, name: &str) -> Result<PathBuf, String> {
        let key = reflector::ObjectRef::new(name).within(namespace);
        let claim = self
            .claims
            .get(&key)
            .ok_or_else(|| format!("persistentvolumeclaim \"{name}\" not found"))?;
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        let phase = claim
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let volume = if !volume_name.is_empty() && phase == "Bound" {
            self.volumes
                .get(&reflector::ObjectRef::new(&volume_name))
                .ok_or_else(|| format!("persistentvolume \"{volume_name}\" not found"))?
        } else if let Some(volume) = self.provisioned_here_for(&claim) {
            volume
        } else {
            return Err(format!(
                "PVC {namespace}/{name} has non-bound phase (\"{phase}\") or empty pvc.Spec.VolumeName (\"{volume_name}\")"
            ));
        };
        let spec = volume.spec.clone().unwrap_or_default();
        if let Some(host_path) = spec.host_path {
            let path = PathBuf::from(&host_path.path);
            let kind = host_path.type_.unwrap_or_default();
            gantry_volumes::host_path::check(&path, &kind)?;
            return Ok(path);
        }
        if let Some(local) = spec.local {
            let path = PathBuf::from(&local.path);
            if !path.exists() {
                return Err(format!("path \"{}\" does not exist", local.path));
            }
            return Ok(path);
        }
        Err(format!(
            "persistentvolume \"{volume_name}\" is of a type this node cannot mount (only hostPath and local)"
        ))
    }

    /// The volume this node provisioned for `claim` and that no one else holds: used at once, without
    /// waiting for the PV controller's four writes (it can only bind that volume to that claim, whose uid
    /// the volume's `claimRef` names).
    fn provisioned_here_for(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Option<std::sync::Arc<PersistentVolume>> {
        let uid = claim.metadata.uid.as_deref()?;
        if claim.metadata.deletion_timestamp.is_some() || claim.spec.as_ref()?.volume_name.is_some()
        {
            return None;
        }
        let volume = self
            .volumes
            .get(&reflector::ObjectRef::new(&format!("pvc-{uid}")))?;
        let ours = self.made_here(&volume);
        let claimed = volume.spec.as_ref()?.claim_ref.as_ref()?.uid.as_deref() == Some(uid);
        let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref());
        (ours && claimed && matches!(phase, None | Some("Pending" | "Available" | "Bound")))
            .then_some(volume)
    }

    /// Whether this node's provisioner made `volume`.
    fn made_here(&self, volume: &PersistentVolume) -> bool {
        volume
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PROVISIONED_BY))
            .is_some_and(|p| p == PROVISIONER)
            && volume
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(NODE_LABEL))
                .is_some_and(|n| *n == self.node)
    }

    /// Provisions claims placed on this node and reclaims Released volumes it made, on every change.
    async fn provision_and_reclaim(self: Arc<Self>) {
        let mut changed = self.changed.subscribe();
        loop {
            for claim in self.claims.state() {
                if let Some(work) = self.to_provision(&claim) {
                    let storage = self.clone();
                    tokio::spawn(async move { storage.provision(work).await });
                }
            }
            for volume in self.volumes.state() {
                if self.to_reclaim(&volume) {
                    let storage = self.clone();
                    tokio::spawn(async move { storage.reclaim(volume).await });
                }
            }
            if changed.changed().await.is_err() {
                return;
            }
        }
    }

    /// A claim this node is to provision now (marked busy), with its class.
    fn to_provision(&self, claim: &PersistentVolumeClaim) -> Option<Provision> {
        let meta = &claim.metadata;
        let spec = claim.spec.as_ref()?;
        if meta.deletion_timestamp.is_some() || spec.volume_name.is_some() {
            return None;
        }
        let selected = meta.annotations.as_ref()?.get(SELECTED_NODE)?;
        if *selected != self.node {
            return None;
        }
        let class_name = spec.storage_class_name.clone()?;
        let class = self.classes.get(&reflector::ObjectRef::new(&class_name))?;
        if class.provisioner != PROVISIONER {
            return None;
        }
        let uid = meta.uid.clone()?;
        let volume = format!("pvc-{uid}");
        if self
            .volumes
            .get(&reflector::ObjectRef::new(&volume))
            .is_some()
        {
            return None;
        }
        if !self.lock_busy().insert(uid.clone()) {
            return None;
        }
        Some(Provision {
            claim: claim.clone(),
            class: class.as_ref().clone(),
            uid,
            volume,
        })
    }

    fn lock_busy(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn provision(&self, work: Provision) {
        let involved = claim_involved(&work.claim);
        let result = self.make_volume(&work).await;
        match &result {
            Ok(()) => self.events.record(Event {
                object: involved,
                warning: false,
                reason: "ProvisioningSucceeded",
                message: format!(
                    "Successfully provisioned volume {} on node {}",
                    work.volume, self.node
                ),
            }),
            Err(e) => {
                tracing::warn!(claim = %involved.name, "provisioning failed: {e}");
                self.events.record(Event {
                    object: involved,
                    warning: true,
                    reason: "ProvisioningFailed",
                    message: format!(
                        "failed to provision volume with StorageClass \"{}\": {e}",
                        work.class.metadata.name.clone().unwrap_or_default()
                    ),
                });
            }
        }
        if result.is_err() {
            // Retried after a pause (the next change, or the bump below, looks at the claim again).
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        self.lock_busy().remove(&work.uid);
        if result.is_err() {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// The directory and the PV of a claim.
    async fn make_volume(&self, work: &Provision) -> Result<(), String> {
        let claim = &work.claim;
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        let name = claim.metadata.name.clone().unwrap_or_default();
        let claim_json = serde_json::to_value(claim).map_err(|e| e.to_string())?;
        let request = claim_json
            .pointer("/spec/resources/requests/storage")
            .and_then(Value::as_str)
            .unwrap_or("0")
            .to_owned();
        let dir = self.dir.join(format!("{}_{namespace}_{name}", work.volume));
        let base = self.dir.clone();
        let needed = gantry_volumes::quantity::bytes(&request);
        let path = dir.clone();
        tokio::task::spawn_blocking(move || make_directory(&base, &path, needed))
            .await
            .map_err(|e| e.to_string())??;
        let spec = &claim_json["spec"];
        let volume = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": work.volume,
                "annotations": {PROVISIONED_BY: PROVISIONER},
                "labels": {NODE_LABEL: self.node},
            },
            "spec": {
                "capacity": {"storage": request},
                "accessModes": spec.get("accessModes").cloned().unwrap_or_else(|| json!(["ReadWriteOnce"])),
                "persistentVolumeReclaimPolicy": work.class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
                "storageClassName": work.class.metadata.name,
                "volumeMode": spec.get("volumeMode").cloned().unwrap_or_else(|| json!("Filesystem")),
                "hostPath": {"path": dir.to_string_lossy(), "type": "DirectoryOrCreate"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [self.node]}
                ]}]}},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": namespace,
                    "name": name,
                    "uid": work.uid,
                },
            },
        });
        let volume: PersistentVolume = serde_json::from_value(volume).map_err(|e| e.to_string())?;
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &volume).await {
            Ok(_) => Ok(()),
            Err(gantry_client::kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(format!("creating the PersistentVolume: {e}")),
        }
    }

    /// A Released volume this node provisioned, whose reclaim policy is Delete (marked busy).
    fn to_reclaim(&self, volume: &PersistentVolume) -> bool {
        let provisioned_here = self.made_here(volume);
        let released = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        let delete = volume
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            == Some("Delete");
        let name = volume.metadata.name.clone().unwrap_or_default();
        provisioned_here
            && released
            && delete
            && volume.metadata.deletion_timestamp.is_none()
            && self.lock_busy().insert(name)
    }

    async fn reclaim(&self, volume: std::sync::Arc<PersistentVolume>) {
        let name = volume.metadata.name.clone().unwrap_or_default();
        let path = volume
            .spec
            .as_ref()
            .and_then(|s| s.host_path.as_ref())
            .map(|h| PathBuf::from(&h.path));
        let removed = match path {
            // Only what this provisioner made, under its own directory, is ever removed.
            Some(path) if path.starts_with(&self.dir) && path != self.dir => {
                tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                    _ => Ok(()),
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
            }
            _ => Err("the volume's path is not under the provisioner's directory".into()),
        };
        let result = match removed {
            Ok(()) => {
                let api: Api<PersistentVolume> = Api::all(self.client.clone());
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(gantry_client::kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::warn!(volume = %name, "deleting the volume failed: {e}");
            self.events.record(Event {
                object: Involved {
                    api_version: "v1",
                    kind: "PersistentVolume",
                    namespace: String::new(),
                    name: name.clone(),
                    uid: volume.metadata.uid.clone().unwrap_or_default(),
                },
                warning: true,
                reason: "VolumeFailedDelete",
                message: e.clone(),
            });
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        self.lock_busy().remove(&name);
        if result.is_err() {
            self.changed.send_modify(|n| *n += 1);
        }
    }
}

/// A claim to provision.
struct Provision {
    claim: PersistentVolumeClaim,
    class: StorageClass,
    uid: String,
    volume: String,
}

fn claim_involved(claim: &PersistentVolumeClaim) -> Involved {
    Involved {
        api_version: "v1",
        kind: "PersistentVolumeClaim",
        namespace: claim.metadata.namespace.clone().unwrap_or_default(),
        name: claim.metadata.name.clone().unwrap_or_default(),
        uid: claim.metadata.uid.clone().unwrap_or_default(),
    }
}

/// Makes a volume's directory (mode 0777, so pods running as any user can write, as local-path's), refusing
/// when the file system holding `base` has less room than the claim asks for.
fn make_directory(base: &Path, dir: &Path, needed: u64) -> Result<(), String> {
    std::fs::create_dir_all(base).map_err(|e| format!("creating {}: {e}", base.display()))?;
    let stats = nix::sys::statvfs::statvfs(base)
        .map_err(|e| format!("reading the free space of {}: {e}", base.display()))?;
    let available = stats.blocks_available() as u64 * stats.fragment_size() as u64;
    if available < needed {
        return Err(format!(
            "not enough space on node: {} bytes requested, {available} bytes available in {}",
            needed,
            base.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
        .map_err(|e| format!("setting the mode of {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_refused_when_the_disk_has_less_room_than_asked() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("pvc-1");
        let error = make_directory(base.path(), &dir, u64::MAX).unwrap_err();
        assert!(error.contains("not enough space on node"), "{error}");
        assert!(!dir.exists());
        make_directory(base.path(), &dir, 1).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o777);
    }
}

//! A pod's volumes on this node, each at `pods/<uid>/volumes/<name>` (what the containers bind-mount):
//! emptyDir (a directory, or a tmpfs for `medium: Memory`), hostPath (checked by its `type`, then linked),
//! persistentVolumeClaim (linked to the bound volume's path, see [`crate::storage`]), nfs (mounted), and the
//! volumes the API fills — configMap, secret, downwardAPI, projected — written with the kubelet's atomic
//! layout (secrets and projected volumes on tmpfs, never on disk) and rewritten in place when what they show
//! changes: each ConfigMap or Secret a pod mounts is watched (one watch per object, however many pods mount
//! it; none once it is immutable), pods' labels and annotations are followed, and service account tokens are
//! renewed at 80 % of their lifetime.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gantry_client::k8s_openapi::api::authentication::v1::{
    BoundObjectReference, TokenRequest, TokenRequestSpec,
};
use gantry_client::k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use gantry_client::kube::api::PostParams;
use gantry_client::kube::runtime::{WatchStreamExt, watcher};
use gantry_client::{Api, Client, kube};
use gantry_volumes::payload::{self, Payload, Reference};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::storage::Storage;

/// How long a volume's set-up waits for the first listing of a ConfigMap or Secret it shows.
const LIST_WAIT: Duration = Duration::from_secs(10);
/// How often service account tokens are looked at for renewal.
const TOKEN_CHECK: Duration = Duration::from_secs(30);

/// A volume that could not be set up, and why (the kubelet's `FailedMount` event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeError {
    pub volume: String,
    pub message: String,
}

impl std::fmt::Display for VolumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MountVolume.SetUp failed for volume \"{}\" : {}",
            self.volume, self.message
        )
    }
}

/// The volumes of the pods on this node.
pub struct VolumeManager {
    client: Client,
    pods_dir: PathBuf,
    /// The node's allocatable resources (what downward API resource limits default to).
    allocatable: Value,
    storage: Arc<Storage>,
    objects: ConfigObjects,
    /// Pods whose volumes are set up, by uid: followed for changes.
    pods: Mutex<HashMap<String, Value>>,
    /// Service account tokens issued, by pod uid, audience and lifetime: the token and when it was issued.
    tokens: Mutex<HashMap<TokenKey, (String, tokio::time::Instant)>>,
}

type TokenKey = (String, Option<String>, i64);

impl std::fmt::Debug for VolumeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeManager")
            .field("pods_dir", &self.pods_dir)
            .finish_non_exhaustive()
    }
}

impl VolumeManager {
    /// A manager writing under `pods_dir`; it follows ConfigMaps, Secrets and tokens in a task of its own.
    pub fn start(
        client: Client,
        pods_dir: PathBuf,
        allocatable: Value,
        storage: Arc<Storage>,
    ) -> Arc<VolumeManager> {
        let (changes, changed) = mpsc::unbounded_channel();
        let manager = Arc::new(VolumeManager {
            objects: ConfigObjects {
                client: client.clone(),
                entries: Mutex::new(HashMap::new()),
                changes,
            },
            client,
            pods_dir,
            allocatable,
            storage,
            pods: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        });
        tokio::spawn(manager.clone().follow(changed));
        manager
    }

    /// The node's allocatable resources.
    pub fn allocatable(&self) -> &Value {
        &self.allocatable
    }

    /// Sets up every volume of `pod`; the first that cannot be, and why.
    pub async fn set_up(&self, pod: &Value) -> Result<(), VolumeError> {
        let uid = text(pod, "/metadata/uid");
        // Registered first, so that a change arriving while the volumes are written is not missed.
        lock(&self.pods).insert(uid.clone(), pod.clone());
        let root = self.pods_dir.join(&uid).join("volumes");
        for volume in volumes(pod) {
            let name = volume.get("name").and_then(Value::as_str).unwrap_or("");
            self.set_up_one(pod, volume, &root.join(name))
                .await
                .map_err(|message| VolumeError {
                    volume: name.to_owned(),
                    message,
                })?;
        }
        Ok(())
    }

    /// Forgets the pod and unmounts what its volumes mounted (their files go with the pod's directory).
    pub fn tear_down(&self, uid: &str) {
        lock(&self.pods).remove(uid);
        lock(&self.tokens).retain(|(pod, _, _), _| pod != uid);
        self.objects.release(uid);
        let root = self.pods_dir.join(uid).join("volumes");
        if let Err(e) = gantry_volumes::mounts::unmount_all_under(&root) {
            tracing::warn!(pod = %uid, "unmounting the pod's volumes: {e}");
        }
    }

    /// A new version of a pod whose volumes are set up: its downward API files follow its labels and
    /// annotations.
    pub async fn pod_changed(&self, pod: &Value) {
        let uid = text(pod, "/metadata/uid");
        let changed = {
            let mut pods = lock(&self.pods);
            match pods.get_mut(&uid) {
                Some(old)
                    if ["/metadata/labels", "/metadata/annotations"]
                        .iter()
                        .any(|p| old.pointer(p) != pod.pointer(p)) =>
                {
                    *old = pod.clone();
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.refresh(pod, |v| {
                v.get("downwardAPI").is_some() || v.get("projected").is_some()
            })
            .await;
        }
    }

    async fn set_up_one(&self, pod: &Value, volume: &Value, dir: &Path) -> Result<(), String> {
        if let Some(source) = volume.get("emptyDir") {
            return empty_dir(dir, source);
        }
        if let Some(source) = volume.get("hostPath") {
            let path = source.get("path").and_then(Value::as_str).unwrap_or("");
            let kind = source.get("type").and_then(Value::as_str).unwrap_or("");
            gantry_volumes::host_path::check(Path::new(path), kind)?;
            return link(dir, Path::new(path));
        }
        if let Some(claim) = claim_name(pod, volume) {
            let namespace = text(pod, "/metadata/namespace");
            let path = self.storage.claim_path(&namespace, &claim).await?;
            return link(dir, &path);
        }
        if let Some(source) = volume.get("nfs") {
            return nfs(dir, source);
        }
        if is_api_volume(volume) {
            return self.write_api_volume(pod, volume, dir).await;
        }
        let kind = volume
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "name"))
            .cloned()
            .unwrap_or_default();
        Err(format!("{kind} volumes are not supported by this node"))
    }

    /// Writes a configMap, secret, downwardAPI or projected volume from the objects it shows.
    async fn write_api_volume(
        &self,
        pod: &Value,
        volume: &Value,
        dir: &Path,
    ) -> Result<(), String> {
        let namespace = text(pod, "/metadata/namespace");
        let uid = text(pod, "/metadata/uid");
        let mut fetched = Fetched::default();
        for reference in payload::references(volume) {
            match reference {
                Reference::ConfigMap(name) => {
                    let key = ObjectKey::new(false, &namespace, &name);
                    let object = self.objects.get(&key, &uid).await?;
                    fetched.config_maps.insert(name, object);
                }
                Reference::Secret(name) => {
                    let key = ObjectKey::new(true, &namespace, &name);
                    let object = self.objects.get(&key, &uid).await?;
                    fetched.secrets.insert(name, object);
                }
                Reference::Token {
                    audience,
                    expiration_seconds,
                } => {
                    let token = self.token(pod, audience.clone(), expiration_seconds).await;
                    fetched.tokens.insert((audience, expiration_seconds), token);
                }
            }
        }
        let files = self.payload(pod, volume, &fetched)?;
        let sensitive = volume.get("secret").is_some() || volume.get("projected").is_some();
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || {
            if sensitive {
                gantry_volumes::mounts::tmpfs(&dir, None, 0o755)
            } else {
                std::fs::create_dir_all(&dir)
            }
            .map_err(|e| format!("preparing {}: {e}", dir.display()))?;
            gantry_volumes::atomic::write(&dir, &files)
                .map(drop)
                .map_err(|e| format!("writing the volume's files: {e}"))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    fn payload(&self, pod: &Value, volume: &Value, fetched: &Fetched) -> Result<Payload, String> {
        let result = if let Some(source) = volume.get("configMap") {
            let name = source.get("name").and_then(Value::as_str).unwrap_or("");
            payload::config_map(source, fetched.config_map_ref(name))
        } else if let Some(source) = volume.get("secret") {
            let name = source
                .get("secretName")
                .and_then(Value::as_str)
                .unwrap_or("");
            payload::secret(source, fetched.secret_ref(name))
        } else if let Some(source) = volume.get("downwardAPI") {
            payload::downward_api(source, pod, &self.allocatable)
        } else if let Some(source) = volume.get("projected") {
            payload::projected(source, fetched, pod, &self.allocatable)
        } else {
            return Ok(Payload::new());
        };
        result.map_err(|e| e.to_string())
    }

    /// A service account token for the pod, bound to it: the one issued before while it is younger than
    /// 80 % of its lifetime, else a new one (TokenRequest).
    async fn token(
        &self,
        pod: &Value,
        audience: Option<String>,
        expiration_seconds: i64,
    ) -> Result<String, String> {
        let key = (
            text(pod, "/metadata/uid"),
            audience.clone(),
            expiration_seconds,
        );
        let fresh = Duration::from_secs(expiration_seconds.max(1) as u64 * 8 / 10);
        if let Some((token, issued)) = lock(&self.tokens).get(&key)
            && issued.elapsed() < fresh
        {
            return Ok(token.clone());
        }
        let account = pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .unwrap_or("default");
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audience.into_iter().collect(),
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(text(pod, "/metadata/name")),
                    uid: Some(text(pod, "/metadata/uid")),
                }),
            },
            ..TokenRequest::default()
        };
        let accounts: Api<ServiceAccount> =
            Api::namespaced(self.client.clone(), &text(pod, "/metadata/namespace"));
        let issued = accounts
            .create_token_request(account, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("failed to fetch token: {e}"))?;
        let token = issued.status.map(|s| s.token).unwrap_or_default();
        lock(&self.tokens).insert(key, (token.clone(), tokio::time::Instant::now()));
        Ok(token)
    }

    /// Rewrites the API-filled volumes of `pod` that `which` selects (unchanged files are left alone).
    async fn refresh(&self, pod: &Value, which: impl Fn(&Value) -> bool) {
        let uid = text(pod, "/metadata/uid");
        let registered = || lock(&self.pods).contains_key(&uid);
        if !registered() {
            return;
        }
        let root = self.pods_dir.join(&uid).join("volumes");
        for volume in volumes(pod).filter(|v| is_api_volume(v) && which(v)) {
            let name = volume.get("name").and_then(Value::as_str).unwrap_or("");
            if let Err(e) = self.write_api_volume(pod, volume, &root.join(name)).await {
                tracing::warn!(volume = %name, "updating a volume: {e}");
            }
        }
        // A tear_down while these writes ran unmounted before them: undo what they mounted again.
        if !registered()
            && let Err(e) = gantry_volumes::mounts::unmount_all_under(&root)
        {
            tracing::warn!(pod = %uid, "unmounting the volumes of a pod torn down: {e}");
        }
    }

    /// Rewrites the volumes showing an object that changed, and renews tokens due, for as long as the agent
    /// runs.
    async fn follow(self: Arc<Self>, mut changed: mpsc::UnboundedReceiver<ObjectKey>) {
        let mut tokens = tokio::time::interval(TOKEN_CHECK);
        loop {
            tokio::select! {
                key = changed.recv() => {
                    let Some(key) = key else { return };
                    let users = self.objects.users(&key);
                    let pods: Vec<Value> = {
                        let pods = lock(&self.pods);
                        users.iter().filter_map(|uid| pods.get(uid).cloned()).collect()
                    };
                    let (manager, key) = (&self, &key);
                    futures::future::join_all(pods.iter().map(|pod| async move {
                        manager.refresh(pod, |v| shows(v, key)).await
                    }))
                    .await;
                }
                _ = tokens.tick() => {
                    let pods: Vec<Value> = lock(&self.pods).values().cloned().collect();
                    for pod in pods {
                        self.refresh(&pod, |v| {
                            payload::references(v)
                                .iter()
                                .any(|r| matches!(r, Reference::Token { .. }))
                        })
                        .await;
                    }
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn volumes(pod: &Value) -> impl Iterator<Item = &Value> {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The claim a volume mounts: a `persistentVolumeClaim`'s, or the one made for a generic `ephemeral` volume
/// (`<pod>-<volume>`, by the ephemeral volume controller).
pub fn claim_name(pod: &Value, volume: &Value) -> Option<String> {
    if let Some(claim) = volume.pointer("/persistentVolumeClaim/claimName") {
        return claim.as_str().map(str::to_owned);
    }
    volume.get("ephemeral")?;
    let name = volume.get("name").and_then(Value::as_str)?;
    Some(format!("{}-{name}", text(pod, "/metadata/name")))
}

/// A volume whose files come from the API (configMap, secret, downwardAPI, projected).
pub(crate) fn is_api_volume(volume: &Value) -> bool {
    ["configMap", "secret", "downwardAPI", "projected"]
        .iter()
        .any(|k| volume.get(*k).is_some())
}

/// Whether `volume` shows the object `key` names.
fn shows(volume: &Value, key: &ObjectKey) -> bool {
    payload::references(volume).iter().any(|r| match r {
        Reference::ConfigMap(name) => !key.secret && *name == key.name,
        Reference::Secret(name) => key.secret && *name == key.name,
        Reference::Token { .. } => false,
    })
}

/// An emptyDir: a directory anyone in the pod can write (0777, as the kubelet's), or a tmpfs of at most its
/// `sizeLimit` for `medium: Memory`.
fn empty_dir(dir: &Path, source: &Value) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("preparing {}: {e}", dir.display());
    if source.get("medium").and_then(Value::as_str) == Some("Memory") {
        let size = source
            .get("sizeLimit")
            .and_then(Value::as_str)
            .map(gantry_volumes::quantity::bytes);
        return gantry_volumes::mounts::tmpfs(dir, size, 0o777).map_err(failed);
    }
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(failed)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).map_err(failed)
}

/// Makes `dir` a symbolic link to `target` (what the containers' bind mounts resolve).
fn link(dir: &Path, target: &Path) -> Result<(), String> {
    if std::fs::read_link(dir).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let failed = |e: std::io::Error| format!("linking {}: {e}", dir.display());
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    match std::fs::remove_file(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e)),
        _ => {}
    }
    std::os::unix::fs::symlink(target, dir).map_err(failed)
}

/// Mounts an NFS export with the node's NFS client (`mount.nfs`, from Debian's nfs-common).
fn nfs(dir: &Path, source: &Value) -> Result<(), String> {
    if gantry_volumes::mounts::is_mount_point(dir) {
        return Ok(());
    }
    let helper = ["/sbin/mount.nfs", "/usr/sbin/mount.nfs"];
    if !helper.iter().any(|p| Path::new(p).exists()) {
        return Err("the node has no NFS client (mount.nfs is missing: install nfs-common)".into());
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("nfs"))
    {
        return Err("the node's kernel has no NFS support (no nfs in /proc/filesystems)".into());
    }
    let server = source.get("server").and_then(Value::as_str).unwrap_or("");
    let path = source.get("path").and_then(Value::as_str).unwrap_or("");
    std::fs::create_dir_all(dir).map_err(|e| format!("preparing {}: {e}", dir.display()))?;
    let mut command = std::process::Command::new("mount");
    command.args(["-t", "nfs"]);
    if source.get("readOnly").and_then(Value::as_bool) == Some(true) {
        command.args(["-o", "ro"]);
    }
    let output = command
        .arg(format!("{server}:{path}"))
        .arg(dir)
        .output()
        .map_err(|e| format!("running mount: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// What a volume's files were made from: ConfigMaps and Secrets (`None`: absent) and tokens.
#[derive(Default)]
struct Fetched {
    config_maps: BTreeMap<String, Option<Value>>,
    secrets: BTreeMap<String, Option<Value>>,
    tokens: BTreeMap<(Option<String>, i64), Result<String, String>>,
}

impl Fetched {
    fn config_map_ref(&self, name: &str) -> Option<&Value> {
        self.config_maps.get(name).and_then(Option::as_ref)
    }
    fn secret_ref(&self, name: &str) -> Option<&Value> {
        self.secrets.get(name).and_then(Option::as_ref)
    }
}

impl payload::Sources for Fetched {
    fn config_map(&self, name: &str) -> Option<Value> {
        self.config_map_ref(name).cloned()
    }
    fn secret(&self, name: &str) -> Option<Value> {
        self.secret_ref(name).cloned()
    }
    fn token(&self, audience: Option<&str>, expiration_seconds: i64) -> Result<String, String> {
        self.tokens
            .get(&(audience.map(str::to_owned), expiration_seconds))
            .cloned()
            .unwrap_or_else(|| Err("no token was requested".into()))
    }
}

/// A ConfigMap or Secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ObjectKey {
    secret: bool,
    namespace: String,
    name: String,
}

impl ObjectKey {
    fn new(secret: bool, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            secret,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// The ConfigMaps and Secrets pods mount, each watched once for all the pods that use it.
struct ConfigObjects {
    client: Client,
    entries: Mutex<HashMap<ObjectKey, Watched>>,
    /// Where changes are announced (not the first listing).
    changes: mpsc::UnboundedSender<ObjectKey>,
}

struct Watched {
    /// `None` until first listed; then the object, `None` while absent.
    latest: watch::Receiver<Option<Option<Value>>>,
    users: HashSet<String>,
    task: tokio::task::AbortHandle,
}

impl ConfigObjects {
    /// The object as the API has it now (`None`: absent), watched from now on for the pod `user`; an error
    /// when the API does not list it in time.
    async fn get(&self, key: &ObjectKey, user: &str) -> Result<Option<Value>, String> {
        let mut latest = {
            let mut entries = lock(&self.entries);
            let entry = entries.entry(key.clone()).or_insert_with(|| {
                let (sender, latest) = watch::channel(None);
                let task = if key.secret {
                    let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
                    tokio::spawn(follow(api, key.clone(), sender, self.changes.clone()))
                } else {
                    let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &key.namespace);
                    tokio::spawn(follow(api, key.clone(), sender, self.changes.clone()))
                };
                Watched {
                    latest,
                    users: HashSet::new(),
                    task: task.abort_handle(),
                }
            });
            entry.users.insert(user.to_owned());
            entry.latest.clone()
        };
        match tokio::time::timeout(LIST_WAIT, latest.wait_for(Option::is_some)).await {
            Ok(listed) => Ok(listed.ok().and_then(|v| v.clone()).flatten()),
            Err(_) => {
                let kind = if key.secret { "secret" } else { "configmap" };
                Err(format!("timed out reading {kind} {:?}", key.name))
            }
        }
    }

    fn users(&self, key: &ObjectKey) -> HashSet<String> {
        lock(&self.entries)
            .get(key)
            .map(|w| w.users.clone())
            .unwrap_or_default()
    }

    /// The pod `user` no longer needs any object; objects no pod needs are no longer watched.
    fn release(&self, user: &str) {
        lock(&self.entries).retain(|_, watched| {
            watched.users.remove(user);
            let keep = !watched.users.is_empty();
            if !keep {
                watched.task.abort();
            }
            keep
        });
    }
}

/// Follows one object (by a field selector on its name) into `latest`, announcing changes after the first
/// listing; stops once the object is immutable (its contents can no longer change).
async fn follow<K>(
    api: Api<K>,
    key: ObjectKey,
    latest: watch::Sender<Option<Option<Value>>>,
    changes: mpsc::UnboundedSender<ObjectKey>,
) where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + 'static,
    K::DynamicType: Default,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={}", key.name));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut listed: Option<Value> = None;
    while let Some(event) = stream.next().await {
        let now = match event {
            Ok(watcher::Event::Init) => {
                listed = None;
                continue;
            }
            Ok(watcher::Event::InitApply(object)) => {
                listed = serde_json::to_value(object).ok();
                continue;
            }
            Ok(watcher::Event::InitDone) => listed.take(),
            Ok(watcher::Event::Apply(object)) => serde_json::to_value(object).ok(),
            Ok(watcher::Event::Delete(_)) => None,
            Err(e) => {
                tracing::warn!(object = %key.name, "watching a mounted object: {e}");
                continue;
            }
        };
        let first = latest.borrow().is_none();
        let immutable = now
            .as_ref()
            .and_then(|o| o.get("immutable"))
            .and_then(Value::as_bool)
            == Some(true);
        let data = |o: &Option<Value>| {
            o.as_ref()
                .map(|o| (o.get("data").cloned(), o.get("binaryData").cloned()))
        };
        let changed = latest.borrow().as_ref().map(data) != Some(data(&now));
        latest.send_replace(Some(now));
        if changed && !first {
            let _ = changes.send(key.clone());
        }
        if immutable {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_memory_empty_dir_is_a_tmpfs_of_its_size_limit() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("cache");
        empty_dir(&dir, &json!({"medium": "Memory", "sizeLimit": "1Mi"})).unwrap();
        assert!(gantry_volumes::mounts::is_mount_point(&dir));
        let too_big = std::fs::write(dir.join("f"), vec![0u8; 2 << 20]);
        gantry_volumes::mounts::unmount_all_under(base.path()).unwrap();
        assert!(too_big.is_err(), "a 2 MiB file fit in a 1 MiB tmpfs");
    }

    #[test]
    fn a_disk_empty_dir_is_writable_by_anyone_and_kept() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("data");
        empty_dir(&dir, &json!({})).unwrap();
        std::fs::write(dir.join("f"), "kept").unwrap();
        empty_dir(&dir, &json!({})).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "kept");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o777
        );
    }

    #[test]
    fn links_point_where_asked_and_are_replaced() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("volumes/host");
        link(&dir, Path::new("/tmp")).unwrap();
        assert_eq!(std::fs::read_link(&dir).unwrap(), Path::new("/tmp"));
        link(&dir, Path::new("/var")).unwrap();
        assert_eq!(std::fs::read_link(&dir).unwrap(), Path::new("/var"));
    }

    #[test]
    fn volumes_show_the_objects_they_reference() {
        let volume = json!({"name": "v", "projected": {"sources": [
            {"configMap": {"name": "a"}}, {"secret": {"name": "b"}}]}});
        assert!(shows(&volume, &ObjectKey::new(false, "ns", "a")));
        assert!(shows(&volume, &ObjectKey::new(true, "ns", "b")));
        assert!(!shows(&volume, &ObjectKey::new(true, "ns", "a")));
    }
}

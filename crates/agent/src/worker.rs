//! The pod worker: one task per pod bound to this node. It starts the pod's sandbox, runs its init containers
//! in order (a native sidecar, an init container with `restartPolicy: Always`, keeps running beside what comes
//! after it once it has started, until the pod's containers are done for good), then its containers, probes
//! them (startup, then readiness and liveness), restarts them as the pod's `restartPolicy` says (with
//! back-off), writes the pod's status whenever what it observes changes, records events of what happened
//! (pulls, starts, kills, back-offs, failed probes and hooks: [`crate::events`]), and when the pod is deleted
//! stops everything (each container gets the grace period) and completes the deletion.
//!
//! Containers and the API are behind [`ContainerHost`] and [`PodApi`], so the logic here is tested with fakes;
//! the agent wires in the runtime, image store and API client.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::events::{self, Event, EventType};
use crate::launch::{self, EnvSources, ImageDefaults, Launch};
use crate::probes::{self, Kind};
use crate::restart::{self, Backoff};
use crate::status::{self, ContainerObservation, ContainerState, PodObservation};

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The container's policy, defaulted as the API server defaults it (`Always` for `:latest` or no tag).
    pub fn of(container: &Value) -> PullPolicy {
        match container.get("imagePullPolicy").and_then(Value::as_str) {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some(_) => PullPolicy::IfNotPresent,
            None => {
                let image = container
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let tag = image
                    .rsplit_once(':')
                    .map(|(_, t)| t)
                    .filter(|t| !t.contains('/'));
                if image.contains('@') || tag.is_some_and(|t| t != "latest") {
                    PullPolicy::IfNotPresent
                } else {
                    PullPolicy::Always
                }
            }
        }
    }
}

/// A pod's sandbox: what holds its namespaces, and its IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    pub id: String,
    pub ip: Option<String>,
}

/// A container that started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub id: String,
    pub started_at: String,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: i32,
    /// `Completed`, `Error`, `OOMKilled`.
    pub reason: String,
    pub finished_at: String,
}

/// Why a step failed, as container states name it (`ErrImagePull`, `CreateContainerError`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct HostError {
    pub reason: String,
    pub message: String,
}

/// What runs containers on this node.
#[async_trait]
pub trait ContainerHost: Send + Sync + 'static {
    /// Makes the image present as `policy` says; its id and config.
    async fn image(
        &self,
        image: &str,
        policy: PullPolicy,
    ) -> Result<(String, ImageDefaults), HostError>;
    async fn start_sandbox(&self, pod: &Value) -> Result<SandboxInfo, HostError>;
    async fn start_container(
        &self,
        pod: &Value,
        sandbox: &SandboxInfo,
        container: &Value,
        launch: &Launch,
    ) -> Result<Started, HostError>;
    /// A container of this pod called `name` that is still running from before (the agent restarted): it is
    /// adopted rather than started again.
    async fn running_container(&self, pod: &Value, name: &str) -> Option<Started>;
    /// Resolves once the container has exited.
    async fn wait_container(&self, id: &str) -> ExitInfo;
    /// Runs `command` in the running container (for exec probes); its exit code.
    async fn exec(&self, id: &str, command: &[String], timeout: Duration)
    -> Result<i32, HostError>;
    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop_container(&self, id: &str, grace: Duration);
    async fn remove_container(&self, id: &str);
    async fn stop_sandbox(&self, sandbox: &SandboxInfo);
    /// Sets up the pod's volumes (before its sandbox); why it cannot yet (it is tried again).
    async fn set_up_volumes(&self, _pod: &Value) -> Result<(), HostError> {
        Ok(())
    }
    /// The node's `status.allocatable` (what a downward API reference to a limit not set reads).
    fn allocatable(&self) -> Value {
        Value::Null
    }
    /// A new version of the running pod `pod` (its downward API volumes follow its labels and annotations).
    async fn pod_changed(&self, _pod: &Value) {}
    /// Releases the pod's volumes once its containers are gone.
    async fn tear_down_volumes(&self, _pod: &Value) {}
    /// Why the pod must be evicted for the local storage it uses (emptyDir `sizeLimit`, `ephemeral-storage`
    /// limits), if it must.
    async fn storage_violation(&self, _pod: &Value) -> Option<String> {
        None
    }
    /// The pods (uids) this host keeps anything for, running or not.
    fn pods_on_disk(&self) -> Vec<String> {
        Vec::new()
    }
    /// Removes everything the pod `uid` left (containers, sandbox, network attachment, cgroup, volumes,
    /// logs): for pods no worker runs any more, e.g. deleted while the agent was down.
    async fn remove_pod(&self, _uid: &str) {}
}

/// What the worker needs of the API.
#[async_trait]
pub trait PodApi: Send + Sync + 'static {
    /// Replaces the pod's status.
    async fn write_status(&self, pod: &Value, status: &Value) -> Result<(), String>;
    /// Completes the deletion of a pod whose containers are gone (grace 0, on its uid).
    async fn finish_deletion(&self, pod: &Value) -> Result<(), String>;
    /// A ConfigMap or Secret of the pod's namespace, its data as text (`None`: absent).
    async fn config_data(
        &self,
        namespace: &str,
        name: &str,
        secret: bool,
    ) -> Option<BTreeMap<String, String>>;
    /// The Services whose variables a pod of `namespace` gets ([`crate::service_links`]); `None` when the
    /// Services are not known yet.
    async fn service_links(
        &self,
        namespace: &str,
        enable_links: bool,
    ) -> Option<Vec<crate::service_links::ServiceLink>>;
    /// Records an event about the pod. Returns at once: events are written in the background, and dropped
    /// rather than ever holding up a pod.
    fn event(&self, event: Event);
}

/// The clock the worker stamps times with (RFC 3339).
pub type Clock = fn() -> String;

/// The pods this agent runs, by namespace and name: what the agent's HTTPS endpoint (logs) asks about.
#[derive(Default)]
pub struct PodIndex {
    pods: Mutex<HashMap<PodKey, (String, Arc<Shared>)>>,
}

/// A pod's namespace and name.
type PodKey = (String, String);

impl std::fmt::Debug for PodIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodIndex").finish_non_exhaustive()
    }
}

impl PodIndex {
    /// The uid of the pod `namespace`/`name` running here.
    pub fn uid(&self, namespace: &str, name: &str) -> Option<String> {
        let pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        pods.get(&(namespace.to_owned(), name.to_owned()))
            .map(|(uid, _)| uid.clone())
    }

    /// Whether the pod's container (or init container) `container` is running now.
    pub fn running(&self, namespace: &str, name: &str, container: &str) -> bool {
        let shared = {
            let pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
            match pods.get(&(namespace.to_owned(), name.to_owned())) {
                Some((_, shared)) => shared.clone(),
                None => return false,
            }
        };
        let observed = shared.snapshot();
        observed
            .containers
            .iter()
            .chain(&observed.init_containers)
            .any(|c| c.name == container && matches!(c.state, ContainerState::Running { .. }))
    }
}

/// Runs the pod whose versions `pod` delivers (`None` once it is gone from the API) until it is gone.
pub async fn run(
    mut pod: watch::Receiver<Option<Value>>,
    host: Arc<dyn ContainerHost>,
    api: Arc<dyn PodApi>,
    index: Arc<PodIndex>,
    host_ip: String,
    now: Clock,
) {
    let Some(first) = pod.borrow_and_update().clone() else {
        return;
    };
    let text = |p: &str| {
        first
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let key = (text("/metadata/namespace"), text("/metadata/name"));
    let shared = Arc::new(Shared {
        observation: Mutex::new(PodObservation {
            host_ip,
            start_time: now(),
            now: now(),
            ..PodObservation::default()
        }),
        changed: Notify::new(),
        progress: watch::channel(()).0,
        sandbox: Mutex::new(None),
    });
    index
        .pods
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone(), (text("/metadata/uid"), shared.clone()));
    let status_writer = tokio::spawn(write_statuses(
        pod.clone(),
        shared.clone(),
        api.clone(),
        now,
    ));
    let mut pod_runner = Some(tokio::spawn(run_pod(
        first.clone(),
        host.clone(),
        api.clone(),
        shared.clone(),
        now,
    )));
    let mut stop_runner = async || {
        if let Some(runner) = pod_runner.take() {
            runner.abort();
            let _ = runner.await;
        }
    };
    // Local storage limits are checked every STORAGE_CHECK (only for pods that have any).
    let mut storage_check =
        tokio::time::interval_at(tokio::time::Instant::now() + STORAGE_CHECK, STORAGE_CHECK);
    let mut evicted = !limits_storage(&first);
    // Until the pod is marked for deletion, or vanishes (deleted at once: its grace period is its spec's).
    let mut last = first;
    let deleted = loop {
        let current = pod.borrow_and_update().clone();
        match current {
            None => break None,
            Some(p) if p.pointer("/metadata/deletionTimestamp").is_some() => break Some(p),
            Some(p) => {
                if p != last {
                    host.pod_changed(&p).await;
                }
                last = p;
            }
        }
        tokio::select! {
            changed = pod.changed() => if changed.is_err() {
                break None;
            },
            _ = storage_check.tick(), if !evicted => {
                if let Some(message) = host.storage_violation(&last).await {
                    // Evicted as the kubelet's eviction manager does: no grace, the pod Failed and kept.
                    evicted = true;
                    stop_runner().await;
                    api.event(Event::about(&last, None, EventType::Warning, "Evicted", message.clone(), now()));
                    stop_everything(&host, api.as_ref(), &shared, &last, Duration::ZERO, now).await;
                    let finished_at = now();
                    shared.update(|o| {
                        for c in o.containers.iter_mut().chain(o.init_containers.iter_mut()) {
                            if let ContainerState::Running { started_at, .. } = &c.state {
                                c.state = ContainerState::Terminated {
                                    exit_code: 137,
                                    reason: "Error".into(),
                                    message: String::new(),
                                    started_at: started_at.clone(),
                                    finished_at: finished_at.clone(),
                                };
                            }
                        }
                        o.evicted = Some(message);
                    });
                }
            }
        }
    };
    stop_runner().await;
    let grace = match &deleted {
        Some(p) => Duration::from_secs(
            p.pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(30),
        ),
        None => termination_grace(&last),
    };
    stop_everything(&host, api.as_ref(), &shared, &last, grace, now).await;
    host.tear_down_volumes(&last).await;
    shared.changed.notify_one();
    status_writer.abort();
    index
        .pods
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key);
    if let Some(pod) = deleted
        && let Err(e) = api.finish_deletion(&pod).await
    {
        tracing::warn!("cannot complete the deletion of a pod: {e}");
    }
}

/// How often a pod's use of local storage is measured against its limits.
const STORAGE_CHECK: Duration = Duration::from_secs(2);

/// Whether the pod limits its local storage (an emptyDir `sizeLimit`, an `ephemeral-storage` limit).
fn limits_storage(pod: &Value) -> bool {
    let list = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    list("/spec/volumes")
        .iter()
        .any(|v| v.pointer("/emptyDir/sizeLimit").is_some())
        || list("/spec/containers")
            .iter()
            .any(|c| c.pointer("/resources/limits/ephemeral-storage").is_some())
}

/// The pod's `terminationGracePeriodSeconds` (30 s by default, as upstream).
fn termination_grace(pod: &Value) -> Duration {
    let seconds = pod
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_u64);
    Duration::from_secs(seconds.unwrap_or(30))
}

/// What the pod's tasks share: the observation, signals that it changed (for the status writer, and for any
/// task waiting on it), and the sandbox once started.
struct Shared {
    observation: Mutex<PodObservation>,
    changed: Notify,
    progress: watch::Sender<()>,
    sandbox: Mutex<Option<SandboxInfo>>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut PodObservation)) {
        f(&mut self.observation.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.notify_one();
        self.progress.send_modify(|_| {});
    }

    /// Waits until the observation satisfies `check`.
    async fn until(&self, check: impl Fn(&PodObservation) -> bool) {
        let mut progress = self.progress.subscribe();
        loop {
            if check(&self.observation.lock().unwrap_or_else(|p| p.into_inner())) {
                return;
            }
            if progress.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    fn snapshot(&self) -> PodObservation {
        self.observation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Writes the pod's status each time the observation changes (and once at start).
async fn write_statuses(
    pod: watch::Receiver<Option<Value>>,
    shared: Arc<Shared>,
    api: Arc<dyn PodApi>,
    now: Clock,
) {
    let mut last: Option<Value> = None;
    loop {
        let Some(current) = pod.borrow().clone() else {
            return;
        };
        let mut observed = shared.snapshot();
        observed.now = now();
        let status = status::pod_status(&current, &observed);
        if last.as_ref() != Some(&status) {
            match api.write_status(&current, &status).await {
                Ok(()) => last = Some(status),
                Err(e) => tracing::warn!("cannot write a pod status: {e}"),
            }
        }
        shared.changed.notified().await;
    }
}

/// The first wait before volumes that could not be set up are tried again, and the longest.
const VOLUME_RETRY: Duration = Duration::from_millis(500);
const VOLUME_RETRY_MAX: Duration = Duration::from_secs(30);

/// The pod's life: volumes, sandbox, init containers in order, then every container under its restart policy.
async fn run_pod(
    pod: Value,
    host: Arc<dyn ContainerHost>,
    api: Arc<dyn PodApi>,
    shared: Arc<Shared>,
    now: Clock,
) {
    let restart_policy = pod
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always")
        .to_owned();
    let mut wait = VOLUME_RETRY;
    while let Err(e) = host.set_up_volumes(&pod).await {
        tracing::warn!("cannot set up a pod's volumes: {e}");
        api.event(Event::about(
            &pod,
            None,
            EventType::Warning,
            "FailedMount",
            e.message,
            now(),
        ));
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(VOLUME_RETRY_MAX);
    }
    let mut backoff = Backoff::default();
    let sandbox = loop {
        match host.start_sandbox(&pod).await {
            Ok(sandbox) => break sandbox,
            Err(e) => {
                tracing::warn!("cannot start a pod sandbox: {e}");
                api.event(Event::about(
                    &pod,
                    None,
                    EventType::Warning,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {}", e.message),
                    now(),
                ));
                tokio::time::sleep(backoff.next(Duration::ZERO)).await;
            }
        }
    };
    *shared.sandbox.lock().unwrap_or_else(|p| p.into_inner()) = Some(sandbox.clone());
    shared.update(|o| {
        o.sandbox_ready = true;
        o.pod_ip = sandbox.ip.clone();
    });
    let sandbox = Arc::new(sandbox);
    let context = Arc::new(Context {
        pod,
        host,
        api,
        shared,
        sandbox,
        now,
    });
    let spec_list = |field: &str| -> Vec<Value> {
        context
            .pod
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    // Native sidecars (init containers with `restartPolicy: Always`) start in their turn and keep running
    // beside everything after them; the next init container waits until the sidecar has started.
    let mut sidecars = Vec::new();
    for init in spec_list("initContainers") {
        if status::is_sidecar(&init) {
            let name = Context::name(&init);
            let (stop, stopped) = watch::channel(false);
            let task = Task::spawn(keep_running(
                context.clone(),
                init,
                true,
                "Always".into(),
                Stop(Some(stopped)),
            ));
            sidecars.push((stop, task));
            context
                .shared
                .until(|o| {
                    o.init_containers.iter().any(|c| {
                        c.name == name
                            && matches!(c.state, ContainerState::Running { started: true, .. })
                    })
                })
                .await;
            continue;
        }
        if !run_to_success(&context, &init, &restart_policy).await {
            // Failed for good (restartPolicy Never): the pod is Failed.
            return stop_sidecars(sidecars).await;
        }
    }
    let containers: Vec<Task> = spec_list("containers")
        .into_iter()
        .map(|container| {
            Task::spawn(keep_running(
                context.clone(),
                container,
                false,
                restart_policy.clone(),
                Stop::default(),
            ))
        })
        .collect();
    for task in containers {
        task.join().await;
    }
    // Every container is done for good: nothing keeps the pod alive, so its sidecars stop.
    stop_sidecars(sidecars).await;
}

/// Stops the pod's sidecars, the last one first, each once the one after it has stopped (as the kubelet
/// does when the pod's containers are done for good).
async fn stop_sidecars(sidecars: Vec<(watch::Sender<bool>, Task)>) {
    for (stop, task) in sidecars.into_iter().rev() {
        let _ = stop.send(true);
        task.join().await;
    }
}

/// A container's task, aborted when dropped: aborting the pod's runner (the pod is being deleted) aborts the
/// tasks of its containers with it, so none of them starts a container again.
struct Task(tokio::task::JoinHandle<()>);

impl Task {
    fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Task {
        Task(tokio::spawn(future))
    }

    async fn join(mut self) {
        let _ = (&mut self.0).await;
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Tells a sidecar's task to stop its container and not start it again (`None`: never).
#[derive(Clone, Default)]
struct Stop(Option<watch::Receiver<bool>>);

impl Stop {
    fn requested(&self) -> bool {
        self.0.as_ref().is_some_and(|stop| *stop.borrow())
    }

    /// Resolves once a stop is requested.
    async fn wait(&self) {
        if let Some(stop) = &self.0
            && stop.clone().wait_for(|stop| *stop).await.is_ok()
        {
            return;
        }
        std::future::pending().await
    }
}

struct Context {
    pod: Value,
    host: Arc<dyn ContainerHost>,
    api: Arc<dyn PodApi>,
    shared: Arc<Shared>,
    sandbox: Arc<SandboxInfo>,
    now: Clock,
}

impl Context {
    fn name(container: &Value) -> String {
        container
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// Records `state` (and keeps the previous one as the last state when it ran) for the container.
    fn record(
        &self,
        container: &Value,
        init: bool,
        image_id: Option<&str>,
        id: Option<&str>,
        state: ContainerState,
    ) {
        let name = Self::name(container);
        let image = container
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.shared.update(|o| {
            let list = if init {
                &mut o.init_containers
            } else {
                &mut o.containers
            };
            let entry = match list.iter().position(|c| c.name == name) {
                Some(i) => &mut list[i],
                None => {
                    list.push(ContainerObservation {
                        name: name.clone(),
                        image,
                        image_id: String::new(),
                        container_id: String::new(),
                        state: state.clone(),
                        last_state: None,
                        restart_count: 0,
                    });
                    let last = list.len() - 1;
                    &mut list[last]
                }
            };
            if let Some(image_id) = image_id {
                entry.image_id = image_id.to_owned();
            }
            if let Some(id) = id {
                entry.container_id = format!("runc://{id}");
            }
            // Leaving a terminated state is a restart: what ended becomes the last state.
            let ended = matches!(entry.state, ContainerState::Terminated { .. });
            if ended && !matches!(state, ContainerState::Terminated { .. }) {
                entry.last_state = Some(entry.state.clone());
                entry.restart_count += 1;
            }
            entry.state = state;
        });
    }

    /// A view of the pod for events and kills.
    fn handle(&self) -> PodHandle<'_> {
        PodHandle {
            pod: &self.pod,
            host: self.host.as_ref(),
            api: self.api.as_ref(),
            pod_ip: self.sandbox.ip.as_deref(),
            now: self.now,
        }
    }

    /// Records an event about the container.
    fn event(
        &self,
        container: &Value,
        init: bool,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let name = Self::name(container);
        self.handle()
            .event(Some((&name, init)), type_, reason, message);
    }

    /// Makes the container's image present as its `imagePullPolicy` says, with the kubelet's events: `Pulled`
    /// ("already present") for an image the node has and need not pull again, else `Pulling`, then `Pulled`
    /// or the failure.
    async fn pull(
        &self,
        container: &Value,
        init: bool,
    ) -> Result<(String, ImageDefaults), HostError> {
        let image = container
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let policy = PullPolicy::of(container);
        if policy != PullPolicy::Always {
            // Asked with the policy Never, the host says whether the node has the image.
            match self.host.image(image, PullPolicy::Never).await {
                Ok(found) => {
                    let message = format!("Container image {image:?} already present on machine");
                    self.event(container, init, EventType::Normal, "Pulled", message);
                    return Ok(found);
                }
                Err(e) if policy == PullPolicy::Never || e.reason != "ErrImageNeverPull" => {
                    self.pull_failed(container, init, image, &e);
                    return Err(e);
                }
                Err(_) => {}
            }
        }
        let message = format!("Pulling image {image:?}");
        self.event(container, init, EventType::Normal, "Pulling", message);
        let started = Instant::now();
        match self.host.image(image, policy).await {
            Ok(found) => {
                let took = events::go_duration(started.elapsed());
                let message = format!(
                    "Successfully pulled image {image:?} in {took} ({took} including waiting)"
                );
                self.event(container, init, EventType::Normal, "Pulled", message);
                Ok(found)
            }
            Err(e) => {
                self.pull_failed(container, init, image, &e);
                Err(e)
            }
        }
    }

    /// The kubelet's events for an image it could not make present: what went wrong, then `Error: REASON`.
    fn pull_failed(&self, container: &Value, init: bool, image: &str, e: &HostError) {
        let (reason, message) = match e.reason.as_str() {
            "ErrImagePull" => (
                "Failed",
                format!("Failed to pull image {image:?}: {}", e.message),
            ),
            "ErrImageNeverPull" => ("ErrImageNeverPull", e.message.clone()),
            "InvalidImageName" => (
                "InspectFailed",
                format!("Failed to apply default image tag {image:?}: {}", e.message),
            ),
            _ => ("Failed", e.message.clone()),
        };
        self.event(container, init, EventType::Warning, reason, message);
        let error = format!("Error: {}", e.reason);
        self.event(container, init, EventType::Warning, "Failed", error);
    }

    /// Pulls, resolves and starts the container once (or, with `adopt`, takes over the one still running from
    /// before an agent restart), and waits for it to exit (or, once `stop` says so, stops it).
    async fn run_once(
        &self,
        container: &Value,
        init: bool,
        adopt: bool,
        stop: &Stop,
    ) -> Result<(ExitInfo, Duration), HostError> {
        if adopt
            && let Some(started) = self
                .host
                .running_container(&self.pod, &Self::name(container))
                .await
        {
            // Its postStart hook ran when it started.
            return Ok(self
                .follow(container, init, None, started, false, stop)
                .await);
        }
        let waiting = |reason: &str, message: &str| ContainerState::Waiting {
            reason: reason.to_owned(),
            message: message.to_owned(),
        };
        let (image_id, defaults) = match self.pull(container, init).await {
            Ok(found) => found,
            Err(e) => {
                self.record(container, init, None, None, waiting(&e.reason, &e.message));
                return Err(e);
            }
        };
        let launch = match self
            .env_sources(container)
            .await
            .and_then(|sources| launch::resolve(&self.pod, container, &defaults, &sources))
        {
            Ok(launch) => launch,
            Err(e) => {
                let error = HostError {
                    reason: "CreateContainerConfigError".into(),
                    message: e.0,
                };
                self.record(
                    container,
                    init,
                    Some(&image_id),
                    None,
                    waiting(&error.reason, &error.message),
                );
                let message = format!("Error: {}", error.message);
                self.event(container, init, EventType::Warning, "Failed", message);
                return Err(error);
            }
        };
        let started = match self
            .host
            .start_container(&self.pod, &self.sandbox, container, &launch)
            .await
        {
            Ok(started) => started,
            Err(e) => {
                self.record(
                    container,
                    init,
                    Some(&image_id),
                    None,
                    waiting(&e.reason, &e.message),
                );
                let message = format!("Error: {}", e.message);
                self.event(container, init, EventType::Warning, "Failed", message);
                return Err(e);
            }
        };
        let name = Self::name(container);
        let created = format!("Created container: {name}");
        self.event(container, init, EventType::Normal, "Created", created);
        let message = format!("Started container {name}");
        self.event(container, init, EventType::Normal, "Started", message);
        Ok(self
            .follow(container, init, Some(&image_id), started, true, stop)
            .await)
    }

    /// Follows a started container: with `post_start`, runs its `postStart` hook first (meanwhile the
    /// container is still `ContainerCreating`; a failed hook kills it), records it as running, probes it
    /// until it exits (or stops it once `stop` says so), records that and removes it.
    async fn follow(
        &self,
        container: &Value,
        init: bool,
        image_id: Option<&str>,
        started: Started,
        post_start: bool,
        stop: &Stop,
    ) -> (ExitInfo, Duration) {
        let ran_from = Instant::now();
        let since = tokio::time::Instant::now();
        let mut wait = self.host.wait_container(&started.id);
        let mut exited = None;
        if let Some(hook) = container
            .pointer("/lifecycle/postStart")
            .filter(|_| post_start)
        {
            let creating = ContainerState::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            };
            self.record(container, init, image_id, Some(&started.id), creating);
            let pod_ip = self.sandbox.ip.as_deref();
            let run = probes::run_hook(
                hook,
                container,
                self.host.as_ref(),
                &started.id,
                pod_ip,
                POST_START_LIMIT,
            );
            // A container that exits meanwhile is simply done.
            let outcome = tokio::select! {
                outcome = run => outcome,
                exit = &mut wait => {
                    exited = Some(exit);
                    Ok(())
                }
            };
            if let Err(e) = outcome {
                let name = Self::name(container);
                tracing::info!(container = %name, "postStart hook failed, stopping it: {e}");
                let message = hook_failure(hook, &name, &self.pod, &e);
                self.event(
                    container,
                    init,
                    EventType::Warning,
                    "FailedPostStartHook",
                    message,
                );
                let grace = termination_grace(&self.pod);
                self.handle()
                    .kill(container, init, &started.id, grace, "FailedPostStartHook")
                    .await;
                exited = Some((&mut wait).await);
            }
        }
        let exit = match exited {
            Some(exit) => exit,
            None => {
                // Not started while a startup probe has yet to pass; not ready while a readiness probe has yet
                // to pass (a regular init container never is while it runs).
                let probed = probed(container, init);
                let has = |kind: Kind| container.get(kind.field()).is_some() && probed;
                let starting = has(Kind::Startup);
                let state = ContainerState::Running {
                    started_at: started.started_at.clone(),
                    ready: probed && !starting && !has(Kind::Readiness),
                    started: !starting,
                };
                self.record(container, init, image_id, Some(&started.id), state);
                // Probes run until the container exits (a failed liveness or startup probe stops it).
                let probing = Probing {
                    context: self,
                    container,
                    init,
                    started: &started,
                    since,
                };
                tokio::select! {
                    exit = &mut wait => exit,
                    () = probing.run() => unreachable!("probing never ends"),
                    () = stop.wait() => {
                        let message = format!("Stopping container {}", Self::name(container));
                        let grace = termination_grace(&self.pod);
                        self.handle().kill(container, init, &started.id, grace, &message).await;
                        (&mut wait).await
                    }
                }
            }
        };
        let ran = ran_from.elapsed();
        self.record(
            container,
            init,
            None,
            None,
            ContainerState::Terminated {
                exit_code: exit.code,
                reason: exit.reason.clone(),
                message: String::new(),
                started_at: started.started_at,
                finished_at: exit.finished_at.clone(),
            },
        );
        self.host.remove_container(&started.id).await;
        (exit, ran)
    }

    /// Waits `wait` before `container` starts again: one that ran is in `CrashLoopBackOff` meanwhile; one
    /// whose image could not be pulled (`failure`) stays `ErrImagePull` for half the wait, then is
    /// `ImagePullBackOff` (as the kubelet's syncs show them, one after the other); each with the kubelet's
    /// `BackOff` event.
    async fn back_off(
        &self,
        container: &Value,
        init: bool,
        failure: Option<&HostError>,
        ran: Duration,
        wait: Duration,
    ) {
        let name = Self::name(container);
        if ran > Duration::ZERO {
            let pod_name = self
                .pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let state = ContainerState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!(
                    "back-off {}s restarting failed container={name} pod={pod_name}",
                    wait.as_secs(),
                ),
            };
            self.record(container, init, None, None, state);
            let message = format!(
                "Back-off restarting failed container {name} in pod {}",
                pod_description(&self.pod)
            );
            self.event(container, init, EventType::Warning, "BackOff", message);
        } else if let Some(e) = failure.filter(|e| e.reason == "ErrImagePull") {
            tokio::time::sleep(wait / 2).await;
            let wait = wait - wait / 2;
            let image = container
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let message = format!("Back-off pulling image {image:?}");
            let state = ContainerState::Waiting {
                reason: "ImagePullBackOff".into(),
                message: format!("{message}: ErrImagePull: {}", e.message),
            };
            self.record(container, init, None, None, state);
            self.event(container, init, EventType::Normal, "BackOff", message);
            let error = "Error: ImagePullBackOff";
            self.event(container, init, EventType::Warning, "Failed", error);
            return tokio::time::sleep(wait).await;
        }
        tokio::time::sleep(wait).await;
    }
    /// The ConfigMaps and Secrets the container's environment refers to, fetched now.
    async fn env_sources(&self, container: &Value) -> Result<Prefetched, launch::ConfigError> {
        let namespace = self
            .pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let enable_links = self
            .pod
            .pointer("/spec/enableServiceLinks")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let links = self
            .api
            .service_links(namespace, enable_links)
            .await
            .ok_or_else(|| {
                launch::ConfigError(
                    "services have not yet been read at least once, cannot construct envvars"
                        .into(),
                )
            })?;
        let mut fetched = Prefetched {
            services: crate::service_links::variables(&links),
            allocatable: self.host.allocatable(),
            ..Prefetched::default()
        };
        for (name, secret) in launch::env_references(container) {
            if let Some(data) = self.api.config_data(namespace, &name, secret).await {
                let map = if secret {
                    &mut fetched.secrets
                } else {
                    &mut fetched.config_maps
                };
                map.insert(name, data);
            }
        }
        Ok(fetched)
    }
}

#[derive(Default)]
struct Prefetched {
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    services: Vec<(String, String)>,
    allocatable: Value,
}

impl EnvSources for Prefetched {
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.config_maps.get(name).cloned()
    }
    fn secret(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.secrets.get(name).cloned()
    }
    fn service_variables(&self) -> Vec<(String, String)> {
        self.services.clone()
    }
    fn allocatable(&self) -> Value {
        self.allocatable.clone()
    }
}

/// The probes of one run of a container, started at `since`.
struct Probing<'a> {
    context: &'a Context,
    container: &'a Value,
    init: bool,
    started: &'a Started,
    since: tokio::time::Instant,
}

impl Probing<'_> {
    /// Probes the container for ever: its startup probe until it passes (then the container has `started`),
    /// then its readiness probe (whose verdict is the container's `ready`) and its liveness probe side by side.
    /// A startup or liveness probe that fails kills the container, which then restarts by the pod's policy.
    /// Regular init containers have no probes.
    async fn run(&self) {
        if !probed(self.container, self.init) {
            return std::future::pending().await;
        }
        let readiness = self.container.get(Kind::Readiness.field());
        if let Some(probe) = self.container.get(Kind::Startup.field()) {
            let (verdict, error) = self.watch(Kind::Startup, probe, |_| true).await;
            if !verdict {
                return self.failed(Kind::Startup, &error).await;
            }
            self.running(readiness.is_none());
        }
        let readiness = async {
            if let Some(probe) = readiness {
                let ready = |ready| {
                    self.running(ready);
                    false
                };
                self.watch(Kind::Readiness, probe, ready).await;
            }
            std::future::pending::<()>().await
        };
        let liveness = async {
            if let Some(probe) = self.container.get(Kind::Liveness.field()) {
                let (_, error) = self.watch(Kind::Liveness, probe, |alive| !alive).await;
                self.failed(Kind::Liveness, &error).await;
            }
            std::future::pending::<()>().await
        };
        futures::join!(readiness, liveness);
    }

    /// Records the container as running and started, `ready` or not.
    fn running(&self, ready: bool) {
        let state = ContainerState::Running {
            started_at: self.started.started_at.clone(),
            ready,
            started: true,
        };
        self.context
            .record(self.container, self.init, None, None, state);
    }

    /// Runs one of the container's probes every `periodSeconds`, from `initialDelaySeconds` after the
    /// container started, with an `Unhealthy` event for each failure, until its verdict changes to one `done`
    /// accepts (each change is `done`'s to act on); that verdict and the last failure.
    async fn watch(
        &self,
        kind: Kind,
        probe: &Value,
        mut done: impl FnMut(bool) -> bool,
    ) -> (bool, String) {
        let context = self.context;
        let timing = probes::Timing::of(probe);
        let pod_ip = context.sandbox.ip.as_deref();
        let mut verdict = probes::Verdict::new(kind.initial());
        tokio::time::sleep_until(self.since + timing.initial_delay).await;
        loop {
            let host = context.host.as_ref();
            let result = probes::check(probe, self.container, host, &self.started.id, pod_ip).await;
            if let Err(e) = &result {
                let message = format!("{} probe failed: {e}", kind.label());
                let warning = EventType::Warning;
                context.event(self.container, self.init, warning, "Unhealthy", message);
            }
            if let Some(now) = verdict.record(result.is_ok(), &timing)
                && done(now)
            {
                return (now, result.err().unwrap_or_default());
            }
            tokio::time::sleep(timing.period).await;
        }
    }

    /// Kills the container whose startup or liveness probe failed (with the kubelet's `Killing` event), then
    /// waits for ever: the container's exit ends the probing.
    async fn failed(&self, kind: Kind, error: &str) {
        let context = self.context;
        let name = Context::name(self.container);
        let label = kind.label().to_ascii_lowercase();
        tracing::info!(container = %name, "{label} probe failed, stopping it: {error}");
        let policy = context
            .pod
            .pointer("/spec/restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Always");
        let mut message = format!("Container {name} failed {label} probe");
        // Sidecars restart whatever the pod's policy.
        if self.init || policy != "Never" {
            message.push_str(", will be restarted");
        }
        // The probe's own grace period, if it has one, else the pod's.
        let grace = self
            .container
            .pointer(&format!("/{}/terminationGracePeriodSeconds", kind.field()))
            .and_then(Value::as_u64)
            .map_or_else(|| termination_grace(&context.pod), Duration::from_secs);
        context
            .handle()
            .kill(self.container, self.init, &self.started.id, grace, &message)
            .await;
        std::future::pending().await
    }
}

/// Whether the container's probes run: a container's, or a sidecar's (regular init containers have none).
fn probed(container: &Value, init: bool) -> bool {
    !init || status::is_sidecar(container)
}

/// Runs a regular init container until it succeeds; false when it failed and may not run again.
async fn run_to_success(context: &Context, container: &Value, restart_policy: &str) -> bool {
    let mut backoff = Backoff::default();
    let mut adopt = true;
    loop {
        let result = context
            .run_once(
                container,
                true,
                std::mem::take(&mut adopt),
                &Stop::default(),
            )
            .await;
        let (ran, failure) = match result {
            Ok((exit, _)) if exit.code == 0 => return true,
            Ok((exit, _)) if !restart::should_restart(restart_policy, exit.code) => return false,
            Ok((_, ran)) => (ran, None),
            Err(e) => (Duration::ZERO, Some(e)),
        };
        let wait = backoff.next(ran);
        context
            .back_off(container, true, failure.as_ref(), ran, wait)
            .await;
    }
}

/// Runs a container for as long as its restart policy says (sidecars: always, until `stop`).
async fn keep_running(
    context: Arc<Context>,
    container: Value,
    sidecar: bool,
    restart_policy: String,
    stop: Stop,
) {
    let mut backoff = Backoff::default();
    let mut adopt = true;
    loop {
        let result = context
            .run_once(&container, sidecar, std::mem::take(&mut adopt), &stop)
            .await;
        let (exit_code, ran, failure) = match result {
            Ok((exit, ran)) => (exit.code, ran, None),
            Err(e) => (1, Duration::ZERO, Some(e)),
        };
        // A container that could not be started (image, configuration) never ran: it is tried again whatever
        // the restart policy, as the kubelet does.
        if stop.requested()
            || (failure.is_none() && !restart::should_restart(&restart_policy, exit_code))
        {
            return;
        }
        let wait = backoff.next(ran);
        tokio::select! {
            () = context.back_off(&container, sidecar, failure.as_ref(), ran, wait) => {}
            () = stop.wait() => return,
        }
    }
}

/// How long a `postStart` hook may take before it counts as failed (upstream sets no limit; a hook that never
/// ends would keep its container from ever running).
const POST_START_LIMIT: Duration = Duration::from_secs(300);

/// A pod as events and kills need it.
struct PodHandle<'a> {
    pod: &'a Value,
    host: &'a dyn ContainerHost,
    api: &'a dyn PodApi,
    pod_ip: Option<&'a str>,
    now: Clock,
}

impl PodHandle<'_> {
    /// Records an event about the pod's container (`name`, and whether it is an init container), or about the
    /// pod (`None`).
    fn event(
        &self,
        container: Option<(&str, bool)>,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let field_path = container.map(|(name, init)| events::field_path(name, init));
        let event = Event::about(self.pod, field_path, type_, reason, message, (self.now)());
        self.api.event(event);
    }

    /// Stops the running container `id` (of spec `container`) as the kubelet's `killContainer` does: a
    /// `Killing` event saying `message`, its `preStop` hook (whose time comes out of `grace`), then SIGTERM,
    /// and SIGKILL once what is left of `grace` is over.
    async fn kill(&self, container: &Value, init: bool, id: &str, grace: Duration, message: &str) {
        let name = container
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.event(Some((name, init)), EventType::Normal, "Killing", message);
        let started = Instant::now();
        let mut left = grace;
        if let Some(hook) = container.pointer("/lifecycle/preStop") {
            let run = probes::run_hook(hook, container, self.host, id, self.pod_ip, grace);
            match tokio::time::timeout(grace, run).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(container = %name, "preStop hook failed: {e}");
                    let event = EventType::Warning;
                    self.event(Some((name, init)), event, "FailedPreStopHook", e);
                }
                Err(_) => {
                    tracing::warn!(container = %name, "preStop hook not completed in the grace period")
                }
            }
            left = grace.saturating_sub(started.elapsed());
        }
        self.host.stop_container(id, left).await;
    }
}

/// A pod as upstream's messages name it: `name_namespace(uid)`.
fn pod_description(pod: &Value) -> String {
    let text = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or_default();
    format!(
        "{}_{}({})",
        text("/metadata/name"),
        text("/metadata/namespace"),
        text("/metadata/uid")
    )
}

/// A failed lifecycle hook, as the kubelet's hook runner reports it.
fn hook_failure(hook: &Value, container: &str, pod: &Value, error: &str) -> String {
    let pod = pod_description(pod);
    if let Some(command) = hook.pointer("/exec/command").and_then(Value::as_array) {
        let words: Vec<&str> = command.iter().filter_map(Value::as_str).collect();
        format!(
            "Exec lifecycle hook ([{}]) for Container {container:?} in Pod {pod:?} failed - error: {error}, message: \"\"",
            words.join(" ")
        )
    } else if let Some(http) = hook.get("httpGet") {
        let path = http.get("path").and_then(Value::as_str).unwrap_or_default();
        format!(
            "HTTP lifecycle hook ({path}) for Container {container:?} in Pod {pod:?} failed - error: {error}"
        )
    } else {
        format!("Lifecycle hook for Container {container:?} in Pod {pod:?} failed - error: {error}")
    }
}

/// Whether the container is there to be stopped: running, or started and in its `postStart` hook.
fn is_live(container: &ContainerObservation) -> bool {
    match &container.state {
        ContainerState::Running { .. } => true,
        ContainerState::Waiting { reason, .. } => {
            reason == "ContainerCreating" && !container.container_id.is_empty()
        }
        ContainerState::Terminated { .. } => false,
    }
}

/// Stops every running container of `pod` (each gets a `Killing` event and runs its `preStop` hook first,
/// then gets what is left of `grace`), then the sandbox.
async fn stop_everything(
    host: &Arc<dyn ContainerHost>,
    api: &dyn PodApi,
    shared: &Shared,
    pod: &Value,
    grace: Duration,
    now: Clock,
) {
    let observed = shared.snapshot();
    let live: Vec<(String, String, bool)> = observed
        .containers
        .iter()
        .map(|c| (c, false))
        .chain(observed.init_containers.iter().map(|c| (c, true)))
        .filter(|(c, _)| is_live(c))
        .map(|(c, init)| {
            let id = c.container_id.trim_start_matches("runc://").to_owned();
            (c.name.clone(), id, init)
        })
        .collect();
    let handle = PodHandle {
        pod,
        host: host.as_ref(),
        api,
        pod_ip: observed.pod_ip.as_deref(),
        now,
    };
    let handle = &handle;
    futures::future::join_all(live.iter().map(|(name, id, init)| async move {
        let list = if *init {
            "initContainers"
        } else {
            "containers"
        };
        let spec = pod
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name));
        match spec {
            Some(spec) => {
                let message = format!("Stopping container {name}");
                handle.kill(spec, *init, id, grace, &message).await;
            }
            None => host.stop_container(id, grace).await,
        }
        host.remove_container(id).await;
    }))
    .await;
    let sandbox = shared
        .sandbox
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(sandbox) = sandbox {
        host.stop_sandbox(&sandbox).await;
    }
}

#[cfg(test)]
mod tests {

    use serde_json::json;
    use tokio::sync::oneshot;

    use super::*;

    /// Containers that exit with scripted codes, run after run; with the script used up, they run until stopped.
    #[derive(Default)]
    struct FakeHost {
        scripts: Mutex<HashMap<String, Vec<i32>>>,
        running: Mutex<HashMap<String, oneshot::Sender<i32>>>,
        waits: Mutex<HashMap<String, oneshot::Receiver<i32>>>,
        log: Mutex<Vec<String>>,
        /// The images asked for, with their pull policies.
        images: Mutex<Vec<String>>,
        next: Mutex<u32>,
        /// The paths `test -e PATH` finds.
        files: Mutex<Vec<String>>,
    }

    impl FakeHost {
        fn log(&self, entry: String) {
            self.log.lock().unwrap().push(entry);
        }
        fn entries(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
        fn touch(&self, path: &str) {
            self.files.lock().unwrap().push(path.into());
        }
        /// Makes the running container called `name` exit with `code`.
        fn exit(&self, name: &str, code: i32) {
            let prefix = format!("{name}-");
            let mut running = self.running.lock().unwrap();
            let id = running
                .keys()
                .find(|id| id.starts_with(&prefix))
                .cloned()
                .unwrap();
            let _ = running.remove(&id).unwrap().send(code);
        }
    }

    #[async_trait]
    impl ContainerHost for FakeHost {
        async fn image(
            &self,
            image: &str,
            policy: PullPolicy,
        ) -> Result<(String, ImageDefaults), HostError> {
            let asked = format!("image {image} {policy:?}");
            self.images.lock().unwrap().push(asked);
            if image.starts_with("missing") {
                return Err(match policy {
                    PullPolicy::Never => HostError {
                        reason: "ErrImageNeverPull".into(),
                        message: format!(
                            "Container image {image:?} is not present with pull policy of Never"
                        ),
                    },
                    _ => HostError {
                        reason: "ErrImagePull".into(),
                        message: "not found".into(),
                    },
                });
            }
            Ok((
                "sha256:1".into(),
                ImageDefaults {
                    entrypoint: vec!["/bin/sh".into()],
                    ..Default::default()
                },
            ))
        }
        async fn start_sandbox(&self, _: &Value) -> Result<SandboxInfo, HostError> {
            self.log("sandbox".into());
            Ok(SandboxInfo {
                id: "sb".into(),
                ip: Some("10.42.0.9".into()),
            })
        }
        async fn start_container(
            &self,
            _: &Value,
            _: &SandboxInfo,
            container: &Value,
            _: &Launch,
        ) -> Result<Started, HostError> {
            let name = container["name"].as_str().unwrap().to_owned();
            let id = {
                let mut next = self.next.lock().unwrap();
                *next += 1;
                format!("{name}-{next}")
            };
            let (tx, rx) = oneshot::channel();
            let scripted = {
                let mut scripts = self.scripts.lock().unwrap();
                scripts
                    .get_mut(&name)
                    .and_then(|s| (!s.is_empty()).then(|| s.remove(0)))
            };
            match scripted {
                Some(code) => {
                    let _ = tx.send(code);
                }
                None => {
                    self.running.lock().unwrap().insert(id.clone(), tx);
                }
            }
            self.waits.lock().unwrap().insert(id.clone(), rx);
            self.log(format!("start {name}"));
            Ok(Started {
                id,
                started_at: "2026-01-01T00:00:00Z".into(),
            })
        }
        async fn running_container(&self, _: &Value, _: &str) -> Option<Started> {
            None
        }
        /// `false` fails, `sleep N` takes N seconds, `test -e PATH` succeeds once [`FakeHost::touch`] made
        /// the path; everything else succeeds at once.
        async fn exec(&self, id: &str, command: &[String], _: Duration) -> Result<i32, HostError> {
            self.log(format!("exec {id} {}", command.join(" ")));
            match command.first().map(String::as_str) {
                Some("false") => Ok(1),
                Some("test") => Ok(i32::from(!self.files.lock().unwrap().contains(&command[2]))),
                Some("sleep") => {
                    let seconds = command[1].parse().unwrap();
                    tokio::time::sleep(Duration::from_secs(seconds)).await;
                    Ok(0)
                }
                _ => Ok(0),
            }
        }
        async fn wait_container(&self, id: &str) -> ExitInfo {
            let rx = self.waits.lock().unwrap().remove(id).unwrap();
            let code = rx.await.unwrap_or(137);
            ExitInfo {
                code,
                reason: if code == 0 { "Completed" } else { "Error" }.into(),
                finished_at: "2026-01-01T00:00:01Z".into(),
            }
        }
        async fn stop_container(&self, id: &str, grace: Duration) {
            self.log(format!("stop {id} grace {}", grace.as_secs()));
            if let Some(tx) = self.running.lock().unwrap().remove(id) {
                let _ = tx.send(143);
            }
        }
        async fn remove_container(&self, _: &str) {}
        async fn stop_sandbox(&self, sandbox: &SandboxInfo) {
            self.log(format!("stop sandbox {}", sandbox.id));
        }
    }

    #[derive(Default)]
    struct FakeApi {
        statuses: Mutex<Vec<Value>>,
        finished: Mutex<bool>,
        events: Mutex<Vec<Event>>,
    }

    impl FakeApi {
        /// The events recorded so far, as `container reason: message` (`-` for the pod).
        fn events(&self) -> Vec<String> {
            self.events
                .lock()
                .unwrap()
                .iter()
                .map(|e| {
                    let about = e.field_path.as_deref().unwrap_or("-");
                    format!("{about} {}: {}", e.reason, e.message)
                })
                .collect()
        }
    }

    #[async_trait]
    impl PodApi for FakeApi {
        async fn write_status(&self, _: &Value, status: &Value) -> Result<(), String> {
            self.statuses.lock().unwrap().push(status.clone());
            Ok(())
        }
        async fn finish_deletion(&self, _: &Value) -> Result<(), String> {
            *self.finished.lock().unwrap() = true;
            Ok(())
        }
        async fn config_data(&self, _: &str, _: &str, _: bool) -> Option<BTreeMap<String, String>> {
            None
        }
        async fn service_links(
            &self,
            _: &str,
            _: bool,
        ) -> Option<Vec<crate::service_links::ServiceLink>> {
            Some(Vec::new())
        }
        fn event(&self, event: Event) {
            self.events.lock().unwrap().push(event);
        }
    }

    /// Runs a worker for `pod` on the fake host and API; the sender delivers the pod's next versions.
    fn start(pod: Value, host: &Arc<FakeHost>, api: &Arc<FakeApi>) -> watch::Sender<Option<Value>> {
        let (tx, rx) = watch::channel(Some(pod));
        tokio::spawn(run(
            rx,
            host.clone(),
            api.clone(),
            Arc::default(),
            "192.168.0.2".into(),
            now,
        ));
        tx
    }

    fn now() -> String {
        "2026-01-01T00:00:02Z".into()
    }

    fn pod(restart_policy: &str) -> Value {
        json!({"metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"restartPolicy": restart_policy, "nodeName": "n1",
                "initContainers": [{"name": "setup", "image": "busybox:1"}],
                "containers": [{"name": "a", "image": "busybox:1"}, {"name": "b", "image": "busybox:1"}]},
            "status": {"phase": "Pending", "qosClass": "BestEffort"}})
    }

    /// Waits (in paused time) until the last status written satisfies `check`.
    async fn until(api: &FakeApi, check: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..10_000 {
            if let Some(last) = api.statuses.lock().unwrap().last().filter(|s| check(s)) {
                return last.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no such status: {:?}", api.statuses.lock().unwrap().last());
    }

    #[tokio::test(start_paused = true)]
    async fn runs_init_then_containers_restarts_on_failure_and_stops_on_deletion() {
        let host = Arc::new(FakeHost::default());
        host.scripts.lock().unwrap().insert("setup".into(), vec![0]);
        host.scripts.lock().unwrap().insert("a".into(), vec![1, 0]);
        let api = Arc::new(FakeApi::default());
        let (tx, rx) = watch::channel(Some(pod("OnFailure")));
        let worker = tokio::spawn(run(
            rx,
            host.clone(),
            api.clone(),
            Arc::default(),
            "192.168.0.2".into(),
            now,
        ));
        let status = until(&api, |s| {
            s["containerStatuses"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["name"] == "a" && c["state"]["terminated"]["exitCode"] == 0)
            })
        })
        .await;
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "10.42.0.9");
        assert_eq!(
            status["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let a = status["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "a")
            .unwrap();
        assert_eq!(a["restartCount"], 1);
        assert_eq!(a["lastState"]["terminated"]["exitCode"], 1);
        let b = status["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "b")
            .unwrap();
        assert!(b["state"]["running"].is_object());
        assert_eq!(host.entries()[..2], ["sandbox", "start setup"]);
        let events = api.events();
        for expected in [
            "spec.initContainers{setup} Pulled: Container image \"busybox:1\" already present on machine",
            "spec.initContainers{setup} Created: Created container: setup",
            "spec.initContainers{setup} Started: Started container setup",
            "spec.containers{a} Started: Started container a",
            "spec.containers{a} BackOff: Back-off restarting failed container a in pod p_default(u)",
            "spec.containers{b} Started: Started container b",
        ] {
            assert!(
                events.iter().any(|e| e == expected),
                "{expected}: {events:#?}"
            );
        }
        // The init container's events come before any of the containers'.
        let first_a = events.iter().position(|e| e.contains("{a}")).unwrap();
        assert!(
            events[..first_a].iter().all(|e| e.contains("{setup}")),
            "{events:#?}"
        );
        let backoff = api
            .events
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.reason == "BackOff")
            .cloned()
            .unwrap();
        assert_eq!(backoff.type_, EventType::Warning);
        assert_eq!(
            (
                backoff.pod.as_str(),
                backoff.namespace.as_str(),
                backoff.uid.as_str()
            ),
            ("p", "default", "u")
        );
        assert_eq!(backoff.time, now());

        // Deleted with a grace period: b is stopped with it, then the sandbox, then the deletion completes.
        let mut deleting = pod("OnFailure");
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:03Z");
        deleting["metadata"]["deletionGracePeriodSeconds"] = json!(7);
        tx.send(Some(deleting)).unwrap();
        worker.await.unwrap();
        let log = host.entries();
        assert!(
            log.iter()
                .any(|e| e.starts_with("stop b-") && e.ends_with("grace 7")),
            "{log:?}"
        );
        assert_eq!(log.last().unwrap(), "stop sandbox sb");
        assert!(*api.finished.lock().unwrap());
        let events = api.events();
        assert!(
            events.contains(&"spec.containers{b} Killing: Stopping container b".to_owned()),
            "{events:#?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_init_container_fails_a_never_restarting_pod() {
        let host = Arc::new(FakeHost::default());
        host.scripts.lock().unwrap().insert("setup".into(), vec![3]);
        let api = Arc::new(FakeApi::default());
        let _tx = start(pod("Never"), &host, &api);
        let status = until(&api, |s| s["phase"] == "Failed").await;
        assert_eq!(
            status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
            3
        );
        assert!(!host.entries().iter().any(|e| e == "start a"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_image_is_err_image_pull_and_retried() {
        let host = Arc::new(FakeHost::default());
        let api = Arc::new(FakeApi::default());
        let mut pod = pod("Always");
        pod["spec"]["initContainers"] = json!([]);
        pod["spec"]["containers"] = json!([{"name": "a", "image": "missing"}]);
        let _tx = start(pod, &host, &api);
        let status = until(&api, |s| {
            s["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
        })
        .await;
        assert_eq!(status["phase"], "Pending");
        assert_eq!(
            status["containerStatuses"][0]["state"]["waiting"]["message"],
            "not found"
        );
        // Between attempts, it backs off.
        let status = until(&api, |s| {
            s["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
        })
        .await;
        assert_eq!(
            status["containerStatuses"][0]["state"]["waiting"]["message"],
            "Back-off pulling image \"missing\": ErrImagePull: not found"
        );
        let events = api.events();
        assert_eq!(
            events[..5],
            [
                "spec.containers{a} Pulling: Pulling image \"missing\"",
                "spec.containers{a} Failed: Failed to pull image \"missing\": not found",
                "spec.containers{a} Failed: Error: ErrImagePull",
                "spec.containers{a} BackOff: Back-off pulling image \"missing\"",
                "spec.containers{a} Failed: Error: ImagePullBackOff",
            ],
            "{events:#?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_image_the_node_lacks_is_pulled_as_its_pull_policy_says() {
        let host = Arc::new(FakeHost::default());
        let api = Arc::new(FakeApi::default());
        let mut pod = pod("Always");
        pod["spec"]["initContainers"] = json!([]);
        pod["spec"]["containers"] = json!([
            {"name": "never", "image": "missing:1", "imagePullPolicy": "Never"},
            {"name": "present", "image": "busybox:1", "imagePullPolicy": "IfNotPresent"},
            {"name": "absent", "image": "missing:2", "imagePullPolicy": "IfNotPresent"}]);
        let _tx = start(pod, &host, &api);
        let reason =
            |s: &Value, i: usize| s["containerStatuses"][i]["state"]["waiting"]["reason"].clone();
        until(&api, |s| {
            s["containerStatuses"]
                .as_array()
                .is_some_and(|c| c.len() == 3)
                && reason(s, 0) == "ErrImageNeverPull"
                && reason(s, 2) == "ErrImagePull"
        })
        .await;
        let events = api.events();
        let of = |name: &str| -> Vec<String> {
            let prefix = format!("spec.containers{{{name}}} ");
            events
                .iter()
                .filter_map(|e| e.strip_prefix(&prefix).map(str::to_owned))
                .collect()
        };
        assert_eq!(
            of("never")[..2],
            [
                "ErrImageNeverPull: Container image \"missing:1\" is not present with pull policy of Never",
                "Failed: Error: ErrImageNeverPull"
            ]
        );
        assert_eq!(
            of("present")[0],
            "Pulled: Container image \"busybox:1\" already present on machine"
        );
        assert_eq!(
            of("absent")[..3],
            [
                "Pulling: Pulling image \"missing:2\"",
                "Failed: Failed to pull image \"missing:2\": not found",
                "Failed: Error: ErrImagePull"
            ]
        );
        // Never and IfNotPresent look at the node's images first; only the absent one is pulled.
        let log = host.images.lock().unwrap().clone();
        assert!(
            !log.iter()
                .any(|e| e.starts_with("image missing:1 ") && !e.ends_with("Never")),
            "{log:?}"
        );
        assert!(
            !log.iter().any(|e| e == "image busybox:1 IfNotPresent"),
            "{log:?}"
        );
        assert!(
            log.iter().any(|e| e == "image missing:2 IfNotPresent"),
            "{log:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pod_deleted_while_a_post_start_hook_runs_stops_that_container() {
        let host = Arc::new(FakeHost::default());
        let api = Arc::new(FakeApi::default());
        let mut pod = pod("Always");
        pod["spec"]["initContainers"] = json!([]);
        pod["spec"]["containers"] = json!([{"name": "a", "image": "busybox:1",
            "lifecycle": {"postStart": {"exec": {"command": ["sleep", "600"]}}}}]);
        let (tx, rx) = watch::channel(Some(pod.clone()));
        let worker = tokio::spawn(run(
            rx,
            host.clone(),
            api.clone(),
            Arc::default(),
            "192.168.0.2".into(),
            now,
        ));
        until(&api, |s| {
            s["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
        })
        .await;
        pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:03Z");
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(5);
        tx.send(Some(pod)).unwrap();
        worker.await.unwrap();
        let log = host.entries();
        assert!(log.contains(&"stop a-1 grace 5".to_owned()), "{log:?}");
        assert!(
            api.events()
                .contains(&"spec.containers{a} Killing: Stopping container a".to_owned())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn post_start_hooks_run_before_the_container_counts_as_running_and_failing_kill_it() {
        let host = Arc::new(FakeHost::default());
        let api = Arc::new(FakeApi::default());
        let mut pod = pod("Always");
        pod["spec"]["terminationGracePeriodSeconds"] = json!(3);
        pod["spec"]["initContainers"] = json!([]);
        pod["spec"]["containers"] = json!([
            {"name": "slow", "image": "busybox:1",
                "lifecycle": {"postStart": {"exec": {"command": ["sleep", "5"]}}}},
            {"name": "bad", "image": "busybox:1",
                "lifecycle": {"postStart": {"exec": {"command": ["false"]}}}}]);
        let _tx = start(pod, &host, &api);
        let slow = |s: &Value| {
            s["containerStatuses"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["name"] == "slow"))
                .cloned()
                .unwrap_or_default()
        };
        // Started, but not running (nor ready) while its hook runs.
        let creating = until(&api, |s| {
            slow(s)["state"]["waiting"]["reason"] == "ContainerCreating"
        })
        .await;
        assert_eq!(slow(&creating)["ready"], false);
        assert!(
            slow(&creating)["containerID"]
                .as_str()
                .unwrap()
                .starts_with("runc://slow-")
        );
        let started = tokio::time::Instant::now();
        let running = until(&api, |s| slow(s)["state"]["running"].is_object()).await;
        assert!(
            started.elapsed() >= Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(slow(&running)["ready"], true);
        assert_eq!(slow(&running)["restartCount"], 0);
        // The failing hook kills its container, which restarts with back-off.
        let restarted = until(&api, |s| {
            s["containerStatuses"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["name"] == "bad"))
                .is_some_and(|c| c["restartCount"].as_u64().unwrap_or(0) >= 2)
        })
        .await;
        let bad = restarted["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "bad")
            .unwrap();
        assert_eq!(bad["lastState"]["terminated"]["exitCode"], 143, "{bad:#}");
        let log = host.entries();
        assert!(
            log.iter()
                .any(|e| e.starts_with("exec bad-") && e.ends_with(" false")),
            "{log:?}"
        );
        assert!(
            log.iter()
                .any(|e| e.starts_with("stop bad-") && e.ends_with("grace 3")),
            "{log:?}"
        );
        let events = api.events();
        for expected in [
            "spec.containers{bad} Started: Started container bad",
            "spec.containers{bad} FailedPostStartHook: Exec lifecycle hook ([false]) for Container \"bad\" in Pod \"p_default(u)\" failed - error: command 'false' exited with 1, message: \"\"",
            "spec.containers{bad} Killing: FailedPostStartHook",
            "spec.containers{bad} BackOff: Back-off restarting failed container bad in pod p_default(u)",
        ] {
            assert!(
                events.iter().any(|e| e == expected),
                "{expected}: {events:#?}"
            );
        }
        assert!(
            !events.iter().any(|e| e.contains("{slow} Killing")),
            "{events:#?}"
        );
    }

    /// The status of the container `name` (`init`: among the init containers) in a pod status.
    fn status_of(status: &Value, name: &str, init: bool) -> Value {
        let list = if init {
            "initContainerStatuses"
        } else {
            "containerStatuses"
        };
        status[list]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_default()
    }

    fn condition(status: &Value, type_: &str) -> Value {
        status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == type_))
            .map(|c| c["status"].clone())
            .unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn startup_probes_hold_the_other_probes_and_kill_a_container_that_never_starts() {
        let host = Arc::new(FakeHost::default());
        let api = Arc::new(FakeApi::default());
        let mut pod = pod("Always");
        pod["spec"]["terminationGracePeriodSeconds"] = json!(2);
        pod["spec"]["initContainers"] = json!([]);
        pod["spec"]["containers"] = json!([
            {"name": "slow", "image": "busybox:1",
                "startupProbe": {"exec": {"command": ["test", "-e", "/up"]}, "periodSeconds": 1, "failureThreshold": 30},
                "livenessProbe": {"exec": {"command": ["test", "-e", "/up"]}, "periodSeconds": 1, "failureThreshold": 1},
                "readinessProbe": {"exec": {"command": ["test", "-e", "/ready"]}, "periodSeconds": 1}},
            {"name": "never", "image": "busybox:1",
                "startupProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 2,
                    "terminationGracePeriodSeconds": 1}}]);
        let _tx = start(pod, &host, &api);
        // Running, but neither started nor ready while the startup probe fails; the liveness probe (which
        // would fail at once) and the readiness probe do not run meanwhile.
        let starting = until(&api, |s| {
            status_of(s, "slow", false)["state"]["running"].is_object()
        })
        .await;
        let slow = status_of(&starting, "slow", false);
        assert_eq!(
            (&slow["started"], &slow["ready"]),
            (&json!(false), &json!(false))
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        let log = host.entries();
        let probes = log
            .iter()
            .filter(|e| e.starts_with("exec slow-"))
            .collect::<Vec<_>>();
        assert!(probes.len() >= 4, "{log:?}");
        assert!(probes.iter().all(|e| e.ends_with("test -e /up")), "{log:?}");
        let status = api.statuses.lock().unwrap().last().cloned().unwrap();
        assert_eq!(status_of(&status, "slow", false)["started"], false);
        assert_eq!(condition(&status, "Ready"), "False");

        // Once it passes: started, and the readiness probe decides `ready`.
        host.touch("/up");
        let started = until(&api, |s| status_of(s, "slow", false)["started"] == true).await;
        assert_eq!(status_of(&started, "slow", false)["ready"], false);
        host.touch("/ready");
        let ready = until(&api, |s| status_of(s, "slow", false)["ready"] == true).await;
        let slow = status_of(&ready, "slow", false);
        assert_eq!(slow["restartCount"], 0);
        assert!(slow["state"]["running"].is_object());
        // The startup probe ran its last; the liveness and readiness probes run now.
        let before = host.entries().len();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let log = host.entries();
        let later: Vec<_> = log[before..]
            .iter()
            .filter(|e| e.starts_with("exec slow-"))
            .collect();
        assert_eq!(
            later.iter().filter(|e| e.ends_with("/up")).count(),
            later.iter().filter(|e| e.ends_with("/ready")).count(),
            "{later:?}"
        );

        // The other never starts: killed after two failures, and started again.
        let restarted = until(&api, |s| {
            status_of(s, "never", false)["restartCount"]
                .as_u64()
                .unwrap_or(0)
                >= 1
        })
        .await;
        let never = status_of(&restarted, "never", false);
        assert_eq!(
            never["lastState"]["terminated"]["exitCode"], 143,
            "{never:#}"
        );
        let events = api.events();
        for expected in [
            "spec.containers{slow} Unhealthy: Startup probe failed: command 'test -e /up' exited with 1",
            "spec.containers{slow} Unhealthy: Readiness probe failed: command 'test -e /ready' exited with 1",
            "spec.containers{never} Unhealthy: Startup probe failed: command 'false' exited with 1",
            "spec.containers{never} Killing: Container never failed startup probe, will be restarted",
        ] {
            assert!(
                events.iter().any(|e| e == expected),
                "{expected}: {events:#?}"
            );
        }
        assert!(
            !events.iter().any(|e| e.contains("{slow} Killing")),
            "{events:#?}"
        );
        assert!(
            !events.iter().any(|e| e.contains("Liveness")),
            "{events:#?}"
        );
        assert!(
            host.entries()
                .iter()
                .any(|e| e.starts_with("stop never-") && e.ends_with("grace 1")),
            "{:?}",
            host.entries()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sidecars_start_before_the_next_init_container_and_stop_once_the_containers_are_done() {
        let host = Arc::new(FakeHost::default());
        host.scripts.lock().unwrap().insert("setup".into(), vec![0]);
        let api = Arc::new(FakeApi::default());
        let mut pod = pod("Never");
        pod["spec"]["terminationGracePeriodSeconds"] = json!(4);
        pod["spec"]["initContainers"] = json!([
            {"name": "proxy", "image": "busybox:1", "restartPolicy": "Always",
                "startupProbe": {"exec": {"command": ["test", "-e", "/proxy"]}, "periodSeconds": 1, "failureThreshold": 10},
                "readinessProbe": {"exec": {"command": ["test", "-e", "/proxy-ready"]}, "periodSeconds": 1}},
            {"name": "setup", "image": "busybox:1"}]);
        pod["spec"]["containers"] = json!([{"name": "main", "image": "busybox:1"}]);
        let _tx = start(pod, &host, &api);
        // The sidecar runs, but until its startup probe passes the next init container waits.
        let waiting = until(&api, |s| {
            status_of(s, "proxy", true)["state"]["running"].is_object()
        })
        .await;
        assert_eq!(status_of(&waiting, "proxy", true)["started"], false);
        assert_eq!(waiting["phase"], "Pending");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !host.entries().contains(&"start setup".to_owned()),
            "{:?}",
            host.entries()
        );
        host.touch("/proxy");
        let running = until(&api, |s| {
            status_of(s, "main", false)["state"]["running"].is_object()
        })
        .await;
        assert_eq!(running["phase"], "Running");
        let setup = status_of(&running, "setup", true);
        assert_eq!(setup["state"]["terminated"]["exitCode"], 0);
        assert_eq!(
            (&setup["ready"], &setup["started"]),
            (&json!(true), &json!(false))
        );
        let proxy = status_of(&running, "proxy", true);
        assert_eq!(
            (&proxy["ready"], &proxy["started"]),
            (&json!(false), &json!(true))
        );
        assert_eq!(condition(&running, "Initialized"), "True");
        // The pod is ready once its sidecar is too.
        assert_eq!(status_of(&running, "main", false)["ready"], true);
        assert_eq!(condition(&running, "Ready"), "False");
        host.touch("/proxy-ready");
        until(&api, |s| condition(s, "Ready") == "True").await;

        // The container ends: nothing keeps the pod alive, so the sidecar is stopped (and not restarted), and
        // the pod has succeeded.
        host.exit("main", 0);
        let done = until(&api, |s| s["phase"] == "Succeeded").await;
        let proxy = status_of(&done, "proxy", true);
        assert_eq!(proxy["state"]["terminated"]["exitCode"], 143, "{proxy:#}");
        assert_eq!(proxy["restartCount"], 0);
        assert_eq!(condition(&done, "Initialized"), "True");
        tokio::time::sleep(Duration::from_secs(60)).await;
        let log = host.entries();
        assert_eq!(
            log.iter().filter(|e| *e == "start proxy").count(),
            1,
            "{log:?}"
        );
        assert!(
            log.iter()
                .any(|e| e.starts_with("stop proxy-") && e.ends_with("grace 4")),
            "{log:?}"
        );
        let events = api.events();
        assert!(
            events.contains(
                &"spec.initContainers{proxy} Killing: Stopping container proxy".to_owned()
            ),
            "{events:#?}"
        );
        assert_eq!(
            api.statuses.lock().unwrap().last().unwrap()["phase"],
            "Succeeded"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deleted_pod_starts_none_of_its_containers_again() {
        let host = Arc::new(FakeHost::default());
        let api = Arc::new(FakeApi::default());
        let mut pod = pod("Always");
        pod["spec"]["initContainers"] =
            json!([{"name": "proxy", "image": "busybox:1", "restartPolicy": "Always"}]);
        let (tx, rx) = watch::channel(Some(pod.clone()));
        let worker = tokio::spawn(run(
            rx,
            host.clone(),
            api.clone(),
            Arc::default(),
            "192.168.0.2".into(),
            now,
        ));
        until(&api, |s| {
            ["a", "b"]
                .iter()
                .all(|c| status_of(s, c, false)["state"]["running"].is_object())
        })
        .await;
        pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:03Z");
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(1);
        tx.send(Some(pod)).unwrap();
        worker.await.unwrap();
        let stopped = host.entries();
        assert_eq!(stopped.last().unwrap(), "stop sandbox sb");
        // Long after every back-off would have run out, nothing started again.
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(host.entries(), stopped);
    }
}

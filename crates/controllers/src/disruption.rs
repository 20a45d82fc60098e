//! The disruption controller, with upstream's semantics: for every PodDisruptionBudget it writes the status
//! the `pods/eviction` subresource reads — `expectedPods`, `currentHealthy`, `desiredHealthy`,
//! `disruptionsAllowed`, `observedGeneration` and the `DisruptionAllowed` condition (SufficientPods,
//! InsufficientPods, or SyncFailed with the error when the status cannot be computed, which also sets
//! `disruptionsAllowed` to 0: the budget fails closed).
//!
//! The pods are those its selector matches in its namespace (`{}` matches all, no selector none). An
//! integer `minAvailable` is compared with how many there are; a percentage, or any `maxUnavailable`, is
//! taken of the scale of the pods' controllers, found through their controller ownerReferences as
//! upstream's finders do (ReplicationController, Deployment through its ReplicaSet, ReplicaSet, StatefulSet,
//! then any kind with a `scale` subresource). A pod counts as healthy when it is Ready, not being deleted,
//! and not in `disruptedPods` — where the eviction subresource records a pod before deleting it; an entry
//! goes once the pod is being deleted or gone, or after [`DELETION_TIMEOUT`] (a `NotDeleted` event on the
//! pod), and the budget is looked at again when the next entry expires.
//!
//! It also resets stale `DisruptionTarget` conditions: a pod that has had one (not from the kubelet) for
//! [`STALE_DISRUPTION_TIMEOUT`] without being deleted gets it set to False.
//!
//! One task owns the state, as in [`crate::replicaset`]: the budgets (with their parsed selectors, indexed
//! by namespace), a compact copy of each pod ([`PodInfo`]), a [`WorkQueue`] of budget keys (a pod change
//! queues the budgets that select it before or after) and one of pod keys for stale conditions. A sync runs
//! in a task of its own (it may read the pods' controllers), at most [`SYNCS_IN_FLIGHT`] at a time; it writes
//! the status (a PUT on the budget's resourceVersion, as upstream's `UpdateStatus`) only when it changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gantry_api::labels::Selector;
use gantry_client::events::{Event, Involved, Recorder};
use gantry_client::k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use gantry_client::k8s_openapi::api::core::v1::{Pod, PodCondition, ReplicationController};
use gantry_client::k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, OwnerReference, Time,
};
use gantry_client::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use gantry_client::k8s_openapi::jiff::Timestamp;
use gantry_client::kube::api::{ApiResource, DynamicObject, PostParams};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::{
    api_message, count, involved, is_conflict, is_not_found, key, matches, name_of, namespace_of,
    selector_of, split_key,
};
use crate::cache::{Relist, watch_all};
use crate::pods;
use crate::queue::{Backoff, WorkQueue};

/// The events' source, as upstream's (`controllermanager`).
pub const COMPONENT: &str = "controllermanager";
/// How long an entry of `disruptedPods` waits for its pod to be deleted (upstream's `DeletionTimeout`).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a `DisruptionTarget` condition may stay on a pod that is not being deleted.
pub const STALE_DISRUPTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Budgets being synced at once.
pub const SYNCS_IN_FLIGHT: usize = 16;

/// The condition the eviction subresource and `kubectl describe` read.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";
/// The pod condition the eviction subresource sets.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut budget_events = watch_all::<PodDisruptionBudget>(&client);
    let mut pod_events = watch_all::<Pod>(&client);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut controller = Controller::new(client, done_tx);
    loop {
        let can_sync = controller.can_sync();
        let can_clean = controller.can_clean();
        let wakeup = [
            controller.queue.next_wakeup(),
            controller.stale.next_wakeup(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => controller.done(done),
            Some(event) = budget_events.next() => match event {
                Ok(event) => controller.budget_event(event),
                Err(e) => tracing::warn!("disruption controller: watching poddisruptionbudgets: {e}"),
            },
            Some(event) = pod_events.next() => match event {
                Ok(event) => controller.pod_event(event),
                Err(e) => tracing::warn!("disruption controller: watching pods: {e}"),
            },
            () = tokio::time::sleep_until(wakeup) => {
                let now = Instant::now();
                controller.queue.tick(now);
                controller.stale.tick(now);
            }
            () = std::future::ready(()), if can_sync => controller.sync_next(),
            () = std::future::ready(()), if can_clean => controller.clean_next(),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// What is kept of pods, and the computations of a budget's status.
// ---------------------------------------------------------------------------------------------------------

/// What the controller reads of a pod.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PodInfo {
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub deleting: bool,
    pub ready: bool,
    pub controller: Option<OwnerReference>,
    /// Since when a `DisruptionTarget` condition that can go stale is True (`Some(None)`: no time given).
    pub disruption_since: Option<Option<Timestamp>>,
}

impl PodInfo {
    pub(crate) fn of(pod: &Pod) -> PodInfo {
        let terminal = matches!(pods::phase(pod), "Succeeded" | "Failed");
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let disruption_since = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == DISRUPTION_TARGET))
            .filter(|c| {
                c.status == "True"
                    && c.reason.as_deref() != Some("TerminationByKubelet")
                    && !terminal
                    && !deleting
            })
            .map(|c| c.last_transition_time.as_ref().map(|t| t.0));
        PodInfo {
            name: name_of(&pod.metadata).to_owned(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            deleting,
            ready: pods::is_ready(pod),
            controller: pods::controller_of(&pod.metadata).cloned(),
            disruption_since,
        }
    }
}

/// A time as the API holds it (whole seconds).
fn time(at: Timestamp) -> Time {
    Time(Timestamp::from_second(at.as_second()).unwrap_or(at))
}

fn after(at: Timestamp, wait: Duration) -> Timestamp {
    at.checked_add(wait).unwrap_or(Timestamp::MAX)
}

/// How long from `now` until `at` (zero if it is past).
fn until(at: Timestamp, now: Timestamp) -> Duration {
    let nanos = at.as_nanosecond() - now.as_nanosecond();
    Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}

/// Upstream's `GetScaledValueFromIntOrPercent`, rounding up.
pub(crate) fn scaled_value(value: &IntOrString, total: i32) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let Some(number) = s.strip_suffix('%') else {
                return Err(
                    "invalid value for IntOrString: invalid type: string is not a percentage"
                        .into(),
                );
            };
            let percent: i64 = number
                .parse()
                .map_err(|e| format!("invalid value for IntOrString: invalid value {s:?}: {e}"))?;
            let scaled = (percent * i64::from(total) + 99).div_euclid(100);
            Ok(i32::try_from(scaled).unwrap_or(i32::MAX))
        }
    }
}

/// Whether the budget needs the scale of its pods' controllers: a percentage `minAvailable`, or any
/// `maxUnavailable`.
pub(crate) fn needs_scale(spec: &PodDisruptionBudgetSpec) -> bool {
    spec.max_unavailable.is_some() || matches!(spec.min_available, Some(IntOrString::String(_)))
}

/// `(expectedPods, desiredHealthy)` from the spec, the number of pods selected and (when [`needs_scale`])
/// the sum of their controllers' scales (upstream's `getExpectedPodCount`).
pub(crate) fn expected_and_desired(
    spec: &PodDisruptionBudgetSpec,
    selected: usize,
    scale: i32,
) -> Result<(i32, i32), String> {
    if let Some(max_unavailable) = &spec.max_unavailable {
        let unavailable = scaled_value(max_unavailable, scale)?;
        return Ok((scale, (scale - unavailable).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((count(selected), *n)),
        Some(percent @ IntOrString::String(_)) => Ok((scale, scaled_value(percent, scale)?)),
        None => Ok((0, 0)),
    }
}

/// The `disruptedPods` to keep: those of pods still there, not being deleted and recorded less than
/// [`DELETION_TIMEOUT`] ago; when the first of them expires; and the pods whose entries expired.
pub(crate) fn disrupted_pods(
    selected: &[Arc<PodInfo>],
    recorded: Option<&BTreeMap<String, Time>>,
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>, Vec<Arc<PodInfo>>) {
    let (mut kept, mut recheck, mut expired) = (BTreeMap::new(), None, Vec::new());
    let Some(recorded) = recorded else {
        return (kept, recheck, expired);
    };
    for pod in selected.iter().filter(|p| !p.deleting) {
        let Some(at) = recorded.get(&pod.name) else {
            continue;
        };
        let deadline = after(at.0, DELETION_TIMEOUT);
        if deadline < now {
            expired.push(pod.clone());
        } else {
            recheck = Some(recheck.map_or(deadline, |r: Timestamp| r.min(deadline)));
            kept.insert(pod.name.clone(), at.clone());
        }
    }
    (kept, recheck, expired)
}

/// Ready pods that are neither being deleted nor about to be (`countHealthyPods`).
pub(crate) fn count_healthy(
    selected: &[Arc<PodInfo>],
    disrupted: &BTreeMap<String, Time>,
    now: Timestamp,
) -> i32 {
    let healthy = selected
        .iter()
        .filter(|p| !p.deleting && p.ready)
        .filter(|p| {
            disrupted
                .get(&p.name)
                .is_none_or(|at| after(at.0, DELETION_TIMEOUT) <= now)
        })
        .count();
    count(healthy)
}

/// apimachinery's `SetStatusCondition`: the condition replaces the one of its type, keeping its transition
/// time unless the status changes.
pub(crate) fn set_condition(conditions: &mut Vec<Condition>, mut condition: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            if existing.status == condition.status {
                condition.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = condition;
        }
        None => conditions.push(condition),
    }
}

fn allowed_condition(allowed: i32, observed: Option<i64>, now: Timestamp) -> Condition {
    let (status, reason) = if allowed > 0 {
        ("True", SUFFICIENT_PODS)
    } else {
        ("False", INSUFFICIENT_PODS)
    };
    Condition {
        type_: DISRUPTION_ALLOWED.into(),
        status: status.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: observed,
        last_transition_time: time(now),
    }
}

/// Upstream's `ConditionsAreUpToDate`.
fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(status) = &pdb.status else {
        return false;
    };
    let Some(condition) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    else {
        return false;
    };
    if status.observed_generation != pdb.metadata.generation {
        return false;
    }
    if status.disruptions_allowed > 0 {
        condition.status == "True" && condition.reason == SUFFICIENT_PODS
    } else {
        condition.status == "False" && condition.reason == INSUFFICIENT_PODS
    }
}

/// What the budget's status must become, or `None` when it is current (upstream's `updatePdbStatus`).
/// Budgets that expect no pods allow no disruption, so that their first pods are safe before the status
/// counts them.
pub(crate) fn new_status(
    pdb: &PodDisruptionBudget,
    healthy: i32,
    desired: i32,
    expected: i32,
    disrupted: BTreeMap<String, Time>,
    now: Timestamp,
) -> Option<PodDisruptionBudgetStatus> {
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    let current = pdb.status.clone().unwrap_or_default();
    let same_disrupted = current.disrupted_pods.clone().unwrap_or_default() == disrupted;
    if current.current_healthy == healthy
        && current.desired_healthy == desired
        && current.expected_pods == expected
        && current.disruptions_allowed == allowed
        && same_disrupted
        && current.observed_generation == pdb.metadata.generation
        && conditions_up_to_date(pdb)
    {
        return None;
    }
    let mut conditions = current.conditions.unwrap_or_default();
    set_condition(
        &mut conditions,
        allowed_condition(allowed, pdb.metadata.generation, now),
    );
    Some(PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: pdb.metadata.generation,
        conditions: Some(conditions),
    })
}

/// The status when it cannot be computed (upstream's `failSafe`): no disruption allowed, and why.
pub(crate) fn fail_safe_status(
    pdb: &PodDisruptionBudget,
    error: &str,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_condition(
        &mut conditions,
        Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: "False".into(),
            reason: SYNC_FAILED.into(),
            message: error.to_owned(),
            observed_generation: status.observed_generation,
            last_transition_time: time(now),
        },
    );
    status.conditions = Some(conditions);
    status
}

// ---------------------------------------------------------------------------------------------------------
// The scale of the pods' controllers (upstream's finders).
// ---------------------------------------------------------------------------------------------------------

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(group, _)| group)
}

/// Whether the reference is to `kind` in one of `groups`.
fn refers_to(owner: &OwnerReference, kind: &str, groups: &[&str]) -> bool {
    owner.kind == kind && groups.contains(&group_of(&owner.api_version))
}

/// Reads the controllers of the pods of one namespace, each once.
struct Finder {
    client: Client,
    namespace: String,
    replica_sets: HashMap<String, Option<ReplicaSet>>,
}

impl Finder {
    fn new(client: Client, namespace: &str) -> Finder {
        Finder {
            client,
            namespace: namespace.to_owned(),
            replica_sets: HashMap::new(),
        }
    }

    async fn get<K>(&self, name: &str) -> Result<Option<K>, String>
    where
        K: gantry_client::kube::Resource<
                Scope = gantry_client::k8s_openapi::NamespaceResourceScope,
                DynamicType = (),
            > + Clone
            + std::fmt::Debug
            + gantry_client::k8s_openapi::serde::de::DeserializeOwned,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.namespace);
        api.get_opt(name).await.map_err(|e| api_message(&e))
    }

    async fn replica_set(&mut self, name: &str) -> Result<Option<ReplicaSet>, String> {
        if let Some(found) = self.replica_sets.get(name) {
            return Ok(found.clone());
        }
        let found = self.get::<ReplicaSet>(name).await?;
        self.replica_sets.insert(name.to_owned(), found.clone());
        Ok(found)
    }

    /// The controller (uid) and scale that `owner` stands for, `None` when no finder knows it.
    async fn scale_of(&mut self, owner: &OwnerReference) -> Result<Option<(String, i32)>, String> {
        let uid_matches =
            |uid: Option<&String>| uid.map(String::as_str) == Some(owner.uid.as_str());
        if refers_to(owner, "ReplicationController", &[""]) {
            let found = self.get::<ReplicationController>(&owner.name).await?;
            return Ok(found
                .filter(|rc| uid_matches(rc.metadata.uid.as_ref()))
                .map(|rc| {
                    let replicas = rc.spec.and_then(|s| s.replicas).unwrap_or(1);
                    (owner.uid.clone(), replicas)
                }));
        }
        if refers_to(owner, "ReplicaSet", &["apps", "extensions"]) {
            let Some(rs) = self
                .replica_set(&owner.name)
                .await?
                .filter(|rs| uid_matches(rs.metadata.uid.as_ref()))
            else {
                return self.by_scale(owner).await;
            };
            match pods::controller_of(&rs.metadata) {
                Some(parent) if refers_to(parent, "Deployment", &["apps", "extensions"]) => {
                    let deployment = self
                        .get::<Deployment>(&parent.name)
                        .await?
                        .filter(|d| d.metadata.uid.as_deref() == Some(parent.uid.as_str()));
                    if let Some(deployment) = deployment {
                        let replicas = deployment.spec.and_then(|s| s.replicas).unwrap_or(1);
                        return Ok(Some((parent.uid.clone(), replicas)));
                    }
                }
                Some(parent) if parent.kind == "Deployment" => {}
                _ => {
                    let replicas = rs.spec.and_then(|s| s.replicas).unwrap_or(1);
                    return Ok(Some((owner.uid.clone(), replicas)));
                }
            }
            return self.by_scale(owner).await;
        }
        if refers_to(owner, "StatefulSet", &["apps"]) {
            let found = self.get::<StatefulSet>(&owner.name).await?;
            if let Some(set) = found.filter(|s| uid_matches(s.metadata.uid.as_ref())) {
                let replicas = set.spec.and_then(|s| s.replicas).unwrap_or(1);
                return Ok(Some((owner.uid.clone(), replicas)));
            }
        }
        self.by_scale(owner).await
    }

    /// Any other kind: its `scale` subresource (upstream's `getScaleController`).
    async fn by_scale(&self, owner: &OwnerReference) -> Result<Option<(String, i32)>, String> {
        let resource = resource_for(&self.client, &owner.api_version, &owner.kind).await?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &resource.api);
        match api.get_scale(&owner.name).await {
            Ok(scale) if scale.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
                let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
                Ok(Some((owner.uid.clone(), replicas)))
            }
            Ok(_) => Ok(None),
            Err(e) if is_not_found(&e) && !resource.scalable => Err(format!(
                "{} does not implement the scale subresource",
                resource.group_resource()
            )),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api_message(&e)),
        }
    }
}

/// A kind as the API serves it.
pub(crate) struct Resource {
    pub api: ApiResource,
    /// It has a `scale` subresource.
    pub scalable: bool,
}

impl Resource {
    /// `plural.group` (`plural` in the core group), as upstream's `GroupResource.String()`.
    pub(crate) fn group_resource(&self) -> String {
        if self.api.group.is_empty() {
            self.api.plural.clone()
        } else {
            format!("{}.{}", self.api.plural, self.api.group)
        }
    }
}

/// The resource serving `kind` of `api_version`, from discovery (upstream's RESTMapper). The workload
/// kinds are known without asking, in their served version, whatever version the reference names.
pub(crate) async fn resource_for(
    client: &Client,
    api_version: &str,
    kind: &str,
) -> Result<Resource, String> {
    if api_version.matches('/').count() > 1 {
        return Err(format!("unexpected GroupVersion string: {api_version}"));
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let known = match (group, kind) {
        ("apps", "Deployment") => Some("deployments"),
        ("apps", "ReplicaSet") => Some("replicasets"),
        ("apps", "StatefulSet") => Some("statefulsets"),
        ("", "ReplicationController") => Some("replicationcontrollers"),
        _ => None,
    };
    let resource = |version: &str, plural: &str, scalable| Resource {
        api: ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            api_version: if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.to_owned(),
            plural: plural.to_owned(),
        },
        scalable,
    };
    if let Some(plural) = known {
        return Ok(resource("v1", plural, true));
    }
    let no_match = || format!("no matches for kind {kind:?} in group {group:?}");
    if version.is_empty() {
        return Err(no_match());
    }
    let listed = if group.is_empty() {
        client.list_core_api_resources(version).await
    } else {
        client.list_api_group_resources(api_version).await
    };
    let list = match listed {
        Ok(list) => list,
        Err(e) if is_not_found(&e) => return Err(no_match()),
        Err(e) => return Err(api_message(&e)),
    };
    let plural = list
        .resources
        .iter()
        .find(|r| r.kind == kind && !r.name.contains('/'))
        .map(|r| r.name.clone())
        .ok_or_else(no_match)?;
    let scale = format!("{plural}/scale");
    let scalable = list.resources.iter().any(|r| r.name == scale);
    Ok(resource(version, &plural, scalable))
}

/// The sum of the scales of the pods' controllers, and the pods without a controller (upstream's
/// `getExpectedScale`).
async fn expected_scale(
    finder: &mut Finder,
    selected: &[Arc<PodInfo>],
) -> Result<(i32, Vec<String>), String> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for pod in selected {
        let Some(owner) = &pod.controller else {
            unmanaged.push(pod.name.clone());
            continue;
        };
        if scales.contains_key(&owner.uid) {
            continue;
        }
        match finder.scale_of(owner).await? {
            Some((uid, scale)) => {
                scales.insert(uid, scale);
            }
            None => return Err(format!("found no controllers for pod {:?}", pod.name)),
        }
    }
    let total = scales.values().fold(0i32, |sum, s| sum.saturating_add(*s));
    Ok((total, unmanaged))
}

// ---------------------------------------------------------------------------------------------------------
// The controller.
// ---------------------------------------------------------------------------------------------------------

/// A budget and its parsed selector (`Err`: invalid).
#[derive(Debug)]
struct Budget {
    pdb: Arc<PodDisruptionBudget>,
    selector: Result<Selector, String>,
}

impl Budget {
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector
            .as_ref()
            .is_ok_and(|s| matches(s, Some(labels)))
    }
}

/// What a task reports when it is over.
#[derive(Debug)]
enum Done {
    Budget {
        key: String,
        /// When the budget must be looked at again (an entry of `disruptedPods` expires).
        recheck: Option<Duration>,
        retry: bool,
    },
    Stale {
        key: String,
        retry: bool,
    },
}

struct Controller {
    client: Client,
    events: Recorder,
    budgets: HashMap<String, Budget>,
    /// Budget keys by namespace.
    by_namespace: HashMap<String, BTreeSet<String>>,
    /// Pods by namespace, then name.
    pods: HashMap<String, HashMap<String, Arc<PodInfo>>>,
    budgets_relist: Relist,
    pods_relist: Relist,
    queue: WorkQueue<String>,
    backoff: Backoff<String>,
    /// Pods (`namespace/name`) whose DisruptionTarget condition may be stale.
    stale: WorkQueue<String>,
    stale_backoff: Backoff<String>,
    done_tx: mpsc::UnboundedSender<Done>,
}

impl Controller {
    fn new(client: Client, done_tx: mpsc::UnboundedSender<Done>) -> Controller {
        Controller {
            events: Recorder::start(client.clone(), COMPONENT),
            client,
            budgets: HashMap::new(),
            by_namespace: HashMap::new(),
            pods: HashMap::new(),
            budgets_relist: Relist::default(),
            pods_relist: Relist::default(),
            queue: WorkQueue::default(),
            backoff: Backoff::default(),
            stale: WorkQueue::default(),
            stale_backoff: Backoff::default(),
            done_tx,
        }
    }

    fn synced(&self) -> bool {
        self.budgets_relist.synced && self.pods_relist.synced
    }

    fn can_sync(&self) -> bool {
        self.synced() && !self.queue.is_empty() && self.queue.active() < SYNCS_IN_FLIGHT
    }

    fn can_clean(&self) -> bool {
        self.pods_relist.synced && !self.stale.is_empty()
    }

    fn budget_event(&mut self, event: watcher::Event<PodDisruptionBudget>) {
        match event {
            watcher::Event::Init => self.budgets_relist.init(),
            watcher::Event::InitApply(pdb) | watcher::Event::Apply(pdb) => {
                let ns = namespace_of(&pdb.metadata).to_owned();
                let k = key(&ns, name_of(&pdb.metadata));
                self.budgets_relist.seen(&k);
                let selector = match pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) {
                    Some(selector) => selector_of(selector),
                    None => Ok(Selector::nothing()),
                };
                self.budgets.insert(
                    k.clone(),
                    Budget {
                        pdb: Arc::new(pdb),
                        selector,
                    },
                );
                self.by_namespace.entry(ns).or_default().insert(k.clone());
                self.queue.add(k);
            }
            watcher::Event::Delete(pdb) => {
                let k = key(namespace_of(&pdb.metadata), name_of(&pdb.metadata));
                self.budget_gone(&k);
            }
            watcher::Event::InitDone => {
                for k in self.budgets_relist.done(self.budgets.keys()) {
                    self.budget_gone(&k);
                }
            }
        }
    }

    fn budget_gone(&mut self, k: &str) {
        self.budgets.remove(k);
        self.backoff.reset(k);
        let (ns, _) = split_key(k);
        if let Some(keys) = self.by_namespace.get_mut(ns) {
            keys.remove(k);
            if keys.is_empty() {
                self.by_namespace.remove(ns);
            }
        }
    }

    /// The budgets of `namespace` that select `labels`.
    fn selecting(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<String> {
        self.by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .filter(|k| self.budgets.get(*k).is_some_and(|b| b.selects(labels)))
            .cloned()
            .collect()
    }

    fn pod_event(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.pods_relist.init(),
            watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                let ns = namespace_of(&pod.metadata).to_owned();
                self.pods_relist.seen(&key(&ns, name_of(&pod.metadata)));
                self.pod_seen(ns, &pod);
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
                for k in self.pods_relist.done(known.iter()) {
                    let (ns, name) = split_key(&k);
                    self.pod_gone(ns, name);
                }
            }
        }
    }

    fn pod_seen(&mut self, ns: String, pod: &Pod) {
        let info = Arc::new(PodInfo::of(pod));
        let old = self
            .pods
            .entry(ns.clone())
            .or_default()
            .insert(info.name.clone(), info.clone());
        if old.as_deref() == Some(&*info) {
            return;
        }
        let mut affected = self.selecting(&ns, &info.labels);
        if affected.len() > 1 && old.as_ref().is_none_or(|o| o.labels != info.labels) {
            let chosen = split_key(&affected[0]).1.to_owned();
            let message = format!(
                "Pod {:?}/{:?} matches multiple PodDisruptionBudgets.  Chose {chosen:?} arbitrarily.",
                ns, info.name
            );
            self.events.record(Event {
                object: pod_involved(&ns, pod),
                warning: true,
                reason: "MultiplePodDisruptionBudgets",
                message,
            });
        }
        if let Some(old) = &old
            && old.labels != info.labels
        {
            affected.extend(self.selecting(&ns, &old.labels));
        }
        for k in affected {
            self.queue.add(k);
        }
        if let Some(since) = info.disruption_since {
            let now = Timestamp::now();
            let wait = since.map_or(Duration::ZERO, |since| {
                until(after(since, STALE_DISRUPTION_TIMEOUT), now)
            });
            self.stale
                .add_after(key(&ns, &info.name), wait, Instant::now());
        }
    }

    fn pod_gone(&mut self, ns: &str, name: &str) {
        let Some(old) = self.pods.get_mut(ns).and_then(|p| p.remove(name)) else {
            return;
        };
        if self.pods.get(ns).is_some_and(HashMap::is_empty) {
            self.pods.remove(ns);
        }
        for k in self.selecting(ns, &old.labels) {
            self.queue.add(k);
        }
    }

    fn sync_next(&mut self) {
        let Some(k) = self.queue.pop() else { return };
        let Some(budget) = self.budgets.get(&k) else {
            self.queue.done(&k);
            return;
        };
        let ns = namespace_of(&budget.pdb.metadata).to_owned();
        let selected = budget.selector.clone().map(|selector| {
            let mut selected: Vec<Arc<PodInfo>> = self
                .pods
                .get(&ns)
                .into_iter()
                .flat_map(HashMap::values)
                .filter(|p| matches(&selector, Some(&p.labels)))
                .cloned()
                .collect();
            selected.sort_by(|a, b| a.name.cmp(&b.name));
            selected
        });
        let task = Sync {
            key: k,
            pdb: budget.pdb.clone(),
            selected,
            client: self.client.clone(),
            events: self.events.clone(),
        };
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let _ = done.send(task.run().await);
        });
    }

    fn clean_next(&mut self) {
        let Some(k) = self.stale.pop() else { return };
        let (ns, name) = split_key(&k);
        let since = self
            .pods
            .get(ns)
            .and_then(|p| p.get(name))
            .and_then(|p| p.disruption_since);
        let Some(since) = since else {
            self.stale.done(&k);
            self.stale_backoff.reset(&k);
            return;
        };
        let wait = since.map_or(Duration::ZERO, |since| {
            until(after(since, STALE_DISRUPTION_TIMEOUT), Timestamp::now())
        });
        if !wait.is_zero() {
            self.stale.done(&k);
            self.stale.add_after(k, wait, Instant::now());
            return;
        }
        let (client, done) = (self.client.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let retry = !reset_stale_condition(client, &k).await;
            let _ = done.send(Done::Stale { key: k, retry });
        });
    }

    fn done(&mut self, done: Done) {
        let now = Instant::now();
        match done {
            Done::Budget {
                key,
                recheck,
                retry,
            } => {
                self.queue.done(&key);
                if !self.budgets.contains_key(&key) {
                    return;
                }
                if retry {
                    let delay = self.backoff.failed(&key);
                    self.queue.add_after(key.clone(), delay, now);
                } else {
                    self.backoff.reset(&key);
                }
                if let Some(wait) = recheck {
                    self.queue.add_after(key, wait, now);
                }
            }
            Done::Stale { key, retry } => {
                self.stale.done(&key);
                if retry {
                    let delay = self.stale_backoff.failed(&key);
                    self.stale.add_after(key, delay, now);
                } else {
                    self.stale_backoff.reset(&key);
                }
            }
        }
    }
}

fn pod_involved(namespace: &str, pod: &Pod) -> Involved {
    Involved {
        api_version: "v1",
        kind: "Pod",
        namespace: namespace.to_owned(),
        name: name_of(&pod.metadata).to_owned(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

/// One sync of one budget.
struct Sync {
    key: String,
    pdb: Arc<PodDisruptionBudget>,
    /// The pods the selector matches, or why there is no telling.
    selected: Result<Vec<Arc<PodInfo>>, String>,
    client: Client,
    events: Recorder,
}

impl Sync {
    fn event(&self, warning: bool, reason: &'static str, message: String) {
        self.events.record(Event {
            object: involved(&*self.pdb),
            warning,
            reason,
            message,
        });
    }

    async fn run(self) -> Done {
        let now = Timestamp::now();
        let (result, recheck) = match self.compute(now).await {
            Ok((status, recheck)) => (Ok(status), recheck),
            Err(error) => (Err(error), None),
        };
        let retry = match result {
            Ok(None) => false,
            Ok(Some(status)) => match self.write(status).await {
                Ok(()) => false,
                Err(e) if is_conflict(&e) => true,
                Err(e) => {
                    let error = api_message(&e);
                    tracing::debug!(pdb = %self.key, "cannot write the status: {error}");
                    self.fail_safe(&error, now).await;
                    true
                }
            },
            Err(error) => {
                self.fail_safe(&error, now).await;
                true
            }
        };
        Done::Budget {
            key: self.key,
            recheck: recheck.map(|at| until(at, now) + Duration::from_millis(100)),
            retry,
        }
    }

    /// The new status (`None`: the current one is right) and when to look again.
    async fn compute(
        &self,
        now: Timestamp,
    ) -> Result<(Option<PodDisruptionBudgetStatus>, Option<Timestamp>), String> {
        let pdb = &*self.pdb;
        let selected = match &self.selected {
            Ok(selected) => selected,
            Err(error) => {
                self.event(true, "NoPods", format!("Failed to get pods: {error}"));
                return Err(error.clone());
            }
        };
        if selected.is_empty() {
            self.event(false, "NoPods", "No matching pods found".into());
        }
        let spec = pdb.spec.clone().unwrap_or_default();
        let (scale, unmanaged) = if needs_scale(&spec) {
            let mut finder = Finder::new(self.client.clone(), namespace_of(&pdb.metadata));
            match expected_scale(&mut finder, selected).await {
                Ok(found) => found,
                Err(error) => {
                    self.event(
                        true,
                        "CalculateExpectedPodCountFailed",
                        format!("Failed to calculate the number of expected pods: {error}"),
                    );
                    return Err(error);
                }
            }
        } else {
            (0, Vec::new())
        };
        let (expected, desired) = expected_and_desired(&spec, selected.len(), scale)?;
        if !unmanaged.is_empty() {
            let selector = spec
                .selector
                .as_ref()
                .and_then(|s| selector_of(s).ok())
                .map(|s| s.to_string())
                .unwrap_or_default();
            self.event(
                true,
                "UnmanagedPods",
                format!(
                    "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. \
                     As a result, the status of the PDB cannot be calculated correctly, which may result in \
                     undefined behavior. To account for these pods please set \".spec.minAvailable\" field of \
                     the PDB to an integer value."
                ),
            );
        }
        let recorded = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref());
        let (disrupted, recheck, expired) = disrupted_pods(selected, recorded, now);
        let ns = namespace_of(&pdb.metadata);
        for pod in expired {
            self.events.record(Event {
                object: Involved {
                    api_version: "v1",
                    kind: "Pod",
                    namespace: ns.to_owned(),
                    name: pod.name.clone(),
                    uid: pod.uid.clone(),
                },
                warning: true,
                reason: "NotDeleted",
                message: format!(
                    "Pod was expected by PDB {ns}/{} to be deleted but it wasn't",
                    name_of(&pdb.metadata)
                ),
            });
        }
        let healthy = count_healthy(selected, &disrupted, now);
        let status = new_status(pdb, healthy, desired, expected, disrupted, now);
        Ok((status, recheck))
    }

    async fn write(
        &self,
        status: PodDisruptionBudgetStatus,
    ) -> Result<(), gantry_client::kube::Error> {
        let mut pdb = (*self.pdb).clone();
        pdb.status = Some(status);
        let api: Api<PodDisruptionBudget> =
            Api::namespaced(self.client.clone(), namespace_of(&pdb.metadata));
        match api
            .replace_status(name_of(&pdb.metadata), &PostParams::default(), &pdb)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes that no disruption is allowed, and why (a failure is left to the retry).
    async fn fail_safe(&self, error: &str, now: Timestamp) {
        let status = fail_safe_status(&self.pdb, error, now);
        if self.pdb.status.as_ref() == Some(&status) {
            return;
        }
        if let Err(e) = self.write(status).await {
            tracing::debug!(pdb = %self.key, "cannot write the fail-safe status: {e}");
        }
    }
}

/// Sets a stale `DisruptionTarget` condition of the pod `namespace/name` to False (upstream's
/// `syncStalePodDisruption`); whether it is done (or needed no more).
async fn reset_stale_condition(client: Client, k: &str) -> bool {
    let (ns, name) = split_key(k);
    let api: Api<Pod> = Api::namespaced(client, ns);
    let mut pod = match api.get_opt(name).await {
        Ok(Some(pod)) => pod,
        Ok(None) => return true,
        Err(e) => {
            tracing::debug!(pod = %k, "cannot read the pod: {e}");
            return false;
        }
    };
    let now = Timestamp::now();
    let stale = PodInfo::of(&pod).disruption_since.is_some_and(|since| {
        since.is_none_or(|since| after(since, STALE_DISRUPTION_TIMEOUT) <= now)
    });
    if !stale {
        return true;
    }
    if let Some(conditions) = pod.status.as_mut().and_then(|s| s.conditions.as_mut())
        && let Some(condition) = conditions.iter_mut().find(|c| c.type_ == DISRUPTION_TARGET)
    {
        *condition = PodCondition {
            type_: DISRUPTION_TARGET.into(),
            status: "False".into(),
            last_transition_time: Some(time(now)),
            ..PodCondition::default()
        };
    }
    match api.replace_status(name, &PostParams::default(), &pod).await {
        Ok(_) => true,
        Err(e) if is_not_found(&e) => true,
        Err(e) => {
            tracing::debug!(pod = %k, "cannot reset the DisruptionTarget condition: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pdb(value: Value) -> PodDisruptionBudget {
        serde_json::from_value(value).unwrap()
    }

    fn spec(value: Value) -> PodDisruptionBudgetSpec {
        serde_json::from_value(value).unwrap()
    }

    fn info(name: &str, ready: bool, deleting: bool) -> Arc<PodInfo> {
        Arc::new(PodInfo {
            name: name.into(),
            uid: name.into(),
            labels: BTreeMap::new(),
            deleting,
            ready,
            controller: None,
            disruption_since: None,
        })
    }

    #[test]
    fn percentages_round_up_and_integers_stay() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled_value(&IntOrString::Int(2), 10), Ok(2));
        assert_eq!(scaled_value(&pct("50%"), 3), Ok(2));
        assert_eq!(scaled_value(&pct("10%"), 10), Ok(1));
        assert_eq!(scaled_value(&pct("0%"), 7), Ok(0));
        assert_eq!(scaled_value(&pct("100%"), 7), Ok(7));
        assert!(
            scaled_value(&pct("5"), 7)
                .unwrap_err()
                .contains("not a percentage")
        );
        assert!(
            scaled_value(&pct("x%"), 7)
                .unwrap_err()
                .contains("invalid value \"x%\"")
        );
    }

    #[test]
    fn expected_and_desired_follow_min_available_or_max_unavailable() {
        let min_int = spec(json!({"minAvailable": 2}));
        assert!(!needs_scale(&min_int));
        assert_eq!(expected_and_desired(&min_int, 3, 0), Ok((3, 2)));
        let min_pct = spec(json!({"minAvailable": "50%"}));
        assert!(needs_scale(&min_pct));
        assert_eq!(expected_and_desired(&min_pct, 2, 5), Ok((5, 3)));
        let max_int = spec(json!({"maxUnavailable": 1}));
        assert!(needs_scale(&max_int));
        assert_eq!(expected_and_desired(&max_int, 3, 4), Ok((4, 3)));
        let max_pct = spec(json!({"maxUnavailable": "30%"}));
        assert_eq!(expected_and_desired(&max_pct, 3, 10), Ok((10, 7)));
        let too_many = spec(json!({"maxUnavailable": 9}));
        assert_eq!(expected_and_desired(&too_many, 3, 3), Ok((3, 0)));
        assert_eq!(expected_and_desired(&spec(json!({})), 3, 0), Ok((0, 0)));
    }

    #[test]
    fn disrupted_pods_are_kept_until_deleted_or_expired() {
        let now = at("2025-01-01T00:10:00Z");
        let recorded: BTreeMap<String, Time> = [
            ("fresh", "2025-01-01T00:09:00Z"),
            ("old", "2025-01-01T00:07:00Z"),
            ("deleting", "2025-01-01T00:09:30Z"),
            ("gone", "2025-01-01T00:09:30Z"),
            ("later", "2025-01-01T00:09:30Z"),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_owned(), Time(at(t))))
        .collect();
        let pods = vec![
            info("fresh", true, false),
            info("old", true, false),
            info("deleting", true, true),
            info("later", true, false),
            info("other", true, false),
        ];
        let (kept, recheck, expired) = disrupted_pods(&pods, Some(&recorded), now);
        assert_eq!(
            kept.keys().map(String::as_str).collect::<Vec<_>>(),
            ["fresh", "later"]
        );
        assert_eq!(recheck, Some(at("2025-01-01T00:11:00Z")));
        assert_eq!(
            expired.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["old"]
        );
        // Ready and not being deleted, and not disrupted: "old" (expired) and "other".
        assert_eq!(count_healthy(&pods, &kept, now), 2);
        let (none, recheck, _) = disrupted_pods(&pods, None, now);
        assert!(none.is_empty() && recheck.is_none());
        assert_eq!(count_healthy(&pods, &none, now), 4);
    }

    #[test]
    fn the_status_allows_what_is_healthy_beyond_desired() {
        let now = at("2025-01-01T00:00:00Z");
        let budget = pdb(
            json!({"metadata": {"name": "web", "namespace": "ns", "generation": 2},
            "spec": {"minAvailable": 2}}),
        );
        let status = new_status(&budget, 3, 2, 3, BTreeMap::new(), now).unwrap();
        assert_eq!(
            (
                status.expected_pods,
                status.current_healthy,
                status.desired_healthy,
                status.disruptions_allowed
            ),
            (3, 3, 2, 1)
        );
        assert_eq!(status.observed_generation, Some(2));
        let condition = &status.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (
                condition.type_.as_str(),
                condition.status.as_str(),
                condition.reason.as_str()
            ),
            ("DisruptionAllowed", "True", "SufficientPods")
        );
        // Written, it is current.
        let mut written = budget.clone();
        written.status = Some(status.clone());
        assert_eq!(new_status(&written, 3, 2, 3, BTreeMap::new(), now), None);
        // One fewer healthy: none allowed, the condition turns with a new transition time.
        let later = at("2025-01-01T00:05:00Z");
        let fewer = new_status(&written, 2, 2, 3, BTreeMap::new(), later).unwrap();
        assert_eq!(fewer.disruptions_allowed, 0);
        let condition = &fewer.conditions.as_ref().unwrap()[0];
        assert_eq!(condition.reason, "InsufficientPods");
        assert_eq!(condition.last_transition_time, Time(later));
        // No pods expected: nothing allowed, however many are healthy.
        let empty = new_status(&budget, 5, 0, 0, BTreeMap::new(), now).unwrap();
        assert_eq!(empty.disruptions_allowed, 0);
        // A newer generation is not current.
        let mut newer = written.clone();
        newer.metadata.generation = Some(3);
        assert!(new_status(&newer, 3, 2, 3, BTreeMap::new(), now).is_some());
    }

    #[test]
    fn the_fail_safe_allows_nothing_and_says_why() {
        let now = at("2025-01-01T00:00:00Z");
        let mut budget = pdb(json!({"metadata": {"name": "web", "generation": 1},
            "spec": {"maxUnavailable": 1}}));
        budget.status = new_status(&budget, 3, 2, 3, BTreeMap::new(), now);
        let status = fail_safe_status(&budget, "found no controllers for pod \"x\"", now);
        assert_eq!(status.disruptions_allowed, 0);
        assert_eq!(status.current_healthy, 3);
        let condition = &status.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", "SyncFailed")
        );
        assert_eq!(condition.message, "found no controllers for pod \"x\"");
    }

    #[test]
    fn pods_are_read_for_readiness_deletion_and_stale_disruption_targets() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                    "uid": "u", "controller": true}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                 "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}))
        .unwrap();
        let info = PodInfo::of(&pod);
        assert!(info.ready && !info.deleting);
        assert_eq!(info.controller.as_ref().unwrap().name, "rs");
        assert_eq!(
            info.disruption_since,
            Some(Some(at("2025-01-01T00:00:00Z")))
        );
        let mut by_kubelet = pod.clone();
        by_kubelet
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()[1]
            .reason = Some("TerminationByKubelet".into());
        assert_eq!(PodInfo::of(&by_kubelet).disruption_since, None);
        let mut deleting = pod;
        deleting.metadata.deletion_timestamp = Some(Time(at("2025-01-01T00:01:00Z")));
        let info = PodInfo::of(&deleting);
        assert!(info.deleting);
        assert_eq!(info.disruption_since, None);
    }

    #[test]
    fn conditions_keep_their_transition_time_while_the_status_holds() {
        let first = at("2025-01-01T00:00:00Z");
        let mut conditions = Vec::new();
        set_condition(&mut conditions, allowed_condition(1, Some(1), first));
        set_condition(
            &mut conditions,
            allowed_condition(2, Some(2), at("2025-01-01T00:01:00Z")),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, Time(first));
        assert_eq!(conditions[0].observed_generation, Some(2));
    }

    #[test]
    fn references_name_their_kind_and_group() {
        let owner = |api_version: &str, kind: &str| OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: "x".into(),
            uid: "u".into(),
            ..OwnerReference::default()
        };
        assert!(refers_to(
            &owner("apps/v1", "ReplicaSet"),
            "ReplicaSet",
            &["apps", "extensions"]
        ));
        assert!(refers_to(
            &owner("v1", "ReplicationController"),
            "ReplicationController",
            &[""]
        ));
        assert!(!refers_to(
            &owner("example.com/v1", "ReplicaSet"),
            "ReplicaSet",
            &["apps"]
        ));
    }
}

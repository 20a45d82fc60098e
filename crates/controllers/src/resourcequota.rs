//! The ResourceQuota controller (upstream's `resourcequota` controller): keeps each quota's `status.hard` equal
//! to its `spec.hard` and recounts `status.used` from what exists in its namespace (the arithmetic is
//! `gantry_api::quota`, shared with the API server's admission, which charges `status.used` as objects are
//! created). A quota is recounted when it is created or its limits change, when an object of a kind it
//! counts goes away (or a pod finishes, or a Service or claim changes), and every [`RESYNC`], so usage is
//! given back when objects go.
//!
//! One task owns the state: the quotas (what kinds each counts) and a watch of each kind some quota counts,
//! started when a quota first names it (the kinds a cluster has no quota of cost nothing). Recounts run in
//! tasks of their own, at most [`SYNCS_IN_FLIGHT`] at a time and never two of one quota; each reads the
//! quota, lists what it counts through the API (after [`SETTLE`], see there) and writes the status with the
//! quota's resourceVersion (a conflict counts again).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use gantry_api::quota::{self, ResourceList};
use gantry_client::k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaStatus};
use gantry_client::kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::{api_message, is_conflict, is_not_found, key, namespace_of, split_key};
use crate::cache::{watch, watch_all};
use crate::queue::{Backoff, WorkQueue};

/// Every quota is recounted this often (kube-controller-manager's `--resource-quota-sync-period`).
pub const RESYNC: Duration = Duration::from_secs(300);
/// Quotas being recounted at once.
pub const SYNCS_IN_FLIGHT: usize = 16;
/// How long a recount waits between reading a quota and listing what it counts. Admission charges a quota
/// just before it stores the object charged for: a listing right after a charge could miss that object and
/// count too little, and the next create would pass the quota. Every write charged before the read has
/// stored its object by the end of the wait; one charged after it changes the quota, so the recount's
/// write (compare-and-swap on the read) fails and it is counted again.
pub const SETTLE: Duration = Duration::from_secs(1);

/// A kind quotas count: its group and plural.
type Kind = (String, String);

type KindEvents = BoxStream<'static, (Kind, Result<watcher::Event<DynamicObject>, watcher::Error>)>;

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut quotas = watch_all::<ResourceQuota>(&client);
    let mut kinds: SelectAll<KindEvents> = SelectAll::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (resolved_tx, mut resolved_rx) = mpsc::unbounded_channel();
    let mut controller = Controller {
        client,
        quotas: HashMap::new(),
        watching: HashSet::new(),
        finished_pods: HashSet::new(),
        queue: WorkQueue::default(),
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(60)),
        in_flight: 0,
        done_tx,
        resolved_tx,
    };
    let mut resync = tokio::time::interval_at(Instant::now() + RESYNC, RESYNC);
    loop {
        let can_sync = controller.in_flight < SYNCS_IN_FLIGHT && !controller.queue.is_empty();
        let wakeup = controller
            .queue
            .next_wakeup()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            Some((key, result)) = done_rx.recv() => controller.done(&key, result),
            Some((kind, resource)) = resolved_rx.recv() => match resource {
                Some(resource) => kinds.push(kind_events(&controller.client, kind, resource)),
                // Not served (yet): tried again when a quota names it next.
                None => { controller.watching.remove(&kind); }
            },
            Some(event) = quotas.next() => match event {
                Ok(event) => controller.quota_event(event),
                Err(e) => tracing::warn!("resourcequota controller: watching resourcequotas: {e}"),
            },
            Some((kind, event)) = kinds.next() => match event {
                Ok(event) => controller.object_event(&kind, event),
                Err(e) => tracing::warn!("resourcequota controller: watching {}: {e}", kind.1),
            },
            _ = resync.tick() => {
                let keys: Vec<String> = controller.quotas.keys().cloned().collect();
                keys.into_iter().for_each(|k| controller.queue.add(k));
            }
            () = tokio::time::sleep_until(wakeup) => controller.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_sync => controller.sync_next(),
        }
    }
}

/// The events of a watch of every object of `kind`, tagged with it.
fn kind_events(client: &Client, kind: Kind, resource: ApiResource) -> KindEvents {
    watch(
        Api::<DynamicObject>::all_with(client.clone(), &resource),
        watcher::Config::default(),
    )
    .map(move |event| (kind.clone(), event))
    .boxed()
}

struct Controller {
    client: Client,
    /// The quotas by `namespace/name`, with the kinds each counts.
    quotas: HashMap<String, Vec<Kind>>,
    /// Kinds watched, or being looked up to be.
    watching: HashSet<Kind>,
    /// Pods (`namespace/name`) seen finished: one recount when they finish, not one per later change.
    finished_pods: HashSet<String>,
    queue: WorkQueue<String>,
    backoff: Backoff<String>,
    in_flight: usize,
    done_tx: mpsc::UnboundedSender<(String, Result<(), String>)>,
    resolved_tx: mpsc::UnboundedSender<(Kind, Option<ApiResource>)>,
}

impl Controller {
    fn quota_event(&mut self, event: watcher::Event<ResourceQuota>) {
        match event {
            watcher::Event::Apply(quota) | watcher::Event::InitApply(quota) => {
                let meta = &quota.metadata;
                let k = key(namespace_of(meta), meta.name.as_deref().unwrap_or_default());
                let value = serde_json::to_value(&quota).unwrap_or(Value::Null);
                let hard = quota::resource_list(value.pointer("/spec/hard"));
                let kinds = quota::counted_kinds(hard.keys());
                for kind in &kinds {
                    self.watch_kind(kind);
                }
                let known = self.quotas.insert(k.clone(), kinds).is_some();
                if !known || needs_recount(&value, &hard) {
                    self.queue.add(k);
                }
            }
            watcher::Event::Delete(quota) => {
                let meta = &quota.metadata;
                let k = key(namespace_of(meta), meta.name.as_deref().unwrap_or_default());
                self.quotas.remove(&k);
                self.backoff.reset(&k);
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    /// Starts watching `kind` unless it is watched already (its API resource is looked up first).
    fn watch_kind(&mut self, kind: &Kind) {
        if !self.watching.insert(kind.clone()) {
            return;
        }
        let (client, tx, kind) = (self.client.clone(), self.resolved_tx.clone(), kind.clone());
        tokio::spawn(async move {
            let resource = api_resource(&client, &kind.0, &kind.1).await;
            let _ = tx.send((kind, resource));
        });
    }

    /// Queues the quotas of `namespace` that count `kind`.
    fn recount(&mut self, namespace: &str, kind: &Kind) {
        let keys: Vec<String> = self
            .quotas
            .iter()
            .filter(|(k, kinds)| split_key(k).0 == namespace && kinds.contains(kind))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter().for_each(|k| self.queue.add(k));
    }

    fn object_event(&mut self, kind: &Kind, event: watcher::Event<DynamicObject>) {
        let is_pods = kind.0.is_empty() && kind.1 == "pods";
        match event {
            watcher::Event::Delete(object) => {
                let namespace = namespace_of(&object.metadata).to_owned();
                if is_pods {
                    let name = object.metadata.name.as_deref().unwrap_or_default();
                    self.finished_pods.remove(&key(&namespace, name));
                }
                self.recount(&namespace, kind);
            }
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let namespace = namespace_of(&object.metadata).to_owned();
                if is_pods {
                    let k = key(
                        &namespace,
                        object.metadata.name.as_deref().unwrap_or_default(),
                    );
                    let value = serde_json::to_value(&object).unwrap_or(Value::Null);
                    if quota::pod_is_done(&value, SystemTime::now()) {
                        if self.finished_pods.insert(k) {
                            self.recount(&namespace, kind);
                        }
                    } else if let Some(after) = grace_left(&value) {
                        // A pod being deleted stops counting when its grace period is over.
                        for (quota_key, kinds) in &self.quotas {
                            if split_key(quota_key).0 == namespace && kinds.contains(kind) {
                                self.queue
                                    .add_after(quota_key.clone(), after, Instant::now());
                            }
                        }
                    }
                } else if kind.0.is_empty()
                    && matches!(kind.1.as_str(), "services" | "persistentvolumeclaims")
                {
                    // A Service or claim that changed may use less than it was charged.
                    self.recount(&namespace, kind);
                }
            }
            // What went while the watch was down is found by recounting.
            watcher::Event::InitDone => {
                let keys: Vec<String> = self
                    .quotas
                    .iter()
                    .filter(|(_, kinds)| kinds.contains(kind))
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.into_iter().for_each(|k| self.queue.add(k));
            }
            watcher::Event::Init => {}
        }
    }

    fn sync_next(&mut self) {
        let Some(k) = self.queue.pop() else {
            return;
        };
        self.in_flight += 1;
        let (client, tx) = (self.client.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let (namespace, name) = split_key(&k);
            let result = sync(&client, namespace, name).await;
            let _ = tx.send((k, result));
        });
    }

    fn done(&mut self, k: &str, result: Result<(), String>) {
        self.in_flight -= 1;
        let k = k.to_owned();
        self.queue.done(&k);
        match result {
            Ok(()) => self.backoff.reset(&k),
            Err(e) => {
                tracing::debug!("resourcequota controller: {k}: {e}");
                let delay = self.backoff.failed(&k);
                self.queue.add_after(k, delay, Instant::now());
            }
        }
    }
}

/// Whether a quota's status is not what its spec says: limits changed, or usage of a resource unknown.
fn needs_recount(quota: &Value, hard: &ResourceList) -> bool {
    let status_hard = quota::resource_list(quota.pointer("/status/hard"));
    let used = quota
        .pointer("/status/used")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    !quota::equal(hard, &status_hard) || hard.keys().any(|name| !used.contains_key(name))
}

/// How long until a pod being deleted is past its grace period (and a moment more).
fn grace_left(pod: &Value) -> Option<Duration> {
    let deleted = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)?;
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)?;
    let deleted: gantry_client::k8s_openapi::jiff::Timestamp = deleted.parse().ok()?;
    let over = SystemTime::from(deleted) + Duration::from_secs(grace.max(0).unsigned_abs());
    over.duration_since(SystemTime::now())
        .ok()
        .map(|left| left + Duration::from_secs(1))
}

/// The API resource serving `group`/`plural`: the built-in kinds from the registry, others (custom
/// resources) from discovery, in their group's preferred version.
async fn api_resource(client: &Client, group: &str, plural: &str) -> Option<ApiResource> {
    let builtin = gantry_api::registry::RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural);
    let (version, kind) = match builtin {
        Some(r) => (r.version.to_owned(), r.kind.to_owned()),
        None if group.is_empty() => return None,
        None => {
            let groups = client.list_api_groups().await.ok()?;
            let served = groups.groups.into_iter().find(|g| g.name == group)?;
            (served.preferred_version?.version, String::new())
        }
    };
    Some(ApiResource {
        group: group.to_owned(),
        api_version: if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        },
        version,
        kind,
        plural: plural.to_owned(),
    })
}

/// Recounts one quota and writes its status if it changed.
async fn sync(client: &Client, namespace: &str, name: &str) -> Result<(), String> {
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), namespace);
    let current = match quotas.get(name).await {
        Ok(quota) => quota,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(api_message(&e)),
    };
    let value = serde_json::to_value(&current).map_err(|e| e.to_string())?;
    // Never counted: nothing was charged to it yet, nothing to wait for.
    if value.pointer("/status/used").is_some() {
        tokio::time::sleep(SETTLE).await;
    }
    let hard = quota::resource_list(value.pointer("/spec/hard"));
    let scopes = quota::scopes(&value);
    let mut counted = ResourceList::new();
    for (group, plural) in quota::counted_kinds(hard.keys()) {
        // Kinds nobody serves count nothing; their usage stays as it was.
        let Some(resource) = api_resource(client, &group, &plural).await else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let listed = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing {plural}: {}", api_message(&e)))?;
        let objects: Vec<Value> = listed
            .items
            .iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect();
        counted.extend(quota::usage_of_kind(
            &hard,
            &scopes,
            &group,
            &plural,
            &objects,
            SystemTime::now(),
        ));
    }
    let status = quota::status(&value, &counted);
    let same = |field: &str| {
        quota::equal(
            &quota::resource_list(status.get(field)),
            &quota::resource_list(value.pointer(&format!("/status/{field}"))),
        ) && value
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_object)
            .is_some_and(|m| m.len() == status[field].as_object().map_or(0, |s| s.len()))
    };
    if same("hard") && same("used") {
        return Ok(());
    }
    let mut updated = current;
    updated.status =
        Some(serde_json::from_value::<ResourceQuotaStatus>(status).map_err(|e| e.to_string())?);
    match quotas
        .replace_status(name, &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        // Charged or changed meanwhile: counted again after a moment.
        Err(e) if is_conflict(&e) => Err("the quota changed meanwhile".to_owned()),
        Err(e) => Err(api_message(&e)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_quota_is_recounted_when_its_status_lags_its_spec() {
        let quota =
            |status: Value| json!({"spec": {"hard": {"pods": "5", "cpu": "2"}}, "status": status});
        let hard = quota::resource_list(Some(&json!({"pods": "5", "cpu": "2"})));
        assert!(needs_recount(&quota(json!({})), &hard));
        assert!(needs_recount(
            &quota(json!({"hard": {"pods": "5", "cpu": "2"}, "used": {"pods": "1"}})),
            &hard
        ));
        assert!(needs_recount(
            &quota(json!({"hard": {"pods": "4", "cpu": "2"}, "used": {"pods": "1", "cpu": "0"}})),
            &hard
        ));
        assert!(!needs_recount(
            &quota(
                json!({"hard": {"pods": "5", "cpu": "2000m"}, "used": {"pods": "1", "cpu": "0"}})
            ),
            &hard
        ));
    }

    #[test]
    fn grace_left_counts_down_to_the_end_of_the_grace_period() {
        let past = json!({"metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30}});
        assert_eq!(grace_left(&past), None);
        assert_eq!(grace_left(&json!({"metadata": {}})), None);
    }
}

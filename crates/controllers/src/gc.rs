//! The garbage collector: deletes the dependents of deleted owners (objects whose `ownerReferences` name
//! only owners that no longer exist), as upstream's garbage collector does for background propagation, and
//! serves the `orphan` and `foregroundDeletion` finalizers of owners being deleted.
//!
//! One task owns a graph of the objects of the kinds in [`KINDS`] (their uids, owners and finalizers; not
//! the objects), fed by one kube-rs watcher per kind. When an owner disappears, each of its dependents is
//! looked at: owners the graph lacks are read from the API (an owner of a kind not watched, or one the
//! watch has not shown yet), and a dependent whose owners are all gone is deleted (propagation Background,
//! with its uid as precondition); one with some owners left loses the references to the others.
//!
//! Orphan and foreground propagation need the API server to put the `orphan` or `foregroundDeletion`
//! finalizer on an owner deleted with `propagationPolicy=Orphan` or `Foreground`; an owner that carries one
//! (however it got it) is served: for `orphan`, the dependents lose their reference to it, then the
//! finalizer goes; for `foregroundDeletion`, the dependents are deleted (in the foreground), and the
//! finalizer goes once those that block their owner's deletion are gone.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use gantry_client::kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use gantry_client::kube::discovery::Scope;
use gantry_client::kube::runtime::{WatchStreamExt, watcher};
use gantry_client::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::api::{is_conflict, is_not_found};
use crate::queue::{Backoff, WorkQueue};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";
/// Writes (and owner reads) in flight at once.
const IN_FLIGHT: usize = 32;
/// How often a dependent whose owner is of a kind not watched is looked at again.
const UNWATCHED_RECHECK: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A kind whose objects the collector watches (as owners and as dependents).
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
        namespaced: true,
    }
}

/// The kinds watched: the workloads and what they own (claims: of ephemeral volumes, of StatefulSets whose
/// retention policy deletes them).
pub const KINDS: &[Kind] = &[
    kind("", "v1", "Pod", "pods"),
    kind("apps", "v1", "ReplicaSet", "replicasets"),
    kind("apps", "v1", "Deployment", "deployments"),
    kind("apps", "v1", "StatefulSet", "statefulsets"),
    kind("apps", "v1", "DaemonSet", "daemonsets"),
    kind("apps", "v1", "ControllerRevision", "controllerrevisions"),
    kind("batch", "v1", "Job", "jobs"),
    kind("batch", "v1", "CronJob", "cronjobs"),
    kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
];

impl Kind {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.into(),
            version: self.version.into(),
            api_version: self.api_version(),
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }

    /// The watched kind an ownerReference's apiVersion and kind name (any version of the group).
    fn of(api_version: &str, kind: &str) -> Option<&'static Kind> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        KINDS.iter().find(|k| k.kind == kind && k.group == group)
    }
}

/// What the graph keeps of an object.
#[derive(Debug, Clone)]
struct Node {
    kind: usize,
    namespace: Option<String>,
    name: String,
    resource_version: Option<String>,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

impl Node {
    fn has_finalizer(&self, name: &str) -> bool {
        self.finalizers.iter().any(|f| f == name)
    }

    fn api(&self, client: &Client) -> Api<DynamicObject> {
        let resource = KINDS[self.kind].resource();
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        }
    }
}

/// Work on one object (by uid).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Item {
    /// Its owners may be gone (or deleting in the foreground).
    Dependent(String),
    /// It is being deleted with the orphan or foregroundDeletion finalizer.
    Owner(String),
}

#[derive(Debug)]
struct Done {
    item: Item,
    ok: bool,
    recheck: bool,
}

/// Runs the collector until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let streams = KINDS.iter().enumerate().map(|(i, k)| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &k.resource());
        watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .map(move |event| (i, event))
            .boxed()
    });
    let mut events = futures::stream::select_all(streams);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut collector = Collector::new(client, done_tx);
    loop {
        let can_work = collector.can_work();
        let wakeup = collector
            .queue
            .next_wakeup()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => collector.done(done),
            Some((kind, event)) = events.next() => match event {
                Ok(event) => collector.event(kind, event),
                Err(e) => tracing::warn!("garbage collector: watching {}: {e}", KINDS[kind].plural),
            },
            () = tokio::time::sleep_until(wakeup) => collector.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_work => collector.work_next(),
        }
    }
}

struct Collector {
    client: Client,
    nodes: HashMap<String, Node>,
    /// Owner uid → the uids of the objects naming it.
    dependents: HashMap<String, HashSet<String>>,
    queue: WorkQueue<Item>,
    listed: Vec<Option<HashSet<String>>>,
    synced: Vec<bool>,
    all_synced: bool,
    backoff: Backoff<Item>,
    done_tx: mpsc::UnboundedSender<Done>,
    permits: std::sync::Arc<Semaphore>,
}

impl Collector {
    fn new(client: Client, done_tx: mpsc::UnboundedSender<Done>) -> Collector {
        Collector {
            client,
            nodes: HashMap::new(),
            dependents: HashMap::new(),
            queue: WorkQueue::default(),
            listed: vec![None; KINDS.len()],
            synced: vec![false; KINDS.len()],
            all_synced: false,
            backoff: Backoff::new(Duration::from_millis(50), MAX_BACKOFF),
            done_tx,
            permits: std::sync::Arc::new(Semaphore::new(IN_FLIGHT)),
        }
    }

    fn can_work(&self) -> bool {
        self.all_synced && !self.queue.is_empty() && self.queue.active() < IN_FLIGHT
    }

    fn event(&mut self, kind: usize, event: watcher::Event<DynamicObject>) {
        match event {
            watcher::Event::Init => self.listed[kind] = Some(HashSet::new()),
            watcher::Event::InitApply(object) => {
                if let (Some(listed), Some(uid)) = (&mut self.listed[kind], &object.metadata.uid) {
                    listed.insert(uid.clone());
                }
                self.seen(kind, object);
            }
            watcher::Event::Apply(object) => self.seen(kind, object),
            watcher::Event::Delete(object) => {
                if let Some(uid) = &object.metadata.uid {
                    self.gone(uid);
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.listed[kind].take() {
                    let gone: Vec<String> = self
                        .nodes
                        .iter()
                        .filter(|(uid, n)| n.kind == kind && !listed.contains(*uid))
                        .map(|(uid, _)| uid.clone())
                        .collect();
                    for uid in gone {
                        self.gone(&uid);
                    }
                }
                self.synced[kind] = true;
                if !self.all_synced && self.synced.iter().all(|s| *s) {
                    self.all_synced = true;
                    // Everything is looked at once: what was deleted while no collector ran.
                    let items: Vec<Item> = self
                        .nodes
                        .iter()
                        .flat_map(|(uid, n)| {
                            let dependent =
                                (!n.owners.is_empty()).then(|| Item::Dependent(uid.clone()));
                            let owner = (n.deleting
                                && (n.has_finalizer(ORPHAN) || n.has_finalizer(FOREGROUND)))
                            .then(|| Item::Owner(uid.clone()));
                            dependent.into_iter().chain(owner)
                        })
                        .collect();
                    for item in items {
                        self.queue.add(item);
                    }
                }
            }
        }
    }

    fn seen(&mut self, kind: usize, object: DynamicObject) {
        let meta = object.metadata;
        let Some(uid) = meta.uid else { return };
        let node = Node {
            kind,
            namespace: meta.namespace,
            name: meta.name.unwrap_or_default(),
            resource_version: meta.resource_version,
            owners: meta.owner_references.unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.unwrap_or_default(),
        };
        let new_owners: HashSet<String> = node.owners.iter().map(|r| r.uid.clone()).collect();
        let has_owners = !node.owners.is_empty();
        let owner_work =
            node.deleting && (node.has_finalizer(ORPHAN) || node.has_finalizer(FOREGROUND));
        if let Some(old) = self.nodes.insert(uid.clone(), node) {
            for owner in old.owners.iter().filter(|r| !new_owners.contains(&r.uid)) {
                self.unlink(&owner.uid, &uid);
            }
        }
        for owner in new_owners {
            self.dependents
                .entry(owner)
                .or_default()
                .insert(uid.clone());
        }
        if self.all_synced {
            if has_owners {
                self.queue.add(Item::Dependent(uid.clone()));
            }
            if owner_work {
                self.queue.add(Item::Owner(uid));
            }
        }
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
        // An owner deleting in the foreground may be waiting for this one.
        if self.all_synced
            && self
                .nodes
                .get(owner)
                .is_some_and(|o| o.deleting && o.has_finalizer(FOREGROUND))
        {
            self.queue.add(Item::Owner(owner.to_owned()));
        }
    }

    fn gone(&mut self, uid: &str) {
        let Some(node) = self.nodes.remove(uid) else {
            return;
        };
        for owner in &node.owners {
            self.unlink(&owner.uid, uid);
        }
        if self.all_synced {
            let dependents: Vec<String> = self
                .dependents
                .get(uid)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            for dependent in dependents {
                self.queue.add(Item::Dependent(dependent));
            }
        }
    }

    fn work_next(&mut self) {
        let Some(item) = self.queue.pop() else { return };
        let work = match &item {
            Item::Dependent(uid) => self.dependent_work(uid),
            Item::Owner(uid) => self.owner_work(uid),
        };
        let Some(work) = work else {
            self.queue.done(&item);
            return;
        };
        let (client, done, permits) = (
            self.client.clone(),
            self.done_tx.clone(),
            self.permits.clone(),
        );
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let (ok, recheck) = work.run(&client).await;
            let _ = done.send(Done { item, ok, recheck });
        });
    }

    /// What to do about a dependent: nothing while all its owners are known and none waits for it.
    fn dependent_work(&self, uid: &str) -> Option<Work> {
        let node = self.nodes.get(uid)?;
        if node.deleting {
            return None;
        }
        let mut unknown = Vec::new();
        let mut waiting = false;
        let mut solid = false;
        for owner in &node.owners {
            match self.nodes.get(&owner.uid) {
                None => unknown.push(owner.clone()),
                Some(o) if o.deleting && o.has_finalizer(FOREGROUND) => waiting = true,
                Some(_) => solid = true,
            }
        }
        if unknown.is_empty() && (!waiting || solid) {
            return None;
        }
        Some(Work::Dependent {
            uid: uid.to_owned(),
            node: node.clone(),
            unknown,
            solid,
            waiting,
        })
    }

    /// What to do for an owner being deleted with the orphan or foregroundDeletion finalizer.
    fn owner_work(&mut self, uid: &str) -> Option<Work> {
        let node = self.nodes.get(uid)?;
        if !node.deleting {
            return None;
        }
        let dependents: Vec<(String, Node)> = self
            .dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d).map(|n| (d.clone(), n.clone())))
            .collect();
        if node.has_finalizer(ORPHAN) {
            return Some(Work::Orphan {
                uid: uid.to_owned(),
                owner: node.clone(),
                dependents,
            });
        }
        if !node.has_finalizer(FOREGROUND) {
            return None;
        }
        let blocking = dependents.iter().any(|(_, d)| {
            d.owners
                .iter()
                .any(|r| r.uid == uid && r.block_owner_deletion == Some(true))
        });
        if blocking {
            // The dependents are deleted (each as a dependent whose owner waits for it); the owner is looked
            // at again as they go.
            let to_delete: Vec<Item> = dependents
                .iter()
                .filter(|(_, d)| !d.deleting)
                .map(|(d, _)| Item::Dependent(d.clone()))
                .collect();
            for item in to_delete {
                self.queue.add(item);
            }
            return None;
        }
        for (d, _) in &dependents {
            self.queue.add(Item::Dependent(d.clone()));
        }
        Some(Work::RemoveFinalizer {
            owner: node.clone(),
            finalizer: FOREGROUND,
        })
    }

    fn done(&mut self, done: Done) {
        self.queue.done(&done.item);
        let now = Instant::now();
        if done.ok {
            self.backoff.reset(&done.item);
        } else {
            let delay = self.backoff.failed(&done.item);
            self.queue.add_after(done.item.clone(), delay, now);
        }
        if done.recheck {
            self.queue.add_after(done.item, UNWATCHED_RECHECK, now);
        }
    }
}

/// The writes (and reads) of one item, done by a task of its own.
#[derive(Debug)]
enum Work {
    Dependent {
        uid: String,
        node: Node,
        unknown: Vec<OwnerReference>,
        solid: bool,
        waiting: bool,
    },
    Orphan {
        uid: String,
        owner: Node,
        dependents: Vec<(String, Node)>,
    },
    RemoveFinalizer {
        owner: Node,
        finalizer: &'static str,
    },
}

/// Whether an owner exists: `Some(true)` present (with that uid), `Some(false)` gone, `None` unknown (the
/// read failed); and whether its kind is one the collector does not watch.
async fn owner_exists(
    client: &Client,
    namespace: Option<&str>,
    owner: &OwnerReference,
) -> (Option<bool>, bool) {
    let (resource, namespaced, watched) = match Kind::of(&owner.api_version, &owner.kind) {
        Some(k) => (k.resource(), k.namespaced, true),
        None => {
            let (group, version) = owner
                .api_version
                .rsplit_once('/')
                .unwrap_or(("", &owner.api_version));
            let gvk = GroupVersionKind::gvk(group, version, &owner.kind);
            match gantry_client::kube::discovery::pinned_kind(client, &gvk).await {
                Ok((resource, capabilities)) => {
                    (resource, capabilities.scope == Scope::Namespaced, false)
                }
                Err(e) => {
                    tracing::debug!(
                        "garbage collector: no resource for {} {}: {e}",
                        owner.api_version,
                        owner.kind
                    );
                    return (None, false);
                }
            }
        }
    };
    let api: Api<DynamicObject> = match (namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        // A cluster-scoped object cannot be owned by a namespaced one.
        (true, None) => return (Some(false), !watched),
        (false, _) => Api::all_with(client.clone(), &resource),
    };
    match api.get_opt(&owner.name).await {
        Ok(Some(o)) => (
            Some(o.metadata.uid.as_deref() == Some(owner.uid.as_str())),
            !watched,
        ),
        Ok(None) => (Some(false), !watched),
        Err(e) => {
            tracing::debug!(
                "garbage collector: reading owner {} {}: {e}",
                owner.kind,
                owner.name
            );
            (None, !watched)
        }
    }
}

fn ok_or_gone<T>(result: Result<T, gantry_client::kube::Error>, what: &str) -> bool {
    match result {
        Ok(_) => true,
        Err(e) if is_not_found(&e) => true,
        Err(e) => {
            tracing::debug!("garbage collector: {what}: {e}");
            false
        }
    }
}

/// Sets an object's ownerReferences (none: removed), on the version the graph saw.
async fn set_owners(client: &Client, node: &Node, owners: Vec<OwnerReference>) -> bool {
    let patch = json!({"metadata": {
        "ownerReferences": if owners.is_empty() { Value::Null } else { json!(owners) },
        "resourceVersion": node.resource_version,
    }});
    let result = node
        .api(client)
        .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    ok_or_gone(result, &format!("updating the owners of {}", node.name))
}

impl Work {
    /// Whether it went through, and whether the dependent should be looked at again later.
    async fn run(self, client: &Client) -> (bool, bool) {
        match self {
            Work::Dependent {
                uid,
                node,
                unknown,
                solid,
                waiting,
            } => {
                let mut dangling = HashSet::new();
                let mut solid = solid;
                let mut recheck = false;
                for owner in &unknown {
                    let (exists, unwatched) =
                        owner_exists(client, node.namespace.as_deref(), owner).await;
                    match exists {
                        None => return (false, false),
                        Some(true) => {
                            solid = true;
                            recheck |= unwatched;
                        }
                        Some(false) => {
                            dangling.insert(owner.uid.clone());
                        }
                    }
                }
                if !solid {
                    // Every owner is gone (or deleting and waiting for it): the dependent goes too.
                    let propagation = if waiting || node.has_finalizer(FOREGROUND) {
                        PropagationPolicy::Foreground
                    } else if node.has_finalizer(ORPHAN) {
                        PropagationPolicy::Orphan
                    } else {
                        PropagationPolicy::Background
                    };
                    let params = DeleteParams {
                        propagation_policy: Some(propagation),
                        preconditions: Some(Preconditions {
                            uid: Some(uid),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    };
                    let result = node.api(client).delete(&node.name, &params).await;
                    let ok = match result {
                        // Another object by that name now.
                        Err(e) if is_conflict(&e) => true,
                        other => ok_or_gone(other, &format!("deleting {}", node.name)),
                    };
                    if ok {
                        tracing::debug!(name = %node.name, kind = KINDS[node.kind].kind, "garbage collector deleted a dependent");
                    }
                    return (ok, false);
                }
                if dangling.is_empty() {
                    return (true, recheck);
                }
                let owners = node
                    .owners
                    .iter()
                    .filter(|r| !dangling.contains(&r.uid))
                    .cloned()
                    .collect();
                (set_owners(client, &node, owners).await, recheck)
            }
            Work::Orphan {
                uid,
                owner,
                dependents,
            } => {
                let mut ok = true;
                for (_, dependent) in &dependents {
                    let owners = dependent
                        .owners
                        .iter()
                        .filter(|r| r.uid != uid)
                        .cloned()
                        .collect();
                    ok &= set_owners(client, dependent, owners).await;
                }
                if !ok {
                    return (false, false);
                }
                (remove_finalizer(client, &owner, ORPHAN).await, false)
            }
            Work::RemoveFinalizer { owner, finalizer } => {
                (remove_finalizer(client, &owner, finalizer).await, false)
            }
        }
    }
}

async fn remove_finalizer(client: &Client, owner: &Node, finalizer: &str) -> bool {
    let rest: Vec<&String> = owner
        .finalizers
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    let patch = json!({"metadata": {
        "finalizers": if rest.is_empty() { Value::Null } else { json!(rest) },
        "resourceVersion": owner.resource_version,
    }});
    let result = owner
        .api(client)
        .patch(&owner.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    ok_or_gone(
        result,
        &format!("removing the {finalizer} finalizer of {}", owner.name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_kinds_are_found_by_group_and_kind() {
        assert_eq!(
            Kind::of("apps/v1", "ReplicaSet").map(|k| k.plural),
            Some("replicasets")
        );
        assert_eq!(
            Kind::of("apps/v1beta2", "ReplicaSet").map(|k| k.plural),
            Some("replicasets")
        );
        assert_eq!(Kind::of("v1", "Pod").map(|k| k.plural), Some("pods"));
        assert!(Kind::of("extensions/v1beta1", "ReplicaSet").is_none());
        assert!(Kind::of("example.com/v1", "Widget").is_none());
        assert_eq!(KINDS[0].api_version(), "v1");
        assert_eq!(KINDS[1].resource().api_version, "apps/v1");
    }
}

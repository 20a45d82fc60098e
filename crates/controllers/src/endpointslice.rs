//! The EndpointSlice controller, with upstream's (1.33) semantics: for each Service with a selector (and
//! not of type ExternalName), `discovery.k8s.io/v1` EndpointSlices named `<service>-<random>` list the pods
//! the selector matches that have an IP and are not finished, terminating ones included: per endpoint the
//! pod's address of the slice's family, `ready` / `serving` / `terminating` conditions (serving: the pod is
//! Ready; ready: serving and not terminating; both true with `publishNotReadyAddresses`), nodeName, zone
//! (the node's `topology.kubernetes.io/zone`), hostname and targetRef. Pods whose ports resolve the same
//! way share slices with those ports; at most [`MAX_ENDPOINTS_PER_SLICE`] endpoints a slice. Slices carry
//! the Service's labels, `kubernetes.io/service-name`, `endpointslice.kubernetes.io/managed-by:
//! endpointslice-controller.k8s.io` (only slices with it are touched: the API server's own `kubernetes`
//! slice is not), `service.kubernetes.io/headless` for headless Services, a controller ownerReference to
//! the Service and `endpoints.kubernetes.io/last-change-trigger-time`. A Service with no endpoints keeps
//! one empty placeholder slice, as upstream.
//!
//! Reconciling (upstream's reconciler, in its order) minimises churn: existing slices keep the endpoints
//! still wanted (updated in place when one changed), slices left empty are deleted, new endpoints first
//! fill the slices being updated anyway (fullest first), then the one unchanged slice they fit in best,
//! and only then new slices; a slice to delete is reused (updated) in place of one to create. A sync
//! that changes nothing writes nothing. Managed slices of a Service that is gone, lost its selector or
//! became ExternalName are deleted (upstream leaves the first to the garbage collector).
//!
//! The task and its state are as the Endpoints controller's ([`crate::endpoints`], which holds the parts
//! both use): pods indexed so that a pod change queues only the Services that select it, and the
//! [`Tracker`] of the slices written, so that a Service whose writes the watch has not shown yet waits
//! for them rather than creating duplicates. After a restart, the existing slices are found again by
//! their labels and reused.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use gantry_client::events::{Event, Involved, Recorder};
use gantry_client::k8s_openapi::api::core::v1::{Node, Pod, Service};
use gantry_client::k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use gantry_client::k8s_openapi::jiff::Timestamp;
use gantry_client::kube::api::{DeleteParams, PostParams, Preconditions};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::{
    api_code, api_message, is_conflict, is_not_found, key, name_of, namespace_of, revision,
    split_key,
};
use crate::cache::{Relist, watch, watch_all};
use crate::endpoint_pods::{
    Membership, PodInfo, Tracker, TriggerTimes, has_cluster_ip, ip_families, managed_selector,
    of_family, rfc3339_nano, set_annotation,
};
use crate::endpoints::{HEADLESS, SYNCS_IN_FLIGHT, TRIGGER_TIME};
use crate::queue::{Backoff, WorkQueue};

/// The events' source (upstream's `endpointslice-controller`).
pub const COMPONENT: &str = "endpointslice-controller";
/// The value of the managed-by label of the slices this controller manages.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The node label whose value is an endpoint's zone.
pub const ZONE: &str = "topology.kubernetes.io/zone";
/// The most endpoints one slice holds (upstream's `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// How long the controller waits for its own writes to show before syncing a Service again regardless.
const WAIT_FOR_WATCH: Duration = Duration::from_secs(10);

/// A slice's ports, sorted, as the key of the endpoints that share them.
type PortsKey = Vec<(String, i32, String, Option<String>)>;

fn ports_key(ports: &[EndpointPort]) -> PortsKey {
    let mut key: PortsKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone().filter(|a| !a.is_empty()),
            )
        })
        .collect();
    key.sort();
    key
}

/// The ports of the Service on the pod (upstream's `getEndpointPorts`): each Service port the pod resolves;
/// none for a headless Service without ports.
fn endpoint_ports(service: &Service, pod: &PodInfo) -> Vec<EndpointPort> {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let port = pod.find_port(sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// The pod as an endpoint of the Service in a slice of `family` (upstream's `podToEndpoint`); `None` when
/// it has no IP of that family.
fn pod_endpoint(
    service: &Service,
    pod: &PodInfo,
    zone: Option<&String>,
    family: &str,
) -> Option<Endpoint> {
    let ip = pod.ips.iter().find(|ip| of_family(ip, family))?;
    let publish = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = publish || pod.ready;
    let terminating = pod.terminating;
    // Never ready while terminating, unless the Service publishes not-ready addresses.
    let ready = publish || (serving && !terminating);
    Some(Endpoint {
        addresses: vec![ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: pod.hostname_for(service),
        node_name: (!pod.node.is_empty()).then(|| pod.node.clone()),
        target_ref: Some(pod.target_ref()),
        zone: zone.filter(|z| !z.is_empty()).cloned(),
        ..Endpoint::default()
    })
}

/// What identifies an endpoint across syncs: its address and pod.
fn endpoint_key(endpoint: &Endpoint) -> (String, String) {
    let pod = endpoint
        .target_ref
        .as_ref()
        .map(|r| r.uid.clone().or_else(|| r.name.clone()).unwrap_or_default())
        .unwrap_or_default();
    (endpoint.addresses.first().cloned().unwrap_or_default(), pod)
}

/// An endpoint as the API may hold it, in the form [`pod_endpoint`] makes (the target's resourceVersion
/// ignored, as upstream does), to compare them.
fn canonical_endpoint(endpoint: &Endpoint) -> Endpoint {
    let mut endpoint = endpoint.clone();
    if let Some(target) = &mut endpoint.target_ref {
        target.resource_version = None;
        target.api_version = None;
        target.field_path = None;
    }
    for field in [
        &mut endpoint.hostname,
        &mut endpoint.node_name,
        &mut endpoint.zone,
    ] {
        if field.as_deref() == Some("") {
            *field = None;
        }
    }
    endpoint
}

/// The labels of the Service's slices (upstream's `setEndpointSliceLabels`): the Service's, less the
/// reserved ones, then the headless, service-name and managed-by labels.
fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    for reserved in [SERVICE_NAME, MANAGED_BY, HEADLESS] {
        labels.remove(reserved);
    }
    if !has_cluster_ip(service) {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels.insert(SERVICE_NAME.into(), name_of(&service.metadata).to_owned());
    labels.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

fn owner_ref(service: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: name_of(&service.metadata).to_owned(),
        uid: service.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    let uid = service.metadata.uid.as_deref().unwrap_or_default();
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid && r.kind == "Service" && r.api_version == "v1")
}

fn new_slice(
    service: &Service,
    ports: Vec<EndpointPort>,
    family: &str,
    labels: &BTreeMap<String, String>,
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", name_of(&service.metadata))),
            namespace: service.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner_ref(service)]),
            ..ObjectMeta::default()
        },
        address_type: family.to_owned(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

/// What a sync writes.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<Arc<EndpointSlice>>,
}

impl Changes {
    pub(crate) fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }

    fn extend(&mut self, other: Changes) {
        self.create.extend(other.create);
        self.update.extend(other.update);
        self.delete.extend(other.delete);
    }
}

/// The slices of one address type and set of ports (upstream's `reconcileByPortMapping`): `existing` ones
/// keep the `desired` endpoints they hold, then the others fill slices being updated, then the unchanged
/// slice they fit in best, then new slices.
fn reconcile_ports(
    service: &Service,
    family: &str,
    ports: &[EndpointPort],
    existing: Vec<Arc<EndpointSlice>>,
    mut desired: BTreeMap<(String, String), Endpoint>,
    labels: &BTreeMap<String, String>,
    max: usize,
) -> Changes {
    let mut changes = Changes::default();
    let mut updated: Vec<EndpointSlice> = Vec::new();
    let mut unchanged: Vec<Arc<EndpointSlice>> = Vec::new();
    // 1. What existing slices keep, and which of them change.
    for slice in existing {
        let mut kept = Vec::with_capacity(slice.endpoints.len());
        let mut changed = false;
        for endpoint in &slice.endpoints {
            if let Some(wanted) = desired.remove(&endpoint_key(endpoint)) {
                changed |= canonical_endpoint(endpoint) != wanted;
                kept.push(wanted);
            }
        }
        let labels_changed = slice.metadata.labels.as_ref() != Some(labels);
        if changed || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                changes.delete.push(slice);
            } else {
                let mut copy = (*slice).clone();
                copy.endpoints = kept;
                copy.metadata.labels = Some(labels.clone());
                updated.push(copy);
            }
        } else if labels_changed {
            let mut copy = (*slice).clone();
            copy.metadata.labels = Some(labels.clone());
            updated.push(copy);
        } else {
            unchanged.push(slice);
        }
    }
    // 2. The rest fill the slices being written anyway, fullest first.
    updated.sort_by_key(|s| Reverse(s.endpoints.len()));
    for slice in &mut updated {
        while slice.endpoints.len() < max {
            let Some((_, endpoint)) = desired.pop_first() else {
                break;
            };
            slice.endpoints.push(endpoint);
        }
    }
    // 3. Then the unchanged slice they all fit in best, then new slices.
    while !desired.is_empty() {
        let mut fill = None;
        if desired.len() < max {
            fill = unchanged
                .iter()
                .enumerate()
                .filter(|(_, s)| s.endpoints.len() + desired.len() <= max)
                .max_by_key(|(_, s)| s.endpoints.len())
                .map(|(i, _)| i);
        }
        let (mut slice, is_new) = match fill {
            Some(i) => ((*unchanged.remove(i)).clone(), false),
            None => (new_slice(service, ports.to_vec(), family, labels), true),
        };
        while slice.endpoints.len() < max {
            let Some((_, endpoint)) = desired.pop_first() else {
                break;
            };
            slice.endpoints.push(endpoint);
        }
        if is_new {
            changes.create.push(slice);
        } else {
            updated.push(slice);
        }
    }
    changes.update.extend(updated);
    changes
}

fn is_placeholder(slice: &EndpointSlice, family: &str, labels: &BTreeMap<String, String>) -> bool {
    slice.endpoints.is_empty()
        && slice.ports.as_ref().is_none_or(Vec::is_empty)
        && slice.address_type == family
        && slice.metadata.labels.as_ref() == Some(labels)
}

/// What the Service's slices need (upstream's reconciler): `existing` are the managed slices labelled
/// with its name; `zones` the nodes' zones.
pub(crate) fn reconcile(
    service: &Service,
    pods: &[Arc<PodInfo>],
    zones: &HashMap<String, String>,
    existing: &[Arc<EndpointSlice>],
    max: usize,
) -> Changes {
    let families: Vec<&str> = ip_families(service)
        .into_iter()
        .filter(|f| matches!(*f, "IPv4" | "IPv6"))
        .collect();
    let labels = slice_labels(service);
    let mut changes = Changes::default();
    type Group = (Vec<EndpointPort>, BTreeMap<(String, String), Endpoint>);
    let mut desired: BTreeMap<(String, PortsKey), Group> = BTreeMap::new();
    for family in &families {
        for pod in pods.iter().filter(|p| p.in_endpoints(true)) {
            let ports = endpoint_ports(service, pod);
            let group = desired
                .entry((family.to_string(), ports_key(&ports)))
                .or_insert_with(|| (ports, BTreeMap::new()));
            if let Some(endpoint) = pod_endpoint(service, pod, zones.get(&pod.node), family) {
                group.1.insert(endpoint_key(&endpoint), endpoint);
            }
        }
    }
    let mut existing_groups: BTreeMap<(String, PortsKey), Vec<Arc<EndpointSlice>>> =
        BTreeMap::new();
    let mut sorted: Vec<&Arc<EndpointSlice>> = existing.iter().collect();
    sorted.sort_by(|a, b| name_of(&a.metadata).cmp(name_of(&b.metadata)));
    for slice in sorted {
        if owned_by(slice, service) && families.contains(&slice.address_type.as_str()) {
            let ports = ports_key(slice.ports.as_deref().unwrap_or_default());
            existing_groups
                .entry((slice.address_type.clone(), ports))
                .or_default()
                .push(slice.clone());
        } else {
            changes.delete.push(slice.clone());
        }
    }
    for family in &families {
        let of_family = existing
            .iter()
            .filter(|s| owned_by(s, service) && s.address_type == *family)
            .count();
        let mut here = Changes::default();
        let keys: Vec<(String, PortsKey)> = desired
            .keys()
            .filter(|(f, _)| f == family)
            .cloned()
            .collect();
        for k in keys {
            let Some((ports, endpoints)) = desired.remove(&k) else {
                continue;
            };
            let old = existing_groups.remove(&k).unwrap_or_default();
            here.extend(reconcile_ports(
                service, family, &ports, old, endpoints, &labels, max,
            ));
        }
        let stale: Vec<(String, PortsKey)> = existing_groups
            .keys()
            .filter(|(f, _)| f == family)
            .cloned()
            .collect();
        for k in stale {
            here.delete
                .extend(existing_groups.remove(&k).unwrap_or_default());
        }
        // A Service without endpoints keeps one empty placeholder slice.
        if of_family == here.delete.len() && here.create.is_empty() {
            if here.delete.len() == 1 && is_placeholder(&here.delete[0], family, &labels) {
                here.delete.clear();
            } else {
                here.create
                    .push(new_slice(service, Vec::new(), family, &labels));
            }
        }
        // Slices to delete are reused for slices to create.
        while !here.create.is_empty() {
            let Some(old) = here.delete.pop() else { break };
            let mut slice = here.create.remove(0);
            slice.metadata.name = old.metadata.name.clone();
            slice.metadata.generate_name = old.metadata.generate_name.clone();
            slice.metadata.resource_version = old.metadata.resource_version.clone();
            slice.metadata.uid = old.metadata.uid.clone();
            slice.metadata.annotations = old.metadata.annotations.clone();
            here.update.push(slice);
        }
        changes.extend(here);
    }
    changes
}

// ---------------------------------------------------------------------------------------------------------
// The controller.
// ---------------------------------------------------------------------------------------------------------

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut service_events = watch_all::<Service>(&client);
    let mut pod_events = watch_all::<Pod>(&client);
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY}={CONTROLLER_NAME}"));
    let mut slice_events = watch(Api::<EndpointSlice>::all(client.clone()), managed);
    let mut node_events = watch_all::<Node>(&client);
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
            Some(event) = service_events.next() => match event {
                Ok(event) => controller.service_event(event),
                Err(e) => tracing::warn!("endpointslice controller: watching services: {e}"),
            },
            Some(event) = pod_events.next() => match event {
                Ok(event) => controller.pod_event(event),
                Err(e) => tracing::warn!("endpointslice controller: watching pods: {e}"),
            },
            Some(event) = slice_events.next() => match event {
                Ok(event) => controller.slice_event(event),
                Err(e) => tracing::warn!("endpointslice controller: watching endpointslices: {e}"),
            },
            Some(event) = node_events.next() => match event {
                Ok(event) => controller.node_event(event),
                Err(e) => tracing::warn!("endpointslice controller: watching nodes: {e}"),
            },
            () = tokio::time::sleep_until(wakeup) => controller.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_sync => controller.sync_next(Instant::now()),
        }
    }
}

/// What one sync writes, for the Service `key`.
#[derive(Debug)]
struct Work {
    key: String,
    service: Option<Arc<Service>>,
    changes: Changes,
    trigger: Option<Timestamp>,
}

/// What a sync task reports.
#[derive(Debug)]
struct Done {
    key: String,
    /// The slices written (their resourceVersion; `None`: deleted).
    written: Vec<(String, Option<u64>)>,
    retry: bool,
    trigger: Option<Timestamp>,
}

struct Controller {
    client: Client,
    events: Recorder,
    services: HashMap<String, Arc<Service>>,
    membership: Membership,
    /// Managed slices by Service key, then name.
    slices: HashMap<String, BTreeMap<String, Arc<EndpointSlice>>>,
    /// The Service key of each cached slice (by `namespace/name` of the slice).
    slice_service: HashMap<String, String>,
    zones: HashMap<String, String>,
    tracker: Tracker,
    triggers: TriggerTimes,
    backoff: Backoff<String>,
    queue: WorkQueue<String>,
    services_list: Relist,
    pods_list: Relist,
    slices_list: Relist,
    nodes_list: Relist,
    done_tx: mpsc::UnboundedSender<Done>,
}

impl Controller {
    fn new(client: Client, done_tx: mpsc::UnboundedSender<Done>) -> Controller {
        Controller {
            events: Recorder::start(client.clone(), COMPONENT),
            client,
            services: HashMap::new(),
            membership: Membership::default(),
            slices: HashMap::new(),
            slice_service: HashMap::new(),
            zones: HashMap::new(),
            tracker: Tracker::default(),
            triggers: TriggerTimes::default(),
            backoff: Backoff::default(),
            queue: WorkQueue::default(),
            services_list: Relist::default(),
            pods_list: Relist::default(),
            slices_list: Relist::default(),
            nodes_list: Relist::default(),
            done_tx,
        }
    }

    fn can_sync(&self) -> bool {
        self.services_list.synced
            && self.pods_list.synced
            && self.slices_list.synced
            && self.nodes_list.synced
            && !self.queue.is_empty()
            && self.queue.active() < SYNCS_IN_FLIGHT
    }

    fn changed(&mut self, key: String) {
        self.triggers.changed(&key, Timestamp::now());
        self.queue.add(key);
    }

    fn service_event(&mut self, event: watcher::Event<Service>) {
        match event {
            watcher::Event::Init => self.services_list.init(),
            watcher::Event::InitApply(service) => {
                self.services_list.seen(&key(
                    namespace_of(&service.metadata),
                    name_of(&service.metadata),
                ));
                self.service_seen(service);
            }
            watcher::Event::Apply(service) => self.service_seen(service),
            watcher::Event::Delete(service) => {
                let k = key(namespace_of(&service.metadata), name_of(&service.metadata));
                self.service_gone(k);
            }
            watcher::Event::InitDone => {
                for k in self.services_list.done(self.services.keys()) {
                    self.service_gone(k);
                }
            }
        }
    }

    fn service_seen(&mut self, service: Service) {
        let k = key(namespace_of(&service.metadata), name_of(&service.metadata));
        if let Some(old) = self.services.get(&k)
            && old.spec == service.spec
            && old.metadata.labels == service.metadata.labels
            && old.metadata.uid == service.metadata.uid
        {
            return;
        }
        self.membership.set_selector(&k, managed_selector(&service));
        self.services.insert(k.clone(), Arc::new(service));
        self.changed(k);
    }

    fn service_gone(&mut self, k: String) {
        self.services.remove(&k);
        self.membership.remove_selector(&k);
        self.changed(k);
    }

    fn pod_event(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.pods_list.init(),
            watcher::Event::InitApply(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    self.pods_list.seen(uid);
                }
                self.pod_seen(&pod);
            }
            watcher::Event::Apply(pod) => self.pod_seen(&pod),
            watcher::Event::Delete(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    let keys = self.membership.pod_gone(namespace_of(&pod.metadata), uid);
                    keys.into_iter().for_each(|k| self.changed(k));
                }
            }
            watcher::Event::InitDone => {
                let known = self.membership.pod_uids();
                let uids: Vec<String> = known.iter().map(|(_, uid)| uid.clone()).collect();
                let gone: std::collections::HashSet<String> =
                    self.pods_list.done(uids.iter()).into_iter().collect();
                for (ns, uid) in known.into_iter().filter(|(_, uid)| gone.contains(uid)) {
                    let keys = self.membership.pod_gone(&ns, &uid);
                    keys.into_iter().for_each(|k| self.changed(k));
                }
            }
        }
    }

    fn pod_seen(&mut self, pod: &Pod) {
        if let Some(info) = PodInfo::new(pod) {
            let keys = self.membership.pod_seen(info);
            keys.into_iter().for_each(|k| self.changed(k));
        }
    }

    fn node_event(&mut self, event: watcher::Event<Node>) {
        match event {
            watcher::Event::Init => self.nodes_list.init(),
            watcher::Event::InitApply(node) => {
                self.nodes_list.seen(name_of(&node.metadata));
                self.node_seen(&node);
            }
            watcher::Event::Apply(node) => self.node_seen(&node),
            watcher::Event::Delete(node) => self.zone_changed(name_of(&node.metadata), None),
            watcher::Event::InitDone => {
                for name in self.nodes_list.done(self.zones.keys()) {
                    self.zone_changed(&name, None);
                }
            }
        }
    }

    fn node_seen(&mut self, node: &Node) {
        let zone = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE))
            .cloned();
        self.zone_changed(name_of(&node.metadata), zone);
    }

    /// The node's zone is now `zone`: the Services with pods on it are synced again (only once everything
    /// is listed: before, every Service is queued anyway).
    fn zone_changed(&mut self, node: &str, zone: Option<String>) {
        let before = match &zone {
            Some(z) => self.zones.insert(node.to_owned(), z.clone()),
            None => self.zones.remove(node),
        };
        if before == zone || !self.nodes_list.synced || !self.pods_list.synced {
            return;
        }
        let keys: Vec<String> = self
            .membership
            .all_pods()
            .filter(|p| p.node == node)
            .flat_map(|p| self.membership.selecting(p))
            .collect();
        keys.into_iter().for_each(|k| self.changed(k));
    }

    fn slice_event(&mut self, event: watcher::Event<EndpointSlice>) {
        match event {
            watcher::Event::Init => self.slices_list.init(),
            watcher::Event::InitApply(slice) => {
                self.slices_list.seen(&key(
                    namespace_of(&slice.metadata),
                    name_of(&slice.metadata),
                ));
                self.slice_seen(slice);
            }
            watcher::Event::Apply(slice) => self.slice_seen(slice),
            watcher::Event::Delete(slice) => {
                self.slice_gone(&key(
                    namespace_of(&slice.metadata),
                    name_of(&slice.metadata),
                ));
            }
            watcher::Event::InitDone => {
                for k in self.slices_list.done(self.slice_service.keys()) {
                    self.slice_gone(&k);
                }
            }
        }
    }

    fn slice_seen(&mut self, slice: EndpointSlice) {
        let namespace = namespace_of(&slice.metadata).to_owned();
        let name = name_of(&slice.metadata).to_owned();
        let slice_key = key(&namespace, &name);
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME))
            .map(|s| key(&namespace, s));
        if let Some(old) = self.slice_service.get(&slice_key)
            && Some(old) != service.as_ref()
        {
            // Relabelled to another Service (by hand): gone from the first.
            self.slice_gone(&slice_key);
        }
        let Some(k) = service else {
            return;
        };
        let observed = self.tracker.observed(&k, &name, revision(&slice.metadata));
        self.slice_service.insert(slice_key, k.clone());
        self.slices
            .entry(k.clone())
            .or_default()
            .insert(name, Arc::new(slice));
        if observed.caught_up || !observed.ours {
            self.queue.add(k);
        }
    }

    fn slice_gone(&mut self, slice_key: &str) {
        let Some(k) = self.slice_service.remove(slice_key) else {
            return;
        };
        let (_, name) = split_key(slice_key);
        if let Some(slices) = self.slices.get_mut(&k) {
            slices.remove(name);
            if slices.is_empty() {
                self.slices.remove(&k);
            }
        }
        let observed = self.tracker.observed(&k, name, None);
        if observed.caught_up || !observed.ours {
            self.queue.add(k);
        }
    }

    fn sync_next(&mut self, now: Instant) {
        let Some(k) = self.queue.pop() else { return };
        if self.tracker.is_stale(&k, now) {
            // Synced again when the watch shows the last writes (or the tracker gives up on them).
            self.queue.done(&k);
            self.queue.add_after(k, WAIT_FOR_WATCH, now);
            return;
        }
        let Some(work) = self.plan(&k) else {
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

    /// What the Service's slices need, if anything.
    fn plan(&mut self, k: &str) -> Option<Work> {
        let existing: Vec<Arc<EndpointSlice>> = self
            .slices
            .get(k)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        let service = self.services.get(k).cloned();
        let selector = service.as_deref().and_then(managed_selector);
        let changes = match (service.as_deref(), selector) {
            (Some(service), Some(selector)) => {
                let pods = self
                    .membership
                    .selected(namespace_of(&service.metadata), selector);
                reconcile(
                    service,
                    &pods,
                    &self.zones,
                    &existing,
                    MAX_ENDPOINTS_PER_SLICE,
                )
            }
            _ => {
                if service.is_none() && existing.is_empty() {
                    self.tracker.forget(k);
                    self.backoff.reset(k);
                }
                Changes {
                    delete: existing,
                    ..Changes::default()
                }
            }
        };
        if changes.is_empty() {
            self.triggers.take(k);
            return None;
        }
        let trigger = self.triggers.take(k);
        let mut changes = changes;
        for slice in changes.create.iter_mut().chain(changes.update.iter_mut()) {
            set_annotation(
                &mut slice.metadata.annotations,
                TRIGGER_TIME,
                trigger.map(rfc3339_nano),
            );
            slice.metadata.managed_fields = None;
        }
        Some(Work {
            key: k.to_owned(),
            service,
            changes,
            trigger,
        })
    }

    fn done(&mut self, done: Done) {
        let k = done.key;
        let now = Instant::now();
        for (name, written) in &done.written {
            let cached = self
                .slices
                .get(&k)
                .and_then(|s| s.get(name))
                .map(|s| revision(&s.metadata));
            self.tracker.wrote(&k, name, *written, cached, now);
        }
        self.queue.done(&k);
        if done.retry {
            self.triggers.restore(&k, done.trigger);
            let delay = self.backoff.failed(&k);
            self.queue.add_after(k, delay, now);
        } else {
            self.backoff.reset(&k);
        }
    }
}

impl Work {
    /// Creates and updates first, then deletes (so that endpoints never go missing between them).
    async fn run(self, client: Client, events: Recorder) -> Done {
        let (namespace, _) = split_key(&self.key);
        let api: Api<EndpointSlice> = Api::namespaced(client, namespace);
        let mut done = Done {
            key: self.key.clone(),
            written: Vec::new(),
            retry: false,
            trigger: self.trigger,
        };
        let mut failure = None;
        let params = PostParams::default();
        let creates = self.changes.create.iter().map(|s| api.create(&params, s));
        let updates = self
            .changes
            .update
            .iter()
            .map(|s| api.replace(name_of(&s.metadata), &params, s));
        let (created, updated) = futures::join!(join_all(creates), join_all(updates));
        for (result, creating) in created
            .into_iter()
            .map(|r| (r, true))
            .chain(updated.into_iter().map(|r| (r, false)))
        {
            match result {
                Ok(slice) => done.written.push((
                    name_of(&slice.metadata).to_owned(),
                    revision(&slice.metadata),
                )),
                // The namespace is going away.
                Err(e) if creating && matches!(api_code(&e), Some(403 | 404)) => {}
                // The cache was behind: tried again once it is not.
                Err(e) if matches!(api_code(&e), Some(409 | 404)) => done.retry = true,
                Err(e) => {
                    done.retry = true;
                    failure.get_or_insert(api_message(&e));
                }
            }
        }
        let deletes = self.changes.delete.iter().map(|s| {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: s.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let api = &api;
            async move {
                let name = name_of(&s.metadata).to_owned();
                let result = api.delete(&name, &params).await;
                (name, result)
            }
        });
        for (name, result) in join_all(deletes).await {
            match result {
                Ok(_) => done.written.push((name, None)),
                Err(e) if is_not_found(&e) => {}
                Err(e) if is_conflict(&e) => done.retry = true,
                Err(e) => {
                    done.retry = true;
                    failure.get_or_insert(api_message(&e));
                }
            }
        }
        if let (Some(message), Some(service)) = (failure, &self.service) {
            tracing::debug!(service = %self.key, "cannot write endpointslices: {message}");
            events.record(Event {
                object: Involved {
                    api_version: "v1",
                    kind: "Service",
                    namespace: namespace.to_owned(),
                    name: name_of(&service.metadata).to_owned(),
                    uid: service.metadata.uid.clone().unwrap_or_default(),
                },
                warning: true,
                reason: "FailedToUpdateEndpointSlices",
                message: format!(
                    "Error updating Endpoint Slices for Service {}: {message}",
                    self.key
                ),
            });
        }
        done
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::endpoints::tests::{pod, service};
    use serde_json::json;

    fn conditions(e: &Endpoint) -> (bool, bool, bool) {
        let c = e.conditions.as_ref().unwrap();
        (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
    }

    /// The slices after applying `changes` to `existing` (names given to new ones, as the API would).
    fn apply(existing: &[Arc<EndpointSlice>], changes: Changes) -> Vec<Arc<EndpointSlice>> {
        let mut by_name: BTreeMap<String, Arc<EndpointSlice>> = existing
            .iter()
            .map(|s| (name_of(&s.metadata).to_owned(), s.clone()))
            .collect();
        for s in &changes.delete {
            by_name.remove(name_of(&s.metadata));
        }
        for s in changes.update {
            by_name.insert(name_of(&s.metadata).to_owned(), Arc::new(s));
        }
        for (i, mut s) in changes.create.into_iter().enumerate() {
            let name = format!("web-new{}-{i}", by_name.len());
            s.metadata.name = Some(name.clone());
            s.metadata.uid = Some(name.clone());
            by_name.insert(name, Arc::new(s));
        }
        by_name.into_values().collect()
    }

    fn pods(n: usize, ready: bool) -> Vec<Arc<PodInfo>> {
        (0..n)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    &format!("10.1.{}.{}", i / 200, i % 200),
                    8080,
                    ready,
                    json!({}),
                )
            })
            .collect()
    }

    #[test]
    fn endpointslice_conditions_follow_readiness_and_termination() {
        let svc = service(json!({}));
        let zones = HashMap::from([("n1".to_owned(), "zone-a".to_owned())]);
        let going = json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}});
        let pods = vec![
            pod("ready", "10.1.0.1", 8080, true, json!({})),
            pod("unready", "10.1.0.2", 8080, false, json!({})),
            pod("going", "10.1.0.3", 8080, true, going.clone()),
            pod("going-unready", "10.1.0.4", 8080, false, going),
            pod(
                "done",
                "10.1.0.5",
                8080,
                true,
                json!({"status": {"phase": "Failed"}}),
            ),
        ];
        let changes = reconcile(&svc, &pods, &zones, &[], 100);
        assert_eq!(changes.create.len(), 1);
        let slice = &changes.create[0];
        assert_eq!(slice.address_type, "IPv4");
        assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
        let labels = slice.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[SERVICE_NAME], "web");
        assert_eq!(labels[MANAGED_BY], CONTROLLER_NAME);
        let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.uid.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("Service", "svc-uid", Some(true), Some(true))
        );
        let port = &slice.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port),
            (Some("http"), Some(8080))
        );
        let by_ip = |ip: &str| {
            slice
                .endpoints
                .iter()
                .find(|e| e.addresses[0] == ip)
                .unwrap()
        };
        assert_eq!(slice.endpoints.len(), 4, "the finished pod is left out");
        assert_eq!(conditions(by_ip("10.1.0.1")), (true, true, false));
        assert_eq!(conditions(by_ip("10.1.0.2")), (false, false, false));
        assert_eq!(conditions(by_ip("10.1.0.3")), (false, true, true));
        assert_eq!(conditions(by_ip("10.1.0.4")), (false, false, true));
        let e = by_ip("10.1.0.1");
        assert_eq!(e.node_name.as_deref(), Some("n1"));
        assert_eq!(e.zone.as_deref(), Some("zone-a"));
        assert_eq!(
            e.target_ref.as_ref().unwrap().name.as_deref(),
            Some("ready")
        );

        let publish = service(json!({"spec": {"publishNotReadyAddresses": true}}));
        let changes = reconcile(&publish, &pods[1..3], &zones, &[], 100);
        let endpoints = &changes.create[0].endpoints;
        assert!(endpoints.iter().all(|e| conditions(e).0 && conditions(e).1));
    }

    #[test]
    fn endpointslices_hold_at_most_the_maximum_and_pods_resolving_ports_differently_split() {
        let svc = service(json!({}));
        let mut all = pods(250, true);
        all.push(pod("other", "10.9.0.1", 9090, true, json!({})));
        let changes = reconcile(&svc, &all, &HashMap::new(), &[], 100);
        let mut sizes: Vec<(usize, i32)> = changes
            .create
            .iter()
            .map(|s| {
                (
                    s.endpoints.len(),
                    s.ports.as_ref().unwrap()[0].port.unwrap(),
                )
            })
            .collect();
        sizes.sort();
        assert_eq!(sizes, [(1, 9090), (50, 8080), (100, 8080), (100, 8080)]);
        assert!(changes.update.is_empty() && changes.delete.is_empty());
    }

    #[test]
    fn endpointslice_reconciling_changes_little_and_a_sync_that_changes_nothing_writes_nothing() {
        let svc = service(json!({}));
        let zones = HashMap::new();
        let mut current = pods(150, true);
        let slices = apply(&[], reconcile(&svc, &current, &zones, &[], 100));
        assert_eq!(slices.len(), 2);
        // Round-tripped through JSON as the API returns them: nothing to do.
        let stored: Vec<Arc<EndpointSlice>> = slices
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(&**s).unwrap();
                v["metadata"]["resourceVersion"] = json!("5");
                Arc::new(serde_json::from_value(v).unwrap())
            })
            .collect();
        assert!(reconcile(&svc, &current, &zones, &stored, 100).is_empty());

        // One pod turns unready: only its slice is updated.
        current[3] = pod("p003", "10.1.0.3", 8080, false, json!({}));
        let changes = reconcile(&svc, &current, &zones, &stored, 100);
        assert!(changes.create.is_empty() && changes.delete.is_empty());
        assert_eq!(changes.update.len(), 1);
        let updated = &changes.update[0];
        assert_eq!(updated.metadata.resource_version.as_deref(), Some("5"));
        let e = updated
            .endpoints
            .iter()
            .find(|e| e.addresses[0] == "10.1.0.3")
            .unwrap();
        assert_eq!(conditions(e), (false, false, false));

        // Ten new pods go into the slice with room rather than a new one.
        let slices = apply(&stored, changes);
        let mut more = current.clone();
        more.extend((0..10).map(|i| {
            pod(
                &format!("q{i}"),
                &format!("10.3.0.{i}"),
                8080,
                true,
                json!({}),
            )
        }));
        let changes = reconcile(&svc, &more, &zones, &slices, 100);
        assert!(
            changes.create.is_empty() && changes.delete.is_empty(),
            "{changes:?}"
        );
        assert_eq!(changes.update.len(), 1);
        assert_eq!(changes.update[0].endpoints.len(), 60);
        let slices = apply(&slices, changes);

        // Pods of a whole slice go: the slice goes; no pods at all: one empty placeholder is left.
        let small = slices.iter().find(|s| s.endpoints.len() == 60).unwrap();
        let left: Vec<Arc<PodInfo>> =
            more.iter()
                .filter(|p| {
                    !small.endpoints.iter().any(|e| {
                        e.target_ref.as_ref().unwrap().uid.as_deref() == Some(p.uid.as_str())
                    })
                })
                .cloned()
                .collect();
        assert_eq!(left.len(), 100);
        let changes = reconcile(&svc, &left, &zones, &slices, 100);
        assert_eq!(
            (
                changes.create.len(),
                changes.update.len(),
                changes.delete.len()
            ),
            (0, 0, 1)
        );
        let slices = apply(&slices, changes);
        let changes = reconcile(&svc, &[], &zones, &slices, 100);
        assert_eq!(
            (
                changes.create.len(),
                changes.update.len(),
                changes.delete.len()
            ),
            (0, 1, 0),
            "the last slice is reused as the placeholder"
        );
        let slices = apply(&slices, changes);
        assert_eq!(slices.len(), 1);
        assert!(slices[0].endpoints.is_empty() && slices[0].ports.as_ref().unwrap().is_empty());
        assert!(
            reconcile(&svc, &[], &zones, &slices, 100).is_empty(),
            "the placeholder stays"
        );
        // Pods come back: the placeholder is reused.
        let changes = reconcile(&svc, &current[..5], &zones, &slices, 100);
        assert_eq!(
            (
                changes.create.len(),
                changes.update.len(),
                changes.delete.len()
            ),
            (0, 1, 0)
        );
        assert_eq!(changes.update[0].endpoints.len(), 5);
    }

    #[test]
    fn endpointslices_of_another_owner_or_with_other_labels_are_fixed() {
        let svc = service(json!({"metadata": {"labels": {"team": "a"}}}));
        let zones = HashMap::new();
        let current = pods(3, true);
        let slices = apply(&[], reconcile(&svc, &current, &zones, &[], 100));
        assert_eq!(slices[0].metadata.labels.as_ref().unwrap()["team"], "a");
        // The Service's labels changed: the slice is relabelled in place.
        let relabelled = service(json!({"metadata": {"labels": {"team": "b"}}}));
        let changes = reconcile(&relabelled, &current, &zones, &slices, 100);
        assert_eq!(changes.update.len(), 1);
        assert_eq!(
            changes.update[0].metadata.labels.as_ref().unwrap()["team"],
            "b"
        );
        // A Service of the same name but another uid: the old slice goes, a new one is made.
        let recreated = service(json!({"metadata": {"uid": "other", "labels": {"team": "a"}}}));
        let changes = reconcile(&recreated, &current, &zones, &slices, 100);
        assert_eq!(
            (
                changes.create.len(),
                changes.update.len(),
                changes.delete.len()
            ),
            (1, 0, 1)
        );
        assert_eq!(
            changes.create[0]
                .metadata
                .owner_references
                .as_ref()
                .unwrap()[0]
                .uid,
            "other"
        );
        // A headless Service's slices are labelled so.
        let headless =
            service(json!({"metadata": {"labels": {"team": "a"}}, "spec": {"clusterIP": "None"}}));
        let changes = reconcile(&headless, &current, &zones, &slices, 100);
        assert_eq!(
            changes.update[0].metadata.labels.as_ref().unwrap()[HEADLESS],
            ""
        );
    }
}

//! The Endpoints controller, with upstream's (1.33) semantics: for each Service with a selector (and not of
//! type ExternalName) an Endpoints object of the same name lists the pods the selector matches in the
//! Service's namespace that have an IP and are not finished: ready ones in `addresses`, the others in
//! `notReadyAddresses` (terminating pods left out unless `publishNotReadyAddresses`), with the Service's
//! ports resolved on each pod (a named `targetPort` is looked up in the pod's container ports, so pods that
//! resolve it differently land in different subsets, as upstream's `RepackSubsets` packs them). At most
//! 1000 addresses are kept (`endpoints.kubernetes.io/over-capacity: truncated`). The Endpoints carries the
//! Service's labels, `service.kubernetes.io/headless` for headless Services, the controller's
//! `endpoints.kubernetes.io/managed-by` label and the `endpoints.kubernetes.io/last-change-trigger-time`
//! annotation. Endpoints the controller manages go when their Service goes, loses its selector or becomes
//! ExternalName; others (a Service without selector keeps hand-made ones) are never touched.
//!
//! One task owns the state, as in [`crate::replicaset`]: Services, a compact copy of each pod
//! ([`PodInfo`]) indexed by namespace and label so that a pod change queues only the Services that select
//! it ([`Membership`]), the Endpoints, and a [`WorkQueue`] of Service keys. A sync that changes nothing
//! writes nothing; writes run in tasks of their own, at most [`SYNCS_IN_FLIGHT`] at a time. After a write,
//! the Service is not synced again until the watch shows it ([`Tracker`]), so a stale cache never makes a
//! write based on old state.
//!
//! What it shares with the EndpointSlice controller ([`crate::endpointslice`]) is in
//! [`crate::endpoint_pods`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gantry_client::events::{Event, Involved, Recorder};
use gantry_client::k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
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
use crate::cache::{Relist, watch_all};
use crate::endpoint_pods::{
    Membership, PodInfo, TRACK_FOR, Tracker, TriggerTimes, has_cluster_ip, ip_families,
    managed_selector, of_family, rfc3339_nano, set_annotation,
};
use crate::queue::{Backoff, WorkQueue};

/// The controller's name: the events' source and the value of its managed-by label.
pub const COMPONENT: &str = "endpoint-controller";
/// The label that marks the Endpoints this controller manages (upstream's `LabelManagedBy`).
pub const MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
/// The label headless Services' Endpoints and EndpointSlices carry.
pub const HEADLESS: &str = "service.kubernetes.io/headless";
/// When the change that led to the last write happened (RFC 3339 with nanoseconds).
pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Set when addresses were dropped to stay within [`MAX_CAPACITY`].
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The most addresses (ready and not) one Endpoints keeps.
pub const MAX_CAPACITY: usize = 1000;
/// Services being written for at once.
pub const SYNCS_IN_FLIGHT: usize = 64;

// ---------------------------------------------------------------------------------------------------------
// Endpoints: what they should be.
// ---------------------------------------------------------------------------------------------------------

fn is_headless_without_ports(service: &Service) -> bool {
    let spec = service.spec.as_ref();
    spec.and_then(|s| s.cluster_ip.as_deref()) == Some("None")
        && spec
            .and_then(|s| s.ports.as_ref())
            .is_none_or(Vec::is_empty)
}

fn none_if_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

fn non_empty(s: Option<&String>) -> Option<String> {
    s.filter(|s| !s.is_empty()).cloned()
}

/// The Endpoints port of a Service port resolved to `port` on a pod.
fn endpoint_port(service_port: &ServicePort, port: i32) -> EndpointPort {
    EndpointPort {
        name: non_empty(service_port.name.as_ref()),
        port,
        protocol: Some(
            service_port
                .protocol
                .clone()
                .unwrap_or_else(|| "TCP".into()),
        ),
        app_protocol: service_port.app_protocol.clone(),
    }
}

/// The address of the pod for the Service (upstream's `podToEndpointAddressForService`): its IP of the
/// Service's primary family.
fn endpoint_address(service: &Service, pod: &PodInfo) -> Option<EndpointAddress> {
    let family = ip_families(service)[0];
    let family = if !has_cluster_ip(service)
        && service
            .spec
            .as_ref()
            .and_then(|s| s.ip_families.as_ref())
            .is_none_or(Vec::is_empty)
    {
        // A headless Service without families: the pod's primary IP decides.
        if pod.ips.first()?.contains(':') {
            "IPv6"
        } else {
            "IPv4"
        }
    } else {
        family
    };
    let ip = pod.ips.iter().find(|ip| of_family(ip, family))?;
    Some(EndpointAddress {
        ip: ip.clone(),
        hostname: pod.hostname_for(service),
        node_name: (!pod.node.is_empty()).then(|| pod.node.clone()),
        target_ref: Some(pod.target_ref()),
    })
}

/// One pod's address and ports, before packing.
#[derive(Debug, Clone)]
struct PodEndpoint {
    address: EndpointAddress,
    ready: bool,
    /// Resolved ports; `None` for a headless Service without ports.
    ports: Option<Vec<EndpointPort>>,
}

fn address_order(a: &EndpointAddress, b: &EndpointAddress) -> std::cmp::Ordering {
    let uid = |a: &EndpointAddress| a.target_ref.as_ref().and_then(|r| r.uid.clone());
    a.ip.cmp(&b.ip).then_with(|| uid(a).cmp(&uid(b)))
}

fn port_order(a: &EndpointPort, b: &EndpointPort) -> std::cmp::Ordering {
    (&a.name, a.port, &a.protocol, &a.app_protocol).cmp(&(
        &b.name,
        b.port,
        &b.protocol,
        &b.app_protocol,
    ))
}

/// Upstream's `RepackSubsets`: each distinct port goes with the set of addresses that offer it; ports
/// offered by the same set of addresses share a subset. Sorted (addresses by IP, ports by name and
/// number, subsets by their first address) so that equal inputs give equal subsets.
fn repack(endpoints: Vec<PodEndpoint>) -> Vec<EndpointSubset> {
    // Port (None: the no-ports sentinel) → addresses (by IP and uid) with readiness.
    type AddressKey = (String, Option<String>);
    let mut addresses: BTreeMap<AddressKey, (EndpointAddress, bool)> = BTreeMap::new();
    let mut by_port: Vec<(Option<EndpointPort>, BTreeMap<AddressKey, bool>)> = Vec::new();
    for endpoint in endpoints {
        let key = (
            endpoint.address.ip.clone(),
            endpoint
                .address
                .target_ref
                .as_ref()
                .and_then(|r| r.uid.clone()),
        );
        let ports: Vec<Option<EndpointPort>> = match endpoint.ports {
            Some(ports) if !ports.is_empty() => ports.into_iter().map(Some).collect(),
            _ => vec![None],
        };
        for port in ports {
            match by_port.iter_mut().find(|(p, _)| *p == port) {
                Some((_, set)) => {
                    set.insert(key.clone(), endpoint.ready);
                }
                None => by_port.push((port, BTreeMap::from([(key.clone(), endpoint.ready)]))),
            }
        }
        addresses.insert(key, (endpoint.address, endpoint.ready));
    }
    // Address set → its ports.
    let mut groups: Vec<(BTreeMap<AddressKey, bool>, Vec<EndpointPort>)> = Vec::new();
    for (port, set) in by_port {
        let group = match groups.iter_mut().position(|(s, _)| *s == set) {
            Some(i) => &mut groups[i],
            None => {
                groups.push((set, Vec::new()));
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        group.1.extend(port);
    }
    let mut subsets: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(set, mut ports)| {
            let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
            for (key, is_ready) in set {
                if let Some((address, _)) = addresses.get(&key) {
                    if is_ready {
                        ready.push(address.clone());
                    } else {
                        not_ready.push(address.clone());
                    }
                }
            }
            ready.sort_by(address_order);
            not_ready.sort_by(address_order);
            ports.sort_by(port_order);
            EndpointSubset {
                addresses: none_if_empty(ready),
                not_ready_addresses: none_if_empty(not_ready),
                ports: none_if_empty(ports),
            }
        })
        .collect();
    subsets.sort_by(|a, b| {
        let first = |s: &EndpointSubset| {
            s.addresses
                .iter()
                .chain(s.not_ready_addresses.iter())
                .flatten()
                .map(|a| a.ip.clone())
                .min()
        };
        first(a)
            .cmp(&first(b))
            .then_with(|| port_list_key(&a.ports).cmp(&port_list_key(&b.ports)))
    });
    subsets
}

fn port_list_key(ports: &Option<Vec<EndpointPort>>) -> Vec<(Option<String>, i32, Option<String>)> {
    ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone(), p.port, p.protocol.clone()))
        .collect()
}

/// The subsets of the Service's Endpoints, from the pods its selector matches.
pub(crate) fn desired_subsets(service: &Service, pods: &[Arc<PodInfo>]) -> Vec<EndpointSubset> {
    let spec = service.spec.as_ref();
    let publish = spec
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let service_ports = spec.and_then(|s| s.ports.as_ref());
    let mut endpoints = Vec::new();
    for pod in pods {
        if !pod.in_endpoints(publish) {
            continue;
        }
        let Some(address) = endpoint_address(service, pod) else {
            continue;
        };
        let ready = publish || pod.ready;
        match service_ports.filter(|p| !p.is_empty()) {
            None if is_headless_without_ports(service) => endpoints.push(PodEndpoint {
                address,
                ready,
                ports: None,
            }),
            None => {}
            Some(service_ports) => {
                let ports: Vec<EndpointPort> = service_ports
                    .iter()
                    .filter_map(|sp| pod.find_port(sp).map(|port| endpoint_port(sp, port)))
                    .collect();
                // A pod that offers none of the ports is in no subset (as upstream).
                if !ports.is_empty() {
                    endpoints.push(PodEndpoint {
                        address,
                        ready,
                        ports: Some(ports),
                    });
                }
            }
        }
    }
    repack(endpoints)
}

fn address_count(subsets: &[EndpointSubset]) -> usize {
    subsets
        .iter()
        .map(|s| {
            s.addresses.as_ref().map_or(0, Vec::len)
                + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        })
        .sum()
}

/// Upstream's `truncateEndpoints`: keeps at most [`MAX_CAPACITY`] addresses, ready ones first, each
/// subset keeping its share (rounded up) of what can be kept; whether any was dropped.
pub(crate) fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let ready: usize = subsets
        .iter()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum();
    let not_ready = address_count(subsets) - ready;
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (room, total) = if truncate_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut left = room;
    for subset in subsets.iter_mut() {
        let list = if truncate_ready {
            subset.not_ready_addresses = None;
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        let here = list.as_ref().map_or(0, Vec::len);
        let share = (here * room).div_ceil(total).min(left);
        if let Some(addresses) = list {
            addresses.truncate(share);
            left -= addresses.len();
        }
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
    }
    true
}

/// Subsets as the API may hold them, in the form [`desired_subsets`] makes (empty strings and lists as
/// absent, a port's protocol TCP when unset, addresses and ports sorted), to compare them.
fn canonical_subsets(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let address = |a: &EndpointAddress| {
        let target_ref = a.target_ref.as_ref().map(|r| ObjectReference {
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
            ..ObjectReference::default()
        });
        EndpointAddress {
            ip: a.ip.clone(),
            hostname: non_empty(a.hostname.as_ref()),
            node_name: non_empty(a.node_name.as_ref()),
            target_ref,
        }
    };
    let addresses = |list: &Option<Vec<EndpointAddress>>| {
        let mut list: Vec<EndpointAddress> = list.iter().flatten().map(address).collect();
        list.sort_by(address_order);
        none_if_empty(list)
    };
    subsets
        .iter()
        .map(|s| {
            let mut ports: Vec<EndpointPort> = s
                .ports
                .iter()
                .flatten()
                .map(|p| EndpointPort {
                    name: non_empty(p.name.as_ref()),
                    port: p.port,
                    protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: non_empty(p.app_protocol.as_ref()),
                })
                .collect();
            ports.sort_by(port_order);
            EndpointSubset {
                addresses: addresses(&s.addresses),
                not_ready_addresses: addresses(&s.not_ready_addresses),
                ports: none_if_empty(ports),
            }
        })
        .collect()
}

/// The labels of the Service's Endpoints: the Service's, the headless label for a Service without cluster
/// IP, and the controller's managed-by label.
fn endpoints_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS);
    if !has_cluster_ip(service) {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels.insert(MANAGED_BY.into(), COMPONENT.into());
    labels
}

/// The Endpoints to write for the Service (`current`: what exists), or `None` when `current` is right
/// (upstream's no-op check: same subsets, labels and over-capacity annotation).
pub(crate) fn desired_endpoints(
    service: &Service,
    pods: &[Arc<PodInfo>],
    current: Option<&Endpoints>,
    trigger: Option<Timestamp>,
) -> Option<Endpoints> {
    let mut subsets = desired_subsets(service, pods);
    let labels = endpoints_labels(service);
    if let Some(current) = current {
        let current_subsets = current.subsets.as_deref().unwrap_or_default();
        let over = address_count(&subsets) > MAX_CAPACITY;
        let capacity_right = !over
            && current
                .metadata
                .annotations
                .as_ref()
                .is_none_or(|a| !a.contains_key(OVER_CAPACITY));
        if capacity_right
            && canonical_subsets(current_subsets) == subsets
            && current.metadata.labels.as_ref() == Some(&labels)
        {
            return None;
        }
    }
    let truncated = truncate(&mut subsets);
    let mut metadata = match current {
        Some(current) => current.metadata.clone(),
        None => ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
    };
    metadata.managed_fields = None;
    metadata.labels = Some(labels);
    set_annotation(
        &mut metadata.annotations,
        TRIGGER_TIME,
        trigger.map(rfc3339_nano),
    );
    set_annotation(
        &mut metadata.annotations,
        OVER_CAPACITY,
        truncated.then(|| "truncated".into()),
    );
    Some(Endpoints {
        metadata,
        subsets: none_if_empty(subsets),
    })
}

fn is_managed(endpoints: &Endpoints) -> bool {
    endpoints
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY))
        .is_some_and(|v| v == COMPONENT)
}

// ---------------------------------------------------------------------------------------------------------
// The controller.
// ---------------------------------------------------------------------------------------------------------

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut service_events = watch_all::<Service>(&client);
    let mut pod_events = watch_all::<Pod>(&client);
    let mut endpoints_events = watch_all::<Endpoints>(&client);
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
                Err(e) => tracing::warn!("endpoints controller: watching services: {e}"),
            },
            Some(event) = pod_events.next() => match event {
                Ok(event) => controller.pod_event(event),
                Err(e) => tracing::warn!("endpoints controller: watching pods: {e}"),
            },
            Some(event) = endpoints_events.next() => match event {
                Ok(event) => controller.endpoints_event(event),
                Err(e) => tracing::warn!("endpoints controller: watching endpoints: {e}"),
            },
            () = tokio::time::sleep_until(wakeup) => controller.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_sync => controller.sync_next(Instant::now()),
        }
    }
}

/// What one sync writes.
#[derive(Debug)]
enum Work {
    Create(Endpoints),
    Update(Endpoints),
    /// The managed Endpoints of a Service that no longer has them (name, uid).
    Delete(String, String),
}

/// What a sync task reports.
#[derive(Debug)]
struct Done {
    key: String,
    /// The resourceVersion written (`None`: deleted), when the write went through.
    written: Option<Option<u64>>,
    retry: bool,
    trigger: Option<Timestamp>,
}

struct Controller {
    client: Client,
    events: Recorder,
    services: HashMap<String, Arc<Service>>,
    membership: Membership,
    endpoints: HashMap<String, Arc<Endpoints>>,
    tracker: Tracker,
    triggers: TriggerTimes,
    backoff: Backoff<String>,
    queue: WorkQueue<String>,
    services_list: Relist,
    pods_list: Relist,
    endpoints_list: Relist,
    done_tx: mpsc::UnboundedSender<Done>,
}

impl Controller {
    fn new(client: Client, done_tx: mpsc::UnboundedSender<Done>) -> Controller {
        Controller {
            events: Recorder::start(client.clone(), COMPONENT),
            client,
            services: HashMap::new(),
            membership: Membership::default(),
            endpoints: HashMap::new(),
            tracker: Tracker::default(),
            triggers: TriggerTimes::default(),
            backoff: Backoff::default(),
            queue: WorkQueue::default(),
            services_list: Relist::default(),
            pods_list: Relist::default(),
            endpoints_list: Relist::default(),
            done_tx,
        }
    }

    fn can_sync(&self) -> bool {
        self.services_list.synced
            && self.pods_list.synced
            && self.endpoints_list.synced
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
                let gone: HashSet<String> = self.pods_list.done(uids.iter()).into_iter().collect();
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

    fn endpoints_event(&mut self, event: watcher::Event<Endpoints>) {
        match event {
            watcher::Event::Init => self.endpoints_list.init(),
            watcher::Event::InitApply(endpoints) => {
                self.endpoints_list.seen(&key(
                    namespace_of(&endpoints.metadata),
                    name_of(&endpoints.metadata),
                ));
                self.endpoints_seen(endpoints);
            }
            watcher::Event::Apply(endpoints) => self.endpoints_seen(endpoints),
            watcher::Event::Delete(endpoints) => {
                let k = key(
                    namespace_of(&endpoints.metadata),
                    name_of(&endpoints.metadata),
                );
                self.endpoints_gone(k);
            }
            watcher::Event::InitDone => {
                for k in self.endpoints_list.done(self.endpoints.keys()) {
                    self.endpoints_gone(k);
                }
            }
        }
    }

    fn endpoints_seen(&mut self, endpoints: Endpoints) {
        let k = key(
            namespace_of(&endpoints.metadata),
            name_of(&endpoints.metadata),
        );
        let observed = self.tracker.observed(&k, "", revision(&endpoints.metadata));
        // Someone else's change, or a managed leftover (its Service gone while the controller was away).
        let relevant = self.services.contains_key(&k) || is_managed(&endpoints);
        self.endpoints.insert(k.clone(), Arc::new(endpoints));
        if observed.caught_up || (!observed.ours && relevant) {
            self.queue.add(k);
        }
    }

    fn endpoints_gone(&mut self, k: String) {
        self.endpoints.remove(&k);
        let observed = self.tracker.observed(&k, "", None);
        if observed.caught_up || (!observed.ours && self.services.contains_key(&k)) {
            self.changed(k);
        }
    }

    fn sync_next(&mut self, now: Instant) {
        let Some(k) = self.queue.pop() else { return };
        if self.tracker.is_stale(&k, now) {
            // Synced again when the watch shows the last write (or the tracker gives up on it).
            self.queue.done(&k);
            self.queue.add_after(k, TRACK_FOR, now);
            return;
        }
        let Some(work) = self.plan(&k) else {
            self.queue.done(&k);
            return;
        };
        let trigger = self.triggers.take(&k);
        let (client, events, done) = (
            self.client.clone(),
            self.events.clone(),
            self.done_tx.clone(),
        );
        tokio::spawn(async move {
            let _ = done.send(work.run(k, client, events, trigger).await);
        });
    }

    /// What the Service's Endpoints need, if anything.
    fn plan(&mut self, k: &str) -> Option<Work> {
        let current = self.endpoints.get(k).cloned();
        let service = self.services.get(k).cloned();
        let selector = service.as_deref().and_then(managed_selector);
        let (Some(service), Some(selector)) = (service.as_deref(), selector) else {
            self.triggers.take(k);
            if service.is_none() {
                self.tracker.forget(k);
                self.backoff.reset(k);
            }
            let current = current.filter(|e| is_managed(e))?;
            return Some(Work::Delete(
                name_of(&current.metadata).to_owned(),
                current.metadata.uid.clone().unwrap_or_default(),
            ));
        };
        let pods = self
            .membership
            .selected(namespace_of(&service.metadata), selector);
        let trigger = self.triggers.peek(k);
        let desired = desired_endpoints(service, &pods, current.as_deref(), trigger);
        let Some(desired) = desired else {
            // Nothing to write: the changes since the last write are in it already.
            self.triggers.take(k);
            return None;
        };
        Some(if current.is_some() {
            Work::Update(desired)
        } else {
            Work::Create(desired)
        })
    }

    fn done(&mut self, done: Done) {
        let k = done.key;
        if let Some(written) = done.written {
            let cached = self.endpoints.get(&k).map(|e| revision(&e.metadata));
            self.tracker.wrote(&k, "", written, cached, Instant::now());
        }
        self.queue.done(&k);
        if done.retry {
            self.triggers.restore(&k, done.trigger);
            let delay = self.backoff.failed(&k);
            self.queue.add_after(k, delay, Instant::now());
        } else {
            self.backoff.reset(&k);
        }
    }
}

impl Work {
    async fn run(
        self,
        k: String,
        client: Client,
        events: Recorder,
        trigger: Option<Timestamp>,
    ) -> Done {
        let (namespace, name) = split_key(&k);
        let api: Api<Endpoints> = Api::namespaced(client, namespace);
        let mut done = Done {
            key: k.clone(),
            written: None,
            retry: false,
            trigger,
        };
        let involved = Involved {
            api_version: "v1",
            kind: "Endpoints",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: String::new(),
        };
        let (result, creating) = match self {
            Work::Create(endpoints) => (api.create(&PostParams::default(), &endpoints).await, true),
            Work::Update(endpoints) => (
                api.replace(name, &PostParams::default(), &endpoints).await,
                false,
            ),
            Work::Delete(name, uid) => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => done.written = Some(None),
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => {
                        tracing::debug!(endpoints = %k, "cannot delete: {e}");
                        done.retry = true;
                    }
                }
                return done;
            }
        };
        match result {
            Ok(written) => done.written = Some(revision(&written.metadata)),
            // The namespace is going away: nothing to do.
            Err(e) if creating && matches!(api_code(&e), Some(403 | 404)) => {}
            // The cache was behind (409): tried again once it is not.
            Err(e) if is_conflict(&e) => done.retry = true,
            Err(e) => {
                let message = api_message(&e);
                let (reason, what) = if creating {
                    ("FailedToCreateEndpoint", "create endpoint for service")
                } else {
                    ("FailedToUpdateEndpoint", "update endpoint")
                };
                events.record(Event {
                    object: involved,
                    warning: true,
                    reason,
                    message: format!("Failed to {what} {k}: {message}"),
                });
                done.retry = true;
            }
        }
        done
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::{Value, json};

    pub(crate) fn service(value: Value) -> Service {
        let mut base = json!({"metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.0.0.10", "ipFamilies": ["IPv4"],
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}});
        merge(&mut base, value);
        serde_json::from_value(base).unwrap()
    }

    pub(crate) fn merge(into: &mut Value, from: Value) {
        match (into, from) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (into, from) => *into = from,
        }
    }

    /// A running pod `name` with IP `ip`, labelled app=web, whose container port `http` is `port`.
    pub(crate) fn pod(name: &str, ip: &str, port: i32, ready: bool, extra: Value) -> Arc<PodInfo> {
        let mut value = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c",
                "ports": [{"name": "http", "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        merge(&mut value, extra);
        let pod: Pod = serde_json::from_value(value).unwrap();
        Arc::new(PodInfo::new(&pod).unwrap())
    }

    fn ips(list: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        list.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn endpoint_ports_resolve_numbers_and_names_on_each_pod() {
        let p = pod("a", "10.1.0.1", 8080, true, json!({}));
        let port = |target: Value, protocol: &str| -> ServicePort {
            serde_json::from_value(json!({"port": 80, "targetPort": target, "protocol": protocol}))
                .unwrap()
        };
        assert_eq!(p.find_port(&port(json!("http"), "TCP")), Some(8080));
        assert_eq!(
            p.find_port(&port(json!("http"), "UDP")),
            None,
            "the protocol must match"
        );
        assert_eq!(p.find_port(&port(json!("grpc"), "TCP")), None);
        assert_eq!(p.find_port(&port(json!(9000), "TCP")), Some(9000));
        let unset: ServicePort = serde_json::from_value(json!({"port": 81})).unwrap();
        assert_eq!(p.find_port(&unset), Some(81));
        // Sidecars' ports count; other init containers' do not.
        let sidecar = pod(
            "s",
            "10.1.0.2",
            1,
            true,
            json!({"spec": {"initContainers": [
                {"name": "side", "restartPolicy": "Always", "ports": [{"name": "metrics", "containerPort": 9090}]},
                {"name": "init", "ports": [{"name": "setup", "containerPort": 7070}]}]}}),
        );
        assert_eq!(
            sidecar.find_port(&port(json!("metrics"), "TCP")),
            Some(9090)
        );
        assert_eq!(sidecar.find_port(&port(json!("setup"), "TCP")), None);
    }

    #[test]
    fn endpoint_subsets_split_ready_and_not_ready_and_repack_by_resolved_port() {
        let svc = service(json!({}));
        let pods = vec![
            pod("b", "10.1.0.2", 8080, true, json!({})),
            pod("a", "10.1.0.1", 8080, true, json!({})),
            pod("c", "10.1.0.3", 8080, false, json!({})),
            pod("d", "10.1.0.4", 9090, true, json!({})),
            // No IP yet, finished, terminating: left out.
            pod("e", "", 8080, true, json!({"status": {"podIPs": []}})),
            pod(
                "f",
                "10.1.0.6",
                8080,
                true,
                json!({"status": {"phase": "Succeeded"}}),
            ),
            pod(
                "g",
                "10.1.0.7",
                8080,
                true,
                json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}),
            ),
        ];
        let subsets = desired_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 2, "{subsets:#?}");
        assert_eq!(ips(&subsets[0].addresses), ["10.1.0.1", "10.1.0.2"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.1.0.3"]);
        let port = &subsets[0].ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.protocol.as_deref()),
            (Some("http"), 8080, Some("TCP"))
        );
        assert_eq!(ips(&subsets[1].addresses), ["10.1.0.4"]);
        assert_eq!(subsets[1].ports.as_ref().unwrap()[0].port, 9090);
        let a = &subsets[0].addresses.as_ref().unwrap()[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        let target = a.target_ref.as_ref().unwrap();
        assert_eq!(
            (
                target.kind.as_deref(),
                target.name.as_deref(),
                target.uid.as_deref()
            ),
            (Some("Pod"), Some("a"), Some("uid-a"))
        );
        assert_eq!(a.hostname, None);

        // publishNotReadyAddresses: every pod ready, terminating ones included.
        let publish = service(json!({"spec": {"publishNotReadyAddresses": true}}));
        let subsets = desired_subsets(&publish, &pods);
        assert_eq!(
            ips(&subsets[0].addresses),
            ["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.7"]
        );
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn ports_offered_by_the_same_addresses_share_a_subset() {
        // Two ports; pod b lacks the named one: port 443 (both pods) and http (a only) split.
        let svc = service(json!({"spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]}}));
        let a = pod("a", "10.1.0.1", 8080, true, json!({}));
        let b = pod(
            "b",
            "10.1.0.2",
            8080,
            true,
            json!({"spec": {"containers": [{"name": "c", "ports": []}]}}),
        );
        let subsets = desired_subsets(&svc, &[a.clone(), b]);
        assert_eq!(subsets.len(), 2, "{subsets:#?}");
        let with = |ip: &str| {
            subsets
                .iter()
                .filter(|s| ips(&s.addresses).contains(&ip))
                .map(|s| port_list_key(&s.ports))
                .collect::<Vec<_>>()
        };
        assert_eq!(with("10.1.0.2").len(), 1);
        assert_eq!(with("10.1.0.2")[0].len(), 1);
        assert_eq!(with("10.1.0.2")[0][0].1, 8443);
        assert_eq!(with("10.1.0.1").len(), 2);
        // Both ports on both pods: one subset.
        let subsets = desired_subsets(
            &svc,
            &[a.clone(), pod("c", "10.1.0.3", 8080, true, json!({}))],
        );
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].ports.as_ref().unwrap().len(), 2);

        // A headless Service without ports lists addresses without ports; hostnames for its subdomain.
        let headless = service(json!({"spec": {"clusterIP": "None", "ports": null}}));
        let named = pod(
            "h",
            "10.1.0.9",
            1,
            true,
            json!({"spec": {"hostname": "h0", "subdomain": "web"}}),
        );
        let subsets = desired_subsets(&headless, &[a, named]);
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].ports.is_none());
        let addresses = subsets[0].addresses.as_ref().unwrap();
        assert_eq!(addresses[1].hostname.as_deref(), Some("h0"));
        assert_eq!(addresses[0].hostname, None);
        // A Service with ports that a pod offers none of: the pod is in no subset.
        let grpc = service(json!({"spec": {"ports": [{"port": 1, "targetPort": "grpc"}]}}));
        assert!(desired_subsets(&grpc, &[pod("x", "10.1.0.1", 1, true, json!({}))]).is_empty());
    }

    #[test]
    fn endpoints_beyond_capacity_are_truncated_ready_first() {
        let svc = service(json!({}));
        let mut pods = Vec::new();
        for i in 0..900 {
            pods.push(pod(
                &format!("r{i}"),
                &format!("10.1.{}.{}", i / 250, i % 250),
                8080,
                true,
                json!({}),
            ));
        }
        for i in 0..300 {
            pods.push(pod(
                &format!("n{i}"),
                &format!("10.2.{}.{}", i / 250, i % 250),
                8080,
                false,
                json!({}),
            ));
        }
        let ep = desired_endpoints(&svc, &pods, None, None).unwrap();
        let subsets = ep.subsets.as_ref().unwrap();
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 900);
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 100);
        assert_eq!(
            ep.metadata.annotations.as_ref().unwrap()[OVER_CAPACITY],
            "truncated"
        );
        // Over capacity with ready addresses alone: not-ready ones all go.
        let mut subsets = vec![
            EndpointSubset {
                addresses: Some(vec![EndpointAddress::default(); 700]),
                not_ready_addresses: Some(vec![EndpointAddress::default(); 5]),
                ports: None,
            },
            EndpointSubset {
                addresses: Some(vec![EndpointAddress::default(); 700]),
                not_ready_addresses: None,
                ports: None,
            },
        ];
        assert!(truncate(&mut subsets));
        assert_eq!(address_count(&subsets), 1000);
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 500);
        assert!(subsets[0].not_ready_addresses.is_none());
        let mut small = subsets[..1].to_vec();
        assert!(!truncate(&mut small), "within capacity");
    }

    #[test]
    fn endpoints_carry_labels_and_annotations_and_a_sync_that_changes_nothing_writes_nothing() {
        let svc = service(json!({"metadata": {"labels": {"team": "a"}}}));
        let pods = vec![pod("a", "10.1.0.1", 8080, true, json!({}))];
        let at: Timestamp = "2025-01-01T00:00:00.5Z".parse().unwrap();
        let ep = desired_endpoints(&svc, &pods, None, Some(at)).unwrap();
        assert_eq!(ep.metadata.name.as_deref(), Some("web"));
        let labels = ep.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["team"], "a");
        assert_eq!(labels[MANAGED_BY], COMPONENT);
        assert!(!labels.contains_key(HEADLESS));
        assert_eq!(
            ep.metadata.annotations.as_ref().unwrap()[TRIGGER_TIME],
            "2025-01-01T00:00:00.5Z"
        );
        // As the API returns it (the protocol defaulted, empty lists dropped): nothing to write.
        let mut stored: Value = serde_json::to_value(&ep).unwrap();
        stored["metadata"]["resourceVersion"] = json!("7");
        let stored: Endpoints = serde_json::from_value(stored).unwrap();
        assert!(desired_endpoints(&svc, &pods, Some(&stored), None).is_none());
        // Readiness, labels or headlessness changed: written, the rest of the metadata kept.
        let unready = vec![pod("a", "10.1.0.1", 8080, false, json!({}))];
        let update = desired_endpoints(&svc, &unready, Some(&stored), None).unwrap();
        assert_eq!(update.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(
            ips(&update.subsets.as_ref().unwrap()[0].not_ready_addresses),
            ["10.1.0.1"]
        );
        assert!(
            update.metadata.annotations.is_none(),
            "no trigger time: the annotation goes"
        );
        let relabelled = service(json!({"metadata": {"labels": {"team": "b"}}}));
        assert!(desired_endpoints(&relabelled, &pods, Some(&stored), None).is_some());
        let headless =
            service(json!({"metadata": {"labels": {"team": "a"}}, "spec": {"clusterIP": "None"}}));
        let ep = desired_endpoints(&headless, &pods, Some(&stored), None).unwrap();
        assert_eq!(ep.metadata.labels.as_ref().unwrap()[HEADLESS], "");
    }
}

//! What the Endpoints and EndpointSlice controllers share: which Services they manage and their IP
//! families, a compact copy of each pod ([`PodInfo`]) indexed so that a pod change finds the Services that
//! select it ([`Membership`]), the writes not yet shown by the watch ([`Tracker`]) and the trigger times of
//! what they write ([`TriggerTimes`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use gantry_client::k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use gantry_client::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use gantry_client::k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use crate::api::{name_of, namespace_of, split_key};
use crate::pods;

/// How long a write may take to show in the watch before the controller stops waiting for it.
pub const TRACK_FOR: Duration = Duration::from_secs(10);

/// The Service's selector when the endpoints controllers manage it: a selector that is set and not empty
/// (an empty one is dropped by upstream's API, as Go omits empty maps), on a Service not of type
/// ExternalName.
pub fn managed_selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether the Service has a cluster IP (upstream's `IsServiceIPSet`); headless ones do not.
pub fn has_cluster_ip(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The IP families of the Service, first the primary (upstream: `ipFamilies`, else its cluster IP's).
pub fn ip_families(service: &Service) -> Vec<&str> {
    let spec = service.spec.as_ref();
    let families: Vec<&str> = spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if !families.is_empty() {
        return families;
    }
    let ipv6 = spec
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip.contains(':'));
    vec![if ipv6 { "IPv6" } else { "IPv4" }]
}

/// Whether `ip` is of the family `family` (`IPv4` or `IPv6`).
pub fn of_family(ip: &str, family: &str) -> bool {
    ip.contains(':') == (family == "IPv6")
}

/// A container port a named `targetPort` can resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    pub name: String,
    pub protocol: String,
    pub port: i32,
}

/// What the endpoints controllers read of a pod: a compact copy (two controllers keep one of each pod). Two
/// copies that are equal give the same endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// `status.podIPs` (or `status.podIP`), primary first.
    pub ips: Vec<String>,
    pub node: String,
    pub hostname: String,
    pub subdomain: String,
    /// Its Ready condition is True.
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
    /// Succeeded or Failed.
    pub terminal: bool,
    /// The named ports of its containers and sidecars (restartable init containers).
    pub ports: Vec<NamedPort>,
}

impl PodInfo {
    pub fn new(pod: &Pod) -> Option<PodInfo> {
        let meta = &pod.metadata;
        let status = pod.status.as_ref();
        let mut ips: Vec<String> = status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten()
            .map(|ip| ip.ip.clone())
            .filter(|ip| !ip.is_empty())
            .collect();
        if ips.is_empty()
            && let Some(ip) = status
                .and_then(|s| s.pod_ip.clone())
                .filter(|ip| !ip.is_empty())
        {
            ips.push(ip);
        }
        let spec = pod.spec.as_ref();
        let sidecars = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let containers = spec.map(|s| &s.containers).into_iter().flatten();
        let ports = containers
            .chain(sidecars)
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                Some(NamedPort {
                    name: p.name.clone().filter(|n| !n.is_empty())?,
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    port: p.container_port,
                })
            })
            .collect();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or_default();
        Some(PodInfo {
            namespace: namespace_of(meta).to_owned(),
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            labels: meta.labels.clone().unwrap_or_default(),
            ips,
            node: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            hostname: spec.and_then(|s| s.hostname.clone()).unwrap_or_default(),
            subdomain: spec.and_then(|s| s.subdomain.clone()).unwrap_or_default(),
            ready: pods::is_ready(pod),
            terminating: meta.deletion_timestamp.is_some(),
            terminal: matches!(phase, "Succeeded" | "Failed"),
            ports,
        })
    }

    /// Upstream's `ShouldPodBeInEndpoints`: not finished, with an IP, and not terminating unless
    /// `include_terminating`.
    pub fn in_endpoints(&self, include_terminating: bool) -> bool {
        !self.terminal && !self.ips.is_empty() && (include_terminating || !self.terminating)
    }

    /// Upstream's `ShouldSetHostname`: the pod's hostname is published when its subdomain is the Service.
    pub fn hostname_for(&self, service: &Service) -> Option<String> {
        (!self.hostname.is_empty()
            && self.subdomain == name_of(&service.metadata)
            && self.namespace == namespace_of(&service.metadata))
        .then(|| self.hostname.clone())
    }

    pub fn target_ref(&self) -> ObjectReference {
        ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(self.namespace.clone()),
            name: Some(self.name.clone()),
            uid: Some(self.uid.clone()),
            ..ObjectReference::default()
        }
    }

    /// Upstream's `FindPort`: the port a Service port's `targetPort` means on this pod (a number as is, a
    /// name looked up among the pod's container ports of the same protocol); `None` if it has none.
    pub fn find_port(&self, port: &ServicePort) -> Option<i32> {
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        match &port.target_port {
            Some(IntOrString::String(name)) => self
                .ports
                .iter()
                .find(|p| &p.name == name && p.protocol == protocol)
                .map(|p| p.port),
            Some(IntOrString::Int(n)) if *n != 0 => Some(*n),
            // The API server defaults targetPort to the port.
            _ => Some(port.port),
        }
    }
}

type LabelKey = (String, String, String);

/// Pods by namespace and label, and Service selectors by one of their labels: which Services select a pod,
/// which pods a selector matches, without looking at every Service or pod.
#[derive(Debug, Default)]
pub struct Membership {
    /// Pods by namespace, then uid.
    pods: HashMap<String, HashMap<String, Arc<PodInfo>>>,
    /// Pod uids by (namespace, label, value).
    pods_by_label: HashMap<LabelKey, HashSet<String>>,
    /// Each Service's selector, and the one of its labels it is indexed under.
    selectors: HashMap<String, (BTreeMap<String, String>, LabelKey)>,
    /// Service keys by the label they are indexed under: a Service that selects a pod is in the bucket of
    /// one of the pod's labels.
    services_by_label: HashMap<LabelKey, HashSet<String>>,
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl Membership {
    /// Records the selector of the Service `key` (`None`: it selects nothing).
    pub fn set_selector(&mut self, key: &str, selector: Option<&BTreeMap<String, String>>) {
        let (namespace, _) = split_key(key);
        if let Some((old, _)) = self.selectors.get(key)
            && Some(old) == selector
        {
            return;
        }
        self.remove_selector(key);
        let Some(selector) = selector.filter(|s| !s.is_empty()) else {
            return;
        };
        // Under its label with the fewest Services, so that buckets stay small.
        let Some(label) = selector
            .iter()
            .map(|(k, v)| (namespace.to_owned(), k.clone(), v.clone()))
            .min_by_key(|l| self.services_by_label.get(l).map_or(0, HashSet::len))
        else {
            return;
        };
        self.services_by_label
            .entry(label.clone())
            .or_default()
            .insert(key.to_owned());
        self.selectors
            .insert(key.to_owned(), (selector.clone(), label));
    }

    pub fn remove_selector(&mut self, key: &str) {
        if let Some((_, label)) = self.selectors.remove(key)
            && let Some(bucket) = self.services_by_label.get_mut(&label)
        {
            bucket.remove(key);
            if bucket.is_empty() {
                self.services_by_label.remove(&label);
            }
        }
    }

    /// The keys of the Services that select the pod.
    pub fn selecting(&self, pod: &PodInfo) -> Vec<String> {
        let mut found = Vec::new();
        for (k, v) in &pod.labels {
            let label = (pod.namespace.clone(), k.clone(), v.clone());
            for service in self.services_by_label.get(&label).into_iter().flatten() {
                if self
                    .selectors
                    .get(service)
                    .is_some_and(|(selector, _)| selects(selector, &pod.labels))
                {
                    found.push(service.clone());
                }
            }
        }
        found
    }

    /// The pods of `namespace` that `selector` matches.
    pub fn selected(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Vec<Arc<PodInfo>> {
        let Some(in_namespace) = self.pods.get(namespace) else {
            return Vec::new();
        };
        let smallest = selector
            .iter()
            .map(|(k, v)| {
                self.pods_by_label
                    .get(&(namespace.to_owned(), k.clone(), v.clone()))
            })
            .min_by_key(|bucket| bucket.map_or(0, HashSet::len));
        let Some(Some(bucket)) = smallest else {
            return Vec::new();
        };
        let mut selected: Vec<Arc<PodInfo>> = bucket
            .iter()
            .filter_map(|uid| in_namespace.get(uid))
            .filter(|p| selects(selector, &p.labels))
            .cloned()
            .collect();
        selected.sort_by(|a, b| a.name.cmp(&b.name));
        selected
    }

    /// Every pod (for the rare changes that concern pods by node).
    pub fn all_pods(&self) -> impl Iterator<Item = &Arc<PodInfo>> {
        self.pods.values().flat_map(HashMap::values)
    }

    pub fn pod_uids(&self) -> Vec<(String, String)> {
        self.pods
            .iter()
            .flat_map(|(ns, pods)| pods.keys().map(move |uid| (ns.clone(), uid.clone())))
            .collect()
    }

    /// Records the pod; the keys of the Services whose endpoints it changes (upstream's
    /// `GetServicesToUpdateOnPodChange`: those that select it now or selected it before, when anything
    /// the endpoints show of it changed).
    pub fn pod_seen(&mut self, pod: PodInfo) -> Vec<String> {
        let pod = Arc::new(pod);
        let old = self
            .pods
            .entry(pod.namespace.clone())
            .or_default()
            .insert(pod.uid.clone(), pod.clone());
        match old {
            Some(old) if *old == *pod => Vec::new(),
            Some(old) => {
                if old.labels == pod.labels {
                    return self.selecting(&pod);
                }
                self.unindex(&old);
                self.index(&pod);
                let mut keys = self.selecting(&old);
                keys.extend(self.selecting(&pod));
                keys.sort();
                keys.dedup();
                keys
            }
            None => {
                self.index(&pod);
                self.selecting(&pod)
            }
        }
    }

    /// Forgets the pod; the keys of the Services that selected it.
    pub fn pod_gone(&mut self, namespace: &str, uid: &str) -> Vec<String> {
        let Some(pods) = self.pods.get_mut(namespace) else {
            return Vec::new();
        };
        let Some(old) = pods.remove(uid) else {
            return Vec::new();
        };
        if pods.is_empty() {
            self.pods.remove(namespace);
        }
        self.unindex(&old);
        self.selecting(&old)
    }

    fn index(&mut self, pod: &PodInfo) {
        for (k, v) in &pod.labels {
            self.pods_by_label
                .entry((pod.namespace.clone(), k.clone(), v.clone()))
                .or_default()
                .insert(pod.uid.clone());
        }
    }

    fn unindex(&mut self, pod: &PodInfo) {
        for (k, v) in &pod.labels {
            let label = (pod.namespace.clone(), k.clone(), v.clone());
            if let Some(bucket) = self.pods_by_label.get_mut(&label) {
                bucket.remove(&pod.uid);
                if bucket.is_empty() {
                    self.pods_by_label.remove(&label);
                }
            }
        }
    }
}

/// What the watch must show of an object the controller wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// This resourceVersion or a later one.
    Revision(u64),
    Gone,
}

/// Upstream's EndpointSliceTracker (and the Endpoints controller's stale-endpoints tracker): the objects
/// written for each Service, until the watch shows them. A Service with writes the watch has not shown yet
/// is not synced (its cache is stale: a sync would write again what was written, e.g. a duplicate slice);
/// once the watch has caught up it is queued again.
#[derive(Debug, Default)]
pub struct Tracker {
    /// By Service key, then object name: what is expected, and since when.
    expected: HashMap<String, HashMap<String, (Expect, Instant)>>,
    /// Services whose sync was skipped because of writes not shown yet.
    waiting: HashSet<String>,
}

/// What an observed change was to the [`Tracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// The controller's own write (nothing new to sync).
    pub ours: bool,
    /// The last awaited write of a Service that waits for it was shown: sync it now.
    pub caught_up: bool,
}

impl Tracker {
    /// The controller wrote `name` for `service` at `written` (`None`: deleted it); `cached` is what the
    /// watch shows now (`Some(None)`: the object is cached without a parseable resourceVersion, `None`:
    /// absent).
    pub fn wrote(
        &mut self,
        service: &str,
        name: &str,
        written: Option<u64>,
        cached: Option<Option<u64>>,
        now: Instant,
    ) {
        let expect = match written {
            Some(rv) if cached.flatten().is_some_and(|c| c >= rv) => None,
            Some(rv) => Some(Expect::Revision(rv)),
            None if cached.is_none() => None,
            None => Some(Expect::Gone),
        };
        let entries = self.expected.entry(service.to_owned()).or_default();
        match expect {
            Some(expect) => {
                entries.insert(name.to_owned(), (expect, now));
            }
            None => {
                entries.remove(name);
                if entries.is_empty() {
                    self.expected.remove(service);
                }
            }
        }
    }

    /// The watch shows `name` of `service` at `rv` (`None`: deleted).
    pub fn observed(&mut self, service: &str, name: &str, rv: Option<u64>) -> Observed {
        let mut observed = Observed {
            ours: false,
            caught_up: false,
        };
        let Some(entries) = self.expected.get_mut(service) else {
            return observed;
        };
        let Some((expect, _)) = entries.get(name).copied() else {
            return observed;
        };
        let satisfied = match (expect, rv) {
            (Expect::Revision(want), Some(seen)) => {
                observed.ours = seen == want;
                seen >= want
            }
            (Expect::Revision(_), None) => true,
            (Expect::Gone, None) => {
                observed.ours = true;
                true
            }
            (Expect::Gone, Some(_)) => false,
        };
        if satisfied {
            entries.remove(name);
            if entries.is_empty() {
                self.expected.remove(service);
                observed.caught_up = self.waiting.remove(service);
            }
        }
        observed
    }

    /// Whether writes for `service` are still to show (those awaited longer than [`TRACK_FOR`] are given
    /// up); if so, the Service waits for them.
    pub fn is_stale(&mut self, service: &str, now: Instant) -> bool {
        let Some(entries) = self.expected.get_mut(service) else {
            return false;
        };
        entries.retain(|_, (_, since)| now.saturating_duration_since(*since) < TRACK_FOR);
        if entries.is_empty() {
            self.expected.remove(service);
            return false;
        }
        self.waiting.insert(service.to_owned());
        true
    }

    pub fn forget(&mut self, service: &str) {
        self.expected.remove(service);
        self.waiting.remove(service);
    }
}

/// When the first change since the last sync of each Service happened: the
/// `endpoints.kubernetes.io/last-change-trigger-time` of what the sync writes.
#[derive(Debug, Default)]
pub struct TriggerTimes {
    first: HashMap<String, Timestamp>,
}

impl TriggerTimes {
    pub fn changed(&mut self, key: &str, at: Timestamp) {
        self.first
            .entry(key.to_owned())
            .and_modify(|t| *t = (*t).min(at))
            .or_insert(at);
    }

    pub fn peek(&self, key: &str) -> Option<Timestamp> {
        self.first.get(key).copied()
    }

    /// The trigger time of a sync (the changes are then synced).
    pub fn take(&mut self, key: &str) -> Option<Timestamp> {
        self.first.remove(key)
    }

    /// Puts back a trigger time whose write failed.
    pub fn restore(&mut self, key: &str, at: Option<Timestamp>) {
        if let Some(at) = at {
            self.changed(key, at);
        }
    }
}

/// A time as Go's `RFC3339Nano` writes it (UTC, fractional seconds without trailing zeros).
pub fn rfc3339_nano(at: Timestamp) -> String {
    at.to_string()
}

/// Sets or removes `key` in `annotations` (dropping the map when empty).
pub fn set_annotation(
    annotations: &mut Option<BTreeMap<String, String>>,
    key: &str,
    value: Option<String>,
) {
    match value {
        Some(value) => {
            annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(key.to_owned(), value);
        }
        None => {
            if let Some(map) = annotations {
                map.remove(key);
                if map.is_empty() {
                    *annotations = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::endpoints::tests::{pod, service};

    #[test]
    fn services_without_selector_or_of_type_external_name_are_not_managed() {
        assert!(managed_selector(&service(json!({}))).is_some());
        assert!(managed_selector(&service(json!({"spec": {"selector": null}}))).is_none());
        let mut empty = service(json!({}));
        empty.spec.as_mut().unwrap().selector = Some(BTreeMap::new());
        assert!(
            managed_selector(&empty).is_none(),
            "an empty selector is none"
        );
        assert!(managed_selector(&service(json!({"spec": {"type": "ExternalName"}}))).is_none());
    }

    #[test]
    fn endpoint_membership_queues_only_the_services_that_select_a_pod() {
        let mut m = Membership::default();
        let web = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        let api = BTreeMap::from([
            ("app".to_owned(), "web".to_owned()),
            ("tier".to_owned(), "api".to_owned()),
        ]);
        m.set_selector("ns/web", Some(&web));
        m.set_selector("ns/api", Some(&api));
        m.set_selector("other/web", Some(&web));
        let a = pod("a", "10.1.0.1", 1, true, json!({}));
        assert_eq!(m.pod_seen((*a).clone()), ["ns/web"]);
        assert!(m.pod_seen((*a).clone()).is_empty(), "nothing changed");
        let mut labelled = (*a).clone();
        labelled.labels.insert("tier".into(), "api".into());
        let mut keys = m.pod_seen(labelled.clone());
        keys.sort();
        assert_eq!(keys, ["ns/api", "ns/web"]);
        let mut unready = labelled.clone();
        unready.ready = false;
        let mut keys = m.pod_seen(unready);
        keys.sort();
        assert_eq!(keys, ["ns/api", "ns/web"]);
        assert_eq!(m.selected("ns", &api).len(), 1);
        assert_eq!(m.selected("other", &web).len(), 0);
        m.set_selector("ns/api", None);
        assert_eq!(m.pod_gone("ns", "uid-a"), ["ns/web"]);
        assert!(m.selected("ns", &web).is_empty());
        assert!(m.pods.is_empty() && m.pods_by_label.is_empty());
    }

    #[test]
    fn endpoint_tracker_holds_a_service_until_the_watch_shows_its_writes() {
        let mut t = Tracker::default();
        let now = Instant::now();
        t.wrote("ns/web", "web-abc", Some(10), None, now);
        assert!(t.is_stale("ns/web", now));
        let seen = t.observed("ns/web", "web-abc", Some(9));
        assert!(!seen.ours && !seen.caught_up);
        assert!(t.is_stale("ns/web", now));
        let seen = t.observed("ns/web", "web-abc", Some(10));
        assert!(seen.ours && seen.caught_up);
        assert!(!t.is_stale("ns/web", now));
        // Already shown by the time the write's answer came: nothing to wait for.
        t.wrote("ns/web", "web-abc", Some(12), Some(Some(12)), now);
        assert!(!t.is_stale("ns/web", now));
        // A deletion is awaited until the watch shows it gone.
        t.wrote("ns/web", "web-abc", None, Some(Some(12)), now);
        assert!(t.is_stale("ns/web", now));
        assert!(!t.observed("ns/web", "web-abc", Some(13)).ours);
        assert!(t.is_stale("ns/web", now));
        assert!(t.observed("ns/web", "web-abc", None).caught_up);
        // Given up on after a while.
        t.wrote("ns/web", "x", Some(20), None, now);
        assert!(!t.is_stale("ns/web", now + TRACK_FOR));
    }
}

//! The cluster zone: the records the Kubernetes DNS specification (schema 1.0.1) asks for, built from Services
//! and EndpointSlices, and the answers to queries for them. No I/O.
//!
//! Records live in one hash map from owner name to [`Node`] (names compare and hash case-insensitively), so a
//! lookup is one hash of the query name. Each Service owns the records derived from it and its EndpointSlices;
//! a change to either recomputes that Service's records only and swaps them in. Every node also counts the
//! records at or below it, so a name that only has descendants (`_tcp.svc.ns.svc.<domain>`, `ns.svc.<domain>`)
//! exists (NODATA) and a name with nothing at or below it does not (NXDOMAIN).
//!
//! Reverse names (`in-addr.arpa`, `ip6.arpa`) are answered only when the zone has a PTR for them; everything
//! else there is someone else's (CoreDNS's `fallthrough in-addr.arpa ip6.arpa`). Pod names
//! `a-b-c-d.<ns>.pod.<domain>` are answered from the name alone, as CoreDNS's `pods insecure`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use gantry_client::k8s_openapi::api::core::v1::Service;
use gantry_client::k8s_openapi::api::discovery::v1::EndpointSlice;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The version of the DNS schema served at `dns-version.<domain>`.
pub const SCHEMA_VERSION: &str = "1.0.1";
/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The deprecated annotation that makes every endpoint of a Service ready for DNS.
pub const TOLERATE_UNREADY: &str = "service.alpha.kubernetes.io/tolerate-unready-endpoints";

/// What the zone serves.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// The cluster domain, e.g. `cluster.local` (a trailing dot is allowed).
    pub domain: String,
    /// The TTL of every record, also the SOA minimum (the TTL of negative answers).
    pub ttl: u32,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        ZoneConfig {
            domain: "cluster.local".into(),
            ttl: 5,
        }
    }
}

/// Why a zone could not be made.
#[derive(Debug, thiserror::Error)]
#[error("invalid cluster domain {domain:?}: {reason}")]
pub struct ZoneError {
    domain: String,
    reason: String,
}

/// Who put a record in the zone: 0 for the zone's own records, else one Service.
type Owner = u32;
const ZONE_OWNER: Owner = 0;

#[derive(Debug)]
struct Entry {
    owner: Owner,
    record: Record,
}

/// One owner name: its records, and how many records are at or below it (0 never stays in the map).
#[derive(Debug, Default)]
struct Node {
    entries: Vec<Entry>,
    weight: u32,
}

/// A Service port as DNS needs it: SRV records exist for named ports only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Port {
    name: String,
    /// Lowercase: `tcp`, `udp`, `sctp`.
    protocol: String,
    number: u16,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// ClusterIP, NodePort, LoadBalancer: one address per family.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the ready endpoints' addresses.
    Headless,
    /// A CNAME to the external name.
    ExternalName(Name),
    /// No address yet, or nothing DNS can say.
    Nothing,
}

#[derive(Debug)]
struct ServiceInfo {
    kind: Kind,
    ports: Vec<Port>,
    publish_not_ready: bool,
}

#[derive(Debug)]
struct EndpointInfo {
    addresses: Vec<IpAddr>,
    hostname: Option<String>,
    ready: bool,
}

#[derive(Debug)]
struct SliceInfo {
    endpoints: Vec<EndpointInfo>,
    ports: Vec<Port>,
}

/// What the zone holds for one Service (`namespace/name`): the Service, its slices, what it published.
#[derive(Debug)]
struct ServiceState {
    owner: Owner,
    service: Option<ServiceInfo>,
    slices: HashMap<String, SliceInfo>,
    /// Owner names of its records in the zone, each with its number of records.
    published: Vec<(Name, u32)>,
    /// Names of its PTR records.
    reverse: Vec<Name>,
}

/// The records of the cluster domain.
#[derive(Debug)]
pub struct Zone {
    ttl: u32,
    apex: Name,
    apex_labels: usize,
    names: HashMap<Name, Node>,
    reverse: HashMap<Name, Vec<Entry>>,
    services: HashMap<String, ServiceState>,
    /// EndpointSlice (`namespace/name`) → the Service key it was filed under.
    slices: HashMap<String, String>,
    next_owner: Owner,
    soa: Record,
    serial: u32,
    complete: bool,
}

/// What a query gets.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // answers are the common case: boxing them would allocate per query
pub enum Lookup<'a> {
    /// Not the zone's: ask upstream.
    Forward,
    /// The zone's, but it is not complete yet (SERVFAIL, so clients retry rather than cache a negative answer).
    NotReady,
    /// An authoritative answer.
    Answer(Answer<'a>),
}

/// An authoritative answer, borrowing the zone's records.
#[derive(Debug)]
pub struct Answer<'a> {
    /// NOERROR (records, or none: NODATA) or NXDOMAIN.
    pub code: ResponseCode,
    entries: &'a [Entry],
    /// Which of `entries` answer: one type, or all (ANY).
    filter: Option<RecordType>,
    /// An answer made from the name (pod records).
    made: Option<Record>,
    /// The SOA, in the authority section of negative answers.
    pub soa: Option<&'a Record>,
    /// Records of the names SRV answers point to.
    pub additionals: Vec<&'a Record>,
    /// When the answer is a CNAME: its target, which the server resolves further.
    pub cname_target: Option<&'a Name>,
}

impl<'a> Answer<'a> {
    fn records(entries: &'a [Entry], filter: Option<RecordType>) -> Self {
        Answer {
            code: ResponseCode::NoError,
            entries,
            filter,
            made: None,
            soa: None,
            additionals: Vec::new(),
            cname_target: None,
        }
    }

    fn negative(code: ResponseCode, soa: &'a Record) -> Self {
        Answer {
            code,
            entries: &[],
            filter: None,
            made: None,
            soa: Some(soa),
            additionals: Vec::new(),
            cname_target: None,
        }
    }

    fn matches(&self, entry: &Entry) -> bool {
        self.filter.is_none_or(|t| entry.record.record_type() == t)
    }

    /// The answer section, started at the `rotate`-th record (modulo their number) so that clients taking
    /// the first address spread over a headless Service's endpoints.
    pub fn answers(&self, rotate: usize) -> impl Iterator<Item = &Record> + Clone {
        let matching = self.entries.iter().filter(|e| self.matches(e));
        let count = if rotate == 0 {
            0
        } else {
            matching.clone().count()
        };
        let skip = if count > 1 { rotate % count } else { 0 };
        matching
            .clone()
            .skip(skip)
            .chain(matching.take(skip))
            .map(|e| &e.record)
            .chain(self.made.iter())
    }

    /// The answer section as owned records (tests, the CNAME chase).
    pub fn answer_records(&self) -> Vec<Record> {
        self.answers(0).cloned().collect()
    }
}

fn dns_name(text: &str) -> Option<Name> {
    let mut name = Name::from_ascii(text).ok()?;
    name.set_fqdn(true);
    Some(name.to_lowercase())
}

fn record(name: Name, ttl: u32, data: RData) -> Record {
    Record::from_rdata(name, ttl, data)
}

fn address_record(name: Name, ttl: u32, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(ip) => record(name, ttl, RData::A(A(ip))),
        IpAddr::V6(ip) => record(name, ttl, RData::AAAA(AAAA(ip))),
    }
}

/// The label the specification leaves to the implementation for an endpoint without `hostname`: its address
/// with dashes (`10-1-2-3`, `fd00--1`), as CoreDNS names them.
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string().replace('.', "-"),
        IpAddr::V6(ip) => ip.to_string().replace(':', "-"),
    }
}

/// The address a pod label (`10-1-2-3`, `fd00--1`) stands for.
fn undashed(label: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(label).ok()?;
    if let Ok(ip) = text.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(ip));
    }
    text.replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

fn service_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn ports_of<'p>(
    ports: impl Iterator<Item = (Option<&'p String>, Option<&'p String>, i32)>,
) -> Vec<Port> {
    let mut out: Vec<Port> = ports
        .filter_map(|(name, protocol, number)| {
            let name = name.filter(|n| !n.is_empty())?;
            Some(Port {
                name: name.to_ascii_lowercase(),
                protocol: protocol.map_or("tcp", String::as_str).to_ascii_lowercase(),
                number: u16::try_from(number).ok()?,
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn service_info(service: &Service) -> ServiceInfo {
    let spec = service.spec.as_ref();
    let publish_not_ready = spec
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
        || service
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(TOLERATE_UNREADY))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let ports = ports_of(
        spec.and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .map(|p| (p.name.as_ref(), p.protocol.as_ref(), p.port)),
    );
    let kind = match spec {
        None => Kind::Nothing,
        Some(spec) if spec.type_.as_deref() == Some("ExternalName") => spec
            .external_name
            .as_deref()
            .map(|n| n.trim_end_matches('.'))
            .filter(|n| !n.is_empty() && n.parse::<IpAddr>().is_err())
            .and_then(dns_name)
            .map_or(Kind::Nothing, Kind::ExternalName),
        Some(spec) => {
            let primary = spec.cluster_ip.as_deref().unwrap_or("");
            if primary == "None" {
                Kind::Headless
            } else {
                let mut ips: Vec<IpAddr> = spec
                    .cluster_ips
                    .iter()
                    .flatten()
                    .map(String::as_str)
                    .chain(std::iter::once(primary))
                    .filter_map(|ip| ip.parse().ok())
                    .collect();
                let mut seen = HashSet::new();
                ips.retain(|ip| seen.insert(*ip));
                if ips.is_empty() {
                    Kind::Nothing
                } else {
                    Kind::ClusterIp(ips)
                }
            }
        }
    };
    ServiceInfo {
        kind,
        ports,
        publish_not_ready,
    }
}

fn slice_info(slice: &EndpointSlice) -> SliceInfo {
    let ip_slice = matches!(slice.address_type.as_str(), "IPv4" | "IPv6");
    let endpoints = slice
        .endpoints
        .iter()
        .filter(|_| ip_slice)
        .map(|e| EndpointInfo {
            addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            hostname: e
                .hostname
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(str::to_ascii_lowercase),
            // A nil `ready` means ready (the API's documented reading).
            ready: e.conditions.as_ref().and_then(|c| c.ready) != Some(false),
        })
        .collect();
    let ports = ports_of(
        slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Some((p.name.as_ref(), p.protocol.as_ref(), p.port?))),
    );
    SliceInfo { endpoints, ports }
}

impl Zone {
    /// An empty zone for `config.domain`, complete (see [`Zone::set_complete`]).
    pub fn new(config: &ZoneConfig) -> Result<Zone, ZoneError> {
        let error = |reason: &str| ZoneError {
            domain: config.domain.clone(),
            reason: reason.into(),
        };
        let domain = config.domain.trim_end_matches('.');
        if domain.is_empty() {
            return Err(error("empty"));
        }
        let apex = dns_name(&format!("{domain}.")).ok_or_else(|| error("not a domain name"))?;
        let child =
            |label: &str| dns_name(&format!("{label}.{domain}.")).ok_or_else(|| error("too long"));
        let soa = record(
            apex.clone(),
            config.ttl,
            RData::SOA(SOA::new(
                child("ns.dns")?,
                child("hostmaster")?,
                1,
                7200,
                1800,
                86400,
                config.ttl,
            )),
        );
        let mut zone = Zone {
            ttl: config.ttl,
            apex_labels: usize::from(apex.num_labels()),
            apex: apex.clone(),
            names: HashMap::new(),
            reverse: HashMap::new(),
            services: HashMap::new(),
            slices: HashMap::new(),
            next_owner: ZONE_OWNER + 1,
            soa: soa.clone(),
            serial: 1,
            complete: true,
        };
        let version = record(
            child("dns-version")?,
            config.ttl,
            RData::TXT(TXT::new(vec![SCHEMA_VERSION.into()])),
        );
        zone.add(ZONE_OWNER, vec![soa, version]);
        // `pod.<domain>` has every pod name below it (answered from the name), so it always exists.
        let pod = child("pod")?;
        zone.names.entry(pod).or_default().weight += 1;
        Ok(zone)
    }

    /// The cluster domain (fully qualified, lowercase).
    pub fn apex(&self) -> &Name {
        &self.apex
    }

    /// Whether the zone has everything (both watches listed). An incomplete zone answers SERVFAIL for its
    /// names; forwarding goes on.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    pub fn set_complete(&mut self, complete: bool) {
        self.complete = complete;
    }

    /// How many Services the zone knows.
    pub fn service_count(&self) -> usize {
        self.services
            .values()
            .filter(|s| s.service.is_some())
            .count()
    }

    /// Adds or replaces a Service.
    pub fn apply_service(&mut self, service: &Service) {
        let (Some(namespace), Some(name)) = (
            service.metadata.namespace.as_deref(),
            service.metadata.name.as_deref(),
        ) else {
            return;
        };
        let key = service_key(namespace, name);
        let info = service_info(service);
        self.state(&key).service = Some(info);
        self.rebuild(&key);
    }

    /// Removes a Service (its EndpointSlices stay until they are deleted too).
    pub fn delete_service(&mut self, namespace: &str, name: &str) {
        let key = service_key(namespace, name);
        if let Some(state) = self.services.get_mut(&key) {
            state.service = None;
            self.rebuild(&key);
        }
    }

    /// Adds or replaces an EndpointSlice (one without the `kubernetes.io/service-name` label counts as
    /// deleted).
    pub fn apply_endpoint_slice(&mut self, slice: &EndpointSlice) {
        let (Some(namespace), Some(name)) = (
            slice.metadata.namespace.as_deref(),
            slice.metadata.name.as_deref(),
        ) else {
            return;
        };
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .filter(|s| !s.is_empty());
        let Some(service) = service else {
            self.delete_endpoint_slice(namespace, name);
            return;
        };
        let slice_key = service_key(namespace, name);
        let key = service_key(namespace, service);
        if self.slices.get(&slice_key).is_some_and(|k| *k != key) {
            self.delete_endpoint_slice(namespace, name);
        }
        self.slices.insert(slice_key, key.clone());
        let info = slice_info(slice);
        self.state(&key).slices.insert(name.to_owned(), info);
        self.rebuild(&key);
    }

    /// Removes an EndpointSlice.
    pub fn delete_endpoint_slice(&mut self, namespace: &str, name: &str) {
        let Some(key) = self.slices.remove(&service_key(namespace, name)) else {
            return;
        };
        if let Some(state) = self.services.get_mut(&key) {
            state.slices.remove(name);
            self.rebuild(&key);
        }
    }

    /// Keys (`namespace/name`) of the Services the zone holds.
    pub fn service_keys(&self) -> Vec<String> {
        self.services
            .iter()
            .filter(|(_, s)| s.service.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Keys (`namespace/name`) of the EndpointSlices the zone holds.
    pub fn endpoint_slice_keys(&self) -> Vec<String> {
        self.slices.keys().cloned().collect()
    }

    fn state(&mut self, key: &str) -> &mut ServiceState {
        if !self.services.contains_key(key) {
            let owner = self.next_owner;
            self.next_owner = self.next_owner.wrapping_add(1).max(ZONE_OWNER + 1);
            self.services.insert(
                key.to_owned(),
                ServiceState {
                    owner,
                    service: None,
                    slices: HashMap::new(),
                    published: Vec::new(),
                    reverse: Vec::new(),
                },
            );
        }
        self.services
            .get_mut(key)
            .expect("the state was just inserted")
    }

    /// Recomputes the records of one Service and swaps them in.
    fn rebuild(&mut self, key: &str) {
        let Some(state) = self.services.get_mut(key) else {
            return;
        };
        let owner = state.owner;
        let published = std::mem::take(&mut state.published);
        let reverse = std::mem::take(&mut state.reverse);
        let (records, ptrs) = match self.services.get(key) {
            Some(state) => self.derive(key, state),
            None => (Vec::new(), Vec::new()),
        };
        self.remove(owner, &published);
        for name in &reverse {
            if let Some(entries) = self.reverse.get_mut(name) {
                entries.retain(|e| e.owner != owner);
                if entries.is_empty() {
                    self.reverse.remove(name);
                }
            }
        }
        let published = self.add(owner, records);
        let mut reverse = Vec::with_capacity(ptrs.len());
        for ptr in ptrs {
            reverse.push(ptr.name.clone());
            self.reverse
                .entry(ptr.name.clone())
                .or_default()
                .push(Entry { owner, record: ptr });
        }
        reverse.dedup();
        self.bump_serial();
        let gone = {
            let Some(state) = self.services.get_mut(key) else {
                return;
            };
            state.published = published;
            state.reverse = reverse;
            state.service.is_none() && state.slices.is_empty()
        };
        if gone {
            self.services.remove(key);
        }
    }

    fn bump_serial(&mut self) {
        self.serial = self.serial.wrapping_add(1);
        let serial = self.serial;
        if let RData::SOA(soa) = &mut self.soa.data {
            soa.serial = serial;
        }
        if let Some(node) = self.names.get_mut(&self.apex) {
            for entry in &mut node.entries {
                if let RData::SOA(soa) = &mut entry.record.data {
                    soa.serial = serial;
                }
            }
        }
    }

    /// The names from `name` up to the apex, `name` first.
    fn lineage(&self, name: &Name) -> impl Iterator<Item = Name> {
        let labels = usize::from(name.num_labels());
        let apex = self.apex_labels;
        let name = name.clone();
        (apex..=labels).rev().map(move |n| {
            let mut ancestor = name.trim_to(n);
            ancestor.set_fqdn(true);
            ancestor
        })
    }

    /// Puts records in the zone (all at or below the apex); what each owner name got.
    fn add(&mut self, owner: Owner, records: Vec<Record>) -> Vec<(Name, u32)> {
        let mut counts: HashMap<Name, u32> = HashMap::new();
        for record in records {
            let name = record.name.clone();
            *counts.entry(name.clone()).or_default() += 1;
            self.names
                .entry(name)
                .or_default()
                .entries
                .push(Entry { owner, record });
        }
        for (name, count) in &counts {
            for ancestor in self.lineage(name).collect::<Vec<_>>() {
                self.names.entry(ancestor).or_default().weight += count;
            }
        }
        counts.into_iter().collect()
    }

    fn remove(&mut self, owner: Owner, published: &[(Name, u32)]) {
        for (name, count) in published {
            if let Some(node) = self.names.get_mut(name) {
                node.entries.retain(|e| e.owner != owner);
            }
            for ancestor in self.lineage(name).collect::<Vec<_>>() {
                if let Some(node) = self.names.get_mut(&ancestor) {
                    node.weight = node.weight.saturating_sub(*count);
                    if node.weight == 0 {
                        self.names.remove(&ancestor);
                    }
                }
            }
        }
    }

    /// The records one Service stands for: those in the zone, and its PTRs.
    fn derive(&self, key: &str, state: &ServiceState) -> (Vec<Record>, Vec<Record>) {
        let mut records = Vec::new();
        let mut ptrs = Vec::new();
        let Some(info) = &state.service else {
            return (records, ptrs);
        };
        let Some((namespace, name)) = key.split_once('/') else {
            return (records, ptrs);
        };
        let domain = self.apex.to_ascii();
        let Some(base) = dns_name(&format!("{name}.{namespace}.svc.{domain}")) else {
            return (records, ptrs);
        };
        let ttl = self.ttl;
        let srv_name = |port: &Port| -> Option<Name> {
            base.prepend_label(format!("_{}", port.protocol))
                .and_then(|n| n.prepend_label(format!("_{}", port.name)))
                .ok()
        };
        match &info.kind {
            Kind::Nothing => {}
            Kind::ExternalName(target) => {
                records.push(record(
                    base.clone(),
                    ttl,
                    RData::CNAME(CNAME(target.clone())),
                ));
            }
            Kind::ClusterIp(ips) => {
                for ip in ips {
                    records.push(address_record(base.clone(), ttl, *ip));
                    ptrs.push(record(Name::from(*ip), ttl, RData::PTR(PTR(base.clone()))));
                }
                for port in &info.ports {
                    if let Some(owner) = srv_name(port) {
                        records.push(record(
                            owner,
                            ttl,
                            RData::SRV(SRV::new(0, 100, port.number, base.clone())),
                        ));
                    }
                }
            }
            Kind::Headless => {
                // Ready addresses of all slices, one each, with the endpoint's host label.
                let mut addresses: BTreeMap<IpAddr, Name> = BTreeMap::new();
                let mut srvs: BTreeSet<(Port, Name)> = BTreeSet::new();
                let mut slices: Vec<(&String, &SliceInfo)> = state.slices.iter().collect();
                slices.sort_by(|a, b| a.0.cmp(b.0));
                for (_, slice) in slices {
                    for endpoint in &slice.endpoints {
                        if !(endpoint.ready || info.publish_not_ready) {
                            continue;
                        }
                        for ip in &endpoint.addresses {
                            let label = endpoint.hostname.clone().unwrap_or_else(|| dashed(*ip));
                            let Ok(host) = base.prepend_label(label) else {
                                continue;
                            };
                            for port in &slice.ports {
                                srvs.insert((port.clone(), host.clone()));
                            }
                            addresses.entry(*ip).or_insert(host);
                        }
                    }
                }
                for (ip, host) in &addresses {
                    records.push(address_record(base.clone(), ttl, *ip));
                    records.push(address_record(host.clone(), ttl, *ip));
                    ptrs.push(record(Name::from(*ip), ttl, RData::PTR(PTR(host.clone()))));
                }
                for (port, host) in srvs {
                    if let Some(owner) = srv_name(&port) {
                        records.push(record(
                            owner,
                            ttl,
                            RData::SRV(SRV::new(0, 100, port.number, host)),
                        ));
                    }
                }
            }
        }
        (records, ptrs)
    }

    /// The answer to `name` `qtype` (class IN).
    pub fn lookup(&self, name: &Name, qtype: RecordType) -> Lookup<'_> {
        if !self.apex.zone_of(name) {
            return self.lookup_reverse(name, qtype);
        }
        if !self.complete {
            return Lookup::NotReady;
        }
        let any = qtype == RecordType::ANY;
        let Some(node) = self.names.get(name) else {
            return self.lookup_pod(name, qtype);
        };
        if !any && qtype != RecordType::CNAME {
            let cname = node.entries.iter().find_map(|e| match &e.record.data {
                RData::CNAME(target) => Some(&target.0),
                _ => None,
            });
            if let Some(target) = cname {
                let mut answer = Answer::records(&node.entries, Some(RecordType::CNAME));
                answer.cname_target = Some(target);
                return Lookup::Answer(answer);
            }
        }
        let mut answer = Answer::records(&node.entries, (!any).then_some(qtype));
        if answer.answers(0).next().is_none() {
            answer.soa = Some(&self.soa);
            return Lookup::Answer(answer);
        }
        if qtype == RecordType::SRV {
            let mut targets: Vec<&Name> = Vec::new();
            for entry in &node.entries {
                if let RData::SRV(srv) = &entry.record.data
                    && !targets.contains(&&srv.target)
                {
                    targets.push(&srv.target);
                }
            }
            for target in targets {
                if let Some(target) = self.names.get(target) {
                    answer.additionals.extend(
                        target
                            .entries
                            .iter()
                            .filter(|e| {
                                matches!(e.record.record_type(), RecordType::A | RecordType::AAAA)
                            })
                            .map(|e| &e.record),
                    );
                }
            }
        }
        Lookup::Answer(answer)
    }

    fn lookup_reverse(&self, name: &Name, qtype: RecordType) -> Lookup<'_> {
        if matches!(qtype, RecordType::PTR | RecordType::ANY)
            && let Some(entries) = self.reverse.get(name)
        {
            if !self.complete {
                return Lookup::NotReady;
            }
            return Lookup::Answer(Answer::records(entries, None));
        }
        Lookup::Forward
    }

    /// Names under `pod.<domain>`: `<dashed-ip>.<ns>.pod.<domain>` has the address in its first label.
    fn lookup_pod(&self, name: &Name, qtype: RecordType) -> Lookup<'_> {
        let nxdomain = Lookup::Answer(Answer::negative(ResponseCode::NXDomain, &self.soa));
        let labels = usize::from(name.num_labels());
        if labels < self.apex_labels + 2 {
            return nxdomain;
        }
        let mut iter = name.iter();
        let below = labels - self.apex_labels;
        let Some(pod_label) = name.iter().nth(below - 1) else {
            return nxdomain;
        };
        if !pod_label.eq_ignore_ascii_case(b"pod") || below > 3 {
            return nxdomain;
        }
        if below == 2 {
            // `<ns>.pod.<domain>`: any namespace has pod names below it.
            return Lookup::Answer(Answer::negative(ResponseCode::NoError, &self.soa));
        }
        let Some(ip) = iter.next().and_then(undashed) else {
            return nxdomain;
        };
        let wanted = match ip {
            IpAddr::V4(_) => RecordType::A,
            IpAddr::V6(_) => RecordType::AAAA,
        };
        if qtype != wanted && qtype != RecordType::ANY {
            return Lookup::Answer(Answer::negative(ResponseCode::NoError, &self.soa));
        }
        let mut answer = Answer::records(&[], None);
        answer.made = Some(address_record(name.to_lowercase(), self.ttl, ip));
        Lookup::Answer(answer)
    }
}

#[cfg(test)]
mod tests;

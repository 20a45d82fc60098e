//! What the table should hold for a set of Services and EndpointSlices: [`desired`], a pure function.
//!
//! The semantics are kube-proxy's nftables mode (KEP-3866): ClusterIPs, NodePorts (every local address, or
//! the configured ones), externalIPs and LoadBalancer ingress IPs; only ready endpoints, serving terminating
//! ones only when none is ready; `internalTrafficPolicy`/`externalTrafficPolicy: Local`; ClientIP session
//! affinity with per-endpoint dynamic sets; masquerade of traffic from outside the pod network to a
//! ClusterIP, of external traffic with policy Cluster and of hairpin traffic; Services without usable
//! endpoints rejected (TCP reset, ICMP port unreachable) through the `no-endpoint-*` maps, dropped when
//! only the local policy leaves none. Headless and ExternalName Services get nothing.
//!
//! The layout differs where kube-proxy's costs too much in the kernel at 10,000 Services: each chain,
//! rule, named set and anonymous set costs a sync time, and some kernel paths are linear in the number of
//! sets. So a Service without session affinity has no chain of its own: its destinations are elements of
//! `service-ips` / `service-nodeports` that jump to a chain shared by every Service with as many endpoints
//! (`pick-N`), which DNATs to `endpoints[daddr . proto . dport . numgen random mod N]`. Hairpin is
//! recognised after DNAT (`hairpin` holds `ip . ip` for this node's endpoints). Services with session
//! affinity keep kube-proxy's own chains: `service-…` (affinity lookups, then `numgen random mod N vmap`),
//! `local-…`, `external-…` and one `endpoint-…` chain and `affinity-…` set per endpoint.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv4Addr;
use std::sync::Arc;

use gantry_client::k8s_openapi::api::core::v1::Service;
use gantry_client::k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::config::{MASQUERADE_MARK, ProxyConfig};
use crate::model::{Chain, Claim, Part, Proto, Ruleset, SetDef, Shared, UdpFrontend};

/// The label that names an EndpointSlice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Services with this label are served by another proxy (as kube-proxy skips them).
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// ClientIP affinity's default timeout (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: i32 = 10800;

// Maps and sets.
pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
/// The endpoint maps, one per protocol (`endpoints-tcp`, …): see [`slot_map`].
pub const ENDPOINTS: &str = "endpoints";
pub const NODEPORT_ENDPOINTS: &str = "nodeport-endpoints";
pub const SHORT_CIRCUIT_ENDPOINTS: &str = "short-circuit-endpoints";
pub const NODEPORT_SHORT_CIRCUIT_ENDPOINTS: &str = "nodeport-short-circuit-endpoints";

/// The endpoint map `kind` (e.g. [`ENDPOINTS`]) of protocol `proto`: keys `ip . port . slot` (NodePort maps:
/// `port . slot`), values `ip . port`.
pub fn slot_map(kind: &str, proto: Proto) -> String {
    format!("{kind}-{proto}")
}
pub const CLUSTER_IPS: &str = "cluster-ips";
pub const NODEPORT_IPS: &str = "nodeport-ips";
pub const HAIRPIN: &str = "hairpin";

// Fixed chains.
pub const SERVICES: &str = "services";
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
pub const MASQUERADING: &str = "masquerading";
pub const POD_EGRESS: &str = "pod-egress";
pub const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
pub const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
pub const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";
pub const REJECT_CHAIN: &str = "reject-chain";

const REJECT: &str = "goto reject-chain";
const DROP: &str = "drop";

/// The table for `services` and `endpoint_slices` (IPv4 only).
pub fn desired<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    endpoint_slices: impl IntoIterator<Item = &'a EndpointSlice>,
    config: &ProxyConfig,
) -> Ruleset {
    let index = SliceIndex::new(endpoint_slices);
    let mut parts = BTreeMap::new();
    for service in services {
        let Some((namespace, name)) = service_name(service) else {
            continue;
        };
        let part = service_part(service, index.slices(namespace, name), config);
        if !part.is_empty() {
            parts.insert(format!("{namespace}/{name}"), Arc::new(part));
        }
    }
    assemble(config, parts)
}

/// A Service's namespace and name.
pub fn service_name(service: &Service) -> Option<(&str, &str)> {
    let name = service.metadata.name.as_deref()?;
    Some((
        service.metadata.namespace.as_deref().unwrap_or("default"),
        name,
    ))
}

/// EndpointSlices by the Service they belong to.
#[derive(Debug, Default)]
pub struct SliceIndex<'a> {
    by_service: FnvMap<&'a str, FnvMap<&'a str, Vec<&'a EndpointSlice>>>,
}

impl<'a> SliceIndex<'a> {
    pub fn new(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> SliceIndex<'a> {
        let mut by_service: FnvMap<&str, FnvMap<&str, Vec<&EndpointSlice>>> = FnvMap::default();
        for slice in slices {
            let Some(service) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            let namespace = slice.metadata.namespace.as_deref().unwrap_or("default");
            by_service
                .entry(namespace)
                .or_default()
                .entry(service.as_str())
                .or_default()
                .push(slice);
        }
        for slices in by_service.values_mut().flat_map(|s| s.values_mut()) {
            slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        }
        SliceIndex { by_service }
    }

    /// The slices of Service `namespace/name`, by slice name.
    pub fn slices(&self, namespace: &str, name: &str) -> &[&'a EndpointSlice] {
        self.by_service
            .get(namespace)
            .and_then(|s| s.get(name))
            .map_or(&[], Vec::as_slice)
    }
}

/// One endpoint of one Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Endpoint {
    ip: Ipv4Addr,
    port: u16,
    ready: bool,
    serving: bool,
    terminating: bool,
    local: bool,
}

impl Endpoint {
    fn value(&self) -> String {
        format!("{} . {}", self.ip, self.port)
    }

    fn suffix(&self) -> String {
        format!("{}/{}", self.ip, self.port)
    }
}

/// The endpoints of the Service port named `port_name` with `protocol`, by address and port.
fn endpoints_of(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: &str,
    node: &str,
) -> Vec<Endpoint> {
    let mut found: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && p.protocol.as_deref().unwrap_or("TCP") == protocol
        }) else {
            continue;
        };
        let Some(port) = port
            .port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let Some(ip) = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let conditions = endpoint.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let found_endpoint = Endpoint {
                ip,
                port,
                ready,
                serving: conditions.and_then(|c| c.serving).unwrap_or(ready),
                terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
                local: endpoint.node_name.as_deref() == Some(node),
            };
            // The same endpoint in two slices (during a move): the readier copy counts.
            found
                .entry((ip, port))
                .and_modify(|e| {
                    if found_endpoint.ready && !e.ready {
                        *e = found_endpoint;
                    }
                })
                .or_insert(found_endpoint);
        }
    }
    found.into_values().collect()
}

/// Ready endpoints; when there is none, the serving terminating ones (kube-proxy's fallback).
fn usable(endpoints: &[Endpoint], local_only: bool) -> Vec<Endpoint> {
    let here = |e: &&Endpoint| !local_only || e.local;
    let ready: Vec<Endpoint> = endpoints
        .iter()
        .filter(here)
        .filter(|e| e.ready)
        .copied()
        .collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints
        .iter()
        .filter(here)
        .filter(|e| e.serving && e.terminating)
        .copied()
        .collect()
}

/// The protocol of a Service port as nft names it, if the proxy serves it.
fn protocol(name: Option<&str>, config: &ProxyConfig) -> Option<Proto> {
    match name.unwrap_or("TCP") {
        "TCP" => Some(Proto::Tcp),
        "UDP" => Some(Proto::Udp),
        "SCTP" if config.sctp => Some(Proto::Sctp),
        _ => None,
    }
}

/// What one Service adds to the table (empty for Services the proxy does not serve).
pub fn service_part(service: &Service, slices: &[&EndpointSlice], config: &ProxyConfig) -> Part {
    let mut part = Part::default();
    let Some((namespace, name)) = service_name(service) else {
        return part;
    };
    let Some(spec) = service.spec.as_ref() else {
        return part;
    };
    let proxied_elsewhere = service
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL));
    if spec.type_.as_deref() == Some("ExternalName") || proxied_elsewhere {
        return part;
    }
    // The first IPv4 cluster IP; none (headless, or IPv6 only): nothing to do.
    let cluster_ip = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .find_map(|ip| ip.parse::<Ipv4Addr>().ok());
    let Some(cluster_ip) = cluster_ip else {
        return part;
    };
    let mut external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if spec.type_.as_deref() == Some("LoadBalancer") {
        let ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        external_ips.extend(
            ingress
                .into_iter()
                .flatten()
                .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
    }
    let mut seen = BTreeSet::new();
    external_ips.retain(|ip| seen.insert(*ip));
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");

    let mut served_any = false;
    for port in spec.ports.iter().flatten() {
        let Some(proto) = protocol(port.protocol.as_deref(), config) else {
            continue;
        };
        let Some(service_port) = u16::try_from(port.port).ok().filter(|p| *p > 0) else {
            continue;
        };
        let node_port = port
            .node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .filter(|_| matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")));
        let port_name = port.name.as_deref().unwrap_or("");
        let all = endpoints_of(
            slices,
            port_name,
            port.protocol.as_deref().unwrap_or("TCP"),
            &config.node_name,
        );
        let external = node_port.is_some() || !external_ips.is_empty();
        let ctx = PortContext {
            base: format!("{namespace}/{name}/{proto}/{port_name}"),
            proto,
            port: service_port,
            cluster_ip,
            external_ips: &external_ips,
            node_port,
            cluster: usable(&all, false),
            local: usable(&all, true),
            internal_local,
            external_local: external && spec.external_traffic_policy.as_deref() == Some("Local"),
        };
        match affinity_timeout {
            Some(timeout) => ctx.affinity_rules(&mut part, timeout, config),
            None => ctx.rules(&mut part),
        }
        served_any = true;
    }
    if served_any {
        part.add_element(CLUSTER_IPS, cluster_ip.to_string(), String::new());
        part.claims.push(Claim::ClusterIp(cluster_ip));
    }
    part
}

/// One Service port and its endpoints by policy.
struct PortContext<'a> {
    /// `namespace/name/proto/portname`, the base of its chain and set names.
    base: String,
    proto: Proto,
    port: u16,
    cluster_ip: Ipv4Addr,
    external_ips: &'a [Ipv4Addr],
    node_port: Option<u16>,
    /// Endpoints for policy Cluster and for policy Local.
    cluster: Vec<Endpoint>,
    local: Vec<Endpoint>,
    internal_local: bool,
    external_local: bool,
}

impl PortContext<'_> {
    /// The key of a destination in the endpoint maps (their protocol is the map's).
    fn slot_key(&self, ip: Ipv4Addr) -> String {
        format!("{ip} . {}", self.port)
    }

    fn key(&self, ip: Ipv4Addr) -> String {
        format!("{ip} . {} . {}", self.proto, self.port)
    }

    fn nodeport_key(&self, node_port: u16) -> String {
        format!("{} . {node_port}", self.proto)
    }

    fn internal(&self) -> &[Endpoint] {
        if self.internal_local {
            &self.local
        } else {
            &self.cluster
        }
    }

    fn udp(&self, part: &mut Part, ip: Option<Ipv4Addr>, port: u16, endpoints: &[&[Endpoint]]) {
        if self.proto != Proto::Udp {
            return;
        }
        let ips = part.udp.entry(UdpFrontend { ip, port }).or_default();
        ips.extend(endpoints.iter().flat_map(|e| e.iter().map(|e| e.ip)));
    }

    fn note_local(&self, part: &mut Part, endpoints: &[Endpoint]) {
        part.local_endpoints
            .extend(endpoints.iter().filter(|e| e.local).map(|e| e.ip));
    }

    /// Elements `slot_key . i : endpoint` of the `kind` endpoint map of this port's protocol.
    fn slots(&self, part: &mut Part, kind: &str, slot_key: &str, endpoints: &[Endpoint]) {
        let map = slot_map(kind, self.proto);
        for (i, endpoint) in endpoints.iter().enumerate() {
            part.add_element(&map, format!("{slot_key} . {i}"), endpoint.value());
        }
    }

    /// The rules of a port without session affinity: elements only.
    fn rules(&self, part: &mut Part) {
        let has_endpoints = !self.cluster.is_empty();
        let (cluster, local) = (self.cluster.len(), self.local.len());
        self.note_local(part, &self.cluster);
        self.note_local(part, &self.local);

        let proto = self.proto;
        let key = self.key(self.cluster_ip);
        part.claims
            .push(Claim::Ip(self.cluster_ip, self.proto, self.port));
        let internal = self.internal();
        if !has_endpoints {
            part.add_element(NO_ENDPOINT_SERVICES, key, REJECT.into());
        } else if internal.is_empty() {
            part.add_element(NO_ENDPOINT_SERVICES, key, DROP.into());
        } else {
            let pick = Shared::Pick {
                nodeport: false,
                proto,
                n: internal.len(),
            };
            part.needs.insert(pick);
            self.slots(part, ENDPOINTS, &self.slot_key(self.cluster_ip), internal);
            part.add_element(SERVICE_IPS, key, format!("goto {}", pick.name()));
            self.udp(part, Some(self.cluster_ip), self.port, &[internal]);
        }

        let external = |nodeport: bool| {
            if self.external_local {
                Shared::ExternalLocal {
                    nodeport,
                    proto,
                    cluster,
                    local,
                }
            } else {
                Shared::External {
                    nodeport,
                    proto,
                    n: cluster,
                }
            }
        };
        let used: &[&[Endpoint]] = if self.external_local {
            &[&self.cluster, &self.local]
        } else {
            &[&self.cluster]
        };
        for ip in self.external_ips {
            let key = self.key(*ip);
            part.claims.push(Claim::Ip(*ip, self.proto, self.port));
            if !has_endpoints {
                part.add_element(NO_ENDPOINT_SERVICES, key, REJECT.into());
                continue;
            }
            let chain = external(false);
            part.needs.insert(chain);
            let slot_key = self.slot_key(*ip);
            if self.external_local {
                self.slots(part, SHORT_CIRCUIT_ENDPOINTS, &slot_key, &self.cluster);
                self.slots(part, ENDPOINTS, &slot_key, &self.local);
                if self.local.is_empty() {
                    part.add_element(NO_ENDPOINT_SERVICES, key.clone(), DROP.into());
                }
            } else {
                self.slots(part, ENDPOINTS, &slot_key, &self.cluster);
            }
            part.add_element(SERVICE_IPS, key, format!("goto {}", chain.name()));
            self.udp(part, Some(*ip), self.port, used);
        }
        if let Some(node_port) = self.node_port {
            let key = self.nodeport_key(node_port);
            part.claims.push(Claim::NodePort(self.proto, node_port));
            if !has_endpoints {
                part.add_element(NO_ENDPOINT_NODEPORTS, key, REJECT.into());
                return;
            }
            let chain = external(true);
            part.needs.insert(chain);
            let slot_key = node_port.to_string();
            if self.external_local {
                self.slots(
                    part,
                    NODEPORT_SHORT_CIRCUIT_ENDPOINTS,
                    &slot_key,
                    &self.cluster,
                );
                self.slots(part, NODEPORT_ENDPOINTS, &slot_key, &self.local);
                if self.local.is_empty() {
                    part.add_element(NO_ENDPOINT_NODEPORTS, key.clone(), DROP.into());
                }
            } else {
                self.slots(part, NODEPORT_ENDPOINTS, &slot_key, &self.cluster);
            }
            part.add_element(SERVICE_NODEPORTS, key, format!("goto {}", chain.name()));
            self.udp(part, None, node_port, used);
        }
    }

    /// The rules of a port with ClientIP session affinity: kube-proxy's per-Service chains.
    fn affinity_rules(&self, part: &mut Part, timeout: i32, config: &ProxyConfig) {
        let has_endpoints = !self.cluster.is_empty();
        let service_chain = format!("service-{}", self.base);
        let local_chain = format!("local-{}", self.base);
        let external_chain = format!("external-{}", self.base);
        let uses_local = (self.internal_local || self.external_local) && !self.local.is_empty();
        let uses_external =
            has_endpoints && (self.node_port.is_some() || !self.external_ips.is_empty());

        // Endpoint chains and affinity sets for every endpoint reachable from here.
        let mut reachable: Vec<Endpoint> = self.cluster.clone();
        if uses_local {
            reachable.extend(self.local.iter().filter(|l| !self.cluster.contains(l)));
        }
        for endpoint in &reachable {
            let set = self.affinity_set(endpoint);
            part.sets.insert(
                set.clone(),
                SetDef {
                    map: false,
                    spec: format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;"),
                    dynamic: true,
                },
            );
            part.chains.insert(
                self.endpoint_chain(endpoint),
                Chain::regular(vec![
                    format!("update @{set} {{ ip saddr }}"),
                    format!(
                        "meta l4proto {} dnat ip to {}:{}",
                        self.proto, endpoint.ip, endpoint.port
                    ),
                ]),
            );
        }
        self.note_local(part, &reachable);
        if has_endpoints {
            part.chains.insert(
                service_chain.clone(),
                Chain::regular(self.balance(&self.cluster)),
            );
        }
        if uses_local {
            part.chains.insert(
                local_chain.clone(),
                Chain::regular(self.balance(&self.local)),
            );
        }
        if uses_external {
            let mut rules = Vec::new();
            if self.external_local {
                rules.push(format!(
                    "ip saddr {} goto {service_chain}",
                    config.cluster_cidr
                ));
                rules.push(format!("fib saddr type local jump {MARK_FOR_MASQUERADE}"));
                rules.push(format!("fib saddr type local goto {service_chain}"));
                if uses_local {
                    rules.push(format!("goto {local_chain}"));
                }
            } else {
                rules.push(format!("jump {MARK_FOR_MASQUERADE}"));
                rules.push(format!("goto {service_chain}"));
            }
            part.chains
                .insert(external_chain.clone(), Chain::regular(rules));
        }

        let key = self.key(self.cluster_ip);
        part.claims
            .push(Claim::Ip(self.cluster_ip, self.proto, self.port));
        if !has_endpoints {
            part.add_element(NO_ENDPOINT_SERVICES, key, REJECT.into());
        } else if self.internal_local && !uses_local {
            part.add_element(NO_ENDPOINT_SERVICES, key, DROP.into());
        } else {
            let chain = if self.internal_local {
                &local_chain
            } else {
                &service_chain
            };
            part.add_element(SERVICE_IPS, key, format!("goto {chain}"));
            self.udp(part, Some(self.cluster_ip), self.port, &[self.internal()]);
        }
        let no_external_endpoints = self.external_local && self.local.is_empty();
        let used: &[&[Endpoint]] = &[&self.cluster, &self.local];
        for ip in self.external_ips {
            let key = self.key(*ip);
            part.claims.push(Claim::Ip(*ip, self.proto, self.port));
            if !has_endpoints {
                part.add_element(NO_ENDPOINT_SERVICES, key, REJECT.into());
                continue;
            }
            if no_external_endpoints {
                part.add_element(NO_ENDPOINT_SERVICES, key.clone(), DROP.into());
            }
            part.add_element(SERVICE_IPS, key, format!("goto {external_chain}"));
            self.udp(part, Some(*ip), self.port, used);
        }
        if let Some(node_port) = self.node_port {
            let key = self.nodeport_key(node_port);
            part.claims.push(Claim::NodePort(self.proto, node_port));
            if !has_endpoints {
                part.add_element(NO_ENDPOINT_NODEPORTS, key, REJECT.into());
                return;
            }
            if no_external_endpoints {
                part.add_element(NO_ENDPOINT_NODEPORTS, key.clone(), DROP.into());
            }
            part.add_element(SERVICE_NODEPORTS, key, format!("goto {external_chain}"));
            self.udp(part, None, node_port, used);
        }
    }

    fn endpoint_chain(&self, endpoint: &Endpoint) -> String {
        format!("endpoint-{}__{}", self.base, endpoint.suffix())
    }

    fn affinity_set(&self, endpoint: &Endpoint) -> String {
        format!("affinity-{}__{}", self.base, endpoint.suffix())
    }

    /// Affinity lookups, then a random endpoint.
    fn balance(&self, endpoints: &[Endpoint]) -> Vec<String> {
        let mut rules: Vec<String> = endpoints
            .iter()
            .map(|e| {
                format!(
                    "ip saddr @{} goto {}",
                    self.affinity_set(e),
                    self.endpoint_chain(e)
                )
            })
            .collect();
        if let [only] = endpoints {
            rules.push(format!("goto {}", self.endpoint_chain(only)));
        } else {
            let targets: Vec<String> = endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| format!("{i} : goto {}", self.endpoint_chain(e)))
                .collect();
            rules.push(format!(
                "numgen random mod {} vmap {{ {} }}",
                endpoints.len(),
                targets.join(", ")
            ));
        }
        rules
    }
}

/// The table from the Services' parts: conflicts resolved (the first Service, by namespace and name,
/// keeps a destination two claim), and the skeleton built for what the parts need.
pub fn assemble(config: &ProxyConfig, mut parts: BTreeMap<String, Arc<Part>>) -> Ruleset {
    let mut owners: FnvMap<Claim, &str> = FnvMap::default();
    let mut lost: BTreeMap<String, Vec<Claim>> = BTreeMap::new();
    for (key, part) in &parts {
        for claim in &part.claims {
            if let Some(owner) = owners.get(claim) {
                tracing::warn!(
                    "service proxy: {key} and {owner} both serve {claim:?}; {owner} keeps it"
                );
                lost.entry(key.clone()).or_default().push(*claim);
            } else {
                owners.insert(*claim, key);
            }
        }
    }
    drop(owners);
    for (key, claims) in lost {
        if let Some(part) = parts.get_mut(&key) {
            *part = Arc::new(without_claims(part, &claims));
        }
    }
    let mut needs = BTreeSet::new();
    let mut local = BTreeSet::new();
    for part in parts.values() {
        needs.extend(part.needs.iter().copied());
        local.extend(part.local_endpoints.iter().copied());
    }
    Ruleset {
        table: config.table.clone(),
        base: Arc::new(skeleton(config, &needs, &local)),
        services: parts,
        leftovers: BTreeMap::new(),
    }
}

/// A `HashMap` with [`Fnv`] hashing.
pub(crate) type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// FNV-1a: the keys hashed at every sync (names, claims) are short, and there are many.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `part` without the elements of the destinations `claims`.
fn without_claims(part: &Part, claims: &[Claim]) -> Part {
    let mut part = part.clone();
    let mut remove = |map: &str, key: &str| {
        if let Some(elements) = part.elements.get_mut(map) {
            elements.remove(key);
        }
    };
    let mut slots: Vec<(String, String)> = Vec::new();
    for claim in claims {
        match *claim {
            Claim::ClusterIp(ip) => remove(CLUSTER_IPS, &ip.to_string()),
            Claim::Ip(ip, proto, port) => {
                let key = format!("{ip} . {proto} . {port}");
                remove(SERVICE_IPS, &key);
                remove(NO_ENDPOINT_SERVICES, &key);
                for kind in [ENDPOINTS, SHORT_CIRCUIT_ENDPOINTS] {
                    slots.push((slot_map(kind, proto), format!("{ip} . {port} . ")));
                }
            }
            Claim::NodePort(proto, port) => {
                let key = format!("{proto} . {port}");
                remove(SERVICE_NODEPORTS, &key);
                remove(NO_ENDPOINT_NODEPORTS, &key);
                for kind in [NODEPORT_ENDPOINTS, NODEPORT_SHORT_CIRCUIT_ENDPOINTS] {
                    slots.push((slot_map(kind, proto), format!("{port} . ")));
                }
            }
        }
    }
    for (map, prefix) in slots {
        if let Some(elements) = part.elements.get_mut(&map) {
            elements.retain(|k, _| !k.starts_with(&prefix));
        }
    }
    part.claims.retain(|c| !claims.contains(c));
    part.elements.retain(|_, e| !e.is_empty());
    part
}

/// The fixed chains and sets, the shared chains in `needs` (and what they jump to), and the hairpin pairs
/// of the `local` endpoints.
pub fn skeleton(
    config: &ProxyConfig,
    needs: &BTreeSet<Shared>,
    local: &BTreeSet<Ipv4Addr>,
) -> Part {
    let mark = format!("{MASQUERADE_MARK:#x}");
    let cluster = config.cluster_cidr;
    let nodeport_ips = config.nodeport_ips();
    let mut part = Part::default();
    let chains = &mut part.chains;
    let mut chain = |name: &str, c: Chain| {
        chains.insert(name.to_owned(), c);
    };

    chain(
        "nat-prerouting",
        Chain::base("nat", "prerouting", -100, vec![format!("jump {SERVICES}")]),
    );
    chain(
        "nat-output",
        Chain::base("nat", "output", -100, vec![format!("jump {SERVICES}")]),
    );
    let mut postrouting = vec![format!("jump {MASQUERADING}")];
    if config.masquerade_egress {
        postrouting.push(format!("jump {POD_EGRESS}"));
        chain(
            POD_EGRESS,
            Chain::regular(vec![format!(
                "ip saddr {cluster} ip daddr != {cluster} ip daddr != {} masquerade fully-random",
                config.service_cidr
            )]),
        );
    }
    chain(
        "nat-postrouting",
        Chain::base("nat", "postrouting", 100, postrouting),
    );
    // Filter chains run before DNAT (-110) so that they see the Service's own address.
    chain(
        "filter-input",
        Chain::base(
            "filter",
            "input",
            -110,
            vec![
                format!("ct state new jump {NODEPORT_ENDPOINTS_CHECK}"),
                format!("ct state new jump {SERVICE_ENDPOINTS_CHECK}"),
            ],
        ),
    );
    chain(
        "filter-forward",
        Chain::base(
            "filter",
            "forward",
            -110,
            vec![
                format!("ct state new jump {SERVICE_ENDPOINTS_CHECK}"),
                format!("ct state new jump {CLUSTER_IPS_CHECK}"),
            ],
        ),
    );
    chain(
        "filter-output",
        Chain::base(
            "filter",
            "output",
            -110,
            vec![format!("ct state new jump {SERVICE_ENDPOINTS_CHECK}")],
        ),
    );
    chain(
        "filter-output-post-dnat",
        Chain::base(
            "filter",
            "output",
            -90,
            vec![format!("ct state new jump {CLUSTER_IPS_CHECK}")],
        ),
    );

    let nodeport_match = match &nodeport_ips {
        None => "fib daddr type local ip daddr != 127.0.0.0/8".to_owned(),
        Some(_) => format!("ip daddr @{NODEPORT_IPS}"),
    };
    chain(
        SERVICES,
        Chain::regular(vec![
            format!("ip daddr @{CLUSTER_IPS} ip saddr != {cluster} jump {MARK_FOR_MASQUERADE}"),
            format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
            format!("{nodeport_match} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
        ]),
    );
    chain(
        MARK_FOR_MASQUERADE,
        Chain::regular(vec![format!("mark set mark or {mark}")]),
    );
    chain(
        MASQUERADING,
        Chain::regular(vec![
            format!("ct status dnat ip saddr . ip daddr @{HAIRPIN} jump {MARK_FOR_MASQUERADE}"),
            format!("mark and {mark} == 0 return"),
            format!("mark set mark xor {mark}"),
            "masquerade fully-random".to_owned(),
        ]),
    );
    chain(
        SERVICE_ENDPOINTS_CHECK,
        Chain::regular(vec![format!(
            "ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"
        )]),
    );
    let nodeport_check = match &nodeport_ips {
        None => "ip daddr != 127.0.0.0/8".to_owned(),
        Some(_) => format!("ip daddr @{NODEPORT_IPS}"),
    };
    chain(
        NODEPORT_ENDPOINTS_CHECK,
        Chain::regular(vec![format!(
            "{nodeport_check} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"
        )]),
    );
    chain(
        CLUSTER_IPS_CHECK,
        Chain::regular(vec![
            format!("ip daddr @{CLUSTER_IPS} {REJECT}"),
            format!("ip daddr {} drop", config.service_cidr),
        ]),
    );
    chain(
        REJECT_CHAIN,
        Chain::regular(vec![
            "meta l4proto tcp reject with tcp reset".to_owned(),
            "reject".to_owned(),
        ]),
    );

    // Shared chains, with what they jump to.
    let mut all = BTreeSet::new();
    let mut todo: Vec<Shared> = needs.iter().copied().collect();
    while let Some(shared) = todo.pop() {
        if all.insert(shared) {
            todo.extend(shared.needs());
        }
    }
    for shared in all {
        let rules = match shared {
            Shared::Pick { nodeport, proto, n }
            | Shared::PickShortCircuit { nodeport, proto, n } => {
                let kind = match (shared, nodeport) {
                    (Shared::Pick { .. }, false) => ENDPOINTS,
                    (Shared::Pick { .. }, true) => NODEPORT_ENDPOINTS,
                    (_, false) => SHORT_CIRCUIT_ENDPOINTS,
                    (_, true) => NODEPORT_SHORT_CIRCUIT_ENDPOINTS,
                };
                let destination = if nodeport { "" } else { "ip daddr . " };
                vec![format!(
                    "meta l4proto {proto} dnat ip to {destination}{proto} dport . numgen random mod {n} map @{}",
                    slot_map(kind, proto)
                )]
            }
            Shared::External { nodeport, proto, n } => vec![
                format!("jump {MARK_FOR_MASQUERADE}"),
                format!("goto {}", Shared::Pick { nodeport, proto, n }.name()),
            ],
            Shared::ExternalLocal {
                nodeport,
                proto,
                cluster: n,
                local,
            } => {
                let short = Shared::PickShortCircuit { nodeport, proto, n }.name();
                let mut rules = vec![
                    format!("ip saddr {cluster} goto {short}"),
                    format!("fib saddr type local jump {MARK_FOR_MASQUERADE}"),
                    format!("fib saddr type local goto {short}"),
                ];
                if local > 0 {
                    let pick = Shared::Pick {
                        nodeport,
                        proto,
                        n: local,
                    };
                    rules.push(format!("goto {}", pick.name()));
                }
                rules
            }
        };
        part.chains.insert(shared.name(), Chain::regular(rules));
    }

    let ip_port = "type ipv4_addr . inet_proto . inet_service : verdict;";
    let port = "type inet_proto . inet_service : verdict;";
    let sets = [
        (SERVICE_IPS, SetDef::map(ip_port)),
        (SERVICE_NODEPORTS, SetDef::map(port)),
        (NO_ENDPOINT_SERVICES, SetDef::map(ip_port)),
        (NO_ENDPOINT_NODEPORTS, SetDef::map(port)),
        (CLUSTER_IPS, SetDef::set("type ipv4_addr;")),
        (HAIRPIN, SetDef::set("type ipv4_addr . ipv4_addr;")),
    ];
    for (name, def) in sets {
        part.sets.insert(name.to_owned(), def);
    }
    let protocols: &[Proto] = if config.sctp {
        &[Proto::Tcp, Proto::Udp, Proto::Sctp]
    } else {
        &[Proto::Tcp, Proto::Udp]
    };
    for proto in protocols {
        let slots = format!(
            "typeof ip daddr . {proto} dport . numgen random mod 1 : ip daddr . {proto} dport;"
        );
        let nodeport_slots =
            format!("typeof {proto} dport . numgen random mod 1 : ip daddr . {proto} dport;");
        for (kind, spec) in [
            (ENDPOINTS, &slots),
            (SHORT_CIRCUIT_ENDPOINTS, &slots),
            (NODEPORT_ENDPOINTS, &nodeport_slots),
            (NODEPORT_SHORT_CIRCUIT_ENDPOINTS, &nodeport_slots),
        ] {
            part.sets
                .insert(slot_map(kind, *proto), SetDef::map(spec.clone()));
        }
    }
    if let Some(ips) = nodeport_ips {
        part.sets
            .insert(NODEPORT_IPS.to_owned(), SetDef::set("type ipv4_addr;"));
        for ip in ips {
            part.add_element(NODEPORT_IPS, ip.to_string(), String::new());
        }
    }
    for ip in local {
        part.add_element(HAIRPIN, format!("{ip} . {ip}"), String::new());
    }
    part
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render;
    use crate::testutil::*;

    fn elements(rs: &Ruleset, set: &str) -> Vec<String> {
        rs.elements(set)
            .into_iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.to_owned()
                } else {
                    format!("{k} : {v}")
                }
            })
            .collect()
    }

    fn web() -> (Service, EndpointSlice) {
        (
            service("default", "web", "10.151.0.10", &[("http", "TCP", 80, 0)]),
            slice(
                "default",
                "web",
                "web-1",
                &[("http", "TCP", 8080)],
                &[ready("10.150.1.2", "node-a"), ready("10.150.2.2", "node-b")],
            ),
        )
    }

    #[test]
    fn golden_full_transaction_of_one_service() {
        let (svc, slice) = web();
        let rs = desired([&svc], [&slice], &config());
        let text = render::full(&rs).text;
        let expected = include_str!("../tests/golden/one_service.nft");
        assert_eq!(text, expected, "full transaction:\n{text}");
    }

    #[test]
    fn cluster_ip_picks_among_ready_endpoints() {
        let (svc, _) = web();
        let slice = slice(
            "default",
            "web",
            "web-1",
            &[("http", "TCP", 8080), ("metrics", "TCP", 9090)],
            &[
                ready("10.150.1.2", "node-a"),
                Ep("10.150.1.3", "node-a", (false, false, false)),
                Ep("10.150.1.4", "node-a", (false, true, true)),
                ready("10.150.2.2", "node-b"),
            ],
        );
        let rs = desired([&svc], [&slice], &config());
        assert_eq!(
            elements(&rs, SERVICE_IPS),
            ["10.151.0.10 . tcp . 80 : goto pick-tcp-2"]
        );
        assert_eq!(
            elements(&rs, "endpoints-tcp"),
            [
                "10.151.0.10 . 80 . 0 : 10.150.1.2 . 8080",
                "10.151.0.10 . 80 . 1 : 10.150.2.2 . 8080"
            ]
        );
        assert_eq!(elements(&rs, CLUSTER_IPS), ["10.151.0.10"]);
        assert_eq!(
            rs.chain("pick-tcp-2").unwrap().rules,
            [
                "meta l4proto tcp dnat ip to ip daddr . tcp dport . numgen random mod 2 map @endpoints-tcp"
            ]
        );
        // Only the node's own endpoint makes a hairpin pair.
        assert_eq!(elements(&rs, HAIRPIN), ["10.150.1.2 . 10.150.1.2"]);
        assert!(elements(&rs, NO_ENDPOINT_SERVICES).is_empty());
    }

    #[test]
    fn serving_terminating_endpoints_only_when_none_is_ready() {
        let (svc, _) = web();
        let terminating = slice(
            "default",
            "web",
            "web-1",
            &[("http", "TCP", 8080)],
            &[
                Ep("10.150.1.4", "node-a", (false, true, true)),
                Ep("10.150.1.5", "node-a", (false, false, true)),
            ],
        );
        let rs = desired([&svc], [&terminating], &config());
        assert_eq!(
            elements(&rs, "endpoints-tcp"),
            ["10.151.0.10 . 80 . 0 : 10.150.1.4 . 8080"]
        );
    }

    #[test]
    fn no_usable_endpoint_rejects() {
        let (svc, _) = web();
        let none_ready = slice(
            "default",
            "web",
            "web-1",
            &[("http", "TCP", 8080)],
            &[Ep("10.150.1.3", "node-a", (false, false, false))],
        );
        for slices in [vec![], vec![&none_ready]] {
            let rs = desired([&svc], slices, &config());
            assert_eq!(
                elements(&rs, NO_ENDPOINT_SERVICES),
                ["10.151.0.10 . tcp . 80 : goto reject-chain"]
            );
            assert!(elements(&rs, SERVICE_IPS).is_empty());
            assert!(elements(&rs, "endpoints-tcp").is_empty());
            assert_eq!(elements(&rs, CLUSTER_IPS), ["10.151.0.10"]);
        }
        let reject = rs_chain(&desired([&svc], [], &config()), REJECT_CHAIN);
        assert_eq!(reject, ["meta l4proto tcp reject with tcp reset", "reject"]);
    }

    fn rs_chain(rs: &Ruleset, name: &str) -> Vec<String> {
        rs.chain(name).unwrap().rules.clone()
    }

    #[test]
    fn headless_external_name_and_foreign_services_get_nothing() {
        let (mut headless, slice) = web();
        spec(&mut headless).cluster_ip = Some("None".into());
        spec(&mut headless).cluster_ips = Some(vec!["None".into()]);
        let (mut external_name, _) = web();
        spec(&mut external_name).type_ = Some("ExternalName".into());
        spec(&mut external_name).external_name = Some("example.com".into());
        let (mut foreign, _) = web();
        foreign.metadata.labels = Some(BTreeMap::from([(
            SERVICE_PROXY_NAME_LABEL.to_owned(),
            "other".to_owned(),
        )]));
        let (mut v6, _) = web();
        spec(&mut v6).cluster_ip = Some("fd00::10".into());
        spec(&mut v6).cluster_ips = Some(vec!["fd00::10".into()]);
        for svc in [headless, external_name, foreign, v6] {
            let rs = desired([&svc], [&slice], &config());
            assert!(rs.services.is_empty(), "{svc:?}");
            assert!(rs.elements(SERVICE_IPS).is_empty());
        }
    }

    #[test]
    fn ports_match_endpoints_by_name_and_protocol() {
        let svc = service(
            "kube-system",
            "dns",
            "10.151.0.53",
            &[("dns", "UDP", 53, 0), ("dns-tcp", "TCP", 53, 0)],
        );
        let slice = slice(
            "kube-system",
            "dns",
            "dns-1",
            &[("dns", "UDP", 1053), ("dns-tcp", "TCP", 1054)],
            &[ready("10.150.1.9", "node-b")],
        );
        let rs = desired([&svc], [&slice], &config());
        assert_eq!(
            elements(&rs, "endpoints-tcp"),
            ["10.151.0.53 . 53 . 0 : 10.150.1.9 . 1054"]
        );
        assert_eq!(
            elements(&rs, "endpoints-udp"),
            ["10.151.0.53 . 53 . 0 : 10.150.1.9 . 1053"]
        );
        // UDP destinations are remembered for conntrack cleanup; TCP ones are not.
        let udp: Vec<_> = rs.parts().flat_map(|p| p.udp.iter()).collect();
        assert_eq!(udp.len(), 1);
        assert_eq!(
            *udp[0].0,
            UdpFrontend {
                ip: Some("10.151.0.53".parse().unwrap()),
                port: 53
            }
        );
        assert_eq!(
            udp[0].1.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.150.1.9"]
        );
    }

    #[test]
    fn sctp_only_when_the_kernel_has_it() {
        let svc = service("default", "s", "10.151.0.7", &[("s", "SCTP", 7, 0)]);
        let slice = slice(
            "default",
            "s",
            "s-1",
            &[("s", "SCTP", 7)],
            &[ready("10.150.1.7", "node-a")],
        );
        let rs = desired([&svc], [&slice], &config());
        assert_eq!(
            elements(&rs, SERVICE_IPS),
            ["10.151.0.7 . sctp . 7 : goto pick-sctp-1"]
        );
        let mut no_sctp = config();
        no_sctp.sctp = false;
        let rs = desired([&svc], [&slice], &no_sctp);
        assert!(rs.services.is_empty());
        assert!(rs.chain("pick-sctp-1").is_none());
        assert!(rs.set("endpoints-sctp").is_none());
        let (web, web_slice) = web();
        let rs = desired([&web], [&web_slice], &no_sctp);
        assert!(rs.set("endpoints-udp").is_some());
    }

    #[test]
    fn node_ports_external_ips_and_load_balancers() {
        let mut svc = with_load_balancer(
            service(
                "default",
                "web",
                "10.151.0.10",
                &[("http", "TCP", 80, 30080)],
            ),
            &["192.0.2.10", "fd00::1"],
        );
        spec(&mut svc).external_ips = Some(vec!["198.51.100.7".into()]);
        let (_, slice) = web();
        let rs = desired([&svc], [&slice], &config());
        assert_eq!(
            elements(&rs, SERVICE_IPS),
            [
                "10.151.0.10 . tcp . 80 : goto pick-tcp-2",
                "192.0.2.10 . tcp . 80 : goto external-tcp-2",
                "198.51.100.7 . tcp . 80 : goto external-tcp-2"
            ]
        );
        assert_eq!(
            elements(&rs, SERVICE_NODEPORTS),
            ["tcp . 30080 : goto external-nodeport-tcp-2"]
        );
        assert_eq!(
            elements(&rs, "nodeport-endpoints-tcp"),
            [
                "30080 . 0 : 10.150.1.2 . 8080",
                "30080 . 1 : 10.150.2.2 . 8080"
            ]
        );
        assert_eq!(elements(&rs, "endpoints-tcp").len(), 6);
        assert_eq!(
            rs_chain(&rs, "external-tcp-2"),
            ["jump mark-for-masquerade", "goto pick-tcp-2"]
        );
        assert_eq!(
            rs_chain(&rs, "external-nodeport-tcp-2"),
            ["jump mark-for-masquerade", "goto pick-nodeport-tcp-2"]
        );
        assert_eq!(
            rs_chain(&rs, "pick-nodeport-tcp-2"),
            [
                "meta l4proto tcp dnat ip to tcp dport . numgen random mod 2 map @nodeport-endpoints-tcp"
            ]
        );
        // NodePorts on every local address but loopback, from outside and from the node itself.
        assert_eq!(
            rs_chain(&rs, SERVICES)[2],
            "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"
        );
        assert_eq!(rs_chain(&rs, "nat-output"), ["jump services"]);
        // Without endpoints every destination rejects.
        let rs = desired([&svc], [], &config());
        assert_eq!(
            elements(&rs, NO_ENDPOINT_SERVICES),
            [
                "10.151.0.10 . tcp . 80 : goto reject-chain",
                "192.0.2.10 . tcp . 80 : goto reject-chain",
                "198.51.100.7 . tcp . 80 : goto reject-chain"
            ]
        );
        assert_eq!(
            elements(&rs, NO_ENDPOINT_NODEPORTS),
            ["tcp . 30080 : goto reject-chain"]
        );
    }

    #[test]
    fn load_balancer_ingress_in_proxy_mode_and_other_types_are_not_captured() {
        let mut svc = with_load_balancer(
            service(
                "default",
                "web",
                "10.151.0.10",
                &[("http", "TCP", 80, 30080)],
            ),
            &["192.0.2.10"],
        );
        let status = svc.status.as_mut().unwrap().load_balancer.as_mut().unwrap();
        status.ingress.as_mut().unwrap()[0].ip_mode = Some("Proxy".into());
        let (_, slice) = web();
        let rs = desired([&svc], [&slice], &config());
        assert_eq!(
            elements(&rs, SERVICE_IPS),
            ["10.151.0.10 . tcp . 80 : goto pick-tcp-2"]
        );
    }

    #[test]
    fn nodeport_addresses_can_be_limited() {
        let svc = service(
            "default",
            "web",
            "10.151.0.10",
            &[("http", "TCP", 80, 30080)],
        );
        let (_, slice) = web();
        let mut config = config();
        config.nodeport_addresses = crate::NodePortAddresses::NodeIps;
        let rs = desired([&svc], [&slice], &config);
        assert_eq!(elements(&rs, NODEPORT_IPS), ["10.150.100.1"]);
        assert_eq!(
            rs_chain(&rs, SERVICES)[2],
            "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"
        );
        assert_eq!(
            rs_chain(&rs, NODEPORT_ENDPOINTS_CHECK),
            ["ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"]
        );
    }

    #[test]
    fn internal_traffic_policy_local_uses_this_nodes_endpoints() {
        let (mut svc, slice) = web();
        spec(&mut svc).internal_traffic_policy = Some("Local".into());
        let rs = desired([&svc], [&slice], &config());
        assert_eq!(
            elements(&rs, SERVICE_IPS),
            ["10.151.0.10 . tcp . 80 : goto pick-tcp-1"]
        );
        assert_eq!(
            elements(&rs, "endpoints-tcp"),
            ["10.151.0.10 . 80 . 0 : 10.150.1.2 . 8080"]
        );
        // Endpoints elsewhere only: dropped (not rejected), as kube-proxy does.
        let mut other = config();
        other.node_name = "node-c".into();
        let rs = desired([&svc], [&slice], &other);
        assert_eq!(
            elements(&rs, NO_ENDPOINT_SERVICES),
            ["10.151.0.10 . tcp . 80 : drop"]
        );
        assert!(elements(&rs, SERVICE_IPS).is_empty());
    }

    #[test]
    fn external_traffic_policy_local() {
        let mut svc = service(
            "default",
            "web",
            "10.151.0.10",
            &[("http", "TCP", 80, 30080)],
        );
        spec(&mut svc).external_traffic_policy = Some("Local".into());
        spec(&mut svc).external_ips = Some(vec!["198.51.100.7".into()]);
        let (_, slice) = web();
        let rs = desired([&svc], [&slice], &config());
        // ClusterIP traffic keeps policy Cluster.
        assert_eq!(
            elements(&rs, SERVICE_IPS),
            [
                "10.151.0.10 . tcp . 80 : goto pick-tcp-2",
                "198.51.100.7 . tcp . 80 : goto external-local-tcp-2-1"
            ]
        );
        assert_eq!(
            elements(&rs, SERVICE_NODEPORTS),
            ["tcp . 30080 : goto external-nodeport-local-tcp-2-1"]
        );
        assert_eq!(
            elements(&rs, "nodeport-endpoints-tcp"),
            ["30080 . 0 : 10.150.1.2 . 8080"]
        );
        assert_eq!(
            elements(&rs, "nodeport-short-circuit-endpoints-tcp"),
            [
                "30080 . 0 : 10.150.1.2 . 8080",
                "30080 . 1 : 10.150.2.2 . 8080"
            ]
        );
        assert_eq!(
            rs_chain(&rs, "external-local-tcp-2-1"),
            [
                "ip saddr 10.150.0.0/20 goto pick-short-circuit-tcp-2",
                "fib saddr type local jump mark-for-masquerade",
                "fib saddr type local goto pick-short-circuit-tcp-2",
                "goto pick-tcp-1"
            ]
        );
        assert_eq!(
            rs_chain(&rs, "pick-short-circuit-tcp-2"),
            [
                "meta l4proto tcp dnat ip to ip daddr . tcp dport . numgen random mod 2 map @short-circuit-endpoints-tcp"
            ]
        );
        // No local endpoint: pods and the node are still served, the rest is dropped.
        let mut other = config();
        other.node_name = "node-c".into();
        let rs = desired([&svc], [&slice], &other);
        assert_eq!(
            rs_chain(&rs, "external-nodeport-local-tcp-2-0"),
            [
                "ip saddr 10.150.0.0/20 goto pick-nodeport-short-circuit-tcp-2",
                "fib saddr type local jump mark-for-masquerade",
                "fib saddr type local goto pick-nodeport-short-circuit-tcp-2"
            ]
        );
        assert_eq!(elements(&rs, NO_ENDPOINT_NODEPORTS), ["tcp . 30080 : drop"]);
        assert_eq!(
            elements(&rs, NO_ENDPOINT_SERVICES),
            ["198.51.100.7 . tcp . 80 : drop"]
        );
        assert!(elements(&rs, HAIRPIN).is_empty());
    }

    #[test]
    fn session_affinity_uses_per_endpoint_chains_and_dynamic_sets() {
        let (svc, slice) = web();
        let svc = with_affinity(svc, Some(600));
        let rs = desired([&svc], [&slice], &config());
        let base = "default/web/tcp/http";
        assert_eq!(
            elements(&rs, SERVICE_IPS),
            [format!("10.151.0.10 . tcp . 80 : goto service-{base}")]
        );
        assert!(elements(&rs, "endpoints-tcp").is_empty());
        let a = format!("{base}__10.150.1.2/8080");
        let b = format!("{base}__10.150.2.2/8080");
        assert_eq!(
            rs_chain(&rs, &format!("service-{base}")),
            [
                format!("ip saddr @affinity-{a} goto endpoint-{a}"),
                format!("ip saddr @affinity-{b} goto endpoint-{b}"),
                format!(
                    "numgen random mod 2 vmap {{ 0 : goto endpoint-{a}, 1 : goto endpoint-{b} }}"
                ),
            ]
        );
        assert_eq!(
            rs_chain(&rs, &format!("endpoint-{a}")),
            [
                format!("update @affinity-{a} {{ ip saddr }}"),
                "meta l4proto tcp dnat ip to 10.150.1.2:8080".to_owned()
            ]
        );
        let set = rs.set(&format!("affinity-{a}")).unwrap();
        assert!(set.dynamic);
        assert_eq!(
            set.spec,
            "type ipv4_addr; flags dynamic,timeout; timeout 600s;"
        );
        // The default timeout is three hours.
        let (svc, _) = web();
        let rs = desired([&with_affinity(svc, None)], [&slice], &config());
        assert!(
            rs.set(&format!("affinity-{a}"))
                .unwrap()
                .spec
                .contains("timeout 10800s")
        );
    }

    #[test]
    fn session_affinity_with_external_policy_local() {
        let mut svc = with_affinity(
            service(
                "default",
                "web",
                "10.151.0.10",
                &[("http", "TCP", 80, 30080)],
            ),
            None,
        );
        spec(&mut svc).external_traffic_policy = Some("Local".into());
        let (_, slice) = web();
        let rs = desired([&svc], [&slice], &config());
        let base = "default/web/tcp/http";
        assert_eq!(
            elements(&rs, SERVICE_NODEPORTS),
            [format!("tcp . 30080 : goto external-{base}")]
        );
        assert_eq!(
            rs_chain(&rs, &format!("external-{base}")),
            [
                format!("ip saddr 10.150.0.0/20 goto service-{base}"),
                "fib saddr type local jump mark-for-masquerade".to_owned(),
                format!("fib saddr type local goto service-{base}"),
                format!("goto local-{base}"),
            ]
        );
        let a = format!("{base}__10.150.1.2/8080");
        assert_eq!(
            rs_chain(&rs, &format!("local-{base}")),
            [
                format!("ip saddr @affinity-{a} goto endpoint-{a}"),
                format!("goto endpoint-{a}")
            ]
        );
    }

    #[test]
    fn masquerade_marks_and_egress() {
        let (svc, slice) = web();
        let rs = desired([&svc], [&slice], &config());
        assert_eq!(
            rs_chain(&rs, SERVICES)[0],
            "ip daddr @cluster-ips ip saddr != 10.150.0.0/20 jump mark-for-masquerade"
        );
        assert_eq!(
            rs_chain(&rs, MARK_FOR_MASQUERADE),
            ["mark set mark or 0x4000"]
        );
        assert_eq!(
            rs_chain(&rs, MASQUERADING),
            [
                "ct status dnat ip saddr . ip daddr @hairpin jump mark-for-masquerade",
                "mark and 0x4000 == 0 return",
                "mark set mark xor 0x4000",
                "masquerade fully-random"
            ]
        );
        assert_eq!(
            rs_chain(&rs, POD_EGRESS),
            [
                "ip saddr 10.150.0.0/20 ip daddr != 10.150.0.0/20 ip daddr != 10.151.0.0/16 masquerade fully-random"
            ]
        );
        assert_eq!(
            rs_chain(&rs, "nat-postrouting"),
            ["jump masquerading", "jump pod-egress"]
        );
        let mut no_egress = config();
        no_egress.masquerade_egress = false;
        let rs = desired([&svc], [&slice], &no_egress);
        assert!(rs.chain(POD_EGRESS).is_none());
        assert_eq!(rs_chain(&rs, "nat-postrouting"), ["jump masquerading"]);
    }

    #[test]
    fn hooks_and_priorities() {
        let rs = desired([], [], &config());
        let hook = |name: &str| {
            let h = rs.chain(name).unwrap().hook.unwrap();
            (h.kind, h.hook, h.priority)
        };
        assert_eq!(hook("nat-prerouting"), ("nat", "prerouting", -100));
        assert_eq!(hook("nat-output"), ("nat", "output", -100));
        assert_eq!(hook("nat-postrouting"), ("nat", "postrouting", 100));
        assert_eq!(hook("filter-input"), ("filter", "input", -110));
        assert_eq!(hook("filter-forward"), ("filter", "forward", -110));
        assert_eq!(hook("filter-output"), ("filter", "output", -110));
        assert_eq!(hook("filter-output-post-dnat"), ("filter", "output", -90));
        assert_eq!(
            rs_chain(&rs, CLUSTER_IPS_CHECK),
            [
                "ip daddr @cluster-ips goto reject-chain",
                "ip daddr 10.151.0.0/16 drop"
            ]
        );
    }

    #[test]
    fn the_first_service_keeps_a_destination_two_claim() {
        let mut a = service("default", "a", "10.151.0.1", &[("", "TCP", 80, 30080)]);
        spec(&mut a).external_ips = Some(vec!["198.51.100.7".into()]);
        let mut b = service("default", "b", "10.151.0.2", &[("", "TCP", 80, 30080)]);
        spec(&mut b).external_ips = Some(vec!["198.51.100.7".into()]);
        let sa = slice(
            "default",
            "a",
            "a-1",
            &[("", "TCP", 8080)],
            &[ready("10.150.1.2", "node-a")],
        );
        let sb = slice(
            "default",
            "b",
            "b-1",
            &[("", "TCP", 8080)],
            &[ready("10.150.1.3", "node-a"), ready("10.150.1.4", "node-a")],
        );
        let rs = desired([&b, &a], [&sa, &sb], &config());
        assert_eq!(
            elements(&rs, SERVICE_IPS),
            [
                "10.151.0.1 . tcp . 80 : goto pick-tcp-1",
                "10.151.0.2 . tcp . 80 : goto pick-tcp-2",
                "198.51.100.7 . tcp . 80 : goto external-tcp-1"
            ]
        );
        assert_eq!(
            elements(&rs, SERVICE_NODEPORTS),
            ["tcp . 30080 : goto external-nodeport-tcp-1"]
        );
        assert!(
            !elements(&rs, "endpoints-tcp")
                .iter()
                .any(|e| e.starts_with("198.51.100.7 . 80 . 1"))
        );
        // The result applies: no key twice.
        let text = render::full(&rs).text;
        assert_eq!(text.matches("198.51.100.7 . tcp . 80 :").count(), 1);
    }

    #[test]
    fn one_endpoint_in_two_slices_counts_once() {
        let (svc, _) = web();
        let s1 = slice(
            "default",
            "web",
            "web-1",
            &[("http", "TCP", 8080)],
            &[Ep("10.150.1.2", "node-a", (false, true, true))],
        );
        let s2 = slice(
            "default",
            "web",
            "web-2",
            &[("http", "TCP", 8080)],
            &[ready("10.150.1.2", "node-a")],
        );
        let rs = desired([&svc], [&s1, &s2], &config());
        assert_eq!(
            elements(&rs, "endpoints-tcp"),
            ["10.151.0.10 . 80 . 0 : 10.150.1.2 . 8080"]
        );
        // Slices of another namespace's Service of the same name do not count.
        let other = slice(
            "other",
            "web",
            "web-1",
            &[("http", "TCP", 8080)],
            &[ready("10.150.1.9", "node-a")],
        );
        let rs = desired([&svc], [&other], &config());
        assert!(elements(&rs, "endpoints-tcp").is_empty());
    }
}

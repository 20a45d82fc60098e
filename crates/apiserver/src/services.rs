//! ClusterIP and NodePort allocation for Services.
//!
//! Every address and node port in use is a key of its own in the store (`/registry/gantry/serviceips/<ip>`,
//! `/registry/gantry/servicenodeports/<port>`) whose value names the Service holding it; creating that key is
//! the allocation, so no two Services get the same one even with several API servers on one store. A key whose
//! Service no longer holds it (the server died between allocating and storing the Service, or a namespace
//! deletion removed the Service) is taken over once it is older than [`STALE_AFTER_SECONDS`].

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use gantry_api::field::FieldError;
use gantry_api::{ApiError, GroupKind};
use gantry_store::{Store, StoreError};
use gantry_watch_cache::WatchCache;
use serde_json::{Value, json};

const IP_KEYS: &str = "/registry/gantry/serviceips/";
const PORT_KEYS: &str = "/registry/gantry/servicenodeports/";
/// An allocation whose Service does not hold it is free again after this long (a create in flight has
/// allocated but not yet stored its Service).
const STALE_AFTER_SECONDS: u64 = 60;
/// Random picks tried before a range counts as full.
const ATTEMPTS: usize = 32;

/// The ranges Services get their addresses and node ports from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRanges {
    pub cidr: Ipv4Cidr,
    pub node_ports: RangeInclusive<u16>,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cidr: Ipv4Cidr {
                network: Ipv4Addr::new(10, 43, 0, 0),
                prefix: 16,
            },
            node_ports: 30000..=32767,
        }
    }
}

impl ServiceRanges {
    /// The `kubernetes` Service's address: the range's first.
    pub fn api_address(&self) -> Ipv4Addr {
        self.cidr.nth(1)
    }

    /// The cluster DNS address (the `kube-dns` Service's, pods' nameserver): the range's tenth, none in a
    /// range too small to have one.
    pub fn dns_address(&self) -> Option<Ipv4Addr> {
        (self.cidr.prefix <= 28).then(|| self.cidr.nth(10))
    }
}

/// An IPv4 network such as `10.43.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    fn nth(self, n: u64) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(n as u32))
    }

    /// The offset of `ip` in the network, if it is in it.
    fn offset(self, ip: Ipv4Addr) -> Option<u64> {
        let offset = u64::from(u32::from(ip).wrapping_sub(u32::from(self.network)));
        (offset < self.size()).then_some(offset)
    }

    /// Whether `ip` may be given to a Service: in the network, not its network or broadcast address.
    fn usable(self, ip: Ipv4Addr) -> bool {
        self.offset(ip)
            .is_some_and(|o| o > 0 && (self.size() <= 2 || o < self.size() - 1))
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not an IPv4 network such as 10.43.0.0/16");
        let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(format!(
                "{s:?}: the service network needs a prefix between /8 and /30"
            ));
        }
        let mask = u32::MAX << (32 - u32::from(prefix));
        Ok(Ipv4Cidr {
            network: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }
}

/// Parses a node port range such as `30000-32767`.
pub fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || format!("{s:?} is not a port range such as 30000-32767");
    let (low, high) = s.split_once('-').ok_or_else(bad)?;
    let (low, high): (u16, u16) = (
        low.trim().parse().map_err(|_| bad())?,
        high.trim().parse().map_err(|_| bad())?,
    );
    if low == 0 || low > high {
        return Err(bad());
    }
    Ok(low..=high)
}

/// Before an update is validated: what the old type needed and the new one does not is dropped when the
/// client left it as it was (upstream's `dropTypeDependentFields`), so that e.g. a NodePort Service turned
/// ClusterIP by a patch of `type` alone loses its node ports and traffic policy instead of failing validation.
pub(crate) fn drop_type_dependent_fields(service: &mut Value, old: &Value) {
    let (Some(spec), Some(old_spec)) = (
        service.get_mut("spec").and_then(Value::as_object_mut),
        old.get("spec"),
    ) else {
        return;
    };
    let type_of = |s: Option<&Value>| s.and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    let (new_type, old_type) = (type_of(spec.get("type")), type_of(old_spec.get("type")));
    if new_type == old_type {
        return;
    }
    let unchanged = |spec: &serde_json::Map<String, Value>, field: &str| {
        spec.get(field).is_some() && spec.get(field) == old_spec.get(field)
    };
    if new_type == "ExternalName" {
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if unchanged(spec, field) {
                spec.remove(field);
            }
        }
    }
    let external = |t: &str| matches!(t, "NodePort" | "LoadBalancer");
    if external(&old_type) && !external(&new_type) {
        let has_external_ips = spec
            .get("externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|ips| !ips.is_empty());
        if unchanged(spec, "externalTrafficPolicy") && !has_external_ips {
            spec.remove("externalTrafficPolicy");
        }
        let old_node_ports: HashSet<i64> = old_spec
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("nodePort")?.as_i64())
            .collect();
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            if port
                .get("nodePort")
                .and_then(Value::as_i64)
                .is_some_and(|n| old_node_ports.contains(&n))
            {
                port.remove("nodePort");
            }
        }
    }
    if old_type == "LoadBalancer" && new_type != "LoadBalancer" {
        for field in [
            "healthCheckNodePort",
            "allocateLoadBalancerNodePorts",
            "loadBalancerClass",
        ] {
            if unchanged(spec, field) {
                spec.remove(field);
            }
        }
    }
}

/// Allocates for Services, against the store.
pub(crate) struct Allocator<'a> {
    pub(crate) store: &'a Arc<dyn Store>,
    pub(crate) cache: &'a WatchCache,
    pub(crate) ranges: &'a ServiceRanges,
}

/// What one write of a Service holds: the keys of its address and ports, and which of them this write made.
#[derive(Debug, Default)]
pub(crate) struct Allocation {
    new_keys: Vec<Bytes>,
}

impl Allocator<'_> {
    /// Gives `service` (stored at `owner`) the address and node ports its type needs, keeping those `old` (the
    /// version it replaces) holds. On error nothing stays allocated.
    pub(crate) async fn allocate(
        &self,
        owner: &str,
        service: &mut Value,
        old: Option<&Value>,
    ) -> Result<Allocation, ApiError> {
        let mut allocation = Allocation::default();
        let result = self
            .allocate_into(owner, service, old, &mut allocation)
            .await;
        if let Err(e) = result {
            self.release(owner, allocation).await;
            return Err(e);
        }
        Ok(allocation)
    }

    async fn allocate_into(
        &self,
        owner: &str,
        service: &mut Value,
        old: Option<&Value>,
        allocation: &mut Allocation,
    ) -> Result<(), ApiError> {
        let name = service
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let invalid = |field: String, value: Value, message: String| {
            ApiError::invalid(
                GroupKind::new("", "Service"),
                &name,
                &[FieldError::invalid(field, value, message)],
            )
        };
        let old_spec = old.and_then(|o| o.get("spec"));
        let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let service_type = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if service_type != "ExternalName" {
            let requested = spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .filter(|ip| !ip.is_empty())
                .or_else(|| {
                    spec.get("clusterIPs")
                        .and_then(|ips| ips.get(0))
                        .and_then(Value::as_str)
                })
                .map(str::to_string);
            let old_ip = old_spec
                .filter(|s| s.get("type").and_then(Value::as_str) != Some("ExternalName"))
                .and_then(|s| s.get("clusterIP"))
                .and_then(Value::as_str)
                .filter(|ip| !ip.is_empty());
            let ip = match (requested, old_ip) {
                (Some(ip), _) if ip == "None" => ip,
                (Some(ip), Some(old)) if ip == old => ip,
                (None, Some(old)) => old.to_string(),
                (Some(ip), _) => {
                    let parsed = ip
                        .parse::<Ipv4Addr>()
                        .ok()
                        .filter(|a| self.ranges.cidr.usable(*a));
                    let Some(address) = parsed else {
                        return Err(invalid(
                            "spec.clusterIPs[0]".into(),
                            json!(ip),
                            format!(
                                "provided IP is not in the valid range. The range of valid IPs is {}",
                                self.ranges.cidr
                            ),
                        ));
                    };
                    if !self.claim(&ip_key(address), owner, allocation).await? {
                        return Err(invalid(
                            "spec.clusterIPs[0]".into(),
                            json!(ip),
                            "provided IP is already allocated".into(),
                        ));
                    }
                    ip
                }
                (None, None) => self.any_address(owner, allocation).await?.to_string(),
            };
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
            spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
            spec.entry("ipFamilyPolicy")
                .or_insert_with(|| json!("SingleStack"));
        }

        let wants_node_ports = service_type == "NodePort"
            || (service_type == "LoadBalancer"
                && spec.get("allocateLoadBalancerNodePorts") != Some(&json!(false)));
        let old_ports: Vec<(i64, String, u16)> = old_spec
            .and_then(|s| s.get("ports"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p.get("port")?.as_i64()?,
                    protocol(p).to_string(),
                    u16::try_from(p.get("nodePort")?.as_i64()?).ok()?,
                ))
            })
            .collect();
        let held: HashSet<u16> = old_ports.iter().map(|(_, _, n)| *n).collect();
        let mut taken_here = HashSet::new();
        let ports = spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(ports.len());
        for (i, mut port) in ports.into_iter().enumerate() {
            let node_port = port
                .get("nodePort")
                .and_then(Value::as_i64)
                .filter(|n| *n != 0);
            let field = format!("spec.ports[{i}].nodePort");
            match (wants_node_ports, node_port) {
                (false, None) => {}
                (false, Some(_)) => {
                    return Err(ApiError::invalid(
                        GroupKind::new("", "Service"),
                        &name,
                        &[FieldError::forbidden(
                            field,
                            format!("may not be used when `type` is '{service_type}'"),
                        )],
                    ));
                }
                (true, Some(n)) => {
                    let n16 = u16::try_from(n)
                        .ok()
                        .filter(|n| self.ranges.node_ports.contains(n));
                    let Some(n16) = n16 else {
                        return Err(invalid(
                            field,
                            json!(n),
                            format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                self.ranges.node_ports.start(),
                                self.ranges.node_ports.end()
                            ),
                        ));
                    };
                    let ours = held.contains(&n16) || taken_here.contains(&n16);
                    if !ours && !self.claim(&port_key(n16), owner, allocation).await? {
                        return Err(invalid(
                            field,
                            json!(n),
                            "provided port is already allocated".into(),
                        ));
                    }
                    taken_here.insert(n16);
                }
                (true, None) => {
                    let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let reuse = old_ports
                        .iter()
                        .find(|(p, proto, n)| {
                            *p == number && proto == protocol(&port) && !taken_here.contains(n)
                        })
                        .map(|(_, _, n)| *n);
                    let n = match reuse {
                        Some(n) => n,
                        None => self.any_node_port(owner, allocation).await?,
                    };
                    taken_here.insert(n);
                    port["nodePort"] = json!(n);
                }
            }
            out.push(port);
        }
        if !out.is_empty() {
            spec.insert("ports".into(), Value::Array(out));
        }
        Ok(())
    }

    /// Gives back what a failed write allocated.
    pub(crate) async fn release(&self, owner: &str, allocation: Allocation) {
        for key in allocation.new_keys {
            release_key(self.store, key, owner).await;
        }
    }

    /// After `service` was deleted or replaced by `now`: gives back what it held that `now` does not.
    pub(crate) async fn release_unheld(&self, owner: &str, service: &Value, now: Option<&Value>) {
        let kept: HashSet<Bytes> = now.map(held_keys).unwrap_or_default().into_iter().collect();
        for key in held_keys(service) {
            if !kept.contains(&key) {
                release_key(self.store, key, owner).await;
            }
        }
    }

    async fn any_address(
        &self,
        owner: &str,
        allocation: &mut Allocation,
    ) -> Result<Ipv4Addr, ApiError> {
        let cidr = self.ranges.cidr;
        let used = self.used(IP_KEYS);
        for _ in 0..ATTEMPTS {
            let address = cidr.nth(random_below(cidr.size()));
            if !cidr.usable(address)
                || address == self.ranges.api_address()
                || used.contains(&address.to_string())
            {
                continue;
            }
            if self.claim(&ip_key(address), owner, allocation).await? {
                return Ok(address);
            }
        }
        Err(ApiError::internal(format!(
            "failed to allocate a serviceIP: range {cidr} is full"
        )))
    }

    async fn any_node_port(
        &self,
        owner: &str,
        allocation: &mut Allocation,
    ) -> Result<u16, ApiError> {
        let range = &self.ranges.node_ports;
        let used = self.used(PORT_KEYS);
        let size = u64::from(range.end() - range.start()) + 1;
        for _ in 0..ATTEMPTS {
            let port = range.start() + random_below(size) as u16;
            if used.contains(&port.to_string()) {
                continue;
            }
            if self.claim(&port_key(port), owner, allocation).await? {
                return Ok(port);
            }
        }
        Err(ApiError::internal(format!(
            "failed to allocate a nodePort: range {}-{} is full",
            range.start(),
            range.end()
        )))
    }

    /// What the cache says is allocated under `prefix` (a hint: the store decides).
    fn used(&self, prefix: &str) -> HashSet<String> {
        self.cache
            .list(prefix.as_bytes(), None, 0, |_| true)
            .objects
            .iter()
            .filter_map(|o| {
                std::str::from_utf8(&o.key[prefix.len()..])
                    .ok()
                    .map(str::to_string)
            })
            .collect()
    }

    /// Makes `owner` the holder of `key`; false if another Service holds it.
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        allocation: &mut Allocation,
    ) -> Result<bool, ApiError> {
        let value = Bytes::from(json!({"service": owner, "since": unix_now()}).to_string());
        match self
            .store
            .create(key.to_string().into(), value.clone())
            .await
        {
            Ok(_) => {
                allocation.new_keys.push(key.to_string().into());
                return Ok(true);
            }
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(kv) = self.store.get(key.as_bytes(), None).await? else {
            return Ok(false);
        };
        let holder: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        let holder_key = holder["service"].as_str().unwrap_or_default();
        if holder_key == owner {
            return Ok(true);
        }
        let since = holder["since"].as_u64().unwrap_or(0);
        if unix_now() < since + STALE_AFTER_SECONDS || self.still_holds(holder_key, key).await? {
            return Ok(false);
        }
        match self
            .store
            .update(key.to_string().into(), value, kv.mod_revision)
            .await
        {
            Ok(_) => {
                allocation.new_keys.push(key.to_string().into());
                Ok(true)
            }
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the Service stored at `service_key` still uses the allocation `key`.
    async fn still_holds(&self, service_key: &str, key: &str) -> Result<bool, ApiError> {
        let Some(kv) = self.store.get(service_key.as_bytes(), None).await? else {
            return Ok(false);
        };
        let service: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        Ok(held_keys(&service).iter().any(|k| k == key.as_bytes()))
    }
}

/// Gives back everything a deleted Service (stored at `owner`) held.
pub(crate) async fn release_held(store: &Arc<dyn Store>, owner: &str, service: &Value) {
    for key in held_keys(service) {
        release_key(store, key, owner).await;
    }
}

async fn release_key(store: &Arc<dyn Store>, key: Bytes, owner: &str) {
    let Ok(Some(kv)) = store.get(&key, None).await else {
        return;
    };
    if owner_of(&kv.value).as_deref() == Some(owner) {
        // Changed meanwhile means someone else holds it now: leave it.
        let _ = store.delete(key, Some(kv.mod_revision)).await;
    }
}

/// The allocation keys a Service's spec uses.
fn held_keys(service: &Value) -> Vec<Bytes> {
    let mut keys = Vec::new();
    let Some(spec) = service.get("spec") else {
        return keys;
    };
    if let Some(ip) = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    {
        keys.push(ip_key(ip).into());
    }
    for port in spec
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(n) = port
            .get("nodePort")
            .and_then(Value::as_i64)
            .and_then(|n| u16::try_from(n).ok())
        {
            keys.push(port_key(n).into());
        }
    }
    keys
}

fn ip_key(ip: Ipv4Addr) -> String {
    format!("{IP_KEYS}{ip}")
}

fn port_key(port: u16) -> String {
    format!("{PORT_KEYS}{port}")
}

fn owner_of(value: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(value).ok()?;
    Some(value.get("service")?.as_str()?.to_string())
}

fn protocol(port: &Value) -> &str {
    port.get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random number below `bound` (> 0).
fn random_below(bound: u64) -> u64 {
    let mut bytes = [0u8; 8];
    // ring's system random; on the (never seen) failure the first candidate is tried.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    u64::from_le_bytes(bytes) % bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_port_ranges_parse() {
        let cidr: Ipv4Cidr = "10.43.7.9/16".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cidr.to_string(), "10.43.0.0/16");
        assert!(cidr.usable(Ipv4Addr::new(10, 43, 255, 254)));
        assert!(!cidr.usable(Ipv4Addr::new(10, 43, 255, 255)), "broadcast");
        assert!(!cidr.usable(Ipv4Addr::new(10, 43, 0, 0)), "network");
        assert!(!cidr.usable(Ipv4Addr::new(10, 44, 0, 1)));
        assert!("10.43.0.0".parse::<Ipv4Cidr>().is_err());
        assert!("10.43.0.0/31".parse::<Ipv4Cidr>().is_err());
        assert_eq!(parse_port_range("30000-32767"), Ok(30000..=32767));
        assert!(parse_port_range("32767-30000").is_err());
        assert!(parse_port_range("0-10").is_err());
        assert_eq!(
            ServiceRanges::default().api_address(),
            Ipv4Addr::new(10, 43, 0, 1)
        );
    }
}

//! The proxy's state between syncs: what the table holds, and each Service's part as last computed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_client::k8s_openapi::api::core::v1::Service;
use gantry_client::k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::config::ProxyConfig;
use crate::desired::{SliceIndex, assemble, service_name, service_part};
use crate::model::{Part, Ruleset, UdpFrontend};
use crate::nft::{CommandError, Conntrack, NftApplier, UdpFlows};
use crate::render::{self, ChainDeletion, Transaction};

/// How long an emptied chain stays before it is deleted (see [`ChainDeletion::Deferred`]).
pub const LEFTOVER_DELAY: Duration = Duration::from_secs(1);

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// The table was replaced as a whole (first sync, or after a failure).
    pub full: bool,
    /// Bytes of nft input (0: nothing changed).
    pub bytes: usize,
    pub chains_added: usize,
    pub chains_changed: usize,
    pub chains_deleted: usize,
    pub elements_added: usize,
    pub elements_deleted: usize,
    /// Conntrack deletions run, and how many failed.
    pub conntrack_deletions: usize,
    pub conntrack_failures: usize,
}

/// Why a sync did not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("applying the service proxy's rules: {0}")]
pub struct SyncError(#[from] pub CommandError);

/// A Service's part and what it was computed from.
#[derive(Debug)]
struct Cached {
    /// The Service's and its slices' (name, resourceVersion), when all have one.
    versions: Option<(String, Vec<(String, String)>)>,
    part: Arc<Part>,
    /// The last [`Proxier::desired`] that saw the Service.
    seen: u64,
}

impl Cached {
    fn new(service: &Service, slices: &[&EndpointSlice], part: Arc<Part>) -> Cached {
        let versions = service
            .metadata
            .resource_version
            .clone()
            .and_then(|version| {
                let slices = slices
                    .iter()
                    .map(|s| {
                        Some((
                            s.metadata.name.clone()?,
                            s.metadata.resource_version.clone()?,
                        ))
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some((version, slices))
            });
        Cached {
            versions,
            part,
            seen: 0,
        }
    }

    /// Whether it was computed from this Service and these slices (by resourceVersion).
    fn matches(&self, service: &Service, slices: &[&EndpointSlice]) -> bool {
        let Some((version, versions)) = &self.versions else {
            return false;
        };
        service.metadata.resource_version.as_deref() == Some(version.as_str())
            && versions.len() == slices.len()
            && versions.iter().zip(slices).all(|((name, version), slice)| {
                slice.metadata.name.as_deref() == Some(name.as_str())
                    && slice.metadata.resource_version.as_deref() == Some(version.as_str())
            })
    }
}

/// Keeps the table in line with Services and EndpointSlices: [`Proxier::sync`] (all objects) or
/// [`Proxier::update`] then [`Proxier::sync_updates`] (the Services that changed) compute the desired
/// ruleset, reusing the parts of Services whose objects kept their resourceVersions, and apply the
/// difference from what the table holds, or the whole table at first and after a failure.
pub struct Proxier {
    config: ProxyConfig,
    nft: Box<dyn NftApplier>,
    conntrack: Box<dyn Conntrack>,
    applied: Option<Ruleset>,
    needs_full: bool,
    /// Each Service's part, by `namespace/name`.
    parts: BTreeMap<String, Cached>,
    generation: u64,
    /// Chains no longer used and since when.
    leftovers: BTreeMap<String, Instant>,
}

impl std::fmt::Debug for Proxier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxier")
            .field("table", &self.config.table)
            .field("synced", &self.applied.is_some())
            .field("needs_full", &self.needs_full)
            .finish_non_exhaustive()
    }
}

impl Proxier {
    /// A proxier for `config` (SCTP turned off when the kernel cannot NAT it). Nothing is applied yet.
    pub fn new(
        mut config: ProxyConfig,
        nft: Box<dyn NftApplier>,
        conntrack: Box<dyn Conntrack>,
    ) -> Proxier {
        if config.sctp && !nft.supports_sctp() {
            tracing::info!(
                "service proxy: the kernel cannot NAT SCTP; SCTP Service ports are not served"
            );
            config.sctp = false;
        }
        Proxier {
            config,
            nft,
            conntrack,
            applied: None,
            needs_full: true,
            parts: BTreeMap::new(),
            generation: 0,
            leftovers: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// What the table holds since the last successful sync.
    pub fn applied(&self) -> Option<&Ruleset> {
        self.applied.as_ref()
    }

    /// The next sync replaces the whole table.
    pub fn force_full(&mut self) {
        self.needs_full = true;
    }

    /// When a sync should run again to delete emptied chains, if any wait.
    pub fn next_cleanup(&self) -> Option<Instant> {
        self.leftovers.values().min().map(|t| *t + LEFTOVER_DELAY)
    }

    /// Records Service `namespace/name` as it is now (`None`: gone) with its EndpointSlices; the next
    /// [`Proxier::sync_updates`] applies it. Its part is computed again only if the Service's or a slice's
    /// resourceVersion changed (or they have none).
    pub fn update(
        &mut self,
        namespace: &str,
        name: &str,
        service: Option<&Service>,
        slices: &[&EndpointSlice],
    ) {
        let key = format!("{namespace}/{name}");
        let Some(service) = service else {
            self.parts.remove(&key);
            return;
        };
        let generation = self.generation;
        match self.parts.get_mut(&key) {
            Some(cached) if cached.matches(service, slices) => cached.seen = generation,
            _ => {
                let part = Arc::new(service_part(service, slices, &self.config));
                let mut cached = Cached::new(service, slices, part);
                cached.seen = generation;
                self.parts.insert(key, cached);
            }
        }
    }

    /// The desired ruleset for these objects (all of them: Services not among them are forgotten),
    /// reusing the parts of Services whose objects kept their resourceVersions.
    pub fn desired<'a>(
        &mut self,
        services: impl IntoIterator<Item = &'a Service>,
        endpoint_slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Ruleset {
        let index = SliceIndex::new(endpoint_slices);
        self.generation += 1;
        for service in services {
            if let Some((namespace, name)) = service_name(service) {
                self.update(
                    namespace,
                    name,
                    Some(service),
                    index.slices(namespace, name),
                );
            }
        }
        let generation = self.generation;
        self.parts.retain(|_, cached| cached.seen == generation);
        self.current()
    }

    /// The desired ruleset from what [`Proxier::update`] and [`Proxier::desired`] recorded.
    pub fn current(&self) -> Ruleset {
        let parts = self
            .parts
            .iter()
            .filter(|(_, cached)| !cached.part.is_empty())
            .map(|(key, cached)| (key.clone(), cached.part.clone()))
            .collect();
        assemble(&self.config, parts)
    }

    /// Applies what [`Proxier::update`] recorded (and deletes unused chains whose time has come).
    pub fn sync_updates(&mut self, now: Instant) -> Result<SyncReport, SyncError> {
        let new = self.current();
        self.apply(new, now)
    }

    /// Computes the table for these objects and applies what changed. On failure the table is as it was
    /// (nft transactions are atomic) and the next sync replaces it whole.
    pub fn sync<'a>(
        &mut self,
        services: impl IntoIterator<Item = &'a Service>,
        endpoint_slices: impl IntoIterator<Item = &'a EndpointSlice>,
        now: Instant,
    ) -> Result<SyncReport, SyncError> {
        let new = self.desired(services, endpoint_slices);
        self.apply(new, now)
    }

    /// Applies `new` (from [`Proxier::desired`] or [`crate::desired`]).
    pub fn apply(&mut self, mut new: Ruleset, now: Instant) -> Result<SyncReport, SyncError> {
        let leftovers = &self.leftovers;
        let deletable = |name: &str| {
            leftovers
                .get(name)
                .is_none_or(|t| *t + LEFTOVER_DELAY <= now)
        };
        let transaction: Transaction = match (&self.applied, self.needs_full) {
            (Some(old), false) => render::diff(old, &new, ChainDeletion::Deferred(&deletable))
                .unwrap_or_else(|why| {
                    tracing::info!("service proxy: replacing the whole table: {why}");
                    render::full(&new)
                }),
            _ => render::full(&new),
        };
        if !transaction.is_empty()
            && let Err(e) = self.nft.apply(&transaction.text)
        {
            self.needs_full = true;
            return Err(e.into());
        }
        let mut report = SyncReport {
            full: transaction.full,
            bytes: transaction.text.len(),
            chains_added: transaction.chains_added,
            chains_changed: transaction.chains_changed,
            chains_deleted: transaction.chains_deleted,
            elements_added: transaction.elements_added,
            elements_deleted: transaction.elements_deleted,
            ..SyncReport::default()
        };
        if let Some(old) = &self.applied {
            for flows in stale_udp_flows(old, &new) {
                report.conntrack_deletions += 1;
                if let Err(e) = self.conntrack.delete_udp(&flows) {
                    report.conntrack_failures += 1;
                    tracing::warn!(
                        "service proxy: deleting stale UDP conntrack entries {flows:?}: {e}"
                    );
                }
            }
        }
        self.leftovers
            .retain(|name, _| transaction.leftovers.contains_key(name));
        for name in transaction.leftovers.keys() {
            self.leftovers.entry(name.clone()).or_insert(now);
        }
        new.leftovers = transaction.leftovers;
        self.applied = Some(new);
        self.needs_full = false;
        Ok(report)
    }
}

/// The UDP conntrack entries to delete going from `old` to `new`: those DNATed to an endpoint a destination
/// no longer uses (including destinations that are gone), and all of a destination that had no endpoint
/// and now has (entries made while it had none would never be NATed).
pub fn stale_udp_flows(old: &Ruleset, new: &Ruleset) -> BTreeSet<UdpFlows> {
    let merged = |rs: &Ruleset| {
        let mut all: BTreeMap<UdpFrontend, BTreeSet<Ipv4Addr>> = BTreeMap::new();
        for part in rs.parts() {
            for (frontend, ips) in &part.udp {
                all.entry(*frontend)
                    .or_default()
                    .extend(ips.iter().copied());
            }
        }
        all
    };
    // Only parts that changed can differ; comparing them all is cheap next to a sync, but skip the
    // common case of nothing UDP at all.
    let (before, after) = (merged(old), merged(new));
    let mut flows = BTreeSet::new();
    for (frontend, ips) in &before {
        let now = after.get(frontend);
        for ip in ips {
            if now.is_none_or(|n| !n.contains(ip)) {
                flows.insert(UdpFlows {
                    dst: frontend.ip,
                    dport: Some(frontend.port),
                    dnat_to: Some(*ip),
                });
            }
        }
    }
    for (frontend, ips) in &after {
        if !ips.is_empty() && before.get(frontend).is_none_or(BTreeSet::is_empty) {
            flows.insert(UdpFlows {
                dst: frontend.ip,
                dport: Some(frontend.port),
                dnat_to: None,
            });
        }
    }
    flows
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::testutil::*;

    fn dns(endpoints: &[Ep]) -> (Service, EndpointSlice) {
        (
            service(
                "kube-system",
                "dns",
                "10.151.0.53",
                &[("dns", "UDP", 53, 30053)],
            ),
            slice(
                "kube-system",
                "dns",
                "dns-1",
                &[("dns", "UDP", 53)],
                endpoints,
            ),
        )
    }

    #[test]
    fn first_sync_is_full_then_only_differences() {
        let recorder = Recorder::default();
        let mut proxier = recorder.proxier();
        let (svc, s) = dns(&[ready("10.150.1.2", "node-a")]);
        let now = Instant::now();
        let report = proxier.sync([&svc], [&s], now).unwrap();
        assert!(report.full);
        let (svc2, mut s2) = dns(&[ready("10.150.1.2", "node-a"), ready("10.150.1.3", "node-a")]);
        s2.metadata.resource_version = Some("2".into());
        let report = proxier.sync([&svc2], [&s2], now).unwrap();
        assert!(!report.full);
        let report = proxier.sync([&svc2], [&s2], now).unwrap();
        assert_eq!(report.bytes, 0);
        let transactions = recorder.transactions();
        assert_eq!(transactions.len(), 2);
        assert!(transactions[0].starts_with("add table ip gtpx\ndelete table ip gtpx\n"));
        assert!(!transactions[1].contains("delete table"));
        assert!(transactions[1].contains("10.151.0.53 . 53 . 1 : 10.150.1.3 . 53"));
    }

    #[test]
    fn a_failed_sync_is_followed_by_a_full_one() {
        let recorder = Recorder::default();
        let mut proxier = recorder.proxier();
        let (svc, s) = dns(&[ready("10.150.1.2", "node-a")]);
        let now = Instant::now();
        proxier.sync([&svc], [&s], now).unwrap();
        recorder.fail.store(true, Ordering::SeqCst);
        let (svc2, mut s2) = dns(&[]);
        s2.metadata.resource_version = Some("2".into());
        assert!(proxier.sync([&svc2], [&s2], now).is_err());
        recorder.fail.store(false, Ordering::SeqCst);
        let report = proxier.sync([&svc2], [&s2], now).unwrap();
        assert!(report.full);
        // The table kept the old rules, so the endpoint that went is still cleaned up after.
        assert_eq!(report.conntrack_deletions, 2);
    }

    #[test]
    fn unchanged_services_are_not_computed_again() {
        let recorder = Recorder::default();
        let mut proxier = recorder.proxier();
        let (svc, s) = dns(&[ready("10.150.1.2", "node-a")]);
        let a = proxier.desired([&svc], [&s]);
        let b = proxier.desired([&svc], [&s]);
        assert!(Arc::ptr_eq(
            &a.services["kube-system/dns"],
            &b.services["kube-system/dns"]
        ));
        // A new resourceVersion, of the Service or of a slice, computes it again.
        let mut s2 = s.clone();
        s2.metadata.resource_version = Some("2".into());
        let c = proxier.desired([&svc], [&s2]);
        assert!(!Arc::ptr_eq(
            &b.services["kube-system/dns"],
            &c.services["kube-system/dns"]
        ));
        // Objects without resourceVersions are computed every time.
        let mut unversioned = svc.clone();
        unversioned.metadata.resource_version = None;
        let d = proxier.desired([&unversioned], [&s2]);
        let e = proxier.desired([&unversioned], [&s2]);
        assert!(!Arc::ptr_eq(
            &d.services["kube-system/dns"],
            &e.services["kube-system/dns"]
        ));
        assert_eq!(d, e);
    }

    #[test]
    fn stale_udp_conntrack_entries_are_deleted() {
        let recorder = Recorder::default();
        let mut proxier = recorder.proxier();
        let now = Instant::now();
        let (svc, s) = dns(&[ready("10.150.1.2", "node-a"), ready("10.150.1.3", "node-b")]);
        proxier.sync([&svc], [&s], now).unwrap();
        assert!(
            recorder.take_flows().is_empty(),
            "nothing to clean at the first sync"
        );
        let (svc, mut s) = dns(&[ready("10.150.1.3", "node-b")]);
        s.metadata.resource_version = Some("2".into());
        proxier.sync([&svc], [&s], now).unwrap();
        let gone: Ipv4Addr = "10.150.1.2".parse().unwrap();
        assert_eq!(
            recorder.take_flows(),
            [
                UdpFlows {
                    dst: None,
                    dport: Some(30053),
                    dnat_to: Some(gone)
                },
                UdpFlows {
                    dst: Some("10.151.0.53".parse().unwrap()),
                    dport: Some(53),
                    dnat_to: Some(gone)
                },
            ]
        );
        // No endpoint, then one again: what was made meanwhile goes.
        let (svc, mut s) = dns(&[]);
        s.metadata.resource_version = Some("3".into());
        proxier.sync([&svc], [&s], now).unwrap();
        recorder.take_flows();
        let (svc, mut s) = dns(&[ready("10.150.1.4", "node-b")]);
        s.metadata.resource_version = Some("4".into());
        proxier.sync([&svc], [&s], now).unwrap();
        assert_eq!(
            recorder.take_flows(),
            [
                UdpFlows {
                    dst: None,
                    dport: Some(30053),
                    dnat_to: None
                },
                UdpFlows {
                    dst: Some("10.151.0.53".parse().unwrap()),
                    dport: Some(53),
                    dnat_to: None
                },
            ]
        );
        // TCP Services leave conntrack alone.
        let web = service("default", "web", "10.151.0.10", &[("http", "TCP", 80, 0)]);
        proxier.sync([&web], [], now).unwrap();
        let flows = recorder.take_flows();
        assert!(
            flows
                .iter()
                .all(|f| f.dnat_to == Some("10.150.1.4".parse().unwrap())),
            "{flows:?}"
        );
    }

    #[test]
    fn unused_chains_are_deleted_a_second_later() {
        let recorder = Recorder::default();
        let mut proxier = recorder.proxier();
        let t0 = Instant::now();
        let (svc, s) = dns(&[ready("10.150.1.2", "node-a")]);
        proxier.sync([&svc], [&s], t0).unwrap();
        assert_eq!(proxier.next_cleanup(), None);
        let (svc, mut s) = dns(&[ready("10.150.1.2", "node-a"), ready("10.150.1.3", "node-a")]);
        s.metadata.resource_version = Some("2".into());
        proxier.sync([&svc], [&s], t0).unwrap();
        assert_eq!(proxier.next_cleanup(), Some(t0 + LEFTOVER_DELAY));
        assert!(!recorder.transactions()[1].contains("pick-udp-1\n"));
        assert!(!recorder.transactions()[1].contains("delete chain"));
        proxier.sync([&svc], [&s], t0 + LEFTOVER_DELAY / 2).unwrap();
        assert_eq!(recorder.transactions().len(), 2, "too early");
        proxier.sync([&svc], [&s], t0 + LEFTOVER_DELAY).unwrap();
        assert_eq!(
            recorder.transactions()[2],
            "add table ip gtpx\n\
             flush chain ip gtpx external-nodeport-udp-1\n\
             flush chain ip gtpx pick-nodeport-udp-1\n\
             flush chain ip gtpx pick-udp-1\n\
             delete chain ip gtpx external-nodeport-udp-1\n\
             delete chain ip gtpx pick-nodeport-udp-1\n\
             delete chain ip gtpx pick-udp-1\n"
        );
        assert_eq!(proxier.next_cleanup(), None);
        assert!(proxier.applied().unwrap().leftovers.is_empty());
    }
}

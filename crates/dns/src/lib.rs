//! Cluster DNS for the node agent, after the Kubernetes DNS specification
//! (<https://github.com/kubernetes/dns/blob/master/docs/specification.md>, schema 1.0.1).
//!
//! - [`zone`]: the records of the cluster domain built from Services and EndpointSlices, updated one Service at
//!   a time, and the answers to queries (no I/O).
//! - [`server`]: UDP and TCP serving of the zone; every other query relayed to the node's resolvers.
//! - [`run`]: both, fed by watches of Services and EndpointSlices; [`Readiness`] says when the zone first
//!   became complete (until then its names get SERVFAIL, never a negative answer that would be cached).

pub mod resolv;
pub mod server;
pub mod zone;

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::StreamExt;
use gantry_client::k8s_openapi::api::core::v1::Service;
use gantry_client::k8s_openapi::api::discovery::v1::EndpointSlice;
use gantry_client::kube::runtime::{WatchStreamExt, watcher};
use gantry_client::{Api, Client};
use tokio::sync::watch;

pub use resolv::upstreams_from_resolv_conf;
pub use server::{Listeners, ServerConfig, SharedZone, serve};
pub use zone::{Zone, ZoneConfig, ZoneError};

/// How the cluster DNS is set up.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// The TTL of the zone's records and of its negative answers, in seconds (5).
    pub ttl: u32,
    /// Resolvers for every other name, in order (see [`upstreams_from_resolv_conf`]).
    pub upstreams: Vec<std::net::SocketAddr>,
    /// How long each upstream gets to answer (2 s).
    pub forward_timeout: Duration,
    /// Set once both watches have listed.
    pub ready: Readiness,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            cluster_domain: ZoneConfig::default().domain,
            ttl: ZoneConfig::default().ttl,
            upstreams: Vec::new(),
            forward_timeout: ServerConfig::default().timeout,
            ready: Readiness::default(),
        }
    }
}

/// Whether the zone has been complete once (clones share it).
#[derive(Debug, Clone)]
pub struct Readiness(Arc<watch::Sender<bool>>);

impl Default for Readiness {
    fn default() -> Self {
        Readiness(Arc::new(watch::Sender::new(false)))
    }
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the zone is ready.
    pub async fn wait(&self) {
        let mut ready = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = ready.wait_for(|r| *r).await;
    }

    fn set(&self) {
        self.0.send_replace(true);
    }
}

/// Why the cluster DNS stopped.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error("DNS server: {0}")]
    Serve(#[from] std::io::Error),
}

/// Serves the cluster DNS on `listeners` until a listener fails: the zone fed by watches of Services and
/// EndpointSlices (relisted after errors, with kube-rs's back-off), everything else forwarded upstream.
pub async fn run(client: Client, config: DnsConfig, listeners: Listeners) -> Result<(), DnsError> {
    let mut zone = Zone::new(&ZoneConfig {
        domain: config.cluster_domain.clone(),
        ttl: config.ttl,
    })?;
    zone.set_complete(false);
    let zone: SharedZone = Arc::new(RwLock::new(zone));
    let server = ServerConfig {
        upstreams: config.upstreams.clone(),
        timeout: config.forward_timeout,
        ..ServerConfig::default()
    };
    tokio::select! {
        served = serve(zone.clone(), server, listeners) => served?,
        () = feed(client, zone, config.ready) => {}
    }
    Ok(())
}

/// A change seen by one of the two watches.
#[allow(clippy::large_enum_variant)] // moved once, from the watch to the zone
enum Change {
    Service(Result<watcher::Event<Service>, watcher::Error>),
    Slice(Result<watcher::Event<EndpointSlice>, watcher::Error>),
}

/// Tracks what a (re)listing showed, so that what it lacked can be dropped when it ends.
#[derive(Debug, Default)]
struct Relist {
    listing: Option<HashSet<String>>,
    listed: bool,
}

fn key_of(
    meta: &gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

/// Keeps `zone` up to date with the cluster's Services and EndpointSlices; never returns.
pub async fn feed(client: Client, zone: SharedZone, ready: Readiness) {
    let config = watcher::Config::default().any_semantic();
    let services = watcher(Api::<Service>::all(client.clone()), config.clone())
        .default_backoff()
        .map(Change::Service)
        .boxed();
    let slices = watcher(Api::<EndpointSlice>::all(client), config)
        .default_backoff()
        .map(Change::Slice)
        .boxed();
    let mut changes = futures::stream::select(services, slices);
    let (mut service_relist, mut slice_relist) = (Relist::default(), Relist::default());
    while let Some(change) = changes.next().await {
        let mut zone = zone.write().unwrap_or_else(PoisonError::into_inner);
        match change {
            Change::Service(Err(e)) => tracing::warn!("DNS: watch of Services: {e}"),
            Change::Slice(Err(e)) => tracing::warn!("DNS: watch of EndpointSlices: {e}"),
            Change::Service(Ok(event)) => match event {
                watcher::Event::Init => service_relist.listing = Some(HashSet::new()),
                watcher::Event::InitApply(service) | watcher::Event::Apply(service) => {
                    if let Some(listing) = &mut service_relist.listing {
                        listing.insert(key_of(&service.metadata));
                    }
                    zone.apply_service(&service);
                }
                watcher::Event::Delete(service) => {
                    let meta = &service.metadata;
                    zone.delete_service(
                        meta.namespace.as_deref().unwrap_or(""),
                        meta.name.as_deref().unwrap_or(""),
                    );
                }
                watcher::Event::InitDone => {
                    let listed = service_relist.listing.take().unwrap_or_default();
                    for key in zone.service_keys() {
                        if !listed.contains(&key)
                            && let Some((namespace, name)) = key.split_once('/')
                        {
                            zone.delete_service(namespace, name);
                        }
                    }
                    service_relist.listed = true;
                }
            },
            Change::Slice(Ok(event)) => match event {
                watcher::Event::Init => slice_relist.listing = Some(HashSet::new()),
                watcher::Event::InitApply(slice) | watcher::Event::Apply(slice) => {
                    if let Some(listing) = &mut slice_relist.listing {
                        listing.insert(key_of(&slice.metadata));
                    }
                    zone.apply_endpoint_slice(&slice);
                }
                watcher::Event::Delete(slice) => {
                    let meta = &slice.metadata;
                    zone.delete_endpoint_slice(
                        meta.namespace.as_deref().unwrap_or(""),
                        meta.name.as_deref().unwrap_or(""),
                    );
                }
                watcher::Event::InitDone => {
                    let listed = slice_relist.listing.take().unwrap_or_default();
                    for key in zone.endpoint_slice_keys() {
                        if !listed.contains(&key)
                            && let Some((namespace, name)) = key.split_once('/')
                        {
                            zone.delete_endpoint_slice(namespace, name);
                        }
                    }
                    slice_relist.listed = true;
                }
            },
        }
        if !zone.is_complete() && service_relist.listed && slice_relist.listed {
            zone.set_complete(true);
            drop(zone);
            tracing::info!("DNS: the cluster zone is complete");
            ready.set();
        }
    }
}

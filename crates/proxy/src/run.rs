//! The feeding side: watches of Services and EndpointSlices (kube-rs watchers, which relist after errors)
//! into a sync loop that applies bursts of changes together, at most once per `min_sync_period`
//! (kube-proxy's minSyncPeriod), starting once both watches have listed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use gantry_client::k8s_openapi::api::core::v1::Service;
use gantry_client::k8s_openapi::api::discovery::v1::EndpointSlice;
use gantry_client::kube::Resource;
use gantry_client::kube::runtime::{WatchStreamExt, watcher};
use gantry_client::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::ProxyConfig;
use crate::desired::{SERVICE_NAME_LABEL, SERVICE_PROXY_NAME_LABEL};
use crate::nft::{ConntrackTool, Nft};
use crate::proxier::{Proxier, SyncError, SyncReport};

/// The longest wait before retrying a sync that failed.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// A running proxy.
#[derive(Debug)]
pub struct ProxyHandle {
    synced: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl ProxyHandle {
    /// Waits until the first sync has programmed the whole table.
    pub async fn synced(&mut self) {
        let _ = self.synced.wait_for(|synced| *synced).await;
    }

    /// Whether the first sync is done.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Stops the proxy (the table stays as it is).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Waits for the proxy's task (it ends only when aborted).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Runs the proxy for this node: the real `nft` and `conntrack` in the current network namespace.
/// Never returns; see [`spawn`] for a handle that says when the first sync is done.
pub async fn run(client: Client, config: ProxyConfig) {
    spawn(client, config).join().await;
}

/// Starts the proxy in a task.
pub fn spawn(client: Client, config: ProxyConfig) -> ProxyHandle {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let proxier = tokio::task::spawn_blocking(move || {
            Proxier::new(
                config,
                Box::new(Nft::default()),
                Box::new(ConntrackTool::default()),
            )
        })
        .await;
        let Ok(proxier) = proxier else {
            tracing::error!("service proxy: could not start");
            return;
        };
        let services = watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default()
                .labels(&format!("!{SERVICE_PROXY_NAME_LABEL}"))
                .any_semantic(),
        )
        .default_backoff();
        let slices = watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default()
                .labels(&format!(
                    "!{SERVICE_PROXY_NAME_LABEL},!service.kubernetes.io/headless"
                ))
                .any_semantic(),
        )
        .default_backoff();
        drive(services, slices, proxier, tx).await;
    });
    ProxyHandle { synced: rx, task }
}

/// The objects of one watch by `namespace/name`, and what its current listing has shown.
#[derive(Debug)]
struct Objects<K> {
    by_key: HashMap<String, Arc<K>>,
    listing: Option<HashSet<String>>,
    listed: bool,
}

impl<K> Default for Objects<K> {
    fn default() -> Self {
        Objects {
            by_key: HashMap::new(),
            listing: None,
            listed: false,
        }
    }
}

/// An object that changed: what it was and what it is (`None`: absent).
type Change<K> = (Option<Arc<K>>, Option<Arc<K>>);

impl<K: Resource> Objects<K> {
    /// Applies a watch event; what changed.
    fn event(&mut self, event: watcher::Event<K>) -> Vec<Change<K>> {
        match event {
            watcher::Event::Init => {
                self.listing = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                let key = key_of(&object);
                if let Some(listing) = &mut self.listing {
                    listing.insert(key.clone());
                }
                self.put(key, object)
            }
            watcher::Event::Apply(object) => self.put(key_of(&object), object),
            watcher::Event::Delete(object) => match self.by_key.remove(&key_of(&object)) {
                Some(old) => vec![(Some(old), None)],
                None => Vec::new(),
            },
            watcher::Event::InitDone => {
                self.listed = true;
                let Some(listing) = self.listing.take() else {
                    return Vec::new();
                };
                let gone: Vec<String> = self
                    .by_key
                    .keys()
                    .filter(|k| !listing.contains(*k))
                    .cloned()
                    .collect();
                gone.into_iter()
                    .filter_map(|k| self.by_key.remove(&k))
                    .map(|old| (Some(old), None))
                    .collect()
            }
        }
    }

    fn put(&mut self, key: String, object: K) -> Vec<Change<K>> {
        let version = object.meta().resource_version.clone();
        match self.by_key.get(&key) {
            Some(old) if version.is_some() && old.meta().resource_version == version => Vec::new(),
            _ => {
                let new = Arc::new(object);
                let old = self.by_key.insert(key, new.clone());
                vec![(old, Some(new))]
            }
        }
    }
}

fn key_of<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// The `namespace/name` of the Service an EndpointSlice belongs to.
fn service_of(slice: &EndpointSlice) -> Option<String> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(format!(
        "{}/{service}",
        slice.metadata.namespace.as_deref().unwrap_or_default()
    ))
}

/// What the watches show, with the slices indexed by Service and the Services changed since the last
/// sync.
#[derive(Debug, Default)]
struct State {
    services: Objects<Service>,
    slices: Objects<EndpointSlice>,
    /// Service key → slice name → slice.
    slices_by_service: HashMap<String, BTreeMap<String, Arc<EndpointSlice>>>,
    dirty: BTreeSet<String>,
}

impl State {
    fn service_event(&mut self, event: watcher::Event<Service>) {
        for (old, new) in self.services.event(event) {
            if let Some(object) = new.as_ref().or(old.as_ref()) {
                self.dirty.insert(key_of(&**object));
            }
        }
    }

    fn slice_event(&mut self, event: watcher::Event<EndpointSlice>) {
        for (old, new) in self.slices.event(event) {
            if let Some(old) = old
                && let Some(service) = service_of(&old)
            {
                if let Some(slices) = self.slices_by_service.get_mut(&service) {
                    slices.remove(old.metadata.name.as_deref().unwrap_or_default());
                    if slices.is_empty() {
                        self.slices_by_service.remove(&service);
                    }
                }
                self.dirty.insert(service);
            }
            if let Some(new) = new
                && let Some(service) = service_of(&new)
            {
                self.slices_by_service
                    .entry(service.clone())
                    .or_default()
                    .insert(new.metadata.name.clone().unwrap_or_default(), new.clone());
                self.dirty.insert(service);
            }
        }
    }

    fn listed(&self) -> bool {
        self.services.listed && self.slices.listed
    }

    /// The changed Services as they are now, with their slices; forgets that they changed.
    fn take_updates(&mut self) -> Vec<Update> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|key| {
                let service = self.services.by_key.get(&key).cloned();
                let slices = self
                    .slices_by_service
                    .get(&key)
                    .map(|s| s.values().cloned().collect())
                    .unwrap_or_default();
                Update {
                    key,
                    service,
                    slices,
                }
            })
            .collect()
    }
}

/// A Service (or its absence) and its slices, to hand to [`Proxier::update`].
#[derive(Debug)]
struct Update {
    key: String,
    service: Option<Arc<Service>>,
    slices: Vec<Arc<EndpointSlice>>,
}

type SyncResult = (Proxier, Result<SyncReport, SyncError>);

/// The sync loop over two event streams. Syncs run on the blocking pool, one at a time, while events keep
/// arriving; `synced` turns true after the first successful sync.
pub(crate) async fn drive<S, E, L, F>(
    services: S,
    slices: L,
    proxier: Proxier,
    synced: watch::Sender<bool>,
) where
    S: Stream<Item = Result<watcher::Event<Service>, E>> + Send,
    L: Stream<Item = Result<watcher::Event<EndpointSlice>, F>> + Send,
    E: Display,
    F: Display,
{
    let min_period = proxier.config().min_sync_period;
    let mut services = std::pin::pin!(services);
    let mut slices = std::pin::pin!(slices);
    let mut state = State::default();
    let mut proxier = Some(proxier);
    let mut in_flight: Option<JoinHandle<SyncResult>> = None;
    let mut last_start: Option<Instant> = None;
    let mut retry_at: Option<Instant> = None;
    let mut backoff: Option<Duration> = None;
    let mut first = true;
    loop {
        let deadline = match &proxier {
            Some(p) if state.listed() => {
                let earliest = |t: Instant| last_start.map_or(t, |l| t.max(l + min_period));
                if retry_at.is_some() {
                    retry_at
                } else if first || !state.dirty.is_empty() {
                    Some(earliest(Instant::now()))
                } else {
                    p.next_cleanup().map(|t| earliest(Instant::from_std(t)))
                }
            }
            _ => None,
        };
        tokio::select! {
            Some(event) = services.next() => match event {
                Ok(event) => state.service_event(event),
                Err(e) => tracing::warn!("service proxy: watching services: {e}"),
            },
            Some(event) = slices.next() => match event {
                Ok(event) => state.slice_event(event),
                Err(e) => tracing::warn!("service proxy: watching endpointslices: {e}"),
            },
            done = join(&mut in_flight) => {
                in_flight = None;
                let Ok((p, result)) = done else {
                    tracing::error!("service proxy: a sync panicked; stopping");
                    return;
                };
                proxier = Some(p);
                match result {
                    Ok(report) => {
                        backoff = None;
                        first = false;
                        if report.bytes > 0 {
                            tracing::debug!(?report, "service proxy: synced");
                        }
                        synced.send_if_modified(|s| !std::mem::replace(s, true));
                    }
                    Err(e) => {
                        let wait = backoff.map_or(Duration::from_secs(1), |w| (w * 2).min(MAX_RETRY));
                        tracing::warn!("service proxy: {e}; trying again in {wait:?}");
                        backoff = Some(wait);
                        retry_at = Some(Instant::now() + wait);
                    }
                }
            },
            () = sleep_until(deadline) => {
                let Some(mut p) = proxier.take() else { continue };
                retry_at = None;
                let now = Instant::now();
                last_start = Some(now);
                let updates = state.take_updates();
                in_flight = Some(tokio::task::spawn_blocking(move || {
                    for update in &updates {
                        let (namespace, name) = update.key.split_once('/').unwrap_or(("", &update.key));
                        let slices: Vec<&EndpointSlice> = update.slices.iter().map(|s| &**s).collect();
                        p.update(namespace, name, update.service.as_deref(), &slices);
                    }
                    let result = p.sync_updates(now.into_std());
                    (p, result)
                }));
            },
        }
    }
}

/// The result of the sync in flight; never, when there is none.
async fn join(
    in_flight: &mut Option<JoinHandle<SyncResult>>,
) -> Result<SyncResult, tokio::task::JoinError> {
    match in_flight {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use futures::channel::mpsc;

    use super::*;
    use crate::testutil::*;

    type Events<K> = mpsc::UnboundedSender<Result<watcher::Event<K>, String>>;

    struct Harness {
        services: Events<Service>,
        slices: Events<EndpointSlice>,
        synced: watch::Receiver<bool>,
        recorder: Recorder,
        task: JoinHandle<()>,
    }

    fn start() -> Harness {
        let (services, service_rx) = mpsc::unbounded();
        let (slices, slice_rx) = mpsc::unbounded();
        let recorder = Recorder::default();
        let mut proxier_config = config();
        proxier_config.min_sync_period = Duration::from_millis(40);
        let proxier = Proxier::new(
            proxier_config,
            Box::new(recorder.clone()),
            Box::new(recorder.clone()),
        );
        let (tx, synced) = watch::channel(false);
        let task = tokio::spawn(drive(service_rx, slice_rx, proxier, tx));
        Harness {
            services,
            slices,
            synced,
            recorder,
            task,
        }
    }

    fn list<K>(events: &Events<K>, objects: Vec<K>) {
        events.unbounded_send(Ok(watcher::Event::Init)).unwrap();
        for object in objects {
            events
                .unbounded_send(Ok(watcher::Event::InitApply(object)))
                .unwrap();
        }
        events.unbounded_send(Ok(watcher::Event::InitDone)).unwrap();
    }

    async fn until(what: &str, mut condition: impl FnMut() -> bool) {
        for _ in 0..500 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    fn web_slice(version: u32, ips: &[&str]) -> EndpointSlice {
        let eps: Vec<Ep> = ips.iter().map(|ip| ready(ip, "node-b")).collect();
        let mut s = slice("default", "web", "web-1", &[("http", "TCP", 8080)], &eps);
        s.metadata.resource_version = Some(version.to_string());
        s
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn syncs_once_both_watches_listed_and_says_so() {
        let mut h = start();
        let web = service("default", "web", "10.151.0.10", &[("http", "TCP", 80, 0)]);
        list(&h.services, vec![web]);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            h.recorder.transactions().is_empty(),
            "no sync before the slices are listed"
        );
        assert!(!*h.synced.borrow());
        h.slices
            .unbounded_send(Err("connection reset".into()))
            .unwrap();
        list(&h.slices, vec![web_slice(1, &["10.150.2.2"])]);
        tokio::time::timeout(Duration::from_secs(5), h.synced.wait_for(|s| *s))
            .await
            .unwrap()
            .unwrap();
        let transactions = h.recorder.transactions();
        assert_eq!(transactions.len(), 1);
        assert!(transactions[0].contains("delete table ip gtpx"));
        assert!(transactions[0].contains("10.151.0.10 . 80 . 0 : 10.150.2.2 . 8080"));
        h.task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bursts_of_changes_are_applied_together() {
        let h = start();
        list(
            &h.services,
            vec![service(
                "default",
                "web",
                "10.151.0.10",
                &[("http", "TCP", 80, 0)],
            )],
        );
        list(&h.slices, vec![web_slice(1, &["10.150.2.2"])]);
        until("the first sync", || h.recorder.transactions().len() == 1).await;
        for version in 2..=40 {
            let ips: Vec<String> = (0..version % 5 + 1)
                .map(|i| format!("10.150.2.{}", i + 2))
                .collect();
            let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
            h.slices
                .unbounded_send(Ok(watcher::Event::Apply(web_slice(version, &ips))))
                .unwrap();
        }
        h.slices
            .unbounded_send(Ok(watcher::Event::Apply(web_slice(41, &["10.150.9.9"]))))
            .unwrap();
        until("the last version", || {
            let t = h.recorder.transactions();
            t.len() > 1 && t.last().unwrap().contains("10.150.9.9 . 8080")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let count = h.recorder.transactions().len();
        assert!(count <= 4, "{count} transactions for one burst");
        h.task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relist_forgets_what_it_no_longer_shows() {
        let h = start();
        let web = service("default", "web", "10.151.0.10", &[("http", "TCP", 80, 0)]);
        let db = service("default", "db", "10.151.0.11", &[("", "TCP", 5432, 0)]);
        list(&h.services, vec![web.clone(), db]);
        list(&h.slices, vec![]);
        until("the first sync", || h.recorder.transactions().len() == 1).await;
        list(&h.services, vec![web]);
        until("the relist", || h.recorder.transactions().len() == 2).await;
        let last = h.recorder.transactions().pop().unwrap();
        assert!(
            last.contains(
                "delete element ip gtpx no-endpoint-services { 10.151.0.11 . tcp . 5432 }"
            ),
            "{last}"
        );
        h.task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_is_retried_in_full() {
        let h = start();
        list(
            &h.services,
            vec![service(
                "default",
                "web",
                "10.151.0.10",
                &[("http", "TCP", 80, 0)],
            )],
        );
        h.recorder.fail.store(true, Ordering::SeqCst);
        list(&h.slices, vec![web_slice(1, &["10.150.2.2"])]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!*h.synced.borrow());
        h.recorder.fail.store(false, Ordering::SeqCst);
        until("the retry", || h.recorder.transactions().len() == 1).await;
        assert!(h.recorder.transactions()[0].contains("delete table ip gtpx"));
        until("the signal", || *h.synced.borrow()).await;
        h.task.abort();
    }
}

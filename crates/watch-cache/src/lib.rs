//! The watch cache: the API server's copy of everything under one store prefix, kept current by a single
//! store watch, as kube-apiserver's cacher is.
//!
//! - Objects are kept as the JSON the API returns (resourceVersion included), so GET and LIST copy bytes
//!   instead of decoding and encoding, together with their labels and the fields selectors commonly name, so
//!   selecting needs no parsing.
//! - Reads are consistent: [`WatchCache::wait_fresh`] waits until the cache has seen the store's current
//!   revision before a read is served (kube-apiserver's consistent reads from cache).
//! - The latest events are kept in a ring that every watcher reads from; a watch from before the ring is the
//!   caller's to serve from the store, and a watcher that falls behind the ring ends with `Compacted` (410).
//! - When the store watch breaks (etcd restarted, the cache fell behind the store's own history), the cache
//!   lists the store again and every watcher ends with `Compacted`, so clients list and watch again.

mod object;

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use gantry_store::{EventKind, KeyValue, Revision, Store, StoreError, WatchEvent};
use tokio::sync::watch;

pub use object::{Object, is_indexed_field};

/// Events kept for watchers; older ones are read from the store. A watcher that falls behind the ring lists
/// everything again, which costs the server far more than the ring's memory (bursts of thousands of pods
/// and their status updates, read by a dozen controllers, overran 2,048 events; kube-apiserver's rings
/// grow to 102,400).
pub const EVENT_CAPACITY: usize = 32_768;
/// How long a consistent read waits for the cache to catch up with the store before the caller reads the
/// store itself.
const FRESH_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause before listing the store again after its watch broke.
const RELIST_BACKOFF: Duration = Duration::from_millis(200);
/// Keys per store range while listing.
const LIST_PAGE: usize = 10_000;

/// What a watcher sees of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change. For a delete, `object` is the last version with the delete's resourceVersion.
#[derive(Debug)]
pub struct Event {
    pub kind: EventType,
    pub object: Arc<Object>,
    /// The version this change replaced (None for creates).
    pub prev: Option<Arc<Object>>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.object.revision
    }
}

/// A page of a list: the objects, the revision they were read at, and whether keys follow the last one.
#[derive(Debug)]
pub struct Listed {
    pub revision: Revision,
    pub objects: Vec<Arc<Object>>,
    pub more: bool,
}

/// The cache; cheap to clone (all clones share one copy).
#[derive(Clone)]
pub struct WatchCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.read();
        f.debug_struct("WatchCache")
            .field("revision", &state.revision)
            .field("objects", &state.objects.len())
            .field("events", &state.events.len())
            .finish()
    }
}

struct Inner {
    store: Arc<dyn Store>,
    prefix: Bytes,
    capacity: usize,
    state: RwLock<State>,
    /// The revision the cache has reached; watchers and consistent reads wait on it.
    progress: watch::Sender<Revision>,
}

struct State {
    objects: BTreeMap<Bytes, Arc<Object>>,
    /// The latest events, in revision order.
    events: VecDeque<Arc<Event>>,
    /// Every change after this revision is in `events`; a watcher positioned before it may have missed some.
    complete_after: Revision,
    revision: Revision,
}

impl WatchCache {
    /// Lists everything under `prefix` and keeps it current from then on (a task on the current runtime).
    pub async fn start(store: Arc<dyn Store>, prefix: Bytes) -> Result<Self, StoreError> {
        Self::with_capacity(store, prefix, EVENT_CAPACITY).await
    }

    /// [`start`](Self::start) keeping `capacity` events.
    pub async fn with_capacity(
        store: Arc<dyn Store>,
        prefix: Bytes,
        capacity: usize,
    ) -> Result<Self, StoreError> {
        let (revision, kvs) = list_store(store.as_ref(), &prefix).await?;
        let inner = Arc::new(Inner {
            store,
            prefix,
            capacity: capacity.max(1),
            state: RwLock::new(State::listed(revision, &kvs)),
            progress: watch::Sender::new(revision),
        });
        tokio::spawn(feed(Arc::downgrade(&inner), revision));
        Ok(WatchCache { inner })
    }

    /// The revision the cache has reached.
    pub fn revision(&self) -> Revision {
        self.inner.read().revision
    }

    /// Waits until the cache holds every write the store had acknowledged when this was called. `Ok(false)`
    /// when it did not catch up within a second (the caller then reads the store).
    pub async fn wait_fresh(&self) -> Result<bool, StoreError> {
        let target = self.inner.store.current_revision().await?;
        Ok(self.wait_for(target).await)
    }

    /// Waits until the cache has reached `revision`; false after a second without.
    pub async fn wait_for(&self, revision: Revision) -> bool {
        let mut progress = self.inner.progress.subscribe();
        matches!(
            tokio::time::timeout(FRESH_TIMEOUT, progress.wait_for(|r| *r >= revision)).await,
            Ok(Ok(_))
        )
    }

    /// The object at `key`, with the revision the cache is at.
    pub fn get(&self, key: &[u8]) -> (Revision, Option<Arc<Object>>) {
        let state = self.inner.read();
        (state.revision, state.objects.get(key).cloned())
    }

    /// Up to `limit` objects (0: all) under `prefix` that `keep` accepts, in key order, starting after the key
    /// `after` if given.
    pub fn list(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        mut keep: impl FnMut(&Object) -> bool,
    ) -> Listed {
        let state = self.inner.read();
        let start = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Included(prefix),
        };
        let mut keys = state
            .objects
            .range::<[u8], _>((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix));
        let mut objects = Vec::new();
        for (_, object) in keys.by_ref() {
            if keep(object) {
                objects.push(object.clone());
                if objects.len() == limit {
                    break;
                }
            }
        }
        Listed {
            revision: state.revision,
            objects,
            more: keys.next().is_some(),
        }
    }

    /// The changes under `prefix` after `revision`, as they happen. `None` when the cache no longer holds all
    /// of them (the caller watches the store instead). The stream ends with `Compacted` if this watcher falls
    /// so far behind that the ring drops events it has not read, or when the cache starts over.
    pub fn watch(
        &self,
        prefix: Bytes,
        revision: Revision,
    ) -> Option<BoxStream<'static, Result<Arc<Event>, StoreError>>> {
        if revision < self.inner.read().complete_after {
            return None;
        }
        let watcher = Watcher {
            progress: self.inner.progress.subscribe(),
            inner: self.inner.clone(),
            prefix,
            after: revision,
            pending: VecDeque::new(),
            done: false,
        };
        Some(futures::stream::unfold(watcher, Watcher::next).boxed())
    }
}

impl Inner {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn apply(&self, event: WatchEvent) {
        let revision = event.revision();
        {
            let mut state = self.write();
            state.apply(event);
            while state.events.len() > self.capacity {
                if let Some(dropped) = state.events.pop_front() {
                    state.complete_after = dropped.revision();
                }
            }
        }
        self.progress.send_replace(revision);
    }

    fn reset(&self, revision: Revision, kvs: &[KeyValue]) {
        *self.write() = State::listed(revision, kvs);
        self.progress.send_replace(revision);
    }
}

impl State {
    fn listed(revision: Revision, kvs: &[KeyValue]) -> Self {
        let objects = kvs
            .iter()
            .filter_map(|kv| Object::decode(kv.key.clone(), kv.mod_revision, &kv.value))
            .map(|o| (o.key.clone(), Arc::new(o)))
            .collect();
        State {
            objects,
            events: VecDeque::new(),
            complete_after: revision,
            revision,
        }
    }

    fn apply(&mut self, event: WatchEvent) {
        let revision = event.revision();
        self.revision = revision;
        let key = event.kv.key;
        let event = match event.kind {
            EventKind::Put => {
                let Some(object) = Object::decode(key.clone(), revision, &event.kv.value) else {
                    // Not an object (logged): forget any older version so no one reads stale data.
                    self.objects.remove(&key);
                    return;
                };
                let object = Arc::new(object);
                let prev = self.objects.insert(key, object.clone());
                let kind = if prev.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                Event { kind, object, prev }
            }
            EventKind::Delete => {
                let Some(prev) = self.objects.remove(&key) else {
                    return;
                };
                let Some(object) = prev.at_revision(revision) else {
                    return;
                };
                Event {
                    kind: EventType::Deleted,
                    object: Arc::new(object),
                    prev: Some(prev),
                }
            }
        };
        self.events.push_back(Arc::new(event));
    }

    /// The events under `prefix` after `revision`; `None` if some of them are no longer kept.
    fn events_after(&self, prefix: &[u8], revision: Revision) -> Option<Vec<Arc<Event>>> {
        if revision < self.complete_after {
            return None;
        }
        let start = self.events.partition_point(|e| e.revision() <= revision);
        Some(
            self.events
                .range(start..)
                .filter(|e| e.object.key.starts_with(prefix))
                .cloned()
                .collect(),
        )
    }
}

/// One watcher's position in the event ring.
struct Watcher {
    inner: Arc<Inner>,
    progress: watch::Receiver<Revision>,
    prefix: Bytes,
    /// Every event up to this revision has been handed out.
    after: Revision,
    pending: VecDeque<Arc<Event>>,
    done: bool,
}

impl Watcher {
    async fn next(mut self) -> Option<(Result<Arc<Event>, StoreError>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            // Marked seen before reading, so a change made after the read wakes the wait below.
            self.progress.borrow_and_update();
            let (events, reached, complete_after) = {
                let state = self.inner.read();
                let events = state.events_after(&self.prefix, self.after);
                (events, state.revision, state.complete_after)
            };
            match events {
                Some(events) => {
                    self.pending.extend(events);
                    self.after = self.after.max(reached);
                }
                None => {
                    self.done = true;
                    let error = StoreError::Compacted {
                        requested: self.after,
                        compacted: complete_after,
                    };
                    return Some((Err(error), self));
                }
            }
            if self.pending.is_empty() && self.progress.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// Applies the store's changes to the cache for as long as the cache exists; lists again when the watch breaks.
async fn feed(inner: Weak<Inner>, mut revision: Revision) {
    loop {
        let Some((store, prefix)) = inner.upgrade().map(|i| (i.store.clone(), i.prefix.clone()))
        else {
            return;
        };
        match store.watch(prefix.clone(), revision).await {
            Ok(mut changes) => {
                while let Some(change) = changes.next().await {
                    let Some(inner) = inner.upgrade() else {
                        return;
                    };
                    match change {
                        Ok(event) => inner.apply(event),
                        Err(error) => {
                            tracing::warn!(%error, "watch cache: the store watch ended; listing again");
                            break;
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "watch cache: cannot watch the store"),
        }
        tokio::time::sleep(RELIST_BACKOFF).await;
        match list_store(store.as_ref(), &prefix).await {
            Ok((listed, kvs)) => {
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                inner.reset(listed, &kvs);
                revision = listed;
            }
            Err(error) => tracing::warn!(%error, "watch cache: cannot list the store"),
        }
    }
}

/// Everything under `prefix`, read at one revision.
async fn list_store(
    store: &dyn Store,
    prefix: &Bytes,
) -> Result<(Revision, Vec<KeyValue>), StoreError> {
    gantry_store::range_all(store, prefix.clone(), LIST_PAGE).await
}

#[cfg(test)]
mod tests;

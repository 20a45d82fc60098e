//! The reference backend: everything in one mutex-guarded structure. Used by tests and as the model the other
//! backends are checked against; not durable.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::{
    Deleted, EventHistory, KeyValue, RangePage, RangeRequest, Result, Revision, Store, StoreError,
    WatchEvent, WatchHub, WatchStream, check_compactable, check_key, check_readable,
};

/// An in-memory [`Store`].
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    hub: WatchHub,
}

#[derive(Debug)]
struct State {
    revision: Revision,
    compacted: Revision,
    /// Every key's versions, oldest first; `None` values are deletes (tombstones).
    keys: BTreeMap<Bytes, Vec<Version>>,
    /// Every change after `compacted`, in revision order.
    log: VecDeque<WatchEvent>,
}

#[derive(Debug, Clone)]
struct Version {
    revision: Revision,
    create_revision: Revision,
    value: Option<Bytes>,
}

impl Default for State {
    fn default() -> Self {
        State {
            revision: 1,
            compacted: 0,
            keys: BTreeMap::new(),
            log: VecDeque::new(),
        }
    }
}

impl State {
    fn check_readable(&self, revision: Revision) -> Result<()> {
        check_readable(revision, self.revision, self.compacted)
    }

    fn value_at(key: &Bytes, versions: &[Version], revision: Revision) -> Option<KeyValue> {
        let version = versions.iter().rev().find(|v| v.revision <= revision)?;
        Some(KeyValue {
            key: key.clone(),
            value: version.value.clone()?,
            create_revision: version.create_revision,
            mod_revision: version.revision,
        })
    }

    fn latest(&self, key: &[u8]) -> Option<KeyValue> {
        let (key, versions) = self.keys.get_key_value(key)?;
        Self::value_at(key, versions, self.revision)
    }

    /// Records a new version (or tombstone) and returns the event describing it.
    fn write(&mut self, key: Bytes, value: Option<Bytes>, prev: Option<KeyValue>) -> WatchEvent {
        self.revision += 1;
        let revision = self.revision;
        let create_revision = match (&value, &prev) {
            (None, _) => 0,
            (Some(_), Some(prev)) => prev.create_revision,
            (Some(_), None) => revision,
        };
        self.keys.entry(key.clone()).or_default().push(Version {
            revision,
            create_revision,
            value: value.clone(),
        });
        let event = match value {
            Some(value) => WatchEvent {
                kind: crate::EventKind::Put,
                kv: KeyValue {
                    key,
                    value,
                    create_revision,
                    mod_revision: revision,
                },
                prev,
            },
            None => WatchEvent::deleted(
                prev.expect("a delete always has a previous value"),
                revision,
            ),
        };
        self.log.push_back(event.clone());
        event
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written (writes are a single push each),
        // so a poisoned lock is still usable.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one write and publishes its event while still holding the lock, so events leave in order.
    fn commit<T>(&self, apply: impl FnOnce(&mut State) -> Result<(T, WatchEvent)>) -> Result<T> {
        let mut state = self.state();
        let (result, event) = apply(&mut state)?;
        self.inner.hub.publish(vec![event]);
        Ok(result)
    }
}

#[async_trait::async_trait]
impl EventHistory for Inner {
    async fn events_after(
        &self,
        prefix: &[u8],
        after: Revision,
        limit: usize,
    ) -> Result<Vec<WatchEvent>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if after < state.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: state.compacted,
            });
        }
        let start = state.log.partition_point(|e| e.revision() <= after);
        Ok(state
            .log
            .range(start..)
            .filter(|e| e.kv.key.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.state().revision)
    }

    async fn get(&self, key: &[u8], revision: Option<Revision>) -> Result<Option<KeyValue>> {
        check_key(key)?;
        let state = self.state();
        let revision = revision.unwrap_or(state.revision);
        state.check_readable(revision)?;
        Ok(state
            .keys
            .get_key_value(key)
            .and_then(|(k, v)| State::value_at(k, v, revision)))
    }

    async fn range(&self, request: RangeRequest) -> Result<RangePage> {
        let (start, end, revision) = request.bounds()?;
        let state = self.state();
        let revision = revision.unwrap_or(state.revision);
        state.check_readable(revision)?;
        let end = end.map_or(Bound::Unbounded, Bound::Excluded);
        let limit = if request.limit == 0 {
            usize::MAX
        } else {
            request.limit
        };
        let mut visible = state
            .keys
            .range::<[u8], _>((
                Bound::Included(start.as_slice()),
                end.as_ref().map(Vec::as_slice),
            ))
            .filter_map(|(key, versions)| State::value_at(key, versions, revision));
        let kvs: Vec<KeyValue> = visible.by_ref().take(limit).collect();
        let more = visible.next().is_some();
        Ok(RangePage::new(kvs, revision, more))
    }

    async fn create(&self, key: Bytes, value: Bytes) -> Result<KeyValue> {
        check_key(&key)?;
        self.commit(|state| {
            if state.latest(&key).is_some() {
                return Err(StoreError::AlreadyExists { key });
            }
            let event = state.write(key, Some(value), None);
            Ok((event.kv.clone(), event))
        })
    }

    async fn update(&self, key: Bytes, value: Bytes, expected: Revision) -> Result<KeyValue> {
        check_key(&key)?;
        self.commit(|state| {
            let current = state
                .latest(&key)
                .ok_or_else(|| StoreError::NotFound { key: key.clone() })?;
            if current.mod_revision != expected {
                return Err(StoreError::Conflict {
                    key,
                    expected,
                    current: Box::new(current),
                });
            }
            let event = state.write(key, Some(value), Some(current));
            Ok((event.kv.clone(), event))
        })
    }

    async fn delete(&self, key: Bytes, expected: Option<Revision>) -> Result<Deleted> {
        check_key(&key)?;
        self.commit(|state| {
            let current = state
                .latest(&key)
                .ok_or_else(|| StoreError::NotFound { key: key.clone() })?;
            if let Some(expected) = expected.filter(|&e| e != current.mod_revision) {
                return Err(StoreError::Conflict {
                    key,
                    expected,
                    current: Box::new(current),
                });
            }
            let event = state.write(key, None, Some(current.clone()));
            Ok((
                Deleted {
                    prev: current,
                    revision: event.revision(),
                },
                event,
            ))
        })
    }

    async fn watch(&self, prefix: Bytes, after: Revision) -> Result<WatchStream> {
        self.inner
            .hub
            .watch(self.inner.clone(), prefix, after)
            .await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut state = self.state();
        check_compactable(revision, state.revision, state.compacted)?;
        state.compacted = revision;
        state.keys.retain(|_, versions| {
            // Keep the version visible at `revision` (unless it is a tombstone) and everything newer.
            let visible = versions.iter().rposition(|v| v.revision <= revision);
            if let Some(i) = visible {
                let keep_from = if versions[i].value.is_some() {
                    i
                } else {
                    i + 1
                };
                versions.drain(..keep_from);
            }
            !versions.is_empty()
        });
        let keep_from = state.log.partition_point(|e| e.revision() <= revision);
        state.log.drain(..keep_from);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::conformance_tests!(|| async {
        crate::conformance::TestStore::new(MemoryStore::new(), ())
    });
}

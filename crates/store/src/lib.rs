//! Gantry's state store: one small trait with etcd's semantics, which the API server is the only user of.
//!
//! - One global revision, strictly increasing with every write; it becomes Kubernetes' `resourceVersion`.
//! - Every key keeps a history of versions until it is compacted: reads and watches can start at an old revision.
//! - Writes to an existing key are compare-and-swap on the key's mod revision.
//! - Keys and values are bytes: nothing here assumes UTF-8.
//!
//! Backends: [`MemoryStore`] here (the reference), `gantry-store-sqlite` (the embedded default) and
//! `gantry-store-etcd`. All of them run the same suite, [`conformance_tests!`].

mod compactor;
mod error;
mod hub;
mod memory;
mod types;
mod url;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use compactor::compact_periodically;
pub use error::{Result, StoreError};
pub use hub::{EventHistory, WatchHub};
pub use memory::MemoryStore;
pub use types::{
    ContinueToken, Deleted, EventKind, KeyValue, RangeBounds, RangePage, RangeRequest, Revision,
    WatchEvent, WatchStream, prefix_end,
};
pub use url::{EtcdTls, StoreUrl};

use bytes::Bytes;

/// A key-value store with etcd's semantics. See the crate docs.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The revision of the last write (the store starts at 1, like etcd).
    async fn current_revision(&self) -> Result<Revision>;

    /// The key's value at the latest revision, or at `revision`. Older than the compaction: `Compacted`.
    async fn get(&self, key: &[u8], revision: Option<Revision>) -> Result<Option<KeyValue>>;

    /// Keys under a prefix in byte order, one page at a time; every page of one listing reads the same revision.
    async fn range(&self, request: RangeRequest) -> Result<RangePage>;

    /// Writes a key that does not exist (or was deleted); `AlreadyExists` otherwise.
    async fn create(&self, key: Bytes, value: Bytes) -> Result<KeyValue>;

    /// Replaces the value if the key's mod revision is still `expected`; `Conflict` (with the current value)
    /// otherwise, `NotFound` when the key does not exist.
    async fn update(&self, key: Bytes, value: Bytes, expected: Revision) -> Result<KeyValue>;

    /// Deletes the key, if its mod revision is `expected` when one is given.
    async fn delete(&self, key: Bytes, expected: Option<Revision>) -> Result<Deleted>;

    /// Every change to keys under `prefix` with a revision greater than `after`, in revision order, then live
    /// changes as they happen. `Compacted` if `after` is older than the compaction.
    async fn watch(&self, prefix: Bytes, after: Revision) -> Result<WatchStream>;

    /// Forgets history older than `revision`: reads at `revision` and later still work, older ones are `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<()>;
}

/// `Compacted` or `FutureRevision` unless a read at `revision` is possible, given the store's head and
/// compaction revisions.
pub fn check_readable(revision: Revision, head: Revision, compacted: Revision) -> Result<()> {
    if revision < compacted {
        return Err(StoreError::Compacted {
            requested: revision,
            compacted,
        });
    }
    if revision > head {
        return Err(StoreError::FutureRevision {
            requested: revision,
            current: head,
        });
    }
    Ok(())
}

/// `Compacted` or `FutureRevision` unless a compaction to `revision` is possible: later than the last one
/// (as etcd requires) and not after the head.
pub fn check_compactable(revision: Revision, head: Revision, compacted: Revision) -> Result<()> {
    if revision <= compacted {
        return Err(StoreError::Compacted {
            requested: revision,
            compacted,
        });
    }
    check_readable(revision, head, compacted)
}

/// Rejects what no backend accepts: an empty key (etcd refuses it too).
pub fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidArgument("key must not be empty".into()));
    }
    Ok(())
}

/// Every key under `prefix`, read `page` keys at a time at the first page's revision (one snapshot), with
/// that revision.
pub async fn range_all(
    store: &dyn Store,
    prefix: Bytes,
    page: usize,
) -> Result<(Revision, Vec<KeyValue>)> {
    let mut request = RangeRequest::prefix(prefix).limit(page);
    let mut kvs = Vec::new();
    loop {
        let page = store.range(request.clone()).await?;
        kvs.extend(page.kvs);
        match page.next {
            Some(token) => request = request.continue_from(token),
            None => return Ok((page.revision, kvs)),
        }
    }
}

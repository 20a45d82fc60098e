use bytes::Bytes;
use futures::stream::BoxStream;

use crate::{Result, StoreError};

/// The store's logical clock: every write makes a new, larger one.
pub type Revision = i64;

/// One version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Bytes,
    pub value: Bytes,
    /// Revision of the write that created this key (since it last did not exist).
    pub create_revision: Revision,
    /// Revision of the write that made this version.
    pub mod_revision: Revision,
}

/// What a [`Store::delete`](crate::Store::delete) removed, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The last version before the delete.
    pub prev: KeyValue,
    /// Revision of the delete itself.
    pub revision: Revision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A create or an update: `kv` is the new version.
    Put,
    /// A delete: `kv` holds the key, an empty value and the delete's revision as `mod_revision`.
    Delete,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub kv: KeyValue,
    /// The version this change replaced; `None` for creates. Always set for deletes and updates, except where
    /// the backend has already compacted it away (only possible for etcd).
    pub prev: Option<KeyValue>,
}

impl WatchEvent {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }

    /// A put that created the key (as opposed to updating it).
    pub fn is_create(&self) -> bool {
        self.kind == EventKind::Put && self.kv.create_revision == self.kv.mod_revision
    }

    /// The event for deleting `prev` at `revision`.
    pub fn deleted(prev: KeyValue, revision: Revision) -> Self {
        let kv = KeyValue {
            key: prev.key.clone(),
            value: Bytes::new(),
            create_revision: 0,
            mod_revision: revision,
        };
        WatchEvent {
            kind: EventKind::Delete,
            kv,
            prev: Some(prev),
        }
    }
}

/// The changes a watch delivers, in revision order. An `Err` item (e.g. `Compacted` for a watcher that fell too
/// far behind) is the last one.
pub type WatchStream = BoxStream<'static, Result<WatchEvent>>;

/// Where a listing stopped: the revision it reads at and the last key it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinueToken {
    pub revision: Revision,
    pub last_key: Bytes,
}

/// The first key (inclusive), the end of the range (exclusive, `None` = no end) and the revision (`None` =
/// latest) that a [`RangeRequest`] reads.
pub type RangeBounds = (Vec<u8>, Option<Vec<u8>>, Option<Revision>);

/// A request for keys under a prefix. `limit == 0` means no limit.
#[derive(Debug, Clone, Default)]
pub struct RangeRequest {
    pub prefix: Bytes,
    pub limit: usize,
    /// Read at this revision rather than the latest.
    pub revision: Option<Revision>,
    /// Continue a listing where an earlier page stopped (at that page's revision).
    pub continue_from: Option<ContinueToken>,
}

impl RangeRequest {
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        RangeRequest {
            prefix: prefix.into(),
            ..Default::default()
        }
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    pub fn at(mut self, revision: Revision) -> Self {
        self.revision = Some(revision);
        self
    }

    pub fn continue_from(mut self, token: ContinueToken) -> Self {
        self.continue_from = Some(token);
        self
    }

    /// What backends read: see [`RangeBounds`].
    pub fn bounds(&self) -> Result<RangeBounds> {
        let end = prefix_end(&self.prefix);
        match &self.continue_from {
            None => Ok((self.prefix.to_vec(), end, self.revision)),
            Some(token) => {
                if !token.last_key.starts_with(&self.prefix) {
                    return Err(StoreError::InvalidArgument(
                        "continue token does not belong to this prefix".into(),
                    ));
                }
                if self.revision.is_some_and(|r| r != token.revision) {
                    return Err(StoreError::InvalidArgument(
                        "continue token reads another revision than the one requested".into(),
                    ));
                }
                let mut start = token.last_key.to_vec();
                start.push(0);
                Ok((start, end, Some(token.revision)))
            }
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePage {
    pub kvs: Vec<KeyValue>,
    /// The revision every page of this listing reads at.
    pub revision: Revision,
    /// Set when more keys follow: pass it to the next request.
    pub next: Option<ContinueToken>,
}

impl RangePage {
    /// A page; `more` says whether keys follow the last one in `kvs`.
    pub fn new(kvs: Vec<KeyValue>, revision: Revision, more: bool) -> Self {
        let next = match kvs.last() {
            Some(last) if more => Some(ContinueToken {
                revision,
                last_key: last.key.clone(),
            }),
            _ => None,
        };
        RangePage {
            kvs,
            revision,
            next,
        }
    }
}

/// The first key after every key that starts with `prefix`, as etcd computes it; `None` when there is none
/// (empty prefix, or only 0xff bytes), meaning "to the end of the key space".
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_ff() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn continue_token_must_match_prefix_and_revision() {
        let token = ContinueToken {
            revision: 7,
            last_key: Bytes::from_static(b"/b/x"),
        };
        assert!(
            RangeRequest::prefix("/a/")
                .continue_from(token.clone())
                .bounds()
                .is_err()
        );
        assert!(
            RangeRequest::prefix("/b/")
                .at(8)
                .continue_from(token.clone())
                .bounds()
                .is_err()
        );
        let (start, end, rev) = RangeRequest::prefix("/b/")
            .continue_from(token)
            .bounds()
            .unwrap();
        assert_eq!(start, b"/b/x\0");
        assert_eq!(end, Some(b"/b0".to_vec()));
        assert_eq!(rev, Some(7));
    }
}

//! Watch fan-out shared by the in-process backends (memory, SQLite).
//!
//! A writer publishes each committed batch of events once, into a bounded broadcast ring; every watcher reads the
//! ring and keeps the events under its prefix. A watcher that starts at an old revision, or falls so far behind
//! that the ring overwrote what it had not read, reads the backend's history instead ([`EventHistory`]) until it
//! has caught up, then goes back to the ring. Publishing never waits for watchers and nothing polls.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::{Result, Revision, StoreError, WatchEvent, WatchStream};

/// How many committed batches the ring holds before slow watchers fall back to history.
const RING_BATCHES: usize = 4096;
/// How many events one history read returns at most.
const HISTORY_PAGE: usize = 1024;

/// A backend's log of changes, read by watchers that are behind the live ring.
#[async_trait::async_trait]
pub trait EventHistory: Send + Sync + 'static {
    /// Changes to keys under `prefix` with revision > `after`, oldest first, at most `limit` of them.
    /// `Compacted` if `after` is older than the compaction revision.
    async fn events_after(
        &self,
        prefix: &[u8],
        after: Revision,
        limit: usize,
    ) -> Result<Vec<WatchEvent>>;
}

/// Fan-out of committed events to watchers.
#[derive(Debug)]
pub struct WatchHub {
    ring: broadcast::Sender<Arc<[WatchEvent]>>,
}

impl Default for WatchHub {
    fn default() -> Self {
        WatchHub {
            ring: broadcast::channel(RING_BATCHES).0,
        }
    }
}

impl WatchHub {
    /// Publishes one committed batch; batches must be published in revision order.
    pub fn publish(&self, events: Vec<WatchEvent>) {
        if !events.is_empty() {
            // An error only means nobody is watching.
            let _ = self.ring.send(events.into());
        }
    }

    /// A watch of `prefix` after revision `after`. Reads the first page of history before returning, so a
    /// compacted start revision is reported here rather than in the stream.
    pub async fn watch(
        &self,
        history: Arc<dyn EventHistory>,
        prefix: Bytes,
        after: Revision,
    ) -> Result<WatchStream> {
        // Subscribe before reading history so that nothing committed in between is missed.
        let mut watcher = Watcher {
            history,
            prefix,
            last: after,
            ring: self.ring.subscribe(),
            pending: VecDeque::new(),
            behind: true,
            finished: false,
        };
        watcher.read_history().await?;
        Ok(futures::stream::unfold(
            watcher,
            |mut w| async move { w.next().await.map(|e| (e, w)) },
        )
        .boxed())
    }
}

struct Watcher {
    history: Arc<dyn EventHistory>,
    prefix: Bytes,
    /// Revision of the last event queued for the consumer; later events are new, earlier ones duplicates.
    last: Revision,
    ring: broadcast::Receiver<Arc<[WatchEvent]>>,
    pending: VecDeque<WatchEvent>,
    /// Reading history rather than the ring.
    behind: bool,
    finished: bool,
}

impl Watcher {
    async fn read_history(&mut self) -> Result<()> {
        let page = self
            .history
            .events_after(&self.prefix, self.last, HISTORY_PAGE)
            .await?;
        self.behind = page.len() == HISTORY_PAGE;
        if let Some(last) = page.last() {
            self.last = last.revision();
        }
        self.pending.extend(page);
        Ok(())
    }

    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            if self.behind {
                if let Err(e) = self.read_history().await {
                    self.finished = true;
                    return Some(Err(e));
                }
                continue;
            }
            match self.ring.recv().await {
                Ok(batch) => {
                    for event in batch.iter() {
                        if event.revision() > self.last && event.kv.key.starts_with(&self.prefix) {
                            self.last = event.revision();
                            self.pending.push_back(event.clone());
                        }
                    }
                }
                // The ring moved past what this watcher had read: history has every change since `last`.
                Err(RecvError::Lagged(_)) => self.behind = true,
                Err(RecvError::Closed) => {
                    self.finished = true;
                    return Some(Err(StoreError::Unavailable("the store was closed".into())));
                }
            }
        }
    }
}

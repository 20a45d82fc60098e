//! The single writer: one thread owns the write connection and commits whatever requests are waiting as one
//! transaction (group commit), so one fsync serves many writers. Events are published to watchers after the
//! commit is durable, in revision order. Physical compaction runs here too, a bounded chunk per transaction.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gantry_store::{
    Deleted, EventKind, KeyValue, Result, Revision, StoreError, WatchEvent, WatchHub,
    check_compactable,
};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::db;

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Most value bytes committed in one transaction (a few large values are enough to fill it).
const MAX_BATCH_BYTES: usize = 16 << 20;
/// How long the writer waits for more requests to join a batch (see [`Writer::run`]).
const GATHER_WAIT: Duration = Duration::from_micros(250);
/// Revisions examined by one compaction step; bounds the time a step adds to a commit.
const COMPACTION_CHUNK: Revision = 2048;

#[derive(Debug)]
pub(crate) enum Op {
    Create {
        key: Bytes,
        value: Bytes,
    },
    Update {
        key: Bytes,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: Bytes,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

#[derive(Debug)]
pub(crate) enum Done {
    Put(KeyValue),
    Deleted(Deleted),
    Compacted,
}

pub(crate) type Reply = oneshot::Sender<Result<Done>>;

#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) op: Op,
    pub(crate) reply: Reply,
}

/// A compaction whose history rows are still being deleted.
struct Compaction {
    /// Rows below this revision have been dealt with.
    next: Revision,
    /// Callers waiting for it to finish.
    waiting: Vec<Reply>,
}

pub(crate) struct Writer {
    conn: Connection,
    path: PathBuf,
    requests: Receiver<Request>,
    hub: Arc<WatchHub>,
    /// The committed head revision, shared with readers of `current_revision`.
    head: Arc<AtomicI64>,
    /// The committed compaction revision; a running compaction deletes rows up to it.
    compacted: Revision,
    compaction: Option<Compaction>,
    /// Size of the last batch: how many requests the next one waits for.
    last_batch: usize,
}

/// What a committed transaction did.
struct Committed {
    results: Vec<Result<Done>>,
    events: Vec<WatchEvent>,
    head: Revision,
    compacted: Revision,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        path: PathBuf,
        requests: Receiver<Request>,
        hub: Arc<WatchHub>,
        head: Arc<AtomicI64>,
        compacted: Revision,
    ) -> Self {
        Writer {
            conn,
            path,
            requests,
            hub,
            head,
            compacted,
            compaction: None,
            last_batch: 0,
        }
    }

    /// Serves requests until every sender is gone.
    pub(crate) fn run(mut self) {
        loop {
            let first = if self.compaction.is_some() {
                match self.requests.try_recv() {
                    Ok(request) => request,
                    // Idle: spend the time on the running compaction.
                    Err(TryRecvError::Empty) => {
                        self.commit(Vec::new());
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match self.requests.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                }
            };
            let mut bytes = first.op.value_len();
            let mut batch = vec![first];
            // The callers answered by the last commit are likely to write again at once: wait a moment for
            // as many requests as the last batch had, so that one fsync serves them all.
            let deadline = Instant::now() + GATHER_WAIT;
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                let request = if batch.len() < self.last_batch {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    self.requests.recv_timeout(wait).ok()
                } else {
                    self.requests.try_recv().ok()
                };
                let Some(request) = request else { break };
                bytes += request.op.value_len();
                batch.push(request);
            }
            self.last_batch = batch.len();
            self.commit(batch);
        }
    }

    /// Applies a batch in one transaction (plus a step of any running compaction), then answers every request.
    fn commit(&mut self, batch: Vec<Request>) {
        match self.try_commit(&batch) {
            Ok(Committed {
                results,
                events,
                head,
                compacted,
            }) => {
                self.head.store(head, Ordering::Release);
                self.compacted = compacted;
                self.hub.publish(events);
                for (request, result) in batch.into_iter().zip(results) {
                    match (result, self.compaction.as_mut()) {
                        (Ok(Done::Compacted), Some(running)) => running.waiting.push(request.reply),
                        (result, _) => {
                            let _ = request.reply.send(result);
                        }
                    }
                }
                self.finish_compaction_if_done();
            }
            Err(error) => {
                // The transaction rolled back: nothing of the batch was written, and every caller gets the cause.
                let error = db::map_err(&self.path, error);
                tracing::error!(%error, "store write failed");
                for request in batch {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }

    fn try_commit(&mut self, batch: &[Request]) -> rusqlite::Result<Committed> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut head = self.head.load(Ordering::Acquire);
        let mut compacted = self.compacted;
        let mut events = Vec::with_capacity(batch.len());
        let mut results = Vec::with_capacity(batch.len());
        for request in batch {
            results.push(apply(
                &tx,
                &mut head,
                &mut compacted,
                &request.op,
                &mut events,
            )?);
        }
        if !batch.is_empty() {
            tx.prepare_cached("UPDATE meta SET revision = ?1, compacted = ?2 WHERE id = 0")?
                .execute(params![head, compacted])?;
        }
        // A running compaction continues (up to the newest revision asked for); a new one starts at the oldest row.
        let step_from = match &self.compaction {
            Some(running) => Some(running.next),
            None if compacted > self.compacted => {
                let oldest: Option<Revision> =
                    tx.query_row("SELECT min(rev) FROM kv", [], |r| r.get(0))?;
                Some(oldest.unwrap_or(compacted))
            }
            None => None,
        };
        let next = step_from
            .map(|from| compact_step(&tx, from, compacted))
            .transpose()?;
        tx.commit()?;
        if let Some(next) = next {
            self.compaction
                .get_or_insert_with(|| Compaction {
                    next,
                    waiting: Vec::new(),
                })
                .next = next;
        }
        Ok(Committed {
            results,
            events,
            head,
            compacted,
        })
    }

    fn finish_compaction_if_done(&mut self) {
        let compacted = self.compacted;
        let Some(done) = self.compaction.take_if(|c| c.next > compacted) else {
            return;
        };
        for reply in done.waiting {
            let _ = reply.send(Ok(Done::Compacted));
        }
        if let Err(error) = self.reclaim_space() {
            tracing::warn!(error = %db::map_err(&self.path, error), "could not reclaim space after compaction");
        }
    }

    /// Gives free pages back to the file system once compaction has freed a good share of the file.
    fn reclaim_space(&self) -> rusqlite::Result<()> {
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let total: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        if free > 256 && free * 4 > total {
            self.conn.execute_batch("PRAGMA incremental_vacuum")?;
        }
        Ok(())
    }
}

impl Op {
    fn value_len(&self) -> usize {
        match self {
            Op::Create { value, .. } | Op::Update { value, .. } => value.len(),
            Op::Delete { .. } | Op::Compact { .. } => 0,
        }
    }
}

/// Applies one request inside the batch's transaction. The outer error is SQLite failing (the batch is rolled
/// back); the inner one is the request's own answer (a conflict, say), which writes nothing.
fn apply(
    tx: &Transaction<'_>,
    head: &mut Revision,
    compacted: &mut Revision,
    op: &Op,
    events: &mut Vec<WatchEvent>,
) -> rusqlite::Result<Result<Done>> {
    match op {
        Op::Create { key, value } => {
            let live: Option<Revision> = tx
                .prepare_cached("SELECT rev FROM latest WHERE name = ?1")?
                .query_row(params![&key[..]], |r| r.get(0))
                .optional()?;
            if live.is_some() {
                return Ok(Err(StoreError::AlreadyExists { key: key.clone() }));
            }
            // A key created again after a delete follows its tombstone.
            let prev_rev: Option<Revision> = tx
                .prepare_cached("SELECT max(rev) FROM kv WHERE name = ?1")?
                .query_row(params![&key[..]], |r| r.get(0))
                .optional()?
                .flatten();
            *head += 1;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: *head,
                mod_revision: *head,
            };
            insert(tx, &kv, prev_rev.unwrap_or(0), false)?;
            events.push(WatchEvent {
                kind: EventKind::Put,
                kv: kv.clone(),
                prev: None,
            });
            Ok(Ok(Done::Put(kv)))
        }
        Op::Update {
            key,
            value,
            expected,
        } => {
            let current = match current_version(tx, key, Some(*expected))? {
                Ok(current) => current,
                Err(e) => return Ok(Err(e)),
            };
            *head += 1;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: current.create_revision,
                mod_revision: *head,
            };
            insert(tx, &kv, current.mod_revision, false)?;
            events.push(WatchEvent {
                kind: EventKind::Put,
                kv: kv.clone(),
                prev: Some(current),
            });
            Ok(Ok(Done::Put(kv)))
        }
        Op::Delete { key, expected } => {
            let current = match current_version(tx, key, *expected)? {
                Ok(current) => current,
                Err(e) => return Ok(Err(e)),
            };
            *head += 1;
            let event = WatchEvent::deleted(current.clone(), *head);
            insert(tx, &event.kv, current.mod_revision, true)?;
            events.push(event);
            Ok(Ok(Done::Deleted(Deleted {
                prev: current,
                revision: *head,
            })))
        }
        Op::Compact { revision } => Ok(check_compactable(*revision, *head, *compacted).map(|()| {
            *compacted = *revision;
            Done::Compacted
        })),
    }
}

/// The key's live version, if its mod revision is `expected` (when one is given).
fn current_version(
    tx: &Transaction<'_>,
    key: &Bytes,
    expected: Option<Revision>,
) -> rusqlite::Result<Result<KeyValue>> {
    Ok(match db::latest(tx, key)? {
        None => Err(StoreError::NotFound { key: key.clone() }),
        Some(current) => match expected {
            Some(expected) if expected != current.mod_revision => Err(StoreError::Conflict {
                key: key.clone(),
                expected,
                current: Box::new(current),
            }),
            _ => Ok(current),
        },
    })
}

/// Appends a version (or tombstone) row and points `latest` at it.
fn insert(
    tx: &Transaction<'_>,
    kv: &KeyValue,
    prev_rev: Revision,
    deleted: bool,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO kv (rev, name, create_rev, prev_rev, deleted, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![kv.mod_revision, &kv.key[..], kv.create_revision, prev_rev, deleted, &kv.value[..]])?;
    if deleted {
        tx.prepare_cached("DELETE FROM latest WHERE name = ?1")?
            .execute(params![&kv.key[..]])?;
    } else {
        tx.prepare_cached(
            "INSERT INTO latest (name, rev) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET rev = excluded.rev",
        )?
        .execute(params![&kv.key[..], kv.mod_revision])?;
    }
    Ok(())
}

/// Deletes, among rows in `[from, from + CHUNK)` at or below `upto`, those no read at `upto` or later can see:
/// versions superseded at or before `upto`, and tombstones. Returns where the next step starts.
fn compact_step(
    tx: &Transaction<'_>,
    from: Revision,
    upto: Revision,
) -> rusqlite::Result<Revision> {
    let end = (from + COMPACTION_CHUNK).min(upto + 1);
    tx.prepare_cached(
        "DELETE FROM kv WHERE rev >= ?1 AND rev < ?2 AND (deleted = 1 OR EXISTS (
             SELECT 1 FROM kv AS newer WHERE newer.name = kv.name AND newer.rev > kv.rev AND newer.rev <= ?3))",
    )?
    .execute(params![from, end, upto])?;
    Ok(end)
}

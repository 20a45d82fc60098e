//! The embedded, default [`Store`]: one SQLite database file in WAL mode.
//!
//! - Writes go to one writer thread that commits whatever is waiting as one durable transaction
//!   (`synchronous = FULL`): an acknowledged write has been fsynced, and many writers share one fsync.
//! - Reads run on a small pool of connections on tokio's blocking threads; each read is one short
//!   transaction, so it sees one consistent revision and never holds the WAL back for long.
//! - Watches are served from memory by [`WatchHub`]; watchers that are behind read the `kv` table.
//! - Compaction deletes history rows in bounded chunks on the writer, frees pages with incremental vacuum,
//!   and the WAL is truncated after checkpoints (`journal_size_limit`), so the files stay bounded under churn
//!   (kine's database and WAL grow without bound).
//! - A lock file keeps a second process from opening the same database.

mod db;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use bytes::Bytes;
use gantry_store::{
    Deleted, EventHistory, KeyValue, RangePage, RangeRequest, Result, Revision, Store, StoreError,
    WatchEvent, WatchHub, WatchStream, check_key,
};
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use writer::{Done, Op, Request, Writer};

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// A [`Store`] in a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: mpsc::Sender<Request>,
    readers: Readers,
    hub: Arc<WatchHub>,
    head: Arc<AtomicI64>,
    /// Held (locked) for as long as any clone of the store lives.
    _lock: Arc<File>,
}

/// The read side: a pool of connections to the database.
#[derive(Debug, Clone)]
struct Readers(Arc<ReaderPool>);

#[derive(Debug)]
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`. Fails with a clear error if the file is not a
    /// healthy database, cannot be written, or is in use by another process.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create directory {} for the database: {e}",
                    dir.display()
                ))
            })?;
        }
        let lock = lock_database(&path)?;
        let conn = db::open_writer(&path)?;
        let (head, compacted) = db::meta(&conn).map_err(|e| db::map_err(&path, e))?;
        let head = Arc::new(AtomicI64::new(head));
        let hub = Arc::new(WatchHub::default());
        let (sender, requests) = mpsc::channel();
        let writer = Writer::new(
            conn,
            path.clone(),
            requests,
            hub.clone(),
            head.clone(),
            compacted,
        );
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| {
                StoreError::Internal(format!("cannot start the store writer thread: {e}"))
            })?;
        let readers = Readers(Arc::new(ReaderPool {
            path,
            idle: Mutex::new(Vec::new()),
        }));
        Ok(SqliteStore {
            writer: sender,
            readers,
            hub,
            head,
            _lock: Arc::new(lock),
        })
    }

    async fn write(&self, op: Op) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Request { op, reply })
            .map_err(|_| StoreError::Unavailable("the store writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Internal("the store writer stopped before answering".into()))?
    }
}

/// Takes the database's lock file, so two processes never write one database.
fn lock_database(path: &Path) -> Result<File> {
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let file = File::create(&lock_path).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot create lock file {}: {e}",
            lock_path.display()
        ))
    })?;
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => StoreError::Unavailable(format!(
            "database {} is in use by another process",
            path.display()
        )),
        std::fs::TryLockError::Error(e) => {
            StoreError::Unavailable(format!("cannot lock {}: {e}", lock_path.display()))
        }
    })?;
    Ok(file)
}

impl Readers {
    /// Runs `read` in one read transaction on a pooled connection, on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<Result<T>> + Send + 'static,
    ) -> Result<T> {
        let readers = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => db::connect(&readers.path)?,
            };
            let result = conn.transaction().and_then(|tx| read(&tx));
            let mut idle = readers.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            result.map_err(|e| db::map_err(&readers.path, e))?
        })
        .await
        .map_err(|e| StoreError::Internal(format!("store read task failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl EventHistory for Readers {
    async fn events_after(
        &self,
        prefix: &[u8],
        after: Revision,
        limit: usize,
    ) -> Result<Vec<WatchEvent>> {
        let (start, end, _) = RangeRequest::prefix(Bytes::copy_from_slice(prefix)).bounds()?;
        self.read(move |conn| {
            let (_, compacted) = db::meta(conn)?;
            if after < compacted {
                return Ok(Err(StoreError::Compacted { requested: after, compacted }));
            }
            let end_clause = format!("AND {}", db::below_end("kv.name", end.is_some()));
            let sql = format!(
                "SELECT kv.rev, kv.name, kv.create_rev, kv.deleted, kv.value, prev.rev, prev.create_rev, prev.value
                 FROM kv LEFT JOIN kv AS prev ON prev.rev = kv.prev_rev AND prev.deleted = 0
                 WHERE kv.rev > ?3 AND kv.name >= ?1 {end_clause} ORDER BY kv.rev LIMIT ?4"
            );
            let mut statement = conn.prepare_cached(&sql)?;
            let events = statement
                .query_map(params![start, end, after, limit as i64], db::event)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Ok(events))
        })
        .await
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.head.load(Ordering::Acquire))
    }

    async fn get(&self, key: &[u8], revision: Option<Revision>) -> Result<Option<KeyValue>> {
        check_key(key)?;
        let key = key.to_vec();
        self.readers
            .read(move |conn| {
                let (revision, at_head) = match db::read_revision(conn, revision)? {
                    Ok(read) => read,
                    Err(e) => return Ok(Err(e)),
                };
                let kv = if at_head {
                    db::latest(conn, &key)?
                } else {
                    db::at_revision(conn, &key, revision)?
                };
                Ok(Ok(kv))
            })
            .await
    }

    async fn range(&self, request: RangeRequest) -> Result<RangePage> {
        let (start, end, revision) = request.bounds()?;
        let limit = if request.limit == 0 {
            i64::MAX
        } else {
            request.limit as i64
        };
        self.readers
            .read(move |conn| {
                let (revision, at_head) = match db::read_revision(conn, revision)? {
                    Ok(read) => read,
                    Err(e) => return Ok(Err(e)),
                };
                // Both queries bind ?1 start, ?2 end, ?3 limit + 1, ?4 revision. At the head, `latest` names each
                // live key's row; at an older revision, a key's row is the newest at or below it, if not a delete.
                let sql = if at_head {
                    format!(
                        "SELECT kv.name, kv.value, kv.create_rev, kv.rev FROM latest JOIN kv ON kv.rev = latest.rev
                         WHERE latest.name >= ?1 AND {} AND ?4 IS NOT NULL ORDER BY latest.name LIMIT ?3",
                        db::below_end("latest.name", end.is_some())
                    )
                } else {
                    format!(
                        "SELECT kv.name, kv.value, kv.create_rev, kv.rev FROM kv
                         WHERE kv.name >= ?1 AND {} AND kv.rev <= ?4 AND kv.deleted = 0 AND NOT EXISTS (
                             SELECT 1 FROM kv AS newer
                             WHERE newer.name = kv.name AND newer.rev > kv.rev AND newer.rev <= ?4)
                         ORDER BY kv.name LIMIT ?3",
                        db::below_end("kv.name", end.is_some())
                    )
                };
                let mut statement = conn.prepare_cached(&sql)?;
                let mut kvs = statement
                    .query_map(params![start, end, limit.saturating_add(1), revision], db::key_value)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let more = kvs.len() as i64 > limit;
                kvs.truncate(limit as usize);
                Ok(Ok(RangePage::new(kvs, revision, more)))
            })
            .await
    }

    async fn create(&self, key: Bytes, value: Bytes) -> Result<KeyValue> {
        check_key(&key)?;
        match self.write(Op::Create { key, value }).await? {
            Done::Put(kv) => Ok(kv),
            other => Err(unexpected(other)),
        }
    }

    async fn update(&self, key: Bytes, value: Bytes, expected: Revision) -> Result<KeyValue> {
        check_key(&key)?;
        match self
            .write(Op::Update {
                key,
                value,
                expected,
            })
            .await?
        {
            Done::Put(kv) => Ok(kv),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(&self, key: Bytes, expected: Option<Revision>) -> Result<Deleted> {
        check_key(&key)?;
        match self.write(Op::Delete { key, expected }).await? {
            Done::Deleted(deleted) => Ok(deleted),
            other => Err(unexpected(other)),
        }
    }

    async fn watch(&self, prefix: Bytes, after: Revision) -> Result<WatchStream> {
        self.hub
            .watch(Arc::new(self.readers.clone()), prefix, after)
            .await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.write(Op::Compact { revision }).await? {
            Done::Compacted => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(done: Done) -> StoreError {
    StoreError::Internal(format!(
        "the store writer answered with the wrong kind of result: {done:?}"
    ))
}

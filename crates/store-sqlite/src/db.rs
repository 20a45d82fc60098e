//! The schema, connection set-up, the queries shared by readers and the writer, and SQLite error mapping.
//!
//! Schema (kine's idea: the row id is the revision; every write appends a row):
//! - `kv(rev, name, create_rev, prev_rev, deleted, value)`: every version and tombstone. `prev_rev` is the
//!   revision of the key's previous row (0 for none); `UNIQUE(name, prev_rev)` makes two writes that start from
//!   the same version of a key impossible even if a bug let them through.
//! - `latest(name, rev)`: each live key's newest revision, so reads at the head revision touch one row per key
//!   instead of scanning history.
//! - `meta`: the head revision and the compaction revision, updated in the same transaction as the writes.

use std::path::Path;

use bytes::Bytes;
use gantry_store::{EventKind, KeyValue, Revision, StoreError, WatchEvent};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, params};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    rev        INTEGER PRIMARY KEY,
    name       BLOB    NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev   INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,
    value      BLOB    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS kv_name_prev_rev ON kv (name, prev_rev);
CREATE INDEX IF NOT EXISTS kv_name_rev ON kv (name, rev, deleted);
CREATE TABLE IF NOT EXISTS latest (name BLOB PRIMARY KEY, rev INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    id        INTEGER PRIMARY KEY CHECK (id = 0),
    revision  INTEGER NOT NULL,
    compacted INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (id, revision, compacted) VALUES (0, 1, 0);
";

/// The WAL is truncated back to this size whenever a checkpoint resets it.
const WAL_SIZE_LIMIT: i64 = 8 << 20;

/// Opens a connection with the settings every connection needs.
pub(crate) fn connect(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| map_err(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| map_err(path, e))?;
    // Durable commits: in WAL mode, FULL syncs the WAL on every commit.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA cache_size = -16384;")
        .map_err(|e| map_err(path, e))?;
    Ok(conn)
}

/// Opens the writer's connection: checks the file, switches to WAL and creates the schema.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = connect(path)?;
    // auto_vacuum must be chosen before the first table exists; it lets compaction give space back.
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")
        .map_err(|e| map_err(path, e))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| map_err(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!(
            "database {}: cannot enable WAL (mode {mode})",
            path.display()
        )));
    }
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| map_err(path, e))?;
    if check != "ok" {
        return Err(StoreError::Internal(format!(
            "database {} is corrupt: {check}",
            path.display()
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}; {SCHEMA}"
    ))
    .map_err(|e| map_err(path, e))?;
    Ok(conn)
}

/// The head revision and the compaction revision, as of the connection's current transaction.
pub(crate) fn meta(conn: &Connection) -> rusqlite::Result<(Revision, Revision)> {
    conn.prepare_cached("SELECT revision, compacted FROM meta WHERE id = 0")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// The revision a read asked for (`None` = the head) and whether it is the head, as of the connection's
/// current transaction; the inner error says it is compacted or in the future.
pub(crate) fn read_revision(
    conn: &Connection,
    requested: Option<Revision>,
) -> rusqlite::Result<Result<(Revision, bool), StoreError>> {
    let (head, compacted) = meta(conn)?;
    let revision = requested.unwrap_or(head);
    Ok(gantry_store::check_readable(revision, head, compacted)
        .map(|()| (revision, revision == head)))
}

/// The SQL condition for the end of a key range bound as `?2`: `column < ?2`, or, for a range without an end
/// (`?2` bound to NULL), a condition that always holds.
pub(crate) fn below_end(column: &str, bounded: bool) -> String {
    if bounded {
        format!("{column} < ?2")
    } else {
        "?2 IS NULL".to_string()
    }
}

/// Reads a `(name, value, create_rev, rev)` row.
pub(crate) fn key_value(row: &Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: Bytes::from(row.get::<_, Vec<u8>>(0)?),
        value: Bytes::from(row.get::<_, Vec<u8>>(1)?),
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
    })
}

/// Reads a history row: `(rev, name, create_rev, deleted, value, prev.rev, prev.create_rev, prev.value)`,
/// where the `prev` columns are NULL when there is no live previous version.
pub(crate) fn event(row: &Row<'_>) -> rusqlite::Result<WatchEvent> {
    let revision: Revision = row.get(0)?;
    let key = Bytes::from(row.get::<_, Vec<u8>>(1)?);
    let prev = match row.get::<_, Option<Revision>>(5)? {
        None => None,
        Some(prev_revision) => Some(KeyValue {
            key: key.clone(),
            value: Bytes::from(row.get::<_, Vec<u8>>(7)?),
            create_revision: row.get(6)?,
            mod_revision: prev_revision,
        }),
    };
    let event = if row.get::<_, bool>(3)? {
        match prev {
            Some(prev) => WatchEvent::deleted(prev, revision),
            None => WatchEvent {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key,
                    value: Bytes::new(),
                    create_revision: 0,
                    mod_revision: revision,
                },
                prev: None,
            },
        }
    } else {
        let kv = KeyValue {
            key,
            value: Bytes::from(row.get::<_, Vec<u8>>(4)?),
            create_revision: row.get(2)?,
            mod_revision: revision,
        };
        WatchEvent {
            kind: EventKind::Put,
            kv,
            prev,
        }
    };
    Ok(event)
}

/// The key's live version at the head revision.
pub(crate) fn latest(conn: &Connection, key: &[u8]) -> rusqlite::Result<Option<KeyValue>> {
    conn.prepare_cached(
        "SELECT kv.name, kv.value, kv.create_rev, kv.rev FROM latest JOIN kv ON kv.rev = latest.rev
         WHERE latest.name = ?1",
    )?
    .query_row(params![key], key_value)
    .optional()
}

/// The key's version visible at `revision` (`None` if absent or deleted then).
pub(crate) fn at_revision(
    conn: &Connection,
    key: &[u8],
    revision: Revision,
) -> rusqlite::Result<Option<KeyValue>> {
    let row = conn
        .prepare_cached(
            "SELECT name, value, create_rev, rev, deleted FROM kv WHERE name = ?1 AND rev <= ?2
             ORDER BY rev DESC LIMIT 1",
        )?
        .query_row(params![key, revision], |r| {
            Ok((key_value(r)?, r.get::<_, bool>(4)?))
        })
        .optional()?;
    Ok(row.and_then(|(kv, deleted)| (!deleted).then_some(kv)))
}

/// Maps a SQLite error to the store's error, naming the database and the cause.
pub(crate) fn map_err(path: &Path, error: rusqlite::Error) -> StoreError {
    let db = path.display();
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => {
            StoreError::Unavailable(format!("database {db}: disk full ({error})"))
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Internal(
            format!("database {db} is corrupt or not a Gantry database: {error}"),
        ),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable(
            format!("database {db} is locked by another process ({error})"),
        ),
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
            StoreError::Unavailable(format!(
                "database {db} cannot be opened for writing: {error}"
            ))
        }
        Some(ErrorCode::SystemIoFailure) => {
            StoreError::Unavailable(format!("database {db}: I/O error ({error})"))
        }
        _ => StoreError::Internal(format!("database {db}: {error}")),
    }
}

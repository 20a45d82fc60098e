//! What the SQLite backend adds to the shared suite: data survives reopening, compaction really deletes
//! history, and bad files, full disks and a second process get clear errors without losing acknowledged writes.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use gantry_store::{RangeRequest, Store, StoreError};
use gantry_store_sqlite::SqliteStore;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn count_rows(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn reopening_keeps_values_revisions_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (a2, head) = {
        let store = SqliteStore::open(&path).unwrap();
        let a1 = store.create(b("/a"), b("1")).await.unwrap();
        let a2 = store
            .update(b("/a"), b("2"), a1.mod_revision)
            .await
            .unwrap();
        store.create(b("/gone"), b("x")).await.unwrap();
        store.delete(b("/gone"), None).await.unwrap();
        store.compact(a2.mod_revision).await.unwrap();
        let b1 = store.create(b("/b"), b("1")).await.unwrap();
        (a2, b1.mod_revision)
    };
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), head);
    assert_eq!(store.get(b"/a", None).await.unwrap(), Some(a2.clone()));
    assert_eq!(store.get(b"/gone", None).await.unwrap(), None);
    let err = store
        .get(b"/a", Some(a2.mod_revision - 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
    let keys: Vec<_> = store
        .range(RangeRequest::prefix("/"))
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, vec![b("/a"), b("/b")]);
    // Revisions go on from where they were, and history after the compaction can still be watched.
    let next = store.create(b("/c"), b("1")).await.unwrap();
    assert_eq!(next.mod_revision, head + 1);
    let mut watch = store.watch(b("/"), a2.mod_revision).await.unwrap();
    use futures::StreamExt;
    let first = watch.next().await.unwrap().unwrap();
    assert!(first.revision() > a2.mod_revision);
}

#[tokio::test]
async fn compaction_deletes_history_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    let mut revisions = Vec::new();
    for k in 0..10 {
        revisions.push(
            store
                .create(b(&format!("/k/{k}")), b("0"))
                .await
                .unwrap()
                .mod_revision,
        );
    }
    for round in 1..=300 {
        for (k, revision) in revisions.iter_mut().enumerate() {
            *revision = store
                .update(b(&format!("/k/{k}")), b(&round.to_string()), *revision)
                .await
                .unwrap()
                .mod_revision;
        }
    }
    for k in 0..5 {
        store.create(b(&format!("/tmp/{k}")), b("x")).await.unwrap();
        store.delete(b(&format!("/tmp/{k}")), None).await.unwrap();
    }
    assert_eq!(count_rows(&path), 10 * 301 + 10);
    store
        .compact(store.current_revision().await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        count_rows(&path),
        10,
        "only the live version of each live key is left"
    );
    let page = store.range(RangeRequest::prefix("/k/")).await.unwrap();
    assert!(page.kvs.iter().all(|kv| kv.value == b("300")));
}

#[tokio::test]
async fn a_second_opener_is_refused_while_the_first_lives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let first = SqliteStore::open(&path).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("in use by another process")),
        "{err}"
    );
    drop(first);
    SqliteStore::open(&path).unwrap();
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Internal(m) if m.contains("corrupt") && m.contains("state.db")),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![0x5a; 64 * 1024],
        "the file is left as it was"
    );
}

#[tokio::test]
async fn a_damaged_database_is_detected_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        for i in 0..2000 {
            store
                .create(b(&format!("/k/{i:05}")), Bytes::from(vec![7u8; 512]))
                .await
                .unwrap();
        }
    }
    // Checkpoint the WAL into the main file, then scribble over pages in the middle of it.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 8192].fill(0xff);
    std::fs::write(&path, bytes).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Internal(m) if m.contains("corrupt")),
        "{err}"
    );
}

#[test]
fn an_unusable_location_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let err = SqliteStore::open(file.join("state.db")).unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("not-a-directory")),
        "{err}"
    );
}

/// A small tmpfs, unmounted on drop: a real file system that really fills up.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount (the store tests run as root)");
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallDisk { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_writes_cleanly_and_recovers() {
    let disk = SmallDisk::mount("4m");
    // Room to give back later.
    std::fs::write(disk.path("ballast"), vec![0u8; 1 << 20]).unwrap();
    let store = SqliteStore::open(disk.path("state.db")).unwrap();
    let value = Bytes::from(vec![0xab; 64 * 1024]);
    let mut acknowledged = Vec::new();
    let full = loop {
        let key = b(&format!("/fill/{:04}", acknowledged.len()));
        match store.create(key.clone(), value.clone()).await {
            Ok(kv) => acknowledged.push(kv),
            Err(e) => break e,
        }
        assert!(acknowledged.len() < 1000, "a 4 MiB disk cannot hold 64 MiB");
    };
    assert!(
        matches!(&full, StoreError::Unavailable(m) if m.contains("disk full")),
        "{full}"
    );
    assert!(acknowledged.len() > 10);
    let last = acknowledged.last().unwrap().mod_revision;
    assert_eq!(
        store.current_revision().await.unwrap(),
        last,
        "the failed write left no trace"
    );
    let listed = store.range(RangeRequest::prefix("/fill/")).await.unwrap();
    assert_eq!(listed.kvs, acknowledged);

    // Space comes back: writes work again, and nothing acknowledged was lost.
    std::fs::remove_file(disk.path("ballast")).unwrap();
    let kv = store.create(b("/after"), b("ok")).await.unwrap();
    assert_eq!(kv.mod_revision, last + 1);
    drop(store);
    let reopened = SqliteStore::open(disk.path("state.db")).unwrap();
    assert_eq!(
        reopened
            .range(RangeRequest::prefix("/fill/"))
            .await
            .unwrap()
            .kvs,
        acknowledged
    );
    assert_eq!(
        reopened
            .get(b"/after", None)
            .await
            .unwrap()
            .map(|kv| kv.value),
        Some(b("ok"))
    );
}

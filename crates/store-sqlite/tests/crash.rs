//! `kill -9` of a process in the middle of acknowledged writes loses nothing.
//!
//! The test re-runs its own binary as the writer (selected by an environment variable). The writer prints a line
//! for every write only after the store acknowledged it; the parent kills it with SIGKILL at a different moment
//! each round, reopens the database and checks every acknowledged write. Rounds share one database, so each
//! round also recovers from the previous crash.

#![allow(clippy::unwrap_used)] // a test binary: a failed unwrap is a failed test

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use gantry_store::{Store, StoreError};
use gantry_store_sqlite::SqliteStore;

const WRITER_ENV: &str = "GANTRY_CRASH_TEST_WRITER_DB";
const WRITERS: usize = 16;
const ROUNDS: u64 = 5;

/// The value of the `n`th write of a key: its size varies from 16 bytes to 96 KiB.
fn value(key: &str, n: u64) -> Bytes {
    let size = 16 + (n as usize * 7919) % (96 * 1024);
    let seed = format!("{key}#{n}#");
    seed.bytes()
        .cycle()
        .take(size.max(seed.len()))
        .collect::<Vec<u8>>()
        .into()
}

fn main() {
    if let Ok(db) = std::env::var(WRITER_ENV) {
        return writer(&db);
    }
    let name = "kill_9_during_writes_loses_no_acknowledged_write";
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !name.contains(&a))
    {
        return; // filtered out by a test name filter
    }
    print!("test {name} ... ");
    let _ = std::io::stdout().flush();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    // Every acknowledged write so far: key → (n of the last acknowledged write, its revision).
    let mut acknowledged: HashMap<String, (u64, i64)> = HashMap::new();
    for round in 0..ROUNDS {
        let count = crash_writer(&db, round, &mut acknowledged);
        assert!(
            count > 0,
            "round {round}: the writer acknowledged nothing before it was killed"
        );
        verify(&db, &acknowledged);
    }
    println!(
        "ok ({} keys acknowledged over {ROUNDS} crashes)",
        acknowledged.len()
    );
    println!("\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}

/// Runs the writer, kills it mid-write, and records what it acknowledged.
#[allow(clippy::disallowed_methods)] // a plain blocking test process
fn crash_writer(
    db: &std::path::Path,
    round: u64,
    acknowledged: &mut HashMap<String, (u64, i64)>,
) -> usize {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(WRITER_ENV, db)
        .env("GANTRY_CRASH_TEST_ROUND", round.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        lines
    });
    std::thread::sleep(Duration::from_millis(400 + round * 300));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let lines = reader.join().unwrap();
    let mut count = 0;
    for line in lines {
        // A line cut short by the kill has no "ack" terminator; its write is not counted as acknowledged.
        let parts: Vec<&str> = line.split(' ').collect();
        if let [key, n, revision, "ack"] = parts[..] {
            let (n, revision) = (n.parse().unwrap(), revision.parse().unwrap());
            let entry = acknowledged.entry(key.to_string()).or_insert((n, revision));
            if n >= entry.0 {
                *entry = (n, revision);
            }
            count += 1;
        }
    }
    count
}

/// Reopens the database and checks every acknowledged write is there (or was superseded by a later write).
fn verify(db: &std::path::Path, acknowledged: &HashMap<String, (u64, i64)>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(db).unwrap();
        let head = store.current_revision().await.unwrap();
        for (key, &(n, revision)) in acknowledged {
            assert!(
                head >= revision,
                "revision went backwards: head {head} < acknowledged {revision}"
            );
            let kv = store
                .get(key.as_bytes(), None)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{key} lost"));
            if kv.mod_revision == revision {
                assert_eq!(
                    kv.value,
                    value(key, n),
                    "{key}: wrong value at revision {revision}"
                );
            } else {
                assert!(
                    kv.mod_revision > revision,
                    "{key}: found revision {} < acknowledged {revision}",
                    kv.mod_revision
                );
                let later_n = (n + 1..n + 64).find(|&m| kv.value == value(key, m));
                assert!(
                    later_n.is_some(),
                    "{key}: the value is neither the acknowledged one nor a later write"
                );
            }
        }
        // The reopened store takes writes.
        store
            .create(
                Bytes::from(format!("/reopened/{head}")),
                Bytes::from_static(b"ok"),
            )
            .await
            .unwrap();
    });
}

/// The child: WRITERS tasks, each creating keys and updating them, printing each acknowledged write.
fn writer(db: &str) {
    let round: u64 = std::env::var("GANTRY_CRASH_TEST_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(db).unwrap();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        // Each round writes new keys, and also rewrites keys of round 0 (updates).
                        let key = format!("/crash/{round}/{w}/{i}");
                        let kv = store
                            .create(Bytes::from(key.clone()), value(&key, 0))
                            .await
                            .unwrap();
                        ack(&key, 0, kv.mod_revision);
                        let key = format!("/shared/{w}/{}", i % 8);
                        let next = match store.get(key.as_bytes(), None).await.unwrap() {
                            None => store
                                .create(Bytes::from(key.clone()), value(&key, 0))
                                .await
                                .map(|kv| (0, kv)),
                            Some(current) => {
                                let n = (0..u64::MAX)
                                    .find(|&m| current.value == value(&key, m))
                                    .unwrap()
                                    + 1;
                                store
                                    .update(
                                        Bytes::from(key.clone()),
                                        value(&key, n),
                                        current.mod_revision,
                                    )
                                    .await
                                    .map(|kv| (n, kv))
                            }
                        };
                        match next {
                            Ok((n, kv)) => ack(&key, n, kv.mod_revision),
                            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

fn ack(key: &str, n: u64, revision: i64) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{key} {n} {revision} ack").unwrap();
    out.flush().unwrap();
}

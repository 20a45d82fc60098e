//! A three-member cluster loses its leader while writers create keys: every acknowledged write survives, and
//! writes go on once the two remaining members have elected a new leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gantry_store::{RangeRequest, Store, StoreError};
use gantry_store_etcd::EtcdStore;
use gantry_store_etcd::testing::EtcdCluster;

/// Failed attempts, all writers together (for the test's output).
static FAILURES: AtomicUsize = AtomicUsize::new(0);
const WRITERS: usize = 4;
/// Acknowledged creates to wait for before the kill, and after it before stopping.
const WRITES_PER_PHASE: usize = 200;
/// Everything, including the cluster's start and the leader election, ends well within this.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// A create that was acknowledged: its key, value, and whether it was acknowledged after the kill.
struct Ack {
    key: Bytes,
    value: Bytes,
    after_kill: bool,
}

/// Creates `key` until it is known to be committed (`Some`) or `deadline` passes (`None`). A failed attempt
/// may still have committed, so `AlreadyExists` holding our value counts as done.
async fn create_until_committed(
    store: &EtcdStore,
    key: Bytes,
    value: Bytes,
    deadline: Instant,
) -> Option<(Bytes, Bytes)> {
    let mut failures = Vec::new();
    while Instant::now() < deadline {
        match store.create(key.clone(), value.clone()).await {
            Ok(kv) => {
                assert_eq!(kv.value, value);
                FAILURES.fetch_add(failures.len(), Ordering::SeqCst);
                return Some((key, value));
            }
            Err(StoreError::AlreadyExists { .. }) => {
                match store.get(&key, None).await {
                    Ok(Some(kv)) if kv.value == value => {
                        FAILURES.fetch_add(failures.len(), Ordering::SeqCst);
                        return Some((key, value));
                    }
                    Ok(other) => panic!("{key:?} exists with a value nobody wrote: {other:?}"),
                    // Cannot tell yet: ask again.
                    Err(e) => failures.push(e),
                }
            }
            Err(e @ StoreError::Unavailable(_)) => failures.push(e),
            Err(other) => panic!("unexpected error creating {key:?}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    FAILURES.fetch_add(failures.len(), Ordering::SeqCst);
    eprintln!(
        "gave up on {key:?} after {} failures: {:?}",
        failures.len(),
        failures.last()
    );
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_losing_the_leader() {
    let test = async {
        let started = Instant::now();
        let cluster = EtcdCluster::start(3);
        let store = EtcdStore::connect(&cluster.endpoints(), None)
            .await
            .unwrap();
        let deadline = started + TEST_LIMIT - Duration::from_secs(15);

        let stop = Arc::new(AtomicBool::new(false));
        let killed = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (store, stop, killed, acked) =
                    (store.clone(), stop.clone(), killed.clone(), acked.clone());
                tokio::spawn(async move {
                    let mut acks = Vec::new();
                    for i in 0.. {
                        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                            break;
                        }
                        let key = Bytes::from(format!("/cluster/{w}/{i:06}"));
                        let value = Bytes::from(format!("writer {w} write {i}"));
                        // Read before the create starts: an ack counts as "after the kill" only if the whole
                        // create ran after it.
                        let after_kill = killed.load(Ordering::SeqCst);
                        if let Some((key, value)) =
                            create_until_committed(&store, key, value, deadline).await
                        {
                            acked.fetch_add(1, Ordering::SeqCst);
                            acks.push(Ack {
                                key,
                                value,
                                after_kill,
                            });
                        }
                    }
                    acks
                })
            })
            .collect();

        let wait_for_acks = |n: usize| {
            let acked = acked.clone();
            async move {
                while acked.load(Ordering::SeqCst) < n && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        wait_for_acks(WRITES_PER_PHASE).await;
        let leader = cluster.leader().await.expect("the cluster has a leader");
        let before_kill = acked.load(Ordering::SeqCst);
        killed.store(true, Ordering::SeqCst);
        cluster.member(leader).kill();
        let killed_at = Instant::now();
        eprintln!("killed the leader, member {leader}, after {before_kill} acknowledged creates");
        wait_for_acks(before_kill + WRITES_PER_PHASE).await;
        stop.store(true, Ordering::SeqCst);
        let mut acks = Vec::new();
        for writer in writers {
            acks.extend(writer.await.unwrap());
        }
        let after_kill = acks.iter().filter(|a| a.after_kill).count();
        eprintln!(
            "{} acknowledged creates, {after_kill} started after the kill, {} failed attempts; stopped {:?} after the kill",
            acks.len(),
            FAILURES.load(Ordering::SeqCst),
            killed_at.elapsed()
        );
        assert!(
            after_kill > 0,
            "no write was acknowledged after the leader was killed"
        );

        // Read everything back through the surviving members only.
        let survivors: Vec<String> = (0..cluster.size())
            .filter(|&i| i != leader)
            .map(|i| cluster.member(i).endpoint().to_string())
            .collect();
        let survivors = EtcdStore::connect(&survivors, None).await.unwrap();
        let page = survivors
            .range(RangeRequest::prefix("/cluster/"))
            .await
            .unwrap();
        let stored: BTreeMap<Bytes, Bytes> =
            page.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
        for ack in &acks {
            assert_eq!(
                stored.get(&ack.key),
                Some(&ack.value),
                "acknowledged key {:?} is missing or changed",
                ack.key
            );
        }
        // Nothing appeared that no writer attempted (a create that failed for good may still have committed).
        for (key, value) in &stored {
            let text = String::from_utf8_lossy(key);
            let mut parts = text.trim_start_matches("/cluster/").split('/');
            let (w, i) = (parts.next().unwrap(), parts.next().unwrap());
            let i: usize = i.parse().unwrap();
            assert_eq!(value, &Bytes::from(format!("writer {w} write {i}")));
        }
    };
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("the test finishes in time");
}

//! A watcher still replaying history when the store compacts past it gets `Compacted` as its last item.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use gantry_store::{Store, StoreError};
use gantry_store_etcd::EtcdStore;
use gantry_store_etcd::testing::EtcdServer;

const UPDATES: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_under_a_replaying_watch_ends_it_with_compacted() {
    let server = EtcdServer::start();
    let store = EtcdStore::connect(&server.endpoints(), None).await.unwrap();
    let value = Bytes::from(vec![7u8; 10_000]);
    // etcd hands a new watcher its history on its next sync (every 100 ms); the compaction below normally
    // lands before that. Should etcd be quicker, the watcher has everything and the case is tried again.
    for attempt in 0..3 {
        let key = Bytes::from(format!("/x/{attempt}"));
        let first = store.create(key.clone(), value.clone()).await.unwrap();
        let mut kv = first.clone();
        for _ in 0..UPDATES {
            kv = store
                .update(key.clone(), value.clone(), kv.mod_revision)
                .await
                .unwrap();
        }
        let mut watch = store.watch(key, first.mod_revision - 1).await.unwrap();
        store.compact(kv.mod_revision).await.unwrap();
        let mut previous = first.mod_revision - 1;
        let last = loop {
            match tokio::time::timeout(Duration::from_secs(2), watch.next()).await {
                Ok(Some(Ok(event))) => {
                    assert!(event.revision() > previous);
                    previous = event.revision();
                }
                other => break other,
            }
        };
        match last {
            Ok(Some(Err(StoreError::Compacted {
                requested,
                compacted,
            }))) => {
                assert_eq!(compacted, kv.mod_revision);
                assert_eq!(requested, previous, "the last revision the watcher saw");
                assert!(watch.next().await.is_none(), "Compacted is the last item");
                return;
            }
            // Timed out waiting: etcd delivered everything before the compaction.
            Err(_) if previous == kv.mod_revision => {
                eprintln!("attempt {attempt}: the watcher caught up before the compaction");
            }
            other => panic!("expected events then Compacted, got {other:?} after {previous}"),
        }
    }
    panic!("the watcher caught up before the compaction in every attempt");
}

//! The conformance suite: every backend runs these same cases, unchanged, through [`conformance_tests!`].
//! Each case gets a fresh, empty store. Cases assert etcd's semantics, not a backend's revision numbering: only
//! that revisions strictly increase.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed case

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{
    EventKind, KeyValue, RangeRequest, Revision, Store, StoreError, WatchEvent, WatchStream,
};

/// A store under test plus whatever must live as long as it (a temporary directory, an etcd process).
#[allow(missing_debug_implementations)]
pub struct TestStore {
    pub store: Arc<dyn Store>,
    _guard: Box<dyn Send + Sync>,
}

impl TestStore {
    pub fn new(store: impl Store + 'static, guard: impl Send + Sync + 'static) -> Self {
        TestStore {
            store: Arc::new(store),
            _guard: Box::new(guard),
        }
    }
}

/// Generates one `#[tokio::test]` per conformance case. `$factory` is a closure returning a future of a
/// [`TestStore`] holding a fresh, empty store.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            revision_starts_at_one_and_increases,
            create_get_and_already_exists,
            update_is_compare_and_swap,
            delete_is_compare_and_swap,
            get_at_old_revision,
            future_revision_is_an_error,
            empty_key_is_rejected,
            range_returns_only_the_prefix_in_byte_order,
            range_pages_read_one_revision_across_concurrent_writes,
            range_at_old_revision,
            watch_delivers_every_change_in_order_with_previous_values,
            watch_from_old_revision_replays_history,
            watch_filters_by_prefix,
            many_watchers_see_the_same_events,
            slow_watcher_catches_up_without_loss,
            compaction_keeps_latest_values_and_refuses_older_reads,
            compaction_edges,
            continue_token_after_compaction_is_gone,
            recreated_key_starts_a_new_life,
            concurrent_compare_and_swap_admits_one_winner,
            concurrent_creates_get_distinct_revisions,
            large_values_round_trip,
            many_keys,
            binary_keys_and_values,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let test_store = ($factory)().await;
                $crate::conformance::$case(test_store.store.clone()).await;
            }
        )*
    };
}

const WATCH_TIMEOUT: Duration = Duration::from_secs(10);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn next_event(watch: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(WATCH_TIMEOUT, watch.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("expected a watch event, got {other:?}"),
    }
}

async fn expect_quiet(watch: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(200), watch.next()).await {
        panic!("expected no event, got {item:?}");
    }
}

fn keys(kvs: &[KeyValue]) -> Vec<&[u8]> {
    kvs.iter().map(|kv| kv.key.as_ref()).collect()
}

pub async fn revision_starts_at_one_and_increases(store: Arc<dyn Store>) {
    assert_eq!(store.current_revision().await.unwrap(), 1);
    let a = store.create(b("/a"), b("1")).await.unwrap();
    assert!(a.mod_revision > 1);
    assert_eq!(a.create_revision, a.mod_revision);
    assert_eq!(store.current_revision().await.unwrap(), a.mod_revision);
    let a2 = store.update(b("/a"), b("2"), a.mod_revision).await.unwrap();
    assert!(a2.mod_revision > a.mod_revision);
    assert_eq!(a2.create_revision, a.create_revision);
    let deleted = store.delete(b("/a"), None).await.unwrap();
    assert!(deleted.revision > a2.mod_revision);
    assert_eq!(deleted.prev, a2);
    assert_eq!(store.current_revision().await.unwrap(), deleted.revision);
    // A failed write does not move the revision.
    store
        .update(b("/a"), b("3"), a2.mod_revision)
        .await
        .unwrap_err();
    assert_eq!(store.current_revision().await.unwrap(), deleted.revision);
}

pub async fn create_get_and_already_exists(store: Arc<dyn Store>) {
    assert_eq!(store.get(b"/k", None).await.unwrap(), None);
    let kv = store.create(b("/k"), b("v")).await.unwrap();
    assert_eq!(kv.key, b("/k"));
    assert_eq!(kv.value, b("v"));
    assert_eq!(store.get(b"/k", None).await.unwrap(), Some(kv.clone()));
    let err = store.create(b("/k"), b("other")).await.unwrap_err();
    assert_eq!(err, StoreError::AlreadyExists { key: b("/k") });
    assert_eq!(
        store.get(b"/k", None).await.unwrap(),
        Some(kv),
        "a failed create changes nothing"
    );
}

pub async fn update_is_compare_and_swap(store: Arc<dyn Store>) {
    let v1 = store.create(b("/k"), b("1")).await.unwrap();
    let v2 = store
        .update(b("/k"), b("2"), v1.mod_revision)
        .await
        .unwrap();
    assert_eq!(v2.value, b("2"));
    match store
        .update(b("/k"), b("stale"), v1.mod_revision)
        .await
        .unwrap_err()
    {
        StoreError::Conflict {
            key,
            expected,
            current,
        } => {
            assert_eq!(key, b("/k"));
            assert_eq!(expected, v1.mod_revision);
            assert_eq!(*current, v2);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.get(b"/k", None).await.unwrap(), Some(v2));
    let err = store
        .update(b("/missing"), b("x"), v1.mod_revision)
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::NotFound { key: b("/missing") });
    assert_eq!(store.get(b"/missing", None).await.unwrap(), None);
}

pub async fn delete_is_compare_and_swap(store: Arc<dyn Store>) {
    let v1 = store.create(b("/k"), b("1")).await.unwrap();
    let v2 = store
        .update(b("/k"), b("2"), v1.mod_revision)
        .await
        .unwrap();
    let err = store
        .delete(b("/k"), Some(v1.mod_revision))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { ref current, .. } if **current == v2),
        "{err:?}"
    );
    assert_eq!(store.get(b"/k", None).await.unwrap(), Some(v2.clone()));
    let deleted = store.delete(b("/k"), Some(v2.mod_revision)).await.unwrap();
    assert_eq!(deleted.prev, v2);
    assert_eq!(store.get(b"/k", None).await.unwrap(), None);
    let err = store.delete(b("/k"), None).await.unwrap_err();
    assert_eq!(err, StoreError::NotFound { key: b("/k") });
    // Unconditional delete.
    store.create(b("/u"), b("x")).await.unwrap();
    store.delete(b("/u"), None).await.unwrap();
    assert_eq!(store.get(b"/u", None).await.unwrap(), None);
}

pub async fn get_at_old_revision(store: Arc<dyn Store>) {
    let v1 = store.create(b("/k"), b("1")).await.unwrap();
    let v2 = store
        .update(b("/k"), b("2"), v1.mod_revision)
        .await
        .unwrap();
    let deleted = store.delete(b("/k"), None).await.unwrap();
    assert_eq!(
        store.get(b"/k", Some(v1.mod_revision)).await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(
        store.get(b"/k", Some(v2.mod_revision)).await.unwrap(),
        Some(v2)
    );
    assert_eq!(
        store.get(b"/k", Some(deleted.revision)).await.unwrap(),
        None
    );
    assert_eq!(
        store.get(b"/k", Some(v1.mod_revision - 1)).await.unwrap(),
        None
    );
    assert_eq!(store.get(b"/k", None).await.unwrap(), None);
}

pub async fn future_revision_is_an_error(store: Arc<dyn Store>) {
    let kv = store.create(b("/k"), b("1")).await.unwrap();
    let future = kv.mod_revision + 10;
    let err = store.get(b"/k", Some(future)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::FutureRevision { requested, .. } if requested == future),
        "{err:?}"
    );
    let err = store
        .range(RangeRequest::prefix("/").at(future))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err:?}");
    let err = store.compact(future).await.unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err:?}");
}

pub async fn empty_key_is_rejected(store: Arc<dyn Store>) {
    let rev = store.current_revision().await.unwrap();
    for err in [
        store.create(Bytes::new(), b("v")).await.unwrap_err(),
        store.update(Bytes::new(), b("v"), rev).await.unwrap_err(),
        store.delete(Bytes::new(), None).await.unwrap_err(),
        store.get(b"", None).await.unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::InvalidArgument(_)), "{err:?}");
    }
    assert_eq!(store.current_revision().await.unwrap(), rev);
}

pub async fn range_returns_only_the_prefix_in_byte_order(store: Arc<dyn Store>) {
    for key in [
        "/b/2",
        "/a/1",
        "/b/10",
        "/b/1",
        "/b",
        "/c/1",
        "/b0",
        "/b/\u{e9}",
    ] {
        store.create(b(key), b(key)).await.unwrap();
    }
    let page = store.range(RangeRequest::prefix("/b/")).await.unwrap();
    assert_eq!(
        keys(&page.kvs),
        vec![&b"/b/1"[..], b"/b/10", b"/b/2", "/b/\u{e9}".as_bytes()]
    );
    assert_eq!(page.next, None);
    assert_eq!(page.revision, store.current_revision().await.unwrap());
    assert!(page.kvs.iter().all(|kv| kv.key == kv.value));
    let all = store.range(RangeRequest::prefix("")).await.unwrap();
    assert_eq!(all.kvs.len(), 8);
    let none = store.range(RangeRequest::prefix("/z/")).await.unwrap();
    assert!(none.kvs.is_empty());
    // Deleted keys disappear from listings.
    store.delete(b("/b/10"), None).await.unwrap();
    let page = store.range(RangeRequest::prefix("/b/")).await.unwrap();
    assert_eq!(
        keys(&page.kvs),
        vec![&b"/b/1"[..], b"/b/2", "/b/\u{e9}".as_bytes()]
    );
}

pub async fn range_pages_read_one_revision_across_concurrent_writes(store: Arc<dyn Store>) {
    for i in 0..10 {
        store
            .create(b(&format!("/p/{i:02}")), b("old"))
            .await
            .unwrap();
    }
    let first = store
        .range(RangeRequest::prefix("/p/").limit(4))
        .await
        .unwrap();
    assert_eq!(first.kvs.len(), 4);
    let token = first.next.clone().expect("more pages");
    assert_eq!(token.revision, first.revision);

    // Writes between pages: an update, a delete and a create inside the remaining range.
    let kv = store.get(b"/p/05", None).await.unwrap().unwrap();
    store
        .update(b("/p/05"), b("new"), kv.mod_revision)
        .await
        .unwrap();
    store.delete(b("/p/06"), None).await.unwrap();
    store.create(b("/p/055"), b("new")).await.unwrap();

    let mut listed = first.kvs.clone();
    let mut next = Some(token);
    while let Some(token) = next {
        let page = store
            .range(RangeRequest::prefix("/p/").limit(4).continue_from(token))
            .await
            .unwrap();
        assert_eq!(
            page.revision, first.revision,
            "every page reads the first page's revision"
        );
        listed.extend(page.kvs);
        next = page.next;
    }
    let expected: Vec<String> = (0..10).map(|i| format!("/p/{i:02}")).collect();
    assert_eq!(
        keys(&listed),
        expected.iter().map(|k| k.as_bytes()).collect::<Vec<_>>()
    );
    assert!(listed.iter().all(|kv| kv.value == b("old")));

    // A limit that ends exactly at the last key says there is nothing more.
    let page = store
        .range(RangeRequest::prefix("/p/").limit(10))
        .await
        .unwrap();
    assert_eq!(page.kvs.len(), 10);
    assert_eq!(page.next, None);
}

pub async fn range_at_old_revision(store: Arc<dyn Store>) {
    store.create(b("/r/a"), b("1")).await.unwrap();
    let b1 = store.create(b("/r/b"), b("1")).await.unwrap();
    let at = b1.mod_revision;
    store
        .update(b("/r/b"), b("2"), b1.mod_revision)
        .await
        .unwrap();
    store.delete(b("/r/a"), None).await.unwrap();
    store.create(b("/r/c"), b("1")).await.unwrap();
    let page = store
        .range(RangeRequest::prefix("/r/").at(at))
        .await
        .unwrap();
    assert_eq!(page.revision, at);
    assert_eq!(keys(&page.kvs), vec![&b"/r/a"[..], b"/r/b"]);
    assert_eq!(page.kvs[1], b1);
}

pub async fn watch_delivers_every_change_in_order_with_previous_values(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch(b("/w/"), start).await.unwrap();
    let v1 = store.create(b("/w/k"), b("1")).await.unwrap();
    let v2 = store
        .update(b("/w/k"), b("2"), v1.mod_revision)
        .await
        .unwrap();
    let deleted = store.delete(b("/w/k"), None).await.unwrap();

    let created = next_event(&mut watch).await;
    assert_eq!(
        (created.kind, &created.kv, &created.prev),
        (EventKind::Put, &v1, &None)
    );
    assert!(created.is_create());
    let updated = next_event(&mut watch).await;
    assert_eq!(
        (updated.kind, &updated.kv, updated.prev.as_ref()),
        (EventKind::Put, &v2, Some(&v1))
    );
    assert!(!updated.is_create());
    let gone = next_event(&mut watch).await;
    assert_eq!(gone.kind, EventKind::Delete);
    assert_eq!(gone.kv.key, b("/w/k"));
    assert_eq!(gone.revision(), deleted.revision);
    assert_eq!(gone.prev, Some(v2));
    expect_quiet(&mut watch).await;
}

pub async fn watch_from_old_revision_replays_history(store: Arc<dyn Store>) {
    let v1 = store.create(b("/h/k"), b("1")).await.unwrap();
    let v2 = store
        .update(b("/h/k"), b("2"), v1.mod_revision)
        .await
        .unwrap();
    let other = store.create(b("/h/j"), b("1")).await.unwrap();
    // After v1: sees v2 and the create of j, then live events.
    let mut watch = store.watch(b("/h/"), v1.mod_revision).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv, v2);
    assert_eq!(next_event(&mut watch).await.kv, other);
    let v3 = store
        .update(b("/h/k"), b("3"), v2.mod_revision)
        .await
        .unwrap();
    let live = next_event(&mut watch).await;
    assert_eq!((live.kv, live.prev), (v3, Some(v2)));
    expect_quiet(&mut watch).await;
    // From before the first write: everything.
    let mut all = store.watch(b("/h/"), v1.mod_revision - 1).await.unwrap();
    let revisions: Vec<Revision> = [
        next_event(&mut all).await,
        next_event(&mut all).await,
        next_event(&mut all).await,
        next_event(&mut all).await,
    ]
    .iter()
    .map(WatchEvent::revision)
    .collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
    assert_eq!(revisions[0], v1.mod_revision);
}

pub async fn watch_filters_by_prefix(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let mut pods = store.watch(b("/pods/"), start).await.unwrap();
    store.create(b("/pods0"), b("x")).await.unwrap();
    store.create(b("/services/a"), b("x")).await.unwrap();
    let pod = store.create(b("/pods/a"), b("x")).await.unwrap();
    assert_eq!(next_event(&mut pods).await.kv, pod);
    expect_quiet(&mut pods).await;
}

pub async fn many_watchers_see_the_same_events(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let mut watches = Vec::new();
    for _ in 0..50 {
        watches.push(store.watch(b("/m/"), start).await.unwrap());
    }
    let mut written = Vec::new();
    for i in 0..20 {
        written.push(store.create(b(&format!("/m/{i}")), b("v")).await.unwrap());
    }
    for watch in &mut watches {
        for kv in &written {
            assert_eq!(&next_event(watch).await.kv, kv);
        }
    }
}

pub async fn slow_watcher_catches_up_without_loss(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let mut slow = store.watch(b("/s/"), start).await.unwrap();
    // Far more events than any in-memory buffer holds, written while the watcher reads nothing.
    let writes = 6_000;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut kv = store.create(b("/s/k"), b("0")).await.unwrap();
            for i in 1..writes {
                kv = store
                    .update(b("/s/k"), b(&i.to_string()), kv.mod_revision)
                    .await
                    .unwrap();
            }
            kv
        })
    };
    let last = writer.await.unwrap();
    let mut previous = start;
    for i in 0..writes {
        let event = next_event(&mut slow).await;
        assert!(event.revision() > previous);
        assert_eq!(event.kv.value, b(&i.to_string()));
        previous = event.revision();
    }
    assert_eq!(previous, last.mod_revision);
    expect_quiet(&mut slow).await;
}

pub async fn compaction_keeps_latest_values_and_refuses_older_reads(store: Arc<dyn Store>) {
    let a1 = store.create(b("/c/a"), b("1")).await.unwrap();
    let a2 = store
        .update(b("/c/a"), b("2"), a1.mod_revision)
        .await
        .unwrap();
    store.create(b("/c/gone"), b("1")).await.unwrap();
    store.delete(b("/c/gone"), None).await.unwrap();
    let stay = store.create(b("/c/stay"), b("1")).await.unwrap();
    let at = store.current_revision().await.unwrap();
    let a3 = store
        .update(b("/c/a"), b("3"), a2.mod_revision)
        .await
        .unwrap();
    store.compact(at).await.unwrap();

    assert_eq!(store.get(b"/c/a", None).await.unwrap(), Some(a3.clone()));
    assert_eq!(store.get(b"/c/a", Some(at)).await.unwrap(), Some(a2));
    assert_eq!(
        store.get(b"/c/stay", Some(at)).await.unwrap(),
        Some(stay.clone())
    );
    assert_eq!(store.get(b"/c/gone", None).await.unwrap(), None);
    assert_eq!(store.get(b"/c/gone", Some(at)).await.unwrap(), None);
    let err = store.get(b"/c/a", Some(at - 1)).await.unwrap_err();
    assert_eq!(
        err,
        StoreError::Compacted {
            requested: at - 1,
            compacted: at
        }
    );
    let err = store
        .range(RangeRequest::prefix("/c/").at(a1.mod_revision))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
    let page = store.range(RangeRequest::prefix("/c/")).await.unwrap();
    assert_eq!(page.kvs, vec![a3, stay]);
    // Writes go on after compaction, and a recreated key is a new key.
    store.create(b("/c/gone"), b("again")).await.unwrap();
    assert_eq!(
        store
            .range(RangeRequest::prefix("/c/"))
            .await
            .unwrap()
            .kvs
            .len(),
        3
    );
}

pub async fn compaction_edges(store: Arc<dyn Store>) {
    let v1 = store.create(b("/e/k"), b("1")).await.unwrap();
    let v2 = store
        .update(b("/e/k"), b("2"), v1.mod_revision)
        .await
        .unwrap();
    let v3 = store
        .update(b("/e/k"), b("3"), v2.mod_revision)
        .await
        .unwrap();
    store.compact(v2.mod_revision).await.unwrap();

    // Watching after the compaction revision itself works and sees everything later...
    let mut watch = store.watch(b("/e/"), v2.mod_revision).await.unwrap();
    let event = next_event(&mut watch).await;
    assert_eq!((event.kv, event.prev), (v3.clone(), Some(v2.clone())));
    // ...one revision earlier is gone.
    match store.watch(b("/e/"), v2.mod_revision - 1).await {
        Err(StoreError::Compacted { compacted, .. }) => assert_eq!(compacted, v2.mod_revision),
        Err(other) => panic!("expected Compacted, got {other:?}"),
        Ok(_) => panic!("expected Compacted, got a watch"),
    }
    // Compacting again at or below the compaction revision is refused; later is fine.
    let err = store.compact(v2.mod_revision).await.unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
    let err = store.compact(v1.mod_revision).await.unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
    store.compact(v3.mod_revision).await.unwrap();
    assert_eq!(
        store.get(b"/e/k", Some(v3.mod_revision)).await.unwrap(),
        Some(v3.clone())
    );
    // The current revision is compactable, and a store compacted to its head still takes writes.
    let current = store.current_revision().await.unwrap();
    assert_eq!(current, v3.mod_revision);
    let v4 = store
        .update(b("/e/k"), b("4"), v3.mod_revision)
        .await
        .unwrap();
    assert_eq!(next_event(&mut watch).await.kv, v4);
}

pub async fn continue_token_after_compaction_is_gone(store: Arc<dyn Store>) {
    for i in 0..6 {
        store.create(b(&format!("/t/{i}")), b("v")).await.unwrap();
    }
    let first = store
        .range(RangeRequest::prefix("/t/").limit(2))
        .await
        .unwrap();
    let token = first.next.expect("more pages");
    let kv = store.get(b"/t/0", None).await.unwrap().unwrap();
    let later = store
        .update(b("/t/0"), b("w"), kv.mod_revision)
        .await
        .unwrap();
    store.compact(later.mod_revision).await.unwrap();
    let err = store
        .range(RangeRequest::prefix("/t/").limit(2).continue_from(token))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
}

pub async fn recreated_key_starts_a_new_life(store: Arc<dyn Store>) {
    let first = store.create(b("/k"), b("1")).await.unwrap();
    let start = first.mod_revision;
    let mut watch = store.watch(b("/k"), start).await.unwrap();
    store
        .delete(b("/k"), Some(first.mod_revision))
        .await
        .unwrap();
    let second = store.create(b("/k"), b("2")).await.unwrap();
    assert_eq!(second.create_revision, second.mod_revision);
    assert!(second.create_revision > first.create_revision);
    assert_eq!(next_event(&mut watch).await.kind, EventKind::Delete);
    let created = next_event(&mut watch).await;
    assert!(created.is_create());
    assert_eq!(
        created.prev, None,
        "a create after a delete has no previous value"
    );
    // An update with the revision of the earlier life conflicts.
    let err = store
        .update(b("/k"), b("3"), first.mod_revision)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
}

pub async fn concurrent_compare_and_swap_admits_one_winner(store: Arc<dyn Store>) {
    let base = store.create(b("/cas"), b("0")).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .update(b("/cas"), b(&i.to_string()), base.mod_revision)
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(kv) => winners.push(kv),
            Err(StoreError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one writer wins the compare-and-swap"
    );
    assert_eq!(store.get(b"/cas", None).await.unwrap(), winners.pop());
}

pub async fn concurrent_creates_get_distinct_revisions(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch(b("/cc/"), start).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for i in 0..50 {
                    revisions.push(
                        store
                            .create(b(&format!("/cc/{t}/{i}")), b("v"))
                            .await
                            .unwrap()
                            .mod_revision,
                    );
                }
                revisions
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for task in tasks {
        revisions.extend(task.await.unwrap());
    }
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), 400, "no two writes share a revision");
    // The watch sees all 400 in strictly increasing order.
    let mut seen = Vec::new();
    for _ in 0..400 {
        seen.push(next_event(&mut watch).await.revision());
    }
    assert_eq!(seen, revisions);
}

pub async fn large_values_round_trip(store: Arc<dyn Store>) {
    let value: Bytes = (0..3 * 1024 * 1024)
        .map(|i: u32| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch(b("/big"), start).await.unwrap();
    let kv = store.create(b("/big"), value.clone()).await.unwrap();
    assert_eq!(
        store.get(b"/big", None).await.unwrap().unwrap().value,
        value
    );
    let mut reversed = value.to_vec();
    reversed.reverse();
    let updated = store
        .update(b("/big"), reversed.clone().into(), kv.mod_revision)
        .await
        .unwrap();
    let created = next_event(&mut watch).await;
    assert_eq!(created.kv.value, value);
    let event = next_event(&mut watch).await;
    assert_eq!(event.kv, updated);
    assert_eq!(event.prev.map(|p| p.value), Some(value));
}

pub async fn many_keys(store: Arc<dyn Store>) {
    let n = 10_000;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (w..n).step_by(4) {
                    store
                        .create(b(&format!("/many/{i:05}")), b(&i.to_string()))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let all = store.range(RangeRequest::prefix("/many/")).await.unwrap();
    assert_eq!(all.kvs.len(), n);
    assert!(
        all.kvs
            .iter()
            .enumerate()
            .all(|(i, kv)| kv.value == b(&i.to_string()))
    );
    let mut paged = 0;
    let mut request = RangeRequest::prefix("/many/").limit(999);
    loop {
        let page = store.range(request.clone()).await.unwrap();
        paged += page.kvs.len();
        match page.next {
            Some(token) => request = request.continue_from(token),
            None => break,
        }
    }
    assert_eq!(paged, n);
}

pub async fn binary_keys_and_values(store: Arc<dyn Store>) {
    let key = Bytes::from_static(b"/bin/\x00\xff\xfe\x80");
    let value = Bytes::from_static(b"\x00\x01\xc3\x28\xff");
    let kv = store.create(key.clone(), value.clone()).await.unwrap();
    assert_eq!(store.get(&key, None).await.unwrap(), Some(kv));
    // A prefix that ends in 0xff still bounds the range correctly.
    let under_ff = Bytes::from_static(b"/bin/\x00\xff");
    store
        .create(Bytes::from_static(b"/bin/\x01"), b("other"))
        .await
        .unwrap();
    let page = store.range(RangeRequest::prefix(under_ff)).await.unwrap();
    assert_eq!(keys(&page.kvs), vec![key.as_ref()]);
    assert_eq!(page.kvs[0].value, value);
}

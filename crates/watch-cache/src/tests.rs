#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use gantry_api::fields::FieldSelector;
use gantry_api::labels::Selector;
use gantry_store::MemoryStore;
use serde_json::{Value, json};

use super::*;

const PODS: &str = "/registry/core/pods/";

fn pod(name: &str, app: &str, node: &str) -> Bytes {
    json!({"kind": "Pod", "metadata": {"name": name, "namespace": "ns", "labels": {"app": app}},
           "spec": {"nodeName": node, "restartPolicy": "Always"}})
    .to_string()
    .into()
}

fn key(name: &str) -> Bytes {
    format!("{PODS}ns/{name}").into()
}

async fn cache_over(store: &Arc<dyn Store>, capacity: usize) -> WatchCache {
    WatchCache::with_capacity(store.clone(), "/registry/".into(), capacity)
        .await
        .unwrap()
}

fn value(object: &Object) -> Value {
    object.value().unwrap()
}

async fn next(stream: &mut BoxStream<'static, Result<Arc<Event>, StoreError>>) -> Arc<Event> {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event within 5 s")
        .expect("the stream goes on")
        .expect("an event, not an error")
}

#[tokio::test]
async fn serves_what_the_store_holds_with_resource_versions() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let a = store.create(key("a"), pod("a", "web", "n1")).await.unwrap();
    let cache = cache_over(&store, 16).await;
    let (_, cached) = cache.get(&key("a"));
    let cached = cached.unwrap();
    assert_eq!(cached.revision, a.mod_revision);
    assert_eq!(
        value(&cached)["metadata"]["resourceVersion"],
        a.mod_revision.to_string()
    );

    // A write is visible to a consistent read made after it was acknowledged.
    let b = store.create(key("b"), pod("b", "db", "n2")).await.unwrap();
    assert!(cache.wait_fresh().await.unwrap());
    assert!(cache.revision() >= b.mod_revision);
    assert_eq!(cache.get(&key("b")).1.unwrap().revision, b.mod_revision);
    store.delete(key("a"), None).await.unwrap();
    assert!(cache.wait_fresh().await.unwrap());
    assert!(cache.get(&key("a")).1.is_none());
}

#[tokio::test]
async fn lists_by_prefix_in_pages_and_through_selectors() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    for (name, app, node) in [("a", "web", "n1"), ("b", "db", "n1"), ("c", "web", "n2")] {
        store.create(key(name), pod(name, app, node)).await.unwrap();
    }
    store
        .create(
            "/registry/core/configmaps/ns/x".into(),
            json!({"metadata": {"name": "x"}}).to_string().into(),
        )
        .await
        .unwrap();
    let cache = cache_over(&store, 16).await;
    let names = |listed: &Listed| -> Vec<String> {
        listed
            .objects
            .iter()
            .map(|o| value(o)["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let all = cache.list(PODS.as_bytes(), None, 0, |_| true);
    assert_eq!(names(&all), ["a", "b", "c"]);
    assert!(!all.more);

    let first = cache.list(PODS.as_bytes(), None, 2, |_| true);
    assert_eq!(names(&first), ["a", "b"]);
    assert!(first.more);
    let rest = cache.list(PODS.as_bytes(), Some(&first.objects[1].key), 2, |_| true);
    assert_eq!(names(&rest), ["c"]);
    assert!(!rest.more);

    let web = Selector::parse("app=web").unwrap();
    let on_n1 = FieldSelector::parse("spec.nodeName=n1").unwrap();
    let listed = cache.list(PODS.as_bytes(), None, 0, |o| o.matches(&web, &on_n1));
    assert_eq!(names(&listed), ["a"]);
    // A field that is not indexed is read from the JSON.
    let always = FieldSelector::parse("spec.restartPolicy=Always").unwrap();
    assert!(!is_indexed_field("spec.restartPolicy"));
    let listed = cache.list(PODS.as_bytes(), None, 0, |o| o.matches(&web, &always));
    assert_eq!(names(&listed), ["a", "c"]);
}

#[tokio::test]
async fn watchers_see_adds_changes_and_deletes_in_order() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let cache = cache_over(&store, 16).await;
    let start = cache.revision();
    let mut pods = cache.watch(PODS.into(), start).unwrap();

    let created = store.create(key("a"), pod("a", "web", "n1")).await.unwrap();
    store
        .create(
            "/registry/core/configmaps/ns/x".into(),
            json!({"metadata": {}}).to_string().into(),
        )
        .await
        .unwrap();
    let updated = store
        .update(key("a"), pod("a", "db", "n1"), created.mod_revision)
        .await
        .unwrap();
    let deleted = store.delete(key("a"), None).await.unwrap();

    let added = next(&mut pods).await;
    assert_eq!(added.kind, EventType::Added);
    assert_eq!(added.revision(), created.mod_revision);
    let modified = next(&mut pods).await;
    assert_eq!(
        modified.kind,
        EventType::Modified,
        "the ConfigMap is not under the prefix"
    );
    assert_eq!(
        value(modified.prev.as_ref().unwrap())["metadata"]["labels"]["app"],
        "web"
    );
    assert_eq!(modified.revision(), updated.mod_revision);
    let gone = next(&mut pods).await;
    assert_eq!(gone.kind, EventType::Deleted);
    // The deleted object carries the delete's resourceVersion.
    assert_eq!(
        value(&gone.object)["metadata"]["resourceVersion"],
        deleted.revision.to_string()
    );

    // A watch from a revision in the ring replays what came after it.
    let mut replay = cache.watch(PODS.into(), created.mod_revision).unwrap();
    assert_eq!(next(&mut replay).await.kind, EventType::Modified);
    assert_eq!(next(&mut replay).await.kind, EventType::Deleted);
}

#[tokio::test]
async fn watches_from_before_the_ring_are_refused_and_laggards_end_with_compacted() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let cache = cache_over(&store, 4).await;
    let start = cache.revision();
    let mut laggard = cache.watch(PODS.into(), start).unwrap();
    for i in 0..10 {
        store
            .create(key(&format!("p{i}")), pod("p", "web", "n1"))
            .await
            .unwrap();
    }
    assert!(cache.wait_fresh().await.unwrap());
    assert!(
        cache.watch(PODS.into(), start).is_none(),
        "6 of the events are no longer kept"
    );
    assert!(cache.watch(PODS.into(), cache.revision() - 3).is_some());
    let error = tokio::time::timeout(Duration::from_secs(5), laggard.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, StoreError::Compacted { .. }), "{error}");
    assert!(laggard.next().await.is_none(), "nothing after the error");
}

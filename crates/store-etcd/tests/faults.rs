//! How the store reports an etcd it cannot use: down, killed mid-session, unusable TLS settings.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use gantry_store::{EtcdTls, Store, StoreError, StoreUrl};
use gantry_store_etcd::EtcdStore;
use gantry_store_etcd::testing::EtcdServer;

/// "A few seconds": the connect timeout plus slack for a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(8);

/// A loopback address nothing listens on.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    format!("http://{}", listener.local_addr().expect("its address"))
}

#[tokio::test]
async fn connecting_to_a_down_etcd_is_unavailable_promptly() {
    let endpoint = dead_endpoint();
    let started = Instant::now();
    let err = EtcdStore::connect(std::slice::from_ref(&endpoint), None)
        .await
        .unwrap_err();
    println!("{err} after {:?}", started.elapsed());
    assert!(started.elapsed() < PROMPTLY, "took {:?}", started.elapsed());
    let StoreError::Unavailable(message) = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(message.contains(&endpoint), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
}

#[tokio::test]
async fn an_etcd_that_dies_makes_requests_and_watches_fail_promptly() {
    let server = EtcdServer::start();
    let store = EtcdStore::connect(&server.endpoints(), None).await.unwrap();
    store
        .create(Bytes::from("/k"), Bytes::from("v"))
        .await
        .unwrap();
    let mut watch = store.watch(Bytes::from("/"), 0).await.unwrap();
    assert!(watch.next().await.unwrap().is_ok());
    server.kill();

    let started = Instant::now();
    let item = tokio::time::timeout(PROMPTLY, watch.next()).await;
    println!("watch: {item:?} after {:?}", started.elapsed());
    assert!(
        matches!(item, Ok(Some(Err(StoreError::Unavailable(_))))),
        "{item:?}"
    );
    assert!(
        watch.next().await.is_none(),
        "the watch ends after its error"
    );

    let started = Instant::now();
    let err = store.get(b"/k", None).await.unwrap_err();
    println!("get: {err} after {:?}", started.elapsed());
    assert!(started.elapsed() < PROMPTLY, "took {:?}", started.elapsed());
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let started = Instant::now();
    let err = store
        .create(Bytes::from("/j"), Bytes::from("v"))
        .await
        .unwrap_err();
    println!("create: {err} after {:?}", started.elapsed());
    assert!(started.elapsed() < PROMPTLY, "took {:?}", started.elapsed());
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn the_store_recovers_when_etcd_comes_back() {
    let server = EtcdServer::start();
    let store = EtcdStore::connect(&server.endpoints(), None).await.unwrap();
    let kv = store
        .create(Bytes::from("/k"), Bytes::from("v"))
        .await
        .unwrap();
    server.kill();
    let err = store.get(b"/k", None).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    server.restart();
    // The same store (no reconnect by the caller) serves again once its connection is re-established.
    let deadline = Instant::now() + Duration::from_secs(20);
    let read = loop {
        match store.get(b"/k", None).await {
            Ok(read) => break read,
            Err(StoreError::Unavailable(e)) if Instant::now() < deadline => {
                println!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("etcd is back but the store still fails: {e}"),
        }
    };
    assert_eq!(read, Some(kv), "the acknowledged write survived the crash");
    store
        .create(Bytes::from("/after"), Bytes::from("v"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_endpoint_that_does_not_speak_grpc_is_unavailable_promptly() {
    // Accepts connections (the kernel completes the handshake) but never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let started = Instant::now();
    let err = EtcdStore::connect(std::slice::from_ref(&endpoint), None)
        .await
        .unwrap_err();
    println!("{err} after {:?}", started.elapsed());
    assert!(started.elapsed() < PROMPTLY, "took {:?}", started.elapsed());
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains(&endpoint)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_missing_ca_file_is_named() {
    let tls = EtcdTls {
        ca_file: Some("/nonexistent/gantry/ca.pem".into()),
        ..EtcdTls::default()
    };
    let err = EtcdStore::connect(&["https://127.0.0.1:2379".to_string()], Some(&tls))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidArgument(m) if m.contains("/nonexistent/gantry/ca.pem")),
        "{err:?}"
    );
    // The same through a store URL.
    let url = StoreUrl::parse("etcd://127.0.0.1:2379?cacert=/nonexistent/gantry/ca.pem").unwrap();
    let err = EtcdStore::open(&url).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidArgument(m) if m.contains("/nonexistent/gantry/ca.pem")),
        "{err:?}"
    );
}

#[tokio::test]
async fn unusable_settings_are_invalid_arguments() {
    let err = EtcdStore::connect(&[], None).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err:?}");
    let url = StoreUrl::parse("sqlite:///tmp/x.db").unwrap();
    let err = EtcdStore::open(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err:?}");
}

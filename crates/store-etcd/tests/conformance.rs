//! The shared conformance suite, each case on a fresh single-member etcd.

use gantry_store::conformance::TestStore;
use gantry_store_etcd::EtcdStore;
use gantry_store_etcd::testing::EtcdServer;

gantry_store::conformance_tests!(|| async {
    let server = EtcdServer::start();
    let store = EtcdStore::connect(&server.endpoints(), None).await.unwrap();
    TestStore::new(store, server)
});

//! The shared conformance suite on the SQLite backend, each case on a fresh database file.

use gantry_store::conformance::TestStore;
use gantry_store_sqlite::SqliteStore;

gantry_store::conformance_tests!(|| async {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
    TestStore::new(store, dir)
});

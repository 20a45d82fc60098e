//! Opens the [`Store`] a [`StoreUrl`] names. The one place that knows every backend: the server calls
//! [`open`] with `--datastore` (or the default SQLite file in its data directory).

use std::sync::Arc;

use gantry_store::{Result, Store, StoreUrl};

/// Opens (connecting or creating as needed) the store at `url`.
pub async fn open(url: &StoreUrl) -> Result<Arc<dyn Store>> {
    match url {
        StoreUrl::Sqlite { path } => Ok(Arc::new(gantry_store_sqlite::SqliteStore::open(path)?)),
        #[cfg(feature = "etcd")]
        StoreUrl::Etcd { .. } => Ok(Arc::new(gantry_store_etcd::EtcdStore::open(url).await?)),
        #[cfg(not(feature = "etcd"))]
        StoreUrl::Etcd { .. } => Err(gantry_store::StoreError::InvalidArgument(
            "this build of gantry has no etcd support (build with the `etcd` feature)".into(),
        )),
    }
}

/// Parses `url` and opens the store it names.
pub async fn open_url(url: &str) -> Result<Arc<dyn Store>> {
    open(&StoreUrl::parse(url)?).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_store::StoreError;

    #[tokio::test]
    async fn opens_sqlite_by_url() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("sub/state.db").display());
        let store = open_url(&url).await.unwrap();
        let kv = store.create("/a".into(), "1".into()).await.unwrap();
        drop(store);
        let store = open_url(&url).await.unwrap();
        assert_eq!(store.get(b"/a", None).await.unwrap(), Some(kv));
    }

    #[tokio::test]
    async fn bad_urls_are_invalid_arguments() {
        let err = open_url("postgres://db").await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidArgument(_)), "{err}");
    }

    #[cfg(feature = "etcd")]
    #[tokio::test]
    async fn opens_etcd_by_url() {
        let server = gantry_store_etcd::testing::EtcdServer::start();
        let endpoints: Vec<String> = server
            .endpoints()
            .iter()
            .map(|e| e.trim_start_matches("http://").to_string())
            .collect();
        let store = open_url(&format!("etcd://{}", endpoints.join(",")))
            .await
            .unwrap();
        let kv = store.create("/a".into(), "1".into()).await.unwrap();
        assert_eq!(store.get(b"/a", None).await.unwrap(), Some(kv));
    }

    #[cfg(feature = "etcd")]
    #[tokio::test]
    async fn etcd_that_is_down_is_unavailable() {
        // Nothing listens on port 1 of loopback. Connecting may be lazy: then the first request fails.
        let err = match open_url("etcd://127.0.0.1:1").await {
            Err(err) => err,
            Ok(store) => store.get(b"/a", None).await.unwrap_err(),
        };
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    }
}

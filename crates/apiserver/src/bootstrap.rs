//! What every cluster has from its first start: the system namespaces, the system PriorityClasses
//! (`system-node-critical`, `system-cluster-critical`), the default StorageClass `local-path`, the
//! `kubernetes` Service in `default` with the Endpoints and EndpointSlice that point at this API server (kept
//! current at every start), and the `kube-dns` Service in `kube-system`. Each is created when absent: what an
//! administrator changed since is kept, what they deleted comes back at the next start.

use std::net::SocketAddr;
use std::sync::Arc;

use gantry_api::ApiError;
use gantry_store::{Store, StoreError};
use gantry_watch_cache::WatchCache;
use serde_json::{Value, json};

use crate::objects;
use crate::services::{Allocator, ServiceRanges};

/// Namespaces that exist in every cluster.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

pub(crate) async fn run(
    store: &Arc<dyn Store>,
    cache: &WatchCache,
    ranges: &ServiceRanges,
    advertise: SocketAddr,
) -> Result<(), ApiError> {
    for name in SYSTEM_NAMESPACES {
        let namespace = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        create_if_missing(
            store,
            &format!("/registry/core/namespaces/{name}"),
            namespace,
        )
        .await?;
    }
    for (name, value, description) in gantry_api::validate::scheduling::SYSTEM_PRIORITY_CLASSES {
        let class = json!({
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "description": description,
            "preemptionPolicy": "PreemptLowerPriority",
        });
        create_if_missing(
            store,
            &format!("/registry/scheduling.k8s.io/priorityclasses/{name}"),
            class,
        )
        .await?;
    }
    create_if_missing(
        store,
        &format!("/registry/storage.k8s.io/storageclasses/{DEFAULT_STORAGE_CLASS}"),
        default_storage_class(),
    )
    .await?;
    api_service(store, cache, ranges, advertise).await?;
    dns_service(store, cache, ranges).await?;
    crate::namespaces::resume_deletions(store).await
}

/// The name of the StorageClass every cluster starts with.
pub(crate) const DEFAULT_STORAGE_CLASS: &str = "local-path";

/// The default StorageClass: node-local volumes (the agents' `gantry.io/local-path` provisioner), bound where
/// their first pod is scheduled, deleted with their claims, expandable.
fn default_storage_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": DEFAULT_STORAGE_CLASS,
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "gantry.io/local-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": true,
    })
}

/// The `kubernetes` Service (the range's first address, port 443) and where it leads: this server.
async fn api_service(
    store: &Arc<dyn Store>,
    cache: &WatchCache,
    ranges: &ServiceRanges,
    advertise: SocketAddr,
) -> Result<(), ApiError> {
    let address = ranges.api_address().to_string();
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": address,
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": advertise.port()}]},
    });
    system_service(store, cache, ranges, service).await?;
    let ip = advertise.ip().to_string();
    let port = advertise.port();
    put_if_changed(
        store,
        "/registry/core/endpoints/default/kubernetes",
        json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        }),
        "subsets",
    )
    .await?;
    put_if_changed(
        store,
        "/registry/discovery.k8s.io/endpointslices/default/kubernetes",
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": if advertise.is_ipv4() { "IPv4" } else { "IPv6" },
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }),
        "endpoints",
    )
    .await
}

/// The `kube-dns` Service in `kube-system` at the cluster DNS address (the range's tenth), so that tools that
/// look for it find it. It selects no pods: every node agent answers DNS itself, and redirects queries to
/// this address to its own server.
async fn dns_service(
    store: &Arc<dyn Store>,
    cache: &WatchCache,
    ranges: &ServiceRanges,
) -> Result<(), ApiError> {
    let Some(address) = ranges.dns_address() else {
        return Ok(());
    };
    let port = |name: &str, protocol: &str| json!({"name": name, "port": 53, "protocol": protocol, "targetPort": 53});
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                                "kubernetes.io/cluster-service": "true"}},
        "spec": {"type": "ClusterIP", "clusterIP": address.to_string(),
                 "ports": [port("dns", "UDP"), port("dns-tcp", "TCP")]},
    });
    system_service(store, cache, ranges, service).await
}

/// Creates a Service of the system (with its cluster IP taken in the range) unless it exists.
async fn system_service(
    store: &Arc<dyn Store>,
    cache: &WatchCache,
    ranges: &ServiceRanges,
    mut service: Value,
) -> Result<(), ApiError> {
    let meta = &service["metadata"];
    let key = format!(
        "/registry/core/services/{}/{}",
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default()
    );
    if store.get(key.as_bytes(), None).await?.is_some() {
        return Ok(());
    }
    gantry_api::defaults::apply("", "Service", &mut service);
    let allocator = Allocator {
        store,
        cache,
        ranges,
    };
    let allocation = allocator.allocate(&key, &mut service, None).await?;
    if let Err(e) = create_if_missing(store, &key, service).await {
        allocator.release(&key, allocation).await;
        return Err(e);
    }
    Ok(())
}

async fn create_if_missing(
    store: &Arc<dyn Store>,
    key: &str,
    mut object: Value,
) -> Result<(), ApiError> {
    objects::prepare_for_create(&mut object);
    match store
        .create(key.to_string().into(), objects::encode(&object)?)
        .await
    {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates `object` at `key`, or rewrites it if its `field` differs (the server's address changed).
async fn put_if_changed(
    store: &Arc<dyn Store>,
    key: &str,
    object: Value,
    field: &str,
) -> Result<(), ApiError> {
    let Some(current) = store.get(key.as_bytes(), None).await? else {
        return create_if_missing(store, key, object).await;
    };
    let mut stored: Value = serde_json::from_slice(&current.value).map_err(ApiError::internal)?;
    if stored.get(field) == object.get(field) {
        return Ok(());
    }
    stored[field] = object[field].clone();
    match store
        .update(
            key.to_string().into(),
            objects::encode(&stored)?,
            current.mod_revision,
        )
        .await
    {
        // Another server rewrote it meanwhile: its address is as current as ours.
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::storage;
    use gantry_store::MemoryStore;

    #[test]
    fn the_default_storage_class_is_valid_and_the_default() {
        let class = default_storage_class();
        let errors =
            gantry_api::validate::validate_create("storage.k8s.io", "StorageClass", &class);
        assert!(errors.is_empty(), "{errors:?}");
        let picked = storage::default_class([&class]).expect("marked default");
        assert_eq!(picked["metadata"]["name"], DEFAULT_STORAGE_CLASS);
        assert_eq!(class["provisioner"], "gantry.io/local-path");
        assert_eq!(class["reclaimPolicy"], "Delete");
        assert_eq!(class["volumeBindingMode"], "WaitForFirstConsumer");
        assert_eq!(class["allowVolumeExpansion"], true);
    }

    #[tokio::test]
    async fn an_existing_class_is_left_as_it_is() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let key = format!("/registry/storage.k8s.io/storageclasses/{DEFAULT_STORAGE_CLASS}");
        create_if_missing(&store, &key, default_storage_class())
            .await
            .expect("created");
        let first = store.get(key.as_bytes(), None).await.unwrap().unwrap();
        let stored = objects::decode(&first).unwrap();
        assert!(stored["metadata"]["uid"].is_string());
        assert!(stored["metadata"]["creationTimestamp"].is_string());
        create_if_missing(&store, &key, default_storage_class())
            .await
            .expect("already there");
        let again = store.get(key.as_bytes(), None).await.unwrap().unwrap();
        assert_eq!(again.mod_revision, first.mod_revision);
    }
}

//! Deleting a namespace, standing in for the namespace controller: the namespace is marked Terminating at
//! once (so objects in it can still be deleted by name, as `kubectl delete -f` does), then a task deletes its
//! contents and, once nothing is left, the namespace itself. Objects held by finalizers keep it Terminating
//! until their owners let go; the task looks again every second. Namespaces left Terminating by a restart are
//! picked up at start.

use std::sync::Arc;
use std::time::Duration;

use gantry_api::ApiError;
use gantry_api::registry::RESOURCES;
use gantry_store::{Store, StoreError};
use serde_json::{Value, json};

use crate::objects;
use crate::rest::{mark_deleted, range_all};

const NAMESPACES: &str = "/registry/core/namespaces/";
/// How long after the namespace is marked Terminating its contents start to go.
const FIRST_PASS_DELAY: Duration = Duration::from_millis(1500);
/// How often a namespace held by finalizers is looked at again.
const RETRY: Duration = Duration::from_secs(1);

/// Marks the namespace Terminating and starts deleting what is in it; returns the namespace as marked.
pub(crate) async fn start_deletion(store: &Arc<dyn Store>, name: &str) -> Result<Value, ApiError> {
    let key = format!("{NAMESPACES}{name}");
    for _ in 0..8 {
        let current = store.get(key.as_bytes(), None).await?.ok_or_else(|| {
            ApiError::not_found(gantry_api::GroupResource::new("", "namespaces"), name)
        })?;
        let mut namespace = objects::decode(&current)?;
        if !mark_deleted(&mut namespace)? {
            return Ok(namespace);
        }
        namespace["status"] = json!({"phase": "Terminating"});
        match store
            .update(
                key.clone().into(),
                objects::encode(&namespace)?,
                current.mod_revision,
            )
            .await
        {
            Ok(kv) => {
                objects::set_resource_version(&mut namespace, kv.mod_revision);
                tokio::spawn(finish_deletion(store.clone(), name.to_string()));
                return Ok(namespace);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        gantry_api::GroupResource::new("", "namespaces"),
        name,
    ))
}

/// Resumes the deletion of every namespace marked Terminating (after a restart).
pub(crate) async fn resume_deletions(store: &Arc<dyn Store>) -> Result<(), ApiError> {
    let (_, kvs) = range_all(store, NAMESPACES.into()).await?;
    for kv in kvs {
        let namespace = objects::decode(&kv)?;
        if namespace.pointer("/metadata/deletionTimestamp").is_some()
            && let Some(name) = namespace.pointer("/metadata/name").and_then(Value::as_str)
        {
            tokio::spawn(finish_deletion(store.clone(), name.to_string()));
        }
    }
    Ok(())
}

/// Deletes the namespace's contents until there are none, then the namespace. The first pass waits a moment,
/// as the namespace controller's does in Kubernetes: `kubectl delete -f` of a file that starts with the
/// namespace deletes what follows by name, and finds it still there.
async fn finish_deletion(store: Arc<dyn Store>, name: String) {
    let key = format!("{NAMESPACES}{name}");
    tokio::time::sleep(FIRST_PASS_DELAY).await;
    loop {
        match delete_contents(&store, &name).await {
            Ok(true) => match store.get(key.as_bytes(), None).await {
                Ok(Some(current)) => match store
                    .delete(key.clone().into(), Some(current.mod_revision))
                    .await
                {
                    Ok(_) | Err(StoreError::NotFound { .. }) => return,
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(error) => {
                        tracing::warn!(%error, namespace = %name, "cannot delete the namespace")
                    }
                },
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, namespace = %name, "cannot read the namespace")
                }
            },
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, namespace = %name, "cannot delete the namespace's contents")
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Deletes every object in `namespace` (objects held by finalizers are marked for deletion instead); whether
/// the namespace is now empty.
async fn delete_contents(store: &Arc<dyn Store>, namespace: &str) -> Result<bool, ApiError> {
    let mut prefixes: Vec<String> = RESOURCES
        .iter()
        .filter(|r| r.namespaced)
        .map(|r| format!("{}{namespace}/", r.store_prefix()))
        .collect();
    prefixes.extend(crate::custom::namespaced_prefixes(store, namespace).await?);
    // Kinds served in two groups share one storage.
    prefixes.sort();
    prefixes.dedup();
    let mut empty = true;
    for prefix in prefixes {
        empty &= delete_under(store, &prefix).await?;
    }
    Ok(empty)
}

/// Deletes every object under `prefix`, marking those held by finalizers for deletion instead; whether
/// nothing is left.
pub(crate) async fn delete_under(store: &Arc<dyn Store>, prefix: &str) -> Result<bool, ApiError> {
    let mut empty = true;
    for kv in range_all(store, prefix.to_owned().into()).await?.1 {
        let mut object = objects::decode(&kv)?;
        let result = if objects::has_finalizers(&object) {
            empty = false;
            if !mark_deleted(&mut object)? {
                continue;
            }
            store
                .update(kv.key, objects::encode(&object)?, kv.mod_revision)
                .await
                .map(drop)
        } else {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            let deleted = store.delete(kv.key, Some(kv.mod_revision)).await.map(drop);
            if deleted.is_ok() && key.starts_with("/registry/core/services/") {
                crate::services::release_held(store, &key, &object).await;
            }
            deleted
        };
        match result {
            // Changed or gone meanwhile: whatever it is now, it may still be there.
            Err(StoreError::Conflict { .. }) => empty = false,
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(empty)
}

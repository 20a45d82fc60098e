//! Claiming, as upstream's `ControllerRefManager`: an owner adopts the orphans its selector matches (it
//! becomes their controller) and releases the dependents it no longer matches (its reference is dropped).
//! Each write of ownerReferences carries the resourceVersion the object was seen at, so it applies only to
//! that object as it was seen.

use std::fmt::Debug;
use std::sync::Arc;

use futures::future::join_all;
use gantry_client::Api;
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use gantry_client::k8s_openapi::serde::de::DeserializeOwned;
use gantry_client::kube::Resource;
use gantry_client::kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::api::{is_not_found, name_of};

/// Whether `owner` may still adopt: it is still the object seen (the same uid) and not being deleted
/// (upstream's `RecheckDeletionTimestamp`, which reads it again); one that is gone may not.
pub async fn can_adopt<K>(api: &Api<K>, owner: &K) -> Result<bool, gantry_client::kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.get(name_of(owner.meta())).await {
        Ok(fresh) => {
            Ok(fresh.meta().uid == owner.meta().uid && fresh.meta().deletion_timestamp.is_none())
        }
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The ownerReferences of an adopted object: its own and `owner`.
pub fn adopted(meta: &ObjectMeta, owner: &OwnerReference) -> Vec<OwnerReference> {
    let mut refs = meta.owner_references.clone().unwrap_or_default();
    refs.push(owner.clone());
    refs
}

/// The ownerReferences of a released object: its own less those to the owner `uid`.
pub fn released(meta: &ObjectMeta, uid: &str) -> Vec<OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .filter(|r| r.uid != uid)
        .cloned()
        .collect()
}

/// The merge patch that gives the object `meta` (as it was seen) the ownerReferences `refs`.
pub fn owners_patch(meta: &ObjectMeta, refs: &[OwnerReference]) -> Value {
    json!({"metadata": {
        "ownerReferences": if refs.is_empty() { Value::Null } else { json!(refs) },
        "resourceVersion": meta.resource_version,
    }})
}

/// Adopts `adopt` (giving them `owner` as their controller) and releases `release` (dropping the
/// references to `owner`); whether all went well (an object gone is as good).
pub async fn claim<T>(
    api: &Api<T>,
    owner: &OwnerReference,
    adopt: &[Arc<T>],
    release: &[Arc<T>],
) -> bool
where
    T: Resource + Clone + DeserializeOwned + Debug,
{
    let writes = adopt
        .iter()
        .map(|object| (object, adopted(object.meta(), owner)))
        .chain(
            release
                .iter()
                .map(|object| (object, released(object.meta(), &owner.uid))),
        );
    write_owners(api, writes).await
}

/// Writes the ownerReferences of each object; whether all went well (an object gone is as good).
pub async fn write_owners<'a, T>(
    api: &Api<T>,
    writes: impl IntoIterator<Item = (&'a Arc<T>, Vec<OwnerReference>)>,
) -> bool
where
    T: Resource + Clone + DeserializeOwned + Debug + 'a,
{
    let results = join_all(writes.into_iter().map(|(object, refs)| async move {
        let patch = owners_patch(object.meta(), &refs);
        let name = object.meta().name.clone().unwrap_or_default();
        let result = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        (name, result)
    }))
    .await;
    let mut ok = true;
    for (name, result) in results {
        match result {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                tracing::debug!(object = %name, "cannot adopt or release: {e}");
                ok = false;
            }
        }
    }
    ok
}

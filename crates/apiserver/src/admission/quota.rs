//! ResourceQuota admission: a write that would take a namespace's quotas past their `status.hard` is refused
//! (403, upstream's `exceeded quota: …` message); one that fits is charged to `status.used` in the store,
//! with compare-and-swap, before the object itself is stored, so that racing writes cannot both take the
//! last of a quota. A write that fails after its charge gives it back; the quota controller recounts usage
//! from what exists in any case (after deletes, and periodically). The arithmetic is `gantry_api::quota`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use gantry_api::quota::{self, QuotaState, ResourceList};
use gantry_api::{ApiError, GroupResource};
use gantry_store::{Store, StoreError};
use serde_json::Value;

use crate::objects;
use crate::rest::{Call, cached_value, range_all};

/// Tries of a charge against concurrent changes of the quotas.
const ATTEMPTS: usize = 16;

/// What a write was charged: the quotas' store keys and the amounts.
#[derive(Debug, Default)]
pub(crate) struct Charge {
    charged: Vec<(Bytes, ResourceList)>,
}

impl Charge {
    /// Gives the charge back (the write it was for did not happen). Best effort: the quota controller's
    /// recount corrects what a failure here leaves.
    pub(crate) async fn refund(self, store: &Arc<dyn Store>) {
        for (key, amount) in self.charged {
            for _ in 0..ATTEMPTS {
                let Ok(Some(kv)) = store.get(&key, None).await else {
                    break;
                };
                let Ok(mut object) = objects::decode(&kv) else {
                    break;
                };
                let mut used = quota::resource_list(object.pointer("/status/used"));
                let taken = quota::mask(&used, |name| amount.contains_key(name));
                used.extend(quota::subtract_non_negative(&taken, &amount));
                object["status"]["used"] = quota::to_json(&used);
                let Ok(encoded) = objects::encode(&object) else {
                    break;
                };
                match store.update(key.clone(), encoded, kv.mod_revision).await {
                    Err(StoreError::Conflict { .. }) => continue,
                    Ok(_) | Err(_) => break,
                }
            }
        }
    }
}

/// One lock per namespace: the charges of one namespace's writes are made one at a time in this server, so
/// that racing writes wait for each other rather than retry on every conflict.
fn namespace_lock(namespace: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Locks nobody holds or waits for are dropped, so the map stays as small as the namespaces in use.
    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    locks.entry(namespace.to_owned()).or_default().clone()
}

impl Call<'_> {
    /// Quota admission of a create (`old`: None) or update of `object`; see the module.
    pub(crate) async fn charge_quota(
        &self,
        object: &Value,
        old: Option<&Value>,
    ) -> Result<Charge, ApiError> {
        let (group, plural) = (self.resource.group, self.resource.plural);
        let Some(namespace) = self.request.namespace.as_deref() else {
            return Ok(Charge::default());
        };
        if !quota::handles(group, plural, old.is_some()) {
            return Ok(Charge::default());
        }
        let prefix = format!("/registry/core/resourcequotas/{namespace}/");
        // Most namespaces have no quota of what this write uses: the cache says so without a store read.
        let relevant = self
            .cache
            .list(prefix.as_bytes(), None, 0, |_| true)
            .objects
            .iter()
            .filter_map(|o| cached_value(o).ok())
            .any(|q| {
                quota::resource_list(q.pointer("/status/hard"))
                    .keys()
                    .chain(quota::resource_list(q.pointer("/spec/hard")).keys())
                    .any(|name| quota::counts_against(group, plural, name))
            });
        if !relevant {
            return Ok(Charge::default());
        }
        let lock = namespace_lock(namespace);
        let _held = lock.lock().await;
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut conflicted = String::new();
        for _ in 0..ATTEMPTS {
            let (_, kvs) = range_all(self.store, Bytes::from(prefix.clone())).await?;
            let mut quotas = Vec::with_capacity(kvs.len());
            for kv in &kvs {
                quotas.push(objects::decode(kv)?);
            }
            let states: Vec<QuotaState> = quotas.iter().map(QuotaState::of).collect();
            let charges = quota::check(&states, group, plural, object, old, SystemTime::now())
                .map_err(|reason| ApiError::forbidden(self.group_resource(), name, reason))?;
            if charges.is_empty() || self.query.get("dryRun").is_some_and(|d| d == "All") {
                return Ok(Charge::default());
            }
            let mut charge = Charge::default();
            let mut conflict = false;
            for (i, amount) in charges {
                let mut quota_object = quotas[i].clone();
                let used = quota::add(&states[i].used, &amount);
                let mut all_used = quota::resource_list(quota_object.pointer("/status/used"));
                all_used.extend(used);
                quota_object["status"]["used"] = quota::to_json(&all_used);
                let encoded = objects::encode(&quota_object)?;
                match self
                    .store
                    .update(kvs[i].key.clone(), encoded, kvs[i].mod_revision)
                    .await
                {
                    Ok(_) => charge.charged.push((kvs[i].key.clone(), amount)),
                    Err(StoreError::Conflict { .. }) => {
                        conflicted = states[i].name.clone();
                        conflict = true;
                        break;
                    }
                    Err(e) => {
                        charge.refund(self.store).await;
                        return Err(ApiError::from(e));
                    }
                }
            }
            if !conflict {
                return Ok(charge);
            }
            charge.refund(self.store).await;
        }
        Err(ApiError::conflict(
            GroupResource::new("", "resourcequotas"),
            &conflicted,
        ))
    }
}

//! Admission beyond validation, as upstream's plugins: Priority ([`priority`]), LimitRanger ([`limits`]),
//! DefaultStorageClass, StorageObjectInUseProtection and PersistentVolumeClaimResize ([`storage`]) and
//! ResourceQuota ([`quota`]). Mutating admission runs on a new object before it is validated, validating
//! admission after (quota last: it charges the quota, so nothing may refuse the write after it but the store).
//! What they read (PriorityClasses, LimitRanges, StorageClasses, ResourceQuotas) comes from the watch cache,
//! as upstream's plugins read informers; quotas are charged in the store itself, with compare-and-swap.

pub(crate) mod limits;
pub(crate) mod priority;
pub(crate) mod quota;
pub(crate) mod storage;

use gantry_api::ApiError;
use gantry_api::validate::scheduling::SYSTEM_PRIORITY_CLASSES;
use serde_json::Value;

use crate::objects;
use crate::rest::{Call, Part, cached_value};

pub(crate) use quota::Charge;

const PRIORITY_CLASSES: &str = "/registry/scheduling.k8s.io/priorityclasses/";
const STORAGE_CLASSES: &str = "/registry/storage.k8s.io/storageclasses/";

fn is(call: &Call<'_>, group: &str, kind: &str) -> bool {
    call.custom.is_none() && call.resource.group == group && call.resource.kind == kind
}

impl Call<'_> {
    /// Mutating admission of a new object, before validation: a pod gets its LimitRanges' defaults and its
    /// priority; a claim the default StorageClass (if it names none) and, as a volume, its protection
    /// finalizer; a ResourceQuota starts without status (the quota controller fills it in). `requested` is the
    /// name the client asked for (its `generateName` if it gave no name), which refusals name. Whether a
    /// pod's resources changed.
    pub(crate) async fn admit_new(
        &self,
        object: &mut Value,
        requested: &str,
    ) -> Result<bool, ApiError> {
        let mut resized = false;
        if is(self, "", "Pod") {
            let ranges = self.limit_ranges();
            resized = limits::default_pod(&ranges, object);
            self.admit_priority(object, requested).await?;
        } else if is(self, "", "PersistentVolumeClaim") {
            storage::set_default_class(object, &self.storage_classes());
            storage::protect(object, storage::PVC_PROTECTION);
        } else if is(self, "", "PersistentVolume") {
            storage::protect(object, storage::PV_PROTECTION);
        } else if is(self, "", "ResourceQuota")
            && let Some(fields) = object.as_object_mut()
        {
            fields.remove("status");
        }
        Ok(resized)
    }

    /// Validating admission of a new object, after validation: LimitRanges' bounds on pods and claims, one
    /// default PriorityClass at most, and the namespace's quotas, which are charged for it (unless this is a
    /// dry run). The charge is given back with [`Charge::refund`] if the object is not stored after all.
    pub(crate) async fn admit_create(&self, object: &Value) -> Result<Charge, ApiError> {
        self.check_limits(object)?;
        if is(self, "scheduling.k8s.io", "PriorityClass") {
            self.check_global_default(object)?;
        }
        self.charge_quota(object, None).await
    }

    /// Mutating admission of a change: a pod keeps the priority it was given.
    pub(crate) fn admit_change(&self, object: &mut Value, old: &Value, part: Part) {
        if part == Part::Main && is(self, "", "Pod") {
            priority::keep(object, old);
        }
    }

    /// Validating admission of a change of `old` into `object` (of the object itself, not its status):
    /// LimitRanges on claims, the default PriorityClass, claims that grow (bound, of a class that allows
    /// expansion), and quota for what the change adds (Services that open node ports or load balancers,
    /// claims that grow).
    pub(crate) async fn admit_update(
        &self,
        object: &Value,
        old: &Value,
        part: Part,
    ) -> Result<Charge, ApiError> {
        if part != Part::Main {
            return Ok(Charge::default());
        }
        if old.pointer("/metadata/deletionTimestamp").is_none() && !is(self, "", "Pod") {
            self.check_limits(object)?;
        }
        if is(self, "scheduling.k8s.io", "PriorityClass") {
            self.check_global_default(object)?;
        }
        if is(self, "", "PersistentVolumeClaim") {
            self.check_resize(object, old).await?;
        }
        self.charge_quota(object, Some(old)).await
    }

    /// The system PriorityClasses cannot be deleted.
    pub(crate) fn admit_delete(&self, name: &str) -> Result<(), ApiError> {
        let system = SYSTEM_PRIORITY_CLASSES.iter().any(|(n, _, _)| *n == name);
        if system && is(self, "scheduling.k8s.io", "PriorityClass") {
            return Err(ApiError::forbidden(
                self.group_resource(),
                name,
                "this is a system priority class and cannot be deleted",
            ));
        }
        Ok(())
    }

    /// 403 Forbidden for the object `name`, because of `reason`.
    fn refuse(&self, name: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError::forbidden(self.group_resource(), name, reason)
    }

    /// The LimitRanges of the request's namespace.
    fn limit_ranges(&self) -> Vec<Value> {
        let Some(namespace) = &self.request.namespace else {
            return Vec::new();
        };
        let prefix = format!("/registry/core/limitranges/{namespace}/");
        self.cache
            .list(prefix.as_bytes(), None, 0, |_| true)
            .objects
            .iter()
            .filter_map(|o| cached_value(o).ok())
            .collect()
    }

    /// LimitRanger's bounds on a pod or a claim.
    fn check_limits(&self, object: &Value) -> Result<(), ApiError> {
        let check: fn(&Value, &Value) -> Result<(), String> = if is(self, "", "Pod") {
            limits::check_pod
        } else if is(self, "", "PersistentVolumeClaim") {
            limits::check_claim
        } else {
            return Ok(());
        };
        for range in self.limit_ranges() {
            check(&range, object).map_err(|reason| self.refuse(name_of(object), reason))?;
        }
        Ok(())
    }

    /// The PriorityClass `name`: from the cache, or the store when the cache does not have it (yet).
    async fn priority_class(&self, name: &str) -> Result<Option<Value>, ApiError> {
        self.stored(&format!("{PRIORITY_CLASSES}{name}")).await
    }

    /// The object at `key`: from the cache, or the store when the cache does not have it (yet).
    async fn stored(&self, key: &str) -> Result<Option<Value>, ApiError> {
        if let Some(cached) = self.cache.get(key.as_bytes()).1 {
            return cached_value(&cached).map(Some);
        }
        match self.store.get(key.as_bytes(), None).await? {
            Some(kv) => objects::decode(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// Every StorageClass.
    fn storage_classes(&self) -> Vec<Value> {
        self.cache
            .list(STORAGE_CLASSES.as_bytes(), None, 0, |_| true)
            .objects
            .iter()
            .filter_map(|o| cached_value(o).ok())
            .collect()
    }

    /// PersistentVolumeClaimResize: a claim grows only if bound and its StorageClass allows expansion.
    async fn check_resize(&self, claim: &Value, old: &Value) -> Result<(), ApiError> {
        let refuse = |reason| self.refuse(name_of(claim), reason);
        let Some(name) = storage::resize_class(claim, old).map_err(refuse)? else {
            return Ok(());
        };
        let class = if name.is_empty() {
            None
        } else {
            self.stored(&format!("{STORAGE_CLASSES}{name}")).await?
        };
        storage::check_resize(claim, old, class.as_ref()).map_err(refuse)
    }

    /// The global default PriorityClass, if there is one.
    fn default_priority_class(&self) -> Option<Value> {
        const MARK: &[u8] = br#""globalDefault":true"#;
        let listed = self.cache.list(PRIORITY_CLASSES.as_bytes(), None, 0, |o| {
            o.json.windows(MARK.len()).any(|w| w == MARK)
        });
        let classes: Vec<Value> = listed
            .objects
            .iter()
            .filter_map(|o| cached_value(o).ok())
            .collect();
        priority::global_default(&classes).cloned()
    }

    /// Priority admission of a new pod.
    async fn admit_priority(&self, pod: &mut Value, requested: &str) -> Result<(), ApiError> {
        let named = pod
            .pointer("/spec/priorityClassName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let class = match named {
            Some(name) => Some(self.priority_class(&name).await?.ok_or_else(|| {
                self.refuse(
                    requested,
                    format!("no PriorityClass with name {name} was found"),
                )
            })?),
            None => self.default_priority_class(),
        };
        priority::resolve(pod, class.as_ref()).map_err(|reason| self.refuse(requested, reason))
    }

    /// At most one PriorityClass is the global default.
    fn check_global_default(&self, class: &Value) -> Result<(), ApiError> {
        let current = self.default_priority_class();
        priority::check_default(class, current.as_ref())
            .map_err(|reason| self.refuse(name_of(class), reason))
    }
}

fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

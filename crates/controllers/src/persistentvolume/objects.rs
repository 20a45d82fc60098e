//! What the binder reads of PersistentVolumes, PersistentVolumeClaims and StorageClasses: the annotations
//! upstream's controller and provisioners share, classes, sizes, modes and phases, as upstream's
//! `storage/volume` helpers read them.

use std::collections::BTreeMap;

use gantry_api::validate::quantity::Quantity as Parsed;
use gantry_client::k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim,
};
use gantry_client::k8s_openapi::api::storage::v1::StorageClass;
use gantry_client::k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// On a claim: its binding went through once (the controller's "bound" marker).
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// On a volume or claim: the controller (not the user) made the binding.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// On a volume: who provisioned it.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// On a claim: the node the scheduler chose for a WaitForFirstConsumer claim.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// On a claim: the provisioner expected to make its volume (and the beta name, still set).
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// The beta class annotation, which wins over `storageClassName` where set.
pub const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// On a StorageClass: the class of claims that name none.
pub const ANN_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
pub const ANN_BETA_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";

/// The provisioner of classes whose volumes are made by hand.
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";
/// Gantry's provisioner: the node agents make directories (they also delete them, and their volumes).
pub const LOCAL_PATH_PROVISIONER: &str = "gantry.io/local-path";

pub const VOLUME_AVAILABLE: &str = "Available";
pub const VOLUME_BOUND: &str = "Bound";
pub const VOLUME_RELEASED: &str = "Released";
pub const VOLUME_FAILED: &str = "Failed";
pub const CLAIM_PENDING: &str = "Pending";
pub const CLAIM_BOUND: &str = "Bound";
pub const CLAIM_LOST: &str = "Lost";

pub fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

pub fn has_annotation(meta: &ObjectMeta, key: &str) -> bool {
    annotation(meta, key).is_some()
}

/// Sets an annotation; whether it changed anything.
pub fn set_annotation(meta: &mut ObjectMeta, key: &str, value: &str) -> bool {
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(key).map(String::as_str) == Some(value) {
        return false;
    }
    annotations.insert(key.to_owned(), value.to_owned());
    true
}

/// A quantity in nanounits (0 when absent or invalid: validation keeps those out).
pub fn nanos(quantity: Option<&Quantity>) -> i128 {
    quantity
        .and_then(|q| Parsed::parse(q.0.trim()).ok())
        .map_or(0, |q| q.nanos())
}

/// The class a claim asks for (the beta annotation first; "" for none).
pub fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    if let Some(class) = annotation(&claim.metadata, ANN_BETA_STORAGE_CLASS) {
        return class;
    }
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// Whether the claim names a class at all (`""` counts: it asks for none).
pub fn claim_has_class(claim: &PersistentVolumeClaim) -> bool {
    has_annotation(&claim.metadata, ANN_BETA_STORAGE_CLASS)
        || claim
            .spec
            .as_ref()
            .is_some_and(|s| s.storage_class_name.is_some())
}

/// The class of a volume (the beta annotation first; "" for none).
pub fn volume_class(volume: &PersistentVolume) -> &str {
    if let Some(class) = annotation(&volume.metadata, ANN_BETA_STORAGE_CLASS) {
        return class;
    }
    volume
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// The storage a claim requests, in nanounits.
pub fn requested(claim: &PersistentVolumeClaim) -> i128 {
    nanos(requested_quantity(claim))
}

pub fn requested_quantity(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

/// The storage a bound claim has, by its status, in nanounits.
pub fn claim_capacity(claim: &PersistentVolumeClaim) -> i128 {
    nanos(
        claim
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage")),
    )
}

/// The storage of a volume, in nanounits.
pub fn capacity(volume: &PersistentVolume) -> i128 {
    nanos(capacity_quantity(volume))
}

pub fn capacity_quantity(volume: &PersistentVolume) -> Option<&Quantity> {
    volume.spec.as_ref()?.capacity.as_ref()?.get("storage")
}

pub fn claim_access_modes(claim: &PersistentVolumeClaim) -> &[String] {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
}

pub fn volume_access_modes(volume: &PersistentVolume) -> &[String] {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
}

/// Whether the volume has every access mode the claim asks for (`CheckAccessModes`).
pub fn access_modes_fit(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let have = volume_access_modes(volume);
    claim_access_modes(claim).iter().all(|m| have.contains(m))
}

/// Whether the volume modes differ, an absent one being `Filesystem` (`CheckVolumeModeMismatches`).
pub fn volume_modes_differ(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let wanted = claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
    let have = volume.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
    wanted.unwrap_or("Filesystem") != have.unwrap_or("Filesystem")
}

pub fn claim_ref(volume: &PersistentVolume) -> Option<&ObjectReference> {
    volume.spec.as_ref()?.claim_ref.as_ref()
}

/// `namespace/name` of the claim a volume points at.
pub fn claim_ref_key(volume: &PersistentVolume) -> Option<String> {
    let r = claim_ref(volume)?;
    Some(crate::api::key(
        r.namespace.as_deref().unwrap_or_default(),
        r.name.as_deref().unwrap_or_default(),
    ))
}

pub fn claim_ref_uid(volume: &PersistentVolume) -> &str {
    claim_ref(volume)
        .and_then(|r| r.uid.as_deref())
        .unwrap_or_default()
}

/// The volume is pre-bound or bound to the claim: same namespace and name, and same uid where the
/// reference has one (`IsVolumeBoundToClaim`).
pub fn is_bound_to(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = claim_ref(volume) else {
        return false;
    };
    let same_name = r.name.as_deref() == claim.metadata.name.as_deref()
        && r.namespace.as_deref().unwrap_or_default()
            == claim.metadata.namespace.as_deref().unwrap_or_default();
    let uid = r.uid.as_deref().unwrap_or_default();
    same_name && (uid.is_empty() || Some(uid) == claim.metadata.uid.as_deref())
}

/// A reference to the claim, as `GetReference` makes them.
pub fn reference_to(claim: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: claim.metadata.namespace.clone(),
        name: claim.metadata.name.clone(),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// `spec.volumeName` ("" for none).
pub fn volume_name(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or_default()
}

pub fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

pub fn claim_phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// The reclaim policy (the API's default, Retain, when absent).
pub fn reclaim_policy(volume: &PersistentVolume) -> &str {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain")
}

pub fn provisioned_by(volume: &PersistentVolume) -> Option<&str> {
    annotation(&volume.metadata, ANN_PROVISIONED_BY)
}

/// Whether the class binds only once a pod uses the claim (an absent mode is the API's default,
/// Immediate).
pub fn waits_for_consumer(class: &StorageClass) -> bool {
    class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
}

/// The default class: the newest of those marked default, by name on a tie (`GetDefaultClass`).
pub fn default_class<'a>(
    classes: impl Iterator<Item = &'a StorageClass>,
) -> Option<&'a StorageClass> {
    let marked = |c: &StorageClass| {
        annotation(&c.metadata, ANN_DEFAULT_CLASS) == Some("true")
            || annotation(&c.metadata, ANN_BETA_DEFAULT_CLASS) == Some("true")
    };
    classes.filter(|c| marked(c)).max_by(|a, b| {
        let created = |c: &StorageClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            // The same time: the first name wins (so it is the "largest" here).
            .then_with(|| b.metadata.name.cmp(&a.metadata.name))
    })
}

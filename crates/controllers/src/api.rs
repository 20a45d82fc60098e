//! What every controller reads of API objects and of the API server's errors: `namespace/name` keys,
//! resourceVersions as numbers, label selectors, the controller ownerReference and the involved object of
//! events.

use std::collections::BTreeMap;

use gantry_api::labels::Selector;
use gantry_client::events::Involved;
use gantry_client::k8s_openapi;
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference,
};
use gantry_client::kube::{Error, Resource};

/// The queue key of an object: `namespace/name`.
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// `namespace/name` split at the first `/`.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

pub fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

pub fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// A resourceVersion as the number it is on Gantry's API server (the store's revision), to tell the newer
/// of two copies of an object.
pub fn revision(meta: &ObjectMeta) -> Option<u64> {
    meta.resource_version.as_deref()?.parse().ok()
}

/// The message of an API error (the Status's), else the error.
pub fn api_message(e: &Error) -> String {
    match e {
        Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// The HTTP code of an API error.
pub fn api_code(e: &Error) -> Option<u16> {
    match e {
        Error::Api(status) => Some(status.code),
        _ => None,
    }
}

pub fn is_not_found(e: &Error) -> bool {
    api_code(e) == Some(404)
}

pub fn is_conflict(e: &Error) -> bool {
    api_code(e) == Some(409)
}

/// A conflict because the name is taken (not a stale resourceVersion).
pub fn is_already_exists(e: &Error) -> bool {
    matches!(e, Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// A label selector, as the API server reads them.
pub fn selector_of(selector: &LabelSelector) -> Result<Selector, String> {
    let value = serde_json::to_value(selector).map_err(|e| e.to_string())?;
    Selector::from_label_selector(&value).map_err(|e| e.to_string())
}

/// A label selector that selects something: `None` for an invalid or empty one (upstream's controllers
/// refuse them).
pub fn nonempty_selector(selector: &LabelSelector) -> Option<Selector> {
    selector_of(selector).ok().filter(|s| !s.is_empty())
}

/// Whether `labels` (none: no labels) match `selector`.
pub fn matches(selector: &Selector, labels: Option<&BTreeMap<String, String>>) -> bool {
    match labels {
        Some(labels) => selector.matches(labels),
        None => selector.matches(&BTreeMap::new()),
    }
}

/// The ownerReference that makes `owner` its dependents' controller.
pub fn controller_ref<K>(owner: &K) -> OwnerReference
where
    K: k8s_openapi::Resource + Resource<DynamicType = ()>,
{
    let meta = owner.meta();
    OwnerReference {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `object` as the object events are about.
pub fn involved<K>(object: &K) -> Involved
where
    K: k8s_openapi::Resource + Resource<DynamicType = ()>,
{
    let meta = object.meta();
    Involved {
        api_version: K::API_VERSION,
        kind: K::KIND,
        namespace: namespace_of(meta).to_owned(),
        name: name_of(meta).to_owned(),
        uid: meta.uid.clone().unwrap_or_default(),
    }
}

/// A number of objects as the API's int32 counts hold it.
pub fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

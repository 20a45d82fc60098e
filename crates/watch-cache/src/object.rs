//! One cached object: the JSON the API returns, and what selectors look at.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use gantry_api::fields::{FieldSelector, field_value};
use gantry_api::labels::Selector;
use gantry_store::Revision;
use serde_json::{Value, json};

/// Fields kept beside the JSON because selectors name them often (kubelets select pods by node, describe
/// selects events by involved object); selectors on other fields parse the JSON.
const INDEXED_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
    "type",
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
];

/// Whether selecting on `field` needs no parsing.
pub fn is_indexed_field(field: &str) -> bool {
    INDEXED_FIELDS.contains(&field)
}

/// An object as the API serves it.
#[derive(Debug)]
pub struct Object {
    pub key: Bytes,
    /// The revision of the write that made this version (its resourceVersion).
    pub revision: Revision,
    /// The object as JSON, `metadata.resourceVersion` set.
    pub json: Bytes,
    labels: BTreeMap<String, String>,
    /// Values of the [`INDEXED_FIELDS`] the object has.
    fields: Vec<(&'static str, String)>,
}

impl Object {
    /// The object stored at `key` as of `revision`; `None` (logged) if the stored value is not a JSON object.
    pub fn decode(key: Bytes, revision: Revision, stored: &[u8]) -> Option<Self> {
        match serde_json::from_slice::<Value>(stored) {
            Ok(value) if value.is_object() => Some(Self::new(key, revision, value)),
            Ok(_) | Err(_) => {
                tracing::error!(key = %key.escape_ascii(), "watch cache: the stored value is not a JSON object");
                None
            }
        }
    }

    fn new(key: Bytes, revision: Revision, mut value: Value) -> Self {
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), json!(revision.to_string()));
        }
        let labels = value
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let fields = INDEXED_FIELDS
            .iter()
            .filter_map(|f| Some((*f, field_value(&value, f)?.into_owned())))
            .collect();
        let json = serde_json::to_vec(&value).unwrap_or_default().into();
        Object {
            key,
            revision,
            json,
            labels,
            fields,
        }
    }

    /// This version as of a later `revision` (a delete's).
    pub fn at_revision(&self, revision: Revision) -> Option<Self> {
        let value = self.value().ok()?;
        Some(Self::new(self.key.clone(), revision, value))
    }

    /// The object parsed.
    pub fn value(&self) -> serde_json::Result<Value> {
        serde_json::from_slice(&self.json)
    }

    /// Whether both selectors match.
    pub fn matches(&self, labels: &Selector, fields: &FieldSelector) -> bool {
        if !labels.matches(&self.labels) {
            return false;
        }
        if fields.is_empty() {
            return true;
        }
        if fields.fields().into_iter().all(is_indexed_field) {
            return fields.matches_with(|f| {
                self.fields
                    .iter()
                    .find(|(name, _)| *name == f)
                    .map(|(_, v)| Cow::Borrowed(v.as_str()))
            });
        }
        self.value().is_ok_and(|v| fields.matches_object(&v))
    }
}

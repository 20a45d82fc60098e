//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`) without I/O: a stored CRD read into what the API
//! server serves for it ([`Definition`]), the validation of CRDs themselves ([`validate_create`],
//! [`validate_update`]), and the structural schemas that validate, default and prune custom resources
//! ([`Schema`]), with the JSONPath subset of printer columns and scale paths ([`JsonPath`]).

mod jsonpath;
mod schema;
mod validation;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

pub use jsonpath::JsonPath;
pub use schema::Schema;
pub use validation::{apply_defaults, validate_create, validate_update};

/// The finalizer that keeps a deleted CRD until its custom resources are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// What the API server serves for one CRD, read from the stored object.
#[derive(Debug, Clone)]
pub struct Definition {
    /// `metadata.name`: `<plural>.<group>`.
    pub name: String,
    pub group: String,
    pub names: Names,
    pub namespaced: bool,
    /// In the CRD's order (the first served one is not necessarily preferred: see [`Definition::preferred`]).
    pub versions: Vec<Version>,
    /// Being deleted: its resources are no longer served for new objects.
    pub terminating: bool,
}

/// `spec.names`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Names {
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
}

/// One entry of `spec.versions`.
#[derive(Debug, Clone)]
pub struct Version {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    pub deprecated: bool,
    pub deprecation_warning: Option<String>,
    /// `schema.openAPIV3Schema`, compiled.
    pub schema: Arc<Schema>,
    /// The raw `schema.openAPIV3Schema` (for OpenAPI documents).
    pub raw_schema: Value,
    /// The `status` subresource is enabled.
    pub status: bool,
    pub scale: Option<Scale>,
    pub columns: Vec<Column>,
    /// `selectableFields`, as field selectors name them (`spec.color`).
    pub selectable_fields: Vec<String>,
}

/// `subresources.scale`: where the replica counts and the selector live.
#[derive(Debug, Clone)]
pub struct Scale {
    pub spec_replicas_path: String,
    pub status_replicas_path: String,
    pub label_selector_path: Option<String>,
}

/// One of `additionalPrinterColumns`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub priority: i64,
    pub json_path: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    group: String,
    names: Names,
    scope: String,
    versions: Vec<RawVersion>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawVersion {
    name: String,
    served: bool,
    storage: bool,
    #[serde(default)]
    deprecated: bool,
    deprecation_warning: Option<String>,
    schema: Option<RawValidation>,
    #[serde(default)]
    subresources: RawSubresources,
    #[serde(default)]
    additional_printer_columns: Vec<Column>,
    #[serde(default)]
    selectable_fields: Vec<RawSelectableField>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSelectableField {
    json_path: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawValidation {
    #[serde(rename = "openAPIV3Schema")]
    open_api_v3_schema: Option<Value>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSubresources {
    status: Option<Value>,
    scale: Option<RawScale>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawScale {
    spec_replicas_path: String,
    status_replicas_path: String,
    label_selector_path: Option<String>,
}

impl Definition {
    /// Reads a CRD as stored (validated when it was written). `Err` says what is unusable.
    pub fn from_object(crd: &Value) -> Result<Definition, String> {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let spec: RawSpec = serde_json::from_value(crd.get("spec").cloned().unwrap_or_default())
            .map_err(|e| format!("customresourcedefinition {name}: {e}"))?;
        let mut versions = Vec::with_capacity(spec.versions.len());
        for v in spec.versions {
            let raw_schema = v
                .schema
                .and_then(|s| s.open_api_v3_schema)
                .unwrap_or_else(|| serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
            let schema = Schema::from_value(&raw_schema)
                .map_err(|e| format!("customresourcedefinition {name} version {}: {e}", v.name))?;
            versions.push(Version {
                name: v.name,
                served: v.served,
                storage: v.storage,
                deprecated: v.deprecated,
                deprecation_warning: v.deprecation_warning,
                schema: Arc::new(schema),
                raw_schema,
                status: v.subresources.status.is_some(),
                scale: v.subresources.scale.map(|s| Scale {
                    spec_replicas_path: s.spec_replicas_path,
                    status_replicas_path: s.status_replicas_path,
                    label_selector_path: s.label_selector_path,
                }),
                columns: v.additional_printer_columns,
                selectable_fields: v
                    .selectable_fields
                    .into_iter()
                    .map(|f| f.json_path.trim_start_matches('.').to_owned())
                    .collect(),
            });
        }
        let mut names = spec.names;
        if names.singular.is_empty() {
            names.singular = names.kind.to_ascii_lowercase();
        }
        if names.list_kind.is_empty() {
            names.list_kind = format!("{}List", names.kind);
        }
        Ok(Definition {
            name,
            group: spec.group,
            names,
            namespaced: spec.scope == "Namespaced",
            versions,
            terminating: crd.pointer("/metadata/deletionTimestamp").is_some(),
        })
    }

    /// The served version called `name`.
    pub fn version(&self, name: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.served && v.name == name)
    }

    /// The version new objects are stored in.
    pub fn storage_version(&self) -> &str {
        self.versions
            .iter()
            .find(|v| v.storage)
            .map_or("", |v| v.name.as_str())
    }

    /// The served versions, most preferred first: upstream sorts by Kubernetes version priority
    /// (GA > beta > alpha, then higher numbers; other names last, alphabetically).
    pub fn served_versions(&self) -> Vec<&Version> {
        let mut served: Vec<&Version> = self.versions.iter().filter(|v| v.served).collect();
        served.sort_by_key(|v| std::cmp::Reverse(version_priority(&v.name)));
        served
    }
}

/// A sort key for Kubernetes version names (`v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1` > `foo`), as
/// upstream's `version.CompareKubeAwareVersionStrings`.
pub fn version_priority(name: &str) -> (u8, u64, u64, std::cmp::Reverse<String>) {
    let parsed = name.strip_prefix('v').and_then(|rest| {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        for (level, word) in [(2, "beta"), (1, "alpha")] {
            if let Some(minor) = tail.strip_prefix(word) {
                return Some((level, major, minor.parse().ok()?));
            }
        }
        None
    });
    match parsed {
        Some((level, major, minor)) => (level, major, minor, std::cmp::Reverse(String::new())),
        None => (0, 0, 0, std::cmp::Reverse(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_kubernetes_does() {
        let mut names = [
            "v1beta1", "foo", "v2", "v1alpha1", "v1", "bar", "v10", "v1beta2",
        ];
        names.sort_by_key(|n| std::cmp::Reverse(version_priority(n)));
        assert_eq!(
            names,
            [
                "v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"
            ]
        );
    }

    #[test]
    fn reads_a_crd() {
        let crd = serde_json::json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                     "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]}]}
        });
        let d = Definition::from_object(&crd).unwrap();
        assert_eq!(d.names.singular, "widget");
        assert_eq!(d.names.list_kind, "WidgetList");
        assert!(d.namespaced);
        assert_eq!(d.storage_version(), "v1");
        assert_eq!(d.served_versions()[0].name, "v1");
        let v1 = d.version("v1").unwrap();
        assert!(v1.status);
        assert_eq!(
            v1.scale.as_ref().unwrap().spec_replicas_path,
            ".spec.replicas"
        );
        assert_eq!(v1.columns[0].json_path, ".spec.size");
        assert!(!d.version("v1beta1").unwrap().status);
    }
}

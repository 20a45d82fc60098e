//! The structure of the vendored definitions, for server-side apply (`gantry-apply`): per schema node its
//! properties, items and `additionalProperties`, and the extensions that decide how values merge
//! (`x-kubernetes-list-type`, `-list-map-keys`, `-map-type`, `-patch-strategy`, `-patch-merge-key`,
//! `-preserve-unknown-fields`). Descriptions and validation keywords are skipped.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::convert::DEFINITIONS;

/// One schema node of a vendored definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StructuralSchema {
    /// The definition this node stands for (`io.k8s.api.core.v1.PodSpec`), from `$ref`.
    pub reference: Option<String>,
    /// The JSON types allowed, without `null` (`object`, `array`, `string`, `integer`, `number`, `boolean`).
    pub types: Vec<String>,
    /// The node is a `oneOf` of scalars (`IntOrString`, `Quantity`).
    pub one_of: bool,
    pub properties: BTreeMap<String, StructuralSchema>,
    pub items: Option<Box<StructuralSchema>>,
    /// `additionalProperties` given as a schema (a map with arbitrary keys).
    pub additional_properties: Option<Box<StructuralSchema>>,
    pub preserve_unknown_fields: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub map_type: Option<String>,
    pub patch_strategy: Option<String>,
    pub patch_merge_key: Option<String>,
}

/// Every vendored definition by name, and the kinds they describe.
#[derive(Debug, Clone, Default)]
pub struct StructuralDefinitions {
    pub definitions: BTreeMap<String, StructuralSchema>,
    /// (group, version, kind) → definition name.
    kinds: BTreeMap<(String, String, String), String>,
}

impl StructuralDefinitions {
    /// The name of the definition of `group`/`version`/`kind` (`""` for the core group), if vendored.
    pub fn name_of(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&(group.to_owned(), version.to_owned(), kind.to_owned()))
            .map(String::as_str)
    }

    /// Every kind with a vendored definition: ((group, version, kind), definition name).
    pub fn kinds(&self) -> impl Iterator<Item = ((&str, &str, &str), &str)> {
        self.kinds
            .iter()
            .map(|((g, v, k), name)| ((g.as_str(), v.as_str(), k.as_str()), name.as_str()))
    }

    /// The definition named `name`.
    pub fn get(&self, name: &str) -> Option<&StructuralSchema> {
        self.definitions.get(name)
    }
}

/// Parses the vendored definitions' structure afresh (a few milliseconds, about a megabyte while held):
/// callers derive what they need once and drop this.
pub fn structural_definitions() -> StructuralDefinitions {
    let file: RawFile =
        serde_json::from_str(DEFINITIONS).expect("the vendored definitions deserialize");
    let mut kinds = BTreeMap::new();
    for (name, node) in &file.definitions {
        for gvk in &node.kinds {
            kinds.insert(
                (gvk.group.clone(), gvk.version.clone(), gvk.kind.clone()),
                name.clone(),
            );
        }
    }
    let definitions = file
        .definitions
        .into_iter()
        .map(|(name, node)| (name, node.into_structural()))
        .collect();
    StructuralDefinitions { definitions, kinds }
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(rename = "$defs")]
    definitions: BTreeMap<String, RawNode>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTypes {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawAdditional {
    Allowed(#[allow(dead_code, reason = "any keys either way")] bool),
    Schema(Box<RawNode>),
}

#[derive(Deserialize)]
struct RawGvk {
    group: String,
    version: String,
    kind: String,
}

#[derive(Deserialize)]
struct RawNode {
    #[serde(rename = "$ref")]
    reference: Option<String>,
    #[serde(rename = "type")]
    types: Option<RawTypes>,
    #[serde(rename = "oneOf")]
    one_of: Option<Vec<serde_json::Value>>,
    properties: Option<BTreeMap<String, RawNode>>,
    items: Option<Box<RawNode>>,
    #[serde(rename = "additionalProperties")]
    additional_properties: Option<RawAdditional>,
    #[serde(rename = "x-kubernetes-preserve-unknown-fields", default)]
    preserve_unknown_fields: bool,
    #[serde(rename = "x-kubernetes-list-type")]
    list_type: Option<String>,
    #[serde(rename = "x-kubernetes-list-map-keys", default)]
    list_map_keys: Vec<String>,
    #[serde(rename = "x-kubernetes-map-type")]
    map_type: Option<String>,
    #[serde(rename = "x-kubernetes-patch-strategy")]
    patch_strategy: Option<String>,
    #[serde(rename = "x-kubernetes-patch-merge-key")]
    patch_merge_key: Option<String>,
    #[serde(rename = "x-kubernetes-group-version-kind", default)]
    kinds: Vec<RawGvk>,
}

impl RawNode {
    fn into_structural(self) -> StructuralSchema {
        let types = match self.types {
            Some(RawTypes::One(t)) => vec![t],
            Some(RawTypes::Many(ts)) => ts,
            None => Vec::new(),
        }
        .into_iter()
        .filter(|t| t != "null")
        .collect();
        StructuralSchema {
            reference: self
                .reference
                .map(|r| r.rsplit('/').next().unwrap_or_default().to_owned()),
            types,
            one_of: self
                .one_of
                .is_some_and(|alternatives| !alternatives.is_empty()),
            properties: self
                .properties
                .unwrap_or_default()
                .into_iter()
                .map(|(name, node)| (name, node.into_structural()))
                .collect(),
            items: self.items.map(|node| Box::new(node.into_structural())),
            additional_properties: match self.additional_properties {
                Some(RawAdditional::Schema(node)) => Some(Box::new(node.into_structural())),
                _ => None,
            },
            preserve_unknown_fields: self.preserve_unknown_fields,
            list_type: self.list_type,
            list_map_keys: self.list_map_keys,
            map_type: self.map_type,
            patch_strategy: self.patch_strategy,
            patch_merge_key: self.patch_merge_key,
        }
    }
}

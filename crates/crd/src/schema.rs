//! Structural schemas (`openAPIV3Schema` of a CRD version): validation, defaulting and pruning of custom
//! resources, as upstream's apiextensions-apiserver does them (its `schema/{validation,pruning,defaulting,
//! listtype,objectmeta}` packages and kube-openapi's validator, with their messages).
//!
//! `x-kubernetes-validations` (CEL rules) are accepted in schemas but not evaluated: no custom resource is
//! rejected by them.

use std::collections::{BTreeMap, HashMap};

use gantry_api::field::{FieldError, FieldErrorType};
use gantry_openapi::StructuralSchema;
use regex::Regex;
use serde_json::{Map, Value};

mod formats;
mod raw;

use formats::Format;

/// A compiled `openAPIV3Schema` (a tree of JSONSchemaProps). `Schema::default()` accepts and keeps
/// everything (`x-kubernetes-preserve-unknown-fields: true`).
#[derive(Debug, Clone)]
pub struct Schema {
    root: Node,
}

impl Default for Schema {
    fn default() -> Schema {
        Schema {
            root: Node {
                preserve_unknown: true,
                ..Node::default()
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
}

impl Type {
    fn parse(name: &str) -> Result<Option<Type>, String> {
        Ok(Some(match name {
            "" => return Ok(None),
            "object" => Type::Object,
            "array" => Type::Array,
            "string" => Type::String,
            "integer" => Type::Integer,
            "number" => Type::Number,
            "boolean" => Type::Boolean,
            other => return Err(format!("unsupported type {other:?}")),
        }))
    }

    fn name(self) -> &'static str {
        match self {
            Type::Object => "object",
            Type::Array => "array",
            Type::String => "string",
            Type::Integer => "integer",
            Type::Number => "number",
            Type::Boolean => "boolean",
        }
    }
}

#[derive(Debug, Clone, Default)]
enum Additional {
    #[default]
    None,
    Bool(bool),
    Schema(Box<Node>),
}

#[derive(Debug, Clone)]
struct Pattern {
    source: String,
    regex: Regex,
}

/// One schema node. Nodes under `allOf`/`anyOf`/`oneOf`/`not` carry value validations only (structural
/// schemas allow nothing else there).
#[derive(Debug, Clone, Default)]
struct Node {
    ty: Option<Type>,
    nullable: bool,
    /// `format` as written; `format_kind` is what is checked.
    format: String,
    format_kind: Option<Format>,
    /// One of the formats upstream keeps for validation (the others are stripped).
    format_supported: bool,
    properties: BTreeMap<String, Node>,
    additional: Additional,
    items: Option<Box<Node>>,
    required: Vec<String>,
    enumeration: Option<Vec<Value>>,
    default: Option<Value>,
    maximum: Option<f64>,
    exclusive_maximum: bool,
    minimum: Option<f64>,
    exclusive_minimum: bool,
    multiple_of: Option<f64>,
    max_length: Option<u64>,
    min_length: Option<u64>,
    pattern: Option<Pattern>,
    max_items: Option<u64>,
    min_items: Option<u64>,
    unique_items: bool,
    max_properties: Option<u64>,
    min_properties: Option<u64>,
    all_of: Vec<Node>,
    any_of: Vec<Node>,
    one_of: Vec<Node>,
    not: Option<Box<Node>>,
    preserve_unknown: bool,
    int_or_string: bool,
    embedded: bool,
    list_type: Option<String>,
    list_map_keys: Vec<String>,
    map_type: Option<String>,
}

/// `apiVersion`, `kind` and `metadata`: left alone at the root and in embedded resources.
const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn is_meta(key: &str) -> bool {
    META_FIELDS.contains(&key)
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn field_err<T>(key: &str, what: &str) -> Result<T, String> {
    Err(format!("{key} must be {what}"))
}

fn as_str<'a>(key: &str, v: &'a Value) -> Result<&'a str, String> {
    v.as_str().map_or_else(|| field_err(key, "a string"), Ok)
}

fn as_bool(key: &str, v: &Value) -> Result<bool, String> {
    v.as_bool().map_or_else(|| field_err(key, "a boolean"), Ok)
}

fn as_f64(key: &str, v: &Value) -> Result<f64, String> {
    v.as_f64().map_or_else(|| field_err(key, "a number"), Ok)
}

fn as_u64(key: &str, v: &Value) -> Result<u64, String> {
    v.as_u64()
        .map_or_else(|| field_err(key, "a non-negative integer"), Ok)
}

fn as_strings(key: &str, v: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = v else {
        return field_err(key, "a list of strings");
    };
    items
        .iter()
        .map(|item| as_str(key, item).map(str::to_owned))
        .collect()
}

fn as_nodes(key: &str, v: &Value) -> Result<Vec<Node>, String> {
    let Value::Array(items) = v else {
        return field_err(key, "a list of schemas");
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| Node::compile(item).map_err(|e| format!("{key}[{i}]: {e}")))
        .collect()
}

impl Node {
    fn compile(raw: &Value) -> Result<Node, String> {
        let Value::Object(fields) = raw else {
            return Err("a schema must be a JSON object".to_owned());
        };
        let mut n = Node::default();
        for (key, v) in fields {
            if v.is_null() {
                continue;
            }
            let k = key.as_str();
            match k {
                "type" => n.ty = Type::parse(as_str(k, v)?)?,
                "nullable" => n.nullable = as_bool(k, v)?,
                "format" => {
                    n.format = as_str(k, v)?.to_owned();
                    let normalized = n.format.replace('-', "");
                    n.format_supported = formats::SUPPORTED.contains(&normalized.as_str());
                    n.format_kind = Format::parse(&normalized);
                }
                "properties" => {
                    let Value::Object(props) = v else {
                        return field_err(k, "an object");
                    };
                    for (name, prop) in props {
                        let node =
                            Node::compile(prop).map_err(|e| format!("properties[{name}]: {e}"))?;
                        n.properties.insert(name.clone(), node);
                    }
                }
                "additionalProperties" => {
                    n.additional = match v {
                        Value::Bool(allowed) => Additional::Bool(*allowed),
                        schema => Additional::Schema(Box::new(
                            Node::compile(schema)
                                .map_err(|e| format!("additionalProperties: {e}"))?,
                        )),
                    }
                }
                "items" => {
                    n.items = Some(Box::new(
                        Node::compile(v).map_err(|e| format!("items: {e}"))?,
                    ))
                }
                "required" => n.required = as_strings(k, v)?,
                "enum" => {
                    let Value::Array(values) = v else {
                        return field_err(k, "a list");
                    };
                    n.enumeration = Some(values.clone());
                }
                "default" => n.default = Some(v.clone()),
                "maximum" => n.maximum = Some(as_f64(k, v)?),
                "minimum" => n.minimum = Some(as_f64(k, v)?),
                "exclusiveMaximum" => n.exclusive_maximum = as_bool(k, v)?,
                "exclusiveMinimum" => n.exclusive_minimum = as_bool(k, v)?,
                "multipleOf" => n.multiple_of = Some(as_f64(k, v)?),
                "maxLength" => n.max_length = Some(as_u64(k, v)?),
                "minLength" => n.min_length = Some(as_u64(k, v)?),
                "maxItems" => n.max_items = Some(as_u64(k, v)?),
                "minItems" => n.min_items = Some(as_u64(k, v)?),
                "maxProperties" => n.max_properties = Some(as_u64(k, v)?),
                "minProperties" => n.min_properties = Some(as_u64(k, v)?),
                "uniqueItems" => n.unique_items = as_bool(k, v)?,
                "pattern" => {
                    let source = as_str(k, v)?;
                    if !source.is_empty() {
                        let regex = Regex::new(source).map_err(|e| raw::regex_error(source, &e))?;
                        n.pattern = Some(Pattern {
                            source: source.to_owned(),
                            regex,
                        });
                    }
                }
                "allOf" => n.all_of = as_nodes(k, v)?,
                "anyOf" => n.any_of = as_nodes(k, v)?,
                "oneOf" => n.one_of = as_nodes(k, v)?,
                "not" => n.not = Some(Box::new(Node::compile(v).map_err(|e| format!("not: {e}"))?)),
                "x-kubernetes-preserve-unknown-fields" => n.preserve_unknown = as_bool(k, v)?,
                "x-kubernetes-int-or-string" => n.int_or_string = as_bool(k, v)?,
                "x-kubernetes-embedded-resource" => n.embedded = as_bool(k, v)?,
                "x-kubernetes-list-type" => n.list_type = Some(as_str(k, v)?.to_owned()),
                "x-kubernetes-list-map-keys" => n.list_map_keys = as_strings(k, v)?,
                "x-kubernetes-map-type" => n.map_type = Some(as_str(k, v)?.to_owned()),
                // Descriptions, examples, `x-kubernetes-validations` (not enforced), and what
                // `Schema::structural_errors` rejects.
                _ => {}
            }
        }
        Ok(n)
    }

    fn has_type(&self) -> bool {
        self.ty.is_some() || self.int_or_string
    }

    /// The types the value may have, as kube-openapi prints them (`integer,string` for int-or-string).
    fn type_list(&self) -> &'static str {
        match self.ty {
            _ if self.int_or_string => "integer,string",
            Some(t) => t.name(),
            None => "",
        }
    }

    fn allows(&self, t: &str) -> bool {
        if self.int_or_string {
            t == "integer" || t == "string"
        } else {
            self.ty.is_some_and(|ty| ty.name() == t)
        }
    }

    /// The schema of `key` in an object this node describes.
    fn field_schema(&self, key: &str) -> Option<&Node> {
        self.properties.get(key).or(match &self.additional {
            Additional::Schema(s) => Some(s),
            _ => None,
        })
    }
}

impl Schema {
    /// Compiles a JSONSchemaProps value. `Err` when it cannot be read at all (not a JSON object, a
    /// `pattern` that does not compile, ...). Whether it is *structural* is [`Schema::structural_errors`].
    pub fn from_value(schema: &Value) -> Result<Schema, String> {
        Ok(Schema {
            root: Node::compile(schema)?,
        })
    }

    /// Why `schema` (the raw value) is not a structural schema, as upstream's CRD validation reports it,
    /// with field paths under `path` (`spec.versions[0].schema.openAPIV3Schema`).
    pub fn structural_errors(schema: &Value, path: &str) -> Vec<FieldError> {
        raw::structural_errors(schema, path)
    }

    /// Fills in `default`s the object lacks (after pruning, as upstream). Like upstream's decoding, `null`s
    /// of non-nullable fields are dropped first unless a default replaces them. The root's `apiVersion`,
    /// `kind` and `metadata` are left alone.
    pub fn apply_defaults(&self, object: &mut Value) {
        if let Value::Object(map) = object {
            self.root.default_map(map, true);
        }
    }

    /// The fields of `object` the schema does not know (`spec.foo`, `spec.items[0].bar`), without changing it.
    pub fn unknown_fields(&self, object: &Value) -> Vec<String> {
        let mut out = Vec::new();
        unknown(object, Some(&self.root), true, &Path::ROOT, &mut out);
        out
    }

    /// Removes the fields [`Schema::unknown_fields`] reports; returns their paths.
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        let mut out = Vec::new();
        prune(object, Some(&self.root), true, &Path::ROOT, &mut out);
        out
    }

    /// Everything in `object` (a whole custom resource) that violates the schema. The root's `apiVersion`
    /// and `kind` are not checked, and of its `metadata` only the type and what the schema says of `name`
    /// and `generateName` (the API server validates ObjectMeta itself).
    pub fn validate(&self, object: &Value) -> Vec<FieldError> {
        let mut out = Vec::new();
        let validator = Validator {
            prefix: "",
            resource_root: true,
        };
        validator.check(&self.root, object, &Path::ROOT, &mut out);
        out
    }

    /// The schema as server-side apply sees it. `metadata` at the root and in embedded resources refers to
    /// ObjectMeta, and `apiVersion`/`kind` are strings there, as for built-in kinds.
    pub fn structural(&self) -> StructuralSchema {
        let mut root = self.root.to_structural();
        add_type_meta(&mut root);
        root
    }
}

impl Node {
    fn to_structural(&self) -> StructuralSchema {
        let types = if self.int_or_string {
            vec!["integer".to_owned(), "string".to_owned()]
        } else {
            self.ty.map(|t| t.name().to_owned()).into_iter().collect()
        };
        let mut s = StructuralSchema {
            reference: None,
            types,
            one_of: self.int_or_string,
            properties: self
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.to_structural()))
                .collect(),
            items: self.items.as_ref().map(|i| Box::new(i.to_structural())),
            additional_properties: match &self.additional {
                Additional::Schema(s) => Some(Box::new(s.to_structural())),
                _ => None,
            },
            preserve_unknown_fields: self.preserve_unknown,
            list_type: self.list_type.clone(),
            list_map_keys: self.list_map_keys.clone(),
            map_type: self.map_type.clone(),
            patch_strategy: None,
            patch_merge_key: None,
        };
        if self.embedded {
            add_type_meta(&mut s);
        }
        s
    }
}

fn add_type_meta(s: &mut StructuralSchema) {
    for key in ["apiVersion", "kind"] {
        s.properties
            .entry(key.to_owned())
            .or_insert_with(|| StructuralSchema {
                types: vec!["string".to_owned()],
                ..StructuralSchema::default()
            });
    }
    s.properties.insert(
        "metadata".to_owned(),
        StructuralSchema {
            reference: Some(OBJECT_META.to_owned()),
            types: vec!["object".to_owned()],
            ..StructuralSchema::default()
        },
    );
}

// ---------------------------------------------------------------------------------------------------------
// Paths, built on the stack and rendered only when reported.

#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Option<Step<'a>>,
}

impl<'a> Path<'a> {
    const ROOT: Path<'static> = Path {
        parent: None,
        step: None,
    };

    fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path {
            parent: Some(self),
            step: Some(Step::Key(key)),
        }
    }

    fn index<'b>(&'b self, i: usize) -> Path<'b> {
        Path {
            parent: Some(self),
            step: Some(Step::Index(i)),
        }
    }

    fn is_root(&self) -> bool {
        self.step.is_none()
    }

    /// `spec.items[0].name`; `""` for the root.
    fn render(&self) -> String {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(p) = at {
            steps.extend(p.step);
            at = p.parent;
        }
        let mut out = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Step::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------------------
// Pruning (upstream's pruning.PruneWithOptions, the root treated as an embedded resource).

fn additional_schema(node: &Node) -> Option<Option<&Node>> {
    match &node.additional {
        Additional::None => None,
        Additional::Bool(_) => Some(None),
        Additional::Schema(s) => Some(Some(s)),
    }
}

fn prune(x: &mut Value, s: Option<&Node>, root: bool, p: &Path<'_>, out: &mut Vec<String>) {
    if let Some(s) = s.filter(|s| s.preserve_unknown) {
        skip_prune(x, s, root, p, out);
        return;
    }
    match x {
        Value::Object(map) => {
            let Some(s) = s else {
                out.extend(map.keys().map(|k| p.key(k).render()));
                map.clear();
                return;
            };
            let embedded = root || s.embedded;
            map.retain(|k, v| {
                if embedded && is_meta(k) {
                    return true;
                }
                if let Some(prop) = s.properties.get(k) {
                    prune(v, Some(prop), false, &p.key(k), out);
                } else if let Some(values) = additional_schema(s) {
                    prune(v, values, false, &p.key(k), out);
                } else {
                    out.push(p.key(k).render());
                    return false;
                }
                true
            });
        }
        Value::Array(items) => {
            let items_schema = s.and_then(|s| s.items.as_deref());
            for (i, v) in items.iter_mut().enumerate() {
                prune(v, items_schema, false, &p.index(i), out);
            }
        }
        _ => {}
    }
}

/// Under `x-kubernetes-preserve-unknown-fields`: unknown fields stay, known ones are pruned inside.
fn skip_prune(x: &mut Value, s: &Node, root: bool, p: &Path<'_>, out: &mut Vec<String>) {
    match x {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if (root || s.embedded) && is_meta(k) {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    prune(v, Some(prop), false, &p.key(k), out);
                } else if let Some(values) = additional_schema(s) {
                    prune(v, values, false, &p.key(k), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(items_schema) = &s.items {
                for (i, v) in items.iter_mut().enumerate() {
                    skip_prune(v, items_schema, false, &p.index(i), out);
                }
            }
        }
        _ => {}
    }
}

/// [`prune`] without changing anything.
fn unknown(x: &Value, s: Option<&Node>, root: bool, p: &Path<'_>, out: &mut Vec<String>) {
    let preserve = s.is_some_and(|s| s.preserve_unknown);
    match x {
        Value::Object(map) => {
            let Some(s) = s else {
                out.extend(map.keys().map(|k| p.key(k).render()));
                return;
            };
            for (k, v) in map {
                if (root || s.embedded) && is_meta(k) {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    unknown(v, Some(prop), false, &p.key(k), out);
                } else if let Some(values) = additional_schema(s) {
                    unknown(v, values, false, &p.key(k), out);
                } else if !preserve {
                    out.push(p.key(k).render());
                }
            }
        }
        Value::Array(items) => {
            if preserve {
                if let Some(items_schema) = s.and_then(|s| s.items.as_deref()) {
                    for (i, v) in items.iter().enumerate() {
                        unknown_preserved(v, items_schema, &p.index(i), out);
                    }
                }
                return;
            }
            let items_schema = s.and_then(|s| s.items.as_deref());
            for (i, v) in items.iter().enumerate() {
                unknown(v, items_schema, false, &p.index(i), out);
            }
        }
        _ => {}
    }
}

/// [`skip_prune`] without changing anything, for array items under a preserving node.
fn unknown_preserved(x: &Value, s: &Node, p: &Path<'_>, out: &mut Vec<String>) {
    match x {
        Value::Object(map) => {
            for (k, v) in map {
                if s.embedded && is_meta(k) {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    unknown(v, Some(prop), false, &p.key(k), out);
                } else if let Some(values) = additional_schema(s) {
                    unknown(v, values, false, &p.key(k), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(items_schema) = &s.items {
                for (i, v) in items.iter().enumerate() {
                    unknown_preserved(v, items_schema, &p.index(i), out);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------------------
// Defaulting (upstream's PruneNonNullableNullsWithoutDefaults, then Default).

impl Node {
    fn default_value(&self, v: &mut Value) {
        match v {
            Value::Object(map) => self.default_map(map, false),
            Value::Array(items) => {
                if let Some(item_schema) = &self.items {
                    for item in items.iter_mut() {
                        if item.is_null()
                            && !item_schema.nullable
                            && let Some(d) = &item_schema.default
                        {
                            *item = d.clone();
                        }
                        item_schema.default_value(item);
                    }
                }
            }
            _ => {}
        }
    }

    fn default_map(&self, map: &mut Map<String, Value>, root: bool) {
        map.retain(|k, v| {
            !v.is_null()
                || (root && is_meta(k))
                || self
                    .field_schema(k)
                    .is_none_or(|s| s.nullable || s.default.is_some())
        });
        for (k, prop) in &self.properties {
            let Some(default) = &prop.default else {
                continue;
            };
            if root && is_meta(k) {
                continue;
            }
            match map.get_mut(k) {
                None => {
                    map.insert(k.clone(), default.clone());
                }
                Some(v) if v.is_null() && !prop.nullable => *v = default.clone(),
                Some(_) => {}
            }
        }
        let values = match &self.additional {
            Additional::Schema(s) => Some(&**s),
            _ => None,
        };
        if self.properties.is_empty() && values.is_none() {
            return;
        }
        for (k, v) in map.iter_mut() {
            if root && is_meta(k) {
                continue;
            }
            if let Some(prop) = self.properties.get(k) {
                prop.default_value(v);
            } else if let Some(values) = values {
                if v.is_null()
                    && !values.nullable
                    && let Some(d) = &values.default
                {
                    *v = d.clone();
                }
                values.default_value(v);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Validation (kube-openapi's schema validator as apiextensions maps its errors, plus upstream's list-type
// and embedded-resource checks).

/// Validates values against nodes; errors are reported under `prefix` (empty for custom resources, then
/// root-level errors have no path, `<nil>`, as upstream).
struct Validator<'p> {
    prefix: &'p str,
    /// Skip the root's `apiVersion`/`kind` and check only what the schema says of `metadata`.
    resource_root: bool,
}

fn type_invalid(field: String, value: impl Into<Value>, detail: String) -> FieldError {
    FieldError {
        kind: FieldErrorType::TypeInvalid,
        field,
        bad_value: Some(value.into()),
        detail,
    }
}

/// Go's `%q` for the ASCII cases field paths and formats need.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` of a float64 (`10`, `0.5`, `1e+06`).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{esign}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

/// JSON equality with numbers compared by value (enum values are float64 upstream).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Indexes of the second occurrence of every value seen more than once (upstream's `validateListSet`).
fn second_occurrences<'v>(keys: impl Iterator<Item = Option<&'v Value>>) -> Vec<usize> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::new();
    for (i, key) in keys.enumerate() {
        let k = key.map_or_else(|| "\u{0}unspecified".to_owned(), Value::to_string);
        let count = seen.entry(k).or_insert(0);
        *count += 1;
        if *count == 2 {
            out.push(i);
        }
    }
    out
}

fn is_json_integer(f: f64) -> bool {
    if !f.is_finite() {
        return false;
    }
    let diff = (f - f.round()).abs();
    diff < 1e-9 || diff / f.abs().max(1.0) < 1e-9
}

impl Validator<'_> {
    /// The field path of an error at `p`, and the name kube-openapi's messages use.
    fn at(&self, p: &Path<'_>) -> (String, String) {
        let name = p.render();
        let field = match (self.prefix.is_empty(), name.is_empty()) {
            (true, true) => "<nil>".to_owned(),
            (true, false) => name.clone(),
            (false, true) => self.prefix.to_owned(),
            (false, false) => format!("{}.{name}", self.prefix),
        };
        (field, name)
    }

    /// kube-openapi's composite errors (`anyOf` and friends) carry no field; apiextensions reports them at
    /// its own path.
    fn composite(&self, detail: String) -> FieldError {
        let field = if self.prefix.is_empty() {
            "<nil>"
        } else {
            self.prefix
        };
        FieldError::invalid(field, "", detail)
    }

    fn check(&self, n: &Node, v: &Value, p: &Path<'_>, out: &mut Vec<FieldError>) {
        if v.is_null() {
            if n.has_type() && !n.nullable {
                let (field, name) = self.at(p);
                out.push(type_invalid(
                    field,
                    "null",
                    format!("{name} in body must be of type {}: \"null\"", n.type_list()),
                ));
            }
            self.check_enum(n, v, p, out);
            return;
        }
        self.check_type(n, v, p, out);
        self.check_junctors(n, v, p, out);
        match v {
            Value::String(s) => {
                self.check_string(n, s, p, out);
                self.check_format(n, s, p, out);
            }
            Value::Number(_) => self.check_number(n, v, p, out),
            Value::Array(items) => self.check_array(n, items, p, out),
            _ => {}
        }
        self.check_enum(n, v, p, out);
        if let Value::Object(map) = v {
            self.check_object(n, map, p, out);
        }
    }

    fn check_type(&self, n: &Node, v: &Value, p: &Path<'_>, out: &mut Vec<FieldError>) {
        if !n.has_type() {
            return;
        }
        let (actual, data_format) = match v {
            Value::String(_) => ("string", ""),
            Value::Bool(_) => ("boolean", ""),
            Value::Number(num) if num.is_f64() => ("number", "double"),
            Value::Number(_) => ("integer", "int64"),
            Value::Array(_) => ("array", ""),
            _ => ("object", ""),
        };
        let float_int = actual == "number"
            && v.as_f64().is_some_and(|f| f.fract() == 0.0)
            && n.allows("integer");
        let int_float = actual == "integer" && n.allows("number");
        let stringish = matches!(v, Value::String(_) | Value::Array(_));
        let format = if n.format_supported {
            n.format.as_str()
        } else {
            ""
        };
        if !(stringish
            || format.is_empty()
            || n.allows(actual)
            || data_format == format
            || float_int
            || int_float)
        {
            let (field, name) = self.at(p);
            out.push(type_invalid(
                field,
                data_format,
                format!(
                    "{name} in body must be of type {format}: {}",
                    quote(data_format)
                ),
            ));
            return;
        }
        if stringish && !(n.allows("number") || n.allows("integer") || format.is_empty()) {
            return;
        }
        if !(n.allows(actual) || float_int || int_float) {
            let (field, name) = self.at(p);
            out.push(type_invalid(
                field,
                actual,
                format!(
                    "{name} in body must be of type {}: {}",
                    n.type_list(),
                    quote(actual)
                ),
            ));
        }
    }

    fn check_junctors(&self, n: &Node, v: &Value, p: &Path<'_>, out: &mut Vec<FieldError>) {
        if n.any_of.is_empty() && n.one_of.is_empty() && n.all_of.is_empty() && n.not.is_none() {
            return;
        }
        let quoted = || quote(&p.render());
        if !n.any_of.is_empty() {
            let mut best: Option<Vec<FieldError>> = None;
            let mut valid = false;
            for branch in &n.any_of {
                let mut errs = Vec::new();
                self.check(branch, v, p, &mut errs);
                if errs.is_empty() {
                    valid = true;
                    best = None;
                    break;
                }
                if best.as_ref().is_none_or(|b| errs.len() < b.len()) {
                    best = Some(errs);
                }
            }
            if !valid {
                out.push(self.composite(format!(
                    "{} must validate at least one schema (anyOf)",
                    quoted()
                )));
            }
            out.extend(best.into_iter().flatten());
        }
        if !n.one_of.is_empty() {
            let mut best: Option<Vec<FieldError>> = None;
            let mut valid = 0;
            for branch in &n.one_of {
                let mut errs = Vec::new();
                self.check(branch, v, p, &mut errs);
                if errs.is_empty() {
                    valid += 1;
                    best = None;
                } else if valid == 0 && best.as_ref().is_none_or(|b| errs.len() < b.len()) {
                    best = Some(errs);
                }
            }
            if valid != 1 {
                let detail = if valid == 0 {
                    "Found none valid".to_owned()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                out.push(self.composite(format!(
                    "{} must validate one and only one schema (oneOf). {detail}",
                    quoted()
                )));
                out.extend(best.into_iter().flatten());
            }
        }
        if !n.all_of.is_empty() {
            let mut valid = 0;
            for branch in &n.all_of {
                let before = out.len();
                self.check(branch, v, p, out);
                if out.len() == before {
                    valid += 1;
                }
            }
            if valid != n.all_of.len() {
                let none = if valid == 0 { ". None validated" } else { "" };
                out.push(self.composite(format!(
                    "{} must validate all the schemas (allOf){none}",
                    quoted()
                )));
            }
        }
        if let Some(not) = &n.not {
            let mut errs = Vec::new();
            self.check(not, v, p, &mut errs);
            if errs.is_empty() {
                out.push(
                    self.composite(format!("{} must not validate the schema (not)", quoted())),
                );
            }
        }
    }

    fn check_string(&self, n: &Node, s: &str, p: &Path<'_>, out: &mut Vec<FieldError>) {
        if n.max_length.is_some() || n.min_length.is_some() {
            let chars = s.chars().count() as u64;
            if let Some(max) = n.max_length.filter(|max| chars > *max) {
                let (field, _) = self.at(p);
                out.push(FieldError::too_long(field, max as usize));
                return;
            }
            if let Some(min) = n.min_length.filter(|min| chars < *min) {
                let (field, name) = self.at(p);
                out.push(FieldError::invalid(
                    field,
                    s,
                    format!("{name} in body should be at least {min} chars long"),
                ));
                return;
            }
        }
        if let Some(pattern) = &n.pattern
            && !pattern.regex.is_match(s)
        {
            let (field, name) = self.at(p);
            out.push(FieldError::invalid(
                field,
                s,
                format!("{name} in body should match '{}'", pattern.source),
            ));
        }
    }

    fn check_format(&self, n: &Node, s: &str, p: &Path<'_>, out: &mut Vec<FieldError>) {
        if let Some(format) = n.format_kind
            && !format.accepts(s)
        {
            let (field, name) = self.at(p);
            out.push(type_invalid(
                field,
                s,
                format!("{name} in body must be of type {}: {}", n.format, quote(s)),
            ));
        }
    }

    fn check_number(&self, n: &Node, v: &Value, p: &Path<'_>, out: &mut Vec<FieldError>) {
        let int = v.as_i64();
        let float = v.as_f64().unwrap_or(0.0);
        // Not upstream (which strips these formats): the ranges of int32 and float.
        let out_of_range = match n.format.as_str() {
            "int32" => int.is_some_and(|i| i32::try_from(i).is_err()),
            "int64" => int.is_none() && v.is_u64(),
            "float" => float.abs() > f64::from(f32::MAX),
            _ => false,
        };
        if out_of_range {
            let (field, name) = self.at(p);
            out.push(type_invalid(
                field,
                v.clone(),
                format!("{name} in body must be of type {}: \"{v}\"", n.format),
            ));
        }
        if let Some(factor) = n.multiple_of.filter(|f| *f != 0.0) {
            let integral_factor = factor.fract() == 0.0 && factor.abs() < 9.0e18;
            let (ok, shown) = match int {
                Some(i) if integral_factor => {
                    (i % (factor as i64) == 0, (factor as i64).to_string())
                }
                _ => (is_json_integer(float / factor), go_float(factor)),
            };
            if !ok {
                let (field, name) = self.at(p);
                out.push(FieldError::invalid(
                    field,
                    v.clone(),
                    format!("{name} in body should be a multiple of {shown}"),
                ));
            }
        }
        if let Some(max) = n.maximum {
            let exclusive = n.exclusive_maximum;
            let (fails, shown) = match int {
                // kube-openapi compares integers with the bound truncated to an integer.
                Some(i) => {
                    let m = max as i64;
                    (if exclusive { i >= m } else { i > m }, m.to_string())
                }
                None => (
                    if exclusive { float >= max } else { float > max },
                    go_float(max),
                ),
            };
            if fails {
                let (field, name) = self.at(p);
                let relation = if exclusive {
                    "less than"
                } else {
                    "less than or equal to"
                };
                out.push(FieldError::invalid(
                    field,
                    v.clone(),
                    format!("{name} in body should be {relation} {shown}"),
                ));
            }
        }
        if let Some(min) = n.minimum {
            let exclusive = n.exclusive_minimum;
            let (fails, shown) = match int {
                Some(i) => {
                    let m = min as i64;
                    (if exclusive { i <= m } else { i < m }, m.to_string())
                }
                None => (
                    if exclusive { float <= min } else { float < min },
                    go_float(min),
                ),
            };
            if fails {
                let (field, name) = self.at(p);
                let relation = if exclusive {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                out.push(FieldError::invalid(
                    field,
                    v.clone(),
                    format!("{name} in body should be {relation} {shown}"),
                ));
            }
        }
    }

    fn check_array(&self, n: &Node, items: &[Value], p: &Path<'_>, out: &mut Vec<FieldError>) {
        if let Some(item_schema) = &n.items {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &p.index(i), out);
            }
        }
        let len = items.len();
        if let Some(min) = n.min_items.filter(|min| (len as u64) < *min) {
            let (field, name) = self.at(p);
            out.push(FieldError::invalid(
                field,
                len,
                format!("{name} in body should have at least {min} items"),
            ));
        }
        if let Some(max) = n.max_items.filter(|max| len as u64 > *max) {
            let (field, _) = self.at(p);
            out.push(FieldError::too_many(field, len, max as usize));
        }
        if n.unique_items
            && items
                .iter()
                .enumerate()
                .any(|(i, a)| items[..i].iter().any(|b| json_eq(a, b)))
        {
            let (field, name) = self.at(p);
            out.push(FieldError::invalid(
                field,
                "",
                format!("{name} in body shouldn't contain duplicates"),
            ));
        }
        match n.list_type.as_deref() {
            Some("set") if len > 1 => {
                for i in second_occurrences(items.iter().map(Some)) {
                    let (field, _) = self.at(&p.index(i));
                    out.push(FieldError::duplicate(field, items[i].clone()));
                }
            }
            Some("map") => self.check_list_map(n, items, p, out),
            _ => {}
        }
    }

    fn check_list_map(&self, n: &Node, items: &[Value], p: &Path<'_>, out: &mut Vec<FieldError>) {
        if let Some((i, bad)) = items
            .iter()
            .enumerate()
            .find(|(_, x)| !(x.is_object() || x.is_null()))
        {
            let (field, _) = self.at(&p.index(i));
            out.push(FieldError::invalid(
                field,
                bad.clone(),
                "must be an object for an array of list-type map",
            ));
            return;
        }
        if items.len() <= 1 {
            return;
        }
        let key_of = |x: &Value| -> Value {
            let mut key = Map::new();
            for k in &n.list_map_keys {
                if let Some(v) = x.get(k) {
                    key.insert(k.clone(), v.clone());
                }
            }
            Value::Object(key)
        };
        let duplicates = if let [single] = n.list_map_keys.as_slice() {
            second_occurrences(items.iter().map(|x| x.get(single)))
        } else {
            let keys: Vec<Value> = items.iter().map(key_of).collect();
            second_occurrences(keys.iter().map(Some))
        };
        for i in duplicates {
            let (field, _) = self.at(&p.index(i));
            out.push(FieldError::duplicate(field, key_of(&items[i])));
        }
    }

    fn check_enum(&self, n: &Node, v: &Value, p: &Path<'_>, out: &mut Vec<FieldError>) {
        let Some(values) = &n.enumeration else {
            return;
        };
        // Upstream rejects `null` even where the enum lists it; here a listed `null` is accepted.
        if values.is_empty() || values.iter().any(|e| json_eq(e, v)) {
            return;
        }
        let shown: Vec<String> = values
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let shown: Vec<&str> = shown.iter().map(String::as_str).collect();
        let (field, _) = self.at(p);
        out.push(FieldError::not_supported(field, v.clone(), &shown));
    }

    fn check_object(
        &self,
        n: &Node,
        map: &Map<String, Value>,
        p: &Path<'_>,
        out: &mut Vec<FieldError>,
    ) {
        let count = map.len();
        if let Some(min) = n.min_properties.filter(|min| (count as u64) < *min) {
            let (field, name) = self.at(p);
            out.push(FieldError::invalid(
                field,
                count,
                format!("{name} in body should have at least {min} properties"),
            ));
            return;
        }
        if let Some(max) = n.max_properties.filter(|max| count as u64 > *max) {
            let (field, _) = self.at(p);
            out.push(FieldError::too_many(field, count, max as usize));
            return;
        }
        let resource_root = self.resource_root && p.is_root();
        match &n.additional {
            Additional::Bool(false) => {
                for k in map.keys() {
                    if !(n.properties.contains_key(k) || resource_root && is_meta(k)) {
                        let (field, name) = self.at(p);
                        out.push(FieldError::invalid(
                            field,
                            k.as_str(),
                            format!("{name}.{k} in body is a forbidden property"),
                        ));
                    }
                }
            }
            Additional::Schema(values) => {
                for (k, v) in map {
                    if !(n.properties.contains_key(k) || resource_root && is_meta(k)) {
                        self.check(values, v, &p.key(k), out);
                    }
                }
            }
            _ => {}
        }
        for (k, prop) in &n.properties {
            let Some(v) = map.get(k) else {
                continue;
            };
            if resource_root && is_meta(k) {
                if k == "metadata" {
                    self.check_root_metadata(prop, v, &p.key(k), out);
                }
                continue;
            }
            self.check(prop, v, &p.key(k), out);
        }
        for k in &n.required {
            if !map.contains_key(k) {
                let (field, _) = self.at(&p.key(k));
                out.push(FieldError::required(field, ""));
            }
        }
        if n.embedded && !resource_root {
            self.check_embedded(map, p, out);
        }
    }

    /// The root's `metadata`: its type, and the restrictions of `name` and `generateName`.
    fn check_root_metadata(&self, n: &Node, v: &Value, p: &Path<'_>, out: &mut Vec<FieldError>) {
        if v.is_null() {
            return;
        }
        self.check_type(n, v, p, out);
        if let Value::Object(meta) = v {
            for k in ["name", "generateName"] {
                if let (Some(s), Some(x)) = (n.properties.get(k), meta.get(k)) {
                    self.check(s, x, &p.key(k), out);
                }
            }
        }
    }

    /// upstream's `objectmeta.Validate` of an embedded resource: its TypeMeta, and (lightly) its ObjectMeta.
    fn check_embedded(&self, map: &Map<String, Value>, p: &Path<'_>, out: &mut Vec<FieldError>) {
        for k in ["apiVersion", "kind"] {
            if !map.contains_key(k) {
                out.push(FieldError::required(self.at(&p.key(k)).0, ""));
            }
        }
        if let Some(v) = map.get("apiVersion") {
            let (field, _) = self.at(&p.key("apiVersion"));
            match v.as_str() {
                None => out.push(FieldError::invalid(field, v.clone(), "must be a string")),
                Some("") => out.push(FieldError::required(field, "")),
                Some(gv) if gv.matches('/').count() > 1 => out.push(FieldError::invalid(
                    field,
                    gv,
                    format!("unexpected GroupVersion string: {gv}"),
                )),
                Some(_) => {}
            }
        }
        if let Some(v) = map.get("kind") {
            let (field, _) = self.at(&p.key("kind"));
            match v.as_str() {
                None => out.push(FieldError::invalid(field, v.clone(), "must be a string")),
                Some("") => out.push(FieldError::required(field, "")),
                Some(kind) => {
                    let errs = gantry_api::validation::is_dns1035_label(&kind.to_lowercase());
                    if !errs.is_empty() {
                        out.push(FieldError::invalid(
                            field,
                            kind,
                            format!(
                                "may have mixed case, but should otherwise match: {}",
                                errs.join(",")
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(meta) = map.get("metadata") {
            let mp = p.key("metadata");
            self.check_embedded_meta(meta, &mp, out);
        }
    }

    fn check_embedded_meta(&self, meta: &Value, p: &Path<'_>, out: &mut Vec<FieldError>) {
        let Value::Object(meta) = meta else {
            if !meta.is_null() {
                out.push(FieldError::invalid(
                    self.at(p).0,
                    meta.clone(),
                    "json: cannot unmarshal into Go value of type v1.ObjectMeta",
                ));
            }
            return;
        };
        for k in ["name", "generateName"] {
            if let Some(name) = meta
                .get(k)
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                let msgs = if k == "name" {
                    gantry_api::validation::is_valid_path_segment_name(name)
                } else {
                    ["/", "%"]
                        .into_iter()
                        .filter(|c| name.contains(c))
                        .map(|c| format!("may not contain '{c}'"))
                        .collect()
                };
                for msg in msgs {
                    out.push(FieldError::invalid(self.at(&p.key(k)).0, name, msg));
                }
            }
        }
        for (k, check) in [
            (
                "labels",
                gantry_api::validation::validate_labels
                    as fn(&BTreeMap<String, String>, &str) -> Vec<FieldError>,
            ),
            ("annotations", gantry_api::validation::validate_annotations),
        ] {
            if let Some(Value::Object(entries)) = meta.get(k) {
                let strings: BTreeMap<String, String> = entries
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect();
                out.extend(check(&strings, &self.at(&p.key(k)).0));
            }
        }
    }
}

#[cfg(test)]
mod tests;

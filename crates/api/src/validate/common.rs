//! What every kind's validation shares: field paths, reading untyped JSON the way Go's decoder would see it,
//! and the small upstream checks (`ValidateNonnegativeField`, `ValidateImmutableField`, label selectors, port
//! numbers and names, DNS names) with their exact messages.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::field::{FieldError, FieldErrorType};
use crate::labels::Selector;
use crate::validation;

pub(crate) type Errors = Vec<FieldError>;
pub(crate) type Object = Map<String, Value>;

/// `must be greater than or equal to 0` (apimachinery's `IsNegativeErrorMsg`).
pub(crate) const IS_NEGATIVE: &str = "must be greater than or equal to 0";
/// `field is immutable` (apimachinery's `FieldImmutableErrorMsg`).
pub(crate) const IMMUTABLE: &str = "field is immutable";

/// A field path as apimachinery's `field.Path` prints it: `spec.containers[0].ports[1]`, keys as `[key]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path(String);

impl Path {
    pub(crate) fn new(root: &str) -> Self {
        Self(root.to_owned())
    }

    pub(crate) fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    pub(crate) fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&Path> for String {
    fn from(p: &Path) -> Self {
        p.0.clone()
    }
}

impl From<Path> for String {
    fn from(p: Path) -> Self {
        p.0
    }
}

// ---- reading JSON as Go's decoder would: absent and null are the zero value ---------------------------

/// The value at `key` unless it is absent or `null`.
pub(crate) fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// The string at `key`; `""` when absent, `null` or not a string.
pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The string at `key` when one is set (a Go `*string` that is not nil).
pub(crate) fn opt_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    get(v, key).and_then(Value::as_str)
}

/// The integer at `key` when set.
pub(crate) fn int_at(v: &Value, key: &str) -> Option<i64> {
    get(v, key).and_then(Value::as_i64)
}

pub(crate) fn bool_at(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The list at `key`; empty when absent or not a list.
pub(crate) fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The object at `key` when set.
pub(crate) fn map_at<'a>(v: &'a Value, key: &str) -> Option<&'a Object> {
    v.get(key).and_then(Value::as_object)
}

/// The number of entries of a list or map at `key` (Go's `len`), 0 when absent.
pub(crate) fn len_at(v: &Value, key: &str) -> usize {
    match v.get(key) {
        Some(Value::Array(a)) => a.len(),
        Some(Value::Object(m)) => m.len(),
        _ => 0,
    }
}

/// A `map[string]string` (labels, annotations, selectors); values that are not strings read as `""`.
pub(crate) fn string_map(v: &Value, key: &str) -> BTreeMap<String, String> {
    map_at(v, key)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
        .collect()
}

/// The strings of a `[]string` at `key` (non-strings are skipped).
pub(crate) fn strings<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    list(v, key).iter().filter_map(Value::as_str).collect()
}

/// An `intstr.IntOrString`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IntOrStr {
    Int(i64),
    Str(String),
}

impl IntOrStr {
    pub(crate) fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => n.as_i64().map(Self::Int),
            Value::String(s) => Some(Self::Str(s.clone())),
            _ => None,
        }
    }
}

// ---- comparing as apimachinery's semantic equality does ------------------------------------------------

/// `v` without what Go's decoder would leave at its zero value: nulls, empty strings, `false`, empty lists and
/// maps. Two objects are semantically equal (`apiequality.Semantic.DeepEqual`) when their normal forms are.
pub(crate) fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !is_zero(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Number(_) => false,
    }
}

pub(crate) fn semantic_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    let norm = |v: Option<&Value>| v.map(normalized).filter(|v| !is_zero(v));
    norm(a) == norm(b)
}

/// `ValidateImmutableField`: `Invalid value: <new>: field is immutable`.
pub(crate) fn immutable(new: Option<&Value>, old: Option<&Value>, path: &Path) -> Errors {
    if semantic_eq(new, old) {
        return Vec::new();
    }
    vec![FieldError::invalid(
        path,
        new.cloned().unwrap_or(Value::Null),
        IMMUTABLE,
    )]
}

/// The leaves that differ between two values, one `-path: old` / `+path: new` pair each: stands in for the
/// Go struct diff upstream appends to "may not change" messages.
pub(crate) fn diff(old: &Value, new: &Value, path: &Path) -> String {
    let mut lines = Vec::new();
    diff_into(&normalized(old), &normalized(new), path, &mut lines);
    lines.join("\n")
}

fn diff_into(old: &Value, new: &Value, path: &Path, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let null = Value::Null;
                diff_into(
                    a.get(k).unwrap_or(&null),
                    b.get(k).unwrap_or(&null),
                    &path.child(k),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_into(x, y, &path.index(i), out);
            }
        }
        (a, b) if a != b => {
            if !a.is_null() {
                out.push(format!("-{path}: {a}"));
            }
            if !b.is_null() {
                out.push(format!("+{path}: {b}"));
            }
        }
        _ => {}
    }
}

// ---- small upstream validators ---------------------------------------------------------------------------

/// `ValidateNonnegativeField`.
pub(crate) fn nonnegative(value: i64, path: &Path) -> Errors {
    if value < 0 {
        vec![FieldError::invalid(path, value, IS_NEGATIVE)]
    } else {
        Vec::new()
    }
}

/// `ValidateNonnegativeField` on an optional integer field.
pub(crate) fn nonnegative_at(v: &Value, key: &str, path: &Path) -> Errors {
    int_at(v, key)
        .map(|n| nonnegative(n, &path.child(key)))
        .unwrap_or_default()
}

/// `field.NotSupported` with the supported values in upstream's order.
pub(crate) fn not_supported(path: &Path, value: impl Into<Value>, valid: &[&str]) -> FieldError {
    FieldError::not_supported(path, value, valid)
}

/// `field.Duplicate` with a detail (upstream sets `Detail` after constructing it).
pub(crate) fn duplicate_with(path: &Path, value: impl Into<Value>, detail: &str) -> FieldError {
    FieldError {
        kind: FieldErrorType::Duplicate,
        field: path.into(),
        bad_value: Some(value.into()),
        detail: detail.to_owned(),
    }
}

/// One `Invalid` error per message of a string check.
pub(crate) fn each_invalid(path: &Path, value: &str, messages: Vec<String>) -> Errors {
    messages
        .into_iter()
        .map(|m| FieldError::invalid(path, value, m))
        .collect()
}

pub(crate) fn dns_label(value: &str, path: &Path) -> Errors {
    each_invalid(path, value, validation::is_dns1123_label(value))
}

pub(crate) fn dns_subdomain(value: &str, path: &Path) -> Errors {
    each_invalid(path, value, validation::is_dns1123_subdomain(value))
}

pub(crate) fn qualified_name(value: &str, path: &Path) -> Errors {
    each_invalid(path, value, validation::is_qualified_name(value))
}

/// `must be between LO and HI, inclusive`.
pub(crate) fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// `IsValidPortNum`: 1 to 65535.
pub(crate) fn port_num_errors(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// `IsValidPortName`: an IANA_SVC_NAME, at most 15 of `[-a-z0-9]` with a letter, no `--`, no dash at the ends.
pub(crate) fn port_name_errors(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push(validation::max_len_error(15));
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_owned(),
        );
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_owned());
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens".to_owned());
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_owned());
    }
    errs
}

/// `ValidatePortNumOrName` on an int-or-string port.
pub(crate) fn port_num_or_name(port: Option<&Value>, path: &Path) -> Errors {
    match port.and_then(IntOrStr::from_value) {
        Some(IntOrStr::Int(n)) => port_num_errors(n)
            .into_iter()
            .map(|m| FieldError::invalid(path, n, m))
            .collect(),
        Some(IntOrStr::Str(s)) => each_invalid(path, &s, port_name_errors(&s)),
        // An unset int-or-string is the integer 0.
        None => port_num_errors(0)
            .into_iter()
            .map(|m| FieldError::invalid(path, 0, m))
            .collect(),
    }
}

/// `IsValidPercent`: digits followed by `%`.
pub(crate) fn percent_errors(s: &str) -> Vec<String> {
    let valid = s
        .strip_suffix('%')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    if valid {
        Vec::new()
    } else {
        vec![validation::regex_error(
            "a valid percent string must be a numeric string followed by an ending '%'",
            "[0-9]+%",
            &["1%", "93%"],
        )]
    }
}

/// `IsConfigMapKey`: what ConfigMap and Secret keys (and env key references) must be.
pub(crate) fn config_map_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > validation::DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(validation::max_len_error(
            validation::DNS1123_SUBDOMAIN_MAX_LENGTH,
        ));
    }
    let valid = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !valid {
        errs.push(validation::regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    errs.extend(ch_dir_prefix_errors(key));
    errs
}

/// `hasChDirPrefix`: `.`, `..` and anything starting with `..`.
fn ch_dir_prefix_errors(value: &str) -> Option<String> {
    match value {
        "." => Some("must not be '.'".to_owned()),
        ".." => Some("must not be '..'".to_owned()),
        v if v.starts_with("..") => Some("must not start with '..'".to_owned()),
        _ => None,
    }
}

// ---- labels, annotations and selectors -------------------------------------------------------------------

/// `ValidateLabels` on the `map[string]string` at `key`, reported at `path`.
pub(crate) fn labels_at(v: &Value, key: &str, path: &Path) -> Errors {
    validation::validate_labels(&string_map(v, key), &String::from(path))
}

/// `ValidateAnnotations` on the map at `key`.
pub(crate) fn annotations_at(v: &Value, key: &str, path: &Path) -> Errors {
    validation::validate_annotations(&string_map(v, key), &String::from(path))
}

/// `ValidateLabelName`.
pub(crate) fn label_name(name: &str, path: &Path) -> Errors {
    qualified_name(name, path)
}

/// `ValidateLabelSelector` (strict: values must be label values).
pub(crate) fn label_selector(selector: Option<&Value>, path: &Path) -> Errors {
    let Some(selector) = selector else {
        return Vec::new();
    };
    let mut errs = labels_at(selector, "matchLabels", &path.child("matchLabels"));
    let exprs = path.child("matchExpressions");
    for (i, expr) in list(selector, "matchExpressions").iter().enumerate() {
        errs.extend(selector_requirement(expr, &exprs.index(i)));
    }
    errs
}

fn selector_requirement(expr: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let values = list(expr, "values");
    match str_at(expr, "operator") {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(FieldError::required(
                    path.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.push(FieldError::forbidden(
                    path.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        op => errs.push(FieldError::invalid(
            path.child("operator"),
            op,
            "not a valid selector operator",
        )),
    }
    errs.extend(label_name(str_at(expr, "key"), &path.child("key")));
    let values_path = path.child("values");
    for (i, value) in values.iter().enumerate() {
        let value = value.as_str().unwrap_or("");
        errs.extend(each_invalid(
            &values_path.index(i),
            value,
            validation::is_valid_label_value(value),
        ));
    }
    errs
}

/// The selector of a `metav1.LabelSelector`, `None` when it does not convert (`LabelSelectorAsSelector`
/// failed): a missing selector selects nothing.
pub(crate) fn as_selector(selector: Option<&Value>) -> Option<Selector> {
    Selector::from_label_selector(selector.unwrap_or(&Value::Null)).ok()
}

/// Whether a selector requires nothing (`selector.Empty()`): nothing to match against.
pub(crate) fn selector_is_empty(selector: Option<&Value>) -> bool {
    selector.is_none_or(|s| len_at(s, "matchLabels") + len_at(s, "matchExpressions") == 0)
}

/// Whether `selector` matches the labels at `labels`.
pub(crate) fn selector_matches(selector: &Selector, labels: Option<&Object>) -> bool {
    let empty = Object::new();
    selector.matches(labels.unwrap_or(&empty))
}

/// The `metadata.labels` of an object or template, as a JSON value for error messages.
pub(crate) fn labels_value(template: &Value) -> Value {
    template
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .cloned()
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_print_like_apimachinery() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("resources");
        assert_eq!(p.to_string(), "spec.containers[0].resources");
        assert_eq!(
            p.child("limits").key("cpu").to_string(),
            "spec.containers[0].resources.limits[cpu]"
        );
        assert_eq!(Path::new("").child("data").to_string(), "data");
    }

    #[test]
    fn semantic_equality_ignores_zero_values() {
        let a = json!({"a": 1, "b": [], "c": {}, "d": "", "e": null, "f": false});
        let b = json!({"a": 1});
        assert!(semantic_eq(Some(&a), Some(&b)));
        assert!(semantic_eq(None, Some(&json!({}))));
        assert!(!semantic_eq(Some(&json!({"a": 0})), Some(&json!({}))));
        assert_eq!(
            immutable(
                Some(&json!("b")),
                Some(&json!("a")),
                &Path::new("spec").child("x")
            )[0]
            .to_string(),
            "spec.x: Invalid value: \"b\": field is immutable"
        );
    }

    #[test]
    fn port_names_follow_iana() {
        assert!(port_name_errors("http").is_empty());
        assert!(port_name_errors("h-t-t-p2").is_empty());
        assert_eq!(
            port_name_errors("8080"),
            ["must contain at least one letter (a-z)"]
        );
        assert_eq!(
            port_name_errors("a--b"),
            ["must not contain consecutive hyphens"]
        );
        assert_eq!(
            port_name_errors("-abc"),
            ["must not begin or end with a hyphen"]
        );
        assert_eq!(
            port_name_errors("Http"),
            ["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]
        );
        assert_eq!(
            port_name_errors("abcdefghijklmnop"),
            ["must be no more than 15 characters"]
        );
        assert_eq!(
            port_num_errors(0),
            ["must be between 1 and 65535, inclusive"]
        );
        assert!(port_num_errors(65535).is_empty());
    }

    #[test]
    fn config_keys() {
        assert!(config_map_key_errors("key.name").is_empty());
        assert!(config_map_key_errors(".dockerconfigjson").is_empty());
        assert_eq!(config_map_key_errors(".."), ["must not be '..'".to_owned()]);
        assert_eq!(
            config_map_key_errors("a b"),
            [
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
            ]
        );
    }

    #[test]
    fn selectors() {
        let sel = json!({"matchExpressions": [
            {"key": "a", "operator": "In"},
            {"key": "b", "operator": "Exists", "values": ["x"]},
            {"key": "c", "operator": "Near"},
            {"key": "d", "operator": "In", "values": ["-bad"]}
        ]});
        let errs: Vec<String> = label_selector(Some(&sel), &Path::new("spec").child("selector"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs[0],
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        );
        assert_eq!(
            errs[1],
            "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
        );
        assert_eq!(
            errs[2],
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Near\": not a valid selector operator"
        );
        assert!(errs[3].starts_with("spec.selector.matchExpressions[3].values[0]: Invalid value: \"-bad\": a valid label must"));
        assert!(selector_is_empty(Some(&json!({}))));
        assert!(!selector_is_empty(Some(
            &json!({"matchLabels": {"a": "b"}})
        )));
    }

    #[test]
    fn percents() {
        assert!(percent_errors("25%").is_empty());
        assert_eq!(
            percent_errors("25"),
            [
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
            ]
        );
    }
}

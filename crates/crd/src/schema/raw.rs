//! What upstream's CRD validation says of a raw `openAPIV3Schema`: the structural-schema invariants
//! (`schema.ValidateStructural`), the validity of defaults (`defaulting.ValidateDefaults`) and the OpenAPI
//! restrictions (`ValidateCustomResourceDefinitionOpenAPISchema`), with upstream's paths and messages.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use gantry_api::field::FieldError;
use serde_json::{Map, Value};

use super::{Node, Path, Validator, is_meta, prune};

const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";
const EMBEDDED: &str = "x-kubernetes-embedded-resource";
const INT_OR_STRING: &str = "x-kubernetes-int-or-string";
const LIST_TYPE: &str = "x-kubernetes-list-type";
const LIST_MAP_KEYS: &str = "x-kubernetes-list-map-keys";
const MAP_TYPE: &str = "x-kubernetes-map-type";
const VALIDATIONS: &str = "x-kubernetes-validations";

const OPENAPI_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];
const RULE_REASONS: &[&str] = &[
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

static EMPTY: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);

fn get<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    m.get(k).filter(|v| !v.is_null())
}

fn text<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    get(m, k).and_then(Value::as_str).unwrap_or("")
}

fn flag(m: &Map<String, Value>, k: &str) -> bool {
    get(m, k).and_then(Value::as_bool).unwrap_or(false)
}

fn object<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Map<String, Value>> {
    get(m, k).and_then(Value::as_object)
}

fn list<'a>(m: &'a Map<String, Value>, k: &str) -> &'a [Value] {
    get(m, k)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn properties(m: &Map<String, Value>) -> &Map<String, Value> {
    object(m, "properties").unwrap_or(&EMPTY)
}

/// Set to something other than Go's zero value.
fn nonzero(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) => true,
    }
}

fn prop(p: &str, k: &str) -> String {
    format!("{p}.properties[{k}]")
}

/// A `regex` compile error in one line, as Go's `regexp` error reads.
pub(super) fn regex_error(pattern: &str, err: &regex::Error) -> String {
    let detail = match err {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error:"))
            .map_or_else(|| s.clone(), |l| l.trim().to_owned()),
        other => other.to_string(),
    };
    format!("error parsing regexp: {detail}: `{pattern}`")
}

pub(super) fn structural_errors(schema: &Value, path: &str) -> Vec<FieldError> {
    let mut out = Vec::new();
    invariants(schema, Level::Root, path, &mut out);
    if let Some(root) = schema.as_object() {
        complete_value_validation(root, root, path, path, &mut out);
    }
    // As upstream, sorted (its maps have no order).
    out.sort_by_cached_key(ToString::to_string);
    if out.is_empty() {
        defaults(schema, path, false, true, &mut out);
    }
    let ssv = Ssv {
        allow_defaults: true,
        reason: String::new(),
        inside_meta: false,
    };
    openapi(schema, path, &ssv, true, &mut out);
    if out.is_empty()
        && let Err(e) = Node::compile(schema)
    {
        out.push(FieldError::invalid(
            path,
            "",
            format!("error building validator: {e}"),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Structural invariants.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

fn invariants(s: &Value, lvl: Level, p: &str, out: &mut Vec<FieldError>) {
    let Some(m) = s.as_object() else {
        return;
    };
    let ty = text(m, "type");
    let items = get(m, "items");
    if ty == "array" && items.is_none() {
        out.push(FieldError::required(
            format!("{p}.items"),
            "must be specified",
        ));
    }
    if let Some(items @ Value::Object(_)) = items {
        invariants(items, Level::Item, &format!("{p}.items"), out);
    }
    let props = properties(m);
    for (k, v) in props {
        invariants(v, Level::Field, &prop(p, k), out);
    }
    let additional = get(m, "additionalProperties");
    if let Some(ap) = additional {
        if lvl == Level::Root {
            out.push(FieldError::forbidden(
                format!("{p}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if ap.is_object() {
            invariants(ap, Level::Field, &format!("{p}.additionalProperties"), out);
        }
    }
    let int_or_string = flag(m, INT_OR_STRING);
    let preserve = flag(m, PRESERVE);
    let embedded = flag(m, EMBEDDED);
    let detail = "must be false if x-kubernetes-int-or-string is true";
    if int_or_string && preserve {
        out.push(FieldError::invalid(format!("{p}.{PRESERVE}"), true, detail));
    }
    if int_or_string && embedded {
        out.push(FieldError::invalid(format!("{p}.{EMBEDDED}"), true, detail));
    }
    value_validation(
        m,
        int_or_string_any_of(m),
        int_or_string_all_of(m),
        lvl,
        p,
        out,
    );

    if embedded && ty != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        out.push(if ty.is_empty() {
            FieldError::required(format!("{p}.type"), detail)
        } else {
            FieldError::invalid(format!("{p}.type"), ty, detail)
        });
    } else if ty.is_empty() && !int_or_string && !preserve {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        out.push(FieldError::required(format!("{p}.type"), detail));
    }
    if embedded && additional.is_some() {
        out.push(FieldError::forbidden(
            format!("{p}.additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        out.push(FieldError::invalid(
            format!("{p}.type"),
            ty,
            "must be object at the root",
        ));
    }
    let check_metadata = lvl == Level::Root || embedded;
    if check_metadata {
        for k in ["kind", "apiVersion"] {
            if let Some(sub) = props.get(k) {
                let t = sub.as_object().map_or("", |s| text(s, "type"));
                if t != "string" {
                    out.push(FieldError::invalid(
                        format!("{}.type", prop(p, k)),
                        t,
                        "must be string",
                    ));
                }
            }
        }
    }
    if let Some(meta) = props.get("metadata") {
        metadata_invariants(meta, check_metadata, lvl, &prop(p, "metadata"), out);
    }
    if embedded && !preserve && props.is_empty() {
        out.push(FieldError::required(
            format!("{p}.properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// Keys NewStructural drops: they never make a schema non-structural.
const IGNORED_KEYS: &[&str] = &["example", "externalDocs", "$schema", "id"];

fn metadata_invariants(
    meta: &Value,
    check_metadata: bool,
    lvl: Level,
    p: &str,
    out: &mut Vec<FieldError>,
) {
    let Some(m) = meta.as_object() else {
        return;
    };
    let ty = text(m, "type");
    if check_metadata && ty != "object" {
        out.push(FieldError::invalid(
            format!("{p}.type"),
            ty,
            "must be object",
        ));
    }
    if lvl != Level::Root {
        return;
    }
    let props = properties(m);
    let only_names = props.keys().all(|k| k == "name" || k == "generateName");
    let other = m.iter().any(|(k, v)| match k.as_str() {
        "type" | "default" => false,
        "properties" => !only_names,
        k if IGNORED_KEYS.contains(&k) => false,
        _ => nonzero(v),
    });
    if other {
        out.push(FieldError::forbidden(
            p,
            "must not specify anything other than name and generateName, but metadata is implicitly specified",
        ));
    }
    // Not upstream: a name is a string, whatever else the schema says.
    for k in ["name", "generateName"] {
        if let Some(sub) = props.get(k).and_then(Value::as_object) {
            let t = text(sub, "type");
            if t != "string" {
                out.push(FieldError::invalid(
                    format!("{}.type", prop(p, k)),
                    t,
                    "must be string",
                ));
            }
        }
    }
}

/// `{type: <t>}` and nothing else.
fn only_type(v: &Value, t: &str) -> bool {
    v.as_object()
        .is_some_and(|o| text(o, "type") == t && o.iter().all(|(k, v)| k == "type" || !nonzero(v)))
}

/// `anyOf: [{type: integer}, {type: string}]`, the int-or-string pattern.
fn int_or_string_any_of(m: &Map<String, Value>) -> bool {
    matches!(list(m, "anyOf"), [a, b] if only_type(a, "integer") && only_type(b, "string"))
}

/// `allOf: [{anyOf: [{type: integer}, {type: string}]}, ...]`.
fn int_or_string_all_of(m: &Map<String, Value>) -> bool {
    list(m, "allOf")
        .first()
        .and_then(Value::as_object)
        .is_some_and(int_or_string_any_of)
}

fn value_validation(
    m: &Map<String, Value>,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    lvl: Level,
    p: &str,
    out: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, v) in list(m, "anyOf").iter().enumerate() {
            nested(v, false, lvl, &format!("{p}.anyOf[{i}]"), out);
        }
    }
    for (i, v) in list(m, "allOf").iter().enumerate() {
        let skip = skip_first_all_of_any_of && i == 0;
        nested(v, skip, lvl, &format!("{p}.allOf[{i}]"), out);
    }
    for (i, v) in list(m, "oneOf").iter().enumerate() {
        nested(v, false, lvl, &format!("{p}.oneOf[{i}]"), out);
    }
    if let Some(not) = get(m, "not") {
        nested(not, false, lvl, &format!("{p}.not"), out);
    }
    let pattern = text(m, "pattern");
    if !pattern.is_empty()
        && let Err(e) = regex::Regex::new(pattern)
    {
        out.push(FieldError::invalid(
            format!("{p}.pattern"),
            pattern,
            format!(
                "must be a valid regular expression, but isn't: {}",
                regex_error(pattern, &e)
            ),
        ));
    }
}

/// A schema under `allOf`/`anyOf`/`oneOf`/`not`: value validations only.
fn nested(v: &Value, skip_any_of: bool, lvl: Level, p: &str, out: &mut Vec<FieldError>) {
    let Some(m) = v.as_object() else {
        return;
    };
    value_validation(m, skip_any_of, false, lvl, p, out);
    if let Some(items @ Value::Object(_)) = get(m, "items") {
        nested(items, false, lvl, &format!("{p}.items"), out);
    }
    for (k, f) in properties(m) {
        nested(f, false, Level::Field, &prop(p, k), out);
    }
    let forbid = |out: &mut Vec<FieldError>, key: &str, detail: &str| {
        out.push(FieldError::forbidden(format!("{p}.{key}"), detail));
    };
    let empty = "must be empty to be structural";
    let undefined = "must be undefined to be structural";
    let unset = "must be false to be structural";
    if !text(m, "type").is_empty() {
        forbid(out, "type", empty);
    }
    if get(m, "additionalProperties").is_some() {
        forbid(out, "additionalProperties", undefined);
    }
    if get(m, "default").is_some() {
        forbid(out, "default", undefined);
    }
    for key in ["title", "description"] {
        if !text(m, key).is_empty() {
            forbid(out, key, empty);
        }
    }
    for key in ["nullable", PRESERVE, EMBEDDED, INT_OR_STRING] {
        if flag(m, key) {
            forbid(out, key, unset);
        }
    }
    if !list(m, LIST_MAP_KEYS).is_empty() {
        forbid(out, LIST_MAP_KEYS, empty);
    }
    for key in [LIST_TYPE, MAP_TYPE] {
        if get(m, key).is_some() {
            forbid(out, key, undefined);
        }
    }
    if !list(m, VALIDATIONS).is_empty() {
        forbid(out, VALIDATIONS, empty);
    }
    if properties(m).contains_key("metadata") {
        out.push(FieldError::forbidden(
            prop(p, "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// Every field or array a value validation mentions must exist in the structural part. As upstream, for
/// the value validations of the root.
fn complete_value_validation(
    v: &Map<String, Value>,
    s: &Map<String, Value>,
    sp: &str,
    vp: &str,
    out: &mut Vec<FieldError>,
) {
    if let Some(not) = get(v, "not") {
        complete_nested(not, Some(s), sp, &format!("{vp}.not"), out);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, branch) in list(v, key).iter().enumerate() {
            complete_nested(branch, Some(s), sp, &format!("{vp}.{key}[{i}]"), out);
        }
    }
}

fn complete_nested(
    v: &Value,
    s: Option<&Map<String, Value>>,
    sp: &str,
    vp: &str,
    out: &mut Vec<FieldError>,
) {
    let Some(vm) = v.as_object() else {
        return;
    };
    let Some(s) = s else {
        out.push(FieldError::required(
            sp,
            format!("because it is defined in {vp}"),
        ));
        return;
    };
    complete_value_validation(vm, s, sp, vp, out);
    if let Some(items) = get(vm, "items") {
        complete_nested(
            items,
            object(s, "items"),
            &format!("{sp}.items"),
            &format!("{vp}.items"),
            out,
        );
    }
    for (k, field) in properties(vm) {
        match properties(s).get(k) {
            Some(sf) => complete_nested(field, sf.as_object(), &prop(sp, k), &prop(vp, k), out),
            None => out.push(FieldError::required(
                prop(sp, k),
                format!("because it is defined in {}", prop(vp, k)),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Defaults: pruned, and valid against their own schema.

fn defaults(s: &Value, p: &str, inside_meta: bool, resource_root: bool, out: &mut Vec<FieldError>) {
    let Some(m) = s.as_object() else {
        return;
    };
    let embedded = resource_root || flag(m, EMBEDDED);
    let inside_meta = inside_meta && !embedded;
    if let Some(default) = get(m, "default") {
        default_errors(s, default, p, inside_meta, embedded, out);
    }
    if let Some(items @ Value::Object(_)) = get(m, "items") {
        defaults(items, &format!("{p}.items"), inside_meta, false, out);
    }
    for (k, v) in properties(m) {
        let sub_inside_meta = inside_meta || (embedded && is_meta(k));
        defaults(v, &prop(p, k), sub_inside_meta, false, out);
    }
}

fn default_errors(
    s: &Value,
    default: &Value,
    p: &str,
    inside_meta: bool,
    embedded: bool,
    out: &mut Vec<FieldError>,
) {
    let Ok(mut node) = Node::compile(s) else {
        return;
    };
    node.embedded = embedded;
    let prefix = format!("{p}.default");
    if !inside_meta {
        let mut pruned = default.clone();
        let mut unknown = Vec::new();
        prune(
            &mut pruned,
            Some(&node),
            embedded,
            &Path::ROOT,
            &mut unknown,
        );
        if !unknown.is_empty() {
            out.push(FieldError::invalid(
                prefix.as_str(),
                default.clone(),
                "must not have unknown fields",
            ));
        }
    }
    let validator = Validator {
        prefix: &prefix,
        resource_root: false,
    };
    validator.check(&node, default, &Path::ROOT, out);
}

// ---------------------------------------------------------------------------------------------------------
// OpenAPI restrictions (upstream's ValidateCustomResourceDefinitionOpenAPISchema and its
// specStandardValidatorV3).

#[derive(Debug, Clone)]
struct Ssv {
    allow_defaults: bool,
    reason: String,
    inside_meta: bool,
}

impl Ssv {
    fn forbid_defaults(&self, reason: &str) -> Ssv {
        Ssv {
            allow_defaults: false,
            reason: reason.to_owned(),
            inside_meta: self.inside_meta,
        }
    }

    fn validate(&self, m: &Map<String, Value>, p: &str, out: &mut Vec<FieldError>) {
        let ty = text(m, "type");
        if !ty.is_empty() && !OPENAPI_TYPES.contains(&ty) {
            out.push(FieldError::not_supported(
                format!("{p}.type"),
                ty,
                OPENAPI_TYPES,
            ));
        }
        if get(m, "default").is_some() && !self.allow_defaults {
            let detail = if self.reason.is_empty() {
                "must not be set".to_owned()
            } else {
                format!("must not be set {}", self.reason)
            };
            out.push(FieldError::forbidden(format!("{p}.default"), detail));
        }
        let forbid = |out: &mut Vec<FieldError>, key: &str, detail: &str| {
            out.push(FieldError::forbidden(format!("{p}.{key}"), detail));
        };
        if !text(m, "id").is_empty() {
            forbid(out, "id", "id is not supported");
        }
        if get(m, "additionalItems").is_some() {
            forbid(out, "additionalItems", "additionalItems is not supported");
        }
        if object(m, "patternProperties").is_some_and(|o| !o.is_empty()) {
            forbid(
                out,
                "patternProperties",
                "patternProperties is not supported",
            );
        }
        if object(m, "definitions").is_some_and(|o| !o.is_empty()) {
            forbid(out, "definitions", "definitions is not supported");
        }
        if get(m, "dependencies").is_some() {
            forbid(out, "dependencies", "dependencies is not supported");
        }
        if get(m, "$ref").is_some() {
            forbid(out, "$ref", "$ref is not supported");
        }
        if ty == "null" {
            forbid(
                out,
                "type",
                "type cannot be set to null, use nullable as an alternative",
            );
        }
        if get(m, "items")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            forbid(
                out,
                "items",
                "items must be a schema object and not an array",
            );
        }
        if self.inside_meta && flag(m, EMBEDDED) {
            forbid(out, EMBEDDED, "must not be used inside of resource meta");
        }
    }
}

fn openapi(s: &Value, p: &str, ssv: &Ssv, is_root: bool, out: &mut Vec<FieldError>) {
    let Some(m) = s.as_object() else {
        return;
    };
    ssv.validate(m, p, out);
    let ty = text(m, "type");
    let embedded = flag(m, EMBEDDED);
    if flag(m, "uniqueItems") {
        out.push(FieldError::forbidden(
            format!("{p}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let props = properties(m);
    if let Some(ap) = get(m, "additionalProperties") {
        if !props.is_empty() && (ap == &Value::Bool(false) || ap.is_object()) {
            out.push(FieldError::forbidden(
                format!("{p}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if ap.is_object() {
            let sub = if ssv.inside_meta {
                ssv.forbid_defaults("inside additionalProperties applying to object metadata")
            } else {
                ssv.clone()
            };
            openapi(ap, &format!("{p}.additionalProperties"), &sub, false, out);
        }
    }
    for (k, v) in props {
        let mut sub = ssv.clone();
        if (is_root || embedded) && is_meta(k) {
            sub.inside_meta = true;
            if is_root {
                sub = sub.forbid_defaults(&format!("in top-level {k}"));
            }
        }
        openapi(v, &prop(p, k), &sub, false, out);
    }
    if let Some(not) = get(m, "not") {
        openapi(not, &format!("{p}.not"), ssv, false, out);
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for (i, v) in list(m, key).iter().enumerate() {
            openapi(v, &format!("{p}.{key}[{i}]"), ssv, false, out);
        }
    }
    match get(m, "items") {
        Some(items @ Value::Object(_)) => openapi(items, &format!("{p}.items"), ssv, false, out),
        Some(Value::Array(all)) => {
            for (i, v) in all.iter().enumerate() {
                openapi(v, &format!("{p}.items[{i}]"), ssv, false, out);
            }
        }
        _ => {}
    }
    if get(m, PRESERVE) == Some(&Value::Bool(false)) {
        out.push(FieldError::invalid(
            format!("{p}.{PRESERVE}"),
            false,
            "must be true or undefined",
        ));
    }
    map_and_list_types(m, ty, p, out);
    rules(m, p, out);
}

fn type_must_be(ty: &str, want: &str, detail: &str, p: &str, out: &mut Vec<FieldError>) {
    if ty == want {
        return;
    }
    out.push(if ty.is_empty() {
        FieldError::required(format!("{p}.type"), detail)
    } else {
        FieldError::invalid(format!("{p}.type"), ty, detail)
    });
}

fn map_and_list_types(m: &Map<String, Value>, ty: &str, p: &str, out: &mut Vec<FieldError>) {
    if let Some(map_type) = get(m, MAP_TYPE) {
        let map_type = map_type.as_str().unwrap_or("");
        type_must_be(
            ty,
            "object",
            "must be object if x-kubernetes-map-type is specified",
            p,
            out,
        );
        if map_type != "atomic" && map_type != "granular" {
            out.push(FieldError::not_supported(
                format!("{p}.{MAP_TYPE}"),
                map_type,
                &["atomic", "granular"],
            ));
        }
    }
    let list_type = get(m, LIST_TYPE).map(|v| v.as_str().unwrap_or(""));
    let items = object(m, "items");
    if let Some(list_type) = list_type {
        if ty != "array" {
            type_must_be(
                ty,
                "array",
                "must be array if x-kubernetes-list-type is specified",
                p,
                out,
            );
        } else if let (Some(is), "set") = (items, list_type) {
            let detail = "must be atomic as item of a list with x-kubernetes-list-type=set";
            match text(is, "type") {
                "array" => {
                    if let Some(inner) = get(is, LIST_TYPE).filter(|t| t.as_str() != Some("atomic"))
                    {
                        out.push(FieldError::invalid(
                            format!("{p}.items.{LIST_TYPE}"),
                            inner.clone(),
                            detail,
                        ));
                    }
                }
                "object" if text(is, MAP_TYPE) != "atomic" => {
                    out.push(FieldError::invalid(
                        format!("{p}.items.{MAP_TYPE}"),
                        get(is, MAP_TYPE).cloned().unwrap_or(Value::Null),
                        detail,
                    ));
                }
                _ => {}
            }
        }
        if !["atomic", "set", "map"].contains(&list_type) {
            out.push(FieldError::not_supported(
                format!("{p}.{LIST_TYPE}"),
                list_type,
                &["atomic", "set", "map"],
            ));
        }
    }
    let keys: Vec<&str> = list(m, LIST_MAP_KEYS)
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let keys_value = || Value::from(keys.iter().map(|k| Value::from(*k)).collect::<Vec<_>>());
    if !keys.is_empty() {
        let detail = "must be map if x-kubernetes-list-map-keys is non-empty";
        match list_type {
            None => out.push(FieldError::required(format!("{p}.{LIST_TYPE}"), detail)),
            Some(t) if t != "map" => {
                out.push(FieldError::invalid(format!("{p}.{LIST_TYPE}"), t, detail));
            }
            Some(_) => {}
        }
    }
    if list_type == Some("map") {
        if keys.is_empty() {
            out.push(FieldError::required(
                format!("{p}.{LIST_MAP_KEYS}"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match get(m, "items") {
            None => out.push(FieldError::required(
                format!("{p}.items"),
                "must have a schema if x-kubernetes-list-type is map",
            )),
            Some(Value::Object(is)) => {
                let item_type = text(is, "type");
                if item_type != "object" {
                    out.push(FieldError::invalid(
                        format!("{p}.items.type"),
                        item_type,
                        "must be object if parent array's x-kubernetes-list-type is map",
                    ));
                } else {
                    let mut seen = BTreeSet::new();
                    for k in &keys {
                        match properties(is).get(*k).and_then(Value::as_object) {
                            Some(ks) => {
                                if matches!(text(ks, "type"), "array" | "object") {
                                    out.push(FieldError::invalid(
                                        format!("{}.type", prop(&format!("{p}.items"), k)),
                                        item_type,
                                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                                    ));
                                }
                            }
                            None => out.push(FieldError::invalid(
                                format!("{p}.{LIST_MAP_KEYS}"),
                                keys_value(),
                                "entries must all be names of item properties",
                            )),
                        }
                        if !seen.insert(*k) {
                            out.push(FieldError::invalid(
                                format!("{p}.{LIST_MAP_KEYS}"),
                                keys_value(),
                                "must not contain duplicate entries",
                            ));
                        }
                    }
                }
            }
            Some(other) => out.push(FieldError::invalid(
                format!("{p}.items"),
                other.clone(),
                "must only have a single schema if x-kubernetes-list-type is map",
            )),
        }
    }
    // upstream's validateMapListKeysMapSet
    if let (Some(is), Some(list_type @ ("set" | "map"))) = (items, list_type) {
        if flag(is, "nullable") {
            out.push(FieldError::forbidden(
                format!("{p}.items.nullable"),
                format!("cannot be nullable when x-kubernetes-list-type is {list_type}"),
            ));
        }
        if list_type == "map" {
            let required: Vec<&str> = list(is, "required")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            for k in &keys {
                let Some(ks) = properties(is).get(*k).and_then(Value::as_object) else {
                    continue;
                };
                let at = prop(&format!("{p}.items"), k);
                if !required.contains(k) && get(ks, "default").is_none() {
                    out.push(FieldError::required(
                        format!("{at}.default"),
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    ));
                }
                if flag(ks, "nullable") {
                    out.push(FieldError::forbidden(
                        format!("{at}.nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    ));
                }
            }
        }
    }
}

/// The static checks of `x-kubernetes-validations` rules (which are accepted, not evaluated).
fn rules(m: &Map<String, Value>, p: &str, out: &mut Vec<FieldError>) {
    let newline = |s: &str| s.contains(['\n', '\r']);
    for (i, rule) in list(m, VALIDATIONS).iter().enumerate() {
        let Some(r) = rule.as_object() else {
            continue;
        };
        let rp = format!("{p}.{VALIDATIONS}[{i}]");
        let rule_text = text(r, "rule").trim();
        let message = text(r, "message");
        let trimmed_message = message.trim();
        if rule_text.is_empty() {
            out.push(FieldError::required(
                format!("{rp}.rule"),
                "rule is not specified",
            ));
        } else if !message.is_empty() && trimmed_message.is_empty() {
            out.push(FieldError::invalid(
                format!("{rp}.message"),
                message,
                "message must be non-empty if specified",
            ));
        } else if newline(trimmed_message) {
            out.push(FieldError::invalid(
                format!("{rp}.message"),
                message,
                "message must not contain line breaks",
            ));
        } else if newline(rule_text) && trimmed_message.is_empty() {
            out.push(FieldError::required(
                format!("{rp}.message"),
                "message must be specified if rule contains line breaks",
            ));
        }
        let expression = text(r, "messageExpression");
        if !expression.is_empty() && expression.trim().is_empty() {
            out.push(FieldError::required(
                format!("{rp}.messageExpression"),
                "messageExpression must be non-empty if specified",
            ));
        }
        if let Some(reason) = get(r, "reason").and_then(Value::as_str)
            && !RULE_REASONS.contains(&reason)
        {
            out.push(FieldError::not_supported(
                format!("{rp}.reason"),
                reason,
                RULE_REASONS,
            ));
        }
        let field_path = text(r, "fieldPath");
        if !field_path.is_empty() && field_path.trim().is_empty() {
            out.push(FieldError::invalid(
                format!("{rp}.fieldPath"),
                field_path,
                "fieldPath must be non-empty if specified",
            ));
        }
        if newline(field_path) {
            out.push(FieldError::invalid(
                format!("{rp}.fieldPath"),
                field_path,
                "fieldPath must not contain line breaks",
            ));
        }
    }
}

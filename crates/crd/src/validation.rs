//! Validation and defaulting of CustomResourceDefinitions themselves (upstream's
//! `ValidateCustomResourceDefinition`, `ValidateCustomResourceDefinitionUpdate` and the v1 defaults), with
//! upstream's paths and messages. Paths under `spec.conversion` use upstream's internal names
//! (`webhookClientConfig`, `conversionReviewVersions`) as its messages do. Conversion webhooks are
//! validated like upstream's, but Gantry never calls them.

use std::collections::BTreeSet;

use gantry_api::field::FieldError;
use gantry_api::validation::{is_dns1035_label, is_dns1123_subdomain};
use serde_json::{Value, json};

use crate::{JsonPath, Schema};

static NULL: Value = Value::Null;

fn at<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&NULL)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn is_true(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

const IMMUTABLE: &str = "field is immutable";

/// upstream's v1 defaults of a CRD: `names.singular` (the lowercase kind), `names.listKind`
/// (`<kind>List`), `conversion.strategy: None` without a conversion, port 443 for a webhook service.
/// `status` (accepted names, stored versions) is the server's to set, not a default.
pub fn apply_defaults(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let empty = |v: Option<&Value>| v.and_then(Value::as_str).is_none_or(str::is_empty);
        if !kind.is_empty() {
            if empty(names.get("singular")) {
                names.insert("singular".to_owned(), kind.to_lowercase().into());
            }
            if empty(names.get("listKind")) {
                names.insert("listKind".to_owned(), format!("{kind}List").into());
            }
        }
    }
    match spec.get_mut("conversion") {
        None | Some(Value::Null) => {
            spec.insert("conversion".to_owned(), json!({"strategy": "None"}));
        }
        Some(conversion) => {
            if let Some(service) = conversion
                .pointer_mut("/webhook/clientConfig/service")
                .and_then(Value::as_object_mut)
                && service.get("port").is_none_or(Value::is_null)
            {
                service.insert("port".to_owned(), 443.into());
            }
        }
    }
}

/// What validation may relax on update for objects stored under older rules.
#[derive(Debug, Clone, Copy)]
struct Options {
    require_schemas: bool,
}

/// Everything wrong with a new CRD (after defaulting).
pub fn validate_create(crd: &Value) -> Vec<FieldError> {
    let spec = at(crd, "spec");
    let mut errs = Vec::new();
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let required = format!(
        "{}.{}",
        text(at(spec, "names"), "plural"),
        text(spec, "group")
    );
    if !name.is_empty() && name != required {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            r#"must be spec.names.plural+"."+spec.group"#,
        ));
    }
    errs.extend(validate_spec(
        spec,
        Options {
            require_schemas: true,
        },
    ));
    errs.extend(validate_status(crd));
    errs.extend(preserve_unknown_fields(crd, None));
    errs
}

/// Everything wrong with an update of `old` to `new`. Unlike upstream, `spec.scope` never changes (upstream
/// allows it until the CRD is established).
pub fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let spec = at(new, "spec");
    let old_spec = at(old, "spec");
    let options = Options {
        // Upstream does not tighten validation of what is already stored.
        require_schemas: list(old_spec, "versions").iter().all(has_schema),
    };
    let mut errs = validate_spec(spec, options);
    let immutable = |errs: &mut Vec<FieldError>, path: &str, new: &Value, old: &Value| {
        if new != old {
            errs.push(FieldError::invalid(path, new.clone(), IMMUTABLE));
        }
    };
    immutable(
        &mut errs,
        "spec.scope",
        at(spec, "scope"),
        at(old_spec, "scope"),
    );
    if established(old) {
        immutable(
            &mut errs,
            "spec.names.kind",
            at(at(spec, "names"), "kind"),
            at(at(old_spec, "names"), "kind"),
        );
    }
    immutable(
        &mut errs,
        "spec.group",
        at(spec, "group"),
        at(old_spec, "group"),
    );
    immutable(
        &mut errs,
        "spec.names.plural",
        at(at(spec, "names"), "plural"),
        at(at(old_spec, "names"), "plural"),
    );
    errs.extend(validate_status(new));
    errs.extend(preserve_unknown_fields(new, Some(old)));
    errs
}

fn established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| text(c, "type") == "Established" && text(c, "status") == "True")
        })
}

fn has_schema(version: &Value) -> bool {
    version
        .pointer("/schema/openAPIV3Schema")
        .is_some_and(|s| !s.is_null())
}

fn preserve_unknown_fields(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let preserves =
        |crd: &Value| crd.pointer("/spec/preserveUnknownFields") == Some(&Value::Bool(true));
    if old.is_some_and(preserves) || !preserves(crd) {
        return Vec::new();
    }
    vec![FieldError::invalid(
        "spec.preserveUnknownFields",
        true,
        "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
    )]
}

fn validate_status(crd: &Value) -> Vec<FieldError> {
    match crd.pointer("/status/acceptedNames") {
        Some(names) if names.is_object() => validate_names(names, "status.acceptedNames"),
        _ => Vec::new(),
    }
}

fn enum_string(path: &str, value: &str, accepted: &[&str], errs: &mut Vec<FieldError>) {
    if value.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if !accepted.contains(&value) {
        errs.push(FieldError::not_supported(path, value, accepted));
    }
}

fn validate_spec(spec: &Value, options: Options) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = text(spec, "group");
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if let msgs @ [_, ..] = is_dns1123_subdomain(group).as_slice() {
        errs.push(FieldError::invalid("spec.group", group, msgs.join(",")));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    enum_string(
        "spec.scope",
        text(spec, "scope"),
        &["Cluster", "Namespaced"],
        &mut errs,
    );

    let versions = list(spec, "versions");
    if options.require_schemas {
        for (i, version) in versions.iter().enumerate() {
            if !has_schema(version) {
                errs.push(FieldError::required(
                    format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    "schemas are required",
                ));
            }
        }
    }
    let preserve = is_true(spec, "preserveUnknownFields");
    if preserve
        && versions.iter().any(|v| {
            v.pointer("/schema/openAPIV3Schema")
                .is_some_and(has_default)
        })
    {
        errs.push(FieldError::invalid(
            "spec.preserveUnknownFields",
            true,
            "must be false in order to use defaults in the schema",
        ));
    }

    let mut storage = 0;
    let mut names = BTreeSet::new();
    let mut unique = true;
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        if is_true(version, "storage") {
            storage += 1;
        }
        let name = text(version, "name");
        unique &= names.insert(name);
        let msgs = is_dns1035_label(name);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.name"),
                name,
                msgs.join(","),
            ));
        }
        validate_version(version, &path, &mut errs);
    }
    let all = || Value::Array(versions.to_vec());
    if !unique {
        errs.push(FieldError::invalid(
            "spec.versions",
            all(),
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            all(),
            "must have exactly one version marked as storage version",
        ));
    }
    // Not upstream's: a CRD nothing is served of would be useless.
    if !versions.is_empty() && !versions.iter().any(|v| is_true(v, "served")) {
        errs.push(FieldError::invalid(
            "spec.versions",
            all(),
            "must have at least one served version",
        ));
    }

    let names = at(spec, "names");
    for key in ["plural", "singular", "kind", "listKind"] {
        if text(names, key).is_empty() {
            errs.push(FieldError::required(format!("spec.names.{key}"), ""));
        }
    }
    errs.extend(validate_names(names, "spec.names"));

    let conversion = at(spec, "conversion");
    let strategy = text(conversion, "strategy");
    if preserve && !conversion.is_null() && strategy != "None" {
        errs.push(FieldError::invalid(
            "spec.conversion.strategy",
            strategy,
            "must be None if spec.preserveUnknownFields is true",
        ));
    }
    validate_conversion(conversion, &mut errs);
    errs
}

/// Whether a raw schema has a `default` anywhere.
fn has_default(schema: &Value) -> bool {
    let Some(m) = schema.as_object() else {
        return false;
    };
    if m.get("default").is_some_and(|d| !d.is_null()) {
        return true;
    }
    let maps = [
        "properties",
        "patternProperties",
        "definitions",
        "dependencies",
    ];
    let singles = ["additionalProperties", "not", "additionalItems", "items"];
    let lists = ["allOf", "anyOf", "oneOf", "items"];
    maps.iter()
        .filter_map(|k| m.get(*k).and_then(Value::as_object))
        .any(|o| o.values().any(has_default))
        || singles.iter().filter_map(|k| m.get(*k)).any(has_default)
        || lists
            .iter()
            .filter_map(|k| m.get(*k).and_then(Value::as_array))
            .any(|a| a.iter().any(has_default))
}

fn validate_names(names: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in ["plural", "singular"] {
        let value = text(names, key);
        let msgs = is_dns1035_label(value);
        if !value.is_empty() && !msgs.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.{key}"),
                value,
                msgs.join(","),
            ));
        }
    }
    for key in ["kind", "listKind"] {
        let value = text(names, key);
        let msgs = is_dns1035_label(&value.to_lowercase());
        if !value.is_empty() && !msgs.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.{key}"),
                value,
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    msgs.join(",")
                ),
            ));
        }
    }
    for (i, short) in list(names, "shortNames").iter().enumerate() {
        let short = short.as_str().unwrap_or("");
        let msgs = is_dns1035_label(short);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.shortNames[{i}]"),
                short,
                msgs.join(","),
            ));
        }
    }
    let kind = text(names, "kind");
    let list_kind = text(names, "listKind");
    if !kind.is_empty() && kind == list_kind {
        errs.push(FieldError::invalid(
            format!("{path}.listKind"),
            list_kind,
            "kind and listKind may not be the same",
        ));
    }
    for (i, category) in list(names, "categories").iter().enumerate() {
        let category = category.as_str().unwrap_or("");
        let msgs = is_dns1035_label(category);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.categories[{i}]"),
                category,
                msgs.join(","),
            ));
        }
    }
    errs
}

/// JSONSchemaProps' fields in Go's order, for the status-subresource rule on the root schema.
const SCHEMA_FIELDS: &[&str] = &[
    "id",
    "$schema",
    "$ref",
    "description",
    "type",
    "nullable",
    "format",
    "title",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "properties",
    "additionalProperties",
    "patternProperties",
    "dependencies",
    "additionalItems",
    "definitions",
    "externalDocs",
    "example",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

const ROOT_FIELDS_WITH_STATUS: &[&str] = &[
    "description",
    "type",
    "format",
    "title",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "required",
    "items",
    "properties",
    "externalDocs",
    "example",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
];

const ROOT_FIELDS_MESSAGE: &str = "only [Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations] fields are allowed at the root of the schema if the status subresource is enabled";

fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) => true,
    }
}

fn validate_version(version: &Value, path: &str, errs: &mut Vec<FieldError>) {
    deprecation_warning(version, path, errs);
    if let Some(schema) = version
        .pointer("/schema/openAPIV3Schema")
        .filter(|s| !s.is_null())
    {
        let schema_path = format!("{path}.schema.openAPIV3Schema");
        let status = version
            .pointer("/subresources/status")
            .is_some_and(|s| !s.is_null());
        if status {
            root_fields_with_status(schema, &schema_path, errs);
        }
        if is_true(schema, "nullable") {
            errs.push(FieldError::forbidden(
                format!("{schema_path}.nullable"),
                "nullable cannot be true at the root",
            ));
        }
        errs.extend(Schema::structural_errors(schema, &schema_path));
    }
    if let Some(scale) = version
        .pointer("/subresources/scale")
        .filter(|s| !s.is_null())
    {
        let scale_path = format!("{path}.subresources.scale");
        for (key, prefix, under) in [
            ("specReplicasPath", ".spec.", ".spec"),
            ("statusReplicasPath", ".status.", ".status"),
        ] {
            let value = text(scale, key);
            let field = format!("{scale_path}.{key}");
            if value.is_empty() {
                errs.push(FieldError::required(field, ""));
            } else if let Some(e) = simple_json_path(value, &field) {
                errs.push(e);
            } else if !value.starts_with(prefix) {
                errs.push(FieldError::invalid(
                    field,
                    value,
                    format!("should be a json path under {under}"),
                ));
            } else if let Some(e) = dot_notation(value, &field) {
                errs.push(e);
            }
        }
        let selector = text(scale, "labelSelectorPath");
        if !selector.is_empty() {
            let field = format!("{scale_path}.labelSelectorPath");
            if let Some(e) = simple_json_path(selector, &field) {
                errs.push(e);
            } else if !selector.starts_with(".spec.") && !selector.starts_with(".status.") {
                errs.push(FieldError::invalid(
                    field,
                    selector,
                    "should be a json path under either .spec or .status",
                ));
            } else if let Some(e) = dot_notation(selector, &field) {
                errs.push(e);
            }
        }
    }
    for (i, column) in list(version, "additionalPrinterColumns").iter().enumerate() {
        validate_column(
            column,
            &format!("{path}.additionalPrinterColumns[{i}]"),
            errs,
        );
    }
}

fn deprecation_warning(version: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(warning) = version.get("deprecationWarning").filter(|w| !w.is_null()) else {
        return;
    };
    let field = format!("{path}.deprecationWarning");
    if !is_true(version, "deprecated") {
        errs.push(FieldError::invalid(
            field,
            warning.clone(),
            "can only be set for deprecated versions",
        ));
        return;
    }
    let warning = warning.as_str().unwrap_or("");
    if warning.len() > 256 {
        errs.push(FieldError::invalid(
            field.as_str(),
            warning,
            "must be <= 256 characters long",
        ));
    }
    if warning.is_empty() {
        errs.push(FieldError::invalid(
            field.as_str(),
            warning,
            "must not be an empty string",
        ));
    }
    if let Some((i, _)) = warning
        .char_indices()
        .find(|(_, c)| c.is_control() || (c.is_whitespace() && *c != ' '))
    {
        errs.push(FieldError::invalid(
            field.as_str(),
            warning,
            format!(
                "must only contain printable UTF-8 characters; non-printable character found at index {i}"
            ),
        ));
    }
}

fn root_fields_with_status(schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for key in SCHEMA_FIELDS {
        let Some(value) = schema.get(*key).filter(|v| is_set(v)) else {
            continue;
        };
        if *key == "type" {
            if value.as_str() != Some("object") {
                errs.push(FieldError::invalid(
                    format!("{path}.type"),
                    value.clone(),
                    r#"only "object" is allowed as the type at the root of the schema if the status subresource is enabled"#,
                ));
                return;
            }
            continue;
        }
        if !ROOT_FIELDS_WITH_STATUS.contains(key) {
            errs.push(FieldError::invalid(
                path,
                schema.clone(),
                ROOT_FIELDS_MESSAGE,
            ));
            return;
        }
    }
}

/// upstream's `validateSimpleJSONPath`.
fn simple_json_path(value: &str, field: &str) -> Option<FieldError> {
    if value.is_empty() {
        Some(FieldError::invalid(field, value, "must not be empty"))
    } else if !value.starts_with('.') {
        Some(FieldError::invalid(
            field,
            value,
            "must be a simple json path starting with .",
        ))
    } else {
        None
    }
}

/// Scale paths are read and written as a chain of fields (not upstream's check: it would fail later).
fn dot_notation(value: &str, field: &str) -> Option<FieldError> {
    let simple = JsonPath::parse(value)
        .ok()
        .and_then(|p| p.fields().map(|f| !f.is_empty()))
        == Some(true);
    (!simple).then(|| FieldError::invalid(field, value, "must be a json path in the dot notation"))
}

const COLUMN_TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];
const COLUMN_FORMATS: &[&str] = &[
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
];

fn validate_column(column: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if text(column, "name").is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    }
    let types = format!("must be one of {}", COLUMN_TYPES.join(","));
    let ty = text(column, "type");
    if ty.is_empty() {
        errs.push(FieldError::required(format!("{path}.type"), types));
    } else if !COLUMN_TYPES.contains(&ty) {
        errs.push(FieldError::invalid(format!("{path}.type"), ty, types));
    }
    let format = text(column, "format");
    if !format.is_empty() && !COLUMN_FORMATS.contains(&format) {
        errs.push(FieldError::invalid(
            format!("{path}.format"),
            format,
            format!("must be one of {}", COLUMN_FORMATS.join(",")),
        ));
    }
    let json_path = text(column, "jsonPath");
    let field = format!("{path}.JSONPath");
    if json_path.is_empty() {
        errs.push(FieldError::required(field, ""));
    } else if let Some(e) = simple_json_path(json_path, &field) {
        errs.push(e);
    } else if let Err(e) = JsonPath::parse(json_path) {
        // Not upstream's check: its table printer would fail on every request instead.
        errs.push(FieldError::invalid(
            field,
            json_path,
            format!("must be a valid JSONPath expression: {e}"),
        ));
    }
}

fn validate_conversion(conversion: &Value, errs: &mut Vec<FieldError>) {
    if conversion.is_null() {
        return;
    }
    let strategy = text(conversion, "strategy");
    enum_string(
        "spec.conversion.strategy",
        strategy,
        &["None", "Webhook"],
        errs,
    );
    let webhook = at(conversion, "webhook");
    let client = at(webhook, "clientConfig");
    let review = list(webhook, "conversionReviewVersions");
    let client_path = "spec.conversion.webhookClientConfig";
    let review_path = "spec.conversion.conversionReviewVersions";
    if strategy != "Webhook" {
        let detail = "should not be set when strategy is not set to Webhook";
        if !client.is_null() {
            errs.push(FieldError::forbidden(client_path, detail));
        }
        if !review.is_empty() {
            errs.push(FieldError::forbidden(review_path, detail));
        }
        return;
    }
    if client.is_null() {
        errs.push(FieldError::required(
            client_path,
            "required when strategy is set to Webhook",
        ));
    } else {
        let url = client.get("url").filter(|u| !u.is_null());
        let service = client.get("service").filter(|s| !s.is_null());
        match (url, service) {
            (Some(url), None) => {
                webhook_url(
                    url.as_str().unwrap_or(""),
                    &format!("{client_path}.url"),
                    errs,
                );
            }
            (None, Some(service)) => {
                webhook_service(service, &format!("{client_path}.service"), errs);
            }
            _ => errs.push(FieldError::required(
                client_path,
                "exactly one of url or service is required",
            )),
        }
    }
    if review.is_empty() {
        errs.push(FieldError::required(review_path, ""));
        return;
    }
    let mut seen = BTreeSet::new();
    let mut accepted = false;
    for (i, version) in review.iter().enumerate() {
        let version = version.as_str().unwrap_or("");
        let field = format!("{review_path}[{i}]");
        if !seen.insert(version) {
            errs.push(FieldError::invalid(field, version, "duplicate version"));
            continue;
        }
        for msg in is_dns1035_label(version) {
            errs.push(FieldError::invalid(field.as_str(), version, msg));
        }
        accepted |= matches!(version, "v1" | "v1beta1");
    }
    if !accepted {
        errs.push(FieldError::invalid(
            review_path,
            Value::Array(review.to_vec()),
            "must include at least one of v1, v1beta1",
        ));
    }
}

/// upstream's `ValidateWebhookURL` with https forced.
fn webhook_url(url: &str, path: &str, errs: &mut Vec<FieldError>) {
    const FORM: &str = "; desired format: https://host[/path]";
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => (url.split_once(':').map_or("", |(s, _)| s), ""),
    };
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = rest.split('/').next().unwrap_or("");
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    if scheme != "https" {
        errs.push(FieldError::invalid(
            path,
            scheme,
            format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    if host.is_empty() {
        errs.push(FieldError::invalid(
            path,
            host,
            format!("host must be specified{FORM}"),
        ));
    }
    if let Some(user) = user {
        errs.push(FieldError::invalid(
            path,
            user,
            "user information is not permitted in the URL",
        ));
    }
    if !fragment.is_empty() {
        errs.push(FieldError::invalid(
            path,
            fragment,
            "fragments are not permitted in the URL",
        ));
    }
    if !query.is_empty() {
        errs.push(FieldError::invalid(
            path,
            query,
            "query parameters are not permitted in the URL",
        ));
    }
}

/// upstream's `ValidateWebhookService`.
fn webhook_service(service: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if text(service, "name").is_empty() {
        errs.push(FieldError::required(
            format!("{path}.name"),
            "service name is required",
        ));
    }
    if text(service, "namespace").is_empty() {
        errs.push(FieldError::required(
            format!("{path}.namespace"),
            "service namespace is required",
        ));
    }
    let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(
            format!("{path}.port"),
            port,
            "port is not valid: must be between 1 and 65535, inclusive",
        ));
    }
    let url_path = text(service, "path");
    if url_path.is_empty() || url_path == "/" {
        return;
    }
    let field = format!("{path}.path");
    if url_path == "//" {
        errs.push(FieldError::invalid(
            field,
            url_path,
            "segment[0] may not be empty",
        ));
        return;
    }
    let Some(segments) = url_path.strip_prefix('/') else {
        errs.push(FieldError::invalid(
            field,
            url_path,
            "must start with a '/'",
        ));
        return;
    };
    let segments = segments.strip_suffix('/').unwrap_or(segments);
    for (i, segment) in segments.split('/').enumerate() {
        if segment.is_empty() {
            errs.push(FieldError::invalid(
                field.as_str(),
                url_path,
                format!("segment[{i}] may not be empty"),
            ));
            continue;
        }
        for msg in is_dns1123_subdomain(segment) {
            errs.push(FieldError::invalid(
                field.as_str(),
                url_path,
                format!("segment[{i}]: {msg}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests;

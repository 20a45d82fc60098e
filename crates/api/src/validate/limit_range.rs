//! LimitRanges (`ValidateLimitRange`): each type once, standard types or qualified names, resource names
//! valid for the type, no defaults for `Pod`, min ≤ default request ≤ default ≤ max, ratios of at least 1
//! and at most max/min, and defaults equal to default requests for resources that cannot be overcommitted.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::common::{Errors, Path, list, qualified_name, str_at};
use super::container::{container_resource_name, overcommit_allowed, resource_name};
use super::meta::{self, NameRule};
use super::quantity::Quantity;
use crate::field::FieldError;

/// The limit kinds upstream knows (`IsStandardLimitRangeType`).
const STANDARD_TYPES: &[&str] = &["Pod", "Container", "PersistentVolumeClaim"];

/// One limit's quantities of one field (`max`, `min`, ...), by resource.
fn quantities(
    item: &Value,
    field: &str,
    path: &Path,
    errs: &mut Errors,
) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    let Some(map) = item.get(field).and_then(Value::as_object) else {
        return out;
    };
    for (name, raw) in map {
        match Quantity::from_json(raw) {
            Ok(q) => {
                out.insert(name.clone(), q);
            }
            Err(e) => errs.push(FieldError::invalid(
                path.child(field).key(name),
                raw.clone(),
                e,
            )),
        }
    }
    out
}

/// `ValidateLimitRange`.
pub(crate) fn create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let limits_path = Path::new("spec").child("limits");
    let mut seen_types = BTreeSet::new();
    for (i, item) in list(spec, "limits").iter().enumerate() {
        let path = limits_path.index(i);
        let kind = str_at(item, "type");
        errs.extend(type_name(kind, &path.child("type")));
        if !seen_types.insert(kind.to_owned()) {
            errs.push(FieldError::duplicate(path.child("type"), kind));
        }
        let name_errors = |name: &str, path: &Path| match kind {
            "Pod" | "Container" => container_resource_name(name, path),
            _ => resource_name(name, path),
        };
        let mut keys = BTreeSet::new();
        let mut fields: BTreeMap<&str, BTreeMap<String, Quantity>> = BTreeMap::new();
        for field in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            if kind == "Pod" && matches!(field, "default" | "defaultRequest") {
                let given = item
                    .get(field)
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty());
                if given {
                    errs.push(FieldError::forbidden(
                        path.child(field),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
                continue;
            }
            let values = quantities(item, field, &path, &mut errs);
            for name in values.keys() {
                errs.extend(name_errors(name, &path.child(field).key(name)));
                keys.insert(name.clone());
            }
            fields.insert(field, values);
        }
        if kind == "PersistentVolumeClaim"
            && !fields["min"].contains_key("storage")
            && !fields["max"].contains_key("storage")
        {
            errs.push(FieldError::required(
                path.child("limits"),
                "either minimum or maximum storage value is required, but neither was provided",
            ));
        }
        for name in &keys {
            errs.extend(bounds(&fields, name, &path));
        }
    }
    errs
}

/// `ValidateLimitRange` of an update: the same rules (a LimitRange has nothing immutable).
pub(crate) fn update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(
        create(new)
            .into_iter()
            .filter(|e| !e.field.starts_with("metadata")),
    );
    errs
}

/// `validateLimitRangeTypeName`.
fn type_name(kind: &str, path: &Path) -> Errors {
    let errs = qualified_name(kind, path);
    if !errs.is_empty() {
        return errs;
    }
    if !kind.contains('/') && !STANDARD_TYPES.contains(&kind) {
        return vec![FieldError::invalid(
            path,
            kind,
            "must be a standard limit type or fully qualified",
        )];
    }
    Vec::new()
}

/// How the quantities of one resource relate across a limit's fields.
fn bounds(fields: &BTreeMap<&str, BTreeMap<String, Quantity>>, name: &str, path: &Path) -> Errors {
    let get = |field: &str| fields.get(field).and_then(|m| m.get(name)).copied();
    let (min, max, default, request, ratio) = (
        get("min"),
        get("max"),
        get("default"),
        get("defaultRequest"),
        get("maxLimitRequestRatio"),
    );
    let at = |field: &str| path.child(field).key(name);
    let mut errs = Vec::new();
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        errs.push(FieldError::invalid(
            at("min"),
            min.to_string(),
            format!("min value {min} is greater than max value {max}"),
        ));
    }
    if let (Some(request), Some(min)) = (request, min)
        && min > request
    {
        errs.push(FieldError::invalid(
            at("defaultRequest"),
            request.to_string(),
            format!("min value {min} is greater than default request value {request}"),
        ));
    }
    if let (Some(request), Some(max)) = (request, max)
        && request > max
    {
        errs.push(FieldError::invalid(
            at("defaultRequest"),
            request.to_string(),
            format!("default request value {request} is greater than max value {max}"),
        ));
    }
    if let (Some(request), Some(default)) = (request, default)
        && request > default
    {
        errs.push(FieldError::invalid(
            at("defaultRequest"),
            request.to_string(),
            format!(
                "default request value {request} is greater than default limit value {default}"
            ),
        ));
    }
    if let (Some(default), Some(min)) = (default, min)
        && min > default
    {
        errs.push(FieldError::invalid(
            at("default"),
            min.to_string(),
            format!("min value {min} is greater than default value {default}"),
        ));
    }
    if let (Some(default), Some(max)) = (default, max)
        && default > max
    {
        errs.push(FieldError::invalid(
            at("default"),
            max.to_string(),
            format!("default value {default} is greater than max value {max}"),
        ));
    }
    if let Some(ratio) = ratio {
        if ratio < Quantity::from_units(1) {
            errs.push(FieldError::invalid(
                at("maxLimitRequestRatio"),
                ratio.to_string(),
                format!("ratio {ratio} is less than 1"),
            ));
        }
        if let (Some(min), Some(max)) = (min, max) {
            let (ratio_value, min_value, max_value) = (ratio.value(), min.value(), max.value());
            const MAX_MILLI: i64 = i64::MAX / 1000;
            let (ratio_f, min_v, max_v) =
                if ratio_value < MAX_MILLI && min_value < MAX_MILLI && max_value < MAX_MILLI {
                    (
                        ratio.milli_value() as f64 / 1000.0,
                        min.milli_value(),
                        max.milli_value(),
                    )
                } else {
                    (ratio_value as f64, min_value, max_value)
                };
            let limit = max_v as f64 / min_v as f64;
            if ratio_f > limit {
                errs.push(FieldError::invalid(
                    at("maxLimitRequestRatio"),
                    ratio.to_string(),
                    format!("ratio {ratio} is greater than max/min = {limit:.6}"),
                ));
            }
        }
    }
    if let (Some(default), Some(request)) = (default, request)
        && !overcommit_allowed(name)
        && default != request
    {
        errs.push(FieldError::invalid(
            at("defaultRequest"),
            request.to_string(),
            format!(
                "default value {default} must equal to defaultRequest value {request} in {name}"
            ),
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::defaults;

    fn check(limits: Value) -> Vec<String> {
        let mut object = json!({"apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": "l", "namespace": "d"}, "spec": {"limits": limits}});
        defaults::apply("", "LimitRange", &mut object);
        create(&object).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn sound_limits_pass() {
        assert!(
            check(
                json!([{"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "100m"},
                "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "200m"},
                "maxLimitRequestRatio": {"cpu": "5"}},
                {"type": "Pod", "max": {"memory": "1Gi"}},
                {"type": "PersistentVolumeClaim", "max": {"storage": "10Gi"}}])
            )
            .is_empty()
        );
    }

    #[test]
    fn inconsistent_limits_are_refused_as_upstream_words_it() {
        assert_eq!(
            check(json!([{"type": "Container", "max": {"cpu": "100m"}, "min": {"cpu": "1"}}])),
            [
                "spec.limits[0].min[cpu]: Invalid value: \"1\": min value 1 is greater than max value 100m",
                "spec.limits[0].defaultRequest[cpu]: Invalid value: \"100m\": min value 1 is greater than default request value 100m",
                "spec.limits[0].default[cpu]: Invalid value: \"1\": min value 1 is greater than default value 100m",
            ]
        );
        assert_eq!(
            check(json!([{"type": "Pod", "default": {"cpu": "1"}}])),
            ["spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"]
        );
        assert_eq!(
            check(
                json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "500m"}},
                {"type": "Container"}])
            ),
            [
                "spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: \"500m\": ratio 500m is less than 1",
                "spec.limits[1].type: Duplicate value: \"Container\"",
            ]
        );
        assert_eq!(
            check(json!([{"type": "Box"}, {"type": "PersistentVolumeClaim"}])),
            [
                "spec.limits[0].type: Invalid value: \"Box\": must be a standard limit type or fully qualified",
                "spec.limits[1].limits: Required value: either minimum or maximum storage value is required, but neither was provided",
            ]
        );
        assert_eq!(
            check(
                json!([{"type": "Container", "max": {"cpu": "4"}, "min": {"cpu": "1"},
                "maxLimitRequestRatio": {"cpu": "10"}}])
            ),
            [
                "spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: \"10\": ratio 10 is greater than max/min = 4.000000"
            ]
        );
        assert_eq!(
            check(json!([{"type": "Container", "max": {"pods": "4"}}])),
            [
                "spec.limits[0].max[pods]: Invalid value: \"pods\": must be a standard resource for containers",
                "spec.limits[0].default[pods]: Invalid value: \"pods\": must be a standard resource for containers",
                "spec.limits[0].defaultRequest[pods]: Invalid value: \"pods\": must be a standard resource for containers",
            ]
        );
    }
}

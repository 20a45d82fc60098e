//! `scheduling.k8s.io` PriorityClasses (`pkg/apis/scheduling/validation`): values above one billion and
//! names with the `system-` prefix belong to the system's own classes; value and preemption policy are fixed
//! once created. That at most one class is the global default is the Priority admission's check (it needs
//! the other classes), not validation's.

use serde_json::Value;

use super::common::{Errors, Path, get, immutable, not_supported};
use super::meta::{self, NameRule};
use crate::field::FieldError;

/// `HighestUserDefinablePriority`.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;
/// `SystemCriticalPriority`: what `system-cluster-critical` has; `system-node-critical` has 1000 more.
pub const SYSTEM_CRITICAL_PRIORITY: i64 = 2 * HIGHEST_USER_DEFINABLE_PRIORITY;
/// The prefix reserved for the system's classes.
pub const SYSTEM_PREFIX: &str = "system-";

/// The classes every cluster has: name, value and description (upstream's `SystemPriorityClasses`).
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        SYSTEM_CRITICAL_PRIORITY + 1000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        SYSTEM_CRITICAL_PRIORITY,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

fn value_of(object: &Value) -> i64 {
    get(object, "value").and_then(Value::as_i64).unwrap_or(0)
}

fn global_default(object: &Value) -> bool {
    get(object, "globalDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `IsKnownSystemPriorityClass`: why `name` (with its value and default flag) is not a system class.
fn system_class_error(name: &str, value: i64, global_default: bool) -> Option<String> {
    let Some((name, expected, _)) = SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _, _)| *n == name)
    else {
        return Some(format!("{name} is not a known system priority class"));
    };
    if *expected != value {
        return Some(format!("value of {name} PriorityClass must be {expected}"));
    }
    if global_default {
        return Some(format!(
            "globalDefault of {name} PriorityClass must be false"
        ));
    }
    None
}

/// `ValidatePriorityClass`.
pub(crate) fn priority_class_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    let name = meta::of(object)
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let value = value_of(object);
    if name.starts_with(SYSTEM_PREFIX) {
        if let Some(reason) = system_class_error(name, value, global_default(object)) {
            errs.push(FieldError::forbidden(
                "metadata.name",
                format!(
                    "priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use only. error: {reason}"
                ),
            ));
        }
    } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
        errs.push(FieldError::forbidden(
            "value",
            format!(
                "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
            ),
        ));
    }
    if let Some(policy) = object.get("preemptionPolicy").filter(|p| !p.is_null()) {
        let path = Path::new("preemptionPolicy");
        match policy.as_str().unwrap_or_default() {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(FieldError::required(&path, "")),
            other => errs.push(not_supported(
                &path,
                other,
                &["Never", "PreemptLowerPriority"],
            )),
        }
    }
    errs
}

/// `ValidatePriorityClassUpdate`: the metadata rules, and neither value nor preemption policy changes.
pub(crate) fn priority_class_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    if value_of(new) != value_of(old) {
        errs.push(FieldError::forbidden(
            "value",
            "may not be changed in an update.",
        ));
    }
    errs.extend(immutable(
        new.get("preemptionPolicy"),
        old.get("preemptionPolicy"),
        &Path::new("preemptionPolicy"),
    ));
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn msgs(errs: Errors) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn class(name: &str, value: i64) -> Value {
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
               "metadata": {"name": name}, "value": value, "preemptionPolicy": "PreemptLowerPriority"})
    }

    #[test]
    fn user_classes_stay_below_a_billion_and_system_names_are_reserved() {
        assert!(priority_class_create(&class("high", 1_000_000_000)).is_empty());
        assert!(priority_class_create(&class("low", -5)).is_empty());
        assert_eq!(
            msgs(priority_class_create(&class("huge", 1_000_000_001))),
            ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
        );
        assert!(priority_class_create(&class("system-node-critical", 2_000_001_000)).is_empty());
        assert_eq!(
            msgs(priority_class_create(&class("system-mine", 10))),
            [
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"
            ]
        );
        assert_eq!(
            msgs(priority_class_create(&class("system-cluster-critical", 10))),
            [
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: value of system-cluster-critical PriorityClass must be 2000000000"
            ]
        );
        let mut odd = class("x", 1);
        odd["preemptionPolicy"] = json!("Sometimes");
        assert_eq!(
            msgs(priority_class_create(&odd)),
            [
                "preemptionPolicy: Unsupported value: \"Sometimes\": supported values: \"Never\", \"PreemptLowerPriority\""
            ]
        );
    }

    #[test]
    fn value_and_preemption_policy_are_fixed() {
        let old = class("high", 1000);
        let mut new = old.clone();
        new["description"] = json!("changed");
        new["globalDefault"] = json!(true);
        assert!(priority_class_update(&new, &old).is_empty());
        new["value"] = json!(1001);
        new["preemptionPolicy"] = json!("Never");
        assert_eq!(
            msgs(priority_class_update(&new, &old)),
            [
                "value: Forbidden: may not be changed in an update.",
                "preemptionPolicy: Invalid value: \"Never\": field is immutable"
            ]
        );
    }
}

//! ResourceQuotas (`ValidateResourceQuota`, `ValidateResourceQuotaUpdate`): quota resource names and
//! quantities in `spec.hard` and the status, scopes that exist, apply to the resources and do not
//! contradict each other, scope selectors with sound operators; scopes are fixed once created.

use std::collections::BTreeSet;

use serde_json::Value;

use super::common::{Errors, IMMUTABLE, Path, get, list, strings};
use super::container::{parse_quantity, resource_name, resource_quantity};
use super::meta::{self, NameRule};
use crate::field::FieldError;
use crate::quota::SCOPES;

/// `IsStandardQuotaResourceName`'s list.
const QUOTA_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// Pod-scoped quotas may only limit these (`IsResourceQuotaScopeValidForResource`).
const POD_COMPUTE: &[&str] = &[
    "cpu",
    "limits.cpu",
    "limits.memory",
    "memory",
    "requests.cpu",
    "requests.memory",
];

fn is_standard(name: &str) -> bool {
    QUOTA_RESOURCES.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
}

fn scope_allows(scope: &str, resource: &str) -> bool {
    match scope {
        "Terminating"
        | "NotTerminating"
        | "NotBestEffort"
        | "PriorityClass"
        | "CrossNamespacePodAffinity" => resource == "pods" || POD_COMPUTE.contains(&resource),
        "BestEffort" => resource == "pods",
        _ => true,
    }
}

/// `ValidateResourceQuotaResourceName` and `ValidateResourceQuantityValue` over one resource list.
fn resources(object: &Value, pointer: &str, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let Some(map) = object.pointer(pointer).and_then(Value::as_object) else {
        return errs;
    };
    for (name, raw) in map {
        let at = path.key(name);
        errs.extend(resource_name(name, &at));
        if !name.contains('/') && !is_standard(name) {
            errs.push(FieldError::invalid(
                &at,
                name.as_str(),
                "must be a standard resource for quota",
            ));
        }
        match parse_quantity(raw, &at) {
            Ok(q) => errs.extend(resource_quantity(name, &q, &at)),
            Err(e) => errs.push(e),
        }
    }
    errs
}

fn hard_names(object: &Value) -> BTreeSet<String> {
    object
        .pointer("/spec/hard")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `validateResourceQuotaScopes` and `validateScopeSelector`.
fn scopes(object: &Value) -> Errors {
    let mut errs = Vec::new();
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let hard = hard_names(object);
    let conflicting = |set: &BTreeSet<&str>| {
        (set.contains("BestEffort") && set.contains("NotBestEffort"))
            || (set.contains("Terminating") && set.contains("NotTerminating"))
    };
    let scopes = strings(spec, "scopes");
    if !scopes.is_empty() {
        let path = Path::new("spec").child("scopes");
        let value = spec.get("scopes").cloned().unwrap_or(Value::Null);
        for scope in &scopes {
            if !SCOPES.contains(scope) {
                errs.push(FieldError::invalid(
                    &path,
                    value.clone(),
                    "unsupported scope",
                ));
            }
            for resource in &hard {
                if is_standard(resource) && !scope_allows(scope, resource) {
                    errs.push(FieldError::invalid(
                        &path,
                        value.clone(),
                        "unsupported scope applied to resource",
                    ));
                }
            }
        }
        if conflicting(&scopes.iter().copied().collect()) {
            errs.push(FieldError::invalid(&path, value, "conflicting scopes"));
        }
    }
    let Some(selector) = get(spec, "scopeSelector") else {
        return errs;
    };
    let path = Path::new("spec")
        .child("scopeSelector")
        .child("matchExpressions");
    let mut names = BTreeSet::new();
    for requirement in list(selector, "matchExpressions") {
        let scope = requirement
            .get("scopeName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let operator = requirement
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !SCOPES.contains(&scope) {
            errs.push(FieldError::invalid(
                path.child("scopeName"),
                scope,
                "unsupported scope",
            ));
        }
        for resource in &hard {
            if is_standard(resource) && !scope_allows(scope, resource) {
                errs.push(FieldError::invalid(
                    &path,
                    selector.clone(),
                    "unsupported scope applied to resource",
                ));
            }
        }
        if scope != "PriorityClass" && SCOPES.contains(&scope) && operator != "Exists" {
            errs.push(FieldError::invalid(
                path.child("operator"),
                operator,
                "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity",
            ));
        }
        let values = strings(requirement, "values");
        match operator {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                path.child("values"),
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::invalid(
                path.child("values"),
                requirement.get("values").cloned().unwrap_or(Value::Null),
                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                path.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        names.insert(scope);
    }
    if conflicting(&names) {
        errs.push(FieldError::invalid(
            &path,
            selector.clone(),
            "conflicting scopes",
        ));
    }
    errs
}

/// `ValidateResourceQuota`.
pub(crate) fn create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    let spec = Path::new("spec").child("hard");
    errs.extend(resources(object, "/spec/hard", &spec));
    errs.extend(scopes(object));
    let status = Path::new("status");
    errs.extend(resources(object, "/status/hard", &status.child("hard")));
    errs.extend(resources(object, "/status/used", &status.child("used")));
    errs
}

/// `ValidateResourceQuotaUpdate` (and the status update's rules): as a new quota, with the scopes fixed.
pub(crate) fn update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(
        create(new)
            .into_iter()
            .filter(|e| !e.field.starts_with("metadata")),
    );
    let scopes_of = |o: &Value| -> BTreeSet<String> {
        strings(get(o, "spec").unwrap_or(&Value::Null), "scopes")
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    if scopes_of(new) != scopes_of(old) {
        errs.push(FieldError::invalid(
            "spec.scopes",
            new.pointer("/spec/scopes").cloned().unwrap_or(Value::Null),
            IMMUTABLE,
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn quota(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "q", "namespace": "d"}, "spec": spec})
    }

    fn msgs(errs: Errors) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn quota_resources_and_scopes() {
        assert!(
            create(&quota(json!({"hard": {"pods": "5", "requests.cpu": "2", "count/deployments.apps": "3",
                "requests.storage": "10Gi", "gold.storageclass.storage.k8s.io/requests.storage": "1Gi"}})))
            .is_empty()
        );
        assert!(
            create(&quota(
                json!({"hard": {"pods": "5"}, "scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}})
            ))
            .is_empty()
        );
        assert_eq!(
            msgs(create(&quota(
                json!({"hard": {"pods": "1.5", "widgets": "1"}})
            ))),
            [
                "spec.hard[pods]: Invalid value: \"1500m\": must be an integer",
                "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource type or fully qualified",
                "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource for quota",
            ]
        );
        assert_eq!(
            msgs(create(&quota(
                json!({"hard": {"services": "1"}, "scopes": ["BestEffort", "NotBestEffort"]})
            ))),
            [
                "spec.scopes: Invalid value: []string{\"BestEffort\", \"NotBestEffort\"}: unsupported scope applied to resource",
                "spec.scopes: Invalid value: []string{\"BestEffort\", \"NotBestEffort\"}: unsupported scope applied to resource",
                "spec.scopes: Invalid value: []string{\"BestEffort\", \"NotBestEffort\"}: conflicting scopes",
            ]
        );
        assert_eq!(
            msgs(create(&quota(
                json!({"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In"}]}})
            ))),
            [
                "spec.scopeSelector.matchExpressions.values: Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"
            ]
        );
    }

    #[test]
    fn scopes_are_fixed() {
        let old = quota(json!({"hard": {"pods": "1"}, "scopes": ["BestEffort"]}));
        let mut new = old.clone();
        new["spec"]["hard"]["pods"] = json!("2");
        assert!(update(&new, &old).is_empty());
        new["spec"]["scopes"] = json!(["NotBestEffort"]);
        assert_eq!(
            msgs(update(&new, &old)),
            ["spec.scopes: Invalid value: []string{\"NotBestEffort\"}: field is immutable"]
        );
    }
}

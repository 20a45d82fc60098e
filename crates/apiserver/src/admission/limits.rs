//! LimitRanger, free of I/O: a new pod's containers get the `default` limits and `defaultRequest` requests
//! of the namespace's `Container` limits for what they leave out (noted in the `kubernetes.io/limit-ranger`
//! annotation), and pods and PersistentVolumeClaims are held to `min`, `max` and `maxLimitRequestRatio`,
//! with upstream's messages. Each LimitRange applies on its own, in order.

use std::collections::BTreeMap;

use gantry_api::quota::{self, ResourceList};
use gantry_api::validate::quantity::Quantity;
use serde_json::{Map, Value, json};

/// The annotation saying what LimitRanger set.
const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The limits of one type in a LimitRange.
fn items<'a>(range: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    range
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |item| item.get("type").and_then(Value::as_str) == Some(kind))
}

/// Sets the `Container` defaults of each of `ranges` on the pod's containers and init containers; whether
/// it set any.
pub(crate) fn default_pod(ranges: &[Value], pod: &mut Value) -> bool {
    let mut any = false;
    for range in ranges {
        let mut limits = ResourceList::new();
        let mut requests = ResourceList::new();
        for item in items(range, "Container") {
            limits.extend(quota::resource_list(item.get("default")));
            requests.extend(quota::resource_list(item.get("defaultRequest")));
        }
        if limits.is_empty() && requests.is_empty() {
            continue;
        }
        let mut notes = Vec::new();
        for (list, label) in [
            ("containers", "container"),
            ("initContainers", "init container"),
        ] {
            let Some(containers) = pod
                .pointer_mut(&format!("/spec/{list}"))
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for container in containers {
                let name = container
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let set_requests = merge(container, "requests", &requests);
                let set_limits = merge(container, "limits", &limits);
                if !set_requests.is_empty() {
                    notes.push(format!(
                        "{} request for {label} {name}",
                        set_requests.join(", ")
                    ));
                }
                if !set_limits.is_empty() {
                    notes.push(format!(
                        "{} limit for {label} {name}",
                        set_limits.join(", ")
                    ));
                }
            }
        }
        any |= !notes.is_empty();
        if !notes.is_empty()
            && let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut)
        {
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if !annotations.is_object() {
                *annotations = json!({});
            }
            annotations[ANNOTATION] =
                json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
        }
    }
    any
}

/// Adds to the container's `field` (`requests` or `limits`) what `defaults` has and it lacks; what was added,
/// in name order.
fn merge(container: &mut Value, field: &str, defaults: &ResourceList) -> Vec<String> {
    let Some(container) = container.as_object_mut() else {
        return Vec::new();
    };
    let present = |container: &Map<String, Value>, name: &str| {
        container
            .get("resources")
            .and_then(|r| r.get(field))
            .and_then(|f| f.get(name))
            .is_some()
    };
    let missing: Vec<(&String, &Quantity)> = defaults
        .iter()
        .filter(|(name, _)| !present(container, name))
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    let resources = container.entry("resources").or_insert_with(|| json!({}));
    if !resources.is_object() {
        *resources = json!({});
    }
    let list = &mut resources[field];
    if !list.is_object() {
        *list = json!({});
    }
    missing
        .into_iter()
        .map(|(name, q)| {
            list[name.as_str()] = json!(q.to_string());
            name.clone()
        })
        .collect()
}

/// Requests, limits and the enforced value at one precision (`requestLimitEnforcedValues`): thousandths
/// unless that would overflow.
fn comparable(
    request: Option<&Quantity>,
    limit: Option<&Quantity>,
    enforced: &Quantity,
) -> (i64, i64, i64) {
    const MAX_MILLI: i64 = i64::MAX / 1000;
    let zero = Quantity::from_units(0);
    let (request, limit) = (request.unwrap_or(&zero), limit.unwrap_or(&zero));
    if request.value() <= MAX_MILLI && limit.value() <= MAX_MILLI && enforced.value() <= MAX_MILLI {
        (
            request.milli_value(),
            limit.milli_value(),
            enforced.milli_value(),
        )
    } else {
        (request.value(), limit.value(), enforced.value())
    }
}

/// `minConstraint`.
fn min_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (request, limit) = (requests.get(name), limits.get(name));
    let (observed_request, observed_limit, enforced_value) = comparable(request, limit, enforced);
    let Some(request) = request else {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if observed_request < enforced_value {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but request is {request}"
        ));
    }
    match limit {
        Some(limit) if observed_limit < enforced_value => Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but limit is {limit}"
        )),
        _ => None,
    }
}

/// `maxConstraint`.
fn max_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (request, limit) = (requests.get(name), limits.get(name));
    let (observed_request, observed_limit, enforced_value) = comparable(request, limit, enforced);
    let Some(limit) = limit else {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No limit is specified"
        ));
    };
    if observed_limit > enforced_value {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but limit is {limit}"
        ));
    }
    match request {
        Some(request) if observed_request > enforced_value => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {request}"
        )),
        _ => None,
    }
}

/// `maxRequestConstraint` (claims have requests only).
fn max_request_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
) -> Option<String> {
    let request = requests.get(name);
    let (observed_request, _, enforced_value) = comparable(request, None, enforced);
    let Some(request) = request else {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    (observed_request > enforced_value)
        .then(|| format!("maximum {name} usage per {kind} is {enforced}, but request is {request}"))
}

/// `limitRequestRatioConstraint`.
fn ratio_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (request, limit) = (requests.get(name), limits.get(name));
    let (observed_request, observed_limit, _) = comparable(request, limit, enforced);
    if request.is_none() || observed_request == 0 {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
        ));
    }
    if limit.is_none() || observed_limit == 0 {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
        ));
    }
    let ratio = observed_limit as f64 / observed_request as f64;
    let (observed, allowed) = if enforced.value() <= i64::MAX / 1000 {
        (ratio * 1000.0, enforced.milli_value() as f64)
    } else {
        (ratio, enforced.value() as f64)
    };
    (observed > allowed).then(|| {
        format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {ratio:.6}"
        )
    })
}

/// The quantities of one field of a limit (`min`, `max`, `maxLimitRequestRatio`).
fn bounds(item: &Value, field: &str) -> ResourceList {
    quota::resource_list(item.get(field))
}

/// `min`, `max` and ratio checks of one limit against `requests` and `limits`.
fn check_item(
    kind: &str,
    item: &Value,
    requests: &ResourceList,
    limits: &ResourceList,
    errors: &mut Vec<String>,
) {
    for (name, q) in &bounds(item, "min") {
        errors.extend(min_constraint(kind, name, q, requests, limits));
    }
    for (name, q) in &bounds(item, "max") {
        errors.extend(max_constraint(kind, name, q, requests, limits));
    }
    for (name, q) in &bounds(item, "maxLimitRequestRatio") {
        errors.extend(ratio_constraint(kind, name, q, requests, limits));
    }
}

/// Several errors as Go's aggregate prints them: one alone, more as `[a, b]`, each once.
fn aggregate(errors: Vec<String>) -> Result<(), String> {
    let mut unique: Vec<String> = Vec::new();
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match unique.len() {
        0 => Ok(()),
        1 => Err(unique.remove(0)),
        _ => Err(format!("[{}]", unique.join(", "))),
    }
}

/// Whether the pod keeps to `range` (`PodValidateLimitFunc`); the error is why not (403).
pub(crate) fn check_pod(range: &Value, pod: &Value) -> Result<(), String> {
    let mut errors = Vec::new();
    for item in items(range, "Container") {
        for list in ["containers", "initContainers"] {
            let containers = pod
                .pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            for container in containers {
                let requests = quota::container_resources(container, "requests");
                let limits = quota::container_resources(container, "limits");
                check_item("Container", item, &requests, &limits, &mut errors);
            }
        }
    }
    for item in items(range, "Pod") {
        let requests = quota::pod_resources(pod, "requests", false);
        let limits = quota::pod_resources(pod, "limits", false);
        check_item("Pod", item, &requests, &limits, &mut errors);
    }
    aggregate(errors)
}

/// Whether the claim's storage request keeps to `range` (`PersistentVolumeClaimValidateLimitFunc`).
pub(crate) fn check_claim(range: &Value, claim: &Value) -> Result<(), String> {
    let requests = quota::resource_list(claim.pointer("/spec/resources/requests"));
    let mut errors = Vec::new();
    for item in items(range, "PersistentVolumeClaim") {
        for (name, q) in &bounds(item, "min") {
            errors.extend(min_constraint(
                "PersistentVolumeClaim",
                name,
                q,
                &requests,
                &BTreeMap::new(),
            ));
        }
        for (name, q) in &bounds(item, "max") {
            errors.extend(max_request_constraint(
                "PersistentVolumeClaim",
                name,
                q,
                &requests,
            ));
        }
    }
    aggregate(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Value {
        json!({"metadata": {"name": "l"}, "spec": {"limits": limits}})
    }

    #[test]
    fn defaults_fill_what_containers_leave_out() {
        let ranges = [range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "0.25", "memory": "128Mi"}}]))];
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "app", "resources": {"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}}}],
            "initContainers": [{"name": "setup"}]}});
        assert!(default_pod(&ranges, &mut pod));
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "1Gi"}})
        );
        assert_eq!(
            pod["spec"]["initContainers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "250m", "memory": "128Mi"}})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu request for container app; cpu limit for container app; cpu, memory request for init container setup; cpu, memory limit for init container setup"
        );
        // Nothing to set: no annotation.
        let mut quiet = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert!(!default_pod(
            &[range(json!([{"type": "Pod", "max": {"cpu": "1"}}]))],
            &mut quiet,
        ));
        assert!(quiet["metadata"].get("annotations").is_none());
    }

    #[test]
    fn violations_are_refused_with_upstream_messages() {
        let limits = range(
            json!([{"type": "Container", "max": {"cpu": "500m"}, "min": {"memory": "64Mi"},
            "maxLimitRequestRatio": {"cpu": "2"}}]),
        );
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "a", "resources": resources}]}});
        assert_eq!(
            check_pod(
                &limits,
                &pod(json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1", "memory": "64Mi"}}))
            )
            .unwrap_err(),
            "maximum cpu usage per Container is 500m, but limit is 1"
        );
        assert_eq!(
            check_pod(
                &limits,
                &pod(json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "100m"}}))
            )
            .unwrap_err(),
            "[minimum memory usage per Container is 64Mi.  No request is specified, cpu max limit to request ratio per Container is 2, but provided ratio is 5.000000]"
        );
        assert!(
            check_pod(
                &limits,
                &pod(
                    json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "250m", "memory": "1Gi"}})
                )
            )
            .is_ok()
        );
        let per_pod = range(json!([{"type": "Pod", "max": {"memory": "1Gi"}}]));
        let two = json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"memory": "768Mi"}}},
            {"name": "b", "resources": {"limits": {"memory": "512Mi"}}}]}});
        assert_eq!(
            check_pod(&per_pod, &two).unwrap_err(),
            "maximum memory usage per Pod is 1Gi, but limit is 1280Mi"
        );
        let storage = range(
            json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "5Gi"}}]),
        );
        let claim = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
        assert!(check_claim(&storage, &claim("2Gi")).is_ok());
        assert_eq!(
            check_claim(&storage, &claim("10Gi")).unwrap_err(),
            "maximum storage usage per PersistentVolumeClaim is 5Gi, but request is 10Gi"
        );
        assert_eq!(
            check_claim(&storage, &claim("500Mi")).unwrap_err(),
            "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
        );
    }
}

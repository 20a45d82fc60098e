//! The downward API: a pod's fields (`fieldRef`) and its containers' resources (`resourceFieldRef`) as text,
//! shared by environment variables and `downwardAPI` volumes.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::quantity;

/// The value of a `fieldRef.fieldPath` of `pod`, as the kubelet renders it: `metadata.name`, `.namespace`,
/// `.uid`, `.labels` and `.annotations` (whole maps as sorted `key="value"` lines, or one entry with
/// `metadata.labels['key']`), `spec.nodeName`, `spec.serviceAccountName`, `status.hostIP`, `status.hostIPs`,
/// `status.podIP` and `status.podIPs` (the lists joined with commas).
pub fn field_value(pod: &Value, path: &str) -> Result<String, String> {
    let text = |pointer: &str| {
        pod.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let ips = |list: &str, single: &str| {
        let listed: Vec<&str> = pod
            .pointer(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.get("ip").and_then(Value::as_str))
            .collect();
        if listed.is_empty() {
            text(single)
        } else {
            listed.join(",")
        }
    };
    if let Some((field, key)) = subscripted(path) {
        return match field {
            "metadata.labels" | "metadata.annotations" => Ok(metadata_map(pod, &field[9..])
                .remove(key)
                .unwrap_or_default()),
            _ => Err(format!("fieldPath {path:?} does not support subscript")),
        };
    }
    Ok(match path {
        "metadata.name" => text("/metadata/name"),
        "metadata.namespace" => text("/metadata/namespace"),
        "metadata.uid" => text("/metadata/uid"),
        "metadata.labels" => format_map(&metadata_map(pod, "labels")),
        "metadata.annotations" => format_map(&metadata_map(pod, "annotations")),
        "spec.nodeName" => text("/spec/nodeName"),
        "spec.serviceAccountName" => text("/spec/serviceAccountName"),
        "status.hostIP" => text("/status/hostIP"),
        "status.hostIPs" => ips("/status/hostIPs", "/status/hostIP"),
        "status.podIP" => text("/status/podIP"),
        "status.podIPs" => ips("/status/podIPs", "/status/podIP"),
        _ => return Err(format!("unsupported fieldPath: {path}")),
    })
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`); also accepts double quotes.
fn subscripted(path: &str) -> Option<(&str, &str)> {
    let open = path.find('[')?;
    let inner = path[open + 1..].strip_suffix(']')?;
    let key = inner
        .strip_prefix('\'')
        .and_then(|k| k.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|k| k.strip_suffix('"')))?;
    Some((&path[..open], key))
}

fn metadata_map(pod: &Value, field: &str) -> BTreeMap<String, String> {
    pod.pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// A whole label or annotation map as the downward API writes it: `key="value"` lines in key order, values
/// quoted as Go's `%q` quotes them.
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

pub use gantry_api::field::go_quote;

/// The container `name` of `pod`, among its containers, then its init containers.
pub fn find_container<'a>(pod: &'a Value, name: &str) -> Result<&'a Value, String> {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|list| pod.pointer(&format!("/spec/{list}"))?.as_array())
        .flatten()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .ok_or_else(|| format!("container {name} not found"))
}

/// The value of a `resourceFieldRef` (`selector`: `containerName`, `resource`, `divisor`) as the kubelet
/// writes it: the resource divided by the divisor (default 1), rounded up. `container` is the one the
/// selector is for when it names none (environment variables); limits of cpu, memory and ephemeral storage
/// that are not set (or zero) are the node's `allocatable` ones.
pub fn resource_value(
    pod: &Value,
    container: Option<&Value>,
    selector: &Value,
    allocatable: &Value,
) -> Result<String, String> {
    let named = selector
        .get("containerName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let container = match (named, container) {
        ("", Some(container)) => container,
        (name, _) => find_container(pod, name)?,
    };
    let resource = selector
        .get("resource")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let divisor = match selector.get("divisor") {
        Some(Value::String(d)) => d.as_str(),
        Some(Value::Number(_)) | None | Some(_) => "",
    };
    let divisor = if divisor.is_empty() || quantity::milli_value(divisor) == Some(0) {
        "1"
    } else {
        divisor
    };
    let (kind, name) = resource
        .split_once('.')
        .filter(|(kind, _)| matches!(*kind, "limits" | "requests"))
        .ok_or_else(|| format!("unsupported container resource : {resource}"))?;
    let known = matches!(name, "cpu" | "memory" | "ephemeral-storage");
    if !known && !name.starts_with("hugepages-") {
        return Err(format!("unsupported container resource : {resource}"));
    }
    let set = container
        .pointer(&format!("/resources/{kind}/{name}"))
        .and_then(quantity_text)
        .filter(|q| kind == "requests" || quantity::milli_value(q).is_some_and(|v| v != 0));
    let amount = match set {
        Some(q) => q,
        None if kind == "limits" && known => allocatable
            .get(name)
            .and_then(quantity_text)
            .unwrap_or_else(|| "0".to_owned()),
        None => "0".to_owned(),
    };
    let bad = |q: &str| format!("invalid quantity {q:?} for {resource}");
    let (amount, divisor) = if name == "cpu" {
        (
            quantity::milli_value(&amount).ok_or_else(|| bad(&amount))?,
            quantity::milli_value(divisor).ok_or_else(|| bad(divisor))?,
        )
    } else {
        (
            quantity::value(&amount).ok_or_else(|| bad(&amount))?,
            quantity::value(divisor).ok_or_else(|| bad(divisor))?,
        )
    };
    Ok(ceil_div(amount, divisor.max(1)).to_string())
}

/// A quantity as JSON: a string, or a number written by a client that did not quote it.
fn quantity_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    let (q, r) = (a.div_euclid(b), a.rem_euclid(b));
    if r != 0 { q + 1 } else { q }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "prod", "uid": "u-1",
                "labels": {"app": "web", "tier": "front end"},
                "annotations": {"note": "say \"hi\"\n\tbye\u{1}é\u{a0}"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "sa",
                "containers": [{"name": "app", "resources": {
                    "limits": {"cpu": "250m", "memory": "64Mi"},
                    "requests": {"cpu": "100m", "memory": "32Mi"}}},
                    {"name": "bare"}],
                "initContainers": [{"name": "init", "resources": {"limits": {"cpu": "1"}}}]},
            "status": {"podIP": "10.42.0.7", "podIPs": [{"ip": "10.42.0.7"}, {"ip": "fd00::7"}],
                "hostIP": "192.168.0.2"}
        })
    }

    #[test]
    fn field_paths_render_as_the_kubelet_renders_them() {
        let pod = pod();
        let get = |path: &str| field_value(&pod, path).unwrap();
        assert_eq!(get("metadata.name"), "web-1");
        assert_eq!(get("metadata.uid"), "u-1");
        assert_eq!(get("metadata.labels"), "app=\"web\"\ntier=\"front end\"");
        assert_eq!(
            get("metadata.annotations"),
            "note=\"say \\\"hi\\\"\\n\\tbye\\x01é\\u00a0\""
        );
        assert_eq!(get("metadata.labels['app']"), "web");
        assert_eq!(get("metadata.labels['absent']"), "");
        assert_eq!(get("spec.nodeName"), "n1");
        assert_eq!(get("spec.serviceAccountName"), "sa");
        assert_eq!(get("status.podIPs"), "10.42.0.7,fd00::7");
        assert_eq!(get("status.hostIPs"), "192.168.0.2");
        assert_eq!(
            field_value(&pod, "spec.hostname").unwrap_err(),
            "unsupported fieldPath: spec.hostname"
        );
        assert_eq!(
            field_value(&pod, "metadata.name['x']").unwrap_err(),
            "fieldPath \"metadata.name['x']\" does not support subscript"
        );
    }

    #[test]
    fn resources_are_divided_and_rounded_up() {
        let pod = pod();
        let allocatable = json!({"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi"});
        let get = |selector: Value| resource_value(&pod, None, &selector, &allocatable);
        let sel = |resource: &str, divisor: Option<&str>| json!({"containerName": "app", "resource": resource, "divisor": divisor});
        assert_eq!(get(sel("limits.cpu", None)).unwrap(), "1");
        assert_eq!(get(sel("limits.cpu", Some("1m"))).unwrap(), "250");
        assert_eq!(get(sel("requests.cpu", Some("1m"))).unwrap(), "100");
        assert_eq!(get(sel("limits.memory", None)).unwrap(), "67108864");
        assert_eq!(get(sel("limits.memory", Some("1Mi"))).unwrap(), "64");
        assert_eq!(get(sel("requests.memory", Some("1G"))).unwrap(), "1");
        assert_eq!(
            get(sel("limits.ephemeral-storage", Some("1Gi"))).unwrap(),
            "100"
        );
        assert_eq!(get(sel("requests.ephemeral-storage", None)).unwrap(), "0");
        assert_eq!(get(sel("limits.hugepages-2Mi", None)).unwrap(), "0");
        let bare = |resource: &str| json!({"containerName": "bare", "resource": resource});
        assert_eq!(get(bare("limits.cpu")).unwrap(), "4");
        assert_eq!(get(bare("limits.memory")).unwrap(), "8589934592");
        assert_eq!(
            get(json!({"containerName": "init", "resource": "limits.cpu", "divisor": "1m"}))
                .unwrap(),
            "1000"
        );
        assert_eq!(
            get(json!({"containerName": "nope", "resource": "limits.cpu"})).unwrap_err(),
            "container nope not found"
        );
        assert_eq!(
            get(sel("limits.gpu", None)).unwrap_err(),
            "unsupported container resource : limits.gpu"
        );
        let current = json!({"name": "x", "resources": {"limits": {"memory": "1Gi"}}});
        let own = json!({"resource": "limits.memory", "divisor": "1Mi"});
        assert_eq!(
            resource_value(&pod, Some(&current), &own, &allocatable).unwrap(),
            "1024"
        );
    }
}

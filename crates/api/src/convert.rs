//! Kinds served in more than one form from one storage, as upstream does:
//! - `events.k8s.io/v1` Events are stored as `core/v1` Events, so `kubectl get events` sees what the newer API
//!   writes and the other way round (upstream's field renaming);
//! - `autoscaling/v1` HorizontalPodAutoscalers are stored as `autoscaling/v2` ones (what kubectl ≤ 1.31
//!   `autoscale` sends): the CPU target becomes a Resource metric; v2-only metrics, behavior and conditions
//!   travel in v1 annotations, so a v1 read-modify-write keeps them.

use serde_json::{Map, Value, json};

use crate::registry::ResourceType;

/// `(core/v1 field, events.k8s.io/v1 field)` pairs; other fields share their names.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

/// Annotations carrying what autoscaling/v1 has no field for (upstream's names).
const HPA_METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const HPA_BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const HPA_CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const HPA_CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    EventsV1,
    AutoscalingV1,
}

fn form(resource: &ResourceType) -> Option<Form> {
    match (resource.group, resource.version, resource.kind) {
        ("events.k8s.io", "v1", "Event") => Some(Form::EventsV1),
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => Some(Form::AutoscalingV1),
        _ => None,
    }
}

/// Whether objects of this resource are stored in another form.
pub fn is_converted(resource: &ResourceType) -> bool {
    form(resource).is_some()
}

/// The group the objects of this resource are stored under (`core` for the core group).
pub fn storage_group(resource: &ResourceType) -> &'static str {
    match form(resource) {
        Some(Form::EventsV1) => "core",
        _ if resource.group.is_empty() => "core",
        _ => resource.group,
    }
}

/// An object of `resource` in the form it is stored in.
pub fn to_storage(resource: &ResourceType, object: Value) -> Value {
    match form(resource) {
        Some(Form::EventsV1) => rename(object, "v1", |(core, events)| (events, core)),
        Some(Form::AutoscalingV1) => hpa_v1_to_v2(object),
        None => object,
    }
}

/// A stored object in the form `resource` serves.
pub fn from_storage(resource: &ResourceType, object: Value) -> Value {
    match form(resource) {
        Some(Form::EventsV1) => rename(object, "events.k8s.io/v1", |pair| pair),
        Some(Form::AutoscalingV1) => hpa_v2_to_v1(object),
        None => object,
    }
}

/// Renames each pair's first field to its second and sets `apiVersion`.
fn rename(
    object: Value,
    api_version: &str,
    direction: impl Fn((&'static str, &'static str)) -> (&'static str, &'static str),
) -> Value {
    let Value::Object(mut fields) = object else {
        return object;
    };
    let mut renamed = Map::new();
    for &pair in EVENT_FIELDS {
        let (from, to) = direction(pair);
        // A field already in the target form is dropped: the source form's value wins, as in upstream's
        // conversion, which only reads the source fields.
        fields.remove(to);
        if let Some(value) = fields.remove(from) {
            renamed.insert(to.to_string(), value);
        }
    }
    fields.extend(renamed);
    fields.insert("apiVersion".into(), Value::from(api_version));
    fields.insert("kind".into(), Value::from("Event"));
    Value::Object(fields)
}

fn is_cpu_utilization(metric: &Value) -> bool {
    metric["type"] == "Resource"
        && metric.pointer("/resource/name") == Some(&json!("cpu"))
        && metric.pointer("/resource/target/type") == Some(&json!("Utilization"))
}

fn annotations(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = object
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    let annotations = meta
        .as_object_mut()?
        .entry("annotations")
        .or_insert_with(|| json!({}));
    annotations.as_object_mut()
}

/// Takes the annotation `key` (JSON text) out of the object, parsed.
fn take_annotation(object: &mut Value, key: &str) -> Option<Value> {
    let annotations = annotations(object)?;
    let text = annotations.remove(key)?;
    serde_json::from_str(text.as_str()?).ok()
}

fn put_annotation(object: &mut Value, key: &str, value: &Value) {
    if let Some(annotations) = annotations(object) {
        annotations.insert(key.into(), Value::from(value.to_string()));
    }
}

/// Drops an empty `metadata.annotations` (left by taking the v1-only ones out).
fn tidy_annotations(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
        && meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        meta.remove("annotations");
    }
}

fn hpa_v1_to_v2(mut object: Value) -> Value {
    let mut metrics = match take_annotation(&mut object, HPA_METRICS) {
        Some(Value::Array(metrics)) => metrics,
        _ => Vec::new(),
    };
    let behavior = take_annotation(&mut object, HPA_BEHAVIOR);
    let conditions = take_annotation(&mut object, HPA_CONDITIONS);
    let mut current = match take_annotation(&mut object, HPA_CURRENT_METRICS) {
        Some(Value::Array(current)) => current,
        _ => Vec::new(),
    };
    tidy_annotations(&mut object);
    object["apiVersion"] = json!("autoscaling/v2");
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(target) = spec
            .remove("targetCPUUtilizationPercentage")
            .filter(|t| !t.is_null())
        {
            metrics.retain(|m| !is_cpu_utilization(m));
            metrics.insert(
                0,
                json!({"type": "Resource", "resource": {"name": "cpu",
                       "target": {"type": "Utilization", "averageUtilization": target}}}),
            );
        }
        if !metrics.is_empty() {
            spec.insert("metrics".into(), Value::Array(metrics));
        }
        if let Some(behavior) = behavior {
            spec.insert("behavior".into(), behavior);
        }
    }
    if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
        if let Some(utilization) = status
            .remove("currentCPUUtilizationPercentage")
            .filter(|u| !u.is_null())
        {
            current.insert(
                0,
                json!({"type": "Resource", "resource": {"name": "cpu",
                       "current": {"averageUtilization": utilization}}}),
            );
        }
        if !current.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(conditions) = conditions {
            status.insert("conditions".into(), conditions);
        }
    }
    object
}

fn hpa_v2_to_v1(mut object: Value) -> Value {
    object["apiVersion"] = json!("autoscaling/v1");
    let spec = object
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .map(|spec| {
            let metrics = match spec.remove("metrics") {
                Some(Value::Array(metrics)) => metrics,
                _ => Vec::new(),
            };
            let (cpu, others): (Vec<Value>, Vec<Value>) =
                metrics.into_iter().partition(is_cpu_utilization);
            if let Some(target) = cpu
                .first()
                .and_then(|m| m.pointer("/resource/target/averageUtilization"))
            {
                spec.insert("targetCPUUtilizationPercentage".into(), target.clone());
            }
            (others, spec.remove("behavior"))
        });
    let status = object
        .get_mut("status")
        .and_then(Value::as_object_mut)
        .map(|status| {
            let current = match status.remove("currentMetrics") {
                Some(Value::Array(current)) => current,
                _ => Vec::new(),
            };
            let (cpu, others): (Vec<Value>, Vec<Value>) = current.into_iter().partition(|m| {
                m["type"] == "Resource" && m.pointer("/resource/name") == Some(&json!("cpu"))
            });
            if let Some(utilization) = cpu
                .first()
                .and_then(|m| m.pointer("/resource/current/averageUtilization"))
            {
                status.insert(
                    "currentCPUUtilizationPercentage".into(),
                    utilization.clone(),
                );
            }
            (others, status.remove("conditions"))
        });
    if let Some((others, behavior)) = spec {
        if !others.is_empty() {
            put_annotation(&mut object, HPA_METRICS, &Value::Array(others));
        }
        if let Some(behavior) = behavior {
            put_annotation(&mut object, HPA_BEHAVIOR, &behavior);
        }
    }
    if let Some((others, conditions)) = status {
        if !others.is_empty() {
            put_annotation(&mut object, HPA_CURRENT_METRICS, &Value::Array(others));
        }
        if let Some(conditions) = conditions {
            put_annotation(&mut object, HPA_CONDITIONS, &conditions);
        }
    }
    tidy_annotations(&mut object);
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;

    fn resource(group: &str, version: &str, plural: &str) -> &'static ResourceType {
        find(group, version, plural)
            .unwrap_or_else(|| panic!("{group}/{version} {plural} is served"))
    }

    #[test]
    fn events_round_trip_between_the_two_groups() {
        let events = resource("events.k8s.io", "v1", "events");
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
                         "regarding": {"kind": "Pod", "name": "p"}, "note": "pulled", "reason": "Pulled",
                         "reportingController": "gantry-agent", "reportingInstance": "n1", "type": "Normal",
                         "eventTime": "2026-11-28T00:00:00.000000Z", "deprecatedCount": 2});
        let stored = to_storage(events, new.clone());
        assert_eq!(
            stored,
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                   "involvedObject": {"kind": "Pod", "name": "p"}, "message": "pulled", "reason": "Pulled",
                   "reportingComponent": "gantry-agent", "reportingInstance": "n1", "type": "Normal",
                   "eventTime": "2026-11-28T00:00:00.000000Z", "count": 2})
        );
        assert_eq!(from_storage(events, stored.clone()), new);
        let core = resource("", "v1", "events");
        assert_eq!(
            from_storage(core, stored.clone()),
            stored,
            "core reads it as stored"
        );
        assert_eq!(storage_group(events), storage_group(core));
    }

    #[test]
    fn autoscaling_v1_is_stored_as_v2_and_keeps_what_v1_cannot_say() {
        let v1 = resource("autoscaling", "v1", "horizontalpodautoscalers");
        let v2 = resource("autoscaling", "v2", "horizontalpodautoscalers");
        let from_kubectl = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                     "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 80}});
        let stored = to_storage(v1, from_kubectl.clone());
        assert_eq!(stored["apiVersion"], "autoscaling/v2");
        assert_eq!(
            stored["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
        assert_eq!(from_storage(v1, stored.clone()), from_kubectl);

        let mut rich = stored.clone();
        rich["spec"]["metrics"]
            .as_array_mut()
            .unwrap_or_else(|| unreachable!())
            .push(json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}));
        rich["spec"]["behavior"] = json!({"scaleDown": {"stabilizationWindowSeconds": 60}});
        rich["status"] = json!({"currentReplicas": 2, "desiredReplicas": 2,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}],
            "conditions": [{"type": "AbleToScale", "status": "True"}]});
        let as_v1 = from_storage(v1, rich.clone());
        assert_eq!(as_v1["spec"]["targetCPUUtilizationPercentage"], 80);
        assert_eq!(as_v1["status"]["currentCPUUtilizationPercentage"], 40);
        assert!(
            as_v1["metadata"]["annotations"][HPA_METRICS]
                .as_str()
                .is_some_and(|m| m.contains("qps"))
        );
        assert_eq!(
            to_storage(v1, as_v1),
            rich,
            "a v1 round trip keeps the v2-only parts"
        );
        assert_eq!(from_storage(v2, rich.clone()), rich);
    }
}

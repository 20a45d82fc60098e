//! Priority admission, free of I/O: a new pod's `spec.priority` and `spec.preemptionPolicy` come from the
//! PriorityClass it names, else from the global default class (whose name it then carries), else 0 and
//! `PreemptLowerPriority`; a pod may not set them to anything else. Later writes keep what was resolved.
//! At most one class is the global default.

use serde_json::{Value, json};

fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn value_of(class: &Value) -> i64 {
    class.get("value").and_then(Value::as_i64).unwrap_or(0)
}

fn is_global_default(class: &Value) -> bool {
    class.get("globalDefault").and_then(Value::as_bool) == Some(true)
}

/// The global default among `classes`: the one with the lowest value if a race made several.
pub(crate) fn global_default<'a>(
    classes: impl IntoIterator<Item = &'a Value>,
) -> Option<&'a Value> {
    classes
        .into_iter()
        .filter(|c| is_global_default(c))
        .min_by_key(|c| value_of(c))
}

/// Sets the pod's priority from `class` (the class it names, or the global default; None: there is none).
/// The error is why the pod is refused (403).
pub(crate) fn resolve(pod: &mut Value, class: Option<&Value>) -> Result<(), String> {
    let (name, priority, policy) = match class {
        Some(class) => (
            name_of(class).to_owned(),
            value_of(class),
            class
                .get("preemptionPolicy")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ),
        None => (String::new(), 0, Some("PreemptLowerPriority".to_owned())),
    };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let named = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !named && !name.is_empty() {
        spec.insert("priorityClassName".into(), json!(name));
    }
    if let Some(given) = spec
        .get("priority")
        .filter(|p| !p.is_null() && p.as_i64() != Some(priority))
    {
        return Err(format!(
            "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
        ));
    }
    spec.insert("priority".into(), json!(priority));
    if let Some(policy) = policy {
        if let Some(given) = spec
            .get("preemptionPolicy")
            .and_then(Value::as_str)
            .filter(|p| *p != policy)
        {
            return Err(format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
            ));
        }
        spec.insert("preemptionPolicy".into(), json!(policy));
    }
    Ok(())
}

/// On an update of a pod: what creation resolved stays when the new version leaves it out.
pub(crate) fn keep(pod: &mut Value, old: &Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["priority", "preemptionPolicy"] {
        let unset = spec.get(field).is_none_or(Value::is_null);
        if let (true, Some(kept)) = (unset, old.pointer(&format!("/spec/{field}"))) {
            spec.insert(field.into(), kept.clone());
        }
    }
}

/// Why `class` may not be written when `current` is the global default: only one class may be it (a class
/// already the default may be rewritten).
pub(crate) fn check_default(class: &Value, current: Option<&Value>) -> Result<(), String> {
    match current {
        Some(current) if is_global_default(class) && name_of(current) != name_of(class) => {
            Err(format!(
                "PriorityClass {} is already marked as default. Only one default can exist",
                name_of(current)
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, value: i64, default: bool, policy: &str) -> Value {
        json!({"metadata": {"name": name}, "value": value, "globalDefault": default, "preemptionPolicy": policy})
    }

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn a_named_class_sets_priority_and_policy() {
        let high = class("high", 1000, false, "Never");
        let mut p = pod(json!({"priorityClassName": "high"}));
        resolve(&mut p, Some(&high)).unwrap();
        assert_eq!(
            p["spec"],
            json!({"priorityClassName": "high", "priority": 1000, "preemptionPolicy": "Never"})
        );
        let mut agreeing = pod(json!({"priorityClassName": "high", "priority": 1000}));
        assert!(resolve(&mut agreeing, Some(&high)).is_ok());
        let mut wrong = pod(json!({"priorityClassName": "high", "priority": 7}));
        assert_eq!(
            resolve(&mut wrong, Some(&high)).unwrap_err(),
            "the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"
        );
        let mut policy =
            pod(json!({"priorityClassName": "high", "preemptionPolicy": "PreemptLowerPriority"}));
        assert_eq!(
            resolve(&mut policy, Some(&high)).unwrap_err(),
            "the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name"
        );
    }

    #[test]
    fn without_a_name_the_default_class_or_zero() {
        let mut p = pod(json!({}));
        resolve(&mut p, None).unwrap();
        assert_eq!(
            p["spec"],
            json!({"priority": 0, "preemptionPolicy": "PreemptLowerPriority"})
        );
        let classes = [
            class("a", 50, true, "PreemptLowerPriority"),
            class("b", 10, true, "Never"),
            class("c", 1, false, "Never"),
        ];
        let default = global_default(&classes).unwrap();
        assert_eq!(default["metadata"]["name"], "b");
        let mut p = pod(json!({}));
        resolve(&mut p, Some(default)).unwrap();
        assert_eq!(
            p["spec"],
            json!({"priorityClassName": "b", "priority": 10, "preemptionPolicy": "Never"})
        );
    }

    #[test]
    fn updates_keep_what_creation_resolved_and_one_default_at_most() {
        let old = pod(json!({"priority": 5, "preemptionPolicy": "Never"}));
        let mut new = pod(json!({"containers": []}));
        keep(&mut new, &old);
        assert_eq!(new["spec"]["priority"], 5);
        assert_eq!(new["spec"]["preemptionPolicy"], "Never");

        let current = class("a", 1, true, "Never");
        assert!(check_default(&class("b", 2, false, "Never"), Some(&current)).is_ok());
        assert!(check_default(&class("a", 3, true, "Never"), Some(&current)).is_ok());
        assert_eq!(
            check_default(&class("b", 2, true, "Never"), Some(&current)).unwrap_err(),
            "PriorityClass a is already marked as default. Only one default can exist"
        );
        assert!(check_default(&class("b", 2, true, "Never"), None).is_ok());
    }
}

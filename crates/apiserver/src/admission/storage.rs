//! Storage admission, free of I/O, as upstream's plugins: DefaultStorageClass (a new claim that names no
//! class gets the default StorageClass), StorageObjectInUseProtection (new claims and volumes carry the
//! `kubernetes.io/pvc-protection` / `kubernetes.io/pv-protection` finalizer) and PersistentVolumeClaimResize
//! (a claim grows only when bound, and only if its StorageClass allows volume expansion).

use gantry_api::validate::quantity::Quantity;
use serde_json::{Value, json};

/// The annotation that makes a StorageClass the default.
pub(crate) const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// Its beta form, still honoured upstream.
const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// The beta annotation naming a claim's class, which wins over `spec.storageClassName`.
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";
/// The finalizer that keeps a claim while pods use it.
pub(crate) const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The finalizer that keeps a volume while a claim is bound to it.
pub(crate) const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

const RESIZE_UNBOUND: &str = "Only bound persistent volume claims can be expanded";
const RESIZE_NOT_ALLOWED: &str = "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize";

fn annotation<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}

fn is_default(class: &Value) -> bool {
    annotation(class, DEFAULT_CLASS_ANNOTATION) == Some("true")
        || annotation(class, BETA_DEFAULT_CLASS_ANNOTATION) == Some("true")
}

fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn created(object: &Value) -> &str {
    object
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The default among `classes` (upstream's `GetDefaultClass`): the newest marked one, the first by name
/// among those created in the same second.
pub(crate) fn default_class<'a>(classes: impl IntoIterator<Item = &'a Value>) -> Option<&'a Value> {
    // RFC 3339 timestamps in UTC compare as strings.
    classes
        .into_iter()
        .filter(|c| is_default(c))
        .min_by(|a, b| {
            created(b)
                .cmp(created(a))
                .then_with(|| name_of(a).cmp(name_of(b)))
        })
}

/// Whether a claim names a class (upstream's `PersistentVolumeClaimHasClass`): the beta annotation, or
/// `spec.storageClassName` present and not null — `""` is a choice (no class), not an absence.
pub(crate) fn has_class(claim: &Value) -> bool {
    claim
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(BETA_CLASS_ANNOTATION))
        .is_some()
        || claim
            .pointer("/spec/storageClassName")
            .is_some_and(|c| !c.is_null())
}

/// The class a claim names (the beta annotation first, as upstream's `GetPersistentVolumeClaimClass`).
fn class_of(claim: &Value) -> &str {
    annotation(claim, BETA_CLASS_ANNOTATION)
        .or_else(|| {
            claim
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
        })
        .unwrap_or_default()
}

/// DefaultStorageClass: gives a new claim that names no class the default among `classes`, if there is
/// one; whether it did.
pub(crate) fn set_default_class(claim: &mut Value, classes: &[Value]) -> bool {
    if has_class(claim) {
        return false;
    }
    let Some(class) = default_class(classes) else {
        return false;
    };
    let name = name_of(class).to_owned();
    let Some(fields) = claim.as_object_mut() else {
        return false;
    };
    let spec = fields.entry("spec").or_insert_with(|| json!({}));
    if !spec.is_object() {
        *spec = json!({});
    }
    spec["storageClassName"] = json!(name);
    true
}

/// StorageObjectInUseProtection: adds `finalizer` to a new object unless it already has it.
pub(crate) fn protect(object: &mut Value, finalizer: &str) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
    if !finalizers.is_array() {
        *finalizers = json!([]);
    }
    if let Some(list) = finalizers.as_array_mut()
        && !list.iter().any(|f| f.as_str() == Some(finalizer))
    {
        list.push(json!(finalizer));
    }
}

fn requested_storage(claim: &Value) -> Quantity {
    claim
        .pointer("/spec/resources/requests/storage")
        .and_then(|q| Quantity::from_json(q).ok())
        .unwrap_or_else(|| Quantity::from_units(0))
}

/// The class a claim's growth needs (its name, unchanged by the update), if the update grows it; an error
/// when a claim that is not bound grows.
pub(crate) fn resize_class<'a>(claim: &'a Value, old: &Value) -> Result<Option<&'a str>, String> {
    if requested_storage(claim) <= requested_storage(old) {
        return Ok(None);
    }
    if old.pointer("/status/phase").and_then(Value::as_str) != Some("Bound") {
        return Err(RESIZE_UNBOUND.to_owned());
    }
    Ok(Some(class_of(claim)))
}

/// PersistentVolumeClaimResize: whether a claim that grows may (its class, read by the caller from
/// [`resize_class`], must be unchanged, exist and allow volume expansion).
pub(crate) fn check_resize(
    claim: &Value,
    old: &Value,
    class: Option<&Value>,
) -> Result<(), String> {
    let name = class_of(claim);
    let allowed = !name.is_empty()
        && name == class_of(old)
        && class
            .is_some_and(|c| c.get("allowVolumeExpansion").and_then(Value::as_bool) == Some(true));
    if allowed {
        Ok(())
    } else {
        Err(RESIZE_NOT_ALLOWED.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, created: &str, default: Option<&str>, expand: Option<bool>) -> Value {
        let mut c = json!({"metadata": {"name": name, "creationTimestamp": created},
            "provisioner": "p"});
        if let Some(d) = default {
            c["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: d});
        }
        if let Some(e) = expand {
            c["allowVolumeExpansion"] = json!(e);
        }
        c
    }

    fn claim(spec: Value) -> Value {
        json!({"metadata": {"name": "data"}, "spec": spec})
    }

    #[test]
    fn the_newest_default_class_wins_then_the_first_by_name() {
        let classes = [
            class("old", "2025-01-01T00:00:00Z", Some("true"), None),
            class("new", "2025-02-01T00:00:00Z", Some("true"), None),
            class(
                "newest-but-not-default",
                "2025-03-01T00:00:00Z",
                Some("false"),
                None,
            ),
            class("plain", "2025-04-01T00:00:00Z", None, None),
        ];
        assert_eq!(name_of(default_class(&classes).unwrap()), "new");
        let tie = [
            class("b", "2025-02-01T00:00:00Z", Some("true"), None),
            class("a", "2025-02-01T00:00:00Z", Some("true"), None),
        ];
        assert_eq!(name_of(default_class(&tie).unwrap()), "a");
        let beta = json!({"metadata": {"name": "beta",
            "annotations": {BETA_DEFAULT_CLASS_ANNOTATION: "true"}}});
        assert_eq!(name_of(default_class([&beta]).unwrap()), "beta");
        assert!(default_class(&classes[2..]).is_none());
    }

    #[test]
    fn a_claim_without_a_class_gets_the_default() {
        let classes = [class(
            "local-path",
            "2025-01-01T00:00:00Z",
            Some("true"),
            None,
        )];
        let mut c = claim(json!({"resources": {"requests": {"storage": "1Gi"}}}));
        assert!(set_default_class(&mut c, &classes));
        assert_eq!(c["spec"]["storageClassName"], "local-path");
        let mut null = claim(json!({"storageClassName": null}));
        assert!(set_default_class(&mut null, &classes));
        assert_eq!(null["spec"]["storageClassName"], "local-path");
        // "" asks for no class; a named class or the beta annotation is kept.
        for mut kept in [
            claim(json!({"storageClassName": ""})),
            claim(json!({"storageClassName": "fast"})),
            json!({"metadata": {"name": "d", "annotations": {BETA_CLASS_ANNOTATION: "slow"}},
                "spec": {}}),
        ] {
            let before = kept.clone();
            assert!(!set_default_class(&mut kept, &classes));
            assert_eq!(kept, before);
        }
        // No default class: nothing is set.
        let mut c = claim(json!({}));
        assert!(!set_default_class(&mut c, &[]));
        assert!(c["spec"].get("storageClassName").is_none());
    }

    #[test]
    fn new_claims_and_volumes_are_protected_once() {
        let mut c = claim(json!({}));
        protect(&mut c, PVC_PROTECTION);
        assert_eq!(c["metadata"]["finalizers"], json!([PVC_PROTECTION]));
        protect(&mut c, PVC_PROTECTION);
        assert_eq!(c["metadata"]["finalizers"], json!([PVC_PROTECTION]));
        let mut v = json!({"metadata": {"name": "pv", "finalizers": ["example.com/keep"]}});
        protect(&mut v, PV_PROTECTION);
        assert_eq!(
            v["metadata"]["finalizers"],
            json!(["example.com/keep", PV_PROTECTION])
        );
    }

    fn sized(size: &str, class: &str, phase: &str) -> Value {
        json!({"metadata": {"name": "data"},
            "spec": {"storageClassName": class, "resources": {"requests": {"storage": size}}},
            "status": {"phase": phase}})
    }

    #[test]
    fn only_bound_claims_of_expandable_classes_grow() {
        let old = sized("1Gi", "fast", "Bound");
        // Not growing (same, smaller, or 1024Mi = 1Gi): nothing to check.
        for new in ["1Gi", "512Mi", "1024Mi"] {
            assert_eq!(resize_class(&sized(new, "fast", "Bound"), &old), Ok(None));
        }
        let grown = sized("2Gi", "fast", "Bound");
        assert_eq!(resize_class(&grown, &old), Ok(Some("fast")));
        assert_eq!(
            resize_class(&grown, &sized("1Gi", "fast", "Pending")).unwrap_err(),
            RESIZE_UNBOUND
        );
        let expandable = class("fast", "2025-01-01T00:00:00Z", None, Some(true));
        assert!(check_resize(&grown, &old, Some(&expandable)).is_ok());
        for class in [
            None,
            Some(class("fast", "2025-01-01T00:00:00Z", None, Some(false))),
            Some(class("fast", "2025-01-01T00:00:00Z", None, None)),
        ] {
            assert_eq!(
                check_resize(&grown, &old, class.as_ref()).unwrap_err(),
                "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
            );
        }
        // A claim without a class, or whose class changes, never grows.
        let classless = sized("2Gi", "", "Bound");
        assert!(check_resize(&classless, &sized("1Gi", "", "Bound"), None).is_err());
        assert!(check_resize(&grown, &sized("1Gi", "slow", "Bound"), Some(&expandable)).is_err());
        // A claim that had no request counts from zero.
        let no_request =
            json!({"spec": {"storageClassName": "fast"}, "status": {"phase": "Bound"}});
        assert_eq!(resize_class(&grown, &no_request), Ok(Some("fast")));
    }
}

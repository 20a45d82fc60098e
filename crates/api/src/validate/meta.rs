//! `metadata` of every kind: core's `ValidateObjectMeta` / `ValidateObjectMetaUpdate` (apimachinery's checks
//! plus the Kubernetes finalizer-name rule). Whether an object may have a namespace is the REST engine's
//! business and not checked here.

use serde_json::Value;

use super::common::{
    Errors, IMMUTABLE, Path, annotations_at, get, labels_at, list, opt_str, qualified_name, str_at,
    strings,
};
use crate::field::{FieldError, go_format_value};
use crate::validation;

/// How a kind's `metadata.name` must look (upstream's `ValidateNameFunc`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// `NameIsDNSSubdomain`: most kinds.
    Subdomain,
    /// `NameIsDNSLabel`: Namespaces, StatefulSets.
    Label,
    /// `NameIsDNS1035Label`: Services.
    Dns1035,
    /// `ValidatePathSegmentName`: RBAC kinds and anything without its own rule.
    PathSegment,
}

impl NameRule {
    pub(crate) fn check(self, name: &str, prefix: bool) -> Vec<String> {
        match self {
            Self::Subdomain => validation::name_is_dns_subdomain(name, prefix),
            Self::Label => validation::name_is_dns_label(name, prefix),
            Self::Dns1035 => validation::name_is_dns1035_label(name, prefix),
            Self::PathSegment if prefix => ["/", "%"]
                .into_iter()
                .filter(|c| name.contains(c))
                .map(|c| format!("may not contain '{c}'"))
                .collect(),
            Self::PathSegment => validation::is_valid_path_segment_name(name),
        }
    }
}

/// The `metadata` of an object (`{}` when absent).
pub(crate) fn of(object: &Value) -> &Value {
    static EMPTY: Value = Value::Null;
    object.get("metadata").unwrap_or(&EMPTY)
}

/// `ValidateObjectMeta` for a new object.
pub(crate) fn create(object: &Value, rule: NameRule) -> Errors {
    create_with(object, rule, true)
}

/// [`create`], with the Kubernetes finalizer-name rule (`kube_finalizers`) or without it, as apimachinery
/// validates kinds from outside Kubernetes' own API packages (CRDs and custom resources).
pub(crate) fn create_with(object: &Value, rule: NameRule, kube_finalizers: bool) -> Errors {
    let meta = of(object);
    let path = Path::new("metadata");
    let mut errs = Vec::new();
    let generate_name = str_at(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in rule.check(generate_name, true) {
            errs.push(FieldError::invalid(
                path.child("generateName"),
                generate_name,
                msg,
            ));
        }
    }
    let name = str_at(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            path.child("name"),
            "name or generateName is required",
        ));
    } else {
        for msg in rule.check(name, false) {
            errs.push(FieldError::invalid(path.child("name"), name, msg));
        }
    }
    errs.extend(common(meta, &path));
    errs.extend(finalizers(meta, &path));
    if kube_finalizers {
        errs.extend(kube_finalizer_names(meta, &path));
    }
    errs
}

/// `ValidateObjectMetaUpdate`: names are fixed, a given uid must not change, and a deleted object gets no
/// new finalizers. (`resourceVersion` and `generation` are the REST engine's to manage.)
pub(crate) fn update(new: &Value, old: &Value) -> Errors {
    update_with(new, old, true)
}

/// [`update`], with or without the Kubernetes finalizer-name rule (see [`create_with`]).
pub(crate) fn update_with(new: &Value, old: &Value, kube_finalizers: bool) -> Errors {
    let (meta, old_meta) = (of(new), of(old));
    let path = Path::new("metadata");
    let mut errs = Vec::new();
    if get(old_meta, "deletionTimestamp").is_some() {
        let old_finalizers = strings(old_meta, "finalizers");
        let mut extra: Vec<&str> = strings(meta, "finalizers")
            .into_iter()
            .filter(|f| !old_finalizers.contains(f))
            .collect();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            errs.push(FieldError::forbidden(
                path.child("finalizers"),
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    go_format_value(&Value::from(extra))
                ),
            ));
        }
    }
    for key in ["name", "namespace"] {
        let (now, before) = (str_at(meta, key), str_at(old_meta, key));
        if now != before {
            errs.push(FieldError::invalid(path.child(key), now, IMMUTABLE));
        }
    }
    if let (Some(now), Some(before)) = (opt_str(meta, "uid"), opt_str(old_meta, "uid"))
        && !now.is_empty()
        && now != before
    {
        errs.push(FieldError::invalid(path.child("uid"), now, IMMUTABLE));
    }
    errs.extend(common(meta, &path));
    if kube_finalizers {
        errs.extend(kube_finalizer_names(meta, &path));
    }
    errs
}

/// Labels, annotations, owner references and managed fields: checked on create and update alike.
fn common(meta: &Value, path: &Path) -> Errors {
    let mut errs = labels_at(meta, "labels", &path.child("labels"));
    errs.extend(annotations_at(
        meta,
        "annotations",
        &path.child("annotations"),
    ));
    errs.extend(owner_references(meta, &path.child("ownerReferences")));
    errs.extend(managed_fields(meta, &path.child("managedFields")));
    errs
}

/// `ValidateOwnerReferences`; upstream reports each reference's fields without its index.
fn owner_references(meta: &Value, path: &Path) -> Errors {
    let refs = list(meta, "ownerReferences");
    let mut errs = Vec::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        let api_version = str_at(r, "apiVersion");
        let version = match api_version.split('/').collect::<Vec<_>>().as_slice() {
            [v] => *v,
            [_, v] => *v,
            _ => "",
        };
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        if version.is_empty() {
            errs.push(FieldError::invalid(
                path.child("apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        for key in ["kind", "name", "uid"] {
            if str_at(r, key).is_empty() {
                errs.push(FieldError::invalid(
                    path.child(key),
                    "",
                    "must not be empty",
                ));
            }
        }
        if group.is_empty() && version == "v1" && str_at(r, "kind") == "Event" {
            errs.push(FieldError::invalid(
                path,
                r.clone(),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{}/{}", str_at(r, "kind"), str_at(r, "name"));
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    Value::Array(refs.to_vec()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// `ValidateFinalizers`: qualified names (reported at `metadata.finalizers`), not both orphan and foreground.
fn finalizers(meta: &Value, path: &Path) -> Errors {
    let path = path.child("finalizers");
    let names = strings(meta, "finalizers");
    let mut errs: Errors = names
        .iter()
        .flat_map(|f| qualified_name(f, &path))
        .collect();
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        errs.push(FieldError::invalid(
            &path,
            Value::from(names.clone()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// `validateKubeFinalizerName`: a finalizer without a `/` must be a standard one.
pub(crate) fn kube_finalizer_name(name: &str, path: &Path) -> Errors {
    let standard = ["kubernetes", "orphan", "foregroundDeletion"];
    if !name.contains('/') && !standard.contains(&name) {
        return vec![FieldError::invalid(
            path,
            name,
            "name is neither a standard finalizer name nor is it fully qualified",
        )];
    }
    Vec::new()
}

fn kube_finalizer_names(meta: &Value, path: &Path) -> Errors {
    let path = path.child("finalizers");
    strings(meta, "finalizers")
        .iter()
        .enumerate()
        .flat_map(|(i, f)| kube_finalizer_name(f, &path.index(i)))
        .collect()
}

/// `ValidateManagedFields`: operation `Apply` or `Update`, fieldsType `FieldsV1`.
fn managed_fields(meta: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    for (i, entry) in list(meta, "managedFields").iter().enumerate() {
        let p = path.index(i);
        let operation = str_at(entry, "operation");
        if !matches!(operation, "Apply" | "Update") {
            errs.push(FieldError::invalid(
                p.child("operation"),
                operation,
                "must be `Apply` or `Update`",
            ));
        }
        let fields_type = str_at(entry, "fieldsType");
        if !fields_type.is_empty() && fields_type != "FieldsV1" {
            errs.push(FieldError::invalid(
                p.child("fieldsType"),
                fields_type,
                "must be `FieldsV1`",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(errs: Errors) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn names_by_rule() {
        let obj = |name: &str| json!({"metadata": {"name": name}});
        assert!(create(&obj("web.example"), NameRule::Subdomain).is_empty());
        assert!(!create(&obj("web.example"), NameRule::Label).is_empty());
        assert!(!create(&obj("1web"), NameRule::Dns1035).is_empty());
        assert!(create(&obj("system:admin"), NameRule::PathSegment).is_empty());
        assert_eq!(
            msgs(create(&obj("a/b"), NameRule::PathSegment)),
            ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
        );
        assert_eq!(
            msgs(create(&json!({"metadata": {}}), NameRule::Subdomain)),
            ["metadata.name: Required value: name or generateName is required"]
        );
        let errs = msgs(create(
            &json!({"metadata": {"generateName": "Web-", "name": "web-abcde"}}),
            NameRule::Subdomain,
        ));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with(
            "metadata.generateName: Invalid value: \"Web-\": a lowercase RFC 1123 subdomain"
        ));
    }

    #[test]
    fn labels_annotations_owners_finalizers() {
        let obj = json!({"metadata": {
            "name": "x",
            "labels": {"app": "-bad"},
            "annotations": {"a/b/c": ""},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1", "controller": true},
                {"apiVersion": "", "kind": "", "name": "", "uid": "", "controller": true}
            ],
            "finalizers": ["example.com/cleanup", "custom", "orphan", "foregroundDeletion"]
        }});
        let errs = msgs(create(&obj, NameRule::Subdomain));
        assert!(
            errs[0].starts_with("metadata.labels: Invalid value: \"-bad\": a valid label must")
        );
        assert!(
            errs[1].starts_with(
                "metadata.annotations: Invalid value: \"a/b/c\": a qualified name must"
            )
        );
        assert_eq!(
            errs[2],
            "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty"
        );
        assert_eq!(
            errs[3],
            "metadata.ownerReferences.kind: Invalid value: \"\": must not be empty"
        );
        assert_eq!(
            errs[4],
            "metadata.ownerReferences.name: Invalid value: \"\": must not be empty"
        );
        assert_eq!(
            errs[5],
            "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty"
        );
        assert!(errs[6].ends_with("Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/rs and /"));
        assert!(errs[7].ends_with("finalizer orphan and foregroundDeletion cannot be both set"));
        assert_eq!(
            errs[8],
            "metadata.finalizers[1]: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
        );
        assert_eq!(errs.len(), 9);
    }

    #[test]
    fn updates() {
        let old = json!({"metadata": {"name": "a", "namespace": "ns", "uid": "1", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["x.io/a"]}});
        let new = json!({"metadata": {"name": "b", "namespace": "ns", "uid": "2", "finalizers": ["x.io/a", "x.io/b"]}});
        assert_eq!(
            msgs(update(&new, &old)),
            [
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"x.io/b\"}",
                "metadata.name: Invalid value: \"b\": field is immutable",
                "metadata.uid: Invalid value: \"2\": field is immutable",
            ]
        );
        // A PUT without a uid keeps the stored one.
        let new = json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert!(
            update(
                &new,
                &json!({"metadata": {"name": "a", "namespace": "ns", "uid": "1"}})
            )
            .is_empty()
        );
    }
}

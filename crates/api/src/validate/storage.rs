//! Storage: PersistentVolumeClaims (and the claim templates of ephemeral volumes), PersistentVolumes and
//! StorageClasses, with their update rules (claims keep their spec except a storage request increase;
//! volumes keep their source).

use serde_json::Value;

use super::common::{
    Errors, IMMUTABLE, Path, diff, dns_subdomain, get, immutable, label_selector, list, map_at,
    normalized, not_supported, opt_str, qualified_name, semantic_eq, str_at, strings,
};
use super::container::{parse_quantity, resource_quantity};
use super::meta::{self, NameRule};
use super::pod::node_selector;
use super::volume::{csi_driver_name, path_no_backsteps};
use crate::field::FieldError;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];

fn access_modes(spec: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let (mut rwop, mut other) = (false, false);
    for mode in strings(spec, "accessModes") {
        if !ACCESS_MODES.contains(&mode) {
            errs.push(not_supported(path, mode, ACCESS_MODES));
        } else if mode == "ReadWriteOncePod" {
            rwop = true;
        } else {
            other = true;
        }
    }
    if rwop && other {
        errs.push(FieldError::forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    errs
}

/// `ValidatePositiveQuantityValue` after the quantity parses.
fn positive_quantity(name: &str, raw: &Value, path: &Path) -> Errors {
    match parse_quantity(raw, path) {
        Ok(q) if q.nanos() <= 0 => vec![FieldError::invalid(
            path,
            q.to_string(),
            "must be greater than zero",
        )],
        Ok(q) => resource_quantity(name, &q, path),
        Err(e) => vec![e],
    }
}

fn class_name(spec: &Value, key: &str, path: &Path) -> Errors {
    match opt_str(spec, key) {
        Some(name) if !name.is_empty() => dns_subdomain(name, &path.child(key)),
        _ => Vec::new(),
    }
}

fn volume_mode(spec: &Value, path: &Path) -> Errors {
    match opt_str(spec, "volumeMode") {
        Some(mode) if !VOLUME_MODES.contains(&mode) => {
            vec![not_supported(&path.child("volumeMode"), mode, VOLUME_MODES)]
        }
        _ => Vec::new(),
    }
}

/// `ValidatePersistentVolumeClaimSpec`.
pub(crate) fn claim_spec(spec: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let modes = path.child("accessModes");
    if list(spec, "accessModes").is_empty() {
        errs.push(FieldError::required(
            &modes,
            "at least 1 access mode is required",
        ));
    }
    errs.extend(label_selector(
        get(spec, "selector"),
        &path.child("selector"),
    ));
    errs.extend(access_modes(spec, &modes));
    let storage_path = path.child("resources").key("storage");
    match get(spec, "resources")
        .and_then(|r| map_at(r, "requests"))
        .and_then(|r| r.get("storage"))
    {
        None => errs.push(FieldError::required(&storage_path, "")),
        Some(raw) => errs.extend(positive_quantity("storage", raw, &storage_path)),
    }
    errs.extend(class_name(spec, "storageClassName", path));
    errs.extend(volume_mode(spec, path));
    if let Some(source) = get(spec, "dataSource") {
        errs.extend(data_source(source, &path.child("dataSource")));
    }
    if let Some(source) = get(spec, "dataSourceRef") {
        errs.extend(data_source(source, &path.child("dataSourceRef")));
    }
    let data_source_path = path.child("dataSource").to_string();
    match (get(spec, "dataSource"), get(spec, "dataSourceRef")) {
        (Some(_), Some(r)) if opt_str(r, "namespace").is_some_and(|n| !n.is_empty()) => {
            errs.push(FieldError::invalid(
                path,
                data_source_path,
                "may not be specified when dataSourceRef.namespace is specified",
            ));
        }
        (Some(s), Some(r))
            if ["apiGroup", "kind", "name"]
                .iter()
                .any(|k| opt_str(s, k) != opt_str(r, k)) =>
        {
            errs.push(FieldError::invalid(
                path,
                data_source_path,
                "must match dataSourceRef",
            ));
        }
        _ => {}
    }
    errs
}

/// `validateDataSource` / `validateDataSourceRef`.
fn data_source(source: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    for key in ["name", "kind"] {
        if str_at(source, key).is_empty() {
            errs.push(FieldError::required(path.child(key), ""));
        }
    }
    let group = str_at(source, "apiGroup");
    let kind = str_at(source, "kind");
    if group.is_empty() && kind != "PersistentVolumeClaim" {
        errs.push(FieldError::invalid(
            path,
            kind,
            "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
        ));
    }
    if !group.is_empty() {
        errs.extend(dns_subdomain(group, &path.child("apiGroup")));
    }
    if let Some(ns) = opt_str(source, "namespace").filter(|n| !n.is_empty()) {
        errs.extend(
            crate::validation::name_is_dns_label(ns, false)
                .into_iter()
                .map(|m| FieldError::invalid(path.child("namespace"), ns, m)),
        );
    }
    errs
}

/// `ValidatePersistentVolumeClaimTemplate`: only labels and annotations in its metadata, then the spec.
pub(crate) fn claim_template(template: &Value, path: &Path) -> Errors {
    let meta_path = path.child("metadata");
    let mut errs = Vec::new();
    if let Some(meta) = get(template, "metadata") {
        errs.extend(super::common::annotations_at(
            meta,
            "annotations",
            &meta_path.child("annotations"),
        ));
        errs.extend(super::common::labels_at(
            meta,
            "labels",
            &meta_path.child("labels"),
        ));
        for (key, value) in meta.as_object().into_iter().flatten() {
            let set = !semantic_eq(Some(value), None);
            if set && !matches!(key.as_str(), "labels" | "annotations") {
                errs.push(FieldError::forbidden(meta_path.child(key), "cannot be set"));
            }
        }
    }
    errs.extend(claim_spec(
        template.get("spec").unwrap_or(&Value::Null),
        &path.child("spec"),
    ));
    errs
}

fn spec_of(object: &Value) -> &Value {
    object.get("spec").unwrap_or(&Value::Null)
}

pub(crate) fn claim_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    errs.extend(claim_spec(spec_of(object), &Path::new("spec")));
    errs
}

/// `ValidatePersistentVolumeClaimUpdate`.
pub(crate) fn claim_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(claim_spec(spec_of(new), &Path::new("spec")));
    let (new_spec, old_spec) = (spec_of(new), spec_of(old));
    let mut new_clone = new_spec.clone();
    let mut old_clone = old_spec.clone();
    if str_at(old_spec, "volumeName").is_empty() {
        set(
            &mut old_clone,
            "volumeName",
            new_spec.get("volumeName").cloned(),
        );
    }
    if opt_str(old_spec, "storageClassName").is_none()
        && opt_str(new_spec, "storageClassName").is_some()
    {
        set(
            &mut old_clone,
            "storageClassName",
            new_spec.get("storageClassName").cloned(),
        );
    }
    let bound = new.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
    let old_storage = old_spec.pointer("/resources/requests/storage").cloned();
    if bound
        && let Some(requests) = new_clone
            .pointer_mut("/resources/requests")
            .and_then(Value::as_object_mut)
    {
        match &old_storage {
            Some(s) => {
                requests.insert("storage".to_owned(), s.clone());
            }
            None => {
                requests.remove("storage");
            }
        }
    }
    if normalized(&new_clone) != normalized(&old_clone) {
        errs.push(FieldError::forbidden(
            "spec",
            format!(
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n{}",
                diff(&old_clone, &new_clone, &Path::new("spec"))
            ),
        ));
    }
    let quantity = |v: Option<&Value>| v.and_then(|v| super::quantity::Quantity::from_json(v).ok());
    let new_size = quantity(new_spec.pointer("/resources/requests/storage"));
    let old_size = quantity(old_storage.as_ref());
    let status_size = quantity(old.pointer("/status/capacity/storage"));
    if let (Some(new_size), Some(old_size)) = (new_size, old_size)
        && new_size < old_size
        && status_size.is_none_or(|s| new_size <= s)
    {
        errs.push(FieldError::forbidden(
            "spec.resources.requests.storage",
            "field can not be less than status.capacity",
        ));
    }
    errs.extend(immutable(
        new_spec.get("volumeMode"),
        old_spec.get("volumeMode"),
        &Path::new("volumeMode"),
    ));
    errs
}

fn set(target: &mut Value, key: &str, value: Option<Value>) {
    if let Some(obj) = target.as_object_mut() {
        match value {
            Some(v) => {
                obj.insert(key.to_owned(), v);
            }
            None => {
                obj.remove(key);
            }
        }
    }
}

// ---- PersistentVolumes ---------------------------------------------------------------------------------------

/// The members of `PersistentVolumeSource`, in upstream's checking order.
const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

/// `ValidatePersistentVolumeSpec` (not inline).
fn volume_spec(spec: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let modes = path.child("accessModes");
    if list(spec, "accessModes").is_empty() {
        errs.push(FieldError::required(&modes, ""));
    }
    errs.extend(access_modes(spec, &modes));
    let capacity = map_at(spec, "capacity");
    let cap_path = path.child("capacity");
    if capacity.is_none_or(|c| c.is_empty()) {
        errs.push(FieldError::required(&cap_path, ""));
    }
    if capacity.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        errs.push(not_supported(
            &cap_path,
            capacity.map_or(Value::Null, |c| Value::Object(c.clone())),
            &["storage"],
        ));
    }
    for (name, raw) in capacity.into_iter().flatten() {
        errs.extend(positive_quantity(name, raw, &cap_path.key(name)));
    }
    let reclaim = str_at(spec, "persistentVolumeReclaimPolicy");
    if !reclaim.is_empty() && !matches!(reclaim, "Delete" | "Recycle" | "Retain") {
        errs.push(not_supported(
            &path.child("persistentVolumeReclaimPolicy"),
            reclaim,
            &["Delete", "Recycle", "Retain"],
        ));
    }
    let mut node_affinity = false;
    if let Some(affinity) = get(spec, "nodeAffinity") {
        node_affinity = true;
        let p = path.child("nodeAffinity");
        match get(affinity, "required") {
            Some(required) => errs.extend(node_selector(required, &p.child("required"))),
            None => errs.push(FieldError::required(
                p.child("required"),
                "must specify required node constraints",
            )),
        }
    }
    let mut count = 0;
    for key in PV_SOURCES {
        let Some(source) = get(spec, key) else {
            continue;
        };
        if count > 0 {
            errs.push(FieldError::forbidden(
                path.child(key),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        errs.extend(volume_source(key, source, node_affinity, path));
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
    let root_host_path = get(spec, "hostPath").is_some_and(|h| {
        str_at(h, "path").trim_end_matches('/').is_empty() && !str_at(h, "path").is_empty()
    });
    if root_host_path && reclaim == "Recycle" {
        errs.push(FieldError::forbidden(
            path.child("persistentVolumeReclaimPolicy"),
            "may not be 'recycle' for a hostPath mount of '/'",
        ));
    }
    errs.extend(class_name(spec, "storageClassName", path));
    errs.extend(volume_mode(spec, path));
    errs
}

fn volume_source(key: &str, source: &Value, node_affinity: bool, path: &Path) -> Errors {
    let p = path.child(key);
    let required = |keys: &[&str]| -> Errors {
        keys.iter()
            .filter(|k| match source.get(**k) {
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Null) | None => true,
                Some(_) => false,
            })
            .map(|k| FieldError::required(p.child(k), ""))
            .collect()
    };
    match key {
        "hostPath" | "local" => {
            let host = str_at(source, "path");
            let mut errs = if host.is_empty() {
                vec![FieldError::required(p.child("path"), "")]
            } else {
                path_no_backsteps(host, &p.child("path"))
            };
            if key == "local" && !node_affinity {
                errs.push(FieldError::required(
                    path.child("nodeAffinity"),
                    "Local volume requires node affinity",
                ));
            }
            errs
        }
        "nfs" => {
            let mut errs = required(&["server", "path"]);
            let nfs_path = str_at(source, "path");
            if !nfs_path.starts_with('/') {
                errs.push(FieldError::invalid(
                    p.child("path"),
                    nfs_path,
                    "must be an absolute path",
                ));
            }
            errs
        }
        "csi" => {
            let mut errs = csi_driver_name(str_at(source, "driver"), &p.child("driver"));
            errs.extend(required(&["volumeHandle"]));
            errs
        }
        "gcePersistentDisk" => {
            let pd = path.child("persistentDisk");
            if str_at(source, "pdName").is_empty() {
                vec![FieldError::required(pd.child("pdName"), "")]
            } else {
                Vec::new()
            }
        }
        "awsElasticBlockStore" | "cinder" | "portworxVolume" => required(&["volumeID"]),
        "glusterfs" => required(&["endpoints", "path"]),
        "rbd" => required(&["monitors", "image"]),
        "quobyte" => required(&["volume"]),
        "cephfs" => required(&["monitors"]),
        "iscsi" => required(&["targetPortal", "iqn"]),
        "flexVolume" => required(&["driver"]),
        "azureFile" => required(&["secretName", "shareName"]),
        "vsphereVolume" => required(&["volumePath"]),
        "photonPersistentDisk" => required(&["pdID"]),
        "azureDisk" => required(&["diskName", "diskURI"]),
        "scaleIO" => required(&["gateway", "system", "volumeName"]),
        "storageos" => required(&["volumeName"]),
        _ => Vec::new(),
    }
}

pub(crate) fn volume_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    errs.extend(volume_spec(spec_of(object), &Path::new("spec")));
    errs
}

/// `ValidatePersistentVolumeUpdate`: the source is fixed (a CSI expand secret may be added).
pub(crate) fn volume_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(volume_spec(spec_of(new), &Path::new("spec")));
    let source_of = |spec: &Value| -> Value {
        let mut source: serde_json::Map<String, Value> = PV_SOURCES
            .iter()
            .filter_map(|k| get(spec, k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        if let Some(csi) = source.get_mut("csi").and_then(Value::as_object_mut)
            && get(spec_of(old), "csi")
                .is_some_and(|c| get(c, "controllerExpandSecretRef").is_none())
        {
            csi.remove("controllerExpandSecretRef");
        }
        Value::Object(source)
    };
    let (new_source, old_source) = (source_of(spec_of(new)), source_of(spec_of(old)));
    if normalized(&new_source) != normalized(&old_source) {
        errs.push(FieldError::forbidden(
            "spec.persistentvolumesource",
            format!(
                "spec.persistentvolumesource is immutable after creation\n{}",
                diff(&old_source, &new_source, &Path::new("spec"))
            ),
        ));
    }
    errs.extend(immutable(
        spec_of(new).get("volumeMode"),
        spec_of(old).get("volumeMode"),
        &Path::new("volumeMode"),
    ));
    if let Some(old_affinity) = get(spec_of(old), "nodeAffinity")
        && !semantic_eq(get(spec_of(new), "nodeAffinity"), Some(old_affinity))
    {
        errs.push(FieldError::invalid(
            "nodeAffinity",
            get(spec_of(new), "nodeAffinity")
                .cloned()
                .unwrap_or(Value::Null),
            format!("{IMMUTABLE}, except for updating from beta label to GA"),
        ));
    }
    errs
}

// ---- StorageClasses -----------------------------------------------------------------------------------------

pub(crate) fn class_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    let provisioner = str_at(object, "provisioner");
    if provisioner.is_empty() {
        errs.push(FieldError::required("provisioner", ""));
    } else {
        errs.extend(qualified_name(
            &provisioner.to_lowercase(),
            &Path::new("provisioner"),
        ));
    }
    if let Some(policy) = opt_str(object, "reclaimPolicy")
        && !matches!(policy, "Delete" | "Retain")
    {
        errs.push(not_supported(
            &Path::new("reclaimPolicy"),
            policy,
            &["Delete", "Retain"],
        ));
    }
    match opt_str(object, "volumeBindingMode") {
        None => errs.push(FieldError::required("volumeBindingMode", "")),
        Some("Immediate" | "WaitForFirstConsumer") => {}
        Some(mode) => errs.push(not_supported(
            &Path::new("volumeBindingMode"),
            mode,
            &["Immediate", "WaitForFirstConsumer"],
        )),
    }
    errs
}

pub(crate) fn class_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(
        class_create(new)
            .into_iter()
            .filter(|e| !e.field.starts_with("metadata")),
    );
    for (key, message) in [
        ("parameters", "updates to parameters are forbidden."),
        ("provisioner", "updates to provisioner are forbidden."),
        ("reclaimPolicy", "updates to reclaimPolicy are forbidden."),
    ] {
        if !semantic_eq(new.get(key), old.get(key)) {
            errs.push(FieldError::forbidden(key, message));
        }
    }
    errs.extend(immutable(
        new.get("volumeBindingMode"),
        old.get("volumeBindingMode"),
        &Path::new("volumeBindingMode"),
    ));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(errs: Errors) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn claim(spec: Value) -> Value {
        json!({"metadata": {"name": "data", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn claims() {
        let good = claim(
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"}),
        );
        assert!(claim_create(&good).is_empty());
        assert_eq!(
            msgs(claim_create(&claim(json!({"volumeMode": "Filesystem"})))),
            [
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value",
            ]
        );
        assert_eq!(
            msgs(claim_create(&claim(json!({
                "accessModes": ["ReadWriteOncePod", "ReadWriteMany", "Sometimes"],
                "resources": {"requests": {"storage": "0"}},
                "volumeMode": "Raw"
            })))),
            [
                "spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
                "spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
                "spec.volumeMode: Unsupported value: \"Raw\": supported values: \"Block\", \"Filesystem\"",
            ]
        );
    }

    #[test]
    fn claim_updates() {
        let old = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeName": ""},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}});
        let mut grown = old.clone();
        grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        grown["spec"]["volumeName"] = json!("pv-1");
        assert!(claim_update(&grown, &old).is_empty());
        let mut changed = old.clone();
        changed["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        let errs = msgs(claim_update(&changed, &old));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n"));
        let mut shrunk = old.clone();
        shrunk["spec"]["resources"]["requests"]["storage"] = json!("512Mi");
        assert_eq!(
            msgs(claim_update(&shrunk, &old)),
            [
                "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
            ]
        );
    }

    #[test]
    fn volumes() {
        let good = json!({"metadata": {"name": "pv-1"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"},
            "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem",
            "hostPath": {"path": "/mnt/data", "type": ""}
        }});
        assert!(volume_create(&good).is_empty());
        let bad = json!({"metadata": {"name": "pv-1"}, "spec": {"capacity": {"cpu": "1"}, "persistentVolumeReclaimPolicy": "Keep", "local": {"path": "/x"}, "nfs": {"server": "s", "path": "/e"}}});
        assert_eq!(
            msgs(volume_create(&bad)),
            [
                "spec.accessModes: Required value",
                "spec.capacity: Unsupported value: {\"cpu\":\"1\"}: supported values: \"storage\"",
                "spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\"",
                "spec.local: Forbidden: may not specify more than 1 volume type",
            ]
        );
        let mut moved = good.clone();
        moved["spec"]["hostPath"]["path"] = json!("/mnt/other");
        let errs = msgs(volume_update(&moved, &good));
        assert!(errs[0].starts_with("spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation\n"));
    }

    #[test]
    fn storage_classes() {
        let good = json!({"metadata": {"name": "standard"}, "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"});
        assert!(class_create(&good).is_empty());
        let mut changed = good.clone();
        changed["provisioner"] = json!("other.io/x");
        assert_eq!(
            msgs(class_update(&changed, &good)),
            ["provisioner: Forbidden: updates to provisioner are forbidden."]
        );
        assert_eq!(
            msgs(class_create(
                &json!({"metadata": {"name": "x"}, "volumeBindingMode": "Later"})
            )),
            [
                "provisioner: Required value",
                "volumeBindingMode: Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\"",
            ]
        );
    }
}

//! Pod volumes (`ValidateVolumes`, `validateVolumeSource`): unique DNS-label names, exactly one source, and
//! the checks of the sources people use (emptyDir, hostPath, configMap, secret, projected, downwardAPI,
//! persistentVolumeClaim, nfs, csi, ephemeral, image). The deprecated in-tree cloud sources get their
//! required-field checks only.

use std::collections::BTreeMap;

use serde_json::Value;

use super::common::{
    Errors, Path, dns_label, get, int_at, list, map_at, not_supported, opt_str, str_at,
};
use super::container::{object_field_selector, resource_field_selector};
use super::quantity::Quantity;
use super::storage;
use crate::field::FieldError;
use crate::validation;

/// `fileModeErrorMsg`.
const FILE_MODE: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const ONE_TYPE: &str = "may not specify more than 1 volume type";

/// Every `VolumeSource` member in upstream's checking order, with the path upstream reports a second source
/// at (two are misspelt upstream).
const SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

/// The valid volumes by name (what mounts may refer to), and the errors of the invalid ones.
pub(crate) fn volumes<'a>(
    spec: &'a Value,
    pod_name: Option<&str>,
    resource_is_pod: bool,
    path: &Path,
) -> (BTreeMap<String, &'a Value>, Errors) {
    let mut errs = Vec::new();
    let mut valid: BTreeMap<String, &Value> = BTreeMap::new();
    let mut seen: Vec<&str> = Vec::new();
    let created_claims: Vec<String> = match pod_name {
        Some(pod) if !pod.is_empty() => list(spec, "volumes")
            .iter()
            .filter(|v| get(v, "ephemeral").is_some())
            .map(|v| format!("{pod}-{}", str_at(v, "name")))
            .collect(),
        _ => Vec::new(),
    };
    for (i, vol) in list(spec, "volumes").iter().enumerate() {
        let idx = path.index(i);
        let name = str_at(vol, "name");
        let mut el = source(vol, &idx, name, pod_name, resource_is_pod);
        if name.is_empty() {
            el.push(FieldError::required(idx.child("name"), ""));
        } else {
            el.extend(dns_label(name, &idx.child("name")));
        }
        if seen.contains(&name) {
            el.push(FieldError::duplicate(idx.child("name"), name));
        }
        if el.is_empty() {
            seen.push(name);
            valid.insert(name.to_owned(), vol);
        } else {
            errs.extend(el);
        }
        if let Some(claim) = get(vol, "persistentVolumeClaim").and_then(|c| opt_str(c, "claimName"))
            && created_claims.iter().any(|c| c == claim)
        {
            errs.push(FieldError::invalid(
                idx.child("persistentVolumeClaim").child("claimName"),
                claim,
                "must not reference a PVC that gets created for an ephemeral volume",
            ));
        }
    }
    (valid, errs)
}

/// `validateVolumeSource`: exactly one source, each checked.
fn source(
    vol: &Value,
    path: &Path,
    name: &str,
    pod_name: Option<&str>,
    resource_is_pod: bool,
) -> Errors {
    let mut errs = Vec::new();
    let mut count = 0;
    for (key, second_path) in SOURCES {
        let Some(src) = get(vol, key) else {
            continue;
        };
        if count > 0 {
            errs.push(FieldError::forbidden(path.child(second_path), ONE_TYPE));
            continue;
        }
        count += 1;
        errs.extend(one_source(key, src, path, name, pod_name, resource_is_pod));
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
    errs
}

fn one_source(
    key: &str,
    src: &Value,
    path: &Path,
    name: &str,
    pod_name: Option<&str>,
    resource_is_pod: bool,
) -> Errors {
    let p = path.child(key);
    match key {
        "emptyDir" => empty_dir(src, &p),
        "hostPath" => host_path(src, &p),
        "gitRepo" => {
            let mut errs = required_strings(src, &p, &["repository"]);
            errs.extend(local_descending_path(
                str_at(src, "directory"),
                &p.child("directory"),
            ));
            errs
        }
        "gcePersistentDisk" => required_strings(src, &path.child("persistentDisk"), &["pdName"]),
        "awsElasticBlockStore" | "cinder" | "portworxVolume" => {
            required_strings(src, &p, &["volumeID"])
        }
        "secret" => secret_or_config_map(src, &p, "secretName"),
        "configMap" => secret_or_config_map(src, &p, "name"),
        "nfs" => nfs(src, &p),
        "iscsi" => required_strings(src, &p, &["targetPortal", "iqn"]),
        "glusterfs" => required_strings(src, &p, &["endpoints", "path"]),
        "flocker" => flocker(src, &p),
        "persistentVolumeClaim" => required_strings(src, &p, &["claimName"]),
        "rbd" => required_strings(src, &p, &["monitors", "image"]),
        "cephfs" => required_strings(src, &p, &["monitors"]),
        "quobyte" => required_strings(src, &p, &["volume"]),
        "downwardAPI" => downward_api(src, &p),
        "fc" => fc(src, &p),
        "flexVolume" => flex_volume(src, &p),
        "azureFile" => required_strings(src, &p, &["secretName", "shareName"]),
        "vsphereVolume" => required_strings(src, &p, &["volumePath"]),
        "photonPersistentDisk" => required_strings(src, &p, &["pdID"]),
        "azureDisk" => required_strings(src, &p, &["diskName", "diskURI"]),
        "storageos" => required_strings(src, &p, &["volumeName"]),
        "projected" => projected(src, &p),
        "scaleIO" => required_strings(src, &p, &["gateway", "system", "volumeName"]),
        "csi" => csi_driver_name(str_at(src, "driver"), &p.child("driver")),
        "ephemeral" => ephemeral(src, path, name, pod_name),
        "image" => image(src, &p, resource_is_pod),
        _ => Vec::new(),
    }
}

/// `Required value` for each listed field that is empty (a missing string or an empty list).
fn required_strings(src: &Value, path: &Path, keys: &[&str]) -> Errors {
    keys.iter()
        .filter(|k| match src.get(**k) {
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Null) | None => true,
            Some(_) => false,
        })
        .map(|k| FieldError::required(path.child(k), ""))
        .collect()
}

fn empty_dir(src: &Value, path: &Path) -> Errors {
    match get(src, "sizeLimit").map(Quantity::from_json) {
        Some(Ok(q)) if q.is_negative() => vec![FieldError::forbidden(
            path.child("sizeLimit"),
            "SizeLimit field must be a valid resource quantity",
        )],
        Some(Err(e)) => vec![FieldError::invalid(
            path.child("sizeLimit"),
            get(src, "sizeLimit").cloned().unwrap_or(Value::Null),
            e,
        )],
        _ => Vec::new(),
    }
}

const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

fn host_path(src: &Value, path: &Path) -> Errors {
    let p = str_at(src, "path");
    if p.is_empty() {
        return vec![FieldError::required(path.child("path"), "")];
    }
    let mut errs = path_no_backsteps(p, &path.child("path"));
    if let Some(t) = opt_str(src, "type")
        && !HOST_PATH_TYPES.contains(&t)
    {
        errs.push(not_supported(&path.child("type"), t, HOST_PATH_TYPES));
    }
    errs
}

fn nfs(src: &Value, path: &Path) -> Errors {
    let mut errs = required_strings(src, path, &["server", "path"]);
    let p = str_at(src, "path");
    if !p.starts_with('/') {
        errs.push(FieldError::invalid(
            path.child("path"),
            p,
            "must be an absolute path",
        ));
    }
    errs
}

fn flocker(src: &Value, path: &Path) -> Errors {
    let (name, uuid) = (str_at(src, "datasetName"), str_at(src, "datasetUUID"));
    let mut errs = Vec::new();
    if name.is_empty() && uuid.is_empty() {
        errs.push(FieldError::required(
            path,
            "one of datasetName and datasetUUID is required",
        ));
    }
    if !name.is_empty() && !uuid.is_empty() {
        errs.push(FieldError::invalid(
            path,
            "resource",
            "datasetName and datasetUUID can not be specified simultaneously",
        ));
    }
    if name.contains('/') {
        errs.push(FieldError::invalid(
            path.child("datasetName"),
            name,
            "must not contain '/'",
        ));
    }
    errs
}

fn fc(src: &Value, path: &Path) -> Errors {
    let wwns = list(src, "targetWWNs");
    let wwids = list(src, "wwids");
    let mut errs = Vec::new();
    if wwns.is_empty() && wwids.is_empty() {
        errs.push(FieldError::required(
            path.child("targetWWNs"),
            "must specify either targetWWNs or wwids, but not both",
        ));
    }
    if !wwns.is_empty() && !wwids.is_empty() {
        errs.push(FieldError::invalid(
            path.child("targetWWNs"),
            Value::Array(wwns.to_vec()),
            "targetWWNs and wwids can not be specified simultaneously",
        ));
    }
    if !wwns.is_empty() {
        match int_at(src, "lun") {
            None => errs.push(FieldError::required(
                path.child("lun"),
                "lun is required if targetWWNs is specified",
            )),
            Some(lun) if !(0..=255).contains(&lun) => errs.push(FieldError::invalid(
                path.child("lun"),
                lun,
                "must be between 0 and 255, inclusive",
            )),
            Some(_) => {}
        }
    }
    errs
}

fn file_mode(src: &Value, key: &str, path: &Path) -> Errors {
    match int_at(src, key) {
        Some(mode) if !(0..=0o777).contains(&mode) => {
            vec![FieldError::invalid(path.child(key), mode, FILE_MODE)]
        }
        _ => Vec::new(),
    }
}

/// `validateSecretVolumeSource` / `validateConfigMapVolumeSource`.
fn secret_or_config_map(src: &Value, path: &Path, name_key: &str) -> Errors {
    let mut errs = required_strings(src, path, &[name_key]);
    errs.extend(file_mode(src, "defaultMode", path));
    let items = path.child("items");
    for (i, item) in list(src, "items").iter().enumerate() {
        errs.extend(key_to_path(item, &items.index(i)));
    }
    errs
}

/// `validateKeyToPath`.
fn key_to_path(item: &Value, path: &Path) -> Errors {
    let mut errs = required_strings(item, path, &["key", "path"]);
    errs.extend(local_non_reserved_path(
        str_at(item, "path"),
        &path.child("path"),
    ));
    errs.extend(file_mode(item, "mode", path));
    errs
}

/// `validatePathNoBacksteps`.
pub(crate) fn path_no_backsteps(p: &str, path: &Path) -> Errors {
    if p.split('/').any(|part| part == "..") {
        return vec![FieldError::invalid(path, p, "must not contain '..'")];
    }
    Vec::new()
}

/// `validateLocalDescendingPath`: relative, no `..` elements.
pub(crate) fn local_descending_path(p: &str, path: &Path) -> Errors {
    let mut errs = Vec::new();
    if p.starts_with('/') {
        errs.push(FieldError::invalid(path, p, "must be a relative path"));
    }
    errs.extend(path_no_backsteps(p, path));
    errs
}

/// `ValidateLocalNonReservedPath`: also may not start with `..`.
fn local_non_reserved_path(p: &str, path: &Path) -> Errors {
    let mut errs = local_descending_path(p, path);
    if p.starts_with("..") && !p.starts_with("../") {
        errs.push(FieldError::invalid(path, p, "must not start with '..'"));
    }
    errs
}

/// `validateDownwardAPIVolumeSource`; upstream reports each item at the source's path, not the item's.
fn downward_api(src: &Value, path: &Path) -> Errors {
    let mut errs = file_mode(src, "defaultMode", path);
    for item in list(src, "items") {
        errs.extend(downward_api_file(item, path));
    }
    errs
}

const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

fn downward_api_file(item: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let p = str_at(item, "path");
    if p.is_empty() {
        errs.push(FieldError::required(path.child("path"), ""));
    }
    errs.extend(local_non_reserved_path(p, &path.child("path")));
    match (get(item, "fieldRef"), get(item, "resourceFieldRef")) {
        (Some(field_ref), resource) => {
            errs.extend(object_field_selector(
                field_ref,
                VOLUME_FIELD_PATHS,
                &path.child("fieldRef"),
            ));
            if resource.is_some() {
                errs.push(FieldError::invalid(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                ));
            }
        }
        (None, Some(resource)) => errs.extend(resource_field_selector(
            resource,
            &path.child("resourceFieldRef"),
            true,
        )),
        (None, None) => errs.push(FieldError::required(
            path,
            "one of fieldRef and resourceFieldRef is required",
        )),
    }
    errs.extend(file_mode(item, "mode", path));
    errs
}

/// `validateProjectedVolumeSource`.
fn projected(src: &Value, path: &Path) -> Errors {
    let mut errs = file_mode(src, "defaultMode", path);
    let mut all_paths: Vec<String> = Vec::new();
    let mut note_path = |p: &str, bad: &str, errs: &mut Errors| {
        if all_paths.iter().any(|x| x == p) {
            errs.push(FieldError::invalid(
                path,
                bad,
                "conflicting duplicate paths",
            ));
        } else {
            all_paths.push(p.to_owned());
        }
    };
    for (i, source) in list(src, "sources").iter().enumerate() {
        let src_path = path.child("sources").index(i);
        let mut count = 0;
        for key in ["secret", "configMap"] {
            let Some(s) = get(source, key) else {
                continue;
            };
            count += 1;
            let p = src_path.child(key);
            errs.extend(required_strings(s, &p, &["name"]));
            for (j, item) in list(s, "items").iter().enumerate() {
                errs.extend(key_to_path(item, &p.child("items").index(j)));
                let item_path = str_at(item, "path");
                if !item_path.is_empty() {
                    note_path(item_path, str_at(s, "name"), &mut errs);
                }
            }
        }
        if let Some(d) = get(source, "downwardAPI") {
            count += 1;
            let p = src_path.child("downwardAPI");
            for item in list(d, "items") {
                errs.extend(downward_api_file(item, &p));
                let item_path = str_at(item, "path");
                if !item_path.is_empty() {
                    note_path(item_path, item_path, &mut errs);
                }
            }
        }
        if let Some(token) = get(source, "serviceAccountToken") {
            count += 1;
            errs.extend(service_account_token(
                token,
                &src_path.child("serviceAccountToken"),
                path,
            ));
        }
        if get(source, "clusterTrustBundle").is_some() {
            count += 1;
        }
        if count > 1 {
            errs.push(FieldError::forbidden(
                &src_path,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
    errs
}

fn service_account_token(token: &Value, path: &Path, projected: &Path) -> Errors {
    let mut errs = Vec::new();
    let expiration = int_at(token, "expirationSeconds").unwrap_or(0);
    if expiration < 600 {
        errs.push(FieldError::invalid(
            path.child("expirationSeconds"),
            expiration,
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > 1 << 32 {
        errs.push(FieldError::invalid(
            path.child("expirationSeconds"),
            expiration,
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let p = str_at(token, "path");
    if p.is_empty() {
        errs.push(FieldError::required(projected.child("path"), ""));
    } else {
        errs.extend(local_non_reserved_path(p, &projected.child("path")));
    }
    errs
}

/// `ValidateCSIDriverName`.
pub(crate) fn csi_driver_name(driver: &str, path: &Path) -> Errors {
    let mut errs = Vec::new();
    if driver.is_empty() {
        errs.push(FieldError::required(path, ""));
    }
    if driver.len() > 63 {
        errs.push(FieldError::too_long(path, 63));
    }
    for msg in validation::is_dns1123_subdomain(&driver.to_lowercase()) {
        errs.push(FieldError::invalid(path, driver, msg));
    }
    errs
}

/// `validateEphemeralVolumeSource` and the name of the claim it creates.
fn ephemeral(src: &Value, vol_path: &Path, name: &str, pod_name: Option<&str>) -> Errors {
    let path = vol_path.child("ephemeral");
    let Some(template) = get(src, "volumeClaimTemplate") else {
        return vec![FieldError::required(path.child("volumeClaimTemplate"), "")];
    };
    let mut errs = storage::claim_template(template, &path.child("volumeClaimTemplate"));
    if let Some(pod) = pod_name.filter(|p| !p.is_empty())
        && !name.is_empty()
    {
        let claim = format!("{pod}-{name}");
        for msg in validation::is_dns1123_subdomain(&claim) {
            errs.push(FieldError::invalid(
                path.child("name"),
                name,
                format!("PVC name {}: {msg}", crate::field::go_quote(&claim)),
            ));
        }
    }
    errs
}

fn image(src: &Value, path: &Path, resource_is_pod: bool) -> Errors {
    let mut errs = Vec::new();
    if resource_is_pod && str_at(src, "reference").is_empty() {
        errs.push(FieldError::required(path.child("reference"), ""));
    }
    errs.extend(super::container::pull_policy(
        str_at(src, "pullPolicy"),
        &path.child("pullPolicy"),
    ));
    errs
}

/// Names that every valid volume of a spec has.
#[cfg(test)]
fn names(spec: &Value) -> Vec<String> {
    volumes(spec, None, false, &Path::new("spec").child("volumes"))
        .0
        .into_keys()
        .collect()
}

/// `validateFlexVolumeSource`: a driver, and options outside the reserved Kubernetes namespaces.
fn flex_volume(src: &Value, path: &Path) -> Errors {
    let mut errs = required_strings(src, path, &["driver"]);
    for key in map_at(src, "options").into_iter().flatten().map(|(k, _)| k) {
        let namespace = key.split_once('/').map_or(key.as_str(), |(n, _)| n);
        let normalized = format!(".{}", namespace.to_lowercase());
        if normalized.ends_with(".kubernetes.io") || normalized.ends_with(".k8s.io") {
            errs.push(FieldError::invalid(
                path.child("options").key(key),
                key.as_str(),
                "kubernetes.io and k8s.io namespaces are reserved",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(spec: &Value) -> Vec<String> {
        volumes(spec, Some("pod"), true, &Path::new("spec").child("volumes"))
            .1
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn valid_volumes() {
        let spec = json!({"volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "app", "defaultMode": 420, "items": [{"key": "a", "path": "a.conf"}]}},
            {"name": "sec", "secret": {"secretName": "s", "defaultMode": 420}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "c"}},
            {"name": "host", "hostPath": {"path": "/var/log", "type": ""}},
            {"name": "info", "downwardAPI": {"defaultMode": 420, "items": [
                {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}}
            ]}},
            {"name": "token", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}
            }}}}
        ]});
        assert_eq!(msgs(&spec), Vec::<String>::new());
        assert_eq!(names(&spec).len(), 8);
    }

    #[test]
    fn invalid_volumes() {
        let spec = json!({"volumes": [
            {"name": "x", "emptyDir": {}, "hostPath": {"path": "/x"}},
            {"name": "a", "emptyDir": {}},
            {"name": "a", "emptyDir": {}},
            {"name": "Bad", "emptyDir": {}},
            {"name": "none"},
            {"name": "cm", "configMap": {"defaultMode": 1000, "items": [{"key": "", "path": "../x"}]}},
            {"name": "hp", "hostPath": {"path": "/a/../b", "type": "Dir"}},
            {"name": "nfs", "nfs": {"server": "s", "path": "rel"}},
            {"name": "dw", "downwardAPI": {"items": [{"path": "x", "fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}]}}
        ]});
        let errs = msgs(&spec);
        let want = [
            "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[2].name: Duplicate value: \"a\"",
        ];
        assert_eq!(errs[..2], want);
        assert!(errs[2].starts_with(
            "spec.volumes[3].name: Invalid value: \"Bad\": a lowercase RFC 1123 label"
        ));
        assert_eq!(
            errs[3],
            "spec.volumes[4]: Required value: must specify a volume type"
        );
        assert_eq!(errs[4], "spec.volumes[5].configMap.name: Required value");
        assert_eq!(
            errs[5],
            "spec.volumes[5].configMap.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive"
        );
        assert_eq!(
            errs[6],
            "spec.volumes[5].configMap.items[0].key: Required value"
        );
        assert_eq!(
            errs[7],
            "spec.volumes[5].configMap.items[0].path: Invalid value: \"../x\": must not contain '..'"
        );
        assert_eq!(
            errs[8],
            "spec.volumes[6].hostPath.path: Invalid value: \"/a/../b\": must not contain '..'"
        );
        assert_eq!(
            errs[9],
            "spec.volumes[6].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\""
        );
        assert_eq!(
            errs[10],
            "spec.volumes[7].nfs.path: Invalid value: \"rel\": must be an absolute path"
        );
        assert_eq!(
            errs[11],
            "spec.volumes[8].downwardAPI.fieldRef.fieldPath: Unsupported value: \"spec.nodeName\": supported values: \"metadata.annotations\", \"metadata.labels\", \"metadata.name\", \"metadata.namespace\", \"metadata.uid\""
        );
        assert_eq!(errs.len(), 12);
    }

    #[test]
    fn projected_and_ephemeral() {
        let spec = json!({"volumes": [
            {"name": "p", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 60, "path": ""}},
                {"secret": {"name": "s"}, "configMap": {"name": "c"}}
            ]}},
            {"name": "e", "ephemeral": {}}
        ]});
        assert_eq!(
            msgs(&spec),
            [
                "spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes",
                "spec.volumes[0].projected.path: Required value",
                "spec.volumes[0].projected.sources[1]: Forbidden: may not specify more than 1 volume type per source",
                "spec.volumes[1].ephemeral.volumeClaimTemplate: Required value",
            ]
        );
    }
}

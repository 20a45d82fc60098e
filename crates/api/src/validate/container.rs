//! Containers of a pod spec (`validateContainers`, `validateInitContainers`, `validateContainerCommon`):
//! names, images, ports, environment, mounts, pull policy, resources, security context, probes and hooks.

use std::collections::BTreeMap;

use serde_json::Value;

use super::common::{
    Errors, IS_NEGATIVE, Path, dns_label, get, int_at, list, map_at, nonnegative, not_supported,
    opt_str, port_name_errors, port_num_errors, port_num_or_name, qualified_name, str_at, strings,
};
use super::quantity::Quantity;
use super::volume::local_descending_path;
use crate::field::FieldError;
use crate::validation;

/// What container checks need from the pod spec around them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PodContext<'a> {
    /// The pod's valid volumes by name.
    pub(crate) volumes: &'a BTreeMap<String, &'a Value>,
    pub(crate) grace_period: Option<i64>,
    pub(crate) restart_policy: &'a str,
    pub(crate) host_users: bool,
}

/// `validateContainers`: at least one, unique names, host ports not shared.
pub(crate) fn containers(spec: &Value, ctx: PodContext<'_>, path: &Path) -> Errors {
    let items = list(spec, "containers");
    if items.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let mut errs = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, c) in items.iter().enumerate() {
        let p = path.index(i);
        errs.extend(common(c, ctx, &p));
        let name = str_at(c, "name");
        if names.contains(&name) {
            errs.push(FieldError::duplicate(p.child("name"), name));
        } else {
            names.push(name);
        }
        if let Some(lifecycle) = get(c, "lifecycle") {
            errs.extend(lifecycle_hooks(
                lifecycle,
                ctx.grace_period,
                &p.child("lifecycle"),
            ));
        }
        errs.extend(probes(c, ctx.grace_period, &p));
        if get(c, "restartPolicy").is_some() {
            errs.push(FieldError::forbidden(
                p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    errs.extend(host_port_conflicts(items, path));
    errs
}

/// `validateInitContainers`: names unique across both lists; probes and hooks only for sidecars.
pub(crate) fn init_containers(spec: &Value, ctx: PodContext<'_>, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let mut names: Vec<&str> = list(spec, "containers")
        .iter()
        .map(|c| str_at(c, "name"))
        .collect();
    for (i, c) in list(spec, "initContainers").iter().enumerate() {
        let p = path.index(i);
        errs.extend(common(c, ctx, &p));
        let mut restart_always = false;
        if let Some(policy) = opt_str(c, "restartPolicy") {
            if policy != "Always" {
                errs.push(not_supported(
                    &p.child("restartPolicy"),
                    policy,
                    &["Always"],
                ));
            }
            restart_always = policy == "Always";
        }
        let name = str_at(c, "name");
        if names.contains(&name) {
            errs.push(FieldError::duplicate(p.child("name"), name));
        } else if !name.is_empty() {
            names.push(name);
        }
        errs.extend(host_port_conflicts(std::slice::from_ref(c), path));
        if restart_always {
            if let Some(lifecycle) = get(c, "lifecycle") {
                errs.extend(lifecycle_hooks(
                    lifecycle,
                    ctx.grace_period,
                    &p.child("lifecycle"),
                ));
            }
            errs.extend(probes(c, ctx.grace_period, &p));
        } else {
            for key in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if get(c, key).is_some() {
                    errs.push(FieldError::forbidden(
                        p.child(key),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
    errs
}

/// `checkHostPortConflicts`: `protocol/hostIP/port` used once.
fn host_port_conflicts(containers: &[Value], path: &Path) -> Errors {
    let mut seen: Vec<String> = Vec::new();
    let mut errs = Vec::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in list(c, "ports").iter().enumerate() {
            let host_port = int_at(port, "hostPort").unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{host_port}",
                str_at(port, "protocol"),
                str_at(port, "hostIP")
            );
            if seen.contains(&key) {
                errs.push(FieldError::duplicate(
                    path.index(ci).child("ports").index(pi).child("hostPort"),
                    key,
                ));
            } else {
                seen.push(key);
            }
        }
    }
    errs
}

/// `validateContainerCommon`, in upstream's order.
fn common(c: &Value, ctx: PodContext<'_>, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let name = str_at(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else {
        errs.extend(dns_label(name, &path.child("name")));
    }
    if str_at(c, "image").is_empty() {
        errs.push(FieldError::required(path.child("image"), ""));
    }
    match str_at(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            path.child("terminationMessagePolicy"),
            "",
        )),
        other => errs.push(not_supported(
            &path.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    errs.extend(ports(c, &path.child("ports")));
    errs.extend(env(c, &path.child("env")));
    errs.extend(env_from(c, &path.child("envFrom")));
    errs.extend(volume_mounts(c, ctx.volumes, &path.child("volumeMounts")));
    errs.extend(volume_devices(c, ctx.volumes, &path.child("volumeDevices")));
    errs.extend(pull_policy(
        str_at(c, "imagePullPolicy"),
        &path.child("imagePullPolicy"),
    ));
    if let Some(resources) = get(c, "resources") {
        errs.extend(resource_requirements(resources, &path.child("resources")));
    }
    errs.extend(resize_policy(
        c,
        ctx.restart_policy,
        &path.child("resizePolicy"),
    ));
    errs.extend(security_context(
        get(c, "securityContext"),
        ctx.host_users,
        &path.child("securityContext"),
    ));
    errs
}

/// `validateContainerPorts`.
fn ports(c: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, port) in list(c, "ports").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            let msgs = port_name_errors(name);
            if !msgs.is_empty() {
                errs.extend(
                    msgs.into_iter()
                        .map(|m| FieldError::invalid(p.child("name"), name, m)),
                );
            } else if names.contains(&name) {
                errs.push(FieldError::duplicate(p.child("name"), name));
            } else {
                names.push(name);
            }
        }
        match int_at(port, "containerPort").unwrap_or(0) {
            0 => errs.push(FieldError::required(p.child("containerPort"), "")),
            n => errs.extend(
                port_num_errors(n)
                    .into_iter()
                    .map(|m| FieldError::invalid(p.child("containerPort"), n, m)),
            ),
        }
        let host = int_at(port, "hostPort").unwrap_or(0);
        if host != 0 {
            errs.extend(
                port_num_errors(host)
                    .into_iter()
                    .map(|m| FieldError::invalid(p.child("hostPort"), host, m)),
            );
        }
        errs.extend(protocol(str_at(port, "protocol"), &p.child("protocol")));
    }
    errs
}

/// A port protocol: required, one of `SCTP`, `TCP`, `UDP`.
pub(crate) fn protocol(value: &str, path: &Path) -> Errors {
    match value {
        "TCP" | "UDP" | "SCTP" => Vec::new(),
        "" => vec![FieldError::required(path, "")],
        other => vec![not_supported(path, other, &["SCTP", "TCP", "UDP"])],
    }
}

/// `IsRelaxedEnvVarName` (the 1.33 default): printable ASCII except `=`.
fn env_var_name_errors(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push(format!(
            "environment variable name {}",
            validation::empty_error()
        ));
    }
    if name.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errs.push(
            "a valid environment variable name must consist only of printable ASCII characters other than '='"
                .to_owned(),
        );
    }
    errs
}

/// `ValidateEnv`.
fn env(c: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    for (i, var) in list(c, "env").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(var, "name");
        if name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        } else {
            errs.extend(
                env_var_name_errors(name)
                    .into_iter()
                    .map(|m| FieldError::invalid(p.child("name"), name, m)),
            );
        }
        errs.extend(value_from(var, &p.child("valueFrom")));
    }
    errs
}

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// `validateEnvVarValueFrom`: exactly one source, and not together with `value`.
fn value_from(var: &Value, path: &Path) -> Errors {
    let Some(from) = get(var, "valueFrom") else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let mut sources = 0;
    if let Some(field_ref) = get(from, "fieldRef") {
        sources += 1;
        errs.extend(object_field_selector(
            field_ref,
            ENV_FIELD_PATHS,
            &path.child("fieldRef"),
        ));
    }
    if let Some(resource_ref) = get(from, "resourceFieldRef") {
        sources += 1;
        errs.extend(resource_field_selector(
            resource_ref,
            &path.child("resourceFieldRef"),
            false,
        ));
    }
    for key in ["configMapKeyRef", "secretKeyRef"] {
        if let Some(selector) = get(from, key) {
            sources += 1;
            errs.extend(key_selector(selector, &path.child(key)));
        }
    }
    if sources == 0 {
        errs.push(FieldError::invalid(
            path,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ));
    } else if !str_at(var, "value").is_empty() {
        errs.push(FieldError::invalid(
            path,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else if sources > 1 {
        errs.push(FieldError::invalid(
            path,
            "",
            "may not have more than one field specified at a time",
        ));
    }
    errs
}

/// `validateConfigMapKeySelector` / `validateSecretKeySelector`.
fn key_selector(selector: &Value, path: &Path) -> Errors {
    let name = str_at(selector, "name");
    let mut errs: Errors = validation::name_is_dns_subdomain(name, false)
        .into_iter()
        .map(|m| FieldError::invalid(path.child("name"), name, m))
        .collect();
    let key = str_at(selector, "key");
    if key.is_empty() {
        errs.push(FieldError::required(path.child("key"), ""));
    } else {
        errs.extend(
            super::common::config_map_key_errors(key)
                .into_iter()
                .map(|m| FieldError::invalid(path.child("key"), key, m)),
        );
    }
    errs
}

/// `validateObjectFieldSelector`: a downward API field path the context supports.
pub(crate) fn object_field_selector(fs: &Value, supported: &[&str], path: &Path) -> Errors {
    if str_at(fs, "apiVersion").is_empty() {
        return vec![FieldError::required(path.child("apiVersion"), "")];
    }
    let field_path = str_at(fs, "fieldPath");
    if field_path.is_empty() {
        return vec![FieldError::required(path.child("fieldPath"), "")];
    }
    if let Err(e) = convert_downward_api_field(str_at(fs, "apiVersion"), field_path) {
        return vec![FieldError::invalid(
            path.child("fieldPath"),
            field_path,
            format!("error converting fieldPath: {e}"),
        )];
    }
    let internal = if field_path == "spec.host" {
        "spec.nodeName"
    } else {
        field_path
    };
    if let Some((base, subscript)) = split_subscript(internal) {
        return match base {
            "metadata.annotations" => qualified_name(&subscript.to_lowercase(), path),
            "metadata.labels" => qualified_name(subscript, path),
            other => vec![FieldError::invalid(
                path,
                other,
                "does not support subscript",
            )],
        };
    }
    if !supported.contains(&internal) {
        return vec![not_supported(&path.child("fieldPath"), internal, supported)];
    }
    Vec::new()
}

/// `fieldpath.SplitMaybeSubscriptedPath`: `metadata.labels['key']` into the path and the key.
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (base, key) = inner.split_once("['")?;
    Some((base, key))
}

/// `ConvertDownwardAPIFieldLabel` for `v1`.
fn convert_downward_api_field(version: &str, label: &str) -> Result<(), String> {
    if version != "v1" {
        return Err(format!("unsupported pod version: {version}"));
    }
    if let Some((base, _)) = split_subscript(label) {
        return match base {
            "metadata.annotations" | "metadata.labels" => Ok(()),
            _ => Err(format!("field label does not support subscript: {label}")),
        };
    }
    match label {
        "metadata.annotations"
        | "metadata.labels"
        | "metadata.name"
        | "metadata.namespace"
        | "metadata.uid"
        | "spec.nodeName"
        | "spec.restartPolicy"
        | "spec.serviceAccountName"
        | "spec.schedulerName"
        | "status.phase"
        | "status.hostIP"
        | "status.hostIPs"
        | "status.podIP"
        | "status.podIPs"
        | "spec.host" => Ok(()),
        _ => Err(format!("field label not supported: {label}")),
    }
}

const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// `validateContainerResourceFieldSelector`; volume files must name the container.
pub(crate) fn resource_field_selector(fs: &Value, path: &Path, volume: bool) -> Errors {
    let resource = str_at(fs, "resource");
    let mut errs = Vec::new();
    if volume && str_at(fs, "containerName").is_empty() {
        errs.push(FieldError::required(path.child("containerName"), ""));
    } else if resource.is_empty() {
        errs.push(FieldError::required(path.child("resource"), ""));
    } else if !RESOURCE_FIELD_PATHS.contains(&resource)
        && !resource.starts_with("requests.hugepages-")
        && !resource.starts_with("limits.hugepages-")
    {
        errs.push(not_supported(
            &path.child("resource"),
            resource,
            RESOURCE_FIELD_PATHS,
        ));
    }
    if let Some(divisor) = get(fs, "divisor").and_then(|d| Quantity::from_json(d).ok())
        && !divisor.is_zero()
    {
        errs.extend(divisor_errors(resource, &divisor.to_string(), path));
    }
    errs
}

/// `validateContainerResourceDivisor`.
fn divisor_errors(resource: &str, divisor: &str, path: &Path) -> Errors {
    const MEMORY: &[&str] = &[
        "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
    ];
    let (allowed, what): (&[&str], &str) = match resource {
        "limits.cpu" | "requests.cpu" => (&["1m", "1"], "cpu"),
        "limits.memory" | "requests.memory" => (MEMORY, "memory"),
        "limits.ephemeral-storage" | "requests.ephemeral-storage" => {
            (MEMORY, "local ephemeral storage")
        }
        r if r.starts_with("requests.hugepages-") || r.starts_with("limits.hugepages-") => {
            (MEMORY, "hugepages")
        }
        _ => return Vec::new(),
    };
    if allowed.contains(&divisor) {
        return Vec::new();
    }
    let values = if what == "cpu" {
        "1m and 1".to_owned()
    } else {
        MEMORY.join(", ")
    };
    vec![FieldError::invalid(
        path.child("divisor"),
        resource,
        format!("only divisor's values {values} are supported with the {what} resource"),
    )]
}

/// `ValidateEnvFrom`; upstream reports a missing or doubled source at the list's path.
fn env_from(c: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    for (i, source) in list(c, "envFrom").iter().enumerate() {
        let p = path.index(i);
        let prefix = str_at(source, "prefix");
        if !prefix.is_empty() {
            errs.extend(
                env_var_name_errors(prefix)
                    .into_iter()
                    .map(|m| FieldError::invalid(p.child("prefix"), prefix, m)),
            );
        }
        let mut sources = 0;
        for key in ["configMapRef", "secretRef"] {
            let Some(reference) = get(source, key) else {
                continue;
            };
            sources += 1;
            let name = str_at(reference, "name");
            let name_path = p.child(key).child("name");
            if name.is_empty() {
                errs.push(FieldError::required(name_path, ""));
            } else {
                errs.extend(
                    validation::name_is_dns_subdomain(name, true)
                        .into_iter()
                        .map(|m| FieldError::invalid(&name_path, name, m)),
                );
            }
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

/// `ValidateVolumeMounts`; some errors are reported at the list's path, as upstream does.
fn volume_mounts(c: &Value, volumes: &BTreeMap<String, &Value>, path: &Path) -> Errors {
    let devices: Vec<(&str, &str)> = list(c, "volumeDevices")
        .iter()
        .map(|d| (str_at(d, "name"), str_at(d, "devicePath")))
        .collect();
    let privileged = get(c, "securityContext")
        .and_then(|sc| sc.get("privileged"))
        .and_then(Value::as_bool)
        == Some(true);
    let mut errs = Vec::new();
    let mut mount_points: Vec<&str> = Vec::new();
    for (i, mount) in list(c, "volumeMounts").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(mount, "name");
        let mount_path = str_at(mount, "mountPath");
        if name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        }
        if !volumes.contains_key(name) {
            errs.push(FieldError::not_found(p.child("name"), name));
        }
        if mount_path.is_empty() {
            errs.push(FieldError::required(p.child("mountPath"), ""));
        }
        if mount_points.contains(&mount_path) {
            errs.push(FieldError::invalid(
                p.child("mountPath"),
                mount_path,
                "must be unique",
            ));
        }
        mount_points.push(mount_path);
        if devices.iter().any(|(n, _)| *n == name) {
            errs.push(FieldError::invalid(
                p.child("name"),
                name,
                "must not already exist in volumeDevices",
            ));
        }
        if devices.iter().any(|(_, d)| *d == mount_path) {
            errs.push(FieldError::invalid(
                p.child("mountPath"),
                mount_path,
                "must not already exist as a path in volumeDevices",
            ));
        }
        let sub_path = str_at(mount, "subPath");
        let sub_path_expr = str_at(mount, "subPathExpr");
        if volumes.get(name).is_some_and(|v| get(v, "image").is_some()) {
            for (key, value) in [("subPath", sub_path), ("subPathExpr", sub_path_expr)] {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        p.child(key),
                        value,
                        "not allowed in image volume sources",
                    ));
                }
            }
        }
        if !sub_path.is_empty() {
            errs.extend(local_descending_path(sub_path, &path.child("subPath")));
        }
        if !sub_path_expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(FieldError::invalid(
                    p.child("subPathExpr"),
                    sub_path_expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(local_descending_path(
                sub_path_expr,
                &path.child("subPathExpr"),
            ));
        }
        if let Some(propagation) = opt_str(mount, "mountPropagation") {
            let pp = path.child("mountPropagation");
            if !matches!(propagation, "Bidirectional" | "HostToContainer" | "None") {
                errs.push(not_supported(
                    &pp,
                    propagation,
                    &["Bidirectional", "HostToContainer", "None"],
                ));
            }
            if propagation == "Bidirectional" && !privileged {
                errs.push(FieldError::forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
        errs.extend(recursive_read_only(mount, &path.child("recursiveReadOnly")));
    }
    errs
}

/// `validateMountRecursiveReadOnly`.
fn recursive_read_only(mount: &Value, path: &Path) -> Errors {
    let Some(rro) = opt_str(mount, "recursiveReadOnly") else {
        return Vec::new();
    };
    match rro {
        "Disabled" => Vec::new(),
        "Enabled" | "IfPossible" => {
            let mut errs = Vec::new();
            if !super::common::bool_at(mount, "readOnly") {
                errs.push(FieldError::forbidden(
                    path,
                    "may only be specified when readOnly is true",
                ));
            }
            if opt_str(mount, "mountPropagation").is_some_and(|p| p != "None") {
                errs.push(FieldError::forbidden(
                    path,
                    "may only be specified when mountPropagation is None or not specified",
                ));
            }
            errs
        }
        other => vec![not_supported(
            path,
            other,
            &["Disabled", "Enabled", "IfPossible"],
        )],
    }
}

/// `ValidateVolumeDevices`: block devices come from claims.
fn volume_devices(c: &Value, volumes: &BTreeMap<String, &Value>, path: &Path) -> Errors {
    let mounts: Vec<(&str, &str)> = list(c, "volumeMounts")
        .iter()
        .map(|m| (str_at(m, "name"), str_at(m, "mountPath")))
        .collect();
    let mut errs = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let mut paths: Vec<&str> = Vec::new();
    for (i, device) in list(c, "volumeDevices").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(device, "name");
        let device_path = str_at(device, "devicePath");
        let source = volumes.get(name);
        let is_claim = source.is_some_and(|v| {
            get(v, "persistentVolumeClaim").is_some() || get(v, "ephemeral").is_some()
        });
        if name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        }
        if names.contains(&name) {
            errs.push(FieldError::invalid(p.child("name"), name, "must be unique"));
        }
        if source.is_some() && !is_claim {
            errs.push(FieldError::invalid(
                p.child("name"),
                name,
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            ));
        }
        if source.is_none() {
            errs.push(FieldError::not_found(p.child("name"), name));
        }
        if device_path.is_empty() {
            errs.push(FieldError::required(p.child("devicePath"), ""));
        }
        if paths.contains(&device_path) {
            errs.push(FieldError::invalid(
                p.child("devicePath"),
                device_path,
                "must be unique",
            ));
        }
        if !device_path.is_empty() && device_path.split('/').any(|s| s == "..") {
            errs.push(FieldError::invalid(
                p.child("devicePath"),
                device_path,
                "can not contain backsteps ('..')",
            ));
        } else {
            paths.push(device_path);
        }
        if mounts.iter().any(|(n, _)| *n == name) {
            errs.push(FieldError::invalid(
                p.child("name"),
                name,
                "must not already exist in volumeMounts",
            ));
        }
        if mounts.iter().any(|(_, m)| *m == device_path) {
            errs.push(FieldError::invalid(
                p.child("devicePath"),
                device_path,
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !name.is_empty() {
            names.push(name);
        }
    }
    errs
}

/// `validatePullPolicy`.
pub(crate) fn pull_policy(policy: &str, path: &Path) -> Errors {
    match policy {
        "Always" | "IfNotPresent" | "Never" => Vec::new(),
        "" => vec![FieldError::required(path, "")],
        other => vec![not_supported(
            path,
            other,
            &["Always", "IfNotPresent", "Never"],
        )],
    }
}

// ---- resources ---------------------------------------------------------------------------------------------

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
    "requests.storage",
    "storage",
];

const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_huge_pages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_extended(name: &str) -> bool {
    !is_native(name)
        && !name.starts_with("requests.")
        && validation::is_qualified_name(&format!("requests.{name}")).is_empty()
}

pub(crate) fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_huge_pages(name)
}

/// `validateResourceName`: a qualified name, standard unless it has a prefix.
pub(crate) fn resource_name(name: &str, path: &Path) -> Errors {
    let errs = qualified_name(name, path);
    if !errs.is_empty() {
        return errs;
    }
    let standard = STANDARD_RESOURCES.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-");
    if !name.contains('/') && !standard {
        return vec![FieldError::invalid(
            path,
            name,
            "must be a standard resource type or fully qualified",
        )];
    }
    Vec::new()
}

/// `validateContainerResourceName`.
pub(crate) fn container_resource_name(name: &str, path: &Path) -> Errors {
    let mut errs = resource_name(name, path);
    if !name.contains('/') {
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !is_huge_pages(name) {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) && !is_extended(name) {
        errs.push(FieldError::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
    errs
}

/// A quantity field: it must parse (a decode error upstream, reported here as invalid).
pub(crate) fn parse_quantity(raw: &Value, path: &Path) -> Result<Quantity, FieldError> {
    Quantity::from_json(raw).map_err(|e| FieldError::invalid(path, raw.clone(), e))
}

/// `ValidateResourceQuantityValue`: not negative, whole for integer resources.
pub(crate) fn resource_quantity(name: &str, q: &Quantity, path: &Path) -> Errors {
    let mut errs = Vec::new();
    if q.is_negative() {
        errs.push(FieldError::invalid(path, q.to_string(), IS_NEGATIVE));
    }
    if (INTEGER_RESOURCES.contains(&name) || is_extended(name)) && !q.is_integer() {
        errs.push(FieldError::invalid(
            path,
            q.to_string(),
            "must be an integer",
        ));
    }
    errs
}

/// `IsHugePageResourceValueDivisible`.
fn huge_pages_divisible(name: &str, q: &Quantity) -> bool {
    let Some(size) = name
        .strip_prefix("hugepages-")
        .and_then(|s| Quantity::parse(s).ok())
    else {
        return false;
    };
    size.nanos() > 0
        && !q.is_negative()
        && (q.nanos() / 1_000_000_000) % (size.nanos() / 1_000_000_000).max(1) == 0
}

/// `ValidateContainerResourceRequirements`: valid names and quantities, requests within limits.
pub(crate) fn resource_requirements(res: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let (mut lim_cpu_mem, mut req_cpu_mem, mut lim_huge, mut req_huge) =
        (false, false, false, false);
    for (name, raw) in map_at(res, "limits").into_iter().flatten() {
        let p = lim_path.key(name);
        errs.extend(container_resource_name(name, &p));
        match parse_quantity(raw, &p) {
            Ok(q) => {
                errs.extend(resource_quantity(name, &q, &p));
                if is_huge_pages(name) {
                    lim_huge = true;
                    errs.extend(huge_pages_error(name, &q, &p));
                }
                limits.insert(name, q);
            }
            Err(e) => errs.push(e),
        }
        lim_cpu_mem |= matches!(name.as_str(), "cpu" | "memory");
    }
    for (name, raw) in map_at(res, "requests").into_iter().flatten() {
        let p = req_path.key(name);
        errs.extend(container_resource_name(name, &p));
        let q = match parse_quantity(raw, &p) {
            Ok(q) => q,
            Err(e) => {
                errs.push(e);
                continue;
            }
        };
        errs.extend(resource_quantity(name, &q, &p));
        if let Some(limit) = limits.get(name.as_str()) {
            if q != *limit && !overcommit_allowed(name) {
                errs.push(FieldError::invalid(
                    &req_path,
                    q.to_string(),
                    format!("must be equal to {name} limit of {limit}"),
                ));
            } else if q > *limit {
                errs.push(FieldError::invalid(
                    &req_path,
                    q.to_string(),
                    format!("must be less than or equal to {name} limit of {limit}"),
                ));
            }
        } else if !overcommit_allowed(name) {
            errs.push(FieldError::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            ));
        }
        if is_huge_pages(name) {
            req_huge = true;
            errs.extend(huge_pages_error(name, &q, &p));
        }
        req_cpu_mem |= matches!(name.as_str(), "cpu" | "memory");
    }
    if !lim_cpu_mem && !req_cpu_mem && (lim_huge || req_huge) {
        errs.push(FieldError::forbidden(
            path,
            "HugePages require cpu or memory",
        ));
    }
    errs
}

fn huge_pages_error(name: &str, q: &Quantity, path: &Path) -> Errors {
    if huge_pages_divisible(name, q) {
        return Vec::new();
    }
    vec![FieldError::invalid(
        path,
        q.to_string(),
        format!("{q} is not positive integer multiple of {name}"),
    )]
}

/// `validateResizePolicy`.
fn resize_policy(c: &Value, pod_restart_policy: &str, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, policy) in list(c, "resizePolicy").iter().enumerate() {
        let resource = str_at(policy, "resourceName");
        if seen.contains(&resource) {
            errs.push(FieldError::duplicate(path.index(i), resource));
        }
        seen.push(resource);
        match resource {
            "cpu" | "memory" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(not_supported(path, other, &["cpu", "memory"])),
        }
        let restart = str_at(policy, "restartPolicy");
        match restart {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(not_supported(
                path,
                other,
                &["NotRequired", "RestartContainer"],
            )),
        }
        if pod_restart_policy == "Never" && restart != "NotRequired" {
            errs.push(FieldError::invalid(
                path,
                restart,
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
    errs
}

// ---- security context ----------------------------------------------------------------------------------------

/// `IsValidUserID` / `IsValidGroupID`: 0 to 2^32-1.
pub(crate) fn id_errors(v: &Value, key: &str, path: &Path) -> Errors {
    match int_at(v, key) {
        Some(id) if !(0..=0xffff_ffff).contains(&id) => vec![FieldError::invalid(
            path.child(key),
            id,
            super::common::inclusive_range_error(0, 0xffff_ffff),
        )],
        _ => Vec::new(),
    }
}

/// `ValidateSecurityContext` for a container.
fn security_context(sc: Option<&Value>, host_users: bool, path: &Path) -> Errors {
    let Some(sc) = sc else {
        return Vec::new();
    };
    let mut errs = id_errors(sc, "runAsUser", path);
    errs.extend(id_errors(sc, "runAsGroup", path));
    if let Some(proc_mount) = opt_str(sc, "procMount") {
        if !matches!(proc_mount, "Default" | "Unmasked") {
            errs.push(not_supported(
                &path.child("procMount"),
                proc_mount,
                &["Default", "Unmasked"],
            ));
        }
        if host_users && proc_mount == "Unmasked" {
            errs.push(FieldError::invalid(
                path.child("procMount"),
                proc_mount,
                "`hostUsers` must be false to use `Unmasked`",
            ));
        }
    }
    errs.extend(seccomp_profile(
        get(sc, "seccompProfile"),
        &path.child("seccompProfile"),
    ));
    if sc.get("allowPrivilegeEscalation").and_then(Value::as_bool) == Some(false) {
        if sc.get("privileged").and_then(Value::as_bool) == Some(true) {
            errs.push(FieldError::invalid(
                path,
                sc.clone(),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        let adds = get(sc, "capabilities")
            .map(|c| strings(c, "add"))
            .unwrap_or_default();
        if adds.contains(&"CAP_SYS_ADMIN") {
            errs.push(FieldError::invalid(
                path,
                sc.clone(),
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
    errs.extend(app_armor_profile(
        get(sc, "appArmorProfile"),
        &path.child("appArmorProfile"),
    ));
    errs
}

/// `validateSeccompProfileField`.
pub(crate) fn seccomp_profile(profile: Option<&Value>, path: &Path) -> Errors {
    let Some(profile) = profile else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let kind = str_at(profile, "type");
    match kind {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errs.push(FieldError::required(
            path.child("type"),
            "type is required when seccompProfile is set",
        )),
        other => errs.push(not_supported(
            &path.child("type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    let localhost = opt_str(profile, "localhostProfile");
    if kind == "Localhost" {
        match localhost {
            None => errs.push(FieldError::required(
                path.child("localhostProfile"),
                "must be set when seccomp type is Localhost",
            )),
            Some(p) => errs.extend(local_descending_path(p, &path.child("localhostProfile"))),
        }
    } else if localhost.is_some() {
        errs.push(FieldError::invalid(
            path.child("localhostProfile"),
            profile.clone(),
            "can only be set when seccomp type is Localhost",
        ));
    }
    errs
}

/// `ValidateAppArmorProfileField`.
pub(crate) fn app_armor_profile(profile: Option<&Value>, path: &Path) -> Errors {
    let Some(profile) = profile else {
        return Vec::new();
    };
    let localhost = opt_str(profile, "localhostProfile");
    let lp = path.child("localhostProfile");
    match str_at(profile, "type") {
        "Localhost" => match localhost {
            None => vec![FieldError::required(
                lp,
                "must be set when AppArmor type is Localhost",
            )],
            Some(p) => {
                let mut errs = Vec::new();
                if p.trim() != p {
                    errs.push(FieldError::invalid(
                        &lp,
                        p,
                        "must not be padded with whitespace",
                    ));
                } else if p.is_empty() {
                    errs.push(FieldError::required(
                        &lp,
                        "must be set when AppArmor type is Localhost",
                    ));
                }
                if p.len() > 4095 {
                    errs.push(FieldError::too_long(&lp, 4095));
                }
                errs
            }
        },
        "RuntimeDefault" | "Unconfined" => match localhost {
            Some(p) => vec![FieldError::invalid(
                lp,
                p,
                "can only be set when AppArmor type is Localhost",
            )],
            None => Vec::new(),
        },
        "" => vec![FieldError::required(
            path.child("type"),
            "type is required when appArmorProfile is set",
        )],
        other => vec![not_supported(
            &path.child("type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )],
    }
}

// ---- probes and lifecycle hooks -----------------------------------------------------------------------------

fn probes(c: &Value, grace: Option<i64>, path: &Path) -> Errors {
    let mut errs = Vec::new();
    if let Some(p) = get(c, "livenessProbe") {
        let pp = path.child("livenessProbe");
        errs.extend(probe(p, grace, &pp));
        errs.extend(success_threshold_one(p, &pp));
    }
    if let Some(p) = get(c, "readinessProbe") {
        let pp = path.child("readinessProbe");
        errs.extend(probe(p, grace, &pp));
        if let Some(v) = int_at(p, "terminationGracePeriodSeconds") {
            errs.push(FieldError::invalid(
                pp.child("terminationGracePeriodSeconds"),
                v,
                "must not be set for readinessProbes",
            ));
        }
    }
    if let Some(p) = get(c, "startupProbe") {
        let pp = path.child("startupProbe");
        errs.extend(probe(p, grace, &pp));
        errs.extend(success_threshold_one(p, &pp));
    }
    errs
}

fn success_threshold_one(p: &Value, path: &Path) -> Errors {
    let threshold = int_at(p, "successThreshold").unwrap_or(0);
    if threshold != 1 {
        return vec![FieldError::invalid(
            path.child("successThreshold"),
            threshold,
            "must be 1",
        )];
    }
    Vec::new()
}

/// `validateProbe`: one handler, non-negative timings.
fn probe(p: &Value, grace: Option<i64>, path: &Path) -> Errors {
    let mut errs = handler(p, &["exec", "httpGet", "tcpSocket", "grpc"], grace, path);
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        errs.extend(nonnegative(int_at(p, key).unwrap_or(0), &path.child(key)));
    }
    if let Some(v) = int_at(p, "terminationGracePeriodSeconds")
        && v <= 0
    {
        errs.push(FieldError::invalid(
            path.child("terminationGracePeriodSeconds"),
            v,
            "must be greater than 0",
        ));
    }
    errs
}

fn lifecycle_hooks(lifecycle: &Value, grace: Option<i64>, path: &Path) -> Errors {
    let mut errs = Vec::new();
    for key in ["postStart", "preStop"] {
        if let Some(h) = get(lifecycle, key) {
            errs.extend(handler(
                h,
                &["exec", "httpGet", "tcpSocket", "sleep"],
                grace,
                &path.child(key),
            ));
        }
    }
    errs
}

/// `validateHandler`: exactly one of the allowed actions.
fn handler(h: &Value, allowed: &[&str], grace: Option<i64>, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let mut count = 0;
    for key in ["exec", "httpGet", "tcpSocket", "grpc", "sleep"] {
        if !allowed.contains(&key) {
            continue;
        }
        let Some(action) = get(h, key) else {
            continue;
        };
        let p = path.child(key);
        if count > 0 {
            errs.push(FieldError::forbidden(
                p,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        count += 1;
        errs.extend(match key {
            "exec" => {
                if list(action, "command").is_empty() {
                    vec![FieldError::required(p.child("command"), "")]
                } else {
                    Vec::new()
                }
            }
            "httpGet" => http_get(action, &p),
            "tcpSocket" => port_num_or_name(get(action, "port"), &p.child("port")),
            "grpc" => {
                let port = int_at(action, "port").unwrap_or(0);
                port_num_errors(port)
                    .into_iter()
                    .map(|m| FieldError::invalid(p.child("port"), port, m))
                    .collect()
            }
            _ => sleep(action, grace, &p),
        });
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    errs
}

fn http_get(action: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    if str_at(action, "path").is_empty() {
        errs.push(FieldError::required(path.child("path"), ""));
    }
    errs.extend(port_num_or_name(get(action, "port"), &path.child("port")));
    let scheme = str_at(action, "scheme");
    if !matches!(scheme, "HTTP" | "HTTPS") {
        errs.push(not_supported(
            &path.child("scheme"),
            scheme,
            &["HTTP", "HTTPS"],
        ));
    }
    for header in list(action, "httpHeaders") {
        let name = str_at(header, "name");
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            errs.push(FieldError::invalid(
                path.child("httpHeaders"),
                name,
                validation::regex_error(
                    "a valid HTTP header must consist of alphanumeric characters or '-'",
                    "[-A-Za-z0-9]+",
                    &["X-Header-Name"],
                ),
            ));
        }
    }
    errs
}

/// `validateSleepAction` with zero allowed (the 1.33 default).
fn sleep(action: &Value, grace: Option<i64>, path: &Path) -> Errors {
    let seconds = int_at(action, "seconds").unwrap_or(0);
    match grace {
        Some(grace) if seconds < 0 || seconds > grace => vec![FieldError::invalid(
            path,
            seconds,
            format!("must be non-negative and less than terminationGracePeriodSeconds ({grace})"),
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(container: Value) -> Vec<String> {
        let volumes_spec = json!({"volumes": [{"name": "data", "emptyDir": {}}]});
        let data = &volumes_spec["volumes"][0];
        let volumes = BTreeMap::from([("data".to_owned(), data)]);
        let ctx = PodContext {
            volumes: &volumes,
            grace_period: Some(30),
            restart_policy: "Always",
            host_users: true,
        };
        let spec = json!({"containers": [container]});
        containers(&spec, ctx, &Path::new("spec").child("containers"))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn base(extra: Value) -> Value {
        let mut c = json!({
            "name": "app", "image": "nginx", "imagePullPolicy": "IfNotPresent",
            "terminationMessagePolicy": "File", "resources": {}
        });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        c
    }

    #[test]
    fn a_good_container_is_clean() {
        let c = base(json!({
            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
            "env": [
                {"name": "A", "value": "1"},
                {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                {"name": "LBL", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels['app']"}}},
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
            ],
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}},
            "livenessProbe": {"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
            "readinessProbe": {"tcpSocket": {"port": "http"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
            "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
            "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": false, "seccompProfile": {"type": "RuntimeDefault"}}
        }));
        assert_eq!(check(c), Vec::<String>::new());
    }

    #[test]
    fn names_images_ports() {
        let errs = check(
            json!({"name": "App_1", "terminationMessagePolicy": "File", "imagePullPolicy": "Sometimes",
            "ports": [
                {"name": "http", "containerPort": 0, "protocol": "TCP"},
                {"name": "http", "containerPort": 70000, "protocol": "HTTP"},
                {"name": "8080", "containerPort": 80, "hostPort": -1, "protocol": "TCP"}
            ]}),
        );
        assert!(errs[0].starts_with(
            "spec.containers[0].name: Invalid value: \"App_1\": a lowercase RFC 1123 label"
        ));
        assert_eq!(
            errs[1..],
            [
                "spec.containers[0].image: Required value",
                "spec.containers[0].ports[0].containerPort: Required value",
                "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
                "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].ports[2].name: Invalid value: \"8080\": must contain at least one letter (a-z)",
                "spec.containers[0].ports[2].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
                "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            ]
        );
    }

    #[test]
    fn env_rules() {
        let errs = check(base(json!({"env": [
            {"name": ""},
            {"name": "A=B"},
            {"name": "X", "valueFrom": {}},
            {"name": "Y", "value": "v", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "Z", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}, "configMapKeyRef": {"name": "c", "key": "k"}}},
            {"name": "F", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.bogus"}}},
            {"name": "G", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.phase"}}},
            {"name": "H", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "a b"}}}
        ]})));
        assert_eq!(errs[0], "spec.containers[0].env[0].name: Required value");
        assert_eq!(
            errs[1],
            "spec.containers[0].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"
        );
        assert_eq!(
            errs[2],
            "spec.containers[0].env[2].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"
        );
        assert_eq!(
            errs[3],
            "spec.containers[0].env[3].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty"
        );
        assert_eq!(
            errs[4],
            "spec.containers[0].env[4].valueFrom: Invalid value: \"\": may not have more than one field specified at a time"
        );
        assert_eq!(
            errs[5],
            "spec.containers[0].env[5].valueFrom.fieldRef.fieldPath: Invalid value: \"spec.bogus\": error converting fieldPath: field label not supported: spec.bogus"
        );
        assert!(errs[6].starts_with("spec.containers[0].env[6].valueFrom.fieldRef.fieldPath: Unsupported value: \"status.phase\": supported values: \"metadata.name\""));
        assert!(errs[7].starts_with("spec.containers[0].env[7].valueFrom.configMapKeyRef.key: Invalid value: \"a b\": a valid config key"));
        assert_eq!(errs.len(), 8);
    }

    #[test]
    fn mounts_and_resources() {
        let errs = check(base(json!({
            "volumeMounts": [{"name": "missing", "mountPath": ""}, {"name": "data", "mountPath": "/d", "subPath": "/abs"}],
            "resources": {
                "limits": {"cpu": "500m", "memory": "1Gi", "gpu": "1", "example.com/dongle": "1"},
                "requests": {"cpu": "1", "memory": "abc", "example.com/dongle": "2"}
            }
        })));
        assert_eq!(
            errs,
            [
                "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
                "spec.containers[0].volumeMounts[0].mountPath: Required value",
                "spec.containers[0].volumeMounts.subPath: Invalid value: \"/abs\": must be a relative path",
                "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
                "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
                "spec.containers[0].resources.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m",
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be equal to example.com/dongle limit of 1",
                "spec.containers[0].resources.requests[memory]: Invalid value: \"abc\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ]
        );
        let errs = check(base(
            json!({"resources": {"limits": {"memory": "-1"}, "requests": {"example.com/x": "1500m"}}}),
        ));
        assert_eq!(
            errs,
            [
                "spec.containers[0].resources.limits[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.containers[0].resources.requests[example.com/x]: Invalid value: \"1500m\": must be an integer",
                "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources",
            ]
        );
    }

    #[test]
    fn probes_and_hooks() {
        let errs = check(base(json!({
            "livenessProbe": {"periodSeconds": -1, "successThreshold": 2},
            "readinessProbe": {"exec": {"command": []}, "httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}, "successThreshold": 1, "terminationGracePeriodSeconds": 5},
            "startupProbe": {"httpGet": {"path": "", "port": "8080", "scheme": "FTP"}, "successThreshold": 1},
            "lifecycle": {"postStart": {"sleep": {"seconds": 60}}},
            "restartPolicy": "Always"
        })));
        assert_eq!(
            errs,
            [
                "spec.containers[0].lifecycle.postStart.sleep: Invalid value: 60: must be non-negative and less than terminationGracePeriodSeconds (30)",
                "spec.containers[0].livenessProbe: Required value: must specify a handler type",
                "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "spec.containers[0].readinessProbe.exec.command: Required value",
                "spec.containers[0].readinessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
                "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set for readinessProbes",
                "spec.containers[0].startupProbe.httpGet.path: Required value",
                "spec.containers[0].startupProbe.httpGet.port: Invalid value: \"8080\": must contain at least one letter (a-z)",
                "spec.containers[0].startupProbe.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\"",
                "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
            ]
        );
    }

    #[test]
    fn security_contexts() {
        let errs = check(base(json!({"securityContext": {
            "runAsUser": -1, "procMount": "Odd", "allowPrivilegeEscalation": false, "privileged": true,
            "seccompProfile": {"type": "Localhost"}
        }})));
        assert_eq!(
            errs[0],
            "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 4294967295, inclusive"
        );
        assert_eq!(
            errs[1],
            "spec.containers[0].securityContext.procMount: Unsupported value: \"Odd\": supported values: \"Default\", \"Unmasked\""
        );
        assert_eq!(
            errs[2],
            "spec.containers[0].securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost"
        );
        assert!(
            errs[3].ends_with(
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
            )
        );
    }
}

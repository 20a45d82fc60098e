//! Pods and pod templates: `ValidatePodSpec` (in upstream's order), `ValidatePodTemplateSpec`,
//! `ValidatePodCreate` and `ValidatePodUpdate` (only images, `activeDeadlineSeconds`, added tolerations and
//! removed scheduling gates may change), plus PodTemplates and ReplicationControllers.

use serde_json::Value;

use super::common::{
    Errors, Path, annotations_at, diff, dns_label, dns_subdomain, each_invalid, get, int_at,
    label_name, label_selector, labels_at, labels_value, list, map_at, nonnegative, normalized,
    not_supported, opt_str, qualified_name, selector_matches, str_at, string_map, strings,
};
use super::container::{self, PodContext, app_armor_profile, id_errors, seccomp_profile};
use super::meta::{self, NameRule};
use super::net;
use super::volume;
use crate::field::FieldError;
use crate::validation;

/// How a pod spec is being validated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpecOptions<'a> {
    /// A Pod itself rather than a template in another object.
    pub(crate) resource_is_pod: bool,
    /// The pod's name, which names the claims of its ephemeral volumes.
    pub(crate) pod_name: Option<&'a str>,
}

/// `ValidatePodSpec`.
pub(crate) fn spec(spec: &Value, path: &Path, opts: SpecOptions<'_>) -> Errors {
    let mut errs = Vec::new();
    let grace = int_at(spec, "terminationGracePeriodSeconds");
    if grace.is_none() {
        errs.push(FieldError::required(
            path.child("terminationGracePeriodSeconds"),
            "",
        ));
    }
    let host_users = get(spec, "hostUsers").and_then(Value::as_bool) != Some(false);
    let (volumes, volume_errs) = volume::volumes(
        spec,
        opts.pod_name,
        opts.resource_is_pod,
        &path.child("volumes"),
    );
    errs.extend(volume_errs);
    let restart_policy = str_at(spec, "restartPolicy");
    let ctx = PodContext {
        volumes: &volumes,
        grace_period: grace,
        restart_policy,
        host_users,
    };
    errs.extend(container::containers(spec, ctx, &path.child("containers")));
    errs.extend(container::init_containers(
        spec,
        ctx,
        &path.child("initContainers"),
    ));
    errs.extend(host_network_ports(spec, path, opts.resource_is_pod));
    errs.extend(restart_policy_errors(
        restart_policy,
        &path.child("restartPolicy"),
    ));
    errs.extend(dns_policy(
        str_at(spec, "dnsPolicy"),
        &path.child("dnsPolicy"),
    ));
    errs.extend(labels_at(spec, "nodeSelector", &path.child("nodeSelector")));
    errs.extend(security_context(spec, path));
    errs.extend(image_pull_secrets(spec, &path.child("imagePullSecrets")));
    if let Some(affinity) = get(spec, "affinity") {
        errs.extend(affinity_errors(affinity, &path.child("affinity")));
    }
    errs.extend(dns_config(spec, &path.child("dnsConfig")));
    for (i, gate) in list(spec, "readinessGates").iter().enumerate() {
        errs.extend(qualified_name(
            str_at(gate, "conditionType"),
            &path.child("readinessGates").index(i).child("conditionType"),
        ));
    }
    errs.extend(scheduling_gates(spec, &path.child("schedulingGates")));
    errs.extend(topology_spread(
        spec,
        &path.child("topologySpreadConstraints"),
    ));
    if !host_users && super::common::bool_at(spec, "hostNetwork") {
        errs.push(FieldError::forbidden(
            path.child("hostNetwork"),
            "when `pod.Spec.HostUsers` is false",
        ));
    }
    for key in ["serviceAccountName", "nodeName"] {
        let value = str_at(spec, key);
        if !value.is_empty() {
            errs.extend(dns_subdomain(value, &path.child(key)));
        }
    }
    if let Some(deadline) = int_at(spec, "activeDeadlineSeconds")
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        errs.push(FieldError::invalid(
            path.child("activeDeadlineSeconds"),
            deadline,
            super::common::inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for key in ["hostname", "subdomain"] {
        let value = str_at(spec, key);
        if !value.is_empty() {
            errs.extend(dns_label(value, &path.child(key)));
        }
    }
    errs.extend(tolerations(
        list(spec, "tolerations"),
        &path.child("tolerations"),
    ));
    for (i, alias) in list(spec, "hostAliases").iter().enumerate() {
        let p = path.child("hostAliases").index(i);
        errs.extend(net::valid_ip(&p.child("ip"), str_at(alias, "ip")));
        for (j, host) in strings(alias, "hostnames").iter().enumerate() {
            errs.extend(dns_subdomain(host, &p.child("hostnames").index(j)));
        }
    }
    let priority_class = str_at(spec, "priorityClassName");
    if !priority_class.is_empty() {
        errs.extend(dns_subdomain(
            priority_class,
            &path.child("priorityClassName"),
        ));
    }
    if let Some(runtime_class) = opt_str(spec, "runtimeClassName") {
        errs.extend(dns_subdomain(
            runtime_class,
            &path.child("runtimeClassName"),
        ));
    }
    if let Some(policy) = opt_str(spec, "preemptionPolicy") {
        match policy {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(FieldError::required(path.child("preemptionPolicy"), "")),
            other => errs.push(not_supported(
                &path.child("preemptionPolicy"),
                other,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(os) = get(spec, "os") {
        match str_at(os, "name") {
            "" => errs.push(FieldError::required(
                path.child("os").child("name"),
                "cannot be empty",
            )),
            "linux" | "windows" => {}
            other => errs.push(not_supported(
                &path.child("os"),
                other,
                &["linux", "windows"],
            )),
        }
    }
    errs
}

/// `validatePodHostNetworkDeps`: with the host network, a host port is the container port.
fn host_network_ports(spec: &Value, path: &Path, resource_is_pod: bool) -> Errors {
    if !super::common::bool_at(spec, "hostNetwork") {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let containers = path.child("containers");
    for (i, c) in list(spec, "containers").iter().enumerate() {
        for (j, port) in list(c, "ports").iter().enumerate() {
            let host = int_at(port, "hostPort").unwrap_or(0);
            let container_port = int_at(port, "containerPort").unwrap_or(0);
            if (resource_is_pod || host != 0) && host != container_port {
                errs.push(FieldError::invalid(
                    containers
                        .index(i)
                        .child("ports")
                        .index(j)
                        .child("hostPort"),
                    host,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
    errs
}

/// `validateRestartPolicy`.
fn restart_policy_errors(policy: &str, path: &Path) -> Errors {
    match policy {
        "Always" | "OnFailure" | "Never" => Vec::new(),
        "" => vec![FieldError::required(path, "")],
        other => vec![not_supported(
            path,
            other,
            &["Always", "OnFailure", "Never"],
        )],
    }
}

/// `validateDNSPolicy`.
fn dns_policy(policy: &str, path: &Path) -> Errors {
    match policy {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => Vec::new(),
        "" => vec![FieldError::required(path, "")],
        other => vec![not_supported(
            path,
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )],
    }
}

/// `validatePodSpecSecurityContext`. Upstream keeps `shareProcessNamespace` in the security context.
fn security_context(spec: &Value, path: &Path) -> Errors {
    let p = path.child("securityContext");
    let mut errs = Vec::new();
    if let Some(sc) = get(spec, "securityContext") {
        errs.extend(id_errors(sc, "fsGroup", &p));
        errs.extend(id_errors(sc, "runAsUser", &p));
        errs.extend(id_errors(sc, "runAsGroup", &p));
        for (i, gid) in list(sc, "supplementalGroups").iter().enumerate() {
            if let Some(gid) = gid.as_i64().filter(|g| !(0..=0xffff_ffff).contains(g)) {
                errs.push(FieldError::invalid(
                    p.child("supplementalGroups").index(i),
                    gid,
                    super::common::inclusive_range_error(0, 0xffff_ffff),
                ));
            }
        }
        errs.extend(sysctls(sc, spec, &p.child("sysctls")));
        if let Some(policy) = opt_str(sc, "fsGroupChangePolicy")
            && !matches!(policy, "Always" | "OnRootMismatch")
        {
            errs.push(not_supported(
                &p.child("fsGroupChangePolicy"),
                policy,
                &["Always", "OnRootMismatch"],
            ));
        }
        errs.extend(seccomp_profile(
            get(sc, "seccompProfile"),
            &p.child("seccompProfile"),
        ));
        errs.extend(app_armor_profile(
            get(sc, "appArmorProfile"),
            &p.child("appArmorProfile"),
        ));
        if let Some(policy) = opt_str(sc, "supplementalGroupsPolicy")
            && !matches!(policy, "Merge" | "Strict")
        {
            errs.push(not_supported(
                &p.child("supplementalGroupsPolicy"),
                policy,
                &["Merge", "Strict"],
            ));
        }
        if let Some(policy) = opt_str(sc, "seLinuxChangePolicy")
            && !matches!(policy, "MountOption" | "Recursive")
        {
            errs.push(not_supported(
                &p.child("seLinuxChangePolicy"),
                policy,
                &["MountOption", "Recursive"],
            ));
        }
    }
    if spec.get("shareProcessNamespace").and_then(Value::as_bool) == Some(true)
        && super::common::bool_at(spec, "hostPID")
    {
        errs.push(FieldError::invalid(
            p.child("shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    errs
}

/// `validateSysctls`.
fn sysctls(sc: &Value, spec: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, sysctl) in list(sc, "sysctls").iter().enumerate() {
        let p = path.index(i).child("name");
        let name = str_at(sysctl, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&p, ""));
        } else if !valid_sysctl_name(name) {
            errs.push(FieldError::invalid(
                &p,
                name,
                "must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
            ));
        } else if seen.contains(&name) {
            errs.push(FieldError::duplicate(&p, name));
        }
        let net = name.starts_with("net.");
        let ipc = name.starts_with("kernel.shm")
            || name.starts_with("kernel.msg")
            || name == "kernel.sem"
            || name.starts_with("fs.mqueue.");
        if net && super::common::bool_at(spec, "hostNetwork") {
            errs.push(FieldError::invalid(
                &p,
                name,
                "may not be specified when 'hostNetwork' is true",
            ));
        } else if ipc && super::common::bool_at(spec, "hostIPC") {
            errs.push(FieldError::invalid(
                &p,
                name,
                "may not be specified when 'hostIPC' is true",
            ));
        }
        seen.push(name);
    }
    errs
}

fn valid_sysctl_name(name: &str) -> bool {
    let segment = |s: &str| {
        let b = s.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_'))
    };
    name.len() <= 253 && name.split(['.', '/']).all(segment)
}

/// `validateImagePullSecrets`: only `name`.
fn image_pull_secrets(spec: &Value, path: &Path) -> Errors {
    list(spec, "imagePullSecrets")
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.as_object()
                .is_some_and(|m| m.iter().any(|(k, v)| k != "name" && !v.is_null()))
        })
        .map(|(i, s)| FieldError::invalid(path.index(i), s.clone(), "only name may be set"))
        .collect()
}

/// `validateAffinity`.
fn affinity_errors(affinity: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    if let Some(node) = get(affinity, "nodeAffinity") {
        let p = path.child("nodeAffinity");
        if let Some(required) = get(node, "requiredDuringSchedulingIgnoredDuringExecution") {
            errs.extend(node_selector(
                required,
                &p.child("requiredDuringSchedulingIgnoredDuringExecution"),
            ));
        }
        let preferred = p.child("preferredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in list(node, "preferredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .enumerate()
        {
            errs.extend(weight(term, &preferred.index(i)));
            errs.extend(node_selector_term(
                get(term, "preference").unwrap_or(&Value::Null),
                &preferred.index(i).child("preference"),
                true,
            ));
        }
    }
    for key in ["podAffinity", "podAntiAffinity"] {
        let Some(pod) = get(affinity, key) else {
            continue;
        };
        let p = path.child(key);
        let required = p.child("requiredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in list(pod, "requiredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .enumerate()
        {
            errs.extend(pod_affinity_term(term, &required.index(i)));
        }
        let preferred = p.child("preferredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in list(pod, "preferredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .enumerate()
        {
            errs.extend(weight(term, &preferred.index(i)));
            errs.extend(pod_affinity_term(
                get(term, "podAffinityTerm").unwrap_or(&Value::Null),
                &preferred.index(i).child("podAffinityTerm"),
            ));
        }
    }
    errs
}

fn weight(term: &Value, path: &Path) -> Errors {
    let w = int_at(term, "weight").unwrap_or(0);
    if w <= 0 || w > 100 {
        return vec![FieldError::invalid(
            path.child("weight"),
            w,
            "must be in the range 1-100",
        )];
    }
    Vec::new()
}

fn pod_affinity_term(term: &Value, path: &Path) -> Errors {
    let mut errs = label_selector(get(term, "labelSelector"), &path.child("labelSelector"));
    errs.extend(label_selector(
        get(term, "namespaceSelector"),
        &path.child("namespaceSelector"),
    ));
    for ns in strings(term, "namespaces") {
        errs.extend(
            validation::name_is_dns_label(ns, false)
                .into_iter()
                .map(|m| FieldError::invalid(path.child("namespace"), ns, m)),
        );
    }
    let topology_key = str_at(term, "topologyKey");
    if topology_key.is_empty() {
        errs.push(FieldError::required(
            path.child("topologyKey"),
            "can not be empty",
        ));
    }
    errs.extend(label_name(topology_key, &path.child("topologyKey")));
    errs
}

/// `ValidateNodeSelector`: at least one term.
pub(crate) fn node_selector(selector: &Value, path: &Path) -> Errors {
    let terms = path.child("nodeSelectorTerms");
    let items = list(selector, "nodeSelectorTerms");
    if items.is_empty() {
        return vec![FieldError::required(
            terms,
            "must have at least one node selector term",
        )];
    }
    items
        .iter()
        .enumerate()
        .flat_map(|(i, term)| node_selector_term(term, &terms.index(i), false))
        .collect()
}

/// `ValidateNodeSelectorTerm`.
fn node_selector_term(term: &Value, path: &Path, allow_invalid_values: bool) -> Errors {
    let mut errs = Vec::new();
    for (i, req) in list(term, "matchExpressions").iter().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = strings(req, "values");
        match str_at(req, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            "Gt" | "Lt" => {
                if values.len() != 1 {
                    errs.push(FieldError::required(
                        p.child("values"),
                        "must be specified single value when `operator` is 'Lt' or 'Gt'",
                    ));
                }
            }
            op => errs.push(FieldError::invalid(
                p.child("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        errs.extend(label_name(str_at(req, "key"), &p.child("key")));
        if !allow_invalid_values {
            for (j, v) in values.iter().enumerate() {
                errs.extend(each_invalid(
                    &p.child("values").index(j),
                    v,
                    validation::is_valid_label_value(v),
                ));
            }
        }
    }
    for (i, req) in list(term, "matchFields").iter().enumerate() {
        let p = path.child("matchFields").index(i);
        let values = strings(req, "values");
        match str_at(req, "operator") {
            "In" | "NotIn" => {
                if values.len() != 1 {
                    errs.push(FieldError::required(
                        p.child("values"),
                        "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                    ));
                }
            }
            op => errs.push(FieldError::invalid(
                p.child("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let key = str_at(req, "key");
        if key != "metadata.name" {
            errs.push(FieldError::invalid(
                p.child("key"),
                key,
                "not a valid field selector key",
            ));
        } else {
            for (j, v) in values.iter().enumerate() {
                errs.extend(dns_subdomain(v, &p.child("values").index(j)));
            }
        }
    }
    errs
}

/// `validatePodDNSConfig`.
fn dns_config(spec: &Value, path: &Path) -> Errors {
    let config = get(spec, "dnsConfig");
    if str_at(spec, "dnsPolicy") == "None" {
        match config {
            None => {
                return vec![FieldError::required(
                    path,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                )];
            }
            Some(c) if list(c, "nameservers").is_empty() => {
                return vec![FieldError::required(
                    path.child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )];
            }
            Some(_) => {}
        }
    }
    let Some(config) = config else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let nameservers = strings(config, "nameservers");
    if nameservers.len() > 3 {
        errs.push(FieldError::invalid(
            path.child("nameservers"),
            Value::from(nameservers.clone()),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        errs.extend(net::valid_ip(&path.child("nameservers").index(i), ns));
    }
    let searches = strings(config, "searches");
    if searches.len() > 32 {
        errs.push(FieldError::invalid(
            path.child("searches"),
            Value::from(searches.clone()),
            "must not have more than 32 search paths",
        ));
    }
    if searches.join(" ").len() > 2048 {
        errs.push(FieldError::invalid(
            path.child("searches"),
            Value::from(searches.clone()),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, search) in searches.iter().enumerate() {
        if *search == "." {
            continue;
        }
        let search = search.strip_suffix('.').unwrap_or(search);
        errs.extend(subdomain_with_underscore(
            search,
            &path.child("searches").index(i),
        ));
    }
    for (i, option) in list(config, "options").iter().enumerate() {
        if str_at(option, "name").is_empty() {
            errs.push(FieldError::required(
                path.child("options").index(i),
                "must not be empty",
            ));
        }
    }
    errs
}

/// `IsDNS1123SubdomainWithUnderscore` (relaxed DNS search validation, the 1.33 default).
fn subdomain_with_underscore(value: &str, path: &Path) -> Errors {
    let label_ok = |l: &str| {
        let l = l.strip_prefix('_').unwrap_or(l);
        let b = l.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_'))
    };
    let mut msgs = Vec::new();
    if value.len() > validation::DNS1123_SUBDOMAIN_MAX_LENGTH {
        msgs.push(validation::max_len_error(
            validation::DNS1123_SUBDOMAIN_MAX_LENGTH,
        ));
    }
    if !value.split('.').all(label_ok) {
        msgs.push(validation::regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character",
            "_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*",
            &["example.com"],
        ));
    }
    each_invalid(path, value, msgs)
}

/// `validateSchedulingGates`.
fn scheduling_gates(spec: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, gate) in list(spec, "schedulingGates").iter().enumerate() {
        let name = str_at(gate, "name");
        errs.extend(qualified_name(name, &path.index(i)));
        if seen.contains(&name) {
            errs.push(FieldError::duplicate(path.index(i), name));
        }
        seen.push(name);
    }
    errs
}

/// `validateTopologySpreadConstraints`.
fn topology_spread(spec: &Value, path: &Path) -> Errors {
    let constraints = list(spec, "topologySpreadConstraints");
    let mut errs = Vec::new();
    for (i, c) in constraints.iter().enumerate() {
        let p = path.index(i);
        let skew = int_at(c, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            errs.push(FieldError::invalid(
                p.child("maxSkew"),
                skew,
                "must be greater than zero",
            ));
        }
        let key = str_at(c, "topologyKey");
        if key.is_empty() {
            errs.push(FieldError::required(
                p.child("topologyKey"),
                "can not be empty",
            ));
        }
        let action = str_at(c, "whenUnsatisfiable");
        if !matches!(action, "DoNotSchedule" | "ScheduleAnyway") {
            errs.push(not_supported(
                &p.child("whenUnsatisfiable"),
                action,
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if constraints[i + 1..]
            .iter()
            .any(|o| str_at(o, "topologyKey") == key && str_at(o, "whenUnsatisfiable") == action)
        {
            errs.push(FieldError::duplicate(
                p.child("{topologyKey, whenUnsatisfiable}"),
                format!("{{{key}, {action}}}"),
            ));
        }
        if let Some(min) = int_at(c, "minDomains") {
            if min <= 0 {
                errs.push(FieldError::invalid(
                    p.child("minDomains"),
                    min,
                    "must be greater than zero",
                ));
            }
            if action != "DoNotSchedule" {
                errs.push(FieldError::invalid(
                    p.child("minDomains"),
                    min,
                    format!(
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}"
                    ),
                ));
            }
        }
        for key in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
            if let Some(policy) = opt_str(c, key)
                && !matches!(policy, "Honor" | "Ignore")
            {
                errs.push(not_supported(&p.child(key), policy, &["Honor", "Ignore"]));
            }
        }
        errs.extend(label_selector(
            get(c, "labelSelector"),
            &p.child("labelSelector"),
        ));
    }
    errs
}

/// `ValidateTolerations`.
pub(crate) fn tolerations(items: &[Value], path: &Path) -> Errors {
    let mut errs = Vec::new();
    for (i, t) in items.iter().enumerate() {
        let p = path.index(i);
        let key = str_at(t, "key");
        let operator = str_at(t, "operator");
        let effect = str_at(t, "effect");
        let value = str_at(t, "value");
        if !key.is_empty() {
            errs.extend(label_name(key, &p.child("key")));
        }
        if key.is_empty() && operator != "Exists" {
            errs.push(FieldError::invalid(
                p.child("operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if get(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "Equal" | "" => {
                let msgs = validation::is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        p.child("operator"),
                        value,
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        p.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(not_supported(
                &p.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            errs.push(not_supported(
                &p.child("effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
    errs
}

// ---- pod templates -----------------------------------------------------------------------------------------

/// `ValidatePodSpecificAnnotations`: the deletion cost must be a 32-bit integer.
fn pod_annotations(annotations: &Value, path: &Path) -> Errors {
    let key = "controller.kubernetes.io/pod-deletion-cost";
    let Some(cost) = annotations.get(key).and_then(Value::as_str) else {
        return Vec::new();
    };
    let valid_first = cost == "0"
        || cost.starts_with('-')
        || cost.starts_with(|c: char| ('1'..='9').contains(&c));
    if !valid_first || cost.parse::<i32>().is_err() {
        return vec![FieldError::invalid(
            path.key(key),
            cost,
            "must be a 32bit integer",
        )];
    }
    Vec::new()
}

/// `ValidatePodTemplateSpec`: upstream reports the template's labels at `<path>.labels`.
pub(crate) fn template(template: &Value, path: &Path) -> Errors {
    let meta = template.get("metadata").unwrap_or(&Value::Null);
    let mut errs = labels_at(meta, "labels", &path.child("labels"));
    errs.extend(annotations_at(
        meta,
        "annotations",
        &path.child("annotations"),
    ));
    errs.extend(pod_annotations(
        meta.get("annotations").unwrap_or(&Value::Null),
        &path.child("annotations"),
    ));
    let spec_value = template.get("spec").unwrap_or(&Value::Null);
    errs.extend(spec(
        spec_value,
        &path.child("spec"),
        SpecOptions {
            resource_is_pod: false,
            pod_name: None,
        },
    ));
    if !list(spec_value, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// The template's `spec.restartPolicy`.
pub(crate) fn template_restart_policy(template: &Value) -> &str {
    template
        .get("spec")
        .map_or("", |s| str_at(s, "restartPolicy"))
}

/// `ValidatePodTemplateSpecForReplicaSet` (and for ReplicationControllers): the selector matches the
/// template's labels, the template is valid, restarts `Always`, no deadline.
pub(crate) fn template_for_replicas(
    template: Option<&Value>,
    selector: Option<&crate::labels::Selector>,
    kind: &str,
    path: &Path,
) -> Errors {
    let Some(template) = template else {
        return vec![FieldError::required(path, "")];
    };
    let mut errs = Vec::new();
    if let Some(selector) = selector
        && !selector.is_empty()
        && !selector_matches(
            selector,
            template.get("metadata").and_then(|m| map_at(m, "labels")),
        )
    {
        errs.push(FieldError::invalid(
            path.child("metadata").child("labels"),
            labels_value(template),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(self::template(template, path));
    errs.extend(always_restart(template, kind, &path.child("spec")));
    errs
}

/// Workloads whose pods run forever: `restartPolicy: Always`, no `activeDeadlineSeconds`.
pub(crate) fn always_restart(template: &Value, kind: &str, spec_path: &Path) -> Errors {
    let mut errs = Vec::new();
    let policy = template_restart_policy(template);
    if policy != "Always" {
        errs.push(not_supported(
            &spec_path.child("restartPolicy"),
            policy,
            &["Always"],
        ));
    }
    if template
        .get("spec")
        .is_some_and(|s| int_at(s, "activeDeadlineSeconds").is_some())
    {
        errs.push(FieldError::forbidden(
            spec_path.child("activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

// ---- Pods ---------------------------------------------------------------------------------------------------

fn pod_spec_of(pod: &Value) -> &Value {
    pod.get("spec").unwrap_or(&Value::Null)
}

/// `validatePodMetadataAndSpec`.
fn metadata_and_spec(pod: &Value) -> Errors {
    let mut errs = meta::create(pod, NameRule::Subdomain);
    let meta = meta::of(pod);
    errs.extend(pod_annotations(
        meta.get("annotations").unwrap_or(&Value::Null),
        &Path::new("metadata").child("annotations"),
    ));
    let pod_spec = pod_spec_of(pod);
    let spec_path = Path::new("spec");
    errs.extend(spec(
        pod_spec,
        &spec_path,
        SpecOptions {
            resource_is_pod: true,
            pod_name: Some(str_at(meta, "name")),
        },
    ));
    if str_at(pod_spec, "serviceAccountName").is_empty() {
        for (vi, vol) in list(pod_spec, "volumes").iter().enumerate() {
            let Some(projected) = get(vol, "projected") else {
                continue;
            };
            for (si, source) in list(projected, "sources").iter().enumerate() {
                if get(source, "serviceAccountToken").is_some() {
                    errs.push(FieldError::forbidden(
                        spec_path
                            .child("volumes")
                            .index(vi)
                            .child("projected")
                            .child("sources")
                            .index(si)
                            .child("serviceAccountToken"),
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    for key in ["containers", "initContainers"] {
        for (i, c) in list(pod_spec, key).iter().enumerate() {
            let image = str_at(c, "image");
            if image.trim() != image {
                errs.push(FieldError::invalid(
                    spec_path.child(key).index(i).child("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    errs
}

/// `ValidatePodCreate`.
pub(crate) fn create(pod: &Value) -> Errors {
    let mut errs = metadata_and_spec(pod);
    let pod_spec = pod_spec_of(pod);
    if !list(pod_spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        ));
    }
    if !str_at(pod_spec, "nodeName").is_empty() && !list(pod_spec, "schedulingGates").is_empty() {
        errs.push(FieldError::forbidden(
            "spec.nodeName",
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
    errs
}

const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`.
pub(crate) fn update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(metadata_and_spec(new));
    let (new_spec, old_spec) = (pod_spec_of(new), pod_spec_of(old));
    let spec_path = Path::new("spec");
    for key in ["containers", "initContainers"] {
        let (new_items, old_items) = (list(new_spec, key), list(old_spec, key));
        if new_items.len() != old_items.len() {
            errs.push(FieldError::forbidden(
                spec_path.child(key),
                "pod updates may not add or remove containers",
            ));
            return errs;
        }
        for (i, c) in new_items.iter().enumerate() {
            let image = str_at(c, "image");
            if image.is_empty() {
                errs.push(FieldError::required(
                    spec_path.child(key).index(i).child("image"),
                    "",
                ));
            }
            if image.trim() != image {
                errs.push(FieldError::invalid(
                    spec_path.child(key).index(i).child("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    let deadline_path = spec_path.child("activeDeadlineSeconds");
    match (
        int_at(new_spec, "activeDeadlineSeconds"),
        int_at(old_spec, "activeDeadlineSeconds"),
    ) {
        (Some(now), _) if !(0..=i64::from(i32::MAX)).contains(&now) => {
            errs.push(FieldError::invalid(
                deadline_path,
                now,
                super::common::inclusive_range_error(0, i64::from(i32::MAX)),
            ));
            return errs;
        }
        (Some(now), Some(before)) if before < now => {
            errs.push(FieldError::invalid(
                deadline_path,
                now,
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => errs.push(FieldError::invalid(
            deadline_path,
            Value::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    errs.extend(only_added_tolerations(
        list(new_spec, "tolerations"),
        list(old_spec, "tolerations"),
        &spec_path.child("tolerations"),
    ));
    errs.extend(only_removed_gates(
        new_spec,
        old_spec,
        &spec_path.child("schedulingGates"),
    ));
    if normalized(new_spec) == normalized(old_spec) {
        return errs;
    }
    let munged = munge_updatable(new_spec, old_spec, &mut errs);
    if normalized(&munged) != normalized(old_spec) {
        errs.push(FieldError::forbidden(
            spec_path.clone(),
            format!(
                "pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n{}",
                diff(old_spec, &munged, &spec_path)
            ),
        ));
    }
    errs
}

/// The new spec with what may change set back to the old values, so that any remaining difference is
/// forbidden. Gated pods may also add node selectors and node affinity.
fn munge_updatable(new_spec: &Value, old_spec: &Value, errs: &mut Errors) -> Value {
    let mut munged = new_spec.clone();
    let Some(m) = munged.as_object_mut() else {
        return munged;
    };
    for key in ["containers", "initContainers"] {
        let old_items = list(old_spec, key);
        if let Some(items) = m.get_mut(key).and_then(Value::as_array_mut) {
            for (c, old_c) in items.iter_mut().zip(old_items) {
                if let Some(c) = c.as_object_mut() {
                    match old_c.get("image") {
                        Some(image) => c.insert("image".to_owned(), image.clone()),
                        None => c.remove("image"),
                    };
                }
            }
        }
    }
    for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
        match old_spec.get(key) {
            Some(v) => m.insert(key.to_owned(), v.clone()),
            None => m.remove(key),
        };
    }
    if int_at(old_spec, "terminationGracePeriodSeconds").is_some_and(|g| g < 0)
        && int_at(new_spec, "terminationGracePeriodSeconds") == Some(1)
    {
        m.insert(
            "terminationGracePeriodSeconds".to_owned(),
            old_spec["terminationGracePeriodSeconds"].clone(),
        );
    }
    if !list(old_spec, "schedulingGates").is_empty() {
        let (new_sel, old_sel) = (
            string_map(new_spec, "nodeSelector"),
            string_map(old_spec, "nodeSelector"),
        );
        if new_sel != old_sel {
            if old_sel.iter().any(|(k, v)| new_sel.get(k) != Some(v)) {
                errs.push(FieldError::invalid(
                    "spec.nodeSelector",
                    new_spec.get("nodeSelector").cloned().unwrap_or(Value::Null),
                    "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                ));
            }
            match old_spec.get("nodeSelector") {
                Some(v) => m.insert("nodeSelector".to_owned(), v.clone()),
                None => m.remove("nodeSelector"),
            };
        }
        let old_node_affinity = old_spec.pointer("/affinity/nodeAffinity").cloned();
        if let Some(affinity) = m.get_mut("affinity").and_then(Value::as_object_mut) {
            match old_node_affinity {
                Some(v) => affinity.insert("nodeAffinity".to_owned(), v),
                None => affinity.remove("nodeAffinity"),
            };
        }
        if get(old_spec, "affinity").is_none()
            && m.get("affinity")
                .is_some_and(|a| normalized(a) == Value::Object(Default::default()))
        {
            m.remove("affinity");
        }
    }
    munged
}

/// `validateOnlyAddedTolerations`: existing tolerations stay (their `tolerationSeconds` may change).
fn only_added_tolerations(new: &[Value], old: &[Value], path: &Path) -> Errors {
    let without_seconds = |t: &Value| {
        let mut t = normalized(t);
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    for o in old {
        if !new.iter().any(|n| without_seconds(n) == without_seconds(o)) {
            return vec![FieldError::forbidden(
                path,
                "existing toleration can not be modified except its tolerationSeconds",
            )];
        }
    }
    tolerations(new, path)
}

/// `validateOnlyDeletedSchedulingGates`.
fn only_removed_gates(new_spec: &Value, old_spec: &Value, path: &Path) -> Errors {
    let old_names: Vec<&str> = list(old_spec, "schedulingGates")
        .iter()
        .map(|g| str_at(g, "name"))
        .collect();
    list(new_spec, "schedulingGates")
        .iter()
        .enumerate()
        .filter(|(_, g)| !old_names.contains(&str_at(g, "name")))
        .map(|(i, g)| {
            FieldError::forbidden(
                path.index(i).child("name"),
                format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    str_at(g, "name")
                ),
            )
        })
        .collect()
}

// ---- PodTemplates and ReplicationControllers ---------------------------------------------------------------

pub(crate) fn pod_template_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    errs.extend(template(
        object.get("template").unwrap_or(&Value::Null),
        &Path::new("template"),
    ));
    errs
}

pub(crate) fn pod_template_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(template(
        new.get("template").unwrap_or(&Value::Null),
        &Path::new("template"),
    ));
    errs
}

/// `ValidateReplicationControllerSpec`.
fn replication_controller_spec(object: &Value) -> Errors {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    let mut errs = nonnegative(
        int_at(spec, "minReadySeconds").unwrap_or(0),
        &path.child("minReadySeconds"),
    );
    let selector_map = string_map(spec, "selector");
    if selector_map.is_empty() {
        errs.push(FieldError::required(path.child("selector"), ""));
    }
    errs.extend(nonnegative(
        int_at(spec, "replicas").unwrap_or(0),
        &path.child("replicas"),
    ));
    let selector = crate::labels::Selector::from_set(selector_map);
    errs.extend(template_for_replicas(
        get(spec, "template"),
        Some(&selector),
        "ReplicationController",
        &path.child("template"),
    ));
    errs
}

pub(crate) fn replication_controller_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    errs.extend(replication_controller_spec(object));
    errs
}

pub(crate) fn replication_controller_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(replication_controller_spec(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults;
    use serde_json::json;

    fn msgs(errs: Errors) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn pod(spec: Value) -> Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}, "spec": spec});
        defaults::apply("", "Pod", &mut p);
        p
    }

    #[test]
    fn kubectl_run_pod_is_valid() {
        let p = pod(json!({"containers": [{"name": "web", "image": "nginx", "resources": {}}]}));
        assert_eq!(msgs(create(&p)), Vec::<String>::new());
    }

    #[test]
    fn containers_are_required() {
        let p = pod(json!({}));
        assert_eq!(msgs(create(&p)), ["spec.containers: Required value"]);
    }

    #[test]
    fn spec_level_rules() {
        let p = pod(json!({
            "containers": [{"name": "web", "image": "nginx", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}],
            "initContainers": [{"name": "web", "image": "busybox"}],
            "restartPolicy": "Sometimes",
            "dnsPolicy": "Custom",
            "nodeSelector": {"disk": "-ssd"},
            "activeDeadlineSeconds": 0,
            "hostname": "My_Host",
            "tolerations": [{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists", "value": "v"}, {"key": "k", "operator": "Maybe"}, {"key": "k", "tolerationSeconds": 5, "effect": "NoSchedule"}],
            "os": {"name": "plan9"}
        }));
        let errs = msgs(create(&p));
        assert_eq!(
            errs[0],
            "spec.containers[0].volumeMounts[0].name: Not found: \"nope\""
        );
        assert_eq!(
            errs[1],
            "spec.initContainers[0].name: Duplicate value: \"web\""
        );
        assert_eq!(
            errs[2],
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
        assert_eq!(
            errs[3],
            "spec.dnsPolicy: Unsupported value: \"Custom\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\""
        );
        assert!(
            errs[4].starts_with("spec.nodeSelector: Invalid value: \"-ssd\": a valid label must")
        );
        assert_eq!(
            errs[5],
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"
        );
        assert!(
            errs[6].starts_with(
                "spec.hostname: Invalid value: \"My_Host\": a lowercase RFC 1123 label"
            )
        );
        assert_eq!(
            errs[7],
            "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\""
        );
        assert_eq!(
            errs[8],
            "spec.tolerations[1].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'"
        );
        assert_eq!(
            errs[9],
            "spec.tolerations[2].operator: Unsupported value: \"Maybe\": supported values: \"Equal\", \"Exists\""
        );
        assert_eq!(
            errs[10],
            "spec.tolerations[3].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set"
        );
        assert_eq!(
            errs[11],
            "spec.os: Unsupported value: \"plan9\": supported values: \"linux\", \"windows\""
        );
        assert_eq!(errs.len(), 12);
    }

    #[test]
    fn affinity_and_dns() {
        let p = pod(json!({
            "containers": [{"name": "web", "image": "nginx"}],
            "dnsPolicy": "None",
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}},
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "podAffinityTerm": {"topologyKey": ""}}]}
            }
        }));
        assert_eq!(
            msgs(create(&p)),
            [
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value: must have at least one node selector term",
                "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100",
                "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey: Required value: can not be empty",
                "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey: Invalid value: \"\": name part must be non-empty",
                "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey: Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            ]
        );
    }

    #[test]
    fn pod_only_rules() {
        let p = pod(json!({
            "containers": [{"name": "web", "image": " nginx "}],
            "hostNetwork": true,
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}]
        }));
        let mut with_mismatch = p.clone();
        with_mismatch["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 80, "hostPort": 81, "protocol": "TCP"}]);
        let errs = msgs(create(&with_mismatch));
        assert_eq!(
            errs,
            [
                "spec.containers[0].ports[0].hostPort: Invalid value: 81: must match `containerPort` when `hostNetwork` is true",
                "spec.containers[0].image: Invalid value: \" nginx \": must not have leading or trailing whitespace",
                "spec.ephemeralContainers: Forbidden: cannot be set on create",
            ]
        );
    }

    #[test]
    fn updates_change_only_what_upstream_allows() {
        let old = pod(
            json!({"containers": [{"name": "web", "image": "nginx:1.25"}], "tolerations": [{"key": "a", "operator": "Exists"}]}),
        );
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:1.26");
        new["spec"]["activeDeadlineSeconds"] = json!(100);
        new["spec"]["tolerations"] =
            json!([{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]);
        assert_eq!(msgs(update(&new, &old)), Vec::<String>::new());

        let mut changed = old.clone();
        changed["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
        let errs = msgs(update(&changed, &old));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"));
        assert!(errs[0].contains("+spec.containers[0].env"));

        let mut more = old.clone();
        more["spec"]["containers"] =
            json!([{"name": "web", "image": "nginx"}, {"name": "b", "image": "b"}]);
        defaults::apply("", "Pod", &mut more);
        assert_eq!(
            msgs(update(&more, &old)),
            ["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );

        let mut removed = old.clone();
        removed["spec"]["tolerations"] = json!([]);
        assert_eq!(
            msgs(update(&removed, &old)),
            [
                "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
            ]
        );
    }

    #[test]
    fn deletion_cost_annotation() {
        let mut p = pod(json!({"containers": [{"name": "web", "image": "nginx"}]}));
        p["metadata"]["annotations"] = json!({"controller.kubernetes.io/pod-deletion-cost": "+10"});
        assert_eq!(
            msgs(create(&p)),
            [
                "metadata.annotations[controller.kubernetes.io/pod-deletion-cost]: Invalid value: \"+10\": must be a 32bit integer"
            ]
        );
    }

    #[test]
    fn replication_controllers() {
        let mut rc = json!({"metadata": {"name": "rc"}, "spec": {"replicas": 1, "selector": {"app": "x"}, "template": {
            "metadata": {"labels": {"app": "y"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}
        }}});
        defaults::apply("", "ReplicationController", &mut rc);
        assert_eq!(
            msgs(replication_controller_create(&rc)),
            [
                "spec.template.metadata.labels: Invalid value: {\"app\":\"y\"}: `selector` does not match template `labels`",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ]
        );
    }
}

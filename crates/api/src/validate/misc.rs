//! The other kinds: Namespaces, Nodes, Leases, RBAC roles and bindings, Ingresses and IngressClasses,
//! PodDisruptionBudgets, HorizontalPodAutoscalers, ControllerRevisions and NetworkPolicies.

use serde_json::Value;

use super::common::{
    Errors, IntOrStr, Path, dns_subdomain, duplicate_with, get, immutable, int_at, label_name,
    label_selector, list, map_at, nonnegative, not_supported, opt_str, percent_errors,
    qualified_name, semantic_eq, str_at, strings,
};
use super::container::{parse_quantity, resource_quantity};
use super::meta::{self, NameRule, kube_finalizer_name};
use super::net;
use crate::field::FieldError;
use crate::validation;

fn spec_of(object: &Value) -> &Value {
    object.get("spec").unwrap_or(&Value::Null)
}

// ---- Namespaces ------------------------------------------------------------------------------------------------

/// `ValidateNamespace`: a DNS-label name; `spec.finalizers` are finalizer names.
pub(crate) fn namespace_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Label);
    let path = Path::new("spec").child("finalizers");
    for finalizer in strings(spec_of(object), "finalizers") {
        errs.extend(qualified_name(finalizer, &path));
        errs.extend(kube_finalizer_name(finalizer, &path));
    }
    errs
}

/// `ValidateNamespaceUpdate`: metadata only (finalizers change through `/finalize`).
pub(crate) fn namespace_update(new: &Value, old: &Value) -> Errors {
    meta::update(new, old)
}

// ---- Nodes -------------------------------------------------------------------------------------------------------

/// `validateNodeTaints`; upstream reports spec taints under `metadata.taints`.
fn taints(taints: &[Value], path: &Path) -> Errors {
    let mut errs = Vec::new();
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (i, taint) in taints.iter().enumerate() {
        let p = path.index(i);
        let key = str_at(taint, "key");
        let value = str_at(taint, "value");
        let effect = str_at(taint, "effect");
        errs.extend(label_name(key, &p.child("key")));
        let msgs = validation::is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(p.child("value"), value, msgs.join(";")));
        }
        match effect {
            "" => errs.push(FieldError::required(p.child("effect"), "")),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => errs.push(not_supported(
                &p.child("effect"),
                other,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
        if seen.contains(&(key, effect)) {
            errs.push(duplicate_with(
                &p,
                taint.clone(),
                "taints must be unique by key and effect pair",
            ));
            continue;
        }
        seen.push((key, effect));
    }
    errs
}

/// `ValidateNodeResources`: capacity and allocatable quantities.
fn node_resources(object: &Value) -> Errors {
    let mut errs = Vec::new();
    let status = object.get("status").unwrap_or(&Value::Null);
    for key in ["capacity", "allocatable"] {
        for (name, raw) in map_at(status, key).into_iter().flatten() {
            let p = Path::new("status").child(key).child(name);
            match parse_quantity(raw, &p) {
                Ok(q) => errs.extend(resource_quantity(name, &q, &p)),
                Err(e) => errs.push(e),
            }
        }
    }
    errs
}

fn pod_cidrs(spec: &Value) -> Errors {
    let cidrs = strings(spec, "podCIDRs");
    let path = Path::new("spec").child("podCIDRs");
    let mut errs = Vec::new();
    for (i, cidr) in cidrs.iter().enumerate() {
        errs.extend(net::valid_cidr(&path.index(i), cidr));
    }
    if cidrs.len() > 1 {
        let v6 = |c: &str| net::is_ipv6(c.split('/').next().unwrap_or(""));
        if cidrs.len() > 2 || v6(cidrs[0]) == v6(cidrs[1]) {
            errs.push(FieldError::invalid(
                &path,
                Value::from(cidrs.clone()),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        for (i, cidr) in cidrs.iter().enumerate() {
            if cidrs[..i].contains(cidr) {
                errs.push(FieldError::duplicate(path.index(i), *cidr));
            }
        }
    }
    errs
}

/// `ValidateNode`.
pub(crate) fn node_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    let spec = spec_of(object);
    errs.extend(taints(
        list(spec, "taints"),
        &Path::new("metadata").child("taints"),
    ));
    errs.extend(node_resources(object));
    errs.extend(pod_cidrs(spec));
    errs
}

/// `ValidateNodeUpdate`: pod CIDRs and the provider ID are set once.
pub(crate) fn node_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(node_resources(new));
    let (new_spec, old_spec) = (spec_of(new), spec_of(old));
    let old_cidrs = strings(old_spec, "podCIDRs");
    if !old_cidrs.is_empty() && strings(new_spec, "podCIDRs") != old_cidrs {
        errs.push(FieldError::forbidden(
            "spec.podCIDRs",
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    let old_provider = str_at(old_spec, "providerID");
    if !old_provider.is_empty() && old_provider != str_at(new_spec, "providerID") {
        errs.push(FieldError::forbidden(
            "spec.providerID",
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    errs.extend(taints(
        list(new_spec, "taints"),
        &Path::new("metadata").child("taints"),
    ));
    errs
}

// ---- Leases --------------------------------------------------------------------------------------------------------

fn lease_spec(spec: &Value) -> Errors {
    let path = Path::new("spec");
    let mut errs = Vec::new();
    if let Some(duration) = int_at(spec, "leaseDurationSeconds").filter(|d| *d <= 0) {
        errs.push(FieldError::invalid(
            path.child("leaseDurationSeconds"),
            duration,
            "must be greater than 0",
        ));
    }
    if let Some(transitions) = int_at(spec, "leaseTransitions").filter(|t| *t < 0) {
        errs.push(FieldError::invalid(
            path.child("leaseTransitions"),
            transitions,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(strategy) = opt_str(spec, "strategy") {
        let p = path.child("strategy").child("strategy");
        if strategy.contains('/') {
            errs.extend(qualified_name(strategy, &p));
        } else if strategy != "OldestEmulationVersion" {
            errs.push(not_supported(&p, strategy, &["OldestEmulationVersion"]));
        }
    }
    if opt_str(spec, "preferredHolder").is_some_and(|h| !h.is_empty())
        && opt_str(spec, "strategy").is_none_or(str::is_empty)
    {
        errs.push(FieldError::forbidden(
            path.child("preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
    errs
}

pub(crate) fn lease_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    errs.extend(lease_spec(spec_of(object)));
    errs
}

pub(crate) fn lease_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(lease_spec(spec_of(new)));
    errs
}

// ---- RBAC --------------------------------------------------------------------------------------------------------

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `validatePolicyRule`.
fn policy_rule(rule: &Value, namespaced: bool, path: &Path) -> Errors {
    let mut errs = Vec::new();
    if list(rule, "verbs").is_empty() {
        errs.push(FieldError::required(
            path.child("verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = list(rule, "nonResourceURLs");
    if !urls.is_empty() {
        let value = Value::Array(urls.to_vec());
        if namespaced {
            errs.push(FieldError::invalid(
                path.child("nonResourceURLs"),
                value.clone(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if ["apiGroups", "resources", "resourceNames"]
            .iter()
            .any(|k| !list(rule, k).is_empty())
        {
            errs.push(FieldError::invalid(
                path.child("nonResourceURLs"),
                value,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errs;
    }
    if list(rule, "apiGroups").is_empty() {
        errs.push(FieldError::required(
            path.child("apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    let resources = list(rule, "resources");
    if resources.is_empty() {
        errs.push(FieldError::required(
            path.child("resources"),
            "resource rules must supply at least one resource",
        ));
    }
    if !list(rule, "resourceNames").is_empty() && resources.len() > 1 {
        errs.push(FieldError::required(
            path.child("resourceNames"),
            "resource names cannot apply to multiple resources",
        ));
    }
    errs
}

/// `ValidateRole` / `ValidateClusterRole`.
pub(crate) fn role_create(object: &Value, namespaced: bool) -> Errors {
    let mut errs = meta::create(object, NameRule::PathSegment);
    for (i, rule) in list(object, "rules").iter().enumerate() {
        errs.extend(policy_rule(rule, namespaced, &Path::new("rules").index(i)));
    }
    errs
}

pub(crate) fn role_update(new: &Value, old: &Value, namespaced: bool) -> Errors {
    let mut errs = role_create(new, namespaced);
    errs.extend(meta::update(new, old));
    errs
}

fn subject(s: &Value, namespaced: bool, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let name = str_at(s, "name");
    let group = str_at(s, "apiGroup");
    if name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    }
    match str_at(s, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                errs.extend(dns_subdomain(name, &path.child("name")));
            }
            if !group.is_empty() {
                errs.push(not_supported(&path.child("apiGroup"), group, &[""]));
            }
            if !namespaced && str_at(s, "namespace").is_empty() {
                errs.push(FieldError::required(path.child("namespace"), ""));
            }
        }
        kind @ ("User" | "Group") => {
            if name.is_empty() {
                let what = if kind == "User" { "user" } else { "group" };
                errs.push(FieldError::invalid(
                    path.child("name"),
                    name,
                    format!("{what} name cannot be empty"),
                ));
            }
            if group != RBAC_GROUP {
                errs.push(not_supported(&path.child("apiGroup"), group, &[RBAC_GROUP]));
            }
        }
        other => errs.push(not_supported(
            &path.child("kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errs
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding`.
pub(crate) fn binding_create(object: &Value, namespaced: bool) -> Errors {
    let mut errs = meta::create(object, NameRule::PathSegment);
    let role_ref = object.get("roleRef").unwrap_or(&Value::Null);
    let ref_path = Path::new("roleRef");
    let group = str_at(role_ref, "apiGroup");
    if group != RBAC_GROUP {
        errs.push(not_supported(
            &ref_path.child("apiGroup"),
            group,
            &[RBAC_GROUP],
        ));
    }
    let kind = str_at(role_ref, "kind");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errs.push(not_supported(&ref_path.child("kind"), kind, kinds));
    }
    let name = str_at(role_ref, "name");
    if name.is_empty() {
        errs.push(FieldError::required(ref_path.child("name"), ""));
    } else {
        errs.extend(
            validation::is_valid_path_segment_name(name)
                .into_iter()
                .map(|m| FieldError::invalid(ref_path.child("name"), name, m)),
        );
    }
    for (i, s) in list(object, "subjects").iter().enumerate() {
        errs.extend(subject(s, namespaced, &Path::new("subjects").index(i)));
    }
    errs
}

/// Bindings may not change what they grant: `roleRef: Invalid value: ...: cannot change roleRef`.
pub(crate) fn binding_update(new: &Value, old: &Value, namespaced: bool) -> Errors {
    let mut errs = binding_create(new, namespaced);
    errs.extend(meta::update(new, old));
    if !semantic_eq(new.get("roleRef"), old.get("roleRef")) {
        errs.push(FieldError::invalid(
            "roleRef",
            new.get("roleRef").cloned().unwrap_or(Value::Null),
            "cannot change roleRef",
        ));
    }
    errs
}

// ---- Ingresses ----------------------------------------------------------------------------------------------------

/// `IsWildcardDNS1123Subdomain`.
fn wildcard_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > validation::DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(validation::max_len_error(
            validation::DNS1123_SUBDOMAIN_MAX_LENGTH,
        ));
    }
    let valid = value
        .strip_prefix("*.")
        .is_some_and(|rest| validation::is_dns1123_subdomain(rest).is_empty());
    if !valid {
        errs.push(validation::regex_error(
            "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character",
            "\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
            &["*.example.com"],
        ));
    }
    errs
}

fn host_errors(host: &str, path: &Path) -> Errors {
    let msgs = if host.contains('*') {
        wildcard_subdomain_errors(host)
    } else {
        validation::is_dns1123_subdomain(host)
    };
    msgs.into_iter()
        .map(|m| FieldError::invalid(path, host, m))
        .collect()
}

/// `validateIngressBackend`.
fn ingress_backend(backend: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    match (get(backend, "resource"), get(backend, "service")) {
        (Some(_), Some(_)) => {
            return vec![FieldError::invalid(
                path,
                "",
                "cannot set both resource and service backends",
            )];
        }
        (Some(resource), None) => {
            let p = path.child("resource");
            if let Some(group) = opt_str(resource, "apiGroup") {
                errs.extend(dns_subdomain(group, &p.child("apiGroup")));
            }
            for key in ["kind", "name"] {
                let value = str_at(resource, key);
                if value.is_empty() {
                    errs.push(FieldError::required(
                        p.child(key),
                        format!("{key} is required"),
                    ));
                } else {
                    errs.extend(
                        validation::is_valid_path_segment_name(value)
                            .into_iter()
                            .map(|m| FieldError::invalid(p.child(key), value, m)),
                    );
                }
            }
        }
        (None, Some(service)) => {
            let p = path.child("service");
            let name = str_at(service, "name");
            if name.is_empty() {
                errs.push(FieldError::required(p.child("name"), ""));
            } else {
                errs.extend(
                    validation::name_is_dns1035_label(name, false)
                        .into_iter()
                        .map(|m| FieldError::invalid(p.child("name"), name, m)),
                );
            }
            let port = service.get("port").unwrap_or(&Value::Null);
            let port_name = str_at(port, "name");
            let number = int_at(port, "number").unwrap_or(0);
            match (port_name.is_empty(), number == 0) {
                (false, false) => errs.push(FieldError::invalid(
                    path,
                    "",
                    "cannot set both port name & port number",
                )),
                (false, true) => errs.extend(
                    super::common::port_name_errors(port_name)
                        .into_iter()
                        .map(|m| FieldError::invalid(p.child("port").child("name"), port_name, m)),
                ),
                (true, false) => errs.extend(
                    super::common::port_num_errors(number)
                        .into_iter()
                        .map(|m| FieldError::invalid(p.child("port").child("number"), number, m)),
                ),
                (true, true) => errs.push(FieldError::required(
                    path,
                    "port name or number is required",
                )),
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
    }
    errs
}

fn http_path(p: &Value, path: &Path) -> Errors {
    let Some(path_type) = opt_str(p, "pathType") else {
        return vec![FieldError::required(
            path.child("pathType"),
            "pathType must be specified",
        )];
    };
    let mut errs = Vec::new();
    let value = str_at(p, "path");
    let pp = path.child("path");
    match path_type {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errs.push(FieldError::invalid(&pp, value, "must be an absolute path"));
            }
            if !value.is_empty() {
                for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                    if value.contains(seq) {
                        errs.push(FieldError::invalid(
                            &pp,
                            value,
                            format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suffix in ["/..", "/."] {
                    if value.ends_with(suffix) {
                        errs.push(FieldError::invalid(
                            &pp,
                            value,
                            format!("cannot end with '{suffix}'"),
                        ));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.push(FieldError::invalid(&pp, value, "must be an absolute path"));
            }
        }
        other => errs.push(not_supported(
            &path.child("pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    errs.extend(ingress_backend(
        p.get("backend").unwrap_or(&Value::Null),
        &path.child("backend"),
    ));
    errs
}

/// `ValidateIngressSpec`.
fn ingress_spec(spec: &Value) -> Errors {
    let path = Path::new("spec");
    let mut errs = Vec::new();
    let rules = list(spec, "rules");
    let default_backend = get(spec, "defaultBackend");
    if rules.is_empty() && default_backend.is_none() {
        errs.push(FieldError::invalid(
            &path,
            Value::Array(Vec::new()),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = default_backend {
        errs.extend(ingress_backend(backend, &path.child("defaultBackend")));
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = path.child("rules").index(i);
        let host = str_at(rule, "host");
        if !host.is_empty() {
            if net::parse_ip_sloppy(host).is_some() {
                errs.push(FieldError::invalid(
                    p.child("host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            errs.extend(host_errors(host, &p.child("host")));
        }
        if let Some(http) = get(rule, "http") {
            let paths = list(http, "paths");
            let hp = p.child("http").child("paths");
            if paths.is_empty() {
                errs.push(FieldError::required(&hp, ""));
            }
            for (j, item) in paths.iter().enumerate() {
                errs.extend(http_path(item, &hp.index(j)));
            }
        }
    }
    for (i, tls) in list(spec, "tls").iter().enumerate() {
        let p = path.child("tls").index(i);
        for (j, host) in strings(tls, "hosts").iter().enumerate() {
            errs.extend(host_errors(host, &p.child("hosts").index(j)));
        }
        let secret = str_at(tls, "secretName");
        if !secret.is_empty() {
            errs.extend(dns_subdomain(secret, &p.child("secretName")));
        }
    }
    if let Some(class) = opt_str(spec, "ingressClassName") {
        errs.extend(dns_subdomain(class, &path.child("ingressClassName")));
    }
    errs
}

pub(crate) fn ingress_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    errs.extend(ingress_spec(spec_of(object)));
    errs
}

pub(crate) fn ingress_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(ingress_spec(spec_of(new)));
    errs
}

/// `ValidateIngressClass`: a controller (a domain-prefixed path of at most 250 characters).
pub(crate) fn ingress_class_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    let controller = str_at(spec_of(object), "controller");
    let path = Path::new("spec").child("controller");
    if controller.is_empty() {
        errs.push(FieldError::required(&path, ""));
    } else {
        let valid = controller.split_once('/').is_some_and(|(host, rest)| {
            !rest.is_empty() && validation::is_dns1123_subdomain(host).is_empty()
        });
        if !valid {
            errs.push(FieldError::invalid(
                &path,
                controller,
                "must be a domain-prefixed path (such as \"acme.io/foo\")",
            ));
        }
        if controller.len() > 250 {
            errs.push(FieldError::too_long(&path, 250));
        }
    }
    errs
}

pub(crate) fn ingress_class_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(
        ingress_class_create(new)
            .into_iter()
            .filter(|e| !e.field.starts_with("metadata")),
    );
    errs.extend(immutable(
        spec_of(new).get("controller"),
        spec_of(old).get("controller"),
        &Path::new("spec").child("controller"),
    ));
    errs
}

/// NetworkPolicies: metadata and the pod selectors.
pub(crate) fn network_policy_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    let spec = spec_of(object);
    errs.extend(label_selector(
        get(spec, "podSelector"),
        &Path::new("spec").child("podSelector"),
    ));
    for (i, policy_type) in strings(spec, "policyTypes").iter().enumerate() {
        if !matches!(*policy_type, "Ingress" | "Egress") {
            errs.push(not_supported(
                &Path::new("spec").child("policyTypes").index(i),
                *policy_type,
                &["Ingress", "Egress"],
            ));
        }
    }
    errs
}

pub(crate) fn network_policy_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(
        network_policy_create(new)
            .into_iter()
            .filter(|e| !e.field.starts_with("metadata")),
    );
    errs
}

// ---- PodDisruptionBudgets ------------------------------------------------------------------------------------------

fn int_or_percent(v: &Value, path: &Path) -> Errors {
    match IntOrStr::from_value(v) {
        Some(IntOrStr::Str(s)) => {
            let mut errs: Errors = percent_errors(&s)
                .into_iter()
                .map(|m| FieldError::invalid(path, s.as_str(), m))
                .collect();
            if errs.is_empty()
                && s.trim_end_matches('%')
                    .parse::<i64>()
                    .is_ok_and(|n| n > 100)
            {
                errs.push(FieldError::invalid(
                    path,
                    s.as_str(),
                    "must not be greater than 100%",
                ));
            }
            errs
        }
        Some(IntOrStr::Int(n)) => nonnegative(n, path),
        None => Vec::new(),
    }
}

/// `ValidatePodDisruptionBudgetSpec`. Upstream checks PDB metadata only with the generic rules.
fn pdb_spec(spec: &Value) -> Errors {
    let path = Path::new("spec");
    let mut errs = Vec::new();
    let (min, max) = (get(spec, "minAvailable"), get(spec, "maxUnavailable"));
    if min.is_some() && max.is_some() {
        errs.push(FieldError::invalid(
            &path,
            spec.clone(),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    if let Some(min) = min {
        errs.extend(int_or_percent(min, &path.child("minAvailable")));
    }
    if let Some(max) = max {
        errs.extend(int_or_percent(max, &path.child("maxUnavailable")));
    }
    errs.extend(label_selector(
        get(spec, "selector"),
        &path.child("selector"),
    ));
    if let Some(policy) = opt_str(spec, "unhealthyPodEvictionPolicy")
        && !matches!(policy, "IfHealthyBudget" | "AlwaysAllow")
    {
        errs.push(not_supported(
            &path.child("unhealthyPodEvictionPolicy"),
            policy,
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
    errs
}

pub(crate) fn pdb_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::PathSegment);
    errs.extend(pdb_spec(spec_of(object)));
    errs
}

pub(crate) fn pdb_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(pdb_spec(spec_of(new)));
    errs
}

// ---- HorizontalPodAutoscalers --------------------------------------------------------------------------------------

const METRIC_TYPES: &[(&str, &str)] = &[
    ("Object", "object"),
    ("Pods", "pods"),
    ("Resource", "resource"),
    ("External", "external"),
    ("ContainerResource", "containerResource"),
];

/// `validateHorizontalPodAutoscalerSpec`: replica bounds, the scale target, each metric's source.
fn hpa_spec(spec: &Value) -> Errors {
    let path = Path::new("spec");
    let mut errs = Vec::new();
    let min = int_at(spec, "minReplicas");
    let max = int_at(spec, "maxReplicas").unwrap_or(0);
    if let Some(min) = min.filter(|m| *m < 1) {
        errs.push(FieldError::invalid(
            path.child("minReplicas"),
            min,
            "must be greater than or equal to 1",
        ));
    }
    if max < 1 {
        errs.push(FieldError::invalid(
            path.child("maxReplicas"),
            max,
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(FieldError::invalid(
            path.child("maxReplicas"),
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let target = spec.get("scaleTargetRef").unwrap_or(&Value::Null);
    let target_path = path.child("scaleTargetRef");
    for key in ["kind", "name"] {
        let value = str_at(target, key);
        if value.is_empty() {
            errs.push(FieldError::required(target_path.child(key), ""));
        } else {
            errs.extend(
                validation::is_valid_path_segment_name(value)
                    .into_iter()
                    .map(|m| FieldError::invalid(target_path.child(key), value, m)),
            );
        }
    }
    let supported: Vec<&str> = METRIC_TYPES.iter().map(|(t, _)| *t).collect();
    for (i, metric) in list(spec, "metrics").iter().enumerate() {
        let p = path.child("metrics").index(i);
        let kind = str_at(metric, "type");
        if kind.is_empty() {
            errs.push(FieldError::required(
                p.child("type"),
                "must specify a metric source type",
            ));
        }
        let expected = METRIC_TYPES
            .iter()
            .find(|(t, _)| *t == kind)
            .map(|(_, f)| *f);
        match expected {
            None => errs.push(not_supported(&p.child("type"), kind, &supported)),
            Some(field) if get(metric, field).is_none() => errs.push(FieldError::required(
                p.child(field),
                "must populate information for the given metric source",
            )),
            Some(_) => {}
        }
        let present: Vec<&str> = METRIC_TYPES
            .iter()
            .map(|(_, f)| *f)
            .filter(|f| get(metric, f).is_some())
            .collect();
        if present.len() > 1 {
            for field in present.iter().filter(|f| Some(**f) != expected) {
                errs.push(FieldError::forbidden(
                    p.child(field),
                    "must populate the given metric source only",
                ));
            }
        }
    }
    errs
}

pub(crate) fn hpa_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    errs.extend(hpa_spec(spec_of(object)));
    errs
}

pub(crate) fn hpa_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(hpa_spec(spec_of(new)));
    errs
}

// ---- ControllerRevisions -------------------------------------------------------------------------------------------

pub(crate) fn controller_revision_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    if get(object, "data").is_none() {
        errs.push(FieldError::required("data", "data is mandatory"));
    }
    errs.extend(nonnegative(
        int_at(object, "revision").unwrap_or(0),
        &Path::new("revision"),
    ));
    errs
}

pub(crate) fn controller_revision_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(controller_revision_create(new));
    errs.extend(immutable(
        new.get("data"),
        old.get("data"),
        &Path::new("data"),
    ));
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

    #[test]
    fn namespaces() {
        let mut ns =
            json!({"metadata": {"name": "team-a"}, "spec": {"finalizers": ["kubernetes"]}});
        defaults::apply("", "Namespace", &mut ns);
        assert!(namespace_create(&ns).is_empty());
        let bad = json!({"metadata": {"name": "team.a"}, "spec": {"finalizers": ["custom"]}});
        assert_eq!(
            msgs(namespace_create(&bad)),
            [
                "metadata.name: Invalid value: \"team.a\": must not contain dots",
                "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified",
            ]
        );
    }

    #[test]
    fn nodes() {
        let node = json!({"metadata": {"name": "worker-1"}, "spec": {
            "podCIDRs": ["10.244.1.0/24"],
            "taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "Sometimes"}]
        }, "status": {"capacity": {"cpu": "4", "memory": "-1"}}});
        assert_eq!(
            msgs(node_create(&node)),
            [
                "metadata.taints[1]: Duplicate value: {\"effect\":\"NoSchedule\",\"key\":\"a\"}: taints must be unique by key and effect pair",
                "metadata.taints[2].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                "status.capacity.memory: Invalid value: \"-1\": must be greater than or equal to 0",
            ]
        );
        let mut moved = node.clone();
        moved["spec"]["podCIDRs"] = json!(["10.244.2.0/24"]);
        assert!(msgs(node_update(&moved, &node)).contains(&"spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid".to_owned()));
    }

    #[test]
    fn leases() {
        let lease = json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 0, "leaseTransitions": -1}});
        assert_eq!(
            msgs(lease_create(&lease)),
            [
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
    }

    #[test]
    fn rbac() {
        let role = json!({"metadata": {"name": "reader"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}
        ]});
        assert_eq!(
            msgs(role_create(&role, true)),
            [
                "rules[1].verbs: Required value: verbs must contain at least one value",
                "rules[2].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
            ]
        );
        let mut binding = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "reader"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "default"}, {"kind": "Robot", "name": "r"}]});
        defaults::apply("rbac.authorization.k8s.io", "RoleBinding", &mut binding);
        assert_eq!(
            msgs(binding_create(&binding, true)),
            [
                "subjects[2].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            ]
        );
        let mut changed = binding.clone();
        changed["roleRef"]["name"] = json!("admin");
        assert_eq!(
            msgs(binding_update(&changed, &binding, true))
                .last()
                .map(String::as_str),
            Some(
                "roleRef: Invalid value: {\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"Role\",\"name\":\"admin\"}: cannot change roleRef"
            )
        );
        let cluster = json!({"metadata": {"name": "cb"}, "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "x"},
            "subjects": [{"kind": "ServiceAccount", "name": "default"}]});
        assert_eq!(
            msgs(binding_create(&cluster, false)),
            [
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[0].namespace: Required value",
            ]
        );
    }

    #[test]
    fn ingresses() {
        let good = json!({"metadata": {"name": "web"}, "spec": {"ingressClassName": "nginx", "rules": [{"host": "example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
        ]}}], "tls": [{"hosts": ["*.example.com"], "secretName": "tls"}]}});
        assert!(ingress_create(&good).is_empty());
        let bad = json!({"metadata": {"name": "web"}, "spec": {"rules": [{"host": "10.0.0.1", "http": {"paths": [
            {"path": "/"},
            {"path": "api", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {}}}},
            {"path": "/", "pathType": "Regex", "backend": {}}
        ]}}]}});
        let errs = msgs(ingress_create(&bad));
        assert_eq!(
            errs[0],
            "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address"
        );
        assert_eq!(
            errs[1],
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"
        );
        assert_eq!(
            errs[2],
            "spec.rules[0].http.paths[1].path: Invalid value: \"api\": must be an absolute path"
        );
        assert_eq!(
            errs[3],
            "spec.rules[0].http.paths[1].backend: Required value: port name or number is required"
        );
        assert_eq!(
            errs[4],
            "spec.rules[0].http.paths[2].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\""
        );
        assert_eq!(
            errs[5],
            "spec.rules[0].http.paths[2].backend: Invalid value: \"\": resource or service backend is required"
        );
        let empty = json!({"metadata": {"name": "web"}, "spec": {}});
        assert_eq!(
            msgs(ingress_create(&empty)),
            [
                "spec: Invalid value: []string{}: either `defaultBackend` or `rules` must be specified"
            ]
        );
    }

    #[test]
    fn pdbs_and_hpas() {
        let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": 1, "maxUnavailable": "150%", "selector": {"matchLabels": {"app": "web"}}}});
        let errs = msgs(pdb_create(&pdb));
        assert!(errs[0].ends_with("minAvailable and maxUnavailable cannot be both set"));
        assert_eq!(
            errs[1],
            "spec.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%"
        );
        let good = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}});
        assert!(pdb_create(&good).is_empty());

        let mut hpa = json!({"apiVersion": "autoscaling/v2", "metadata": {"name": "web"}, "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5
        }});
        defaults::apply("autoscaling", "HorizontalPodAutoscaler", &mut hpa);
        assert_eq!(msgs(hpa_create(&hpa)), Vec::<String>::new());
        let bad = json!({"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {}, "minReplicas": 3, "maxReplicas": 2,
            "metrics": [{"type": "Resource"}, {"type": "Guess"}]}});
        assert_eq!(
            msgs(hpa_create(&bad)),
            [
                "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
                "spec.scaleTargetRef.kind: Required value",
                "spec.scaleTargetRef.name: Required value",
                "spec.metrics[0].resource: Required value: must populate information for the given metric source",
                "spec.metrics[1].type: Unsupported value: \"Guess\": supported values: \"Object\", \"Pods\", \"Resource\", \"External\", \"ContainerResource\"",
            ]
        );
    }
}

//! Services (`ValidateService`, `ValidateServiceUpdate`), Endpoints and EndpointSlices. IP and node port
//! allocation happens elsewhere: an unset `clusterIP`, node port or health check port is accepted here, but
//! set values must be well formed, and an allocated cluster IP may not change.

use serde_json::{Value, json};

use super::common::{
    Errors, Path, dns_label, dns_subdomain, get, int_at, labels_at, list, not_supported, opt_str,
    port_num_errors, port_num_or_name, qualified_name, str_at, strings,
};
use super::container::protocol;
use super::meta::{self, NameRule};
use super::net;
use crate::field::FieldError;

fn spec_of(object: &Value) -> &Value {
    object.get("spec").unwrap_or(&Value::Null)
}

/// The service as the registry hands it to validation: `clusterIPs` initialised from `clusterIP` (what
/// upstream's `NormalizeClusterIPs` does for clients that only set the singular field).
fn normalized_service(service: &Value) -> Value {
    let mut s = service.clone();
    if let Some(spec) = s.get_mut("spec").and_then(Value::as_object_mut) {
        let ip = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let has_ips = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !ip.is_empty() && !has_ips {
            spec.insert("clusterIPs".to_owned(), json!([ip]));
        }
    }
    s
}

/// `patchAllocatedValues`: an update that leaves out allocated values keeps them.
fn with_allocated_values(new: &Value, old: &Value) -> Value {
    let mut s = new.clone();
    let (old_spec, new_type) = (spec_of(old), str_at(spec_of(new), "type"));
    if str_at(old_spec, "type") == "ExternalName" || new_type == "ExternalName" {
        return s;
    }
    let Some(spec) = s.get_mut("spec").and_then(Value::as_object_mut) else {
        return s;
    };
    if spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
        && let Some(ip) = get(old_spec, "clusterIP")
    {
        spec.insert("clusterIP".to_owned(), ip.clone());
    }
    let no_ips = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_ips && let Some(ips) = get(old_spec, "clusterIPs") {
        spec.insert("clusterIPs".to_owned(), ips.clone());
    }
    let needs_health_check = |s: &Value| {
        str_at(s, "type") == "LoadBalancer" && str_at(s, "externalTrafficPolicy") == "Local"
    };
    if needs_health_check(old_spec)
        && needs_health_check(spec_of(new))
        && spec
            .get("healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
        && let Some(port) = get(old_spec, "healthCheckNodePort")
    {
        spec.insert("healthCheckNodePort".to_owned(), port.clone());
    }
    s
}

fn cluster_ips(spec: &Value) -> Vec<&str> {
    strings(spec, "clusterIPs")
}

fn is_headless(spec: &Value) -> bool {
    cluster_ips(spec) == ["None"]
}

/// `ValidateService` on a normalized service.
fn service(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Dns1035);
    let spec = spec_of(object);
    let path = Path::new("spec");
    let service_type = str_at(spec, "type");
    let headless = is_headless(spec);
    let ports = list(spec, "ports");
    if ports.is_empty() && !headless && service_type != "ExternalName" {
        errs.push(FieldError::required(path.child("ports"), ""));
    }
    match service_type {
        "LoadBalancer" | "NodePort" if headless => errs.push(FieldError::invalid(
            path.child("clusterIPs").index(0),
            "None",
            format!("may not be set to 'None' for {service_type} services"),
        )),
        "ExternalName" => {
            for key in ["clusterIPs", "ipFamilies"] {
                if !list(spec, key).is_empty() {
                    errs.push(FieldError::forbidden(
                        path.child(key),
                        "may not be set for ExternalName services",
                    ));
                }
            }
            if get(spec, "ipFamilyPolicy").is_some() {
                errs.push(FieldError::forbidden(
                    path.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let cname = str_at(spec, "externalName");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(FieldError::required(path.child("externalName"), ""));
            } else {
                errs.extend(dns_subdomain(cname, &path.child("externalName")));
            }
        }
        _ => {}
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        errs.extend(service_port(
            port,
            ports.len() > 1,
            &mut names,
            &path.child("ports").index(i),
        ));
    }
    if get(spec, "selector").is_some() {
        errs.extend(labels_at(spec, "selector", &path.child("selector")));
    }
    errs.extend(session_affinity(spec, &path));
    errs.extend(cluster_ips_related(spec, &path));
    for (i, ip) in strings(spec, "externalIPs").iter().enumerate() {
        let p = path.child("externalIPs").index(i);
        let invalid = net::valid_ip(&p, ip);
        if invalid.is_empty() {
            errs.extend(net::non_special_ip(ip, &p));
        } else {
            errs.extend(invalid);
        }
    }
    match service_type {
        "" => errs.push(FieldError::required(path.child("type"), "")),
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName" => {}
        other => errs.push(not_supported(
            &path.child("type"),
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    if service_type == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int_at(port, "nodePort").unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(
                    path.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    errs.extend(duplicate_ports(ports, &path.child("ports")));
    errs.extend(load_balancer_fields(object, spec, service_type));
    errs.extend(traffic_policies(spec, service_type, &path));
    errs
}

/// `validateServicePort`: names are DNS labels (required when there are several).
fn service_port<'a>(
    port: &'a Value,
    require_name: bool,
    names: &mut Vec<&'a str>,
    path: &Path,
) -> Errors {
    let mut errs = Vec::new();
    let name = str_at(port, "name");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else if !name.is_empty() {
        errs.extend(dns_label(name, &path.child("name")));
        if names.contains(&name) {
            errs.push(FieldError::duplicate(path.child("name"), name));
        } else {
            names.push(name);
        }
    }
    let number = int_at(port, "port").unwrap_or(0);
    errs.extend(
        port_num_errors(number)
            .into_iter()
            .map(|m| FieldError::invalid(path.child("port"), number, m)),
    );
    errs.extend(protocol(str_at(port, "protocol"), &path.child("protocol")));
    errs.extend(port_num_or_name(
        get(port, "targetPort"),
        &path.child("targetPort"),
    ));
    if let Some(app_protocol) = opt_str(port, "appProtocol") {
        errs.extend(qualified_name(app_protocol, &path.child("appProtocol")));
    }
    errs
}

fn session_affinity(spec: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let affinity = str_at(spec, "sessionAffinity");
    let config_path = path.child("sessionAffinityConfig");
    match affinity {
        "" => errs.push(FieldError::required(path.child("sessionAffinity"), "")),
        "ClientIP" => {
            let message = "when session affinity type is ClientIP";
            let client_ip = get(spec, "sessionAffinityConfig").and_then(|c| get(c, "clientIP"));
            match (get(spec, "sessionAffinityConfig"), client_ip) {
                (None, _) => errs.push(FieldError::required(&config_path, message)),
                (Some(_), None) => {
                    errs.push(FieldError::required(config_path.child("clientIP"), message));
                }
                (Some(_), Some(c)) => {
                    let timeout_path = config_path.child("clientIP").child("timeoutSeconds");
                    match int_at(c, "timeoutSeconds") {
                        None => errs.push(FieldError::required(timeout_path, message)),
                        Some(t) if t <= 0 || t > 86400 => errs.push(FieldError::invalid(
                            timeout_path,
                            t,
                            "must be greater than 0 and less than 86400",
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
        "None" => {
            if get(spec, "sessionAffinityConfig").is_some() {
                errs.push(FieldError::forbidden(
                    config_path,
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => errs.push(not_supported(
            &path.child("sessionAffinity"),
            other,
            &["ClientIP", "None"],
        )),
    }
    errs
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn cluster_ips_related(spec: &Value, path: &Path) -> Errors {
    if str_at(spec, "type") == "ExternalName" {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let ips_path = path.child("clusterIPs");
    let ips = cluster_ips(spec);
    let ips_value = || Value::from(ips.clone());
    let cluster_ip = str_at(spec, "clusterIP");
    if !cluster_ip.is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required(&ips_path, ""));
        } else if ips[0] != cluster_ip {
            errs.push(FieldError::invalid(
                &ips_path,
                ips_value(),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            &ips_path,
            ips_value(),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let families = strings(spec, "ipFamilies");
    for (i, family) in families.iter().enumerate() {
        let p = path.child("ipFamilies").index(i);
        if !matches!(*family, "IPv4" | "IPv6") {
            errs.push(not_supported(&p, *family, &["IPv4", "IPv6"]));
        }
        if families[..i].contains(family) {
            errs.push(FieldError::duplicate(p, *family));
        }
    }
    if let Some(policy) = opt_str(spec, "ipFamilyPolicy")
        && !matches!(
            policy,
            "SingleStack" | "PreferDualStack" | "RequireDualStack"
        )
    {
        errs.push(not_supported(
            &path.child("ipFamilyPolicy"),
            policy,
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        ));
    }
    let mut invalid_ips = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && *ip == "None" {
            if ips.len() > 1 {
                invalid_ips = true;
                errs.push(FieldError::invalid(
                    &ips_path,
                    ips_value(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let ip_errs = net::valid_ip(&ips_path.index(i), ip);
        invalid_ips |= !ip_errs.is_empty();
        errs.extend(ip_errs);
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            &ips_path,
            ips_value(),
            "may only hold up to 2 values",
        ));
    }
    if invalid_ips {
        return errs;
    }
    if ips.len() > 1 && net::is_ipv6(ips[0]) == net::is_ipv6(ips[1]) {
        errs.push(FieldError::invalid(
            &ips_path,
            ips_value(),
            "may specify no more than one IP for each IP family",
        ));
    }
    if !is_headless(spec) {
        for (i, (ip, family)) in ips.iter().zip(&families).enumerate() {
            if *family == "IPv4" && net::is_ipv6(ip) {
                errs.push(FieldError::invalid(
                    ips_path.index(i),
                    *ip,
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if *family == "IPv6" && !net::is_ipv6(ip) {
                errs.push(FieldError::invalid(
                    ips_path.index(i),
                    *ip,
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

/// Node ports and ports are unique per protocol.
fn duplicate_ports(ports: &[Value], path: &Path) -> Errors {
    let mut errs = Vec::new();
    let mut node_ports: Vec<(&str, i64)> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let node_port = int_at(port, "nodePort").unwrap_or(0);
        if node_port == 0 {
            continue;
        }
        let key = (str_at(port, "protocol"), node_port);
        if node_ports.contains(&key) {
            errs.push(FieldError::duplicate(
                path.index(i).child("nodePort"),
                node_port,
            ));
        }
        node_ports.push(key);
    }
    let mut seen: Vec<(&str, i64)> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let key = (str_at(port, "protocol"), int_at(port, "port").unwrap_or(0));
        if seen.contains(&key) {
            errs.push(FieldError::duplicate(
                path.index(i),
                json!({"port": key.1, "protocol": key.0}),
            ));
        }
        seen.push(key);
    }
    errs
}

fn load_balancer_fields(object: &Value, spec: &Value, service_type: &str) -> Errors {
    let mut errs = Vec::new();
    let is_lb = service_type == "LoadBalancer";
    let ranges = strings(spec, "loadBalancerSourceRanges");
    let annotation = "service.beta.kubernetes.io/load-balancer-source-ranges";
    if !ranges.is_empty() {
        // Upstream spells this path with a capital L.
        let p = Path::new("spec").child("LoadBalancerSourceRanges");
        if !is_lb {
            errs.push(FieldError::forbidden(
                &p,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, range) in ranges.iter().enumerate() {
            errs.extend(net::valid_cidr(&p.index(i), range.trim()));
        }
    } else if let Some(value) = meta::of(object)
        .get("annotations")
        .and_then(|a| a.get(annotation))
        .and_then(Value::as_str)
    {
        let p = Path::new("metadata").child("annotations").key(annotation);
        if !is_lb {
            errs.push(FieldError::forbidden(
                &p,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        let value = value.trim();
        if !value.is_empty() {
            for cidr in value.split(',') {
                errs.extend(net::valid_cidr(&p, cidr.trim()));
            }
        }
    }
    let allocate = get(spec, "allocateLoadBalancerNodePorts");
    if allocate.is_some() && !is_lb {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if is_lb && allocate.is_none() {
        errs.push(FieldError::required("allocateLoadBalancerNodePorts", ""));
    }
    if let Some(class) = opt_str(spec, "loadBalancerClass") {
        if is_lb {
            errs.extend(qualified_name(
                class,
                &Path::new("spec").child("loadBalancerClass"),
            ));
        } else {
            errs.push(FieldError::forbidden(
                "spec.loadBalancerClass",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
    }
    errs
}

/// `validateServiceExternalTrafficPolicy`, `validateServiceInternalTrafficFieldsValue` and
/// `validateServiceTrafficDistribution`.
fn traffic_policies(spec: &Value, service_type: &str, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let externally_accessible = matches!(service_type, "LoadBalancer" | "NodePort")
        || (service_type == "ClusterIP" && !list(spec, "externalIPs").is_empty());
    let external = str_at(spec, "externalTrafficPolicy");
    let external_path = path.child("externalTrafficPolicy");
    if !externally_accessible {
        if !external.is_empty() {
            errs.push(FieldError::invalid(
                external_path,
                external,
                "may only be set for externally-accessible services",
            ));
        }
    } else if external.is_empty() {
        errs.push(FieldError::required(external_path, ""));
    } else if !matches!(external, "Cluster" | "Local") {
        errs.push(not_supported(
            &external_path,
            external,
            &["Cluster", "Local"],
        ));
    }
    let health_port = int_at(spec, "healthCheckNodePort").unwrap_or(0);
    let needs_health_check = service_type == "LoadBalancer" && external == "Local";
    if !needs_health_check && health_port != 0 {
        errs.push(FieldError::invalid(
            path.child("healthCheckNodePort"),
            health_port,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    } else if needs_health_check && health_port != 0 {
        errs.extend(
            port_num_errors(health_port)
                .into_iter()
                .map(|m| FieldError::invalid(path.child("healthCheckNodePort"), health_port, m)),
        );
    }
    let internal_path = path.child("internalTrafficPolicy");
    match opt_str(spec, "internalTrafficPolicy") {
        None if matches!(service_type, "NodePort" | "LoadBalancer" | "ClusterIP") => {
            errs.push(FieldError::required(internal_path, ""));
        }
        Some(policy) if !matches!(policy, "Cluster" | "Local") => {
            errs.push(not_supported(&internal_path, policy, &["Cluster", "Local"]));
        }
        _ => {}
    }
    if let Some(distribution) = opt_str(spec, "trafficDistribution")
        && distribution != "PreferClose"
    {
        errs.push(not_supported(
            &path.child("trafficDistribution"),
            distribution,
            &["PreferClose"],
        ));
    }
    errs
}

pub(crate) fn create(object: &Value) -> Errors {
    service(&normalized_service(object))
}

/// `ValidateServiceUpdate`: cluster IPs and IP families keep their primary value (unless the service
/// changes to or from ExternalName or stays headless), a load balancer keeps its class and health check port.
pub(crate) fn update(new: &Value, old: &Value) -> Errors {
    let new = normalized_service(&with_allocated_values(new, old));
    let old = normalized_service(old);
    let mut errs = meta::update(&new, &old);
    let (new_spec, old_spec) = (spec_of(&new), spec_of(&old));
    let external_name =
        str_at(new_spec, "type") == "ExternalName" || str_at(old_spec, "type") == "ExternalName";
    if !external_name {
        errs.extend(cluster_ips_update(new_spec, old_spec));
        errs.extend(ip_families_update(new_spec, old_spec));
    }
    let both_lb =
        str_at(new_spec, "type") == "LoadBalancer" && str_at(old_spec, "type") == "LoadBalancer";
    if both_lb && opt_str(new_spec, "loadBalancerClass") != opt_str(old_spec, "loadBalancerClass") {
        errs.push(FieldError::invalid(
            "spec.loadBalancerClass",
            get(new_spec, "loadBalancerClass")
                .cloned()
                .unwrap_or(Value::Null),
            "may not change once set",
        ));
    }
    let needs_health_check = |s: &Value| {
        str_at(s, "type") == "LoadBalancer" && str_at(s, "externalTrafficPolicy") == "Local"
    };
    if needs_health_check(new_spec)
        && needs_health_check(old_spec)
        && int_at(new_spec, "healthCheckNodePort") != int_at(old_spec, "healthCheckNodePort")
    {
        errs.push(FieldError::forbidden(
            "spec.healthCheckNodePort",
            "field is immutable",
        ));
    }
    errs.extend(service(&new));
    errs
}

/// `validateUpgradeDowngradeClusterIPs`.
fn cluster_ips_update(new: &Value, old: &Value) -> Errors {
    if is_headless(new) && is_headless(old) {
        return Vec::new();
    }
    let (now, before) = (cluster_ips(new), cluster_ips(old));
    let path = Path::new("spec").child("clusterIPs");
    let value = || Value::from(now.clone());
    let mut errs = Vec::new();
    if now.len() == before.len() {
        for (i, ip) in before.iter().enumerate() {
            if now[i] != *ip {
                errs.push(FieldError::invalid(
                    path.index(i),
                    value(),
                    "may not change once set",
                ));
            }
        }
    } else if before.len() > now.len() {
        if now.is_empty() {
            errs.push(FieldError::invalid(
                path.index(0),
                value(),
                "primary clusterIP can not be unset",
            ));
        }
        if !now.is_empty() && now[0] != before[0] {
            errs.push(FieldError::invalid(
                path.index(0),
                value(),
                "may not change once set",
            ));
        }
        if now.len() == 1 && opt_str(new, "ipFamilyPolicy") != Some("SingleStack") {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                get(new, "ipFamilyPolicy").cloned().unwrap_or(Value::Null),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !before.is_empty() && now[0] != before[0] {
        errs.push(FieldError::invalid(
            path.index(0),
            value(),
            "may not change once set",
        ));
    }
    errs
}

/// `validateUpgradeDowngradeIPFamilies`.
fn ip_families_update(new: &Value, old: &Value) -> Errors {
    if is_headless(new) || is_headless(old) {
        return Vec::new();
    }
    let (now, before) = (strings(new, "ipFamilies"), strings(old, "ipFamilies"));
    let path = Path::new("spec").child("ipFamilies").index(0);
    let mut errs = Vec::new();
    if now.len() == before.len() {
        for (i, family) in before.iter().enumerate() {
            if now[i] != *family {
                errs.push(FieldError::invalid(
                    &path,
                    Value::from(now.clone()),
                    "may not change once set",
                ));
            }
        }
    } else if before.len() > now.len() {
        if cluster_ips(new).is_empty() {
            errs.push(FieldError::invalid(
                &path,
                Value::from(now.clone()),
                "primary ipFamily can not be unset",
            ));
        }
        if !now.is_empty() && now[0] != before[0] {
            errs.push(FieldError::invalid(
                &path,
                Value::from(cluster_ips(new)),
                "may not change once set",
            ));
        }
        if now.len() == 1 && opt_str(new, "ipFamilyPolicy") != Some("SingleStack") {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                get(new, "ipFamilyPolicy").cloned().unwrap_or(Value::Null),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !before.is_empty() && !now.is_empty() && now[0] != before[0] {
        errs.push(FieldError::invalid(
            &path,
            Value::from(cluster_ips(new)),
            "may not change once set",
        ));
    }
    errs
}

// ---- Endpoints -----------------------------------------------------------------------------------------------

/// `ValidateEndpoints`.
pub(crate) fn endpoints(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    let path = Path::new("subsets");
    for (i, subset) in list(object, "subsets").iter().enumerate() {
        let p = path.index(i);
        if list(subset, "addresses").is_empty() && list(subset, "notReadyAddresses").is_empty() {
            errs.push(FieldError::required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for key in ["addresses", "notReadyAddresses"] {
            for (j, address) in list(subset, key).iter().enumerate() {
                errs.extend(endpoint_address(address, &p.child(key).index(j)));
            }
        }
        let ports = list(subset, "ports");
        for (j, port) in ports.iter().enumerate() {
            errs.extend(endpoint_port(
                port,
                ports.len() > 1,
                &p.child("ports").index(j),
            ));
        }
    }
    errs
}

fn endpoint_address(address: &Value, path: &Path) -> Errors {
    let ip = str_at(address, "ip");
    let mut errs = net::valid_ip(&path.child("ip"), ip);
    let hostname = str_at(address, "hostname");
    if !hostname.is_empty() {
        errs.extend(dns_label(hostname, &path.child("hostname")));
    }
    if let Some(node) = opt_str(address, "nodeName") {
        errs.extend(dns_subdomain(node, &path.child("nodeName")));
    }
    errs.extend(net::non_special_ip(ip, &path.child("ip")));
    errs
}

fn endpoint_port(port: &Value, require_name: bool, path: &Path) -> Errors {
    let mut errs = Vec::new();
    let name = str_at(port, "name");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else if !name.is_empty() {
        errs.extend(dns_label(name, &path.child("name")));
    }
    let number = int_at(port, "port").unwrap_or(0);
    errs.extend(
        port_num_errors(number)
            .into_iter()
            .map(|m| FieldError::invalid(path.child("port"), number, m)),
    );
    errs.extend(protocol(str_at(port, "protocol"), &path.child("protocol")));
    if let Some(app_protocol) = opt_str(port, "appProtocol") {
        errs.extend(qualified_name(app_protocol, &path.child("appProtocol")));
    }
    errs
}

pub(crate) fn endpoints_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(endpoints(new));
    errs
}

// ---- EndpointSlices ------------------------------------------------------------------------------------------

/// `ValidateEndpointSlice`.
pub(crate) fn endpoint_slice(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    let address_type = str_at(object, "addressType");
    match address_type {
        "" => errs.push(FieldError::required("addressType", "")),
        "IPv4" | "IPv6" | "FQDN" => {}
        other => errs.push(not_supported(
            &Path::new("addressType"),
            other,
            &["FQDN", "IPv4", "IPv6"],
        )),
    }
    let endpoints_path = Path::new("endpoints");
    let items = list(object, "endpoints");
    if items.len() > 1000 {
        errs.push(FieldError::too_many(&endpoints_path, items.len(), 1000));
    }
    for (i, endpoint) in items.iter().enumerate() {
        let p = endpoints_path.index(i);
        let addresses_path = p.child("addresses");
        let addresses = strings(endpoint, "addresses");
        if addresses.is_empty() {
            errs.push(FieldError::required(
                &addresses_path,
                "must contain at least 1 address",
            ));
        } else if addresses.len() > 100 {
            errs.push(FieldError::too_many(&addresses_path, addresses.len(), 100));
        }
        for (j, address) in addresses.iter().enumerate() {
            let ap = addresses_path.index(j);
            match address_type {
                "IPv4" | "IPv6" => {
                    let invalid = if address_type == "IPv4" {
                        net::valid_ipv4(&ap, address)
                    } else {
                        net::valid_ipv6(&ap, address)
                    };
                    if invalid.is_empty() {
                        errs.extend(net::non_special_ip(address, &ap));
                    } else {
                        errs.extend(invalid);
                    }
                }
                "FQDN" => errs.extend(fqdn(address, &ap)),
                _ => {}
            }
        }
        if let Some(node) = opt_str(endpoint, "nodeName") {
            errs.extend(dns_subdomain(node, &p.child("nodeName")));
        }
        if let Some(hostname) = opt_str(endpoint, "hostname") {
            errs.extend(dns_label(hostname, &p.child("hostname")));
        }
    }
    let ports_path = Path::new("ports");
    let ports = list(object, "ports");
    if ports.len() > 20000 {
        errs.push(FieldError::too_many(&ports_path, ports.len(), 20000));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let p = ports_path.index(i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            errs.extend(dns_label(name, &p.child("name")));
        }
        if names.contains(&name) {
            errs.push(FieldError::duplicate(p.child("name"), name));
        } else {
            names.push(name);
        }
        match opt_str(port, "protocol") {
            None => errs.push(FieldError::required(p.child("protocol"), "")),
            Some(proto) if !matches!(proto, "TCP" | "UDP" | "SCTP") => {
                errs.push(not_supported(
                    &p.child("protocol"),
                    proto,
                    &["SCTP", "TCP", "UDP"],
                ));
            }
            Some(_) => {}
        }
        if let Some(app_protocol) = opt_str(port, "appProtocol") {
            errs.extend(qualified_name(app_protocol, &p.child("appProtocol")));
        }
    }
    errs
}

/// `IsFullyQualifiedDomainName`.
fn fqdn(name: &str, path: &Path) -> Errors {
    if name.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let msgs = crate::validation::is_dns1123_subdomain(name);
    if !msgs.is_empty() {
        return vec![FieldError::invalid(path, name, msgs.join(","))];
    }
    if name.split('.').count() < 2 {
        return vec![FieldError::invalid(
            path,
            name,
            "should be a domain with at least two segments separated by dots",
        )];
    }
    Vec::new()
}

pub(crate) fn endpoint_slice_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(endpoint_slice(new));
    errs.extend(super::common::immutable(
        new.get("addressType"),
        old.get("addressType"),
        &Path::new("addressType"),
    ));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults;

    fn msgs(errs: Errors) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn svc(spec: Value) -> Value {
        let mut s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec});
        defaults::apply("", "Service", &mut s);
        s
    }

    #[test]
    fn kubectl_expose_is_valid() {
        let s =
            svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}));
        assert_eq!(msgs(create(&s)), Vec::<String>::new());
        let headless = svc(json!({"clusterIP": "None", "selector": {"app": "db"}}));
        assert!(create(&headless).is_empty());
        let external = svc(json!({"type": "ExternalName", "externalName": "db.example.com."}));
        assert!(create(&external).is_empty());
        let lb = svc(
            json!({"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}], "externalTrafficPolicy": "Local"}),
        );
        assert_eq!(msgs(create(&lb)), Vec::<String>::new());
    }

    #[test]
    fn ports_and_types() {
        assert_eq!(
            msgs(create(&svc(json!({"selector": {"app": "web"}})))),
            ["spec.ports: Required value"]
        );
        let s = svc(json!({"type": "Balanced", "ports": [
            {"port": 80, "protocol": "HTTP", "targetPort": 0},
            {"name": "web", "port": 0},
            {"name": "web", "port": 80, "nodePort": 30001}
        ]}));
        assert_eq!(
            msgs(create(&s)),
            [
                "spec.ports[0].name: Required value",
                "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[1].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[2].name: Duplicate value: \"web\"",
                "spec.type: Unsupported value: \"Balanced\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ]
        );
        let s = svc(json!({"ports": [{"port": 80, "nodePort": 30001}, {"name": "b", "port": 80}]}));
        assert_eq!(
            msgs(create(&s)),
            [
                "spec.ports[0].name: Required value",
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
                "spec.ports[1]: Duplicate value: {\"port\":80,\"protocol\":\"TCP\"}",
            ]
        );
    }

    #[test]
    fn cluster_ips_and_external_names() {
        let s = svc(json!({"clusterIP": "10.0.0.300", "ports": [{"port": 80}]}));
        assert_eq!(
            msgs(create(&s)),
            [
                "spec.clusterIPs[0]: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
            ]
        );
        let s = svc(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}));
        assert_eq!(
            msgs(create(&s)),
            [
                "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"
            ]
        );
        let s = svc(json!({"type": "ExternalName", "externalName": "Bad_Name"}));
        let errs = msgs(create(&s));
        assert!(errs[0].starts_with(
            "spec.externalName: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
        let s = svc(json!({"type": "ExternalName"}));
        assert_eq!(msgs(create(&s)), ["spec.externalName: Required value"]);
        let s = svc(json!({"sessionAffinity": "Sticky", "ports": [{"port": 80}]}));
        assert_eq!(
            msgs(create(&s)),
            [
                "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\""
            ]
        );
    }

    #[test]
    fn cluster_ip_is_fixed_on_update() {
        let old = svc(json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}));
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.96.0.11");
        assert_eq!(
            msgs(update(&new, &old)),
            [
                "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set",
            ]
        );
        // A PUT that leaves the allocated IP out keeps it.
        let mut omitted = old.clone();
        omitted["spec"]
            .as_object_mut()
            .map(|s| s.remove("clusterIP"));
        assert!(update(&omitted, &old).is_empty());
        // Changing to ExternalName drops the IP.
        let external = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
        assert!(update(&external, &old).is_empty());
    }

    #[test]
    fn endpoints_and_slices() {
        let ep = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80, "protocol": "TCP"}]},
            {"addresses": [{"ip": "127.0.0.1"}, {"ip": "nope"}], "ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]},
            {}
        ]});
        assert_eq!(
            msgs(endpoints(&ep)),
            [
                "subsets[1].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
                "subsets[1].addresses[1].ip: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "subsets[1].addresses[1].ip: Invalid value: \"nope\": must be a valid IP address",
                "subsets[1].ports[0].name: Required value",
                "subsets[1].ports[1].name: Required value",
                "subsets[2]: Required value: must specify `addresses` or `notReadyAddresses`",
            ]
        );
        let mut slice = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.2.3"]}, {"addresses": []}, {"addresses": ["fd00::1"]}],
            "ports": [{"name": "http", "port": 80}]});
        defaults::apply("discovery.k8s.io", "EndpointSlice", &mut slice);
        assert_eq!(
            msgs(endpoint_slice(&slice)),
            [
                "endpoints[1].addresses: Required value: must contain at least 1 address",
                "endpoints[2].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address",
            ]
        );
    }
}

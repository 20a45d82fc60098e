//! Defaulting: fills in the fields a client left out with the values Kubernetes 1.33 documents
//! (`pkg/apis/*/v1/defaults.go` and the types' `+default` markers), the way the API server does when it
//! decodes a request body, before the registry strategy and validation run. What is set is never overwritten
//! (the one upstream exception: a Namespace's `kubernetes.io/metadata.name` label always equals its name).
//!
//! Work that upstream does in the registry strategies rather than in defaulting is not done here: a
//! Namespace's `spec.finalizers: ["kubernetes"]`, a Job's generated selector and labels, Service IP and
//! port allocation, `status: {}` placeholders.

use serde_json::{Map, Value, json};

type Object = Map<String, Value>;

/// Defaults `object`, an object of the given API group (`""` for core) and kind, in place.
pub fn apply(group: &str, kind: &str, object: &mut Value) {
    let Some(obj) = object.as_object_mut() else {
        return;
    };
    match (group, kind) {
        ("", "Pod") => pod(obj),
        ("", "PodTemplate") => {
            if let Some(template) = child(obj, "template") {
                pod_template(template);
            }
        }
        ("", "ReplicationController") => replication_controller(obj),
        ("", "Service") => service(obj),
        ("", "Endpoints") => endpoints(obj),
        ("", "Secret") => set_str(obj, "type", "Opaque"),
        ("", "Namespace") => namespace(obj),
        ("", "Node") => node(obj),
        ("", "PersistentVolume") => persistent_volume(obj),
        ("", "PersistentVolumeClaim") => persistent_volume_claim(obj),
        ("", "LimitRange") => limit_range(obj),
        ("apps", "Deployment") => deployment(obj),
        ("apps", "ReplicaSet") => replica_set(obj),
        ("apps", "StatefulSet") => stateful_set(obj),
        ("apps", "DaemonSet") => daemon_set(obj),
        ("batch", "Job") => job(obj),
        ("batch", "CronJob") => cron_job(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => horizontal_pod_autoscaler(obj),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(obj),
        ("networking.k8s.io", "IngressClass") => ingress_class(obj),
        ("discovery.k8s.io", "EndpointSlice") => endpoint_slice(obj),
        ("storage.k8s.io", "StorageClass") => {
            set_absent(obj, "reclaimPolicy", json!("Delete"));
            set_absent(obj, "volumeBindingMode", json!("Immediate"));
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => role_binding(obj),
        ("scheduling.k8s.io", "PriorityClass") => {
            set_absent(obj, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
        _ => {}
    }
}

// ---- helpers -------------------------------------------------------------------------------------------

/// Whether `key` is absent or `null` (an unset pointer field).
fn absent(obj: &Object, key: &str) -> bool {
    obj.get(key).is_none_or(Value::is_null)
}

/// Sets a pointer field (unset: absent or `null`).
fn set_absent(obj: &mut Object, key: &str, value: Value) {
    if absent(obj, key) {
        obj.insert(key.to_owned(), value);
    }
}

/// Sets a non-pointer string field (unset: absent, `null` or `""`).
fn set_str(obj: &mut Object, key: &str, value: &str) {
    if absent(obj, key) || obj.get(key).and_then(Value::as_str) == Some("") {
        obj.insert(key.to_owned(), json!(value));
    }
}

/// Sets a non-pointer integer field (unset: absent, `null` or `0`).
fn set_int(obj: &mut Object, key: &str, value: i64) {
    if absent(obj, key) || obj.get(key).and_then(Value::as_i64) == Some(0) {
        obj.insert(key.to_owned(), json!(value));
    }
}

/// The object at `key`, created empty when absent or `null`; `None` when it holds something else.
fn child<'a>(obj: &'a mut Object, key: &str) -> Option<&'a mut Object> {
    if absent(obj, key) {
        obj.insert(key.to_owned(), Value::Object(Object::new()));
    }
    obj.get_mut(key).and_then(Value::as_object_mut)
}

/// The object at `key` when one is there (an optional struct: left out stays out).
fn present<'a>(obj: &'a mut Object, key: &str) -> Option<&'a mut Object> {
    obj.get_mut(key).and_then(Value::as_object_mut)
}

/// The objects in the array at `key`.
fn each<'a>(obj: &'a mut Object, key: &str) -> impl Iterator<Item = &'a mut Object> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Whether `key` holds a non-empty array or object (Go's `len(x) != 0`).
fn non_empty(obj: &Object, key: &str) -> bool {
    match obj.get(key) {
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(map)) => !map.is_empty(),
        _ => false,
    }
}

// ---- core/v1: pods and pod templates --------------------------------------------------------------------

/// A `Pod`: its spec's defaults plus those upstream applies only to Pods, not to pod templates.
fn pod(obj: &mut Object) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    pod_spec(spec);
    for key in ["containers", "initContainers"] {
        for container in each(spec, key) {
            requests_from_limits(container);
        }
    }
    set_absent(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            for container in each(spec, key) {
                for port in each(container, "ports") {
                    if absent(port, "hostPort")
                        || port.get("hostPort").and_then(Value::as_i64) == Some(0)
                    {
                        let container_port = port.get("containerPort").cloned().unwrap_or(json!(0));
                        port.insert("hostPort".to_owned(), container_port);
                    }
                }
            }
        }
    }
}

/// Limits without requests: each limited resource without a request is requested at its limit.
fn requests_from_limits(container: &mut Object) {
    let Some(resources) = present(container, "resources") else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let Some(requests) = child(resources, "requests") else {
        return;
    };
    for (name, quantity) in limits {
        requests.entry(name).or_insert(quantity);
    }
}

/// A `PodTemplateSpec` (its `spec` is not optional, so it is created when left out).
fn pod_template(template: &mut Object) {
    if let Some(spec) = child(template, "spec") {
        pod_spec(spec);
    }
}

/// The `template` of a workload whose `spec.template` is not optional.
fn workload_template(spec: &mut Object) {
    if let Some(template) = child(spec, "template") {
        pod_template(template);
    }
}

fn pod_spec(spec: &mut Object) {
    set_str(spec, "dnsPolicy", "ClusterFirst");
    set_str(spec, "restartPolicy", "Always");
    set_absent(spec, "securityContext", json!({}));
    set_absent(spec, "terminationGracePeriodSeconds", json!(30));
    set_str(spec, "schedulerName", "default-scheduler");
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in each(spec, key) {
            container(c);
        }
    }
    for v in each(spec, "volumes") {
        volume(v);
    }
}

fn container(c: &mut Object) {
    if absent(c, "imagePullPolicy") || c.get("imagePullPolicy").and_then(Value::as_str) == Some("")
    {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_tag(image).as_deref() == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("imagePullPolicy".to_owned(), json!(policy));
    }
    set_str(c, "terminationMessagePath", "/dev/termination-log");
    set_str(c, "terminationMessagePolicy", "File");
    // `resources` is a struct, not a pointer: the API server always writes it, `{}` when empty.
    set_absent(c, "resources", json!({}));
    for port in each(c, "ports") {
        set_str(port, "protocol", "TCP");
    }
    for env in each(c, "env") {
        if let Some(field_ref) =
            present(env, "valueFrom").and_then(|from| present(from, "fieldRef"))
        {
            set_str(field_ref, "apiVersion", "v1");
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = present(c, key) {
            probe(p);
        }
    }
    if let Some(lifecycle) = present(c, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(handler) = present(lifecycle, key) {
                probe_handler(handler);
            }
        }
    }
}

fn probe(p: &mut Object) {
    set_int(p, "timeoutSeconds", 1);
    set_int(p, "periodSeconds", 10);
    set_int(p, "successThreshold", 1);
    set_int(p, "failureThreshold", 3);
    probe_handler(p);
}

/// The actions a probe or lifecycle hook may hold.
fn probe_handler(handler: &mut Object) {
    if let Some(http_get) = present(handler, "httpGet") {
        set_str(http_get, "path", "/");
        set_str(http_get, "scheme", "HTTP");
    }
    if let Some(grpc) = present(handler, "grpc") {
        set_absent(grpc, "service", json!(""));
    }
}

/// The tag `parsers.ParseImageName` finds: the reference's tag, `latest` when it has neither tag nor
/// digest, `None` when there is no tag but a digest or the reference does not parse.
fn image_tag(image: &str) -> Option<String> {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace()) {
        return None;
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    if digest.is_some_and(|d| !d.contains(':') || d.starts_with(':') || d.ends_with(':')) {
        return None;
    }
    // A tag follows the last ':' after the last '/' (a ':' before that is a registry port).
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if repository.is_empty() || !valid_repository(repository) {
        return None;
    }
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        return valid.then(|| tag.to_owned());
    }
    digest.is_none().then(|| "latest".to_owned())
}

/// Docker's repository grammar: an optional registry host (it has a '.' or ':' or is `localhost`), then
/// lower-case path components.
fn valid_repository(repository: &str) -> bool {
    let mut components: Vec<&str> = repository.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        if first.contains(['.', ':']) || first == "localhost" {
            if !first
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
            {
                return false;
            }
            components.remove(0);
        }
    }
    components.iter().all(|component| {
        !component.is_empty()
            && component.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && component.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && component.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    })
}

/// Every field of `VolumeSource` (a volume with none of them becomes an `emptyDir`).
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn volume(v: &mut Object) {
    if VOLUME_SOURCES.iter().all(|key| absent(v, key)) {
        v.insert("emptyDir".to_owned(), json!({}));
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(source) = present(v, key) {
            set_absent(source, "defaultMode", json!(420));
        }
    }
    if let Some(downward) = present(v, "downwardAPI") {
        downward_api_items(downward);
    }
    if let Some(projected) = present(v, "projected") {
        for source in each(projected, "sources") {
            if let Some(downward) = present(source, "downwardAPI") {
                downward_api_items(downward);
            }
            if let Some(token) = present(source, "serviceAccountToken") {
                set_absent(token, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(claim_spec) = present(v, "ephemeral")
        .and_then(|e| present(e, "volumeClaimTemplate"))
        .and_then(|t| child(t, "spec"))
    {
        set_absent(claim_spec, "volumeMode", json!("Filesystem"));
    }
    legacy_volume_sources(v);
}

fn downward_api_items(downward: &mut Object) {
    for item in each(downward, "items") {
        if let Some(field_ref) = present(item, "fieldRef") {
            set_str(field_ref, "apiVersion", "v1");
        }
    }
}

/// Defaults of volume sources shared by pod volumes and PersistentVolumes.
fn legacy_volume_sources(v: &mut Object) {
    if let Some(host_path) = present(v, "hostPath") {
        set_absent(host_path, "type", json!(""));
    }
    if let Some(iscsi) = present(v, "iscsi") {
        set_str(iscsi, "iscsiInterface", "default");
    }
    if let Some(rbd) = present(v, "rbd") {
        set_str(rbd, "pool", "rbd");
        set_str(rbd, "user", "admin");
        set_str(rbd, "keyring", "/etc/ceph/keyring");
    }
    if let Some(azure) = present(v, "azureDisk") {
        set_absent(azure, "cachingMode", json!("ReadWrite"));
        set_absent(azure, "fsType", json!("ext4"));
        set_absent(azure, "readOnly", json!(false));
        set_absent(azure, "kind", json!("Shared"));
    }
    if let Some(scale_io) = present(v, "scaleIO") {
        set_str(scale_io, "storageMode", "ThinProvisioned");
        set_str(scale_io, "fsType", "xfs");
    }
}

// ---- core/v1: other kinds -------------------------------------------------------------------------------

fn replication_controller(obj: &mut Object) {
    let template_labels = obj
        .get("spec")
        .and_then(|spec| spec.get("template"))
        .and_then(|template| template.get("metadata"))
        .and_then(|metadata| metadata.get("labels"))
        .filter(|labels| labels.is_object())
        .cloned();
    if let Some(labels) = template_labels {
        if let Some(metadata) = child(obj, "metadata")
            && !non_empty(metadata, "labels")
        {
            metadata.insert("labels".to_owned(), labels.clone());
        }
        if let Some(spec) = child(obj, "spec")
            && !non_empty(spec, "selector")
        {
            spec.insert("selector".to_owned(), labels);
        }
    }
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_absent(spec, "replicas", json!(1));
    // An RC's template is optional.
    if let Some(template) = present(spec, "template") {
        pod_template(template);
    }
}

fn service(obj: &mut Object) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_str(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|config| config.get("clientIP"))
                .and_then(|client_ip| client_ip.get("timeoutSeconds"))
                .is_some_and(|timeout| !timeout.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".to_owned(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    set_str(spec, "type", "ClusterIP");
    for port in each(spec, "ports") {
        set_str(port, "protocol", "TCP");
        let target_unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if target_unset {
            let target = port.get("port").cloned().unwrap_or(json!(0));
            port.insert("targetPort".to_owned(), target);
        }
    }
    let service_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let externally_accessible = service_type == "LoadBalancer"
        || service_type == "NodePort"
        || (service_type == "ClusterIP" && non_empty(spec, "externalIPs"));
    if externally_accessible {
        set_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(
        service_type.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer"
    ) {
        set_absent(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if service_type == "LoadBalancer" {
        set_absent(spec, "allocateLoadBalancerNodePorts", json!(true));
        if let Some(load_balancer) = present(obj, "status").and_then(|s| present(s, "loadBalancer"))
        {
            for ingress in each(load_balancer, "ingress") {
                let has_ip = ingress
                    .get("ip")
                    .and_then(Value::as_str)
                    .is_some_and(|ip| !ip.is_empty());
                if has_ip {
                    set_absent(ingress, "ipMode", json!("VIP"));
                }
            }
        }
    }
}

fn endpoints(obj: &mut Object) {
    for subset in each(obj, "subsets") {
        for port in each(subset, "ports") {
            set_str(port, "protocol", "TCP");
        }
    }
}

fn namespace(obj: &mut Object) {
    let name = obj
        .get("metadata")
        .and_then(|metadata| metadata.get("name"))
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    if let Some(name) = name
        && let Some(labels) = child(obj, "metadata").and_then(|metadata| child(metadata, "labels"))
    {
        labels.insert("kubernetes.io/metadata.name".to_owned(), json!(name));
    }
    if let Some(status) = child(obj, "status") {
        set_str(status, "phase", "Active");
    }
}

fn node(obj: &mut Object) {
    if let Some(status) = present(obj, "status")
        && absent(status, "allocatable")
        && let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned()
    {
        status.insert("allocatable".to_owned(), capacity);
    }
}

fn persistent_volume(obj: &mut Object) {
    if let Some(status) = child(obj, "status") {
        set_str(status, "phase", "Pending");
    }
    if let Some(spec) = child(obj, "spec") {
        set_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        set_absent(spec, "volumeMode", json!("Filesystem"));
        legacy_volume_sources(spec);
    }
}

fn persistent_volume_claim(obj: &mut Object) {
    if let Some(status) = child(obj, "status") {
        set_str(status, "phase", "Pending");
    }
    if let Some(spec) = child(obj, "spec") {
        set_absent(spec, "volumeMode", json!("Filesystem"));
    }
}

fn limit_range(obj: &mut Object) {
    let Some(spec) = present(obj, "spec") else {
        return;
    };
    for item in each(spec, "limits") {
        if item.get("type").and_then(Value::as_str) != Some("Container") {
            continue;
        }
        let resources = |item: &Object, key: &str| {
            item.get(key)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let mut default = resources(item, "default");
        for (name, quantity) in resources(item, "max") {
            default.entry(name).or_insert(quantity);
        }
        let mut default_request = resources(item, "defaultRequest");
        for (name, quantity) in default.iter().chain(&resources(item, "min")) {
            default_request
                .entry(name.clone())
                .or_insert_with(|| quantity.clone());
        }
        // Empty maps are omitted when the object is written, so only non-empty ones appear.
        if !default.is_empty() {
            item.insert("default".to_owned(), Value::Object(default));
        }
        if !default_request.is_empty() {
            item.insert("defaultRequest".to_owned(), Value::Object(default_request));
        }
    }
}

// ---- apps/v1 --------------------------------------------------------------------------------------------

fn deployment(obj: &mut Object) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_absent(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        set_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = child(strategy, "rollingUpdate")
        {
            set_absent(rolling, "maxUnavailable", json!("25%"));
            set_absent(rolling, "maxSurge", json!("25%"));
        }
    }
    set_absent(spec, "revisionHistoryLimit", json!(10));
    set_absent(spec, "progressDeadlineSeconds", json!(600));
    workload_template(spec);
}

fn replica_set(obj: &mut Object) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_absent(spec, "replicas", json!(1));
    workload_template(spec);
}

fn stateful_set(obj: &mut Object) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = child(spec, "updateStrategy") {
        if absent(strategy, "type") || strategy.get("type").and_then(Value::as_str) == Some("") {
            strategy.insert("type".to_owned(), json!("RollingUpdate"));
            set_absent(strategy, "rollingUpdate", json!({}));
        }
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = present(strategy, "rollingUpdate")
        {
            set_absent(rolling, "partition", json!(0));
        }
    }
    if let Some(policy) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        set_str(policy, "whenDeleted", "Retain");
        set_str(policy, "whenScaled", "Retain");
    }
    set_absent(spec, "replicas", json!(1));
    set_absent(spec, "revisionHistoryLimit", json!(10));
    for claim in each(spec, "volumeClaimTemplates") {
        persistent_volume_claim(claim);
    }
    workload_template(spec);
}

fn daemon_set(obj: &mut Object) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if let Some(strategy) = child(spec, "updateStrategy") {
        set_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = child(strategy, "rollingUpdate")
        {
            set_absent(rolling, "maxUnavailable", json!(1));
            set_absent(rolling, "maxSurge", json!(0));
        }
    }
    set_absent(spec, "revisionHistoryLimit", json!(10));
    workload_template(spec);
}

// ---- batch/v1 -------------------------------------------------------------------------------------------

fn job(obj: &mut Object) {
    let template_labels = obj
        .get("spec")
        .and_then(|spec| spec.get("template"))
        .and_then(|template| template.get("metadata"))
        .and_then(|metadata| metadata.get("labels"))
        .filter(|labels| labels.is_object())
        .cloned();
    if let Some(labels) = template_labels
        && let Some(metadata) = child(obj, "metadata")
        && !non_empty(metadata, "labels")
    {
        metadata.insert("labels".to_owned(), labels);
    }
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if absent(spec, "completions") && absent(spec, "parallelism") {
        spec.insert("completions".to_owned(), json!(1));
    }
    set_absent(spec, "parallelism", json!(1));
    if absent(spec, "backoffLimit") {
        let limit = if absent(spec, "backoffLimitPerIndex") {
            6
        } else {
            i64::from(i32::MAX)
        };
        spec.insert("backoffLimit".to_owned(), json!(limit));
    }
    set_absent(spec, "completionMode", json!("NonIndexed"));
    set_absent(spec, "suspend", json!(false));
    let has_failure_policy = !absent(spec, "podFailurePolicy");
    if let Some(policy) = present(spec, "podFailurePolicy") {
        for rule in each(policy, "rules") {
            for pattern in each(rule, "onPodConditions") {
                set_str(pattern, "status", "True");
            }
        }
    }
    let replacement = if has_failure_policy {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_absent(spec, "podReplacementPolicy", json!(replacement));
    workload_template(spec);
}

fn cron_job(obj: &mut Object) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_str(spec, "concurrencyPolicy", "Allow");
    set_absent(spec, "suspend", json!(false));
    set_absent(spec, "successfulJobsHistoryLimit", json!(3));
    set_absent(spec, "failedJobsHistoryLimit", json!(1));
    // Only the pod template inside: the Job defaults (backoffLimit, ...) are not applied to a jobTemplate.
    if let Some(job_spec) = child(spec, "jobTemplate").and_then(|t| child(t, "spec")) {
        workload_template(job_spec);
    }
}

// ---- other groups ---------------------------------------------------------------------------------------

fn horizontal_pod_autoscaler(obj: &mut Object) {
    let v1 = obj.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v1");
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_absent(spec, "minReplicas", json!(1));
    if v1 {
        return;
    }
    if !non_empty(spec, "metrics") {
        spec.insert(
            "metrics".to_owned(),
            json!([{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}
            }]),
        );
    }
    if let Some(behavior) = present(spec, "behavior") {
        if let Some(up) = child(behavior, "scaleUp") {
            set_absent(up, "stabilizationWindowSeconds", json!(0));
            set_absent(up, "selectPolicy", json!("Max"));
            set_absent(
                up,
                "policies",
                json!([
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15}
                ]),
            );
        }
        if let Some(down) = child(behavior, "scaleDown") {
            set_absent(down, "selectPolicy", json!("Max"));
            set_absent(
                down,
                "policies",
                json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        }
    }
}

fn network_policy(obj: &mut Object) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    for rules in ["ingress", "egress"] {
        for rule in each(spec, rules) {
            for port in each(rule, "ports") {
                set_absent(port, "protocol", json!("TCP"));
            }
        }
    }
    if !non_empty(spec, "policyTypes") {
        let types = if non_empty(spec, "egress") {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".to_owned(), types);
    }
}

fn ingress_class(obj: &mut Object) {
    if let Some(parameters) = present(obj, "spec").and_then(|spec| present(spec, "parameters")) {
        set_absent(parameters, "scope", json!("Cluster"));
    }
}

fn endpoint_slice(obj: &mut Object) {
    for port in each(obj, "ports") {
        set_absent(port, "name", json!(""));
        set_absent(port, "protocol", json!("TCP"));
    }
}

fn role_binding(obj: &mut Object) {
    if let Some(role_ref) = present(obj, "roleRef") {
        set_str(role_ref, "apiGroup", "rbac.authorization.k8s.io");
    }
    for subject in each(obj, "subjects") {
        let unset = subject
            .get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if unset {
            // A ServiceAccount's group is "", which is omitted when written: nothing to add.
            if matches!(
                subject.get("kind").and_then(Value::as_str),
                Some("User" | "Group")
            ) {
                subject.insert("apiGroup".to_owned(), json!("rbac.authorization.k8s.io"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(group: &str, kind: &str, mut object: Value) -> Value {
        apply(group, kind, &mut object);
        object
    }

    /// The pod-template spec the API server returns for `kubectl create deployment web --image=nginx`.
    fn nginx_template_spec() -> Value {
        json!({
            "containers": [{
                "image": "nginx",
                "imagePullPolicy": "Always",
                "name": "nginx",
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"
            }],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30
        })
    }

    #[test]
    fn kubectl_create_deployment() {
        let body = json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}
                },
                "strategy": {}
            },
            "status": {}
        });
        let expected = json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {
                "progressDeadlineSeconds": 600,
                "replicas": 1,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                    "type": "RollingUpdate"
                },
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                    "spec": nginx_template_spec()
                }
            },
            "status": {}
        });
        assert_eq!(defaulted("apps", "Deployment", body), expected);
    }

    #[test]
    fn deployment_keeps_what_is_set() {
        let body = json!({"spec": {
            "replicas": 0,
            "revisionHistoryLimit": 2,
            "progressDeadlineSeconds": 60,
            "strategy": {"type": "Recreate"},
            "template": {"spec": {"restartPolicy": "Always", "dnsPolicy": "Default",
                "terminationGracePeriodSeconds": 0, "schedulerName": "mine",
                "securityContext": {"runAsUser": 1000},
                "containers": [{"name": "c", "image": "nginx:1.27", "imagePullPolicy": "Never",
                    "resources": {"limits": {"cpu": "1"}}}]}}
        }});
        let out = defaulted("apps", "Deployment", body.clone());
        assert_eq!(out["spec"]["replicas"], 0);
        assert_eq!(out["spec"]["revisionHistoryLimit"], 2);
        assert_eq!(out["spec"]["progressDeadlineSeconds"], 60);
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec["dnsPolicy"], "Default");
        assert_eq!(spec["terminationGracePeriodSeconds"], 0);
        assert_eq!(spec["schedulerName"], "mine");
        assert_eq!(spec["securityContext"], json!({"runAsUser": 1000}));
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Never");
        // requests-from-limits and enableServiceLinks are Pod-only.
        assert_eq!(
            spec["containers"][0]["resources"],
            json!({"limits": {"cpu": "1"}})
        );
        assert!(spec.get("enableServiceLinks").is_none());
        // Partial rolling update: only the missing half is filled.
        let out = defaulted(
            "apps",
            "Deployment",
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}}),
        );
        assert_eq!(
            out["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}})
        );
    }

    #[test]
    fn kubectl_run_pod() {
        let body = json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web", "labels": {"run": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "resources": {},
                "ports": [{"containerPort": 80}]}],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
            "status": {}
        });
        let expected = json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web", "labels": {"run": "web"}},
            "spec": {
                "containers": [{
                    "image": "nginx:1.27",
                    "imagePullPolicy": "IfNotPresent",
                    "name": "web",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File"
                }],
                "dnsPolicy": "ClusterFirst",
                "enableServiceLinks": true,
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30
            },
            "status": {}
        });
        assert_eq!(defaulted("", "Pod", body), expected);
    }

    #[test]
    fn pod_probes_env_volumes_and_resources() {
        let body = json!({"spec": {
            "hostNetwork": true,
            "initContainers": [{"name": "init", "image": "busybox@sha256:abcd",
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "10m"}}}],
            "containers": [{
                "name": "app", "image": "registry.example.com:5000/team/app",
                "ports": [{"containerPort": 8080, "protocol": "UDP"}, {"containerPort": 9090, "hostPort": 9091}],
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "PLAIN", "value": "x"}],
                "livenessProbe": {"httpGet": {"port": 8080}},
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 5},
                "startupProbe": {"grpc": {"port": 9000}},
                "lifecycle": {"preStop": {"httpGet": {"port": 8080, "path": "/stop", "scheme": "HTTPS"}}}
            }],
            "volumes": [
                {"name": "scratch"},
                {"name": "tmp", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 256}},
                {"name": "host", "hostPath": {"path": "/var/log"}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
                {"name": "claim", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}}
            ]
        }});
        let out = defaulted("", "Pod", body);
        let spec = &out["spec"];
        assert_eq!(
            spec["initContainers"][0],
            json!({"name": "init", "image": "busybox@sha256:abcd",
                "imagePullPolicy": "IfNotPresent",
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "10m", "memory": "64Mi"}},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"})
        );
        let app = &spec["containers"][0];
        assert_eq!(app["imagePullPolicy"], "Always");
        assert_eq!(
            app["ports"],
            json!([{"containerPort": 8080, "protocol": "UDP", "hostPort": 8080},
                   {"containerPort": 9090, "hostPort": 9091, "protocol": "TCP"}])
        );
        assert_eq!(
            app["env"],
            json!([{"name": "NODE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
                   {"name": "PLAIN", "value": "x"}])
        );
        assert_eq!(
            app["livenessProbe"],
            json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(
            app["readinessProbe"],
            json!({"tcpSocket": {"port": 8080}, "timeoutSeconds": 1, "periodSeconds": 5,
                "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(
            app["startupProbe"]["grpc"],
            json!({"port": 9000, "service": ""})
        );
        assert_eq!(
            app["lifecycle"],
            json!({"preStop": {"httpGet": {"port": 8080, "path": "/stop", "scheme": "HTTPS"}}})
        );
        assert_eq!(
            spec["volumes"],
            json!([
                {"name": "scratch", "emptyDir": {}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
                {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 256}},
                {"name": "host", "hostPath": {"path": "/var/log", "type": ""}},
                {"name": "info", "downwardAPI": {"defaultMode": 420, "items": [{"path": "labels",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}}]}},
                {"name": "token", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken":
                    {"path": "token", "expirationSeconds": 3600}}]}},
                {"name": "claim", "ephemeral": {"volumeClaimTemplate": {"spec":
                    {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"}}}}
            ])
        );
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("docker.io/library/nginx", "Always"),
            ("localhost:5000/app", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("localhost:5000/app:v1", "IfNotPresent"),
            ("nginx@sha256:0123456789abcdef", "IfNotPresent"),
            ("nginx:latest@sha256:0123456789abcdef", "Always"),
            ("", "IfNotPresent"),
            ("Nginx", "IfNotPresent"),
        ] {
            let out = defaulted(
                "",
                "Pod",
                json!({"spec": {"containers": [{"name": "c", "image": image}]}}),
            );
            assert_eq!(
                out["spec"]["containers"][0]["imagePullPolicy"], policy,
                "{image}"
            );
        }
    }

    #[test]
    fn every_pod_template() {
        let template = || json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}});
        let cases = [
            (
                "apps",
                "ReplicaSet",
                json!({"spec": {"template": template()}}),
                "/spec/template/spec",
            ),
            (
                "apps",
                "StatefulSet",
                json!({"spec": {"template": template()}}),
                "/spec/template/spec",
            ),
            (
                "apps",
                "DaemonSet",
                json!({"spec": {"template": template()}}),
                "/spec/template/spec",
            ),
            (
                "",
                "ReplicationController",
                json!({"spec": {"template": template()}}),
                "/spec/template/spec",
            ),
            (
                "",
                "PodTemplate",
                json!({"template": template()}),
                "/template/spec",
            ),
        ];
        for (group, kind, body, pointer) in cases {
            let mut spec = nginx_template_spec();
            spec["containers"][0]["name"] = json!("nginx");
            let out = defaulted(group, kind, body);
            assert_eq!(out.pointer(pointer), Some(&spec), "{kind}");
        }
    }

    #[test]
    fn job_and_its_template() {
        let body = json!({
            "kind": "Job", "apiVersion": "batch/v1",
            "metadata": {"name": "pi"},
            "spec": {"template": {"metadata": {}, "spec": {
                "containers": [{"name": "pi", "image": "perl:5.34.0", "command": ["perl"], "resources": {}}],
                "restartPolicy": "Never"}}}
        });
        let expected = json!({
            "kind": "Job", "apiVersion": "batch/v1",
            "metadata": {"name": "pi"},
            "spec": {
                "backoffLimit": 6,
                "completionMode": "NonIndexed",
                "completions": 1,
                "parallelism": 1,
                "podReplacementPolicy": "TerminatingOrFailed",
                "suspend": false,
                "template": {"metadata": {}, "spec": {
                    "containers": [{"name": "pi", "image": "perl:5.34.0", "command": ["perl"],
                        "imagePullPolicy": "IfNotPresent", "resources": {},
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Never",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30
                }}
            }
        });
        assert_eq!(defaulted("batch", "Job", body), expected);
    }

    #[test]
    fn job_variants() {
        // Parallelism alone: completions stays unset.
        let out = defaulted("batch", "Job", json!({"spec": {"parallelism": 3}}));
        assert_eq!(out["spec"]["parallelism"], 3);
        assert!(out["spec"].get("completions").is_none());
        // Completions alone: parallelism 1.
        let out = defaulted("batch", "Job", json!({"spec": {"completions": 5}}));
        assert_eq!(out["spec"]["completions"], 5);
        assert_eq!(out["spec"]["parallelism"], 1);
        // A pod failure policy: Failed replacement, condition status True.
        let out = defaulted(
            "batch",
            "Job",
            json!({"spec": {"backoffLimitPerIndex": 1, "completionMode": "Indexed", "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}}),
        );
        assert_eq!(out["spec"]["podReplacementPolicy"], "Failed");
        assert_eq!(out["spec"]["backoffLimit"], 2_147_483_647);
        assert_eq!(out["spec"]["completionMode"], "Indexed");
        assert_eq!(
            out["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0],
            json!({"type": "DisruptionTarget", "status": "True"})
        );
        assert!(out["spec"].get("manualSelector").is_none());
        // Template labels become the Job's labels when it has none.
        let out = defaulted(
            "batch",
            "Job",
            json!({"metadata": {"name": "j"}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"a": "b"}));
        // Upstream defaults restartPolicy to Always in a Job template too (validation then rejects it).
        assert_eq!(out["spec"]["template"]["spec"]["restartPolicy"], "Always");
    }

    #[test]
    fn kubectl_create_cronjob() {
        let body = json!({
            "kind": "CronJob", "apiVersion": "batch/v1",
            "metadata": {"name": "tick"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"metadata": {"name": "tick"}, "spec": {
                "template": {"metadata": {}, "spec": {"containers": [{"name": "tick", "image": "busybox", "resources": {}}],
                    "restartPolicy": "OnFailure"}}}}}
        });
        let expected = json!({
            "kind": "CronJob", "apiVersion": "batch/v1",
            "metadata": {"name": "tick"},
            "spec": {
                "concurrencyPolicy": "Allow",
                "failedJobsHistoryLimit": 1,
                "schedule": "*/1 * * * *",
                "successfulJobsHistoryLimit": 3,
                "suspend": false,
                "jobTemplate": {"metadata": {"name": "tick"}, "spec": {"template": {"metadata": {}, "spec": {
                    "containers": [{"name": "tick", "image": "busybox", "imagePullPolicy": "Always",
                        "resources": {}, "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"}],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "OnFailure",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30
                }}}}
            }
        });
        assert_eq!(defaulted("batch", "CronJob", body), expected);
    }

    #[test]
    fn replica_set_and_replication_controller() {
        let out = defaulted(
            "apps",
            "ReplicaSet",
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}}),
        );
        assert_eq!(out["spec"]["replicas"], 1);
        let out = defaulted(
            "",
            "ReplicationController",
            json!({"metadata": {"name": "rc"}, "spec": {"template": {"metadata": {"labels": {"app": "rc"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"app": "rc"}));
        assert_eq!(out["spec"]["selector"], json!({"app": "rc"}));
        assert_eq!(out["spec"]["replicas"], 1);
        assert_eq!(out["spec"]["template"]["spec"]["restartPolicy"], "Always");
        // An RC's template is optional: none is made up.
        let out = defaulted(
            "",
            "ReplicationController",
            json!({"spec": {"replicas": 2}}),
        );
        assert_eq!(out, json!({"spec": {"replicas": 2}}));
    }

    #[test]
    fn stateful_set() {
        let body = json!({"metadata": {"name": "db"}, "spec": {
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}]
        }});
        let out = defaulted("apps", "StatefulSet", body);
        let spec = &out["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0],
            json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"},
                "status": {"phase": "Pending"}})
        );
        assert_eq!(
            spec["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        // An explicit RollingUpdate without rollingUpdate stays so; OnDelete is left alone.
        let out = defaulted(
            "apps",
            "StatefulSet",
            json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}}}),
        );
        assert_eq!(
            out["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate"})
        );
        let out = defaulted(
            "apps",
            "StatefulSet",
            json!({"spec": {"updateStrategy": {"type": "OnDelete"},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}}),
        );
        assert_eq!(out["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
        assert_eq!(
            out["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Delete", "whenScaled": "Retain"})
        );
    }

    #[test]
    fn daemon_set() {
        let out = defaulted(
            "apps",
            "DaemonSet",
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}}),
        );
        assert_eq!(
            out["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(out["spec"]["revisionHistoryLimit"], 10);
        let out = defaulted(
            "apps",
            "DaemonSet",
            json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
        );
        assert_eq!(out["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    }

    #[test]
    fn kubectl_create_service_clusterip() {
        let body = json!({"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"ports": [{"name": "80-8080", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443}],
                "selector": {"app": "web"}, "type": "ClusterIP"},
            "status": {"loadBalancer": {}}});
        let expected = json!({"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "internalTrafficPolicy": "Cluster",
                "ports": [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080},
                          {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
                "selector": {"app": "web"},
                "sessionAffinity": "None",
                "type": "ClusterIP"
            },
            "status": {"loadBalancer": {}}});
        assert_eq!(defaulted("", "Service", body), expected);
    }

    #[test]
    fn service_types() {
        let out = defaulted(
            "",
            "Service",
            json!({"spec": {"type": "NodePort", "ports": [{"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}),
        );
        assert_eq!(out["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(out["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 53, "protocol": "UDP", "targetPort": "dns"}])
        );
        assert!(out["spec"].get("allocateLoadBalancerNodePorts").is_none());

        let out = defaulted(
            "",
            "Service",
            json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"hostname": "lb.example.com"}]}}}),
        );
        assert_eq!(out["spec"]["externalTrafficPolicy"], "Local");
        assert_eq!(out["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(
            out["status"]["loadBalancer"]["ingress"],
            json!([{"ip": "1.2.3.4", "ipMode": "VIP"}, {"hostname": "lb.example.com"}])
        );

        let out = defaulted(
            "",
            "Service",
            json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
        );
        assert_eq!(
            out["spec"],
            json!({"type": "ExternalName", "externalName": "example.com", "sessionAffinity": "None"})
        );

        let out = defaulted(
            "",
            "Service",
            json!({"spec": {"externalIPs": ["10.0.0.9"], "sessionAffinity": "ClientIP"}}),
        );
        assert_eq!(out["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(
            out["spec"]["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        assert!(out["spec"].get("clusterIP").is_none());

        let out = defaulted(
            "",
            "Service",
            json!({"spec": {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}}),
        );
        assert!(out["spec"].get("sessionAffinityConfig").is_none());
    }

    #[test]
    fn core_kinds() {
        assert_eq!(
            defaulted("", "Secret", json!({"metadata": {"name": "s"}, "data": {}})),
            json!({"metadata": {"name": "s"}, "data": {}, "type": "Opaque"})
        );
        assert_eq!(
            defaulted("", "Secret", json!({"type": "kubernetes.io/tls"}))["type"],
            "kubernetes.io/tls"
        );
        assert_eq!(
            defaulted(
                "",
                "Namespace",
                json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "dev"}})
            ),
            json!({"kind": "Namespace", "apiVersion": "v1",
                "metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "dev"}},
                "status": {"phase": "Active"}})
        );
        assert_eq!(
            defaulted(
                "",
                "PersistentVolumeClaim",
                json!({"spec": {"accessModes": ["ReadWriteOnce"]}})
            ),
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"}, "status": {"phase": "Pending"}})
        );
        assert_eq!(
            defaulted(
                "",
                "PersistentVolume",
                json!({"spec": {"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/data"}}})
            ),
            json!({"spec": {"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/data", "type": ""},
                "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"},
                "status": {"phase": "Pending"}})
        );
        assert_eq!(
            defaulted(
                "",
                "Endpoints",
                json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}]})
            ),
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}]})
        );
        assert_eq!(
            defaulted("", "Node", json!({"status": {"capacity": {"cpu": "4"}}})),
            json!({"status": {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "4"}}})
        );
        assert_eq!(
            defaulted(
                "",
                "LimitRange",
                json!({"spec": {"limits": [
                {"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}, "default": {"cpu": "1"}, "min": {"memory": "64Mi"}},
                {"type": "Pod", "max": {"cpu": "4"}}]}})
            ),
            json!({"spec": {"limits": [
                {"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}, "min": {"memory": "64Mi"},
                    "default": {"cpu": "1", "memory": "1Gi"}, "defaultRequest": {"cpu": "1", "memory": "1Gi"}},
                {"type": "Pod", "max": {"cpu": "4"}}]}})
        );
        for kind in ["ConfigMap", "ServiceAccount", "ResourceQuota", "Event"] {
            let body = json!({"metadata": {"name": "x"}});
            assert_eq!(defaulted("", kind, body.clone()), body, "{kind}");
        }
    }

    #[test]
    fn other_groups() {
        assert_eq!(
            defaulted(
                "autoscaling",
                "HorizontalPodAutoscaler",
                json!({"apiVersion": "autoscaling/v2", "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}})
            ),
            json!({"apiVersion": "autoscaling/v2", "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                "minReplicas": 1,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}})
        );
        let out = defaulted(
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"spec": {"minReplicas": 2,
            "metrics": [{"type": "Pods"}], "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
        );
        assert_eq!(out["spec"]["minReplicas"], 2);
        assert_eq!(out["spec"]["metrics"], json!([{"type": "Pods"}]));
        assert_eq!(
            out["spec"]["behavior"],
            json!({
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]}
            })
        );
        assert_eq!(
            defaulted(
                "networking.k8s.io",
                "NetworkPolicy",
                json!({"spec": {"podSelector": {},
                "ingress": [{"ports": [{"port": 80}]}], "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}})
            ),
            json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"ports": [{"port": 80, "protocol": "TCP"}]}],
                "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}})
        );
        assert_eq!(
            defaulted(
                "networking.k8s.io",
                "NetworkPolicy",
                json!({"spec": {"podSelector": {}}})
            ),
            json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
        );
        assert_eq!(
            defaulted(
                "storage.k8s.io",
                "StorageClass",
                json!({"provisioner": "example.com/p"})
            ),
            json!({"provisioner": "example.com/p", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"})
        );
        assert_eq!(
            defaulted(
                "discovery.k8s.io",
                "EndpointSlice",
                json!({"addressType": "IPv4", "endpoints": [],
                "ports": [{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]})
            ),
            json!({"addressType": "IPv4", "endpoints": [],
                "ports": [{"name": "", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]})
        );
        assert_eq!(
            defaulted(
                "networking.k8s.io",
                "IngressClass",
                json!({"spec": {"controller": "x/y",
                "parameters": {"kind": "P", "name": "p"}}})
            )["spec"]["parameters"]["scope"],
            "Cluster"
        );
        assert_eq!(
            defaulted(
                "rbac.authorization.k8s.io",
                "RoleBinding",
                json!({"roleRef": {"kind": "Role", "name": "r"},
                "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]})
            ),
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "u"},
                    {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]})
        );
        for (group, kind) in [
            ("policy", "PodDisruptionBudget"),
            ("networking.k8s.io", "Ingress"),
            ("coordination.k8s.io", "Lease"),
            ("rbac.authorization.k8s.io", "ClusterRole"),
        ] {
            let body = json!({"metadata": {"name": "x"}, "spec": {}});
            assert_eq!(defaulted(group, kind, body.clone()), body, "{kind}");
        }
        // Not an object: left alone.
        assert_eq!(defaulted("", "Pod", json!("x")), json!("x"));
    }
}

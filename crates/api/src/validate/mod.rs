//! Per-kind validation of object contents: what `pkg/apis/*/validation` in Kubernetes 1.33 reports when a
//! create or update is refused with `422 Invalid`, with the same field paths and messages. It runs on objects
//! after [`crate::defaults::apply`], as upstream validates after defaulting; the errors become the `causes` of
//! [`crate::ApiError::invalid`].
//!
//! Differences from kube-apiserver, by design:
//! - Values in messages are JSON where Go prints a struct (`Invalid value: {"type":"Blue"}`), and an
//!   unparsable quantity is a field error here rather than a decode error.
//! - Namespace scoping, `resourceVersion`, `generation`, IP and port allocation, and a Job's generated
//!   selector (see [`generate_job_selector`]) belong to the REST engine; validation accepts what they
//!   have not filled in yet.
//! - Feature gates are at their 1.33 defaults.

mod common;
mod config;
mod container;
mod cron;
mod limit_range;
mod meta;
mod misc;
mod net;
mod pod;
pub mod quantity;
mod resource_quota;
pub mod scheduling;
mod service;
mod storage;
mod volume;
mod workloads;

use serde_json::Value;

use crate::field::FieldError;

pub use workloads::generate_job_selector;

/// Everything wrong with a new object of this kind (after defaulting), as upstream's `ValidateXxx` would
/// report. Kinds without specific rules get the generic metadata checks.
pub fn validate_create(group: &str, kind: &str, object: &Value) -> Vec<FieldError> {
    let errs = match (group, kind) {
        ("", "Pod") => pod::create(object),
        ("", "PodTemplate") => pod::pod_template_create(object),
        ("", "ReplicationController") => pod::replication_controller_create(object),
        ("", "Service") => service::create(object),
        ("", "Endpoints") => service::endpoints(object),
        ("", "ConfigMap") => config::config_map_create(object),
        ("", "Secret") => config::secret_create(object),
        ("", "ServiceAccount") => config::service_account_create(object),
        ("", "Namespace") => misc::namespace_create(object),
        ("", "Node") => misc::node_create(object),
        ("", "PersistentVolume") => storage::volume_create(object),
        ("", "PersistentVolumeClaim") => storage::claim_create(object),
        ("", "LimitRange") => limit_range::create(object),
        ("", "ResourceQuota") => resource_quota::create(object),
        ("apps", "Deployment") => workloads::deployment_create(object),
        ("apps", "ReplicaSet") => workloads::replica_set_create(object),
        ("apps", "StatefulSet") => workloads::stateful_set_create(object),
        ("apps", "DaemonSet") => workloads::daemon_set_create(object),
        ("apps", "ControllerRevision") => misc::controller_revision_create(object),
        ("batch", "Job") => workloads::job_create(object),
        ("batch", "CronJob") => workloads::cron_job_create(object),
        ("autoscaling", "HorizontalPodAutoscaler") => misc::hpa_create(object),
        ("policy", "PodDisruptionBudget") => misc::pdb_create(object),
        ("discovery.k8s.io", "EndpointSlice") => service::endpoint_slice(object),
        ("coordination.k8s.io", "Lease") => misc::lease_create(object),
        ("networking.k8s.io", "Ingress") => misc::ingress_create(object),
        ("networking.k8s.io", "IngressClass") => misc::ingress_class_create(object),
        ("networking.k8s.io", "NetworkPolicy") => misc::network_policy_create(object),
        ("storage.k8s.io", "StorageClass") => storage::class_create(object),
        ("rbac.authorization.k8s.io", "Role") => misc::role_create(object, true),
        ("rbac.authorization.k8s.io", "ClusterRole") => misc::role_create(object, false),
        ("rbac.authorization.k8s.io", "RoleBinding") => misc::binding_create(object, true),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => misc::binding_create(object, false),
        ("scheduling.k8s.io", "PriorityClass") => scheduling::priority_class_create(object),
        _ if outside_kubernetes(group) => {
            meta::create_with(object, meta::NameRule::Subdomain, false)
        }
        _ => meta::create(object, name_rule(group, kind)),
    };
    dedup(errs)
}

/// Everything wrong with an update: the object's own validity plus immutable fields changed against `old`.
pub fn validate_update(group: &str, kind: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let errs = match (group, kind) {
        ("", "Pod") => pod::update(new, old),
        ("", "PodTemplate") => pod::pod_template_update(new, old),
        ("", "ReplicationController") => pod::replication_controller_update(new, old),
        ("", "Service") => service::update(new, old),
        ("", "Endpoints") => service::endpoints_update(new, old),
        ("", "ConfigMap") => config::config_map_update(new, old),
        ("", "Secret") => config::secret_update(new, old),
        ("", "ServiceAccount") => config::service_account_update(new, old),
        ("", "Namespace") => misc::namespace_update(new, old),
        ("", "Node") => misc::node_update(new, old),
        ("", "PersistentVolume") => storage::volume_update(new, old),
        ("", "PersistentVolumeClaim") => storage::claim_update(new, old),
        ("", "LimitRange") => limit_range::update(new, old),
        ("", "ResourceQuota") => resource_quota::update(new, old),
        ("apps", "Deployment") => workloads::deployment_update(new, old),
        ("apps", "ReplicaSet") => workloads::replica_set_update(new, old),
        ("apps", "StatefulSet") => workloads::stateful_set_update(new, old),
        ("apps", "DaemonSet") => workloads::daemon_set_update(new, old),
        ("apps", "ControllerRevision") => misc::controller_revision_update(new, old),
        ("batch", "Job") => workloads::job_update(new, old),
        ("batch", "CronJob") => workloads::cron_job_update(new, old),
        ("autoscaling", "HorizontalPodAutoscaler") => misc::hpa_update(new, old),
        ("policy", "PodDisruptionBudget") => misc::pdb_update(new, old),
        ("discovery.k8s.io", "EndpointSlice") => service::endpoint_slice_update(new, old),
        ("coordination.k8s.io", "Lease") => misc::lease_update(new, old),
        ("networking.k8s.io", "Ingress") => misc::ingress_update(new, old),
        ("networking.k8s.io", "IngressClass") => misc::ingress_class_update(new, old),
        ("networking.k8s.io", "NetworkPolicy") => misc::network_policy_update(new, old),
        ("storage.k8s.io", "StorageClass") => storage::class_update(new, old),
        ("rbac.authorization.k8s.io", "Role") => misc::role_update(new, old, true),
        ("rbac.authorization.k8s.io", "ClusterRole") => misc::role_update(new, old, false),
        ("rbac.authorization.k8s.io", "RoleBinding") => misc::binding_update(new, old, true),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            misc::binding_update(new, old, false)
        }
        ("scheduling.k8s.io", "PriorityClass") => scheduling::priority_class_update(new, old),
        _ if outside_kubernetes(group) => meta::update_with(new, old, false),
        _ => meta::update(new, old),
    };
    dedup(errs)
}

/// Kinds whose metadata apimachinery validates, not Kubernetes' own API packages: CRDs and custom resources
/// (no finalizer-name rule, names are DNS subdomains).
fn outside_kubernetes(group: &str) -> bool {
    group == "apiextensions.k8s.io" || !crate::registry::RESOURCES.iter().any(|r| r.group == group)
}

/// The name rule of kinds validated only by their metadata.
fn name_rule(group: &str, kind: &str) -> meta::NameRule {
    match (group, kind) {
        ("", "Event" | "ResourceQuota" | "LimitRange") | ("events.k8s.io", "Event") => {
            meta::NameRule::Subdomain
        }
        _ => meta::NameRule::PathSegment,
    }
}

/// Drops repeated errors (upstream reports some checks twice; the Status lists each once).
fn dedup(errs: Vec<FieldError>) -> Vec<FieldError> {
    let mut out: Vec<FieldError> = Vec::with_capacity(errs.len());
    for e in errs {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests;

//! The Node object and its heartbeats: the agent registers its Node (capacity, addresses, system info,
//! conditions), renews a Lease in `kube-node-lease` every quarter of its duration (how the control plane knows the
//! node is alive), and refreshes the Node's status every [`STATUS_REFRESH`].

use std::net::IpAddr;
use std::time::Duration;

use gantry_client::k8s_openapi::api::coordination::v1::Lease;
use gantry_client::k8s_openapi::api::core::v1::Node;
use gantry_client::kube::api::{Patch, PatchParams, PostParams};
use gantry_client::{Api, Client};
use serde_json::{Value, json};

use crate::facts::NodeFacts;

/// How long a Lease is valid without renewal (upstream's default `nodeLeaseDurationSeconds`); it is
/// renewed every quarter of that, as upstream.
pub const LEASE_DURATION_SECONDS: u32 = 40;

/// How often a Lease valid for `seconds` is renewed.
pub fn lease_renewal(seconds: u32) -> Duration {
    Duration::from_millis(u64::from(seconds) * 250)
}
/// How often the Node's status (conditions' heartbeat times, capacity) is written.
pub const STATUS_REFRESH: Duration = Duration::from_secs(60);
/// How often the Node is read to see whether the control plane thinks it is not Ready (the kubelet's
/// `nodeStatusUpdateFrequency`).
pub const STATUS_CHECK: Duration = Duration::from_secs(10);
/// Pods per node (upstream's default `maxPods`).
pub const MAX_PODS: u32 = 110;
/// The kubelet version this agent reports (the API's version, marked as Gantry's).
pub const KUBELET_VERSION: &str = "v1.33.0-gantry";

/// Who the node is.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub name: String,
    pub ip: IpAddr,
    /// The container runtime as `containerRuntimeVersion` names it (`runc://1.1.5`).
    pub runtime_version: String,
    /// The port of the agent's HTTPS endpoint.
    pub endpoint_port: u16,
    /// The pod CIDR the agent was told to use (set on the Node it creates; else the control plane's).
    pub pod_cidr: Option<String>,
}

/// The Node as the agent registers it: metadata (with the well-known labels) and status.
pub fn node_object(node: &NodeIdentity, facts: &NodeFacts, now: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": facts.architecture,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": facts.architecture,
            },
        },
        "spec": match &node.pod_cidr {
            Some(cidr) => json!({"podCIDR": cidr, "podCIDRs": [cidr]}),
            None => json!({}),
        },
        "status": node_status(node, facts, now),
    })
}

/// The Node's `status`: capacity and allocatable, addresses, system info, and the conditions of a healthy
/// node (pressure conditions are the agent's to turn on when eviction thresholds are crossed).
pub fn node_status(node: &NodeIdentity, facts: &NodeFacts, now: &str) -> Value {
    let capacity = json!({
        "cpu": facts.cpus.to_string(),
        "memory": format!("{}Ki", facts.memory_bytes / 1024),
        "ephemeral-storage": format!("{}Ki", facts.ephemeral_bytes / 1024),
        "pods": MAX_PODS.to_string(),
    });
    // Upstream's default hard eviction thresholds are held back from what pods may use.
    let allocatable = json!({
        "cpu": facts.cpus.to_string(),
        "memory": format!("{}Ki", facts.memory_bytes.saturating_sub(100 << 20) / 1024),
        "ephemeral-storage": format!("{}Ki", facts.ephemeral_bytes / 10 * 9 / 1024),
        "pods": MAX_PODS.to_string(),
    });
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": node.ip.to_string()},
            {"type": "Hostname", "address": node.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": node.endpoint_port}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.machine_id,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel_version,
            "osImage": facts.os_image,
            "containerRuntimeVersion": node.runtime_version,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": facts.architecture,
        },
    })
}

/// The node's Lease, held by the node and renewed now.
pub fn lease_object(node: &str, node_uid: &str, seconds: u32, now_micro: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": "kube-node-lease",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}],
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": seconds,
            "renewTime": now_micro,
        },
    })
}

/// Registers the Node, or takes over the one of that name (its status is rewritten). Returns its uid.
pub async fn register(
    client: &Client,
    node: &NodeIdentity,
    facts: &NodeFacts,
) -> Result<String, gantry_client::kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let object: Node = serde_json::from_value(node_object(node, facts, &now()))
        .map_err(gantry_client::kube::Error::SerdeError)?;
    let registered = match nodes.create(&PostParams::default(), &object).await {
        Ok(created) => created,
        Err(gantry_client::kube::Error::Api(e)) if e.code == 409 => {
            let status = json!({"status": node_status(node, facts, &now())});
            nodes
                .patch_status(&node.name, &PatchParams::default(), &Patch::Merge(&status))
                .await?
        }
        Err(e) => return Err(e),
    };
    Ok(registered.metadata.uid.unwrap_or_default())
}

/// Renews the node's Lease (creating it when missing).
pub async fn renew_lease(
    client: &Client,
    node: &str,
    node_uid: &str,
    seconds: u32,
) -> Result<(), gantry_client::kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let renewal = json!({"spec": {"holderIdentity": node, "leaseDurationSeconds": seconds,
        "renewTime": now_micro()}});
    match leases
        .patch(node, &PatchParams::default(), &Patch::Merge(&renewal))
        .await
    {
        Ok(_) => Ok(()),
        Err(gantry_client::kube::Error::Api(e)) if e.code == 404 => {
            let lease: Lease =
                serde_json::from_value(lease_object(node, node_uid, seconds, &now_micro()))
                    .map_err(gantry_client::kube::Error::SerdeError)?;
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(drop)
        }
        Err(e) => Err(e),
    }
}

/// Whether the Node's Ready condition says True.
pub fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the Node called `name` is Ready (false also when it cannot be read).
pub async fn is_ready(client: &Client, name: &str) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .get_status(name)
        .await
        .is_ok_and(|node| node_is_ready(&node))
}

/// Writes the Node's status afresh (heartbeat times, capacity).
pub async fn refresh_status(
    client: &Client,
    node: &NodeIdentity,
    facts: &NodeFacts,
) -> Result<(), gantry_client::kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let status = json!({"status": node_status(node, facts, &now())});
    nodes
        .patch_status(&node.name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map(drop)
}

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now() -> String {
    format_time(time::OffsetDateTime::now_utc(), false)
}

/// Now with microseconds (a `MicroTime`, as Lease renew times are).
pub fn now_micro() -> String {
    format_time(time::OffsetDateTime::now_utc(), true)
}

fn format_time(at: time::OffsetDateTime, micros: bool) -> String {
    let (y, mo, d) = (at.year(), u8::from(at.month()), at.day());
    let (h, mi, s) = (at.hour(), at.minute(), at.second());
    if micros {
        format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}Z",
            at.microsecond()
        )
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            cpus: 2,
            memory_bytes: 24 << 30,
            ephemeral_bytes: 100 << 30,
            kernel_version: "6.18.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            machine_id: "abc".into(),
            boot_id: "def".into(),
            architecture: "amd64".into(),
            hostname: "h".into(),
        }
    }

    #[test]
    fn the_node_is_a_valid_typed_node_with_capacity_and_conditions() {
        let identity = NodeIdentity {
            name: "n1".into(),
            ip: "10.0.0.5".parse().unwrap(),
            runtime_version: "runc://1.1.5".into(),
            endpoint_port: 10250,
            pod_cidr: Some("10.42.3.0/24".into()),
        };
        let value = node_object(&identity, &facts(), "2026-01-01T00:00:00Z");
        let node: Node = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(
            node.spec.as_ref().unwrap().pod_cidr.as_deref(),
            Some("10.42.3.0/24")
        );
        let status = node.status.unwrap();
        assert_eq!(status.capacity.unwrap()["cpu"].0, "2");
        assert_eq!(
            status.allocatable.unwrap()["memory"].0,
            format!("{}Ki", ((24u64 << 30) - (100 << 20)) / 1024)
        );
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(
            status.node_info.unwrap().container_runtime_version,
            "runc://1.1.5"
        );
        assert_eq!(value["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
    }

    #[test]
    fn times_are_formatted_as_kubernetes_writes_them() {
        let at =
            time::OffsetDateTime::from_unix_timestamp_nanos(1_767_225_600_123_456_789).unwrap();
        assert_eq!(format_time(at, false), "2026-01-01T00:00:00Z");
        assert_eq!(format_time(at, true), "2026-01-01T00:00:00.123456Z");
        let lease: Lease = serde_json::from_value(lease_object(
            "n1",
            "u",
            LEASE_DURATION_SECONDS,
            &format_time(at, true),
        ))
        .unwrap();
        assert_eq!(lease.spec.unwrap().lease_duration_seconds, Some(40));
    }
}

//! Simulated nodes for scale work, as KWOK does it: `gantry agent --simulate N` registers N Nodes that
//! renew their Leases like real agents (and post their status again when the control plane marked them not
//! Ready) and report every pod bound to them Running and Ready at once (with an address from the node's own
//! range), without running anything; a pod being deleted is removed at once.
//! Thousands of nodes and hundreds of thousands of pods fit on one machine, so the control plane (API
//! server, scheduler, controllers, node lifecycle) can be measured at the scale Kubernetes supports.
//!
//! One task watches the bound pods; writes go out in tasks of their own, at most [`IN_FLIGHT`] at a time
//! and one at a time per pod. What is kept per pod is only whether a write for it is in flight.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gantry_agent::node::{lease_renewal, node_is_ready, now, renew_lease};
use gantry_client::k8s_openapi::api::core::v1::{Node, Pod};
use gantry_client::kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use gantry_client::kube::runtime::{WatchStreamExt, watcher};
use gantry_client::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

/// Writes to the API in flight at once.
pub const IN_FLIGHT: usize = 128;
/// The label every simulated node carries.
pub const SIMULATED_LABEL: &str = "node.gantry.dev/simulated";

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many nodes.
    pub nodes: usize,
    /// Their names: `PREFIX-0` … `PREFIX-(N-1)`.
    pub prefix: String,
    /// Pods each node takes (its `pods` capacity).
    pub max_pods: u32,
    /// Seconds each node's Lease is valid; renewed every quarter of it.
    pub lease_duration_seconds: u32,
}

/// A simulated node's name, InternalIP (from 100.64.0.0/10) and pod range (a /24 of 10.128.0.0/9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedNode {
    pub name: String,
    pub ip: Ipv4Addr,
    pub index: usize,
}

impl SimulatedNode {
    /// The `index`th node (up to 32,767 of them have distinct pod ranges).
    pub fn new(prefix: &str, index: usize) -> SimulatedNode {
        let i = u32::try_from(index).unwrap_or(u32::MAX);
        SimulatedNode {
            name: format!("{prefix}-{index}"),
            ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + i),
            index,
        }
    }

    /// The address of the `n`th pod started on this node (1 to 254, then again from 1).
    pub fn pod_ip(&self, n: u32) -> Ipv4Addr {
        let i = u32::try_from(self.index).unwrap_or(0) & 0x7fff;
        Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + (i << 8) + 1 + n % 254)
    }

    /// The Node as registered: Ready, with room for `max_pods` pods (32 cpus, 256 GiB each).
    pub fn object(&self, max_pods: u32) -> Value {
        let capacity = json!({"cpu": "32", "memory": "256Gi", "ephemeral-storage": "1Ti",
            "pods": max_pods.to_string()});
        let stamp = now();
        let condition = |type_: &str, status: &str, reason: &str| {
            json!({"type": type_, "status": status, "reason": reason,
                "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
        };
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64", SIMULATED_LABEL: "true"},
            },
            "spec": {},
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": [
                    condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                    condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                    condition("PIDPressure", "False", "KubeletHasSufficientPID"),
                    condition("Ready", "True", "KubeletReady"),
                ],
                "addresses": [{"type": "InternalIP", "address": self.ip.to_string()},
                    {"type": "Hostname", "address": self.name}],
                "nodeInfo": {"kubeletVersion": "v1.33.0-gantry-simulated", "operatingSystem": "linux",
                    "architecture": "amd64", "containerRuntimeVersion": "simulated://1",
                    "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                    "osImage": "", "kubeProxyVersion": ""},
            },
        })
    }
}

/// The status of a pod "started" on `node` with address `ip`: Running, every container running and ready.
pub fn running_status(pod: &Pod, node: &SimulatedNode, ip: Ipv4Addr) -> Value {
    let stamp = now();
    let containers: Vec<Value> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| {
            json!({"name": c.name, "image": c.image, "imageID": "", "ready": true, "started": true,
                "restartCount": 0, "containerID": format!("simulated://{}", c.name),
                "state": {"running": {"startedAt": stamp}}})
        })
        .collect();
    let conditions = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    .map(|type_| json!({"type": type_, "status": "True", "lastTransitionTime": stamp}));
    json!({"status": {
        "phase": "Running",
        "hostIP": node.ip.to_string(), "hostIPs": [{"ip": node.ip.to_string()}],
        "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}],
        "startTime": stamp,
        "conditions": conditions,
        "containerStatuses": containers,
    }})
}

/// Registers the nodes and serves them until the process ends.
pub async fn run(client: Client, options: Options) {
    let nodes: Vec<SimulatedNode> = (0..options.nodes)
        .map(|i| SimulatedNode::new(&options.prefix, i))
        .collect();
    let uids = register_all(&client, &nodes, options.max_pods).await;
    tracing::info!(nodes = nodes.len(), "simulated nodes registered");
    tokio::join!(
        renew_leases(&client, &nodes, &uids, options.lease_duration_seconds),
        serve_pods(&client, &nodes),
        keep_nodes_ready(&client, &nodes, options.max_pods),
    );
}

/// Writes a node's status afresh when the control plane marked it not Ready (as an agent that finds its
/// Node marked Unknown after being cut off does).
async fn keep_nodes_ready(client: &Client, nodes: &[SimulatedNode], max_pods: u32) {
    let by_name: HashMap<&str, &SimulatedNode> =
        nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let simulated = watcher::Config::default()
        .labels(&format!("{SIMULATED_LABEL}=true"))
        .any_semantic();
    let api: Api<Node> = Api::all(client.clone());
    let mut events = watcher(api.clone(), simulated).default_backoff().boxed();
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(event) = events.next().await {
        let Ok(watcher::Event::Apply(node) | watcher::Event::InitApply(node)) = event else {
            continue;
        };
        let ready = node_is_ready(&node);
        let Some(simulated) = node.metadata.name.as_deref().and_then(|n| by_name.get(n)) else {
            continue;
        };
        if ready {
            continue;
        }
        let status = json!({"status": simulated.object(max_pods)["status"]});
        let (api, name, permits) = (api.clone(), simulated.name.clone(), permits.clone());
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
            {
                tracing::debug!(node = %name, "simulator: {e}");
            }
        });
    }
}

/// Registers every node (taking over existing ones), retrying until each is in; returns their uids.
async fn register_all(client: &Client, nodes: &[SimulatedNode], max_pods: u32) -> Vec<String> {
    let api: Api<Node> = Api::all(client.clone());
    let mut uids = vec![String::new(); nodes.len()];
    let mut left: Vec<&SimulatedNode> = nodes.iter().collect();
    while !left.is_empty() {
        let results: Vec<(&SimulatedNode, Option<String>)> = futures::stream::iter(left)
            .map(|node| {
                let api = api.clone();
                async move {
                    let object: Result<Node, _> = serde_json::from_value(node.object(max_pods));
                    let Ok(object) = object else {
                        return (node, None);
                    };
                    let registered = match api.create(&PostParams::default(), &object).await {
                        Err(gantry_client::kube::Error::Api(e)) if e.code == 409 => {
                            let status = json!({"status": object.status});
                            api.patch_status(
                                &node.name,
                                &PatchParams::default(),
                                &Patch::Merge(&status),
                            )
                            .await
                        }
                        other => other,
                    };
                    match registered {
                        Ok(node_object) => (node, node_object.metadata.uid),
                        Err(e) => {
                            tracing::warn!(node = %node.name, "cannot register: {e}");
                            (node, None)
                        }
                    }
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        left = Vec::new();
        for (node, uid) in results {
            match uid {
                Some(uid) => uids[node.index] = uid,
                None => left.push(node),
            }
        }
        if !left.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    uids
}

/// Renews every node's Lease each quarter of its duration, spread evenly over that time.
async fn renew_leases(client: &Client, nodes: &[SimulatedNode], uids: &[String], seconds: u32) {
    let period = lease_renewal(seconds);
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let spacing = period / u32::try_from(nodes.len().max(1)).unwrap_or(u32::MAX);
    let mut ticks = tokio::time::interval(spacing.max(Duration::from_micros(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for node in nodes.iter().cycle() {
        ticks.tick().await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (client, name, uid) = (client.clone(), node.name.clone(), uids[node.index].clone());
        tokio::spawn(async move {
            if let Err(e) = renew_lease(&client, &name, &uid, seconds).await {
                tracing::debug!(node = %name, "cannot renew the lease: {e}");
            }
            drop(permit);
        });
    }
}

/// What to do with a pod bound to one of the nodes.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Start,
    Remove,
    Nothing,
}

fn action(pod: &Pod) -> Action {
    if pod.metadata.deletion_timestamp.is_some() {
        return Action::Remove;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    match phase {
        None | Some("Pending") => Action::Start,
        _ => Action::Nothing,
    }
}

/// Starts pods bound to the nodes (reports them Running) and removes those being deleted.
async fn serve_pods(client: &Client, nodes: &[SimulatedNode]) {
    let by_name: HashMap<&str, &SimulatedNode> =
        nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut started: Vec<u32> = vec![0; nodes.len()];
    let bound = watcher::Config::default().fields("spec.nodeName!=");
    let mut events = watcher(Api::<Pod>::all(client.clone()), bound.any_semantic())
        .default_backoff()
        .boxed();
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut in_flight: HashSet<String> = HashSet::new();
    loop {
        let pod = tokio::select! {
            Some(uid) = done_rx.recv() => {
                in_flight.remove(&uid);
                continue;
            }
            event = events.next() => match event {
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => pod,
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    tracing::warn!("simulator: watching pods: {e}");
                    continue;
                }
                None => return,
            },
        };
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let Some(node) = node_name.and_then(|n| by_name.get(n)) else {
            continue;
        };
        let (Some(uid), Some(namespace), Some(name)) = (
            pod.metadata.uid.clone(),
            pod.metadata.namespace.clone(),
            pod.metadata.name.clone(),
        ) else {
            continue;
        };
        let act = action(&pod);
        if act == Action::Nothing || !in_flight.insert(uid.clone()) {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let body = (act == Action::Start).then(|| {
            let count = &mut started[node.index];
            *count = count.wrapping_add(1);
            running_status(&pod, node, node.pod_ip(*count))
        });
        let (permits, done) = (permits.clone(), done_tx.clone());
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = match body {
                Some(status) => api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .map(drop),
                None => {
                    let params = DeleteParams {
                        grace_period_seconds: Some(0),
                        preconditions: Some(Preconditions {
                            uid: Some(uid.clone()),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    };
                    api.delete(&name, &params).await.map(drop)
                }
            };
            if let Err(e) = result {
                tracing::debug!(pod = %name, "simulator: {e}");
            }
            let _ = done.send(uid);
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn nodes_have_distinct_addresses_and_pod_ranges() {
        let first = SimulatedNode::new("sim", 0);
        let far = SimulatedNode::new("sim", 4999);
        assert_eq!(first.name, "sim-0");
        assert_eq!(first.ip, Ipv4Addr::new(100, 64, 0, 0));
        assert_eq!(far.ip, Ipv4Addr::new(100, 64, 19, 135));
        assert_eq!(first.pod_ip(1), Ipv4Addr::new(10, 128, 0, 2));
        assert_eq!(far.pod_ip(1), Ipv4Addr::new(10, 147, 135, 2));
        // Addresses stay inside the node's /24.
        assert_eq!(far.pod_ip(253), Ipv4Addr::new(10, 147, 135, 254));
        assert_eq!(far.pod_ip(254), Ipv4Addr::new(10, 147, 135, 1));
    }

    #[test]
    fn a_simulated_node_is_a_valid_ready_node() {
        let node: Node = serde_json::from_value(SimulatedNode::new("sim", 3).object(110)).unwrap();
        let status = node.status.unwrap();
        assert_eq!(status.capacity.unwrap()["pods"].0, "110");
        let ready = status.conditions.unwrap();
        assert!(
            ready
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        );
        assert_eq!(node.metadata.labels.unwrap()[SIMULATED_LABEL], "true");
    }

    #[test]
    fn bound_pods_start_once_and_deleted_ones_go() {
        let pod = |v: Value| -> Pod { serde_json::from_value(v).unwrap() };
        let pending = pod(
            json!({"metadata": {"name": "p"}, "spec": {"nodeName": "sim-0",
            "containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Pending"}}),
        );
        assert_eq!(action(&pending), Action::Start);
        let node = SimulatedNode::new("sim", 0);
        let status = running_status(&pending, &node, node.pod_ip(1));
        let running = pod(json!({"metadata": {"name": "p"}, "spec": pending.spec,
            "status": status["status"]}));
        assert!(is_ready(&running));
        assert_eq!(action(&running), Action::Nothing);
        let deleting = pod(
            json!({"metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": status["status"]}),
        );
        assert_eq!(action(&deleting), Action::Remove);
    }

    /// The pod's Ready condition is True.
    fn is_ready(pod: &Pod) -> bool {
        pod.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }
}

//! The scheduler's view of the cluster: every node (what the filters read of it) and what the pods bound or
//! being bound to it use. Pods are added and removed one at a time, so a node's totals are always current
//! without a relist.

use std::collections::{BTreeMap, HashMap};

use gantry_client::k8s_openapi::api::core::v1::{Node, Pod, Taint};

use crate::resources::{Resources, pod_requests, value};

/// Taint of a node whose Ready condition is False (or missing), as upstream's node lifecycle puts it.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// Taint of a node whose Ready condition is Unknown.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// A host port a pod takes: address (`0.0.0.0` when unset), protocol, port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Whether two ports cannot be on one node: same protocol and port, and either address the wildcard or
    /// both the same.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// The host ports of a pod's containers (and sidecars).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|port| *port > 0)?;
            Some(HostPort {
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port,
            })
        })
        .collect()
}

/// What one pod takes from its node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests: Resources,
    /// Cpu (millicores) and memory with unset requests counted at the defaults, for the scores.
    pub non_zero: (i64, i64),
    pub ports: Vec<HostPort>,
}

impl Usage {
    pub fn of(pod: &Pod) -> Usage {
        let Some(spec) = &pod.spec else {
            return Usage::default();
        };
        let non_zero = pod_requests(spec, true);
        Usage {
            requests: pod_requests(spec, false),
            non_zero: (non_zero.milli_cpu, non_zero.memory),
            ports: host_ports(pod),
        }
    }
}

/// What the filters read of a Node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSpec {
    pub labels: BTreeMap<String, String>,
    /// Its taints, with the not-ready or unreachable taint added when it is not Ready.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    pub allowed_pods: i64,
}

impl NodeSpec {
    pub fn of(node: &Node) -> NodeSpec {
        let spec = node.spec.as_ref();
        let mut taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        let status = node.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        let implied = match ready {
            Some("True") => None,
            Some("Unknown") => Some(UNREACHABLE_TAINT),
            _ => Some(NOT_READY_TAINT),
        };
        if let Some(key) = implied
            && !taints
                .iter()
                .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.to_owned(),
                effect: "NoSchedule".to_owned(),
                ..Taint::default()
            });
        }
        let allocatable = status.and_then(|s| s.allocatable.as_ref());
        NodeSpec {
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            allocatable: allocatable.map(Resources::from_list).unwrap_or_default(),
            allowed_pods: allocatable
                .and_then(|a| a.get("pods"))
                .map(value)
                .unwrap_or(0),
        }
    }
}

/// A node and what its pods use. `spec` is `None` for a node not (or no longer) known that pods are bound
/// to anyway.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    pub spec: Option<NodeSpec>,
    pub requested: Resources,
    pub non_zero_requested: (i64, i64),
    pub pods: usize,
    pub ports: HashMap<HostPort, usize>,
}

impl NodeInfo {
    fn add(&mut self, usage: &Usage) {
        self.requested.add(&usage.requests);
        self.non_zero_requested.0 += usage.non_zero.0;
        self.non_zero_requested.1 += usage.non_zero.1;
        self.pods += 1;
        for port in &usage.ports {
            *self.ports.entry(port.clone()).or_default() += 1;
        }
    }

    fn remove(&mut self, usage: &Usage) {
        self.requested.subtract(&usage.requests);
        self.non_zero_requested.0 -= usage.non_zero.0;
        self.non_zero_requested.1 -= usage.non_zero.1;
        self.pods = self.pods.saturating_sub(1);
        for port in &usage.ports {
            if let Some(count) = self.ports.get_mut(port) {
                *count -= 1;
                if *count == 0 {
                    self.ports.remove(port);
                }
            }
        }
    }
}

/// Every node and the pods on each, by pod uid (bound, or assumed while their binding is in flight).
#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<String, (String, Usage)>,
    /// Nodes with a spec.
    known: usize,
}

impl Cache {
    /// The nodes in a fixed order (placeholders for unknown nodes included: skip those without a spec).
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// How many nodes are known.
    pub fn node_count(&self) -> usize {
        self.known
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    fn entry(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.index.get(name) {
            Some(i) => *i,
            None => {
                self.nodes.push(NodeInfo {
                    name: name.to_owned(),
                    ..NodeInfo::default()
                });
                self.index.insert(name.to_owned(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }

    fn drop_if_unused(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.nodes[i].spec.is_some() || self.nodes[i].pods > 0 {
            return;
        }
        self.index.remove(name);
        self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    /// Adds or replaces a node; true when what the filters see of it changed.
    pub fn set_node(&mut self, name: &str, spec: NodeSpec) -> bool {
        let node = self.entry(name);
        if node.spec.as_ref() == Some(&spec) {
            return false;
        }
        let new = node.spec.is_none();
        node.spec = Some(spec);
        if new {
            self.known += 1;
        }
        true
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.nodes[i].spec.take().is_some() {
            self.known -= 1;
        }
        self.drop_if_unused(name);
    }

    /// The names of the known nodes.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.spec.is_some())
            .map(|n| n.name.clone())
            .collect()
    }

    /// Whether the pod `uid` is counted on a node.
    pub fn has_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// Counts the pod `uid` on `node` (replacing what it was counted as before).
    pub fn add_pod(&mut self, uid: &str, node: &str, usage: Usage) {
        if let Some((old, old_usage)) = self.pods.get(uid) {
            if old == node && *old_usage == usage {
                return;
            }
            self.remove_pod(uid);
        }
        self.entry(node).add(&usage);
        self.pods.insert(uid.to_owned(), (node.to_owned(), usage));
    }

    /// Stops counting the pod `uid`; true when it was counted.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some((node, usage)) = self.pods.remove(uid) else {
            return false;
        };
        self.entry(&node).remove(&usage);
        self.drop_if_unused(&node);
        true
    }

    /// The uids of the pods counted.
    pub fn pod_uids(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn usage(cpu: i64, port: Option<i32>) -> Usage {
        Usage {
            requests: Resources {
                milli_cpu: cpu,
                ..Resources::default()
            },
            non_zero: (cpu.max(100), 200 << 20),
            ports: port
                .map(|port| HostPort {
                    ip: "0.0.0.0".into(),
                    protocol: "TCP".into(),
                    port,
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn pods_are_counted_on_their_node_once_and_nodes_outlive_their_pods_only_when_known() {
        let mut cache = Cache::default();
        cache.add_pod("a", "n1", usage(100, Some(80)));
        cache.add_pod("a", "n1", usage(100, Some(80)));
        cache.add_pod("b", "n1", usage(300, None));
        assert_eq!(cache.node_count(), 0);
        let n1 = cache.node("n1").unwrap();
        assert_eq!(
            (n1.requested.milli_cpu, n1.pods, n1.ports.len()),
            (400, 2, 1)
        );
        assert!(cache.set_node("n1", NodeSpec::default()));
        assert!(!cache.set_node("n1", NodeSpec::default()));
        assert_eq!(cache.node_count(), 1);
        // Moved to another node (a relist can say so).
        cache.add_pod("a", "n2", usage(100, Some(80)));
        assert_eq!(cache.node("n1").unwrap().ports.len(), 0);
        assert_eq!(cache.node("n2").unwrap().pods, 1);
        assert!(cache.remove_pod("a"));
        assert!(!cache.remove_pod("a"));
        assert!(cache.node("n2").is_none());
        cache.remove_node("n1");
        assert_eq!(cache.node_count(), 0);
        assert_eq!(cache.node("n1").unwrap().pods, 1);
        cache.remove_pod("b");
        assert!(cache.node("n1").is_none());
        assert!(cache.nodes().is_empty());
    }

    #[test]
    fn a_node_that_is_not_ready_has_the_not_ready_taint() {
        let node = |ready: Option<&str>| -> Node {
            let conditions: Vec<_> = ready
                .map(|s| json!({"type": "Ready", "status": s}))
                .into_iter()
                .collect();
            serde_json::from_value(json!({
                "metadata": {"name": "n", "labels": {"a": "b"}},
                "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
                "status": {"conditions": conditions, "allocatable": {"cpu": "2", "memory": "1Gi", "pods": "110"}},
            }))
            .unwrap()
        };
        let ready = NodeSpec::of(&node(Some("True")));
        assert_eq!(ready.taints.len(), 1);
        assert_eq!(ready.allocatable.milli_cpu, 2000);
        assert_eq!(ready.allowed_pods, 110);
        let keys = |s: NodeSpec| s.taints.iter().map(|t| t.key.clone()).collect::<Vec<_>>();
        assert_eq!(
            keys(NodeSpec::of(&node(Some("False")))),
            ["k", NOT_READY_TAINT]
        );
        assert_eq!(keys(NodeSpec::of(&node(None))), ["k", NOT_READY_TAINT]);
        assert_eq!(
            keys(NodeSpec::of(&node(Some("Unknown")))),
            ["k", UNREACHABLE_TAINT]
        );
    }
}

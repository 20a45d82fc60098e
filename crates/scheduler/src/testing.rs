//! Helpers of the unit tests: nodes, pods and caches from JSON.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use gantry_client::k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use crate::cache::{Cache, CachedPod, NodeSpec};
use crate::plugins::{Algorithm, Decision, PodInfo};

/// A Ready node with `labels` (and its hostname label), `cpu` cpus, 4Gi and room for `pods` pods.
pub(crate) fn node(name: &str, labels: Value, cpu: &str, pods: u32) -> (String, NodeSpec) {
    let mut labels = labels;
    labels["kubernetes.io/hostname"] = json!(name);
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": pods.to_string()}},
    }))
    .unwrap();
    (name.to_owned(), NodeSpec::of(&node))
}

pub(crate) fn cache(nodes: Vec<(String, NodeSpec)>) -> Cache {
    let mut cache = Cache::default();
    for (name, spec) in nodes {
        cache.set_node(&name, spec);
    }
    cache
}

/// A pod `name` (its uid too) in `namespace` with `labels` and `spec` (a container added if none).
pub(crate) fn pod(namespace: &str, name: &str, labels: Value, spec: Value) -> PodInfo {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c"}]);
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "uid": name, "labels": labels},
        "spec": spec,
    }))
    .unwrap();
    PodInfo::new(Arc::new(pod))
}

/// Places the pod on `node` in the cache.
pub(crate) fn place(cache: &mut Cache, pod: &PodInfo, node: &str) {
    cache.add_pod(CachedPod::of(&pod.pod, node, None));
}

/// Where the algorithm puts the pod, or its message.
pub(crate) fn decide(pod: &PodInfo, cache: &Cache) -> Result<String, String> {
    match Algorithm::default().decide(pod, cache) {
        Decision::Bind(node) => Ok(node),
        Decision::Unschedulable { message, .. } => Err(message),
        Decision::Preempt { node, .. } => Err(format!("preemption on {node}")),
    }
}

/// The nodes the pod goes to over `runs` decisions.
pub(crate) fn nodes_chosen(pod: &PodInfo, cache: &Cache, runs: usize) -> Vec<String> {
    let mut chosen: Vec<String> = (0..runs).filter_map(|_| decide(pod, cache).ok()).collect();
    chosen.sort();
    chosen.dedup();
    chosen
}

//! The node IPAM controller (upstream's range allocator): every Node gets a pod network of its own
//! (`spec.podCIDR`, `spec.podCIDRs`), the next free subnet of the cluster CIDR (`--cluster-cidr`, /24 each
//! by default). Networks Nodes already have are taken as used (also those an agent was configured with);
//! a deleted Node's network is free again. When none is left the Node gets a `CIDRNotAvailable` event.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use gantry_client::events::{Event, Involved, Recorder};
use gantry_client::k8s_openapi::api::core::v1::Node;
use gantry_client::kube::api::{Patch, PatchParams};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use gantry_net::Ipv4Net;
use serde_json::json;

use crate::cache::watch_all;

const COMPONENT: &str = "node-ipam-controller";

/// Where nodes' pod networks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodNetworks {
    /// The cluster's pod network (`10.42.0.0/16`).
    pub cluster_cidr: Ipv4Net,
    /// The prefix of each node's share (`24`).
    pub node_prefix: u8,
}

impl Default for PodNetworks {
    fn default() -> Self {
        PodNetworks {
            cluster_cidr: Ipv4Net::new(std::net::Ipv4Addr::new(10, 42, 0, 0), 16)
                .unwrap_or_else(|| unreachable!("a /16 is a valid prefix")),
            node_prefix: 24,
        }
    }
}

/// Which subnets of the cluster CIDR are taken, and by which node.
#[derive(Debug, Default)]
pub struct Allocator {
    networks: PodNetworks,
    used: BTreeSet<u64>,
    by_node: BTreeMap<String, u64>,
    /// Where the search for a free subnet goes on from (so a freed one is not handed out again at once).
    next: u64,
}

impl Allocator {
    pub fn new(networks: PodNetworks) -> Allocator {
        Allocator {
            networks,
            ..Allocator::default()
        }
    }

    /// Records that `node` has `cidr` (ignored when it is not one of the cluster CIDR's subnets).
    pub fn occupy(&mut self, node: &str, cidr: Ipv4Net) {
        if let Some(index) = self
            .networks
            .cluster_cidr
            .subnet_index(self.networks.node_prefix, cidr)
        {
            self.used.insert(index);
            self.by_node.insert(node.to_owned(), index);
        }
    }

    /// Frees what `node` had.
    pub fn release(&mut self, node: &str) {
        if let Some(index) = self.by_node.remove(node) {
            self.used.remove(&index);
        }
    }

    /// A free subnet for `node` (marked used), or `None` when every one is taken.
    pub fn allocate(&mut self, node: &str) -> Option<Ipv4Net> {
        let cluster = self.networks.cluster_cidr;
        let count = cluster.subnet_count(self.networks.node_prefix);
        let index = (0..count)
            .map(|i| (self.next + i) % count)
            .find(|i| !self.used.contains(i))?;
        self.next = (index + 1) % count;
        self.used.insert(index);
        self.by_node.insert(node.to_owned(), index);
        cluster.subnet(self.networks.node_prefix, index)
    }
}

/// The pod network a Node has, if any.
fn node_cidr(node: &Node) -> Option<Ipv4Net> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidr
        .as_deref()
        .or_else(|| spec.pod_cidrs.as_ref()?.first().map(String::as_str))
        .and_then(|c| c.parse().ok())
}

/// Runs the controller until its watch ends (it does not: it retries on its own).
pub async fn run(client: Client, networks: PodNetworks) {
    let nodes: Api<Node> = Api::all(client.clone());
    let events = Recorder::start(client.clone(), COMPONENT);
    let mut watch = watch_all::<Node>(&client);
    let mut allocator = Allocator::new(networks);
    // Nodes seen without a network: allocation waits until the first listing is complete, so that a
    // network some node already has is never handed out again.
    let mut waiting: BTreeMap<String, String> = BTreeMap::new();
    let mut listing: Vec<Node> = Vec::new();
    let mut synced = false;
    while let Some(event) = watch.next().await {
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(node)) => listing.push(node),
            Ok(watcher::Event::InitDone) => {
                allocator = Allocator::new(networks);
                waiting.clear();
                for node in std::mem::take(&mut listing) {
                    see(&mut allocator, &mut waiting, &node);
                }
                synced = true;
            }
            Ok(watcher::Event::Apply(node)) => see(&mut allocator, &mut waiting, &node),
            Ok(watcher::Event::Delete(node)) => {
                let name = node.metadata.name.unwrap_or_default();
                allocator.release(&name);
                waiting.remove(&name);
            }
            Err(e) => tracing::warn!("node IPAM controller: watching nodes: {e}"),
        }
        if !synced {
            continue;
        }
        for (name, uid) in std::mem::take(&mut waiting) {
            let Some(cidr) = allocator.allocate(&name) else {
                events.record(Event {
                    object: Involved {
                        api_version: "v1",
                        kind: "Node",
                        namespace: String::new(),
                        name: name.clone(),
                        uid,
                    },
                    warning: false,
                    reason: "CIDRNotAvailable",
                    message: format!("Node {name} status is now: CIDRNotAvailable"),
                });
                tracing::warn!(node = %name, cluster_cidr = %networks.cluster_cidr, "no pod network left for the node");
                continue;
            };
            let body =
                json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
            match nodes
                .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => tracing::info!(node = %name, %cidr, "pod network allocated"),
                Err(e) => {
                    // The Node is gone, or got a network meanwhile: what the watch shows next decides.
                    tracing::warn!(node = %name, "cannot set the node's pod network: {e}");
                    allocator.release(&name);
                }
            }
        }
    }
}

/// Takes note of a Node: its network as used, or the Node as waiting for one.
fn see(allocator: &mut Allocator, waiting: &mut BTreeMap<String, String>, node: &Node) {
    let name = node.metadata.name.clone().unwrap_or_default();
    match node_cidr(node) {
        Some(cidr) => {
            waiting.remove(&name);
            allocator.occupy(&name, cidr);
        }
        None if node.metadata.deletion_timestamp.is_none()
            && !allocator.by_node.contains_key(&name) =>
        {
            waiting.insert(name, node.metadata.uid.clone().unwrap_or_default());
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks(cidr: &str, prefix: u8) -> PodNetworks {
        PodNetworks {
            cluster_cidr: cidr.parse().unwrap(),
            node_prefix: prefix,
        }
    }

    #[test]
    fn nodes_get_distinct_subnets_and_taken_ones_are_skipped() {
        let mut allocator = Allocator::new(networks("10.42.0.0/16", 24));
        allocator.occupy("a", "10.42.0.0/24".parse().unwrap());
        // Outside the cluster CIDR: not ours to track.
        allocator.occupy("x", "10.99.0.0/24".parse().unwrap());
        assert_eq!(allocator.allocate("b").unwrap().to_string(), "10.42.1.0/24");
        assert_eq!(allocator.allocate("c").unwrap().to_string(), "10.42.2.0/24");
        allocator.release("b");
        // The freed one comes back only after the rest.
        assert_eq!(allocator.allocate("d").unwrap().to_string(), "10.42.3.0/24");
    }

    #[test]
    fn an_exhausted_range_allocates_nothing_until_a_node_goes() {
        let mut allocator = Allocator::new(networks("10.42.0.0/23", 24));
        assert!(allocator.allocate("a").is_some());
        assert!(allocator.allocate("b").is_some());
        assert_eq!(allocator.allocate("c"), None);
        allocator.release("a");
        assert_eq!(allocator.allocate("c").unwrap().to_string(), "10.42.0.0/24");
    }
}

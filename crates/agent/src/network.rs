//! The node's part of the cluster network: its pod CIDR (the Node's `spec.podCIDR`, given by the control
//! plane's node IPAM controller or set from the agent's `--pod-cidr`), and the overlay that reaches the other
//! Nodes' pods ([`gantry_net::overlay`]), kept in line with the Nodes as they come and go.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::StreamExt;
use gantry_client::k8s_openapi::api::core::v1::Node;
use gantry_client::kube::api::{Patch, PatchParams};
use gantry_client::kube::runtime::{WatchStreamExt, watcher};
use gantry_client::{Api, Client};
use gantry_net::Ipv4Net;
use gantry_net::overlay::{Overlay, OverlayConfig, Peer};
use serde_json::json;

use crate::{AgentConfig, NodeIdentity};

/// How often the Node is read while it has no pod CIDR yet.
const CIDR_POLL: Duration = Duration::from_millis(200);

/// The pod CIDR a Node has (`spec.podCIDR`, else the first of `spec.podCIDRs`).
pub fn node_pod_cidr(node: &Node) -> Option<Ipv4Net> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidr
        .as_deref()
        .or_else(|| spec.pod_cidrs.as_ref()?.first().map(String::as_str))
        .and_then(|c| c.parse().ok())
}

/// The Node's IPv4 InternalIP.
fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

/// This node's pod CIDR, once its Node has one: `configured` is written to a Node that has none; a Node
/// that already has another keeps it (a Node's pod CIDR cannot change), and the agent uses that.
pub async fn pod_cidr(client: &Client, node: &str, configured: Option<Ipv4Net>) -> Ipv4Net {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut polls = 0u64;
    loop {
        match nodes.get(node).await {
            Ok(current) => match (node_pod_cidr(&current), configured) {
                (Some(cidr), Some(wanted)) if cidr != wanted => {
                    tracing::warn!(%node, %cidr, configured = %wanted,
                        "the Node already has another pod CIDR, which is kept");
                    return cidr;
                }
                (Some(cidr), _) => return cidr,
                (None, Some(wanted)) => {
                    let body = json!({"spec": {"podCIDR": wanted.to_string(),
                        "podCIDRs": [wanted.to_string()]}});
                    match nodes
                        .patch(node, &PatchParams::default(), &Patch::Merge(&body))
                        .await
                    {
                        Ok(_) => return wanted,
                        Err(e) => tracing::warn!(%node, "cannot set the node's pod CIDR: {e}"),
                    }
                }
                (None, None) => {}
            },
            Err(e) => tracing::warn!(%node, "cannot read the node: {e}"),
        }
        if polls.is_multiple_of(50) {
            tracing::info!(%node, "waiting for the node's pod CIDR from the control plane");
        }
        polls += 1;
        tokio::time::sleep(CIDR_POLL).await;
    }
}

/// Keeps the overlay in line with the Nodes for as long as the process lives: every Node with a pod CIDR
/// and an IPv4 InternalIP is a peer. Errors are retried (on the next change, or after a second).
pub async fn run_overlay(client: Client, node: String, config: OverlayConfig) {
    let mut overlay = loop {
        match Overlay::start(config.clone()).await {
            Ok(overlay) => break overlay,
            Err(e) => {
                tracing::error!(%node, "cannot set up the pod network between nodes: {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let nodes: Api<Node> = Api::all(client);
    let mut events = watcher(nodes, watcher::Config::default().any_semantic())
        .default_backoff()
        .boxed();
    let mut peers: BTreeMap<String, Peer> = BTreeMap::new();
    let mut listing: BTreeMap<String, Peer> = BTreeMap::new();
    let mut synced = false;
    let mut failed = false;
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    loop {
        let changed = tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                match event {
                    Ok(watcher::Event::Init) => { listing.clear(); false }
                    Ok(watcher::Event::InitApply(n)) => {
                        if let Some((name, peer)) = as_peer(&n) {
                            listing.insert(name, peer);
                        }
                        false
                    }
                    Ok(watcher::Event::InitDone) => {
                        peers = std::mem::take(&mut listing);
                        synced = true;
                        true
                    }
                    Ok(watcher::Event::Apply(n)) => {
                        let name = n.metadata.name.clone().unwrap_or_default();
                        let before = peers.get(&name).copied();
                        match as_peer(&n) {
                            Some((name, peer)) => { peers.insert(name, peer); }
                            None => { peers.remove(&name); }
                        }
                        peers.get(&name).copied() != before
                    }
                    Ok(watcher::Event::Delete(n)) => {
                        peers.remove(n.metadata.name.as_deref().unwrap_or_default()).is_some()
                    }
                    Err(e) => {
                        tracing::warn!("watching nodes for the pod network: {e}");
                        false
                    }
                }
            }
            _ = retry.tick() => failed,
        };
        if !(synced && changed) {
            continue;
        }
        let list: Vec<Peer> = peers.values().copied().collect();
        failed = match overlay.update(&list).await {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!(%node, "updating the pod network between nodes: {e}");
                true
            }
        };
    }
}

fn as_peer(node: &Node) -> Option<(String, Peer)> {
    Some((
        node.metadata.name.clone()?,
        Peer {
            node_ip: internal_ip(node)?,
            pod_cidr: node_pod_cidr(node)?,
        },
    ))
}

/// The node's side of the cluster network, for as long as the process lives, once its pod CIDR is known:
/// the pods' bridge with its gateway, the cluster DNS server there (and the redirect of the cluster DNS
/// address to it), a route to the Service network if the node has none, the overlay to the other nodes, and
/// the Service proxy.
pub async fn run(
    client: &Client,
    identity: &NodeIdentity,
    config: &AgentConfig,
    pod_cidr: Ipv4Net,
) {
    let gateway = pod_cidr.nth(1);
    let dns = match gantry_net::overlay::ensure_bridge(&config.cni_bridge, pod_cidr).await {
        Ok(()) => start_dns(client.clone(), gateway, &config.cluster_domain).await,
        Err(e) => {
            tracing::error!(bridge = %config.cni_bridge, "cannot make the pods' bridge: {e}");
            false
        }
    };
    let route =
        gantry_net::overlay::ensure_service_route(config.service_cidr, &config.cni_bridge, gateway);
    if let Err(e) = route.await {
        tracing::warn!("cannot route the Service network: {e}");
    }
    let Some(node_ip) = ipv4(identity.ip) else {
        return tracing::warn!(
            "the node has no IPv4 address: no pod network between nodes, no Service proxy"
        );
    };
    let overlay = OverlayConfig {
        backend: config.pod_network,
        node_ip,
        pod_cidr,
        table: format!("{}-node", config.nft_table),
        dns_redirect: match config.cluster_dns {
            Some(IpAddr::V4(cluster_dns)) if dns => Some((cluster_dns, gateway)),
            _ => None,
        },
    };
    let proxy = gantry_proxy::ProxyConfig {
        table: config.nft_table.clone(),
        // The node's own table masquerades pod egress.
        masquerade_egress: false,
        // This node's pods are the local traffic (kube-proxy's NodeCIDR detection): a pod reaches a ClusterIP
        // through its own node's proxy, so no agent flag has to repeat the server's --cluster-cidr.
        ..gantry_proxy::ProxyConfig::new(
            identity.name.clone(),
            vec![node_ip],
            pod_cidr,
            config.service_cidr,
        )
    };
    futures::join!(
        run_overlay(client.clone(), identity.name.clone(), overlay),
        gantry_proxy::run(client.clone(), proxy),
    );
}

/// Starts the node's cluster DNS server on the pods' gateway (`gateway:53`, UDP and TCP), answering the
/// cluster domain and forwarding the rest to the node's own resolvers. Returns once it listens; false (and a
/// logged error) when it cannot.
pub async fn start_dns(client: Client, gateway: Ipv4Addr, domain: &str) -> bool {
    let address = std::net::SocketAddr::new(IpAddr::V4(gateway), 53);
    let listeners = match gantry_dns::Listeners::bind(&[address]).await {
        Ok(listeners) => listeners,
        Err(e) => {
            tracing::error!(%address, "the cluster DNS server cannot listen: {e}");
            return false;
        }
    };
    // The server runs in the node's network namespace: a loopback stub resolver there is reachable.
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let config = gantry_dns::DnsConfig {
        cluster_domain: domain.to_owned(),
        upstreams: gantry_dns::upstreams_from_resolv_conf(&resolv, false),
        ..gantry_dns::DnsConfig::default()
    };
    tokio::spawn(async move {
        if let Err(e) = gantry_dns::run(client, config, listeners).await {
            tracing::error!("the cluster DNS server stopped: {e}");
        }
    });
    tracing::info!(%address, "cluster DNS server listening");
    true
}

/// The node's IPv4 address, which the overlay needs (an IPv6-only node gets no overlay).
pub fn ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }
}

//! The pod network between nodes, flannel-style: every node owns a pod CIDR (its Node's `spec.podCIDR`);
//! traffic to another node's pods goes through a VXLAN device (`gantry.<vni>`, the VTEP) or, for nodes on one
//! L2 segment, over plain routes via the other node's address (`host-gw`). Pod source addresses are kept
//! between nodes; traffic from pods to anywhere outside the pod networks is masqueraded behind the node.
//!
//! The state is computed as a pure function of the peers ([`desired`]) and changed by difference
//! ([`route_commands`], [`fdb_commands`]), one `ip -batch` and one `bridge -batch` per change, so that a node
//! joining or leaving touches only its own entries. Each VTEP's MAC is derived from its node's address
//! ([`vtep_mac`]), so peers need nothing beyond the Node objects to reach each other.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::cidr::Ipv4Net;

/// The MTU of pod interfaces and the VXLAN device: 1500 less VXLAN's 50 bytes of headers.
pub const VXLAN_MTU: u32 = 1450;
/// The protocol number routes of the overlay are tagged with, so that they can be told apart after a restart.
const ROUTE_PROTO: &str = "151";

/// How traffic reaches other nodes' pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Encapsulated in VXLAN (works across routed networks).
    Vxlan { vni: u32, port: u16 },
    /// Plain routes via the other node's address (every node on one L2 segment).
    HostGw,
}

impl std::str::FromStr for Backend {
    type Err = String;

    /// `vxlan` (VNI 1, UDP port 8472, as flannel) or `host-gw`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vxlan" => Ok(Backend::Vxlan { vni: 1, port: 8472 }),
            "host-gw" => Ok(Backend::HostGw),
            other => Err(format!(
                "unknown pod network backend {other:?} (vxlan or host-gw)"
            )),
        }
    }
}

/// This node's side of the overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayConfig {
    pub backend: Backend,
    /// The node's address, which other nodes send its pods' traffic to.
    pub node_ip: Ipv4Addr,
    /// This node's pod network.
    pub pod_cidr: Ipv4Net,
    /// The node's own nftables table: the masquerade of pod egress and the cluster DNS redirect (one per
    /// agent: tests run several per host).
    pub table: String,
    /// Queries to the cluster DNS address (`10.43.0.10`) are answered on this node, at the second address
    /// (the pods' gateway), where the agent's DNS server listens.
    pub dns_redirect: Option<(Ipv4Addr, Ipv4Addr)>,
}

impl OverlayConfig {
    /// The VXLAN device (`gantry.1`), for the VXLAN backend.
    pub fn device(&self) -> Option<String> {
        match self.backend {
            Backend::Vxlan { vni, .. } => Some(format!("gantry.{vni}")),
            Backend::HostGw => None,
        }
    }
}

/// Another node of the cluster, as its Node object says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub node_ip: Ipv4Addr,
    pub pod_cidr: Ipv4Net,
}

/// The MAC address of the VTEP of the node at `ip`: locally administered, unicast, and the same wherever it
/// is computed.
pub fn vtep_mac(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("0e:6e:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// What the kernel should hold for the peers: routes to their pod networks (to the gateway given), and for
/// VXLAN the neighbour entry (gateway → VTEP MAC) and forwarding entry (VTEP MAC → node address) of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    pub routes: BTreeMap<Ipv4Net, Ipv4Addr>,
    pub neighbours: BTreeMap<Ipv4Addr, String>,
    pub fdb: BTreeMap<String, Ipv4Addr>,
}

/// The links to `peers`. Peers without a usable pod network (this node's own, or one overlapping it) are
/// left out.
pub fn desired(config: &OverlayConfig, peers: &[Peer]) -> Links {
    let mut links = Links::default();
    for peer in peers {
        if peer.node_ip == config.node_ip || peer.pod_cidr.overlaps(config.pod_cidr) {
            continue;
        }
        match config.backend {
            Backend::HostGw => {
                links.routes.insert(peer.pod_cidr, peer.node_ip);
            }
            Backend::Vxlan { .. } => {
                // The peer's VTEP has its pod network's own address (as flannel's).
                let gateway = peer.pod_cidr.network();
                let mac = vtep_mac(peer.node_ip);
                links.routes.insert(peer.pod_cidr, gateway);
                links.neighbours.insert(gateway, mac.clone());
                links.fdb.insert(mac, peer.node_ip);
            }
        }
    }
    links
}

/// The `ip -batch` lines that turn `old` routes and neighbours into `new` ones.
pub fn route_commands(config: &OverlayConfig, old: &Links, new: &Links) -> Vec<String> {
    let dev = config
        .device()
        .map(|d| format!(" dev {d} onlink"))
        .unwrap_or_default();
    let neigh_dev = config.device().unwrap_or_default();
    let mut lines = Vec::new();
    for (net, gateway) in &old.routes {
        if !new.routes.contains_key(net) {
            lines.push(format!("route del {net} via {gateway} proto {ROUTE_PROTO}"));
        }
    }
    for (ip, _) in old.neighbours.iter() {
        if !new.neighbours.contains_key(ip) {
            lines.push(format!("neigh del {ip} dev {neigh_dev}"));
        }
    }
    // Neighbours first: a route whose gateway has no neighbour entry yet would send an ARP nobody answers.
    for (ip, mac) in &new.neighbours {
        if old.neighbours.get(ip) != Some(mac) {
            lines.push(format!(
                "neigh replace {ip} lladdr {mac} dev {neigh_dev} nud permanent"
            ));
        }
    }
    for (net, gateway) in &new.routes {
        if old.routes.get(net) != Some(gateway) {
            lines.push(format!(
                "route replace {net} via {gateway}{dev} proto {ROUTE_PROTO}"
            ));
        }
    }
    lines
}

/// The `bridge -batch` lines that turn `old` forwarding entries into `new` ones.
pub fn fdb_commands(config: &OverlayConfig, old: &Links, new: &Links) -> Vec<String> {
    let Some(dev) = config.device() else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for (mac, ip) in &old.fdb {
        if new.fdb.get(mac) != Some(ip) {
            lines.push(format!("fdb del {mac} dev {dev} dst {ip}"));
        }
    }
    for (mac, ip) in &new.fdb {
        if old.fdb.get(mac) != Some(ip) {
            lines.push(format!(
                "fdb append {mac} dev {dev} dst {ip} self permanent"
            ));
        }
    }
    lines
}

/// The node's own nftables table, made anew in one transaction: traffic from this node's pods to anywhere
/// outside every pod network is masqueraded (pod-to-pod traffic, also across nodes, keeps its source
/// address), and DNS queries to the cluster DNS address go to this node's DNS server (before the Service
/// proxy's NAT, at priority -110).
pub fn node_ruleset(config: &OverlayConfig, pod_networks: &[Ipv4Net]) -> String {
    let table = &config.table;
    let mut networks: Vec<String> = pod_networks.iter().map(Ipv4Net::to_string).collect();
    networks.push(config.pod_cidr.to_string());
    networks.sort();
    networks.dedup();
    let mut text = format!(
        "table ip {table} {{}}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tset pod-networks {{ type ipv4_addr; flags interval; auto-merge; elements = {{ {elements} }} }}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {own} ip daddr != @pod-networks ip daddr != 224.0.0.0/4 masquerade\n\
         \t}}\n",
        elements = networks.join(", "),
        own = config.pod_cidr,
    );
    if let Some((cluster_dns, local)) = config.dns_redirect {
        for (chain, hook) in [("dns-prerouting", "prerouting"), ("dns-output", "output")] {
            text.push_str(&format!(
                "\tchain {chain} {{\n\
                 \t\ttype nat hook {hook} priority -110; policy accept;\n\
                 \t\tip daddr {cluster_dns} meta l4proto {{ tcp, udp }} th dport 53 dnat to {local}:53\n\
                 \t}}\n"
            ));
        }
    }
    text.push_str("}\n");
    text
}

/// Makes the pods' bridge with its gateway address (the pod network's first) if it is not there yet, as the
/// CNI bridge plugin would on the first pod, so that services of the node (its DNS server) can listen there
/// before any pod runs.
pub async fn ensure_bridge(bridge: &str, pod_cidr: Ipv4Net) -> Result<(), String> {
    if run("ip", &["link", "show", bridge], None).await.is_err() {
        run("ip", &["link", "add", bridge, "type", "bridge"], None).await?;
    }
    let gateway = format!("{}/{}", pod_cidr.nth(1), pod_cidr.prefix());
    run("ip", &["addr", "replace", &gateway, "dev", bridge], None).await?;
    run("ip", &["link", "set", bridge, "up"], None)
        .await
        .map(drop)
}

/// The overlay on this node: the VXLAN device, the links to the peers applied last, the egress table.
#[derive(Debug)]
pub struct Overlay {
    config: OverlayConfig,
    applied: Links,
    egress: Option<String>,
}

impl Overlay {
    /// Sets up this node's side: forwarding on, bridged traffic through netfilter (Services' NAT needs it),
    /// the VXLAN device (made again if it does not match the config), and what a previous run left (read back
    /// so that peers gone meanwhile are removed at the first [`update`](Self::update)).
    pub async fn start(config: OverlayConfig) -> Result<Overlay, String> {
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
        let _ = std::fs::write("/proc/sys/net/bridge/bridge-nf-call-iptables", "1");
        if let (Some(dev), Backend::Vxlan { vni, port }) = (config.device(), config.backend) {
            let details = run("ip", &["-j", "-d", "link", "show", &dev], None)
                .await
                .ok();
            if !vxlan_matches(details.as_deref(), &config, vni, port) {
                let _ = run("ip", &["link", "del", &dev], None).await;
                let (vni, port, local) = (
                    vni.to_string(),
                    port.to_string(),
                    config.node_ip.to_string(),
                );
                let mac = vtep_mac(config.node_ip);
                run(
                    "ip",
                    &[
                        "link",
                        "add",
                        &dev,
                        "address",
                        &mac,
                        "mtu",
                        "1450",
                        "type",
                        "vxlan",
                        "id",
                        &vni,
                        "local",
                        &local,
                        "dstport",
                        &port,
                        "nolearning",
                        "noudpcsum",
                    ],
                    None,
                )
                .await?;
            }
            let address = format!("{}/32", config.pod_cidr.network());
            run("ip", &["addr", "replace", &address, "dev", &dev], None).await?;
            run("ip", &["link", "set", &dev, "up"], None).await?;
        }
        let applied = current_links(&config).await;
        Ok(Overlay {
            config,
            applied,
            egress: None,
        })
    }

    pub fn config(&self) -> &OverlayConfig {
        &self.config
    }

    /// Brings the links and the egress table in line with `peers` (every other node with a pod network);
    /// only what changed is touched.
    pub async fn update(&mut self, peers: &[Peer]) -> Result<(), String> {
        let links = desired(&self.config, peers);
        let routes = route_commands(&self.config, &self.applied, &links);
        let fdb = fdb_commands(&self.config, &self.applied, &links);
        // Forwarding entries before routes: the first packet routed already finds its VTEP.
        if !fdb.is_empty() {
            run("bridge", &["-force", "-batch", "-"], Some(fdb.join("\n"))).await?;
        }
        if !routes.is_empty() {
            run("ip", &["-force", "-batch", "-"], Some(routes.join("\n"))).await?;
        }
        self.applied = links;
        let networks: Vec<Ipv4Net> = peers.iter().map(|p| p.pod_cidr).collect();
        let egress = node_ruleset(&self.config, &networks);
        if self.egress.as_ref() != Some(&egress) {
            run("nft", &["-f", "-"], Some(egress.clone())).await?;
            self.egress = Some(egress);
        }
        Ok(())
    }
}

/// Gives the node a route to the Service network when it has none (no default route): the node's own traffic
/// to a ClusterIP is routed before the Service proxy's NAT changes its destination, so it needs one. It goes
/// to the pods' bridge, from the gateway address.
pub async fn ensure_service_route(
    service_cidr: Ipv4Net,
    bridge: &str,
    gateway: Ipv4Addr,
) -> Result<(), String> {
    let probe = service_cidr.nth(1).to_string();
    if run("ip", &["route", "get", &probe], None).await.is_ok() {
        return Ok(());
    }
    let (cidr, src) = (service_cidr.to_string(), gateway.to_string());
    run(
        "ip",
        &["route", "replace", &cidr, "dev", bridge, "src", &src],
        None,
    )
    .await
    .map(drop)
}

/// Whether the device `ip -j -d link show` described is the VXLAN device `config` wants.
fn vxlan_matches(details: Option<&str>, config: &OverlayConfig, vni: u32, port: u16) -> bool {
    let Some(link) = details
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .and_then(|v| v.get(0).cloned())
    else {
        return false;
    };
    let info = &link["linkinfo"]["info_data"];
    link["linkinfo"]["info_kind"] == "vxlan"
        && info["id"] == vni
        && info["port"] == port
        && info["local"] == config.node_ip.to_string()
        && link["address"] == vtep_mac(config.node_ip)
}

/// The overlay's routes, neighbours and forwarding entries as the kernel has them now.
async fn current_links(config: &OverlayConfig) -> Links {
    let mut links = Links::default();
    let json = |text: Result<String, String>| -> Vec<Value> {
        text.ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    };
    for route in json(
        run(
            "ip",
            &["-j", "-4", "route", "show", "proto", ROUTE_PROTO],
            None,
        )
        .await,
    ) {
        let (Some(dst), Some(gateway)) = (
            route["dst"]
                .as_str()
                .and_then(|d| d.parse::<Ipv4Net>().ok()),
            route["gateway"].as_str().and_then(|g| g.parse().ok()),
        ) else {
            continue;
        };
        let ours = match config.device() {
            Some(dev) => route["dev"] == dev.as_str(),
            None => true,
        };
        if ours {
            links.routes.insert(dst, gateway);
        }
    }
    if let Some(dev) = config.device() {
        for neigh in json(run("ip", &["-j", "-4", "neigh", "show", "dev", &dev], None).await) {
            if let (Some(ip), Some(mac)) = (
                neigh["dst"].as_str().and_then(|d| d.parse().ok()),
                neigh["lladdr"].as_str(),
            ) {
                links.neighbours.insert(ip, mac.to_owned());
            }
        }
        for entry in json(run("bridge", &["-j", "fdb", "show", "dev", &dev], None).await) {
            if let (Some(mac), Some(ip)) = (
                entry["mac"].as_str(),
                entry["dst"].as_str().and_then(|d| d.parse().ok()),
            ) {
                links.fdb.insert(mac.to_owned(), ip);
            }
        }
    }
    links
}

/// Runs `program` with `args` (and `stdin`), returning its standard output, or what it said when it failed.
async fn run(program: &str, args: &[&str], stdin: Option<String>) -> Result<String, String> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(|e| format!("{program}: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(backend: Backend) -> OverlayConfig {
        OverlayConfig {
            backend,
            node_ip: "192.168.1.1".parse().unwrap(),
            pod_cidr: "10.42.0.0/24".parse().unwrap(),
            table: "gantry-node".into(),
            dns_redirect: None,
        }
    }

    fn peer(ip: &str, cidr: &str) -> Peer {
        Peer {
            node_ip: ip.parse().unwrap(),
            pod_cidr: cidr.parse().unwrap(),
        }
    }

    const VXLAN: Backend = Backend::Vxlan { vni: 1, port: 8472 };

    #[test]
    fn vxlan_links_route_through_each_peers_vtep() {
        let config = config(VXLAN);
        let peers = [
            peer("192.168.1.2", "10.42.1.0/24"),
            // Itself and an overlapping network are left out.
            peer("192.168.1.1", "10.42.0.0/24"),
            peer("192.168.1.9", "10.42.0.0/16"),
        ];
        let links = desired(&config, &peers);
        assert_eq!(links.routes.len(), 1);
        let gateway: Ipv4Addr = "10.42.1.0".parse().unwrap();
        assert_eq!(links.routes[&"10.42.1.0/24".parse().unwrap()], gateway);
        assert_eq!(links.neighbours[&gateway], "0e:6e:c0:a8:01:02");
        assert_eq!(
            links.fdb["0e:6e:c0:a8:01:02"],
            "192.168.1.2".parse::<Ipv4Addr>().unwrap()
        );
        let lines = route_commands(&config, &Links::default(), &links);
        assert_eq!(
            lines,
            [
                "neigh replace 10.42.1.0 lladdr 0e:6e:c0:a8:01:02 dev gantry.1 nud permanent",
                "route replace 10.42.1.0/24 via 10.42.1.0 dev gantry.1 onlink proto 151",
            ]
        );
        assert_eq!(
            fdb_commands(&config, &Links::default(), &links),
            ["fdb append 0e:6e:c0:a8:01:02 dev gantry.1 dst 192.168.1.2 self permanent"]
        );
    }

    #[test]
    fn changes_touch_only_the_peers_that_changed() {
        let config = config(VXLAN);
        let before = desired(
            &config,
            &[
                peer("192.168.1.2", "10.42.1.0/24"),
                peer("192.168.1.3", "10.42.2.0/24"),
            ],
        );
        let after = desired(
            &config,
            &[
                peer("192.168.1.2", "10.42.1.0/24"),
                peer("192.168.1.4", "10.42.3.0/24"),
            ],
        );
        let lines = route_commands(&config, &before, &after);
        assert_eq!(
            lines,
            [
                "route del 10.42.2.0/24 via 10.42.2.0 proto 151",
                "neigh del 10.42.2.0 dev gantry.1",
                "neigh replace 10.42.3.0 lladdr 0e:6e:c0:a8:01:04 dev gantry.1 nud permanent",
                "route replace 10.42.3.0/24 via 10.42.3.0 dev gantry.1 onlink proto 151",
            ]
        );
        assert_eq!(
            fdb_commands(&config, &before, &after),
            [
                "fdb del 0e:6e:c0:a8:01:03 dev gantry.1 dst 192.168.1.3",
                "fdb append 0e:6e:c0:a8:01:04 dev gantry.1 dst 192.168.1.4 self permanent",
            ]
        );
        assert!(route_commands(&config, &after, &after).is_empty());
    }

    #[test]
    fn host_gw_routes_via_the_peer_itself() {
        let config = config(Backend::HostGw);
        let links = desired(&config, &[peer("192.168.1.2", "10.42.1.0/24")]);
        assert!(links.neighbours.is_empty() && links.fdb.is_empty());
        assert_eq!(
            route_commands(&config, &Links::default(), &links),
            ["route replace 10.42.1.0/24 via 192.168.1.2 proto 151"]
        );
        assert!(fdb_commands(&config, &Links::default(), &links).is_empty());
        assert_eq!(config.device(), None);
    }

    #[test]
    fn egress_is_masqueraded_outside_the_pod_networks_only() {
        let config = config(VXLAN);
        let text = node_ruleset(&config, &["10.42.1.0/24".parse().unwrap()]);
        assert!(text.starts_with("table ip gantry-node {}\ndelete table ip gantry-node\n"));
        assert!(!text.contains("dnat"));
        assert!(text.contains("elements = { 10.42.0.0/24, 10.42.1.0/24 }"));
        assert!(text.contains(
            "ip saddr 10.42.0.0/24 ip daddr != @pod-networks ip daddr != 224.0.0.0/4 masquerade"
        ));
    }

    #[test]
    fn cluster_dns_queries_are_answered_on_the_node() {
        let config = OverlayConfig {
            dns_redirect: Some(("10.43.0.10".parse().unwrap(), "10.42.0.1".parse().unwrap())),
            ..config(VXLAN)
        };
        let text = node_ruleset(&config, &[]);
        for hook in ["prerouting", "output"] {
            assert!(text.contains(&format!("type nat hook {hook} priority -110;")));
        }
        assert!(text.contains(
            "ip daddr 10.43.0.10 meta l4proto { tcp, udp } th dport 53 dnat to 10.42.0.1:53"
        ));
        assert!(text.ends_with("\t}\n}\n"));
    }

    #[test]
    fn backends_parse() {
        assert_eq!("vxlan".parse::<Backend>().unwrap(), VXLAN);
        assert_eq!("host-gw".parse::<Backend>().unwrap(), Backend::HostGw);
        assert!("wireguard".parse::<Backend>().is_err());
    }
}

//! What the proxy is told about its node and cluster.

use std::net::Ipv4Addr;
use std::time::Duration;

/// The table every node uses unless told otherwise.
pub const DEFAULT_TABLE: &str = "gantry";
/// The packet mark bit that asks for masquerade (kube-proxy's).
pub const MASQUERADE_MARK: u32 = 0x4000;

pub use gantry_net::Ipv4Net;

/// Which destination addresses NodePorts answer on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodePortAddresses {
    /// Every address of the node but loopback (`fib daddr type local`), kube-proxy's default.
    #[default]
    AllLocal,
    /// Only [`ProxyConfig::node_ips`] (kube-proxy's `--nodeport-addresses primary`).
    NodeIps,
    /// Only these.
    Only(Vec<Ipv4Addr>),
}

/// The proxy's configuration. IPv4 only: IPv6 cluster IPs and endpoints are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// This node's name: endpoints whose `nodeName` it is are local (traffic policy `Local`, hairpin).
    pub node_name: String,
    pub node_ips: Vec<Ipv4Addr>,
    /// The pods whose traffic is the cluster's own: traffic from elsewhere to a ClusterIP is masqueraded, and
    /// theirs to external addresses short-circuits `externalTrafficPolicy: Local`. The node agent gives its
    /// node's pod CIDR (kube-proxy's NodeCIDR mode); [`masquerade_egress`](Self::masquerade_egress) needs the
    /// whole pod network.
    pub cluster_cidr: Ipv4Net,
    /// Addresses in it that no Service holds are dropped rather than routed on.
    pub service_cidr: Ipv4Net,
    /// The nftables table (family `ip`) the proxy owns entirely.
    pub table: String,
    pub nodeport_addresses: NodePortAddresses,
    /// Masquerade pods' traffic to addresses outside the pod and service networks behind the node.
    pub masquerade_egress: bool,
    /// Serve SCTP ports. [`crate::Proxier::new`] turns it off when the kernel cannot NAT SCTP.
    pub sctp: bool,
    /// The least time between two syncs: changes that arrive closer together are applied together.
    pub min_sync_period: Duration,
}

impl ProxyConfig {
    /// The defaults: table [`DEFAULT_TABLE`], NodePorts on every local address, egress masquerade on,
    /// SCTP where the kernel has it, syncs at most every 30 ms.
    pub fn new(
        node_name: impl Into<String>,
        node_ips: Vec<Ipv4Addr>,
        cluster_cidr: Ipv4Net,
        service_cidr: Ipv4Net,
    ) -> ProxyConfig {
        ProxyConfig {
            node_name: node_name.into(),
            node_ips,
            cluster_cidr,
            service_cidr,
            table: DEFAULT_TABLE.to_owned(),
            nodeport_addresses: NodePortAddresses::AllLocal,
            masquerade_egress: true,
            sctp: true,
            min_sync_period: Duration::from_millis(30),
        }
    }

    /// The addresses NodePorts answer on, or `None` for every local one.
    pub fn nodeport_ips(&self) -> Option<Vec<Ipv4Addr>> {
        match &self.nodeport_addresses {
            NodePortAddresses::AllLocal => None,
            NodePortAddresses::NodeIps => Some(self.node_ips.clone()),
            NodePortAddresses::Only(ips) => Some(ips.clone()),
        }
    }
}

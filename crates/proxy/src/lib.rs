//! The node's service proxy, after kube-proxy's nftables mode (KEP-3866): Services and EndpointSlices become
//! one nftables table (family `ip`, default name `gantry`) that the node's packets traverse.
//!
//! - [`desired`] is a pure function from the objects and a [`ProxyConfig`] to a structured [`Ruleset`]
//!   (chains and rules, sets and maps and their elements, grouped per Service).
//! - [`render::full`] makes the table exactly a ruleset in one transaction; [`render::diff`] takes it from
//!   one ruleset to the next touching only what changed.
//! - [`Proxier`] keeps what the table holds and applies each sync through an [`NftApplier`] (the real one,
//!   [`Nft`], runs one `nft -f -` per sync), deleting stale UDP conntrack entries through [`Conntrack`].
//! - [`run`] / [`spawn`] feed it from watches of Services and EndpointSlices.
//!
//! The node must route the service network to itself for its own traffic to reach ClusterIPs (the route
//! lookup happens before the output NAT hook), and keep `net.bridge.bridge-nf-call-iptables=1`.

pub mod config;
pub mod desired;
pub mod model;
pub mod nft;
pub mod proxier;
pub mod render;
mod run;
#[cfg(test)]
mod testutil;

pub use config::{DEFAULT_TABLE, Ipv4Net, MASQUERADE_MARK, NodePortAddresses, ProxyConfig};
pub use desired::desired;
pub use model::{Chain, Claim, Hook, Part, Proto, Ruleset, SetDef, Shared, UdpFrontend};
pub use nft::{CommandError, Conntrack, ConntrackTool, Nft, NftApplier, UdpFlows};
pub use proxier::{Proxier, SyncError, SyncReport};
pub use run::{ProxyHandle, run, spawn};

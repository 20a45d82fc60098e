//! IPv4 networks written as `10.42.0.0/16`: the cluster's pod network, each node's share of it.

use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network (its address has no host bits set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// The network of `ip` with `prefix` bits (host bits cleared); `None` for a prefix over 32.
    pub fn new(ip: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        (prefix <= 32).then(|| Ipv4Net {
            network: Ipv4Addr::from(u32::from(ip) & mask(prefix)),
            prefix,
        })
    }

    pub fn network(self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(self) -> u8 {
        self.prefix
    }

    /// How many addresses the network has.
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The `n`th address of the network (0 is the network's own address).
    pub fn nth(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(n))
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// Whether the two networks share an address.
    pub fn overlaps(self, other: Ipv4Net) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// How many subnets with `prefix` bits the network holds (0 when `prefix` is shorter than its own).
    pub fn subnet_count(self, prefix: u8) -> u64 {
        if prefix < self.prefix || prefix > 32 {
            0
        } else {
            1u64 << (prefix - self.prefix)
        }
    }

    /// The `index`th subnet with `prefix` bits, if the network holds that many.
    pub fn subnet(self, prefix: u8, index: u64) -> Option<Ipv4Net> {
        if index >= self.subnet_count(prefix) {
            return None;
        }
        let step = 1u64 << (32 - u32::from(prefix));
        let start = u64::from(u32::from(self.network)) + index * step;
        Ipv4Net::new(Ipv4Addr::from(u32::try_from(start).ok()?), prefix)
    }

    /// Which subnet with `prefix` bits `net` is, if it is exactly one of this network's.
    pub fn subnet_index(self, prefix: u8, net: Ipv4Net) -> Option<u64> {
        if net.prefix != prefix || !self.contains(net.network) || prefix < self.prefix {
            return None;
        }
        let offset = u32::from(net.network) - u32::from(self.network);
        Some(u64::from(offset) >> (32 - u32::from(prefix)))
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    /// `10.42.0.0/16`; host bits are cleared (`10.42.1.7/24` is `10.42.1.0/24`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not an IPv4 network such as 10.42.0.0/16");
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Ipv4Net::new(ip, prefix).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_clears_host_bits() {
        assert_eq!(net("10.42.1.7/24").to_string(), "10.42.1.0/24");
        assert_eq!(net("0.0.0.0/0").size(), 1 << 32);
        assert!("10.42.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.42.0.0".parse::<Ipv4Net>().is_err());
        assert!("nonsense/8".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn subnets_are_numbered_in_order() {
        let cluster = net("10.42.0.0/16");
        assert_eq!(cluster.subnet_count(24), 256);
        assert_eq!(cluster.subnet(24, 0), Some(net("10.42.0.0/24")));
        assert_eq!(cluster.subnet(24, 255), Some(net("10.42.255.0/24")));
        assert_eq!(cluster.subnet(24, 256), None);
        assert_eq!(cluster.subnet_index(24, net("10.42.7.0/24")), Some(7));
        assert_eq!(cluster.subnet_index(24, net("10.43.7.0/24")), None);
        assert_eq!(cluster.subnet_index(25, net("10.42.7.0/24")), None);
        assert_eq!(cluster.subnet_count(8), 0);
    }

    #[test]
    fn containment_and_overlap() {
        let a = net("10.42.0.0/16");
        assert!(a.contains("10.42.200.1".parse().unwrap()));
        assert!(!a.contains("10.43.0.1".parse().unwrap()));
        assert!(a.overlaps(net("10.42.3.0/24")));
        assert!(net("10.42.3.0/24").overlaps(a));
        assert!(!a.overlaps(net("10.43.0.0/16")));
        assert!(net("0.0.0.0/0").contains(Ipv4Addr::BROADCAST));
        assert_eq!(a.nth(1).to_string(), "10.42.0.1");
    }
}

//! The structured model of the proxy's nftables table: chains with their rules, sets and maps with their
//! elements, grouped into parts (the skeleton, and one part per Service) so that a sync compares only the
//! parts that changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// The whole table as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// The table (family `ip`).
    pub table: String,
    /// The skeleton: base chains, fixed chains, sets and maps, the chains Services share, and the
    /// elements that belong to no one Service (hairpin pairs, NodePort addresses).
    pub base: Arc<Part>,
    /// What each Service (`namespace/name`) adds. Services that add nothing are absent.
    pub services: BTreeMap<String, Arc<Part>>,
    /// Chains nothing uses any more, not deleted yet, and what they hold (see
    /// [`crate::render::ChainDeletion`]).
    pub leftovers: BTreeMap<String, Chain>,
}

impl Ruleset {
    /// A table with nothing in it.
    pub fn empty(table: &str) -> Ruleset {
        Ruleset {
            table: table.to_owned(),
            base: Arc::new(Part::default()),
            services: BTreeMap::new(),
            leftovers: BTreeMap::new(),
        }
    }

    /// Every part, the skeleton first.
    pub fn parts(&self) -> impl Iterator<Item = &Part> {
        std::iter::once(&*self.base).chain(self.services.values().map(|p| &**p))
    }

    /// The chain named `name`, whichever part holds it.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.parts().find_map(|p| p.chains.get(name))
    }

    /// The set or map named `name`.
    pub fn set(&self, name: &str) -> Option<&SetDef> {
        self.parts().find_map(|p| p.sets.get(name))
    }

    /// The elements of the set or map `name`, from every part (key → value; `""` for a set).
    pub fn elements(&self, name: &str) -> BTreeMap<&str, &str> {
        self.parts()
            .filter_map(|p| p.elements.get(name))
            .flat_map(|e| e.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect()
    }

    /// How many chains, rules and elements the table holds.
    pub fn size(&self) -> (usize, usize, usize) {
        let (mut chains, mut rules, mut elements) = (0, 0, 0);
        for part in self.parts() {
            chains += part.chains.len();
            rules += part.chains.values().map(|c| c.rules.len()).sum::<usize>();
            elements += part.elements.values().map(BTreeMap::len).sum::<usize>();
        }
        (chains, rules, elements)
    }
}

/// A group of chains, sets and elements that change together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    pub chains: BTreeMap<String, Chain>,
    pub sets: BTreeMap<String, SetDef>,
    /// Elements this part puts into sets and maps (its own or the skeleton's): set → key → value (`""`
    /// for plain sets). Keys are nft's text, e.g. `10.96.0.10 . udp . 53`.
    pub elements: BTreeMap<String, BTreeMap<String, String>>,
    /// UDP destinations and the endpoint addresses they are DNATed to, to delete conntrack entries that
    /// would keep sending to an endpoint that is gone. Not part of the table.
    pub udp: BTreeMap<UdpFrontend, BTreeSet<Ipv4Addr>>,
    /// The shared chains this part's elements jump to. Not part of the table.
    pub needs: BTreeSet<Shared>,
    /// Endpoints of this part that run on this node (for the hairpin pairs). Not part of the table.
    pub local_endpoints: BTreeSet<Ipv4Addr>,
    /// The destinations this part serves. Not part of the table.
    pub claims: Vec<Claim>,
}

impl Part {
    pub fn add_element(&mut self, set: &str, key: String, value: String) {
        match self.elements.get_mut(set) {
            Some(elements) => {
                elements.insert(key, value);
            }
            None => {
                self.elements
                    .insert(set.to_owned(), BTreeMap::from([(key, value)]));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.sets.is_empty() && self.elements.is_empty()
    }
}

/// A destination a Service serves; when two Services claim one, the first (by namespace and name) keeps
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Claim {
    ClusterIp(Ipv4Addr),
    Ip(Ipv4Addr, Proto, u16),
    NodePort(Proto, u16),
}

/// A chain and its rules (nft's rule text, in order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub hook: Option<Hook>,
    pub rules: Vec<String>,
}

impl Chain {
    pub fn regular(rules: Vec<String>) -> Chain {
        Chain { hook: None, rules }
    }

    pub fn base(
        kind: &'static str,
        hook: &'static str,
        priority: i32,
        rules: Vec<String>,
    ) -> Chain {
        Chain {
            hook: Some(Hook {
                kind,
                hook,
                priority,
            }),
            rules,
        }
    }
}

/// A base chain's attachment. Priorities are numbers: nft 1.0.6 rejects `dstnat` on the output hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// `nat` or `filter`.
    pub kind: &'static str,
    pub hook: &'static str,
    pub priority: i32,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type {} hook {} priority {}; policy accept;",
            self.kind, self.hook, self.priority
        )
    }
}

/// A set or map declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDef {
    pub map: bool,
    /// What goes between the braces: `type …;` or `typeof …;`, flags, timeout.
    pub spec: String,
    /// Filled by the kernel (`update @set`): its elements are never touched by a sync.
    pub dynamic: bool,
}

impl SetDef {
    pub fn set(spec: impl Into<String>) -> SetDef {
        SetDef {
            map: false,
            spec: spec.into(),
            dynamic: false,
        }
    }

    pub fn map(spec: impl Into<String>) -> SetDef {
        SetDef {
            map: true,
            spec: spec.into(),
            dynamic: false,
        }
    }

    /// nft's word for it.
    pub fn kind(&self) -> &'static str {
        if self.map { "map" } else { "set" }
    }
}

/// Where UDP traffic for a Service arrives: an address and port, or a NodePort (any local address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UdpFrontend {
    pub ip: Option<Ipv4Addr>,
    pub port: u16,
}

/// A transport protocol the proxy serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The chains every Service port with the same protocol and number of endpoints shares: they pick one of
/// the destination's entries in an endpoint map with `numgen random mod N` and DNAT to it. Keeping the
/// per-Service data in map elements rather than chains keeps a sync's cost in the kernel proportional to
/// what changed. (Maps and chains are per protocol: nft 1.0.6 cannot add a rule to a map declared with
/// `typeof … th dport` once the map is in the kernel.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shared {
    /// DNAT to one of the `n` entries of the destination (`endpoints-PROTO`, `nodeport-endpoints-PROTO`).
    Pick {
        nodeport: bool,
        proto: Proto,
        n: usize,
    },
    /// The same from the `short-circuit` maps: all endpoints of a Service whose external traffic policy is
    /// Local, for traffic from pods and from the node itself.
    PickShortCircuit {
        nodeport: bool,
        proto: Proto,
        n: usize,
    },
    /// External traffic, policy Cluster: masquerade, then pick.
    External {
        nodeport: bool,
        proto: Proto,
        n: usize,
    },
    /// External traffic, policy Local: pods and the node take any of `cluster` endpoints (the node's
    /// traffic masqueraded), the rest one of `local` (source kept), or nothing when there is none.
    ExternalLocal {
        nodeport: bool,
        proto: Proto,
        cluster: usize,
        local: usize,
    },
}

impl Shared {
    pub fn name(self) -> String {
        let np = |nodeport: bool| if nodeport { "nodeport-" } else { "" };
        match self {
            Shared::Pick { nodeport, proto, n } => format!("pick-{}{proto}-{n}", np(nodeport)),
            Shared::PickShortCircuit { nodeport, proto, n } => {
                format!("pick-{}short-circuit-{proto}-{n}", np(nodeport))
            }
            Shared::External { nodeport, proto, n } => {
                format!("external-{}{proto}-{n}", np(nodeport))
            }
            Shared::ExternalLocal {
                nodeport,
                proto,
                cluster,
                local,
            } => format!("external-{}local-{proto}-{cluster}-{local}", np(nodeport)),
        }
    }

    /// The shared chains this one jumps to.
    pub fn needs(self) -> Vec<Shared> {
        match self {
            Shared::Pick { .. } | Shared::PickShortCircuit { .. } => Vec::new(),
            Shared::External { nodeport, proto, n } => vec![Shared::Pick { nodeport, proto, n }],
            Shared::ExternalLocal {
                nodeport,
                proto,
                cluster,
                local,
            } => {
                let mut needs = vec![Shared::PickShortCircuit {
                    nodeport,
                    proto,
                    n: cluster,
                }];
                if local > 0 {
                    needs.push(Shared::Pick {
                        nodeport,
                        proto,
                        n: local,
                    });
                }
                needs
            }
        }
    }
}

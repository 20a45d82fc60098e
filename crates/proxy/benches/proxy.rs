//! The service proxy at scale, in a scratch network namespace (`gtproxybench`, deleted at the end):
//! 10,000 Services × 10 endpoints programmed from scratch, then 100 single-endpoint changes applied on
//! top (an endpoint leaves a Service, then comes back), 3 rounds. Baselines from the same run: `nft -f`
//! of the same full transaction text alone, and a from-scratch re-apply of the whole table for a few of
//! the changes (what a proxy without incremental syncs would pay per change).
//!
//! Run as root: `cargo bench -p gantry-proxy --bench proxy` (`-- --services N --rounds R` to resize;
//! `-- --kube-proxy-layout N` times only `nft -f` of kube-proxy's own layout for N Services).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark binary: failures abort it

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use gantry_client::k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use gantry_client::k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use gantry_proxy::{ConntrackTool, Nft, NftApplier, Proxier, ProxyConfig, render};

const NETNS: &str = "gtproxybench";
const ENDPOINTS: u32 = 10;
const CHANGES: usize = 100;
/// How many of the changes per round also get the from-scratch baseline.
const BASELINE_CHANGES: usize = 5;

struct Netns;

impl Netns {
    fn create() -> Netns {
        let _ = Command::new("ip").args(["netns", "del", NETNS]).output();
        let out = Command::new("ip")
            .args(["netns", "add", NETNS])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip netns add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Netns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", NETNS]).output();
    }
}

fn meta(name: String, version: u64) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(format!("ns-{}", name.len() % 7)),
        name: Some(name),
        resource_version: Some(version.to_string()),
        ..ObjectMeta::default()
    }
}

fn service(i: u32) -> Service {
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i + 1);
    Service {
        metadata: meta(format!("svc-{i}"), 1),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some(ip.to_string()),
            cluster_ips: Some(vec![ip.to_string()]),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                protocol: Some("TCP".into()),
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Service `i`'s slice with `count` endpoints; the first 100 Services have one endpoint on this node.
fn slice(i: u32, count: u32, version: u64) -> EndpointSlice {
    let mut meta = meta(format!("svc-{i}-abcde"), version);
    meta.namespace = Some(format!("ns-{}", format!("svc-{i}").len() % 7));
    meta.labels = Some(BTreeMap::from([(
        "kubernetes.io/service-name".to_owned(),
        format!("svc-{i}"),
    )]));
    EndpointSlice {
        metadata: meta,
        address_type: "IPv4".into(),
        endpoints: (0..count)
            .map(|k| {
                let ip =
                    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 160, 0, 0)) + i * ENDPOINTS + k + 1);
                Endpoint {
                    addresses: vec![ip.to_string()],
                    node_name: Some(
                        if k == 0 && i < 100 {
                            "bench-node"
                        } else {
                            "other"
                        }
                        .into(),
                    ),
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    }),
                    ..Endpoint::default()
                }
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            protocol: Some("TCP".into()),
            port: Some(8080),
            ..EndpointPort::default()
        }]),
    }
}

fn config() -> ProxyConfig {
    config_for("gtbench")
}

/// The baselines write their own table, so that the proxier's stays as it knows it.
fn config_for(table: &str) -> ProxyConfig {
    let mut config = ProxyConfig::new(
        "bench-node",
        vec![Ipv4Addr::new(192, 0, 2, 1)],
        "10.160.0.0/12".parse().unwrap(),
        "10.96.0.0/12".parse().unwrap(),
    );
    config.table = table.into();
    config
}

fn proxier() -> Proxier {
    Proxier::new(
        config(),
        Box::new(Nft {
            netns: Some(NETNS.into()),
        }),
        Box::new(ConntrackTool {
            netns: Some(NETNS.into()),
        }),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and p99 (nearest rank) in milliseconds.
fn stats(samples: &[Duration]) -> (f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = |p: f64| {
        let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        ms(sorted[i])
    };
    (rank(0.5), rank(0.99))
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// kube-proxy's own layout for `count` Services × 10 endpoints, as one transaction: a chain per Service
/// (masquerade mark, `numgen random mod N vmap` to endpoint chains) and a chain per endpoint (hairpin mark,
/// DNAT), dispatched from a `service-ips` verdict map. For comparison only.
fn kube_proxy_layout(count: u32) -> String {
    let mut out = String::from(
        "add table ip gtkp\n\
         delete table ip gtkp\n\
         add table ip gtkp\n\
         add chain ip gtkp nat-prerouting { type nat hook prerouting priority -100; policy accept; }\n\
         add chain ip gtkp services\n\
         add chain ip gtkp mark-for-masquerade\n\
         add rule ip gtkp mark-for-masquerade mark set mark or 0x4000\n\
         add map ip gtkp service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }\n\
         add rule ip gtkp nat-prerouting jump services\n\
         add rule ip gtkp services ip daddr . meta l4proto . th dport vmap @service-ips\n",
    );
    for i in 0..count {
        let cluster_ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i + 1);
        let chain = format!("service-ns/svc-{i}/tcp/http");
        out.push_str(&format!("add chain ip gtkp {chain}\n"));
        let mut targets = Vec::new();
        for k in 0..ENDPOINTS {
            let ip =
                Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 160, 0, 0)) + i * ENDPOINTS + k + 1);
            let endpoint = format!("endpoint-ns/svc-{i}/tcp/http__{ip}/8080");
            out.push_str(&format!(
                "add chain ip gtkp {endpoint}\n\
                 add rule ip gtkp {endpoint} ip saddr {ip} jump mark-for-masquerade\n\
                 add rule ip gtkp {endpoint} meta l4proto tcp dnat to {ip}:8080\n"
            ));
            targets.push(format!("{k} : goto {endpoint}"));
        }
        out.push_str(&format!(
            "add rule ip gtkp {chain} ip daddr {cluster_ip} tcp dport 80 ip saddr != 10.160.0.0/12 jump mark-for-masquerade\n\
             add rule ip gtkp {chain} numgen random mod {ENDPOINTS} vmap {{ {} }}\n\
             add element ip gtkp service-ips {{ {cluster_ip} . tcp . 80 : goto {chain} }}\n",
            targets.join(", ")
        ));
    }
    out
}

fn main() {
    let count = arg("--services", 10_000) as u32;
    let rounds = arg("--rounds", 3);
    let _netns = Netns::create();
    let kube_proxy = arg("--kube-proxy-layout", 0) as u32;
    if kube_proxy > 0 {
        let text = kube_proxy_layout(kube_proxy);
        let started = Instant::now();
        Nft {
            netns: Some(NETNS.into()),
        }
        .apply(&text)
        .unwrap();
        println!(
            "kube-proxy's layout, {kube_proxy} Services x {ENDPOINTS} endpoints ({:.1} MB): `nft -f` {:.1} s",
            text.len() as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        return;
    }
    let nft = Nft {
        netns: Some(NETNS.into()),
    };
    let services: Vec<Service> = (0..count).map(service).collect();

    let (mut full, mut full_compute, mut full_nft_alone) = (Vec::new(), Vec::new(), Vec::new());
    let (mut change, mut change_scratch, mut nft_element) = (Vec::new(), Vec::new(), Vec::new());
    let mut sizes = None;
    for round in 0..rounds {
        // Start from nothing: no table, a new proxier (an agent's first sync).
        for table in ["gtbench", "gtbase"] {
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", NETNS, "nft", "delete", "table", "ip", table,
                ])
                .output();
        }
        let mut slices: Vec<EndpointSlice> = (0..count).map(|i| slice(i, ENDPOINTS, 1)).collect();
        let mut proxier = proxier();

        let started = Instant::now();
        let report = proxier
            .sync(services.iter(), slices.iter(), std::time::Instant::now())
            .unwrap();
        full.push(started.elapsed());
        assert!(report.full);

        // The parts of it: computing the ruleset and its text, and nft on that text alone (into a table
        // of its own that does not exist yet either).
        let started = Instant::now();
        let ruleset = gantry_proxy::desired(services.iter(), slices.iter(), &config_for("gtbase"));
        let text = render::full(&ruleset).text;
        full_compute.push(started.elapsed());
        let started = Instant::now();
        nft.apply(&text).unwrap();
        full_nft_alone.push(started.elapsed());
        let (chains, rules, elements) = ruleset.size();
        sizes = Some((chains, rules, elements, text.len()));

        // 100 single-endpoint changes: an endpoint leaves a Service, then comes back.
        for j in 0..CHANGES {
            // Changes 2k and 2k+1 are to the same Service, spread over all of them.
            let i = ((round * CHANGES + j - j % 2) * 7919 % count as usize) as u32;
            let endpoints = if j % 2 == 0 { ENDPOINTS - 1 } else { ENDPOINTS };
            let version = j as u64 + 2;
            slices[i as usize] = slice(i, endpoints, version);
            // What the agent's sync loop does with a changed Service: its objects to the proxier, then a
            // sync of what changed.
            let started = Instant::now();
            let service = &services[i as usize];
            let meta = &service.metadata;
            proxier.update(
                meta.namespace.as_deref().unwrap(),
                meta.name.as_deref().unwrap(),
                Some(service),
                &[&slices[i as usize]],
            );
            let report = proxier.sync_updates(std::time::Instant::now()).unwrap();
            change.push(started.elapsed());
            assert!(
                !report.full && report.bytes > 0 && report.bytes < 4096,
                "{report:?}"
            );
            if j % (CHANGES / BASELINE_CHANGES) == 0 {
                // Baseline: the same change by computing and replacing the whole (baseline) table.
                let started = Instant::now();
                let ruleset =
                    gantry_proxy::desired(services.iter(), slices.iter(), &config_for("gtbase"));
                nft.apply(&render::full(&ruleset).text).unwrap();
                change_scratch.push(started.elapsed());
            }
        }
        // nft alone, for one element added and deleted again (a process and its view of a big table).
        for k in 0..10 {
            let element = format!("10.96.0.1 . 80 . {}", 100 + k);
            for command in ["add", "delete"] {
                let value = if command == "add" {
                    " : 10.1.1.1 . 80"
                } else {
                    ""
                };
                let started = Instant::now();
                nft.apply(&format!(
                    "{command} element ip gtbase endpoints-tcp {{ {element}{value} }}\n"
                ))
                .unwrap();
                nft_element.push(started.elapsed());
            }
        }
        eprintln!("round {} done", round + 1);
    }

    let (chains, rules, elements, bytes) = sizes.unwrap();
    println!(
        "{count} Services x {ENDPOINTS} endpoints: {chains} chains, {rules} rules, {elements} map/set elements, \
         full transaction {:.1} MB; {rounds} rounds",
        bytes as f64 / 1e6
    );
    println!("| phase | samples | median ms | p99 ms |");
    println!("|---|---|---|---|");
    let row = |name: &str, samples: &[Duration]| {
        let (median, p99) = stats(samples);
        println!("| {name} | {} | {median:.1} | {p99:.1} |", samples.len());
    };
    row("full sync (objects → table programmed)", &full);
    row(
        "  of which: ruleset + text (desired, render)",
        &full_compute,
    );
    row(
        "  baseline: `nft -f` of the same text alone",
        &full_nft_alone,
    );
    row("one endpoint change (incremental sync)", &change);
    row(
        "  of which nft alone: `nft -f` of a one-element change",
        &nft_element,
    );
    row(
        "  baseline: the same change from scratch (compute + full re-apply)",
        &change_scratch,
    );
    let (change_median, _) = stats(&change);
    let (scratch_median, _) = stats(&change_scratch);
    println!(
        "incremental vs from scratch: {:.0}x faster (median)",
        scratch_median / change_median
    );
}

//! The proxy's rules with real nft and real traffic: each test builds its own network namespaces (a "node"
//! with a bridge, "pods" running TCP and UDP echo servers, an outside "client"), programs the node's table
//! with a [`Proxier`] and connects through ClusterIPs and NodePorts. Addresses: pods 10.150.1.0/24, the
//! client's link 10.150.100.0/24, Services 10.151.0.0/16, all inside namespaces made here and deleted on
//! drop.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gantry_client::k8s_openapi::api::core::v1::{
    ClientIPConfig, Service, ServicePort, ServiceSpec, SessionAffinityConfig,
};
use gantry_client::k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use gantry_proxy::{ConntrackTool, Nft, NftApplier, Proxier, ProxyConfig};
use nix::sched::{CloneFlags, setns};

const NODE_IP: &str = "10.150.100.1";
const BRIDGE_IP: &str = "10.150.1.1";
const CLIENT_IP: &str = "10.150.100.2";
const TABLE: &str = "gtpxtest";
const WAIT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------------------
// Namespaces.
// ---------------------------------------------------------------------------------------------------------

fn sh(netns: Option<&str>, args: &[&str]) {
    let mut command = match netns {
        Some(netns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", netns]);
            c.args(args);
            c
        }
        None => {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    };
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} in {netns:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` on a thread inside network namespace `netns`: sockets it makes belong there.
fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap();
        setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// An echo server in a pod: TCP and UDP on port 8080; each answer is `NAME PEER-ADDRESS`, and TCP echoes
/// lines after that.
struct Echo {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Echo {
    fn start(netns: &str, name: &str) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let (tcp, udp) = in_netns(netns, || {
            let tcp = TcpListener::bind("0.0.0.0:8080").unwrap();
            let udp = UdpSocket::bind("0.0.0.0:8080").unwrap();
            (tcp, udp)
        });
        tcp.set_nonblocking(true).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut threads = Vec::new();
        let (name_tcp, stop_tcp) = (name.to_owned(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop_tcp.load(Ordering::SeqCst) {
                match tcp.accept() {
                    Ok((stream, peer)) => {
                        let name = name_tcp.clone();
                        std::thread::spawn(move || serve(stream, &name, peer));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => return,
                }
            }
        }));
        let (name_udp, stop_udp) = (name.to_owned(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop_udp.load(Ordering::SeqCst) {
                if let Ok((_, peer)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(format!("{name_udp} {}", peer.ip()).as_bytes(), peer);
                }
            }
        }));
        Echo { stop, threads }
    }
}

fn serve(stream: TcpStream, name: &str, peer: SocketAddr) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    if writeln!(writer, "{name} {}", peer.ip()).is_err() {
        return;
    }
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        if writeln!(writer, "{line}").is_err() {
            return;
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A node namespace with a bridge (pods' gateway 10.150.1.1) and a link to an outside client (the node is
/// 10.150.100.1 there), pods on the bridge running [`Echo`], and the node's proxier.
struct Topology {
    prefix: String,
    node: String,
    client: String,
    pods: BTreeMap<String, (String, Ipv4Addr)>,
    namespaces: Vec<String>,
    echoes: Vec<Echo>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Topology {
    /// `pods`: the names of pods to start (addresses 10.150.1.2 onwards, in order).
    fn new(pods: &[&str]) -> Topology {
        let prefix = format!(
            "gtpx{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let node = format!("{prefix}-node");
        let client = format!("{prefix}-client");
        let mut topology = Topology {
            prefix: prefix.clone(),
            node: node.clone(),
            client: client.clone(),
            pods: BTreeMap::new(),
            namespaces: Vec::new(),
            echoes: Vec::new(),
        };
        for netns in [&node, &client] {
            topology.add_netns(netns);
        }
        let n = Some(node.as_str());
        sh(n, &["ip", "link", "set", "lo", "up"]);
        sh(n, &["ip", "link", "add", "br0", "type", "bridge"]);
        sh(
            n,
            &[
                "ip",
                "addr",
                "add",
                &format!("{BRIDGE_IP}/24"),
                "dev",
                "br0",
            ],
        );
        sh(n, &["ip", "link", "set", "br0", "up"]);
        sh(n, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        sh(
            n,
            &["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"],
        );
        sh(
            n,
            &[
                "ip",
                "route",
                "add",
                "10.151.0.0/16",
                "dev",
                "br0",
                "src",
                BRIDGE_IP,
            ],
        );
        // The client's link.
        sh(
            None,
            &[
                "ip", "link", "add", "vc", "netns", &node, "type", "veth", "peer", "name", "eth0",
                "netns", &client,
            ],
        );
        sh(
            n,
            &["ip", "addr", "add", &format!("{NODE_IP}/24"), "dev", "vc"],
        );
        sh(n, &["ip", "link", "set", "vc", "up"]);
        let c = Some(client.as_str());
        sh(c, &["ip", "link", "set", "lo", "up"]);
        sh(
            c,
            &[
                "ip",
                "addr",
                "add",
                &format!("{CLIENT_IP}/24"),
                "dev",
                "eth0",
            ],
        );
        sh(c, &["ip", "link", "set", "eth0", "up"]);
        sh(c, &["ip", "route", "add", "default", "via", NODE_IP]);
        for (i, pod) in pods.iter().enumerate() {
            let netns = format!("{prefix}-{pod}");
            topology.add_netns(&netns);
            let ip = Ipv4Addr::new(10, 150, 1, 2 + i as u8);
            let veth = format!("vp{i}");
            sh(
                None,
                &[
                    "ip", "link", "add", &veth, "netns", &node, "type", "veth", "peer", "name",
                    "eth0", "netns", &netns,
                ],
            );
            sh(n, &["ip", "link", "set", &veth, "master", "br0", "up"]);
            sh(
                n,
                &[
                    "ip",
                    "link",
                    "set",
                    &veth,
                    "type",
                    "bridge_slave",
                    "hairpin",
                    "on",
                ],
            );
            let p = Some(netns.as_str());
            sh(p, &["ip", "link", "set", "lo", "up"]);
            sh(
                p,
                &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
            );
            sh(p, &["ip", "link", "set", "eth0", "up"]);
            sh(p, &["ip", "route", "add", "default", "via", BRIDGE_IP]);
            topology.echoes.push(Echo::start(&netns, pod));
            topology.pods.insert((*pod).to_owned(), (netns, ip));
        }
        topology
    }

    fn add_netns(&mut self, name: &str) {
        sh(None, &["ip", "netns", "add", name]);
        self.namespaces.push(name.to_owned());
    }

    fn pod_ip(&self, pod: &str) -> String {
        self.pods[pod].1.to_string()
    }

    fn pod_netns(&self, pod: &str) -> String {
        self.pods[pod].0.clone()
    }

    fn config(&self) -> ProxyConfig {
        let mut config = ProxyConfig::new(
            "node-a",
            vec![NODE_IP.parse().unwrap()],
            "10.150.0.0/20".parse().unwrap(),
            "10.151.0.0/16".parse().unwrap(),
        );
        config.table = TABLE.into();
        config
    }

    fn proxier(&self, config: ProxyConfig) -> Proxier {
        Proxier::new(
            config,
            Box::new(Nft {
                netns: Some(self.node.clone()),
            }),
            Box::new(ConntrackTool {
                netns: Some(self.node.clone()),
            }),
        )
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.echoes.clear();
        for netns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", netns]).output();
        }
        let _ = &self.prefix;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Objects.
// ---------------------------------------------------------------------------------------------------------

static VERSION: AtomicUsize = AtomicUsize::new(1);

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        resource_version: Some(VERSION.fetch_add(1, Ordering::SeqCst).to_string()),
        ..ObjectMeta::default()
    }
}

/// A Service with one port `port` (`protocol`) to the pods' 8080, and `node_port` when not 0.
fn service(name: &str, cluster_ip: &str, protocol: &str, port: i32, node_port: i32) -> Service {
    Service {
        metadata: meta("default", name),
        spec: Some(ServiceSpec {
            type_: Some(
                if node_port != 0 {
                    "NodePort"
                } else {
                    "ClusterIP"
                }
                .into(),
            ),
            cluster_ip: Some(cluster_ip.into()),
            cluster_ips: Some(vec![cluster_ip.into()]),
            ports: Some(vec![ServicePort {
                name: Some("p".into()),
                protocol: Some(protocol.into()),
                port,
                node_port: (node_port != 0).then_some(node_port),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The slice of Service `name`: `(address, node)` endpoints, ready, on port 8080.
fn endpoints(name: &str, protocol: &str, endpoints: &[(&str, &str)]) -> EndpointSlice {
    let mut meta = meta("default", &format!("{name}-1"));
    meta.labels = Some(BTreeMap::from([(
        "kubernetes.io/service-name".to_owned(),
        name.to_owned(),
    )]));
    EndpointSlice {
        metadata: meta,
        address_type: "IPv4".into(),
        endpoints: endpoints
            .iter()
            .map(|(ip, node)| Endpoint {
                addresses: vec![(*ip).into()],
                node_name: Some((*node).into()),
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("p".into()),
            protocol: Some(protocol.into()),
            port: Some(8080),
            ..EndpointPort::default()
        }]),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Traffic.
// ---------------------------------------------------------------------------------------------------------

/// Connects from `netns` to `to` (`ip:port`) and reads the echo server's greeting: `(pod, peer address)`.
fn ask_tcp(netns: &str, to: &str) -> std::io::Result<(String, String)> {
    let to: SocketAddr = to.parse().unwrap();
    let stream = in_netns(netns, move || TcpStream::connect_timeout(&to, WAIT))?;
    stream.set_read_timeout(Some(WAIT))?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let (pod, peer) = line.trim().split_once(' ').unwrap();
    Ok((pod.to_owned(), peer.to_owned()))
}

/// The pods that `tries` connections reached.
fn pods_reached(netns: &str, to: &str, tries: usize) -> BTreeSet<String> {
    (0..tries).map(|_| ask_tcp(netns, to).unwrap().0).collect()
}

/// A UDP socket in `netns` connected to `to`.
fn udp_socket(netns: &str, to: &str) -> UdpSocket {
    let to: SocketAddr = to.parse().unwrap();
    let socket = in_netns(netns, move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.connect(to).unwrap();
        socket
    });
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket
}

fn ask_udp(socket: &UdpSocket) -> std::io::Result<String> {
    socket.send(b"hello")?;
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn cluster_ips_and_node_ports_balance_masquerade_and_reject() {
    let t = Topology::new(&["a", "b"]);
    let mut proxier = t.proxier(t.config());
    let web = service("web", "10.151.0.10", "TCP", 80, 30080);
    let web_eps = endpoints(
        "web",
        "TCP",
        &[(&t.pod_ip("a"), "node-a"), (&t.pod_ip("b"), "node-a")],
    );
    let empty = service("empty", "10.151.0.20", "TCP", 80, 30081);
    let empty_udp = service("empty-udp", "10.151.0.21", "UDP", 53, 0);
    // SCTP (no SCTP sockets on every test host, so only the rules are checked).
    let sctp = service("sctp", "10.151.0.22", "SCTP", 7, 30082);
    let sctp_eps = endpoints("sctp", "SCTP", &[(&t.pod_ip("a"), "node-a")]);
    // An empty table first, so that everything below is added by an incremental transaction.
    assert!(proxier.sync([], [], Instant::now()).unwrap().full);
    let report = proxier
        .sync(
            [&web, &empty, &empty_udp, &sctp],
            [&web_eps, &sctp_eps],
            Instant::now(),
        )
        .unwrap();
    assert!(!report.full);

    // From outside the pod network: both pods, the client masqueraded to the node.
    assert_eq!(
        pods_reached(&t.client, "10.151.0.10:80", 24),
        set(&["a", "b"])
    );
    let (_, peer) = ask_tcp(&t.client, "10.151.0.10:80").unwrap();
    assert_eq!(peer, BRIDGE_IP);
    // NodePort on the node's address (policy Cluster: masqueraded too).
    assert_eq!(
        pods_reached(&t.client, &format!("{NODE_IP}:30080"), 24),
        set(&["a", "b"])
    );
    // From a pod: its own address is kept when it reaches the other pod.
    let from_a: BTreeSet<(String, String)> = (0..24)
        .map(|_| ask_tcp(&t.pod_netns("a"), "10.151.0.10:80").unwrap())
        .collect();
    assert!(
        from_a.contains(&("b".to_owned(), t.pod_ip("a"))),
        "{from_a:?}"
    );
    // From the node itself, to the ClusterIP and to a NodePort on its own address.
    assert_eq!(
        pods_reached(&t.node, "10.151.0.10:80", 24),
        set(&["a", "b"])
    );
    assert_eq!(
        pods_reached(&t.node, &format!("{NODE_IP}:30080"), 24),
        set(&["a", "b"])
    );

    // No endpoints: refused at once (TCP reset, ICMP port unreachable), not left to time out.
    for to in [
        "10.151.0.20:80",
        &format!("{NODE_IP}:30081"),
        "10.151.0.10:81",
    ] {
        let started = Instant::now();
        let err = ask_tcp(&t.client, to).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{to}: {err}");
        assert!(started.elapsed() < WAIT, "{to}");
    }
    let err = ask_tcp(&t.node, "10.151.0.20:80").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    let socket = udp_socket(&t.client, "10.151.0.21:53");
    let err = ask_udp(&socket).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");

    // The tools are there, and the table is what was applied.
    Nft {
        netns: Some(t.node.clone()),
    }
    .check()
    .unwrap();
    ConntrackTool {
        netns: Some(t.node.clone()),
    }
    .check()
    .unwrap();
    let listing = Nft {
        netns: Some(t.node.clone()),
    }
    .list(TABLE)
    .unwrap()
    .unwrap();
    assert!(
        listing.contains("10.151.0.10 . tcp . 80 : goto pick-tcp-2"),
        "{listing}"
    );
    let sctp_rules = listing.contains("10.151.0.22 . sctp . 7 : goto pick-sctp-1");
    assert_eq!(sctp_rules, proxier.config().sctp, "{listing}");
    assert_eq!(
        Nft {
            netns: Some(t.node.clone())
        }
        .list("gtpx-no-such-table")
        .unwrap(),
        None
    );
}

#[test]
fn udp_services_and_stale_conntrack_entries() {
    let t = Topology::new(&["a", "b"]);
    let mut proxier = t.proxier(t.config());
    let dns = service("dns", "10.151.0.53", "UDP", 53, 0);
    proxier
        .sync(
            [&dns],
            [&endpoints("dns", "UDP", &[(&t.pod_ip("a"), "node-a")])],
            Instant::now(),
        )
        .unwrap();
    let socket = udp_socket(&t.client, "10.151.0.53:53");
    assert_eq!(ask_udp(&socket).unwrap(), format!("a {BRIDGE_IP}"));
    // The endpoint moves to pod b while a still answers: the socket's conntrack entry would keep it on a;
    // the proxy deletes it.
    let report = proxier
        .sync(
            [&dns],
            [&endpoints("dns", "UDP", &[(&t.pod_ip("b"), "node-a")])],
            Instant::now(),
        )
        .unwrap();
    assert!(!report.full);
    assert_eq!(
        (report.conntrack_deletions, report.conntrack_failures),
        (1, 0)
    );
    assert_eq!(ask_udp(&socket).unwrap(), format!("b {BRIDGE_IP}"));
}

#[test]
fn session_affinity_keeps_a_client_on_one_pod() {
    let t = Topology::new(&["a", "b", "c"]);
    let mut proxier = t.proxier(t.config());
    let mut sticky = service("sticky", "10.151.0.30", "TCP", 80, 30090);
    let spec = sticky.spec.as_mut().unwrap();
    spec.session_affinity = Some("ClientIP".into());
    spec.session_affinity_config = Some(SessionAffinityConfig {
        client_ip: Some(ClientIPConfig {
            timeout_seconds: Some(60),
        }),
    });
    let eps = endpoints(
        "sticky",
        "TCP",
        &[
            (&t.pod_ip("a"), "node-a"),
            (&t.pod_ip("b"), "node-a"),
            (&t.pod_ip("c"), "node-a"),
        ],
    );
    assert!(proxier.sync([], [], Instant::now()).unwrap().full);
    assert!(
        !proxier
            .sync([&sticky], [&eps], Instant::now())
            .unwrap()
            .full
    );
    let first = pods_reached(&t.client, "10.151.0.30:80", 12);
    assert_eq!(first.len(), 1, "{first:?}");
    // The NodePort shares the chains, so the same client stays on the same pod there too.
    let by_node_port = pods_reached(&t.client, &format!("{NODE_IP}:30090"), 6);
    assert_eq!(by_node_port, first);
    // A pod as client gets its own choice, and keeps it.
    assert_eq!(
        pods_reached(&t.pod_netns("a"), "10.151.0.30:80", 8).len(),
        1
    );

    // The chosen pod leaves the Service: the client moves to another one and stays there.
    let chosen = first.iter().next().unwrap().clone();
    let rest: Vec<(String, &str)> = ["a", "b", "c"]
        .iter()
        .filter(|p| **p != chosen)
        .map(|p| (t.pod_ip(p), "node-a"))
        .collect();
    let rest: Vec<(&str, &str)> = rest.iter().map(|(ip, node)| (ip.as_str(), *node)).collect();
    let fewer = endpoints("sticky", "TCP", &rest);
    let removed = Instant::now();
    let report = proxier.sync([&sticky], [&fewer], removed).unwrap();
    assert!(!report.full);
    let now = pods_reached(&t.client, "10.151.0.30:80", 8);
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(!now.contains(&chosen));
    // The emptied endpoint chain goes a second later.
    let report = proxier
        .sync([&sticky], [&fewer], removed + Duration::from_secs(2))
        .unwrap();
    assert_eq!(report.chains_deleted, 1, "{report:?}");
    assert_eq!(pods_reached(&t.client, "10.151.0.30:80", 4), now);
}

#[test]
fn local_traffic_policies_use_this_nodes_endpoints() {
    let t = Topology::new(&["here", "there"]);
    let mut proxier = t.proxier(t.config());
    // "there" runs on another node as far as the proxy knows.
    let eps = |name: &str| {
        endpoints(
            name,
            "TCP",
            &[
                (&t.pod_ip("here"), "node-a"),
                (&t.pod_ip("there"), "node-b"),
            ],
        )
    };
    let mut local = service("local", "10.151.0.40", "TCP", 80, 30100);
    local.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    let mut internal = service("internal", "10.151.0.41", "TCP", 80, 0);
    internal.spec.as_mut().unwrap().internal_traffic_policy = Some("Local".into());
    let mut elsewhere = service("elsewhere", "10.151.0.42", "TCP", 80, 30102);
    elsewhere.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    let elsewhere_eps = endpoints("elsewhere", "TCP", &[(&t.pod_ip("there"), "node-b")]);
    assert!(proxier.sync([], [], Instant::now()).unwrap().full);
    let report = proxier
        .sync(
            [&local, &internal, &elsewhere],
            [&eps("local"), &eps("internal"), &elsewhere_eps],
            Instant::now(),
        )
        .unwrap();
    assert!(!report.full);

    // External traffic, policy Local: this node's pod only, the client's address kept.
    let node_port = format!("{NODE_IP}:30100");
    assert_eq!(pods_reached(&t.client, &node_port, 12), set(&["here"]));
    assert_eq!(ask_tcp(&t.client, &node_port).unwrap().1, CLIENT_IP);
    // Its ClusterIP keeps policy Cluster.
    assert_eq!(
        pods_reached(&t.client, "10.151.0.40:80", 24),
        set(&["here", "there"])
    );
    // Internal traffic policy Local.
    assert_eq!(
        pods_reached(&t.client, "10.151.0.41:80", 12),
        set(&["here"])
    );
    // No local endpoint: outside traffic is dropped (it times out) ...
    let err = ask_tcp(&t.client, &format!("{NODE_IP}:30102")).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
        "{err}"
    );
    // ... but pods still reach the Service through it (short-circuited to any endpoint).
    assert_eq!(
        ask_tcp(&t.pod_netns("here"), &format!("{NODE_IP}:30102"))
            .unwrap()
            .0,
        "there"
    );
}

#[test]
fn a_pod_reaches_itself_through_its_service() {
    let t = Topology::new(&["a"]);
    let mut proxier = t.proxier(t.config());
    let svc = service("self", "10.151.0.50", "TCP", 80, 0);
    proxier
        .sync(
            [&svc],
            [&endpoints("self", "TCP", &[(&t.pod_ip("a"), "node-a")])],
            Instant::now(),
        )
        .unwrap();
    // Hairpin: masqueraded (the bridge port has hairpin on), so the reply comes back through the node.
    assert_eq!(
        ask_tcp(&t.pod_netns("a"), "10.151.0.50:80").unwrap(),
        ("a".to_owned(), BRIDGE_IP.to_owned())
    );
}

#[test]
fn changes_and_restarts_keep_established_connections() {
    let t = Topology::new(&["a", "b"]);
    let mut proxier = t.proxier(t.config());
    let svc = service("web", "10.151.0.60", "TCP", 80, 0);
    proxier
        .sync(
            [&svc],
            [&endpoints("web", "TCP", &[(&t.pod_ip("a"), "node-a")])],
            Instant::now(),
        )
        .unwrap();
    let to: SocketAddr = "10.151.0.60:80".parse().unwrap();
    let stream = in_netns(&t.client, move || TcpStream::connect_timeout(&to, WAIT)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("a "), "{line}");
    let mut echo = |text: &str| {
        writeln!(writer, "{text}").unwrap();
        let mut back = String::new();
        reader.read_line(&mut back).unwrap();
        assert_eq!(back.trim(), text);
    };
    echo("before");

    // Changes: b joins (a new shared chain for two endpoints), then a leaves the Service (it keeps
    // running).
    let both = endpoints(
        "web",
        "TCP",
        &[(&t.pod_ip("a"), "node-a"), (&t.pod_ip("b"), "node-a")],
    );
    let report = proxier.sync([&svc], [&both], Instant::now()).unwrap();
    assert!(!report.full && report.chains_added == 1, "{report:?}");
    echo("after a change");
    let report = proxier
        .sync(
            [&svc],
            [&endpoints("web", "TCP", &[(&t.pod_ip("b"), "node-a")])],
            Instant::now(),
        )
        .unwrap();
    assert!(!report.full && report.bytes > 0);
    echo("after another change");
    assert_eq!(pods_reached(&t.client, "10.151.0.60:80", 6), set(&["b"]));

    // An agent restart: a new proxier replaces the whole table in one transaction.
    let mut restarted = t.proxier(t.config());
    let report = restarted
        .sync(
            [&svc],
            [&endpoints(
                "web",
                "TCP",
                &[(&t.pod_ip("a"), "node-a"), (&t.pod_ip("b"), "node-a")],
            )],
            Instant::now(),
        )
        .unwrap();
    assert!(report.full);
    echo("after a restart");
}

#[test]
fn pod_egress_is_masqueraded_behind_the_node() {
    let t = Topology::new(&["a", "b"]);
    // An outside server on the client.
    let outside = Echo::start(&t.client, "outside");
    let mut proxier = t.proxier(t.config());
    proxier.sync([], [], Instant::now()).unwrap();
    let to_outside = format!("{CLIENT_IP}:8080");
    assert_eq!(
        ask_tcp(&t.pod_netns("a"), &to_outside).unwrap(),
        ("outside".to_owned(), NODE_IP.to_owned())
    );
    // Pod to pod keeps its address.
    assert_eq!(
        ask_tcp(&t.pod_netns("a"), &format!("{}:8080", t.pod_ip("b"))).unwrap(),
        ("b".to_owned(), t.pod_ip("a"))
    );
    // Turned off: the pod's own address goes out.
    let mut config = t.config();
    config.masquerade_egress = false;
    let mut proxier = t.proxier(config);
    proxier.sync([], [], Instant::now()).unwrap();
    assert_eq!(
        ask_tcp(&t.pod_netns("a"), &to_outside).unwrap(),
        ("outside".to_owned(), t.pod_ip("a"))
    );
    drop(outside);
}

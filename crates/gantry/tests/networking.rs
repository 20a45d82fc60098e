//! End to end on several machines (network namespaces on one LAN bridge, each running `gantry agent` that
//! joined the test's `gantry server`): every Node gets its own pod CIDR from the server; pods reach pods on
//! other machines over the VXLAN overlay (or plain routes) and see each other's true addresses (TCP, and UDP
//! pod to pod and to the other machine's DNS server on its pods' gateway); pods reach
//! addresses outside the pod network masqueraded behind their node; a machine cut off and back; routes follow
//! the Nodes that come and go. Real kubectl 1.33, real containers.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::cluster::{Cluster, build_udp_echo, client_pod, udp_pod, web_pod};
use support::machine::Machine;
use support::node::KUBECTL;
use support::ok;

/// The overlay's routes on a machine (`ip route` lines tagged with the overlay's protocol).
fn overlay_routes(machine: &Machine) -> String {
    let out = machine.exec(&["ip", "-4", "route", "show", "proto", "151"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn until(limit: Duration, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "never {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pods_reach_pods_on_other_machines_over_vxlan_and_the_outside_masqueraded() {
    let mut cluster = Cluster::start(110, "10.210.0.0/16", &[], &["net-a", "net-b"]);
    let (cidr_a, cidr_b) = (cluster.pod_cidr("net-a"), cluster.pod_cidr("net-b"));
    for cidr in [&cidr_a, &cidr_b] {
        assert!(
            cidr.starts_with("10.210.") && cidr.ends_with(".0/24"),
            "pod CIDR {cidr:?} is not a /24 of the cluster CIDR"
        );
    }
    assert_ne!(cidr_a, cidr_b);

    cluster.create("web", &web_pod("web", "net-b"));
    cluster.create("client", &client_pod("client", "net-a"));
    let web_ip = cluster.running("web");
    let client_ip = cluster.running("client");
    assert!(
        web_ip.starts_with(cidr_b.trim_end_matches("0/24")),
        "{web_ip} not in {cidr_b}"
    );
    assert!(
        client_ip.starts_with(cidr_a.trim_end_matches("0/24")),
        "{client_ip} not in {cidr_a}"
    );

    // Across machines, and the server pod sees the client pod's own address.
    let seen = cluster.client_address("client", &web_ip);
    assert_eq!(
        seen, client_ip,
        "the source address was not kept across machines"
    );
    assert_eq!(
        cluster
            .fetch("client", &format!("http://{web_ip}:8080/"))
            .as_deref(),
        Some("web")
    );
    // Through a ClusterIP too (agents started without the server's --cluster-cidr: the proxy counts its own
    // node's pods as local traffic and does not masquerade them).
    cluster.create(
        "web-service",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 8080}]\n",
    );
    let service_ip = cluster.get(&["get", "service", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        cluster.client_address("client", &service_ip),
        client_ip,
        "the source address was not kept through the ClusterIP"
    );

    // UDP pod to pod across machines: the server pod answers with the source address it saw.
    let udp_echo = build_udp_echo(cluster.server.dir.path());
    let serve = r#"[/udp-echo, serve, "9000"]"#;
    cluster.create(
        "udp-server",
        &udp_pod("udp-server", "net-b", &udp_echo, serve),
    );
    let wait = r#"[sleep, "3600"]"#;
    cluster.create(
        "udp-client",
        &udp_pod("udp-client", "net-a", &udp_echo, wait),
    );
    let udp_server_ip = cluster.running("udp-server");
    let udp_client_ip = cluster.running("udp-client");
    let seen = cluster.exec("udp-client", &["/udp-echo", "ask", &udp_server_ip, "9000"]);
    assert_eq!(
        seen.as_deref(),
        Some(udp_client_ip.as_str()),
        "UDP across machines did not arrive with the client pod's address"
    );

    // UDP across machines: net-b's DNS server, on its pods' gateway, asked by a pod on net-a.
    let gateway_b = format!("{}1", cidr_b.trim_end_matches("0/24"));
    let answer = cluster
        .exec(
            "client",
            &[
                "nslookup",
                "kubernetes.default.svc.cluster.local",
                &gateway_b,
            ],
        )
        .unwrap_or_default();
    assert!(answer.contains("10.43.0.1"), "{answer}");

    // Out of the pod network (to the host, outside every pod CIDR): masqueraded behind net-a's address.
    let outside = TcpListener::bind(format!("{}:0", cluster.lan.tls_san())).unwrap();
    let port = outside.local_addr().unwrap().port();
    let accepted = std::thread::spawn(move || {
        let (mut stream, peer) = outside.accept().unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\noutside");
        peer.ip().to_string()
    });
    let url = format!("http://{}:{port}/", cluster.lan.tls_san());
    assert_eq!(cluster.fetch("client", &url).as_deref(), Some("outside"));
    assert_eq!(accepted.join().unwrap(), cluster.machines[0].1.ip());

    // net-b cut off: nothing gets through; back: it does again.
    cluster.machines[1].1.set_link(false);
    assert_eq!(
        cluster.fetch("client", &format!("http://{web_ip}:8080/")),
        None
    );
    cluster.machines[1].1.set_link(true);
    let back = cluster.fetch_within(
        Duration::from_secs(15),
        "client",
        &format!("http://{web_ip}:8080/"),
    );
    assert_eq!(back, "web");

    // A machine that joins gets a route on the others; one that leaves takes it away.
    let third = cluster.lan.machine(4);
    let agent = third.join(&cluster.server, "net-c");
    let cidr_c = cluster.pod_cidr("net-c");
    assert!(cidr_c.starts_with("10.210."), "{cidr_c:?}");
    let on_a = &cluster.machines[0].1;
    until(
        Duration::from_secs(3),
        "routed net-c's pods from net-a",
        || overlay_routes(on_a).contains(&cidr_c),
    );
    cluster.machines.push((agent, third));
    let (mut gone, gone_machine) = cluster.machines.remove(1);
    gone.stop();
    ok(KUBECTL, &cluster.server, &["delete", "node", "net-b"]);
    until(
        Duration::from_secs(3),
        "dropped net-b's route on net-a",
        || !overlay_routes(&cluster.machines[0].1).contains(&cidr_b),
    );
    drop((gone, gone_machine));
}

#[test]
fn pods_reach_pods_on_other_machines_over_plain_routes() {
    let cluster = Cluster::start(
        111,
        "10.211.0.0/16",
        &["--pod-network", "host-gw"],
        &["gw-a", "gw-b"],
    );
    cluster.create("web", &web_pod("web", "gw-b"));
    cluster.create("client", &client_pod("client", "gw-a"));
    let web_ip = cluster.running("web");
    let client_ip = cluster.running("client");
    assert_eq!(cluster.client_address("client", &web_ip), client_ip);
    // Plain routes: via the other machine's own address, no VXLAN device.
    let routes = overlay_routes(&cluster.machines[0].1);
    assert!(
        routes.contains(&format!("via {}", cluster.machines[1].1.ip())),
        "{routes}"
    );
    let links = cluster.machines[0]
        .1
        .exec(&["ip", "link", "show", "gantry.1"]);
    assert!(!links.status.success(), "host-gw made a VXLAN device");
}

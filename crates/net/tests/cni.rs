//! The default network with the real CNI plugins (`containernetworking-plugins`, as root): a pod network
//! namespace gets an address from the pod CIDR on the bridge, reaches the gateway, maps a host port, and
//! everything goes again on `DEL`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::Command;

use gantry_net::{PortMapping, default_network, loopback};

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A named network namespace and a bridge, removed on drop.
struct Fixture {
    netns: String,
    bridge: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        run(&["ip", "netns", "del", &self.netns]);
        run(&["ip", "link", "del", &self.bridge]);
    }
}

#[tokio::test]
async fn a_pod_namespace_joins_the_bridge_network_and_leaves_it() {
    let id = std::process::id() % 10_000;
    let fixture = Fixture {
        netns: format!("gantry-cni-{id}"),
        bridge: format!("gcni{id}"),
    };
    let (ok, text) = run(&["ip", "netns", "add", &fixture.netns]);
    assert!(ok, "{text}");
    let netns = PathBuf::from(format!("/run/netns/{}", fixture.netns));
    let state = tempfile::tempdir().unwrap();
    let subnet = format!("10.{}.{}.0/24", 200 + id % 50, id % 250);
    let network = default_network(&subnet, &fixture.bridge, 1450, state.path());
    let ports = [PortMapping {
        host_port: 20_000 + (id % 10_000) as u16,
        container_port: 80,
        protocol: "tcp".into(),
        host_ip: String::new(),
    }];

    loopback().add("c1", &netns, "lo", &[]).await.unwrap();
    let attachment = network.add("c1", &netns, "eth0", &ports).await.unwrap();
    let ip = attachment.ips[0].clone();
    let prefix = subnet.trim_end_matches("0/24");
    assert!(ip.starts_with(prefix), "{ip} not in {subnet}");
    let (ok, addresses) = run(&["ip", "-n", &fixture.netns, "-4", "addr", "show", "eth0"]);
    assert!(ok && addresses.contains(&ip), "{addresses}");
    assert!(addresses.contains("mtu 1450"), "{addresses}");
    let (_, lo) = run(&["ip", "-n", &fixture.netns, "link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}");
    // The bridge is the gateway, with hairpin on the pod's port.
    let gateway = format!("{prefix}1");
    let (_, bridge) = run(&["ip", "-4", "addr", "show", &fixture.bridge]);
    assert!(bridge.contains(&gateway), "{bridge}");
    let (_, route) = run(&["ip", "-n", &fixture.netns, "route"]);
    assert!(route.contains(&format!("default via {gateway}")), "{route}");
    let (_, links) = run(&["bridge", "-d", "link", "show"]);
    assert!(links.contains("hairpin on"), "{links}");

    // DEL removes the interface and the address lease; a second DEL is fine.
    network.del("c1", &netns, "eth0", &ports).await.unwrap();
    let (_, gone) = run(&["ip", "-n", &fixture.netns, "link", "show", "eth0"]);
    assert!(gone.contains("does not exist"), "{gone}");
    network.del("c1", &netns, "eth0", &ports).await.unwrap();
    let leases = std::fs::read_dir(state.path().join("ipam/gantry")).unwrap();
    assert!(
        leases
            .filter_map(Result::ok)
            .all(|e| !e.file_name().to_string_lossy().starts_with(prefix)),
        "the address lease was not released"
    );
}

#[tokio::test]
async fn a_missing_plugin_names_the_package() {
    let mut network = loopback();
    network.plugin_dir = PathBuf::from("/nonexistent");
    let err = network
        .add("c", &PathBuf::from("/proc/self/ns/net"), "lo", &[])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("containernetworking-plugins"),
        "{err}"
    );
}

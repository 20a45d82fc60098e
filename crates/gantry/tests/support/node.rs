//! A server running its node agent, for the tests that run pods as real containers, and what they ask of
//! their pods.

#![allow(clippy::disallowed_methods)] // test support: blocking sleeps are fine here

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Server, ok};

pub(crate) const KUBECTL: &str = "1.33";
/// The busybox test image every node has (imported, pulled with `imagePullPolicy: Never`).
pub(crate) const IMAGE: &str = "gantry.test/busybox:1";

/// A server with its node agent and what its pods leave behind if a test fails before deleting them: their
/// containers, pause processes and mounts go, and the bridge, when the test ends.
pub(crate) struct Node {
    pub(crate) server: Server,
    bridge: String,
    /// The agent's VXLAN id and nftables table: its own, since tests share the host's network namespace.
    vxlan_id: String,
    nft_table: String,
}

impl std::ops::Deref for Node {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The agent first: running, it could mount again what is being removed.
        self.server.kill();
        remove_leftovers(&self.server.dir.path().join("agent"));
        let vxlan = format!("gantry.{}", self.vxlan_id);
        for device in [&self.bridge, &vxlan] {
            let _ = Command::new("ip")
                .args(["link", "del", device])
                .stderr(std::process::Stdio::null())
                .status();
        }
        for table in [self.nft_table.clone(), format!("{}-node", self.nft_table)] {
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", &table])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Removes what the pods of the agent whose data directory is `agent` leave behind when a test fails before
/// deleting them: their containers, pause processes and mounts.
pub(crate) fn remove_leftovers(agent: &std::path::Path) {
    let root = agent.join("runtime");
    for runtime in ["runc", "crun"] {
        let Ok(out) = Command::new(runtime)
            .arg("--root")
            .arg(&root)
            .args(["list", "-q"])
            .output()
        else {
            continue;
        };
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = Command::new(runtime)
                .arg("--root")
                .arg(&root)
                .args(["delete", "-f", id])
                .status();
        }
    }
    for sandbox in std::fs::read_dir(agent.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(pid) = std::fs::read_to_string(sandbox.path().join("sandbox/pause.pid")) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for mount in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
        if mount.starts_with(&*agent.to_string_lossy()) {
            let _ = Command::new("umount").args(["-l", mount]).status();
        }
    }
    // The pods' cgroups (in every hierarchy, v1 or v2), deepest first, once their killed processes are gone.
    let pods: Vec<String> = std::fs::read_dir(agent.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|pod| format!("gantry/pod{}", pod.file_name().to_string_lossy()))
        .collect();
    for hierarchy in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let roots = std::fs::read_dir(hierarchy).into_iter().flatten().flatten();
        let controllers = roots.map(|r| r.path()).chain([hierarchy.into()]);
        for controller in controllers {
            for pod in &pods {
                let cgroup = controller.join(pod);
                for _ in 0..20 {
                    let _ = Command::new("find")
                        .arg(&cgroup)
                        .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", "+"])
                        .stderr(std::process::Stdio::null())
                        .status();
                    if !cgroup.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// A server with its node agent, pods from `pod_cidr` on their own bridge `bridge` (tests run side by side),
/// and the busybox test image imported.
pub(crate) fn server(pod_cidr: &str, bridge: &str) -> Node {
    server_with(pod_cidr, bridge, &[])
}

/// [`server`] with more `gantry server` flags.
pub(crate) fn server_with(pod_cidr: &str, bridge: &str, flags: &[&str]) -> Node {
    server_listening(false, pod_cidr, bridge, flags)
}

/// [`server_with`], listening on every interface so that agents on [`Machine`](super::machine::Machine)s
/// reach it.
pub(crate) fn server_for_machines(pod_cidr: &str, bridge: &str, flags: &[&str]) -> Node {
    server_listening(true, pod_cidr, bridge, flags)
}

fn server_listening(everywhere: bool, pod_cidr: &str, bridge: &str, flags: &[&str]) -> Node {
    let endpoint_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    // The endpoint's port is free on this host: as VXLAN id and table name it is as unique.
    let nft_table = format!("gantry-test-{endpoint_port}");
    let mut all = vec![
        "--pod-cidr",
        pod_cidr,
        "--cni-bridge",
        bridge,
        "--node-endpoint-port",
        &endpoint_port,
        "--vxlan-id",
        &endpoint_port,
        "--nft-table",
        &nft_table,
    ];
    all.extend_from_slice(flags);
    let server = if everywhere {
        Server::start_with_agent_on_all_interfaces(&all)
    } else {
        Server::start_with_agent_flags(&all)
    };
    // From here on, the guard cleans up whatever the test leaves.
    let node = Node {
        server,
        bridge: bridge.to_owned(),
        vxlan_id: endpoint_port.clone(),
        nft_table: nft_table.clone(),
    };
    let layout = node.dir.path().join("busybox-layout");
    gantry_images::testimage::busybox(&layout, IMAGE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["image", "import"])
        .arg(&layout)
        .arg("--data-dir")
        .arg(node.dir.path().join("agent"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    node
}

/// The name the server's node agent registers (the host's, lowercased).
pub(crate) fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_ascii_lowercase()
}

pub(crate) fn pod(server: &Server, name: &str) -> Value {
    serde_json::from_str(&ok(KUBECTL, server, &["get", "pod", name, "-o", "json"])).unwrap()
}

/// The pod once `check` holds (within `limit`).
pub(crate) fn wait_for(
    server: &Server,
    name: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let current = pod(server, name);
        if check(&current) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} never got there: {:#}",
            current["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status of the pod's container `name`.
pub(crate) fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

/// `kubectl describe pod NAME` once its output has every one of `wanted` (within `limit`).
pub(crate) fn describe_until(
    server: &Server,
    name: &str,
    limit: Duration,
    wanted: &[&str],
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = ok(KUBECTL, server, &["describe", "pod", name]);
        if wanted.iter().all(|w| text.contains(w)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "describe pod {name} lacks some of {wanted:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

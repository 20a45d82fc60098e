//! End to end: node agents register their Nodes and keep Leases — the one `gantry server` runs for its own
//! machine, and a second one joining with `gantry agent` and a token from `gantry token create`.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, kubectl, ok};

const KUBECTL: &str = "1.33";

/// Kills the agent process on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(server: &Server, token: &str, name: &str) -> Agent {
    let data = server.dir.path().join(format!("agent-{name}"));
    Agent(
        Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args([
                "agent",
                "--server",
                &server.url(""),
                "--token",
                token,
                "--node-name",
                name,
            ])
            .args(["--node-ip", "127.0.0.2", "--ca-file"])
            .arg(server.dir.path().join("tls/ca.crt"))
            .arg("--data-dir")
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The Node called `name` once it exists (within 10 s).
fn node(server: &Server, name: &str) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let out = kubectl(KUBECTL, server, &["get", "node", name, "-o", "json"]);
        if out.status.success() {
            return Some(serde_json::from_slice(&out.stdout).unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn condition<'a>(node: &'a Value, type_: &str) -> &'a Value {
    node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
}

#[test]
fn agents_register_nodes_and_renew_leases() {
    let server = Server::start_with_agent();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_ascii_lowercase();
    let own = node(&server, &hostname).expect("the server's own node registers");
    assert_eq!(condition(&own, "Ready")["status"], "True");
    assert!(
        own["status"]["capacity"]["cpu"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    assert!(
        own["status"]["capacity"]["memory"]
            .as_str()
            .unwrap()
            .ends_with("Ki")
    );
    assert_eq!(
        own["status"]["nodeInfo"]["kubeletVersion"],
        "v1.33.0-gantry"
    );
    assert_eq!(
        own["metadata"]["labels"]["kubernetes.io/hostname"],
        hostname.as_str()
    );
    let lease: Value = serde_json::from_str(&ok(
        KUBECTL,
        &server,
        &[
            "get",
            "lease",
            &hostname,
            "-n",
            "kube-node-lease",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], hostname.as_str());
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    assert_eq!(
        lease["metadata"]["ownerReferences"][0]["uid"],
        own["metadata"]["uid"]
    );

    // A second machine joins with a token made while the server runs.
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["token", "create", "--data-dir"])
        .arg(server.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let _second = agent(&server, &token, "second");
    let second = node(&server, "second").expect("the joining node registers");
    assert_eq!(condition(&second, "Ready")["status"], "True");
    assert_eq!(second["status"]["addresses"][0]["address"], "127.0.0.2");
    ok(
        KUBECTL,
        &server,
        &["get", "lease", "second", "-n", "kube-node-lease"],
    );

    // A wrong token registers nothing.
    let _intruder = agent(&server, "K10notatoken", "intruder");
    std::thread::sleep(Duration::from_secs(2));
    let out = kubectl(KUBECTL, &server, &["get", "node", "intruder"]);
    assert!(!out.status.success());
    let nodes = ok(KUBECTL, &server, &["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.lines().count(), 2, "{nodes}");
}

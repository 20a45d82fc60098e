//! End to end: a node whose agent stops answering is marked Unknown and tainted, its pods are evicted once
//! their tolerations run out and replaced on the other node by their ReplicaSet; back, it is Ready and
//! untainted again and the evicted pods' containers go. Two real nodes: the server's own agent and one on a
//! network-namespace "machine"; real kubectl 1.33, real containers.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::machine::Machine;
use support::node::{IMAGE, KUBECTL, node_name, server_for_machines};
use support::{Server, ok, write};

fn get(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&ok(KUBECTL, server, &all)).unwrap()
}

/// Polls `read` until `check` holds of what it returns (within `limit`).
fn until<T: std::fmt::Debug>(
    limit: Duration,
    what: &str,
    read: impl Fn() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let value = read();
        if check(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "never {what}: {value:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ready(node: &Value) -> String {
    node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"].as_str().unwrap().to_owned())
        .unwrap()
}

fn taints(node: &Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}:{}",
                t["key"].as_str().unwrap(),
                t["effect"].as_str().unwrap()
            )
        })
        .collect()
}

fn pods(server: &Server) -> Vec<Value> {
    get(server, &["get", "pods", "-l", "app=survivor"])["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn on(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or_default()
}

fn live_running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod["metadata"]["deletionTimestamp"].is_null()
}

#[test]
fn a_node_that_stops_answering_has_its_pods_replaced_elsewhere() {
    let machine = Machine::create(68);
    let server = server_for_machines(
        "10.69.0.0/24",
        "gtest69",
        &[
            "--tls-san",
            &machine.tls_san(),
            "--node-monitor-grace-period",
            "4s",
            "--default-unreachable-toleration-seconds",
            "3",
            // Leases renewed every half second: well within the grace period.
            "--node-lease-duration-seconds",
            "2",
        ],
    );
    let own = node_name();
    until(
        Duration::from_secs(30),
        "the server's own node registered",
        || {
            support::kubectl(KUBECTL, &server, &["get", "node", &own])
                .status
                .success()
        },
        |registered| *registered,
    );
    let mut agent = machine.join_with(
        &server,
        "machine68",
        &["--node-lease-duration-seconds", "2"],
    );
    // Every node has a default ServiceAccount, and pods run as it.
    until(
        Duration::from_secs(10),
        "a default ServiceAccount in default",
        || {
            support::kubectl(KUBECTL, &server, &["get", "sa", "default"])
                .status
                .success()
        },
        |found| *found,
    );

    // The pods land on the machine: the server's own node is cordoned meanwhile.
    ok(KUBECTL, &server, &["cordon", &own]);
    let manifest = format!(
        r#"apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: survivor}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: survivor}}}}
  template:
    metadata: {{labels: {{app: survivor}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: main, image: {IMAGE}, imagePullPolicy: Never, command: [sleep, "3600"]}}
"#
    );
    let path = write(server.dir.path(), "survivor.yaml", &manifest);
    ok(KUBECTL, &server, &["apply", "-f", path.to_str().unwrap()]);
    let first = until(
        Duration::from_secs(60),
        "2 pods running on the machine",
        || pods(&server),
        |p| p.len() == 2 && p.iter().all(|p| live_running(p) && on(p) == "machine68"),
    );
    let pod = &first[0];
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    let tolerations = pod["spec"]["tolerations"].to_string();
    assert!(
        tolerations.contains(
            r#""key":"node.kubernetes.io/unreachable","operator":"Exists","tolerationSeconds":3"#
        ),
        "{tolerations}"
    );
    ok(KUBECTL, &server, &["uncordon", &own]);

    // The machine goes away: within the grace period (4 s) and a bit, its node is Unknown and tainted.
    let stopped = Instant::now();
    agent.stop();
    let node = until(
        Duration::from_secs(20),
        "the silent node marked Unknown and tainted",
        || get(&server, &["get", "node", "machine68"]),
        |n| ready(n) == "Unknown" && taints(n).len() == 2,
    );
    assert!(
        stopped.elapsed() >= Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(
        taints(&node),
        [
            "node.kubernetes.io/unreachable:NoSchedule",
            "node.kubernetes.io/unreachable:NoExecute"
        ]
    );
    let nodes = ok(KUBECTL, &server, &["get", "nodes"]);
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("machine68") && l.contains("NotReady")),
        "{nodes}"
    );

    // After their 3 s toleration the pods are evicted (Terminating: their node cannot confirm) and
    // replaced on the server's own node.
    let names: Vec<String> = first
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    let after = until(
        Duration::from_secs(60),
        "the pods replaced on the other node",
        || pods(&server),
        |p| p.iter().filter(|p| live_running(p) && on(p) == own).count() == 2,
    );
    for name in &names {
        let evicted = after
            .iter()
            .find(|p| p["metadata"]["name"] == name.as_str())
            .expect("an evicted pod stays until its node confirms");
        assert!(!evicted["metadata"]["deletionTimestamp"].is_null());
        let conditions = evicted["status"]["conditions"].to_string();
        assert!(
            conditions.contains("DeletionByTaintManager"),
            "{conditions}"
        );
        assert!(
            conditions.contains(r#""status":"False","type":"Ready""#),
            "{conditions}"
        );
    }
    let events = ok(KUBECTL, &server, &["get", "events", "-A"]);
    assert!(events.contains("TaintManagerEviction"), "{events}");
    assert!(events.contains("NodeNotReady"), "{events}");

    // Back: Ready, untainted, and the evicted pods' containers stopped and gone.
    agent.start();
    until(
        Duration::from_secs(30),
        "the machine Ready and untainted again",
        || get(&server, &["get", "node", "machine68"]),
        |n| ready(n) == "True" && taints(n).is_empty(),
    );
    let last = until(
        Duration::from_secs(60),
        "the evicted pods gone",
        || pods(&server),
        |p| p.len() == 2,
    );
    assert!(
        last.iter().all(|p| live_running(p) && on(p) == own),
        "{last:#?}"
    );
}

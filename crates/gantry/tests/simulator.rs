//! End to end: `gantry agent --simulate N` registers N nodes that keep their Leases, and the pods the
//! scheduler binds to them are reported Running and Ready; deleted pods go at once. Real `gantry server`
//! (without its own agent), real kubectl 1.33.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::time::Duration;

use serde_json::Value;
use support::simulator::{get, simulate, until};
use support::{Server, ok, write};

const KUBECTL: &str = "1.33";

#[test]
fn simulated_nodes_run_the_pods_bound_to_them() {
    let server = Server::start();
    let _simulator = simulate(&server, 3, &["--simulate-max-pods", "4"]);
    // Leases are renewed spread over their renewal period (10 s by default).
    until(Duration::from_secs(15), "the last node's Lease", || {
        let out = support::kubectl(
            KUBECTL,
            &server,
            &[
                "get",
                "lease",
                "-n",
                "kube-node-lease",
                "sim-2",
                "-o",
                "json",
            ],
        );
        let lease: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (lease["spec"]["holderIdentity"] == "sim-2")
            .then_some(())
            .ok_or(format!("{out:?}"))
    });

    // A node marked Unknown (as the node lifecycle controller does when Leases stop) posts its status again.
    ok(
        KUBECTL,
        &server,
        &[
            "patch",
            "node",
            "sim-1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Ready","status":"Unknown","reason":"Test"}]}}"#,
        ],
    );
    until(Duration::from_secs(10), "sim-1 Ready again", || {
        let node = get(&server, &["get", "node", "sim-1"]);
        let conditions = node["status"]["conditions"].to_string();
        conditions
            .contains(r#""status":"True","type":"Ready""#)
            .then_some(())
            .ok_or(conditions)
    });

    // 10 replicas on 3 nodes of 4 pods each: spread over all three, each Running with an address.
    let manifest = r#"apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: many}
spec:
  replicas: 10
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec:
      containers: [{name: main, image: nothing.invalid/never:pulled}]
"#;
    let path = write(server.dir.path(), "many.yaml", manifest);
    ok(KUBECTL, &server, &["apply", "-f", path.to_str().unwrap()]);
    until(Duration::from_secs(30), "10 running pods", || {
        let pods = get(&server, &["get", "pods", "-l", "app=many"]);
        let items = pods["items"].as_array().unwrap();
        let running = items
            .iter()
            .filter(|p| p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string())
            .count();
        (running == 10)
            .then_some(())
            .ok_or(format!("{running} running"))
    });
    let pods = get(&server, &["get", "pods", "-l", "app=many"]);
    let mut per_node = std::collections::HashMap::new();
    for pod in pods["items"].as_array().unwrap() {
        *per_node
            .entry(pod["spec"]["nodeName"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    assert!(per_node.values().all(|n| *n <= 4), "{per_node:?}");
    let rs = get(&server, &["get", "rs", "many"]);
    assert_eq!(rs["status"]["readyReplicas"], 10);

    // Deleted with their ReplicaSet: the simulated nodes remove them at once.
    ok(KUBECTL, &server, &["delete", "rs", "many", "--timeout=30s"]);
    until(Duration::from_secs(20), "the pods gone", || {
        let left = get(&server, &["get", "pods", "-l", "app=many"])["items"]
            .as_array()
            .unwrap()
            .len();
        (left == 0).then_some(()).ok_or(format!("{left} left"))
    });
}

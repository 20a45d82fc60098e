//! End to end: the scheduler in `gantry server` places pods that name no node on the server's own node
//! (where its agent runs them as real containers), and says with a PodScheduled=False condition and a
//! FailedScheduling event why it cannot; a change to the node (a label, a taint removed) gets them placed.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::node::{IMAGE, KUBECTL, describe_until, node_name, server, wait_for};
use support::{Server, kubectl, ok, write};

/// A busybox pod that names no node; `extra` is more of its spec (indented for it).
fn create_pod(server: &Server, name: &str, extra: &str) {
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sleep, "3600"]
{extra}"#
    );
    let path = write(server.dir.path(), &format!("{name}.yaml"), &manifest);
    ok(KUBECTL, server, &["create", "-f", path.to_str().unwrap()]);
}

fn scheduled_condition(pod: &Value) -> Value {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
        .cloned()
        .unwrap_or_default()
}

/// The pod once the scheduler has said it cannot place it; its PodScheduled message.
fn unschedulable(server: &Server, name: &str) -> String {
    let pod = wait_for(server, name, Duration::from_secs(20), |p| {
        scheduled_condition(p)["reason"] == "Unschedulable"
    });
    let condition = scheduled_condition(&pod);
    assert_eq!(condition["status"], "False", "{condition:#}");
    assert_eq!(pod["status"]["phase"], "Pending");
    assert!(pod["spec"]["nodeName"].is_null(), "{:#}", pod["spec"]);
    condition["message"].as_str().unwrap().to_owned()
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or_default()
}

#[test]
fn the_scheduler_places_pods_and_says_why_it_cannot() {
    let server = server("10.97.0.0/24", "gtest97");
    let node = node_name();
    // The agent registers its node.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubectl(KUBECTL, &server, &["get", "node", &node])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "node {node} never registered");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A pod without a node is placed on the only one, and runs there.
    create_pod(&server, "placed", "");
    let placed = wait_for(&server, "placed", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Running"
    });
    assert_eq!(node_of(&placed), node);
    assert_eq!(scheduled_condition(&placed)["status"], "True");
    let wide = ok(KUBECTL, &server, &["get", "pod", "placed", "-o", "wide"]);
    assert!(wide.contains(&node), "{wide}");
    let assigned = format!("Successfully assigned default/placed to {node}");
    describe_until(
        &server,
        "placed",
        Duration::from_secs(10),
        &["Scheduled", &assigned, "default-scheduler"],
    );

    // A nodeSelector no node matches: Pending, and why.
    create_pod(&server, "picky", "  nodeSelector: {disktype: ssd}\n");
    let message = unschedulable(&server, "picky");
    assert_eq!(
        message,
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: \
         0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
    );
    describe_until(
        &server,
        "picky",
        Duration::from_secs(10),
        &[
            "FailedScheduling",
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
            "default-scheduler",
        ],
    );
    // Labelling the node is a change in the cluster: the pod is placed within its back-off.
    let labelled = Instant::now();
    ok(KUBECTL, &server, &["label", "node", &node, "disktype=ssd"]);
    let picky = wait_for(&server, "picky", Duration::from_secs(15), |p| {
        !node_of(p).is_empty()
    });
    assert_eq!(node_of(&picky), node);
    assert!(labelled.elapsed() < Duration::from_secs(12));
    ok(KUBECTL, &server, &["label", "node", &node, "disktype-"]);

    // More cpu than the node has.
    create_pod(
        &server,
        "greedy",
        "    resources: {requests: {cpu: \"1000\"}}\n",
    );
    assert_eq!(
        unschedulable(&server, "greedy"),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No \
         preemption victims found for incoming pod.."
    );
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "greedy", "--wait=false"],
    );

    // A tainted node takes only the pods that tolerate the taint.
    ok(
        KUBECTL,
        &server,
        &["taint", "node", &node, "dedicated=x:NoSchedule"],
    );
    create_pod(&server, "plain", "");
    create_pod(
        &server,
        "tolerant",
        "  tolerations: [{key: dedicated, operator: Equal, value: x, effect: NoSchedule}]\n",
    );
    let tolerant = wait_for(&server, "tolerant", Duration::from_secs(20), |p| {
        !node_of(p).is_empty()
    });
    assert_eq!(node_of(&tolerant), node);
    assert_eq!(
        unschedulable(&server, "plain"),
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: x}. preemption: 0/1 \
         nodes are available: 1 Preemption is not helpful for scheduling.."
    );
    // Without the taint, the other one goes there too.
    ok(
        KUBECTL,
        &server,
        &["taint", "node", &node, "dedicated=x:NoSchedule-"],
    );
    let plain = wait_for(&server, "plain", Duration::from_secs(15), |p| {
        !node_of(p).is_empty()
    });
    assert_eq!(node_of(&plain), node);

    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "--all", "--timeout=60s"],
    );
}

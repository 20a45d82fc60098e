//! End to end: inter-pod affinity and anti-affinity, topology spread constraints and preemption in the
//! scheduler of a real `gantry server`, with simulated nodes (`gantry agent --simulate N`, labelled with
//! zones by real kubectl 1.33) running the pods it binds.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use support::simulator::{Simulator, get, until};
use support::{Server, kubectl, ok, write};

const KUBECTL: &str = "1.33";
const ZONE: &str = "topology.kubernetes.io/zone";

/// `nodes` simulated nodes (`sim-0`…), Ready, with `zones[i]` as the zone label of `sim-i` (if any).
fn simulate(server: &Server, nodes: usize, zones: &[&str]) -> Simulator {
    let simulator = support::simulator::simulate(server, nodes, &[]);
    for (i, zone) in zones.iter().enumerate() {
        ok(
            KUBECTL,
            server,
            &[
                "label",
                "node",
                &format!("sim-{i}"),
                &format!("{ZONE}={zone}"),
            ],
        );
    }
    simulator
}

fn apply(server: &Server, name: &str, manifest: &str) {
    let path = write(server.dir.path(), &format!("{name}.yaml"), manifest);
    ok(KUBECTL, server, &["apply", "-f", path.to_str().unwrap()]);
}

fn pods(server: &Server, selector: &str) -> Vec<Value> {
    get(server, &["get", "pods", "-l", selector])["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn node_of(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str()
}

fn running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod["metadata"]["deletionTimestamp"].is_null()
}

fn condition<'a>(pod: &'a Value, kind: &str) -> Option<&'a Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// The message of an unschedulable pod's PodScheduled=False condition, once it has one.
fn unschedulable_message(server: &Server, pod: &str) -> String {
    let mut message = String::new();
    until(
        Duration::from_secs(20),
        &format!("{pod} unschedulable"),
        || {
            let p = get(server, &["get", "pod", pod]);
            match condition(&p, "PodScheduled") {
                Some(c) if c["reason"] == "Unschedulable" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    let p = get(server, &["get", "pod", pod]);
    assert!(node_of(&p).is_none(), "{p:#}");
    message.push_str(
        condition(&p, "PodScheduled").unwrap()["message"]
            .as_str()
            .unwrap(),
    );
    message
}

/// The events of `reason` about the pod `name`, as `(type, message)`.
fn events(server: &Server, name: &str, reason: &str) -> Vec<(String, String)> {
    let selector = format!("involvedObject.name={name},reason={reason}");
    get(server, &["get", "events", "--field-selector", &selector])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn anti_affinity_spreads_replicas_and_affinity_colocates() {
    let server = Server::start();
    let _simulator = simulate(&server, 3, &[]);

    // Four replicas that must not share a node, on three nodes: one per node, the fourth Pending.
    apply(
        &server,
        "web",
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web}}
            topologyKey: kubernetes.io/hostname
      containers: [{name: main, image: nothing.invalid/never:pulled}]
"#,
    );
    until(
        Duration::from_secs(40),
        "3 replicas running, 1 pending",
        || {
            let all = pods(&server, "app=web");
            let up = all.iter().filter(|p| running(p)).count();
            let pending = all.iter().filter(|p| node_of(p).is_none()).count();
            (all.len() == 4 && up == 3 && pending == 1)
                .then_some(())
                .ok_or(format!(
                    "{} pods, {up} running, {pending} pending",
                    all.len()
                ))
        },
    );
    let all = pods(&server, "app=web");
    let mut nodes: Vec<&str> = all.iter().filter_map(node_of).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["sim-0", "sim-1", "sim-2"]);
    let pending = all.iter().find(|p| node_of(p).is_none()).unwrap();
    let pending = pending["metadata"]["name"].as_str().unwrap();
    let expected = "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
        preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod..";
    assert_eq!(unschedulable_message(&server, pending), expected);
    let described = ok(KUBECTL, &server, &["describe", "pod", pending]);
    assert!(described.contains("FailedScheduling"), "{described}");
    assert!(
        described.contains("didn't match pod anti-affinity rules"),
        "{described}"
    );

    // A pod without terms but matching another pod's required anti-affinity stays off that node: the
    // rule holds both ways.
    apply(
        &server,
        "loner",
        r#"apiVersion: v1
kind: Pod
metadata: {name: loner, labels: {app: loner}}
spec:
  nodeName: sim-0
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {matchLabels: {app: crowd}}
        topologyKey: kubernetes.io/hostname
  containers: [{name: main, image: nothing.invalid/never:pulled}]
"#,
    );
    apply(
        &server,
        "crowd",
        r#"apiVersion: v1
kind: Pod
metadata: {name: crowd, labels: {app: crowd}}
spec:
  nodeSelector: {kubernetes.io/hostname: sim-0}
  containers: [{name: main, image: nothing.invalid/never:pulled}]
"#,
    );
    let message = unschedulable_message(&server, "crowd");
    assert!(
        message.starts_with(
            "0/3 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules, \
             2 node(s) didn't match Pod's node affinity/selector."
        ),
        "{message}"
    );

    // Required affinity: a pod that must run with a given replica goes to that replica's node.
    let target = all.iter().find(|p| node_of(p) == Some("sim-1")).unwrap();
    let target_name = target["metadata"]["name"].as_str().unwrap();
    ok(
        KUBECTL,
        &server,
        &["label", "pod", target_name, "role=anchor"],
    );
    apply(
        &server,
        "sidecar",
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: sidecar}
spec:
  replicas: 3
  selector: {matchLabels: {app: sidecar}}
  template:
    metadata: {labels: {app: sidecar}}
    spec:
      affinity:
        podAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {role: anchor}}
            topologyKey: kubernetes.io/hostname
      containers: [{name: main, image: nothing.invalid/never:pulled}]
"#,
    );
    until(Duration::from_secs(30), "3 sidecars running", || {
        let all = pods(&server, "app=sidecar");
        let up = all.iter().filter(|p| running(p)).count();
        (up == 3).then_some(()).ok_or(format!("{up} running"))
    });
    for p in pods(&server, "app=sidecar") {
        assert_eq!(node_of(&p), Some("sim-1"), "{p:#}");
    }
    // Nothing to follow: the affinity cannot be met (and preemption would not help).
    apply(
        &server,
        "orphan",
        r#"apiVersion: v1
kind: Pod
metadata: {name: orphan}
spec:
  affinity:
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {matchLabels: {role: absent}}
        topologyKey: kubernetes.io/hostname
  containers: [{name: main, image: nothing.invalid/never:pulled}]
"#,
    );
    assert_eq!(
        unschedulable_message(&server, "orphan"),
        "0/3 nodes are available: 3 node(s) didn't match pod affinity rules. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
    // Once a matching pod runs, the waiting pod follows it.
    ok(
        KUBECTL,
        &server,
        &["label", "pod", target_name, "role=absent", "--overwrite"],
    );
    until(
        Duration::from_secs(30),
        "the orphan placed with its match",
        || {
            let p = get(&server, &["get", "pod", "orphan"]);
            (node_of(&p) == Some("sim-1"))
                .then_some(())
                .ok_or(format!("{:?}", node_of(&p)))
        },
    );
}

#[test]
fn topology_spread_keeps_zones_within_max_skew() {
    let server = Server::start();
    let _simulator = simulate(&server, 4, &["a", "a", "b", "c"]);
    apply(
        &server,
        "spread",
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 6
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread, tier: x}}
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {matchLabels: {app: spread}}
      containers: [{name: main, image: nothing.invalid/never:pulled}]
"#,
    );
    let zone_of = |node: &str| match node {
        "sim-0" | "sim-1" => "a",
        "sim-2" => "b",
        _ => "c",
    };
    let per_zone = || {
        let mut zones: BTreeMap<&str, usize> = BTreeMap::new();
        for p in pods(&server, "app=spread") {
            if running(&p) {
                *zones.entry(zone_of(node_of(&p).unwrap())).or_default() += 1;
            }
        }
        zones
    };
    until(Duration::from_secs(40), "6 replicas over 3 zones", || {
        let zones = per_zone();
        (zones.values().sum::<usize>() == 6)
            .then_some(())
            .ok_or(format!("{zones:?}"))
    });
    assert_eq!(
        per_zone().into_iter().collect::<Vec<_>>(),
        [("a", 2), ("b", 2), ("c", 2)]
    );
    ok(
        KUBECTL,
        &server,
        &["scale", "deployment", "spread", "--replicas=9"],
    );
    until(Duration::from_secs(40), "9 replicas", || {
        let zones = per_zone();
        (zones.values().sum::<usize>() == 9)
            .then_some(())
            .ok_or(format!("{zones:?}"))
    });
    assert_eq!(
        per_zone().into_iter().collect::<Vec<_>>(),
        [("a", 3), ("b", 3), ("c", 3)]
    );

    // Pods of zone a only (their node selector), spreading with the replicas (label tier=x) over every
    // zone (nodeAffinityPolicy Ignore): the first makes a skew of 1, the second would make 2 and waits.
    let crowded = |name: &str| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{tier: x}}}}
spec:
  nodeSelector: {{topology.kubernetes.io/zone: a}}
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: DoNotSchedule
    nodeAffinityPolicy: Ignore
    labelSelector: {{matchLabels: {{tier: x}}}}
  containers: [{{name: main, image: nothing.invalid/never:pulled}}]
"#
        )
    };
    apply(&server, "crowded-1", &crowded("crowded-1"));
    until(
        Duration::from_secs(20),
        "crowded-1 placed in zone a",
        || {
            let p = get(&server, &["get", "pod", "crowded-1"]);
            match node_of(&p) {
                Some("sim-0" | "sim-1") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    apply(&server, "crowded-2", &crowded("crowded-2"));
    assert_eq!(
        unschedulable_message(&server, "crowded-2"),
        "0/4 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, \
         2 node(s) didn't match pod topology spread constraints. \
         preemption: 0/4 nodes are available: 2 No preemption victims found for incoming pod, \
         2 Preemption is not helpful for scheduling.."
    );
    // A node without the zone label cannot take pods that spread over zones.
    ok(
        KUBECTL,
        &server,
        &["label", "node", "sim-3", &format!("{ZONE}-")],
    );
    apply(
        &server,
        "unzoned",
        r#"apiVersion: v1
kind: Pod
metadata: {name: unzoned, labels: {app: other}}
spec:
  nodeSelector: {kubernetes.io/hostname: sim-3}
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: DoNotSchedule
    labelSelector: {matchLabels: {app: other}}
  containers: [{name: main, image: nothing.invalid/never:pulled}]
"#,
    );
    let message = unschedulable_message(&server, "unzoned");
    assert!(
        message.contains(
            "1 node(s) didn't match pod topology spread constraints (missing required label)"
        ),
        "{message}"
    );
    // Zone c is no domain any more (a: 3 + 1, b: 3); with crowded-1 gone, crowded-2 is within the skew.
    ok(KUBECTL, &server, &["delete", "pod", "crowded-1"]);
    until(
        Duration::from_secs(40),
        "crowded-2 placed in zone a",
        || {
            let p = get(&server, &["get", "pod", "crowded-2"]);
            match node_of(&p) {
                Some("sim-0" | "sim-1") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
}

/// Runs last (after the priority admission and PriorityClass landed in the API server): a pod of a
/// higher PriorityClass preempts a lower one on a full node.
#[test]
fn zz_preemption_makes_room_for_a_higher_priority_pod() {
    let server = Server::start();
    let _simulator = simulate(&server, 1, &[]);
    apply(
        &server,
        "classes",
        r#"apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: low}
value: 100
description: batch work
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
description: serving
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high-never}
value: 1000
preemptionPolicy: Never
"#,
    );
    // The victim holds a finalizer, so that it is seen terminating before it goes.
    let pod = |name: &str, class: &str, finalizer: bool| {
        let finalizers = if finalizer {
            "\n  finalizers: [example.com/hold]"
        } else {
            ""
        };
        format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}{finalizers}
spec:
  priorityClassName: {class}
  containers:
  - name: main
    image: nothing.invalid/never:pulled
    resources: {{requests: {{cpu: "20"}}}}
"#
        )
    };
    apply(&server, "low", &pod("low", "low", true));
    until(Duration::from_secs(30), "the low pod running", || {
        let p = get(&server, &["get", "pod", "low"]);
        running(&p).then_some(()).ok_or(format!("{}", p["status"]))
    });
    assert_eq!(
        get(&server, &["get", "pod", "low"])["spec"]["priority"],
        100
    );

    // Of the same priority as the preemptor, but never preempting: it waits.
    apply(&server, "polite", &pod("polite", "high-never", false));
    assert_eq!(
        unschedulable_message(&server, "polite"),
        "0/1 nodes are available: 1 Insufficient cpu. \
         preemption: not eligible due to preemptionPolicy=Never.."
    );
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "polite", "--wait=false"],
    );

    apply(&server, "high", &pod("high", "high", false));
    let high_uid = get(&server, &["get", "pod", "high"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    until(Duration::from_secs(30), "the low pod preempted", || {
        let p = get(&server, &["get", "pod", "low"]);
        let target = condition(&p, "DisruptionTarget")
            .cloned()
            .unwrap_or_default();
        (p["metadata"]["deletionTimestamp"].is_string()
            && target["status"] == "True"
            && target["reason"] == "PreemptionByScheduler")
            .then_some(())
            .ok_or(format!("{:#}", p["status"]))
    });
    let victim = get(&server, &["get", "pod", "low"]);
    assert_eq!(
        condition(&victim, "DisruptionTarget").unwrap()["message"],
        "default-scheduler: preempting to accommodate a higher priority pod"
    );
    until(Duration::from_secs(20), "the Preempted event", || {
        let found = events(&server, "low", "Preempted");
        found
            .contains(&(
                "Normal".to_owned(),
                format!("Preempted by pod {high_uid} on node sim-0"),
            ))
            .then_some(())
            .ok_or(format!("{found:?}"))
    });
    // The preemptor is nominated to the node and waits there while its victim terminates.
    until(Duration::from_secs(20), "the high pod nominated", || {
        let p = get(&server, &["get", "pod", "high"]);
        (p["status"]["nominatedNodeName"] == "sim-0")
            .then_some(())
            .ok_or(format!("{:#}", p["status"]))
    });
    let waiting = get(&server, &["get", "pod", "high"]);
    assert!(node_of(&waiting).is_none(), "{waiting:#}");
    assert!(
        events(&server, "high", "FailedScheduling")
            .iter()
            .any(|(kind, message)| kind == "Warning"
                && message.starts_with("0/1 nodes are available: 1 Insufficient cpu.")),
        "{:?}",
        events(&server, "high", "FailedScheduling")
    );
    // A lower pod arriving meanwhile does not take the room being made.
    apply(&server, "latecomer", &pod("latecomer", "low", false));

    // The victim goes: the preemptor takes its place.
    ok(
        KUBECTL,
        &server,
        &[
            "patch",
            "pod",
            "low",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    until(
        Duration::from_secs(30),
        "the high pod running on sim-0",
        || {
            let p = get(&server, &["get", "pod", "high"]);
            (running(&p) && node_of(&p) == Some("sim-0"))
                .then_some(())
                .ok_or(format!("{:?} {}", node_of(&p), p["status"]))
        },
    );
    let gone = kubectl(KUBECTL, &server, &["get", "pod", "low"]);
    assert!(!gone.status.success());
    let late = get(&server, &["get", "pod", "latecomer"]);
    assert!(node_of(&late).is_none(), "{late:#}");
}

//! End to end: the ReplicaSet controller and the garbage collector in `gantry server`, with real kubectl
//! 1.33 and pods run as real containers by the server's own agent (placed there by the scheduler). A
//! ReplicaSet keeps its pods (a deleted one is replaced, scaling down deletes the surplus), writes its
//! status, adopts orphans its selector matches; deleting it deletes its pods (background propagation), and an
//! owner deleted with `--cascade=orphan` leaves its pods without their ownerReference, and with
//! `--cascade=foreground` goes only after its pods. A restarted server converges with no duplicate pods.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::node::{IMAGE, KUBECTL, server};
use support::{Server, kubectl, ok, write};

/// A ReplicaSet of busybox pods labelled `app: NAME` (`extra_meta`: more of its metadata, indented).
fn apply_replicaset(server: &Server, name: &str, replicas: u32, extra_meta: &str) {
    let manifest = format!(
        r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {name}
{extra_meta}spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [sleep, "3600"]
"#
    );
    let path = write(server.dir.path(), &format!("{name}.yaml"), &manifest);
    ok(KUBECTL, server, &["apply", "-f", path.to_str().unwrap()]);
}

fn get(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&ok(KUBECTL, server, &all)).unwrap()
}

/// The pods labelled `app=NAME`, terminating ones included.
fn pods(server: &Server, app: &str) -> Vec<Value> {
    let list = get(server, &["get", "pods", "-l", &format!("app={app}")]);
    list["items"].as_array().unwrap().clone()
}

fn name(object: &Value) -> String {
    object["metadata"]["name"].as_str().unwrap().to_owned()
}

fn running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod["metadata"]["deletionTimestamp"].is_null()
}

/// Waits (up to `limit`) until `check` holds for the pods labelled `app=NAME`; returns them.
fn pods_until(
    server: &Server,
    app: &str,
    limit: Duration,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let current = pods(server, app);
        if check(&current) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: {:#?}",
            current
                .iter()
                .map(|p| (
                    name(p),
                    p["status"]["phase"].clone(),
                    p["metadata"]["deletionTimestamp"].clone()
                ))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the ReplicaSet's status has `ready` ready (and available) replicas of `replicas`.
fn status_until(server: &Server, rs: &str, replicas: i64, ready: i64, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let current = get(server, &["get", "rs", rs]);
        let status = &current["status"];
        let count = |field: &str| status[field].as_i64().unwrap_or(0);
        if count("replicas") == replicas
            && count("readyReplicas") == ready
            && count("availableReplicas") == ready
            && status["observedGeneration"] == current["metadata"]["generation"]
        {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "status of {rs} never got there: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn owners(pod: &Value) -> Vec<Value> {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_for_node(server: &Server) {
    let node = support::node::node_name();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubectl(KUBECTL, server, &["get", "node", &node])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "node {node} never registered");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_replicaset_keeps_its_pods_and_they_go_with_it() {
    let server = server("10.98.0.0/24", "gtest98");
    wait_for_node(&server);
    let minute = Duration::from_secs(60);

    // Three pods, made from the template, owned by the ReplicaSet, running on the node.
    apply_replicaset(&server, "web", 3, "");
    let web = pods_until(&server, "web", minute, "3 running", |p| {
        p.len() == 3 && p.iter().all(running)
    });
    let rs = status_until(&server, "web", 3, 3, Duration::from_secs(20));
    let uid = rs["metadata"]["uid"].as_str().unwrap();
    assert_eq!(rs["status"]["fullyLabeledReplicas"], 3);
    for pod in &web {
        assert!(name(pod).starts_with("web-"), "{}", name(pod));
        let owner = &owners(pod)[0];
        assert_eq!(owner["kind"], "ReplicaSet");
        assert_eq!(owner["uid"], uid);
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["blockOwnerDeletion"], true);
    }
    let table = ok(KUBECTL, &server, &["get", "rs", "web"]);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .take(4)
            .eq(["web", "3", "3", "3"]),
        "{table}"
    );

    // A deleted pod is replaced.
    let victim = name(&web[0]);
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", &victim, "--wait=false"],
    );
    let replaced = pods_until(&server, "web", minute, "replaced the deleted pod", |p| {
        let live: Vec<&Value> = p.iter().filter(|p| running(p)).collect();
        live.len() == 3 && live.iter().all(|p| name(p) != victim)
    });
    status_until(&server, "web", 3, 3, Duration::from_secs(20));
    assert!(replaced.iter().filter(|p| running(p)).count() == 3);

    // Scaling down deletes two; no new pod is made meanwhile.
    let before: Vec<String> = replaced.iter().filter(|p| running(p)).map(name).collect();
    ok(KUBECTL, &server, &["scale", "rs", "web", "--replicas=1"]);
    let left = pods_until(&server, "web", minute, "down to 1", |p| {
        p.len() == 1 && running(&p[0])
    });
    assert!(
        before.contains(&name(&left[0])),
        "{before:?} {}",
        name(&left[0])
    );
    status_until(&server, "web", 1, 1, Duration::from_secs(20));
    let events = ok(
        KUBECTL,
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web",
        ],
    );
    for wanted in [
        "SuccessfulCreate",
        "Created pod: web-",
        "SuccessfulDelete",
        "Deleted pod: web-",
    ] {
        assert!(events.contains(wanted), "{wanted}: {events}");
    }

    // Deleting the ReplicaSet (background propagation, kubectl's default) deletes its pod.
    ok(KUBECTL, &server, &["delete", "rs", "web", "--timeout=30s"]);
    pods_until(
        &server,
        "web",
        minute,
        "deleted with their ReplicaSet",
        <[Value]>::is_empty,
    );

    // An owner deleted with `--cascade=orphan` (the API server gives it the orphan finalizer) leaves its
    // pods, without their ownerReference ...
    apply_replicaset(&server, "keep", 2, "");
    let kept = pods_until(&server, "keep", minute, "2 running", |p| {
        p.len() == 2 && p.iter().all(running)
    });
    ok(
        KUBECTL,
        &server,
        &["delete", "rs", "keep", "--cascade=orphan", "--timeout=30s"],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while kubectl(KUBECTL, &server, &["get", "rs", "keep"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the orphan finalizer was never removed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let orphans = pods(&server, "keep");
    assert_eq!(orphans.len(), 2);
    assert!(
        orphans.iter().all(|p| running(p) && owners(p).is_empty()),
        "{orphans:#?}"
    );
    // ... and a new ReplicaSet that selects them adopts them rather than making more.
    apply_replicaset(&server, "keep", 2, "");
    let adopted = pods_until(&server, "keep", Duration::from_secs(20), "adopted", |p| {
        p.len() == 2 && p.iter().all(|p| owners(p).len() == 1)
    });
    let mut names: Vec<String> = adopted.iter().map(name).collect();
    let mut kept: Vec<String> = kept.iter().map(name).collect();
    names.sort();
    kept.sort();
    assert_eq!(names, kept);
    let rs = status_until(&server, "keep", 2, 2, Duration::from_secs(20));
    assert!(
        adopted
            .iter()
            .all(|p| owners(p)[0]["uid"] == rs["metadata"]["uid"])
    );
    // No duplicates appear afterwards either.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pods(&server, "keep").len(), 2);

    // Foreground propagation: the ReplicaSet stays (foregroundDeletion finalizer) until its pods are gone,
    // so once kubectl has seen it go, no pod is left.
    ok(
        KUBECTL,
        &server,
        &[
            "delete",
            "rs",
            "keep",
            "--cascade=foreground",
            "--timeout=60s",
        ],
    );
    assert!(
        !kubectl(KUBECTL, &server, &["get", "rs", "keep"])
            .status
            .success()
    );
    assert_eq!(pods(&server, "keep"), Vec::<Value>::new());
}

#[test]
fn a_restarted_server_converges_without_duplicate_pods() {
    let mut node = server("10.89.0.0/24", "gtest89");
    wait_for_node(&node);
    let minute = Duration::from_secs(60);
    apply_replicaset(&node, "steady", 2, "");
    let before = pods_until(&node, "steady", minute, "2 running", |p| {
        p.len() == 2 && p.iter().all(running)
    });
    status_until(&node, "steady", 2, 2, Duration::from_secs(20));

    // Killed and started again: the same two pods, and no new ones.
    node.server.kill_and_restart();
    wait_for_node(&node);
    ok(KUBECTL, &node, &["scale", "rs", "steady", "--replicas=3"]);
    let after = pods_until(&node, "steady", minute, "3 running", |p| {
        p.len() == 3 && p.iter().all(running)
    });
    let names: Vec<String> = after.iter().map(name).collect();
    assert!(before.iter().all(|p| names.contains(&name(p))), "{names:?}");
    status_until(&node, "steady", 3, 3, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pods(&node, "steady").len(), 3);

    // Killed again: deleting the ReplicaSet right after the restart still deletes its pods.
    node.server.kill_and_restart();
    ok(KUBECTL, &node, &["delete", "rs", "steady", "--timeout=30s"]);
    pods_until(
        &node,
        "steady",
        minute,
        "deleted with their ReplicaSet",
        <[Value]>::is_empty,
    );
}

//! End to end: the Deployment controller in `gantry server`, with the ReplicaSet controller, the scheduler
//! and the server's own agent running the pods as real containers, driven by real kubectl 1.33. A
//! Deployment makes its ReplicaSet and `kubectl rollout status` sees it roll out; a changed template rolls
//! out with no pod less available than the replicas (maxUnavailable 0, readiness that takes a while);
//! `rollout history` lists the revisions, `rollout undo` goes back by scaling the old ReplicaSet up again
//! under a new revision; scaling, pausing (scaling still works, no rollout) and resuming, `rollout restart`,
//! the revision history limit; Recreate never runs old and new pods together; a restarted server converges
//! without duplicate ReplicaSets.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::node::{IMAGE, KUBECTL, server};
use support::{Server, kubectl, ok, write};

const HASH: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// A Deployment of busybox pods labelled `app: NAME` whose container becomes ready about two seconds after
/// it starts (`strategy`: the YAML of its strategy).
fn apply_deployment(server: &Server, name: &str, replicas: u32, strategy: &str) {
    let manifest = format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations: {{kubernetes.io/change-cause: "first"}}
spec:
  replicas: {replicas}
  revisionHistoryLimit: 2
  selector: {{matchLabels: {{app: {name}}}}}
  strategy: {strategy}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [sh, -c, "sleep 2; touch /tmp/ready; exec sleep 3600"]
        env: [{{name: REV, value: "1"}}]
        readinessProbe:
          exec: {{command: [cat, /tmp/ready]}}
          periodSeconds: 1
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

fn items(list: Value) -> Vec<Value> {
    list["items"].as_array().unwrap().clone()
}

fn name(object: &Value) -> String {
    object["metadata"]["name"].as_str().unwrap().to_owned()
}

fn annotation(object: &Value, key: &str) -> Option<String> {
    object["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_owned)
}

/// The ReplicaSets labelled `app=NAME`, by name.
fn replicasets(server: &Server, app: &str) -> Vec<Value> {
    let mut sets = items(get(server, &["get", "rs", "-l", &format!("app={app}")]));
    sets.sort_by_key(name);
    sets
}

fn rs_replicas(set: &Value) -> i64 {
    set["spec"]["replicas"].as_i64().unwrap()
}

/// The pods labelled `app=NAME`, terminating ones included.
fn pods(server: &Server, app: &str) -> Vec<Value> {
    items(get(server, &["get", "pods", "-l", &format!("app={app}")]))
}

fn terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null()
}

fn ready(pod: &Value) -> bool {
    !terminating(pod)
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn condition<'a>(deployment: &'a Value, type_: &str) -> &'a Value {
    deployment["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

fn count(status: &Value, field: &str) -> i64 {
    status[field].as_i64().unwrap_or(0)
}

/// Waits until the Deployment's status says every one of `replicas` replicas is updated and available.
fn rolled_out(server: &Server, deployment: &str, replicas: i64, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let d = get(server, &["get", "deployment", deployment]);
        let s = &d["status"];
        if d["metadata"]["generation"] == s["observedGeneration"]
            && [
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
            ]
            .iter()
            .all(|f| count(s, f) == replicas)
        {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "deployment {deployment} never rolled out {replicas}: {s:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rollout_status(server: &Server, deployment: &str) {
    let out = ok(
        KUBECTL,
        server,
        &[
            "rollout",
            "status",
            &format!("deployment/{deployment}"),
            "--timeout=120s",
        ],
    );
    assert!(out.contains("successfully rolled out"), "{out}");
}

fn events(server: &Server, object: &str) -> String {
    ok(
        KUBECTL,
        server,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={object}"),
        ],
    )
}

/// The events of `object` once they mention `wanted` (within 20 s). Many similar events are combined into
/// one whose message is the latest ("(combined from similar events): …"), so check each soon after it.
fn events_until(server: &Server, object: &str, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = events(server, object);
        if log.contains(wanted) {
            return log;
        }
        assert!(Instant::now() < deadline, "{wanted}: {log}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The env value `REV` of a pod template.
fn rev(template: &Value) -> String {
    template["spec"]["containers"][0]["env"][0]["value"]
        .as_str()
        .unwrap()
        .to_owned()
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

/// Waits for a template change to roll out, checking all along that at least `replicas` pods are ready
/// and at most `replicas + surge` are not terminating.
fn roll_without_downtime(server: &Server, app: &str, replicas: usize, surge: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut polls = 0;
    loop {
        let current = pods(server, app);
        let ready_now = current.iter().filter(|p| ready(p)).count();
        let live = current.iter().filter(|p| !terminating(p)).count();
        assert!(
            ready_now >= replicas,
            "only {ready_now} ready pods during the rollout"
        );
        assert!(
            live <= replicas + surge,
            "{live} pods during the rollout (surge {surge})"
        );
        polls += 1;
        let d = get(server, &["get", "deployment", app]);
        let s = &d["status"];
        if d["metadata"]["generation"] == s["observedGeneration"]
            && ["replicas", "updatedReplicas", "availableReplicas"]
                .iter()
                .all(|f| count(s, f) == i64::try_from(replicas).unwrap())
            && live == replicas
        {
            assert!(polls > 3, "the rollout was over before it could be watched");
            return d;
        }
        assert!(Instant::now() < deadline, "never rolled out: {s:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_deployment_rolls_out_rolls_back_scales_pauses_and_restarts() {
    let server = server("10.61.0.0/24", "gtest61");
    wait_for_node(&server);
    let rolling = "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}";

    // Created: one ReplicaSet named by its template's hash, three ready pods, the rollout seen complete.
    apply_deployment(&server, "web", 3, rolling);
    rollout_status(&server, "web");
    let d = rolled_out(&server, "web", 3, Duration::from_secs(30));
    let uid = d["metadata"]["uid"].as_str().unwrap().to_owned();
    assert_eq!(annotation(&d, REVISION).as_deref(), Some("1"));
    assert!(d["status"]["collisionCount"].is_null(), "{d:#}");
    let available = condition(&d, "Available");
    assert_eq!(available["status"], "True");
    assert_eq!(available["reason"], "MinimumReplicasAvailable");
    let progressing = condition(&d, "Progressing");
    assert_eq!(progressing["status"], "True");
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable");
    let sets = replicasets(&server, "web");
    assert_eq!(sets.len(), 1, "{sets:#?}");
    let first = sets[0].clone();
    let first_name = name(&first);
    let hash = first["metadata"]["labels"][HASH].as_str().unwrap();
    assert_eq!(first_name, format!("web-{hash}"));
    assert_eq!(first["spec"]["selector"]["matchLabels"][HASH], hash);
    assert_eq!(first["spec"]["template"]["metadata"]["labels"][HASH], hash);
    let owner = &first["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["uid"], &owner["controller"]),
        (
            &Value::from("Deployment"),
            &Value::from(uid),
            &Value::from(true)
        )
    );
    assert_eq!(owner["blockOwnerDeletion"], true);
    assert_eq!(annotation(&first, REVISION).as_deref(), Some("1"));
    assert_eq!(
        annotation(&first, "deployment.kubernetes.io/desired-replicas").as_deref(),
        Some("3")
    );
    assert_eq!(
        annotation(&first, "deployment.kubernetes.io/max-replicas").as_deref(),
        Some("4")
    );
    assert_eq!(
        annotation(&first, "kubernetes.io/change-cause").as_deref(),
        Some("first")
    );
    let web = pods(&server, "web");
    assert_eq!(web.len(), 3);
    assert!(web.iter().all(|p| p["metadata"]["labels"][HASH] == hash));
    let table = ok(KUBECTL, &server, &["get", "deployment", "web"]);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .take(4)
            .eq(["web", "3/3", "3", "3"]),
        "{table}"
    );

    // A new template rolls out one pod at a time with never fewer than three ready. (The change cause,
    // annotated after the change as upstream's documentation does, goes to the new ReplicaSet only.)
    ok(KUBECTL, &server, &["set", "env", "deployment/web", "REV=2"]);
    ok(
        KUBECTL,
        &server,
        &[
            "annotate",
            "deployment",
            "web",
            "kubernetes.io/change-cause=second",
            "--overwrite",
        ],
    );
    let d = roll_without_downtime(&server, "web", 3, 1);
    assert_eq!(annotation(&d, REVISION).as_deref(), Some("2"));
    rollout_status(&server, "web");
    let sets = replicasets(&server, "web");
    assert_eq!(sets.len(), 2, "{sets:#?}");
    let second = sets.iter().find(|s| name(s) != first_name).unwrap();
    let second_name = name(second);
    assert_eq!(rev(&second["spec"]["template"]), "2");
    assert_eq!(annotation(second, REVISION).as_deref(), Some("2"));
    assert_eq!(
        annotation(second, "kubernetes.io/change-cause").as_deref(),
        Some("second")
    );
    assert_eq!(rs_replicas(second), 3);
    let old = sets.iter().find(|s| name(s) == first_name).unwrap();
    assert_eq!(rs_replicas(old), 0);
    let live: Vec<Value> = pods(&server, "web")
        .into_iter()
        .filter(|p| !terminating(p))
        .collect();
    assert_eq!(live.len(), 3);
    let new_hash = &second["metadata"]["labels"][HASH];
    assert!(
        live.iter()
            .all(|p| ready(p) && p["metadata"]["labels"][HASH] == *new_hash)
    );
    let log = events(&server, "web");
    for wanted in [
        format!("Scaled up replica set {second_name} from 0 to 1"),
        format!("Scaled down replica set {first_name} from 3 to 2"),
        format!("Scaled down replica set {first_name} from 1 to 0"),
    ] {
        assert!(log.contains(&wanted), "{wanted}: {log}");
    }

    // History lists both revisions with their change causes.
    let history = ok(KUBECTL, &server, &["rollout", "history", "deployment/web"]);
    let lines: Vec<Vec<&str>> = history
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(lines.contains(&vec!["1", "first"]), "{history}");
    assert!(lines.contains(&vec!["2", "second"]), "{history}");

    // Undo: the first ReplicaSet comes back as revision 3; no new ReplicaSet is made.
    ok(KUBECTL, &server, &["rollout", "undo", "deployment/web"]);
    let d = roll_without_downtime(&server, "web", 3, 1);
    rollout_status(&server, "web");
    assert_eq!(rev(&d["spec"]["template"]), "1");
    assert_eq!(annotation(&d, REVISION).as_deref(), Some("3"));
    let sets = replicasets(&server, "web");
    assert_eq!(sets.len(), 2, "{sets:#?}");
    let back = sets.iter().find(|s| name(s) == first_name).unwrap();
    assert_eq!(rs_replicas(back), 3);
    assert_eq!(annotation(back, REVISION).as_deref(), Some("3"));
    assert_eq!(
        annotation(back, "deployment.kubernetes.io/revision-history").as_deref(),
        Some("1")
    );
    let history = ok(KUBECTL, &server, &["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");

    // Scaling up and down resizes the one active ReplicaSet.
    ok(
        KUBECTL,
        &server,
        &["scale", "deployment", "web", "--replicas=5"],
    );
    rolled_out(&server, "web", 5, Duration::from_secs(60));
    let back = get(&server, &["get", "rs", &first_name]);
    assert_eq!(rs_replicas(&back), 5);
    assert_eq!(
        annotation(&back, "deployment.kubernetes.io/desired-replicas").as_deref(),
        Some("5")
    );
    events_until(
        &server,
        "web",
        &format!("Scaled up replica set {first_name} from 3 to 5"),
    );
    ok(
        KUBECTL,
        &server,
        &["scale", "deployment", "web", "--replicas=2"],
    );
    rolled_out(&server, "web", 2, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    while pods(&server, "web").len() != 2 {
        assert!(Instant::now() < deadline, "never down to 2 pods");
        std::thread::sleep(Duration::from_millis(200));
    }
    events_until(
        &server,
        "web",
        &format!("Scaled down replica set {first_name} from 5 to 2"),
    );

    // Paused: a template change makes no ReplicaSet, but scaling still works.
    ok(KUBECTL, &server, &["rollout", "pause", "deployment/web"]);
    ok(KUBECTL, &server, &["set", "env", "deployment/web", "REV=4"]);
    ok(
        KUBECTL,
        &server,
        &["scale", "deployment", "web", "--replicas=3"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = get(&server, &["get", "deployment", "web"])["status"].clone();
        if count(&s, "replicas") == 3 && count(&s, "availableReplicas") == 3 {
            assert_eq!(count(&s, "updatedReplicas"), 0, "{s:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "paused: never scaled to 3: {s:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let d = loop {
        let d = get(&server, &["get", "deployment", "web"]);
        if condition(&d, "Progressing")["reason"] == "DeploymentPaused" {
            break d;
        }
        assert!(Instant::now() < deadline, "never DeploymentPaused: {d:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(condition(&d, "Progressing")["status"], "Unknown");
    std::thread::sleep(Duration::from_secs(2));
    let sets = replicasets(&server, "web");
    assert_eq!(sets.len(), 2, "paused: no new ReplicaSet: {sets:#?}");
    assert_eq!(
        rs_replicas(sets.iter().find(|s| name(s) == first_name).unwrap()),
        3
    );
    assert!(
        pods(&server, "web")
            .iter()
            .all(|p| { p["spec"]["containers"][0]["env"][0]["value"] == "1" || terminating(p) })
    );
    let undo = kubectl(KUBECTL, &server, &["rollout", "undo", "deployment/web"]);
    assert!(!undo.status.success(), "undo of a paused deployment");

    // Resumed: the change rolls out as revision 4; the history limit (2) removes the oldest idle ReplicaSet.
    ok(KUBECTL, &server, &["rollout", "resume", "deployment/web"]);
    let d = roll_without_downtime(&server, "web", 3, 1);
    rollout_status(&server, "web");
    assert_eq!(annotation(&d, REVISION).as_deref(), Some("4"));
    assert_eq!(
        condition(&d, "Progressing")["reason"],
        "NewReplicaSetAvailable"
    );
    let sets = replicasets(&server, "web");
    let names: HashSet<String> = sets.iter().map(name).collect();
    assert_eq!(sets.len(), 3, "{names:?}");
    assert!(names.contains(&first_name) && names.contains(&second_name));

    // Restart: every pod replaced, through a fifth revision; revision 2's ReplicaSet goes (limit 2).
    let before: HashSet<String> = pods(&server, "web").iter().map(name).collect();
    ok(KUBECTL, &server, &["rollout", "restart", "deployment/web"]);
    let d = roll_without_downtime(&server, "web", 3, 1);
    rollout_status(&server, "web");
    assert_eq!(annotation(&d, REVISION).as_deref(), Some("5"));
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    let after: Vec<String> = pods(&server, "web")
        .iter()
        .filter(|p| !terminating(p))
        .map(name)
        .collect();
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(|p| !before.contains(p)), "{after:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let names: Vec<String> = replicasets(&server, "web").iter().map(name).collect();
        if names.len() == 3 && !names.contains(&second_name) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old ReplicaSets beyond the history limit stay: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Deleting the Deployment deletes its ReplicaSets and pods.
    ok(
        KUBECTL,
        &server,
        &["delete", "deployment", "web", "--timeout=30s"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(replicasets(&server, "web").is_empty() && pods(&server, "web").is_empty()) {
        assert!(
            Instant::now() < deadline,
            "ReplicaSets or pods outlived their Deployment"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn recreate_stops_old_pods_first_and_a_restarted_server_converges() {
    let mut node = server("10.62.0.0/24", "gtest62");
    wait_for_node(&node);
    apply_deployment(&node, "batch", 2, "{type: Recreate}");
    rollout_status(&node, "batch");
    let first = replicasets(&node, "batch");
    assert_eq!(first.len(), 1);
    let old_hash = first[0]["metadata"]["labels"][HASH].clone();

    // The new pods start only once every old one is gone, terminating ones included.
    ok(KUBECTL, &node, &["set", "env", "deployment/batch", "REV=2"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // Pods that finished count as gone, as upstream's Recreate has it.
        let current: Vec<Value> = pods(&node, "batch")
            .into_iter()
            .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
            .collect();
        let old = current
            .iter()
            .filter(|p| p["metadata"]["labels"][HASH] == old_hash)
            .count();
        let new = current.len() - old;
        assert!(
            old == 0 || new == 0,
            "old and new pods together: {old} {new}"
        );
        if new == 2 && current.iter().all(ready) {
            break;
        }
        assert!(Instant::now() < deadline, "never recreated");
        std::thread::sleep(Duration::from_millis(100));
    }
    rollout_status(&node, "batch");
    let log = events(&node, "batch");
    assert!(log.contains("Scaled down replica set batch-"), "{log}");

    // Killed and started again: the same ReplicaSets, and scaling still works.
    let sets: Vec<String> = replicasets(&node, "batch").iter().map(name).collect();
    assert_eq!(sets.len(), 2);
    node.server.kill_and_restart();
    wait_for_node(&node);
    ok(
        KUBECTL,
        &node,
        &["scale", "deployment", "batch", "--replicas=3"],
    );
    rolled_out(&node, "batch", 3, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<String> = replicasets(&node, "batch").iter().map(name).collect();
    assert_eq!(after, sets, "no new ReplicaSet after the restart");
    let d = get(&node, &["get", "deployment", "batch"]);
    assert_eq!(annotation(&d, REVISION).as_deref(), Some("2"));
    assert!(d["status"]["collisionCount"].is_null());
}

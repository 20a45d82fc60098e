//! End to end: the DaemonSet and StatefulSet controllers in `gantry server`, with real kubectl 1.33 and pods
//! run as real containers. A DaemonSet runs one pod on each of two nodes (the server's own agent and a
//! second machine's), follows a node's labels through its nodeSelector, replaces a deleted pod, rolls out a
//! new template (`kubectl rollout status`, `rollout history`). A StatefulSet makes `web-0..2` in order, each
//! once the one before is Ready, keeps their names (a deleted pod comes back as itself), updates from the
//! highest ordinal down to the partition, scales down from the highest ordinal, and converges after a restart
//! of the server without making pods again.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::machine::Machine;
use support::node::{IMAGE, KUBECTL, server, server_for_machines};
use support::{Server, kubectl, ok, write};

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

fn node_of(pod: &Value) -> String {
    pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null()
}

fn ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && !terminating(pod)
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn label<'a>(object: &'a Value, key: &str) -> &'a str {
    object["metadata"]["labels"][key]
        .as_str()
        .unwrap_or_default()
}

fn summary(pods: &[Value]) -> Vec<(String, String, Value, bool, String)> {
    pods.iter()
        .map(|p| {
            (
                name(p),
                node_of(p),
                p["status"]["phase"].clone(),
                terminating(p),
                label(p, "controller-revision-hash").to_owned(),
            )
        })
        .collect()
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
            summary(&current)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the object's status satisfies `check` (and has seen its generation).
fn status_until(
    server: &Server,
    kind: &str,
    name: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let current = get(server, &["get", kind, name]);
        if current["status"]["observedGeneration"] == current["metadata"]["generation"]
            && check(&current["status"])
        {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "status of {kind}/{name} never got there: {:#}",
            current["status"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for_node(server: &Server, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubectl(KUBECTL, server, &["get", "node", node])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "node {node} never registered");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn apply(server: &Server, file: &str, manifest: &str) {
    let path = write(server.dir.path(), file, manifest);
    ok(KUBECTL, server, &["apply", "-f", path.to_str().unwrap()]);
}

fn events_of(server: &Server, name: &str) -> String {
    ok(
        KUBECTL,
        server,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
        ],
    )
}

fn daemonset(version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agents
spec:
  selector: {{matchLabels: {{app: agents}}}}
  updateStrategy: {{type: RollingUpdate, rollingUpdate: {{maxUnavailable: 1}}}}
  template:
    metadata: {{labels: {{app: agents}}}}
    spec:
      nodeSelector: {{gantry.test/daemons: "yes"}}
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [sleep, "3600"]
        env: [{{name: VERSION, value: "{version}"}}]
"#
    )
}

#[test]
fn a_daemonset_runs_one_pod_on_each_eligible_node_and_rolls_out() {
    let machine = Machine::create(67);
    let server = server_for_machines(
        "10.65.0.0/24",
        "gtest65",
        &["--tls-san", &machine.tls_san()],
    );
    let here = support::node::node_name();
    wait_for_node(&server, &here);
    let _agent = machine.join(&server, "machine67");
    let minute = Duration::from_secs(60);
    for node in [here.as_str(), "machine67"] {
        ok(
            KUBECTL,
            &server,
            &["label", "node", node, "gantry.test/daemons=yes"],
        );
    }

    // One pod on each node, placed by the scheduler through a node affinity for that node.
    apply(&server, "agents.yaml", &daemonset("1"));
    let both = |p: &[Value]| {
        let mut nodes: Vec<String> = p.iter().filter(|p| ready(p)).map(node_of).collect();
        nodes.sort();
        p.len() == 2 && nodes.len() == 2 && nodes[0] != nodes[1]
    };
    let first = pods_until(&server, "agents", minute, "one on each node", both);
    let mut nodes: Vec<String> = first.iter().map(node_of).collect();
    nodes.sort();
    let mut wanted = vec![here.clone(), "machine67".to_owned()];
    wanted.sort();
    assert_eq!(nodes, wanted);
    let ds = status_until(&server, "ds", "agents", Duration::from_secs(20), |s| {
        s["desiredNumberScheduled"] == 2
            && s["currentNumberScheduled"] == 2
            && s["numberReady"] == 2
            && s["numberAvailable"] == 2
            && s["updatedNumberScheduled"] == 2
            && s["numberMisscheduled"] == 0
    });
    let uid = ds["metadata"]["uid"].as_str().unwrap();
    for pod in &first {
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["uid"].as_str()),
            (Some("DaemonSet"), Some(uid))
        );
        let term = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0];
        assert_eq!(term["matchFields"][0]["key"], "metadata.name");
        assert_eq!(term["matchFields"][0]["values"][0], node_of(pod));
        assert!(
            pod["spec"]["tolerations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute"),
            "{:#}",
            pod["spec"]["tolerations"]
        );
        assert!(!label(pod, "controller-revision-hash").is_empty());
        assert_eq!(label(pod, "pod-template-generation"), "1");
        let events = ok(
            KUBECTL,
            &server,
            &[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name={}", name(pod)),
            ],
        );
        assert!(events.contains("Scheduled"), "{events}");
    }
    let on_machine = |p: &[Value]| -> Vec<Value> {
        p.iter()
            .filter(|p| node_of(p) == "machine67" && !terminating(p))
            .cloned()
            .collect()
    };
    let machine_pod = on_machine(&first)[0].clone();
    assert!(
        machine_pod["status"]["podIP"]
            .as_str()
            .unwrap()
            .starts_with("10.67.1."),
        "{:#}",
        machine_pod["status"]
    );

    // The machine's node loses the label: its pod goes, the status follows.
    ok(
        KUBECTL,
        &server,
        &["label", "node", "machine67", "gantry.test/daemons-"],
    );
    pods_until(&server, "agents", minute, "gone from machine67", |p| {
        p.len() == 1 && node_of(&p[0]) == here && ready(&p[0])
    });
    status_until(&server, "ds", "agents", Duration::from_secs(20), |s| {
        s["desiredNumberScheduled"] == 1
            && s["currentNumberScheduled"] == 1
            && s["numberReady"] == 1
    });
    // Labelled again: a new pod there.
    ok(
        KUBECTL,
        &server,
        &["label", "node", "machine67", "gantry.test/daemons=yes"],
    );
    let back = pods_until(&server, "agents", minute, "back on machine67", both);
    assert_ne!(name(&on_machine(&back)[0]), name(&machine_pod));

    // A deleted pod is replaced on its node.
    let victim = name(&on_machine(&back)[0]);
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", &victim, "--wait=false"],
    );
    let replaced = pods_until(&server, "agents", minute, "replaced the deleted pod", |p| {
        both(p) && p.iter().all(|p| name(p) != victim)
    });
    assert_eq!(on_machine(&replaced).len(), 1);

    // A new template rolls out, one node at a time.
    let old_hash = label(&replaced[0], "controller-revision-hash").to_owned();
    apply(&server, "agents.yaml", &daemonset("2"));
    ok(
        KUBECTL,
        &server,
        &["rollout", "status", "ds/agents", "--timeout=120s"],
    );
    let updated = pods_until(&server, "agents", minute, "all updated", |p| {
        both(p)
            && p.iter()
                .all(|p| label(p, "controller-revision-hash") != old_hash)
    });
    assert!(
        updated
            .iter()
            .all(|p| label(p, "pod-template-generation") == "2")
    );
    for pod in &updated {
        let env = &pod["spec"]["containers"][0]["env"][0];
        assert_eq!(
            (env["name"].as_str(), env["value"].as_str()),
            (Some("VERSION"), Some("2"))
        );
    }
    status_until(&server, "ds", "agents", Duration::from_secs(20), |s| {
        s["updatedNumberScheduled"] == 2 && s["numberAvailable"] == 2
    });
    let history = ok(KUBECTL, &server, &["rollout", "history", "ds/agents"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let revision = ok(
        KUBECTL,
        &server,
        &["rollout", "history", "ds/agents", "--revision=1"],
    );
    assert!(
        revision.contains("VERSION:\t1") || revision.contains("VERSION: 1"),
        "{revision}"
    );
    // Undo: the first template comes back as revision 3, with the first revision's hash.
    ok(KUBECTL, &server, &["rollout", "undo", "ds/agents"]);
    ok(
        KUBECTL,
        &server,
        &["rollout", "status", "ds/agents", "--timeout=120s"],
    );
    let undone = pods_until(
        &server,
        "agents",
        minute,
        "back at the first template",
        |p| {
            both(p)
                && p.iter()
                    .all(|p| label(p, "controller-revision-hash") == old_hash)
        },
    );
    assert!(undone.iter().all(|p| {
        p["spec"]["containers"][0]["env"][0]["value"] == "1"
            && label(p, "pod-template-generation") == "3"
    }));
    let history = ok(KUBECTL, &server, &["rollout", "history", "ds/agents"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    let events = events_of(&server, "agents");
    for wanted in [
        "SuccessfulCreate",
        "Created pod: agents-",
        "SuccessfulDelete",
        "Deleted pod: agents-",
    ] {
        assert!(events.contains(wanted), "{wanted}: {events}");
    }

    // Deleting the DaemonSet deletes its pods and its history.
    ok(
        KUBECTL,
        &server,
        &["delete", "ds", "agents", "--timeout=30s"],
    );
    pods_until(
        &server,
        "agents",
        minute,
        "deleted with their DaemonSet",
        <[Value]>::is_empty,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = get(&server, &["get", "controllerrevisions", "-l", "app=agents"]);
        if left["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "history left: {left:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn statefulset(version: &str, partition: u32, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: {replicas}
  podManagementPolicy: OrderedReady
  updateStrategy: {{type: RollingUpdate, rollingUpdate: {{partition: {partition}}}}}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [sh, -c, "sleep 2; touch /tmp/ready; exec sleep 3600"]
        env: [{{name: VERSION, value: "{version}"}}]
        readinessProbe:
          exec: {{command: [cat, /tmp/ready]}}
          periodSeconds: 1
"#
    )
}

fn by_name(pods: &[Value]) -> BTreeMap<String, Value> {
    pods.iter().map(|p| (name(p), p.clone())).collect()
}

fn time(value: &Value) -> String {
    value.as_str().unwrap().to_owned()
}

fn ready_since(pod: &Value) -> String {
    let condition = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    time(&condition["lastTransitionTime"])
}

#[test]
fn a_statefulset_makes_ordered_pods_with_stable_names_and_updates_by_partition() {
    let mut server = server("10.66.0.0/24", "gtest66");
    wait_for_node(&server, &support::node::node_name());
    let minute = Duration::from_secs(60);

    // Created in order: while web-N is not Ready, web-N+1 does not exist.
    apply(&server, "web.yaml", &statefulset("1", 0, 3));
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen_alone = false;
    let created = loop {
        let current = by_name(&pods(&server, "web"));
        for (earlier, later) in [("web-0", "web-1"), ("web-1", "web-2")] {
            if current.contains_key(later) {
                assert!(
                    current.get(earlier).is_some_and(ready),
                    "{later} exists while {earlier} is not ready: {:#?}",
                    summary(&current.values().cloned().collect::<Vec<_>>())
                );
            }
        }
        if current.len() == 1 && current.contains_key("web-0") {
            seen_alone = true;
        }
        if current.len() == 3 && current.values().all(ready) {
            break current;
        }
        assert!(
            Instant::now() < deadline,
            "never 3 ready: {:#?}",
            summary(&current.values().cloned().collect::<Vec<_>>())
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(seen_alone, "web-0 was never alone");
    assert_eq!(
        created.keys().collect::<Vec<_>>(),
        ["web-0", "web-1", "web-2"]
    );
    for (earlier, later) in [("web-0", "web-1"), ("web-1", "web-2")] {
        assert!(
            time(&created[later]["metadata"]["creationTimestamp"])
                >= ready_since(&created[earlier]),
            "{later} made before {earlier} was ready"
        );
    }
    let sts = status_until(&server, "sts", "web", Duration::from_secs(20), |s| {
        s["replicas"] == 3
            && s["readyReplicas"] == 3
            && s["availableReplicas"] == 3
            && s["currentReplicas"] == 3
            && s["updatedReplicas"] == 3
    });
    let first_revision = sts["status"]["updateRevision"].as_str().unwrap().to_owned();
    assert_eq!(sts["status"]["currentRevision"], first_revision);
    assert!(first_revision.starts_with("web-"), "{first_revision}");
    for (i, (pod_name, pod)) in created.iter().enumerate() {
        assert_eq!(pod["spec"]["hostname"], *pod_name);
        assert_eq!(pod["spec"]["subdomain"], "web");
        assert_eq!(label(pod, "statefulset.kubernetes.io/pod-name"), pod_name);
        assert_eq!(label(pod, "apps.kubernetes.io/pod-index"), i.to_string());
        assert_eq!(label(pod, "controller-revision-hash"), first_revision);
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
    }
    let hostname = ok(KUBECTL, &server, &["exec", "web-1", "--", "hostname"]);
    assert_eq!(hostname.trim(), "web-1");
    ok(
        KUBECTL,
        &server,
        &["rollout", "status", "sts/web", "--timeout=30s"],
    );

    // A deleted pod comes back with its name.
    let old_uid = created["web-1"]["metadata"]["uid"].clone();
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "web-1", "--wait=false"],
    );
    let back = pods_until(&server, "web", minute, "web-1 back", |p| {
        let p = by_name(p);
        p.len() == 3 && p.values().all(ready) && p["web-1"]["metadata"]["uid"] != old_uid
    });
    assert_eq!(by_name(&back)["web-1"]["spec"]["hostname"], "web-1");

    // A new template with partition 2: only web-2 is updated.
    apply(&server, "web.yaml", &statefulset("2", 2, 3));
    ok(
        KUBECTL,
        &server,
        &["rollout", "status", "sts/web", "--timeout=90s"],
    );
    let sts = status_until(&server, "sts", "web", Duration::from_secs(30), |s| {
        s["updatedReplicas"] == 1 && s["readyReplicas"] == 3
    });
    let second_revision = sts["status"]["updateRevision"].as_str().unwrap().to_owned();
    assert_ne!(second_revision, first_revision);
    assert_eq!(sts["status"]["currentRevision"], first_revision);
    let partial = by_name(&pods_until(&server, "web", minute, "3 ready", |p| {
        p.len() == 3 && p.iter().all(ready)
    }));
    assert_eq!(
        label(&partial["web-2"], "controller-revision-hash"),
        second_revision
    );
    assert_eq!(
        label(&partial["web-1"], "controller-revision-hash"),
        first_revision
    );
    assert_eq!(
        label(&partial["web-0"], "controller-revision-hash"),
        first_revision
    );
    std::thread::sleep(Duration::from_secs(2));
    let still = by_name(&pods(&server, "web"));
    assert_eq!(
        still["web-0"]["metadata"]["uid"], partial["web-0"]["metadata"]["uid"],
        "web-0 is below the partition"
    );

    // Partition 0: the rest, from the highest ordinal down.
    apply(&server, "web.yaml", &statefulset("2", 0, 3));
    ok(
        KUBECTL,
        &server,
        &["rollout", "status", "sts/web", "--timeout=120s"],
    );
    let done = status_until(&server, "sts", "web", Duration::from_secs(30), |s| {
        s["updatedReplicas"] == 3 && s["readyReplicas"] == 3
    });
    assert_eq!(done["status"]["currentRevision"], second_revision);
    let all = by_name(&pods(&server, "web"));
    assert!(
        all.values()
            .all(|p| label(p, "controller-revision-hash") == second_revision)
    );
    assert!(
        time(&all["web-1"]["metadata"]["creationTimestamp"])
            <= time(&all["web-0"]["metadata"]["creationTimestamp"]),
        "web-1 is updated before web-0"
    );
    let history = ok(KUBECTL, &server, &["rollout", "history", "sts/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    // Scaling down: web-2 goes before web-1, web-0 stays.
    ok(KUBECTL, &server, &["scale", "sts", "web", "--replicas=1"]);
    let deadline = Instant::now() + minute;
    loop {
        let current = by_name(&pods(&server, "web"));
        let live = |n: &str| current.get(n).is_some_and(|p| !terminating(p));
        if !live("web-1") {
            assert!(!live("web-2"), "web-1 went before web-2");
        }
        assert!(live("web-0"));
        if current.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never scaled down: {:#?}",
            current.keys()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    status_until(&server, "sts", "web", Duration::from_secs(20), |s| {
        s["replicas"] == 1 && s["readyReplicas"] == 1
    });
    let events = events_of(&server, "web");
    for wanted in [
        "create Pod web-0 in StatefulSet web successful",
        "delete Pod web-2 in StatefulSet web successful",
    ] {
        assert!(events.contains(wanted), "{wanted}: {events}");
    }

    // A restarted server converges to the same pods, making none again.
    ok(KUBECTL, &server, &["scale", "sts", "web", "--replicas=2"]);
    let before = pods_until(&server, "web", minute, "2 ready", |p| {
        p.len() == 2 && p.iter().all(ready)
    });
    server.server.kill_and_restart();
    wait_for_node(&server, &support::node::node_name());
    ok(KUBECTL, &server, &["scale", "sts", "web", "--replicas=3"]);
    let after = by_name(&pods_until(
        &server,
        "web",
        minute,
        "3 ready after the restart",
        |p| p.len() == 3 && p.iter().all(ready),
    ));
    for pod in &before {
        assert_eq!(
            after[&name(pod)]["metadata"]["uid"],
            pod["metadata"]["uid"],
            "{} was made again",
            name(pod)
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pods(&server, "web").len(), 3);

    ok(KUBECTL, &server, &["delete", "sts", "web", "--timeout=30s"]);
    pods_until(
        &server,
        "web",
        minute,
        "deleted with their StatefulSet",
        <[Value]>::is_empty,
    );
}

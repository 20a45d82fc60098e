//! End to end: PodDisruptionBudgets. The disruption controller in `gantry server` writes their status from
//! the pods they select and the scale of the pods' controllers; the eviction subresource takes disruptions
//! from it (429 when none is left) and `kubectl drain` evicts one budget at a time, moving pods from one
//! simulated node (`gantry agent --simulate 2`) to the other. Real `gantry server`, real kubectl 1.33, curl
//! with the admin certificate for the raw eviction answer.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::simulator::{get, simulate, until};
use support::{Server, kubectl, ok, write};

const KUBECTL: &str = "1.33";

/// `curl` as the admin: status code and body as JSON.
fn api(server: &Server, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let tls = server.dir.path().join("tls");
    let mut command = Command::new("curl");
    command
        .args(["-sk", "-w", "\n%{http_code}", "-X", method])
        .arg("--cert")
        .arg(tls.join("admin.crt"))
        .arg("--key")
        .arg(tls.join("admin.key"));
    if let Some(body) = body {
        command
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(body.to_string());
    }
    let out = command.arg(server.url(path)).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn evict(server: &Server, pod: &str) -> (u16, Value) {
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": pod, "namespace": "default"}});
    api(
        server,
        "POST",
        &format!("/api/v1/namespaces/default/pods/{pod}/eviction"),
        Some(&eviction),
    )
}

fn apply(server: &Server, name: &str, manifest: &str) {
    let path = write(server.dir.path(), name, manifest);
    ok(KUBECTL, server, &["apply", "-f", path.to_str().unwrap()]);
}

/// The pods labelled `app=APP` that are not being deleted.
fn live_pods(server: &Server, app: &str) -> Vec<Value> {
    get(server, &["get", "pods", "-l", &format!("app={app}")])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or_default()
}

fn budget_status(server: &Server, name: &str) -> Value {
    get(server, &["get", "pdb", name])["status"].clone()
}

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: main, image: nothing.invalid/never:pulled}}]
"#
    )
}

#[test]
fn drain_evicts_one_budget_at_a_time() {
    let server = Server::start();
    let _simulator = simulate(&server, 2, &[]);
    // Everything starts on sim-0: sim-1 takes no pods until it is uncordoned.
    ok(KUBECTL, &server, &["cordon", "sim-1"]);
    apply(&server, "web.yaml", &deployment("web", 3));
    apply(
        &server,
        "pdb.yaml",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\n\
         spec:\n  minAvailable: 2\n  selector: {matchLabels: {app: web}}\n",
    );
    until(Duration::from_secs(30), "3 ready pods on sim-0", || {
        let pods = live_pods(&server, "web");
        let ready = pods
            .iter()
            .filter(|p| is_ready(p) && node_of(p) == "sim-0")
            .count();
        (ready == 3 && pods.len() == 3)
            .then_some(())
            .ok_or(format!("{ready} of {}", pods.len()))
    });
    until(Duration::from_secs(20), "the budget's status", || {
        let status = budget_status(&server, "web");
        (status["disruptionsAllowed"] == 1
            && status["currentHealthy"] == 3
            && status["desiredHealthy"] == 2
            && status["expectedPods"] == 3
            && status["observedGeneration"] == 1)
            .then_some(())
            .ok_or(status.to_string())
    });
    let status = budget_status(&server, "web");
    let condition = &status["conditions"][0];
    assert_eq!(
        (
            &condition["type"],
            &condition["status"],
            &condition["reason"]
        ),
        (
            &json!("DisruptionAllowed"),
            &json!("True"),
            &json!("SufficientPods")
        ),
        "{status}"
    );
    let table = ok(KUBECTL, &server, &["get", "pdb", "web"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "2", "N/A", "1"], "{table}");

    // The drain evicts one pod, then waits: its replacement has nowhere to go, and the budget allows no
    // second disruption.
    let mut drain = Command::new(support::kubectl_dir().join("kubectl.1.33"))
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args([
            "drain",
            "sim-0",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=150s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lowest_ready = usize::MAX;
    let mut watch_ready = |server: &Server| {
        let ready = live_pods(server, "web")
            .iter()
            .filter(|p| is_ready(p))
            .count();
        lowest_ready = lowest_ready.min(ready);
    };
    until(Duration::from_secs(30), "one pod evicted", || {
        watch_ready(&server);
        let pods = live_pods(&server, "web");
        let pending = pods.iter().filter(|p| node_of(p).is_empty()).count();
        let status = budget_status(&server, "web");
        (pending == 1 && status["disruptionsAllowed"] == 0 && status["currentHealthy"] == 2)
            .then_some(())
            .ok_or(format!("{pending} pending, {status}"))
    });
    // The budget holds: for several seconds (more than drain's 5 s between tries) no second pod goes.
    let held = Instant::now() + Duration::from_secs(8);
    while Instant::now() < held {
        watch_ready(&server);
        assert!(
            drain.try_wait().unwrap().is_none(),
            "drain finished while the budget forbade it"
        );
        let on_sim0 = live_pods(&server, "web")
            .iter()
            .filter(|p| node_of(p) == "sim-0")
            .count();
        assert_eq!(on_sim0, 2, "a second pod left sim-0");
        std::thread::sleep(Duration::from_millis(300));
    }

    // An eviction now is refused with 429, saying why.
    let victim = live_pods(&server, "web")
        .into_iter()
        .find(|p| node_of(p) == "sim-0")
        .unwrap();
    let victim = victim["metadata"]["name"].as_str().unwrap().to_owned();
    let (code, refused) = evict(&server, &victim);
    assert_eq!(code, 429, "{refused}");
    assert_eq!(refused["reason"], "TooManyRequests");
    assert_eq!(
        refused["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(
        refused["details"]["causes"][0]["reason"],
        "DisruptionBudget"
    );
    assert_eq!(
        refused["details"]["causes"][0]["message"],
        "The disruption budget web needs 2 healthy pods and has 2 currently"
    );
    assert_eq!(
        api(
            &server,
            "GET",
            &format!("/api/v1/namespaces/default/pods/{victim}"),
            None
        )
        .0,
        200
    );

    // Room on sim-1: each replacement becomes Ready there, and the drain evicts the next pod and finishes.
    ok(KUBECTL, &server, &["uncordon", "sim-1"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        watch_ready(&server);
        if let Some(status) = drain.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the drain never finished");
        std::thread::sleep(Duration::from_millis(300));
    };
    let mut output = String::new();
    drain
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    drain
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    assert!(status.success(), "{output}");
    assert!(output.contains("node/sim-0 drained"), "{output}");
    assert!(
        output.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{output}"
    );
    assert_eq!(output.matches("evicted").count(), 3, "{output}");
    until(Duration::from_secs(20), "3 ready pods on sim-1", || {
        watch_ready(&server);
        let pods = live_pods(&server, "web");
        let moved = pods
            .iter()
            .filter(|p| is_ready(p) && node_of(p) == "sim-1")
            .count();
        (moved == 3 && pods.len() == 3)
            .then_some(())
            .ok_or(format!("{moved} of {}", pods.len()))
    });
    assert!(
        lowest_ready >= 2,
        "the budget let ready pods fall to {lowest_ready}"
    );
    until(
        Duration::from_secs(20),
        "one disruption allowed again",
        || {
            let status = budget_status(&server, "web");
            (status["disruptionsAllowed"] == 1 && status["disruptedPods"].is_null())
                .then_some(())
                .ok_or(status.to_string())
        },
    );
}

#[test]
fn evictions_follow_the_budget_and_mark_the_pod() {
    let server = Server::start();
    let _simulator = simulate(&server, 1, &[]);
    // A pod held by a finalizer shows what the eviction wrote before deleting it.
    apply(
        &server,
        "held.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: held, labels: {app: held}, finalizers: [example.com/hold]}\n\
         spec:\n  nodeName: sim-0\n  containers: [{name: main, image: nothing.invalid/never:pulled}]\n",
    );
    apply(
        &server,
        "held-pdb.yaml",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: held}\n\
         spec:\n  maxUnavailable: 1\n  selector: {matchLabels: {app: held}}\n",
    );
    until(Duration::from_secs(20), "the pod Ready", || {
        let pod = get(&server, &["get", "pod", "held"]);
        is_ready(&pod)
            .then_some(())
            .ok_or(pod["status"].to_string())
    });
    // maxUnavailable counts what the pods' controllers want, and this pod has none: nothing is expected,
    // so nothing may be disrupted, and the budget says why in an event.
    until(
        Duration::from_secs(20),
        "the budget expecting nothing",
        || {
            let status = budget_status(&server, "held");
            (status["expectedPods"] == 0
                && status["currentHealthy"] == 1
                && status["disruptionsAllowed"] == 0
                && status["conditions"][0]["reason"] == "InsufficientPods")
                .then_some(())
                .ok_or(status.to_string())
        },
    );
    let events = ok(
        KUBECTL,
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=held",
        ],
    );
    assert!(events.contains("UnmanagedPods"), "{events}");
    let (code, refused) = evict(&server, "held");
    assert_eq!(code, 429, "{refused}");
    assert_eq!(
        refused["details"]["causes"][0]["message"],
        "The disruption budget held does not allow evicting pods currently",
    );
    // With a budget that counts pods, the eviction is allowed and takes the disruption.
    ok(
        KUBECTL,
        &server,
        &[
            "patch",
            "pdb",
            "held",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/maxUnavailable"},{"op":"add","path":"/spec/minAvailable","value":0}]"#,
        ],
    );
    until(Duration::from_secs(20), "one disruption allowed", || {
        let status = budget_status(&server, "held");
        (status["disruptionsAllowed"] == 1 && status["observedGeneration"] == 2)
            .then_some(())
            .ok_or(status.to_string())
    });
    let (code, body) = evict(&server, "held");
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["status"], "Success");
    let pod = get(&server, &["get", "pod", "held"]);
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    let target = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionTarget")
        .cloned()
        .unwrap_or_default();
    assert_eq!(target["status"], "True", "{pod}");
    assert_eq!(target["reason"], "EvictionByEvictionAPI");
    assert_eq!(target["message"], "Eviction API: evicting");
    // The budget recorded it; the controller lets the entry go once the pod is being deleted.
    until(Duration::from_secs(20), "the disruption settled", || {
        let status = budget_status(&server, "held");
        (status["disruptedPods"].is_null() && status["currentHealthy"] == 0)
            .then_some(())
            .ok_or(status.to_string())
    });
    ok(
        KUBECTL,
        &server,
        &[
            "patch",
            "pod",
            "held",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
    );

    // A Pending pod disrupts nothing: it goes whatever the budget says. A name that is not the pod's is
    // a bad request.
    apply(
        &server,
        "pending.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: pending, labels: {app: held}}\n\
         spec:\n  nodeSelector: {nowhere: \"true\"}\n  containers: [{name: main, image: nothing.invalid/never:pulled}]\n",
    );
    let (code, body) = api(
        &server,
        "POST",
        "/api/v1/namespaces/default/pods/pending/eviction",
        Some(
            &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}}),
        ),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body["message"],
        "name in URL does not match name in Eviction object"
    );
    let (code, body) = evict(&server, "pending");
    assert_eq!(code, 201, "{body}");
    let out = kubectl(KUBECTL, &server, &["get", "pod", "pending"]);
    assert!(!out.status.success(), "the Pending pod is gone");
}

#[test]
fn percentages_and_max_unavailable_take_the_scale_of_the_pods_controllers() {
    // No nodes: the pods stay Pending, so none is healthy, but the expected count comes from the
    // Deployment's scale (through its ReplicaSet), not from how many pods there are.
    let server = Server::start();
    apply(&server, "api.yaml", &deployment("api", 4));
    apply(
        &server,
        "pdbs.yaml",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: half}\n\
         spec:\n  minAvailable: \"50%\"\n  selector: {matchLabels: {app: api}}\n---\n\
         apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: one-down}\n\
         spec:\n  maxUnavailable: 1\n  selector: {matchLabels: {app: api}}\n---\n\
         apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: nothing}\n\
         spec:\n  minAvailable: 1\n  selector: {matchLabels: {app: none}}\n",
    );
    until(Duration::from_secs(30), "the budgets' statuses", || {
        let half = budget_status(&server, "half");
        let down = budget_status(&server, "one-down");
        let nothing = budget_status(&server, "nothing");
        let ok = half["expectedPods"] == 4
            && half["desiredHealthy"] == 2
            && half["currentHealthy"] == 0
            && down["expectedPods"] == 4
            && down["desiredHealthy"] == 3
            && nothing["expectedPods"] == 0
            && nothing["desiredHealthy"] == 1;
        ok.then_some(()).ok_or(format!("{half} {down} {nothing}"))
    });
    for name in ["half", "one-down", "nothing"] {
        let status = budget_status(&server, name);
        assert_eq!(status["disruptionsAllowed"], 0, "{name}: {status}");
        assert_eq!(status["conditions"][0]["reason"], "InsufficientPods");
    }
    // Scaled, the Deployment changes what is expected once its pods change.
    ok(
        KUBECTL,
        &server,
        &["scale", "deployment", "api", "--replicas=6"],
    );
    until(Duration::from_secs(30), "the new scale counted", || {
        let half = budget_status(&server, "half");
        (half["expectedPods"] == 6 && half["desiredHealthy"] == 3)
            .then_some(())
            .ok_or(half.to_string())
    });
    let events = ok(
        KUBECTL,
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=nothing",
        ],
    );
    assert!(events.contains("NoPods"), "{events}");
    assert!(events.contains("No matching pods found"), "{events}");
}

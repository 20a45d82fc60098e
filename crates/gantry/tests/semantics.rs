//! End to end: API semantics a client relies on beyond reads and writes — DeleteOptions (preconditions, pod
//! grace periods, deletecollection), binding, eviction with PodDisruptionBudgets, per-kind validation as
//! kubectl shows it, YAML responses and watch bookmarks. A real `gantry server`; curl with the admin
//! certificate, and kubectl 1.33.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::{Server, kubectl, ok, write};

/// `curl` as the admin: status code and body.
fn api(
    server: &Server,
    method: &str,
    path: &str,
    body: Option<&Value>,
    accept: &str,
) -> (u16, String) {
    let tls = server.dir.path().join("tls");
    let mut command = Command::new("curl");
    command
        .args(["-sk", "-w", "\n%{http_code}", "-X", method, "-H"])
        .arg(format!("Accept: {accept}"))
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
    (code.parse().unwrap(), body.to_string())
}

fn json_api(server: &Server, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let (code, text) = api(server, method, path, body, "application/json");
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

const PODS: &str = "/api/v1/namespaces/default/pods";

fn pod(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
           "spec": {"terminationGracePeriodSeconds": 20, "containers": [{"name": "c", "image": "busybox"}]}})
}

#[test]
fn deletions_honour_preconditions_grace_periods_and_selectors() {
    let server = Server::start();
    let (code, created) = json_api(
        &server,
        "POST",
        PODS,
        Some(&pod("web", json!({"app": "web"}))),
    );
    assert_eq!(code, 201, "{created}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();

    // A precondition on another uid or an old resourceVersion refuses the delete and keeps the pod.
    let (code, status) = json_api(
        &server,
        "DELETE",
        &format!("{PODS}/web"),
        Some(
            &json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "other"}}),
        ),
    );
    assert_eq!(code, 409, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: UID in precondition: other")
    );
    let (code, status) = json_api(
        &server,
        "DELETE",
        &format!("{PODS}/web"),
        Some(&json!({"preconditions": {"resourceVersion": "1"}})),
    );
    assert_eq!(code, 409, "{status}");

    // Binding puts it on a node, once.
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"},
                         "target": {"kind": "Node", "name": "node-1"}});
    let (code, status) = json_api(
        &server,
        "POST",
        &format!("{PODS}/web/binding"),
        Some(&binding),
    );
    assert_eq!(
        (code, status["status"].as_str()),
        (201, Some("Success")),
        "{status}"
    );
    let (code, status) = json_api(
        &server,
        "POST",
        &format!("{PODS}/web/binding"),
        Some(&binding),
    );
    assert_eq!(code, 409, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains(r#"already assigned to node "node-1""#)
    );
    let (_, bound) = json_api(&server, "GET", &format!("{PODS}/web"), None);
    assert_eq!(bound["spec"]["nodeName"], "node-1");
    assert_eq!(bound["status"]["conditions"][0]["type"], "PodScheduled");

    // A running pod on a node is deleted gracefully: marked with its grace period, still readable; a second
    // delete with a grace period of 0 removes it.
    let (code, marked) = json_api(
        &server,
        "DELETE",
        &format!("{PODS}/web"),
        Some(&json!({"preconditions": {"uid": uid}})),
    );
    assert_eq!(code, 200, "{marked}");
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 20);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let (code, still) = json_api(&server, "GET", &format!("{PODS}/web"), None);
    assert_eq!(code, 200);
    assert_eq!(still["metadata"]["deletionGracePeriodSeconds"], 20);
    let (code, _) = json_api(
        &server,
        "DELETE",
        &format!("{PODS}/web?gracePeriodSeconds=0"),
        None,
    );
    assert_eq!(code, 200);
    let (code, _) = json_api(&server, "GET", &format!("{PODS}/web"), None);
    assert_eq!(code, 404);

    // DELETE on the collection removes what the selector matches, and only that.
    for (name, app) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        let (code, body) = json_api(&server, "POST", PODS, Some(&pod(name, json!({"app": app}))));
        assert_eq!(code, 201, "{body}");
    }
    let (code, deleted) = json_api(
        &server,
        "DELETE",
        &format!("{PODS}?labelSelector=app%3Da"),
        None,
    );
    assert_eq!(code, 200, "{deleted}");
    assert_eq!(deleted["items"].as_array().unwrap().len(), 2, "{deleted}");
    let names = ok("1.33", &server, &["get", "pods", "-o", "name"]);
    assert_eq!(names, "pod/b1\n");
    let (code, bad) = json_api(
        &server,
        "DELETE",
        &format!("{PODS}/b1"),
        Some(&json!({"propagationPolicy": "Sideways"})),
    );
    assert_eq!(code, 422, "{bad}");
}

#[test]
fn eviction_respects_disruption_budgets() {
    // No disruption controller: the budget's status is what the test writes.
    let server = Server::without_controllers();
    for name in ["db-0", "free"] {
        let labels = if name == "free" {
            json!({"app": "free"})
        } else {
            json!({"app": "db"})
        };
        let (code, body) = json_api(&server, "POST", PODS, Some(&pod(name, labels)));
        assert_eq!(code, 201, "{body}");
    }
    // A Pending pod disrupts nothing (any eviction deletes it): db-0 runs, ready.
    let running =
        r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;
    let args = [
        "patch",
        "pod",
        "db-0",
        "--subresource=status",
        "--type=merge",
        "-p",
        running,
    ];
    assert!(kubectl("1.33", &server, &args).status.success());
    let budget = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                        "metadata": {"name": "db"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}});
    let budgets = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
    let (code, body) = json_api(&server, "POST", budgets, Some(&budget));
    assert_eq!(code, 201, "{body}");
    let eviction = |name: &str| json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}});
    // No disruption allowed (the budget's status says none): 429 and the pod stays.
    let (code, refused) = json_api(
        &server,
        "POST",
        &format!("{PODS}/db-0/eviction"),
        Some(&eviction("db-0")),
    );
    assert_eq!(code, 429, "{refused}");
    assert_eq!(refused["reason"], "TooManyRequests");
    assert_eq!(
        refused["details"]["causes"][0]["reason"],
        "DisruptionBudget"
    );
    assert_eq!(
        json_api(&server, "GET", &format!("{PODS}/db-0"), None).0,
        200
    );

    // Once the budget allows one, the eviction deletes the pod and uses it up.
    let (code, body) = json_api(&server, "PATCH", &format!("{budgets}/db/status"), None);
    assert_eq!(code, 415, "a PATCH without a patch type is refused: {body}");
    let status = json!({"status": {"disruptionsAllowed": 1, "currentHealthy": 1, "desiredHealthy": 1,
                                   "expectedPods": 1, "observedGeneration": 1}});
    let out = kubectl(
        "1.33",
        &server,
        &[
            "patch",
            "pdb",
            "db",
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let (code, body) = json_api(
        &server,
        "POST",
        &format!("{PODS}/db-0/eviction"),
        Some(&eviction("db-0")),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        json_api(&server, "GET", &format!("{PODS}/db-0"), None).0,
        404
    );
    let (_, after) = json_api(&server, "GET", &format!("{budgets}/db"), None);
    assert_eq!(after["status"]["disruptionsAllowed"], 0);
    // A pod no budget covers is simply deleted.
    let (code, body) = json_api(
        &server,
        "POST",
        &format!("{PODS}/free/eviction"),
        Some(&eviction("free")),
    );
    assert_eq!(code, 201, "{body}");
}

#[test]
fn kubectl_shows_validation_errors_with_their_fields() {
    let server = Server::start();
    let manifest = write(
        server.dir.path(),
        "bad.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: -1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: other}\n    spec:\n      containers:\n      - name: Web\n        image: nginx\n",
    );
    let out = kubectl(
        "1.33",
        &server,
        &[
            "create",
            "--validate=false",
            "-f",
            manifest.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for expected in [
        r#"The Deployment "web" is invalid"#,
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "spec.template.metadata.labels: Invalid value: ",
        "`selector` does not match template `labels`",
        r#"spec.template.spec.containers[0].name: Invalid value: "Web""#,
    ] {
        assert!(stderr.contains(expected), "{expected} not in {stderr}");
    }
    assert!(
        !kubectl("1.33", &server, &["get", "deployment", "web"])
            .status
            .success()
    );
    let job = write(
        server.dir.path(),
        "job.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: busybox\n",
    );
    let out = kubectl(
        "1.33",
        &server,
        &["create", "--validate=false", "-f", job.to_str().unwrap()],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.template.spec.restartPolicy"),
        "{out:?}"
    );
}

#[test]
fn yaml_responses_and_watch_bookmarks() {
    let server = Server::start();
    let (code, yaml) = api(
        &server,
        "GET",
        "/api/v1/namespaces/default",
        None,
        "application/yaml",
    );
    assert_eq!(code, 200);
    assert!(
        yaml.contains("kind: Namespace\n") && yaml.contains("name: default\n"),
        "{yaml}"
    );
    let (code, yaml) = api(
        &server,
        "GET",
        "/api/v1/namespaces/nope",
        None,
        "application/yaml",
    );
    assert_eq!(code, 404);
    assert!(yaml.contains("reason: NotFound"), "{yaml}");

    // sendInitialEvents: the current objects, then a bookmark that says they are all there.
    let tls = server.dir.path().join("tls");
    let mut watch = Command::new("curl")
        .args(["-skN", "--cert"])
        .arg(tls.join("admin.crt"))
        .arg("--key")
        .arg(tls.join("admin.key"))
        .arg(server.url(
            "/api/v1/namespaces?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=5",
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let events: Vec<Value> = BufReader::new(watch.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .take(5)
        .collect();
    let _ = watch.kill();
    let _ = watch.wait();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["ADDED", "ADDED", "ADDED", "ADDED", "BOOKMARK"],
        "{events:?}"
    );
    let bookmark = &events[4]["object"];
    assert_eq!(
        bookmark["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert!(
        bookmark["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    let (code, _) = api(
        &server,
        "GET",
        "/api/v1/namespaces?watch=true&sendInitialEvents=true",
        None,
        "application/json",
    );
    assert_eq!(
        code, 422,
        "sendInitialEvents needs bookmarks and NotOlderThan"
    );
}

#[test]
fn events_are_one_storage_in_two_api_groups() {
    let server = Server::start();
    let core = "/api/v1/namespaces/default/events";
    let new = "/apis/events.k8s.io/v1/namespaces/default/events";
    let (code, body) = json_api(
        &server,
        "POST",
        core,
        Some(
            &json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "old-style"},
                     "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
                     "reason": "Pulled", "message": "image pulled", "type": "Normal", "count": 3,
                     "source": {"component": "kubelet"}}),
        ),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = json_api(
        &server,
        "POST",
        new,
        Some(
            &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "new-style"},
                     "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
                     "reason": "Scheduled", "note": "assigned to node-1", "type": "Normal",
                     "eventTime": "2026-11-28T10:00:00.000000Z", "action": "Binding",
                     "reportingController": "gantry-scheduler", "reportingInstance": "gantry-scheduler-1"}),
        ),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["note"], "assigned to node-1");

    // Each group reads both, in its own form.
    let (_, old_as_new) = json_api(&server, "GET", &format!("{new}/old-style"), None);
    assert_eq!(old_as_new["apiVersion"], "events.k8s.io/v1");
    assert_eq!(old_as_new["regarding"]["name"], "web");
    assert_eq!(old_as_new["note"], "image pulled");
    assert_eq!(old_as_new["deprecatedCount"], 3);
    let (_, new_as_old) = json_api(&server, "GET", &format!("{core}/new-style"), None);
    assert_eq!(new_as_old["apiVersion"], "v1");
    assert_eq!(new_as_old["involvedObject"]["name"], "web");
    assert_eq!(new_as_old["message"], "assigned to node-1");
    assert_eq!(new_as_old["reportingComponent"], "gantry-scheduler");
    let (_, listed) = json_api(&server, "GET", new, None);
    let notes: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["note"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["assigned to node-1", "image pulled"]);
    // kubectl's event reads (describe selects them by involved object) see both.
    let events = ok(
        "1.33",
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web",
            "-o",
            "name",
        ],
    );
    assert_eq!(events, "event/new-style\nevent/old-style\n");
    // A patch through the new group changes the shared object.
    let out = kubectl(
        "1.33",
        &server,
        &[
            "patch",
            "events.v1.events.k8s.io",
            "old-style",
            "--type=merge",
            "-p",
            r#"{"note":"pulled again"}"#,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let (_, patched) = json_api(&server, "GET", &format!("{core}/old-style"), None);
    assert_eq!(patched["message"], "pulled again");
    assert_eq!(patched["involvedObject"]["name"], "web");
}

#[test]
fn logs_and_exec_say_why_they_cannot_answer_yet() {
    let server = Server::start();
    let (code, _) = json_api(
        &server,
        "POST",
        PODS,
        Some(&pod("web", json!({"app": "web"}))),
    );
    assert_eq!(code, 201);
    let (code, status) = json_api(&server, "GET", &format!("{PODS}/web/log"), None);
    assert_eq!(
        (code, status["reason"].as_str()),
        (400, Some("BadRequest")),
        "{status}"
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("not assigned to a node")
    );
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"},
                         "target": {"kind": "Node", "name": "node-1"}});
    assert_eq!(
        json_api(
            &server,
            "POST",
            &format!("{PODS}/web/binding"),
            Some(&binding)
        )
        .0,
        201
    );
    let (code, status) = json_api(&server, "GET", &format!("{PODS}/web/log"), None);
    assert_eq!(code, 503, "{status}");
    assert!(
        status["message"].as_str().unwrap().contains("node agent"),
        "{status}"
    );
    let (code, _) = json_api(&server, "GET", &format!("{PODS}/missing/log"), None);
    assert_eq!(code, 404);
}

#[test]
fn field_validation_reports_duplicate_fields() {
    let server = Server::start();
    let tls = server.dir.path().join("tls");
    let post = |validation: &str| {
        let out = Command::new("curl")
            .args(["-sk", "-i", "-X", "POST", "-H", "Content-Type: application/json", "--cert"])
            .arg(tls.join("admin.crt"))
            .arg("--key")
            .arg(tls.join("admin.key"))
            .arg("--data-binary")
            .arg(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1","a":"2"}}"#)
            .arg(server.url(&format!("/api/v1/namespaces/default/configmaps?fieldValidation={validation}")))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let strict = post("Strict");
    assert!(strict.starts_with("HTTP/2 400"), "{strict}");
    assert!(
        strict.contains(r#"strict decoding error: duplicate field \"data.a\""#),
        "{strict}"
    );
    let warned = post("Warn");
    assert!(warned.starts_with("HTTP/2 201"), "{warned}");
    assert!(
        warned.contains(r#"warning: 299 - "duplicate field \"data.a\"""#),
        "{warned}"
    );
    // A merge patch has the object's shape, so its duplicate keys count too.
    let out = Command::new("curl")
        .args([
            "-sk",
            "-i",
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/merge-patch+json",
            "--cert",
        ])
        .arg(tls.join("admin.crt"))
        .arg("--key")
        .arg(tls.join("admin.key"))
        .arg("--data-binary")
        .arg(r#"{"data":{"b":"1","b":"2"}}"#)
        .arg(server.url("/api/v1/namespaces/default/configmaps/dup?fieldValidation=Strict"))
        .output()
        .unwrap();
    let patched = String::from_utf8(out.stdout).unwrap();
    assert!(patched.starts_with("HTTP/2 400"), "{patched}");
    assert!(
        patched.contains(r#"duplicate field \"data.b\""#),
        "{patched}"
    );
}

//! End to end: startup probes, native sidecars (init containers with `restartPolicy: Always`), and two
//! containers talking over a Unix domain socket in a shared emptyDir, all under a real `gantry server` with its
//! node agent running real containers.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::node::{IMAGE, KUBECTL, container, node_name, server, wait_for};
use support::{Server, kubectl, ok, write};

/// Creates the pods of `manifest` (YAML, `{node}` and `{image}` filled in).
fn create(server: &Server, file: &str, manifest: &str) {
    let manifest = manifest
        .replace("{node}", &node_name())
        .replace("{image}", IMAGE);
    let path = write(server.dir.path(), file, &manifest);
    ok(KUBECTL, server, &["create", "-f", path.to_str().unwrap()]);
}

/// The events about the pod `name`, as `reason: message`.
fn events_of(server: &Server, name: &str) -> Vec<String> {
    let selector = format!("involvedObject.name={name}");
    let list = ok(
        KUBECTL,
        server,
        &["get", "events", "--field-selector", &selector, "-o", "json"],
    );
    let list: Value = serde_json::from_str(&list).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e["involvedObject"]["fieldPath"].as_str().unwrap_or("-"),
                e["reason"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// The events about the pod `name` once they include every one of `wanted` (within `limit`).
fn events_until(server: &Server, name: &str, limit: Duration, wanted: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let events = events_of(server, name);
        if wanted.iter().all(|w| events.iter().any(|e| e == w)) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "the events of {name} lack some of {wanted:?}: {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The status of the pod's container `name`, or `null` while it has none.
fn status_of(pod: &Value, name: &str) -> Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_default()
}

/// The status of the pod's init container `name`, or `null` while it has none.
fn init_status_of(pod: &Value, name: &str) -> Value {
    pod["status"]["initContainerStatuses"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_default()
}

/// The status (`True`/`False`) of the pod's condition `type_`.
fn condition(pod: &Value, type_: &str) -> Value {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .map(|c| c["status"].clone())
        .unwrap_or_default()
}

/// `kubectl logs POD -c CONTAINER` once it contains `wanted` (within `limit`; before the container starts,
/// kubectl fails).
fn logs_until(
    server: &Server,
    pod: &str,
    container: &str,
    limit: Duration,
    wanted: &str,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let out = kubectl(KUBECTL, server, &["logs", pod, "-c", container]);
        let logs = String::from_utf8_lossy(&out.stdout).into_owned();
        if logs.contains(wanted) {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "the logs of {pod}/{container} lack {wanted:?}: {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_startup_probe_holds_the_liveness_probe_and_one_that_never_passes_restarts_its_container() {
    let server = server("10.91.0.0/24", "gtest91");
    // `slow` is up after 3 s; its liveness probe would kill it at its first failure if it ran before then.
    // `stuck`'s never is.
    create(
        &server,
        "starting.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: starting}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: slow
    image: {image}
    imagePullPolicy: Never
    command: [sh, -c, "sleep 3; touch /tmp/up; exec sleep 3600"]
    startupProbe: {exec: {command: [test, -e, /tmp/up]}, periodSeconds: 1, failureThreshold: 30}
    livenessProbe: {exec: {command: [test, -e, /tmp/up]}, periodSeconds: 1, failureThreshold: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: stuck}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: never
    image: {image}
    imagePullPolicy: Never
    command: [sleep, "3600"]
    startupProbe: {exec: {command: [test, -e, /tmp/never]}, periodSeconds: 1, failureThreshold: 2}
"#,
    );
    // Running, but neither started nor ready (nor the pod Ready) while its startup probe fails.
    let starting = wait_for(&server, "starting", Duration::from_secs(30), |p| {
        status_of(p, "slow")["state"]["running"].is_object()
    });
    let slow = status_of(&starting, "slow");
    assert_eq!(slow["started"], false, "{slow:#}");
    assert_eq!(slow["ready"], false, "{slow:#}");
    assert_eq!(condition(&starting, "Ready"), "False");
    // Then started, and the pod Ready, never restarted: the liveness probe did not run before.
    let started = wait_for(&server, "starting", Duration::from_secs(20), |p| {
        status_of(p, "slow")["started"] == true
    });
    let slow = status_of(&started, "slow");
    assert_eq!(slow["ready"], true, "{slow:#}");
    assert_eq!(slow["restartCount"], 0, "{slow:#}");
    assert_eq!(condition(&started, "Ready"), "True");

    // The other is killed after two failures and started again.
    let restarted = wait_for(&server, "stuck", Duration::from_secs(40), |p| {
        status_of(p, "never")["restartCount"].as_u64().unwrap_or(0) >= 1
    });
    let never = status_of(&restarted, "never");
    assert!(
        never["lastState"]["terminated"]["exitCode"].is_i64(),
        "{never:#}"
    );
    assert_eq!(condition(&restarted, "Ready"), "False");
    events_until(
        &server,
        "stuck",
        Duration::from_secs(20),
        &[
            "spec.containers{never} Unhealthy: Startup probe failed: command 'test -e /tmp/never' exited with 1",
            "spec.containers{never} Killing: Container never failed startup probe, will be restarted",
        ],
    );
    let events = events_until(
        &server,
        "starting",
        Duration::from_secs(20),
        &[
            "spec.containers{slow} Unhealthy: Startup probe failed: command 'test -e /tmp/up' exited with 1",
        ],
    );
    assert!(
        !events
            .iter()
            .any(|e| e.contains("Killing") || e.contains("Liveness")),
        "{events:#?}"
    );
    let now = wait_for(&server, "starting", Duration::from_secs(5), |_| true);
    assert_eq!(status_of(&now, "slow")["restartCount"], 0);
    assert_eq!(condition(&now, "Ready"), "True");
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "starting", "stuck", "--timeout=30s"],
    );
}

#[test]
fn native_sidecars_run_beside_the_containers_and_stop_once_they_are_done() {
    let server = server("10.92.0.0/24", "gtest92");
    // The sidecar serves a file from an emptyDir; the next init container fetches it through the pod's
    // localhost, and the container prints what it fetched.
    create(
        &server,
        "sidecar.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: sidecar}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes: [{name: shared, emptyDir: {}}]
  initContainers:
  - name: web
    image: {image}
    imagePullPolicy: Never
    restartPolicy: Always
    command: [sh, -c, "echo served by the sidecar > /shared/x; exec httpd -f -p 8081 -h /shared"]
    volumeMounts: [{name: shared, mountPath: /shared}]
    startupProbe: {tcpSocket: {port: 8081}, periodSeconds: 1}
  - name: fetch
    image: {image}
    imagePullPolicy: Never
    command: [sh, -c, "for i in $(seq 1 50); do wget -q -O /shared/fetched http://127.0.0.1:8081/x && exit 0; sleep 0.2; done; exit 1"]
    volumeMounts: [{name: shared, mountPath: /shared}]
  containers:
  - name: main
    image: {image}
    imagePullPolicy: Never
    command: [sh, -c, "cat /shared/fetched; exec sleep 3600"]
    volumeMounts: [{name: shared, mountPath: /shared}]
---
apiVersion: v1
kind: Pod
metadata: {name: job}
spec:
  nodeName: {node}
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: web
    image: {image}
    imagePullPolicy: Never
    restartPolicy: Always
    command: [httpd, -f, -p, "8082", -h, /tmp]
  containers:
  - name: main
    image: {image}
    imagePullPolicy: Never
    command: [sh, -c, "sleep 2; echo done"]
"#,
    );
    let ready = wait_for(&server, "sidecar", Duration::from_secs(60), |p| {
        condition(p, "Ready") == "True"
    });
    assert_eq!(ready["status"]["phase"], "Running");
    let web = init_status_of(&ready, "web");
    assert!(web["state"]["running"].is_object(), "{web:#}");
    assert_eq!(web["started"], true, "{web:#}");
    assert_eq!(web["ready"], true, "{web:#}");
    let fetch = init_status_of(&ready, "fetch");
    assert_eq!(fetch["state"]["terminated"]["exitCode"], 0, "{fetch:#}");
    assert_eq!(fetch["state"]["terminated"]["reason"], "Completed");
    assert!(
        container(&ready, "main")["state"]["running"].is_object(),
        "{:#}",
        ready["status"]
    );
    assert_eq!(condition(&ready, "Initialized"), "True");
    logs_until(
        &server,
        "sidecar",
        "main",
        Duration::from_secs(10),
        "served by the sidecar\n",
    );
    // The sidecar had started before the next init container ran: its first fetch worked.
    let fetch_logs = ok(KUBECTL, &server, &["logs", "sidecar", "-c", "fetch"]);
    assert_eq!(fetch_logs, "", "{fetch_logs}");

    // A pod that runs to completion: once its container is done, its sidecar is stopped and it succeeds.
    let done = wait_for(&server, "job", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Succeeded" || p["status"]["phase"] == "Failed"
    });
    assert_eq!(done["status"]["phase"], "Succeeded", "{:#}", done["status"]);
    let main = container(&done, "main");
    assert_eq!(main["state"]["terminated"]["exitCode"], 0, "{main:#}");
    let web = init_status_of(&done, "web");
    let stopped = &web["state"]["terminated"];
    assert!(stopped.is_object(), "{web:#}");
    assert_eq!(web["restartCount"], 0, "{web:#}");
    // It ran until the container ended.
    let finished = |t: &Value| t["finishedAt"].as_str().unwrap().to_owned();
    assert!(
        finished(stopped) >= finished(&main["state"]["terminated"]),
        "{:#}",
        done["status"]
    );
    events_until(
        &server,
        "job",
        Duration::from_secs(20),
        &[
            "spec.initContainers{web} Started: Started container web",
            "spec.initContainers{web} Killing: Stopping container web",
        ],
    );
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "sidecar", "job", "--timeout=30s"],
    );
}

#[test]
fn two_containers_talk_over_a_unix_socket_in_a_shared_empty_dir() {
    let server = server("10.93.0.0/24", "gtest93");
    // busybox's `nc` has no Unix sockets, but its syslogd listens on /dev/log (following a symlink to where
    // the socket goes) and its logger sends there: a datagram over a Unix socket in the emptyDir.
    create(
        &server,
        "unix.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: unix}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes: [{name: sockets, emptyDir: {}}]
  containers:
  - name: server
    image: {image}
    imagePullPolicy: Never
    command: [sh, -c, "ln -s /sockets/log /dev/log && exec busybox syslogd -n -O -"]
    volumeMounts: [{name: sockets, mountPath: /sockets}]
  - name: client
    image: {image}
    imagePullPolicy: Never
    command: [sh, -c, "ln -s /sockets/log /dev/log; until test -S /sockets/log; do sleep 0.1; done; busybox logger -t client hello over a unix socket from $(hostname); exec sleep 3600"]
    volumeMounts: [{name: sockets, mountPath: /sockets}]
"#,
    );
    let logs = logs_until(
        &server,
        "unix",
        "server",
        Duration::from_secs(60),
        "client: hello over a unix socket from unix",
    );
    assert!(logs.contains("syslogd started"), "{logs}");
    // What they share is a socket, seen from either container.
    for container in ["server", "client"] {
        let kind = ok(
            KUBECTL,
            &server,
            &[
                "exec",
                "unix",
                "-c",
                container,
                "--",
                "stat",
                "-c",
                "%F",
                "/sockets/log",
            ],
        );
        assert_eq!(kind, "socket\n", "{container}");
    }
    let pod = wait_for(&server, "unix", Duration::from_secs(5), |_| true);
    for name in ["server", "client"] {
        assert_eq!(
            status_of(&pod, name)["restartCount"],
            0,
            "{:#}",
            pod["status"]
        );
    }
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "unix", "--timeout=30s"],
    );
}

//! End to end: pods run as real containers (runc or crun, CNI bridge network, overlay root filesystems) under
//! the node agent of `gantry server`, with an image imported by `gantry image import`: an init container, two
//! containers talking over localhost and sharing an emptyDir, restarts by policy, and deletion cleaning up.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, kubectl, ok, write};

const KUBECTL: &str = "1.33";
const IMAGE: &str = "gantry.test/busybox:1";

/// A server with its node agent and what its pods leave behind if a test fails before deleting them: their
/// containers, pause processes and mounts go, and the bridge, when the test ends.
struct Node {
    server: Server,
    bridge: String,
}

impl std::ops::Deref for Node {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let agent = self.server.dir.path().join("agent");
        let root = agent.join("runtime");
        for runtime in ["runc", "crun"] {
            let Ok(out) = Command::new(runtime)
                .arg("--root")
                .arg(&root)
                .args(["list", "-q"])
                .output()
            else {
                continue;
            };
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = Command::new(runtime)
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "-f", id])
                    .status();
            }
        }
        for sandbox in std::fs::read_dir(agent.join("pods"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(pid) = std::fs::read_to_string(sandbox.path().join("sandbox/pause.pid")) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
        }
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        for mount in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
            if mount.starts_with(&*agent.to_string_lossy()) {
                let _ = Command::new("umount").args(["-l", mount]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// A server with its node agent, pods from `pod_cidr` on their own bridge `bridge` (tests run side by side),
/// and the busybox test image imported.
fn server(pod_cidr: &str, bridge: &str) -> Node {
    let endpoint_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let server = Server::start_with_agent_flags(&[
        "--pod-cidr",
        pod_cidr,
        "--cni-bridge",
        bridge,
        "--node-endpoint-port",
        &endpoint_port,
    ]);
    let layout = server.dir.path().join("busybox-layout");
    gantry_images::testimage::busybox(&layout, IMAGE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["image", "import"])
        .arg(&layout)
        .arg("--data-dir")
        .arg(server.dir.path().join("agent"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Node {
        server,
        bridge: bridge.to_owned(),
    }
}

fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_ascii_lowercase()
}

fn pod(server: &Server, name: &str) -> Value {
    serde_json::from_str(&ok(KUBECTL, server, &["get", "pod", name, "-o", "json"])).unwrap()
}

/// The pod once `check` holds (within `limit`).
fn wait_for(server: &Server, name: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let current = pod(server, name);
        if check(&current) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} never got there: {:#}",
            current["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[test]
fn a_pod_with_an_init_container_and_two_containers_sharing_localhost_and_a_volume() {
    let server = server("10.77.0.0/24", "gtest77");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  nodeName: {node}
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  volumes: [{{name: www, emptyDir: {{}}}}]
  initContainers:
  - name: setup
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "echo hello from $(POD_NAME) > /www/index.html"]
    env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
    volumeMounts: [{{name: www, mountPath: /www}}]
  containers:
  - name: server
    image: {IMAGE}
    imagePullPolicy: Never
    command: [httpd, -f, -p, "8080", -h, /www]
    volumeMounts: [{{name: www, mountPath: /www, readOnly: true}}]
  - name: client
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "for i in 1 2 3 4 5 6 7 8 9 10; do page=$(wget -q -O- http://127.0.0.1:8080/) && echo \"fetched: $page\" && exit 0; sleep 0.5; done; exit 1"]
"#,
        node = node_name()
    );
    let path = write(server.dir.path(), "web.yaml", &manifest);
    ok(KUBECTL, &server, &["create", "-f", path.to_str().unwrap()]);
    // The client exits 0 only if it fetched what the init container wrote, through the server container on
    // the pod's localhost.
    let done = wait_for(&server, "web", Duration::from_secs(60), |p| {
        p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["name"] == "client" && c["state"]["terminated"].is_object())
            })
    });
    let client = container(&done, "client");
    assert_eq!(
        client["state"]["terminated"]["exitCode"], 0,
        "{:#}",
        done["status"]
    );
    assert_eq!(client["state"]["terminated"]["reason"], "Completed");
    assert!(container(&done, "server")["state"]["running"].is_object());
    assert_eq!(done["status"]["phase"], "Running");
    assert_eq!(
        done["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    let ip = done["status"]["podIP"].as_str().unwrap();
    assert!(ip.starts_with("10.77.0."), "{ip}");
    assert!(
        container(&done, "server")["containerID"]
            .as_str()
            .unwrap()
            .starts_with("runc://")
    );
    // Logs come from the node agent through the API server; following a finished container ends.
    let logs = ok(KUBECTL, &server, &["logs", "web", "-c", "client"]);
    // (wget's complaints while the server starts come first, from stderr.)
    assert!(logs.ends_with("fetched: hello from web\n"), "{logs}");
    let followed = ok(KUBECTL, &server, &["logs", "web", "-c", "client", "-f"]);
    assert_eq!(followed, logs);
    let stamped = ok(
        KUBECTL,
        &server,
        &["logs", "web", "-c", "client", "--timestamps"],
    );
    assert!(
        stamped.starts_with("20") && stamped.ends_with(" fetched: hello from web\n"),
        "{stamped}"
    );
    let err = kubectl(KUBECTL, &server, &["logs", "web", "-c", "nope"]);
    assert!(!err.status.success());

    // Deleting the pod stops the server (after the grace period) and removes the pod.
    let started = Instant::now();
    ok(KUBECTL, &server, &["delete", "pod", "web", "--timeout=30s"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let gone = kubectl(KUBECTL, &server, &["get", "pod", "web"]);
    assert!(!gone.status.success());
}

#[test]
fn containers_restart_by_policy_and_a_missing_image_waits() {
    let server = server("10.78.0.0/24", "gtest78");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: flaky}}
spec:
  nodeName: {node}
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 1
  containers:
  - name: once
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "echo run at $(date +%s); test -e /tmp/ran && exit 0; touch /tmp/ran; exit 3"]
---
apiVersion: v1
kind: Pod
metadata: {{name: absent}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: gantry.test/nothing:1
    imagePullPolicy: Never
"#,
        node = node_name()
    );
    let path = write(server.dir.path(), "pods.yaml", &manifest);
    ok(KUBECTL, &server, &["create", "-f", path.to_str().unwrap()]);
    // The first run fails (exit 3) and the container runs again in a fresh root filesystem, so it fails
    // again: the restart count grows and the last state keeps the exit code.
    let restarted = wait_for(&server, "flaky", Duration::from_secs(60), |p| {
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    });
    let once = container(&restarted, "once");
    assert_eq!(
        once["lastState"]["terminated"]["exitCode"], 3,
        "{:#}",
        restarted["status"]
    );
    // Each run has its own log: --previous shows the one before.
    let previous = ok(KUBECTL, &server, &["logs", "flaky", "--previous"]);
    assert!(previous.starts_with("run at "), "{previous}");
    let absent = wait_for(&server, "absent", Duration::from_secs(20), |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImageNeverPull"
    });
    assert_eq!(absent["status"]["phase"], "Pending");
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "flaky", "absent", "--timeout=30s"],
    );
}

#[test]
fn running_containers_survive_an_agent_killed_and_restarted() {
    let mut node = server("10.79.0.0/24", "gtest79");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: steady}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sleep, "3600"]
"#,
        node = node_name()
    );
    let path = write(node.dir.path(), "steady.yaml", &manifest);
    ok(KUBECTL, &node, &["create", "-f", path.to_str().unwrap()]);
    let running = wait_for(&node, "steady", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    let before = container(&running, "c").clone();
    // The server and its agent die without a chance to clean up; the shim, the pause and the container do not.
    node.server.kill_and_restart();
    std::thread::sleep(Duration::from_secs(3));
    let after = wait_for(&node, "steady", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    let c = container(&after, "c");
    assert_eq!(
        c["containerID"], before["containerID"],
        "{:#}",
        after["status"]
    );
    assert_eq!(
        c["state"]["running"]["startedAt"],
        before["state"]["running"]["startedAt"]
    );
    assert_eq!(c["restartCount"], 0);
    assert_eq!(after["status"]["podIP"], running["status"]["podIP"]);
    ok(
        KUBECTL,
        &node,
        &["delete", "pod", "steady", "--timeout=30s"],
    );
}

#[test]
fn readiness_probes_flip_ready_and_failing_liveness_probes_restart() {
    let server = server("10.81.0.0/24", "gtest81");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: probed}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "sleep 2; mkdir -p /www && echo ok > /www/index.html && httpd -f -p 8080 -h /www"]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe: {{httpGet: {{port: http, path: /index.html}}, periodSeconds: 1}}
  - name: flag
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "sleep 2; touch /tmp/ready; sleep 3600"]
    readinessProbe: {{exec: {{command: [test, -e, /tmp/ready]}}, periodSeconds: 1}}
  - name: dying
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "touch /tmp/alive; sleep 2; rm /tmp/alive; sleep 3600"]
    livenessProbe: {{exec: {{command: [test, -e, /tmp/alive]}}, periodSeconds: 1, failureThreshold: 2}}
"#,
        node = node_name()
    );
    let path = write(server.dir.path(), "probed.yaml", &manifest);
    ok(KUBECTL, &server, &["create", "-f", path.to_str().unwrap()]);
    let ready = |p: &Value, name: &str| {
        p["status"]["containerStatuses"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .is_some_and(|c| c["ready"] == true)
    };
    // Running but not ready until the probes pass (the containers need 2 s).
    let running = wait_for(&server, "probed", Duration::from_secs(20), |p| {
        p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|c| c.len() == 3 && c.iter().all(|c| c["state"]["running"].is_object()))
    });
    assert!(
        !ready(&running, "flag") || !ready(&running, "web"),
        "{:#}",
        running["status"]
    );
    let both = wait_for(&server, "probed", Duration::from_secs(20), |p| {
        ready(p, "web") && ready(p, "flag")
    });
    assert!(
        both["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "ContainersReady")
    );
    // The liveness probe fails once /tmp/alive is gone: the container is stopped and started again.
    let restarted = wait_for(&server, "probed", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "dying"))
            .is_some_and(|c| c["restartCount"].as_u64().unwrap_or(0) >= 1)
    });
    let dying = container(&restarted, "dying");
    assert!(dying["lastState"]["terminated"].is_object(), "{dying:#}");
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "probed", "--timeout=30s"],
    );
}

#[test]
fn an_out_of_memory_container_is_oom_killed() {
    let server = server("10.82.0.0/24", "gtest82");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hungry}}
spec:
  nodeName: {node}
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: eater
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done"]
    resources: {{limits: {{memory: 16Mi}}}}
"#,
        node = node_name()
    );
    let path = write(server.dir.path(), "hungry.yaml", &manifest);
    ok(KUBECTL, &server, &["create", "-f", path.to_str().unwrap()]);
    let oom = wait_for(&server, "hungry", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Failed"
    });
    let eater = container(&oom, "eater");
    assert_eq!(
        eater["state"]["terminated"]["reason"], "OOMKilled",
        "{eater:#}"
    );
    assert_eq!(eater["state"]["terminated"]["exitCode"], 137);
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "hungry", "--timeout=30s"],
    );
}

#[test]
fn pre_stop_hooks_run_before_the_container_is_killed() {
    let server = server("10.83.0.0/24", "gtest83");
    // The hook calls this test over the pod network's gateway (the bridge, on the host).
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (called, calls) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut socket, _)) = listener.accept() {
            let mut request = [0u8; 1024];
            let read = socket.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..read])
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            let _ = called.send((line, Instant::now()));
        }
    });
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 3
  containers:
  - name: c
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sleep, "3600"]
    lifecycle:
      preStop: {{httpGet: {{host: 10.83.0.1, port: {port}, path: /prestop}}}}
"#,
        node = node_name()
    );
    let path = write(server.dir.path(), "hooked.yaml", &manifest);
    ok(KUBECTL, &server, &["create", "-f", path.to_str().unwrap()]);
    wait_for(&server, "hooked", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "hooked", "--wait=false"],
    );
    let (line, at) = calls
        .recv_timeout(Duration::from_secs(10))
        .expect("the preStop hook was not called");
    assert!(line.starts_with("GET /prestop "), "{line}");
    // The container ignores SIGTERM (PID 1 without a handler): it is killed when the grace period ends.
    let deadline = Instant::now() + Duration::from_secs(20);
    while kubectl(KUBECTL, &server, &["get", "pod", "hooked"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the pod was not deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(at.elapsed() < Duration::from_secs(15));
}

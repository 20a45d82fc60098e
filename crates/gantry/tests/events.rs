//! End to end: the node agent's events as `kubectl describe pod` shows them, postStart hooks, and images
//! pulled from a registry (Debian's docker-registry on loopback, over plain HTTP), all under a real
//! `gantry server` with its node agent running real containers.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::node::{
    IMAGE, KUBECTL, container, describe_until, node_name, server, server_with, wait_for,
};
use support::{Server, ok, write};

/// The events about the pod `name`, as the API lists them.
fn events_of(server: &Server, name: &str) -> Vec<Value> {
    let selector = format!("involvedObject.name={name}");
    let list = ok(
        KUBECTL,
        server,
        &["get", "events", "--field-selector", &selector, "-o", "json"],
    );
    let list: Value = serde_json::from_str(&list).unwrap();
    list["items"].as_array().unwrap().clone()
}

fn restart_count(pod: &Value, name: &str) -> u64 {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .and_then(|c| c["restartCount"].as_u64())
        .unwrap_or(0)
}

#[test]
fn post_start_hooks_run_before_the_container_is_running_and_failing_ones_restart_it() {
    let server = server("10.84.0.0/24", "gtest84");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "until test -e /tmp/started; do sleep 0.1; done; echo hook said $(cat /tmp/started); sleep 3600"]
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, "sleep 2; echo hi > /tmp/started"]}}}}
  - name: failing
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sleep, "3600"]
    lifecycle:
      postStart: {{exec: {{command: ["false"]}}}}
"#,
        node = node_name()
    );
    let path = write(server.dir.path(), "hooked.yaml", &manifest);
    ok(KUBECTL, &server, &["create", "-f", path.to_str().unwrap()]);
    let state = |p: &Value, name: &str| {
        p["status"]["containerStatuses"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .map(|c| c["state"].clone())
            .unwrap_or_default()
    };
    // While its hook runs (2 s), the container is started but still ContainerCreating, and not ready.
    let creating = wait_for(&server, "hooked", Duration::from_secs(30), |p| {
        state(p, "main")["waiting"]["reason"] == "ContainerCreating"
    });
    let main = container(&creating, "main");
    assert_eq!(main["ready"], false);
    assert!(
        main["containerID"].as_str().unwrap().starts_with("runc://"),
        "{main:#}"
    );
    // Then it runs, and what the hook wrote is what the container saw.
    let running = wait_for(&server, "hooked", Duration::from_secs(30), |p| {
        state(p, "main")["running"].is_object()
    });
    assert_eq!(container(&running, "main")["restartCount"], 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = ok(KUBECTL, &server, &["logs", "hooked", "-c", "main"]);
        if logs == "hook said hi\n" {
            break;
        }
        assert!(Instant::now() < deadline, "{logs:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The failing hook kills its container (1 s grace: `sleep` as PID 1 ignores SIGTERM), which starts
    // again after its back-off (10 s) and fails again.
    let restarted = wait_for(&server, "hooked", Duration::from_secs(60), |p| {
        restart_count(p, "failing") >= 2
    });
    let failing = container(&restarted, "failing");
    assert_eq!(
        failing["lastState"]["terminated"]["exitCode"], 137,
        "{failing:#}"
    );
    assert_eq!(container(&restarted, "main")["restartCount"], 0);
    assert!(state(&restarted, "main")["running"].is_object());
    let text = describe_until(
        &server,
        "hooked",
        Duration::from_secs(20),
        &[
            "FailedPostStartHook",
            "Exec lifecycle hook ([false]) for Container \"failing\" in Pod \"hooked_default(",
            "Created container: failing",
            "Started container failing",
            "Killing",
            "BackOff",
            "Back-off restarting failed container failing in pod hooked_default(",
            "Created container: main",
            "Started container main",
            "Container image \"gantry.test/busybox:1\" already present on machine",
        ],
    );
    assert!(text.contains("kubelet"), "{text}");

    // The events themselves: about the pod's container, from this node's kubelet, repeats counted.
    let uid = running["metadata"]["uid"].as_str().unwrap().to_owned();
    let events = events_of(&server, "hooked");
    let hook = events
        .iter()
        .find(|e| e["reason"] == "FailedPostStartHook")
        .unwrap();
    assert_eq!(hook["type"], "Warning");
    assert_eq!(hook["involvedObject"]["kind"], "Pod");
    assert_eq!(hook["involvedObject"]["apiVersion"], "v1");
    assert_eq!(hook["involvedObject"]["namespace"], "default");
    assert_eq!(hook["involvedObject"]["uid"], uid.as_str());
    assert_eq!(
        hook["involvedObject"]["fieldPath"],
        "spec.containers{failing}"
    );
    assert_eq!(hook["source"]["component"], "kubelet");
    assert_eq!(hook["source"]["host"], node_name().as_str());
    assert_eq!(hook["reportingComponent"], "kubelet");
    assert_eq!(hook["reportingInstance"], node_name().as_str());
    assert!(
        hook["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("hooked."),
        "{hook:#}"
    );
    // Two failures so far, one event counted twice.
    assert!(hook["count"].as_u64().unwrap() >= 2, "{hook:#}");
    assert!(
        hook["lastTimestamp"].as_str().unwrap() > hook["firstTimestamp"].as_str().unwrap(),
        "{hook:#}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["reason"] == "FailedPostStartHook")
            .count(),
        1
    );
    assert!(
        !events.iter().any(|e| e["reason"] == "Killing"
            && e["involvedObject"]["fieldPath"] == "spec.containers{main}"),
        "{events:#?}"
    );

    // Deleting the pod stops its containers, which the events say.
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "hooked", "--timeout=30s"],
    );
    let events = events_of(&server, "hooked");
    assert!(
        events.iter().any(|e| e["reason"] == "Killing"
            && e["message"] == "Stopping container main"
            && e["involvedObject"]["fieldPath"] == "spec.containers{main}"),
        "{events:#?}"
    );
}

/// Debian's docker-registry on a free loopback port, storing in a temp dir; killed on drop.
struct Registry {
    child: Child,
    address: String,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry (scripts/deps installs it)");
        let registry = Registry {
            child,
            address,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.address).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// Pushes the busybox test image as `busybox:latest`.
    fn push_busybox(&self) {
        let layout: PathBuf = self.dir.path().join("busybox-layout");
        gantry_images::testimage::busybox(&layout, "latest").unwrap();
        let out = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/busybox:latest", self.address))
            .output()
            .expect("skopeo (scripts/deps installs it)");
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn images_are_pulled_from_a_registry_with_events_and_a_missing_one_backs_off() {
    let registry = Registry::start();
    registry.push_busybox();
    let server = server_with(
        "10.85.0.0/24",
        "gtest85",
        &["--insecure-registry", &registry.address],
    );
    let image = format!("{}/busybox:latest", registry.address);
    let missing = format!("{}/missing:latest", registry.address);
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: pulled}}
spec:
  nodeName: {node}
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {image}
    imagePullPolicy: Always
    command: [sh, -c, "echo pulled and ran"]
---
apiVersion: v1
kind: Pod
metadata: {{name: absent}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {missing}
    imagePullPolicy: Always
"#,
        node = node_name()
    );
    let path = write(server.dir.path(), "pulls.yaml", &manifest);
    ok(KUBECTL, &server, &["create", "-f", path.to_str().unwrap()]);
    let done = wait_for(&server, "pulled", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Succeeded" || p["status"]["phase"] == "Failed"
    });
    let c = container(&done, "c");
    assert_eq!(
        c["state"]["terminated"]["exitCode"], 0,
        "{:#}",
        done["status"]
    );
    assert!(
        c["imageID"].as_str().unwrap().starts_with("sha256:"),
        "{c:#}"
    );
    let logs = ok(KUBECTL, &server, &["logs", "pulled"]);
    assert_eq!(logs, "pulled and ran\n");
    let text = describe_until(
        &server,
        "pulled",
        Duration::from_secs(20),
        &[
            &format!("Pulling image \"{image}\""),
            &format!("Successfully pulled image \"{image}\" in "),
            "Created container: c",
            "Started container c",
        ],
    );
    assert!(
        text.contains("Pulling") && text.contains("Pulled"),
        "{text}"
    );

    // Nothing in the registry by that name: the pull fails, then backs off.
    let absent = wait_for(&server, "absent", Duration::from_secs(60), |p| {
        let reason = &p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
        reason == "ErrImagePull" || reason == "ImagePullBackOff"
    });
    assert_eq!(absent["status"]["phase"], "Pending");
    describe_until(
        &server,
        "absent",
        Duration::from_secs(20),
        &[
            "Failed",
            &format!("Failed to pull image \"{missing}\""),
            "Error: ErrImagePull",
        ],
    );
    let backing_off = wait_for(&server, "absent", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    });
    let waiting = &backing_off["status"]["containerStatuses"][0]["state"]["waiting"];
    assert!(
        waiting["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Back-off pulling image \"{missing}\"")),
        "{waiting:#}"
    );
    describe_until(
        &server,
        "absent",
        Duration::from_secs(20),
        &[
            &format!("Back-off pulling image \"{missing}\""),
            "Error: ImagePullBackOff",
        ],
    );
    let failed = events_of(&server, "absent")
        .into_iter()
        .find(|e| e["reason"] == "Failed")
        .unwrap();
    assert_eq!(failed["type"], "Warning");
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "pulled", "absent", "--timeout=30s"],
    );
}

#[test]
fn failing_probes_are_unhealthy_events_and_a_failed_liveness_probe_kills() {
    let server = server("10.86.0.0/24", "gtest86");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: sick}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sleep, "3600"]
    readinessProbe: {{exec: {{command: [test, -e, /tmp/ready]}}, periodSeconds: 1}}
    livenessProbe: {{exec: {{command: [test, -e, /tmp/alive]}}, periodSeconds: 1, failureThreshold: 2}}
"#,
        node = node_name()
    );
    let path = write(server.dir.path(), "sick.yaml", &manifest);
    ok(KUBECTL, &server, &["create", "-f", path.to_str().unwrap()]);
    let restarted = wait_for(&server, "sick", Duration::from_secs(40), |p| {
        restart_count(p, "c") >= 1
    });
    assert_eq!(container(&restarted, "c")["ready"], false);
    describe_until(
        &server,
        "sick",
        Duration::from_secs(20),
        &[
            "Unhealthy",
            "Readiness probe failed: command 'test -e /tmp/ready' exited with 1",
            "Liveness probe failed: command 'test -e /tmp/alive' exited with 1",
            "Container c failed liveness probe, will be restarted",
        ],
    );
    let unhealthy = events_of(&server, "sick")
        .into_iter()
        .find(|e| e["reason"] == "Unhealthy")
        .unwrap();
    assert_eq!(unhealthy["type"], "Warning");
    assert_eq!(
        unhealthy["involvedObject"]["fieldPath"],
        "spec.containers{c}"
    );
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "sick", "--timeout=30s"],
    );
}

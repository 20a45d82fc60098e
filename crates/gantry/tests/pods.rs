//! End to end: pods run as real containers (runc or crun, CNI bridge network, overlay root filesystems) under
//! the node agent of `gantry server`, with an image imported by `gantry image import`: an init container, two
//! containers talking over localhost and sharing an emptyDir, restarts by policy, and deletion cleaning up.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::node::{IMAGE, KUBECTL, container, node_name, server, wait_for};
use support::{Server, kubectl, ok, write};

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
    // Pruning images leaves the one the pod's containers were made from.
    let image = |command: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["image", command, "--data-dir"])
            .arg(server.dir.path().join("agent"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(image("prune"), "freed 0 bytes\n");
    assert!(image("ls").contains(IMAGE));

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
    // With its containers gone, nothing uses the image any more.
    let pruned = image("prune");
    assert!(pruned.starts_with("deleted sha256:"), "{pruned}");
    assert!(!image("ls").contains(IMAGE));
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

/// Runs kubectl `version` with `stdin` fed to it; its output.
fn kubectl_with_input(
    version: &str,
    server: &Server,
    args: &[&str],
    stdin: &[u8],
) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(support::kubectl_dir().join(format!("kubectl.{version}")))
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// `kubectl port-forward` of `version` to the pod's port 8080, which only listens on the pod's localhost; an
/// HTTP GET through the forwarded local port.
fn get_through_port_forward(version: &str, server: &Server) -> String {
    use std::io::{BufRead, Read, Write};
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut forward = Command::new(support::kubectl_dir().join(format!("kubectl.{version}")))
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(["port-forward", "pod/shell", &format!("{local}:8080")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(forward.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("Forwarding from 127.0.0.1"), "{first}");
    let mut bodies = Vec::new();
    // Two connections in a row: each is a stream pair of its own over the one session.
    for _ in 0..2 {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        bodies.push(answer);
    }
    let _ = forward.kill();
    let _ = forward.wait();
    let body = |answer: &str| {
        answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
    };
    assert_eq!(body(&bodies[0]), body(&bodies[1]));
    bodies.remove(0)
}

#[test]
fn exec_attach_cp_and_port_forward_over_every_kubectl_protocol() {
    let server = server("10.87.0.0/24", "gtest87");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: shell}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "mkdir -p /www && echo hello through the tunnel > /www/index.html && httpd -p 127.0.0.1:8080 -h /www && i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]
"#,
        node = node_name()
    );
    let path = write(server.dir.path(), "shell.yaml", &manifest);
    ok(KUBECTL, &server, &["create", "-f", path.to_str().unwrap()]);
    wait_for(&server, "shell", Duration::from_secs(60), |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    // 1.27: SPDY for everything; 1.30: WebSocket exec, SPDY port-forward; 1.33: WebSocket exec, SPDY inside
    // WebSocket port-forward.
    for version in ["1.27", "1.30", "1.33"] {
        let out = kubectl(
            version,
            &server,
            &[
                "exec",
                "shell",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
        );
        assert_eq!(out.status.code(), Some(3), "kubectl {version}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n", "{version}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("err\n"),
            "{version}: {out:?}"
        );

        let input = "line one\nline two\n";
        let out = kubectl_with_input(
            version,
            &server,
            &["exec", "-i", "shell", "--", "cat"],
            input.as_bytes(),
        );
        assert!(out.status.success(), "kubectl {version}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), input, "{version}");

        // kubectl cp is tar over exec's stdin and stdout: a file bigger than one SPDY window or message.
        let local = server.dir.path().join(format!("payload-{version}"));
        let payload: String = (0..20_000).map(|i| format!("{i:07}\n")).collect();
        std::fs::write(&local, &payload).unwrap();
        let remote = format!("shell:/tmp/payload-{version}");
        ok(version, &server, &["cp", local.to_str().unwrap(), &remote]);
        let copied = ok(
            version,
            &server,
            &[
                "exec",
                "shell",
                "--",
                "md5sum",
                &format!("/tmp/payload-{version}"),
            ],
        );
        let expected = Command::new("md5sum").arg(&local).output().unwrap();
        assert_eq!(
            copied.split_whitespace().next(),
            String::from_utf8_lossy(&expected.stdout)
                .split_whitespace()
                .next(),
            "{version}"
        );
        let back = server.dir.path().join(format!("back-{version}"));
        ok(version, &server, &["cp", &remote, back.to_str().unwrap()]);
        assert_eq!(
            std::fs::read_to_string(&back).unwrap(),
            payload,
            "{version}"
        );

        let page = get_through_port_forward(version, &server);
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{version}: {page}");
        assert!(
            page.ends_with("hello through the tunnel\n"),
            "{version}: {page}"
        );
    }

    // Each kubectl got the protocol it tries first (a refused WebSocket upgrade would show as a 400 before
    // its SPDY fallback).
    let metrics = ok(KUBECTL, &server, &["get", "--raw", "/metrics"]);
    for (verb, resource) in [
        ("create", "pods/exec"),
        ("get", "pods/exec"),
        ("create", "pods/portforward"),
        ("get", "pods/portforward"),
    ] {
        let line = format!(
            "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"101\"}}"
        );
        assert!(metrics.contains(&line), "no {line} in {metrics}");
    }
    assert!(
        !metrics.contains("resource=\"pods/exec\",code=\"400\""),
        "{metrics}"
    );
    assert!(
        !metrics.contains("resource=\"pods/portforward\",code=\"400\""),
        "{metrics}"
    );

    // The Python client execs and port-forwards over WebSocket channels.
    let python = std::env::var("GANTRY_E2E_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/streams.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(server.kubeconfig())
        .arg("shell")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("python streams: ok"),
        "{out:?}"
    );

    // -t: the command runs under a terminal (kubectl needs one itself: `script` gives it a pseudo-terminal).
    let kubeconfig = server.kubeconfig();
    for version in ["1.27", "1.33"] {
        let line = format!(
            "{} --kubeconfig {} exec -it shell -- sh -c 'tty; stty size; exit 4'",
            support::kubectl_dir()
                .join(format!("kubectl.{version}"))
                .display(),
            kubeconfig.display()
        );
        let out = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(4), "{version}: {text}");
        assert!(text.contains("/dev/pts/"), "{version}: {text}");
    }

    // attach relays the container's output from now on.
    let mut attach = Command::new(support::kubectl_dir().join(format!("kubectl.{KUBECTL}")))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["attach", "shell"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(attach.stdout.take().unwrap()));
    let ticks: Vec<String> = (0..3).map(|_| lines.next().unwrap().unwrap()).collect();
    let _ = attach.kill();
    let _ = attach.wait();
    assert!(ticks.iter().all(|t| t.starts_with("tick ")), "{ticks:?}");

    // Bad input: no command, a container that does not exist, a pod that does not exist.
    let out = kubectl(
        KUBECTL,
        &server,
        &["exec", "shell", "-c", "nope", "--", "true"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("container nope is not valid"),
        "{out:?}"
    );
    let out = kubectl(KUBECTL, &server, &["exec", "missing", "--", "true"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound")
            || String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{out:?}"
    );
    let out = kubectl(
        KUBECTL,
        &server,
        &["exec", "shell", "--", "/no/such/binary"],
    );
    assert!(!out.status.success(), "{out:?}");
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "shell", "--timeout=30s"],
    );
}

//! End to end: node agents register their Nodes and keep Leases — the one `gantry server` runs for its own
//! machine, and a second one joining with `gantry agent` and a token from `gantry token create`.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::machine::Machine;
use support::{Server, kubectl, ok};

const KUBECTL: &str = "1.33";

/// Kills the agent process on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(server: &Server, token: &str, name: &str) -> Agent {
    let data = server.dir.path().join(format!("agent-{name}"));
    Agent(
        Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args([
                "agent",
                "--server",
                &server.url(""),
                "--token",
                token,
                "--node-name",
                name,
            ])
            .args(["--node-ip", "127.0.0.2", "--ca-file"])
            .arg(server.dir.path().join("tls/ca.crt"))
            .arg("--data-dir")
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The Node called `name` once it exists (within 10 s).
fn node(server: &Server, name: &str) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let out = kubectl(KUBECTL, server, &["get", "node", name, "-o", "json"]);
        if out.status.success() {
            return Some(serde_json::from_slice(&out.stdout).unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn condition<'a>(node: &'a Value, type_: &str) -> &'a Value {
    node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
}

#[test]
fn agents_register_nodes_and_renew_leases() {
    let server = Server::start_with_agent();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_ascii_lowercase();
    let own = node(&server, &hostname).expect("the server's own node registers");
    assert_eq!(condition(&own, "Ready")["status"], "True");
    assert!(
        own["status"]["capacity"]["cpu"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    assert!(
        own["status"]["capacity"]["memory"]
            .as_str()
            .unwrap()
            .ends_with("Ki")
    );
    assert_eq!(
        own["status"]["nodeInfo"]["kubeletVersion"],
        "v1.33.0-gantry"
    );
    assert_eq!(
        own["metadata"]["labels"]["kubernetes.io/hostname"],
        hostname.as_str()
    );
    let lease: Value = serde_json::from_str(&ok(
        KUBECTL,
        &server,
        &[
            "get",
            "lease",
            &hostname,
            "-n",
            "kube-node-lease",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], hostname.as_str());
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    assert_eq!(
        lease["metadata"]["ownerReferences"][0]["uid"],
        own["metadata"]["uid"]
    );

    // A second machine joins with a token made while the server runs.
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["token", "create", "--data-dir"])
        .arg(server.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let _second = agent(&server, &token, "second");
    let second = node(&server, "second").expect("the joining node registers");
    assert_eq!(condition(&second, "Ready")["status"], "True");
    assert_eq!(second["status"]["addresses"][0]["address"], "127.0.0.2");
    ok(
        KUBECTL,
        &server,
        &["get", "lease", "second", "-n", "kube-node-lease"],
    );

    // A wrong token registers nothing.
    let _intruder = agent(&server, "K10notatoken", "intruder");
    std::thread::sleep(Duration::from_secs(2));
    let out = kubectl(KUBECTL, &server, &["get", "node", "intruder"]);
    assert!(!out.status.success());
    let nodes = ok(KUBECTL, &server, &["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.lines().count(), 2, "{nodes}");
}

#[test]
fn an_agent_in_its_own_network_namespace_joins_and_runs_pods() {
    let machine = Machine::create(88);
    let server = Server::start_on_all_interfaces(&["--tls-san", &machine.tls_san()]);
    let mut agent = machine.join(&server, "machine2");
    let data = agent.data.clone();
    let joined = node(&server, "machine2").expect("the agent in its namespace registers");
    assert_eq!(condition(&joined, "Ready")["status"], "True");
    assert_eq!(joined["status"]["addresses"][0]["address"], "10.88.0.2");

    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "away"}},
            "spec": {{"nodeName": "machine2", "terminationGracePeriodSeconds": 1,
              "containers": [{{"name": "main", "image": "{}", "imagePullPolicy": "Never",
                "command": ["sh", "-c", "echo running on $(hostname); sleep 3600"]}}]}}}}"#,
        support::node::IMAGE
    );
    let path = support::write(server.dir.path(), "away.json", &manifest);
    ok(KUBECTL, &server, &["create", "-f", path.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let pod = loop {
        let pod: Value =
            serde_json::from_str(&ok(KUBECTL, &server, &["get", "pod", "away", "-o", "json"]))
                .unwrap();
        if pod["status"]["containerStatuses"][0]["state"]["running"].is_object() {
            break pod;
        }
        assert!(Instant::now() < deadline, "{:#}", pod["status"]);
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(pod["status"]["hostIP"], "10.88.0.2");
    assert!(
        pod["status"]["podIP"]
            .as_str()
            .unwrap()
            .starts_with("10.88.1."),
        "{:#}",
        pod["status"]
    );
    // Logs and exec travel from the API server to the agent's endpoint in the other namespace.
    let logs = ok(KUBECTL, &server, &["logs", "away"]);
    assert_eq!(logs, "running on away\n");
    let out = kubectl(
        KUBECTL,
        &server,
        &[
            "exec",
            "away",
            "--",
            "sh",
            "-c",
            "cat /etc/hostname; exit 5",
        ],
    );
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "away\n");

    // The pod is deleted while its agent is down: the agent, back, removes everything the pod left.
    agent.stop();
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "away", "--grace-period=0", "--force"],
    );
    let pods = data.join("pods");
    let left: Vec<_> = std::fs::read_dir(&pods).unwrap().flatten().collect();
    assert_eq!(left.len(), 1);
    let pause = std::fs::read_to_string(left[0].path().join("sandbox/pause.pid")).unwrap();
    agent.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&pods).unwrap().count() > 0 {
        assert!(Instant::now() < deadline, "the gone pod's files stay");
        std::thread::sleep(Duration::from_millis(200));
    }
    let runtime = data.join("runtime");
    for binary in ["runc", "crun"] {
        let listed = Command::new(binary)
            .arg("--root")
            .arg(&runtime)
            .args(["list", "-q"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&listed.stdout), "", "{binary}");
    }
    // The pod's pause process is gone (or a zombie its new parent has yet to reap).
    let stat = format!("/proc/{}/stat", pause.trim());
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(stat) = std::fs::read_to_string(&stat) {
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pause process is left: {stat}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_agent_that_is_not_root_refuses_to_start_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    // The unprivileged user may create its data directory there: what stops it is that it is not root.
    let open = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o777);
    std::fs::set_permissions(dir.path(), open).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_gantry"))
        .args(["agent", "--server", "https://127.0.0.1:1", "--token", "t"])
        .args([
            "--ca-file",
            "/etc/ssl/certs/ca-certificates.crt",
            "--data-dir",
        ])
        .arg(dir.path().join("agent"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the node agent must run as root"),
        "{stderr}"
    );
}

//! A cluster of machines for the network tests: a `gantry server` (without its own agent) and machines on
//! one [`Lan`], each running `gantry agent`; and the pods those tests run.

#![allow(clippy::disallowed_methods)] // test support: blocking sleeps are fine here

use std::time::{Duration, Instant};

use serde_json::Value;

use super::machine::{Agent, Lan, Machine};
use super::node::{IMAGE, KUBECTL};
use super::{Server, kubectl, ok, write};

/// A server and machines on a LAN; dropped machines first, then the LAN, then the server.
pub(crate) struct Cluster {
    pub(crate) machines: Vec<(Agent, Machine)>,
    pub(crate) lan: Lan,
    pub(crate) server: Server,
}

impl Cluster {
    /// LAN `n`, the server's pod network `cluster_cidr`, one machine per name (machine `k` is `10.N.0.<k+2>`).
    pub(crate) fn start(
        n: u8,
        cluster_cidr: &str,
        agent_flags: &[&str],
        names: &[&str],
    ) -> Cluster {
        let lan = Lan::create(n);
        let server = Server::start_on_all_interfaces(&[
            "--tls-san",
            &lan.tls_san(),
            "--cluster-cidr",
            cluster_cidr,
        ]);
        let mut cluster = Cluster {
            machines: Vec::new(),
            lan,
            server,
        };
        for (k, name) in names.iter().enumerate() {
            let machine = cluster.lan.machine(k as u8 + 2);
            let agent = machine.join_with(&cluster.server, name, agent_flags);
            cluster.machines.push((agent, machine));
        }
        cluster
    }

    pub(crate) fn get(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&ok(KUBECTL, &self.server, &all)).unwrap()
    }

    pub(crate) fn pod_cidr(&self, node: &str) -> String {
        self.get(&["get", "node", node])["spec"]["podCIDR"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub(crate) fn create(&self, name: &str, manifest: &str) {
        let path = write(self.server.dir.path(), &format!("{name}.yaml"), manifest);
        ok(
            KUBECTL,
            &self.server,
            &["apply", "-f", path.to_str().unwrap()],
        );
    }

    /// The pod's IP once it runs.
    pub(crate) fn running(&self, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let pod = self.get(&["get", "pod", name]);
            if pod["status"]["phase"] == "Running"
                && let Some(ip) = pod["status"]["podIP"].as_str()
            {
                return ip.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "pod {name} never ran: {:#}",
                pod["status"]
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What `command` printed in the pod's container (`None` when it failed).
    pub(crate) fn exec(&self, pod: &str, command: &[&str]) -> Option<String> {
        let mut args = vec!["exec", pod, "--"];
        args.extend_from_slice(command);
        let out = kubectl(KUBECTL, &self.server, &args);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `url` fetched from the pod (busybox wget under a timeout: its own `-T` is broken).
    pub(crate) fn fetch(&self, pod: &str, url: &str) -> Option<String> {
        self.exec(pod, &["timeout", "5", "wget", "-qO-", url])
    }

    /// The client address `/cgi-bin/ip` of the web pod at `ip` answers (busybox httpd writes IPv4 clients
    /// IPv6-mapped: `[::ffff:10.0.0.1]`).
    pub(crate) fn client_address(&self, pod: &str, ip: &str) -> String {
        let body = self.fetch_within(
            Duration::from_secs(10),
            pod,
            &format!("http://{ip}:8080/cgi-bin/ip"),
        );
        body.trim_start_matches("[::ffff:")
            .trim_end_matches(']')
            .to_owned()
    }

    /// [`fetch`](Self::fetch), retried until it answers (within `limit`).
    pub(crate) fn fetch_within(&self, limit: Duration, pod: &str, url: &str) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(body) = self.fetch(pod, url) {
                return body;
            }
            assert!(Instant::now() < deadline, "{pod} never fetched {url}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// A pod on `node` serving HTTP on 8080: `/cgi-bin/ip` answers the client's address as the pod sees it.
pub(crate) fn web_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: web}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {IMAGE}
    imagePullPolicy: Never
    command:
    - sh
    - -c
    - |
      mkdir -p /www/cgi-bin
      printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /www/cgi-bin/ip
      chmod +x /www/cgi-bin/ip
      hostname > /www/index.html
      exec httpd -f -p 8080 -h /www
"#
    )
}

/// Builds `tests/fixtures/udp_echo.rs` into a static `udp-echo` in `dir` (busybox has no UDP server or
/// client); pods get it through [`udp_pod`]'s hostPath volume. Returns its path.
pub(crate) fn build_udp_echo(dir: &std::path::Path) -> std::path::PathBuf {
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/udp_echo.rs");
    let binary = dir.join("udp-echo");
    let out = std::process::Command::new("rustc")
        .args([
            "--edition=2021",
            "-O",
            "-Ctarget-feature=+crt-static",
            "-Cstrip=symbols",
        ])
        .arg("-o")
        .arg(&binary)
        .arg(source)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rustc udp_echo.rs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    binary
}

/// A pod on `node` running `command` (a YAML flow list) with `udp-echo` (the file at `binary`) at `/udp-echo`.
pub(crate) fn udp_pod(name: &str, node: &str, binary: &std::path::Path, command: &str) -> String {
    let binary = binary.display();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: udp
    image: {IMAGE}
    imagePullPolicy: Never
    command: {command}
    volumeMounts: [{{name: udp-echo, mountPath: /udp-echo}}]
  volumes:
  - {{name: udp-echo, hostPath: {{path: "{binary}", type: File}}}}
"#
    )
}

/// A pod on `node` that only waits (the client of the tests).
pub(crate) fn client_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sleep, "3600"]
"#
    )
}

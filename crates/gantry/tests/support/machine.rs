//! More "machines" on this one, for tests of clusters of several nodes: each a network namespace joined to
//! the host by a veth pair, running its own `gantry agent` (which joins the test's server with a token).

#![allow(clippy::disallowed_methods)] // test support: blocking sleeps are fine here

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Server, kubectl, node};

/// A network namespace `gtmachineN` joined to the host by a veth pair: the host's end `10.N.0.1`, the
/// namespace's `10.N.0.2`. Removed on drop. The server must listen on every interface
/// ([`node::server_for_machines`]) with `--tls-san 10.N.0.1` ([`Machine::tls_san`]).
pub(crate) struct Machine {
    pub(crate) n: u8,
}

impl Machine {
    /// The machine numbered `n` (its addresses `10.N.0.0/24`, its pods `10.N.1.0/24`): each test its own.
    pub(crate) fn create(n: u8) -> Machine {
        let machine = Machine { n };
        // Left over from an interrupted run.
        machine.remove();
        let (netns, host_end, ns_end) = (machine.netns(), machine.host_end(), format!("gtm{n}n"));
        for command in [
            format!("ip netns add {netns}"),
            format!("ip link add {host_end} type veth peer name {ns_end}"),
            format!("ip link set {ns_end} netns {netns}"),
            format!("ip addr add 10.{n}.0.1/24 dev {host_end}"),
            format!("ip link set {host_end} up"),
            format!("ip -n {netns} addr add 10.{n}.0.2/24 dev {ns_end}"),
            format!("ip -n {netns} link set {ns_end} up"),
            format!("ip -n {netns} link set lo up"),
        ] {
            let args: Vec<&str> = command.split(' ').collect();
            let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
            assert!(status.success(), "{command}");
        }
        machine
    }

    pub(crate) fn netns(&self) -> String {
        format!("gtmachine{}", self.n)
    }

    fn host_end(&self) -> String {
        format!("gtm{}h", self.n)
    }

    /// The host's address as the machine sees it: the server's certificate must name it.
    pub(crate) fn tls_san(&self) -> String {
        format!("10.{}.0.1", self.n)
    }

    /// The machine's own address (its Node's InternalIP).
    pub(crate) fn ip(&self) -> String {
        format!("10.{}.0.2", self.n)
    }

    /// Joins `server` as the node `name`: imports the busybox test image into a data directory of its own
    /// and starts `gantry agent` in the namespace. The agent runs until [`Agent::stop`] or drop.
    pub(crate) fn join(&self, server: &Server, name: &str) -> Agent {
        self.join_with(server, name, &[])
    }

    /// [`join`](Self::join) with more `gantry agent` flags.
    pub(crate) fn join_with(&self, server: &Server, name: &str, flags: &[&str]) -> Agent {
        let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["token", "create", "--data-dir"])
            .arg(server.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let data = server.dir.path().join(format!("machine-{name}"));
        let layout = server.dir.path().join(format!("busybox-layout-{name}"));
        gantry_images::testimage::busybox(&layout, node::IMAGE).unwrap();
        let imported = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["image", "import"])
            .arg(&layout)
            .arg("--data-dir")
            .arg(&data)
            .status()
            .unwrap();
        assert!(imported.success());
        let n = self.n;
        let mut command = vec![
            // nsenter changes the network namespace only (`ip netns exec` would also hide the cgroup mounts).
            format!("--net=/run/netns/{}", self.netns()),
            env!("CARGO_BIN_EXE_gantry").to_owned(),
            "agent".to_owned(),
            "--server".to_owned(),
            format!("https://10.{n}.0.1:{}", server.port),
            "--token".to_owned(),
            token,
            "--node-name".to_owned(),
            name.to_owned(),
            "--node-ip".to_owned(),
            self.ip(),
            "--pod-cidr".to_owned(),
            format!("10.{n}.1.0/24"),
            "--cni-bridge".to_owned(),
            "cni0".to_owned(),
            "--ca-file".to_owned(),
            server.dir.path().join("tls/ca.crt").display().to_string(),
            "--data-dir".to_owned(),
            data.display().to_string(),
        ];
        command.extend(flags.iter().map(|f| f.to_string()));
        let mut agent = Agent {
            command,
            data,
            child: None,
        };
        agent.start();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = kubectl(node::KUBECTL, server, &["get", "node", name, "-o", "json"]);
            if out.status.success() {
                let node: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let ready = node["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                if ready {
                    return agent;
                }
            }
            assert!(Instant::now() < deadline, "node {name} never became Ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn remove(&self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns()])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end()])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A `gantry agent` on a [`Machine`]; on drop it is killed and what its pods left is removed.
pub(crate) struct Agent {
    command: Vec<String>,
    /// The agent's data directory.
    pub(crate) data: PathBuf,
    child: Option<Child>,
}

impl Agent {
    /// Kills the agent (SIGKILL: a machine that went away); its containers keep running.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the agent again (after [`stop`](Self::stop)).
    pub(crate) fn start(&mut self) {
        self.stop();
        self.child = Some(
            Command::new("nsenter")
                .args(&self.command)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
        node::remove_leftovers(&self.data);
    }
}

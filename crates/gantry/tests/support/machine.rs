//! More "machines" on this one, for tests of clusters of several nodes: each a network namespace joined to
//! the host by a veth pair (alone, or on a [`Lan`] with other machines), running its own `gantry agent`
//! (which joins the test's server with a token).

#![allow(clippy::disallowed_methods)] // test support: blocking sleeps are fine here

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Server, kubectl, node};

/// A network namespace `gtmachineN` joined to the host by a veth pair: the host's end `10.N.0.1`, the
/// namespace's `10.N.0.2`. Removed on drop. The server must listen on every interface
/// ([`node::server_for_machines`]) with `--tls-san 10.N.0.1` ([`Machine::tls_san`]).
pub(crate) struct Machine {
    netns: String,
    host_end: String,
    ip: String,
    /// The host's address on the machine's link.
    gateway: String,
    /// The pods' addresses, when the agent is told them (else the server allocates them).
    pod_cidr: Option<String>,
}

/// Runs each of `commands` (words split at spaces), asserting that it succeeds.
fn run_all(commands: &[String]) {
    for command in commands {
        let args: Vec<&str> = command.split(' ').collect();
        let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
        assert!(status.success(), "{command}");
    }
}

impl Machine {
    /// The machine numbered `n` (its addresses `10.N.0.0/24`, its pods `10.N.1.0/24`): each test its own.
    pub(crate) fn create(n: u8) -> Machine {
        let machine = Machine {
            netns: format!("gtmachine{n}"),
            host_end: format!("gtm{n}h"),
            ip: format!("10.{n}.0.2"),
            gateway: format!("10.{n}.0.1"),
            pod_cidr: Some(format!("10.{n}.1.0/24")),
        };
        // Left over from an interrupted run.
        machine.remove();
        let (netns, host_end, ns_end) = (&machine.netns, &machine.host_end, format!("gtm{n}n"));
        run_all(&[
            format!("ip netns add {netns}"),
            format!("ip link add {host_end} type veth peer name {ns_end}"),
            format!("ip link set {ns_end} netns {netns}"),
            format!("ip addr add 10.{n}.0.1/24 dev {host_end}"),
            format!("ip link set {host_end} up"),
            format!("ip -n {netns} addr add 10.{n}.0.2/24 dev {ns_end}"),
            format!("ip -n {netns} link set {ns_end} up"),
            format!("ip -n {netns} link set lo up"),
        ]);
        machine
    }

    pub(crate) fn netns(&self) -> String {
        self.netns.clone()
    }

    /// The host's address as the machine sees it: the server's certificate must name it.
    pub(crate) fn tls_san(&self) -> String {
        self.gateway.clone()
    }

    /// The machine's own address (its Node's InternalIP).
    pub(crate) fn ip(&self) -> String {
        self.ip.clone()
    }

    /// Cuts the machine's link (as a pulled cable) or brings it back.
    pub(crate) fn set_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        run_all(&[format!("ip link set {} {state}", self.host_end)]);
    }

    /// Runs `command` in the machine's network namespace: its exit status and output.
    pub(crate) fn exec(&self, command: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(command)
            .output()
            .unwrap()
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
        let mut command = vec![
            // nsenter changes the network namespace only (`ip netns exec` would also hide the cgroup mounts).
            format!("--net=/run/netns/{}", self.netns),
            env!("CARGO_BIN_EXE_gantry").to_owned(),
            "agent".to_owned(),
            "--server".to_owned(),
            format!("https://{}:{}", self.gateway, server.port),
            "--token".to_owned(),
            token,
            "--node-name".to_owned(),
            name.to_owned(),
            "--node-ip".to_owned(),
            self.ip(),
            "--cni-bridge".to_owned(),
            "cni0".to_owned(),
            "--ca-file".to_owned(),
            server.dir.path().join("tls/ca.crt").display().to_string(),
            "--data-dir".to_owned(),
            data.display().to_string(),
        ];
        if let Some(cidr) = &self.pod_cidr {
            command.extend(["--pod-cidr".to_owned(), cidr.clone()]);
        }
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
            .args(["netns", "del", &self.netns])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .stderr(Stdio::null())
            .status();
    }
}

/// A shared L2 segment for machines, as a switch: the bridge `gtlan<N>` in the host's namespace with the
/// host's address `10.N.0.1/24`; machine `k` has `10.N.0.<k>` and its default route via the host. Removed on
/// drop (after its machines).
pub(crate) struct Lan {
    n: u8,
}

impl Lan {
    pub(crate) fn create(n: u8) -> Lan {
        let lan = Lan { n };
        lan.remove();
        run_all(&[
            format!("ip link add gtlan{n} type bridge"),
            format!("ip addr add 10.{n}.0.1/24 dev gtlan{n}"),
            format!("ip link set gtlan{n} up"),
        ]);
        lan
    }

    /// The host's address on the LAN: the server's certificate must name it.
    pub(crate) fn tls_san(&self) -> String {
        format!("10.{}.0.1", self.n)
    }

    /// Machine `k` (2..=254) on the LAN; its agent gets its pod addresses from the server.
    pub(crate) fn machine(&self, k: u8) -> Machine {
        let n = self.n;
        let machine = Machine {
            netns: format!("gtl{n}m{k}"),
            host_end: format!("gtl{n}m{k}h"),
            ip: format!("10.{n}.0.{k}"),
            gateway: self.tls_san(),
            pod_cidr: None,
        };
        machine.remove();
        let (netns, host_end) = (&machine.netns, &machine.host_end);
        run_all(&[
            format!("ip netns add {netns}"),
            format!("ip link add {host_end} type veth peer name eth0 netns {netns}"),
            format!("ip link set {host_end} master gtlan{n} up"),
            format!("ip -n {netns} addr add 10.{n}.0.{k}/24 dev eth0"),
            format!("ip -n {netns} link set eth0 up"),
            format!("ip -n {netns} link set lo up"),
            format!("ip -n {netns} route add default via 10.{n}.0.1"),
        ]);
        machine
    }

    fn remove(&self) {
        let _ = Command::new("ip")
            .args(["link", "del", &format!("gtlan{}", self.n)])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.remove();
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

//! Simulated nodes for tests of the control plane (`gantry agent --simulate N`: Nodes `sim-0`… that run the
//! pods bound to them without containers), and the polling the tests that use them share.

#![allow(clippy::disallowed_methods)] // test support: blocking sleeps are fine here

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Server, ok};

/// `gantry agent --simulate`, killed on drop.
pub(crate) struct Simulator(Child);

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `nodes` simulated nodes for `server` (more `gantry agent` flags in `flags`), once they are all Ready.
pub(crate) fn simulate(server: &Server, nodes: usize, flags: &[&str]) -> Simulator {
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["token", "create", "--data-dir"])
        .arg(server.dir.path())
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let simulator = Simulator(
        Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["agent", "--simulate", &nodes.to_string()])
            .args(flags)
            .args(["--server", &server.url(""), "--token", &token, "--ca-file"])
            .arg(server.dir.path().join("tls/ca.crt"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    until(Duration::from_secs(30), "Ready simulated nodes", || {
        let list = get(
            server,
            &["get", "nodes", "-l", "node.gantry.dev/simulated=true"],
        );
        let ready = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        (ready == nodes)
            .then_some(())
            .ok_or(format!("{ready} ready"))
    });
    simulator
}

/// `kubectl get ARGS -o json` (kubectl 1.33).
pub(crate) fn get(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&ok("1.33", server, &all)).unwrap()
}

/// Polls `check` every 200 ms until it holds; fails with what it last said after `limit`.
pub(crate) fn until(limit: Duration, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(()) => return,
            Err(state) => assert!(Instant::now() < deadline, "never {what}: {state}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

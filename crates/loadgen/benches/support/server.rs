//! What the benchmarks share: the `gantry` binary under test and a `gantry server` process of it.

#![allow(dead_code)] // each bench uses a part of it

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gantry_loadgen::{Client, Target};
use http::Method;

/// The release `gantry` binary: `--gantry PATH` (given), `$GANTRY_BIN`, `$CARGO_TARGET_DIR/release/gantry`
/// or the workspace's `target/release/gantry`.
pub(crate) fn gantry_binary(given: Option<PathBuf>) -> PathBuf {
    let gantry = given
        .or_else(|| std::env::var_os("GANTRY_BIN").map(PathBuf::from))
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
            target.join("release/gantry")
        });
    assert!(
        gantry.exists(),
        "{} is missing: run `cargo build --release -p gantry` first (or pass --gantry PATH)",
        gantry.display()
    );
    gantry
}

/// A `gantry server` process (no node agent) on a free loopback port with an empty data directory;
/// killed on drop.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
    spawned: Instant,
}

impl Server {
    pub(crate) fn spawn(gantry: &Path) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let spawned = Instant::now();
        let child = Command::new(gantry)
            // A pod network large enough for a /24 per node at 5,000 nodes (the default /16 has 256).
            .args([
                "server",
                "--disable-agent",
                "--cluster-cidr",
                "10.0.0.0/8",
                "--listen",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server {
            child,
            port,
            dir,
            spawned,
        }
    }

    /// Polls `/readyz` (a new connection each try, 1 ms apart) until a 200; the time since spawn.
    pub(crate) async fn ready(&self) -> Duration {
        let probe = Target::insecure("127.0.0.1", self.port);
        let deadline = self.spawned + Duration::from_secs(30);
        loop {
            if let Ok(client) = Client::connect(&probe, 1).await
                && let Ok((status, _)) = client
                    .send(None, Method::GET, "/readyz", "text/plain", None)
                    .await
                && status == http::StatusCode::OK
            {
                return self.spawned.elapsed();
            }
            assert!(Instant::now() < deadline, "no 200 on /readyz within 30 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub(crate) fn target(&self) -> Target {
        Target::from_kubeconfig(&self.kubeconfig()).unwrap()
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// (VmRSS, VmHWM) in MiB.
    pub(crate) fn memory(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .unwrap()
                / 1024.0
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

//! Shared by the end-to-end tests: a real `gantry server` process.

#![allow(clippy::unwrap_used, dead_code)] // test support: each test binary uses a part of it

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub(crate) mod cluster;
pub(crate) mod machine;
pub(crate) mod node;
pub(crate) mod simulator;

/// A `gantry server` on a free loopback port with a fresh data directory; killed on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
    flags: Vec<String>,
}

impl Server {
    pub(crate) fn start() -> Server {
        Self::start_with(&[])
    }

    /// A server whose controllers are off: objects stay as clients write them (no controller writes a
    /// Deployment's status or manages its fields), for tests of the API's own semantics.
    pub(crate) fn without_controllers() -> Server {
        Self::start_with(&["--disable-controllers"])
    }

    /// A server with extra `gantry server` flags.
    pub(crate) fn start_with(flags: &[&str]) -> Server {
        let mut all = vec!["--disable-agent"];
        all.extend_from_slice(flags);
        Self::spawn(&all)
    }

    /// A server running its node agent too.
    pub(crate) fn start_with_agent() -> Server {
        Self::spawn(&[])
    }

    /// A server running its node agent, with extra `gantry server` flags.
    pub(crate) fn start_with_agent_flags(flags: &[&str]) -> Server {
        Self::spawn(flags)
    }

    /// A server without its node agent that listens on every interface (agents in other network namespaces
    /// reach it), with extra flags.
    pub(crate) fn start_on_all_interfaces(flags: &[&str]) -> Server {
        let mut all = vec!["--disable-agent"];
        all.extend_from_slice(flags);
        Self::spawn_on("0.0.0.0", &all)
    }

    /// A server running its node agent that listens on every interface, with extra flags.
    pub(crate) fn start_with_agent_on_all_interfaces(flags: &[&str]) -> Server {
        Self::spawn_on("0.0.0.0", flags)
    }

    fn spawn(flags: &[&str]) -> Server {
        Self::spawn_on("127.0.0.1", flags)
    }

    fn spawn_on(ip: &str, flags: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        flags.extend(["--listen".to_owned(), format!("{ip}:{port}")]);
        let child = Self::run(dir.path(), &flags);
        Server {
            child,
            port,
            dir,
            flags,
        }
    }

    /// Kills the server with SIGKILL (no chance to clean up) and waits for it to be gone.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server (as [`kill`](Self::kill)) and starts it again on the same port and data.
    pub(crate) fn kill_and_restart(&mut self) {
        self.kill();
        self.child = Self::run(self.dir.path(), &self.flags);
    }

    fn run(dir: &Path, flags: &[String]) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["server", "--data-dir"])
            .arg(dir)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The server prints one line once it serves.
        let (ready, wait) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = ready.send(line);
            }
            lines.for_each(drop);
        });
        // Generous: with the whole suite running side by side on two cores, a start can take a while.
        let line = wait
            .recv_timeout(Duration::from_secs(60))
            .expect("gantry server did not start within 60 s");
        assert!(line.contains("listening on https://"), "{line}");
        child
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The directory of the versioned kubectl binaries: beside the `kubectl` dispatcher on PATH.
pub(crate) fn kubectl_dir() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap();
    let dispatcher = std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|p| p.exists())
        .expect("kubectl on PATH");
    std::fs::canonicalize(dispatcher)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

pub(crate) fn kubectl(version: &str, server: &Server, args: &[&str]) -> Output {
    let binary = kubectl_dir().join(format!("kubectl.{version}"));
    assert!(binary.exists(), "{} is missing", binary.display());
    Command::new(binary)
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(args)
        .output()
        .unwrap()
}

/// Runs kubectl and returns its stdout, failing the test (with stderr) if it fails.
pub(crate) fn ok(version: &str, server: &Server, args: &[&str]) -> String {
    let out = kubectl(version, server, args);
    assert!(
        out.status.success(),
        "kubectl {version} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// curl's status code and body for a request (no client certificate, the server's CA not checked).
pub(crate) fn curl(url: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sk", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

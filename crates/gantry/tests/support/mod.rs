//! Shared by the end-to-end tests: a real `gantry server` process.

#![allow(clippy::unwrap_used, dead_code)] // test support: each test binary uses a part of it

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A `gantry server` on a free loopback port with a fresh data directory; killed on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start() -> Server {
        Self::start_with(&[])
    }

    /// A server with extra `gantry server` flags.
    pub(crate) fn start_with(flags: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args([
                "server",
                "--disable-agent",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path())
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
        let line = wait
            .recv_timeout(Duration::from_secs(20))
            .expect("gantry server did not start within 20 s");
        assert!(line.contains("listening on https://"), "{line}");
        Server { child, port, dir }
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

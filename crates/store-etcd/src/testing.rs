//! Real etcd processes on loopback, for tests and benchmarks: [`EtcdServer`] (one member) and [`EtcdCluster`].
//!
//! Each gets free ports and a fresh temporary directory (data and logs); dropping it kills and reaps the
//! processes and removes the directory. The `etcd` binary is taken from `PATH`, or from `GANTRY_ETCD_BIN`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long members get to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Larger than etcd's default 1.5 MiB, so that the conformance suite's 3 MiB values fit.
const MAX_REQUEST_BYTES: &str = "10485760";
/// Attempts with fresh ports when a port picked as free was taken before etcd bound it.
const PORT_ATTEMPTS: usize = 3;

/// A single-member etcd on loopback.
#[derive(Debug)]
pub struct EtcdServer {
    cluster: EtcdCluster,
}

impl EtcdServer {
    /// Starts etcd and waits until it serves requests. Blocks the calling thread (about a second, at most
    /// 15 s); panics with the end of etcd's log if it does not come up.
    pub fn start() -> Self {
        EtcdServer {
            cluster: EtcdCluster::start(1),
        }
    }

    /// The client URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoints(&self) -> Vec<String> {
        self.cluster.endpoints()
    }

    /// Kills etcd (SIGKILL) now rather than on drop, e.g. to test how clients see an etcd that is down.
    pub fn kill(&self) {
        self.cluster.member(0).kill();
    }

    /// Starts etcd again after [`kill`](Self::kill), on the same data and ports.
    pub fn restart(&self) {
        self.cluster.member(0).restart();
    }

    /// etcd's data directory (its bbolt database and WAL), e.g. to measure disk use.
    pub fn data_dir(&self) -> &Path {
        self.cluster.member(0).data_dir()
    }
}

/// A cluster of etcd members on loopback.
#[derive(Debug)]
pub struct EtcdCluster {
    // Dropped before `_dir`: members are killed before their data directory is removed.
    members: Vec<EtcdMember>,
    _dir: TempDir,
}

/// One member of an [`EtcdCluster`].
#[derive(Debug)]
pub struct EtcdMember {
    name: String,
    client_url: String,
    log: PathBuf,
    data_dir: PathBuf,
    /// The etcd command line, to start the member again after a kill.
    command: Vec<std::ffi::OsString>,
    process: Mutex<Option<Child>>,
}

impl EtcdCluster {
    /// Starts `size` members and waits until every one is healthy (has a leader and serves reads). Blocks the
    /// calling thread (at most 15 s); panics with the end of the members' logs if they do not come up.
    pub fn start(size: usize) -> Self {
        assert!(size > 0, "a cluster needs at least one member");
        let dir = tempfile::Builder::new()
            .prefix("gantry-etcd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory for etcd: {e}"));
        for attempt in 1.. {
            let members = launch(&dir.path().join(format!("attempt-{attempt}")), size);
            match wait_until_healthy(&members) {
                Ok(()) => return EtcdCluster { members, _dir: dir },
                // A port picked as free was taken before etcd bound it: try again with fresh ones.
                Err(log) if attempt < PORT_ATTEMPTS && log.contains("address already in use") => {}
                Err(log) => {
                    drop(members);
                    panic!("etcd did not start within {START_TIMEOUT:?}:\n{log}");
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Every member's client URL, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Member `i` (0-based); panics if there is no such member.
    pub fn member(&self, i: usize) -> &EtcdMember {
        &self.members[i]
    }

    /// The index of the current leader, asked of the members through the maintenance status API; `None` when
    /// no running member names one that is running.
    pub async fn leader(&self) -> Option<usize> {
        for member in self.members.iter().filter(|m| m.is_running()) {
            let options = etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(1))
                .with_timeout(Duration::from_secs(2));
            let Ok(mut client) =
                etcd_client::Client::connect([&member.client_url], Some(options)).await
            else {
                continue;
            };
            let Ok(status) = client.status().await else {
                continue;
            };
            let Some(me) = status.header().map(|h| h.member_id()) else {
                continue;
            };
            if status.leader() == me {
                return self.members.iter().position(|m| std::ptr::eq(m, member));
            }
        }
        None
    }
}

impl EtcdMember {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.client_url
    }

    /// etcd's log (warnings and errors only).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The member's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Kills the member (SIGKILL, as a crash would) and reaps it. Does nothing if it is not running.
    pub fn kill(&self) {
        if let Some(mut child) = self.process().take() {
            // Errors mean the process is already gone, which is what is wanted.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed member again on its data directory and ports, and waits until it is healthy.
    pub fn restart(&self) {
        assert!(!self.is_running(), "{} is still running", self.name);
        *self.process() = Some(spawn(&self.command, &self.log));
        if let Err(log) = wait_until_healthy(std::slice::from_ref(self)) {
            panic!(
                "etcd member {} did not restart within {START_TIMEOUT:?}:\n{log}",
                self.name
            );
        }
    }

    /// Whether the process is still alive.
    pub fn is_running(&self) -> bool {
        let mut process = self.process();
        match process.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                process.take();
                false
            }
            None => false,
        }
    }

    fn process(&self) -> MutexGuard<'_, Option<Child>> {
        self.process.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last lines of the member's log.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"));
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `size` members of one new cluster, with data and logs under `dir`.
fn launch(dir: &Path, size: usize) -> Vec<EtcdMember> {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    // Hold every listener until all ports are picked, so that they are distinct.
    let listeners: Vec<(TcpListener, TcpListener)> =
        (0..size).map(|_| (free_port(), free_port())).collect();
    let url = |l: &TcpListener| match l.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(e) => panic!("cannot read a bound port: {e}"),
    };
    let urls: Vec<(String, String)> = listeners.iter().map(|(c, p)| (url(c), url(p))).collect();
    drop(listeners);
    let initial_cluster = urls
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{i}={peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let token = dir.display().to_string();
    let bin = std::env::var_os("GANTRY_ETCD_BIN").unwrap_or_else(|| "etcd".into());
    urls.into_iter()
        .enumerate()
        .map(|(i, (client_url, peer_url))| {
            let name = format!("m{i}");
            let log = dir.join(format!("{name}.log"));
            let command: Vec<std::ffi::OsString> = [
                bin.clone(),
                "--name".into(),
                name.clone().into(),
                "--data-dir".into(),
                dir.join(&name).into(),
            ]
            .into_iter()
            .chain(
                [
                    "--listen-client-urls",
                    &client_url,
                    "--advertise-client-urls",
                    &client_url,
                    "--listen-peer-urls",
                    &peer_url,
                    "--initial-advertise-peer-urls",
                    &peer_url,
                    "--initial-cluster",
                    &initial_cluster,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    &token,
                    "--max-request-bytes",
                    MAX_REQUEST_BYTES,
                    "--logger",
                    "zap",
                    "--log-outputs",
                    "stderr",
                    "--log-level",
                    "warn",
                ]
                .map(std::ffi::OsString::from),
            )
            .collect();
            let child = spawn(&command, &log);
            EtcdMember {
                data_dir: dir.join(&name),
                command,
                name,
                client_url,
                log,
                process: Mutex::new(Some(child)),
            }
        })
        .collect()
}

/// Runs `command` (etcd and its arguments) with its output appended to `log`.
fn spawn(command: &[std::ffi::OsString], log: &Path) -> Child {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
    let err = out
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
    Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {:?} (is etcd installed? set GANTRY_ETCD_BIN to use another binary): {e}",
                command[0]
            )
        })
}

/// Waits until every member reports healthy; on failure, the end of the failed (or all) members' logs.
fn wait_until_healthy(members: &[EtcdMember]) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let exited: Vec<&EtcdMember> = members.iter().filter(|m| !m.is_running()).collect();
        let waiting = members.iter().any(|m| !healthy(&m.client_url));
        if !waiting {
            return Ok(());
        }
        if !exited.is_empty() || Instant::now() > deadline {
            let culprits = if exited.is_empty() {
                members.iter().collect()
            } else {
                exited
            };
            return Err(culprits
                .iter()
                .map(|m| format!("--- {} ({}):\n{}", m.name, m.log.display(), m.log_tail()))
                .collect::<Vec<_>>()
                .join("\n"));
        }
        pause(Duration::from_millis(50));
    }
}

fn free_port() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"))
}

/// Whether etcd's `/health` endpoint at `url` says it is healthy (it has a leader and serves reads).
fn healthy(url: &str) -> bool {
    let Some(addr) = url
        .strip_prefix("http://")
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        return false;
    };
    let timeout = Duration::from_millis(500);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let mut reply = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .is_ok()
        && stream
            .write_all(format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .is_ok()
        && stream.read_to_string(&mut reply).is_ok()
        && reply.contains(r#""health":"true""#)
}

#[allow(
    clippy::disallowed_methods,
    reason = "starting etcd blocks the caller by design; it is test and benchmark support"
)]
fn pause(duration: Duration) {
    std::thread::sleep(duration);
}

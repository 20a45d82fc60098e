//! The per-container shim: a small process (`gantry shim ...`) that supervises one container so that the
//! agent never forks workloads and can die and come back without losing them.
//!
//! It starts a session of its own (no signal from the agent's terminal or process group reaches it), becomes
//! a child subreaper (the container's init, orphaned when `<runtime> create` exits, is re-parented to it and
//! its exit status is not lost to PID 1), runs `create` with the container's stdout and stderr connected to
//! pipes it owns, copies them into the CRI log file, and when the container's init exits records how in
//! `exit.json`. The agent starts the container (`<runtime> start`) once `create` is done.
//!
//! Files in the bundle directory, the contract with the agent (each written whole, by rename):
//! - `shim.pid`: the shim's pid;
//! - `init.pid`: the container's init pid (written by the runtime);
//! - `created.json`: `{"pid": N}` once created, or `{"error": "..."}`;
//! - `exit.json`: an [`ExitRecord`] once the container exited;
//! - `shim.log`: the shim's own stderr.
//!
//! The shim also reports on its stdout: the `created.json` line, then `exited` at the end, so a caller that
//! still holds the pipe learns both at once; one that restarted polls the files instead ([`wait_exit`]).

use std::io::{BufRead, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;

use crate::cgroups::Cgroups;
use crate::cri_log::{self, LineSplitter, LogWriter, Stream};
use crate::oci::{Kind, Runtime, log_errors};

pub const SHIM_PID: &str = "shim.pid";
pub const INIT_PID: &str = "init.pid";
pub const CREATED: &str = "created.json";
pub const EXIT: &str = "exit.json";
pub const SHIM_LOG: &str = "shim.log";
const RUNTIME_LOG: &str = "runtime-log.json";

/// The shim's command line (`gantry shim --id ... --bundle ...`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ShimArgs {
    /// Container id, as the runtime knows it.
    #[arg(long)]
    pub id: String,
    /// Bundle directory: `config.json`, and the shim's files.
    #[arg(long)]
    pub bundle: PathBuf,
    /// The OCI runtime binary (runc or crun).
    #[arg(long)]
    pub runtime: PathBuf,
    /// The runtime's state directory (`--root`).
    #[arg(long)]
    pub runtime_root: PathBuf,
    /// The CRI log file.
    #[arg(long)]
    pub log_path: PathBuf,
    /// Rotate the log file past this size in bytes (0: never).
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub log_max_size: u64,
    /// Log files kept, the current one included.
    #[arg(long, default_value_t = 5)]
    pub log_max_files: usize,
}

impl ShimArgs {
    /// The arguments that give these values back (after the subcommand's name).
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut out: Vec<std::ffi::OsString> = Vec::new();
        for (flag, value) in [
            ("--id", self.id.as_ref()),
            ("--bundle", self.bundle.as_os_str()),
            ("--runtime", self.runtime.as_os_str()),
            ("--runtime-root", self.runtime_root.as_os_str()),
            ("--log-path", self.log_path.as_os_str()),
        ] {
            out.extend([flag.into(), value.to_os_string()]);
        }
        out.extend([
            "--log-max-size".into(),
            self.log_max_size.to_string().into(),
        ]);
        out.extend([
            "--log-max-files".into(),
            self.log_max_files.to_string().into(),
        ]);
        out
    }

    /// The shim arguments for `id` with `runtime`, keeping the default log limits.
    pub fn new(id: &str, bundle: &Path, runtime: &Runtime, log_path: &Path) -> Self {
        ShimArgs {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            runtime: runtime.binary.clone(),
            runtime_root: runtime.root.clone(),
            log_path: log_path.to_path_buf(),
            log_max_size: 10 * 1024 * 1024,
            log_max_files: 5,
        }
    }
}

/// What `created.json` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Created {
    Pid(u32),
    Error(String),
}

/// How the container's init process ended (`exit.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub pid: u32,
    /// The exit code, or 128 + the signal (the shell's and Kubernetes' convention).
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// The container's cgroup recorded an OOM kill.
    pub oom_killed: bool,
    /// RFC 3339 with nanoseconds.
    pub finished_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("starting the shim {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("creating container {id}: {message}")]
    Create { id: String, message: String },
    #[error("the shim of {id} exited before creating the container: {log}")]
    Died { id: String, log: String },
    #[error("the shim's files in {dir}: {source}")]
    Files {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// The caller's handle on a shim it started.
#[derive(Debug)]
pub struct Shim {
    pub id: String,
    pub bundle: PathBuf,
    /// The container's init process.
    pub pid: u32,
    /// The shim process.
    pub shim_pid: u32,
    child: tokio::process::Child,
    reports: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

/// Starts the shim as `<exe> <subcommand> <args>` (e.g. the running `gantry` binary and `shim`) and waits
/// until the container is created (not started: run `<runtime> start`). The shim outlives this process.
pub async fn spawn_shim(exe: &Path, subcommand: &str, args: &ShimArgs) -> Result<Shim, ShimError> {
    let files = |source| ShimError::Files {
        dir: args.bundle.clone(),
        source,
    };
    for name in [CREATED, EXIT, INIT_PID] {
        match std::fs::remove_file(args.bundle.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(files(e)),
            _ => {}
        }
    }
    let log = std::fs::File::create(args.bundle.join(SHIM_LOG)).map_err(files)?;
    let mut child = tokio::process::Command::new(exe)
        .arg(subcommand)
        .args(args.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|source| ShimError::Spawn {
            exe: exe.to_path_buf(),
            source,
        })?;
    let shim_pid = child.id().unwrap_or_default();
    let Some(stdout) = child.stdout.take() else {
        return Err(ShimError::Died {
            id: args.id.clone(),
            log: "no stdout pipe".into(),
        });
    };
    let mut reports = tokio::io::BufReader::new(stdout).lines();
    let first = reports.next_line().await.map_err(files)?;
    match first.as_deref().map(serde_json::from_str::<Created>) {
        Some(Ok(Created::Pid(pid))) => Ok(Shim {
            id: args.id.clone(),
            bundle: args.bundle.clone(),
            pid,
            shim_pid,
            child,
            reports,
        }),
        Some(Ok(Created::Error(message))) => {
            let _ = child.wait().await;
            Err(ShimError::Create {
                id: args.id.clone(),
                message,
            })
        }
        _ => {
            let _ = child.wait().await;
            let log = std::fs::read_to_string(args.bundle.join(SHIM_LOG)).unwrap_or_default();
            Err(ShimError::Died {
                id: args.id.clone(),
                log: format!("{first:?} {}", log.trim()),
            })
        }
    }
}

impl Shim {
    /// Waits for the container to exit and the shim to record it.
    pub async fn wait(mut self) -> Result<ExitRecord, ShimError> {
        // The shim says `exited`, or dies; either way the pipe ends.
        while let Ok(Some(_)) = self.reports.next_line().await {}
        let _ = self.child.wait().await;
        match read_exit(&self.bundle)? {
            Some(record) => Ok(record),
            None => {
                let log = std::fs::read_to_string(self.bundle.join(SHIM_LOG)).unwrap_or_default();
                Err(ShimError::Died {
                    id: self.id,
                    log: format!("no exit recorded: {}", log.trim()),
                })
            }
        }
    }
}

/// `created.json` of a bundle, if the shim got that far.
pub fn read_created(bundle: &Path) -> Result<Option<Created>, ShimError> {
    read_json(bundle, CREATED)
}

/// `exit.json` of a bundle, if the container exited.
pub fn read_exit(bundle: &Path) -> Result<Option<ExitRecord>, ShimError> {
    read_json(bundle, EXIT)
}

/// Polls `exit.json` until it appears: for containers whose shim this process did not start (after an
/// agent restart). Polls every `interval`.
pub async fn wait_exit(bundle: &Path, interval: Duration) -> Result<ExitRecord, ShimError> {
    loop {
        if let Some(record) = read_exit(bundle)? {
            return Ok(record);
        }
        tokio::time::sleep(interval).await;
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Result<Option<T>, ShimError> {
    let path = dir.join(name);
    let files = |source| ShimError::Files {
        dir: dir.to_path_buf(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| files(e.into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(files(e)),
    }
}

/// Writes `dir/name` whole: a temporary file renamed over it. No fsync: the files must survive the agent,
/// not the machine (after a reboot the containers are gone anyway).
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(name))
}

/// The shim process (`gantry shim ...`). Exits 0 once the container's exit is recorded, 1 if it could not
/// create the container or record its exit.
pub fn main(args: ShimArgs) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gantry shim {}: {message}", args.id);
            ExitCode::FAILURE
        }
    }
}

/// A line to whoever holds our stdout; nobody may (the caller may be gone): errors are ignored.
fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run(args: &ShimArgs) -> Result<(), String> {
    // Not fatal: a shim started as a process group leader keeps its group, which is still detached enough.
    if let Err(e) = nix::unistd::setsid() {
        eprintln!("setsid: {e}");
    }
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
    let bundle = &args.bundle;
    write_atomic(bundle, SHIM_PID, std::process::id().to_string().as_bytes())
        .map_err(|e| format!("writing {SHIM_PID}: {e}"))?;

    let fail = |message: String| -> String {
        let created = serde_json::to_string(&Created::Error(message.clone())).unwrap_or_default();
        let _ = write_atomic(bundle, CREATED, created.as_bytes());
        report(&created);
        message
    };

    let log = LogWriter::open(&args.log_path, args.log_max_size, args.log_max_files)
        .map_err(|e| fail(format!("opening the log {}: {e}", args.log_path.display())))?;
    let log = Arc::new(Mutex::new(log));
    let pipe =
        || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail(format!("pipe: {e}")));
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;

    let kind = if args.runtime.file_name().is_some_and(|n| n == "crun") {
        Kind::Crun
    } else {
        Kind::Runc
    };
    let runtime = Runtime {
        kind,
        binary: args.runtime.clone(),
        root: args.runtime_root.clone(),
    };
    let runtime_log = bundle.join(RUNTIME_LOG);
    let mut command =
        runtime.create_command(&args.id, bundle, &bundle.join(INIT_PID), &runtime_log);
    command
        .stdin(Stdio::null())
        .stdout(out_write)
        .stderr(err_write);
    let spawned = command.spawn();
    // The command holds our copies of the pipes' write ends: only the container may keep them open, so
    // that the pipes end when it does.
    drop(command);
    let mut create =
        spawned.map_err(|e| fail(format!("running {}: {e}", args.runtime.display())))?;

    let (done_tx, done_rx) = mpsc::channel();
    for (read, stream) in [(out_read, Stream::Stdout), (err_read, Stream::Stderr)] {
        let (log, done) = (log.clone(), done_tx.clone());
        std::thread::spawn(move || {
            let tail = copy_to_log(read, stream, &log);
            let _ = done.send(tail);
        });
    }
    drop(done_tx);
    // Waits for both copiers (or `limit`), returning what they saw last.
    let join_copiers = |limit: Duration| -> String {
        let deadline = std::time::Instant::now() + limit;
        let mut tail = String::new();
        for _ in 0..2 {
            match done_rx
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            {
                Ok(t) => tail.push_str(&t),
                Err(_) => break,
            }
        }
        if let Ok(mut log) = log.lock() {
            let _ = log.flush();
        }
        tail
    };

    let status = create
        .wait()
        .map_err(|e| fail(format!("waiting for create: {e}")))?;
    if !status.success() {
        let logged = log_errors(&std::fs::read_to_string(&runtime_log).unwrap_or_default());
        let printed = join_copiers(Duration::from_secs(2));
        let message = if logged.is_empty() {
            printed.trim().to_string()
        } else {
            logged
        };
        return Err(fail(format!("{kind} create: {status}: {message}")));
    }
    let pid: u32 = std::fs::read_to_string(bundle.join(INIT_PID))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| fail(format!("{kind} create wrote no pid to {INIT_PID}")))?;
    let created = serde_json::to_string(&Created::Pid(pid)).map_err(|e| e.to_string())?;
    write_atomic(bundle, CREATED, created.as_bytes())
        .map_err(|e| format!("writing {CREATED}: {e}"))?;
    report(&created);

    let (exit_code, signal) = wait_for(pid);
    let finished = SystemTime::now();
    // Whatever the container wrote before it exited is in the pipes: take it all, then say how it ended.
    join_copiers(Duration::from_secs(2));
    let oom_killed = cgroups_path(bundle)
        .and_then(|path| Cgroups::detect().ok().map(|c| c.oom_kills(&path) > 0))
        .unwrap_or(false);
    let record = ExitRecord {
        pid,
        exit_code,
        signal,
        oom_killed,
        finished_at: cri_log::format_time(finished),
    };
    let json = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    write_atomic(bundle, EXIT, &json).map_err(|e| format!("writing {EXIT}: {e}"))?;
    report("exited");
    Ok(())
}

/// Reaps children until `pid` ends: (exit code, signal). Other children are orphans of the container
/// re-parented to us as subreaper; reaping them keeps them from lingering as zombies.
fn wait_for(pid: u32) -> (i32, Option<i32>) {
    let target = Pid::from_raw(pid as i32);
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p == target => return (code, None),
            Ok(WaitStatus::Signaled(p, signal, _)) if p == target => {
                return (128 + signal as i32, Some(signal as i32));
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => {
                // ECHILD: it was never re-parented to us; nothing can tell how it ended.
                eprintln!("waiting for the container's init {pid}: {e}");
                return (255, None);
            }
        }
    }
}

/// `linux.cgroupsPath` of the bundle's `config.json`.
fn cgroups_path(bundle: &Path) -> Option<String> {
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).ok()?).ok()?;
    config["linux"]["cgroupsPath"].as_str().map(String::from)
}

/// Copies one of the container's streams into the log until it ends; returns the last bytes seen (create's
/// errors come this way when the runtime's log has none).
fn copy_to_log(read: OwnedFd, stream: Stream, log: &Mutex<LogWriter>) -> String {
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, std::fs::File::from(read));
    let mut splitter = LineSplitter::new(cri_log::MAX_LINE);
    let mut tail: Vec<u8> = Vec::new();
    let mut emit = |text: &[u8], partial: bool| -> std::io::Result<()> {
        let mut log = log
            .lock()
            .map_err(|_| std::io::Error::other("log lock poisoned"))?;
        log.write(SystemTime::now(), stream, partial, text)
    };
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) => break,
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if let Err(e) = splitter.push(chunk, &mut emit) {
            eprintln!("writing the log: {e}");
        }
        tail.extend_from_slice(chunk);
        if tail.len() > 4096 {
            tail.drain(..tail.len() - 4096);
        }
        let n = chunk.len();
        reader.consume(n);
    }
    if let Err(e) = splitter.finish(&mut emit) {
        eprintln!("writing the log: {e}");
    }
    String::from_utf8_lossy(&tail).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        shim: ShimArgs,
    }

    #[test]
    fn args_round_trip() {
        let args = ShimArgs {
            id: "c1".into(),
            bundle: "/run/b".into(),
            runtime: "/usr/sbin/runc".into(),
            runtime_root: "/run/gantry/runc".into(),
            log_path: "/var/log/pods/x/c/0.log".into(),
            log_max_size: 1000,
            log_max_files: 2,
        };
        let mut argv: Vec<std::ffi::OsString> = vec!["shim".into()];
        argv.extend(args.to_args());
        assert_eq!(Cli::parse_from(argv).shim, args);
    }

    #[test]
    fn created_json() {
        assert_eq!(
            serde_json::to_string(&Created::Pid(7)).unwrap(),
            r#"{"pid":7}"#
        );
        assert_eq!(
            serde_json::from_str::<Created>(r#"{"error":"x"}"#).unwrap(),
            Created::Error("x".into())
        );
    }
}

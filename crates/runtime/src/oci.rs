//! The OCI runtime driver: runc or crun behind one interface, each verb one run of the runtime's CLI.
//!
//! Errors carry what the runtime printed on stderr. `create` is the exception: its stderr becomes the
//! container's (that is how containers get their log pipes), so its errors come from the runtime's log file
//! (runc writes one; crun 1.8 prints its errors to that stderr only).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};

use nix::sys::signal::Signal;
use serde::Deserialize;

use crate::cgroups::Cgroups;

/// Which OCI runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Runc,
    Crun,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Runc => "runc",
            Kind::Crun => "crun",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no OCI runtime is installed: install runc or crun (`apt-get install runc`)")]
    NoneInstalled,
    #[error("{0} is not installed (`apt-get install {0}`)")]
    NotInstalled(Kind),
    #[error("running {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("parsing `{command}` output: {source}")]
    Parse {
        command: String,
        source: serde_json::Error,
    },
    #[error("preparing cgroups for crun: {0}")]
    Cgroups(std::io::Error),
}

impl RuntimeError {
    /// Whether the runtime said the container does not exist (runc's and crun's wordings).
    pub fn is_not_found(&self) -> bool {
        match self {
            RuntimeError::Failed { stderr, .. } => {
                stderr.contains("does not exist") || stderr.contains("No such file or directory")
            }
            _ => false,
        }
    }
}

/// The output of `<runtime> state <id>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct State {
    pub id: String,
    /// The container's init process on the host; 0 once stopped.
    #[serde(default)]
    pub pid: u32,
    pub status: Status,
    pub bundle: PathBuf,
    /// RFC 3339 creation time.
    #[serde(default)]
    pub created: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
    #[serde(other)]
    Unknown,
}

/// stdin, stdout and stderr for a runtime command (and so for the container or exec'd process).
#[derive(Debug)]
pub struct Stdio3 {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl Stdio3 {
    pub fn null() -> Self {
        Stdio3 {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

/// A process to run in a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecProcess {
    pub args: Vec<String>,
    /// `KEY=VALUE`, added to the container's environment.
    pub env: Vec<String>,
    /// Empty: the container's.
    pub cwd: String,
    /// `(uid, gid)`; `None`: the container's user.
    pub user: Option<(u32, u32)>,
    /// Under a terminal (`exec --tty`).
    pub terminal: bool,
}

/// One OCI runtime binary and the state directory (`--root`) it keeps its containers in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub kind: Kind,
    pub binary: PathBuf,
    pub root: PathBuf,
}

/// Where runtimes are looked for besides `$PATH` (Debian puts runc in /usr/sbin, often not on a user's PATH).
const SEARCH_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

impl Runtime {
    /// `kind` as installed on this machine, checked to run (`--version`).
    pub fn find(kind: Kind, root: &Path) -> Result<Runtime, RuntimeError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::env::split_paths(&path).chain(SEARCH_DIRS.iter().map(PathBuf::from));
        for dir in dirs {
            let binary = dir.join(kind.name());
            if binary.is_file()
                && std::process::Command::new(&binary)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            {
                return Ok(Runtime {
                    kind,
                    binary,
                    root: root.to_path_buf(),
                });
            }
        }
        Err(RuntimeError::NotInstalled(kind))
    }

    /// The runtime to use. `want: None` prefers crun where it works as the cgroups are (v2, or v1 with no
    /// controller in the hybrid unified mount), else runc, else crun after [`Cgroups::prepare_for_crun`].
    /// `want: Some(Crun)` prepares the cgroups for crun when needed.
    pub fn detect(
        root: &Path,
        cgroups: &mut Cgroups,
        want: Option<Kind>,
    ) -> Result<Runtime, RuntimeError> {
        fn crun(root: &Path, cgroups: &mut Cgroups) -> Result<Runtime, RuntimeError> {
            let runtime = Runtime::find(Kind::Crun, root)?;
            cgroups.prepare_for_crun().map_err(RuntimeError::Cgroups)?;
            Ok(runtime)
        }
        match want {
            Some(Kind::Runc) => Runtime::find(Kind::Runc, root),
            Some(Kind::Crun) => crun(root, cgroups),
            None => {
                if cgroups.crun_ready()
                    && let Ok(runtime) = Runtime::find(Kind::Crun, root)
                {
                    return Ok(runtime);
                }
                match Runtime::find(Kind::Runc, root) {
                    Ok(runtime) => Ok(runtime),
                    Err(_) => crun(root, cgroups).map_err(|e| match e {
                        RuntimeError::NotInstalled(_) => RuntimeError::NoneInstalled,
                        other => other,
                    }),
                }
            }
        }
    }

    /// `<binary> --root <root>`, to which a verb and its arguments are added.
    pub fn command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.binary);
        command.arg("--root").arg(&self.root);
        command
    }

    /// `create`, with the runtime's own log (JSON) in `log_file`; the container inherits the command's stdio.
    pub fn create_command(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        log_file: &Path,
    ) -> std::process::Command {
        let mut command = std::process::Command::new(&self.binary);
        command
            .arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(log_file)
            .arg("--log-format")
            .arg("json");
        command
            .arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file)
            .arg(id);
        command
    }

    /// Creates the container from `bundle`: its init process waits for `start`, its pid in `pid_file`.
    /// `stdio` becomes the container's for its whole life (pipes that are never closed would keep this
    /// waiting: pass files, `/dev/null`, or pipes something reads).
    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        stdio: Stdio3,
    ) -> Result<(), RuntimeError> {
        let log_file = bundle.join(format!("{id}.create-log.json"));
        let mut command =
            tokio::process::Command::from(self.create_command(id, bundle, pid_file, &log_file));
        command
            .stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        let status = command
            .status()
            .await
            .map_err(|source| RuntimeError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        let log = std::fs::read_to_string(&log_file).unwrap_or_default();
        let _ = std::fs::remove_file(&log_file);
        if status.success() {
            Ok(())
        } else {
            Err(RuntimeError::Failed {
                command: format!("{} create {id}", self.kind),
                status,
                stderr: log_errors(&log),
            })
        }
    }

    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(&["start".into(), id.into()]).await.map(drop)
    }

    pub async fn state(&self, id: &str) -> Result<State, RuntimeError> {
        let out = self.run(&["state".into(), id.into()]).await?;
        serde_json::from_slice(&out.stdout).map_err(|source| RuntimeError::Parse {
            command: format!("{} state {id}", self.kind),
            source,
        })
    }

    /// Sends `signal` to the container's init process, or with `all` to every process in it.
    pub async fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec!["kill".into()];
        if all {
            args.push("--all".into());
        }
        args.extend([id.into(), (signal as i32).to_string().into()]);
        self.run(&args).await.map(drop)
    }

    /// Deletes the container (its state and leaf cgroup); `force` kills it first if it runs.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec!["delete".into()];
        if force {
            args.push("--force".into());
        }
        args.push(id.into());
        self.run(&args).await.map(drop)
    }

    /// Runs `process` in the running container with `stdio`, waiting for it to end.
    pub async fn exec(
        &self,
        id: &str,
        process: &ExecProcess,
        stdio: Stdio3,
    ) -> Result<ExitStatus, RuntimeError> {
        let mut command = tokio::process::Command::from(self.exec_command(id, process));
        command
            .stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        command
            .status()
            .await
            .map_err(|source| RuntimeError::Spawn {
                binary: self.binary.clone(),
                source,
            })
    }

    /// [`Runtime::exec`] with stdin empty and stdout and stderr collected.
    pub async fn exec_output(
        &self,
        id: &str,
        process: &ExecProcess,
    ) -> Result<Output, RuntimeError> {
        let mut command = tokio::process::Command::from(self.exec_command(id, process));
        command.stdin(Stdio::null());
        command
            .output()
            .await
            .map_err(|source| RuntimeError::Spawn {
                binary: self.binary.clone(),
                source,
            })
    }

    /// `exec` of `process` in the container `id`, in the foreground: the command's exit status is the
    /// process's. With `terminal` the runtime needs a controlling terminal of its own, which it relays.
    pub fn exec_command(&self, id: &str, process: &ExecProcess) -> std::process::Command {
        let mut command = self.command();
        command.arg("exec");
        if process.terminal {
            command.arg("--tty");
        }
        for env in &process.env {
            command.arg("--env").arg(env);
        }
        if !process.cwd.is_empty() {
            command.arg("--cwd").arg(&process.cwd);
        }
        if let Some((uid, gid)) = process.user {
            command.arg("--user").arg(format!("{uid}:{gid}"));
        }
        command.arg(id).args(&process.args);
        command
    }

    async fn run(&self, args: &[OsString]) -> Result<Output, RuntimeError> {
        let mut command = tokio::process::Command::from(self.command());
        command.args(args).stdin(Stdio::null());
        let out = command
            .output()
            .await
            .map_err(|source| RuntimeError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        if out.status.success() {
            Ok(out)
        } else {
            let words: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
            Err(RuntimeError::Failed {
                command: format!("{} {}", self.kind, words.join(" ")),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

/// The messages of the error entries of a runtime's JSON log (`{"level":"error","msg":...}` per line).
pub fn log_errors(log: &str) -> String {
    #[derive(Deserialize)]
    struct Entry {
        level: String,
        msg: String,
    }
    log.lines()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .filter(|e| e.level == "error" || e.level == "fatal")
        .map(|e| e.msg)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_state() {
        let runc = r#"{"ociVersion":"1.0.2-dev","id":"c1","pid":4242,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2024-01-01T00:00:00.1Z","owner":""}"#;
        let state: State = serde_json::from_str(runc).unwrap();
        assert_eq!((state.pid, state.status), (4242, Status::Running));
        let crun = r#"{"ociVersion":"1.0.0","id":"c1","pid":0,"status":"stopped","bundle":"/b","rootfs":"/b/rootfs","created":"x","owner":"","systemd-scope":""}"#;
        assert_eq!(
            serde_json::from_str::<State>(crun).unwrap().status,
            Status::Stopped
        );
        let odd = r#"{"id":"c1","status":"frozen","bundle":"/b"}"#;
        assert_eq!(
            serde_json::from_str::<State>(odd).unwrap().status,
            Status::Unknown
        );
    }

    #[test]
    fn extracts_log_errors() {
        let log = "{\"level\":\"info\",\"msg\":\"x\"}\n{\"level\":\"error\",\"msg\":\"runc create failed: chdir /nonexistent\",\"time\":\"t\"}\nnot json\n";
        assert_eq!(log_errors(log), "runc create failed: chdir /nonexistent");
    }

    #[test]
    fn missing_runtime_names_the_package() {
        let e = RuntimeError::NotInstalled(Kind::Crun);
        assert_eq!(
            e.to_string(),
            "crun is not installed (`apt-get install crun`)"
        );
        assert!(
            RuntimeError::NoneInstalled
                .to_string()
                .contains("apt-get install runc")
        );
    }
}

//! The pod sandbox: a pause process that holds the pod's network, IPC and UTS namespaces, which the pod's
//! containers join.
//!
//! Choices, and why:
//! - **The pause is a plain process, not an OCI container** (containerd runs it as one). It needs no rootfs,
//!   image, cgroup or runtime round trip: `gantry pause` unshares its namespaces itself, at start, while it is
//!   still single-threaded (so no `unsafe` pre-exec hook is needed), sets the hostname and brings up `lo`.
//! - **The network namespace is also a named file** (`<dir>/netns`, bind-mounted from the pause's
//!   `/proc/thread-self/ns/net` as `ip netns add` does), so CNI plugins get a stable path and the namespace
//!   outlives the pause until [`Sandbox::stop`] unmounts it (CNI DEL can still run after a crash). IPC and UTS
//!   are joined through `/proc/<pause>/ns/*`.
//! - **No shared PID namespace** (Kubernetes' default, `shareProcessNamespace: false`): each container gets a
//!   PID namespace of its own whose init is the container's command, so the pause is not PID 1 of anything;
//!   it still reaps any child it gets. The pause runs in the host's PID and mount namespaces.
//! - The pause starts its own session (it outlives the agent), exits on SIGTERM or SIGINT, and reports on
//!   its stdout once the namespaces are ready (`{"pid":N}` or `{"error":"..."}`).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::io::AsyncBufReadExt;

use crate::shim::Created;
use crate::spec::{Namespace, Namespaces};

const PAUSE_PID: &str = "pause.pid";
const NETNS: &str = "netns";

/// `gantry pause`'s command line.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct PauseArgs {
    /// The pod's hostname.
    #[arg(long)]
    pub hostname: String,
    /// The file to bind-mount the new network namespace on (created if missing).
    #[arg(long)]
    pub netns: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("starting the pause process {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("the pause process of pod {id} failed: {message}")]
    Pause { id: String, message: String },
    #[error("pod sandbox {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("the pause process of the sandbox in {0} is gone")]
    Gone(PathBuf),
}

/// A running pod sandbox.
#[derive(Debug)]
pub struct Sandbox {
    pub id: String,
    /// Holds `pause.pid` and the netns file.
    pub dir: PathBuf,
    pub pause_pid: u32,
    /// Present when this process started the pause.
    child: Option<tokio::process::Child>,
}

impl Sandbox {
    /// Starts `<exe> <subcommand>` (the `gantry` binary and `pause`) for pod `id`, with its files in `dir`,
    /// and waits until the namespaces exist.
    pub async fn start(
        exe: &Path,
        subcommand: &str,
        id: &str,
        hostname: &str,
        dir: &Path,
    ) -> Result<Sandbox, SandboxError> {
        let io = |source| SandboxError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut child = tokio::process::Command::new(exe)
            .arg(subcommand)
            .arg("--hostname")
            .arg(hostname)
            .arg("--netns")
            .arg(dir.join(NETNS))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| SandboxError::Spawn {
                exe: exe.to_path_buf(),
                source,
            })?;
        let pause = |message: String| SandboxError::Pause {
            id: id.to_string(),
            message,
        };
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| pause("no stdout".into()))?;
        let line = tokio::io::BufReader::new(stdout)
            .lines()
            .next_line()
            .await
            .map_err(io)?;
        match line.as_deref().map(serde_json::from_str::<Created>) {
            Some(Ok(Created::Pid(pid))) => {
                std::fs::write(dir.join(PAUSE_PID), pid.to_string()).map_err(io)?;
                Ok(Sandbox {
                    id: id.to_string(),
                    dir: dir.to_path_buf(),
                    pause_pid: pid,
                    child: Some(child),
                })
            }
            Some(Ok(Created::Error(message))) => {
                let _ = child.wait().await;
                Err(pause(message))
            }
            _ => {
                let out = child.wait_with_output().await.map_err(io)?;
                Err(pause(format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        }
    }

    /// The sandbox whose files are in `dir`, after an agent restart: its pause must still be running and
    /// hold the netns file's namespace (a recycled pid would not).
    pub fn load(id: &str, dir: &Path) -> Result<Sandbox, SandboxError> {
        let io = |source| SandboxError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        let pid: u32 = std::fs::read_to_string(dir.join(PAUSE_PID))
            .map_err(io)?
            .trim()
            .parse()
            .map_err(|_| SandboxError::Gone(dir.to_path_buf()))?;
        let same_ns = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if !same_ns(
            &PathBuf::from(format!("/proc/{pid}/ns/net")),
            &dir.join(NETNS),
        ) {
            return Err(SandboxError::Gone(dir.to_path_buf()));
        }
        Ok(Sandbox {
            id: id.to_string(),
            dir: dir.to_path_buf(),
            pause_pid: pid,
            child: None,
        })
    }

    /// The netns file (for CNI and for containers).
    pub fn netns_path(&self) -> PathBuf {
        netns_path(&self.dir)
    }

    /// The namespaces a container of this pod joins (its PID namespace is its own).
    pub fn namespaces(&self) -> Namespaces {
        let proc_ns =
            |ns: &str| Namespace::Join(PathBuf::from(format!("/proc/{}/ns/{ns}", self.pause_pid)));
        Namespaces {
            network: Namespace::Join(self.netns_path()),
            ipc: proc_ns("ipc"),
            uts: proc_ns("uts"),
            pid: Namespace::New,
        }
    }

    /// Stops the pause (SIGTERM, SIGKILL after 5 s), unmounts and removes the netns file and the sandbox's
    /// directory. The pod's containers must be gone (and CNI DEL done) first.
    pub async fn stop(mut self) -> Result<(), SandboxError> {
        let io = |source| SandboxError::Io {
            dir: self.dir.clone(),
            source,
        };
        let pid = Pid::from_raw(self.pause_pid as i32);
        if nix::sys::signal::kill(pid, Signal::SIGTERM).is_ok() {
            let exited = async {
                match self.child.as_mut() {
                    Some(child) => {
                        let _ = child.wait().await;
                    }
                    None => {
                        while process_alive(self.pause_pid) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            };
            if tokio::time::timeout(Duration::from_secs(5), exited)
                .await
                .is_err()
            {
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                if let Some(child) = self.child.as_mut() {
                    let _ = child.wait().await;
                }
            }
        }
        crate::rootfs::unmount(&self.netns_path()).map_err(io)?;
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }
}

/// Whether `pid` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// The pause process (`gantry pause --hostname H --netns FILE`). Runs until SIGTERM or SIGINT.
pub fn main(args: PauseArgs) -> ExitCode {
    let signals = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD]
        .into_iter()
        .collect::<SigSet>();
    let setup = signals
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))
        .and_then(|()| setup(&args));
    let report = match &setup {
        Ok(()) => Created::Pid(std::process::id()),
        Err(message) => Created::Error(message.clone()),
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&report).unwrap_or_default()
        );
        let _ = out.flush();
    }
    if setup.is_err() {
        return ExitCode::FAILURE;
    }
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => {
                while let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
                    waitpid(None, Some(WaitPidFlag::WNOHANG))
                {}
            }
            Ok(_) => return ExitCode::SUCCESS,
            Err(_) => {}
        }
    }
}

fn setup(args: &PauseArgs) -> Result<(), String> {
    if let Err(e) = nix::unistd::setsid() {
        eprintln!("setsid: {e}");
    }
    nix::sched::unshare(
        CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS,
    )
    .map_err(|e| format!("unshare: {e}"))?;
    nix::unistd::sethostname(&args.hostname)
        .map_err(|e| format!("sethostname {:?}: {e}", args.hostname))?;
    loopback_up().map_err(|e| format!("bringing up lo: {e}"))?;
    if let Some(parent) = args.netns.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    std::fs::File::create(&args.netns)
        .map_err(|e| format!("creating {}: {e}", args.netns.display()))?;
    nix::mount::mount(
        Some("/proc/thread-self/ns/net"),
        &args.netns,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        let _ = std::fs::remove_file(&args.netns);
        format!(
            "bind-mounting the network namespace on {}: {e}",
            args.netns.display()
        )
    })
}

/// `ip link set lo up` over rtnetlink: an RTM_NEWLINK for interface 1 (`lo` is always 1 in a new network
/// namespace) setting IFF_UP, then the kernel's acknowledgement.
fn loopback_up() -> nix::Result<()> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
    };
    const RTM_NEWLINK: u16 = 16;
    const NLM_F_REQUEST_ACK: u16 = 1 | 4;
    const IFF_UP: u32 = 1;
    let socket = nix::sys::socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(&32u32.to_ne_bytes()); // nlmsghdr: length
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST_ACK.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    msg.extend_from_slice(&[0, 0, 0, 0]); // ifinfomsg: AF_UNSPEC, padding, device type
    msg.extend_from_slice(&1i32.to_ne_bytes()); // interface index
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // flags
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // change mask
    nix::sys::socket::sendto(
        socket.as_raw_fd(),
        &msg,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut reply = [0u8; 1024];
    let n = nix::sys::socket::recv(socket.as_raw_fd(), &mut reply, MsgFlags::empty())?;
    // NLMSG_ERROR (2) carries the errno, negated; 0 is the acknowledgement.
    if n >= 20 && u16::from_ne_bytes([reply[4], reply[5]]) == 2 {
        let errno = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        if errno != 0 {
            return Err(nix::Error::from_raw(-errno));
        }
    }
    Ok(())
}

/// The pod's network namespace (bind-mounted) of the sandbox kept in `dir`.
pub fn netns_path(dir: &Path) -> PathBuf {
    dir.join(NETNS)
}

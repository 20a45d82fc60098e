//! The proxy's side effects, behind narrow traits so that its logic runs in unit tests: applying an nft
//! transaction ([`NftApplier`], for real [`Nft`]: one `nft -f -` per transaction) and deleting conntrack
//! entries ([`Conntrack`], for real [`ConntrackTool`]: `conntrack -D`). Both can run inside a named
//! network namespace (`ip netns exec`), as the tests and the benchmark do.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

/// How much of a failed command's output an error keeps.
const MAX_ERROR_OUTPUT: usize = 4096;

/// Why an nft or conntrack command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run {program}: {message} (is it installed? Debian package {package})")]
    Spawn {
        program: &'static str,
        package: &'static str,
        message: String,
    },
    #[error("{program} failed: {output}")]
    Failed {
        program: &'static str,
        output: String,
    },
}

/// Applies transactions to, and lists, the kernel's nftables.
pub trait NftApplier: Send {
    /// Runs `transaction` (nft's `-f` syntax) as one atomic transaction.
    fn apply(&self, transaction: &str) -> Result<(), CommandError>;
    /// `nft list table ip TABLE`, or `None` when there is no such table.
    fn list(&self, table: &str) -> Result<Option<String>, CommandError>;
    /// Whether the kernel can track and NAT SCTP (SCTP Service ports are skipped otherwise).
    fn supports_sctp(&self) -> bool;
}

/// Deletes UDP conntrack entries.
pub trait Conntrack: Send {
    fn delete_udp(&self, flows: &UdpFlows) -> Result<(), CommandError>;
}

/// The UDP conntrack entries to delete: original destination (address and/or port) and, when given, only
/// those DNATed to `dnat_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UdpFlows {
    pub dst: Option<Ipv4Addr>,
    pub dport: Option<u16>,
    pub dnat_to: Option<Ipv4Addr>,
}

/// The `nft` command, in the current network namespace or in `netns` (`ip netns exec`).
#[derive(Debug, Clone, Default)]
pub struct Nft {
    pub netns: Option<String>,
}

fn command(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns, program]);
            command
        }
        None => Command::new(program),
    }
}

fn clip(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let text = text.trim();
    if text.len() <= MAX_ERROR_OUTPUT {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_OUTPUT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Runs `command` with `input` on stdin; its output, or an error with its stderr.
fn run(
    mut command: Command,
    program: &'static str,
    package: &'static str,
    input: Option<&str>,
) -> Result<std::process::Output, CommandError> {
    let spawn_error = |e: std::io::Error| CommandError::Spawn {
        program,
        package,
        message: e.to_string(),
    };
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(spawn_error)?;
    let output = std::thread::scope(|scope| {
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // A writer of its own: nft may answer on stderr before it has read everything.
            scope.spawn(move || {
                let _ = stdin.write_all(input.as_bytes());
            });
        }
        child.wait_with_output()
    })
    .map_err(spawn_error)?;
    Ok(output)
}

impl Nft {
    /// Whether `nft` runs and may read the kernel's tables (it needs CAP_NET_ADMIN): for an agent to
    /// refuse to start, naming the package, rather than retry syncs forever.
    pub fn check(&self) -> Result<(), CommandError> {
        let mut nft = command(self.netns.as_deref(), "nft");
        nft.args(["list", "tables"]);
        let output = run(nft, "nft", "nftables", None)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(CommandError::Failed {
                program: "nft",
                output: clip(&output.stderr),
            })
        }
    }
}

impl NftApplier for Nft {
    fn apply(&self, transaction: &str) -> Result<(), CommandError> {
        let mut nft = command(self.netns.as_deref(), "nft");
        nft.args(["-f", "-"]);
        let output = run(nft, "nft", "nftables", Some(transaction))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(CommandError::Failed {
                program: "nft",
                output: clip(&output.stderr),
            })
        }
    }

    fn list(&self, table: &str) -> Result<Option<String>, CommandError> {
        let mut nft = command(self.netns.as_deref(), "nft");
        nft.args(["list", "table", "ip", table]);
        let output = run(nft, "nft", "nftables", None)?;
        if output.status.success() {
            return Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()));
        }
        let stderr = clip(&output.stderr);
        if stderr.contains("No such file or directory") {
            Ok(None)
        } else {
            Err(CommandError::Failed {
                program: "nft",
                output: stderr,
            })
        }
    }

    /// SCTP needs the kernel's SCTP connection tracking (for NAT) and rules that match it: the first shows
    /// as its sysctls, the second is asked of the kernel with a checked (never committed) transaction.
    fn supports_sctp(&self) -> bool {
        if !Path::new("/proc/sys/net/netfilter/nf_conntrack_sctp_timeout_established").exists() {
            return false;
        }
        let check = "add table ip gantry-sctp-check\n\
                     add chain ip gantry-sctp-check c { type nat hook prerouting priority -100; }\n\
                     add rule ip gantry-sctp-check c meta l4proto sctp sctp dport 1 dnat ip to 127.0.0.1:1\n";
        let mut nft = command(self.netns.as_deref(), "nft");
        nft.args(["--check", "-f", "-"]);
        run(nft, "nft", "nftables", Some(check)).is_ok_and(|o| o.status.success())
    }
}

/// The `conntrack` command (Debian package `conntrack`), in the current network namespace or in `netns`.
#[derive(Debug, Clone, Default)]
pub struct ConntrackTool {
    pub netns: Option<String>,
}

impl ConntrackTool {
    /// Whether `conntrack` runs (without it, only the cleanup of stale UDP entries is lost).
    pub fn check(&self) -> Result<(), CommandError> {
        let mut conntrack = command(self.netns.as_deref(), "conntrack");
        conntrack.arg("--version");
        let output = run(conntrack, "conntrack", "conntrack", None)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(CommandError::Failed {
                program: "conntrack",
                output: clip(&output.stderr),
            })
        }
    }
}

impl Conntrack for ConntrackTool {
    fn delete_udp(&self, flows: &UdpFlows) -> Result<(), CommandError> {
        let mut conntrack = command(self.netns.as_deref(), "conntrack");
        conntrack.args(["-D", "-p", "udp"]);
        if let Some(dst) = flows.dst {
            conntrack.args(["--orig-dst", &dst.to_string()]);
        }
        if let Some(port) = flows.dport {
            conntrack.args(["--orig-port-dst", &port.to_string()]);
        }
        if let Some(to) = flows.dnat_to {
            conntrack.args(["--dst-nat", &to.to_string()]);
        }
        let output = run(conntrack, "conntrack", "conntrack", None)?;
        let stderr = clip(&output.stderr);
        // Exit status 1 with "0 flow entries have been deleted" is success: there was nothing to delete.
        if output.status.success() || stderr.contains(": 0 flow entries") {
            Ok(())
        } else {
            Err(CommandError::Failed {
                program: "conntrack",
                output: stderr,
            })
        }
    }
}

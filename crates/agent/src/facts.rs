//! What the node agent reports about its machine: CPUs, memory, disk, kernel and OS, from `/proc`, `/etc` and
//! `statvfs`. Missing files give empty strings, not errors (containers and minimal hosts lack some).

use std::path::Path;

/// The machine as a Node reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub cpus: u64,
    pub memory_bytes: u64,
    /// Size of the file system holding the agent's data directory (`ephemeral-storage`).
    pub ephemeral_bytes: u64,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    /// `amd64`, `arm64`, … as Kubernetes names architectures.
    pub architecture: String,
    pub hostname: String,
}

impl NodeFacts {
    /// Reads the facts of this machine; `data_dir` is where the agent keeps containers (its disk is the
    /// node's ephemeral storage).
    pub fn gather(data_dir: &Path) -> NodeFacts {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        NodeFacts {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            memory_bytes: mem_total(&read("/proc/meminfo")),
            ephemeral_bytes: rustix::fs::statvfs(data_dir)
                .map(|s| s.f_blocks * s.f_frsize)
                .unwrap_or(0),
            kernel_version: read("/proc/sys/kernel/osrelease"),
            os_image: pretty_name(&read("/etc/os-release")),
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            architecture: match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            }
            .to_owned(),
            hostname: read("/proc/sys/kernel/hostname"),
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// `PRETTY_NAME` of `/etc/os-release`, unquoted.
fn pretty_name(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "Linux".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_and_os_release() {
        assert_eq!(
            mem_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            24_576_000 * 1024
        );
        assert_eq!(mem_total(""), 0);
        assert_eq!(
            pretty_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
    }

    #[test]
    fn this_machine_has_cpus_memory_and_a_kernel() {
        let facts = NodeFacts::gather(Path::new("/"));
        assert!(facts.cpus >= 1);
        assert!(facts.memory_bytes > 64 << 20, "{facts:?}");
        assert!(facts.ephemeral_bytes > 0, "{facts:?}");
        assert!(!facts.kernel_version.is_empty());
    }
}

//! The OCI runtime spec (`config.json`) of a container: a pure function of its description, with containerd's
//! defaults (capabilities, mounts, masked and read-only paths) so containers behave as they do under containerd.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder,
    PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::seccomp;

/// The `PATH` a container gets when its environment has none (containerd's).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities of an unprivileged container (containerd's and Docker's default set).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability a privileged container gets (runtimes ignore the ones their kernel lacks).
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths hidden from unprivileged containers (containerd's defaults).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths unprivileged containers see read-only (containerd's defaults).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// What the spec is made from: one container of a pod, as the node agent resolved it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerConfig {
    /// The command and its arguments (image entrypoint + cmd, resolved by the caller).
    pub args: Vec<String>,
    /// `KEY=VALUE` pairs; a default `PATH` is added when there is none.
    pub env: Vec<String>,
    /// Working directory inside the container; `/` when empty.
    pub cwd: String,
    pub user: UserIds,
    /// The container's root filesystem (e.g. the overlay mount point).
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    /// Set only when the container creates its own UTS namespace: runtimes call sethostname even when
    /// joining one, which would rename the pod for every container that joins.
    pub hostname: Option<String>,
    pub namespaces: Namespaces,
    /// Absolute cgroup path, e.g. `/gantry/pod<uid>/<container>`; under cgroup v1 it names a directory in
    /// every hierarchy. Without an absolute path runc would nest the container under the caller's cgroup.
    pub cgroups_path: String,
    pub resources: Resources,
    pub capabilities: CapabilityChanges,
    /// All capabilities, no masked or read-only paths, writable sysfs and cgroupfs, every device allowed,
    /// no seccomp filter.
    pub privileged: bool,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    /// `RLIMIT_NOFILE` (soft = hard). `None` inherits the runtime's limits, as containerd's CRI does; raising
    /// them above the runtime's own needs `CAP_SYS_RESOURCE`.
    pub nofile_limit: Option<u64>,
    /// Bind mounts (volumes, `/etc/hosts`, `/etc/resolv.conf`, ...), after the default mounts.
    pub mounts: Vec<BindMount>,
    pub seccomp: SeccompPolicy,
    /// Namespaced sysctls (`net.*` apply to the pod's network namespace).
    pub sysctls: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserIds {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Where each namespace comes from. The mount namespace is always new.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub network: Namespace,
    pub ipc: Namespace,
    pub uts: Namespace,
    pub pid: Namespace,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Namespace {
    /// A new namespace of the container's own.
    #[default]
    New,
    /// Join the namespace at this path (`/proc/<pid>/ns/uts`, a bind-mounted netns file).
    Join(PathBuf),
    /// Stay in the runtime's (the host's) namespace.
    Host,
}

/// cgroup limits; `None` leaves the limit unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// cgroup v1 `cpu.shares` (runtimes convert to `cpu.weight` on v2).
    pub cpu_shares: Option<u64>,
    /// CFS quota in µs per period.
    pub cpu_quota: Option<i64>,
    /// CFS period in µs.
    pub cpu_period: Option<u64>,
    /// Bytes.
    pub memory_limit: Option<i64>,
    pub pids_limit: Option<i64>,
}

/// Kubernetes `securityContext.capabilities`: names with or without `CAP_`, any case; `ALL` in `drop`
/// starts from nothing, `ALL` in `add` grants everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapabilityChanges {
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Path inside the container.
    pub destination: PathBuf,
    pub readonly: bool,
    pub propagation: Propagation,
}

/// Mount propagation (Kubernetes `mountPropagation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    /// `rprivate` (Kubernetes `None`).
    #[default]
    Private,
    /// `rslave`: host mounts appear in the container (`HostToContainer`).
    HostToContainer,
    /// `rshared` both ways (`Bidirectional`); needs a shared source mount on the host.
    Bidirectional,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SeccompPolicy {
    #[default]
    Unconfined,
    /// The allowlist shipped with this crate (`seccomp/default.json`), filtered by the capabilities granted.
    RuntimeDefault,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("cgroups path {0:?} must be absolute")]
    RelativeCgroupsPath(String),
    #[error("container has no command")]
    NoCommand,
    #[error("building the OCI spec: {0}")]
    Oci(#[from] OciSpecError),
    #[error("the seccomp profile: {0}")]
    Seccomp(String),
}

/// The OCI spec for `config`, for a runtime on this machine's architecture.
pub fn generate(config: &ContainerConfig) -> Result<Spec, SpecError> {
    generate_for_arch(config, std::env::consts::ARCH)
}

/// [`generate`] for the given architecture (`std::env::consts::ARCH` names), which only the seccomp profile
/// depends on.
pub fn generate_for_arch(config: &ContainerConfig, arch: &str) -> Result<Spec, SpecError> {
    if config.args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    if !config.cgroups_path.starts_with('/') {
        return Err(SpecError::RelativeCgroupsPath(config.cgroups_path.clone()));
    }
    let caps = capabilities(config)?;
    let cap_set: oci_spec::runtime::Capabilities = caps
        .iter()
        .map(|name| {
            parse_capability(name).ok_or_else(|| SpecError::UnknownCapability(name.clone()))
        })
        .collect::<Result<_, _>>()?;

    let mut env = config.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    // The builders start from oci-spec's defaults (runc's `spec`): what they set and we do not want is unset.
    let mut capability_sets = LinuxCapabilitiesBuilder::default()
        .bounding(cap_set.clone())
        .effective(cap_set.clone())
        .permitted(cap_set)
        .build()?;
    capability_sets.set_inheritable(None);
    capability_sets.set_ambient(None);
    let mut user = UserBuilder::default()
        .uid(config.user.uid)
        .gid(config.user.gid);
    if !config.user.additional_gids.is_empty() {
        user = user.additional_gids(config.user.additional_gids.clone());
    }
    let mut process = ProcessBuilder::default()
        .terminal(false)
        .user(user.build()?)
        .args(config.args.clone())
        .env(env)
        .cwd(if config.cwd.is_empty() {
            "/"
        } else {
            config.cwd.as_str()
        })
        .capabilities(capability_sets)
        .rlimits(match config.nofile_limit {
            Some(n) => vec![
                PosixRlimitBuilder::default()
                    .typ(PosixRlimitType::RlimitNofile)
                    .hard(n)
                    .soft(n)
                    .build()?,
            ],
            None => Vec::new(),
        })
        .no_new_privileges(config.no_new_privileges);
    if let Some(adj) = config.oom_score_adj {
        process = process.oom_score_adj(adj);
    }
    let mut process = process.build()?;
    if config.nofile_limit.is_none() {
        process.set_rlimits(None);
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces(&config.namespaces)?)
        .cgroups_path(PathBuf::from(&config.cgroups_path))
        .resources(resources(config)?);
    if !config.privileged {
        linux = linux
            .masked_paths(
                MASKED_PATHS
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>(),
            )
            .readonly_paths(
                READONLY_PATHS
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>(),
            );
    }
    if !config.sysctls.is_empty() {
        linux = linux.sysctl(
            config
                .sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        );
    }
    if let Some(propagation) = rootfs_propagation(&config.mounts) {
        linux = linux.rootfs_propagation(propagation);
    }
    // containerd's rule: privileged containers run unconfined whatever was asked.
    if config.seccomp == SeccompPolicy::RuntimeDefault && !config.privileged {
        linux = linux.seccomp(seccomp::runtime_default(&caps, arch)?);
    }

    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(&config.rootfs)
                .readonly(config.readonly_rootfs)
                .build()?,
        )
        .process(process)
        .mounts(mounts(config)?)
        .linux(linux.build()?)
        .build()?;
    spec.set_hostname(
        config
            .hostname
            .clone()
            .filter(|_| config.namespaces.uts == Namespace::New),
    );
    spec.set_annotations(None);
    if config.privileged
        && let Some(linux) = spec.linux_mut()
    {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
    }
    Ok(spec)
}

/// The capability names the container gets, sorted.
fn capabilities(config: &ContainerConfig) -> Result<BTreeSet<String>, SpecError> {
    let all = || {
        ALL_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .collect::<BTreeSet<_>>()
    };
    if config.privileged {
        return Ok(all());
    }
    let normalize = |name: &str| -> Result<String, SpecError> {
        let upper = name.to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        if full == "CAP_ALL" || ALL_CAPABILITIES.contains(&full.as_str()) {
            Ok(full)
        } else {
            Err(SpecError::UnknownCapability(name.to_string()))
        }
    };
    let mut caps: BTreeSet<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    for name in &config.capabilities.drop {
        match normalize(name)?.as_str() {
            "CAP_ALL" => caps.clear(),
            cap => {
                caps.remove(cap);
            }
        }
    }
    for name in &config.capabilities.add {
        match normalize(name)?.as_str() {
            "CAP_ALL" => caps = all(),
            cap => {
                caps.insert(cap.to_string());
            }
        }
    }
    Ok(caps)
}

/// oci-spec parses names without the `CAP_` prefix.
fn parse_capability(name: &str) -> Option<Capability> {
    name.strip_prefix("CAP_").unwrap_or(name).parse().ok()
}

fn namespaces(ns: &Namespaces) -> Result<Vec<LinuxNamespace>, SpecError> {
    let mut out = Vec::new();
    for (typ, how) in [
        (LinuxNamespaceType::Pid, &ns.pid),
        (LinuxNamespaceType::Ipc, &ns.ipc),
        (LinuxNamespaceType::Uts, &ns.uts),
        (LinuxNamespaceType::Mount, &Namespace::New),
        (LinuxNamespaceType::Network, &ns.network),
    ] {
        let builder = LinuxNamespaceBuilder::default().typ(typ);
        match how {
            Namespace::New => out.push(builder.build()?),
            Namespace::Join(path) => out.push(builder.path(path).build()?),
            Namespace::Host => {}
        }
    }
    Ok(out)
}

fn resources(config: &ContainerConfig) -> Result<oci_spec::runtime::LinuxResources, SpecError> {
    let r = &config.resources;
    let devices = LinuxDeviceCgroupBuilder::default()
        .allow(config.privileged)
        .access("rwm")
        .build()?;
    let mut out = LinuxResourcesBuilder::default().devices(vec![devices]);
    if let Some(limit) = r.memory_limit {
        out = out.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    if r.cpu_shares.is_some() || r.cpu_quota.is_some() || r.cpu_period.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(shares) = r.cpu_shares {
            cpu = cpu.shares(shares);
        }
        if let Some(quota) = r.cpu_quota {
            cpu = cpu.quota(quota);
        }
        if let Some(period) = r.cpu_period {
            cpu = cpu.period(period);
        }
        out = out.cpu(cpu.build()?);
    }
    if let Some(limit) = r.pids_limit {
        out = out.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }
    Ok(out.build()?)
}

fn mount(
    destination: &str,
    typ: &str,
    source: &str,
    options: &[&str],
) -> Result<Mount, OciSpecError> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
}

/// containerd's default mounts, then the caller's bind mounts.
fn mounts(config: &ContainerConfig) -> Result<Vec<Mount>, SpecError> {
    let ro_unless_privileged = if config.privileged { "rw" } else { "ro" };
    let mut out = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", ro_unless_privileged],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[
                "nosuid",
                "noexec",
                "nodev",
                "relatime",
                ro_unless_privileged,
            ],
        )?,
    ];
    for m in &config.mounts {
        let propagation = match m.propagation {
            Propagation::Private => "rprivate",
            Propagation::HostToContainer => "rslave",
            Propagation::Bidirectional => "rshared",
        };
        let mut options = vec!["rbind", propagation];
        if m.readonly {
            options.push("ro");
        }
        out.push(
            MountBuilder::default()
                .destination(&m.destination)
                .typ("bind")
                .source(&m.source)
                .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
                .build()?,
        );
    }
    Ok(out)
}

/// The root's propagation must allow what the bind mounts ask for (containerd's rule).
fn rootfs_propagation(mounts: &[BindMount]) -> Option<&'static str> {
    if mounts
        .iter()
        .any(|m| m.propagation == Propagation::Bidirectional)
    {
        Some("rshared")
    } else if mounts
        .iter()
        .any(|m| m.propagation == Propagation::HostToContainer)
    {
        Some("rslave")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config() -> ContainerConfig {
        ContainerConfig {
            args: vec!["sh".into()],
            cgroups_path: "/gantry/podx/c".into(),
            ..Default::default()
        }
    }

    #[test]
    fn capability_changes() {
        let mut c = config();
        c.capabilities = CapabilityChanges {
            add: vec!["net_admin".into()],
            drop: vec!["CAP_KILL".into(), "mknod".into()],
        };
        let caps = capabilities(&c).unwrap();
        assert!(caps.contains("CAP_NET_ADMIN"));
        assert!(!caps.contains("CAP_KILL") && !caps.contains("CAP_MKNOD"));
        assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len() - 1);

        c.capabilities = CapabilityChanges {
            add: vec!["CHOWN".into()],
            drop: vec!["ALL".into()],
        };
        assert_eq!(
            capabilities(&c).unwrap().into_iter().collect::<Vec<_>>(),
            ["CAP_CHOWN"]
        );

        c.capabilities = CapabilityChanges {
            add: vec!["ALL".into()],
            drop: vec![],
        };
        assert_eq!(capabilities(&c).unwrap().len(), ALL_CAPABILITIES.len());

        c.capabilities = CapabilityChanges {
            add: vec!["FLY".into()],
            drop: vec![],
        };
        assert!(matches!(capabilities(&c), Err(SpecError::UnknownCapability(n)) if n == "FLY"));
    }

    #[test]
    fn every_capability_name_parses() {
        for name in ALL_CAPABILITIES {
            assert!(parse_capability(name).is_some(), "{name}");
        }
    }

    #[test]
    fn hostname_only_with_a_new_uts_namespace() {
        let mut c = config();
        c.hostname = Some("web-0".into());
        assert_eq!(generate(&c).unwrap().hostname().as_deref(), Some("web-0"));
        c.namespaces.uts = Namespace::Join("/proc/1/ns/uts".into());
        assert_eq!(generate(&c).unwrap().hostname(), &None);
    }

    #[test]
    fn rejects_relative_cgroups_path_and_no_command() {
        let mut c = config();
        c.cgroups_path = "gantry/x".into();
        assert!(matches!(
            generate(&c),
            Err(SpecError::RelativeCgroupsPath(_))
        ));
        let mut c = config();
        c.args.clear();
        assert!(matches!(generate(&c), Err(SpecError::NoCommand)));
    }
}

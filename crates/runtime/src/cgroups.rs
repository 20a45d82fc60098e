//! cgroups v1 (including the hybrid layout: v1 controllers under `/sys/fs/cgroup/<name>` plus a cgroup2
//! mount at `/sys/fs/cgroup/unified`) and v2 (one unified hierarchy), found from `/proc/self/mountinfo`.
//!
//! The runtimes create and delete each container's leaf cgroup; this module owns what lies above it: the pod
//! cgroup with the pod's limits, created before the first container and removed (in every hierarchy) after
//! the last one, and reading a container's OOM kills.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::spec::Resources;

/// v1 controllers (and `name=` hierarchies) as they appear in mount options.
const V1_CONTROLLERS: [&str; 14] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

/// One v1 hierarchy: where it is mounted and what it controls (`name=systemd` for a named one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    pub controllers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// v1 hierarchies; `unified` is the cgroup2 mount of hybrid mode and the controllers enabled in it.
    V1 {
        hierarchies: Vec<Hierarchy>,
        unified: Option<(PathBuf, Vec<String>)>,
    },
    /// One cgroup2 hierarchy.
    V2 { root: PathBuf },
}

/// The machine's cgroup layout and the operations on pod cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    pub layout: Layout,
}

fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

impl Cgroups {
    /// Reads this process's mount table (and, in hybrid mode, the controllers enabled in the unified mount).
    pub fn detect() -> io::Result<Self> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mut cgroups = Self::from_mountinfo(&mountinfo).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "no cgroup filesystem is mounted")
        })?;
        if let Layout::V1 {
            unified: Some((path, controllers)),
            ..
        } = &mut cgroups.layout
        {
            let listed =
                std::fs::read_to_string(path.join("cgroup.controllers")).unwrap_or_default();
            *controllers = listed.split_whitespace().map(String::from).collect();
        }
        Ok(cgroups)
    }

    /// The layout described by a `/proc/self/mountinfo` text (the hybrid mount's controllers left empty).
    pub fn from_mountinfo(text: &str) -> Option<Self> {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        let mut cgroup2 = None;
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let (Some(mount_point), Some(fstype), Some(options)) =
                (fields.get(4), fields.get(dash + 1), fields.get(dash + 3))
            else {
                continue;
            };
            match *fstype {
                "cgroup2" if cgroup2.is_none() => cgroup2 = Some(PathBuf::from(mount_point)),
                "cgroup" => {
                    let controllers: Vec<String> = options
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(String::from)
                        .collect();
                    if !controllers.is_empty()
                        && !hierarchies.iter().any(|h| h.controllers == controllers)
                    {
                        hierarchies.push(Hierarchy {
                            mount_point: PathBuf::from(mount_point),
                            controllers,
                        });
                    }
                }
                _ => {}
            }
        }
        let has_v1_controllers = hierarchies
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        if has_v1_controllers {
            Some(Cgroups {
                layout: Layout::V1 {
                    hierarchies,
                    unified: cgroup2.map(|p| (p, Vec::new())),
                },
            })
        } else {
            cgroup2.map(|root| Cgroups {
                layout: Layout::V2 { root },
            })
        }
    }

    pub fn is_v2(&self) -> bool {
        matches!(self.layout, Layout::V2 { .. })
    }

    /// crun refuses the hybrid layout while any controller is enabled in the unified hierarchy.
    pub fn crun_ready(&self) -> bool {
        match &self.layout {
            Layout::V2 { .. } => true,
            Layout::V1 { unified, .. } => unified
                .as_ref()
                .is_none_or(|(_, controllers)| controllers.is_empty()),
        }
    }

    /// Moves the controllers of the hybrid unified hierarchy (on Debian 12: `hugetlb`) to v1 hierarchies of
    /// their own (`mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb`), which crun needs; runc works
    /// either way. Changes the host's mounts: call it only when crun is chosen. A no-op when not needed.
    pub fn prepare_for_crun(&mut self) -> io::Result<()> {
        if self.crun_ready() {
            return Ok(());
        }
        let Layout::V1 {
            hierarchies,
            unified: Some((_, controllers)),
        } = &self.layout
        else {
            return Ok(());
        };
        let base = hierarchies
            .first()
            .and_then(|h| h.mount_point.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
        for controller in controllers {
            let target = base.join(controller);
            std::fs::create_dir_all(&target).map_err(|e| context(e, "creating", &target))?;
            let mounted = nix::mount::mount(
                Some("cgroup"),
                &target,
                Some("cgroup"),
                nix::mount::MsFlags::empty(),
                Some(controller.as_str()),
            );
            // EBUSY: someone else (another agent start, a concurrent call) mounted it first.
            if let Err(e) = mounted
                && e != nix::Error::EBUSY
            {
                return Err(context(
                    e.into(),
                    "mounting the cgroup v1 hierarchy at",
                    &target,
                ));
            }
        }
        *self = Self::detect()?;
        if self.crun_ready() {
            Ok(())
        } else {
            Err(io::Error::other(
                "the unified cgroup hierarchy still holds controllers, which crun refuses",
            ))
        }
    }

    /// Every directory an absolute cgroup path names: one per v1 hierarchy (named ones and the hybrid unified
    /// mount included, as runc creates the container's leaf in all of them), or one under v2.
    pub fn dirs(&self, path: &str) -> Vec<PathBuf> {
        let relative = path.trim_start_matches('/');
        match &self.layout {
            Layout::V2 { root } => vec![root.join(relative)],
            Layout::V1 {
                hierarchies,
                unified,
            } => hierarchies
                .iter()
                .map(|h| h.mount_point.join(relative))
                .chain(unified.iter().map(|(p, _)| p.join(relative)))
                .collect(),
        }
    }

    fn controller_dir(&self, controller: &str, path: &str) -> Option<PathBuf> {
        let relative = path.trim_start_matches('/');
        match &self.layout {
            Layout::V2 { root } => Some(root.join(relative)),
            Layout::V1 { hierarchies, .. } => hierarchies
                .iter()
                .find(|h| h.controllers.iter().any(|c| c == controller))
                .map(|h| h.mount_point.join(relative)),
        }
    }

    /// Creates the pod cgroup `path` (absolute, e.g. `/gantry/pod<uid>`) in every hierarchy and sets `limits`
    /// on it; the containers' leaves go below it. Idempotent.
    pub fn create_pod(&self, path: &str, limits: &Resources) -> io::Result<()> {
        match &self.layout {
            Layout::V1 { .. } => {
                for dir in self.dirs(path) {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| context(e, "creating cgroup", &dir))?;
                }
                if let Some(cpuset) = self.controller_dir("cpuset", "/") {
                    fill_cpusets(&cpuset, path)?;
                }
                let set = |controller: &str, file: &str, value: String| -> io::Result<()> {
                    match self.controller_dir(controller, path) {
                        Some(dir) => write(&dir.join(file), &value),
                        None => Ok(()),
                    }
                };
                if let Some(limit) = limits.memory_limit {
                    set("memory", "memory.limit_in_bytes", limit.to_string())?;
                }
                if let Some(shares) = limits.cpu_shares {
                    set("cpu", "cpu.shares", shares.to_string())?;
                }
                if let Some(period) = limits.cpu_period {
                    set("cpu", "cpu.cfs_period_us", period.to_string())?;
                }
                if let Some(quota) = limits.cpu_quota {
                    set("cpu", "cpu.cfs_quota_us", quota.to_string())?;
                }
                if let Some(pids) = limits.pids_limit {
                    set("pids", "pids.max", pids.to_string())?;
                }
            }
            Layout::V2 { root } => {
                let dir = root.join(path.trim_start_matches('/'));
                std::fs::create_dir_all(&dir).map_err(|e| context(e, "creating cgroup", &dir))?;
                // Each level must delegate the controllers to the one below it.
                let mut level = root.clone();
                for part in Path::new(path.trim_start_matches('/')).components() {
                    let available = std::fs::read_to_string(level.join("cgroup.controllers"))
                        .unwrap_or_default();
                    for controller in available.split_whitespace() {
                        // Controllers already enabled, or refused (e.g. cpuset with threads), are fine.
                        let _ = std::fs::write(
                            level.join("cgroup.subtree_control"),
                            format!("+{controller}"),
                        );
                    }
                    level.push(part);
                }
                if let Some(limit) = limits.memory_limit {
                    write(&dir.join("memory.max"), &limit.to_string())?;
                }
                if let Some(shares) = limits.cpu_shares {
                    write(
                        &dir.join("cpu.weight"),
                        &shares_to_weight(shares).to_string(),
                    )?;
                }
                if limits.cpu_quota.is_some() || limits.cpu_period.is_some() {
                    let quota = limits
                        .cpu_quota
                        .filter(|q| *q > 0)
                        .map_or("max".to_string(), |q| q.to_string());
                    write(
                        &dir.join("cpu.max"),
                        &format!("{quota} {}", limits.cpu_period.unwrap_or(100_000)),
                    )?;
                }
                if let Some(pids) = limits.pids_limit {
                    write(&dir.join("pids.max"), &pids.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Whether `path` exists in any hierarchy.
    pub fn exists(&self, path: &str) -> bool {
        self.dirs(path).iter().any(|d| d.exists())
    }

    /// Removes `path` and every cgroup below it in every hierarchy (runtimes remove only their leaf). Waits up
    /// to two seconds for exiting processes to leave; a cgroup still busy then is an error.
    pub async fn remove(&self, path: &str) -> io::Result<()> {
        for dir in self.dirs(path) {
            let mut tries = 0;
            loop {
                match remove_tree(&dir) {
                    Ok(()) => break,
                    Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) && tries < 200 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(e) => return Err(context(e, "removing cgroup", &dir)),
                }
            }
        }
        Ok(())
    }

    /// How many times the kernel OOM-killed a process of cgroup `path` (v1 `memory.oom_control`, v2
    /// `memory.events`); 0 when the cgroup or the counter is missing.
    pub fn oom_kills(&self, path: &str) -> u64 {
        let file = match &self.layout {
            Layout::V1 { .. } => self
                .controller_dir("memory", path)
                .map(|d| d.join("memory.oom_control")),
            Layout::V2 { root } => Some(
                root.join(path.trim_start_matches('/'))
                    .join("memory.events"),
            ),
        };
        file.and_then(|f| std::fs::read_to_string(f).ok())
            .map_or(0, |text| parse_oom_kill(&text))
    }

    /// The processes in `path` (v1: the memory hierarchy's view, else the first hierarchy).
    pub fn procs(&self, path: &str) -> Vec<u32> {
        let dir = self
            .controller_dir("memory", path)
            .or_else(|| self.dirs(path).into_iter().next());
        dir.and_then(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }
}

/// The `oom_kill N` counter of `memory.oom_control` or `memory.events`.
pub fn parse_oom_kill(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// cgroup v1 `cpu.shares` (2..262144) to v2 `cpu.weight` (1..10000), the conversion runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        100
    } else {
        1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
    }
}

fn write(file: &Path, value: &str) -> io::Result<()> {
    std::fs::write(file, value).map_err(|e| context(e, &format!("writing {value:?} to"), file))
}

/// A v1 cpuset cgroup takes no tasks until `cpuset.cpus` and `cpuset.mems` are set: copy them down from the
/// parent at every level that has them empty.
fn fill_cpusets(root: &Path, path: &str) -> io::Result<()> {
    let mut parent = root.to_path_buf();
    for part in Path::new(path.trim_start_matches('/')).components() {
        let dir = parent.join(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let current = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            if current.trim().is_empty() {
                let value = std::fs::read_to_string(parent.join(file))
                    .map_err(|e| context(e, "reading", &parent))?;
                write(&dir.join(file), value.trim())?;
            }
        }
        parent = dir;
    }
    Ok(())
}

/// rmdir of a cgroup and its descendants, deepest first (cgroupfs has only directories to remove).
fn remove_tree(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
27 26 0:25 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
28 26 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
29 26 0:27 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
30 26 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
31 26 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu
";

    #[test]
    fn hybrid_layout() {
        let c = Cgroups::from_mountinfo(HYBRID).unwrap();
        let Layout::V1 {
            hierarchies,
            unified,
        } = &c.layout
        else {
            panic!("{c:?}")
        };
        assert_eq!(
            hierarchies.len(),
            3,
            "a hierarchy mounted twice counts once"
        );
        assert_eq!(hierarchies[2].controllers, ["name=systemd"]);
        assert_eq!(
            unified.as_ref().unwrap().0,
            Path::new("/sys/fs/cgroup/unified")
        );
        assert_eq!(
            c.dirs("/gantry/pod1"),
            [
                "/sys/fs/cgroup/cpu/gantry/pod1",
                "/sys/fs/cgroup/memory/gantry/pod1",
                "/sys/fs/cgroup/systemd/gantry/pod1",
                "/sys/fs/cgroup/unified/gantry/pod1"
            ]
            .map(PathBuf::from)
        );
        assert!(c.crun_ready(), "no controller listed in the unified mount");
        let mut blocked = c.clone();
        if let Layout::V1 {
            unified: Some((_, controllers)),
            ..
        } = &mut blocked.layout
        {
            controllers.push("hugetlb".into());
        }
        assert!(!blocked.crun_ready());
    }

    #[test]
    fn unified_layout() {
        let c = Cgroups::from_mountinfo(
            "30 26 0:28 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
        )
        .unwrap();
        assert_eq!(
            c.layout,
            Layout::V2 {
                root: "/sys/fs/cgroup".into()
            }
        );
        assert_eq!(
            c.dirs("/gantry/pod1/c"),
            [PathBuf::from("/sys/fs/cgroup/gantry/pod1/c")]
        );
        assert!(Cgroups::from_mountinfo("1 0 0:1 / / rw - ext4 /dev/sda rw\n").is_none());
    }

    #[test]
    fn oom_counter_and_weights() {
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(
            parse_oom_kill("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n"),
            1
        );
        assert_eq!(parse_oom_kill(""), 0);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }
}

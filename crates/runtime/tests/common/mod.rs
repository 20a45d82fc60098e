//! Shared by the container tests and the benchmark: a busybox rootfs, real runtimes, and a guard that cleans
//! up containers, mounts and cgroups even when a test fails.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_methods
)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use gantry_runtime::cgroups::Cgroups;
use gantry_runtime::oci::{Kind, Runtime, RuntimeError};
use gantry_runtime::rootfs::Overlay;
use gantry_runtime::shim::{self, Shim, ShimArgs};
use gantry_runtime::spec::{self, ContainerConfig};

pub const HELPER: &str = env!("CARGO_BIN_EXE_gantry-runtime-helper");

const APPLETS: [&str; 20] = [
    "sh", "echo", "cat", "sleep", "true", "false", "id", "hostname", "ps", "kill", "ls", "httpd",
    "wget", "seq", "printf", "timeout", "head", "tail", "nc", "ip",
];

/// The runtime the tests use: runc, or `GANTRY_TEST_RUNTIME=crun`.
pub fn test_runtime_kind() -> Kind {
    match std::env::var("GANTRY_TEST_RUNTIME").as_deref() {
        Ok("crun") => Kind::Crun,
        _ => Kind::Runc,
    }
}

/// `kind` and the cgroups, made ready for it. Missing is a failure, not a skip.
pub fn runtime(root: &Path, kind: Kind) -> (Runtime, Cgroups) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests run containers: run them as root"
    );
    assert!(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing: apt-get install -y busybox-static"
    );
    let mut cgroups = Cgroups::detect().unwrap();
    let runtime = Runtime::detect(root, &mut cgroups, Some(kind)).unwrap_or_else(|e| match e {
        RuntimeError::NotInstalled(_) => panic!("{e}: apt-get install -y runc crun busybox-static"),
        e => panic!("{e}"),
    });
    (runtime, cgroups)
}

/// A one-layer busybox image: busybox, applet links, passwd/group, /tmp, a web page.
pub fn busybox_layer(dir: &Path) -> PathBuf {
    let layer = dir.join("layer");
    for d in ["bin", "etc", "tmp", "www", "proc", "dev", "sys"] {
        std::fs::create_dir_all(layer.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", layer.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", layer.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        layer.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(layer.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(layer.join("www/index.html"), "hello from the pod\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(layer.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    layer
}

/// One test's world: a temp dir, a runtime, a pod cgroup; everything it made is removed on drop.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub runtime: Runtime,
    pub cgroups: Cgroups,
    pub layer: PathBuf,
    /// `/gantry/test-<name>-<pid>`
    pub pod_cgroup: String,
    containers: Mutex<Vec<(String, Overlay)>>,
    /// Pause pid and netns file, if a sandbox was started and not stopped.
    pub sandbox: Mutex<Option<(u32, PathBuf)>>,
}

impl Env {
    pub fn new(name: &str) -> Env {
        Env::with_runtime(name, test_runtime_kind())
    }

    pub fn with_runtime(name: &str, kind: Kind) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, cgroups) = runtime(&dir.path().join("runtime-root"), kind);
        let layer = busybox_layer(dir.path());
        let pod_cgroup = format!("/gantry/test-{name}-{}", std::process::id());
        Env {
            dir,
            runtime,
            cgroups,
            layer,
            pod_cgroup,
            containers: Mutex::new(Vec::new()),
            sandbox: Mutex::new(None),
        }
    }

    /// A container config for `name` with its overlay rootfs mounted and its cgroup under the pod's.
    pub fn config(&self, name: &str, args: &[&str]) -> ContainerConfig {
        let overlay = Overlay {
            layers: vec![self.layer.clone()],
            dir: self.dir.path().join("containers").join(name),
        };
        overlay.mount().unwrap();
        let config = ContainerConfig {
            args: args.iter().map(|a| a.to_string()).collect(),
            rootfs: overlay.target(),
            cgroups_path: format!("{}/{name}", self.pod_cgroup),
            ..Default::default()
        };
        self.containers
            .lock()
            .unwrap()
            .push((self.id(name), overlay));
        config
    }

    pub fn id(&self, name: &str) -> String {
        format!("gt-{}-{name}", self.pod_cgroup.rsplit('/').next().unwrap())
    }

    pub fn bundle(&self, name: &str) -> PathBuf {
        self.dir.path().join("containers").join(name)
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("logs").join(name).join("0.log")
    }

    pub fn shim_args(&self, name: &str) -> ShimArgs {
        ShimArgs::new(
            &self.id(name),
            &self.bundle(name),
            &self.runtime,
            &self.log_path(name),
        )
    }

    /// Writes the bundle's config.json and starts the shim (the container is created, not started).
    pub async fn create(
        &self,
        name: &str,
        config: &ContainerConfig,
        args: &ShimArgs,
    ) -> Result<Shim, shim::ShimError> {
        let spec = spec::generate(config).unwrap();
        std::fs::write(
            self.bundle(name).join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        )
        .unwrap();
        shim::spawn_shim(Path::new(HELPER), "shim", args).await
    }

    /// Creates and starts `name`.
    pub async fn run(&self, name: &str, config: &ContainerConfig) -> Shim {
        let shim = self
            .create(name, config, &self.shim_args(name))
            .await
            .unwrap();
        self.runtime.start(&self.id(name)).await.unwrap();
        shim
    }

    /// The log entries' `stream text` pairs.
    pub fn log(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.log_path(name))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let e = gantry_runtime::cri_log::parse(l)
                    .unwrap_or_else(|| panic!("not a CRI log line: {l:?}"));
                format!(
                    "{} {}{}",
                    e.stream.name(),
                    if e.partial { "P " } else { "" },
                    e.text
                )
            })
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for (id, overlay) in self.containers.lock().unwrap().drain(..) {
            let _ = self
                .runtime
                .command()
                .args(["delete", "--force", &id])
                .output();
            let _ = overlay.remove();
        }
        if let Some((pid, netns)) = self.sandbox.lock().unwrap().take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = gantry_runtime::rootfs::unmount(&netns);
        }
        // Exiting processes take a moment to leave their cgroups.
        for _ in 0..200 {
            let busy = self
                .cgroups
                .dirs(&self.pod_cgroup)
                .into_iter()
                .any(|d| remove_tree(&d).is_err());
            if !busy {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Waits at most a minute (the machine may be busy).
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} took over a minute"))
}

//! Shared by the integration tests: test images, skopeo, a local registry, overlay mounts.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gantry_images::testimage::{self, TarBuilder};
use tempfile::TempDir;

/// A busybox OCI layout in a new temp dir, tagged `busybox:latest`.
pub fn busybox_layout() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("busybox");
    testimage::busybox(&layout, "busybox:latest").unwrap();
    (dir, layout)
}

/// Builds a layout from tars, with `Cmd` set to `cmd`.
pub fn layout(dir: &Path, reference: &str, layers: Vec<TarBuilder>) -> PathBuf {
    let tars: Vec<Vec<u8>> = layers.into_iter().map(|t| t.finish().unwrap()).collect();
    testimage::oci_layout(dir, reference, &tars, &serde_json::json!({"Cmd": ["sh"]})).unwrap();
    dir.to_path_buf()
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (apt-get install it)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn skopeo(args: &[&str]) {
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    run("skopeo", &all);
}

/// Debian's docker-registry on 127.0.0.1 and a free port, storing under a temp dir.
pub struct Registry {
    child: Child,
    pub addr: String,
    pub storage: PathBuf,
    _dir: TempDir,
}

impl Registry {
    pub async fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let registry = Registry {
            child,
            addr,
            storage,
            _dir: dir,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "registry did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        registry
    }

    /// Pushes an OCI layout's image (by its ref.name) as `repo:tag`.
    pub fn push(&self, layout: &Path, ref_name: &str, repo_tag: &str, all: bool) {
        let src = format!("oci:{}:{ref_name}", layout.display());
        let dest = format!("docker://{}/{repo_tag}", self.addr);
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        if all {
            args.push("--all");
        }
        args.extend([src.as_str(), dest.as_str()]);
        skopeo(&args);
    }

    /// The registry's file holding a blob.
    pub fn blob_file(&self, hex: &str) -> PathBuf {
        self.storage.join(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An overlay mount of `lower` (top first), unmounted on drop. `None` where mounting is not allowed.
pub struct Overlay {
    pub target: PathBuf,
}

impl Overlay {
    pub fn mount(lower: &[PathBuf], target: &Path) -> Option<Overlay> {
        std::fs::create_dir_all(target).unwrap();
        let dirs: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
        let status = Command::new("mount")
            .args([
                "-t",
                "overlay",
                "overlay",
                "-o",
                &format!("lowerdir={}", dirs.join(":")),
            ])
            .arg(target)
            .status()
            .ok()?;
        status.success().then(|| Overlay {
            target: target.to_path_buf(),
        })
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.target).status();
    }
}

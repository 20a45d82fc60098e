//! A container's root filesystem: an overlayfs of the image's layer directories (read-only, shared between
//! containers) under a writable upper directory of its own.
//!
//! overlayfs's `lowerdir=A:B:C` lists the layers **topmost first**: A hides B, which hides C. Images list
//! their layers base first, so [`Overlay::layers`] takes them in image order and [`mount_data`] reverses them.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// The largest mount data the kernel accepts (one page, with its terminating NUL).
const MAX_MOUNT_DATA: usize = 4095;

/// One container's overlay: where its layers are and where its own directories go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Layer directories in image order: base layer first, topmost last.
    pub layers: Vec<PathBuf>,
    /// The container's directory: holds `upper/`, `work/` and the mount point `rootfs/`.
    pub dir: PathBuf,
}

impl Overlay {
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// The mount point: the container's `root.path`.
    pub fn target(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Creates the container's directories and mounts the overlay, with `volatile` (no syncs: the upper
    /// directory is thrown away with the container, and unmounting gets twice as fast) where the kernel
    /// has it (5.10+), without it elsewhere.
    pub fn mount(&self) -> io::Result<()> {
        let target = self.target();
        // What an interrupted attempt left goes first (an agent killed while it made this container): a
        // volatile overlay that was not unmounted cleanly marks its work directory, and the kernel then
        // refuses to mount with it again (EINVAL) until upper and work are made anew.
        if self.work().exists() {
            unmount(&target)?;
            for dir in [self.upper(), self.work()] {
                std::fs::remove_dir_all(&dir).map_err(|e| context(e, "removing", &dir))?;
            }
        }
        for dir in [self.upper(), self.work(), target.clone()] {
            std::fs::create_dir_all(&dir).map_err(|e| context(e, "creating", &dir))?;
        }
        let attempt = |volatile: bool| -> io::Result<()> {
            let data = mount_data(&self.layers, &self.upper(), &self.work(), volatile)?;
            nix::mount::mount(
                Some("overlay"),
                &target,
                Some("overlay"),
                MsFlags::empty(),
                Some(data.as_str()),
            )
            .map_err(|e| context(e.into(), "mounting overlay at", &target))
        };
        match attempt(true) {
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => attempt(false),
            other => other,
        }
    }

    /// Unmounts the rootfs (lazily if it is busy); not mounted is fine.
    pub fn unmount(&self) -> io::Result<()> {
        unmount(&self.target())
    }

    /// Unmounts, then removes the container's directory (upper, work and mount point).
    pub fn remove(&self) -> io::Result<()> {
        self.unmount()?;
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(context(e, "removing", &self.dir)),
            _ => Ok(()),
        }
    }
}

/// The overlayfs mount data: `lowerdir=<topmost>:...:<base>,upperdir=...,workdir=...[,volatile]`.
/// `layers` are in image order (base first). Paths holding `:` or `,` cannot be expressed and are refused, as
/// is data over a page (about 40 layers at typical path lengths).
pub fn mount_data(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    volatile: bool,
) -> io::Result<String> {
    if layers.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an overlay needs at least one layer",
        ));
    }
    let mut paths = Vec::with_capacity(layers.len() + 2);
    for path in layers
        .iter()
        .rev()
        .map(PathBuf::as_path)
        .chain([upper, work])
    {
        let s = path
            .to_str()
            .filter(|s| !s.contains([':', ',']))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unusable overlay path {path:?}"),
                )
            })?;
        paths.push(s);
    }
    let (dirs, rest) = paths.split_at(layers.len());
    let mut data = format!(
        "lowerdir={},upperdir={},workdir={}",
        dirs.join(":"),
        rest[0],
        rest[1]
    );
    if volatile {
        data.push_str(",volatile");
    }
    if data.len() > MAX_MOUNT_DATA {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "overlay mount data of {} layers is {} bytes, over a page",
                layers.len(),
                data.len()
            ),
        ));
    }
    Ok(data)
}

/// Unmounts `target`; `EBUSY` falls back to a lazy unmount, not mounted (`EINVAL`) and missing are fine.
pub fn unmount(target: &Path) -> io::Result<()> {
    match nix::mount::umount2(target, MntFlags::empty()) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(nix::Error::EBUSY) => nix::mount::umount2(target, MntFlags::MNT_DETACH)
            .map_err(|e| context(e.into(), "unmounting", target)),
        Err(e) => Err(context(e.into(), "unmounting", target)),
    }
}

fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lowerdir_lists_topmost_first() {
        let layers = ["/l/base", "/l/mid", "/l/top"].map(PathBuf::from);
        assert_eq!(
            mount_data(&layers, Path::new("/c/upper"), Path::new("/c/work"), true).unwrap(),
            "lowerdir=/l/top:/l/mid:/l/base,upperdir=/c/upper,workdir=/c/work,volatile"
        );
        assert_eq!(
            mount_data(&layers[..1], Path::new("/u"), Path::new("/w"), false).unwrap(),
            "lowerdir=/l/base,upperdir=/u,workdir=/w"
        );
    }

    /// Needs root (real overlay mounts), as the node agent does.
    #[test]
    fn a_mount_that_an_interrupted_attempt_left_is_made_anew() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer");
        std::fs::create_dir_all(&layer).unwrap();
        std::fs::write(layer.join("file"), "from the image").unwrap();
        let overlay = Overlay {
            layers: vec![layer],
            dir: dir.path().join("container"),
        };
        overlay.mount().unwrap();
        std::fs::write(overlay.target().join("written"), "by the first attempt").unwrap();
        // The agent died here: the overlay is still mounted, its (volatile) work directory marked.
        overlay.mount().unwrap();
        // And again after a lazy unmount that left the volatile mark behind.
        unmount(&overlay.target()).unwrap();
        overlay.mount().unwrap();
        assert!(overlay.target().join("file").exists());
        assert!(!overlay.target().join("written").exists());
        overlay.remove().unwrap();
    }

    #[test]
    fn refuses_what_overlay_cannot_express() {
        let up = Path::new("/u");
        assert!(mount_data(&[], up, up, false).is_err());
        assert!(mount_data(&[PathBuf::from("/a:b")], up, up, false).is_err());
        assert!(mount_data(&[PathBuf::from("/a,b")], up, up, false).is_err());
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/var/lib/gantry/layers/{i:064}")))
            .collect();
        assert!(
            mount_data(&many, up, up, false)
                .unwrap_err()
                .to_string()
                .contains("over a page")
        );
    }
}

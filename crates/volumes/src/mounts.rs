//! The mounts of pod volumes on the node: `tmpfs` for memory-backed `emptyDir` volumes, what is mounted under
//! a pod's directory (from `/proc/self/mountinfo`), and detaching all of it before the directory is removed.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// One line of `/proc/self/mountinfo`: where it is mounted and the filesystem type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    point: PathBuf,
    fs_type: String,
}

/// Mounts a tmpfs at `target` (made first with its parents), limited to `size_bytes` when given, its root with
/// permissions `mode`. Nothing happens when a tmpfs is already mounted there.
pub fn tmpfs(target: &Path, size_bytes: Option<u64>, mode: u32) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(target)?;
    let target = fs::canonicalize(target)?;
    if mount_table()?
        .iter()
        .any(|m| m.point == target && m.fs_type == "tmpfs")
    {
        return Ok(());
    }
    let mut options = format!("mode={:o}", mode & 0o7777);
    if let Some(size) = size_bytes {
        options.push_str(&format!(",size={size}"));
    }
    mount(
        Some("tmpfs"),
        &target,
        Some("tmpfs"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(io::Error::from)
}

/// Whether something is mounted exactly at `path` (symlinks resolved).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(path) = fs::canonicalize(path) else {
        return false;
    };
    mount_table().is_ok_and(|table| table.iter().any(|m| m.point == path))
}

/// The mount points at or under `dir`, deepest first; a point with mounts stacked on it is listed once per
/// mount, the topmost first. Empty when the mount table cannot be read.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let mut points: Vec<PathBuf> = mount_table()
        .unwrap_or_default()
        .into_iter()
        .rev()
        .map(|m| m.point)
        .filter(|p| p.starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points
}

/// Detaches (lazily) every mount at or under `dir`, deepest first, so that the directory can be removed even
/// while something still uses one of them.
pub fn unmount_all_under(dir: &Path) -> io::Result<()> {
    for point in mounts_under(dir) {
        match umount2(&point, MntFlags::MNT_DETACH) {
            // Already gone with a parent's detach, or by someone else.
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn mount_table() -> io::Result<Vec<Mount>> {
    Ok(parse_mountinfo(&fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

/// The mounts of a `mountinfo` text: the fifth field is the mount point, the first after ` - ` the type.
fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let point = fields.nth(4)?;
            let fs_type = fields.skip_while(|f| *f != "-").nth(1)?;
            Some(Mount {
                point: PathBuf::from(unescape(point)),
                fs_type: unescape(fs_type),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes of space, tab, newline and backslash (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0_u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_and_escapes() {
        let text = "36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n\
            37 36 0:44 / /var/pods/a\\134b rw shared:2 - tmpfs tmpfs rw,size=1024k\n\
            garbage\n";
        assert_eq!(
            parse_mountinfo(text),
            [
                Mount {
                    point: "/mnt/with space".into(),
                    fs_type: "ext3".into()
                },
                Mount {
                    point: "/var/pods/a\\b".into(),
                    fs_type: "tmpfs".into()
                },
            ]
        );
        assert_eq!(unescape("a\\011b\\012c\\9"), "a\tb\nc\\9");
    }

    #[test]
    fn tmpfs_mounts_are_found_and_detached_deepest_first() {
        let dir = tempfile::tempdir().unwrap();
        let outer = dir.path().join("pod volumes/outer");
        let inner = outer.join("inner");
        tmpfs(&outer, Some(1 << 20), 0o777).unwrap();
        tmpfs(&outer, Some(1 << 20), 0o777).unwrap();
        tmpfs(&inner, None, 0o700).unwrap();
        assert!(is_mount_point(&outer));
        assert!(is_mount_point(&inner));
        assert!(!is_mount_point(dir.path()));
        let outer_real = fs::canonicalize(&outer).unwrap();
        assert_eq!(
            mounts_under(dir.path()),
            [outer_real.join("inner"), outer_real.clone()]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&outer).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o777);
        let full = fs::write(outer.join("big"), vec![0_u8; 2 << 20]);
        assert!(full.is_err(), "the size limit holds");
        unmount_all_under(dir.path()).unwrap();
        assert!(mounts_under(dir.path()).is_empty());
        assert!(!is_mount_point(&outer));
        fs::remove_dir_all(dir.path().join("pod volumes")).unwrap();
    }
}

//! How much disk a volume uses, as the kubelet's `du`-like measure of `emptyDir` volumes: allocated blocks,
//! not apparent sizes.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Bytes allocated (`st_blocks × 512`) by `dir` and everything under it on the same filesystem; a file with
/// several hard links counts once, and files that vanish while the tree is walked (a container is writing)
/// are skipped. Only `dir` itself missing is an error.
pub fn disk_usage(dir: &Path) -> io::Result<u64> {
    let top = fs::symlink_metadata(dir)?;
    let device = top.dev();
    let mut linked: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0_u64;
    let mut pending: Vec<(PathBuf, fs::Metadata)> = vec![(dir.to_owned(), top)];
    while let Some((path, meta)) = pending.pop() {
        if meta.nlink() > 1 && !meta.is_dir() && !linked.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total = total.saturating_add(meta.blocks().saturating_mul(512));
        if !meta.is_dir() {
            continue;
        }
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let child = match entry {
                Ok(entry) => entry.path(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match fs::symlink_metadata(&child) {
                Ok(meta) if meta.dev() == device => pending.push((child, meta)),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(path: &Path) -> u64 {
        fs::symlink_metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn counts_blocks_and_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub/a"), vec![7_u8; 100_000]).unwrap();
        fs::hard_link(root.join("sub/a"), root.join("b")).unwrap();
        fs::write(root.join("small"), "x").unwrap();
        std::os::unix::fs::symlink("sub/a", root.join("link")).unwrap();
        let expected = [
            root,
            &root.join("sub"),
            &root.join("sub/a"),
            &root.join("small"),
            &root.join("link"),
        ]
        .iter()
        .map(|p| blocks(p))
        .sum::<u64>();
        assert!(blocks(&root.join("sub/a")) >= 100_000);
        assert_eq!(disk_usage(root).unwrap(), expected);
        assert!(disk_usage(&root.join("absent")).is_err());
    }

    #[test]
    fn does_not_cross_into_other_filesystems() {
        let dir = tempfile::tempdir().unwrap();
        let mounted = dir.path().join("mnt");
        crate::mounts::tmpfs(&mounted, Some(16 << 20), 0o755).unwrap();
        fs::write(mounted.join("big"), vec![1_u8; 1 << 20]).unwrap();
        let usage = disk_usage(dir.path());
        crate::mounts::unmount_all_under(dir.path()).unwrap();
        let usage = usage.unwrap();
        assert_eq!(usage, blocks(dir.path()));
    }
}

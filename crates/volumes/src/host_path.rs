//! The `type` check of `hostPath` volumes, as the kubelet makes it before mounting: what must already be at
//! the path, or what to create there.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Checks (or creates) `path` for the hostPath `kind`: `""` (no check), `DirectoryOrCreate` (made with its
/// parents, 0755), `Directory`, `FileOrCreate` (an empty 0644 file; its directory must exist), `File`,
/// `Socket`, `CharDevice`, `BlockDevice`. Symlinks are followed, as the kubelet's `stat` does.
pub fn check(path: &Path, kind: &str) -> Result<(), String> {
    let shown = path.display();
    let file_type = fs::metadata(path).ok().map(|m| m.file_type());
    let (fits, what) = match kind {
        "" => return Ok(()),
        "DirectoryOrCreate" if file_type.is_none() => return make_dir(path),
        "FileOrCreate" if file_type.is_none() => return make_file(path),
        "Directory" | "DirectoryOrCreate" => (file_type.is_some_and(|t| t.is_dir()), "a directory"),
        "File" | "FileOrCreate" => (file_type.is_some_and(|t| t.is_file()), "a file"),
        "Socket" => (file_type.is_some_and(|t| t.is_socket()), "a socket file"),
        "CharDevice" => (
            file_type.is_some_and(|t| t.is_char_device()),
            "a character device",
        ),
        "BlockDevice" => (
            file_type.is_some_and(|t| t.is_block_device()),
            "a block device",
        ),
        other => return Err(format!("{other} is an invalid volume type")),
    };
    if fits {
        Ok(())
    } else {
        Err(format!("hostPath type check failed: {shown} is not {what}"))
    }
}

fn make_dir(path: &Path) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| go_error("mkdir", path, &e))
}

fn make_file(path: &Path) -> Result<(), String> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
    {
        Ok(_) => fs::set_permissions(path, fs::Permissions::from_mode(0o644))
            .map_err(|e| go_error("chmod", path, &e)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(go_error("open", path, &e)),
    }
}

/// An error as Go's `*os.PathError` prints it: `open /x/y: no such file or directory`.
fn go_error(op: &str, path: &Path, error: &io::Error) -> String {
    let reason = match error.raw_os_error() {
        Some(code) => {
            let desc = nix::errno::Errno::from_raw(code).desc();
            let mut chars = desc.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_lowercase().chain(chars).collect()
            })
        }
        None => error.to_string(),
    };
    format!("{op} {}: {reason}", path.display())
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn existing_paths_are_checked_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        let socket = dir.path().join("s.sock");
        let _listener = UnixListener::bind(&socket).unwrap();
        assert_eq!(check(dir.path(), "Directory"), Ok(()));
        assert_eq!(check(&file, "File"), Ok(()));
        assert_eq!(check(&socket, "Socket"), Ok(()));
        assert_eq!(check(Path::new("/dev/null"), "CharDevice"), Ok(()));
        assert_eq!(check(&dir.path().join("nothing"), ""), Ok(()));
        let shown = file.display();
        assert_eq!(
            check(&file, "Directory").unwrap_err(),
            format!("hostPath type check failed: {shown} is not a directory")
        );
        assert_eq!(
            check(&file, "Socket").unwrap_err(),
            format!("hostPath type check failed: {shown} is not a socket file")
        );
        assert_eq!(
            check(&file, "CharDevice").unwrap_err(),
            format!("hostPath type check failed: {shown} is not a character device")
        );
        assert_eq!(
            check(&file, "BlockDevice").unwrap_err(),
            format!("hostPath type check failed: {shown} is not a block device")
        );
        assert_eq!(
            check(dir.path(), "FileOrCreate").unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a file",
                dir.path().display()
            )
        );
        assert_eq!(
            check(&file, "Weird").unwrap_err(),
            "Weird is an invalid volume type"
        );
    }

    #[test]
    fn or_create_kinds_create_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        assert_eq!(check(&deep, "DirectoryOrCreate"), Ok(()));
        let mode = fs::metadata(&deep).unwrap().permissions().mode() & 0o7777;
        assert!(fs::metadata(&deep).unwrap().is_dir());
        assert_eq!(mode & 0o700, 0o700);
        let file = dir.path().join("a/new");
        assert_eq!(check(&file, "FileOrCreate"), Ok(()));
        let meta = fs::metadata(&file).unwrap();
        assert!(meta.is_file() && meta.len() == 0);
        assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
        let orphan = dir.path().join("missing/file");
        assert_eq!(
            check(&orphan, "FileOrCreate").unwrap_err(),
            format!("open {}: no such file or directory", orphan.display())
        );
        assert_eq!(
            check(&dir.path().join("absent"), "Directory").unwrap_err(),
            format!(
                "hostPath type check failed: {}/absent is not a directory",
                dir.path().display()
            )
        );
    }
}

//! The kubelet's atomic writer (`pkg/volume/util/atomic_writer.go`): a volume's files live in a hidden
//! timestamped directory (`..2026_11_29_12_00_00.123456789`) that the `..data` symlink points to; the
//! user-visible top-level entries are symlinks through `..data`. A new payload is written to a new timestamped
//! directory and `..data` is swapped to it with one `rename`, so a reader sees the old files or the new ones,
//! never a mix or a half-written file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::payload::{File, Payload};

/// The symlink to the current timestamped directory.
const DATA: &str = "..data";
/// Where the next `..data` is made before it is renamed over the current one.
const DATA_TMP: &str = "..data_tmp";
const MAX_PATH: usize = 4096;
const MAX_NAME: usize = 255;

/// Projects `payload` into `dir` (which must exist). Returns `false` without touching anything when `dir`
/// already holds exactly this payload (paths, content and modes).
pub fn write(dir: &Path, payload: &Payload) -> io::Result<bool> {
    let mut cleaned: BTreeMap<String, &File> = BTreeMap::new();
    for (path, file) in payload {
        validate(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        cleaned.insert(clean(path), file);
    }
    let old = fs::read_link(dir.join(DATA)).ok();
    let old_dir = old.as_ref().map(|name| dir.join(name));
    let visible: BTreeSet<&str> = cleaned.keys().map(|p| top_level(p)).collect();
    if let Some(old_dir) = &old_dir
        && unchanged(old_dir, &cleaned)?
        && visible.iter().all(|name| is_symlink(&dir.join(name)))
    {
        return Ok(false);
    }
    let new_name = new_timestamped_dir(dir)?;
    let new_dir = dir.join(&new_name);
    for (path, file) in &cleaned {
        let target = new_dir.join(path);
        if let Some(parent) = target.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)?;
        }
        fs::write(&target, &file.data)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(file.mode & 0o7777))?;
    }
    let tmp = dir.join(DATA_TMP);
    remove_if_present(&tmp)?;
    symlink(&new_name, &tmp)?;
    fs::rename(&tmp, dir.join(DATA))?;
    for name in &visible {
        let link = dir.join(name);
        if !is_symlink(&link) {
            symlink(Path::new(DATA).join(name), &link)?;
        }
    }
    for stale in old_visible(old_dir.as_deref())? {
        if !visible.contains(stale.as_str()) {
            remove_if_present(&dir.join(&stale))?;
        }
    }
    if let Some(old_dir) = old_dir
        && old_dir != new_dir
    {
        match fs::remove_dir_all(&old_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(true)
}

/// The kubelet's path rules for payload keys.
fn validate(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err(format!("invalid path: must not be empty: {path:?}"));
    }
    if path.starts_with('/') {
        return Err(format!("invalid path: must be relative path: {path}"));
    }
    if path.len() > MAX_PATH {
        return Err(format!(
            "invalid path: must be less than or equal to {MAX_PATH} characters"
        ));
    }
    let items: Vec<&str> = path.split('/').collect();
    for item in &items {
        if *item == ".." {
            return Err(format!("invalid path: must not contain '..': {path}"));
        }
        if item.len() > MAX_NAME {
            return Err(format!(
                "invalid path: filenames must be less than or equal to {MAX_NAME} characters"
            ));
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return Err(format!("invalid path: must not start with '..': {path}"));
    }
    if clean(path).is_empty() {
        return Err(format!("invalid path: must not be empty: {path:?}"));
    }
    Ok(())
}

/// Without empty and `.` components.
fn clean(path: &str) -> String {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn top_level(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether the timestamped directory `old` holds exactly `payload`.
fn unchanged(old: &Path, payload: &BTreeMap<String, &File>) -> io::Result<bool> {
    let mut present = Vec::new();
    match files_under(old, Path::new(""), &mut present) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        other => other?,
    }
    if present.len() != payload.len() {
        return Ok(false);
    }
    for relative in present {
        let Some(file) = relative.to_str().and_then(|r| payload.get(r)) else {
            return Ok(false);
        };
        let path = old.join(&relative);
        let mode = fs::symlink_metadata(&path)?.permissions().mode() & 0o7777;
        if mode != file.mode & 0o7777 || fs::read(&path)? != file.data {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The relative paths of the regular files under `root/relative`.
fn files_under(root: &Path, relative: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(root.join(relative))? {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            files_under(root, &path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The top-level names the previous payload made visible.
fn old_visible(old_dir: Option<&Path>) -> io::Result<Vec<String>> {
    let Some(old_dir) = old_dir else {
        return Ok(Vec::new());
    };
    let entries = match fs::read_dir(old_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    entries
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect()
}

/// Makes `..<UTC time>.<nanoseconds>` (mode 0755) in `dir` and returns its name.
fn new_timestamped_dir(dir: &Path) -> io::Result<String> {
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(io::Error::other)?;
        let name = format!("..{}.{:09}", utc_stamp(now.as_secs()), now.subsec_nanos());
        match fs::DirBuilder::new().mode(0o755).create(dir.join(&name)) {
            Ok(()) => {
                fs::set_permissions(dir.join(&name), fs::Permissions::from_mode(0o755))?;
                return Ok(name);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `2006_01_02_15_04_05` for seconds since the epoch (UTC), by the civil-from-days algorithm.
fn utc_stamp(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let of_day = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}_{month:02}_{day:02}_{:02}_{:02}_{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn payload(entries: &[(&str, &str, u32)]) -> Payload {
        entries
            .iter()
            .map(|(path, data, mode)| {
                let file = File {
                    data: data.as_bytes().to_vec(),
                    mode: *mode,
                };
                ((*path).to_owned(), file)
            })
            .collect()
    }

    fn timestamped(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA)
            .collect()
    }

    #[test]
    fn layout_is_the_kubelets() {
        let dir = tempfile::tempdir().unwrap();
        let first = payload(&[("a", "1", 0o644), ("sub/b", "2", 0o600)]);
        assert!(write(dir.path(), &first).unwrap());
        let data = fs::read_link(dir.path().join(DATA)).unwrap();
        let name = data.to_str().unwrap();
        assert!(name.starts_with(".."), "{name}");
        assert_eq!(
            name.len(),
            "..2026_11_29_12_00_00.123456789".len(),
            "{name}"
        );
        assert_eq!(
            fs::read_link(dir.path().join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(
            fs::read_link(dir.path().join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        assert_eq!(fs::read_to_string(dir.path().join("sub/b")).unwrap(), "2");
        let mode = fs::metadata(dir.path().join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(timestamped(dir.path()), [name.to_owned()]);
    }

    #[test]
    fn an_equal_payload_touches_nothing_and_changes_replace_everything() {
        let dir = tempfile::tempdir().unwrap();
        let first = payload(&[("a", "1", 0o644), ("sub/b", "2", 0o644)]);
        assert!(write(dir.path(), &first).unwrap());
        let before = fs::read_link(dir.path().join(DATA)).unwrap();
        assert!(!write(dir.path(), &first).unwrap());
        assert_eq!(fs::read_link(dir.path().join(DATA)).unwrap(), before);
        let mode_only = payload(&[("a", "1", 0o600), ("sub/b", "2", 0o644)]);
        assert!(write(dir.path(), &mode_only).unwrap());
        let second = payload(&[("a", "one", 0o644), ("c", "3", 0o644)]);
        assert!(write(dir.path(), &second).unwrap());
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "one");
        assert!(fs::symlink_metadata(dir.path().join("sub")).is_err());
        assert_eq!(timestamped(dir.path()).len(), 1);
        assert!(fs::symlink_metadata(dir.path().join(DATA_TMP)).is_err());
        assert!(write(dir.path(), &Payload::new()).unwrap());
        assert!(fs::symlink_metadata(dir.path().join("a")).is_err());
    }

    #[test]
    fn bad_paths_are_refused_with_the_kubelets_words() {
        let dir = tempfile::tempdir().unwrap();
        for (path, message) in [
            ("/abs", "invalid path: must be relative path: /abs"),
            ("a/../b", "invalid path: must not contain '..': a/../b"),
            ("..data", "invalid path: must not start with '..': ..data"),
            ("", "invalid path: must not be empty: \"\""),
        ] {
            let err = write(dir.path(), &payload(&[(path, "x", 0o644)])).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
        assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    #[test]
    fn readers_never_see_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let big = |c: char| c.to_string().repeat(256 * 1024);
        let versions = [big('x'), big('y')];
        write(dir.path(), &payload(&[("key", &versions[0], 0o644)])).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (done, path, versions) = (done.clone(), dir.path().join("key"), versions.clone());
            std::thread::spawn(move || {
                let mut good = 0;
                while !done.load(Ordering::Relaxed) {
                    match fs::read_to_string(&path) {
                        Ok(text) => {
                            assert!(
                                versions.contains(&text),
                                "partial read of {} bytes",
                                text.len()
                            );
                            good += 1;
                        }
                        // The old directory may go between resolving `..data` and opening the file.
                        Err(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
                    }
                }
                good
            })
        };
        for round in 1..=200 {
            let extra = round.to_string();
            let next = payload(&[("key", &versions[round % 2], 0o644), ("n", &extra, 0o644)]);
            assert!(write(dir.path(), &next).unwrap());
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        assert_eq!(timestamped(dir.path()).len(), 1);
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "1970_01_01_00_00_00");
        assert_eq!(utc_stamp(1_795_953_600), "2026_11_29_12_00_00");
        assert_eq!(utc_stamp(951_782_400), "2000_02_29_00_00_00");
    }
}

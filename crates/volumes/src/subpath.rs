//! `subPath` and `subPathExpr` of volume mounts: the `$(VAR)` expansion of the expression and the directory
//! inside the volume that the container gets, created when missing and refused when it leads outside.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::downward::go_quote;

/// Kubernetes' `$(VAR)` expansion with `lookup`: `$$` is a literal `$`, a reference `lookup` does not know
/// stays as written, an unclosed `$(` is kept.
pub fn expand_with<'v>(input: &str, mut lookup: impl FnMut(&str) -> Option<&'v str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A `subPathExpr` expanded with the container's environment (the last entry of a name wins); unknown
/// references are kept as written.
pub fn expand(expr: &str, env: &[(String, String)]) -> String {
    expand_with(expr, |name| lookup(env, name))
}

/// A `subPathExpr` expanded as the kubelet expands it for a mount: a reference to a variable that is not set
/// or is empty is an error (`missing value for A, B`).
pub fn expand_for_mount(expr: &str, env: &[(String, String)]) -> Result<String, String> {
    let mut missing: Vec<String> = Vec::new();
    let expanded = expand_with(expr, |name| match lookup(env, name) {
        Some(value) if !value.is_empty() => Some(value),
        _ => {
            missing.push(name.to_owned());
            Some("")
        }
    });
    if missing.is_empty() {
        return Ok(expanded);
    }
    missing.sort();
    missing.dedup();
    Err(format!("missing value for {}", missing.join(", ")))
}

fn lookup<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The host path of `sub_path` inside `volume_root`, symlinks resolved: refuses absolute paths and `..`,
/// creates missing directories with the volume root's permissions (as the kubelet does, so that a
/// group-writable volume stays so), and refuses a path that resolves outside the volume.
pub fn prepare(volume_root: &Path, sub_path: &str) -> Result<PathBuf, String> {
    let relative = Path::new(sub_path);
    if relative.is_absolute() {
        return Err(format!(
            "error SubPath `{sub_path}` must not be an absolute path"
        ));
    }
    if relative.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "unable to provision SubPath `{sub_path}`: must not contain '..'"
        ));
    }
    let root = fs::canonicalize(volume_root)
        .map_err(|e| format!("error resolving symlinks in {:?}: {e}", volume_root))?;
    let mode = fs::metadata(&root)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode()
        & 0o7777;
    let outside = |path: &Path| {
        format!(
            "subpath {} not within volume path {}",
            go_quote(&path.to_string_lossy()),
            go_quote(&root.to_string_lossy())
        )
    };
    let mut current = root.clone();
    for component in relative.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        let next = current.join(name);
        match fs::canonicalize(&next) {
            Ok(resolved) => {
                if !resolved.starts_with(&root) {
                    return Err(outside(&resolved));
                }
                current = resolved;
            }
            Err(_) if fs::symlink_metadata(&next).is_ok() => {
                // A dangling symlink: creating through it could land anywhere.
                return Err(format!(
                    "error creating directory {}: it is a dangling symlink",
                    next.display()
                ));
            }
            Err(_) => {
                fs::DirBuilder::new()
                    .mode(mode)
                    .create(&next)
                    .and_then(|()| fs::set_permissions(&next, fs::Permissions::from_mode(mode)))
                    .map_err(|e| format!("error creating directory {}: {e}", next.display()))?;
                current = next;
            }
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![
            ("POD".into(), "web-1".into()),
            ("NS".into(), "old".into()),
            ("NS".into(), "prod".into()),
            ("EMPTY".into(), String::new()),
        ]
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        assert_eq!(expand("$(NS)/$(POD)", &env()), "prod/web-1");
        assert_eq!(
            expand("$$(POD)-$(NOPE)-$(POD", &env()),
            "$(POD)-$(NOPE)-$(POD"
        );
        assert_eq!(expand("a$b$", &env()), "a$b$");
        assert_eq!(
            expand_for_mount("logs/$(POD)", &env()),
            Ok("logs/web-1".into())
        );
        assert_eq!(
            expand_for_mount("$(NOPE)/$(EMPTY)/$(NOPE)", &env()),
            Err("missing value for EMPTY, NOPE".into())
        );
    }

    #[test]
    fn sub_paths_are_created_inside_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("vol");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        let made = prepare(&root, "a/./b/").unwrap();
        assert_eq!(made, fs::canonicalize(&root).unwrap().join("a/b"));
        let mode = fs::metadata(&made).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o777);
        assert_eq!(prepare(&root, "a/b").unwrap(), made);
        symlink("a", root.join("inner")).unwrap();
        assert_eq!(prepare(&root, "inner/b").unwrap(), made);
    }

    #[test]
    fn escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("vol");
        fs::create_dir(&root).unwrap();
        assert_eq!(
            prepare(&root, "/etc").unwrap_err(),
            "error SubPath `/etc` must not be an absolute path"
        );
        assert_eq!(
            prepare(&root, "a/../../b").unwrap_err(),
            "unable to provision SubPath `a/../../b`: must not contain '..'"
        );
        symlink(dir.path(), root.join("up")).unwrap();
        let real = fs::canonicalize(dir.path()).unwrap();
        assert_eq!(
            prepare(&root, "up/x").unwrap_err(),
            format!(
                "subpath {:?} not within volume path {:?}",
                real.display().to_string(),
                real.join("vol").display().to_string()
            )
        );
        assert!(!dir.path().join("x").exists());
    }
}

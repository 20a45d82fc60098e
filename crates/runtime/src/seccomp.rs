//! The RuntimeDefault seccomp profile: an allowlist shipped as JSON (`seccomp/default.json`), turned into the
//! OCI form for one container by keeping the rules its capabilities allow (as containerd does with Docker's
//! profile: a container with `CAP_SYS_ADMIN` may `mount`, one without may not even `clone` new namespaces).

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::runtime::LinuxSeccomp;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::spec::SpecError;

/// The profile as shipped.
pub const DEFAULT_PROFILE: &str = include_str!("seccomp/default.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    default_errno_ret: Option<u32>,
    arch_map: BTreeMap<String, Vec<String>>,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    names: Vec<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Value>,
    /// Applies only when the container holds every one of these.
    #[serde(default)]
    caps: Vec<String>,
    /// Applies only when the container holds none of these.
    #[serde(default)]
    not_caps: Vec<String>,
}

/// The OCI seccomp section for a container holding `caps` (full `CAP_*` names), on `arch`
/// (`std::env::consts::ARCH` names; others get no architecture list, i.e. the native one only).
pub fn runtime_default(caps: &BTreeSet<String>, arch: &str) -> Result<LinuxSeccomp, SpecError> {
    let profile: Profile =
        serde_json::from_str(DEFAULT_PROFILE).map_err(|e| SpecError::Seccomp(e.to_string()))?;
    let syscalls: Vec<Value> = profile
        .rules
        .iter()
        .filter(|r| {
            r.caps.iter().all(|c| caps.contains(c)) && !r.not_caps.iter().any(|c| caps.contains(c))
        })
        .map(|r| {
            let mut rule = json!({"names": r.names, "action": r.action});
            if let Some(errno) = r.errno_ret {
                rule["errnoRet"] = json!(errno);
            }
            if !r.args.is_empty() {
                rule["args"] = json!(r.args);
            }
            rule
        })
        .collect();
    let mut out = json!({"defaultAction": profile.default_action, "syscalls": syscalls});
    if let Some(errno) = profile.default_errno_ret {
        out["defaultErrnoRet"] = json!(errno);
    }
    if let Some(arches) = profile.arch_map.get(arch) {
        out["architectures"] = json!(arches);
    }
    serde_json::from_value(out).map_err(|e| SpecError::Seccomp(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::spec::DEFAULT_CAPABILITIES;

    fn allowed(profile: &LinuxSeccomp, name: &str) -> Vec<String> {
        let value = serde_json::to_value(profile).unwrap();
        value["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
            .map(|r| r["action"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn capabilities_select_rules() {
        let default: BTreeSet<String> =
            DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        let p = runtime_default(&default, "x86_64").unwrap();
        assert_eq!(allowed(&p, "read"), ["SCMP_ACT_ALLOW"]);
        assert!(allowed(&p, "mount").is_empty());
        assert_eq!(allowed(&p, "clone3"), ["SCMP_ACT_ERRNO"]);
        assert_eq!(allowed(&p, "chroot"), ["SCMP_ACT_ALLOW"]);
        assert_eq!(p.architectures().as_ref().unwrap().len(), 3);

        let mut admin = default.clone();
        admin.insert("CAP_SYS_ADMIN".into());
        let p = runtime_default(&admin, "aarch64").unwrap();
        assert_eq!(allowed(&p, "mount"), ["SCMP_ACT_ALLOW"]);
        assert_eq!(allowed(&p, "clone"), ["SCMP_ACT_ALLOW"]);
        assert_eq!(allowed(&p, "clone3"), ["SCMP_ACT_ALLOW"]);
        assert_eq!(p.architectures().as_ref().unwrap().len(), 2);
    }
}

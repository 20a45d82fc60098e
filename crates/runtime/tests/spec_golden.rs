//! Golden tests of the OCI spec generation: `tests/golden/<name>.json` holds the expected `config.json`
//! (capabilities sorted, keys sorted). `UPDATE_GOLDEN=1 cargo test -p gantry-runtime --test spec_golden`
//! rewrites them; review the diff.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use gantry_runtime::spec::{
    BindMount, CapabilityChanges, ContainerConfig, Namespace, Namespaces, Propagation, Resources,
    SeccompPolicy, UserIds, generate_for_arch,
};
use serde_json::Value;

/// Sorts object keys and the capability sets (oci-spec keeps those in hash sets).
fn canonical(value: Value, key: &str) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<String, Value> = map
                .into_iter()
                .map(|(k, v)| {
                    let v = canonical(v, &k);
                    (k, v)
                })
                .collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.into_iter().map(|v| canonical(v, "")).collect();
            if [
                "bounding",
                "effective",
                "permitted",
                "inheritable",
                "ambient",
            ]
            .contains(&key)
            {
                items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
            Value::Array(items)
        }
        other => other,
    }
}

fn check(name: &str, config: &ContainerConfig) {
    let spec = generate_for_arch(config, "x86_64").unwrap();
    let actual = canonical(serde_json::to_value(&spec).unwrap(), "");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        actual == expected,
        "{name}: generated spec differs from {}:\n{}",
        path.display(),
        serde_json::to_string_pretty(&actual).unwrap()
    );
}

/// A pod's app container: joins the pause's namespaces, limits, a volume, a read-only root.
fn pod_container() -> ContainerConfig {
    ContainerConfig {
        args: vec!["/bin/httpd".into(), "-f".into()],
        env: vec!["HOME=/root".into()],
        cwd: "/srv".into(),
        user: UserIds {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![10, 20],
        },
        rootfs: "/run/gantry/containers/c1/rootfs".into(),
        readonly_rootfs: true,
        hostname: Some("ignored-when-joining".into()),
        namespaces: Namespaces {
            network: Namespace::Join("/run/gantry/pods/p1/netns".into()),
            ipc: Namespace::Join("/proc/100/ns/ipc".into()),
            uts: Namespace::Join("/proc/100/ns/uts".into()),
            pid: Namespace::New,
        },
        cgroups_path: "/gantry/podp1/c1".into(),
        resources: Resources {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory_limit: Some(64 << 20),
            pids_limit: Some(100),
        },
        capabilities: CapabilityChanges {
            add: vec!["NET_ADMIN".into()],
            drop: vec!["MKNOD".into()],
        },
        privileged: false,
        no_new_privileges: true,
        oom_score_adj: Some(-997),
        nofile_limit: Some(65_536),
        mounts: vec![
            BindMount {
                source: "/var/lib/gantry/pods/p1/volumes/data".into(),
                destination: "/data".into(),
                readonly: false,
                propagation: Propagation::HostToContainer,
            },
            BindMount {
                source: "/var/lib/gantry/pods/p1/etc-hosts".into(),
                destination: "/etc/hosts".into(),
                readonly: true,
                propagation: Propagation::Private,
            },
        ],
        seccomp: SeccompPolicy::Unconfined,
        sysctls: [(
            "net.ipv4.ip_unprivileged_port_start".to_string(),
            "0".to_string(),
        )]
        .into(),
    }
}

#[test]
fn pod_container_spec() {
    check("pod_container", &pod_container());
}

#[test]
fn standalone_container_spec() {
    // Its own namespaces, so it gets the hostname; nothing else set.
    let config = ContainerConfig {
        args: vec!["sh".into()],
        rootfs: "/c/rootfs".into(),
        hostname: Some("solo".into()),
        cgroups_path: "/gantry/solo".into(),
        ..Default::default()
    };
    check("standalone", &config);
}

#[test]
fn privileged_container_spec() {
    let config = ContainerConfig {
        privileged: true,
        seccomp: SeccompPolicy::RuntimeDefault,
        mounts: vec![BindMount {
            source: "/var/lib/kubelet".into(),
            destination: "/var/lib/kubelet".into(),
            readonly: false,
            propagation: Propagation::Bidirectional,
        }],
        ..pod_container()
    };
    check("privileged", &config);
}

#[test]
fn runtime_default_seccomp() {
    let config = ContainerConfig {
        seccomp: SeccompPolicy::RuntimeDefault,
        ..pod_container()
    };
    let spec = serde_json::to_value(generate_for_arch(&config, "x86_64").unwrap()).unwrap();
    let seccomp = &spec["linux"]["seccomp"];
    assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(seccomp["architectures"][0], "SCMP_ARCH_X86_64");
    let names = |action: &str| -> Vec<String> {
        seccomp["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == action)
            .flat_map(|r| {
                r["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
            })
            .collect()
    };
    let allowed = names("SCMP_ACT_ALLOW");
    for call in ["read", "write", "execve", "clone", "chroot", "socket"] {
        assert!(
            allowed.iter().any(|n| n == call),
            "{call} should be allowed"
        );
    }
    for call in [
        "mount",
        "unshare",
        "setns",
        "reboot",
        "init_module",
        "bpf",
        "kexec_load",
        "ptrace_attach",
    ] {
        assert!(
            !allowed.iter().any(|n| n == call),
            "{call} should be denied"
        );
    }
    assert_eq!(names("SCMP_ACT_ERRNO"), ["clone3"]);
}

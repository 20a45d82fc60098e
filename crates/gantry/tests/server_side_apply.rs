//! End to end: server-side apply with real kubectl 1.27, 1.30 and 1.33 — apply twice with a change, a conflict
//! between two field managers and its `--force-conflicts` resolution, managedFields kept by every write, diff
//! and `--dry-run=server`, and the move from client-side apply.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::Value;
use support::{Server, kubectl, ok, write};

const KUBECTL_VERSIONS: &[&str] = &["1.27", "1.30", "1.33"];

fn deployment(ns: &str, replicas: u32, env: &[(&str, &str)]) -> String {
    let env: String = env
        .iter()
        .map(|(name, value)| format!("        - name: {name}\n          value: \"{value}\"\n"))
        .collect();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\n  labels: {{app: web}}\n\
         spec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      \
         labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n        env:\n{env}"
    )
}

fn get(version: &str, server: &Server, ns: &str, what: &str) -> Value {
    serde_json::from_str(&ok(
        version,
        server,
        &["get", what, "-n", ns, "-o", "json", "--show-managed-fields"],
    ))
    .unwrap()
}

fn managers(object: &Value) -> Vec<(String, String)> {
    object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap().to_string(),
                m["operation"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn kubectl_applies_server_side_with_ownership_and_conflicts() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let ns = format!("ssa-{}", version.replace('.', "-"));
        ok(version, &server, &["create", "namespace", &ns]);
        let dir = server.dir.path();
        let first = write(
            dir,
            &format!("{ns}-1.yaml"),
            &deployment(&ns, 2, &[("A", "1"), ("B", "2")]),
        );
        let second = write(
            dir,
            &format!("{ns}-2.yaml"),
            &deployment(&ns, 3, &[("A", "1")]),
        );
        let apply = |file: &std::path::Path, extra: &[&str]| {
            let mut args = vec!["apply", "--server-side", "-f", file.to_str().unwrap()];
            args.extend_from_slice(extra);
            kubectl(version, &server, &args)
        };

        let out = apply(&first, &[]);
        assert!(out.status.success(), "{version}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "deployment.apps/web serverside-applied\n"
        );
        // The second apply changes replicas and drops env B, which only this manager had set.
        let out = apply(&second, &[]);
        assert!(out.status.success(), "{version}: {out:?}");
        let web = get(version, &server, &ns, "deployment/web");
        assert_eq!(web["spec"]["replicas"], 3);
        assert_eq!(
            web["spec"]["template"]["spec"]["containers"][0]["env"],
            serde_json::json!([{"name": "A", "value": "1"}])
        );
        assert_eq!(
            managers(&web),
            [("kubectl".to_string(), "Apply".to_string())]
        );
        let fields = web["metadata"]["managedFields"][0]["fieldsV1"].to_string();
        assert!(fields.contains(r#""k:{\"name\":\"web\"}""#), "{fields}");

        // Another writer takes spec.replicas; the next apply conflicts with it, --force-conflicts takes it back.
        ok(
            version,
            &server,
            &["scale", "deployment", "web", "-n", &ns, "--replicas=5"],
        );
        let scaled = get(version, &server, &ns, "deployment/web");
        assert_eq!(managers(&scaled).len(), 2, "{:?}", managers(&scaled));
        let out = apply(&second, &[]);
        assert!(
            !out.status.success(),
            "{version}: the conflicting apply succeeded"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Apply failed with 1 conflict: conflict with")
                && stderr.contains(".spec.replicas"),
            "{version}: {stderr}"
        );
        assert_eq!(
            get(version, &server, &ns, "deployment/web")["spec"]["replicas"],
            5
        );
        let out = apply(&second, &["--force-conflicts"]);
        assert!(out.status.success(), "{version}: {out:?}");
        let forced = get(version, &server, &ns, "deployment/web");
        assert_eq!(forced["spec"]["replicas"], 3);
        assert_eq!(
            managers(&forced),
            [("kubectl".to_string(), "Apply".to_string())]
        );

        // Server-side dry run and diff see the change and store nothing.
        let third = write(
            dir,
            &format!("{ns}-3.yaml"),
            &deployment(&ns, 4, &[("A", "1")]),
        );
        let out = apply(&third, &["--dry-run=server"]);
        assert!(out.status.success(), "{version}: {out:?}");
        assert_eq!(
            get(version, &server, &ns, "deployment/web")["spec"]["replicas"],
            3
        );
        let diff = kubectl(
            version,
            &server,
            &["diff", "--server-side", "-f", third.to_str().unwrap()],
        );
        assert_eq!(diff.status.code(), Some(1), "{version}: {diff:?}");
        assert!(
            String::from_utf8_lossy(&diff.stdout).contains("+  replicas: 4"),
            "{diff:?}"
        );
    }
}

#[test]
fn client_side_applied_objects_move_to_server_side_apply() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let ns = format!("csa-{}", version.replace('.', "-"));
        ok(version, &server, &["create", "namespace", &ns]);
        let file = write(
            server.dir.path(),
            &format!("{ns}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\ndata:\n  color: blue\n  size: large\n"
            ),
        );
        ok(version, &server, &["apply", "-f", file.to_str().unwrap()]);
        let created = get(version, &server, &ns, "configmap/settings");
        assert_eq!(
            managers(&created),
            [(
                "kubectl-client-side-apply".to_string(),
                "Update".to_string()
            )],
            "{version}"
        );
        // The same file applied server-side takes the fields over without conflicts.
        let out = kubectl(
            version,
            &server,
            &["apply", "--server-side", "-f", file.to_str().unwrap()],
        );
        assert!(out.status.success(), "{version}: {out:?}");
        let moved = get(version, &server, &ns, "configmap/settings");
        assert!(
            managers(&moved).contains(&("kubectl".to_string(), "Apply".to_string())),
            "{version}: {:?}",
            managers(&moved)
        );
        // And a later server-side apply without `size` removes it.
        let smaller = write(
            server.dir.path(),
            &format!("{ns}-smaller.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\ndata:\n  color: red\n"
            ),
        );
        let out = kubectl(
            version,
            &server,
            &["apply", "--server-side", "-f", smaller.to_str().unwrap()],
        );
        assert!(out.status.success(), "{version}: {out:?}");
        assert_eq!(
            get(version, &server, &ns, "configmap/settings")["data"],
            serde_json::json!({"color": "red"}),
            "{version}"
        );
    }
}

/// `apply --prune --applyset`: kubectl records the set on a parent Secret (with server-side apply) and deletes
/// what left the file; client-side and server-side both.
#[test]
fn apply_prune_with_an_applyset() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let ns = format!("set-{}", version.replace('.', "-"));
        ok(version, &server, &["create", "namespace", &ns]);
        let cm = |name: &str| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  x: \"1\"\n"
            )
        };
        let both = write(
            server.dir.path(),
            &format!("{ns}-both.yaml"),
            &format!("{}---\n{}", cm("a"), cm("b")),
        );
        let one = write(server.dir.path(), &format!("{ns}-one.yaml"), &cm("a"));
        for (set, mode) in [("client", None), ("server", Some("--server-side"))] {
            let run = |file: &std::path::Path| {
                let mut args = vec![
                    "apply",
                    "-n",
                    &ns,
                    "--prune",
                    "--applyset",
                    set,
                    "-f",
                    file.to_str().unwrap(),
                ];
                args.extend(mode);
                let binary = support::kubectl_dir().join(format!("kubectl.{version}"));
                std::process::Command::new(binary)
                    .env("KUBECTL_APPLYSET", "true")
                    .arg("--kubeconfig")
                    .arg(server.kubeconfig())
                    .args(&args)
                    .output()
                    .unwrap()
            };
            let out = run(&both);
            assert!(out.status.success(), "{version} {set}: {out:?}");
            let out = run(&one);
            assert!(out.status.success(), "{version} {set}: {out:?}");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("configmap/b pruned"),
                "{version} {set}: {out:?}"
            );
            let names = ok(version, &server, &["get", "cm", "-n", &ns, "-o", "name"]);
            assert!(
                names.contains("configmap/a\n") && !names.contains("configmap/b\n"),
                "{version} {set}: {names}"
            );
            ok(version, &server, &["delete", "cm", "a", "-n", &ns]);
        }
    }
}

//! End to end, as the issue's "done when" list reads and as a new user would go on: a real `gantry server`
//! driven by the real kubectl 1.27, 1.30 and 1.33 binaries, each called directly, one namespace per version.
//!
//! The floor: apply of a multi-document file (Namespace, Deployment, Service, ConfigMap, Secret, Job) and again
//! after a change; get in every output format, `get -w`, `get all`; describe; label, annotate, scale, the three
//! patch types; edit through `EDITOR`/`KUBE_EDITOR` scripts; diff; delete and `wait`. Then what a new user
//! types next: the `create`/`expose`/`set`/`rollout restart`/`run` generators, events, server-side dry runs,
//! `delete --all`, `api-versions`, `cluster-info`, `explain`.
//!
//! There are no controllers yet (no scheduler, Deployment or Job controller, no node agent in these servers), so
//! nothing here waits on status that a controller would write (`rollout status`, `logs`, `exec`,
//! `wait --for=condition=Available`).
//!
//! The tests at the end ("Regressions") each pin one bug found by trying what a user would.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::{Server, kubectl_dir, write};

const KUBECTL_VERSIONS: &[&str] = &["1.27", "1.30", "1.33"];

/// One kubectl binary against one server, with its own discovery cache and temporary directory (kubectl edit
/// and diff write there) inside the server's data directory.
struct Kubectl<'a> {
    version: &'a str,
    server: &'a Server,
}

impl<'a> Kubectl<'a> {
    fn new(version: &'a str, server: &'a Server) -> Self {
        Kubectl { version, server }
    }

    fn command(&self, args: &[&str]) -> Command {
        let binary = kubectl_dir().join(format!("kubectl.{}", self.version));
        assert!(binary.exists(), "{} is missing", binary.display());
        let mut command = Command::new(binary);
        command
            .arg("--kubeconfig")
            .arg(self.server.kubeconfig())
            .arg("--cache-dir")
            .arg(
                self.server
                    .dir
                    .path()
                    .join(format!("cache-{}", self.version)),
            )
            .args(args)
            .env("TMPDIR", self.server.dir.path())
            .env_remove("EDITOR")
            .env_remove("KUBE_EDITOR")
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .stdin(Stdio::null());
        command
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut command = self.command(args);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// stdout; the test fails (showing both streams) unless kubectl succeeds.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {} {args:?} failed: {}{}",
            self.version,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// stderr; the test fails unless kubectl fails.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {} {args:?} should have failed: {}",
            self.version,
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// `kubectl get <what> -n <ns> -o jsonpath=<path>`.
    fn jsonpath(&self, ns: &str, what: &str, path: &str) -> String {
        self.ok(&["get", what, "-n", ns, "-o", &format!("jsonpath={path}")])
    }

    fn json(&self, ns: &str, what: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", what, "-n", ns, "-o", "json"])).unwrap()
    }

    fn apply(&self, file: &Path) -> String {
        self.ok(&["apply", "-f", file.to_str().unwrap()])
    }

    /// A long-running kubectl (`get -w`) whose stdout lines arrive on a channel; killed on drop.
    fn spawn(&self, args: &[&str]) -> Spawned {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Spawned { child, lines }
    }
}

struct Spawned {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Spawned {
    /// The next line that satisfies `wanted`, waiting at most 15 s in all.
    fn line(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no line with {what} within 15 s; saw {seen:#?}"),
            }
        }
    }

    /// The next object of a `-o json` stream: kubectl prints each one indented, from `{` to `}` at column 0.
    fn object(&self) -> Value {
        self.line("the start of an object", |l| l == "{");
        let mut text = String::from("{\n");
        loop {
            let line = self.line("more of an object", |_| true);
            text.push_str(&line);
            text.push('\n');
            if line == "}" {
                return serde_json::from_str(&text).unwrap();
            }
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn namespace(prefix: &str, version: &str) -> String {
    format!("{prefix}-{}", version.replace('.', "-"))
}

/// A Namespace, Deployment, Service, ConfigMap, Secret (stringData) and Job (restartPolicy Never) in `ns`. The
/// changed version has 3 replicas instead of 2, image nginx:1.28 instead of 1.27, no DEBUG variable, and a
/// ConfigMap whose color is green instead of blue and which no longer has `size`.
fn manifest(ns: &str, changed: bool) -> String {
    let (replicas, image, color) = if changed {
        (3, "nginx:1.28", "green")
    } else {
        (2, "nginx:1.27", "blue")
    };
    let debug = if changed {
        ""
    } else {
        "\n        - {name: DEBUG, value: \"false\"}"
    };
    let size = if changed { "" } else { "\n  size: large" };
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
{}"#,
        workloads(ns, replicas, image, debug, color, size)
    )
}

fn workloads(ns: &str, replicas: u32, image: &str, debug: &str, color: &str, size: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web, tier: front}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: nginx
        image: {image}
        ports:
        - containerPort: 80
        env:
        - {{name: MODE, value: prod}}{debug}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: 80}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
  labels: {{app: web}}
data:
  color: {color}{size}
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: {ns}
  labels: {{app: web}}
type: Opaque
stringData:
  password: s3cret
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  namespace: {ns}
  labels: {{app: web}}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: busybox:1.36
        command: ["sh", "-c", "echo migrated"]
"#
    )
}

/// Writes both versions of the manifest for `ns`; applies the first.
fn set_up(k: &Kubectl, ns: &str) -> (PathBuf, PathBuf) {
    let (first, second) = manifests(k, ns);
    k.apply(&first);
    (first, second)
}

/// Writes both versions of the manifest for `ns`; applies the second.
fn set_up_changed(k: &Kubectl, ns: &str) {
    let (_, second) = manifests(k, ns);
    k.apply(&second);
}

fn manifests(k: &Kubectl, ns: &str) -> (PathBuf, PathBuf) {
    let dir = k.server.dir.path();
    let first = write(dir, &format!("{ns}-v1.yaml"), &manifest(ns, false));
    let second = write(dir, &format!("{ns}-v2.yaml"), &manifest(ns, true));
    (first, second)
}

/// The whitespace-separated cells of each line of a table.
fn rows(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

/// The value after `key:` on the first line of `describe` output that starts with it.
fn described<'t>(text: &'t str, key: &str) -> &'t str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
        .trim()
}

/// The file kubectl edit names in "A copy of your changes has been stored to "...""
fn stored_copy(stderr: &str) -> String {
    let path = stderr
        .split("has been stored to \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no stored copy named in: {stderr}"));
    std::fs::read_to_string(path).unwrap()
}

/// An editor script, run by kubectl as `<script> <file>`.
fn editor(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = write(dir, name, &format!("#!/bin/sh\nset -e\n{body}\n"));
    let mut permissions = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&path, permissions).unwrap();
    path
}

#[test]
fn version_and_discovery() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let out = k.ok(&["version"]);
        assert!(out.contains("v1.33.0+gantry"), "{version}: {out}");
        assert!(
            out.contains(&format!("v{version}.")),
            "{version}: the client version: {out}"
        );
        let resources = k.ok(&["api-resources"]);
        let deployments = rows(&resources)
            .into_iter()
            .find(|r| r.first() == Some(&"deployments"))
            .unwrap_or_else(|| panic!("{version}: {resources}"));
        assert_eq!(
            deployments,
            ["deployments", "deploy", "apps/v1", "true", "Deployment"]
        );
        for kind in [
            "ConfigMap",
            "Secret",
            "Service",
            "Job",
            "CronJob",
            "Namespace",
        ] {
            assert!(
                resources.lines().any(|l| l.ends_with(&format!(" {kind}"))),
                "{version}: no {kind} in {resources}"
            );
        }
        let cluster_scoped = k.ok(&["api-resources", "--namespaced=false", "-o", "name"]);
        assert!(
            cluster_scoped.lines().any(|l| l == "namespaces"),
            "{cluster_scoped}"
        );
        assert!(
            !cluster_scoped.lines().any(|l| l == "configmaps"),
            "{cluster_scoped}"
        );
        let versions = k.ok(&["api-versions"]);
        for group_version in ["v1", "apps/v1", "batch/v1", "networking.k8s.io/v1"] {
            assert!(
                versions.lines().any(|l| l == group_version),
                "{version}: {versions}"
            );
        }
        let info = k.ok(&["cluster-info"]);
        assert!(
            info.contains("is running at") && info.contains(&server.url("")),
            "{version}: {info}"
        );
        assert_eq!(k.ok(&["get", "--raw", "/healthz"]), "ok");
    }
}

#[test]
fn apply_a_multi_document_file_then_a_change() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("apply", version);
        let (first, second) = manifests(&k, &ns);
        let created = k.apply(&first);
        assert_eq!(
            created,
            format!(
                "namespace/{ns} created\ndeployment.apps/web created\nservice/web created\nconfigmap/settings created\n\
                 secret/creds created\njob.batch/migrate created\n"
            ),
            "{version}"
        );
        // The same file again changes nothing: `unchanged`, except for the Secret. Its stringData is merged into
        // data and never stored, so the three-way patch always has it and kubectl says `configured`, as it does
        // against Kubernetes (kubernetes/kubernetes#87736).
        let again = k.apply(&first);
        assert_eq!(
            again,
            format!(
                "namespace/{ns} unchanged\ndeployment.apps/web unchanged\nservice/web unchanged\nconfigmap/settings unchanged\n\
                 secret/creds configured\njob.batch/migrate unchanged\n"
            ),
            "{version}"
        );
        let before = k.json(&ns, "deploy/web");
        let changed = k.apply(&second);
        assert_eq!(
            changed,
            format!(
                "namespace/{ns} unchanged\ndeployment.apps/web configured\nservice/web unchanged\nconfigmap/settings configured\n\
                 secret/creds configured\njob.batch/migrate unchanged\n"
            ),
            "{version}"
        );

        // The Deployment has exactly the change: replicas, image, one variable fewer, and a new generation.
        let after = k.json(&ns, "deploy/web");
        assert_eq!(after["spec"]["replicas"], 3, "{version}");
        let container = &after["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "nginx:1.28");
        assert_eq!(container["env"], json!([{"name": "MODE", "value": "prod"}]));
        assert_eq!(
            container["ports"],
            before["spec"]["template"]["spec"]["containers"][0]["ports"]
        );
        assert_eq!(
            after["metadata"]["generation"].as_i64(),
            before["metadata"]["generation"].as_i64().map(|g| g + 1)
        );
        assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
        // Apart from those fields (and the bookkeeping), the object is as it was: defaults kept, nothing added.
        let mut expected = before.clone();
        expected["spec"]["replicas"] = json!(3);
        expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
        expected["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "MODE", "value": "prod"}]);
        for field in ["resourceVersion", "generation", "annotations"] {
            expected["metadata"][field] = after["metadata"][field].clone();
        }
        assert_eq!(after, expected, "{version}");
        let applied: Value = serde_json::from_str(
            after["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(applied["spec"]["replicas"], 3);

        // The ConfigMap's color changed and `size` is gone.
        let settings = k.json(&ns, "cm/settings");
        assert_eq!(settings["data"], json!({"color": "green"}), "{version}");
        // The Secret holds the base64 of its stringData, and no stringData.
        let creds = k.json(&ns, "secret/creds");
        assert_eq!(creds["data"], json!({"password": "czNjcmV0"}));
        assert_eq!(creds["type"], "Opaque");
        assert!(creds.get("stringData").is_none(), "{creds}");
        // The Job got its selector and its template the labels that select it; the Service a cluster IP.
        let job = k.json(&ns, "job/migrate");
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
        let uid = job["metadata"]["uid"].as_str().unwrap();
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            uid
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["job-name"],
            "migrate"
        );
        let ip = k.jsonpath(&ns, "svc/web", "{.spec.clusterIP}");
        assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
        // Applying the changed file again is a no-op.
        let settled = k.apply(&second);
        assert!(
            settled.contains("deployment.apps/web unchanged")
                && settled.contains("configmap/settings unchanged"),
            "{settled}"
        );
        assert_eq!(
            k.jsonpath(&ns, "deploy/web", "{.metadata.generation}"),
            after["metadata"]["generation"].to_string()
        );
        // A server-side dry run of the first version reports the change and stores nothing.
        let dry = k.ok(&["apply", "--dry-run=server", "-f", first.to_str().unwrap()]);
        assert!(
            dry.contains("deployment.apps/web configured (server dry run)"),
            "{dry}"
        );
        assert_eq!(k.jsonpath(&ns, "deploy/web", "{.spec.replicas}"), "3");
    }
}

#[test]
fn get_in_every_output_format() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("get", version);
        set_up_changed(&k, &ns);
        k.ok(&[
            "create",
            "deployment",
            "api",
            "--image=busybox:1.36",
            "--replicas=5",
            "-n",
            &ns,
        ]);

        // The default table: the columns kubectl users know.
        let table = k.ok(&["get", "deploy", "web", "-n", &ns]);
        let cells = rows(&table);
        assert_eq!(
            cells[0],
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            "{version}: {table}"
        );
        assert_eq!(cells[1][..4], ["web", "0/3", "0", "0"], "{table}");
        let wide = k.ok(&["get", "deploy", "web", "-n", &ns, "-o", "wide"]);
        let cells = rows(&wide);
        assert_eq!(
            cells[0][5..],
            ["CONTAINERS", "IMAGES", "SELECTOR"],
            "{version}: {wide}"
        );
        assert_eq!(cells[1][5..], ["nginx", "nginx:1.28", "app=web"], "{wide}");
        let services = k.ok(&["get", "svc", "-n", &ns, "-o", "wide"]);
        let cells = rows(&services);
        assert_eq!(
            cells[0],
            [
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
                "SELECTOR"
            ],
            "{services}"
        );
        let ip = k.jsonpath(&ns, "svc/web", "{.spec.clusterIP}");
        assert_eq!(cells[1][..5], ["web", "ClusterIP", &ip, "<none>", "80/TCP"]);
        assert_eq!(cells[1][6], "app=web");
        let others = k.ok(&["get", "cm,secret,job", "-n", &ns]);
        for expected in [
            vec!["NAME", "DATA", "AGE"],
            vec!["configmap/settings", "1"],
            vec!["NAME", "TYPE", "DATA", "AGE"],
            vec!["secret/creds", "Opaque", "1"],
            vec!["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
            vec!["job.batch/migrate"],
        ] {
            assert!(
                rows(&others).iter().any(|r| r.starts_with(&expected)),
                "{version}: no row {expected:?} in\n{others}"
            );
        }

        // YAML and JSON carry the whole object; JSON lists are Lists of items with kind and apiVersion.
        let yaml = k.ok(&["get", "deploy", "web", "-n", &ns, "-o", "yaml"]);
        for line in [
            "apiVersion: apps/v1\n",
            "kind: Deployment\n",
            "  name: web\n",
            &format!("  namespace: {ns}\n"),
            "  replicas: 3\n",
            "        image: nginx:1.28\n",
        ] {
            assert!(yaml.contains(line), "{version}: no {line:?} in\n{yaml}");
        }
        let list: Value =
            serde_json::from_str(&k.ok(&["get", "cm,deploy", "-n", &ns, "-o", "json"])).unwrap();
        assert_eq!(list["kind"], "List");
        let kinds: Vec<(&str, &str, &str)> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["apiVersion"].as_str().unwrap(),
                    i["kind"].as_str().unwrap(),
                    i["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("v1", "ConfigMap", "settings"),
                ("apps/v1", "Deployment", "api"),
                ("apps/v1", "Deployment", "web")
            ],
            "{version}"
        );
        let jsonpath = k.ok(&[
            "get",
            "deploy",
            "-n",
            &ns,
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.spec.replicas}{"\n"}{end}"#,
        ]);
        assert_eq!(jsonpath, "api=5\nweb=3\n");
        let names = k.ok(&["get", "all", "-n", &ns, "-o", "name"]);
        let mut names: Vec<&str> = names.lines().collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "deployment.apps/api",
                "deployment.apps/web",
                "job.batch/migrate",
                "service/web"
            ],
            "{version}"
        );
        // `get all` as a table: one section per kind.
        let all = k.ok(&["get", "all", "-n", &ns]);
        for row in ["service/web", "deployment.apps/web", "job.batch/migrate"] {
            assert!(
                all.lines().any(|l| l.starts_with(&format!("{row} "))),
                "{version}: {row} missing in\n{all}"
            );
        }

        // Labels and namespaces as columns.
        let labels = k.ok(&["get", "deploy", "web", "-n", &ns, "--show-labels"]);
        assert_eq!(
            rows(&labels)[1].last(),
            Some(&"app=web,tier=front"),
            "{labels}"
        );
        let custom = k.ok(&["get", "deploy", "web", "-n", &ns, "-L", "tier"]);
        assert_eq!(rows(&custom)[0].last(), Some(&"TIER"));
        assert_eq!(rows(&custom)[1].last(), Some(&"front"), "{custom}");
        let everywhere = k.ok(&["get", "deploy", "-A"]);
        assert_eq!(rows(&everywhere)[0][..2], ["NAMESPACE", "NAME"]);
        assert!(
            rows(&everywhere)
                .iter()
                .any(|r| r[..2] == [ns.as_str(), "web"]),
            "{version}: {everywhere}"
        );
        let all_cms = k.ok(&["get", "cm", "--all-namespaces", "-o", "name"]);
        assert!(all_cms.contains("configmap/settings\n"), "{all_cms}");
        // --sort-by: web (3 replicas) before api (5), against the order of names.
        let sorted = k.ok(&["get", "deploy", "-n", &ns, "--sort-by=.spec.replicas"]);
        let order: Vec<&str> = rows(&sorted).iter().skip(1).map(|r| r[0]).collect();
        assert_eq!(order, ["web", "api"], "{version}: {sorted}");
        let sorted = k.ok(&[
            "get",
            "deploy",
            "-n",
            &ns,
            "--sort-by=.spec.replicas",
            "-o",
            "name",
        ]);
        assert_eq!(sorted, "deployment.apps/web\ndeployment.apps/api\n");
        // custom-columns and go-template.
        let columns = k.ok(&[
            "get",
            "deploy",
            "-n",
            &ns,
            "-o",
            "custom-columns=NAME:.metadata.name,IMAGE:.spec.template.spec.containers[0].image",
        ]);
        assert_eq!(
            rows(&columns),
            [
                vec!["NAME", "IMAGE"],
                vec!["api", "busybox:1.36"],
                vec!["web", "nginx:1.28"]
            ]
        );
        let template = k.ok(&[
            "get",
            "cm",
            "settings",
            "-n",
            &ns,
            "-o",
            "go-template={{.data.color}}",
        ]);
        assert_eq!(template, "green");
        // Label selectors.
        let selected = k.ok(&["get", "deploy", "-n", &ns, "-l", "tier=front", "-o", "name"]);
        assert_eq!(selected, "deployment.apps/web\n");
        let none = k.run(&["get", "deploy", "-n", &ns, "-l", "tier=back"]);
        assert!(none.status.success());
        assert!(
            String::from_utf8_lossy(&none.stderr).contains("No resources found"),
            "{none:?}"
        );
        // A missing object is NotFound, said the way kubectl users know.
        let missing = k.fails(&["get", "deploy", "nope", "-n", &ns]);
        assert!(
            missing.contains(r#"Error from server (NotFound): deployments.apps "nope" not found"#),
            "{missing}"
        );
    }
}

#[test]
fn get_watch_sees_changes() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("watch", version);
        set_up(&k, &ns);
        // A table watch prints the current row, then one per change.
        let watch = k.spawn(&["get", "deploy", "-n", &ns, "-w"]);
        let header = watch.line("the header", |l| l.starts_with("NAME"));
        assert!(header.contains("UP-TO-DATE"), "{header}");
        watch.line("the current row", |l| {
            l.starts_with("web ") && l.contains("0/2")
        });
        // kubectl watches from the list's resourceVersion, so a change made now is seen even if its watch
        // request has not reached the server yet.
        k.ok(&["scale", "deploy", "web", "-n", &ns, "--replicas=4"]);
        watch.line("the scaled row", |l| {
            l.starts_with("web ") && l.contains("0/4")
        });
        drop(watch);

        // A JSON watch prints whole objects.
        let watch = k.spawn(&["get", "cm", "settings", "-n", &ns, "-w", "-o", "json"]);
        let current = watch.object();
        assert_eq!(current["data"]["color"], "blue", "{version}");
        k.ok(&[
            "patch",
            "cm",
            "settings",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"data":{"color":"red"}}"#,
        ]);
        let changed = watch.object();
        assert_eq!(changed["kind"], "ConfigMap");
        assert_eq!(changed["data"]["color"], "red", "{version}");
        assert_ne!(
            changed["metadata"]["resourceVersion"],
            current["metadata"]["resourceVersion"]
        );
        drop(watch);

        // --watch-only with --output-watch-events sees a deletion.
        let watch = k.spawn(&[
            "get",
            "secrets",
            "-n",
            &ns,
            "--watch-only",
            "--output-watch-events",
        ]);
        let mut attempt = 0;
        // Nothing is printed until a change, so keep making changes until the watch has started and sees one.
        let line = loop {
            let name = format!("s{attempt}");
            k.ok(&[
                "create",
                "secret",
                "generic",
                &name,
                "--from-literal=a=b",
                "-n",
                &ns,
            ]);
            if let Ok(line) = watch.lines.recv_timeout(Duration::from_secs(2)) {
                if line.starts_with("EVENT") {
                    break watch.line("an event", |_| true);
                }
                break line;
            }
            attempt += 1;
            assert!(attempt < 8, "{version}: the watch saw nothing");
        };
        let added = rows(&line)[0].clone();
        assert!(
            added[0] == "ADDED" && added[1].starts_with('s') && added[2] == "Opaque",
            "{line}"
        );
        k.ok(&["delete", "secret", "creds", "-n", &ns]);
        let deleted = watch.line("the deletion", |l| l.starts_with("DELETED"));
        assert_eq!(rows(&deleted)[0][..2], ["DELETED", "creds"], "{deleted}");
    }
}

#[test]
fn describe_shows_the_key_lines() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("describe", version);
        set_up_changed(&k, &ns);

        let deploy = k.ok(&["describe", "deployment", "web", "-n", &ns]);
        assert_eq!(described(&deploy, "Name"), "web");
        assert_eq!(described(&deploy, "Namespace"), ns);
        assert_eq!(described(&deploy, "Labels"), "app=web");
        assert!(
            deploy.contains("\n                        tier=front\n"),
            "{deploy}"
        );
        assert_eq!(described(&deploy, "Selector"), "app=web");
        assert_eq!(
            described(&deploy, "Replicas"),
            "3 desired | 0 updated | 0 total | 0 available | 0 unavailable"
        );
        assert_eq!(described(&deploy, "StrategyType"), "RollingUpdate");
        assert_eq!(
            described(&deploy, "RollingUpdateStrategy"),
            "25% max unavailable, 25% max surge"
        );
        for line in [
            "   nginx:\n",
            "    Image:      nginx:1.28\n",
            "    Port:       80/TCP\n",
            "      MODE:",
        ] {
            assert!(deploy.contains(line), "{version}: no {line:?} in\n{deploy}");
        }
        assert!(!deploy.contains("DEBUG"), "{deploy}");

        let service = k.ok(&["describe", "service", "web", "-n", &ns]);
        let ip = k.jsonpath(&ns, "svc/web", "{.spec.clusterIP}");
        assert_eq!(described(&service, "Name"), "web");
        assert_eq!(described(&service, "Namespace"), ns);
        assert_eq!(described(&service, "Labels"), "app=web");
        assert_eq!(described(&service, "Selector"), "app=web");
        assert_eq!(described(&service, "Type"), "ClusterIP");
        assert_eq!(described(&service, "IP"), ip);
        assert_eq!(described(&service, "IPs"), ip);
        assert_eq!(described(&service, "Port"), "http  80/TCP");
        assert_eq!(described(&service, "TargetPort"), "80/TCP");
        assert_eq!(described(&service, "Session Affinity"), "None");

        let cm = k.ok(&["describe", "configmap", "settings", "-n", &ns]);
        assert_eq!(described(&cm, "Name"), "settings");
        assert_eq!(described(&cm, "Namespace"), ns);
        assert!(
            cm.contains("Data\n====\ncolor:\n----\ngreen\n"),
            "{version}: {cm}"
        );
        assert!(!cm.contains("size"), "{cm}");

        let secret = k.ok(&["describe", "secret", "creds", "-n", &ns]);
        assert_eq!(described(&secret, "Name"), "creds");
        assert_eq!(described(&secret, "Type"), "Opaque");
        assert_eq!(described(&secret, "password"), "6 bytes");
        assert!(!secret.contains("s3cret"), "{secret}");

        let namespace = k.ok(&["describe", "namespace", &ns]);
        assert_eq!(described(&namespace, "Name"), ns);
        assert_eq!(
            described(&namespace, "Labels"),
            format!("kubernetes.io/metadata.name={ns}")
        );
        assert_eq!(described(&namespace, "Status"), "Active");
        assert!(namespace.contains("No resource quota."), "{namespace}");

        let job = k.ok(&["describe", "job", "migrate", "-n", &ns]);
        let uid = k.jsonpath(&ns, "job/migrate", "{.metadata.uid}");
        assert_eq!(described(&job, "Name"), "migrate");
        assert_eq!(described(&job, "Namespace"), ns);
        assert_eq!(
            described(&job, "Selector"),
            format!("batch.kubernetes.io/controller-uid={uid}")
        );
        assert_eq!(described(&job, "Labels"), "app=web");
        assert_eq!(described(&job, "Parallelism"), "1");
        assert_eq!(described(&job, "Completions"), "1");
        assert_eq!(
            described(&job, "Pods Statuses"),
            "0 Active / 0 Succeeded / 0 Failed"
        );
        assert!(job.contains("      echo migrated\n"), "{job}");
        // Several at once, by label.
        let all = k.ok(&["describe", "cm,secret", "-n", &ns, "-l", "app=web"]);
        assert_eq!(all.matches("\nNamespace:").count(), 2, "{all}");
    }
}

#[test]
fn label_annotate_scale_and_patch() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("change", version);
        set_up(&k, &ns);
        let labels = |what: &str| k.json(&ns, what)["metadata"]["labels"].clone();

        assert_eq!(
            k.ok(&["label", "deploy", "web", "-n", &ns, "release=stable"]),
            "deployment.apps/web labeled\n"
        );
        // An existing label changes only with --overwrite.
        let refused = k.fails(&["label", "deploy", "web", "-n", &ns, "tier=back"]);
        assert!(
            refused.contains("'tier' already has a value (front), and --overwrite is false"),
            "{refused}"
        );
        k.ok(&[
            "label",
            "deploy",
            "web",
            "-n",
            &ns,
            "tier=back",
            "--overwrite",
        ]);
        assert_eq!(
            labels("deploy/web"),
            json!({"app": "web", "tier": "back", "release": "stable"})
        );
        assert_eq!(
            k.ok(&["label", "deploy", "web", "-n", &ns, "release-"]),
            "deployment.apps/web unlabeled\n"
        );
        assert_eq!(labels("deploy/web"), json!({"app": "web", "tier": "back"}));
        // Several objects by selector.
        let labeled = k.ok(&[
            "label",
            "cm,secret",
            "-n",
            &ns,
            "-l",
            "app=web",
            "checked=yes",
        ]);
        assert_eq!(
            labeled, "configmap/settings labeled\nsecret/creds labeled\n",
            "{version}"
        );

        k.ok(&[
            "annotate",
            "deploy",
            "web",
            "-n",
            &ns,
            "owner=alice",
            "note=first",
        ]);
        let annotations = k.json(&ns, "deploy/web")["metadata"]["annotations"].clone();
        assert_eq!(annotations["owner"], "alice");
        assert_eq!(annotations["note"], "first");
        k.fails(&["annotate", "deploy", "web", "-n", &ns, "note=second"]);
        k.ok(&[
            "annotate",
            "deploy",
            "web",
            "-n",
            &ns,
            "note=second",
            "--overwrite",
        ]);
        k.ok(&["annotate", "deploy", "web", "-n", &ns, "owner-"]);
        let annotations = k.json(&ns, "deploy/web")["metadata"]["annotations"].clone();
        assert!(annotations.get("owner").is_none(), "{annotations}");
        assert_eq!(annotations["note"], "second");
        // The last-applied annotation is untouched.
        assert!(annotations["kubectl.kubernetes.io/last-applied-configuration"].is_string());

        assert_eq!(
            k.ok(&["scale", "deploy", "web", "-n", &ns, "--replicas=4"]),
            "deployment.apps/web scaled\n"
        );
        k.ok(&[
            "scale",
            "deploy/web",
            "-n",
            &ns,
            "--current-replicas=4",
            "--replicas=6",
        ]);
        let stale = k.fails(&[
            "scale",
            "deploy/web",
            "-n",
            &ns,
            "--current-replicas=4",
            "--replicas=8",
        ]);
        assert!(
            stale.contains("Expected replicas to be 4, was 6"),
            "{version}: {stale}"
        );
        assert_eq!(k.jsonpath(&ns, "deploy/web", "{.spec.replicas}"), "6");
        let negative = k.fails(&["scale", "deploy", "web", "-n", &ns, "--replicas=-1"]);
        assert!(negative.contains("replicas"), "{negative}");

        // The three patch types.
        let strategic = k.ok(&[
            "patch",
            "deploy",
            "web",
            "-n",
            &ns,
            "--type=strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"EXTRA","value":"1"}]}]}}}}"#,
        ]);
        assert_eq!(strategic, "deployment.apps/web patched\n");
        // A strategic merge patch merges lists by their key: the variable is added, none lost.
        let env = k.jsonpath(
            &ns,
            "deploy/web",
            "{.spec.template.spec.containers[0].env[*].name}",
        );
        let mut env: Vec<&str> = env.split(' ').collect();
        env.sort_unstable();
        assert_eq!(env, ["DEBUG", "EXTRA", "MODE"], "{version}");
        // A merge patch replaces lists and deletes with null.
        k.ok(&[
            "patch",
            "deploy",
            "web",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"tier":null,"patched":"merge"}},"spec":{"minReadySeconds":5}}"#,
        ]);
        assert_eq!(
            labels("deploy/web"),
            json!({"app": "web", "patched": "merge"})
        );
        k.ok(&[
            "patch",
            "cm",
            "settings",
            "-n",
            &ns,
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/data/color","value":"teal"},{"op":"remove","path":"/data/size"},{"op":"add","path":"/data/shape","value":"round"}]"#,
        ]);
        assert_eq!(
            k.json(&ns, "cm/settings")["data"],
            json!({"color": "teal", "shape": "round"})
        );
        assert_eq!(
            k.jsonpath(&ns, "deploy/web", "{.spec.minReadySeconds}"),
            "5"
        );
        // A patch that makes the object invalid, or names a missing path, fails and changes nothing.
        let invalid = k.fails(&[
            "patch",
            "deploy",
            "web",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":-2}}"#,
        ]);
        assert!(
            invalid
                .contains("spec.replicas: Invalid value: -2: must be greater than or equal to 0"),
            "{version}: {invalid}"
        );
        let missing = k.fails(&[
            "patch",
            "cm",
            "settings",
            "-n",
            &ns,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/data/nothing"}]"#,
        ]);
        assert!(!missing.is_empty());
        assert_eq!(k.jsonpath(&ns, "deploy/web", "{.spec.replicas}"), "6");
        assert_eq!(
            k.json(&ns, "cm/settings")["data"],
            json!({"color": "teal", "shape": "round"})
        );
        // kubectl patch asks for no field validation, so the server warns about an unknown field (and should drop
        // it: see the known gaps).
        let unknown = k.run(&[
            "patch",
            "deploy",
            "web",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"replicaz":2}}"#,
        ]);
        assert!(unknown.status.success(), "{version}: {unknown:?}");
        assert!(
            String::from_utf8_lossy(&unknown.stderr)
                .contains(r#"Warning: unknown field "spec.replicaz""#),
            "{version}: {unknown:?}"
        );
    }
}

#[test]
fn edit_through_an_editor_script() {
    let server = Server::without_controllers();
    let dir = server.dir.path();
    let purple = editor(
        dir,
        "purple.sh",
        "sed -i 's/^  color: blue$/  color: purple/' \"$1\"",
    );
    let four = editor(
        dir,
        "four.sh",
        "sed -i 's/^  replicas: 2$/  replicas: 4/' \"$1\"",
    );
    let negative = editor(
        dir,
        "negative.sh",
        "sed -i 's/^  replicas: 4$/  replicas: -3/' \"$1\"",
    );
    let broken = editor(
        dir,
        "broken.sh",
        "sed -i 's/^data:$/data: [unclosed/' \"$1\"",
    );
    let never = editor(dir, "never.sh", "exit 1");
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("edit", version);
        set_up(&k, &ns);
        let edit = |what: &str, env: &[(&str, &Path)]| k.run_with(&["edit", what, "-n", &ns], env);

        let out = edit("cm/settings", &[("EDITOR", &purple)]);
        assert!(out.status.success(), "{version}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "configmap/settings edited\n"
        );
        assert_eq!(k.jsonpath(&ns, "cm/settings", "{.data.color}"), "purple");
        // KUBE_EDITOR wins over EDITOR.
        let out = edit(
            "deployment/web",
            &[("KUBE_EDITOR", &four), ("EDITOR", &never)],
        );
        assert!(out.status.success(), "{version}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "deployment.apps/web edited\n"
        );
        assert_eq!(k.jsonpath(&ns, "deploy/web", "{.spec.replicas}"), "4");
        // An edit that makes the object invalid: the server's reasons go into the file kubectl reopens; the
        // script changes nothing the second time, so kubectl gives up and keeps a copy.
        let out = edit("deployment/web", &[("EDITOR", &negative)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{version}: {out:?}");
        assert!(
            stderr.contains(r#"error: deployments.apps "web" is invalid"#)
                && stderr.contains("Edit cancelled, no valid changes were saved."),
            "{version}: {stderr}"
        );
        let copy = stored_copy(&stderr);
        assert!(
            copy.contains(r#"# deployments.apps "web" was not valid:"#)
                && copy.contains(
                    "# * spec.replicas: Invalid value: -3: must be greater than or equal to 0"
                ),
            "{version}: {copy}"
        );
        assert_eq!(k.jsonpath(&ns, "deploy/web", "{.spec.replicas}"), "4");
        // Invalid YAML never reaches the server.
        let out = edit("cm/settings", &[("EDITOR", &broken)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{version}: {out:?}");
        assert!(
            stderr.contains("Edit cancelled, no valid changes were saved."),
            "{stderr}"
        );
        assert!(
            stored_copy(&stderr).contains("did not find expected ',' or ']'"),
            "{stderr}"
        );
        assert_eq!(k.jsonpath(&ns, "cm/settings", "{.data.color}"), "purple");
        // An editor that fails aborts the edit.
        let out = edit("cm/settings", &[("EDITOR", &never)]);
        assert!(!out.status.success(), "{version}: {out:?}");
        // `edit` updates the last-applied annotation where there is one, so applying the original file again sees
        // purple as last applied and sets blue back.
        let first = server.dir.path().join(format!("{ns}-v1.yaml"));
        let out = k.apply(&first);
        assert!(out.contains("configmap/settings configured"), "{out}");
        assert_eq!(k.jsonpath(&ns, "cm/settings", "{.data.color}"), "blue");
    }
}

#[test]
fn diff_against_a_server_side_dry_run() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("diff", version);
        let (first, second) = set_up(&k, &ns);
        // The same file: exit code 0 and no output.
        let same = k.run(&["diff", "-f", first.to_str().unwrap()]);
        assert_eq!(same.status.code(), Some(0), "{version}: {same:?}");
        assert_eq!(String::from_utf8_lossy(&same.stdout), "");
        // A changed file: exit code 1 and a unified diff of the changed objects only.
        let changed = k.run(&["diff", "-f", second.to_str().unwrap()]);
        assert_eq!(changed.status.code(), Some(1), "{version}: {changed:?}");
        let diff = String::from_utf8(changed.stdout).unwrap();
        for line in [
            "-  replicas: 2\n",
            "+  replicas: 3\n",
            "-        image: nginx:1.27\n",
            "+        image: nginx:1.28\n",
            "-        - name: DEBUG\n",
            "-  color: blue\n",
            "+  color: green\n",
            "-  size: large\n",
        ] {
            assert!(diff.contains(line), "{version}: no {line:?} in\n{diff}");
        }
        let files: Vec<&str> = diff
            .lines()
            .filter_map(|l| l.strip_prefix("+++ "))
            .map(|l| l.split('\t').next().unwrap().rsplit('/').next().unwrap())
            .collect();
        assert_eq!(
            files,
            [
                format!("apps.v1.Deployment.{ns}.web"),
                format!("v1.ConfigMap.{ns}.settings")
            ],
            "{version}: {diff}"
        );
        // Nothing was stored.
        assert_eq!(k.jsonpath(&ns, "deploy/web", "{.spec.replicas}"), "2");
        assert_eq!(k.jsonpath(&ns, "cm/settings", "{.data.color}"), "blue");
        // A new object diffs against nothing.
        let extra = write(
            server.dir.path(),
            &format!("{ns}-extra.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: {ns}\ndata:\n  k: v\n"
            ),
        );
        let new = k.run(&["diff", "-f", extra.to_str().unwrap()]);
        assert_eq!(new.status.code(), Some(1), "{new:?}");
        assert!(
            String::from_utf8_lossy(&new.stdout).contains("+  name: extra\n"),
            "{new:?}"
        );
        k.fails(&["get", "cm", "extra", "-n", &ns]);
        // After applying, the changed file has no diff.
        k.apply(&second);
        let same = k.run(&["diff", "-f", second.to_str().unwrap()]);
        assert_eq!(same.status.code(), Some(0), "{version}: {same:?}");
    }
}

#[test]
fn delete_and_wait() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("delete", version);
        set_up(&k, &ns);
        // wait --for=jsonpath (kubectl 1.23 and later).
        let met = k.ok(&[
            "wait",
            "--for=jsonpath={.data.color}=blue",
            "cm/settings",
            "-n",
            &ns,
            "--timeout=10s",
        ]);
        assert_eq!(met, "configmap/settings condition met\n", "{version}");
        let unmet = k.fails(&[
            "wait",
            "--for=jsonpath={.data.color}=green",
            "cm/settings",
            "-n",
            &ns,
            "--timeout=1s",
        ]);
        assert!(unmet.contains("timed out waiting"), "{unmet}");

        // Delete without waiting, then wait for the deletion.
        assert_eq!(
            k.ok(&["delete", "deploy", "web", "-n", &ns, "--wait=false"]),
            "deployment.apps \"web\" deleted\n"
        );
        k.ok(&[
            "wait",
            "--for=delete",
            "deployment/web",
            "-n",
            &ns,
            "--timeout=10s",
        ]);
        k.fails(&["get", "deploy", "web", "-n", &ns]);

        // Delete by label.
        let deleted = k.ok(&["delete", "cm,secret", "-l", "app=web", "-n", &ns]);
        assert_eq!(
            deleted, "configmap \"settings\" deleted\nsecret \"creds\" deleted\n",
            "{version}"
        );
        assert_eq!(k.ok(&["get", "cm,secret", "-l", "app=web", "-n", &ns]), "");
        // Delete what a file names (without its Namespace: see the known gaps for a file that has it).
        let rest = write(
            server.dir.path(),
            &format!("{ns}-rest.yaml"),
            &workloads(&ns, 2, "nginx", "", "blue", ""),
        );
        k.apply(&rest);
        let deleted = k.ok(&["delete", "-f", rest.to_str().unwrap()]);
        assert_eq!(
            deleted,
            "deployment.apps \"web\" deleted\nservice \"web\" deleted\nconfigmap \"settings\" deleted\n\
             secret \"creds\" deleted\njob.batch \"migrate\" deleted\n",
            "{version}"
        );
        assert_eq!(k.ok(&["get", "all,cm,secret", "-n", &ns, "-o", "name"]), "");
        let again = k.fails(&["delete", "-f", rest.to_str().unwrap()]);
        assert!(
            again.contains(r#"deployments.apps "web" not found"#),
            "{again}"
        );
        assert_eq!(
            k.ok(&["delete", "-f", rest.to_str().unwrap(), "--ignore-not-found"]),
            ""
        );
        // Deleting the namespace, and waiting for it.
        k.ok(&["delete", "namespace", &ns, "--wait=false"]);
        k.ok(&[
            "wait",
            "--for=delete",
            &format!("namespace/{ns}"),
            "--timeout=10s",
        ]);
        let gone = k.fails(&["get", "namespace", &ns]);
        assert!(
            gone.contains(&format!(r#"namespaces "{ns}" not found"#)),
            "{gone}"
        );
    }
}

#[test]
fn a_new_user_goes_on() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("newbie", version);
        let n = ["-n", ns.as_str()];
        let ok = |args: &[&str]| k.ok(&[&n[..], args].concat());
        assert_eq!(
            k.ok(&["create", "namespace", &ns]),
            format!("namespace/{ns} created\n")
        );
        assert_eq!(
            ok(&[
                "create",
                "deployment",
                "web",
                "--image=nginx",
                "--replicas=2"
            ]),
            "deployment.apps/web created\n"
        );
        let web = k.json(&ns, "deploy/web");
        assert_eq!(web["spec"]["replicas"], 2);
        assert_eq!(
            web["spec"]["selector"]["matchLabels"],
            json!({"app": "web"})
        );
        assert_eq!(
            web["spec"]["template"]["spec"]["containers"][0]["name"],
            "nginx"
        );
        assert_eq!(
            ok(&[
                "expose",
                "deployment",
                "web",
                "--port=80",
                "--target-port=8080"
            ]),
            "service/web exposed\n"
        );
        let service = k.json(&ns, "svc/web");
        assert_eq!(service["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(
            service["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP", "targetPort": 8080}])
        );
        assert_eq!(service["spec"]["type"], "ClusterIP");
        assert_eq!(
            ok(&["set", "image", "deployment/web", "nginx=nginx:2"]),
            "deployment.apps/web image updated\n"
        );
        assert_eq!(
            k.jsonpath(
                &ns,
                "deploy/web",
                "{.spec.template.spec.containers[0].image}"
            ),
            "nginx:2"
        );
        let wrong = k.fails(&["set", "image", "deployment/web", "nope=nginx:3", "-n", &ns]);
        assert!(
            wrong.contains("unable to find container named \"nope\""),
            "{wrong}"
        );
        ok(&["set", "env", "deployment/web", "COLOR=blue"]);
        assert_eq!(
            ok(&["set", "env", "deployment/web", "--list"]),
            "# Deployment web, container nginx\nCOLOR=blue\n"
        );
        assert_eq!(
            ok(&["rollout", "restart", "deployment/web"]),
            "deployment.apps/web restarted\n"
        );
        let restarted = k.jsonpath(
            &ns,
            "deploy/web",
            r#"{.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}"#,
        );
        assert!(
            restarted.len() == 20 && restarted.ends_with('Z'),
            "{version}: {restarted}"
        );
        assert_eq!(k.jsonpath(&ns, "deploy/web", "{.metadata.generation}"), "4");

        assert_eq!(
            ok(&[
                "create",
                "configmap",
                "cfg",
                "--from-literal=a=1",
                "--from-literal=b=two"
            ]),
            "configmap/cfg created\n"
        );
        assert_eq!(k.json(&ns, "cm/cfg")["data"], json!({"a": "1", "b": "two"}));
        ok(&[
            "create",
            "secret",
            "generic",
            "pw",
            "--from-literal=password=hunter2",
        ]);
        let pw = k.json(&ns, "secret/pw");
        assert_eq!(pw["data"], json!({"password": "aHVudGVyMg=="}));
        assert_eq!(pw["type"], "Opaque");
        assert_eq!(
            ok(&[
                "create",
                "job",
                "once",
                "--image=busybox",
                "--",
                "echo",
                "hi"
            ]),
            "job.batch/once created\n"
        );
        let once = k.json(&ns, "job/once");
        let template = &once["spec"]["template"]["spec"];
        assert_eq!(template["restartPolicy"], "Never");
        assert_eq!(template["containers"][0]["command"], json!(["echo", "hi"]));
        assert_eq!(
            ok(&[
                "create",
                "cronjob",
                "nightly",
                "--image=busybox",
                "--schedule=0 3 * * *",
                "--",
                "date"
            ]),
            "cronjob.batch/nightly created\n"
        );
        let cronjobs = ok(&["get", "cronjobs"]);
        assert_eq!(rows(&cronjobs)[0][..2], ["NAME", "SCHEDULE"]);
        assert_eq!(
            rows(&cronjobs)[1][..6],
            ["nightly", "0", "3", "*", "*", "*"],
            "{cronjobs}"
        );
        assert_eq!(
            ok(&[
                "run",
                "solo",
                "--image=busybox",
                "--restart=Never",
                "--",
                "sleep",
                "1"
            ]),
            "pod/solo created\n"
        );
        let pod = k.json(&ns, "pod/solo");
        assert_eq!(pod["metadata"]["labels"], json!({"run": "solo"}));
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert_eq!(pod["spec"]["containers"][0]["args"], json!(["sleep", "1"]));

        // Labels: a new one, then --overwrite; the same value again is "not labeled".
        ok(&["label", "deploy", "web", "team=a"]);
        ok(&["label", "deploy", "web", "team=b", "--overwrite"]);
        assert_eq!(
            k.jsonpath(&ns, "deploy/web", "{.metadata.labels.team}"),
            "b"
        );
        assert_eq!(
            ok(&["label", "deploy", "web", "team=b", "--overwrite"]),
            "deployment.apps/web not labeled\n"
        );
        // The scheduler says why it cannot place the pod: this server has no nodes.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let events = k.run(&["get", "events", "-n", &ns]);
            assert!(events.status.success(), "{events:?}");
            let listed = String::from_utf8_lossy(&events.stdout);
            if listed.contains("FailedScheduling")
                && listed.contains("no nodes available to schedule pods")
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{events:?}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        // Server-side dry runs store nothing.
        let dry = write(
            server.dir.path(),
            &format!("{ns}-dry.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\ndata:\n  k: v\n",
        );
        assert_eq!(
            ok(&["apply", "--dry-run=server", "-f", dry.to_str().unwrap()]),
            "configmap/dry created (server dry run)\n"
        );
        k.fails(&["get", "cm", "dry", "-n", &ns]);
        assert_eq!(
            ok(&["scale", "deploy", "web", "--replicas=9", "--dry-run=server"]),
            "deployment.apps/web scaled (server dry run)\n"
        );
        assert_eq!(k.jsonpath(&ns, "deploy/web", "{.spec.replicas}"), "2");
        ok(&[
            "create",
            "deployment",
            "ghost",
            "--image=nginx",
            "--dry-run=server",
        ]);
        k.fails(&["get", "deploy", "ghost", "-n", &ns]);
        // Explain.
        let strategy = k.ok(&["explain", "deployment.spec.strategy"]);
        assert!(
            strategy.contains("FIELD: strategy <DeploymentStrategy>")
                && strategy.contains("rollingUpdate\t<RollingUpdateDeployment>"),
            "{version}: {strategy}"
        );
        let image = k.ok(&["explain", "pods.spec.containers.image"]);
        assert!(image.contains("FIELD: image <string>"), "{image}");
        let schedule = k.ok(&["explain", "cronjob.spec.schedule"]);
        assert!(schedule.contains("FIELD: schedule <string>"), "{schedule}");
        // Deleting everything of a kind, then everything in the `all` category.
        assert_eq!(
            ok(&["delete", "cm", "--all"]),
            "configmap \"cfg\" deleted\n"
        );
        let deleted = ok(&["delete", "all", "--all"]);
        for line in [
            "pod \"solo\" deleted",
            "service \"web\" deleted",
            "deployment.apps \"web\" deleted",
            "job.batch \"once\" deleted",
            "cronjob.batch \"nightly\" deleted",
        ] {
            assert!(deleted.contains(line), "{version}: {deleted}");
        }
        assert_eq!(ok(&["get", "all", "-o", "name"]), "");
        assert_eq!(ok(&["get", "secrets", "-o", "name"]), "secret/pw\n");
    }
}

/// `auth can-i` (SelfSubjectAccessReview; there is no authorization yet, so the answer is yes) and `auth whoami`
/// (SelfSubjectReview: the admin certificate's user and groups).
#[test]
fn auth_can_i_and_whoami() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        assert_eq!(
            k.ok(&["auth", "can-i", "create", "pods"]),
            "yes\n",
            "{version}"
        );
        assert_eq!(
            k.ok(&["auth", "can-i", "get", "/healthz"]),
            "yes\n",
            "{version}"
        );
        if *version != "1.27" {
            // kubectl 1.27 asks authentication.k8s.io/v1alpha1, which Kubernetes 1.33 does not serve either.
            let whoami = k.ok(&["auth", "whoami", "-o", "json"]);
            let review: serde_json::Value = serde_json::from_str(&whoami).unwrap();
            assert_eq!(
                review["status"]["userInfo"]["username"], "gantry-admin",
                "{version}"
            );
            assert!(
                review["status"]["userInfo"]["groups"]
                    .as_array()
                    .unwrap()
                    .contains(&serde_json::json!("system:masters")),
                "{whoami}"
            );
        }
    }
}

// Regressions: each test below shows a bug found by trying what a user would (fixed since).

/// A patch, label or apply that changes nothing is not written: the resourceVersion stays, watchers see no
/// event, and kubectl says `patched (no change)`.
#[test]
fn a_patch_that_changes_nothing_is_not_written() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("noop", version);
        set_up(&k, &ns);
        let before = k.jsonpath(&ns, "cm/settings", "{.metadata.resourceVersion}");
        let out = k.ok(&[
            "patch",
            "cm",
            "settings",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"data":{"color":"blue"}}"#,
        ]);
        assert_eq!(
            (
                out.as_str(),
                k.jsonpath(&ns, "cm/settings", "{.metadata.resourceVersion}")
            ),
            ("configmap/settings patched (no change)\n", before),
            "{version}"
        );
    }
}

/// An object that finalizers hold is deleted once its last finalizer is removed; `kubectl wait --for=delete`
/// then returns.
#[test]
fn removing_the_last_finalizer_completes_a_deletion() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("finalizer", version);
        k.ok(&["create", "namespace", &ns]);
        let file = write(
            server.dir.path(),
            &format!("{ns}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: {ns}\n  finalizers: [example.com/hold]\n"
            ),
        );
        k.apply(&file);
        k.ok(&["delete", "cm", "held", "-n", &ns, "--wait=false"]);
        assert!(
            !k.jsonpath(&ns, "cm/held", "{.metadata.deletionTimestamp}")
                .is_empty()
        );
        let mut wait = k
            .command(&["wait", "--for=delete", "cm/held", "-n", &ns, "--timeout=5s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        k.ok(&[
            "patch",
            "cm",
            "held",
            "-n",
            &ns,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ]);
        let status = wait.wait().unwrap();
        let still = k.run(&["get", "cm", "held", "-n", &ns, "-o", "yaml"]);
        assert!(
            status.success() && !still.status.success(),
            "{version}: the object is still there: {}",
            String::from_utf8_lossy(&still.stdout)
        );
    }
}

/// `kubectl delete -f` of the file that was applied, Namespace first, deletes every object and exits 0 against
/// Kubernetes: the namespace is only marked Terminating, its objects are still there to delete.
#[test]
fn delete_of_an_applied_file_that_holds_its_namespace() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("nsfile", version);
        let (first, _) = set_up(&k, &ns);
        let out = k.run(&["delete", "-f", first.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A new Pod starts `Pending` (Kubernetes sets status.phase and status.qosClass on create), so `kubectl get pods`
/// shows STATUS Pending and `--field-selector=status.phase=Pending` finds it.
#[test]
fn a_new_pod_is_pending() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("pod", version);
        k.ok(&["create", "namespace", &ns]);
        k.ok(&[
            "run",
            "solo",
            "--image=busybox",
            "--restart=Never",
            "-n",
            &ns,
        ]);
        let table = k.ok(&["get", "pods", "-n", &ns]);
        assert_eq!(
            rows(&table)[1][..3],
            ["solo", "0/1", "Pending"],
            "{version}: {table}"
        );
        assert_eq!(
            k.jsonpath(&ns, "pod/solo", "{.status.phase} {.status.qosClass}"),
            "Pending BestEffort"
        );
        assert_eq!(
            k.ok(&[
                "get",
                "pods",
                "-n",
                &ns,
                "--field-selector=status.phase=Pending",
                "-o",
                "name"
            ]),
            "pod/solo\n"
        );
    }
}

/// kubectl 1.32 and later send protobuf for `create ingress` and `create job --from`; fields that Go embeds
/// inline (IngressRule.ingressRuleValue, Volume.volumeSource) must be flattened into their parent, as their JSON
/// is.
#[test]
fn protobuf_bodies_with_inline_fields() {
    let server = Server::without_controllers();
    let k = Kubectl::new("1.33", &server);
    let ns = "proto-inline";
    k.ok(&["create", "namespace", ns]);
    k.ok(&[
        "create",
        "ingress",
        "web",
        "--rule=foo.example.com/=web:80",
        "-n",
        ns,
    ]);
    assert_eq!(
        k.jsonpath(
            ns,
            "ingress/web",
            "{.spec.rules[0].host} {.spec.rules[0].http.paths[0].backend.service.name}"
        ),
        "foo.example.com web"
    );
    let cronjob = write(
        server.dir.path(),
        "cronjob.yaml",
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: backup\n  namespace: proto-inline\nspec:\n  schedule: \"0 1 * * *\"\n  \
         jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          \
         volumes: [{name: scratch, emptyDir: {}}]\n          containers: [{name: b, image: busybox}]\n",
    );
    k.apply(&cronjob);
    k.ok(&["create", "job", "manual", "--from=cronjob/backup", "-n", ns]);
    assert_eq!(
        k.jsonpath(ns, "job/manual", "{.spec.template.spec.volumes}"),
        r#"[{"emptyDir":{},"name":"scratch"}]"#
    );
}

/// `kubectl apply --prune -l …` without an allowlist lists every kind of its default allowlist, which includes
/// core/v1 ReplicationController; without it in discovery, prune fails before deleting anything.
#[test]
fn apply_prune_with_the_default_allowlist() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("prune", version);
        k.ok(&["create", "namespace", &ns]);
        let cm = |name: &str| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{set: a}}\n"
            )
        };
        let both = write(
            server.dir.path(),
            &format!("{ns}-both.yaml"),
            &format!("{}---\n{}", cm("one"), cm("two")),
        );
        let one = write(server.dir.path(), &format!("{ns}-one.yaml"), &cm("one"));
        k.apply(&both);
        let out = k.run(&[
            "apply",
            "--prune",
            "-l",
            "set=a",
            "-f",
            one.to_str().unwrap(),
        ]);
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains("configmap/two pruned"),
            "{version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Unknown fields are dropped, never stored, when the request asks for fieldValidation Ignore or Warn, or for
/// none (kubectl patch, `--validate=false`, most clients): Kubernetes decodes into its types and loses them.
#[test]
fn unknown_fields_are_dropped_unless_strict() {
    let server = Server::without_controllers();
    for version in KUBECTL_VERSIONS {
        let k = Kubectl::new(version, &server);
        let ns = namespace("unknown", version);
        set_up(&k, &ns);
        let patched = k.run(&[
            "patch",
            "deploy",
            "web",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"replicaz":2}}"#,
        ]);
        assert!(
            String::from_utf8_lossy(&patched.stderr).contains(r#"unknown field "spec.replicaz""#),
            "{patched:?}"
        );
        let file = write(
            server.dir.path(),
            &format!("{ns}-bogus.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bogus\n  namespace: {ns}\nbogus: field\n"
            ),
        );
        k.ok(&["create", "--validate=false", "-f", file.to_str().unwrap()]);
        assert_eq!(
            (
                k.jsonpath(&ns, "deploy/web", "{.spec.replicaz}"),
                k.jsonpath(&ns, "cm/bogus", "{.bogus}")
            ),
            (String::new(), String::new()),
            "{version}"
        );
    }
}

/// `kubectl autoscale` before 1.32 creates an autoscaling/v1 HorizontalPodAutoscaler, and Kubernetes 1.33 serves
/// autoscaling/v1 beside v2.
#[test]
fn autoscale_with_autoscaling_v1() {
    let server = Server::without_controllers();
    for version in ["1.27", "1.30"] {
        let k = Kubectl::new(version, &server);
        let ns = namespace("hpa", version);
        k.ok(&["create", "namespace", &ns]);
        k.ok(&["create", "deployment", "web", "--image=nginx", "-n", &ns]);
        k.ok(&[
            "autoscale",
            "deployment",
            "web",
            "--min=1",
            "--max=3",
            "--cpu-percent=50",
            "-n",
            &ns,
        ]);
        assert_eq!(
            k.jsonpath(&ns, "hpa/web", "{.spec.maxReplicas}"),
            "3",
            "{version}"
        );
    }
}

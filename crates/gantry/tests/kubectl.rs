//! End to end: a real `gantry server` process driven by the real kubectl binaries (1.27, 1.30 and 1.33, each
//! called directly) and by curl for what kubectl does not show (status codes, unauthenticated requests).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KUBECTL_VERSIONS: &[&str] = &["1.27", "1.30", "1.33"];

mod support;

use support::{Server, curl, kubectl, kubectl_dir, ok, write};

#[test]
fn kubectl_reads_version_discovery_and_system_namespaces() {
    let server = Server::start();
    for version in KUBECTL_VERSIONS {
        let out = ok(version, &server, &["version"]);
        assert!(out.contains("v1.33.0+gantry"), "{version}: {out}");
        let namespaces = ok(version, &server, &["get", "namespaces", "-o", "name"]);
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            assert!(
                namespaces.contains(&format!("namespace/{ns}\n")),
                "{version}: {namespaces}"
            );
        }
        let resources = ok(version, &server, &["api-resources"]);
        for line in [
            "deployments",
            "deploy",
            "apps/v1",
            "horizontalpodautoscalers",
        ] {
            assert!(
                resources.contains(line),
                "{version}: api-resources lacks {line}: {resources}"
            );
        }
        // Short names resolve through discovery.
        ok(version, &server, &["get", "deploy", "-n", "kube-system"]);
    }
}

#[test]
fn kubectl_creates_lists_selects_and_deletes_objects() {
    let server = Server::start();
    for version in KUBECTL_VERSIONS {
        let ns = format!("team-{}", version.replace('.', "-"));
        let manifest = write(
            server.dir.path(),
            &format!("{ns}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n\
                 apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  namespace: {ns}\n  labels: {{app: web}}\ndata:\n  color: blue\n---\n\
                 apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: db\n  namespace: {ns}\n  labels: {{app: db}}\ndata:\n  size: large\n"
            ),
        );
        let manifest = manifest.to_str().unwrap();
        let created = ok(version, &server, &["create", "-f", manifest]);
        assert!(
            created.contains(&format!("namespace/{ns} created")),
            "{created}"
        );
        assert!(created.contains("configmap/web created"), "{created}");

        let json = ok(
            version,
            &server,
            &["get", "configmap", "web", "-n", &ns, "-o", "json"],
        );
        let object: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(object["data"]["color"], "blue");
        assert_eq!(object["metadata"]["namespace"], ns.as_str());
        assert!(
            object["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| u.len() == 36)
        );
        assert!(
            object["metadata"]["resourceVersion"]
                .as_str()
                .is_some_and(|rv| rv.parse::<u64>().is_ok())
        );

        let selected = ok(
            version,
            &server,
            &["get", "cm", "-n", &ns, "-l", "app in (web)", "-o", "name"],
        );
        assert_eq!(selected, "configmap/web\n");
        let jsonpath = ok(
            version,
            &server,
            &["get", "cm", "db", "-n", &ns, "-o", "jsonpath={.data.size}"],
        );
        assert_eq!(jsonpath, "large");

        // Creating it again is a conflict; a missing one is NotFound.
        let again = kubectl(version, &server, &["create", "-f", manifest]);
        assert!(!again.status.success());
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("AlreadyExists"),
            "{again:?}"
        );
        ok(version, &server, &["delete", "configmap", "web", "-n", &ns]);
        let gone = kubectl(version, &server, &["get", "configmap", "web", "-n", &ns]);
        assert!(!gone.status.success());
        assert!(
            String::from_utf8_lossy(&gone.stderr).contains(r#"configmaps "web" not found"#),
            "{gone:?}"
        );
    }
    // Objects need their namespace.
    let orphan = write(
        server.dir.path(),
        "orphan.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: nowhere\n",
    );
    let out = kubectl("1.33", &server, &["create", "-f", orphan.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(r#"namespaces "nowhere" not found"#),
        "{out:?}"
    );
}

#[test]
fn kubectl_watch_sees_changes() {
    let server = Server::start();
    let binary = kubectl_dir().join("kubectl.1.33");
    let mut watch = Command::new(binary)
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(["get", "configmaps", "--watch-only", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let manifest = write(
        server.dir.path(),
        "watched.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: b\n",
    );
    // kubectl lists before it watches: keep creating until the watch has started and sees one.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attempt = 0;
    let line = loop {
        let name = format!("watched-{attempt}");
        let text = std::fs::read_to_string(&manifest)
            .unwrap()
            .replace("name: watched", &format!("name: {name}"));
        let file = write(server.dir.path(), &format!("{name}.yaml"), &text);
        ok("1.33", &server, &["create", "-f", file.to_str().unwrap()]);
        // Every namespace has its `kube-root-ca.crt`, made by a controller at start: not ours.
        if let Some(line) = seen
            .recv_timeout(Duration::from_secs(2))
            .into_iter()
            .chain(seen.try_iter())
            .find(|l| l != "configmap/kube-root-ca.crt")
        {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "the watch saw nothing within 20 s"
        );
        attempt += 1;
    };
    assert!(line.starts_with("configmap/watched-"), "{line}");
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn requests_without_credentials_are_refused_except_health_and_version() {
    let server = Server::start();
    let (code, body) = curl(&server.url("/api/v1/namespaces"), &[]);
    assert_eq!(code, 401, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Unauthorized"))
    );
    let (code, _) = curl(
        &server.url("/api/v1/namespaces"),
        &["-H", "Authorization: Bearer not-a-token"],
    );
    assert_eq!(code, 401);
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let (code, body) = curl(&server.url(path), &[]);
        assert_eq!(code, 200, "{path}: {body}");
    }
    let (_, version) = curl(&server.url("/version"), &[]);
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["minor"], "33");
}

#[test]
fn bad_requests_get_the_status_kubernetes_returns() {
    let server = Server::start();
    // The admin token works as a bearer token.
    let tokens: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(server.dir.path().join("tokens")).unwrap())
            .unwrap();
    let token = tokens[0]["token"].as_str().unwrap().to_string();
    let auth = format!("Authorization: Bearer {token}");
    let (code, body) = curl(
        &server.url("/api/v1/namespaces/default/configmaps"),
        &["-H", &auth],
    );
    assert_eq!(code, 200, "{body}");
    let post = |path: &str, body: &str, content_type: &str| {
        curl(
            &server.url(path),
            &[
                "-H",
                &auth,
                "-H",
                &format!("Content-Type: {content_type}"),
                "-X",
                "POST",
                "-d",
                body,
            ],
        )
    };
    let cases = [
        (
            "/api/v1/namespaces/default/configmaps",
            "{not json",
            "application/json",
            400,
            "BadRequest",
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"a"}}"#,
            "application/json",
            400,
            "BadRequest",
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            r#"{"metadata":{"name":"Not_A_Name"}}"#,
            "application/json",
            422,
            "Invalid",
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            r#"{"metadata":{}}"#,
            "application/json",
            422,
            "Invalid",
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            r#"{"metadata":{"name":"a"}}"#,
            "application/cbor",
            415,
            "UnsupportedMediaType",
        ),
        // JSON text labelled as protobuf lacks the `k8s\0` envelope.
        (
            "/api/v1/namespaces/default/configmaps",
            r#"{"metadata":{"name":"a"}}"#,
            "application/vnd.kubernetes.protobuf",
            400,
            "BadRequest",
        ),
        (
            "/api/v1/namespaces/default/widgets",
            r#"{"metadata":{"name":"a"}}"#,
            "application/json",
            404,
            "NotFound",
        ),
    ];
    for (path, body, content_type, code, reason) in cases {
        let (got, answer) = post(path, body, content_type);
        let status: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        assert_eq!(
            (got, status["reason"].as_str()),
            (code, Some(reason)),
            "{path} {body}: {answer}"
        );
    }
    // Nothing of that was stored.
    let (_, list) = curl(
        &server.url("/api/v1/namespaces/default/configmaps"),
        &["-H", &auth],
    );
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let stored: Vec<&serde_json::Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["metadata"]["name"] != "kube-root-ca.crt")
        .collect();
    assert!(stored.is_empty(), "{list}");
    // generateName makes a name; a body over 3 MiB is refused.
    let (code, created) = post(
        "/api/v1/namespaces/default/configmaps",
        r#"{"metadata":{"generateName":"gen-"}}"#,
        "application/json",
    );
    assert_eq!(code, 201, "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert!(
        created["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("gen-")
    );
    let big = server.dir.path().join("big.json");
    std::fs::write(
        &big,
        format!(
            r#"{{"metadata":{{"name":"big"}},"data":{{"x":"{}"}}}}"#,
            "x".repeat(4 << 20)
        ),
    )
    .unwrap();
    let (code, answer) = curl(
        &server.url("/api/v1/namespaces/default/configmaps"),
        &[
            // Over HTTP/2 curl reports the early answer to an upload as a failure ("stream closed").
            "--http1.1",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", big.display()),
        ],
    );
    assert_eq!(code, 413, "{answer}");
}

#[test]
fn kubectl_apply_twice_patches_and_prints_tables() {
    let server = Server::start();
    let manifest = |image: &str, env: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {{app: web}}\nspec:\n  replicas: 2\n  \
             selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      \
             containers:\n      - name: web\n        image: {image}\n        env: [{env}]\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  type: NodePort\n  selector: {{app: web}}\n  \
             ports: [{{port: 80, targetPort: 8080, nodePort: 30080}}]\n"
        )
    };
    for version in KUBECTL_VERSIONS {
        let first = write(
            server.dir.path(),
            "v1.yaml",
            &manifest(
                "busybox:1",
                r#"{name: A, value: "1"}, {name: B, value: "2"}"#,
            ),
        );
        let out = ok(
            version,
            &server,
            &["apply", "-n", "default", "-f", first.to_str().unwrap()],
        );
        assert!(out.contains("deployment.apps/web"), "{out}");
        // Applying a change: a strategic merge patch that changes the image and removes one variable.
        let second = write(
            server.dir.path(),
            "v2.yaml",
            &manifest("busybox:2", r#"{name: A, value: "1"}"#),
        );
        let out = ok(
            version,
            &server,
            &["apply", "-n", "default", "-f", second.to_str().unwrap()],
        );
        assert!(out.contains("deployment.apps/web configured"), "{out}");
        let template = ok(
            version,
            &server,
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[*].name}",
            ],
        );
        assert_eq!(template, "busybox:2 A");
        // Tables: the columns kubectl users know.
        let table = ok(version, &server, &["get", "deploy,svc"]);
        assert!(
            table.contains("READY") && table.contains("UP-TO-DATE") && table.contains("0/2"),
            "{table}"
        );
        assert!(
            table.contains("80:30080/TCP") && table.contains("NodePort"),
            "{table}"
        );
        // Merge patches (label, annotate) and the three --type values of kubectl patch.
        ok(
            version,
            &server,
            &["label", "deploy", "web", "tier=front", "--overwrite"],
        );
        ok(
            version,
            &server,
            &["annotate", "deploy", "web", "note=hi", "--overwrite"],
        );
        ok(
            version,
            &server,
            &[
                "patch",
                "deploy",
                "web",
                "--type=json",
                "-p",
                r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#,
            ],
        );
        ok(
            version,
            &server,
            &[
                "patch",
                "deploy",
                "web",
                "--type=merge",
                "-p",
                r#"{"spec":{"minReadySeconds":3}}"#,
            ],
        );
        ok(
            version,
            &server,
            &[
                "patch",
                "deploy",
                "web",
                "-p",
                r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"busybox:3"}]}}}}"#,
            ],
        );
        let fields = ok(
            version,
            &server,
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.metadata.labels.tier} {.metadata.annotations.note} {.spec.replicas} {.spec.minReadySeconds} {.spec.template.spec.containers[0].image}",
            ],
        );
        assert_eq!(fields, "front hi 5 3 busybox:3");
        ok(
            version,
            &server,
            &["delete", "-f", second.to_str().unwrap()],
        );
    }
    // A JSON patch whose test fails changes nothing.
    let admin = ["create", "-f"];
    let cm = write(
        server.dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n",
    );
    ok(
        "1.33",
        &server,
        &[&admin[..], &[cm.to_str().unwrap()]].concat(),
    );
    let failed = kubectl(
        "1.33",
        &server,
        &[
            "patch",
            "cm",
            "c",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/data/a","value":"x"},{"op":"remove","path":"/data/a"}]"#,
        ],
    );
    assert!(!failed.status.success());
    assert_eq!(
        ok(
            "1.33",
            &server,
            &["get", "cm", "c", "-o", "jsonpath={.data.a}"]
        ),
        "b"
    );
}

#[test]
fn kubectl_scale_and_the_status_subresource() {
    // No controllers: the Deployment's status is this test's to write.
    let server = Server::without_controllers();
    let deployment = write(
        server.dir.path(),
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  \
         template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: busybox}]\n",
    );
    ok(
        "1.33",
        &server,
        &["create", "-f", deployment.to_str().unwrap()],
    );
    for version in KUBECTL_VERSIONS {
        ok(
            version,
            &server,
            &["scale", "deploy", "web", "--replicas=3"],
        );
        // --current-replicas makes kubectl read and PUT the Scale with a precondition.
        ok(
            version,
            &server,
            &[
                "scale",
                "deploy",
                "web",
                "--current-replicas=3",
                "--replicas=4",
            ],
        );
        let stale = kubectl(
            version,
            &server,
            &[
                "scale",
                "deploy",
                "web",
                "--current-replicas=3",
                "--replicas=5",
            ],
        );
        assert!(!stale.status.success(), "a stale precondition must fail");
        assert_eq!(
            ok(
                version,
                &server,
                &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]
            ),
            "4"
        );
        ok(
            version,
            &server,
            &["scale", "deploy", "web", "--replicas=2"],
        );
    }
    let scale = ok(
        "1.33",
        &server,
        &[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        ],
    );
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(2))
    );
    assert_eq!(scale["status"]["selector"], "app=web");
    // The main resource cannot change the status; the status subresource changes nothing else.
    ok(
        "1.33",
        &server,
        &[
            "patch",
            "deploy",
            "web",
            "--type=merge",
            "-p",
            r#"{"status":{"replicas":9}}"#,
        ],
    );
    assert_eq!(
        ok(
            "1.33",
            &server,
            &["get", "deploy", "web", "-o", "jsonpath={.status.replicas}"]
        ),
        ""
    );
    ok(
        "1.33",
        &server,
        &[
            "patch",
            "deploy",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"replicas":2},"spec":{"replicas":7}}"#,
        ],
    );
    let fields = ok(
        "1.33",
        &server,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.status.replicas} {.spec.replicas}",
        ],
    );
    assert_eq!(fields, "2 2");
    // Kinds without the subresource do not have it.
    let missing = kubectl(
        "1.33",
        &server,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/configmaps/x/scale",
        ],
    );
    assert!(!missing.status.success());
}

#[test]
fn deleting_a_namespace_deletes_what_is_in_it() {
    let server = Server::start();
    let manifest = write(
        server.dir.path(),
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: scratch\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: scratch\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: scratch\nstringData:\n  k: v\n",
    );
    ok(
        "1.33",
        &server,
        &["create", "-f", manifest.to_str().unwrap()],
    );
    ok("1.33", &server, &["delete", "namespace", "scratch"]);
    let gone = kubectl("1.33", &server, &["get", "namespace", "scratch"]);
    assert!(!gone.status.success());
    // Created again, it starts empty: creating the same objects again does not conflict.
    ok(
        "1.33",
        &server,
        &["create", "-f", manifest.to_str().unwrap()],
    );
    ok(
        "1.33",
        &server,
        &["delete", "configmap", "a", "-n", "scratch"],
    );
    ok("1.33", &server, &["delete", "namespace", "scratch"]);
    let namespace = write(
        server.dir.path(),
        "ns-only.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: scratch\n",
    );
    ok(
        "1.33",
        &server,
        &["create", "-f", namespace.to_str().unwrap()],
    );
    // Only what every new namespace gets (its `kube-root-ca.crt`) is there.
    let left = ok(
        "1.33",
        &server,
        &["get", "all,cm,secrets", "-n", "scratch", "-o", "name"],
    );
    assert!(
        left.lines().all(|l| l == "configmap/kube-root-ca.crt"),
        "{left}"
    );
    // The cluster's own namespaces cannot be deleted.
    let refused = kubectl("1.33", &server, &["delete", "namespace", "kube-system"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("this namespace may not be deleted"),
        "{refused:?}"
    );
}

#[test]
fn kubectl_create_generators_send_protobuf_bodies() {
    // kubectl 1.32 and later send these as application/vnd.kubernetes.protobuf, with no JSON fallback.
    let server = Server::start();
    for version in ["1.32", "1.33"] {
        let ns = format!("proto-{}", version.replace('.', "-"));
        ok(version, &server, &["create", "namespace", &ns]);
        ok(
            version,
            &server,
            &[
                "create",
                "configmap",
                "cfg",
                "--from-literal=color=blue",
                "-n",
                &ns,
            ],
        );
        ok(
            version,
            &server,
            &[
                "create",
                "secret",
                "generic",
                "pw",
                "--from-literal=password=s3cret",
                "-n",
                &ns,
            ],
        );
        ok(
            version,
            &server,
            &[
                "create",
                "deployment",
                "web",
                "--image=busybox:1",
                "--replicas=3",
                "-n",
                &ns,
            ],
        );
        ok(
            version,
            &server,
            &[
                "create",
                "service",
                "clusterip",
                "web",
                "--tcp=80:8080",
                "-n",
                &ns,
            ],
        );
        ok(
            version,
            &server,
            &["create", "serviceaccount", "robot", "-n", &ns],
        );
        let fields = ok(
            version,
            &server,
            &[
                "get",
                "deploy",
                "web",
                "-n",
                &ns,
                "-o",
                "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}",
            ],
        );
        assert_eq!(fields, "3 busybox:1");
        // Kubernetes' defaults are filled in.
        let defaults = ok(
            version,
            &server,
            &[
                "get",
                "deploy",
                "web",
                "-n",
                &ns,
                "-o",
                "jsonpath={.spec.strategy.type} {.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.template.spec.containers[0].imagePullPolicy} {.spec.template.spec.dnsPolicy}",
            ],
        );
        assert_eq!(defaults, "RollingUpdate 25% 10 IfNotPresent ClusterFirst");
        assert_eq!(
            ok(
                version,
                &server,
                &[
                    "get",
                    "cm",
                    "cfg",
                    "-n",
                    &ns,
                    "-o",
                    "jsonpath={.data.color}"
                ]
            ),
            "blue"
        );
        // Secret data arrives as bytes and is stored base64-encoded, as JSON clients send it.
        assert_eq!(
            ok(
                version,
                &server,
                &[
                    "get",
                    "secret",
                    "pw",
                    "-n",
                    &ns,
                    "-o",
                    "jsonpath={.data.password}"
                ]
            ),
            "czNjcmV0"
        );
        let port = ok(
            version,
            &server,
            &[
                "get",
                "svc",
                "web",
                "-n",
                &ns,
                "-o",
                "jsonpath={.spec.ports[0].targetPort}",
            ],
        );
        assert_eq!(port, "8080");
    }
}

#[test]
#[allow(
    clippy::disallowed_methods,
    reason = "a plain blocking test polls the server"
)]
fn the_server_compacts_history_and_old_reads_are_gone() {
    let server = Server::start_with(&["--compaction-interval", "1"]);
    let cm = write(
        server.dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: \"1\"\n",
    );
    ok("1.33", &server, &["create", "-f", cm.to_str().unwrap()]);
    let old = ok(
        "1.33",
        &server,
        &[
            "get",
            "cm",
            "c",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
    );
    ok(
        "1.33",
        &server,
        &[
            "patch",
            "cm",
            "c",
            "--type=merge",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ],
    );
    // Within two intervals the revision of the first write is compacted: a read there is 410 Gone.
    let path = format!(
        "/api/v1/namespaces/default/configmaps?resourceVersion={old}&resourceVersionMatch=Exact"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = kubectl("1.33", &server, &["get", "--raw", &path]);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("Gone") || stderr.contains("too old resource version"),
                "{stderr}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing was compacted within 15 s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        ok(
            "1.33",
            &server,
            &["get", "cm", "c", "-o", "jsonpath={.data.a}"]
        ),
        "2"
    );
}

#[test]
fn metrics_count_requests_watches_and_store_latency() {
    let server = Server::start();
    ok("1.33", &server, &["get", "configmaps"]);
    let missing = kubectl("1.33", &server, &["get", "configmap", "nope"]);
    assert!(!missing.status.success());
    // /metrics needs credentials like every API path.
    let (code, _) = curl(&server.url("/metrics"), &[]);
    assert_eq!(code, 401);
    let metrics = ok("1.33", &server, &["get", "--raw", "/metrics"]);
    for line in [
        r#"apiserver_request_total{verb="list",resource="configmaps",code="200"} "#,
        r#"apiserver_request_total{verb="get",resource="configmaps",code="404"} 1"#,
        r#"apiserver_request_duration_seconds_count{verb="list",resource="configmaps"} "#,
        r#"gantry_store_request_duration_seconds_count{operation="range"} "#,
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
}

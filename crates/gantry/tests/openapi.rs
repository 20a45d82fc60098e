//! End to end: the OpenAPI documents as kubectl 1.27, 1.30 and 1.33 use them: `explain` (v3 on all three, v2
//! protobuf on 1.27 with `--output plaintext-openapiv2`), and `apply -f` without `--validate=false` (1.27 parses
//! `/openapi/v2` first and fails without it; all three then trust the server's field validation because each
//! v3 PATCH operation lists `fieldValidation`), twice, the second time computing a strategic merge patch from
//! the v3 schemas' merge keys.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

const KUBECTL_VERSIONS: &[&str] = &["1.27", "1.30", "1.33"];

mod support;

use support::{Server, kubectl, write};

/// Runs kubectl and returns its stdout, failing the test (with stderr) if it fails or warns.
fn ok(version: &str, server: &Server, args: &[&str]) -> String {
    let out = kubectl(version, server, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubectl {version} {args:?} failed: {}{stderr}",
        String::from_utf8_lossy(&out.stdout),
    );
    assert!(
        !stderr.to_lowercase().contains("warning"),
        "kubectl {version} {args:?} warned: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A Namespace, Deployment, Service, ConfigMap, Secret and Job in namespace `ns`.
fn manifest(ns: &str, replicas: u32, env: &str, color: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: "25%"}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
        env: {env}
        resources:
          limits: {{cpu: 500m, memory: 128Mi}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: 80}}
  - {{name: alt, port: 8080, targetPort: http}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
data:
  color: {color}
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: {ns}
type: Opaque
stringData:
  password: hunter2
data:
  token: dG9rZW4=
---
apiVersion: batch/v1
kind: Job
metadata:
  name: once
  namespace: {ns}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: run
        image: busybox
        command: ["true"]
"#
    )
}

#[test]
fn explain_prints_upstream_descriptions_and_fields() {
    let server = Server::start();
    for version in KUBECTL_VERSIONS {
        let strategy = ok(version, &server, &["explain", "deployment.spec.strategy"]);
        for text in [
            "KIND:       Deployment",
            "FIELD: strategy <DeploymentStrategy>",
            "The deployment strategy to use to replace existing pods with new ones.",
            "rollingUpdate\t<RollingUpdateDeployment>",
            "Rolling update config params.",
            "type\t<string>",
            "Type of deployment. Can be \"Recreate\" or \"RollingUpdate\".",
        ] {
            assert!(
                strategy.contains(text),
                "{version}: no {text:?} in\n{strategy}"
            );
        }
        let pods = ok(version, &server, &["explain", "pods"]);
        for text in [
            "KIND:       Pod",
            "Pod is a collection of containers that can run on a host.",
            "spec\t<PodSpec>",
            "status\t<PodStatus>",
        ] {
            assert!(pods.contains(text), "{version}: no {text:?} in\n{pods}");
        }
        let target_port = ok(
            version,
            &server,
            &["explain", "service.spec.ports.targetPort"],
        );
        assert!(
            target_port.contains("FIELD: targetPort <IntOrString>"),
            "{version}: {target_port}"
        );
        let missing = kubectl(version, &server, &["explain", "deployment.spec.nope"]);
        assert!(!missing.status.success());
        assert!(
            String::from_utf8_lossy(&missing.stderr).contains("field \"nope\" does not exist"),
            "{version}: {}",
            String::from_utf8_lossy(&missing.stderr)
        );
    }
    // kubectl 1.27's older explain reads the v2 protobuf document.
    let v2 = ok(
        "1.27",
        &server,
        &[
            "explain",
            "deployment.spec.strategy",
            "--output",
            "plaintext-openapiv2",
        ],
    );
    for text in [
        "RESOURCE: strategy <Object>",
        "DeploymentStrategy describes how to replace existing pods with new ones.",
        "rollingUpdate\t<Object>",
    ] {
        assert!(v2.contains(text), "1.27 v2: no {text:?} in\n{v2}");
    }
}

#[test]
fn apply_validates_without_validate_false_and_patches_with_merge_keys() {
    let server = Server::start();
    for version in KUBECTL_VERSIONS {
        let ns = format!("shop-{}", version.replace('.', "-"));
        let env = r#"[{name: A, value: "1"}, {name: B, value: "2"}]"#;
        let first = write(
            server.dir.path(),
            &format!("{ns}.yaml"),
            &manifest(&ns, 2, env, "blue"),
        );
        let created = ok(version, &server, &["apply", "-f", first.to_str().unwrap()]);
        for line in [
            format!("namespace/{ns} created"),
            "deployment.apps/web created".into(),
            "service/web created".into(),
            "configmap/settings created".into(),
            "secret/creds created".into(),
            "job.batch/once created".into(),
        ] {
            assert!(
                created.contains(&line),
                "{version}: no {line:?} in\n{created}"
            );
        }
        // Changed: replicas, env B dropped (an SMP `$patch: delete` by the merge key `name`), data.
        let second = write(
            server.dir.path(),
            &format!("{ns}-changed.yaml"),
            &manifest(&ns, 3, r#"[{name: A, value: "1"}]"#, "red"),
        );
        let applied = ok(version, &server, &["apply", "-f", second.to_str().unwrap()]);
        assert!(
            applied.contains("deployment.apps/web configured")
                && applied.contains("configmap/settings configured")
                && applied.contains("service/web unchanged"),
            "{version}: {applied}"
        );
        let deployment = ok(
            version,
            &server,
            &[
                "get",
                "deployment",
                "web",
                "-n",
                &ns,
                "-o",
                "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].env}",
            ],
        );
        assert_eq!(deployment, r#"3 [{"name":"A","value":"1"}]"#, "{version}");
        // And back: B returns.
        ok(version, &server, &["apply", "-f", first.to_str().unwrap()]);
        let env = ok(
            version,
            &server,
            &[
                "get",
                "deployment",
                "web",
                "-n",
                &ns,
                "-o",
                "jsonpath={.spec.template.spec.containers[0].env[*].name}",
            ],
        );
        assert_eq!(env, "A B", "{version}");
        // create -f validates the same way.
        let config = write(
            server.dir.path(),
            &format!("{ns}-cm.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: {ns}\ndata:\n  a: b\n"
            ),
        );
        let out = ok(
            version,
            &server,
            &["create", "-f", config.to_str().unwrap()],
        );
        assert!(out.contains("configmap/extra created"), "{version}: {out}");
    }
}

/// Status code and content type of an authenticated GET with `accept`, and the body.
fn fetch(server: &Server, path: &str, accept: &str) -> (u16, String, Vec<u8>) {
    let tokens: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(server.dir.path().join("tokens")).unwrap())
            .unwrap();
    let token = tokens[0]["token"].as_str().unwrap();
    let body = server.dir.path().join("body");
    let out = Command::new("curl")
        .args(["-sk", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code} %{content_type}"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", &format!("Accept: {accept}")])
        .arg(server.url(path))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (code, content_type) = text.split_once(' ').unwrap();
    (
        code.parse().unwrap(),
        content_type.to_string(),
        std::fs::read(&body).unwrap(),
    )
}

#[test]
fn openapi_v2_answers_protobuf_or_json_by_accept_and_v3_lists_group_versions() {
    let server = Server::start();
    let (code, content_type, body) = fetch(
        &server,
        "/openapi/v2",
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    );
    assert_eq!(code, 200);
    assert_eq!(
        content_type,
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    assert_eq!(
        &body[..5],
        b"\n\x032.0",
        "field 1 (swagger) = \"2.0\" first"
    );
    let (code, content_type, body) = fetch(&server, "/openapi/v2", "application/json");
    assert_eq!((code, content_type.as_str()), (200, "application/json"));
    let v2: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v2["swagger"], "2.0");
    assert_eq!(
        v2["definitions"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
    let (code, _, _) = fetch(&server, "/openapi/v2", "application/yaml");
    assert_eq!(code, 406);

    let (code, _, body) = fetch(&server, "/openapi/v3", "application/json");
    assert_eq!(code, 200);
    let root: serde_json::Value = serde_json::from_slice(&body).unwrap();
    for path in [
        "api/v1",
        "apis/apps/v1",
        "apis/batch/v1",
        "apis/rbac.authorization.k8s.io/v1",
    ] {
        let url = root["paths"][path]["serverRelativeURL"].as_str().unwrap();
        let (code, _, body) = fetch(&server, url, "application/json");
        assert_eq!(code, 200, "{url}");
        let document: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(document["openapi"], "3.0.0", "{url}");
        assert!(
            !document["components"]["schemas"]
                .as_object()
                .unwrap()
                .is_empty()
        );
    }
}

/// Needs the REST engine to enforce `fieldValidation=Strict` with `unknown_fields`: every kubectl version here
/// trusts the server (1.27 and 1.28 too, through their v3 query-parameter check) and sends the object as is.
#[test]
fn unknown_fields_are_refused() {
    let server = Server::start();
    for version in KUBECTL_VERSIONS {
        let bad = write(
            server.dir.path(),
            &format!("bad-{version}.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\n  namespace: default\n\
             spec:\n  bogusField: 1\n  selector:\n    matchLabels: {app: bad}\n  template:\n    metadata:\n      \
             labels: {app: bad}\n    spec:\n      containers:\n      - {name: nginx, image: nginx}\n",
        );
        let out = kubectl(version, &server, &["apply", "-f", bad.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{version}: accepted");
        assert!(
            stderr.contains(r#"unknown field "spec.bogusField""#),
            "{version}: {stderr}"
        );
    }
}

//! End to end: volumes with real kubectl 1.33 and pods run as real containers. ConfigMap, Secret,
//! downwardAPI and projected volumes show their objects and change in place, immutable ones are read once (a
//! missing key keeps the pod waiting with a FailedMount event until it exists) and a projected service
//! account token authenticates;
//! hostPath types are checked, subPath and subPathExpr mount parts of a volume, a preStop hook copies an
//! emptyDir to a hostPath before the pod goes, HostToContainer propagation shows the host's later mounts, and
//! an NFS volume the node cannot mount says why; claims of
//! the default `local-path` class are provisioned on the node, keep a Deployment's data across its deletion,
//! grow when asked, serve generic ephemeral volumes, hold their deletion while a pod uses them and give their directory back when deleted,
//! while a Retain volume keeps its data; StatefulSet ordinals keep their claims across a scale down and up;
//! pods over their emptyDir `sizeLimit` or `ephemeral-storage` limit are evicted.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::node::{
    IMAGE, KUBECTL, Node, describe_until, node_name, server, server_with, wait_for,
};
use support::{Server, kubectl, ok, write};

fn get(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&ok(KUBECTL, server, &all)).unwrap()
}

fn apply(server: &Server, name: &str, manifest: &str) {
    let path = write(server.dir.path(), name, manifest);
    ok(KUBECTL, server, &["apply", "-f", path.to_str().unwrap()]);
}

/// What `command` prints in the pod's (first) container.
fn exec(server: &Server, pod: &str, command: &str) -> String {
    let out = ok(KUBECTL, server, &["exec", pod, "--", "sh", "-c", command]);
    out.trim_end().to_owned()
}

/// Waits until `check` gives a value (within `limit`), which it returns.
fn until<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn running(server: &Server, pod: &str) -> Value {
    wait_for(server, pod, Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Running" && p["status"]["containerStatuses"][0]["ready"] == true
    })
}

/// The messages of the events about the object `name` whose reason is `reason`.
fn events(server: &Server, name: &str, reason: &str) -> Vec<String> {
    let list = get(
        server,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name},reason={reason}"),
        ],
    );
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn pod_manifest(name: &str, volumes: &str, mounts: &str, command: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}, tier: one}}, annotations: {{note: first}}}}
spec:
  terminationGracePeriodSeconds: 1
  volumes: {volumes}
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, {command:?}]
    resources: {{limits: {{memory: 64Mi}}}}
    volumeMounts: {mounts}
"#
    )
}

#[test]
fn configuration_volumes_show_their_objects_and_change_in_place() {
    let server = server("10.51.0.0/24", "gtest51");
    ok(
        KUBECTL,
        &server,
        &[
            "create",
            "configmap",
            "settings",
            "--from-literal=colour=blue",
            "--from-literal=size=9",
        ],
    );
    ok(
        KUBECTL,
        &server,
        &[
            "create",
            "secret",
            "generic",
            "password",
            "--from-literal=value=s3cret",
        ],
    );
    let frozen = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: frozen}}\nimmutable: true\ndata: {{v: {value}}}\n"
        )
    };
    apply(&server, "frozen.yaml", &frozen("one"));
    let volumes = r#"
  - {name: frozen, configMap: {name: frozen}}
  - {name: settings, configMap: {name: settings, items: [{key: colour, path: deep/colour, mode: 0600}]}}
  - {name: password, secret: {secretName: password, defaultMode: 0400}}
  - name: facts
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: memory, resourceFieldRef: {containerName: main, resource: limits.memory, divisor: 1Mi}}
  - name: all
    projected:
      sources:
      - configMap: {name: settings, items: [{key: size, path: size}]}
      - secret: {name: password}
      - downwardAPI: {items: [{path: ns, fieldRef: {fieldPath: metadata.namespace}}]}
  - {name: missing, configMap: {name: settings, items: [{key: shape, path: shape}]}}
  - name: api-access
    projected:
      sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3600}
      - configMap: {name: kube-root-ca.crt, items: [{key: ca.crt, path: ca.crt}]}"#;
    let mounts = r#"
    - {name: frozen, mountPath: /etc/frozen}
    - {name: settings, mountPath: /etc/settings}
    - {name: password, mountPath: /etc/password}
    - {name: facts, mountPath: /etc/facts}
    - {name: all, mountPath: /etc/all}
    - {name: missing, mountPath: /etc/missing}
    - {name: api-access, mountPath: /var/run/secrets/kubernetes.io/serviceaccount}"#;
    apply(
        &server,
        "reader.yaml",
        &pod_manifest("reader", volumes, mounts, "sleep 3600"),
    );
    // The key `shape` is not in the ConfigMap and the volume is not optional: the pod waits, saying why.
    describe_until(
        &server,
        "reader",
        Duration::from_secs(30),
        &[
            "FailedMount",
            "MountVolume.SetUp failed for volume \"missing\" : configmap references non-existent config key: shape",
        ],
    );
    assert_eq!(
        get(&server, &["get", "pod", "reader"])["status"]["phase"],
        "Pending"
    );
    ok(
        KUBECTL,
        &server,
        &[
            "patch",
            "configmap",
            "settings",
            "-p",
            r#"{"data":{"shape":"round"}}"#,
        ],
    );
    running(&server, "reader");
    let read = |path: &str| exec(&server, "reader", &format!("cat {path}"));
    assert_eq!(read("/etc/settings/deep/colour"), "blue");
    assert_eq!(read("/etc/missing/shape"), "round");
    assert_eq!(read("/etc/password/value"), "s3cret");
    assert_eq!(read("/etc/facts/name"), "reader");
    assert_eq!(read("/etc/facts/labels"), "app=\"reader\"\ntier=\"one\"");
    assert_eq!(read("/etc/facts/memory"), "64");
    assert_eq!(read("/etc/all/size"), "9");
    assert_eq!(read("/etc/all/value"), "s3cret");
    assert_eq!(read("/etc/all/ns"), "default");
    // The service account token and the cluster CA, as in-cluster clients read them: the token authenticates
    // as the pod's service account.
    let token = read("/var/run/secrets/kubernetes.io/serviceaccount/token");
    assert!(
        read("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let (code, body) = support::curl(
        &server.url("/apis/authentication.k8s.io/v1/selfsubjectreviews"),
        &[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#,
        ],
    );
    assert_eq!(code, 201, "{body}");
    assert!(
        body.contains("system:serviceaccount:default:default"),
        "{body}"
    );
    // Modes as asked (the files are links into `..data`, as the kubelet lays them out).
    assert_eq!(
        exec(&server, "reader", "stat -L -c %a /etc/settings/deep/colour"),
        "600"
    );
    assert_eq!(
        exec(&server, "reader", "stat -L -c %a /etc/password/value"),
        "400"
    );
    assert!(exec(&server, "reader", "ls -a /etc/password").contains("..data"));
    // Secrets live on tmpfs on the node, never on its disk.
    let mounts = exec(&server, "reader", "cat /proc/mounts");
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" /etc/password ") && l.starts_with("tmpfs")),
        "{mounts}"
    );
    // Volumes the API fills are read-only.
    assert!(
        kubectl(
            KUBECTL,
            &server,
            &["exec", "reader", "--", "touch", "/etc/settings/x"]
        )
        .status
        .code()
            != Some(0)
    );

    // Changes reach the files in place, each within 2 s of the API write.
    let changed = |what: &str, path: &str, expected: &str| {
        let start = Instant::now();
        until(Duration::from_secs(2), what, || {
            (read(path) == expected).then_some(())
        });
        eprintln!("{what}: {:?}", start.elapsed());
    };
    ok(
        KUBECTL,
        &server,
        &[
            "patch",
            "secret",
            "password",
            "-p",
            r#"{"stringData":{"value":"n3w"}}"#,
        ],
    );
    changed("the secret's new value", "/etc/password/value", "n3w");
    changed("the projected secret's new value", "/etc/all/value", "n3w");
    ok(
        KUBECTL,
        &server,
        &[
            "patch",
            "configmap",
            "settings",
            "-p",
            r#"{"data":{"colour":"red"}}"#,
        ],
    );
    changed(
        "the configmap's new value",
        "/etc/settings/deep/colour",
        "red",
    );
    ok(
        KUBECTL,
        &server,
        &["label", "pod", "reader", "tier=two", "--overwrite"],
    );
    changed(
        "the pod's new labels",
        "/etc/facts/labels",
        "app=\"reader\"\ntier=\"two\"",
    );

    // An immutable ConfigMap is read once: replaced by another of the same name, the pod keeps the first.
    assert_eq!(read("/etc/frozen/v"), "one");
    ok(KUBECTL, &server, &["delete", "configmap", "frozen"]);
    apply(&server, "frozen.yaml", &frozen("two"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(read("/etc/frozen/v"), "one");

    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "reader", "--wait=false"],
    );
}

#[test]
fn host_paths_sub_paths_and_a_pre_stop_backup() {
    let server = server("10.52.0.0/24", "gtest52");
    let host = tempfile::tempdir().unwrap();
    let host_dir = host.path().to_str().unwrap().to_owned();
    std::fs::write(host.path().join("motd"), "hello from the host").unwrap();
    // A hostPath that must be a file but is missing: the pod waits, saying why.
    let volumes = format!(
        r#"
  - {{name: wrong, hostPath: {{path: {host_dir}/absent, type: File}}}}"#
    );
    apply(
        &server,
        "wrong.yaml",
        &pod_manifest(
            "wrong",
            &volumes,
            "[{name: wrong, mountPath: /wrong}]",
            "sleep 3600",
        ),
    );
    describe_until(
        &server,
        "wrong",
        Duration::from_secs(30),
        &["FailedMount", "hostPath type check failed", "is not a file"],
    );
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "wrong", "--wait=false"],
    );

    let volumes = format!(
        r#"
  - {{name: backup, hostPath: {{path: {host_dir}/backup, type: DirectoryOrCreate}}}}
  - {{name: motd, hostPath: {{path: {host_dir}/motd, type: File}}}}
  - {{name: work, emptyDir: {{}}}}"#
    );
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: worker}}
spec:
  terminationGracePeriodSeconds: 10
  volumes: {volumes}
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    env: [{{name: POD, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
    command: [sh, -c, "echo result > /work/out; mkdir -p /work/logs; echo line > /per-pod/log; sleep 3600"]
    lifecycle: {{preStop: {{exec: {{command: [sh, -c, "cp -r /work/. /backup/"]}}}}}}
    volumeMounts:
    - {{name: work, mountPath: /work}}
    - {{name: work, mountPath: /per-pod, subPathExpr: "logs/$(POD)"}}
    - {{name: backup, mountPath: /backup}}
    - {{name: motd, mountPath: /etc/motd, readOnly: true}}
"#
    );
    apply(&server, "worker.yaml", &manifest);
    running(&server, "worker");
    assert!(
        host.path().join("backup").is_dir(),
        "DirectoryOrCreate made no directory"
    );
    assert_eq!(
        exec(&server, "worker", "cat /etc/motd"),
        "hello from the host"
    );
    assert!(
        kubectl(
            KUBECTL,
            &server,
            &["exec", "worker", "--", "sh", "-c", "echo x > /etc/motd"]
        )
        .status
        .code()
            != Some(0)
    );
    // subPathExpr: the container's `logs/worker` inside the emptyDir.
    until(Duration::from_secs(10), "the sub path written", || {
        (exec(&server, "worker", "cat /work/logs/worker/log 2>/dev/null") == "line").then_some(())
    });
    // The preStop hook runs while the volumes are still there: the emptyDir is copied to the host.
    ok(KUBECTL, &server, &["delete", "pod", "worker"]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("backup/out"))
            .unwrap()
            .trim(),
        "result"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("backup/logs/worker/log"))
            .unwrap()
            .trim(),
        "line"
    );
    // The host's files are left alone when the pod goes.
    assert!(host.path().join("motd").exists());

    // Mount propagation: what the host mounts under a shared hostPath appears in a HostToContainer mount, not
    // in a private one of the same directory.
    let shared = host.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let run = |args: &[&str]| {
        assert!(
            std::process::Command::new(args[0])
                .args(&args[1..])
                .status()
                .unwrap()
                .success(),
            "{args:?}"
        )
    };
    let shared_path = shared.to_str().unwrap();
    run(&["mount", "--bind", shared_path, shared_path]);
    run(&["mount", "--make-rshared", shared_path]);
    let volumes = format!(
        r#"
  - {{name: shared, hostPath: {{path: {shared_path}}}}}"#
    );
    let mounts = r#"
    - {name: shared, mountPath: /following, mountPropagation: HostToContainer}
    - {name: shared, mountPath: /private}"#;
    apply(
        &server,
        "propagation.yaml",
        &pod_manifest("propagation", &volumes, mounts, "sleep 3600"),
    );
    running(&server, "propagation");
    let sub = shared.join("sub");
    std::fs::create_dir(&sub).unwrap();
    run(&["mount", "-t", "tmpfs", "tmpfs", sub.to_str().unwrap()]);
    std::fs::write(sub.join("f"), "mounted later").unwrap();
    let seen = exec(&server, "propagation", "cat /following/sub/f");
    let private = exec(&server, "propagation", "ls /private/sub");
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", "propagation", "--wait=false"],
    );
    run(&["umount", "-R", shared_path]);
    assert_eq!(seen, "mounted later");
    assert_eq!(private, "", "the private mount saw the host's new mount");

    // NFS needs what this node lacks: the pod waits, and the event says what is missing.
    apply(
        &server,
        "nfs.yaml",
        &pod_manifest(
            "nfs",
            "[{name: share, nfs: {server: 127.0.0.1, path: /exports}}]",
            "[{name: share, mountPath: /share}]",
            "sleep 3600",
        ),
    );
    describe_until(
        &server,
        "nfs",
        Duration::from_secs(30),
        &[
            "FailedMount",
            "MountVolume.SetUp failed for volume \"share\"",
            "NFS",
        ],
    );
}

fn claim_manifest(name: &str, size: &str, class: Option<&str>) -> String {
    let class = class.map_or(String::new(), |c| format!("\n  storageClassName: {c}"));
    format!(
        r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: {size}}}}}{class}
"#
    )
}

fn writer_deployment() -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: writer}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: writer}}}}
  template:
    metadata: {{labels: {{app: writer}}}}
    spec:
      terminationGracePeriodSeconds: 1
      volumes: [{{name: data, persistentVolumeClaim: {{claimName: data}}}}]
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [sh, -c, "date +%s%N >> /data/runs; sleep 3600"]
        volumeMounts: [{{name: data, mountPath: /data}}]
"#
    )
}

fn deployment_pod(server: &Server) -> String {
    until(Duration::from_secs(60), "a running writer pod", || {
        let pods = get(server, &["get", "pods", "-l", "app=writer"]);
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                p["status"]["phase"] == "Running"
                    && p["metadata"]["deletionTimestamp"].is_null()
                    && p["status"]["containerStatuses"][0]["ready"] == true
            })
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
    })
}

fn phase(server: &Server, kind: &str, name: &str) -> String {
    let object = get(server, &["get", kind, name]);
    object["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn claims_are_provisioned_on_the_node_and_keep_data_across_pods() {
    let storage = tempfile::tempdir().unwrap();
    let storage_dir = storage.path().to_str().unwrap().to_owned();
    let server = server_with("10.53.0.0/24", "gtest53", &["--storage-dir", &storage_dir]);
    // The default class is the built-in provisioner's, binding once a pod uses the claim.
    let class = get(&server, &["get", "storageclass", "local-path"]);
    assert_eq!(class["provisioner"], "gantry.io/local-path");
    assert_eq!(class["volumeBindingMode"], "WaitForFirstConsumer");
    apply(&server, "claim.yaml", &claim_manifest("data", "1Gi", None));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(phase(&server, "pvc", "data"), "Pending");
    apply(&server, "writer.yaml", &writer_deployment());
    let first = deployment_pod(&server);
    let claim = get(&server, &["get", "pvc", "data"]);
    assert_eq!(claim["status"]["phase"], "Bound");
    assert_eq!(claim["spec"]["storageClassName"], "local-path");
    let volume = claim["spec"]["volumeName"].as_str().unwrap().to_owned();
    let pv = get(&server, &["get", "pv", &volume]);
    assert_eq!(pv["spec"]["claimRef"]["name"], "data");
    let path = pv["spec"]["hostPath"]["path"].as_str().unwrap().to_owned();
    assert!(path.starts_with(&storage_dir), "{path}");
    assert!(
        pv["spec"]["nodeAffinity"]["required"]
            .to_string()
            .contains(&node_name()),
        "{pv:#}"
    );
    // The data outlives the Deployment: a new one finds the first run's line and adds its own.
    ok(KUBECTL, &server, &["delete", "deployment", "writer"]);
    until(Duration::from_secs(30), "the first pod gone", || {
        kubectl(KUBECTL, &server, &["get", "pod", &first])
            .status
            .code()
            .is_some_and(|c| c != 0)
            .then_some(())
    });
    apply(&server, "writer.yaml", &writer_deployment());
    let second = deployment_pod(&server);
    until(Duration::from_secs(10), "two runs recorded", || {
        (exec(&server, &second, "wc -l < /data/runs").trim() == "2").then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(Path::new(&path).join("runs"))
            .unwrap()
            .lines()
            .count(),
        2
    );

    // The claim grows when asked (the class allows expansion).
    ok(
        KUBECTL,
        &server,
        &[
            "patch",
            "pvc",
            "data",
            "-p",
            r#"{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}"#,
        ],
    );
    until(Duration::from_secs(10), "the claim grown", || {
        (get(&server, &["get", "pvc", "data"])["status"]["capacity"]["storage"] == "2Gi")
            .then_some(())
    });

    // Deleting a claim in use waits for its pods (pvc-protection).
    ok(KUBECTL, &server, &["delete", "pvc", "data", "--wait=false"]);
    std::thread::sleep(Duration::from_secs(1));
    let claim = get(&server, &["get", "pvc", "data"]);
    assert!(!claim["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(exec(&server, &second, "wc -l < /data/runs").trim(), "2");
    // Once the pods are gone, the claim goes, then its volume and its directory (reclaim policy Delete).
    ok(KUBECTL, &server, &["delete", "deployment", "writer"]);
    until(
        Duration::from_secs(60),
        "the volume and its directory deleted",
        || {
            let gone = kubectl(KUBECTL, &server, &["get", "pv", &volume])
                .status
                .code()
                != Some(0);
            (gone && !Path::new(&path).exists()).then_some(())
        },
    );

    // A generic ephemeral volume: a claim made for the pod, provisioned, and deleted with it.
    let pod = pod_manifest(
        "scratch",
        "[{name: tmp, ephemeral: {volumeClaimTemplate: {spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 5Mi}}}}}}]",
        "[{name: tmp, mountPath: /tmp/scratch}]",
        "echo here > /tmp/scratch/f; sleep 3600",
    );
    apply(&server, "scratch.yaml", &pod);
    running(&server, "scratch");
    let claim = get(&server, &["get", "pvc", "scratch-tmp"]);
    assert_eq!(claim["status"]["phase"], "Bound");
    assert_eq!(claim["metadata"]["ownerReferences"][0]["name"], "scratch");
    assert_eq!(exec(&server, "scratch", "cat /tmp/scratch/f"), "here");
    ok(KUBECTL, &server, &["delete", "pod", "scratch"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while kubectl(KUBECTL, &server, &["get", "pvc", "scratch-tmp"])
        .status
        .code()
        == Some(0)
    {
        assert!(
            Instant::now() < deadline,
            "the ephemeral claim outlived its pod: {:#}",
            get(&server, &["get", "pvc", "scratch-tmp"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A claim no node can hold: the provisioner says why, and nothing is made.
    apply(&server, "huge.yaml", &claim_manifest("huge", "100Pi", None));
    let pod = pod_manifest(
        "huge",
        "[{name: data, persistentVolumeClaim: {claimName: huge}}]",
        "[{name: data, mountPath: /data}]",
        "sleep 3600",
    );
    apply(&server, "huge-pod.yaml", &pod);
    let messages = until(
        Duration::from_secs(30),
        "a ProvisioningFailed event",
        || {
            let found = events(&server, "huge", "ProvisioningFailed");
            (!found.is_empty()).then_some(found)
        },
    );
    assert!(
        messages[0].contains("not enough space on node"),
        "{messages:?}"
    );
    assert_eq!(phase(&server, "pvc", "huge"), "Pending");
    assert_eq!(phase(&server, "pod", "huge"), "Pending");
    ok(KUBECTL, &server, &["delete", "pod", "huge", "--wait=false"]);

    // A claim of a class that does not exist never binds: the pod is not scheduled, and says why.
    apply(
        &server,
        "lost.yaml",
        &claim_manifest("lost", "1Gi", Some("no-such-class")),
    );
    let pod = pod_manifest(
        "lost",
        "[{name: data, persistentVolumeClaim: {claimName: lost}}]",
        "[{name: data, mountPath: /data}]",
        "sleep 3600",
    );
    apply(&server, "lost-pod.yaml", &pod);
    describe_until(
        &server,
        "lost",
        Duration::from_secs(30),
        &[
            "FailedScheduling",
            "pod has unbound immediate PersistentVolumeClaims",
        ],
    );

    // A Retain volume keeps its data when its claim goes.
    retained_volume_keeps_data(&server);
}

fn retained_volume_keeps_data(server: &Node) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    apply(
        server,
        "kept-pv.yaml",
        &format!(
            r#"apiVersion: v1
kind: PersistentVolume
metadata: {{name: kept}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: manual
  hostPath: {{path: {path}}}
"#
        ),
    );
    apply(
        server,
        "kept.yaml",
        &claim_manifest("kept", "500Mi", Some("manual")),
    );
    until(
        Duration::from_secs(20),
        "the claim bound to the volume",
        || (phase(server, "pvc", "kept") == "Bound").then_some(()),
    );
    let pod = pod_manifest(
        "keeper",
        "[{name: data, persistentVolumeClaim: {claimName: kept}}]",
        "[{name: data, mountPath: /data}]",
        "echo precious > /data/file; sleep 3600",
    );
    apply(server, "keeper.yaml", &pod);
    running(server, "keeper");
    ok(KUBECTL, server, &["delete", "pod", "keeper"]);
    ok(KUBECTL, server, &["delete", "pvc", "kept"]);
    until(Duration::from_secs(20), "the volume released", || {
        (phase(server, "pv", "kept") == "Released").then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(dir.path().join("file"))
            .unwrap()
            .trim(),
        "precious"
    );
}

#[test]
fn stateful_set_ordinals_keep_their_claims_across_scaling() {
    let server = server("10.54.0.0/24", "gtest54");
    let manifest = format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: db}}
spec: {{clusterIP: None, selector: {{app: db}}, ports: [{{port: 80}}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: 2
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [sh, -c, "test -e /data/id || hostname > /data/id; sleep 3600"]
        volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 10Mi}}}}
"#
    );
    apply(&server, "db.yaml", &manifest);
    running(&server, "db-0");
    running(&server, "db-1");
    assert_eq!(exec(&server, "db-1", "cat /data/id"), "db-1");
    assert_eq!(phase(&server, "pvc", "data-db-0"), "Bound");
    ok(
        KUBECTL,
        &server,
        &["scale", "statefulset", "db", "--replicas=1"],
    );
    until(Duration::from_secs(30), "db-1 gone", || {
        (kubectl(KUBECTL, &server, &["get", "pod", "db-1"])
            .status
            .code()
            != Some(0))
        .then_some(())
    });
    // Scaling down keeps the claim; scaling up mounts it again, data and all.
    assert_eq!(phase(&server, "pvc", "data-db-1"), "Bound");
    ok(
        KUBECTL,
        &server,
        &["exec", "db-0", "--", "sh", "-c", "echo changed > /data/id"],
    );
    ok(
        KUBECTL,
        &server,
        &["scale", "statefulset", "db", "--replicas=2"],
    );
    running(&server, "db-1");
    assert_eq!(exec(&server, "db-1", "cat /data/id"), "db-1");
    assert_eq!(exec(&server, "db-0", "cat /data/id"), "changed");
}

#[test]
fn pods_over_their_local_storage_limits_are_evicted() {
    let server = server("10.55.0.0/24", "gtest55");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: scratch}}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{{name: scratch, emptyDir: {{sizeLimit: 1Mi}}}}]
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "sleep 2; dd if=/dev/zero of=/scratch/big bs=1k count=4096; sleep 3600"]
    volumeMounts: [{{name: scratch, mountPath: /scratch}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: layer}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "sleep 2; dd if=/dev/zero of=/big bs=1k count=4096; sleep 3600"]
    resources: {{limits: {{ephemeral-storage: 1Mi}}}}
"#
    );
    apply(&server, "hungry.yaml", &manifest);
    let evicted = |name: &str| {
        wait_for(&server, name, Duration::from_secs(60), |p| {
            p["status"]["phase"] == "Failed"
        })
    };
    let scratch = evicted("scratch");
    assert_eq!(
        scratch["status"]["reason"], "Evicted",
        "{:#}",
        scratch["status"]
    );
    assert_eq!(
        scratch["status"]["message"],
        "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". "
    );
    let layer = evicted("layer");
    assert_eq!(layer["status"]["reason"], "Evicted");
    assert_eq!(
        layer["status"]["message"],
        "Container main exceeded its local ephemeral storage limit \"1Mi\". "
    );
    assert!(layer["status"]["containerStatuses"][0]["state"]["terminated"].is_object());
    assert!(!events(&server, "layer", "Evicted").is_empty());
}

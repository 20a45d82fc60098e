//! The Table row benchmark: `kubectl get pods` of a big namespace, as the API server answers it from its watch
//! cache (objects kept as JSON bytes). Times the rows of 10,000 pods built the plain way (parse to a `Value`,
//! `table::row`, serialize) and with `table::write_row`, in one run so the ratio compares like with like, and
//! checks that both give the same bytes. Two sets of pods: realistic ones (about 5 KB of JSON: managedFields,
//! env, volumes, probes, conditions) and the bare ones `gantry-loadgen` creates (about 600 bytes once defaulted).
//!
//! ```text
//! cargo bench -p gantry-api --bench table -- [--pods 10000] [--rounds 11] [--sets realistic,loadgen]
//!     [--only plain|write_row]
//! ```
//!
//! Each figure is the median of the rounds; every round writes all rows into one body, as `table_json` does.

#![allow(clippy::unwrap_used)] // a benchmark binary: a failed unwrap is a failed run

use std::hint::black_box;
use std::time::{Duration, Instant, UNIX_EPOCH};

use gantry_api::table::{self, IncludeObject};
use serde_json::{Value, json};

/// Seconds since the epoch of "now" for every row (2025-05-01T12:00:00Z), so ages are stable.
const NOW: u64 = 1_746_100_800;

struct Options {
    pods: usize,
    rounds: usize,
    sets: Vec<String>,
    /// `plain` or `write_row`: time that path alone (to profile it).
    only: Option<String>,
}

fn options() -> Options {
    let mut options = Options {
        pods: 10_000,
        rounds: 11,
        sets: vec!["realistic".to_owned(), "loadgen".to_owned()],
        only: None,
    };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{arg} needs a value"))
                .clone()
        };
        match arg.as_str() {
            "--pods" => options.pods = value().parse().unwrap(),
            "--rounds" => options.rounds = value().parse().unwrap(),
            "--sets" => options.sets = value().split(',').map(String::from).collect(),
            "--only" => options.only = Some(value()),
            other => panic!("unknown option {other}"),
        }
    }
    options
}

/// A pod as a cluster stores it: labels, annotations, an owner, managedFields, two containers with env, ports,
/// resources, probes and mounts, volumes, tolerations, and a status with conditions and container statuses.
/// Most run; some restarted, some are pending, crash-looping or done.
fn pod(i: usize) -> Value {
    let name = format!("web-7d4b9c5f8-{i:05}");
    let created = format!("2025-04-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60);
    let app_state = match i % 100 {
        0..=3 => json!({"waiting": {"reason": "ContainerCreating"}}),
        4 => json!({"waiting": {"reason": "CrashLoopBackOff",
            "message": "back-off 5m0s restarting failed container=app pod=web"}}),
        5 => json!({"terminated": {"exitCode": 0, "reason": "Completed",
            "startedAt": "2025-05-01T10:00:00Z", "finishedAt": "2025-05-01T11:00:00Z",
            "containerID": "containerd://4f3e2d1c0b9a8f7e6d5c4b3a29180706f5e4d3c2b1a09f8e7d6c5b4a39281706"}}),
        _ => json!({"running": {"startedAt": "2025-05-01T09:30:00Z"}}),
    };
    let phase = match i % 100 {
        0..=3 => "Pending",
        5 => "Succeeded",
        _ => "Running",
    };
    let restarts = if i.is_multiple_of(7) { i % 5 } else { 0 };
    let mut app_status = json!({
        "name": "app", "ready": phase == "Running" && i % 100 != 4, "started": true, "restartCount": restarts,
        "image": "registry.example.com/shop/web:2.14.1",
        "imageID": "registry.example.com/shop/web@sha256:9b2a4c6e8f0a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c",
        "containerID": "containerd://0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "state": app_state,
        "lastState": {},
    });
    if restarts > 0 {
        app_status["lastState"] = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled",
            "startedAt": "2025-05-01T08:00:00Z", "finishedAt": "2025-05-01T09:29:58Z",
            "containerID": "containerd://ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"}});
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": "web-7d4b9c5f8-",
            "namespace": "shop",
            "uid": format!("3f0c2b1e-8a9d-4c57-b1f2-{i:012}"),
            "resourceVersion": format!("{}", 100_000 + i),
            "creationTimestamp": created,
            "labels": {"app": "web", "pod-template-hash": "7d4b9c5f8", "tier": "frontend",
                "app.kubernetes.io/version": "2.14.1"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-04-01T08:14:00Z",
                "prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c5f8",
                "uid": "9d8c7b6a-5f4e-3d2c-1b0a-998877665544", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                    "time": created, "fieldsType": "FieldsV1", "fieldsV1": {
                        "f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {},
                            "f:pod-template-hash": {}, "f:tier": {}},
                            "f:ownerReferences": {".": {}, "k:{\"uid\":\"9d8c7b6a-5f4e-3d2c-1b0a-998877665544\"}": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:env": {}, "f:image": {},
                            "f:name": {}, "f:ports": {}, "f:readinessProbe": {}, "f:resources": {}}}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": created,
                    "fieldsType": "FieldsV1", "subresource": "status", "fieldsV1": {"f:status": {
                        "f:conditions": {}, "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {},
                        "f:podIP": {}, "f:podIPs": {}, "f:startTime": {}}}}
            ]
        },
        "spec": {
            "nodeName": format!("node-{:03}", i % 150),
            "serviceAccountName": "web",
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "terminationGracePeriodSeconds": 30,
            "schedulerName": "default-scheduler",
            "containers": [
                {"name": "app", "image": "registry.example.com/shop/web:2.14.1", "imagePullPolicy": "IfNotPresent",
                    "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "DB_HOST", "value": "db.shop.svc"},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                        "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                    "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 10, "periodSeconds": 10},
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/web", "readOnly": true},
                        {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            "readOnly": true}],
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"},
                {"name": "log-shipper", "image": "fluent/fluent-bit:3.0", "imagePullPolicy": "IfNotPresent",
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                    "volumeMounts": [{"name": "logs", "mountPath": "/var/log/web"}]}
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
                {"name": "logs", "emptyDir": {}},
                {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}
            ],
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": 300}
            ]
        },
        "status": {
            "phase": phase,
            "qosClass": "Burstable",
            "hostIP": format!("192.168.{}.{}", i / 250 % 250, i % 250),
            "podIP": format!("10.244.{}.{}", i / 250 % 250, i % 250),
            "podIPs": [{"ip": format!("10.244.{}.{}", i / 250 % 250, i % 250)}],
            "startTime": created,
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null,
                    "lastTransitionTime": created},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": created},
                {"type": "Ready", "status": if phase == "Running" { "True" } else { "False" },
                    "lastProbeTime": null, "lastTransitionTime": created},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": created},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": created}
            ],
            "containerStatuses": [
                app_status,
                {"name": "log-shipper", "ready": true, "started": true, "restartCount": 0,
                    "image": "docker.io/fluent/fluent-bit:3.0",
                    "imageID": "docker.io/fluent/fluent-bit@sha256:1c3e5a7b9d1f3a5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c",
                    "containerID": "containerd://99aa88bb77cc66dd55ee44ff33001122aabbccddeeff00112233445566778899",
                    "state": {"running": {"startedAt": "2025-05-01T09:30:00Z"}}, "lastState": {}}
            ]
        }
    })
}

/// A pod as `gantry-loadgen` creates it, after the API server's defaulting: what a bare-bones test cluster lists.
fn small_pod(i: usize) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i:05}"), "namespace": "loadgen", "labels": {"app": "loadgen"},
            "uid": format!("3f0c2b1e-8a9d-4c57-b1f2-{i:012}"), "resourceVersion": format!("{}", 100_000 + i),
            "creationTimestamp": "2025-05-01T11:00:00Z"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    });
    gantry_api::defaults::apply("", "Pod", &mut pod);
    pod
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// The median time of `rounds` rounds of `rows` writing every row into one body; the last body besides.
fn time(rounds: usize, mut rows: impl FnMut(&mut Vec<u8>)) -> (Duration, Vec<u8>) {
    let mut times = Vec::with_capacity(rounds);
    let mut body = Vec::new();
    for _ in 0..rounds {
        body = Vec::with_capacity(body.capacity());
        let start = Instant::now();
        rows(&mut body);
        times.push(start.elapsed());
        black_box(&body);
    }
    (median(&mut times), body)
}

fn main() {
    let options = options();
    println!(
        "# Table rows ({} cores, median of {} rounds)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options.rounds,
    );
    for set in &options.sets {
        let (label, make): (&str, fn(usize) -> Value) = match set.as_str() {
            "realistic" => ("realistic pods", pod),
            "loadgen" => ("loadgen pods", small_pod),
            other => panic!("unknown set {other}"),
        };
        let pods: Vec<Vec<u8>> = (0..options.pods)
            .map(|i| serde_json::to_vec(&make(i)).unwrap())
            .collect();
        match options.only.as_deref() {
            None => bench(label, &pods, options.rounds),
            Some(path) => bench_one(path, &pods, options.rounds),
        }
    }
}

/// The rows of `pods` the plain way (as `table_json` in the API server did): parse, `row`, serialize.
fn plain(pods: &[Vec<u8>], include: IncludeObject) -> impl FnMut(&mut Vec<u8>) {
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    move |body: &mut Vec<u8>| {
        for (i, json) in pods.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            let value: Value = serde_json::from_slice(json).unwrap();
            let row = table::row("Pod", &value, now, include);
            serde_json::to_writer(&mut *body, &row).unwrap();
        }
    }
}

/// The rows of `pods` with `write_row`.
fn direct(pods: &[Vec<u8>], include: IncludeObject) -> impl FnMut(&mut Vec<u8>) {
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    move |body: &mut Vec<u8>| {
        for (i, json) in pods.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            table::write_row("Pod", json, now, include, body).unwrap();
        }
    }
}

/// Times one path alone, with the default `includeObject`.
fn bench_one(path: &str, pods: &[Vec<u8>], rounds: usize) {
    let (median, _) = match path {
        "plain" => time(rounds, plain(pods, IncludeObject::Metadata)),
        "write_row" => time(rounds, direct(pods, IncludeObject::Metadata)),
        other => panic!("unknown path {other}"),
    };
    println!(
        "- {} pods, {path}: {:.1} ms",
        pods.len(),
        median.as_secs_f64() * 1e3
    );
}

/// Times the rows of `pods` both ways, for each `includeObject`.
fn bench(label: &str, pods: &[Vec<u8>], rounds: usize) {
    let bytes: usize = pods.iter().map(Vec::len).sum();
    println!(
        "## {} {label}, {:.0} bytes of JSON each\n",
        pods.len(),
        bytes as f64 / pods.len() as f64,
    );
    for include in [
        IncludeObject::Metadata,
        IncludeObject::None,
        IncludeObject::Object,
    ] {
        let (old, old_body) = time(rounds, plain(pods, include));
        let (new, new_body) = time(rounds, direct(pods, include));
        assert!(
            old_body == new_body,
            "write_row differs from row ({include:?})"
        );
        println!(
            "- includeObject={include:?} ({} KiB of rows): parse + row + to_writer {:.1} ms ({:.2} µs/row), \
             write_row {:.1} ms ({:.2} µs/row): {:.1}x faster",
            new_body.len() / 1024,
            old.as_secs_f64() * 1e3,
            old.as_secs_f64() * 1e6 / pods.len() as f64,
            new.as_secs_f64() * 1e3,
            new.as_secs_f64() * 1e6 / pods.len() as f64,
            old.as_secs_f64() / new.as_secs_f64()
        );
    }
    println!();
}

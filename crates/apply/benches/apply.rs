//! Times server-side apply and update tracking of a ConfigMap and a Deployment: median and 90th percentile
//! of many runs, after a warm-up that also builds the schema. `cargo bench -p gantry-apply`.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use gantry_apply::{Context, ManagedFields, Schema, apply, schema_for, update};
use serde_json::{Value, json};

const RUNS: usize = 20_000;

fn cx<'a>(manager: &'a str, api_version: &'a str, schema: &'a dyn Schema) -> Context<'a> {
    Context {
        manager,
        api_version,
        subresource: "",
        schema,
        now: "2025-01-01T00:00:00Z",
        reset: None,
    }
}

fn time(name: &str, mut f: impl FnMut()) {
    for _ in 0..RUNS / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    let median = samples[samples.len() / 2];
    let p90 = samples[samples.len() * 9 / 10];
    println!(
        "{name:<48} median {:>7.2} µs   p90 {:>7.2} µs",
        median.as_secs_f64() * 1e6,
        p90.as_secs_f64() * 1e6
    );
}

fn configmap(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{i}"), "namespace": "default", "labels": {"app": "bench", "index": i.to_string()}},
        "data": {"a": "1", "b": "2", "c": "3", "d": "four", "e": "five"}
    })
}

fn deployment(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web", "image": image,
                    "ports": [{"containerPort": 80}, {"containerPort": 443}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                    "args": ["--port=80", "--verbose"]
                }, {"name": "sidecar", "image": "envoy:1.30"}]}
            }
        }
    })
}

fn stored(mut object: Value) -> Value {
    object["metadata"]["uid"] = json!("6f2a1c1e-0000-4000-8000-000000000001");
    object
}

fn main() {
    let start = Instant::now();
    let cm_schema = schema_for("", "v1", "ConfigMap").unwrap();
    let dep_schema = schema_for("apps", "v1", "Deployment").unwrap();
    println!(
        "schema build (first schema_for)                  {:>7.2} ms",
        start.elapsed().as_secs_f64() * 1e3
    );

    let empty = ManagedFields::default();
    let cm = configmap(7);
    let cm_cx = cx("kubectl", "v1", &cm_schema);
    time("ConfigMap: apply (create)", || {
        black_box(apply(None, black_box(&cm), &empty, false, &cm_cx).unwrap());
    });
    let (live, managed) = apply(None, &cm, &empty, false, &cm_cx).unwrap();
    let live = stored(live);
    let mut changed = cm.clone();
    changed["data"]["a"] = json!("changed");
    time("ConfigMap: apply again (one value changed)", || {
        black_box(apply(Some(&live), black_box(&changed), &managed, false, &cm_cx).unwrap());
    });
    time("ConfigMap: update tracking (PUT)", || {
        black_box(update(Some(&live), black_box(&changed), &managed, &cm_cx));
    });

    let dep = deployment("nginx:1.27");
    let dep_cx = cx("kubectl", "apps/v1", &dep_schema);
    time("Deployment: apply (create)", || {
        black_box(apply(None, black_box(&dep), &empty, false, &dep_cx).unwrap());
    });
    let (live, managed) = apply(None, &dep, &empty, false, &dep_cx).unwrap();
    let live = stored(live);
    let next = deployment("nginx:1.28");
    time("Deployment: apply again (image changed)", || {
        black_box(apply(Some(&live), black_box(&next), &managed, false, &dep_cx).unwrap());
    });
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    let hpa = cx("kube-controller-manager", "apps/v1", &dep_schema);
    time("Deployment: update tracking (PUT replicas)", || {
        black_box(update(Some(&live), black_box(&scaled), &managed, &hpa));
    });
    time(
        "Deployment: apply to untracked (before-first-apply)",
        || {
            black_box(apply(Some(&live), black_box(&next), &empty, true, &dep_cx).unwrap());
        },
    );
}

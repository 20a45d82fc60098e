//! How long each OpenAPI document takes to build, and how big it is:
//! `cargo run --release -p gantry-openapi --example build_time`.
//! Each group-version line builds that document alone (parsing the vendored definitions included); the
//! `/openapi/v3` line is what a server's first request pays (every group-version document, one parse).

use std::time::Instant;

fn main() {
    for (group, versions) in gantry_api::registry::groups() {
        for version in versions {
            let start = Instant::now();
            let document = gantry_openapi::build_v3_document(group, version).expect("served");
            let took = start.elapsed();
            let name = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
            println!(
                "/openapi/v3/{name:<36} {:>7.1} ms {:>8} bytes",
                took.as_secs_f64() * 1e3,
                document.bytes.len()
            );
        }
    }
    let time = |label: &str, f: &dyn Fn() -> usize| {
        let start = Instant::now();
        let bytes = f();
        println!(
            "{label:<48} {:>7.1} ms {bytes:>8} bytes",
            start.elapsed().as_secs_f64() * 1e3
        );
    };
    time("/openapi/v3 (root + all group-versions)", &|| {
        gantry_openapi::v3_root().len()
    });
    time("/openapi/v2 protobuf", &|| {
        gantry_openapi::v2_protobuf().len()
    });
    time("/openapi/v2 JSON", &|| gantry_openapi::v2_json().len());
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}
    });
    time("unknown-field model (first check)", &|| {
        gantry_openapi::unknown_fields("apps", "v1", "Deployment", &deployment).len()
    });
    let rounds = 10_000;
    let start = Instant::now();
    for _ in 0..rounds {
        assert!(gantry_openapi::unknown_fields("apps", "v1", "Deployment", &deployment).is_empty());
    }
    println!(
        "unknown-field check of a small Deployment       {:>7.2} µs each",
        start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
    );
}

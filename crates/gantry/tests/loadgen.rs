//! End to end: the load generator (`gantry-loadgen`, and `gantry bench api`) against a real `gantry server`,
//! with tiny sizes; checks every workload runs and reports sane numbers.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::time::Duration;

use gantry_loadgen::{Options, Target, Workload};

mod support;

use support::Server;

fn sane(latency: gantry_loadgen::stats::Summary, count: usize) {
    assert_eq!(latency.count, count);
    assert!(latency.p50 > Duration::ZERO, "{latency:?}");
    assert!(
        latency.p50 <= latency.p90 && latency.p90 <= latency.p99,
        "{latency:?}"
    );
    assert!(latency.p99 <= latency.max, "{latency:?}");
    assert!(latency.max < Duration::from_secs(10), "{latency:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workloads_run_against_a_real_server() {
    let server = Server::start();
    let target = Target::from_kubeconfig(&server.kubeconfig()).unwrap();
    let options = Options {
        clients: 2,
        creates: 20,
        gets: 30,
        list_objects: 25,
        list_rounds: 3,
        watchers: 5,
        watch_events: 10,
        watch_interval: Duration::from_millis(5),
        applies: 7,
        timeout: Duration::from_secs(60),
        ..Options::default()
    };
    let report = gantry_loadgen::run(&target, &options).await.unwrap();
    assert!(report.namespace.starts_with("loadgen-"));

    let create = report.create.unwrap();
    assert_eq!((create.count, create.clients), (20, 2));
    assert!(create.per_second() > 1.0, "{create:?}");
    sane(create.latency, 20);

    let get = report.get.unwrap();
    assert_eq!(get.count, 30);
    sane(get.latency, 30);

    let list = report.list.unwrap();
    assert_eq!(list.objects, 25);
    sane(list.create.latency, 25);
    sane(list.json, 3);
    sane(list.table, 3);
    assert!(list.json_bytes > 25 * 100, "{list:?}");
    assert!(list.table_bytes > 25 * 50, "{list:?}");

    let watch = report.watch.unwrap();
    assert_eq!((watch.watchers, watch.events), (5, 10));
    assert_eq!((watch.delivered, watch.missing), (50, 0), "{watch:?}");
    sane(watch.latency, 50);

    let (created, changed) = report.apply.unwrap();
    assert_eq!((created.count, changed.count), (7, 7));
    sane(created.latency, 7);
    sane(changed.latency, 7);

    // A named namespace is created if missing and kept; one workload alone runs alone.
    let options = Options {
        namespace: Some("bench".into()),
        workloads: vec![Workload::Get],
        gets: 5,
        ..options
    };
    let report = gantry_loadgen::run(&target, &options).await.unwrap();
    assert_eq!(report.namespace, "bench");
    assert!(report.create.is_none() && report.list.is_none() && report.watch.is_none());
    sane(report.get.unwrap().latency, 5);
}

#[test]
fn gantry_bench_api_prints_one_line_per_workload() {
    let server = Server::start();
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["bench", "api", "--kubeconfig"])
        .arg(server.kubeconfig())
        .args([
            "--clients",
            "2",
            "--creates",
            "20",
            "--gets",
            "20",
            "--list-objects",
            "20",
            "--list-rounds",
            "2",
            "--watchers",
            "5",
            "--watch-events",
            "5",
            "--applies",
            "3",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for prefix in [
        "create: 20 ConfigMaps",
        "get: 20 GETs",
        "list: 20 pods",
        "watch: 5 watchers x 5 events: 25 delivered, 0 missing",
        "apply: 3 ConfigMaps server-side",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(prefix)),
            "{prefix}: {stdout}"
        );
    }
    // A kubeconfig that is not there is an error, not a hang.
    let missing = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["bench", "api", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}

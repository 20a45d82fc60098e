//! Gantry's API figures (issue 3), measured against real `gantry server` processes on loopback:
//!
//! - (a) start: spawn to the first 200 on `/readyz`, on an empty data directory (median of `--starts`);
//! - (b) memory: VmRSS and VmHWM after 2,000 pods and 2,000 ConfigMaps (`--rss-objects`);
//! - (c) the load generator's workloads (create, get, list, watch, apply, crd) on a fresh server.
//!
//! ```sh
//! cargo build --release -p gantry          # the server under test: target/release/gantry
//! cargo bench -p gantry-loadgen --bench api
//! # options: --gantry PATH --starts 5 --rss-objects 2000 --clients 16 --creates 10000 --gets 10000
//! #          --list-objects 10000 --watchers 1000 --watch-events 100 --applies 1000 --crds 20
//! ```
//!
//! The server is found at `--gantry`, `$GANTRY_BIN`, `$CARGO_TARGET_DIR/release/gantry`, or the workspace's
//! `target/release/gantry`. To load another API server (upstream Kubernetes), use `gantry bench api`.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a bench binary: failures end the run

#[path = "support/server.rs"]
mod server;

use std::path::PathBuf;
use std::time::Duration;

use gantry_loadgen::stats::ms;
use gantry_loadgen::workloads::Kind;
use gantry_loadgen::{Options, Session};
use server::{Server, median};

struct Args {
    gantry: PathBuf,
    starts: usize,
    rss_objects: usize,
    options: Options,
}

fn args() -> Args {
    let mut options = Options::default();
    let mut gantry = std::env::var_os("GANTRY_BIN").map(PathBuf::from);
    let mut starts = 5;
    let mut rss_objects = 2_000;
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().expect("a value after the flag");
        let mut number = || value().parse::<usize>().expect("a number");
        match flag.as_str() {
            "--gantry" => gantry = Some(PathBuf::from(value())),
            "--starts" => starts = number(),
            "--rss-objects" => rss_objects = number(),
            "--clients" => options.clients = number(),
            "--creates" => options.creates = number(),
            "--gets" => options.gets = number(),
            "--list-objects" => options.list_objects = number(),
            "--watchers" => options.watchers = number(),
            "--watch-events" => options.watch_events = number(),
            "--applies" => options.applies = number(),
            "--crds" => options.crds = number(),
            _ => {} // `cargo bench` passes --bench
        }
    }
    let gantry = server::gantry_binary(gantry);
    Args {
        gantry,
        starts,
        rss_objects,
        options,
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    println!(
        "gantry API benchmark: {} ({} clients, {} creates, {} gets, {} pods listed, {} watchers x {} events)",
        args.gantry.display(),
        args.options.clients,
        args.options.creates,
        args.options.gets,
        args.options.list_objects,
        args.options.watchers,
        args.options.watch_events
    );

    // (a) start to ready.
    let mut starts = Vec::new();
    for _ in 0..args.starts.max(1) {
        let server = Server::spawn(&args.gantry);
        starts.push(server.ready().await);
    }
    let start_median = median(starts.clone());
    println!(
        "(a) spawn to first 200 on /readyz, empty data dir: median {} over {} starts ({})",
        ms(start_median),
        starts.len(),
        starts.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
    );

    // (b) memory after N pods and N ConfigMaps.
    let server = Server::spawn(&args.gantry);
    server.ready().await;
    let (idle_rss, _) = server.memory();
    let session = Session::connect(&server.target(), args.options.clients, "rss")
        .await
        .unwrap();
    session.create_namespace().await.unwrap();
    let n = args.rss_objects;
    session
        .create(Kind::Pod, "pod-", n, args.options.clients)
        .await
        .unwrap();
    session
        .create(Kind::ConfigMap, "cm-", n, args.options.clients)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss, hwm) = server.memory();
    println!(
        "(b) memory after {n} pods + {n} ConfigMaps: VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB (idle after start: VmRSS {idle_rss:.1} MiB)"
    );
    drop(session);
    drop(server);

    // (c) the workloads on a fresh server.
    let server = Server::spawn(&args.gantry);
    server.ready().await;
    println!("(c) workloads:");
    let report = gantry_loadgen::run(&server.target(), &args.options)
        .await
        .unwrap();
    let (rss_after, hwm_after) = server.memory();
    println!(
        "    server memory after the workloads: VmRSS {rss_after:.1} MiB, VmHWM {hwm_after:.1} MiB"
    );

    println!("\nsummary against the issue's targets:");
    println!(
        "  readyz after spawn         {:>12}   target <= 300 ms",
        ms(start_median)
    );
    println!("  RSS, {n} pods + {n} cms  {rss:>9.1} MiB   target <= 60 MB (= 57.2 MiB)");
    if let Some(c) = report.create {
        println!(
            "  creates                    {:>9.0}/s    target >= 5,000/s; p99 {} (target <= 20 ms)",
            c.per_second(),
            ms(c.latency.p99)
        );
    }
    if let Some(g) = report.get {
        println!(
            "  GET p99                    {:>12}   target <= 2 ms (p50 {})",
            ms(g.latency.p99),
            ms(g.latency.p50)
        );
    }
    if let Some(l) = report.list {
        println!(
            "  LIST {} pods JSON median {:>12}   Table median {}   target <= 100 ms each",
            l.objects,
            ms(l.json.p50),
            ms(l.table.p50)
        );
    }
    if let Some(w) = report.watch {
        println!(
            "  watch {} watchers p99   {:>12}   target <= 50 ms ({} missing of {})",
            w.watchers,
            ms(w.latency.p99),
            w.missing,
            w.watchers * w.events
        );
    }
    if let Some((created, changed)) = report.apply {
        println!(
            "  server-side apply of {} ConfigMaps, one at a time: creating {}, changing {}   target: <= 20 % of upstream's 4.9 s kubectl run (= 980 ms)",
            created.count,
            ms(created.wall),
            ms(changed.wall)
        );
    }
    if let Some(c) = report.crd {
        println!(
            "  CRD usable (discovery + first instance) p50 {} max {}   target <= 1 s",
            ms(c.usable.p50),
            ms(c.usable.max)
        );
    }
}

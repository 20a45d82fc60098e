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

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gantry_loadgen::stats::ms;
use gantry_loadgen::workloads::Kind;
use gantry_loadgen::{Client, Options, Session, Target};
use http::Method;

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
    let gantry = gantry.unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
        target.join("release/gantry")
    });
    assert!(
        gantry.exists(),
        "{} is missing: run `cargo build --release -p gantry` first (or pass --gantry PATH)",
        gantry.display()
    );
    Args {
        gantry,
        starts,
        rss_objects,
        options,
    }
}

/// A `gantry server` process on a free loopback port with an empty data directory; killed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    spawned: Instant,
}

impl Server {
    fn spawn(gantry: &Path) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let spawned = Instant::now();
        let child = Command::new(gantry)
            .args(["server", "--disable-agent", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server {
            child,
            port,
            dir,
            spawned,
        }
    }

    /// Polls `/readyz` (a new connection each try, 1 ms apart) until a 200; the time since spawn.
    async fn ready(&self) -> Duration {
        let probe = Target::insecure("127.0.0.1", self.port);
        let deadline = self.spawned + Duration::from_secs(30);
        loop {
            if let Ok(client) = Client::connect(&probe, 1).await
                && let Ok((status, _)) = client
                    .send(None, Method::GET, "/readyz", "text/plain", None)
                    .await
                && status == http::StatusCode::OK
            {
                return self.spawned.elapsed();
            }
            assert!(Instant::now() < deadline, "no 200 on /readyz within 30 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn target(&self) -> Target {
        Target::from_kubeconfig(&self.dir.path().join("kubeconfig")).unwrap()
    }

    /// (VmRSS, VmHWM) in MiB.
    fn memory(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .unwrap()
                / 1024.0
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
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

//! Gantry's scale figures (issue 6), measured against real `gantry server` processes with simulated nodes
//! (`gantry agent --simulate N`, which report bound pods Running without containers):
//!
//! - (a) a Deployment of `--replicas` (1,000) on `--deploy-nodes` (10) nodes: from its POST until every pod
//!   is created and bound; the baseline, in the same run and on the same server, is as many bare pods
//!   POSTed by 16 clients, from the first POST until every one is bound (median of `--rounds`);
//! - (b) scheduling throughput with `--nodes` (5,000) nodes: `--pods` (50,000) bare pods POSTed by 32
//!   clients; pods bound per second over the whole run and between 10 % and 90 % bound, against the
//!   create rate of the same run (the scheduler cannot bind faster than pods are made);
//! - (c) then up to `--total-pods` (150,000): every pod bound and Running, the server's VmRSS, and how long
//!   `kubectl get pods -A` takes (the kubectl on PATH).
//!
//! ```sh
//! cargo build --release -p gantry
//! cargo bench -p gantry-loadgen --bench scale
//! # options: --gantry PATH --phases abc --replicas 1000 --deploy-nodes 10 --rounds 3
//! #          --nodes 5000 --pods 50000 --total-pods 150000
//! ```

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a bench binary: failures end the run

#[path = "support/server.rs"]
mod server;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gantry_loadgen::stats::ms;
use gantry_loadgen::workloads::Kind;
use gantry_loadgen::{Client, Session};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;
use server::{Server, median};

const JSON: &str = "application/json";

struct Args {
    gantry: PathBuf,
    phases: String,
    replicas: usize,
    deploy_nodes: usize,
    rounds: usize,
    nodes: usize,
    pods: usize,
    total_pods: usize,
}

fn args() -> Args {
    let mut given = None;
    let mut args = Args {
        gantry: PathBuf::new(),
        phases: "abc".into(),
        replicas: 1000,
        deploy_nodes: 10,
        rounds: 3,
        nodes: 5000,
        pods: 50_000,
        total_pods: 150_000,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().expect("a value after the flag");
        match flag.as_str() {
            "--gantry" => given = Some(PathBuf::from(value())),
            "--phases" => args.phases = value(),
            "--replicas" => args.replicas = value().parse().unwrap(),
            "--deploy-nodes" => args.deploy_nodes = value().parse().unwrap(),
            "--rounds" => args.rounds = value().parse().unwrap(),
            "--nodes" => args.nodes = value().parse().unwrap(),
            "--pods" => args.pods = value().parse().unwrap(),
            "--total-pods" => args.total_pods = value().parse().unwrap(),
            _ => {} // `cargo bench` passes --bench
        }
    }
    args.gantry = server::gantry_binary(given);
    args
}

/// `gantry agent --simulate` joined to a server; killed on drop.
struct Simulator(Child);

impl Simulator {
    fn join(gantry: &Path, server: &Server, nodes: usize, max_pods: usize) -> Simulator {
        let out = Command::new(gantry)
            .args(["token", "create", "--data-dir"])
            .arg(server.dir.path())
            .output()
            .unwrap();
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        Simulator(
            Command::new(gantry)
                .args(["agent", "--simulate", &nodes.to_string()])
                .args(["--simulate-max-pods", &max_pods.to_string()])
                .args(["--server", &format!("https://127.0.0.1:{}", server.port)])
                .args(["--token", &token, "--ca-file"])
                .arg(server.dir.path().join("tls/ca.crt"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: PodView,
}

#[derive(Deserialize)]
struct PodView {
    metadata: Meta,
    #[serde(default)]
    spec: Option<SpecView>,
    #[serde(default)]
    status: Option<StatusView>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

#[derive(Deserialize)]
struct SpecView {
    #[serde(default, rename = "nodeName")]
    node_name: Option<String>,
}

#[derive(Deserialize)]
struct StatusView {
    #[serde(default)]
    phase: Option<String>,
}

/// When the watched pods reached each count bound and Running.
#[derive(Debug, Default)]
struct Progress {
    created_at: Vec<Instant>,
    bound_at: Vec<Instant>,
    running_at: Vec<Instant>,
}

/// Watches the pods of `namespace` (every namespace when empty) from now until `count` are bound and
/// Running (or the watch ends); the task returns when each one was first seen bound and Running.
async fn watch_pods(
    client: Arc<Client>,
    namespace: &str,
    count: usize,
) -> tokio::task::JoinHandle<Progress> {
    let base = if namespace.is_empty() {
        "/api/v1/pods".to_owned()
    } else {
        format!("/api/v1/namespaces/{namespace}/pods")
    };
    let list = client
        .expect(
            None,
            Method::GET,
            &format!("{base}?limit=1"),
            JSON,
            None,
            &[StatusCode::OK],
        )
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("{base}?watch=true&resourceVersion={rv}&allowWatchBookmarks=false");
    let response = client
        .request(None, Method::GET, &path, JSON, None)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    tokio::spawn(async move {
        let mut body = response.into_body();
        let mut progress = Progress::default();
        let (mut created, mut bound, mut running) =
            (HashSet::new(), HashSet::new(), HashSet::new());
        let mut pending = Vec::new();
        while running.len() < count || bound.len() < count {
            let Some(Ok(frame)) = body.frame().await else {
                break;
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<WatchEvent>(&line) else {
                    continue;
                };
                if event.kind == "DELETED" {
                    continue;
                }
                let pod = event.object;
                let key = format!("{}/{}", pod.metadata.namespace, pod.metadata.name);
                let now = Instant::now();
                if created.insert(key.clone()) {
                    progress.created_at.push(now);
                }
                if pod
                    .spec
                    .and_then(|s| s.node_name)
                    .is_some_and(|n| !n.is_empty())
                    && bound.insert(key.clone())
                {
                    progress.bound_at.push(now);
                }
                if pod.status.and_then(|s| s.phase).as_deref() == Some("Running")
                    && running.insert(key)
                {
                    progress.running_at.push(now);
                }
            }
        }
        progress
    })
}

async fn wait_for_nodes(client: &Client, nodes: usize) -> Duration {
    let start = Instant::now();
    loop {
        let body = client
            .expect(
                None,
                Method::GET,
                "/api/v1/nodes",
                JSON,
                None,
                &[StatusCode::OK],
            )
            .await
            .unwrap();
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let ready = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        if ready >= nodes {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "only {ready} of {nodes} nodes Ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn deployment(name: &str, replicas: usize) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]}}}})
}

/// The time from `start` until the last of `count` pods was bound.
fn all_bound(progress: &Progress, start: Instant, count: usize) -> Duration {
    assert_eq!(progress.bound_at.len(), count, "not every pod was bound");
    progress.bound_at[count - 1] - start
}

async fn phase_a(args: &Args) {
    let server = Server::spawn(&args.gantry);
    server.ready().await;
    let capacity = args.replicas * 2 * args.rounds / args.deploy_nodes + 10;
    let _simulator = Simulator::join(&args.gantry, &server, args.deploy_nodes, capacity);
    let target = server.target();
    let admin = Arc::new(Client::connect(&target, 4).await.unwrap());
    wait_for_nodes(&admin, args.deploy_nodes).await;
    let (mut bare, mut deployed) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        // Baseline: as many bare pods, POSTed by 16 clients.
        let session = Session::connect(&target, 16, &format!("bare-{round}"))
            .await
            .unwrap();
        session.create_namespace().await.unwrap();
        let watch = watch_pods(admin.clone(), session.namespace(), args.replicas).await;
        let start = Instant::now();
        session
            .create(Kind::Pod, "pod-", args.replicas, 16)
            .await
            .unwrap();
        let progress = tokio::time::timeout(Duration::from_secs(120), watch)
            .await
            .unwrap()
            .unwrap();
        bare.push(all_bound(&progress, start, args.replicas));

        let namespace = format!("deploy-{round}");
        let session = Session::connect(&target, 1, &namespace).await.unwrap();
        session.create_namespace().await.unwrap();
        let watch = watch_pods(admin.clone(), &namespace, args.replicas).await;
        let start = Instant::now();
        admin
            .expect(
                None,
                Method::POST,
                &format!("/apis/apps/v1/namespaces/{namespace}/deployments"),
                JSON,
                Some((
                    JSON,
                    Bytes::from(deployment("web", args.replicas).to_string()),
                )),
                &[StatusCode::CREATED],
            )
            .await
            .unwrap();
        let progress = tokio::time::timeout(Duration::from_secs(120), watch)
            .await
            .unwrap()
            .unwrap();
        deployed.push(all_bound(&progress, start, args.replicas));
        let at = |v: &Vec<Instant>, f: usize| ms(v[(v.len() * f / 10).min(v.len() - 1)] - start);
        println!(
            "    created 10/50/100 %: {} {} {}; bound 10/50/100 %: {} {} {}",
            at(&progress.created_at, 1),
            at(&progress.created_at, 5),
            at(&progress.created_at, 10),
            at(&progress.bound_at, 1),
            at(&progress.bound_at, 5),
            at(&progress.bound_at, 10)
        );
        println!(
            "    round {round}: bare pods bound {} after the first POST; Deployment's pods bound {} after its POST",
            ms(bare[round]),
            ms(deployed[round])
        );
    }
    let (bare, deployed) = (median(bare), median(deployed));
    println!(
        "(a) Deployment of {} replicas on {} nodes, every pod created and bound: median {} (target <= 1 s); \
         baseline {} bare pods POSTed by 16 clients, bound: median {}; ratio {:.2}",
        args.replicas,
        args.deploy_nodes,
        ms(deployed),
        args.replicas,
        ms(bare),
        deployed.as_secs_f64() / bare.as_secs_f64()
    );
}

/// POSTs `count` bare pods in `namespace` with 32 clients; returns the create wall time.
async fn create_pods(session: &Session, count: usize) -> Duration {
    let created = session.create(Kind::Pod, "pod-", count, 32).await.unwrap();
    created.wall
}

async fn phases_bc(args: &Args) {
    let server = Server::spawn(&args.gantry);
    server.ready().await;
    let _simulator = Simulator::join(&args.gantry, &server, args.nodes, 110);
    let target = server.target();
    let admin = Arc::new(Client::connect(&target, 4).await.unwrap());
    let joined = wait_for_nodes(&admin, args.nodes).await;
    println!(
        "    {} simulated nodes Ready {} after the simulator started",
        args.nodes,
        ms(joined)
    );
    let (idle_rss, _) = server.memory();

    let session = Session::connect(&target, 32, "throughput").await.unwrap();
    session.create_namespace().await.unwrap();
    let watch = watch_pods(admin.clone(), session.namespace(), args.pods).await;
    let start = Instant::now();
    let create_wall = create_pods(&session, args.pods).await;
    let progress = tokio::time::timeout(Duration::from_secs(600), watch)
        .await
        .unwrap()
        .unwrap();
    let all = all_bound(&progress, start, args.pods);
    let tenth = progress.bound_at[args.pods / 10];
    let ninetieth = progress.bound_at[args.pods * 9 / 10];
    let sustained = (args.pods * 8 / 10) as f64 / (ninetieth - tenth).as_secs_f64();
    let creates = args.pods as f64 / create_wall.as_secs_f64();
    println!(
        "(b) {} pods on {} nodes: created in {} ({creates:.0}/s, 32 clients); all bound {} after the first POST \
         ({:.0} pods/s overall); 10 %→90 % bound at {sustained:.0} pods/s (target >= 5,000/s); ratio to the create rate {:.2}",
        args.pods,
        args.nodes,
        ms(create_wall),
        ms(all),
        args.pods as f64 / all.as_secs_f64(),
        sustained / creates
    );

    if !args.phases.contains('c') || args.total_pods <= args.pods {
        return;
    }
    let more = args.total_pods - args.pods;
    let session = Session::connect(&target, 32, "fill").await.unwrap();
    session.create_namespace().await.unwrap();
    let watch = watch_pods(admin.clone(), "fill", more).await;
    let start = Instant::now();
    create_pods(&session, more).await;
    let progress = tokio::time::timeout(Duration::from_secs(1200), watch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(progress.running_at.len(), more, "not every pod Running");
    let running = *progress.running_at.last().unwrap() - start;
    // Steady state: the simulator's writes have settled.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss, hwm) = server.memory();
    let kubectl = Instant::now();
    let out = Command::new("kubectl")
        .args(["get", "pods", "-A", "--kubeconfig"])
        .arg(server.kubeconfig())
        .output()
        .unwrap();
    let listed = kubectl.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
    println!(
        "(c) {} pods on {} nodes, all Running {} after the first of {more} more POSTs: gantry server VmRSS {rss:.0} MiB \
         (VmHWM {hwm:.0} MiB, {idle_rss:.0} MiB with the nodes only; target <= 2 GiB); `kubectl get pods -A` listed {} \
         pods in {}",
        args.total_pods,
        args.nodes,
        ms(running),
        lines.saturating_sub(1),
        ms(listed)
    );
}

#[tokio::main]
async fn main() {
    let args = args();
    println!("gantry scale benchmark: {}", args.gantry.display());
    if args.phases.contains('a') {
        phase_a(&args).await;
    }
    if args.phases.contains('b') || args.phases.contains('c') {
        phases_bc(&args).await;
    }
}

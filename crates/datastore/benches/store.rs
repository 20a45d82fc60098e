//! The store benchmark behind docs/benchmarks.md: SQLite (the default) and etcd (the reference) side by side,
//! measured in one run so that the ratios compare like with like on a noisy machine.
//!
//! ```text
//! cargo bench -p gantry-datastore --features etcd --bench store -- [--backends sqlite,etcd,memory]
//!     [--rounds 5] [--writes 40000] [--churn-updates 1000000] [--scenarios create,range,watch,churn]
//! ```
//!
//! Scenarios, each on a fresh store:
//! - create: 16 concurrent writers create keys with 1 KiB values; writes/s per round, median reported.
//! - range: 10,000 keys (1 KiB) under one prefix among 10,000 others; a full range, at the head revision and at
//!   an older one (a continued listing reads there), 20 times each.
//! - watch: 1,000 watchers of one prefix; 200 writes, one every 10 ms; latency from before the write call to
//!   each watcher's receipt.
//! - churn: N updates (16 writers) over 1,000 keys with 1 KiB values, compacting every second to the revision
//!   of the previous tick (as the Kubernetes API server does, only more often); disk use sampled every 250 ms.

#![allow(clippy::unwrap_used)] // a benchmark binary: a failed unwrap is a failed run

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use gantry_store::{MemoryStore, RangeRequest, Store};
use gantry_store_etcd::testing::EtcdServer;
use gantry_store_sqlite::SqliteStore;

const WRITERS: usize = 16;
const VALUE_SIZE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Etcd,
    Memory,
}

#[derive(Debug)]
struct Options {
    backends: Vec<Backend>,
    rounds: usize,
    writes: u64,
    churn_updates: u64,
    scenarios: Vec<String>,
}

fn options() -> Options {
    let mut options = Options {
        backends: vec![Backend::Sqlite, Backend::Etcd],
        rounds: 5,
        writes: 40_000,
        churn_updates: 1_000_000,
        scenarios: ["create", "range", "watch", "churn"]
            .map(String::from)
            .to_vec(),
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
            "--backends" => {
                options.backends = value()
                    .split(',')
                    .map(|b| match b {
                        "sqlite" => Backend::Sqlite,
                        "etcd" => Backend::Etcd,
                        "memory" => Backend::Memory,
                        other => panic!("unknown backend {other}"),
                    })
                    .collect()
            }
            "--rounds" => options.rounds = value().parse().expect("--rounds N"),
            "--writes" => options.writes = value().parse().expect("--writes N"),
            "--churn-updates" => {
                options.churn_updates = value().parse().expect("--churn-updates N")
            }
            "--scenarios" => options.scenarios = value().split(',').map(String::from).collect(),
            other => panic!("unknown argument {other}"),
        }
    }
    options
}

/// A fresh store and a way to measure its disk use.
struct Instance {
    store: Arc<dyn Store>,
    files: Option<PathBuf>,
    _guard: Box<dyn Send>,
}

impl Instance {
    async fn start(backend: Backend) -> Instance {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir_in(bench_dir()).unwrap();
                let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
                Instance {
                    store: Arc::new(store),
                    files: Some(dir.path().to_path_buf()),
                    _guard: Box::new(dir),
                }
            }
            Backend::Etcd => {
                let server = EtcdServer::start();
                let store = gantry_store_etcd::EtcdStore::connect(&server.endpoints(), None)
                    .await
                    .unwrap();
                let files = Some(server.data_dir().to_path_buf());
                Instance {
                    store: Arc::new(store),
                    files,
                    _guard: Box::new(server),
                }
            }
            Backend::Memory => Instance {
                store: Arc::new(MemoryStore::new()),
                files: None,
                _guard: Box::new(()),
            },
        }
    }

    fn disk_bytes(&self) -> Option<u64> {
        self.files.as_deref().map(dir_size)
    }
}

/// Where the SQLite files go: the same disk as etcd's temporary data directory.
fn bench_dir() -> PathBuf {
    std::env::temp_dir()
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn value(tag: u64) -> Bytes {
    let mut v = vec![b'x'; VALUE_SIZE];
    v[..8].copy_from_slice(&tag.to_le_bytes());
    v.into()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Creates `count` keys `{prefix}{i:06}` with 16 writers.
async fn fill(store: &Arc<dyn Store>, prefix: &str, count: u64) {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (store, next, prefix) = (store.clone(), next.clone(), prefix.to_string());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    store
                        .create(Bytes::from(format!("{prefix}{i:06}")), value(i))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn bench_create(backend: Backend, options: &Options) -> Vec<String> {
    let instance = Instance::start(backend).await;
    let mut rates = Vec::new();
    for round in 0..options.rounds {
        let start = Instant::now();
        fill(
            &instance.store,
            &format!("/bench/create/{round}/"),
            options.writes,
        )
        .await;
        rates.push(options.writes as f64 / start.elapsed().as_secs_f64());
    }
    let line = format!(
        "create, {WRITERS} writers, 1 KiB: median {:.0} writes/s (rounds: {})",
        median(&mut rates.clone()),
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    vec![line]
}

async fn bench_range(backend: Backend) -> Vec<String> {
    let instance = Instance::start(backend).await;
    let store = &instance.store;
    fill(store, "/bench/other/", 10_000).await;
    fill(store, "/bench/range/", 10_000).await;
    let old = store.current_revision().await.unwrap();
    // Move the head so that a read at `old` takes the historical path.
    let kv = store
        .get(b"/bench/range/000000", None)
        .await
        .unwrap()
        .unwrap();
    store
        .update(kv.key, value(1), kv.mod_revision)
        .await
        .unwrap();
    let mut lines = Vec::new();
    for (label, revision) in [("head", None), ("older revision", Some(old))] {
        let mut times = Vec::new();
        for _ in 0..20 {
            let mut request = RangeRequest::prefix("/bench/range/");
            request.revision = revision;
            let start = Instant::now();
            let page = store.range(request).await.unwrap();
            times.push(start.elapsed().as_secs_f64() * 1e3);
            assert_eq!(page.kvs.len(), 10_000);
        }
        times.sort_by(f64::total_cmp);
        lines.push(format!(
            "range 10,000 keys at {label}: median {:.1} ms, p90 {:.1} ms",
            percentile(&times, 0.5),
            percentile(&times, 0.9)
        ));
    }
    lines
}

async fn bench_watch(backend: Backend) -> Vec<String> {
    const WATCHERS: usize = 1000;
    const EVENTS: usize = 200;
    let instance = Instance::start(backend).await;
    let store = &instance.store;
    let base = Instant::now();
    let start = store.current_revision().await.unwrap();
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let mut watch = store
            .watch(Bytes::from_static(b"/bench/watch/"), start)
            .await
            .unwrap();
        watchers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(EVENTS);
            for _ in 0..EVENTS {
                let event = watch.next().await.unwrap().unwrap();
                let sent = u64::from_le_bytes(event.kv.value[..8].try_into().unwrap());
                latencies.push((base.elapsed().as_nanos() as u64 - sent) as f64 / 1e6);
            }
            latencies
        }));
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    for i in 0..EVENTS {
        ticker.tick().await;
        let sent = base.elapsed().as_nanos() as u64;
        store
            .create(Bytes::from(format!("/bench/watch/{i:04}")), value(sent))
            .await
            .unwrap();
    }
    let mut all = Vec::with_capacity(WATCHERS * EVENTS);
    for watcher in watchers {
        all.extend(watcher.await.unwrap());
    }
    all.sort_by(f64::total_cmp);
    vec![format!(
        "watch, {WATCHERS} watchers x {EVENTS} events: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all[all.len() - 1]
    )]
}

async fn bench_churn(backend: Backend, options: &Options) -> Vec<String> {
    const KEYS: u64 = 1000;
    let instance = Instance::start(backend).await;
    let store = &instance.store;
    fill(store, "/bench/churn/", KEYS).await;
    let done = Arc::new(AtomicBool::new(false));
    let compactor = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            let mut previous = None;
            while !done.load(Ordering::Relaxed) {
                ticker.tick().await;
                if let Some(revision) = previous {
                    store.compact(revision).await.unwrap();
                }
                previous = Some(store.current_revision().await.unwrap());
            }
        })
    };
    let total = options.churn_updates;
    let next = Arc::new(AtomicU64::new(0));
    // Peak disk use in each quarter of the run: bounded means flat, not rising.
    let sampler = {
        let (done, next) = (done.clone(), next.clone());
        let files = instance.files.clone();
        tokio::spawn(async move {
            let mut quarters = [0u64; 4];
            while !done.load(Ordering::Relaxed) {
                if let Some(files) = &files {
                    let quarter = (next.load(Ordering::Relaxed) * 4 / total).min(3) as usize;
                    quarters[quarter] = quarters[quarter].max(dir_size(files));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            quarters
        })
    };
    let start = Instant::now();
    let writers: Vec<_> = (0..WRITERS as u64)
        .map(|w| {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                let keys: Vec<u64> = (0..KEYS).filter(|k| k % WRITERS as u64 == w).collect();
                let mut revisions = Vec::new();
                for k in &keys {
                    revisions.push(
                        store
                            .get(format!("/bench/churn/{k:06}").as_bytes(), None)
                            .await
                            .unwrap()
                            .unwrap(),
                    );
                }
                for i in 0.. {
                    if next.fetch_add(1, Ordering::Relaxed) >= total {
                        break;
                    }
                    let kv = &mut revisions[i % keys.len()];
                    *kv = store
                        .update(kv.key.clone(), value(i as u64), kv.mod_revision)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    compactor.await.unwrap();
    let quarters = sampler.await.unwrap();
    let mib = |b: u64| format!("{:.1}", b as f64 / (1 << 20) as f64);
    vec![format!(
        "churn, {total} updates over {KEYS} keys: {:.0} updates/s, peak disk {} MiB (per quarter of the run: {}), final {} MiB",
        total as f64 / elapsed,
        mib(quarters.iter().copied().max().unwrap_or(0)),
        quarters.map(mib).join(" / "),
        mib(instance.disk_bytes().unwrap_or(0)),
    )]
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "# store benchmark ({} cores)\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        for backend in &options.backends {
            let backend = *backend;
            println!("## {backend:?}");
            for scenario in &options.scenarios {
                let lines = match scenario.as_str() {
                    "create" => bench_create(backend, &options).await,
                    "range" => bench_range(backend).await,
                    "watch" => bench_watch(backend).await,
                    "churn" => bench_churn(backend, &options).await,
                    other => panic!("unknown scenario {other}"),
                };
                for line in lines {
                    println!("- {line}");
                }
            }
            println!();
        }
    });
}

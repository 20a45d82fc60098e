//! The cluster DNS figures (issue 7): queries per second for cluster names with the server on ONE core, and
//! the p99 latency at the target rate, measured by Debian's `dnsperf` (`apt-get install -y dnsperf`) running
//! on another core.
//!
//! The zone has `--services` (10,000) Services in 100 namespaces, every tenth headless with one EndpointSlice
//! of 10 ready endpoints (half of those with hostnames, as a StatefulSet's). The server runs on a
//! current-thread runtime in a thread pinned to CPU 0; dnsperf runs under `taskset -c 1` with a generated
//! query file (A of ClusterIP and headless Services, SRV, AAAA without data, PTR, pod names, NXDOMAIN).
//! Each round measures:
//! - throughput: dnsperf as fast as it can (100 queries in flight) for `--seconds` (10), against the
//!   server, then against the baseline: a trivial responder in the same kind of thread on the same core
//!   that sends each query back flagged as a response (the socket and runtime cost alone);
//! - latency: dnsperf limited to `--rate` (20,000) queries/s, each answer's latency recorded (`-v`), p99.
//!
//! Medians over `--rounds` (3) are printed.
//!
//! ```sh
//! apt-get install -y dnsperf
//! cargo bench -p gantry-dns --bench dns
//! # options: --services 10000 --seconds 10 --rounds 3 --rate 20000
//! ```

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a bench binary: failures end the run

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use gantry_client::k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use gantry_client::k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use gantry_dns::{Listeners, ServerConfig, Zone, ZoneConfig, serve};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;

const SERVER_CPU: usize = 0;
const CLIENT_CPU: &str = "1";
const NAMESPACES: usize = 100;

struct Args {
    services: usize,
    seconds: u64,
    rounds: usize,
    rate: u64,
}

fn args() -> Args {
    let mut args = Args {
        services: 10_000,
        seconds: 10,
        rounds: 3,
        rate: 20_000,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().expect("a value after the flag");
        match flag.as_str() {
            "--services" => args.services = value().parse().unwrap(),
            "--seconds" => args.seconds = value().parse().unwrap(),
            "--rounds" => args.rounds = value().parse().unwrap(),
            "--rate" => args.rate = value().parse().unwrap(),
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    args
}

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..ObjectMeta::default()
    }
}

fn is_headless(i: usize) -> bool {
    i.is_multiple_of(10)
}

fn cluster_ip(i: usize) -> String {
    format!("10.96.{}.{}", i / 250, i % 250 + 1)
}

/// The zone of the benchmark, and how long building it took.
fn build_zone(services: usize) -> (Zone, Duration) {
    let started = Instant::now();
    let mut zone = Zone::new(&ZoneConfig::default()).unwrap();
    for i in 0..services {
        let namespace = format!("ns-{}", i % NAMESPACES);
        let name = format!("svc-{i}");
        let headless = is_headless(i);
        let ports = vec![
            ServicePort {
                name: Some("http".into()),
                port: 80,
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            },
            ServicePort {
                name: Some("metrics".into()),
                port: 9090,
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            },
        ];
        let ip = if headless {
            "None".into()
        } else {
            cluster_ip(i)
        };
        zone.apply_service(&Service {
            metadata: meta(&namespace, &name),
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.clone()),
                cluster_ips: Some(vec![ip]),
                ports: Some(ports),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        });
        if headless {
            let mut slice_meta = meta(&namespace, &format!("{name}-abcde"));
            slice_meta.labels = Some(BTreeMap::from([(
                "kubernetes.io/service-name".to_owned(),
                name.clone(),
            )]));
            zone.apply_endpoint_slice(&EndpointSlice {
                metadata: slice_meta,
                address_type: "IPv4".into(),
                endpoints: (0..10)
                    .map(|e| Endpoint {
                        addresses: vec![format!(
                            "10.{}.{}.{}",
                            100 + i / 62_500,
                            i / 250 % 250,
                            e * 20 + i % 20
                        )],
                        hostname: (i % 20 == 0).then(|| format!("{name}-{e}")),
                        ..Endpoint::default()
                    })
                    .collect(),
                ports: Some(vec![EndpointPort {
                    name: Some("http".into()),
                    port: Some(8080),
                    protocol: Some("TCP".into()),
                    ..EndpointPort::default()
                }]),
            });
        }
    }
    (zone, started.elapsed())
}

/// The dnsperf query file: a fixed mix over every Service.
fn query_file(services: usize) -> String {
    let mut text = String::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..100_000usize {
        // xorshift: the same sequence every run.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = usize::try_from(x % services as u64).unwrap();
        let name = format!("svc-{i}.ns-{}.svc.cluster.local", i % NAMESPACES);
        let line = match n % 20 {
            0..=10 if !is_headless(i) => format!("{name} A"),
            0..=10 => format!("{name} A"),
            11 | 12 => format!(
                "svc-{}.ns-{}.svc.cluster.local A",
                i / 10 * 10,
                (i / 10 * 10) % NAMESPACES
            ),
            13 | 14 => format!("_http._tcp.{name} SRV"),
            15 => format!("{name} AAAA"),
            16 if !is_headless(i) => {
                let ip = cluster_ip(i);
                let octets: Vec<&str> = ip.split('.').rev().collect();
                format!("{}.in-addr.arpa PTR", octets.join("."))
            }
            16 => format!("{name} A"),
            17 => format!(
                "10-244-{}-{}.ns-1.pod.cluster.local A",
                i / 250 % 250,
                i % 250
            ),
            18 => format!("nope-{i}.ns-{}.svc.cluster.local A", i % NAMESPACES),
            _ => format!("{name} A"),
        };
        writeln!(text, "{line}").unwrap();
    }
    text
}

fn pin_to(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu).unwrap();
    sched_setaffinity(Pid::from_raw(0), &set).unwrap();
}

/// A serving thread: its address, and its thread id (for its CPU time).
#[derive(Clone, Copy)]
struct Served {
    address: SocketAddr,
    tid: i32,
}

/// Nanoseconds the thread `tid` of this process ran, and waited to run (`/proc/.../schedstat`).
fn schedstat(tid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).unwrap();
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().unwrap());
    (fields.next().unwrap(), fields.next().unwrap())
}

/// Serves the zone on loopback from a current-thread runtime in a thread pinned to [`SERVER_CPU`].
fn start_server(zone: Zone) -> Served {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        pin_to(SERVER_CPU);
        let tid = nix::unistd::gettid().as_raw();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listeners = Listeners::bind(&["127.0.0.1:0".parse().unwrap()])
                .await
                .unwrap();
            tx.send(Served {
                address: listeners.udp_addresses()[0],
                tid,
            })
            .unwrap();
            serve(
                Arc::new(RwLock::new(zone)),
                ServerConfig::default(),
                listeners,
            )
            .await
            .unwrap();
        });
    });
    rx.recv().unwrap()
}

/// The baseline: sends every datagram back with the response bit set, nothing else.
fn start_trivial_responder() -> Served {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        pin_to(SERVER_CPU);
        let tid = nix::unistd::gettid().as_raw();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            tx.send(Served {
                address: socket.local_addr().unwrap(),
                tid,
            })
            .unwrap();
            let mut buf = vec![0u8; 65535];
            loop {
                let (len, peer) = socket.recv_from(&mut buf).await.unwrap();
                if len >= 12 {
                    buf[2] |= 0x80;
                    let _ = socket.send_to(&buf[..len], peer).await;
                }
            }
        });
    });
    rx.recv().unwrap()
}

struct Run {
    qps: f64,
    completed: u64,
    lost: u64,
    latencies: Vec<f64>,
    /// The serving thread's CPU time per answered query, in microseconds.
    cpu_us: f64,
    /// The share of the run the serving thread waited for its core (other processes on it).
    waited: f64,
}

/// One dnsperf run on [`CLIENT_CPU`]; with `rate`, limited to it and recording every latency.
fn dnsperf(server: Served, file: &str, seconds: u64, rate: Option<u64>) -> Run {
    let mut command = Command::new("taskset");
    command
        .args(["-c", CLIENT_CPU, "dnsperf", "-s"])
        .arg(server.address.ip().to_string());
    command.args([
        "-p",
        &server.address.port().to_string(),
        "-d",
        file,
        "-l",
        &seconds.to_string(),
    ]);
    command.args(["-c", "1", "-T", "1", "-q", "100", "-t", "2"]);
    if let Some(rate) = rate {
        command.args(["-Q", &rate.to_string(), "-v"]);
    }
    // Its report goes to a file: reading a pipe while it runs would take CPU from one of the two sides.
    let report = std::env::temp_dir().join(format!("gantry-dns-bench-{}.out", std::process::id()));
    command.stdout(std::fs::File::create(&report).unwrap());
    let (ran, waited) = schedstat(server.tid);
    let started = Instant::now();
    let status = command
        .stderr(Stdio::inherit())
        .status()
        .expect("dnsperf runs (apt-get install -y dnsperf)");
    let elapsed = started.elapsed();
    let (ran, waited) = {
        let (r, w) = schedstat(server.tid);
        (r - ran, w - waited)
    };
    assert!(status.success(), "dnsperf failed: {status:?}");
    let text = std::fs::read_to_string(&report).unwrap();
    let _ = std::fs::remove_file(&report);
    let field = |label: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let qps = field("Queries per second:")
        .unwrap_or_else(|| panic!("no qps in dnsperf's output:\n{text}"));
    let completed = field("Queries completed:").unwrap_or(0.0) as u64;
    let lost = field("Queries lost:").unwrap_or(0.0) as u64;
    let latencies = text
        .lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .collect();
    Run {
        qps,
        completed,
        lost,
        latencies,
        cpu_us: ran as f64 / 1000.0 / completed.max(1) as f64,
        waited: waited as f64 / elapsed.as_nanos() as f64,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64) * p).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn describe(run: &Run) -> String {
    format!(
        "{:.0} q/s ({} answered, {} lost), {:.2} us CPU per query, waited for the core {:.1} % of the time",
        run.qps,
        run.completed,
        run.lost,
        run.cpu_us,
        run.waited * 100.0
    )
}

fn main() {
    let args = args();
    // This thread starts dnsperf and reads its reports: on the client's core, away from the server's.
    pin_to(CLIENT_CPU.parse().unwrap());
    if Command::new("dnsperf")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("dnsperf is missing: apt-get install -y dnsperf");
        std::process::exit(2);
    }
    let (zone, built) = build_zone(args.services);
    println!(
        "zone: {} Services ({} headless with 10 endpoints), built in {:.0} ms",
        zone.service_count(),
        args.services / 10,
        built.as_secs_f64() * 1000.0
    );
    let dir = std::env::temp_dir().join(format!("gantry-dns-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("queries.txt");
    std::fs::write(&file, query_file(args.services)).unwrap();
    let file = file.to_str().unwrap().to_owned();

    let server = start_server(zone);
    let baseline = start_trivial_responder();
    std::thread::sleep(Duration::from_millis(200));

    let mut rows: Vec<[f64; 6]> = Vec::new();
    for round in 1..=args.rounds {
        let run = dnsperf(server, &file, args.seconds, None);
        let base = dnsperf(baseline, &file, args.seconds, None);
        let timed = dnsperf(server, &file, args.seconds, Some(args.rate));
        let base_timed = dnsperf(baseline, &file, args.seconds, Some(args.rate));
        println!("round {round}, as fast as dnsperf goes:");
        println!("  gantry:   {}", describe(&run));
        println!("  baseline: {}", describe(&base));
        println!("round {round}, at {} q/s:", args.rate);
        println!("  gantry:   {}", describe(&timed));
        println!("  baseline: {}", describe(&base_timed));
        let p99 = percentile(timed.latencies.clone(), 0.99);
        let base_p99 = percentile(base_timed.latencies.clone(), 0.99);
        println!(
            "  p99 latency: gantry {:.3} ms (p50 {:.3}), baseline {:.3} ms (p50 {:.3})",
            p99 * 1000.0,
            percentile(timed.latencies, 0.5) * 1000.0,
            base_p99 * 1000.0,
            percentile(base_timed.latencies, 0.5) * 1000.0,
        );
        rows.push([
            run.qps,
            base.qps,
            run.cpu_us,
            base.cpu_us,
            p99 * 1000.0,
            base_p99 * 1000.0,
        ]);
    }
    let column = |i: usize| median(rows.iter().map(|r| r[i]).collect());
    let (qps, base_qps) = (column(0), column(1));
    let (cpu, base_cpu) = (column(2), column(3));
    println!("median of {} rounds:", args.rounds);
    println!(
        "  throughput: gantry {qps:.0} q/s, baseline {base_qps:.0} q/s (ratio {:.2})",
        qps / base_qps
    );
    println!(
        "  CPU per query on the serving core: gantry {cpu:.2} us ({:.0} q/s per core), baseline {base_cpu:.2} us \
         ({:.0} q/s per core)",
        1e6 / cpu,
        1e6 / base_cpu
    );
    println!(
        "  p99 at {} q/s: gantry {:.3} ms, baseline {:.3} ms",
        args.rate,
        column(4),
        column(5)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

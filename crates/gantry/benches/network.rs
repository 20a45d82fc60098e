//! The pod network's figures (issue 7), on a real cluster of two machines (network namespaces on one LAN
//! bridge, each running `gantry agent`, joined to a `gantry server`):
//! - data path: HTTP download throughput (busybox httpd, one 200 MiB file, curl on machine A) over the
//!   underlay (a server in machine B's namespace itself) against the overlay (a pod on machine B), and to the
//!   pod through its ClusterIP against its pod IP, alternating, medians of the rounds;
//! - route convergence: a Node created (or deleted) through the API until machine A has (or no longer has)
//!   the route to its pod network.
//!
//! Run as root: `cargo bench -p gantry --bench network [-- --rounds 5]` (needs kubectl 1.33 and curl).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark: failed unwraps end it; blocking sleeps are fine

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::cluster::Cluster;
use support::machine::Machine;
use support::node::{IMAGE, KUBECTL};
use support::{ok, write};

const FILE_MIB: u32 = 200;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let cluster = Cluster::start(112, "10.212.0.0/16", &[], &["bench-a", "bench-b"]);
    let (a, b) = (&cluster.machines[0].1, &cluster.machines[1].1);
    // The same pod behind plain routes (host-gw) in a second cluster: the pod network without encapsulation.
    let plain = Cluster::start(
        115,
        "10.215.0.0/16",
        &["--pod-network", "host-gw"],
        &["bench-a", "bench-b"],
    );
    plain.create("web", &web_manifest());
    let plain_ip = plain.running("web");
    cluster.create("web", &web_manifest());
    let pod_ip = cluster.running("web");
    let cluster_ip = cluster.get(&["get", "service", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();
    // The underlay's server: the same httpd in machine B's own namespace.
    let dir = cluster.server.dir.path().join("underlay-www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big"), vec![0u8; (FILE_MIB as usize) << 20]).unwrap();
    let _underlay = Killed(
        Command::new("ip")
            .args(["netns", "exec", &b.netns(), "busybox", "httpd", "-f", "-p"])
            .arg(format!("{}:9090", b.ip()))
            .arg("-h")
            .arg(&dir)
            .spawn()
            .unwrap(),
    );
    let urls = [
        (
            "underlay (machine B itself)",
            a,
            format!("http://{}:9090/big", b.ip()),
        ),
        (
            "overlay (pod on machine B)",
            a,
            format!("http://{pod_ip}:8080/big"),
        ),
        (
            "ClusterIP of that pod",
            a,
            format!("http://{cluster_ip}:80/big"),
        ),
        (
            "host-gw (pod on machine B)",
            &plain.machines[0].1,
            format!("http://{plain_ip}:8080/big"),
        ),
    ];
    for (what, from, url) in &urls {
        wait_for_download(from, url).unwrap_or_else(|| panic!("{what}: {url} never answered"));
    }
    let mut speeds: Vec<Vec<f64>> = vec![Vec::new(); urls.len()];
    for _ in 0..rounds {
        for (i, (_, from, url)) in urls.iter().enumerate() {
            speeds[i].push(download_mib_per_s(from, url).unwrap());
        }
    }
    let medians: Vec<f64> = speeds.iter_mut().map(|s| median(s)).collect();
    println!("data path, {FILE_MIB} MiB downloads from machine A, median of {rounds} rounds:");
    for ((what, _, _), m) in urls.iter().zip(&medians) {
        println!("  {what:<30} {m:>8.0} MiB/s");
    }
    println!("  overlay / underlay:   {:.2}", medians[1] / medians[0]);
    println!("  overlay / host-gw:    {:.2}", medians[1] / medians[3]);
    println!("  ClusterIP / pod IP:   {:.2}", medians[2] / medians[1]);
    drop(plain);
    // Route convergence: a Node that appears and goes, as machine A sees it.
    let mut joins = Vec::new();
    let mut leaves = Vec::new();
    for round in 0..rounds {
        let cidr = format!("10.212.{}.0/24", 200 + round);
        let node = format!(
            r#"{{"apiVersion": "v1", "kind": "Node", "metadata": {{"name": "ghost-{round}"}},
              "spec": {{"podCIDR": "{cidr}", "podCIDRs": ["{cidr}"]}},
              "status": {{"addresses": [{{"type": "InternalIP", "address": "10.112.0.{}"}}]}}}}"#,
            100 + round
        );
        let path = write(cluster.server.dir.path(), "ghost.json", &node);
        let start = Instant::now();
        ok(
            KUBECTL,
            &cluster.server,
            &["create", "-f", path.to_str().unwrap()],
        );
        joins.push(until_route(a, &cidr, true, start));
        let start = Instant::now();
        ok(
            KUBECTL,
            &cluster.server,
            &["delete", "node", &format!("ghost-{round}")],
        );
        leaves.push(until_route(a, &cidr, false, start));
    }
    println!(
        "route convergence on machine A, from the kubectl call (its own ~0.1 s included), median of {rounds}:"
    );
    println!("  node joins:  {:>6.0} ms", median(&mut joins));
    println!("  node leaves: {:>6.0} ms", median(&mut leaves));
}

/// The web pod on machine B (serving one big file on 8080) and its Service.
fn web_manifest() -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  nodeName: bench-b
  containers:
  - name: web
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count={FILE_MIB} 2>/dev/null && touch /www/ready && exec httpd -f -p 8080 -h /www"]
    resources: {{requests: {{cpu: "1"}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    )
}

/// Kills the child on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Downloads `url` on the machine once: MiB/s.
fn download_mib_per_s(machine: &Machine, url: &str) -> Option<f64> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &machine.netns(),
            "curl",
            "-sf",
            "-o",
            "/dev/null",
        ])
        .args(["--max-time", "60", "-w", "%{speed_download}", url])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let bytes_per_s: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    (out.status.success() && bytes_per_s > 0.0).then_some(bytes_per_s / f64::from(1u32 << 20))
}

fn wait_for_download(machine: &Machine, url: &str) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(speed) = download_mib_per_s(machine, url) {
            return Some(speed);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Milliseconds from `start` until the machine has (or no longer has) a route to `cidr`.
fn until_route(machine: &Machine, cidr: &str, present: bool, start: Instant) -> f64 {
    loop {
        let out = machine.exec(&["ip", "-4", "route", "show", cidr]);
        if String::from_utf8_lossy(&out.stdout).contains(cidr) == present {
            return start.elapsed().as_secs_f64() * 1000.0;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "route {cidr} never changed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

//! End to end: Services through the node agents' proxies, on two machines (network namespaces on one LAN
//! bridge, each running `gantry agent`): a Deployment behind a ClusterIP reached by name from a pod on the
//! other machine, balanced over its replicas, with no failed request during a rolling update; a pod reaching
//! itself through its Service (hairpin); a Service without endpoints refused at once; NodePort and
//! LoadBalancer from outside the cluster; Service environment variables. Real kubectl 1.33, real containers.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::cluster::{Cluster, client_pod};
use support::node::{IMAGE, KUBECTL};
use support::{curl, ok};

/// The Deployment `web` (two replicas spread over the machines, ready once httpd answers, draining for two
/// seconds when stopped) and its Services.
fn web(version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  strategy: {{rollingUpdate: {{maxUnavailable: 0, maxSurge: 1}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 5
      topologySpreadConstraints:
      - {{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {{matchLabels: {{app: web}}}}}}
      containers:
      - name: web
        image: {IMAGE}
        imagePullPolicy: Never
        env: [{{name: VERSION, value: "{version}"}}]
        command: [sh, -c, "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
        lifecycle: {{preStop: {{sleep: {{seconds: 2}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-outside}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{port: 8088, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: nothing}}
spec:
  selector: {{app: none}}
  ports: [{{port: 80}}]
"#
    )
}

#[test]
fn services_balance_survive_a_rollout_and_are_reached_from_outside() {
    let cluster = Cluster::start(114, "10.214.0.0/16", &[], &["svc-a", "svc-b"]);
    cluster.create("web", &web("1"));
    ok(
        KUBECTL,
        &cluster.server,
        &["rollout", "status", "deployment/web", "--timeout=90s"],
    );
    cluster.create("client", &client_pod("client", "svc-a"));
    cluster.running("client");
    let cluster_ip = cluster.get(&["get", "service", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();

    // By name and by address, from the client's machine: both replicas answer.
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 2 {
        if let Some(host) = cluster.fetch("client", "http://web/") {
            seen.insert(host);
        }
        assert!(Instant::now() < deadline, "only {seen:?} answered");
    }
    assert!(
        cluster
            .fetch("client", &format!("http://{cluster_ip}/"))
            .is_some()
    );

    // Service variables, for the Services that existed when the client started.
    let env = cluster.exec("client", &["env"]).unwrap();
    assert!(
        env.contains(&format!("WEB_SERVICE_HOST={cluster_ip}")),
        "{env}"
    );
    assert!(env.contains("WEB_SERVICE_PORT_HTTP=80"), "{env}");
    assert!(
        env.contains(&format!("WEB_PORT_80_TCP=tcp://{cluster_ip}:80")),
        "{env}"
    );

    // Hairpin: each replica reaches the Service, itself included.
    let pods = cluster.get(&["get", "pods", "-l", "app=web"]);
    let first = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut seen_from_web = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen_from_web.contains(&first) {
        if let Some(host) = cluster.fetch(&first, "http://web/") {
            seen_from_web.insert(host);
        }
        assert!(
            Instant::now() < deadline,
            "{first} never reached itself: {seen_from_web:?}"
        );
    }

    // No endpoints: refused at once, not left to time out.
    let started = Instant::now();
    let refused = cluster.exec(
        "client",
        &["sh", "-c", "timeout 5 wget -qO- http://nothing/ 2>&1"],
    );
    assert!(refused.is_none(), "a Service without endpoints answered");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "no reject: the request timed out"
    );

    // NodePort and LoadBalancer, from outside (this host): every node's address serves.
    let outside = cluster.get(&["get", "service", "web-outside"]);
    let node_port = outside["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    for (_, machine) in &cluster.machines {
        let (code, body) = curl(
            &format!("http://{}:{node_port}/", machine.ip()),
            &["--max-time", "5"],
        );
        assert_eq!(code, 200, "NodePort on {}: {body}", machine.ip());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let ingress = loop {
        let service = cluster.get(&["get", "service", "web-outside"]);
        let ips: BTreeSet<String> = service["status"]["loadBalancer"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["ip"].as_str().map(str::to_owned))
            .collect();
        if ips.len() == 2 {
            break ips;
        }
        assert!(
            Instant::now() < deadline,
            "load balancer status: {:#}",
            service["status"]
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let machines: BTreeSet<String> = cluster.machines.iter().map(|(_, m)| m.ip()).collect();
    assert_eq!(ingress, machines);
    for ip in &ingress {
        let (code, _) = curl(&format!("http://{ip}:8088/"), &["--max-time", "5"]);
        assert_eq!(code, 200, "load balancer address {ip}");
    }

    // A rolling update while the client keeps asking: not one request fails.
    let asking = {
        let kubeconfig = cluster.server.kubeconfig();
        std::thread::spawn(move || {
            let script = "ok=0; failed=0; i=0; while [ $i -lt 120 ]; do \
                if timeout 3 wget -qO- http://web/ >/dev/null 2>&1; then ok=$((ok+1)); else failed=$((failed+1)); fi; \
                i=$((i+1)); sleep 0.1; done; echo $ok $failed";
            let out = std::process::Command::new(support::kubectl_dir().join("kubectl.1.33"))
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["exec", "client", "--", "sh", "-c", script])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    cluster.create("web", &web("2"));
    ok(
        KUBECTL,
        &cluster.server,
        &["rollout", "status", "deployment/web", "--timeout=90s"],
    );
    let counts = asking.join().unwrap();
    let (answered, failed) = counts.split_once(' ').unwrap_or(("0", "?"));
    assert_eq!(
        failed, "0",
        "requests failed during the rollout ({answered} answered)"
    );
    assert!(answered.parse::<u32>().unwrap() > 100);
}

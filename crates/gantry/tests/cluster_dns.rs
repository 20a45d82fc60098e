//! End to end: the cluster DNS every node agent answers (queries to the `kube-dns` address are redirected to
//! the node's own server), seen from pods on two machines with busybox `nslookup`: Services, headless
//! Services (one record per ready pod, `hostname.subdomain` names), SRV records of named ports, ExternalName
//! CNAMEs, pod names, NXDOMAIN; a new Service resolvable at once. Real kubectl 1.33, real containers.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::time::{Duration, Instant};

use support::cluster::{Cluster, client_pod, web_pod};

/// What `nslookup` printed in the pod, retried until `check` holds (within 15 s).
fn lookup(cluster: &Cluster, pod: &str, args: &[&str], check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut command = vec!["nslookup"];
    command.extend_from_slice(args);
    loop {
        let mut all = vec!["exec", pod, "--"];
        all.extend_from_slice(&command);
        let out = support::kubectl("1.33", &cluster.server, &all);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if check(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "nslookup {args:?} in {pod}: {text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn pods_resolve_services_pods_and_named_ports_through_their_nodes_dns() {
    let cluster = Cluster::start(113, "10.213.0.0/16", &[], &["dns-a", "dns-b"]);
    // kube-dns exists, at the tenth address of the Service network.
    let dns = cluster.get(&["get", "service", "kube-dns", "-n", "kube-system"]);
    assert_eq!(dns["spec"]["clusterIP"], "10.43.0.10");

    cluster.create("client-a", &client_pod("client-a", "dns-a"));
    cluster.create("client-b", &client_pod("client-b", "dns-b"));
    cluster.create("web-1", &web_pod("web-1", "dns-a"));
    cluster.create("web-2", &web_pod("web-2", "dns-b"));
    cluster.create(
        "services",
        r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: search}
spec:
  type: ExternalName
  externalName: search.example.org
"#,
    );
    let web_1 = cluster.running("web-1");
    let web_2 = cluster.running("web-2");
    let client = cluster.running("client-a");
    cluster.running("client-b");
    let cluster_ip = cluster.get(&["get", "service", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();

    // Both nodes answer, by the short name (search paths) and the full one.
    for pod in ["client-a", "client-b"] {
        let text = lookup(&cluster, pod, &["web"], |t| t.contains(&cluster_ip));
        assert!(text.contains("web.default.svc.cluster.local"), "{text}");
    }
    lookup(
        &cluster,
        "client-a",
        &["web.default.svc.cluster.local"],
        |t| t.contains(&cluster_ip),
    );
    // Headless: one address per ready pod.
    lookup(&cluster, "client-b", &["web-headless"], |t| {
        t.contains(&web_1) && t.contains(&web_2)
    });
    // SRV of the named port.
    let srv = lookup(
        &cluster,
        "client-a",
        &["-type=SRV", "_http._tcp.web.default.svc.cluster.local"],
        |t| t.contains("port = 80") || t.contains(" 80 "),
    );
    assert!(srv.contains("web.default.svc.cluster.local"), "{srv}");
    // ExternalName: a CNAME to the external name.
    lookup(&cluster, "client-a", &["-type=CNAME", "search"], |t| {
        t.contains("search.example.org")
    });
    // A pod's own name.
    let dashed = client.replace('.', "-");
    lookup(
        &cluster,
        "client-b",
        &[&format!("{dashed}.default.pod.cluster.local")],
        |t| t.contains(&client),
    );
    // A name that does not exist.
    lookup(
        &cluster,
        "client-a",
        &["nothing.default.svc.cluster.local"],
        |t| t.contains("NXDOMAIN"),
    );
    // A new Service resolves at once.
    cluster.create(
        "late",
        "apiVersion: v1\nkind: Service\nmetadata: {name: late}\nspec:\n  selector: {app: none}\n  ports: [{port: 81}]\n",
    );
    let late_ip = cluster.get(&["get", "service", "late"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();
    lookup(&cluster, "client-b", &["late"], |t| t.contains(&late_ip));
}

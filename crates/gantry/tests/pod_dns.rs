//! End to end: the files the node agent makes for a pod as the kubelet makes them (`/etc/resolv.conf` by
//! `dnsPolicy` and `dnsConfig`, `/etc/hosts` with the pod's names and `hostAliases`, the hostname), and pods on
//! the host's network (`hostNetwork: true`), seen from inside the pods through `kubectl exec`, under a real
//! `gantry server` with its node agent running real containers.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::node::{IMAGE, KUBECTL, container, node_name, server, server_with, wait_for};
use support::{Server, ok, write};

/// `kubectl exec` in the pod `name` of `namespace`: what the command printed.
fn exec(server: &Server, namespace: &str, name: &str, command: &[&str]) -> String {
    let mut args = vec!["exec", "-n", namespace, name, "--"];
    args.extend_from_slice(command);
    ok(KUBECTL, server, &args)
}

/// Creates the pods of `manifest` and waits until each of `pods` (namespace, name) runs; their statuses.
fn create_running(
    server: &Server,
    file: &str,
    manifest: &str,
    pods: &[(&str, &str)],
) -> Vec<Value> {
    let path = write(server.dir.path(), file, manifest);
    ok(KUBECTL, server, &["create", "-f", path.to_str().unwrap()]);
    pods.iter()
        .map(|(namespace, name)| {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let out = ok(
                    KUBECTL,
                    server,
                    &["get", "pod", "-n", namespace, name, "-o", "json"],
                );
                let pod: Value = serde_json::from_str(&out).unwrap();
                if pod["status"]["containerStatuses"][0]["state"]["running"].is_object() {
                    break pod;
                }
                assert!(
                    Instant::now() < deadline,
                    "pod {namespace}/{name} never ran: {:#}",
                    pod["status"]
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .collect()
}

/// The node's resolvers as the kubelet reads `/etc/resolv.conf`: its nameservers, the last search line
/// (without trailing dots and `.`), and its options (a later one replacing an earlier one of its name).
fn node_resolvers() -> (Vec<String>, Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::<String>::new());
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.first() {
            Some(&"nameserver") if fields.len() > 1 => servers.push(fields[1].to_owned()),
            Some(&"search") => {
                searches = fields[1..]
                    .iter()
                    .filter(|s| **s != ".")
                    .map(|s| s.trim_end_matches('.').to_owned())
                    .collect();
            }
            Some(&"options") => {
                for option in &fields[1..] {
                    let name = option.split(':').next().unwrap();
                    match options
                        .iter_mut()
                        .find(|o| o.split(':').next() == Some(name))
                    {
                        Some(existing) => *existing = option.to_string(),
                        None => options.push(option.to_string()),
                    }
                }
            }
            _ => {}
        }
    }
    (servers, searches, options)
}

/// A resolv.conf as the kubelet (through containerd) writes a pod's.
fn resolv_conf(servers: &[String], searches: &[String], options: &[String]) -> String {
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for server in servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The ClusterFirst resolv.conf of a pod in `namespace`: the cluster's search paths, then the node's.
fn cluster_first(namespace: &str, dns: &str, domain: &str, extra: &[&str]) -> String {
    let (_, node_searches, _) = node_resolvers();
    let mut searches = vec![
        format!("{namespace}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.to_owned(),
    ];
    for search in node_searches
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
    {
        if !searches.iter().any(|s| s == search) {
            searches.push(search.to_owned());
        }
    }
    resolv_conf(&[dns.to_owned()], &searches, &["ndots:5".to_owned()])
}

const LOCALHOST: &str = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
    ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\n\
    fe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";

#[test]
fn resolv_conf_hosts_and_hostname_follow_the_pod_spec() {
    // The cluster DNS server defaults to the 10th address of the service network.
    let server = server_with(
        "10.94.0.0/24",
        "gtest94",
        &[
            "--service-cidr",
            "10.96.0.0/16",
            "--cluster-domain",
            "gantry.test",
        ],
    );
    ok(KUBECTL, &server, &["create", "namespace", "dns-a"]);
    let pod = |name: &str, namespace: &str, spec: &str| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
{spec}
  containers:
  - name: c
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sleep, "3600"]
---
"#,
            node = node_name()
        )
    };
    let manifest = [
        pod("first", "dns-a", ""),
        pod(
            "merged",
            "default",
            r#"  dnsPolicy: ClusterFirst
  dnsConfig:
    nameservers: [10.96.0.10, 192.0.2.1]
    searches: [svc.gantry.test, extra.example]
    options: [{name: ndots, value: "2"}, {name: edns0}]"#,
        ),
        pod("node-dns", "default", "  dnsPolicy: Default"),
        pod(
            "only-config",
            "default",
            r#"  dnsPolicy: None
  dnsConfig:
    nameservers: [192.0.2.53, 192.0.2.54]
    searches: [a.example, b.example]
    options: [{name: ndots, value: "1"}, {name: rotate}]"#,
        ),
        pod(
            "named",
            "dns-a",
            r#"  hostname: web-0
  subdomain: nginx
  hostAliases:
  - {ip: 10.1.2.3, hostnames: [foo.local, bar.local]}
  - {ip: "fd00::1", hostnames: [six.local]}"#,
        ),
        pod(
            "qualified",
            "default",
            "  hostname: db-0\n  subdomain: dbs\n  setHostnameAsFQDN: true",
        ),
    ]
    .concat();
    let pods = [
        ("dns-a", "first"),
        ("default", "merged"),
        ("default", "node-dns"),
        ("default", "only-config"),
        ("dns-a", "named"),
        ("default", "qualified"),
    ];
    let running = create_running(&server, "dns.yaml", &manifest, &pods);
    let ip = |i: usize| running[i]["status"]["podIP"].as_str().unwrap().to_owned();
    let resolv =
        |namespace: &str, name: &str| exec(&server, namespace, name, &["cat", "/etc/resolv.conf"]);

    // ClusterFirst (the default): the cluster DNS server, the namespace's search paths, ndots:5.
    let expected = cluster_first("dns-a", "10.96.0.10", "gantry.test", &[]);
    assert!(expected.starts_with("search dns-a.svc.gantry.test svc.gantry.test gantry.test"));
    assert_eq!(resolv("dns-a", "first"), expected);
    // dnsConfig is merged in: no duplicates, options replace those of their name.
    let merged = cluster_first("default", "10.96.0.10", "gantry.test", &["extra.example"]).replace(
        "nameserver 10.96.0.10\noptions ndots:5\n",
        "nameserver 10.96.0.10\nnameserver 192.0.2.1\noptions ndots:2 edns0\n",
    );
    assert!(merged.contains("nameserver 192.0.2.1\n"), "{merged}");
    assert_eq!(resolv("default", "merged"), merged);
    // Default: the node's resolvers.
    let (servers, searches, options) = node_resolvers();
    let node = resolv_conf(&servers, &searches, &options);
    assert!(node.contains("nameserver "), "{node}");
    assert_eq!(resolv("default", "node-dns"), node);
    // None: only dnsConfig.
    assert_eq!(
        resolv("default", "only-config"),
        "search a.example b.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions ndots:1 rotate\n"
    );

    // /etc/hosts: localhost, the pod's IP under its hostname (fully qualified with a subdomain), aliases.
    assert_eq!(
        exec(&server, "dns-a", "first", &["cat", "/etc/hosts"]),
        format!("{LOCALHOST}{}\tfirst\n", ip(0))
    );
    assert_eq!(exec(&server, "dns-a", "first", &["hostname"]), "first\n");
    assert_eq!(
        exec(&server, "dns-a", "named", &["cat", "/etc/hosts"]),
        format!(
            "{LOCALHOST}{}\tweb-0.nginx.dns-a.svc.gantry.test\tweb-0\n\n# Entries added by HostAliases.\n\
             10.1.2.3\tfoo.local\tbar.local\nfd00::1\tsix.local\n",
            ip(4)
        )
    );
    // spec.hostname wins over the pod's name; setHostnameAsFQDN makes the kernel's hostname the full name.
    assert_eq!(exec(&server, "dns-a", "named", &["hostname"]), "web-0\n");
    assert_eq!(
        exec(&server, "dns-a", "named", &["cat", "/etc/hostname"]),
        "web-0\n"
    );
    assert_eq!(
        exec(&server, "default", "qualified", &["hostname"]),
        "db-0.dbs.default.svc.gantry.test\n"
    );
    assert_eq!(
        exec(&server, "default", "qualified", &["cat", "/etc/hosts"]),
        format!(
            "{LOCALHOST}{}\tdb-0.dbs.default.svc.gantry.test\tdb-0\n",
            ip(5)
        )
    );

    for (namespace, name) in pods {
        ok(
            KUBECTL,
            &server,
            &["delete", "pod", "-n", namespace, name, "--wait=false"],
        );
    }
    for (namespace, name) in pods {
        ok(
            KUBECTL,
            &server,
            &[
                "wait",
                "--for=delete",
                "pod",
                "-n",
                namespace,
                name,
                "--timeout=30s",
            ],
        );
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` on the host's loopback port `port`: the body, once something answers (within 20 s).
fn get(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = TcpStream::connect(("127.0.0.1", port)).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text)
        });
        match answer {
            Ok(text) if text.starts_with("HTTP/1.") => {
                return text
                    .split_once("\r\n\r\n")
                    .map(|(_, body)| body.to_owned())
                    .unwrap_or_default();
            }
            other => assert!(
                Instant::now() < deadline,
                "nothing answers on 127.0.0.1:{port}: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The addresses the host-local IPAM of the agent in `agent` has handed out (its lease files).
fn ipam_leases(agent: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(agent.join("cni/ipam/gantry"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

/// The interfaces attached to the bridge `name` (the agent makes the bridge at start: its DNS server
/// listens on the pods' gateway; pods' interfaces are its ports).
fn bridge_ports(name: &str) -> usize {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn a_host_network_pod_uses_the_node_network_and_leaves_it_alone() {
    let mut node = server("10.95.0.0/24", "gtest95");
    let port = free_port();
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: on-host}}
spec:
  nodeName: {node}
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  hostAliases: [{{ip: 10.1.2.3, hostnames: [foo.local]}}]
  containers:
  - name: web
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "mkdir -p /www && echo hello from the host network > /www/index.html && exec httpd -f -p 127.0.0.1:{port} -h /www"]
---
apiVersion: v1
kind: Pod
metadata: {{name: on-host-dns}}
spec:
  nodeName: {node}
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sleep, "3600"]
"#,
        node = node_name()
    );
    let running = create_running(
        &node,
        "on-host.yaml",
        &manifest,
        &[("default", "on-host"), ("default", "on-host-dns")],
    );
    let status = &running[0]["status"];
    assert_eq!(status["podIP"], status["hostIP"], "{status:#}");
    assert_eq!(status["podIPs"][0]["ip"], status["hostIP"], "{status:#}");
    assert_eq!(running[1]["status"]["podIP"], status["hostIP"]);

    // The node's hostname, the node's hosts file (with the pod's aliases), the node's resolvers (ClusterFirst
    // on the host's network is Default), and ClusterFirstWithHostNet for the cluster's.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        exec(&node, "default", "on-host", &["hostname"]).trim(),
        hostname.trim()
    );
    assert_eq!(
        exec(&node, "default", "on-host", &["cat", "/etc/hosts"]),
        format!(
            "# Kubernetes-managed hosts file (host network).\n{}\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\n",
            std::fs::read_to_string("/etc/hosts").unwrap()
        )
    );
    let (servers, searches, options) = node_resolvers();
    assert_eq!(
        exec(&node, "default", "on-host", &["cat", "/etc/resolv.conf"]),
        resolv_conf(&servers, &searches, &options)
    );
    assert_eq!(
        exec(
            &node,
            "default",
            "on-host-dns",
            &["cat", "/etc/resolv.conf"]
        ),
        cluster_first("default", "10.43.0.10", "cluster.local", &[])
    );

    // The server in the pod listens on the host's loopback.
    assert_eq!(get(port), "hello from the host network\n");
    // No CNI attachment: nothing on the pods' bridge, no address handed out.
    assert_eq!(bridge_ports("gtest95"), 0);
    assert_eq!(
        ipam_leases(&node.dir.path().join("agent")),
        Vec::<String>::new()
    );

    // After an agent restart the pod is adopted as it runs, still on the host's network.
    let before = container(&running[0], "web").clone();
    node.server.kill_and_restart();
    std::thread::sleep(Duration::from_secs(3));
    let after = wait_for(&node, "on-host", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    assert_eq!(
        container(&after, "web")["containerID"],
        before["containerID"],
        "{:#}",
        after["status"]
    );
    assert_eq!(after["status"]["podIP"], after["status"]["hostIP"]);
    assert_eq!(get(port), "hello from the host network\n");

    // Deleted, the pod lets go of the port and leaves nothing behind.
    let uid = after["metadata"]["uid"].as_str().unwrap().to_owned();
    ok(
        KUBECTL,
        &node,
        &["delete", "pod", "on-host", "on-host-dns", "--timeout=30s"],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpListener::bind(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} is still taken");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(bridge_ports("gtest95"), 0);
    assert_eq!(
        ipam_leases(&node.dir.path().join("agent")),
        Vec::<String>::new()
    );
    let sandbox = node
        .dir
        .path()
        .join("agent/pods")
        .join(&uid)
        .join("sandbox");
    assert!(!sandbox.exists(), "{} is left", sandbox.display());
}

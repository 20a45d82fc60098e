//! End to end: the Endpoints and EndpointSlice controllers in `gantry server`, with real kubectl 1.33. Pods
//! run as real containers by the server's own agent (a ReplicaSet with a readiness probe behind a Service
//! with a named targetPort): their IPs and resolved port show in `kubectl get endpoints` and in the
//! Service's EndpointSlices; a pod that turns unready moves to notReadyAddresses / ready=false; a deleted
//! pod is shown terminating while its grace period runs, then leaves; scaling up adds it; deleting the
//! Service deletes both. Without pods: a Service without selector keeps its hand-made Endpoints; one that
//! loses its selector loses its managed Endpoints and slices; ExternalName Services get none; a restarted
//! server keeps the same slice (no duplicates).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::node::{IMAGE, KUBECTL, server};
use support::{Server, kubectl, ok, write};

const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io";

fn get(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&ok(KUBECTL, server, &all)).unwrap()
}

fn apply(server: &Server, name: &str, manifest: &str) {
    let path = write(server.dir.path(), &format!("{name}.yaml"), manifest);
    ok(KUBECTL, server, &["apply", "-f", path.to_str().unwrap()]);
}

/// The Service's Endpoints, or `None` when there are none.
fn endpoints(server: &Server, service: &str) -> Option<Value> {
    let out = kubectl(
        KUBECTL,
        server,
        &["get", "endpoints", service, "-o", "json"],
    );
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// The managed EndpointSlices of the Service.
fn slices(server: &Server, service: &str) -> Vec<Value> {
    let selector = format!("kubernetes.io/service-name={service},{MANAGED_BY}");
    let list = get(server, &["get", "endpointslices", "-l", &selector]);
    list["items"].as_array().unwrap().clone()
}

/// Every endpoint of the slices.
fn slice_endpoints(slices: &[Value]) -> Vec<Value> {
    slices
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The IPs in `field` (`addresses` or `notReadyAddresses`) of every subset, sorted.
fn addresses(endpoints: &Value, field: &str) -> Vec<String> {
    let mut ips: Vec<String> = endpoints["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s[field].as_array().cloned().unwrap_or_default())
        .map(|a| a["ip"].as_str().unwrap().to_owned())
        .collect();
    ips.sort();
    ips
}

/// Waits (up to `limit`) until `check` holds of what `read` returns; returns it.
fn until<T: std::fmt::Debug>(
    limit: Duration,
    what: &str,
    read: impl Fn() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let current = read();
        if check(&current) {
            return current;
        }
        assert!(Instant::now() < deadline, "never {what}: {current:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for_node(server: &Server) {
    let node = support::node::node_name();
    until(
        Duration::from_secs(30),
        "registered the node",
        || {
            kubectl(KUBECTL, server, &["get", "node", &node])
                .status
                .success()
        },
        |ok| *ok,
    );
}

/// The running, not terminating pods labelled app=web: (name, IP).
fn web_pods(server: &Server) -> Vec<(String, String)> {
    let list = get(server, &["get", "pods", "-l", "app=web"]);
    let mut pods: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| p["status"]["phase"] == "Running")
        .filter_map(|p| {
            Some((
                p["metadata"]["name"].as_str()?.to_owned(),
                p["status"]["podIP"].as_str()?.to_owned(),
            ))
        })
        .collect();
    pods.sort();
    pods
}

fn condition(endpoint: &Value, name: &str) -> bool {
    endpoint["conditions"][name].as_bool().unwrap()
}

fn slice_endpoint<'a>(endpoints: &'a [Value], ip: &str) -> Option<&'a Value> {
    endpoints.iter().find(|e| e["addresses"][0] == ip)
}

#[test]
fn a_service_lists_its_pods_in_endpoints_and_endpointslices() {
    let server = server("10.70.0.0/24", "gtest70");
    wait_for_node(&server);
    let minute = Duration::from_secs(60);
    apply(
        &server,
        "service",
        r#"apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {team: blue}
spec:
  selector: {app: web}
  ports:
  - {name: web, port: 80, targetPort: http, protocol: TCP}
"#,
    );
    // Ready while /tmp/ready exists; SIGTERM ignored, so a deleted pod stays terminating for its grace period.
    let replicaset = |replicas: u32| {
        format!(
            r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 6
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [sh, -c, 'trap "" TERM; touch /tmp/ready; while true; do sleep 1; done']
        ports:
        - {{name: http, containerPort: 8080}}
        readinessProbe:
          exec: {{command: [cat, /tmp/ready]}}
          periodSeconds: 1
"#
        )
    };
    apply(&server, "replicaset", &replicaset(2));
    let pods = until(
        minute,
        "2 running pods",
        || web_pods(&server),
        |p| p.len() == 2,
    );
    let mut ips: Vec<String> = pods.iter().map(|(_, ip)| ip.clone()).collect();
    ips.sort();

    // Both ready: in the Endpoints' addresses with the resolved named port, and ready in the slice.
    let ep = until(
        minute,
        "listed both pods as ready",
        || endpoints(&server, "web"),
        |e| e.as_ref().is_some_and(|e| addresses(e, "addresses") == ips),
    )
    .unwrap();
    let subset = &ep["subsets"][0];
    assert_eq!(subset["ports"][0]["port"], 8080, "{ep:#}");
    assert_eq!(subset["ports"][0]["name"], "web");
    assert_eq!(subset["ports"][0]["protocol"], "TCP");
    let address = &subset["addresses"][0];
    assert_eq!(address["targetRef"]["kind"], "Pod");
    assert_eq!(address["nodeName"], support::node::node_name());
    assert!(
        pods.iter()
            .any(|(name, _)| address["targetRef"]["name"] == *name)
    );
    assert_eq!(ep["metadata"]["labels"]["team"], "blue");
    assert_eq!(
        ep["metadata"]["labels"]["endpoints.kubernetes.io/managed-by"],
        "endpoint-controller"
    );
    assert!(
        ep["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"]
            .is_string()
    );
    let table = ok(KUBECTL, &server, &["get", "endpoints", "web"]);
    for ip in &ips {
        assert!(table.contains(&format!("{ip}:8080")), "{table}");
    }

    let all_ready = |s: &Vec<Value>| {
        let e = slice_endpoints(s);
        e.len() == 2 && e.iter().all(|e| condition(e, "ready"))
    };
    let found = until(
        minute,
        "a slice with both pods ready",
        || slices(&server, "web"),
        all_ready,
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    let slice = &found[0];
    let slice_name = slice["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(slice_name.starts_with("web-"), "{slice_name}");
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["ports"][0]["port"], 8080);
    assert_eq!(slice["ports"][0]["name"], "web");
    assert_eq!(slice["metadata"]["labels"]["team"], "blue");
    let service_uid = get(&server, &["get", "service", "web"])["metadata"]["uid"].clone();
    let owner = &slice["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Service");
    assert_eq!(owner["uid"], service_uid);
    assert_eq!(owner["controller"], true);
    assert_eq!(owner["blockOwnerDeletion"], true);
    let mut slice_ips: Vec<String> = slice_endpoints(&found)
        .iter()
        .map(|e| e["addresses"][0].as_str().unwrap().to_owned())
        .collect();
    slice_ips.sort();
    assert_eq!(slice_ips, ips);
    for e in slice_endpoints(&found) {
        assert!(
            condition(&e, "serving") && !condition(&e, "terminating"),
            "{e:#}"
        );
        assert_eq!(e["targetRef"]["kind"], "Pod");
        assert_eq!(e["nodeName"], support::node::node_name());
    }
    // `kubectl describe service` shows them.
    let described = ok(KUBECTL, &server, &["describe", "service", "web"]);
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("Endpoints:") && ips.iter().all(|ip| l.contains(ip.as_str()))),
        "{described}"
    );

    // The first pod turns unready: in notReadyAddresses, and ready=false, serving=false in its slice.
    let (unready_pod, unready_ip) = pods[0].clone();
    let (_, ready_ip) = pods[1].clone();
    ok(
        KUBECTL,
        &server,
        &["exec", &unready_pod, "--", "rm", "/tmp/ready"],
    );
    until(
        minute,
        "moved the unready pod to notReadyAddresses",
        || endpoints(&server, "web").unwrap(),
        |e| {
            addresses(e, "notReadyAddresses") == [unready_ip.clone()]
                && addresses(e, "addresses") == [ready_ip.clone()]
        },
    );
    let found = until(
        minute,
        "marked the unready pod not ready in its slice",
        || slices(&server, "web"),
        |s| {
            let e = slice_endpoints(s);
            slice_endpoint(&e, &unready_ip).is_some_and(|e| !condition(e, "ready"))
        },
    );
    let e = slice_endpoints(&found);
    let unready = slice_endpoint(&e, &unready_ip).unwrap();
    assert!(!condition(unready, "serving") && !condition(unready, "terminating"));
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0]["metadata"]["name"],
        slice_name.as_str(),
        "updated in place"
    );

    // Scaling up adds the new pod.
    apply(&server, "replicaset", &replicaset(3));
    let pods = until(
        minute,
        "3 running pods",
        || web_pods(&server),
        |p| p.len() == 3,
    );
    let new_ip = pods
        .iter()
        .map(|(_, ip)| ip.clone())
        .find(|ip| *ip != unready_ip && *ip != ready_ip)
        .unwrap();
    until(
        minute,
        "listed the new pod as ready",
        || endpoints(&server, "web").unwrap(),
        |e| addresses(e, "addresses").contains(&new_ip),
    );
    let found = until(
        minute,
        "added the new pod to the slice",
        || slices(&server, "web"),
        |s| {
            let e = slice_endpoints(s);
            e.len() == 3 && slice_endpoint(&e, &new_ip).is_some_and(|e| condition(e, "ready"))
        },
    );
    assert_eq!(found.len(), 1, "one slice holds all three: {found:#?}");

    // A deleted pod: terminating (ready=false, terminating=true) in the slice while its grace period
    // runs, out of the Endpoints at once, then out of the slice.
    let doomed = pods
        .iter()
        .find(|(_, ip)| *ip == ready_ip)
        .unwrap()
        .0
        .clone();
    ok(
        KUBECTL,
        &server,
        &["delete", "pod", &doomed, "--wait=false"],
    );
    until(
        Duration::from_secs(20),
        "showed the deleted pod terminating",
        || slices(&server, "web"),
        |s| {
            let e = slice_endpoints(s);
            slice_endpoint(&e, &ready_ip)
                .is_some_and(|e| condition(e, "terminating") && !condition(e, "ready"))
        },
    );
    let ep = endpoints(&server, "web").unwrap();
    assert!(
        !addresses(&ep, "addresses").contains(&ready_ip)
            && !addresses(&ep, "notReadyAddresses").contains(&ready_ip),
        "terminating pods are not in the Endpoints: {ep:#}"
    );
    until(
        minute,
        "removed the deleted pod from the slice",
        || slices(&server, "web"),
        |s| slice_endpoint(&slice_endpoints(s), &ready_ip).is_none(),
    );

    // Deleting the Service deletes its Endpoints and slices.
    ok(KUBECTL, &server, &["delete", "service", "web"]);
    until(
        Duration::from_secs(30),
        "deleted the Endpoints and slices with the Service",
        || (endpoints(&server, "web"), slices(&server, "web")),
        |(e, s)| e.is_none() && s.is_empty(),
    );
    ok(KUBECTL, &server, &["delete", "rs", "web", "--timeout=60s"]);
}

#[test]
fn services_without_selectors_are_left_alone_and_restarts_make_no_duplicates() {
    let mut server = Server::start();
    apply(
        &server,
        "services",
        r#"apiVersion: v1
kind: Service
metadata: {name: external}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: external}
subsets:
- addresses: [{ip: 192.0.2.10}]
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: lonely}
spec:
  selector: {app: nothing}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: alias}
spec:
  type: ExternalName
  externalName: example.com
  selector: {app: nothing}
"#,
    );
    let ten = Duration::from_secs(10);
    // A Service that selects no pod: empty Endpoints, and one empty placeholder slice.
    let ep = until(
        ten,
        "made the Endpoints of lonely",
        || endpoints(&server, "lonely"),
        Option::is_some,
    )
    .unwrap();
    assert!(ep["subsets"].as_array().is_none_or(Vec::is_empty), "{ep:#}");
    let placeholder = until(
        ten,
        "made the placeholder slice",
        || slices(&server, "lonely"),
        |s| s.len() == 1,
    );
    assert!(slice_endpoints(&placeholder).is_empty());
    let placeholder_name = placeholder[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    // Nothing managed for the Service without selector (its hand-made Endpoints stay as they are) nor for
    // the ExternalName one; the API server's own `kubernetes` Endpoints and slice are untouched.
    std::thread::sleep(Duration::from_secs(2));
    let external = endpoints(&server, "external").unwrap();
    assert_eq!(addresses(&external, "addresses"), ["192.0.2.10"]);
    assert!(external["metadata"]["labels"].is_null(), "{external:#}");
    assert!(slices(&server, "external").is_empty());
    assert!(endpoints(&server, "alias").is_none());
    assert!(slices(&server, "alias").is_empty());
    let api = endpoints(&server, "kubernetes").unwrap();
    assert!(api["metadata"]["labels"]["endpoints.kubernetes.io/managed-by"].is_null());
    assert!(
        slices(&server, "kubernetes").is_empty(),
        "the API server's slice is not managed"
    );
    let kubernetes_slice = get(&server, &["get", "endpointslice", "kubernetes"]);
    assert_eq!(
        kubernetes_slice["endpoints"][0]["addresses"][0],
        "127.0.0.1"
    );

    // Managed Endpoints deleted by hand come back.
    ok(KUBECTL, &server, &["delete", "endpoints", "lonely"]);
    until(
        ten,
        "made the Endpoints again",
        || endpoints(&server, "lonely"),
        Option::is_some,
    );

    // A restarted server finds its slice again: no duplicate, the same placeholder.
    server.kill_and_restart();
    std::thread::sleep(Duration::from_secs(3));
    let after = slices(&server, "lonely");
    assert_eq!(after.len(), 1, "{after:#?}");
    assert_eq!(after[0]["metadata"]["name"], placeholder_name.as_str());

    // Losing its selector, the Service loses its managed Endpoints and slices.
    ok(
        KUBECTL,
        &server,
        &[
            "patch",
            "service",
            "lonely",
            "--type=json",
            "-p",
            r#"[{"op": "remove", "path": "/spec/selector"}]"#,
        ],
    );
    until(
        ten,
        "deleted the Endpoints and slice of the Service without selector",
        || (endpoints(&server, "lonely"), slices(&server, "lonely")),
        |(e, s)| e.is_none() && s.is_empty(),
    );
    // The Service without selector never lost its Endpoints.
    assert_eq!(
        addresses(&endpoints(&server, "external").unwrap(), "addresses"),
        ["192.0.2.10"]
    );
}

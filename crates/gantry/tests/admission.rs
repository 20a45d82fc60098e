//! End to end: the API server's admission, with real kubectl 1.33 against a real `gantry server` (no agent:
//! pods stay Pending, which is all these need). PriorityClasses (the system ones from the start, `kubectl
//! get|create|explain priorityclass`) and the priority a new pod gets; LimitRange defaults and bounds;
//! ResourceQuota charges and refusals with upstream's messages, usage shown by `kubectl describe quota` and
//! given back after a delete, and racing creates that never take more than the quota.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, kubectl, ok, write};

const KUBECTL: &str = "1.33";

fn get(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&ok(KUBECTL, server, &all)).unwrap()
}

/// Runs kubectl expecting a refusal; its stderr.
fn refused(server: &Server, args: &[&str]) -> String {
    let out = kubectl(KUBECTL, server, args);
    assert!(
        !out.status.success(),
        "kubectl {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn until(limit: Duration, what: &str, check: impl Fn() -> Result<(), String>) {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(()) => return,
            Err(state) => assert!(Instant::now() < deadline, "never {what}: {state}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates from a manifest written to the server's directory; kubectl's output.
fn create(server: &Server, file: &str, manifest: &str) -> std::process::Output {
    let path = write(server.dir.path(), file, manifest);
    kubectl(KUBECTL, server, &["create", "-f", path.to_str().unwrap()])
}

fn created(server: &Server, file: &str, manifest: &str) {
    let out = create(server, file, manifest);
    assert!(
        out.status.success(),
        "creating {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn not_created(server: &Server, file: &str, manifest: &str) -> String {
    let out = create(server, file, manifest);
    assert!(!out.status.success(), "{file} was created");
    String::from_utf8(out.stderr).unwrap()
}

/// A pod manifest: one container `main`, `spec` lines added (indented for the spec), `resources` for it.
fn pod(namespace: &str, name: &str, spec: &str, resources: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{spec}
  containers:
  - name: main
    image: busybox
    resources: {resources}
"#
    )
}

/// Waits until the quota's status counts every resource of its spec; the quota as JSON.
fn counted(server: &Server, namespace: &str, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let quota = get(server, &["get", "quota", name, "-n", namespace]);
        let hard = quota["spec"]["hard"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let used = &quota["status"]["used"];
        if quota["status"]["hard"] == quota["spec"]["hard"]
            && hard.keys().all(|k| used.get(k).is_some())
        {
            return quota;
        }
        assert!(
            Instant::now() < deadline,
            "quota {namespace}/{name} never counted: {}",
            quota["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn priority_classes_give_pods_their_priority() {
    let server = Server::start();

    // The system classes exist from the start, printed as kubectl prints them.
    let table = ok(KUBECTL, &server, &["get", "pc"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
        "{table}"
    );
    let node_critical = table
        .lines()
        .find(|l| l.starts_with("system-node-critical "))
        .unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = node_critical.split_whitespace().collect();
    assert_eq!(
        (cells[1], cells[2], cells[4]),
        ("2000001000", "false", "PreemptLowerPriority")
    );
    assert!(table.contains("system-cluster-critical"), "{table}");
    let explained = ok(KUBECTL, &server, &["explain", "priorityclass.value"]);
    assert!(
        explained.contains("value represents the integer value of this priority class"),
        "{explained}"
    );

    ok(
        KUBECTL,
        &server,
        &[
            "create",
            "priorityclass",
            "high",
            "--value=1000",
            "--description=important",
        ],
    );
    ok(
        KUBECTL,
        &server,
        &[
            "create",
            "priorityclass",
            "polite",
            "--value=10",
            "--preemption-policy=Never",
        ],
    );

    // A named class gives its value and policy; no name and no default class gives 0.
    created(
        &server,
        "named.yaml",
        &pod("default", "named", "  priorityClassName: high", "{}"),
    );
    let named = get(&server, &["get", "pod", "named"]);
    assert_eq!(named["spec"]["priority"], 1000);
    assert_eq!(named["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    created(
        &server,
        "polite.yaml",
        &pod("default", "polite", "  priorityClassName: polite", "{}"),
    );
    assert_eq!(
        get(&server, &["get", "pod", "polite"])["spec"]["preemptionPolicy"],
        "Never"
    );
    created(
        &server,
        "critical.yaml",
        &pod(
            "default",
            "critical",
            "  priorityClassName: system-node-critical",
            "{}",
        ),
    );
    assert_eq!(
        get(&server, &["get", "pod", "critical"])["spec"]["priority"],
        2_000_001_000_i64
    );
    created(&server, "plain.yaml", &pod("default", "plain", "", "{}"));
    let plain = get(&server, &["get", "pod", "plain"]);
    assert_eq!(plain["spec"]["priority"], 0);
    assert!(
        plain["spec"].get("priorityClassName").is_none(),
        "{:#}",
        plain["spec"]
    );

    // With a global default, pods that name no class get it.
    ok(
        KUBECTL,
        &server,
        &[
            "create",
            "priorityclass",
            "everyone",
            "--value=5",
            "--global-default",
        ],
    );
    created(
        &server,
        "defaulted.yaml",
        &pod("default", "defaulted", "", "{}"),
    );
    let defaulted = get(&server, &["get", "pod", "defaulted"]);
    assert_eq!(defaulted["spec"]["priorityClassName"], "everyone");
    assert_eq!(defaulted["spec"]["priority"], 5);
    let second = refused(
        &server,
        &[
            "create",
            "priorityclass",
            "also",
            "--value=6",
            "--global-default",
        ],
    );
    assert!(
        second.contains(r#"priorityclasses.scheduling.k8s.io "also" is forbidden: PriorityClass everyone is already marked as default. Only one default can exist"#),
        "{second}"
    );

    // Refusals, in upstream's words.
    let unknown = not_created(
        &server,
        "ghost.yaml",
        &pod("default", "ghost", "  priorityClassName: nope", "{}"),
    );
    assert!(
        unknown.contains(r#"pods "ghost" is forbidden: no PriorityClass with name nope was found"#),
        "{unknown}"
    );
    let mismatch = not_created(
        &server,
        "liar.yaml",
        &pod(
            "default",
            "liar",
            "  priorityClassName: high\n  priority: 7",
            "{}",
        ),
    );
    assert!(
        mismatch.contains("the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"),
        "{mismatch}"
    );
    let huge = refused(
        &server,
        &["create", "priorityclass", "huge", "--value=1000000001"],
    );
    assert!(
        huge.contains(
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
        ),
        "{huge}"
    );
    let reserved = refused(
        &server,
        &["create", "priorityclass", "system-mine", "--value=1"],
    );
    assert!(
        reserved.contains(
            "priority class names with 'system-' prefix are reserved for system use only"
        ),
        "{reserved}"
    );
    let changed = refused(
        &server,
        &["patch", "pc", "high", "-p", r#"{"value": 2000}"#],
    );
    assert!(
        changed.contains("value: Forbidden: may not be changed in an update."),
        "{changed}"
    );
    let system = refused(&server, &["delete", "pc", "system-node-critical"]);
    assert!(
        system.contains("this is a system priority class and cannot be deleted"),
        "{system}"
    );
    // A user class goes like anything else.
    ok(KUBECTL, &server, &["delete", "pc", "polite"]);
}

#[test]
fn limit_ranges_default_and_bound_containers() {
    let server = Server::start();
    ok(KUBECTL, &server, &["create", "namespace", "limited"]);
    created(
        &server,
        "limits.yaml",
        r#"apiVersion: v1
kind: LimitRange
metadata: {name: limits, namespace: limited}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 100m, memory: 128Mi}
    max: {cpu: "1"}
  - type: Pod
    max: {memory: 1Gi}
"#,
    );

    // What a container leaves out comes from the defaults, visible in the stored pod.
    created(&server, "bare.yaml", &pod("limited", "bare", "", "{}"));
    let yaml = ok(
        KUBECTL,
        &server,
        &["get", "pod", "bare", "-n", "limited", "-o", "yaml"],
    );
    for line in [
        "kubernetes.io/limit-ranger: 'LimitRanger plugin set:",
        "cpu: 500m",
        "cpu: 100m",
        "memory: 256Mi",
        "memory: 128Mi",
    ] {
        assert!(yaml.contains(line), "{line} in {yaml}");
    }
    let bare = get(&server, &["get", "pod", "bare", "-n", "limited"]);
    assert_eq!(
        bare["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container main; cpu, memory limit for container main"
    );
    let resources = &bare["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"]["cpu"], "500m", "{resources}");
    assert_eq!(resources["limits"]["memory"], "256Mi", "{resources}");
    assert_eq!(resources["requests"]["cpu"], "100m", "{resources}");
    assert_eq!(resources["requests"]["memory"], "128Mi", "{resources}");
    assert_eq!(bare["status"]["qosClass"], "Burstable");

    // What it sets stays.
    created(
        &server,
        "own.yaml",
        &pod("limited", "own", "", "{limits: {cpu: 800m}}"),
    );
    let own = get(&server, &["get", "pod", "own", "-n", "limited"]);
    assert_eq!(
        own["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "800m"
    );
    assert_eq!(
        own["spec"]["containers"][0]["resources"]["requests"]["cpu"],
        "800m"
    );

    // Past a maximum: refused, as upstream words it.
    let big = not_created(
        &server,
        "big.yaml",
        &pod("limited", "big", "", "{limits: {cpu: \"2\"}}"),
    );
    assert!(
        big.contains(
            r#"pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2"#
        ),
        "{big}"
    );
    let heavy = not_created(
        &server,
        "heavy.yaml",
        &pod("limited", "heavy", "", "{limits: {memory: 2Gi}}"),
    );
    assert!(
        heavy.contains("maximum memory usage per Pod is 1Gi, but limit is 2Gi"),
        "{heavy}"
    );

    // Claims are held to the storage bounds.
    created(
        &server,
        "storage-limits.yaml",
        r#"apiVersion: v1
kind: LimitRange
metadata: {name: storage, namespace: limited}
spec:
  limits:
  - type: PersistentVolumeClaim
    max: {storage: 5Gi}
"#,
    );
    let claim = |name: &str, size: &str| {
        format!(
            r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}, namespace: limited}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: {size}}}}}
"#
        )
    };
    created(&server, "small.yaml", &claim("small", "1Gi"));
    let large = not_created(&server, "large.yaml", &claim("large", "10Gi"));
    assert!(
        large.contains(r#"persistentvolumeclaims "large" is forbidden: maximum storage usage per PersistentVolumeClaim is 5Gi, but request is 10Gi"#),
        "{large}"
    );

    // LimitRanges are validated as upstream does.
    let invalid = not_created(
        &server,
        "bad-limits.yaml",
        r#"apiVersion: v1
kind: LimitRange
metadata: {name: bad, namespace: limited}
spec:
  limits:
  - type: Container
    min: {cpu: "2"}
    max: {cpu: "1"}
"#,
    );
    assert!(
        invalid.contains(
            "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1"
        ),
        "{invalid}"
    );
}

#[test]
fn quotas_charge_refuse_and_give_back() {
    let server = Server::start();
    ok(KUBECTL, &server, &["create", "namespace", "team"]);
    ok(
        KUBECTL,
        &server,
        &[
            "create",
            "quota",
            "compute",
            "-n",
            "team",
            "--hard=pods=2,requests.cpu=1,limits.cpu=2",
        ],
    );
    counted(&server, "team", "compute");
    let described = ok(
        KUBECTL,
        &server,
        &["describe", "quota", "compute", "-n", "team"],
    );
    assert!(
        described
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "0", "2"]),
        "{described}"
    );

    // A quota of cpu needs every container to say what it uses.
    let no_size = not_created(&server, "unsized.yaml", &pod("team", "unsized", "", "{}"));
    assert!(
        no_size.contains(r#"pods "unsized" is forbidden: failed quota: compute: must specify limits.cpu for: main; requests.cpu for: main"#),
        "{no_size}"
    );
    let sized = "{requests: {cpu: 600m}, limits: {cpu: \"1\"}}";
    created(&server, "first.yaml", &pod("team", "first", "", sized));
    // A create the store refuses (the name is taken) gives back what it was charged.
    let small = "{requests: {cpu: 100m}, limits: {cpu: 100m}}";
    let again = not_created(&server, "again.yaml", &pod("team", "first", "", small));
    assert!(again.contains("AlreadyExists"), "{again}");
    let described = ok(
        KUBECTL,
        &server,
        &["describe", "quota", "compute", "-n", "team"],
    );
    for row in [
        ["pods", "1", "2"],
        ["requests.cpu", "600m", "1"],
        ["limits.cpu", "1", "2"],
    ] {
        assert!(
            described
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == row),
            "{row:?} in {described}"
        );
    }
    let over = not_created(&server, "second.yaml", &pod("team", "second", "", sized));
    assert!(
        over.contains(r#"pods "second" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"#),
        "{over}"
    );

    // Deleting the pod gives its usage back, and the next pod fits.
    ok(KUBECTL, &server, &["delete", "pod", "first", "-n", "team"]);
    until(Duration::from_secs(20), "usage given back", || {
        let quota = get(&server, &["get", "quota", "compute", "-n", "team"]);
        let used = &quota["status"]["used"];
        (used["pods"] == "0" && used["requests.cpu"] == "0")
            .then_some(())
            .ok_or(used.to_string())
    });
    created(&server, "second.yaml", &pod("team", "second", "", sized));

    // A pod that has finished no longer counts (but for `count/pods`).
    ok(
        KUBECTL,
        &server,
        &[
            "patch",
            "pod",
            "second",
            "-n",
            "team",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status": {"phase": "Failed"}}"#,
        ],
    );
    until(
        Duration::from_secs(20),
        "a finished pod's usage given back",
        || {
            let quota = get(&server, &["get", "quota", "compute", "-n", "team"]);
            let used = &quota["status"]["used"];
            (used["pods"] == "0" && used["requests.cpu"] == "0" && used["limits.cpu"] == "0")
                .then_some(())
                .ok_or(used.to_string())
        },
    );

    // Object counts, node ports and scopes.
    ok(KUBECTL, &server, &["create", "namespace", "counts"]);
    ok(
        KUBECTL,
        &server,
        &[
            "create",
            "quota",
            "objects",
            "-n",
            "counts",
            "--hard=count/deployments.apps=1,services.nodeports=0,configmaps=10",
        ],
    );
    ok(
        KUBECTL,
        &server,
        &[
            "create",
            "quota",
            "best-effort",
            "-n",
            "counts",
            "--hard=pods=1",
            "--scopes=BestEffort",
        ],
    );
    counted(&server, "counts", "objects");
    counted(&server, "counts", "best-effort");
    ok(
        KUBECTL,
        &server,
        &[
            "create",
            "deployment",
            "one",
            "--image=busybox",
            "-n",
            "counts",
            "--replicas=0",
        ],
    );
    let two = refused(
        &server,
        &[
            "create",
            "deployment",
            "two",
            "--image=busybox",
            "-n",
            "counts",
        ],
    );
    assert!(
        two.contains("exceeded quota: objects, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"),
        "{two}"
    );
    ok(
        KUBECTL,
        &server,
        &[
            "create",
            "service",
            "clusterip",
            "inside",
            "--tcp=80:80",
            "-n",
            "counts",
        ],
    );
    let node_port = refused(
        &server,
        &[
            "create",
            "service",
            "nodeport",
            "outside",
            "--tcp=80:80",
            "-n",
            "counts",
        ],
    );
    assert!(
        node_port.contains("exceeded quota: objects, requested: services.nodeports=1, used: services.nodeports=0, limited: services.nodeports=0"),
        "{node_port}"
    );
    created(&server, "be1.yaml", &pod("counts", "be1", "", "{}"));
    let be2 = not_created(&server, "be2.yaml", &pod("counts", "be2", "", "{}"));
    assert!(
        be2.contains(
            "exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1"
        ),
        "{be2}"
    );
    // A pod that asks for resources is outside the BestEffort scope.
    created(
        &server,
        "burstable.yaml",
        &pod("counts", "burstable", "", "{requests: {memory: 10Mi}}"),
    );
    let used = counted(&server, "counts", "objects")["status"]["used"].clone();
    assert_eq!(used["count/deployments.apps"], "1", "{used}");

    // A quota of the pods of one PriorityClass (a scope selector).
    ok(
        KUBECTL,
        &server,
        &["create", "priorityclass", "gold", "--value=100"],
    );
    ok(KUBECTL, &server, &["create", "namespace", "vip"]);
    created(
        &server,
        "gold-quota.yaml",
        r#"apiVersion: v1
kind: ResourceQuota
metadata: {name: gold, namespace: vip}
spec:
  hard: {pods: "1"}
  scopeSelector:
    matchExpressions:
    - {scopeName: PriorityClass, operator: In, values: [gold]}
"#,
    );
    counted(&server, "vip", "gold");
    created(
        &server,
        "gold1.yaml",
        &pod("vip", "gold1", "  priorityClassName: gold", "{}"),
    );
    let gold2 = not_created(
        &server,
        "gold2.yaml",
        &pod("vip", "gold2", "  priorityClassName: gold", "{}"),
    );
    assert!(
        gold2.contains("exceeded quota: gold, requested: pods=1, used: pods=1, limited: pods=1"),
        "{gold2}"
    );
    created(&server, "plain.yaml", &pod("vip", "plain", "", "{}"));
}

#[test]
fn racing_creates_never_exceed_a_quota() {
    let server = Server::start();
    ok(KUBECTL, &server, &["create", "namespace", "race"]);
    ok(
        KUBECTL,
        &server,
        &["create", "quota", "five", "-n", "race", "--hard=pods=5"],
    );
    counted(&server, "race", "five");

    // 20 creates at once against a quota of 5 pods: exactly 5 pass.
    let won = race(&server, "racer", None);
    assert_eq!(won, 5, "{won} creates passed a quota of 5");
    assert_eq!(pod_names(&server).len(), 5);
    let quota = get(&server, &["get", "quota", "five", "-n", "race"]);
    assert_eq!(
        quota["status"]["used"]["pods"], "5",
        "{:#}",
        quota["status"]
    );

    // Again while two pods go: the quota controller recounts (after each delete) while charges are in
    // flight, and still no more than 5 exist.
    let doomed: Vec<String> = pod_names(&server).into_iter().take(2).collect();
    let won = race(&server, "latecomer", Some(&doomed));
    let left = pod_names(&server);
    assert!(won <= 2, "{won} creates passed with 2 pods gone: {left:?}");
    assert_eq!(left.len(), 3 + won, "{left:?}");
    until(Duration::from_secs(20), "usage recounted", || {
        let quota = get(&server, &["get", "quota", "five", "-n", "race"]);
        let used = &quota["status"]["used"]["pods"];
        (*used == Value::String(left.len().to_string()))
            .then_some(())
            .ok_or(used.to_string())
    });
}

fn pod_names(server: &Server) -> Vec<String> {
    get(server, &["get", "pods", "-n", "race"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// 20 `kubectl create` at once of pods named `<prefix>-<i>` in `race` (while `delete` goes, if given); how
/// many passed. The others were refused by the quota.
fn race(server: &Server, prefix: &str, delete: Option<&[String]>) -> usize {
    let paths: Vec<_> = (0..20)
        .map(|i| {
            let name = format!("{prefix}-{i}");
            write(
                server.dir.path(),
                &format!("{name}.yaml"),
                &pod("race", &name, "", "{}"),
            )
        })
        .collect();
    let outcomes: Vec<std::process::Output> = std::thread::scope(|scope| {
        let deleting = delete.map(|names| {
            scope.spawn(move || {
                for name in names {
                    ok(KUBECTL, server, &["delete", "pod", name, "-n", "race"]);
                }
            })
        });
        let racers: Vec<_> = paths
            .iter()
            .map(|path| {
                scope.spawn(move || {
                    kubectl(KUBECTL, server, &["create", "-f", path.to_str().unwrap()])
                })
            })
            .collect();
        let outcomes = racers.into_iter().map(|r| r.join().unwrap()).collect();
        if let Some(deleting) = deleting {
            deleting.join().unwrap();
        }
        outcomes
    });
    for lost in outcomes.iter().filter(|o| !o.status.success()) {
        let stderr = String::from_utf8_lossy(&lost.stderr);
        assert!(stderr.contains("exceeded quota: five"), "{stderr}");
    }
    outcomes.iter().filter(|o| o.status.success()).count()
}

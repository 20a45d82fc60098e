//! End to end: the Job and CronJob controllers in `gantry server`, with real kubectl 1.33 and pods run as real
//! containers by the server's own agent. A Job runs its completions at most `parallelism` at a time and
//! completes (`kubectl wait --for=condition=complete` sees it); one whose pods fail is retried with back-off
//! until its backoffLimit, then fails; an Indexed Job's pods see their index and hostname; a finished Job with
//! a TTL goes away; a Job never runs more completions than asked when the server is killed while it runs. A
//! CronJob creates a Job each minute, named after the scheduled minute, keeps its history limit, and
//! `kubectl create job --from=cronjob/…` makes a Job from it.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::node::{IMAGE, KUBECTL, server};
use support::{Server, kubectl, ok, write};

const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// A Job running `script` in busybox (`spec`: more of its spec, indented by two spaces).
fn apply_job(server: &Server, name: &str, spec: &str, script: &str) {
    let manifest = format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{spec}  template:
    metadata: {{labels: {{suite: jobs}}}}
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [sh, -c, {script:?}]
"#
    );
    let path = write(server.dir.path(), &format!("{name}.yaml"), &manifest);
    ok(KUBECTL, server, &["apply", "-f", path.to_str().unwrap()]);
}

fn get(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&ok(KUBECTL, server, &all)).unwrap()
}

/// The pods of the Job `job`, terminating ones included.
fn job_pods(server: &Server, job: &str) -> Vec<Value> {
    let selector = format!("batch.kubernetes.io/job-name={job}");
    get(server, &["get", "pods", "-l", &selector])["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn name(object: &Value) -> String {
    object["metadata"]["name"].as_str().unwrap().to_owned()
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

/// Not finished and not being deleted: what the Job counts as active.
fn active(pod: &Value) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod["metadata"]["deletionTimestamp"].is_null()
}

fn condition<'a>(job: &'a Value, type_: &str) -> Option<&'a Value> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
}

/// Waits (up to `limit`) until the Job has the condition `type_`; calls `each` with its pods meanwhile.
fn job_until(
    server: &Server,
    job: &str,
    type_: &str,
    limit: Duration,
    mut each: impl FnMut(&[Value]),
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        each(&job_pods(server, job));
        let current = get(server, &["get", "job", job]);
        if condition(&current, type_).is_some() {
            return current;
        }
        if Instant::now() >= deadline {
            let pods = job_pods(server, job);
            let unfinished: Vec<String> = pods
                .iter()
                .filter(|p| active(p))
                .map(|p| ok(KUBECTL, server, &["describe", "pod", &name(p)]))
                .collect();
            panic!(
                "job {job} never got {type_}: {:#}\npods: {:#?}\n{}",
                current["status"],
                pods.iter()
                    .map(|p| (name(p), phase(p).to_owned()))
                    .collect::<Vec<_>>(),
                unfinished.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn events_of(server: &Server, object: &str) -> String {
    ok(
        KUBECTL,
        server,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={object}"),
        ],
    )
}

fn wait_for_node(server: &Server) {
    let node = support::node::node_name();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubectl(KUBECTL, server, &["get", "node", &node])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "node {node} never registered");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kubectl wait` in the background (it watches the Job until the condition holds).
fn wait_in_background(server: &Server, args: &[&str]) -> std::thread::JoinHandle<Output> {
    let binary = support::kubectl_dir().join(format!("kubectl.{KUBECTL}"));
    let mut command = std::process::Command::new(binary);
    command
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(args);
    std::thread::spawn(move || command.output().unwrap())
}

fn assert_no_tracking_finalizer(pods: &[Value]) {
    for pod in pods {
        let finalizers = pod["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !finalizers.iter().any(|f| f == TRACKING_FINALIZER),
            "{} still holds the tracking finalizer",
            name(pod)
        );
    }
}

#[test]
fn jobs_complete_fail_and_index_their_pods() {
    let server = server("10.63.0.0/24", "gtest63");
    wait_for_node(&server);
    let minutes = |n: u64| Duration::from_secs(60 * n);

    // Three Jobs at once: four completions two at a time, one that always fails, an Indexed one.
    apply_job(
        &server,
        "pair",
        "  completions: 4\n  parallelism: 2\n",
        "sleep 2",
    );
    // kubectl wait watches the Job until it completes.
    let waiting = wait_in_background(
        &server,
        &[
            "wait",
            "--for=condition=complete",
            "job/pair",
            "--timeout=180s",
        ],
    );
    apply_job(
        &server,
        "flaky",
        "  backoffLimit: 2\n",
        "echo failing; exit 1",
    );
    apply_job(
        &server,
        "idx",
        "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n",
        "echo index=$JOB_COMPLETION_INDEX host=$(hostname)",
    );

    // pair: never more than two active pods, exactly four succeeded ones.
    let mut most_active = 0;
    let pair = job_until(&server, "pair", "Complete", minutes(3), |pods| {
        most_active = most_active.max(pods.iter().filter(|p| active(p)).count());
    });
    assert!(most_active <= 2, "{most_active} pods were active at once");
    assert!(most_active >= 1);
    let pods = job_pods(&server, "pair");
    assert_eq!(pods.len(), 4, "{pods:#?}");
    assert!(pods.iter().all(|p| phase(p) == "Succeeded"), "{pods:#?}");
    assert_no_tracking_finalizer(&pods);
    let uid = pair["metadata"]["uid"].as_str().unwrap();
    for pod in &pods {
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
        assert_eq!(labels["controller-uid"], uid);
        assert_eq!(labels["job-name"], "pair");
        assert_eq!(labels["suite"], "jobs");
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["uid"].as_str()),
            (Some("Job"), Some(uid))
        );
        assert_eq!(owner["controller"], true);
    }
    let status = &pair["status"];
    assert_eq!(status["succeeded"], 4);
    assert!(status["failed"].is_null(), "{status:#}");
    assert!(status["active"].is_null(), "{status:#}");
    assert!(status["completionTime"].is_string() && status["startTime"].is_string());
    let types: Vec<&str> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    assert_eq!(
        condition(&pair, "Complete").unwrap()["reason"],
        "CompletionsReached"
    );
    let waited = waiting.join().unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert!(String::from_utf8_lossy(&waited.stdout).contains("job.batch/pair condition met"));
    let table = ok(KUBECTL, &server, &["get", "job", "pair"]);
    assert!(table.contains("4/4"), "{table}");
    let events = events_of(&server, "pair");
    for wanted in ["SuccessfulCreate", "Created pod: pair-", "Completed"] {
        assert!(events.contains(wanted), "{wanted}: {events}");
    }

    // idx: one pod per index, each seeing its index and hostname.
    let idx = job_until(&server, "idx", "Complete", minutes(2), |_| {});
    assert_eq!(idx["status"]["completedIndexes"], "0-2");
    assert_eq!(idx["status"]["succeeded"], 3);
    let pods = job_pods(&server, "idx");
    assert_eq!(pods.len(), 3, "{pods:#?}");
    let mut seen = Vec::new();
    for pod in &pods {
        let index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
            index.as_str()
        );
        assert!(
            name(pod).starts_with(&format!("idx-{index}-")),
            "{}",
            name(pod)
        );
        let logs = ok(KUBECTL, &server, &["logs", &name(pod)]);
        assert_eq!(logs.trim(), format!("index={index} host=idx-{index}"));
        seen.push(index);
    }
    seen.sort();
    assert_eq!(seen, ["0", "1", "2"]);

    // flaky: 1 + backoffLimit pods, all failed, then Failed with BackoffLimitExceeded.
    let flaky = job_until(&server, "flaky", "Failed", minutes(3), |_| {});
    let failed = condition(&flaky, "Failed").unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(
        failed["message"],
        "Job has reached the specified backoff limit"
    );
    assert!(condition(&flaky, "FailureTarget").is_some());
    assert_eq!(flaky["status"]["failed"], 3);
    assert!(flaky["status"]["succeeded"].is_null());
    let pods = job_pods(&server, "flaky");
    assert_eq!(pods.len(), 3, "{pods:#?}");
    assert!(pods.iter().all(|p| phase(p) == "Failed"));
    assert_no_tracking_finalizer(&pods);
    // The retries came after the back-off (10 s, then 20 s), measured between pod creations.
    let mut created: Vec<i64> = pods
        .iter()
        .map(|p| {
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap()
                .parse::<gantry_client::k8s_openapi::jiff::Timestamp>()
                .unwrap()
                .as_second()
        })
        .collect();
    created.sort();
    assert!(created[1] - created[0] >= 10, "{created:?}");
    assert!(created[2] - created[1] >= 20, "{created:?}");
    ok(
        KUBECTL,
        &server,
        &[
            "wait",
            "--for=condition=failed",
            "job/flaky",
            "--timeout=10s",
        ],
    );
    let events = events_of(&server, "flaky");
    assert!(events.contains("BackoffLimitExceeded"), "{events}");

    // A finished Job with a TTL goes, and its pods with it.
    apply_job(&server, "brief", "  ttlSecondsAfterFinished: 1\n", "true");
    let deadline = Instant::now() + minutes(2);
    while kubectl(KUBECTL, &server, &["get", "job", "brief"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the finished job was never deleted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + minutes(1);
    while !job_pods(&server, "brief").is_empty() {
        assert!(Instant::now() < deadline, "the deleted job's pods stayed");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Deleting a Job deletes its pods.
    ok(
        KUBECTL,
        &server,
        &["delete", "job", "pair", "--timeout=30s"],
    );
    let deadline = Instant::now() + minutes(1);
    while !job_pods(&server, "pair").is_empty() {
        assert!(Instant::now() < deadline, "the deleted job's pods stayed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn cronjobs_schedule_jobs_and_jobs_survive_restarts() {
    let mut node = server("10.64.0.0/24", "gtest64");
    wait_for_node(&node);
    let minutes = |n: u64| Duration::from_secs(60 * n);

    // A Job whose server is killed (with its agent) after a pod finished, while others run, still runs
    // exactly its completions, and the restarted agent does not run the finished pod again.
    apply_job(
        &node,
        "steady",
        "  completions: 4\n  parallelism: 2\n",
        "sleep 4",
    );
    let deadline = Instant::now() + minutes(1);
    let done = loop {
        let pods = job_pods(&node, "steady");
        if let Some(done) = pods.iter().find(|p| phase(p) == "Succeeded") {
            break done.clone();
        }
        assert!(Instant::now() < deadline, "steady never finished a pod");
        std::thread::sleep(Duration::from_millis(100));
    };
    let finished_at = |pod: &Value| {
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"].clone()
    };
    let done_name = done["metadata"]["name"].as_str().unwrap().to_owned();
    node.server.kill_and_restart();
    wait_for_node(&node);
    let steady = job_until(&node, "steady", "Complete", minutes(2), |pods| {
        assert!(
            pods.len() <= 4,
            "more pods than completions: {}",
            pods.len()
        );
    });
    assert_eq!(steady["status"]["succeeded"], 4, "{:#}", steady["status"]);
    assert!(
        steady["status"]["failed"].is_null(),
        "{:#}",
        steady["status"]
    );
    std::thread::sleep(Duration::from_secs(2));
    let pods = job_pods(&node, "steady");
    assert_eq!(pods.len(), 4);
    assert!(pods.iter().all(|p| phase(p) == "Succeeded"));
    assert_no_tracking_finalizer(&pods);
    let again = pods
        .iter()
        .find(|p| p["metadata"]["name"] == done_name.as_str())
        .unwrap();
    assert_eq!(
        finished_at(again),
        finished_at(&done),
        "the finished pod ran again"
    );
    assert!(!finished_at(&done).is_null(), "{:#}", done["status"]);

    // A CronJob every minute, keeping one successful Job.
    let manifest = format!(
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  successfulJobsHistoryLimit: 1
  jobTemplate:
    metadata: {{labels: {{suite: cron}}}}
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: {IMAGE}
            imagePullPolicy: Never
            command: [sh, -c, "echo tock; sleep 3"]
"#
    );
    let path = write(node.dir.path(), "tick.yaml", &manifest);
    ok(KUBECTL, &node, &["apply", "-f", path.to_str().unwrap()]);
    let cron = get(&node, &["get", "cronjob", "tick"]);
    let cron_uid = cron["metadata"]["uid"].as_str().unwrap().to_owned();

    // By hand: kubectl makes the Job from the template, controlled by the CronJob.
    ok(
        KUBECTL,
        &node,
        &["create", "job", "by-hand", "--from=cronjob/tick"],
    );
    let by_hand = get(&node, &["get", "job", "by-hand"]);
    assert_eq!(
        by_hand["metadata"]["ownerReferences"][0]["uid"],
        cron_uid.as_str()
    );
    assert_eq!(by_hand["metadata"]["labels"]["suite"], "cron");

    // Scheduled: within a minute or so, a Job named after its minute.
    let deadline = Instant::now() + Duration::from_secs(100);
    let scheduled = loop {
        let jobs = get(&node, &["get", "jobs", "-l", "suite=cron"]);
        let found = jobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| name(j) != "by-hand")
            .cloned();
        if let Some(job) = found {
            break job;
        }
        assert!(Instant::now() < deadline, "the cronjob never fired");
        std::thread::sleep(Duration::from_millis(200));
    };
    let job_name = name(&scheduled);
    let stamp =
        scheduled["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
            .as_str()
            .unwrap();
    let at: gantry_client::k8s_openapi::jiff::Timestamp = stamp.parse().unwrap();
    assert_eq!(at.as_second() % 60, 0, "{stamp}");
    assert_eq!(job_name, format!("tick-{}", at.as_second() / 60));
    let owner = &scheduled["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["uid"].as_str(), owner["controller"].as_bool()),
        (Some(cron_uid.as_str()), Some(true))
    );

    // Once it completed, the older successful Job (by hand) goes: one is kept.
    job_until(&node, &job_name, "Complete", minutes(1), |_| {});
    let deadline = Instant::now() + minutes(1);
    while kubectl(KUBECTL, &node, &["get", "job", "by-hand"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the history limit was not kept");
        std::thread::sleep(Duration::from_millis(200));
    }
    let cron = get(&node, &["get", "cronjob", "tick"]);
    let status = &cron["status"];
    assert_eq!(
        status["lastScheduleTime"]
            .as_str()
            .unwrap()
            .parse::<gantry_client::k8s_openapi::jiff::Timestamp>()
            .unwrap(),
        at,
        "{status:#}"
    );
    assert!(status["lastSuccessfulTime"].is_string(), "{status:#}");
    assert!(status["active"].is_null(), "{status:#}");
    assert!(
        kubectl(KUBECTL, &node, &["get", "job", &job_name])
            .status
            .success(),
        "the newest successful job is kept"
    );
    let events = events_of(&node, "tick");
    for wanted in [
        format!("Created job {job_name}"),
        format!("Saw completed job: {job_name}, condition: Complete"),
        "Deleted job by-hand".to_owned(),
    ] {
        assert!(events.contains(&wanted), "{wanted}: {events}");
    }

    // Suspended, it creates nothing more; deleting it deletes its Jobs.
    ok(
        KUBECTL,
        &node,
        &[
            "patch",
            "cronjob",
            "tick",
            "-p",
            r#"{"spec":{"suspend":true}}"#,
        ],
    );
    ok(
        KUBECTL,
        &node,
        &["delete", "cronjob", "tick", "--timeout=30s"],
    );
    let deadline = Instant::now() + minutes(1);
    while kubectl(KUBECTL, &node, &["get", "job", &job_name])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the cronjob's job outlived it");
        std::thread::sleep(Duration::from_millis(200));
    }
}

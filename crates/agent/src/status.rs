//! A pod's `status` from what the agent observed of its containers, as the kubelet computes it
//! (`pkg/kubelet/kubelet_pods.go`: `getPhase`, `generateAPIPodStatus`, and the status manager's conditions).
//! Pure: the pod worker gathers the observations and writes the result.

use serde_json::{Value, json};

/// What a container is doing, as the agent last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Not running: being created, backing off after a crash, or failing to start.
    Waiting { reason: String, message: String },
    Running {
        started_at: String,
        /// The readiness probe passed (or there is none).
        ready: bool,
        /// The startup probe passed (or there is none).
        started: bool,
    },
    Terminated {
        exit_code: i32,
        /// `Completed`, `Error`, `OOMKilled`, `ContainerCannotRun`, ….
        reason: String,
        message: String,
        started_at: String,
        finished_at: String,
    },
}

/// One container as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerObservation {
    pub name: String,
    pub image: String,
    /// The image's id (`sha256:…` of its config), once pulled.
    pub image_id: String,
    /// `runc://<id>` once created.
    pub container_id: String,
    pub state: ContainerState,
    /// The state before the last restart, if it restarted.
    pub last_state: Option<ContainerState>,
    pub restart_count: u32,
}

/// Everything the status is computed from.
#[derive(Debug, Clone, Default)]
pub struct PodObservation {
    /// The pod sandbox (network namespace, pause process) is ready.
    pub sandbox_ready: bool,
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub start_time: String,
    /// Init containers in spec order (those not reached yet are absent).
    pub init_containers: Vec<ContainerObservation>,
    /// App containers in spec order.
    pub containers: Vec<ContainerObservation>,
    /// Now (RFC 3339): the transition time of conditions that change.
    pub now: String,
    /// Why the node evicted the pod (its containers stopped, the pod Failed), if it did.
    pub evicted: Option<String>,
}

/// The pod's phase, as upstream's `getPhase`: regular init containers first; then the containers, with native
/// sidecars counting as running while they run (and holding the pod Pending until they have started, unless a
/// container already has), and ignored once stopped.
pub fn phase(pod: &Value, observed: &PodObservation) -> &'static str {
    if observed.evicted.is_some() {
        return "Failed";
    }
    let restart_policy = pod
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always");
    let (mut pending_init, mut failed_init, mut pending_sidecars) = (0, 0, 0);
    let (mut running, mut waiting, mut stopped, mut succeeded, mut unknown) = (0, 0, 0, 0, 0);
    for spec in list(pod, "initContainers") {
        let observed = find(&observed.init_containers, spec);
        if is_sidecar(spec) {
            match observed.map(|c| (&c.state, c.last_state.is_some())) {
                None => unknown += 1,
                Some((ContainerState::Running { started, .. }, _)) => {
                    if !started {
                        pending_sidecars += 1;
                    }
                    running += 1;
                }
                // A stopped sidecar does not count.
                Some((ContainerState::Terminated { .. }, _)) => {}
                Some((ContainerState::Waiting { .. }, ran)) => {
                    if !ran {
                        pending_sidecars += 1;
                    }
                }
            }
            continue;
        }
        match observed.map(|c| (&c.state, &c.last_state)) {
            None | Some((ContainerState::Running { .. }, _)) => pending_init += 1,
            Some((ContainerState::Terminated { exit_code, .. }, _)) => {
                if *exit_code != 0 {
                    failed_init += 1;
                }
            }
            Some((
                ContainerState::Waiting { .. },
                Some(ContainerState::Terminated { exit_code, .. }),
            )) => {
                if *exit_code != 0 {
                    failed_init += 1;
                }
            }
            Some((ContainerState::Waiting { .. }, _)) => pending_init += 1,
        }
    }
    let containers = list(pod, "containers");
    for spec in &containers {
        match find(&observed.containers, spec) {
            Some(c) => match &c.state {
                ContainerState::Running { .. } => running += 1,
                ContainerState::Terminated { exit_code, .. } => {
                    stopped += 1;
                    if *exit_code == 0 {
                        succeeded += 1;
                    }
                }
                // Waiting to restart after having run (CrashLoopBackOff): stopped, for now.
                ContainerState::Waiting { .. } if c.last_state.is_some() => stopped += 1,
                ContainerState::Waiting { .. } => waiting += 1,
            },
            None => unknown += 1,
        }
    }
    if failed_init > 0 && restart_policy == "Never" {
        return "Failed";
    }
    let initialized = any_container_started(pod, observed);
    if pending_init > 0 || (pending_sidecars > 0 && !initialized) || waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        return match restart_policy {
            // The kubelet restarts them: still running, as far as the phase goes.
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        };
    }
    "Pending"
}

/// Whether any of the pod's containers (not init containers) has run: then the pod has been initialized, even
/// if a sidecar restarts (upstream's `HasAnyRegularContainerStarted`).
fn any_container_started(pod: &Value, observed: &PodObservation) -> bool {
    list(pod, "containers").iter().any(|spec| {
        find(&observed.containers, spec).is_some_and(|c| {
            matches!(
                c.state,
                ContainerState::Running { .. } | ContainerState::Terminated { .. }
            )
        })
    })
}

/// The observation of the container `spec` names.
fn find<'a>(list: &'a [ContainerObservation], spec: &Value) -> Option<&'a ContainerObservation> {
    let name = spec.get("name").and_then(Value::as_str).unwrap_or_default();
    list.iter().find(|c| c.name == name)
}

/// The whole `status` (except `qosClass` and other fields the API server set, which the caller keeps).
pub fn pod_status(pod: &Value, observed: &PodObservation) -> Value {
    let phase = phase(pod, observed);
    let previous = pod.get("status").cloned().unwrap_or_else(|| json!({}));
    let init_specs = list(pod, "initContainers");
    let init_done = init_specs.iter().all(|spec| {
        let state = find(&observed.init_containers, spec).map(|c| &c.state);
        if is_sidecar(spec) {
            matches!(state, Some(ContainerState::Running { started: true, .. }))
        } else {
            matches!(state, Some(ContainerState::Terminated { exit_code: 0, .. }))
        }
    });
    // Every container, and every sidecar, ready.
    let ready = |list: &[ContainerObservation], spec: &Value| {
        find(list, spec)
            .is_some_and(|c| matches!(c.state, ContainerState::Running { ready: true, .. }))
    };
    let containers_ready = !observed.containers.is_empty()
        && list(pod, "containers")
            .iter()
            .all(|spec| ready(&observed.containers, spec))
        && init_specs
            .iter()
            .filter(|spec| is_sidecar(spec))
            .all(|spec| ready(&observed.init_containers, spec));
    // A pod that finished successfully keeps Initialized, and so does one whose containers have run while a
    // sidecar restarts; its containers are no longer ready.
    let initialized = init_done || phase == "Succeeded" || any_container_started(pod, observed);
    let mut conditions: Vec<Value> = Vec::new();
    let mut condition = |type_: &str, status: bool, reason: Option<&str>| {
        let value = if status { "True" } else { "False" };
        let since = previous_condition(&previous, type_)
            .filter(|c| c["status"] == value)
            .map(|c| c["lastTransitionTime"].clone())
            .unwrap_or_else(|| json!(observed.now));
        let mut c = json!({"type": type_, "status": value, "lastProbeTime": null, "lastTransitionTime": since});
        if let (false, Some(reason)) = (status, reason) {
            c["reason"] = json!(reason);
        }
        conditions.push(c);
    };
    condition("PodReadyToStartContainers", observed.sandbox_ready, None);
    condition("Initialized", initialized, Some("ContainersNotInitialized"));
    condition("Ready", containers_ready, Some("ContainersNotReady"));
    condition(
        "ContainersReady",
        containers_ready,
        Some("ContainersNotReady"),
    );
    if let Some(scheduled) = previous_condition(&previous, "PodScheduled") {
        conditions.push(scheduled.clone());
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": observed.host_ip,
        "hostIPs": [{"ip": observed.host_ip}],
        "startTime": observed.start_time,
        "containerStatuses": observed.containers.iter().map(|c| container_status(c, None)).collect::<Vec<_>>(),
    });
    if !observed.init_containers.is_empty() {
        status["initContainerStatuses"] = observed
            .init_containers
            .iter()
            .map(|c| {
                let sidecar = init_specs
                    .iter()
                    .any(|spec| spec["name"] == c.name.as_str() && is_sidecar(spec));
                container_status(c, Some(sidecar))
            })
            .collect();
    }
    if let Some(ip) = &observed.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if let Some(qos) = previous.get("qosClass") {
        status["qosClass"] = qos.clone();
    }
    if let Some(message) = &observed.evicted {
        status["reason"] = json!("Evicted");
        status["message"] = json!(message);
    }
    status
}

/// A container's status; `sidecar` is `None` for a container, else whether the init container is a sidecar.
fn container_status(c: &ContainerObservation, sidecar: Option<bool>) -> Value {
    let (ready, started) = match &c.state {
        ContainerState::Running { ready, started, .. } => (*ready, *started),
        // A regular init container that succeeded is ready.
        ContainerState::Terminated { exit_code: 0, .. } => (sidecar == Some(false), false),
        _ => (false, false),
    };
    let mut status = json!({
        "name": c.name,
        "image": c.image,
        "imageID": c.image_id,
        "state": state_json(&c.state),
        "lastState": c.last_state.as_ref().map_or_else(|| json!({}), state_json),
        "ready": ready,
        "restartCount": c.restart_count,
    });
    if !c.container_id.is_empty() {
        status["containerID"] = json!(c.container_id);
    }
    status["started"] = json!(started);
    status
}

fn state_json(state: &ContainerState) -> Value {
    match state {
        ContainerState::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({"waiting": w})
        }
        ContainerState::Running { started_at, .. } => json!({"running": {"startedAt": started_at}}),
        ContainerState::Terminated {
            exit_code,
            reason,
            message,
            started_at,
            finished_at,
        } => {
            let mut t = json!({"exitCode": exit_code, "reason": reason, "startedAt": started_at,
                "finishedAt": finished_at});
            if !message.is_empty() {
                t["message"] = json!(message);
            }
            json!({"terminated": t})
        }
    }
}

fn previous_condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status
        .get("conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == type_)
}

fn list<'a>(pod: &'a Value, field: &str) -> Vec<&'a Value> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .map(|l| l.iter().collect())
        .unwrap_or_default()
}

/// A native sidecar: an init container with `restartPolicy: Always`.
pub fn is_sidecar(container: &Value) -> bool {
    container.get("restartPolicy").and_then(Value::as_str) == Some("Always")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:00:05Z";

    fn pod(restart_policy: &str, init: bool) -> Value {
        let mut pod = json!({"spec": {"restartPolicy": restart_policy,
            "containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]},
            "status": {"phase": "Pending", "qosClass": "BestEffort",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": T0}]}});
        if init {
            pod["spec"]["initContainers"] = json!([{"name": "setup", "image": "busybox"}]);
        }
        pod
    }

    fn container(name: &str, state: ContainerState) -> ContainerObservation {
        ContainerObservation {
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:abc".into(),
            container_id: format!("runc://{name}"),
            state,
            last_state: None,
            restart_count: 0,
        }
    }

    fn running(ready: bool) -> ContainerState {
        ContainerState::Running {
            started_at: T0.into(),
            ready,
            started: true,
        }
    }

    fn exited(code: i32) -> ContainerState {
        ContainerState::Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: String::new(),
            started_at: T0.into(),
            finished_at: T1.into(),
        }
    }

    fn observed(
        init: Vec<ContainerObservation>,
        containers: Vec<ContainerObservation>,
    ) -> PodObservation {
        PodObservation {
            sandbox_ready: true,
            pod_ip: Some("10.42.0.5".into()),
            host_ip: "192.168.1.2".into(),
            start_time: T0.into(),
            init_containers: init,
            containers,
            now: T1.into(),
            evicted: None,
        }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        let both = |a, b| observed(vec![], vec![container("a", a), container("b", b)]);
        assert_eq!(
            phase(&pod("Always", false), &observed(vec![], vec![])),
            "Pending"
        );
        assert_eq!(
            phase(&pod("Always", false), &both(running(true), running(false))),
            "Running"
        );
        assert_eq!(
            phase(&pod("Never", false), &both(exited(0), exited(0))),
            "Succeeded"
        );
        assert_eq!(
            phase(&pod("Never", false), &both(exited(0), exited(1))),
            "Failed"
        );
        assert_eq!(
            phase(&pod("OnFailure", false), &both(exited(0), exited(1))),
            "Running"
        );
        assert_eq!(
            phase(&pod("Never", false), &both(running(true), exited(1))),
            "Running"
        );
        // Init containers first: running or failed-and-retried is Pending, failed with Never is Failed.
        let init = |state| observed(vec![container("setup", state)], vec![]);
        assert_eq!(
            phase(&pod("Always", true), &init(running(false))),
            "Pending"
        );
        assert_eq!(phase(&pod("Always", true), &init(exited(1))), "Pending");
        assert_eq!(phase(&pod("Never", true), &init(exited(1))), "Failed");
        // A container backing off after a crash keeps the pod Running.
        let mut crashing = container(
            "a",
            ContainerState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: "back-off 10s restarting failed container".into(),
            },
        );
        crashing.last_state = Some(exited(1));
        crashing.restart_count = 1;
        let pod_status_now = observed(vec![], vec![crashing, container("b", running(true))]);
        assert_eq!(phase(&pod("Always", false), &pod_status_now), "Running");
    }

    #[test]
    fn status_has_conditions_container_statuses_and_keeps_what_the_server_set() {
        let status = pod_status(
            &pod("Always", true),
            &observed(
                vec![container("setup", exited(0))],
                vec![container("a", running(true)), container("b", running(true))],
            ),
        );
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["qosClass"], "BestEffort");
        assert_eq!(status["podIP"], "10.42.0.5");
        let conditions = status["conditions"].as_array().unwrap();
        let get = |t: &str| conditions.iter().find(|c| c["type"] == t).unwrap();
        assert_eq!(get("Ready")["status"], "True");
        assert_eq!(get("Initialized")["status"], "True");
        assert_eq!(get("PodScheduled")["lastTransitionTime"], T0);
        assert_eq!(
            status["containerStatuses"][0]["state"]["running"]["startedAt"],
            T0
        );
        assert_eq!(status["containerStatuses"][0]["containerID"], "runc://a");
        assert_eq!(
            status["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );

        // Not ready: a reason, and the transition time moves only when the status changes.
        let mut pod = pod("Always", false);
        pod["status"] = status;
        let not_ready = pod_status(
            &pod,
            &observed(
                vec![],
                vec![
                    container("a", running(false)),
                    container("b", running(true)),
                ],
            ),
        );
        let conditions = not_ready["conditions"].as_array().unwrap();
        let ready = conditions.iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ContainersNotReady");
        assert_eq!(ready["lastTransitionTime"], T1);
        let scheduled = conditions
            .iter()
            .find(|c| c["type"] == "PodScheduled")
            .unwrap();
        assert_eq!(scheduled["lastTransitionTime"], T0);
    }

    #[test]
    fn sidecars_count_while_they_run_and_must_be_ready() {
        let mut pod = pod("Never", false);
        pod["spec"]["initContainers"] = json!([
            {"name": "proxy", "image": "busybox", "restartPolicy": "Always"},
            {"name": "setup", "image": "busybox"}]);
        let starting = ContainerState::Running {
            started_at: T0.into(),
            ready: false,
            started: false,
        };
        let get = |status: &Value, t: &str| {
            let conditions = status["conditions"].as_array().unwrap();
            conditions.iter().find(|c| c["type"] == t).unwrap()["status"].clone()
        };
        // A sidecar that has not started holds the pod Pending.
        let observed_now = observed(vec![container("proxy", starting)], vec![]);
        assert_eq!(phase(&pod, &observed_now), "Pending");
        let status = pod_status(&pod, &observed_now);
        assert_eq!(status["initContainerStatuses"][0]["started"], false);
        assert_eq!(get(&status, "Initialized"), "False");

        // Started, the next init container done, the containers running: the pod is ready once the sidecar is.
        let both_running = |proxy_ready| {
            observed(
                vec![
                    container("proxy", running(proxy_ready)),
                    container("setup", exited(0)),
                ],
                vec![container("a", running(true)), container("b", running(true))],
            )
        };
        let status = pod_status(&pod, &both_running(false));
        assert_eq!(status["phase"], "Running");
        assert_eq!(get(&status, "Initialized"), "True");
        assert_eq!(get(&status, "Ready"), "False");
        let setup = &status["initContainerStatuses"][1];
        assert_eq!(
            (&setup["ready"], &setup["started"]),
            (&json!(true), &json!(false))
        );
        let status = pod_status(&pod, &both_running(true));
        assert_eq!(get(&status, "Ready"), "True");
        assert_eq!(status["initContainerStatuses"][0]["started"], true);

        // The containers done: still Running while the sidecar runs, Succeeded once it stopped (whatever its
        // exit code).
        let done = |proxy| {
            observed(
                vec![container("proxy", proxy), container("setup", exited(0))],
                vec![container("a", exited(0)), container("b", exited(0))],
            )
        };
        assert_eq!(phase(&pod, &done(running(true))), "Running");
        assert_eq!(phase(&pod, &done(exited(143))), "Succeeded");
        let failed = observed(
            vec![
                container("proxy", exited(143)),
                container("setup", exited(0)),
            ],
            vec![container("a", exited(0)), container("b", exited(1))],
        );
        assert_eq!(phase(&pod, &failed), "Failed");

        // A sidecar restarting after the containers ran leaves the pod initialized.
        let mut crashed = container(
            "proxy",
            ContainerState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: String::new(),
            },
        );
        crashed.last_state = Some(exited(1));
        let mut always = pod.clone();
        always["spec"]["restartPolicy"] = json!("Always");
        let status = pod_status(
            &always,
            &observed(
                vec![crashed, container("setup", exited(0))],
                vec![container("a", running(true)), container("b", running(true))],
            ),
        );
        assert_eq!(status["phase"], "Running");
        assert_eq!(get(&status, "Initialized"), "True");
        assert_eq!(get(&status, "Ready"), "False");
    }
}

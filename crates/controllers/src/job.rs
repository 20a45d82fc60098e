//! The Job controller, with upstream's (1.33) semantics: runs pods from the template until `completions` of
//! them succeed (NonIndexed) or one succeeds for each index (Indexed: the `batch.kubernetes.io/job-completion-
//! index` annotation and label, the hostname `<job>-<index>`, the `JOB_COMPLETION_INDEX` environment
//! variable), at most `parallelism` at a time; replaces failed pods after an exponential back-off (10 s,
//! doubling, at most 6 minutes) until `backoffLimit`, `activeDeadlineSeconds` or a `podFailurePolicy`
//! FailJob rule fails the Job; `suspend` deletes the active pods until the Job is resumed;
//! `ttlSecondsAfterFinished` deletes a finished Job.
//!
//! Pods are tracked with the `batch.kubernetes.io/job-tracking` finalizer, as upstream: each pod is created
//! holding it, so it cannot disappear uncounted. A finished pod is first recorded in the Job's
//! `status.uncountedTerminatedPods` (or, Indexed, `completedIndexes`), then loses the finalizer, then moves
//! into `succeeded`/`failed`; every status write is conditional on the resourceVersion read, and the objects
//! these writes return replace older copies in the cache, so a restart or a lagging watch never counts a pod
//! twice or forgets one, and a Job never runs more completions than asked. The Job's conditions follow
//! 1.33: `FailureTarget` or `SuccessCriteriaMet` first (the remaining pods are then deleted), `Failed` or
//! `Complete` once no pod is left running or uncounted.
//!
//! One task owns the state (the Jobs and pods the watches show, a [`WorkQueue`] of Job keys, the
//! [`Expectations`] and the back-off records); what a sync writes is written by a task of its own, at most
//! [`SYNCS_IN_FLIGHT`] at a time and never two for one Job.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use gantry_client::k8s_openapi::api::batch::v1::{Job, JobCondition, PodFailurePolicyRule};
use gantry_client::k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use gantry_client::k8s_openapi::jiff::Timestamp;
use gantry_client::kube::api::{
    DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::{
    api_message, controller_ref, count, involved, is_not_found, key, namespace_of, revision,
};
use crate::cache::watch_all;
use crate::expectations::Expectations;
use crate::pods;
use crate::queue::{Backoff, WorkQueue};
use gantry_client::events::{Event, Recorder};

/// The controller's name: the events' source.
pub const COMPONENT: &str = "job-controller";
/// The finalizer that keeps a pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";
/// The annotation and label of an Indexed Job's pods with their index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable that holds the index.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// The most creates or deletes one sync issues.
pub const BURST: usize = 500;
/// Jobs being written for at once.
pub const SYNCS_IN_FLIGHT: usize = 16;
/// The first back-off before a failed pod is replaced; it doubles with each failure in a row.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// The longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(360);
/// The longest wait before a failed sync is tried again.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// Upstream's `MaxGeneratedNameLength` (63 - 5 random characters).
const MAX_GENERATED_NAME: usize = 58;

// ---- what pods say --------------------------------------------------------------------------------------------

fn is_terminal(pod: &Pod) -> bool {
    matches!(pods::phase(pod), "Succeeded" | "Failed")
}

fn is_deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The pod's completion index, if it has a valid one.
pub fn completion_index(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(COMPLETION_INDEX))
        .or_else(|| pod.metadata.labels.as_ref()?.get(COMPLETION_INDEX))
        .and_then(|i| i.parse().ok())
        .filter(|i| *i >= 0)
}

/// When the pod finished: its containers' latest finish, else its Ready condition's last change.
fn finish_time(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref()?;
    let finished = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    finished.or_else(|| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0)
    })
}

// ---- indexes ------------------------------------------------------------------------------------------------

/// `completedIndexes` ("1,3-5,7") read.
pub fn parse_indexes(text: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (low, high) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(low), Ok(high)) = (low.trim().parse::<i32>(), high.trim().parse::<i32>()) {
            out.extend((low.max(0)..=high.min(completions - 1)).filter(|i| *i >= 0));
        }
    }
    out
}

/// Indexes written as upstream does: ranges of three or more as `a-b`, others listed.
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        match end - start {
            0 => parts.push(start.to_string()),
            1 => {
                parts.push(start.to_string());
                parts.push(end.to_string());
            }
            _ => parts.push(format!("{start}-{end}")),
        }
    }
    parts.join(",")
}

// ---- pod failure policy ------------------------------------------------------------------------------------

/// What a pod failure policy rule says of a failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAction {
    FailJob(String),
    Ignore,
    Count,
}

/// The first rule that matches the failed pod (upstream's `matchPodFailurePolicy`); `None`: no rule
/// matches, which counts the failure.
pub fn match_pod_failure_policy(rules: &[PodFailurePolicyRule], pod: &Pod) -> Option<PolicyAction> {
    let status = pod.status.as_ref();
    let ns = namespace_of(&pod.metadata);
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    for (index, rule) in rules.iter().enumerate() {
        let matched = if let Some(req) = &rule.on_exit_codes {
            let containers = status
                .into_iter()
                .flat_map(|s| {
                    s.container_statuses
                        .iter()
                        .flatten()
                        .chain(s.init_container_statuses.iter().flatten())
                })
                .filter(|c| req.container_name.as_ref().is_none_or(|n| *n == c.name));
            let mut found = None;
            for c in containers {
                let Some(code) = c
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code)
                else {
                    continue;
                };
                // Exit code 0 never matches (upstream).
                if code == 0 {
                    continue;
                }
                let listed = req.values.contains(&code);
                let hit = match req.operator.as_str() {
                    "In" => listed,
                    "NotIn" => !listed,
                    _ => false,
                };
                if hit {
                    found = Some(format!(
                        "Container {} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {index}",
                        c.name, rule.action
                    ));
                    break;
                }
            }
            found
        } else {
            rule.on_pod_conditions.iter().flatten().find_map(|pattern| {
                let wanted = pattern.status.as_str();
                status
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .find(|c| c.type_ == pattern.type_ && c.status == wanted)
                    .map(|c| {
                        format!(
                            "Pod {ns}/{name} has condition {} matching {} rule at index {index}",
                            c.type_, rule.action
                        )
                    })
            })
        };
        if let Some(message) = matched {
            return Some(match rule.action.as_str() {
                "FailJob" => PolicyAction::FailJob(message),
                "Ignore" => PolicyAction::Ignore,
                _ => PolicyAction::Count,
            });
        }
    }
    None
}

// ---- back-off -----------------------------------------------------------------------------------------------

/// Failures since the last success and when the latest happened (upstream's `backoffRecord`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    pub failures: u32,
    pub last_failure: Option<Timestamp>,
}

impl BackoffRecord {
    /// How long to wait at `now` before replacing failed pods.
    pub fn remaining(&self, now: Timestamp) -> Duration {
        let (Some(last), true) = (self.last_failure, self.failures > 0) else {
            return Duration::ZERO;
        };
        let backoff = DEFAULT_BACKOFF
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(MAX_BACKOFF);
        let elapsed = u64::try_from(now.as_millisecond() - last.as_millisecond()).unwrap_or(0);
        backoff.saturating_sub(Duration::from_millis(elapsed))
    }
}

// ---- the plan of a sync -------------------------------------------------------------------------------------

/// A Job condition as upstream writes them.
fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> JobCondition {
    let now = gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::from_second(now.as_second()).unwrap_or(now),
    );
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

fn find_condition<'a>(conditions: &'a [JobCondition], type_: &str) -> Option<&'a JobCondition> {
    conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job has finished (`Complete` or `Failed`).
pub fn is_finished(job: &Job) -> bool {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    find_condition(conditions, "Complete").is_some()
        || find_condition(conditions, "Failed").is_some()
}

/// The status fields a sync writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    pub active: i32,
    pub ready: i32,
    pub terminating: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub uncounted_succeeded: BTreeSet<String>,
    pub uncounted_failed: BTreeSet<String>,
    pub completed_indexes: Option<String>,
    pub start_time: Option<Timestamp>,
    pub completion_time: Option<Timestamp>,
    pub conditions: Vec<JobCondition>,
}

impl Status {
    fn of(job: &Job) -> Status {
        let s = job.status.clone().unwrap_or_default();
        let uncounted = s.uncounted_terminated_pods.unwrap_or_default();
        Status {
            active: s.active.unwrap_or(0),
            ready: s.ready.unwrap_or(0),
            terminating: s.terminating.unwrap_or(0),
            succeeded: s.succeeded.unwrap_or(0),
            failed: s.failed.unwrap_or(0),
            uncounted_succeeded: uncounted
                .succeeded
                .unwrap_or_default()
                .into_iter()
                .collect(),
            uncounted_failed: uncounted.failed.unwrap_or_default().into_iter().collect(),
            completed_indexes: s.completed_indexes.filter(|c| !c.is_empty()),
            start_time: s.start_time.map(|t| t.0),
            completion_time: s.completion_time.map(|t| t.0),
            conditions: s.conditions.unwrap_or_default(),
        }
    }

    /// The merge patch of the status subresource, conditional on `resource_version`.
    fn patch(&self, resource_version: Option<&str>, indexed: bool) -> Value {
        let time = |t: &Option<Timestamp>| {
            t.map(|t| {
                Timestamp::from_second(t.as_second())
                    .unwrap_or(t)
                    .to_string()
            })
        };
        let optional = |n: i32| if n == 0 { Value::Null } else { json!(n) };
        json!({
            "metadata": {"resourceVersion": resource_version},
            "status": {
                "active": optional(self.active),
                "ready": self.ready,
                "terminating": self.terminating,
                "succeeded": optional(self.succeeded),
                "failed": optional(self.failed),
                "uncountedTerminatedPods": {
                    "succeeded": if self.uncounted_succeeded.is_empty() { Value::Null } else { json!(self.uncounted_succeeded) },
                    "failed": if self.uncounted_failed.is_empty() { Value::Null } else { json!(self.uncounted_failed) },
                },
                "completedIndexes": if indexed { json!(self.completed_indexes.clone().unwrap_or_default()) } else { Value::Null },
                "startTime": time(&self.start_time),
                "completionTime": time(&self.completion_time),
                "conditions": if self.conditions.is_empty() { Value::Null } else { json!(self.conditions) },
            }
        })
    }
}

/// What one sync of a Job decides.
#[derive(Debug, Default)]
pub struct Plan {
    /// The status to write first (None: unchanged).
    pub status: Option<Status>,
    /// Pods whose finalizer goes once the status is written.
    pub remove_finalizers: Vec<Arc<Pod>>,
    /// Uncounted pods that hold no finalizer any more: counted at once.
    pub countable: Vec<String>,
    /// Pods to create (their completion indexes for an Indexed Job).
    pub create: Vec<Option<i32>>,
    pub delete: Vec<Arc<Pod>>,
    /// Events to record once the status is written.
    pub events: Vec<(bool, &'static str, String)>,
    /// Look at the Job again after this long (back-off, deadline).
    pub requeue: Option<Duration>,
    /// New failures seen, and whether a success was seen (for the back-off record).
    pub new_failures: Vec<Option<Timestamp>>,
    pub new_success: bool,
}

/// Compares a (not finished) Job with its pods, as upstream's `syncJob`: what to write. `may_manage`: the
/// expectations are met (creates and deletes may be issued).
pub fn plan(
    job: &Job,
    pods: &[Arc<Pod>],
    backoff: &BackoffRecord,
    may_manage: bool,
    now: Timestamp,
) -> Plan {
    let mut out = Plan::default();
    let spec = job.spec.clone().unwrap_or_default();
    let current = Status::of(job);
    let mut status = current.clone();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let suspended = spec.suspend == Some(true);
    let rules = spec
        .pod_failure_policy
        .as_ref()
        .map(|p| p.rules.clone())
        .unwrap_or_default();
    let only_replace_failed = spec.pod_replacement_policy.as_deref() == Some("Failed")
        || spec.pod_failure_policy.is_some();
    let mut target = find_condition(&status.conditions, "FailureTarget")
        .or_else(|| find_condition(&status.conditions, "SuccessCriteriaMet"))
        .cloned();
    let mut completed = status
        .completed_indexes
        .as_deref()
        .map(|c| parse_indexes(c, completions.unwrap_or(0)))
        .unwrap_or_default();
    let valid_index =
        |pod: &Pod| completion_index(pod).filter(|i| completions.is_some_and(|c| *i < c));

    let active: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| !is_terminal(p) && !is_deleting(p))
        .collect();
    let terminating: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| !is_terminal(p) && is_deleting(p))
        .collect();
    let mut fail_job = None;
    let with_finalizer: Vec<&Arc<Pod>> = pods.iter().filter(|p| has_finalizer(p)).collect();
    let finalized: HashSet<String> = with_finalizer.iter().map(|p| uid(p)).collect();
    out.countable = status
        .uncounted_succeeded
        .iter()
        .chain(&status.uncounted_failed)
        .filter(|u| !finalized.contains(*u))
        .cloned()
        .collect();
    for pod in with_finalizer {
        let id = uid(pod);
        if status.uncounted_succeeded.contains(&id) || status.uncounted_failed.contains(&id) {
            out.remove_finalizers.push(pod.clone());
            continue;
        }
        let failure_target = target.as_ref().is_some_and(|t| t.type_ == "FailureTarget");
        let success_target = target
            .as_ref()
            .is_some_and(|t| t.type_ == "SuccessCriteriaMet");
        if pods::phase(pod) == "Succeeded" {
            out.new_success = true;
            if indexed {
                if let Some(i) = valid_index(pod) {
                    completed.insert(i);
                }
            } else {
                status.uncounted_succeeded.insert(id);
            }
            out.remove_finalizers.push(pod.clone());
        } else if pods::phase(pod) == "Failed"
            || (is_deleting(pod) && (!only_replace_failed || failure_target || success_target))
        {
            out.remove_finalizers.push(pod.clone());
            let suspension = is_deleting(pod) && pods::phase(pod) != "Failed" && suspended;
            if suspension || (success_target && pods::phase(pod) != "Failed") {
                continue;
            }
            if indexed && valid_index(pod).is_none() {
                continue;
            }
            let action = if rules.is_empty() || pods::phase(pod) != "Failed" {
                None
            } else {
                match_pod_failure_policy(&rules, pod)
            };
            match action {
                Some(PolicyAction::Ignore) => {}
                Some(PolicyAction::FailJob(message)) => {
                    fail_job.get_or_insert(message);
                    status.uncounted_failed.insert(id);
                    out.new_failures.push(finish_time(pod));
                }
                Some(PolicyAction::Count) | None => {
                    status.uncounted_failed.insert(id);
                    out.new_failures.push(finish_time(pod));
                }
            }
        }
    }
    if indexed {
        status.succeeded = count(completed.len());
        status.completed_indexes = Some(format_indexes(&completed));
    }
    let succeeded_total = if indexed {
        count(completed.len())
    } else {
        status.succeeded + count(status.uncounted_succeeded.len())
    };
    let restarts: i32 = if spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure")
    {
        active
            .iter()
            .flat_map(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
            })
            .map(|c| c.restart_count)
            .sum()
    } else {
        0
    };
    let failed_total = status.failed + count(status.uncounted_failed.len()) + restarts;

    // Suspension and the start time.
    let was_suspended = find_condition(&status.conditions, "Suspended").is_some();
    if target.is_none() {
        if suspended && !was_suspended {
            status.conditions.retain(|c| c.type_ != "Suspended");
            status.conditions.push(condition(
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            ));
            out.events
                .push((false, "Suspended", "Job suspended".into()));
        } else if !suspended && was_suspended {
            for c in &mut status.conditions {
                if c.type_ == "Suspended" {
                    *c = condition("Suspended", "False", "JobResumed", "Job resumed", now);
                }
            }
            status.start_time = Some(now);
            out.events.push((false, "Resumed", "Job resumed".into()));
        }
    }
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(now);
    }

    // Is the Job done, one way or the other?
    if target.is_none() {
        let deadline = spec.active_deadline_seconds.and_then(|d| {
            let start = status.start_time.filter(|_| !suspended)?;
            start
                .checked_add(Duration::from_secs(u64::try_from(d).ok()?))
                .ok()
        });
        let new_target = if let Some(message) = fail_job {
            Some(("FailureTarget", "PodFailurePolicy", message))
        } else if failed_total > spec.backoff_limit.unwrap_or(6) {
            Some((
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".to_owned(),
            ))
        } else if deadline.is_some_and(|d| now >= d) {
            Some((
                "FailureTarget",
                "DeadlineExceeded",
                "Job was active longer than specified deadline".to_owned(),
            ))
        } else {
            let complete = match completions {
                Some(c) => succeeded_total >= c,
                None => succeeded_total > 0 && active.is_empty(),
            };
            complete.then(|| {
                (
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods".to_owned(),
                )
            })
        };
        if let Some((type_, reason, message)) = new_target {
            let c = condition(type_, "True", reason, &message, now);
            status.conditions.push(c.clone());
            if type_ == "FailureTarget" {
                out.events.push((true, reason, message));
            }
            target = Some(c);
        } else if let Some(d) = deadline {
            out.requeue = Some(Duration::from_millis(
                u64::try_from(d.as_millisecond() - now.as_millisecond()).unwrap_or(0),
            ));
        }
    }

    // Pods to create or delete.
    if let Some(target) = &target {
        // Done: what is still running goes.
        if may_manage {
            out.delete = active.iter().take(BURST).map(|p| (*p).clone()).collect();
        }
        let quiet = active.is_empty()
            && terminating.is_empty()
            && pods.iter().all(|p| !has_finalizer(p))
            && status.uncounted_succeeded.is_empty()
            && status.uncounted_failed.is_empty();
        if quiet {
            let reason = target.reason.clone().unwrap_or_default();
            let message = target.message.clone().unwrap_or_default();
            if target.type_ == "FailureTarget" {
                status
                    .conditions
                    .push(condition("Failed", "True", &reason, &message, now));
            } else {
                status
                    .conditions
                    .push(condition("Complete", "True", &reason, &message, now));
                status.completion_time = Some(now);
                out.events
                    .push((false, "Completed", "Job completed".into()));
            }
        }
    } else if suspended {
        if may_manage {
            out.delete = active.iter().take(BURST).map(|p| (*p).clone()).collect();
        }
    } else if may_manage {
        let mut backoff = backoff.clone();
        if out.new_success {
            backoff.failures = 0;
        }
        for finished in &out.new_failures {
            backoff.failures += 1;
            let at = finished.unwrap_or(now);
            backoff.last_failure = Some(backoff.last_failure.map_or(at, |l| l.max(at)));
        }
        let wait = backoff.remaining(now);
        let pending_terminations = if only_replace_failed {
            terminating.len()
        } else {
            0
        };
        if indexed {
            let c = completions.unwrap_or(0);
            let mut by_index: BTreeMap<i32, Vec<&Arc<Pod>>> = BTreeMap::new();
            for pod in &active {
                match valid_index(pod) {
                    Some(i) if !completed.contains(&i) => by_index.entry(i).or_default().push(pod),
                    // A pod of an index already done, or without a valid index.
                    _ => out.delete.push((*pod).clone()),
                }
            }
            for pods in by_index.values() {
                out.delete.extend(pods.iter().skip(1).map(|p| (*p).clone()));
            }
            let running = count(by_index.len());
            if running > parallelism {
                let surplus = usize::try_from(running - parallelism).unwrap_or(0);
                out.delete
                    .extend(by_index.values().rev().take(surplus).map(|p| p[0].clone()));
            } else {
                let busy: HashSet<i32> = by_index
                    .keys()
                    .copied()
                    .chain(
                        terminating
                            .iter()
                            .filter(|_| only_replace_failed)
                            .filter_map(|p| valid_index(p)),
                    )
                    .collect();
                let room = usize::try_from(parallelism - running).unwrap_or(0);
                let pending: Vec<i32> = (0..c)
                    .filter(|i| !completed.contains(i) && !busy.contains(i))
                    .take(room.min(BURST))
                    .collect();
                if !pending.is_empty() {
                    if wait.is_zero() {
                        out.create = pending.into_iter().map(Some).collect();
                    } else {
                        out.requeue = Some(out.requeue.map_or(wait, |r| r.min(wait)));
                    }
                }
            }
        } else {
            let want = match completions {
                Some(c) => (c - succeeded_total).clamp(0, parallelism),
                None if succeeded_total > 0 => count(active.len()),
                None => parallelism,
            };
            let have = count(active.len() + pending_terminations);
            if count(active.len()) > want {
                let surplus = usize::try_from(count(active.len()) - want).unwrap_or(0);
                let candidates: Vec<&Pod> = active.iter().map(|p| p.as_ref()).collect();
                let doomed = pods::to_delete(&candidates, &candidates, surplus.min(BURST), now);
                out.delete = active
                    .iter()
                    .filter(|p| doomed.iter().any(|d| std::ptr::eq(*d, p.as_ref())))
                    .map(|p| (*p).clone())
                    .collect();
            } else if have < want {
                if wait.is_zero() {
                    let n = usize::try_from(want - have).unwrap_or(0).min(BURST);
                    out.create = vec![None; n];
                } else {
                    out.requeue = Some(out.requeue.map_or(wait, |r| r.min(wait)));
                }
            }
        }
    }

    status.active = count(active.len());
    status.ready = count(active.iter().filter(|p| pods::is_ready(p)).count());
    status.terminating = count(terminating.len());
    if status != current {
        out.status = Some(status);
    }
    out
}

/// The TTL of a finished Job: how long until it is due for deletion (zero: now), if it has one.
pub fn ttl_remaining(job: &Job, now: Timestamp) -> Option<Duration> {
    let ttl = u64::try_from(job.spec.as_ref()?.ttl_seconds_after_finished?).ok()?;
    let status = job.status.as_ref()?;
    let finished = status.completion_time.as_ref().map(|t| t.0).or_else(|| {
        let conditions = status.conditions.as_deref().unwrap_or_default();
        find_condition(conditions, "Failed")
            .or_else(|| find_condition(conditions, "Complete"))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0)
    })?;
    let due = finished.checked_add(Duration::from_secs(ttl)).ok()?;
    Some(Duration::from_millis(
        u64::try_from(due.as_millisecond() - now.as_millisecond()).unwrap_or(0),
    ))
}

/// A new pod from the Job's template, for `index` in an Indexed Job.
pub fn pod_from_template(job: &Job, index: Option<i32>) -> Pod {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    for (k, v) in [
        (CONTROLLER_UID, &uid),
        (LEGACY_CONTROLLER_UID, &uid),
        (JOB_NAME, &name),
        (LEGACY_JOB_NAME, &name),
    ] {
        labels.entry(k.into()).or_insert_with(|| v.clone());
    }
    let mut annotations = meta.annotations.unwrap_or_default();
    let mut finalizers = meta.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.into());
    }
    let mut spec = template.spec.unwrap_or_default();
    let mut prefix = format!("{name}-");
    if let Some(index) = index {
        annotations.insert(COMPLETION_INDEX.into(), index.to_string());
        labels.insert(COMPLETION_INDEX.into(), index.to_string());
        spec.hostname = Some(format!("{name}-{index}"));
        let suffix = format!("-{index}-");
        let room = MAX_GENERATED_NAME.saturating_sub(suffix.len());
        prefix = format!("{}{suffix}", truncate(&name, room));
        let env = EnvVar {
            name: COMPLETION_INDEX_ENV.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                }),
                ..EnvVarSource::default()
            }),
        };
        let containers = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for container in containers {
            let vars = container.env.get_or_insert_with(Vec::new);
            if !vars.iter().any(|v| v.name == COMPLETION_INDEX_ENV) {
                vars.push(env.clone());
            }
        }
    } else if prefix.len() > MAX_GENERATED_NAME {
        prefix = format!("{}-", truncate(&name, MAX_GENERATED_NAME - 1));
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(prefix),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![controller_ref(job)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn truncate(s: &str, n: usize) -> &str {
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ---- the controller -----------------------------------------------------------------------------------------

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut job_events = watch_all::<Job>(&client);
    let mut pod_events = watch_all::<Pod>(&client);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut controller = Controller::new(client, done_tx);
    loop {
        let can_sync = controller.can_sync();
        let wakeup = controller
            .queue
            .next_wakeup()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => controller.done(done),
            Some(event) = job_events.next() => match event {
                Ok(event) => controller.job_event(event),
                Err(e) => tracing::warn!("job controller: watching jobs: {e}"),
            },
            Some(event) = pod_events.next() => match event {
                Ok(event) => controller.pod_event(event),
                Err(e) => tracing::warn!("job controller: watching pods: {e}"),
            },
            () = tokio::time::sleep_until(wakeup) => controller.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_sync => controller.sync_next(Instant::now()),
        }
    }
}

/// What a sync task reports when it is over.
#[derive(Debug, Default)]
struct Done {
    key: String,
    /// The Job and pods as the writes left them (newer than what the watches may show yet).
    job: Option<Job>,
    pods: Vec<Pod>,
    /// Creations issued that the watch will not show; pods whose deletion failed.
    uncreated: usize,
    undeleted: Vec<String>,
    retry: bool,
    requeue: Option<Duration>,
}

/// What one sync writes.
enum Work {
    /// Pods of a Job that is gone (or another one now): their finalizers go once that is confirmed.
    Orphans {
        owner: String,
        pods: Vec<Arc<Pod>>,
    },
    /// A finished Job: finalizers go; the TTL may delete it.
    Finished {
        job: Arc<Job>,
        pods: Vec<Arc<Pod>>,
        delete: bool,
    },
    Sync {
        job: Arc<Job>,
        plan: Box<Plan>,
    },
}

struct Controller {
    client: Client,
    events: Recorder,
    jobs: HashMap<String, Arc<Job>>,
    pods: HashMap<String, Arc<Pod>>,
    /// Pod uids by the key of the Job (of any uid) that controls them.
    by_owner: HashMap<String, HashSet<String>>,
    expectations: Expectations,
    backoff: HashMap<String, BackoffRecord>,
    /// Failed syncs in a row.
    retries: Backoff<String>,
    queue: WorkQueue<String>,
    jobs_listed: Option<HashSet<String>>,
    pods_listed: Option<HashSet<String>>,
    jobs_synced: bool,
    pods_synced: bool,
    done_tx: mpsc::UnboundedSender<Done>,
}

/// The key of the Job named as the pod's controller.
fn owner_key(pod: &Pod) -> Option<String> {
    let owner = pods::controller_of(&pod.metadata)?;
    (owner.kind == "Job" && owner.api_version.starts_with("batch/"))
        .then(|| key(namespace_of(&pod.metadata), &owner.name))
}

impl Controller {
    fn new(client: Client, done_tx: mpsc::UnboundedSender<Done>) -> Controller {
        Controller {
            events: Recorder::start(client.clone(), COMPONENT),
            client,
            jobs: HashMap::new(),
            pods: HashMap::new(),
            by_owner: HashMap::new(),
            expectations: Expectations::default(),
            backoff: HashMap::new(),
            retries: Backoff::new(Duration::from_millis(10), MAX_RETRY),
            queue: WorkQueue::default(),
            jobs_listed: None,
            pods_listed: None,
            jobs_synced: false,
            pods_synced: false,
            done_tx,
        }
    }

    fn can_sync(&self) -> bool {
        self.jobs_synced
            && self.pods_synced
            && !self.queue.is_empty()
            && self.queue.active() < SYNCS_IN_FLIGHT
    }

    fn job_event(&mut self, event: watcher::Event<Job>) {
        match event {
            watcher::Event::Init => self.jobs_listed = Some(HashSet::new()),
            watcher::Event::InitApply(job) | watcher::Event::Apply(job) => {
                let Some(name) = job.metadata.name.as_deref() else {
                    return;
                };
                let k = key(namespace_of(&job.metadata), name);
                if let Some(listed) = &mut self.jobs_listed {
                    listed.insert(k.clone());
                }
                self.job_seen(k, job, false);
            }
            watcher::Event::Delete(job) => {
                let k = key(
                    namespace_of(&job.metadata),
                    job.metadata.name.as_deref().unwrap_or_default(),
                );
                self.job_gone(&k);
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.jobs_listed.take() {
                    let gone: Vec<String> = self
                        .jobs
                        .keys()
                        .filter(|k| !listed.contains(*k))
                        .cloned()
                        .collect();
                    for k in gone {
                        self.job_gone(&k);
                    }
                }
                self.jobs_synced = true;
            }
        }
    }

    /// Keeps the newer of the cached Job and `job` (`written`: from a write's answer, only if still cached).
    fn job_seen(&mut self, k: String, job: Job, written: bool) {
        let (new, same) = (revision(&job.metadata).unwrap_or(0), |old: &Job| {
            old.metadata.uid == job.metadata.uid
        });
        match self.jobs.get(&k) {
            Some(old)
                if same(old)
                    && (new < revision(&old.metadata).unwrap_or(0)
                        || (written && new == revision(&old.metadata).unwrap_or(0))) =>
            {
                return;
            }
            Some(old) if same(old) => {}
            _ if written => return,
            Some(_) => {
                self.expectations.forget(&k);
                self.backoff.remove(&k);
            }
            None => {}
        }
        self.jobs.insert(k.clone(), Arc::new(job));
        self.queue.add(k);
    }

    fn job_gone(&mut self, k: &str) {
        self.jobs.remove(k);
        self.expectations.forget(k);
        self.backoff.remove(k);
        self.retries.reset(k);
        // Its pods' finalizers go.
        if self.by_owner.contains_key(k) {
            self.queue.add(k.to_owned());
        }
    }

    fn pod_event(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.pods_listed = Some(HashSet::new()),
            watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                if let (Some(listed), Some(uid)) = (&mut self.pods_listed, &pod.metadata.uid) {
                    listed.insert(uid.clone());
                }
                self.pod_seen(pod, false);
            }
            watcher::Event::Delete(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    self.pod_gone(uid);
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.pods_listed.take() {
                    let gone: Vec<String> = self
                        .pods
                        .keys()
                        .filter(|uid| !listed.contains(*uid))
                        .cloned()
                        .collect();
                    for uid in gone {
                        self.pod_gone(&uid);
                    }
                }
                self.pods_synced = true;
            }
        }
    }

    fn pod_seen(&mut self, pod: Pod, written: bool) {
        let Some(id) = pod.metadata.uid.clone() else {
            return;
        };
        let old = self.pods.get(&id).cloned();
        let rv = |p: &Pod| revision(&p.metadata).unwrap_or(0);
        match &old {
            Some(old) if rv(&pod) <= rv(old) && written => return,
            Some(old) if rv(&pod) < rv(old) => return,
            None if written => return,
            _ => {}
        }
        let owner = owner_key(&pod);
        let old_owner = old.as_ref().and_then(|o| owner_key(o));
        if old_owner != owner
            && let Some(o) = &old_owner
        {
            if let Some(set) = self.by_owner.get_mut(o) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_owner.remove(o);
                }
            }
            self.queue.add(o.clone());
        }
        let Some(k) = owner else {
            self.pods.remove(&id);
            return;
        };
        if old.is_none() {
            self.expectations.creations_observed(&k, 1);
        }
        if is_deleting(&pod) && old.as_ref().is_none_or(|o| !is_deleting(o)) {
            self.expectations.deletion_observed(&k, &id);
        }
        self.by_owner
            .entry(k.clone())
            .or_default()
            .insert(id.clone());
        self.pods.insert(id, Arc::new(pod));
        self.queue.add(k);
    }

    fn pod_gone(&mut self, id: &str) {
        let Some(pod) = self.pods.remove(id) else {
            return;
        };
        if let Some(k) = owner_key(&pod) {
            if let Some(set) = self.by_owner.get_mut(&k) {
                set.remove(id);
                if set.is_empty() {
                    self.by_owner.remove(&k);
                }
            }
            self.expectations.deletion_observed(&k, id);
            self.queue.add(k);
        }
    }

    fn sync_next(&mut self, now: Instant) {
        let Some(k) = self.queue.pop() else { return };
        let work = self.work(&k, now);
        let Some(work) = work else {
            self.queue.done(&k);
            return;
        };
        let (client, events, done) = (
            self.client.clone(),
            self.events.clone(),
            self.done_tx.clone(),
        );
        tokio::spawn(async move {
            let _ = done.send(work.run(k, client, events).await);
        });
    }

    fn work(&mut self, k: &str, now: Instant) -> Option<Work> {
        let pods: Vec<Arc<Pod>> = self
            .by_owner
            .get(k)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.pods.get(uid).cloned())
            .collect();
        let Some(job) = self.jobs.get(k).cloned() else {
            let orphans: Vec<Arc<Pod>> = pods.into_iter().filter(|p| has_finalizer(p)).collect();
            return (!orphans.is_empty()).then(|| Work::Orphans {
                owner: k.to_owned(),
                pods: orphans,
            });
        };
        let job_uid = job.metadata.uid.clone().unwrap_or_default();
        let (owned, others): (Vec<Arc<Pod>>, Vec<Arc<Pod>>) = pods
            .into_iter()
            .partition(|p| pods::controller_of(&p.metadata).is_some_and(|o| o.uid == job_uid));
        let others: Vec<Arc<Pod>> = others.into_iter().filter(|p| has_finalizer(p)).collect();
        if !others.is_empty() {
            // Pods of an earlier Job of the same name: their own finalizers go first.
            self.queue
                .add_after(k.to_owned(), Duration::from_millis(500), now);
            return Some(Work::Orphans {
                owner: k.to_owned(),
                pods: others,
            });
        }
        let wall = Timestamp::now();
        if is_finished(&job) || job.metadata.deletion_timestamp.is_some() {
            let finalized: Vec<Arc<Pod>> = owned.into_iter().filter(|p| has_finalizer(p)).collect();
            let ttl = if job.metadata.deletion_timestamp.is_none() {
                ttl_remaining(&job, wall)
            } else {
                None
            };
            let delete = ttl.is_some_and(|t| t.is_zero());
            if let Some(t) = ttl.filter(|t| !t.is_zero()) {
                self.queue
                    .add_after(k.to_owned(), t + Duration::from_millis(100), now);
            }
            if finalized.is_empty() && !delete {
                return None;
            }
            return Some(Work::Finished {
                job,
                pods: finalized,
                delete,
            });
        }
        let may_manage = self.expectations.satisfied(k, now);
        let record = self.backoff.get(k).cloned().unwrap_or_default();
        let plan = plan(&job, &owned, &record, may_manage, wall);
        if !plan.new_failures.is_empty() || plan.new_success {
            let record = self.backoff.entry(k.to_owned()).or_default();
            if plan.new_success {
                record.failures = 0;
            }
            for finished in &plan.new_failures {
                record.failures += 1;
                let at = finished.unwrap_or(wall);
                record.last_failure = Some(record.last_failure.map_or(at, |l| l.max(at)));
            }
        }
        if !plan.create.is_empty() || !plan.delete.is_empty() {
            let uids = plan.delete.iter().map(|p| uid(p)).collect();
            self.expectations.expect(k, plan.create.len(), uids, now);
        }
        if let Some(expires) = self.expectations.expires(k) {
            self.queue.add_after(
                k.to_owned(),
                expires.saturating_duration_since(now) + Duration::from_secs(1),
                now,
            );
        }
        if let Some(requeue) = plan.requeue {
            self.queue
                .add_after(k.to_owned(), requeue + Duration::from_millis(100), now);
        }
        let nothing = plan.status.is_none()
            && plan.remove_finalizers.is_empty()
            && plan.countable.is_empty()
            && plan.create.is_empty()
            && plan.delete.is_empty();
        (!nothing).then(|| Work::Sync {
            job,
            plan: Box::new(plan),
        })
    }

    fn done(&mut self, done: Done) {
        let k = done.key.clone();
        self.expectations.creations_observed(&k, done.uncreated);
        for uid in &done.undeleted {
            self.expectations.deletion_observed(&k, uid);
        }
        if let Some(job) = done.job {
            self.job_seen(k.clone(), job, true);
        }
        for pod in done.pods {
            self.pod_seen(pod, true);
        }
        self.queue.done(&k);
        let now = Instant::now();
        if done.retry {
            let delay = self.retries.failed(&k);
            self.queue.add_after(k.clone(), delay, now);
        } else {
            self.retries.reset(&k);
        }
        if let Some(requeue) = done.requeue {
            self.queue.add_after(k, requeue, now);
        }
    }
}

/// Removes the tracking finalizer from each pod (a JSON patch that tests it is still where it was seen):
/// the uids it is gone from, and the pods as the writes left them.
async fn remove_finalizers(
    client: &Client,
    pods: &[Arc<Pod>],
) -> (HashSet<String>, Vec<Pod>, bool) {
    let writes = pods.iter().map(|pod| {
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace_of(&pod.metadata));
        async move {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let at = pod
                .metadata
                .finalizers
                .iter()
                .flatten()
                .position(|f| f == TRACKING_FINALIZER);
            let Some(at) = at else {
                return (uid(pod), Ok(None));
            };
            let patch: gantry_client::kube::api::Patch<()> = Patch::Json(
                serde_json::from_value(json!([
                    {"op": "test", "path": format!("/metadata/finalizers/{at}"), "value": TRACKING_FINALIZER},
                    {"op": "remove", "path": format!("/metadata/finalizers/{at}")},
                ]))
                .unwrap_or_default(),
            );
            (uid(pod), api.patch(&name, &PatchParams::default(), &patch).await.map(Some))
        }
    });
    let mut removed = HashSet::new();
    let mut written = Vec::new();
    let mut ok = true;
    for (id, result) in join_all(writes).await {
        match result {
            Ok(pod) => {
                removed.insert(id);
                written.extend(pod);
            }
            Err(e) if is_not_found(&e) => {
                removed.insert(id);
            }
            Err(e) => {
                tracing::debug!(pod = %id, "cannot remove the job tracking finalizer: {e}");
                ok = false;
            }
        }
    }
    (removed, written, ok)
}

impl Work {
    async fn run(self, k: String, client: Client, events: Recorder) -> Done {
        let mut done = Done {
            key: k,
            ..Done::default()
        };
        match self {
            Work::Orphans { owner, pods } => {
                // The Job the pods name must be gone (or be another one) before their finalizers go.
                let (ns, name) = owner.split_once('/').unwrap_or_default();
                let api: Api<Job> = Api::namespaced(client.clone(), ns);
                let current = match api.get(name).await {
                    Ok(job) => job.metadata.uid,
                    Err(e) if is_not_found(&e) => None,
                    Err(_) => {
                        done.retry = true;
                        return done;
                    }
                };
                let orphans: Vec<Arc<Pod>> = pods
                    .into_iter()
                    .filter(|p| {
                        pods::controller_of(&p.metadata)
                            .is_none_or(|o| Some(&o.uid) != current.as_ref())
                    })
                    .collect();
                let (_, written, ok) = remove_finalizers(&client, &orphans).await;
                done.pods = written;
                done.retry = !ok;
            }
            Work::Finished { job, pods, delete } => {
                let (_, written, ok) = remove_finalizers(&client, &pods).await;
                done.pods = written;
                done.retry = !ok;
                if delete {
                    let ns = namespace_of(&job.metadata);
                    let api: Api<Job> = Api::namespaced(client.clone(), ns);
                    let params = DeleteParams {
                        propagation_policy: Some(PropagationPolicy::Background),
                        preconditions: Some(Preconditions {
                            uid: job.metadata.uid.clone(),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    };
                    let name = job.metadata.name.clone().unwrap_or_default();
                    match api.delete(&name, &params).await {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => {
                            tracing::debug!(job = %name, "cannot delete the finished job: {e}");
                            done.retry = true;
                        }
                    }
                }
            }
            Work::Sync { job, plan } => sync(&mut done, &client, &events, &job, *plan).await,
        }
        done
    }
}

/// Writes what a plan says: the status (with the newly finished pods uncounted), the finalizers of the pods
/// it records, the counts, then the creates and deletes.
async fn sync(done: &mut Done, client: &Client, events: &Recorder, job: &Job, plan: Plan) {
    let ns = namespace_of(&job.metadata).to_owned();
    let name = job.metadata.name.clone().unwrap_or_default();
    let involved = involved(job);
    let record = |warning: bool, reason: &'static str, message: String| {
        events.record(Event {
            object: involved.clone(),
            warning,
            reason,
            message,
        });
    };
    let indexed = job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut latest: Job = job.clone();
    let mut status = plan.status.clone().unwrap_or_else(|| Status::of(job));

    // 1. The status, recording the pods that finished before their finalizers go.
    if let Some(first) = &plan.status {
        let patch = first.patch(latest.metadata.resource_version.as_deref(), indexed);
        match jobs
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(written) => {
                latest = written;
                for (warning, reason, message) in &plan.events {
                    record(*warning, reason, message.clone());
                }
            }
            Err(e) => {
                if !is_not_found(&e) {
                    tracing::debug!(job = %done.key, "cannot write the status: {e}");
                    done.retry = true;
                }
                // Nothing else is written on a status not recorded.
                done.uncreated = plan.create.len();
                done.undeleted = plan.delete.iter().map(|p| uid(p)).collect();
                return;
            }
        }
    }

    // 2. The finalizers, then 3. the counts.
    let (mut counted, written, ok) = remove_finalizers(client, &plan.remove_finalizers).await;
    done.pods = written;
    done.retry |= !ok;
    counted.extend(plan.countable.iter().cloned());
    let succeeded: Vec<String> = status
        .uncounted_succeeded
        .iter()
        .filter(|u| counted.contains(*u))
        .cloned()
        .collect();
    let failed: Vec<String> = status
        .uncounted_failed
        .iter()
        .filter(|u| counted.contains(*u))
        .cloned()
        .collect();
    if !succeeded.is_empty() || !failed.is_empty() {
        if !indexed {
            status.succeeded += count(succeeded.len());
        }
        status.failed += count(failed.len());
        for u in &succeeded {
            status.uncounted_succeeded.remove(u);
        }
        for u in &failed {
            status.uncounted_failed.remove(u);
        }
        let patch = status.patch(latest.metadata.resource_version.as_deref(), indexed);
        match jobs
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(written) => latest = written,
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                tracing::debug!(job = %done.key, "cannot write the counts: {e}");
                done.retry = true;
            }
        }
    }
    done.job = Some(latest.clone());

    // 4. Deletes and creates.
    let deletes = plan.delete.iter().map(|pod| {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let pods = &pods;
        async move { (pod, pods.delete(&name, &DeleteParams::default()).await) }
    });
    for (pod, result) in join_all(deletes).await {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        match result {
            Ok(_) => record(
                false,
                "SuccessfulDelete",
                format!("Deleted pod: {pod_name}"),
            ),
            Err(e) => {
                done.undeleted.push(uid(pod));
                if !is_not_found(&e) {
                    record(
                        true,
                        "FailedDelete",
                        format!("Error deleting: {}", api_message(&e)),
                    );
                    done.retry = true;
                }
            }
        }
    }
    if !plan.create.is_empty() {
        let (created, failed) = create(&pods, &latest, &plan.create, &record).await;
        done.uncreated = plan.create.len() - created;
        done.retry |= failed;
    }
}

/// Creates the pods in slow-start batches (1, 2, 4, …), stopping after a batch with a failure; how many were
/// created and whether one failed.
async fn create(
    pods: &Api<Pod>,
    job: &Job,
    indexes: &[Option<i32>],
    record: &impl Fn(bool, &'static str, String),
) -> (usize, bool) {
    let params = PostParams::default();
    let (mut created, mut next, mut batch) = (0, 0, 1usize);
    while next < indexes.len() {
        let end = (next + batch).min(indexes.len());
        let batch_pods: Vec<Pod> = indexes[next..end]
            .iter()
            .map(|index| pod_from_template(job, *index))
            .collect();
        let results = join_all(batch_pods.iter().map(|pod| pods.create(&params, pod))).await;
        let mut failed = false;
        for result in results {
            match result {
                Ok(pod) => {
                    created += 1;
                    record(
                        false,
                        "SuccessfulCreate",
                        format!("Created pod: {}", pod.metadata.name.unwrap_or_default()),
                    );
                }
                Err(e) => {
                    failed = true;
                    record(
                        true,
                        "FailedCreate",
                        format!("Error creating: {}", api_message(&e)),
                    );
                }
            }
        }
        if failed {
            return (created, true);
        }
        next = end;
        batch *= 2;
    }
    (created, false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn job(spec: Value, status: Value) -> Job {
        let mut spec_value = json!({"parallelism": 2, "completions": 4, "backoffLimit": 6,
            "completionMode": "NonIndexed",
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "i"}]}}});
        for (k, v) in spec.as_object().unwrap() {
            spec_value[k] = v.clone();
        }
        serde_json::from_value(json!({
            "metadata": {"name": "work", "namespace": "ns", "uid": "job-uid", "resourceVersion": "5"},
            "spec": spec_value,
            "status": status,
        }))
        .unwrap()
    }

    fn pod(name: &str, phase: &str, extra: Value) -> Arc<Pod> {
        let mut value = json!({
            "metadata": {"name": name, "uid": name, "finalizers": [TRACKING_FINALIZER],
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "work",
                    "uid": "job-uid", "controller": true}]},
            "status": {"phase": phase},
        });
        if let Some(extra) = extra.as_object() {
            for (k, v) in extra {
                for (k2, v2) in v.as_object().unwrap() {
                    value[k][k2] = v2.clone();
                }
            }
        }
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn now() -> Timestamp {
        "2025-01-01T00:10:00Z".parse().unwrap()
    }

    fn types(status: &Status) -> Vec<(&str, &str)> {
        status
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.reason.as_deref().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn job_starts_parallelism_pods_and_no_more_than_the_completions_left() {
        let j = job(json!({}), json!({}));
        let p = plan(&j, &[], &BackoffRecord::default(), true, now());
        assert_eq!(p.create, vec![None, None]);
        let status = p.status.unwrap();
        assert_eq!(status.start_time, Some(now()));
        // Three done (one still uncounted), one running: nothing more to start.
        let j = job(
            json!({}),
            json!({"succeeded": 2, "startTime": "2025-01-01T00:00:00Z"}),
        );
        let pods = [
            pod("a", "Succeeded", json!({})),
            pod("b", "Running", json!({})),
        ];
        let p = plan(&j, &pods, &BackoffRecord::default(), true, now());
        assert!(p.create.is_empty() && p.delete.is_empty());
        let status = p.status.unwrap();
        assert_eq!(status.uncounted_succeeded, BTreeSet::from(["a".to_owned()]));
        assert_eq!((status.succeeded, status.active), (2, 1));
        assert_eq!(p.remove_finalizers.len(), 1);
        // Not allowed to manage (expectations): no creates.
        let j = job(json!({}), json!({}));
        assert!(
            plan(&j, &[], &BackoffRecord::default(), false, now())
                .create
                .is_empty()
        );
    }

    #[test]
    fn job_completes_in_two_steps() {
        // All four succeeded and counted: SuccessCriteriaMet, then (no pod left to count) Complete.
        let j = job(
            json!({}),
            json!({"succeeded": 4, "startTime": "2025-01-01T00:00:00Z"}),
        );
        let done = [pod(
            "a",
            "Succeeded",
            json!({"metadata": {"finalizers": []}}),
        )];
        let p = plan(&j, &done, &BackoffRecord::default(), true, now());
        let status = p.status.unwrap();
        assert_eq!(
            types(&status),
            [
                ("SuccessCriteriaMet", "CompletionsReached"),
                ("Complete", "CompletionsReached")
            ]
        );
        assert_eq!(status.completion_time, Some(now()));
        assert!(p.events.iter().any(|e| e.1 == "Completed"));
        // A pod still to count: only SuccessCriteriaMet.
        let j = job(
            json!({}),
            json!({"succeeded": 3, "startTime": "2025-01-01T00:00:00Z"}),
        );
        let p = plan(
            &j,
            &[pod("d", "Succeeded", json!({}))],
            &BackoffRecord::default(),
            true,
            now(),
        );
        let status = p.status.unwrap();
        assert_eq!(
            types(&status),
            [("SuccessCriteriaMet", "CompletionsReached")]
        );
        assert!(status.completion_time.is_none());
        assert!(p.create.is_empty());
    }

    #[test]
    fn job_fails_past_the_backoff_limit_and_backs_off_before() {
        let j = job(
            json!({"backoffLimit": 2, "parallelism": 1, "completions": 1}),
            json!({"failed": 2, "startTime": "2025-01-01T00:00:00Z"}),
        );
        let p = plan(
            &j,
            &[pod("c", "Failed", json!({}))],
            &BackoffRecord::default(),
            true,
            now(),
        );
        let status = p.status.unwrap();
        assert_eq!(types(&status), [("FailureTarget", "BackoffLimitExceeded")]);
        assert_eq!(status.uncounted_failed, BTreeSet::from(["c".to_owned()]));
        assert!(p.create.is_empty());
        assert_eq!(
            p.events,
            [(
                true,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".to_owned()
            )]
        );
        // Once counted: Failed.
        let mut failed = j.clone();
        failed.status = Some(
            serde_json::from_value(json!({"failed": 3, "startTime": "2025-01-01T00:00:00Z",
            "conditions": [serde_json::to_value(&status.conditions[0]).unwrap()]}))
            .unwrap(),
        );
        let p = plan(&failed, &[], &BackoffRecord::default(), true, now());
        assert_eq!(
            types(&p.status.unwrap()),
            [
                ("FailureTarget", "BackoffLimitExceeded"),
                ("Failed", "BackoffLimitExceeded")
            ]
        );
        // Below the limit: a replacement after the back-off (10 s after the first failure, 20 s after two).
        let j = job(
            json!({"backoffLimit": 2, "parallelism": 1, "completions": 1}),
            json!({"failed": 1, "startTime": "2025-01-01T00:00:00Z"}),
        );
        let last = now().checked_sub(Duration::from_secs(4)).unwrap();
        let record = BackoffRecord {
            failures: 1,
            last_failure: Some(last),
        };
        let p = plan(&j, &[], &record, true, now());
        assert!(p.create.is_empty());
        assert_eq!(p.requeue, Some(Duration::from_secs(6)));
        let record = BackoffRecord {
            failures: 1,
            last_failure: now().checked_sub(Duration::from_secs(11)).ok(),
        };
        assert_eq!(plan(&j, &[], &record, true, now()).create.len(), 1);
        let record = BackoffRecord {
            failures: 2,
            last_failure: Some(now()),
        };
        assert_eq!(record.remaining(now()), Duration::from_secs(20));
        let record = BackoffRecord {
            failures: 12,
            last_failure: Some(now()),
        };
        assert_eq!(record.remaining(now()), MAX_BACKOFF);
    }

    #[test]
    fn job_deadline_and_pod_failure_policy() {
        let j = job(
            json!({"activeDeadlineSeconds": 60}),
            json!({"startTime": "2025-01-01T00:00:00Z"}),
        );
        let running = [pod("a", "Running", json!({}))];
        let p = plan(&j, &running, &BackoffRecord::default(), true, now());
        assert_eq!(
            types(&p.status.unwrap()),
            [("FailureTarget", "DeadlineExceeded")]
        );
        assert_eq!(p.delete.len(), 1, "the running pod goes");
        let j = job(
            json!({"activeDeadlineSeconds": 900}),
            json!({"startTime": "2025-01-01T00:00:00Z"}),
        );
        let p = plan(&j, &running, &BackoffRecord::default(), true, now());
        assert_eq!(p.requeue, Some(Duration::from_secs(300)));

        let policy = json!({"podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [42]}}]}});
        let exited = |code: i32| {
            json!({"status": {"containerStatuses": [{"name": "c", "image": "i", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code}}}]}})
        };
        let j = job(policy.clone(), json!({"startTime": "2025-01-01T00:00:00Z"}));
        let p = plan(
            &j,
            &[pod("f", "Failed", exited(42))],
            &BackoffRecord::default(),
            true,
            now(),
        );
        let status = p.status.unwrap();
        assert_eq!(types(&status), [("FailureTarget", "PodFailurePolicy")]);
        assert!(
            status.conditions[0]
                .message
                .as_deref()
                .unwrap()
                .contains("exit code 42")
        );
        let p = plan(
            &j,
            &[pod("f", "Failed", exited(1))],
            &BackoffRecord::default(),
            true,
            now(),
        );
        assert_eq!(p.status.unwrap().uncounted_failed.len(), 1);
        let disrupted =
            json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True"}]}});
        let p = plan(
            &j,
            &[pod("d", "Failed", disrupted)],
            &BackoffRecord::default(),
            true,
            now(),
        );
        assert!(
            p.status.is_none_or(|s| s.uncounted_failed.is_empty()),
            "ignored"
        );
        assert_eq!(p.remove_finalizers.len(), 1);
    }

    #[test]
    fn job_indexed_pods_carry_their_index_and_completed_indexes_are_recorded() {
        let j = job(
            json!({"completionMode": "Indexed", "completions": 5, "parallelism": 3}),
            json!({"completedIndexes": "0", "succeeded": 1, "startTime": "2025-01-01T00:00:00Z"}),
        );
        let with_index = |name: &str, phase: &str, i: i32| {
            pod(
                name,
                phase,
                json!({"metadata": {"annotations": {COMPLETION_INDEX: i.to_string()}}}),
            )
        };
        let pods = [
            with_index("a", "Succeeded", 2),
            with_index("b", "Running", 1),
        ];
        let p = plan(&j, &pods, &BackoffRecord::default(), true, now());
        assert_eq!(p.create, vec![Some(3), Some(4)]);
        let status = p.status.unwrap();
        assert_eq!(status.completed_indexes.as_deref(), Some("0,2"));
        assert_eq!(status.succeeded, 2);
        assert!(status.uncounted_succeeded.is_empty());

        let pod = pod_from_template(&j, Some(3));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("work-3-"));
        assert_eq!(
            pod.metadata.annotations.as_ref().unwrap()[COMPLETION_INDEX],
            "3"
        );
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[COMPLETION_INDEX], "3");
        assert_eq!(labels[CONTROLLER_UID], "job-uid");
        assert_eq!(labels[LEGACY_JOB_NAME], "work");
        assert_eq!(labels["app"], "x");
        assert_eq!(
            pod.metadata.finalizers.as_deref(),
            Some(&[TRACKING_FINALIZER.to_owned()][..])
        );
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("work-3"));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, COMPLETION_INDEX_ENV);
        assert_eq!(
            env.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));

        let set = parse_indexes("0,2-4,7", 6);
        assert_eq!(set, BTreeSet::from([0, 2, 3, 4]));
        assert_eq!(
            format_indexes(&BTreeSet::from([0, 1, 3, 4, 5, 9])),
            "0,1,3-5,9"
        );
    }

    #[test]
    fn job_suspension_deletes_active_pods_without_counting_them() {
        let j = job(
            json!({"suspend": true}),
            json!({"startTime": "2025-01-01T00:00:00Z"}),
        );
        let p = plan(
            &j,
            &[pod("a", "Running", json!({}))],
            &BackoffRecord::default(),
            true,
            now(),
        );
        assert_eq!(p.delete.len(), 1);
        let status = p.status.unwrap();
        assert_eq!(types(&status), [("Suspended", "JobSuspended")]);
        let deleting = pod(
            "a",
            "Running",
            json!({"metadata": {"deletionTimestamp": "2025-01-01T00:09:00Z"}}),
        );
        let mut suspended = j.clone();
        suspended.status = Some(
            serde_json::from_value(
                json!({"conditions": [serde_json::to_value(&status.conditions[0]).unwrap()]}),
            )
            .unwrap(),
        );
        let p = plan(
            &suspended,
            &[deleting],
            &BackoffRecord::default(),
            true,
            now(),
        );
        assert_eq!(p.remove_finalizers.len(), 1);
        assert!(p.status.is_none_or(|s| s.uncounted_failed.is_empty()));
        // Resumed: the condition turns False, the clock restarts, pods are created.
        let mut resumed = suspended.clone();
        resumed.spec.as_mut().unwrap().suspend = Some(false);
        let p = plan(&resumed, &[], &BackoffRecord::default(), true, now());
        let status = p.status.unwrap();
        assert_eq!(status.conditions[0].status, "False");
        assert_eq!(status.start_time, Some(now()));
        assert_eq!(p.create.len(), 2);
    }

    #[test]
    fn job_ttl_after_finished() {
        let j = job(
            json!({"ttlSecondsAfterFinished": 30}),
            json!({"completionTime": "2025-01-01T00:09:50Z"}),
        );
        assert_eq!(ttl_remaining(&j, now()), Some(Duration::from_secs(20)));
        let later = now().checked_add(Duration::from_secs(60)).unwrap();
        assert_eq!(ttl_remaining(&j, later), Some(Duration::ZERO));
        assert_eq!(ttl_remaining(&job(json!({}), json!({})), now()), None);
    }
}

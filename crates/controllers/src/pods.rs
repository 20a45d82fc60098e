//! What controllers read of pods: their phase, active, ready, available, their controller, and upstream's
//! order for choosing which pods go first when scaling down (`ActivePodsWithRanks`).

use std::cmp::Ordering;
use std::time::Duration;

use gantry_client::k8s_openapi::api::core::v1::Pod;
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use gantry_client::k8s_openapi::jiff::Timestamp;

/// The annotation that says what deleting a pod costs (lower goes first).
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// `status.phase` (empty when unknown).
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Not finished and not being deleted (`IsPodActive`).
pub fn is_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// Since when the pod is ready, if it is (its Ready condition).
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let condition = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))?;
    (condition.status == "True").then(|| condition.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready` by `now` (`IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready: Duration, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready.is_zero() => true,
        Some(None) => false,
        Some(Some(since)) => since
            .checked_add(min_ready)
            .is_ok_and(|available| available < now),
    }
}

/// The owner reference that is the object's controller.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

fn node(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// `floor(log2(nanoseconds since t))`, -1 for a time not before now (upstream's logarithmic scale-down).
fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let nanos = now.as_nanosecond() - t.as_nanosecond();
    if nanos <= 0 {
        return -1;
    }
    // The highest set bit of a positive i128 is floor(log2).
    127 - i64::from(nanos.leading_zeros())
}

/// Newer (or unknown) times first, with the logarithmic buckets and the uid deciding ties.
fn newer_first(
    a: Option<Timestamp>,
    b: Option<Timestamp>,
    now: Timestamp,
    uids: Ordering,
) -> Ordering {
    match (a, b) {
        (a, b) if a == b => Ordering::Equal,
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(a), Some(b)) => match log_rank(a, now).cmp(&log_rank(b, now)) {
            Ordering::Equal => uids,
            other => other,
        },
    }
}

/// Upstream's `ActivePodsWithRanks.Less`: the pods to delete first come first. `rank` is how many related
/// pods share the pod's node.
pub fn deletion_order(a: (&Pod, usize), b: (&Pod, usize), now: Timestamp) -> Ordering {
    let ((a, rank_a), (b, rank_b)) = (a, b);
    let uids = a.metadata.uid.cmp(&b.metadata.uid);
    // 1. Unassigned before assigned.
    let (node_a, node_b) = (node(a), node(b));
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return if node_a.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending before Unknown before Running.
    let by_phase = phase_rank(a).cmp(&phase_rank(b));
    if by_phase != Ordering::Equal {
        return by_phase;
    }
    // 3. Not ready before ready.
    let by_ready = is_ready(a).cmp(&is_ready(b));
    if by_ready != Ordering::Equal {
        return by_ready;
    }
    // 4. Lower deletion cost first.
    let by_cost = deletion_cost(a).cmp(&deletion_cost(b));
    if by_cost != Ordering::Equal {
        return by_cost;
    }
    // 5. Doubled up on a node before alone.
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    // 6. Ready for less time before ready for longer.
    if let (Some(ready_a), Some(ready_b)) = (ready_since(a), ready_since(b)) {
        let by_time = newer_first(ready_a, ready_b, now, uids);
        if by_time != Ordering::Equal {
            return by_time;
        }
    }
    // 7. More restarts first.
    let by_restarts = restarts(b).cmp(&restarts(a));
    if by_restarts != Ordering::Equal {
        return by_restarts;
    }
    // 8. Newer before older.
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    newer_first(created(a), created(b), now, uids)
}

/// The `n` pods of `pods` to delete first; `related` are the pods whose sharing a node counts (the
/// controller's own, upstream's `getPodsRankedByRelatedPodsOnSameNode`).
pub fn to_delete<'a>(pods: &[&'a Pod], related: &[&Pod], n: usize, now: Timestamp) -> Vec<&'a Pod> {
    let mut on_node = std::collections::HashMap::<&str, usize>::new();
    for pod in related.iter().filter(|p| is_active(p)) {
        *on_node.entry(node(pod)).or_default() += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> = pods
        .iter()
        .map(|p| {
            let rank = if node(p).is_empty() {
                0
            } else {
                on_node.get(node(p)).copied().unwrap_or(0)
            };
            (*p, rank)
        })
        .collect();
    if n < ranked.len() {
        ranked.sort_by(|a, b| deletion_order(*a, *b, now));
    }
    ranked.into_iter().take(n).map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::{Value, json};

    fn pod(name: &str, extra: Value) -> Pod {
        let mut value = json!({"metadata": {"name": name, "uid": name,
            "creationTimestamp": "2025-01-01T00:00:00Z"}});
        merge(&mut value, extra);
        serde_json::from_value(value).unwrap()
    }

    fn merge(into: &mut Value, from: Value) {
        match (into, from) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (into, from) => *into = from,
        }
    }

    fn ready(at: &str) -> Value {
        json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": at}]})
    }

    fn now() -> Timestamp {
        "2025-01-02T00:00:00Z".parse().unwrap()
    }

    fn names(pods: Vec<&Pod>) -> Vec<&str> {
        pods.iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn scale_down_takes_the_least_useful_pods_first() {
        let unassigned = pod("unassigned", json!({}));
        let pending = pod(
            "pending",
            json!({"spec": {"containers": [], "nodeName": "n1"},
            "status": {"phase": "Pending"}}),
        );
        let running = pod(
            "running",
            json!({"spec": {"containers": [], "nodeName": "n1"},
            "status": {"phase": "Running"}}),
        );
        let old_ready = pod(
            "old-ready",
            json!({"spec": {"containers": [], "nodeName": "n1"},
            "status": ready("2025-01-01T00:00:00Z")}),
        );
        let new_ready = pod(
            "new-ready",
            json!({"spec": {"containers": [], "nodeName": "n1"},
            "status": ready("2025-01-01T23:59:00Z")}),
        );
        let costly = pod(
            "costly",
            json!({"spec": {"containers": [], "nodeName": "n1"},
            "metadata": {"annotations": {DELETION_COST: "100"}},
            "status": ready("2025-01-01T23:59:30Z")}),
        );
        let all = [
            &costly,
            &old_ready,
            &running,
            &new_ready,
            &unassigned,
            &pending,
        ];
        let order = to_delete(&all, &all, 5, now());
        assert_eq!(
            names(order),
            ["unassigned", "pending", "running", "new-ready", "old-ready"]
        );
        assert_eq!(
            names(to_delete(&all, &all, 2, now())),
            ["unassigned", "pending"]
        );
    }

    #[test]
    fn doubled_up_pods_go_before_lone_ones() {
        let spec = |node: &str| {
            json!({"spec": {"containers": [], "nodeName": node},
            "status": ready("2025-01-01T00:00:00Z")})
        };
        let lone = pod("lone", spec("n1"));
        let twin_a = pod("twin-a", spec("n2"));
        let twin_b = pod("twin-b", spec("n2"));
        let all = [&lone, &twin_a, &twin_b];
        assert_eq!(names(to_delete(&all, &all, 1, now())), ["twin-a"]);
    }

    #[test]
    fn readiness_and_availability() {
        let p = pod("p", json!({"status": ready("2025-01-01T23:59:50Z")}));
        assert!(is_ready(&p) && is_active(&p));
        assert!(is_available(&p, Duration::ZERO, now()));
        assert!(is_available(&p, Duration::from_secs(5), now()));
        assert!(!is_available(&p, Duration::from_secs(10), now()));
        let done = pod("d", json!({"status": {"phase": "Succeeded"}}));
        assert!(!is_active(&done));
        let going = pod(
            "g",
            json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}),
        );
        assert!(!is_active(&going));
        let owned = pod(
            "o",
            json!({"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "X", "name": "x", "uid": "1"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "2", "controller": true}]}}),
        );
        assert_eq!(
            controller_of(&owned.metadata).map(|r| r.uid.as_str()),
            Some("2")
        );
        assert_eq!(log_rank(now(), now()), -1);
        let second: Timestamp = "2025-01-01T23:59:59Z".parse().unwrap();
        assert_eq!(
            log_rank(second, now()),
            29,
            "a second is between 2^29 and 2^30 ns"
        );
    }
}

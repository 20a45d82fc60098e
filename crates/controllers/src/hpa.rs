//! The HorizontalPodAutoscaler controller, with upstream's semantics as far as Gantry can have them: there
//! is no metrics API (no metrics-server, no custom or external metrics), so, like upstream's controller in a
//! cluster without one, it waits for metrics. Every [`SYNC_PERIOD`] (and at once when an autoscaler is new
//! or its spec changed) it reads the target's `scale` subresource (AbleToScale False FailedGetScale when it
//! cannot, True SucceededGetScale when it can), then:
//!
//! - a target scaled to 0 (with `minReplicas` not 0) is left alone: ScalingActive False ScalingDisabled;
//! - above `maxReplicas` it is scaled to the maximum, below `minReplicas` to the minimum (a SuccessfulRescale
//!   event, AbleToScale True SucceededRescale, `lastScaleTime`);
//! - otherwise each metric is asked for and none can be had: a FailedGet…Metric event per metric and
//!   ScalingActive False with the first one's reason and upstream's message (for CPU: `unable to fetch
//!   metrics from resource metrics API: the server could not find the requested resource (get
//!   pods.metrics.k8s.io)`), a FailedComputeMetricsReplicas event, and the target left as it is.
//!
//! The status (`currentReplicas`, `desiredReplicas`, `currentMetrics` — one empty entry per metric, as
//! upstream writes them, so `kubectl get hpa` shows `<unknown>` —, `lastScaleTime` and the conditions) is
//! written with a PUT on the autoscaler's resourceVersion only when it changed. ScalingLimited is
//! upstream's to set when it clamps a recommendation computed from metrics, which never happens here.
//!
//! One task owns the autoscalers the watch shows and when each is due; syncs run in tasks of their own, at
//! most [`SYNCS_IN_FLIGHT`] at a time and one at a time per autoscaler.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gantry_api::labels::Selector;
use gantry_client::events::{Event, Recorder};
use gantry_client::k8s_openapi::api::autoscaling::v1::Scale;
use gantry_client::k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricSpec, MetricStatus, MetricTarget,
};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use gantry_client::k8s_openapi::jiff::Timestamp;
use gantry_client::kube::api::{DynamicObject, PostParams};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::{api_message, involved, is_not_found, key, name_of, namespace_of};
use crate::cache::{Relist, watch_all};
use crate::disruption::resource_for;

/// The events' source, as upstream's.
pub const COMPONENT: &str = "horizontal-pod-autoscaler";
/// How often each autoscaler is looked at (upstream's `--horizontal-pod-autoscaler-sync-period`).
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);
/// Autoscalers being synced at once.
pub const SYNCS_IN_FLIGHT: usize = 16;

/// What the resource metrics API answers when it is not there.
const NO_RESOURCE_METRICS: &str =
    "the server could not find the requested resource (get pods.metrics.k8s.io)";
/// What the custom metrics client says when no custom metrics API is registered.
const NO_CUSTOM_METRICS: &str = "no custom metrics API (custom.metrics.k8s.io) registered";

pub const ABLE_TO_SCALE: &str = "AbleToScale";
pub const SCALING_ACTIVE: &str = "ScalingActive";

/// Runs the controller until its watch ends (it does not: it retries on its own).
pub async fn run(client: Client) {
    let mut hpa_events = watch_all::<HorizontalPodAutoscaler>(&client);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut controller = Controller::new(client, done_tx);
    loop {
        let wakeup = controller
            .next_due()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            Some(key) = done_rx.recv() => controller.done(key, Instant::now()),
            Some(event) = hpa_events.next() => match event {
                Ok(event) => controller.event(event, Instant::now()),
                Err(e) => tracing::warn!("horizontal pod autoscaler controller: watching: {e}"),
            },
            () = tokio::time::sleep_until(wakeup), if controller.relist.synced => {
                controller.start_due(Instant::now());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// What a sync decides.
// ---------------------------------------------------------------------------------------------------------

/// Upstream's `setCondition`: sets the condition of `type_`, with a new transition time when its status
/// changes (or it is new).
pub(crate) fn set_condition(
    status: &mut HorizontalPodAutoscalerStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let index = match conditions.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conditions.push(HorizontalPodAutoscalerCondition {
                type_: type_.to_owned(),
                ..HorizontalPodAutoscalerCondition::default()
            });
            conditions.len() - 1
        }
    };
    let condition = &mut conditions[index];
    if condition.status != value {
        condition.last_transition_time = Some(time(now));
    }
    condition.status = value.to_owned();
    condition.reason = Some(reason.to_owned());
    condition.message = Some(message);
}

fn time(at: Timestamp) -> Time {
    Time(Timestamp::from_second(at.as_second()).unwrap_or(at))
}

/// Upstream's `setStatus`: the status anew, keeping the conditions and the last scale time (now, when it
/// rescaled). Like upstream's, it leaves `observedGeneration` out.
pub(crate) fn set_status(
    status: &mut HorizontalPodAutoscalerStatus,
    current: i32,
    desired: i32,
    metrics: Option<Vec<MetricStatus>>,
    rescaled: bool,
    now: Timestamp,
) {
    *status = HorizontalPodAutoscalerStatus {
        current_replicas: (current != 0).then_some(current),
        desired_replicas: desired,
        current_metrics: metrics.filter(|m| !m.is_empty()),
        last_scale_time: if rescaled {
            Some(time(now))
        } else {
            status.last_scale_time.take()
        },
        conditions: status.conditions.take(),
        observed_generation: None,
    };
}

/// What to do about a target at `current` replicas, before metrics: `Some((desired, reason))` to rescale,
/// `Some((0, ""))` when scaling is disabled (the target is at 0), `None` to ask the metrics.
pub(crate) fn bounds(current: i32, min: i32, max: i32) -> Option<(i32, &'static str)> {
    if current == 0 && min != 0 {
        Some((0, ""))
    } else if current > max {
        Some((max, "Current number of replicas above Spec.MaxReplicas"))
    } else if current < min {
        Some((min, "Current number of replicas below Spec.MinReplicas"))
    } else {
        None
    }
}

/// Why one metric cannot be had: the event's (and condition's) reason, the error it reports, and the
/// error as `computeReplicasForMetric` wraps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetricFailure {
    pub reason: &'static str,
    pub error: String,
    pub wrapped: String,
}

/// What upstream's controller reports for `metric` when no metrics API answers.
pub(crate) fn metric_failure(metric: &MetricSpec, namespace: &str) -> MetricFailure {
    let resource_error = |name: &str, target: &MetricTarget| {
        let unable = format!(
            "unable to get metrics for resource {name}: unable to fetch metrics from resource metrics API: {NO_RESOURCE_METRICS}"
        );
        if target.average_value.is_some() {
            format!("failed to get {name} usage: {unable}")
        } else if target.average_utilization.is_none() {
            "invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".to_owned()
        } else {
            format!("failed to get {name} utilization: {unable}")
        }
    };
    let kind = metric.type_.as_str();
    if kind == "Resource"
        && let Some(source) = &metric.resource
    {
        let error = resource_error(&source.name, &source.target);
        return MetricFailure {
            reason: "FailedGetResourceMetric",
            wrapped: format!(
                "failed to get {} resource metric value: {error}",
                source.name
            ),
            error,
        };
    }
    if kind == "ContainerResource"
        && let Some(source) = &metric.container_resource
    {
        let error = resource_error(&source.name, &source.target);
        return MetricFailure {
            reason: "FailedGetContainerResourceMetric",
            wrapped: format!(
                "failed to get {} container metric value: {error}",
                source.container
            ),
            error,
        };
    }
    if kind == "Pods"
        && let Some(source) = &metric.pods
    {
        let error = format!(
            "unable to get metric {}: unable to fetch metrics from custom metrics API: {NO_CUSTOM_METRICS}",
            source.metric.name
        );
        return MetricFailure {
            reason: "FailedGetPodsMetric",
            wrapped: format!("failed to get pods metric value: {error}"),
            error,
        };
    }
    if kind == "Object"
        && let Some(source) = &metric.object
    {
        let name = &source.metric.name;
        // Upstream's message puts the error after the object's name, as here.
        let unable = format!(
            "unable to get metric {name}: {} on {namespace} {}/unable to fetch metrics from custom metrics API: {NO_CUSTOM_METRICS}",
            source.described_object.kind, source.described_object.name
        );
        let target = &source.target;
        let (error, inner) = match target.type_.as_str() {
            "Value" if target.value.is_some() => (unable.clone(), unable),
            "AverageValue" if target.average_value.is_some() => {
                let inner = format!("failed to get {name} object metric: {unable}");
                (unable, inner)
            }
            _ => {
                let e = "invalid object metric source: neither a value target nor an average value target was set";
                (e.to_owned(), e.to_owned())
            }
        };
        return MetricFailure {
            reason: "FailedGetObjectMetric",
            wrapped: format!("failed to get object metric value: {inner}"),
            error,
        };
    }
    if kind == "External"
        && let Some(source) = &metric.external
    {
        let name = &source.metric.name;
        let unable = format!(
            "unable to fetch metrics from external metrics API: the server could not find the requested resource (get {name}.external.metrics.k8s.io)"
        );
        let (error, inner) = if source.target.average_value.is_some() {
            let inner = format!("failed to get {name} external metric: {unable}");
            (unable, inner)
        } else if source.target.value.is_some() {
            let inner = format!("failed to get external metric {name}: {unable}");
            (unable, inner)
        } else {
            let e = "invalid external metric source: neither a value target nor an average value target was set";
            (e.to_owned(), e.to_owned())
        };
        return MetricFailure {
            reason: "FailedGetExternalMetric",
            wrapped: format!("failed to get {name} external metric value: {inner}"),
            error,
        };
    }
    let error = format!("unknown metric source type {kind:?}");
    MetricFailure {
        reason: "InvalidMetricSourceType",
        wrapped: error.clone(),
        error,
    }
}

/// The outcome of asking for every metric (upstream's `computeReplicasForMetrics` when none answers):
/// the statuses to record, the events (reason, message) and the error.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricsOutcome {
    pub statuses: Option<Vec<MetricStatus>>,
    pub events: Vec<(&'static str, String)>,
    pub error: String,
}

/// Asks for the metrics of `hpa` with the target's `selector`, setting ScalingActive.
pub(crate) fn compute_metrics(
    hpa: &HorizontalPodAutoscaler,
    selector: Option<&str>,
    status: &mut HorizontalPodAutoscalerStatus,
    now: Timestamp,
) -> MetricsOutcome {
    let mut events = Vec::new();
    let selector = selector.unwrap_or_default();
    if selector.is_empty() {
        let error = "selector is required".to_owned();
        events.push(("SelectorRequired", error.clone()));
        set_condition(
            status,
            SCALING_ACTIVE,
            "False",
            "InvalidSelector",
            "the HPA target's scale is missing a selector".into(),
            now,
        );
        return MetricsOutcome {
            statuses: None,
            events,
            error,
        };
    }
    if let Err(e) = Selector::parse(selector) {
        let error =
            format!("couldn't convert selector into a corresponding internal selector object: {e}");
        events.push(("InvalidSelector", error.clone()));
        set_condition(
            status,
            SCALING_ACTIVE,
            "False",
            "InvalidSelector",
            error.clone(),
            now,
        );
        return MetricsOutcome {
            statuses: None,
            events,
            error,
        };
    }
    let namespace = namespace_of(&hpa.metadata);
    let metrics: &[MetricSpec] = hpa
        .spec
        .as_ref()
        .and_then(|s| s.metrics.as_deref())
        .unwrap_or_default();
    let failures: Vec<MetricFailure> = metrics
        .iter()
        .map(|m| metric_failure(m, namespace))
        .collect();
    events.extend(failures.iter().map(|f| (f.reason, f.error.clone())));
    let first = failures.first();
    if let Some(first) = first {
        set_condition(
            status,
            SCALING_ACTIVE,
            "False",
            first.reason,
            format!(
                "the HPA was unable to compute the replica count: {}",
                first.error
            ),
            now,
        );
    }
    let error = match first {
        Some(first) => format!(
            "invalid metrics ({} invalid out of {}), first error is: {}",
            failures.len(),
            failures.len(),
            first.wrapped
        ),
        None => "invalid metrics (0 invalid out of 0), first error is: <nil>".to_owned(),
    };
    MetricsOutcome {
        statuses: Some(vec![MetricStatus::default(); metrics.len()]),
        events,
        error,
    }
}

// ---------------------------------------------------------------------------------------------------------
// The controller.
// ---------------------------------------------------------------------------------------------------------

struct Controller {
    client: Client,
    events: Recorder,
    hpas: HashMap<String, Arc<HorizontalPodAutoscaler>>,
    relist: Relist,
    /// When each autoscaler is due, and the same ordered by time.
    due_at: HashMap<String, Instant>,
    due: BTreeSet<(Instant, String)>,
    /// Being synced; those due meanwhile are started again once done.
    active: HashSet<String>,
    done_tx: mpsc::UnboundedSender<String>,
}

impl Controller {
    fn new(client: Client, done_tx: mpsc::UnboundedSender<String>) -> Controller {
        Controller {
            events: Recorder::start(client.clone(), COMPONENT),
            client,
            hpas: HashMap::new(),
            relist: Relist::default(),
            due_at: HashMap::new(),
            due: BTreeSet::new(),
            active: HashSet::new(),
            done_tx,
        }
    }

    /// Makes `k` due at `at` (or earlier, if it already is).
    fn schedule(&mut self, k: &str, at: Instant) {
        if let Some(current) = self.due_at.get(k) {
            if *current <= at {
                return;
            }
            self.due.remove(&(*current, k.to_owned()));
        }
        self.due_at.insert(k.to_owned(), at);
        self.due.insert((at, k.to_owned()));
    }

    fn unschedule(&mut self, k: &str) {
        if let Some(at) = self.due_at.remove(k) {
            self.due.remove(&(at, k.to_owned()));
        }
    }

    fn next_due(&self) -> Option<Instant> {
        if self.active.len() >= SYNCS_IN_FLIGHT {
            return None;
        }
        self.due
            .iter()
            .find(|(_, k)| !self.active.contains(k))
            .map(|(at, _)| *at)
    }

    fn event(&mut self, event: watcher::Event<HorizontalPodAutoscaler>, now: Instant) {
        match event {
            watcher::Event::Init => self.relist.init(),
            watcher::Event::InitApply(hpa) | watcher::Event::Apply(hpa) => {
                let k = key(namespace_of(&hpa.metadata), name_of(&hpa.metadata));
                self.relist.seen(&k);
                let changed = self
                    .hpas
                    .get(&k)
                    .is_none_or(|old| old.metadata.generation != hpa.metadata.generation);
                self.hpas.insert(k.clone(), Arc::new(hpa));
                if changed {
                    self.schedule(&k, now);
                }
            }
            watcher::Event::Delete(hpa) => {
                let k = key(namespace_of(&hpa.metadata), name_of(&hpa.metadata));
                self.hpas.remove(&k);
                self.unschedule(&k);
            }
            watcher::Event::InitDone => {
                for k in self.relist.done(self.hpas.keys()) {
                    self.hpas.remove(&k);
                    self.unschedule(&k);
                }
            }
        }
    }

    /// Starts the syncs that are due.
    fn start_due(&mut self, now: Instant) {
        let due: Vec<String> = self
            .due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter(|(_, k)| !self.active.contains(k))
            .map(|(_, k)| k.clone())
            .collect();
        for k in due {
            if self.active.len() >= SYNCS_IN_FLIGHT {
                break;
            }
            self.unschedule(&k);
            let Some(hpa) = self.hpas.get(&k).cloned() else {
                continue;
            };
            self.active.insert(k.clone());
            let (client, events, done) = (
                self.client.clone(),
                self.events.clone(),
                self.done_tx.clone(),
            );
            tokio::spawn(async move {
                reconcile(client, events, hpa).await;
                let _ = done.send(k);
            });
        }
    }

    fn done(&mut self, k: String, now: Instant) {
        self.active.remove(&k);
        if self.hpas.contains_key(&k) {
            self.schedule(&k, now + SYNC_PERIOD);
        }
    }
}

/// The target's current scale, or why it cannot be read.
async fn read_scale(
    client: &Client,
    hpa: &HorizontalPodAutoscaler,
) -> Result<(Api<DynamicObject>, Scale), String> {
    let target = hpa
        .spec
        .as_ref()
        .map(|s| s.scale_target_ref.clone())
        .unwrap_or_default();
    let api_version = target.api_version.unwrap_or_default();
    let resource = resource_for(client, &api_version, &target.kind).await?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace_of(&hpa.metadata), &resource.api);
    match api.get_scale(&target.name).await {
        Ok(scale) => Ok((api, scale)),
        Err(e) => Err(api_message(&e)),
    }
}

/// One sync of one autoscaler (upstream's `reconcileAutoscaler`).
async fn reconcile(client: Client, events: Recorder, hpa: Arc<HorizontalPodAutoscaler>) {
    let now = Timestamp::now();
    let record = |warning: bool, reason: &'static str, message: String| {
        events.record(Event {
            object: involved(&*hpa),
            warning,
            reason,
            message,
        });
    };
    let original = hpa.status.clone().unwrap_or_default();
    let mut status = original.clone();
    let (api, mut scale) = match read_scale(&client, &hpa).await {
        Ok(found) => found,
        Err(error) => {
            record(true, "FailedGetScale", error.clone());
            set_condition(
                &mut status,
                ABLE_TO_SCALE,
                "False",
                "FailedGetScale",
                format!("the HPA controller was unable to get the target's current scale: {error}"),
                now,
            );
            write_status(&client, &events, &hpa, &original, status).await;
            return;
        }
    };
    set_condition(
        &mut status,
        ABLE_TO_SCALE,
        "True",
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
        now,
    );
    let spec = hpa.spec.clone().unwrap_or_default();
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let min = spec.min_replicas.unwrap_or(1);
    let (desired, reason) = match bounds(current, min, spec.max_replicas) {
        Some((_, "")) => {
            set_condition(
                &mut status,
                SCALING_ACTIVE,
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
                now,
            );
            let desired = current;
            set_status(&mut status, current, desired, None, false, now);
            write_status(&client, &events, &hpa, &original, status).await;
            return;
        }
        Some(rescale) => rescale,
        None => {
            let selector = scale.status.as_ref().and_then(|s| s.selector.as_deref());
            let outcome = compute_metrics(&hpa, selector, &mut status, now);
            for (reason, message) in &outcome.events {
                record(true, reason, message.clone());
            }
            let desired = status.desired_replicas;
            set_status(&mut status, current, desired, outcome.statuses, false, now);
            write_status(&client, &events, &hpa, &original, status).await;
            record(true, "FailedComputeMetricsReplicas", outcome.error);
            return;
        }
    };
    scale.spec.get_or_insert_with(Default::default).replicas = Some(desired);
    let target = &spec.scale_target_ref.name;
    match api
        .replace_scale(target, &PostParams::default(), &scale)
        .await
    {
        Ok(_) => {
            set_condition(
                &mut status,
                ABLE_TO_SCALE,
                "True",
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
                now,
            );
            record(
                false,
                "SuccessfulRescale",
                format!("New size: {desired}; reason: {reason}"),
            );
            set_status(&mut status, current, desired, None, true, now);
        }
        Err(e) => {
            let error = api_message(&e);
            record(
                true,
                "FailedRescale",
                format!("New size: {desired}; reason: {reason}; error: {error}"),
            );
            set_condition(
                &mut status,
                ABLE_TO_SCALE,
                "False",
                "FailedUpdateScale",
                format!("the HPA controller was unable to update the target scale: {error}"),
                now,
            );
            let desired = status.desired_replicas;
            let metrics = status.current_metrics.take();
            set_status(&mut status, current, desired, metrics, false, now);
        }
    }
    write_status(&client, &events, &hpa, &original, status).await;
}

/// Writes the status if it changed (upstream's `updateStatusIfNeeded`).
async fn write_status(
    client: &Client,
    events: &Recorder,
    hpa: &HorizontalPodAutoscaler,
    original: &HorizontalPodAutoscalerStatus,
    status: HorizontalPodAutoscalerStatus,
) {
    if &status == original {
        return;
    }
    let mut updated = hpa.clone();
    updated.status = Some(status);
    let api: Api<HorizontalPodAutoscaler> =
        Api::namespaced(client.clone(), namespace_of(&hpa.metadata));
    match api
        .replace_status(name_of(&hpa.metadata), &PostParams::default(), &updated)
        .await
    {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => events.record(Event {
            object: involved(hpa),
            warning: true,
            reason: "FailedUpdateStatus",
            message: api_message(&e),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};

    use super::*;

    fn hpa(metrics: Value) -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 3, "maxReplicas": 5, "metrics": metrics}}))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2025-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn bounds_follow_upstream_rules() {
        assert_eq!(
            bounds(0, 1, 5),
            Some((0, "")),
            "0 replicas: scaling disabled"
        );
        assert_eq!(bounds(0, 0, 5), None, "minReplicas 0 autoscales from 0");
        assert_eq!(
            bounds(1, 3, 5),
            Some((3, "Current number of replicas below Spec.MinReplicas"))
        );
        assert_eq!(
            bounds(9, 3, 5),
            Some((5, "Current number of replicas above Spec.MaxReplicas"))
        );
        assert_eq!(bounds(4, 3, 5), None);
        assert_eq!(bounds(3, 3, 5), None);
    }

    #[test]
    fn without_metrics_scaling_is_inactive_with_upstreams_message() {
        let hpa = hpa(json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}]));
        let mut status = HorizontalPodAutoscalerStatus::default();
        let outcome = compute_metrics(&hpa, Some("app=web"), &mut status, now());
        let fetch = "unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: \
                     the server could not find the requested resource (get pods.metrics.k8s.io)";
        assert_eq!(
            outcome.events,
            [(
                "FailedGetResourceMetric",
                format!("failed to get cpu utilization: {fetch}")
            )]
        );
        assert_eq!(
            outcome.error,
            format!(
                "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: \
                 failed to get cpu utilization: {fetch}"
            )
        );
        assert_eq!(outcome.statuses, Some(vec![MetricStatus::default()]));
        let condition = &status.conditions.as_ref().unwrap()[0];
        assert_eq!(condition.type_, "ScalingActive");
        assert_eq!(condition.status, "False");
        assert_eq!(condition.reason.as_deref(), Some("FailedGetResourceMetric"));
        assert_eq!(
            condition.message.as_deref(),
            Some(format!("the HPA was unable to compute the replica count: failed to get cpu utilization: {fetch}").as_str())
        );
        assert_eq!(condition.last_transition_time, Some(Time(now())));
    }

    #[test]
    fn each_metric_type_names_its_failure() {
        let reasons = |metrics: Value| {
            let hpa = hpa(metrics);
            let mut status = HorizontalPodAutoscalerStatus::default();
            compute_metrics(&hpa, Some("app=web"), &mut status, now())
                .events
                .into_iter()
                .map(|(reason, _)| reason)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            reasons(json!([
                {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1"}}},
                {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "1"}}},
                {"type": "Object", "object": {"metric": {"name": "hits"}, "describedObject": {"kind": "Service", "name": "s"},
                    "target": {"type": "Value", "value": "1"}}},
                {"type": "ContainerResource", "containerResource": {"name": "memory", "container": "app",
                    "target": {"type": "AverageValue", "averageValue": "1Gi"}}},
            ])),
            [
                "FailedGetPodsMetric",
                "FailedGetExternalMetric",
                "FailedGetObjectMetric",
                "FailedGetContainerResourceMetric"
            ]
        );
        let hpa = hpa(json!([{"type": "Pods", "pods": {"metric": {"name": "qps"},
            "target": {"type": "AverageValue", "averageValue": "1"}}}]));
        let failure = metric_failure(&hpa.spec.unwrap().metrics.unwrap()[0], "ns");
        assert_eq!(
            failure.error,
            "unable to get metric qps: unable to fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered"
        );
    }

    #[test]
    fn a_missing_selector_makes_scaling_inactive() {
        let hpa = hpa(json!([]));
        let mut status = HorizontalPodAutoscalerStatus::default();
        let outcome = compute_metrics(&hpa, Some(""), &mut status, now());
        assert_eq!(outcome.error, "selector is required");
        assert_eq!(outcome.statuses, None);
        let condition = &status.conditions.as_ref().unwrap()[0];
        assert_eq!(condition.reason.as_deref(), Some("InvalidSelector"));
    }

    #[test]
    fn the_status_keeps_conditions_and_records_when_it_rescaled() {
        let mut status = HorizontalPodAutoscalerStatus::default();
        set_condition(
            &mut status,
            ABLE_TO_SCALE,
            "True",
            "SucceededGetScale",
            "m".into(),
            now(),
        );
        set_status(&mut status, 1, 3, None, true, now());
        assert_eq!(
            (status.current_replicas, status.desired_replicas),
            (Some(1), 3)
        );
        assert_eq!(status.last_scale_time, Some(Time(now())));
        assert_eq!(status.conditions.as_ref().unwrap().len(), 1);
        // Later, without a rescale: the last scale time stays; the condition keeps its transition time
        // while its status holds.
        let later: Timestamp = "2025-01-01T00:00:15Z".parse().unwrap();
        set_condition(
            &mut status,
            ABLE_TO_SCALE,
            "True",
            "SucceededRescale",
            "n".into(),
            later,
        );
        set_status(
            &mut status,
            3,
            3,
            Some(vec![MetricStatus::default()]),
            false,
            later,
        );
        assert_eq!(status.last_scale_time, Some(Time(now())));
        let condition = &status.conditions.as_ref().unwrap()[0];
        assert_eq!(condition.last_transition_time, Some(Time(now())));
        assert_eq!(condition.reason.as_deref(), Some("SucceededRescale"));
        assert_eq!(
            serde_json::to_value(&status).unwrap()["currentMetrics"],
            json!([{"type": ""}]),
            "one empty entry per metric, as upstream writes them"
        );
    }
}

//! End to end: HorizontalPodAutoscalers. Gantry has no metrics API, so the controller in `gantry server`
//! keeps targets within `minReplicas`/`maxReplicas` through their `scale` subresource and otherwise waits
//! for metrics the way upstream's does without metrics-server: `kubectl get hpa` shows `<unknown>` targets
//! and `kubectl describe hpa` says why. Real `gantry server` (its pods need not run), real kubectl 1.33.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test; blocking sleeps are fine here

mod support;

use std::time::Duration;

use serde_json::Value;
use support::simulator::{get, until};
use support::{Server, ok, write};

const KUBECTL: &str = "1.33";

fn replicas(server: &Server, deployment: &str) -> Value {
    get(server, &["get", "deployment", deployment])["spec"]["replicas"].clone()
}

/// The autoscaler's condition of `kind`: (status, reason, message).
fn condition(hpa: &Value, kind: &str) -> Option<(String, String, String)> {
    hpa["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            let text = |field: &str| c[field].as_str().unwrap_or_default().to_owned();
            (text("status"), text("reason"), text("message"))
        })
}

const NO_METRICS: &str = "failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch \
                          metrics from resource metrics API: the server could not find the requested resource \
                          (get pods.metrics.k8s.io)";

#[test]
fn kubectl_autoscale_keeps_the_bounds_and_waits_for_metrics() {
    let server = Server::start();
    ok(
        KUBECTL,
        &server,
        &[
            "create",
            "deployment",
            "web",
            "--image=nothing.invalid/never:pulled",
            "--replicas=1",
        ],
    );
    ok(
        KUBECTL,
        &server,
        &[
            "autoscale",
            "deployment",
            "web",
            "--min=3",
            "--max=5",
            "--cpu-percent=50",
        ],
    );
    // Below the minimum: scaled up to it at once.
    until(Duration::from_secs(15), "the Deployment at 3", || {
        let now = replicas(&server, "web");
        (now == 3).then_some(()).ok_or(now.to_string())
    });
    let hpa = get(&server, &["get", "hpa", "web"]);
    assert!(hpa["status"]["lastScaleTime"].is_string(), "{hpa}");
    assert_eq!(hpa["status"]["desiredReplicas"], 3, "{hpa}");
    // Within the bounds, the next sync (15 s later) asks for metrics and finds none.
    until(
        Duration::from_secs(40),
        "scaling inactive for want of metrics",
        || {
            let hpa = get(&server, &["get", "hpa", "web"]);
            match condition(&hpa, "ScalingActive") {
                Some((status, reason, _))
                    if status == "False" && reason == "FailedGetResourceMetric" =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    );
    let hpa = get(&server, &["get", "hpa", "web"]);
    assert_eq!(
        condition(&hpa, "ScalingActive").unwrap().2,
        format!("the HPA was unable to compute the replica count: {NO_METRICS}")
    );
    assert_eq!(
        condition(&hpa, "AbleToScale").unwrap(),
        (
            "True".to_owned(),
            "SucceededGetScale".to_owned(),
            "the HPA controller was able to get the target's current scale".to_owned()
        )
    );
    assert_eq!(hpa["status"]["currentReplicas"], 3, "{hpa}");
    assert_eq!(replicas(&server, "web"), 3, "no metrics, no scaling");

    let table = ok(KUBECTL, &server, &["get", "hpa", "web"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..7],
        [
            "web",
            "Deployment/web",
            "cpu:",
            "<unknown>/50%",
            "3",
            "5",
            "3"
        ],
        "{table}"
    );
    let described = ok(KUBECTL, &server, &["describe", "hpa", "web"]);
    for expected in [
        "<unknown> / 50%",
        "AbleToScale    True    SucceededGetScale",
        "ScalingActive  False   FailedGetResourceMetric",
        "SuccessfulRescale",
        "New size: 3; reason: Current number of replicas below Spec.MinReplicas",
        "FailedGetResourceMetric",
        "FailedComputeMetricsReplicas",
        "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value",
        "horizontal-pod-autoscaler",
    ] {
        assert!(described.contains(expected), "{expected:?} in {described}");
    }

    // Above the maximum: back down to it at the next sync.
    ok(
        KUBECTL,
        &server,
        &["scale", "deployment", "web", "--replicas=9"],
    );
    until(Duration::from_secs(40), "the Deployment at 5", || {
        let now = replicas(&server, "web");
        (now == 5).then_some(()).ok_or(now.to_string())
    });
    let events = ok(KUBECTL, &server, &["describe", "hpa", "web"]);
    assert!(
        events.contains("New size: 5; reason: Current number of replicas above Spec.MaxReplicas"),
        "{events}"
    );
}

#[test]
fn an_autoscaler_without_its_target_cannot_scale() {
    let server = Server::start();
    let path = write(
        server.dir.path(),
        "ghost.yaml",
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: ghost}\n\
         spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: ghost}\n  maxReplicas: 3\n",
    );
    ok(KUBECTL, &server, &["apply", "-f", path.to_str().unwrap()]);
    until(Duration::from_secs(15), "AbleToScale False", || {
        let hpa = get(&server, &["get", "hpa", "ghost"]);
        match condition(&hpa, "AbleToScale") {
            Some((status, reason, message)) if status == "False" => {
                assert_eq!(reason, "FailedGetScale");
                assert_eq!(
                    message,
                    "the HPA controller was unable to get the target's current scale: \
                     deployments.apps \"ghost\" not found"
                );
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    });
    let described = ok(KUBECTL, &server, &["describe", "hpa", "ghost"]);
    assert!(described.contains("FailedGetScale"), "{described}");
    // A target kind the API does not serve.
    let path = write(
        server.dir.path(),
        "odd.yaml",
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: odd}\n\
         spec:\n  scaleTargetRef: {apiVersion: example.com/v1, kind: Widget, name: w}\n  maxReplicas: 3\n",
    );
    ok(KUBECTL, &server, &["apply", "-f", path.to_str().unwrap()]);
    until(
        Duration::from_secs(15),
        "AbleToScale False for the Widget",
        || {
            let hpa = get(&server, &["get", "hpa", "odd"]);
            match condition(&hpa, "AbleToScale") {
                Some((status, _, message)) if status == "False" => {
                    assert!(
                        message
                            .ends_with("no matches for kind \"Widget\" in group \"example.com\""),
                        "{message}"
                    );
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    );
}

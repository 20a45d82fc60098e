//! The pod subresources that are not plain reads and writes: `binding` (the scheduler's assignment of a pod
//! to a node) and `eviction` (a deletion that respects PodDisruptionBudgets, as `kubectl drain` does).

use std::collections::HashMap;

use gantry_api::field::FieldError;
use gantry_api::labels::Selector;
use gantry_api::status::StatusCause;
use gantry_api::{ApiError, GroupKind, GroupResource, registry};
use gantry_store::StoreError;
use http::StatusCode;
use serde_json::{Value, json};

use crate::deletion::DeleteOptions;
use crate::objects;
use crate::response::{self, Response};
use crate::rest::{Call, Part};

/// The `Status` a successful binding or eviction answers with.
fn success(code: StatusCode) -> Response {
    response::json(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code.as_u16()}),
    )
}

fn parse(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| ApiError::bad_request("the body of the request must be a JSON object"))
}

impl Call<'_> {
    /// POST `pods/<name>/binding`: sets the pod's node, once, and marks it scheduled.
    pub(crate) async fn bind(&self, name: &str, body: &[u8]) -> Result<Response, ApiError> {
        let binding = parse(body)?;
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let kind = binding.pointer("/target/kind").and_then(Value::as_str);
        let invalid =
            |error: FieldError| ApiError::invalid(GroupKind::new("", "Binding"), name, &[error]);
        let Some(node) = node else {
            return Err(invalid(FieldError::required("target.name", "")));
        };
        if kind.is_some_and(|k| !k.is_empty() && k != "Node") {
            return Err(invalid(FieldError::not_supported(
                "target.kind",
                kind.unwrap_or_default(),
                &["Node"],
            )));
        }
        let uid = binding
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.guaranteed_update(name, Part::System, |pod| {
            let mut pod = pod.clone();
            if uid
                .as_deref()
                .is_some_and(|u| pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(u))
            {
                return Err(ApiError::conflict_with(
                    self.group_resource(),
                    name,
                    "the UID in the binding does not match the pod's",
                ));
            }
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::conflict_with(
                    self.group_resource(),
                    name,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            if let Some(current) = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                return Err(ApiError::conflict_with(
                    self.group_resource(),
                    name,
                    format!("pod {name} is already assigned to node \"{current}\""),
                ));
            }
            pod["spec"]["nodeName"] = json!(node);
            set_condition(&mut pod, "PodScheduled");
            Ok(pod)
        })
        .await?;
        Ok(success(StatusCode::CREATED))
    }

    /// POST `pods/<name>/eviction`, as upstream's eviction subresource: a pod whose budget does not matter
    /// (finished, Pending, already being deleted) is deleted at once; otherwise the one PodDisruptionBudget
    /// covering it must allow a disruption, which is taken from it (`disruptionsAllowed` decremented and the
    /// pod recorded in `disruptedPods`, with a compare-and-swap on the budget) before the pod is marked
    /// `DisruptionTarget` and deleted; a budget allowing none is a 429. An unready pod is deleted without
    /// taking a disruption when the budget is met anyway or its `unhealthyPodEvictionPolicy` is AlwaysAllow.
    pub(crate) async fn evict(&self, name: &str, body: &[u8]) -> Result<Response, ApiError> {
        let eviction = parse(body)?;
        if eviction.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        let mut options = match eviction.get("deleteOptions") {
            Some(options) if !options.is_null() => {
                DeleteOptions::from_value(options, &HashMap::new())?
            }
            _ => DeleteOptions::default(),
        };
        // The request's dryRun and the Eviction's are one (`All` is the only value either may have).
        options.dry_run |= self.query.get("dryRun").is_some_and(|d| d == "All");
        let retry_conflicts = options.precondition_resource_version.is_none();
        let mut attempts = 0;
        let pod = loop {
            let pod = objects::decode(&self.read(name).await?)?;
            if !budget_can_be_ignored(&pod) {
                break pod;
            }
            let mut delete = options.clone();
            // A Pending pod may become ready meanwhile: delete only the version looked at.
            if delete.precondition_resource_version.is_none() && !finished_or_deleting(&pod) {
                delete.precondition_resource_version = resource_version(&pod);
            }
            match self.mark_and_delete(name, delete).await {
                Ok(()) => return Ok(success(StatusCode::CREATED)),
                Err(e) if e.code == 409 && retry_conflicts && attempts < EVICTION_RETRIES => {
                    attempts += 1;
                    tokio::time::sleep(EVICTION_RETRY_DELAY).await;
                }
                Err(e) => return Err(e),
            }
        };
        let mut budgets = self.covering_budgets(&pod).await?;
        if budgets.len() > 1 {
            // Upstream answers with this Status as the result, code 500 and no reason.
            return Err(ApiError {
                code: 500,
                reason: "",
                message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
                details: None,
            });
        }
        let mut pinned = false;
        let mut budget_name = String::new();
        if let Some((kv, budget)) = budgets.pop() {
            budget_name = str_at(&budget, "/metadata/name").to_owned();
            let status_int = |field: &str| {
                budget
                    .pointer(&format!("/status/{field}"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            };
            let always_allow = str_at(&budget, "/spec/unhealthyPodEvictionPolicy") == "AlwaysAllow";
            let (healthy, desired) = (status_int("currentHealthy"), status_int("desiredHealthy"));
            if !is_pod_ready(&pod) && (always_allow || (healthy >= desired && desired > 0)) {
                // An unready pod that does not count: deleted without taking a disruption, if it
                // stays as it was.
                pinned = true;
            } else {
                self.take_disruption(name, kv, budget, options.dry_run)
                    .await?;
            }
        }
        let mut delete = options.clone();
        if pinned {
            delete.precondition_resource_version = resource_version(&pod);
        }
        match self.mark_and_delete(name, delete).await {
            Ok(()) => Ok(success(StatusCode::CREATED)),
            Err(e) if e.code == 409 && pinned && retry_conflicts => {
                Err(budget_still_processing(&budget_name))
            }
            Err(e) => Err(e),
        }
    }

    /// The PodDisruptionBudgets of the pod's namespace whose selectors match it (no selector matches
    /// nothing, `{}` everything; an invalid one nothing), with their store entries.
    async fn covering_budgets(
        &self,
        pod: &Value,
    ) -> Result<Vec<(gantry_store::KeyValue, Value)>, ApiError> {
        let Some(budgets) = registry::find("policy", "v1", "poddisruptionbudgets") else {
            return Ok(Vec::new());
        };
        let namespace = self.request.namespace.as_deref().unwrap_or_default();
        let prefix = format!("{}{namespace}/", budgets.store_prefix());
        let labels = pod
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let (_, kvs) = crate::rest::range_all(self.store, prefix.into()).await?;
        let mut covering = Vec::new();
        for kv in kvs {
            let budget = objects::decode(&kv)?;
            let selector = budget.pointer("/spec/selector").unwrap_or(&Value::Null);
            if Selector::from_label_selector(selector).is_ok_and(|s| s.matches(&labels)) {
                covering.push((kv, budget));
            }
        }
        Ok(covering)
    }

    /// Takes one disruption from the budget for the pod `name` (upstream's `checkAndDecrement`, retried
    /// with the budget read again while it conflicts); a dry run only checks.
    async fn take_disruption(
        &self,
        name: &str,
        mut kv: gantry_store::KeyValue,
        mut budget: Value,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let budget_name = str_at(&budget, "/metadata/name").to_owned();
        for attempt in 0..=EVICTION_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(EVICTION_RETRY_DELAY).await;
                kv = match self.store.get(&kv.key, None).await? {
                    Some(kv) => kv,
                    None => {
                        return Err(ApiError::not_found(
                            GroupResource::new("policy", "poddisruptionbudgets"),
                            &budget_name,
                        ));
                    }
                };
                budget = objects::decode(&kv)?;
            }
            let updated = decrement_budget(&budget, name, &objects::now())?;
            if dry_run {
                return Ok(());
            }
            match self
                .store
                .update(kv.key.clone(), objects::encode(&updated)?, kv.mod_revision)
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict(
            GroupResource::new("policy", "poddisruptionbudgets"),
            &budget_name,
        ))
    }

    /// Marks the pod `DisruptionTarget` (reason EvictionByEvictionAPI) and deletes it with `options`
    /// (upstream's `addConditionAndDeletePod`): a resourceVersion precondition holds for the mark, then for
    /// the deletion of what the mark wrote.
    async fn mark_and_delete(
        &self,
        name: &str,
        mut options: DeleteOptions,
    ) -> Result<(), ApiError> {
        if !options.dry_run {
            let current = objects::decode(&self.read(name).await?)?;
            options.check_preconditions(&current)?;
            let pinned = options.precondition_resource_version.clone();
            let marked = self
                .guaranteed_update(name, Part::Status, |pod| {
                    let mut pod = pod.clone();
                    if let Some(uid) = &options.precondition_uid
                        && str_at(&pod, "/metadata/uid") != uid
                    {
                        return Err(ApiError::conflict(self.group_resource(), name));
                    }
                    if let (Some(rv), Ok(meta)) = (&pinned, objects::metadata_mut(&mut pod)) {
                        meta.insert("resourceVersion".into(), json!(rv));
                    }
                    update_pod_condition(
                        &mut pod,
                        json!({"type": DISRUPTION_TARGET, "status": "True",
                               "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}),
                    );
                    Ok(pod)
                })
                .await?;
            if pinned.is_some() {
                options.precondition_resource_version = resource_version(&marked);
            }
        }
        self.delete(name, &options).await?;
        Ok(())
    }
}

/// How many times an eviction retries a conflict, and how long it waits between tries (upstream's
/// `EvictionsRetry`).
const EVICTION_RETRIES: usize = 20;
const EVICTION_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(500);
/// More unconfirmed evictions than this in a budget's `disruptedPods` and it allows no more.
const MAX_DISRUPTED_POD_SIZE: usize = 2000;
const DISRUPTION_TARGET: &str = "DisruptionTarget";
const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn resource_version(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn finished_or_deleting(pod: &Value) -> bool {
    matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
        || pod.pointer("/metadata/deletionTimestamp").is_some()
}

/// A pod whose eviction disrupts nothing a budget guards (upstream's `canIgnorePDB`).
fn budget_can_be_ignored(pod: &Value) -> bool {
    finished_or_deleting(pod) || str_at(pod, "/status/phase") == "Pending"
}

fn is_pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// A 429 with the budget's cause.
fn budget_refusal(retry_after: i32, message: String) -> ApiError {
    let mut error = ApiError::too_many_requests(VIOLATION, retry_after);
    if let Some(details) = error.details.as_mut() {
        details.causes.push(StatusCause {
            reason: "DisruptionBudget".into(),
            message,
            field: String::new(),
        });
    }
    error
}

/// The 429 while the disruption controller has not caught up with the budget.
fn budget_still_processing(name: &str) -> ApiError {
    budget_refusal(
        10,
        format!("The disruption budget {name} is still being processed by the server."),
    )
}

/// The budget with one disruption taken for `pod` at `now`, or why none may be (upstream's
/// `checkAndDecrement`).
fn decrement_budget(budget: &Value, pod: &str, now: &str) -> Result<Value, ApiError> {
    let name = str_at(budget, "/metadata/name");
    let int = |pointer: &str| budget.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
    if int("/status/observedGeneration") < int("/metadata/generation") {
        return Err(budget_still_processing(name));
    }
    let allowed = int("/status/disruptionsAllowed");
    let gr = GroupResource::new("policy", "poddisruptionbudget");
    if allowed < 0 {
        return Err(ApiError::forbidden(
            gr,
            name,
            "pdb disruptions allowed is negative",
        ));
    }
    let disrupted = budget
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len);
    if disrupted > MAX_DISRUPTED_POD_SIZE {
        return Err(ApiError::forbidden(
            gr,
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        let (healthy, desired) = (int("/status/currentHealthy"), int("/status/desiredHealthy"));
        let condition = budget
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "DisruptionAllowed")
            .filter(|c| c["status"] == "False" && !str_at(c, "/message").is_empty());
        let message = match condition {
            // A failed sync first: its counts cannot be trusted.
            Some(c) if c["reason"] == "SyncFailed" => format!(
                "The disruption budget {name} does not allow evicting pods currently because it failed sync: {}",
                str_at(c, "/message")
            ),
            _ if healthy <= desired => format!(
                "The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"
            ),
            Some(c) => format!(
                "The disruption budget {name} does not allow evicting pods currently ({}): {}",
                str_at(c, "/reason"),
                str_at(c, "/message")
            ),
            None => format!("The disruption budget {name} does not allow evicting pods currently"),
        };
        return Err(budget_refusal(0, message));
    }
    let mut updated = budget.clone();
    let status = &mut updated["status"];
    status["disruptionsAllowed"] = json!(allowed - 1);
    if allowed == 1 {
        let observed = status.get("observedGeneration").cloned();
        set_status_condition(
            status,
            json!({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                   "message": "", "observedGeneration": observed}),
            now,
        );
    }
    if !status["disruptedPods"].is_object() {
        status["disruptedPods"] = json!({});
    }
    status["disruptedPods"][pod] = json!(now);
    Ok(updated)
}

/// apimachinery's `SetStatusCondition` on `status.conditions`: the transition time changes only with the
/// status.
fn set_status_condition(status: &mut Value, mut condition: Value, now: &str) {
    if condition
        .get("observedGeneration")
        .is_some_and(Value::is_null)
        && let Some(fields) = condition.as_object_mut()
    {
        fields.remove("observedGeneration");
    }
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let Some(list) = status["conditions"].as_array_mut() else {
        return;
    };
    match list.iter_mut().find(|c| c["type"] == condition["type"]) {
        Some(existing) => {
            condition["lastTransitionTime"] = if existing["status"] == condition["status"] {
                existing["lastTransitionTime"].clone()
            } else {
                json!(now)
            };
            *existing = condition;
        }
        None => {
            condition["lastTransitionTime"] = json!(now);
            list.push(condition);
        }
    }
}

/// Upstream's `UpdatePodCondition`: the condition replaces the pod's of its type, keeping the transition
/// time while the status holds.
fn update_pod_condition(pod: &mut Value, mut condition: Value) {
    let status = &mut pod["status"];
    if !status.is_object() {
        *status = json!({});
    }
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    condition["lastProbeTime"] = Value::Null;
    let Some(list) = status["conditions"].as_array_mut() else {
        return;
    };
    match list.iter_mut().find(|c| c["type"] == condition["type"]) {
        Some(existing) => {
            condition["lastTransitionTime"] = if existing["status"] == condition["status"] {
                existing["lastTransitionTime"].clone()
            } else {
                json!(objects::now())
            };
            *existing = condition;
        }
        None => {
            condition["lastTransitionTime"] = json!(objects::now());
            list.push(condition);
        }
    }
}

impl Call<'_> {
    /// `log`, `exec`, `attach` and `portforward` are served by the node agent that runs the pod. There is no
    /// node agent yet: a pod that is not on a node cannot answer (as in Kubernetes), one that is gets a 503.
    pub(crate) async fn node_stream(&self, name: &str) -> Result<Response, ApiError> {
        let pod = objects::decode(&self.read(name).await?)?;
        let Some(node) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            return Err(ApiError::bad_request(format!(
                "pod {name} is not assigned to a node yet: its containers have not started"
            )));
        };
        let subresource = self.request.subresource.as_deref().unwrap_or_default();
        let namespace = self.request.namespace.as_deref().unwrap_or_default();
        if subresource == "portforward" {
            let (nodes, address) = self.node_endpoint(node)?;
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(self.query.get("ports").map(|p| ("ports", p)))
                .finish();
            let path = format!("/portForward/{namespace}/{name}?{query}");
            return nodes.upgrade(address, &path, self.take_upgrade()?).await;
        }
        let names = |lists: &[&str]| -> Vec<String> {
            lists
                .iter()
                .flat_map(|list| {
                    pod.pointer(&format!("/spec/{list}"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        };
        let (all, app) = (
            names(&["initContainers", "containers"]),
            names(&["containers"]),
        );
        let container = match self.query.get("container") {
            Some(c) if all.contains(c) => c.clone(),
            Some(c) => {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            None if app.len() == 1 => app[0].clone(),
            None => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    app.join(" ")
                )));
            }
        };
        let (nodes, address) = self.node_endpoint(node)?;
        if subresource == "log" {
            let query = log_query(self.query);
            let path = format!("/containerLogs/{namespace}/{name}/{container}?{query}");
            return nodes.get(address, &path).await;
        }
        // exec and attach: the streams asked for, and exec's command, each `command=` an argument.
        let upgrade = self.take_upgrade()?;
        let query =
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form_urlencoded::parse(upgrade.query.as_bytes()).filter(
                    |(key, _)| matches!(&**key, "command" | "stdin" | "stdout" | "stderr" | "tty"),
                ))
                .finish();
        let kind = if subresource == "exec" {
            "exec"
        } else {
            "attach"
        };
        let path = format!("/{kind}/{namespace}/{name}/{container}?{query}");
        nodes.upgrade(address, &path, upgrade).await
    }

    /// The node client and the agent endpoint of the node `node`.
    fn node_endpoint(
        &self,
        node: &str,
    ) -> Result<(&crate::NodeClient, std::net::SocketAddr), ApiError> {
        let nodes = self.nodes.ok_or_else(|| {
            ApiError::service_unavailable("this API server does not call node agents")
        })?;
        let (_, node_object) = self
            .cache
            .get(format!("/registry/core/nodes/{node}").as_bytes());
        let address = node_object
            .and_then(|n| crate::rest::cached_value(&n).ok())
            .and_then(|n| crate::nodes::endpoint_of(&n))
            .ok_or_else(|| {
                ApiError::service_unavailable(format!(
                    "node {node:?} has no node agent to ask (no Node with an address and an endpoint port)"
                ))
            })?;
        Ok((nodes, address))
    }

    /// The client's upgrade request, which exec, attach and port-forward need.
    fn take_upgrade(&self) -> Result<crate::nodes::Upgrade, ApiError> {
        self.upgrade
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                ApiError::bad_request(
                    "exec, attach and port-forward need a connection upgrade to WebSocket or SPDY/3.1",
                )
            })
    }
}

/// The options of a log request, passed on to the node agent.
fn log_query(query: &std::collections::HashMap<String, String>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for key in [
        "follow",
        "previous",
        "timestamps",
        "tailLines",
        "sinceSeconds",
        "sinceTime",
        "limitBytes",
    ] {
        if let Some(value) = query.get(key) {
            out.append_pair(key, value);
        }
    }
    out.finish()
}

/// Sets the pod condition `kind` to True (now), adding it if missing.
fn set_condition(pod: &mut Value, kind: &str) {
    let condition = json!({"type": kind, "status": "True", "lastProbeTime": null,
                           "lastTransitionTime": objects::now()});
    let status = &mut pod["status"];
    if !status.is_object() {
        *status = json!({});
    }
    let conditions = &mut status["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    if let Some(list) = conditions.as_array_mut() {
        match list.iter_mut().find(|c| c["type"] == kind) {
            Some(existing) => *existing = condition,
            None => list.push(condition),
        }
    }
}

/// What the API server adds to every new pod, as upstream's admission plugins do: the `default`
/// ServiceAccount when it names none (ServiceAccount), and tolerations of the not-ready and unreachable
/// NoExecute taints for a while (DefaultTolerationSeconds), so that pods of a node that stops answering are
/// evicted after that time rather than at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodAdmission {
    /// Seconds a pod tolerates `node.kubernetes.io/not-ready:NoExecute` (kube-apiserver's 300).
    pub not_ready_toleration_seconds: i64,
    /// Seconds a pod tolerates `node.kubernetes.io/unreachable:NoExecute` (kube-apiserver's 300).
    pub unreachable_toleration_seconds: i64,
}

impl Default for PodAdmission {
    fn default() -> Self {
        PodAdmission {
            not_ready_toleration_seconds: 300,
            unreachable_toleration_seconds: 300,
        }
    }
}

impl PodAdmission {
    pub(crate) fn admit(&self, pod: &mut Value) {
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        let unnamed = spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if unnamed {
            spec.insert("serviceAccountName".into(), json!("default"));
        }
        let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
        let Some(tolerations) = tolerations.as_array_mut() else {
            return;
        };
        for (key, seconds) in [
            (
                "node.kubernetes.io/not-ready",
                self.not_ready_toleration_seconds,
            ),
            (
                "node.kubernetes.io/unreachable",
                self.unreachable_toleration_seconds,
            ),
        ] {
            // A toleration the pod has of the taint (or of every NoExecute taint) is kept as it is.
            let tolerated = tolerations.iter().any(|t| {
                let effect = t.get("effect").and_then(Value::as_str).unwrap_or_default();
                let own_key = t.get("key").and_then(Value::as_str).unwrap_or_default();
                let exists = t.get("operator").and_then(Value::as_str) == Some("Exists");
                (effect.is_empty() || effect == "NoExecute")
                    && (own_key == key || (own_key.is_empty() && exists))
            });
            if !tolerated {
                tolerations.push(json!({"key": key, "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": seconds}));
            }
        }
    }
}

/// What a new pod's status is, whatever the client sent: Pending, with its QoS class (as upstream's
/// PrepareForCreate).
pub(crate) fn initial_status(pod: &mut Value) {
    let qos = qos_class(pod);
    pod["status"] = json!({"phase": "Pending", "qosClass": qos});
}

/// The pod's quality-of-service class from its containers' cpu and memory requests and limits:
/// BestEffort with none, Guaranteed when every container limits both and requests what it limits, else
/// Burstable.
fn qos_class(pod: &Value) -> &'static str {
    use gantry_api::validate::quantity::Quantity;
    let containers = ["containers", "initContainers"]
        .into_iter()
        .flat_map(|list| {
            pod.pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        });
    let amount = |resources: &Value, kind: &str, name: &str| {
        resources
            .pointer(&format!("/{kind}/{name}"))
            .and_then(|q| Quantity::from_json(q).ok())
            .filter(|q| !q.is_zero())
    };
    let mut any = false;
    let mut guaranteed = true;
    for container in containers {
        let resources = container.get("resources").unwrap_or(&Value::Null);
        for name in ["cpu", "memory"] {
            let (request, limit) = (
                amount(resources, "requests", name),
                amount(resources, "limits", name),
            );
            any |= request.is_some() || limit.is_some();
            // A request left out is the limit (defaulting does the same).
            match (request, limit) {
                (Some(request), Some(limit)) if request == limit => {}
                (None, Some(_)) => {}
                _ => guaranteed = false,
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_of_service_classes() {
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "c", "resources": resources}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        let limited = json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}});
        assert_eq!(qos_class(&pod(limited)), "Guaranteed");
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1"}}))),
            "Burstable"
        );
        let mut new = pod(json!({}));
        new["status"] = json!({"phase": "Running", "podIP": "10.0.0.1"});
        initial_status(&mut new);
        assert_eq!(
            new["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
    }
    fn budget(status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": 2}, "status": status})
    }

    fn cause(error: &ApiError) -> (&str, &str) {
        let cause = &error.details.as_ref().unwrap().causes[0];
        (cause.reason.as_str(), cause.message.as_str())
    }

    #[test]
    fn a_disruption_is_taken_only_from_a_budget_that_allows_one() {
        let now = "2025-01-01T00:00:00Z";
        // Allowed: one taken, the pod recorded, the condition turned when none is left.
        let allowing = budget(
            json!({"observedGeneration": 2, "disruptionsAllowed": 1, "currentHealthy": 3,
            "desiredHealthy": 2, "conditions": [{"type": "DisruptionAllowed", "status": "True",
            "reason": "SufficientPods", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}),
        );
        let taken = decrement_budget(&allowing, "web-1", now).unwrap();
        assert_eq!(taken["status"]["disruptionsAllowed"], 0);
        assert_eq!(taken["status"]["disruptedPods"], json!({"web-1": now}));
        let condition = &taken["status"]["conditions"][0];
        assert_eq!(
            (
                &condition["status"],
                &condition["reason"],
                &condition["lastTransitionTime"]
            ),
            (&json!("False"), &json!("InsufficientPods"), &json!(now))
        );
        assert_eq!(condition["observedGeneration"], 2);
        // None left: 429 (its counts are not yet the controller's, so it cannot say more).
        let none = decrement_budget(&taken, "web-2", now).unwrap_err();
        assert_eq!((none.code, none.reason), (429, "TooManyRequests"));
        assert_eq!(none.message, VIOLATION);
        assert_eq!(none.retry_after_seconds(), None);
        assert_eq!(
            cause(&none),
            (
                "DisruptionBudget",
                "The disruption budget web does not allow evicting pods currently"
            )
        );
        // Once counted, it says what the budget needs.
        let mut counted = taken.clone();
        counted["status"]["currentHealthy"] = json!(2);
        assert_eq!(
            cause(&decrement_budget(&counted, "web-2", now).unwrap_err()).1,
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
        // Not yet seen by the controller: 429, come back in 10 s.
        let stale = budget(json!({"observedGeneration": 1, "disruptionsAllowed": 5}));
        let error = decrement_budget(&stale, "web-1", now).unwrap_err();
        assert_eq!(error.retry_after_seconds(), Some(10));
        assert_eq!(
            cause(&error).1,
            "The disruption budget web is still being processed by the server."
        );
        // A failed sync says so.
        let failed = budget(
            json!({"observedGeneration": 2, "disruptionsAllowed": 0, "currentHealthy": 3,
            "desiredHealthy": 1, "conditions": [{"type": "DisruptionAllowed", "status": "False",
            "reason": "SyncFailed", "message": "found no controllers for pod \"x\""}]}),
        );
        assert_eq!(
            cause(&decrement_budget(&failed, "x", now).unwrap_err()).1,
            "The disruption budget web does not allow evicting pods currently because it failed sync: \
             found no controllers for pod \"x\""
        );
        // Negative, or too many evictions not confirmed: 403.
        let negative = budget(json!({"observedGeneration": 2, "disruptionsAllowed": -1}));
        let error = decrement_budget(&negative, "x", now).unwrap_err();
        assert_eq!(error.code, 403);
        assert_eq!(
            error.message,
            "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative"
        );
        let crowded: serde_json::Map<String, Value> =
            (0..2001).map(|i| (format!("p{i}"), json!(now))).collect();
        let crowded = budget(
            json!({"observedGeneration": 2, "disruptionsAllowed": 1, "disruptedPods": crowded}),
        );
        assert_eq!(decrement_budget(&crowded, "x", now).unwrap_err().code, 403);
    }

    #[test]
    fn the_disruption_target_condition_keeps_its_transition_time() {
        let mut pod = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let condition = json!({"type": DISRUPTION_TARGET, "status": "True", "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting"});
        update_pod_condition(&mut pod, condition.clone());
        let added = pod["status"]["conditions"][1].clone();
        assert_eq!(added["reason"], "EvictionByEvictionAPI");
        assert!(added["lastTransitionTime"].is_string());
        pod["status"]["conditions"][1]["lastTransitionTime"] = json!("2020-01-01T00:00:00Z");
        update_pod_condition(&mut pod, condition);
        assert_eq!(
            pod["status"]["conditions"][1]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(pod["status"]["conditions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn finished_pending_and_deleting_pods_need_no_budget() {
        let pod = |status: Value| json!({"metadata": {}, "status": status});
        assert!(budget_can_be_ignored(&pod(json!({"phase": "Pending"}))));
        assert!(budget_can_be_ignored(&pod(json!({"phase": "Succeeded"}))));
        assert!(!budget_can_be_ignored(&pod(json!({"phase": "Running"}))));
        let mut deleting = pod(json!({"phase": "Running"}));
        deleting["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        assert!(budget_can_be_ignored(&deleting));
        assert!(!finished_or_deleting(&pod(json!({"phase": "Pending"}))));
    }
}

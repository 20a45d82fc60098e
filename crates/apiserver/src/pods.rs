//! The pod subresources that are not plain reads and writes: `binding` (the scheduler's assignment of a pod
//! to a node) and `eviction` (a deletion that respects PodDisruptionBudgets, as `kubectl drain` does).

use std::collections::HashMap;

use gantry_api::field::FieldError;
use gantry_api::labels::Selector;
use gantry_api::status::StatusCause;
use gantry_api::{ApiError, GroupKind, registry};
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

    /// POST `pods/<name>/eviction`: deletes the pod unless a PodDisruptionBudget covering it allows no more
    /// disruptions (429), taking one from the budget.
    pub(crate) async fn evict(&self, name: &str, body: &[u8]) -> Result<Response, ApiError> {
        let eviction = parse(body)?;
        let options = match eviction.get("deleteOptions") {
            Some(options) if !options.is_null() => {
                DeleteOptions::from_value(options, &HashMap::new())?
            }
            _ => DeleteOptions::default(),
        };
        let pod = objects::decode(&self.read(name).await?)?;
        let finished = matches!(
            pod.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        if !finished && pod.pointer("/metadata/deletionTimestamp").is_none() && !options.dry_run {
            self.take_disruption(name, &pod).await?;
        }
        self.delete(name, &options).await?;
        Ok(success(StatusCode::CREATED))
    }

    /// Takes one allowed disruption from the budget covering `pod`, if any.
    async fn take_disruption(&self, name: &str, pod: &Value) -> Result<(), ApiError> {
        let Some(budgets) = registry::find("policy", "v1", "poddisruptionbudgets") else {
            return Ok(());
        };
        let namespace = self.request.namespace.as_deref().unwrap_or_default();
        let prefix = format!("{}{namespace}/", budgets.store_prefix());
        let labels = pod
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for _ in 0..8 {
            let (_, kvs) = crate::rest::range_all(self.store, prefix.clone().into()).await?;
            let mut covering = Vec::new();
            for kv in kvs {
                let budget = objects::decode(&kv)?;
                let matches = budget
                    .pointer("/spec/selector")
                    .and_then(|s| Selector::from_label_selector(s).ok())
                    .is_some_and(|s| !s.is_empty() && s.matches(&labels));
                if matches {
                    covering.push((kv, budget));
                }
            }
            let (kv, mut budget) = match covering.len() {
                0 => return Ok(()),
                1 => covering.remove(0),
                _ => {
                    return Err(ApiError::internal(
                        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                    ));
                }
            };
            let allowed = budget
                .pointer("/status/disruptionsAllowed")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let observed = budget
                .pointer("/status/observedGeneration")
                .and_then(Value::as_i64);
            let generation = budget
                .pointer("/metadata/generation")
                .and_then(Value::as_i64);
            if allowed <= 0 || observed < generation {
                let budget_name = budget
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let mut error = ApiError::too_many_requests(
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    10,
                );
                let message = format!(
                    "The disruption budget {budget_name} needs {} healthy pods and has {} currently",
                    budget
                        .pointer("/status/desiredHealthy")
                        .and_then(Value::as_i64)
                        .unwrap_or(0),
                    budget
                        .pointer("/status/currentHealthy")
                        .and_then(Value::as_i64)
                        .unwrap_or(0),
                );
                if let Some(details) = error.details.as_mut() {
                    details.causes.push(StatusCause {
                        reason: "DisruptionBudget".into(),
                        message,
                        field: String::new(),
                    });
                }
                return Err(error);
            }
            budget["status"]["disruptionsAllowed"] = json!(allowed - 1);
            budget["status"]["disruptedPods"][name] = json!(objects::now());
            match self
                .store
                .update(kv.key, objects::encode(&budget)?, kv.mod_revision)
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict(self.group_resource(), name))
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
}

//! ResourceQuota's arithmetic, free of I/O, shared by the API server's admission and the quota controller:
//! what an object uses (upstream's evaluators for pods, Services, PersistentVolumeClaims and plain object
//! counts), which quotas cover it (their resources and scopes), the admission check with upstream's messages,
//! and resource lists (`cpu: 500m`) summed, compared and printed as upstream does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::validate::quantity::Quantity;

/// Quantities by resource name, in name order (upstream's `ResourceList`).
pub type ResourceList = BTreeMap<String, Quantity>;

/// The suffix of per-StorageClass resources: `gold.storageclass.storage.k8s.io/requests.storage`.
pub const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// The quota scopes upstream knows (`IsStandardResourceQuotaScope`).
pub const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

// ---- resource lists -----------------------------------------------------------------------------------------

/// A resource list from JSON (`{"cpu": "500m"}`); quantities that do not parse are left out.
pub fn resource_list(value: Option<&Value>) -> ResourceList {
    value
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, q)| Some((name.clone(), Quantity::from_json(q).ok()?)))
        .collect()
}

/// A resource list as JSON, each quantity in its canonical form.
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(name, q)| (name.clone(), Value::String(q.to_string())))
            .collect::<Map<_, _>>(),
    )
}

/// Adds `other` into `list` (`quota.Add`).
pub fn add_into(list: &mut ResourceList, other: &ResourceList) {
    for (name, q) in other {
        let sum = list.get(name).map_or(*q, |mine| mine.plus(q));
        list.insert(name.clone(), sum);
    }
}

/// `a + b`.
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut sum = a.clone();
    add_into(&mut sum, b);
    sum
}

/// Keeps in `list` the larger of its and `other`'s quantity of each resource (`maxResourceList`).
pub fn max_into(list: &mut ResourceList, other: &ResourceList) {
    for (name, q) in other {
        if list.get(name).is_none_or(|mine| q > mine) {
            list.insert(name.clone(), *q);
        }
    }
}

/// `a - b` for the resources of `a`, never below zero (`quota.SubtractWithNonNegativeResult`).
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    a.iter()
        .map(|(name, q)| {
            let left = match b.get(name) {
                Some(taken) => q.minus(taken),
                None => *q,
            };
            let left = if left.is_negative() {
                Quantity::from_units(0)
            } else {
                left
            };
            (name.clone(), left)
        })
        .collect()
}

/// The part of `list` whose names `keep` accepts (`quota.Mask`).
pub fn mask(list: &ResourceList, keep: impl Fn(&str) -> bool) -> ResourceList {
    list.iter()
        .filter(|(name, _)| keep(name))
        .map(|(name, q)| (name.clone(), *q))
        .collect()
}

/// `cpu=2,memory=1Gi` (upstream's `prettyPrint`).
pub fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(name, q)| format!("{name}={q}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether two lists hold the same resources with equal quantities (`quota.Equals`).
pub fn equal(a: &ResourceList, b: &ResourceList) -> bool {
    a.len() == b.len() && a.iter().all(|(name, q)| b.get(name) == Some(q))
}

// ---- what pods ask for ----------------------------------------------------------------------------------------

/// The pod's containers of `list` (`containers` or `initContainers`).
fn containers<'a>(pod: &'a Value, list: &str) -> &'a [Value] {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A container's `requests` or `limits`.
pub fn container_resources(container: &Value, field: &str) -> ResourceList {
    resource_list(container.pointer(&format!("/resources/{field}")))
}

fn is_sidecar(container: &Value) -> bool {
    container.get("restartPolicy").and_then(Value::as_str) == Some("Always")
}

/// What a pod asks for in all (`field`: `requests` or `limits`): its containers and sidecars summed, or an
/// init container (with the sidecars started before it) where that is more, as upstream's `PodRequests` and
/// `PodLimits`; with `overhead`, `spec.overhead` added (to every request, and to the limits that are set).
pub fn pod_resources(pod: &Value, field: &str, overhead: bool) -> ResourceList {
    let mut total = ResourceList::new();
    for container in containers(pod, "containers") {
        add_into(&mut total, &container_resources(container, field));
    }
    let mut sidecars = ResourceList::new();
    let mut init = ResourceList::new();
    for container in containers(pod, "initContainers") {
        let own = container_resources(container, field);
        let running = if is_sidecar(container) {
            add_into(&mut total, &own);
            add_into(&mut sidecars, &own);
            sidecars.clone()
        } else {
            add(&own, &sidecars)
        };
        max_into(&mut init, &running);
    }
    max_into(&mut total, &init);
    if overhead {
        let extra = resource_list(pod.pointer("/spec/overhead"));
        if field == "requests" {
            add_into(&mut total, &extra);
        } else {
            for (name, q) in &extra {
                if let Some(limit) = total.get_mut(name) {
                    *limit = limit.plus(q);
                }
            }
        }
    }
    total
}

/// Whether the pod is BestEffort: no container requests or limits any cpu or memory (`GetPodQOS`).
pub fn is_best_effort(pod: &Value) -> bool {
    ["containers", "initContainers"].iter().all(|list| {
        containers(pod, list).iter().all(|c| {
            ["requests", "limits"].iter().all(|field| {
                let resources = container_resources(c, field);
                ["cpu", "memory"]
                    .iter()
                    .all(|name| resources.get(*name).is_none_or(|q| q.nanos() <= 0))
            })
        })
    })
}

/// Whether the pod has an active deadline (the `Terminating` scope).
pub fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|d| d >= 0)
}

/// Whether a pod's (anti-)affinity names other namespaces (the `CrossNamespacePodAffinity` scope).
fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    let cross = |term: &Value| {
        term.get("namespaces")
            .and_then(Value::as_array)
            .is_some_and(|n| !n.is_empty())
            || term.get("namespaceSelector").is_some_and(|s| !s.is_null())
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let Some(affinity) = pod.pointer(&format!("/spec/affinity/{kind}")) else {
            return false;
        };
        let required = affinity
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(cross);
        let preferred = affinity
            .get("preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|w| w.get("podAffinityTerm").is_some_and(cross));
        required || preferred
    })
}

/// Whether a pod no longer counts against compute quota (`QuotaV1Pod` false): it has finished, or it is being
/// deleted and its grace period is over.
pub fn pod_is_done(pod: &Value, now: SystemTime) -> bool {
    if matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) {
        return true;
    }
    let deleted = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        });
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    match (deleted, grace) {
        (Some(deleted), Some(grace)) => {
            time::OffsetDateTime::from(now) > deleted + time::Duration::seconds(grace)
        }
        _ => false,
    }
}

// ---- usage -------------------------------------------------------------------------------------------------

/// The object-count resource of a kind: `count/pods`, `count/deployments.apps`.
pub fn count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// The kind a `count/<plural>[.<group>]` resource counts.
fn counted_by(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix("count/")?;
    Some(match rest.split_once('.') {
        Some((plural, group)) => (group.to_owned(), plural.to_owned()),
        None => (String::new(), rest.to_owned()),
    })
}

/// The pre-`count/` names of core object counts.
fn legacy_count(group: &str, plural: &str) -> Option<&'static str> {
    if !group.is_empty() {
        return None;
    }
    match plural {
        "configmaps" => Some("configmaps"),
        "resourcequotas" => Some("resourcequotas"),
        "replicationcontrollers" => Some("replicationcontrollers"),
        "secrets" => Some("secrets"),
        "pods" => Some("pods"),
        "services" => Some("services"),
        "persistentvolumeclaims" => Some("persistentvolumeclaims"),
        _ => None,
    }
}

/// Which evaluator measures objects of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evaluator {
    Pods,
    Services,
    Claims,
    /// Object counts only.
    Count,
}

fn evaluator(group: &str, plural: &str) -> Evaluator {
    match (group, plural) {
        ("", "pods") => Evaluator::Pods,
        ("", "services") => Evaluator::Services,
        ("", "persistentvolumeclaims") => Evaluator::Claims,
        _ => Evaluator::Count,
    }
}

const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// An extended resource (`example.com/gpu`): not Kubernetes' own.
fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/")
}

/// Whether usage of `group`/`plural` objects counts against the quota resource `name`.
pub fn counts_against(group: &str, plural: &str, name: &str) -> bool {
    match evaluator(group, plural) {
        Evaluator::Pods => {
            POD_RESOURCES.contains(&name)
                || name.starts_with("hugepages-")
                || name.starts_with("requests.hugepages-")
                || name.strip_prefix("requests.").is_some_and(is_extended)
        }
        Evaluator::Services => matches!(
            name,
            "services" | "count/services" | "services.nodeports" | "services.loadbalancers"
        ),
        Evaluator::Claims => {
            matches!(
                name,
                "persistentvolumeclaims" | "count/persistentvolumeclaims" | "requests.storage"
            ) || name
                .split_once(STORAGE_CLASS_SUFFIX)
                .is_some_and(|(_, r)| r == "persistentvolumeclaims" || r == "requests.storage")
        }
        Evaluator::Count => {
            name == count_name(group, plural) || legacy_count(group, plural) == Some(name)
        }
    }
}

/// The compute usage of a pod's totals, or of one container (`podComputeUsageHelper`).
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut usage = ResourceList::new();
    usage.insert("pods".into(), Quantity::from_units(1));
    for name in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(name) {
            usage.insert(name.into(), *q);
            usage.insert(format!("requests.{name}"), *q);
        }
        if let Some(q) = limits.get(name) {
            usage.insert(format!("limits.{name}"), *q);
        }
    }
    for (name, q) in requests {
        if name.starts_with("hugepages-") {
            usage.insert(name.clone(), *q);
            usage.insert(format!("requests.{name}"), *q);
        }
        if is_extended(name) {
            usage.insert(format!("requests.{name}"), *q);
        }
    }
    usage
}

/// The StorageClass a claim names (the beta annotation first, as upstream).
fn claim_class(claim: &Value) -> &str {
    claim
        .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
        .or_else(|| {
            claim
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
        })
        .unwrap_or_default()
}

/// What `object`, of `group`/`plural`, uses of quota (upstream's evaluators' `Usage`).
pub fn usage(group: &str, plural: &str, object: &Value, now: SystemTime) -> ResourceList {
    let one = Quantity::from_units(1);
    let mut usage = ResourceList::new();
    usage.insert(count_name(group, plural), one);
    match evaluator(group, plural) {
        Evaluator::Pods => {
            if !pod_is_done(object, now) {
                let requests = pod_resources(object, "requests", true);
                let limits = pod_resources(object, "limits", true);
                add_into(&mut usage, &compute_usage(&requests, &limits));
            }
        }
        Evaluator::Services => {
            usage.insert("services".into(), one);
            let ports = object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ports = Quantity::from_units(i64::try_from(ports).unwrap_or(i64::MAX));
            let (mut node_ports, mut balancers) =
                (Quantity::from_units(0), Quantity::from_units(0));
            match object.pointer("/spec/type").and_then(Value::as_str) {
                Some("NodePort") => node_ports = ports,
                Some("LoadBalancer") => {
                    balancers = one;
                    let allocate = object
                        .pointer("/spec/allocateLoadBalancerNodePorts")
                        .and_then(Value::as_bool);
                    if allocate != Some(false) {
                        node_ports = ports;
                    }
                }
                _ => {}
            }
            usage.insert("services.nodeports".into(), node_ports);
            usage.insert("services.loadbalancers".into(), balancers);
        }
        Evaluator::Claims => {
            usage.insert("persistentvolumeclaims".into(), one);
            let class = claim_class(object);
            if !class.is_empty() {
                usage.insert(
                    format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
                    one,
                );
            }
            let requests = resource_list(object.pointer("/spec/resources/requests"));
            if let Some(storage) = requests.get("storage") {
                let storage = storage.rounded_up();
                usage.insert("requests.storage".into(), storage);
                if !class.is_empty() {
                    usage.insert(
                        format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
                        storage,
                    );
                }
            }
        }
        Evaluator::Count => {
            if let Some(alias) = legacy_count(group, plural) {
                usage.insert(alias.into(), one);
            }
        }
    }
    usage
}

// ---- scopes --------------------------------------------------------------------------------------------------

/// One scope a quota is limited to: `spec.scopes` (as `Exists`) and `spec.scopeSelector.matchExpressions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub name: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// The scopes of a quota (`getScopeSelectorsFromQuota`).
pub fn scopes(quota: &Value) -> Vec<Scope> {
    let mut out: Vec<Scope> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|name| Scope {
            name: name.to_owned(),
            operator: "Exists".to_owned(),
            values: Vec::new(),
        })
        .collect();
    let expressions = quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for expression in expressions {
        let text = |key: &str| {
            expression
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        out.push(Scope {
            name: text("scopeName"),
            operator: text("operator"),
            values: expression
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        });
    }
    out
}

/// Whether `object` is in `scope`. Only pods have scopes; objects of other kinds are in none.
pub fn in_scope(scope: &Scope, group: &str, plural: &str, object: &Value) -> bool {
    if evaluator(group, plural) != Evaluator::Pods {
        return false;
    }
    match scope.name.as_str() {
        "Terminating" => is_terminating(object),
        "NotTerminating" => !is_terminating(object),
        "BestEffort" => is_best_effort(object),
        "NotBestEffort" => !is_best_effort(object),
        "PriorityClass" => {
            let class = object
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let listed = scope.values.iter().any(|v| v == class);
            match scope.operator.as_str() {
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                "In" => !class.is_empty() && listed,
                "NotIn" => class.is_empty() || !listed,
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(object),
        _ => false,
    }
}

/// Whether `object` is in every one of `scopes` (no scopes: every object is).
pub fn in_scopes(scopes: &[Scope], group: &str, plural: &str, object: &Value) -> bool {
    scopes
        .iter()
        .all(|scope| in_scope(scope, group, plural, object))
}

// ---- admission -----------------------------------------------------------------------------------------------

/// One quota as admission reads it: what its status says (the controller's view, as upstream).
#[derive(Debug, Clone)]
pub struct QuotaState {
    pub name: String,
    pub hard: ResourceList,
    pub used: ResourceList,
    pub scopes: Vec<Scope>,
    /// Which status resources are present at all (`hasUsageStats` looks at names, not quantities).
    used_names: BTreeSet<String>,
}

impl QuotaState {
    pub fn of(quota: &Value) -> QuotaState {
        let used_names = quota
            .pointer("/status/used")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        QuotaState {
            name: quota
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            hard: resource_list(quota.pointer("/status/hard")),
            used: resource_list(quota.pointer("/status/used")),
            scopes: scopes(quota),
            used_names,
        }
    }
}

/// Whether quota admission looks at this write: creates of anything stored but Events, and updates of
/// Services and PersistentVolumeClaims (whose usage can grow).
pub fn handles(group: &str, plural: &str, update: bool) -> bool {
    if (group.is_empty() && plural == "events") || group == "events.k8s.io" {
        return false;
    }
    !update
        || matches!(
            evaluator(group, plural),
            Evaluator::Services | Evaluator::Claims
        )
}

/// `must specify limits.cpu for: a,b; requests.memory for: b` when a quota tracks cpu or memory that some
/// container does not set (upstream's pod `Constraints`).
fn pod_constraints(required: &[String], pod: &Value) -> Option<String> {
    const VALIDATED: &[&str] = &[
        "cpu",
        "memory",
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
    ];
    let required: BTreeSet<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|r| VALIDATED.contains(r))
        .collect();
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for container in containers(pod, "containers")
        .iter()
        .chain(containers(pod, "initContainers"))
    {
        let has = compute_usage(
            &container_resources(container, "requests"),
            &container_resources(container, "limits"),
        );
        for name in &required {
            if !has.contains_key(*name) {
                let container_name = container
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                missing
                    .entry(name)
                    .or_default()
                    .insert(container_name.to_owned());
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(name, names)| {
            format!(
                "{name} for: {}",
                names.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// The admission check of a create (`old`: None) or update of `object` (of `group`/`plural`) against the
/// namespace's quotas (upstream's `CheckRequest`): for each quota the write charges, its index and what it
/// is charged; or the reason the write is refused (`exceeded quota: q, requested: pods=1, used: pods=5,
/// limited: pods=5`), which the caller reports as 403 Forbidden.
pub fn check(
    quotas: &[QuotaState],
    group: &str,
    plural: &str,
    object: &Value,
    old: Option<&Value>,
    now: SystemTime,
) -> Result<Vec<(usize, ResourceList)>, String> {
    let mut covering = Vec::new();
    for (i, quota) in quotas.iter().enumerate() {
        let restricted: Vec<String> = quota
            .hard
            .keys()
            .filter(|name| counts_against(group, plural, name))
            .cloned()
            .collect();
        if restricted.is_empty() || !in_scopes(&quota.scopes, group, plural, object) {
            continue;
        }
        if evaluator(group, plural) == Evaluator::Pods
            && let Some(reason) = pod_constraints(&restricted, object)
        {
            return Err(format!("failed quota: {}: {reason}", quota.name));
        }
        if restricted.iter().any(|r| !quota.used_names.contains(r)) {
            return Err(format!(
                "status unknown for quota: {}, resources: {}",
                quota.name,
                restricted.join(",")
            ));
        }
        covering.push(i);
    }
    if covering.is_empty() {
        return Ok(Vec::new());
    }
    let mut delta = usage(group, plural, object, now);
    let negative: Vec<&str> = delta
        .iter()
        .filter(|(_, q)| q.is_negative())
        .map(|(name, _)| name.as_str())
        .collect();
    if !negative.is_empty() {
        return Err(format!(
            "quota usage is negative for resource(s): {}",
            negative.join(",")
        ));
    }
    if let Some(old) = old {
        delta = subtract_non_negative(&delta, &usage(group, plural, old, now));
    }
    delta.retain(|_, q| !q.is_zero());
    if delta.is_empty() {
        return Ok(Vec::new());
    }
    let mut charges = Vec::new();
    for i in covering {
        let quota = &quotas[i];
        let requested = mask(&delta, |name| quota.hard.contains_key(name));
        if requested.is_empty() {
            continue;
        }
        let new_used = add(&quota.used, &requested);
        let exceeded: BTreeSet<&String> = requested
            .keys()
            .filter(|name| {
                let hard = &quota.hard[*name];
                new_used.get(*name).is_some_and(|u| u > hard)
            })
            .collect();
        if !exceeded.is_empty() {
            let only = |list: &ResourceList| mask(list, |name| exceeded.iter().any(|e| *e == name));
            return Err(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                quota.name,
                pretty(&only(&requested)),
                pretty(&only(&quota.used)),
                pretty(&only(&quota.hard)),
            ));
        }
        charges.push((i, requested));
    }
    Ok(charges)
}

// ---- the controller's recount --------------------------------------------------------------------------------

/// The kinds (group, plural) whose objects a quota with these resources counts.
pub fn counted_kinds<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<(String, String)> {
    let mut kinds = BTreeSet::new();
    for name in names {
        for (group, plural) in [
            ("", "pods"),
            ("", "services"),
            ("", "persistentvolumeclaims"),
        ] {
            if counts_against(group, plural, name) {
                kinds.insert((group.to_owned(), plural.to_owned()));
            }
        }
        if let Some(kind) = counted_by(name) {
            kinds.insert(kind);
        }
        if let Some(plural) = [
            "configmaps",
            "resourcequotas",
            "replicationcontrollers",
            "secrets",
        ]
        .into_iter()
        .find(|p| p == name)
        {
            kinds.insert((String::new(), plural.to_owned()));
        }
    }
    kinds.into_iter().collect()
}

/// What the objects of one kind in a quota's namespace use of it (upstream's `CalculateUsageStats`): every
/// resource of `hard` the kind counts, from zero, summed over the objects in the quota's scopes.
pub fn usage_of_kind<'a>(
    hard: &ResourceList,
    scopes: &[Scope],
    group: &str,
    plural: &str,
    objects: impl IntoIterator<Item = &'a Value>,
    now: SystemTime,
) -> ResourceList {
    let mut used: ResourceList = hard
        .keys()
        .filter(|name| counts_against(group, plural, name))
        .map(|name| (name.clone(), Quantity::from_units(0)))
        .collect();
    for object in objects {
        if !in_scopes(scopes, group, plural, object) {
            continue;
        }
        let usage = usage(group, plural, object, now);
        add_into(&mut used, &mask(&usage, |name| hard.contains_key(name)));
    }
    used
}

/// The status a quota should have (upstream's `syncResourceQuota`): `hard` as its spec says, `used` as
/// counted (`counted`), or as before for resources nothing counted, for the resources of `hard` only.
pub fn status(quota: &Value, counted: &ResourceList) -> Value {
    let hard = resource_list(quota.pointer("/spec/hard"));
    let mut used = resource_list(quota.pointer("/status/used"));
    for (name, q) in counted {
        used.insert(name.clone(), *q);
    }
    let used = mask(&used, |name| hard.contains_key(name));
    serde_json::json!({"hard": to_json(&hard), "used": to_json(&used)})
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn list(value: Value) -> ResourceList {
        resource_list(Some(&value))
    }

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    fn quota(hard: Value, used: Value) -> QuotaState {
        QuotaState::of(&json!({"metadata": {"name": "q"}, "spec": {"hard": hard},
            "status": {"hard": hard, "used": used}}))
    }

    #[test]
    fn pod_totals_follow_init_containers_and_sidecars() {
        let p = json!({"spec": {
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}},
                           {"name": "b", "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}},
                               {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}],
            "overhead": {"cpu": "10m"}}});
        assert_eq!(
            pretty(&pod_resources(&p, "requests", false)),
            "cpu=1,memory=1Gi"
        );
        assert_eq!(
            pretty(&pod_resources(&p, "requests", true)),
            "cpu=1010m,memory=1Gi"
        );
        assert!(pod_resources(&p, "limits", true).is_empty());
        assert!(!is_best_effort(&p));
        assert!(is_best_effort(&pod(json!([{"name": "a"}]))));
    }

    #[test]
    fn usage_by_kind() {
        let now = SystemTime::now();
        let p = pod(
            json!([{"name": "a", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}]),
        );
        assert_eq!(
            pretty(&usage("", "pods", &p, now)),
            "count/pods=1,cpu=500m,limits.cpu=1,pods=1,requests.cpu=500m"
        );
        let mut done = p.clone();
        done["status"] = json!({"phase": "Succeeded"});
        assert_eq!(pretty(&usage("", "pods", &done, now)), "count/pods=1");
        let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            pretty(&usage("", "services", &lb, now)),
            "count/services=1,services=1,services.loadbalancers=1,services.nodeports=2"
        );
        let claim = json!({"spec": {"storageClassName": "gold",
            "resources": {"requests": {"storage": "1500m"}}}});
        assert_eq!(
            pretty(&usage("", "persistentvolumeclaims", &claim, now)),
            "count/persistentvolumeclaims=1,gold.storageclass.storage.k8s.io/persistentvolumeclaims=1,gold.storageclass.storage.k8s.io/requests.storage=2,persistentvolumeclaims=1,requests.storage=2"
        );
        assert_eq!(
            pretty(&usage("apps", "deployments", &json!({}), now)),
            "count/deployments.apps=1"
        );
        assert_eq!(
            pretty(&usage("", "configmaps", &json!({}), now)),
            "configmaps=1,count/configmaps=1"
        );
    }

    #[test]
    fn admission_charges_or_refuses_with_upstream_messages() {
        let now = SystemTime::now();
        let p = pod(
            json!([{"name": "a", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}}]),
        );
        let quotas = [quota(
            json!({"requests.cpu": "2", "pods": "5"}),
            json!({"requests.cpu": "1", "pods": "1"}),
        )];
        let charges = check(&quotas, "", "pods", &p, None, now).unwrap();
        assert_eq!(charges.len(), 1);
        assert_eq!(pretty(&charges[0].1), "pods=1,requests.cpu=1");

        let full = [quota(
            json!({"requests.cpu": "2"}),
            json!({"requests.cpu": "1500m"}),
        )];
        assert_eq!(
            check(&full, "", "pods", &p, None, now).unwrap_err(),
            "exceeded quota: q, requested: requests.cpu=1, used: requests.cpu=1500m, limited: requests.cpu=2"
        );
        let limits = [quota(
            json!({"limits.memory": "1Gi", "limits.cpu": "2"}),
            json!({"limits.memory": "0", "limits.cpu": "0"}),
        )];
        assert_eq!(
            check(&limits, "", "pods", &p, None, now).unwrap_err(),
            "failed quota: q: must specify limits.memory for: a"
        );
        let unknown = [QuotaState::of(
            &json!({"metadata": {"name": "q"}, "status": {"hard": {"pods": "1"}}}),
        )];
        assert_eq!(
            check(&unknown, "", "pods", &p, None, now).unwrap_err(),
            "status unknown for quota: q, resources: pods"
        );
        // Quotas not yet counted by the controller (no status) restrict nothing, as upstream.
        let fresh = [QuotaState::of(
            &json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "0"}}}),
        )];
        assert!(check(&fresh, "", "pods", &p, None, now).unwrap().is_empty());
        // A quota of other resources, or of a scope the pod is not in, does not apply.
        let scoped = [QuotaState::of(
            &json!({"metadata": {"name": "q"}, "spec": {"scopes": ["BestEffort"]},
            "status": {"hard": {"pods": "0"}, "used": {"pods": "0"}}}),
        )];
        assert!(
            check(&scoped, "", "pods", &p, None, now)
                .unwrap()
                .is_empty()
        );
        let best_effort = pod(json!([{"name": "a"}]));
        assert_eq!(
            check(&scoped, "", "pods", &best_effort, None, now).unwrap_err(),
            "exceeded quota: q, requested: pods=1, used: pods=0, limited: pods=0"
        );
        // Updates are charged what they add.
        let services = [quota(
            json!({"services.nodeports": "1"}),
            json!({"services.nodeports": "0"}),
        )];
        let old = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        let new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let charges = check(&services, "", "services", &new, Some(&old), now).unwrap();
        assert_eq!(pretty(&charges[0].1), "services.nodeports=1");
        assert!(
            check(&services, "", "services", &old, Some(&new), now)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn priority_class_scopes() {
        let mut p = pod(json!([{"name": "a"}]));
        p["spec"]["priorityClassName"] = json!("high");
        let scope = |op: &str, values: &[&str]| Scope {
            name: "PriorityClass".into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        assert!(in_scope(&scope("In", &["high", "low"]), "", "pods", &p));
        assert!(!in_scope(&scope("NotIn", &["high"]), "", "pods", &p));
        assert!(in_scope(&scope("Exists", &[]), "", "pods", &p));
        assert!(!in_scope(&scope("Exists", &[]), "", "services", &p));
    }

    #[test]
    fn the_controller_recounts_from_zero_and_keeps_only_hard_resources() {
        let now = SystemTime::now();
        let hard = list(
            json!({"pods": "5", "count/pods": "10", "requests.memory": "1Gi", "configmaps": "3"}),
        );
        let kinds = counted_kinds(hard.keys());
        assert_eq!(
            kinds,
            [
                ("".to_owned(), "configmaps".to_owned()),
                ("".to_owned(), "pods".to_owned())
            ]
        );
        let running = pod(json!([{"name": "a", "resources": {"requests": {"memory": "256Mi"}}}]));
        let mut done = running.clone();
        done["status"] = json!({"phase": "Failed"});
        let used = usage_of_kind(&hard, &[], "", "pods", [&running, &done, &running], now);
        assert_eq!(pretty(&used), "count/pods=3,pods=2,requests.memory=512Mi");
        let q = json!({"spec": {"hard": {"pods": "5", "configmaps": "3"}},
            "status": {"used": {"pods": "9", "secrets": "1"}}});
        assert_eq!(
            status(&q, &list(json!({"pods": "2"}))),
            json!({"hard": {"configmaps": "3", "pods": "5"}, "used": {"pods": "2"}})
        );
        assert_eq!(
            counted_kinds(list(json!({"count/deployments.apps": "1"})).keys()),
            [("apps".to_owned(), "deployments".to_owned())]
        );
    }
}

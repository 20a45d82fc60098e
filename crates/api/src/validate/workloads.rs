//! Workloads (`pkg/apis/apps/validation`, `pkg/apis/batch/validation`): Deployments, ReplicaSets,
//! StatefulSets, DaemonSets, Jobs and CronJobs, with the strategies' update rules (selectors are immutable in
//! `apps/v1`; a Job's template is fixed once it runs).

use serde_json::{Value, json};

use super::common::{
    Errors, IntOrStr, Path, as_selector, dns_label, get, immutable, int_at, label_selector,
    labels_value, list, map_at, nonnegative, nonnegative_at, normalized, not_supported, opt_str,
    percent_errors, selector_is_empty, selector_matches, semantic_eq, str_at,
};
use super::cron;
use super::meta::{self, NameRule};
use super::pod;
use crate::field::FieldError;
use crate::labels::Selector;
use crate::validation;

fn spec_of(object: &Value) -> &Value {
    object.get("spec").unwrap_or(&Value::Null)
}

fn spec_path() -> Path {
    Path::new("spec")
}

/// `spec.selector` is required and may not be empty (`empty selector is invalid for <what>`).
fn required_selector(spec: &Value, what: &str, path: &Path) -> Errors {
    let sel_path = path.child("selector");
    match get(spec, "selector") {
        None => vec![FieldError::required(sel_path, "")],
        Some(selector) => {
            let mut errs = label_selector(Some(selector), &sel_path);
            if selector_is_empty(Some(selector)) {
                errs.push(FieldError::invalid(
                    &sel_path,
                    selector.clone(),
                    format!("empty selector is invalid for {what}"),
                ));
            }
            errs
        }
    }
}

/// The selector as a `labels.Selector`, or the error upstream reports when it does not convert.
fn converted_selector(spec: &Value, path: &Path, message: &str) -> Result<Selector, FieldError> {
    as_selector(get(spec, "selector")).ok_or_else(|| {
        FieldError::invalid(
            path.child("selector"),
            get(spec, "selector").cloned().unwrap_or(Value::Null),
            message,
        )
    })
}

// ---- int-or-percent fields -----------------------------------------------------------------------------------

/// `ValidatePositiveIntOrPercent`.
fn positive_int_or_percent(v: Option<&Value>, path: &Path) -> Errors {
    match v.and_then(IntOrStr::from_value) {
        Some(IntOrStr::Str(s)) => percent_errors(&s)
            .into_iter()
            .map(|m| FieldError::invalid(path, s.as_str(), m))
            .collect(),
        Some(IntOrStr::Int(n)) => nonnegative(n, path),
        None => Vec::new(),
    }
}

/// `getIntOrPercentValue`: a percentage's number, else the integer (unparsable strings count as 0).
fn int_or_percent_value(v: Option<&Value>) -> i64 {
    match v.and_then(IntOrStr::from_value) {
        Some(IntOrStr::Int(n)) => n,
        Some(IntOrStr::Str(s)) => s.strip_suffix('%').unwrap_or(&s).parse().unwrap_or(0),
        None => 0,
    }
}

/// `IsNotMoreThan100Percent`.
fn not_more_than_100_percent(v: Option<&Value>, path: &Path) -> Errors {
    if let Some(IntOrStr::Str(s)) = v.and_then(IntOrStr::from_value)
        && percent_errors(&s).is_empty()
        && int_or_percent_value(v) > 100
    {
        return vec![FieldError::invalid(
            path,
            s,
            "must not be greater than 100%",
        )];
    }
    Vec::new()
}

// ---- Deployments and ReplicaSets -----------------------------------------------------------------------------

/// `ValidateDeploymentStrategy`.
fn deployment_strategy(spec: &Value, path: &Path) -> Errors {
    let strategy = spec.get("strategy").unwrap_or(&Value::Null);
    let rolling = get(strategy, "rollingUpdate");
    match str_at(strategy, "type") {
        "Recreate" => match rolling {
            Some(_) => vec![FieldError::forbidden(
                path.child("rollingUpdate"),
                "may not be specified when strategy `type` is 'Recreate'",
            )],
            None => Vec::new(),
        },
        "RollingUpdate" => match rolling {
            None => vec![FieldError::required(
                path.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )],
            Some(r) => {
                let p = path.child("rollingUpdate");
                let (unavailable, surge) = (get(r, "maxUnavailable"), get(r, "maxSurge"));
                let mut errs = positive_int_or_percent(unavailable, &p.child("maxUnavailable"));
                errs.extend(positive_int_or_percent(surge, &p.child("maxSurge")));
                if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
                    errs.push(FieldError::invalid(
                        p.child("maxUnavailable"),
                        unavailable.cloned().unwrap_or(json!(0)),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                errs.extend(not_more_than_100_percent(
                    unavailable,
                    &p.child("maxUnavailable"),
                ));
                errs
            }
        },
        _ => vec![not_supported(
            path,
            strategy.clone(),
            &["Recreate", "RollingUpdate"],
        )],
    }
}

/// `ValidateDeploymentSpec`.
fn deployment_spec(spec: &Value) -> Errors {
    let path = spec_path();
    let mut errs = nonnegative(
        int_at(spec, "replicas").unwrap_or(0),
        &path.child("replicas"),
    );
    errs.extend(required_selector(spec, "deployment", &path));
    match converted_selector(spec, &path, "invalid label selector") {
        Ok(selector) => errs.extend(pod::template_for_replicas(
            Some(spec.get("template").unwrap_or(&Value::Null)),
            Some(&selector),
            "ReplicaSet",
            &path.child("template"),
        )),
        Err(e) => errs.push(e),
    }
    errs.extend(deployment_strategy(spec, &path.child("strategy")));
    let min_ready = int_at(spec, "minReadySeconds").unwrap_or(0);
    errs.extend(nonnegative(min_ready, &path.child("minReadySeconds")));
    errs.extend(nonnegative_at(spec, "revisionHistoryLimit", &path));
    if let Some(deadline) = int_at(spec, "progressDeadlineSeconds") {
        errs.extend(nonnegative(
            deadline,
            &path.child("progressDeadlineSeconds"),
        ));
        if deadline <= min_ready {
            errs.push(FieldError::invalid(
                path.child("progressDeadlineSeconds"),
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

/// `ValidateReplicaSetSpec` (upstream's empty-selector message says "deployment" here too).
fn replica_set_spec(spec: &Value) -> Errors {
    let path = spec_path();
    let mut errs = nonnegative(
        int_at(spec, "replicas").unwrap_or(0),
        &path.child("replicas"),
    );
    errs.extend(nonnegative(
        int_at(spec, "minReadySeconds").unwrap_or(0),
        &path.child("minReadySeconds"),
    ));
    errs.extend(required_selector(spec, "deployment", &path));
    match converted_selector(spec, &path, "invalid label selector") {
        Ok(selector) => errs.extend(pod::template_for_replicas(
            Some(spec.get("template").unwrap_or(&Value::Null)),
            Some(&selector),
            "ReplicaSet",
            &path.child("template"),
        )),
        Err(e) => errs.push(e),
    }
    errs
}

/// The `apps/v1` strategies' rule: the selector never changes.
fn selector_immutable(new: &Value, old: &Value) -> Errors {
    immutable(
        get(spec_of(new), "selector"),
        get(spec_of(old), "selector"),
        &spec_path().child("selector"),
    )
}

pub(crate) fn deployment_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    errs.extend(deployment_spec(spec_of(object)));
    errs
}

pub(crate) fn deployment_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(deployment_spec(spec_of(new)));
    errs.extend(selector_immutable(new, old));
    errs
}

pub(crate) fn replica_set_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    errs.extend(replica_set_spec(spec_of(object)));
    errs
}

pub(crate) fn replica_set_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(replica_set_spec(spec_of(new)));
    errs.extend(selector_immutable(new, old));
    errs
}

// ---- StatefulSets ----------------------------------------------------------------------------------------------

/// `ValidateStatefulSetSpec`. Upstream validates only the template's metadata, not its pod spec.
fn stateful_set_spec(spec: &Value) -> Errors {
    let path = spec_path();
    let mut errs = Vec::new();
    match str_at(spec, "podManagementPolicy") {
        "" => errs.push(FieldError::required(path.child("podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            path.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = spec.get("updateStrategy").unwrap_or(&Value::Null);
    let strategy_path = path.child("updateStrategy");
    match str_at(strategy, "type") {
        "" => errs.push(FieldError::required(&strategy_path, "")),
        "OnDelete" => {
            if let Some(rolling) = get(strategy, "rollingUpdate") {
                errs.push(FieldError::invalid(
                    strategy_path.child("rollingUpdate"),
                    rolling.clone(),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(rolling) = get(strategy, "rollingUpdate") {
                let p = strategy_path.child("rollingUpdate");
                errs.extend(nonnegative(
                    int_at(rolling, "partition").unwrap_or(0),
                    &p.child("partition"),
                ));
                if let Some(unavailable) = get(rolling, "maxUnavailable") {
                    let up = p.child("maxUnavailable");
                    errs.extend(positive_int_or_percent(Some(unavailable), &up));
                    if int_or_percent_value(Some(unavailable)) == 0 {
                        errs.push(FieldError::invalid(&up, unavailable.clone(), "cannot be 0"));
                    }
                    errs.extend(not_more_than_100_percent(Some(unavailable), &up));
                }
            }
        }
        _ => errs.push(FieldError::invalid(
            &strategy_path,
            strategy.clone(),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(policy) = get(spec, "persistentVolumeClaimRetentionPolicy") {
        let p = path.child("persistentVolumeClaimRetentionPolicy");
        for key in ["whenDeleted", "whenScaled"] {
            let value = str_at(policy, key);
            if !matches!(value, "Retain" | "Delete") {
                errs.push(not_supported(&p.child(key), value, &["Retain", "Delete"]));
            }
        }
    }
    errs.extend(nonnegative(
        int_at(spec, "replicas").unwrap_or(0),
        &path.child("replicas"),
    ));
    errs.extend(nonnegative(
        int_at(spec, "minReadySeconds").unwrap_or(0),
        &path.child("minReadySeconds"),
    ));
    if let Some(ordinals) = get(spec, "ordinals") {
        errs.extend(nonnegative(
            int_at(ordinals, "start").unwrap_or(0),
            &path.child("ordinals.start"),
        ));
    }
    let service_name = str_at(spec, "serviceName");
    if !service_name.is_empty() {
        errs.extend(dns_label(service_name, &path.child("serviceName")));
    }
    errs.extend(required_selector(spec, "statefulset", &path));
    let template = spec.get("template").unwrap_or(&Value::Null);
    let template_path = path.child("template");
    match converted_selector(spec, &path, "") {
        Ok(selector) => {
            if !selector.is_empty()
                && !selector_matches(
                    &selector,
                    template.get("metadata").and_then(|m| map_at(m, "labels")),
                )
            {
                errs.push(FieldError::invalid(
                    template_path.child("metadata").child("labels"),
                    labels_value(template),
                    "`selector` does not match template `labels`",
                ));
            }
            let meta = template.get("metadata").unwrap_or(&Value::Null);
            errs.extend(super::common::labels_at(
                meta,
                "labels",
                &template_path.child("labels"),
            ));
            errs.extend(super::common::annotations_at(
                meta,
                "annotations",
                &template_path.child("annotations"),
            ));
        }
        Err(e) => errs.push(e),
    }
    errs.extend(pod::always_restart(
        template,
        "StatefulSet",
        &template_path.child("spec"),
    ));
    errs
}

pub(crate) fn stateful_set_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Label);
    errs.extend(stateful_set_spec(spec_of(object)));
    errs
}

/// `ValidateStatefulSetUpdate`: only replicas, ordinals, template, update strategy, claim retention and
/// minReadySeconds may change.
pub(crate) fn stateful_set_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(stateful_set_spec(spec_of(new)));
    let mutable = [
        "replicas",
        "template",
        "updateStrategy",
        "minReadySeconds",
        "ordinals",
        "persistentVolumeClaimRetentionPolicy",
    ];
    let without = |spec: &Value| -> Value {
        let mut s = normalized(spec);
        if let Some(m) = s.as_object_mut() {
            for key in mutable {
                m.remove(key);
            }
        }
        s
    };
    if without(spec_of(new)) != without(spec_of(old)) {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
    errs
}

// ---- DaemonSets --------------------------------------------------------------------------------------------------

/// `ValidateDaemonSetSpec`.
fn daemon_set_spec(spec: &Value) -> Errors {
    let path = spec_path();
    let selector = get(spec, "selector");
    let mut errs = label_selector(selector, &path.child("selector"));
    let template = spec.get("template").unwrap_or(&Value::Null);
    let template_path = path.child("template");
    if let Some(converted) = as_selector(selector)
        && !selector_matches(
            &converted,
            template.get("metadata").and_then(|m| map_at(m, "labels")),
        )
    {
        errs.push(FieldError::invalid(
            template_path.child("metadata").child("labels"),
            labels_value(template),
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(selector) = selector
        && selector_is_empty(Some(selector))
    {
        errs.push(FieldError::invalid(
            path.child("selector"),
            selector.clone(),
            "empty selector is invalid for daemonset",
        ));
    }
    errs.extend(pod::template(template, &template_path));
    errs.extend(pod::always_restart(
        template,
        "DaemonSet",
        &template_path.child("spec"),
    ));
    errs.extend(nonnegative(
        int_at(spec, "minReadySeconds").unwrap_or(0),
        &path.child("minReadySeconds"),
    ));
    errs.extend(nonnegative(
        int_at(spec, "templateGeneration").unwrap_or(0),
        &path.child("templateGeneration"),
    ));
    errs.extend(daemon_set_strategy(spec, &path.child("updateStrategy")));
    errs.extend(nonnegative_at(spec, "revisionHistoryLimit", &path));
    errs
}

/// `ValidateDaemonSetUpdateStrategy`.
fn daemon_set_strategy(spec: &Value, path: &Path) -> Errors {
    let strategy = spec.get("updateStrategy").unwrap_or(&Value::Null);
    match str_at(strategy, "type") {
        "OnDelete" => Vec::new(),
        "RollingUpdate" => {
            let Some(rolling) = get(strategy, "rollingUpdate") else {
                return vec![FieldError::required(path.child("rollingUpdate"), "")];
            };
            let p = path.child("rollingUpdate");
            let (unavailable, surge) = (get(rolling, "maxUnavailable"), get(rolling, "maxSurge"));
            let mut errs = positive_int_or_percent(unavailable, &p.child("maxUnavailable"));
            errs.extend(positive_int_or_percent(surge, &p.child("maxSurge")));
            errs.extend(not_more_than_100_percent(
                unavailable,
                &p.child("maxUnavailable"),
            ));
            errs.extend(not_more_than_100_percent(surge, &p.child("maxSurge")));
            let has_unavailable = int_or_percent_value(unavailable) != 0;
            let has_surge = int_or_percent_value(surge) != 0;
            if has_unavailable && has_surge {
                errs.push(FieldError::invalid(
                    p.child("maxSurge"),
                    surge.cloned().unwrap_or(Value::Null),
                    "may not be set when maxUnavailable is non-zero",
                ));
            } else if !has_unavailable && !has_surge {
                errs.push(FieldError::required(
                    p.child("maxUnavailable"),
                    "cannot be 0 when maxSurge is 0",
                ));
            }
            errs
        }
        _ => vec![not_supported(
            path,
            strategy.clone(),
            &["RollingUpdate", "OnDelete"],
        )],
    }
}

pub(crate) fn daemon_set_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    errs.extend(daemon_set_spec(spec_of(object)));
    errs
}

pub(crate) fn daemon_set_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    let (new_gen, old_gen) = (
        int_at(spec_of(new), "templateGeneration").unwrap_or(0),
        int_at(spec_of(old), "templateGeneration").unwrap_or(0),
    );
    if new_gen < old_gen {
        errs.push(FieldError::invalid(
            "spec.templateGeneration",
            new_gen,
            "must not be decremented",
        ));
    }
    errs.extend(daemon_set_spec(spec_of(new)));
    errs.extend(selector_immutable(new, old));
    errs
}

// ---- Jobs --------------------------------------------------------------------------------------------------------

const LEGACY_UID_LABEL: &str = "controller-uid";
const LEGACY_NAME_LABEL: &str = "job-name";
const UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
const NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// What the Job registry strategy does on create unless `manualSelector` is true: label the pod template
/// with the job's name and uid (`job-name`, `controller-uid` and their `batch.kubernetes.io/` forms) and
/// select `batch.kubernetes.io/controller-uid=<uid>`. Labels the user set are kept (validation then
/// rejects a mismatch). Call it with the uid already in `metadata.uid`.
pub fn generate_job_selector(job: &mut Value) {
    if job.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let name = job
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let uid = job
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if let Some(t) = template.as_object_mut() {
        let meta = t.entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            let labels = m.entry("labels").or_insert_with(|| json!({}));
            if labels.is_null() {
                *labels = json!({});
            }
            if let Some(l) = labels.as_object_mut() {
                for (key, value) in [
                    (LEGACY_NAME_LABEL, &name),
                    (NAME_LABEL, &name),
                    (LEGACY_UID_LABEL, &uid),
                    (UID_LABEL, &uid),
                ] {
                    l.entry(key).or_insert_with(|| json!(value));
                }
            }
        }
    }
    let selector = spec.entry("selector").or_insert_with(|| json!({}));
    if selector.is_null() {
        *selector = json!({});
    }
    if let Some(s) = selector.as_object_mut() {
        let match_labels = s.entry("matchLabels").or_insert_with(|| json!({}));
        if match_labels.is_null() {
            *match_labels = json!({});
        }
        if let Some(m) = match_labels.as_object_mut() {
            m.entry(UID_LABEL).or_insert_with(|| json!(uid));
        }
    }
}

/// `ValidateHasLabel` on the template's labels.
fn has_label(template: &Value, key: &str, expected: &str) -> Errors {
    let path = Path::new("spec")
        .child("template")
        .child("metadata")
        .child("labels")
        .key(key);
    let labels = template.get("metadata").and_then(|m| map_at(m, "labels"));
    match labels.and_then(|l| l.get(key)) {
        None => vec![FieldError::required(path, format!("must be '{expected}'"))],
        Some(v) if v.as_str() != Some(expected) => vec![FieldError::invalid(
            path,
            labels_value(template),
            format!("must be '{expected}'"),
        )],
        Some(_) => Vec::new(),
    }
}

/// `validateGeneratedSelector`: generated labels present and selected. A missing uid is the REST
/// engine's to set, so it is not reported here.
fn generated_selector(job: &Value) -> Errors {
    let spec = spec_of(job);
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return Vec::new();
    }
    let Some(selector) = get(spec, "selector") else {
        return Vec::new();
    };
    let meta = meta::of(job);
    let (name, uid) = (str_at(meta, "name"), str_at(meta, "uid"));
    let template = spec.get("template").unwrap_or(&Value::Null);
    let mut errs = Vec::new();
    for (key, expected) in [
        (LEGACY_UID_LABEL, uid),
        (LEGACY_NAME_LABEL, name),
        (UID_LABEL, uid),
        (NAME_LABEL, name),
    ] {
        errs.extend(has_label(template, key, expected));
    }
    let expected_labels: serde_json::Map<String, Value> = [
        (UID_LABEL, uid),
        (NAME_LABEL, name),
        (LEGACY_UID_LABEL, uid),
        (LEGACY_NAME_LABEL, name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), json!(v)))
    .collect();
    if let Some(converted) = as_selector(Some(selector))
        && !converted.matches(&expected_labels)
    {
        errs.push(FieldError::invalid(
            "spec.selector",
            selector.clone(),
            "`selector` not auto-generated",
        ));
    }
    errs
}

/// `validateJobSpec` (shared by Jobs and CronJob job templates).
fn job_spec(spec: &Value, path: &Path) -> Errors {
    let mut errs = Vec::new();
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        errs.extend(nonnegative_at(spec, key, path));
    }
    let completions = int_at(spec, "completions");
    let parallelism = int_at(spec, "parallelism");
    let per_index = int_at(spec, "backoffLimitPerIndex");
    let max_failed = int_at(spec, "maxFailedIndexes");
    if let Some(max) = max_failed {
        errs.extend(nonnegative(max, &path.child("maxFailedIndexes")));
        if per_index.is_none() {
            errs.push(FieldError::required(
                path.child("backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
    }
    if let Some(managed_by) = opt_str(spec, "managedBy") {
        errs.extend(domain_prefixed_path(managed_by, &path.child("managedBy")));
        if managed_by.len() > 63 {
            errs.push(FieldError::too_long(path.child("managedBy"), 63));
        }
    }
    let mode = opt_str(spec, "completionMode");
    let indexed = mode == Some("Indexed");
    if let Some(mode) = mode {
        if !matches!(mode, "NonIndexed" | "Indexed") {
            errs.push(not_supported(
                &path.child("completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
        if indexed {
            if completions.is_none() {
                errs.push(FieldError::required(
                    path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = parallelism.filter(|p| *p > 100_000) {
                errs.push(FieldError::invalid(
                    path.child("parallelism"),
                    p,
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
            if let (Some(c), Some(m)) = (completions, max_failed)
                && m > c
            {
                errs.push(FieldError::invalid(
                    path.child("maxFailedIndexes"),
                    m,
                    "must be less than or equal to completions",
                ));
            }
        }
    }
    if !indexed {
        if let Some(n) = per_index {
            errs.push(FieldError::invalid(
                path.child("backoffLimitPerIndex"),
                n,
                "requires indexed completion mode",
            ));
        }
        if let Some(n) = max_failed {
            errs.push(FieldError::invalid(
                path.child("maxFailedIndexes"),
                n,
                "requires indexed completion mode",
            ));
        }
    }
    let failure_policy = get(spec, "podFailurePolicy");
    if let Some(policy) = failure_policy {
        errs.extend(pod_failure_policy(
            policy,
            spec,
            &path.child("podFailurePolicy"),
        ));
    }
    if let Some(success) = get(spec, "successPolicy") {
        if indexed {
            errs.extend(success_policy(
                success,
                completions,
                &path.child("successPolicy"),
            ));
        } else {
            errs.push(FieldError::invalid(
                path.child("successPolicy"),
                success.clone(),
                "requires indexed completion mode",
            ));
        }
    }
    if let Some(replacement) = opt_str(spec, "podReplacementPolicy") {
        let p = path.child("podReplacementPolicy");
        if failure_policy.is_some() {
            if replacement != "Failed" {
                errs.push(not_supported(&p, replacement, &["Failed"]));
            }
        } else if !matches!(replacement, "Failed" | "TerminatingOrFailed") {
            errs.push(not_supported(
                &p,
                replacement,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let template = spec.get("template").unwrap_or(&Value::Null);
    errs.extend(pod::template(template, &path.child("template")));
    let restart_path = path.child("template").child("spec").child("restartPolicy");
    match pod::template_restart_policy(template) {
        "Always" | "" => errs.push(FieldError::required(
            restart_path,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" | "Never" => {
            if failure_policy.is_some() && pod::template_restart_policy(template) != "Never" {
                errs.push(FieldError::invalid(
                    restart_path,
                    pod::template_restart_policy(template),
                    "only \"Never\" is supported when podFailurePolicy is specified",
                ));
            }
        }
        other => errs.push(not_supported(&restart_path, other, &["OnFailure", "Never"])),
    }
    errs
}

/// `IsDomainPrefixedPath`.
fn domain_prefixed_path(value: &str, path: &Path) -> Errors {
    if value.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let Some((host, rest)) = value
        .split_once('/')
        .filter(|(h, r)| !h.is_empty() && !r.is_empty())
    else {
        return vec![FieldError::invalid(
            path,
            value,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )];
    };
    let mut errs: Errors = validation::is_dns1123_subdomain(host)
        .into_iter()
        .map(|m| FieldError::invalid(path, host, m))
        .collect();
    let valid_path = rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&b));
    if !valid_path {
        errs.push(FieldError::invalid(
            path,
            rest,
            validation::regex_error("Invalid path", "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+", &[]),
        ));
    }
    errs
}

/// `validatePodFailurePolicy`.
fn pod_failure_policy(policy: &Value, spec: &Value, path: &Path) -> Errors {
    let rules = list(policy, "rules");
    let rules_path = path.child("rules");
    let mut errs = Vec::new();
    if rules.len() > 20 {
        errs.push(FieldError::too_many(&rules_path, rules.len(), 20));
    }
    let template_spec = spec.pointer("/template/spec").unwrap_or(&Value::Null);
    let containers: Vec<&str> = list(template_spec, "containers")
        .iter()
        .chain(list(template_spec, "initContainers"))
        .map(|c| str_at(c, "name"))
        .collect();
    for (i, rule) in rules.iter().enumerate() {
        let p = rules_path.index(i);
        let actions = ["Count", "FailIndex", "FailJob", "Ignore"];
        match str_at(rule, "action") {
            "" => errs.push(FieldError::required(
                p.child("action"),
                "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
            )),
            "FailIndex" if int_at(spec, "backoffLimitPerIndex").is_none() => {
                errs.push(FieldError::invalid(
                    p.child("action"),
                    "FailIndex",
                    "requires the backoffLimitPerIndex to be set",
                ));
            }
            a if !actions.contains(&a) => errs.push(not_supported(&p.child("action"), a, &actions)),
            _ => {}
        }
        let on_exit = get(rule, "onExitCodes");
        let on_conditions = list(rule, "onPodConditions");
        if let Some(req) = on_exit {
            errs.extend(on_exit_codes(req, &containers, &p.child("onExitCodes")));
        }
        for (j, pattern) in on_conditions.iter().enumerate() {
            let pp = p.child("onPodConditions").index(j);
            errs.extend(super::common::qualified_name(
                str_at(pattern, "type"),
                &pp.child("type"),
            ));
            match str_at(pattern, "status") {
                "" => errs.push(FieldError::required(
                    pp.child("status"),
                    "valid values: [\"False\" \"True\" \"Unknown\"]",
                )),
                "True" | "False" | "Unknown" => {}
                s => errs.push(not_supported(
                    &pp.child("status"),
                    s,
                    &["False", "True", "Unknown"],
                )),
            }
        }
        if on_exit.is_some() && !on_conditions.is_empty() {
            errs.push(FieldError::invalid(
                &p,
                Value::Null,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            ));
        }
        if on_exit.is_none() && on_conditions.is_empty() {
            errs.push(FieldError::invalid(
                &p,
                Value::Null,
                "specifying one of OnExitCodes and OnPodConditions is required",
            ));
        }
    }
    errs
}

fn on_exit_codes(req: &Value, containers: &[&str], path: &Path) -> Errors {
    let mut errs = Vec::new();
    let operator = str_at(req, "operator");
    match operator {
        "" => errs.push(FieldError::required(
            path.child("operator"),
            "valid values: [\"In\" \"NotIn\"]",
        )),
        "In" | "NotIn" => {}
        other => errs.push(not_supported(
            &path.child("operator"),
            other,
            &["In", "NotIn"],
        )),
    }
    if let Some(name) = opt_str(req, "containerName")
        && !containers.contains(&name)
    {
        errs.push(FieldError::invalid(
            path.child("containerName"),
            name,
            "must be one of the container or initContainer names in the pod template",
        ));
    }
    let values: Vec<i64> = list(req, "values")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    let values_path = path.child("values");
    if values.is_empty() {
        errs.push(FieldError::invalid(
            &values_path,
            json!([]),
            "at least one value is required",
        ));
    } else if values.len() > 255 {
        errs.push(FieldError::too_many(&values_path, values.len(), 255));
    }
    for (j, v) in values.iter().enumerate() {
        if operator == "In" && *v == 0 {
            errs.push(FieldError::invalid(
                values_path.index(j),
                *v,
                "must not be 0 for the In operator",
            ));
        }
        if values[..j].contains(v) {
            errs.push(FieldError::duplicate(values_path.index(j), *v));
        }
    }
    if values.windows(2).any(|w| w[0] > w[1]) {
        errs.push(FieldError::invalid(
            &values_path,
            json!(values),
            "must be ordered",
        ));
    }
    errs
}

/// `validateSuccessPolicy` (the indexes syntax itself is not parsed here).
fn success_policy(policy: &Value, completions: Option<i64>, path: &Path) -> Errors {
    let rules = list(policy, "rules");
    let rules_path = path.child("rules");
    let mut errs = Vec::new();
    if rules.is_empty() {
        errs.push(FieldError::required(
            &rules_path,
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if rules.len() > 20 {
        errs.push(FieldError::too_many(&rules_path, rules.len(), 20));
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = rules_path.index(i);
        let count = int_at(rule, "succeededCount");
        if count.is_none() && opt_str(rule, "succeededIndexes").is_none() {
            errs.push(FieldError::required(
                &p,
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        if let Some(n) = count {
            errs.extend(nonnegative(n, &p.child("succeededCount")));
            if let Some(c) = completions.filter(|c| n > *c) {
                errs.push(FieldError::invalid(
                    p.child("succeededCount"),
                    n,
                    format!(
                        "must be less than or equal to {c} (the number of specified completions)"
                    ),
                ));
            }
        }
    }
    errs
}

/// `ValidateJobSpec`: the job spec plus a selector that matches the template.
fn job_spec_with_selector(spec: &Value) -> Errors {
    let path = spec_path();
    let mut errs = job_spec(spec, &path);
    match get(spec, "selector") {
        None => errs.push(FieldError::required(path.child("selector"), "")),
        Some(selector) => errs.extend(label_selector(Some(selector), &path.child("selector"))),
    }
    let template = spec.get("template").unwrap_or(&Value::Null);
    if let Some(selector) = as_selector(get(spec, "selector"))
        && !selector_matches(
            &selector,
            template.get("metadata").and_then(|m| map_at(m, "labels")),
        )
    {
        errs.push(FieldError::invalid(
            path.child("template").child("metadata").child("labels"),
            labels_value(template),
            "`selector` does not match template `labels`",
        ));
    }
    errs
}

/// `ValidateJob`, on the job as the registry strategy would have prepared it.
fn job(job: &Value) -> Errors {
    let mut errs = meta::create(job, NameRule::Subdomain);
    errs.extend(generated_selector(job));
    let spec = spec_of(job);
    errs.extend(job_spec_with_selector(spec));
    let name = str_at(meta::of(job), "name");
    if opt_str(spec, "completionMode") == Some("Indexed")
        && let Some(completions) = int_at(spec, "completions").filter(|c| *c > 0)
    {
        let hostname = format!("{name}-{}", completions - 1);
        if !validation::is_dns1123_label(&hostname).is_empty() {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                format!("will not able to create pod with invalid DNS label: {hostname}"),
            ));
        }
    }
    errs
}

/// A copy of the job with the strategy's generated selector applied.
fn prepared(object: &Value) -> Value {
    let mut copy = object.clone();
    generate_job_selector(&mut copy);
    copy
}

pub(crate) fn job_create(object: &Value) -> Errors {
    job(&prepared(object))
}

/// `ValidateJobUpdate`: the selector, completion mode, failure and success policies are fixed, and so is the
/// template unless the job is suspended (then scheduling directives may change until it first starts).
pub(crate) fn job_update(new: &Value, old: &Value) -> Errors {
    let both_unselected =
        get(spec_of(new), "selector").is_none() && get(spec_of(old), "selector").is_none();
    let (new, old) = if both_unselected {
        (prepared(new), prepared(old))
    } else {
        (new.clone(), old.clone())
    };
    let mut errs = meta::update(&new, &old);
    errs.extend(job_spec_with_selector(spec_of(&new)));
    let (new_spec, old_spec) = (spec_of(&new), spec_of(&old));
    let path = spec_path();
    let indexed = opt_str(new_spec, "completionMode") == Some("Indexed");
    if !indexed {
        errs.extend(immutable(
            get(new_spec, "completions"),
            get(old_spec, "completions"),
            &path.child("completions"),
        ));
    } else if !semantic_eq(get(new_spec, "completions"), get(old_spec, "completions"))
        && let Some(c) = int_at(new_spec, "completions")
        && Some(c) != int_at(new_spec, "parallelism")
    {
        errs.push(FieldError::invalid(
            path.child("completions"),
            c,
            "can only be modified in tandem with spec.parallelism",
        ));
    }
    errs.extend(immutable(
        get(new_spec, "selector"),
        get(old_spec, "selector"),
        &path.child("selector"),
    ));
    errs.extend(template_update(&new, &old));
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        errs.extend(immutable(
            get(new_spec, key),
            get(old_spec, key),
            &path.child(key),
        ));
    }
    errs
}

/// `validatePodTemplateUpdate` for Jobs.
fn template_update(new: &Value, old: &Value) -> Errors {
    let new_template = spec_of(new).get("template").cloned().unwrap_or(Value::Null);
    let mut old_template = spec_of(old).get("template").cloned().unwrap_or(Value::Null);
    let suspended = spec_of(old).get("suspend").and_then(Value::as_bool) == Some(true);
    let never_started = old.pointer("/status/startTime").is_none_or(Value::is_null);
    if suspended
        && never_started
        && let Some(t) = old_template.as_object_mut()
    {
        let meta = t.entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            for key in ["labels", "annotations"] {
                set_or_remove(m, key, new_template.pointer(&format!("/metadata/{key}")));
            }
        }
        let spec = t.entry("spec").or_insert_with(|| json!({}));
        if let Some(s) = spec.as_object_mut() {
            for key in ["nodeSelector", "tolerations", "schedulingGates"] {
                set_or_remove(s, key, new_template.pointer(&format!("/spec/{key}")));
            }
            let new_node_affinity = new_template.pointer("/spec/affinity/nodeAffinity");
            let affinity = s.entry("affinity").or_insert_with(|| json!({}));
            if let Some(a) = affinity.as_object_mut() {
                set_or_remove(a, "nodeAffinity", new_node_affinity);
            }
        }
    }
    immutable(
        Some(&new_template),
        Some(&old_template),
        &spec_path().child("template"),
    )
}

fn set_or_remove(map: &mut serde_json::Map<String, Value>, key: &str, value: Option<&Value>) {
    match value {
        Some(v) => {
            map.insert(key.to_owned(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

// ---- CronJobs ----------------------------------------------------------------------------------------------------

/// `validateTimeZone` (the tz database is not consulted).
fn time_zone(spec: &Value, path: &Path) -> Errors {
    let Some(tz) = opt_str(spec, "timeZone") else {
        return Vec::new();
    };
    let p = path.child("timeZone");
    if tz.is_empty() {
        return vec![FieldError::invalid(
            p,
            tz,
            "timeZone must be nil or non-empty string",
        )];
    }
    let part_ok = |part: &str| {
        part != "."
            && part != ".."
            && !part.starts_with('-')
            && (1..=14).contains(&part.len())
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
    };
    if !tz.split('/').all(part_ok) {
        return vec![FieldError::invalid(
            p,
            tz,
            format!("unknown time zone {tz}"),
        )];
    }
    if tz.eq_ignore_ascii_case("Local") {
        return vec![FieldError::invalid(
            p,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )];
    }
    Vec::new()
}

/// `validateCronJobSpec`.
fn cron_job_spec(spec: &Value, old_spec: Option<&Value>) -> Errors {
    let path = spec_path();
    let mut errs = Vec::new();
    let schedule = str_at(spec, "schedule");
    let schedule_path = path.child("schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required(&schedule_path, ""));
    } else {
        if let Err(e) = cron::parse_standard(schedule) {
            errs.push(FieldError::invalid(&schedule_path, schedule, e));
        }
        let allow_tz = old_spec.is_some_and(|o| str_at(o, "schedule").contains("TZ"));
        if allow_tz && schedule.contains("TZ") && opt_str(spec, "timeZone").is_some() {
            errs.push(FieldError::invalid(
                &schedule_path,
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                &schedule_path,
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    errs.extend(nonnegative_at(spec, "startingDeadlineSeconds", &path));
    if old_spec.is_none_or(|o| opt_str(o, "timeZone") != opt_str(spec, "timeZone")) {
        errs.extend(time_zone(spec, &path));
    }
    match str_at(spec, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required(path.child("concurrencyPolicy"), "")),
        other => errs.push(not_supported(
            &path.child("concurrencyPolicy"),
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let template = spec.get("jobTemplate").unwrap_or(&Value::Null);
    let template_path = path.child("jobTemplate");
    let job_spec_value = template.get("spec").unwrap_or(&Value::Null);
    errs.extend(job_spec(job_spec_value, &template_path.child("spec")));
    if let Some(selector) = get(job_spec_value, "selector") {
        errs.push(FieldError::invalid(
            template_path.child("spec").child("selector"),
            selector.clone(),
            "`selector` will be auto-generated",
        ));
    }
    if job_spec_value
        .get("manualSelector")
        .and_then(Value::as_bool)
        == Some(true)
    {
        errs.push(not_supported(
            &template_path.child("spec").child("manualSelector"),
            true,
            &["nil", "false"],
        ));
    }
    errs.extend(nonnegative_at(spec, "successfulJobsHistoryLimit", &path));
    errs.extend(nonnegative_at(spec, "failedJobsHistoryLimit", &path));
    errs
}

/// `ValidateCronJobCreate`: names leave room for the 11-character suffix of the jobs they create.
pub(crate) fn cron_job_create(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    errs.extend(cron_job_spec(spec_of(object), None));
    let name = str_at(meta::of(object), "name");
    if name.len() > 52 {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            validation::max_len_error(52),
        ));
    }
    errs
}

pub(crate) fn cron_job_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(cron_job_spec(spec_of(new), Some(spec_of(old))));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults;

    fn msgs(errs: Errors) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn defaulted(group: &str, kind: &str, mut v: Value) -> Value {
        defaults::apply(group, kind, &mut v);
        v
    }

    fn deployment(spec: Value) -> Value {
        defaulted(
            "apps",
            "Deployment",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
        )
    }

    fn web_template(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}})
    }

    #[test]
    fn deployments() {
        let good = deployment(
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template(json!({"app": "web"}))}),
        );
        assert_eq!(msgs(deployment_create(&good)), Vec::<String>::new());

        let mismatch = deployment(
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template(json!({"app": "api"}))}),
        );
        assert_eq!(
            msgs(deployment_create(&mismatch)),
            [
                "spec.template.metadata.labels: Invalid value: {\"app\":\"api\"}: `selector` does not match template `labels`",
            ]
        );

        let no_selector = deployment(json!({"template": web_template(json!({"app": "web"}))}));
        assert_eq!(
            msgs(deployment_create(&no_selector)),
            [
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
            ]
        );

        let mut bad = deployment(json!({
            "replicas": -1,
            "selector": {},
            "template": web_template(json!({"app": "web"})),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "110%", "maxSurge": 0}},
            "minReadySeconds": 700,
            "revisionHistoryLimit": -1
        }));
        bad["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            msgs(deployment_create(&bad)),
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.selector: Invalid value: {}: empty selector is invalid for deployment",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"110%\": must not be greater than 100%",
                "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
                "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
            ]
        );

        let zero = deployment(json!({
            "selector": {"matchLabels": {"app": "web"}}, "template": web_template(json!({"app": "web"})),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}}
        }));
        assert_eq!(
            msgs(deployment_create(&zero)),
            [
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
            ]
        );
        let recreate = deployment(json!({
            "selector": {"matchLabels": {"app": "web"}}, "template": web_template(json!({"app": "web"})),
            "strategy": {"type": "Blue"}
        }));
        assert_eq!(
            msgs(deployment_create(&recreate)),
            [
                "spec.strategy: Unsupported value: {\"type\":\"Blue\"}: supported values: \"Recreate\", \"RollingUpdate\"",
            ]
        );
    }

    #[test]
    fn deployment_selector_is_immutable() {
        let old = deployment(
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template(json!({"app": "web", "tier": "fe"}))}),
        );
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "fe"}});
        assert_eq!(
            msgs(deployment_update(&new, &old)),
            [
                "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"web\",\"tier\":\"fe\"}}: field is immutable",
            ]
        );
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(5);
        assert!(deployment_update(&scaled, &old).is_empty());
    }

    #[test]
    fn replica_sets_and_daemon_sets() {
        let rs = defaulted(
            "apps",
            "ReplicaSet",
            json!({"metadata": {"name": "rs"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": web_template(json!({"app": "web"}))}}),
        );
        assert!(replica_set_create(&rs).is_empty());
        let ds = defaulted(
            "apps",
            "DaemonSet",
            json!({"metadata": {"name": "ds"}, "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": web_template(json!({"app": "agent"}))}}),
        );
        assert_eq!(msgs(daemon_set_create(&ds)), Vec::<String>::new());
        let mut both = ds.clone();
        both["spec"]["updateStrategy"]["rollingUpdate"] =
            json!({"maxUnavailable": 1, "maxSurge": 1});
        assert_eq!(
            msgs(daemon_set_create(&both)),
            [
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero"
            ]
        );
        let mut none = ds.clone();
        none["spec"]["updateStrategy"]["rollingUpdate"] =
            json!({"maxUnavailable": 0, "maxSurge": 0});
        assert_eq!(
            msgs(daemon_set_create(&none)),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"
            ]
        );
    }

    #[test]
    fn stateful_sets() {
        let sts = defaulted(
            "apps",
            "StatefulSet",
            json!({"metadata": {"name": "db"}, "spec": {
                "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": web_template(json!({"app": "db"})),
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
            }}),
        );
        assert_eq!(msgs(stateful_set_create(&sts)), Vec::<String>::new());
        let mut dotted = sts.clone();
        dotted["metadata"]["name"] = json!("db.v1");
        dotted["spec"]["podManagementPolicy"] = json!("Random");
        dotted["spec"]["serviceName"] = json!("DB");
        let errs = msgs(stateful_set_create(&dotted));
        assert_eq!(
            errs[0],
            "metadata.name: Invalid value: \"db.v1\": must not contain dots"
        );
        assert_eq!(
            errs[1],
            "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"
        );
        assert!(
            errs[2]
                .starts_with("spec.serviceName: Invalid value: \"DB\": a lowercase RFC 1123 label")
        );
        let mut changed = sts.clone();
        changed["spec"]["serviceName"] = json!("other");
        changed["spec"]["replicas"] = json!(3);
        assert_eq!(
            msgs(stateful_set_update(&changed, &sts)),
            [
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ]
        );
    }

    fn job_object(spec: Value) -> Value {
        defaulted(
            "batch",
            "Job",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"}, "spec": spec}),
        )
    }

    fn job_template(policy: &str) -> Value {
        json!({"spec": {"containers": [{"name": "pi", "image": "perl"}], "restartPolicy": policy}})
    }

    #[test]
    fn jobs() {
        let good = job_object(json!({"template": job_template("Never")}));
        assert_eq!(msgs(job_create(&good)), Vec::<String>::new());
        let mut prepared_job = good.clone();
        generate_job_selector(&mut prepared_job);
        assert_eq!(
            prepared_job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(
            prepared_job["spec"]["template"]["metadata"]["labels"]["job-name"],
            json!("pi")
        );

        let always = job_object(
            json!({"template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}}),
        );
        assert_eq!(
            msgs(job_create(&always)),
            [
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            ]
        );
        let bad = job_object(
            json!({"template": job_template("Never"), "parallelism": -1, "backoffLimit": -2, "completionMode": "Sometimes"}),
        );
        assert_eq!(
            msgs(job_create(&bad)),
            [
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
                "spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\"",
            ]
        );
        let manual = job_object(
            json!({"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}, "template": job_template("OnFailure")}),
        );
        assert_eq!(
            msgs(job_create(&manual)),
            [
                "spec.template.metadata.labels: Invalid value: null: `selector` does not match template `labels`",
            ]
        );
    }

    #[test]
    fn job_template_is_immutable() {
        let mut old = job_object(json!({"template": job_template("Never")}));
        generate_job_selector(&mut old);
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:5");
        let errs = msgs(job_update(&new, &old));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("spec.template: Invalid value: {"));
        assert!(errs[0].ends_with("}: field is immutable"));
        // A suspended job that never started may change its scheduling directives.
        old["spec"]["suspend"] = json!(true);
        let mut moved = old.clone();
        moved["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
        assert!(job_update(&moved, &old).is_empty());
    }

    fn cron_job(spec: Value) -> Value {
        defaulted(
            "batch",
            "CronJob",
            json!({"metadata": {"name": "hello", "namespace": "default"}, "spec": spec}),
        )
    }

    #[test]
    fn cron_jobs() {
        let good = cron_job(
            json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": job_template("OnFailure")}}}),
        );
        assert_eq!(msgs(cron_job_create(&good)), Vec::<String>::new());
        let bad = cron_job(json!({
            "schedule": "61 * * * *", "concurrencyPolicy": "Sometimes", "timeZone": "Local",
            "jobTemplate": {"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": job_template("OnFailure")}}
        }));
        assert_eq!(
            msgs(cron_job_create(&bad)),
            [
                "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61",
                "spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
                "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
                "spec.jobTemplate.spec.selector: Invalid value: {\"matchLabels\":{\"a\":\"b\"}}: `selector` will be auto-generated",
            ]
        );
        let tz = cron_job(
            json!({"schedule": "CRON_TZ=UTC 0 * * * *", "jobTemplate": {"spec": {"template": job_template("Never")}}}),
        );
        assert_eq!(
            msgs(cron_job_create(&tz)),
            [
                "spec.schedule: Invalid value: \"CRON_TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ]
        );
        let mut long = good.clone();
        long["metadata"]["name"] = json!("a".repeat(53));
        assert_eq!(
            msgs(cron_job_create(&long)),
            [format!(
                "metadata.name: Invalid value: \"{}\": must be no more than 52 characters",
                "a".repeat(53)
            )]
        );
    }
}

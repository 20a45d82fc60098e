//! `DeleteOptions` (from the body of a DELETE, its query, or an Eviction) and what they decide: preconditions,
//! and how long a pod is given to stop (graceful deletion).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use gantry_api::field::FieldError;
use gantry_api::{ApiError, GroupKind};
use serde_json::{Value, json};

/// What a client asked of a deletion.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct DeleteOptions {
    /// Seconds a pod gets to stop; `None` is the pod's own terminationGracePeriodSeconds.
    pub(crate) grace_period: Option<i64>,
    pub(crate) precondition_uid: Option<String>,
    pub(crate) precondition_resource_version: Option<String>,
    pub(crate) dry_run: bool,
    /// What happens to the object's dependents, when the client said (`propagationPolicy`, or the older
    /// `orphanDependents`); `None` leaves them to the garbage collector's default, background deletion.
    pub(crate) propagation: Option<Propagation>,
}

/// How the dependents of a deleted object go (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Propagation {
    /// They stay, without their reference to the owner (the `orphan` finalizer holds the owner until then).
    Orphan,
    /// The owner goes at once; the garbage collector deletes them after.
    Background,
    /// They go first (the `foregroundDeletion` finalizer holds the owner until they are gone).
    Foreground,
}

/// The finalizers the garbage collector serves for orphan and foreground propagation.
const ORPHAN_FINALIZER: &str = "orphan";
const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

impl Propagation {
    /// Puts on `object` the finalizer this propagation needs and takes off the other's (as upstream does
    /// when a deletion says how to propagate); whether the finalizers changed.
    pub(crate) fn set_finalizers(self, object: &mut Value) -> bool {
        let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
            return false;
        };
        let mut finalizers: Vec<String> = meta
            .get("finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect();
        let before = finalizers.clone();
        let wanted = match self {
            Propagation::Orphan => Some(ORPHAN_FINALIZER),
            Propagation::Foreground => Some(FOREGROUND_FINALIZER),
            Propagation::Background => None,
        };
        finalizers.retain(|f| {
            Some(f.as_str()) == wanted || (f != ORPHAN_FINALIZER && f != FOREGROUND_FINALIZER)
        });
        if let Some(wanted) = wanted
            && !finalizers.iter().any(|f| f == wanted)
        {
            finalizers.push(wanted.to_owned());
        }
        if finalizers == before {
            return false;
        }
        if finalizers.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), json!(finalizers));
        }
        true
    }
}

impl DeleteOptions {
    /// The options of a DELETE: its JSON body (a `DeleteOptions`, possibly empty) and its query, which wins.
    pub(crate) fn parse(body: &[u8], query: &HashMap<String, String>) -> Result<Self, ApiError> {
        let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
            })?
        };
        Self::from_value(&body, query)
    }

    /// The options in `body` (a DeleteOptions object), overridden by the query's.
    pub(crate) fn from_value(
        body: &Value,
        query: &HashMap<String, String>,
    ) -> Result<Self, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
        }
        let invalid = |field: &str, value: Value, message: &str| {
            ApiError::invalid(
                GroupKind::new("meta.k8s.io", "DeleteOptions"),
                "",
                &[FieldError::invalid(field, value, message)],
            )
        };
        let mut grace_period =
            match body.get("gracePeriodSeconds") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_i64().ok_or_else(|| {
                    ApiError::bad_request("gracePeriodSeconds must be an integer")
                })?),
            };
        if let Some(g) = query.get("gracePeriodSeconds") {
            grace_period =
                Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?);
        }
        let propagation = query
            .get("propagationPolicy")
            .map(String::as_str)
            .or_else(|| body.get("propagationPolicy").and_then(Value::as_str));
        if let Some(policy) = propagation
            && !matches!(policy, "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::invalid(
                GroupKind::new("meta.k8s.io", "DeleteOptions"),
                "",
                &[FieldError::not_supported(
                    "propagationPolicy",
                    policy,
                    &["Foreground", "Background", "Orphan", "nil"],
                )],
            ));
        }
        let orphan_dependents =
            match query.get("orphanDependents") {
                Some(v) => Some(v.parse::<bool>().map_err(|_| {
                    ApiError::bad_request(format!("invalid orphanDependents {v:?}"))
                })?),
                None => body.get("orphanDependents").and_then(Value::as_bool),
            };
        if orphan_dependents.is_some() && propagation.is_some() {
            return Err(invalid(
                "propagationPolicy",
                json!(propagation),
                "orphanDependents and deletionPropagation cannot be both set",
            ));
        }
        let propagation = match (propagation, orphan_dependents) {
            (Some("Orphan"), _) | (None, Some(true)) => Some(Propagation::Orphan),
            (Some("Foreground"), _) => Some(Propagation::Foreground),
            (Some(_), _) | (None, Some(false)) => Some(Propagation::Background),
            (None, None) => None,
        };
        let dry_run = match body.get("dryRun") {
            None | Some(Value::Null) => false,
            Some(Value::Array(values)) if values.is_empty() => false,
            Some(Value::Array(values)) if values.iter().all(|v| v == "All") => true,
            Some(other) => {
                return Err(invalid(
                    "dryRun",
                    other.clone(),
                    "supported values: \"All\"",
                ));
            }
        };
        let text = |path: &str| {
            body.pointer(path)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Ok(DeleteOptions {
            grace_period,
            precondition_uid: text("/preconditions/uid"),
            precondition_resource_version: text("/preconditions/resourceVersion"),
            dry_run,
            propagation,
        })
    }

    /// 409 Conflict when the object is not the one the preconditions name.
    pub(crate) fn check_preconditions(&self, object: &Value) -> Result<(), ApiError> {
        let meta = |field: &str| {
            object
                .pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let failed = |what: &str, wanted: &str, actual: &str| {
            Err(ApiError {
                code: 409,
                reason: "Conflict",
                message: format!(
                    "Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"
                ),
                details: None,
            })
        };
        if let Some(uid) = &self.precondition_uid
            && uid != meta("uid")
        {
            return failed("UID", uid, meta("uid"));
        }
        if let Some(rv) = &self.precondition_resource_version
            && rv != meta("resourceVersion")
        {
            return failed("ResourceVersion", rv, meta("resourceVersion"));
        }
        Ok(())
    }

    /// For a pod: the seconds it gets to stop, or `None` to delete it at once (not on a node yet, finished,
    /// or a grace period of 0). A pod already stopping only has its grace period shortened.
    pub(crate) fn pod_grace_period(&self, pod: &Value) -> Option<i64> {
        let scheduled = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            pod.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        if !scheduled || finished {
            return None;
        }
        let grace = self
            .grace_period
            .or_else(|| {
                pod.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30);
        (grace > 0).then_some(grace)
    }
}

/// The furthest a graceful deletion's timestamp goes: a thousand years.
const MAX_DEADLINE_SECONDS: u64 = 1000 * 365 * 24 * 3600;

/// Marks a pod as stopping within `grace` seconds; false if it already stops as soon (nothing to change).
pub(crate) fn start_graceful_deletion(pod: &mut Value, grace: i64, now: SystemTime) -> bool {
    let current = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if pod.pointer("/metadata/deletionTimestamp").is_some() && current.is_some_and(|c| c <= grace) {
        return false;
    }
    // A grace period beyond any calendar still gets a timestamp RFC 3339 can write.
    let deadline = now + Duration::from_secs(grace.unsigned_abs().min(MAX_DEADLINE_SECONDS));
    if let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "deletionTimestamp".into(),
            json!(crate::objects::rfc3339(deadline)),
        );
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
    true
}

/// Sets a pod's grace period to 0 (its containers are gone, or never ran); whether it changed.
pub(crate) fn end_grace_period(pod: &mut Value) -> bool {
    let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) else {
        return false;
    };
    if meta
        .get("deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        == Some(0)
    {
        return false;
    }
    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_come_from_the_body_and_the_query() {
        let options = DeleteOptions::parse(
            br#"{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":5,"propagationPolicy":"Background",
                 "preconditions":{"uid":"u1","resourceVersion":"7"},"dryRun":["All"]}"#,
            &query(&[]),
        )
        .unwrap_or_default();
        assert_eq!(options.grace_period, Some(5));
        assert_eq!(options.precondition_uid.as_deref(), Some("u1"));
        assert_eq!(options.precondition_resource_version.as_deref(), Some("7"));
        assert!(options.dry_run);
        let options = DeleteOptions::parse(b"", &query(&[("gracePeriodSeconds", "0")]));
        assert_eq!(options.map(|o| o.grace_period), Ok(Some(0)));
        let bad = DeleteOptions::parse(br#"{"propagationPolicy":"Sideways"}"#, &query(&[]));
        assert_eq!(bad.map_err(|e| e.code), Err(422));
        let both = DeleteOptions::parse(
            br#"{"propagationPolicy":"Orphan","orphanDependents":true}"#,
            &query(&[]),
        );
        assert_eq!(both.map_err(|e| e.code), Err(422));
        assert_eq!(
            DeleteOptions::parse(b"[1]", &query(&[])).map_err(|e| e.code),
            Err(400)
        );
    }

    #[test]
    fn propagation_comes_from_the_policy_or_orphan_dependents() {
        let parse = |body: &[u8], pairs: &[(&str, &str)]| {
            DeleteOptions::parse(body, &query(pairs)).map(|o| o.propagation)
        };
        assert_eq!(parse(b"", &[]), Ok(None));
        assert_eq!(
            parse(b"", &[("propagationPolicy", "Foreground")]),
            Ok(Some(Propagation::Foreground))
        );
        assert_eq!(
            parse(br#"{"propagationPolicy":"Orphan"}"#, &[]),
            Ok(Some(Propagation::Orphan))
        );
        assert_eq!(
            parse(br#"{"orphanDependents":true}"#, &[]),
            Ok(Some(Propagation::Orphan))
        );
        assert_eq!(
            parse(b"", &[("orphanDependents", "false")]),
            Ok(Some(Propagation::Background))
        );
        assert_eq!(
            parse(b"", &[("orphanDependents", "maybe")]).map_err(|e| e.code),
            Err(400)
        );
    }

    #[test]
    fn propagation_sets_its_finalizer_and_drops_the_other() {
        let mut object = json!({"metadata": {"finalizers": ["example.com/keep", "orphan"]}});
        assert!(Propagation::Foreground.set_finalizers(&mut object));
        assert_eq!(
            object["metadata"]["finalizers"],
            json!(["example.com/keep", "foregroundDeletion"])
        );
        assert!(!Propagation::Foreground.set_finalizers(&mut object));
        assert!(Propagation::Background.set_finalizers(&mut object));
        assert_eq!(
            object["metadata"]["finalizers"],
            json!(["example.com/keep"])
        );
        let mut bare = json!({"metadata": {}});
        assert!(!Propagation::Background.set_finalizers(&mut bare));
        assert!(bare["metadata"].get("finalizers").is_none());
        assert!(Propagation::Orphan.set_finalizers(&mut bare));
        assert_eq!(bare["metadata"]["finalizers"], json!(["orphan"]));
    }

    #[test]
    fn preconditions_name_the_mismatch() {
        let object = json!({"metadata": {"uid": "real", "resourceVersion": "9"}});
        let options = DeleteOptions {
            precondition_uid: Some("other".into()),
            ..DeleteOptions::default()
        };
        let error = options.check_preconditions(&object).err();
        assert_eq!(
            error.map(|e| (e.code, e.message)),
            Some((
                409,
                "Precondition failed: UID in precondition: other, UID in object meta: real".into()
            ))
        );
        let options = DeleteOptions {
            precondition_resource_version: Some("9".into()),
            ..DeleteOptions::default()
        };
        assert!(options.check_preconditions(&object).is_ok());
    }

    #[test]
    fn only_running_scheduled_pods_stop_gracefully() {
        let options = DeleteOptions::default();
        let unscheduled = json!({"spec": {"terminationGracePeriodSeconds": 30}});
        assert_eq!(options.pod_grace_period(&unscheduled), None);
        let running = json!({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 12}});
        assert_eq!(options.pod_grace_period(&running), Some(12));
        let finished = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}});
        assert_eq!(options.pod_grace_period(&finished), None);
        let forced = DeleteOptions {
            grace_period: Some(0),
            ..DeleteOptions::default()
        };
        assert_eq!(forced.pod_grace_period(&running), None);

        let mut pod = running.clone();
        pod["metadata"] = json!({});
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(start_graceful_deletion(&mut pod, 12, now));
        assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 12);
        assert!(
            !start_graceful_deletion(&mut pod, 20, now),
            "a longer grace period changes nothing"
        );
        assert!(
            start_graceful_deletion(&mut pod, 1, now),
            "a shorter one shortens it"
        );
        assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 1);
    }
}

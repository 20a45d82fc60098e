//! API errors as Kubernetes `Status` objects, built like apimachinery's `pkg/api/errors` constructors.

use std::fmt;

use gantry_store::StoreError;
use serde::Serialize;
use serde_json::Value;

use crate::field::{FieldError, aggregate_message, go_quote};

/// What Kubernetes' registry says when a compare-and-swap update lost the race.
pub const OPTIMISTIC_LOCK_ERROR_MSG: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// `resource.group`, as error messages name resources (`pods`, `deployments.apps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupResource<'a> {
    pub group: &'a str,
    pub resource: &'a str,
}

impl<'a> GroupResource<'a> {
    pub fn new(group: &'a str, resource: &'a str) -> Self {
        Self { group, resource }
    }
}

impl fmt::Display for GroupResource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.group {
            "" => f.write_str(self.resource),
            g => write!(f, "{}.{g}", self.resource),
        }
    }
}

/// `Kind.group`, as 422 Invalid names the object (`Pod`, `Deployment.apps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupKind<'a> {
    pub group: &'a str,
    pub kind: &'a str,
}

impl<'a> GroupKind<'a> {
    pub fn new(group: &'a str, kind: &'a str) -> Self {
        Self { group, kind }
    }
}

impl fmt::Display for GroupKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.group {
            "" => f.write_str(self.kind),
            g => write!(f, "{}.{g}", self.kind),
        }
    }
}

/// `metav1.StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct StatusCause {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// `metav1.StatusDetails`. Note that `kind` holds the *resource* for most errors, as in Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    #[serde(skip_serializing_if = "is_zero")]
    pub retry_after_seconds: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// A failed request: HTTP code, `Status.reason`, message and details. `to_status` gives the body to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    /// `metav1.StatusReason`, e.g. `NotFound`, `AlreadyExists`, `Invalid`.
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<StatusDetails>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: Empty,
    status: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a StatusDetails>,
    code: u16,
}

#[derive(Serialize)]
struct Empty {}

fn details(gr: GroupResource<'_>, name: &str) -> Option<StatusDetails> {
    Some(StatusDetails {
        name: name.to_owned(),
        group: gr.group.to_owned(),
        kind: gr.resource.to_owned(),
        ..StatusDetails::default()
    })
}

impl ApiError {
    fn new(
        code: u16,
        reason: &'static str,
        message: impl Into<String>,
        details: Option<StatusDetails>,
    ) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: details.map(Box::new),
        }
    }

    /// The `Status` object, in Kubernetes' field order.
    pub fn to_status(&self) -> Value {
        serde_json::to_value(self.status_body()).unwrap_or(Value::Null)
    }

    /// The `Status` object serialized, ready for a response body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.status_body()).unwrap_or_default()
    }

    fn status_body(&self) -> StatusBody<'_> {
        StatusBody {
            kind: "Status",
            api_version: "v1",
            metadata: Empty {},
            status: "Failure",
            message: &self.message,
            reason: self.reason,
            details: self.details.as_deref(),
            code: self.code,
        }
    }

    /// Seconds for a `Retry-After` header, where the error asks the client to come back.
    pub fn retry_after_seconds(&self) -> Option<i32> {
        self.details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
    }

    /// 404 `pods "x" not found`.
    pub fn not_found(gr: GroupResource<'_>, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{gr} {qn} not found", qn = go_quote(name)),
            details(gr, name),
        )
    }

    /// 409 `pods "x" already exists`.
    pub fn already_exists(gr: GroupResource<'_>, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{gr} {qn} already exists", qn = go_quote(name)),
            details(gr, name),
        )
    }

    /// 409 AlreadyExists for a generated name that collided: the client should retry.
    pub fn generate_name_conflict(
        gr: GroupResource<'_>,
        name: &str,
        retry_after_seconds: i32,
    ) -> Self {
        let msg = format!(
            "{gr} {qn} already exists, the server was not able to generate a unique name for the object",
            qn = go_quote(name)
        );
        let mut details = details(gr, name);
        if let Some(d) = details.as_mut() {
            d.retry_after_seconds = retry_after_seconds;
        }
        Self::new(409, "AlreadyExists", msg, details)
    }

    /// 409 Conflict for a stale `resourceVersion`:
    /// `Operation cannot be fulfilled on pods "x": the object has been modified; please apply ...`.
    pub fn conflict(gr: GroupResource<'_>, name: &str) -> Self {
        Self::conflict_with(gr, name, OPTIMISTIC_LOCK_ERROR_MSG)
    }

    /// 409 Conflict with another cause: `Operation cannot be fulfilled on pods "x": <cause>`.
    pub fn conflict_with(gr: GroupResource<'_>, name: &str, cause: impl fmt::Display) -> Self {
        let msg = format!(
            "Operation cannot be fulfilled on {gr} {qn}: {cause}",
            qn = go_quote(name)
        );
        Self::new(409, "Conflict", msg, details(gr, name))
    }

    /// 422 Invalid: `Pod "x" is invalid: <errors>`, one cause per field error.
    pub fn invalid(gk: GroupKind<'_>, name: &str, errors: &[FieldError]) -> Self {
        let causes = errors
            .iter()
            .map(|e| StatusCause {
                reason: e.kind.as_str().to_owned(),
                message: e.body(),
                field: e.field.clone(),
            })
            .collect();
        let msg = match aggregate_message(errors) {
            agg if agg.is_empty() => format!("{gk} {qn} is invalid", qn = go_quote(name)),
            agg => format!("{gk} {qn} is invalid: {agg}", qn = go_quote(name)),
        };
        let details = StatusDetails {
            name: name.to_owned(),
            group: gk.group.to_owned(),
            kind: gk.kind.to_owned(),
            causes,
            ..StatusDetails::default()
        };
        Self::new(422, "Invalid", msg, Some(details))
    }

    /// 400 BadRequest with the message as given.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    /// 401 Unauthorized; an empty message becomes `not authorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        let message = message.into();
        let message = if message.is_empty() {
            "not authorized".to_owned()
        } else {
            message
        };
        Self::new(401, "Unauthorized", message, None)
    }

    /// 403 Forbidden: `pods "x" is forbidden: <reason>` (without a name: `pods is forbidden: ...`; without a
    /// resource: `forbidden: ...`).
    pub fn forbidden(gr: GroupResource<'_>, name: &str, reason: impl fmt::Display) -> Self {
        let msg = if gr.group.is_empty() && gr.resource.is_empty() {
            format!("forbidden: {reason}")
        } else if name.is_empty() {
            format!("{gr} is forbidden: {reason}")
        } else {
            format!("{gr} {qn} is forbidden: {reason}", qn = go_quote(name))
        };
        Self::new(403, "Forbidden", msg, details(gr, name))
    }

    /// 405 MethodNotAllowed: `<action> is not supported on resources of kind "pods"`.
    pub fn method_not_supported(gr: GroupResource<'_>, action: &str) -> Self {
        let msg = format!(
            "{action} is not supported on resources of kind {}",
            go_quote(&gr.to_string())
        );
        Self::new(405, "MethodNotAllowed", msg, details(gr, ""))
    }

    /// 406 NotAcceptable: `only the following media types are accepted: a, b`.
    pub fn not_acceptable(accepted: &[&str]) -> Self {
        let msg = format!(
            "only the following media types are accepted: {}",
            accepted.join(", ")
        );
        Self::new(406, "NotAcceptable", msg, None)
    }

    /// 410 Gone with the message as given.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Gone", message, None)
    }

    /// 410 Expired with the message as given (e.g. an expired continue token).
    pub fn resource_expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message, None)
    }

    /// 410 Expired `too old resource version: <requested> (<oldest available>)`, as a watch from a compacted
    /// revision gets.
    pub fn too_old_resource_version(requested: i64, oldest: i64) -> Self {
        Self::resource_expired(format!("too old resource version: {requested} ({oldest})"))
    }

    /// 413 RequestEntityTooLarge: `Request entity too large: <message>`.
    pub fn request_entity_too_large(message: impl fmt::Display) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: {message}"),
            None,
        )
    }

    /// 415 UnsupportedMediaType: `the body of the request was in an unknown format - accepted media types include: ...`.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        let msg = format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        );
        Self::new(415, "UnsupportedMediaType", msg, None)
    }

    /// 429 TooManyRequests with the message as given and a `Retry-After`.
    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: i32) -> Self {
        let details = StatusDetails {
            retry_after_seconds,
            ..StatusDetails::default()
        };
        Self::new(429, "TooManyRequests", message, Some(details))
    }

    /// 500 InternalError: `Internal error occurred: <err>`, with the error as the one cause.
    pub fn internal(err: impl fmt::Display) -> Self {
        let err = err.to_string();
        let details = StatusDetails {
            causes: vec![StatusCause {
                message: err.clone(),
                ..StatusCause::default()
            }],
            ..StatusDetails::default()
        };
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {err}"),
            Some(details),
        )
    }

    /// 500 ServerTimeout: `The <operation> operation against <resource> could not be completed at this time, please try again.`
    pub fn server_timeout(
        gr: GroupResource<'_>,
        operation: &str,
        retry_after_seconds: i32,
    ) -> Self {
        let msg = format!(
            "The {operation} operation against {gr} could not be completed at this time, please try again."
        );
        let mut details = details(gr, operation);
        if let Some(d) = details.as_mut() {
            d.retry_after_seconds = retry_after_seconds;
        }
        Self::new(500, "ServerTimeout", msg, details)
    }

    /// 503 ServiceUnavailable with the message as given.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message, None)
    }

    /// 504 Timeout: `Timeout: <message>`.
    pub fn timeout(message: impl fmt::Display, retry_after_seconds: i32) -> Self {
        let details = StatusDetails {
            retry_after_seconds,
            ..StatusDetails::default()
        };
        Self::new(504, "Timeout", format!("Timeout: {message}"), Some(details))
    }

    /// 504 Timeout for a read at a revision the server has not reached yet (`Too large resource version`),
    /// with Kubernetes' `ResourceVersionTooLarge` cause and a 1 s retry.
    pub fn too_large_resource_version(requested: i64, current: i64) -> Self {
        let mut err = Self::timeout(
            format!("Too large resource version: {requested}, current: {current}"),
            1,
        );
        if let Some(d) = err.details.as_mut() {
            d.causes = vec![StatusCause {
                reason: "ResourceVersionTooLarge".to_owned(),
                message: "Too large resource version".to_owned(),
                field: String::new(),
            }];
        }
        err
    }

    /// A store error with the resource and name it concerns, so messages read as Kubernetes' do
    /// (`pods "x" not found`). Where the name does not matter, `From<StoreError>` does the same with the key.
    pub fn from_store(err: StoreError, gr: GroupResource<'_>, name: &str) -> Self {
        match err {
            StoreError::AlreadyExists { .. } => Self::already_exists(gr, name),
            StoreError::NotFound { .. } => Self::not_found(gr, name),
            StoreError::Conflict { .. } => Self::conflict(gr, name),
            other => other.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::AlreadyExists { .. } => {
                Self::new(409, "AlreadyExists", err.to_string(), None)
            }
            StoreError::NotFound { .. } => Self::new(404, "NotFound", err.to_string(), None),
            StoreError::Conflict { .. } => Self::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled: {OPTIMISTIC_LOCK_ERROR_MSG}"),
                None,
            ),
            StoreError::Compacted {
                requested,
                compacted,
            } => Self::too_old_resource_version(requested, compacted),
            StoreError::FutureRevision { requested, current } => {
                Self::too_large_resource_version(requested, current)
            }
            StoreError::InvalidArgument(msg) => Self::bad_request(msg),
            StoreError::Unavailable(_) => Self::service_unavailable(err.to_string()),
            StoreError::Internal(_) => Self::internal(err),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use gantry_store::KeyValue;
    use serde_json::json;

    const PODS: GroupResource<'static> = GroupResource {
        group: "",
        resource: "pods",
    };
    const DEPLOY: GroupResource<'static> = GroupResource {
        group: "apps",
        resource: "deployments",
    };

    #[test]
    fn not_found_is_kubernetes_status() {
        let err = ApiError::not_found(PODS, "x");
        assert_eq!(
            err.to_status(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"pods \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404})
        );
        // Field order as Kubernetes writes it.
        let text = String::from_utf8(err.to_json()).unwrap();
        assert!(
            text.starts_with(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message""#
            ),
            "{text}"
        );
        assert!(
            text.ends_with(r#""details":{"name":"x","kind":"pods"},"code":404}"#),
            "{text}"
        );
        assert_eq!(
            ApiError::not_found(DEPLOY, "d").message,
            "deployments.apps \"d\" not found"
        );
        assert_eq!(
            ApiError::not_found(DEPLOY, "d").to_status()["details"]["group"],
            "apps"
        );
    }

    #[test]
    fn messages_and_codes() {
        let cases: Vec<(ApiError, u16, &str, &str)> = vec![
            (
                ApiError::already_exists(PODS, "x"),
                409,
                "AlreadyExists",
                "pods \"x\" already exists",
            ),
            (
                ApiError::generate_name_conflict(PODS, "x-abcde", 1),
                409,
                "AlreadyExists",
                "pods \"x-abcde\" already exists, the server was not able to generate a unique name for the object",
            ),
            (
                ApiError::conflict(PODS, "x"),
                409,
                "Conflict",
                "Operation cannot be fulfilled on pods \"x\": the object has been modified; please apply your changes to the latest version and try again",
            ),
            (
                ApiError::conflict_with(DEPLOY, "d", "nope"),
                409,
                "Conflict",
                "Operation cannot be fulfilled on deployments.apps \"d\": nope",
            ),
            (ApiError::bad_request("bad"), 400, "BadRequest", "bad"),
            (
                ApiError::unauthorized(""),
                401,
                "Unauthorized",
                "not authorized",
            ),
            (
                ApiError::unauthorized("Unauthorized"),
                401,
                "Unauthorized",
                "Unauthorized",
            ),
            (
                ApiError::forbidden(PODS, "x", "User \"u\" cannot get resource \"pods\""),
                403,
                "Forbidden",
                "pods \"x\" is forbidden: User \"u\" cannot get resource \"pods\"",
            ),
            (
                ApiError::forbidden(PODS, "", "no"),
                403,
                "Forbidden",
                "pods is forbidden: no",
            ),
            (
                ApiError::forbidden(GroupResource::default(), "", "no"),
                403,
                "Forbidden",
                "forbidden: no",
            ),
            (
                ApiError::method_not_supported(PODS, "patch"),
                405,
                "MethodNotAllowed",
                "patch is not supported on resources of kind \"pods\"",
            ),
            (
                ApiError::not_acceptable(&["application/json", "application/yaml"]),
                406,
                "NotAcceptable",
                "only the following media types are accepted: application/json, application/yaml",
            ),
            (ApiError::gone("gone"), 410, "Gone", "gone"),
            (
                ApiError::too_old_resource_version(5, 10),
                410,
                "Expired",
                "too old resource version: 5 (10)",
            ),
            (
                ApiError::request_entity_too_large("limit is 3145728"),
                413,
                "RequestEntityTooLarge",
                "Request entity too large: limit is 3145728",
            ),
            (
                ApiError::unsupported_media_type(&["application/json"]),
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json",
            ),
            (
                ApiError::too_many_requests("slow down", 1),
                429,
                "TooManyRequests",
                "slow down",
            ),
            (
                ApiError::internal("boom"),
                500,
                "InternalError",
                "Internal error occurred: boom",
            ),
            (
                ApiError::server_timeout(PODS, "create", 2),
                500,
                "ServerTimeout",
                "The create operation against pods could not be completed at this time, please try again.",
            ),
            (
                ApiError::service_unavailable("down"),
                503,
                "ServiceUnavailable",
                "down",
            ),
            (
                ApiError::timeout("slow", 0),
                504,
                "Timeout",
                "Timeout: slow",
            ),
        ];
        for (err, code, reason, msg) in cases {
            assert_eq!(
                (err.code, err.reason, err.message.as_str()),
                (code, reason, msg)
            );
            let status = err.to_status();
            assert_eq!(status["code"], code);
            assert_eq!(status["reason"], reason);
            assert_eq!(status["message"], msg);
            assert_eq!(err.to_string(), msg);
        }
        assert_eq!(
            ApiError::too_many_requests("x", 3).retry_after_seconds(),
            Some(3)
        );
        assert_eq!(ApiError::bad_request("x").retry_after_seconds(), None);
        assert_eq!(ApiError::bad_request("x").to_status().get("details"), None);
        assert_eq!(
            ApiError::internal("boom").to_status()["details"],
            json!({"causes":[{"message":"boom"}]})
        );
        // Kubernetes' NewTimeoutError always sets (possibly empty) details.
        assert_eq!(
            ApiError::timeout("slow", 0).to_status()["details"],
            json!({})
        );
    }

    #[test]
    fn invalid_lists_causes() {
        let errs = [
            FieldError::invalid("metadata.name", "A", "bad name"),
            FieldError::required("spec.containers", ""),
        ];
        let err = ApiError::invalid(GroupKind::new("", "Pod"), "A", &errs);
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "Pod \"A\" is invalid: [metadata.name: Invalid value: \"A\": bad name, spec.containers: Required value]"
        );
        assert_eq!(
            err.to_status()["details"],
            json!({"name":"A","kind":"Pod","causes":[
                {"reason":"FieldValueInvalid","message":"Invalid value: \"A\": bad name","field":"metadata.name"},
                {"reason":"FieldValueRequired","message":"Required value","field":"spec.containers"}]})
        );
        let one = ApiError::invalid(GroupKind::new("apps", "Deployment"), "d", &errs[1..]);
        assert_eq!(
            one.message,
            "Deployment.apps \"d\" is invalid: spec.containers: Required value"
        );
        assert_eq!(
            ApiError::invalid(GroupKind::new("", "Pod"), "p", &[]).message,
            "Pod \"p\" is invalid"
        );
    }

    #[test]
    fn store_errors_map() {
        let key = Bytes::from_static(b"/registry/pods/default/x");
        let kv = KeyValue {
            key: key.clone(),
            value: Bytes::new(),
            create_revision: 1,
            mod_revision: 3,
        };
        let cases: Vec<(StoreError, u16, &str)> = vec![
            (
                StoreError::AlreadyExists { key: key.clone() },
                409,
                "AlreadyExists",
            ),
            (StoreError::NotFound { key: key.clone() }, 404, "NotFound"),
            (
                StoreError::Conflict {
                    key: key.clone(),
                    expected: 2,
                    current: Box::new(kv),
                },
                409,
                "Conflict",
            ),
            (
                StoreError::Compacted {
                    requested: 3,
                    compacted: 7,
                },
                410,
                "Expired",
            ),
            (
                StoreError::FutureRevision {
                    requested: 9,
                    current: 4,
                },
                504,
                "Timeout",
            ),
            (StoreError::InvalidArgument("bad".into()), 400, "BadRequest"),
            (
                StoreError::Unavailable("down".into()),
                503,
                "ServiceUnavailable",
            ),
            (StoreError::Internal("corrupt".into()), 500, "InternalError"),
        ];
        for (store_err, code, reason) in cases {
            let err = ApiError::from(store_err.clone());
            assert_eq!((err.code, err.reason), (code, reason), "{store_err}");
            let refined = ApiError::from_store(store_err, PODS, "x");
            assert_eq!((refined.code, refined.reason), (code, reason));
        }
        let e = ApiError::from(StoreError::Compacted {
            requested: 3,
            compacted: 7,
        });
        assert_eq!(e.message, "too old resource version: 3 (7)");
        let e = ApiError::from(StoreError::FutureRevision {
            requested: 9,
            current: 4,
        });
        assert_eq!(
            e.message,
            "Timeout: Too large resource version: 9, current: 4"
        );
        assert_eq!(
            e.to_status()["details"],
            json!({"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}],"retryAfterSeconds":1})
        );
        assert_eq!(
            ApiError::from(StoreError::InvalidArgument("bad".into())).message,
            "bad"
        );
        assert_eq!(
            ApiError::from(StoreError::Internal("corrupt".into())).message,
            "Internal error occurred: store failure: corrupt"
        );
        let e = ApiError::from_store(StoreError::NotFound { key: key.clone() }, PODS, "x");
        assert_eq!(e.message, "pods \"x\" not found");
        let e = ApiError::from_store(StoreError::AlreadyExists { key }, PODS, "x");
        assert_eq!(e.message, "pods \"x\" already exists");
    }
}

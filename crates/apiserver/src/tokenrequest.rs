//! Service account tokens: the `serviceaccounts/<name>/token` subresource (an `authentication.k8s.io/v1`
//! TokenRequest answered with a signed ES256 JWT, as `kubectl create token` asks) and the authentication of
//! bearer tokens that are such JWTs.
//!
//! A token authenticates while its signature, times and audience hold and the service account (and the
//! Pod, Secret or Node it is bound to) still exists with the uid it names. Those objects are looked up in
//! the watch cache; only a miss waits for the cache to catch up with the store (an object created a moment
//! ago), so a valid token costs no store round trip.

use std::time::{Duration, SystemTime};

use gantry_api::field::FieldError;
use gantry_api::{ApiError, GroupKind, GroupResource, registry};
use gantry_pki::{
    Identity, ObjectRef, SERVICE_ACCOUNT_ISSUER, ServiceAccountClaims, ServiceAccountKey,
};
use gantry_watch_cache::WatchCache;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::objects;
use crate::response::{self, Response};
use crate::rest::Call;

/// The audience of the API server itself (`--api-audiences`' default): tokens for others do not log in.
pub(crate) const API_AUDIENCE: &str = SERVICE_ACCOUNT_ISSUER;
const DEFAULT_EXPIRATION_SECONDS: i64 = 60 * 60;
const MIN_EXPIRATION_SECONDS: i64 = 10 * 60;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The lifetime kubelets ask for; such pod-bound tokens for the API server live a year but carry
/// `warnafter` (upstream's `--service-account-extend-token-expiration`, on by default).
const WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS: i64 = 60 * 60 + 7;
const EXPIRATION_EXTENSION_SECONDS: i64 = 24 * 365 * 60 * 60;

const TOKEN_REQUEST: GroupKind<'static> = GroupKind {
    group: "authentication.k8s.io",
    kind: "TokenRequest",
};

/// What a TokenRequest asks for, defaulted and validated.
#[derive(Debug, Clone, PartialEq)]
struct TokenSpec {
    audiences: Vec<String>,
    expiration_seconds: i64,
    bound: Option<BoundRef>,
}

/// `spec.boundObjectRef`.
#[derive(Debug, Clone, PartialEq)]
struct BoundRef {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
}

impl BoundRef {
    /// The group of `apiVersion` (`v1` is the core group's).
    fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// As Go prints a GroupVersionKind: `/v1, Kind=Foo`.
    fn gvk(&self) -> String {
        let (group, version) = self
            .api_version
            .rsplit_once('/')
            .unwrap_or(("", &self.api_version));
        format!("{group}/{version}, Kind={}", self.kind)
    }
}

/// Reads the request body: `metadata.name`/`namespace` must match the URL's if set, the spec gets its
/// defaults (written back into `request`) and upstream's validation (422).
fn token_spec(request: &mut Value, name: &str, namespace: &str) -> Result<TokenSpec, ApiError> {
    let meta_str = |field: &str| {
        request
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    for (field, url, what) in [
        ("name", name, "name"),
        ("namespace", namespace, "namespace"),
    ] {
        let given = meta_str(field);
        if !given.is_empty() && given != url {
            return Err(ApiError::invalid(
                TOKEN_REQUEST,
                name,
                &[FieldError::invalid(
                    format!("metadata.{field}"),
                    given,
                    format!("must match the service account {what} if specified"),
                )],
            ));
        }
    }
    if !request.get("spec").is_some_and(Value::is_object) {
        request["spec"] = json!({});
    }
    let spec = &mut request["spec"];
    let audiences: Vec<String> = match spec.get("audiences").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad_request("spec.audiences must be a list of strings"))?,
        _ => vec![API_AUDIENCE.to_owned()],
    };
    spec["audiences"] = json!(audiences);
    let expiration_seconds = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(value) => value
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    spec["expirationSeconds"] = json!(expiration_seconds);
    let invalid = |detail: &str| {
        ApiError::invalid(
            TOKEN_REQUEST,
            "",
            &[FieldError::invalid(
                "spec.expirationSeconds",
                expiration_seconds,
                detail,
            )],
        )
    };
    if expiration_seconds < MIN_EXPIRATION_SECONDS {
        return Err(invalid("may not specify a duration less than 10 minutes"));
    }
    if expiration_seconds > MAX_EXPIRATION_SECONDS {
        return Err(invalid(
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let bound = match spec.get("boundObjectRef") {
        Some(bound) if bound.is_object() => {
            let field = |f: &str| {
                bound
                    .get(f)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Some(BoundRef {
                api_version: field("apiVersion"),
                kind: field("kind"),
                name: field("name"),
                uid: field("uid"),
            })
        }
        _ => None,
    };
    Ok(TokenSpec {
        audiences,
        expiration_seconds,
        bound,
    })
}

/// The lifetime written into the token and its `warnafter`: kubelets' pod-bound tokens for the API server
/// are extended to a year (see [`WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS`]).
fn lifetime(spec: &TokenSpec, pod_bound: bool) -> (i64, Option<i64>) {
    let for_api_only = spec.audiences.iter().all(|a| a == API_AUDIENCE);
    if pod_bound
        && for_api_only
        && spec.expiration_seconds == WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS
    {
        (EXPIRATION_EXTENSION_SECONDS, Some(spec.expiration_seconds))
    } else {
        (spec.expiration_seconds, None)
    }
}

impl Call<'_> {
    /// POST `serviceaccounts/<name>/token`: a token for the service account, 201 with the TokenRequest
    /// and `status.token`, `status.expirationTimestamp`.
    pub(crate) async fn token_request(
        &self,
        name: &str,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let namespace = self.request.namespace.as_deref().unwrap_or_default();
        let mut request = serde_json::from_slice::<Value>(body)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| {
                ApiError::bad_request("the body of the request must be a JSON object")
            })?;
        let spec = token_spec(&mut request, name, namespace)?;
        let account = objects::decode(&self.read(name).await?)?;
        let now = SystemTime::now();
        let mut pod_bound = false;
        let mut bindings = Bindings::default();
        if let Some(bound) = &spec.bound {
            let (object, node) = self.bound_object(name, namespace, bound).await?;
            let uid = uid_of(&object);
            if !bound.uid.is_empty() && bound.uid != uid {
                return Err(ApiError::conflict_with(
                    GroupResource::new(bound.group(), &bound.kind),
                    &bound.name,
                    format!(
                        "the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated",
                        bound.uid
                    ),
                ));
            }
            let reference = ObjectRef {
                name: bound.name.clone(),
                uid,
            };
            match bound.kind.as_str() {
                "Pod" => {
                    pod_bound = true;
                    bindings.pod = Some(reference);
                    bindings.node = node;
                }
                "Secret" => bindings.secret = Some(reference),
                _ => bindings.node = Some(reference),
            }
        }
        let (seconds, warn_after) = lifetime(&spec, pod_bound);
        let account_ref = ObjectRef {
            name: name.to_owned(),
            uid: uid_of(&account),
        };
        let mut claims =
            ServiceAccountClaims::new(namespace, account_ref, spec.audiences.clone(), now, seconds);
        claims.kubernetes.pod = bindings.pod;
        claims.kubernetes.secret = bindings.secret;
        claims.kubernetes.node = bindings.node;
        claims.kubernetes.warnafter = warn_after.map(|w| claims.iat + w);
        let token = self
            .service_account_key
            .issue(&claims)
            .map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;
        let expires = now + Duration::from_secs(spec.expiration_seconds.unsigned_abs());
        request["apiVersion"] = json!("authentication.k8s.io/v1");
        request["kind"] = json!("TokenRequest");
        let meta = objects::metadata_mut(&mut request)?;
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(namespace));
        meta.insert("creationTimestamp".into(), json!(objects::rfc3339(now)));
        request["status"] = json!({
            "token": token,
            "expirationTimestamp": objects::rfc3339(expires),
        });
        Ok(response::json(StatusCode::CREATED, &request))
    }

    /// The object a token is to be bound to (404 if missing) and, for a pod on a node, that node (its name
    /// only when the Node is missing, as upstream).
    async fn bound_object(
        &self,
        account: &str,
        namespace: &str,
        bound: &BoundRef,
    ) -> Result<(Value, Option<ObjectRef>), ApiError> {
        let plural = match (bound.group(), bound.kind.as_str()) {
            ("", "Pod") => "pods",
            ("", "Secret") => "secrets",
            ("", "Node") => "nodes",
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {}",
                    bound.gvk()
                )));
            }
        };
        let scope = (plural != "nodes").then_some(namespace);
        let object = self.read_other(plural, scope, &bound.name).await?;
        let object = object
            .ok_or_else(|| ApiError::not_found(GroupResource::new("", plural), &bound.name))?;
        if plural != "pods" {
            return Ok((object, None));
        }
        let service_account = object
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if service_account != account {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
            )));
        }
        let node_name = object
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if node_name.is_empty() {
            return Ok((object, None));
        }
        let node = self.read_other("nodes", None, node_name).await?;
        let node = ObjectRef {
            name: node_name.to_owned(),
            uid: node.as_ref().map(uid_of).unwrap_or_default(),
        };
        Ok((object, Some(node)))
    }

    /// A core object of another resource, from the store; `None` when it does not exist.
    async fn read_other(
        &self,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        let key = object_key(plural, namespace, name);
        let found = self
            .store
            .get(key.as_bytes(), None)
            .await
            .map_err(|e| ApiError::from_store(e, GroupResource::new("", plural), name))?;
        found.map(|kv| objects::decode(&kv)).transpose()
    }
}

/// What a token is bound to.
#[derive(Default)]
struct Bindings {
    pod: Option<ObjectRef>,
    secret: Option<ObjectRef>,
    node: Option<ObjectRef>,
}

fn uid_of(object: &Value) -> String {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The store key of a core object.
fn object_key(plural: &str, namespace: Option<&str>, name: &str) -> String {
    let prefix = registry::find("", "v1", plural)
        .map(|r| r.store_prefix())
        .unwrap_or_else(|| format!("/registry/core/{plural}/"));
    match namespace {
        Some(ns) => format!("{prefix}{ns}/{name}"),
        None => format!("{prefix}{name}"),
    }
}

/// The identity of `token` if it is a valid service account token of `key` whose service account (and
/// bound object) still exist with the uids it names; `None` otherwise (the caller answers 401).
pub(crate) async fn authenticate(
    key: &ServiceAccountKey,
    cache: &WatchCache,
    token: &str,
) -> Option<Identity> {
    let now = SystemTime::now();
    let claims = match key.verify(token, &[API_AUDIENCE], now) {
        Ok(claims) => claims,
        Err(e) => {
            tracing::debug!("service account token refused: {e}");
            return None;
        }
    };
    let k8s = &claims.kubernetes;
    let namespace = Some(k8s.namespace.as_str());
    let mut required = vec![("serviceaccounts", namespace, &k8s.serviceaccount)];
    required.extend(k8s.pod.iter().map(|pod| ("pods", namespace, pod)));
    required.extend(
        k8s.secret
            .iter()
            .map(|secret| ("secrets", namespace, secret)),
    );
    // A pod's node is informational; a token bound to a Node needs it.
    if k8s.pod.is_none() {
        required.extend(k8s.node.iter().map(|node| ("nodes", None, node)));
    }
    for (plural, namespace, reference) in required {
        let key = object_key(plural, namespace, &reference.name);
        if !live(cache, &key, &reference.uid, now) {
            // Perhaps created a moment ago: once the cache holds every acknowledged write, ask again.
            if !matches!(cache.wait_fresh().await, Ok(true))
                || !live(cache, &key, &reference.uid, now)
            {
                tracing::debug!(
                    "service account token of {} refused: {plural} {:?} is gone or was replaced",
                    claims.sub,
                    reference.name
                );
                return None;
            }
        }
    }
    Some(Identity {
        user: claims.user(),
        groups: claims.groups(),
    })
}

/// Whether the cache holds the object at `key` with `uid`, not deleted longer ago than the leeway.
fn live(cache: &WatchCache, key: &str, uid: &str, now: SystemTime) -> bool {
    #[derive(Deserialize)]
    struct Object {
        metadata: Metadata,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Metadata {
        #[serde(default)]
        uid: String,
        deletion_timestamp: Option<String>,
    }
    let (_, Some(cached)) = cache.get(key.as_bytes()) else {
        return false;
    };
    let Ok(object) = serde_json::from_slice::<Object>(&cached.json) else {
        return false;
    };
    if object.metadata.uid != uid {
        return false;
    }
    match object.metadata.deletion_timestamp {
        None => true,
        Some(at) => deleted_recently(&at, now),
    }
}

/// Whether an object marked for deletion at `at` (RFC 3339) still counts: not before now minus the leeway.
fn deleted_recently(at: &str, now: SystemTime) -> bool {
    let leeway = Duration::from_secs(gantry_pki::LEEWAY_SECONDS.unsigned_abs());
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .is_ok_and(|at| at + leeway >= now)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn spec_of(mut body: Value) -> Result<(TokenSpec, Value), ApiError> {
        token_spec(&mut body, "robot", "ns1").map(|spec| (spec, body))
    }

    #[test]
    fn kubectls_request_gets_the_defaults() {
        // What `kubectl create token robot` sends: nulls for everything it leaves unset.
        let (spec, body) = spec_of(json!({
            "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"audiences": null, "expirationSeconds": null, "boundObjectRef": null},
            "status": {"token": "", "expirationTimestamp": null}
        }))
        .unwrap();
        assert_eq!(
            spec,
            TokenSpec {
                audiences: vec![API_AUDIENCE.into()],
                expiration_seconds: 3600,
                bound: None
            }
        );
        assert_eq!(body["spec"]["audiences"], json!([API_AUDIENCE]));
        assert_eq!(body["spec"]["expirationSeconds"], 3600);
        let (spec, _) = spec_of(
            json!({"spec": {"audiences": ["a", "b"], "expirationSeconds": 7200,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u"}}}),
        )
        .unwrap();
        assert_eq!(spec.audiences, ["a", "b"]);
        assert_eq!(spec.expiration_seconds, 7200);
        let bound = spec.bound.unwrap();
        assert_eq!((bound.group(), bound.name.as_str()), ("", "p"));
        assert!(spec_of(json!({})).is_ok());
    }

    #[test]
    fn short_or_huge_lifetimes_are_invalid_as_upstream() {
        let err = spec_of(json!({"spec": {"expirationSeconds": 599}})).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
        );
        assert!(spec_of(json!({"spec": {"expirationSeconds": 600}})).is_ok());
        let err = spec_of(json!({"spec": {"expirationSeconds": (1i64 << 32) + 1}})).unwrap_err();
        assert!(
            err.message.contains("larger than 2^32 seconds"),
            "{}",
            err.message
        );
        let err = spec_of(json!({"spec": {"expirationSeconds": "1h"}})).unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn a_name_or_namespace_other_than_the_urls_is_invalid() {
        let err = spec_of(json!({"metadata": {"name": "default"}})).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "TokenRequest.authentication.k8s.io \"robot\" is invalid: metadata.name: Invalid value: \"default\": must match the service account name if specified"
        );
        let err = spec_of(json!({"metadata": {"namespace": "other"}})).unwrap_err();
        assert!(
            err.message
                .contains("must match the service account namespace"),
            "{}",
            err.message
        );
        assert!(spec_of(json!({"metadata": {"name": "robot", "namespace": "ns1"}})).is_ok());
    }

    #[test]
    fn kubelet_pod_tokens_for_the_api_server_are_extended() {
        let spec = |audiences: &[&str], seconds| TokenSpec {
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            expiration_seconds: seconds,
            bound: None,
        };
        assert_eq!(
            lifetime(&spec(&[API_AUDIENCE], 3607), true),
            (EXPIRATION_EXTENSION_SECONDS, Some(3607))
        );
        assert_eq!(lifetime(&spec(&[API_AUDIENCE], 3607), false), (3607, None));
        assert_eq!(lifetime(&spec(&["vault"], 3607), true), (3607, None));
        assert_eq!(lifetime(&spec(&[API_AUDIENCE], 3600), true), (3600, None));
    }

    #[test]
    fn bound_kinds_print_as_go_does() {
        let bound = |api_version: &str, kind: &str| BoundRef {
            api_version: api_version.into(),
            kind: kind.into(),
            name: "x".into(),
            uid: String::new(),
        };
        assert_eq!(bound("v1", "ConfigMap").gvk(), "/v1, Kind=ConfigMap");
        assert_eq!(
            bound("apps/v1", "Deployment").gvk(),
            "apps/v1, Kind=Deployment"
        );
        assert_eq!(bound("apps/v1", "Deployment").group(), "apps");
        assert_eq!(bound("", "Pod").group(), "");
    }

    #[test]
    fn objects_deleted_longer_ago_than_the_leeway_do_not_count() {
        let now = SystemTime::now();
        let at = |secs_ago: u64| objects::rfc3339(now - Duration::from_secs(secs_ago));
        assert!(deleted_recently(&at(10), now));
        assert!(!deleted_recently(&at(120), now));
        assert!(!deleted_recently("garbage", now));
    }

    #[test]
    fn keys_are_the_stores() {
        assert_eq!(
            object_key("serviceaccounts", Some("ns1"), "robot"),
            format!(
                "{}ns1/robot",
                registry::find("", "v1", "serviceaccounts")
                    .unwrap()
                    .store_prefix()
            )
        );
        assert!(object_key("nodes", None, "n1").ends_with("/nodes/n1"));
    }
}

#[cfg(test)]
mod flow;

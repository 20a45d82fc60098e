//! The Kubernetes API, served over HTTPS: authentication, discovery and the generic REST engine over the store.
//!
//! Path of a request: TLS accept ([`serve`]) → identity from the client certificate or bearer token →
//! [`Api::handle`] → a discovery document or [`rest`] (the registry says which kind) → [`Store`].

mod admission;
mod apply;
mod bootstrap;
mod custom;
mod deletion;
mod discovery;
mod metrics;
mod namespaces;
mod nodes;
mod objects;
mod openapi;
mod pods;
mod request;
mod response;
mod rest;
mod reviews;
mod serve;
mod services;
mod tokenrequest;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gantry_api::{ApiError, registry};
use gantry_pki::{Identity, ServiceAccountKey, Tokens};
use gantry_store::Store;
use gantry_watch_cache::WatchCache;
use http::{Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;

pub use nodes::NodeClient;
pub use pods::PodAdmission;
pub use serve::{identity_from_certificate, serve};
pub use services::{Ipv4Cidr, ServiceRanges, parse_port_range};

use request::{Route, Verb};
use response::Response;

/// The Kubernetes version the API reports (its minor decides which kubectl the kubectl dispatcher runs).
pub const KUBERNETES_VERSION: (u32, u32, u32) = (1, 33, 0);

/// How the API server is set up.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where Services get their cluster IPs and node ports.
    pub services: ServiceRanges,
    /// The address clients inside the cluster reach this server at (the `kubernetes` Service's endpoint).
    pub advertise: SocketAddr,
    /// How this server calls node agents (logs); `None`: it does not.
    pub nodes: Option<NodeClient>,
    /// What new pods are given.
    pub pod_admission: PodAdmission,
}

/// The API server's state, shared by every connection.
pub struct Api {
    store: Arc<dyn Store>,
    cache: WatchCache,
    config: ApiConfig,
    tokens: Tokens,
    /// Signs and verifies service account tokens.
    service_account_key: ServiceAccountKey,
    metrics: Arc<metrics::Metrics>,
    /// What CustomResourceDefinitions serve.
    catalog: custom::Catalog,
    /// The custom resources' OpenAPI documents.
    openapi: openapi::CustomDocuments,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// Loads the watch cache from the store and creates what every cluster has from the start.
    pub async fn start(
        store: Arc<dyn Store>,
        tokens: Tokens,
        config: ApiConfig,
    ) -> Result<Self, ApiError> {
        let metrics = Arc::new(metrics::Metrics::default());
        let store: Arc<dyn Store> = Arc::new(metrics::MeteredStore {
            inner: store,
            metrics: metrics.clone(),
        });
        let cache = WatchCache::start(store.clone(), Bytes::from_static(b"/registry/")).await?;
        bootstrap::run(&store, &cache, &config.services, config.advertise).await?;
        tokio::spawn(custom::run_controller(store.clone(), cache.clone()));
        Ok(Api {
            store,
            cache,
            config,
            tokens,
            // Until `with_service_account_key` gives the kept one: tokens then last until a restart.
            service_account_key: ServiceAccountKey::generate().map_err(ApiError::internal)?,
            metrics,
            catalog: custom::Catalog::default(),
            openapi: openapi::CustomDocuments::default(),
        })
    }

    /// Signs service account tokens with `key` (the PKI's `service-account.key`) instead of the key made
    /// in memory at start, so that tokens outlive a restart.
    pub fn with_service_account_key(mut self, key: ServiceAccountKey) -> Self {
        self.service_account_key = key;
        self
    }

    /// Answers one request. `identity` is the verified client certificate's, if any.
    pub async fn handle<B>(&self, request: http::Request<B>, identity: Option<Identity>) -> Response
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = request.uri().path().to_string();
        if let Some(answer) = public(&path) {
            return answer;
        }
        let token = identity.is_none().then(|| bearer_token(&request)).flatten();
        let identity = match (identity, token) {
            (Some(identity), _) => Some(identity),
            (None, Some(token)) => self.authenticate(&token).await,
            (None, None) => None,
        };
        let Some(identity) = identity else {
            return response::error(&ApiError::unauthorized("Unauthorized"));
        };
        let start = std::time::Instant::now();
        let (verb, resource) = request_labels(request.method(), &path, request.uri().query());
        let yaml = response::wants_yaml(request.headers().get(header::ACCEPT));
        let answer = match (yaml, verb) {
            (true, "watch") => response::error(&ApiError::not_acceptable(&[response::JSON])),
            (true, _) => {
                response::to_yaml(response::respond(
                    self.route(request, &path, &identity).await,
                ))
                .await
            }
            (false, _) => response::respond(self.route(request, &path, &identity).await),
        };
        self.metrics
            .request(verb, &resource, answer.status().as_u16(), start.elapsed());
        answer
    }

    /// The identity of a bearer token: one of the static tokens, or a service account token.
    async fn authenticate(&self, token: &str) -> Option<Identity> {
        match self.tokens.verify(token) {
            Some(identity) => Some(identity),
            None => tokenrequest::authenticate(&self.service_account_key, &self.cache, token).await,
        }
    }

    async fn route<B>(
        &self,
        mut request: http::Request<B>,
        path: &str,
        identity: &Identity,
    ) -> Result<Response, ApiError>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let query = request::query_params(request.uri().query());
        let accept = request
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .map(str::to_string);
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|a| a.to_str().ok())
            .map(str::to_string);
        let user_agent = user_agent.as_deref();
        let not_found = response::path_not_found;
        if path == "/metrics" {
            return Ok(response::bytes(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics.render(),
            ));
        }
        if path.starts_with("/openapi/") {
            let custom = self.openapi.of(&*self.catalog.snapshot(&self.cache).await);
            return openapi::serve(path, accept.as_deref(), &custom).ok_or_else(not_found);
        }
        let route = request::route(request.method(), path, &query);
        match route {
            Route::CoreGroup | Route::Groups => Ok(discovery::root(
                matches!(route, Route::CoreGroup),
                discovery::negotiate(accept.as_deref()),
                &*self.catalog.snapshot(&self.cache).await,
            )),
            Route::Group { group } => {
                discovery::group(&group, &*self.catalog.snapshot(&self.cache).await)
                    .ok_or_else(not_found)
            }
            Route::GroupVersion { group, version } => discovery::group_version(
                &group,
                &version,
                &*self.catalog.snapshot(&self.cache).await,
            )
            .ok_or_else(not_found),
            Route::NotFound => Err(not_found()),
            Route::Resource(resource_request) => {
                let upgrade =
                    request
                        .headers()
                        .contains_key(header::UPGRADE)
                        .then(|| nodes::Upgrade {
                            method: request.method().clone(),
                            query: request.uri().query().unwrap_or_default().to_owned(),
                            headers: request.headers().clone(),
                            client: hyper::upgrade::on(&mut request),
                        });
                // The body is read first, so that even a refusal answers a client that has sent it all (curl
                // over HTTP/2 reports an answer to a half-sent upload as a failure).
                let (body, media) = match request.method() {
                    &Method::POST | &Method::PUT | &Method::DELETE => {
                        let (body, media) = read_body(request, WRITE_TYPES).await?;
                        (json_body(body, media)?, response::JSON)
                    }
                    &Method::PATCH => read_body(request, PATCH_TYPES).await?,
                    _ => (Bytes::new(), response::JSON),
                };
                let (group, version, plural) = (
                    &resource_request.group,
                    &resource_request.version,
                    &resource_request.resource,
                );
                let snapshot;
                let (resource, custom) = match registry::find(group, version, plural) {
                    Some(resource) => (resource, None),
                    None => {
                        snapshot = self.catalog.snapshot(&self.cache).await;
                        let served = snapshot
                            .find(group, version, plural)
                            .ok_or_else(not_found)?;
                        (served.resource, Some(served))
                    }
                };
                // Cluster-scoped resources have no namespace; namespaced ones need one, except to list or
                // watch across all namespaces.
                let across_namespaces = matches!(resource_request.verb, Verb::List | Verb::Watch);
                let scoped = resource_request.namespace.is_some();
                if scoped != resource.namespaced && !(resource.namespaced && across_namespaces) {
                    return Err(not_found());
                }
                let output = rest::Output::negotiate(accept.as_deref(), resource, custom, &query)?;
                let call = rest::Call {
                    store: &self.store,
                    cache: &self.cache,
                    identity,
                    user_agent,
                    services: &self.config.services,
                    nodes: self.config.nodes.as_ref(),
                    pod_admission: self.config.pod_admission,
                    metrics: &self.metrics,
                    service_account_key: &self.service_account_key,
                    resource,
                    custom,
                    request: &resource_request,
                    query: &query,
                    output,
                    upgrade: std::sync::Mutex::new(upgrade),
                };
                call.dispatch(&body, media).await
            }
        }
    }
}

/// The request's bearer token (owned, so that no borrow of the request is held while it is checked).
fn bearer_token<B>(request: &http::Request<B>) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    Some(value.strip_prefix("Bearer ")?.trim().to_owned())
}

/// The verb and resource a request is counted under in the metrics.
fn request_labels(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    match request::route(method, path, &request::query_params(query)) {
        Route::Resource(r) => match r.subresource {
            Some(sub) => (r.verb.as_str(), format!("{}/{sub}", r.resource)),
            None => (r.verb.as_str(), r.resource),
        },
        _ => (
            if method == Method::GET {
                "get"
            } else {
                "other"
            },
            String::new(),
        ),
    }
}

/// What anyone may read without credentials, as in Kubernetes.
fn public(path: &str) -> Option<Response> {
    match path.trim_end_matches('/') {
        "/healthz" | "/livez" | "/readyz" => {
            Some(response::bytes(StatusCode::OK, "text/plain", "ok"))
        }
        "/version" => {
            let (major, minor, patch) = KUBERNETES_VERSION;
            Some(response::json(
                StatusCode::OK,
                &json!({
                    "major": major.to_string(),
                    "minor": minor.to_string(),
                    "gitVersion": format!("v{major}.{minor}.{patch}+gantry"),
                    "gitCommit": "",
                    "gitTreeState": "clean",
                    "buildDate": "1970-01-01T00:00:00Z",
                    "goVersion": "",
                    "compiler": "rustc",
                    "platform": format!("{}/{}", std::env::consts::OS, normalized_arch()),
                }),
            ))
        }
        _ => None,
    }
}

/// The architecture as Kubernetes names it.
fn normalized_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The media types of POST and PUT bodies: JSON, and the protobuf kubectl ≥ 1.32 sends for `kubectl create`.
const WRITE_TYPES: &[&str] = &[response::JSON, gantry_protobuf::CONTENT_TYPE];

/// A write's body as JSON: protobuf bodies are decoded into the object a JSON client would have sent.
fn json_body(body: Bytes, media: &str) -> Result<Bytes, ApiError> {
    if media != gantry_protobuf::CONTENT_TYPE || body.is_empty() {
        return Ok(body);
    }
    let object = gantry_protobuf::decode(&body).map_err(|e| {
        let reason = if e.status_code() == 415 {
            "UnsupportedMediaType"
        } else {
            "BadRequest"
        };
        ApiError {
            code: e.status_code(),
            reason,
            message: e.to_string(),
            details: None,
        }
    })?;
    serde_json::to_vec(&object)
        .map(Bytes::from)
        .map_err(ApiError::internal)
}

/// A server-side apply's media type.
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The media types of PATCH bodies.
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    APPLY_PATCH,
];

/// The body of a write and its media type, one of `accepted` (no Content-Type reads as the first); at most
/// 3 MiB.
async fn read_body<B>(
    request: http::Request<B>,
    accepted: &[&'static str],
) -> Result<(Bytes, &'static str), ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let media = match accepted.iter().find(|a| **a == media) {
        Some(media) => *media,
        // No type reads as JSON for writes, as in Kubernetes; a patch must say which kind it is.
        None if (media.is_empty() || media == "*/*") && accepted == WRITE_TYPES => accepted[0],
        None => {
            // Read (and drop) what the client sends before refusing it, as above.
            let _ = http_body_util::Limited::new(request.into_body(), rest::MAX_BODY_BYTES)
                .collect()
                .await;
            return Err(ApiError::unsupported_media_type(accepted));
        }
    };
    let too_large =
        || ApiError::request_entity_too_large(format!("limit is {} bytes", rest::MAX_BODY_BYTES));
    // Refuse a declared oversize body before reading it (a client waiting on `Expect: 100-continue` then
    // never sends it).
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|l| l.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > rest::MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(request.into_body(), rest::MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok((collected.to_bytes(), media)),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::request_entity_too_large(format!(
                "limit is {} bytes",
                rest::MAX_BODY_BYTES
            )))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

//! The whole request path: `Api::handle` over a fresh in-memory store, as an admin, with a method, path,
//! query, Content-Type, Accept and body taken from the input. This drives protobuf and JSON decoding,
//! defaulting, normalization, validation, the three patch engines, the scale subresource, Service address
//! allocation, deletion and storage, and then reads back what was stored.
//!
//! Input: up to four requests separated by `\n--next--\n`, each five selector bytes and then the body:
//!   [method] [path] [content type] [query] [accept] body...
//! Each selector byte indexes its table below (modulo its length). Before the requests, the objects named
//! `web` that their paths point at are created from valid manifests, so that PUT, PATCH, DELETE and the
//! subresources reach an existing object (and later requests see what earlier ones did: schedule a pod,
//! then delete it). A query whose template holds `{}` gets there, percent-encoded, the body up to its
//! first NUL byte (label and field selectors, continue tokens, limits, grace periods from the input);
//! the request body is then what follows the NUL.
//!
//! Properties, for every request and for the reads around it (GET of the object before and after, then a
//! list, a list as a Table, GET of the scale):
//! - nothing panics;
//! - no answer is a 5xx: a memory store does not fail, so a 5xx is a bug (the object stored by a write
//!   cannot be read back, or an internal error). One exception, as in Kubernetes: a strategic merge patch
//!   the patch engine refuses with an unclassified error (a list element without its merge key, ...) is a
//!   500 InternalError there too (`SMP_500_MESSAGES`); `GANTRY_FUZZ_STRICT=1` drops the exception;
//! - every 4xx is a `Status` object in JSON, and every JSON answer parses;
//! - a request that fails (4xx), a dry run and a GET leave the seed object as it was.
//!
//! `GANTRY_FUZZ_DEBUG=1` prints every request and the start of its answer (to see what a seed reaches).
//!
//! Each input gets its own store, API and runtime, so a crash reproduces from its input alone (a runtime
//! per input also ends the watch cache's feed task, which holds the store until its runtime goes away).
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use gantry_apiserver::{Api, ApiConfig, ServiceRanges};
use gantry_pki::{Identity, Tokens};
use gantry_store::{MemoryStore, Store};
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const METHODS: &[Method] = &[
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// An object created before the fuzzed request: its collection and a valid manifest named `web`.
struct Seed {
    collection: &'static str,
    manifest: &'static str,
    scale: bool,
}

const POD: usize = 0;
const DEPLOYMENT: usize = 1;
const SERVICE: usize = 2;
const CONFIGMAP: usize = 3;
const SECRET: usize = 4;
const JOB: usize = 5;
const NODEPORT_SERVICE: usize = 6;
const SCHEDULED_POD: usize = 7;

const SEEDS: &[Seed] = &[
    Seed {
        collection: "/api/v1/namespaces/default/pods",
        manifest: r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default","labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.27","ports":[{"containerPort":80}],"env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}]}}"#,
        scale: false,
    },
    Seed {
        collection: "/apis/apps/v1/namespaces/default/deployments",
        manifest: r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default","labels":{"app":"web"}},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.27","ports":[{"containerPort":80}],"env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}]}}}}"#,
        scale: true,
    },
    Seed {
        collection: "/api/v1/namespaces/default/services",
        manifest: r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},"spec":{"selector":{"app":"web"},"ports":[{"name":"http","port":80,"targetPort":8080}]}}"#,
        scale: false,
    },
    Seed {
        collection: "/api/v1/namespaces/default/configmaps",
        manifest: r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web","namespace":"default"},"data":{"a":"b","empty":""}}"#,
        scale: false,
    },
    Seed {
        collection: "/api/v1/namespaces/default/secrets",
        manifest: r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"web","namespace":"default"},"type":"Opaque","data":{"password":"aHVudGVyMg=="},"stringData":{"user":"admin"}}"#,
        scale: false,
    },
    Seed {
        collection: "/apis/batch/v1/namespaces/default/jobs",
        manifest: r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"web","namespace":"default"},"spec":{"backoffLimit":2,"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"pi","image":"perl:5.34","command":["perl","-e","print 1"]}]}}}}"#,
        scale: false,
    },
    Seed {
        collection: "/api/v1/namespaces/default/services",
        manifest: r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},"spec":{"type":"NodePort","selector":{"app":"web"},"ports":[{"name":"http","port":80,"targetPort":8080,"nodePort":30080},{"name":"https","port":443}]}}"#,
        scale: false,
    },
    // Bound to a node and running: deleting it is graceful (deletionTimestamp, grace period).
    Seed {
        collection: "/api/v1/namespaces/default/pods",
        manifest: r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default","labels":{"app":"web"},"finalizers":["example.com/keep"]},"spec":{"nodeName":"node-1","terminationGracePeriodSeconds":30,"containers":[{"name":"nginx","image":"nginx:1.27"}]},"status":{"phase":"Running"}}"#,
        scale: false,
    },
];

/// Request paths, and the seed object created before the request (`None`: nothing beyond bootstrap).
const PATHS: &[(&str, Option<usize>)] = &[
    ("/api/v1/namespaces/default/pods", Some(POD)),
    ("/api/v1/namespaces/default/pods/web", Some(POD)),
    ("/api/v1/namespaces/default/pods/web/status", Some(POD)),
    (
        "/apis/apps/v1/namespaces/default/deployments",
        Some(DEPLOYMENT),
    ),
    (
        "/apis/apps/v1/namespaces/default/deployments/web",
        Some(DEPLOYMENT),
    ),
    (
        "/apis/apps/v1/namespaces/default/deployments/web/status",
        Some(DEPLOYMENT),
    ),
    (
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
        Some(DEPLOYMENT),
    ),
    ("/api/v1/namespaces/default/services", Some(SERVICE)),
    ("/api/v1/namespaces/default/services/web", Some(SERVICE)),
    (
        "/api/v1/namespaces/default/services/web/status",
        Some(SERVICE),
    ),
    (
        "/api/v1/namespaces/default/services/web",
        Some(NODEPORT_SERVICE),
    ),
    ("/api/v1/namespaces/default/configmaps", Some(CONFIGMAP)),
    ("/api/v1/namespaces/default/configmaps/web", Some(CONFIGMAP)),
    ("/api/v1/namespaces/default/secrets", Some(SECRET)),
    ("/api/v1/namespaces/default/secrets/web", Some(SECRET)),
    ("/apis/batch/v1/namespaces/default/jobs", Some(JOB)),
    ("/apis/batch/v1/namespaces/default/jobs/web", Some(JOB)),
    (
        "/apis/batch/v1/namespaces/default/jobs/web/status",
        Some(JOB),
    ),
    ("/api/v1/namespaces/default/pods/missing", None),
    (
        "/apis/apps/v1/namespaces/default/deployments/missing/scale",
        None,
    ),
    ("/api/v1/namespaces", None),
    ("/api/v1/namespaces/default", None),
    ("/api/v1/namespaces/default/status", None),
    ("/api/v1/namespaces/default/finalize", None),
    ("/api/v1/namespaces/default/services/kubernetes", None),
    ("/api/v1/pods", None),
    ("/api/v1/namespaces/default/pods/web", Some(SCHEDULED_POD)),
];

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("application/merge-patch+json"),
    Some("application/strategic-merge-patch+json"),
    Some("application/json-patch+json"),
    Some("application/vnd.kubernetes.protobuf"),
    Some("application/apply-patch+yaml"),
    Some("application/json; charset=utf-8"),
    Some("*/*"),
    Some("text/plain"),
];

/// Query strings; `{}` is replaced by the percent-encoded start of the body (see `parse_call`).
const QUERIES: &[&str] = &[
    "",
    "?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
    "?dryRun=All",
    "?labelSelector={}",
    "?fieldSelector={}",
    "?limit={}",
    "?limit=1&continue={}",
    "?gracePeriodSeconds={}",
    "?propagationPolicy={}",
    "?includeObject={}",
    "?dryRun=All&gracePeriodSeconds=0",
    "?labelSelector=app%3Dweb&limit=500",
];

const ACCEPTS: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some(
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    ),
    Some("application/vnd.kubernetes.protobuf,application/json"),
    Some("*/*"),
];

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

fn pick<T>(table: &[T], byte: u8) -> &T {
    &table[usize::from(byte) % table.len()]
}

fn percent_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 3);
    for &b in data {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn admin() -> Identity {
    Identity {
        user: gantry_pki::ADMIN_USER.into(),
        groups: vec![gantry_pki::ADMIN_GROUP.into()],
    }
}

/// Created once (the first start writes the token file; later ones read it). The API never uses it: the
/// requests carry the admin identity as a client certificate would.
fn tokens() -> Tokens {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/api_request-tokens");
    Tokens::load_or_create(&dir).expect("the token file loads")
}

async fn start() -> Api {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let config = ApiConfig {
        services: ServiceRanges::default(),
        advertise: SocketAddr::new(Ipv4Addr::new(192, 0, 2, 10).into(), 6443),
        nodes: None,
        pod_admission: Default::default(),
    };
    Api::start(store, tokens(), config)
        .await
        .expect("the API starts over a memory store")
}

/// Messages of the strategic merge patch errors apimachinery leaves unclassified (`PatchError::Unclassified`),
/// which Kubernetes, and Gantry after it, answer with 500 InternalError.
const SMP_500_MESSAGES: &[&str] = &[
    "does not contain declared merge key",
    "merging lists cannot yet be specified in the patch",
    "cannot merge lists without merge key for",
    "doesn't match $setElementOrder list",
    "list element types are not identical",
    "unknown patch type:",
    "expected a ",
];

/// Whether a 5xx is the one Kubernetes answers too: a strategic merge patch that the patch engine refuses
/// with an unclassified error. `GANTRY_FUZZ_STRICT=1` counts those as failures too.
fn kubernetes_500(method: &Method, content_type: Option<&str>, status: u16, body: &[u8]) -> bool {
    if std::env::var_os("GANTRY_FUZZ_STRICT").is_some() {
        return false;
    }
    let Ok(status_object) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let message = status_object
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("");
    *method == Method::PATCH
        && content_type == Some("application/strategic-merge-patch+json")
        && status == 500
        && status_object.get("reason").and_then(Value::as_str) == Some("InternalError")
        && SMP_500_MESSAGES.iter().any(|m| message.contains(m))
}

/// Sends one request and checks the answer; returns the status and the body.
async fn send(
    api: &Api,
    what: &str,
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: Bytes,
) -> (u16, Bytes) {
    let mut request = Request::builder().method(method.clone()).uri(uri);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    let request = request
        .body(Full::new(body))
        .expect("a request from the tables builds");
    let response = api.handle(request, Some(admin())).await;
    let status = response.status().as_u16();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let body = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let text = String::from_utf8_lossy(&body);
    if std::env::var_os("GANTRY_FUZZ_DEBUG").is_some() {
        let shown: String = text.chars().take(300).collect();
        eprintln!("{what}: {method} {uri} -> {status} {shown}");
    }
    assert!(
        status < 500 || kubernetes_500(&method, content_type, status, &body),
        "{what}: {method} {uri} answered {status} (a memory store never fails): {text}"
    );
    if json || status >= 400 {
        let parsed: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!("{what}: {method} {uri} answered {status} with a body that is not JSON ({e}): {text}")
        });
        if status >= 400 {
            assert_eq!(
                parsed.get("kind").and_then(Value::as_str),
                Some("Status"),
                "{what}: {method} {uri} answered {status} without a Status: {text}"
            );
        }
    }
    (status, body)
}

/// The marker between the requests of one input (raw newlines cannot occur inside JSON text).
const NEXT: &[u8] = b"\n--next--\n";
/// At most this many requests per input.
const MAX_REQUESTS: usize = 4;

/// One request of the input, decoded from its selector bytes.
struct Call<'a> {
    method: Method,
    uri: String,
    seed: Option<&'static Seed>,
    content_type: Option<&'static str>,
    accept: Option<&'static str>,
    read_only: bool,
    body: &'a [u8],
}

fn parse_call(chunk: &[u8]) -> Option<Call<'_>> {
    let [m, p, c, q, a, body @ ..] = chunk else {
        return None;
    };
    let method = pick(METHODS, *m).clone();
    let (path, seed) = *pick(PATHS, *p);
    let template = *pick(QUERIES, *q);
    // A query template with `{}` takes the body up to its first NUL; the request body is what follows.
    let (value, body) = if template.contains("{}") {
        match body.iter().position(|&b| b == 0) {
            Some(i) => (&body[..i], &body[i + 1..]),
            None => (body, &[][..]),
        }
    } else {
        (&[][..], body)
    };
    let query = template.replace("{}", &percent_encode(value));
    let uri = format!("{path}{query}");
    uri.parse::<http::Uri>().ok()?;
    Some(Call {
        read_only: method == Method::GET || query.contains("dryRun=All"),
        method,
        uri,
        seed: seed.map(|i| &SEEDS[i]),
        content_type: *pick(CONTENT_TYPES, *c),
        accept: *pick(ACCEPTS, *a),
        body,
    })
}

fn split_requests(data: &[u8]) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let mut rest = data;
    while chunks.len() + 1 < MAX_REQUESTS {
        match rest.windows(NEXT.len()).position(|w| w == NEXT) {
            Some(i) => {
                chunks.push(&rest[..i]);
                rest = &rest[i + NEXT.len()..];
            }
            None => break,
        }
    }
    chunks.push(rest);
    chunks
}

async fn run(data: &[u8]) {
    let Some(calls) = split_requests(data)
        .into_iter()
        .map(parse_call)
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };

    let api = start().await;
    // The seed objects the requests' paths point at, each created once (the first request's seed wins
    // where two seeds share a name, as the two Services do).
    let mut seeds: Vec<&'static Seed> = Vec::new();
    for seed in calls.iter().filter_map(|c| c.seed) {
        if seeds.iter().any(|s| s.collection == seed.collection) {
            continue;
        }
        seeds.push(seed);
        let (status, body) = send(
            &api,
            "seed",
            Method::POST,
            seed.collection,
            Some("application/json"),
            None,
            Bytes::from_static(seed.manifest.as_bytes()),
        )
        .await;
        assert_eq!(
            status,
            201,
            "the seed {} was refused: {}",
            seed.collection,
            String::from_utf8_lossy(&body)
        );
    }

    for call in &calls {
        let object = call.seed.map(|seed| format!("{}/web", seed.collection));
        let before = match &object {
            Some(object) => Some(
                send(
                    &api,
                    "before",
                    Method::GET,
                    object,
                    None,
                    None,
                    Bytes::new(),
                )
                .await,
            ),
            None => None,
        };
        let (status, _) = send(
            &api,
            "request",
            call.method.clone(),
            &call.uri,
            call.content_type,
            call.accept,
            Bytes::copy_from_slice(call.body),
        )
        .await;
        if let (Some(object), Some(before)) = (&object, before) {
            let after = send(
                &api,
                "read back",
                Method::GET,
                object,
                None,
                None,
                Bytes::new(),
            )
            .await;
            if status >= 400 || call.read_only {
                assert!(
                    after == before,
                    "{} {} answered {status} but changed {object}:\nbefore: {}\nafter:  {}",
                    call.method,
                    call.uri,
                    String::from_utf8_lossy(&before.1),
                    String::from_utf8_lossy(&after.1)
                );
            }
        }
    }

    // What the requests stored must read back, in lists and as Tables too.
    for seed in seeds {
        send(
            &api,
            "list",
            Method::GET,
            seed.collection,
            None,
            None,
            Bytes::new(),
        )
        .await;
        send(
            &api,
            "table",
            Method::GET,
            seed.collection,
            None,
            Some(TABLE),
            Bytes::new(),
        )
        .await;
        if seed.scale {
            let scale = format!("{}/web/scale", seed.collection);
            send(&api, "scale", Method::GET, &scale, None, None, Bytes::new()).await;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(data));
});

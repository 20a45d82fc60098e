//! The agent's HTTPS endpoint (the kubelet's port 10250), which the API server calls for what only the node
//! has, at the kubelet's paths: container logs (`GET /containerLogs/<namespace>/<pod>/<container>`), and the
//! upgraded streaming sessions `/exec/<namespace>/<pod>/<container>?command=…`,
//! `/attach/<namespace>/<pod>/<container>` and `/portForward/<namespace>/<pod>` (protocols: gantry-stream).
//! Only clients with a certificate of the cluster CA get in (see `gantry_pki::node_endpoint_config`).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use gantry_runtime::oci::Runtime;
use gantry_stream::{Protocol, Purpose, command, forward};
use hyper::upgrade::Upgraded;

use crate::logs::{self, LogOptions};
use crate::sessions;
use crate::worker::PodIndex;

type Body = BoxBody<Bytes, Infallible>;

/// How often a followed log is read again.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// What the endpoint serves from.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub index: Arc<PodIndex>,
    /// The agent's data directory (`pods/<uid>/logs/<container>/<n>.log`, `containers/<id>`).
    pub dir: PathBuf,
    /// What execs in containers.
    pub runtime: Runtime,
}

/// Serves `endpoint` on `listener` with `tls` until the task is dropped.
pub async fn serve(listener: TcpListener, mut tls: rustls::ServerConfig, endpoint: Endpoint) {
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let endpoint = Arc::new(endpoint);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (acceptor, endpoint) = (acceptor.clone(), endpoint.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let endpoint = endpoint.clone();
                async move { Ok::<_, Infallible>(endpoint.handle(request)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn not_here(namespace: &str, pod: &str) -> http::Response<Body> {
    text(
        StatusCode::NOT_FOUND,
        format!("pod {namespace}/{pod} is not running on this node"),
    )
}

/// Answers 101 with the protocol `purpose` and the request agree on, and runs `session` on the connection
/// once upgraded; a request no protocol fits is answered 400 (kubectl then tries SPDY).
fn upgrade<S, F>(
    mut request: http::Request<hyper::body::Incoming>,
    purpose: Purpose,
    session: S,
) -> http::Response<Body>
where
    S: FnOnce(Protocol, TokioIo<Upgraded>) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let accepted = match gantry_stream::accept(purpose, request.headers()) {
        Ok(accepted) => accepted,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let upgrading = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrading.await {
            Ok(upgraded) => session(accepted.protocol, TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!("a streaming upgrade failed: {e}"),
        }
    });
    let mut response = http::Response::new(Full::new(Bytes::new()).boxed());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = accepted.headers;
    response
}

fn text(status: StatusCode, message: impl Into<Bytes>) -> http::Response<Body> {
    let mut response = http::Response::new(Full::new(message.into()).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

impl Endpoint {
    fn handle(&self, request: http::Request<hyper::body::Incoming>) -> http::Response<Body> {
        let uri = request.uri().clone();
        let query = uri.query().unwrap_or("");
        let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
        let streaming = matches!(*request.method(), Method::GET | Method::POST);
        match (request.method(), parts.as_slice()) {
            (&Method::GET, ["containerLogs", namespace, pod, container]) => {
                self.logs(namespace, pod, container, &LogOptions::from_query(query))
            }
            (_, [kind @ ("exec" | "attach"), namespace, pod, container]) if streaming => {
                self.command(request, kind == &"attach", namespace, pod, container)
            }
            (_, ["portForward", namespace, pod]) if streaming => {
                self.port_forward(request, namespace, pod)
            }
            _ => text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    /// `exec` or `attach`: checks what can be checked before the upgrade (a refusal is a plain answer).
    fn command(
        &self,
        request: http::Request<hyper::body::Incoming>,
        attach: bool,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> http::Response<Body> {
        let query = request.uri().query().unwrap_or("").to_owned();
        let Some(uid) = self.index.uid(namespace, pod) else {
            return not_here(namespace, pod);
        };
        let Some(id) = sessions::live_container(&self.dir, &uid, container) else {
            return text(
                StatusCode::BAD_REQUEST,
                format!("container {container} in pod {pod} is not running"),
            );
        };
        let options = command::Options::from_query(&query);
        let argv: Vec<String> = command::form_pairs(&query)
            .into_iter()
            .filter(|(key, _)| key == "command")
            .map(|(_, value)| value)
            .collect();
        if !attach && argv.is_empty() {
            return text(
                StatusCode::BAD_REQUEST,
                "you must specify at least 1 command",
            );
        }
        let (runtime, log_dir) = (
            self.runtime.clone(),
            self.dir
                .join("pods")
                .join(&uid)
                .join("logs")
                .join(container),
        );
        let (index, namespace, pod, container) = (
            self.index.clone(),
            namespace.to_owned(),
            pod.to_owned(),
            container.to_owned(),
        );
        upgrade(request, Purpose::Command, move |protocol, io| async move {
            command::serve(io, protocol, options, |streams| async move {
                if attach {
                    let running = || index.running(&namespace, &pod, &container);
                    sessions::attach(log_dir, streams, running).await
                } else {
                    sessions::exec(&runtime, &id, argv, options.tty, streams).await
                }
            })
            .await;
        })
    }

    fn port_forward(
        &self,
        request: http::Request<hyper::body::Incoming>,
        namespace: &str,
        pod: &str,
    ) -> http::Response<Body> {
        let Some(uid) = self.index.uid(namespace, pod) else {
            return not_here(namespace, pod);
        };
        let ports = match forward::ports_from_query(request.uri().query().unwrap_or("")) {
            Ok(ports) => ports,
            Err(message) => return text(StatusCode::BAD_REQUEST, message),
        };
        let netns = sessions::pod_netns(&self.dir, &uid);
        upgrade(
            request,
            Purpose::PortForward,
            move |protocol, io| async move {
                if matches!(protocol, Protocol::Channels { .. }) && ports.is_empty() {
                    tracing::debug!("a WebSocket port-forward without ports");
                }
                let dial = move |port| sessions::dial(netns.clone(), port);
                forward::serve(io, protocol, ports, dial).await;
            },
        )
    }

    fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        options: &LogOptions,
    ) -> http::Response<Body> {
        let Some(uid) = self.index.uid(namespace, pod) else {
            return not_here(namespace, pod);
        };
        let dir = self.dir.join("pods").join(uid).join("logs").join(container);
        // The previous run is the latest file unless the container runs again (a file of its own).
        let running = self.index.running(namespace, pod, container);
        let back = usize::from(options.previous && running);
        let Some(file) = logs::log_file(&dir, back) else {
            let message = if options.previous {
                format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
            } else {
                format!("container \"{container}\" in pod \"{pod}\" is waiting to start")
            };
            return text(StatusCode::BAD_REQUEST, message);
        };
        let (lines, offset) = match logs::read_from(&file, 0) {
            Ok(read) => read,
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        let first = logs::render(&lines, options, SystemTime::now());
        if !options.follow || options.previous {
            return text(StatusCode::OK, first);
        }
        // Following: what the file gains, until the container stops or runs again (a newer file).
        let (index, namespace, pod, container) = (
            self.index.clone(),
            namespace.to_owned(),
            pod.to_owned(),
            container.to_owned(),
        );
        let live = LogOptions {
            tail_lines: None,
            since_seconds: None,
            since_time: None,
            ..options.clone()
        };
        let state = (file, offset, false);
        let more = futures::stream::unfold(state, move |(file, mut offset, done)| {
            let (index, namespace, pod, container, live, dir) = (
                index.clone(),
                namespace.clone(),
                pod.clone(),
                container.clone(),
                live.clone(),
                dir.clone(),
            );
            async move {
                if done {
                    return None;
                }
                loop {
                    let running = index.running(&namespace, &pod, &container);
                    let (lines, next) = logs::read_from(&file, offset).ok()?;
                    offset = next;
                    let replaced = logs::log_file(&dir, 0).is_some_and(|newest| newest != file);
                    let finished = !running || replaced;
                    if !lines.is_empty() || finished {
                        let chunk = logs::render(&lines, &live, SystemTime::now());
                        return Some((Bytes::from(chunk), (file, offset, finished)));
                    }
                    tokio::time::sleep(FOLLOW_INTERVAL).await;
                }
            }
        });
        let stream = futures::stream::once(async move { Bytes::from(first) })
            .chain(more)
            .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
        let mut response = http::Response::new(BodyExt::boxed(StreamBody::new(stream)));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        response
    }
}

//! The agent's HTTPS endpoint (the kubelet's port 10250), which the API server calls for what only the node
//! has: container logs (`GET /containerLogs/<namespace>/<pod>/<container>`). Only clients with a certificate
//! of the cluster CA get in (see `gantry_pki::node_endpoint_config`).

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

use crate::logs::{self, LogOptions};
use crate::worker::PodIndex;

type Body = BoxBody<Bytes, Infallible>;

/// How often a followed log is read again.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// What the endpoint serves from.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub index: Arc<PodIndex>,
    /// The agent's data directory (`pods/<uid>/logs/<container>/<n>.log`).
    pub dir: PathBuf,
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
                async move {
                    Ok::<_, Infallible>(endpoint.handle(request.method(), request.uri()).await)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
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
    async fn handle(&self, method: &Method, uri: &http::Uri) -> http::Response<Body> {
        let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
        match (method, parts.as_slice()) {
            (&Method::GET, ["containerLogs", namespace, pod, container]) => self.logs(
                namespace,
                pod,
                container,
                &LogOptions::from_query(uri.query().unwrap_or("")),
            ),
            _ => text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        options: &LogOptions,
    ) -> http::Response<Body> {
        let Some(uid) = self.index.uid(namespace, pod) else {
            return text(
                StatusCode::NOT_FOUND,
                format!("pod {namespace}/{pod} is not running on this node"),
            );
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

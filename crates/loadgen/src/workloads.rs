//! The workloads: create, get, list and watch, each against one namespace.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::stats::{Summary, ms};
use crate::{Client, Error, Target};

const JSON: &str = "application/json";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
const APPLY: &str = "application/apply-patch+yaml";
const MERGE_PATCH: &str = "application/merge-patch+json";
/// Streams per connection for watchers (hyper's and Go's servers allow 200–250 concurrent streams).
const WATCHERS_PER_CONNECTION: usize = 100;
/// The label the watch workload's writer changes; its value is the event's sequence number.
const SEQ_LABEL: &str = "loadgen-seq";

/// The kinds the load generator creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Small ConfigMaps (one data key).
    ConfigMap,
    /// Minimal valid Pods (one busybox container); nothing runs them.
    Pod,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmaps",
            Kind::Pod => "pods",
        }
    }

    fn object(self, name: &str) -> Value {
        match self {
            Kind::ConfigMap => json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"app": "loadgen"}},
                "data": {"key": format!("value of {name}")},
            }),
            Kind::Pod => json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": "loadgen"}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            }),
        }
    }
}

/// Throughput and latency of a batch of requests.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    /// Requests completed.
    pub count: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Wall time of the whole batch.
    pub wall: Duration,
    /// Per-request latency.
    pub latency: Summary,
}

impl Throughput {
    /// Requests per second over the batch's wall time.
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The list workload's figures.
#[derive(Clone, Copy, Debug)]
pub struct ListResult {
    /// Pods in the namespace (and in each list).
    pub objects: usize,
    /// Creating them.
    pub create: Throughput,
    /// LIST as JSON, request to the end of the body.
    pub json: Summary,
    /// LIST as a Table.
    pub table: Summary,
    /// Body sizes.
    pub json_bytes: usize,
    /// Body size of the Table.
    pub table_bytes: usize,
}

/// The watch workload's figures.
#[derive(Clone, Copy, Debug)]
pub struct WatchResult {
    /// Concurrent watchers.
    pub watchers: usize,
    /// Writes (each an event every watcher should see).
    pub events: usize,
    /// Events received (watchers × events when none is missing).
    pub delivered: usize,
    /// Events some watcher did not receive before the deadline.
    pub missing: usize,
    /// Time to establish all the watches.
    pub setup: Duration,
    /// Delivery latency: from just before the write request to receipt at a watcher.
    pub latency: Summary,
}

/// The CRD workload's figures: time from a CRD's create to its resource in discovery, in OpenAPI, and to the
/// first instance created.
#[derive(Clone, Copy, Debug)]
pub struct CrdResult {
    pub discovery: Summary,
    pub openapi: Summary,
    pub usable: Summary,
}

/// One session against an API server: a client and the namespace the workloads use.
#[derive(Debug)]
pub struct Session {
    target: Target,
    client: Arc<Client>,
    namespace: String,
}

impl Session {
    /// Connects with `connections` HTTP/2 connections (one per concurrent client is client-go's shape when
    /// each client is its own process).
    pub async fn connect(
        target: &Target,
        connections: usize,
        namespace: &str,
    ) -> Result<Session, Error> {
        Ok(Session {
            target: target.clone(),
            client: Arc::new(Client::connect(target, connections).await?),
            namespace: namespace.to_string(),
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The client.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// Creates the namespace (an existing one is fine).
    pub async fn create_namespace(&self) -> Result<(), Error> {
        let body =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}});
        self.client
            .expect(
                None,
                Method::POST,
                "/api/v1/namespaces",
                JSON,
                Some((JSON, Bytes::from(body.to_string()))),
                &[StatusCode::CREATED, StatusCode::OK, StatusCode::CONFLICT],
            )
            .await?;
        Ok(())
    }

    /// Deletes the namespace (the server deletes its contents, or not, as it does).
    pub async fn delete_namespace(&self) -> Result<(), Error> {
        self.client
            .expect(
                None,
                Method::DELETE,
                &format!("/api/v1/namespaces/{}", self.namespace),
                JSON,
                None,
                &[StatusCode::OK, StatusCode::ACCEPTED],
            )
            .await?;
        Ok(())
    }

    fn collection(&self, kind: Kind) -> String {
        format!("/api/v1/namespaces/{}/{}", self.namespace, kind.plural())
    }

    /// `count` objects named `{prefix}{i}`, created by `clients` concurrent clients (each on its own
    /// connection when the session has enough).
    pub async fn create(
        &self,
        kind: Kind,
        prefix: &str,
        count: usize,
        clients: usize,
    ) -> Result<Throughput, Error> {
        let clients = clients.max(1);
        let next = Arc::new(AtomicUsize::new(0));
        let path = Arc::new(self.collection(kind));
        let prefix = Arc::new(prefix.to_string());
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        for c in 0..clients {
            let (client, next, path, prefix) = (
                self.client.clone(),
                next.clone(),
                path.clone(),
                prefix.clone(),
            );
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<_, Error>(latencies);
                    }
                    let body = Bytes::from(kind.object(&format!("{prefix}{i}")).to_string());
                    let t = Instant::now();
                    client
                        .expect(
                            Some(c),
                            Method::POST,
                            &path,
                            JSON,
                            Some((JSON, body)),
                            &[StatusCode::CREATED],
                        )
                        .await?;
                    latencies.push(t.elapsed());
                }
            });
        }
        let mut latencies = join_all(tasks).await?;
        let wall = start.elapsed();
        Ok(Throughput {
            count,
            clients,
            wall,
            latency: Summary::of(&mut latencies),
        })
    }

    /// Server-side applies of `count` ConfigMaps named `{prefix}{i}` (`fieldManager=loadgen`, forced), one
    /// after another as `kubectl apply --server-side -f` sends them; `round` goes into their data, so a second
    /// round changes every object.
    pub async fn apply(
        &self,
        prefix: &str,
        count: usize,
        round: usize,
    ) -> Result<Throughput, Error> {
        let collection = self.collection(Kind::ConfigMap);
        let start = Instant::now();
        let mut latencies = Vec::with_capacity(count);
        for i in 0..count {
            let name = format!("{prefix}{i}");
            let mut body = Kind::ConfigMap.object(&name);
            body["metadata"]["namespace"] = json!(self.namespace);
            body["data"] = json!({"key": format!("value of {name}"), "round": round.to_string()});
            let t = Instant::now();
            self.client
                .expect(
                    None,
                    Method::PATCH,
                    &format!("{collection}/{name}?fieldManager=loadgen&force=true"),
                    JSON,
                    Some((APPLY, Bytes::from(body.to_string()))),
                    &[StatusCode::OK, StatusCode::CREATED],
                )
                .await?;
            latencies.push(t.elapsed());
        }
        Ok(Throughput {
            count,
            clients: 1,
            wall: start.elapsed(),
            latency: Summary::of(&mut latencies),
        })
    }

    /// Creates `count` CRDs one after another and times, for each, how long after its create was answered its
    /// resource is in discovery (`/apis/<group>/v1`), in OpenAPI (`/openapi/v3/apis/<group>/v1`), and an
    /// instance is created (each retried every 2 ms until it succeeds); every CRD is deleted afterwards.
    pub async fn crds(&self, count: usize) -> Result<CrdResult, Error> {
        let (mut discovered, mut documented, mut usable) = (Vec::new(), Vec::new(), Vec::new());
        let run = unique();
        for i in 0..count {
            let group = format!("r{run:x}-{i}.loadgen.gantry.dev");
            let name = format!("things.{group}");
            let crd = json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": name},
                "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}
            });
            let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
            self.client
                .expect(
                    None,
                    Method::POST,
                    crds,
                    JSON,
                    Some((JSON, Bytes::from(crd.to_string()))),
                    &[StatusCode::CREATED],
                )
                .await?;
            let start = Instant::now();
            let retry = |path: String, method: Method, body: Option<Value>| {
                let client = self.client.clone();
                async move {
                    loop {
                        let body = body.as_ref().map(|b| (JSON, Bytes::from(b.to_string())));
                        let (status, _) =
                            client.send(None, method.clone(), &path, JSON, body).await?;
                        if status.is_success() {
                            return Ok::<_, Error>(());
                        }
                        if start.elapsed() > Duration::from_secs(10) {
                            return Err(Error::Check(format!(
                                "{method} {path}: still {status} after 10 s"
                            )));
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            };
            retry(format!("/apis/{group}/v1"), Method::GET, None).await?;
            discovered.push(start.elapsed());
            retry(format!("/openapi/v3/apis/{group}/v1"), Method::GET, None).await?;
            documented.push(start.elapsed());
            let thing = json!({"apiVersion": format!("{group}/v1"), "kind": "Thing",
                "metadata": {"name": "one"}, "spec": {"size": 1}});
            let things = format!("/apis/{group}/v1/namespaces/{}/things", self.namespace);
            retry(things, Method::POST, Some(thing)).await?;
            usable.push(start.elapsed());
            self.client
                .expect(
                    None,
                    Method::DELETE,
                    &format!("{crds}/{name}"),
                    JSON,
                    None,
                    &[StatusCode::OK],
                )
                .await?;
        }
        Ok(CrdResult {
            discovery: Summary::of(&mut discovered),
            openapi: Summary::of(&mut documented),
            usable: Summary::of(&mut usable),
        })
    }

    /// GETs `path` `count` times from `clients` concurrent clients.
    pub async fn get(&self, path: &str, count: usize, clients: usize) -> Result<Throughput, Error> {
        let clients = clients.max(1);
        let next = Arc::new(AtomicUsize::new(0));
        let path = Arc::new(path.to_string());
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        for c in 0..clients {
            let (client, next, path) = (self.client.clone(), next.clone(), path.clone());
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let t = Instant::now();
                    client
                        .expect(Some(c), Method::GET, &path, JSON, None, &[StatusCode::OK])
                        .await?;
                    latencies.push(t.elapsed());
                }
                Ok::<_, Error>(latencies)
            });
        }
        let mut latencies = join_all(tasks).await?;
        Ok(Throughput {
            count,
            clients,
            wall: start.elapsed(),
            latency: Summary::of(&mut latencies),
        })
    }

    /// LISTs the namespace's pods `rounds` times as JSON, then as Table, one at a time; each must hold
    /// `expect` pods.
    pub async fn list_pods(
        &self,
        rounds: usize,
        expect: usize,
    ) -> Result<(Summary, Summary, usize, usize), Error> {
        let path = self.collection(Kind::Pod);
        let mut sizes = [0usize; 2];
        let mut summaries = [Summary::default(); 2];
        for (i, accept) in [JSON, TABLE].into_iter().enumerate() {
            let mut latencies = Vec::new();
            for _ in 0..rounds.max(1) {
                let t = Instant::now();
                let body = self
                    .client
                    .expect(None, Method::GET, &path, accept, None, &[StatusCode::OK])
                    .await?;
                latencies.push(t.elapsed());
                let value: Value = serde_json::from_slice(&body)?;
                let (field, kind) = if accept == JSON {
                    ("items", "PodList")
                } else {
                    ("rows", "Table")
                };
                let got = value[field].as_array().map_or(0, Vec::len);
                if value["kind"] != kind || got != expect {
                    return Err(Error::Check(format!(
                        "LIST {path} as {accept}: kind {}, {got} {field}, expected {kind} with {expect}",
                        value["kind"]
                    )));
                }
                sizes[i] = body.len();
            }
            summaries[i] = Summary::of(&mut latencies);
        }
        Ok((summaries[0], summaries[1], sizes[0], sizes[1]))
    }

    /// `watchers` concurrent watches of the namespace's pods from the current resourceVersion, then `events`
    /// merge patches of one pod, `interval` apart; every watcher must see every patch before `deadline`
    /// after the last.
    pub async fn watch(
        &self,
        watchers: usize,
        events: usize,
        interval: Duration,
        deadline: Duration,
    ) -> Result<WatchResult, Error> {
        let pod = "loadgen-watch-target";
        let pods = self.collection(Kind::Pod);
        self.client
            .expect(
                None,
                Method::POST,
                &pods,
                JSON,
                Some((JSON, Bytes::from(Kind::Pod.object(pod).to_string()))),
                &[StatusCode::CREATED, StatusCode::CONFLICT],
            )
            .await?;
        let list: Value = serde_json::from_slice(
            &self
                .client
                .expect(
                    None,
                    Method::GET,
                    &format!("{pods}?limit=1"),
                    JSON,
                    None,
                    &[StatusCode::OK],
                )
                .await?,
        )?;
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .ok_or_else(|| Error::Check("the pod list has no resourceVersion".into()))?
            .to_string();
        let connections = watchers.div_ceil(WATCHERS_PER_CONNECTION);
        let watch_client = Arc::new(Client::connect(&self.target, connections).await?);
        let sent: Arc<Vec<OnceLock<Instant>>> =
            Arc::new((0..events).map(|_| OnceLock::new()).collect());
        let watch_path = Arc::new(format!(
            "{pods}?watch=true&resourceVersion={rv}&allowWatchBookmarks=false"
        ));
        let setup_start = Instant::now();
        let (ready_tx, mut ready_rx) =
            tokio::sync::mpsc::channel::<Result<(), Error>>(watchers.max(1));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = JoinSet::new();
        for w in 0..watchers {
            let (client, path, ready, mut stop) = (
                watch_client.clone(),
                watch_path.clone(),
                ready_tx.clone(),
                stop_rx.clone(),
            );
            tasks.spawn(async move {
                let mut received: Vec<Option<Instant>> = vec![None; events];
                let response = match client
                    .request(
                        Some(w / WATCHERS_PER_CONNECTION),
                        Method::GET,
                        &path,
                        JSON,
                        None,
                    )
                    .await
                {
                    Ok(r) if r.status() == StatusCode::OK => r,
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = ready
                            .send(Err(Error::Check(format!("watch answered HTTP {status}"))))
                            .await;
                        return received;
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e)).await;
                        return received;
                    }
                };
                let _ = ready.send(Ok(())).await;
                drop(ready);
                let mut body = response.into_body();
                let mut buffer: Vec<u8> = Vec::new();
                let mut remaining = events;
                while remaining > 0 {
                    let frame = tokio::select! {
                        frame = body.frame() => frame,
                        _ = stop.changed() => break,
                    };
                    let now = Instant::now();
                    let Some(Ok(frame)) = frame else { break };
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    buffer.extend_from_slice(&data);
                    while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        if let Some(seq) = event_seq(&line)
                            && seq < events
                            && received[seq].is_none()
                        {
                            received[seq] = Some(now);
                            remaining -= 1;
                        }
                    }
                }
                received
            });
        }
        drop(ready_tx);
        let mut ready = 0;
        while let Some(result) = ready_rx.recv().await {
            result?;
            ready += 1;
        }
        if ready != watchers {
            return Err(Error::Check(format!(
                "only {ready} of {watchers} watches started"
            )));
        }
        let setup = setup_start.elapsed();
        for (i, slot) in sent.iter().enumerate() {
            let patch = json!({"metadata": {"labels": {SEQ_LABEL: i.to_string()}}});
            let _ = slot.set(Instant::now());
            self.client
                .expect(
                    None,
                    Method::PATCH,
                    &format!("{pods}/{pod}"),
                    JSON,
                    Some((MERGE_PATCH, Bytes::from(patch.to_string()))),
                    &[StatusCode::OK],
                )
                .await?;
            tokio::time::sleep(interval).await;
        }
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            let _ = stop_tx.send(true);
        });
        let mut latencies = Vec::with_capacity(watchers * events);
        let mut missing = 0;
        while let Some(joined) = tasks.join_next().await {
            let received = joined.map_err(|e| Error::Check(format!("a watcher failed: {e}")))?;
            for (seq, at) in received.into_iter().enumerate() {
                match (at, sent[seq].get()) {
                    (Some(at), Some(sent)) => latencies.push(at.saturating_duration_since(*sent)),
                    _ => missing += 1,
                }
            }
        }
        stopper.abort();
        Ok(WatchResult {
            watchers,
            events,
            delivered: latencies.len(),
            missing,
            setup,
            latency: Summary::of(&mut latencies),
        })
    }
}

/// The sequence label of a watch event line's object, if it has one.
fn event_seq(line: &[u8]) -> Option<usize> {
    let event: Value = serde_json::from_slice(line).ok()?;
    if event["type"] != "MODIFIED" {
        return None;
    }
    event["object"]["metadata"]["labels"][SEQ_LABEL]
        .as_str()?
        .parse()
        .ok()
}

async fn join_all(
    mut tasks: JoinSet<Result<Vec<Duration>, Error>>,
) -> Result<Vec<Duration>, Error> {
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.map_err(|e| Error::Check(format!("a client failed: {e}")))??);
    }
    Ok(all)
}

/// A workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Workload {
    /// POST ConfigMaps from concurrent clients.
    Create,
    /// GET one ConfigMap repeatedly from concurrent clients.
    Get,
    /// Create pods, then LIST them as JSON and as Table.
    List,
    /// Concurrent watchers of pods; per-event delivery latency.
    Watch,
    /// Server-side apply of ConfigMaps, one after another: created, then changed.
    Apply,
    /// CRDs created one after another: how soon each is usable.
    Crd,
    /// Pods on a node, one at a time then a batch: how soon they run and go (needs a node agent).
    Pods,
}

/// Sizes and bounds of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Concurrent clients (each on its own HTTP/2 connection) for create, get and the list's pod creation.
    pub clients: usize,
    /// ConfigMaps the create workload creates.
    pub creates: usize,
    /// GETs of one ConfigMap.
    pub gets: usize,
    /// Pods the list workload creates and lists.
    pub list_objects: usize,
    /// LISTs per format (median and p90 over these).
    pub list_rounds: usize,
    /// Concurrent watchers.
    pub watchers: usize,
    /// Writes the watchers must see.
    pub watch_events: usize,
    /// Pause after each write of the watch workload.
    pub watch_interval: Duration,
    /// ConfigMaps the apply workload applies (twice).
    pub applies: usize,
    /// CRDs the crd workload creates.
    pub crds: usize,
    /// The node the pods workload binds its pods to (`None`: the first Ready node).
    pub pod_node: Option<String>,
    /// The image of the pods workload's pods.
    pub pod_image: String,
    /// Pods the pods workload starts one at a time.
    pub pods_single: usize,
    /// Pods the pods workload starts at once.
    pub pods_batch: usize,
    /// How long the batch stays running before it is deleted.
    pub pods_hold: Duration,
    /// Which workloads run, in the order create, get, list, watch, apply.
    pub workloads: Vec<Workload>,
    /// Namespace to use; `None`: a fresh `loadgen-…` namespace, deleted at the end.
    pub namespace: Option<String>,
    /// Bound on each workload's time.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            clients: 16,
            creates: 10_000,
            gets: 10_000,
            list_objects: 10_000,
            list_rounds: 10,
            watchers: 1_000,
            watch_events: 100,
            watch_interval: Duration::from_millis(10),
            applies: 1_000,
            crds: 20,
            pod_node: None,
            pod_image: "gantry.local/busybox:latest".into(),
            pods_single: 20,
            pods_batch: 100,
            pods_hold: Duration::ZERO,
            workloads: vec![
                Workload::Create,
                Workload::Get,
                Workload::List,
                Workload::Watch,
                Workload::Apply,
                Workload::Crd,
            ],
            namespace: None,
            timeout: Duration::from_secs(600),
        }
    }
}

/// What a run measured (a workload that did not run is `None`).
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The namespace used.
    pub namespace: String,
    /// ConfigMap creation.
    pub create: Option<Throughput>,
    /// GETs.
    pub get: Option<Throughput>,
    /// LISTs.
    pub list: Option<ListResult>,
    /// Watch delivery.
    pub watch: Option<WatchResult>,
    /// Server-side applies: the pass that creates, the pass that changes.
    pub apply: Option<(Throughput, Throughput)>,
    /// CRDs becoming usable.
    pub crd: Option<CrdResult>,
    /// Pods starting and stopping.
    pub pods: Option<crate::pods::PodsResult>,
}

/// Runs the chosen workloads against `target`, printing one result line per workload.
pub async fn run(target: &Target, options: &Options) -> Result<Report, Error> {
    let namespace = match &options.namespace {
        Some(ns) => ns.clone(),
        None => format!("loadgen-{:x}", unique()),
    };
    let own_namespace = options.namespace.is_none();
    let session = Session::connect(target, options.clients, &namespace).await?;
    session.create_namespace().await?;
    let result = bounded(options.timeout, run_in(&session, options)).await;
    if own_namespace && let Err(e) = session.delete_namespace().await {
        println!("loadgen: could not delete namespace {namespace}: {e}");
    }
    result
}

async fn bounded<T>(
    limit: Duration,
    f: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| Error::Check(format!("the run exceeded {} s", limit.as_secs())))?
}

async fn run_in(session: &Session, o: &Options) -> Result<Report, Error> {
    let wants = |w| o.workloads.contains(&w);
    let mut report = Report {
        namespace: session.namespace().to_string(),
        ..Report::default()
    };
    if wants(Workload::Create) {
        let t = bounded(
            o.timeout,
            session.create(Kind::ConfigMap, "cm-", o.creates, o.clients),
        )
        .await?;
        println!(
            "create: {} ConfigMaps, {} clients: {:.0} creates/s, latency {}",
            t.count,
            t.clients,
            t.per_second(),
            t.latency
        );
        report.create = Some(t);
    }
    if wants(Workload::Get) {
        session.create(Kind::ConfigMap, "get-target-", 1, 1).await?;
        let path = format!("{}/get-target-0", session.collection(Kind::ConfigMap));
        let t = bounded(o.timeout, session.get(&path, o.gets, o.clients)).await?;
        println!(
            "get: {} GETs of one ConfigMap, {} clients: {:.0} gets/s, latency {}",
            t.count,
            t.clients,
            t.per_second(),
            t.latency
        );
        report.get = Some(t);
    }
    if wants(Workload::List) {
        let create = bounded(
            o.timeout,
            session.create(Kind::Pod, "pod-", o.list_objects, o.clients),
        )
        .await?;
        let (json, table, json_bytes, table_bytes) =
            bounded(o.timeout, session.list_pods(o.list_rounds, o.list_objects)).await?;
        println!(
            "list: {} pods (created at {:.0}/s, p99 {}): JSON ({:.1} MB) median {} p90 {}; Table ({:.1} MB) median {} p90 {} (n={})",
            o.list_objects,
            create.per_second(),
            ms(create.latency.p99),
            json_bytes as f64 / 1e6,
            ms(json.p50),
            ms(json.p90),
            table_bytes as f64 / 1e6,
            ms(table.p50),
            ms(table.p90),
            json.count
        );
        report.list = Some(ListResult {
            objects: o.list_objects,
            create,
            json,
            table,
            json_bytes,
            table_bytes,
        });
    }
    if wants(Workload::Watch) {
        let deadline = Duration::from_secs(30).min(o.timeout);
        let w = bounded(
            o.timeout,
            session.watch(o.watchers, o.watch_events, o.watch_interval, deadline),
        )
        .await?;
        println!(
            "watch: {} watchers x {} events: {} delivered, {} missing; setup {}; latency {}",
            w.watchers,
            w.events,
            w.delivered,
            w.missing,
            ms(w.setup),
            w.latency
        );
        report.watch = Some(w);
    }
    if wants(Workload::Apply) {
        let created = bounded(o.timeout, session.apply("applied-", o.applies, 1)).await?;
        let changed = bounded(o.timeout, session.apply("applied-", o.applies, 2)).await?;
        println!(
            "apply: {} ConfigMaps server-side, one at a time: creating {} in all ({:.0}/s, latency {}); changing {} in all ({:.0}/s, latency {})",
            o.applies,
            ms(created.wall),
            created.per_second(),
            created.latency,
            ms(changed.wall),
            changed.per_second(),
            changed.latency
        );
        report.apply = Some((created, changed));
    }
    if wants(Workload::Crd) {
        let c = bounded(o.timeout, session.crds(o.crds)).await?;
        println!(
            "crd: {} CRDs, from create to: discovery {}; OpenAPI {}; first instance created {}",
            c.usable.count, c.discovery, c.openapi, c.usable
        );
        report.crd = Some(c);
    }
    if wants(Workload::Pods) {
        let p = crate::pods::run(
            session,
            o.pod_node.as_deref(),
            &o.pod_image,
            o.pods_single,
            o.pods_batch,
            o.pods_hold,
            o.timeout,
        )
        .await?;
        println!(
            "pods: one at a time, create to Ready: {}; {} at once: all Ready {}, all deleted {}",
            p.single,
            p.batch,
            ms(p.batch_running),
            ms(p.batch_deleted)
        );
        report.pods = Some(p);
    }
    Ok(report)
}

/// A value unlikely to repeat between runs: nanoseconds since the epoch.
fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

//! `gantry-loadgen`: an API load generator for any Kubernetes API server reachable with a kubeconfig, so
//! Gantry can be measured side by side with upstream Kubernetes.
//!
//! - [`Target`] reads a kubeconfig's current context (YAML or JSON): server, CA, client certificate or token.
//! - [`Client`] speaks HTTP/2 over rustls (ring), like client-go, over a fixed set of connections.
//! - [`workloads`]: create (ConfigMaps from concurrent clients), get (one object), list (pods as JSON and as
//!   Table) and watch (per-event delivery latency to many watchers); [`run`] runs them in a fresh namespace.
//! - `gantry bench api` is the command line ([`ApiArgs`], [`run_cli`]); `benches/api.rs` measures a local
//!   `gantry server` (start time, memory, the workloads).

mod client;
mod kubeconfig;
pub mod pods;
pub mod stats;
pub mod workloads;

use std::path::PathBuf;
use std::time::Duration;

pub use client::Client;
pub use kubeconfig::Target;
pub use workloads::{CrdResult, Options, Report, Session, Workload, run};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig is missing, malformed or incomplete.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// TLS setup failed.
    #[error("tls: {0}")]
    Tls(String),
    /// Connecting failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// HTTP/2 failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// A response body was not the JSON expected.
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The server answered with an unexpected status.
    #[error("{request}: HTTP {status}: {body}")]
    Status {
        /// Method and path.
        request: String,
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A check on the results failed, or a bound was exceeded.
    #[error("{0}")]
    Check(String),
}

/// `gantry bench api`: load an API server and print the figures.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// The kubeconfig whose current context names the server (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace to work in (created if missing, kept); default: a fresh `loadgen-…` one, deleted at the end.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Concurrent clients, each on its own HTTP/2 connection.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// ConfigMaps to create.
    #[arg(long, default_value_t = 10_000)]
    pub creates: usize,
    /// GETs of one ConfigMap.
    #[arg(long, default_value_t = 10_000)]
    pub gets: usize,
    /// Pods to create and then list.
    #[arg(long, default_value_t = 10_000)]
    pub list_objects: usize,
    /// LISTs per format.
    #[arg(long, default_value_t = 10)]
    pub list_rounds: usize,
    /// Concurrent watchers.
    #[arg(long, default_value_t = 1_000)]
    pub watchers: usize,
    /// Pod updates the watchers must all see.
    #[arg(long, default_value_t = 100)]
    pub watch_events: usize,
    /// Milliseconds between the watch workload's updates.
    #[arg(long, default_value_t = 10)]
    pub watch_interval_ms: u64,
    /// ConfigMaps to apply server-side (twice: created, then changed), one at a time.
    #[arg(long, default_value_t = 1_000)]
    pub applies: usize,
    /// CRDs to create, one at a time, timing how soon each is usable.
    #[arg(long, default_value_t = 20)]
    pub crds: usize,
    /// The node the pods workload binds its pods to (default: the first Ready node).
    #[arg(long)]
    pub pod_node: Option<String>,
    /// The image of the pods workload's pods.
    #[arg(long, default_value = "gantry.local/busybox:latest")]
    pub pod_image: String,
    /// Pods the pods workload starts one at a time.
    #[arg(long, default_value_t = 20)]
    pub pods_single: usize,
    /// Pods the pods workload starts at once.
    #[arg(long, default_value_t = 100)]
    pub pods_batch: usize,
    /// Seconds the batch of pods stays running before it is deleted (to measure the node's memory with them).
    #[arg(long, default_value_t = 0)]
    pub pods_hold_s: u64,
    /// Workloads to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "create,get,list,watch,apply,crd"
    )]
    pub workloads: Vec<Workload>,
    /// Bound on each workload, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
}

impl ApiArgs {
    /// The run's options.
    pub fn options(&self) -> Options {
        Options {
            clients: self.clients,
            creates: self.creates,
            gets: self.gets,
            list_objects: self.list_objects,
            list_rounds: self.list_rounds,
            watchers: self.watchers,
            watch_events: self.watch_events,
            watch_interval: Duration::from_millis(self.watch_interval_ms),
            applies: self.applies,
            crds: self.crds,
            pod_node: self.pod_node.clone(),
            pod_image: self.pod_image.clone(),
            pods_single: self.pods_single,
            pods_batch: self.pods_batch,
            pods_hold: Duration::from_secs(self.pods_hold_s),
            workloads: self.workloads.clone(),
            namespace: self.namespace.clone(),
            timeout: Duration::from_secs(self.timeout_s),
        }
    }

    /// The kubeconfig to read.
    pub fn kubeconfig_path(&self) -> Result<PathBuf, Error> {
        if let Some(path) = &self.kubeconfig {
            return Ok(path.clone());
        }
        if let Some(path) = std::env::var_os("KUBECONFIG") {
            // The first of a list, as kubectl's merge would start with.
            if let Some(first) = std::env::split_paths(&path).next() {
                return Ok(first);
            }
        }
        std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".kube/config"))
            .ok_or_else(|| Error::Kubeconfig("no --kubeconfig, $KUBECONFIG or $HOME".into()))
    }
}

/// Runs `gantry bench api`.
pub async fn run_cli(args: ApiArgs) -> Result<(), String> {
    let path = args.kubeconfig_path().map_err(|e| e.to_string())?;
    let target = Target::from_kubeconfig(&path).map_err(|e| e.to_string())?;
    println!(
        "loadgen: https://{}:{} ({}), workloads {:?}",
        target.host,
        target.port,
        path.display(),
        args.workloads
    );
    run(&target, &args.options())
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

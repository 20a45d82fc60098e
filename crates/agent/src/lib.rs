//! Gantry's node agent (its kubelet): registers the machine as a Node, keeps its Lease and status current,
//! and runs the pods bound to it.

pub mod endpoint;
pub mod events;
pub mod facts;
pub mod host;
pub mod launch;
pub mod logs;
pub mod node;
pub mod pods;
pub mod probes;
pub mod restart;
pub mod sessions;
pub mod status;
pub mod worker;

use std::net::IpAddr;
use std::path::PathBuf;

use gantry_client::Client;

pub use facts::NodeFacts;
pub use node::NodeIdentity;

/// How often the agent checks whether the disk holding images is full enough to collect some.
const IMAGE_GC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// How an agent is set up.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    pub node_ip: IpAddr,
    /// Where the agent keeps its state (containers, logs, images).
    pub data_dir: PathBuf,
    /// The addresses this node gives its pods (`10.42.0.0/24`).
    pub pod_cidr: String,
    /// The Linux bridge pods are attached to (`cni0`).
    pub cni_bridge: String,
    /// Registries (`host:port`) pulled from over plain HTTP.
    pub plain_http_registries: Vec<String>,
    /// The port of the agent's HTTPS endpoint (logs), as a Node's `daemonEndpoints` say.
    pub endpoint_port: u16,
    /// The cluster CA (PEM): the endpoint lets in only clients with its certificates.
    pub ca_pem: Vec<u8>,
    /// The cluster DNS server `ClusterFirst` pods resolve through (the kubelet's `clusterDNS`); without one
    /// they get the node's resolvers.
    pub cluster_dns: Option<IpAddr>,
    /// The cluster's DNS domain (`cluster.local`): pods' search paths and subdomain names end in it.
    pub cluster_domain: String,
    /// How long the node's Lease is valid (`nodeLeaseDurationSeconds`); renewed every quarter of it.
    pub lease_duration_seconds: u32,
}

/// Opens what runs the node's containers: fails (naming what to install) when the host lacks an OCI runtime,
/// the CNI plugins or overlayfs, or the agent is not root.
pub fn open_host(config: &AgentConfig) -> Result<host::NodeHost, host::SetupError> {
    let network = gantry_net::default_network(
        &config.pod_cidr,
        &config.cni_bridge,
        1450,
        &config.data_dir.join("cni"),
    );
    host::NodeHost::open(
        &config.data_dir,
        network,
        gantry_images::PullOptions {
            plain_http_registries: config.plain_http_registries.clone(),
            credentials: None,
        },
        host::NodeSettings {
            node_ip: config.node_ip.to_string(),
            dns: launch::ClusterDns {
                server: config.cluster_dns,
                domain: config.cluster_domain.clone(),
            },
        },
    )
}

/// Runs the agent for as long as the process lives: registers the Node (retrying until the API answers),
/// renews its Lease, refreshes its status, and runs the pods bound to it on `host`.
pub async fn run(client: Client, config: AgentConfig, host: host::NodeHost) {
    let facts = NodeFacts::gather(&config.data_dir);
    let identity = NodeIdentity {
        name: config.node_name.clone(),
        ip: config.node_ip,
        runtime_version: host.runtime_version(),
        endpoint_port: config.endpoint_port,
    };
    let uid = loop {
        match node::register(&client, &identity, &facts).await {
            Ok(uid) => break uid,
            Err(e) => {
                tracing::warn!(node = %identity.name, "cannot register the node yet: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    tracing::info!(node = %identity.name, runtime = %identity.runtime_version, "node registered");
    let lease = {
        let (client, name) = (client.clone(), identity.name.clone());
        let seconds = config.lease_duration_seconds;
        async move {
            loop {
                if let Err(e) = node::renew_lease(&client, &name, &uid, seconds).await {
                    tracing::warn!(node = %name, "cannot renew the node lease: {e}");
                }
                tokio::time::sleep(node::lease_renewal(seconds)).await;
            }
        }
    };
    let status = async {
        let mut last = tokio::time::Instant::now();
        loop {
            // Every STATUS_CHECK the Node is read; its status is written afresh every STATUS_REFRESH, or at
            // once when it is not Ready (the control plane marked it Unknown while this agent was cut off).
            tokio::time::sleep(node::STATUS_CHECK).await;
            let due = last.elapsed() >= node::STATUS_REFRESH;
            if !due && node::is_ready(&client, &identity.name).await {
                continue;
            }
            last = tokio::time::Instant::now();
            let facts = NodeFacts::gather(&config.data_dir);
            if let Err(e) = node::refresh_status(&client, &identity, &facts).await {
                tracing::warn!(node = %identity.name, "cannot update the node status: {e}");
            }
        }
    };
    let runtime = host.runtime().clone();
    let host = std::sync::Arc::new(host);
    let images = {
        let host = host.clone();
        async move {
            loop {
                tokio::time::sleep(IMAGE_GC_INTERVAL).await;
                match host.collect_images() {
                    Ok(Some(report)) => tracing::info!(
                        deleted = report.deleted.len(),
                        freed = report.freed,
                        "image garbage collection"
                    ),
                    Ok(None) => {}
                    Err(e) => tracing::warn!("image garbage collection failed: {e}"),
                }
            }
        }
    };
    let index = std::sync::Arc::new(worker::PodIndex::default());
    let pods = pods::run(
        client.clone(),
        identity.name.clone(),
        identity.ip.to_string(),
        host,
        index.clone(),
    );
    let endpoint = async {
        let names = vec![identity.name.clone(), identity.ip.to_string()];
        let tls = match gantry_pki::node_endpoint_config(&config.ca_pem, &names) {
            Ok(tls) => tls,
            Err(e) => return tracing::error!("the node endpoint cannot start: {e}"),
        };
        let address = std::net::SocketAddr::new(identity.ip, config.endpoint_port);
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => {
                let dir = config.data_dir.clone();
                endpoint::serve(
                    listener,
                    tls,
                    endpoint::Endpoint {
                        index,
                        dir,
                        runtime,
                    },
                )
                .await;
            }
            Err(e) => tracing::error!("the node endpoint cannot listen on {address}: {e}"),
        }
    };
    futures::join!(lease, status, pods, endpoint, images);
}

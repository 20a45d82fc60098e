//! Gantry's node agent (its kubelet): registers the machine as a Node, keeps its Lease and status current,
//! and runs the pods bound to it.

pub mod endpoint;
pub mod events;
pub mod facts;
pub mod host;
pub mod launch;
pub mod logs;
pub mod network;
pub mod node;
pub mod pods;
pub mod probes;
pub mod restart;
pub mod service_links;
pub mod sessions;
pub mod status;
pub mod storage;
pub mod volumes;
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
    /// Where the local-path provisioner makes the volumes of claims placed on this node.
    pub storage_dir: PathBuf,
    /// The addresses this node gives its pods (`10.42.0.0/24`); without one, the control plane allocates them
    /// (the Node's `spec.podCIDR`).
    pub pod_cidr: Option<gantry_net::Ipv4Net>,
    /// The cluster's Service network (ClusterIPs).
    pub service_cidr: gantry_net::Ipv4Net,
    /// How pods reach other nodes' pods (VXLAN or plain routes).
    pub pod_network: gantry_net::overlay::Backend,
    /// The name of the agent's nftables tables (`gantry`, the Service proxy's; `<name>-node` holds the pod
    /// egress masquerade and the cluster DNS redirect).
    pub nft_table: String,
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
    // Until the Node has a pod CIDR, a network of no addresses: no pod is started before it does.
    let cidr = config
        .pod_cidr
        .map_or("0.0.0.0/32".to_owned(), |c| c.to_string());
    host::NodeHost::open(
        &config.data_dir,
        pod_network(config, &cidr),
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

fn pod_network(config: &AgentConfig, cidr: &str) -> gantry_net::Network {
    gantry_net::default_network(
        cidr,
        &config.cni_bridge,
        gantry_net::overlay::VXLAN_MTU,
        &config.data_dir.join("cni"),
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
        pod_cidr: config.pod_cidr.map(|c| c.to_string()),
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
    let storage = storage::Storage::start(
        client.clone(),
        identity.name.clone(),
        config.storage_dir.clone(),
    );
    let allocatable = node::node_status(&identity, &facts, "")["allocatable"].clone();
    host.set_volumes(volumes::VolumeManager::start(
        client.clone(),
        host.pods_dir(),
        allocatable,
        storage,
    ));
    let index = std::sync::Arc::new(worker::PodIndex::default());
    // Pods start once the node has its pod CIDR (the Lease and status go on meanwhile).
    let pod_index = index.clone();
    let network_and_pods = async {
        let pod_cidr = network::pod_cidr(&client, &identity.name, config.pod_cidr).await;
        tracing::info!(node = %identity.name, %pod_cidr, "pod network");
        host.set_network(pod_network(&config, &pod_cidr.to_string()));
        let node_network = network::run(&client, &identity, &config, pod_cidr);
        let pods = pods::run(
            client.clone(),
            identity.name.clone(),
            identity.ip.to_string(),
            host,
            pod_index,
        );
        futures::join!(node_network, pods);
    };
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
    futures::join!(lease, status, network_and_pods, endpoint, images);
}

//! `gantry`: one binary for the whole cluster. `gantry server` runs the control plane.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use gantry_agent::AgentConfig;
use gantry_apiserver::{ApiConfig, Ipv4Cidr, ServiceRanges, parse_port_range};
use gantry_net::Ipv4Net;
use gantry_net::overlay::Backend;
use gantry_pki::{ClusterPki, PkiOptions, Tokens};
use gantry_store::StoreUrl;

#[derive(Debug, Parser)]
#[command(
    name = "gantry",
    version,
    about = "A Kubernetes-compatible container orchestrator in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the control plane: the Kubernetes API over HTTPS on the embedded store (or etcd), and a node
    /// agent for this machine unless --disable-agent.
    Server(ServerArgs),
    /// Runs a node agent that joins this machine to a cluster.
    Agent(AgentArgs),
    /// Cluster tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The node's images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Supervises one container (started by the node agent; not for people).
    #[command(hide = true)]
    Shim(gantry_runtime::shim::ShimArgs),
    /// Holds a pod's namespaces (started by the node agent; not for people).
    #[command(hide = true)]
    Pause(gantry_runtime::pause::PauseArgs),
    /// Load generators; run against any Kubernetes API server.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Create, get, list and watch load on the API server of a kubeconfig; prints throughput and latency.
    Api(gantry_loadgen::ApiArgs),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Makes a token for `gantry agent --token` and prints it.
    Create {
        /// The server's data directory.
        #[arg(long, default_value = "/var/lib/gantry")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Imports an OCI image layout (a directory or a tar of one) or a `docker save` archive.
    Import {
        file: PathBuf,
        #[command(flatten)]
        store: ImageStoreArgs,
    },
    /// Lists the images.
    Ls {
        #[command(flatten)]
        store: ImageStoreArgs,
    },
    /// Makes a busybox image from this machine's busybox-static (no registry needed) and imports it.
    Busybox {
        /// Its name.
        #[arg(long, default_value = "gantry.local/busybox:latest")]
        tag: String,
        #[command(flatten)]
        store: ImageStoreArgs,
    },
    /// Removes every image that no container on this node was made from.
    Prune {
        #[command(flatten)]
        store: ImageStoreArgs,
    },
    /// Removes an image reference (and the image, when nothing else names it).
    Rm {
        reference: String,
        #[command(flatten)]
        store: ImageStoreArgs,
    },
}

#[derive(Debug, clap::Args)]
struct ImageStoreArgs {
    /// The agent's data directory (the server's own agent keeps its state in SERVER_DATA_DIR/agent).
    #[arg(long, default_value = "/var/lib/gantry/agent")]
    data_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// The API server, `https://HOST:PORT`.
    #[arg(long)]
    server: String,
    /// A join token (`gantry token create` on the server makes one).
    #[arg(long)]
    token: String,
    /// The cluster's certificate authority (the server's DATA_DIR/tls/ca.crt).
    #[arg(long)]
    ca_file: PathBuf,
    /// Where the agent keeps its state.
    #[arg(long, default_value = "/var/lib/gantry-agent")]
    data_dir: PathBuf,
    /// The cluster's Service network (the server's --service-cidr).
    #[arg(long, default_value = "10.43.0.0/16", value_parser = str::parse::<Ipv4Net>)]
    service_cidr: Ipv4Net,
    /// The Node's name (default: the host name); with --simulate, the simulated nodes' prefix (default "sim").
    #[arg(long)]
    node_name: Option<String>,
    /// Register this many simulated nodes instead of this machine (scale tests, like KWOK): they renew their
    /// Leases and report the pods bound to them Running and Ready without running anything.
    #[arg(long, default_value_t = 0)]
    simulate: usize,
    /// Pods each simulated node takes.
    #[arg(long, default_value_t = gantry_agent::node::MAX_PODS)]
    simulate_max_pods: u32,
    /// This machine's address in the cluster (default: the address of the interface of the default route).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    #[command(flatten)]
    network: PodNetworkArgs,
    /// The port of the agent's HTTPS endpoint (logs), which the API server calls.
    #[arg(long, default_value_t = 10250)]
    node_endpoint_port: u16,
    /// Where the built-in local-path provisioner makes the volumes of claims placed on this node (default:
    /// `storage/` in the agent's data directory).
    #[arg(long)]
    storage_dir: Option<PathBuf>,
    /// Registries (`host:port`) pulled from over plain HTTP (repeatable).
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// The cluster DNS server that pods with dnsPolicy ClusterFirst resolve through ("" for none: they get
    /// the node's resolvers).
    #[arg(long, default_value = "10.43.0.10")]
    cluster_dns: DnsServer,
    /// The cluster's DNS domain (pods' search paths).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// How long the node's Lease is valid without renewal; it is renewed every quarter of it (the
    /// kubelet's nodeLeaseDurationSeconds). Keep it below the server's --node-monitor-grace-period.
    #[arg(long, default_value_t = gantry_agent::node::LEASE_DURATION_SECONDS)]
    node_lease_duration_seconds: u32,
}

/// How a node's pods are networked (flags of `gantry agent` and of the server's own agent).
#[derive(Debug, clap::Args)]
struct PodNetworkArgs {
    /// The addresses this node gives its pods [default: the share of the cluster's pod network that the
    /// control plane allocates to the Node].
    #[arg(long, value_parser = str::parse::<Ipv4Net>)]
    pod_cidr: Option<Ipv4Net>,
    /// The Linux bridge the pods are attached to.
    #[arg(long, default_value = "cni0")]
    cni_bridge: String,
    /// How pods reach other nodes' pods: vxlan (works across routed networks) or host-gw (plain routes,
    /// every node on one L2 segment).
    #[arg(long, default_value = "vxlan")]
    pod_network: Backend,
    /// The VXLAN network identifier (device `gantry.<ID>`); the same on every node of a cluster.
    #[arg(long, default_value_t = 1)]
    vxlan_id: u32,
    /// The UDP port VXLAN traffic between nodes uses; the same on every node of a cluster.
    #[arg(long, default_value_t = 8472)]
    vxlan_port: u16,
    /// The name of the node's nftables tables (the Service proxy's; `<NAME>-node` holds the pod egress
    /// masquerade and the cluster DNS redirect).
    #[arg(long, default_value = "gantry")]
    nft_table: String,
}

impl PodNetworkArgs {
    fn backend(&self) -> Backend {
        match self.pod_network {
            Backend::Vxlan { .. } => Backend::Vxlan {
                vni: self.vxlan_id,
                port: self.vxlan_port,
            },
            Backend::HostGw => Backend::HostGw,
        }
    }
}

/// `--cluster-dns`: an address, or none (`""`, `none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DnsServer(Option<IpAddr>);

impl std::str::FromStr for DnsServer {
    type Err = std::net::AddrParseError;
    fn from_str(s: &str) -> Result<DnsServer, Self::Err> {
        match s.trim() {
            "" | "none" => Ok(DnsServer(None)),
            ip => ip.parse().map(|ip| DnsServer(Some(ip))),
        }
    }
}

/// The default cluster DNS server: the 10th address of the service network (10.43.0.10 in 10.43.0.0/16),
/// none in a network too small to have one.
fn tenth_address(cidr: &Ipv4Cidr) -> Option<IpAddr> {
    let ranges = ServiceRanges {
        cidr: *cidr,
        ..ServiceRanges::default()
    };
    ranges.dns_address().map(IpAddr::V4)
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// Where the server keeps its state: certificates, tokens, the kubeconfig and (by default) the database.
    #[arg(long, default_value = "/var/lib/gantry")]
    data_dir: PathBuf,
    /// Address and port of the HTTPS API.
    #[arg(long, default_value = "0.0.0.0:6443")]
    listen: SocketAddr,
    /// The store: sqlite:///PATH (default: DATA_DIR/state.db) or etcd://HOST:PORT[,HOST:PORT...].
    #[arg(long)]
    datastore: Option<String>,
    /// Extra names or addresses for the serving certificate (repeatable).
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,
    /// Do not run a node agent in the server process.
    #[arg(long)]
    disable_agent: bool,
    /// Do not run the scheduler in the server process (pods without a node then stay Pending).
    #[arg(long)]
    disable_scheduler: bool,
    /// Do not run the controllers (workloads, garbage collector, node lifecycle) in the server process.
    #[arg(long)]
    disable_controllers: bool,
    /// How long a node may go without renewing its Lease or posting its status before it is marked
    /// Unknown (unreachable) and tainted, as kube-controller-manager's flag (e.g. 50s, 1m, 500ms).
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// Seconds new pods tolerate `node.kubernetes.io/not-ready:NoExecute` before eviction (kube-apiserver's flag).
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// Seconds new pods tolerate `node.kubernetes.io/unreachable:NoExecute` before eviction (kube-apiserver's flag).
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    /// Seconds between compactions of the store's history (as kube-apiserver's
    /// --etcd-compaction-interval); 0 turns compaction off.
    #[arg(long, default_value_t = 300)]
    compaction_interval: u64,
    /// The network Services get their cluster IPs from (its first address is the `kubernetes` Service's).
    #[arg(long, default_value = "10.43.0.0/16", value_parser = str::parse::<Ipv4Cidr>)]
    service_cidr: Ipv4Cidr,
    /// The ports NodePort and LoadBalancer Services get their node ports from.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    service_node_port_range: RangeInclusive<u16>,
    /// This machine's address in the cluster (default: the listen address, or for 0.0.0.0 the address of the
    /// interface of the default route, or 127.0.0.1 without one).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// The cluster's pod network: each Node gets a share of it (its `spec.podCIDR`).
    #[arg(long, default_value = "10.42.0.0/16", value_parser = str::parse::<Ipv4Net>)]
    cluster_cidr: Ipv4Net,
    /// The prefix length of each Node's share of --cluster-cidr.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(8..=30))]
    node_cidr_mask_size: u8,
    /// The server's own node agent's pod network.
    #[command(flatten)]
    network: PodNetworkArgs,
    /// The port of the server's own node agent's HTTPS endpoint.
    #[arg(long, default_value_t = 10250)]
    node_endpoint_port: u16,
    /// Where the built-in local-path provisioner makes the volumes of claims placed on this node (default:
    /// `storage/` in the agent's data directory).
    #[arg(long)]
    storage_dir: Option<PathBuf>,
    /// Registries (`host:port`) pulled from over plain HTTP (repeatable).
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// The cluster DNS server that the server's own node agent gives pods with dnsPolicy ClusterFirst
    /// [default: the 10th address of --service-cidr, 10.43.0.10] ("" for none: they get the node's
    /// resolvers).
    #[arg(long)]
    cluster_dns: Option<DnsServer>,
    /// The cluster's DNS domain (pods' search paths).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// How long the node's Lease is valid without renewal; it is renewed every quarter of it (the
    /// kubelet's nodeLeaseDurationSeconds). Keep it below the server's --node-monitor-grace-period.
    #[arg(long, default_value_t = gantry_agent::node::LEASE_DURATION_SECONDS)]
    node_lease_duration_seconds: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The shim and the pause process stay single-threaded (they block signals and unshare namespaces).
    let cli = match cli.command {
        Command::Shim(args) => return gantry_runtime::shim::main(args),
        Command::Pause(args) => return gantry_runtime::pause::main(args),
        command => Cli { command },
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gantry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Server(args) => runtime.block_on(server(args)),
        Command::Agent(args) => runtime.block_on(agent(args)),
        Command::Token(TokenCommand::Create { data_dir }) => Tokens::load_or_create(&data_dir)
            .and_then(|tokens| tokens.generate_node_join_token())
            .map(|token| println!("{token}"))
            .map_err(|e| e.to_string()),
        Command::Image(command) => image(command),
        Command::Shim(_) | Command::Pause(_) => unreachable!("handled before the runtime starts"),
        Command::Bench(BenchCommand::Api(args)) => runtime.block_on(gantry_loadgen::run_cli(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gantry: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn server(args: ServerArgs) -> Result<(), String> {
    let url = match &args.datastore {
        Some(url) => StoreUrl::parse(url).map_err(|e| e.to_string())?,
        None => StoreUrl::default_in(&args.data_dir),
    };
    let store = gantry_datastore::open(&url)
        .await
        .map_err(|e| format!("cannot open the store: {e}"))?;
    let node_ip = args
        .node_ip
        .unwrap_or_else(|| node_address(args.listen.ip()));
    let options = PkiOptions {
        node_ip: Some(node_ip),
        listen_addresses: vec![args.listen.ip()],
        tls_sans: args.tls_sans,
        ..PkiOptions::default()
    };
    let pki = ClusterPki::load_or_create(&args.data_dir, &options).map_err(|e| e.to_string())?;
    let tokens = Tokens::load_or_create(&args.data_dir).map_err(|e| e.to_string())?;
    let admin = tokens
        .admin_token()
        .and_then(|token| tokens.verify(&token))
        .ok_or("the tokens file has no admin token")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let kubeconfig = args.data_dir.join("kubeconfig");
    pki.write_kubeconfig(&kubeconfig, &format!("https://{}", client_address(local)))
        .map_err(|e| e.to_string())?;
    if args.compaction_interval > 0 {
        let interval = std::time::Duration::from_secs(args.compaction_interval);
        tokio::spawn(gantry_store::compact_periodically(store.clone(), interval));
    }
    let cluster_dns = match args.cluster_dns {
        Some(DnsServer(server)) => server,
        None => tenth_address(&args.service_cidr),
    };
    let config = ApiConfig {
        services: ServiceRanges {
            cidr: args.service_cidr,
            node_ports: args.service_node_port_range,
        },
        advertise: SocketAddr::new(node_ip, local.port()),
        nodes: Some(node_client(&pki)?),
        pod_admission: gantry_apiserver::PodAdmission {
            not_ready_toleration_seconds: args.default_not_ready_toleration_seconds,
            unreachable_toleration_seconds: args.default_unreachable_toleration_seconds,
        },
    };
    let api = Arc::new(
        gantry_apiserver::Api::start(store, tokens, config)
            .await
            .map_err(|e| format!("cannot start the API server: {e}"))?
            .with_service_account_key(pki.service_account_key().clone()),
    );
    let tls = pki.server_config(false).map_err(|e| e.to_string())?;
    // The scheduler, the controllers and this node's agent call the API in process, as the administrator.
    let own_client = || {
        let (api, admin) = (api.clone(), admin.clone());
        gantry_client::in_process(move |request| {
            let (api, admin) = (api.clone(), admin.clone());
            async move { api.handle(request, Some(admin)).await }
        })
    };
    if !args.disable_scheduler {
        tokio::spawn(gantry_scheduler::run(own_client()));
    }
    if !args.disable_controllers {
        let settings = gantry_controllers::Settings {
            node_monitor_grace_period: args.node_monitor_grace_period,
            pod_networks: gantry_controllers::nodeipam::PodNetworks {
                cluster_cidr: args.cluster_cidr,
                node_prefix: args.node_cidr_mask_size,
            },
        };
        tokio::spawn(gantry_controllers::run(own_client(), settings));
        tokio::spawn(gantry_controllers::rootcacert::run(
            own_client(),
            pki.ca_cert_pem().to_owned(),
        ));
    }
    if !args.disable_agent {
        let client = own_client();
        let config = AgentConfig {
            node_name: host_name(),
            node_ip,
            data_dir: args.data_dir.join("agent"),
            storage_dir: args
                .storage_dir
                .unwrap_or_else(|| args.data_dir.join("agent/storage")),
            pod_cidr: args.network.pod_cidr,
            service_cidr: Ipv4Net::new(args.service_cidr.network, args.service_cidr.prefix)
                .ok_or("the service network's prefix is over 32")?,
            pod_network: args.network.backend(),
            nft_table: args.network.nft_table,
            cni_bridge: args.network.cni_bridge,
            plain_http_registries: args.insecure_registries,
            endpoint_port: args.node_endpoint_port,
            ca_pem: pki.ca_cert_pem().as_bytes().to_vec(),
            cluster_dns,
            cluster_domain: args.cluster_domain,
            lease_duration_seconds: args.node_lease_duration_seconds,
        };
        let host = gantry_agent::open_host(&config).map_err(|e| {
            format!("cannot start the node agent: {e} (or run the control plane alone with --disable-agent)")
        })?;
        tokio::spawn(gantry_agent::run(client, config, host));
    }
    tracing::info!(listen = %local, kubeconfig = %kubeconfig.display(), "gantry server is ready");
    println!(
        "gantry server listening on https://{local}; kubeconfig: {}",
        kubeconfig.display()
    );
    tokio::select! {
        served = gantry_apiserver::serve(listener, tls, api) => served.map_err(|e| e.to_string()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

async fn agent(args: AgentArgs) -> Result<(), String> {
    let ca = std::fs::read(&args.ca_file)
        .map_err(|e| format!("cannot read {}: {e}", args.ca_file.display()))?;
    let client =
        gantry_client::connect(&args.server, &ca, &args.token).map_err(|e| e.to_string())?;
    if args.simulate > 0 {
        let options = gantry_simulator::Options {
            nodes: args.simulate,
            prefix: args.node_name.unwrap_or_else(|| "sim".to_owned()),
            max_pods: args.simulate_max_pods,
            lease_duration_seconds: args.node_lease_duration_seconds,
        };
        println!(
            "gantry agent simulating {} nodes ({}-0 …) joining {}",
            options.nodes, options.prefix, args.server
        );
        tokio::select! {
            () = gantry_simulator::run(client, options) => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let config = AgentConfig {
        node_name: args.node_name.unwrap_or_else(host_name),
        node_ip: args
            .node_ip
            .unwrap_or_else(|| node_address(IpAddr::V4(Ipv4Addr::UNSPECIFIED))),
        storage_dir: args
            .storage_dir
            .unwrap_or_else(|| args.data_dir.join("storage")),
        data_dir: args.data_dir,
        pod_cidr: args.network.pod_cidr,
        service_cidr: args.service_cidr,
        pod_network: args.network.backend(),
        nft_table: args.network.nft_table,
        cni_bridge: args.network.cni_bridge,
        plain_http_registries: args.insecure_registries,
        endpoint_port: args.node_endpoint_port,
        ca_pem: ca,
        cluster_dns: args.cluster_dns.0,
        cluster_domain: args.cluster_domain,
        lease_duration_seconds: args.node_lease_duration_seconds,
    };
    let host = gantry_agent::open_host(&config)
        .map_err(|e| format!("cannot start the node agent: {e}"))?;
    println!(
        "gantry agent for node {} joining {}",
        config.node_name, args.server
    );
    tokio::select! {
        () = gantry_agent::run(client, config, host) => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// `gantry image ...`: the node's image store, used directly (beside a running agent too: every change to
/// the store is an atomic rename).
fn image(command: ImageCommand) -> Result<(), String> {
    let open = |store: &ImageStoreArgs| {
        gantry_images::ImageStore::open(&store.data_dir.join("images")).map_err(|e| e.to_string())
    };
    match command {
        ImageCommand::Import { file, store } => {
            for image in open(&store)?.import(&file).map_err(|e| e.to_string())? {
                println!("imported {} {}", image.repo_tags.join(","), image.id);
            }
        }
        ImageCommand::Ls { store } => {
            println!("{:<60} {:<14} {:>10}", "REFERENCE", "IMAGE ID", "SIZE");
            for image in open(&store)?.list().map_err(|e| e.to_string())? {
                let id = image.id.to_string();
                let short: String = id.trim_start_matches("sha256:").chars().take(12).collect();
                for tag in &image.repo_tags {
                    println!("{tag:<60} {short:<14} {:>10}", image.size);
                }
            }
        }
        ImageCommand::Busybox { tag, store } => {
            let layout = store.data_dir.join("images").join("busybox-layout");
            let _ = std::fs::remove_dir_all(&layout);
            gantry_images::testimage::busybox(&layout, &tag).map_err(|e| e.to_string())?;
            let imported = open(&store)?.import(&layout).map_err(|e| e.to_string());
            let _ = std::fs::remove_dir_all(&layout);
            for image in imported? {
                println!("imported {} {}", image.repo_tags.join(","), image.id);
            }
        }
        ImageCommand::Prune { store } => {
            let in_use = gantry_agent::host::images_in_use(&store.data_dir);
            let report = open(&store)?
                .gc(u64::MAX, &in_use)
                .map_err(|e| e.to_string())?;
            for id in &report.deleted {
                println!("deleted {id}");
            }
            println!("freed {} bytes", report.freed);
        }
        ImageCommand::Rm { reference, store } => {
            let reference =
                gantry_images::Reference::parse(&reference).map_err(|e| e.to_string())?;
            open(&store)?
                .remove(&reference)
                .map_err(|e| e.to_string())?;
            println!("removed {}", reference.name());
        }
    }
    Ok(())
}

/// How the API server calls node agents: a client certificate of the cluster CA, issued at each start.
fn node_client(pki: &ClusterPki) -> Result<gantry_apiserver::NodeClient, String> {
    let year = std::time::Duration::from_secs(365 * 24 * 3600);
    let cert = pki
        .issue_client_cert("gantry-apiserver-node-client", &["system:masters"], year)
        .map_err(|e| e.to_string())?;
    let tls = gantry_pki::node_client_config(&cert).map_err(|e| e.to_string())?;
    Ok(gantry_apiserver::NodeClient::new(tls))
}

/// This machine's host name, lower-cased (a Node name must be a DNS subdomain).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gantry-node".to_owned())
}

/// The machine's address for a listen address: itself if specific, else the source address of the default
/// route (found by connecting a UDP socket, which sends nothing), else loopback.
fn node_address(listen: IpAddr) -> IpAddr {
    if !listen.is_unspecified() {
        return listen;
    }
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("192.0.2.1:9")?;
            socket.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The address clients should use for a listen address: loopback for the unspecified address.
fn client_address(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        ip if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

/// A duration as Go writes them for Kubernetes' flags, in one unit: `50s`, `1m`, `500ms`, `2h` (a bare
/// number is seconds).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 50s, 1m or 500ms"))?;
    let millis = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    Ok(std::time::Duration::from_millis(number * millis))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn server(flags: &[&str]) -> ServerArgs {
        let cli = Cli::try_parse_from(["gantry", "server"].iter().chain(flags)).unwrap();
        match cli.command {
            Command::Server(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn durations_read_as_go_writes_them() {
        use std::time::Duration;
        assert_eq!(parse_duration("50s"), Ok(Duration::from_secs(50)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("s").is_err());
        let args = server(&["--node-monitor-grace-period", "4s"]);
        assert_eq!(args.node_monitor_grace_period, Duration::from_secs(4));
        assert_eq!(
            server(&[]).node_monitor_grace_period,
            Duration::from_secs(50)
        );
    }

    fn agent(flags: &[&str]) -> AgentArgs {
        let required = [
            "gantry",
            "agent",
            "--server",
            "https://x:6443",
            "--token",
            "t",
        ];
        let cli =
            Cli::try_parse_from(required.iter().chain(&["--ca-file", "ca"]).chain(flags)).unwrap();
        match cli.command {
            Command::Agent(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cluster_dns_defaults_to_the_tenth_service_address() {
        let args = server(&[]);
        assert_eq!(args.cluster_domain, "cluster.local");
        assert_eq!(args.cluster_dns, None);
        assert_eq!(
            tenth_address(&args.service_cidr),
            Some("10.43.0.10".parse().unwrap())
        );
        let args = server(&[
            "--service-cidr",
            "10.96.0.0/12",
            "--cluster-domain",
            "corp.test",
        ]);
        assert_eq!(
            tenth_address(&args.service_cidr),
            Some("10.96.0.10".parse().unwrap())
        );
        assert_eq!(args.cluster_domain, "corp.test");
        let tiny = server(&["--service-cidr", "10.96.0.0/29"]);
        assert_eq!(tenth_address(&tiny.service_cidr), None);
        let args = server(&["--cluster-dns", "10.0.0.53"]);
        assert_eq!(
            args.cluster_dns,
            Some(DnsServer(Some("10.0.0.53".parse().unwrap())))
        );
        assert_eq!(
            server(&["--cluster-dns", ""]).cluster_dns,
            Some(DnsServer(None))
        );

        let args = agent(&[]);
        assert_eq!(
            args.cluster_dns,
            DnsServer(Some("10.43.0.10".parse().unwrap()))
        );
        assert_eq!(args.cluster_domain, "cluster.local");
        let args = agent(&["--cluster-dns", "none", "--cluster-domain", "corp.test"]);
        assert_eq!(args.cluster_dns, DnsServer(None));
        assert_eq!(args.cluster_domain, "corp.test");
        assert!(Cli::try_parse_from(["gantry", "server", "--cluster-dns", "nope"]).is_err());
    }
}

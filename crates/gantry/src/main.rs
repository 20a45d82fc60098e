//! `gantry`: one binary for the whole cluster. `gantry server` runs the control plane.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use gantry_apiserver::{ApiConfig, Ipv4Cidr, ServiceRanges, parse_port_range};
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
    /// Runs the control plane: the Kubernetes API over HTTPS on the embedded store (or etcd).
    Server(ServerArgs),
    /// Load generators; run against any Kubernetes API server.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Create, get, list and watch load on the API server of a kubeconfig; prints throughput and latency.
    Api(gantry_loadgen::ApiArgs),
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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gantry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Server(args) => runtime.block_on(server(args)),
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
    let config = ApiConfig {
        services: ServiceRanges {
            cidr: args.service_cidr,
            node_ports: args.service_node_port_range,
        },
        advertise: SocketAddr::new(node_ip, local.port()),
    };
    let api = Arc::new(
        gantry_apiserver::Api::start(store, tokens, config)
            .await
            .map_err(|e| format!("cannot start the API server: {e}"))?,
    );
    let tls = pki.server_config(false).map_err(|e| e.to_string())?;
    if !args.disable_agent {
        tracing::warn!("the node agent is not built yet: this server runs the control plane only");
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

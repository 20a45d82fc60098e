//! The node's [`ContainerHost`]: images from the node's image store (pulled or imported), a pause process and
//! the CNI network per pod sandbox, and one OCI bundle, overlay rootfs and shim per container, run by runc or
//! crun. A pod with `hostNetwork` gets no CNI attachment: its containers stay in the node's network and UTS
//! namespaces (the pause still holds their IPC namespace), its IP is the node's, and its `/etc/hosts` is the
//! node's. Files live under the agent's data directory:
//!
//! ```text
//! images/                    the image store (gantry-images)
//! pods/<uid>/sandbox/        the pause process's files and the pod's netns
//! pods/<uid>/etc/            the pod's hosts, hostname and resolv.conf (as the kubelet writes them)
//! pods/<uid>/ip              the pod's IP (the node's for a pod on the host's network)
//! pods/<uid>/volumes/<name>   the pod's volumes (crate::volumes): directories, mounts or links
//! pods/<uid>/logs/<container>/<n>.log   CRI-format logs (what `kubectl logs` reads)
//! containers/<id>/           bundle (config.json, the shim's files) and overlay (upper, work, rootfs)
//! runtime/                   the OCI runtime's state (`--root`)
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gantry_images::{ImageStore, PullOptions, Reference};
use gantry_net::{Network, PortMapping};
use gantry_runtime::cgroups::Cgroups;
use gantry_runtime::oci::{Runtime, Status};
use gantry_runtime::pause::Sandbox;
use gantry_runtime::rootfs::Overlay;
use gantry_runtime::shim::{self, Shim, ShimArgs};
use gantry_runtime::spec::{
    self, BindMount, ContainerConfig, Namespace, Propagation, Resources, SeccompPolicy, UserIds,
};
use serde_json::Value;

use crate::launch::{self, ClusterDns, ImageDefaults, Launch, ResolvConf};
use crate::volumes::VolumeManager;
use crate::worker::{ContainerHost, ExitInfo, HostError, PullPolicy, SandboxInfo, Started};

/// The node's containers.
pub struct NodeHost {
    /// The `gantry` binary (the shim and pause are its hidden subcommands).
    exe: PathBuf,
    dir: PathBuf,
    runtime: Runtime,
    cgroups: Cgroups,
    images: ImageStore,
    pull: PullOptions,
    /// The pods' network; its addresses are the node's pod CIDR, known once the Node has one
    /// ([`NodeHost::set_network`]).
    network: std::sync::RwLock<Network>,
    node: NodeSettings,
    sandboxes: Mutex<HashMap<String, PodSandbox>>,
    containers: Mutex<HashMap<String, Running>>,
    /// The pods' volumes, once the agent has an API client ([`NodeHost::set_volumes`]).
    volumes: std::sync::OnceLock<Arc<VolumeManager>>,
}

/// What the node says about the pods' network: its own address (the IP of pods on the host's network) and
/// the cluster's DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    pub node_ip: String,
    pub dns: ClusterDns,
}

/// A pod's running sandbox.
struct PodSandbox {
    sandbox: Sandbox,
    /// On the node's network: no CNI attachment to undo, and its containers join no network or UTS
    /// namespace of the pod's.
    host_network: bool,
}

/// The node's files that pods' files are made from (the kubelet's `--resolv-conf` default, and the hosts
/// file of pods on the host's network).
const NODE_RESOLV_CONF: &str = "/etc/resolv.conf";
const NODE_HOSTS: &str = "/etc/hosts";

impl std::fmt::Debug for NodeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHost")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A container this host started.
struct Running {
    bundle: PathBuf,
    overlay: Overlay,
    shim: Option<Shim>,
}

/// Why the host cannot start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(String);

impl NodeHost {
    /// Removes a pod's sandbox in `dir` whatever state it is in: its CNI attachment (DEL tolerates a pod
    /// never attached, or half gone), its pause, the netns mount, the directory.
    async fn remove_sandbox(&self, uid: &str, dir: &Path) {
        let netns = gantry_runtime::pause::netns_path(dir);
        if let Err(e) = self.network().del(uid, &netns, "eth0", &[]).await {
            tracing::warn!(pod = %uid, "CNI DEL of a leftover sandbox failed: {e}");
        }
        match Sandbox::load(uid, dir) {
            Ok(pause) => {
                let _ = pause.stop().await;
            }
            Err(_) => {
                let _ = gantry_runtime::rootfs::unmount(&netns);
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Opens the host's state under `dir` with the pod network `network` (its plugins must be there; its
    /// addresses may change with [`set_network`](Self::set_network) before the first pod); finds the OCI runtime (crun where
    /// it works, else runc).
    pub fn open(
        dir: &Path,
        network: Network,
        pull: PullOptions,
        node: NodeSettings,
    ) -> Result<NodeHost, SetupError> {
        if !rustix::process::geteuid().is_root() {
            return Err(SetupError(
                "the node agent must run as root: it creates namespaces, cgroups, mounts and network devices"
                    .into(),
            ));
        }
        let has_overlay = || {
            let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
            filesystems
                .lines()
                .any(|l| l.trim_end().ends_with("\toverlay"))
        };
        // The module loads on first use, or now.
        if !has_overlay() {
            let _ = std::process::Command::new("modprobe")
                .arg("overlay")
                .status();
        }
        if !has_overlay() {
            return Err(SetupError(
                "the kernel has no overlay filesystem, which container root filesystems need: load it with `modprobe overlay`"
                    .into(),
            ));
        }
        let missing = network.missing_plugins();
        if !missing.is_empty() {
            return Err(SetupError(format!(
                "the CNI plugins {} are not in {}: install them with `apt-get install containernetworking-plugins`",
                missing.join(", "),
                network.plugin_dir.display()
            )));
        }
        let exe = std::env::current_exe()
            .map_err(|e| SetupError(format!("cannot find the gantry binary: {e}")))?;
        let mut cgroups = Cgroups::detect()
            .map_err(|e| SetupError(format!("cannot read the cgroup mounts: {e}")))?;
        let runtime = Runtime::detect(&dir.join("runtime"), &mut cgroups, None)
            .map_err(|e| SetupError(e.to_string()))?;
        let images =
            ImageStore::open(&dir.join("images")).map_err(|e| SetupError(e.to_string()))?;
        Ok(NodeHost {
            exe,
            dir: dir.to_path_buf(),
            runtime,
            cgroups,
            images,
            pull,
            network: std::sync::RwLock::new(network),
            node,
            sandboxes: Mutex::new(HashMap::new()),
            containers: Mutex::new(HashMap::new()),
            volumes: std::sync::OnceLock::new(),
        })
    }

    /// The pods' network as it is now.
    fn network(&self) -> Network {
        self.network
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the pods' network (once the node's pod CIDR is known; sandboxes are made only after that).
    pub fn set_network(&self, network: Network) {
        *self.network.write().unwrap_or_else(|p| p.into_inner()) = network;
    }

    /// Sets what sets up the pods' volumes (before any pod starts).
    pub fn set_volumes(&self, volumes: Arc<VolumeManager>) {
        let _ = self.volumes.set(volumes);
    }

    /// Where the pods' directories are (`pods/<uid>/`).
    pub fn pods_dir(&self) -> PathBuf {
        self.dir.join("pods")
    }

    /// `runc://1.1.5`, as a Node's `containerRuntimeVersion` says.
    pub fn runtime_version(&self) -> String {
        let output = std::process::Command::new(&self.runtime.binary)
            .arg("--version")
            .output();
        let version = output
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|text| text.lines().next().map(str::to_owned))
            .and_then(|line| line.split_whitespace().last().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
        format!("{}://{version}", self.runtime.kind.name())
    }

    /// Collects images as [`collect_images`] says, when the disk holding them is fuller than the kubelet's
    /// defaults (85 %, down to 80 %).
    pub fn collect_images(&self) -> Result<Option<gantry_images::GcReport>, String> {
        collect_images(&self.dir, &self.images, 85, 80)
    }

    /// The OCI runtime the containers run under.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The node's image store (for `gantry image` commands run beside the agent).
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    fn pod_dir(&self, pod: &Value) -> PathBuf {
        self.dir.join("pods").join(uid(pod))
    }

    /// Writes the pod's `/etc/hosts`, `/etc/hostname` (`hostname`) and `/etc/resolv.conf` in `dir`, as the
    /// kubelet makes them for a pod whose addresses are `ips`.
    fn write_etc(
        &self,
        pod: &Value,
        dir: &Path,
        hostname: &str,
        ips: &[String],
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let hosts = if launch::host_network(pod) {
            launch::host_network_hosts(pod, &read_node_file(NODE_HOSTS)?)
        } else {
            launch::managed_hosts(pod, ips, &self.node.dns.domain)
        };
        std::fs::write(dir.join("hosts"), hosts)?;
        std::fs::write(dir.join("hostname"), format!("{hostname}\n"))?;
        let node = ResolvConf::parse(&read_node_file(NODE_RESOLV_CONF)?);
        let (resolv, warnings) = launch::pod_resolv_conf(pod, &node, &self.node.dns);
        for warning in warnings {
            tracing::warn!(pod = %uid(pod), "DNSConfigForming: {warning}");
        }
        std::fs::write(dir.join("resolv.conf"), resolv.render())
    }
}

fn uid(pod: &Value) -> &str {
    pod.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn error(reason: &str, message: impl ToString) -> HostError {
    HostError {
        reason: reason.to_owned(),
        message: message.to_string(),
    }
}

/// The pod's `hostPort`s.
fn port_mappings(pod: &Value) -> Vec<PortMapping> {
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    containers
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|p| {
            let host_port = p
                .get("hostPort")
                .and_then(Value::as_u64)
                .filter(|&p| p > 0)?;
            Some(PortMapping {
                host_port: u16::try_from(host_port).ok()?,
                container_port: u16::try_from(p.get("containerPort").and_then(Value::as_u64)?)
                    .ok()?,
                protocol: p
                    .get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("TCP")
                    .to_ascii_lowercase(),
                host_ip: p
                    .get("hostIP")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
        })
        .collect()
}

/// CPU in millicores, as the cgroup limits want it.
fn millicores(q: &str) -> Option<u64> {
    gantry_volumes::quantity::milli_value(q).and_then(|m| u64::try_from(m).ok())
}

/// The container's cgroup limits from its resources, as the kubelet sets them.
fn resources(container: &Value) -> Resources {
    let get = |kind: &str, name: &str| {
        container
            .pointer(&format!("/resources/{kind}/{name}"))
            .and_then(Value::as_str)
    };
    let request_cpu = get("requests", "cpu")
        .or(get("limits", "cpu"))
        .and_then(millicores);
    Resources {
        cpu_shares: Some(request_cpu.map_or(2, |m| (m * 1024 / 1000).max(2))),
        cpu_quota: get("limits", "cpu")
            .and_then(millicores)
            .map(|m| (m * 100) as i64),
        cpu_period: get("limits", "cpu").map(|_| 100_000),
        memory_limit: get("limits", "memory").and_then(gantry_volumes::quantity::value),
        pids_limit: None,
    }
}

/// The user the container runs as: the pod's or container's securityContext, else the image's numeric user.
fn user(pod: &Value, container: &Value, image_user: &str) -> UserIds {
    let pick = |field: &str| {
        container
            .pointer(&format!("/securityContext/{field}"))
            .or_else(|| pod.pointer(&format!("/spec/securityContext/{field}")))
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    let (image_uid, image_gid) = match image_user.split_once(':') {
        Some((u, g)) => (u.parse().ok(), g.parse().ok()),
        None => (image_user.parse().ok(), None),
    };
    let additional_gids = pod
        .pointer("/spec/securityContext/supplementalGroups")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(Value::as_u64)
                .filter_map(|g| u32::try_from(g).ok())
                .collect()
        })
        .unwrap_or_default();
    UserIds {
        uid: pick("runAsUser").or(image_uid).unwrap_or(0),
        gid: pick("runAsGroup").or(image_gid).unwrap_or(0),
        additional_gids,
    }
}

#[async_trait]
impl ContainerHost for NodeHost {
    async fn image(
        &self,
        image: &str,
        policy: PullPolicy,
    ) -> Result<(String, ImageDefaults), HostError> {
        let reference = Reference::parse(image).map_err(|e| error("InvalidImageName", e))?;
        let local = self
            .images
            .get(&reference)
            .map_err(|e| error("ErrImagePull", e))?;
        let found = match (policy, local) {
            (PullPolicy::Never, None) => {
                return Err(error(
                    "ErrImageNeverPull",
                    format!("Container image \"{image}\" is not present with pull policy of Never"),
                ));
            }
            (PullPolicy::Never | PullPolicy::IfNotPresent, Some(local)) => local,
            _ => {
                self.images
                    .pull(&reference, &self.pull)
                    .await
                    .map_err(|e| error("ErrImagePull", e))?
                    .image
            }
        };
        let config = &found.config;
        Ok((
            found.id.to_string(),
            ImageDefaults {
                entrypoint: config.entrypoint.clone(),
                cmd: config.cmd.clone(),
                env: config.env.clone(),
                working_dir: config.working_dir.clone().unwrap_or_default(),
                user: config.user.clone().unwrap_or_default(),
            },
        ))
    }

    async fn start_sandbox(&self, pod: &Value) -> Result<SandboxInfo, HostError> {
        let id = uid(pod).to_owned();
        let dir = self.pod_dir(pod);
        let failed = |e: &dyn std::fmt::Display| error("CreatePodSandboxError", e);
        let host_network = launch::host_network(pod);
        let sandbox_dir = dir.join("sandbox");
        // Still running from before an agent restart, and set up to the end (the address is written last):
        // adopted as it is.
        if dir.join("ip").exists()
            && let Ok(sandbox) = Sandbox::load(&id, &sandbox_dir)
        {
            let ip = std::fs::read_to_string(dir.join("ip"))
                .ok()
                .map(|ip| ip.trim().to_owned());
            self.sandboxes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    id.clone(),
                    PodSandbox {
                        sandbox,
                        host_network,
                    },
                );
            return Ok(SandboxInfo { id, ip });
        }
        // The hostname of the pause's UTS namespace, which the pod's containers join (the node's own for a pod
        // on the host's network, whose containers stay in the node's).
        let hostname = if host_network {
            node_hostname()
        } else {
            launch::kernel_hostname(pod, &self.node.dns.domain).map_err(|e| failed(&e))?
        };
        // What a start cut short by an agent restart left (a pause, its netns mount, an attachment) goes first.
        if sandbox_dir.exists() {
            self.remove_sandbox(&id, &sandbox_dir).await;
        }
        self.cgroups
            .create_pod(&format!("/gantry/pod{id}"), &Resources::default())
            .map_err(|e| failed(&e))?;
        let sandbox = Sandbox::start(&self.exe, "pause", &id, &hostname, &sandbox_dir)
            .await
            .map_err(|e| failed(&e))?;
        let ips = if host_network {
            vec![self.node.node_ip.clone()]
        } else {
            let attached = self
                .network()
                .add(&id, &sandbox.netns_path(), "eth0", &port_mappings(pod))
                .await;
            match attached {
                Ok(attachment) => attachment.ips,
                Err(e) => {
                    let _ = sandbox.stop().await;
                    return Err(failed(&e));
                }
            }
        };
        let ip = ips.first().cloned();
        let written = self
            .write_etc(pod, &dir.join("etc"), &hostname, &ips)
            .and_then(|()| std::fs::write(dir.join("ip"), ip.clone().unwrap_or_default()));
        if let Err(e) = written {
            if !host_network {
                let _ = self
                    .network()
                    .del(&id, &sandbox.netns_path(), "eth0", &[])
                    .await;
            }
            let _ = sandbox.stop().await;
            return Err(failed(&e));
        }
        self.sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id.clone(),
                PodSandbox {
                    sandbox,
                    host_network,
                },
            );
        Ok(SandboxInfo { id, ip })
    }

    async fn start_container(
        &self,
        pod: &Value,
        sandbox: &SandboxInfo,
        container: &Value,
        launch: &Launch,
    ) -> Result<Started, HostError> {
        let failed = |e: &dyn std::fmt::Display| error("CreateContainerError", e);
        let pod_uid = uid(pod);
        let pod_dir = self.pod_dir(pod);
        let image = container
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let reference = Reference::parse(image).map_err(|e| failed(&e))?;
        let stored = self
            .images
            .get(&reference)
            .map_err(|e| failed(&e))?
            .ok_or_else(|| failed(&format!("image {image} is gone from the node")))?;
        let namespaces = {
            let sandboxes = self.sandboxes.lock().unwrap_or_else(|p| p.into_inner());
            let running = sandboxes
                .get(&sandbox.id)
                .ok_or_else(|| failed(&"the pod sandbox is gone"))?;
            let mut namespaces = running.sandbox.namespaces();
            if running.host_network {
                namespaces.network = Namespace::Host;
                namespaces.uts = Namespace::Host;
            }
            namespaces
        };
        let restart = launch_count(&pod_dir, &launch.name);
        let id = format!(
            "{}-{}-{restart}",
            &pod_uid[..pod_uid.len().min(8)],
            launch.name
        );
        let bundle = self.dir.join("containers").join(&id);
        std::fs::create_dir_all(&bundle).map_err(|e| failed(&e))?;
        std::fs::write(bundle.join(IMAGE_ID), stored.id.to_string()).map_err(|e| failed(&e))?;
        let overlay = Overlay {
            layers: self.images.layer_dirs(&stored),
            dir: bundle.join("fs"),
        };
        overlay.mount().map_err(|e| failed(&e))?;
        let mut mounts = vec![
            bind(pod_dir.join("etc/hosts"), "/etc/hosts", false),
            bind(pod_dir.join("etc/resolv.conf"), "/etc/resolv.conf", false),
            bind(pod_dir.join("etc/hostname"), "/etc/hostname", false),
        ];
        mounts.extend(
            volume_mounts(pod, &pod_dir.join("volumes"), container, &launch.env)
                .map_err(|e| error("CreateContainerConfigError", e))?,
        );
        let security = |field: &str| container.pointer(&format!("/securityContext/{field}"));
        let strings = |field: &str| -> Vec<String> {
            security(field)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let privileged = security("privileged").and_then(Value::as_bool) == Some(true);
        let seccomp = match container
            .pointer("/securityContext/seccompProfile/type")
            .or_else(|| pod.pointer("/spec/securityContext/seccompProfile/type"))
            .and_then(Value::as_str)
        {
            Some("RuntimeDefault") => SeccompPolicy::RuntimeDefault,
            _ => SeccompPolicy::Unconfined,
        };
        let config = ContainerConfig {
            args: launch.args.clone(),
            env: launch.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: launch.working_dir.clone(),
            user: user(pod, container, &launch.image_user),
            rootfs: overlay.target(),
            readonly_rootfs: security("readOnlyRootFilesystem").and_then(Value::as_bool)
                == Some(true),
            hostname: None,
            namespaces,
            cgroups_path: format!("/gantry/pod{pod_uid}/{id}"),
            resources: resources(container),
            capabilities: spec::CapabilityChanges {
                add: strings("capabilities/add"),
                drop: strings("capabilities/drop"),
            },
            privileged,
            no_new_privileges: security("allowPrivilegeEscalation").and_then(Value::as_bool)
                == Some(false),
            mounts,
            seccomp,
            ..ContainerConfig::default()
        };
        let oci = spec::generate(&config).map_err(|e| failed(&e))?;
        let spec_json = serde_json::to_vec_pretty(&oci).map_err(|e| failed(&e))?;
        std::fs::write(bundle.join("config.json"), spec_json).map_err(|e| failed(&e))?;
        let log_dir = pod_dir.join("logs").join(&launch.name);
        std::fs::create_dir_all(&log_dir).map_err(|e| failed(&e))?;
        let args = ShimArgs::new(
            &id,
            &bundle,
            &self.runtime,
            &log_dir.join(format!("{restart}.log")),
        );
        let shim = match shim::spawn_shim(&self.exe, "shim", &args).await {
            Ok(shim) => shim,
            Err(e) => {
                let _ = overlay.remove();
                return Err(failed(&e));
            }
        };
        if let Err(e) = self.runtime.start(&id).await {
            let _ = self.runtime.delete(&id, true).await;
            let _ = overlay.remove();
            return Err(failed(&e));
        }
        let started_at = crate::node::now();
        let _ = std::fs::write(bundle.join(STARTED_AT), &started_at);
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id.clone(),
                Running {
                    bundle,
                    overlay,
                    shim: Some(shim),
                },
            );
        Ok(Started { id, started_at })
    }

    async fn running_container(&self, pod: &Value, name: &str) -> Option<Started> {
        let pod_uid = uid(pod);
        let prefix = format!("{}-{name}-", &pod_uid[..pod_uid.len().min(8)]);
        let containers = std::fs::read_dir(self.dir.join("containers")).ok()?;
        for entry in containers.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let bundle = entry.path();
            let running = id.starts_with(&prefix)
                && matches!(shim::read_created(&bundle), Ok(Some(shim::Created::Pid(_))))
                && matches!(shim::read_exit(&bundle), Ok(None))
                && self
                    .runtime
                    .state(&id)
                    .await
                    .is_ok_and(|s| s.status == Status::Running);
            if !running {
                continue;
            }
            let started_at = std::fs::read_to_string(bundle.join(STARTED_AT))
                .unwrap_or_else(|_| crate::node::now());
            let overlay = Overlay {
                layers: Vec::new(),
                dir: bundle.join("fs"),
            };
            self.containers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    id.clone(),
                    Running {
                        bundle,
                        overlay,
                        shim: None,
                    },
                );
            return Some(Started { id, started_at });
        }
        None
    }

    async fn wait_container(&self, id: &str) -> ExitInfo {
        let (shim, bundle) = {
            let mut containers = self.containers.lock().unwrap_or_else(|p| p.into_inner());
            match containers.get_mut(id) {
                Some(running) => (running.shim.take(), running.bundle.clone()),
                None => (None, self.dir.join("containers").join(id)),
            }
        };
        let record = match shim {
            Some(shim) => shim.wait().await.ok(),
            None => shim::wait_exit(&bundle, Duration::from_millis(100))
                .await
                .ok(),
        };
        match record {
            Some(record) => ExitInfo {
                code: record.exit_code,
                reason: if record.oom_killed {
                    "OOMKilled"
                } else if record.exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .to_owned(),
                finished_at: record
                    .finished_at
                    .split('.')
                    .next()
                    .map_or_else(crate::node::now, |s| format!("{s}Z")),
            },
            None => ExitInfo {
                code: 255,
                reason: "Unknown".into(),
                finished_at: crate::node::now(),
            },
        }
    }

    async fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<i32, HostError> {
        let process = gantry_runtime::oci::ExecProcess {
            args: command.to_vec(),
            ..Default::default()
        };
        match tokio::time::timeout(timeout, self.runtime.exec_output(id, &process)).await {
            Ok(Ok(output)) => Ok(output.status.code().unwrap_or(-1)),
            Ok(Err(e)) => Err(error("ExecError", e)),
            Err(_) => Err(error(
                "ExecError",
                format!("command timed out after {timeout:?}"),
            )),
        }
    }

    async fn stop_container(&self, id: &str, grace: Duration) {
        let bundle = self.dir.join("containers").join(id);
        let _ = self.runtime.kill(id, nix_signal::TERM, false).await;
        if tokio::time::timeout(grace, shim::wait_exit(&bundle, Duration::from_millis(50)))
            .await
            .is_err()
        {
            let _ = self.runtime.kill(id, nix_signal::KILL, true).await;
        }
    }

    async fn remove_container(&self, id: &str) {
        let running = self
            .containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let _ = self.runtime.delete(id, true).await;
        if let Some(running) = running {
            let _ = running.overlay.remove();
            let _ = std::fs::remove_dir_all(&running.bundle);
        }
    }

    async fn set_up_volumes(&self, pod: &Value) -> Result<(), HostError> {
        match self.volumes.get() {
            Some(volumes) => volumes
                .set_up(pod)
                .await
                .map_err(|e| error("FailedMount", e)),
            None => Ok(()),
        }
    }

    fn allocatable(&self) -> Value {
        self.volumes
            .get()
            .map_or(Value::Null, |v| v.allocatable().clone())
    }

    async fn pod_changed(&self, pod: &Value) {
        // In the background: the worker goes on following the pod (its deletion) meanwhile.
        if let Some(volumes) = self.volumes.get().cloned() {
            let pod = pod.clone();
            tokio::spawn(async move { volumes.pod_changed(&pod).await });
        }
    }

    async fn tear_down_volumes(&self, pod: &Value) {
        if let Some(volumes) = self.volumes.get() {
            volumes.tear_down(uid(pod));
        }
    }

    async fn storage_violation(&self, pod: &Value) -> Option<String> {
        let pod_dir = self.pod_dir(pod);
        let containers = self.dir.join("containers");
        let pod = pod.clone();
        tokio::task::spawn_blocking(move || storage_violation(&pod, &pod_dir, &containers))
            .await
            .ok()
            .flatten()
    }

    fn pods_on_disk(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.join("pods"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect()
    }

    async fn remove_pod(&self, uid: &str) {
        let prefix = format!("{}-", &uid[..uid.len().min(8)]);
        let containers = std::fs::read_dir(self.dir.join("containers"));
        for entry in containers.into_iter().flatten().flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if id.starts_with(&prefix) {
                let _ = self.runtime.kill(&id, nix_signal::KILL, true).await;
                self.remove_container(&id).await;
                let overlay = Overlay {
                    layers: Vec::new(),
                    dir: entry.path().join("fs"),
                };
                let _ = overlay.remove();
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = self.dir.join("pods").join(uid);
        self.remove_sandbox(uid, &dir.join("sandbox")).await;
        // tmpfs and NFS volumes are unmounted before their directories go (never deleting through a mount).
        if let Err(e) = gantry_volumes::mounts::unmount_all_under(&dir) {
            return tracing::warn!(pod = %uid, "unmounting what is left of the pod's volumes: {e}");
        }
        let _ = self.cgroups.remove(&format!("/gantry/pod{uid}")).await;
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(pod = %uid, "removing {}: {e}", dir.display());
        }
    }

    async fn stop_sandbox(&self, sandbox: &SandboxInfo) {
        let taken = self
            .sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&sandbox.id);
        if let Some(PodSandbox {
            sandbox: pause,
            host_network,
        }) = taken
        {
            // A pod on the host's network was never attached: the node's network is left alone.
            if !host_network
                && let Err(e) = self
                    .network()
                    .del(&sandbox.id, &pause.netns_path(), "eth0", &[])
                    .await
            {
                tracing::warn!(pod = %sandbox.id, "CNI DEL failed: {e}");
            }
            if let Err(e) = pause.stop().await {
                tracing::warn!(pod = %sandbox.id, "stopping the pod sandbox: {e}");
            }
        }
        let _ = self
            .cgroups
            .remove(&format!("/gantry/pod{}", sandbox.id))
            .await;
    }
}

/// The file in a bundle that says when the container started.
const STARTED_AT: &str = "started-at";
/// The file in a bundle that names the container's image (which image GC leaves alone).
const IMAGE_ID: &str = "image-id";

/// The images the containers under the agent data directory `dir` were made from (whether they run or not:
/// a container's bundle goes when it is removed).
pub fn images_in_use(dir: &Path) -> std::collections::HashSet<gantry_images::Digest> {
    std::fs::read_dir(dir.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|bundle| std::fs::read_to_string(bundle.path().join(IMAGE_ID)).ok())
        .filter_map(|id| id.trim().parse().ok())
        .collect()
}

/// Image garbage collection as the kubelet's: when the image store's filesystem is more than `high` percent
/// full, images no container uses go, least recently used first, until it would be at `low` percent. What
/// went, if anything.
pub fn collect_images(
    dir: &Path,
    images: &ImageStore,
    high: u64,
    low: u64,
) -> Result<Option<gantry_images::GcReport>, String> {
    let stat = rustix::fs::statvfs(dir.join("images")).map_err(|e| e.to_string())?;
    let total = stat.f_blocks.saturating_mul(stat.f_frsize);
    let used = total.saturating_sub(stat.f_bavail.saturating_mul(stat.f_frsize));
    if total == 0 || used.saturating_mul(100) < high.saturating_mul(total) {
        return Ok(None);
    }
    let to_free = used.saturating_sub(total / 100 * low);
    images
        .gc(to_free, &images_in_use(dir))
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Signals, as the runtime driver takes them.
mod nix_signal {
    pub(super) use nix::sys::signal::Signal::{SIGKILL as KILL, SIGTERM as TERM};
}

/// The container's `volumeMounts` as bind mounts of the pod's volumes (set up under `volumes/`):
/// `subPath`/`subPathExpr` (expanded with the container's environment) made inside the volume, read-only
/// where asked and always for the volumes the API fills, and the asked propagation.
fn volume_mounts(
    pod: &Value,
    volumes: &Path,
    container: &Value,
    env: &[(String, String)],
) -> Result<Vec<BindMount>, String> {
    let specs = pod.pointer("/spec/volumes").and_then(Value::as_array);
    let mut mounts = Vec::new();
    for mount in container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |key: &str| mount.get(key).and_then(Value::as_str).unwrap_or_default();
        let name = field("name");
        let spec = specs
            .into_iter()
            .flatten()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(name));
        let filled_by_api = spec.is_some_and(crate::volumes::is_api_volume);
        let claim_readonly = spec.and_then(|v| v.pointer("/persistentVolumeClaim/readOnly"))
            == Some(&Value::Bool(true));
        let root = volumes.join(name);
        // The volume's own path (a link to a hostPath or a claim's directory is followed).
        let root = std::fs::canonicalize(&root)
            .map_err(|e| format!("volume {name:?} is not set up: {e}"))?;
        let sub_path = match field("subPathExpr") {
            "" => field("subPath").to_owned(),
            expr => gantry_volumes::subpath::expand_for_mount(expr, env)?,
        };
        let source = if sub_path.is_empty() {
            root
        } else {
            gantry_volumes::subpath::prepare(&root, &sub_path)?
        };
        let readonly = mount.get("readOnly").and_then(Value::as_bool) == Some(true)
            || filled_by_api
            || claim_readonly;
        mounts.push(BindMount {
            source,
            destination: PathBuf::from(field("mountPath")),
            readonly,
            propagation: match field("mountPropagation") {
                "HostToContainer" => Propagation::HostToContainer,
                "Bidirectional" => Propagation::Bidirectional,
                _ => Propagation::Private,
            },
        });
    }
    Ok(mounts)
}

/// Why `pod` must be evicted for its local storage, as the kubelet's eviction manager words it: an emptyDir
/// (on disk) over its `sizeLimit`, a container whose writable layer and logs exceed its `ephemeral-storage`
/// limit, or all of the pod's over the sum of its containers' limits.
fn storage_violation(pod: &Value, pod_dir: &Path, containers_dir: &Path) -> Option<String> {
    let used = |path: &Path| gantry_volumes::usage::disk_usage(path).unwrap_or(0);
    let limit_of = |raw: Option<&Value>| {
        raw.and_then(Value::as_str)
            .map(|q| (q.to_owned(), gantry_volumes::quantity::bytes(q)))
    };
    let mut pod_used = 0;
    for volume in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(empty_dir) = volume.get("emptyDir") else {
            continue;
        };
        if empty_dir.get("medium").and_then(Value::as_str) == Some("Memory") {
            continue;
        }
        let name = volume.get("name").and_then(Value::as_str).unwrap_or("");
        let usage = used(&pod_dir.join("volumes").join(name));
        pod_used += usage;
        if let Some((limit, bytes)) = limit_of(empty_dir.get("sizeLimit"))
            && usage > bytes
        {
            return Some(format!(
                "Usage of EmptyDir volume {name:?} exceeds the limit {limit:?}. "
            ));
        }
    }
    let prefix = format!("{}-", &uid(pod)[..uid(pod).len().min(8)]);
    let layers: Vec<(String, PathBuf)> = std::fs::read_dir(containers_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let id = entry.file_name().to_string_lossy().into_owned();
            let rest = id.strip_prefix(&prefix)?;
            let (name, _run) = rest.rsplit_once('-')?;
            Some((name.to_owned(), entry.path().join("fs/upper")))
        })
        .collect();
    let mut pod_limit = None::<u64>;
    for container in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = container.get("name").and_then(Value::as_str).unwrap_or("");
        let usage = layers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, upper)| used(upper))
            .sum::<u64>()
            + used(&pod_dir.join("logs").join(name));
        pod_used += usage;
        if let Some((limit, bytes)) =
            limit_of(container.pointer("/resources/limits/ephemeral-storage"))
        {
            if usage > bytes {
                return Some(format!(
                    "Container {name} exceeded its local ephemeral storage limit {limit:?}. "
                ));
            }
            *pod_limit.get_or_insert(0) += bytes;
        }
    }
    match pod_limit {
        Some(limit) if pod_used > limit => Some(format!(
            "Pod ephemeral local storage usage exceeds the total limit of containers {}. ",
            quantity_text(limit)
        )),
        _ => None,
    }
}

/// Bytes as the API prints a binary quantity when it can (`2Mi`), else plain.
fn quantity_text(bytes: u64) -> String {
    for (suffix, unit) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

fn bind(source: PathBuf, destination: &str, readonly: bool) -> BindMount {
    BindMount {
        source,
        destination: PathBuf::from(destination),
        readonly,
        ..BindMount::default()
    }
}

/// How many times the container has been started in this pod (the log file's number).
fn launch_count(pod_dir: &Path, container: &str) -> usize {
    std::fs::read_dir(pod_dir.join("logs").join(container)).map_or(0, |d| d.count())
}

/// This machine's hostname (what pods on the host's network see).
fn node_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// A node's file; a missing one reads as empty.
fn read_node_file(path: &str) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        read => read,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn resources_become_cgroup_limits() {
        let c = json!({"resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1", "memory": "64Mi"}}});
        let r = resources(&c);
        assert_eq!(r.cpu_shares, Some(256));
        assert_eq!(r.cpu_quota, Some(100_000));
        assert_eq!(r.cpu_period, Some(100_000));
        assert_eq!(r.memory_limit, Some(64 << 20));
        assert_eq!(resources(&json!({})).cpu_shares, Some(2));
        assert_eq!(millicores("1.5"), Some(1500));
    }

    #[test]
    fn users_come_from_the_security_context_then_the_image() {
        let pod =
            json!({"spec": {"securityContext": {"runAsUser": 1000, "supplementalGroups": [5]}}});
        let container = json!({"securityContext": {"runAsGroup": 3000}});
        assert_eq!(
            user(&pod, &container, "7:8"),
            UserIds {
                uid: 1000,
                gid: 3000,
                additional_gids: vec![5]
            }
        );
        assert_eq!(user(&json!({}), &json!({}), "65534:65534").uid, 65534);
        assert_eq!(user(&json!({}), &json!({}), "nobody").uid, 0);
    }

    #[test]
    fn host_ports_become_port_mappings() {
        let pod = json!({"spec": {"containers": [{"ports": [{"containerPort": 80, "hostPort": 8080},
            {"containerPort": 53, "protocol": "UDP"}]}]}});
        let ports = port_mappings(&pod);
        assert_eq!(ports.len(), 1);
        assert_eq!(
            (
                ports[0].host_port,
                ports[0].container_port,
                ports[0].protocol.as_str()
            ),
            (8080, 80, "tcp")
        );
    }
}

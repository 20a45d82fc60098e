//! Pod networking on a node through CNI (spec 1.0): a network configuration list, its plugins run in order
//! for `ADD` (each given the previous one's result) and in reverse for `DEL`, as the spec's runtime does.
//! [`default_network`] is Gantry's default: the standard `bridge` (hairpin on, masquerade of traffic leaving
//! the pod network) with `host-local` addresses from the node's pod CIDR, and `portmap` for `hostPort`s.
//! Debian installs the plugins in `/usr/lib/cni` (package `containernetworking-plugins`). Between nodes,
//! [`overlay`] carries pod traffic (VXLAN or plain routes) and masquerades what leaves the pod networks.

pub mod cidr;
pub mod overlay;

pub use cidr::Ipv4Net;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// Where Debian's `containernetworking-plugins` puts the plugins.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/cni";
/// The CNI spec version Gantry speaks.
pub const CNI_VERSION: &str = "1.0.0";

/// Why a CNI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error(
        "CNI plugin {plugin} not found in {dir} (install the Debian package containernetworking-plugins)"
    )]
    MissingPlugin { plugin: String, dir: String },
    #[error("CNI plugin {plugin} failed ({code}): {message}")]
    Plugin {
        plugin: String,
        code: u64,
        message: String,
    },
    #[error("CNI plugin {plugin}: {0}", plugin = .1)]
    Io(std::io::Error, String),
    #[error("CNI plugin {plugin} answered something that is not a result: {reason}")]
    BadResult { plugin: String, reason: String },
}

/// A network configuration list (`.conflist`): a name and its plugins' configurations, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub name: String,
    pub plugins: Vec<Value>,
    pub plugin_dir: PathBuf,
}

impl Network {
    /// The plugins of this network (their IPAM plugins and `loopback` included) that are not installed in
    /// `plugin_dir`.
    pub fn missing_plugins(&self) -> Vec<String> {
        let types = self.plugins.iter().flat_map(|p| {
            [
                p["type"].as_str(),
                p.pointer("/ipam/type").and_then(|t| t.as_str()),
            ]
        });
        let mut names: Vec<&str> = std::iter::once("loopback").chain(types.flatten()).collect();
        names.dedup();
        names
            .into_iter()
            .filter(|name| !self.plugin_dir.join(name).is_file())
            .map(str::to_owned)
            .collect()
    }
}

/// One `hostPort` to map to the pod (`portmap`'s runtime configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub host_ip: String,
}

/// What `ADD` gave the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// The pod's addresses (without prefix length), IPv4 first.
    pub ips: Vec<String>,
    /// The final plugin's whole result.
    pub result: Value,
}

/// Gantry's default network for pods whose addresses come from `pod_cidr` (`10.42.0.0/24`): a Linux bridge
/// `bridge_name` that is the pods' gateway, hairpin on (a pod reaching itself through a Service), `mtu` on
/// every pod interface, and `hostPort`s through `portmap`. `host-local` keeps its leases under `state_dir`.
/// The bridge masquerades nothing: [`overlay`] masquerades only what leaves every node's pod network, so
/// that pods on other nodes see the true source address.
pub fn default_network(pod_cidr: &str, bridge_name: &str, mtu: u32, state_dir: &Path) -> Network {
    Network {
        name: "gantry".into(),
        plugins: vec![
            json!({
                "type": "bridge",
                "bridge": bridge_name,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "mtu": mtu,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": state_dir.join("ipam"),
                },
            }),
            json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}),
        ],
        plugin_dir: PathBuf::from(DEFAULT_PLUGIN_DIR),
    }
}

impl Network {
    /// Attaches the network namespace at `netns` (interface `ifname`) for the container `id`: runs every
    /// plugin's `ADD` in order. On failure the plugins that succeeded are undone.
    pub async fn add(
        &self,
        id: &str,
        netns: &Path,
        ifname: &str,
        ports: &[PortMapping],
    ) -> Result<Attachment, CniError> {
        let mut previous: Option<Value> = None;
        for (i, plugin) in self.plugins.iter().enumerate() {
            let config = self.plugin_config(plugin, previous.as_ref(), ports);
            match self.exec("ADD", &config, id, netns, ifname).await {
                Ok(result) => previous = Some(result),
                Err(e) => {
                    for done in self.plugins[..i].iter().rev() {
                        let config = self.plugin_config(done, previous.as_ref(), ports);
                        let _ = self.exec("DEL", &config, id, netns, ifname).await;
                    }
                    return Err(e);
                }
            }
        }
        let result = previous.unwrap_or_else(|| json!({}));
        let mut ips: Vec<String> = result
            .get("ips")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|ip| ip.get("address").and_then(Value::as_str))
            .map(|a| a.split('/').next().unwrap_or(a).to_owned())
            .collect();
        ips.sort_by_key(|ip| ip.contains(':'));
        Ok(Attachment { ips, result })
    }

    /// Detaches: every plugin's `DEL`, in reverse order. Deleting what is already gone succeeds (the spec
    /// requires plugins to allow it), so this is safe to repeat, also without the network namespace.
    pub async fn del(
        &self,
        id: &str,
        netns: &Path,
        ifname: &str,
        ports: &[PortMapping],
    ) -> Result<(), CniError> {
        let mut first_error = None;
        for plugin in self.plugins.iter().rev() {
            let config = self.plugin_config(plugin, None, ports);
            if let Err(e) = self.exec("DEL", &config, id, netns, ifname).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// A plugin's configuration as the spec hands it over: with the list's name and version, the previous
    /// plugin's result, and runtime configuration for the capabilities it declares.
    fn plugin_config(
        &self,
        plugin: &Value,
        previous: Option<&Value>,
        ports: &[PortMapping],
    ) -> Value {
        let mut config = plugin.clone();
        config["cniVersion"] = json!(CNI_VERSION);
        config["name"] = json!(self.name);
        if let Some(previous) = previous {
            config["prevResult"] = previous.clone();
        }
        if plugin.pointer("/capabilities/portMappings") == Some(&json!(true)) {
            let mappings: Vec<Value> = ports
                .iter()
                .map(|p| {
                    let mut m = json!({"hostPort": p.host_port, "containerPort": p.container_port,
                        "protocol": p.protocol});
                    if !p.host_ip.is_empty() {
                        m["hostIP"] = json!(p.host_ip);
                    }
                    m
                })
                .collect();
            config["runtimeConfig"] = json!({"portMappings": mappings});
        }
        config
    }

    async fn exec(
        &self,
        command: &str,
        config: &Value,
        id: &str,
        netns: &Path,
        ifname: &str,
    ) -> Result<Value, CniError> {
        let plugin = config
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let binary = self.plugin_dir.join(&plugin);
        if !binary.is_file() {
            return Err(CniError::MissingPlugin {
                plugin,
                dir: self.plugin_dir.display().to_string(),
            });
        }
        let io = |e| CniError::Io(e, plugin.clone());
        let mut child = tokio::process::Command::new(&binary)
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &self.plugin_dir)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(config.to_string().as_bytes())
                .await
                .map_err(io)?;
        }
        let output = child.wait_with_output().await.map_err(io)?;
        let answer: Option<Value> = serde_json::from_slice(&output.stdout).ok();
        if !output.status.success() {
            let (code, message) = match &answer {
                Some(error) => (
                    error.get("code").and_then(Value::as_u64).unwrap_or(999),
                    [error.get("msg"), error.get("details")]
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(": "),
                ),
                None => (
                    999,
                    String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                ),
            };
            return Err(CniError::Plugin {
                plugin,
                code,
                message,
            });
        }
        match (command, answer) {
            ("ADD", Some(result)) => Ok(result),
            ("ADD", None) => Err(CniError::BadResult {
                plugin,
                reason: String::from_utf8_lossy(&output.stdout).into_owned(),
            }),
            (_, _) => Ok(Value::Null),
        }
    }
}

/// The standard `loopback` plugin, which brings `lo` up in a new network namespace.
pub fn loopback() -> Network {
    Network {
        name: "loopback".into(),
        plugins: vec![json!({"type": "loopback"})],
        plugin_dir: PathBuf::from(DEFAULT_PLUGIN_DIR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_plugins_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let network = default_network("10.42.0.0/24", "cni0", 1450, dir.path());
        let network = Network {
            plugin_dir: dir.path().to_path_buf(),
            ..network
        };
        assert_eq!(
            network.missing_plugins(),
            ["loopback", "bridge", "host-local", "portmap"]
        );
        for plugin in ["loopback", "bridge", "host-local", "portmap"] {
            std::fs::write(dir.path().join(plugin), "").unwrap();
        }
        assert!(network.missing_plugins().is_empty());
    }

    #[test]
    fn plugins_get_name_version_previous_result_and_port_mappings() {
        let network = default_network("10.42.0.0/24", "cni0", 1450, Path::new("/var/lib/x"));
        let ports = [PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: String::new(),
        }];
        let bridge = network.plugin_config(&network.plugins[0], None, &ports);
        assert_eq!(bridge["cniVersion"], CNI_VERSION);
        assert_eq!(bridge["name"], "gantry");
        assert_eq!(bridge["hairpinMode"], true);
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.42.0.0/24");
        assert!(bridge.get("runtimeConfig").is_none());
        let previous = json!({"cniVersion": CNI_VERSION, "ips": []});
        let portmap = network.plugin_config(&network.plugins[1], Some(&previous), &ports);
        assert_eq!(portmap["prevResult"], previous);
        assert_eq!(
            portmap["runtimeConfig"]["portMappings"][0]["hostPort"],
            8080
        );
    }
}

//! The current context of a kubeconfig (YAML, as kubectl writes it, or JSON, as Gantry writes it): where the
//! API server is, how to trust it, and how to authenticate to it.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::Error;

/// An API server to talk to: address, trust and credentials.
#[derive(Clone, Debug)]
pub struct Target {
    /// The server's host as it appears in the URL (a name or an IP address, without brackets).
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// The name the server certificate must carry (`tls-server-name`, else the host).
    pub server_name: String,
    /// PEM certificates to trust; `None` with `insecure` means no verification.
    pub ca_pem: Option<Vec<u8>>,
    /// `insecure-skip-tls-verify`: accept any server certificate.
    pub insecure: bool,
    /// PEM client certificate chain and private key.
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    /// A bearer token.
    pub token: Option<String>,
    /// The context's namespace, if it names one.
    pub namespace: Option<String>,
}

impl Target {
    /// An unauthenticated, unverified target (for `/readyz` probes of a server whose CA is not known yet).
    pub fn insecure(host: &str, port: u16) -> Target {
        Target {
            host: host.to_string(),
            port,
            server_name: host.to_string(),
            ca_pem: None,
            insecure: true,
            client_cert: None,
            token: None,
            namespace: None,
        }
    }

    /// The current context of the kubeconfig at `path`.
    pub fn from_kubeconfig(path: &Path) -> Result<Target, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Kubeconfig(format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Target::from_kubeconfig_text(&text, base)
    }

    /// The current context of a kubeconfig's text; relative file paths in it are relative to `base`.
    pub fn from_kubeconfig_text(text: &str, base: &Path) -> Result<Target, Error> {
        let config: Config = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| Error::Kubeconfig(e.to_string()))?
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| Error::Kubeconfig(e.to_string()))?
        };
        let context_name = config.current_context.as_deref().unwrap_or_default();
        let context = match config.contexts.iter().find(|c| c.name == context_name) {
            Some(c) => &c.context,
            None if config.contexts.len() == 1 && context_name.is_empty() => {
                &config.contexts[0].context
            }
            None => {
                return Err(Error::Kubeconfig(format!(
                    "no context named {context_name:?} (current-context)"
                )));
            }
        };
        let cluster = config
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .map(|c| &c.cluster)
            .ok_or_else(|| Error::Kubeconfig(format!("no cluster named {:?}", context.cluster)))?;
        let user = match &context.user {
            Some(name) => Some(
                config
                    .users
                    .iter()
                    .find(|u| &u.name == name)
                    .map(|u| &u.user)
                    .ok_or_else(|| Error::Kubeconfig(format!("no user named {name:?}")))?,
            ),
            None => None,
        };
        let (host, port) = parse_server(&cluster.server)?;
        let ca_pem = data_or_file(
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
            base,
        )?;
        let mut client_cert = None;
        let mut token = None;
        if let Some(user) = user {
            let cert = data_or_file(
                &user.client_certificate_data,
                &user.client_certificate,
                base,
            )?;
            let key = data_or_file(&user.client_key_data, &user.client_key, base)?;
            match (cert, key) {
                (Some(cert), Some(key)) => client_cert = Some((cert, key)),
                (None, None) => {}
                _ => {
                    return Err(Error::Kubeconfig(
                        "a client certificate needs both the certificate and the key".into(),
                    ));
                }
            }
            token = match (&user.token, &user.token_file) {
                (Some(t), _) => Some(t.clone()),
                (None, Some(file)) => Some(
                    std::fs::read_to_string(base.join(file))
                        .map_err(|e| Error::Kubeconfig(format!("tokenFile: {e}")))?
                        .trim()
                        .to_string(),
                ),
                (None, None) => None,
            };
        }
        let insecure = cluster.insecure_skip_tls_verify.unwrap_or(false);
        if ca_pem.is_none() && !insecure {
            return Err(Error::Kubeconfig(
                "the cluster has no certificate-authority(-data) and is not insecure-skip-tls-verify"
                    .into(),
            ));
        }
        Ok(Target {
            server_name: cluster
                .tls_server_name
                .clone()
                .unwrap_or_else(|| host.clone()),
            host,
            port,
            ca_pem,
            insecure,
            client_cert,
            token,
            namespace: context.namespace.clone(),
        })
    }
}

/// Host and port of an `https://host[:port][/path]` server URL (the path is not supported).
fn parse_server(server: &str) -> Result<(String, u16), Error> {
    let uri: http::Uri = server
        .parse()
        .map_err(|e| Error::Kubeconfig(format!("server {server:?}: {e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(Error::Kubeconfig(format!(
            "server {server:?}: only https:// servers are supported"
        )));
    }
    if !matches!(uri.path(), "" | "/") {
        return Err(Error::Kubeconfig(format!(
            "server {server:?}: a path prefix is not supported"
        )));
    }
    let host = uri
        .host()
        .ok_or_else(|| Error::Kubeconfig(format!("server {server:?} has no host")))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, uri.port_u16().unwrap_or(443)))
}

fn data_or_file(
    data: &Option<String>,
    file: &Option<PathBuf>,
    base: &Path,
) -> Result<Option<Vec<u8>>, Error> {
    if let Some(data) = data {
        let bytes = STANDARD
            .decode(data.trim())
            .map_err(|e| Error::Kubeconfig(format!("bad base64 data: {e}")))?;
        return Ok(Some(bytes));
    }
    if let Some(file) = file {
        let path = base.join(file);
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::Kubeconfig(format!("cannot read {}: {e}", path.display())))?;
        return Ok(Some(bytes));
    }
    Ok(None)
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    current_context: Option<String>,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    user: User,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    certificate_authority_data: Option<String>,
    certificate_authority: Option<PathBuf>,
    insecure_skip_tls_verify: Option<bool>,
    tls_server_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate_data: Option<String>,
    client_certificate: Option<PathBuf>,
    client_key_data: Option<String>,
    client_key: Option<PathBuf>,
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    user: Option<String>,
    namespace: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTg==
    server: https://127.0.0.1:6443
  name: kind-kind
contexts:
- context:
    cluster: kind-kind
    user: kind-kind
    namespace: bench
  name: kind-kind
current-context: kind-kind
preferences: {}
users:
- name: kind-kind
  user:
    token: abc
";

    #[test]
    fn reads_a_yaml_kubeconfig() {
        let t = Target::from_kubeconfig_text(YAML, Path::new(".")).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 6443));
        assert_eq!(t.ca_pem.as_deref(), Some(&b"-----BEGIN"[..]));
        assert_eq!(t.token.as_deref(), Some("abc"));
        assert_eq!(t.namespace.as_deref(), Some("bench"));
        assert!(t.client_cert.is_none());
    }

    #[test]
    fn reads_a_json_kubeconfig_with_ipv6_and_default_port() {
        let json = r#"{"clusters":[{"name":"c","cluster":{"server":"https://[::1]","insecure-skip-tls-verify":true}}],
            "users":[{"name":"u","user":{"client-certificate-data":"Y2VydA==","client-key-data":"a2V5"}}],
            "contexts":[{"name":"x","context":{"cluster":"c","user":"u"}}],"current-context":"x"}"#;
        let t = Target::from_kubeconfig_text(json, Path::new(".")).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert!(t.insecure);
        assert_eq!(t.client_cert, Some((b"cert".to_vec(), b"key".to_vec())));
    }

    #[test]
    fn rejects_a_missing_context() {
        let text = YAML.replace("current-context: kind-kind", "current-context: other");
        assert!(Target::from_kubeconfig_text(&text, Path::new(".")).is_err());
    }
}

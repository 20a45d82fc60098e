//! Kubeconfig files. They are written as JSON, which is YAML too, and which kubectl reads as any kubeconfig.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::IssuedCert;

/// Name of the cluster and the context in generated kubeconfigs.
pub const CLUSTER_NAME: &str = "gantry";

/// A kubeconfig for `server_url` that trusts `ca_pem` and authenticates as `user` with `cert`, with one
/// cluster `gantry`, one user and one context `gantry`, which is the current one.
pub fn client_kubeconfig(server_url: &str, ca_pem: &str, user: &str, cert: &IssuedCert) -> String {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CLUSTER_NAME,
            "cluster": {
                "server": server_url,
                "certificate-authority-data": STANDARD.encode(ca_pem),
            },
        }],
        "users": [{
            "name": user,
            "user": {
                "client-certificate-data": STANDARD.encode(&cert.cert_pem),
                "client-key-data": STANDARD.encode(&cert.key_pem),
            },
        }],
        "contexts": [{
            "name": CLUSTER_NAME,
            "context": { "cluster": CLUSTER_NAME, "user": user },
        }],
        "current-context": CLUSTER_NAME,
        "preferences": {},
    });
    let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
    text.push('\n');
    text
}

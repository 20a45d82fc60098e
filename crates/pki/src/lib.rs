//! The cluster's certificate authority and credentials.
//!
//! [`ClusterPki::load_or_create`] keeps, under `<data-dir>/tls/` (PEM; keys mode 0600):
//! `ca.crt`/`ca.key` (the cluster CA, 10 years), `server.crt`/`server.key` (the API server's serving
//! certificate, 1 year) and `admin.crt`/`admin.key` (client certificate `CN=gantry-admin, O=system:masters`,
//! 1 year), and `service-account.key` (the signing key of service account tokens, [`ServiceAccountKey`]).
//! [`Tokens`] keeps bearer tokens in `<data-dir>/tokens`. All keys are ECDSA P-256, made and used with ring
//! only.

mod files;
mod jwt;
mod kubeconfig;
mod serviceaccount;
mod tokens;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber, SigningKey,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

pub use jwt::JwtError;
pub use kubeconfig::{CLUSTER_NAME, client_kubeconfig};
pub use serviceaccount::{
    KubernetesClaims, LEEWAY_SECONDS, ObjectRef, SERVICE_ACCOUNT_ISSUER, SERVICE_ACCOUNTS_GROUP,
    ServiceAccountClaims, ServiceAccountKey, TokenError, service_account_user,
};
pub use tokens::{Identity, NODE_JOIN_GROUP, NODE_JOIN_USER, Tokens};

const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// A serving certificate that expires sooner than this is re-issued at start.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Certificates start this far in the past, for clients whose clocks lag a little.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
const CA_COMMON_NAME: &str = "gantry-ca";
/// The admin identity: Kubernetes maps group `system:masters` to cluster-admin.
pub const ADMIN_USER: &str = "gantry-admin";
pub const ADMIN_GROUP: &str = "system:masters";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file exists but its content is not what it should be (corrupt PEM, wrong key, ...).
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("invalid TLS subject alternative name {name:?}: {reason}")]
    InvalidSan { name: String, reason: String },
    #[error("issuing a certificate: {0}")]
    Issue(String),
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// What the serving certificate must be valid for, besides the fixed `localhost`/`kubernetes.*` names.
#[derive(Debug, Clone)]
pub struct PkiOptions {
    /// Default `cluster.local`; adds the SAN `kubernetes.default.svc.<cluster_domain>`.
    pub cluster_domain: String,
    /// `None`: the system's hostname (skipped if it is not a valid DNS name).
    pub hostname: Option<String>,
    /// The API server's listen addresses; unspecified ones (`0.0.0.0`, `::`) are skipped.
    pub listen_addresses: Vec<IpAddr>,
    pub node_ip: Option<IpAddr>,
    /// The ClusterIP of the `kubernetes` Service (the first address of the service CIDR).
    pub kubernetes_service_ip: Option<IpAddr>,
    /// Extra names: IP addresses become IP SANs, anything else a DNS SAN.
    pub tls_sans: Vec<String>,
}

impl Default for PkiOptions {
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local".into(),
            hostname: None,
            listen_addresses: Vec::new(),
            node_ip: None,
            kubernetes_service_ip: None,
            tls_sans: Vec::new(),
        }
    }
}

impl PkiOptions {
    /// Every name the serving certificate must cover, in a stable order without duplicates.
    pub fn serving_names(&self) -> Result<Vec<ServerName<'static>>, PkiError> {
        let mut dns: Vec<String> = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
        ]
        .map(String::from)
        .into();
        dns.push(format!("kubernetes.default.svc.{}", self.cluster_domain));
        let mut ips = vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
        ips.extend(
            self.listen_addresses
                .iter()
                .filter(|ip| !ip.is_unspecified()),
        );
        ips.extend(self.node_ip);
        ips.extend(self.kubernetes_service_ip);
        for san in &self.tls_sans {
            match san.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => dns.push(san.clone()),
            }
        }
        let mut names: Vec<ServerName<'static>> = Vec::new();
        for name in dns {
            let parsed = ServerName::try_from(name.to_ascii_lowercase()).map_err(|e| {
                PkiError::InvalidSan {
                    name,
                    reason: e.to_string(),
                }
            })?;
            names.push(parsed);
        }
        let hostname = match &self.hostname {
            Some(h) => Some(h.clone()),
            None => system_hostname(),
        };
        match hostname.map(|h| ServerName::try_from(h.to_ascii_lowercase())) {
            Some(Ok(name)) => names.push(name),
            Some(Err(e)) if self.hostname.is_some() => {
                let name = self.hostname.clone().unwrap_or_default();
                return Err(PkiError::InvalidSan {
                    name,
                    reason: e.to_string(),
                });
            }
            _ => {}
        }
        names.extend(ips.into_iter().map(ServerName::from));
        let mut unique = Vec::with_capacity(names.len());
        for name in names {
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        Ok(unique)
    }
}

fn system_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Default)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The cluster CA with the certificates the API server needs (files: see the crate docs).
pub struct ClusterPki {
    dir: PathBuf,
    ca: Issuer<'static, KeyPair>,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    serving: IssuedCert,
    admin: IssuedCert,
    service_account_key: ServiceAccountKey,
}

impl fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterPki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What a leaf certificate must be valid for when it is loaded.
enum Usage<'a> {
    Server(&'a [ServerName<'static>]),
    Client,
}

impl ClusterPki {
    /// Loads the CA and certificates from `dir/tls/`, creating whatever is missing. The serving and admin
    /// certificates are re-issued (by the same CA) when they expire within 30 days or, for the serving
    /// certificate, lack a name that `opts` asks for. Files that exist but cannot be read or parsed are an
    /// error naming the file; nothing is overwritten then.
    ///
    /// The CA must be one this crate made: new certificates take their issuer name from it.
    pub fn load_or_create(dir: &Path, opts: &PkiOptions) -> Result<ClusterPki, PkiError> {
        let names = opts.serving_names()?;
        let dir = dir.join("tls");
        files::create_private_dir(&dir)?;
        let (ca_cert_path, ca_key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        let (ca_pem, ca_key) = match load_pair(&ca_cert_path, &ca_key_path)? {
            Some(pair) => pair,
            None => {
                let key = new_key()?;
                let pem = ca_params().self_signed(&key).map_err(issue_err)?.pem();
                // A crash between the two writes leaves half a pair, which the next start reports (never
                // replacing a CA that may have signed something).
                files::write_atomic(&ca_key_path, key.serialize_pem().as_bytes(), 0o600)?;
                files::write_atomic(&ca_cert_path, pem.as_bytes(), 0o644)?;
                (pem, key)
            }
        };
        let ca_der = parse_cert(&ca_cert_path, &ca_pem)?;
        webpki::anchor_from_trusted_cert(&ca_der).map_err(|e| invalid(&ca_cert_path, e))?;
        check_key_matches(&ca_cert_path, &ca_der, &ca_key)?;
        let mut pki = ClusterPki {
            ca: Issuer::new(ca_params(), ca_key),
            ca_pem,
            ca_der,
            serving: IssuedCert::default(),
            admin: IssuedCert::default(),
            service_account_key: ServiceAccountKey::load_or_create(&dir)?,
            dir,
        };
        pki.serving = pki.ensure_leaf("server", Usage::Server(&names), || {
            pki.issue_serving(&names, LEAF_VALIDITY)
        })?;
        pki.admin = pki.ensure_leaf("admin", Usage::Client, || {
            pki.issue_client_cert(ADMIN_USER, &[ADMIN_GROUP], LEAF_VALIDITY)
        })?;
        Ok(pki)
    }

    /// Loads `<name>.crt`/`<name>.key`, or issues and writes them when they are missing or due.
    fn ensure_leaf(
        &self,
        name: &str,
        usage: Usage<'_>,
        issue: impl FnOnce() -> Result<IssuedCert, PkiError>,
    ) -> Result<IssuedCert, PkiError> {
        let (cert_path, key_path) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        );
        if let Some((cert_pem, key)) = load_pair(&cert_path, &key_path)? {
            let der = parse_cert(&cert_path, &cert_pem)?;
            check_key_matches(&cert_path, &der, &key)?;
            if self.verify_leaf(&der, &usage, RENEW_BEFORE).is_ok() {
                return Ok(IssuedCert {
                    cert_pem,
                    key_pem: key.serialize_pem(),
                });
            }
        }
        let issued = issue()?;
        let der = parse_cert(&cert_path, &issued.cert_pem)?;
        self.verify_leaf(&der, &usage, Duration::ZERO)
            .map_err(|e| PkiError::Invalid {
                path: self.dir.join("ca.crt"),
                reason: format!("a certificate it just issued does not verify: {e}"),
            })?;
        files::write_atomic(&key_path, issued.key_pem.as_bytes(), 0o600)?;
        files::write_atomic(&cert_path, issued.cert_pem.as_bytes(), 0o644)?;
        Ok(issued)
    }

    /// Checks `der` chains to the CA for `usage`, still valid `margin` from now.
    fn verify_leaf(
        &self,
        der: &CertificateDer<'_>,
        usage: &Usage<'_>,
        margin: Duration,
    ) -> Result<(), webpki::Error> {
        let anchor = webpki::anchor_from_trusted_cert(&self.ca_der)?;
        let cert = webpki::EndEntityCert::try_from(der)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let eku = match usage {
            Usage::Server(_) => webpki::KeyUsage::server_auth(),
            Usage::Client => webpki::KeyUsage::client_auth(),
        };
        cert.verify_for_usage(
            &[webpki::ring::ECDSA_P256_SHA256],
            &[anchor],
            &[],
            UnixTime::since_unix_epoch(now + margin),
            eku,
            None,
            None,
        )?;
        if let Usage::Server(names) = usage {
            names
                .iter()
                .try_for_each(|name| cert.verify_is_valid_for_subject_name(name))?;
        }
        Ok(())
    }

    fn issue_serving(
        &self,
        names: &[ServerName<'static>],
        validity: Duration,
    ) -> Result<IssuedCert, PkiError> {
        let mut params = leaf_params("kube-apiserver", None, validity)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        for name in names {
            params.subject_alt_names.push(match name {
                ServerName::DnsName(dns) => {
                    SanType::DnsName(dns.as_ref().try_into().map_err(issue_err)?)
                }
                ServerName::IpAddress(ip) => SanType::IpAddress((*ip).into()),
                other => return Err(PkiError::Issue(format!("unsupported name {other:?}"))),
            });
        }
        self.sign(&params)
    }

    /// Issues a client certificate (client-auth EKU) signed by the cluster CA. Kubernetes reads the user from
    /// the CN and the groups from O; rcgen writes at most one O, so more than one organization is an error.
    pub fn issue_client_cert(
        &self,
        common_name: &str,
        organizations: &[&str],
        validity: Duration,
    ) -> Result<IssuedCert, PkiError> {
        let organization = match organizations {
            [] => None,
            [one] => Some(*one),
            _ => {
                return Err(PkiError::Issue(
                    "at most one organization (group) per certificate".into(),
                ));
            }
        };
        let mut params = leaf_params(common_name, organization, validity)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(&params)
    }

    fn sign(&self, params: &CertificateParams) -> Result<IssuedCert, PkiError> {
        let key = new_key()?;
        let cert = params.signed_by(&key, &self.ca).map_err(issue_err)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The directory holding the files (`<data-dir>/tls`).
    pub fn tls_dir(&self) -> &Path {
        &self.dir
    }

    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The serving certificate chain (the leaf; clients trust the CA) for a rustls server.
    pub fn serving_cert_chain(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(self.serving.cert_pem.as_bytes())
            .filter_map(Result::ok)
            .collect()
    }

    pub fn serving_key(&self) -> Result<PrivateKeyDer<'static>, PkiError> {
        PrivateKeyDer::from_pem_slice(self.serving.key_pem.as_bytes())
            .map_err(|e| invalid(&self.dir.join("server.key"), e))
    }

    pub fn serving_cert(&self) -> &IssuedCert {
        &self.serving
    }

    pub fn admin_cert(&self) -> &IssuedCert {
        &self.admin
    }

    /// The key that signs service account tokens (`service-account.key`, made on first start).
    pub fn service_account_key(&self) -> &ServiceAccountKey {
        &self.service_account_key
    }

    /// A rustls server configuration (ring) with the serving certificate that verifies client certificates
    /// against the CA. With `require_client_cert` false, clients without one (bearer tokens) are let in
    /// too. Set ALPN on the result as needed.
    pub fn server_config(
        &self,
        require_client_cert: bool,
    ) -> Result<rustls::ServerConfig, PkiError> {
        let tls = |e: &dyn fmt::Display| PkiError::Tls(e.to_string());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).map_err(|e| tls(&e))?;
        let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        );
        let builder = if require_client_cert {
            builder
        } else {
            builder.allow_unauthenticated()
        };
        let verifier = builder.build().map_err(|e| tls(&e))?;
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.serving_cert_chain(), self.serving_key()?)
            .map_err(|e| tls(&e))
    }

    /// An admin kubeconfig for `server_url` (e.g. `https://127.0.0.1:6443`). See [`client_kubeconfig`].
    pub fn kubeconfig(&self, server_url: &str) -> String {
        client_kubeconfig(server_url, &self.ca_pem, ADMIN_USER, &self.admin)
    }

    /// Writes [`Self::kubeconfig`] to `path` with mode 0600.
    pub fn write_kubeconfig(&self, path: &Path, server_url: &str) -> Result<(), PkiError> {
        files::write_atomic(path, self.kubeconfig(server_url).as_bytes(), 0o600)
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    params
}

fn leaf_params(
    common_name: &str,
    organization: Option<&str>,
    validity: Duration,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let mut serial = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
        .map_err(|_| PkiError::Issue("system random number generator failed".into()))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    Ok(params)
}

fn new_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(issue_err)
}

fn issue_err(e: impl fmt::Display) -> PkiError {
    PkiError::Issue(e.to_string())
}

fn invalid(path: &Path, reason: impl fmt::Display) -> PkiError {
    PkiError::Invalid {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads a certificate PEM and its key; `None` when neither file exists, an error when only one does.
fn load_pair(cert_path: &Path, key_path: &Path) -> Result<Option<(String, KeyPair)>, PkiError> {
    let (cert, key) = (
        files::read_optional(cert_path)?,
        files::read_optional(key_path)?,
    );
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(invalid(key_path, "missing, but its certificate exists")),
        (None, Some(_)) => return Err(invalid(cert_path, "missing, but its key exists")),
        (Some(cert), Some(key)) => (cert, key),
    };
    let key = KeyPair::from_pem(&key)
        .map_err(|e| invalid(key_path, format!("not a PEM private key: {e}")))?;
    if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
        return Err(invalid(key_path, "not an ECDSA P-256 key"));
    }
    Ok(Some((cert, key)))
}

/// The first certificate of a PEM file, which must parse as X.509.
fn parse_cert(path: &Path, pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| invalid(path, format!("not a PEM certificate: {e}")))?;
    webpki::EndEntityCert::try_from(&der)
        .map_err(|e| invalid(path, format!("not a valid certificate: {e}")))?;
    Ok(der)
}

/// Proves `key` belongs to the certificate by signing with it and checking against the certificate.
fn check_key_matches(path: &Path, der: &CertificateDer<'_>, key: &KeyPair) -> Result<(), PkiError> {
    const PROBE: &[u8] = b"gantry key check";
    let signature = key.sign(PROBE).map_err(issue_err)?;
    webpki::EndEntityCert::try_from(der)
        .and_then(|cert| cert.verify_signature(webpki::ring::ECDSA_P256_SHA256, PROBE, &signature))
        .map_err(|_| invalid(path, "does not match its private key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_cert_expiring_within_30_days_is_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let opts = PkiOptions {
            hostname: Some("node-a".into()),
            ..Default::default()
        };
        let pki = ClusterPki::load_or_create(dir.path(), &opts).unwrap();
        let short = pki
            .issue_serving(
                &opts.serving_names().unwrap(),
                Duration::from_secs(10 * 24 * 3600),
            )
            .unwrap();
        files::write_atomic(
            &dir.path().join("tls/server.crt"),
            short.cert_pem.as_bytes(),
            0o644,
        )
        .unwrap();
        files::write_atomic(
            &dir.path().join("tls/server.key"),
            short.key_pem.as_bytes(),
            0o600,
        )
        .unwrap();

        let again = ClusterPki::load_or_create(dir.path(), &opts).unwrap();
        assert_ne!(again.serving_cert().cert_pem, short.cert_pem);
        assert_eq!(again.ca_cert_pem(), pki.ca_cert_pem());
        assert_eq!(again.admin_cert().cert_pem, pki.admin_cert().cert_pem);
        let third = ClusterPki::load_or_create(dir.path(), &opts).unwrap();
        assert_eq!(third.serving_cert().cert_pem, again.serving_cert().cert_pem);
    }

    #[test]
    fn unspecified_listen_address_and_duplicates_are_skipped() {
        let opts = PkiOptions {
            hostname: Some("Node-A".into()),
            listen_addresses: vec!["0.0.0.0".parse().unwrap(), "127.0.0.1".parse().unwrap()],
            tls_sans: vec!["localhost".into(), "10.0.0.5".into()],
            ..Default::default()
        };
        let names = opts.serving_names().unwrap();
        let shown: Vec<String> = names.iter().map(|n| n.to_str().into_owned()).collect();
        assert_eq!(
            shown,
            [
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "node-a",
                "127.0.0.1",
                "::1",
                "10.0.0.5"
            ]
        );
        let bad = PkiOptions {
            hostname: Some("x".into()),
            tls_sans: vec!["bad name".into()],
            ..Default::default()
        };
        assert!(matches!(
            bad.serving_names(),
            Err(PkiError::InvalidSan { .. })
        ));
    }
}

/// The TLS of a node agent's endpoint (logs, exec, ...): a fresh self-signed serving certificate for
/// `names` (as upstream kubelets have by default: the API server does not verify it), and client certificates
/// required and verified against the cluster CA `ca_pem` (only the API server, which holds one, gets in).
pub fn node_endpoint_config(
    ca_pem: &[u8],
    names: &[String],
) -> Result<rustls::ServerConfig, PkiError> {
    let tls = |e: &dyn fmt::Display| PkiError::Tls(e.to_string());
    let key = new_key()?;
    let mut params = leaf_params(
        "gantry-node-endpoint",
        None,
        Duration::from_secs(10 * 365 * 24 * 3600),
    )?;
    params.use_authority_key_identifier_extension = false;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.subject_alt_names = names
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(issue_err),
        })
        .collect::<Result<_, _>>()?;
    let cert = params.self_signed(&key).map_err(issue_err)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(ca.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| tls(&e))?;
    let key_der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| tls(&e))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.der().clone()], key_der)
        .map_err(|e| tls(&e))
}

/// The TLS with which the API server calls node agents: it presents `client` (issued by the cluster CA) and
/// does not verify the agent's self-signed serving certificate, as upstream's API server does by default
/// (without `--kubelet-certificate-authority`); handshake signatures are still checked.
pub fn node_client_config(client: &IssuedCert) -> Result<rustls::ClientConfig, PkiError> {
    let tls = |e: &dyn fmt::Display| PkiError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(client.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes()).map_err(|e| tls(&e))?;
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .dangerous()
        .with_custom_certificate_verifier(unverified_server(provider))
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls(&e))
}

/// A verifier that accepts any server certificate but still checks handshake signatures with `provider`'s
/// algorithms (for [`node_client_config`], and kubeconfigs with `insecure-skip-tls-verify`).
pub fn unverified_server(
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Arc<dyn rustls::client::danger::ServerCertVerifier> {
    Arc::new(UnverifiedServer(provider))
}

#[derive(Debug)]
struct UnverifiedServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for UnverifiedServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

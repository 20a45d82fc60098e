//! Real certificates, checked with rustls/webpki and a real TLS handshake.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gantry_pki::{ClusterPki, IssuedCert, PkiError, PkiOptions, Tokens};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn opts() -> PkiOptions {
    PkiOptions {
        hostname: Some("node-a.example".into()),
        listen_addresses: vec!["192.0.2.10".parse().unwrap(), "0.0.0.0".parse().unwrap()],
        node_ip: Some("192.0.2.11".parse().unwrap()),
        kubernetes_service_ip: Some("10.43.0.1".parse().unwrap()),
        tls_sans: vec!["api.example.com".into(), "2001:db8::7".into()],
        ..Default::default()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(pki: &ClusterPki) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_cert_der().clone()).unwrap();
    Arc::new(roots)
}

fn cert_der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn verify_server(
    pki: &ClusterPki,
    cert: &CertificateDer<'_>,
    name: &str,
) -> Result<(), rustls::Error> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(pki), provider())
        .build()
        .unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    verifier
        .verify_server_cert(cert, &[], &name, &[], UnixTime::now())
        .map(|_| ())
}

fn verify_client(pki: &ClusterPki, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(pki), provider())
        .build()
        .unwrap();
    verifier
        .verify_client_cert(cert, &[], UnixTime::now())
        .map(|_| ())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read_tls_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
        "admin.crt",
        "admin.key",
    ]
    .iter()
    .map(|f| {
        (
            f.to_string(),
            std::fs::read(dir.join("tls").join(f)).unwrap(),
        )
    })
    .collect()
}

#[test]
fn serving_cert_verifies_for_every_name() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &opts()).unwrap();
    let chain = pki.serving_cert_chain();
    assert_eq!(chain.len(), 1);
    let names = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "node-a.example",
        "api.example.com",
        "127.0.0.1",
        "::1",
        "192.0.2.10",
        "192.0.2.11",
        "10.43.0.1",
        "2001:db8::7",
    ];
    for name in names {
        verify_server(&pki, &chain[0], name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for wrong in [
        "example.org",
        "kubernetes.default.svc.other.local",
        "192.0.2.99",
        "0.0.0.0",
    ] {
        assert!(
            verify_server(&pki, &chain[0], wrong).is_err(),
            "{wrong} should not verify"
        );
    }
    // A serving certificate is no client certificate, and the admin one no server certificate.
    assert!(verify_client(&pki, &chain[0]).is_err());
    assert!(verify_server(&pki, &cert_der(&pki.admin_cert().cert_pem), "localhost").is_err());
}

#[test]
fn cluster_domain_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let opts = PkiOptions {
        cluster_domain: "corp.internal".into(),
        hostname: Some("h".into()),
        ..Default::default()
    };
    let pki = ClusterPki::load_or_create(dir.path(), &opts).unwrap();
    verify_server(
        &pki,
        &pki.serving_cert_chain()[0],
        "kubernetes.default.svc.corp.internal",
    )
    .unwrap();
}

#[test]
fn admin_and_issued_client_certs_verify_as_client_certs() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &opts()).unwrap();
    verify_client(&pki, &cert_der(&pki.admin_cert().cert_pem)).unwrap();

    let node = pki
        .issue_client_cert(
            "system:node:node-a",
            &["system:nodes"],
            Duration::from_secs(3600),
        )
        .unwrap();
    verify_client(&pki, &cert_der(&node.cert_pem)).unwrap();
    PrivateKeyDer::from_pem_slice(node.key_pem.as_bytes()).unwrap();
    let no_group = pki
        .issue_client_cert("agent", &[], Duration::from_secs(3600))
        .unwrap();
    verify_client(&pki, &cert_der(&no_group.cert_pem)).unwrap();
    assert!(
        pki.issue_client_cert("x", &["a", "b"], Duration::from_secs(3600))
            .is_err()
    );

    // A certificate from another cluster's CA is refused.
    let other_dir = tempfile::tempdir().unwrap();
    let other = ClusterPki::load_or_create(other_dir.path(), &opts()).unwrap();
    assert!(verify_client(&pki, &cert_der(&other.admin_cert().cert_pem)).is_err());
}

#[test]
fn second_start_loads_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = ClusterPki::load_or_create(dir.path(), &opts()).unwrap();
    let files = read_tls_files(dir.path());
    let second = ClusterPki::load_or_create(dir.path(), &opts()).unwrap();
    assert_eq!(read_tls_files(dir.path()), files);
    assert_eq!(second.ca_cert_pem(), first.ca_cert_pem());
    assert_eq!(second.serving_cert_chain(), first.serving_cert_chain());
    assert_eq!(second.serving_key().unwrap(), first.serving_key().unwrap());
    assert_eq!(second.admin_cert().cert_pem, first.admin_cert().cert_pem);
    assert_eq!(second.admin_cert().key_pem, first.admin_cert().key_pem);
    // Asking for fewer names keeps the certificate too.
    let fewer = PkiOptions {
        hostname: Some("node-a.example".into()),
        ..Default::default()
    };
    ClusterPki::load_or_create(dir.path(), &fewer).unwrap();
    assert_eq!(read_tls_files(dir.path()), files);
}

#[test]
fn a_new_san_reissues_the_serving_cert_with_the_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let first = ClusterPki::load_or_create(dir.path(), &opts()).unwrap();
    let before = read_tls_files(dir.path());
    let mut more = opts();
    more.tls_sans.push("new.example.com".into());
    more.node_ip = Some("198.51.100.3".parse::<IpAddr>().unwrap());
    let second = ClusterPki::load_or_create(dir.path(), &more).unwrap();
    let after = read_tls_files(dir.path());
    for ((name, old), (_, new)) in before.iter().zip(&after) {
        let changed = name.starts_with("server.");
        assert_eq!(old != new, changed, "{name}");
    }
    assert_eq!(second.ca_cert_pem(), first.ca_cert_pem());
    let chain = second.serving_cert_chain();
    for name in [
        "new.example.com",
        "198.51.100.3",
        "api.example.com",
        "kubernetes",
    ] {
        verify_server(&second, &chain[0], name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The new files are what the next start loads.
    let third = ClusterPki::load_or_create(dir.path(), &more).unwrap();
    assert_eq!(third.serving_cert_chain(), chain);
}

#[test]
fn secrets_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &opts()).unwrap();
    for key in ["ca.key", "server.key", "admin.key"] {
        assert_eq!(mode(&dir.path().join("tls").join(key)), 0o600, "{key}");
    }
    assert_eq!(mode(&dir.path().join("tls/ca.crt")), 0o644);
    let kubeconfig = dir.path().join("admin.kubeconfig");
    pki.write_kubeconfig(&kubeconfig, "https://127.0.0.1:6443")
        .unwrap();
    assert_eq!(mode(&kubeconfig), 0o600);
    Tokens::load_or_create(dir.path()).unwrap();
    assert_eq!(mode(&dir.path().join("tokens")), 0o600);
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("tls"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_corrupt_file_is_an_error_naming_it() {
    let cases: [(&str, &[u8]); 6] = [
        ("ca.crt", b"not a certificate"),
        (
            "ca.key",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ),
        ("server.key", b"\xff\xfe garbage"),
        (
            "server.crt",
            b"-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n",
        ),
        ("admin.crt", b""),
        ("admin.key", b"-----BEGIN PRIVATE KEY-----\n"),
    ];
    for (file, content) in cases {
        let dir = tempfile::tempdir().unwrap();
        ClusterPki::load_or_create(dir.path(), &opts()).unwrap();
        let path = dir.path().join("tls").join(file);
        std::fs::write(&path, content).unwrap();
        let err = ClusterPki::load_or_create(dir.path(), &opts()).unwrap_err();
        assert!(
            err.to_string().contains(path.to_str().unwrap()),
            "{file}: {err}"
        );
        // Nothing was overwritten.
        assert_eq!(std::fs::read(&path).unwrap(), content, "{file}");
    }

    // A key that belongs to another certificate, and a missing half of a pair.
    let dir = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(dir.path(), &opts()).unwrap();
    let tls = dir.path().join("tls");
    std::fs::copy(tls.join("admin.key"), tls.join("server.key")).unwrap();
    let err = ClusterPki::load_or_create(dir.path(), &opts()).unwrap_err();
    assert!(
        matches!(&err, PkiError::Invalid { path, .. } if path.ends_with("server.crt")),
        "{err}"
    );
    std::fs::remove_file(tls.join("ca.key")).unwrap();
    let err = ClusterPki::load_or_create(dir.path(), &opts()).unwrap_err();
    assert!(err.to_string().contains("ca.key"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), "{").unwrap();
    let err = Tokens::load_or_create(dir.path()).unwrap_err();
    assert!(err.to_string().contains("tokens"), "{err}");
}

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    clusters: Vec<Named<Cluster>>,
    users: Vec<Named<User>>,
    contexts: Vec<Named<Context>>,
    #[serde(rename = "current-context")]
    current_context: String,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    item: T,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    certificate_authority_data: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate_data: String,
    client_key_data: String,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    user: String,
}

fn decode(b64: &str) -> String {
    String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
}

fn parse_kubeconfig(text: &str) -> Kubeconfig {
    serde_json::from_str(text).unwrap()
}

#[test]
fn kubeconfig_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &opts()).unwrap();
    let path = dir.path().join("kubeconfig");
    pki.write_kubeconfig(&path, "https://127.0.0.1:6443")
        .unwrap();
    let config = parse_kubeconfig(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(
        (config.api_version.as_str(), config.kind.as_str()),
        ("v1", "Config")
    );
    assert_eq!(config.current_context, "gantry");
    let [cluster] = &config.clusters[..] else {
        panic!("one cluster")
    };
    assert_eq!(cluster.name, "gantry");
    assert_eq!(cluster.item.server, "https://127.0.0.1:6443");
    assert_eq!(
        decode(&cluster.item.certificate_authority_data),
        pki.ca_cert_pem()
    );
    let [user] = &config.users[..] else {
        panic!("one user")
    };
    assert_eq!(user.name, "gantry-admin");
    assert_eq!(
        decode(&user.item.client_certificate_data),
        pki.admin_cert().cert_pem
    );
    assert_eq!(decode(&user.item.client_key_data), pki.admin_cert().key_pem);
    let [context] = &config.contexts[..] else {
        panic!("one context")
    };
    assert_eq!(
        (context.name.as_str(), context.item.cluster.as_str()),
        ("gantry", "gantry")
    );
    assert_eq!(context.item.user, "gantry-admin");
}

#[test]
fn tokens() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::load_or_create(dir.path()).unwrap();
    let admin = tokens.admin_token().unwrap();
    let identity = tokens.verify(&admin).unwrap();
    assert_eq!(
        (identity.user.as_str(), identity.groups.as_slice()),
        ("gantry-admin", &["system:masters".to_string()][..])
    );

    let join = tokens.generate_node_join_token().unwrap();
    assert!(join.starts_with("K10") && join.len() == 3 + 64, "{join}");
    assert!(join[3..].chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(join, tokens.generate_node_join_token().unwrap());
    assert_eq!(
        tokens.verify(&join).unwrap().user,
        gantry_pki::NODE_JOIN_USER
    );
    assert_eq!(
        tokens.verify(&join).unwrap().groups,
        [gantry_pki::NODE_JOIN_GROUP]
    );
    for wrong in ["", "K10", &join[..join.len() - 1], &format!("{join}0")] {
        assert!(tokens.verify(wrong).is_none(), "{wrong:?}");
    }

    let reloaded = Tokens::load_or_create(dir.path()).unwrap();
    assert_eq!(reloaded.admin_token().unwrap(), admin);
    assert!(reloaded.verify(&join).is_some());
    let other = Tokens::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
    assert!(other.verify(&admin).is_none());

    // A token another process adds to the file (`gantry token create`) is accepted by a running server.
    let added = Tokens::load_or_create(dir.path())
        .unwrap()
        .generate_node_join_token()
        .unwrap();
    assert_eq!(
        reloaded.verify(&added).unwrap().user,
        gantry_pki::NODE_JOIN_USER
    );
    assert!(reloaded.verify("K10nope").is_none());
}

/// Client half of the end-to-end test: trusts and authenticates with what the kubeconfig holds.
fn client_config(ca_pem: &str, client: Option<&IssuedCert>) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(cert_der(ca_pem)).unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match client {
        Some(c) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(c.cert_pem.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

/// Accepts one TLS connection, echoes five bytes and returns how many certificates the client presented.
async fn serve_once(
    listener: tokio::net::TcpListener,
    config: rustls::ServerConfig,
) -> Result<usize, std::io::Error> {
    let (tcp, _) = listener.accept().await?;
    let mut tls = tokio_rustls::TlsAcceptor::from(Arc::new(config))
        .accept(tcp)
        .await?;
    let peers = tls.get_ref().1.peer_certificates().map_or(0, <[_]>::len);
    let mut buf = [0u8; 5];
    tls.read_exact(&mut buf).await?;
    tls.write_all(&buf).await?;
    tls.shutdown().await?;
    Ok(peers)
}

async fn connect(port: u16, host: &str, config: ClientConfig) -> Result<Vec<u8>, std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from(host.to_string()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    tls.write_all(b"hello").await?;
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await?;
    Ok(buf)
}

#[tokio::test]
async fn tls_handshake_with_kubeconfig_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &opts()).unwrap();
    let config = parse_kubeconfig(&pki.kubeconfig("https://127.0.0.1:6443"));
    let ca_pem = decode(&config.clusters[0].item.certificate_authority_data);
    let admin = IssuedCert {
        cert_pem: decode(&config.users[0].item.client_certificate_data),
        key_pem: decode(&config.users[0].item.client_key_data),
    };

    for host in ["127.0.0.1", "kubernetes.default.svc", "localhost"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(serve_once(listener, pki.server_config(true).unwrap()));
        let echoed = connect(port, host, client_config(&ca_pem, Some(&admin)))
            .await
            .unwrap();
        assert_eq!(echoed, b"hello");
        assert_eq!(
            server.await.unwrap().unwrap(),
            1,
            "the server saw the admin certificate"
        );
    }

    // Without a client certificate the server refuses the handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve_once(listener, pki.server_config(true).unwrap()));
    assert!(
        connect(port, "127.0.0.1", client_config(&ca_pem, None))
            .await
            .is_err()
    );
    let err = server.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");

    // With a certificate from another CA too, and a client that trusts another CA refuses the server.
    let other_dir = tempfile::tempdir().unwrap();
    let other = ClusterPki::load_or_create(other_dir.path(), &opts()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve_once(listener, pki.server_config(true).unwrap()));
    assert!(
        connect(
            port,
            "127.0.0.1",
            client_config(&ca_pem, Some(other.admin_cert()))
        )
        .await
        .is_err()
    );
    assert!(server.await.unwrap().is_err());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve_once(listener, pki.server_config(true).unwrap()));
    assert!(
        connect(
            port,
            "127.0.0.1",
            client_config(other.ca_cert_pem(), Some(&admin))
        )
        .await
        .is_err()
    );
    assert!(server.await.unwrap().is_err());

    // The optional mode lets token clients in without a certificate.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve_once(listener, pki.server_config(false).unwrap()));
    assert_eq!(
        connect(port, "127.0.0.1", client_config(&ca_pem, None))
            .await
            .unwrap(),
        b"hello"
    );
    assert_eq!(server.await.unwrap().unwrap(), 0);
}

#[test]
fn the_service_account_key_is_private_and_kept_across_starts() {
    let dir = tempfile::tempdir().unwrap();
    let first = ClusterPki::load_or_create(dir.path(), &opts()).unwrap();
    let path = dir.path().join("tls/service-account.key");
    assert_eq!(mode(&path), 0o600);
    let claims = gantry_pki::ServiceAccountClaims::new(
        "default",
        gantry_pki::ObjectRef {
            name: "robot".into(),
            uid: "u1".into(),
        },
        vec![gantry_pki::SERVICE_ACCOUNT_ISSUER.into()],
        std::time::SystemTime::now(),
        3600,
    );
    let token = first.service_account_key().issue(&claims).unwrap();
    let second = ClusterPki::load_or_create(dir.path(), &opts()).unwrap();
    let verified = second
        .service_account_key()
        .verify(
            &token,
            &[gantry_pki::SERVICE_ACCOUNT_ISSUER],
            std::time::SystemTime::now(),
        )
        .unwrap();
    assert_eq!(verified, claims);
}

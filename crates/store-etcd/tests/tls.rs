//! TLS against a real etcd that requires client certificates. Certificates are made with the `openssl` command;
//! without it the test says so and passes.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gantry_store::{EtcdTls, Store, StoreError};
use gantry_store_etcd::EtcdStore;

/// Kills etcd when the test ends, however it ends.
struct Etcd(Child);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
fn make_certificates(dir: &Path) {
    let days = ["-days", "2"];
    openssl(
        dir,
        &[
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=gantry test CA",
            ][..],
            &days,
        ]
        .concat(),
    );
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        let ext = format!("{name}.ext");
        std::fs::write(
            dir.join(&ext),
            format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
        )
        .expect("write an openssl extensions file");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}-key.pem"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            dir,
            &[
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca-key.pem",
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.pem"),
                    "-extfile",
                    &ext,
                ][..],
                &days,
            ]
            .concat(),
        );
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

#[tokio::test]
async fn mutual_tls_works_and_bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certificates(d);
    let client_url = format!("https://127.0.0.1:{}", free_port());
    let peer_url = format!("http://127.0.0.1:{}", free_port());
    let log = std::fs::File::create(d.join("etcd.log")).unwrap();
    let _etcd = Etcd(
        Command::new(std::env::var_os("GANTRY_ETCD_BIN").unwrap_or_else(|| "etcd".into()))
            .arg("--data-dir")
            .arg(d.join("data"))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .arg("--cert-file")
            .arg(d.join("server.pem"))
            .arg("--key-file")
            .arg(d.join("server-key.pem"))
            .arg("--trusted-ca-file")
            .arg(d.join("ca.pem"))
            .arg("--client-cert-auth")
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let endpoints = vec![client_url.clone()];
    let tls = EtcdTls {
        ca_file: Some(d.join("ca.pem")),
        cert_file: Some(d.join("client.pem")),
        key_file: Some(d.join("client-key.pem")),
    };

    let started = Instant::now();
    let store = loop {
        match EtcdStore::connect(&endpoints, Some(&tls)).await {
            Ok(store) => break store,
            Err(e) if started.elapsed() < Duration::from_secs(15) => {
                eprintln!("waiting for etcd: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!(
                "etcd with TLS did not come up: {e}\n{}",
                std::fs::read_to_string(d.join("etcd.log")).unwrap_or_default()
            ),
        }
    };
    let kv = store
        .create(Bytes::from("/tls"), Bytes::from("yes"))
        .await
        .unwrap();
    assert_eq!(store.get(b"/tls", None).await.unwrap(), Some(kv));

    // Without a client certificate the server refuses the handshake.
    let ca_only = EtcdTls {
        ca_file: tls.ca_file.clone(),
        ..EtcdTls::default()
    };
    let err = EtcdStore::connect(&endpoints, Some(&ca_only))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");

    // A CA that did not sign the server's certificate: the client refuses the server.
    let wrong_ca = EtcdTls {
        ca_file: Some(d.join("client.pem")),
        ..tls.clone()
    };
    let err = EtcdStore::connect(&endpoints, Some(&wrong_ca))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("certificate")),
        "{err:?}"
    );

    // TLS settings with a plain-HTTP endpoint are a mistake, not an outage.
    let err = EtcdStore::connect(&[client_url.replace("https", "http")], Some(&tls))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err:?}");
}

//! Store URLs as users write them: `sqlite:///var/lib/gantry/state.db` and
//! `etcd://host1:2379,host2:2379?cacert=/ca.pem&cert=/client.pem&key=/client-key.pem`.

use std::path::PathBuf;

use crate::{Result, StoreError};

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The embedded SQLite database at this path.
    Sqlite { path: PathBuf },
    /// An etcd cluster: its client endpoints (`http://` or, with TLS, `https://` URLs).
    Etcd {
        endpoints: Vec<String>,
        tls: Option<EtcdTls>,
    },
}

/// TLS settings for etcd: the CA that signed the servers' certificates and, for client-certificate
/// authentication, the client's certificate and key. All are PEM file paths.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

const ETCD_DEFAULT_PORT: u16 = 2379;

impl StoreUrl {
    /// The default: a SQLite database in the data directory.
    pub fn default_in(data_dir: &std::path::Path) -> Self {
        StoreUrl::Sqlite {
            path: data_dir.join("state.db"),
        }
    }

    pub fn parse(url: &str) -> Result<Self> {
        let invalid = |why: &str| StoreError::InvalidArgument(format!("store URL {url:?}: {why}"));
        if let Some(path) = url.strip_prefix("sqlite://") {
            if !path.starts_with('/') {
                return Err(invalid(
                    "expected an absolute path, as in sqlite:///var/lib/gantry/state.db",
                ));
            }
            return Ok(StoreUrl::Sqlite {
                path: PathBuf::from(path),
            });
        }
        let Some(rest) = url.strip_prefix("etcd://") else {
            return Err(invalid(
                "unknown scheme; use sqlite:///PATH or etcd://HOST:PORT[,HOST:PORT...]",
            ));
        };
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hosts = hosts.trim_end_matches('/');
        let mut tls = EtcdTls::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid("query parameters need a value"))?;
            let slot = match name {
                "cacert" => &mut tls.ca_file,
                "cert" => &mut tls.cert_file,
                "key" => &mut tls.key_file,
                _ => {
                    return Err(invalid(&format!(
                        "unknown parameter {name:?}; known: cacert, cert, key"
                    )));
                }
            };
            *slot = Some(PathBuf::from(value));
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(invalid("cert and key must be given together"));
        }
        let tls = (tls != EtcdTls::default()).then_some(tls);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoints = hosts
            .split(',')
            .map(|host| {
                if host.is_empty() || host.contains('/') || host.contains('@') {
                    return Err(invalid(&format!("{host:?} is not a HOST or HOST:PORT")));
                }
                let has_port = host.rsplit_once(':').is_some_and(|(h, p)| {
                    !h.ends_with(':')
                        && p.parse::<u16>().is_ok()
                        && (!h.contains(':') || h.ends_with(']'))
                });
                Ok(if has_port {
                    format!("{scheme}://{host}")
                } else {
                    format!("{scheme}://{host}:{ETCD_DEFAULT_PORT}")
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(StoreUrl::Etcd { endpoints, tls })
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_paths() {
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/gantry/state.db").unwrap(),
            StoreUrl::Sqlite {
                path: "/var/lib/gantry/state.db".into()
            }
        );
        assert!(StoreUrl::parse("sqlite://relative.db").is_err());
    }

    #[test]
    fn parses_etcd_endpoints_with_default_port() {
        assert_eq!(
            StoreUrl::parse("etcd://10.0.0.1:2379,node2,[::1]:2479,[::1]").unwrap(),
            StoreUrl::Etcd {
                endpoints: vec![
                    "http://10.0.0.1:2379".into(),
                    "http://node2:2379".into(),
                    "http://[::1]:2479".into(),
                    "http://[::1]:2379".into(),
                ],
                tls: None
            }
        );
    }

    #[test]
    fn parses_etcd_tls_options() {
        let url = StoreUrl::parse("etcd://e1:2379?cacert=/ca.pem&cert=/c.pem&key=/k.pem").unwrap();
        let StoreUrl::Etcd {
            endpoints,
            tls: Some(tls),
        } = url
        else {
            panic!("expected TLS: {url:?}")
        };
        assert_eq!(endpoints, vec!["https://e1:2379".to_string()]);
        assert_eq!(tls.ca_file, Some("/ca.pem".into()));
        assert_eq!(tls.key_file, Some("/k.pem".into()));
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        for bad in [
            "mysql://x",
            "etcd://",
            "etcd://a,,b",
            "etcd://h?cert=/c.pem",
            "etcd://h?bogus=1",
            "etcd://u@h",
        ] {
            let err = StoreUrl::parse(bad).unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidArgument(_)),
                "{bad}: {err}"
            );
        }
    }
}

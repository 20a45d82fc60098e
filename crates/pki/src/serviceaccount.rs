//! Service account tokens: the signing key (`<data-dir>/tls/service-account.key`, ECDSA P-256, PKCS#8 PEM,
//! mode 0600, made once and kept) and the claims of the ES256 JWTs the TokenRequest API issues, as
//! upstream's (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, `kubernetes.io`).
//!
//! [`ServiceAccountKey::verify`] checks what the token itself says (signature, issuer, times, audience);
//! whether the service account (and the object the token is bound to) still exists is the API server's check.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::jwt::{self, JwtError};
use crate::{PkiError, files, invalid, issue_err};

/// The issuer of the tokens, and the audience the API server accepts (upstream's default for
/// `--service-account-issuer` and `--api-audiences` with the cluster domain `cluster.local`).
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The group of every service account.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// How far clocks may disagree about `exp`, `nbf` and `iat` (go-jose's default leeway, as upstream's).
pub const LEEWAY_SECONDS: i64 = 60;
/// The file name of the key in the TLS directory.
const KEY_FILE: &str = "service-account.key";

/// The key that signs and verifies service account tokens. Cloning is cheap (shared).
#[derive(Clone)]
pub struct ServiceAccountKey {
    inner: Arc<Inner>,
}

struct Inner {
    key: EcdsaKeyPair,
    /// base64url(SHA-256(SubjectPublicKeyInfo DER)), as upstream's `kid`.
    key_id: String,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("key_id", &self.inner.key_id)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Loads `tls_dir/service-account.key`, or makes and writes it (mode 0600) when it is missing. A file
    /// that is not a P-256 private key is an error naming it (it is never replaced: tokens signed with it
    /// would stop working).
    pub fn load_or_create(tls_dir: &Path) -> Result<Self, PkiError> {
        let path = tls_dir.join(KEY_FILE);
        let key = match files::read_optional(&path)? {
            Some(pem) => {
                let key = KeyPair::from_pem(&pem)
                    .map_err(|e| invalid(&path, format!("not a PEM private key: {e}")))?;
                if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
                    return Err(invalid(&path, "not an ECDSA P-256 key"));
                }
                key
            }
            None => {
                files::create_private_dir(tls_dir)?;
                let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(issue_err)?;
                files::write_atomic(&path, key.serialize_pem().as_bytes(), 0o600)?;
                key
            }
        };
        Self::from_key_pair(&key).map_err(|e| invalid(&path, e))
    }

    /// A new key kept in memory only (its tokens do not survive a restart).
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(issue_err)?;
        Self::from_key_pair(&key).map_err(issue_err)
    }

    fn from_key_pair(key: &KeyPair) -> Result<Self, String> {
        let key_id = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            &key.subject_public_key_info(),
        ));
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| format!("unusable P-256 key: {e}"))?;
        Ok(Self {
            inner: Arc::new(Inner { key, key_id }),
        })
    }

    /// The `kid` of the tokens this key signs.
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// The signed token (a compact ES256 JWT) carrying `claims`.
    pub fn issue(&self, claims: &ServiceAccountClaims) -> Result<String, PkiError> {
        let claims = serde_json::to_value(claims).map_err(issue_err)?;
        jwt::sign(&self.inner.key, &self.inner.key_id, &claims).map_err(issue_err)
    }

    /// The claims of `token` when it is one of ours, valid at `now` (with [`LEEWAY_SECONDS`]) for at least
    /// one of `audiences`.
    pub fn verify(
        &self,
        token: &str,
        audiences: &[&str],
        now: SystemTime,
    ) -> Result<ServiceAccountClaims, TokenError> {
        if !jwt::looks_like_jwt(token) {
            return Err(TokenError::Jwt(JwtError::Malformed));
        }
        let claims = jwt::verify(self.inner.key.public_key().as_ref(), token)?;
        let claims: ServiceAccountClaims =
            serde_json::from_value(claims).map_err(|_| TokenError::Claims)?;
        claims.check(audiences, unix_seconds(now))?;
        Ok(claims)
    }
}

/// Why a token does not authenticate (upstream's messages, for the logs; clients see 401 only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error("service account token claims could not be read")]
    Claims,
    #[error("token issuer {0:?} is not {SERVICE_ACCOUNT_ISSUER:?}")]
    Issuer(String),
    #[error("service account token has expired")]
    Expired,
    #[error("service account token is not valid yet")]
    NotValidYet,
    #[error("service account token was issued in the future")]
    IssuedInTheFuture,
    #[error("token audiences {token:?} is invalid for the target audiences {target:?}")]
    Audience {
        token: Vec<String>,
        target: Vec<String>,
    },
}

/// The claims of a service account token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountClaims {
    pub iss: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// One audience is written as a string, several as an array (as go-jose does); both are read.
    #[serde(serialize_with = "audience_out", deserialize_with = "audience_in")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    /// A random UUID naming this token (the credential id in upstream's audit).
    #[serde(default)]
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// The private claims (`kubernetes.io`): whose token it is and what it is bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    /// The node of a bound pod (upstream's ServiceAccountTokenPodNodeInfo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
    /// When a kubelet token with an extended lifetime should have been renewed (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// An object by name and uid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

impl ServiceAccountClaims {
    /// The claims of a token for the service account `namespace/account`, issued at `now` for `audiences`
    /// and valid `expiration_seconds`; `jti` is a fresh random UUID. Bindings are the caller's to add.
    pub fn new(
        namespace: &str,
        account: ObjectRef,
        audiences: Vec<String>,
        now: SystemTime,
        expiration_seconds: i64,
    ) -> Self {
        let now = unix_seconds(now);
        Self {
            iss: SERVICE_ACCOUNT_ISSUER.to_owned(),
            sub: service_account_user(namespace, &account.name),
            aud: audiences,
            exp: now.saturating_add(expiration_seconds),
            iat: now,
            nbf: now,
            jti: random_uuid(),
            kubernetes: KubernetesClaims {
                namespace: namespace.to_owned(),
                serviceaccount: account,
                ..KubernetesClaims::default()
            },
        }
    }

    /// Issuer, times (with leeway) and audience, at `now` (Unix seconds).
    fn check(&self, audiences: &[&str], now: i64) -> Result<(), TokenError> {
        if self.iss != SERVICE_ACCOUNT_ISSUER {
            return Err(TokenError::Issuer(self.iss.clone()));
        }
        if now - LEEWAY_SECONDS > self.exp {
            return Err(TokenError::Expired);
        }
        if now + LEEWAY_SECONDS < self.nbf {
            return Err(TokenError::NotValidYet);
        }
        if now + LEEWAY_SECONDS < self.iat {
            return Err(TokenError::IssuedInTheFuture);
        }
        if !self.aud.iter().any(|a| audiences.contains(&a.as_str())) {
            return Err(TokenError::Audience {
                token: self.aud.clone(),
                target: audiences.iter().map(|a| (*a).to_owned()).collect(),
            });
        }
        Ok(())
    }

    /// The user the token authenticates as.
    pub fn user(&self) -> String {
        service_account_user(
            &self.kubernetes.namespace,
            &self.kubernetes.serviceaccount.name,
        )
    }

    /// The groups of a service account: `system:serviceaccounts`, `system:serviceaccounts:<namespace>`,
    /// `system:authenticated`.
    pub fn groups(&self) -> Vec<String> {
        vec![
            SERVICE_ACCOUNTS_GROUP.to_owned(),
            format!("{SERVICE_ACCOUNTS_GROUP}:{}", self.kubernetes.namespace),
            "system:authenticated".to_owned(),
        ]
    }
}

/// `system:serviceaccount:<namespace>:<name>`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

fn audience_out<S: Serializer>(aud: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    match aud {
        [one] => serializer.serialize_str(one),
        many => many.serialize(serializer),
    }
}

fn audience_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Audience {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Audience::deserialize(deserializer)? {
        Audience::One(one) => vec![one],
        Audience::Many(many) => many,
    })
}

fn unix_seconds(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A random (version 4) UUID.
fn random_uuid() -> String {
    let mut b = [0u8; 16];
    // The system's CSPRNG; it does not fail on Linux.
    let _ = ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;

    const API: &str = SERVICE_ACCOUNT_ISSUER;

    fn claims(now: SystemTime, audiences: &[&str], seconds: i64) -> ServiceAccountClaims {
        let account = ObjectRef {
            name: "robot".into(),
            uid: "sa-uid".into(),
        };
        let audiences = audiences.iter().map(|a| (*a).to_owned()).collect();
        ServiceAccountClaims::new("ns1", account, audiences, now, seconds)
    }

    fn payload(token: &str) -> Value {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn issued_tokens_have_upstreams_claims_and_verify() {
        let key = ServiceAccountKey::generate().unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut c = claims(now, &[API], 3600);
        c.kubernetes.pod = Some(ObjectRef {
            name: "p".into(),
            uid: "pod-uid".into(),
        });
        let token = key.issue(&c).unwrap();
        let body = payload(&token);
        assert_eq!(body["iss"], API);
        assert_eq!(body["sub"], "system:serviceaccount:ns1:robot");
        // One audience is a string, as upstream writes it.
        assert_eq!(body["aud"], API);
        assert_eq!(body["iat"], 1_700_000_000);
        assert_eq!(body["nbf"], 1_700_000_000);
        assert_eq!(body["exp"], 1_700_003_600);
        assert_eq!(body["jti"].as_str().unwrap().len(), 36);
        assert_eq!(
            body["kubernetes.io"],
            json!({"namespace": "ns1", "serviceaccount": {"name": "robot", "uid": "sa-uid"},
                   "pod": {"name": "p", "uid": "pod-uid"}})
        );
        let verified = key.verify(&token, &[API], now).unwrap();
        assert_eq!(verified, c);
        assert_eq!(verified.user(), "system:serviceaccount:ns1:robot");
        assert_eq!(
            verified.groups(),
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns1",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
        let key = ServiceAccountKey::generate().unwrap();
        let issued = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let token = key.issue(&claims(issued, &[API], 600)).unwrap();
        let at = |s: u64| issued + Duration::from_secs(s);
        assert!(key.verify(&token, &[API], at(600 + 59)).is_ok());
        assert_eq!(
            key.verify(&token, &[API], at(600 + 61)),
            Err(TokenError::Expired)
        );
        let early = issued - Duration::from_secs(61);
        assert_eq!(
            key.verify(&token, &[API], early),
            Err(TokenError::NotValidYet)
        );
        assert!(
            key.verify(&token, &[API], issued - Duration::from_secs(59))
                .is_ok()
        );
    }

    #[test]
    fn wrong_audience_other_key_and_tampering_are_refused() {
        let key = ServiceAccountKey::generate().unwrap();
        let now = SystemTime::now();
        let token = key.issue(&claims(now, &["vault", "other"], 3600)).unwrap();
        assert!(matches!(
            key.verify(&token, &[API], now),
            Err(TokenError::Audience { .. })
        ));
        assert!(key.verify(&token, &[API, "other"], now).is_ok());
        assert_eq!(payload(&token)["aud"], json!(["vault", "other"]));

        let other = ServiceAccountKey::generate().unwrap();
        assert_eq!(
            other.verify(&token, &["vault"], now),
            Err(TokenError::Jwt(JwtError::Signature))
        );

        let parts: Vec<&str> = token.split('.').collect();
        let mut body = payload(&token);
        body["kubernetes.io"]["serviceaccount"]["name"] = json!("admin");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap()),
            parts[2]
        );
        assert_eq!(
            key.verify(&forged, &["vault"], now),
            Err(TokenError::Jwt(JwtError::Signature))
        );
        assert_eq!(
            key.verify("K10deadbeef", &[API], now),
            Err(TokenError::Jwt(JwtError::Malformed))
        );
    }

    #[test]
    fn another_issuer_is_refused() {
        let key = ServiceAccountKey::generate().unwrap();
        let now = SystemTime::now();
        let mut c = claims(now, &[API], 3600);
        c.iss = "kubernetes/serviceaccount".into();
        let token = key.issue(&c).unwrap();
        assert!(matches!(
            key.verify(&token, &[API], now),
            Err(TokenError::Issuer(_))
        ));
    }

    #[test]
    fn the_key_is_made_once_private_and_loaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let first = ServiceAccountKey::load_or_create(&tls).unwrap();
        let mode = std::fs::metadata(tls.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = first
            .issue(&claims(SystemTime::now(), &[API], 3600))
            .unwrap();
        let second = ServiceAccountKey::load_or_create(&tls).unwrap();
        assert_eq!(first.key_id(), second.key_id());
        assert!(second.verify(&token, &[API], SystemTime::now()).is_ok());

        std::fs::write(tls.join(KEY_FILE), "garbage").unwrap();
        let err = ServiceAccountKey::load_or_create(&tls).unwrap_err();
        assert!(err.to_string().contains(KEY_FILE), "{err}");
    }
}

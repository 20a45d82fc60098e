//! ES256 JSON Web Tokens in compact form (RFC 7515/7519): `base64url(header).base64url(claims).base64url(r‖s)`,
//! signed and checked with ring. Only what service account tokens need: header `{"alg":"ES256","kid":…}`,
//! claims as a JSON object.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED, EcdsaKeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

/// Why a token is not a valid ES256 JWT of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a JWT in compact form")]
    Malformed,
    #[error("unsupported JWT algorithm {0:?}")]
    Algorithm(String),
    #[error("invalid JWT signature")]
    Signature,
    #[error("signing failed")]
    Sign,
}

/// Signs `claims` (a JSON object) with `key` (P-256, fixed-size signatures); `kid` names the key.
pub(crate) fn sign(key: &EcdsaKeyPair, kid: &str, claims: &Value) -> Result<String, JwtError> {
    let header = json!({"alg": "ES256", "kid": kid});
    let mut token = encode_json(&header);
    token.push('.');
    token.push_str(&encode_json(claims));
    let signature = key
        .sign(&SystemRandom::new(), token.as_bytes())
        .map_err(|_| JwtError::Sign)?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
    Ok(token)
}

/// Checks `token`'s ES256 signature against `public_key` (an uncompressed P-256 point) and returns its
/// claims. The header must say `ES256`; `kid` is not looked at (there is one key).
pub(crate) fn verify(public_key: &[u8], token: &str) -> Result<Value, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let signed = &token[..header.len() + 1 + claims.len()];
    let header = decode_json(header)?;
    match header.get("alg").and_then(Value::as_str) {
        Some("ES256") => {}
        other => return Err(JwtError::Algorithm(other.unwrap_or_default().to_owned())),
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| JwtError::Signature)?;
    decode_json(claims)
}

/// Whether `token` has the shape of a compact JWS (three base64url parts), without decoding it.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn encode_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

fn decode_json(part: &str) -> Result<Value, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
        .ok_or(JwtError::Malformed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, KeyPair};

    use super::*;

    fn new_key() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
    }

    #[test]
    fn signed_tokens_verify_and_carry_the_claims() {
        let key = new_key();
        let token = sign(&key, "k1", &json!({"sub": "me", "n": 1})).unwrap();
        assert!(looks_like_jwt(&token));
        let header = decode_json(token.split('.').next().unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": "k1"}));
        let claims = verify(key.public_key().as_ref(), &token).unwrap();
        assert_eq!(claims, json!({"sub": "me", "n": 1}));
        // r‖s: 64 bytes.
        let signature = URL_SAFE_NO_PAD
            .decode(token.rsplit('.').next().unwrap())
            .unwrap();
        assert_eq!(signature.len(), 64);
    }

    #[test]
    fn tampered_claims_another_key_or_alg_none_are_refused() {
        let key = new_key();
        let token = sign(&key, "k1", &json!({"sub": "me"})).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            encode_json(&json!({"sub": "admin"})),
            parts[2]
        );
        let public = key.public_key().as_ref().to_vec();
        assert_eq!(verify(&public, &forged), Err(JwtError::Signature));
        let other = new_key();
        assert_eq!(
            verify(other.public_key().as_ref(), &token),
            Err(JwtError::Signature)
        );
        let none = format!(
            "{}.{}.",
            encode_json(&json!({"alg": "none"})),
            encode_json(&json!({"sub": "admin"}))
        );
        assert_eq!(
            verify(&public, &none),
            Err(JwtError::Algorithm("none".into()))
        );
        assert_eq!(verify(&public, "a.b"), Err(JwtError::Malformed));
        assert_eq!(
            verify(&public, &format!("{token}.x")),
            Err(JwtError::Malformed)
        );
        assert!(!looks_like_jwt("K10abcdef"));
        assert!(!looks_like_jwt("a b.c.d"));
    }
}

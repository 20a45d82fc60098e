//! ConfigMaps, Secrets and ServiceAccounts: config keys, the 1 MiB size limit, what each Secret type must
//! hold, and `immutable: true`.

use serde_json::Value;

use super::common::{Errors, Path, config_map_key_errors, map_at, str_at};
use super::meta::{self, NameRule};
use crate::field::FieldError;

/// `core.MaxSecretSize`: the most bytes of data a ConfigMap or Secret may hold.
pub(crate) const MAX_SIZE: usize = 1024 * 1024;

const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

fn key_errors(key: &str, path: &Path) -> Errors {
    config_map_key_errors(key)
        .into_iter()
        .map(|m| FieldError::invalid(path.key(key), key, m))
        .collect()
}

/// The bytes of a `[]byte` field (standard base64 in JSON); `None` when it does not decode.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| !matches!(b, b'\r' | b'\n')).collect();
    if !digits.len().is_multiple_of(4) {
        return None;
    }
    let value = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => u32::from(b - b'A'),
            b'a'..=b'z' => u32::from(b - b'a') + 26,
            b'0'..=b'9' => u32::from(b - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let mut out = Vec::with_capacity(digits.len() / 4 * 3);
    for chunk in digits.chunks(4) {
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 || chunk[..4 - pad].contains(&b'=') {
            return None;
        }
        let mut n = 0u32;
        for &b in &chunk[..4 - pad] {
            n = (n << 6) | value(b)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

/// The decoded length of a base64 value (its raw length when it does not decode).
fn byte_len(v: &Value) -> usize {
    let s = v.as_str().unwrap_or("");
    decode_base64(s).map_or(s.len(), |b| b.len())
}

/// `ValidateConfigMap`.
fn config_map(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    let data_path = Path::new("data");
    let binary = map_at(object, "binaryData");
    let mut total = 0;
    for (key, value) in map_at(object, "data").into_iter().flatten() {
        errs.extend(key_errors(key, &data_path));
        if binary.is_some_and(|b| b.contains_key(key)) {
            errs.push(FieldError::invalid(
                data_path.key(key),
                key.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += value.as_str().map_or(0, str::len);
    }
    for (key, value) in binary.into_iter().flatten() {
        errs.extend(key_errors(key, &Path::new("binaryData")));
        total += byte_len(value);
    }
    if total > MAX_SIZE {
        errs.push(FieldError::too_long("", MAX_SIZE));
    }
    errs
}

/// `immutable: true` freezes the listed fields and itself.
fn immutable_contents(new: &Value, old: &Value, fields: &[&str]) -> Errors {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return Vec::new();
    }
    let mut errs = Vec::new();
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden("immutable", IMMUTABLE_SET));
    }
    for field in fields {
        let empty = serde_json::Map::new();
        if map_at(new, field).unwrap_or(&empty) != map_at(old, field).unwrap_or(&empty) {
            errs.push(FieldError::forbidden(*field, IMMUTABLE_SET));
        }
    }
    errs
}

pub(crate) fn config_map_create(object: &Value) -> Errors {
    config_map(object)
}

pub(crate) fn config_map_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(immutable_contents(new, old, &["data", "binaryData"]));
    errs.extend(config_map(new));
    errs
}

/// A Secret's data as upstream validates it: `data` decoded, with `stringData` merged over it (the
/// conversion to the internal type does that before validation).
fn secret_data(object: &Value) -> Vec<(String, Vec<u8>)> {
    let mut data: Vec<(String, Vec<u8>)> = map_at(object, "data")
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let s = v.as_str().unwrap_or("");
            (
                k.clone(),
                decode_base64(s).unwrap_or_else(|| s.as_bytes().to_vec()),
            )
        })
        .collect();
    for (k, v) in map_at(object, "stringData").into_iter().flatten() {
        let bytes = v.as_str().unwrap_or("").as_bytes().to_vec();
        match data.iter_mut().find(|(key, _)| key == k) {
            Some(entry) => entry.1 = bytes,
            None => data.push((k.clone(), bytes)),
        }
    }
    data.sort_by(|a, b| a.0.cmp(&b.0));
    data
}

/// Go's `json.Unmarshal` into a `map[string]interface{}`: its error, if any.
fn json_object_error(bytes: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(_) | Value::Null) => None,
        Ok(other) => {
            let kind = match other {
                Value::Bool(_) => "bool",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                _ => "array",
            };
            Some(format!(
                "json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
            ))
        }
        Err(e) if e.is_eof() => Some("unexpected end of JSON input".to_owned()),
        Err(_) => {
            let c = bytes
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .map_or('?', |b| char::from(*b));
            Some(format!(
                "invalid character '{c}' looking for beginning of value"
            ))
        }
    }
}

/// `ValidateSecret`.
fn secret(object: &Value) -> Errors {
    let mut errs = meta::create(object, NameRule::Subdomain);
    let data_path = Path::new("data");
    let data = secret_data(object);
    let mut total = 0;
    for (key, value) in &data {
        errs.extend(key_errors(key, &data_path));
        total += value.len();
    }
    if total > MAX_SIZE {
        errs.push(FieldError::too_long(&data_path, MAX_SIZE));
    }
    let get = |key: &str| data.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let required = |key: &str| FieldError::required(data_path.key(key), "");
    match str_at(object, "type") {
        "kubernetes.io/service-account-token" => {
            let name_key = "kubernetes.io/service-account.name";
            let name = meta::of(object)
                .get("annotations")
                .and_then(|a| a.get(name_key))
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(
                    Path::new("metadata").child("annotations").key(name_key),
                    "",
                ));
            }
        }
        kind @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
            let key = if kind == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match get(key) {
                None => errs.push(required(key)),
                Some(bytes) => {
                    if let Some(e) = json_object_error(bytes) {
                        errs.push(FieldError::invalid(
                            data_path.key(key),
                            "<secret contents redacted>",
                            e,
                        ));
                    }
                }
            }
        }
        "kubernetes.io/basic-auth" if get("username").is_none() && get("password").is_none() => {
            errs.push(required("username"));
            errs.push(required("password"));
        }
        "kubernetes.io/ssh-auth" if get("ssh-privatekey").is_none_or(Vec::is_empty) => {
            errs.push(required("ssh-privatekey"));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if get(key).is_none() {
                    errs.push(required(key));
                }
            }
        }
        _ => {}
    }
    errs
}

pub(crate) fn secret_create(object: &Value) -> Errors {
    secret(object)
}

/// `ValidateSecretUpdate`: the type is fixed, and an immutable secret keeps its data.
pub(crate) fn secret_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    let (now, before) = (str_at(new, "type"), str_at(old, "type"));
    if now != before {
        errs.push(FieldError::invalid("type", now, super::common::IMMUTABLE));
    }
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        if new.get("immutable").and_then(Value::as_bool) != Some(true) {
            errs.push(FieldError::forbidden("immutable", IMMUTABLE_SET));
        }
        if secret_data(new) != secret_data(old) {
            errs.push(FieldError::forbidden("data", IMMUTABLE_SET));
        }
    }
    errs.extend(secret(new));
    errs
}

pub(crate) fn service_account_create(object: &Value) -> Errors {
    meta::create(object, NameRule::Subdomain)
}

pub(crate) fn service_account_update(new: &Value, old: &Value) -> Errors {
    let mut errs = meta::update(new, old);
    errs.extend(meta::create(new, NameRule::Subdomain));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(errs: Errors) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(decode_base64("aGVsbG8h"), Some(b"hello!".to_vec()));
        assert_eq!(decode_base64("aGk="), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("aA=="), Some(b"h".to_vec()));
        assert_eq!(decode_base64(""), Some(Vec::new()));
        assert_eq!(decode_base64("a"), None);
        assert_eq!(decode_base64("a==="), None);
        assert_eq!(decode_base64("a*=="), None);
    }

    #[test]
    fn config_maps() {
        let good = json!({"metadata": {"name": "cfg"}, "data": {"app.conf": "x=1", "KEY_1": "v"}, "binaryData": {"logo.png": "aGVsbG8="}});
        assert!(config_map_create(&good).is_empty());
        let bad = json!({"metadata": {"name": "cfg"}, "data": {"a b": "x", "dup": "1"}, "binaryData": {"dup": "aGk="}});
        let errs = msgs(config_map_create(&bad));
        assert!(errs[0].starts_with("data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
        assert_eq!(
            errs[1],
            "data[dup]: Invalid value: \"dup\": duplicate of key present in binaryData"
        );
        let big = json!({"metadata": {"name": "cfg"}, "data": {"a": "x".repeat(MAX_SIZE + 1)}});
        assert_eq!(
            msgs(config_map_create(&big)),
            [": Too long: may not be more than 1048576 bytes"]
        );
    }

    #[test]
    fn immutable_config_maps() {
        let old = json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}, "immutable": true});
        let mut new = old.clone();
        new["data"]["a"] = json!("2");
        new["immutable"] = json!(false);
        assert_eq!(
            msgs(config_map_update(&new, &old)),
            [
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
        let mut labelled = old.clone();
        labelled["metadata"]["labels"] = json!({"a": "b"});
        assert!(config_map_update(&labelled, &old).is_empty());
    }

    #[test]
    fn secrets() {
        let tls = json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "aGk="}});
        assert_eq!(msgs(secret_create(&tls)), ["data[tls.key]: Required value"]);
        let docker = json!({"metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="}});
        assert!(secret_create(&docker).is_empty());
        let broken = json!({"metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "bm9wZQ=="}});
        assert_eq!(
            msgs(secret_create(&broken)),
            [
                "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": invalid character 'n' looking for beginning of value",
            ]
        );
        let missing = json!({"metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson", "stringData": {"x": "y"}});
        assert_eq!(
            msgs(secret_create(&missing)),
            ["data[.dockerconfigjson]: Required value"]
        );
        let token =
            json!({"metadata": {"name": "t"}, "type": "kubernetes.io/service-account-token"});
        assert_eq!(
            msgs(secret_create(&token)),
            ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
        );
        let basic = json!({"metadata": {"name": "b"}, "type": "kubernetes.io/basic-auth", "stringData": {"username": "u"}});
        assert!(secret_create(&basic).is_empty());
        let opaque =
            json!({"metadata": {"name": "o"}, "type": "Opaque", "stringData": {"bad key": "x"}});
        assert!(
            msgs(secret_create(&opaque))[0]
                .starts_with("data[bad key]: Invalid value: \"bad key\"")
        );
    }

    #[test]
    fn secret_updates() {
        let old = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "aGk="}, "immutable": true});
        let mut new = old.clone();
        new["type"] = json!("kubernetes.io/tls");
        new["data"]["a"] = json!("aGVsbG8=");
        let errs = msgs(secret_update(&new, &old));
        assert_eq!(
            errs[..2],
            [
                "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
    }
}

//! What a ConfigMap, Secret, downward API or projected volume holds: its files by relative path, built from the
//! volume's source and the objects it names, with the kubelet's modes, optionality and error messages.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde_json::Value;

use crate::downward;

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub data: Vec<u8>,
    /// Permission bits (`0o644`).
    pub mode: u32,
}

/// A volume's files by path relative to the volume (may contain `/`).
pub type Payload = BTreeMap<String, File>;

/// The mode files get when neither the item nor the volume says (the API's default `defaultMode`).
pub const DEFAULT_MODE: u32 = 0o644;

/// The token lifetime a `serviceAccountToken` source gets when it says none (the API's default).
pub const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// Why a volume's payload cannot be built: the kubelet's messages, aggregated as Go's `errors.NewAggregate`
/// prints them (one message alone, several as `[a, b]` without repeats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError(pub Vec<String>);

impl SourceError {
    fn one(message: impl Into<String>) -> SourceError {
        SourceError(vec![message.into()])
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut seen: Vec<&str> = Vec::new();
        for message in &self.0 {
            if !seen.contains(&message.as_str()) {
                seen.push(message);
            }
        }
        match seen.as_slice() {
            [one] => f.write_str(one),
            all => write!(f, "[{}]", all.join(", ")),
        }
    }
}

impl std::error::Error for SourceError {}

/// What the agent fetched for a projected volume: ConfigMaps and Secrets of the pod's namespace (`None` when
/// there is none of that name) and service account tokens.
pub trait Sources {
    fn config_map(&self, name: &str) -> Option<Value>;
    fn secret(&self, name: &str) -> Option<Value>;
    /// A token of the pod's service account bound to the pod, for `audience` (the API server's when `None`).
    fn token(&self, audience: Option<&str>, expiration_seconds: i64) -> Result<String, String>;
}

/// An object a volume's content comes from, which the agent must fetch (and watch).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    ConfigMap(String),
    Secret(String),
    Token {
        audience: Option<String>,
        expiration_seconds: i64,
    },
}

/// What `volume` (one entry of a pod's `spec.volumes`) is made from: the ConfigMap of a `configMap` volume, the
/// Secret of a `secret` one, the sources of a `projected` one; nothing for other kinds.
pub fn references(volume: &Value) -> Vec<Reference> {
    let name = |source: &Value, field: &str| {
        source
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut out = Vec::new();
    if let Some(source) = volume.get("configMap") {
        out.push(Reference::ConfigMap(name(source, "name")));
    }
    if let Some(source) = volume.get("secret") {
        out.push(Reference::Secret(name(source, "secretName")));
    }
    for source in projections(volume.get("projected").unwrap_or(&Value::Null)) {
        if let Some(cm) = source.get("configMap") {
            out.push(Reference::ConfigMap(name(cm, "name")));
        }
        if let Some(secret) = source.get("secret") {
            out.push(Reference::Secret(name(secret, "name")));
        }
        if let Some(token) = source.get("serviceAccountToken") {
            out.push(Reference::Token {
                audience: audience(token).map(str::to_owned),
                expiration_seconds: expiration(token),
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The payload of `volume` if it is a `configMap`, `secret`, `downwardAPI` or `projected` volume.
pub fn build(
    volume: &Value,
    sources: &dyn Sources,
    pod: &Value,
    allocatable: &Value,
) -> Option<Result<Payload, SourceError>> {
    if let Some(source) = volume.get("configMap") {
        let name = source
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Some(config_map(source, sources.config_map(name).as_ref()));
    }
    if let Some(source) = volume.get("secret") {
        let name = source
            .get("secretName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Some(secret(source, sources.secret(name).as_ref()));
    }
    if let Some(source) = volume.get("downwardAPI") {
        return Some(downward_api(source, pod, allocatable));
    }
    let source = volume.get("projected")?;
    Some(projected(source, sources, pod, allocatable))
}

/// A `configMap` volume's files from `object`, the ConfigMap (`None` when there is none).
pub fn config_map(source: &Value, object: Option<&Value>) -> Result<Payload, SourceError> {
    let name = source
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mode = mode_of(source, "defaultMode").unwrap_or(DEFAULT_MODE);
    keyed_payload(Kind::ConfigMap, name, source, object, mode)
}

/// A `secret` volume's files from `object`, the Secret (`None` when there is none).
pub fn secret(source: &Value, object: Option<&Value>) -> Result<Payload, SourceError> {
    let name = source
        .get("secretName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mode = mode_of(source, "defaultMode").unwrap_or(DEFAULT_MODE);
    keyed_payload(Kind::Secret, name, source, object, mode)
}

/// A `downwardAPI` volume's files: each item's `fieldRef` or `resourceFieldRef` of `pod`, with limits not set
/// taken from the node's `allocatable`. Every item's error is reported, not only the first.
pub fn downward_api(
    source: &Value,
    pod: &Value,
    allocatable: &Value,
) -> Result<Payload, SourceError> {
    let mode = mode_of(source, "defaultMode").unwrap_or(DEFAULT_MODE);
    let mut payload = Payload::new();
    let errors = downward_items(source, pod, allocatable, mode, &mut payload);
    if errors.is_empty() {
        Ok(payload)
    } else {
        Err(SourceError(errors))
    }
}

/// A `projected` volume's files: its sources in order (later paths replacing earlier ones), all with the
/// projected `defaultMode` unless an item says otherwise. Every source's error is reported.
pub fn projected(
    source: &Value,
    sources: &dyn Sources,
    pod: &Value,
    allocatable: &Value,
) -> Result<Payload, SourceError> {
    let mode = mode_of(source, "defaultMode").unwrap_or(DEFAULT_MODE);
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for projection in projections(source) {
        let name = |s: &Value| {
            s.get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let part = if let Some(cm) = projection.get("configMap") {
            let object = sources.config_map(&name(cm));
            keyed_payload(Kind::ConfigMap, &name(cm), cm, object.as_ref(), mode)
        } else if let Some(secret) = projection.get("secret") {
            let object = sources.secret(&name(secret));
            keyed_payload(Kind::Secret, &name(secret), secret, object.as_ref(), mode)
        } else if let Some(downward) = projection.get("downwardAPI") {
            let mut part = Payload::new();
            let failed = downward_items(downward, pod, allocatable, mode, &mut part);
            if failed.is_empty() {
                Ok(part)
            } else {
                Err(SourceError(failed))
            }
        } else if let Some(token) = projection.get("serviceAccountToken") {
            sources
                .token(audience(token), expiration(token))
                .map(|token_text| {
                    let path = token
                        .get("path")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let file = File {
                        data: token_text.into_bytes(),
                        mode,
                    };
                    Payload::from([(path.to_owned(), file)])
                })
                .map_err(SourceError::one)
        } else if projection.get("clusterTrustBundle").is_some() {
            Err(SourceError::one(
                "clusterTrustBundle projections are not supported by this node",
            ))
        } else {
            Ok(Payload::new())
        };
        match part {
            Ok(part) => payload.extend(part),
            Err(SourceError(failed)) => errors.extend(failed),
        }
    }
    if errors.is_empty() {
        Ok(payload)
    } else {
        Err(SourceError(errors))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ConfigMap,
    Secret,
}

/// The shared logic of ConfigMap and Secret sources (the kubelet's `MakePayload`): every key without `items`,
/// else each item's key at its path; optional sources tolerate a missing object or key.
fn keyed_payload(
    kind: Kind,
    name: &str,
    source: &Value,
    object: Option<&Value>,
    default_mode: u32,
) -> Result<Payload, SourceError> {
    let optional = source.get("optional").and_then(Value::as_bool) == Some(true);
    let (label, noun) = match kind {
        Kind::ConfigMap => ("configmap", "config"),
        Kind::Secret => ("secret", "secret"),
    };
    let Some(object) = object else {
        return if optional {
            Ok(Payload::new())
        } else {
            Err(SourceError::one(format!("{label} \"{name}\" not found")))
        };
    };
    let data = object_data(kind, object).map_err(SourceError::one)?;
    let items: Vec<&Value> = source
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let mut payload = Payload::new();
    if items.is_empty() {
        for (key, bytes) in data {
            let file = File {
                data: bytes,
                mode: default_mode,
            };
            payload.insert(key, file);
        }
        return Ok(payload);
    }
    for item in items {
        let key = item.get("key").and_then(Value::as_str).unwrap_or_default();
        let Some(bytes) = data.get(key) else {
            if optional {
                continue;
            }
            return Err(SourceError::one(format!(
                "{label} references non-existent {noun} key: {key}"
            )));
        };
        let path = item.get("path").and_then(Value::as_str).unwrap_or_default();
        let file = File {
            data: bytes.clone(),
            mode: mode_of(item, "mode").unwrap_or(default_mode),
        };
        payload.insert(path.to_owned(), file);
    }
    Ok(payload)
}

/// A ConfigMap's `data` (text) and `binaryData`, or a Secret's `data` (base64; `stringData` is never stored).
fn object_data(kind: Kind, object: &Value) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let fields: &[(&str, bool)] = match kind {
        Kind::ConfigMap => &[("data", false), ("binaryData", true)],
        Kind::Secret => &[("data", true)],
    };
    let mut out = BTreeMap::new();
    for (field, encoded) in fields {
        for (key, value) in object
            .get(*field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let text = value.as_str().unwrap_or_default();
            let bytes = if *encoded {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| format!("key {key} of {field} is not valid base64: {e}"))?
            } else {
                text.as_bytes().to_vec()
            };
            out.insert(key.clone(), bytes);
        }
    }
    Ok(out)
}

/// The items of a downward API source into `payload`; the errors, one per failed item.
fn downward_items(
    source: &Value,
    pod: &Value,
    allocatable: &Value,
    default_mode: u32,
    payload: &mut Payload,
) -> Vec<String> {
    let mut errors = Vec::new();
    for item in source
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let path = clean(item.get("path").and_then(Value::as_str).unwrap_or_default());
        let value = if let Some(field) = item.pointer("/fieldRef/fieldPath").and_then(Value::as_str)
        {
            downward::field_value(pod, field)
        } else if let Some(selector) = item.get("resourceFieldRef") {
            downward::resource_value(pod, None, selector, allocatable)
        } else {
            Ok(String::new())
        };
        let data = value
            .map_err(|e| errors.push(e))
            .unwrap_or_default()
            .into_bytes();
        let file = File {
            data,
            mode: mode_of(item, "mode").unwrap_or(default_mode),
        };
        payload.insert(path, file);
    }
    errors
}

/// Go's `filepath.Clean` for the relative paths of downward API items.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (path.starts_with('/'), joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

fn projections(source: &Value) -> impl Iterator<Item = &Value> {
    source
        .get("sources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn audience(token: &Value) -> Option<&str> {
    token
        .get("audience")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
}

fn expiration(token: &Value) -> i64 {
    token
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS)
}

fn mode_of(value: &Value, field: &str) -> Option<u32> {
    value
        .get(field)
        .and_then(Value::as_u64)
        .and_then(|m| u32::try_from(m).ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(payload: &Payload, path: &str) -> (String, u32) {
        let file = &payload[path];
        (String::from_utf8(file.data.clone()).unwrap(), file.mode)
    }

    fn cm() -> Value {
        json!({"metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}, "binaryData": {"bin": "AAEC"}})
    }

    #[test]
    fn config_map_keys_items_modes_and_binary_data() {
        let all = config_map(&json!({"name": "cfg"}), Some(&cm())).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(text(&all, "a"), ("1".into(), 0o644));
        assert_eq!(all["bin"].data, [0, 1, 2]);
        let source = json!({"name": "cfg", "defaultMode": 0o400, "items": [
            {"key": "a", "path": "dir/first"}, {"key": "bin", "path": "b.bin", "mode": 0o600}]});
        let items = config_map(&source, Some(&cm())).unwrap();
        assert_eq!(items.keys().collect::<Vec<_>>(), ["b.bin", "dir/first"]);
        assert_eq!(text(&items, "dir/first"), ("1".into(), 0o400));
        assert_eq!(items["b.bin"].mode, 0o600);
    }

    #[test]
    fn config_map_optionality_and_messages() {
        let missing = config_map(&json!({"name": "cfg"}), None).unwrap_err();
        assert_eq!(missing.to_string(), "configmap \"cfg\" not found");
        let optional =
            json!({"name": "cfg", "optional": true, "items": [{"key": "zz", "path": "z"}]});
        assert!(config_map(&optional, None).unwrap().is_empty());
        assert!(config_map(&optional, Some(&cm())).unwrap().is_empty());
        let required = json!({"name": "cfg", "items": [{"key": "zz", "path": "z"}]});
        assert_eq!(
            config_map(&required, Some(&cm())).unwrap_err().to_string(),
            "configmap references non-existent config key: zz"
        );
    }

    #[test]
    fn secrets_are_decoded_and_string_data_ignored() {
        let object = json!({"data": {"password": "czNjcmV0"}, "stringData": {"other": "x"}});
        let payload = secret(
            &json!({"secretName": "creds", "defaultMode": 0o440}),
            Some(&object),
        )
        .unwrap();
        assert_eq!(text(&payload, "password"), ("s3cret".into(), 0o440));
        assert_eq!(payload.len(), 1);
        let err = secret(&json!({"secretName": "creds"}), None).unwrap_err();
        assert_eq!(err.to_string(), "secret \"creds\" not found");
        let items = json!({"secretName": "creds", "items": [{"key": "nope", "path": "n"}]});
        assert_eq!(
            secret(&items, Some(&object)).unwrap_err().to_string(),
            "secret references non-existent secret key: nope"
        );
    }

    fn pod() -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "prod", "labels": {"b": "2", "a": "1"}},
            "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "64Mi"}}}]}})
    }

    #[test]
    fn downward_api_items_and_aggregated_errors() {
        let source = json!({"defaultMode": 0o444, "items": [
            {"path": "./labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o400},
            {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory",
                "divisor": "1Mi"}},
            {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu",
                "divisor": "1m"}}]});
        let allocatable = json!({"cpu": "2"});
        let payload = downward_api(&source, &pod(), &allocatable).unwrap();
        assert_eq!(text(&payload, "labels"), ("a=\"1\"\nb=\"2\"".into(), 0o444));
        assert_eq!(text(&payload, "name"), ("web-1".into(), 0o400));
        assert_eq!(text(&payload, "mem").0, "64");
        assert_eq!(text(&payload, "cpu").0, "2000");
        let bad = json!({"items": [
            {"path": "x", "fieldRef": {"fieldPath": "spec.bogus"}},
            {"path": "y", "resourceFieldRef": {"containerName": "gone", "resource": "limits.cpu"}}]});
        assert_eq!(
            downward_api(&bad, &pod(), &allocatable)
                .unwrap_err()
                .to_string(),
            "[unsupported fieldPath: spec.bogus, container gone not found]"
        );
    }

    struct Fetched;

    impl Sources for Fetched {
        fn config_map(&self, name: &str) -> Option<Value> {
            (name == "cfg").then(cm)
        }
        fn secret(&self, name: &str) -> Option<Value> {
            (name == "creds").then(|| json!({"data": {"token": "dG9r"}}))
        }
        fn token(&self, audience: Option<&str>, expiration: i64) -> Result<String, String> {
            Ok(format!("jwt-{}-{expiration}", audience.unwrap_or("api")))
        }
    }

    #[test]
    fn projected_sources_combine_with_the_projected_default_mode() {
        let source = json!({"defaultMode": 0o440, "sources": [
            {"configMap": {"name": "cfg", "items": [{"key": "a", "path": "cfg/a"}]}},
            {"secret": {"name": "creds"}},
            {"secret": {"name": "absent", "optional": true}},
            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            {"serviceAccountToken": {"path": "token", "audience": "vault", "expirationSeconds": 600}},
            {"serviceAccountToken": {"path": "api-token"}}]});
        let payload = projected(&source, &Fetched, &pod(), &Value::Null).unwrap();
        assert_eq!(
            payload.keys().collect::<Vec<_>>(),
            ["api-token", "cfg/a", "ns", "token"]
        );
        assert_eq!(text(&payload, "cfg/a"), ("1".into(), 0o440));
        assert_eq!(text(&payload, "ns"), ("prod".into(), 0o440));
        assert_eq!(text(&payload, "token").0, "jwt-vault-600");
        assert_eq!(text(&payload, "api-token").0, "jwt-api-3600");
        let failing = json!({"sources": [
            {"secret": {"name": "absent"}},
            {"clusterTrustBundle": {"path": "ca.pem", "name": "b"}}]});
        let err = projected(&failing, &Fetched, &pod(), &Value::Null).unwrap_err();
        assert_eq!(
            err.to_string(),
            "[secret \"absent\" not found, clusterTrustBundle projections are not supported by this node]"
        );
    }

    #[test]
    fn references_name_what_to_fetch() {
        assert_eq!(
            references(&json!({"name": "v", "configMap": {"name": "cfg"}})),
            [Reference::ConfigMap("cfg".into())]
        );
        assert_eq!(
            references(&json!({"name": "v", "secret": {"secretName": "creds"}})),
            [Reference::Secret("creds".into())]
        );
        assert!(references(&json!({"name": "v", "emptyDir": {}})).is_empty());
        let projected = json!({"name": "v", "projected": {"sources": [
            {"serviceAccountToken": {"path": "t"}}, {"configMap": {"name": "b"}},
            {"secret": {"name": "s"}}, {"configMap": {"name": "b"}}]}});
        assert_eq!(
            references(&projected),
            [
                Reference::ConfigMap("b".into()),
                Reference::Secret("s".into()),
                Reference::Token {
                    audience: None,
                    expiration_seconds: 3600
                }
            ]
        );
        let built = build(&projected, &Fetched, &pod(), &Value::Null);
        assert_eq!(
            built.unwrap().unwrap_err().to_string(),
            "[configmap \"b\" not found, secret \"s\" not found]"
        );
        assert!(build(&json!({"emptyDir": {}}), &Fetched, &pod(), &Value::Null).is_none());
    }
}

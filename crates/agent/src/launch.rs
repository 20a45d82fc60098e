//! What a container runs, from its spec and its image: the command line (Kubernetes' `command`/`args` over the
//! image's `Entrypoint`/`Cmd`), the environment (the image's, then the container's `env` with `valueFrom`
//! resolved and `$(VAR)` references expanded), the working directory and the user.

use std::collections::BTreeMap;

use serde_json::Value;

/// The parts of an image's config a launch needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

/// A container ready to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub name: String,
    pub args: Vec<String>,
    /// In order, later entries overriding earlier ones of the same name already removed.
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    /// The image's user (`uid[:gid]` or a name); the pod's securityContext wins over it.
    pub image_user: String,
}

/// What `envFrom` and `valueFrom` read besides the pod itself: the pod namespace's ConfigMaps and Secrets
/// (their data as text; `None` when there is no such object).
pub trait EnvSources {
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>>;
    fn secret(&self, name: &str) -> Option<BTreeMap<String, String>>;
}

/// The ConfigMaps (`false`) and Secrets (`true`) the container's environment refers to, by name, once each.
pub fn env_references(container: &Value) -> Vec<(String, bool)> {
    let list = |field: &str| {
        container
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    };
    let mut wanted: Vec<(String, bool)> = Vec::new();
    let refs = [
        ("/valueFrom/configMapKeyRef/name", false),
        ("/valueFrom/secretKeyRef/name", true),
    ];
    for var in list("env") {
        wanted.extend(
            refs.iter()
                .filter_map(|(p, s)| Some((var.pointer(p)?.as_str()?.to_owned(), *s))),
        );
    }
    let refs = [("/configMapRef/name", false), ("/secretRef/name", true)];
    for source in list("envFrom") {
        wanted.extend(
            refs.iter()
                .filter_map(|(p, s)| Some((source.pointer(p)?.as_str()?.to_owned(), *s))),
        );
    }
    wanted.sort();
    wanted.dedup();
    wanted
}

/// Why a container cannot be launched (it stays Waiting with `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Resolves `container` (a JSON container spec) of `pod` over its image's defaults.
pub fn resolve(
    pod: &Value,
    container: &Value,
    image: &ImageDefaults,
    sources: &dyn EnvSources,
) -> Result<Launch, ConfigError> {
    let strings = |field: &str| -> Vec<String> {
        container
            .get(field)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let env = environment(pod, container, image, sources)?;
    let lookup: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (command, args) = (strings("command"), strings("args"));
    let command_line: Vec<String> = match (command.is_empty(), args.is_empty()) {
        (false, _) => command
            .iter()
            .chain(&args)
            .map(|s| expand(s, &lookup))
            .collect(),
        (true, false) => image
            .entrypoint
            .iter()
            .cloned()
            .chain(args.iter().map(|s| expand(s, &lookup)))
            .collect(),
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    };
    let name = container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if command_line.is_empty() {
        return Err(ConfigError(format!(
            "container {name:?} has no command: neither its spec nor its image names one"
        )));
    }
    let working_dir = container
        .get("workingDir")
        .and_then(Value::as_str)
        .filter(|w| !w.is_empty())
        .map_or_else(|| image.working_dir.clone(), str::to_owned);
    Ok(Launch {
        name: name.to_owned(),
        args: command_line,
        env,
        working_dir: if working_dir.is_empty() {
            "/".to_owned()
        } else {
            working_dir
        },
        image_user: image.user.clone(),
    })
}

/// The image's environment, then `envFrom`, then `env` (each `$(VAR)`-expanded against what comes before it).
fn environment(
    pod: &Value,
    container: &Value,
    image: &ImageDefaults,
    sources: &dyn EnvSources,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    };
    for entry in &image.env {
        let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
        set(&mut env, name.to_owned(), value.to_owned());
    }
    for source in container
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let prefix = source
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for (field, secret) in [("configMapRef", false), ("secretRef", true)] {
            let Some(reference) = source.get(field) else {
                continue;
            };
            let name = reference
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let optional = reference.get("optional").and_then(Value::as_bool) == Some(true);
            let data = if secret {
                sources.secret(name)
            } else {
                sources.config_map(name)
            };
            match (data, optional) {
                (Some(data), _) => {
                    for (key, value) in data {
                        set(&mut env, format!("{prefix}{key}"), value);
                    }
                }
                (None, true) => {}
                (None, false) => return Err(missing(pod, secret, name, None)),
            }
        }
    }
    for var in container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = var
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let value = match (
            var.get("value").and_then(Value::as_str),
            var.get("valueFrom"),
        ) {
            (_, Some(from)) => match value_from(pod, container, from, sources)? {
                Some(value) => value,
                None => continue,
            },
            (Some(value), None) => {
                let lookup: BTreeMap<&str, &str> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(value, &lookup)
            }
            (None, None) => String::new(),
        };
        set(&mut env, name, value);
    }
    Ok(env)
}

/// A `valueFrom`: `Ok(None)` for an optional reference that is missing.
fn value_from(
    pod: &Value,
    container: &Value,
    from: &Value,
    sources: &dyn EnvSources,
) -> Result<Option<String>, ConfigError> {
    if let Some(field) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
        return field_ref(pod, field).map(Some);
    }
    if let Some(resource) = from
        .pointer("/resourceFieldRef/resource")
        .and_then(Value::as_str)
    {
        let (kind, name) = resource.split_once('.').unwrap_or(("", resource));
        let value = container
            .pointer(&format!("/resources/{kind}/{name}"))
            .and_then(Value::as_str)
            .unwrap_or("0");
        return Ok(Some(value.to_owned()));
    }
    for (field, secret) in [("configMapKeyRef", false), ("secretKeyRef", true)] {
        let Some(reference) = from.get(field) else {
            continue;
        };
        let name = reference
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = reference
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let optional = reference.get("optional").and_then(Value::as_bool) == Some(true);
        let data = if secret {
            sources.secret(name)
        } else {
            sources.config_map(name)
        };
        return match (data.as_ref().map(|d| d.get(key)), optional) {
            (Some(Some(value)), _) => Ok(Some(value.clone())),
            (_, true) => Ok(None),
            (None, false) => Err(missing(pod, secret, name, None)),
            (Some(None), false) => Err(missing(pod, secret, name, Some(key))),
        };
    }
    Err(ConfigError("valueFrom names no source".into()))
}

/// The kubelet's words for a missing ConfigMap or Secret, or a missing key of one.
fn missing(pod: &Value, secret: bool, name: &str, key: Option<&str>) -> ConfigError {
    let kind = if secret { "secret" } else { "configmap" };
    let namespace = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    ConfigError(match key {
        Some(key) => format!(
            "couldn't find key {key} in {} {namespace}/{name}",
            if secret { "Secret" } else { "ConfigMap" }
        ),
        None => format!("{kind} \"{name}\" not found"),
    })
}

/// The downward API's `fieldRef` paths.
fn field_ref(pod: &Value, path: &str) -> Result<String, ConfigError> {
    let text = |pointer: &str| {
        pod.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let map_entry = |field: &str, key: &str| {
        pod.pointer(&format!("/metadata/{field}"))
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(match path {
        "metadata.name" => text("/metadata/name"),
        "metadata.namespace" => text("/metadata/namespace"),
        "metadata.uid" => text("/metadata/uid"),
        "spec.nodeName" => text("/spec/nodeName"),
        "spec.serviceAccountName" => text("/spec/serviceAccountName"),
        "status.hostIP" => text("/status/hostIP"),
        "status.podIP" => text("/status/podIP"),
        "status.hostIPs" => text("/status/hostIP"),
        "status.podIPs" => text("/status/podIP"),
        _ => {
            if let Some(key) = bracketed(path, "metadata.labels") {
                map_entry("labels", key)
            } else if let Some(key) = bracketed(path, "metadata.annotations") {
                map_entry("annotations", key)
            } else {
                return Err(ConfigError(format!("unsupported fieldRef {path:?}")));
            }
        }
    })
}

/// `metadata.labels['key']` → `key`.
fn bracketed<'a>(path: &'a str, field: &str) -> Option<&'a str> {
    path.strip_prefix(field)?
        .strip_prefix("['")?
        .strip_suffix("']")
}

/// Kubernetes' `$(VAR)` expansion: known names are replaced, unknown references stay as written, `$$` is a
/// literal `$`.
pub fn expand(input: &str, env: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match env.get(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct Sources;

    impl EnvSources for Sources {
        fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
            (name == "cfg").then(|| [("mode".to_owned(), "fast".to_owned())].into())
        }
        fn secret(&self, name: &str) -> Option<BTreeMap<String, String>> {
            (name == "creds").then(|| [("password".to_owned(), "s3cret".to_owned())].into())
        }
    }

    fn pod() -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "prod", "uid": "u-1",
            "labels": {"app": "web"}}, "spec": {"nodeName": "n1"},
            "status": {"podIP": "10.42.0.7", "hostIP": "192.168.0.2"}})
    }

    fn image() -> ImageDefaults {
        ImageDefaults {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["--serve".into()],
            env: vec!["PATH=/usr/bin:/bin".into(), "MODE=slow".into()],
            working_dir: "/app".into(),
            user: "1000".into(),
        }
    }

    #[test]
    fn command_and_args_override_the_image_as_kubernetes_says() {
        let run = |container: Value| {
            resolve(&pod(), &container, &image(), &Sources)
                .unwrap()
                .args
        };
        assert_eq!(run(json!({"name": "c"})), ["/entry", "--serve"]);
        assert_eq!(
            run(json!({"name": "c", "args": ["--x"]})),
            ["/entry", "--x"]
        );
        assert_eq!(
            run(json!({"name": "c", "command": ["/bin/sh"]})),
            ["/bin/sh"]
        );
        assert_eq!(
            run(
                json!({"name": "c", "command": ["/bin/sh", "-c"], "args": ["echo $(MODE) $$(x) $(NOPE)"]})
            ),
            ["/bin/sh", "-c", "echo slow $(x) $(NOPE)"]
        );
        let empty = ImageDefaults::default();
        let err = resolve(&pod(), &json!({"name": "c"}), &empty, &Sources).unwrap_err();
        assert!(err.0.contains("no command"), "{err}");
    }

    #[test]
    fn environment_layers_and_value_from() {
        let container = json!({"name": "c", "resources": {"limits": {"memory": "64Mi"}}, "env": [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "GREETING", "value": "$(POD) in $(MODE) mode"},
            {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "none", "key": "k", "optional": true}}},
        ]});
        let launch = resolve(&pod(), &container, &image(), &Sources).unwrap();
        let env: BTreeMap<_, _> = launch.env.iter().cloned().collect();
        assert_eq!(env["MODE"], "fast");
        assert_eq!(env["PATH"], "/usr/bin:/bin");
        assert_eq!(env["POD"], "web-1");
        assert_eq!(env["APP"], "web");
        assert_eq!(env["IP"], "10.42.0.7");
        assert_eq!(env["MEM"], "64Mi");
        assert_eq!(env["PASS"], "s3cret");
        assert_eq!(env["GREETING"], "web-1 in fast mode");
        assert!(!env.contains_key("MAYBE"));
        assert_eq!(launch.working_dir, "/app");
        let missing = json!({"name": "c", "env": [{"name": "X",
            "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "absent"}}}]});
        let err = resolve(&pod(), &missing, &image(), &Sources).unwrap_err();
        assert_eq!(err.0, "couldn't find key absent in ConfigMap prod/cfg");
    }

    #[test]
    fn env_from_adds_every_key_with_its_prefix_and_env_wins() {
        let container = json!({"name": "c", "envFrom": [
            {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
            {"secretRef": {"name": "creds"}},
            {"secretRef": {"name": "absent", "optional": true}},
        ], "env": [{"name": "password", "value": "override"}]});
        let launch = resolve(&pod(), &container, &image(), &Sources).unwrap();
        let env: BTreeMap<_, _> = launch.env.iter().cloned().collect();
        assert_eq!(env["CFG_mode"], "fast");
        assert_eq!(env["password"], "override");
        let required = json!({"name": "c", "envFrom": [{"secretRef": {"name": "absent"}}]});
        let err = resolve(&pod(), &required, &image(), &Sources).unwrap_err();
        assert_eq!(err.0, "secret \"absent\" not found");
    }
}

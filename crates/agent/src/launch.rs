//! What a container runs, from its spec and its image: the command line (Kubernetes' `command`/`args` over the
//! image's `Entrypoint`/`Cmd`), the environment (the image's, then the container's `env` with `valueFrom`
//! resolved and `$(VAR)` references expanded), the working directory and the user; and the files the kubelet
//! makes for a pod, as it makes them: `/etc/resolv.conf` (by `dnsPolicy` and `dnsConfig`), `/etc/hosts` and the
//! hostname.

use std::collections::BTreeMap;
use std::net::IpAddr;

use gantry_volumes::{downward, subpath};
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
    /// The Service variables the container gets ([`crate::service_links::variables`]).
    fn service_variables(&self) -> Vec<(String, String)>;
    /// The node's `status.allocatable`: what a `resourceFieldRef` to a limit the container does not set
    /// gives (the kubelet's rule). Without it such a limit reads 0.
    fn allocatable(&self) -> Value {
        Value::Null
    }
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

/// The image's environment, then the Services' variables, then `envFrom`, then `env` (each `$(VAR)`-expanded
/// against what comes before it).
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
    for (name, value) in sources.service_variables() {
        set(&mut env, name, value);
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
        return downward::field_value(pod, field)
            .map(Some)
            .map_err(ConfigError);
    }
    if let Some(selector) = from.get("resourceFieldRef") {
        return downward::resource_value(pod, Some(container), selector, &sources.allocatable())
            .map(Some)
            .map_err(ConfigError);
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

/// Kubernetes' `$(VAR)` expansion: known names are replaced, unknown references stay as written, `$$` is a
/// literal `$`.
pub fn expand(input: &str, env: &BTreeMap<&str, &str>) -> String {
    subpath::expand_with(input, |name| env.get(name).copied())
}

/// What the cluster's DNS is, as the agent's `--cluster-dns` and `--cluster-domain` say (the kubelet's
/// `clusterDNS` and `clusterDomain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// The cluster DNS server's address; without one, `ClusterFirst` pods get the node's resolvers (as the
    /// kubelet falls back to `Default`).
    pub server: Option<IpAddr>,
    /// `cluster.local`.
    pub domain: String,
}

/// A resolver configuration: what a `resolv.conf` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`.
    pub options: Vec<String>,
}

/// The resolver limits of upstream's validation (`MaxDNSNameservers`, `MaxDNSSearchPaths`,
/// `MaxDNSSearchListChars`) and the longest domain a search path may be (a DNS subdomain).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCH_PATHS: usize = 32;
const MAX_SEARCH_LIST_CHARS: usize = 2048;
const MAX_DOMAIN_LENGTH: usize = 253;

impl ResolvConf {
    /// Reads a node's `resolv.conf` as the kubelet does: `nameserver` lines add up, the last `search` line
    /// wins (trailing dots dropped, `.` left out), `options` add up with a later option replacing an earlier
    /// one of the same name; comments and anything else are ignored.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => conf.nameservers.extend(fields.next().map(str::to_owned)),
                Some("search") => {
                    conf.searches = fields
                        .filter(|s| *s != ".")
                        .map(|s| s.strip_suffix('.').unwrap_or(s).to_owned())
                        .collect();
                }
                Some("options") => {
                    for option in fields {
                        set_option(&mut conf.options, option.to_owned());
                    }
                }
                _ => {}
            }
        }
        conf
    }

    /// The file, as containerd writes a pod's: the search line, one line per nameserver, the options line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for server in &self.nameservers {
            out.push_str(&format!("nameserver {server}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// Sets `option` (`name` or `name:value`) in `options`: in the place of an earlier one of the same name, else
/// at the end.
fn set_option(options: &mut Vec<String>, option: String) {
    let name = |o: &str| o.split(':').next().unwrap_or_default().to_owned();
    let wanted = name(&option);
    match options.iter_mut().find(|o| name(o) == wanted) {
        Some(existing) => *existing = option,
        None => options.push(option),
    }
}

/// Adds `new` to `list`, leaving out what is already there.
fn append_new(list: &mut Vec<String>, new: impl IntoIterator<Item = String>) {
    for item in new {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

/// Whether the pod uses the node's network namespace (`spec.hostNetwork`).
pub fn host_network(pod: &Value) -> bool {
    pod.pointer("/spec/hostNetwork").and_then(Value::as_bool) == Some(true)
}

fn spec_text<'a>(pod: &'a Value, field: &str) -> &'a str {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The pod's `/etc/resolv.conf` as the kubelet forms it from its `dnsPolicy` and `dnsConfig`, over the
/// node's resolvers `node`; with warnings for what did not fit the resolver's limits (left out, as the
/// kubelet's `DNSConfigForming` events say).
pub fn pod_resolv_conf(
    pod: &Value,
    node: &ResolvConf,
    cluster: &ClusterDns,
) -> (ResolvConf, Vec<String>) {
    let mut warnings = Vec::new();
    let namespace = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    // `ClusterFirst` (the default) on the host's network is `Default`; `ClusterFirstWithHostNet` is
    // `ClusterFirst` for any pod.
    let cluster_first = match spec_text(pod, "dnsPolicy") {
        "None" | "Default" => false,
        "ClusterFirstWithHostNet" => true,
        _ => !host_network(pod),
    };
    let mut conf = match (spec_text(pod, "dnsPolicy"), cluster_first, cluster.server) {
        ("None", _, _) => ResolvConf::default(),
        (_, true, Some(server)) => {
            let mut searches = Vec::new();
            if !cluster.domain.is_empty() {
                let domain = &cluster.domain;
                searches = vec![
                    format!("{namespace}.svc.{domain}"),
                    format!("svc.{domain}"),
                    domain.clone(),
                ];
            }
            append_new(&mut searches, node.searches.iter().cloned());
            ResolvConf {
                nameservers: vec![server.to_string()],
                searches,
                options: vec!["ndots:5".to_owned()],
            }
        }
        (_, true, None) => {
            warnings.push(
                "the node agent has no cluster DNS server (--cluster-dns) and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy."
                    .to_owned(),
            );
            node.clone()
        }
        _ => node.clone(),
    };
    if let Some(config) = pod.pointer("/spec/dnsConfig") {
        let strings = |field: &str| {
            config
                .get(field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let mut nameservers = Vec::new();
        append_new(&mut nameservers, conf.nameservers.drain(..));
        append_new(&mut nameservers, strings("nameservers"));
        conf.nameservers = nameservers;
        let mut searches = Vec::new();
        append_new(&mut searches, conf.searches.drain(..));
        append_new(&mut searches, strings("searches"));
        conf.searches = searches;
        for option in config
            .get("options")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = option.get("name").and_then(Value::as_str) else {
                continue;
            };
            let value = option
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or_default();
            set_option(
                &mut conf.options,
                if value.is_empty() {
                    name.to_owned()
                } else {
                    format!("{name}:{value}")
                },
            );
        }
    }
    if conf.nameservers.len() > MAX_NAMESERVERS {
        conf.nameservers.truncate(MAX_NAMESERVERS);
        warnings.push(format!(
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
            conf.nameservers.join(" ")
        ));
    }
    let mut exceeded = conf.searches.len() > MAX_SEARCH_PATHS;
    conf.searches.truncate(MAX_SEARCH_PATHS);
    let before = conf.searches.len();
    conf.searches.retain(|s| s.len() <= MAX_DOMAIN_LENGTH);
    exceeded |= conf.searches.len() != before;
    while conf.searches.join(" ").len() > MAX_SEARCH_LIST_CHARS {
        conf.searches.pop();
        exceeded = true;
    }
    if exceeded {
        warnings.push(format!(
            "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
            conf.searches.join(" ")
        ));
    }
    (conf, warnings)
}

/// The pod's hostname and, with a `subdomain`, its domain (`<subdomain>.<namespace>.svc.<cluster domain>`),
/// as the kubelet makes them: `spec.hostname` or else the pod's name, cut to 63 characters (without a
/// trailing `-` or `.`).
pub fn pod_hostname(pod: &Value, cluster_domain: &str) -> (String, Option<String>) {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("pod");
    let hostname = Some(spec_text(pod, "hostname"))
        .filter(|h| !h.is_empty())
        .unwrap_or(name);
    let mut hostname = hostname.to_owned();
    if hostname.len() > 63 {
        let mut end = 63;
        while !hostname.is_char_boundary(end) {
            end -= 1;
        }
        hostname.truncate(end);
        hostname = hostname.trim_end_matches(['-', '.']).to_owned();
    }
    let namespace = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let domain = Some(spec_text(pod, "subdomain"))
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s}.{namespace}.svc.{cluster_domain}"));
    (hostname, domain)
}

/// The hostname the pod's kernel (UTS namespace) and `/etc/hostname` get: its hostname, or with
/// `setHostnameAsFQDN` and a subdomain its fully qualified name, which must fit the kernel's 64 characters.
pub fn kernel_hostname(pod: &Value, cluster_domain: &str) -> Result<String, ConfigError> {
    let (hostname, domain) = pod_hostname(pod, cluster_domain);
    let fqdn = pod
        .pointer("/spec/setHostnameAsFQDN")
        .and_then(Value::as_bool)
        == Some(true);
    match domain.filter(|_| fqdn) {
        Some(domain) => {
            let fqdn = format!("{hostname}.{domain}");
            if fqdn.len() > 64 {
                return Err(ConfigError(format!(
                    "failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long (64 characters is the max, {} characters requested)",
                    fqdn.len()
                )));
            }
            Ok(fqdn)
        }
        None => Ok(hostname),
    }
}

/// The pod's `/etc/hosts` as the kubelet writes it for a pod with its own network: localhost, the IPv6
/// names, the pod's addresses under its hostname (fully qualified first with a subdomain), then its
/// `hostAliases`.
pub fn managed_hosts(pod: &Value, ips: &[String], cluster_domain: &str) -> String {
    let (hostname, domain) = pod_hostname(pod, cluster_domain);
    let mut hosts = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    for ip in ips {
        match &domain {
            Some(domain) => hosts.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n")),
            None => hosts.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    hosts.push_str(&host_aliases(pod));
    hosts
}

/// The `/etc/hosts` of a pod on the host's network: the node's own file, then the pod's `hostAliases`.
pub fn host_network_hosts(pod: &Value, node_hosts: &str) -> String {
    format!(
        "# Kubernetes-managed hosts file (host network).\n{node_hosts}{}",
        host_aliases(pod)
    )
}

/// The kubelet's lines for the pod's `hostAliases` (nothing without any).
fn host_aliases(pod: &Value) -> String {
    let aliases = pod
        .pointer("/spec/hostAliases")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let ip = alias.get("ip").and_then(Value::as_str).unwrap_or_default();
        let names: Vec<&str> = alias
            .get("hostnames")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out.push_str(&format!("{ip}\t{}\n", names.join("\t")));
    }
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
        fn service_variables(&self) -> Vec<(String, String)> {
            vec![("WEB_SERVICE_HOST".into(), "10.43.0.5".into())]
        }
        fn allocatable(&self) -> Value {
            json!({"cpu": "2", "memory": "8Gi"})
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
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "LABELS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "GREETING", "value": "$(POD) in $(MODE) mode"},
            {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "none", "key": "k", "optional": true}}},
        ]});
        let launch = resolve(&pod(), &container, &image(), &Sources).unwrap();
        let env: BTreeMap<_, _> = launch.env.iter().cloned().collect();
        assert_eq!(env["MODE"], "fast");
        assert_eq!(env["WEB_SERVICE_HOST"], "10.43.0.5");
        assert_eq!(env["PATH"], "/usr/bin:/bin");
        assert_eq!(env["POD"], "web-1");
        assert_eq!(env["APP"], "web");
        assert_eq!(env["IP"], "10.42.0.7");
        assert_eq!(env["MEM"], "67108864");
        assert_eq!(
            env["CPU"], "2000",
            "a limit not set is the node's allocatable"
        );
        assert_eq!(env["LABELS"], "app=\"web\"");
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

    fn cluster() -> ClusterDns {
        ClusterDns {
            server: Some("10.43.0.10".parse().unwrap()),
            domain: "cluster.local".into(),
        }
    }

    const NODE_RESOLV: &str = "# from DHCP\nnameserver 192.168.0.1\nsearch old.example\nnameserver 192.168.0.2\n\
        search corp.example. . lab.example\noptions ndots:2 timeout:1\noptions ndots:3 rotate\n";

    fn resolv(spec: Value) -> String {
        let pod = json!({"metadata": {"name": "p", "namespace": "prod"}, "spec": spec});
        let (conf, warnings) = pod_resolv_conf(&pod, &ResolvConf::parse(NODE_RESOLV), &cluster());
        assert_eq!(warnings, Vec::<String>::new());
        conf.render()
    }

    #[test]
    fn the_node_resolv_conf_is_read_as_the_kubelet_reads_it() {
        let node = ResolvConf::parse(NODE_RESOLV);
        assert_eq!(node.nameservers, ["192.168.0.1", "192.168.0.2"]);
        assert_eq!(node.searches, ["corp.example", "lab.example"]);
        assert_eq!(node.options, ["ndots:3", "timeout:1", "rotate"]);
        assert_eq!(ResolvConf::parse("").render(), "");
    }

    #[test]
    fn resolv_conf_follows_the_dns_policy() {
        let cluster_first = "search prod.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n\
            nameserver 10.43.0.10\noptions ndots:5\n";
        let node = "search corp.example lab.example\nnameserver 192.168.0.1\nnameserver 192.168.0.2\n\
            options ndots:3 timeout:1 rotate\n";
        assert_eq!(resolv(json!({})), cluster_first);
        assert_eq!(resolv(json!({"dnsPolicy": "ClusterFirst"})), cluster_first);
        assert_eq!(resolv(json!({"dnsPolicy": "Default"})), node);
        // On the host's network ClusterFirst is Default; ClusterFirstWithHostNet is ClusterFirst anywhere.
        assert_eq!(resolv(json!({"hostNetwork": true})), node);
        assert_eq!(
            resolv(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"})),
            cluster_first
        );
        assert_eq!(
            resolv(json!({"dnsPolicy": "ClusterFirstWithHostNet"})),
            cluster_first
        );
        assert_eq!(
            resolv(json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}})),
            "nameserver 1.1.1.1\n"
        );
        // Without a cluster DNS server, ClusterFirst falls back to the node's resolvers, with a warning.
        let pod = json!({"metadata": {"name": "p", "namespace": "prod"}, "spec": {}});
        let none = ClusterDns {
            server: None,
            domain: "cluster.local".into(),
        };
        let (conf, warnings) = pod_resolv_conf(&pod, &ResolvConf::parse(NODE_RESOLV), &none);
        assert_eq!(conf.render(), node);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn dns_config_is_merged_without_duplicates_and_options_override_by_name() {
        let spec = json!({"dnsConfig": {
            "nameservers": ["10.43.0.10", "1.1.1.1"],
            "searches": ["svc.cluster.local", "extra.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}, {"name": "attempts", "value": ""}]}});
        assert_eq!(
            resolv(spec),
            "search prod.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example extra.example\n\
             nameserver 10.43.0.10\nnameserver 1.1.1.1\noptions ndots:2 edns0 attempts\n"
        );
        let spec = json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["192.0.2.1", "192.0.2.1"],
            "searches": ["a.example"], "options": [{"name": "ndots", "value": "1"}, {"name": "ndots", "value": "4"}]}});
        assert_eq!(
            resolv(spec),
            "search a.example\nnameserver 192.0.2.1\noptions ndots:4\n"
        );
    }

    #[test]
    fn resolver_limits_are_kept_without_failing() {
        let searches: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        let long = "x".repeat(254);
        let all: Vec<String> = [long].into_iter().chain(searches).collect();
        let pod = json!({"metadata": {"name": "p", "namespace": "prod"}, "spec": {"dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"],
                "searches": all}}});
        let (conf, warnings) = pod_resolv_conf(&pod, &ResolvConf::default(), &cluster());
        assert_eq!(conf.nameservers, ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
        // The first 32 paths, less the one longer than a domain may be.
        assert_eq!(conf.searches.len(), 31);
        assert_eq!(conf.searches[0], "d0.example");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        // A search line over 2048 characters loses paths from its end.
        let searches: Vec<String> = (0..20)
            .map(|i| format!("{i:02}{}", "y".repeat(200)))
            .collect();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["192.0.2.1"], "searches": searches}}});
        let (conf, _) = pod_resolv_conf(&pod, &ResolvConf::default(), &cluster());
        assert_eq!(conf.searches.len(), 10);
        assert!(conf.searches.join(" ").len() <= 2048);
    }

    #[test]
    fn hosts_and_hostnames_as_the_kubelet_writes_them() {
        let pod = json!({"metadata": {"name": "web-7f", "namespace": "prod"}, "spec": {
            "hostname": "web-0", "subdomain": "nginx",
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]},
                {"ip": "fd00::1", "hostnames": ["six.local"]}]}});
        let ips = ["10.42.0.7".to_owned()];
        assert_eq!(
            managed_hosts(&pod, &ips, "cluster.local"),
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             10.42.0.7\tweb-0.nginx.prod.svc.cluster.local\tweb-0\n\
             \n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\nfd00::1\tsix.local\n"
        );
        assert_eq!(kernel_hostname(&pod, "cluster.local").unwrap(), "web-0");
        let mut fqdn = pod.clone();
        fqdn["spec"]["setHostnameAsFQDN"] = json!(true);
        assert_eq!(
            kernel_hostname(&fqdn, "cluster.local").unwrap(),
            "web-0.nginx.prod.svc.cluster.local"
        );
        fqdn["spec"]["subdomain"] = json!("s".repeat(40));
        assert!(kernel_hostname(&fqdn, "cluster.local").is_err());

        let plain = json!({"metadata": {"name": "plain", "namespace": "prod"}, "spec": {}});
        let hosts = managed_hosts(&plain, &ips, "cluster.local");
        assert!(
            hosts.ends_with("fe00::2\tip6-allrouters\n10.42.0.7\tplain\n"),
            "{hosts}"
        );
        assert!(!hosts.contains("HostAliases"));
        // With setHostnameAsFQDN but no subdomain, the hostname stays short.
        let mut short = plain.clone();
        short["spec"]["setHostnameAsFQDN"] = json!(true);
        assert_eq!(kernel_hostname(&short, "cluster.local").unwrap(), "plain");
        // Names longer than a label are cut to 63 characters, without a trailing '-'.
        let long = json!({"metadata": {"name": format!("{}-{}", "a".repeat(62), "b".repeat(10))}});
        assert_eq!(pod_hostname(&long, "cluster.local").0, "a".repeat(62));

        let host_net = json!({"spec": {"hostNetwork": true,
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local"]}]}});
        assert!(host_network(&host_net));
        assert_eq!(
            host_network_hosts(&host_net, "127.0.0.1 localhost\n"),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n\
             \n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\n"
        );
    }
}

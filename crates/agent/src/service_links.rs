//! Service environment variables, as the kubelet gives every container: for each Service with a cluster IP
//! in the pod's namespace (when `enableServiceLinks` is on) and the `kubernetes` Service of `default`,
//! `{NAME}_SERVICE_HOST`, `{NAME}_SERVICE_PORT[_{PORT}]` and the Docker-link style `{NAME}_PORT...`
//! variables. [`ServiceIndex`] keeps what they are made from, fed by a watch of every Service.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use gantry_client::k8s_openapi::api::core::v1::Service;
use gantry_client::kube::runtime::{WatchStreamExt, watcher};
use gantry_client::{Api, Client};

/// What a Service's variables are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLink {
    pub name: String,
    pub cluster_ip: String,
    /// Name, port and protocol of each port, in the Service's order.
    pub ports: Vec<(String, i32, String)>,
}

impl ServiceLink {
    /// The link of a Service that has a cluster IP (headless and ExternalName Services have none).
    pub fn of(service: &Service) -> Option<ServiceLink> {
        let spec = service.spec.as_ref()?;
        let ip = spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")?;
        Some(ServiceLink {
            name: service.metadata.name.clone()?,
            cluster_ip: ip.to_owned(),
            ports: spec
                .ports
                .iter()
                .flatten()
                .map(|p| {
                    let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                    (p.name.clone().unwrap_or_default(), p.port, protocol)
                })
                .collect(),
        })
    }
}

/// The variables of `links` (the pod's namespace's Services win over `default`'s of the same name, as the
/// caller orders them: later ones replace earlier ones).
pub fn variables(links: &[ServiceLink]) -> Vec<(String, String)> {
    let mut by_name: BTreeMap<&str, &ServiceLink> = BTreeMap::new();
    for link in links {
        by_name.insert(&link.name, link);
    }
    let mut env = Vec::new();
    for link in by_name.values() {
        let prefix = link.name.to_ascii_uppercase().replace('-', "_");
        let ip = &link.cluster_ip;
        env.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        let Some((_, first, first_protocol)) = link.ports.first() else {
            continue;
        };
        env.push((format!("{prefix}_SERVICE_PORT"), first.to_string()));
        for (name, port, _) in &link.ports {
            if !name.is_empty() {
                let name = name.to_ascii_uppercase().replace('-', "_");
                env.push((format!("{prefix}_SERVICE_PORT_{name}"), port.to_string()));
            }
        }
        let url = |protocol: &str, port: i32| {
            let host = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.clone()
            };
            format!("{}://{host}:{port}", protocol.to_ascii_lowercase())
        };
        env.push((format!("{prefix}_PORT"), url(first_protocol, *first)));
        for (_, port, protocol) in &link.ports {
            let var = format!("{prefix}_PORT_{port}_{}", protocol.to_ascii_uppercase());
            env.push((var.clone(), url(protocol, *port)));
            env.push((format!("{var}_PROTO"), protocol.to_ascii_lowercase()));
            env.push((format!("{var}_PORT"), port.to_string()));
            env.push((format!("{var}_ADDR"), ip.clone()));
        }
    }
    env
}

/// Every Service with a cluster IP, by namespace and name, as the watch shows them.
#[derive(Debug, Default)]
pub struct ServiceIndex {
    state: Mutex<IndexState>,
}

#[derive(Debug, Default)]
struct IndexState {
    synced: bool,
    services: HashMap<String, BTreeMap<String, ServiceLink>>,
}

impl ServiceIndex {
    /// The links a pod of `namespace` gets: `default`'s `kubernetes` Service, and with `enable_links` every
    /// Service of its namespace. `None` until the Services were listed once (the kubelet then refuses to
    /// start containers too, rather than start them with missing variables).
    pub fn links(&self, namespace: &str, enable_links: bool) -> Option<Vec<ServiceLink>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.synced {
            return None;
        }
        let mut links: Vec<ServiceLink> = state
            .services
            .get("default")
            .and_then(|s| s.get("kubernetes"))
            .cloned()
            .into_iter()
            .collect();
        if enable_links {
            links.extend(
                state
                    .services
                    .get(namespace)
                    .into_iter()
                    .flat_map(|s| s.values().cloned()),
            );
        }
        Some(links)
    }

    fn apply(&self, service: &Service) {
        let (Some(namespace), Some(name)) = (&service.metadata.namespace, &service.metadata.name)
        else {
            return;
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let services = state.services.entry(namespace.clone()).or_default();
        match ServiceLink::of(service) {
            Some(link) => services.insert(name.clone(), link),
            None => services.remove(name),
        };
    }

    fn delete(&self, service: &Service) {
        let (Some(namespace), Some(name)) = (&service.metadata.namespace, &service.metadata.name)
        else {
            return;
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(services) = state.services.get_mut(namespace) {
            services.remove(name);
        }
    }

    /// Keeps the index current for as long as the process lives.
    pub async fn run(self: Arc<Self>, client: Client) {
        let services: Api<Service> = Api::all(client);
        let mut events = watcher(services, watcher::Config::default().any_semantic())
            .default_backoff()
            .boxed();
        let mut listing: Vec<Service> = Vec::new();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => listing.clear(),
                Ok(watcher::Event::InitApply(service)) => listing.push(service),
                Ok(watcher::Event::InitDone) => {
                    {
                        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                        state.services.clear();
                        state.synced = true;
                    }
                    for service in listing.drain(..) {
                        self.apply(&service);
                    }
                }
                Ok(watcher::Event::Apply(service)) => self.apply(&service),
                Ok(watcher::Event::Delete(service)) => self.delete(&service),
                Err(e) => tracing::warn!("watching services for pods' environment: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, ip: &str, ports: &[(&str, i32, &str)]) -> ServiceLink {
        ServiceLink {
            name: name.into(),
            cluster_ip: ip.into(),
            ports: ports
                .iter()
                .map(|(n, p, proto)| (n.to_string(), *p, proto.to_string()))
                .collect(),
        }
    }

    #[test]
    fn variables_follow_the_kubelets_names() {
        let env: BTreeMap<String, String> = variables(&[link(
            "redis-primary",
            "10.43.0.11",
            &[("", 6379, "TCP"), ("metrics", 9121, "UDP")],
        )])
        .into_iter()
        .collect();
        let expected: BTreeMap<String, String> = [
            ("REDIS_PRIMARY_SERVICE_HOST", "10.43.0.11"),
            ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
            ("REDIS_PRIMARY_SERVICE_PORT_METRICS", "9121"),
            ("REDIS_PRIMARY_PORT", "tcp://10.43.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.43.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.43.0.11"),
            ("REDIS_PRIMARY_PORT_9121_UDP", "udp://10.43.0.11:9121"),
            ("REDIS_PRIMARY_PORT_9121_UDP_PROTO", "udp"),
            ("REDIS_PRIMARY_PORT_9121_UDP_PORT", "9121"),
            ("REDIS_PRIMARY_PORT_9121_UDP_ADDR", "10.43.0.11"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn the_namespaces_service_wins_over_defaults_of_the_same_name() {
        let env = variables(&[
            link("kubernetes", "10.43.0.1", &[("https", 443, "TCP")]),
            link("kubernetes", "10.43.0.99", &[("https", 443, "TCP")]),
        ]);
        assert!(env.contains(&("KUBERNETES_SERVICE_HOST".into(), "10.43.0.99".into())));
        assert!(!env.iter().any(|(_, v)| v == "10.43.0.1"));
    }

    #[test]
    fn the_index_gives_defaults_kubernetes_and_with_links_the_namespaces_services() {
        let index = ServiceIndex::default();
        let service = |ns: &str, name: &str, ip: &str| -> Service {
            serde_json::from_value(
                serde_json::json!({"metadata": {"namespace": ns, "name": name},
                "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}),
            )
            .unwrap()
        };
        assert_eq!(index.links("apps", true), None);
        index.state.lock().unwrap().synced = true;
        index.apply(&service("default", "kubernetes", "10.43.0.1"));
        index.apply(&service("default", "other", "10.43.0.2"));
        index.apply(&service("apps", "web", "10.43.0.3"));
        index.apply(&service("apps", "headless", "None"));
        let names = |links: Vec<ServiceLink>| links.into_iter().map(|l| l.name).collect::<Vec<_>>();
        assert_eq!(
            names(index.links("apps", true).unwrap()),
            ["kubernetes", "web"]
        );
        assert_eq!(names(index.links("apps", false).unwrap()), ["kubernetes"]);
        index.delete(&service("apps", "web", ""));
        assert_eq!(names(index.links("apps", true).unwrap()), ["kubernetes"]);
    }
}

//! The built-in load balancer (as k3s's ServiceLB): a Service of type LoadBalancer without a
//! `loadBalancerClass` is served on every Ready node's address, so its `status.loadBalancer.ingress` lists
//! those addresses (the node agents' Service proxies serve its ports there). The list follows the nodes as
//! they come, go and change readiness.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use gantry_client::events::{Event, Involved, Recorder};
use gantry_client::k8s_openapi::api::core::v1::{Node, Service};
use gantry_client::kube::api::{Patch, PatchParams};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use serde_json::json;

use crate::cache::watch_all;

const COMPONENT: &str = "service-lb-controller";

/// The addresses a load balancer is served on: the InternalIP of every Ready node that takes pods.
fn node_address(node: &Node) -> Option<String> {
    let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    let status = node.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if unschedulable || !ready {
        return None;
    }
    status
        .addresses
        .iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
}

/// Whether the controller serves the Service.
fn served(service: &Service) -> bool {
    service.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none()
    })
}

/// The ingress addresses the Service's status lists now.
fn current_ingress(service: &Service) -> Vec<String> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect()
}

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let events = Recorder::start(client.clone(), COMPONENT);
    let mut services = watch_all::<Service>(&client);
    let mut nodes = watch_all::<Node>(&client);
    let mut by_key: BTreeMap<(String, String), Service> = BTreeMap::new();
    let mut addresses: BTreeMap<String, String> = BTreeMap::new();
    // The addresses load balancers are served on, as last written.
    let mut served_on: Vec<String> = Vec::new();
    // Services to look at: those that changed, or every one when the addresses did.
    let mut dirty: BTreeSet<(String, String)> = BTreeSet::new();
    let (mut services_synced, mut nodes_synced) = (false, false);
    loop {
        tokio::select! {
            Some(event) = services.next() => match event {
                Ok(watcher::Event::Init) => { by_key.clear(); services_synced = false; }
                Ok(watcher::Event::InitApply(s) | watcher::Event::Apply(s)) => {
                    let key = (s.metadata.namespace.clone().unwrap_or_default(),
                        s.metadata.name.clone().unwrap_or_default());
                    dirty.insert(key.clone());
                    by_key.insert(key, s);
                }
                Ok(watcher::Event::Delete(s)) => {
                    by_key.remove(&(s.metadata.namespace.unwrap_or_default(),
                        s.metadata.name.unwrap_or_default()));
                }
                Ok(watcher::Event::InitDone) => services_synced = true,
                Err(e) => tracing::warn!("service LB controller: watching services: {e}"),
            },
            Some(event) = nodes.next() => match event {
                Ok(watcher::Event::Init) => { addresses.clear(); nodes_synced = false; }
                Ok(watcher::Event::InitApply(n) | watcher::Event::Apply(n)) => {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    match node_address(&n) {
                        Some(ip) => addresses.insert(name, ip),
                        None => addresses.remove(&name),
                    };
                }
                Ok(watcher::Event::Delete(n)) => {
                    addresses.remove(n.metadata.name.as_deref().unwrap_or_default());
                }
                Ok(watcher::Event::InitDone) => nodes_synced = true,
                Err(e) => tracing::warn!("service LB controller: watching nodes: {e}"),
            },
            else => break,
        }
        if !(services_synced && nodes_synced) {
            continue;
        }
        let wanted: Vec<String> = addresses
            .values()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if wanted != served_on {
            served_on = wanted;
            dirty.extend(
                by_key
                    .iter()
                    .filter(|(_, s)| served(s))
                    .map(|(k, _)| k.clone()),
            );
        }
        for key in std::mem::take(&mut dirty) {
            let Some(service) = by_key.get(&key) else {
                continue;
            };
            let kind = service.spec.as_ref().and_then(|s| s.type_.as_deref());
            let ingress: Vec<String> = if served(service) {
                served_on.clone()
            } else if kind == Some("LoadBalancer") {
                // Another load balancer's (a loadBalancerClass): not ours to write.
                continue;
            } else {
                // No longer a load balancer: what was written goes.
                Vec::new()
            };
            if current_ingress(service) != ingress {
                write(&client, &events, service, &key, &ingress).await;
            }
        }
    }
}

/// Writes the Service's load balancer status (an event says where it is served).
async fn write(
    client: &Client,
    events: &Recorder,
    service: &Service,
    (namespace, name): &(String, String),
    ingress: &[String],
) {
    let body = json!({"status": {"loadBalancer": if ingress.is_empty() { json!({}) } else {
        json!({"ingress": ingress.iter().map(|ip| json!({"ip": ip, "ipMode": "VIP"})).collect::<Vec<_>>()})
    }}});
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) if !ingress.is_empty() => events.record(Event {
            object: Involved {
                api_version: "v1",
                kind: "Service",
                namespace: namespace.clone(),
                name: name.clone(),
                uid: service.metadata.uid.clone().unwrap_or_default(),
            },
            warning: false,
            reason: "EnsuredLoadBalancer",
            message: format!("Ensured load balancer on {}", ingress.join(", ")),
        }),
        Ok(_) => {}
        Err(e) => tracing::warn!(%namespace, %name, "cannot write the load balancer status: {e}"),
    }
}

//! The pods bound to this node: a watch on `spec.nodeName=<node>` feeds one [`worker`] per pod (by uid), and
//! [`KubePodApi`] is what the workers need of the API, through the kube client (their events go through a
//! [`Recorder`] to one background writer).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use gantry_client::k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use gantry_client::kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use gantry_client::kube::runtime::{WatchStreamExt, watcher};
use gantry_client::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::events::{self, Event, KubeEventWriter, Recorder};
use crate::service_links::{ServiceIndex, ServiceLink};

/// How many times (50 ms apart) a container start waits for the first listing of the Services.
const SERVICES_WAIT_POLLS: u32 = 200;
use crate::worker::{self, ContainerHost, PodApi, PodIndex};

/// Runs a worker for every pod bound to `node` (registered in `index`) for as long as the watch lasts (it
/// re-lists and resumes on its own after errors).
pub async fn run(
    client: Client,
    node: String,
    host_ip: String,
    host: Arc<dyn ContainerHost>,
    index: Arc<PodIndex>,
) {
    let pods: Api<Pod> = Api::all(client.clone());
    let (events, queue) = Recorder::new(events::QUEUED);
    let writer = KubeEventWriter {
        client: client.clone(),
    };
    let reporter = node.clone();
    tokio::spawn(async move { events::write(queue, &writer, &reporter).await });
    let services = Arc::new(ServiceIndex::default());
    tokio::spawn(services.clone().run(client.clone()));
    let api: Arc<dyn PodApi> = Arc::new(KubePodApi {
        client,
        events,
        services,
    });
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut events = watcher(pods, config.any_semantic())
        .default_backoff()
        .boxed();
    let mut workers: HashMap<String, watch::Sender<Option<Value>>> = HashMap::new();
    let mut listed: Vec<String> = Vec::new();
    // Worker tasks by pod uid, kept until they end (a deleted pod's worker still stops its containers).
    let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    // Pods already finished (Succeeded or Failed) when first seen, after a restart of the agent: they are
    // not run again (upstream's kubelet does not restart terminal pods); their logs stay until they go.
    let mut finished: HashSet<String> = HashSet::new();
    let mut synced = false;
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = sweep.tick() => {
                // What pods no worker runs left on the node (deleted while the agent was down, or whose
                // worker is done): removed, logs included.
                tasks.retain(|_, task| !task.is_finished());
                if synced {
                    for uid in host.pods_on_disk() {
                        if !tasks.contains_key(&uid) && !finished.contains(&uid) {
                            tracing::info!(pod = %uid, "removing what a pod that is gone left");
                            host.remove_pod(&uid).await;
                        }
                    }
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!("watching this node's pods: {e}");
                continue;
            }
        };
        match event {
            watcher::Event::Init => listed.clear(),
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let Ok(pod) = serde_json::to_value(&pod) else {
                    continue;
                };
                let uid = pod
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                listed.push(uid.clone());
                let phase = pod.pointer("/status/phase").and_then(Value::as_str);
                if !workers.contains_key(&uid) && matches!(phase, Some("Succeeded" | "Failed")) {
                    finished.insert(uid);
                    continue;
                }
                match workers.get(&uid) {
                    Some(sender) => {
                        let _ = sender.send(Some(pod));
                    }
                    None => {
                        let (sender, receiver) = watch::channel(Some(pod));
                        workers.insert(uid.clone(), sender);
                        let task = tokio::spawn(worker::run(
                            receiver,
                            host.clone(),
                            api.clone(),
                            index.clone(),
                            host_ip.clone(),
                            crate::node::now,
                        ));
                        tasks.insert(uid, task);
                    }
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    finished.remove(uid);
                }
                if let Some(sender) = pod
                    .metadata
                    .uid
                    .as_ref()
                    .and_then(|uid| workers.remove(uid))
                {
                    let _ = sender.send(None);
                }
            }
            // A fresh list: pods that were not in it are gone.
            watcher::Event::InitDone => {
                if !synced {
                    synced = true;
                    sweep.reset_immediately();
                }
                finished.retain(|uid| listed.contains(uid));
                workers.retain(|uid, sender| {
                    let keep = listed.contains(uid);
                    if !keep {
                        let _ = sender.send(None);
                    }
                    keep
                });
            }
        }
        workers.retain(|_, sender| !sender.is_closed());
    }
}

/// How often what gone pods left is looked for (so also how long their logs outlive them at most).
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// The workers' view of the API.
struct KubePodApi {
    client: Client,
    events: Recorder,
    services: Arc<ServiceIndex>,
}

fn identity(pod: &Value) -> (String, String) {
    let text = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("/metadata/namespace"), text("/metadata/name"))
}

#[async_trait]
impl PodApi for KubePodApi {
    async fn write_status(&self, pod: &Value, status: &Value) -> Result<(), String> {
        let (namespace, name) = identity(pod);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let patch = json!({"status": status});
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn finish_deletion(&self, pod: &Value) -> Result<(), String> {
        let (namespace, name) = identity(pod);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match pods.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(gantry_client::kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn config_data(
        &self,
        namespace: &str,
        name: &str,
        secret: bool,
    ) -> Option<BTreeMap<String, String>> {
        if secret {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            let found = secrets.get_opt(name).await.ok().flatten()?;
            Some(
                found
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect(),
            )
        } else {
            let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
            let found = maps.get_opt(name).await.ok().flatten()?;
            Some(found.data.unwrap_or_default())
        }
    }

    async fn service_links(&self, namespace: &str, enable_links: bool) -> Option<Vec<ServiceLink>> {
        // Right after the agent starts, the Services are being listed: worth a short wait.
        for _ in 0..SERVICES_WAIT_POLLS {
            if let Some(links) = self.services.links(namespace, enable_links) {
                return Some(links);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        None
    }

    fn event(&self, event: Event) {
        self.events.record(event);
    }
}

//! The root CA publisher: every namespace that is not being deleted has the ConfigMap `kube-root-ca.crt`
//! whose `ca.crt` is the cluster CA (what pods use to verify the API server), with upstream's
//! `kubernetes.io/description` annotation. One deleted is made again, one edited is put back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use gantry_client::k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use gantry_client::kube::api::PostParams;
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use tokio::sync::mpsc;

use crate::api::api_code;
use crate::cache::{watch, watch_all};

/// The ConfigMap every namespace has.
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
/// Its one key.
pub const CA_KEY: &str = "ca.crt";
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
/// How long a failed write waits before the namespace is looked at again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Runs the controller until its watches end (they do not: they retry on their own). `ca_pem` is the
/// cluster CA certificate, PEM.
pub async fn run(client: Client, ca_pem: String) {
    let mut namespaces = watch_all::<Namespace>(&client);
    let named = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}"));
    let mut maps = watch(Api::<ConfigMap>::all(client.clone()), named);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut state = State::default();
    loop {
        let check: Vec<String> = tokio::select! {
            Some(event) = namespaces.next() => match event {
                Ok(event) => state.namespace_event(event),
                Err(e) => {
                    tracing::warn!("root CA publisher: watching namespaces: {e}");
                    Vec::new()
                }
            },
            Some(event) = maps.next() => match event {
                Ok(event) => state.config_map_event(event),
                Err(e) => {
                    tracing::warn!("root CA publisher: watching configmaps: {e}");
                    Vec::new()
                }
            },
            Some((namespace, failed)) = done_rx.recv() => state.done(namespace, failed),
        };
        for namespace in check {
            if let Some(write) = state.start(&namespace, &ca_pem) {
                tokio::spawn(apply(client.clone(), namespace, write, done_tx.clone()));
            }
        }
    }
}

/// What the watches show, and the writes under way.
#[derive(Debug, Default)]
struct State {
    /// Namespaces that exist and are not terminating.
    active: HashSet<String>,
    /// `kube-root-ca.crt` by namespace.
    maps: HashMap<String, ConfigMap>,
    /// What a relisting has shown so far (replaces the above when it is done).
    listing_namespaces: Option<HashSet<String>>,
    listing_maps: Option<HashMap<String, ConfigMap>>,
    namespaces_synced: bool,
    maps_synced: bool,
    /// Namespaces with a write under way, and those that changed meanwhile.
    writing: HashSet<String>,
    dirty: HashSet<String>,
}

impl State {
    /// Takes a namespace event; returns the namespaces to check.
    fn namespace_event(&mut self, event: watcher::Event<Namespace>) -> Vec<String> {
        match event {
            watcher::Event::Init => {
                self.listing_namespaces = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(ns) => {
                if let (Some(listing), Some(name)) =
                    (&mut self.listing_namespaces, active_name(&ns))
                {
                    listing.insert(name);
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                self.active = self.listing_namespaces.take().unwrap_or_default();
                self.namespaces_synced = true;
                self.active.iter().cloned().collect()
            }
            watcher::Event::Apply(ns) => {
                let name = ns.metadata.name.clone().unwrap_or_default();
                if active_name(&ns).is_some() {
                    self.active.insert(name.clone());
                    vec![name]
                } else {
                    self.active.remove(&name);
                    Vec::new()
                }
            }
            watcher::Event::Delete(ns) => {
                self.active
                    .remove(ns.metadata.name.as_deref().unwrap_or_default());
                Vec::new()
            }
        }
    }

    /// Takes a `kube-root-ca.crt` event; returns the namespaces to check.
    fn config_map_event(&mut self, event: watcher::Event<ConfigMap>) -> Vec<String> {
        let namespace_of = |cm: &ConfigMap| cm.metadata.namespace.clone().unwrap_or_default();
        match event {
            watcher::Event::Init => {
                self.listing_maps = Some(HashMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(cm) => {
                if let Some(listing) = &mut self.listing_maps {
                    listing.insert(namespace_of(&cm), cm);
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                self.maps = self.listing_maps.take().unwrap_or_default();
                self.maps_synced = true;
                self.active.iter().cloned().collect()
            }
            watcher::Event::Apply(cm) => {
                let namespace = namespace_of(&cm);
                self.maps.insert(namespace.clone(), cm);
                vec![namespace]
            }
            watcher::Event::Delete(cm) => {
                let namespace = namespace_of(&cm);
                self.maps.remove(&namespace);
                vec![namespace]
            }
        }
    }

    /// A write finished; returns the namespace to check again if it failed or changed meanwhile.
    fn done(&mut self, namespace: String, failed: bool) -> Vec<String> {
        self.writing.remove(&namespace);
        if self.dirty.remove(&namespace) || failed {
            vec![namespace]
        } else {
            Vec::new()
        }
    }

    /// The write `namespace` needs now, if any (marked under way); none before both watches have listed,
    /// or while another write for it is under way.
    fn start(&mut self, namespace: &str, ca_pem: &str) -> Option<ConfigMap> {
        if !(self.namespaces_synced && self.maps_synced && self.active.contains(namespace)) {
            return None;
        }
        if self.writing.contains(namespace) {
            self.dirty.insert(namespace.to_owned());
            return None;
        }
        let write = wanted(self.maps.get(namespace), ca_pem)?;
        self.writing.insert(namespace.to_owned());
        Some(write)
    }
}

/// The namespace's name if it is not being deleted.
fn active_name(ns: &Namespace) -> Option<String> {
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Terminating");
    (!terminating).then(|| ns.metadata.name.clone().unwrap_or_default())
}

/// The ConfigMap to write in place of `existing` (`None`: it is right): `data` exactly `{ca.crt: <CA>}` and
/// the description annotation present, everything else kept.
fn wanted(existing: Option<&ConfigMap>, ca_pem: &str) -> Option<ConfigMap> {
    let data = BTreeMap::from([(CA_KEY.to_owned(), ca_pem.to_owned())]);
    let described = |cm: &ConfigMap| {
        cm.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
            .is_some_and(|d| !d.is_empty())
    };
    let mut cm = match existing {
        Some(cm) if cm.data.as_ref() == Some(&data) && described(cm) => return None,
        Some(cm) => cm.clone(),
        None => {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(CONFIG_MAP.to_owned());
            cm
        }
    };
    cm.data = Some(data);
    cm.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.to_owned(), DESCRIPTION.to_owned());
    Some(cm)
}

/// Creates or replaces (on the resourceVersion read) the ConfigMap, then reports whether it failed in a way
/// that needs another look (after [`RETRY_AFTER`]).
async fn apply(
    client: Client,
    namespace: String,
    cm: ConfigMap,
    done: mpsc::UnboundedSender<(String, bool)>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let params = PostParams::default();
    let result = match cm.metadata.resource_version {
        Some(_) => api.replace(CONFIG_MAP, &params, &cm).await.map(drop),
        None => api.create(&params, &cm).await.map(drop),
    };
    let failed = match result {
        Ok(()) => false,
        // Made or changed meanwhile (the watch brings the news), or the namespace is going away.
        Err(e) if matches!(api_code(&e), Some(409 | 403 | 404)) => false,
        Err(e) => {
            tracing::warn!("root CA publisher: {namespace}/{CONFIG_MAP}: {e}");
            tokio::time::sleep(RETRY_AFTER).await;
            true
        }
    };
    let _ = done.send((namespace, failed));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use gantry_client::k8s_openapi::api::core::v1::NamespaceStatus;
    use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn namespace(name: &str) -> Namespace {
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.into());
        ns
    }

    fn stored(namespace: &str, cm: ConfigMap) -> ConfigMap {
        let mut cm = cm;
        cm.metadata.namespace = Some(namespace.into());
        cm.metadata.resource_version = Some("7".into());
        cm
    }

    #[test]
    fn a_missing_config_map_is_made_with_the_ca_and_description() {
        let cm = wanted(None, CA).unwrap();
        assert_eq!(cm.metadata.name.as_deref(), Some(CONFIG_MAP));
        assert_eq!(cm.metadata.resource_version, None);
        assert_eq!(cm.data.as_ref().unwrap()[CA_KEY], CA);
        assert_eq!(cm.data.as_ref().unwrap().len(), 1);
        assert_eq!(
            cm.metadata.annotations.as_ref().unwrap()[DESCRIPTION_ANNOTATION],
            DESCRIPTION
        );
        assert!(wanted(Some(&cm), CA).is_none());
    }

    #[test]
    fn an_edited_config_map_is_put_back_keeping_the_rest() {
        let mut edited = stored("a", wanted(None, CA).unwrap());
        edited
            .data
            .as_mut()
            .unwrap()
            .insert(CA_KEY.into(), "forged".into());
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("extra".into(), "x".into());
        edited.metadata.labels = Some(BTreeMap::from([("k".into(), "v".into())]));
        let fixed = wanted(Some(&edited), CA).unwrap();
        assert_eq!(
            fixed.data,
            Some(BTreeMap::from([(CA_KEY.into(), CA.into())]))
        );
        assert_eq!(fixed.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(fixed.metadata.labels, edited.metadata.labels);

        let mut undescribed = stored("a", wanted(None, CA).unwrap());
        undescribed.metadata.annotations = None;
        let fixed = wanted(Some(&undescribed), CA).unwrap();
        assert_eq!(
            fixed.metadata.annotations.unwrap()[DESCRIPTION_ANNOTATION],
            DESCRIPTION
        );
    }

    #[test]
    fn nothing_is_written_before_both_watches_listed_nor_in_terminating_namespaces() {
        let mut state = State::default();
        state.namespace_event(watcher::Event::Init);
        state.namespace_event(watcher::Event::InitApply(namespace("a")));
        let mut terminating = namespace("gone");
        terminating.status = Some(NamespaceStatus {
            phase: Some("Terminating".into()),
            ..Default::default()
        });
        state.namespace_event(watcher::Event::InitApply(terminating));
        let mut deleting = namespace("going");
        deleting.metadata.deletion_timestamp = Some(Time(Default::default()));
        state.namespace_event(watcher::Event::InitApply(deleting));
        let check = state.namespace_event(watcher::Event::InitDone);
        assert_eq!(check, ["a"]);
        assert!(state.start("a", CA).is_none(), "config maps not listed yet");

        state.config_map_event(watcher::Event::Init);
        let check = state.config_map_event(watcher::Event::InitDone);
        assert_eq!(check, ["a"]);
        assert!(state.start("a", CA).is_some());
        assert!(state.start("gone", CA).is_none());
        assert!(state.start("going", CA).is_none());
    }

    #[test]
    fn one_write_at_a_time_per_namespace_and_a_deleted_map_is_made_again() {
        let mut state = State::default();
        state.namespace_event(watcher::Event::Init);
        state.namespace_event(watcher::Event::InitApply(namespace("a")));
        state.namespace_event(watcher::Event::InitDone);
        state.config_map_event(watcher::Event::Init);
        state.config_map_event(watcher::Event::InitDone);
        assert!(state.start("a", CA).is_some());
        // A change while the create is under way waits for it, then is looked at again.
        assert!(state.start("a", CA).is_none());
        assert_eq!(state.done("a".into(), false), ["a"]);

        let made = stored("a", wanted(None, CA).unwrap());
        let check = state.config_map_event(watcher::Event::Apply(made.clone()));
        assert_eq!(check, ["a"]);
        assert!(state.start("a", CA).is_none(), "it is right");

        let check = state.config_map_event(watcher::Event::Delete(made));
        assert_eq!(check, ["a"]);
        let again = state.start("a", CA).unwrap();
        assert_eq!(
            again.metadata.resource_version, None,
            "created, not replaced"
        );
        assert!(state.done("a".into(), false).is_empty());
        assert_eq!(
            state.done("a".into(), true),
            ["a"],
            "a failed write is retried"
        );
    }

    #[test]
    fn a_namespace_that_starts_terminating_is_left_alone() {
        let mut state = State::default();
        state.namespace_event(watcher::Event::Init);
        state.namespace_event(watcher::Event::InitDone);
        state.config_map_event(watcher::Event::Init);
        state.config_map_event(watcher::Event::InitDone);
        assert_eq!(
            state.namespace_event(watcher::Event::Apply(namespace("b"))),
            ["b"]
        );
        let mut deleting = namespace("b");
        deleting.metadata.deletion_timestamp = Some(Time(Default::default()));
        assert!(
            state
                .namespace_event(watcher::Event::Apply(deleting))
                .is_empty()
        );
        assert!(state.start("b", CA).is_none());
    }
}

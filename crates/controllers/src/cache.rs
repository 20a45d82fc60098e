//! Watches ([`watch`], [`watch_all`]) and caches of watched objects: [`Relist`] (what a relisting lacked),
//! and for the DaemonSet and StatefulSet controllers [`Sets`] (the owners by key) and [`Owned`] (the objects
//! they control, indexed by their controller's uid, and the orphans by namespace).

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use gantry_client::k8s_openapi::serde::de::DeserializeOwned;
use gantry_client::kube::Resource;
use gantry_client::kube::runtime::{WatchStreamExt, watcher};
use gantry_client::{Api, Client};

use crate::api::{key, namespace_of, revision};
use crate::pods;

/// The events of a watch of `api`: after an error it starts again (with kube-rs's default back-off) and
/// relists. Lists ask for any resourceVersion, as informers do, so the API server answers them whole from
/// its watch cache.
pub fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, config.any_semantic())
        .default_backoff()
        .boxed()
}

/// The events of a [`watch`] of every `K`.
pub fn watch_all<K>(
    client: &Client,
) -> BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watch(Api::all(client.clone()), watcher::Config::default())
}

/// Tracks a watch's (re)listing: what the listing showed, so that what it lacked can be forgotten.
#[derive(Debug, Default)]
pub struct Relist {
    listed: Option<HashSet<String>>,
    /// The watch has listed once.
    pub synced: bool,
}

impl Relist {
    pub fn init(&mut self) {
        self.listed = Some(HashSet::new());
    }

    pub fn seen(&mut self, id: &str) {
        if let Some(listed) = &mut self.listed {
            listed.insert(id.to_owned());
        }
    }

    /// The listing is over: which of `known` it lacked.
    pub fn done<'a>(&mut self, known: impl Iterator<Item = &'a String>) -> Vec<String> {
        self.synced = true;
        match self.listed.take() {
            Some(listed) => known.filter(|k| !listed.contains(*k)).cloned().collect(),
            None => Vec::new(),
        }
    }
}

/// The owners (StatefulSets, DaemonSets) by `namespace/name`.
#[derive(Debug)]
pub struct Sets<T> {
    pub by_key: HashMap<String, Arc<T>>,
    pub relist: Relist,
}

impl<T> Default for Sets<T> {
    fn default() -> Self {
        Sets {
            by_key: HashMap::new(),
            relist: Relist::default(),
        }
    }
}

impl<T: Resource> Sets<T> {
    /// Applies a watch event; the keys that changed (a key whose object is now absent is gone).
    pub fn event(&mut self, event: watcher::Event<T>) -> Vec<String> {
        match event {
            watcher::Event::Init => {
                self.relist.init();
                Vec::new()
            }
            watcher::Event::InitApply(set) | watcher::Event::Apply(set) => {
                let meta = set.meta();
                let Some(name) = meta.name.as_deref() else {
                    return Vec::new();
                };
                let k = key(namespace_of(meta), name);
                self.relist.seen(&k);
                self.by_key.insert(k.clone(), Arc::new(set));
                vec![k]
            }
            watcher::Event::Delete(set) => {
                let meta = set.meta();
                let k = key(namespace_of(meta), meta.name.as_deref().unwrap_or_default());
                self.by_key.remove(&k);
                vec![k]
            }
            watcher::Event::InitDone => {
                let gone = self.relist.done(self.by_key.keys());
                for k in &gone {
                    self.by_key.remove(k);
                }
                gone
            }
        }
    }
}

/// One change of an [`Owned`] cache: the object before and after (absent: not there, or not of interest).
#[derive(Debug)]
pub struct Change<T> {
    pub old: Option<Arc<T>>,
    pub new: Option<Arc<T>>,
}

/// Objects (pods, ControllerRevisions) controlled by owners of one kind, indexed by their controller's uid,
/// and the orphans, by namespace (what the owners may adopt). Objects other controllers control are not
/// kept.
#[derive(Debug)]
pub struct Owned<T> {
    kind: &'static str,
    objects: HashMap<String, Arc<T>>,
    by_owner: HashMap<String, HashSet<String>>,
    orphans: HashMap<String, HashSet<String>>,
    pub relist: Relist,
}

/// Where an object is indexed.
#[derive(Debug, PartialEq, Eq)]
enum Slot {
    Owner(String),
    Orphan(String),
}

impl<T: Resource> Owned<T> {
    pub fn new(kind: &'static str) -> Owned<T> {
        Owned {
            kind,
            objects: HashMap::new(),
            by_owner: HashMap::new(),
            orphans: HashMap::new(),
            relist: Relist::default(),
        }
    }

    fn slot(&self, meta: &ObjectMeta) -> Option<Slot> {
        match pods::controller_of(meta) {
            Some(owner) if owner.kind == self.kind && owner.api_version.starts_with("apps/") => {
                Some(Slot::Owner(owner.uid.clone()))
            }
            Some(_) => None,
            None => Some(Slot::Orphan(namespace_of(meta).to_owned())),
        }
    }

    fn unindex(&mut self, uid: &str, meta: &ObjectMeta) {
        let (index, at) = match self.slot(meta) {
            Some(Slot::Owner(owner)) => (&mut self.by_owner, owner),
            Some(Slot::Orphan(ns)) => (&mut self.orphans, ns),
            None => return,
        };
        if let Some(set) = index.get_mut(&at) {
            set.remove(uid);
            if set.is_empty() {
                index.remove(&at);
            }
        }
    }

    /// The controller's uid of the object, if it is controlled by an owner of this kind.
    pub fn owner_uid(&self, object: &T) -> Option<String> {
        match self.slot(object.meta()) {
            Some(Slot::Owner(uid)) => Some(uid),
            _ => None,
        }
    }

    /// Adds or replaces an object (unless what is kept is newer: the result of a write may arrive before the
    /// watch shows it).
    pub fn apply(&mut self, object: T) -> Change<T> {
        let Some(uid) = object.meta().uid.clone() else {
            return Change {
                old: None,
                new: None,
            };
        };
        let old = self.objects.get(&uid).cloned();
        if let Some(old) = &old
            && let (Some(have), Some(got)) = (revision(old.meta()), revision(object.meta()))
            && got < have
        {
            return Change {
                old: Some(old.clone()),
                new: Some(old.clone()),
            };
        }
        if let Some(old) = &old {
            let meta = old.meta().clone();
            self.unindex(&uid, &meta);
            self.objects.remove(&uid);
        }
        let new = match self.slot(object.meta()) {
            Some(slot) => {
                let (index, at) = match slot {
                    Slot::Owner(owner) => (&mut self.by_owner, owner),
                    Slot::Orphan(ns) => (&mut self.orphans, ns),
                };
                index.entry(at).or_default().insert(uid.clone());
                let object = Arc::new(object);
                self.objects.insert(uid, object.clone());
                Some(object)
            }
            None => None,
        };
        Change { old, new }
    }

    pub fn remove(&mut self, uid: &str) -> Option<Arc<T>> {
        let old = self.objects.remove(uid)?;
        let meta = old.meta().clone();
        self.unindex(uid, &meta);
        Some(old)
    }

    /// Applies a watch event: what changed.
    pub fn event(&mut self, event: watcher::Event<T>) -> Vec<Change<T>> {
        match event {
            watcher::Event::Init => {
                self.relist.init();
                Vec::new()
            }
            watcher::Event::InitApply(object) | watcher::Event::Apply(object) => {
                if let Some(uid) = &object.meta().uid {
                    self.relist.seen(uid);
                }
                vec![self.apply(object)]
            }
            watcher::Event::Delete(object) => object
                .meta()
                .uid
                .as_deref()
                .and_then(|uid| self.remove(uid))
                .map(|old| Change {
                    old: Some(old),
                    new: None,
                })
                .into_iter()
                .collect(),
            watcher::Event::InitDone => {
                let gone = self.relist.done(self.objects.keys());
                gone.iter()
                    .filter_map(|uid| self.remove(uid))
                    .map(|old| Change {
                        old: Some(old),
                        new: None,
                    })
                    .collect()
            }
        }
    }

    /// The objects the owner `uid` controls.
    pub fn owned_by(&self, uid: &str) -> Vec<Arc<T>> {
        self.by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|u| self.objects.get(u).cloned())
            .collect()
    }

    /// The objects of `namespace` no one controls.
    pub fn orphans_in(&self, namespace: &str) -> Vec<Arc<T>> {
        self.orphans
            .get(namespace)
            .into_iter()
            .flatten()
            .filter_map(|u| self.objects.get(u).cloned())
            .collect()
    }
}

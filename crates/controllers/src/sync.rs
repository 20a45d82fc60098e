//! What the DaemonSet and StatefulSet controllers share of their syncs: the writes that come before the sync
//! proper ([`Prepare`]: claims, history), what a write task reports ([`Done`]) and the queue, expectations
//! and back-off it feeds ([`Core`]).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use gantry_client::Api;
use gantry_client::k8s_openapi;
use gantry_client::k8s_openapi::api::apps::v1::ControllerRevision;
use gantry_client::k8s_openapi::api::core::v1::Pod;
use gantry_client::k8s_openapi::serde::de::DeserializeOwned;
use gantry_client::kube::Resource;
use gantry_client::kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::time::Instant;

use crate::api::{controller_ref, name_of};
use crate::claims::{can_adopt, claim};
use crate::expectations::Expectations;
use crate::history;
use crate::queue::{Backoff, WorkQueue};

/// What an owner's sync writes first, one at a time (then it looks again): its claims, then its history.
#[derive(Debug)]
pub enum Prepare {
    /// Adopt (if the owner still may: [`can_adopt`]) and release pods and ControllerRevisions.
    Claim {
        adopt: Vec<Arc<Pod>>,
        release: Vec<Arc<Pod>>,
        adopt_revisions: Vec<Arc<ControllerRevision>>,
        release_revisions: Vec<Arc<ControllerRevision>>,
    },
    /// A revision for the current template (a name taken bumps the owner's `collisionCount`).
    CreateRevision(Box<ControllerRevision>),
    /// The revision of the current template becomes the newest (a rollback).
    Renumber(String, i64),
}

impl Prepare {
    /// Writes it for `owner` (whose `collisionCount` is `collision_count`): `done` says when to look again.
    pub async fn run<K>(
        self,
        owners: &Api<K>,
        pods: &Api<Pod>,
        revisions: &Api<ControllerRevision>,
        owner: &K,
        collision_count: i32,
        done: &mut Done,
    ) where
        K: k8s_openapi::Resource + Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    {
        let kind = K::KIND;
        match self {
            Prepare::Claim {
                adopt,
                release,
                adopt_revisions,
                release_revisions,
            } => {
                done.again = true;
                let controller = controller_ref(owner);
                let (adopt, adopt_revisions) = if adopt.is_empty() && adopt_revisions.is_empty() {
                    (adopt, adopt_revisions)
                } else {
                    match can_adopt(owners, owner).await {
                        Ok(true) => (adopt, adopt_revisions),
                        Ok(false) => (Vec::new(), Vec::new()),
                        Err(e) => {
                            tracing::debug!(%kind, key = %done.key, "cannot read before adopting: {e}");
                            done.retry = true;
                            (Vec::new(), Vec::new())
                        }
                    }
                };
                let pods_ok = claim(pods, &controller, &adopt, &release).await;
                let revisions_ok =
                    claim(revisions, &controller, &adopt_revisions, &release_revisions).await;
                done.retry |= !(pods_ok && revisions_ok);
            }
            Prepare::CreateRevision(revision) => {
                match history::create(revisions, &revision).await {
                    Ok(created) => {
                        done.revisions.push(created);
                        done.again = true;
                    }
                    Err(history::WriteError::Collision) => {
                        let patch = json!({"status": {"collisionCount": collision_count + 1}});
                        match owners
                            .patch_status(
                                name_of(owner.meta()),
                                &PatchParams::default(),
                                &Patch::Merge(&patch),
                            )
                            .await
                        {
                            Ok(_) => done.again = true,
                            Err(e) => {
                                tracing::debug!(%kind, key = %done.key, "cannot count a collision: {e}");
                                done.retry = true;
                            }
                        }
                    }
                    Err(history::WriteError::Failed(message)) => {
                        tracing::debug!(%kind, key = %done.key, "cannot create a revision: {message}");
                        done.retry = true;
                    }
                }
            }
            Prepare::Renumber(name, number) => {
                match history::renumber(revisions, &name, number).await {
                    Ok(revision) => {
                        done.revisions.push(revision);
                        done.again = true;
                    }
                    Err(message) => {
                        tracing::debug!(%kind, key = %done.key, "cannot renumber {name}: {message}");
                        done.retry = true;
                    }
                }
            }
        }
    }
}

/// What a write task reports when it is over.
#[derive(Debug, Default)]
pub struct Done {
    pub key: String,
    /// Creations issued that the watch will not show (failed or skipped).
    pub uncreated: usize,
    /// Pods whose deletion failed.
    pub undeleted: Vec<String>,
    /// Look at the owner again now (claims or history written).
    pub again: bool,
    /// Look at it again after a back-off (a write failed).
    pub retry: bool,
    /// Look at it again after this (a failed pod's back-off, `minReadySeconds`).
    pub after: Option<Duration>,
    /// ControllerRevisions written: into the cache at once, the watch may show them later.
    pub revisions: Vec<ControllerRevision>,
}

/// The queue, the expectations and the back-off of failed syncs of one controller.
#[derive(Debug, Default)]
pub struct Core {
    pub queue: WorkQueue<String>,
    pub expectations: Expectations,
    /// Failed syncs in a row, by key.
    backoff: Backoff<String>,
}

impl Core {
    pub fn forget(&mut self, k: &str) {
        self.expectations.forget(k);
        self.backoff.reset(k);
    }

    /// A write task is over: expectations of what it did not do, and when to look again.
    pub fn done(&mut self, done: &Done, exists: bool) {
        let k = &done.key;
        self.expectations.creations_observed(k, done.uncreated);
        for uid in &done.undeleted {
            self.expectations.deletion_observed(k, uid);
        }
        self.queue.done(k);
        if !exists {
            self.forget(k);
            return;
        }
        let now = Instant::now();
        if done.retry {
            let delay = self.backoff.failed(k);
            self.queue.add_after(k.clone(), delay, now);
        } else {
            self.backoff.reset(k);
        }
        if let Some(after) = done.after {
            self.queue.add_after(k.clone(), after, now);
        }
        if done.again {
            self.queue.add(k.clone());
        }
    }

    /// Queues `k` again when its expectations expire.
    pub fn recheck_expectations(&mut self, k: &str, now: Instant) {
        if let Some(expires) = self.expectations.expires(k) {
            self.queue.add_after(
                k.to_owned(),
                expires.saturating_duration_since(now) + Duration::from_secs(1),
                now,
            );
        }
    }
}

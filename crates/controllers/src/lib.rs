//! The controllers inside `gantry server`: one module per controller ([`replicaset`], [`deployment`],
//! [`daemonset`], [`statefulset`], [`job`], [`cronjob`], [`nodelifecycle`], [`nodeipam`], [`serviceaccount`], [`servicelb`], [`endpoints`], [`endpointslice`], [`disruption`], [`hpa`], [`resourcequota`],
//! [`persistentvolume`], [`volumeprotection`] with [`ephemeral`], [`rootcacert`]) and the
//! garbage collector of dependents by `ownerReferences` ([`gc`]). Each is one task that owns its state, fed by kube-rs watchers (which relist on
//! their own after errors), and level-triggered: it reconciles what it is given from what the watches show,
//! so a restarted server converges to the same state.
//!
//! What they share: [`api`] (keys, resourceVersions, selectors, ownerReferences, API errors), [`queue`]
//! (the work queue and the back-off of failed syncs), [`expectations`], [`pods`] (what controllers read of
//! pods), [`claims`] (adoption and release), [`cache`] (caches of watched objects), [`sync`] (the sync
//! bookkeeping of the DaemonSet and StatefulSet controllers), [`history`] (ControllerRevisions), [`hash`]
//! (the hashes in object names) and [`endpoint_pods`] (what the Endpoints and EndpointSlice controllers
//! keep of Services and pods).

pub mod api;
pub mod cache;
pub mod claims;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoint_pods;
pub mod endpoints;
pub mod endpointslice;
pub mod ephemeral;
pub mod expectations;
pub mod gc;
pub mod hash;
pub mod history;
pub mod hpa;
pub mod job;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod persistentvolume;
pub mod pods;
pub mod queue;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacert;
pub mod serviceaccount;
pub mod servicelb;
pub mod statefulset;
pub mod sync;
pub mod volumeprotection;

use std::time::Duration;

use gantry_client::Client;

/// What can be set of the controllers (`gantry server` flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a node may stay silent before it is marked Unknown (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    /// Where Nodes' pod networks come from (`--cluster-cidr`, `--node-cidr-mask-size`).
    pub pod_networks: nodeipam::PodNetworks,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            node_monitor_grace_period: Duration::from_secs(50),
            pod_networks: nodeipam::PodNetworks::default(),
        }
    }
}

/// Runs every controller until their watches end (they do not: they retry on their own).
pub async fn run(client: Client, settings: Settings) {
    tokio::join!(
        replicaset::run(client.clone()),
        deployment::run(client.clone()),
        daemonset::run(client.clone()),
        statefulset::run(client.clone()),
        job::run(client.clone()),
        cronjob::run(client.clone()),
        nodelifecycle::run(client.clone(), settings.node_monitor_grace_period),
        nodeipam::run(client.clone(), settings.pod_networks),
        serviceaccount::run(client.clone()),
        servicelb::run(client.clone()),
        endpoints::run(client.clone()),
        endpointslice::run(client.clone()),
        disruption::run(client.clone()),
        hpa::run(client.clone()),
        resourcequota::run(client.clone()),
        persistentvolume::run(client.clone()),
        volumeprotection::run(client.clone()),
        gc::run(client),
    );
}

//! The controllers inside `gantry server`: the ReplicaSet controller ([`replicaset`]) and the garbage
//! collector of dependents by `ownerReferences` ([`gc`]). Each is one task that owns its state, fed by
//! kube-rs watchers (which relist on their own after errors), and level-triggered: it reconciles what it is
//! given from what the watches show, so a restarted server converges to the same state.

pub mod expectations;
pub mod gc;
pub mod pods;
pub mod queue;
pub mod replicaset;

use gantry_client::Client;

/// Runs every controller until their watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    tokio::join!(replicaset::run(client.clone()), gc::run(client));
}

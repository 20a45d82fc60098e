//! The controllers inside `gantry server`: one module per controller ([`replicaset`], [`deployment`],
//! [`daemonset`], [`statefulset`], [`job`], [`cronjob`]) and the garbage collector of dependents by
//! `ownerReferences` ([`gc`]). Each is one task that owns its state, fed by kube-rs watchers (which relist on
//! their own after errors), and level-triggered: it reconciles what it is given from what the watches show,
//! so a restarted server converges to the same state.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod expectations;
pub mod gc;
pub mod job;
pub mod pods;
pub mod queue;
pub mod replicaset;
pub mod statefulset;

use gantry_client::Client;

/// Runs every controller until their watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    tokio::join!(
        replicaset::run(client.clone()),
        deployment::run(client.clone()),
        daemonset::run(client.clone()),
        statefulset::run(client.clone()),
        job::run(client.clone()),
        cronjob::run(client.clone()),
        gc::run(client),
    );
}

//! The ServiceAccount controller: every namespace that is not being deleted has a `default`
//! ServiceAccount (pods run as it unless they name another); one deleted is made again.

use std::collections::HashSet;

use futures::StreamExt;
use gantry_client::k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use gantry_client::kube::api::PostParams;
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};

use crate::api::api_code;
use crate::cache::{watch, watch_all};

/// The ServiceAccount every namespace has.
pub const DEFAULT: &str = "default";

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut namespaces = watch_all::<Namespace>(&client);
    let defaults = watcher::Config::default().fields(&format!("metadata.name={DEFAULT}"));
    let mut accounts = watch(Api::<ServiceAccount>::all(client.clone()), defaults);
    // Namespaces that exist and are not terminating, and those whose `default` the watch has shown.
    let mut active: HashSet<String> = HashSet::new();
    let mut have: HashSet<String> = HashSet::new();
    let mut accounts_synced = false;
    loop {
        let mut check = Vec::new();
        tokio::select! {
            Some(event) = namespaces.next() => match event {
                Ok(watcher::Event::Apply(ns) | watcher::Event::InitApply(ns)) => {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    if ns.metadata.deletion_timestamp.is_none() {
                        active.insert(name.clone());
                        check.push(name);
                    } else {
                        active.remove(&name);
                    }
                }
                Ok(watcher::Event::Delete(ns)) => {
                    active.remove(ns.metadata.name.as_deref().unwrap_or_default());
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("serviceaccount controller: watching namespaces: {e}"),
            },
            Some(event) = accounts.next() => match event {
                Ok(watcher::Event::Init) => { have.clear(); accounts_synced = false; }
                Ok(watcher::Event::Apply(sa) | watcher::Event::InitApply(sa)) => {
                    have.extend(sa.metadata.namespace);
                }
                Ok(watcher::Event::Delete(sa)) => {
                    let namespace = sa.metadata.namespace.unwrap_or_default();
                    have.remove(&namespace);
                    check.push(namespace);
                }
                Ok(watcher::Event::InitDone) => {
                    accounts_synced = true;
                    check.extend(active.iter().cloned());
                }
                Err(e) => tracing::warn!("serviceaccount controller: watching serviceaccounts: {e}"),
            },
        }
        if !accounts_synced {
            continue;
        }
        for namespace in check {
            if active.contains(&namespace) && !have.contains(&namespace) {
                tokio::spawn(create_default(client.clone(), namespace));
            }
        }
    }
}

async fn create_default(client: Client, namespace: String) {
    let accounts: Api<ServiceAccount> = Api::namespaced(client, &namespace);
    let mut account = ServiceAccount::default();
    account.metadata.name = Some(DEFAULT.to_owned());
    match accounts.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        // Made meanwhile, or the namespace is going away.
        Err(e) if matches!(api_code(&e), Some(409 | 403 | 404)) => {}
        Err(e) => tracing::warn!("serviceaccount controller: {namespace}/default: {e}"),
    }
}

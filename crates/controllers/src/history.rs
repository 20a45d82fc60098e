//! ControllerRevisions, the history of a DaemonSet's or StatefulSet's pod template: each holds the patch
//! that puts its template back (`{"spec":{"template":{…,"$patch":"replace"}}}`, what `kubectl rollout undo`
//! applies), a revision number (the newest is the highest), and is named `<owner>-<hash of the data>`.

use std::collections::HashSet;
use std::sync::Arc;

use gantry_client::Api;
use gantry_client::k8s_openapi;
use gantry_client::k8s_openapi::api::apps::v1::ControllerRevision;
use gantry_client::k8s_openapi::api::core::v1::PodTemplateSpec;
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use gantry_client::k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use gantry_client::kube::Resource;
use gantry_client::kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::api::{api_message, controller_ref, is_conflict};
use crate::hash::{FNV32_OFFSET, encode, fnv32a};

/// The label of a pod's revision (and of a DaemonSet's revisions: their hash).
pub const HASH_LABEL: &str = "controller-revision-hash";
/// The label of a StatefulSet's revisions holding their hash (upstream's `ControllerRevisionHashLabel`).
pub const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// The longest owner name in a revision's name (upstream's `ControllerRevisionName`).
const MAX_PREFIX: usize = 223;

/// The revision data of a pod template.
pub fn data(template: &PodTemplateSpec) -> Value {
    let mut template = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Value::Object(t) = &mut template {
        t.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// The pod template a revision holds.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision
        .data
        .as_ref()?
        .0
        .get("spec")?
        .get("template")?
        .clone();
    if let Value::Object(t) = &mut template {
        t.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

/// JSON with every object's keys sorted: the same data always hashes the same.
pub fn canonical(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// The hash of revision data (FNV-1a of its [`canonical`] JSON, then of the owner's `collisionCount`, bumped
/// when a name is taken, in decimal), as upstream's `HashControllerRevision` (which uses FNV-1) makes it.
pub fn hash(data: &Value, collision_count: Option<i32>) -> String {
    let mut h = fnv32a(canonical(data).into_bytes(), FNV32_OFFSET);
    if let Some(count) = collision_count {
        h = fnv32a(count.to_string().into_bytes(), h);
    }
    encode(h)
}

/// `<owner>-<hash>`, the owner's name cut to fit.
pub fn name(owner: &str, hash: &str) -> String {
    let mut prefix = owner;
    if prefix.len() > MAX_PREFIX {
        let mut end = MAX_PREFIX;
        while !prefix.is_char_boundary(end) {
            end -= 1;
        }
        prefix = &prefix[..end];
    }
    format!("{prefix}-{hash}")
}

/// Whether the revision holds `data`.
pub fn holds(revision: &ControllerRevision, data: &Value) -> bool {
    revision.data.as_ref().is_some_and(|d| d.0 == *data)
}

/// The hash of a revision: its label, else its name less the owner's.
pub fn hash_of(revision: &ControllerRevision, owner: &str, label: &str) -> String {
    revision
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(label))
        .cloned()
        .unwrap_or_else(|| {
            let name = revision.metadata.name.as_deref().unwrap_or_default();
            name.strip_prefix(&format!("{owner}-"))
                .unwrap_or(name)
                .to_owned()
        })
}

/// A new revision of `owner` holding `data`: labelled with its template's labels and `hash_label` = the
/// hash, carrying the owner's annotations (`kubernetes.io/change-cause` for `kubectl rollout history`).
pub fn new_revision<K>(
    owner: &K,
    template: &PodTemplateSpec,
    data: Value,
    number: i64,
    collision_count: Option<i32>,
    hash_label: &str,
) -> ControllerRevision
where
    K: k8s_openapi::Resource + Resource<DynamicType = ()>,
{
    let controller = controller_ref(owner);
    let owner = owner.meta();
    let hash = hash(&data, collision_count);
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(hash_label.to_owned(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name(owner.name.as_deref().unwrap_or_default(), &hash)),
            namespace: owner.namespace.clone(),
            labels: Some(labels),
            annotations: owner.annotations.clone().filter(|a| !a.is_empty()),
            owner_references: Some(vec![controller]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data)),
        revision: number,
    }
}

/// Where an owner stands with its history.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// The revision holding the template is the newest.
    Current(Arc<ControllerRevision>),
    /// It is there but older (a rollback): it becomes the newest, with this number.
    Renumber(Arc<ControllerRevision>, i64),
    /// None holds it: a new revision with this number.
    Create(i64),
}

/// What to do of `revisions` (the owner's) for `data`. Of several revisions holding it, the newest wins
/// (the others age out as old history).
pub fn plan(revisions: &[Arc<ControllerRevision>], data: &Value) -> Plan {
    let newest = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let holding = revisions
        .iter()
        .filter(|r| holds(r, data))
        .max_by_key(|r| r.revision);
    match holding {
        None => Plan::Create(newest + 1),
        Some(r) => {
            let others = revisions
                .iter()
                .filter(|o| o.metadata.uid != r.metadata.uid)
                .map(|o| o.revision)
                .max()
                .unwrap_or(0);
            if r.revision > others {
                Plan::Current(r.clone())
            } else {
                Plan::Renumber(r.clone(), newest + 1)
            }
        }
    }
}

/// The names of the revisions to delete so that at most `limit` old ones remain (oldest first), sparing
/// `live` ones (by name) — those of the current revisions and those pods still run.
pub fn to_prune(
    old: &[Arc<ControllerRevision>],
    live: &HashSet<String>,
    limit: i32,
) -> Vec<String> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let mut candidates: Vec<&Arc<ControllerRevision>> = old.iter().collect();
    if candidates.len() <= limit {
        return Vec::new();
    }
    let excess = candidates.len() - limit;
    candidates.sort_by_key(|r| r.revision);
    candidates
        .into_iter()
        .filter_map(|r| r.metadata.name.clone())
        .filter(|n| !live.contains(n))
        .take(excess)
        .collect()
}

/// Why a revision could not be written.
#[derive(Debug)]
pub enum WriteError {
    /// Its name is taken by other data: the owner's `collisionCount` must go up.
    Collision,
    Failed(String),
}

/// Creates `revision`; a revision of that name holding the same data is as good.
pub async fn create(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
) -> Result<ControllerRevision, WriteError> {
    match api.create(&PostParams::default(), revision).await {
        Ok(created) => Ok(created),
        Err(e) if is_conflict(&e) => {
            let name = revision.metadata.name.clone().unwrap_or_default();
            let existing = api
                .get(&name)
                .await
                .map_err(|e| WriteError::Failed(api_message(&e)))?;
            let data = revision.data.as_ref().map(|d| &d.0);
            let ours = existing
                .metadata
                .owner_references
                .iter()
                .flatten()
                .all(|r| {
                    r.controller != Some(true)
                        || revision
                            .metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .any(|o| o.uid == r.uid)
                });
            if data.is_some_and(|d| holds(&existing, d)) && ours {
                Ok(existing)
            } else {
                Err(WriteError::Collision)
            }
        }
        Err(e) => Err(WriteError::Failed(api_message(&e))),
    }
}

/// Gives the revision `name` the number `number`.
pub async fn renumber(
    api: &Api<ControllerRevision>,
    name: &str,
    number: i64,
) -> Result<ControllerRevision, String> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"revision": number})),
    )
    .await
    .map_err(|e| api_message(&e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use gantry_client::k8s_openapi::api::apps::v1::StatefulSet;

    use super::*;

    #[test]
    fn revisions_hash_their_data_and_the_newest_holding_the_template_wins() {
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "one"}]}}))
        .unwrap();
        let held = data(&template);
        assert_eq!(held["spec"]["template"]["$patch"], "replace");
        let h = hash(&held, Some(0));
        assert_eq!(h, hash(&held.clone(), Some(0)), "stable");
        assert_ne!(h, hash(&held, Some(1)), "a collision changes it");
        assert!(
            h.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
        let set: StatefulSet =
            serde_json::from_value(json!({"metadata": {"name": "web", "uid": "u",
            "annotations": {"kubernetes.io/change-cause": "x"}}}))
            .unwrap();
        let one = Arc::new(new_revision(
            &set,
            &template,
            held.clone(),
            1,
            Some(0),
            REVISION_HASH_LABEL,
        ));
        assert_eq!(one.metadata.name.as_deref(), Some(&*format!("web-{h}")));
        assert_eq!(
            one.metadata.labels.as_ref().unwrap()[REVISION_HASH_LABEL],
            h
        );
        assert_eq!(
            one.metadata.annotations.as_ref().unwrap()["kubernetes.io/change-cause"],
            "x"
        );
        assert_eq!(template_of(&one), Some(template.clone()));
        assert_eq!(
            plan(std::slice::from_ref(&one), &held),
            Plan::Current(one.clone())
        );
        let mut other_template = template.clone();
        other_template.spec.as_mut().unwrap().containers[0].image = Some("two".into());
        let other = data(&other_template);
        assert_eq!(plan(std::slice::from_ref(&one), &other), Plan::Create(2));
        let mut two = new_revision(
            &set,
            &other_template,
            other,
            2,
            Some(0),
            REVISION_HASH_LABEL,
        );
        two.metadata.uid = Some("two".into());
        let mut one_uid = (*one).clone();
        one_uid.metadata.uid = Some("one".into());
        let (one, two) = (Arc::new(one_uid), Arc::new(two));
        // Back to the first template: a rollback renumbers its revision.
        assert_eq!(
            plan(&[one.clone(), two.clone()], &held),
            Plan::Renumber(one.clone(), 3)
        );
        // Pruning: oldest first, never a live one.
        let live = HashSet::from([two.metadata.name.clone().unwrap()]);
        assert_eq!(
            to_prune(&[one.clone(), two.clone()], &live, 0),
            [one.metadata.name.clone().unwrap()]
        );
        assert!(to_prune(&[one.clone(), two.clone()], &live, 2).is_empty());
        assert_eq!(hash_of(&one, "web", REVISION_HASH_LABEL), h);
    }
}

//! Which volume a claim gets (upstream's `findBestMatchForClaim` and `FindMatchingVolume`), and whether a
//! volume a claim names can be its (`checkVolumeSatisfyClaim`).

use std::collections::BTreeMap;

use gantry_client::k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use gantry_scheduler::cache::NodeSpec;
use gantry_scheduler::plugins::term_matches;

use super::objects::{
    VOLUME_AVAILABLE, access_modes_fit, capacity, claim_class, claim_ref, is_bound_to, requested,
    volume_access_modes, volume_class, volume_modes_differ, volume_phase,
};
use crate::api::{matches, selector_of};

/// The node a WaitForFirstConsumer claim was given, and its labels (empty when the node is unknown).
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// Whether the volume's node affinity lets it be used on `node` (no affinity: anywhere).
pub fn allows_node(volume: &PersistentVolume, node: Node<'_>) -> bool {
    let Some(required) = volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return true;
    };
    let spec = NodeSpec {
        labels: node.labels.clone(),
        ..NodeSpec::default()
    };
    required
        .node_selector_terms
        .iter()
        .any(|term| term_matches(term, node.name, &spec))
}

/// The best volume for the claim among `volumes`: one pre-bound to it (its `claimRef` names it) wins;
/// otherwise the smallest Available one that fits — enough capacity, every access mode asked for (fewest
/// modes first, as upstream's index groups them), the same volume mode and class, labels the claim's
/// selector matches. Volumes pre-bound to other claims or being deleted are never chosen. With
/// `delay_binding` (a WaitForFirstConsumer class), unbound volumes are chosen only once the claim has a
/// `node`, and only those whose node affinity allows it. An invalid selector is an error.
pub fn best_match<'a>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    delay_binding: bool,
    node: Option<Node<'_>>,
) -> Result<Option<&'a PersistentVolume>, String> {
    let selector = match claim.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(selector) => Some(selector_of(selector).map_err(|e| {
            format!(
                "error creating internal label selector for claim: {}/{}: {e}",
                claim.metadata.namespace.as_deref().unwrap_or_default(),
                claim.metadata.name.as_deref().unwrap_or_default()
            )
        })?),
        None => None,
    };
    let wanted = requested(claim);
    let class = claim_class(claim);
    let mut best: Option<((usize, i128), &PersistentVolume)> = None;
    for volume in volumes {
        if claim_ref(volume).is_some() && !is_bound_to(volume, claim) {
            continue;
        }
        let size = capacity(volume);
        if !access_modes_fit(claim, volume)
            || size < wanted
            || volume_modes_differ(claim, volume)
            || volume.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        if is_bound_to(volume, claim) {
            return Ok(Some(volume));
        }
        if delay_binding && node.is_none() {
            continue;
        }
        if volume_phase(volume) != VOLUME_AVAILABLE
            || selector
                .as_ref()
                .is_some_and(|s| !matches(s, volume.metadata.labels.as_ref()))
            || volume_class(volume) != class
            || node.is_some_and(|node| !allows_node(volume, node))
        {
            continue;
        }
        let rank = (volume_access_modes(volume).len(), size);
        if best.as_ref().is_none_or(|(have, _)| rank < *have) {
            best = Some((rank, volume));
        }
    }
    Ok(best.map(|(_, volume)| volume))
}

/// Why the volume a claim names cannot be bound to it, with upstream's messages.
pub fn check_satisfies(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<(), String> {
    if volume.metadata.deletion_timestamp.is_some() {
        return Err(format!(
            "the volume is marked for deletion {:?}",
            volume.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    if capacity(volume) < requested(claim) {
        return Err("requested PV is too small".into());
    }
    if volume_class(volume) != claim_class(claim) {
        return Err("storageClassName does not match".into());
    }
    if volume_modes_differ(claim, volume) {
        return Err("incompatible volumeMode".into());
    }
    if !access_modes_fit(claim, volume) {
        return Err("incompatible accessMode".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistentvolume::tests::{claim, volume};
    use serde_json::json;

    fn names(found: Option<&PersistentVolume>) -> Option<&str> {
        found.and_then(|v| v.metadata.name.as_deref())
    }

    #[test]
    fn the_smallest_volume_that_fits_is_chosen() {
        let c = claim(json!({"spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": ""}}));
        let volumes = [
            volume(json!({"metadata": {"name": "big"}, "spec": {"capacity": {"storage": "10Gi"}}})),
            volume(
                json!({"metadata": {"name": "small"}, "spec": {"capacity": {"storage": "500Mi"}}}),
            ),
            volume(json!({"metadata": {"name": "fits"}, "spec": {"capacity": {"storage": "1Gi"}}})),
        ];
        assert_eq!(
            names(best_match(&c, &volumes, false, None).unwrap()),
            Some("fits")
        );
    }

    #[test]
    fn access_modes_must_be_a_superset_and_fewer_modes_go_first() {
        let c = claim(json!({"spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}}));
        let volumes = [
            volume(json!({"metadata": {"name": "rox"}, "spec": {"accessModes": ["ReadOnlyMany"]}})),
            volume(
                json!({"metadata": {"name": "two"}, "spec": {"capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce", "ReadWriteMany"]}}),
            ),
            volume(json!({"metadata": {"name": "one"}, "spec": {"capacity": {"storage": "5Gi"}}})),
        ];
        assert_eq!(
            names(best_match(&c, &volumes, false, None).unwrap()),
            Some("one")
        );
        assert_eq!(
            names(best_match(&c, &volumes[..2], false, None).unwrap()),
            Some("two")
        );
    }

    #[test]
    fn class_volume_mode_phase_and_selector_must_match() {
        let c = claim(
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
            "selector": {"matchLabels": {"tier": "gold"}},
            "resources": {"requests": {"storage": "1Gi"}}}}),
        );
        let gold = json!({"tier": "gold"});
        let volumes = [
            volume(json!({"metadata": {"name": "no-class", "labels": gold}})),
            volume(json!({"metadata": {"name": "block", "labels": gold},
                "spec": {"storageClassName": "fast", "volumeMode": "Block"}})),
            volume(
                json!({"metadata": {"name": "silver", "labels": {"tier": "silver"}},
                "spec": {"storageClassName": "fast"}}),
            ),
            volume(json!({"metadata": {"name": "released", "labels": gold},
                "spec": {"storageClassName": "fast"}, "status": {"phase": "Released"}})),
        ];
        assert_eq!(best_match(&c, &volumes, false, None).unwrap(), None);
        let good = volume(json!({"metadata": {"name": "good", "labels": gold},
            "spec": {"storageClassName": "fast"}}));
        let all: Vec<_> = volumes.iter().chain([&good]).collect();
        assert_eq!(
            names(best_match(&c, all, false, None).unwrap()),
            Some("good")
        );
        // "" asks for volumes without a class only.
        let none = claim(
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "resources": {"requests": {"storage": "1Gi"}}}}),
        );
        assert_eq!(
            names(best_match(&none, &volumes, false, None).unwrap()),
            Some("no-class")
        );
    }

    #[test]
    fn a_volume_pre_bound_to_the_claim_wins_and_those_of_others_are_skipped() {
        let c = claim(
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
            "resources": {"requests": {"storage": "1Gi"}}}}),
        );
        let volumes = [
            volume(
                json!({"metadata": {"name": "a-other"}, "spec": {"storageClassName": "fast",
                "claimRef": {"namespace": "default", "name": "other"}}}),
            ),
            volume(json!({"metadata": {"name": "b-fits"}, "spec": {"storageClassName": "fast"}})),
            // Pre-bound: chosen whatever its class, phase or size rank.
            volume(
                json!({"metadata": {"name": "c-mine"}, "spec": {"capacity": {"storage": "100Gi"},
                "claimRef": {"namespace": "default", "name": "data"}}, "status": {"phase": "Pending"}}),
            ),
        ];
        assert_eq!(
            names(best_match(&c, &volumes, false, None).unwrap()),
            Some("c-mine")
        );
        // A reference with another uid is another claim's.
        let stale = volume(
            json!({"metadata": {"name": "stale"}, "spec": {"storageClassName": "fast",
            "claimRef": {"namespace": "default", "name": "data", "uid": "old"}}}),
        );
        assert_eq!(best_match(&c, [&stale], false, None).unwrap(), None);
        // Even pre-bound, a volume being deleted or too small is not taken.
        let small = volume(
            json!({"metadata": {"name": "small"}, "spec": {"capacity": {"storage": "1Mi"},
            "claimRef": {"namespace": "default", "name": "data", "uid": "claim-uid"}}}),
        );
        assert_eq!(best_match(&c, [&small], false, None).unwrap(), None);
    }

    #[test]
    fn delay_binding_takes_unbound_volumes_only_on_the_selected_node() {
        let c = claim(
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
            "resources": {"requests": {"storage": "1Gi"}}}}),
        );
        let on = |node: &str| {
            volume(
                json!({"metadata": {"name": format!("on-{node}")}, "spec": {"storageClassName": "local",
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}}),
            )
        };
        let volumes = [on("n1"), on("n2")];
        assert_eq!(
            best_match(&c, &volumes, true, None).unwrap(),
            None,
            "no node yet"
        );
        let labels = BTreeMap::from([("kubernetes.io/hostname".to_owned(), "n2".to_owned())]);
        let node = Node {
            name: "n2",
            labels: &labels,
        };
        assert_eq!(
            names(best_match(&c, &volumes, true, Some(node)).unwrap()),
            Some("on-n2")
        );
        let unknown = BTreeMap::new();
        let node = Node {
            name: "n3",
            labels: &unknown,
        };
        assert_eq!(best_match(&c, &volumes, true, Some(node)).unwrap(), None);
        // A volume pre-bound (by the scheduler) is taken without a node.
        let prebound = volume(
            json!({"metadata": {"name": "pre"}, "spec": {"storageClassName": "local",
            "claimRef": {"namespace": "default", "name": "data"}}}),
        );
        assert_eq!(
            names(best_match(&c, [&prebound], true, None).unwrap()),
            Some("pre")
        );
    }

    #[test]
    fn node_affinity_by_field_and_without_affinity() {
        let v = volume(
            json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}}),
        );
        let labels = BTreeMap::new();
        assert!(allows_node(
            &v,
            Node {
                name: "n1",
                labels: &labels
            }
        ));
        assert!(!allows_node(
            &v,
            Node {
                name: "n2",
                labels: &labels
            }
        ));
        assert!(allows_node(
            &volume(json!({})),
            Node {
                name: "n2",
                labels: &labels
            }
        ));
    }

    #[test]
    fn an_invalid_selector_is_an_error() {
        let c = claim(json!({"spec": {"selector": {"matchExpressions": [
            {"key": "a", "operator": "Bogus"}]}}}));
        assert!(best_match(&c, [&volume(json!({}))], false, None).is_err());
    }

    #[test]
    fn a_named_volume_is_checked_with_upstream_messages() {
        let c = claim(
            json!({"spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "",
            "resources": {"requests": {"storage": "1Gi"}}}}),
        );
        let check = |v: serde_json::Value| check_satisfies(&volume(v), &c);
        assert_eq!(
            check(json!({"spec": {"capacity": {"storage": "1Mi"}}})).unwrap_err(),
            "requested PV is too small"
        );
        assert_eq!(
            check(json!({"spec": {"storageClassName": "x"}})).unwrap_err(),
            "storageClassName does not match"
        );
        assert_eq!(
            check(json!({"spec": {"volumeMode": "Block"}})).unwrap_err(),
            "incompatible volumeMode"
        );
        assert_eq!(
            check(json!({"spec": {"accessModes": ["ReadWriteOnce"]}})).unwrap_err(),
            "incompatible accessMode"
        );
        assert_eq!(
            check(json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}})).unwrap_err(),
            "the volume is marked for deletion \"pv\""
        );
        assert!(
            check(json!({"spec": {"accessModes": ["ReadWriteMany", "ReadWriteOnce"]}})).is_ok()
        );
    }
}

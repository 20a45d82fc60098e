//! The sync of one volume (upstream's `syncVolume`): its phase from its binding — Available without a
//! claim (or only pre-bound), Bound while its claim is bound to it, Released once its claim is gone — and
//! then its reclaim policy: Retain keeps it Released; Delete leaves volumes of external provisioners to
//! them (Gantry's node agents delete local-path directories and their volumes) and fails the others, for
//! which no deleter exists here; Recycle fails (deprecated, no recycler). A volume our controller bound to
//! a claim that got another volume is unbound.

use gantry_client::k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use super::objects::{
    ANN_BOUND_BY_CONTROLLER, VOLUME_AVAILABLE, VOLUME_BOUND, VOLUME_FAILED, VOLUME_RELEASED,
    claim_ref, claim_ref_uid, has_annotation, provisioned_by, reclaim_policy, volume_modes_differ,
    volume_name, volume_phase,
};
use super::plan::{Plan, Write, event};

/// The volume's next step; `claim` is the claim its `claimRef` names, when it exists with that uid.
pub fn decide(volume: &PersistentVolume, claim: Option<&PersistentVolumeClaim>) -> Plan {
    if claim_ref(volume).is_none() || claim_ref_uid(volume).is_empty() {
        // Unused, or reserved for a claim whose sync will bind it.
        return phase(volume, VOLUME_AVAILABLE, None);
    }
    let Some(claim) = claim else {
        return release(volume);
    };
    let name = volume.metadata.name.as_deref().unwrap_or_default();
    let claimed = volume_name(claim);
    if claimed.is_empty() {
        if volume_modes_differ(claim, volume) {
            let claim_name = claim.metadata.name.as_deref().unwrap_or_default();
            return Plan::event(event(
                volume,
                true,
                "VolumeMismatch",
                format!(
                    "Cannot bind PersistentVolume to requested PersistentVolumeClaim {claim_name:?} due \
                     to incompatible volumeMode."
                ),
            ))
            .with_event(event(
                claim,
                true,
                "VolumeMismatch",
                format!(
                    "Cannot bind PersistentVolume {name:?} to requested PersistentVolumeClaim due to \
                     incompatible volumeMode."
                ),
            ));
        }
        // The binding is the claim's sync to finish (this is how provisioned volumes get bound).
        return Plan {
            sync_claim: super::objects::claim_ref_key(volume),
            ..Plan::default()
        };
    }
    if claimed == name {
        return phase(volume, VOLUME_BOUND, None);
    }
    // The claim is bound to another volume.
    if provisioned_by(volume).is_some() && reclaim_policy(volume) == "Delete" {
        return release(volume);
    }
    unbind(volume)
}

/// The volume's phase set (with its message; nothing when it is in that phase).
fn phase(volume: &PersistentVolume, phase: &str, message: Option<String>) -> Plan {
    if volume_phase(volume) == phase {
        return Plan::nothing();
    }
    let mut updated = volume.clone();
    let status = updated.status.get_or_insert_default();
    status.phase = Some(phase.to_owned());
    status.message = message;
    Plan::write(Write::VolumeStatus(updated))
}

/// Released (unless already Released or Failed), then the reclaim policy.
fn release(volume: &PersistentVolume) -> Plan {
    if !matches!(volume_phase(volume), VOLUME_RELEASED | VOLUME_FAILED) {
        return phase(volume, VOLUME_RELEASED, None);
    }
    reclaim(volume)
}

/// Who deletes the volume: an external provisioner (`Some`), or no one here (`None`).
fn external_deleter(volume: &PersistentVolume) -> Option<&str> {
    if let Some(by) = provisioned_by(volume).filter(|by| !by.is_empty()) {
        return (!by.starts_with("kubernetes.io/")).then_some(by);
    }
    volume
        .spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|csi| csi.driver.as_str())
}

/// A released volume's reclaim policy (upstream's `reclaimVolume`, with no in-tree volume plugins).
fn reclaim(volume: &PersistentVolume) -> Plan {
    let name = volume.metadata.name.as_deref().unwrap_or_default();
    match reclaim_policy(volume) {
        "Retain" => Plan::nothing(),
        "Delete" if external_deleter(volume).is_some() => Plan::nothing(),
        "Delete" => failed(
            volume,
            "VolumeFailedDelete",
            format!(
                "error getting deleter volume plugin for volume {name:?}: no deletable volume plugin matched"
            ),
        ),
        "Recycle" => failed(
            volume,
            "VolumeFailedRecycle",
            "No recycler plugin found for the volume!".into(),
        ),
        _ => failed(
            volume,
            "VolumeUnknownReclaimPolicy",
            "Volume has unrecognized PersistentVolumeReclaimPolicy".into(),
        ),
    }
}

/// Failed, with the message and a warning (only when it becomes Failed).
fn failed(volume: &PersistentVolume, reason: &'static str, message: String) -> Plan {
    if volume_phase(volume) == VOLUME_FAILED {
        return Plan::nothing();
    }
    phase(volume, VOLUME_FAILED, Some(message.clone()))
        .with_event(event(volume, true, reason, message))
}

/// Undoes a binding (`unbindVolume`): ours goes entirely; a user's pre-binding stays, less the uid. The
/// next step makes the volume Available.
fn unbind(volume: &PersistentVolume) -> Plan {
    let mut updated = volume.clone();
    if has_annotation(&volume.metadata, ANN_BOUND_BY_CONTROLLER) {
        updated.spec.get_or_insert_default().claim_ref = None;
        if let Some(annotations) = &mut updated.metadata.annotations {
            annotations.remove(ANN_BOUND_BY_CONTROLLER);
            if annotations.is_empty() {
                updated.metadata.annotations = None;
            }
        }
    } else if let Some(r) = updated.spec.as_mut().and_then(|s| s.claim_ref.as_mut()) {
        r.uid = None;
    }
    Plan::write(Write::Volume(updated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistentvolume::tests::{claim, volume};
    use serde_json::{Value, json};

    fn bound_volume(extra: Value) -> PersistentVolume {
        let mut v = json!({"metadata": {"name": "pv1"}, "spec": {"claimRef": {"name": "data",
            "namespace": "default", "uid": "claim-uid"}}, "status": {"phase": "Bound"}});
        crate::persistentvolume::tests::merge(&mut v, extra);
        volume(v)
    }

    fn new_phase(plan: &Plan) -> Option<(&str, Option<&str>)> {
        match &plan.write {
            Some(Write::VolumeStatus(v)) => {
                let status = v.status.as_ref().unwrap();
                Some((status.phase.as_deref().unwrap(), status.message.as_deref()))
            }
            _ => None,
        }
    }

    /// Steps until nothing is written; the phases written and the events' reasons.
    fn converge(
        mut v: PersistentVolume,
        c: Option<&PersistentVolumeClaim>,
    ) -> (PersistentVolume, Vec<String>) {
        let mut seen = Vec::new();
        for _ in 0..5 {
            let plan = decide(&v, c);
            seen.extend(plan.events.iter().map(|e| e.reason.to_owned()));
            match plan.write {
                Some(Write::Volume(next) | Write::VolumeStatus(next)) => {
                    seen.push(format!("-> {}", volume_phase(&next)));
                    v = next;
                }
                Some(other) => panic!("{other:?}"),
                None => break,
            }
        }
        (v, seen)
    }

    #[test]
    fn phases_follow_the_binding() {
        let fresh = volume(json!({"status": {"phase": "Pending"}}));
        assert_eq!(new_phase(&decide(&fresh, None)), Some(("Available", None)));
        let reserved = volume(
            json!({"spec": {"claimRef": {"name": "data", "namespace": "default"}},
            "status": null}),
        );
        assert_eq!(
            new_phase(&decide(&reserved, None)),
            Some(("Available", None))
        );
        let bound_claim = claim(json!({"spec": {"volumeName": "pv1"}}));
        let v = bound_volume(json!({"status": {"phase": "Available"}}));
        assert_eq!(
            new_phase(&decide(&v, Some(&bound_claim))),
            Some(("Bound", None))
        );
        assert_eq!(
            decide(&bound_volume(json!({})), Some(&bound_claim)),
            Plan::nothing()
        );
    }

    #[test]
    fn a_volume_whose_claim_has_no_volume_name_hands_over_to_the_claim() {
        let plan = decide(&bound_volume(json!({})), Some(&claim(json!({}))));
        assert_eq!(plan.sync_claim.as_deref(), Some("default/data"));
        assert_eq!(plan.write, None);
        let block = claim(json!({"spec": {"volumeMode": "Block"}}));
        let plan = decide(&bound_volume(json!({})), Some(&block));
        assert_eq!(plan.events.len(), 2);
        assert_eq!(
            plan.events[1].message,
            "Cannot bind PersistentVolume \"pv1\" to requested PersistentVolumeClaim due to incompatible volumeMode."
        );
    }

    #[test]
    fn retained_volumes_stay_released() {
        let (v, seen) = converge(
            bound_volume(json!({"spec": {"persistentVolumeReclaimPolicy": "Retain"}})),
            None,
        );
        assert_eq!(seen, ["-> Released"]);
        assert!(
            claim_ref(&v).is_some(),
            "the data and the reference are kept"
        );
    }

    #[test]
    fn local_path_volumes_are_left_to_their_node_agent() {
        let v = bound_volume(json!({"metadata": {"annotations": {
            "pv.kubernetes.io/provisioned-by": "gantry.io/local-path"}},
            "spec": {"persistentVolumeReclaimPolicy": "Delete"}}));
        let (_, seen) = converge(v, None);
        assert_eq!(seen, ["-> Released"]);
    }

    #[test]
    fn other_deletable_volumes_fail_as_no_deleter_exists() {
        let v = bound_volume(json!({"spec": {"persistentVolumeReclaimPolicy": "Delete"}}));
        let (v, seen) = converge(v, None);
        assert_eq!(seen, ["-> Released", "VolumeFailedDelete", "-> Failed"]);
        assert_eq!(
            v.status.unwrap().message.as_deref(),
            Some(
                "error getting deleter volume plugin for volume \"pv1\": no deletable volume plugin matched"
            )
        );
        let v = bound_volume(json!({"spec": {"persistentVolumeReclaimPolicy": "Recycle"}}));
        let (_, seen) = converge(v, None);
        assert_eq!(seen, ["-> Released", "VolumeFailedRecycle", "-> Failed"]);
        let v = bound_volume(json!({"spec": {"persistentVolumeReclaimPolicy": "Sometimes"}}));
        let (_, seen) = converge(v, None);
        assert_eq!(
            seen,
            ["-> Released", "VolumeUnknownReclaimPolicy", "-> Failed"]
        );
    }

    #[test]
    fn a_provisioned_volume_whose_claim_went_elsewhere_is_released() {
        let elsewhere = claim(json!({"spec": {"volumeName": "pv2"}}));
        let v = bound_volume(json!({"metadata": {"annotations": {
            "pv.kubernetes.io/provisioned-by": "gantry.io/local-path"}},
            "spec": {"persistentVolumeReclaimPolicy": "Delete"}}));
        let (_, seen) = converge(v, Some(&elsewhere));
        assert_eq!(seen, ["-> Released"]);
    }

    #[test]
    fn our_binding_to_a_claim_bound_elsewhere_is_undone() {
        let elsewhere = claim(json!({"spec": {"volumeName": "pv2"}}));
        let ours = bound_volume(json!({"metadata": {"annotations": {
            "pv.kubernetes.io/bound-by-controller": "yes"}}}));
        let (v, seen) = converge(ours, Some(&elsewhere));
        assert_eq!(seen, ["-> Bound", "-> Available"]);
        assert!(claim_ref(&v).is_none());
        assert!(v.metadata.annotations.is_none());
        let users = bound_volume(json!({}));
        let (v, _) = converge(users, Some(&elsewhere));
        assert_eq!(claim_ref_uid(&v), "");
        assert_eq!(
            claim_ref(&v).unwrap().name.as_deref(),
            Some("data"),
            "still pre-bound"
        );
        assert_eq!(volume_phase(&v), "Available");
    }
}

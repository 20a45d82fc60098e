//! The sync of one claim (upstream's `syncClaim`): an unbound claim gets the best volume, or waits for its
//! first consumer, or is handed to its class's provisioner; a bound one is kept bound (or Lost when its
//! volume is gone or taken), then grown when it asks for more ([`super::expansion`]). Binding writes the
//! volume first, then its status, then the claim, then its status, one step per [`Plan`].

use std::collections::BTreeMap;

use gantry_client::k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use super::expansion;
use super::matching::{Node, best_match, check_satisfies};
use super::objects::{
    ANN_BETA_STORAGE_PROVISIONER, ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER, CLAIM_BOUND, CLAIM_LOST, CLAIM_PENDING, NO_PROVISIONER, VOLUME_BOUND,
    annotation, capacity_quantity, claim_class, claim_has_class, claim_phase, claim_ref,
    claim_ref_uid, default_class, has_annotation, is_bound_to, nanos, reference_to, set_annotation,
    volume_name, volume_phase, waits_for_consumer,
};
use super::plan::{Cluster, Plan, Write, event};

/// The claim's next step.
pub fn decide(claim: &PersistentVolumeClaim, cluster: &Cluster) -> Plan {
    if has_annotation(&claim.metadata, ANN_BIND_COMPLETED) {
        bound(claim, cluster)
    } else {
        unbound(claim, cluster)
    }
}

fn key_of(claim: &PersistentVolumeClaim) -> String {
    crate::api::key(
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default(),
    )
}

fn unbound(claim: &PersistentVolumeClaim, cluster: &Cluster) -> Plan {
    let wanted = volume_name(claim);
    if !wanted.is_empty() {
        return named_volume(claim, wanted, cluster);
    }
    let class_name = claim_class(claim);
    let class = (!class_name.is_empty())
        .then(|| cluster.classes.get(class_name))
        .flatten();
    let delay = class.is_some_and(waits_for_consumer);
    let selected = annotation(&claim.metadata, ANN_SELECTED_NODE);
    let empty = BTreeMap::new();
    let node = selected.filter(|_| delay).map(|name| Node {
        name,
        labels: cluster.nodes.get(name).unwrap_or(&empty),
    });
    match best_match(claim, cluster.volumes.values(), delay, node) {
        Err(e) => Plan::retry(format!(
            "error finding PV for claim {:?}: {e}",
            key_of(claim)
        )),
        Ok(Some(volume)) => bind(volume, claim),
        Ok(None) => no_volume(claim, class_name, delay && selected.is_none(), cluster),
    }
}

/// No volume fits: give the claim the default class if it names none, wait for its first consumer,
/// or ask its class's provisioner.
fn no_volume(
    claim: &PersistentVolumeClaim,
    class_name: &str,
    waiting: bool,
    cluster: &Cluster,
) -> Plan {
    if !claim_has_class(claim)
        && let Some(default) = default_class(cluster.classes.values())
    {
        let mut updated = claim.clone();
        updated.spec.get_or_insert_default().storage_class_name = default.metadata.name.clone();
        return Plan::write(Write::Claim(updated));
    }
    if waiting {
        let waiting = event(
            claim,
            false,
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".into(),
        );
        return pending(claim).with_event(waiting);
    }
    if !class_name.is_empty() {
        return provision(claim, class_name, cluster);
    }
    let failed = event(
        claim,
        false,
        "FailedBinding",
        "no persistent volumes available for this claim and no storage class is set".into(),
    );
    pending(claim).with_event(failed)
}

/// Hands the claim to its class's provisioner (the annotations it watches for), as upstream does for
/// external provisioners.
fn provision(claim: &PersistentVolumeClaim, class_name: &str, cluster: &Cluster) -> Plan {
    let failed = |message: String| Plan::event(event(claim, true, "ProvisioningFailed", message));
    let Some(class) = cluster.classes.get(class_name) else {
        return failed(format!(
            "storageclass.storage.k8s.io {class_name:?} not found"
        ));
    };
    let provisioner = class.provisioner.as_str();
    if provisioner == NO_PROVISIONER {
        return failed(format!("no volume plugin matched name: {provisioner}"));
    }
    let waiting = event(
        claim,
        false,
        "ExternalProvisioning",
        format!(
            "Waiting for a volume to be created either by the external provisioner '{provisioner}' or \
             manually by the system administrator. If volume creation is delayed, please verify that \
             the provisioner is running and correctly registered."
        ),
    );
    if annotation(&claim.metadata, ANN_STORAGE_PROVISIONER) == Some(provisioner) {
        return Plan::event(waiting);
    }
    let mut updated = claim.clone();
    set_annotation(&mut updated.metadata, ANN_STORAGE_PROVISIONER, provisioner);
    set_annotation(
        &mut updated.metadata,
        ANN_BETA_STORAGE_PROVISIONER,
        provisioner,
    );
    Plan::write(Write::Claim(updated)).with_event(waiting)
}

/// A claim that names its volume (`spec.volumeName`) but is not bound yet.
fn named_volume(claim: &PersistentVolumeClaim, wanted: &str, cluster: &Cluster) -> Plan {
    let Some(volume) = cluster.volumes.get(wanted) else {
        // Not there (yet): try again later.
        return pending(claim);
    };
    if claim_ref(volume).is_none() {
        return match check_satisfies(volume, claim) {
            Ok(()) => bind(volume, claim),
            Err(why) => pending(claim).with_event(event(
                claim,
                true,
                "VolumeMismatch",
                format!("Cannot bind to requested volume {wanted:?}: {why}"),
            )),
        };
    }
    if is_bound_to(volume, claim) {
        return bind(volume, claim);
    }
    let taken = event(
        claim,
        true,
        "FailedBinding",
        format!("volume {wanted:?} already bound to a different claim."),
    );
    if has_annotation(&claim.metadata, ANN_BOUND_BY_CONTROLLER) {
        let mut plan = Plan::retry(format!(
            "invalid binding of claim {:?} to volume {wanted:?}: volume already claimed by {:?}",
            key_of(claim),
            super::objects::claim_ref_key(volume).unwrap_or_default()
        ));
        plan.events.push(taken);
        return plan;
    }
    pending(claim).with_event(taken)
}

fn bound(claim: &PersistentVolumeClaim, cluster: &Cluster) -> Plan {
    let name = volume_name(claim);
    if name.is_empty() {
        return lost(
            claim,
            "ClaimLost",
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
        );
    }
    let Some(volume) = cluster.volumes.get(name) else {
        return lost(
            claim,
            "ClaimLost",
            "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
        );
    };
    if claim_ref(volume).is_none() {
        return bind(volume, claim);
    }
    if Some(claim_ref_uid(volume)) != claim.metadata.uid.as_deref() {
        return lost(
            claim,
            "ClaimMisbound",
            "Two claims are bound to the same volume, this one is bound incorrectly",
        );
    }
    let plan = bind(volume, claim);
    if plan != Plan::nothing() {
        return plan;
    }
    let class = cluster.classes.get(claim_class(claim));
    expansion::decide(claim, volume, class)
}

/// The claim's status phase set to Lost, with the event (only when it changes).
fn lost(claim: &PersistentVolumeClaim, reason: &'static str, message: &str) -> Plan {
    if claim_phase(claim) == CLAIM_LOST {
        return Plan::nothing();
    }
    match claim_status(claim, CLAIM_LOST, None) {
        Ok(Some(updated)) => Plan::write(Write::ClaimStatus(updated)).with_event(event(
            claim,
            true,
            reason,
            message.to_owned(),
        )),
        Ok(None) => Plan::nothing(),
        Err(e) => Plan::retry(e),
    }
}

/// The claim's status phase set to Pending (no write when it is).
fn pending(claim: &PersistentVolumeClaim) -> Plan {
    match claim_status(claim, CLAIM_PENDING, None) {
        Ok(Some(updated)) => Plan::write(Write::ClaimStatus(updated)),
        Ok(None) => Plan::nothing(),
        Err(e) => Plan::retry(e),
    }
}

/// The next write of binding `volume` and `claim` together (upstream's `bind`): the volume's `claimRef`,
/// its phase, the claim's `volumeName` and annotations, the claim's status.
pub fn bind(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> Plan {
    if let Some(updated) = volume_bound_to(volume, claim) {
        return Plan::write(Write::Volume(updated));
    }
    if volume_phase(volume) != VOLUME_BOUND {
        let mut updated = volume.clone();
        let status = updated.status.get_or_insert_default();
        status.phase = Some(VOLUME_BOUND.into());
        status.message = None;
        return Plan::write(Write::VolumeStatus(updated));
    }
    if let Some(updated) = claim_bound_to(claim, volume) {
        return Plan::write(Write::Claim(updated));
    }
    match claim_status(claim, CLAIM_BOUND, Some(volume)) {
        Ok(Some(updated)) => Plan::write(Write::ClaimStatus(updated)),
        Ok(None) => Plan::nothing(),
        Err(e) => Plan::retry(e),
    }
}

/// The volume with its `claimRef` set to the claim (and `bound-by-controller` when the binding is ours),
/// or `None` when it already is (`GetBindVolumeToClaim`).
pub fn volume_bound_to(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Option<PersistentVolume> {
    let ours = !is_bound_to(volume, claim);
    let mut updated = volume.clone();
    let mut dirty = false;
    let same = claim_ref(volume).is_some_and(|r| {
        r.name == claim.metadata.name
            && r.namespace.as_deref().unwrap_or_default()
                == claim.metadata.namespace.as_deref().unwrap_or_default()
            && r.uid.as_deref().unwrap_or_default()
                == claim.metadata.uid.as_deref().unwrap_or_default()
    });
    if !same {
        updated.spec.get_or_insert_default().claim_ref = Some(reference_to(claim));
        dirty = true;
    }
    if ours && !has_annotation(&updated.metadata, ANN_BOUND_BY_CONTROLLER) {
        set_annotation(&mut updated.metadata, ANN_BOUND_BY_CONTROLLER, "yes");
        dirty = true;
    }
    dirty.then_some(updated)
}

/// The claim with `volumeName` (and `bound-by-controller` when we set it) and `bind-completed`, or `None`
/// when it has them (`bindClaimToVolume`).
pub fn claim_bound_to(
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
) -> Option<PersistentVolumeClaim> {
    let name = volume.metadata.name.as_deref().unwrap_or_default();
    let mut updated = claim.clone();
    let mut dirty = false;
    if volume_name(claim) != name {
        updated.spec.get_or_insert_default().volume_name = Some(name.to_owned());
        if !has_annotation(&updated.metadata, ANN_BOUND_BY_CONTROLLER) {
            set_annotation(&mut updated.metadata, ANN_BOUND_BY_CONTROLLER, "yes");
        }
        dirty = true;
    }
    if !has_annotation(&updated.metadata, ANN_BIND_COMPLETED) {
        set_annotation(&mut updated.metadata, ANN_BIND_COMPLETED, "yes");
        dirty = true;
    }
    dirty.then_some(updated)
}

/// The claim with its status in `phase` (`updateClaimStatus`): with a volume, its access modes, and its
/// capacity when the claim becomes bound (later differences are resizes in progress, kept); without one,
/// neither. `None` when nothing changes; an error for a volume without a storage capacity.
pub fn claim_status(
    claim: &PersistentVolumeClaim,
    phase: &str,
    volume: Option<&PersistentVolume>,
) -> Result<Option<PersistentVolumeClaim>, String> {
    let mut updated = claim.clone();
    let status = updated.status.get_or_insert_default();
    let mut dirty = false;
    if claim_phase(claim) != phase {
        status.phase = Some(phase.to_owned());
        dirty = true;
    }
    match volume {
        None => {
            if status.access_modes.take().is_some() | status.capacity.take().is_some() {
                dirty = true;
            }
        }
        Some(volume) => {
            let modes = volume.spec.as_ref().and_then(|s| s.access_modes.clone());
            if status.access_modes != modes {
                status.access_modes = modes;
                dirty = true;
            }
            if claim_phase(claim) != phase {
                let Some(have) = capacity_quantity(volume) else {
                    return Err(format!(
                        "PersistentVolume {:?} is without a storage capacity",
                        volume.metadata.name.as_deref().unwrap_or_default()
                    ));
                };
                let current = status.capacity.as_ref().and_then(|c| c.get("storage"));
                if current.is_none() || nanos(current) != nanos(Some(have)) {
                    status.capacity = volume.spec.as_ref().and_then(|s| s.capacity.clone());
                    dirty = true;
                }
            }
        }
    }
    Ok(dirty.then_some(updated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistentvolume::tests::{claim, class, cluster, volume};
    use serde_json::json;

    fn written(plan: &Plan) -> &Write {
        plan.write.as_ref().expect("a write")
    }

    fn reasons(plan: &Plan) -> Vec<&str> {
        plan.events.iter().map(|e| e.reason).collect()
    }

    /// Runs the claim's steps as the controller does, applying each write to the cluster.
    fn converge(mut c: Cluster, key: &str) -> (Cluster, Vec<&'static str>, Vec<String>) {
        let mut steps = Vec::new();
        let mut events = Vec::new();
        for _ in 0..10 {
            let plan = decide(&c.claims[key], &c);
            events.extend(
                plan.events
                    .iter()
                    .map(|e| format!("{}: {}", e.reason, e.message)),
            );
            let Some(write) = plan.write else { break };
            match write {
                Write::Volume(v) => {
                    steps.push("volume");
                    c.volumes.insert(v.metadata.name.clone().unwrap(), v);
                }
                Write::VolumeStatus(v) => {
                    steps.push("volume status");
                    c.volumes.insert(v.metadata.name.clone().unwrap(), v);
                }
                Write::Claim(v) => {
                    steps.push("claim");
                    c.claims.insert(key.to_owned(), v);
                }
                Write::ClaimStatus(v) => {
                    steps.push("claim status");
                    c.claims.insert(key.to_owned(), v);
                }
            }
        }
        (c, steps, events)
    }

    #[test]
    fn binding_writes_the_volume_first_then_the_claim() {
        let c = cluster(
            [volume(json!({"metadata": {"name": "pv1"}}))],
            [claim(json!({}))],
            [],
        );
        let (c, steps, _) = converge(c, "default/data");
        assert_eq!(steps, ["volume", "volume status", "claim", "claim status"]);
        let pv = &c.volumes["pv1"];
        let r = claim_ref(pv).unwrap();
        assert_eq!(
            (
                r.name.as_deref(),
                r.namespace.as_deref(),
                r.uid.as_deref(),
                r.kind.as_deref()
            ),
            (
                Some("data"),
                Some("default"),
                Some("claim-uid"),
                Some("PersistentVolumeClaim")
            )
        );
        assert_eq!(r.resource_version.as_deref(), Some("1"));
        assert_eq!(
            annotation(&pv.metadata, ANN_BOUND_BY_CONTROLLER),
            Some("yes")
        );
        assert_eq!(volume_phase(pv), "Bound");
        let pvc = &c.claims["default/data"];
        assert_eq!(volume_name(pvc), "pv1");
        assert_eq!(annotation(&pvc.metadata, ANN_BIND_COMPLETED), Some("yes"));
        assert_eq!(
            annotation(&pvc.metadata, ANN_BOUND_BY_CONTROLLER),
            Some("yes")
        );
        let status = pvc.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Bound"));
        assert_eq!(
            status.access_modes.as_deref(),
            Some(&["ReadWriteOnce".to_owned()][..])
        );
        assert_eq!(status.capacity.as_ref().unwrap()["storage"].0, "5Gi");
    }

    #[test]
    fn a_half_done_binding_is_finished_where_it_stopped() {
        // The volume was written, then the controller stopped.
        let pv = volume(json!({"metadata": {"name": "pv1",
            "annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}},
            "spec": {"claimRef": {"name": "data", "namespace": "default", "uid": "claim-uid"}},
            "status": {"phase": "Bound"}}));
        let (c, steps, _) = converge(cluster([pv], [claim(json!({}))], []), "default/data");
        assert_eq!(steps, ["claim", "claim status"]);
        assert_eq!(claim_phase(&c.claims["default/data"]), "Bound");
    }

    #[test]
    fn a_volume_a_provisioner_made_for_the_claim_is_bound_without_bound_by_controller() {
        let pv = volume(json!({"metadata": {"name": "pvc-claim-uid",
            "annotations": {"pv.kubernetes.io/provisioned-by": "gantry.io/local-path"}},
            "spec": {"storageClassName": "local-path", "persistentVolumeReclaimPolicy": "Delete",
                "claimRef": {"name": "data", "namespace": "default", "uid": "claim-uid"}},
            "status": {"phase": "Pending"}}));
        let pvc = claim(json!({"metadata": {"annotations": {
            "volume.kubernetes.io/selected-node": "n1"}}, "spec": {"storageClassName": "local-path"}}));
        let (c, steps, _) = converge(cluster([pv], [pvc], [class(json!({}))]), "default/data");
        assert_eq!(steps, ["volume status", "claim", "claim status"]);
        assert!(!has_annotation(
            &c.volumes["pvc-claim-uid"].metadata,
            ANN_BOUND_BY_CONTROLLER
        ));
        assert_eq!(volume_name(&c.claims["default/data"]), "pvc-claim-uid");
    }

    #[test]
    fn a_pre_bound_volume_keeps_its_user_binding() {
        let pv = volume(json!({"metadata": {"name": "pv1"},
            "spec": {"claimRef": {"name": "data", "namespace": "default"}}}));
        let (c, _, _) = converge(cluster([pv], [claim(json!({}))], []), "default/data");
        let pv = &c.volumes["pv1"];
        assert_eq!(claim_ref_uid(pv), "claim-uid");
        assert!(!has_annotation(&pv.metadata, ANN_BOUND_BY_CONTROLLER));
    }

    #[test]
    fn wait_for_first_consumer_waits_for_the_selected_node() {
        let pv = volume(
            json!({"metadata": {"name": "pv1"}, "spec": {"storageClassName": "local-path"}}),
        );
        let pvc = claim(json!({"spec": {"storageClassName": "local-path"}}));
        let c = cluster([pv], [pvc], [class(json!({}))]);
        let plan = decide(&c.claims["default/data"], &c);
        assert_eq!(plan.write, None, "already Pending");
        assert_eq!(reasons(&plan), ["WaitForFirstConsumer"]);
        assert_eq!(
            plan.events[0].message,
            "waiting for first consumer to be created before binding"
        );
        assert!(!plan.events[0].warning);
        // Once the scheduler picked a node, the unbound volume that may be used there is taken.
        let mut c = c;
        set_annotation(
            &mut c.claims.get_mut("default/data").unwrap().metadata,
            ANN_SELECTED_NODE,
            "n1",
        );
        let (c, steps, _) = converge(c, "default/data");
        assert_eq!(steps.len(), 4);
        assert_eq!(volume_name(&c.claims["default/data"]), "pv1");
    }

    #[test]
    fn without_a_volume_the_provisioner_is_asked_once_the_node_is_selected() {
        let pvc = claim(
            json!({"spec": {"storageClassName": "local-path"}, "metadata": {"annotations": {
            "volume.kubernetes.io/selected-node": "n1"}}}),
        );
        let (c, steps, events) = converge(cluster([], [pvc], [class(json!({}))]), "default/data");
        assert_eq!(steps, ["claim"]);
        let pvc = &c.claims["default/data"];
        assert_eq!(
            annotation(&pvc.metadata, ANN_STORAGE_PROVISIONER),
            Some("gantry.io/local-path")
        );
        assert_eq!(
            annotation(&pvc.metadata, ANN_BETA_STORAGE_PROVISIONER),
            Some("gantry.io/local-path")
        );
        assert!(events[0].starts_with(
            "ExternalProvisioning: Waiting for a volume to be created either by the external provisioner \
             'gantry.io/local-path' or manually by the system administrator."
        ));
    }

    #[test]
    fn an_immediate_class_is_provisioned_at_once_and_no_provisioner_fails() {
        let immediate = class(
            json!({"metadata": {"name": "fast"}, "provisioner": "example.com/disk",
            "volumeBindingMode": "Immediate"}),
        );
        let manual = class(
            json!({"metadata": {"name": "manual"}, "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate"}),
        );
        let pvc = claim(json!({"spec": {"storageClassName": "fast"}}));
        let c = cluster([], [pvc], [immediate.clone(), manual.clone()]);
        let plan = decide(&c.claims["default/data"], &c);
        let Write::Claim(updated) = written(&plan) else {
            panic!("{plan:?}")
        };
        assert_eq!(
            annotation(&updated.metadata, ANN_STORAGE_PROVISIONER),
            Some("example.com/disk")
        );

        let pvc = claim(json!({"spec": {"storageClassName": "manual"}}));
        let c = cluster([], [pvc], [immediate, manual]);
        let plan = decide(&c.claims["default/data"], &c);
        assert_eq!(plan.write, None);
        assert_eq!(reasons(&plan), ["ProvisioningFailed"]);
        assert_eq!(
            plan.events[0].message,
            "no volume plugin matched name: kubernetes.io/no-provisioner"
        );
        assert!(plan.events[0].warning);

        let pvc = claim(json!({"spec": {"storageClassName": "gone"}}));
        let c = cluster([], [pvc], []);
        let plan = decide(&c.claims["default/data"], &c);
        assert_eq!(
            plan.events[0].message,
            "storageclass.storage.k8s.io \"gone\" not found"
        );
    }

    #[test]
    fn no_class_and_no_volume_is_a_failed_binding_and_pending() {
        let pvc = claim(json!({"spec": {"storageClassName": ""}, "status": null}));
        let c = cluster([], [pvc], [class(json!({}))]);
        let plan = decide(&c.claims["default/data"], &c);
        let Write::ClaimStatus(updated) = written(&plan) else {
            panic!("{plan:?}")
        };
        assert_eq!(claim_phase(updated), "Pending");
        assert_eq!(reasons(&plan), ["FailedBinding"]);
        assert_eq!(
            plan.events[0].message,
            "no persistent volumes available for this claim and no storage class is set"
        );
    }

    #[test]
    fn a_claim_without_a_class_gets_the_default_one() {
        let default = class(json!({"metadata": {"annotations": {
            "storageclass.kubernetes.io/is-default-class": "true"}}}));
        let c = cluster([], [claim(json!({}))], [default]);
        let plan = decide(&c.claims["default/data"], &c);
        let Write::Claim(updated) = written(&plan) else {
            panic!("{plan:?}")
        };
        assert_eq!(claim_class(updated), "local-path");
    }

    #[test]
    fn a_named_volume_binds_only_to_that_volume() {
        let pvc = claim(json!({"spec": {"volumeName": "wanted"}}));
        let other = volume(json!({"metadata": {"name": "other"}}));
        let c = cluster([other.clone()], [pvc.clone()], []);
        assert_eq!(
            decide(&c.claims["default/data"], &c),
            Plan::nothing(),
            "waits, Pending"
        );

        let small = volume(
            json!({"metadata": {"name": "wanted"}, "spec": {"capacity": {"storage": "1Mi"}}}),
        );
        let c = cluster([other.clone(), small], [pvc.clone()], []);
        let plan = decide(&c.claims["default/data"], &c);
        assert_eq!(reasons(&plan), ["VolumeMismatch"]);
        assert_eq!(
            plan.events[0].message,
            "Cannot bind to requested volume \"wanted\": requested PV is too small"
        );

        let taken = volume(json!({"metadata": {"name": "wanted"},
            "spec": {"claimRef": {"name": "x", "namespace": "default", "uid": "x"}}}));
        let c = cluster([taken], [pvc.clone()], []);
        let plan = decide(&c.claims["default/data"], &c);
        assert_eq!(
            plan.events[0].message,
            "volume \"wanted\" already bound to a different claim."
        );
        assert_eq!(plan.retry, None);

        let good = volume(json!({"metadata": {"name": "wanted"}}));
        let (c, steps, _) = converge(cluster([other, good], [pvc], []), "default/data");
        assert_eq!(steps, ["volume", "volume status", "claim", "claim status"]);
        assert_eq!(claim_ref_uid(&c.volumes["wanted"]), "claim-uid");
        assert!(claim_ref(&c.volumes["other"]).is_none());
        // The user set volumeName: the claim does not say the controller did.
        assert!(!has_annotation(
            &c.claims["default/data"].metadata,
            ANN_BOUND_BY_CONTROLLER
        ));
    }

    #[test]
    fn a_bound_claim_whose_volume_is_gone_or_taken_is_lost() {
        let bound = claim(
            json!({"metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
            "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound", "capacity": {"storage": "5Gi"}}}),
        );
        let c = cluster([], [bound.clone()], []);
        let plan = decide(&c.claims["default/data"], &c);
        let Write::ClaimStatus(updated) = written(&plan) else {
            panic!()
        };
        assert_eq!(claim_phase(updated), "Lost");
        assert_eq!(updated.status.as_ref().unwrap().capacity, None);
        assert_eq!(reasons(&plan), ["ClaimLost"]);
        assert_eq!(
            plan.events[0].message,
            "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
        );
        assert!(plan.events[0].warning);
        // Lost stays, without a second event.
        let c = cluster([], [updated.clone()], []);
        assert_eq!(decide(&c.claims["default/data"], &c), Plan::nothing());

        let other = volume(json!({"metadata": {"name": "pv1"},
            "spec": {"claimRef": {"name": "data", "namespace": "default", "uid": "newer"}}}));
        let c = cluster([other], [bound], []);
        let plan = decide(&c.claims["default/data"], &c);
        assert_eq!(reasons(&plan), ["ClaimMisbound"]);
    }

    #[test]
    fn status_capacity_is_kept_once_bound() {
        let pv = volume(json!({"spec": {"capacity": {"storage": "5Gi"}}}));
        let becoming = claim(json!({}));
        let updated = claim_status(&becoming, "Bound", Some(&pv))
            .unwrap()
            .unwrap();
        assert_eq!(
            updated.status.unwrap().capacity.unwrap()["storage"].0,
            "5Gi"
        );
        let resized = claim(
            json!({"status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "2Gi"}}}),
        );
        assert_eq!(claim_status(&resized, "Bound", Some(&pv)).unwrap(), None);
        let no_capacity = volume(json!({"spec": {"capacity": null}}));
        assert!(claim_status(&becoming, "Bound", Some(&no_capacity)).is_err());
    }
}

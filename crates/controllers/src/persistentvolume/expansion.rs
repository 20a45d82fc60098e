//! Growing bound claims: a claim that requests more storage than its status has, of a class that allows
//! expansion, is grown when its volume is one of Gantry's local-path directories (there is nothing to
//! grow on the node: the volume's capacity, then the claim's, are set to the request, as a CSI resizer
//! without node expansion does). Other volumes wait for an external resizer, as upstream's expand
//! controller says.

use gantry_client::k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use gantry_client::k8s_openapi::api::storage::v1::StorageClass;

use super::objects::{
    CLAIM_BOUND, LOCAL_PATH_PROVISIONER, capacity, capacity_quantity, claim_capacity, claim_phase,
    provisioned_by, requested, requested_quantity,
};
use super::plan::{Plan, Write, event};

/// The event of a claim that an external resizer must grow (recorded once per requested size).
pub const EXTERNAL_EXPANDING: &str = "ExternalExpanding";
/// The events of a local-path resize.
pub const RESIZING: &str = "Resizing";
pub const RESIZE_SUCCESSFUL: &str = "VolumeResizeSuccessful";

/// The next step of growing the bound `claim` on `volume` (nothing when it has what it asks for).
pub fn decide(
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
    class: Option<&StorageClass>,
) -> Plan {
    let wanted = requested(claim);
    if claim_phase(claim) != CLAIM_BOUND || wanted <= claim_capacity(claim) {
        return Plan::nothing();
    }
    if class.is_none_or(|c| c.allow_volume_expansion != Some(true)) {
        return Plan::nothing();
    }
    if provisioned_by(volume) != Some(LOCAL_PATH_PROVISIONER) {
        return Plan::event(event(
            claim,
            true,
            EXTERNAL_EXPANDING,
            "waiting for an external controller to expand this PVC".into(),
        ));
    }
    let name = volume.metadata.name.as_deref().unwrap_or_default();
    if capacity(volume) < wanted {
        let mut grown = volume.clone();
        let request = requested_quantity(claim).cloned().unwrap_or_default();
        grown
            .spec
            .get_or_insert_default()
            .capacity
            .get_or_insert_default()
            .insert("storage".into(), request);
        return Plan::write(Write::Volume(grown)).with_event(event(
            claim,
            false,
            RESIZING,
            format!("External resizer is resizing volume {name}"),
        ));
    }
    let mut grown = claim.clone();
    let have = capacity_quantity(volume).cloned().unwrap_or_default();
    grown
        .status
        .get_or_insert_default()
        .capacity
        .get_or_insert_default()
        .insert("storage".into(), have);
    Plan::write(Write::ClaimStatus(grown)).with_event(event(
        claim,
        false,
        RESIZE_SUCCESSFUL,
        "Resize volume succeeded".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistentvolume::tests::{claim, class, volume};
    use serde_json::json;

    fn bound_claim(request: &str) -> PersistentVolumeClaim {
        claim(
            json!({"spec": {"storageClassName": "local-path", "volumeName": "pv1",
            "resources": {"requests": {"storage": request}}},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}),
        )
    }

    fn local_volume(size: &str) -> PersistentVolume {
        volume(json!({"metadata": {"name": "pv1",
            "annotations": {"pv.kubernetes.io/provisioned-by": "gantry.io/local-path"}},
            "spec": {"capacity": {"storage": size}}}))
    }

    #[test]
    fn a_local_path_claim_grows_its_volume_then_its_status() {
        let local = class(json!({}));
        let plan = decide(&bound_claim("2Gi"), &local_volume("1Gi"), Some(&local));
        let Some(Write::Volume(grown)) = &plan.write else {
            panic!("{plan:?}")
        };
        assert_eq!(capacity_quantity(grown).unwrap().0, "2Gi");
        assert_eq!(plan.events[0].reason, RESIZING);
        assert_eq!(
            plan.events[0].message,
            "External resizer is resizing volume pv1"
        );

        let plan = decide(&bound_claim("2Gi"), grown, Some(&local));
        let Some(Write::ClaimStatus(claim)) = &plan.write else {
            panic!("{plan:?}")
        };
        assert_eq!(
            claim.status.as_ref().unwrap().capacity.as_ref().unwrap()["storage"].0,
            "2Gi"
        );
        assert_eq!(plan.events[0].reason, RESIZE_SUCCESSFUL);
        assert_eq!(decide(claim, grown, Some(&local)), Plan::nothing());
    }

    #[test]
    fn nothing_grows_without_a_larger_request_or_an_expandable_class() {
        let local = class(json!({}));
        assert_eq!(
            decide(&bound_claim("1024Mi"), &local_volume("1Gi"), Some(&local)),
            Plan::nothing()
        );
        let fixed = class(json!({"allowVolumeExpansion": false}));
        assert_eq!(
            decide(&bound_claim("2Gi"), &local_volume("1Gi"), Some(&fixed)),
            Plan::nothing()
        );
        assert_eq!(
            decide(&bound_claim("2Gi"), &local_volume("1Gi"), None),
            Plan::nothing()
        );
    }

    #[test]
    fn other_volumes_wait_for_an_external_resizer() {
        let local = class(json!({}));
        let csi = volume(json!({"metadata": {"name": "pv1",
            "annotations": {"pv.kubernetes.io/provisioned-by": "example.com/disk"}}}));
        let plan = decide(&bound_claim("2Gi"), &csi, Some(&local));
        assert_eq!(plan.write, None);
        assert_eq!(plan.events[0].reason, EXTERNAL_EXPANDING);
        assert_eq!(
            plan.events[0].message,
            "waiting for an external controller to expand this PVC"
        );
    }
}

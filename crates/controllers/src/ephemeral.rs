//! Generic ephemeral volumes (upstream's ephemeral volume controller): a pod's `ephemeral` volume gets the
//! claim `<pod>-<volume>` made from its `volumeClaimTemplate`, owned by the pod (so the garbage collector
//! deletes it with the pod). It runs on the protection controller's pod watch ([`crate::volumeprotection`])
//! rather than a watch of its own.

use gantry_client::k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use gantry_client::kube::api::PostParams;
use gantry_client::{Api, Client};

/// The claims the pod's ephemeral volumes need (none for a pod being deleted).
pub fn claims_for(pod: &Pod) -> Vec<PersistentVolumeClaim> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod_name.clone(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    volumes
        .into_iter()
        .flatten()
        .filter_map(|volume| {
            let template = volume.ephemeral.as_ref()?.volume_claim_template.as_ref()?;
            let mut claim = PersistentVolumeClaim {
                metadata: template.metadata.clone().unwrap_or_default(),
                spec: Some(template.spec.clone()),
                status: None,
            };
            claim.metadata.name = Some(format!("{pod_name}-{}", volume.name));
            claim.metadata.namespace = pod.metadata.namespace.clone();
            claim.metadata.owner_references = Some(vec![owner.clone()]);
            Some(claim)
        })
        .collect()
}

/// Creates the claims the pod's ephemeral volumes need that do not exist yet.
pub async fn ensure(client: Client, claims: Vec<PersistentVolumeClaim>) {
    for claim in claims {
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
        match api.create(&PostParams::default(), &claim).await {
            Ok(_) => {}
            // Made before (by us: the scheduler reports a claim the pod does not own).
            Err(gantry_client::kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => tracing::warn!(
                claim = claim.metadata.name.as_deref().unwrap_or_default(),
                "ephemeral volume controller: creating a claim: {e}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ephemeral_volume_gets_a_claim_owned_by_the_pod() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [], "volumes": [
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}},
                {"name": "plain", "emptyDir": {}}
            ]}
        }))
        .unwrap();
        let claims = claims_for(&pod);
        assert_eq!(claims.len(), 1);
        let claim = &claims[0];
        assert_eq!(claim.metadata.name.as_deref(), Some("web-scratch"));
        assert_eq!(claim.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(claim.metadata.labels.as_ref().unwrap()["a"], "b");
        let owner = &claim.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Pod", "u1", Some(true))
        );
        let mut deleted = pod.clone();
        deleted.metadata.deletion_timestamp = Some(
            gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                gantry_client::k8s_openapi::jiff::Timestamp::now(),
            ),
        );
        assert!(claims_for(&deleted).is_empty());
    }
}

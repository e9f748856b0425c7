//! The PersistentVolumeClaim holding JENKINS_HOME: jobs, build history, credentials and the
//! plugin cache. It is the one child whose loss loses data, hence the care below.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::labels::{Component, Ownership, child_meta};
use super::{cluster_namespace, home_claim_name};
use crate::api::JenkinsCluster;
use crate::api::cluster::{DEFAULT_HOME_SIZE, DeletionPolicy};

/// The claim `<name>-home`, or `None` when the user brings `persistence.existingClaim` (which
/// the operator never touches). Owned by the cluster only under `deletionPolicy: Delete`; under
/// `Retain` it outlives the cluster and a cluster of the same name picks it up again.
pub fn home_claim(cluster: &JenkinsCluster) -> Option<PersistentVolumeClaim> {
    let persistence = &cluster.spec.persistence;
    if persistence.existing_claim.is_some() {
        return None;
    }
    let ownership = match persistence.deletion_policy {
        DeletionPolicy::Delete => Ownership::Owned,
        DeletionPolicy::Retain => Ownership::Unowned,
    };
    let size = persistence
        .size
        .clone()
        .unwrap_or_else(|| Quantity(DEFAULT_HOME_SIZE.into()));
    let namespace = cluster_namespace(cluster);
    Some(PersistentVolumeClaim {
        metadata: child_meta(
            cluster,
            &home_claim_name(cluster),
            Some(&namespace),
            Component::Home,
            ownership,
        ),
        spec: Some(PersistentVolumeClaimSpec {
            // One master pod at a time (strategy Recreate): a single-node volume is enough and
            // is what every storage class offers.
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: persistence.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), size)])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster;

    fn requested(claim: &PersistentVolumeClaim) -> String {
        let spec = claim.spec.as_ref().expect("spec");
        let requests = spec.resources.as_ref().and_then(|r| r.requests.as_ref());
        requests.expect("requests")["storage"].0.clone()
    }

    #[test]
    fn the_default_claim_is_20gi_and_survives_the_cluster() {
        let cluster = test_cluster("metadata: {name: ci, uid: u}\nspec: {}\n");
        let claim = home_claim(&cluster).expect("a claim");
        assert_eq!(claim.metadata.name.as_deref(), Some("ci-home"));
        assert_eq!(claim.metadata.namespace.as_deref(), Some("ci"));
        assert_eq!(requested(&claim), "20Gi");
        assert_eq!(claim.metadata.owner_references, None);
        let spec = claim.spec.expect("spec");
        assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
        assert_eq!(spec.storage_class_name, None);
    }

    #[test]
    fn under_delete_the_claim_is_owned_and_sized_as_asked() {
        let cluster = test_cluster(
            "metadata: {name: ci, uid: u}\n\
             spec: {persistence: {size: 50Gi, storageClassName: fast, deletionPolicy: Delete}}\n",
        );
        let claim = home_claim(&cluster).expect("a claim");
        assert_eq!(requested(&claim), "50Gi");
        let owners = claim.metadata.owner_references.clone().expect("owned");
        assert_eq!(owners[0].uid, "u");
        assert_eq!(
            claim.spec.expect("spec").storage_class_name.as_deref(),
            Some("fast")
        );
    }

    #[test]
    fn an_existing_claim_means_no_claim_of_ours() {
        let cluster =
            test_cluster("metadata: {name: ci}\nspec: {persistence: {existingClaim: data}}\n");
        assert_eq!(home_claim(&cluster), None);
        assert_eq!(home_claim_name(&cluster), "data");
    }
}

//! The labels and owner reference every child of a JenkinsCluster carries, and the metadata
//! built from them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::api::JenkinsCluster;

/// Label with the name of the JenkinsCluster a child belongs to. It is also put on namespaces,
/// which carry no owner reference, so that `kubectl get ns -l jenkins.ci/cluster=ci` finds them.
pub const CLUSTER_LABEL: &str = "jenkins.ci/cluster";

/// Value of `app.kubernetes.io/managed-by`.
pub const MANAGED_BY: &str = "jenkins-operator";

/// Which part of a Jenkins installation an object is (`app.kubernetes.io/component`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The namespace the master runs in, or the one agents run in.
    Namespace,
    /// JENKINS_HOME storage.
    Home,
    /// Generated credentials.
    Credentials,
    /// What the kubernetes plugin needs to launch agent pods.
    AgentRbac,
    /// The operator's configuration-as-code document.
    Casc,
    /// The pinned plugin list.
    Plugins,
    /// The Jenkins master Deployment, its pods and its Service.
    Master,
    /// The Ingress people reach Jenkins through.
    Ingress,
    /// A deployment target (namespace, ServiceAccount, RoleBinding).
    Environment,
}

impl Component {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Namespace => "namespace",
            Component::Home => "home",
            Component::Credentials => "credentials",
            Component::AgentRbac => "agent-rbac",
            Component::Casc => "casc",
            Component::Plugins => "plugins",
            Component::Master => "master",
            Component::Ingress => "ingress",
            Component::Environment => "environment",
        }
    }
}

/// The name of a JenkinsCluster. Objects read from the API server always have one; a missing
/// name only happens with hand-written input, which validation rejects before any builder runs.
pub fn cluster_name(cluster: &JenkinsCluster) -> &str {
    cluster.metadata.name.as_deref().unwrap_or_default()
}

/// The recommended labels plus `jenkins.ci/cluster`.
pub fn labels(cluster: &JenkinsCluster, component: Component) -> BTreeMap<String, String> {
    let name = cluster_name(cluster);
    let mut labels = selector_labels(cluster, component);
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    labels.insert(CLUSTER_LABEL.into(), name.into());
    labels
}

/// The subset of [`labels`] that selects pods: stable for the life of the cluster, because a
/// Deployment's selector cannot change.
pub fn selector_labels(cluster: &JenkinsCluster, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "jenkins".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            cluster_name(cluster).to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            component.as_str().to_string(),
        ),
    ])
}

/// The controller owner reference to the JenkinsCluster. Garbage collection deletes the child
/// with the cluster, and `blockOwnerDeletion` keeps the cluster around until the child is gone.
pub fn owner_reference(cluster: &JenkinsCluster) -> OwnerReference {
    OwnerReference {
        api_version: JenkinsCluster::api_version(&()).into_owned(),
        kind: JenkinsCluster::kind(&()).into_owned(),
        name: cluster_name(cluster).to_string(),
        uid: cluster.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether a child is garbage-collected with the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Carries the controller owner reference.
    Owned,
    /// Survives the cluster (namespaces, a retained volume).
    Unowned,
}

/// Metadata of a child: name, namespace, labels and, when owned, the owner reference.
pub fn child_meta(
    cluster: &JenkinsCluster,
    name: &str,
    namespace: Option<&str>,
    component: Component,
    ownership: Ownership,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels(cluster, component)),
        owner_references: match ownership {
            Ownership::Owned => Some(vec![owner_reference(cluster)]),
            Ownership::Unowned => None,
        },
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster;

    #[test]
    fn children_carry_the_recommended_labels_and_the_cluster_label() {
        let cluster = test_cluster("metadata: {name: ci, uid: u-1}\nspec: {}\n");
        let labels = labels(&cluster, Component::Casc);
        assert_eq!(labels["app.kubernetes.io/name"], "jenkins");
        assert_eq!(labels["app.kubernetes.io/instance"], "ci");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "jenkins-operator");
        assert_eq!(labels["app.kubernetes.io/component"], "casc");
        assert_eq!(labels["jenkins.ci/cluster"], "ci");
    }

    #[test]
    fn the_owner_reference_points_at_the_cluster_as_controller() {
        let cluster = test_cluster("metadata: {name: ci, uid: u-1}\nspec: {}\n");
        let owner = owner_reference(&cluster);
        assert_eq!(owner.api_version, "jenkins.ci/v1alpha1");
        assert_eq!(owner.kind, "JenkinsCluster");
        assert_eq!(owner.name, "ci");
        assert_eq!(owner.uid, "u-1");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
    }

    #[test]
    fn unowned_children_have_no_owner_reference() {
        let cluster = test_cluster("metadata: {name: ci, uid: u-1}\nspec: {}\n");
        let meta = child_meta(
            &cluster,
            "ci",
            None,
            Component::Namespace,
            Ownership::Unowned,
        );
        assert_eq!(meta.owner_references, None);
        assert_eq!(meta.name.as_deref(), Some("ci"));
    }
}

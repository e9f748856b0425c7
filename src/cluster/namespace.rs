//! The namespaces a JenkinsCluster needs: its own and, when different, the agents'. They carry
//! no owner reference: a namespace holds more than the operator put there (a namespace that
//! existed before must survive the cluster), so the operator never deletes one.

use k8s_openapi::api::core::v1::Namespace;

use super::labels::{Component, Ownership, child_meta};
use super::{agent_namespace, cluster_namespace};
use crate::api::JenkinsCluster;

/// A labelled, unowned Namespace.
pub fn namespace(cluster: &JenkinsCluster, name: &str, component: Component) -> Namespace {
    Namespace {
        metadata: child_meta(cluster, name, None, component, Ownership::Unowned),
        ..Namespace::default()
    }
}

/// The cluster's namespace, then the agent namespace when it differs.
pub fn namespaces(cluster: &JenkinsCluster) -> Vec<Namespace> {
    let own = cluster_namespace(cluster);
    let agents = agent_namespace(cluster);
    let mut out = vec![namespace(cluster, &own, Component::Namespace)];
    if agents != own {
        out.push(namespace(cluster, &agents, Component::Namespace));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster;

    #[test]
    fn the_namespace_defaults_to_the_cluster_name_and_is_not_owned() {
        let cluster = test_cluster("metadata: {name: ci, uid: u}\nspec: {}\n");
        let all = namespaces(&cluster);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].metadata.name.as_deref(), Some("ci"));
        assert_eq!(all[0].metadata.owner_references, None);
        assert_eq!(
            all[0].metadata.labels.as_ref().expect("labels")["jenkins.ci/cluster"],
            "ci"
        );
    }

    #[test]
    fn a_separate_agent_namespace_is_created_too() {
        let cluster = test_cluster(
            "metadata: {name: ci}\nspec: {namespace: tools, agents: {namespace: builds}}\n",
        );
        let names: Vec<_> = namespaces(&cluster)
            .into_iter()
            .filter_map(|ns| ns.metadata.name)
            .collect();
        assert_eq!(names, ["tools", "builds"]);
    }
}

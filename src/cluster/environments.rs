//! Deployment targets. For each environment: the target namespace, a ServiceAccount
//! `<name>-deploy-<env>` in the agent namespace that the `deploy-<env>` agent pods run as, and
//! a RoleBinding in the target namespace that lets it manage workloads there.
//!
//! The binding grants the built-in ClusterRole `edit`: it covers what a deploy step applies
//! (Deployments, Services, ConfigMaps, Secrets, Jobs, Ingresses, HPAs...) in that one
//! namespace, and by design cannot change RBAC or the namespace itself, so a pipeline cannot
//! widen its own rights. Validation keeps environments out of the cluster's and the agents'
//! namespaces, where `edit` would reach the admin Secret and other builds' pods.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};

use super::agent_namespace;
use super::labels::{Component, Ownership, child_meta, cluster_name};
use super::namespace::namespace;
use crate::api::JenkinsCluster;
use crate::api::cluster::EnvironmentSpec;

/// Image of the `kubectl` container of `deploy-<env>` agents when the environment names none:
/// Alpine with kubectl, helm, kustomize and a shell, pinned to a Kubernetes 1.33 client.
pub const DEFAULT_DEPLOY_IMAGE: &str = "alpine/k8s:1.33.4";

/// The ClusterRole deploy agents get in their environment's namespace.
pub const DEPLOY_CLUSTER_ROLE: &str = "edit";

/// `<name>-deploy-<env>`: the ServiceAccount and RoleBinding of an environment.
pub fn deploy_account_name(cluster: &JenkinsCluster, env: &EnvironmentSpec) -> String {
    format!("{}-deploy-{}", cluster_name(cluster), env.name)
}

/// `deploy-<env>`: the agent template name and Jenkins label of an environment.
pub fn deploy_template_name(env: &EnvironmentSpec) -> String {
    format!("deploy-{}", env.name)
}

/// The image of an environment's deploy agent.
pub fn deploy_image(env: &EnvironmentSpec) -> &str {
    env.image.as_deref().unwrap_or(DEFAULT_DEPLOY_IMAGE)
}

/// The target namespace: labelled, never owned, never deleted.
pub fn target_namespace(cluster: &JenkinsCluster, env: &EnvironmentSpec) -> Namespace {
    namespace(cluster, &env.namespace, Component::Environment)
}

/// The ServiceAccount deploy agents of this environment run as, in the agent namespace.
pub fn deploy_service_account(cluster: &JenkinsCluster, env: &EnvironmentSpec) -> ServiceAccount {
    let namespace = agent_namespace(cluster);
    ServiceAccount {
        metadata: child_meta(
            cluster,
            &deploy_account_name(cluster, env),
            Some(&namespace),
            Component::Environment,
            Ownership::Owned,
        ),
        ..ServiceAccount::default()
    }
}

/// Grants `edit` in the target namespace to the environment's ServiceAccount.
pub fn deploy_role_binding(cluster: &JenkinsCluster, env: &EnvironmentSpec) -> RoleBinding {
    let name = deploy_account_name(cluster, env);
    RoleBinding {
        metadata: child_meta(
            cluster,
            &name,
            Some(&env.namespace),
            Component::Environment,
            Ownership::Owned,
        ),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: DEPLOY_CLUSTER_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name,
            namespace: Some(agent_namespace(cluster)),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster;

    const CLUSTER: &str = "metadata: {name: ci, uid: u}\n\
        spec: {namespace: tools, environments: [{name: prod, namespace: app-prod}]}\n";

    #[test]
    fn an_environment_gets_a_namespace_that_is_never_owned() {
        let cluster = test_cluster(CLUSTER);
        let ns = target_namespace(&cluster, &cluster.spec.environments[0]);
        assert_eq!(ns.metadata.name.as_deref(), Some("app-prod"));
        assert_eq!(ns.metadata.owner_references, None);
        assert_eq!(
            ns.metadata.labels.expect("labels")["jenkins.ci/cluster"],
            "ci"
        );
    }

    #[test]
    fn deploy_agents_may_edit_the_target_namespace_and_nothing_else() {
        let cluster = test_cluster(CLUSTER);
        let env = &cluster.spec.environments[0];
        let account = deploy_service_account(&cluster, env);
        assert_eq!(account.metadata.name.as_deref(), Some("ci-deploy-prod"));
        assert_eq!(account.metadata.namespace.as_deref(), Some("tools"));

        let binding = deploy_role_binding(&cluster, env);
        assert_eq!(binding.metadata.name.as_deref(), Some("ci-deploy-prod"));
        assert_eq!(binding.metadata.namespace.as_deref(), Some("app-prod"));
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(binding.role_ref.name, "edit");
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!(subject.name, "ci-deploy-prod");
        assert_eq!(subject.namespace.as_deref(), Some("tools"));
        assert!(binding.metadata.owner_references.is_some());
    }

    #[test]
    fn the_deploy_image_is_pinned_unless_the_environment_names_one() {
        let cluster = test_cluster(CLUSTER);
        assert_eq!(
            deploy_image(&cluster.spec.environments[0]),
            "alpine/k8s:1.33.4"
        );
    }
}

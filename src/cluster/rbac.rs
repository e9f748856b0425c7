//! The identity of the Jenkins master and what it may do: the kubernetes plugin creates, watches
//! and deletes agent pods in the agent namespace, execs into them for `container()` steps and
//! reads their logs and events to report launch failures; the kubernetes-credentials-provider
//! plugin reads the Secrets of the master's own namespace (the credentials the JenkinsJob
//! controller copies there). Nothing else, and nowhere else.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::labels::{Component, Ownership, child_meta, cluster_name};
use super::{agent_namespace, cluster_namespace};
use crate::api::JenkinsCluster;

/// ServiceAccount `<name>` in the cluster's namespace: the master pod runs as it.
pub fn service_account(cluster: &JenkinsCluster) -> ServiceAccount {
    let namespace = cluster_namespace(cluster);
    ServiceAccount {
        metadata: child_meta(
            cluster,
            cluster_name(cluster),
            Some(&namespace),
            Component::AgentRbac,
            Ownership::Owned,
        ),
        ..ServiceAccount::default()
    }
}

fn rule(resource: &str, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec![resource.to_string()]),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    }
}

/// Role `<name>` in the agent namespace with the kubernetes plugin's needs. No access to
/// Secrets: the agent's connection secret travels in the pod spec, and secrets that pod
/// templates mount are resolved by the kubelet, not by Jenkins.
pub fn agent_role(cluster: &JenkinsCluster) -> Role {
    let namespace = agent_namespace(cluster);
    Role {
        metadata: child_meta(
            cluster,
            cluster_name(cluster),
            Some(&namespace),
            Component::AgentRbac,
            Ownership::Owned,
        ),
        rules: Some(vec![
            rule(
                "pods",
                &[
                    "create", "delete", "get", "list", "patch", "update", "watch",
                ],
            ),
            rule("pods/exec", &["create", "get"]),
            rule("pods/log", &["get", "list", "watch"]),
            rule("events", &["get", "list", "watch"]),
        ]),
    }
}

/// RoleBinding `<name>` in the agent namespace, granting [`agent_role`] to the master's
/// ServiceAccount (which lives in the cluster's namespace).
pub fn agent_role_binding(cluster: &JenkinsCluster) -> RoleBinding {
    let namespace = agent_namespace(cluster);
    let name = cluster_name(cluster);
    RoleBinding {
        metadata: child_meta(
            cluster,
            name,
            Some(&namespace),
            Component::AgentRbac,
            Ownership::Owned,
        ),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.to_string(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.to_string(),
            namespace: Some(cluster_namespace(cluster)),
            ..Subject::default()
        }]),
    }
}

/// `<name>-credentials`: the Role and RoleBinding of the credentials provider.
pub fn credentials_role_name(cluster: &JenkinsCluster) -> String {
    format!("{}-credentials", cluster_name(cluster))
}

/// Role `<name>-credentials` in the cluster's namespace: the kubernetes-credentials-provider
/// plugin lists and watches the Secrets of Jenkins' namespace and turns those labelled
/// `jenkins.io/credentials-type` into credentials. Limited to that namespace, which holds
/// only Jenkins' own Secrets and the credentials copied for JenkinsJobs.
pub fn credentials_role(cluster: &JenkinsCluster) -> Role {
    let namespace = cluster_namespace(cluster);
    Role {
        metadata: child_meta(
            cluster,
            &credentials_role_name(cluster),
            Some(&namespace),
            Component::Credentials,
            Ownership::Owned,
        ),
        rules: Some(vec![rule("secrets", &["get", "list", "watch"])]),
    }
}

/// RoleBinding `<name>-credentials`, granting [`credentials_role`] to the master.
pub fn credentials_role_binding(cluster: &JenkinsCluster) -> RoleBinding {
    let namespace = cluster_namespace(cluster);
    let name = credentials_role_name(cluster);
    RoleBinding {
        metadata: child_meta(
            cluster,
            &name,
            Some(&namespace),
            Component::Credentials,
            Ownership::Owned,
        ),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: cluster_name(cluster).to_string(),
            namespace: Some(namespace),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster;

    #[test]
    fn the_role_grants_exactly_what_the_kubernetes_plugin_needs() {
        let cluster = test_cluster("metadata: {name: ci}\nspec: {}\n");
        let rules = agent_role(&cluster).rules.expect("rules");
        let summary: Vec<(String, Vec<String>)> = rules
            .into_iter()
            .map(|r| (r.resources.expect("resources").join(","), r.verbs))
            .collect();
        let pods = [
            "create", "delete", "get", "list", "patch", "update", "watch",
        ];
        assert_eq!(summary[0], ("pods".into(), pods.map(String::from).to_vec()));
        assert_eq!(
            summary[1],
            ("pods/exec".into(), vec!["create".into(), "get".into()])
        );
        assert_eq!(summary[2].0, "pods/log");
        assert_eq!(summary[3].0, "events");
        assert_eq!(summary.len(), 4, "no access to secrets or anything else");
    }

    #[test]
    fn the_credentials_provider_reads_secrets_of_the_masters_namespace_only() {
        let cluster = test_cluster(
            "metadata: {name: ci}\nspec: {namespace: tools, agents: {namespace: builds}}\n",
        );
        let role = credentials_role(&cluster);
        assert_eq!(role.metadata.namespace.as_deref(), Some("tools"));
        let rules = role.rules.expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].resources, Some(vec!["secrets".to_string()]));
        assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
        let binding = credentials_role_binding(&cluster);
        assert_eq!(binding.role_ref.name, "ci-credentials");
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            ("ci", Some("tools"))
        );
    }

    #[test]
    fn with_a_separate_agent_namespace_the_binding_reaches_back_to_the_master() {
        let cluster = test_cluster(
            "metadata: {name: ci}\nspec: {namespace: tools, agents: {namespace: builds}}\n",
        );
        assert_eq!(
            service_account(&cluster).metadata.namespace.as_deref(),
            Some("tools")
        );
        assert_eq!(
            agent_role(&cluster).metadata.namespace.as_deref(),
            Some("builds")
        );
        let binding = agent_role_binding(&cluster);
        assert_eq!(binding.metadata.namespace.as_deref(), Some("builds"));
        assert_eq!(binding.role_ref.name, "ci");
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!(subject.name, "ci");
        assert_eq!(subject.namespace.as_deref(), Some("tools"));
    }
}

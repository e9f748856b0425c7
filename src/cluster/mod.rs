//! JenkinsCluster: validation of the spec, one pure builder per child object, and the
//! reconciler that applies them.
//!
//! [`desired`] is the whole build step: spec in, every child out, in apply order, with no I/O.

pub mod casc;
pub mod children;
pub mod deployment;
pub mod environments;
pub mod ingress;
pub mod jenkins_check;
pub mod labels;
pub mod namespace;
pub mod plugins;
pub mod rbac;
pub mod reconcile;
pub mod render;
pub mod secrets;
pub mod service;
pub mod validate;
pub mod volume;

use kube::Resource;
use serde::Serialize;

pub use children::{ApplyPolicy, Child};
pub use labels::cluster_name;
pub use secrets::GeneratedSecrets;
pub use validate::{InvalidSpec, validate};

use crate::api::JenkinsCluster;
use crate::api::cluster::AgentConnection;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "jenkins-operator";

/// Jenkins' HTTP port (container and Service).
pub const HTTP_PORT: i32 = 8080;

/// The inbound TCP agent port (container and Service), open only for `agents.connection: tcp`.
pub const AGENT_PORT: i32 = 50000;

/// uid and gid of the `jenkins` user in the Jenkins and inbound-agent images.
pub const JENKINS_UID: i64 = 1000;

/// Agent pods at once when `agents.containerCap` is unset.
pub const DEFAULT_CONTAINER_CAP: i32 = 10;

/// The namespace the master lives in: `spec.namespace`, defaulting to the cluster's name.
pub fn cluster_namespace(cluster: &JenkinsCluster) -> String {
    cluster
        .spec
        .namespace
        .clone()
        .unwrap_or_else(|| cluster_name(cluster).to_string())
}

/// The namespace agent pods run in: `agents.namespace`, defaulting to the cluster's namespace.
pub fn agent_namespace(cluster: &JenkinsCluster) -> String {
    cluster
        .spec
        .agents
        .namespace
        .clone()
        .unwrap_or_else(|| cluster_namespace(cluster))
}

/// Whether agents connect over Jenkins' TCP agent port ([`AGENT_PORT`]). With websocket agents
/// that port is closed in Jenkins and neither the pod nor the Service exposes it: agents use the
/// HTTP port like everyone else.
pub fn tcp_agents(cluster: &JenkinsCluster) -> bool {
    cluster.spec.agents.connection == AgentConnection::Tcp
}

/// `<name>.<namespace>.svc`: the Service's in-cluster host name.
pub fn service_host(cluster: &JenkinsCluster) -> String {
    format!(
        "{}.{}.svc",
        cluster_name(cluster),
        cluster_namespace(cluster)
    )
}

/// The URL path prefix Jenkins is served under, without a trailing slash; empty for none.
pub fn url_prefix(cluster: &JenkinsCluster) -> &str {
    let prefix = cluster.spec.master.prefix.as_deref().unwrap_or("");
    prefix.trim_end_matches('/')
}

/// Jenkins' in-cluster URL, with the prefix and a trailing slash:
/// `http://<name>.<namespace>.svc:8080<prefix>/`. The operator and the agents use it.
pub fn jenkins_url(cluster: &JenkinsCluster) -> String {
    let prefix = url_prefix(cluster);
    format!("http://{}:{HTTP_PORT}{prefix}/", service_host(cluster))
}

/// The URL people reach Jenkins at through `spec.ingress`: `https://<host><prefix>/` with TLS,
/// `http://...` without; `None` when the cluster has no Ingress.
pub fn external_url(cluster: &JenkinsCluster) -> Option<String> {
    let ingress = cluster.spec.ingress.as_ref()?;
    let scheme = if ingress.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let prefix = url_prefix(cluster);
    Some(format!("{scheme}://{}{prefix}/", ingress.host))
}

/// Jenkins' root URL (`unclassified.location.url`), which Jenkins puts in links and
/// notifications: the external URL when there is one, else the in-cluster URL.
pub fn root_url(cluster: &JenkinsCluster) -> String {
    external_url(cluster).unwrap_or_else(|| jenkins_url(cluster))
}

/// The Secret with the admin's `username` and `password`: `admin.existingSecret` or
/// `<name>-admin`.
pub fn admin_secret_name(cluster: &JenkinsCluster) -> String {
    match &cluster.spec.admin.existing_secret {
        Some(existing) => existing.clone(),
        None => format!("{}-admin", cluster_name(cluster)),
    }
}

/// `<name>-casc-reload`: the Secret with the JCasC reload token.
pub fn casc_reload_secret_name(cluster: &JenkinsCluster) -> String {
    format!("{}-casc-reload", cluster_name(cluster))
}

/// `<name>-casc`: the operator's JCasC ConfigMap.
pub fn casc_config_map_name(cluster: &JenkinsCluster) -> String {
    format!("{}-casc", cluster_name(cluster))
}

/// `<name>-plugins`: the plugins ConfigMap.
pub fn plugins_config_map_name(cluster: &JenkinsCluster) -> String {
    format!("{}-plugins", cluster_name(cluster))
}

/// The claim backing JENKINS_HOME: `persistence.existingClaim` or `<name>-home`.
pub fn home_claim_name(cluster: &JenkinsCluster) -> String {
    match &cluster.spec.persistence.existing_claim {
        Some(existing) => existing.clone(),
        None => format!("{}-home", cluster_name(cluster)),
    }
}

fn child<K>(object: &K, policy: ApplyPolicy) -> Child
where
    K: Resource<DynamicType = ()> + Serialize,
    K::Scope: 'static,
{
    Child::new(object, policy)
        .unwrap_or_else(|error| unreachable!("k8s-openapi objects always serialize: {error}"))
}

/// Every child of the cluster, in apply order: namespaces, Secrets, RBAC, ConfigMaps, the
/// claim, the Service, the Ingress (when asked for), the Deployment. The spec is validated
/// first; the cluster's `metadata.uid` goes into owner references as it is.
///
/// `user_casc_digest` summarizes the content of the user's JCasC ConfigMaps (see
/// [`casc::configuration_marker`]); pass an empty string when they are not known.
pub fn desired(
    cluster: &JenkinsCluster,
    secrets: &GeneratedSecrets,
    user_casc_digest: &str,
) -> Result<Vec<Child>, InvalidSpec> {
    validate(cluster)?;
    let apply = ApplyPolicy::Apply;
    let environments = &cluster.spec.environments;
    let mut out = Vec::new();

    // Namespaces first: everything else lives in them.
    out.extend(
        namespace::namespaces(cluster)
            .iter()
            .map(|ns| child(ns, apply)),
    );
    out.extend(
        environments
            .iter()
            .map(|env| child(&environments::target_namespace(cluster, env), apply)),
    );

    // Generated credentials, created once and never overwritten.
    if let Some(admin) = secrets::admin_secret(cluster, secrets) {
        out.push(child(&admin, ApplyPolicy::CreateOnce));
    }
    out.push(child(
        &secrets::casc_reload_secret(cluster, secrets),
        ApplyPolicy::CreateOnce,
    ));

    // Identities and rights: the master's, then each environment's.
    out.push(child(&rbac::service_account(cluster), apply));
    out.push(child(&rbac::agent_role(cluster), apply));
    out.push(child(&rbac::agent_role_binding(cluster), apply));
    out.push(child(&rbac::credentials_role(cluster), apply));
    out.push(child(&rbac::credentials_role_binding(cluster), apply));
    for env in environments {
        out.push(child(
            &environments::deploy_service_account(cluster, env),
            apply,
        ));
        out.push(child(
            &environments::deploy_role_binding(cluster, env),
            apply,
        ));
    }

    // Configuration, storage, then the master itself.
    out.push(child(
        &casc::casc_config_map(cluster, user_casc_digest),
        apply,
    ));
    out.push(child(&plugins::plugins_config_map(cluster), apply));
    if let Some(claim) = volume::home_claim(cluster) {
        out.push(child(&claim, apply));
    }
    out.push(child(&service::service(cluster), apply));
    if let Some(ingress) = ingress::ingress(cluster) {
        out.push(child(&ingress, apply));
    }
    out.push(child(&deployment::deployment(cluster), apply));
    Ok(out)
}

/// A JenkinsCluster from the YAML of its metadata and spec (tests only).
#[cfg(test)]
pub(crate) fn test_cluster(yaml: &str) -> JenkinsCluster {
    let document = format!("apiVersion: jenkins.ci/v1alpha1\nkind: JenkinsCluster\n{yaml}");
    serde_saphyr::from_str(&document).expect("test cluster YAML")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> GeneratedSecrets {
        GeneratedSecrets {
            admin_password: "pw".into(),
            casc_reload_token: "tok".into(),
        }
    }

    #[test]
    fn a_minimal_cluster_has_every_child_in_apply_order() {
        let cluster = test_cluster("metadata: {name: ci, uid: u}\nspec: {}\n");
        let children = desired(&cluster, &secrets(), "").expect("valid");
        let described: Vec<String> = children.iter().map(Child::describe).collect();
        assert_eq!(
            described,
            [
                "Namespace ci",
                "Secret ci/ci-admin",
                "Secret ci/ci-casc-reload",
                "ServiceAccount ci/ci",
                "Role ci/ci",
                "RoleBinding ci/ci",
                "Role ci/ci-credentials",
                "RoleBinding ci/ci-credentials",
                "ConfigMap ci/ci-casc",
                "ConfigMap ci/ci-plugins",
                "PersistentVolumeClaim ci/ci-home",
                "Service ci/ci",
                "Deployment ci/ci",
            ]
        );
        let policies: Vec<ApplyPolicy> = children.iter().map(|c| c.policy).collect();
        assert_eq!(policies[1], ApplyPolicy::CreateOnce);
        assert_eq!(policies[2], ApplyPolicy::CreateOnce);
        assert!(policies[3..].iter().all(|p| *p == ApplyPolicy::Apply));
    }

    #[test]
    fn environments_add_a_namespace_an_account_and_a_binding_each() {
        let cluster = test_cluster(
            "metadata: {name: ci, uid: u}\n\
             spec: {admin: {existingSecret: mine}, persistence: {existingClaim: data},\n\
             \x20 environments: [{name: dev, namespace: app-dev}]}\n",
        );
        let described: Vec<String> = desired(&cluster, &secrets(), "")
            .expect("valid")
            .iter()
            .map(Child::describe)
            .collect();
        assert!(described.contains(&"Namespace app-dev".to_string()));
        assert!(described.contains(&"ServiceAccount ci/ci-deploy-dev".to_string()));
        assert!(described.contains(&"RoleBinding app-dev/ci-deploy-dev".to_string()));
        assert!(
            !described
                .iter()
                .any(|d| d.contains("ci-admin") || d.contains("ci-home"))
        );
    }

    #[test]
    fn an_invalid_spec_builds_nothing() {
        let cluster = test_cluster(
            "metadata: {name: ci}\nspec: {persistence: {existingClaim: data, size: 1Gi}}\n",
        );
        let error = desired(&cluster, &secrets(), "").expect_err("invalid");
        assert!(error.to_string().contains("spec.persistence.existingClaim"));
    }

    #[test]
    fn an_ingress_comes_after_the_service_it_routes_to() {
        let cluster = test_cluster(
            "metadata: {name: ci, uid: u}\nspec: {ingress: {host: jenkins.example.com}}\n",
        );
        let described: Vec<String> = desired(&cluster, &secrets(), "")
            .expect("valid")
            .iter()
            .map(Child::describe)
            .collect();
        let tail: Vec<&str> = described[described.len() - 3..]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(tail, ["Service ci/ci", "Ingress ci/ci", "Deployment ci/ci"]);
    }

    #[test]
    fn the_root_url_is_the_external_one_when_there_is_an_ingress() {
        let plain = test_cluster("metadata: {name: ci}\nspec: {master: {prefix: /j}}\n");
        assert_eq!(external_url(&plain), None);
        assert_eq!(root_url(&plain), "http://ci.ci.svc:8080/j/");

        let http = test_cluster(
            "metadata: {name: ci}\nspec: {master: {prefix: /j}, ingress: {host: ci.example.com}}\n",
        );
        assert_eq!(root_url(&http), "http://ci.example.com/j/");
        let https = test_cluster(
            "metadata: {name: ci}\nspec: {ingress: {host: ci.example.com, tls: {}}}\n",
        );
        assert_eq!(root_url(&https), "https://ci.example.com/");
        // The operator and the agents stay inside the cluster.
        assert_eq!(jenkins_url(&https), "http://ci.ci.svc:8080/");
    }

    #[test]
    fn the_url_carries_the_prefix_and_one_trailing_slash() {
        let cluster =
            test_cluster("metadata: {name: ci}\nspec: {namespace: t, master: {prefix: /j}}\n");
        assert_eq!(jenkins_url(&cluster), "http://ci.t.svc:8080/j/");
        let plain = test_cluster("metadata: {name: ci}\nspec: {}\n");
        assert_eq!(jenkins_url(&plain), "http://ci.ci.svc:8080/");
    }
}

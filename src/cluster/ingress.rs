//! The Ingress that lets people reach Jenkins from outside the Kubernetes cluster, when
//! `spec.ingress` asks for one: one rule for the host, the prefix (or `/`) routed to the
//! Service's HTTP port, and TLS for the host when `tls` is set.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::labels::{Component, Ownership, child_meta, cluster_name};
use super::{HTTP_PORT, cluster_namespace, url_prefix};
use crate::api::JenkinsCluster;

/// Ingress `<name>` in the cluster's namespace, or `None` without `spec.ingress`.
pub fn ingress(cluster: &JenkinsCluster) -> Option<Ingress> {
    let spec = cluster.spec.ingress.as_ref()?;
    let namespace = cluster_namespace(cluster);
    let mut metadata = child_meta(
        cluster,
        cluster_name(cluster),
        Some(&namespace),
        Component::Ingress,
        Ownership::Owned,
    );
    if !spec.annotations.is_empty() {
        metadata.annotations = Some(spec.annotations.clone());
    }

    // Everything under the prefix goes to Jenkins; `Prefix` matches whole path segments, so
    // `/jenkins` does not catch `/jenkinsfoo`.
    let path = match url_prefix(cluster) {
        "" => "/".to_string(),
        prefix => prefix.to_string(),
    };
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: cluster_name(cluster).to_string(),
            port: Some(ServiceBackendPort {
                number: Some(HTTP_PORT),
                name: None,
            }),
        }),
        resource: None,
    };
    let rule = IngressRule {
        host: Some(spec.host.clone()),
        http: Some(HTTPIngressRuleValue {
            paths: vec![HTTPIngressPath {
                path: Some(path),
                path_type: "Prefix".into(),
                backend,
            }],
        }),
    };
    let tls = spec.tls.as_ref().map(|tls| {
        vec![IngressTLS {
            hosts: Some(vec![spec.host.clone()]),
            secret_name: tls.secret_name.clone(),
        }]
    });
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: spec.ingress_class_name.clone(),
            rules: Some(vec![rule]),
            tls,
            default_backend: None,
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster;

    fn rendered(yaml: &str) -> IngressSpec {
        ingress(&test_cluster(yaml))
            .expect("an Ingress")
            .spec
            .expect("spec")
    }

    #[test]
    fn no_ingress_is_built_without_spec_ingress() {
        assert_eq!(
            ingress(&test_cluster("metadata: {name: ci}\nspec: {}\n")),
            None
        );
    }

    #[test]
    fn the_host_routes_everything_to_the_services_http_port() {
        let cluster = test_cluster(
            "metadata: {name: ci, uid: u}\nspec:\n  namespace: tools\n  ingress:\n\
             \x20   host: jenkins.example.com\n    ingressClassName: nginx\n\
             \x20   annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 50m}\n",
        );
        let built = ingress(&cluster).expect("an Ingress");
        assert_eq!(built.metadata.name.as_deref(), Some("ci"));
        assert_eq!(built.metadata.namespace.as_deref(), Some("tools"));
        let labels = built.metadata.labels.expect("labels");
        assert_eq!(labels["app.kubernetes.io/component"], "ingress");
        assert_eq!(labels["jenkins.ci/cluster"], "ci");
        let owner = &built.metadata.owner_references.expect("owned")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("JenkinsCluster", "u")
        );
        let annotations = built.metadata.annotations.expect("annotations");
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/proxy-body-size"],
            "50m"
        );

        let spec = built.spec.expect("spec");
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        assert_eq!(spec.tls, None);
        let rules = spec.rules.expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].host.as_deref(), Some("jenkins.example.com"));
        let paths = &rules[0].http.as_ref().expect("http").paths;
        assert_eq!(paths.len(), 1);
        assert_eq!(paths[0].path.as_deref(), Some("/"));
        assert_eq!(paths[0].path_type, "Prefix");
        let service = paths[0]
            .backend
            .service
            .as_ref()
            .expect("a Service backend");
        assert_eq!(service.name, "ci");
        assert_eq!(service.port.as_ref().and_then(|p| p.number), Some(8080));
    }

    #[test]
    fn a_prefix_is_routed_as_a_path_prefix() {
        let spec = rendered(
            "metadata: {name: ci}\nspec: {master: {prefix: /jenkins}, \
             ingress: {host: ci.example.com}}\n",
        );
        let rules = spec.rules.expect("rules");
        let paths = &rules[0].http.as_ref().expect("http").paths;
        assert_eq!(paths[0].path.as_deref(), Some("/jenkins"));
    }

    #[test]
    fn tls_covers_the_host_with_the_named_secret_or_the_default_certificate() {
        let named = rendered(
            "metadata: {name: ci}\nspec: {ingress: {host: ci.example.com, \
             tls: {secretName: ci-tls}}}\n",
        );
        let tls = named.tls.expect("tls");
        assert_eq!(tls.len(), 1);
        assert_eq!(tls[0].hosts, Some(vec!["ci.example.com".to_string()]));
        assert_eq!(tls[0].secret_name.as_deref(), Some("ci-tls"));

        let default = rendered("metadata: {name: ci}\nspec: {ingress: {host: a.b, tls: {}}}\n");
        assert_eq!(default.tls.expect("tls")[0].secret_name, None);
    }
}

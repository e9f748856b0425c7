//! The Service in front of the master: HTTP for users, the operator and websocket agents, and
//! the inbound agent port for TCP agents.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{Component, Ownership, child_meta, cluster_name, selector_labels};
use super::{AGENT_PORT, HTTP_PORT, cluster_namespace};
use crate::api::JenkinsCluster;

/// Service `<name>`: ClusterIP, ports `http` 8080 and `agent` 50000, selecting the master pod.
pub fn service(cluster: &JenkinsCluster) -> Service {
    let namespace = cluster_namespace(cluster);
    let port = |name: &str, number: i32| ServicePort {
        name: Some(name.into()),
        port: number,
        protocol: Some("TCP".into()),
        // By name, so that the container port can move without touching the Service.
        target_port: Some(IntOrString::String(name.into())),
        ..ServicePort::default()
    };
    Service {
        metadata: child_meta(
            cluster,
            cluster_name(cluster),
            Some(&namespace),
            Component::Master,
            Ownership::Owned,
        ),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(cluster, Component::Master)),
            ports: Some(vec![port("http", HTTP_PORT), port("agent", AGENT_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster;

    #[test]
    fn the_service_exposes_http_and_agent_ports_by_name() {
        let cluster = test_cluster("metadata: {name: ci}\nspec: {namespace: tools}\n");
        let svc = service(&cluster);
        assert_eq!(svc.metadata.name.as_deref(), Some("ci"));
        assert_eq!(svc.metadata.namespace.as_deref(), Some("tools"));
        let spec = svc.spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        let ports: Vec<_> = spec
            .ports
            .expect("ports")
            .into_iter()
            .map(|p| {
                (
                    p.name.expect("named"),
                    p.port,
                    p.target_port.expect("target"),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [
                ("http".into(), 8080, IntOrString::String("http".into())),
                ("agent".into(), 50000, IntOrString::String("agent".into())),
            ]
        );
        let selector = spec.selector.expect("selector");
        assert_eq!(selector["app.kubernetes.io/instance"], "ci");
        assert_eq!(selector["app.kubernetes.io/component"], "master");
    }
}

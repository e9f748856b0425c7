//! The Service in front of the master: HTTP for users, the operator and websocket agents, and
//! the inbound agent port only when agents connect over TCP.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{Component, Ownership, child_meta, cluster_name, selector_labels};
use super::{AGENT_PORT, HTTP_PORT, cluster_namespace, tcp_agents};
use crate::api::JenkinsCluster;

/// Service `<name>`: ClusterIP, port `http` 8080 and, for TCP agents, `agent` 50000, selecting
/// the master pod.
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
    let mut ports = vec![port("http", HTTP_PORT)];
    if tcp_agents(cluster) {
        ports.push(port("agent", AGENT_PORT));
    }
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
            ports: Some(ports),
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

    #[test]
    fn websocket_agents_leave_only_the_http_port() {
        let cluster =
            test_cluster("metadata: {name: ci}\nspec: {agents: {connection: websocket}}\n");
        let ports = service(&cluster).spec.expect("spec").ports.expect("ports");
        let names: Vec<_> = ports.iter().map(|p| (p.name.as_deref(), p.port)).collect();
        assert_eq!(names, [(Some("http"), 8080)]);
    }
}

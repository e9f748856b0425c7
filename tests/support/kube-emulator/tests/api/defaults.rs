use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret, Service};
use kube::api::{Api, PostParams};
use kube_emulator::Emulator;
use serde_json::json;

use crate::writes::deployment;

#[tokio::test]
async fn deployments_get_the_server_defaults_a_controller_must_not_fight() {
    let emulator = Emulator::start().await;
    let api: Api<Deployment> = Api::default_namespaced(emulator.client());
    let mut wanted = deployment("web", "jenkins/jenkins:lts");
    let probe = json!({"httpGet": {"path": "/login", "port": 8080}});
    wanted
        .spec
        .as_mut()
        .expect("spec")
        .template
        .spec
        .as_mut()
        .expect("pod")
        .containers[0]
        .readiness_probe = Some(serde_json::from_value(probe).expect("probe"));
    let created = serde_json::to_value(
        api.create(&PostParams::default(), &wanted)
            .await
            .expect("create"),
    )
    .expect("json");

    let spec = &created["spec"];
    assert_eq!(
        spec["strategy"],
        json!({
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
        })
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let pod = &spec["template"]["spec"];
    assert_eq!(
        (pod["restartPolicy"].as_str(), pod["dnsPolicy"].as_str()),
        (Some("Always"), Some("ClusterFirst"))
    );
    assert_eq!(pod["schedulerName"], "default-scheduler");
    let container = &pod["containers"][0];
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    let probe = &container["readinessProbe"];
    assert_eq!(
        (
            probe["periodSeconds"].as_i64(),
            probe["timeoutSeconds"].as_i64()
        ),
        (Some(10), Some(1))
    );
    assert_eq!(
        (
            probe["successThreshold"].as_i64(),
            probe["failureThreshold"].as_i64()
        ),
        (Some(1), Some(3))
    );

    let latest = api
        .create(
            &PostParams::default(),
            &deployment("latest", "nginx:latest"),
        )
        .await
        .expect("create");
    let containers = latest
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers;
    assert_eq!(containers[0].image_pull_policy.as_deref(), Some("Always"));
}

#[tokio::test]
async fn services_claims_and_namespaces_get_their_defaults() {
    let emulator = Emulator::start().await;
    let client = emulator.client();
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080}]},
    }))
    .expect("service");
    let created = services
        .create(&PostParams::default(), &service)
        .await
        .expect("create");
    let spec = created.spec.expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert!(
        spec.cluster_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.96."))
    );
    let port = &spec.ports.expect("ports")[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));

    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds"},
        "stringData": {"password": "hunter2"},
    }))
    .expect("secret");
    let created = secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create");
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert!(created.string_data.is_none(), "stringData is write-only");
    assert_eq!(created.data.expect("data")["password"].0, b"hunter2");

    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "home"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .expect("claim");
    let created = claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("create");
    assert_eq!(
        created.spec.expect("spec").volume_mode.as_deref(),
        Some("Filesystem")
    );

    let namespaces: Api<Namespace> = Api::all(client);
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team"}})).expect("ns");
    let created = namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create");
    assert_eq!(
        created.status.and_then(|s| s.phase).as_deref(),
        Some("Active")
    );
    assert_eq!(
        created.metadata.labels.expect("labels")["kubernetes.io/metadata.name"],
        "team"
    );
}

#[tokio::test]
async fn built_in_rules_reject_what_a_real_server_rejects() {
    let emulator = Emulator::start().await;
    let client = emulator.client();
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());

    let mut mismatched = deployment("web", "nginx:1");
    let template = &mut mismatched.spec.as_mut().expect("spec").template;
    template.metadata.as_mut().expect("metadata").labels =
        Some([("app".into(), "other".into())].into());
    let status = crate::status_of(
        deployments
            .create(&PostParams::default(), &mismatched)
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.details.expect("details").causes[0].field,
        "spec.template.metadata.labels"
    );

    let mut long_label = deployment("web", "nginx:1");
    long_label.metadata.labels = Some([("hash".into(), "x".repeat(64))].into());
    let status = crate::status_of(
        deployments
            .create(&PostParams::default(), &long_label)
            .await,
    );
    assert_eq!(status.code, 422);

    deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1"))
        .await
        .expect("create");
    let reselect = kube::api::Patch::Merge(json!({
        "spec": {
            "selector": {"matchLabels": {"app": "new"}},
            "template": {"metadata": {"labels": {"app": "new"}}},
        },
    }));
    let status = crate::status_of(
        deployments
            .patch("web", &Default::default(), &reselect)
            .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("field is immutable"),
        "{}",
        status.message
    );

    // A Service replaced without its cluster IP keeps the allocated one.
    let services: Api<Service> = Api::default_namespaced(client);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]},
    }))
    .expect("service");
    let created = services
        .create(&PostParams::default(), &service)
        .await
        .expect("create");
    let ip = created.spec.as_ref().and_then(|s| s.cluster_ip.clone());
    let mut replacement = service.clone();
    replacement.metadata.resource_version = created.metadata.resource_version.clone();
    replacement
        .spec
        .as_mut()
        .expect("spec")
        .ports
        .as_mut()
        .expect("ports")[0]
        .port = 8080;
    let replaced = services
        .replace("web", &PostParams::default(), &replacement)
        .await
        .expect("replace");
    assert_eq!(replaced.spec.and_then(|s| s.cluster_ip), ip);
}

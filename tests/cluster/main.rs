//! The JenkinsCluster controller, end to end over HTTP: against the Kubernetes API emulator,
//! or a real cluster when `JENKINS_OPERATOR_TEST_KUBECONFIG` is set (see the README).

mod builds;
mod harness;
mod jenkins;
mod jenkins_pod;
mod jobs;

use std::collections::BTreeMap;

use harness::{Env, eventually};
use jenkins_operator::api::JenkinsCluster;
use jenkins_operator::api::cluster::DeletionPolicy;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const RESTART_HASH: &str = "jenkins.ci/restart-hash";

/// Creates the cluster and waits until it reports Ready for its current generation.
async fn create_and_wait_ready(env: &Env, cluster: &JenkinsCluster) -> JenkinsCluster {
    let api: Api<JenkinsCluster> = Api::all(env.client.clone());
    api.create(&PostParams::default(), cluster)
        .await
        .expect("create the JenkinsCluster");
    wait_ready(env, &cluster.name_any()).await
}

async fn wait_ready(env: &Env, name: &str) -> JenkinsCluster {
    let api: Api<JenkinsCluster> = Api::all(env.client.clone());
    eventually(&format!("JenkinsCluster {name} to be Ready"), || {
        let api = api.clone();
        async move {
            let cluster = api.get(name).await.ok()?;
            let status = cluster.status.as_ref()?;
            let ready = status.conditions.iter().any(|c| {
                c.type_ == "Ready"
                    && c.status == "True"
                    && c.observed_generation == cluster.metadata.generation
            });
            ready.then_some(cluster)
        }
    })
    .await
}

fn condition<'a>(
    cluster: &'a JenkinsCluster,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    cluster
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

async fn exists<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.expect("read").is_some()
}

async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(&format!("{name} to be deleted"), || {
        let api = api.clone();
        async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
    })
    .await
}

async fn patch_spec(env: &Env, name: &str, spec: serde_json::Value) {
    let api: Api<JenkinsCluster> = Api::all(env.client.clone());
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .expect("patch the JenkinsCluster spec");
}

async fn restart_hash(env: &Env, namespace: &str, name: &str) -> String {
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), namespace);
    let deployment = api.get(name).await.expect("the Deployment exists");
    let annotations: BTreeMap<String, String> = deployment
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    annotations
        .get(RESTART_HASH)
        .cloned()
        .expect("the pod template carries the restart hash")
}

#[tokio::test]
async fn a_new_cluster_gets_every_child_and_becomes_ready() {
    let env = Env::start().await;
    let cluster = env.example_cluster("cluster-agents-environments.yaml");
    let name = cluster.name_any();
    let ready = create_and_wait_ready(&env, &cluster).await;
    let ns = ready.spec.namespace.clone().unwrap_or_else(|| name.clone());
    let c = env.client.clone();

    assert!(exists(&Api::<Namespace>::all(c.clone()), &ns).await);
    assert!(
        exists(
            &Api::<PersistentVolumeClaim>::namespaced(c.clone(), &ns),
            &format!("{name}-home")
        )
        .await
    );
    assert!(
        exists(
            &Api::<Secret>::namespaced(c.clone(), &ns),
            &format!("{name}-admin")
        )
        .await
    );
    assert!(
        exists(
            &Api::<Secret>::namespaced(c.clone(), &ns),
            &format!("{name}-casc-reload")
        )
        .await
    );
    assert!(exists(&Api::<ServiceAccount>::namespaced(c.clone(), &ns), &name).await);
    // The kubernetes plugin's rights live where the agent pods run.
    let agents = ready
        .spec
        .agents
        .namespace
        .clone()
        .unwrap_or_else(|| ns.clone());
    assert!(exists(&Api::<Role>::namespaced(c.clone(), &agents), &name).await);
    assert!(exists(&Api::<RoleBinding>::namespaced(c.clone(), &agents), &name).await);
    assert!(
        exists(
            &Api::<ConfigMap>::namespaced(c.clone(), &ns),
            &format!("{name}-casc")
        )
        .await
    );
    assert!(
        exists(
            &Api::<ConfigMap>::namespaced(c.clone(), &ns),
            &format!("{name}-plugins")
        )
        .await
    );
    assert!(exists(&Api::<Service>::namespaced(c.clone(), &ns), &name).await);
    let deployment = Api::<Deployment>::namespaced(c.clone(), &ns)
        .get(&name)
        .await
        .expect("Deployment");
    let owner = &deployment.owner_references()[0];
    assert_eq!(owner.kind, "JenkinsCluster");
    assert_eq!(Some(&owner.uid), ready.metadata.uid.as_ref());
    for environment in &ready.spec.environments {
        assert!(exists(&Api::<Namespace>::all(c.clone()), &environment.namespace).await);
        let binding = format!("{name}-deploy-{}", environment.name);
        assert!(
            exists(
                &Api::<RoleBinding>::namespaced(c.clone(), &environment.namespace),
                &binding
            )
            .await
        );
    }
    let status = ready.status.expect("status");
    assert_eq!(status.observed_generation, ready.metadata.generation);
    assert_eq!(
        status.url.as_deref(),
        Some(format!("http://{name}.{ns}.svc:8080/").as_str())
    );
    assert_eq!(
        status.admin_secret.as_deref(),
        Some(format!("{name}-admin").as_str())
    );
}

#[tokio::test]
async fn a_converged_cluster_reconciles_without_writes() {
    let env = Env::start().await;
    let Some(emulator) = env.emulator_or_skip("zero writes", "the request log") else {
        return;
    };
    let cluster = env.example_cluster("cluster-agents-environments.yaml");
    let name = cluster.name_any();
    let ready = create_and_wait_ready(&env, &cluster).await;
    let ns = ready.spec.namespace.clone().unwrap_or_else(|| name.clone());

    // Let in-flight work settle, then watch several resyncs.
    tokio::time::sleep(env.settings.resync).await;
    emulator.clear_requests();
    let deployment_path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
    eventually("three more reconciles", || async {
        let reads = emulator
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == deployment_path)
            .count();
        (reads >= 3).then_some(())
    })
    .await;
    let writes: Vec<String> = emulator
        .requests()
        .iter()
        .filter(|r| !matches!(r.method.as_str(), "GET"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "a converged cluster wrote: {writes:#?}");
}

#[tokio::test]
async fn only_restart_worthy_changes_roll_the_master() {
    let env = Env::start().await;
    let cluster = env.example_cluster("cluster-agents-environments.yaml");
    let name = cluster.name_any();
    let ready = create_and_wait_ready(&env, &cluster).await;
    let ns = ready.spec.namespace.clone().unwrap_or_else(|| name.clone());
    let before = restart_hash(&env, &ns, &name).await;
    let casc_api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    let casc_before = casc_api
        .get(&format!("{name}-casc"))
        .await
        .expect("casc")
        .data;

    // An agent template change reaches the JCasC ConfigMap but not the pod template.
    let mut templates = serde_json::to_value(&ready.spec.agents.templates).expect("json");
    templates[0]["idleMinutes"] = json!(17);
    patch_spec(&env, &name, json!({ "agents": { "templates": templates } })).await;
    wait_ready(&env, &name).await;
    let casc_after = casc_api
        .get(&format!("{name}-casc"))
        .await
        .expect("casc")
        .data;
    assert_ne!(
        casc_before, casc_after,
        "the agent template change reaches JCasC"
    );
    assert_eq!(restart_hash(&env, &ns, &name).await, before);

    // A new image restarts the master.
    patch_spec(
        &env,
        &name,
        json!({ "master": { "image": "jenkins/jenkins:2.541.2-lts-jdk21" } }),
    )
    .await;
    wait_ready(&env, &name).await;
    let after_image = restart_hash(&env, &ns, &name).await;
    assert_ne!(after_image, before);

    // So does a plugin change.
    patch_spec(
        &env,
        &name,
        json!({ "plugins": [{ "name": "timestamper", "version": "1.27" }] }),
    )
    .await;
    wait_ready(&env, &name).await;
    assert_ne!(restart_hash(&env, &ns, &name).await, after_image);
}

#[tokio::test]
async fn deleting_a_retained_cluster_keeps_its_volume_and_a_namespace_that_existed() {
    let env = Env::start().await;
    let mut cluster = env.example_cluster("cluster-minimal.yaml");
    let name = cluster.name_any();
    let ns = env.name("preexisting");
    cluster.spec.namespace = Some(ns.clone());
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.clone());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the namespace");
    create_and_wait_ready(&env, &cluster).await;

    let clusters: Api<JenkinsCluster> = Api::all(env.client.clone());
    clusters
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&clusters, &name).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &ns);
    wait_gone(&deployments, &name).await;

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), &ns);
    assert!(
        exists(&claims, &format!("{name}-home")).await,
        "the volume is retained"
    );
    let live = namespaces
        .get(&ns)
        .await
        .expect("the namespace that existed is kept");
    assert!(live.metadata.deletion_timestamp.is_none());
}

#[tokio::test]
async fn deleting_a_cluster_with_delete_policy_removes_its_volume_and_namespace() {
    let env = Env::start().await;
    let mut cluster = env.example_cluster("cluster-minimal.yaml");
    cluster.spec.persistence.deletion_policy = DeletionPolicy::Delete;
    let name = cluster.name_any();
    let ready = create_and_wait_ready(&env, &cluster).await;
    let ns = ready.spec.namespace.clone().unwrap_or_else(|| name.clone());

    let clusters: Api<JenkinsCluster> = Api::all(env.client.clone());
    clusters
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&clusters, &name).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), &ns);
    wait_gone(&claims, &format!("{name}-home")).await;
    wait_gone(&Api::<Namespace>::all(env.client.clone()), &ns).await;
}

#[tokio::test]
async fn an_invalid_spec_stalls_with_a_message_and_recovers_when_fixed() {
    let env = Env::start().await;
    let mut cluster = env.example_cluster("cluster-minimal.yaml");
    let name = cluster.name_any();
    // Quantities pass the schema as int-or-string; the operator must catch them.
    cluster.spec.persistence.size = Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
        "banana".into(),
    ));
    let api: Api<JenkinsCluster> = Api::all(env.client.clone());
    api.create(&PostParams::default(), &cluster)
        .await
        .expect("the schema accepts it");

    let stalled = eventually("the cluster to be Stalled", || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let live = api.get(&name).await.ok()?;
            let stalled = condition(&live, "Stalled")?;
            (stalled.status == "True").then_some(stalled.clone())
        }
    })
    .await;
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(
        stalled.message.contains("spec.persistence.size"),
        "message names the field: {}",
        stalled.message
    );
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &name);
    assert!(
        !exists(&deployments, &name).await,
        "nothing is built from an invalid spec"
    );

    patch_spec(&env, &name, json!({ "persistence": { "size": "5Gi" } })).await;
    let ready = wait_ready(&env, &name).await;
    assert_eq!(
        condition(&ready, "Stalled").map(|c| c.status.as_str()),
        Some("False")
    );
}

/// The URL Jenkins is told it lives at, from the operator's JCasC ConfigMap.
async fn location_url(env: &Env, namespace: &str, name: &str) -> String {
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), namespace);
    let config_map = api
        .get(&format!("{name}-casc"))
        .await
        .expect("the casc ConfigMap");
    let text = config_map
        .data
        .and_then(|mut d| d.remove("jenkins.yaml"))
        .expect("jenkins.yaml");
    let document: serde_json::Value = serde_saphyr::from_str(&text).expect("JCasC YAML");
    document["unclassified"]["location"]["url"]
        .as_str()
        .expect("a location URL")
        .to_string()
}

#[tokio::test]
async fn an_ingress_is_added_routes_to_the_service_and_goes_when_removed() {
    let env = Env::start().await;
    let cluster = env.example_cluster("cluster-minimal.yaml");
    let name = cluster.name_any();
    let ready = create_and_wait_ready(&env, &cluster).await;
    let ns = ready.spec.namespace.clone().unwrap_or_else(|| name.clone());
    let ingresses: Api<Ingress> = Api::namespaced(env.client.clone(), &ns);
    assert!(!exists(&ingresses, &name).await);
    assert_eq!(
        location_url(&env, &ns, &name).await,
        format!("http://{name}.{ns}.svc:8080/")
    );

    // Added: the Ingress routes the host to the Service, and Jenkins' URL becomes https.
    let host = format!("{}.example.com", env.name("jenkins"));
    patch_spec(
        &env,
        &name,
        json!({"ingress": {"host": host, "tls": {"secretName": "ci-tls"}}}),
    )
    .await;
    wait_ready(&env, &name).await;
    let ingress = ingresses.get(&name).await.expect("the Ingress exists");
    let owner = &ingress.owner_references()[0];
    assert_eq!(Some(&owner.uid), ready.metadata.uid.as_ref());
    let spec = ingress.spec.expect("spec");
    let rule = &spec.rules.expect("rules")[0];
    assert_eq!(rule.host.as_deref(), Some(host.as_str()));
    let backend = rule.http.as_ref().expect("http").paths[0]
        .backend
        .service
        .clone()
        .expect("a Service backend");
    assert_eq!(backend.name, name);
    assert_eq!(backend.port.and_then(|p| p.number), Some(8080));
    assert_eq!(
        spec.tls.expect("tls")[0].secret_name.as_deref(),
        Some("ci-tls")
    );
    assert_eq!(
        location_url(&env, &ns, &name).await,
        format!("https://{host}/")
    );

    // Removed: the Ingress is deleted and Jenkins' URL is the in-cluster one again.
    patch_spec(&env, &name, json!({"ingress": null})).await;
    wait_ready(&env, &name).await;
    wait_gone(&ingresses, &name).await;
    assert_eq!(
        location_url(&env, &ns, &name).await,
        format!("http://{name}.{ns}.svc:8080/")
    );
}

/// The (name, port) pairs of the Service and of the Jenkins container, and the TCP agent port
/// the operator's JCasC gives Jenkins.
async fn agent_ports(env: &Env, namespace: &str, name: &str) -> (Vec<String>, Vec<String>, i64) {
    let service = Api::<Service>::namespaced(env.client.clone(), namespace)
        .get(name)
        .await
        .expect("the Service");
    let service_ports = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .map(|p| format!("{}:{}", p.name.unwrap_or_default(), p.port))
        .collect();
    let deployment = Api::<Deployment>::namespaced(env.client.clone(), namespace)
        .get(name)
        .await
        .expect("the Deployment");
    let container_ports = deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|pod| pod.containers[0].ports.clone().unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .map(|p| format!("{}:{}", p.name.unwrap_or_default(), p.container_port))
        .collect();
    let casc = Api::<ConfigMap>::namespaced(env.client.clone(), namespace)
        .get(&format!("{name}-casc"))
        .await
        .expect("the casc ConfigMap");
    let text = casc
        .data
        .and_then(|mut d| d.remove("jenkins.yaml"))
        .expect("jenkins.yaml");
    let document: serde_json::Value = serde_saphyr::from_str(&text).expect("JCasC YAML");
    let listener = document["jenkins"]["slaveAgentPort"]
        .as_i64()
        .expect("slaveAgentPort");
    (service_ports, container_ports, listener)
}

#[tokio::test]
async fn websocket_agents_close_port_50000_and_tcp_agents_open_it_again() {
    let env = Env::start().await;
    let cluster = env.example_cluster("cluster-minimal.yaml");
    let name = cluster.name_any();
    let ready = create_and_wait_ready(&env, &cluster).await;
    let ns = ready.spec.namespace.clone().unwrap_or_else(|| name.clone());
    let tcp = (
        vec!["http:8080".to_string(), "agent:50000".to_string()],
        vec!["http:8080".to_string(), "agent:50000".to_string()],
        50000,
    );
    assert_eq!(agent_ports(&env, &ns, &name).await, tcp);

    patch_spec(&env, &name, json!({"agents": {"connection": "websocket"}})).await;
    wait_ready(&env, &name).await;
    let http_only = (
        vec!["http:8080".to_string()],
        vec!["http:8080".to_string()],
        -1,
    );
    assert_eq!(agent_ports(&env, &ns, &name).await, http_only);

    patch_spec(&env, &name, json!({"agents": {"connection": "tcp"}})).await;
    wait_ready(&env, &name).await;
    assert_eq!(agent_ports(&env, &ns, &name).await, tcp);
}

/// Names of every object the operator made for a cluster, by kind, from the cluster label.
async fn children_by_kind(env: &Env, name: &str) -> BTreeMap<&'static str, Vec<String>> {
    let selector = format!("jenkins.ci/cluster={name}");
    let params = kube::api::ListParams::default().labels(&selector);
    let c = env.client.clone();
    let mut found = BTreeMap::new();
    macro_rules! collect {
        ($kind:literal, $type:ty) => {{
            let list = Api::<$type>::all(c.clone())
                .list_metadata(&params)
                .await
                .expect("list");
            let mut names: Vec<String> = list
                .items
                .iter()
                .map(|o| {
                    format!(
                        "{}/{}",
                        o.metadata.namespace.clone().unwrap_or_default(),
                        o.name_any()
                    )
                })
                .collect();
            names.sort();
            found.insert($kind, names);
        }};
    }
    collect!("Namespace", Namespace);
    collect!("PersistentVolumeClaim", PersistentVolumeClaim);
    collect!("Secret", Secret);
    collect!("ServiceAccount", ServiceAccount);
    collect!("Role", Role);
    collect!("RoleBinding", RoleBinding);
    collect!("ConfigMap", ConfigMap);
    collect!("Service", Service);
    collect!("Ingress", Ingress);
    collect!("Deployment", Deployment);
    found
}

#[tokio::test]
async fn api_errors_are_retried_until_the_cluster_converges() {
    let env = Env::start().await;
    let Some(emulator) = env.emulator_or_skip("API error retries", "fault injection") else {
        return;
    };
    // The first three attempts to apply the Deployment fail.
    emulator.inject(kube_emulator::Fault::FailNext {
        verb: Some(kube_emulator::Verb::Patch),
        resource: Some("deployments".into()),
        count: 3,
        code: 500,
    });
    let cluster = env.example_cluster("cluster-minimal.yaml");
    let name = cluster.name_any();
    create_and_wait_ready(&env, &cluster).await;

    let deployment_patches: Vec<u16> = emulator
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.resource.as_deref() == Some("deployments"))
        .map(|r| r.status)
        .collect();
    // An apply that creates the object answers 201 Created.
    assert_eq!(
        deployment_patches,
        vec![500, 500, 500, 201],
        "three failures, then success"
    );

    // Each failure was reported as a Warning event on the cluster.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(env.client.clone());
    let warnings = events
        .list(&Default::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str()))
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .collect::<Vec<_>>();
    assert!(
        !warnings.is_empty(),
        "reconcile errors become Warning events"
    );
    assert_eq!(warnings[0].reason.as_deref(), Some("KubernetesApiError"));
}

#[tokio::test]
async fn random_api_errors_and_dropped_watches_still_converge_without_duplicates() {
    let env = Env::start().await;
    let Some(emulator) = env.emulator_or_skip("chaos", "fault injection") else {
        return;
    };
    // The faults are for the controllers: the operator's start-up check of the CRDs (one read,
    // not retried) must be behind it, or the operator stops before it reconciles anything.
    eventually("the operator to list JenkinsJobs", || async {
        emulator
            .requests()
            .iter()
            .any(|r| r.resource.as_deref() == Some("jenkinsjobs"))
            .then_some(())
    })
    .await;
    emulator.inject(kube_emulator::Fault::ErrorRate {
        verb: None,
        resource: None,
        per_mille: 100,
        // kube retries 503 and 429 by itself; 500 reaches the operator.
        code: 500,
        seed: 7,
    });
    let cluster = env.example_cluster("cluster-agents-environments.yaml");
    let name = cluster.name_any();
    let api: Api<JenkinsCluster> = Api::all(env.client.clone());
    // The test's own create may hit an injected error too.
    eventually("the JenkinsCluster to be created", || {
        let api = api.clone();
        let cluster = cluster.clone();
        async move {
            match api.create(&PostParams::default(), &cluster).await {
                Ok(_) => Some(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Some(()),
                Err(_) => None,
            }
        }
    })
    .await;
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        emulator.inject(kube_emulator::Fault::DropWatches);
    }
    emulator.clear_faults();
    let ready = wait_ready(&env, &name).await;

    let children = children_by_kind(&env, &name).await;
    let ns = ready.spec.namespace.clone().unwrap_or_else(|| name.clone());
    assert_eq!(children["Deployment"], vec![format!("{ns}/{name}")]);
    assert_eq!(children["Service"], vec![format!("{ns}/{name}")]);
    assert_eq!(children["Ingress"], vec![format!("{ns}/{name}")]);
    assert_eq!(
        children["PersistentVolumeClaim"],
        vec![format!("{ns}/{name}-home")]
    );
    assert_eq!(
        children["Secret"],
        vec![
            format!("{ns}/{name}-admin"),
            format!("{ns}/{name}-casc-reload")
        ]
    );
    assert_eq!(
        children["ConfigMap"].len(),
        2,
        "casc and plugins: {:?}",
        children["ConfigMap"]
    );
}

#[tokio::test]
async fn an_operator_restarted_mid_convergence_converges() {
    let mut env = Env::start().await;
    let Some(emulator) = env
        .emulator_or_skip("restart", "control over Deployment rollout")
        .cloned()
    else {
        return;
    };
    // Hold the rollout so that the operator is stopped while the cluster is still coming up.
    emulator.set_deployments_become_ready(false);
    let cluster = env.example_cluster("cluster-minimal.yaml");
    let name = cluster.name_any();
    let api: Api<JenkinsCluster> = Api::all(env.client.clone());
    api.create(&PostParams::default(), &cluster)
        .await
        .expect("create");
    eventually("the cluster to be Reconciling", || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let live = api.get(&name).await.ok()?;
            (condition(&live, "Reconciling")?.status == "True").then_some(())
        }
    })
    .await;
    let admin_before = Api::<Secret>::namespaced(env.client.clone(), &name)
        .get(&format!("{name}-admin"))
        .await
        .expect("admin secret")
        .metadata
        .uid;

    env.stop_operator().await;
    env.start_operator().await;
    emulator.set_deployments_become_ready(true);
    wait_ready(&env, &name).await;

    // The restart did not regenerate credentials or duplicate anything.
    let admin_after = Api::<Secret>::namespaced(env.client.clone(), &name)
        .get(&format!("{name}-admin"))
        .await
        .expect("admin secret")
        .metadata
        .uid;
    assert_eq!(admin_before, admin_after);
    let children = children_by_kind(&env, &name).await;
    assert_eq!(children["Deployment"], vec![format!("{name}/{name}")]);
}

/// A spec change that removes an environment while the admin Secret is broken must still take
/// the environment's `edit` rights away once the cluster recovers: the stall reports the new
/// generation, so a prune that waits for the next generation change never comes.
#[tokio::test]
async fn an_environment_removed_during_an_admin_secret_stall_loses_its_rights() {
    let env = Env::start().await;
    let cluster = env.example_cluster("cluster-agents-environments.yaml");
    let name = cluster.name_any();
    let ready = create_and_wait_ready(&env, &cluster).await;
    let ns = ready.spec.namespace.clone().unwrap_or_else(|| name.clone());
    let dev = cluster.spec.environments[0].clone();
    let prod = &cluster.spec.environments[1];
    let prod_bindings: Api<RoleBinding> = Api::namespaced(env.client.clone(), &prod.namespace);
    let prod_binding = format!("{name}-deploy-prod");
    assert!(exists(&prod_bindings, &prod_binding).await);

    // One change: a Secret that does not exist yet, and prod removed.
    let secret_name = env.name("own-admin");
    patch_spec(
        &env,
        &name,
        json!({
            "admin": { "existingSecret": secret_name },
            "environments": [{ "name": dev.name, "namespace": dev.namespace }],
        }),
    )
    .await;
    let api: Api<JenkinsCluster> = Api::all(env.client.clone());
    eventually("the cluster to stall on the admin Secret", || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let live = api.get(&name).await.ok()?;
            let stalled = condition(&live, "Stalled")?;
            let current = stalled.observed_generation == live.metadata.generation;
            (current && stalled.reason == "AdminSecretInvalid").then_some(())
        }
    })
    .await;

    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &ns);
    let mut secret = Secret::default();
    secret.metadata.name = Some(secret_name.clone());
    secret.string_data = Some(BTreeMap::from([
        ("username".to_string(), "admin".to_string()),
        ("password".to_string(), "s3cret".to_string()),
    ]));
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the admin Secret");
    wait_ready(&env, &name).await;
    assert!(
        !exists(&prod_bindings, &prod_binding).await,
        "the removed environment still grants edit in {}",
        prod.namespace
    );
}

/// The API server refuses some changes for good (a claim's storage class is immutable): the
/// status must stop saying Ready and name what was refused, and recover once it is undone.
#[tokio::test]
async fn a_change_the_api_server_refuses_stalls_the_cluster_until_undone() {
    let env = Env::start().await;
    let cluster = env.example_cluster("cluster-minimal.yaml");
    let name = cluster.name_any();
    create_and_wait_ready(&env, &cluster).await;

    patch_spec(
        &env,
        &name,
        json!({ "persistence": { "storageClassName": "other" } }),
    )
    .await;
    let api: Api<JenkinsCluster> = Api::all(env.client.clone());
    let stalled = eventually("the cluster to stall on the refused claim", || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let live = api.get(&name).await.ok()?;
            let stalled = condition(&live, "Stalled")?;
            let current = stalled.observed_generation == live.metadata.generation;
            (current && stalled.status == "True").then_some(live)
        }
    })
    .await;
    let ready = condition(&stalled, "Ready").expect("Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason, "ApplyRejected");
    assert!(
        ready.message.contains("PersistentVolumeClaim") && ready.message.contains("immutable"),
        "the message names the object and the reason: {}",
        ready.message
    );

    patch_spec(
        &env,
        &name,
        json!({ "persistence": { "storageClassName": null } }),
    )
    .await;
    wait_ready(&env, &name).await;
}

/// `deletionPolicy: Retain` set while the operator is down, then the cluster deleted: the claim
/// still carries the owner reference `Delete` gave it, and garbage collection would take the
/// data the user just asked to keep.
#[tokio::test]
async fn a_volume_retained_while_the_operator_was_down_survives_deletion() {
    let mut env = Env::start().await;
    let mut cluster = env.example_cluster("cluster-minimal.yaml");
    cluster.spec.persistence.deletion_policy = DeletionPolicy::Delete;
    let name = cluster.name_any();
    let ready = create_and_wait_ready(&env, &cluster).await;
    let ns = ready.spec.namespace.clone().unwrap_or_else(|| name.clone());

    env.stop_operator().await;
    patch_spec(
        &env,
        &name,
        json!({ "persistence": { "deletionPolicy": "Retain" } }),
    )
    .await;
    let clusters: Api<JenkinsCluster> = Api::all(env.client.clone());
    clusters
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    env.start_operator().await;
    wait_gone(&clusters, &name).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &ns);
    wait_gone(&deployments, &name).await;

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), &ns);
    let claim = claims
        .get_opt(&format!("{name}-home"))
        .await
        .expect("read")
        .expect("the volume is retained");
    assert!(claim.owner_references().is_empty(), "{claim:?}");
}

/// Two clusters deploying to one namespace must not take turns rewriting it.
#[tokio::test]
async fn two_clusters_sharing_an_environment_namespace_converge_without_writes() {
    let env = Env::start().await;
    let Some(emulator) = env.emulator_or_skip("shared namespace writes", "the request log") else {
        return;
    };
    let shared = env.name("shared-dev");
    let mut names = Vec::new();
    for base in ["first", "second"] {
        let mut cluster = env.example_cluster("cluster-minimal.yaml");
        let name = env.name(base);
        cluster.metadata.name = Some(name.clone());
        cluster.spec.environments = vec![
            serde_json::from_value(json!({ "name": "dev", "namespace": shared }))
                .expect("an environment"),
        ];
        create_and_wait_ready(&env, &cluster).await;
        names.push(name);
    }
    for name in &names {
        wait_ready(&env, name).await;
    }

    tokio::time::sleep(env.settings.resync).await;
    emulator.clear_requests();
    eventually("three more reconciles of each cluster", || async {
        let reads = |name: &str| {
            let path = format!("/apis/apps/v1/namespaces/{name}/deployments/{name}");
            emulator
                .requests()
                .iter()
                .filter(|r| r.method == "GET" && r.path == path)
                .count()
        };
        names.iter().all(|n| reads(n) >= 3).then_some(())
    })
    .await;
    let writes: Vec<String> = emulator
        .requests()
        .iter()
        .filter(|r| !matches!(r.method.as_str(), "GET"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "converged clusters wrote: {writes:#?}");
}

/// A namespace the first cluster created and a second cluster also lives in stays when the
/// first is deleted with `deletionPolicy: Delete`: it holds the second one's master and data.
#[tokio::test]
async fn deleting_a_cluster_keeps_the_namespace_it_created_while_another_uses_it() {
    let env = Env::start().await;
    let shared = env.name("shared-ci");
    let mut names = Vec::new();
    for base in ["first", "second"] {
        let mut cluster = env.example_cluster("cluster-minimal.yaml");
        let name = env.name(base);
        cluster.metadata.name = Some(name.clone());
        cluster.spec.namespace = Some(shared.clone());
        cluster.spec.persistence.deletion_policy = DeletionPolicy::Delete;
        create_and_wait_ready(&env, &cluster).await;
        names.push(name);
    }
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let before = namespaces.get(&shared).await.expect("the namespace").uid();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), &shared);
    let claim = format!("{}-home", names[1]);
    let claim_before = claims.get(&claim).await.expect("the claim").uid();

    let clusters: Api<JenkinsCluster> = Api::all(env.client.clone());
    clusters
        .delete(&names[0], &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&clusters, &names[0]).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &shared);
    wait_gone(&deployments, &names[0]).await;
    let namespace = namespaces.get(&shared).await.expect("the namespace");
    assert_eq!(namespace.uid(), before, "the shared namespace was deleted");
    assert!(namespace.metadata.deletion_timestamp.is_none());
    let claim_after = claims.get_opt(&claim).await.expect("read").map(|c| c.uid());
    assert_eq!(claim_after, Some(claim_before), "the second cluster's data");
}

#[tokio::test]
async fn a_changed_namespace_is_refused_and_nothing_moves() {
    let env = Env::start().await;
    let cluster = env.example_cluster("cluster-minimal.yaml");
    let name = cluster.name_any();
    let ready = create_and_wait_ready(&env, &cluster).await;
    let old_ns = ready.spec.namespace.clone().unwrap_or_else(|| name.clone());
    assert_eq!(
        ready.status.as_ref().and_then(|s| s.namespace.as_deref()),
        Some(old_ns.as_str())
    );

    // The API server refuses this with the CRD's CEL rule.
    let new_ns = env.name("moved");
    let api: Api<JenkinsCluster> = Api::all(env.client.clone());
    let move_it = Patch::Merge(json!({ "spec": { "namespace": new_ns } }));
    match api.patch(&name, &PatchParams::default(), &move_it).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422);
            assert!(status.message.contains("spec.namespace cannot change"));
        }
        other => panic!("the API server lets spec.namespace change: {other:?}"),
    }

    // The operator refuses it too, for a CRD installed before the rule.
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let mut crd = crds
        .get("jenkinsclusters.jenkins.ci")
        .await
        .expect("the CRD");
    let schema = crd.spec.versions[0].schema.as_mut().expect("a schema");
    let root = schema.open_api_v3_schema.as_mut().expect("openAPIV3Schema");
    let properties = root.properties.as_mut().expect("properties");
    properties
        .get_mut("spec")
        .expect("spec")
        .x_kubernetes_validations = None;
    crds.replace(&crd.name_any(), &PostParams::default(), &crd)
        .await
        .expect("the CRD without the rule");
    patch_spec(&env, &name, json!({ "namespace": new_ns })).await;
    let stalled = eventually("the cluster to be Stalled", || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let live = api.get(&name).await.ok()?;
            let stalled = condition(&live, "Stalled")?;
            (stalled.status == "True" && stalled.reason == "NamespaceChanged")
                .then_some(stalled.clone())
        }
    })
    .await;
    assert!(stalled.message.contains(&old_ns), "{}", stalled.message);
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &new_ns);
    assert!(
        !exists(&deployments, &name).await,
        "nothing is built in the new namespace"
    );
    let old: Api<Deployment> = Api::namespaced(env.client.clone(), &old_ns);
    assert!(
        exists(&old, &name).await,
        "the installation stays where it is"
    );
}

#[tokio::test]
async fn deleting_a_cluster_keeps_the_namespace_that_holds_its_existing_claim() {
    let env = Env::start().await;
    let mut cluster = env.example_cluster("cluster-minimal.yaml");
    cluster.spec.persistence.deletion_policy = DeletionPolicy::Delete;
    cluster.spec.persistence.existing_claim = Some("precious".into());
    let name = cluster.name_any();
    let ns = cluster
        .spec
        .namespace
        .clone()
        .unwrap_or_else(|| name.clone());
    let api: Api<JenkinsCluster> = Api::all(env.client.clone());
    api.create(&PostParams::default(), &cluster)
        .await
        .expect("create");

    // The operator creates the namespace; the user puts the claim in it.
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    eventually("the namespace", || {
        let namespaces = namespaces.clone();
        let ns = ns.clone();
        async move { namespaces.get_opt(&ns).await.ok()?.map(|_| ()) }
    })
    .await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), &ns);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "precious" },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": { "requests": { "storage": "1Gi" } },
        }
    }))
    .expect("a claim");
    claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("create the claim");
    wait_ready(&env, &name).await;

    api.delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&api, &name).await;
    assert!(
        exists(&claims, "precious").await,
        "the existing claim survives"
    );
    let live = namespaces.get(&ns).await.expect("the namespace survives");
    assert!(live.metadata.deletion_timestamp.is_none());
}

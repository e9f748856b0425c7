//! A JenkinsCluster is Ready only when its Jenkins answers as the administrator with the pinned
//! plugins and the current configuration-as-code; JCasC changes are hot-reloaded.

use std::time::Duration;

use jenkins_emulator::{CascReload, Fault};
use jenkins_operator::api::JenkinsCluster;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::harness::{Env, eventually};
use super::{condition, create_and_wait_ready, patch_spec, restart_hash, wait_ready};

/// Waits until the cluster's Ready condition has `reason`, and returns the cluster.
async fn wait_reason(env: &Env, name: &str, status: &str, reason: &str) -> JenkinsCluster {
    let api: Api<JenkinsCluster> = Api::all(env.client.clone());
    eventually(&format!("Ready={status} with reason {reason}"), || {
        let api = api.clone();
        async move {
            let live = api.get(name).await.ok()?;
            let ready = condition(&live, "Ready")?;
            (ready.status == status && ready.reason == reason).then_some(live.clone())
        }
    })
    .await
}

#[tokio::test]
async fn ready_means_jenkins_answers_and_the_status_shows_its_version() {
    let env = Env::start().await;
    let cluster = env.example_cluster("cluster-minimal.yaml");
    let Some(jenkins) = env.jenkins_or_skip(&cluster.name_any(), "version") else {
        return;
    };
    let ready = create_and_wait_ready(&env, &cluster).await;

    let status = ready.status.clone().expect("status");
    assert_eq!(
        status.version.as_deref(),
        Some("2.516.1"),
        "the X-Jenkins version"
    );
    let message = &condition(&ready, "Ready").expect("Ready").message;
    assert!(message.contains("2.516.1"), "{message}");
    // The operator logged in with the generated admin password, not anonymously.
    let logged_in = jenkins
        .requests()
        .iter()
        .any(|r| r.path.ends_with("whoAmI/api/json") && r.user.as_deref() == Some("admin"));
    assert!(logged_in, "the operator asked Jenkins who it is, as admin");
    assert!(
        jenkins
            .system_message()
            .contains("Managed by jenkins-operator")
    );
}

#[tokio::test]
async fn a_restarting_jenkins_makes_the_cluster_reconcile_until_it_answers_again() {
    let env = Env::start().await;
    let cluster = env.example_cluster("cluster-minimal.yaml");
    let name = cluster.name_any();
    let Some(jenkins) = env.jenkins_or_skip(&name, "starting") else {
        return;
    };
    create_and_wait_ready(&env, &cluster).await;

    jenkins.set_starting(true);
    let starting = wait_reason(&env, &name, "False", "JenkinsStarting").await;
    assert_eq!(
        condition(&starting, "Reconciling").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(
        condition(&starting, "Stalled").map(|c| c.status.as_str()),
        Some("False")
    );

    jenkins.set_starting(false);
    wait_ready(&env, &name).await;
}

#[tokio::test]
async fn a_jenkins_silent_for_too_long_stalls_the_cluster_and_it_recovers_by_itself() {
    let mut env = Env::without_operator().await;
    env.settings.jenkins_stall_after = Duration::from_millis(500);
    env.start_operator().await;
    let cluster = env.example_cluster("cluster-minimal.yaml");
    let name = cluster.name_any();
    let Some(jenkins) = env.jenkins_or_skip(&name, "unreachable") else {
        return;
    };
    create_and_wait_ready(&env, &cluster).await;

    jenkins.inject(Fault::FailNext {
        path_prefix: "/".into(),
        count: u32::MAX,
        status: 502,
    });
    let stalled = wait_reason(&env, &name, "False", "JenkinsUnreachable").await;
    let stalled = match condition(&stalled, "Stalled") {
        Some(c) if c.status == "True" => stalled,
        _ => {
            eventually("Stalled=True", || {
                let api: Api<JenkinsCluster> = Api::all(env.client.clone());
                let name = name.clone();
                async move {
                    let live = api.get(&name).await.ok()?;
                    (condition(&live, "Stalled")?.status == "True").then_some(live)
                }
            })
            .await
        }
    };
    let message = &condition(&stalled, "Stalled").expect("Stalled").message;
    assert!(message.contains("has not answered"), "{message}");

    jenkins.clear_faults();
    wait_ready(&env, &name).await;
}

#[tokio::test]
async fn an_agent_template_change_is_hot_reloaded_without_restarting_the_master() {
    let env = Env::start().await;
    let cluster = env.example_cluster("cluster-agents-environments.yaml");
    let name = cluster.name_any();
    let Some(jenkins) = env.jenkins_or_skip(&name, "reload") else {
        return;
    };
    let ready = create_and_wait_ready(&env, &cluster).await;
    let ns = ready.spec.namespace.clone().unwrap_or_else(|| name.clone());
    let hash_before = restart_hash(&env, &ns, &name).await;
    let message_before = jenkins.system_message();
    let reloads_before = jenkins.casc_reload_count();

    let mut templates = serde_json::to_value(&ready.spec.agents.templates).expect("json");
    templates[1]["label"] = json!("node22");
    patch_spec(&env, &name, json!({ "agents": { "templates": templates } })).await;
    wait_ready(&env, &name).await;

    assert_eq!(
        restart_hash(&env, &ns, &name).await,
        hash_before,
        "no restart"
    );
    assert!(
        jenkins.casc_reload_count() > reloads_before,
        "JCasC was reloaded"
    );
    assert_ne!(
        jenkins.system_message(),
        message_before,
        "Jenkins runs the new configuration"
    );
    assert!(jenkins.casc_source().contains("node22"));
}

#[tokio::test]
async fn a_reload_that_reads_stale_files_is_repeated_once_the_kubelet_caught_up() {
    let env = Env::start_with_kubelet_delay(Duration::from_millis(1500)).await;
    let cluster = env.example_cluster("cluster-agents-environments.yaml");
    let name = cluster.name_any();
    let Some(jenkins) = env.jenkins_or_skip(&name, "kubelet lag") else {
        return;
    };
    let ready = create_and_wait_ready(&env, &cluster).await;
    let reloads_before = jenkins.casc_reload_count();

    let mut templates = serde_json::to_value(&ready.spec.agents.templates).expect("json");
    templates[0]["idleMinutes"] = json!(3);
    patch_spec(&env, &name, json!({ "agents": { "templates": templates } })).await;
    let pending = wait_reason(&env, &name, "False", "ConfigurationPending").await;
    assert_eq!(
        condition(&pending, "Reconciling").map(|c| c.status.as_str()),
        Some("True")
    );
    wait_ready(&env, &name).await;
    assert!(
        jenkins.casc_reload_count() >= reloads_before + 2,
        "one reload read stale files, a later one the new files"
    );
}

#[tokio::test]
async fn a_configuration_jenkins_rejects_is_reported_with_its_message() {
    let env = Env::start().await;
    let cluster = env.example_cluster("cluster-agents-environments.yaml");
    let name = cluster.name_any();
    let Some(jenkins) = env.jenkins_or_skip(&name, "rejected JCasC") else {
        return;
    };
    let ready = create_and_wait_ready(&env, &cluster).await;

    let token = {
        let ns = ready.spec.namespace.clone().unwrap_or_else(|| name.clone());
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(env.client.clone(), &ns);
        let secret = secrets
            .get(&format!("{name}-casc-reload"))
            .await
            .expect("reload secret");
        String::from_utf8(secret.data.expect("data")["token"].0.clone()).expect("utf-8")
    };
    let rejection = "Invalid configuration elements for type: class KubernetesCloud : foo";
    jenkins.set_casc_reload(Some(&token), CascReload::Fails(rejection.into()));

    let mut templates = serde_json::to_value(&ready.spec.agents.templates).expect("json");
    templates[0]["idleMinutes"] = json!(9);
    patch_spec(&env, &name, json!({ "agents": { "templates": templates } })).await;
    let rejected = wait_reason(&env, &name, "False", "ConfigurationRejected").await;
    let stalled = condition(&rejected, "Stalled").expect("Stalled");
    assert_eq!(stalled.status, "True");
    assert!(
        stalled.message.contains("KubernetesCloud : foo"),
        "{}",
        stalled.message
    );

    // Once Jenkins accepts it again, the cluster recovers without a spec change.
    jenkins.set_casc_reload(Some(&token), CascReload::Applied);
    wait_ready(&env, &name).await;
}

#[tokio::test]
async fn user_jcasc_config_maps_are_required_hot_reloaded_and_may_not_take_the_system_message() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Patch, PatchParams, PostParams};

    let env = Env::start().await;
    let mut cluster = env.example_cluster("cluster-minimal.yaml");
    cluster.spec.configuration_as_code.config_maps = vec!["extra-casc".into()];
    let name = cluster.name_any();
    let Some(jenkins) = env.jenkins_or_skip(&name, "user JCasC") else {
        return;
    };
    let ns = cluster
        .spec
        .namespace
        .clone()
        .unwrap_or_else(|| name.clone());
    let api: Api<JenkinsCluster> = Api::all(env.client.clone());
    api.create(&PostParams::default(), &cluster)
        .await
        .expect("create");

    // Without the ConfigMap the master cannot start: the cluster says which one is missing.
    let missing = wait_reason(&env, &name, "False", "CascConfigMapInvalid").await;
    let message = &condition(&missing, "Stalled").expect("Stalled").message;
    assert!(
        message.contains("extra-casc") && message.contains("does not exist"),
        "{message}"
    );

    // Labelled with the cluster, so that its changes are picked up at once.
    let config_maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
    let document = |text: &str| {
        serde_json::from_value::<ConfigMap>(json!({
            "metadata": {"name": "extra-casc", "labels": {"jenkins.ci/cluster": name}},
            "data": {"tools.yaml": text},
        }))
        .expect("a ConfigMap")
    };
    config_maps
        .create(
            &PostParams::default(),
            &document("unclassified:\n  timestamper: {}\n"),
        )
        .await
        .expect("create the user JCasC");
    wait_ready(&env, &name).await;
    assert!(
        jenkins.casc_source().contains("timestamper"),
        "the file is mounted"
    );
    let message_before = jenkins.system_message();
    let hash_before = restart_hash(&env, &ns, &name).await;

    // A change of its content is reloaded, not restarted.
    let apply = PatchParams::apply("jenkins-operator-tests").force();
    config_maps
        .patch(
            "extra-casc",
            &apply,
            &Patch::Apply(&document("unclassified:\n  x: 1\n")),
        )
        .await
        .expect("change the user JCasC");
    eventually("Jenkins to run the new user configuration", || {
        let jenkins = jenkins.clone();
        let before = message_before.clone();
        async move {
            let loaded =
                jenkins.system_message() != before && jenkins.casc_source().contains("x: 1");
            loaded.then_some(())
        }
    })
    .await;
    wait_ready(&env, &name).await;
    assert_eq!(
        restart_hash(&env, &ns, &name).await,
        hash_before,
        "no restart"
    );

    // The system message is how the operator tells what Jenkins loaded: users cannot set it.
    let taken = document("jenkins:\n  systemMessage: Welcome\n");
    config_maps
        .patch("extra-casc", &apply, &Patch::Apply(&taken))
        .await
        .expect("set a system message");
    let refused = wait_reason(&env, &name, "False", "CascConfigMapInvalid").await;
    let message = &condition(&refused, "Stalled").expect("Stalled").message;
    assert!(message.contains("systemMessage"), "{message}");
}

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_emulator::{Emulator, Fault, Verb};
use serde_json::json;

use crate::{config_map, status_of};

#[tokio::test]
async fn fail_next_answers_status_bodies_then_recovers() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    emulator.inject(Fault::FailNext {
        verb: Some(Verb::Create),
        resource: Some("configmaps".into()),
        count: 2,
        code: 500,
    });

    let first = status_of(
        api.create(&PostParams::default(), &config_map("a", &[]))
            .await,
    );
    assert_eq!((first.code, first.reason.as_str()), (500, "InternalError"));
    api.list(&ListParams::default())
        .await
        .expect("other verbs are not affected");
    let second = status_of(
        api.create(&PostParams::default(), &config_map("a", &[]))
            .await,
    );
    assert_eq!(second.code, 500);
    api.create(&PostParams::default(), &config_map("a", &[]))
        .await
        .expect("the third succeeds");

    // kube retries 429 and 503 after Retry-After: the log shows the failure, the call succeeds.
    emulator.clear_requests();
    emulator.inject(Fault::FailNext {
        verb: None,
        resource: None,
        count: 1,
        code: 429,
    });
    api.get("a").await.expect("retried after Retry-After");
    let codes: Vec<u16> = emulator.requests().iter().map(|r| r.status).collect();
    assert_eq!(codes, [429, 200]);

    emulator.inject(Fault::FailNext {
        verb: None,
        resource: None,
        count: 1,
        code: 500,
    });
    emulator.clear_faults();
    api.get("a").await.expect("cleared");
}

#[tokio::test]
async fn error_rate_is_deterministic_for_a_seed() {
    let outcomes = |seed: u64| async move {
        let emulator = Emulator::start().await;
        let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
        emulator.inject(Fault::ErrorRate {
            verb: Some(Verb::List),
            resource: None,
            per_mille: 300,
            code: 500,
            seed,
        });
        let mut failed = Vec::new();
        for _ in 0..40 {
            failed.push(api.list(&ListParams::default()).await.is_err());
        }
        failed
    };
    let (a, b) = (outcomes(7).await, outcomes(7).await);
    assert_eq!(a, b);
    let failures = a.iter().filter(|f| **f).count();
    assert!(
        (4..=20).contains(&failures),
        "about 30% of 40 fail, got {failures}"
    );
}

#[tokio::test]
async fn latency_delays_requests() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    emulator.inject(Fault::Latency(Duration::from_millis(150)));
    let started = Instant::now();
    api.list(&ListParams::default()).await.expect("list");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn the_request_log_records_verbs_resources_and_managers() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    api.create(&PostParams::default(), &config_map("a", &[]))
        .await
        .expect("create");
    emulator.clear_requests();

    let applied = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a"},
        "data": {"k": "v"},
    });
    api.patch("a", &PatchParams::apply("op"), &Patch::Apply(applied))
        .await
        .expect("apply");
    let _ = api.get("missing").await;

    let log = emulator.requests();
    assert_eq!(log.len(), 2);
    let apply = &log[0];
    assert_eq!((apply.method.as_str(), apply.verb), ("PATCH", Verb::Patch));
    assert_eq!(apply.resource.as_deref(), Some("configmaps"));
    assert_eq!(apply.namespace.as_deref(), Some("default"));
    assert_eq!(apply.name.as_deref(), Some("a"));
    assert_eq!(apply.field_manager.as_deref(), Some("op"));
    assert_eq!(
        apply.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(apply.status, 200);
    assert!(apply.is_write());
    assert_eq!((log[1].verb, log[1].status), (Verb::Get, 404));
}

#[tokio::test]
async fn the_kubeconfig_points_a_client_at_the_emulator() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::config::{KubeConfigOptions, Kubeconfig};

    let emulator = Emulator::start().await;
    let kubeconfig = Kubeconfig::from_yaml(&emulator.kubeconfig_yaml()).expect("valid kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).expect("client");
    let namespaces: Api<Namespace> = Api::all(client);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    assert!(emulator.url().starts_with("http://127.0.0.1:"));
}

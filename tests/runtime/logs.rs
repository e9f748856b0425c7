//! What the operator logs during a full run: structure, object identity, and no secrets.

use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::Value;

use crate::operator::{Backend, Launch, Operator, eventually};

/// A cluster name that appears nowhere else in the logs.
const CLUSTER: &str = "orion";

/// The secret values of the cluster's generated Secrets, plain and as base64.
async fn secret_values(backend: &Backend) -> Vec<String> {
    let api: Api<Secret> = Api::namespaced(backend.client.clone(), CLUSTER);
    let mut values = Vec::new();
    for name in [format!("{CLUSTER}-admin"), format!("{CLUSTER}-casc-reload")] {
        let secret = api.get(&name).await.expect("the generated Secret exists");
        for (key, value) in secret.data.unwrap_or_default() {
            // The user name `admin` is not a secret.
            if key == "username" {
                continue;
            }
            let plain = String::from_utf8(value.0.clone()).expect("a text secret");
            assert!(
                plain.len() >= 32,
                "{name}/{key} is too short to be generated"
            );
            values.push(base64::engine::general_purpose::STANDARD.encode(&value.0));
            values.push(plain);
        }
    }
    assert_eq!(
        values.len(),
        4,
        "the admin password and the reload token, two ways each"
    );
    values
}

/// Whether a JSON log line names the cluster by `kind` and `cluster` (its name; in the JSON
/// format `name` is the span's own name), in its own fields or in one of its spans.
fn names_the_cluster(line: &Value) -> bool {
    let names = |fields: &Value| {
        fields.get("kind").and_then(Value::as_str) == Some("JenkinsCluster")
            && fields.get("cluster").and_then(Value::as_str) == Some(CLUSTER)
    };
    let spans = line.get("spans").and_then(Value::as_array);
    names(line)
        || line.get("span").is_some_and(names)
        || spans.is_some_and(|spans| spans.iter().any(names))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_run_logs_json_lines_that_name_their_object_and_no_secret() {
    let backend = Backend::start().await;
    let mut operator = Operator::start(
        &backend,
        Launch::new("op-logs")
            .arg("--log-format")
            .arg("json")
            .rust_log("debug"),
    );

    // A full life: created, Ready, changed, Ready again, deleted.
    backend
        .create(&backend.example("cluster-minimal.yaml", CLUSTER))
        .await;
    backend.wait_ready(CLUSTER).await;
    let secrets = secret_values(&backend).await;
    let api: Api<jenkins_operator::api::JenkinsCluster> = Api::all(backend.client.clone());
    api.patch(
        CLUSTER,
        &Default::default(),
        &kube::api::Patch::Merge(serde_json::json!({"spec": {"master": {"javaOpts": "-Xmx1g"}}})),
    )
    .await
    .expect("change the cluster");
    eventually("the change to be observed", || async {
        let cluster = api.get(CLUSTER).await.ok()?;
        let status = cluster.status?;
        (status.observed_generation == cluster.metadata.generation).then_some(())
    })
    .await;
    backend.wait_ready(CLUSTER).await;
    backend.delete_and_wait_gone(CLUSTER).await;
    operator.terminate();
    let status = operator.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success());

    let logs = operator.logs();
    let mut about_the_cluster = 0;
    for line in logs.lines() {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        assert!(parsed.is_object(), "not a JSON object: {line}");
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a secret is logged: {line}"
            );
        }
        if line.contains(CLUSTER) {
            about_the_cluster += 1;
            assert!(
                names_the_cluster(&parsed),
                "a line about the cluster without its kind and name: {line}"
            );
        }
    }
    assert!(about_the_cluster > 0, "nothing logged about the cluster");
}

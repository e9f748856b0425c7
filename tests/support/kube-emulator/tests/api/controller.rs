use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use kube_emulator::{Emulator, Fault, Verb};
use serde_json::json;

use crate::{config_map, eventually};

/// Copies a ConfigMap's data into an owned Secret, with server-side apply.
async fn reconcile(map: Arc<ConfigMap>, client: Arc<Client>) -> Result<Action, kube::Error> {
    let secrets: Api<Secret> = Api::default_namespaced((*client).clone());
    let data: BTreeMap<String, ByteString> = map
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, ByteString(v.into_bytes())))
        .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(map.name_any()),
            owner_references: map.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    let mut applied = serde_json::to_value(&secret).map_err(kube::Error::SerdeError)?;
    applied["apiVersion"] = json!("v1");
    applied["kind"] = json!("Secret");
    let params = PatchParams::apply("copier").force();
    secrets
        .patch(&map.name_any(), &params, &Patch::Apply(applied))
        .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<Client>) -> Action {
    Action::requeue(std::time::Duration::from_millis(50))
}

async fn secret_value(secrets: &Api<Secret>, name: &str) -> Option<String> {
    let secret = secrets.get_opt(name).await.ok()??;
    let bytes = secret.data?.get("key")?.0.clone();
    String::from_utf8(bytes).ok()
}

#[tokio::test]
async fn a_controller_converges_through_watches_drops_and_garbage_collection() {
    let emulator = Emulator::start().await;
    let client = emulator.client();
    let maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    maps.create(&PostParams::default(), &config_map("app", &[]))
        .await
        .expect("create");

    let controller = Controller::new(maps.clone(), watcher::Config::default())
        .owns(secrets.clone(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(client.clone()))
        .for_each(|_| futures::future::ready(()));
    let task = tokio::spawn(controller);

    eventually("the secret is created", || async {
        secret_value(&secrets, "app").await.as_deref() == Some("value")
    })
    .await;
    let secret = secrets.get("app").await.expect("secret");
    let owner = &secret.metadata.owner_references.expect("owned")[0];
    assert_eq!(owner.kind, "ConfigMap");

    // A dropped watch must not lose the next change.
    emulator.inject(Fault::DropWatches);
    let change = Patch::Merge(json!({"data": {"key": "changed"}}));
    maps.patch("app", &PatchParams::default(), &change)
        .await
        .expect("change");
    eventually("the change reaches the secret", || async {
        secret_value(&secrets, "app").await.as_deref() == Some("changed")
    })
    .await;
    let applies = emulator
        .requests()
        .iter()
        .filter(|r| r.verb == Verb::Patch && r.field_manager.as_deref() == Some("copier"))
        .count();
    assert!(applies >= 2);

    // Deleting the owner collects the secret.
    maps.delete("app", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the secret is collected", || async {
        secrets.get_opt("app").await.ok().flatten().is_none()
    })
    .await;
    task.abort();
}

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube_emulator::Emulator;
use serde_json::json;

use crate::{config_map, eventually, status_of};

fn owned_by<K: Resource<DynamicType = ()>>(owner: &K, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: owner.meta().name.clone().expect("name"),
        uid: owner.meta().uid.clone().expect("uid"),
        controller: Some(true),
        block_owner_deletion: Some(block),
    }
}

fn dependent(name: &str, owner: OwnerReference, finalizers: &[&str]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: Some(vec![owner]),
            finalizers: (!finalizers.is_empty())
                .then(|| finalizers.iter().map(|f| f.to_string()).collect()),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    matches!(api.get(name).await, Err(kube::Error::Api(s)) if s.code == 404)
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_they_are_removed() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    let mut map = config_map("held", &[]);
    map.metadata.finalizers = Some(vec!["example.com/a".into()]);
    api.create(&PostParams::default(), &map)
        .await
        .expect("create");

    api.delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let deleting = api.get("held").await.expect("still there");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(deleting.metadata.deletion_grace_period_seconds, Some(0));

    let add = Patch::Merge(json!({"metadata": {"finalizers": ["example.com/a", "example.com/b"]}}));
    let status = status_of(api.patch("held", &PatchParams::default(), &add).await);
    assert_eq!(status.code, 422);

    let clear = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    api.patch("held", &PatchParams::default(), &clear)
        .await
        .expect("remove finalizers");
    assert!(gone(&api, "held").await);
}

#[tokio::test]
async fn background_deletion_collects_dependents_even_of_cluster_scoped_owners() {
    let emulator = Emulator::start().await;
    let client = emulator.client();
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let role: ClusterRole =
        serde_json::from_value(json!({"metadata": {"name": "owner"}})).expect("role");
    let role = roles
        .create(&PostParams::default(), &role)
        .await
        .expect("create owner");
    secrets
        .create(
            &PostParams::default(),
            &dependent("child", owned_by(&role, false), &[]),
        )
        .await
        .expect("child");
    let unrelated = Secret {
        metadata: ObjectMeta {
            name: Some("free".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &unrelated)
        .await
        .expect("free");

    roles
        .delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    eventually("the dependent is collected", || async {
        gone(&secrets, "child").await
    })
    .await;
    assert!(!gone(&secrets, "free").await);
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let emulator = Emulator::start().await;
    let client = emulator.client();
    let maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let owner = maps
        .create(&PostParams::default(), &config_map("owner", &[]))
        .await
        .expect("owner");
    secrets
        .create(
            &PostParams::default(),
            &dependent("blocker", owned_by(&owner, true), &["example.com/hold"]),
        )
        .await
        .expect("dependent");

    maps.delete("owner", &DeleteParams::foreground())
        .await
        .expect("delete");
    let waiting = maps.get("owner").await.expect("the owner waits");
    assert!(
        waiting
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    let blocker = secrets
        .get("blocker")
        .await
        .expect("dependent is being deleted");
    assert!(blocker.metadata.deletion_timestamp.is_some());

    let clear = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    secrets
        .patch("blocker", &PatchParams::default(), &clear)
        .await
        .expect("release");
    eventually("the owner goes once the dependent is gone", || async {
        gone(&maps, "owner").await
    })
    .await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_the_owner_reference() {
    let emulator = Emulator::start().await;
    let client = emulator.client();
    let maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let owner = maps
        .create(&PostParams::default(), &config_map("owner", &[]))
        .await
        .expect("owner");
    secrets
        .create(
            &PostParams::default(),
            &dependent("kept", owned_by(&owner, true), &[]),
        )
        .await
        .expect("dependent");

    maps.delete("owner", &DeleteParams::orphan())
        .await
        .expect("delete");
    assert!(gone(&maps, "owner").await);
    let kept = secrets.get("kept").await.expect("kept");
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn deleting_a_namespace_terminates_it_and_removes_its_content() {
    let emulator = Emulator::start().await;
    let client = emulator.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team"}})).expect("ns");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let mut held = config_map("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/a".into()]);
    maps.create(&PostParams::default(), &held)
        .await
        .expect("held");
    maps.create(&PostParams::default(), &config_map("plain", &[]))
        .await
        .expect("plain");

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .expect("delete");
    let terminating = namespaces.get("team").await.expect("still there");
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    assert!(gone(&maps, "plain").await);
    let status = status_of(
        maps.create(&PostParams::default(), &config_map("new", &[]))
            .await,
    );
    assert_eq!(status.code, 403);

    let clear = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    maps.patch("held", &PatchParams::default(), &clear)
        .await
        .expect("release");
    eventually("the namespace is removed", || async {
        gone(&namespaces, "team").await
    })
    .await;
}

#[tokio::test]
async fn delete_collection_deletes_what_the_selector_matches() {
    let emulator = Emulator::start().await;
    let maps: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        maps.create(&PostParams::default(), &config_map(name, &[("tier", tier)]))
            .await
            .expect("create");
    }

    let params = kube::api::ListParams::default().labels("tier=web");
    maps.delete_collection(&DeleteParams::default(), &params)
        .await
        .expect("delete collection");
    let left = maps.list(&Default::default()).await.expect("list");
    let names: Vec<_> = left
        .items
        .iter()
        .filter_map(|m| m.metadata.name.clone())
        .collect();
    assert_eq!(names, ["c"]);
}

#[tokio::test]
async fn the_first_deletion_timestamp_bumps_a_tracked_generation() {
    use k8s_openapi::api::apps::v1::Deployment;
    let emulator = Emulator::start().await;
    let api: Api<Deployment> = Api::default_namespaced(emulator.client());
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "held", "finalizers": ["example.com/a"]},
        "spec": {
            "selector": {"matchLabels": {"app": "held"}},
            "template": {
                "metadata": {"labels": {"app": "held"}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            },
        },
    }))
    .expect("a Deployment");
    let created = api
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));

    api.delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let deleting = api.get("held").await.expect("held by its finalizer");
    assert_eq!(deleting.metadata.generation, Some(2));

    // Deleting again changes nothing.
    api.delete("held", &DeleteParams::default())
        .await
        .expect("delete again");
    let again = api.get("held").await.expect("still held");
    assert_eq!(again.metadata.generation, Some(2));

    // Kinds without a generation do not get one.
    let maps: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    let mut map = config_map("held", &[]);
    map.metadata.finalizers = Some(vec!["example.com/a".into()]);
    maps.create(&PostParams::default(), &map)
        .await
        .expect("create");
    maps.delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let deleting = maps.get("held").await.expect("held by its finalizer");
    assert_eq!(deleting.metadata.generation, None);
}

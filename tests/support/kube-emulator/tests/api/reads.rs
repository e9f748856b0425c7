use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube_emulator::Emulator;

use crate::{config_map, create_config_maps, rv_of, status_of};

async fn names(api: &Api<ConfigMap>, params: ListParams) -> Vec<String> {
    let list = api.list(&params).await.expect("list");
    list.items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect()
}

#[tokio::test]
async fn getting_a_missing_object_is_a_not_found_status() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());

    let status = status_of(api.get("absent").await);

    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");
    assert_eq!(status.message, "configmaps \"absent\" not found");
    let details = status.details.expect("details");
    assert_eq!(details.name, "absent");
    assert_eq!(details.kind, "configmaps");
}

#[tokio::test]
async fn label_selectors_support_every_operator() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    create_config_maps(
        &api,
        &[
            config_map("a", &[("tier", "web"), ("env", "prod")]),
            config_map("b", &[("tier", "db"), ("env", "dev")]),
            config_map("c", &[("tier", "cache")]),
        ],
    )
    .await;

    let by = |selector: &str| ListParams::default().labels(selector);
    assert_eq!(names(&api, by("tier=web")).await, ["a"]);
    assert_eq!(names(&api, by("tier==db")).await, ["b"]);
    assert_eq!(names(&api, by("tier!=web")).await, ["b", "c"]);
    assert_eq!(names(&api, by("tier in (web,db)")).await, ["a", "b"]);
    assert_eq!(names(&api, by("tier notin (web,db)")).await, ["c"]);
    assert_eq!(names(&api, by("env")).await, ["a", "b"]);
    assert_eq!(names(&api, by("!env")).await, ["c"]);
    assert_eq!(names(&api, by("env,tier in (db,cache)")).await, ["b"]);
    let status = status_of(api.list(&by("tier in web")).await);
    assert_eq!(status.code, 400);
}

#[tokio::test]
async fn field_selectors_and_list_resource_version() {
    let emulator = Emulator::start().await;
    let client = emulator.client();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    create_config_maps(&api, &[config_map("a", &[]), config_map("b", &[])]).await;
    let in_system: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    create_config_maps(&in_system, &[config_map("a", &[])]).await;

    let by = |selector: &str| ListParams::default().fields(selector);
    assert_eq!(names(&api, by("metadata.name=b")).await, ["b"]);
    assert_eq!(names(&api, by("metadata.name!=b")).await, ["a"]);
    let everywhere: Api<ConfigMap> = Api::all(client);
    let list = everywhere
        .list(&by("metadata.namespace=kube-system"))
        .await
        .expect("list");
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.items[0].metadata.namespace.as_deref(),
        Some("kube-system")
    );
    let status = status_of(api.list(&by("data.key=value")).await);
    assert_eq!(status.code, 400);

    // The list's resourceVersion is the store's latest, newer than every item.
    let list = everywhere.list(&ListParams::default()).await.expect("list");
    let list_rv: u64 = list
        .metadata
        .resource_version
        .expect("rv")
        .parse()
        .expect("number");
    assert_eq!(list_rv, emulator.resource_version());
    assert!(list.items.iter().all(|i| rv_of(&i.metadata) <= list_rv));
}

#[tokio::test]
async fn lists_are_paged_with_limit_and_continue() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    create_config_maps(
        &api,
        &[
            config_map("a", &[]),
            config_map("b", &[]),
            config_map("c", &[]),
        ],
    )
    .await;

    let first = api
        .list(&ListParams::default().limit(2))
        .await
        .expect("first page");
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    assert_eq!(first.metadata.remaining_item_count, Some(1));
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect("next page");
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].metadata.name.as_deref(), Some("c"));
    assert!(second.metadata.continue_.is_none());
}

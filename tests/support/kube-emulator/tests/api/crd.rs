use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::Discovery;
use kube_emulator::Emulator;
use serde_json::{Value, json};

use crate::status_of;

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {
                "kind": "Widget",
                "plural": "widgets",
                "singular": "widget",
                "shortNames": ["wd"],
            },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["master"],
                            "properties": {
                                "master": {
                                    "type": "object",
                                    "required": ["image"],
                                    "properties": {
                                        "image": {
                                            "type": "string",
                                            "pattern": "^[a-z/]+:[a-z0-9.]+$",
                                        },
                                        "pullPolicy": {"type": "string", "default": "IfNotPresent"},
                                    },
                                },
                                "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
                                "mode": {"type": "string", "enum": ["fast", "safe"]},
                                "name": {"type": "string", "maxLength": 5},
                                "size": {"x-kubernetes-int-or-string": true},
                                "agents": {
                                    "type": "array",
                                    "x-kubernetes-list-type": "map",
                                    "x-kubernetes-list-map-keys": ["name"],
                                    "items": {
                                        "type": "object",
                                        "required": ["name"],
                                        "properties": {
                                            "name": {"type": "string"},
                                            "image": {"type": "string"},
                                        },
                                    },
                                },
                                "extra": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": true,
                                },
                            },
                        },
                        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                    },
                }},
            }],
        },
    })
}

fn widgets(emulator: &Emulator) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    Api::namespaced_with(emulator.client(), "default", &resource)
}

fn widget(spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec,
    }))
    .expect("widget")
}

async fn install(emulator: &Emulator) {
    let crds: Api<CustomResourceDefinition> = Api::all(emulator.client());
    crds.patch(
        "widgets.example.com",
        &PatchParams::apply("installer"),
        &Patch::Apply(crd()),
    )
    .await
    .expect("apply crd");
}

#[tokio::test]
async fn an_applied_crd_is_established_and_discoverable() {
    let emulator = Emulator::start().await;
    let client = emulator.client();
    let missing = status_of(widgets(&emulator).list(&Default::default()).await);
    assert_eq!(missing.code, 404);

    install(&emulator).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let stored = crds.get("widgets.example.com").await.expect("crd");
    let conditions = stored
        .status
        .expect("status")
        .conditions
        .expect("conditions");
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let discovery = Discovery::new(client).run().await.expect("discovery");
    let group = discovery
        .get("example.com")
        .expect("the group is discovered");
    let (resource, capabilities) = group.recommended_kind("Widget").expect("Widget");
    assert_eq!(resource.plural, "widgets");
    assert!(
        capabilities
            .subresources
            .iter()
            .any(|(r, _)| r.plural == "widgets/status" || r.plural == "status")
    );
    assert!(discovery.get("apps").is_some());

    widgets(&emulator)
        .create(
            &PostParams::default(),
            &widget(json!({"master": {"image": "jenkins:lts"}})),
        )
        .await
        .expect("a widget");
}

#[tokio::test]
async fn custom_resources_are_validated_with_field_causes() {
    let emulator = Emulator::start().await;
    install(&emulator).await;
    let api = widgets(&emulator);

    let bad = widget(json!({
        "master": {"image": "Not An Image"},
        "replicas": 9,
        "mode": "reckless",
        "name": "toolong",
        "size": true,
    }));
    let status = status_of(api.create(&PostParams::default(), &bad).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let details = status.details.expect("details");
    assert_eq!(
        (
            details.kind.as_str(),
            details.group.as_str(),
            details.name.as_str()
        ),
        ("Widget", "example.com", "w")
    );
    let mut fields: Vec<String> = details.causes.iter().map(|c| c.field.clone()).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "spec.master.image",
            "spec.mode",
            "spec.name",
            "spec.replicas",
            "spec.size"
        ]
    );
    assert!(
        status
            .message
            .starts_with("Widget.example.com \"w\" is invalid: ["),
        "{}",
        status.message
    );

    let status = status_of(
        api.create(&PostParams::default(), &widget(json!({"master": {}})))
            .await,
    );
    let causes = status.details.expect("details").causes;
    assert_eq!(
        (causes[0].field.as_str(), causes[0].message.as_str()),
        ("spec.master.image", "Required value")
    );
    assert_eq!(causes[0].reason, "FieldValueRequired");

    let wrong_type = status_of(
        api.create(
            &PostParams::default(),
            &widget(json!({"master": {"image": "a:1"}, "replicas": "two"})),
        )
        .await,
    );
    assert_eq!(
        wrong_type.details.expect("details").causes[0].field,
        "spec.replicas"
    );
}

#[tokio::test]
async fn custom_resources_are_pruned_defaulted_and_have_a_status_subresource() {
    let emulator = Emulator::start().await;
    install(&emulator).await;
    let api = widgets(&emulator);

    let created = api
        .create(
            &PostParams::default(),
            &widget(json!({
                "master": {"image": "jenkins:lts", "unknown": 1},
                "size": "10Gi",
                "extra": {"anything": {"goes": true}},
                "typo": "dropped",
            })),
        )
        .await
        .expect("create");
    let spec = &created.data["spec"];
    assert_eq!(
        spec["master"],
        json!({"image": "jenkins:lts", "pullPolicy": "IfNotPresent"})
    );
    assert_eq!(spec["extra"], json!({"anything": {"goes": true}}));
    assert!(spec.get("typo").is_none());
    assert_eq!(created.metadata.generation, Some(1));

    let status = Patch::Merge(json!({"status": {"phase": "Ready", "bogus": 1}}));
    let with_status = api
        .patch_status("w", &PatchParams::default(), &status)
        .await
        .expect("status");
    assert_eq!(with_status.data["status"], json!({"phase": "Ready"}));
    assert_eq!(with_status.metadata.generation, Some(1));

    let change = Patch::Merge(json!({"spec": {"replicas": 2}, "status": {"phase": "Lost"}}));
    let changed = api
        .patch("w", &PatchParams::default(), &change)
        .await
        .expect("spec");
    assert_eq!(changed.metadata.generation, Some(2));
    assert_eq!(changed.data["status"]["phase"], "Ready");

    let strategic = status_of(
        api.patch("w", &PatchParams::default(), &Patch::Strategic(json!({})))
            .await,
    );
    assert_eq!(strategic.code, 415);
}

fn applied_widget(agents: Value) -> Value {
    json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"master": {"image": "jenkins:lts"}, "agents": agents},
    })
}

fn agent_names(widget: &DynamicObject) -> Vec<String> {
    let agents = widget.data["spec"]["agents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    agents
        .iter()
        .filter_map(|a| a["name"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn apply_merges_map_lists_of_custom_resources_and_keeps_status_apart() {
    let emulator = Emulator::start().await;
    install(&emulator).await;
    let api = widgets(&emulator);
    let apply = |manager: &str| PatchParams::apply(manager);

    let a = applied_widget(json!([{"name": "a", "image": "x:1"}]));
    api.patch("w", &apply("one"), &Patch::Apply(&a))
        .await
        .expect("one");
    let b = applied_widget(json!([{"name": "b", "image": "y:1"}]));
    let both = api
        .patch("w", &apply("two"), &Patch::Apply(&b))
        .await
        .expect("two");
    assert_eq!(agent_names(&both), ["a", "b"]);

    let status = json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "status": {"phase": "Ready"},
    });
    api.patch_status("w", &apply("one"), &Patch::Apply(&status))
        .await
        .expect("status");

    // "two" stops applying agent b: it goes; "one"'s status (another subresource) stays.
    let none = applied_widget(json!([]));
    let after = api
        .patch("w", &apply("two"), &Patch::Apply(&none))
        .await
        .expect("two again");
    assert_eq!(agent_names(&after), ["a"]);
    assert_eq!(after.data["status"]["phase"], "Ready");
    let value = serde_json::to_value(&after).expect("json");
    let entries = value["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let status_entry = entries
        .iter()
        .find(|e| e["subresource"] == "status")
        .expect("status entry");
    assert_eq!(status_entry["manager"], "one");
    assert_eq!(
        status_entry["fieldsV1"],
        json!({"f:status": {"f:phase": {}}})
    );
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_custom_resources() {
    let emulator = Emulator::start().await;
    install(&emulator).await;
    let api = widgets(&emulator);
    api.create(
        &PostParams::default(),
        &widget(json!({"master": {"image": "jenkins:lts"}})),
    )
    .await
    .expect("widget");

    let crds: Api<CustomResourceDefinition> = Api::all(emulator.client());
    crds.delete("widgets.example.com", &Default::default())
        .await
        .expect("delete crd");
    let status = status_of(api.get("w").await);
    assert_eq!(status.code, 404);
    install(&emulator).await;
    assert!(
        api.list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

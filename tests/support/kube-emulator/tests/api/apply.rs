use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_emulator::Emulator;
use serde_json::{Value, json};

use crate::{rv_of, status_of};

fn apply(manager: &str) -> PatchParams {
    PatchParams::apply(manager)
}

fn managed_fields(object: &impl serde::Serialize, manager: &str) -> Value {
    let value = serde_json::to_value(object).expect("serialize");
    let entries = value["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    entries
        .into_iter()
        .find(|e| e["manager"] == manager)
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn apply_creates_records_fields_v1_and_an_unchanged_apply_is_not_a_write() {
    let emulator = Emulator::start().await;
    let api: Api<Deployment> = Api::default_namespaced(emulator.client());
    let applied = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1"}]},
            },
        },
    });
    let created = api
        .patch("web", &apply("op"), &Patch::Apply(&applied))
        .await
        .expect("apply");

    let fields = managed_fields(&created, "op");
    let container =
        &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"main\"}"];
    assert_eq!(container, &json!({".": {}, "f:name": {}, "f:image": {}}));
    assert_eq!(fields["f:metadata"]["f:labels"], json!({"f:app": {}}));
    assert!(
        fields["f:spec"].get("f:replicas").is_none(),
        "defaults are nobody's"
    );
    let value = serde_json::to_value(&created).expect("serialize");
    let entry = &value["metadata"]["managedFields"][0];
    assert_eq!(
        (entry["operation"].as_str(), entry["fieldsType"].as_str()),
        (Some("Apply"), Some("FieldsV1"))
    );

    // The emulated Deployment controller may have written the status meanwhile.
    let current = api.get("web").await.expect("get");
    let again = api
        .patch("web", &apply("op"), &Patch::Apply(&applied))
        .await
        .expect("apply again");
    assert_eq!(rv_of(&again.metadata), rv_of(&current.metadata));
}

#[tokio::test]
async fn fields_a_manager_stops_applying_go_unless_another_manager_owns_them() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    let config = |data: Value| {
        let mut object =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        object["data"] = data;
        object
    };

    api.patch(
        "c",
        &apply("a"),
        &Patch::Apply(config(json!({"x": "1", "y": "1", "z": "1"}))),
    )
    .await
    .expect("apply a");
    api.patch("c", &apply("b"), &Patch::Apply(config(json!({"z": "1"}))))
        .await
        .expect("apply b");
    let after = api
        .patch("c", &apply("a"), &Patch::Apply(config(json!({"x": "1"}))))
        .await
        .expect("reapply");

    let data = after.data.expect("data");
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["x", "z"],
        "y is gone, z is b's"
    );
    assert_eq!(
        managed_fields_of(&api, "b").await,
        json!({"f:data": {"f:z": {}}})
    );
}

async fn managed_fields_of(api: &Api<ConfigMap>, manager: &str) -> Value {
    managed_fields(&api.get("c").await.expect("get"), manager)
}

#[tokio::test]
async fn conflicting_applies_are_409_unless_forced_and_force_moves_ownership() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    let config = |value: &str| {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "data": {"k": value},
        })
    };
    api.patch("c", &apply("first"), &Patch::Apply(config("1")))
        .await
        .expect("first");

    // The same value is shared ownership, not a conflict.
    api.patch("c", &apply("second"), &Patch::Apply(config("1")))
        .await
        .expect("same value");
    let status = status_of(
        api.patch("c", &apply("second"), &Patch::Apply(config("2")))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    let causes = status.details.expect("details").causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, ".data.k");
    assert!(
        causes[0].message.contains("conflict with \"first\""),
        "{}",
        causes[0].message
    );

    let forced = api
        .patch("c", &apply("second").force(), &Patch::Apply(config("2")))
        .await
        .expect("force");
    assert_eq!(forced.data.expect("data")["k"], "2");
    assert_eq!(
        managed_fields_of(&api, "first").await,
        Value::Null,
        "first lost the field"
    );

    // Updates (non-apply writes) take fields without conflicts, and applies then conflict.
    let mut edited = api.get("c").await.expect("get");
    edited.data = Some([("k".to_string(), "3".to_string())].into());
    api.replace(
        "c",
        &PostParams {
            field_manager: Some("editor".into()),
            ..Default::default()
        },
        &edited,
    )
    .await
    .expect("update");
    let status = status_of(
        api.patch("c", &apply("second"), &Patch::Apply(config("2")))
            .await,
    );
    assert_eq!(status.code, 409);
}

#[tokio::test]
async fn keyed_lists_merge_between_managers_and_apply_needs_a_field_manager() {
    let emulator = Emulator::start().await;
    let api: Api<Deployment> = Api::default_namespaced(emulator.client());
    let with_container = |name: &str, image: &str| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": name, "image": image}]}},
            },
        })
    };
    api.patch(
        "web",
        &apply("a"),
        &Patch::Apply(with_container("main", "nginx:1")),
    )
    .await
    .expect("a");
    let both = api
        .patch(
            "web",
            &apply("b"),
            &Patch::Apply(with_container("sidecar", "busybox:1")),
        )
        .await
        .expect("b");
    let names: Vec<String> = both
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["main", "sidecar"]);

    let request = http::Request::patch("/apis/apps/v1/namespaces/default/deployments/web")
        .header("content-type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(&with_container("x", "y")).expect("json"))
        .expect("request");
    let status = status_of(emulator.client().request_text(request).await);
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));

    // Plain YAML bodies are accepted, as kubectl sends them.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n";
    let request = http::Request::patch(
        "/api/v1/namespaces/default/configmaps/from-yaml?fieldManager=kubectl",
    )
    .header("content-type", "application/apply-patch+yaml")
    .body(yaml.as_bytes().to_vec())
    .expect("request");
    emulator
        .client()
        .request_text(request)
        .await
        .expect("yaml apply");
    let configs: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    assert_eq!(
        configs
            .get("from-yaml")
            .await
            .expect("get")
            .data
            .expect("data")["a"],
        "b"
    );
}

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube_emulator::Emulator;
use serde_json::json;

use crate::{config_map, eventually, rv_of, status_of};

pub fn deployment(name: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }))
    .expect("a valid Deployment")
}

#[tokio::test]
async fn create_sets_server_metadata_and_refuses_duplicates() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());

    let created = api
        .create(&PostParams::default(), &config_map("a", &[]))
        .await
        .expect("create");
    let uid = created.metadata.uid.clone().expect("uid");
    assert_eq!(uid.len(), 36);
    let created_at = created
        .metadata
        .creation_timestamp
        .clone()
        .expect("creationTimestamp");
    let text = serde_json::to_value(&created_at).expect("serialize");
    assert!(
        text.as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 20),
        "{text}"
    );
    let first_rv = rv_of(&created.metadata);

    let again = status_of(
        api.create(&PostParams::default(), &config_map("a", &[]))
            .await,
    );
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));

    let generated = ConfigMap {
        metadata: ObjectMeta {
            generate_name: Some("gen-".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let one = api
        .create(&PostParams::default(), &generated)
        .await
        .expect("generateName");
    let two = api
        .create(&PostParams::default(), &generated)
        .await
        .expect("generateName");
    let (one, two) = (
        one.metadata.name.expect("name"),
        two.metadata.name.expect("name"),
    );
    assert!(
        one.starts_with("gen-") && one.len() == 9 && one != two,
        "{one} {two}"
    );
    assert!(rv_of(&api.get(&two).await.expect("get").metadata) > first_rv);

    let missing_ns: Api<ConfigMap> = Api::namespaced(emulator.client(), "nowhere");
    let status = status_of(
        missing_ns
            .create(&PostParams::default(), &config_map("a", &[]))
            .await,
    );
    assert_eq!(status.code, 404);
    let bad_name = status_of(
        api.create(&PostParams::default(), &config_map("Bad_Name", &[]))
            .await,
    );
    assert_eq!((bad_name.code, bad_name.reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn replace_is_optimistic_and_a_no_op_is_not_a_write() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    let created = api
        .create(&PostParams::default(), &config_map("a", &[]))
        .await
        .expect("create");

    let mut changed = created.clone();
    changed.data = Some([("key".to_string(), "new".to_string())].into());
    let replaced = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .expect("replace");
    assert!(rv_of(&replaced.metadata) > rv_of(&created.metadata));

    // The first version is stale now.
    let stale = status_of(api.replace("a", &PostParams::default(), &changed).await);
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert!(
        stale.message.contains("the object has been modified"),
        "{}",
        stale.message
    );

    // Writing the same content again changes nothing.
    let same = api
        .replace("a", &PostParams::default(), &replaced)
        .await
        .expect("no-op replace");
    assert_eq!(
        same.metadata.resource_version,
        replaced.metadata.resource_version
    );
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"key": "new"}})),
        )
        .await
        .expect("no-op patch");
    assert_eq!(
        patched.metadata.resource_version,
        replaced.metadata.resource_version
    );
}

#[tokio::test]
async fn merge_and_json_patches_apply_and_a_failed_test_is_invalid() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    api.create(
        &PostParams::default(),
        &config_map("a", &[("keep", "1"), ("drop", "1")]),
    )
    .await
    .expect("create");

    let merge = json!({"metadata": {"labels": {"drop": null, "add": "2"}}});
    let merged = api
        .patch("a", &PatchParams::default(), &Patch::Merge(merge))
        .await
        .expect("merge");
    let labels = merged.metadata.labels.clone().expect("labels");
    assert_eq!(labels.keys().collect::<Vec<_>>(), ["add", "keep"]);

    // kube's finalizer helper adds the first finalizer by testing the absent list against
    // null: the API server's JSON patch library lets that pass, and so must we.
    let add_finalizer: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/cleanup"]},
    ]))
    .expect("patch");
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Json::<()>(add_finalizer),
        )
        .await
        .expect("json patch with a null test of an absent path");
    assert_eq!(
        patched.metadata.finalizers,
        Some(vec!["example.com/cleanup".to_string()])
    );

    // Once the list exists, a null test fails.
    let null_test: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/second"},
    ]))
    .expect("patch");
    let status = status_of(
        api.patch("a", &PatchParams::default(), &Patch::Json::<()>(null_test))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));

    let wrong_test: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": ["other"]},
        {"op": "replace", "path": "/metadata/finalizers", "value": []},
    ]))
    .expect("patch");
    let status = status_of(
        api.patch("a", &PatchParams::default(), &Patch::Json::<()>(wrong_test))
            .await,
    );
    assert_eq!(status.code, 422);
    let unchanged = api.get("a").await.expect("get");
    assert_eq!(
        unchanged.metadata.finalizers,
        Some(vec!["example.com/cleanup".to_string()])
    );
}

#[tokio::test]
async fn strategic_merge_merges_containers_by_name_and_unknown_patch_types_are_415() {
    let emulator = Emulator::start().await;
    let client = emulator.client();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"},
        ]},
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");

    let patch = json!({"spec": {"containers": [{"name": "b", "image": "b:2"}]}});
    let patched = pods
        .patch("p", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("patch");
    let containers = patched.spec.expect("spec").containers;
    let images: Vec<_> = containers
        .iter()
        .map(|c| c.image.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        images,
        ["a:1", "b:2"],
        "a merge patch would have replaced the list"
    );

    let request = http::Request::patch("/api/v1/namespaces/default/pods/p")
        .header("content-type", "application/x-unknown")
        .body(b"{}".to_vec())
        .expect("request");
    let status = status_of(client.request_text(request).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (415, "UnsupportedMediaType")
    );

    let post_to_a_name = http::Request::post("/api/v1/namespaces/default/pods/p")
        .header("content-type", "application/json")
        .body(b"{}".to_vec())
        .expect("request");
    let status = status_of(client.request_text(post_to_a_name).await);
    assert_eq!(status.code, 405);

    let garbage = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(b"{not json".to_vec())
        .expect("request");
    let status = status_of(client.request_text(garbage).await);
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
}

#[tokio::test]
async fn generation_follows_spec_and_status_is_a_subresource() {
    let emulator = Emulator::start().await;
    emulator.set_deployments_become_ready(false);
    let api: Api<Deployment> = Api::default_namespaced(emulator.client());
    let created = api
        .create(&PostParams::default(), &deployment("web", "nginx:1"))
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_none());

    let label = Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}));
    let labelled = api
        .patch("web", &PatchParams::default(), &label)
        .await
        .expect("label");
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );

    let scale = Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"replicas": 9}}));
    let scaled = api
        .patch("web", &PatchParams::default(), &scale)
        .await
        .expect("scale");
    assert_eq!(scaled.metadata.generation, Some(2));
    assert!(
        scaled.status.is_none(),
        "status writes through the main resource are ignored"
    );

    let status = Patch::Merge(json!({"spec": {"replicas": 5}, "status": {"replicas": 3}}));
    let with_status = api
        .patch_status("web", &PatchParams::default(), &status)
        .await
        .expect("status");
    assert_eq!(with_status.status.and_then(|s| s.replicas), Some(3));
    assert_eq!(
        with_status.spec.and_then(|s| s.replicas),
        Some(3),
        "spec via /status is ignored"
    );
    assert_eq!(with_status.metadata.generation, Some(2));

    // A ready Deployment when the emulator plays the controller.
    emulator.set_deployments_become_ready(true);
    eventually("the deployment becomes ready", || {
        let api = api.clone();
        async move {
            let d = api.get("web").await.expect("get");
            let status = d.status.unwrap_or_default();
            status.observed_generation == Some(2)
                && status.ready_replicas == Some(3)
                && status.available_replicas == Some(3)
                && status
                    .conditions
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Available" && c.status == "True")
        }
    })
    .await;
}

#[tokio::test]
async fn ingresses_are_served_and_refused_where_the_api_server_refuses_them() {
    use k8s_openapi::api::networking::v1::Ingress;
    let emulator = Emulator::start().await;
    let api: Api<Ingress> = Api::default_namespaced(emulator.client());
    let ingress = |name: &str, host: &str, path_type: Option<&str>, extra: serde_json::Value| {
        let mut value = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": name},
            "spec": {"rules": [{"host": host, "http": {"paths": [{
                "path": "/",
                "pathType": path_type,
                "backend": {"service": {"name": "web", "port": {"number": 8080}}},
            }]}}]},
        });
        for (key, part) in extra.as_object().into_iter().flatten() {
            for (field, v) in part.as_object().into_iter().flatten() {
                value[key][field] = v.clone();
            }
        }
        serde_json::from_value::<Ingress>(value).expect("an Ingress")
    };

    let created = api
        .create(
            &PostParams::default(),
            &ingress("web", "web.example.com", Some("Prefix"), json!({})),
        )
        .await
        .expect("a valid Ingress");
    assert_eq!(created.metadata.generation, Some(1));

    let refused = |status: kube::core::Status| {
        let causes = status.details.expect("details").causes;
        (
            status.code,
            causes.into_iter().map(|c| c.field).collect::<Vec<_>>(),
        )
    };
    let ip = status_of(
        api.create(
            &PostParams::default(),
            &ingress("ip", "10.0.0.1", Some("Prefix"), json!({})),
        )
        .await,
    );
    assert_eq!(refused(ip), (422, vec!["spec.rules[0].host".to_string()]));
    let no_type = status_of(
        api.create(
            &PostParams::default(),
            &ingress("untyped", "web.example.com", None, json!({})),
        )
        .await,
    );
    assert_eq!(
        refused(no_type),
        (
            422,
            vec!["spec.rules[0].http.paths[0].pathType".to_string()]
        )
    );
    let both_classes = json!({
        "metadata": {"annotations": {"kubernetes.io/ingress.class": "nginx"}},
        "spec": {"ingressClassName": "nginx"},
    });
    let both = status_of(
        api.create(
            &PostParams::default(),
            &ingress("both", "web.example.com", Some("Prefix"), both_classes),
        )
        .await,
    );
    assert_eq!(
        refused(both),
        (
            422,
            vec!["metadata.annotations[kubernetes.io/ingress.class]".to_string()]
        )
    );
    let wildcard = ingress("wild", "*.example.com", Some("Exact"), json!({}));
    api.create(&PostParams::default(), &wildcard)
        .await
        .expect("a wildcard host is a valid Ingress host");
}

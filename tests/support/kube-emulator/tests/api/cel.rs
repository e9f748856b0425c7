//! `x-kubernetes-validations`: CEL rules compiled with the CRD and evaluated on every write.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::core::Status;
use kube_emulator::Emulator;
use serde_json::{Value, json};

use crate::status_of;

/// A Gadget CRD whose schema carries `rules` at `spec` and `root_rules` at the root.
fn crd_with(rules: Value, root_rules: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-validations": root_rules,
                    "properties": {
                        "spec": {
                            "type": "object",
                            "x-kubernetes-validations": rules,
                            "properties": {
                                "min": {"type": "integer"},
                                "max": {"type": "integer"},
                                "namespace": {"type": "string"},
                                "mode": {
                                    "type": "string",
                                    "enum": ["fast", "safe"],
                                    "x-kubernetes-validations": [{"rule": "self != 'fast'"}],
                                },
                                "tags": {
                                    "type": "array",
                                    "items": {"type": "string"},
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

fn crd() -> Value {
    crd_with(
        json!([
            {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
             "message": "min must not exceed max"},
            {"rule": "!has(oldSelf.__namespace__) || self.__namespace__ == oldSelf.__namespace__",
             "message": "namespace cannot change"},
        ]),
        json!([{"rule": "self.metadata.name.size() <= 6", "message": "name too long"}]),
    )
}

async fn install(emulator: &Emulator, crd: Value) -> Result<(), Status> {
    let crds: Api<CustomResourceDefinition> = Api::all(emulator.client());
    let created = crds
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).expect("crd"),
        )
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(*status),
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn gadgets(emulator: &Emulator) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Gadget"),
        "gadgets",
    );
    Api::namespaced_with(emulator.client(), "default", &resource)
}

fn gadget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("gadget")
}

/// The (field, message) pairs of a 422.
fn causes(status: &Status) -> Vec<(String, String)> {
    assert_eq!(status.code, 422, "{status:?}");
    let details = status.details.as_ref().expect("details");
    details
        .causes
        .iter()
        .map(|c| (c.field.clone(), c.message.clone()))
        .collect()
}

#[tokio::test]
async fn a_failing_rule_refuses_the_create_with_its_message_at_its_node() {
    let emulator = Emulator::start().await;
    install(&emulator, crd()).await.expect("crd");
    let api = gadgets(&emulator);

    let status = status_of(
        api.create(
            &PostParams::default(),
            &gadget("g", json!({"min": 3, "max": 1})),
        )
        .await,
    );
    assert_eq!(
        status.message,
        "Gadget.example.com \"g\" is invalid: spec: Invalid value: \"object\": min must not \
         exceed max"
    );
    assert_eq!(
        causes(&status),
        [(
            "spec".to_string(),
            "Invalid value: \"object\": min must not exceed max".to_string()
        )]
    );
    let reason = status.details.unwrap().causes[0].reason.clone();
    assert_eq!(reason, "FieldValueInvalid");

    api.create(
        &PostParams::default(),
        &gadget("g", json!({"min": 1, "max": 3})),
    )
    .await
    .expect("a spec the rules accept");
}

#[tokio::test]
async fn a_rule_without_a_message_is_named_in_the_cause() {
    let emulator = Emulator::start().await;
    install(&emulator, crd()).await.expect("crd");
    let status = status_of(
        gadgets(&emulator)
            .create(
                &PostParams::default(),
                &gadget("g", json!({"mode": "fast"})),
            )
            .await,
    );
    assert_eq!(
        causes(&status),
        [(
            "spec.mode".to_string(),
            "Invalid value: \"string\": failed rule: self != 'fast'".to_string()
        )]
    );
}

#[tokio::test]
async fn a_root_rule_sees_metadata_name_and_reports_at_nil() {
    let emulator = Emulator::start().await;
    install(&emulator, crd()).await.expect("crd");
    let status = status_of(
        gadgets(&emulator)
            .create(&PostParams::default(), &gadget("gadget-long", json!({})))
            .await,
    );
    assert_eq!(
        causes(&status),
        [(
            "<nil>".to_string(),
            "Invalid value: \"object\": name too long".to_string()
        )]
    );
}

#[tokio::test]
async fn a_transition_rule_runs_on_updates_only_and_keeps_the_old_value() {
    let emulator = Emulator::start().await;
    install(&emulator, crd()).await.expect("crd");
    let api = gadgets(&emulator);
    api.create(
        &PostParams::default(),
        &gadget("g", json!({"namespace": "a"})),
    )
    .await
    .expect("a create does not run transition rules");

    let change = Patch::Merge(json!({"spec": {"namespace": "b"}}));
    let status = status_of(api.patch("g", &PatchParams::default(), &change).await);
    assert_eq!(
        causes(&status),
        [(
            "spec".to_string(),
            "Invalid value: \"object\": namespace cannot change".to_string()
        )]
    );

    let other = Patch::Merge(json!({"spec": {"min": 1}}));
    api.patch("g", &PatchParams::default(), &other)
        .await
        .expect("an update that keeps the namespace");
    let status_write = Patch::Merge(json!({"status": {"phase": "Ready"}}));
    api.patch_status("g", &PatchParams::default(), &status_write)
        .await
        .expect("a status write");
}

#[tokio::test]
async fn server_side_apply_results_are_checked_too() {
    let emulator = Emulator::start().await;
    install(&emulator, crd()).await.expect("crd");
    let api = gadgets(&emulator);
    let applied = json!({
        "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"},
        "spec": {"min": 5, "max": 4},
    });
    let status = status_of(
        api.patch("g", &PatchParams::apply("test"), &Patch::Apply(applied))
            .await,
    );
    assert_eq!(causes(&status)[0].0, "spec");
}

#[tokio::test]
async fn schema_errors_that_block_rules_say_so() {
    let emulator = Emulator::start().await;
    install(&emulator, crd()).await.expect("crd");
    let status = status_of(
        gadgets(&emulator)
            .create(
                &PostParams::default(),
                &gadget("g", json!({"min": "three", "max": 1})),
            )
            .await,
    );
    let causes = causes(&status);
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert_eq!(causes[0].0, "spec.min");
    assert!(
        causes[1]
            .1
            .contains("some validation rules were not checked")
    );
}

async fn refusal(crd: Value) -> Vec<(String, String)> {
    let emulator = Emulator::start().await;
    let status = install(&emulator, crd)
        .await
        .expect_err("the CRD is refused");
    causes(&status)
}

#[tokio::test]
async fn a_crd_whose_rule_does_not_parse_is_refused() {
    let causes = refusal(crd_with(json!([{"rule": "self.min <="}]), json!([]))).await;
    assert_eq!(causes.len(), 1);
    assert_eq!(
        causes[0].0,
        "spec.versions[0].schema.openAPIV3Schema.properties[spec]\
         .x-kubernetes-validations[0].rule"
    );
    assert!(causes[0].1.contains("compilation failed"), "{causes:?}");
}

#[tokio::test]
async fn a_crd_whose_rule_names_an_unknown_field_is_refused() {
    let causes = refusal(crd_with(json!([{"rule": "self.minimum > 0"}]), json!([]))).await;
    assert!(
        causes[0].1.contains("undefined field 'minimum'"),
        "{causes:?}"
    );
}

#[tokio::test]
async fn a_property_named_like_a_cel_keyword_must_be_escaped() {
    let rule = json!([{"rule": "self.namespace == oldSelf.namespace"}]);
    let causes = refusal(crd_with(rule, json!([]))).await;
    assert!(
        causes[0]
            .1
            .contains("undefined field 'namespace' (a property named namespace is __namespace__"),
        "{causes:?}"
    );
}

#[tokio::test]
async fn a_crd_whose_rule_uses_an_unknown_variable_is_refused() {
    let causes = refusal(crd_with(
        json!([{"rule": "object.spec.min > 0"}]),
        json!([]),
    ))
    .await;
    assert!(
        causes[0].1.contains("undeclared reference to 'object'"),
        "{causes:?}"
    );
}

#[tokio::test]
async fn old_self_under_an_atomic_list_is_refused() {
    let mut crd = crd();
    let tags = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/tags/items";
    crd.pointer_mut(tags).expect("tags")["x-kubernetes-validations"] =
        json!([{"rule": "self == oldSelf"}]);
    let causes = refusal(crd).await;
    assert!(causes[0].1.contains("uncorrelatable"), "{causes:?}");
}

#[tokio::test]
async fn rules_of_the_root_only_see_name_and_generate_name_in_metadata() {
    let causes = refusal(crd_with(
        json!([]),
        json!([{"rule": "self.metadata.labels.size() > 0"}]),
    ))
    .await;
    assert!(
        causes[0].1.contains("undefined field 'labels'"),
        "{causes:?}"
    );
}

//! Every CEL rule (`x-kubernetes-validations`) of our CRDs, through a real `kube::Client` against
//! the emulator, which compiles the rules when the CRDs are installed and evaluates them like the
//! API server: for each rule, an object the rule accepts and a change it refuses with its
//! message. The rules are read from the generated CRDs, so a new rule without a refusing case
//! fails [`every_rule_of_our_crds_refuses_what_its_message_says`].

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{GroupVersionKind, Status};
use kube_emulator::Emulator;
use serde_json::{Value, json};

/// One rule of a CRD, as the generated YAML has it.
#[derive(Debug)]
struct CelRule {
    crd: String,
    rule: String,
    message: String,
}

/// Every rule of every CRD `jenkins_operator::api::crds()` serves.
fn our_rules() -> Vec<CelRule> {
    fn collect(crd: &str, schema: &Value, rules: &mut Vec<CelRule>) {
        match schema {
            Value::Object(map) => {
                for (key, value) in map {
                    if key == "x-kubernetes-validations" {
                        for rule in value.as_array().into_iter().flatten() {
                            let text = rule["rule"].as_str().unwrap_or_default().to_string();
                            let message = match rule["message"].as_str() {
                                Some(message) => message.to_string(),
                                None => format!("failed rule: {text}"),
                            };
                            rules.push(CelRule {
                                crd: crd.to_string(),
                                rule: text,
                                message,
                            });
                        }
                    } else {
                        collect(crd, value, rules);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| collect(crd, i, rules)),
            _ => {}
        }
    }
    let mut rules = Vec::new();
    for crd in jenkins_operator::api::crds() {
        let name = crd.spec.names.plural.clone();
        collect(
            &name,
            &serde_json::to_value(&crd.spec).expect("crd"),
            &mut rules,
        );
    }
    rules
}

/// How a case breaks a rule: a create of another object, or a merge patch of the good one.
enum Break {
    Create(Value),
    Patch(Value),
}

/// A good object the rules accept, and a change one rule refuses.
struct Case {
    /// What the refused change does, as a sentence.
    refuses: &'static str,
    /// The plural of the CRD.
    crd: &'static str,
    /// The spec of an object every rule accepts.
    good: Value,
    bad: Break,
    /// The field of the refusal.
    at: &'static str,
    /// A part of the refusing rule's message.
    says: &'static str,
}

fn cases() -> Vec<Case> {
    let scm = json!({"git": {"url": "https://git.example.com/app.git"}});
    let template = |name: &str, label: &str, container: &str| {
        json!({"name": name, "label": label,
               "containers": [{"name": container, "image": "jenkins/inbound-agent:latest"}]})
    };
    use Break::{Create, Patch};
    vec![
        // JenkinsCluster.
        Case {
            refuses: "a cluster name longer than 40 characters",
            crd: "jenkinsclusters",
            good: json!({}),
            bad: Create(json!({"metadata": {"name": "a".repeat(41)}, "spec": {}})),
            at: "<nil>",
            says: "at most 40 characters",
        },
        Case {
            refuses: "a cluster name that is not a DNS label starting with a letter",
            crd: "jenkinsclusters",
            good: json!({}),
            bad: Create(json!({"metadata": {"name": "ci.example"}, "spec": {}})),
            at: "<nil>",
            says: "must be a DNS label",
        },
        Case {
            refuses: "an existing claim with a size",
            crd: "jenkinsclusters",
            good: json!({"persistence": {"existingClaim": "home"}}),
            bad: Patch(json!({"spec": {"persistence": {"size": "10Gi"}}})),
            at: "spec.persistence",
            says: "persistence.size or persistence.existingClaim",
        },
        Case {
            refuses: "an existing claim with a storage class",
            crd: "jenkinsclusters",
            good: json!({"persistence": {"existingClaim": "home"}}),
            bad: Patch(json!({"spec": {"persistence": {"storageClassName": "fast"}}})),
            at: "spec.persistence",
            says: "persistence.storageClassName or persistence.existingClaim",
        },
        Case {
            refuses: "a plugin at version latest",
            crd: "jenkinsclusters",
            good: json!({"plugins": [{"name": "git", "version": "5.7.0"}]}),
            bad: Patch(json!({"spec": {"plugins": [{"name": "git", "version": "latest"}]}})),
            at: "spec.plugins[0].version",
            says: "pin an exact plugin version",
        },
        Case {
            refuses: "two agent templates with one label",
            crd: "jenkinsclusters",
            good: json!({"agents": {"templates": [
                template("maven", "maven", "maven"), template("node", "node", "node")]}}),
            bad: Patch(json!({"spec": {"agents": {"templates": [
                template("maven", "build", "maven"), template("node", "build", "node")]}}})),
            at: "spec.agents.templates",
            says: "two templates share a label",
        },
        Case {
            refuses: "an agent template named deploy-x",
            crd: "jenkinsclusters",
            good: json!({"agents": {"templates": [template("maven", "maven", "maven")]}}),
            bad: Patch(json!({"spec": {"agents": {"templates": [
                template("deploy-x", "maven", "maven")]}}})),
            at: "spec.agents.templates[0].name",
            says: "reserved for environments",
        },
        Case {
            refuses: "an agent container named jnlp",
            crd: "jenkinsclusters",
            good: json!({"agents": {"templates": [template("maven", "maven", "maven")]}}),
            bad: Patch(json!({"spec": {"agents": {"templates": [
                template("maven", "maven", "jnlp")]}}})),
            at: "spec.agents.templates[0].containers[0].name",
            says: "jnlp is reserved",
        },
        Case {
            refuses: "a change of spec.namespace",
            crd: "jenkinsclusters",
            good: json!({"namespace": "ci-a"}),
            bad: Patch(json!({"spec": {"namespace": "ci-b"}})),
            at: "spec",
            says: "spec.namespace cannot change",
        },
        Case {
            refuses: "a spec.namespace set after creation",
            crd: "jenkinsclusters",
            good: json!({}),
            bad: Patch(json!({"spec": {"namespace": "ci-b"}})),
            at: "spec",
            says: "spec.namespace cannot change",
        },
        Case {
            refuses: "a spec.namespace removed after creation",
            crd: "jenkinsclusters",
            good: json!({"namespace": "ci-a"}),
            bad: Patch(json!({"spec": {"namespace": null}})),
            at: "spec",
            says: "spec.namespace cannot change",
        },
        Case {
            refuses: "an IP address as the ingress host",
            crd: "jenkinsclusters",
            good: json!({"ingress": {"host": "ci.example.com"}}),
            bad: Patch(json!({"spec": {"ingress": {"host": "10.0.0.1"}}})),
            at: "spec.ingress.host",
            says: "ingress.host must be a DNS name, not an IP address",
        },
        // JenkinsJob.
        Case {
            refuses: "branches together with multibranch",
            crd: "jenkinsjobs",
            good: json!({"cluster": "ci", "pipeline": {"scm": scm}, "branches": ["main"]}),
            bad: Patch(json!({"spec": {"multibranch": {}}})),
            at: "spec",
            says: "use either branches",
        },
        Case {
            refuses: "multibranch without pipeline.scm",
            crd: "jenkinsjobs",
            good: json!({"cluster": "ci", "pipeline": {"script": "echo hi"}}),
            bad: Patch(json!({"spec": {"multibranch": {}}})),
            at: "spec",
            says: "multibranch needs pipeline.scm",
        },
        Case {
            refuses: "branches without pipeline.scm",
            crd: "jenkinsjobs",
            good: json!({"cluster": "ci", "pipeline": {"script": "echo hi"}}),
            bad: Patch(json!({"spec": {"branches": ["main"]}})),
            at: "spec",
            says: "branches needs pipeline.scm",
        },
        Case {
            refuses: "triggers.pollScm without pipeline.scm",
            crd: "jenkinsjobs",
            good: json!({"cluster": "ci", "pipeline": {"script": "echo hi"},
                         "triggers": {"cron": "H 2 * * *"}}),
            bad: Patch(json!({"spec": {"triggers": {"pollScm": "H/5 * * * *"}}})),
            at: "spec",
            says: "there is no repository to poll",
        },
        Case {
            refuses: "parameters on a multibranch job",
            crd: "jenkinsjobs",
            good: json!({"cluster": "ci", "pipeline": {"scm": scm}, "multibranch": {}}),
            bad: Patch(json!({"spec": {"parameters": [{"name": "GOAL", "type": "string"}]}})),
            at: "spec",
            says: "each branch's Jenkinsfile declares",
        },
        Case {
            refuses: "a pipeline with both script and scm",
            crd: "jenkinsjobs",
            good: json!({"cluster": "ci", "pipeline": {"script": "echo hi"}}),
            bad: Patch(json!({"spec": {"pipeline": {"scm": scm}}})),
            at: "spec.pipeline",
            says: "exactly one of pipeline.script and pipeline.scm",
        },
        Case {
            refuses: "a choice parameter without choices",
            crd: "jenkinsjobs",
            good: json!({"cluster": "ci", "pipeline": {"script": "echo hi"}, "parameters": [
                {"name": "GOAL", "type": "choice", "choices": ["build", "test"]}]}),
            bad: Patch(json!({"spec": {"parameters": [{"name": "GOAL", "type": "choice"}]}})),
            at: "spec.parameters[0]",
            says: "choices are required for",
        },
        Case {
            refuses: "a boolean parameter defaulting to yes",
            crd: "jenkinsjobs",
            good: json!({"cluster": "ci", "pipeline": {"script": "echo hi"}, "parameters": [
                {"name": "DRY_RUN", "type": "boolean", "default": "true"}]}),
            bad: Patch(json!({"spec": {"parameters": [
                {"name": "DRY_RUN", "type": "boolean", "default": "yes"}]}})),
            at: "spec.parameters[0]",
            says: "boolean parameter is true or false",
        },
        Case {
            refuses: "a choice parameter defaulting to a value it does not offer",
            crd: "jenkinsjobs",
            good: json!({"cluster": "ci", "pipeline": {"script": "echo hi"}, "parameters": [
                {"name": "GOAL", "type": "choice", "choices": ["build", "test"],
                 "default": "test"}]}),
            bad: Patch(json!({"spec": {"parameters": [
                {"name": "GOAL", "type": "choice", "choices": ["build", "test"],
                 "default": "deploy"}]}})),
            at: "spec.parameters[0]",
            says: "must be one of its choices",
        },
        Case {
            refuses: "a parameter named ENVIRONMENT",
            crd: "jenkinsjobs",
            good: json!({"cluster": "ci", "pipeline": {"script": "echo hi"}, "parameters": [
                {"name": "ENVIRONMENT_NAME", "type": "string"}]}),
            bad: Patch(json!({"spec": {"parameters": [
                {"name": "ENVIRONMENT", "type": "string"}]}})),
            at: "spec.parameters[0].name",
            says: "are set by the operator",
        },
        Case {
            refuses: "a parameter named JENKINS_OPERATOR_X",
            crd: "jenkinsjobs",
            good: json!({"cluster": "ci", "pipeline": {"script": "echo hi"}, "parameters": [
                {"name": "JENKINS_X", "type": "string"}]}),
            bad: Patch(json!({"spec": {"parameters": [
                {"name": "JENKINS_OPERATOR_X", "type": "string"}]}})),
            at: "spec.parameters[0].name",
            says: "are set by the operator",
        },
        // JenkinsBuild.
        Case {
            refuses: "a change of a build's spec",
            crd: "jenkinsbuilds",
            good: json!({"job": "app", "parameters": [{"name": "GOAL", "value": "build"}]}),
            bad: Patch(json!({"spec": {"parameters": [{"name": "GOAL", "value": "test"}]}})),
            at: "spec",
            says: "the spec of a JenkinsBuild cannot change",
        },
    ]
}

struct Backend {
    _emulator: Emulator,
    client: kube::Client,
    crds: Vec<CustomResourceDefinition>,
}

impl Backend {
    /// An emulator with our CRDs installed: the install fails if a rule does not compile.
    async fn start() -> Backend {
        let emulator = Emulator::start().await;
        let client = emulator.client();
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let crds = jenkins_operator::api::crds();
        for crd in &crds {
            if let Err(error) = api.create(&PostParams::default(), crd).await {
                panic!("the API server refuses {}: {error}", crd.spec.names.plural);
            }
        }
        Backend {
            _emulator: emulator,
            client,
            crds,
        }
    }

    /// The API of a CRD by plural, `None` when this build does not serve it.
    fn api(&self, plural: &str) -> Option<(Api<DynamicObject>, ApiResource)> {
        let crd = self.crds.iter().find(|c| c.spec.names.plural == plural)?;
        let version = crd.spec.versions.iter().find(|v| v.storage)?;
        let gvk = GroupVersionKind::gvk(&crd.spec.group, &version.name, &crd.spec.names.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api = if crd.spec.scope == "Cluster" {
            Api::all_with(self.client.clone(), &resource)
        } else {
            Api::namespaced_with(self.client.clone(), "default", &resource)
        };
        Some((api, resource))
    }
}

fn object(resource: &ApiResource, name: &str, body: &Value) -> DynamicObject {
    let mut object = json!({
        "apiVersion": resource.api_version, "kind": resource.kind,
        "metadata": {"name": name},
    });
    for (key, value) in body.as_object().into_iter().flatten() {
        object[key] = value.clone();
    }
    serde_json::from_value(object).expect("an object")
}

/// The causes of a refusal, or why the answer was not one.
fn refusal<T>(result: kube::Result<T>) -> Result<Status, String> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 422 => Ok(*status),
        Err(other) => Err(format!("answered {other}")),
        Ok(_) => Err("was accepted".into()),
    }
}

#[tokio::test]
async fn every_rule_of_our_crds_refuses_what_its_message_says() {
    let backend = Backend::start().await;
    let rules = our_rules();
    let mut refused_by: BTreeSet<(String, String)> = BTreeSet::new();
    let mut failures = Vec::new();
    for (index, case) in cases().into_iter().enumerate() {
        let Some((api, resource)) = backend.api(case.crd) else {
            continue; // A CRD of another branch.
        };
        let name = format!("case-{index}");
        let good = object(&resource, &name, &json!({"spec": case.good}));
        if let Err(error) = api.create(&PostParams::default(), &good).await {
            failures.push(format!(
                "{}: the good object is refused: {error}",
                case.refuses
            ));
            continue;
        }
        let result = match &case.bad {
            Break::Create(body) => {
                let bad = object(&resource, "unused", body);
                api.create(&PostParams::default(), &bad).await
            }
            Break::Patch(patch) => {
                let patch = Patch::Merge(patch);
                api.patch(&name, &PatchParams::default(), &patch).await
            }
        };
        let status = match refusal(result) {
            Ok(status) => status,
            Err(what) => {
                failures.push(format!("{} {what}", case.refuses));
                continue;
            }
        };
        let causes = status.details.map(|d| d.causes).unwrap_or_default();
        let matching: Vec<&CelRule> = rules
            .iter()
            .filter(|r| r.crd == case.crd && r.message.contains(case.says))
            .collect();
        let [rule] = matching.as_slice() else {
            failures.push(format!(
                "{}: {} rules say {:?}",
                case.refuses,
                matching.len(),
                case.says
            ));
            continue;
        };
        let cause = causes
            .iter()
            .find(|c| c.message.ends_with(&format!(": {}", rule.message)));
        match cause {
            Some(cause) if cause.field == case.at && cause.reason == "FieldValueInvalid" => {
                refused_by.insert((rule.crd.clone(), rule.rule.clone()));
            }
            _ => failures.push(format!(
                "{} is refused, but not by {:?} at {}: {causes:?}",
                case.refuses, rule.message, case.at
            )),
        }
    }
    for rule in &rules {
        if !refused_by.contains(&(rule.crd.clone(), rule.rule.clone())) {
            failures.push(format!(
                "no case is refused by {} rule {:?}",
                rule.crd, rule.rule
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn a_cluster_keeps_its_namespace_through_other_changes() {
    let backend = Backend::start().await;
    let (api, resource) = backend.api("jenkinsclusters").expect("JenkinsCluster");
    let cluster = object(&resource, "ci", &json!({"spec": {"namespace": "ci-a"}}));
    api.create(&PostParams::default(), &cluster)
        .await
        .expect("create");
    let change = Patch::Merge(json!({"spec": {"plugins": [{"name": "git", "version": "5.7.0"}]}}));
    api.patch("ci", &PatchParams::default(), &change)
        .await
        .expect("a change that keeps spec.namespace");
}

#[tokio::test]
async fn a_build_takes_status_updates_while_its_spec_is_frozen() {
    let backend = Backend::start().await;
    let Some((api, resource)) = backend.api("jenkinsbuilds") else {
        return; // JenkinsBuild is served from another branch on.
    };
    let build = object(&resource, "app-1", &json!({"spec": {"job": "app"}}));
    api.create(&PostParams::default(), &build)
        .await
        .expect("create");
    let status = Patch::Merge(json!({"status": {"buildNumber": 7}}));
    api.patch_status("app-1", &PatchParams::default(), &status)
        .await
        .expect("a status update");
    let labels = Patch::Merge(json!({"metadata": {"labels": {"team": "web"}}}));
    api.patch("app-1", &PatchParams::default(), &labels)
        .await
        .expect("a metadata update");
}

#[test]
fn our_rules_are_within_kube_cels_cost_estimate() {
    for crd in jenkins_operator::api::crds() {
        let crd = serde_json::to_value(&crd).expect("crd");
        let warnings = kube_emulator::cel_cost_warnings(&crd);
        assert!(
            warnings.is_empty(),
            "{}: {warnings:#?}",
            crd["metadata"]["name"]
        );
    }
}

#[tokio::test]
async fn an_ingress_host_that_is_not_a_dns_name_is_refused_by_the_schema() {
    let backend = Backend::start().await;
    let (api, resource) = backend.api("jenkinsclusters").expect("JenkinsCluster");
    let good = object(
        &resource,
        "ci",
        &json!({"spec": {"ingress": {"host": "jenkins.example.com"}}}),
    );
    api.create(&PostParams::default(), &good)
        .await
        .expect("a DNS name is accepted");
    for host in [
        "10.0.0.1",
        "*.example.com",
        "Jenkins.example.com",
        "ci.example.com:443",
    ] {
        let patch = Patch::Merge(json!({"spec": {"ingress": {"host": host}}}));
        let status = refusal(api.patch("ci", &PatchParams::default(), &patch).await)
            .unwrap_or_else(|what| panic!("host {host:?} {what}"));
        let causes = status.details.map(|d| d.causes).unwrap_or_default();
        assert!(
            causes.iter().any(|c| c.field == "spec.ingress.host"),
            "host {host:?}: {causes:?}"
        );
    }
}

//! The operator's RBAC rules (deploy/helm/jenkins-operator/files/rbac-rules.yaml) against the
//! API calls the operator really makes: a full cluster life (with JenkinsBuilds) is run, every
//! request of the operator is taken from the emulator's log, and each must be allowed by the
//! rules. Rules no call needs are reported; the ones kept for reasons this run cannot show are
//! listed below with the reason, and any other unused rule fails the test.

use std::collections::BTreeSet;
use std::time::Duration;

use jenkins_emulator::{BuildResult, Outcome};
use jenkins_operator::api::build::{JenkinsBuild, JenkinsBuildSpec};
use jenkins_operator::api::cluster::DeletionPolicy;
use jenkins_operator::api::{JenkinsCluster, JenkinsJob};
use jenkins_operator::cluster::cluster_namespace;
use jenkins_operator::jenkins::JobPath;
use jenkins_operator::job::plan;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use kube_emulator::{RequestRecord, Verb};
use serde::Deserialize;

use crate::operator::{Backend, Launch, Operator, eventually};

/// Permissions granted though no call of this test needs them, and why.
const KEPT_WITHOUT_A_CALL: &[(&str, &str, &str)] = &[
    // Events are recorded with events.k8s.io; a repeated Event is patched as a series, which
    // a short run does not produce.
    ("events.k8s.io", "events", "patch"),
    // The operator's core-events grant backs the Role it gives Jenkins (get/list/watch) and
    // older recorder paths (create/patch).
    ("", "events", "create"),
    ("", "events", "patch"),
    // Pruning deletes any child kind the spec stops producing; the master's ConfigMaps,
    // Service and Deployment always exist while the cluster does, so no change prunes them.
    ("", "configmaps", "delete"),
    ("", "services", "delete"),
    ("apps", "deployments", "delete"),
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rules {
    cluster_rules: Vec<PolicyRule>,
    lease_rules: Vec<PolicyRule>,
}

fn rules() -> Rules {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/helm/jenkins-operator/files/rbac-rules.yaml"
    );
    let text = std::fs::read_to_string(path).expect("read rbac-rules.yaml");
    serde_saphyr::from_str(&text).expect("parse rbac-rules.yaml")
}

/// One permission: API group, resource (with `/subresource`), verb, and the object's name
/// when the request named one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Permission {
    group: String,
    resource: String,
    verb: String,
    name: Option<String>,
}

impl Permission {
    fn key(&self) -> (String, String, String) {
        (self.group.clone(), self.resource.clone(), self.verb.clone())
    }
}

/// Whether `rule` grants `needed`. A rule limited by resourceNames never grants create, list,
/// watch or deletecollection (the API server knows no name for them when it authorizes).
fn grants(rule: &PolicyRule, needed: &Permission) -> bool {
    let has = |list: &Option<Vec<String>>, value: &str| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|v| v == value || v == "*"))
    };
    let verb_ok = rule.verbs.iter().any(|v| v == &needed.verb || v == "*");
    let named = rule.resource_names.as_ref().is_some_and(|n| !n.is_empty());
    let name_ok = !named
        || needed
            .name
            .as_ref()
            .is_some_and(|name| has(&rule.resource_names, name));
    has(&rule.api_groups, &needed.group)
        && has(&rule.resources, &needed.resource)
        && verb_ok
        && name_ok
}

/// The permissions one request needs. A server-side apply that creates the object (answered
/// 201) is authorized as `patch` and, because it creates, as `create` too.
fn needed(request: &RequestRecord) -> Vec<Permission> {
    let resource = match &request.subresource {
        Some(sub) => format!("{}/{sub}", request.resource.clone().unwrap_or_default()),
        None => request.resource.clone().unwrap_or_default(),
    };
    let permission = |verb: &str| Permission {
        group: request.group.clone().unwrap_or_default(),
        resource: resource.clone(),
        verb: verb.to_owned(),
        name: match request.verb {
            Verb::Create | Verb::List | Verb::Watch | Verb::DeleteCollection => None,
            _ => request.name.clone(),
        },
    };
    let mut permissions = vec![permission(&request.verb.to_string())];
    let apply = request
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/apply-patch"));
    if request.verb == Verb::Patch && apply && request.status == 201 {
        permissions.push(permission("create"));
    }
    permissions
}

/// Permissions the operator must hold without calling them: the API server lets it create a
/// Role only with rules it holds itself, bind a ClusterRole only with `bind` on it, and set
/// `blockOwnerDeletion` on an owner reference only with `update` on the owner's finalizers.
async fn held_for_what_it_grants(backend: &Backend) -> Vec<Permission> {
    let mut permissions = Vec::new();
    let roles: Api<Role> = Api::all(backend.client.clone());
    for role in roles
        .list(&ListParams::default())
        .await
        .expect("list Roles")
    {
        for rule in role.rules.unwrap_or_default() {
            for group in rule.api_groups.clone().unwrap_or_default() {
                for resource in rule.resources.clone().unwrap_or_default() {
                    for verb in &rule.verbs {
                        permissions.push(Permission {
                            group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                            name: None,
                        });
                    }
                }
            }
        }
    }
    let bindings: Api<RoleBinding> = Api::all(backend.client.clone());
    let bindings = bindings
        .list(&ListParams::default())
        .await
        .expect("list RoleBindings");
    for binding in &bindings {
        if binding.role_ref.kind == "ClusterRole" {
            permissions.push(Permission {
                group: "rbac.authorization.k8s.io".into(),
                resource: "clusterroles".into(),
                verb: "bind".into(),
                name: Some(binding.role_ref.name.clone()),
            });
        }
        let blocks = binding
            .owner_references()
            .iter()
            .any(|o| o.kind == "JenkinsCluster" && o.block_owner_deletion == Some(true));
        if blocks {
            permissions.push(Permission {
                group: "jenkins.ci".into(),
                resource: "jenkinsclusters/finalizers".into(),
                verb: "update".into(),
                name: None,
            });
        }
    }
    permissions
}

/// Creates, syncs and deletes the SCM example JenkinsJob in a namespace the cluster admits.
async fn job_life(backend: &Backend) {
    use jenkins_operator::api::JenkinsJob;
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::api::PostParams;

    let namespaces: Api<Namespace> = Api::all(backend.client.clone());
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "team-web", "labels": {"jenkins.ci/jobs": "platform"}},
    }))
    .expect("a Namespace");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the team namespace");
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-git", "namespace": "team-web"},
        "stringData": {"username": "ci-bot", "password": "token"},
    }))
    .expect("a Secret");
    Api::<Secret>::namespaced(backend.client.clone(), "team-web")
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the git Secret");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/job-scm-environments.yaml"
    );
    let text = std::fs::read_to_string(path).expect("read the example");
    let job: JenkinsJob = serde_saphyr::from_str(&text).expect("parse the example");
    let jobs: Api<JenkinsJob> = Api::namespaced(backend.client.clone(), "team-web");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create the JenkinsJob");
    eventually("the JenkinsJob to be synced", || async {
        let live = jobs.get("web").await.ok()?;
        let synced = live.status.as_ref()?.conditions.iter().any(|c| {
            c.type_ == "Synced"
                && c.status == "True"
                && c.observed_generation == live.metadata.generation
        });
        synced.then_some(())
    })
    .await;
    jobs.delete("web", &Default::default())
        .await
        .expect("delete the JenkinsJob");
    eventually("the JenkinsJob to be gone", || async {
        jobs.get_opt("web").await.ok()?.is_none().then_some(())
    })
    .await;
}

/// A JenkinsBuild's life in the cluster's namespace: triggered, followed, deleted by its ttl;
/// and one deleted while it runs, which stops it.
async fn run_builds(backend: &Backend, cluster_name: &str) {
    let clusters: Api<JenkinsCluster> = Api::all(backend.client.clone());
    let cluster = clusters.get(cluster_name).await.expect("the cluster");
    let namespace = cluster_namespace(&cluster);
    let job: JenkinsJob = serde_json::from_value(serde_json::json!({
        "apiVersion": "jenkins.ci/v1alpha1",
        "kind": "JenkinsJob",
        "metadata": {"name": "hello", "namespace": namespace},
        "spec": {"cluster": cluster_name, "pipeline": {"script": "echo 'hi'"}},
    }))
    .expect("a JenkinsJob");
    let job = Api::<JenkinsJob>::namespaced(backend.client.clone(), &namespace)
        .create(&PostParams::default(), &job)
        .await
        .expect("create the JenkinsJob");

    // The JenkinsJob controller creates the Jenkins job.
    let jobs: Api<JenkinsJob> = Api::namespaced(backend.client.clone(), &namespace);
    eventually("the JenkinsJob to be synced", || async {
        let live = jobs.get("hello").await.ok()?;
        let synced = live.status.as_ref()?.conditions.iter().any(|c| {
            c.type_ == "Synced"
                && c.status == "True"
                && c.observed_generation == live.metadata.generation
        });
        synced.then_some(())
    })
    .await;
    let jenkins = backend.jenkins(cluster_name);
    let planned = plan(&job, &cluster).expect("the job plans");
    let path = JobPath::parse(&planned.jobs[0].full_name).expect("a path");

    let builds: Api<JenkinsBuild> = Api::namespaced(backend.client.clone(), &namespace);
    let spec = |ttl: Option<i32>| {
        serde_json::from_value::<JenkinsBuildSpec>(serde_json::json!({
            "job": "hello", "ttlSecondsAfterFinished": ttl,
        }))
        .expect("a spec")
    };
    let running = JenkinsBuild::new("stopped", spec(None));
    builds
        .create(&PostParams::default(), &running)
        .await
        .expect("create a build");
    eventually("the build to run", || async {
        let live = builds.get("stopped").await.ok()?;
        live.status?.build_number.map(|_| ())
    })
    .await;
    builds
        .delete("stopped", &DeleteParams::default())
        .await
        .expect("delete the running build");

    jenkins.set_job_outcome(
        &path.full_name(),
        Some(Outcome {
            result: BuildResult::Success,
            duration: Duration::ZERO,
            log: "hi\n".into(),
        }),
    );
    let finished = JenkinsBuild::new("finished", spec(Some(0)));
    builds
        .create(&PostParams::default(), &finished)
        .await
        .expect("create a build");
    for name in ["stopped", "finished"] {
        eventually("the builds to be gone", || async {
            builds.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_of_a_full_cluster_life_is_allowed_and_no_rule_is_unused() {
    let backend = Backend::start().await;
    let mut operator = Operator::start(&backend, Launch::new("op-rbac"));

    // The richest example, deleted with its volume: every kind of child, environments that
    // bind `edit`, pruning on change (an environment dropped, the agents moved, the Ingress
    // removed), and the cleanup of the volume and the namespace.
    let mut cluster = backend.example("cluster-agents-environments.yaml", "platform");
    cluster.spec.persistence.deletion_policy = DeletionPolicy::Delete;
    backend.create(&cluster).await;
    backend.wait_ready("platform").await;
    let mut needs_held = held_for_what_it_grants(&backend).await;
    run_builds(&backend, "platform").await;

    // A team's JenkinsJob with a git credential: the cluster is read, the team's namespace is
    // admitted by its labels, the Secret is copied, the jobs are synced, and on deletion the
    // jobs and the copy are removed.
    job_life(&backend).await;

    let api: Api<JenkinsCluster> = Api::all(backend.client.clone());
    let change = serde_json::json!({"spec": {
        "master": {"javaOpts": "-Xmx3g"},
        "agents": {"namespace": "platform-agents"},
        "environments": [{"name": "dev", "namespace": "app-dev"}],
        "ingress": null,
    }});
    api.patch("platform", &PatchParams::default(), &Patch::Merge(change))
        .await
        .expect("change the cluster");
    eventually("the change to be observed", || async {
        let live = api.get("platform").await.ok()?;
        (live.status?.observed_generation == live.metadata.generation).then_some(())
    })
    .await;
    backend.wait_ready("platform").await;
    needs_held.extend(held_for_what_it_grants(&backend).await);
    backend.delete_and_wait_gone("platform").await;
    operator.terminate();
    assert!(operator.wait_exit(Duration::from_secs(15)).await.success());

    // Every call is allowed: ClusterRole rules anywhere, Lease rules in the Lease's namespace.
    let rules = rules();
    let requests = backend.operator_requests();
    let mut used: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut denied = BTreeSet::new();
    for request in &requests {
        // Discovery is granted to every authenticated user (system:discovery).
        if request.verb == Verb::Discovery {
            continue;
        }
        for permission in needed(request) {
            let by_cluster_rule = rules.cluster_rules.iter().any(|r| grants(r, &permission));
            let by_lease_rule = request.namespace.as_deref() == Some("default")
                && rules.lease_rules.iter().any(|r| grants(r, &permission));
            if by_cluster_rule || by_lease_rule {
                used.insert(permission.key());
            } else {
                denied.insert(format!(
                    "{permission:?} for {} {}",
                    request.method, request.path
                ));
            }
        }
    }
    for permission in &needs_held {
        if rules.cluster_rules.iter().any(|r| grants(r, permission)) {
            used.insert(permission.key());
        } else {
            denied.insert(format!(
                "{permission:?} (held for what the operator grants)"
            ));
        }
    }
    assert!(
        denied.is_empty(),
        "calls the rules do not allow: {denied:#?}"
    );

    // Every granted permission is used, or kept for a reason written above.
    let mut unused = Vec::new();
    for rule in rules.cluster_rules.iter().chain(&rules.lease_rules) {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    let key = (group.clone(), resource.clone(), verb.clone());
                    if !used.contains(&key) {
                        unused.push(key);
                    }
                }
            }
        }
    }
    eprintln!("granted but not used in this run: {unused:#?}");
    let unexplained: Vec<_> = unused
        .iter()
        .filter(|(g, r, v)| !KEPT_WITHOUT_A_CALL.contains(&(g.as_str(), r.as_str(), v.as_str())))
        .collect();
    assert!(
        unexplained.is_empty(),
        "rules no call needs and no reason keeps: {unexplained:#?}"
    );
}

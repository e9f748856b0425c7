//! JenkinsBuild end to end: a JenkinsBuild is triggered exactly once, followed through the
//! Jenkins queue to its result, stopped when deleted, and removed after its ttl.
//!
//! The Jenkins job is created here, through the client with the config.xml `plan()` gives,
//! beside its JenkinsJob resource: the build controller needs only the resource to resolve
//! the job, not the JenkinsJob controller's work.

use std::sync::Arc;

use futures::StreamExt;
use jenkins_emulator::{BuildResult, JenkinsEmulator, Outcome};
use jenkins_operator::api::build::{BuildPhase, JenkinsBuild, JenkinsBuildSpec};
use jenkins_operator::api::{JenkinsCluster, JenkinsJob};
use jenkins_operator::cluster::cluster_namespace;
use jenkins_operator::jenkins::{JenkinsClient, JenkinsConfig, JobPath};
use jenkins_operator::job::config_xml::BUILD_ID_PARAMETER;
use jenkins_operator::job::plan;
use jenkins_operator::operator::jenkins_clients::read_admin_credentials;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use kube_emulator::{Fault, Verb};
use serde_json::json;
use url::Url;

use super::create_and_wait_ready;
use super::harness::{Env, REAL_JENKINS_ENV, eventually, patience};

/// The JenkinsJob every test builds, with one parameter of each type.
const JOB: &str = "hello";

/// A ready cluster, the JenkinsJob `hello` in its namespace, and that job in Jenkins.
struct Fixture {
    cluster: String,
    namespace: String,
    full_name: String,
    /// The emulated Jenkins; `None` on a real cluster.
    jenkins: Option<Arc<JenkinsEmulator>>,
    client: JenkinsClient,
}

fn job_spec(cluster: &str) -> serde_json::Value {
    json!({
        "cluster": cluster,
        "pipeline": { "script": "pipeline { agent any\n stages { stage('hi') { steps { echo \
                                 \"hello ${params.VERSION}\" } } } }" },
        "parameters": [
            { "name": "VERSION", "type": "string", "default": "1.0" },
            { "name": "DRY_RUN", "type": "boolean", "default": "false" },
            { "name": "REGION", "type": "choice", "choices": ["eu", "us"] },
        ],
    })
}

/// Sets up the fixture, or `None` (after saying why) when no Jenkins is reachable from here.
async fn fixture(env: &Env) -> Option<Fixture> {
    let cluster = env.example_cluster("cluster-minimal.yaml");
    let cluster = create_and_wait_ready(env, &cluster).await;
    let namespace = cluster_namespace(&cluster);
    let jenkins = env.jenkins_emulator(&cluster.name_any());
    let url = match &jenkins {
        Some(emulated) => emulated.url(),
        None => match std::env::var(REAL_JENKINS_ENV) {
            Ok(url) => Url::parse(&url).expect("JENKINS_OPERATOR_TEST_JENKINS_URL is a URL"),
            Err(_) => {
                eprintln!("skipping: set {REAL_JENKINS_ENV} to reach the cluster's Jenkins");
                return None;
            }
        },
    };

    let mut job: JenkinsJob = serde_json::from_value(json!({
        "apiVersion": "jenkins.ci/v1alpha1",
        "kind": "JenkinsJob",
        "metadata": { "name": JOB, "namespace": namespace },
        "spec": job_spec(&cluster.name_any()),
    }))
    .expect("a JenkinsJob");
    let jobs: Api<JenkinsJob> = Api::namespaced(env.client.clone(), &namespace);
    job = jobs
        .create(&PostParams::default(), &job)
        .await
        .expect("create the JenkinsJob");

    // The JenkinsJob controller creates the Jenkins job.
    let client = jenkins_client(env, &cluster, url).await;
    let planned = plan(&job, &cluster).expect("the job plans");
    let target = &planned.jobs[0];
    wait_synced(env, &namespace, JOB).await;
    Some(Fixture {
        cluster: cluster.name_any(),
        namespace,
        full_name: target.full_name.clone(),
        jenkins,
        client,
    })
}

/// Waits until the JenkinsJob controller has synced the job into Jenkins.
async fn wait_synced(env: &Env, namespace: &str, name: &str) {
    let jobs: Api<JenkinsJob> = Api::namespaced(env.client.clone(), namespace);
    eventually(
        &format!("JenkinsJob {namespace}/{name} to be synced"),
        || {
            let jobs = jobs.clone();
            async move {
                let live = jobs.get(name).await.ok()?;
                let synced = live.status.as_ref()?.conditions.iter().any(|c| {
                    c.type_ == "Synced"
                        && c.status == "True"
                        && c.observed_generation == live.metadata.generation
                });
                synced.then_some(())
            }
        },
    )
    .await;
}

async fn jenkins_client(env: &Env, cluster: &JenkinsCluster, url: Url) -> JenkinsClient {
    let admin = read_admin_credentials(&env.client, cluster)
        .await
        .expect("the admin credentials");
    JenkinsClient::new(JenkinsConfig::new(url, admin.username, admin.password))
        .expect("a Jenkins client")
}

fn build_named(name: &str, parameters: &[(&str, &str)]) -> JenkinsBuild {
    let parameters: Vec<_> = parameters
        .iter()
        .map(|(n, v)| json!({ "name": n, "value": v }))
        .collect();
    let spec: JenkinsBuildSpec =
        serde_json::from_value(json!({ "job": JOB, "parameters": parameters })).expect("spec");
    JenkinsBuild::new(name, spec)
}

async fn create(env: &Env, fx: &Fixture, build: &JenkinsBuild) -> JenkinsBuild {
    builds(env, fx)
        .create(&PostParams::default(), build)
        .await
        .expect("create the JenkinsBuild")
}

fn builds(env: &Env, fx: &Fixture) -> Api<JenkinsBuild> {
    Api::namespaced(env.client.clone(), &fx.namespace)
}

/// Waits until the build's status satisfies `check`.
async fn wait_for(
    env: &Env,
    fx: &Fixture,
    name: &str,
    what: &str,
    check: impl Fn(&JenkinsBuild) -> bool,
) -> JenkinsBuild {
    let api = builds(env, fx);
    eventually(&format!("JenkinsBuild {name}: {what}"), || {
        let api = api.clone();
        let check = &check;
        async move {
            let live = api.get_opt(name).await.ok()??;
            check(&live).then_some(live)
        }
    })
    .await
}

async fn wait_phase(env: &Env, fx: &Fixture, name: &str, phase: BuildPhase) -> JenkinsBuild {
    wait_for(env, fx, name, &format!("phase {phase:?}"), |b| {
        b.status.as_ref().and_then(|s| s.phase) == Some(phase)
            && (phase != BuildPhase::Running || number(b).is_some())
    })
    .await
}

async fn wait_gone(env: &Env, fx: &Fixture, name: &str) {
    let api = builds(env, fx);
    eventually(&format!("JenkinsBuild {name} to be gone"), || {
        let api = api.clone();
        async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
    })
    .await;
}

fn number(build: &JenkinsBuild) -> Option<u64> {
    build
        .status
        .as_ref()?
        .build_number
        .and_then(|n| u64::try_from(n).ok())
}

fn condition<'a>(build: &'a JenkinsBuild, type_: &str) -> Option<&'a Condition> {
    build
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Trigger POSTs the emulated Jenkins received for the resource with `uid`.
fn triggers(jenkins: &JenkinsEmulator, uid: &str) -> usize {
    let marker = format!("{BUILD_ID_PARAMETER}={uid}");
    jenkins
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/buildWithParameters"))
        .filter(|r| r.query.as_deref().is_some_and(|q| q.contains(&marker)))
        .count()
}

/// Requests about jobs, builds or the queue (not the cluster controller's health checks).
fn build_requests(jenkins: &JenkinsEmulator) -> Vec<String> {
    // The JenkinsJob controller reads jobs too; builds are triggers, the queue, numbered builds.
    let about_builds = |path: &str| {
        let last = path.trim_end_matches('/').rsplit('/').collect::<Vec<_>>();
        path.starts_with("/queue")
            || path.ends_with("/build")
            || path.ends_with("/buildWithParameters")
            || last
                .iter()
                .take(3)
                .any(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))
    };
    jenkins
        .requests()
        .iter()
        .filter(|r| about_builds(&r.path))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Sets how the job's builds end by themselves (emulator), with some console text.
fn builds_end_with(fx: &Fixture, result: BuildResult) {
    if let Some(jenkins) = &fx.jenkins {
        jenkins.set_job_outcome(
            &fx.full_name,
            Some(Outcome {
                result,
                duration: std::time::Duration::from_millis(300),
                log: "hello 2.0\n".into(),
            }),
        );
    }
}

#[tokio::test]
async fn a_parameterized_build_runs_once_and_reports_its_result_and_console() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    builds_end_with(&fx, BuildResult::Success);
    let created = create(
        &env,
        &fx,
        &build_named("hello-1", &[("VERSION", "2.0"), ("REGION", "us")]),
    )
    .await;

    let done = wait_phase(&env, &fx, "hello-1", BuildPhase::Succeeded).await;
    let status = done.status.clone().expect("status");
    assert_eq!(status.result.as_deref(), Some("SUCCESS"));
    assert_eq!(status.jenkins_job.as_deref(), Some(fx.full_name.as_str()));
    assert_eq!(status.build_id, created.uid());
    let number = status.build_number.expect("a build number");
    assert!(status.queue_id.is_some());
    let url = status.url.clone().expect("the build URL");
    assert!(url.ends_with(&format!("/job/hello/{number}/")), "{url}");
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    assert!(status.duration_seconds.is_some_and(|d| d >= 0));
    let tail = status.log_tail.clone().unwrap_or_default();
    assert!(tail.contains("hello 2.0"), "{tail}");
    let ready = condition(&done, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Succeeded")
    );
    assert_eq!(
        condition(&done, "Succeeded").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(
        condition(&done, "Reconciling").map(|c| c.status.as_str()),
        Some("False")
    );

    let Some(jenkins) = &fx.jenkins else {
        eprintln!("skipping the request and parameter checks: they need the Jenkins emulator");
        return;
    };
    let uid = created.uid().expect("a uid");
    assert_eq!(triggers(jenkins, &uid), 1, "exactly one trigger");
    let ran = jenkins
        .build(&fx.full_name, u64::try_from(number).expect("a number"))
        .expect("the build");
    let param = |name: &str| {
        ran.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(param("VERSION").as_deref(), Some("2.0"));
    assert_eq!(param("REGION").as_deref(), Some("us"));
    assert_eq!(param("DRY_RUN").as_deref(), Some("false"), "the default");
    assert_eq!(param(BUILD_ID_PARAMETER), Some(uid));
}

#[tokio::test]
async fn results_map_to_phases_unstable_succeeds_not_built_fails() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        eprintln!("skipping result mapping on a real Jenkins: it needs finish_build");
        return;
    };
    let cases = [
        (
            "failure",
            BuildResult::Failure,
            BuildPhase::Failed,
            "FAILURE",
        ),
        (
            "unstable",
            BuildResult::Unstable,
            BuildPhase::Succeeded,
            "UNSTABLE",
        ),
        (
            "not-built",
            BuildResult::NotBuilt,
            BuildPhase::Failed,
            "NOT_BUILT",
        ),
        (
            "aborted",
            BuildResult::Aborted,
            BuildPhase::Aborted,
            "ABORTED",
        ),
    ];
    for (name, ..) in &cases {
        // Distinct parameters would already keep Jenkins from merging them; the same ones
        // show that the id parameter does.
        create(&env, &fx, &build_named(name, &[("VERSION", "3")])).await;
    }
    for (name, result, phase, text) in cases {
        let running = wait_phase(&env, &fx, name, BuildPhase::Running).await;
        let n = number(&running).expect("a number");
        assert!(
            jenkins.finish_build(&fx.full_name, n, result),
            "build #{n} runs"
        );
        let done = wait_phase(&env, &fx, name, phase).await;
        let status = done.status.clone().expect("status");
        assert_eq!(status.result.as_deref(), Some(text));
        assert_eq!(
            condition(&done, "Ready").map(|c| c.status.as_str()),
            Some("True"),
            "a finished build is Ready whatever its result"
        );
        let succeeded = phase == BuildPhase::Succeeded;
        assert_eq!(
            condition(&done, "Succeeded").map(|c| c.status == "True"),
            Some(succeeded)
        );
    }
}

#[tokio::test]
async fn a_restart_between_the_trigger_and_the_queue_id_write_does_not_trigger_again() {
    let mut env = Env::start().await;
    let Some(kube) = env
        .emulator_or_skip("restart between trigger and status", "fault injection")
        .cloned()
    else {
        return;
    };
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        return;
    };

    // Hold Jenkins' answers so that the trigger waits while the marker is in the status.
    jenkins.pause();
    let created = create(&env, &fx, &build_named("once", &[("VERSION", "4")])).await;
    let uid = created.uid().expect("a uid");
    wait_for(&env, &fx, "once", "the trigger marker", |b| {
        b.status.as_ref().and_then(|s| s.build_id.as_deref()) == Some(uid.as_str())
    })
    .await;

    // From now on every status write fails: the queue id never reaches the status.
    kube.inject(Fault::FailNext {
        verb: Some(Verb::Patch),
        resource: Some("jenkinsbuilds".into()),
        count: u32::MAX,
        code: 500,
    });
    jenkins.unpause();
    eventually("Jenkins to queue the build", || async {
        (triggers(&jenkins, &uid) == 1).then_some(())
    })
    .await;
    env.stop_operator().await;
    kube.clear_faults();
    let stopped = builds(&env, &fx).get("once").await.expect("the build");
    let status = stopped.status.clone().expect("status");
    assert_eq!(status.queue_id, None, "the queue id write failed");
    assert_eq!(status.build_id.as_deref(), Some(uid.as_str()));

    // A new operator finds the build by its id parameter and follows it.
    env.start_operator().await;
    let running = wait_phase(&env, &fx, "once", BuildPhase::Running).await;
    let n = number(&running).expect("a number");
    assert!(jenkins.finish_build(&fx.full_name, n, BuildResult::Success));
    let done = wait_phase(&env, &fx, "once", BuildPhase::Succeeded).await;
    assert_eq!(done.status.and_then(|s| s.build_number), Some(n as i64));
    assert_eq!(triggers(&jenkins, &uid), 1, "triggered exactly once");
    let all = jenkins.requests();
    let all_triggers = all
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/buildWithParameters"))
        .count();
    assert_eq!(all_triggers, 1, "no other trigger either");
}

#[tokio::test]
async fn a_lost_trigger_answer_is_recovered_behind_more_than_a_hundred_newer_builds() {
    let mut env = Env::start().await;
    let Some(kube) = env
        .emulator_or_skip("recovery behind many builds", "fault injection")
        .cloned()
    else {
        return;
    };
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        return;
    };
    jenkins.set_job_outcome(
        &fx.full_name,
        Some(Outcome {
            result: BuildResult::Success,
            duration: std::time::Duration::ZERO,
            log: String::new(),
        }),
    );

    // The build reaches Jenkins, but its queue id never reaches the status.
    jenkins.pause();
    let created = create(&env, &fx, &build_named("buried", &[("VERSION", "7")])).await;
    let uid = created.uid().expect("a uid");
    wait_for(&env, &fx, "buried", "the trigger marker", |b| {
        b.status.as_ref().and_then(|s| s.build_id.as_deref()) == Some(uid.as_str())
    })
    .await;
    kube.inject(Fault::FailNext {
        verb: Some(Verb::Patch),
        resource: Some("jenkinsbuilds".into()),
        count: u32::MAX,
        code: 500,
    });
    jenkins.unpause();
    eventually("Jenkins to queue the build", || async {
        (triggers(&jenkins, &uid) == 1).then_some(())
    })
    .await;
    env.stop_operator().await;
    kube.clear_faults();

    // While the operator is away, the job builds 120 more times: Jenkins' `builds` list (the
    // newest 100) no longer shows the buried build, and its queue item is long forgotten.
    let path = JobPath::parse(&fx.full_name).expect("path");
    for n in 0..120 {
        let version = format!("filler-{n}");
        fx.client
            .trigger_build(&path, &[("VERSION".to_string(), version)])
            .await
            .expect("trigger a filler build");
    }
    eventually("the filler builds to start", || async {
        jenkins.build(&fx.full_name, 121).map(|_| ())
    })
    .await;
    jenkins.forget_left_items();

    // A new operator finds the build by its id parameter, deep in the job's history.
    jenkins.clear_requests();
    env.start_operator().await;
    let done = wait_phase(&env, &fx, "buried", BuildPhase::Succeeded).await;
    assert_eq!(done.status.and_then(|s| s.build_number), Some(1));
    assert_eq!(triggers(&jenkins, &uid), 0, "not triggered again");
    let pages = jenkins
        .requests()
        .iter()
        .filter(|r| r.query.as_deref().is_some_and(|q| q.contains("allBuilds")))
        .count();
    assert!(
        pages <= 2,
        "{pages} pages of builds read to find build #1 of 121"
    );
}

#[tokio::test]
async fn a_second_replica_does_not_trigger_again_while_the_first_replicas_trigger_is_on_its_way() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        eprintln!("skipping the hand-over on a real Jenkins: it holds a request in the emulator");
        return;
    };

    // The first replica's trigger is on its way (a slow network, a busy Jenkins): Jenkins has
    // received it but has neither a queue item nor a build for it yet.
    jenkins.inject(jenkins_emulator::Fault::Hold {
        path_suffix: "/buildWithParameters".into(),
        count: 1,
    });
    let created = create(&env, &fx, &build_named("handover", &[("VERSION", "9")])).await;
    let uid = created.uid().expect("a uid");
    eventually("the first replica's trigger to be on its way", || async {
        (jenkins.held() == 1).then_some(())
    })
    .await;
    let marked = builds(&env, &fx).get("handover").await.expect("the build");
    let status = marked.status.unwrap_or_default();
    assert_eq!(status.build_id.as_deref(), Some(uid.as_str()));
    assert_eq!(status.queue_id, None);

    // A second replica, the new leader of a hand-over, finds the marker without a queue id and
    // looks in Jenkins: nothing there yet. It must not trigger again.
    let _replica = env.start_replica();
    let api = builds(&env, &fx);
    eventually("the second replica to trigger again or to wait", || {
        let api = api.clone();
        let jenkins = jenkins.clone();
        let uid = uid.clone();
        async move {
            let triggered = triggers(&jenkins, &uid) > 0;
            let live = api.get("handover").await.ok()?;
            let waiting =
                condition(&live, "Reconciling").is_some_and(|c| c.message.contains("on its way"));
            (triggered || waiting).then_some(())
        }
    })
    .await;

    // The first replica's trigger lands: that build is the one both replicas follow.
    jenkins.release_held();
    let running = wait_phase(&env, &fx, "handover", BuildPhase::Running).await;
    let n = number(&running).expect("a number");
    let ran = jenkins.build(&fx.full_name, n).expect("the build");
    assert!(
        ran.params
            .iter()
            .any(|(k, v)| k == BUILD_ID_PARAMETER && *v == uid)
    );
    assert!(jenkins.finish_build(&fx.full_name, n, BuildResult::Success));
    let done = wait_phase(&env, &fx, "handover", BuildPhase::Succeeded).await;
    assert_eq!(done.status.and_then(|s| s.build_number), Some(n as i64));
    assert_eq!(triggers(&jenkins, &uid), 1, "triggered exactly once");
    assert!(
        jenkins.build(&fx.full_name, n + 1).is_none(),
        "no second build"
    );
}

#[tokio::test]
async fn a_trigger_that_never_reached_jenkins_is_sent_again_once_none_can_still_land() {
    let mut env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        eprintln!("skipping the lost trigger on a real Jenkins: it pauses the emulator");
        return;
    };
    builds_end_with(&fx, BuildResult::Success);

    // The operator stops while its trigger waits for Jenkins: nothing reaches Jenkins.
    jenkins.pause();
    let created = create(&env, &fx, &build_named("unsent", &[])).await;
    let uid = created.uid().expect("a uid");
    wait_for(&env, &fx, "unsent", "the trigger marker", |b| {
        b.status.as_ref().and_then(|s| s.build_id.as_deref()) == Some(uid.as_str())
    })
    .await;
    env.stop_operator().await;
    jenkins.unpause();
    assert_eq!(triggers(&jenkins, &uid), 0);

    // A new operator cannot tell a trigger still on its way from one never sent: it waits
    // until none could still land, looks once more, and triggers again.
    let restarted = std::time::Instant::now();
    env.start_operator().await;
    wait_for(
        &env,
        &fx,
        "unsent",
        "waiting for a trigger on its way",
        |b| condition(b, "Reconciling").is_some_and(|c| c.message.contains("on its way")),
    )
    .await;
    let done = wait_phase(&env, &fx, "unsent", BuildPhase::Succeeded).await;
    let fence = env.settings.trigger_deadline + env.settings.trigger_settle;
    assert!(
        restarted.elapsed() >= fence,
        "triggered again after {:?}, before the fence of {fence:?}",
        restarted.elapsed()
    );
    assert_eq!(done.status.and_then(|s| s.trigger_attempt), Some(2));
    assert_eq!(triggers(&jenkins, &uid), 1);
}

#[tokio::test]
async fn a_refused_trigger_is_sent_again_at_once_by_the_replica_that_sent_it() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        eprintln!("skipping the refused trigger on a real Jenkins: it injects a failure");
        return;
    };
    builds_end_with(&fx, BuildResult::Success);

    // Jenkins answers the first trigger with a 500: the answer says the request is over, so
    // the operator that sent it need not wait for it to land before looking and triggering.
    let path = JobPath::parse(&fx.full_name).expect("path");
    let trigger_path = format!("/{}buildWithParameters", path.url_path());
    jenkins.inject(jenkins_emulator::Fault::FailNext {
        path_prefix: trigger_path.clone(),
        count: 1,
        status: 500,
    });
    let started = std::time::Instant::now();
    create(&env, &fx, &build_named("refused-once", &[])).await;
    let done = wait_phase(&env, &fx, "refused-once", BuildPhase::Succeeded).await;
    assert!(
        started.elapsed() < env.settings.trigger_deadline,
        "took {:?}: the sender waited for its own answered trigger",
        started.elapsed()
    );
    assert_eq!(done.status.and_then(|s| s.trigger_attempt), Some(2));
    let answers: Vec<u16> = jenkins
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == trigger_path)
        .map(|r| r.status)
        .collect();
    assert_eq!(answers, [500, 201]);
}

#[tokio::test]
async fn a_queue_item_jenkins_forgot_is_still_resolved_to_its_build() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        eprintln!("skipping the forgotten queue item on a real Jenkins: it needs the emulator");
        return;
    };
    // The operator cannot read queue items until the item is forgotten.
    jenkins.inject(jenkins_emulator::Fault::FailNext {
        path_prefix: "/queue/item/".into(),
        count: u32::MAX,
        status: 502,
    });
    create(&env, &fx, &build_named("forgotten", &[])).await;
    let queued = wait_for(&env, &fx, "forgotten", "a queue id", |b| {
        b.status.as_ref().and_then(|s| s.queue_id).is_some()
    })
    .await;
    let queue_id = queued.status.and_then(|s| s.queue_id).expect("queue id");
    eventually("the build to start in Jenkins", || async {
        jenkins.build(&fx.full_name, 1).map(|_| ())
    })
    .await;
    jenkins.forget_left_items();
    jenkins.clear_faults();

    let running = wait_phase(&env, &fx, "forgotten", BuildPhase::Running).await;
    assert_eq!(number(&running), Some(1));
    let item_path = format!("/queue/item/{queue_id}/api/json");
    assert!(
        jenkins
            .requests()
            .iter()
            .any(|r| r.path == item_path && r.status == 404),
        "the operator met the forgotten item"
    );
    assert!(jenkins.finish_build(&fx.full_name, 1, BuildResult::Success));
    wait_phase(&env, &fx, "forgotten", BuildPhase::Succeeded).await;
}

#[tokio::test]
async fn two_identical_builds_created_together_get_a_build_each() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        eprintln!("skipping identical builds on a real Jenkins: it needs the emulator");
        return;
    };
    let (twin_a, twin_b) = (
        build_named("twin-a", &[("VERSION", "5")]),
        build_named("twin-b", &[("VERSION", "5")]),
    );
    let (a, b) = tokio::join!(create(&env, &fx, &twin_a), create(&env, &fx, &twin_b));
    let ra = wait_phase(&env, &fx, "twin-a", BuildPhase::Running).await;
    let rb = wait_phase(&env, &fx, "twin-b", BuildPhase::Running).await;
    let (na, nb) = (number(&ra).expect("a"), number(&rb).expect("b"));
    assert_ne!(na, nb, "two builds");
    for (created, n) in [(&a, na), (&b, nb)] {
        let uid = created.uid().expect("uid");
        let ran = jenkins.build(&fx.full_name, n).expect("the build");
        assert!(
            ran.params
                .iter()
                .any(|(k, v)| k == BUILD_ID_PARAMETER && *v == uid),
            "build #{n} belongs to {}",
            created.name_any()
        );
        assert_eq!(triggers(&jenkins, &uid), 1);
        assert!(jenkins.finish_build(&fx.full_name, n, BuildResult::Success));
    }
    wait_phase(&env, &fx, "twin-a", BuildPhase::Succeeded).await;
    wait_phase(&env, &fx, "twin-b", BuildPhase::Succeeded).await;
}

#[tokio::test]
async fn deleting_a_running_build_aborts_it_unless_asked_to_keep_it_running() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        eprintln!("skipping deletion on a real Jenkins: it needs builds that wait");
        return;
    };
    create(&env, &fx, &build_named("doomed", &[])).await;
    let mut kept = build_named("kept", &[]);
    kept.annotations_mut()
        .insert("jenkins.ci/keep-running".into(), "true".into());
    create(&env, &fx, &kept).await;
    let doomed = number(&wait_phase(&env, &fx, "doomed", BuildPhase::Running).await).expect("#");
    let kept = number(&wait_phase(&env, &fx, "kept", BuildPhase::Running).await).expect("#");

    for name in ["doomed", "kept"] {
        builds(&env, &fx)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    wait_gone(&env, &fx, "doomed").await;
    wait_gone(&env, &fx, "kept").await;

    let aborted = jenkins.build(&fx.full_name, doomed).expect("the build");
    assert_eq!(aborted.result, Some(BuildResult::Aborted));
    let running = jenkins.build(&fx.full_name, kept).expect("the build");
    assert_eq!(running.result, None, "the kept build still runs");
    let stop = format!("/{kept}/stop");
    assert!(
        !jenkins.requests().iter().any(|r| r.path.ends_with(&stop)),
        "no stop was sent for the kept build"
    );
}

#[tokio::test]
async fn deleting_a_build_whose_queue_item_already_left_stops_the_build() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        eprintln!("skipping the left queue item on a real Jenkins: it needs the emulator");
        return;
    };
    // The operator cannot read queue items: its status stays at the queue id while the
    // build starts in Jenkins.
    jenkins.inject(jenkins_emulator::Fault::FailNext {
        path_prefix: "/queue/item/".into(),
        count: u32::MAX,
        status: 502,
    });
    create(&env, &fx, &build_named("left", &[])).await;
    let queued = wait_for(&env, &fx, "left", "a queue id", |b| {
        b.status.as_ref().and_then(|s| s.queue_id).is_some()
    })
    .await;
    assert_eq!(queued.status.and_then(|s| s.build_number), None);
    eventually("the build to start in Jenkins", || async {
        jenkins.build(&fx.full_name, 1).map(|_| ())
    })
    .await;

    // Jenkins still remembers the left item: cancelling it is refused (500), not 404.
    builds(&env, &fx)
        .delete("left", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the operator to try to cancel the item", || async {
        let refused = jenkins
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == "/queue/cancelItem" && r.status == 500);
        refused.then_some(())
    })
    .await;
    // Its first look at the item sees `executable: null` (the build is not named yet): the
    // finalizer must stay until the build is found and stopped.
    jenkins.clear_faults();
    wait_gone(&env, &fx, "left").await;
    // The emulator, like Jenkins, writes ABORTED a moment after the stop.
    eventually("the build to be aborted", || async {
        let build = jenkins.build(&fx.full_name, 1)?;
        (build.result == Some(BuildResult::Aborted)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_chatty_build_is_polled_no_faster_than_the_poll_interval() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        eprintln!("skipping the chatty build on a real Jenkins: it counts emulator requests");
        return;
    };
    create(&env, &fx, &build_named("chatty", &[])).await;
    let n = number(&wait_phase(&env, &fx, "chatty", BuildPhase::Running).await).expect("#");

    // The console grows all the time: every poll sees a change and writes the status, and
    // every status write is an event for the controller. Those events must not poll again
    // before the poll interval.
    jenkins.clear_requests();
    let lasted = std::time::Duration::from_secs(2);
    let started = std::time::Instant::now();
    let mut line = 0;
    while started.elapsed() < lasted {
        line += 1;
        jenkins.append_log(&fx.full_name, n, &format!("line {line}\n"));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let polls = jenkins
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/logText/progressiveText"))
        .count();
    let most = (lasted.as_millis() / env.settings.build_poll_min.as_millis()) as usize + 5;
    assert!(
        polls <= most,
        "{polls} console polls in {lasted:?}, at most {most} expected"
    );
    assert!(jenkins.finish_build(&fx.full_name, n, BuildResult::Success));
    wait_phase(&env, &fx, "chatty", BuildPhase::Succeeded).await;
}

#[tokio::test]
async fn a_blocked_build_is_not_written_again_while_only_its_eta_changes() {
    let env = Env::start().await;
    let Some(kube) = env
        .emulator_or_skip("status writes while blocked", "the request log")
        .cloned()
    else {
        return;
    };
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        return;
    };

    // One build at a time: a second build waits in the queue, blocked by the first, and
    // Jenkins' why counts the first one's ETA down.
    let jobs: Api<JenkinsJob> = Api::namespaced(env.client.clone(), &fx.namespace);
    jobs.patch(
        JOB,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({ "spec": { "concurrentBuilds": false } })),
    )
    .await
    .expect("forbid concurrent builds");
    wait_synced(&env, &fx.namespace, JOB).await;
    eventually("the job to forbid concurrent builds", || async {
        let config = jenkins.job_config(&fx.full_name)?;
        config
            .contains("DisableConcurrentBuildsJobProperty")
            .then_some(())
    })
    .await;
    jenkins.set_job_outcome(
        &fx.full_name,
        Some(Outcome {
            result: BuildResult::Success,
            duration: std::time::Duration::from_secs(60),
            log: String::new(),
        }),
    );
    create(&env, &fx, &build_named("ahead", &[])).await;
    let n = number(&wait_phase(&env, &fx, "ahead", BuildPhase::Running).await).expect("#");
    create(&env, &fx, &build_named("behind", &[])).await;
    let blocked = wait_for(&env, &fx, "behind", "blocked", |b| {
        condition(b, "Reconciling").is_some_and(|c| c.message.contains("already in progress"))
    })
    .await;

    // Several polls see a new ETA each second: the status says nothing new, so no write.
    kube.clear_requests();
    jenkins.clear_requests();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let polls = jenkins
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/queue/item/"))
        .count();
    assert!(polls >= 3, "{polls} polls of the blocked queue item");
    let writes: Vec<String> = kube
        .requests()
        .iter()
        .filter(|r| r.method != "GET" && r.path.contains("/jenkinsbuilds/behind"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        writes.is_empty(),
        "status written while blocked: {writes:#?}"
    );
    let message = condition(&blocked, "Reconciling")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&format!("Build #{n} is already in progress")),
        "{message}"
    );
    assert!(!message.contains("ETA"), "an ETA goes stale: {message}");

    // The build ahead finishes: the one behind runs.
    assert!(jenkins.finish_build(&fx.full_name, n, BuildResult::Success));
    let m = number(&wait_phase(&env, &fx, "behind", BuildPhase::Running).await).expect("#");
    assert!(jenkins.finish_build(&fx.full_name, m, BuildResult::Success));
    wait_phase(&env, &fx, "behind", BuildPhase::Succeeded).await;
}

#[tokio::test]
async fn a_job_that_lost_the_id_parameter_is_not_triggered_until_it_has_it_again() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        eprintln!("skipping the lost id parameter on a real Jenkins: it edits the job");
        return;
    };
    // A Jenkinsfile `parameters { }` directive replaces the job's parameters when it runs:
    // the id parameter is gone until the drift check puts it back. Jenkins ignores values
    // of undeclared parameters, so a build triggered now could never be found again.
    let declared = jenkins.job_config(&fx.full_name).expect("the job");
    let marker = format!("<name>{BUILD_ID_PARAMETER}</name>");
    let at = declared.find(&marker).expect("the id parameter");
    let open = "<hudson.model.StringParameterDefinition>";
    let close = "</hudson.model.StringParameterDefinition>";
    let start = declared[..at].rfind(open).expect("its definition");
    let end = at + declared[at..].find(close).expect("its end") + close.len();
    let without = format!("{}{}", &declared[..start], &declared[end..]);
    jenkins.set_job_config_raw(&fx.full_name, &without);

    let created = create(&env, &fx, &build_named("identified", &[])).await;
    let uid = created.uid().expect("uid");
    let waiting = wait_for(
        &env,
        &fx,
        "identified",
        "waiting for the id parameter",
        |b| condition(b, "Reconciling").is_some_and(|c| c.message.contains(BUILD_ID_PARAMETER)),
    )
    .await;
    assert_eq!(waiting.status.and_then(|s| s.queue_id), None);
    assert_eq!(triggers(&jenkins, &uid), 0, "not triggered");
    // It looks again after the progress poll, not as fast as its own status writes go.
    jenkins.clear_requests();
    tokio::time::sleep(env.settings.progress_poll * 3).await;
    let path = JobPath::parse(&fx.full_name).expect("path");
    let job_api = format!("/{}api/json", path.url_path().trim_start_matches('/'));
    let looks = jenkins
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == job_api)
        .count();
    assert!(
        looks <= 6,
        "{looks} reads of the job in three progress polls"
    );

    // The drift check puts the parameter back: the build runs, and carries its id.
    jenkins.set_job_config_raw(&fx.full_name, &declared);
    let running = wait_phase(&env, &fx, "identified", BuildPhase::Running).await;
    let n = number(&running).expect("#");
    let ran = jenkins.build(&fx.full_name, n).expect("the build");
    assert!(
        ran.params
            .iter()
            .any(|(k, v)| k == BUILD_ID_PARAMETER && *v == uid),
        "{:?}",
        ran.params
    );
    assert!(jenkins.finish_build(&fx.full_name, n, BuildResult::Success));
}

#[tokio::test]
async fn a_finished_build_is_deleted_after_its_ttl() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    builds_end_with(&fx, BuildResult::Success);

    // A watch sees every state, however short: polling could miss the finished one.
    let mut events = watcher(builds(&env, &fx), watcher::Config::default()).boxed();
    let mut build = build_named("short-lived", &[]);
    build.spec.ttl_seconds_after_finished = Some(1);
    create(&env, &fx, &build).await;
    let mut finished_at = None;
    let deleted_at = tokio::time::timeout(patience(), async {
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(b) | watcher::Event::InitApply(b))
                    if b.name_any() == "short-lived" =>
                {
                    let status = b.status.clone().unwrap_or_default();
                    if status.phase == Some(BuildPhase::Succeeded) && finished_at.is_none() {
                        finished_at = status.completion_time.map(|t| t.0);
                    }
                }
                Ok(watcher::Event::Delete(b)) if b.name_any() == "short-lived" => {
                    return Timestamp::now();
                }
                _ => {}
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("the build to be deleted after its ttl");
    let finished_at = finished_at.expect("the build was seen Succeeded before it went");
    let lived = deleted_at.as_millisecond() - finished_at.as_millisecond();
    assert!(lived >= 1000, "deleted {lived} ms after it finished");
    wait_gone(&env, &fx, "short-lived").await;
}

#[tokio::test]
async fn builds_that_cannot_run_fail_clearly_without_reaching_jenkins() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    if let Some(jenkins) = &fx.jenkins {
        jenkins.clear_requests();
    }

    // A bad parameter, a job that does not exist, a target the job does not have.
    create(
        &env,
        &fx,
        &build_named("bad", &[("REGION", "mars"), ("NOPE", "1")]),
    )
    .await;
    let mut missing = build_named("missing", &[]);
    missing.spec.job = "nope".into();
    create(&env, &fx, &missing).await;
    let mut elsewhere = build_named("elsewhere", &[]);
    elsewhere.spec.environment = Some("prod".into());
    create(&env, &fx, &elsewhere).await;

    for (name, reason, text) in [
        (
            "bad",
            "BadParameter",
            "REGION must be one of eu, us, not \"mars\"",
        ),
        ("missing", "JobMissing", "job missing"),
        ("elsewhere", "UnknownTarget", "no job for environment prod"),
    ] {
        let failed = wait_for(&env, &fx, name, "Stalled", |b| {
            condition(b, "Stalled").is_some_and(|c| c.status == "True")
        })
        .await;
        let status = failed.status.clone().expect("status");
        assert_eq!(status.phase, Some(BuildPhase::Failed), "{name}");
        let message = status.message.unwrap_or_default();
        assert!(message.contains(text), "{name}: {message}");
        let ready = condition(&failed, "Ready").expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reason)
        );
    }
    if let Some(jenkins) = &fx.jenkins {
        let seen = build_requests(jenkins);
        assert!(seen.is_empty(), "Jenkins was contacted: {seen:#?}");
    }

    // The missing job appears: the build that waited for it runs.
    builds_end_with(&fx, BuildResult::Success);
    let cluster = fx.cluster.clone();
    let job: JenkinsJob = serde_json::from_value(json!({
        "apiVersion": "jenkins.ci/v1alpha1",
        "kind": "JenkinsJob",
        "metadata": { "name": "nope", "namespace": fx.namespace },
        "spec": job_spec(&cluster),
    }))
    .expect("a JenkinsJob");
    Api::<JenkinsJob>::namespaced(env.client.clone(), &fx.namespace)
        .create(&PostParams::default(), &job)
        .await
        .expect("create the missing JenkinsJob");
    let nope = JobPath::parse(&format!("{}/nope", fx.namespace)).expect("path");
    let planned = {
        let clusters: Api<JenkinsCluster> = Api::all(env.client.clone());
        let cluster = clusters.get(&cluster).await.expect("the cluster");
        let mut job = job.clone();
        job.metadata.namespace = Some(fx.namespace.clone());
        plan(&job, &cluster).expect("plans")
    };
    assert_eq!(planned.jobs[0].full_name, nope.full_name());
    wait_synced(&env, &fx.namespace, "nope").await;
    if let Some(jenkins) = &fx.jenkins {
        jenkins.set_job_outcome(
            &nope.full_name(),
            Some(Outcome {
                result: BuildResult::Success,
                duration: std::time::Duration::ZERO,
                log: String::new(),
            }),
        );
        // The build may have started the moment the job appeared, before its outcome was set.
        if jenkins.build(&nope.full_name(), 1).is_some() {
            jenkins.finish_build(&nope.full_name(), 1, BuildResult::Success);
        }
    }
    wait_phase(&env, &fx, "missing", BuildPhase::Succeeded).await;
}

#[tokio::test]
async fn a_disabled_job_fails_the_build_with_the_minimum_of_requests() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        eprintln!("skipping the disabled job on a real Jenkins: it counts emulator requests");
        return;
    };

    // Disabled in Jenkins (drift the JenkinsJob controller would repair): one refused POST.
    let path = JobPath::parse(&fx.full_name).expect("path");
    fx.client.disable_job(&path).await.expect("disable");
    jenkins.clear_requests();
    create(&env, &fx, &build_named("refused", &[])).await;
    let failed = wait_for(&env, &fx, "refused", "Stalled", |b| {
        condition(b, "Stalled").is_some_and(|c| c.status == "True")
    })
    .await;
    let ready = condition(&failed, "Ready").expect("Ready");
    assert_eq!(ready.reason, "JobNotBuildable");
    assert!(ready.message.contains("disabled"), "{}", ready.message);
    // One refused POST; after it, the operator only reads whether the job builds again.
    let seen = build_requests(&jenkins);
    let posts: Vec<&String> = seen.iter().filter(|r| !r.starts_with("GET")).collect();
    assert_eq!(posts.len(), 1, "one trigger POST: {seen:#?}");
    assert!(posts[0].ends_with("/buildWithParameters"));
    assert!(seen.len() <= 3, "a few reads at most: {seen:#?}");

    // Enabled again, the job builds: the status looks again at the next resync.
    builds_end_with(&fx, BuildResult::Success);
    fx.client.enable_job(&path).await.expect("enable");
    wait_phase(&env, &fx, "refused", BuildPhase::Succeeded).await;

    // Disabled in the JenkinsJob: not even that.
    jenkins.clear_requests();
    let jobs: Api<JenkinsJob> = Api::namespaced(env.client.clone(), &fx.namespace);
    jobs.patch(
        JOB,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({ "spec": { "disabled": true } })),
    )
    .await
    .expect("disable the JenkinsJob");
    create(&env, &fx, &build_named("disabled", &[])).await;
    let failed = wait_for(&env, &fx, "disabled", "Stalled", |b| {
        condition(b, "Stalled").is_some_and(|c| c.status == "True")
    })
    .await;
    let ready = condition(&failed, "Ready").expect("Ready");
    assert_eq!(ready.reason, "JobDisabled");
    assert!(ready.message.contains("spec.disabled"), "{}", ready.message);
    let seen: Vec<String> = build_requests(&jenkins)
        .into_iter()
        .filter(|r| r.contains("build"))
        .collect();
    assert!(seen.is_empty(), "{seen:#?}");
}

#[tokio::test]
async fn the_console_tail_grows_with_each_poll_from_the_stored_cursor() {
    let env = Env::start().await;
    let Some(fx) = fixture(&env).await else {
        return;
    };
    let Some(jenkins) = fx.jenkins.clone() else {
        eprintln!("skipping the console tail on a real Jenkins: it appends to the log");
        return;
    };
    create(&env, &fx, &build_named("chatty", &[])).await;
    let n = number(&wait_phase(&env, &fx, "chatty", BuildPhase::Running).await).expect("#");
    let tail_has = |texts: &'static [&'static str]| {
        move |b: &JenkinsBuild| {
            let tail = b
                .status
                .as_ref()
                .and_then(|s| s.log_tail.clone())
                .unwrap_or_default();
            texts.iter().all(|t| tail.contains(t))
        }
    };
    jenkins.append_log(&fx.full_name, n, "step one\n");
    wait_for(&env, &fx, "chatty", "step one", tail_has(&["step one"])).await;
    jenkins.append_log(&fx.full_name, n, "step two\n");
    let two = wait_for(&env, &fx, "chatty", "step two", tail_has(&["step two"])).await;
    let tail = two.status.and_then(|s| s.log_tail).unwrap_or_default();
    assert_eq!(tail.matches("step one").count(), 1, "read once: {tail}");
    assert!(jenkins.finish_build(&fx.full_name, n, BuildResult::Success));
    let done = wait_phase(&env, &fx, "chatty", BuildPhase::Succeeded).await;
    let tail = done.status.and_then(|s| s.log_tail).unwrap_or_default();
    assert!(
        tail.starts_with("Started by user\nstep one\nstep two\n"),
        "{tail}"
    );
    assert!(tail.ends_with("Finished: SUCCESS\n"), "{tail}");
    // Later reads start from Jenkins' cursor, not from the beginning again.
    let resumed = jenkins.requests().iter().any(|r| {
        r.path.ends_with("/logText/progressiveText")
            && r.query.as_deref().is_some_and(|q| q != "start=0")
    });
    assert!(resumed, "the console is read from the stored cursor");
}

#[tokio::test]
async fn a_finished_build_is_not_written_again_when_the_operator_restarts() {
    let mut env = Env::start().await;
    let Some(kube) = env
        .emulator_or_skip("zero writes for finished builds", "the request log")
        .cloned()
    else {
        return;
    };
    let Some(fx) = fixture(&env).await else {
        return;
    };
    builds_end_with(&fx, BuildResult::Success);
    create(&env, &fx, &build_named("settled", &[])).await;
    wait_phase(&env, &fx, "settled", BuildPhase::Succeeded).await;

    env.stop_operator().await;
    kube.clear_requests();
    env.start_operator().await;
    // A build created after the restart finishing shows the new operator has worked through
    // the existing ones.
    create(&env, &fx, &build_named("later", &[])).await;
    wait_phase(&env, &fx, "later", BuildPhase::Succeeded).await;
    let writes: Vec<String> = kube
        .requests()
        .iter()
        .filter(|r| r.method != "GET" && r.path.contains("/jenkinsbuilds/settled"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        writes.is_empty(),
        "the finished build was written: {writes:#?}"
    );
}

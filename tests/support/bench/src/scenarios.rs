//! The JenkinsCluster scenarios: idle memory, (a) one cluster, (b) many, (d) a converged
//! resync, and the cluster half of (e).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use jenkins_operator::api::JenkinsCluster;
use jenkins_operator::cluster::casc::configuration_marker;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::backend::{Backend, Mark};
use super::operator::OperatorProcess;
use super::{Measurement, Options};

/// How many creations the benchmark sends at once.
pub const CREATE_CONCURRENCY: usize = 16;

/// Idle memory, (a), and the cluster half of (e), on one cluster named `ci`.
pub async fn one_cluster(options: &Options, spec_change: bool) -> anyhow::Result<Vec<Measurement>> {
    let mut results = Vec::new();
    let backend = Backend::start(&["ci".to_string()], options.latency).await?;

    // Idle: started, caches synced, nothing to do.
    let mark = backend.mark();
    let started = Instant::now();
    let operator = start_operator(options, &backend, options.resync_seconds).await?;
    let ready_after = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    results.push(measure(
        "idle: started, no resources",
        Some(ready_after),
        &backend,
        &mark,
        &operator,
        format!(
            "wall time: process start to /readyz 200; RSS is {}",
            operator.breakdown().unwrap_or_default()
        ),
    ));

    // (a) One new cluster to Ready.
    let fresh_peak = operator.reset_peak();
    let mark = backend.mark();
    let started = Instant::now();
    let clusters: Api<JenkinsCluster> = Api::all(backend.client.clone());
    clusters
        .create(&PostParams::default(), &new_cluster("ci")?)
        .await
        .context("failed to create the JenkinsCluster")?;
    wait_until_all(clusters.clone(), 1, cluster_ready, options.patience).await?;
    results.push(measure(
        "(a) 1 JenkinsCluster to Ready",
        Some(started.elapsed()),
        &backend,
        &mark,
        &operator,
        peak_note(fresh_peak),
    ));

    // (e) One spec change to Jenkins running it: a new agent container cap changes the
    // operator's JCasC, which Jenkins hot-reloads.
    if spec_change {
        settle(&backend, Duration::from_secs(1), options.patience).await;
        let fresh_peak = operator.reset_peak();
        let mark = backend.mark();
        let started = Instant::now();
        let patch = json!({"spec": {"agents": {"containerCap": 11}}});
        let patched = clusters
            .patch("ci", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .context("failed to patch the JenkinsCluster")?;
        let marker = configuration_marker(&patched, "");
        let jenkins = backend
            .jenkins
            .get("ci")
            .context("the Jenkins of ci")?
            .clone();
        let deadline = started + options.patience;
        while !jenkins.system_message().contains(&marker) {
            if Instant::now() > deadline {
                bail!("Jenkins did not load the changed configuration in time");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let applied = started.elapsed();
        wait_until_all(clusters, 1, cluster_ready, options.patience).await?;
        let ready = started.elapsed();
        results.push(measure(
            "(e) 1 JenkinsCluster spec change to Jenkins reloaded",
            Some(applied),
            &backend,
            &mark,
            &operator,
            format!(
                "patch to the new JCasC loaded in Jenkins; Ready for the new generation after \
                 {}; {}",
                seconds(ready),
                peak_note(fresh_peak)
            ),
        ));
    }
    operator.stop().await?;
    Ok(results)
}

/// (b) `options.clusters` new clusters to Ready, then (d) a resync of them all.
pub async fn many_clusters(options: &Options, steady: bool) -> anyhow::Result<Vec<Measurement>> {
    let mut results = Vec::new();
    let names: Vec<String> = (0..options.clusters)
        .map(|i| format!("bench-{i:03}"))
        .collect();
    let backend = Backend::start(&names, options.latency).await?;
    let operator = start_operator(options, &backend, options.resync_seconds).await?;
    let clusters: Api<JenkinsCluster> = Api::all(backend.client.clone());

    // (b) Many new clusters to Ready.
    let fresh_peak = operator.reset_peak();
    let mark = backend.mark();
    let started = Instant::now();
    let objects = names
        .iter()
        .map(|n| new_cluster(n))
        .collect::<Result<Vec<_>, _>>()?;
    futures::stream::iter(objects)
        .map(|cluster| {
            let api = clusters.clone();
            async move { api.create(&PostParams::default(), &cluster).await }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .context("failed to create the JenkinsClusters")?;
    let patience = options.patience * 4;
    wait_until_all(clusters.clone(), names.len(), cluster_ready, patience).await?;
    let wall = started.elapsed();
    let reconciles = operator.cluster_reconciles().await;
    results.push(measure(
        &format!("(b) {} JenkinsClusters to Ready", names.len()),
        Some(wall),
        &backend,
        &mark,
        &operator,
        format!("{reconciles} reconciles; {}", peak_note(fresh_peak)),
    ));

    // (d) Steady state: once nothing moves, one resync period of everything converged.
    if steady {
        settle(&backend, Duration::from_secs(2), options.patience).await;
        let fresh_peak = operator.reset_peak();
        let mark = backend.mark();
        let before = operator.cluster_reconciles().await;
        let target = before + names.len() as f64;
        let window = Instant::now();
        let deadline = window + Duration::from_secs(options.resync_seconds * 2) + patience;
        let mut first = None;
        loop {
            let now = operator.cluster_reconciles().await;
            if now > before && first.is_none() {
                first = Some(Instant::now());
            }
            if now >= target {
                break;
            }
            if Instant::now() > deadline {
                bail!("the resync did not reach every cluster ({now} of {target} reconciles)");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let wave = first.map(|f| f.elapsed()).unwrap_or_default();
        // Whatever a resync triggers lands within moments.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let writes = backend.writes_since(&mark);
        let reconciles = operator.cluster_reconciles().await - before;
        let mut notes = format!(
            "{reconciles} reconciles; wall time from the first to the last resync reconcile \
             (the resyncs are spread as the clusters became Ready); {}",
            peak_note(fresh_peak)
        );
        if !writes.is_empty() {
            let shown: Vec<&str> = writes.iter().take(5).map(String::as_str).collect();
            notes.push_str(&format!("; writes: {}", shown.join(", ")));
        }
        results.push(measure(
            &format!("(d) resync of {} converged JenkinsClusters", names.len()),
            Some(wave),
            &backend,
            &mark,
            &operator,
            notes,
        ));
    }
    operator.stop().await?;
    Ok(results)
}

/// Starts the operator with a resync period and the options' Jenkins concurrency.
pub async fn start_operator(
    options: &Options,
    backend: &Backend,
    resync_seconds: u64,
) -> anyhow::Result<OperatorProcess> {
    let mut extra = Vec::new();
    if super::operator::has_option(&options.operator, "--jenkins-concurrency") {
        extra.push("--jenkins-concurrency".to_string());
        extra.push(options.jenkins_concurrency.to_string());
    }
    let env = &options.operator_env;
    OperatorProcess::start(&options.operator, backend, resync_seconds, &extra, env).await
}

/// A measurement of what happened since `mark`, with the operator's memory now.
pub fn measure(
    name: &str,
    wall: Option<Duration>,
    backend: &Backend,
    mark: &Mark,
    operator: &OperatorProcess,
    notes: String,
) -> Measurement {
    let memory = operator.memory();
    Measurement {
        name: name.to_owned(),
        wall,
        counts: backend.counts_since(mark),
        peak_rss_kib: memory.map(|m| m.peak_kib),
        rss_kib: memory.map(|m| m.rss_kib),
        notes,
    }
}

/// What the peak column means for a row.
pub fn peak_note(fresh: bool) -> String {
    if fresh {
        "peak RSS over this scenario".into()
    } else {
        "peak RSS since the process started (clear_refs refused)".into()
    }
}

/// `1.234 s`.
pub fn seconds(duration: Duration) -> String {
    format!("{:.3} s", duration.as_secs_f64())
}

/// A minimal JenkinsCluster: all defaults, its namespace named after it.
fn new_cluster(name: &str) -> anyhow::Result<JenkinsCluster> {
    let object = json!({
        "apiVersion": "jenkins.ci/v1alpha1",
        "kind": "JenkinsCluster",
        "metadata": {"name": name},
        "spec": {},
    });
    Ok(serde_json::from_value(object)?)
}

/// Ready, for the current generation.
pub fn cluster_ready(cluster: &JenkinsCluster) -> bool {
    let conditions = cluster.status.as_ref().map(|s| s.conditions.as_slice());
    condition_true(conditions, "Ready", cluster.meta().generation)
}

/// Whether a condition is True for this generation.
pub fn condition_true(
    conditions: Option<&[Condition]>,
    type_: &str,
    generation: Option<i64>,
) -> bool {
    conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True" && c.observed_generation == generation)
}

/// Waits, through a watch, until `count` objects of `api` satisfy `done`.
pub async fn wait_until_all<K>(
    api: Api<K>,
    count: usize,
    done: fn(&K) -> bool,
    patience: Duration,
) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    let mut finished = BTreeSet::new();
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    let wait = async {
        while let Some(object) = events.next().await {
            let Ok(object) = object else { continue };
            let key = format!(
                "{}/{}",
                object.namespace().unwrap_or_default(),
                object.name_any()
            );
            if done(&object) {
                finished.insert(key);
            } else {
                finished.remove(&key);
            }
            if finished.len() >= count {
                return true;
            }
        }
        false
    };
    let outcome = tokio::time::timeout(patience, wait).await;
    match outcome {
        Ok(true) => Ok(()),
        Ok(false) => bail!("the watch ended"),
        Err(_) => bail!(
            "timed out after {patience:?} with {} of {count} objects done",
            finished.len()
        ),
    }
}

/// Waits until the operator has made no write for `quiet` (at most `patience`).
pub async fn settle(backend: &Backend, quiet: Duration, patience: Duration) {
    let deadline = Instant::now() + patience;
    loop {
        let mark = backend.mark();
        tokio::time::sleep(quiet).await;
        if backend.writes_since(&mark).is_empty() || Instant::now() > deadline {
            return;
        }
    }
}

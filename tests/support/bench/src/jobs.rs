//! The JenkinsJob scenarios: (c) a cold start with N JenkinsJobs on one cluster, and the job
//! half of (e). They need an operator that runs a JenkinsJob controller; one that does not
//! watch `jenkinsjobs` gets "not available" rows.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use jenkins_operator::api::{JenkinsCluster, JenkinsJob};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde_json::json;

use super::backend::Backend;
use super::scenarios::{
    CREATE_CONCURRENCY, cluster_ready, condition_true, measure, peak_note, seconds, settle,
    start_operator, wait_until_all,
};
use super::{Measurement, Options};

/// The (first) cluster the jobs go to, and the namespace they live in (the cluster's own,
/// which it admits by default).
const CLUSTER: &str = "ci";

/// The clusters of a cold start: `ci`, then `ci-1`, `ci-2`, ...; job `i` goes to cluster
/// `i % clusters`, in that cluster's namespace.
fn cluster_names(clusters: usize) -> Vec<String> {
    (0..clusters.max(1))
        .map(|i| match i {
            0 => CLUSTER.to_string(),
            i => format!("{CLUSTER}-{i}"),
        })
        .collect()
}

/// Jenkins requests a new job needs: one `createItem` with its config.xml, and one read of the
/// config.xml Jenkins stored (Jenkins rewrites what it is sent; the hash of what it stores is
/// what tells its own rewriting from a later edit in the UI). The folder and the crumb are
/// shared by all jobs and left out of the bound.
const REQUESTS_PER_JOB: usize = 2;

const NO_CONTROLLER: &str = "no JenkinsJob controller on this build (the operator does not \
                             watch jenkinsjobs)";

/// One cold start per job count; the first also measures a job spec change.
pub async fn cold_starts(options: &Options, spec_change: bool) -> anyhow::Result<Vec<Measurement>> {
    let mut results = Vec::new();
    for (index, &count) in options.jobs.iter().enumerate() {
        let name = row_name(count, 1);
        let change = spec_change && index == 0;
        match cold_start(options, count, 1, change).await? {
            Some(rows) => results.extend(rows),
            None => {
                results.push(Measurement::not_available(name, NO_CONTROLLER));
                if change {
                    results.push(Measurement::not_available(SPEC_CHANGE, NO_CONTROLLER));
                }
            }
        }
    }
    // The memory target: thousands of jobs spread over many clusters.
    if let Some(count) = options.jobs_on_many_clusters {
        let clusters = options.clusters;
        match cold_start(options, count, clusters, false).await? {
            Some(rows) => results.extend(rows),
            None => results.push(Measurement::not_available(
                row_name(count, clusters),
                NO_CONTROLLER,
            )),
        }
    }
    Ok(results)
}

fn row_name(jobs: usize, clusters: usize) -> String {
    let clusters = match clusters {
        1 => "1 cluster".to_string(),
        n => format!("{n} clusters"),
    };
    format!("(c) {jobs} JenkinsJobs on {clusters}, cold start to Synced")
}

const SPEC_CHANGE: &str = "(e) 1 JenkinsJob spec change to Jenkins config.xml";

/// `None` when the operator has no JenkinsJob controller.
async fn cold_start(
    options: &Options,
    count: usize,
    cluster_count: usize,
    spec_change: bool,
) -> anyhow::Result<Option<Vec<Measurement>>> {
    let names = cluster_names(cluster_count);
    let backend = Backend::start(&names, options.latency).await?;

    // Ready clusters, by a first operator process.
    let operator = start_operator(options, &backend, options.cold_start_resync_seconds).await?;
    let clusters: Api<JenkinsCluster> = Api::all(backend.client.clone());
    for name in &names {
        let cluster = serde_json::from_value(json!({
            "apiVersion": "jenkins.ci/v1alpha1",
            "kind": "JenkinsCluster",
            "metadata": {"name": name},
            "spec": {},
        }))?;
        clusters.create(&PostParams::default(), &cluster).await?;
    }
    let patience = options.patience * (1 + names.len() as u32 / 20);
    wait_until_all(clusters, names.len(), cluster_ready, patience).await?;
    settle(&backend, Duration::from_millis(500), options.patience).await;
    let watches_jobs = backend.operator_watches("jenkinsjobs");
    operator.stop().await?;
    if !watches_jobs {
        return Ok(None);
    }

    // The jobs, while no operator runs.
    let jobs: Api<JenkinsJob> = Api::namespaced(backend.client.clone(), CLUSTER);
    let all_jobs: Api<JenkinsJob> = Api::all(backend.client.clone());
    futures::stream::iter((0..count).map(|i| new_job(i, &names[i % names.len()])))
        .map(|job| {
            let client = backend.client.clone();
            async move {
                let job = job?;
                let api: Api<JenkinsJob> =
                    Api::namespaced(client, job.metadata.namespace.as_deref().unwrap_or(CLUSTER));
                api.create(&PostParams::default(), &job)
                    .await
                    .map_err(Into::into)
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e: anyhow::Error| e.context("failed to create the JenkinsJobs"))?;

    // (c) Cold start: a new process finds them all.
    let mark = backend.mark();
    let started = Instant::now();
    let operator = start_operator(options, &backend, options.cold_start_resync_seconds).await?;
    let patience = options.patience * 10;
    wait_until_all(all_jobs, count, job_synced, patience).await?;
    let wall = started.elapsed();
    let counts = backend.counts_since(&mark);
    // Each cluster's Jenkins has its own permits.
    let concurrency = options.jenkins_concurrency * names.len();
    let bound = lower_bound(count, options.latency, concurrency);
    let ratio = if names.len() > 1 {
        // Spread over many Jenkins, the operator's concurrent reconciles bound it, not the
        // Jenkins permits: this row is for memory.
        "memory row (the bound of one Jenkins does not apply)".to_string()
    } else if bound.is_zero() {
        "no lower bound without latency".to_string()
    } else {
        format!(
            "{:.2}x the lower bound {count} x {REQUESTS_PER_JOB} x {} ms / {} = {}",
            wall.as_secs_f64() / bound.as_secs_f64(),
            options.latency.as_millis(),
            concurrency,
            seconds(bound)
        )
    };
    let per_job = (counts.jenkins_reads + counts.jenkins_writes) as f64 / count as f64;
    // What a request to Jenkins took as the operator saw it (latency plus both ends' time),
    // and how long requests queued for a permit: where the time beyond the bound goes.
    let seen = match (
        operator
            .mean("jenkins_operator_jenkins_request_duration_seconds")
            .await,
        operator
            .mean("jenkins_operator_jenkins_permit_wait_seconds")
            .await,
    ) {
        (Some(request), Some(wait)) => format!(
            "; Jenkins requests took {:.1} ms on average as the operator saw them, after \
             {:.1} ms waiting for a permit",
            request * 1000.0,
            wait * 1000.0
        ),
        _ => String::new(),
    };
    let mut rows = vec![measure(
        &row_name(count, names.len()),
        Some(wall),
        &backend,
        &mark,
        &operator,
        format!(
            "{ratio}; {per_job:.2} Jenkins requests per job{seen}; wall time from process \
             start; peak RSS of the process"
        ),
    )];

    // (e) One job's spec change to Jenkins having the new config.xml.
    if spec_change {
        settle(&backend, Duration::from_secs(1), options.patience).await;
        let fresh_peak = operator.reset_peak();
        let mark = backend.mark();
        let name = job_name(0);
        let full_name = jobs
            .get(&name)
            .await?
            .status
            .and_then(|s| s.jobs.first().map(|j| j.full_name.clone()))
            .context("the synced job lists no Jenkins job")?;
        let jenkins = backend
            .jenkins
            .get(CLUSTER)
            .context("the Jenkins of ci")?
            .clone();
        let description = "changed by the benchmark";
        let started = Instant::now();
        let patch = json!({"spec": {"description": description}});
        jobs.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .context("failed to patch the JenkinsJob")?;
        let deadline = started + options.patience;
        while !jenkins
            .job_config(&full_name)
            .is_some_and(|config| config.contains(description))
        {
            if Instant::now() > deadline {
                bail!("Jenkins did not get the changed job in time");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        rows.push(measure(
            SPEC_CHANGE,
            Some(started.elapsed()),
            &backend,
            &mark,
            &operator,
            format!(
                "patch to the new config.xml in Jenkins; {}",
                peak_note(fresh_peak)
            ),
        ));
    }
    operator.stop().await?;
    Ok(Some(rows))
}

/// `jobs x requests per job x latency / concurrency`.
fn lower_bound(jobs: usize, latency: Duration, concurrency: usize) -> Duration {
    let requests = (jobs * REQUESTS_PER_JOB) as u32;
    latency * requests / concurrency.max(1) as u32
}

fn job_name(index: usize) -> String {
    format!("job-{index:05}")
}

/// A small inline pipeline in the cluster's namespace.
fn new_job(index: usize, cluster: &str) -> anyhow::Result<JenkinsJob> {
    let object = json!({
        "apiVersion": "jenkins.ci/v1alpha1",
        "kind": "JenkinsJob",
        "metadata": {"name": job_name(index), "namespace": cluster},
        "spec": {
            "cluster": cluster,
            "pipeline": {
                "script": "pipeline { agent any\n stages { stage('Build') { \
                           steps { echo 'hi' } } } }",
            },
        },
    });
    Ok(serde_json::from_value(object)?)
}

/// Synced, for the current generation.
fn job_synced(job: &JenkinsJob) -> bool {
    let conditions = job.status.as_ref().map(|s| s.conditions.as_slice());
    condition_true(conditions, "Synced", job.meta().generation)
}

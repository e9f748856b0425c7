//! The jenkins-operator benchmark (issue 8): what the operator costs and how it scales.
//!
//! The Kubernetes API emulator and one Jenkins emulator per JenkinsCluster run in this process
//! with a configurable per-request latency; the real `jenkins-operator run` binary runs as a
//! child process, so that its memory is its own. Each scenario reports its wall time, the
//! operator's requests to the API server (told apart by its user agent) and to Jenkins, and the
//! operator's peak resident memory.
//!
//! Paths inside this crate are relative (`super::`), never `crate::`: the root crate's smoke
//! test includes this file as a module.

mod backend;
mod jobs;
mod operator;
mod pods;
pub mod report;
mod scenarios;

#[path = "../../../cluster/jenkins_pod.rs"]
#[allow(dead_code)] // The benchmark drives `step` from watch events, not `simulate`'s polling.
mod jenkins_pod;

use std::path::PathBuf;
use std::time::Duration;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `jenkins-operator` binary to run.
    pub operator: PathBuf,
    /// Latency added to every request to the API server and to Jenkins.
    pub latency: Duration,
    /// Scenarios to run, in this order.
    pub scenarios: Vec<Scenario>,
    /// JenkinsClusters of scenarios (b) and (d).
    pub clusters: usize,
    /// JenkinsJob counts of scenario (c), one cold start each.
    pub jobs: Vec<usize>,
    /// A further cold start of (c) with this many JenkinsJobs spread over `clusters`
    /// clusters (the memory target).
    pub jobs_on_many_clusters: Option<usize>,
    /// `--resync-seconds` of the operator; scenario (d) waits one period.
    pub resync_seconds: u64,
    /// `--resync-seconds` of the operator in the cold starts of (c): resyncs are not what
    /// they measure, and with thousands of jobs a short period competes with the creations.
    pub cold_start_resync_seconds: u64,
    /// Requests to one Jenkins the operator may have in flight, for the lower bound of (c);
    /// passed on as `--jenkins-concurrency` when the operator has that option.
    pub jenkins_concurrency: usize,
    /// How long any one scenario may take before it is reported as timed out.
    pub patience: Duration,
    /// Extra environment of the operator process (e.g. `TOKIO_WORKER_THREADS`), to measure
    /// tuning.
    pub operator_env: Vec<(String, String)>,
}

impl Options {
    /// The smoke mode: scenario (a) with one cluster, no latency.
    pub fn smoke(operator: PathBuf) -> Options {
        Options {
            operator,
            latency: Duration::ZERO,
            scenarios: vec![Scenario::OneCluster],
            clusters: 1,
            jobs: Vec::new(),
            jobs_on_many_clusters: None,
            resync_seconds: 10,
            cold_start_resync_seconds: 300,
            jenkins_concurrency: 4,
            patience: Duration::from_secs(30),
            operator_env: Vec::new(),
        }
    }
}

/// A scenario of issue 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// (a) One new JenkinsCluster to Ready (with the idle memory before it).
    OneCluster,
    /// (b) Many JenkinsClusters to Ready.
    ManyClusters,
    /// (c) JenkinsJobs on one cluster, cold start to all Synced.
    Jobs,
    /// (d) A resync of everything converged: the target is zero writes.
    SteadyState,
    /// (e) One spec change until Jenkins has it: a JenkinsCluster (JCasC reload) and a
    /// JenkinsJob (config.xml).
    SpecChange,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::OneCluster,
        Scenario::ManyClusters,
        Scenario::SteadyState,
        Scenario::SpecChange,
        Scenario::Jobs,
    ];

    /// Parses `a`..`e` or a name.
    pub fn parse(text: &str) -> Option<Scenario> {
        Some(match text {
            "a" | "one-cluster" => Scenario::OneCluster,
            "b" | "many-clusters" => Scenario::ManyClusters,
            "c" | "jobs" => Scenario::Jobs,
            "d" | "steady-state" => Scenario::SteadyState,
            "e" | "spec-change" => Scenario::SpecChange,
            _ => return None,
        })
    }
}

/// Requests counted over a scenario. API reads are get and list; watches are counted apart
/// (they are long-lived streams, not round trips).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub api_reads: usize,
    pub api_watches: usize,
    pub api_writes: usize,
    pub jenkins_reads: usize,
    pub jenkins_writes: usize,
}

/// One row of the results.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// Scenario letter and what it does, e.g. `(b) 100 JenkinsClusters to Ready`.
    pub name: String,
    /// `None` when the scenario could not run; `reason` says why.
    pub wall: Option<Duration>,
    pub counts: Counts,
    /// Peak resident memory of the operator process during the scenario, in KiB.
    pub peak_rss_kib: Option<u64>,
    /// Resident memory at the end of the scenario, in KiB.
    pub rss_kib: Option<u64>,
    /// What else the scenario measured (ratio to the lower bound, reconciles, ...), or why it
    /// did not run.
    pub notes: String,
}

impl Measurement {
    fn not_available(name: impl Into<String>, reason: impl Into<String>) -> Measurement {
        Measurement {
            name: name.into(),
            wall: None,
            counts: Counts::default(),
            peak_rss_kib: None,
            rss_kib: None,
            notes: format!("not available: {}", reason.into()),
        }
    }
}

/// Runs the scenarios; `progress` hears about each measurement as it is taken.
pub async fn run(
    options: &Options,
    mut progress: impl FnMut(&Measurement),
) -> anyhow::Result<Vec<Measurement>> {
    let mut results = Vec::new();
    let mut record = |m: Measurement| {
        progress(&m);
        results.push(m);
    };
    let wants = |s: Scenario| options.scenarios.contains(&s);

    // One cluster: idle memory, (a), then (e) on it.
    if wants(Scenario::OneCluster) || wants(Scenario::SpecChange) {
        for m in scenarios::one_cluster(options, wants(Scenario::SpecChange)).await? {
            record(m);
        }
    }

    // Many clusters: (b), then (d) on the converged clusters.
    if wants(Scenario::ManyClusters) || wants(Scenario::SteadyState) {
        for m in scenarios::many_clusters(options, wants(Scenario::SteadyState)).await? {
            record(m);
        }
    }

    // Jobs: one cold start per count, then the job half of (e).
    if wants(Scenario::Jobs) {
        for m in jobs::cold_starts(options, wants(Scenario::SpecChange)).await? {
            record(m);
        }
    }
    Ok(results)
}

//! What every reconcile shares: the API client, the event recorder, settings and the per-object
//! failure counts that drive backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as EventV1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::Client;
use kube::api::PostParams;
use kube::runtime::events::{EventType, Recorder, Reporter};

use super::jenkins_clients::JenkinsClients;
use super::metrics::Metrics;
use crate::build::fence::{FenceTimes, TriggerFences};
use crate::build::poll::PollIntervals;

/// Timings of the reconcilers. The defaults suit a real cluster; tests shorten them.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often a converged resource is checked again even without any event.
    pub resync: Duration,
    /// How often a resource that is still coming up is checked again.
    pub progress_poll: Duration,
    /// First delay after a failed reconcile; it doubles with every further failure.
    pub backoff_base: Duration,
    /// Longest delay between retries of a failing reconcile.
    pub backoff_cap: Duration,
    /// How long Jenkins may stay silent after its Deployment rolled out before the cluster is
    /// reported Stalled (it recovers by itself once Jenkins answers).
    pub jenkins_stall_after: Duration,
    /// How often the JenkinsJob controller reads every job's live config.xml to repair edits
    /// made in the Jenkins UI. Between checks, an unchanged spec costs no config.xml request.
    pub job_drift_check: Duration,
    /// First delay between two polls of a queued or running build; it doubles while nothing
    /// changes and drops back when something does.
    pub build_poll_min: Duration,
    /// Longest delay between two polls of a queued or running build.
    pub build_poll_max: Duration,
    /// Reconciles each controller runs at once. Unbounded, a cold start with thousands of
    /// JenkinsJobs held thousands of reconciles (and API connections) waiting on Jenkins.
    pub max_concurrent_reconciles: u16,
    /// How long after announcing a build trigger (its marker in the status) the operator may
    /// still send it; a trigger not answered by then is given up, its outcome unknown. It must
    /// cover the job check and the trigger request (twice the Jenkins request timeout),
    /// including their waits for a Jenkins permit (`--jenkins-concurrency`): a trigger still
    /// queued for a permit at the deadline is not sent, and counts as unanswered.
    pub trigger_deadline: Duration,
    /// How long a trigger request Jenkins has received may take to reach its queue. A replica
    /// waits `trigger_deadline` plus this before it triggers again a build whose trigger answer
    /// was lost and that Jenkins does not show (see `build::fence`).
    pub trigger_settle: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            progress_poll: Duration::from_secs(15),
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(300),
            jenkins_stall_after: Duration::from_secs(600),
            job_drift_check: Duration::from_secs(600),
            build_poll_min: Duration::from_secs(1),
            build_poll_max: Duration::from_secs(30),
            max_concurrent_reconciles: 16,
            trigger_deadline: Duration::from_secs(60),
            trigger_settle: Duration::from_secs(30),
        }
    }
}

/// Shared state of the controllers.
pub struct Context {
    pub client: Client,
    /// Events that may repeat (warnings, condition changes): kube's recorder turns repeats
    /// within minutes into one Event with a count, and caches each Event for that.
    pub recorder: Recorder,
    /// Who reports the Events.
    reporter: Reporter,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub jenkins: JenkinsClients,
    /// How often each followed JenkinsBuild is polled.
    pub build_polls: PollIntervals,
    /// When a JenkinsBuild whose trigger answer was lost may be triggered again.
    pub trigger_fences: TriggerFences,
    failures: Mutex<HashMap<String, u32>>,
    /// When each cluster's Jenkins last stopped answering, while it stays silent.
    silent_since: Mutex<HashMap<String, Instant>>,
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        jenkins: JenkinsClients,
    ) -> Self {
        let reporter = Reporter {
            controller: "jenkins-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter.clone());
        Self {
            client,
            recorder,
            reporter,
            settings,
            metrics,
            jenkins,
            build_polls: PollIntervals::default(),
            trigger_fences: TriggerFences::default(),
            failures: Mutex::new(HashMap::new()),
            silent_since: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes an Event that does not repeat (for example "created job X"), without the
    /// recorder's cache: thousands of new JenkinsJobs would otherwise keep thousands of
    /// Events in memory for minutes, for a series that never comes.
    pub async fn publish_once(
        &self,
        event: &kube::runtime::events::Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let subject = regarding
            .name
            .clone()
            .unwrap_or_else(|| self.reporter.controller.clone());
        let object = EventV1 {
            metadata: ObjectMeta {
                name: Some(format!("{subject}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..EventV1::default()
        };
        let api: Api<EventV1> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &object).await?;
        Ok(())
    }

    /// Records one more failure of `key` and returns how long to wait before the next try:
    /// `backoff_base * 2^(failures-1)`, capped at `backoff_cap`.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let failures = {
            // A poisoned lock only means another reconcile panicked while counting; the
            // counts are still usable.
            let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let count = map.entry(key.to_owned()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        };
        backoff_delay(&self.settings, failures)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset_backoff(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

impl Context {
    /// Notes that a cluster's Jenkins answered (even with an error page).
    pub fn jenkins_answered(&self, cluster: &str) {
        let mut map = self.silent_since.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(cluster);
    }

    /// Notes that a cluster's Jenkins did not answer; returns for how long it has not.
    pub fn jenkins_silent_for(&self, cluster: &str) -> Duration {
        let mut map = self.silent_since.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(cluster.to_owned())
            .or_insert_with(Instant::now)
            .elapsed()
    }
}

impl Settings {
    /// The times of the trigger fence.
    pub fn fence_times(&self) -> FenceTimes {
        FenceTimes {
            deadline: self.trigger_deadline,
            settle: self.trigger_settle,
        }
    }

    /// The controller configuration these settings ask for.
    pub fn controller_config(&self) -> kube::runtime::controller::Config {
        kube::runtime::controller::Config::default().concurrency(self.max_concurrent_reconciles)
    }
}

/// The delay before retry number `failures` (1-based).
pub fn backoff_delay(settings: &Settings, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    settings
        .backoff_base
        .saturating_mul(1 << exponent)
        .min(settings.backoff_cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_the_cap() {
        let settings = Settings {
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(10),
            ..Settings::default()
        };
        let delays: Vec<u64> = (1..=6)
            .map(|n| backoff_delay(&settings, n).as_secs())
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff_delay(&settings, u32::MAX).as_secs(), 10);
    }
}

//! Prometheus metrics of the operator. No label carries an object's name: the series count
//! stays the same with one cluster or a thousand.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub reason: &'static str,
}

/// The endpoint a request to Jenkins went to (from the client's fixed set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JenkinsLabels {
    pub operation: &'static str,
    pub outcome: &'static str,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ControllerLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    pub jenkins_requests: Family<JenkinsLabels, Counter>,
    pub jenkins_request_duration: Family<OperationLabels, Histogram>,
    pub jenkins_permit_wait: Histogram,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("jenkins_operator");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles started, by controller",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by controller and reason",
            reconcile_errors.clone(),
        );
        let reconcile_duration =
            Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            });
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile, by controller",
            reconcile_duration.clone(),
        );
        let jenkins_requests = Family::<JenkinsLabels, Counter>::default();
        registry.register(
            "jenkins_requests",
            "Requests to Jenkins, by operation and outcome",
            jenkins_requests.clone(),
        );
        // 1 ms to about 65 s: past the longest request timeout's default (30 s).
        let jenkins_request_duration =
            Family::<OperationLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 17))
            });
        registry.register(
            "jenkins_request_duration_seconds",
            "Time from sending a request to Jenkins to its response headers, by endpoint",
            jenkins_request_duration.clone(),
        );
        let jenkins_permit_wait = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "jenkins_permit_wait_seconds",
            "Time a request waited for one of its Jenkins' permits (--jenkins-concurrency); \
             long waits mean the bound, not Jenkins, sets the pace",
            jenkins_permit_wait.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            jenkins_requests,
            jenkins_request_duration,
            jenkins_permit_wait,
            leader,
        }
    }
}

impl crate::jenkins::RequestObserver for Metrics {
    fn observe(&self, endpoint: &'static str, outcome: &'static str, took: Duration) {
        let labels = JenkinsLabels {
            operation: endpoint,
            outcome,
        };
        self.jenkins_requests.get_or_create(&labels).inc();
        self.jenkins_request_duration
            .get_or_create(&OperationLabels {
                operation: endpoint,
            })
            .observe(took.as_secs_f64());
    }

    fn permit_wait(&self, waited: Duration) {
        self.jenkins_permit_wait.observe(waited.as_secs_f64());
    }
}

impl Metrics {
    /// Counts one finished reconcile.
    pub fn observe_reconcile(
        &self,
        controller: &'static str,
        took: Duration,
        error: Option<&'static str>,
    ) {
        let labels = ControllerLabels { controller };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Some(reason) = error {
            self.reconcile_errors
                .get_or_create(&ErrorLabels { controller, reason })
                .inc();
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jenkins::RequestObserver as _;

    #[test]
    fn reconciles_and_errors_show_up_in_the_text_format() {
        let metrics = Metrics::default();
        metrics.observe_reconcile("jenkinscluster", Duration::from_millis(20), None);
        metrics.observe_reconcile(
            "jenkinscluster",
            Duration::from_millis(20),
            Some("KubeError"),
        );
        metrics.leader.set(1);
        metrics.observe("createItem", "success", Duration::from_millis(3));
        metrics.permit_wait(Duration::from_millis(2));
        let text = metrics.encode();
        assert!(
            text.contains("jenkins_operator_reconciles_total{controller=\"jenkinscluster\"} 2")
        );
        assert!(text.contains(concat!(
            "jenkins_operator_reconcile_errors_total",
            "{controller=\"jenkinscluster\",reason=\"KubeError\"} 1"
        )));
        assert!(text.contains(
            "jenkins_operator_reconcile_duration_seconds_count{controller=\"jenkinscluster\"} 2"
        ));
        assert!(text.contains("jenkins_operator_leader 1"));
        assert!(text.contains(concat!(
            "jenkins_operator_jenkins_requests_total",
            "{operation=\"createItem\",outcome=\"success\"} 1"
        )));
        assert!(text.contains(concat!(
            "jenkins_operator_jenkins_request_duration_seconds_bucket",
            "{le=\"0.004\",operation=\"createItem\"} 1"
        )));
        assert!(text.contains("jenkins_operator_jenkins_permit_wait_seconds_count 1"));
    }
}

//! The HTTP endpoint (`/livez`, `/readyz`, `/metrics`) and graceful shutdown.

use std::time::Duration;

use kube_emulator::{Fault, Verb};

use crate::operator::{Backend, Launch, Operator, eventually};

const RECONCILES: &str = "jenkins_operator_reconciles_total{controller=\"jenkinscluster\"}";
const DURATIONS: &str =
    "jenkins_operator_reconcile_duration_seconds_count{controller=\"jenkinscluster\"}";

/// Whether the operator has listed JenkinsClusters successfully (the cache's first sync).
fn listed_clusters(backend: &Backend, code: u16) -> bool {
    backend.operator_requests().iter().any(|r| {
        r.resource.as_deref() == Some("jenkinsclusters") && r.verb == Verb::List && r.status == code
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_200_only_after_the_cache_synced_and_metrics_count_reconciles() {
    let backend = Backend::start().await;
    // The first lists of JenkinsClusters fail, so the cache cannot sync until the fault is
    // lifted.
    backend.emulator.inject(Fault::FailNext {
        verb: Some(Verb::List),
        resource: Some("jenkinsclusters".into()),
        count: 1000,
        code: 500,
    });
    let operator = Operator::start(
        &backend,
        Launch::new("op-health")
            .arg("--leader-election")
            .arg("false"),
    );

    // Alive at once, not ready while the list fails.
    eventually("/livez to answer 200", || async {
        (operator.get("/livez").await?.0 == 200).then_some(())
    })
    .await;
    eventually("/readyz to answer 503 after a failed list", || async {
        let (status, _) = operator.get("/readyz").await?;
        (status == 503 && listed_clusters(&backend, 500)).then_some(())
    })
    .await;
    assert!(!listed_clusters(&backend, 200));

    // Ready once the list succeeds.
    backend.emulator.clear_faults();
    eventually("/readyz to answer 200", || async {
        (operator.get("/readyz").await?.0 == 200).then_some(())
    })
    .await;
    assert!(listed_clusters(&backend, 200));

    // No cluster, no reconcile; a cluster brought to Ready moves the counters.
    let before = operator.metric(RECONCILES).await.unwrap_or(0.0);
    assert_eq!(before, 0.0);
    backend
        .create(&backend.example("cluster-minimal.yaml", "ci"))
        .await;
    backend.wait_ready("ci").await;
    let after = eventually("the reconcile counter to move", || async {
        let value = operator.metric(RECONCILES).await?;
        (value > 0.0).then_some(value)
    })
    .await;
    let durations = operator.metric(DURATIONS).await.unwrap_or(0.0);
    assert!(
        durations >= after,
        "{durations} durations for {after} reconciles"
    );
    assert_eq!(operator.metric("jenkins_operator_leader").await, Some(1.0));

    // Readiness asked Jenkins who the operator is: counted by endpoint and outcome only.
    let who_am_i = "jenkins_operator_jenkins_requests_total\
                    {operation=\"whoAmI/api/json\",outcome=\"success\"}";
    let asked = operator.metric(who_am_i).await.unwrap_or(0.0);
    assert!(asked >= 1.0, "{who_am_i} is {asked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_slow_reconciles_drops_readiness_releases_the_lease_and_exits_zero() {
    let backend = Backend::start().await;
    let mut operator = Operator::start(
        &backend,
        Launch::new("op-shutdown").shutdown_grace_seconds(2),
    );
    eventually("the operator to lead and be ready", || async {
        let leading = operator.leader_gauge().await? == 1.0;
        let ready = operator.get("/readyz").await?.0 == 200;
        (leading && ready).then_some(())
    })
    .await;

    // Every API request now takes half a second, so reconciles are in flight for long.
    backend
        .emulator
        .inject(Fault::Latency(Duration::from_millis(500)));
    backend
        .create(&backend.example("cluster-minimal.yaml", "slow"))
        .await;
    eventually("the operator to start reconciling the cluster", || async {
        backend
            .operator_requests()
            .iter()
            .any(|r| r.name.as_deref() == Some("slow"))
            .then_some(())
    })
    .await;

    operator.terminate();
    eventually("/readyz to answer 503 while shutting down", || async {
        (operator.get("/readyz").await?.0 == 503).then_some(())
    })
    .await;
    // The grace bound, plus the Lease release (three requests at 500 ms), plus slack.
    let status = operator.wait_exit(Duration::from_secs(2 + 2 + 6)).await;
    let logs = operator.logs();
    assert!(status.success(), "exit {status:?}; logs:\n{logs}");
    assert!(logs.contains("shutdown requested"), "logs:\n{logs}");

    backend.emulator.clear_faults();
    assert_eq!(backend.lease_holder().await, None);
}

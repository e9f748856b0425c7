//! Keeps the benchmark from rotting: its smoke mode (one JenkinsCluster to Ready, no latency)
//! against the debug binary, in a few seconds. The benchmark itself is
//! `cargo run --release -p jenkins-operator-bench` (see docs/benchmarks.md); its numbers are
//! measurements, never asserted here.

#[path = "support/bench/src/lib.rs"]
#[allow(dead_code)] // The smoke mode uses part of the benchmark.
mod bench;

#[tokio::test]
async fn the_benchmark_smoke_mode_measures_one_cluster_to_ready() {
    let options = bench::Options::smoke(env!("CARGO_BIN_EXE_jenkins-operator").into());
    let results = bench::run(&options, |_| {})
        .await
        .expect("the smoke run completes");

    let names: Vec<&str> = results.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "idle: started, no resources",
            "(a) 1 JenkinsCluster to Ready"
        ]
    );
    let one = &results[1];
    assert!(one.wall.is_some(), "(a) has a wall time");
    assert!(
        one.counts.api_writes > 0,
        "creating a cluster writes its children"
    );
    assert!(one.counts.jenkins_reads > 0, "readiness asks Jenkins");
    assert!(
        one.peak_rss_kib.is_some_and(|kib| kib > 0),
        "the peak RSS is read"
    );
}

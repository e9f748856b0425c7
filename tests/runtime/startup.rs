//! What `run` checks before it starts the controllers.

use std::time::Duration;

use crate::operator::{Backend, Launch, Operator};

#[tokio::test]
async fn without_the_crds_run_exits_with_code_2_and_says_how_to_install_them() {
    let backend = Backend::without_crds().await;
    let mut operator = Operator::start(&backend, Launch::new("op-no-crds"));

    let status = operator.wait_exit(Duration::from_secs(15)).await;

    let logs = operator.logs();
    assert_eq!(status.code(), Some(2), "logs:\n{logs}");
    assert!(logs.contains("jenkinsclusters.jenkins.ci"), "logs:\n{logs}");
    assert!(
        logs.contains("kubectl apply --server-side -f crds/"),
        "logs:\n{logs}"
    );
    // It stopped before taking part in leader election.
    assert!(backend.lease().await.is_none());
}

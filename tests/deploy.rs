//! The Helm chart installs the CRDs from its own crds/ folder (Helm reads nothing outside the
//! chart), so that folder is a copy of what the code generates. .ci/check-deploy checks the rest of
//! deploy/; this test keeps the copy fresh where `cargo test` runs.

#[test]
fn chart_crds_match_the_code() {
    let generated = jenkins_operator::api::crds_yaml().expect("CRDs serialize");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/helm/jenkins-operator/crds/jenkins.ci.yaml"
    );
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(path, &generated).expect("write the chart's crds/jenkins.ci.yaml");
        return;
    }
    let in_chart = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        in_chart == generated,
        "deploy/helm/jenkins-operator/crds/jenkins.ci.yaml is stale: run \
         `UPDATE_CRDS=1 cargo test --test crds --test deploy` (or \
         `cp crds/jenkins.ci.yaml deploy/helm/jenkins-operator/crds/`) and commit the result"
    );
}

//! crds/ holds the generated CRDs that users apply; it must match the code.

#[test]
fn crds_directory_matches_the_code() {
    let generated = jenkins_operator::api::crds_yaml().expect("CRDs serialize");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/jenkins.ci.yaml");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(path, &generated).expect("write crds/jenkins.ci.yaml");
        return;
    }
    assert!(
        on_disk == generated,
        "crds/jenkins.ci.yaml is stale: run `UPDATE_CRDS=1 cargo test --test crds` \
         (or `cargo run -- crds > crds/jenkins.ci.yaml`) and commit the result"
    );
}

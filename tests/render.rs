//! `render` on every example: the objects are real Kubernetes objects, labelled, owned as
//! specified and named within Kubernetes' limits; bad input gives clear errors, never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use jenkins_operator::cluster::render::render;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::Value;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("examples/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .filter(|path| {
            let text = std::fs::read_to_string(path).expect("readable example");
            text.lines()
                .any(|line| line.trim() == "kind: JenkinsCluster")
        })
        .collect();
    files.sort();
    files
}

fn rendered(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("readable example");
    let stream = render(&text).unwrap_or_else(|e| panic!("{} renders: {e}", path.display()));
    stream
        .split("\n---\n")
        .map(|doc| doc.trim_start_matches("---\n"))
        .filter(|doc| !doc.trim().is_empty())
        .map(|doc| serde_saphyr::from_str(doc).expect("each document is YAML"))
        .collect()
}

/// Deserializes into the k8s-openapi type of its kind and back: a field the type does not know
/// (which serde would drop silently) shows up as a difference.
fn check_type(object: &Value) {
    fn round_trip<K: serde::de::DeserializeOwned + serde::Serialize>(kind: &str, v: &Value) {
        let typed: K = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let back = serde_json::to_value(&typed).expect("serializes");
        assert_eq!(
            &back, v,
            "{kind} carries fields its Kubernetes type does not know"
        );
    }
    let kind = object["kind"].as_str().expect("kind");
    match kind {
        "Namespace" => round_trip::<Namespace>(kind, object),
        "Secret" => round_trip::<Secret>(kind, object),
        "ServiceAccount" => round_trip::<ServiceAccount>(kind, object),
        "Role" => round_trip::<Role>(kind, object),
        "RoleBinding" => round_trip::<RoleBinding>(kind, object),
        "ConfigMap" => round_trip::<ConfigMap>(kind, object),
        "PersistentVolumeClaim" => round_trip::<PersistentVolumeClaim>(kind, object),
        "Service" => round_trip::<Service>(kind, object),
        "Ingress" => round_trip::<Ingress>(kind, object),
        "Deployment" => round_trip::<Deployment>(kind, object),
        other => panic!("unexpected kind {other}"),
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[test]
fn there_are_three_cluster_examples() {
    let names: Vec<String> = examples()
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "cluster-agents-environments.yaml",
            "cluster-minimal.yaml",
            "cluster-prefix-existing-claim.yaml"
        ]
    );
}

#[test]
fn every_rendered_object_is_a_labelled_correctly_owned_kubernetes_object() {
    for path in examples() {
        let objects = rendered(&path);
        assert!(
            objects.len() >= 10,
            "{}: {} objects",
            path.display(),
            objects.len()
        );
        let text = std::fs::read_to_string(&path).expect("readable");
        let retain = !text.contains("deletionPolicy: Delete");
        for object in &objects {
            check_type(object);
            let kind = object["kind"].as_str().expect("kind");
            let meta = &object["metadata"];
            let name = meta["name"].as_str().expect("name");
            let what = format!("{}: {kind} {name}", path.display());

            let labels = &meta["labels"];
            assert_eq!(labels["app.kubernetes.io/name"], "jenkins", "{what}");
            assert_eq!(
                labels["app.kubernetes.io/managed-by"], "jenkins-operator",
                "{what}"
            );
            let instance = labels["app.kubernetes.io/instance"]
                .as_str()
                .expect("instance");
            assert_eq!(labels["jenkins.ci/cluster"], instance, "{what}");
            assert!(labels["app.kubernetes.io/component"].is_string(), "{what}");
            for value in labels.as_object().expect("labels map").values() {
                assert!(value.as_str().expect("string label").len() <= 63, "{what}");
            }

            let owners = meta["ownerReferences"].as_array();
            let unowned = kind == "Namespace" || (kind == "PersistentVolumeClaim" && retain);
            if unowned {
                assert!(owners.is_none(), "{what} must not be owned");
            } else {
                let owner = &owners.unwrap_or_else(|| panic!("{what} is owned"))[0];
                assert_eq!(owner["apiVersion"], "jenkins.ci/v1alpha1", "{what}");
                assert_eq!(owner["kind"], "JenkinsCluster", "{what}");
                assert_eq!(owner["name"], instance, "{what}");
                assert_eq!(owner["controller"], true, "{what}");
                assert_eq!(owner["blockOwnerDeletion"], true, "{what}");
                assert!(!owner["uid"].as_str().expect("uid").is_empty(), "{what}");
            }

            // Namespaces and Services are DNS labels; the rest DNS subdomains.
            match kind {
                "Namespace" | "Service" => assert!(is_dns_label(name), "{what}"),
                _ => assert!(is_dns_subdomain(name), "{what}"),
            }
            if let Some(ns) = meta["namespace"].as_str() {
                assert!(is_dns_label(ns), "{what}: namespace {ns}");
            }
        }
    }
}

#[test]
fn rendered_secrets_show_placeholders_not_passwords() {
    let objects =
        rendered(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster-minimal.yaml"));
    let secrets: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Secret").collect();
    assert_eq!(secrets.len(), 2);
    assert_eq!(
        secrets[0]["stringData"]["password"],
        "<generated at apply time>"
    );
    assert_eq!(
        secrets[1]["stringData"]["token"],
        "<generated at apply time>"
    );
}

#[test]
fn the_ingress_of_an_example_routes_its_host_and_becomes_jenkins_url() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster-agents-environments.yaml");
    let objects = rendered(&path);
    let ingress = objects
        .iter()
        .find(|o| o["kind"] == "Ingress")
        .expect("the example has an Ingress");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "jenkins.platform.example.com");
    assert_eq!(
        rule["http"]["paths"][0]["backend"]["service"]["name"],
        "platform"
    );
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "jenkins-tls");
    assert_eq!(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"],
        "50m"
    );

    let casc = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "platform-casc")
        .expect("the casc ConfigMap");
    let text = casc["data"]["jenkins.yaml"].as_str().expect("jenkins.yaml");
    let document: Value = serde_saphyr::from_str(text).expect("JCasC YAML");
    assert_eq!(
        document["unclassified"]["location"]["url"],
        "https://jenkins.platform.example.com/"
    );
}

const GOOD: &str = "apiVersion: jenkins.ci/v1alpha1\nkind: JenkinsCluster\nmetadata:\n  name: ci\n";

#[test]
fn an_ingress_host_that_is_an_ip_address_is_refused_at_its_line() {
    let message = first_error(&format!("{GOOD}spec:\n  ingress:\n    host: 10.0.0.1\n"));
    assert!(
        message.starts_with("7:11: spec.ingress.host: \"10.0.0.1\" is not a host name"),
        "{message}"
    );
}

fn first_error(yaml: &str) -> String {
    let error = render(yaml).expect_err("bad input is refused");
    error.diagnostics[0].to_string()
}

#[test]
fn malformed_yaml_gives_line_and_column() {
    let message = first_error(&format!("{GOOD}spec:\n  master: {{image: [x\n"));
    let mut parts = message.splitn(3, ':');
    assert!(
        parts.next().expect("line").parse::<u64>().is_ok(),
        "{message}"
    );
    assert!(
        parts.next().expect("column").parse::<u64>().is_ok(),
        "{message}"
    );
}

#[test]
fn a_second_document_is_refused_with_one_position() {
    let message = first_error(&format!("{GOOD}spec: {{}}\n---\n{GOOD}spec: {{}}\n"));
    assert!(message.starts_with("7:1: "), "{message}");
    assert!(message.contains("one JenkinsCluster"), "{message}");
    // Neither the parser's API names nor a second copy of the position.
    assert!(!message.contains("from_str"), "{message}");
    assert!(!message.contains("line 7"), "{message}");
}

#[test]
fn a_syntax_error_shows_its_position_once() {
    let message = first_error(&format!("{GOOD}spec:\n  master: {{image: [x\n"));
    assert!(!message.contains(" at line "), "{message}");
}

#[test]
fn an_unknown_field_is_named_with_its_position() {
    let message = first_error(&format!("{GOOD}spec:\n  persistance: {{size: 1Gi}}\n"));
    assert!(
        message.starts_with("6:3: unknown field spec.persistance"),
        "{message}"
    );
    // The closest known field, and the parent to explain (the misspelled field has none).
    assert!(
        message.contains("(did you mean `persistence`?)"),
        "{message}"
    );
    assert!(
        message.ends_with("`kubectl explain jenkinscluster.spec`"),
        "{message}"
    );
    // A word that is not close to any field gets no guess.
    let message = first_error(&format!(
        "{GOOD}spec:
  colour: blue
"
    ));
    assert!(!message.contains("did you mean"), "{message}");
    let message =
        first_error("apiVersion: jenkins.ci/v1alpha1\nkind: JenkinsCluster\nmetdata: {}\n");
    assert!(message.contains("(did you mean `metadata`?)"), "{message}");
    assert!(
        message.ends_with("`kubectl explain jenkinscluster`"),
        "{message}"
    );
}

#[test]
fn a_name_too_long_is_refused() {
    let yaml = GOOD.replace("name: ci", &format!("name: {}", "c".repeat(41)));
    let message = first_error(&format!("{yaml}spec: {{}}\n"));
    assert!(message.starts_with("4:9: metadata.name: "), "{message}");
    assert!(message.contains("at most 40"), "{message}");
}

#[test]
fn duplicate_template_labels_are_refused() {
    let message = first_error(&format!(
        "{GOOD}spec:\n  agents:\n    templates:\n\
         \x20     - {{name: a, label: java, containers: [{{name: a, image: a}}]}}\n\
         \x20     - {{name: b, label: java, containers: [{{name: b, image: b}}]}}\n"
    ));
    assert!(
        message.contains("spec.agents.templates[1].label: label java"),
        "{message}"
    );
}

#[test]
fn duplicate_plugins_are_refused() {
    let message = first_error(&format!(
        "{GOOD}spec:\n  plugins:\n    - {{name: git, version: 5.7.0}}\n\
         \x20   - {{name: git, version: 5.8.0}}\n"
    ));
    assert!(
        message.contains("spec.plugins[1].name: plugin git is already listed"),
        "{message}"
    );
}

#[test]
fn an_existing_claim_with_a_size_is_refused() {
    let message = first_error(&format!(
        "{GOOD}spec:\n  persistence:\n    existingClaim: data\n    size: 10Gi\n"
    ));
    assert!(
        message.starts_with("7:20: spec.persistence.existingClaim: is set together with"),
        "{message}"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_named_by_its_field_path() {
    let message = first_error(&format!("{GOOD}spec:\n  agents:\n    containerCap: ten\n"));
    assert_eq!(
        message,
        "7:19: spec.agents.containerCap: expected an integer"
    );
    let message = first_error(&format!(
        "{GOOD}spec:\n  plugins:\n    - {{name: git, version: [5.7.0]}}\n"
    ));
    assert_eq!(message, "7:28: spec.plugins[0].version: expected a string");
    let message = first_error(&format!("{GOOD}spec:\n  ingress: {{tls: {{}}}}\n"));
    assert_eq!(message, "6:12: spec.ingress: missing field `host`");

    // Through the binary: the file, the position and the path on one line.
    let binary = env!("CARGO_BIN_EXE_jenkins-operator");
    let bad = std::env::temp_dir().join(format!(
        "jenkins-operator-wrong-type-{}.yaml",
        std::process::id()
    ));
    std::fs::write(
        &bad,
        format!("{GOOD}spec:\n  master:\n    startupTimeoutSeconds: soon\n"),
    )
    .expect("write");
    let failed = Command::new(binary)
        .arg("render")
        .arg(&bad)
        .output()
        .expect("runs");
    std::fs::remove_file(&bad).ok();
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&failed.stderr),
        format!(
            "error: {}:7:28: spec.master.startupTimeoutSeconds: expected an integer\n",
            bad.display()
        )
    );
    assert!(failed.stdout.is_empty());
}

#[test]
fn the_binary_renders_an_example_and_refuses_a_bad_file() {
    let binary = env!("CARGO_BIN_EXE_jenkins-operator");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster-minimal.yaml");
    let ok = Command::new(binary)
        .arg("render")
        .arg(&example)
        .output()
        .expect("runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(stdout.contains("kind: Deployment"));

    let bad =
        std::env::temp_dir().join(format!("jenkins-operator-bad-{}.yaml", std::process::id()));
    std::fs::write(&bad, format!("{GOOD}spec:\n  master: {{imag: x}}\n")).expect("write");
    let failed = Command::new(binary)
        .arg("render")
        .arg(&bad)
        .output()
        .expect("runs");
    std::fs::remove_file(&bad).ok();
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: {}:6:12: unknown field spec.master.imag",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(failed.stdout.is_empty());

    let missing = Command::new(binary)
        .args(["render", "/nonexistent.yaml"])
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).starts_with("error: /nonexistent.yaml: "));
}

#[test]
fn every_jenkins_cluster_shown_in_the_readme_renders() {
    let readme = include_str!("../README.md");
    let blocks: Vec<&str> = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .filter(|block| block.contains("kind: JenkinsCluster"))
        .collect();
    assert!(!blocks.is_empty(), "the README shows a JenkinsCluster");
    for block in blocks {
        if let Err(error) = render(block) {
            panic!("a README example does not render: {error:?}\n{block}");
        }
    }
}

/// `render ... | head` and `crds | head` close the pipe early: the command ends quietly with
/// success instead of panicking on the closed stdout. Only `crds` (156 KB) outgrows a pipe's
/// buffer and so meets the closed pipe; `render` writes through the same helper and is run to
/// check it still succeeds when its reader leaves.
#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::Read as _;
    let example = examples().into_iter().next().expect("an example");
    let runs: [Vec<String>; 2] = [
        vec!["render".into(), example.display().to_string()],
        vec!["crds".into()],
    ];
    for args in runs {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jenkins-operator"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let mut first = [0u8; 16];
        let mut stdout = child.stdout.take().expect("piped stdout");
        stdout.read_exact(&mut first).expect("some output");
        drop(stdout);
        let output = child.wait_with_output().expect("the binary ends");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            output.status.success(),
            "{args:?}: {:?} {stderr}",
            output.status
        );
    }
}

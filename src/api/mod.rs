//! Custom resource types of the `jenkins.ci` API group and the helpers they share.

pub mod build;
pub mod cluster;
pub mod conditions;
pub mod job;

pub use build::{JenkinsBuild, JenkinsBuildSpec, JenkinsBuildStatus};
pub use cluster::{JenkinsCluster, JenkinsClusterSpec, JenkinsClusterStatus};
pub use job::{JenkinsJob, JenkinsJobSpec, JenkinsJobStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every resource of the operator.
pub const GROUP: &str = "jenkins.ci";

/// Every CustomResourceDefinition the operator serves, in install order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        JenkinsCluster::crd(),
        JenkinsJob::crd(),
        JenkinsBuild::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream, as `jenkins-operator crds` prints it and as
/// `crds/` holds it.
pub fn crds_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}

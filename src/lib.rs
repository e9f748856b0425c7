//! jenkins-operator: runs Jenkins on Kubernetes. A `JenkinsCluster` resource becomes a Jenkins
//! master with persistent storage and pod-per-build agents; `JenkinsJob` resources become
//! pipelines in it; `JenkinsBuild` resources are runs of them. See the README.

pub mod api;
pub mod build;
pub mod cluster;
pub mod jenkins;
pub mod job;
pub mod operator;

//! jenkins-operator: runs Jenkins on Kubernetes. A `JenkinsCluster` resource becomes a Jenkins
//! master with persistent storage and pod-per-build agents; `JenkinsJob` resources become
//! pipelines in it. See the README.

pub mod api;
pub mod cluster;
pub mod jenkins;
pub mod job;
pub mod operator;

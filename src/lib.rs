//! jenkins-operator: runs Jenkins on Kubernetes. A `JenkinsCluster` resource becomes a Jenkins
//! master with persistent storage and pod-per-build agents; see the README.

pub mod api;
pub mod cluster;
pub mod job;
pub mod operator;

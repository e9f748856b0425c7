//! jenkins-operator: runs Jenkins on Kubernetes.
pub mod jenkins;

//! jenkins-operator: runs Jenkins on Kubernetes.

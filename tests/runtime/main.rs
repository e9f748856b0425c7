//! `jenkins-operator run` as users run it: the real binary, as child processes, against the
//! Kubernetes API emulator. These tests need the emulator's request log (who called what) and
//! fault injection, so they have no real-cluster mode.
//!
//! Each process gets its own `POD_NAME`; the operator sends it in its user agent
//! (`jenkins-operator/<version> (<pod>)`), which is how the request log tells the replicas
//! apart from each other and from the test's own client (which sends no user agent).

mod health;
#[path = "../cluster/jenkins_pod.rs"]
mod jenkins_pod;
mod leader;
mod logs;
mod operator;
mod rbac;
mod startup;

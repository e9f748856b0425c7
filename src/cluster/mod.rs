//! JenkinsCluster: validation of the spec, one pure builder per child object, and the
//! reconciler that applies them.

pub mod children;

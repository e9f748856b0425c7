//! JenkinsJob: from a spec to the Jenkins items it declares.
//!
//! [`plan::plan`] fans a JenkinsJob out over its environments and branches and returns each
//! Jenkins job with its name and config.xml ([`config_xml`]); it does no I/O. The reconciler
//! applies the plan through the Jenkins REST API.

pub mod config_xml;
pub mod invalid;
pub mod names;
pub mod plan;

#[cfg(test)]
mod xml_tree;

pub use invalid::{InvalidJob, Problem};
pub use plan::{CredentialRef, JobKind, JobPlan, PlannedJob, plan};

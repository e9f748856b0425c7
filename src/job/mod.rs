//! JenkinsJob: from a spec to the Jenkins items it declares.
//!
//! [`plan::plan`] fans a JenkinsJob out over its environments and branches and returns each
//! Jenkins job with its name and config.xml ([`config_xml`]); it does no I/O. The reconciler
//! applies the plan through the Jenkins REST API ([`reconcile`], [`sync`]), after checking that
//! the cluster admits the job and that no older JenkinsJob holds its names ([`tenancy`]), and
//! provides its git credential ([`credentials`]).

pub mod config_xml;
pub mod credentials;
pub mod index;
pub mod invalid;
pub mod names;
pub mod plan;
pub mod reconcile;
pub mod sync;
pub mod tenancy;

#[cfg(test)]
mod xml_tree;

pub use invalid::{InvalidJob, Problem};
pub use plan::{CredentialRef, JobKind, JobPlan, PlannedJob, plan};

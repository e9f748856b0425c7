//! A client for Jenkins' REST API.
//!
//! Behaviour (see `docs/jenkins-client.md` for more):
//! - basic auth is sent pre-emptively on every request; redirects are never followed;
//! - CSRF crumbs are fetched lazily from `crumbIssuer/api/json`, cached with their session
//!   cookie, refetched once when Jenkins answers "No valid crumb", and skipped when the issuer
//!   is absent (CSRF off) or the secret is an API token;
//! - reads and idempotent writes are retried with exponential backoff on connection errors,
//!   timeouts and 5xx; calls that create things (`createItem`, build triggers) never are;
//! - item paths are validated against Jenkins' naming rules before anything is sent, and each
//!   `/job/<name>` segment is percent-encoded on its own;
//! - request logs (`tracing` debug) carry the operation, method, path and status, never
//!   credentials, crumbs or query strings (which may hold tokens).

mod builds;
mod client;
mod crumb;
mod error;
mod jobs;
mod names;
mod queue;
mod system;
mod xml_compare;

pub use builds::{BUILD_PAGE, Build, BuildRef, BuildResult, BuildSearch, FoundBuild, LogChunk};
pub use client::{
    Credential, CredentialKind, JenkinsClient, JenkinsConfig, RequestObserver, endpoint,
};
pub use error::JenkinsError;
pub use jobs::{FOLDER_CONFIG, JobInfo, ParameterDefinition, ParameterKind};
pub use names::{JobPath, validate_name};
pub use queue::QueueItem;
pub use system::{Plugin, ServerInfo, WhoAmI};
pub use xml_compare::{
    Declared, PARAMETERS_PROPERTY, configs_equivalent, job_config_matches, root_child_text,
};

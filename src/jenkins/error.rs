//! The errors of the Jenkins client, one variant per way a call can fail.

use thiserror::Error;

/// A failed Jenkins call. Each variant names the operation; none carries credentials.
#[derive(Debug, Error)]
pub enum JenkinsError {
    /// The item, build, queue item or endpoint does not exist (404).
    #[error("failed to {operation}: not found")]
    NotFound {
        /// What was attempted, e.g. `get job ‘a/b’`.
        operation: String,
    },
    /// An item with the same name (compared case-insensitively) already exists.
    #[error("failed to {operation}: an item named ‘{name}’ already exists")]
    AlreadyExists {
        /// What was attempted.
        operation: String,
        /// The name that clashed.
        name: String,
    },
    /// The item name breaks Jenkins' naming rules (checked locally or by Jenkins).
    #[error("failed to {operation}: ‘{name}’ is not a valid item name: {reason}")]
    BadName {
        /// What was attempted.
        operation: String,
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Jenkins rejected the user name or secret (401).
    #[error("failed to {operation}: Jenkins rejected the credentials (401)")]
    Unauthorized {
        /// What was attempted.
        operation: String,
    },
    /// The user may not do this, or no credentials reached Jenkins (403).
    #[error("failed to {operation}: permission denied (403): {excerpt}")]
    Forbidden {
        /// What was attempted.
        operation: String,
        /// A short excerpt of Jenkins' answer.
        excerpt: String,
    },
    /// Jenkins refused the CSRF crumb even after a fresh one was fetched.
    #[error("failed to {operation}: Jenkins rejected the CSRF crumb")]
    CrumbRejected {
        /// What was attempted.
        operation: String,
    },
    /// The job is disabled or otherwise not buildable (409).
    #[error("failed to {operation}: the job is not buildable (disabled?)")]
    NotBuildable {
        /// What was attempted.
        operation: String,
    },
    /// Parameters were given to a job that has none.
    #[error("failed to {operation}: the job is not parameterized")]
    NotParameterized {
        /// What was attempted.
        operation: String,
    },
    /// Jenkins answers 503 while it starts up.
    #[error("failed to {operation}: Jenkins is starting (503)")]
    Starting {
        /// What was attempted.
        operation: String,
    },
    /// The request, or a wait for Jenkins, timed out.
    #[error("failed to {operation}: timed out")]
    Timeout {
        /// What was attempted.
        operation: String,
        /// The HTTP error, when the timeout was a request's.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// No connection could be made to Jenkins.
    #[error("failed to {operation}: could not connect to Jenkins")]
    ConnectionRefused {
        /// What was attempted.
        operation: String,
        /// The HTTP error.
        #[source]
        source: reqwest::Error,
    },
    /// Any other transport failure (TLS, a reset connection, a broken body).
    #[error("failed to {operation}: transport error")]
    Transport {
        /// What was attempted.
        operation: String,
        /// The HTTP error.
        #[source]
        source: reqwest::Error,
    },
    /// Jenkins could not read the config.xml (500 on malformed XML or a changed item type).
    #[error("failed to {operation}: Jenkins rejected the configuration: {excerpt}")]
    InvalidConfig {
        /// What was attempted.
        operation: String,
        /// A short excerpt of Jenkins' answer.
        excerpt: String,
    },
    /// The request was refused locally before anything was sent.
    #[error("failed to {operation}: {reason}")]
    InvalidRequest {
        /// What was attempted.
        operation: String,
        /// Why it cannot be sent.
        reason: String,
    },
    /// The JCasC reload ran but the configuration failed to apply.
    #[error("failed to {operation}: the configuration did not apply: {message}")]
    CascReloadFailed {
        /// What was attempted.
        operation: String,
        /// Jenkins' message, shortened.
        message: String,
    },
    /// The queue item was cancelled before it became a build.
    #[error("failed to {operation}: the queue item was cancelled")]
    Cancelled {
        /// What was attempted.
        operation: String,
    },
    /// Jenkins answered with a status this call does not expect.
    #[error("failed to {operation}: unexpected answer {status}: {excerpt}")]
    Unexpected {
        /// What was attempted.
        operation: String,
        /// HTTP status.
        status: u16,
        /// A short excerpt of the body (or `X-Error`), credentials removed.
        excerpt: String,
    },
    /// Jenkins answered with something that could not be read (bad JSON, missing header).
    #[error("failed to {operation}: unreadable answer: {detail}")]
    InvalidResponse {
        /// What was attempted.
        operation: String,
        /// What was wrong.
        detail: String,
    },
    /// The HTTP client could not be built.
    #[error("failed to build the Jenkins HTTP client")]
    Client {
        /// The builder's error.
        #[source]
        source: reqwest::Error,
    },
}

impl JenkinsError {
    /// True for failures that may go away by themselves (starting, timeouts, connections, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            JenkinsError::Starting { .. }
            | JenkinsError::Timeout { .. }
            | JenkinsError::ConnectionRefused { .. }
            | JenkinsError::Transport { .. } => true,
            JenkinsError::Unexpected { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// True when the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, JenkinsError::NotFound { .. })
    }
}

//! The error of a JenkinsJob spec the operator cannot turn into Jenkins jobs.
//!
//! The CRD schema rejects most bad input at `kubectl apply` time; what it cannot see (the
//! cluster's environments, generated names that collide, characters XML cannot carry) ends up
//! here. Every problem names the field (`spec.environments[1]`) and says what to change, so the
//! reconciler can put the message in a condition as is.

use std::fmt;

/// One thing wrong with a JenkinsJob spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Path of the offending field, for example `spec.parameters[2].default`.
    pub path: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A JenkinsJob the operator cannot build, with every problem found (not just the first).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidJob {
    /// The problems, in the order of the spec's fields, each once.
    pub problems: Vec<Problem>,
}

impl InvalidJob {
    /// Whether some problem is about the field at `path` (exactly).
    pub fn names_field(&self, path: &str) -> bool {
        self.problems.iter().any(|p| p.path == path)
    }
}

impl fmt::Display for InvalidJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.problems.iter().map(Problem::to_string).collect();
        write!(f, "invalid JenkinsJob: {}", all.join("; "))
    }
}

/// Problems collected while planning; the same problem found twice (say, in the config of
/// every environment's job) is kept once.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let problem = Problem {
            path: path.into(),
            message: message.into(),
        };
        if !self.0.contains(&problem) {
            self.0.push(problem);
        }
    }

    /// `Ok(value)` when nothing was found, else every problem.
    pub(crate) fn into_result<T>(self, value: T) -> Result<T, InvalidJob> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(InvalidJob { problems: self.0 })
        }
    }
}

//! Item names and paths: Jenkins' naming rules and the URL encoding of `/job/<name>` segments.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::JenkinsError;

/// Everything but RFC 3986 unreserved characters is encoded in a path segment, so `/`, `+`,
/// `%` and Unicode never reach Jenkins raw.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Characters Jenkins refuses in item names (`Jenkins.checkGoodName`).
const UNSAFE: &str = "?*/\\%!@#$^&|<>[]:;";

/// Checks a single item name against Jenkins' rules; the error explains the rule broken.
///
/// Leading or trailing whitespace is refused too: Jenkins trims it on create, so the item
/// would not be found under the name asked for.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name == "." || name == ".." {
        return Err("‘.’ and ‘..’ are reserved".into());
    }
    if name.ends_with('.') {
        return Err("a name cannot end with ‘.’".into());
    }
    if name.trim() != name {
        return Err("a name cannot start or end with whitespace".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "control character U+{:04X} is not allowed",
            u32::from(c)
        ));
    }
    if let Some(c) = name.chars().find(|c| UNSAFE.contains(*c)) {
        return Err(format!("‘{c}’ is an unsafe character"));
    }
    Ok(())
}

/// The path of an item: its folders and its own name, e.g. `team/app/deploy`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobPath {
    segments: Vec<String>,
}

impl JobPath {
    /// A path from its segments (folders first); every segment must be a valid name.
    pub fn new<I, S>(segments: I) -> Result<JobPath, JenkinsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let segments: Vec<String> = segments.into_iter().map(Into::into).collect();
        if segments.is_empty() {
            return Err(JenkinsError::BadName {
                operation: "build a job path".into(),
                name: String::new(),
                reason: "the path has no segments".into(),
            });
        }
        for name in &segments {
            validate_name(name).map_err(|reason| JenkinsError::BadName {
                operation: "build a job path".into(),
                name: name.clone(),
                reason,
            })?;
        }
        Ok(JobPath { segments })
    }

    /// Parses a full name such as `team/app` (`/` separates folders; names never hold one).
    pub fn parse(full_name: &str) -> Result<JobPath, JenkinsError> {
        JobPath::new(full_name.split('/'))
    }

    /// The item's own name (the last segment).
    pub fn name(&self) -> &str {
        // Invariant: `new` refuses an empty segment list.
        self.segments.last().map(String::as_str).unwrap_or_default()
    }

    /// The folder holding the item, or `None` at the top level.
    pub fn parent(&self) -> Option<JobPath> {
        let (_, parent) = self.segments.split_last()?;
        (!parent.is_empty()).then(|| JobPath {
            segments: parent.to_vec(),
        })
    }

    /// A path for an item inside this one.
    pub fn child(&self, name: &str) -> Result<JobPath, JenkinsError> {
        let mut segments = self.segments.clone();
        segments.push(name.to_string());
        JobPath::new(segments)
    }

    /// Folders then name.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Jenkins' `fullName`, segments joined by `/`.
    pub fn full_name(&self) -> String {
        self.segments.join("/")
    }

    /// The item's URL path relative to Jenkins' root, with a trailing slash:
    /// `job/team/job/my%20app/`.
    pub fn url_path(&self) -> String {
        folder_url_path(&self.segments)
    }

    /// The URL path of the folder holding the item (empty at the top level).
    pub fn parent_url_path(&self) -> String {
        folder_url_path(&self.segments[..self.segments.len().saturating_sub(1)])
    }
}

fn folder_url_path(segments: &[String]) -> String {
    segments
        .iter()
        .map(|s| format!("job/{}/", utf8_percent_encode(s, SEGMENT)))
        .collect()
}

impl fmt::Display for JobPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_segment_is_encoded_on_its_own() {
        let path = JobPath::parse("team a/b+c/ünï (x)").expect("a valid path");
        assert_eq!(
            path.url_path(),
            "job/team%20a/job/b%2Bc/job/%C3%BCn%C3%AF%20%28x%29/"
        );
        assert_eq!(path.parent_url_path(), "job/team%20a/job/b%2Bc/");
        assert_eq!(path.name(), "ünï (x)");
        assert_eq!(path.parent().expect("a parent").full_name(), "team a/b+c");
    }

    #[test]
    fn names_breaking_jenkins_rules_are_refused() {
        for bad in [
            "", ".", "..", "a.", "a?b", "a%b", "a#", "a:b", "a;b", "a\u{7}", " a", "a ",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["a b", "a+b", "ä", "a=b,c'd\"(e){f}~g-h", "a.b"] {
            assert!(validate_name(good).is_ok(), "{good:?} should be accepted");
        }
        assert!(JobPath::parse("a//b").is_err());
    }
}

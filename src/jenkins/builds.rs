//! Builds: triggering (and following the queue item to a build number), reading, stopping,
//! and the progressive console log.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use super::client::{Call, Retry};
use super::jobs::value_text;
use super::queue::QueueItem;
use super::{JenkinsClient, JenkinsError, JobPath};

/// A reference to a build.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BuildRef {
    /// Build number.
    pub number: u64,
    /// Absolute URL of the build as Jenkins reports it.
    #[serde(default)]
    pub url: String,
}

/// How a finished build ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildResult {
    /// `SUCCESS`
    Success,
    /// `UNSTABLE`
    Unstable,
    /// `FAILURE`
    Failure,
    /// `NOT_BUILT`
    NotBuilt,
    /// `ABORTED`
    Aborted,
    /// Anything else Jenkins may report.
    Other(String),
}

impl BuildResult {
    /// The name Jenkins uses (`SUCCESS`, `UNSTABLE`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            BuildResult::Success => "SUCCESS",
            BuildResult::Unstable => "UNSTABLE",
            BuildResult::Failure => "FAILURE",
            BuildResult::NotBuilt => "NOT_BUILT",
            BuildResult::Aborted => "ABORTED",
            BuildResult::Other(other) => other,
        }
    }

    fn parse(text: &str) -> BuildResult {
        match text {
            "SUCCESS" => BuildResult::Success,
            "UNSTABLE" => BuildResult::Unstable,
            "FAILURE" => BuildResult::Failure,
            "NOT_BUILT" => BuildResult::NotBuilt,
            "ABORTED" => BuildResult::Aborted,
            other => BuildResult::Other(other.to_string()),
        }
    }
}

/// A build as `api/json` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    /// Build number.
    pub number: u64,
    /// The queue item it came from.
    pub queue_id: u64,
    /// Still running. Completion is `building == false`: a pipeline can show a result early.
    pub building: bool,
    /// The result, once known.
    pub result: Option<BuildResult>,
    /// Duration in milliseconds (0 while running).
    pub duration_ms: u64,
    /// Start time, milliseconds since the epoch.
    pub timestamp_ms: u64,
    /// Absolute URL.
    pub url: String,
    /// Parameters the build ran with.
    pub parameters: Vec<(String, String)>,
}

impl Build {
    /// True once Jenkins has finished the build.
    pub fn is_complete(&self) -> bool {
        !self.building
    }
}

/// A build found by one of its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundBuild {
    /// Build number.
    pub number: u64,
    /// The queue item it came from.
    pub queue_id: u64,
}

/// How many builds one request of a build search reads.
pub const BUILD_PAGE: usize = 100;

/// How far back a search through a job's builds looks ([`JenkinsClient::find_build_by_parameter`],
/// [`JenkinsClient::find_build_by_queue_id`]). Builds are read newest first, [`BUILD_PAGE`] per
/// request (`tree=allBuilds[…]{M,N}`: a job's `builds` list stops at the newest 100, and
/// `allBuilds` unpaged would load every build record Jenkins keeps). The search stops after
/// the page that reaches a build started before `started_after_ms`, or after `max_builds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildSearch {
    /// Builds started before this (milliseconds since the epoch, Jenkins' clock) cannot be the
    /// one looked for: the search ends at the first page that reaches one. `None`: no limit.
    pub started_after_ms: Option<u64>,
    /// The most builds looked at.
    pub max_builds: usize,
}

impl Default for BuildSearch {
    /// The newest 1,000 builds.
    fn default() -> Self {
        BuildSearch {
            started_after_ms: None,
            max_builds: 1_000,
        }
    }
}

impl BuildSearch {
    /// The newest 1,000 builds, as far back as builds started at `ms` (milliseconds since the
    /// epoch).
    pub fn started_after(ms: u64) -> Self {
        BuildSearch {
            started_after_ms: Some(ms),
            ..BuildSearch::default()
        }
    }

    /// Whether a page of `len` builds, asked for `wanted`, whose oldest build started at
    /// `oldest_ms`, leaves older builds to look at.
    fn goes_past(&self, len: usize, wanted: usize, oldest_ms: Option<u64>) -> bool {
        if len < wanted {
            // The end of the job's builds.
            return false;
        }
        match (self.started_after_ms, oldest_ms) {
            // A build without a start time (0) says nothing about the older ones.
            (Some(after), Some(oldest)) if oldest != 0 => oldest >= after,
            _ => true,
        }
    }
}

/// One page of `allBuilds`.
#[derive(Deserialize)]
struct BuildPage {
    #[serde(default, rename = "allBuilds")]
    all_builds: Vec<ListedBuild>,
}

/// A build as a build search lists it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedBuild {
    number: u64,
    #[serde(default)]
    queue_id: Option<u64>,
    #[serde(default)]
    timestamp: u64,
    #[serde(default)]
    actions: Vec<RawAction>,
}

/// One read of the progressive console log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// New text since the offset asked for.
    pub text: String,
    /// Opaque cursor for the next read (Jenkins' `X-Text-Size`, not a text length).
    pub next_offset: u64,
    /// The log may still grow (`X-More-Data: true`).
    pub more: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBuild {
    number: u64,
    #[serde(default)]
    queue_id: u64,
    #[serde(default)]
    building: bool,
    result: Option<String>,
    #[serde(default)]
    duration: u64,
    #[serde(default)]
    timestamp: u64,
    #[serde(default)]
    url: String,
    #[serde(default)]
    actions: Vec<RawAction>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAction {
    parameters: Vec<RawParameterValue>,
}

#[derive(Deserialize)]
struct RawParameterValue {
    name: String,
    #[serde(default)]
    value: serde_json::Value,
}

/// The queue item id at the end of a `Location` such as `http://host/queue/item/42/`.
fn queue_id_from_location(location: &str) -> Option<u64> {
    let mut segments = location.trim_end_matches('/').rsplit('/');
    let id = segments.next()?.parse().ok()?;
    (segments.next()? == "item" && segments.next()? == "queue").then_some(id)
}

impl JenkinsClient {
    /// Queues a build and returns the queue item id.
    ///
    /// With parameters it uses `buildWithParameters` (undefined names are ignored by Jenkins,
    /// missing ones take their default); without, `build`, falling back to
    /// `buildWithParameters` with all defaults when the job turns out to be parameterized.
    /// When an identical item is already queued, its id comes back. Never retried.
    pub async fn trigger_build(
        &self,
        path: &JobPath,
        params: &[(String, String)],
    ) -> Result<u64, JenkinsError> {
        let operation = format!("trigger a build of ‘{path}’");
        if params.is_empty() {
            let call = Call::post(
                operation.clone(),
                format!("{}build", path.url_path()),
                Retry::Never,
            );
            let answer = self.execute(&call).await?;
            let nothing_submitted = answer.status == StatusCode::BAD_REQUEST
                && answer.text().contains("Nothing is submitted");
            if !nothing_submitted {
                return self.queued(&call, &answer);
            }
            // A parameterized job: nothing was queued, so a second POST is safe.
        }
        let mut call = Call::post(
            operation,
            format!("{}buildWithParameters", path.url_path()),
            Retry::Never,
        );
        for (name, value) in params {
            call = call.query(name, value);
        }
        let answer = self.execute(&call).await?;
        self.queued(&call, &answer)
    }

    fn queued(&self, call: &Call, answer: &super::client::Answer) -> Result<u64, JenkinsError> {
        let operation = call.operation.clone();
        match answer.status {
            StatusCode::CREATED | StatusCode::SEE_OTHER | StatusCode::FOUND => {
                let location = answer.header("location").unwrap_or_default();
                queue_id_from_location(location).ok_or_else(|| JenkinsError::InvalidResponse {
                    operation,
                    detail: format!("no queue item in Location ‘{location}’"),
                })
            }
            StatusCode::CONFLICT => Err(JenkinsError::NotBuildable { operation }),
            StatusCode::BAD_REQUEST | StatusCode::INTERNAL_SERVER_ERROR
                if answer.text().contains("is not parameterized") =>
            {
                Err(JenkinsError::NotParameterized { operation })
            }
            _ => Err(self.error(&operation, answer)),
        }
    }

    /// Finds a build by the queue item it came from, for when the queue has forgotten the item,
    /// among the builds `search` looks at.
    pub async fn find_build_by_queue_id(
        &self,
        path: &JobPath,
        queue_id: u64,
        search: &BuildSearch,
    ) -> Result<Option<u64>, JenkinsError> {
        let found = self
            .search_builds(
                path,
                search,
                &format!("find the build of queue item {queue_id} in ‘{path}’"),
                "number,queueId,timestamp",
                |b| b.queue_id == Some(queue_id),
            )
            .await?;
        Ok(found.map(|b| b.number))
    }

    /// Finds the build (number and queue item) that ran with the parameter `name=value`,
    /// among the builds `search` looks at.
    pub async fn find_build_by_parameter(
        &self,
        path: &JobPath,
        name: &str,
        value: &str,
        search: &BuildSearch,
    ) -> Result<Option<FoundBuild>, JenkinsError> {
        let found = self
            .search_builds(
                path,
                search,
                &format!("find the build of ‘{path}’ with parameter {name}"),
                "number,queueId,timestamp,actions[parameters[name,value]]",
                |b| {
                    b.actions
                        .iter()
                        .flat_map(|a| &a.parameters)
                        .any(|p| p.name == name && value_text(&p.value).as_deref() == Some(value))
                },
            )
            .await?;
        Ok(found.map(|b| FoundBuild {
            number: b.number,
            queue_id: b.queue_id.unwrap_or_default(),
        }))
    }

    /// The first build, newest first, that `matches`, reading the job's `allBuilds` a page at a
    /// time (its `builds` stop at the newest 100) for as long as `search` allows.
    async fn search_builds(
        &self,
        path: &JobPath,
        search: &BuildSearch,
        operation: &str,
        fields: &str,
        matches: impl Fn(&ListedBuild) -> bool,
    ) -> Result<Option<ListedBuild>, JenkinsError> {
        let mut start = 0;
        while start < search.max_builds {
            let end = start.saturating_add(BUILD_PAGE).min(search.max_builds);
            let call = Call::get(operation.to_owned(), format!("{}api/json", path.url_path()))
                .query("tree", &format!("allBuilds[{fields}]{{{start},{end}}}"));
            let answer = self.execute(&call).await?;
            if answer.status != StatusCode::OK {
                return Err(self.error(&call.operation, &answer));
            }
            let page: BuildPage = answer.json(&call.operation)?;
            let wanted = end - start;
            let oldest = page.all_builds.last().map(|b| b.timestamp);
            let more = search.goes_past(page.all_builds.len(), wanted, oldest);
            if let Some(found) = page.all_builds.into_iter().find(|b| matches(b)) {
                return Ok(Some(found));
            }
            if !more {
                break;
            }
            start = end;
        }
        Ok(None)
    }

    /// Where a queue item stands: `Ok(Some(n))` once it became build `n`, `Ok(None)` while it
    /// waits (or has left but does not name its build yet).
    pub async fn build_number_for_queue_item(
        &self,
        path: &JobPath,
        queue_id: u64,
    ) -> Result<Option<u64>, JenkinsError> {
        match self.queue_item(queue_id).await? {
            QueueItem::Left {
                cancelled: true, ..
            } => Err(JenkinsError::Cancelled {
                operation: format!("follow queue item {queue_id} of ‘{path}’"),
            }),
            QueueItem::Left {
                executable: Some(build),
                ..
            } => Ok(Some(build.number)),
            QueueItem::NotFound => {
                self.find_build_by_queue_id(path, queue_id, &BuildSearch::default())
                    .await
            }
            _ => Ok(None),
        }
    }

    /// Polls a queue item every `interval` until it names its build, for at most `timeout`.
    pub async fn wait_for_build_number(
        &self,
        path: &JobPath,
        queue_id: u64,
        interval: Duration,
        timeout: Duration,
    ) -> Result<u64, JenkinsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(number) = self.build_number_for_queue_item(path, queue_id).await? {
                return Ok(number);
            }
            if tokio::time::Instant::now() + interval > deadline {
                return Err(JenkinsError::Timeout {
                    operation: format!("wait for queue item {queue_id} of ‘{path}’ to start"),
                    source: None,
                });
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// A build's state and parameters.
    pub async fn get_build(&self, path: &JobPath, number: u64) -> Result<Build, JenkinsError> {
        let call = Call::get(
            format!("get build #{number} of ‘{path}’"),
            format!("{}{number}/api/json", path.url_path()),
        );
        let answer = self.execute(&call).await?;
        if answer.status != StatusCode::OK {
            return Err(self.error(&call.operation, &answer));
        }
        let raw: RawBuild = answer.json(&call.operation)?;
        let parameters = raw
            .actions
            .into_iter()
            .flat_map(|a| a.parameters)
            .map(|p| (p.name, value_text(&p.value).unwrap_or_default()))
            .collect();
        Ok(Build {
            number: raw.number,
            queue_id: raw.queue_id,
            building: raw.building,
            result: raw.result.as_deref().map(BuildResult::parse),
            duration_ms: raw.duration,
            timestamp_ms: raw.timestamp,
            url: raw.url,
            parameters,
        })
    }

    /// Asks a running build to stop; it ends as `ABORTED` a little later.
    pub async fn stop_build(&self, path: &JobPath, number: u64) -> Result<(), JenkinsError> {
        let call = Call::post(
            format!("stop build #{number} of ‘{path}’"),
            format!("{}{number}/stop", path.url_path()),
            Retry::Idempotent,
        );
        let answer = self.execute(&call).await?;
        match answer.status {
            StatusCode::OK | StatusCode::FOUND | StatusCode::SEE_OTHER | StatusCode::NO_CONTENT => {
                Ok(())
            }
            _ => Err(self.error(&call.operation, &answer)),
        }
    }

    /// The whole console text so far.
    pub async fn console_text(&self, path: &JobPath, number: u64) -> Result<String, JenkinsError> {
        let call = Call::get(
            format!("read the console of build #{number} of ‘{path}’"),
            format!("{}{number}/consoleText", path.url_path()),
        );
        let answer = self.execute(&call).await?;
        if answer.status != StatusCode::OK {
            return Err(self.error(&call.operation, &answer));
        }
        Ok(answer.text())
    }

    /// Reads the console from `start` (0 first, then the previous chunk's `next_offset`).
    pub async fn progressive_log(
        &self,
        path: &JobPath,
        number: u64,
        start: u64,
    ) -> Result<LogChunk, JenkinsError> {
        let call = Call::get(
            format!("read the console of build #{number} of ‘{path}’"),
            format!("{}{number}/logText/progressiveText", path.url_path()),
        )
        .query("start", &start.to_string());
        let answer = self.execute(&call).await?;
        if answer.status != StatusCode::OK {
            return Err(self.error(&call.operation, &answer));
        }
        let next_offset = answer
            .header("x-text-size")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| JenkinsError::InvalidResponse {
                operation: call.operation.clone(),
                detail: "no readable X-Text-Size header".into(),
            })?;
        let more = answer
            .header("x-more-data")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(LogChunk {
            text: answer.text(),
            next_offset,
            more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_search_stops_at_the_end_at_its_start_time_or_at_its_bound() {
        let since = BuildSearch::started_after(1_000);
        assert!(
            since.goes_past(100, 100, Some(1_000)),
            "a full page, still recent"
        );
        assert!(
            !since.goes_past(100, 100, Some(999)),
            "reached older builds"
        );
        assert!(!since.goes_past(40, 100, Some(5_000)), "the last page");
        assert!(
            since.goes_past(100, 100, Some(0)),
            "no start time: keep looking"
        );
        assert!(BuildSearch::default().goes_past(100, 100, Some(1)));
    }

    #[test]
    fn queue_ids_are_read_from_any_host() {
        assert_eq!(
            queue_id_from_location("http://other:1/jenkins/queue/item/42/"),
            Some(42)
        );
        assert_eq!(queue_id_from_location("/queue/item/7"), Some(7));
        assert_eq!(queue_id_from_location("http://h/job/x/42/"), None);
        assert_eq!(queue_id_from_location(""), None);
    }
}

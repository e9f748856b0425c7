//! The build queue: where a triggered build waits before it gets a number.

use reqwest::StatusCode;
use serde::Deserialize;

use super::builds::BuildRef;
use super::client::{Call, Retry};
use super::{JenkinsClient, JenkinsError};

/// A queue item's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueItem {
    /// In its quiet period.
    Waiting {
        /// Jenkins' explanation.
        why: Option<String>,
    },
    /// Blocked, e.g. by a running build of a job that forbids concurrent builds.
    Blocked {
        /// Jenkins' explanation.
        why: Option<String>,
    },
    /// Ready, waiting for an executor.
    Buildable {
        /// Jenkins' explanation.
        why: Option<String>,
    },
    /// Left the queue: cancelled, or became a build. `executable` can be null for a moment
    /// after leaving: poll again.
    Left {
        /// Cancelled before it ran.
        cancelled: bool,
        /// The build it became, once Jenkins reports it.
        executable: Option<BuildRef>,
    },
    /// Unknown: never existed, or left long ago and was forgotten (after 5 minutes).
    NotFound,
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(rename = "_class", default)]
    class: String,
    #[serde(default)]
    why: Option<String>,
    #[serde(default)]
    cancelled: bool,
    #[serde(default)]
    executable: Option<BuildRef>,
}

impl JenkinsClient {
    /// Reads a queue item.
    pub async fn queue_item(&self, id: u64) -> Result<QueueItem, JenkinsError> {
        let call = Call::get(
            format!("read queue item {id}"),
            format!("queue/item/{id}/api/json"),
        );
        let answer = self.execute(&call).await?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(QueueItem::NotFound),
            _ => return Err(self.error(&call.operation, &answer)),
        }
        let raw: RawItem = answer.json(&call.operation)?;
        let kind = raw.class.rsplit('$').next().unwrap_or_default();
        Ok(match kind {
            "LeftItem" => QueueItem::Left {
                cancelled: raw.cancelled,
                executable: raw.executable,
            },
            "BlockedItem" => QueueItem::Blocked { why: raw.why },
            "BuildableItem" => QueueItem::Buildable { why: raw.why },
            "WaitingItem" => QueueItem::Waiting { why: raw.why },
            other => {
                return Err(JenkinsError::InvalidResponse {
                    operation: call.operation,
                    detail: format!("unknown queue item class ‘{other}’"),
                });
            }
        })
    }

    /// Cancels a queued item. Unknown items are [`JenkinsError::NotFound`].
    pub async fn cancel_queue_item(&self, id: u64) -> Result<(), JenkinsError> {
        let call = Call::post(
            format!("cancel queue item {id}"),
            "queue/cancelItem".into(),
            Retry::Idempotent,
        )
        .query("id", &id.to_string());
        let answer = self.execute(&call).await?;
        match answer.status {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::FOUND => Ok(()),
            _ => Err(self.error(&call.operation, &answer)),
        }
    }
}

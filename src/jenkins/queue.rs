//! The build queue: where a triggered build waits before it gets a number.

use reqwest::StatusCode;
use serde::Deserialize;

use super::builds::BuildRef;
use super::client::{Call, Retry};
use super::jobs::value_text;
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

/// The queue listing, with what identifies each item.
#[derive(Deserialize)]
struct RawQueue {
    #[serde(default)]
    items: Vec<RawListedItem>,
}

#[derive(Deserialize)]
struct RawListedItem {
    id: u64,
    /// `\nNAME=value` per parameter, as Jenkins prints them.
    #[serde(default)]
    params: Option<String>,
    #[serde(default)]
    actions: Vec<RawAction>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAction {
    parameters: Vec<RawParameter>,
}

#[derive(Deserialize)]
struct RawParameter {
    name: String,
    #[serde(default)]
    value: serde_json::Value,
}

impl RawListedItem {
    fn has_parameter(&self, name: &str, value: &str) -> bool {
        let in_actions = self
            .actions
            .iter()
            .flat_map(|a| &a.parameters)
            .any(|p| p.name == name && value_text(&p.value).as_deref() == Some(value));
        let line = format!("{name}={value}");
        let in_params = self
            .params
            .as_deref()
            .is_some_and(|params| params.lines().any(|l| l == line));
        in_actions || in_params
    }
}

impl JenkinsClient {
    /// Finds the item still in the queue (waiting, blocked, buildable or about to start) that
    /// carries the parameter `name=value`, for when the id of an item the operator queued
    /// was lost. Items that have left the queue are not listed: look for their build with
    /// [`JenkinsClient::find_build_by_parameter`].
    pub async fn find_queue_item_by_parameter(
        &self,
        name: &str,
        value: &str,
    ) -> Result<Option<u64>, JenkinsError> {
        let call = Call::get(
            format!("find the queue item with parameter {name}"),
            "queue/api/json".into(),
        )
        .query(
            "tree",
            "items[id,params,actions[parameters[name,value]],task[name,url]]",
        );
        let answer = self.execute(&call).await?;
        if answer.status != StatusCode::OK {
            return Err(self.error(&call.operation, &answer));
        }
        let queue: RawQueue = answer.json(&call.operation)?;
        Ok(queue
            .items
            .into_iter()
            .find(|item| item.has_parameter(name, value))
            .map(|item| item.id))
    }

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

    /// Cancels a queued item: `Ok(true)` when it was cancelled, `Ok(false)` when it already
    /// left the queue (Jenkins remembers a left item for five minutes and refuses to cancel
    /// it with 500 "Could not cancel run for id N"): it is a build now, or about to be.
    /// Unknown or forgotten items are [`JenkinsError::NotFound`].
    pub async fn cancel_queue_item(&self, id: u64) -> Result<bool, JenkinsError> {
        let call = Call::post(
            format!("cancel queue item {id}"),
            "queue/cancelItem".into(),
            Retry::Idempotent,
        )
        .query("id", &id.to_string());
        let answer = self.execute(&call).await?;
        match answer.status {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::FOUND => Ok(true),
            StatusCode::INTERNAL_SERVER_ERROR if answer.text().contains("Could not cancel") => {
                Ok(false)
            }
            _ => Err(self.error(&call.operation, &answer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_item_is_recognised_by_its_parameter_in_actions_or_params() {
        let queue: RawQueue = serde_json::from_value(serde_json::json!({
            "items": [
                {"id": 3, "params": "\nJENKINS_OPERATOR_BUILD_ID=other", "actions": []},
                {"id": 4, "actions": [{}, {"parameters": [
                    {"name": "JENKINS_OPERATOR_BUILD_ID", "value": "uid-1"}]}]},
                {"id": 5, "params": "\nA=b\nJENKINS_OPERATOR_BUILD_ID=uid-2"},
            ]
        }))
        .expect("a queue listing");
        let find = |value: &str| {
            queue
                .items
                .iter()
                .find(|i| i.has_parameter("JENKINS_OPERATOR_BUILD_ID", value))
                .map(|i| i.id)
        };
        assert_eq!(find("uid-1"), Some(4));
        assert_eq!(find("uid-2"), Some(5));
        assert_eq!(find("uid"), None, "a prefix is not a match");
    }
}

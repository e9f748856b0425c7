//! Items: folders and jobs, their config.xml, and enabling or disabling them.

use reqwest::StatusCode;
use serde::Deserialize;

use super::builds::BuildRef;
use super::client::{Answer, Call, Retry};
use super::{JenkinsClient, JenkinsError, JobPath};

/// The config.xml of an empty folder.
pub const FOLDER_CONFIG: &str = "<?xml version='1.1' encoding='UTF-8'?>\n\
    <com.cloudbees.hudson.plugins.folder.Folder/>\n";

/// A job as `api/json` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    /// Full name, folders included (`team/app`).
    pub full_name: String,
    /// Jenkins' Java class of the item, e.g. `org.jenkinsci.plugins.workflow.job.WorkflowJob`.
    pub class: String,
    /// A build can be triggered now.
    pub buildable: bool,
    /// The job is disabled.
    pub disabled: bool,
    /// A build of this job is waiting in the queue.
    pub in_queue: bool,
    /// The number the next build will get.
    pub next_build_number: u64,
    /// The latest build, if any.
    pub last_build: Option<BuildRef>,
    /// Ball colour (`blue`, `red_anime`, `disabled`, `notbuilt`…).
    pub color: Option<String>,
    /// Declared build parameters.
    pub parameters: Vec<ParameterDefinition>,
}

/// A declared build parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterDefinition {
    /// Parameter name.
    pub name: String,
    /// Its type.
    pub kind: ParameterKind,
    /// Default value as text (`true`/`false` for booleans).
    pub default: Option<String>,
    /// Description, possibly empty.
    pub description: String,
}

/// The type of a build parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ParameterKind {
    /// Free text.
    String,
    /// One of the listed choices (the first is the default).
    Choice(Vec<String>),
    /// `true` or `false`.
    Boolean,
    /// Any other type, by its Jenkins type name.
    Other(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawJob {
    #[serde(rename = "_class", default)]
    class: String,
    full_name: String,
    #[serde(default)]
    buildable: bool,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    in_queue: bool,
    #[serde(default)]
    next_build_number: u64,
    last_build: Option<BuildRef>,
    color: Option<String>,
    #[serde(default)]
    property: Vec<RawProperty>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProperty {
    #[serde(default)]
    parameter_definitions: Vec<RawParameter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawParameter {
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    choices: Option<Vec<String>>,
    default_parameter_value: Option<RawValue>,
}

#[derive(Deserialize)]
struct RawValue {
    #[serde(default)]
    value: serde_json::Value,
}

/// JSON values as the text Jenkins would accept back as a parameter.
pub(crate) fn value_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl From<RawJob> for JobInfo {
    fn from(raw: RawJob) -> JobInfo {
        let parameters = raw
            .property
            .into_iter()
            .flat_map(|p| p.parameter_definitions)
            .map(|p| ParameterDefinition {
                kind: match p.kind.as_str() {
                    "StringParameterDefinition" | "TextParameterDefinition" => {
                        ParameterKind::String
                    }
                    "ChoiceParameterDefinition" => {
                        ParameterKind::Choice(p.choices.unwrap_or_default())
                    }
                    "BooleanParameterDefinition" => ParameterKind::Boolean,
                    other => ParameterKind::Other(other.to_string()),
                },
                default: p.default_parameter_value.and_then(|v| value_text(&v.value)),
                description: p.description.unwrap_or_default(),
                name: p.name,
            })
            .collect();
        JobInfo {
            full_name: raw.full_name,
            class: raw.class,
            buildable: raw.buildable,
            disabled: raw.disabled,
            in_queue: raw.in_queue,
            next_build_number: raw.next_build_number,
            last_build: raw.last_build,
            color: raw.color,
            parameters,
        }
    }
}

/// Refuses, before sending, what Jenkins could only answer with a 500: characters XML forbids.
/// Drops a byte-order mark, which Jenkins also refuses.
fn prepare_config(operation: &str, config_xml: &str) -> Result<String, JenkinsError> {
    let text = config_xml.trim_start_matches('\u{feff}');
    let forbidden = text.chars().find(|c| {
        matches!(*c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}'
            | '\u{ffff}')
    });
    if let Some(c) = forbidden {
        return Err(JenkinsError::InvalidRequest {
            operation: operation.to_string(),
            reason: format!(
                "config.xml holds U+{:04X}, which XML cannot carry",
                u32::from(c)
            ),
        });
    }
    Ok(text.to_string())
}

impl JenkinsClient {
    /// True when an item exists at `path` (any type).
    pub async fn job_exists(&self, path: &JobPath) -> Result<bool, JenkinsError> {
        Ok(self.item_class(path).await?.is_some())
    }

    /// The `_class` of the item at `path`, or `None` when there is none.
    async fn item_class(&self, path: &JobPath) -> Result<Option<String>, JenkinsError> {
        #[derive(Deserialize)]
        struct Class {
            #[serde(rename = "_class", default)]
            class: String,
        }
        let call = Call::get(
            format!("look up item ‘{path}’"),
            format!("{}api/json", path.url_path()),
        )
        .query("tree", "name");
        let answer = self.execute(&call).await?;
        match answer.status {
            StatusCode::OK => Ok(Some(answer.json::<Class>(&call.operation)?.class)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.error(&call.operation, &answer)),
        }
    }

    /// A job's state and parameter definitions.
    pub async fn get_job(&self, path: &JobPath) -> Result<JobInfo, JenkinsError> {
        let call = Call::get(
            format!("get job ‘{path}’"),
            format!("{}api/json", path.url_path()),
        )
        .query(
            "tree",
            "fullName,buildable,disabled,inQueue,nextBuildNumber,color,\
                 lastBuild[number,url],property[parameterDefinitions[name,type,description,\
                 choices,defaultParameterValue[value]]]",
        );
        let answer = self.execute(&call).await?;
        if answer.status != StatusCode::OK {
            return Err(self.error(&call.operation, &answer));
        }
        Ok(answer.json::<RawJob>(&call.operation)?.into())
    }

    /// An item's config.xml as Jenkins stores it (compare with [`super::configs_equivalent`]).
    pub async fn get_job_config(&self, path: &JobPath) -> Result<String, JenkinsError> {
        let call = Call::get(
            format!("read the config.xml of ‘{path}’"),
            format!("{}config.xml", path.url_path()),
        );
        let answer = self.execute(&call).await?;
        if answer.status != StatusCode::OK {
            return Err(self.error(&call.operation, &answer));
        }
        String::from_utf8(answer.body).map_err(|e| JenkinsError::InvalidResponse {
            operation: call.operation,
            detail: format!("config.xml is not UTF-8: {e}"),
        })
    }

    /// Creates an item from its config.xml; its folder must exist ([`Self::ensure_folder`]).
    ///
    /// Never retried: after a lost answer, check with [`Self::job_exists`].
    pub async fn create_job(&self, path: &JobPath, config_xml: &str) -> Result<(), JenkinsError> {
        let operation = format!("create job ‘{path}’");
        let body = prepare_config(&operation, config_xml)?;
        let call = Call::post(
            operation,
            format!("{}createItem", path.parent_url_path()),
            Retry::Never,
        )
        .query("name", path.name())
        .xml(body);
        let answer = self.execute(&call).await?;
        match answer.status {
            StatusCode::OK => Ok(()),
            StatusCode::BAD_REQUEST => Err(self.create_rejected(&call.operation, path, &answer)),
            StatusCode::INTERNAL_SERVER_ERROR => Err(JenkinsError::InvalidConfig {
                excerpt: self.excerpt(&answer),
                operation: call.operation,
            }),
            _ => Err(self.error(&call.operation, &answer)),
        }
    }

    fn create_rejected(&self, operation: &str, path: &JobPath, answer: &Answer) -> JenkinsError {
        let message = self.excerpt(answer);
        let operation = operation.to_string();
        let name = path.name().to_string();
        if message.contains("already exists") {
            JenkinsError::AlreadyExists { operation, name }
        } else if [
            "unsafe character",
            "not an allowed name",
            "cannot end with",
            "No name",
        ]
        .iter()
        .any(|m| message.contains(m))
        {
            JenkinsError::BadName {
                operation,
                name,
                reason: message,
            }
        } else {
            JenkinsError::Unexpected {
                operation,
                status: 400,
                excerpt: message,
            }
        }
    }

    /// Replaces an item's config.xml. A malformed document or another item type is
    /// [`JenkinsError::InvalidConfig`].
    pub async fn update_job(&self, path: &JobPath, config_xml: &str) -> Result<(), JenkinsError> {
        let operation = format!("update the config.xml of ‘{path}’");
        let body = prepare_config(&operation, config_xml)?;
        let call = Call::post(
            operation,
            format!("{}config.xml", path.url_path()),
            Retry::Idempotent,
        )
        .xml(body);
        let answer = self.execute(&call).await?;
        match answer.status {
            StatusCode::OK => Ok(()),
            StatusCode::INTERNAL_SERVER_ERROR => Err(JenkinsError::InvalidConfig {
                excerpt: self.excerpt(&answer),
                operation: call.operation,
            }),
            _ => Err(self.error(&call.operation, &answer)),
        }
    }

    /// Deletes an item (a folder with everything in it; running builds are aborted).
    pub async fn delete_job(&self, path: &JobPath) -> Result<(), JenkinsError> {
        self.item_action(path, "doDelete", format!("delete ‘{path}’"))
            .await
    }

    /// Enables a job.
    pub async fn enable_job(&self, path: &JobPath) -> Result<(), JenkinsError> {
        self.item_action(path, "enable", format!("enable job ‘{path}’"))
            .await
    }

    /// Disables a job: it keeps its builds but cannot be built.
    pub async fn disable_job(&self, path: &JobPath) -> Result<(), JenkinsError> {
        self.item_action(path, "disable", format!("disable job ‘{path}’"))
            .await
    }

    async fn item_action(
        &self,
        path: &JobPath,
        action: &str,
        operation: String,
    ) -> Result<(), JenkinsError> {
        let call = Call::post(
            operation,
            format!("{}{action}", path.url_path()),
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

    /// Makes sure every segment of `path` exists as a folder, creating the missing ones.
    pub async fn ensure_folder(&self, path: &JobPath) -> Result<(), JenkinsError> {
        for depth in 1..=path.segments().len() {
            let folder = JobPath::new(path.segments()[..depth].iter().cloned())?;
            match self.item_class(&folder).await? {
                Some(class) if is_folder_class(&class) => continue,
                Some(class) => {
                    return Err(JenkinsError::InvalidRequest {
                        operation: format!("ensure folder ‘{path}’"),
                        reason: format!("‘{folder}’ exists and is a {class}, not a folder"),
                    });
                }
                None => match self.create_job(&folder, FOLDER_CONFIG).await {
                    // Someone else created it meanwhile.
                    Ok(()) | Err(JenkinsError::AlreadyExists { .. }) => {}
                    Err(error) => return Err(error),
                },
            }
        }
        Ok(())
    }
}

fn is_folder_class(class: &str) -> bool {
    class.ends_with(".Folder")
        || class.ends_with("OrganizationFolder")
        || class.ends_with("WorkflowMultiBranchProject")
}

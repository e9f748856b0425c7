//! The `JenkinsBuild` custom resource: one run of a JenkinsJob, followed from the queue to its
//! result, like a Tekton PipelineRun.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation that, set to `"true"`, lets a running build continue in Jenkins when its
/// JenkinsBuild is deleted (by default deleting it aborts the build).
pub const KEEP_RUNNING_ANNOTATION: &str = "jenkins.ci/keep-running";

/// One build of a JenkinsJob. Creating it starts the build exactly once; its status follows
/// the build to its result. The spec cannot change after creation.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "jenkins.ci",
    version = "v1alpha1",
    kind = "JenkinsBuild",
    namespaced,
    shortname = "jb",
    category = "jenkins",
    doc = "One run of a JenkinsJob, triggered once and followed to its result.",
    status = "JenkinsBuildStatus",
    printcolumn = r#"{"name":"Job","type":"string","jsonPath":".spec.job"}"#,
    printcolumn = r#"{"name":"Number","type":"integer","jsonPath":".status.buildNumber"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Result","type":"string","jsonPath":".status.result"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf")
    .message("the spec of a JenkinsBuild cannot change: create a new JenkinsBuild instead"))]
pub struct JenkinsBuildSpec {
    /// Name of the JenkinsJob (in this namespace) to build.
    #[schemars(length(min = 1, max = 253))]
    pub job: String,

    /// Which environment's job to build, when the JenkinsJob has environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub environment: Option<String>,

    /// Which branch's job to build, when the JenkinsJob has branches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub branch: Option<String>,

    /// Parameter values; each must be declared by the JenkinsJob. Missing ones take their
    /// default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub parameters: Vec<BuildParameter>,

    /// Delete this JenkinsBuild this many seconds after the build finished. Unset: keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// A parameter value.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BuildParameter {
    /// Parameter name.
    #[schemars(length(min = 1, max = 100))]
    pub name: String,
    /// Value, as text (`true`/`false` for booleans).
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// Where a build is.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildPhase {
    /// Waiting for the operator or in the Jenkins queue.
    Queued,
    /// Running in Jenkins.
    Running,
    /// Finished with SUCCESS (or UNSTABLE).
    Succeeded,
    /// Finished with FAILURE or NOT_BUILT, or could not start.
    Failed,
    /// Stopped before it finished.
    Aborted,
}

/// What the operator observed of the build.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JenkinsBuildStatus {
    /// `Ready` (True once the build finished, whatever its result), `Succeeded` (True for
    /// SUCCESS and UNSTABLE), and the kstatus `Reconciling` (queued or running) and `Stalled`
    /// (the build cannot run: see `message`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Queued, Running, Succeeded, Failed or Aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BuildPhase>,

    /// Full name of the Jenkins job that runs the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jenkins_job: Option<String>,

    /// The JenkinsCluster whose Jenkins runs the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,

    /// The value the operator passes as the build parameter `JENKINS_OPERATOR_BUILD_ID` (this
    /// resource's uid). It is recorded just before the build is triggered: with it, a
    /// restarted operator finds the queue item or build in Jenkins instead of triggering again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,

    /// The number of the operator's latest attempt to queue this build in Jenkins. Each attempt
    /// is recorded here, with a compare-and-swap, before its request is sent: an operator
    /// replica that recovers a lost trigger answer tells an attempt it already waited for from
    /// a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_attempt: Option<i64>,

    /// Id of the Jenkins queue item, recorded before anything else so that a restarted
    /// operator never triggers the build twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<i64>,

    /// Build number in Jenkins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_number: Option<i64>,

    /// URL of the build page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Jenkins' result: SUCCESS, UNSTABLE, FAILURE, NOT_BUILT or ABORTED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,

    /// When the build started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the build finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Build duration in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,

    /// The last lines of the console log (at most 50 lines and 8 KiB), as Jenkins shows
    /// them: Jenkins masks the credentials a pipeline binds; anything else a pipeline prints
    /// appears here. Terminal escape sequences are removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,

    /// Where the next read of the console log starts (Jenkins' opaque progressive-log cursor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_offset: Option<i64>,

    /// Why the build cannot run, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

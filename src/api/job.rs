//! The `JenkinsJob` custom resource: a pipeline kept in sync with Jenkins through its REST API,
//! fanned out over environments and branches.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A pipeline job (or a set of them, one per environment and branch) in a JenkinsCluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "jenkins.ci",
    version = "v1alpha1",
    kind = "JenkinsJob",
    namespaced,
    shortname = "jj",
    category = "jenkins",
    doc = "A Jenkins pipeline declared as a Kubernetes resource and kept in sync by the operator.",
    status = "JenkinsJobStatus",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Jobs","type":"integer","jsonPath":".status.jobCount"}"#,
    printcolumn = r#"{"name":"Last result","type":"string","jsonPath":".status.lastResult"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(concat!(
        "!(has(self.branches) && size(self.branches) > 0 && ",
        "has(self.multibranch))",
    ))
        .message(concat!(
            "use either branches (one job per listed branch) or multibranch ",
            "(Jenkins discovers branches), not both",
        )),
    validation = Rule::new("!has(self.multibranch) || has(self.pipeline.scm)")
        .message("multibranch needs pipeline.scm: Jenkins discovers branches in a git repository"),
    validation = Rule::new(concat!(
        "!has(self.branches) || size(self.branches) == 0 || ",
        "has(self.pipeline.scm)",
    ))
        .message("branches needs pipeline.scm: an inline script has no branches"),
    validation = Rule::new(concat!(
        "!has(self.triggers) || !has(self.triggers.pollScm) || ",
        "has(self.pipeline.scm)",
    ))
        .message("triggers.pollScm needs pipeline.scm: there is no repository to poll"),
    validation = Rule::new(concat!(
        "!has(self.multibranch) || ((!has(self.parameters) || size(self.parameters) == 0)",
        " && !has(self.triggers) && !has(self.buildDiscarder)",
        " && (!has(self.concurrentBuilds) || self.concurrentBuilds))"
    ))
    .message(concat!(
        "with multibranch, each branch's Jenkinsfile declares its parameters, triggers,",
        " buildDiscarder and disableConcurrentBuilds"
    ))
)]
pub struct JenkinsJobSpec {
    /// Name of the JenkinsCluster the job lives in. The cluster must admit this namespace
    /// (its `jobNamespaces`; by default only the cluster's own namespace).
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub cluster: String,

    /// Jenkins folder the job goes into, nested with `/` (for example `team-web/apps`).
    /// Defaults to the resource's namespace. Folders are created when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[^/?*\\%!@#$^&|<>\[\]:;]+(/[^/?*\\%!@#$^&|<>\[\]:;]+)*$")
    )]
    pub folder: Option<String>,

    /// Description shown on the job page (plain text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub description: Option<String>,

    /// What the job runs: an inline Jenkinsfile or one read from git.
    pub pipeline: PipelineSpec,

    /// Git branches to build side by side, one job per branch (named `<name>-<branch>`), for
    /// several versions at once. Needs `pipeline.scm`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 20),
        inner(
            length(min = 1, max = 100),
            regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub branches: Vec<String>,

    /// Let Jenkins discover the branches of the repository (a multibranch pipeline) instead
    /// of listing them. Needs `pipeline.scm`. Each branch's Jenkinsfile then configures its
    /// job, so `parameters`, `triggers`, `buildDiscarder` and `concurrentBuilds: false` are
    /// not allowed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multibranch: Option<MultibranchSpec>,

    /// Environments of the cluster to deploy to: one job per environment (named
    /// `<name>-<environment>`). Each job has the parameters ENVIRONMENT, TARGET_NAMESPACE and
    /// AGENT_LABEL (`deploy-<environment>`, the agent that may deploy there); pipelines run
    /// their deploy steps with `agent { label params.AGENT_LABEL }`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 20),
        inner(
            length(min = 1, max = 40),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub environments: Vec<String>,

    /// Build parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub parameters: Vec<ParameterSpec>,

    /// When Jenkins starts builds by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<TriggersSpec>,

    /// Whether builds of one job may run at the same time. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_builds: Option<bool>,

    /// How many old builds Jenkins keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_discarder: Option<BuildDiscarderSpec>,

    /// A disabled job keeps its history but starts no builds.
    #[serde(default)]
    pub disabled: bool,

    /// What happens to the Jenkins jobs when this resource is deleted. `Delete` (default)
    /// removes the jobs the operator created, with their history, and leaves the ones it
    /// adopted (jobs that already existed in Jenkins; see `status.jobs[].origin`); `DeleteAll`
    /// removes adopted jobs too; `Orphan` leaves every job in Jenkins. A job the spec stops
    /// producing (a removed branch or environment) goes the same way, except under `Orphan`,
    /// where it is deleted if the operator created it.
    #[serde(default)]
    pub deletion_policy: JobDeletionPolicy,
}

/// The pipeline definition: exactly one of `script` and `scm`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.script) != has(self.scm)")
    .message("set exactly one of pipeline.script and pipeline.scm"))]
pub struct PipelineSpec {
    /// An inline Jenkinsfile (declarative or scripted). It runs in the Groovy sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 262144))]
    pub script: Option<String>,

    /// Read the Jenkinsfile from a git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scm: Option<ScmSpec>,
}

/// A Jenkinsfile in git.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScmSpec {
    /// The repository.
    pub git: GitSpec,

    /// Path of the Jenkinsfile in the repository. Defaults to `Jenkinsfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub script_path: Option<String>,

    /// Read only the Jenkinsfile instead of checking out the whole repository to find it.
    /// Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lightweight: Option<bool>,
}

/// A git repository.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitSpec {
    /// Clone URL (https, ssh or git).
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^(https?|ssh|git)://\S+$|^[^@\s]+@[^:\s]+:\S+$")
    )]
    pub url: String,

    /// Branch to build when `branches` is not set. Defaults to `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 100),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    )]
    pub branch: Option<String>,

    /// Name of a Secret in this namespace with the credentials to clone: `username` and
    /// `password` (or token) keys, or an `ssh-privatekey` key. The operator turns it into a
    /// Jenkins credential; its values never appear in job configurations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub credentials_secret: Option<String>,
}

/// Branch discovery of a multibranch pipeline.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MultibranchSpec {
    /// Branches to build, as space-separated wildcards. Defaults to `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub includes: Option<String>,

    /// Branches to skip, as space-separated wildcards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub excludes: Option<String>,
}

/// A build parameter.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(concat!(
        "self.type == 'choice' ? (has(self.choices) && size(self.choices) > 0) ",
        ": (!has(self.choices) || size(self.choices) == 0)",
    ))
        .message("choices are required for, and only allowed on, parameters of type choice"),
    validation = Rule::new(concat!(
        "!(self.type == 'boolean' && has(self.default) && self.default != ",
        "'true' && self.default != 'false')",
    ))
        .message("the default of a boolean parameter is true or false"),
    validation = Rule::new(concat!(
        "!(self.type == 'choice' && has(self.default) && has(self.choices) && ",
        "!(self.default in self.choices))",
    ))
        .message("the default of a choice parameter must be one of its choices")
)]
pub struct ParameterSpec {
    /// Parameter name, available to the pipeline as `params.<name>` and as an environment
    /// variable. `ENVIRONMENT`, `TARGET_NAMESPACE`, `AGENT_LABEL` and names starting with
    /// `JENKINS_OPERATOR_` are reserved: the operator declares them.
    #[schemars(
        length(min = 1, max = 100),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")
    )]
    #[x_kube(validation = Rule::new(concat!(
        "!(self in ['ENVIRONMENT', 'TARGET_NAMESPACE', 'AGENT_LABEL']) && ",
        "!self.startsWith('JENKINS_OPERATOR_')",
    ))
        .message(concat!(
            "ENVIRONMENT, TARGET_NAMESPACE, AGENT_LABEL and JENKINS_OPERATOR_* are ",
            "set by the operator",
        )))]
    pub name: String,

    /// `string`, `choice` or `boolean`.
    #[serde(rename = "type")]
    pub type_: ParameterType,

    /// Default value; for a choice, one of the choices (default: the first); for a boolean,
    /// `true` or `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub default: Option<String>,

    /// The values a choice parameter offers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 256)))]
    pub choices: Vec<String>,

    /// Help text shown in the build form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
}

/// The kind of a build parameter.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ParameterType {
    String,
    Choice,
    Boolean,
}

/// When Jenkins starts builds on its own.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TriggersSpec {
    /// Build periodically, in Jenkins cron syntax (for example `H/15 * * * *`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub cron: Option<String>,

    /// Poll the repository for changes, in Jenkins cron syntax. Needs `pipeline.scm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub poll_scm: Option<String>,
}

/// How many builds to keep.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BuildDiscarderSpec {
    /// Keep builds for this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub days_to_keep: Option<i32>,

    /// Keep at most this many builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub num_to_keep: Option<i32>,
}

/// What happens to the Jenkins jobs when their JenkinsJob is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobDeletionPolicy {
    /// Delete the jobs the operator created, with their build history; leave the ones it
    /// adopted.
    #[default]
    Delete,
    /// Leave the jobs in Jenkins.
    Orphan,
    /// Delete every job, adopted ones too, with their build history.
    DeleteAll,
}

/// How the Jenkins job came under this JenkinsJob: `Created` by the operator, or `Adopted`
/// (it already existed in Jenkins and was taken over). Adopted jobs stay in Jenkins when the
/// JenkinsJob is deleted unless `spec.deletionPolicy` is `DeleteAll`. Entries recorded before
/// the operator kept track of origins have none and count as created.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOrigin {
    /// The operator created it for this resource.
    Created,
    /// It already existed in Jenkins (made by hand, or left by another resource) and the
    /// operator took it over.
    Adopted,
}

/// What the operator observed of the jobs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JenkinsJobStatus {
    /// `Ready`, `Synced`, `Reconciling` and `Stalled` conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The Jenkins jobs generated from the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<GeneratedJobStatus>,

    /// How many Jenkins jobs the spec produces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_count: Option<i32>,

    /// Result of the most recent finished build among the jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,

    /// The Secret (`namespace/name`) the operator copied into the cluster's namespace as a
    /// Jenkins credential, deleted with this resource or when the team's Secret goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_secret: Option<String>,
}

/// One Jenkins job generated from a JenkinsJob.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GeneratedJobStatus {
    /// Full name in Jenkins, with folders (`team-web/web-dev`).
    pub full_name: String,

    /// URL of the job page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// The environment the job deploys to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,

    /// The branch the job builds, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,

    /// The latest build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_build: Option<BuildSummary>,

    /// Hash of the config.xml the operator last sent: an unchanged spec sends nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,

    /// Hash of the config.xml as Jenkins stored it after the operator's last write, so that
    /// Jenkins' own rewriting of a document is not mistaken for an edit in the UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_config_hash: Option<String>,

    /// Whether the operator created the job or adopted it (see [`JobOrigin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<JobOrigin>,
}

impl GeneratedJobStatus {
    /// Whether the job was adopted rather than created (entries without an origin were
    /// created: earlier versions recorded only jobs they synced as their own).
    pub fn adopted(&self) -> bool {
        self.origin == Some(JobOrigin::Adopted)
    }
}

/// A build, briefly.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BuildSummary {
    /// Build number.
    pub number: i64,

    /// SUCCESS, UNSTABLE, FAILURE, NOT_BUILT or ABORTED; absent while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn the_schema_reserves_operator_parameters_and_keeps_multibranch_to_its_jenkinsfile() {
        let crd = serde_json::to_string(&JenkinsJob::crd()).expect("the CRD serializes");
        assert!(crd.contains("'AGENT_LABEL'"), "reserved parameter rule");
        assert!(
            crd.contains(
                "!has(self.multibranch) || ((!has(self.parameters) || size(self.parameters) == 0) \
                 && !has(self.triggers) && !has(self.buildDiscarder) \
                 && (!has(self.concurrentBuilds) || self.concurrentBuilds))"
            ),
            "multibranch rule"
        );
    }
}

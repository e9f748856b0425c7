//! The fan-out of a JenkinsJob: which Jenkins items its spec produces, with their names and
//! config.xml, computed from the spec and its JenkinsCluster with no I/O.
//!
//! Naming, in the folder `spec.folder` (default: the resource's namespace):
//!
//! | spec | Jenkins jobs |
//! |---|---|
//! | neither environments nor branches | `<name>` |
//! | environments | `<name>-<env>` for each |
//! | branches | `<name>-<branch>` for each, `/` in the branch replaced by `-` |
//! | both | `<name>-<branch>-<env>` for each pair |
//! | multibranch | one multibranch project `<name>`, or `<name>-<env>` for each environment |
//!
//! Every generated name is checked against Jenkins' item name rules, and two names that differ
//! only in case (Jenkins looks items up case-insensitively) are reported as a collision.

use std::collections::BTreeMap;

use super::config_xml::{
    self, JobTarget, ListedBranch, Owner, RESERVED_PARAMETER_PREFIX, RESERVED_PARAMETERS,
};
use super::invalid::{InvalidJob, Problems};
use super::names::{MAX_CREDENTIALS_ID, check_item_name, credentials_id};
use crate::api::JenkinsCluster;
use crate::api::cluster::EnvironmentSpec;
#[cfg(test)]
use crate::api::job::{BuildDiscarderSpec, ParameterSpec, TriggersSpec};
use crate::api::job::{JenkinsJob, JenkinsJobSpec, JobOrigin, ParameterType};
use crate::jenkins::Declared;

/// What kind of Jenkins item a generated job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// A pipeline job (workflow-job's `WorkflowJob`).
    Pipeline,
    /// A multibranch pipeline project (a folder whose branch jobs Jenkins discovers).
    Multibranch,
}

/// One Jenkins item the spec produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedJob {
    /// The item's name inside its folder.
    pub name: String,
    /// Full name with folders, `/`-separated, as Jenkins reports it (`team-web/web-dev`).
    pub full_name: String,
    /// Pipeline job or multibranch project.
    pub kind: JobKind,
    /// The environment the job deploys to, if any.
    pub environment: Option<String>,
    /// The branch the job builds, if it is one of `spec.branches`.
    pub branch: Option<String>,
    /// The config.xml to create or update the item with.
    pub config_xml: String,
    /// The same document for an item the operator adopted: its description says so.
    pub adopted_config_xml: String,
    /// The line ending the description of an item this resource created
    /// ([`config_xml::marker`]).
    pub created_marker: String,
    /// What of the config.xml the spec declares: the drift check compares only that
    /// ([`config_xml::declared_parts`]).
    pub declared: Declared,
    /// [`config_xml::config_hash`] of `config_xml`.
    pub config_hash: String,
}

/// A Secret the generated jobs use as a Jenkins credential; the reconciler makes it exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRef {
    /// Namespace of the Secret (the JenkinsJob's).
    pub namespace: String,
    /// Name of the Secret.
    pub secret: String,
    /// The Jenkins credential id the config.xml refers to ([`credentials_id`]).
    pub id: String,
}

/// Everything a JenkinsJob produces in Jenkins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobPlan {
    /// The folder path, outermost first (`["team-web", "apps"]`); each folder is created with
    /// [`config_xml::folder`] when missing.
    pub folder: Vec<String>,
    /// The jobs, in spec order (branches, then environments within a branch).
    pub jobs: Vec<PlannedJob>,
    /// The credential the jobs use, if the spec names a Secret.
    pub credential: Option<CredentialRef>,
}

impl PlannedJob {
    /// The config.xml for an item of this origin.
    pub fn config_for(&self, origin: JobOrigin) -> &str {
        match origin {
            JobOrigin::Created => &self.config_xml,
            JobOrigin::Adopted => &self.adopted_config_xml,
        }
    }
}

impl JobPlan {
    /// The folder's full name (`team-web/apps`).
    pub fn folder_full_name(&self) -> String {
        self.folder.join("/")
    }
}

/// Computes the Jenkins items of `job`, which targets `cluster`; `Err` lists every problem.
pub fn plan(job: &JenkinsJob, cluster: &JenkinsCluster) -> Result<JobPlan, InvalidJob> {
    let mut problems = Problems::default();
    let spec = &job.spec;

    // Identity: the resource's name and namespace name the jobs and the default folder.
    let name = job.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        problems.add("metadata.name", "the JenkinsJob has no name");
    }
    let namespace = job.metadata.namespace.clone().unwrap_or_default();
    if namespace.is_empty() {
        problems.add("metadata.namespace", "the JenkinsJob has no namespace");
    }

    // Shape of the spec: what the CRD's rules say, checked again for resources stored before
    // them.
    check_shape(&mut problems, spec);
    check_parameters(&mut problems, spec);
    let environments = resolve_environments(&mut problems, spec, cluster);
    let folder = folder_segments(&mut problems, spec, &namespace);
    let credential = credential(&mut problems, spec, &namespace);

    // Fan-out: one job per (branch, environment) pair, or multibranch projects.
    let mut jobs = Vec::new();
    let mut fields = Vec::new();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let owner = Owner {
        namespace: &namespace,
        name: &name,
        uid: &uid,
        origin: JobOrigin::Created,
    };
    for (target, job_name) in targets(spec, owner, &name, &environments) {
        fields.push(source_field(spec, &target));
        let kind = if spec.multibranch.is_some() {
            JobKind::Multibranch
        } else {
            JobKind::Pipeline
        };
        let document = |target: &JobTarget<'_>| match kind {
            JobKind::Pipeline => config_xml::pipeline_job(spec, target),
            JobKind::Multibranch => config_xml::multibranch_project(spec, target),
        };
        // The adopted variant differs only in the marker, so it has the same problems (if
        // any), which are reported once.
        let adopted = JobTarget {
            owner: Owner {
                origin: JobOrigin::Adopted,
                ..target.owner
            },
            ..target
        };
        let adopted_config_xml = document(&adopted).unwrap_or_default();
        let config_xml = match document(&target) {
            Ok(xml) => xml,
            Err(invalid) => {
                for p in invalid.problems {
                    problems.add(p.path, p.message);
                }
                String::new()
            }
        };
        let mut full_name = folder.clone();
        full_name.push(job_name.clone());
        jobs.push(PlannedJob {
            full_name: full_name.join("/"),
            name: job_name,
            kind,
            environment: target.environment.map(|e| e.name.clone()),
            branch: target.branch.map(|b| b.name.to_string()),
            config_hash: config_xml::config_hash(&config_xml),
            created_marker: config_xml::marker(&target.owner),
            declared: config_xml::declared_parts(spec),
            config_xml,
            adopted_config_xml,
        });
    }
    check_job_names(&mut problems, &jobs, &fields);

    problems.into_result(JobPlan {
        folder,
        jobs,
        credential,
    })
}

fn check_shape(problems: &mut Problems, spec: &JenkinsJobSpec) {
    let pipeline = &spec.pipeline;
    if pipeline.script.is_some() == pipeline.scm.is_some() {
        problems.add(
            "spec.pipeline",
            "set exactly one of pipeline.script (an inline Jenkinsfile) and pipeline.scm (a \
             Jenkinsfile in git)",
        );
    }
    let has_scm = pipeline.scm.is_some();
    if !spec.branches.is_empty() && spec.multibranch.is_some() {
        problems.add(
            "spec.branches",
            "use either branches (one job per listed branch) or multibranch (Jenkins discovers \
             branches), not both",
        );
    }
    if !spec.branches.is_empty() && !has_scm {
        problems.add(
            "spec.branches",
            "branches need pipeline.scm: an inline script has no branches",
        );
    }
    if spec.multibranch.is_some() && !has_scm {
        problems.add(
            "spec.multibranch",
            "multibranch needs pipeline.scm: Jenkins discovers the branches of a git repository",
        );
    }
    let triggers = spec.triggers.as_ref();
    if triggers.is_some_and(|t| t.poll_scm.is_some()) && !has_scm {
        problems.add(
            "spec.triggers.pollScm",
            "polling needs pipeline.scm: there is no repository to poll",
        );
    }
    if let Some(discarder) = &spec.build_discarder {
        for (field, value) in [
            ("daysToKeep", discarder.days_to_keep),
            ("numToKeep", discarder.num_to_keep),
        ] {
            if let Some(v) = value.filter(|v| *v < 1) {
                problems.add(
                    format!("spec.buildDiscarder.{field}"),
                    format!("{v} is out of range: use 1 or more, or leave it unset for no limit"),
                );
            }
        }
    }

    // A multibranch project's branch jobs are configured by their Jenkinsfile; fields that
    // would be silently ignored are refused instead.
    if spec.multibranch.is_some() {
        let in_jenkinsfile = [
            (
                !spec.parameters.is_empty(),
                "spec.parameters",
                "parameters { ... }",
            ),
            (
                triggers.is_some_and(|t| t.cron.is_some()),
                "spec.triggers.cron",
                "triggers { cron(...) }",
            ),
            (
                triggers.is_some_and(|t| t.poll_scm.is_some()),
                "spec.triggers.pollScm",
                "triggers { pollSCM(...) }",
            ),
            (
                spec.concurrent_builds == Some(false),
                "spec.concurrentBuilds",
                "options { disableConcurrentBuilds() }",
            ),
            (
                spec.build_discarder.is_some(),
                "spec.buildDiscarder",
                "options { buildDiscarder(logRotator(...)) }",
            ),
        ];
        for (_, field, directive) in in_jenkinsfile.iter().filter(|(set, ..)| *set) {
            problems.add(
                *field,
                format!(
                    "not supported with multibranch, where each branch's Jenkinsfile configures \
                     its job: remove it and use {directive} in the Jenkinsfile"
                ),
            );
        }
    }
}

fn check_parameters(problems: &mut Problems, spec: &JenkinsJobSpec) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, parameter) in spec.parameters.iter().enumerate() {
        let path = format!("spec.parameters[{i}]");
        let name = parameter.name.as_str();
        if !is_parameter_name(name) {
            problems.add(
                format!("{path}.name"),
                format!(
                    "{name:?} is not a valid parameter name: use letters, digits and '_', not \
                     starting with a digit"
                ),
            );
        }
        if RESERVED_PARAMETERS.contains(&name) || name.starts_with(RESERVED_PARAMETER_PREFIX) {
            problems.add(
                format!("{path}.name"),
                format!(
                    "{name:?} is set by the operator ({} and {RESERVED_PARAMETER_PREFIX}*): \
                     choose another name",
                    RESERVED_PARAMETERS.join(", ")
                ),
            );
        }
        if let Some(first) = seen.insert(name, i) {
            problems.add(
                format!("{path}.name"),
                format!("{name:?} is already declared by spec.parameters[{first}]: rename one"),
            );
        }

        match parameter.type_ {
            ParameterType::String => {}
            ParameterType::Boolean => {
                if let Some(d) = parameter
                    .default
                    .as_deref()
                    .filter(|d| !matches!(*d, "true" | "false"))
                {
                    problems.add(
                        format!("{path}.default"),
                        format!("{d:?} is not a boolean: use true or false"),
                    );
                }
            }
            ParameterType::Choice => {
                if parameter.choices.is_empty() {
                    problems.add(
                        format!("{path}.choices"),
                        "a choice parameter needs at least one choice",
                    );
                }
                for (j, choice) in parameter.choices.iter().enumerate() {
                    if choice.contains(['\n', '\r']) {
                        problems.add(
                            format!("{path}.choices[{j}]"),
                            "a choice is one line: Jenkins splits choices at line breaks",
                        );
                    }
                }
                if let Some(d) = &parameter.default
                    && !parameter.choices.contains(d)
                {
                    problems.add(
                        format!("{path}.default"),
                        format!("{d:?} is not one of the choices: use one of them or unset it"),
                    );
                }
            }
        }
        if parameter.type_ != ParameterType::Choice && !parameter.choices.is_empty() {
            problems.add(
                format!("{path}.choices"),
                "choices are only allowed on parameters of type choice",
            );
        }
    }
}

fn is_parameter_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The cluster's definition of each environment the spec names.
fn resolve_environments<'c>(
    problems: &mut Problems,
    spec: &JenkinsJobSpec,
    cluster: &'c JenkinsCluster,
) -> Vec<&'c EnvironmentSpec> {
    let defined = &cluster.spec.environments;
    let cluster_name = cluster.metadata.name.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for (i, env) in spec.environments.iter().enumerate() {
        let path = format!("spec.environments[{i}]");
        if spec.environments[..i].contains(env) {
            problems.add(
                path,
                format!("environment {env:?} is listed twice: remove one"),
            );
            continue;
        }
        match defined.iter().find(|d| &d.name == env) {
            Some(found) => out.push(found),
            None if defined.is_empty() => problems.add(
                path,
                format!(
                    "environment {env:?} is not defined: JenkinsCluster {cluster_name:?} defines \
                     no environments (its spec.environments); add it there or remove it here"
                ),
            ),
            None => {
                let names: Vec<&str> = defined.iter().map(|d| d.name.as_str()).collect();
                problems.add(
                    path,
                    format!(
                        "environment {env:?} is not defined by JenkinsCluster {cluster_name:?}: \
                         use one of {}, or add it to the cluster's spec.environments",
                        names.join(", ")
                    ),
                );
            }
        }
    }
    out
}

/// `spec.folder` split at `/`, or the namespace; each segment must be a valid item name.
fn folder_segments(problems: &mut Problems, spec: &JenkinsJobSpec, namespace: &str) -> Vec<String> {
    let Some(folder) = &spec.folder else {
        return vec![namespace.to_string()];
    };
    let segments: Vec<String> = folder.split('/').map(str::to_string).collect();
    for segment in &segments {
        if let Err(why) = check_item_name(segment) {
            problems.add(
                "spec.folder",
                format!("folder {folder:?}: {why}; separate nested folders with single '/'"),
            );
        }
    }
    segments
}

fn credential(
    problems: &mut Problems,
    spec: &JenkinsJobSpec,
    namespace: &str,
) -> Option<CredentialRef> {
    let scm = spec.pipeline.scm.as_ref()?;
    let secret = scm.git.credentials_secret.as_ref()?;
    let id = credentials_id(namespace, secret);
    if id.len() > MAX_CREDENTIALS_ID {
        problems.add(
            "spec.pipeline.scm.git.credentialsSecret",
            format!(
                "the credential id {id:?} would be {} characters long, more than \
                 {MAX_CREDENTIALS_ID}: use a shorter Secret name",
                id.len()
            ),
        );
    }
    Some(CredentialRef {
        namespace: namespace.to_string(),
        secret: secret.clone(),
        id,
    })
}

/// Every (target, job name) pair the spec fans out to.
fn targets<'a>(
    spec: &'a JenkinsJobSpec,
    owner: Owner<'a>,
    name: &str,
    environments: &[&'a EnvironmentSpec],
) -> Vec<(JobTarget<'a>, String)> {
    let branches: Vec<Option<ListedBranch<'a>>> = if spec.branches.is_empty() {
        vec![None]
    } else {
        spec.branches
            .iter()
            .enumerate()
            .map(|(index, name)| Some(ListedBranch { name, index }))
            .collect()
    };
    let envs: Vec<Option<&'a EnvironmentSpec>> = if environments.is_empty() {
        vec![None]
    } else {
        environments.iter().copied().map(Some).collect()
    };
    let mut out = Vec::new();
    for branch in &branches {
        for env in &envs {
            let mut job_name = name.to_string();
            if let Some(b) = branch {
                job_name.push('-');
                job_name.push_str(&b.name.replace('/', "-"));
            }
            if let Some(e) = env {
                job_name.push('-');
                job_name.push_str(&e.name);
            }
            let target = JobTarget {
                namespace: owner.namespace,
                owner,
                environment: *env,
                branch: *branch,
            };
            out.push((target, job_name));
        }
    }
    out
}

/// Generated names must be valid item names and distinct, ignoring case as Jenkins does.
/// `fields[i]` is the spec field `jobs[i]`'s name comes from.
fn check_job_names(problems: &mut Problems, jobs: &[PlannedJob], fields: &[String]) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (job, field)) in jobs.iter().zip(fields).enumerate() {
        if let Err(why) = check_item_name(&job.name) {
            problems.add(
                field.clone(),
                format!("generated job name {:?}: {why}", job.name),
            );
        }
        if let Some(first) = seen.insert(job.name.to_lowercase(), i) {
            problems.add(
                field.clone(),
                format!(
                    "generated job name {:?} collides with {:?} (from {}): Jenkins compares \
                     names ignoring case; rename one",
                    job.name, jobs[first].name, fields[first]
                ),
            );
        }
    }
}

/// The spec field a generated name comes from, for error messages: the branch, else the
/// environment, else the resource's name.
fn source_field(spec: &JenkinsJobSpec, target: &JobTarget<'_>) -> String {
    if let Some(branch) = target.branch {
        return format!("spec.branches[{}]", branch.index);
    }
    let env = target
        .environment
        .and_then(|e| spec.environments.iter().position(|x| *x == e.name));
    match env {
        Some(i) => format!("spec.environments[{i}]"),
        None => "metadata.name".to_string(),
    }
}

#[cfg(test)]
mod tests;

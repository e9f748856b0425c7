//! Which Jenkins job a JenkinsBuild runs, and whether it may run at all: its JenkinsJob and
//! JenkinsCluster, the job the JenkinsJob generates for the requested environment and branch
//! ([`crate::job::plan`]), and its parameters checked against the declared ones. Everything
//! here reads Kubernetes only: a build that cannot run never reaches Jenkins.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::Error;
use crate::api::JenkinsCluster;
use crate::api::build::{BuildParameter, JenkinsBuild};
use crate::api::job::{JenkinsJob, JenkinsJobSpec, ParameterType};
use crate::cluster::cluster_namespace;
use crate::job::config_xml::{RESERVED_PARAMETER_PREFIX, RESERVED_PARAMETERS};
use crate::job::tenancy::{first_conflict, same_item};
use crate::job::{JobKind, JobPlan, PlannedJob, plan};
use crate::operator::context::Context;

/// What a build runs.
#[derive(Clone, Debug)]
pub struct Target {
    /// The JenkinsCluster whose Jenkins runs the job.
    pub cluster: JenkinsCluster,
    /// Full name of the Jenkins job.
    pub job: String,
    /// The parameters to send, as the spec lists them.
    pub parameters: Vec<(String, String)>,
}

/// Why a build cannot run; becomes a Stalled condition and the status message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CannotRun {
    /// PascalCase reason.
    pub reason: &'static str,
    /// What is wrong and what to do, for the user.
    pub message: String,
}

impl CannotRun {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Finds what `build` runs, or why it cannot run.
pub async fn resolve(
    build: &JenkinsBuild,
    ctx: &Context,
) -> Result<Result<Target, CannotRun>, Error> {
    let namespace = build.namespace().unwrap_or_default();
    let spec = &build.spec;

    // The JenkinsJob, in the build's namespace.
    let jobs: Api<JenkinsJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let object = format!("JenkinsJob {namespace}/{}", spec.job);
    let Some(job) = jobs
        .get_opt(&spec.job)
        .await
        .map_err(Error::kube("read", &object))?
    else {
        return Ok(Err(CannotRun::new(
            "JobMissing",
            format!("job missing: {object} does not exist; create it or fix spec.job"),
        )));
    };

    // Its JenkinsCluster, which must admit the namespace.
    let clusters: Api<JenkinsCluster> = Api::all(ctx.client.clone());
    let cluster_name = &job.spec.cluster;
    let Some(cluster) = clusters.get_opt(cluster_name).await.map_err(Error::kube(
        "read",
        format!("JenkinsCluster {cluster_name}"),
    ))?
    else {
        return Ok(Err(CannotRun::new(
            "ClusterMissing",
            format!("{object} targets JenkinsCluster {cluster_name}, which does not exist"),
        )));
    };
    if !admitted(&cluster, &namespace, ctx).await? {
        return Ok(Err(CannotRun::new(
            "NamespaceNotAdmitted",
            format!(
                "JenkinsCluster {cluster_name} does not admit jobs from namespace {namespace} \
                 (its spec.jobNamespaces)"
            ),
        )));
    }

    // The generated job for the requested environment and branch.
    let planned = match plan(&job, &cluster) {
        Ok(planned) => planned,
        Err(invalid) => {
            return Ok(Err(CannotRun::new(
                "JobInvalid",
                format!("{object} is invalid: {invalid}"),
            )));
        }
    };
    let chosen = match pick_job(
        &planned,
        spec.environment.as_deref(),
        spec.branch.as_deref(),
    ) {
        Ok(chosen) => chosen,
        Err(cannot) => return Ok(Err(cannot)),
    };
    if let Some(owner) = older_owner(&job, chosen, &cluster, ctx).await? {
        return Ok(Err(CannotRun::new(
            "JobNameTaken",
            format!(
                "the Jenkins job {} belongs to JenkinsJob {owner}, which holds it (or declared \
                 it first)",
                chosen.full_name
            ),
        )));
    }

    // Parameters, then whether the job may build at all.
    if let Err(cannot) = check_parameters(&job.spec, &spec.parameters) {
        return Ok(Err(cannot));
    }
    if job.spec.disabled {
        return Ok(Err(CannotRun::new(
            "JobDisabled",
            format!("{object} is disabled (spec.disabled): enable it, then create a new build"),
        )));
    }
    Ok(Ok(Target {
        job: chosen.full_name.clone(),
        cluster,
        parameters: spec
            .parameters
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect(),
    }))
}

/// Whether JenkinsJobs (and so their builds) in `namespace` may use `cluster`: by default
/// only from the cluster's own namespace, otherwise from namespaces its `jobNamespaces`
/// selector matches. The same rule as the JenkinsJob controller's.
async fn admitted(cluster: &JenkinsCluster, namespace: &str, ctx: &Context) -> Result<bool, Error> {
    let Some(selector) = &cluster.spec.job_namespaces else {
        return Ok(namespace == cluster_namespace(cluster));
    };
    if namespace == cluster_namespace(cluster) {
        return Ok(true);
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let live = api
        .get_metadata_opt(namespace)
        .await
        .map_err(Error::kube("read", format!("Namespace {namespace}")))?;
    let labels = live.map(|n| n.labels().clone()).unwrap_or_default();
    Ok(selector_matches(selector, &labels))
}

/// Whether a label selector matches `labels` (an empty selector matches everything).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // An operator the API server would have refused: match nothing, safely.
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// Another JenkinsJob of the same cluster that keeps the Jenkins job `chosen`, by the
/// JenkinsJob controller's own rule ([`first_conflict`]: the one holding it, else the older,
/// among the JenkinsJobs the cluster admits). This one's builds may not run it: they would run
/// another team's job.
async fn older_owner(
    job: &JenkinsJob,
    chosen: &PlannedJob,
    cluster: &JenkinsCluster,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let api: Api<JenkinsJob> = Api::all(ctx.client.clone());
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("list", "jenkinsjobs"))?;
    let ours = [chosen.full_name.clone()];
    let mut candidates = Vec::new();
    for other in &all.items {
        let relevant = other.uid() != job.uid()
            && other.spec.cluster == job.spec.cluster
            && other.metadata.deletion_timestamp.is_none();
        if !relevant {
            continue;
        }
        let Ok(planned) = plan(other, cluster) else {
            continue;
        };
        let names: Vec<String> = planned.jobs.into_iter().map(|j| j.full_name).collect();
        if !names.iter().any(|n| same_item(n, &chosen.full_name)) {
            continue;
        }
        if admitted(cluster, &other.namespace().unwrap_or_default(), ctx).await? {
            candidates.push((other, names));
        }
    }
    Ok(first_conflict(job, &ours, candidates).map(|conflict| conflict.owner))
}

/// The generated job for `environment` and `branch`: the only one matching both.
pub fn pick_job<'p>(
    plan: &'p JobPlan,
    environment: Option<&str>,
    branch: Option<&str>,
) -> Result<&'p PlannedJob, CannotRun> {
    let describe = |j: &PlannedJob| {
        let mut parts = Vec::new();
        if let Some(e) = &j.environment {
            parts.push(format!("environment={e}"));
        }
        if let Some(b) = &j.branch {
            parts.push(format!("branch={b}"));
        }
        if parts.is_empty() {
            j.full_name.clone()
        } else {
            format!("{} ({})", j.full_name, parts.join(", "))
        }
    };
    let choices = || {
        plan.jobs
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let matching: Vec<&PlannedJob> = plan
        .jobs
        .iter()
        .filter(|j| environment.is_none_or(|e| j.environment.as_deref() == Some(e)))
        .filter(|j| branch.is_none_or(|b| j.branch.as_deref() == Some(b)))
        .collect();
    match matching.as_slice() {
        [only] if only.kind == JobKind::Multibranch => Err(CannotRun::new(
            "MultibranchNotSupported",
            format!(
                "{} is a multibranch project: its branch jobs come from their Jenkinsfiles, \
                 so a JenkinsBuild cannot build them",
                only.full_name
            ),
        )),
        [only] => Ok(only),
        [] => Err(CannotRun::new(
            "UnknownTarget",
            format!(
                "the JenkinsJob has no job for {}: choose one of {}",
                requested(environment, branch),
                choices()
            ),
        )),
        _ => Err(CannotRun::new(
            "AmbiguousTarget",
            format!(
                "the JenkinsJob has several jobs for {}: set spec.environment and/or \
                 spec.branch to one of {}",
                requested(environment, branch),
                choices()
            ),
        )),
    }
}

fn requested(environment: Option<&str>, branch: Option<&str>) -> String {
    match (environment, branch) {
        (None, None) => "no environment and no branch".into(),
        (Some(e), None) => format!("environment {e}"),
        (None, Some(b)) => format!("branch {b}"),
        (Some(e), Some(b)) => format!("environment {e} and branch {b}"),
    }
}

/// Every value must be for a parameter the JenkinsJob declares and fit its type. The
/// operator's own parameters (the environment's, the build id) cannot be set.
pub fn check_parameters(job: &JenkinsJobSpec, values: &[BuildParameter]) -> Result<(), CannotRun> {
    let mut problems = Vec::new();
    for value in values {
        let name = &value.name;
        if RESERVED_PARAMETERS.contains(&name.as_str())
            || name.starts_with(RESERVED_PARAMETER_PREFIX)
        {
            problems.push(format!("{name} is set by the operator"));
            continue;
        }
        let Some(declared) = job.parameters.iter().find(|p| &p.name == name) else {
            let names: Vec<&str> = job.parameters.iter().map(|p| p.name.as_str()).collect();
            problems.push(if names.is_empty() {
                format!("{name} is not declared: the JenkinsJob declares no parameters")
            } else {
                format!("{name} is not declared: use one of {}", names.join(", "))
            });
            continue;
        };
        match declared.type_ {
            ParameterType::String => {}
            ParameterType::Boolean if matches!(value.value.as_str(), "true" | "false") => {}
            ParameterType::Boolean => problems.push(format!(
                "{name} is a boolean: use true or false, not {:?}",
                value.value
            )),
            ParameterType::Choice if declared.choices.contains(&value.value) => {}
            ParameterType::Choice => problems.push(format!(
                "{name} must be one of {}, not {:?}",
                declared.choices.join(", "),
                value.value
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CannotRun::new(
            "BadParameter",
            format!("bad parameter: {}", problems.join("; ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::job::ParameterSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn planned(name: &str, environment: Option<&str>, branch: Option<&str>) -> PlannedJob {
        PlannedJob {
            name: name.into(),
            full_name: format!("team/{name}"),
            kind: JobKind::Pipeline,
            environment: environment.map(String::from),
            branch: branch.map(String::from),
            config_xml: String::new(),
            adopted_config_xml: String::new(),
            created_marker: String::new(),
            declared: Default::default(),
            config_hash: String::new(),
        }
    }

    fn fan_out() -> JobPlan {
        JobPlan {
            folder: vec!["team".into()],
            jobs: vec![
                planned("web-main-dev", Some("dev"), Some("main")),
                planned("web-main-prod", Some("prod"), Some("main")),
                planned("web-v1-dev", Some("dev"), Some("v1")),
            ],
            credential: None,
        }
    }

    #[test]
    fn the_job_is_picked_by_environment_and_branch() {
        let plan = fan_out();
        let chosen = pick_job(&plan, Some("prod"), None).expect("one prod job");
        assert_eq!(chosen.full_name, "team/web-main-prod");
        let chosen = pick_job(&plan, Some("dev"), Some("v1")).expect("one job");
        assert_eq!(chosen.full_name, "team/web-v1-dev");
    }

    #[test]
    fn an_ambiguous_or_unknown_target_lists_the_choices() {
        let plan = fan_out();
        let ambiguous = pick_job(&plan, Some("dev"), None).expect_err("two dev jobs");
        assert_eq!(ambiguous.reason, "AmbiguousTarget");
        assert!(
            ambiguous
                .message
                .contains("team/web-v1-dev (environment=dev, branch=v1)"),
            "{}",
            ambiguous.message
        );
        let unknown = pick_job(&plan, Some("qa"), None).expect_err("no qa job");
        assert_eq!(unknown.reason, "UnknownTarget");
        assert!(
            unknown.message.contains("environment qa"),
            "{}",
            unknown.message
        );
        assert!(unknown.message.contains("team/web-main-prod"));
    }

    fn parameter(name: &str, type_: ParameterType, choices: &[&str]) -> ParameterSpec {
        ParameterSpec {
            name: name.into(),
            type_,
            default: None,
            choices: choices.iter().map(|c| c.to_string()).collect(),
            description: None,
        }
    }

    fn value(name: &str, value: &str) -> BuildParameter {
        BuildParameter {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn parameters_must_be_declared_and_fit_their_type() {
        let job = JenkinsJobSpec {
            parameters: vec![
                parameter("VERSION", ParameterType::String, &[]),
                parameter("DRY_RUN", ParameterType::Boolean, &[]),
                parameter("REGION", ParameterType::Choice, &["eu", "us"]),
            ],
            ..JenkinsJobSpec::default()
        };
        let good = [
            value("VERSION", "1.2"),
            value("DRY_RUN", "false"),
            value("REGION", "us"),
        ];
        assert_eq!(check_parameters(&job, &good), Ok(()));

        let bad = [
            value("VERSOIN", "1.2"),
            value("DRY_RUN", "yes"),
            value("REGION", "asia"),
            value("TARGET_NAMESPACE", "kube-system"),
            value("JENKINS_OPERATOR_BUILD_ID", "x"),
        ];
        let cannot = check_parameters(&job, &bad).expect_err("all bad");
        assert_eq!(cannot.reason, "BadParameter");
        for part in [
            "bad parameter: VERSOIN is not declared: use one of VERSION, DRY_RUN, REGION",
            "DRY_RUN is a boolean: use true or false, not \"yes\"",
            "REGION must be one of eu, us, not \"asia\"",
            "TARGET_NAMESPACE is set by the operator",
            "JENKINS_OPERATOR_BUILD_ID is set by the operator",
        ] {
            assert!(
                cannot.message.contains(part),
                "{part} in {}",
                cannot.message
            );
        }
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let labels: BTreeMap<String, String> = [("team".to_string(), "web".to_string())].into();
        let by_label = LabelSelector {
            match_labels: Some([("team".to_string(), "web".to_string())].into()),
            ..LabelSelector::default()
        };
        assert!(selector_matches(&by_label, &labels));
        assert!(!selector_matches(&by_label, &BTreeMap::new()));
        let expression = |operator: &str, values: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "team".into(),
                operator: operator.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            ..LabelSelector::default()
        };
        assert!(selector_matches(
            &expression("In", &["web", "api"]),
            &labels
        ));
        assert!(!selector_matches(&expression("NotIn", &["web"]), &labels));
        assert!(selector_matches(&expression("Exists", &[]), &labels));
        assert!(!selector_matches(&expression("DoesNotExist", &[]), &labels));
        assert!(selector_matches(&LabelSelector::default(), &labels));
    }
}

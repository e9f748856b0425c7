//! Who may put jobs into a JenkinsCluster, and which of two JenkinsJobs owns a Jenkins job name
//! they both produce. Pure functions: the reconciler reads the Namespace and the cached
//! JenkinsJobs and asks here.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use crate::api::{JenkinsCluster, JenkinsJob};
use crate::cluster::cluster_namespace;

/// Whether the cluster needs the labels of the job's Namespace to decide: only when the job
/// lives outside the cluster's namespace and the cluster has a `jobNamespaces` selector.
pub fn needs_namespace_labels(cluster: &JenkinsCluster, job_namespace: &str) -> bool {
    job_namespace != cluster_namespace(cluster) && cluster.spec.job_namespaces.is_some()
}

/// Whether `cluster` admits JenkinsJobs from the namespace `job_namespace` with `labels`.
///
/// The cluster's own namespace is always admitted; any other only when the cluster's
/// `jobNamespaces` selector matches its labels. Without a selector, no other namespace is.
pub fn admits(
    cluster: &JenkinsCluster,
    job_namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    if job_namespace == cluster_namespace(cluster) {
        return true;
    }
    match &cluster.spec.job_namespaces {
        Some(selector) => selector_matches(selector, labels),
        None => false,
    }
}

/// Kubernetes label selector semantics: every `matchLabels` pair and every expression must
/// hold; an empty selector matches everything. An unknown operator matches nothing, so a typo
/// never admits a namespace.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let pairs = selector.match_labels.iter().flatten();
    let labels_ok = pairs
        .into_iter()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions_ok = selector
        .match_expressions
        .iter()
        .flatten()
        .all(|expression| {
            let value = labels.get(&expression.key);
            let values = expression.values.as_deref().unwrap_or_default();
            match expression.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        });
    labels_ok && expressions_ok
}

/// Which of two JenkinsJobs came first: the older creation time, then the smaller uid (a
/// stable tie-break for resources created in the same second).
pub fn older_first(a: &JenkinsJob, b: &JenkinsJob) -> Ordering {
    let created = |j: &JenkinsJob| j.metadata.creation_timestamp.clone().map(|t| t.0);
    match (created(a), created(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        _ => a.uid().cmp(&b.uid()),
    }
}

/// Whether two full names are the same Jenkins item (Jenkins looks names up ignoring case).
pub fn same_item(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// Whether `job` holds `full_name`: its status records it as one of its jobs in Jenkins.
fn holds(job: &JenkinsJob, full_name: &str) -> bool {
    job.status
        .as_ref()
        .is_some_and(|s| s.jobs.iter().any(|j| same_item(&j.full_name, full_name)))
}

/// Whether `other` keeps `full_name` when `job` produces it too. The resource that already
/// holds the job in Jenkins keeps it: age alone would let an older resource take over (and
/// later delete) another team's job by pointing `spec.folder` at it. When both or neither
/// hold it, the older keeps it.
fn keeps(other: &JenkinsJob, job: &JenkinsJob, full_name: &str) -> bool {
    match (holds(other, full_name), holds(job, full_name)) {
        (true, false) => true,
        (false, true) => false,
        _ => older_first(other, job) == Ordering::Less,
    }
}

/// A Jenkins job name that another JenkinsJob keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The full name both produce (as this resource would write it).
    pub full_name: String,
    /// `namespace/name` of the JenkinsJob that keeps it.
    pub owner: String,
}

/// The first of `ours` (full names) that another JenkinsJob among `others` also produces and
/// keeps (see [`keeps`]), compared ignoring case as Jenkins does. `others` pairs each other
/// JenkinsJob of the same cluster with the full names it produces.
pub fn first_conflict<'a>(
    job: &JenkinsJob,
    ours: &[String],
    others: impl IntoIterator<Item = (&'a JenkinsJob, Vec<String>)>,
) -> Option<Conflict> {
    let mut found: Option<(&JenkinsJob, Conflict)> = None;
    for (other, names) in others {
        let same = other.uid() == job.uid()
            && other.namespace() == job.namespace()
            && other.name_any() == job.name_any();
        if same {
            continue;
        }
        let clash = ours
            .iter()
            .find(|ours| names.iter().any(|n| same_item(n, ours)) && keeps(other, job, ours));
        let Some(full_name) = clash else {
            continue;
        };
        // Report the oldest owner, so the message does not change with the cache's order.
        if found
            .as_ref()
            .is_none_or(|(best, _)| older_first(other, best) == Ordering::Less)
        {
            let owner = format!(
                "{}/{}",
                other.namespace().unwrap_or_default(),
                other.name_any()
            );
            found = Some((
                other,
                Conflict {
                    full_name: full_name.clone(),
                    owner,
                },
            ));
        }
    }
    found.map(|(_, conflict)| conflict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(yaml: &str) -> JenkinsCluster {
        crate::cluster::test_cluster(yaml)
    }

    fn job(namespace: &str, name: &str, created: &str, uid: &str) -> JenkinsJob {
        let yaml = format!(
            "apiVersion: jenkins.ci/v1alpha1\nkind: JenkinsJob\nmetadata: {{name: {name}, \
             namespace: {namespace}, uid: {uid}, creationTimestamp: '{created}'}}\n\
             spec: {{cluster: ci, pipeline: {{script: x}}}}\n"
        );
        serde_saphyr::from_str(&yaml).expect("test job")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn without_a_selector_only_the_clusters_own_namespace_is_admitted() {
        let ci = cluster("metadata: {name: ci}\nspec: {}\n");
        assert!(admits(&ci, "ci", &labels(&[])));
        assert!(!admits(&ci, "team-web", &labels(&[("team", "web")])));
        assert!(!needs_namespace_labels(&ci, "team-web"));
    }

    #[test]
    fn a_selector_admits_the_namespaces_it_matches() {
        let ci = cluster(
            "metadata: {name: ci}\nspec:\n  jobNamespaces:\n    matchLabels: {team: web}\n    \
             matchExpressions: [{key: tier, operator: NotIn, values: [prod]}]\n",
        );
        assert!(needs_namespace_labels(&ci, "team-web"));
        assert!(admits(&ci, "team-web", &labels(&[("team", "web")])));
        assert!(!admits(
            &ci,
            "team-web",
            &labels(&[("team", "web"), ("tier", "prod")])
        ));
        assert!(!admits(&ci, "team-api", &labels(&[("team", "api")])));
        assert!(admits(&ci, "ci", &labels(&[])), "its own namespace");
    }

    #[test]
    fn selector_operators_follow_kubernetes() {
        let expr = |key: &str, op: &str, values: &[&str]| LabelSelector {
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: key.into(),
                    operator: op.into(),
                    values: Some(values.iter().map(|v| v.to_string()).collect()),
                },
            ]),
            ..LabelSelector::default()
        };
        let l = labels(&[("a", "1")]);
        assert!(selector_matches(&LabelSelector::default(), &l), "empty");
        assert!(selector_matches(&expr("a", "In", &["1", "2"]), &l));
        assert!(!selector_matches(&expr("a", "In", &["2"]), &l));
        assert!(selector_matches(&expr("b", "NotIn", &["2"]), &l));
        assert!(selector_matches(&expr("a", "Exists", &[]), &l));
        assert!(!selector_matches(&expr("a", "DoesNotExist", &[]), &l));
        assert!(!selector_matches(&expr("a", "Matches", &["1"]), &l));
    }

    #[test]
    fn the_newer_resource_gets_the_conflict_and_names_the_older() {
        let old = job("team-a", "web", "2024-01-01T00:00:00Z", "u1");
        let new = job("team-b", "web", "2024-01-02T00:00:00Z", "u2");
        let names = vec!["shared/Web".to_string()];
        let others = vec![(&old, vec!["shared/web".to_string()])];
        let conflict = first_conflict(&new, &names, others).expect("a conflict");
        assert_eq!(conflict.owner, "team-a/web");
        assert_eq!(conflict.full_name, "shared/Web");

        let others = vec![(&new, vec!["shared/web".to_string()])];
        assert_eq!(first_conflict(&old, &names, others), None);
    }

    #[test]
    fn resources_created_in_the_same_second_are_ordered_by_uid() {
        let a = job("x", "a", "2024-01-01T00:00:00Z", "aaa");
        let b = job("x", "b", "2024-01-01T00:00:00Z", "bbb");
        assert_eq!(older_first(&a, &b), Ordering::Less);
        let names = vec!["f/j".to_string()];
        assert!(first_conflict(&b, &names, vec![(&a, names.clone())]).is_some());
        assert!(first_conflict(&a, &names, vec![(&b, names.clone())]).is_none());
    }

    #[test]
    fn the_resource_holding_the_job_keeps_it_even_against_an_older_one() {
        let older = job("team-a", "app", "2024-01-01T00:00:00Z", "u1");
        let mut holder = job("team-b", "app", "2024-01-02T00:00:00Z", "u2");
        holder.status = Some(crate::api::job::JenkinsJobStatus {
            jobs: vec![crate::api::job::GeneratedJobStatus {
                full_name: "team-b/app".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let names = vec!["team-b/APP".to_string()];
        let conflict = first_conflict(&older, &names, vec![(&holder, names.clone())])
            .expect("the holder keeps its job");
        assert_eq!(conflict.owner, "team-b/app");
        assert_eq!(
            first_conflict(&holder, &names, vec![(&older, names.clone())]),
            None
        );
    }
}

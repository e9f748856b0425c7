//! The Jenkins side of a JenkinsJob: create, update and delete its jobs through the REST API,
//! and read their last builds.
//!
//! Change detection is by our own hash: a job whose recorded `configHash` matches the plan is
//! not even read, until the periodic drift check reads every config.xml and compares it with
//! the plan semantically. Jenkins rewrites the documents it stores (plugin versions, elements
//! it adds); the hash of the stored document after our last write is recorded too, so that
//! Jenkins' own rewriting is not taken for an edit made in the UI. A recorded job is still read
//! at every sync for its last build, and a job Jenkins no longer has is created again then.
//!
//! A job is only ever updated in place (history is kept), never deleted and created again.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::config_xml::config_hash;
use super::plan::{JobPlan, PlannedJob};
use crate::api::job::{BuildSummary, GeneratedJobStatus, JobOrigin};
use crate::jenkins::{
    BuildResult, JenkinsClient, JenkinsError, JobPath, job_config_matches, root_child_text,
};
use crate::operator::metrics::{JenkinsLabels, Metrics};

/// The Jenkins client of the job controller: every call is counted in the
/// `jenkins_requests` metric by what it did (`create_job`, ...) besides the endpoints the
/// client counts. The client bounds the requests in flight (the cluster's permits).
pub struct Counted {
    client: JenkinsClient,
    metrics: Arc<Metrics>,
}

impl Counted {
    pub fn new(client: JenkinsClient, metrics: Arc<Metrics>) -> Self {
        Self { client, metrics }
    }

    fn count<T>(&self, operation: &'static str, result: &Result<T, JenkinsError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) if e.is_not_found() => "not_found",
            Err(e) if e.is_transient() => "unavailable",
            Err(_) => "error",
        };
        self.metrics
            .jenkins_requests
            .get_or_create(&JenkinsLabels { operation, outcome })
            .inc();
    }

    /// The stored config.xml, or `None` when there is no such item.
    pub async fn config(&self, path: &JobPath) -> Result<Option<String>, JenkinsError> {
        let result = self.client.get_job_config(path).await;
        self.count("get_config", &result);
        match result {
            Ok(xml) => Ok(Some(xml)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn ensure_folder(&self, path: &JobPath) -> Result<(), JenkinsError> {
        let result = self.client.ensure_folder(path).await;
        self.count("ensure_folder", &result);
        result
    }

    pub async fn create(&self, path: &JobPath, xml: &str) -> Result<(), JenkinsError> {
        let result = self.client.create_job(path, xml).await;
        self.count("create_job", &result);
        result
    }

    pub async fn update(&self, path: &JobPath, xml: &str) -> Result<(), JenkinsError> {
        let result = self.client.update_job(path, xml).await;
        self.count("update_job", &result);
        result
    }

    /// Deletes an item; one that is already gone is fine.
    pub async fn delete(&self, path: &JobPath) -> Result<(), JenkinsError> {
        let result = self.client.delete_job(path).await;
        self.count("delete_job", &result);
        match result {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// The job's last build, with its result when Jenkins knows it.
    async fn last_build(
        &self,
        path: &JobPath,
        recorded: Option<&BuildSummary>,
    ) -> Result<LastBuild, JenkinsError> {
        let info = {
            let result = self.client.get_job(path).await;
            self.count("get_job", &result);
            match result {
                Err(e) if e.is_not_found() => return Ok(LastBuild::JobMissing),
                other => other?,
            }
        };
        let Some(last) = info.last_build else {
            return Ok(LastBuild::Of(None));
        };
        let number = i64::try_from(last.number).unwrap_or(i64::MAX);
        // A finished build does not change: read it only when it is new or was running.
        if let Some(known) = recorded.filter(|b| b.number == number && b.result.is_some()) {
            return Ok(LastBuild::Of(Some(FetchedBuild {
                summary: known.clone(),
                finished_now: None,
            })));
        }
        let build = {
            let result = self.client.get_build(path, last.number).await;
            self.count("get_build", &result);
            match result {
                Err(e) if e.is_not_found() => return Ok(LastBuild::Of(None)),
                other => other?,
            }
        };
        let result = build
            .result
            .as_ref()
            .filter(|_| build.is_complete())
            .map(result_text);
        Ok(LastBuild::Of(Some(FetchedBuild {
            finished_now: result.clone().map(|r| (build.timestamp_ms, r)),
            summary: BuildSummary { number, result },
        })))
    }
}

/// What [`Counted::last_build`] found.
enum LastBuild {
    /// The job itself does not exist.
    JobMissing,
    /// The job's last build, if it has one.
    Of(Option<FetchedBuild>),
}

struct FetchedBuild {
    summary: BuildSummary,
    /// Start time and result of a build seen finished for the first time.
    finished_now: Option<(u64, String)>,
}

fn result_text(result: &BuildResult) -> String {
    match result {
        BuildResult::Success => "SUCCESS".into(),
        BuildResult::Unstable => "UNSTABLE".into(),
        BuildResult::Failure => "FAILURE".into(),
        BuildResult::NotBuilt => "NOT_BUILT".into(),
        BuildResult::Aborted => "ABORTED".into(),
        BuildResult::Other(other) => other.clone(),
    }
}

/// What a sync did, for the status, the log and Events.
#[derive(Debug, Default)]
pub struct Synced {
    /// The status entry of every planned job, in plan order.
    pub jobs: Vec<GeneratedJobStatus>,
    /// Result of the newest build seen finishing in this pass, if any.
    pub newest_result: Option<String>,
    pub created: Vec<String>,
    pub updated: Vec<String>,
    /// Jobs whose config.xml had been edited in Jenkins and was put back.
    pub repaired: Vec<String>,
    pub deleted: Vec<String>,
    /// Adopted jobs the spec no longer produces, left in Jenkins and no longer managed.
    pub left: Vec<String>,
}

impl Synced {
    /// A one-line summary of the writes, or `None` when nothing was written.
    pub fn summary(&self) -> Option<String> {
        let parts: Vec<String> = [
            ("created", &self.created),
            ("updated", &self.updated),
            ("repaired drift in", &self.repaired),
            ("deleted", &self.deleted),
            ("left adopted jobs in Jenkins:", &self.left),
        ]
        .iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(verb, names)| format!("{verb} {}", names.join(", ")))
        .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Whether a job of the status was recorded in the Jenkins at `base_url` (the cluster's
/// in-cluster URL, whose host names the cluster). After a JenkinsJob moved to another cluster
/// its status still lists the jobs of the old one: in the new Jenkins, items of those names are
/// not this resource's to compare, keep or delete. A prefix change keeps the host.
pub fn recorded_in(job: &GeneratedJobStatus, base_url: &str) -> bool {
    let origin = |url: &str| url::Url::parse(url).ok().map(|u| u.origin());
    match job.url.as_deref() {
        Some(url) => origin(url).is_some_and(|o| Some(o) == origin(base_url)),
        // Not written by a sync (one always records the URL): nothing says where it is.
        None => false,
    }
}

/// Brings Jenkins in line with `plan`. `recorded` is the status of the previous sync (only its
/// jobs recorded in this Jenkins count, see [`recorded_in`]); `drift_check` reads every job's
/// live config.xml even when its hash is unchanged; `base_url` is the cluster's Jenkins URL for
/// the status; `delete_adopted` says whether an adopted job the spec no longer produces is
/// deleted (`DeleteAll`) or left in Jenkins.
pub async fn sync(
    jenkins: &Counted,
    plan: &JobPlan,
    recorded: &[GeneratedJobStatus],
    drift_check: bool,
    base_url: &str,
    delete_adopted: bool,
) -> Result<Synced, JenkinsError> {
    let recorded: Vec<&GeneratedJobStatus> = recorded
        .iter()
        .filter(|j| recorded_in(j, base_url))
        .collect();
    let previous: BTreeMap<&str, &GeneratedJobStatus> = recorded
        .iter()
        .map(|j| (j.full_name.as_str(), *j))
        .collect();
    let folder = JobPath::new(plan.folder.iter().cloned())?;
    let mut folder_ready = false;
    let mut out = Synced::default();
    let mut newest: Option<(u64, String)> = None;

    for job in &plan.jobs {
        let path = JobPath::parse(&job.full_name)?;
        let before = previous.get(job.full_name.as_str()).copied();
        let mut created = false;
        let (mut live_config_hash, mut origin) = if before.is_none()
            && create(jenkins, &folder, &mut folder_ready, &path, &job.config_xml).await?
        {
            // Not recorded yet, so most likely new: created at once, without reading first.
            created = true;
            (stored_hash(jenkins, &path).await?, JobOrigin::Created)
        } else {
            // Recorded, or not recorded but already there (created before a status write
            // was lost, or by hand): read, compare and update as needed.
            match sync_one(jenkins, job, &path, before, drift_check, &mut out).await? {
                Item::Present { live_hash, origin } => (live_hash, origin),
                Item::Missing => {
                    created =
                        create(jenkins, &folder, &mut folder_ready, &path, &job.config_xml).await?;
                    if created {
                        (stored_hash(jenkins, &path).await?, JobOrigin::Created)
                    } else {
                        // Someone created it meanwhile: its description tells whether it was
                        // this resource (another replica); the next drift check compares it.
                        let origin = match jenkins.config(&path).await? {
                            Some(live) => origin_of(&live, job),
                            None => JobOrigin::Adopted,
                        };
                        (None, origin)
                    }
                }
            }
        };

        // A job created just now has no build to read. Reading the last build of one not
        // created is also how a recorded job deleted in Jenkins (by hand, or with Jenkins' home)
        // is found at every resync: it is made again now, not only at the next drift check.
        let fetched = if created {
            None
        } else {
            let recorded_build = before.and_then(|b| b.last_build.as_ref());
            match jenkins.last_build(&path, recorded_build).await? {
                LastBuild::Of(fetched) => fetched,
                LastBuild::JobMissing => {
                    created =
                        create(jenkins, &folder, &mut folder_ready, &path, &job.config_xml).await?;
                    if created {
                        live_config_hash = stored_hash(jenkins, &path).await?;
                        origin = JobOrigin::Created;
                    }
                    None
                }
            }
        };
        if created {
            out.created.push(job.full_name.clone());
        }
        if let Some((at, result)) = fetched.as_ref().and_then(|f| f.finished_now.clone())
            && newest.as_ref().is_none_or(|(t, _)| at >= *t)
        {
            newest = Some((at, result));
        }
        out.jobs.push(GeneratedJobStatus {
            full_name: job.full_name.clone(),
            url: Some(format!(
                "{}/{}",
                base_url.trim_end_matches('/'),
                path.url_path().trim_start_matches('/')
            )),
            environment: job.environment.clone(),
            branch: job.branch.clone(),
            last_build: fetched.map(|f| f.summary),
            config_hash: Some(job.config_hash.clone()),
            live_config_hash,
            origin: Some(origin),
        });
    }
    out.newest_result = newest.map(|(_, result)| result);

    // Jobs the spec no longer produces. A name the plan still holds in another case is the
    // same Jenkins item (names are case-insensitive) and was just updated, not removed.
    let planned: Vec<String> = plan
        .jobs
        .iter()
        .map(|j| j.full_name.to_lowercase())
        .collect();
    for old in recorded {
        if planned.contains(&old.full_name.to_lowercase()) {
            continue;
        }
        if old.adopted() && !delete_adopted {
            // It existed before this resource took it over: it goes back to whoever made it.
            out.left.push(old.full_name.clone());
            continue;
        }
        jenkins.delete(&JobPath::parse(&old.full_name)?).await?;
        out.deleted.push(old.full_name.clone());
    }
    Ok(out)
}

/// Where one job stands after [`sync_one`].
enum Item {
    /// It exists and says what the plan says; `live_hash` is the hash of the document
    /// Jenkins stores, when known.
    Present {
        live_hash: Option<String>,
        origin: JobOrigin,
    },
    /// It does not exist: the caller creates it.
    Missing,
}

/// Creates the job at `path`; creates its folder first when Jenkins answers that the parent
/// does not exist. `Ok(false)` when an item of that name already exists.
async fn create(
    jenkins: &Counted,
    folder: &JobPath,
    folder_ready: &mut bool,
    path: &JobPath,
    config_xml: &str,
) -> Result<bool, JenkinsError> {
    let first = jenkins.create(path, config_xml).await;
    let result = match first {
        Err(e) if e.is_not_found() && !*folder_ready && !folder.segments().is_empty() => {
            jenkins.ensure_folder(folder).await?;
            *folder_ready = true;
            jenkins.create(path, config_xml).await
        }
        other => other,
    };
    match result {
        Ok(()) => Ok(true),
        Err(JenkinsError::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads and updates one job when its hash changed or a drift check is due.
async fn sync_one(
    jenkins: &Counted,
    job: &PlannedJob,
    path: &JobPath,
    before: Option<&GeneratedJobStatus>,
    drift_check: bool,
    out: &mut Synced,
) -> Result<Item, JenkinsError> {
    let unchanged = before.and_then(|b| b.config_hash.as_deref()) == Some(&job.config_hash);
    let recorded_live = before.and_then(|b| b.live_config_hash.clone());
    let recorded_origin = before.map(|b| {
        if b.adopted() {
            JobOrigin::Adopted
        } else {
            JobOrigin::Created
        }
    });
    if unchanged && !drift_check {
        return Ok(Item::Present {
            live_hash: recorded_live,
            origin: recorded_origin.unwrap_or(JobOrigin::Created),
        });
    }

    let Some(live) = jenkins.config(path).await? else {
        return Ok(Item::Missing);
    };
    // An item the status does not record is ours only if its description says this resource
    // created it; anything else already there is adopted.
    let origin = recorded_origin.unwrap_or_else(|| origin_of(&live, job));
    let desired = job.config_for(origin);
    let live_hash = config_hash(&live);
    let same_as_written = unchanged && recorded_live.as_deref() == Some(live_hash.as_str());
    // What a Jenkinsfile sets in its own job (parameters it declares, trackers of what it
    // set) is not drift: only what the spec declares is compared.
    if same_as_written || job_config_matches(&live, desired, &job.declared) {
        return Ok(Item::Present {
            live_hash: Some(live_hash),
            origin,
        });
    }
    jenkins.update(path, desired).await?;
    if unchanged {
        out.repaired.push(job.full_name.clone());
    } else {
        out.updated.push(job.full_name.clone());
    }
    Ok(Item::Present {
        live_hash: stored_hash(jenkins, path).await?,
        origin,
    })
}

/// Whether an existing item that no status records was created for this resource: its
/// description ends with the line the operator wrote when it created the item for this
/// resource (the same uid). A job made by hand, copied from another, or left by another
/// resource (even one of the same name) is adopted.
fn origin_of(live: &str, job: &PlannedJob) -> JobOrigin {
    let description = root_child_text(live, "description").unwrap_or_default();
    if description.trim_end().ends_with(&job.created_marker) {
        JobOrigin::Created
    } else {
        JobOrigin::Adopted
    }
}

/// The hash of the config.xml Jenkins stores for `path` right after our write.
async fn stored_hash(jenkins: &Counted, path: &JobPath) -> Result<Option<String>, JenkinsError> {
    Ok(jenkins.config(path).await?.map(|xml| config_hash(&xml)))
}

/// Deletes `recorded` jobs of a JenkinsJob (its finalizer chooses which). Folders are never
/// deleted: they may hold other teams' jobs, and an emptied folder costs nothing.
pub async fn delete_all(
    jenkins: &Counted,
    recorded: &[GeneratedJobStatus],
) -> Result<Vec<String>, JenkinsError> {
    let mut deleted = Vec::new();
    for job in recorded {
        jenkins.delete(&JobPath::parse(&job.full_name)?).await?;
        deleted.push(job.full_name.clone());
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::job::JenkinsJob;
    use crate::job::plan::plan;

    fn planned(uid: &str) -> PlannedJob {
        let mut job: JenkinsJob = serde_saphyr::from_str(
            "apiVersion: jenkins.ci/v1alpha1\nkind: JenkinsJob\n\
             metadata: {name: web, namespace: team-web}\n\
             spec: {cluster: ci, description: Builds, pipeline: {script: echo}}\n",
        )
        .expect("test job");
        job.metadata.uid = Some(uid.into());
        let cluster = crate::cluster::test_cluster("metadata: {name: ci}\nspec: {}\n");
        let mut plan = plan(&job, &cluster).expect("a plan");
        plan.jobs.remove(0)
    }

    #[test]
    fn an_existing_item_is_ours_only_if_its_description_says_this_resource_created_it() {
        let ours = planned("uid-1");
        assert_eq!(origin_of(&ours.config_xml, &ours), JobOrigin::Created);
        // As Jenkins stores it: its own prologue and indentation.
        let stored = ours
            .config_xml
            .replace(
                "<?xml version=\"1.1\" encoding=\"UTF-8\"?>",
                "<?xml version='1.1'?>",
            )
            .replace("\n  ", "\n    ");
        assert_eq!(origin_of(&stored, &ours), JobOrigin::Created);

        // Adopted before, created for another resource (a copy, or left by a resource of the
        // same name that was deleted with deletionPolicy Orphan), made by hand, or unreadable.
        assert_eq!(
            origin_of(&ours.adopted_config_xml, &ours),
            JobOrigin::Adopted
        );
        let theirs = planned("uid-2");
        assert_eq!(origin_of(&theirs.config_xml, &ours), JobOrigin::Adopted);
        let by_hand = "<flow-definition><description>Builds</description></flow-definition>";
        assert_eq!(origin_of(by_hand, &ours), JobOrigin::Adopted);
        assert_eq!(origin_of("<flow-definition>", &ours), JobOrigin::Adopted);
    }

    fn recorded(url: Option<&str>) -> GeneratedJobStatus {
        GeneratedJobStatus {
            full_name: "team/app".into(),
            url: url.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn a_job_is_recorded_in_the_jenkins_of_its_url_whatever_the_prefix() {
        let base = "http://ci.ci.svc:8080/";
        let here = recorded(Some("http://ci.ci.svc:8080/job/team/job/app/"));
        assert!(recorded_in(&here, base));
        assert!(recorded_in(&here, "http://ci.ci.svc:8080/jenkins/"));

        let elsewhere = recorded(Some("http://other.ci.svc:8080/job/team/job/app/"));
        assert!(!recorded_in(&elsewhere, base));
        let longer_name = recorded(Some("http://ci.ci.svc.example:8080/job/team/job/app/"));
        assert!(!recorded_in(&longer_name, base));
        assert!(!recorded_in(&recorded(Some("not a url")), base));
        assert!(!recorded_in(&recorded(None), base));
    }
}

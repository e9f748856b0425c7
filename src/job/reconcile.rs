//! The JenkinsJob reconciler: find the cluster, check that it admits the job, plan, settle
//! name conflicts, provide the credential, sync the jobs in Jenkins, and report the truth in
//! the status.
//!
//! A converged JenkinsJob reconciles with reads only: the Jenkins side compares hashes (see
//! [`super::sync`]), the credential copy is compared with what it would be, and the status is
//! written only when it says something new.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, TestOperation};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tracing::{Instrument, debug, info, warn};

use super::credentials::{SOURCE_ANNOTATION, UnusableSecret, credential_secret, up_to_date};
use super::index::NameIndex;
use super::plan::{CredentialRef, JobPlan, plan};
use super::sync::{self, Counted, Synced};
use super::tenancy::{admits, first_conflict, needs_namespace_labels, same_item};
use crate::api::JenkinsCluster;
use crate::api::conditions::{self, Desired, READY, RECONCILING, STALLED};
use crate::api::job::{GeneratedJobStatus, JenkinsJob, JenkinsJobStatus, JobDeletionPolicy};
use crate::cluster::reconcile::EVENT_NOTE_LIMIT;
use crate::cluster::{FIELD_MANAGER, cluster_namespace, jenkins_url};
use crate::jenkins::JenkinsError;
use crate::operator::context::Context;
use crate::operator::jenkins_clients::AccessError;

/// Finalizer that lets the operator delete the Jenkins jobs and the credential copy.
pub const FINALIZER: &str = "jenkins.ci/jobs";

/// `Synced`: the jobs in Jenkins match the current spec.
pub const SYNCED: &str = "Synced";

/// What the JenkinsJob controller shares: the operator's context, the controller's caches of
/// every JenkinsJob and JenkinsCluster (read without API calls), and the index of the Jenkins
/// names each JenkinsJob produces (name conflicts are found there).
pub struct JobContext {
    pub ctx: Arc<Context>,
    pub jobs: Store<JenkinsJob>,
    pub clusters: Store<JenkinsCluster>,
    /// Turns true once `clusters` holds the first full list.
    pub clusters_listed: watch::Receiver<bool>,
    pub names: Arc<NameIndex>,
    pub drift_checks: DriftChecks,
}

impl JobContext {
    pub fn new(
        ctx: Arc<Context>,
        jobs: Store<JenkinsJob>,
        clusters: Store<JenkinsCluster>,
        clusters_listed: watch::Receiver<bool>,
        names: Arc<NameIndex>,
    ) -> Self {
        Self {
            ctx,
            jobs,
            clusters,
            clusters_listed,
            names,
            drift_checks: DriftChecks::default(),
        }
    }

    /// The JenkinsCluster named `name`, from the controller's cache (once it has been filled).
    async fn cluster(&self, name: &str) -> Option<Arc<JenkinsCluster>> {
        // Fails only when the sender is gone, that is when the controller stops.
        let _ = self
            .clusters_listed
            .clone()
            .wait_for(|listed| *listed)
            .await;
        self.clusters.get(&ObjectRef::new(name))
    }
}

/// When each JenkinsJob (by uid) last had its live config.xml compared with the spec. Kept in
/// memory, not in the status: a converged resource must cost no write. After a restart every
/// job is checked once (reads only).
#[derive(Default)]
pub struct DriftChecks(Mutex<HashMap<String, Instant>>);

impl DriftChecks {
    /// Whether the periodic comparison with the live config.xml is due for `uid`.
    fn due(&self, uid: &str, every: Duration) -> bool {
        let checks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        checks.get(uid).is_none_or(|last| last.elapsed() >= every)
    }

    fn checked(&self, uid: &str) {
        let mut checks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        checks.insert(uid.to_owned(), Instant::now());
    }

    fn forget(&self, uid: &str) {
        let mut checks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        checks.remove(uid);
    }
}

/// Why a reconcile failed. Each variant names the operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to {action} {object}: {source}")]
    Kube {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },

    #[error("failed to sync the jobs with Jenkins: {0}")]
    Jenkins(#[source] JenkinsError),

    #[error("failed to manage the finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A short PascalCase reason for Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApiError",
            Error::Jenkins(e) if e.is_transient() => "JenkinsUnavailable",
            Error::Jenkins(_) => "JenkinsRejected",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.reason(),
                _ => "FinalizerError",
            },
        }
    }
}

fn kube_error(
    action: &'static str,
    object: impl Into<String>,
) -> impl FnOnce(kube::Error) -> Error {
    let object = object.into();
    move |source| Error::Kube {
        action,
        object,
        source,
    }
}

/// The key of a JenkinsJob in the shared backoff counts (clusters use their bare name).
fn backoff_key(job: &JenkinsJob) -> String {
    format!(
        "jenkinsjob:{}/{}",
        job.namespace().unwrap_or_default(),
        job.name_any()
    )
}

/// Reconciles one JenkinsJob. The controller calls this for every event and resync.
#[tracing::instrument(skip_all, fields(
    kind = "JenkinsJob",
    namespace = %job.namespace().unwrap_or_default(),
    job = %job.name_any(),
    cluster = %job.spec.cluster,
))]
pub async fn reconcile(job: Arc<JenkinsJob>, jctx: Arc<JobContext>) -> Result<Action, Error> {
    let key = backoff_key(&job);
    let started = std::time::Instant::now();
    let namespace = job.namespace().unwrap_or_default();
    let api: Api<JenkinsJob> = Api::namespaced(jctx.ctx.client.clone(), &namespace);
    let result = async {
        let job = with_finalizer(&api, job).await?;
        finalizer(&api, FINALIZER, job, |event| async {
            match event {
                Finalize::Apply(job) => apply(&job, &jctx).await,
                Finalize::Cleanup(job) => cleanup(&job, &jctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    }
    .await;
    if result.is_ok() {
        jctx.ctx.reset_backoff(&key);
    }
    let reason = result.as_ref().err().map(Error::reason);
    jctx.ctx
        .metrics
        .observe_reconcile("jenkinsjob", started.elapsed(), reason);
    result
}

/// The JenkinsJob with the finalizer, added now if it lacks it and is not being deleted.
///
/// kube's [`finalizer`] adds a missing finalizer and ends the reconcile there, counting on the
/// watch event of its own write for the next one: a second reconcile for every new JenkinsJob.
/// Adding it here with the same guarded JSON patch (it fails, and the reconcile is retried, if
/// the finalizers changed meanwhile) lets the same reconcile go on to create the jobs, still
/// only after the finalizer is stored. The controller does not reconcile on finalizer changes
/// (see `job_controller`); a finalizer removed by hand comes back at the next resync.
async fn with_finalizer(
    api: &Api<JenkinsJob>,
    job: Arc<JenkinsJob>,
) -> Result<Arc<JenkinsJob>, Error> {
    let present = job.finalizers().iter().any(|f| f == FINALIZER);
    if present || job.metadata.deletion_timestamp.is_some() {
        return Ok(job);
    }
    let finalizers = PointerBuf::from_tokens(["metadata", "finalizers"]);
    let operations = if job.finalizers().is_empty() {
        vec![
            PatchOperation::Test(TestOperation {
                path: finalizers.clone(),
                value: serde_json::Value::Null,
            }),
            PatchOperation::Add(AddOperation {
                path: finalizers,
                value: json!([FINALIZER]),
            }),
        ]
    } else {
        vec![
            PatchOperation::Test(TestOperation {
                path: finalizers.clone(),
                value: json!(job.finalizers()),
            }),
            PatchOperation::Add(AddOperation {
                path: finalizers.with_trailing_token("-"),
                value: json!(FINALIZER),
            }),
        ]
    };
    let add = |e: kube::Error| {
        Error::Finalizer(Box::new(kube::runtime::finalizer::Error::AddFinalizer(e)))
    };
    let patch = Patch::Json::<()>(json_patch::Patch(operations));
    let stored = api
        .patch(&job.name_any(), &PatchParams::default(), &patch)
        .await
        .map_err(add)?;
    Ok(Arc::new(stored))
}

/// After a failed reconcile: a Warning event and a retry after a delay that doubles with
/// every consecutive failure of the same JenkinsJob.
#[tracing::instrument(skip_all, fields(
    kind = "JenkinsJob",
    namespace = %job.namespace().unwrap_or_default(),
    job = %job.name_any(),
    cluster = %job.spec.cluster,
))]
pub fn error_policy(job: Arc<JenkinsJob>, error: &Error, jctx: Arc<JobContext>) -> Action {
    let delay = jctx.ctx.next_backoff(&backoff_key(&job));
    warn!(error = %error, retry_in = ?delay, "reconcile failed; retrying");
    let event = job_event(EventType::Warning, error.reason(), &error.to_string());
    let reference = job.object_ref(&());
    let recorder = jctx.ctx.recorder.clone();
    tokio::spawn(
        async move {
            if let Err(e) = recorder.publish(&event, &reference).await {
                debug!(error = %e, "failed to publish an event");
            }
        }
        .in_current_span(),
    );
    Action::requeue(delay)
}

/// Where a JenkinsJob stands after a reconcile; becomes its conditions.
enum Verdict {
    /// The jobs in Jenkins match the spec.
    Synced { count: usize },
    /// Still working towards the spec; will get there without help.
    Progressing {
        reason: &'static str,
        message: String,
    },
    /// Cannot get there without a change from the user or the environment.
    Stalled {
        reason: &'static str,
        message: String,
    },
}

impl Verdict {
    fn progressing(reason: &'static str, message: impl Into<String>) -> Self {
        Verdict::Progressing {
            reason,
            message: message.into(),
        }
    }

    fn stalled(reason: &'static str, message: impl Into<String>) -> Self {
        Verdict::Stalled {
            reason,
            message: message.into(),
        }
    }

    /// Ready and Synced say the same here (a JenkinsJob is usable once its jobs are in
    /// Jenkins); Reconciling and Stalled follow kstatus.
    fn conditions(&self) -> Vec<Desired> {
        match self {
            Verdict::Synced { count } => {
                let message = format!("{count} Jenkins job(s) match the spec");
                vec![
                    Desired::new(READY, true, "Synced", message.clone()),
                    Desired::new(SYNCED, true, "Synced", message),
                    Desired::new(RECONCILING, false, "Synced", "nothing to do"),
                    Desired::new(STALLED, false, "Synced", "nothing to do"),
                ]
            }
            Verdict::Progressing { reason, message } => vec![
                Desired::new(READY, false, reason, message.clone()),
                Desired::new(SYNCED, false, reason, message.clone()),
                Desired::new(RECONCILING, true, reason, message.clone()),
                Desired::new(STALLED, false, reason, "progressing"),
            ],
            Verdict::Stalled { reason, message } => vec![
                Desired::new(READY, false, reason, message.clone()),
                Desired::new(SYNCED, false, reason, message.clone()),
                Desired::new(RECONCILING, false, reason, "waiting for a change"),
                Desired::new(STALLED, true, reason, message.clone()),
            ],
        }
    }
}

/// What a reconcile changes in the status besides the conditions.
enum Seen {
    /// Nothing new: the rest of the status stays as it is.
    Nothing,
    /// A successful sync.
    Synced(Observed),
    /// The credential copy is gone: the status stops naming it.
    CredentialRemoved,
}

/// What a successful sync changes in the status besides the conditions.
struct Observed {
    jobs: Vec<GeneratedJobStatus>,
    last_result: Option<String>,
    credential_secret: Option<String>,
    /// An Event already told what the sync wrote: becoming Ready needs no second one.
    announced: bool,
}

/// Brings Jenkins in line with the spec and reports.
async fn apply(job: &JenkinsJob, jctx: &JobContext) -> Result<Action, Error> {
    let ctx = &jctx.ctx;
    let settings = &ctx.settings;
    let namespace = job.namespace().unwrap_or_default();

    // The cluster must exist; the cluster watch brings us back when it appears.
    let cluster_name = &job.spec.cluster;
    let Some(cluster) = jctx.cluster(cluster_name).await else {
        let message = format!(
            "spec.cluster: JenkinsCluster {cluster_name} does not exist; the jobs are created \
             once it does"
        );
        report(
            job,
            ctx,
            &Verdict::stalled("ClusterNotFound", message),
            Seen::Nothing,
        )
        .await?;
        return Ok(Action::requeue(settings.resync));
    };

    // Multi-tenancy: the cluster must admit this namespace. Namespaces are not watched, so a
    // label change is seen on the next resync.
    if let Some(problem) = admission_problem(&cluster, &namespace, ctx).await? {
        report(
            job,
            ctx,
            &Verdict::stalled("NamespaceNotAdmitted", problem),
            Seen::Nothing,
        )
        .await?;
        return Ok(Action::requeue(settings.resync));
    }

    // Plan: an invalid spec stalls until the spec or the cluster's environments change. It is
    // still looked at every resync (a plan and no write while nothing changed), so that a
    // finalizer removed by hand comes back as on every other JenkinsJob.
    let plan = match plan(job, &cluster) {
        Ok(plan) => plan,
        Err(invalid) => {
            let verdict = Verdict::stalled("InvalidSpec", invalid.to_string());
            report(job, ctx, &verdict, Seen::Nothing).await?;
            return Ok(Action::requeue(settings.resync));
        }
    };

    // Two resources producing the same Jenkins job: the one holding it (else the older) keeps
    // it, this one waits.
    if let Some(message) = name_conflict(job, &plan, &cluster, jctx, ctx).await? {
        report(
            job,
            ctx,
            &Verdict::stalled("NameConflict", message),
            Seen::Nothing,
        )
        .await?;
        return Ok(Action::requeue(settings.resync));
    }

    // Jenkins must be up; the cluster watch brings us back when it becomes Ready.
    let cluster_ready = cluster
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, READY))
        .filter(|c| c.status == "True");
    if cluster_ready.is_none() {
        let message = format!("waiting for JenkinsCluster {cluster_name} to be Ready");
        report(
            job,
            ctx,
            &Verdict::progressing("ClusterNotReady", message),
            Seen::Nothing,
        )
        .await?;
        return Ok(Action::requeue(settings.resync));
    }

    // The credential: the team's Secret, copied where the credentials provider reads it.
    let recorded = job
        .status
        .as_ref()
        .and_then(|s| s.credential_secret.clone());
    let credential_secret = match &plan.credential {
        Some(credential) => match ensure_credential(&cluster, credential, ctx).await? {
            Ok(copy) => Some(copy),
            Err(problem) => {
                // A credential must not outlive the Secret it was made from: a deleted or
                // emptied Secret is a revoked credential. Its copy goes, and so does a copy
                // of an earlier Secret this resource still held.
                let copy = remove_credential_copy(&cluster, credential, ctx).await?;
                if let Some(old) = recorded.filter(|old| *old != copy) {
                    release_credential(job, &old, &jctx.jobs, ctx).await?;
                }
                let message = format!(
                    "{problem}. Until then the Jenkins credential {} made from it is removed \
                     (Secret {copy})",
                    credential.id
                );
                let verdict = Verdict::stalled("CredentialSecretInvalid", message);
                report(job, ctx, &verdict, Seen::CredentialRemoved).await?;
                // Secrets are not watched; look again soon.
                return Ok(Action::requeue(settings.progress_poll));
            }
        },
        None => None,
    };
    if let Some(old) = recorded.filter(|old| Some(old) != credential_secret.as_ref()) {
        release_credential(job, &old, &jctx.jobs, ctx).await?;
    }

    // Jenkins: create, update, repair and delete jobs.
    let old = job.status.clone().unwrap_or_default();
    let uid = job.uid().unwrap_or_default();
    let drift_check = jctx.drift_checks.due(&uid, settings.job_drift_check);
    let base_url = jenkins_url(&cluster);
    let delete_adopted = job.spec.deletion_policy == JobDeletionPolicy::DeleteAll;
    let (planned, recorded, url) = (&plan, &old.jobs, base_url.as_str());
    let synced = with_jenkins(ctx, &cluster, |jenkins| async move {
        sync::sync(
            &jenkins,
            planned,
            recorded,
            drift_check,
            url,
            delete_adopted,
        )
        .await
    })
    .await;
    let synced = match synced {
        Ok(synced) => synced,
        Err(AccessError::ReadSecret { secret, source }) => {
            return Err(kube_error("read", format!("Secret {secret}"))(source));
        }
        Err(error) => {
            let verdict = Verdict::stalled("JenkinsAccess", error.to_string());
            report(job, ctx, &verdict, Seen::Nothing).await?;
            return Ok(Action::requeue(settings.progress_poll));
        }
    };
    let synced = match synced {
        Ok(synced) => synced,
        Err(error) => {
            let verdict = jenkins_verdict(&error, error.to_string());
            report(job, ctx, &verdict, Seen::Nothing).await?;
            return Err(Error::Jenkins(error));
        }
    };
    let announced = announce(job, ctx, &synced).await;
    if drift_check {
        jctx.drift_checks.checked(&uid);
    }

    // Report.
    let observed = Observed {
        last_result: synced.newest_result.clone().or(old.last_result.clone()),
        jobs: synced.jobs,
        credential_secret,
        announced,
    };
    let verdict = Verdict::Synced {
        count: plan.jobs.len(),
    };
    report(job, ctx, &verdict, Seen::Synced(observed)).await?;
    Ok(Action::requeue(settings.resync))
}

/// Why `cluster` refuses JenkinsJobs from `namespace`, if it does.
async fn admission_problem(
    cluster: &JenkinsCluster,
    namespace: &str,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let labels = if needs_namespace_labels(cluster, namespace) {
        let api: Api<Namespace> = Api::all(ctx.client.clone());
        api.get_metadata_opt(namespace)
            .await
            .map_err(kube_error("read", format!("Namespace {namespace}")))?
            .map(|ns| ns.labels().clone())
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    if admits(cluster, namespace, &labels) {
        return Ok(None);
    }
    let name = cluster.name_any();
    let own = cluster_namespace(cluster);
    Ok(Some(match &cluster.spec.job_namespaces {
        None => format!(
            "JenkinsCluster {name} admits JenkinsJobs only from its own namespace {own}: add a \
             spec.jobNamespaces selector to the cluster that matches namespace {namespace}"
        ),
        Some(_) => format!(
            "JenkinsCluster {name} does not admit JenkinsJobs from namespace {namespace}: its \
             spec.jobNamespaces selector does not match the namespace's labels"
        ),
    }))
}

/// A message when another JenkinsJob of the same cluster keeps one of our jobs (see
/// [`first_conflict`]). Only resources the cluster admits count: a namespace the cluster
/// refuses must not be able to block an admitted team by claiming its job names first.
async fn name_conflict(
    job: &JenkinsJob,
    plan: &JobPlan,
    cluster: &JenkinsCluster,
    jctx: &JobContext,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let ours: Vec<String> = plan.jobs.iter().map(|j| j.full_name.clone()).collect();
    let others = jctx.names.claimants(&jctx.jobs, cluster, job, &ours);
    let mut admitted: BTreeMap<String, bool> = BTreeMap::new();
    let mut planned: Vec<(Arc<JenkinsJob>, Vec<String>)> = Vec::new();
    for other in others {
        let Some(names) = jctx.names.names_of(&other) else {
            continue;
        };
        let namespace = other.namespace().unwrap_or_default();
        let admits_other = match admitted.get(&namespace) {
            Some(known) => *known,
            None => {
                let known = admission_problem(cluster, &namespace, ctx).await?.is_none();
                admitted.insert(namespace, known);
                known
            }
        };
        if admits_other {
            planned.push((other, names));
        }
    }
    let Some(conflict) = first_conflict(
        job,
        &ours,
        planned.iter().map(|(j, n)| (j.as_ref(), n.clone())),
    ) else {
        return Ok(None);
    };
    Ok(Some(format!(
        "Jenkins job {} is already managed by JenkinsJob {} (which holds it in Jenkins, or is \
         older); this resource changes nothing in Jenkins until it produces other names \
         (rename it or set spec.folder)",
        conflict.full_name, conflict.owner
    )))
}

/// Makes the credential copy exist with the current content of the team's Secret. Returns
/// `namespace/name` of the copy, or what is wrong with the team's Secret.
async fn ensure_credential(
    cluster: &JenkinsCluster,
    credential: &CredentialRef,
    ctx: &Context,
) -> Result<Result<String, String>, Error> {
    let source_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &credential.namespace);
    let source_name = format!("Secret {}/{}", credential.namespace, credential.secret);
    let Some(source) = source_api
        .get_opt(&credential.secret)
        .await
        .map_err(kube_error("read", &source_name))?
    else {
        return Ok(Err(format!(
            "spec.pipeline.scm.git.credentialsSecret: {source_name} does not exist; create it \
             with username and password (or token) keys, or an ssh-privatekey key"
        )));
    };
    let desired = match credential_secret(cluster, credential, &source) {
        Ok(desired) => desired,
        Err(UnusableSecret { secret, keys }) => {
            return Ok(Err(format!(
                "spec.pipeline.scm.git.credentialsSecret: Secret {secret} has neither an \
                 ssh-privatekey key nor username and password (or token) keys (it has: {keys})"
            )));
        }
    };

    let namespace = cluster_namespace(cluster);
    let copy = format!("{namespace}/{}", credential.id);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let live = api
        .get_opt(&credential.id)
        .await
        .map_err(kube_error("read", format!("Secret {copy}")))?;
    if live.as_ref().is_some_and(|l| up_to_date(l, &desired)) {
        return Ok(Ok(copy));
    }
    api.patch(
        &credential.id,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await
    .map_err(kube_error("apply", format!("Secret {copy}")))?;
    info!(secret = %copy, source = %source_name, "copied the credential Secret for Jenkins");
    Ok(Ok(copy))
}

/// Deletes the copy of `credential`'s Secret, whose source is gone or unusable. Returns
/// `namespace/name` of the copy.
///
/// No other JenkinsJob can still need it: the copy is named after its source Secret, so every
/// JenkinsJob that uses it names that same Secret and stalls on it too. Only a copy made from
/// that Secret (by its source annotation) is deleted, never a Secret someone else put there
/// under the same name. A read when there is nothing to delete: a stalled resource polls.
async fn remove_credential_copy(
    cluster: &JenkinsCluster,
    credential: &CredentialRef,
    ctx: &Context,
) -> Result<String, Error> {
    let namespace = cluster_namespace(cluster);
    let copy = format!("{namespace}/{}", credential.id);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let live = api
        .get_metadata_opt(&credential.id)
        .await
        .map_err(kube_error("read", format!("Secret {copy}")))?;
    let source = format!("{}/{}", credential.namespace, credential.secret);
    let made_from_source = live
        .as_ref()
        .is_some_and(|l| l.annotations().get(SOURCE_ANNOTATION) == Some(&source));
    if !made_from_source {
        return Ok(copy);
    }
    match api
        .delete(&credential.id, &DeleteParams::background())
        .await
    {
        Ok(_) => info!(secret = %copy, source = %source,
            "deleted the credential copy: its Secret is gone or unusable"),
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => return Err(kube_error("delete", format!("Secret {copy}"))(e)),
    }
    Ok(copy)
}

/// Deletes a credential copy this JenkinsJob made, unless another JenkinsJob of the same
/// namespace still uses it (two jobs may name the same Secret).
async fn release_credential(
    job: &JenkinsJob,
    copy: &str,
    jobs: &Store<JenkinsJob>,
    ctx: &Context,
) -> Result<(), Error> {
    let still_used = jobs
        .find(|other| {
            other.uid() != job.uid()
                && other.meta().deletion_timestamp.is_none()
                && other
                    .status
                    .as_ref()
                    .and_then(|s| s.credential_secret.as_deref())
                    == Some(copy)
        })
        .is_some();
    if still_used {
        debug!(secret = %copy, "keeping the credential copy: another JenkinsJob uses it");
        return Ok(());
    }
    let Some((namespace, name)) = copy.split_once('/') else {
        return Ok(());
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => info!(secret = %copy, "deleted the credential copy"),
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => return Err(kube_error("delete", format!("Secret {copy}"))(e)),
    }
    Ok(())
}

/// Runs `call` against the cluster's Jenkins with its cached client (see
/// `JenkinsClients::cached_client`, bounded by the cluster's permits). A client Jenkins
/// refuses (401) was made before the admin password changed: it is forgotten, the admin Secret
/// is read again and `call` runs once more before the refusal counts.
async fn with_jenkins<T, F, Fut>(
    ctx: &Context,
    cluster: &JenkinsCluster,
    call: F,
) -> Result<Result<T, JenkinsError>, AccessError>
where
    F: Fn(Counted) -> Fut,
    Fut: std::future::Future<Output = Result<T, JenkinsError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let client = ctx.jenkins.cached_client(&ctx.client, cluster).await?;
        let result = call(Counted::new(client, ctx.metrics.clone())).await;
        if matches!(result, Err(JenkinsError::Unauthorized { .. })) {
            ctx.jenkins.forget(cluster);
            if tries < 2 {
                continue;
            }
        }
        return Ok(result);
    }
}

/// The status after a failed Jenkins call, with `message`: a Jenkins that is starting or
/// unreachable comes back by itself; anything else it refused needs a change.
fn jenkins_verdict(error: &JenkinsError, message: String) -> Verdict {
    match error {
        JenkinsError::Starting { .. } => Verdict::progressing("JenkinsStarting", message),
        e if e.is_transient() => Verdict::progressing("JenkinsUnreachable", message),
        _ => Verdict::stalled("JenkinsRejected", message),
    }
}

/// The finalizer could not delete `jobs` from Jenkins. Without a word in the status the only
/// sign would be Warning Events while the resource hangs in deletion; the conditions say why
/// and how to let it go without Jenkins (a spec change of a deleting resource bumps its
/// generation, so the controller sees the new policy). Returns the error, for the retry.
async fn deletion_blocked(
    job: &JenkinsJob,
    ctx: &Context,
    jobs: &[GeneratedJobStatus],
    error: JenkinsError,
) -> Error {
    let names: Vec<&str> = jobs.iter().map(|j| j.full_name.as_str()).collect();
    let message = format!(
        "the resource is being deleted but its Jenkins jobs {} cannot be deleted: {error}; \
         retrying until Jenkins answers. To finish the deletion and leave the jobs in Jenkins, \
         set spec.deletionPolicy to Orphan: kubectl patch jenkinsjob {} -n {} --type merge \
         -p '{{\"spec\":{{\"deletionPolicy\":\"Orphan\"}}}}'",
        names.join(", "),
        job.name_any(),
        job.namespace().unwrap_or_default(),
    );
    let verdict = jenkins_verdict(&error, message);
    if let Err(e) = report(job, ctx, &verdict, Seen::Nothing).await {
        warn!(error = %e, "failed to report the blocked deletion in the status");
    }
    Error::Jenkins(error)
}

/// Logs and announces what a sync wrote to Jenkins; whether there was anything to announce.
async fn announce(job: &JenkinsJob, ctx: &Context, synced: &Synced) -> bool {
    let Some(summary) = synced.summary() else {
        return false;
    };
    info!(changes = %summary, "synced the jobs in Jenkins");
    let reason = if synced.repaired.is_empty() {
        "JobsSynced"
    } else {
        "DriftRepaired"
    };
    // Each sync's changes are news once: no series to aggregate, so not through the recorder.
    let event = job_event(EventType::Normal, reason, &summary);
    if let Err(e) = ctx.publish_once(&event, &job.object_ref(&())).await {
        debug!(error = %e, "failed to publish an event");
    }
    true
}

/// Writes the status if it says something new, and announces transitions with Events.
async fn report(
    job: &JenkinsJob,
    ctx: &Context,
    verdict: &Verdict,
    seen: Seen,
) -> Result<(), Error> {
    let old = job.status.clone().unwrap_or_default();
    let generation = job.metadata.generation;
    let conditions = conditions::merge(&old.conditions, &verdict.conditions(), generation);
    let announced = matches!(&seen, Seen::Synced(observed) if observed.announced);
    let new = match seen {
        Seen::Synced(observed) => JenkinsJobStatus {
            conditions,
            observed_generation: generation,
            job_count: Some(i32::try_from(observed.jobs.len()).unwrap_or(i32::MAX)),
            jobs: observed.jobs,
            last_result: observed.last_result,
            credential_secret: observed.credential_secret,
        },
        Seen::Nothing => JenkinsJobStatus {
            conditions,
            observed_generation: generation,
            ..old.clone()
        },
        Seen::CredentialRemoved => JenkinsJobStatus {
            conditions,
            observed_generation: generation,
            credential_secret: None,
            ..old.clone()
        },
    };
    let without_conditions = |s: &JenkinsJobStatus| JenkinsJobStatus {
        conditions: Vec::new(),
        ..s.clone()
    };
    if conditions::same(&old.conditions, &new.conditions)
        && without_conditions(&old) == without_conditions(&new)
    {
        return Ok(());
    }

    let namespace = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let api: Api<JenkinsJob> = Api::namespaced(ctx.client.clone(), &namespace);
    // Every field spelled out, so that a field that became empty is removed (null).
    let patch = json!({ "status": {
        "conditions": new.conditions,
        "observedGeneration": new.observed_generation,
        "jobs": new.jobs,
        "jobCount": new.job_count,
        "lastResult": new.last_result,
        "credentialSecret": new.credential_secret,
    }});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube_error(
            "update the status of",
            format!("JenkinsJob {namespace}/{name}"),
        ))?;

    // Announce what changed, once.
    for condition in &new.conditions {
        let before = conditions::find(&old.conditions, &condition.type_);
        let changed =
            before.is_none_or(|b| b.status != condition.status || b.reason != condition.reason);
        // Becoming Ready by a sync that wrote to Jenkins was announced with what it wrote
        // (one Event per new job rather than two: Events are kept by the API server and the
        // recorder's cache).
        let ready_announced = announced && condition.type_ == READY && condition.status == "True";
        let interesting = (condition.type_ == READY && !ready_announced)
            || (condition.type_ == STALLED && condition.status == "True");
        if changed && interesting {
            let type_ = if condition.type_ == STALLED {
                EventType::Warning
            } else {
                EventType::Normal
            };
            publish(ctx, job, type_, &condition.reason, &condition.message).await;
        }
    }
    Ok(())
}

/// An Event of the reconciler, its note cut to what the API server accepts.
fn job_event(type_: EventType, reason: &str, note: &str) -> KubeEvent {
    KubeEvent {
        type_,
        reason: reason.into(),
        note: Some(conditions::truncate(note, EVENT_NOTE_LIMIT)),
        action: "Reconcile".into(),
        secondary: None,
    }
}

/// Publishes an Event about the JenkinsJob; a failure to publish is logged, never fatal.
async fn publish(ctx: &Context, job: &JenkinsJob, type_: EventType, reason: &str, note: &str) {
    let event = job_event(type_, reason, note);
    if let Err(e) = ctx.recorder.publish(&event, &job.object_ref(&())).await {
        debug!(error = %e, "failed to publish an event");
    }
}

/// Runs when the JenkinsJob is deleted: deletes the jobs it created (unless `Orphan`; adopted
/// ones too under `DeleteAll`) and its credential copy. Folders stay: they may hold other
/// teams' jobs.
async fn cleanup(job: &JenkinsJob, jctx: &JobContext) -> Result<Action, Error> {
    let ctx = &jctx.ctx;
    // What the operator remembers of the resource goes with it.
    jctx.drift_checks.forget(&job.uid().unwrap_or_default());
    let status = job.status.clone().unwrap_or_default();
    if let Some(copy) = &status.credential_secret {
        release_credential(job, copy, &jctx.jobs, ctx).await?;
    }
    if job.spec.deletion_policy == JobDeletionPolicy::Orphan {
        info!(
            jobs = status.jobs.len(),
            "leaving the jobs in Jenkins (deletionPolicy Orphan)"
        );
        return Ok(Action::await_change());
    }
    if status.jobs.is_empty() {
        return Ok(Action::await_change());
    }

    // Without its cluster there is no Jenkins to clean up; a cluster being deleted takes its
    // Jenkins along.
    let cluster_name = &job.spec.cluster;
    let cluster = jctx.cluster(cluster_name).await;
    let Some(cluster) = cluster.filter(|c| c.meta().deletion_timestamp.is_none()) else {
        info!("the cluster is gone or going; nothing to delete in Jenkins");
        return Ok(Action::await_change());
    };
    // Only jobs recorded in this cluster's Jenkins: after a move to another cluster that was
    // not synced yet, the status still lists the old cluster's jobs.
    let base_url = jenkins_url(&cluster);
    let here: Vec<GeneratedJobStatus> = status
        .jobs
        .iter()
        .filter(|j| sync::recorded_in(j, &base_url))
        .cloned()
        .collect();

    // A job another JenkinsJob still declares is not ours to delete: two resources created at
    // the same moment may both have recorded it before either saw the other, and the one
    // that lost the name conflict must not take the winner's job (and history) along.
    let recorded: Vec<String> = here.iter().map(|j| j.full_name.clone()).collect();
    let others = jctx.names.claimants(&jctx.jobs, &cluster, job, &recorded);
    let mut declared_elsewhere: Vec<String> = Vec::new();
    for other in &others {
        let Some(names) = jctx.names.names_of(other) else {
            continue;
        };
        let namespace = other.namespace().unwrap_or_default();
        // Only a resource the cluster admits can keep a job (as in the name conflicts).
        if admission_problem(&cluster, &namespace, ctx)
            .await?
            .is_none()
        {
            declared_elsewhere.extend(names);
        }
    }
    let (shared, ours): (Vec<GeneratedJobStatus>, Vec<GeneratedJobStatus>) =
        here.into_iter().partition(|recorded| {
            declared_elsewhere
                .iter()
                .any(|name| same_item(name, &recorded.full_name))
        });
    if !shared.is_empty() {
        let names: Vec<&str> = shared.iter().map(|j| j.full_name.as_str()).collect();
        info!(jobs = ?names, "leaving the jobs another JenkinsJob declares");
    }
    // Jobs that existed before this resource took them over stay, unless the user asked for
    // them to go too: deleting them would take history the operator never made.
    let (adopted, ours): (Vec<GeneratedJobStatus>, Vec<GeneratedJobStatus>) = ours
        .into_iter()
        .partition(|j| j.adopted() && job.spec.deletion_policy != JobDeletionPolicy::DeleteAll);
    let to_delete = &ours;
    let deleted = with_jenkins(ctx, &cluster, |jenkins| async move {
        sync::delete_all(&jenkins, to_delete).await
    })
    .await;
    let deleted = match deleted {
        Ok(Ok(deleted)) => deleted,
        Ok(Err(error)) | Err(AccessError::Client(error)) => {
            return Err(deletion_blocked(job, ctx, &ours, error).await);
        }
        Err(AccessError::ReadSecret { secret, source }) => {
            return Err(kube_error("read", format!("Secret {secret}"))(source));
        }
        Err(error) => {
            warn!(error = %error, "cannot reach Jenkins to delete the jobs; leaving them");
            // The resource goes, so no condition can tell; an Event does.
            let note = format!("left the jobs in Jenkins: cannot call Jenkins: {error}");
            publish(ctx, job, EventType::Warning, "JobsLeft", &note).await;
            return Ok(Action::await_change());
        }
    };
    info!(jobs = ?deleted, "deleted the jobs from Jenkins");
    if !adopted.is_empty() {
        let names: Vec<&str> = adopted.iter().map(|j| j.full_name.as_str()).collect();
        info!(jobs = ?names, "left the adopted jobs in Jenkins");
        let note = format!(
            "left the jobs it adopted in Jenkins: {} (they existed before this resource took \
             them over; deletionPolicy DeleteAll deletes them too)",
            names.join(", ")
        );
        publish(ctx, job, EventType::Normal, "AdoptedJobsLeft", &note).await;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drift_check_is_due_first_and_then_once_per_interval() {
        let checks = DriftChecks::default();
        let every = Duration::from_secs(600);
        assert!(checks.due("a", every), "never checked");
        checks.checked("a");
        assert!(!checks.due("a", every), "just checked");
        assert!(checks.due("b", every), "another resource");
        assert!(checks.due("a", Duration::ZERO), "the interval has passed");
    }

    #[test]
    fn jenkins_starting_or_unreachable_is_progress_and_a_refusal_stalls() {
        let starting = JenkinsError::Starting {
            operation: "get job".into(),
        };
        assert!(matches!(
            jenkins_verdict(&starting, starting.to_string()),
            Verdict::Progressing {
                reason: "JenkinsStarting",
                ..
            }
        ));
        let refused = JenkinsError::InvalidConfig {
            operation: "update".into(),
            excerpt: "bad".into(),
        };
        assert!(matches!(
            jenkins_verdict(&refused, refused.to_string()),
            Verdict::Stalled {
                reason: "JenkinsRejected",
                ..
            }
        ));
    }

    #[test]
    fn every_verdict_sets_ready_synced_reconciling_and_stalled() {
        for verdict in [
            Verdict::Synced { count: 2 },
            Verdict::progressing("ClusterNotReady", "m"),
            Verdict::stalled("InvalidSpec", "m"),
        ] {
            let types: Vec<&str> = verdict.conditions().iter().map(|c| c.type_).collect();
            assert_eq!(types, [READY, SYNCED, RECONCILING, STALLED]);
        }
    }
}

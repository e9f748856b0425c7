//! The JenkinsBuild reconciler: trigger once, follow the queue item and the build, report.
//!
//! A build moves through stages that its status records, each written before the next step:
//!
//! | status holds | stage | next step |
//! |---|---|---|
//! | nothing (or a can't-run failure) | not triggered | resolve, write the marker, trigger |
//! | `buildId`, no `queueId` | answer lost | find the item or build by the id parameter |
//! | `queueId`, no `buildNumber` | queued | read the queue item |
//! | `buildNumber` | running | read the build and the console |
//! | `completionTime` | finished | nothing, or delete after the ttl |
//!
//! A build whose answer was lost is triggered again, as a new `triggerAttempt`, only when
//! Jenkins shows neither an item nor a build for it and no earlier attempt can still reach
//! Jenkins: the trigger fence of [`super::fence`] (two replicas overlap during a lease
//! hand-over, and a request on its way is not in Jenkins yet).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{Instrument, debug, info, warn};

use super::fence::Sent;
use super::resolve::{CannotRun, resolve};
use super::{Error, FINALIZER, log_tail};
use crate::api::JenkinsCluster;
use crate::api::build::{BuildPhase, JenkinsBuild, JenkinsBuildStatus, KEEP_RUNNING_ANNOTATION};
use crate::api::conditions::{self, Desired, READY, RECONCILING, STALLED};
use crate::jenkins::{BuildResult, BuildSearch, JenkinsClient, JenkinsError, JobPath, QueueItem};
use crate::job::config_xml::BUILD_ID_PARAMETER;
use crate::operator::context::Context;
use crate::operator::jenkins_clients::AccessError;

/// Condition type: True when the build succeeded (SUCCESS or UNSTABLE), False when it failed,
/// was aborted or cannot run; absent while it is queued or running.
pub const SUCCEEDED: &str = "Succeeded";

/// The API server rejects an Event whose note is longer than this (bytes).
const EVENT_NOTE_LIMIT: usize = 1024;

/// Reconciles one JenkinsBuild.
#[tracing::instrument(skip_all, fields(
    kind = "JenkinsBuild",
    namespace = %build.namespace().unwrap_or_default(),
    build = %build.name_any(),
))]
pub async fn reconcile(build: Arc<JenkinsBuild>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = backoff_key(&build);
    let started = std::time::Instant::now();
    let api = builds_api(&build, &ctx);
    let result = finalizer(&api, FINALIZER, build, |event| async {
        match event {
            Finalize::Apply(build) => apply(&build, &ctx).await,
            Finalize::Cleanup(build) => cleanup(&build, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if result.is_ok() {
        ctx.reset_backoff(&key);
    }
    let reason = result.as_ref().err().map(Error::reason);
    ctx.metrics
        .observe_reconcile("jenkinsbuild", started.elapsed(), reason);
    result
}

/// After a failed reconcile: a Warning event and a retry with a growing delay.
#[tracing::instrument(skip_all, fields(
    kind = "JenkinsBuild",
    namespace = %build.namespace().unwrap_or_default(),
    build = %build.name_any(),
))]
pub fn error_policy(build: Arc<JenkinsBuild>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.next_backoff(&backoff_key(&build));
    warn!(error = %error, retry_in = ?delay, "reconcile failed; retrying");
    let event = event(EventType::Warning, error.reason(), &error.to_string());
    let reference = build.object_ref(&());
    let recorder = ctx.recorder.clone();
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

fn backoff_key(build: &JenkinsBuild) -> String {
    format!(
        "JenkinsBuild/{}/{}",
        build.namespace().unwrap_or_default(),
        build.name_any()
    )
}

fn builds_api(build: &JenkinsBuild, ctx: &Context) -> Api<JenkinsBuild> {
    Api::namespaced(ctx.client.clone(), &build.namespace().unwrap_or_default())
}

/// Where a build stands, read from its status.
#[derive(Debug, PartialEq, Eq)]
enum Stage {
    NotTriggered,
    AnswerLost,
    Queued(u64),
    Running(u64),
    Finished,
}

fn stage(status: &JenkinsBuildStatus) -> Stage {
    if status.completion_time.is_some() {
        return Stage::Finished;
    }
    let number = status.build_number.and_then(|n| u64::try_from(n).ok());
    let queue_id = status.queue_id.and_then(|n| u64::try_from(n).ok());
    match (status.build_id.is_some(), queue_id, number) {
        (_, _, Some(number)) => Stage::Running(number),
        (_, Some(queue_id), None) => Stage::Queued(queue_id),
        (true, None, None) => Stage::AnswerLost,
        (false, None, None) => Stage::NotTriggered,
    }
}

/// One step forward from wherever the build is.
async fn apply(build: &JenkinsBuild, ctx: &Context) -> Result<Action, Error> {
    let status = build.status.clone().unwrap_or_default();
    match stage(&status) {
        Stage::Finished => after_finish(build, ctx, &status).await,
        Stage::NotTriggered => start(build, ctx).await,
        Stage::AnswerLost => recover(build, ctx, &status).await,
        Stage::Queued(_) | Stage::Running(_) => follow(build, ctx, &status).await,
    }
}

/// Resolves the build, records the trigger marker, and triggers it.
async fn start(build: &JenkinsBuild, ctx: &Context) -> Result<Action, Error> {
    // A trigger that had to wait took its marker back: that status write is a watch event
    // that would mark and try again at once, as fast as the requests go. Wait instead.
    if let Some(wait) = ctx.build_polls.not_yet(&build_id(build)) {
        return Ok(Action::requeue(wait));
    }

    // Resolve, with Kubernetes reads only: a build that cannot run never reaches Jenkins.
    let old = build.status.clone().unwrap_or_default();
    let target = match resolve(build, ctx).await? {
        Ok(target) => target,
        Err(cannot) => {
            report_cannot_run(build, ctx, &old, &cannot).await?;
            // Looked at again when the JenkinsJob changes (a watch), and on resync.
            return Ok(Action::requeue(ctx.settings.resync));
        }
    };
    let jenkins = match jenkins_client(ctx, &target.cluster).await? {
        Ok(jenkins) => jenkins,
        Err(waiting) => return waiting_for(build, ctx, &old, waiting).await,
    };

    // Jenkins refused the last trigger: ask whether the job takes builds again before
    // triggering (a read, where a trigger would be a refused POST on every look).
    let refused = conditions::find(&old.conditions, STALLED)
        .is_some_and(|c| c.status == "True" && c.reason == NOT_BUILDABLE);
    if refused {
        let path = JobPath::parse(&target.job).map_err(Error::Jenkins)?;
        match jenkins.get_job(&path).await {
            Ok(job) if !job.buildable => {
                let cannot = not_buildable(&target.job);
                report_cannot_run(build, ctx, &old, &cannot).await?;
                return Ok(Action::requeue(ctx.settings.resync));
            }
            Ok(_) | Err(JenkinsError::NotFound { .. }) => {}
            Err(e) => return Err(Error::Jenkins(e)),
        }
    }

    // A fresh read: the cache may not hold this controller's latest write yet, and a marker
    // written there means the build may already be in Jenkins.
    let api = builds_api(build, ctx);
    let name = build.name_any();
    let live = api
        .get(&name)
        .await
        .map_err(Error::kube("read", format!("JenkinsBuild {name}")))?;
    let live_status = live.status.clone().unwrap_or_default();
    if stage(&live_status) != Stage::NotTriggered {
        debug!("the cached build was stale; looking again");
        return Ok(Action::requeue(ctx.settings.build_poll_min));
    }

    // The marker, written with a compare-and-swap on the resource version: of two writers
    // (a stale cache, a second replica), one wins and only the winner triggers. It announces
    // a new trigger attempt, which nothing may be sent for after the deadline (`fence`).
    let attempt = live_status.trigger_attempt.unwrap_or(0).saturating_add(1);
    let mut marked = live_status.clone();
    marked.phase = Some(BuildPhase::Queued);
    marked.jenkins_job = Some(target.job.clone());
    marked.cluster = Some(target.cluster.name_any());
    marked.build_id = Some(build_id(build));
    marked.trigger_attempt = Some(attempt);
    marked.message = None;
    let detail = format!("triggering a build of {}", target.job);
    let precondition = live.resource_version();
    let began = Instant::now();
    match write_status(
        &live,
        ctx,
        &live_status,
        marked.clone(),
        &detail,
        None,
        precondition,
    )
    .await
    {
        Ok(_) => {}
        Err(Error::Kube {
            source: kube::Error::Api(status),
            ..
        }) if status.code == 409 => {
            debug!("the build changed while it was being marked; looking again");
            return Ok(Action::requeue(ctx.settings.build_poll_min));
        }
        Err(e) => return Err(e),
    }
    let announced = announce(build, ctx, attempt, began);
    trigger(&live, ctx, &jenkins, marked, target.parameters, announced).await
}

/// A trigger attempt this replica announced: its number, and the moment after which nothing
/// may be sent for it.
struct Announced {
    attempt: i64,
    deadline: Instant,
}

/// Records the attempt this replica just announced (`began` before the write that did).
fn announce(build: &JenkinsBuild, ctx: &Context, attempt: i64, began: Instant) -> Announced {
    let deadline = began + ctx.settings.trigger_deadline;
    ctx.trigger_fences
        .announce(&build_id(build), attempt, began, deadline);
    Announced { attempt, deadline }
}

/// Triggers the build the marker in `marked` announces, and records its queue item. Nothing is
/// sent after the attempt's deadline; how the attempt ended is recorded for the fence.
async fn trigger(
    build: &JenkinsBuild,
    ctx: &Context,
    jenkins: &JenkinsClient,
    marked: JenkinsBuildStatus,
    mut parameters: Vec<(String, String)>,
    announced: Announced,
) -> Result<Action, Error> {
    let job = marked.jenkins_job.clone().unwrap_or_default();
    let id = build_id(build);
    let attempt = announced.attempt;
    let ended = |sent: Sent| ctx.trigger_fences.ended(&id, attempt, sent);
    let deadline = tokio::time::Instant::from_std(announced.deadline);
    let late = |what: &str| JenkinsError::Timeout {
        operation: format!(
            "{what} ‘{job}’ within {}s of announcing trigger attempt {attempt}",
            ctx.settings.trigger_deadline.as_secs()
        ),
        source: None,
    };
    let path = match JobPath::parse(&job) {
        Ok(path) => path,
        Err(e) => {
            ended(Sent::Nothing);
            return Err(Error::Jenkins(e));
        }
    };
    parameters.push((BUILD_ID_PARAMETER.to_owned(), id.clone()));

    // Answers that say nothing was queued take the marker back: triggering again is safe.
    let mut unmarked = marked.clone();
    unmarked.build_id = None;

    // The job must declare the id parameter: Jenkins ignores values of undeclared parameters,
    // so a build triggered without it could neither be found after a restart nor be told
    // apart from an identical one. A Jenkinsfile `parameters { }` directive removes it until
    // the JenkinsJob's drift check puts it back. One GET per trigger.
    let declared = match tokio::time::timeout_at(deadline, jenkins.get_job(&path)).await {
        Ok(declared) => declared,
        Err(_) => {
            ended(Sent::Nothing);
            return Err(Error::Jenkins(late("check the Jenkins job")));
        }
    };
    match declared {
        Ok(declared)
            if !declared
                .parameters
                .iter()
                .any(|p| p.name == BUILD_ID_PARAMETER) =>
        {
            ended(Sent::Nothing);
            let detail = format!(
                "waiting for the Jenkins job {job} to declare {BUILD_ID_PARAMETER}, which tells \
                 this build apart: its JenkinsJob puts it back (a Jenkinsfile parameters {{ }} \
                 directive removes it)"
            );
            write_status(build, ctx, &marked, unmarked, &detail, None, None).await?;
            return Ok(wait_before_triggering(build, ctx));
        }
        // A missing job is the trigger's to report.
        Ok(_) | Err(JenkinsError::NotFound { .. }) => {}
        Err(e) => {
            ended(Sent::Nothing);
            return Err(Error::Jenkins(e));
        }
    }
    let queued = tokio::time::timeout_at(deadline, jenkins.trigger_build(&path, &parameters))
        .await
        .unwrap_or_else(|_| Err(late("trigger a build of")));
    ended(match &queued {
        Err(
            JenkinsError::Timeout { .. }
            | JenkinsError::ConnectionRefused { .. }
            | JenkinsError::Transport { .. },
        ) => Sent::Unanswered,
        _ => Sent::Answered,
    });
    match queued {
        Ok(queue_id) => {
            let mut status = marked.clone();
            status.queue_id = Some(to_i64(queue_id));
            let detail = format!("queue item {queue_id} of {job}");
            write_status(build, ctx, &marked, status, &detail, None, None).await?;
            ctx.trigger_fences.forget(&id);
            info!(job = %job, queue_id, attempt, "triggered the build");
            publish(
                ctx,
                build,
                EventType::Normal,
                "Triggered",
                &format!("queued in Jenkins as item {queue_id} of {job}"),
            )
            .await;
            Ok(Action::requeue(ctx.settings.build_poll_min))
        }
        Err(JenkinsError::NotBuildable { .. }) => {
            let cannot = not_buildable(&job);
            report_cannot_run(build, ctx, &marked, &cannot).await?;
            Ok(Action::requeue(ctx.settings.resync))
        }
        Err(JenkinsError::NotFound { .. }) => {
            let detail =
                format!("waiting for the Jenkins job {job}: its JenkinsJob has not created it yet");
            write_status(build, ctx, &marked, unmarked, &detail, None, None).await?;
            Ok(wait_before_triggering(build, ctx))
        }
        Err(JenkinsError::NotParameterized { .. }) => {
            let detail = format!(
                "waiting for the Jenkins job {job} to declare {BUILD_ID_PARAMETER}: its \
                 JenkinsJob has not updated it yet"
            );
            write_status(build, ctx, &marked, unmarked, &detail, None, None).await?;
            Ok(wait_before_triggering(build, ctx))
        }
        // The item may or may not be queued: the marker stays, and the next reconcile looks
        // for it before triggering again.
        Err(error) => Err(Error::Jenkins(error)),
    }
}

/// After a trigger that had to wait (and took its marker back): the next try comes after the
/// progress poll, however soon the controller looks again.
fn wait_before_triggering(build: &JenkinsBuild, ctx: &Context) -> Action {
    let every = ctx.settings.progress_poll;
    Action::requeue(ctx.build_polls.next(&build_id(build), true, every, every))
}

/// Reason of a build whose job Jenkins refuses to build (disabled in Jenkins).
const NOT_BUILDABLE: &str = "JobNotBuildable";

fn not_buildable(job: &str) -> CannotRun {
    CannotRun::new(
        NOT_BUILDABLE,
        format!(
            "Jenkins refuses to build {job}: the job is disabled in Jenkins (409); the build \
             starts once the job is enabled"
        ),
    )
}

/// The marker is there but not the queue item: find what the lost answer named, or trigger
/// again once no earlier attempt can still reach Jenkins (`fence`).
async fn recover(
    build: &JenkinsBuild,
    ctx: &Context,
    status: &JenkinsBuildStatus,
) -> Result<Action, Error> {
    let Some((jenkins, path)) = follow_access(build, ctx, status).await? else {
        return Ok(Action::requeue(ctx.settings.resync));
    };
    let id = build_id(build);
    let attempt = status.trigger_attempt.unwrap_or(0);

    // Whether a trigger of this attempt may still be on its way, decided before looking: one
    // that lands while Jenkins is being read is found by the next look, never followed by a
    // second trigger.
    let fenced = ctx
        .trigger_fences
        .wait(&id, attempt, ctx.settings.fence_times());

    // Items still in the queue (up to the moment they start) are listed; a build is in the
    // job's list from the moment it starts, before its item leaves: in this order, nothing
    // falls between the two reads.
    let found = match jenkins
        .find_queue_item_by_parameter(BUILD_ID_PARAMETER, &id)
        .await
        .map_err(Error::Jenkins)?
    {
        Some(queue_id) => Some((queue_id, None)),
        None => match jenkins
            .find_build_by_parameter(&path, BUILD_ID_PARAMETER, &id, &build_search(build))
            .await
        {
            Ok(found) => found.map(|b| (b.queue_id, Some(b.number))),
            Err(JenkinsError::NotFound { .. }) => None,
            Err(e) => return Err(Error::Jenkins(e)),
        },
    };
    if let Some((queue_id, number)) = found {
        info!(queue_id, build_number = ?number, attempt,
            "found the build whose trigger answer was lost");
        let mut new = status.clone();
        new.queue_id = Some(to_i64(queue_id));
        new.build_number = number.map(to_i64);
        let detail = format!("queue item {queue_id} of {path}");
        write_status(build, ctx, status, new, &detail, None, None).await?;
        ctx.trigger_fences.forget(&id);
        return Ok(Action::requeue(ctx.settings.build_poll_min));
    }

    // Jenkins has neither, but a trigger may still be on its way: look again once it would
    // have landed.
    if let Some(wait) = fenced {
        info!(attempt, wait = ?wait,
            "no build found for a trigger that may still be on its way; looking again later");
        let detail = format!(
            "trigger attempt {attempt} of {path} may still be on its way to Jenkins, which shows \
             no build for it yet: looking again before triggering again"
        );
        write_status(build, ctx, status, status.clone(), &detail, None, None).await?;
        return Ok(Action::requeue(wait));
    }

    // No trigger of this attempt can land any more: trigger again, as a new attempt announced
    // with a compare-and-swap, so that of two replicas that got here together one triggers.
    info!(
        attempt,
        "the earlier trigger did not reach Jenkins; triggering again"
    );
    let target = match resolve(build, ctx).await? {
        Ok(target) => target,
        Err(cannot) => {
            let mut unmarked = status.clone();
            unmarked.build_id = None;
            report_cannot_run(build, ctx, &unmarked, &cannot).await?;
            return Ok(Action::requeue(ctx.settings.resync));
        }
    };
    let next = attempt.saturating_add(1);
    let mut marked = status.clone();
    marked.jenkins_job = Some(target.job.clone());
    marked.trigger_attempt = Some(next);
    let detail = format!("triggering a build of {} again", target.job);
    let began = Instant::now();
    match write_status(
        build,
        ctx,
        status,
        marked.clone(),
        &detail,
        None,
        build.resource_version(),
    )
    .await
    {
        Ok(_) => {}
        Err(Error::Kube {
            source: kube::Error::Api(status),
            ..
        }) if status.code == 409 => {
            debug!("the build changed while a new trigger attempt was announced; looking again");
            return Ok(Action::requeue(ctx.settings.build_poll_min));
        }
        Err(e) => return Err(e),
    }
    let announced = announce(build, ctx, next, began);
    trigger(build, ctx, &jenkins, marked, target.parameters, announced).await
}

/// Reads the queue item or the build, and the new console text.
async fn follow(
    build: &JenkinsBuild,
    ctx: &Context,
    old: &JenkinsBuildStatus,
) -> Result<Action, Error> {
    // Woken before the next poll is due (by our own status write, most often): wait for it.
    if let Some(wait) = ctx.build_polls.not_yet(&build_id(build)) {
        return Ok(Action::requeue(wait));
    }
    let Some((jenkins, path)) = follow_access(build, ctx, old).await? else {
        return Ok(Action::requeue(ctx.settings.resync));
    };
    let mut new = old.clone();
    let mut detail = String::new();

    // The queue item, until it names its build.
    if new.build_number.is_none() {
        let queue_id = new
            .queue_id
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or_default();
        let waiting = |how: Waiting, why: Option<String>| {
            let previous = conditions::find(&old.conditions, RECONCILING).map(|c| &c.message);
            waiting_detail(queue_id, &path, how, why, previous.map(String::as_str))
        };
        match jenkins.queue_item(queue_id).await.map_err(Error::Jenkins)? {
            QueueItem::Waiting { .. } => detail = waiting(Waiting::QuietPeriod, None),
            QueueItem::Blocked { why } => detail = waiting(Waiting::Blocked, why),
            QueueItem::Buildable { why } => detail = waiting(Waiting::ForExecutor, why),
            QueueItem::Left {
                cancelled: true, ..
            } => end_without_build(
                &mut new,
                BuildPhase::Aborted,
                format!("queue item {queue_id} was cancelled in Jenkins before it started"),
            ),
            QueueItem::Left {
                executable: Some(started),
                ..
            } => new.build_number = Some(to_i64(started.number)),
            QueueItem::Left {
                executable: None, ..
            } => detail = "leaving the Jenkins queue".into(),
            QueueItem::NotFound => {
                let search = build_search(build);
                forgotten_item(
                    &jenkins,
                    &path,
                    queue_id,
                    &build_id(build),
                    &search,
                    &mut new,
                )
                .await?;
            }
        }
    }

    // The build, until it completes.
    if let Some(number) = new.build_number.and_then(|n| u64::try_from(n).ok())
        && new.completion_time.is_none()
    {
        match jenkins.get_build(&path, number).await {
            Ok(found) => {
                read_build(&jenkins, &path, &found, &build_id(build), &mut new).await?;
                if new.completion_time.is_none() {
                    detail = format!("build #{number} of {path} is running");
                }
            }
            Err(JenkinsError::NotFound { .. }) => end_without_build(
                &mut new,
                BuildPhase::Failed,
                format!("build #{number} of {path} no longer exists in Jenkins"),
            ),
            Err(e) => return Err(Error::Jenkins(e)),
        }
    }

    let changed = new != *old;
    write_status(build, ctx, old, new.clone(), &detail, None, None).await?;
    if new.completion_time.is_some() {
        ctx.build_polls.forget(&build_id(build));
        ctx.trigger_fences.forget(&build_id(build));
        return after_finish(build, ctx, &new).await;
    }
    let settings = &ctx.settings;
    let delay = ctx.build_polls.next(
        &build_id(build),
        changed,
        settings.build_poll_min,
        settings.build_poll_max,
    );
    Ok(Action::requeue(delay))
}

/// How a queue item waits before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    QuietPeriod,
    Blocked,
    ForExecutor,
}

/// The condition message of a queue item that waits: how it waits and, the first time it waits
/// that way, Jenkins' `why`. Jenkins rewrites `why` on every read (the time left of a quiet
/// period, the ETA of the build that blocks, the name of each new agent pod), so copying it at
/// every poll would write the status at every poll: an API server write and an event for every
/// watcher, saying nothing new. The message changes only when the way it waits does; an ETA is
/// dropped from it, as it would only go stale.
fn waiting_detail(
    queue_id: u64,
    job: &JobPath,
    how: Waiting,
    why: Option<String>,
    previous: Option<&str>,
) -> String {
    let state = match how {
        Waiting::QuietPeriod => "is in its quiet period",
        Waiting::Blocked => "is blocked",
        Waiting::ForExecutor => "waits for an executor",
    };
    let head = format!("queue item {queue_id} of {job} {state}");
    if let Some(previous) = previous
        && (previous == head || previous.starts_with(&format!("{head}: ")))
    {
        return previous.to_owned();
    }
    // The quiet period's why only says how long it has left.
    let why = why
        .filter(|_| how != Waiting::QuietPeriod)
        .map(|why| without_eta(&why).trim().to_owned())
        .filter(|why| !why.is_empty());
    match why {
        Some(why) => format!("{head}: {why}"),
        None => head,
    }
}

/// Jenkins' `why` without the trailing ` (ETA: …)` of a blocked item (English messages; in
/// other languages the text is kept whole, and still written only once).
fn without_eta(why: &str) -> &str {
    match why.rfind(" (ETA:") {
        Some(at) if why.ends_with(')') => &why[..at],
        _ => why,
    }
}

/// A queue item Jenkins no longer knows (forgotten five minutes after it left): find its
/// build by queue id, then by the id parameter.
async fn forgotten_item(
    jenkins: &JenkinsClient,
    path: &JobPath,
    queue_id: u64,
    id: &str,
    search: &BuildSearch,
    new: &mut JenkinsBuildStatus,
) -> Result<(), Error> {
    let by_queue_id = match jenkins.find_build_by_queue_id(path, queue_id, search).await {
        Ok(found) => found,
        Err(JenkinsError::NotFound { .. }) => {
            end_without_build(
                new,
                BuildPhase::Failed,
                format!("the Jenkins job {path} no longer exists"),
            );
            return Ok(());
        }
        Err(e) => return Err(Error::Jenkins(e)),
    };
    let number = match by_queue_id {
        Some(number) => Some(number),
        None => jenkins
            .find_build_by_parameter(path, BUILD_ID_PARAMETER, id, search)
            .await
            .map_err(Error::Jenkins)?
            .map(|b| b.number),
    };
    match number {
        Some(number) => new.build_number = Some(to_i64(number)),
        None => end_without_build(
            new,
            BuildPhase::Failed,
            format!(
                "queue item {queue_id} of {path} is gone and no build came from it (cancelled, \
                 or lost in a Jenkins restart)"
            ),
        ),
    }
    Ok(())
}

/// Copies what the build shows into the status, with the new console text.
async fn read_build(
    jenkins: &JenkinsClient,
    path: &JobPath,
    found: &crate::jenkins::Build,
    id: &str,
    new: &mut JenkinsBuildStatus,
) -> Result<(), Error> {
    // A build that carries another resource's id is not this one: never follow it.
    let other = found
        .parameters
        .iter()
        .find(|(name, _)| name == BUILD_ID_PARAMETER)
        .is_some_and(|(_, value)| value != id);
    if other {
        end_without_build(
            new,
            BuildPhase::Failed,
            format!(
                "build #{} of {path} was triggered for another JenkinsBuild",
                found.number
            ),
        );
        return Ok(());
    }
    new.url = Some(found.url.clone()).filter(|u| !u.is_empty());
    new.start_time = time_from_millis(found.timestamp_ms).or(new.start_time.take());
    if new.phase != Some(BuildPhase::Running) && found.building {
        new.phase = Some(BuildPhase::Running);
    }

    // The console, from the stored cursor on.
    let offset = new
        .log_offset
        .and_then(|o| u64::try_from(o).ok())
        .unwrap_or(0);
    match jenkins.progressive_log(path, found.number, offset).await {
        Ok(chunk) => {
            if !chunk.text.is_empty() {
                let tail = log_tail::append(new.log_tail.as_deref().unwrap_or(""), &chunk.text);
                new.log_tail = Some(tail).filter(|t| !t.is_empty());
            }
            new.log_offset = Some(to_i64(chunk.next_offset));
        }
        // The console may not exist for a moment after the build starts.
        Err(JenkinsError::NotFound { .. }) => {}
        Err(e) => return Err(Error::Jenkins(e)),
    }

    // Completion is `building == false`: a pipeline may show its result earlier.
    if found.is_complete() {
        let result = found
            .result
            .clone()
            .unwrap_or(BuildResult::Other("UNKNOWN".into()));
        new.phase = Some(phase_of(&result));
        new.result = Some(result.as_str().to_owned());
        let seconds = found.duration_ms.div_ceil(1000);
        new.duration_seconds = Some(to_i64(seconds));
        let end = found.timestamp_ms.saturating_add(found.duration_ms);
        new.completion_time = time_from_millis(end).or_else(|| Some(Time(Timestamp::now())));
    }
    Ok(())
}

/// SUCCESS and UNSTABLE (tests failed, the build itself worked) succeed; ABORTED is Aborted;
/// FAILURE, NOT_BUILT and anything else fail.
pub fn phase_of(result: &BuildResult) -> BuildPhase {
    match result {
        BuildResult::Success | BuildResult::Unstable => BuildPhase::Succeeded,
        BuildResult::Aborted => BuildPhase::Aborted,
        BuildResult::Failure | BuildResult::NotBuilt | BuildResult::Other(_) => BuildPhase::Failed,
    }
}

/// Ends a build that will never run or can no longer be followed.
fn end_without_build(new: &mut JenkinsBuildStatus, phase: BuildPhase, message: String) {
    new.phase = Some(phase);
    new.message = Some(message);
    new.completion_time = Some(Time(Timestamp::now()));
}

/// The Jenkins client and job path to follow a triggered build, or `None` after reporting
/// why it cannot be followed now.
async fn follow_access(
    build: &JenkinsBuild,
    ctx: &Context,
    status: &JenkinsBuildStatus,
) -> Result<Option<(JenkinsClient, JobPath)>, Error> {
    let job = status.jenkins_job.clone().unwrap_or_default();
    let path = JobPath::parse(&job).map_err(Error::Jenkins)?;
    let cluster_name = status.cluster.clone().unwrap_or_default();
    let clusters: Api<JenkinsCluster> = Api::all(ctx.client.clone());
    let Some(cluster) = clusters.get_opt(&cluster_name).await.map_err(Error::kube(
        "read",
        format!("JenkinsCluster {cluster_name}"),
    ))?
    else {
        let detail = format!("JenkinsCluster {cluster_name}, which runs the build, is gone");
        write_status(build, ctx, status, status.clone(), &detail, None, None).await?;
        return Ok(None);
    };
    match jenkins_client(ctx, &cluster).await? {
        Ok(jenkins) => Ok(Some((jenkins, path))),
        Err(waiting) => {
            write_status(build, ctx, status, status.clone(), &waiting, None, None).await?;
            Ok(None)
        }
    }
}

/// A client for the cluster's Jenkins, or why there is none yet.
async fn jenkins_client(
    ctx: &Context,
    cluster: &JenkinsCluster,
) -> Result<Result<JenkinsClient, String>, Error> {
    match ctx.jenkins.client(&ctx.client, cluster).await {
        Ok((jenkins, _)) => Ok(Ok(jenkins)),
        Err(AccessError::ReadSecret { secret, source }) => Err(Error::Kube {
            action: "read",
            object: format!("Secret {secret}"),
            source,
        }),
        Err(other) => Ok(Err(format!(
            "waiting for access to the Jenkins of JenkinsCluster {}: {other}",
            cluster.name_any()
        ))),
    }
}

/// Reports that the build waits for something outside it, and looks again later.
async fn waiting_for(
    build: &JenkinsBuild,
    ctx: &Context,
    old: &JenkinsBuildStatus,
    detail: String,
) -> Result<Action, Error> {
    let mut new = old.clone();
    new.phase = Some(BuildPhase::Queued);
    new.message = None;
    write_status(build, ctx, old, new, &detail, None, None).await?;
    Ok(Action::requeue(ctx.settings.progress_poll))
}

/// Reports a build that cannot run: phase Failed, Stalled, the message.
async fn report_cannot_run(
    build: &JenkinsBuild,
    ctx: &Context,
    old: &JenkinsBuildStatus,
    cannot: &CannotRun,
) -> Result<(), Error> {
    let mut new = old.clone();
    new.phase = Some(BuildPhase::Failed);
    new.message = Some(cannot.message.clone());
    new.build_id = None;
    write_status(build, ctx, old, new, &cannot.message, Some(cannot), None)
        .await
        .map(|_| ())
}

/// A finished build: nothing to do until its ttl runs out, then it is deleted.
async fn after_finish(
    build: &JenkinsBuild,
    ctx: &Context,
    status: &JenkinsBuildStatus,
) -> Result<Action, Error> {
    let (Some(ttl), Some(done)) = (
        build.spec.ttl_seconds_after_finished,
        status.completion_time.as_ref(),
    ) else {
        return Ok(Action::await_change());
    };
    let deadline = done.0.as_millisecond() + i64::from(ttl.max(0)) * 1000;
    let remaining = deadline - Timestamp::now().as_millisecond();
    if remaining > 0 {
        // Rounded up, so that the requeue never comes a moment too early.
        let wait = Duration::from_millis(u64::try_from(remaining).unwrap_or(0) + 1);
        return Ok(Action::requeue(wait));
    }
    if build.metadata.deletion_timestamp.is_none() {
        let name = build.name_any();
        info!(
            ttl_seconds = ttl,
            "deleting the finished build: its ttl ran out"
        );
        match builds_api(build, ctx)
            .delete(&name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(Error::kube("delete", format!("JenkinsBuild {name}"))(e)),
        }
    }
    Ok(Action::await_change())
}

/// Runs when the JenkinsBuild is deleted: stops the build (or cancels its queue item) unless
/// it finished or the user asked to keep it running.
async fn cleanup(build: &JenkinsBuild, ctx: &Context) -> Result<Action, Error> {
    let status = build.status.clone().unwrap_or_default();
    ctx.build_polls.forget(&build_id(build));
    ctx.trigger_fences.forget(&build_id(build));
    let keep = build
        .annotations()
        .get(KEEP_RUNNING_ANNOTATION)
        .is_some_and(|v| v == "true");
    let stage = stage(&status);
    if matches!(stage, Stage::Finished | Stage::NotTriggered) {
        return Ok(Action::await_change());
    }
    if keep {
        info!("leaving the build running in Jenkins ({KEEP_RUNNING_ANNOTATION}: true)");
        return Ok(Action::await_change());
    }
    let clusters: Api<JenkinsCluster> = Api::all(ctx.client.clone());
    let cluster_name = status.cluster.clone().unwrap_or_default();
    let Some(cluster) = clusters.get_opt(&cluster_name).await.map_err(Error::kube(
        "read",
        format!("JenkinsCluster {cluster_name}"),
    ))?
    else {
        info!(cluster = %cluster_name, "the cluster is gone; nothing to stop");
        return Ok(Action::await_change());
    };
    let jenkins = match jenkins_client(ctx, &cluster).await? {
        Ok(jenkins) => jenkins,
        Err(why) => {
            warn!(reason = %why, "cannot reach Jenkins to stop the build; letting it go");
            return Ok(Action::await_change());
        }
    };
    let job = status.jenkins_job.clone().unwrap_or_default();
    let path = JobPath::parse(&job).map_err(Error::Jenkins)?;
    let id = build_id(build);
    let search = build_search(build);

    // What to stop: the build, else the queue item, else whatever the id parameter finds.
    let number = match stage {
        Stage::Running(number) => Some(number),
        Stage::Queued(queue_id) => match jenkins.cancel_queue_item(queue_id).await {
            Ok(true) => {
                info!(queue_id, "cancelled the queue item");
                return Ok(Action::await_change());
            }
            // It left the queue (Jenkins refuses to cancel a left item it still remembers, and
            // forgets it later): it is a build now, or about to be.
            Ok(false) | Err(JenkinsError::NotFound { .. }) => {
                match jenkins.queue_item(queue_id).await.map_err(Error::Jenkins)? {
                    QueueItem::Left {
                        executable: Some(started),
                        ..
                    } => Some(started.number),
                    QueueItem::Left {
                        cancelled: true, ..
                    } => None,
                    QueueItem::NotFound => {
                        lookup_number(&jenkins, &path, Some(queue_id), &id, &search).await?
                    }
                    // Not named yet: look again in a moment, with the finalizer kept (an
                    // `Ok` from a cleanup removes it, and the build would never be stopped).
                    _ => {
                        return Err(Error::StopPending(format!(
                            "queue item {queue_id} left the Jenkins queue but does not name its \
                             build yet"
                        )));
                    }
                }
            }
            Err(e) => return Err(Error::Jenkins(e)),
        },
        _ => match jenkins
            .find_queue_item_by_parameter(BUILD_ID_PARAMETER, &id)
            .await
            .map_err(Error::Jenkins)?
        {
            Some(queue_id) => match jenkins.cancel_queue_item(queue_id).await {
                Ok(true) => return Ok(Action::await_change()),
                Ok(false) | Err(JenkinsError::NotFound { .. }) => {
                    lookup_number(&jenkins, &path, Some(queue_id), &id, &search).await?
                }
                Err(e) => return Err(Error::Jenkins(e)),
            },
            None => lookup_number(&jenkins, &path, None, &id, &search).await?,
        },
    };
    if let Some(number) = number {
        match jenkins.stop_build(&path, number).await {
            Ok(()) | Err(JenkinsError::NotFound { .. }) => {
                info!(build_number = number, job = %path, "stopped the build")
            }
            Err(e) => return Err(Error::Jenkins(e)),
        }
    }
    Ok(Action::await_change())
}

/// The build of a queue item or of the id parameter, if Jenkins has one.
async fn lookup_number(
    jenkins: &JenkinsClient,
    path: &JobPath,
    queue_id: Option<u64>,
    id: &str,
    search: &BuildSearch,
) -> Result<Option<u64>, Error> {
    if let Some(queue_id) = queue_id {
        match jenkins.find_build_by_queue_id(path, queue_id, search).await {
            Ok(Some(number)) => return Ok(Some(number)),
            Ok(None) => {}
            Err(JenkinsError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::Jenkins(e)),
        }
    }
    match jenkins
        .find_build_by_parameter(path, BUILD_ID_PARAMETER, id, search)
        .await
    {
        Ok(found) => Ok(found.map(|b| b.number)),
        Err(JenkinsError::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::Jenkins(e)),
    }
}

/// The value of the id parameter: the resource's uid, unique to it forever.
fn build_id(build: &JenkinsBuild) -> String {
    build.uid().unwrap_or_default()
}

/// How far back the Jenkins clock may lag the API server's before a search for this resource's
/// build stops too early.
const CLOCK_SKEW_MS: i64 = 60 * 60 * 1000;

/// How far back to look for this resource's build among the job's builds: its build cannot
/// have started before the resource was created (less an hour for clock skew), and at most the
/// newest 1,000 builds are read, 100 per request. A job that ran more than 1,000 builds
/// since then, or whose build discarder deleted the build, hides it: see the README's limits.
fn build_search(build: &JenkinsBuild) -> BuildSearch {
    let created = build
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_millisecond().saturating_sub(CLOCK_SKEW_MS))
        .and_then(|ms| u64::try_from(ms).ok());
    match created {
        Some(ms) => BuildSearch::started_after(ms),
        None => BuildSearch::default(),
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn time_from_millis(ms: u64) -> Option<Time> {
    if ms == 0 {
        return None;
    }
    Timestamp::from_millisecond(i64::try_from(ms).ok()?)
        .ok()
        .map(Time)
}

/// The conditions that say where the build stands.
fn desired_conditions(
    status: &JenkinsBuildStatus,
    detail: &str,
    cannot: Option<&CannotRun>,
) -> Vec<Desired> {
    if let Some(cannot) = cannot {
        return vec![
            Desired::new(READY, false, cannot.reason, cannot.message.clone()),
            Desired::new(SUCCEEDED, false, cannot.reason, cannot.message.clone()),
            Desired::new(RECONCILING, false, cannot.reason, "waiting for a change"),
            Desired::new(STALLED, true, cannot.reason, cannot.message.clone()),
        ];
    }
    let number = status
        .build_number
        .map(|n| format!("build #{n}"))
        .unwrap_or_else(|| "the build".into());
    let job = status.jenkins_job.clone().unwrap_or_default();
    if status.completion_time.is_some() {
        let phase = status.phase.unwrap_or(BuildPhase::Failed);
        let reason = phase_name(phase);
        let message = status.message.clone().unwrap_or_else(|| {
            let result = status.result.as_deref().unwrap_or("no result");
            format!("{number} of {job} finished: {result}")
        });
        return vec![
            Desired::new(READY, true, reason, message.clone()),
            Desired::new(SUCCEEDED, phase == BuildPhase::Succeeded, reason, message),
            Desired::new(RECONCILING, false, reason, "finished"),
            Desired::new(STALLED, false, reason, "finished"),
        ];
    }
    let phase = status.phase.unwrap_or(BuildPhase::Queued);
    let reason = phase_name(phase);
    vec![
        Desired::new(READY, false, reason, detail),
        Desired::new(RECONCILING, true, reason, detail),
        Desired::new(STALLED, false, reason, "progressing"),
    ]
}

fn phase_name(phase: BuildPhase) -> &'static str {
    match phase {
        BuildPhase::Queued => "Queued",
        BuildPhase::Running => "Running",
        BuildPhase::Succeeded => "Succeeded",
        BuildPhase::Failed => "Failed",
        BuildPhase::Aborted => "Aborted",
    }
}

/// Writes `new` (with its conditions) if it says something `old` does not, and announces a
/// new phase with an Event. `precondition` makes the write a compare-and-swap on that
/// resource version. Returns whether anything was written.
async fn write_status(
    build: &JenkinsBuild,
    ctx: &Context,
    old: &JenkinsBuildStatus,
    mut new: JenkinsBuildStatus,
    detail: &str,
    cannot: Option<&CannotRun>,
    precondition: Option<String>,
) -> Result<bool, Error> {
    let generation = build.metadata.generation;
    let desired = desired_conditions(&new, detail, cannot);
    new.conditions = conditions::merge(&old.conditions, &desired, generation);
    let mut comparable = new.clone();
    comparable.conditions = old.conditions.clone();
    if comparable == *old && conditions::same(&old.conditions, &new.conditions) {
        return Ok(false);
    }

    let name = build.name_any();
    let mut patch = json!({ "status": merge_patch(old, &new) });
    if let Some(version) = precondition {
        patch["metadata"] = json!({ "resourceVersion": version });
    }
    builds_api(build, ctx)
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::kube(
            "update the status of",
            format!("JenkinsBuild {name}"),
        ))?;

    // Announce a new phase, and a new reason for not running.
    let announce = old.phase != new.phase
        || cannot.is_some_and(|c| {
            conditions::find(&old.conditions, STALLED)
                .is_none_or(|s| s.status != "True" || s.reason != c.reason)
        });
    if announce && let Some(phase) = new.phase {
        let (type_, reason, note) = match (cannot, phase) {
            (Some(c), _) => (EventType::Warning, c.reason, c.message.clone()),
            (None, BuildPhase::Failed | BuildPhase::Aborted) => (
                EventType::Warning,
                phase_name(phase),
                condition_message(&new, READY),
            ),
            (None, _) => (
                EventType::Normal,
                phase_name(phase),
                condition_message(&new, READY),
            ),
        };
        publish(ctx, build, type_, reason, &note).await;
    }
    Ok(true)
}

fn condition_message(status: &JenkinsBuildStatus, type_: &str) -> String {
    conditions::find(&status.conditions, type_)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// A JSON merge patch from `old` to `new`: fields `new` no longer has are set to null.
fn merge_patch(old: &JenkinsBuildStatus, new: &JenkinsBuildStatus) -> Value {
    let mut patch = serde_json::to_value(new).unwrap_or_else(|_| json!({}));
    let old = serde_json::to_value(old).unwrap_or_else(|_| json!({}));
    if let (Some(patch), Some(old)) = (patch.as_object_mut(), old.as_object()) {
        for key in old.keys() {
            if !patch.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
    }
    patch
}

fn event(type_: EventType, reason: &str, note: &str) -> KubeEvent {
    KubeEvent {
        type_,
        reason: reason.into(),
        note: Some(conditions::truncate(note, EVENT_NOTE_LIMIT)),
        action: "Reconcile".into(),
        secondary: None,
    }
}

/// Publishes an Event about the build; a failure to publish is logged, never fatal.
async fn publish(ctx: &Context, build: &JenkinsBuild, type_: EventType, reason: &str, note: &str) {
    let event = event(type_, reason, note);
    if let Err(e) = ctx.recorder.publish(&event, &build.object_ref(&())).await {
        debug!(error = %e, "failed to publish an event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage_follows_what_the_status_recorded() {
        let mut status = JenkinsBuildStatus::default();
        assert_eq!(stage(&status), Stage::NotTriggered);
        status.build_id = Some("uid".into());
        assert_eq!(stage(&status), Stage::AnswerLost);
        status.queue_id = Some(7);
        assert_eq!(stage(&status), Stage::Queued(7));
        status.build_number = Some(3);
        assert_eq!(stage(&status), Stage::Running(3));
        status.completion_time = Some(Time(Timestamp::now()));
        assert_eq!(stage(&status), Stage::Finished);
    }

    #[test]
    fn a_waiting_item_keeps_its_message_until_it_waits_another_way() {
        let job = JobPath::parse("team/web").expect("a path");
        let blocked = |why: &str, previous: Option<&str>| {
            waiting_detail(7, &job, Waiting::Blocked, Some(why.into()), previous)
        };
        let first = blocked("Build #3 is already in progress (ETA: 3 min 2 sec)", None);
        assert_eq!(
            first,
            "queue item 7 of team/web is blocked: Build #3 is already in progress"
        );
        let later = blocked(
            "Build #3 is already in progress (ETA: 2 min 58 sec)",
            Some(&first),
        );
        assert_eq!(later, first, "a new ETA is not a new message");
        let other_language = blocked("Build #3 läuft bereits (Restzeit: 3 Min.)", None);
        assert!(other_language.ends_with("läuft bereits (Restzeit: 3 Min.)"));
        assert_eq!(
            blocked(
                "Build #3 läuft bereits (Restzeit: 2 Min.)",
                Some(&other_language)
            ),
            other_language,
            "whatever the language, the message is written once per way of waiting"
        );

        let quiet = waiting_detail(
            7,
            &job,
            Waiting::QuietPeriod,
            Some("In the quiet period. Expires in 4.9 sec".into()),
            Some(&first),
        );
        assert_eq!(quiet, "queue item 7 of team/web is in its quiet period");
        let executor = waiting_detail(
            7,
            &job,
            Waiting::ForExecutor,
            Some("Waiting for next available executor on ‘maven-x1z’".into()),
            Some(&quiet),
        );
        assert_eq!(
            executor,
            "queue item 7 of team/web waits for an executor: Waiting for next available \
             executor on ‘maven-x1z’"
        );
        let next_pod = waiting_detail(
            7,
            &job,
            Waiting::ForExecutor,
            Some("Waiting for next available executor on ‘maven-q8w’".into()),
            Some(&executor),
        );
        assert_eq!(next_pod, executor);
    }

    #[test]
    fn unstable_counts_as_succeeded_and_not_built_as_failed() {
        assert_eq!(phase_of(&BuildResult::Success), BuildPhase::Succeeded);
        assert_eq!(phase_of(&BuildResult::Unstable), BuildPhase::Succeeded);
        assert_eq!(phase_of(&BuildResult::Failure), BuildPhase::Failed);
        assert_eq!(phase_of(&BuildResult::NotBuilt), BuildPhase::Failed);
        assert_eq!(phase_of(&BuildResult::Aborted), BuildPhase::Aborted);
        assert_eq!(
            phase_of(&BuildResult::Other("WEIRD".into())),
            BuildPhase::Failed
        );
    }

    #[test]
    fn a_merge_patch_clears_what_the_new_status_dropped() {
        let old = JenkinsBuildStatus {
            build_id: Some("uid".into()),
            phase: Some(BuildPhase::Queued),
            ..JenkinsBuildStatus::default()
        };
        let new = JenkinsBuildStatus {
            phase: Some(BuildPhase::Failed),
            message: Some("bad parameter".into()),
            ..JenkinsBuildStatus::default()
        };
        assert_eq!(
            merge_patch(&old, &new),
            json!({"buildId": null, "phase": "Failed", "message": "bad parameter"})
        );
    }

    #[test]
    fn a_finished_build_is_ready_whatever_its_result() {
        let status = JenkinsBuildStatus {
            phase: Some(BuildPhase::Failed),
            build_number: Some(4),
            jenkins_job: Some("team/web".into()),
            result: Some("FAILURE".into()),
            completion_time: Some(Time(Timestamp::now())),
            ..JenkinsBuildStatus::default()
        };
        let desired = desired_conditions(&status, "", None);
        let ready = desired.iter().find(|d| d.type_ == READY).expect("Ready");
        assert!(ready.status);
        assert_eq!(ready.message, "build #4 of team/web finished: FAILURE");
        let succeeded = desired
            .iter()
            .find(|d| d.type_ == SUCCEEDED)
            .expect("Succeeded");
        assert!(!succeeded.status);
        assert_eq!(succeeded.reason, "Failed");
    }
}

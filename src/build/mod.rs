//! JenkinsBuild: one run of a JenkinsJob, triggered exactly once and followed from the Jenkins
//! queue to its result.
//!
//! - [`resolve`] finds the Jenkins job and checks the parameters, reading Kubernetes only;
//! - [`reconcile`] triggers, recovers a trigger whose answer was lost, follows the queue item
//!   and the build, stops it on deletion and deletes finished builds after their ttl;
//! - [`log_tail`] keeps the bounded console tail; [`poll`] spaces the polls out.
//!
//! Exactly once: before the trigger the status records a marker (`buildId`, the resource's
//! uid, which the build carries as the parameter `JENKINS_OPERATOR_BUILD_ID`) with a
//! compare-and-swap on the resource version; right after it, the queue item id. A reconcile
//! that finds the marker without a queue id looks for the item in the queue, then for the
//! build among the job's builds, by that parameter, and triggers only when neither exists.
//! The builds are paged newest first from `allBuilds` (Jenkins' `builds` stops at 100), back to
//! an hour before the resource was created and at most 1,000 builds.
//!
//! Finding nothing proves nothing while a trigger may still be on its way (another replica's,
//! during a leader-lease hand-over, or one Jenkins received and has not queued yet): each
//! trigger is a numbered attempt (`triggerAttempt`, written with the marker), and [`fence`]
//! decides when a replica that finds nothing may trigger again. A replica that sent an
//! attempt and got Jenkins' answer triggers again at once; any other waits until no request of
//! that attempt can still land.

pub mod fence;
pub mod log_tail;
pub mod poll;
pub mod reconcile;
pub mod resolve;

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::controller::{Controller, Error as ControllerError};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tracing::{debug, info};

use crate::api::{JenkinsBuild, JenkinsJob};
use crate::jenkins::JenkinsError;
use crate::operator::context::Context;
use crate::operator::jenkins_clients::AccessError;

/// Finalizer that stops a running build when its JenkinsBuild is deleted.
pub const FINALIZER: &str = "jenkins.ci/stop-build";

/// Why a reconcile of a JenkinsBuild failed. Each variant names the operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to {action} {object}: {source}")]
    Kube {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },

    #[error("{0}")]
    Jenkins(#[source] JenkinsError),

    #[error("failed to reach Jenkins: {0}")]
    Access(#[source] AccessError),

    #[error("failed to manage the finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    /// The build to stop is not known yet (its queue item left but does not name the build).
    /// An error, not a requeue: a cleanup that returns `Ok` removes the finalizer at once.
    #[error("failed to stop the build yet: {0}; retrying")]
    StopPending(String),
}

impl Error {
    /// A short PascalCase reason for Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApiError",
            Error::Jenkins(_) => "JenkinsError",
            Error::Access(_) => "JenkinsAccess",
            Error::StopPending(_) => "StopPending",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.reason(),
                _ => "FinalizerError",
            },
        }
    }

    /// Maps a failed Kubernetes call to an error naming it.
    pub(crate) fn kube(
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
}

/// Runs the JenkinsBuild controller until `shutdown` resolves.
///
/// Besides the builds, it watches JenkinsJobs: a build that could not start (its JenkinsJob
/// missing, disabled, or without the parameter it names) is looked at again as soon as the
/// JenkinsJob changes. Builds that already reached Jenkins ignore those events.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let controller = Controller::new(
        Api::<JenkinsBuild>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(ctx.settings.controller_config());
    let builds = controller.store();
    info!("starting the JenkinsBuild controller");
    controller
        .watches(
            Api::<JenkinsJob>::all(client),
            watcher::Config::default(),
            move |job: JenkinsJob| {
                let namespace = job.namespace();
                let name = job.name_any();
                builds
                    .state()
                    .into_iter()
                    .filter(|b| b.namespace() == namespace && b.spec.job == name)
                    .filter(|b| b.status.as_ref().is_none_or(|s| s.build_id.is_none()))
                    .map(|b| ObjectRef::from_obj(b.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                Err(ControllerError::ObjectNotFound(object)) => debug!(
                    namespace = ?object.namespace,
                    build = %object.name,
                    "the build is gone; nothing to reconcile"
                ),
                // The error policy has logged it, with a Warning event.
                Err(ControllerError::ReconcilerFailed(_, object)) => debug!(
                    namespace = ?object.namespace,
                    build = %object.name,
                    "reconcile failed; retry scheduled"
                ),
                Err(error) => debug!(error = %error, "controller event"),
            }
        })
        .await;
}

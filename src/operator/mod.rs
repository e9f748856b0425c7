//! The operator runtime: controllers wired to their watches, run until shutdown.

pub mod context;
pub mod health;
pub mod jenkins_clients;
pub mod leader;
pub mod metrics;

use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{PredicateConfig, WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::api::{JenkinsCluster, JenkinsJob, conditions};
use crate::build;
use crate::cluster::labels::{CLUSTER_LABEL, MANAGED_BY};
use crate::cluster::reconcile::{error_policy, reconcile};
use crate::job::index::NameIndex;
use crate::job::reconcile as job_reconcile;
use context::{Context, Settings};
use health::Health;
use jenkins_clients::{ClientSettings, JenkinsClients};
use leader::LeaderConfig;
use metrics::Metrics;
use url::Url;

/// Why the operator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the CustomResourceDefinition {0} is not installed: apply crds/ first \
         (kubectl apply --server-side -f crds/)"
    )]
    CrdMissing(String),

    #[error(
        "the CustomResourceDefinition {name} does not serve version {version}: apply the crds/ \
         of this release (kubectl apply --server-side -f crds/)"
    )]
    CrdVersion { name: String, version: String },

    #[error("failed to check the CustomResourceDefinitions: {0}")]
    CrdCheck(#[source] kube::Error),

    #[error("failed to listen on {0}: {1}")]
    Http(SocketAddr, #[source] std::io::Error),
}

/// Checks that the CRDs the controllers need are installed and serve our version.
pub async fn check_crds(client: &Client) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crate::api::crds() {
        let name = crd.name_any();
        let Some(live) = api.get_opt(&name).await.map_err(Error::CrdCheck)? else {
            return Err(Error::CrdMissing(name));
        };
        for version in &crd.spec.versions {
            let served = live
                .spec
                .versions
                .iter()
                .any(|v| v.name == version.name && v.served);
            if !served {
                return Err(Error::CrdVersion {
                    name,
                    version: version.name.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Maps a child object back to its JenkinsCluster through the cluster label. Children of a
/// cluster-scoped owner must map to a reference without a namespace (see KUBE_NOTES).
fn owning_cluster<K: Resource>(child: K) -> Option<ObjectRef<JenkinsCluster>> {
    child
        .labels()
        .get(CLUSTER_LABEL)
        .map(|name| ObjectRef::new(name))
}

/// How `run` behaves.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Reconciler timings.
    pub settings: Settings,
    /// Address of the `/livez`, `/readyz` and `/metrics` endpoint; none to serve nothing.
    pub http_addr: Option<SocketAddr>,
    /// Leader election; none to reconcile right away (local runs, tests).
    pub leader: Option<LeaderConfig>,
    /// How long in-flight reconciles may run after shutdown was requested.
    pub shutdown_grace: Duration,
    /// JenkinsCluster name to the URL the operator uses for its Jenkins, instead of the
    /// in-cluster Service URL (an operator running outside the cluster; tests).
    pub jenkins_urls: BTreeMap<String, Url>,
    /// Timeouts and retries of requests to Jenkins.
    pub jenkins_client: ClientSettings,
}

/// Runs the controllers until `shutdown` resolves. With leader election, this replica waits as
/// a standby until it holds the lease, reconciles while it holds it, and goes back to standby
/// when it loses it. On shutdown, in-flight reconciles get `shutdown_grace` to finish and the
/// lease is released.
pub async fn run(
    client: Client,
    options: RunOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    check_crds(&client).await?;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let jenkins = JenkinsClients::new(options.jenkins_urls.clone(), options.jenkins_client.clone())
        .with_observer(metrics.clone());
    let ctx = Arc::new(Context::new(
        client.clone(),
        options.settings.clone(),
        metrics.clone(),
        jenkins,
    ));

    // One signal, many listeners. Readiness drops at once, so that probes see the replica
    // going away while it finishes its work.
    let (stop_tx, stop) = watch::channel(false);
    let stopping = health.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.set_stopping();
        let _ = stop_tx.send(true);
    });

    // The endpoint outlives the controllers: /readyz answers 503 and /metrics stays readable
    // until `run` returns.
    let (finished_tx, finished) = watch::channel(false);
    if let Some(addr) = options.http_addr {
        let listener = health::bind(addr).await.map_err(|e| Error::Http(addr, e))?;
        info!(address = %addr, "serving /livez, /readyz and /metrics");
        let (health, metrics) = (health.clone(), metrics.clone());
        tokio::spawn(async move {
            if let Err(e) = health::serve(listener, health, metrics, stopped(finished)).await {
                warn!(error = %e, "the health endpoint failed");
            }
        });
    }

    loop {
        // Standby: healthy and ready, but not reconciling.
        let mut leadership = None;
        if let Some(config) = &options.leader {
            metrics.leader.set(0);
            health.set_ready(true);
            info!(lease = %config.lease_name, identity = %config.identity,
                "waiting for the leader lease");
            tokio::select! {
                acquired = leader::acquire(client.clone(), config) => match acquired {
                    Ok(held) => leadership = Some(held),
                    Err(e) => {
                        warn!(error = %e, "failed to take part in leader election; retrying");
                        tokio::time::sleep(config.grace).await;
                        continue;
                    }
                },
                _ = stopped(stop.clone()) => break,
            }
            info!("became the leader");
        }
        metrics.leader.set(1);
        health.set_ready(false);

        let lost = async {
            match leadership.as_mut() {
                Some(held) => held.lost().await,
                None => std::future::pending().await,
            }
        };
        let outcome =
            run_controllers(ctx.clone(), health.clone(), stop.clone(), lost, &options).await;
        metrics.leader.set(0);
        if let Some(held) = leadership {
            held.release().await;
        }
        match outcome {
            Stopped::Shutdown => break,
            Stopped::LostLease => warn!("lost the leader lease; stopped reconciling"),
        }
    }
    health.set_stopping();
    let _ = finished_tx.send(true);
    info!("the operator stopped");
    Ok(())
}

/// What the JenkinsJobs of a cluster depend on: its spec (generation), whether it is Ready,
/// and whether it is being deleted. Other changes of the cluster (its status details, and a
/// relist of the cluster watch that changed nothing) do not reconcile every one of its jobs.
fn what_jobs_see(cluster: &JenkinsCluster) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let ready = cluster
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, conditions::READY))
        .map(|c| c.status.clone());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        cluster.metadata.generation,
        ready,
        cluster.metadata.deletion_timestamp.is_some(),
    )
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// Drops what the controllers never read from a cached object: its managedFields (often the
/// largest part of a small object) and kubectl's copy of the last applied configuration.
/// Thousands of JenkinsJobs are kept in memory; this keeps each to what it says.
fn slim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// The objects to reconcile from a reflected watch, as `applied_objects` gives them, except that
/// those of a relist come out once it is done. The reflector's store swaps a relist in at its
/// end (`InitDone`) and the controller reads the object to reconcile from the store: an object
/// dispatched while a relist of several pages is still being read would be missing there (one
/// created while the watch was down: never reconciled, as nothing requeues it) or found as it
/// was before (one changed meanwhile: reconciled with its old spec). Holding the relisted
/// objects costs what the reflector's own buffer does, for the length of a relist.
fn applied_after_relists<K, S>(events: S) -> impl Stream<Item = Result<K, watcher::Error>>
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    events
        .scan(Vec::new(), |held, event| {
            let out: Vec<Result<K, watcher::Error>> = match event {
                Ok(watcher::Event::Apply(object)) => vec![Ok(object)],
                Ok(watcher::Event::Delete(_)) => Vec::new(),
                Ok(watcher::Event::Init) => {
                    held.clear();
                    Vec::new()
                }
                Ok(watcher::Event::InitApply(object)) => {
                    held.push(object);
                    Vec::new()
                }
                Ok(watcher::Event::InitDone) => std::mem::take(held).into_iter().map(Ok).collect(),
                Err(error) => vec![Err(error)],
            };
            futures::future::ready(Some(futures::stream::iter(out)))
        })
        .flatten()
}

/// Why the controllers stopped.
enum Stopped {
    Shutdown,
    LostLease,
}

/// Resolves once `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The JenkinsJob controller: every JenkinsJob in every namespace, and each JenkinsCluster
/// mapped to the JenkinsJobs that target it (they wait for it to exist and to be Ready).
///
/// Only changes of a JenkinsJob's generation (its spec, or its deletion) start a reconcile:
/// the status writes of the reconciler itself do not, nor do label, annotation or finalizer
/// edits (the reconciler adds its finalizer and goes on in the same reconcile; see
/// `job::reconcile::with_finalizer`). The watch also feeds the index of the Jenkins names each
/// JenkinsJob produces, and the JenkinsClusters are cached for the reconciler.
fn job_controller(
    ctx: Arc<Context>,
    stop: &watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + use<> {
    let client = ctx.client.clone();
    let names = Arc::new(NameIndex::default());
    let observer = names.clone();
    let (jobs, job_writer) = reflector::store();
    let job_stream = watcher(
        Api::<JenkinsJob>::all(client.clone()),
        watcher::Config::default(),
    )
    .modify(slim)
    .reflect(job_writer)
    .inspect_ok(move |event| observer.observe(event));
    let job_stream = applied_after_relists(job_stream)
        .predicate_filter(predicates::generation, PredicateConfig::default());

    // The reconciler reads clusters from this cache once it holds the first full list
    // (a flag rather than `Store::wait_until_ready`, which wakes only one of several waiters).
    let (clusters, cluster_writer) = reflector::store();
    let (listed_tx, listed) = watch::channel(false);
    let cluster_stream = watcher(
        Api::<JenkinsCluster>::all(client),
        watcher::Config::default(),
    )
    .modify(slim)
    .reflect(cluster_writer)
    .inspect_ok(move |event| {
        if matches!(event, watcher::Event::InitDone) {
            listed_tx.send_replace(true);
        }
    })
    .touched_objects()
    .predicate_filter(what_jobs_see, PredicateConfig::default());

    let controller = Controller::for_stream(job_stream, jobs.clone())
        .with_config(ctx.settings.controller_config());
    let targets = jobs.clone();
    let jctx = Arc::new(job_reconcile::JobContext::new(
        ctx, jobs, clusters, listed, names,
    ));
    info!("starting the JenkinsJob controller");
    controller
        .watches_stream(cluster_stream, move |cluster: JenkinsCluster| {
            let name = cluster.name_any();
            targets
                .state_filter(|job| job.spec.cluster == name)
                .into_iter()
                .map(|job| ObjectRef::from_obj(job.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(job_reconcile::reconcile, job_reconcile::error_policy, jctx)
        .for_each(|result| async move {
            use kube::runtime::controller::Error as ControllerError;
            match result {
                Ok(_) => {}
                Err(ControllerError::ObjectNotFound(object)) => debug!(
                    job = %object.name,
                    "the JenkinsJob is gone; nothing to reconcile"
                ),
                Err(ControllerError::ReconcilerFailed(_, object)) => debug!(
                    job = %object.name,
                    "reconcile failed; retry scheduled"
                ),
                Err(error) => debug!(error = %error, "controller event"),
            }
        })
}

/// Runs the controllers until shutdown (graceful, bounded) or until `lost` (at once).
async fn run_controllers(
    ctx: Arc<Context>,
    health: Arc<Health>,
    stop: watch::Receiver<bool>,
    lost: impl std::future::Future<Output = ()>,
    options: &RunOptions,
) -> Stopped {
    let client = ctx.client.clone();
    let children =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    let labelled = watcher::Config::default().labels(CLUSTER_LABEL);
    let graceful = stopped(stop.clone());
    let builds = build::run(ctx.clone(), stopped(stop.clone()));

    // Ready once the cluster cache holds its first full list. The stream tells: a second
    // `Store::wait_until_ready` next to the controller's own would not do, as kube-runtime 5
    // wakes only the last of several tasks waiting on it, so one of them would hang.
    let (reader, writer) = reflector::store();
    let ready_health = health.clone();
    let clusters = watcher(
        Api::<JenkinsCluster>::all(client.clone()),
        watcher::Config::default(),
    )
    .modify(slim)
    .reflect(writer)
    .inspect_ok(move |event| {
        if matches!(event, watcher::Event::InitDone) {
            ready_health.set_ready(true);
        }
    })
    .applied_objects();
    let controller =
        Controller::for_stream(clusters, reader).with_config(ctx.settings.controller_config());

    info!("starting the JenkinsCluster controller");
    let controllers = controller
        .watches(
            Api::<Deployment>::all(client.clone()),
            children.clone(),
            owning_cluster,
        )
        .watches(
            Api::<Service>::all(client.clone()),
            children.clone(),
            owning_cluster,
        )
        .watches(
            Api::<Ingress>::all(client.clone()),
            children.clone(),
            owning_cluster,
        )
        // Ours and the user's JCasC ConfigMaps that carry the cluster label.
        .watches(
            Api::<ConfigMap>::all(client.clone()),
            labelled,
            owning_cluster,
        )
        .watches(
            Api::<ServiceAccount>::all(client.clone()),
            children.clone(),
            owning_cluster,
        )
        .watches(
            Api::<Role>::all(client.clone()),
            children.clone(),
            owning_cluster,
        )
        .watches(
            Api::<RoleBinding>::all(client.clone()),
            children.clone(),
            owning_cluster,
        )
        .watches(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            children,
            owning_cluster,
        )
        .graceful_shutdown_on(graceful)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            use kube::runtime::controller::Error as ControllerError;
            match result {
                Ok(_) => {}
                // After a deletion, events of the children still name the cluster: expected.
                Err(ControllerError::ObjectNotFound(object)) => debug!(
                    kind = %object.dyntype.kind,
                    cluster = %object.name,
                    "the cluster is gone; nothing to reconcile"
                ),
                // The error policy has logged it, with a Warning event.
                Err(ControllerError::ReconcilerFailed(_, object)) => debug!(
                    kind = %object.dyntype.kind,
                    cluster = %object.name,
                    "reconcile failed; retry scheduled"
                ),
                // Watch and scheduling errors, which the controller retries by itself.
                Err(error) => debug!(error = %error, "controller event"),
            }
        });

    let controllers =
        futures::future::join3(controllers, job_controller(ctx.clone(), &stop), builds);

    // After a shutdown request the controllers stop taking work; bound how long in-flight
    // reconciles may take.
    let bounded = async {
        tokio::select! {
            _ = controllers => {}
            _ = async {
                stopped(stop.clone()).await;
                tokio::time::sleep(options.shutdown_grace).await;
            } => warn!("in-flight reconciles did not finish in time; abandoning them"),
        }
    };
    let outcome = tokio::select! {
        _ = bounded => Stopped::Shutdown,
        _ = lost => Stopped::LostLease,
    };
    health.set_ready(false);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;
    use kube::runtime::watcher::Event;

    fn map(name: &str) -> ConfigMap {
        let mut map = ConfigMap::default();
        map.metadata.name = Some(name.into());
        map.metadata.namespace = Some("ci".into());
        map
    }

    #[tokio::test]
    async fn objects_of_a_relist_come_out_once_the_store_holds_them() {
        let (store, writer) = reflector::store::<ConfigMap>();
        let events = stream::iter([
            Event::Apply(map("before")),
            Event::Init,
            Event::InitApply(map("a")),
            Event::InitApply(map("b")),
            Event::InitDone,
            Event::Apply(map("c")),
            Event::Delete(map("c")),
        ])
        .map(Ok);
        let mut objects = std::pin::pin!(applied_after_relists(events.reflect(writer)));
        let mut names = Vec::new();
        while let Some(object) = objects.next().await {
            let object = object.expect("no watch error");
            // The controller reads the object to reconcile from the store.
            assert!(
                store.get(&ObjectRef::from_obj(&object)).is_some(),
                "{} is not in the store yet",
                object.name_any()
            );
            names.push(object.name_any());
        }
        assert_eq!(names, ["before", "a", "b", "c"]);
    }

    #[test]
    fn jobs_see_a_cluster_change_only_in_its_spec_readiness_or_deletion() {
        let cluster = |generation: i64, ready: &str, message: &str| {
            crate::cluster::test_cluster(&format!(
                "metadata: {{name: ci, generation: {generation}}}\nspec: {{}}\n\
                 status:\n  conditions:\n  - {{type: Ready, status: \"{ready}\", \
                 reason: R, message: \"{message}\", \
                 lastTransitionTime: \"2026-01-01T00:00:00Z\"}}\n"
            ))
        };
        let base = what_jobs_see(&cluster(1, "True", "up"));
        // Status details alone: the jobs are not bothered.
        assert_eq!(base, what_jobs_see(&cluster(1, "True", "up, version 2")));
        // The spec, readiness and deletion reach them.
        assert_ne!(base, what_jobs_see(&cluster(2, "True", "up")));
        assert_ne!(base, what_jobs_see(&cluster(1, "False", "up")));
        let mut deleting = cluster(1, "True", "up");
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_ne!(base, what_jobs_see(&deleting));
    }
}

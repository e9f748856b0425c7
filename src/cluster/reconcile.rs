//! The JenkinsCluster reconciler: validate and build the children, apply what changed, prune
//! what the spec no longer produces, and report the truth in the status.
//!
//! A converged cluster reconciles with reads only: every applied child carries a hash of what
//! the operator sent, and a child whose hash matches is not written again.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use super::children::{ApplyPolicy, Child};
use super::labels::CLUSTER_LABEL;
use super::{
    FIELD_MANAGER, GeneratedSecrets, admin_secret_name, cluster_namespace, desired,
    home_claim_name, jenkins_url,
};
use crate::api::cluster::{DeletionPolicy, JenkinsCluster, JenkinsClusterStatus};
use crate::api::conditions::{self, Desired, READY, RECONCILING, STALLED};
use crate::operator::context::Context;

/// Finalizer that lets the operator delete the volume and namespace when asked to.
pub const FINALIZER: &str = "jenkins.ci/cleanup";

/// Annotation holding the hash of what the operator last applied to a child.
pub const APPLIED_HASH: &str = "jenkins.ci/applied-hash";

/// Annotation on a namespace the operator created (value: the cluster's name). Namespaces
/// without it existed before and are never deleted.
pub const CREATED_BY: &str = "jenkins.ci/created-by";

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

    #[error("failed to encode {object}: {source}")]
    Encode {
        object: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("failed to generate credentials: {0}")]
    Random(#[source] getrandom::Error),

    #[error("failed to manage the finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A short PascalCase reason for Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApiError",
            Error::Encode { .. } => "EncodingError",
            Error::Random(_) => "RandomSourceError",
            Error::Finalizer(inner) => match inner.as_ref() {
                // The finalizer helper wraps what our apply and cleanup returned.
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

/// Reconciles one JenkinsCluster. The controller calls this for every event and resync.
pub async fn reconcile(cluster: Arc<JenkinsCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = cluster.name_any();
    let started = std::time::Instant::now();
    let api: Api<JenkinsCluster> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, cluster, |event| async {
        match event {
            Finalize::Apply(cluster) => apply(&cluster, &ctx).await,
            Finalize::Cleanup(cluster) => cleanup(&cluster, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if result.is_ok() {
        ctx.reset_backoff(&key);
    }
    let reason = result.as_ref().err().map(Error::reason);
    ctx.metrics
        .observe_reconcile("jenkinscluster", started.elapsed(), reason);
    result
}

/// What the controller does after a failed reconcile: a Warning event and a retry after a
/// delay that doubles with every consecutive failure of the same object.
pub fn error_policy(cluster: Arc<JenkinsCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    let name = cluster.name_any();
    let delay = ctx.next_backoff(&name);
    warn!(kind = "JenkinsCluster", name = %name, error = %error, retry_in = ?delay,
        "reconcile failed");
    let event = KubeEvent {
        type_: EventType::Warning,
        reason: error.reason().into(),
        note: Some(conditions::truncate(&error.to_string(), 1024)),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = cluster.object_ref(&());
    let recorder = ctx.recorder.clone();
    tokio::spawn(async move {
        if let Err(e) = recorder.publish(&event, &reference).await {
            debug!(error = %e, "failed to publish an event");
        }
    });
    Action::requeue(delay)
}

/// Brings the children in line with the spec and reports.
async fn apply(cluster: &JenkinsCluster, ctx: &Context) -> Result<Action, Error> {
    let name = cluster.name_any();

    // Validate and build: an invalid spec stalls until the user changes it.
    let secrets = GeneratedSecrets::random().map_err(Error::Random)?;
    let children = match desired(cluster, &secrets) {
        Ok(children) => children,
        Err(invalid) => {
            let message = format!("the spec is invalid: {invalid}");
            let conditions = vec![
                Desired::new(READY, false, "InvalidSpec", message.clone()),
                Desired::new(
                    RECONCILING,
                    false,
                    "InvalidSpec",
                    "waiting for a spec change",
                ),
                Desired::new(STALLED, true, "InvalidSpec", message),
            ];
            report(cluster, ctx, &conditions, None).await?;
            return Ok(Action::await_change());
        }
    };

    // Credentials the user brings must hold what Jenkins needs.
    if let Some(problem) = check_existing_admin_secret(cluster, ctx).await? {
        let conditions = vec![
            Desired::new(READY, false, "AdminSecretInvalid", problem.clone()),
            Desired::new(
                RECONCILING,
                false,
                "AdminSecretInvalid",
                "waiting for the Secret",
            ),
            Desired::new(STALLED, true, "AdminSecretInvalid", problem),
        ];
        report(cluster, ctx, &conditions, None).await?;
        // Secrets are not watched; look again soon.
        return Ok(Action::requeue(ctx.settings.progress_poll));
    }

    // Apply every child whose content changed since the last apply.
    let mut written = Vec::new();
    for child in &children {
        if apply_child(cluster, child, ctx).await? {
            written.push(child.describe());
        }
    }
    if !written.is_empty() {
        info!(kind = "JenkinsCluster", name = %name, objects = ?written, "applied children");
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "Applied",
            &format!("applied {}", written.join(", ")),
        )
        .await;
    }

    // Prune children the spec no longer produces; only a spec change can cause them.
    let generation = cluster.metadata.generation;
    let observed = cluster.status.as_ref().and_then(|s| s.observed_generation);
    if observed != generation {
        prune(cluster, &children, ctx).await?;
    }

    // Report: the master is ready once its Deployment has rolled out.
    let rollout = rollout_state(cluster, ctx).await?;
    let (conditions, action) = match &rollout {
        Rollout::Ready => (
            vec![
                Desired::new(READY, true, "Ready", "Jenkins is running"),
                Desired::new(RECONCILING, false, "Ready", "nothing to do"),
                Desired::new(STALLED, false, "Ready", "nothing to do"),
            ],
            Action::requeue(ctx.settings.resync),
        ),
        Rollout::Progressing(reason, message) => (
            vec![
                Desired::new(READY, false, reason, message.clone()),
                Desired::new(RECONCILING, true, reason, message.clone()),
                Desired::new(STALLED, false, reason, "progressing"),
            ],
            Action::requeue(ctx.settings.progress_poll),
        ),
    };
    report(cluster, ctx, &conditions, Some(&children)).await?;
    Ok(action)
}

/// Writes one child if needed. Returns whether a write happened.
async fn apply_child(
    cluster: &JenkinsCluster,
    child: &Child,
    ctx: &Context,
) -> Result<bool, Error> {
    let name = child.meta().name.clone().unwrap_or_default();
    let api = dynamic_api(ctx, &child.resource, child.meta().namespace.as_deref());
    let live = api
        .get_metadata_opt(&name)
        .await
        .map_err(kube_error("read", child.describe()))?;

    match child.policy {
        ApplyPolicy::CreateOnce => {
            if live.is_some() {
                return Ok(false);
            }
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api.create(&params, &child.object).await {
                Ok(_) => Ok(true),
                // Someone created it between our read and our write: theirs stays.
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(e) => Err(kube_error("create", child.describe())(e)),
            }
        }
        ApplyPolicy::Apply => {
            let mut object = child.object.clone();
            if child.resource.kind == "Namespace" {
                let live_annotations = live.as_ref().map(|l| l.annotations());
                let ours = match live_annotations {
                    None => true,
                    Some(a) => a.get(CREATED_BY) == Some(&cluster.name_any()),
                };
                if ours {
                    object
                        .annotations_mut()
                        .insert(CREATED_BY.into(), cluster.name_any());
                }
            }
            let hash = content_hash(&object).map_err(|source| Error::Encode {
                object: child.describe(),
                source,
            })?;
            let live_hash = live
                .as_ref()
                .and_then(|l| l.annotations().get(APPLIED_HASH).cloned());
            if live_hash.as_deref() == Some(hash.as_str()) {
                return Ok(false);
            }
            object.annotations_mut().insert(APPLIED_HASH.into(), hash);
            let params = PatchParams::apply(FIELD_MANAGER).force();
            api.patch(&name, &params, &Patch::Apply(&object))
                .await
                .map_err(kube_error("apply", child.describe()))?;
            Ok(true)
        }
    }
}

/// A short, stable hash of an object as the operator would send it.
fn content_hash(object: &DynamicObject) -> Result<String, serde_json::Error> {
    let bytes = serde_json::to_vec(object)?;
    let digest = Sha256::digest(&bytes);
    Ok(hex::encode(&digest[..12]))
}

fn dynamic_api(
    ctx: &Context,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, resource),
        None => Api::all_with(ctx.client.clone(), resource),
    }
}

/// Checks the user's admin Secret, when there is one. Returns what is wrong with it.
async fn check_existing_admin_secret(
    cluster: &JenkinsCluster,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let Some(secret_name) = cluster.spec.admin.existing_secret.as_deref() else {
        return Ok(None);
    };
    let namespace = cluster_namespace(cluster);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let object = format!("Secret {namespace}/{secret_name}");
    let Some(secret) = api
        .get_opt(secret_name)
        .await
        .map_err(kube_error("read", &object))?
    else {
        return Ok(Some(format!(
            "spec.admin.existingSecret: {object} does not exist; create it with the keys \
             username and password"
        )));
    };
    let has = |key: &str| {
        secret.data.as_ref().is_some_and(|d| d.contains_key(key))
            || secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(key))
    };
    let missing: Vec<&str> = ["username", "password"]
        .into_iter()
        .filter(|k| !has(k))
        .collect();
    if missing.is_empty() {
        Ok(None)
    } else {
        Ok(Some(format!(
            "spec.admin.existingSecret: {object} lacks the key(s) {}",
            missing.join(", ")
        )))
    }
}

/// Deletes children this cluster created earlier that the spec no longer produces (a removed
/// environment, a moved agent namespace). Volumes, namespaces and Secrets are never pruned.
async fn prune(cluster: &JenkinsCluster, children: &[Child], ctx: &Context) -> Result<(), Error> {
    let wanted: BTreeSet<(String, Option<String>, String)> = children
        .iter()
        .map(|c| {
            (
                c.resource.kind.clone(),
                c.meta().namespace.clone(),
                c.meta().name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let selector = format!("{CLUSTER_LABEL}={}", cluster.name_any());
    let uid = cluster.uid();
    for resource in [
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<Role>(&()),
        ApiResource::erase::<RoleBinding>(&()),
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<Deployment>(&()),
    ] {
        let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
        let list = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(kube_error("list", resource.plural.clone()))?;
        for item in list.items {
            let key = (
                resource.kind.clone(),
                item.metadata.namespace.clone(),
                item.name_any(),
            );
            let owned = item
                .owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref());
            if wanted.contains(&key) || !owned {
                continue;
            }
            let ns = item.metadata.namespace.clone().unwrap_or_default();
            let object = format!("{} {ns}/{}", resource.kind, item.name_any());
            info!(kind = "JenkinsCluster", name = %cluster.name_any(), object = %object,
                "deleting a child the spec no longer produces");
            let api = dynamic_api(ctx, &resource, Some(&ns));
            match api
                .delete(&item.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(kube_error("delete", object)(e)),
            }
        }
    }
    Ok(())
}

/// Where the master's rollout stands.
enum Rollout {
    Ready,
    Progressing(&'static str, String),
}

async fn rollout_state(cluster: &JenkinsCluster, ctx: &Context) -> Result<Rollout, Error> {
    let namespace = cluster_namespace(cluster);
    let name = cluster.name_any();
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let object = format!("Deployment {namespace}/{name}");
    let Some(deployment) = api
        .get_opt(&name)
        .await
        .map_err(kube_error("read", &object))?
    else {
        return Ok(Rollout::Progressing(
            "Creating",
            format!("{object} does not exist yet"),
        ));
    };
    let generation = deployment.metadata.generation.unwrap_or(0);
    let status = deployment.status.unwrap_or_default();
    if status.observed_generation.unwrap_or(0) < generation {
        return Ok(Rollout::Progressing(
            "RollingOut",
            format!("{object}: the change has not been picked up yet"),
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if updated >= 1 && available >= 1 && total == updated {
        Ok(Rollout::Ready)
    } else {
        Ok(Rollout::Progressing(
            "MasterStarting",
            format!(
                "waiting for the Jenkins master to start ({available} available, {updated} \
                 updated of {total} pods)"
            ),
        ))
    }
}

/// Writes the status if it says something new, and announces transitions with Events.
async fn report(
    cluster: &JenkinsCluster,
    ctx: &Context,
    wanted: &[Desired],
    children: Option<&[Child]>,
) -> Result<(), Error> {
    let old = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let conditions = conditions::merge(&old.conditions, wanted, generation);
    let admin_secret = children
        .map(|_| admin_secret_name(cluster))
        .or(old.admin_secret.clone());
    let new = JenkinsClusterStatus {
        conditions,
        observed_generation: generation,
        url: Some(jenkins_url(cluster)),
        version: old.version.clone(),
        admin_secret,
    };
    let unchanged = conditions::same(&old.conditions, &new.conditions)
        && old.observed_generation == new.observed_generation
        && old.url == new.url
        && old.version == new.version
        && old.admin_secret == new.admin_secret;
    if unchanged {
        return Ok(());
    }

    let name = cluster.name_any();
    let api: Api<JenkinsCluster> = Api::all(ctx.client.clone());
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": new })),
    )
    .await
    .map_err(kube_error(
        "update the status of",
        format!("JenkinsCluster {name}"),
    ))?;

    // Announce what changed, once.
    for condition in &new.conditions {
        let before = conditions::find(&old.conditions, &condition.type_);
        let changed =
            before.is_none_or(|b| b.status != condition.status || b.reason != condition.reason);
        let interesting = (condition.type_ == READY)
            || (condition.type_ == STALLED && condition.status == "True");
        if changed && interesting {
            let type_ = if condition.type_ == STALLED {
                EventType::Warning
            } else {
                EventType::Normal
            };
            publish(ctx, cluster, type_, &condition.reason, &condition.message).await;
        }
    }
    Ok(())
}

/// Publishes an Event about the cluster; a failure to publish is logged, never fatal.
async fn publish(
    ctx: &Context,
    cluster: &JenkinsCluster,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = KubeEvent {
        type_,
        reason: reason.into(),
        note: Some(conditions::truncate(note, 1024)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        debug!(error = %e, "failed to publish an event");
    }
}

/// Runs when the JenkinsCluster is deleted, before its owned children are garbage collected:
/// removes the volume and the namespace only where the user asked for it.
async fn cleanup(cluster: &JenkinsCluster, ctx: &Context) -> Result<Action, Error> {
    let name = cluster.name_any();
    let namespace = cluster_namespace(cluster);
    if cluster.spec.persistence.deletion_policy != DeletionPolicy::Delete {
        info!(kind = "JenkinsCluster", name = %name, "keeping JENKINS_HOME (deletionPolicy Retain)");
        return Ok(Action::await_change());
    }

    if cluster.spec.persistence.existing_claim.is_none() {
        let claim = home_claim_name(cluster);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
        match api.delete(&claim, &DeleteParams::background()).await {
            Ok(_) => {
                info!(kind = "JenkinsCluster", name = %name, claim = %claim, "deleted JENKINS_HOME")
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => {
                return Err(kube_error(
                    "delete",
                    format!("PersistentVolumeClaim {namespace}/{claim}"),
                )(e));
            }
        }
    }

    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let live = api
        .get_metadata_opt(&namespace)
        .await
        .map_err(kube_error("read", format!("Namespace {namespace}")))?;
    if let Some(live) = live
        && live.annotations().get(CREATED_BY) == Some(&name)
    {
        match api.delete(&namespace, &DeleteParams::background()).await {
            Ok(_) => {
                info!(kind = "JenkinsCluster", name = %name, namespace = %namespace, "deleted the namespace it created")
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(kube_error("delete", format!("Namespace {namespace}"))(e)),
        }
    }
    Ok(Action::await_change())
}

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
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::{Instrument, debug, info, warn};

use super::casc::configuration_marker;
use super::children::{ApplyPolicy, Child};
use super::jenkins_check::{self, Configuration, Health};
use super::labels::CLUSTER_LABEL;
use super::plugins::pinned_plugins;
use super::secrets::TOKEN_KEY;
use super::{
    FIELD_MANAGER, GeneratedSecrets, admin_secret_name, agent_namespace, casc_reload_secret_name,
    cluster_namespace, desired, home_claim_name, jenkins_url,
};
use crate::api::cluster::{DeletionPolicy, JenkinsCluster, JenkinsClusterStatus};
use crate::api::conditions::{self, Desired, READY, RECONCILING, STALLED};
use crate::operator::context::Context;
use crate::operator::jenkins_clients::AccessError;

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
///
/// Everything logged during a reconcile carries the cluster's kind and name (`cluster`; the
/// JSON log format keeps `name` for the span's own name) and the namespace Jenkins runs in.
#[tracing::instrument(skip_all, fields(
    kind = "JenkinsCluster",
    cluster = %cluster.name_any(),
    namespace = %cluster_namespace(&cluster),
))]
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
#[tracing::instrument(skip_all, fields(
    kind = "JenkinsCluster",
    cluster = %cluster.name_any(),
    namespace = %cluster_namespace(&cluster),
))]
pub fn error_policy(cluster: Arc<JenkinsCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    let name = cluster.name_any();
    let delay = ctx.next_backoff(&name);
    warn!(error = %error, retry_in = ?delay, "reconcile failed; retrying");
    let event = reconcile_event(EventType::Warning, error.reason(), &error.to_string());
    let reference = cluster.object_ref(&());
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

/// Where a cluster stands after a reconcile; becomes its conditions.
enum Verdict {
    /// Converged: Jenkins runs the current spec.
    Ready { version: String },
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

    /// The kstatus conditions that say this.
    fn conditions(&self) -> Vec<Desired> {
        match self {
            Verdict::Ready { version } => vec![
                Desired::new(
                    READY,
                    true,
                    "Ready",
                    format!("Jenkins {version} is running"),
                ),
                Desired::new(RECONCILING, false, "Ready", "nothing to do"),
                Desired::new(STALLED, false, "Ready", "nothing to do"),
            ],
            Verdict::Progressing { reason, message } => vec![
                Desired::new(READY, false, reason, message.clone()),
                Desired::new(RECONCILING, true, reason, message.clone()),
                Desired::new(STALLED, false, reason, "progressing"),
            ],
            Verdict::Stalled { reason, message } => vec![
                Desired::new(READY, false, reason, message.clone()),
                Desired::new(RECONCILING, false, reason, "waiting for a change"),
                Desired::new(STALLED, true, reason, message.clone()),
            ],
        }
    }
}

/// Brings the children in line with the spec, then Jenkins, and reports.
async fn apply(cluster: &JenkinsCluster, ctx: &Context) -> Result<Action, Error> {
    // The installation never moves: a changed namespace would start an empty Jenkins there and
    // strand the old one. The CRD refuses the change; this covers clusters without CEL.
    let namespace = cluster_namespace(cluster);
    if let Some(installed) = cluster.status.as_ref().and_then(|s| s.namespace.as_ref())
        && *installed != namespace
    {
        let message = format!(
            "spec.namespace cannot change: Jenkins is installed in {installed}, the spec names \
             {namespace}; set it back, or create a new JenkinsCluster"
        );
        report(
            cluster,
            ctx,
            &Verdict::stalled("NamespaceChanged", message),
            None,
        )
        .await?;
        return Ok(Action::await_change());
    }

    // The user's JCasC ConfigMaps must exist; their content is part of the configuration.
    // Everything is applied even when one is wrong, so that the namespace exists for the user
    // to create a missing ConfigMap in; the problem is reported once the children are applied.
    let UserCasc {
        digest: user_casc,
        problem: user_casc_problem,
    } = user_casc_digest(cluster, ctx).await?;

    // Validate and build: an invalid spec stalls until the user changes it.
    let secrets = GeneratedSecrets::random().map_err(Error::Random)?;
    let children = match desired(cluster, &secrets, &user_casc) {
        Ok(children) => children,
        Err(invalid) => {
            let verdict =
                Verdict::stalled("InvalidSpec", format!("the spec is invalid: {invalid}"));
            report(cluster, ctx, &verdict, None).await?;
            return Ok(Action::await_change());
        }
    };

    // Prune children the spec no longer produces; only a spec change can cause them. This
    // comes before anything that may stall: a stall reports the new generation, after which
    // this step would never run again for it, leaving a removed environment's rights behind.
    let generation = cluster.metadata.generation;
    let observed = cluster.status.as_ref().and_then(|s| s.observed_generation);
    if observed != generation {
        prune(cluster, &children, ctx).await?;
    }

    // Credentials the user brings must hold what Jenkins needs.
    if let Some(problem) = check_existing_admin_secret(cluster, ctx).await? {
        report(
            cluster,
            ctx,
            &Verdict::stalled("AdminSecretInvalid", problem),
            None,
        )
        .await?;
        // Secrets are not watched; look again soon.
        return Ok(Action::requeue(ctx.settings.progress_poll));
    }

    // Apply every child whose content changed since the last apply.
    let mut written = Vec::new();
    for child in &children {
        match apply_child(cluster, child, ctx).await {
            Ok(true) => written.push(child.describe()),
            Ok(false) => {}
            // Refused for good (an immutable field, a forbidden namespace): retrying alone
            // will not help, so the status says so, and the retries go on with backoff.
            Err(error) if refused(&error) => {
                let verdict = Verdict::stalled("ApplyRejected", error.to_string());
                report(cluster, ctx, &verdict, None).await?;
                return Err(error);
            }
            Err(error) => return Err(error),
        }
    }
    if !written.is_empty() {
        info!(objects = ?written, "applied children");
        let note = format!("applied {}", written.join(", "));
        publish(ctx, cluster, EventType::Normal, "Applied", &note).await;
    }

    // A missing or unusable user JCasC ConfigMap keeps the master from starting or from ever
    // showing the current configuration: say which, and look again soon (user ConfigMaps are
    // watched only when labelled).
    if let Some(problem) = user_casc_problem {
        let verdict = Verdict::stalled("CascConfigMapInvalid", problem);
        report(cluster, ctx, &verdict, Some(&children)).await?;
        return Ok(Action::requeue(ctx.settings.progress_poll));
    }

    // The master must roll out, then answer as the administrator with the current JCasC.
    let verdict = match rollout_state(cluster, ctx).await? {
        Rollout::Progressing(reason, message) => Verdict::progressing(reason, message),
        Rollout::Ready => {
            let marker = configuration_marker(cluster, &user_casc);
            jenkins_verdict(cluster, ctx, &marker).await?
        }
    };
    let action = match &verdict {
        Verdict::Ready { .. } | Verdict::Stalled { .. } => Action::requeue(ctx.settings.resync),
        Verdict::Progressing { .. } => Action::requeue(ctx.settings.progress_poll),
    };
    report(cluster, ctx, &verdict, Some(&children)).await?;
    Ok(action)
}

/// A digest of the user's JCasC ConfigMaps, or what is wrong with them.
async fn user_casc_digest(cluster: &JenkinsCluster, ctx: &Context) -> Result<UserCasc, Error> {
    let names = &cluster.spec.configuration_as_code.config_maps;
    if names.is_empty() {
        return Ok(UserCasc {
            digest: String::new(),
            problem: None,
        });
    }
    let mut problem = None;
    let namespace = cluster_namespace(cluster);
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut hasher = Sha256::new();
    for name in names {
        let object = format!("ConfigMap {namespace}/{name}");
        let Some(config_map) = api
            .get_opt(name)
            .await
            .map_err(kube_error("read", &object))?
        else {
            problem.get_or_insert(format!(
                "spec.configurationAsCode.configMaps: {object} does not exist; create it with \
                 your JCasC YAML (label it jenkins.ci/cluster={} to have changes reloaded at once)",
                cluster.name_any()
            ));
            continue;
        };
        if let Some(key) = sets_system_message(&config_map) {
            problem.get_or_insert(format!(
                "{object}, key {key}, sets jenkins.systemMessage: the operator uses the system \
                 message to tell which configuration Jenkins has loaded; remove it from your \
                 configuration"
            ));
        }
        hasher.update(name.as_bytes());
        for (key, value) in config_map.data.unwrap_or_default() {
            hasher.update([0]);
            hasher.update(key.as_bytes());
            hasher.update([0]);
            hasher.update(value.as_bytes());
        }
    }
    let digest = hex::encode(&hasher.finalize()[..8]);
    Ok(UserCasc { digest, problem })
}

/// What the user's JCasC ConfigMaps hold: a digest of their content, and what is wrong with
/// them, if anything.
struct UserCasc {
    digest: String,
    problem: Option<String>,
}

/// The key of a user JCasC document that sets `jenkins.systemMessage`, if any. Documents that do
/// not parse are left to Jenkins, which reports them when it loads them.
fn sets_system_message(config_map: &ConfigMap) -> Option<String> {
    let data = config_map.data.as_ref()?;
    data.iter()
        .find(|(_, text)| {
            serde_saphyr::from_multiple::<serde_json::Value>(text)
                .unwrap_or_default()
                .iter()
                .any(|doc| doc.pointer("/jenkins/systemMessage").is_some())
        })
        .map(|(key, _)| key.clone())
}

/// Asks Jenkins whether it works and runs the current configuration, reloading JCasC when
/// it does not.
async fn jenkins_verdict(
    cluster: &JenkinsCluster,
    ctx: &Context,
    marker: &str,
) -> Result<Verdict, Error> {
    let name = cluster.name_any();
    let (jenkins, admin) = match ctx.jenkins.client(&ctx.client, cluster).await {
        Ok(access) => access,
        Err(AccessError::ReadSecret { secret, source }) => {
            return Err(Error::Kube {
                action: "read",
                object: format!("Secret {secret}"),
                source,
            });
        }
        Err(error) => return Ok(Verdict::stalled("JenkinsAccess", error.to_string())),
    };
    let pinned = pinned_plugins(cluster);
    let expected: Vec<&str> = pinned.keys().copied().collect();

    let health = jenkins_check::check(&jenkins, &admin, &expected).await;
    let (version, system_message) = match health {
        Health::Up {
            version,
            system_message,
        } => {
            ctx.jenkins_answered(&name);
            (version, system_message)
        }
        Health::Starting => {
            ctx.jenkins_answered(&name);
            return Ok(Verdict::progressing(
                "JenkinsStarting",
                "Jenkins is starting (503)",
            ));
        }
        Health::Unreachable(message) => {
            let silent_for = ctx.jenkins_silent_for(&name);
            if silent_for >= ctx.settings.jenkins_stall_after {
                let message = format!(
                    "Jenkins has not answered for {}s: {message}",
                    silent_for.as_secs()
                );
                return Ok(Verdict::stalled("JenkinsUnreachable", message));
            }
            return Ok(Verdict::progressing("JenkinsUnreachable", message));
        }
        Health::Refused(message) => {
            ctx.jenkins_answered(&name);
            return Ok(Verdict::stalled("AdminCredentialsRefused", message));
        }
        Health::PluginsMissing(missing) => {
            ctx.jenkins_answered(&name);
            let message = format!("plugins not active yet: {}", missing.join(", "));
            return Ok(Verdict::progressing("PluginsLoading", message));
        }
    };

    // JCasC changes are hot-reloaded: no restart.
    let token = match read_reload_token(cluster, ctx).await? {
        Ok(token) => token,
        Err(problem) => return Ok(Verdict::stalled("CascReloadTokenMissing", problem)),
    };
    let outcome = jenkins_check::ensure_configuration(&jenkins, &system_message, marker, &token);
    Ok(match outcome.await {
        Ok(Configuration::Current) => Verdict::Ready { version },
        Ok(Configuration::Reloaded) => {
            info!("reloaded configuration-as-code");
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "ConfigurationReloaded",
                "Jenkins reloaded its configuration-as-code",
            )
            .await;
            Verdict::Ready { version }
        }
        Ok(Configuration::Pending) => Verdict::progressing(
            "ConfigurationPending",
            "Jenkins reloaded older JCasC files; waiting for the kubelet to update the \
             mounted ConfigMaps, then reloading again",
        ),
        Ok(Configuration::Rejected(message)) => Verdict::stalled(
            "ConfigurationRejected",
            format!("Jenkins rejected the configuration-as-code: {message}"),
        ),
        Err(error) if error.is_transient() => {
            Verdict::progressing("JenkinsUnreachable", error.to_string())
        }
        Err(error) => Verdict::stalled("ConfigurationReloadFailed", error.to_string()),
    })
}

/// The JCasC reload token from the cluster's reload Secret, or what is wrong with it.
async fn read_reload_token(
    cluster: &JenkinsCluster,
    ctx: &Context,
) -> Result<Result<String, String>, Error> {
    let namespace = cluster_namespace(cluster);
    let name = casc_reload_secret_name(cluster);
    let object = format!("Secret {namespace}/{name}");
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(secret) = api
        .get_opt(&name)
        .await
        .map_err(kube_error("read", &object))?
    else {
        return Ok(Err(format!("{object} does not exist")));
    };
    let token = secret
        .data
        .and_then(|mut d| d.remove(TOKEN_KEY))
        .map(|b| b.0);
    match token.map(String::from_utf8) {
        Some(Ok(token)) => Ok(Ok(token)),
        _ => Ok(Err(format!("{object} has no UTF-8 key {TOKEN_KEY}"))),
    }
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
                let ours = live
                    .as_ref()
                    .is_none_or(|l| l.annotations().get(CREATED_BY) == Some(&cluster.name_any()));
                // A namespace that existed before, or that another cluster created, is used
                // as it is: two clusters labelling one namespace with their own names would
                // take turns rewriting it forever.
                if !ours {
                    return Ok(false);
                }
                object
                    .annotations_mut()
                    .insert(CREATED_BY.into(), cluster.name_any());
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

/// Whether the API server refused a write for a reason that no retry fixes by itself: invalid
/// (422), forbidden (403) or a bad request (400). Conflicts, throttling and server errors are
/// transient.
fn refused(error: &Error) -> bool {
    matches!(
        error,
        Error::Kube { source: kube::Error::Api(status), .. }
            if matches!(status.code, 400 | 403 | 422)
    )
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
/// environment, a moved agent namespace, a removed `spec.ingress`). Volumes, namespaces and
/// Secrets are never pruned.
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
        ApiResource::erase::<Ingress>(&()),
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
            info!(object = %object, "deleting a child the spec no longer produces");
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
    verdict: &Verdict,
    children: Option<&[Child]>,
) -> Result<(), Error> {
    let old = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let conditions = conditions::merge(&old.conditions, &verdict.conditions(), generation);
    let version = match verdict {
        Verdict::Ready { version } => Some(version.clone()),
        _ => old.version.clone(),
    };
    let admin_secret = children
        .map(|_| admin_secret_name(cluster))
        .or(old.admin_secret.clone());
    let new = JenkinsClusterStatus {
        conditions,
        observed_generation: generation,
        url: Some(jenkins_url(cluster)),
        version,
        namespace: old
            .namespace
            .clone()
            .or_else(|| Some(cluster_namespace(cluster))),
        admin_secret,
    };
    let unchanged = conditions::same(&old.conditions, &new.conditions)
        && old.observed_generation == new.observed_generation
        && old.url == new.url
        && old.version == new.version
        && old.admin_secret == new.admin_secret
        && old.namespace == new.namespace;
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

/// The API server rejects an Event whose note is longer than this (bytes).
pub const EVENT_NOTE_LIMIT: usize = 1024;

/// An Event of the reconciler, its note cut to what the API server accepts.
fn reconcile_event(type_: EventType, reason: &str, note: &str) -> KubeEvent {
    KubeEvent {
        type_,
        reason: reason.into(),
        note: Some(conditions::truncate(note, EVENT_NOTE_LIMIT)),
        action: "Reconcile".into(),
        secondary: None,
    }
}

/// Publishes an Event about the cluster; a failure to publish is logged, never fatal.
async fn publish(
    ctx: &Context,
    cluster: &JenkinsCluster,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = reconcile_event(type_, reason, note);
    if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        debug!(error = %e, "failed to publish an event");
    }
}

/// Removes this cluster's owner reference from the home claim, if it has one.
async fn release_claim(cluster: &JenkinsCluster, ctx: &Context) -> Result<(), Error> {
    let namespace = cluster_namespace(cluster);
    let claim = home_claim_name(cluster);
    let object = format!("PersistentVolumeClaim {namespace}/{claim}");
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(live) = api
        .get_metadata_opt(&claim)
        .await
        .map_err(kube_error("read", &object))?
    else {
        return Ok(());
    };
    let uid = cluster.uid();
    let references = live.owner_references();
    if !references.iter().any(|o| Some(&o.uid) == uid.as_ref()) {
        return Ok(());
    }
    let kept: Vec<_> = references
        .iter()
        .filter(|o| Some(&o.uid) != uid.as_ref())
        .collect();
    // The resourceVersion makes this a compare-and-swap on the list it filtered.
    let patch = json!({
        "metadata": {
            "resourceVersion": live.resource_version(),
            "ownerReferences": kept,
        }
    });
    api.patch(&claim, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube_error("release", &object))?;
    info!(claim = %claim,
        "released JENKINS_HOME from the cluster so that it survives it");
    Ok(())
}

/// Another JenkinsCluster whose master, agents or environments live in `namespace`.
async fn other_cluster_using(
    cluster: &JenkinsCluster,
    namespace: &str,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let api: Api<JenkinsCluster> = Api::all(ctx.client.clone());
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(kube_error("list", "jenkinsclusters"))?;
    let name = cluster.name_any();
    Ok(all
        .items
        .iter()
        .filter(|other| other.name_any() != name)
        .find(|other| {
            cluster_namespace(other) == namespace
                || agent_namespace(other) == namespace
                || other
                    .spec
                    .environments
                    .iter()
                    .any(|e| e.namespace == namespace)
        })
        .map(ResourceExt::name_any))
}

/// Runs when the JenkinsCluster is deleted, before its owned children are garbage collected:
/// removes the volume and the namespace only where the user asked for it.
async fn cleanup(cluster: &JenkinsCluster, ctx: &Context) -> Result<Action, Error> {
    let name = cluster.name_any();
    let namespace = cluster_namespace(cluster);
    if cluster.spec.persistence.deletion_policy != DeletionPolicy::Delete {
        // The claim may still carry the owner reference of an earlier `Delete` that no
        // reconcile has taken back (the policy changed while the operator was down): drop it
        // before the finalizer goes, or garbage collection deletes the data.
        if cluster.spec.persistence.existing_claim.is_none() {
            release_claim(cluster, ctx).await?;
        }
        info!("keeping JENKINS_HOME (deletionPolicy Retain)");
        return Ok(Action::await_change());
    }

    if cluster.spec.persistence.existing_claim.is_none() {
        let claim = home_claim_name(cluster);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
        match api.delete(&claim, &DeleteParams::background()).await {
            Ok(_) => {
                info!(claim = %claim, "deleted JENKINS_HOME")
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
        // An existing claim is the user's data, and it lives in this namespace.
        if let Some(claim) = &cluster.spec.persistence.existing_claim {
            info!(namespace = %namespace, claim = %claim,
                "keeping the namespace it created: it holds the existing claim");
            return Ok(Action::await_change());
        }
        if let Some(other) = other_cluster_using(cluster, &namespace, ctx).await? {
            info!(namespace = %namespace, other = %other,
                "keeping the namespace it created: another JenkinsCluster uses it");
            return Ok(Action::await_change());
        }
        match api.delete(&namespace, &DeleteParams::background()).await {
            Ok(_) => {
                info!(namespace = %namespace, "deleted the namespace it created")
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(kube_error("delete", format!("Namespace {namespace}"))(e)),
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_event_about_a_long_error_keeps_its_note_within_one_kibibyte() {
        // A long object name made of multi-byte characters: the cut must land on a character
        // boundary and still fit.
        let error = Error::Encode {
            object: format!("ConfigMap ci/{}", "é".repeat(2000)),
            source: serde_json::from_str::<u8>("x").expect_err("not a number"),
        };
        let event = reconcile_event(EventType::Warning, error.reason(), &error.to_string());
        let note = event.note.expect("the event has a note");
        assert!(note.len() <= EVENT_NOTE_LIMIT, "{} bytes", note.len());
        assert!(note.starts_with("failed to encode ConfigMap ci/é"));
        assert!(note.ends_with('…'));
        assert_eq!(event.reason, "EncodingError");
        assert_eq!(event.type_, EventType::Warning);
    }

    #[test]
    fn a_short_note_is_kept_whole() {
        let event = reconcile_event(EventType::Normal, "Ready", "Jenkins is running");
        assert_eq!(event.note.as_deref(), Some("Jenkins is running"));
    }
}

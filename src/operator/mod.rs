//! The operator runtime: controllers wired to their watches, run until shutdown.

pub mod context;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::JenkinsCluster;
use crate::cluster::CLUSTER_LABEL;
use crate::cluster::reconcile::{error_policy, reconcile};
use context::{Context, Settings};

/// Why the operator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the CustomResourceDefinition {0} is not installed: apply crds/ first \
         (kubectl apply --server-side -f crds/)"
    )]
    CrdMissing(String),

    #[error(
        "the CustomResourceDefinition {name} does not serve version {version}: apply the crds/ of this release"
    )]
    CrdVersion { name: String, version: String },

    #[error("failed to check the CustomResourceDefinitions: {0}")]
    CrdCheck(#[source] kube::Error),
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

/// Runs the controllers until `shutdown` resolves. In-flight reconciles finish first.
pub async fn run(
    client: Client,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    check_crds(&client).await?;
    let ctx = Arc::new(Context::new(client.clone(), settings));
    let children = watcher::Config::default().labels(crate::cluster::MANAGED_BY_SELECTOR);

    info!("starting the JenkinsCluster controller");
    Controller::new(
        Api::<JenkinsCluster>::all(client.clone()),
        watcher::Config::default(),
    )
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
        Api::<ConfigMap>::all(client.clone()),
        children.clone(),
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
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        if let Err(error) = result {
            // Reconcile errors are logged by the error policy; these are watch and
            // scheduling errors, which the controller retries by itself.
            warn!(error = %error, "controller event");
        }
    })
    .await;
    info!("controllers stopped");
    Ok(())
}

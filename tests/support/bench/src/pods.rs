//! The Jenkins pods of many clusters, driven by watch events.
//!
//! `tests/cluster/jenkins_pod.rs` polls the API server every 25 ms per cluster, which with a
//! hundred clusters would be thousands of requests a second competing with the operator for
//! the same two cores. Here one watch on the labelled Deployments and ConfigMaps wakes the
//! simulation of the cluster that changed; a slow poll (1 s) stays as a safety net.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jenkins_emulator::JenkinsEmulator;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::jenkins_pod;

const CLUSTER_LABEL: &str = jenkins_operator::cluster::labels::CLUSTER_LABEL;

/// Starts the simulation of every cluster's pod; it runs until the handle is aborted.
pub fn simulate(client: Client, jenkins: BTreeMap<String, Arc<JenkinsEmulator>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut wakers = BTreeMap::new();
        let mut pods = Vec::new();
        for (name, emulated) in jenkins {
            let wake = Arc::new(Notify::new());
            wakers.insert(name.clone(), wake.clone());
            pods.push(PodTask::spawn(client.clone(), emulated, name, wake));
        }
        let wakers = Arc::new(wakers);
        let config = watcher::Config::default().labels(CLUSTER_LABEL);
        let deployments = watch_changes(Api::<Deployment>::all(client.clone()), config.clone());
        let config_maps = watch_changes(Api::<ConfigMap>::all(client.clone()), config);
        let mut changes = futures::stream::select(deployments, config_maps);
        while let Some(cluster) = changes.next().await {
            if let Some(wake) = wakers.get(&cluster) {
                wake.notify_one();
            }
        }
        drop(pods);
    })
}

/// The cluster label of every changed object.
fn watch_changes<K>(api: Api<K>, config: watcher::Config) -> impl futures::Stream<Item = String>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    watcher(api, config)
        .default_backoff()
        .applied_objects()
        .filter_map(|object| async move {
            let object = object.ok()?;
            object.labels().get(CLUSTER_LABEL).cloned()
        })
        .boxed()
}

/// One cluster's pod; aborted on drop.
struct PodTask(JoinHandle<()>);

impl PodTask {
    fn spawn(
        client: Client,
        jenkins: Arc<JenkinsEmulator>,
        name: String,
        wake: Arc<Notify>,
    ) -> Self {
        PodTask(tokio::spawn(async move {
            let mut pods = BTreeMap::new();
            loop {
                let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
                let step = jenkins_pod::step(&client, &jenkins, &name, &mut pods, Duration::ZERO);
                if let Err(error) = step.await {
                    tracing::debug!(%error, "jenkins pod simulation step failed; retrying");
                }
            }
        }))
    }
}

impl Drop for PodTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

//! Plays the part of the kubelet and the Jenkins process of one cluster for its Jenkins
//! emulator: what the Deployment's pod would do on a real cluster. When a master Deployment
//! appears or its pod template changes, "Jenkins restarts": it reads the admin Secret, the
//! reload token, the pinned plugins and the mounted JCasC files. While it runs, the kubelet
//! keeps the mounted JCasC files in step with the ConfigMaps (after `sync_delay`), and a reload
//! reads them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jenkins_emulator::{CascReload, JenkinsEmulator, Plugin};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use tokio::task::JoinHandle;

/// Starts the simulation; it runs until the handle is aborted.
pub fn simulate(
    client: Client,
    jenkins: Arc<JenkinsEmulator>,
    cluster: String,
    sync_delay: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut pods: BTreeMap<String, String> = BTreeMap::new();
        loop {
            if let Err(error) = step(&client, &jenkins, &cluster, &mut pods, sync_delay).await {
                tracing::debug!(%error, "jenkins pod simulation step failed; retrying");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
}

/// One look at the cluster's Deployments: restarts Jenkins for a new pod template, or brings
/// the mounted JCasC files up to date. `pods` remembers the pod template each Jenkins runs.
/// `simulate` calls it in a loop; the benchmark calls it on watch events instead.
pub async fn step(
    client: &Client,
    jenkins: &JenkinsEmulator,
    cluster: &str,
    pods: &mut BTreeMap<String, String>,
    sync_delay: Duration,
) -> Result<(), kube::Error> {
    let deployments: Api<Deployment> = Api::all(client.clone());
    let params = ListParams::default().labels(&format!(
        "app.kubernetes.io/managed-by=jenkins-operator,jenkins.ci/cluster={cluster}"
    ));
    for deployment in deployments.list(&params).await?.items {
        let ns = deployment.namespace().unwrap_or_default();
        let template = deployment
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let revision = serde_json::to_string(&template).unwrap_or_default();
        let key = format!("{ns}/{}", deployment.name_any());
        let restarted = pods.get(&key) != Some(&revision);
        let casc = casc_files(client, &ns, &deployment).await?;
        if restarted {
            // A new pod: Jenkins starts with whatever is mounted now.
            jenkins.set_starting(true);
            boot(client, jenkins, &ns, &deployment).await?;
            jenkins.set_casc_source(casc.clone());
            jenkins.load_casc_source();
            jenkins.set_starting(false);
            pods.insert(key, revision);
        } else if jenkins.casc_source() != casc {
            // The kubelet updates mounted ConfigMaps some time after they change.
            tokio::time::sleep(sync_delay).await;
            jenkins.set_casc_source(casc);
        }
    }
    Ok(())
}

/// What a starting Jenkins reads: the admin user, the reload token and the plugins.
async fn boot(
    client: &Client,
    jenkins: &JenkinsEmulator,
    ns: &str,
    deployment: &Deployment,
) -> Result<(), kube::Error> {
    let name = deployment.name_any();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let text = |secret: &Secret, key: &str| -> Option<String> {
        let bytes = secret.data.as_ref()?.get(key)?.0.clone();
        String::from_utf8(bytes).ok()
    };
    // The admin Secret is the one the container's env refers to.
    if let Some(admin_secret) = env_secret(deployment, "JENKINS_ADMIN_PASSWORD")
        && let Some(admin) = secrets.get_opt(&admin_secret).await?
        && let (Some(user), Some(password)) = (text(&admin, "username"), text(&admin, "password"))
    {
        jenkins.add_user(&user, &password);
    }
    if let Some(reload) = secrets.get_opt(&format!("{name}-casc-reload")).await? {
        jenkins.set_casc_reload(text(&reload, "token").as_deref(), CascReload::Applied);
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    if let Some(plugins) = config_maps.get_opt(&format!("{name}-plugins")).await? {
        let list = plugins
            .data
            .unwrap_or_default()
            .remove("plugins.txt")
            .unwrap_or_default();
        let installed = list
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(name, version)| Plugin::new(name, version))
            .collect();
        jenkins.set_plugins(installed);
    }
    Ok(())
}

/// The JCasC files mounted into the pod: the operator's ConfigMap, then the user's, as one
/// YAML stream.
async fn casc_files(
    client: &Client,
    ns: &str,
    deployment: &Deployment,
) -> Result<String, kube::Error> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut names = vec![format!("{}-casc", deployment.name_any())];
    let volumes = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    for volume in volumes {
        if let Some(config_map) = volume.config_map
            && volume.name.starts_with("casc-user")
        {
            names.push(config_map.name);
        }
    }
    let mut stream = String::new();
    for name in names {
        if let Some(config_map) = config_maps.get_opt(&name).await? {
            for (_, text) in config_map.data.unwrap_or_default() {
                stream.push_str("---\n");
                stream.push_str(&text);
            }
        }
    }
    Ok(stream)
}

/// The Secret a container env var of the Deployment reads from.
fn env_secret(deployment: &Deployment, var: &str) -> Option<String> {
    let spec = deployment.spec.as_ref()?.template.spec.as_ref()?;
    spec.containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .find_map(|env| {
            (env.name == var)
                .then(|| {
                    env.value_from
                        .as_ref()?
                        .secret_key_ref
                        .as_ref()
                        .map(|s| s.name.clone())
                })
                .flatten()
        })
}

//! The emulated world of one measurement: the Kubernetes API emulator with the CRDs, one
//! emulated Jenkins per JenkinsCluster name with its simulated pod, and request counting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jenkins_emulator::{EmulatorConfig, JenkinsEmulator};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use kube_emulator::{Emulator, Verb};
use tokio::task::JoinHandle;
use url::Url;

use super::Counts;
use super::pods;

/// The user agent prefix of the operator's requests; the benchmark's own client sends none.
const OPERATOR_AGENT: &str = "jenkins-operator/";

/// Where the request logs stood at a point in time.
#[derive(Clone, Debug)]
pub struct Mark {
    kube: usize,
    jenkins: Vec<usize>,
}

pub struct Backend {
    pub emulator: Emulator,
    pub client: Client,
    kubeconfig: PathBuf,
    /// Emulated Jenkins by JenkinsCluster name.
    pub jenkins: BTreeMap<String, Arc<JenkinsEmulator>>,
    pods: JoinHandle<()>,
}

impl Backend {
    /// Starts the emulators for these cluster names, installs the CRDs, starts the pod
    /// simulation, then adds `latency` to every request.
    pub async fn start(names: &[String], latency: Duration) -> anyhow::Result<Backend> {
        let emulator = Emulator::start().await;
        let kubeconfig = std::env::temp_dir().join(format!(
            "jenkins-operator-bench-{}-{}.kubeconfig",
            std::process::id(),
            emulator.url().rsplit(':').next().unwrap_or_default()
        ));
        std::fs::write(&kubeconfig, emulator.kubeconfig_yaml())
            .with_context(|| format!("failed to write {}", kubeconfig.display()))?;
        let client = emulator.client();

        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in jenkins_operator::api::crds() {
            crds.patch(
                &crd.name_any(),
                &PatchParams::apply("jenkins-operator-bench").force(),
                &Patch::Apply(&crd),
            )
            .await
            .context("failed to install a CRD")?;
        }

        let mut jenkins = BTreeMap::new();
        for name in names {
            let emulated = JenkinsEmulator::start(EmulatorConfig::default()).await?;
            emulated.inject(jenkins_emulator::Fault::Latency(latency));
            jenkins.insert(name.clone(), Arc::new(emulated));
        }
        let pods = pods::simulate(client.clone(), jenkins.clone());
        emulator.inject(kube_emulator::Fault::Latency(latency));
        Ok(Backend {
            emulator,
            client,
            kubeconfig,
            jenkins,
            pods,
        })
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `(name, url)` of every emulated Jenkins, for `--jenkins-url`.
    pub fn jenkins_urls(&self) -> Vec<(String, Url)> {
        self.jenkins
            .iter()
            .map(|(name, jenkins)| (name.clone(), jenkins.url()))
            .collect()
    }

    /// Where the request logs stand now.
    pub fn mark(&self) -> Mark {
        Mark {
            kube: self.emulator.requests().len(),
            jenkins: self.jenkins.values().map(|j| j.requests().len()).collect(),
        }
    }

    /// The operator's requests since `mark`.
    pub fn counts_since(&self, mark: &Mark) -> Counts {
        let mut counts = Counts::default();
        for request in self.emulator.requests().iter().skip(mark.kube) {
            if !request.user_agent.starts_with(OPERATOR_AGENT) {
                continue;
            }
            match request.verb {
                Verb::Watch => counts.api_watches += 1,
                _ if request.is_write() => counts.api_writes += 1,
                _ => counts.api_reads += 1,
            }
        }
        // Only the operator speaks HTTP to the emulated Jenkins; the pod simulation calls
        // its methods.
        for (jenkins, seen) in self.jenkins.values().zip(&mark.jenkins) {
            for request in jenkins.requests().iter().skip(*seen) {
                match request.method.as_str() {
                    "GET" | "HEAD" => counts.jenkins_reads += 1,
                    _ => counts.jenkins_writes += 1,
                }
            }
        }
        counts
    }

    /// Writes of the operator to the API server since `mark`, as `verb resource/name`.
    pub fn writes_since(&self, mark: &Mark) -> Vec<String> {
        self.emulator
            .requests()
            .iter()
            .skip(mark.kube)
            .filter(|r| r.user_agent.starts_with(OPERATOR_AGENT) && r.is_write())
            .map(|r| {
                let resource = r.resource.as_deref().unwrap_or("?");
                let name = r.name.as_deref().unwrap_or("");
                let sub = r.subresource.as_deref().map(|s| format!("/{s}"));
                format!("{} {resource}/{name}{}", r.verb, sub.unwrap_or_default())
            })
            .collect()
    }

    /// Whether the operator has listed or watched this resource (plural) since `mark`.
    pub fn operator_watches(&self, resource: &str) -> bool {
        self.emulator.requests().iter().any(|r| {
            r.user_agent.starts_with(OPERATOR_AGENT)
                && matches!(r.verb, Verb::List | Verb::Watch)
                && r.resource.as_deref() == Some(resource)
        })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.pods.abort();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

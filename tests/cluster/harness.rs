//! Test environment: the Kubernetes API emulator (or a real cluster when
//! `JENKINS_OPERATOR_TEST_KUBECONFIG` is set), the CRDs installed from crds/, and the real
//! controllers running in-process.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jenkins_emulator::{EmulatorConfig, JenkinsEmulator};
use jenkins_operator::api::JenkinsCluster;
use jenkins_operator::operator::RunOptions;
use jenkins_operator::operator::context::Settings;
use jenkins_operator::operator::jenkins_clients::ClientSettings;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use kube_emulator::Emulator;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

/// Environment variable naming a kubeconfig of a real cluster to run the tests against.
pub const REAL_CLUSTER_ENV: &str = "JENKINS_OPERATOR_TEST_KUBECONFIG";

/// On a real cluster: the URL at which the test can reach the Jenkins of the cluster under
/// test (for example a `kubectl port-forward`).
pub const REAL_JENKINS_ENV: &str = "JENKINS_OPERATOR_TEST_JENKINS_URL";

pub struct Env {
    pub client: Client,
    emulator: Option<Emulator>,
    /// One emulated Jenkins per cluster name the test may use, each with the task that plays
    /// its pod (see jenkins_pod.rs). Empty on a real cluster.
    jenkins: BTreeMap<String, (Arc<JenkinsEmulator>, JoinHandle<()>)>,
    operator: Option<(JoinHandle<()>, oneshot::Sender<()>)>,
    pub settings: Settings,
    suffix: String,
}

/// Reconciler timings short enough for tests.
pub fn fast_settings() -> Settings {
    Settings {
        resync: Duration::from_secs(2),
        progress_poll: Duration::from_millis(300),
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_secs(2),
        jenkins_stall_after: Duration::from_secs(600),
        job_drift_check: Duration::from_secs(60),
        build_poll_min: Duration::from_millis(100),
        build_poll_max: Duration::from_millis(400),
        max_concurrent_reconciles: 16,
        // The operator's Jenkins request timeout below is 5 s.
        trigger_deadline: Duration::from_secs(5),
        trigger_settle: Duration::from_secs(1),
    }
}

impl Env {
    /// Starts the backend, installs the CRDs and starts the operator.
    pub async fn start() -> Env {
        let mut env = Env::without_operator().await;
        env.start_operator().await;
        env
    }

    /// Starts the backend and installs the CRDs, without the operator.
    pub async fn without_operator() -> Env {
        Env::with_kubelet_delay(Duration::ZERO).await
    }

    /// Like [`Env::start`], with the simulated kubelet updating mounted ConfigMaps only
    /// `delay` after they change (a real kubelet takes up to a minute or so).
    pub async fn start_with_kubelet_delay(delay: Duration) -> Env {
        let mut env = Env::with_kubelet_delay(delay).await;
        env.start_operator().await;
        env
    }

    async fn with_kubelet_delay(delay: Duration) -> Env {
        // Logs show up with `RUST_LOG=info cargo test -- --nocapture`.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let (client, emulator, suffix) = match std::env::var(REAL_CLUSTER_ENV) {
            Ok(path) => {
                let kubeconfig = Kubeconfig::read_from(&path).expect("read the test kubeconfig");
                let config =
                    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                        .await
                        .expect("load the test kubeconfig");
                let client = Client::try_from(config).expect("build a client");
                (client, None, format!("-{}", random_suffix()))
            }
            Err(_) => {
                let emulator = Emulator::start().await;
                (emulator.client(), Some(emulator), String::new())
            }
        };
        let mut jenkins = BTreeMap::new();
        if emulator.is_some() {
            for base in cluster_names() {
                let emulated = JenkinsEmulator::start(EmulatorConfig::default())
                    .await
                    .expect("start the Jenkins emulator");
                let emulated = Arc::new(emulated);
                let pod = crate::jenkins_pod::simulate(
                    client.clone(),
                    emulated.clone(),
                    base.clone(),
                    delay,
                );
                jenkins.insert(base, (emulated, pod));
            }
        }
        let env = Env {
            client,
            emulator,
            jenkins,
            operator: None,
            settings: fast_settings(),
            suffix,
        };
        env.install_crds().await;
        env
    }

    async fn install_crds(&self) {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for crd in jenkins_operator::api::crds() {
            api.patch(
                &crd.name_any(),
                &PatchParams::apply("jenkins-operator-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .expect("install a CRD");
            let name = crd.name_any();
            eventually("the CRD to be established", || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    let established = crd
                        .status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    established.then_some(())
                }
            })
            .await;
        }
    }

    /// Starts the controllers in-process, as `jenkins-operator run` does.
    pub async fn start_operator(&mut self) {
        assert!(self.operator.is_none(), "the operator is already running");
        self.operator = Some(self.spawn_operator());
    }

    /// Starts a second operator against the same backend, reconciling beside the first: what
    /// two replicas do during a leader-lease hand-over, while the old leader still finishes a
    /// reconcile it had begun. It stops when the returned value is dropped.
    pub fn start_replica(&self) -> Replica {
        let (task, stop) = self.spawn_operator();
        Replica { task, _stop: stop }
    }

    fn spawn_operator(&self) -> (JoinHandle<()>, oneshot::Sender<()>) {
        let (stop, stopped) = oneshot::channel::<()>();
        let jenkins_urls = self.jenkins_urls();
        let client = self.client.clone();
        let settings = self.settings.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            let options = RunOptions {
                settings,
                shutdown_grace: Duration::from_secs(5),
                jenkins_urls,
                jenkins_client: ClientSettings {
                    connect_timeout: Duration::from_secs(2),
                    request_timeout: Duration::from_secs(5),
                    retries: 1,
                    retry_backoff: Duration::from_millis(20),
                    ..ClientSettings::default()
                },
                ..RunOptions::default()
            };
            jenkins_operator::operator::run(client, options, shutdown)
                .await
                .expect("operator runs");
        });
        (task, stop)
    }

    /// Where the operator reaches Jenkins: every example cluster (as renamed for this run) at
    /// the emulated Jenkins, or at `JENKINS_OPERATOR_TEST_JENKINS_URL` on a real cluster (for
    /// example a `kubectl port-forward` of the cluster's Service); otherwise the in-cluster URL.
    fn jenkins_urls(&self) -> BTreeMap<String, Url> {
        if !self.jenkins.is_empty() {
            return self
                .jenkins
                .iter()
                .map(|(name, (j, _))| (name.clone(), j.url()))
                .collect();
        }
        let Ok(url) = std::env::var(REAL_JENKINS_ENV) else {
            return BTreeMap::new();
        };
        let url = Url::parse(&url).expect("JENKINS_OPERATOR_TEST_JENKINS_URL is a URL");
        cluster_names()
            .into_iter()
            .map(|name| (self.name(&name), url.clone()))
            .collect()
    }

    /// The emulated Jenkins of the cluster `name`, or `None` on a real cluster, after printing
    /// why the test is skipped.
    pub fn jenkins_or_skip(&self, name: &str, test: &str) -> Option<Arc<JenkinsEmulator>> {
        if self.jenkins.is_empty() {
            eprintln!("skipping {test} on a real cluster: it needs the Jenkins emulator");
            return None;
        }
        let (jenkins, _) = self
            .jenkins
            .get(name)
            .expect("an emulated Jenkins for this name");
        Some(jenkins.clone())
    }

    /// The emulated Jenkins of the cluster `name`; `None` on a real cluster.
    pub fn jenkins_emulator(&self, name: &str) -> Option<Arc<JenkinsEmulator>> {
        self.jenkins.get(name).map(|(jenkins, _)| jenkins.clone())
    }

    /// Stops the controllers (graceful shutdown) and waits until they are gone.
    pub async fn stop_operator(&mut self) {
        if let Some((task, stop)) = self.operator.take() {
            let _ = stop.send(());
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the operator stops within 30s")
                .expect("the operator task ends cleanly");
        }
    }

    /// The emulator, or `None` on a real cluster, after printing why the test is skipped.
    pub fn emulator_or_skip(&self, test: &str, why: &str) -> Option<&Emulator> {
        if self.emulator.is_none() {
            eprintln!("skipping {test} on a real cluster: it needs {why}");
        }
        self.emulator.as_ref()
    }

    /// A resource name unique to this run on a real cluster, `base` on the emulator.
    pub fn name(&self, base: &str) -> String {
        format!("{base}{}", self.suffix)
    }

    /// Loads an example JenkinsCluster and gives it (and its namespaces) names of this run.
    pub fn example_cluster(&self, file: &str) -> JenkinsCluster {
        let path = format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("read the example");
        let mut cluster: JenkinsCluster = serde_saphyr::from_str(&text).expect("parse the example");
        let name = self.name(&cluster.name_any());
        cluster.metadata.name = Some(name);
        if let Some(ns) = cluster.spec.namespace.take() {
            cluster.spec.namespace = Some(self.name(&ns));
        }
        for environment in &mut cluster.spec.environments {
            environment.namespace = self.name(&environment.namespace);
        }
        // Ingress controllers with an admission check refuse a second Ingress for a host.
        if let Some(ingress) = &mut cluster.spec.ingress {
            let (first, rest) = ingress.host.split_once('.').unwrap_or((&ingress.host, ""));
            let first = self.name(first);
            ingress.host = if rest.is_empty() {
                first
            } else {
                format!("{first}.{rest}")
            };
        }
        cluster
    }
}

/// A second operator started by [`Env::start_replica`]; aborted when dropped.
pub struct Replica {
    task: JoinHandle<()>,
    /// Dropping it would shut the replica down at once.
    _stop: oneshot::Sender<()>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some((task, _)) = self.operator.take() {
            task.abort();
        }
        for (_, (_, pod)) in std::mem::take(&mut self.jenkins) {
            pod.abort();
        }
    }
}

/// Names tests give JenkinsClusters: those of examples/ and a few more.
fn cluster_names() -> Vec<String> {
    let mut names = example_cluster_names();
    names.extend(["first", "second"].map(String::from));
    names
}

/// Names of the JenkinsClusters in examples/.
fn example_cluster_names() -> Vec<String> {
    let dir = format!("{}/examples", env!("CARGO_MANIFEST_DIR"));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).expect("examples/ exists").flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if !text
            .lines()
            .any(|line| line.trim() == "kind: JenkinsCluster")
        {
            continue;
        }
        if let Ok(cluster) = serde_saphyr::from_str::<JenkinsCluster>(&text) {
            names.push(cluster.name_any());
        }
    }
    names
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 3];
    getrandom::fill(&mut bytes).expect("OS random source");
    hex::encode(bytes)
}

/// How long a condition may take: the emulator is fast, a real cluster pulls images.
pub fn patience() -> Duration {
    if std::env::var_os(REAL_CLUSTER_ENV).is_some() {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(30)
    }
}

/// Polls `check` until it returns `Some`, failing the test with `what` after [`patience`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! The real `jenkins-operator` binary as a child process against the Kubernetes API emulator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jenkins_emulator::{EmulatorConfig, JenkinsEmulator};
use jenkins_operator::api::JenkinsCluster;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use kube_emulator::{Emulator, RequestRecord};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// The user agent prefix of the operator's requests (the test's own client sends none).
pub const OPERATOR_AGENT: &str = "jenkins-operator/";

/// How long any awaited condition may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// Names the tests give JenkinsClusters; each gets its own emulated Jenkins.
const CLUSTER_NAMES: &[&str] = &["ci", "slow", "first", "second", "orion", "platform"];

/// The emulator, a kubeconfig file pointing at it, and a client for the test itself, plus an
/// emulated Jenkins (with its simulated pod) for each name in [`CLUSTER_NAMES`].
pub struct Backend {
    pub emulator: Emulator,
    pub client: Client,
    kubeconfig: PathBuf,
    jenkins: Vec<(String, Arc<JenkinsEmulator>, JoinHandle<()>)>,
}

impl Backend {
    /// Starts the emulator with the CRDs installed.
    pub async fn start() -> Backend {
        let backend = Backend::without_crds().await;
        backend.install_crds().await;
        backend
    }

    /// Starts the emulator without the CRDs.
    pub async fn without_crds() -> Backend {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let emulator = Emulator::start().await;
        let kubeconfig = std::env::temp_dir().join(format!(
            "jenkins-operator-runtime-{}-{}.kubeconfig",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&kubeconfig, emulator.kubeconfig_yaml()).expect("write the kubeconfig");
        let client = emulator.client();
        let mut jenkins = Vec::new();
        for name in CLUSTER_NAMES {
            let emulated = JenkinsEmulator::start(EmulatorConfig::default())
                .await
                .expect("start a Jenkins emulator");
            let emulated = Arc::new(emulated);
            let pod = crate::jenkins_pod::simulate(
                client.clone(),
                emulated.clone(),
                name.to_string(),
                Duration::ZERO,
            );
            jenkins.push((name.to_string(), emulated, pod));
        }
        Backend {
            client,
            emulator,
            kubeconfig,
            jenkins,
        }
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
        }
    }

    /// The emulated Jenkins of the cluster `name`.
    pub fn jenkins(&self, name: &str) -> Arc<JenkinsEmulator> {
        self.jenkins
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, jenkins, _)| jenkins.clone())
            .expect("an emulated Jenkins for this cluster name")
    }

    /// The requests the operator processes made (not the test's own).
    pub fn operator_requests(&self) -> Vec<RequestRecord> {
        self.emulator
            .requests()
            .into_iter()
            .filter(|r| r.user_agent.starts_with(OPERATOR_AGENT))
            .collect()
    }

    /// Loads an example JenkinsCluster, renamed.
    pub fn example(&self, file: &str, name: &str) -> JenkinsCluster {
        let path = format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("read the example");
        let mut cluster: JenkinsCluster = serde_saphyr::from_str(&text).expect("parse the example");
        cluster.metadata.name = Some(name.into());
        cluster
    }

    /// Creates a JenkinsCluster.
    pub async fn create(&self, cluster: &JenkinsCluster) {
        Api::<JenkinsCluster>::all(self.client.clone())
            .create(&PostParams::default(), cluster)
            .await
            .expect("create the JenkinsCluster");
    }

    /// Waits until the cluster reports Ready for its current generation.
    pub async fn wait_ready(&self, name: &str) -> JenkinsCluster {
        let api: Api<JenkinsCluster> = Api::all(self.client.clone());
        eventually(&format!("JenkinsCluster {name} to be Ready"), || async {
            let cluster = api.get_opt(name).await.ok()??;
            let ready = cluster.status.as_ref()?.conditions.iter().any(|c| {
                c.type_ == "Ready"
                    && c.status == "True"
                    && c.observed_generation == cluster.metadata.generation
            });
            ready.then_some(cluster)
        })
        .await
    }

    /// Deletes a JenkinsCluster and waits until its finalizer let it go.
    pub async fn delete_and_wait_gone(&self, name: &str) {
        let api: Api<JenkinsCluster> = Api::all(self.client.clone());
        api.delete(name, &Default::default())
            .await
            .expect("delete the JenkinsCluster");
        eventually(&format!("JenkinsCluster {name} to be gone"), || async {
            api.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }

    /// The leader Lease (`jenkins-operator` in `default`), if it exists.
    pub async fn lease(&self) -> Option<Lease> {
        Api::<Lease>::namespaced(self.client.clone(), "default")
            .get_opt("jenkins-operator")
            .await
            .expect("read the Lease")
    }

    /// The current holder of the leader Lease.
    pub async fn lease_holder(&self) -> Option<String> {
        self.lease().await?.spec?.holder_identity
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        for (_, _, pod) in &self.jenkins {
            pod.abort();
        }
    }
}

/// One `jenkins-operator run` process.
pub struct Operator {
    pub identity: String,
    child: Child,
    http: SocketAddr,
    logs: Arc<Mutex<String>>,
}

/// How to start an operator process.
pub struct Launch<'a> {
    pub identity: &'a str,
    pub shutdown_grace_seconds: u64,
    pub args: Vec<&'a str>,
    pub rust_log: &'a str,
}

impl<'a> Launch<'a> {
    /// Leader election on, a 2 s lease in `default`, 5 s of shutdown grace, text logs at `info`.
    pub fn new(identity: &'a str) -> Launch<'a> {
        Launch {
            identity,
            shutdown_grace_seconds: 5,
            args: vec![
                "--lease-namespace",
                "default",
                "--lease-duration-seconds",
                "2",
            ],
            rust_log: "info",
        }
    }

    pub fn arg(mut self, arg: &'a str) -> Self {
        self.args.push(arg);
        self
    }

    pub fn rust_log(mut self, filter: &'a str) -> Self {
        self.rust_log = filter;
        self
    }

    pub fn shutdown_grace_seconds(mut self, seconds: u64) -> Self {
        self.shutdown_grace_seconds = seconds;
        self
    }
}

impl Operator {
    /// Starts `jenkins-operator run` against the backend.
    pub fn start(backend: &Backend, launch: Launch<'_>) -> Operator {
        let http = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_jenkins-operator"));
        command
            .arg("run")
            .arg("--http-addr")
            .arg(http.to_string())
            .arg("--shutdown-grace-seconds")
            .arg(launch.shutdown_grace_seconds.to_string())
            .args(&launch.args)
            .args(backend.jenkins.iter().flat_map(|(name, jenkins, _)| {
                [
                    "--jenkins-url".to_string(),
                    format!("{name}={}", jenkins.url()),
                ]
            }))
            .env_clear()
            .env("KUBECONFIG", &backend.kubeconfig)
            .env("POD_NAME", launch.identity)
            .env("RUST_LOG", launch.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start jenkins-operator");
        let logs = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(collect(out, logs.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(collect(err, logs.clone()));
        }
        Operator {
            identity: launch.identity.to_owned(),
            child,
            http,
            logs,
        }
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().expect("log buffer").clone()
    }

    /// GETs a path of the operator's HTTP endpoint: status and body, or `None` while nothing
    /// listens.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http, path).await
    }

    /// The value of one metric series (name with labels, as in the text format).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (status, body) = self.get("/metrics").await?;
        if status != 200 {
            return None;
        }
        let prefix = format!("{series} ");
        body.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.trim().parse().ok())
    }

    /// The `jenkins_operator_leader` gauge.
    pub async fn leader_gauge(&self) -> Option<f64> {
        self.metric("jenkins_operator_leader").await
    }

    /// Sends SIGKILL: the process vanishes without releasing anything.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill the operator");
    }

    /// Sends SIGTERM, as the kubelet does when it stops a pod.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("the operator is still running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, patience: Duration) -> ExitStatus {
        let status = tokio::time::timeout(patience, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not exit within {patience:?}; logs:\n{}",
                    self.identity,
                    self.logs()
                )
            })
            .expect("wait for the operator");
        // Let the readers drain the pipes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        status
    }
}

impl Drop for Operator {
    /// A failing test shows what the process logged.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- logs of {} ---\n{}", self.identity, self.logs());
        }
    }
}

async fn collect(mut pipe: impl AsyncRead + Unpin, logs: Arc<Mutex<String>>) {
    let mut buffer = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        logs.lock()
            .expect("log buffer")
            .push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
}

/// A free port on 127.0.0.1 (bound and released; another process could take it in between,
/// which on a test machine does not happen in practice).
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("a bound listener has an address")
}

/// A minimal HTTP/1.1 GET.
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Polls `check` every 50 ms until it returns `Some`; fails the test after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The identity in an operator's user agent, `jenkins-operator/<version> (<identity>)`.
pub fn identity_of(request: &RequestRecord) -> &str {
    request
        .user_agent
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_default()
}

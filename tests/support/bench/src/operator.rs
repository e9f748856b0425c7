//! The operator under measurement: `jenkins-operator run` as a child process, with its memory
//! read from `/proc/<pid>/status` and its metrics from `/metrics`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::backend::Backend;

/// One running operator process.
pub struct OperatorProcess {
    child: Child,
    pid: u32,
    http: SocketAddr,
    pub log: PathBuf,
}

impl OperatorProcess {
    /// Starts `jenkins-operator run` against the backend (leader election off, every cluster
    /// of the backend reached at its emulated Jenkins) and waits until `/readyz` answers 200.
    pub async fn start(
        binary: &Path,
        backend: &Backend,
        resync_seconds: u64,
        extra_args: &[String],
        extra_env: &[(String, String)],
    ) -> anyhow::Result<OperatorProcess> {
        let http = free_port()?;
        let log = std::env::temp_dir().join(format!(
            "jenkins-operator-bench-{}-{}.log",
            std::process::id(),
            http.port()
        ));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("failed to create {}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("run")
            .arg("--leader-election=false")
            .arg("--http-addr")
            .arg(http.to_string())
            .arg("--resync-seconds")
            .arg(resync_seconds.to_string())
            .args(extra_args)
            .args(
                backend
                    .jenkins_urls()
                    .into_iter()
                    .flat_map(|(name, url)| ["--jenkins-url".to_string(), format!("{name}={url}")]),
            )
            .env_clear()
            .env("KUBECONFIG", backend.kubeconfig())
            .env("POD_NAME", "bench")
            .env("RUST_LOG", "info")
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;
        let pid = child.id().context("the operator exited at once")?;
        let mut process = OperatorProcess {
            child,
            pid,
            http,
            log,
        };
        process.wait_ready(Duration::from_secs(30)).await?;
        Ok(process)
    }

    async fn wait_ready(&mut self, patience: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the operator exited with {status} before it was ready; see {}",
                    self.log.display()
                );
            }
            if let Some((200, _)) = http_get(self.http, "/readyz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the operator was not ready within {patience:?}; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `VmRSS` and `VmHWM` (peak) of the process, in KiB.
    pub fn memory(&self) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }

    /// Anonymous (heap, stacks) and file-backed (the binary's code) resident memory, as
    /// `anon X MiB + file Y MiB`.
    pub fn breakdown(&self) -> Option<String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let field = |name: &str| -> Option<f64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            let kib: f64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kib / 1024.0)
        };
        Some(format!(
            "anon {:.1} MiB + file {:.1} MiB",
            field("RssAnon:")?,
            field("RssFile:")?
        ))
    }

    /// Starts a new peak: Linux resets `VmHWM` to the current RSS on `5` written to
    /// `/proc/<pid>/clear_refs`. Returns false where that is not allowed; the peak then
    /// covers the whole life of the process.
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }

    /// The value of one metric series, e.g. `jenkins_operator_reconciles_total{...}`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (status, body) = http_get(self.http, "/metrics").await?;
        if status != 200 {
            return None;
        }
        let prefix = format!("{series} ");
        body.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.trim().parse().ok())
    }

    /// The mean of a histogram over all its series (`<name>_sum` / `<name>_count`), or `None`
    /// when the operator does not export it or observed nothing.
    pub async fn mean(&self, histogram: &str) -> Option<f64> {
        let (status, body) = http_get(self.http, "/metrics").await?;
        if status != 200 {
            return None;
        }
        let total = |suffix: &str| -> f64 {
            let name = format!("{histogram}{suffix}");
            body.lines()
                .filter(|line| {
                    line.strip_prefix(&name)
                        .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                })
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let count = total("_count");
        (count > 0.0).then(|| total("_sum") / count)
    }

    /// Reconciles the JenkinsCluster controller started so far.
    pub async fn cluster_reconciles(&self) -> f64 {
        self.metric("jenkins_operator_reconciles_total{controller=\"jenkinscluster\"}")
            .await
            .unwrap_or(0.0)
    }

    /// Stops the process as Kubernetes does (SIGTERM) and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => self.child.kill().await?,
        }
        let _ = std::fs::remove_file(&self.log);
        Ok(())
    }
}

/// Resident memory of the operator, in KiB.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

/// Whether the binary's `run` has an option (by its `--help`).
pub fn has_option(binary: &Path, option: &str) -> bool {
    std::process::Command::new(binary)
        .args(["run", "--help"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains(option))
        .unwrap_or(false)
}

/// A free port on 127.0.0.1 (bound and released at once).
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// A minimal HTTP/1.1 GET: status and body, or `None` while nothing answers.
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

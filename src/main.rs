//! The `jenkins-operator` command line.

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Runs Jenkins on Kubernetes: JenkinsCluster resources become Jenkins masters with agents.
#[derive(Parser)]
#[command(name = "jenkins-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers against the cluster of the current kubeconfig, or in-cluster.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML (apply them with `kubectl apply --server-side`).
    Crds,
    /// Print every object the operator would create for a JenkinsCluster, as a multi-document
    /// YAML stream. No cluster needed.
    Render {
        /// JenkinsCluster YAML file, or `-` for standard input.
        file: String,
    },
    /// Print the operator's version.
    Version,
}

/// Options of `jenkins-operator run`.
#[derive(clap::Args)]
struct RunArgs {
    /// Log format: `text` (human readable) or `json` (one object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "JENKINS_OPERATOR_LOG_FORMAT")]
    log_format: LogFormat,

    /// Seconds between checks of converged resources when nothing happens (at least 10).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..))]
    resync_seconds: u64,

    /// Address of the /livez, /readyz and /metrics endpoint.
    #[arg(
        long,
        default_value = "0.0.0.0:8080",
        env = "JENKINS_OPERATOR_HTTP_ADDR"
    )]
    http_addr: std::net::SocketAddr,

    /// Elect a leader through a Lease so that several replicas can run; turn off for a single
    /// local process.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,

    /// Name of the leader Lease.
    #[arg(long, default_value = "jenkins-operator")]
    lease_name: String,

    /// Namespace of the leader Lease. Defaults to POD_NAMESPACE, then to the namespace of the
    /// kubeconfig context.
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,

    /// Seconds the Lease stays valid without renewal: the longest a standby waits to take over.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=300))]
    lease_duration_seconds: u64,

    /// Seconds in-flight reconciles get to finish after SIGTERM.
    #[arg(long, default_value_t = 20)]
    shutdown_grace_seconds: u64,

    /// Reach the Jenkins of a JenkinsCluster at this URL instead of its in-cluster Service,
    /// as NAME=URL (repeatable). For an operator running outside the cluster, for example
    /// with `kubectl port-forward svc/ci 18080:8080 -n ci` and
    /// `--jenkins-url ci=http://127.0.0.1:18080/` (8080 is the operator's own --http-addr).
    #[arg(long = "jenkins-url", value_name = "NAME=URL", value_parser = parse_jenkins_url)]
    jenkins_urls: Vec<(String, url::Url)>,

    /// Seconds a request to Jenkins may take.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    jenkins_timeout_seconds: u64,

    /// Requests the operator may have in flight towards one Jenkins at a time (every
    /// controller together: jobs, builds and the cluster's own checks).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    jenkins_concurrency: u64,

    /// Seconds between reads of every job's live config.xml to repair edits made in the
    /// Jenkins UI (between them, an unchanged JenkinsJob costs no config.xml request).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(10..))]
    job_drift_check_seconds: u64,

    /// Reconciles each controller (clusters, jobs, builds) runs at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_reconciles: u16,
}

/// Parses `NAME=URL` of `--jenkins-url`.
fn parse_jenkins_url(text: &str) -> Result<(String, url::Url), String> {
    let (name, url) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=URL, got {text:?}"))?;
    if name.is_empty() {
        return Err("the JenkinsCluster name before = is empty".into());
    }
    let mut url = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{url} is not an http(s) URL"));
    }
    // Relative API paths are joined onto the URL: it must end with a slash.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok((name.to_owned(), url))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Crds => match jenkins_operator::api::crds_yaml() {
            Ok(yaml) => write_stdout(&yaml),
            Err(error) => {
                eprintln!("error: failed to serialize the CRDs: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Render { file } => render(&file),
        Command::Version => {
            write_stdout(&format!("jenkins-operator {}\n", env!("CARGO_PKG_VERSION")))
        }
    }
}

/// Writes a command's output. A reader that stops early (`| head`) is not an error, unlike
/// `print!`, which panics on a closed pipe; any other failure to write is reported.
fn write_stdout(text: &str) -> ExitCode {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: failed to write the output: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the tokio runtime and the controllers; returns when a signal stops them.
fn run(args: RunArgs) -> ExitCode {
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| random_identity());
    runtime.block_on(async move {
        let client = match kube_client(&identity).await {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(error = %error, "failed to configure the Kubernetes client");
                return ExitCode::FAILURE;
            }
        };
        let options = run_options(&args, &client, identity);
        match jenkins_operator::operator::run(client, options, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = %error, "the operator stopped");
                ExitCode::from(2)
            }
        }
    })
}

/// A client for the cluster of the kubeconfig (or in-cluster) that names itself
/// `jenkins-operator/<version> (<identity>)`, so that audit logs tell which replica made a call.
async fn kube_client(identity: &str) -> anyhow::Result<kube::Client> {
    use axum::http::{HeaderValue, header::USER_AGENT};
    let mut config = kube::Config::infer().await?;
    let agent = format!(
        "jenkins-operator/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    );
    // A pod name is a DNS subdomain, so it fits a header; anything else falls back to a
    // constant of valid characters.
    let agent = HeaderValue::from_str(&agent).unwrap_or_else(|_| {
        HeaderValue::from_static(concat!("jenkins-operator/", env!("CARGO_PKG_VERSION")))
    });
    config.headers.push((USER_AGENT, agent));
    Ok(kube::Client::try_from(config)?)
}

/// Turns the command line into the runtime's options.
fn run_options(
    args: &RunArgs,
    client: &kube::Client,
    identity: String,
) -> jenkins_operator::operator::RunOptions {
    use jenkins_operator::operator::jenkins_clients::ClientSettings;
    use jenkins_operator::operator::{RunOptions, context::Settings, leader::LeaderConfig};
    use std::time::Duration;
    let leader = args.leader_election.then(|| {
        let duration = Duration::from_secs(args.lease_duration_seconds);
        LeaderConfig {
            lease_name: args.lease_name.clone(),
            namespace: args
                .lease_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
            identity: identity.clone(),
            duration,
            grace: duration / 3,
        }
    });
    let jenkins_timeout = Duration::from_secs(args.jenkins_timeout_seconds);
    RunOptions {
        settings: Settings {
            resync: Duration::from_secs(args.resync_seconds),
            job_drift_check: Duration::from_secs(args.job_drift_check_seconds),
            max_concurrent_reconciles: args.max_concurrent_reconciles,
            // A trigger checks the job, then posts: a request timeout each.
            trigger_deadline: jenkins_timeout * 2,
            trigger_settle: jenkins_timeout,
            ..Settings::default()
        },
        http_addr: Some(args.http_addr),
        leader,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
        jenkins_urls: args.jenkins_urls.iter().cloned().collect(),
        jenkins_client: ClientSettings {
            request_timeout: jenkins_timeout,
            // The range above keeps it small.
            concurrency: usize::try_from(args.jenkins_concurrency).unwrap_or(8),
            ..ClientSettings::default()
        },
    }
}

/// An identity for leader election outside a pod: host name plus random digits.
fn random_identity() -> String {
    let mut bytes = [0u8; 4];
    // Without randomness the identity is still unique enough per process.
    let _ = getrandom::fill(&mut bytes);
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "jenkins-operator".into());
    format!("{host}-{}-{}", std::process::id(), hex::encode(bytes))
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested; finishing in-flight work");
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`). Colours only on a terminal: a log
/// collector would store the escape codes.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// `render FILE`: any bad input ends with `error: <file>:<line>:<col>: ...` and exit code 1.
fn render(file: &str) -> ExitCode {
    let input = if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(file)
    };
    let input = match input {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: {file}: failed to read: {error}");
            return ExitCode::FAILURE;
        }
    };
    match jenkins_operator::cluster::render::render(&input) {
        Ok(stream) => write_stdout(&stream),
        Err(error) => {
            for diagnostic in &error.diagnostics {
                eprintln!("error: {file}:{diagnostic}");
            }
            ExitCode::FAILURE
        }
    }
}

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

    /// Seconds between checks of converged resources when nothing happens.
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
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: failed to serialize the CRDs: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Render { file } => render(&file),
        Command::Version => {
            println!("jenkins-operator {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
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
    runtime.block_on(async move {
        let client = match kube::Client::try_default().await {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(error = %error, "failed to configure the Kubernetes client");
                return ExitCode::FAILURE;
            }
        };
        let options = run_options(&args, &client);
        match jenkins_operator::operator::run(client, options, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = %error, "the operator stopped");
                ExitCode::from(2)
            }
        }
    })
}

/// Turns the command line into the runtime's options.
fn run_options(args: &RunArgs, client: &kube::Client) -> jenkins_operator::operator::RunOptions {
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
            identity: std::env::var("POD_NAME").unwrap_or_else(|_| random_identity()),
            duration,
            grace: duration / 3,
        }
    });
    RunOptions {
        settings: Settings {
            resync: Duration::from_secs(args.resync_seconds),
            ..Settings::default()
        },
        http_addr: Some(args.http_addr),
        leader,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
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

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
        Ok(stream) => {
            print!("{stream}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            for diagnostic in &error.diagnostics {
                eprintln!("error: {file}:{diagnostic}");
            }
            ExitCode::FAILURE
        }
    }
}

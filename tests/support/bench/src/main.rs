//! `jenkins-operator-bench`: runs the benchmark scenarios of issue 8 and writes the results.
//!
//! ```sh
//! cargo run --release -p jenkins-operator-bench -- --write docs/benchmarks.md
//! ```
//!
//! The operator is built with the `dist` profile the Dockerfile ships (`--profile release`
//! measures the quick build instead), or taken from `--operator`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use jenkins_operator_bench::report::{self, ANALYSIS, Machine};
use jenkins_operator_bench::{Options, Scenario};

/// Measures what jenkins-operator costs: wall time, requests to the API server and to
/// Jenkins, and the operator's memory, against emulators with a configurable latency.
#[derive(Parser)]
#[command(name = "jenkins-operator-bench")]
struct Cli {
    /// Scenarios: `all`, or letters/names separated by commas (a one-cluster, b many-clusters,
    /// c jobs, d steady-state, e spec-change).
    #[arg(long, default_value = "all")]
    scenario: String,

    /// Milliseconds added to every request to the API server and to Jenkins.
    #[arg(long, default_value_t = 5)]
    latency_ms: u64,

    /// JenkinsClusters of scenarios (b) and (d).
    #[arg(long, default_value_t = 100)]
    clusters: usize,

    /// JenkinsJob counts of scenario (c), comma-separated; one cold start each.
    #[arg(long, default_value = "1000,5000", value_delimiter = ',')]
    jobs: Vec<usize>,

    /// JenkinsJobs of a further cold start of (c), spread over `--clusters` clusters (the
    /// memory target of 100 clusters and 5,000 jobs); 0 skips it.
    #[arg(long, default_value_t = 5000)]
    jobs_on_many_clusters: usize,

    /// `--resync-seconds` of the operator (at least 10); (d) waits about one period.
    #[arg(long, default_value_t = 10)]
    resync_seconds: u64,

    /// `--resync-seconds` of the operator in the cold starts of (c) (at least 10); the default
    /// is the operator's own.
    #[arg(long, default_value_t = 300)]
    cold_start_resync_seconds: u64,

    /// Requests to one Jenkins the operator may have in flight: the divisor of the lower
    /// bound of (c), and `--jenkins-concurrency` of the operator when it has that option.
    #[arg(long, default_value_t = 4)]
    jenkins_concurrency: usize,

    /// The operator binary. Default: build it with `--profile` and use that.
    #[arg(long)]
    operator: Option<PathBuf>,

    /// Cargo profile the operator is built with when `--operator` is not given: `dist` is
    /// what the Dockerfile ships (fat LTO, size-optimised); `release` is the quick build.
    #[arg(long, default_value = "dist")]
    profile: String,

    /// Seconds a scenario may take (scaled up for the large ones).
    #[arg(long, default_value_t = 60)]
    patience_seconds: u64,

    /// Extra environment of the operator process, as NAME=VALUE (repeatable), for example
    /// `TOKIO_WORKER_THREADS=1`.
    #[arg(long = "operator-env", value_name = "NAME=VALUE", value_parser = parse_env)]
    operator_env: Vec<(String, String)>,

    /// Write the results as Markdown to this file, keeping its hand-written analysis.
    #[arg(long)]
    write: Option<PathBuf>,

    /// Only scenario (a) with one cluster and no latency: checks that the benchmark works.
    #[arg(long)]
    smoke: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let operator = match &cli.operator {
        Some(path) => path.clone(),
        None => match build_operator(&cli.profile) {
            Ok(path) => path,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let options = match options(&cli, operator) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let version = std::process::Command::new(&options.operator)
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let built = match &cli.operator {
        Some(path) => format!("`{}`", path.display()),
        None => format!("cargo profile `{}`", cli.profile),
    };
    let mut machine = Machine::now(format!("{version}, {built}"));

    // The emulators' latency is a tokio sleep. With the default event interval a busy worker
    // looks at its timers only every 61 tasks, and a 5 ms sleep took about 9 ms under the
    // load of a cold start: the operator was measured against a slower Jenkins than stated.
    // Checking timers after every task costs the emulators some CPU and keeps the latency
    // what `--latency-ms` says.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(1)
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report::table(&[]).trim_end());
    let results = runtime.block_on(jenkins_operator_bench::run(&options, |m| {
        if let Some(last) = report::table(std::slice::from_ref(m)).lines().last() {
            println!("{last}");
        }
    }));
    let results = match results {
        Ok(results) => results,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    machine.load_after = report::load();
    println!(
        "load average: {} before, {} after",
        machine.load_before, machine.load_after
    );

    if let Some(path) = &cli.write {
        let previous = std::fs::read_to_string(path).unwrap_or_default();
        let kept = previous.find(ANALYSIS).map(|at| &previous[at..]);
        let command = command_line();
        let doc = report::markdown(&options, &command, &machine, &results, kept);
        if let Err(error) = std::fs::write(path, doc) {
            eprintln!("error: failed to write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

fn options(cli: &Cli, operator: PathBuf) -> Result<Options, String> {
    if cli.smoke {
        return Ok(Options::smoke(operator));
    }
    let scenarios = if cli.scenario == "all" {
        Scenario::ALL.to_vec()
    } else {
        cli.scenario
            .split(',')
            .map(|s| Scenario::parse(s.trim()).ok_or_else(|| format!("unknown scenario {s:?}")))
            .collect::<Result<Vec<_>, _>>()?
    };
    if cli.resync_seconds < 10 || cli.cold_start_resync_seconds < 10 {
        return Err("resync periods must be at least 10 seconds (the operator's minimum)".into());
    }
    Ok(Options {
        operator,
        latency: Duration::from_millis(cli.latency_ms),
        scenarios,
        clusters: cli.clusters,
        jobs: cli.jobs.clone(),
        jobs_on_many_clusters: (cli.jobs_on_many_clusters > 0).then_some(cli.jobs_on_many_clusters),
        resync_seconds: cli.resync_seconds,
        cold_start_resync_seconds: cli.cold_start_resync_seconds,
        jenkins_concurrency: cli.jenkins_concurrency.max(1),
        patience: Duration::from_secs(cli.patience_seconds),
        operator_env: cli.operator_env.clone(),
    })
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))?;
    Ok((name.to_owned(), value.to_owned()))
}

/// Builds the operator with the cargo that runs us and the given profile; returns the
/// binary's path.
fn build_operator(profile: &str) -> Result<PathBuf, String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building the operator (cargo build --profile {profile} --bin jenkins-operator)");
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--profile",
            profile,
            "-p",
            "jenkins-operator",
            "--bin",
            "jenkins-operator",
        ])
        .current_dir(&workspace)
        .status()
        .map_err(|e| format!("failed to run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the operator with profile {profile} failed"
        ));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    // Cargo keeps the `dev` profile's output in `debug`.
    let directory = if profile == "dev" { "debug" } else { profile };
    Ok(target.join(directory).join("jenkins-operator"))
}

/// The command that regenerates the document, as it was run.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "cargo run --release -p jenkins-operator-bench -- {}",
        args.join(" ")
    )
}

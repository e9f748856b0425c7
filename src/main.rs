//! The `jenkins-operator` command line.

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
    /// Print the CustomResourceDefinitions as YAML (apply them with `kubectl apply --server-side`).
    Crds,
    /// Print the operator's version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
        Command::Version => {
            println!("jenkins-operator {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

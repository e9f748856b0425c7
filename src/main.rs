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
        Command::Render { file } => render(&file),
        Command::Version => {
            println!("jenkins-operator {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
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

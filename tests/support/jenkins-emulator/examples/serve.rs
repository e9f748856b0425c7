//! Serves an emulator on 127.0.0.1 until killed, for manual checks and for running the client
//! tests in their "real Jenkins" mode. Prints the variables to export.
//!
//! `cargo run -p jenkins-emulator --example serve`

use std::time::Duration;

use jenkins_emulator::{BuildResult, EmulatorConfig, JenkinsEmulator, Outcome};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Builds end by themselves, as a real Jenkins running `echo` would.
    let outcome = Outcome {
        result: BuildResult::Success,
        duration: Duration::from_millis(50),
        log: "hi\n".into(),
    };
    let config = EmulatorConfig {
        default_outcome: Some(outcome),
        ..Default::default()
    };
    let emulator = JenkinsEmulator::start(config).await?;
    let token = emulator.add_token("admin");
    println!("JENKINS_OPERATOR_TEST_JENKINS_URL={}", emulator.url());
    println!("JENKINS_OPERATOR_TEST_JENKINS_USER=admin");
    println!("JENKINS_OPERATOR_TEST_JENKINS_TOKEN={token}");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

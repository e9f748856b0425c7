//! Chooses what the client tests talk to: a fresh emulator per test, or, when
//! `JENKINS_OPERATOR_TEST_JENKINS_URL`, `…_USER` and `…_TOKEN` are set, a real Jenkins.
//!
//! Against a real Jenkins every test works inside its own folder (`jo-test-<random>`), deleted
//! when the test ends (passed, failed or skipped). Tests that need emulator controls print why
//! and skip.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use jenkins_emulator::{EmulatorConfig, JenkinsEmulator};
use jenkins_operator::jenkins::{Credential, JenkinsClient, JenkinsConfig, JobPath};
use url::Url;

pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "s3cret-password";

/// What a test runs against.
pub struct Target {
    pub client: JenkinsClient,
    emulator: Option<JenkinsEmulator>,
    /// Folder holding this test's items on a real Jenkins.
    folder: Option<JobPath>,
    config: JenkinsConfig,
}

/// The real Jenkins named by the environment, if any.
fn real() -> Option<(Url, String, String)> {
    let url = std::env::var("JENKINS_OPERATOR_TEST_JENKINS_URL").ok()?;
    let user = std::env::var("JENKINS_OPERATOR_TEST_JENKINS_USER").ok()?;
    let token = std::env::var("JENKINS_OPERATOR_TEST_JENKINS_TOKEN").ok()?;
    let url = Url::parse(&url).expect("JENKINS_OPERATOR_TEST_JENKINS_URL is not a URL");
    Some((url, user, token))
}

/// Fast retries so that retry tests stay quick.
pub fn fast(mut config: JenkinsConfig) -> JenkinsConfig {
    config.retries = 2;
    config.retry_backoff = Duration::from_millis(5);
    config.request_timeout = Duration::from_secs(10);
    config
}

impl Target {
    /// The default target: API-token authentication.
    pub async fn start() -> Target {
        Target::start_with(EmulatorConfig::default(), false).await
    }

    /// An emulator with `config`; `password` authenticates with a password instead of a token.
    /// Against a real Jenkins the configuration is ignored.
    pub async fn start_with(config: EmulatorConfig, password: bool) -> Target {
        if let Some((url, user, token)) = real() {
            let config = fast(JenkinsConfig::new(url, user, Credential::api_token(token)));
            let client = JenkinsClient::new(config.clone()).expect("client");
            let folder = JobPath::parse(&format!("jo-test-{}", random_suffix())).unwrap();
            client.ensure_folder(&folder).await.expect("test folder");
            return Target {
                client,
                emulator: None,
                folder: Some(folder),
                config,
            };
        }
        let emulator = JenkinsEmulator::start(config).await.expect("emulator");
        emulator.add_user(ADMIN, PASSWORD);
        let secret = if password {
            Credential::password(PASSWORD)
        } else {
            Credential::api_token(emulator.add_token(ADMIN))
        };
        let config = fast(JenkinsConfig::new(emulator.url(), ADMIN, secret));
        let client = JenkinsClient::new(config.clone()).expect("client");
        Target {
            client,
            emulator: Some(emulator),
            folder: None,
            config,
        }
    }

    /// The emulator, or `None` (with a note on stderr) when running against a real Jenkins.
    pub fn emulator(&self, needs: &str) -> Option<&JenkinsEmulator> {
        if self.emulator.is_none() {
            eprintln!("skipped against a real Jenkins: this test needs {needs}");
        }
        self.emulator.as_ref()
    }

    /// True against the emulator (no note printed: for assertions only the emulator allows).
    pub fn is_emulated(&self) -> bool {
        self.emulator.is_some()
    }

    /// The client configuration, to build variants of the client.
    pub fn config(&self) -> JenkinsConfig {
        self.config.clone()
    }

    /// A path for a test item (inside the test's folder on a real Jenkins).
    pub fn path(&self, full_name: &str) -> JobPath {
        match &self.folder {
            Some(folder) => JobPath::parse(&format!("{folder}/{full_name}")).unwrap(),
            None => JobPath::parse(full_name).unwrap(),
        }
    }

    /// Full name as the emulator knows it.
    pub fn full_name(&self, full_name: &str) -> String {
        self.path(full_name).full_name()
    }
}

impl Drop for Target {
    /// Removes the test's folder from a real Jenkins, also when the test failed or skipped.
    fn drop(&mut self) {
        let Some(folder) = self.folder.take() else {
            return;
        };
        let config = self.config.clone();
        // Drop cannot await: delete from a thread with its own runtime, and a client of its own
        // (pooled connections belong to the test's runtime).
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let delete = async move { JenkinsClient::new(config)?.delete_job(&folder).await };
            if let Ok(runtime) = runtime
                && let Err(error) = runtime.block_on(delete)
            {
                eprintln!("could not delete a test folder: {error}");
            }
        });
        let _ = cleanup.join();
    }
}

fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{nanos:08x}")
}

/// Polls `check` until it returns `Some`, failing the test after 10 seconds.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A pipeline job's config.xml with optional parameter definitions (raw XML).
pub fn pipeline(description: &str, parameters: &str, script: &str) -> String {
    let properties = if parameters.is_empty() {
        "<properties/>".to_string()
    } else {
        format!(
            "<properties><hudson.model.ParametersDefinitionProperty><parameterDefinitions>\
             {parameters}</parameterDefinitions></hudson.model.ParametersDefinitionProperty>\
             </properties>"
        )
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<flow-definition plugin="workflow-job">
  <description>{description}</description>
  <keepDependencies>false</keepDependencies>
  {properties}
  <definition class="org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition" plugin="workflow-cps">
    <script>{script}</script>
    <sandbox>true</sandbox>
  </definition>
  <triggers/>
  <disabled>false</disabled>
</flow-definition>
"#
    )
}

/// String, choice and boolean parameter definitions.
pub const PARAMETERS: &str = "\
<hudson.model.StringParameterDefinition><name>TARGET</name><description>where</description>\
<defaultValue>staging</defaultValue><trim>false</trim></hudson.model.StringParameterDefinition>\
<hudson.model.ChoiceParameterDefinition><name>SIZE</name><description/>\
<choices class=\"java.util.Arrays$ArrayList\"><a class=\"string-array\"><string>small</string>\
<string>large</string></a></choices></hudson.model.ChoiceParameterDefinition>\
<hudson.model.BooleanParameterDefinition><name>DRY</name><description/>\
<defaultValue>true</defaultValue></hudson.model.BooleanParameterDefinition>";

//! An in-process Jenkins REST API emulator for jenkins-operator's tests.
//!
//! It reproduces the behaviours listed in `JENKINS_API.md`, including the unkind ones: 403 for
//! anonymous requests, crumbs bound to session cookies, 400 with `X-Error` for bad names, 500 for
//! malformed config.xml, queue items whose `executable` is null for a poll, forgotten left items,
//! opaque progressive-log cursors, 503 while starting, `tree` parameters that prune answers
//! (with `{M,N}` list ranges), a job's `builds` limited to the newest 100 (`allBuilds` only
//! through a tree), queue items whose `why` changes on every read (a quiet period or an ETA
//! counting down), a declarative Jenkinsfile rewriting its job's parameters when a build starts.
//! Tests drive the clock-free parts directly (`finish_build`, `release_queue`,
//! `forget_left_items`, `expire_sessions`, `release_held`) so they never sleep.
//!
//! Limits: one executor pool with no labels; no SCM, no pipeline execution (logs and results are
//! set by the test; of a Jenkinsfile only its `parameters` directive); unknown config elements
//! are kept rather than dropped; no views, no
//! multibranch indexing; `DELETE` and `doDelete` do not check item permissions.

mod http;
mod jenkinsfile;
mod model;
mod tree;
mod xml;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use model::{Failure, Item, State, User};

/// How a build ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildResult {
    /// `SUCCESS`
    Success,
    /// `UNSTABLE`
    Unstable,
    /// `FAILURE`
    Failure,
    /// `NOT_BUILT`
    NotBuilt,
    /// `ABORTED`
    Aborted,
}

/// A build outcome that a job's builds reach by themselves after `duration`.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The result the build ends with.
    pub result: BuildResult,
    /// How long the build runs.
    pub duration: Duration,
    /// Console text written when the build starts.
    pub log: String,
}

/// What a pipeline's Jenkinsfile does to its own job when a build starts: its declarative
/// `parameters { ... }` directive, which Jenkins applies to the job's configuration at the
/// start of every build (see `docs/jenkins-api.md`, "What a Jenkinsfile changes").
#[derive(Debug, Clone, Default)]
pub struct Jenkinsfile {
    /// The `string(...)` parameters of its `parameters` directive, in order.
    pub parameters: Vec<DeclaredParameter>,
}

/// A `string(name: ..., defaultValue: ..., description: ...)` parameter of a Jenkinsfile.
#[derive(Debug, Clone)]
pub struct DeclaredParameter {
    /// Parameter name.
    pub name: String,
    /// Default value.
    pub default_value: String,
    /// Help text, if the Jenkinsfile gives one.
    pub description: Option<String>,
}

/// A plugin in the plugin manager's list.
#[derive(Debug, Clone)]
pub struct Plugin {
    /// Plugin id, e.g. `configuration-as-code`.
    pub short_name: String,
    /// Installed version.
    pub version: String,
    /// Loaded and running.
    pub active: bool,
    /// Enabled for the next start.
    pub enabled: bool,
}

impl Plugin {
    /// An active, enabled plugin.
    pub fn new(short_name: &str, version: &str) -> Plugin {
        Plugin {
            short_name: short_name.into(),
            version: version.into(),
            active: true,
            enabled: true,
        }
    }
}

/// What a JCasC reload does when the token matches.
#[derive(Debug, Clone)]
pub enum CascReload {
    /// The configuration applies: 200.
    Applied,
    /// The configuration fails to apply: 500 with this message in the body.
    Fails(String),
}

/// One request as the emulator saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Raw (still percent-encoded) path, including any prefix.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Authenticated user, if any.
    pub user: Option<String>,
    /// Status code answered.
    pub status: u16,
}

/// A fault to inject.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Delay every response by this long.
    Latency(Duration),
    /// Answer the next `count` requests whose path (after the prefix) starts with `path_prefix`
    /// with `status` and a short body.
    FailNext {
        /// Path prefix such as `/api/json` or `/createItem`.
        path_prefix: String,
        /// How many requests fail.
        count: u32,
        /// Status to answer.
        status: u16,
    },
    /// Receive the next `count` requests whose path ends with `path_suffix` but answer them
    /// only after [`JenkinsEmulator::release_held`]: a request on its way, or one Jenkins is
    /// slow to process. A held request is processed when released even if its client has
    /// given up by then, as Jenkins finishes a request it has received.
    Hold {
        /// Path suffix such as `/buildWithParameters`.
        path_suffix: String,
        /// How many requests are held.
        count: u32,
    },
}

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Version in the `X-Jenkins` header.
    pub version: String,
    /// CSRF protection (crumbs) on.
    pub csrf: bool,
    /// Quiet period before a queued build starts.
    pub quiet_period: Duration,
    /// How long left queue items are remembered (Jenkins: 5 minutes).
    pub left_item_ttl: Duration,
    /// Polls of a left item that still show `executable: null`.
    pub left_executable_null_polls: u32,
    /// Polls of a finished build that still show `building: true` beside the result.
    pub result_before_done_polls: u32,
    /// Builds that may run at once.
    pub executors: usize,
    /// Context path such as `/jenkins`; empty for none.
    pub prefix: String,
    /// Outcome of builds of jobs without their own; `None` runs builds until `finish_build`.
    pub default_outcome: Option<Outcome>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            version: "2.516.1".into(),
            csrf: true,
            quiet_period: Duration::ZERO,
            left_item_ttl: Duration::from_secs(300),
            left_executable_null_polls: 1,
            result_before_done_polls: 1,
            executors: 2,
            prefix: String::new(),
            default_outcome: None,
        }
    }
}

/// A snapshot of a build, for assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSnapshot {
    /// Build number.
    pub number: u64,
    /// Queue item it came from.
    pub queue_id: u64,
    /// Still running (as the next poll would see it).
    pub building: bool,
    /// Result once set.
    pub result: Option<BuildResult>,
    /// Parameters it ran with.
    pub params: Vec<(String, String)>,
}

struct Shared {
    state: Mutex<State>,
    paused: watch::Sender<bool>,
    /// The number of releases of held requests so far.
    released: watch::Sender<u64>,
}

/// A running emulator; the server stops when this is dropped.
pub struct JenkinsEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for JenkinsEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JenkinsEmulator {
    /// Starts an emulator on 127.0.0.1 with a free port.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<JenkinsEmulator> {
        let (paused, _) = watch::channel(false);
        let (released, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config)),
            paused,
            released,
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = http::router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "jenkins emulator stopped");
            }
        });
        Ok(JenkinsEmulator { shared, addr, task })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a test already panicked; keep going with the data.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Base URL with the prefix and a trailing slash, e.g. `http://127.0.0.1:4321/jenkins/`.
    pub fn url(&self) -> Url {
        let prefix = self.state().config.prefix.trim_matches('/').to_string();
        let path = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let text = format!("http://{}/{path}", self.addr);
        Url::parse(&text).unwrap_or_else(|e| panic!("emulator url {text} is invalid: {e}"))
    }

    /// Adds (or replaces) a user with a password.
    pub fn add_user(&self, name: &str, password: &str) {
        let mut state = self.state();
        let tokens = state
            .users
            .remove(name)
            .map(|u| u.tokens)
            .unwrap_or_default();
        state.users.insert(
            name.into(),
            User {
                password: password.into(),
                tokens,
            },
        );
    }

    /// Creates an API token for an existing user (or a new user without a usable password).
    pub fn add_token(&self, name: &str) -> String {
        let token = format!("11{}", model::random_hex(16));
        let mut state = self.state();
        let user = state.users.entry(name.into()).or_insert_with(|| User {
            password: model::random_hex(16),
            tokens: Vec::new(),
        });
        user.tokens.push(token.clone());
        token
    }

    /// Turns CSRF protection on or off.
    pub fn set_csrf(&self, on: bool) {
        self.state().csrf = on;
    }

    /// While starting, every request gets 503.
    pub fn set_starting(&self, starting: bool) {
        self.state().starting = starting;
    }

    /// Invalidates every HTTP session, so cached crumbs stop working.
    pub fn expire_sessions(&self) {
        self.state().sessions.clear();
    }

    /// Replaces the plugin list.
    pub fn set_plugins(&self, plugins: Vec<Plugin>) {
        self.state().plugins = plugins;
    }

    /// Configures the JCasC token endpoint: `None` means no token is configured (404).
    pub fn set_casc_reload(&self, token: Option<&str>, behaviour: CascReload) {
        let mut state = self.state();
        state.casc_token = token.map(str::to_string);
        state.casc_reload = behaviour;
    }

    /// Sets the JCasC files a reload would read (a YAML stream, as mounted in the pod).
    pub fn set_casc_source(&self, yaml: String) {
        self.state().casc_source = yaml;
    }

    /// The JCasC files a reload would read now.
    pub fn casc_source(&self) -> String {
        self.state().casc_source.clone()
    }

    /// Loads the JCasC files as Jenkins does when it starts.
    pub fn load_casc_source(&self) {
        self.state().load_casc_source();
    }

    /// The system message of the loaded configuration (root API `description`).
    pub fn system_message(&self) -> String {
        self.state().system_message.clone()
    }

    /// How many reloads were attempted with a valid token.
    pub fn casc_reload_count(&self) -> u32 {
        self.state().casc_reload_count
    }

    /// Full names of all items, folders included (e.g. `A`, `A/b c`).
    pub fn jobs(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.state().root.full_names("", &mut names);
        names.sort();
        names
    }

    /// The stored config.xml of the item at `full_name` (`A/b`), looked up case-insensitively.
    pub fn job_config(&self, full_name: &str) -> Option<String> {
        self.state()
            .item(&split(full_name))
            .map(|i| i.config().to_string())
    }

    /// Replaces an item's config.xml without any checks, as a user editing the UI would.
    pub fn set_job_config_raw(&self, full_name: &str, config: &str) {
        let mut state = self.state();
        let parsed = model::parse_config(config);
        if let Some(item) = state.item_mut(&split(full_name)) {
            match (item, parsed) {
                (Item::Job(job), Ok(parsed)) => job.apply_config(config, parsed),
                (Item::Job(job), Err(_)) => job.config = config.into(),
                (Item::Folder(folder), _) => folder.config = config.into(),
            }
        }
    }

    /// Gives a pipeline job a declarative Jenkinsfile (`None`: one that changes nothing): every
    /// build that starts from now on applies its directives to the job's config.xml, as
    /// pipeline-model-definition does.
    pub fn set_jenkinsfile(&self, full_name: &str, jenkinsfile: Option<Jenkinsfile>) {
        if let Some(job) = self.state().job_mut(&split(full_name)) {
            job.jenkinsfile = jenkinsfile;
        }
    }

    /// Sets how a job's future builds end by themselves (`None`: they wait for `finish_build`).
    pub fn set_job_outcome(&self, full_name: &str, outcome: Option<Outcome>) {
        if let Some(job) = self.state().job_mut(&split(full_name)) {
            job.outcome = outcome;
        }
    }

    /// Ends the quiet period of every waiting queue item.
    pub fn release_queue(&self) {
        let mut state = self.state();
        let now = std::time::Instant::now();
        for entry in state.queue.iter_mut().filter(|e| e.left.is_none()) {
            entry.ready_at = now;
        }
        state.tick();
    }

    /// Forgets every left queue item, as Jenkins does after five minutes.
    pub fn forget_left_items(&self) {
        self.state().queue.retain(|e| e.left.is_none());
    }

    /// Ends a running build with `result`. Returns false when there is no such running build.
    pub fn finish_build(&self, full_name: &str, number: u64, result: BuildResult) -> bool {
        let mut state = self.state();
        state.tick();
        let lingering = state.config.result_before_done_polls;
        let Some(build) = state
            .job_mut(&split(full_name))
            .and_then(|j| j.build_mut(number))
        else {
            return false;
        };
        if build.result.is_some() {
            return false;
        }
        build.finish(result, lingering);
        true
    }

    /// Appends console text to a running build.
    pub fn append_log(&self, full_name: &str, number: u64, text: &str) {
        let mut state = self.state();
        if let Some(build) = state
            .job_mut(&split(full_name))
            .and_then(|j| j.build_mut(number))
            && build.result.is_none()
        {
            build.log.push_str(text);
        }
    }

    /// A snapshot of a build.
    pub fn build(&self, full_name: &str, number: u64) -> Option<BuildSnapshot> {
        let mut state = self.state();
        state.tick();
        let build = state.job(&split(full_name))?.build(number)?;
        Some(BuildSnapshot {
            number: build.number,
            queue_id: build.queue_id,
            building: build.building,
            result: build.result,
            params: build.params.clone(),
        })
    }

    /// Ids of queue items that have not left the queue.
    pub fn queued(&self) -> Vec<u64> {
        let mut state = self.state();
        state.tick();
        state
            .queue
            .iter()
            .filter(|e| e.left.is_none())
            .map(|e| e.id)
            .collect()
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().requests.clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Injects a fault.
    pub fn inject(&self, fault: Fault) {
        let mut state = self.state();
        match fault {
            Fault::Latency(latency) => state.latency = latency,
            Fault::FailNext {
                path_prefix,
                count,
                status,
            } => state.failures.push(Failure {
                prefix: path_prefix,
                count,
                status,
            }),
            Fault::Hold { path_suffix, count } => state.holds.push((path_suffix, count)),
        }
    }

    /// How many requests are held now (see [`Fault::Hold`]).
    pub fn held(&self) -> usize {
        self.state().held
    }

    /// Lets every held request go on to be processed.
    pub fn release_held(&self) {
        let mut state = self.state();
        state.releases += 1;
        state.held = 0;
        let releases = state.releases;
        drop(state);
        self.shared.released.send_replace(releases);
    }

    /// Removes all injected faults (requests already held stay held until released).
    pub fn clear_faults(&self) {
        let mut state = self.state();
        state.latency = Duration::ZERO;
        state.failures.clear();
        state.holds.clear();
    }

    /// Holds every response until `unpause`.
    pub fn pause(&self) {
        self.shared.paused.send_replace(true);
    }

    /// Releases held responses.
    pub fn unpause(&self) {
        self.shared.paused.send_replace(false);
    }
}

fn split(full_name: &str) -> Vec<String> {
    full_name.split('/').map(str::to_string).collect()
}

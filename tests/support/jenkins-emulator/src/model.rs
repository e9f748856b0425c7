//! The emulated Jenkins' data: users, sessions, the item tree, the queue and builds, and the
//! clock-driven transitions between queue and build states.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::xml;
use crate::{
    BuildResult, CascReload, EmulatorConfig, Jenkinsfile, Outcome, Plugin, RequestRecord,
    jenkinsfile,
};

pub(crate) const FOLDER_ROOT: &str = "com.cloudbees.hudson.plugins.folder.Folder";
pub(crate) const MULTIBRANCH_ROOT: &str =
    "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject";

/// Everything behind the emulator's lock.
pub(crate) struct State {
    pub config: EmulatorConfig,
    pub csrf: bool,
    pub starting: bool,
    pub users: BTreeMap<String, User>,
    /// Session id -> crumb issued for it.
    pub sessions: HashMap<String, String>,
    pub cookie_name: String,
    pub root: Folder,
    pub queue: Vec<QueueEntry>,
    pub next_queue_id: u64,
    pub plugins: Vec<Plugin>,
    pub casc_token: Option<String>,
    pub casc_reload: CascReload,
    pub casc_reload_count: u32,
    /// The JCasC files Jenkins would read on a reload (a YAML stream), if the test set them.
    pub casc_source: String,
    /// `jenkins.systemMessage` of the last configuration loaded; the root API's description.
    pub system_message: String,
    pub requests: Vec<RequestRecord>,
    pub failures: Vec<Failure>,
    /// Requests to hold until released, by path suffix, and how many more to hold.
    pub holds: Vec<(String, u32)>,
    /// Requests held now.
    pub held: usize,
    /// How many times held requests were released; a request waits for the next release.
    pub releases: u64,
    pub latency: Duration,
}

/// A user with a password and any number of API tokens.
pub(crate) struct User {
    pub password: String,
    pub tokens: Vec<String>,
}

/// An injected failure: the next `count` requests whose path starts with `prefix`.
pub(crate) struct Failure {
    pub prefix: String,
    pub count: u32,
    pub status: u16,
}

/// A node of the item tree.
pub(crate) enum Item {
    Folder(Folder),
    Job(Job),
}

/// A folder (or a multibranch project) holding items; children keyed by lower-cased name.
#[derive(Default)]
pub(crate) struct Folder {
    pub name: String,
    pub config: String,
    pub root_element: String,
    pub children: BTreeMap<String, Item>,
}

/// A buildable job.
pub(crate) struct Job {
    pub name: String,
    pub config: String,
    pub root_element: String,
    pub description: String,
    pub disabled: bool,
    pub concurrent: bool,
    pub params: Vec<ParamDef>,
    pub next_build_number: u64,
    pub builds: Vec<Build>,
    pub outcome: Option<Outcome>,
    /// What the pipeline's Jenkinsfile changes in the job when a build starts.
    pub jenkinsfile: Option<Jenkinsfile>,
}

/// A parameter definition read from config.xml.
#[derive(Clone, Debug)]
pub(crate) struct ParamDef {
    pub name: String,
    pub kind: ParamKind,
    pub default: String,
    pub description: String,
}

#[derive(Clone, Debug)]
pub(crate) enum ParamKind {
    String,
    Choice(Vec<String>),
    Boolean,
}

/// An entry of the queue, alive or left.
pub(crate) struct QueueEntry {
    pub id: u64,
    pub job: Vec<String>,
    pub params: Vec<(String, String)>,
    pub since_ms: u64,
    pub ready_at: Instant,
    pub left: Option<Left>,
}

/// What a queue item became once it left the queue.
pub(crate) struct Left {
    pub at: Instant,
    pub cancelled: bool,
    pub executable: Option<u64>,
    /// Polls that still see `executable: null` although a build exists.
    pub null_polls: u32,
}

/// A build of a job.
pub(crate) struct Build {
    pub number: u64,
    pub queue_id: u64,
    pub params: Vec<(String, String)>,
    pub started: Instant,
    pub timestamp_ms: u64,
    pub building: bool,
    pub result: Option<BuildResult>,
    pub duration_ms: u64,
    pub log: String,
    pub finish_at: Option<(Instant, BuildResult)>,
    pub abort_requested: bool,
    /// Polls of the build that still see `building: true` after the result is set.
    pub done_after_polls: u32,
}

/// What a job's config.xml says, as far as the emulator cares.
pub(crate) struct ParsedConfig {
    pub root_element: String,
    pub description: String,
    pub disabled: bool,
    pub concurrent: bool,
    pub params: Vec<ParamDef>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Random lower-case hex, `bytes` bytes long.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The OS random source does not fail on the platforms the tests run on; a zero buffer
    // would still give working (if predictable) ids.
    let _ = getrandom::fill(&mut buf);
    hex::encode(buf)
}

/// Reads a config.xml as Jenkins would: well-formedness, known root, parameters.
pub(crate) fn parse_config(text: &str) -> Result<ParsedConfig, String> {
    let root = xml::parse(text)?;
    match root.name.as_str() {
        "flow-definition" | "project" | FOLDER_ROOT | MULTIBRANCH_ROOT => {}
        other => return Err(format!("unknown item type {other}")),
    }
    let mut params = Vec::new();
    let mut concurrent = true;
    if let Some(properties) = root.child("properties") {
        for property in properties.elements() {
            if property
                .name
                .ends_with("DisableConcurrentBuildsJobProperty")
            {
                concurrent = false;
            }
            if property.name != "hudson.model.ParametersDefinitionProperty" {
                continue;
            }
            let Some(definitions) = property.child("parameterDefinitions") else {
                continue;
            };
            for definition in definitions.elements() {
                params.push(parse_param(definition)?);
            }
        }
    }
    Ok(ParsedConfig {
        root_element: root.name.clone(),
        description: root.child_text("description").unwrap_or_default(),
        disabled: root
            .child_text("disabled")
            .is_some_and(|t| t.trim() == "true"),
        concurrent,
        params,
    })
}

fn parse_param(definition: &xml::Element) -> Result<ParamDef, String> {
    let name = definition.child_text("name").unwrap_or_default();
    let description = definition.child_text("description").unwrap_or_default();
    let class = definition.name.as_str();
    let (kind, default) = if class.ends_with("ChoiceParameterDefinition") {
        let holder = definition.child("choices");
        let strings: Vec<String> = holder
            .map(|c| c.child("a").unwrap_or(c))
            .map(|c| {
                c.elements()
                    .filter(|e| e.name == "string")
                    .map(|e| e.text())
                    .collect()
            })
            .unwrap_or_default();
        let default = strings.first().cloned().unwrap_or_default();
        (ParamKind::Choice(strings), default)
    } else if class.ends_with("BooleanParameterDefinition") {
        let default = definition.child_text("defaultValue").unwrap_or_default();
        (
            ParamKind::Boolean,
            if default.trim() == "true" {
                "true"
            } else {
                "false"
            }
            .into(),
        )
    } else if class.ends_with("StringParameterDefinition")
        || class.ends_with("TextParameterDefinition")
    {
        (
            ParamKind::String,
            definition.child_text("defaultValue").unwrap_or_default(),
        )
    } else {
        return Err(format!("unsupported parameter definition {class}"));
    };
    Ok(ParamDef {
        name,
        kind,
        default,
        description,
    })
}

/// Sets or inserts `<disabled>` in a stored config.xml, as Jenkins does when it saves the job.
pub(crate) fn with_disabled(config: &str, disabled: bool) -> String {
    let value = format!("<disabled>{disabled}</disabled>");
    for old in [
        "<disabled>true</disabled>",
        "<disabled>false</disabled>",
        "<disabled/>",
    ] {
        if config.contains(old) {
            return config.replacen(old, &value, 1);
        }
    }
    match config.rfind("</") {
        Some(at) => format!("{}{value}{}", &config[..at], &config[at..]),
        None => config.to_string(),
    }
}

/// Rewrites the prologue the way Jenkins does when it stores a config.xml.
pub(crate) fn jenkins_prologue(config: &str) -> String {
    let body = match config.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map(|(_, b)| b).unwrap_or(rest),
        None => config,
    };
    format!(
        "<?xml version='1.1' encoding='UTF-8'?>\n{}",
        body.trim_start()
    )
}

impl Item {
    pub fn name(&self) -> &str {
        match self {
            Item::Folder(f) => &f.name,
            Item::Job(j) => &j.name,
        }
    }

    pub fn config(&self) -> &str {
        match self {
            Item::Folder(f) => &f.config,
            Item::Job(j) => &j.config,
        }
    }

    pub fn root_element(&self) -> &str {
        match self {
            Item::Folder(f) => &f.root_element,
            Item::Job(j) => &j.root_element,
        }
    }
}

impl Folder {
    pub fn get(&self, name: &str) -> Option<&Item> {
        self.children.get(&name.to_lowercase())
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Item> {
        self.children.get_mut(&name.to_lowercase())
    }

    /// Every job under this folder, at any depth. No paths are built: [`State::tick`] runs
    /// on every request, and cloning every job's path made a cold start of thousands of jobs
    /// quadratic in allocations.
    fn for_each_job_mut(&mut self, visit: &mut impl FnMut(&mut Job)) {
        for item in self.children.values_mut() {
            match item {
                Item::Folder(f) => f.for_each_job_mut(visit),
                Item::Job(j) => visit(j),
            }
        }
    }

    /// The folder at `path` below this one (this one for an empty path).
    fn descend_mut(&mut self, path: &[String]) -> Option<&mut Folder> {
        let mut folder = self;
        for name in path {
            match folder.get_mut(name)? {
                Item::Folder(f) => folder = f,
                Item::Job(_) => return None,
            }
        }
        Some(folder)
    }

    /// The job at `path` below this folder.
    fn job_mut(&mut self, path: &[String]) -> Option<&mut Job> {
        let (name, parent) = path.split_last()?;
        match self.descend_mut(parent)?.get_mut(name)? {
            Item::Job(j) => Some(j),
            Item::Folder(_) => None,
        }
    }

    pub fn full_names(&self, prefix: &str, out: &mut Vec<String>) {
        for item in self.children.values() {
            let full = format!("{prefix}{}", item.name());
            if let Item::Folder(f) = item {
                f.full_names(&format!("{full}/"), out);
            }
            out.push(full);
        }
    }
}

impl Job {
    pub fn from_config(name: &str, config: &str, parsed: ParsedConfig) -> Job {
        Job {
            name: name.to_string(),
            config: jenkins_prologue(config),
            root_element: parsed.root_element,
            description: parsed.description,
            disabled: parsed.disabled,
            concurrent: parsed.concurrent,
            params: parsed.params,
            next_build_number: 1,
            builds: Vec::new(),
            outcome: None,
            jenkinsfile: None,
        }
    }

    pub fn apply_config(&mut self, config: &str, parsed: ParsedConfig) {
        self.config = jenkins_prologue(config);
        self.description = parsed.description;
        self.disabled = parsed.disabled;
        self.concurrent = parsed.concurrent;
        self.params = parsed.params;
    }

    /// A build started: its Jenkinsfile's directives rewrite the job's configuration.
    pub fn run_jenkinsfile(&mut self) {
        let Some(jenkinsfile) = &self.jenkinsfile else {
            return;
        };
        let Some(config) = jenkinsfile::declarative_run(&self.config, jenkinsfile) else {
            return;
        };
        if let Ok(parsed) = parse_config(&config) {
            self.apply_config(&config, parsed);
        }
    }

    pub fn build(&self, number: u64) -> Option<&Build> {
        self.builds.iter().find(|b| b.number == number)
    }

    pub fn build_mut(&mut self, number: u64) -> Option<&mut Build> {
        self.builds.iter_mut().find(|b| b.number == number)
    }

    /// Builds holding an executor: those without a result (a lingering `building` flag is
    /// only what the JSON shows).
    pub fn running(&self) -> usize {
        self.builds.iter().filter(|b| b.result.is_none()).count()
    }

    pub fn color(&self) -> String {
        if self.disabled {
            return "disabled".into();
        }
        let last_done = self.builds.iter().rev().find_map(|b| b.result);
        let base = match last_done {
            None => "notbuilt",
            Some(BuildResult::Success) => "blue",
            Some(BuildResult::Unstable) => "yellow",
            Some(BuildResult::Failure) => "red",
            Some(BuildResult::NotBuilt) => "notbuilt",
            Some(BuildResult::Aborted) => "aborted",
        };
        if self.builds.iter().any(|b| b.building) {
            format!("{base}_anime")
        } else {
            base.into()
        }
    }
}

impl Build {
    /// Ends the build with `result`; `building` stays true for `lingering` more polls.
    pub fn finish(&mut self, result: BuildResult, lingering: u32) {
        if self.result.is_some() {
            return;
        }
        self.log
            .push_str(&format!("Finished: {}\n", result.as_str()));
        self.result = Some(result);
        self.finish_at = None;
        self.duration_ms = (self.started.elapsed().as_millis() as u64).max(1);
        self.done_after_polls = lingering;
        if lingering == 0 {
            self.building = false;
        }
    }

    /// A poll of the build's JSON: a lingering `building` flag drops after enough polls.
    pub fn observe(&mut self) {
        if self.building && self.result.is_some() {
            if self.done_after_polls == 0 {
                self.building = false;
            } else {
                self.done_after_polls -= 1;
            }
        }
    }
}

impl State {
    pub fn new(config: EmulatorConfig) -> State {
        State {
            csrf: config.csrf,
            starting: false,
            users: BTreeMap::new(),
            sessions: HashMap::new(),
            cookie_name: format!("JSESSIONID.{}", random_hex(4)),
            root: Folder {
                root_element: "hudson.model.Hudson".into(),
                ..Folder::default()
            },
            queue: Vec::new(),
            next_queue_id: 1,
            plugins: Vec::new(),
            casc_token: None,
            casc_reload: CascReload::Applied,
            casc_reload_count: 0,
            casc_source: String::new(),
            system_message: String::new(),
            requests: Vec::new(),
            failures: Vec::new(),
            holds: Vec::new(),
            held: 0,
            releases: 0,
            latency: Duration::ZERO,
            config,
        }
    }

    /// The folder at `path` (the root for an empty path).
    pub fn folder(&self, path: &[String]) -> Option<&Folder> {
        let mut folder = &self.root;
        for name in path {
            match folder.get(name)? {
                Item::Folder(f) => folder = f,
                Item::Job(_) => return None,
            }
        }
        Some(folder)
    }

    pub fn folder_mut(&mut self, path: &[String]) -> Option<&mut Folder> {
        self.root.descend_mut(path)
    }

    pub fn item(&self, path: &[String]) -> Option<&Item> {
        let (name, parent) = path.split_last()?;
        self.folder(parent)?.get(name)
    }

    pub fn item_mut(&mut self, path: &[String]) -> Option<&mut Item> {
        let (name, parent) = path.split_last()?;
        self.folder_mut(parent)?.get_mut(name)
    }

    pub fn job(&self, path: &[String]) -> Option<&Job> {
        match self.item(path)? {
            Item::Job(j) => Some(j),
            Item::Folder(_) => None,
        }
    }

    pub fn job_mut(&mut self, path: &[String]) -> Option<&mut Job> {
        self.root.job_mut(path)
    }

    /// The canonical (stored-case) names of an item path.
    pub fn canonical(&self, path: &[String]) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for i in 0..path.len() {
            out.push(self.item(&path[..=i])?.name().to_string());
        }
        Some(out)
    }

    /// Moves the clock-driven state forward: quiet periods, executors, build ends, forgetting.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let lingering = self.config.result_before_done_polls;

        // Builds that end by themselves (a default outcome, or an abort).
        let mut running = 0;
        self.root.for_each_job_mut(&mut |job| {
            for build in job.builds.iter_mut().filter(|b| b.result.is_none()) {
                if build.abort_requested {
                    build.log.push_str("Aborted by user\n");
                    build.finish(BuildResult::Aborted, lingering);
                } else if let Some((at, result)) = build.finish_at
                    && at <= now
                {
                    build.finish(result, lingering);
                }
            }
            running += job.running();
        });

        // Queue items whose quiet period is over start when an executor is free.
        let null_polls = self.config.left_executable_null_polls;
        let executors = self.config.executors;
        for entry in self
            .queue
            .iter_mut()
            .filter(|e| e.left.is_none() && e.ready_at <= now)
        {
            let Some(job) = self.root.job_mut(&entry.job) else {
                entry.left = Some(Left {
                    at: now,
                    cancelled: true,
                    executable: None,
                    null_polls: 0,
                });
                continue;
            };
            if running >= executors || (!job.concurrent && job.running() > 0) {
                continue;
            }
            let number = job.next_build_number;
            job.next_build_number += 1;
            let finish_at = job
                .outcome
                .as_ref()
                .or(self.config.default_outcome.as_ref())
                .map(|o| (now + o.duration, o.result));
            let mut log = String::from("Started by user\n");
            if let Some(outcome) = job
                .outcome
                .as_ref()
                .or(self.config.default_outcome.as_ref())
            {
                log.push_str(&outcome.log);
            }
            job.builds.push(Build {
                number,
                queue_id: entry.id,
                params: entry.params.clone(),
                started: now,
                timestamp_ms: now_ms(),
                building: true,
                result: None,
                duration_ms: 0,
                log,
                finish_at,
                abort_requested: false,
                done_after_polls: 0,
            });
            job.run_jenkinsfile();
            running += 1;
            entry.left = Some(Left {
                at: now,
                cancelled: false,
                executable: Some(number),
                null_polls,
            });
        }

        // Left items are forgotten after a while.
        let ttl = self.config.left_item_ttl;
        self.queue.retain(|e| {
            e.left
                .as_ref()
                .is_none_or(|l| now.duration_since(l.at) < ttl)
        });
    }

    /// Whether a request to `path` is to be held: the release it must wait for (the next one).
    pub fn hold(&mut self, path: &str) -> Option<u64> {
        let (_, count) = self
            .holds
            .iter_mut()
            .find(|(suffix, count)| *count > 0 && path.ends_with(suffix.as_str()))?;
        *count -= 1;
        self.held += 1;
        Some(self.releases)
    }

    /// Why a waiting queue entry is still waiting, and its `_class` suffix. The texts are
    /// Jenkins' (English) ones, including the parts that change on every read: the time left
    /// of a quiet period and the ETA of the build that blocks a job without concurrent builds.
    pub fn waiting_state(&self, entry: &QueueEntry) -> (&'static str, String) {
        let now = Instant::now();
        if entry.ready_at > now {
            let left = entry.ready_at.duration_since(now);
            return (
                "WaitingItem",
                format!("In the quiet period. Expires in {}", time_span(left)),
            );
        }
        if let Some(job) = self.job(&entry.job)
            && !job.concurrent
            && let Some(running) = job.builds.iter().rev().find(|b| b.result.is_none())
        {
            let eta = job
                .estimated_remaining(running, now)
                .map(time_span)
                .unwrap_or_else(|| "N/A".into());
            return (
                "BlockedItem",
                format!(
                    "Build #{} is already in progress (ETA: {eta})",
                    running.number
                ),
            );
        }
        (
            "BuildableItem",
            "Waiting for next available executor".into(),
        )
    }
}

impl Job {
    /// How much longer a running build is expected to take, as its executor shows it: its
    /// estimated duration (here, the outcome it will reach, else the mean of the last three
    /// successful builds) minus the time it has run; `None` (Jenkins: "N/A") when there is no
    /// estimate or the build has run longer.
    fn estimated_remaining(&self, running: &Build, now: Instant) -> Option<Duration> {
        if let Some((at, _)) = running.finish_at {
            return at.checked_duration_since(now).filter(|d| !d.is_zero());
        }
        let past: Vec<u64> = self
            .builds
            .iter()
            .rev()
            .filter(|b| !b.building && b.result == Some(BuildResult::Success))
            .take(3)
            .map(|b| b.duration_ms)
            .collect();
        if past.is_empty() {
            return None;
        }
        let estimate = Duration::from_millis(past.iter().sum::<u64>() / past.len() as u64);
        estimate
            .checked_sub(now.duration_since(running.started))
            .filter(|d| !d.is_zero())
    }
}

/// A duration the way Jenkins writes one for people (`Util.getTimeSpanString`): the two
/// largest units (the smaller only while the larger is under 10), whole seconds from 10 s up,
/// one decimal below, hundredths under a second, milliseconds under 0.1 s.
pub(crate) fn time_span(duration: Duration) -> String {
    let ms = duration.as_millis() as u64;
    let (hours, minutes, seconds) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
    let pair = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if big < 10 {
            format!("{big} {big_unit} {small} {small_unit}")
        } else {
            format!("{big} {big_unit}")
        }
    };
    if hours > 0 {
        pair(hours, "hr", minutes, "min")
    } else if minutes > 0 {
        pair(minutes, "min", seconds, "sec")
    } else if seconds >= 10 {
        format!("{seconds} sec")
    } else if seconds >= 1 {
        // Java's MessageFormat drops a zero fraction: "2 sec", "2.5 sec".
        match ms % 1000 / 100 {
            0 => format!("{seconds} sec"),
            tenths => format!("{seconds}.{tenths} sec"),
        }
    } else if ms >= 100 {
        format!("0.{} sec", format!("{:02}", ms / 10).trim_end_matches('0'))
    } else {
        format!("{ms} ms")
    }
}

impl BuildResult {
    /// The name Jenkins uses in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildResult::Success => "SUCCESS",
            BuildResult::Unstable => "UNSTABLE",
            BuildResult::Failure => "FAILURE",
            BuildResult::NotBuilt => "NOT_BUILT",
            BuildResult::Aborted => "ABORTED",
        }
    }
}

impl State {
    /// Loads the JCasC files the way a reload or a start does: here, only the system message
    /// is kept (the last document that sets one wins, as later files override earlier ones).
    pub fn load_casc_source(&mut self) {
        let mut message = None;
        for document in
            serde_saphyr::from_multiple::<serde_json::Value>(&self.casc_source).unwrap_or_default()
        {
            if let Some(text) = document
                .pointer("/jenkins/systemMessage")
                .and_then(|v| v.as_str())
            {
                message = Some(text.to_string());
            }
        }
        if let Some(message) = message {
            self.system_message = message;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_spans_read_as_jenkins_writes_them() {
        let span = |ms: u64| time_span(Duration::from_millis(ms));
        assert_eq!(span(45), "45 ms");
        assert_eq!(span(120), "0.12 sec");
        assert_eq!(span(500), "0.5 sec");
        assert_eq!(span(4_900), "4.9 sec");
        assert_eq!(span(2_000), "2 sec");
        assert_eq!(span(42_300), "42 sec");
        assert_eq!(span(182_000), "3 min 2 sec");
        assert_eq!(span(725_000), "12 min");
        assert_eq!(span(3_900_000), "1 hr 5 min");
    }
}

//! config.xml documents for the Jenkins items a JenkinsJob produces: pipeline jobs
//! (workflow-job's `flow-definition`), folders (cloudbees-folder) and multibranch projects
//! (workflow-multibranch), generated from the spec only, with quick-xml's writer.
//!
//! ## Text and characters
//! Every piece of user text goes through the writer's escaping (never string concatenation),
//! so `]]>`, `</script>`, `&amp;` and quotes reach Jenkins as the same characters the user
//! wrote. A carriage return is written as `&#13;` (a literal one would become a line feed when
//! Jenkins parses the document) and U+2028 as `&#x2028;` (XML 1.1 turns a literal one into a
//! line feed too).
//!
//! The prologue says `version="1.1"`, like the files Jenkins writes itself, so that a document
//! we generate and one Jenkins serves differ in content only. The characters we accept are the
//! ones that survive both XML 1.0 and 1.1 unchanged: tab, line feed, carriage return and every
//! other character except the C0 and C1 control characters (U+0000-U+001F, U+007F-U+009F) and
//! the non-characters U+FFFE and U+FFFF. XML 1.0 cannot carry C0 controls at all and XML 1.1
//! only as character references that many parsers then refuse; rather than send what Jenkins
//! may answer with a 500, such text is rejected with a problem naming the field.
//!
//! ## Parameters the operator adds
//! Every pipeline job declares, after the user's parameters, the string parameter
//! `JENKINS_OPERATOR_BUILD_ID` (empty by default): a JenkinsBuild passes its own id there, so
//! that two builds with the same user parameters are two queue items (Jenkins merges identical
//! queued parameter sets) and so that the operator can find its build again.
//!
//! Jobs for an environment also declare `ENVIRONMENT`, `TARGET_NAMESPACE` and `AGENT_LABEL`,
//! whose defaults are the environment's name, its namespace and `deploy-<env>`. Parameters,
//! rather than an environment wrapper, because a pipeline sees them as `params.X` and as
//! environment variables with no extra plugin, and they show on the build page.
//!
//! What is enforced and what is not: the operator never rewrites a user's Groovy, so it cannot
//! force an inline script onto the `deploy-<env>` agent. Pipelines choose it with
//! `agent { label params.AGENT_LABEL }`; the agent's `kubectl` container also has ENVIRONMENT
//! and TARGET_NAMESPACE set by the pod template, whatever the job passes.
//!
//! Multibranch projects cannot pass these parameters: Jenkins creates their branch jobs from
//! each Jenkinsfile, and core Jenkins has no folder-level way to add parameters or environment
//! variables to them. Their names carry the environment (`<name>-<env>`).
//!
//! ## Who manages an item
//! The description of every item ends with a line naming the JenkinsJob (with its uid) and
//! whether the operator created the item for it or adopted it ([`marker`]). Jenkins keeps the
//! description as written and shows it on the job page. When `createItem` answers that an item
//! already exists and the status does not record it, that line tells a job this resource
//! created itself (before a status write was lost) from one made by hand or left by another
//! resource; only the first kind is deleted with the resource by default. A description is
//! the one place of a config.xml that holds free text in every item type without a plugin of
//! our own: Jenkins drops elements it has no class for.
//!
//! ## Plugin attributes
//! Jenkins writes `plugin="name@version"` attributes; they only record which plugin version
//! saved a document, Jenkins ignores them on reading, and the operator does not know the
//! installed versions, so generated documents carry none.

use std::borrow::Cow;

use quick_xml::Writer;
use quick_xml::escape::escape;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use sha2::{Digest, Sha256};

use super::invalid::{InvalidJob, Problems};
use super::names::credentials_id;
use crate::api::cluster::EnvironmentSpec;
use crate::api::job::{
    BuildDiscarderSpec, GitSpec, JenkinsJobSpec, JobOrigin, ParameterSpec, ParameterType, ScmSpec,
};
use crate::cluster::environments::deploy_template_name;
use crate::jenkins::{Declared, PARAMETERS_PROPERTY};

/// The parameter a JenkinsBuild fills with its own id.
pub const BUILD_ID_PARAMETER: &str = "JENKINS_OPERATOR_BUILD_ID";
/// The parameter holding the environment's name in environment jobs.
pub const ENVIRONMENT_PARAMETER: &str = "ENVIRONMENT";
/// The parameter holding the environment's namespace in environment jobs.
pub const TARGET_NAMESPACE_PARAMETER: &str = "TARGET_NAMESPACE";
/// The parameter holding the environment's agent label (`deploy-<env>`) in environment jobs.
pub const AGENT_LABEL_PARAMETER: &str = "AGENT_LABEL";
/// Parameter names users cannot declare, besides every name starting with
/// [`RESERVED_PARAMETER_PREFIX`].
pub const RESERVED_PARAMETERS: [&str; 3] = [
    ENVIRONMENT_PARAMETER,
    TARGET_NAMESPACE_PARAMETER,
    AGENT_LABEL_PARAMETER,
];
/// Prefix of the parameters the operator keeps for itself.
pub const RESERVED_PARAMETER_PREFIX: &str = "JENKINS_OPERATOR_";

/// Branch a git pipeline builds when the spec names none.
pub const DEFAULT_BRANCH: &str = "main";
/// Jenkinsfile path when the spec names none.
pub const DEFAULT_SCRIPT_PATH: &str = "Jenkinsfile";

/// Id of the git branch source of a multibranch project. Jenkins ties the discovered branch
/// jobs to it, so it never changes: a new id would re-create every branch job and lose its
/// history. A project has a single source, so a constant is unique.
pub const BRANCH_SOURCE_ID: &str = "jenkins-operator-git";

/// Description of the folders the operator creates.
pub const FOLDER_DESCRIPTION: &str =
    "Managed by jenkins-operator: holds jobs declared as JenkinsJob resources in Kubernetes.";

/// Job property holding the build retention.
const BUILD_DISCARDER_PROPERTY: &str = "jenkins.model.BuildDiscarderProperty";
/// Job property that keeps builds of one job from running at the same time.
const DISABLE_CONCURRENT_PROPERTY: &str =
    "org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty";
/// Job property holding the timer and SCM triggers.
const TRIGGERS_PROPERTY: &str =
    "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty";

const MULTIBRANCH_CLASS: &str =
    "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject";

/// What one generated pipeline job (or multibranch project) is for.
#[derive(Clone, Copy, Debug)]
pub struct JobTarget<'a> {
    /// Namespace of the JenkinsJob, which owns the credentials Secret.
    pub namespace: &'a str,
    /// The JenkinsJob the item belongs to, and how it came under it.
    pub owner: Owner<'a>,
    /// The environment the job deploys to, if any.
    pub environment: Option<&'a EnvironmentSpec>,
    /// The branch the job builds, if it is one of `spec.branches`.
    pub branch: Option<ListedBranch<'a>>,
}

/// The JenkinsJob an item belongs to, and how the item came under it. The item's description
/// ends with a line that says so ([`marker`]): the operator recognises by it a job it created
/// itself when its status does not record the job (a status write lost after the create).
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    /// Namespace of the JenkinsJob.
    pub namespace: &'a str,
    /// Name of the JenkinsJob.
    pub name: &'a str,
    /// Its uid: a JenkinsJob created again under the same name is another resource, and
    /// adopts what the first one left behind.
    pub uid: &'a str,
    /// Whether the operator created the item for this JenkinsJob or adopted it.
    pub origin: JobOrigin,
}

/// The last line of the description of an item that `owner` manages: who manages it and
/// whether the operator created it or adopted it. Plain text made of names Kubernetes
/// restricts to letters, digits, `-` and `.`, so it survives Jenkins' XML round trip as is.
pub fn marker(owner: &Owner<'_>) -> String {
    let how = match owner.origin {
        JobOrigin::Created => "created",
        JobOrigin::Adopted => "adopted",
    };
    format!(
        "Managed by jenkins-operator for JenkinsJob {}/{} (uid {}), which {how} this job.",
        owner.namespace, owner.name, owner.uid
    )
}

/// The item's description: the spec's, then a blank line and the [`marker`].
fn description(spec: &JenkinsJobSpec, target: &JobTarget<'_>) -> String {
    let marker = marker(&target.owner);
    match spec.description.as_deref().filter(|d| !d.is_empty()) {
        Some(declared) => format!("{declared}\n\n{marker}"),
        None => marker,
    }
}

/// A branch from `spec.branches`, with its index for error messages.
#[derive(Clone, Copy, Debug)]
pub struct ListedBranch<'a> {
    /// The branch name, as listed.
    pub name: &'a str,
    /// Its index in `spec.branches`.
    pub index: usize,
}

/// The config.xml of a pipeline job (`flow-definition`).
pub fn pipeline_job(spec: &JenkinsJobSpec, target: &JobTarget<'_>) -> Result<String, InvalidJob> {
    let mut doc = Doc::new();
    doc.element("flow-definition", &[], |doc| {
        doc.empty("actions", &[]);
        doc.text(
            "description",
            &description(spec, target),
            "spec.description",
        );
        doc.constant("keepDependencies", "false");
        doc.element("properties", &[], |doc| {
            pipeline_properties(doc, spec, target)
        });
        flow_definition(doc, spec, target);
        doc.constant("disabled", bool_text(spec.disabled));
    });
    doc.finish()
}

/// The config.xml of a multibranch pipeline project that discovers the branches of
/// `spec.pipeline.scm` and builds each with its Jenkinsfile. Parameters, triggers, build
/// retention and concurrency of discovered branch jobs come from their Jenkinsfile; the plan
/// rejects those fields in multibranch mode rather than silently ignoring them.
pub fn multibranch_project(
    spec: &JenkinsJobSpec,
    target: &JobTarget<'_>,
) -> Result<String, InvalidJob> {
    let mut doc = Doc::new();
    doc.element(MULTIBRANCH_CLASS, &[], |doc| {
        doc.empty("actions", &[]);
        doc.text(
            "description",
            &description(spec, target),
            "spec.description",
        );
        doc.empty("properties", &[]);
        orphaned_item_strategy(doc);
        doc.empty("triggers", &[]);
        doc.constant("disabled", bool_text(spec.disabled));
        doc.element(
            "sources",
            &[(
                "class",
                "jenkins.branch.MultiBranchProject$BranchSourceList",
            )],
            |doc| {
                doc.element("data", &[], |doc| {
                    doc.element("jenkins.branch.BranchSource", &[], |doc| {
                        branch_source(doc, spec, target);
                    });
                });
                // The list's owner, as Jenkins writes it: an XStream reference to the root.
                doc.empty(
                    "owner",
                    &[("class", MULTIBRANCH_CLASS), ("reference", "../..")],
                );
            },
        );
        let factory = "org.jenkinsci.plugins.workflow.multibranch.WorkflowBranchProjectFactory";
        doc.element("factory", &[("class", factory)], |doc| {
            let scm = spec.pipeline.scm.as_ref();
            let path = scm.and_then(|s| s.script_path.as_deref());
            doc.text(
                "scriptPath",
                path.unwrap_or(DEFAULT_SCRIPT_PATH),
                "spec.pipeline.scm.scriptPath",
            );
        });
    });
    doc.finish()
}

/// The config.xml of a folder the operator creates.
pub fn folder() -> String {
    let mut doc = Doc::new();
    doc.element("com.cloudbees.hudson.plugins.folder.Folder", &[], |doc| {
        doc.constant("description", FOLDER_DESCRIPTION);
    });
    // Only constants go into this document, so it has no problems to report.
    doc.finish().unwrap_or_default()
}

/// What of a pipeline job's config.xml the spec declares, for the drift check (see
/// [`Declared`]): always the parameters property (it holds the operator's own parameters), and
/// the properties of the fields the spec sets (`buildDiscarder`, `concurrentBuilds`,
/// `triggers`), even to their defaults. The definitions of parameters are the spec's only when
/// it lists some: otherwise the Jenkinsfile may declare them (`parameters { ... }`). A
/// multibranch project declares no property: Jenkins and plugins add folder properties there.
pub fn declared_parts(spec: &JenkinsJobSpec) -> Declared {
    if spec.multibranch.is_some() {
        return Declared {
            properties: Vec::new(),
            parameters: true,
        };
    }
    let mut properties = vec![PARAMETERS_PROPERTY.to_string()];
    for (set, property) in [
        (spec.build_discarder.is_some(), BUILD_DISCARDER_PROPERTY),
        (
            spec.concurrent_builds.is_some(),
            DISABLE_CONCURRENT_PROPERTY,
        ),
        (spec.triggers.is_some(), TRIGGERS_PROPERTY),
    ] {
        if set {
            properties.push(property.to_string());
        }
    }
    Declared {
        properties,
        parameters: !spec.parameters.is_empty(),
    }
}

/// A short digest of a config.xml (the first 16 hex digits of its SHA-256), for cheap change
/// detection: the reconciler stores the hash of what it sent and compares hashes, not
/// documents.
pub fn config_hash(xml: &str) -> String {
    let digest = Sha256::digest(xml.as_bytes());
    hex::encode(&digest[..8])
}

/// The parameters the operator declares on every pipeline job of `target`, after the user's.
pub fn operator_parameters(target: &JobTarget<'_>) -> Vec<ParameterSpec> {
    let mut out = Vec::new();
    if let Some(env) = target.environment {
        out.push(string_parameter(
            ENVIRONMENT_PARAMETER,
            &env.name,
            "The environment this job deploys to (set by jenkins-operator).",
        ));
        out.push(string_parameter(
            TARGET_NAMESPACE_PARAMETER,
            &env.namespace,
            "The Kubernetes namespace of the environment (set by jenkins-operator).",
        ));
        out.push(string_parameter(
            AGENT_LABEL_PARAMETER,
            &deploy_template_name(env),
            "Agent label of the environment: use agent { label params.AGENT_LABEL } \
             (set by jenkins-operator).",
        ));
    }
    out.push(string_parameter(
        BUILD_ID_PARAMETER,
        "",
        "Set by jenkins-operator for JenkinsBuild resources; leave empty",
    ));
    out
}

fn string_parameter(name: &str, default: &str, description: &str) -> ParameterSpec {
    ParameterSpec {
        name: name.into(),
        type_: ParameterType::String,
        default: Some(default.into()),
        choices: Vec::new(),
        description: Some(description.into()),
    }
}

fn pipeline_properties(doc: &mut Doc, spec: &JenkinsJobSpec, target: &JobTarget<'_>) {
    if let Some(discarder) = spec.build_discarder.as_ref().filter(|d| has_limit(d)) {
        doc.element(BUILD_DISCARDER_PROPERTY, &[], |doc| {
            doc.element("strategy", &[("class", "hudson.tasks.LogRotator")], |doc| {
                log_rotator(doc, discarder);
            });
        });
    }

    if spec.concurrent_builds == Some(false) {
        doc.element(DISABLE_CONCURRENT_PROPERTY, &[], |doc| {
            doc.constant("abortPrevious", "false")
        });
    }

    doc.element(PARAMETERS_PROPERTY, &[], |doc| {
        doc.element("parameterDefinitions", &[], |doc| {
            for (i, parameter) in spec.parameters.iter().enumerate() {
                parameter_definition(doc, parameter, &format!("spec.parameters[{i}]"));
            }
            for parameter in operator_parameters(target) {
                parameter_definition(doc, &parameter, "spec.environments");
            }
        });
    });

    let triggers = spec.triggers.as_ref();
    let cron = triggers.and_then(|t| t.cron.as_deref());
    let poll = triggers.and_then(|t| t.poll_scm.as_deref());
    if cron.is_some() || poll.is_some() {
        doc.element(TRIGGERS_PROPERTY, &[], |doc| {
            doc.element("triggers", &[], |doc| {
                if let Some(cron) = cron {
                    doc.element("hudson.triggers.TimerTrigger", &[], |doc| {
                        doc.text("spec", cron, "spec.triggers.cron");
                    });
                }
                if let Some(poll) = poll {
                    doc.element("hudson.triggers.SCMTrigger", &[], |doc| {
                        doc.text("spec", poll, "spec.triggers.pollScm");
                        doc.constant("ignorePostCommitHooks", "false");
                    });
                }
            });
        });
    }
}

fn has_limit(discarder: &BuildDiscarderSpec) -> bool {
    discarder.days_to_keep.is_some() || discarder.num_to_keep.is_some()
}

/// A `hudson.tasks.LogRotator`'s fields; -1 means "no limit". Artifacts follow their builds.
fn log_rotator(doc: &mut Doc, discarder: &BuildDiscarderSpec) {
    doc.constant(
        "daysToKeep",
        &discarder.days_to_keep.unwrap_or(-1).to_string(),
    );
    doc.constant(
        "numToKeep",
        &discarder.num_to_keep.unwrap_or(-1).to_string(),
    );
    doc.constant("artifactDaysToKeep", "-1");
    doc.constant("artifactNumToKeep", "-1");
}

/// One parameter definition. A choice parameter's list is written the way Jenkins writes the
/// choices it splits from the configuration form (`Arrays.asList` of a string array), so a job
/// saved unchanged from the UI reads back the same; its default goes in `defaultValue`, which
/// Jenkins offers first (without one, the first choice is the default).
fn parameter_definition(doc: &mut Doc, parameter: &ParameterSpec, path: &str) {
    let description = parameter.description.as_deref().unwrap_or("");
    let description_path = format!("{path}.description");
    let default_path = format!("{path}.default");
    let name_path = format!("{path}.name");
    match parameter.type_ {
        ParameterType::String => {
            doc.element("hudson.model.StringParameterDefinition", &[], |doc| {
                doc.text("name", &parameter.name, &name_path);
                doc.text("description", description, &description_path);
                let default = parameter.default.as_deref().unwrap_or("");
                doc.text("defaultValue", default, &default_path);
                doc.constant("trim", "false");
            });
        }
        ParameterType::Choice => {
            doc.element("hudson.model.ChoiceParameterDefinition", &[], |doc| {
                doc.text("name", &parameter.name, &name_path);
                doc.text("description", description, &description_path);
                doc.element(
                    "choices",
                    &[("class", "java.util.Arrays$ArrayList")],
                    |doc| {
                        doc.element("a", &[("class", "string-array")], |doc| {
                            for (j, choice) in parameter.choices.iter().enumerate() {
                                doc.text("string", choice, &format!("{path}.choices[{j}]"));
                            }
                        });
                    },
                );
                if let Some(default) = &parameter.default {
                    doc.text("defaultValue", default, &default_path);
                }
            });
        }
        ParameterType::Boolean => {
            doc.element("hudson.model.BooleanParameterDefinition", &[], |doc| {
                doc.text("name", &parameter.name, &name_path);
                doc.text("description", description, &description_path);
                let default = parameter.default.as_deref() == Some("true");
                doc.constant("defaultValue", bool_text(default));
            });
        }
    }
}

/// The `definition`: the inline script (always in the Groovy sandbox) or a Jenkinsfile in git.
fn flow_definition(doc: &mut Doc, spec: &JenkinsJobSpec, target: &JobTarget<'_>) {
    if let Some(scm) = &spec.pipeline.scm {
        let class = "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition";
        doc.element("definition", &[("class", class)], |doc| {
            git_scm(doc, scm, target);
            let path = scm.script_path.as_deref().unwrap_or(DEFAULT_SCRIPT_PATH);
            doc.text("scriptPath", path, "spec.pipeline.scm.scriptPath");
            doc.constant("lightweight", bool_text(scm.lightweight.unwrap_or(true)));
        });
    } else {
        let class = "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition";
        doc.element("definition", &[("class", class)], |doc| {
            let script = spec.pipeline.script.as_deref().unwrap_or("");
            doc.text("script", script, "spec.pipeline.script");
            doc.constant("sandbox", "true");
        });
    }
}

/// A `hudson.plugins.git.GitSCM` checking out one branch. `*/<branch>` is the git plugin's
/// spelling of "branch <branch> of whichever remote", which lightweight checkout understands.
fn git_scm(doc: &mut Doc, scm: &ScmSpec, target: &JobTarget<'_>) {
    let (branch, branch_path) = match target.branch {
        Some(listed) => (listed.name, format!("spec.branches[{}]", listed.index)),
        None => (
            scm.git.branch.as_deref().unwrap_or(DEFAULT_BRANCH),
            "spec.pipeline.scm.git.branch".to_string(),
        ),
    };
    doc.element("scm", &[("class", "hudson.plugins.git.GitSCM")], |doc| {
        doc.constant("configVersion", "2");
        doc.element("userRemoteConfigs", &[], |doc| {
            doc.element("hudson.plugins.git.UserRemoteConfig", &[], |doc| {
                doc.text("url", &scm.git.url, "spec.pipeline.scm.git.url");
                credentials(doc, &scm.git, target);
            });
        });
        doc.element("branches", &[], |doc| {
            doc.element("hudson.plugins.git.BranchSpec", &[], |doc| {
                doc.text("name", &format!("*/{branch}"), &branch_path);
            });
        });
        doc.empty("extensions", &[]);
    });
}

fn credentials(doc: &mut Doc, git: &GitSpec, target: &JobTarget<'_>) {
    if let Some(secret) = &git.credentials_secret {
        let id = credentials_id(target.namespace, secret);
        doc.text(
            "credentialsId",
            &id,
            "spec.pipeline.scm.git.credentialsSecret",
        );
    }
}

/// A `jenkins.plugins.git.GitSCMSource` that discovers branches, filtered by wildcards.
fn branch_source(doc: &mut Doc, spec: &JenkinsJobSpec, target: &JobTarget<'_>) {
    let Some(scm) = &spec.pipeline.scm else {
        doc.problems.add(
            "spec.pipeline.scm",
            "a multibranch project needs pipeline.scm: set the git repository to discover",
        );
        return;
    };
    let multibranch = spec.multibranch.as_ref();
    let includes = multibranch
        .and_then(|m| m.includes.as_deref())
        .unwrap_or("*");
    let excludes = multibranch
        .and_then(|m| m.excludes.as_deref())
        .unwrap_or("");
    doc.element(
        "source",
        &[("class", "jenkins.plugins.git.GitSCMSource")],
        |doc| {
            doc.constant("id", BRANCH_SOURCE_ID);
            doc.text("remote", &scm.git.url, "spec.pipeline.scm.git.url");
            credentials(doc, &scm.git, target);
            doc.element("traits", &[], |doc| {
                doc.empty("jenkins.plugins.git.traits.BranchDiscoveryTrait", &[]);
                doc.element(
                    "jenkins.scm.impl.trait.WildcardSCMHeadFilterTrait",
                    &[],
                    |doc| {
                        doc.text("includes", includes, "spec.multibranch.includes");
                        doc.text("excludes", excludes, "spec.multibranch.excludes");
                    },
                );
            });
        },
    );
    let strategy = "jenkins.branch.DefaultBranchPropertyStrategy";
    doc.element("strategy", &[("class", strategy)], |doc| {
        doc.empty("properties", &[("class", "empty-list")]);
    });
}

/// Jenkins' default for branches that disappear: their jobs are removed with the branch.
fn orphaned_item_strategy(doc: &mut Doc) {
    let class = "com.cloudbees.hudson.plugins.folder.computed.DefaultOrphanedItemStrategy";
    doc.element("orphanedItemStrategy", &[("class", class)], |doc| {
        doc.constant("pruneDeadBranches", "true");
        doc.constant("daysToKeep", "-1");
        doc.constant("numToKeep", "-1");
        doc.constant("abortBuilds", "false");
    });
}

fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// Why XML cannot carry `c` unchanged, if it cannot.
fn unportable(c: char) -> Option<&'static str> {
    match c {
        '\t' | '\n' | '\r' => None,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => Some("a control character"),
        '\u{fffe}' | '\u{ffff}' => Some("a Unicode non-character"),
        _ => None,
    }
}

/// Text escaped for element content: the writer's escaping, plus U+2028 as a character
/// reference so that an XML 1.1 parser does not turn it into a line feed.
fn escape_text(value: &str) -> Cow<'_, str> {
    let escaped = escape(value);
    if escaped.contains('\u{2028}') {
        Cow::Owned(escaped.replace('\u{2028}', "&#x2028;"))
    } else {
        escaped
    }
}

/// A config.xml being written, with the problems found in the text put into it.
struct Doc {
    writer: Writer<Vec<u8>>,
    problems: Problems,
    failure: Option<std::io::Error>,
}

impl Doc {
    fn new() -> Self {
        let mut doc = Doc {
            writer: Writer::new_with_indent(Vec::new(), b' ', 2),
            problems: Problems::default(),
            failure: None,
        };
        doc.emit(Event::Decl(BytesDecl::new("1.1", Some("UTF-8"), None)));
        doc
    }

    fn emit(&mut self, event: Event<'_>) {
        if self.failure.is_none()
            && let Err(e) = self.writer.write_event(event)
        {
            self.failure = Some(e);
        }
    }

    fn element(&mut self, name: &str, attributes: &[(&str, &str)], body: impl FnOnce(&mut Self)) {
        let start = BytesStart::new(name).with_attributes(attributes.iter().copied());
        self.emit(Event::Start(start));
        body(self);
        self.emit(Event::End(BytesEnd::new(name)));
    }

    fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        let start = BytesStart::new(name).with_attributes(attributes.iter().copied());
        self.emit(Event::Empty(start));
    }

    /// An element holding user text from the spec field `field`; text XML cannot carry is
    /// reported against that field and left out.
    fn text(&mut self, name: &str, value: &str, field: &str) {
        let mut bad = value
            .char_indices()
            .filter_map(|(i, c)| unportable(c).map(|w| (i, c, w)));
        if let Some((at, c, what)) = bad.next() {
            let position = value[..at].chars().count();
            self.problems.add(
                field,
                format!(
                    "contains U+{:04X} ({what}) at character {position}, which Jenkins' XML \
                     configuration cannot hold: remove it",
                    u32::from(c)
                ),
            );
            return;
        }
        self.leaf(name, value);
    }

    /// An element holding operator text: numbers, booleans, fixed strings.
    fn constant(&mut self, name: &str, value: &str) {
        self.leaf(name, value);
    }

    fn leaf(&mut self, name: &str, value: &str) {
        self.emit(Event::Start(BytesStart::new(name)));
        self.emit(Event::Text(BytesText::from_escaped(escape_text(value))));
        self.emit(Event::End(BytesEnd::new(name)));
    }

    fn finish(self) -> Result<String, InvalidJob> {
        let mut problems = self.problems;
        // NB: writing to a Vec<u8> cannot fail and the writer is given only `&str`s, so these
        // two are operator bugs, reported rather than panicking.
        if let Some(e) = self.failure {
            problems.add(
                "spec",
                format!("failed to write config.xml (operator bug): {e}"),
            );
        }
        let text = String::from_utf8(self.writer.into_inner()).unwrap_or_else(|e| {
            problems.add(
                "spec",
                format!("failed to write config.xml (operator bug): {e}"),
            );
            String::new()
        });
        problems.into_result(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_so_markup_stays_text() {
        assert_eq!(
            escape_text("a]]>b</script>&amp;'\""),
            "a]]&gt;b&lt;/script&gt;&amp;amp;&apos;&quot;"
        );
        assert_eq!(escape_text("a\rb\u{2028}c"), "a&#13;b&#x2028;c");
    }

    #[test]
    fn the_folder_document_names_the_operator() {
        let xml = folder();
        assert!(xml.starts_with("<?xml version=\"1.1\" encoding=\"UTF-8\"?>"));
        assert!(xml.contains("<com.cloudbees.hudson.plugins.folder.Folder>"));
        assert!(xml.contains("Managed by jenkins-operator"));
    }

    #[test]
    fn config_hash_is_short_hex() {
        let hash = config_hash("<a/>");
        assert_eq!(hash.len(), 16);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(hash, config_hash("<b/>"));
    }
}

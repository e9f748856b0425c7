//! Plans and their config.xml, parsed back and asserted element by element.

use super::*;
use crate::cluster::test_cluster;
use crate::job::xml_tree::{Node, parse};

const PARAMS: &str = "properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions";
const TRIGGERS: &str =
    "properties/org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty/triggers";
const DISABLE_CONCURRENT: &str =
    "org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty";

fn cluster() -> JenkinsCluster {
    test_cluster(
        "metadata: {name: ci}\n\
         spec:\n  environments:\n    - {name: dev, namespace: app-dev}\n    \
         - {name: prod, namespace: app-prod}\n",
    )
}

fn job(spec_yaml: &str) -> JenkinsJob {
    let document = format!(
        "apiVersion: jenkins.ci/v1alpha1\nkind: JenkinsJob\n\
         metadata: {{name: web, namespace: team-web}}\nspec:\n{spec_yaml}"
    );
    serde_saphyr::from_str(&document).expect("test job YAML")
}

fn inline() -> JenkinsJob {
    job("  cluster: ci\n  pipeline: {script: \"pipeline { agent any }\"}\n")
}

fn git(extra: &str) -> JenkinsJob {
    job(&format!(
        "  cluster: ci\n  pipeline:\n    scm:\n      git: {{url: \"https://git.example/web.git\", \
         credentialsSecret: git-creds}}\n{extra}"
    ))
}

fn planned(job: &JenkinsJob) -> JobPlan {
    plan(job, &cluster()).unwrap_or_else(|e| panic!("{e}"))
}

fn only_config(job: &JenkinsJob) -> Node {
    let plan = planned(job);
    assert_eq!(plan.jobs.len(), 1);
    parse(&plan.jobs[0].config_xml)
}

fn invalid(job: &JenkinsJob) -> InvalidJob {
    match plan(job, &cluster()) {
        Ok(plan) => panic!("expected problems, got jobs {:?}", names(&plan)),
        Err(e) => e,
    }
}

fn names(plan: &JobPlan) -> Vec<&str> {
    plan.jobs.iter().map(|j| j.name.as_str()).collect()
}

/// The parameter definitions by name: (element name, node).
fn parameter<'a>(config: &'a Node, name: &str) -> &'a Node {
    config
        .at(PARAMS)
        .children
        .iter()
        .find(|p| p.text_at("name") == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

fn parameter_names(config: &Node) -> Vec<&str> {
    config
        .at(PARAMS)
        .children
        .iter()
        .map(|p| p.text_at("name"))
        .collect()
}

#[test]
fn an_inline_script_becomes_one_sandboxed_pipeline_job_in_the_namespace_folder() {
    let plan = planned(&inline());
    assert_eq!(plan.folder, ["team-web"]);
    assert_eq!(names(&plan), ["web"]);
    assert_eq!(plan.jobs[0].full_name, "team-web/web");
    assert_eq!(plan.jobs[0].kind, JobKind::Pipeline);
    assert_eq!(plan.credential, None);

    let config = parse(&plan.jobs[0].config_xml);
    assert_eq!(config.name, "flow-definition");
    assert_eq!(config.text_at("keepDependencies"), "false");
    assert_eq!(config.text_at("disabled"), "false");
    let definition = config.child("definition");
    assert_eq!(
        definition.attribute("class"),
        Some("org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition")
    );
    assert_eq!(definition.text_at("script"), "pipeline { agent any }");
    assert_eq!(definition.text_at("sandbox"), "true");
    assert!(
        !config
            .child("properties")
            .has("jenkins.model.BuildDiscarderProperty")
    );
    assert!(!config.child("properties").has(DISABLE_CONCURRENT));
}

#[test]
fn every_pipeline_job_declares_the_build_id_parameter_even_without_user_parameters() {
    let config = only_config(&inline());
    assert_eq!(parameter_names(&config), ["JENKINS_OPERATOR_BUILD_ID"]);
    let build_id = parameter(&config, "JENKINS_OPERATOR_BUILD_ID");
    assert_eq!(build_id.name, "hudson.model.StringParameterDefinition");
    assert_eq!(build_id.text_at("defaultValue"), "");
    assert_eq!(
        build_id.text_at("description"),
        "Set by jenkins-operator for JenkinsBuild resources; leave empty"
    );
}

#[test]
fn parameters_of_each_type_and_triggers_are_declared() {
    let mut job = inline();
    job.spec = serde_saphyr::from_str(
        "cluster: ci\n\
         pipeline: {script: x}\n\
         parameters:\n\
         - {name: VERSION, type: string, default: '1.0', description: Version to build}\n\
         - {name: TARGET, type: choice, choices: [eu, us, asia], default: us}\n\
         - {name: FIRST, type: choice, choices: [a, b]}\n\
         - {name: DRY_RUN, type: boolean, default: 'true'}\n\
         - {name: QUIET, type: boolean}\n\
         triggers: {cron: 'H/15 * * * *'}\n",
    )
    .expect("spec");
    let config = only_config(&job);
    assert_eq!(
        parameter_names(&config),
        [
            "VERSION",
            "TARGET",
            "FIRST",
            "DRY_RUN",
            "QUIET",
            "JENKINS_OPERATOR_BUILD_ID"
        ]
    );

    let version = parameter(&config, "VERSION");
    assert_eq!(version.name, "hudson.model.StringParameterDefinition");
    assert_eq!(version.text_at("defaultValue"), "1.0");
    assert_eq!(version.text_at("description"), "Version to build");
    assert_eq!(version.text_at("trim"), "false");

    let target = parameter(&config, "TARGET");
    assert_eq!(target.name, "hudson.model.ChoiceParameterDefinition");
    let choices = target.child("choices");
    assert_eq!(
        choices.attribute("class"),
        Some("java.util.Arrays$ArrayList")
    );
    let array = choices.child("a");
    assert_eq!(array.attribute("class"), Some("string-array"));
    let values: Vec<&str> = array.children.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(values, ["eu", "us", "asia"]);
    assert_eq!(target.text_at("defaultValue"), "us");
    assert!(
        !parameter(&config, "FIRST").has("defaultValue"),
        "first choice is the default"
    );

    let dry_run = parameter(&config, "DRY_RUN");
    assert_eq!(dry_run.name, "hudson.model.BooleanParameterDefinition");
    assert_eq!(dry_run.text_at("defaultValue"), "true");
    assert_eq!(parameter(&config, "QUIET").text_at("defaultValue"), "false");

    let timer = config.at(TRIGGERS).child("hudson.triggers.TimerTrigger");
    assert_eq!(timer.text_at("spec"), "H/15 * * * *");
    assert!(!config.at(TRIGGERS).has("hudson.triggers.SCMTrigger"));
}

#[test]
fn a_git_pipeline_reads_its_jenkinsfile_with_the_namespaced_credential() {
    let job = git(
        "      scriptPath: ci/Jenkinsfile\n      lightweight: false\n  \
         triggers: {pollScm: 'H/5 * * * *'}\n",
    );
    let plan = planned(&job);
    assert_eq!(
        plan.credential,
        Some(CredentialRef {
            namespace: "team-web".into(),
            secret: "git-creds".into(),
            id: "k8s.team-web.git-creds".into(),
        })
    );
    let config = parse(&plan.jobs[0].config_xml);
    let definition = config.child("definition");
    assert_eq!(
        definition.attribute("class"),
        Some("org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition")
    );
    assert_eq!(definition.text_at("scriptPath"), "ci/Jenkinsfile");
    assert_eq!(definition.text_at("lightweight"), "false");
    let scm = definition.child("scm");
    assert_eq!(scm.attribute("class"), Some("hudson.plugins.git.GitSCM"));
    assert_eq!(scm.text_at("configVersion"), "2");
    let remote = scm.at("userRemoteConfigs/hudson.plugins.git.UserRemoteConfig");
    assert_eq!(remote.text_at("url"), "https://git.example/web.git");
    assert_eq!(remote.text_at("credentialsId"), "k8s.team-web.git-creds");
    assert_eq!(
        scm.text_at("branches/hudson.plugins.git.BranchSpec/name"),
        "*/main"
    );

    let poll = config.at(TRIGGERS).child("hudson.triggers.SCMTrigger");
    assert_eq!(poll.text_at("spec"), "H/5 * * * *");
}

#[test]
fn a_git_pipeline_defaults_to_a_lightweight_jenkinsfile_of_its_branch() {
    let job = job(
        "  cluster: ci\n  pipeline:\n    scm:\n      git: {url: 'git@git.example:web.git', \
         branch: develop}\n",
    );
    let config = only_config(&job);
    let definition = config.child("definition");
    assert_eq!(definition.text_at("scriptPath"), "Jenkinsfile");
    assert_eq!(definition.text_at("lightweight"), "true");
    let scm = definition.child("scm");
    assert_eq!(
        scm.text_at("branches/hudson.plugins.git.BranchSpec/name"),
        "*/develop"
    );
    let remote = scm.at("userRemoteConfigs/hudson.plugins.git.UserRemoteConfig");
    assert!(!remote.has("credentialsId"), "no Secret, no credential");
}

#[test]
fn nested_folders_are_planned_outermost_first() {
    let mut job = inline();
    job.spec.folder = Some("platform/team web/apps".into());
    let plan = planned(&job);
    assert_eq!(plan.folder, ["platform", "team web", "apps"]);
    assert_eq!(plan.folder_full_name(), "platform/team web/apps");
    assert_eq!(plan.jobs[0].full_name, "platform/team web/apps/web");

    let folder = parse(&config_xml::folder());
    assert_eq!(folder.name, "com.cloudbees.hudson.plugins.folder.Folder");
    assert!(folder.text_at("description").contains("jenkins-operator"));
}

#[test]
fn bad_folders_are_refused() {
    for folder in ["a//b", "a/./b", "team:web", "a/b."] {
        let mut job = inline();
        job.spec.folder = Some(folder.into());
        assert!(invalid(&job).names_field("spec.folder"), "{folder}");
    }
}

#[test]
fn environments_fan_out_with_their_name_namespace_and_agent_label() {
    let mut job = inline();
    job.spec.environments = vec!["dev".into(), "prod".into()];
    let plan = planned(&job);
    assert_eq!(names(&plan), ["web-dev", "web-prod"]);
    assert_eq!(plan.jobs[1].full_name, "team-web/web-prod");
    assert_eq!(plan.jobs[1].environment.as_deref(), Some("prod"));

    let config = parse(&plan.jobs[1].config_xml);
    assert_eq!(
        parameter_names(&config),
        [
            "ENVIRONMENT",
            "TARGET_NAMESPACE",
            "AGENT_LABEL",
            "JENKINS_OPERATOR_BUILD_ID"
        ]
    );
    for (name, default) in [
        ("ENVIRONMENT", "prod"),
        ("TARGET_NAMESPACE", "app-prod"),
        ("AGENT_LABEL", "deploy-prod"),
    ] {
        let p = parameter(&config, name);
        assert_eq!(p.name, "hudson.model.StringParameterDefinition");
        assert_eq!(p.text_at("defaultValue"), default, "{name}");
    }
    let dev = parse(&plan.jobs[0].config_xml);
    assert_eq!(
        parameter(&dev, "TARGET_NAMESPACE").text_at("defaultValue"),
        "app-dev"
    );
}

#[test]
fn an_unknown_environment_is_refused_with_the_available_ones() {
    let mut job = inline();
    job.spec.environments = vec!["dev".into(), "qa".into()];
    let e = invalid(&job);
    assert_eq!(e.problems.len(), 1);
    assert_eq!(e.problems[0].path, "spec.environments[1]");
    assert!(e.problems[0].message.contains("\"qa\""), "{e}");
    assert!(e.problems[0].message.contains("dev, prod"), "{e}");

    let bare = test_cluster("metadata: {name: ci}\nspec: {}\n");
    let e = plan(&job, &bare).expect_err("no environments");
    assert!(
        e.problems[0].message.contains("defines no environments"),
        "{e}"
    );
}

#[test]
fn branches_fan_out_with_slashes_made_dashes() {
    let mut job = git("");
    job.spec.branches = vec!["main".into(), "release/1.x".into()];
    let plan = planned(&job);
    assert_eq!(names(&plan), ["web-main", "web-release-1.x"]);
    assert_eq!(plan.jobs[1].branch.as_deref(), Some("release/1.x"));
    let config = parse(&plan.jobs[1].config_xml);
    assert_eq!(
        config.text_at("definition/scm/branches/hudson.plugins.git.BranchSpec/name"),
        "*/release/1.x"
    );
}

#[test]
fn branches_and_environments_fan_out_to_every_pair() {
    let mut job = git("");
    job.spec.branches = vec!["main".into(), "release/2.x".into()];
    job.spec.environments = vec!["dev".into(), "prod".into()];
    let plan = planned(&job);
    assert_eq!(
        names(&plan),
        [
            "web-main-dev",
            "web-main-prod",
            "web-release-2.x-dev",
            "web-release-2.x-prod"
        ]
    );
    let config = parse(&plan.jobs[2].config_xml);
    assert_eq!(
        parameter(&config, "ENVIRONMENT").text_at("defaultValue"),
        "dev"
    );
    assert_eq!(
        config.text_at("definition/scm/branches/hudson.plugins.git.BranchSpec/name"),
        "*/release/2.x"
    );
}

#[test]
fn generated_names_that_collide_or_break_jenkins_rules_are_refused() {
    let mut job = git("");
    job.spec.branches = vec!["release/1.x".into(), "release-1.x".into()];
    let e = invalid(&job);
    assert!(e.names_field("spec.branches[1]"), "{e}");
    assert!(
        e.to_string().contains("collides with \"web-release-1.x\""),
        "{e}"
    );

    job.spec.branches = vec!["Main".into(), "main".into()];
    let e = invalid(&job);
    assert!(e.to_string().contains("ignoring case"), "{e}");

    job.spec.branches = vec!["fix.".into()];
    let e = invalid(&job);
    assert!(e.names_field("spec.branches[0]"), "{e}");
    assert!(e.to_string().contains("cannot end with '.'"), "{e}");

    job.spec.branches = Vec::new();
    job.spec.environments = vec!["dev".into(), "dev".into()];
    assert!(invalid(&job).names_field("spec.environments[1]"));
}

#[test]
fn a_multibranch_project_discovers_filtered_branches_of_the_repository() {
    let job = git("      scriptPath: build/Jenkinsfile\n  \
         multibranch: {includes: 'main release/*', excludes: 'wip-*'}\n");
    let plan = planned(&job);
    assert_eq!(names(&plan), ["web"]);
    assert_eq!(plan.jobs[0].kind, JobKind::Multibranch);
    let config = parse(&plan.jobs[0].config_xml);
    assert_eq!(
        config.name,
        "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
    );
    let sources = config.child("sources");
    assert_eq!(
        sources.attribute("class"),
        Some("jenkins.branch.MultiBranchProject$BranchSourceList")
    );
    let source = sources.at("data/jenkins.branch.BranchSource/source");
    assert_eq!(
        source.attribute("class"),
        Some("jenkins.plugins.git.GitSCMSource")
    );
    assert_eq!(source.text_at("id"), "jenkins-operator-git");
    assert_eq!(source.text_at("remote"), "https://git.example/web.git");
    assert_eq!(source.text_at("credentialsId"), "k8s.team-web.git-creds");
    let traits = source.child("traits");
    assert!(traits.has("jenkins.plugins.git.traits.BranchDiscoveryTrait"));
    let filter = traits.child("jenkins.scm.impl.trait.WildcardSCMHeadFilterTrait");
    assert_eq!(filter.text_at("includes"), "main release/*");
    assert_eq!(filter.text_at("excludes"), "wip-*");
    let factory = config.child("factory");
    assert_eq!(
        factory.attribute("class"),
        Some("org.jenkinsci.plugins.workflow.multibranch.WorkflowBranchProjectFactory")
    );
    assert_eq!(factory.text_at("scriptPath"), "build/Jenkinsfile");
    let orphans = config.child("orphanedItemStrategy");
    assert_eq!(
        orphans.attribute("class"),
        Some("com.cloudbees.hudson.plugins.folder.computed.DefaultOrphanedItemStrategy")
    );
    assert_eq!(orphans.text_at("pruneDeadBranches"), "true");
}

#[test]
fn multibranch_with_environments_is_one_project_per_environment() {
    let mut job = git("  multibranch: {}\n");
    job.spec.environments = vec!["dev".into(), "prod".into()];
    let plan = planned(&job);
    assert_eq!(names(&plan), ["web-dev", "web-prod"]);
    assert!(plan.jobs.iter().all(|j| j.kind == JobKind::Multibranch));
    let config = parse(&plan.jobs[0].config_xml);
    let filter = "sources/data/jenkins.branch.BranchSource/source/traits/\
                  jenkins.scm.impl.trait.WildcardSCMHeadFilterTrait";
    assert_eq!(config.text_at(&format!("{filter}/includes")), "*");
    assert_eq!(config.text_at(&format!("{filter}/excludes")), "");
}

#[test]
fn multibranch_refuses_what_only_a_jenkinsfile_can_configure() {
    let mut job =
        git("  multibranch: {}\n  concurrentBuilds: false\n  buildDiscarder: {numToKeep: 5}\n");
    job.spec.parameters = inline_parameters("- {name: V, type: string}");
    let e = invalid(&job);
    for field in [
        "spec.parameters",
        "spec.concurrentBuilds",
        "spec.buildDiscarder",
    ] {
        assert!(e.names_field(field), "{field}: {e}");
    }
    assert!(e.to_string().contains("disableConcurrentBuilds()"), "{e}");
}

fn inline_parameters(yaml: &str) -> Vec<ParameterSpec> {
    serde_saphyr::from_str(yaml).expect("parameters")
}

#[test]
fn build_discarder_disabled_and_serial_builds_reach_the_job() {
    let mut job = inline();
    job.spec.disabled = true;
    job.spec.concurrent_builds = Some(false);
    job.spec.build_discarder = Some(BuildDiscarderSpec {
        days_to_keep: Some(30),
        num_to_keep: None,
    });
    let config = only_config(&job);
    assert_eq!(config.text_at("disabled"), "true");
    let properties = config.child("properties");
    assert!(properties.has(DISABLE_CONCURRENT));
    let rotator = properties.at("jenkins.model.BuildDiscarderProperty/strategy");
    assert_eq!(rotator.attribute("class"), Some("hudson.tasks.LogRotator"));
    assert_eq!(rotator.text_at("daysToKeep"), "30");
    assert_eq!(rotator.text_at("numToKeep"), "-1");
    assert_eq!(rotator.text_at("artifactDaysToKeep"), "-1");
    assert_eq!(rotator.text_at("artifactNumToKeep"), "-1");

    job.spec.concurrent_builds = Some(true);
    assert!(
        !only_config(&job)
            .child("properties")
            .has(DISABLE_CONCURRENT)
    );
}

#[test]
fn parameters_the_operator_sets_or_declared_twice_are_refused() {
    let mut job = inline();
    job.spec.parameters = inline_parameters(
        "- {name: AGENT_LABEL, type: string}\n\
         - {name: JENKINS_OPERATOR_X, type: string}\n\
         - {name: A, type: string}\n\
         - {name: A, type: boolean, default: 'yes'}\n\
         - {name: C, type: choice, choices: [x, \"y\\nz\"], default: w}\n",
    );
    let e = invalid(&job);
    for field in [
        "spec.parameters[0].name",
        "spec.parameters[1].name",
        "spec.parameters[3].name",
        "spec.parameters[3].default",
        "spec.parameters[4].choices[1]",
        "spec.parameters[4].default",
    ] {
        assert!(e.names_field(field), "{field}: {e}");
    }
}

/// The line ending the description of an item the operator created for `web` in `team-web`.
fn created_marker(uid: &str) -> String {
    config_xml::marker(&Owner {
        namespace: "team-web",
        name: "web",
        uid,
        origin: JobOrigin::Created,
    })
}

#[test]
fn every_item_says_which_resource_manages_it_and_whether_it_was_created_or_adopted() {
    let mut job = git("  multibranch: {}\n  environments: [dev]\n");
    job.metadata.uid = Some("0b7e-42".into());
    job.spec.description = Some("Builds the web app".into());
    let mut pipeline = inline();
    pipeline.metadata.uid = Some("0b7e-42".into());
    for job in [job, pipeline] {
        for planned in planned(&job).jobs {
            let created = parse(&planned.config_xml);
            let adopted = parse(&planned.adopted_config_xml);
            let marker = created_marker("0b7e-42");
            assert_eq!(planned.created_marker, marker);
            assert!(marker.contains("team-web/web (uid 0b7e-42), which created this job"));
            assert!(created.text_at("description").ends_with(&marker));
            let adopted_marker = marker.replace("which created", "which adopted");
            assert!(adopted.text_at("description").ends_with(&adopted_marker));
            // Nothing else differs, and the hash follows the spec, not the origin.
            assert_eq!(
                planned.adopted_config_xml.replace(&adopted_marker, &marker),
                planned.config_xml
            );
            assert_eq!(planned.config_for(JobOrigin::Created), planned.config_xml);
            assert_eq!(
                planned.config_hash,
                config_xml::config_hash(&planned.config_xml)
            );
        }
    }
    let declared = only_config(&git("  description: Builds the web app\n"));
    assert!(
        declared
            .text_at("description")
            .starts_with("Builds the web app\n\nManaged by jenkins-operator")
    );
}

#[test]
fn the_drift_check_compares_what_the_spec_sets_and_leaves_the_rest_to_the_jenkinsfile() {
    let plain = &planned(&inline()).jobs[0].declared;
    assert_eq!(plain.properties, [crate::jenkins::PARAMETERS_PROPERTY]);
    assert!(
        !plain.parameters,
        "no spec parameters: the Jenkinsfile may declare some"
    );

    let mut full = inline();
    full.spec.parameters = vec![ParameterSpec {
        name: "P".into(),
        type_: ParameterType::String,
        default: None,
        choices: Vec::new(),
        description: None,
    }];
    full.spec.triggers = Some(TriggersSpec {
        cron: Some("H * * * *".into()),
        poll_scm: None,
    });
    full.spec.build_discarder = Some(BuildDiscarderSpec::default());
    // Set to its default: declared all the same, so a Jenkinsfile cannot turn it off.
    full.spec.concurrent_builds = Some(true);
    let declared = &planned(&full).jobs[0].declared;
    assert!(declared.parameters);
    assert_eq!(declared.properties.len(), 4, "{:?}", declared.properties);
    for property in [
        "jenkins.model.BuildDiscarderProperty",
        DISABLE_CONCURRENT,
        "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty",
    ] {
        assert!(
            declared.properties.iter().any(|p| p == property),
            "{property}"
        );
    }

    let multibranch = &planned(&git("  multibranch: {}\n")).jobs[0].declared;
    assert!(multibranch.properties.is_empty());
}

/// Text that must reach Jenkins exactly as written.
const CORPUS: &[&str] = &[
    "ends a CDATA ]]> section",
    "closes </script> and </description></flow-definition>",
    "opens <![CDATA[ a section",
    "an entity &amp; and a bare & and &lt;",
    "double \" and single ' quotes",
    "emoji 🚀🔥, RTL שלום עליכם مرحبا, CJK 漢字かなカナ한글",
    "tab\there, newline\nhere, CR\rhere, CRLF\r\nhere",
    "line separator \u{2028} and paragraph separator \u{2029}, NBSP \u{a0}",
    "  leading and trailing spaces  ",
    "\n",
    "${env.HOME} $(rm -rf /) `backticks` \\ backslash",
];

#[test]
fn injection_corpus_round_trips_exactly() {
    for text in CORPUS {
        let mut job = inline();
        job.spec.description = Some(text.to_string());
        job.spec.pipeline.script = Some(format!("echo '{text}'"));
        job.spec.parameters = vec![ParameterSpec {
            name: "P".into(),
            type_: ParameterType::String,
            default: Some(text.to_string()),
            choices: Vec::new(),
            description: Some(text.to_string()),
        }];
        let xml = &planned(&job).jobs[0].config_xml;
        // The same characters whichever XML version a parser applies.
        let as_xml_1_0 = xml.replacen("version=\"1.1\"", "version=\"1.0\"", 1);
        assert_eq!(parse(&as_xml_1_0), parse(xml), "{text:?}");
        let config = parse(xml);
        assert_eq!(
            config.text_at("description"),
            format!("{text}\n\n{}", created_marker("")),
            "the declared description, then the operator's line"
        );
        assert_eq!(
            config.text_at("definition/script"),
            format!("echo '{text}'")
        );
        assert_eq!(parameter(&config, "P").text_at("defaultValue"), *text);
        assert_eq!(parameter(&config, "P").text_at("description"), *text);
    }
}

#[test]
fn text_xml_cannot_carry_is_refused_naming_the_field() {
    for bad in [
        "nul \u{0}",
        "escape \u{1b}[31m",
        "bell \u{7}",
        "\u{FFFE}",
        "\u{ffff}",
        "\u{85}",
    ] {
        let mut job = inline();
        job.spec.description = Some(bad.into());
        let e = invalid(&job);
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].path, "spec.description");
        assert!(e.problems[0].message.contains("remove it"), "{e}");

        let mut job = inline();
        job.spec.pipeline.script = Some(format!("echo {bad}"));
        assert!(invalid(&job).names_field("spec.pipeline.script"), "{bad:?}");
    }

    let mut job = inline();
    job.spec.environments = vec!["dev".into(), "prod".into()];
    job.spec.parameters = inline_parameters("- {name: C, type: choice, choices: [ok, \"b\\aad\"]}");
    let e = invalid(&job);
    assert_eq!(
        e.problems.len(),
        1,
        "reported once for both environments: {e}"
    );
    assert_eq!(e.problems[0].path, "spec.parameters[0].choices[1]");
    assert!(e.problems[0].message.contains("U+0007"), "{e}");
}

#[test]
fn the_same_spec_gives_the_same_bytes_and_any_change_changes_the_hash() {
    let mut base = git("");
    base.spec.environments = vec!["dev".into()];
    base.spec.parameters = inline_parameters("- {name: V, type: string, default: '1'}");
    let first = planned(&base);
    let second = planned(&base);
    assert_eq!(first, second);
    let hash = &first.jobs[0].config_hash;
    assert_eq!(*hash, config_xml::config_hash(&first.jobs[0].config_xml));

    type Change = Box<dyn Fn(&mut JenkinsJobSpec)>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "description",
            Box::new(|s| s.description = Some("d".into())),
        ),
        (
            "default",
            Box::new(|s| s.parameters[0].default = Some("2".into())),
        ),
        ("disabled", Box::new(|s| s.disabled = true)),
        (
            "concurrency",
            Box::new(|s| s.concurrent_builds = Some(false)),
        ),
        (
            "cron",
            Box::new(|s| {
                s.triggers = Some(TriggersSpec {
                    cron: Some("@daily".into()),
                    poll_scm: None,
                })
            }),
        ),
        (
            "url",
            Box::new(|s| {
                if let Some(scm) = &mut s.pipeline.scm {
                    scm.git.url.push('x');
                }
            }),
        ),
        (
            "branch",
            Box::new(|s| {
                if let Some(scm) = &mut s.pipeline.scm {
                    scm.git.branch = Some("dev".into());
                }
            }),
        ),
        (
            "secret",
            Box::new(|s| {
                if let Some(scm) = &mut s.pipeline.scm {
                    scm.git.credentials_secret = Some("other".into());
                }
            }),
        ),
    ];
    for (what, change) in changes {
        let mut changed = base.clone();
        change(&mut changed.spec);
        let plan = planned(&changed);
        assert_ne!(plan.jobs[0].config_hash, *hash, "{what}");
    }
}

#[test]
fn choices_and_cron_text_round_trip_exactly() {
    let mut job = inline();
    let choices = ["<eu>", "us & ca", "\"quoted\" 'single'", "]]>", "日本 🚀"];
    job.spec.parameters = vec![ParameterSpec {
        name: "REGION".into(),
        type_: ParameterType::Choice,
        default: Some("us & ca".into()),
        choices: choices.iter().map(|c| c.to_string()).collect(),
        description: None,
    }];
    job.spec.triggers = Some(TriggersSpec {
        cron: Some("# nightly <at> 2 & more\nTZ=Europe/Paris\nH 2 * * *".into()),
        poll_scm: None,
    });
    let config = only_config(&job);
    let region = parameter(&config, "REGION");
    let values: Vec<&str> = region
        .at("choices/a")
        .children
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(values, choices);
    assert_eq!(region.text_at("defaultValue"), "us & ca");
    assert_eq!(
        config.text_at(&format!("{TRIGGERS}/hudson.triggers.TimerTrigger/spec")),
        "# nightly <at> 2 & more\nTZ=Europe/Paris\nH 2 * * *"
    );
}

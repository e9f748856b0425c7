//! The Jenkins client against the emulator (or a real Jenkins, see `jenkins/harness.rs`).

#[path = "jenkins/harness.rs"]
mod harness;

use std::time::Duration;

use harness::{PARAMETERS, Target, eventually, pipeline};
use jenkins_emulator::{
    BuildResult as EmuResult, CascReload, EmulatorConfig, Fault, JenkinsEmulator, Plugin,
    RequestRecord,
};
use jenkins_operator::jenkins::{
    BuildResult, BuildSearch, Credential, JenkinsClient, JenkinsConfig, JenkinsError, JobPath,
    ParameterKind, QueueItem, configs_equivalent,
};

fn count(requests: &[RequestRecord], method: &str, path_suffix: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.method == method && r.path.ends_with(path_suffix))
        .count()
}

fn statuses(requests: &[RequestRecord], method: &str, path_suffix: &str) -> Vec<u16> {
    requests
        .iter()
        .filter(|r| r.method == method && r.path.ends_with(path_suffix))
        .map(|r| r.status)
        .collect()
}

async fn create(target: &Target, name: &str) -> JobPath {
    let path = target.path(name);
    if let Some(parent) = path.parent() {
        target.client.ensure_folder(&parent).await.unwrap();
    }
    target
        .client
        .create_job(&path, &pipeline("test job", "", "echo 'hi'"))
        .await
        .unwrap();
    path
}

/// Waits for a triggered build to have a number.
async fn build_number(target: &Target, path: &JobPath, queue_id: u64) -> u64 {
    target
        .client
        .wait_for_build_number(
            path,
            queue_id,
            Duration::from_millis(10),
            Duration::from_secs(10),
        )
        .await
        .unwrap()
}

/// Polls a build until Jenkins says it is complete.
async fn completed(
    target: &Target,
    path: &JobPath,
    number: u64,
) -> jenkins_operator::jenkins::Build {
    eventually("the build to complete", || async {
        let build = target.client.get_build(path, number).await.unwrap();
        build.is_complete().then_some(build)
    })
    .await
}

// --- server, identity, plugins -----------------------------------------------------------

#[tokio::test]
async fn server_info_reads_the_version_from_the_x_jenkins_header() {
    let target = Target::start().await;
    let info = target.client.server_info().await.unwrap();
    if target.is_emulated() {
        assert_eq!(info.version, "2.516.1");
    }
    assert!(!info.version.is_empty());
}

#[tokio::test]
async fn who_am_i_names_the_authenticated_user() {
    let target = Target::start().await;
    let me = target.client.who_am_i().await.unwrap();
    assert!(me.authenticated);
    assert!(!me.anonymous);
    if target.is_emulated() {
        assert_eq!(me.name, harness::ADMIN);
    }
}

#[tokio::test]
async fn plugins_are_listed_with_their_state() {
    let target = Target::start().await;
    if let Some(emulator) = target.emulator("a configurable plugin list") {
        let mut disabled = Plugin::new("git", "5.7.0");
        disabled.active = false;
        disabled.enabled = false;
        emulator.set_plugins(vec![
            Plugin::new("configuration-as-code", "1932.v75cb_b_f1b_698d"),
            disabled,
        ]);
    }
    let plugins = target.client.plugins().await.unwrap();
    if target.is_emulated() {
        assert_eq!(plugins.len(), 2);
        assert_eq!(plugins[0].short_name, "configuration-as-code");
        assert!(plugins[0].active && plugins[0].enabled);
        assert_eq!(plugins[1].version, "5.7.0");
        assert!(!plugins[1].active && !plugins[1].enabled);
    }
}

// --- authentication and CSRF ----------------------------------------------------------------

#[tokio::test]
async fn password_auth_fetches_one_crumb_and_sends_it_with_its_session_cookie() {
    let target = Target::start_with(EmulatorConfig::default(), true).await;
    let Some(emulator) = target.emulator("password authentication") else {
        return;
    };
    create(&target, "one").await;
    create(&target, "two").await;

    let requests = emulator.requests();
    assert_eq!(
        statuses(&requests, "GET", "/crumbIssuer/api/json"),
        vec![200]
    );
    assert_eq!(statuses(&requests, "POST", "/createItem"), vec![200, 200]);
    assert_eq!(emulator.jobs(), vec!["one", "two"]);
}

#[tokio::test]
async fn api_token_auth_posts_without_a_crumb() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("the request log") else {
        return;
    };
    create(&target, "tokened").await;
    let requests = emulator.requests();
    assert_eq!(count(&requests, "GET", "/crumbIssuer/api/json"), 0);
    assert_eq!(statuses(&requests, "POST", "/createItem"), vec![200]);
}

#[tokio::test]
async fn a_crumb_issuer_404_means_csrf_is_off_and_no_crumb_is_sent() {
    let target = Target::start_with(
        EmulatorConfig {
            csrf: false,
            ..Default::default()
        },
        true,
    )
    .await;
    let Some(emulator) = target.emulator("CSRF switched off") else {
        return;
    };
    create(&target, "a").await;
    create(&target, "b").await;
    let requests = emulator.requests();
    assert_eq!(
        statuses(&requests, "GET", "/crumbIssuer/api/json"),
        vec![404]
    );
    assert_eq!(statuses(&requests, "POST", "/createItem"), vec![200, 200]);
}

#[tokio::test]
async fn an_expired_crumb_is_fetched_again_once() {
    let target = Target::start_with(EmulatorConfig::default(), true).await;
    let Some(emulator) = target.emulator("session expiry") else {
        return;
    };
    create(&target, "before").await;
    emulator.expire_sessions();
    create(&target, "after").await;

    let requests = emulator.requests();
    assert_eq!(
        statuses(&requests, "GET", "/crumbIssuer/api/json"),
        vec![200, 200]
    );
    assert_eq!(
        statuses(&requests, "POST", "/createItem"),
        vec![200, 403, 200]
    );
}

#[tokio::test]
async fn a_token_rejected_for_lack_of_a_crumb_falls_back_to_crumbs() {
    // Older Jenkins versions can be set to demand crumbs from token users too.
    let target = Target::start().await;
    let Some(emulator) = target.emulator("the request log") else {
        return;
    };
    let password = JenkinsClient::new(JenkinsConfig::new(
        emulator.url(),
        harness::ADMIN,
        Credential::api_token(harness::PASSWORD),
    ))
    .unwrap();
    // A password sent as if it were a token: Jenkins asks for a crumb, the client provides one.
    password
        .create_job(&target.path("x"), &pipeline("", "", ""))
        .await
        .unwrap();
    let requests = emulator.requests();
    assert_eq!(statuses(&requests, "POST", "/createItem"), vec![403, 200]);
    assert_eq!(count(&requests, "GET", "/crumbIssuer/api/json"), 1);
}

#[tokio::test]
async fn bad_credentials_are_unauthorized_and_never_shown() {
    let target = Target::start().await;
    let mut config = target.config();
    config.secret = Credential::api_token("wrong-token-123");
    let client = JenkinsClient::new(config.clone()).unwrap();
    let error = client.who_am_i().await.unwrap_err();
    assert!(
        matches!(error, JenkinsError::Unauthorized { .. }),
        "{error:?}"
    );
    let shown = format!("{error} {error:?} {config:?} {client:?}");
    assert!(!shown.contains("wrong-token-123"), "{shown}");
    assert!(shown.contains("***"));
}

#[tokio::test]
async fn a_403_without_crumb_trouble_is_forbidden() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("fault injection") else {
        return;
    };
    emulator.inject(Fault::FailNext {
        path_prefix: "/whoAmI".into(),
        count: 1,
        status: 403,
    });
    let error = target.client.who_am_i().await.unwrap_err();
    assert!(matches!(error, JenkinsError::Forbidden { .. }), "{error:?}");
}

#[tokio::test]
async fn an_html_page_where_json_was_expected_is_an_invalid_response() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("fault injection") else {
        return;
    };
    // A proxy's login page answered with 200 instead of Jenkins' JSON.
    emulator.inject(Fault::FailNext {
        path_prefix: "/whoAmI".into(),
        count: 1,
        status: 200,
    });
    let error = target.client.who_am_i().await.unwrap_err();
    assert!(
        matches!(error, JenkinsError::InvalidResponse { .. }),
        "{error:?}"
    );
    assert!(!error.is_transient());
}

// --- names, folders, configs ----------------------------------------------------------------

#[tokio::test]
async fn names_with_spaces_plus_signs_unicode_and_folders_round_trip() {
    let target = Target::start().await;
    let path = target.path("team a/sub+b/ünï code (x)");
    target
        .client
        .ensure_folder(&path.parent().unwrap())
        .await
        .unwrap();
    let config = pipeline("ünïcødé &amp; &lt;friends&gt;", "", "echo 'a+b c'");
    target.client.create_job(&path, &config).await.unwrap();

    let job = target.client.get_job(&path).await.unwrap();
    assert_eq!(job.full_name, path.full_name());
    assert!(target.client.job_exists(&path).await.unwrap());
    let stored = target.client.get_job_config(&path).await.unwrap();
    assert!(configs_equivalent(&config, &stored), "{stored}");

    if let Some(emulator) = target.emulator("the request log") {
        assert_eq!(
            emulator.jobs(),
            vec!["team a", "team a/sub+b", "team a/sub+b/ünï code (x)"]
        );
        let requests = emulator.requests();
        let create = requests
            .iter()
            .find(|r| {
                r.path.ends_with("/createItem")
                    && r.query.as_deref().is_some_and(|q| q.contains("code"))
            })
            .unwrap();
        assert_eq!(create.path, "/job/team%20a/job/sub%2Bb/createItem");
        assert_eq!(
            create.query.as_deref(),
            Some("name=%C3%BCn%C3%AF+code+%28x%29")
        );
    }
}

#[tokio::test]
async fn a_bad_name_is_refused_before_anything_is_sent() {
    for bad in ["a?b", "x/..", "trailing.", "semi;colon", "ctrl\u{1}"] {
        let error = JobPath::parse(bad).unwrap_err();
        assert!(
            matches!(error, JenkinsError::BadName { .. }),
            "{bad}: {error:?}"
        );
    }
}

#[tokio::test]
async fn an_existing_name_in_another_case_already_exists() {
    let target = Target::start().await;
    create(&target, "Foo").await;
    let error = target
        .client
        .create_job(&target.path("foo"), &pipeline("", "", ""))
        .await;
    assert!(
        matches!(error, Err(JenkinsError::AlreadyExists { .. })),
        "{error:?}"
    );
    assert!(target.client.job_exists(&target.path("FOO")).await.unwrap());
}

#[tokio::test]
async fn a_malformed_config_is_rejected_and_leaves_nothing_behind() {
    let target = Target::start().await;
    let path = target.path("broken");
    let error = target
        .client
        .create_job(&path, "<flow-definition><description>")
        .await;
    assert!(
        matches!(error, Err(JenkinsError::InvalidConfig { .. })),
        "{error:?}"
    );
    assert!(!target.client.job_exists(&path).await.unwrap());

    // Updating with malformed XML or with another item type fails too, and keeps the job.
    let path = create(&target, "kept").await;
    let error = target.client.update_job(&path, "<flow-definition>").await;
    assert!(
        matches!(error, Err(JenkinsError::InvalidConfig { .. })),
        "{error:?}"
    );
    let error = target
        .client
        .update_job(&path, "<project><builders/></project>")
        .await;
    assert!(
        matches!(error, Err(JenkinsError::InvalidConfig { .. })),
        "{error:?}"
    );
    let stored = target.client.get_job_config(&path).await.unwrap();
    assert!(configs_equivalent(
        &stored,
        &pipeline("test job", "", "echo 'hi'")
    ));
}

#[tokio::test]
async fn characters_xml_cannot_carry_are_refused_locally() {
    let target = Target::start().await;
    let error = target
        .client
        .create_job(&target.path("c"), "<project>\u{7}</project>")
        .await;
    assert!(
        matches!(error, Err(JenkinsError::InvalidRequest { .. })),
        "{error:?}"
    );
    if let Some(emulator) = target.emulator("the request log") {
        assert!(emulator.requests().is_empty());
    }
}

#[tokio::test]
async fn a_missing_folder_is_not_found_on_create() {
    let target = Target::start().await;
    let error = target
        .client
        .create_job(&target.path("nowhere/job"), &pipeline("", "", ""))
        .await;
    assert!(
        matches!(error, Err(JenkinsError::NotFound { .. })),
        "{error:?}"
    );
}

#[tokio::test]
async fn ensure_folder_refuses_to_go_through_a_job() {
    let target = Target::start().await;
    create(&target, "plain").await;
    let error = target.client.ensure_folder(&target.path("plain/sub")).await;
    assert!(
        matches!(error, Err(JenkinsError::InvalidRequest { .. })),
        "{error:?}"
    );
    // Existing folders are left alone.
    target
        .client
        .ensure_folder(&target.path("f/g"))
        .await
        .unwrap();
    target
        .client
        .ensure_folder(&target.path("f/g"))
        .await
        .unwrap();
}

#[tokio::test]
async fn update_job_replaces_the_config_and_its_parameters() {
    let target = Target::start().await;
    let path = create(&target, "params").await;
    assert!(
        target
            .client
            .get_job(&path)
            .await
            .unwrap()
            .parameters
            .is_empty()
    );

    let config = pipeline("now with ünïcode parameters", PARAMETERS, "echo 'x'");
    target
        .client
        .update_job(&path, &format!("\u{feff}{config}"))
        .await
        .unwrap();
    let stored = target.client.get_job_config(&path).await.unwrap();
    assert!(configs_equivalent(&config, &stored), "{stored}");

    let job = target.client.get_job(&path).await.unwrap();
    let kinds: Vec<_> = job
        .parameters
        .iter()
        .map(|p| (p.name.as_str(), &p.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("TARGET", &ParameterKind::String),
            (
                "SIZE",
                &ParameterKind::Choice(vec!["small".into(), "large".into()])
            ),
            ("DRY", &ParameterKind::Boolean),
        ]
    );
    assert_eq!(job.parameters[0].default.as_deref(), Some("staging"));
    assert_eq!(job.parameters[0].description, "where");
    assert_eq!(job.parameters[2].default.as_deref(), Some("true"));
}

#[tokio::test]
async fn a_config_edited_in_the_ui_is_seen_as_drift() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("editing a config behind the client's back") else {
        return;
    };
    let path = create(&target, "drifting").await;
    let ours = pipeline("test job", "", "echo 'hi'");
    assert!(configs_equivalent(
        &ours,
        &target.client.get_job_config(&path).await.unwrap()
    ));
    emulator.set_job_config_raw("drifting", &pipeline("edited by hand", "", "echo 'hi'"));
    assert!(!configs_equivalent(
        &ours,
        &target.client.get_job_config(&path).await.unwrap()
    ));
}

#[tokio::test]
async fn deleting_a_job_twice_reports_not_found_the_second_time() {
    let target = Target::start().await;
    let path = create(&target, "doomed").await;
    target.client.delete_job(&path).await.unwrap();
    assert!(!target.client.job_exists(&path).await.unwrap());
    let error = target.client.delete_job(&path).await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    let error = target.client.get_job(&path).await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
}

#[tokio::test]
async fn deleting_a_folder_deletes_what_it_holds() {
    let target = Target::start().await;
    let inner = create(&target, "outer/inner/job").await;
    target
        .client
        .delete_job(&target.path("outer"))
        .await
        .unwrap();
    assert!(!target.client.job_exists(&inner).await.unwrap());
    assert!(
        !target
            .client
            .job_exists(&target.path("outer"))
            .await
            .unwrap()
    );
}

// --- builds and the queue ------------------------------------------------------------------

#[tokio::test]
async fn a_disabled_job_is_not_buildable_until_enabled() {
    let target = Target::start().await;
    let path = create(&target, "sleepy").await;
    target.client.disable_job(&path).await.unwrap();
    let job = target.client.get_job(&path).await.unwrap();
    assert!(job.disabled && !job.buildable);
    assert_eq!(job.color.as_deref(), Some("disabled"));
    let error = target.client.trigger_build(&path, &[]).await.unwrap_err();
    assert!(
        matches!(error, JenkinsError::NotBuildable { .. }),
        "{error:?}"
    );

    target.client.enable_job(&path).await.unwrap();
    let job = target.client.get_job(&path).await.unwrap();
    assert!(!job.disabled && job.buildable);
    let queue_id = target.client.trigger_build(&path, &[]).await.unwrap();
    build_number(&target, &path, queue_id).await;
}

#[tokio::test]
async fn a_plain_build_goes_from_queue_to_a_finished_build() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("finishing builds") else {
        return;
    };
    let path = create(&target, "plain").await;
    let queue_id = target.client.trigger_build(&path, &[]).await.unwrap();

    // The item has left the queue but names no build on the first poll.
    let first = target.client.queue_item(queue_id).await.unwrap();
    assert_eq!(
        first,
        QueueItem::Left {
            cancelled: false,
            executable: None
        }
    );
    let number = build_number(&target, &path, queue_id).await;
    assert_eq!(number, 1);

    let build = target.client.get_build(&path, number).await.unwrap();
    assert!(build.building);
    assert_eq!(build.result, None);
    assert_eq!(build.queue_id, queue_id);
    assert!(
        target
            .client
            .get_job(&path)
            .await
            .unwrap()
            .last_build
            .is_some()
    );

    assert!(emulator.finish_build("plain", number, EmuResult::Unstable));
    // A result can show while the build is still `building`: completion is building == false.
    let early = target.client.get_build(&path, number).await.unwrap();
    assert!(early.building);
    assert_eq!(early.result, Some(BuildResult::Unstable));
    let done = completed(&target, &path, number).await;
    assert_eq!(done.result, Some(BuildResult::Unstable));
    assert!(done.duration_ms > 0);
    assert!(done.url.ends_with("/job/plain/1/"), "{}", done.url);
}

#[tokio::test]
async fn parameters_pick_build_with_parameters_and_defaults_fill_the_rest() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("build parameters as the emulator saw them") else {
        return;
    };
    let path = target.path("deploy");
    target
        .client
        .create_job(&path, &pipeline("", PARAMETERS, ""))
        .await
        .unwrap();

    // No parameters on a parameterized job: `build` says 400, the client uses the defaults.
    let queue_id = target.client.trigger_build(&path, &[]).await.unwrap();
    let number = build_number(&target, &path, queue_id).await;
    let build = target.client.get_build(&path, number).await.unwrap();
    let defaults = [("TARGET", "staging"), ("SIZE", "small"), ("DRY", "true")];
    let expected: Vec<(String, String)> = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(build.parameters, expected);

    let params = vec![
        ("TARGET".to_string(), "prod + dr=1&x".to_string()),
        ("SIZE".to_string(), "large".to_string()),
        ("UNDEFINED".to_string(), "ignored".to_string()),
    ];
    let queue_id = target.client.trigger_build(&path, &params).await.unwrap();
    let number = build_number(&target, &path, queue_id).await;
    let build = target.client.get_build(&path, number).await.unwrap();
    assert_eq!(
        build.parameters[0],
        ("TARGET".into(), "prod + dr=1&x".into())
    );
    assert_eq!(build.parameters[1], ("SIZE".into(), "large".into()));
    assert_eq!(build.parameters[2], ("DRY".into(), "true".into()));

    let requests = emulator.requests();
    assert_eq!(statuses(&requests, "POST", "/deploy/build"), vec![400]);
    assert_eq!(
        statuses(&requests, "POST", "/deploy/buildWithParameters"),
        vec![201, 201]
    );
}

#[tokio::test]
async fn parameters_on_a_job_without_any_are_refused() {
    let target = Target::start().await;
    let path = create(&target, "plain").await;
    let params = vec![("A".to_string(), "1".to_string())];
    let error = target
        .client
        .trigger_build(&path, &params)
        .await
        .unwrap_err();
    assert!(
        matches!(error, JenkinsError::NotParameterized { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn identical_parameters_coalesce_into_the_queued_item() {
    let config = EmulatorConfig {
        quiet_period: Duration::from_secs(3600),
        ..Default::default()
    };
    let target = Target::start_with(config, false).await;
    let Some(emulator) = target.emulator("a long quiet period") else {
        return;
    };
    let path = target.path("deploy");
    target
        .client
        .create_job(&path, &pipeline("", PARAMETERS, ""))
        .await
        .unwrap();

    let prod = vec![("TARGET".to_string(), "prod".to_string())];
    let first = target.client.trigger_build(&path, &prod).await.unwrap();
    let again = target.client.trigger_build(&path, &prod).await.unwrap();
    let other = target
        .client
        .trigger_build(&path, &[("TARGET".into(), "qa".into())])
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_ne!(first, other);
    assert!(matches!(
        target.client.queue_item(first).await.unwrap(),
        QueueItem::Waiting { .. }
    ));
    assert!(target.client.get_job(&path).await.unwrap().in_queue);
    assert_eq!(
        statuses(&emulator.requests(), "POST", "/buildWithParameters"),
        vec![201, 303, 201]
    );

    emulator.release_queue();
    let number = build_number(&target, &path, first).await;
    assert_eq!(
        target
            .client
            .get_build(&path, number)
            .await
            .unwrap()
            .queue_id,
        first
    );
}

#[tokio::test]
async fn a_plain_job_already_queued_returns_the_same_item() {
    let config = EmulatorConfig {
        quiet_period: Duration::from_secs(3600),
        ..Default::default()
    };
    let target = Target::start_with(config, false).await;
    let Some(_) = target.emulator("a long quiet period") else {
        return;
    };
    let path = create(&target, "plain").await;
    let first = target.client.trigger_build(&path, &[]).await.unwrap();
    let second = target.client.trigger_build(&path, &[]).await.unwrap();
    assert_eq!(first, second);
}

#[tokio::test]
async fn a_forgotten_left_item_is_found_by_its_queue_id() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("forgetting left queue items") else {
        return;
    };
    let path = create(&target, "forgetful").await;
    let first = target.client.trigger_build(&path, &[]).await.unwrap();
    let number = build_number(&target, &path, first).await;
    let second = target.client.trigger_build(&path, &[]).await.unwrap();

    emulator.forget_left_items();
    assert_eq!(
        target.client.queue_item(second).await.unwrap(),
        QueueItem::NotFound
    );
    let found = target
        .client
        .build_number_for_queue_item(&path, second)
        .await
        .unwrap();
    assert_eq!(found, Some(number + 1));
    assert_eq!(
        target
            .client
            .find_build_by_queue_id(&path, first, &BuildSearch::default())
            .await
            .unwrap(),
        Some(number)
    );
    assert_eq!(
        target
            .client
            .find_build_by_queue_id(&path, 9999, &BuildSearch::default())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_build_search_pages_through_all_builds_as_far_as_its_bound() {
    let outcome = jenkins_emulator::Outcome {
        result: EmuResult::Success,
        duration: Duration::ZERO,
        log: String::new(),
    };
    let config = EmulatorConfig {
        default_outcome: Some(outcome),
        ..Default::default()
    };
    let target = Target::start_with(config, false).await;
    let Some(emulator) = target.emulator("a job with 260 builds") else {
        return;
    };
    let path = target.path("busy");
    target
        .client
        .create_job(&path, &pipeline("", PARAMETERS, ""))
        .await
        .unwrap();
    for n in 1..=260 {
        let target_value = format!("t{n}");
        target
            .client
            .trigger_build(&path, &[("TARGET".into(), target_value)])
            .await
            .unwrap();
    }
    eventually("260 builds", || async {
        emulator.build(&path.full_name(), 260).map(|_| ())
    })
    .await;
    let pages = |emulator: &JenkinsEmulator| -> Vec<String> {
        emulator
            .requests()
            .iter()
            .filter_map(|r| r.query.as_deref())
            .filter(|q| q.contains("allBuilds"))
            .map(|q| {
                let tree = url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "tree")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                tree.rsplit('{').next().unwrap_or_default().to_string()
            })
            .collect()
    };

    // The oldest build is found on the third page; its queue item too.
    emulator.clear_requests();
    let oldest = target
        .client
        .find_build_by_parameter(&path, "TARGET", "t1", &BuildSearch::default())
        .await
        .unwrap()
        .expect("build #1");
    assert_eq!(oldest.number, 1);
    assert_eq!(pages(emulator), ["0,100}", "100,200}", "200,300}"]);
    let by_queue = target
        .client
        .find_build_by_queue_id(&path, oldest.queue_id, &BuildSearch::default())
        .await
        .unwrap();
    assert_eq!(by_queue, Some(1));

    // No further than max_builds, and no further than builds started before the bound.
    emulator.clear_requests();
    let capped = BuildSearch {
        max_builds: 150,
        ..BuildSearch::default()
    };
    let missing = target
        .client
        .find_build_by_parameter(&path, "TARGET", "t1", &capped)
        .await
        .unwrap();
    assert_eq!(missing, None);
    assert_eq!(pages(emulator), ["0,100}", "100,150}"]);
    emulator.clear_requests();
    let future = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 60_000;
    let recent = target
        .client
        .find_build_by_parameter(&path, "TARGET", "t1", &BuildSearch::started_after(future))
        .await
        .unwrap();
    assert_eq!(recent, None);
    assert_eq!(
        pages(emulator),
        ["0,100}"],
        "the first page is already too old"
    );
}

#[tokio::test]
async fn a_left_item_names_its_build_only_from_the_second_poll() {
    let target = Target::start().await;
    let Some(_) = target.emulator("a left item with a null executable") else {
        return;
    };
    let path = create(&target, "late").await;
    let queue_id = target.client.trigger_build(&path, &[]).await.unwrap();
    assert_eq!(
        target
            .client
            .build_number_for_queue_item(&path, queue_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        target
            .client
            .build_number_for_queue_item(&path, queue_id)
            .await
            .unwrap(),
        Some(1)
    );
}

#[tokio::test]
async fn a_cancelled_queue_item_never_becomes_a_build() {
    let config = EmulatorConfig {
        quiet_period: Duration::from_secs(3600),
        ..Default::default()
    };
    let target = Target::start_with(config, false).await;
    let Some(emulator) = target.emulator("a long quiet period") else {
        return;
    };
    let path = create(&target, "cancelled").await;
    let queue_id = target.client.trigger_build(&path, &[]).await.unwrap();
    assert!(target.client.cancel_queue_item(queue_id).await.unwrap());
    assert!(
        !target.client.cancel_queue_item(queue_id).await.unwrap(),
        "a left item Jenkins still remembers cannot be cancelled again"
    );
    assert_eq!(
        target.client.queue_item(queue_id).await.unwrap(),
        QueueItem::Left {
            cancelled: true,
            executable: None
        }
    );
    let error = target
        .client
        .build_number_for_queue_item(&path, queue_id)
        .await
        .unwrap_err();
    assert!(matches!(error, JenkinsError::Cancelled { .. }), "{error:?}");
    let error = target.client.cancel_queue_item(4242).await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    assert!(emulator.queued().is_empty());
}

#[tokio::test]
async fn a_blocked_item_waits_for_the_running_build() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("controlling build ends") else {
        return;
    };
    let path = target.path("serial");
    let config = pipeline("", "", "").replace(
        "<properties/>",
        "<properties><org.jenkinsci.plugins.workflow.job.properties.\
         DisableConcurrentBuildsJobProperty/></properties>",
    );
    target.client.create_job(&path, &config).await.unwrap();
    let first = target.client.trigger_build(&path, &[]).await.unwrap();
    let number = build_number(&target, &path, first).await;
    let second = target.client.trigger_build(&path, &[]).await.unwrap();
    assert!(matches!(
        target.client.queue_item(second).await.unwrap(),
        QueueItem::Blocked { .. }
    ));
    emulator.finish_build("serial", number, EmuResult::Success);
    let next = build_number(&target, &path, second).await;
    assert_eq!(next, number + 1);
}

#[tokio::test]
async fn the_progressive_log_follows_a_build_across_polls() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("writing to a build's console") else {
        return;
    };
    let path = create(&target, "chatty").await;
    let queue_id = target.client.trigger_build(&path, &[]).await.unwrap();
    let number = build_number(&target, &path, queue_id).await;

    let mut text = String::new();
    let first = target
        .client
        .progressive_log(&path, number, 0)
        .await
        .unwrap();
    assert!(first.more);
    // The cursor is opaque: it is not the length of the text read.
    assert_ne!(first.next_offset, first.text.len() as u64);
    text.push_str(&first.text);

    emulator.append_log("chatty", number, "step one\n");
    let second = target
        .client
        .progressive_log(&path, number, first.next_offset)
        .await
        .unwrap();
    assert_eq!(second.text, "step one\n");
    text.push_str(&second.text);

    emulator.append_log("chatty", number, "step twö\n");
    emulator.finish_build("chatty", number, EmuResult::Failure);
    let mut offset = second.next_offset;
    for _ in 0..100 {
        let chunk = target
            .client
            .progressive_log(&path, number, offset)
            .await
            .unwrap();
        text.push_str(&chunk.text);
        offset = chunk.next_offset;
        if !chunk.more {
            break;
        }
    }
    assert_eq!(
        text,
        target.client.console_text(&path, number).await.unwrap()
    );
    assert!(
        text.ends_with("step one\nstep twö\nFinished: FAILURE\n"),
        "{text}"
    );
    let done = completed(&target, &path, number).await;
    assert_eq!(done.result, Some(BuildResult::Failure));
}

#[tokio::test]
async fn a_stopped_build_ends_aborted() {
    let target = Target::start().await;
    let Some(_) = target.emulator("a build that runs until stopped") else {
        return;
    };
    let path = create(&target, "long").await;
    let queue_id = target.client.trigger_build(&path, &[]).await.unwrap();
    let number = build_number(&target, &path, queue_id).await;
    target.client.stop_build(&path, number).await.unwrap();
    let done = completed(&target, &path, number).await;
    assert_eq!(done.result, Some(BuildResult::Aborted));
    let error = target.client.stop_build(&path, 99).await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    let error = target.client.get_build(&path, 99).await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
}

#[tokio::test]
async fn builds_with_a_default_outcome_finish_by_themselves() {
    let outcome = jenkins_emulator::Outcome {
        result: EmuResult::Success,
        duration: Duration::from_millis(20),
        log: "hello\n".into(),
    };
    let config = EmulatorConfig {
        default_outcome: Some(outcome),
        ..Default::default()
    };
    let target = Target::start_with(config, false).await;
    let path = create(&target, "auto").await;
    let queue_id = target.client.trigger_build(&path, &[]).await.unwrap();
    let number = build_number(&target, &path, queue_id).await;
    let done = completed(&target, &path, number).await;
    assert_eq!(done.result, Some(BuildResult::Success));
}

// --- configuration as code -----------------------------------------------------------------

#[tokio::test]
async fn casc_reload_maps_token_and_configuration_failures() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("a configurable JCasC endpoint") else {
        return;
    };
    let error = target.client.reload_casc("any").await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");

    emulator.set_casc_reload(Some("reload-me"), CascReload::Applied);
    target.client.reload_casc("reload-me").await.unwrap();
    let error = target.client.reload_casc("wrong").await.unwrap_err();
    assert!(
        matches!(error, JenkinsError::Unauthorized { .. }),
        "{error:?}"
    );

    emulator.set_casc_reload(
        Some("reload-me"),
        CascReload::Fails("no such cloud: k8s".into()),
    );
    let error = target.client.reload_casc("reload-me").await.unwrap_err();
    match &error {
        JenkinsError::CascReloadFailed { message, .. } => {
            assert!(message.contains("no such cloud: k8s"), "{message}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(emulator.casc_reload_count(), 2);
    // The token is never written in the error.
    assert!(!format!("{error}").contains("reload-me"));

    let error = target.client.reload_casc_as_admin().await.unwrap_err();
    assert!(
        matches!(error, JenkinsError::CascReloadFailed { .. }),
        "{error:?}"
    );
    emulator.set_casc_reload(Some("reload-me"), CascReload::Applied);
    target.client.reload_casc_as_admin().await.unwrap();
}

// --- availability, retries, timeouts -------------------------------------------------------

#[tokio::test]
async fn a_starting_jenkins_is_reported_after_retries() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("a starting Jenkins") else {
        return;
    };
    emulator.set_starting(true);
    let error = target.client.server_info().await.unwrap_err();
    assert!(matches!(error, JenkinsError::Starting { .. }), "{error:?}");
    assert!(error.is_transient());
    assert_eq!(
        statuses(&emulator.requests(), "GET", "/api/json"),
        vec![503, 503, 503]
    );

    emulator.set_starting(false);
    target.client.server_info().await.unwrap();
}

#[tokio::test]
async fn reads_are_retried_on_5xx() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("fault injection") else {
        return;
    };
    create(&target, "flaky").await;
    emulator.clear_requests();
    emulator.inject(Fault::FailNext {
        path_prefix: "/job/flaky/api".into(),
        count: 2,
        status: 500,
    });
    target.client.get_job(&target.path("flaky")).await.unwrap();
    assert_eq!(
        statuses(&emulator.requests(), "GET", "/job/flaky/api/json"),
        vec![500, 500, 200]
    );
}

#[tokio::test]
async fn create_item_is_never_retried() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("fault injection") else {
        return;
    };
    emulator.inject(Fault::FailNext {
        path_prefix: "/createItem".into(),
        count: 1,
        status: 502,
    });
    let error = target
        .client
        .create_job(&target.path("once"), &pipeline("", "", ""))
        .await;
    match error {
        Err(JenkinsError::Unexpected { status: 502, .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        statuses(&emulator.requests(), "POST", "/createItem"),
        vec![502]
    );

    emulator.inject(Fault::FailNext {
        path_prefix: "/job/once2/build".into(),
        count: 1,
        status: 503,
    });
    create(&target, "once2").await;
    let error = target
        .client
        .trigger_build(&target.path("once2"), &[])
        .await
        .unwrap_err();
    assert!(matches!(error, JenkinsError::Starting { .. }), "{error:?}");
    assert_eq!(
        statuses(&emulator.requests(), "POST", "/job/once2/build"),
        vec![503]
    );
}

#[tokio::test]
async fn a_request_that_takes_too_long_times_out() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("pausing responses") else {
        return;
    };
    let mut config = target.config();
    config.request_timeout = Duration::from_millis(200);
    config.retries = 1;
    let client = JenkinsClient::new(config).unwrap();
    emulator.pause();
    let error = client.server_info().await.unwrap_err();
    emulator.unpause();
    assert!(matches!(error, JenkinsError::Timeout { .. }), "{error:?}");
    assert!(error.is_transient());
    client.server_info().await.unwrap();
}

#[tokio::test]
async fn a_closed_port_is_connection_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let config = harness::fast(JenkinsConfig::new(url, "u", Credential::api_token("t")));
    let error = JenkinsClient::new(config)
        .unwrap()
        .server_info()
        .await
        .unwrap_err();
    assert!(
        matches!(error, JenkinsError::ConnectionRefused { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_context_path_in_the_base_url_is_kept() {
    let config = EmulatorConfig {
        prefix: "/jenkins".into(),
        ..Default::default()
    };
    let emulator = JenkinsEmulator::start(config).await.unwrap();
    let token = emulator.add_token("admin");
    let mut url = emulator.url();
    url.set_path("/jenkins");
    let client = JenkinsClient::new(harness::fast(JenkinsConfig::new(
        url,
        "admin",
        Credential::api_token(token),
    )))
    .unwrap();
    let path = JobPath::parse("in prefix").unwrap();
    client
        .create_job(&path, &pipeline("", "", ""))
        .await
        .unwrap();
    let queue_id = client.trigger_build(&path, &[]).await.unwrap();
    assert!(client.get_job(&path).await.unwrap().full_name == "in prefix");
    assert!(queue_id > 0);
    assert!(
        emulator
            .requests()
            .iter()
            .all(|r| r.path.starts_with("/jenkins/"))
    );
}

#[tokio::test]
async fn clones_share_one_crumb_under_concurrent_use() {
    let target = Target::start_with(EmulatorConfig::default(), true).await;
    let Some(emulator) = target.emulator("the request log") else {
        return;
    };
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let client = target.client.clone();
            let path = target.path(&format!("job {i}"));
            tokio::spawn(async move { client.create_job(&path, &pipeline("", "", "")).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let requests = emulator.requests();
    assert_eq!(count(&requests, "GET", "/crumbIssuer/api/json"), 1);
    assert_eq!(emulator.jobs().len(), 8);
}

/// Clients that share a semaphore share its bound: with one permit, a second request waits
/// until the first one's answer is in, whichever client sends it.
#[tokio::test]
async fn clients_sharing_permits_have_no_more_requests_in_flight_than_permits() {
    let target = Target::start().await;
    let Some(emulator) = target.emulator("holding a request in flight") else {
        return;
    };
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
    let client = |permits: &std::sync::Arc<tokio::sync::Semaphore>| {
        let mut config = target.config();
        config.permits = Some(permits.clone());
        JenkinsClient::new(config).expect("a client")
    };
    let (first, second) = (client(&permits), client(&permits));
    emulator.inject(Fault::Hold {
        path_suffix: "/api/json".into(),
        count: 2,
    });
    let one = tokio::spawn(async move { first.server_info().await });
    eventually("the first request is held", || async {
        (emulator.held() == 1).then_some(())
    })
    .await;
    let two = tokio::spawn(async move { second.server_info().await });
    // The second request waits for the permit, not in Jenkins.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(emulator.held(), 1);

    emulator.release_held();
    one.await.expect("joined").expect("the first answer");
    eventually("the second request is held in turn", || async {
        (emulator.held() == 1).then_some(())
    })
    .await;
    emulator.release_held();
    two.await.expect("joined").expect("the second answer");
    assert_eq!(count(&emulator.requests(), "GET", "/api/json"), 2);
}

/// A POST with a password fetches a crumb first: with a single permit the crumb request and
/// the POST take it in turn, never one inside the other.
#[tokio::test]
async fn one_permit_is_enough_for_a_post_that_needs_a_crumb_first() {
    let target = Target::start_with(EmulatorConfig::default(), true).await;
    let Some(emulator) = target.emulator("password authentication") else {
        return;
    };
    let mut config = target.config();
    config.permits = Some(std::sync::Arc::new(tokio::sync::Semaphore::new(1)));
    let client = JenkinsClient::new(config).expect("a client");
    let xml = pipeline("one permit", "", "echo 'hi'");
    let created = tokio::time::timeout(
        Duration::from_secs(10),
        client.create_job(&target.path("one-permit"), &xml),
    )
    .await;
    assert!(matches!(created, Ok(Ok(()))), "{created:?}");
    let requests = emulator.requests();
    assert_eq!(
        statuses(&requests, "GET", "/crumbIssuer/api/json"),
        vec![200]
    );
    assert_eq!(statuses(&requests, "POST", "/createItem"), vec![200]);
}

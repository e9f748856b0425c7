//! The emulator is as unkind as Jenkins: these raw HTTP checks keep it from becoming kinder.

use std::time::Duration;

use jenkins_emulator::{BuildResult, EmulatorConfig, JenkinsEmulator, Outcome};
use reqwest::{Client, StatusCode};

const JOB: &str = "<flow-definition><description>ünï</description><disabled>false</disabled>\
                   </flow-definition>";

async fn setup() -> (JenkinsEmulator, Client, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = JenkinsEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    emulator.add_user("alice", "pw");
    let token = emulator.add_token("alice");
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    (emulator, client, token)
}

#[tokio::test]
async fn anonymous_is_forbidden_and_bad_credentials_are_unauthorized() {
    let (emulator, client, _) = setup().await;
    let url = emulator.url().join("api/json").unwrap();
    let anonymous = client.get(url.clone()).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::FORBIDDEN);
    assert!(anonymous.headers().get("x-jenkins").is_some());

    let bad = client
        .get(url)
        .basic_auth("alice", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bad.headers()["www-authenticate"], "Basic realm=\"Jenkins\"");
}

#[tokio::test]
async fn password_posts_need_the_crumb_of_their_own_session() {
    let (emulator, client, token) = setup().await;
    let create = emulator.url().join("createItem?name=a").unwrap();
    let post = |secret: &str| {
        client
            .post(create.clone())
            .basic_auth("alice", Some(secret))
            .header("content-type", "application/xml")
            .body(JOB)
    };
    let refused = post("pw").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("No valid crumb"));

    // A crumb without its session cookie is worthless.
    let crumb_url = emulator.url().join("crumbIssuer/api/json").unwrap();
    let issued = client
        .get(crumb_url)
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .unwrap();
    assert!(
        issued.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("JSESSIONID.")
    );
    let crumb: serde_json::Value = issued.json().await.unwrap();
    let crumb = crumb["crumb"].as_str().unwrap().to_string();
    let cookieless = Client::new()
        .post(create.clone())
        .basic_auth("alice", Some("pw"))
        .header("Jenkins-Crumb", &crumb)
        .header("content-type", "application/xml")
        .body(JOB)
        .send()
        .await
        .unwrap();
    assert_eq!(cookieless.status(), StatusCode::FORBIDDEN);

    let accepted = post("pw")
        .header("Jenkins-Crumb", &crumb)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    let tokened = client
        .post(emulator.url().join("createItem?name=b").unwrap())
        .basic_auth("alice", Some(&token))
        .header("content-type", "application/xml")
        .body(JOB)
        .send()
        .await
        .unwrap();
    assert_eq!(tokened.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_names_get_400_with_x_error_and_index_urls_redirect() {
    let (emulator, client, token) = setup().await;
    let send = |path: &str| {
        client
            .post(emulator.url().join(path).unwrap())
            .basic_auth("alice", Some(&token))
            .header("content-type", "application/xml")
            .body(JOB)
    };
    let bad = send("createItem?name=a%3Fb").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(
        bad.headers()["x-error"]
            .to_str()
            .unwrap()
            .contains("unsafe character")
    );

    assert_eq!(
        send("createItem?name=ok").send().await.unwrap().status(),
        StatusCode::OK
    );
    let index = client
        .get(emulator.url().join("job/ok").unwrap())
        .basic_auth("alice", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), StatusCode::FOUND);
    assert!(
        index.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/job/ok/")
    );
}

#[tokio::test]
async fn config_updates_honour_the_charset_and_refuse_a_bom() {
    let (emulator, client, token) = setup().await;
    let post = |content_type: &'static str, body: Vec<u8>| {
        client
            .post(emulator.url().join("job/j/config.xml").unwrap())
            .basic_auth("alice", Some(&token))
            .header("content-type", content_type)
            .body(body)
    };
    let create = client
        .post(emulator.url().join("createItem?name=j").unwrap())
        .basic_auth("alice", Some(&token))
        .header("content-type", "application/xml")
        .body(JOB);
    assert_eq!(create.send().await.unwrap().status(), StatusCode::OK);

    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(JOB.as_bytes());
    let refused = post("application/xml; charset=utf-8", bom)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // Without a charset the body is read as ISO-8859-1 and Unicode is mangled.
    let latin = post("application/xml", JOB.as_bytes().to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(latin.status(), StatusCode::OK);
    assert!(!emulator.job_config("j").unwrap().contains("ünï"));
    let utf8 = post("application/xml; charset=utf-8", JOB.as_bytes().to_vec())
        .send()
        .await;
    assert_eq!(utf8.unwrap().status(), StatusCode::OK);
    let stored = emulator.job_config("j").unwrap();
    assert!(
        stored.starts_with("<?xml version='1.1' encoding='UTF-8'?>"),
        "{stored}"
    );
    assert!(stored.contains("ünï"));

    let deleted = client
        .delete(emulator.url().join("job/j/").unwrap())
        .basic_auth("alice", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(emulator.jobs().is_empty());
}

#[tokio::test]
async fn builds_lists_the_newest_hundred_and_all_builds_pages_by_range() {
    let (emulator, client, token) = setup().await;
    let create = client
        .post(emulator.url().join("createItem?name=many").unwrap())
        .basic_auth("alice", Some(&token))
        .header("content-type", "application/xml")
        .body(JOB);
    assert_eq!(create.send().await.unwrap().status(), StatusCode::OK);
    emulator.set_job_outcome(
        "many",
        Some(Outcome {
            result: BuildResult::Success,
            duration: Duration::ZERO,
            log: String::new(),
        }),
    );
    for _ in 0..130 {
        let queued = client
            .post(emulator.url().join("job/many/build").unwrap())
            .basic_auth("alice", Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(queued.status(), StatusCode::CREATED);
    }
    let get = |tree: &'static str| {
        let url = emulator.url().join("job/many/api/json").unwrap();
        client
            .get(url)
            .query(&[("tree", tree)])
            .basic_auth("alice", Some(&token))
            .send()
    };
    let numbers = |value: &serde_json::Value, key: &str| -> Vec<u64> {
        value[key]
            .as_array()
            .map(|list| list.iter().filter_map(|b| b["number"].as_u64()).collect())
            .unwrap_or_default()
    };

    // `builds` stops at the newest 100; `allBuilds` is not shown unless a tree names it.
    let default: serde_json::Value = client
        .get(emulator.url().join("job/many/api/json").unwrap())
        .basic_auth("alice", Some(&token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(numbers(&default, "builds").len(), 100);
    assert_eq!(numbers(&default, "builds")[0], 130);
    assert!(default.get("allBuilds").is_none());

    // Pages of allBuilds, newest first, with only what the tree asks for.
    let page: serde_json::Value = get("allBuilds[number,queueId]{100,120}")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        numbers(&page, "allBuilds"),
        (11..=30).rev().collect::<Vec<_>>()
    );
    assert!(page.get("builds").is_none() && page.get("name").is_none());
    assert!(page["allBuilds"][0]["queueId"].as_u64().is_some());
    assert!(page["allBuilds"][0].get("url").is_none());
    let last: serde_json::Value = get("allBuilds[number]{120,140}")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        numbers(&last, "allBuilds"),
        (1..=10).rev().collect::<Vec<_>>()
    );

    let malformed = get("allBuilds[number{0,x}").await.unwrap();
    assert_eq!(malformed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        malformed
            .text()
            .await
            .unwrap()
            .contains("Malformed tree expression")
    );
}

#[tokio::test]
async fn a_blocked_item_says_which_build_blocks_it_and_its_changing_eta() {
    let (emulator, client, token) = setup().await;
    let serial = "<flow-definition><properties><org.jenkinsci.plugins.workflow.job.properties.\
                  DisableConcurrentBuildsJobProperty/></properties></flow-definition>";
    let create = client
        .post(emulator.url().join("createItem?name=serial").unwrap())
        .basic_auth("alice", Some(&token))
        .header("content-type", "application/xml")
        .body(serial);
    assert_eq!(create.send().await.unwrap().status(), StatusCode::OK);
    emulator.set_job_outcome(
        "serial",
        Some(Outcome {
            result: BuildResult::Success,
            duration: Duration::from_secs(5),
            log: String::new(),
        }),
    );
    let trigger = || {
        client
            .post(emulator.url().join("job/serial/build?delay=0sec").unwrap())
            .basic_auth("alice", Some(&token))
            .send()
    };
    trigger().await.unwrap();
    let second = trigger().await.unwrap();
    let location = second.headers()["location"].to_str().unwrap().to_string();
    let why = || async {
        let item: serde_json::Value = client
            .get(format!("{location}api/json"))
            .basic_auth("alice", Some(&token))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(item["_class"].as_str().unwrap().ends_with("$BlockedItem"));
        item["why"].as_str().unwrap().to_string()
    };
    let first = why().await;
    assert!(
        first.starts_with("Build #1 is already in progress (ETA: 4."),
        "{first}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_ne!(why().await, first, "the ETA counts down");
}

#[tokio::test]
async fn a_held_request_is_processed_when_released_even_if_its_client_gave_up() {
    let (emulator, client, token) = setup().await;
    let create = client
        .post(emulator.url().join("createItem?name=held").unwrap())
        .basic_auth("alice", Some(&token))
        .header("content-type", "application/xml")
        .body(JOB);
    assert_eq!(create.send().await.unwrap().status(), StatusCode::OK);
    emulator.inject(jenkins_emulator::Fault::Hold {
        path_suffix: "/build".into(),
        count: 1,
    });
    let gave_up = client
        .post(emulator.url().join("job/held/build").unwrap())
        .basic_auth("alice", Some(&token))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    assert_eq!(emulator.held(), 1);
    assert!(emulator.queued().is_empty(), "not processed while held");

    emulator.release_held();
    for _ in 0..100 {
        if emulator.build("held", 1).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        emulator.build("held", 1).is_some(),
        "processed once released"
    );
    assert_eq!(emulator.held(), 0);
}

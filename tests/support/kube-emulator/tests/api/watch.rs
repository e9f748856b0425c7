use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube_emulator::{Emulator, Fault, Verb};
use serde_json::json;

use crate::{config_map, create_config_maps, eventually};

fn describe(event: &WatchEvent<ConfigMap>) -> String {
    let name = |c: &ConfigMap| c.metadata.name.clone().unwrap_or_default();
    match event {
        WatchEvent::Added(c) => format!("ADDED {}", name(c)),
        WatchEvent::Modified(c) => format!("MODIFIED {}", name(c)),
        WatchEvent::Deleted(c) => format!("DELETED {}", name(c)),
        WatchEvent::Bookmark(_) => "BOOKMARK".into(),
        WatchEvent::Error(s) => format!("ERROR {} {}", s.code, s.reason),
    }
}

async fn list_rv(api: &Api<ConfigMap>) -> String {
    let list = api.list(&ListParams::default()).await.expect("list");
    list.metadata
        .resource_version
        .expect("a list resourceVersion")
}

#[tokio::test]
async fn watch_streams_changes_after_a_resource_version_through_selectors() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    create_config_maps(&api, &[config_map("before", &[("app", "x")])]).await;
    let rv = list_rv(&api).await;

    let params = WatchParams::default()
        .labels("app=x")
        .timeout(5)
        .disable_bookmarks();
    let stream = api.watch(&params, &rv).await.expect("watch");
    create_config_maps(
        &api,
        &[config_map("a", &[("app", "x")]), config_map("b", &[])],
    )
    .await;
    let relabel = |app: &str| Patch::Merge(json!({"metadata": {"labels": {"app": app}}}));
    api.patch("a", &PatchParams::default(), &relabel("y"))
        .await
        .expect("leave the selector");
    api.patch("b", &PatchParams::default(), &relabel("x"))
        .await
        .expect("enter the selector");
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .expect("modify");
    api.delete("b", &DeleteParams::default())
        .await
        .expect("delete");

    let events: Vec<String> = stream
        .take(5)
        .map(|e| describe(&e.expect("event")))
        .collect()
        .await;
    // "before" existed at the resourceVersion, so the watch does not replay it.
    assert_eq!(
        events,
        ["ADDED a", "DELETED a", "ADDED b", "MODIFIED b", "DELETED b"]
    );
}

#[tokio::test]
async fn watch_sends_bookmarks_when_asked_and_ends_at_its_timeout() {
    let emulator = Emulator::start().await;
    emulator.set_bookmark_interval(Duration::from_millis(50));
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    let rv = list_rv(&api).await;

    let with_bookmarks = WatchParams::default().timeout(1);
    let events: Vec<String> = tokio::time::timeout(
        Duration::from_secs(5),
        api.watch(&with_bookmarks, &rv)
            .await
            .expect("watch")
            .map(|e| describe(&e.expect("event")))
            .collect::<Vec<_>>(),
    )
    .await
    .expect("the stream ends by itself at timeoutSeconds");
    assert!(events.len() >= 2, "{events:?}");
    assert!(events.iter().all(|e| e == "BOOKMARK"), "{events:?}");

    let without = WatchParams::default().timeout(1).disable_bookmarks();
    let events: Vec<String> = tokio::time::timeout(
        Duration::from_secs(5),
        api.watch(&without, &rv)
            .await
            .expect("watch")
            .map(|e| describe(&e.expect("event")))
            .collect::<Vec<_>>(),
    )
    .await
    .expect("the stream ends by itself at timeoutSeconds");
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_is_gone() {
    let emulator = Emulator::start().await;
    emulator.set_watch_history_limit(3);
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    let old = list_rv(&api).await;
    for name in ["a", "b", "c", "d", "e"] {
        create_config_maps(&api, &[config_map(name, &[])]).await;
    }

    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &old)
        .await
        .expect("watch")
        .boxed();
    match stream.try_next().await.expect("an event") {
        Some(WatchEvent::Error(status)) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // A recent resourceVersion still works.
    let recent = (emulator.resource_version() - 1).to_string();
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &recent)
        .await
        .expect("watch")
        .boxed();
    let event = stream
        .try_next()
        .await
        .expect("an event")
        .expect("some event");
    assert_eq!(describe(&event), "ADDED e");
}

/// Polls a kube-runtime watcher until `done` accepts the names it has seen applied or deleted.
async fn drive(
    stream: &mut (
             impl futures::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin
         ),
    seen: &mut Vec<String>,
    done: impl Fn(&[String]) -> bool,
) {
    let result = tokio::time::timeout(Duration::from_secs(5), async {
        while !done(seen) {
            match stream.next().await {
                Some(Ok(event)) => {
                    let text = match event {
                        watcher::Event::Apply(c) => {
                            format!("apply {}", c.metadata.name.unwrap_or_default())
                        }
                        watcher::Event::Delete(c) => {
                            format!("delete {}", c.metadata.name.unwrap_or_default())
                        }
                        watcher::Event::Init => "init".into(),
                        watcher::Event::InitApply(c) => {
                            format!("init-apply {}", c.metadata.name.unwrap_or_default())
                        }
                        watcher::Event::InitDone => "init-done".into(),
                    };
                    seen.push(text);
                }
                Some(Err(error)) => seen.push(format!("error {error}")),
                None => return,
            }
        }
    })
    .await;
    assert!(result.is_ok(), "watcher did not get there; saw {seen:?}");
}

#[tokio::test]
async fn runtime_watcher_resumes_after_a_dropped_watch_and_relists_after_410() {
    let emulator = Emulator::start().await;
    emulator.set_watch_history_limit(4);
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    create_config_maps(&api, &[config_map("first", &[])]).await;
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut seen = Vec::new();

    drive(&mut stream, &mut seen, |s| {
        s.contains(&"init-done".to_string())
    })
    .await;
    assert_eq!(seen, ["init", "init-apply first", "init-done"]);

    // Dropped watch, short outage: the watcher re-watches from its resourceVersion.
    let lists_before = count(&emulator, Verb::List);
    emulator.inject(Fault::DropWatches);
    create_config_maps(&api, &[config_map("second", &[])]).await;
    seen.clear();
    drive(&mut stream, &mut seen, |s| {
        s.contains(&"apply second".to_string())
    })
    .await;
    assert_eq!(
        count(&emulator, Verb::List),
        lists_before,
        "no relist needed: {seen:?}"
    );

    // Dropped watch, long outage: the history no longer reaches back, so 410 and a relist.
    emulator.inject(Fault::DropWatches);
    for name in ["c1", "c2", "c3", "c4", "c5", "c6"] {
        create_config_maps(&api, &[config_map(name, &[])]).await;
    }
    api.delete("first", &DeleteParams::default())
        .await
        .expect("delete");
    seen.clear();
    drive(&mut stream, &mut seen, |s| {
        s.contains(&"init-done".to_string())
    })
    .await;
    assert!(
        count(&emulator, Verb::List) > lists_before,
        "relisted: {seen:?}"
    );
    assert!(seen.contains(&"init-apply c6".to_string()), "{seen:?}");
    assert!(!seen.contains(&"init-apply first".to_string()), "{seen:?}");
}

fn count(emulator: &Emulator, verb: Verb) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.verb == verb)
        .count()
}

#[tokio::test]
async fn reflector_with_streaming_lists_follows_the_store() {
    let emulator = Emulator::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    create_config_maps(&api, &[config_map("a", &[]), config_map("b", &[])]).await;

    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().streaming_lists();
    let stream = reflector(writer, watcher(api.clone(), config)).applied_objects();
    let task = tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    reader
        .wait_until_ready()
        .await
        .expect("the reflector syncs");
    assert_eq!(reader.state().len(), 2);
    let watch = emulator
        .requests()
        .into_iter()
        .find(|r| r.verb == Verb::Watch)
        .expect("a watch");
    assert!(
        watch.query.contains("sendInitialEvents=true"),
        "{}",
        watch.query
    );
    assert_eq!(
        count(&emulator, Verb::List),
        0,
        "the initial state came from the watch"
    );

    api.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    create_config_maps(&api, &[config_map("c", &[])]).await;
    eventually("the reflector sees the delete and the create", || {
        let reader = reader.clone();
        async move {
            let mut names: Vec<String> = reader
                .state()
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .collect();
            names.sort();
            names == ["b", "c"]
        }
    })
    .await;
    task.abort();
}

/// A bookmark promises that every event up to its resourceVersion was sent: a client that
/// resumes from it (after the watch closed) must miss nothing. Writes race the bookmark ticker
/// here; every object created at or below a bookmark's version must have come before it.
#[tokio::test]
async fn a_bookmark_never_runs_ahead_of_the_events_sent() {
    let emulator = Emulator::start().await;
    emulator.set_bookmark_interval(Duration::from_millis(10));
    let api: Api<ConfigMap> = Api::default_namespaced(emulator.client());
    let rv = list_rv(&api).await;
    let params = WatchParams::default().timeout(3);
    let stream = api.watch(&params, &rv).await.expect("watch");

    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                api.create(&Default::default(), &config_map(&format!("c{i}"), &[]))
                    .await
                    .expect("create");
            }
        })
    };
    let events: Vec<WatchEvent<ConfigMap>> = stream.try_collect().await.expect("events");
    writer.await.expect("the writer");

    let version = |meta: &kube::api::ObjectMeta| -> u64 {
        meta.resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .expect("a numeric resourceVersion")
    };
    let all = api.list(&ListParams::default()).await.expect("list");
    let mut seen = std::collections::BTreeSet::new();
    let mut bookmarks = 0;
    for event in &events {
        match event {
            WatchEvent::Added(c) => {
                seen.insert(c.metadata.name.clone().unwrap_or_default());
            }
            WatchEvent::Bookmark(b) => {
                bookmarks += 1;
                let promised: u64 = b.metadata.resource_version.parse().expect("a version");
                for c in &all.items {
                    let name = c.metadata.name.clone().unwrap_or_default();
                    assert!(
                        version(&c.metadata) > promised || seen.contains(&name),
                        "a bookmark at {promised} came before {name} ({})",
                        version(&c.metadata)
                    );
                }
            }
            other => panic!("unexpected event {}", describe(other)),
        }
    }
    assert_eq!(seen.len(), 300);
    assert!(bookmarks > 0, "no bookmark was sent");
}

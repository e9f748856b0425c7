//! Watch streams: newline-delimited JSON events, bookmarks, 410 Gone for compacted history,
//! streaming lists (`sendInitialEvents`), server-side timeouts and dropped connections.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::SinkExt;
use futures::channel::mpsc;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::kinds::ResourceKind;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::status::ApiError;
use crate::store::{ChangeEvent, EventType};

/// What a watch request asks for.
pub struct WatchRequest {
    pub kind: ResourceKind,
    /// The version in the URL (objects are sent with this apiVersion).
    pub version: String,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
}

impl WatchRequest {
    fn api_version(&self) -> String {
        self.kind.api_version(&self.version)
    }

    /// The event a watcher sees for a change, if any (selectors can turn a modification
    /// into ADDED or DELETED for this watcher).
    fn view(&self, event: &ChangeEvent) -> Option<Bytes> {
        let key = &event.key;
        if key.group != self.kind.group || key.plural != self.kind.plural {
            return None;
        }
        if self
            .namespace
            .as_ref()
            .is_some_and(|ns| *ns != key.namespace)
        {
            return None;
        }
        let matches = |o: &Value| self.labels.matches(o) && self.fields.matches(o);
        let now = matches(&event.object);
        let event_type = match event.event_type {
            EventType::Added if now => "ADDED",
            EventType::Deleted if now => "DELETED",
            EventType::Modified => match (event.previous.as_ref().map(matches), now) {
                (Some(true) | None, true) => "MODIFIED",
                (Some(false), true) => "ADDED",
                (Some(true), false) => "DELETED",
                _ => return None,
            },
            _ => return None,
        };
        Some(self.event(event_type, &event.object))
    }

    /// One event line. Objects are stored with their storage version's apiVersion: the same
    /// as the watch's for every kind with one version, and then written as they are (every
    /// write reaches every matching watcher; a copy of the object each was measurable).
    fn event(&self, event_type: &str, object: &Value) -> Bytes {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            #[serde(rename = "type")]
            type_: &'a str,
            object: &'a Value,
        }
        let api_version = self.api_version();
        if object.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str()) {
            let mut text = serde_json::to_vec(&Line {
                type_: event_type,
                object,
            })
            .expect("a JSON value with string keys always serializes");
            text.push(b'\n');
            return Bytes::from(text);
        }
        let mut object = object.clone();
        object["apiVersion"] = json!(api_version);
        line(&json!({"type": event_type, "object": object}))
    }

    fn bookmark(&self, resource_version: u64, initial_events_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": resource_version.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({
            "type": "BOOKMARK",
            "object": {
                "apiVersion": self.api_version(),
                "kind": self.kind.kind,
                "metadata": metadata,
            },
        })
    }
}

fn line(event: &Value) -> Bytes {
    let mut text = event.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// Starts a watch: answers 200 and streams events until the timeout, a dropped watch, or the
/// client going away.
pub fn serve(shared: Arc<Shared>, request: WatchRequest) -> Result<Response, ApiError> {
    let requested = match request.resource_version.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {text:?}")))?,
        ),
    };

    // Snapshot and subscription under one lock, so no event falls between them.
    let (initial, mut receiver, mut sent_up_to) = {
        let store = shared.lock_store();
        let receiver = store.events.subscribe();
        let current = store.resource_version;
        let mut initial = Vec::new();
        let from_snapshot = request.send_initial_events || requested.is_none_or(|rv| rv == 0);
        if from_snapshot {
            let items = store.list(
                &request.kind,
                request.namespace.as_deref(),
                &request.labels,
                &request.fields,
            );
            initial.extend(items.iter().map(|o| request.event("ADDED", o)));
            if request.send_initial_events && request.bookmarks {
                initial.push(line(&request.bookmark(current, true)));
            }
        } else if let Some(rv) = requested {
            if rv < store.compacted {
                let status = ApiError::new(
                    410,
                    "Expired",
                    format!("too old resource version: {rv} ({})", store.compacted + 1),
                )
                .to_status();
                initial.push(line(&json!({"type": "ERROR", "object": status})));
                let body = initial.into_iter().map(Ok::<_, std::io::Error>);
                drop(store);
                return Ok(stream_response(Body::from_stream(futures::stream::iter(
                    body,
                ))));
            }
            initial.extend(
                store
                    .history
                    .iter()
                    .filter(|e| e.resource_version > rv)
                    .filter_map(|e| request.view(e)),
            );
        }
        (initial, receiver, current)
    };

    let (mut sender, body) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let mut dropped = shared.drop_watches.subscribe();
    let bookmark_every = shared.bookmark_interval();
    tokio::spawn(async move {
        for event in initial {
            if sender.send(Ok(event)).await.is_err() {
                return;
            }
        }
        let timeout = tokio::time::sleep(request.timeout.unwrap_or(Duration::from_secs(1800)));
        tokio::pin!(timeout);
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        loop {
            let next = tokio::select! {
                received = receiver.recv() => match received {
                    Ok(event) if event.resource_version > sent_up_to => {
                        sent_up_to = event.resource_version;
                        request.view(&event)
                    }
                    Ok(_) => None,
                    // A watcher too slow for the broadcast buffer is closed, like an
                    // apiserver closes a watcher whose buffer fills.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
                _ = dropped.changed() => return,
                // A bookmark promises every event up to its resourceVersion: it carries the last
                // one this watch has taken from the broadcast, not the store's current one (the
                // events between them may still be queued; a client resuming from the store's
                // version after this watch closed would never see them).
                _ = &mut timeout => {
                    if request.bookmarks {
                        let _ = sender.send(Ok(line(&request.bookmark(sent_up_to, false)))).await;
                    }
                    return;
                }
                _ = ticker.tick() => request.bookmarks.then(|| {
                    line(&request.bookmark(sent_up_to, false))
                }),
            };
            if let Some(event) = next
                && sender.send(Ok(event)).await.is_err()
            {
                return;
            }
        }
    });
    Ok(stream_response(Body::from_stream(body)))
}

fn stream_response(body: Body) -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

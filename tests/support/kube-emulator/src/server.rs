//! The HTTP side: URL routing, discovery, request decoding, the request log and faults.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{Method, header};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::faults::{Faults, Verb};
use crate::kinds::ResourceKind;
use crate::request_log::RequestRecord;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{DeleteOptions, PatchType, Store, WriteContext};
use crate::watch::{self, WatchRequest};

/// State shared by the request handlers, the controllers task and the [`crate::Emulator`].
pub struct Shared {
    pub store: Mutex<Store>,
    pub requests: Mutex<Vec<RequestRecord>>,
    pub(crate) faults: Mutex<Faults>,
    /// Bumped to close every open watch.
    pub drop_watches: tokio::sync::watch::Sender<u64>,
    /// Wakes the controllers task after writes.
    pub controllers: Notify,
    pub bookmark_interval: Mutex<Duration>,
    pub address: String,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (tests that panic
/// must not take the whole emulator down with them).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(address: String) -> Self {
        Shared {
            store: Mutex::new(Store::new()),
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            drop_watches: tokio::sync::watch::Sender::new(0),
            controllers: Notify::new(),
            bookmark_interval: Mutex::new(Duration::from_secs(1)),
            address,
        }
    }

    pub fn lock_store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub fn bookmark_interval(&self) -> Duration {
        *lock(&self.bookmark_interval)
    }
}

/// A request path under `/api/v1` or `/apis/<group>/<version>`.
struct ResourcePath {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

/// What a path is.
enum Target {
    Version,
    /// `/api`, `/apis`, `/apis/<g>`, `/api/v1`, `/apis/<g>/<v>`.
    Discovery(Vec<String>),
    Resource(ResourcePath),
    Unknown,
}

fn parse_path(path: &str, store: &Store) -> Target {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let (group, version, rest) = match segments.first().map(String::as_str) {
        Some("version") if segments.len() == 1 => return Target::Version,
        Some("api") if segments.len() <= 2 => return Target::Discovery(segments),
        Some("apis") if segments.len() <= 3 => return Target::Discovery(segments),
        Some("api") => (String::new(), segments[1].clone(), &segments[2..]),
        Some("apis") => (segments[1].clone(), segments[2].clone(), &segments[3..]),
        _ => return Target::Unknown,
    };
    // `namespaces/<ns>/<plural>/...` is namespaced unless <plural> is not a namespaced
    // resource of this group (then it is `namespaces/<name>/<subresource>`).
    let namespaced = rest.len() >= 3
        && rest[0] == "namespaces"
        && store.kind(&group, &rest[2]).is_some_and(|k| k.namespaced);
    let (namespace, rest) = if namespaced {
        (Some(rest[1].clone()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.is_empty() || rest.len() > 3 {
        return Target::Unknown;
    }
    Target::Resource(ResourcePath {
        group,
        version,
        plural: rest[0].clone(),
        namespace,
        name: rest.get(1).cloned(),
        subresource: rest.get(2).cloned(),
    })
}

fn percent_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| segment.to_string())
}

/// Query parameters.
struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }
}

/// The single entry point: every request goes through here.
pub async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let raw_query = request.uri().query().unwrap_or_default().to_string();
    let query = Query(
        url::form_urlencoded::parse(raw_query.as_bytes())
            .into_owned()
            .collect(),
    );
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();

    let target = parse_path(&path, &shared.lock_store());
    let verb = match (&target, &method) {
        (Target::Resource(r), &Method::GET) if r.name.is_some() => Verb::Get,
        (Target::Resource(_), &Method::GET) if query.flag("watch") => Verb::Watch,
        (Target::Resource(_), &Method::GET) => Verb::List,
        (Target::Resource(_), &Method::POST) => Verb::Create,
        (Target::Resource(_), &Method::PUT) => Verb::Update,
        (Target::Resource(_), &Method::PATCH) => Verb::Patch,
        (Target::Resource(r), &Method::DELETE) if r.name.is_some() => Verb::Delete,
        (Target::Resource(_), &Method::DELETE) => Verb::DeleteCollection,
        _ => Verb::Discovery,
    };
    let mut record = RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        verb,
        group: None,
        resource: None,
        subresource: None,
        namespace: None,
        name: None,
        field_manager: query.get("fieldManager").map(String::from),
        content_type: content_type.clone(),
        status: 0,
    };
    if let Target::Resource(r) = &target {
        record.group = Some(r.group.clone());
        record.resource = Some(r.plural.clone());
        record.subresource = r.subresource.clone();
        record.namespace = r.namespace.clone();
        record.name = r.name.clone();
    }

    // Faults come before the request is looked at, as a proxy in front of the server would.
    let (latency, injected) = {
        let mut faults = crate::server::lock(&shared.faults);
        (
            faults.latency,
            faults.hit(verb, record.resource.as_deref().unwrap_or_default()),
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match injected {
        Some(code) => ApiError::for_code(code, format!("injected fault: {code}")).into_response(),
        None => {
            let body = match axum::body::to_bytes(request.into_body(), 64 << 20).await {
                Ok(body) => body,
                Err(e) => {
                    let error = ApiError::bad_request(format!("failed to read the body: {e}"));
                    return finish(&shared, record, error.into_response());
                }
            };
            let call = Call {
                shared: &shared,
                query,
                content_type,
                user_agent,
                body,
            };
            match target {
                Target::Version => axum::Json(version()).into_response(),
                Target::Discovery(segments) => discovery(&shared, &segments),
                Target::Resource(resource) => call.resource(resource, verb),
                Target::Unknown => ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )
                .into_response(),
            }
        }
    };
    finish(&shared, record, response)
}

fn finish(shared: &Shared, mut record: RequestRecord, response: Response) -> Response {
    record.status = response.status().as_u16();
    tracing::debug!(
        method = %record.method,
        path = %record.path,
        status = record.status,
        "request"
    );
    lock(&shared.requests).push(record);
    shared.controllers.notify_one();
    response
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-emulator",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Discovery documents built from the registered kinds.
fn discovery(shared: &Shared, segments: &[String]) -> Response {
    let store = shared.lock_store();
    let kinds = &store.kinds;
    let group_entry = |group: &str| {
        let mut versions: Vec<String> = Vec::new();
        for kind in kinds.iter().filter(|k| k.group == group) {
            for version in &kind.versions {
                if !versions.contains(version) {
                    versions.push(version.clone());
                }
            }
        }
        let listed: Vec<Value> = versions
            .iter()
            .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
            .collect();
        json!({"name": group, "versions": listed, "preferredVersion": listed.first()})
    };
    let document = match segments.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["api"] => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": shared.address},
            ],
        }),
        ["apis"] => {
            let mut groups: Vec<&str> = Vec::new();
            for kind in kinds.iter().filter(|k| !k.group.is_empty()) {
                if !groups.contains(&kind.group.as_str()) {
                    groups.push(&kind.group);
                }
            }
            let groups: Vec<Value> = groups.iter().map(|g| group_entry(g)).collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        }
        ["apis", group] if kinds.iter().any(|k| k.group == group) => {
            let mut entry = group_entry(group);
            entry["kind"] = json!("APIGroup");
            entry["apiVersion"] = json!("v1");
            entry
        }
        ["api", "v1"] => resource_list(kinds, "", "v1"),
        ["apis", group, version]
            if kinds
                .iter()
                .any(|k| k.group == group && k.versions.iter().any(|v| v == version)) =>
        {
            resource_list(kinds, group, version)
        }
        _ => {
            return ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
            .into_response();
        }
    };
    axum::Json(document).into_response()
}

fn resource_list(kinds: &[ResourceKind], group: &str, version: &str) -> Value {
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    let mut resources = Vec::new();
    for kind in kinds
        .iter()
        .filter(|k| k.group == group && k.versions.iter().any(|v| v == version))
    {
        resources.push(json!({
            "name": kind.plural,
            "singularName": kind.singular,
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": verbs,
            "shortNames": kind.short_names,
        }));
        if kind.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", kind.plural),
                "singularName": "",
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// One decoded resource request.
struct Call<'a> {
    shared: &'a Arc<Shared>,
    query: Query,
    content_type: Option<String>,
    user_agent: String,
    body: bytes::Bytes,
}

impl Call<'_> {
    fn resource(&self, path: ResourcePath, verb: Verb) -> Response {
        match self.dispatch(path, verb) {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    }

    fn dispatch(&self, path: ResourcePath, verb: Verb) -> Result<Response, ApiError> {
        let not_found = || {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        };
        let kind = self
            .shared
            .lock_store()
            .kind(&path.group, &path.plural)
            .ok_or_else(not_found)?;
        if !kind.versions.contains(&path.version) {
            return Err(not_found());
        }
        if kind.namespaced && path.name.is_some() && path.namespace.is_none() {
            return Err(not_found());
        }
        if let Some(subresource) = &path.subresource
            && !(subresource == "status" && kind.status_subresource)
        {
            return Err(not_found());
        }
        let named = path.name.is_some();
        let shape_ok = match verb {
            Verb::Create => !named,
            Verb::Update | Verb::Patch => named,
            _ => true,
        };
        if !shape_ok {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        if path.subresource.is_some() && !matches!(verb, Verb::Get | Verb::Update | Verb::Patch) {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let namespace = path.namespace.clone().unwrap_or_default();
        let name = path.name.clone().unwrap_or_default();
        let subresource = path.subresource.as_deref();
        let context = WriteContext {
            manager: self.field_manager(verb),
            dry_run: self.query.get("dryRun") == Some("All"),
            api_version: kind.api_version(&path.version),
        };
        let respond = |object: Value, code: u16| -> Result<Response, ApiError> {
            let mut object = object;
            object["apiVersion"] = json!(kind.api_version(&path.version));
            let status = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
            Ok((status, axum::Json(object)).into_response())
        };

        match verb {
            Verb::Get => respond(self.shared.lock_store().get(&kind, &namespace, &name)?, 200),
            Verb::List => self.list(&kind, &path),
            Verb::Watch => watch::serve(self.shared.clone(), self.watch_request(&kind, &path)?),
            Verb::Create => {
                let body = self.json_body()?;
                let object = self
                    .shared
                    .lock_store()
                    .create(&kind, &namespace, body, &context)?;
                respond(object, 201)
            }
            Verb::Update => {
                let body = self.json_body()?;
                let object = self.shared.lock_store().replace(
                    &kind,
                    &namespace,
                    &name,
                    subresource,
                    body,
                    &context,
                )?;
                respond(object, 200)
            }
            Verb::Patch => {
                let patch_type = self.patch_type(&kind)?;
                let body = if matches!(patch_type, PatchType::Apply { .. }) {
                    self.yaml_body()?
                } else {
                    self.json_body()?
                };
                let mut store = self.shared.lock_store();
                let existed = store.get(&kind, &namespace, &name).is_ok();
                let object = store.patch(
                    &kind,
                    &namespace,
                    &name,
                    subresource,
                    patch_type,
                    &body,
                    &context,
                )?;
                respond(object, if existed { 200 } else { 201 })
            }
            Verb::Delete => {
                let options = self.delete_options()?;
                let object = self
                    .shared
                    .lock_store()
                    .delete(&kind, &namespace, &name, &options)?;
                respond(object, 200)
            }
            Verb::DeleteCollection => {
                let options = self.delete_options()?;
                let (labels, fields) = self.selectors(&kind)?;
                let mut store = self.shared.lock_store();
                let doomed = store.list(&kind, path.namespace.as_deref(), &labels, &fields);
                let mut deleted = Vec::new();
                for object in doomed {
                    let ns = object["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let name = object["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    if let Ok(object) = store.delete(&kind, &ns, &name, &options) {
                        deleted.push(object);
                    }
                }
                let version = store.resource_version.to_string();
                drop(store);
                respond(self.list_body(&kind, &path, deleted, version, None), 200)
            }
            Verb::Discovery => Err(not_found()),
        }
    }

    /// The manager of a write: `fieldManager`, or (for non-apply writes) the client's name.
    fn field_manager(&self, verb: Verb) -> String {
        match self.query.get("fieldManager") {
            Some(manager) => manager.to_string(),
            None if verb == Verb::Patch && self.is_apply() => String::new(),
            None => self
                .user_agent
                .split('/')
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_string(),
        }
    }

    fn is_apply(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/apply-patch"))
    }

    fn patch_type(&self, kind: &ResourceKind) -> Result<PatchType, ApiError> {
        let media = self.content_type.as_deref().unwrap_or_default();
        let media = media.split(';').next().unwrap_or_default().trim();
        let unsupported = || {
            ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types \
                     include: application/json-patch+json, application/merge-patch+json, \
                     application/apply-patch+yaml (got {media:?})"
                ),
            )
        };
        match media {
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/strategic-merge-patch+json" if !kind.is_custom() => {
                Ok(PatchType::Strategic)
            }
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                if self
                    .query
                    .get("force")
                    .is_some_and(|f| f != "true" && f != "false")
                {
                    return Err(ApiError::bad_request("force must be true or false"));
                }
                Ok(PatchType::Apply {
                    force: self.query.flag("force"),
                })
            }
            _ => Err(unsupported()),
        }
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::bad_request(format!("the body could not be decoded as JSON: {e}"))
        })
    }

    fn yaml_body(&self) -> Result<Value, ApiError> {
        if let Ok(value) = serde_json::from_slice::<Value>(&self.body) {
            return Ok(value);
        }
        let text = std::str::from_utf8(&self.body)
            .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
        serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    }

    fn delete_options(&self) -> Result<DeleteOptions, ApiError> {
        let body: Value = if self.body.is_empty() {
            json!({})
        } else {
            self.json_body()?
        };
        let orphan = body["orphanDependents"]
            .as_bool()
            .or_else(|| self.query.get("orphanDependents").map(|o| o == "true"));
        let propagation = body["propagationPolicy"]
            .as_str()
            .or(self.query.get("propagationPolicy"))
            .map(String::from)
            .or_else(|| orphan.map(|o| if o { "Orphan" } else { "Background" }.to_string()));
        let dry_run = body["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "All"))
            || self.query.get("dryRun") == Some("All");
        Ok(DeleteOptions {
            propagation,
            precondition_uid: body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(String::from),
            precondition_resource_version: body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(String::from),
            dry_run,
        })
    }

    fn selectors(&self, kind: &ResourceKind) -> Result<(LabelSelector, FieldSelector), ApiError> {
        Ok((
            LabelSelector::parse(self.query.get("labelSelector").unwrap_or_default())?,
            FieldSelector::parse(
                self.query.get("fieldSelector").unwrap_or_default(),
                &kind.plural,
            )?,
        ))
    }

    fn list(&self, kind: &ResourceKind, path: &ResourcePath) -> Result<Response, ApiError> {
        let (labels, fields) = self.selectors(kind)?;
        let (items, version) = {
            let store = self.shared.lock_store();
            (
                store.list(kind, path.namespace.as_deref(), &labels, &fields),
                store.resource_version,
            )
        };
        // Pages: `continue` is the offset of the next page.
        let offset: usize = match self.query.get("continue") {
            Some(token) if !token.is_empty() => token.parse().map_err(|_| {
                ApiError::new(410, "Expired", "the provided continue parameter is too old")
            })?,
            _ => 0,
        };
        let limit: usize = self
            .query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let total = items.len();
        let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
        let next = offset.saturating_add(page.len());
        let more = (next < total).then(|| (next.to_string(), total - next));
        let body = self.list_body(kind, path, page, version.to_string(), more);
        Ok(axum::Json(body).into_response())
    }

    fn list_body(
        &self,
        kind: &ResourceKind,
        path: &ResourcePath,
        items: Vec<Value>,
        version: String,
        more: Option<(String, usize)>,
    ) -> Value {
        let api_version = kind.api_version(&path.version);
        let items: Vec<Value> = items
            .into_iter()
            .map(|mut item| {
                item["apiVersion"] = json!(api_version);
                item
            })
            .collect();
        let mut metadata = json!({"resourceVersion": version});
        if let Some((token, remaining)) = more {
            metadata["continue"] = json!(token);
            metadata["remainingItemCount"] = json!(remaining);
        }
        json!({
            "apiVersion": api_version,
            "kind": format!("{}List", kind.kind),
            "metadata": metadata,
            "items": items,
        })
    }

    fn watch_request(
        &self,
        kind: &ResourceKind,
        path: &ResourcePath,
    ) -> Result<WatchRequest, ApiError> {
        let (labels, fields) = self.selectors(kind)?;
        let timeout = match self.query.get("timeoutSeconds") {
            Some(t) => Some(Duration::from_secs(t.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid timeoutSeconds {t:?}"))
            })?)),
            None => None,
        };
        let send_initial_events = self.query.flag("sendInitialEvents");
        if send_initial_events && self.query.get("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(ApiError::new(
                422,
                "Invalid",
                "sendInitialEvents requires resourceVersionMatch=NotOlderThan",
            ));
        }
        Ok(WatchRequest {
            kind: kind.clone(),
            version: path.version.clone(),
            namespace: path.namespace.clone(),
            labels,
            fields,
            resource_version: self.query.get("resourceVersion").map(String::from),
            bookmarks: self.query.flag("allowWatchBookmarks"),
            send_initial_events,
            timeout,
        })
    }
}

/// Builds the router (every path goes to [`handle`]).
pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

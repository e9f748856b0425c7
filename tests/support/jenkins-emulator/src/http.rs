//! The HTTP side: authentication, CSRF, routing of Jenkins' URL space and the answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State as AxumState;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, header};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use crate::model::{
    self, Build, FOLDER_ROOT, Folder, Item, Job, MULTIBRANCH_ROOT, ParamKind, QueueEntry, State,
};
use crate::tree::Tree;
use crate::{BuildResult, CascReload, RequestRecord, Shared};

/// Offset added to byte positions in progressive-log cursors, so that a client that adds body
/// lengths instead of using `X-Text-Size` reads the wrong text.
const CURSOR_BASE: u64 = 7_000;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// An answer before it becomes an HTTP response.
struct Reply {
    status: StatusCode,
    headers: Vec<(header::HeaderName, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn with(mut self, name: header::HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn text(status: StatusCode, content_type: &str, body: impl Into<String>) -> Reply {
        let mut reply = Reply::new(status).with(header::CONTENT_TYPE, content_type);
        reply.body = body.into().into_bytes();
        reply
    }

    fn json(value: Value) -> Reply {
        Reply::text(
            StatusCode::OK,
            "application/json;charset=utf-8",
            value.to_string(),
        )
    }

    fn html(status: StatusCode, message: &str) -> Reply {
        let body = format!(
            "<html><head><title>Error {}</title></head><body><h2>{}</h2><p>{}</p></body></html>",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            crate::xml::escape(message)
        );
        Reply::text(status, "text/html;charset=utf-8", body)
    }

    /// 400 with the message in `X-Error`, as Jenkins' Failure does.
    fn failure(message: &str) -> Reply {
        Reply::html(StatusCode::BAD_REQUEST, message).with(
            header::HeaderName::from_static("x-error"),
            message.replace(|c: char| !c.is_ascii() || c.is_ascii_control(), "?"),
        )
    }

    fn not_found() -> Reply {
        Reply::html(StatusCode::NOT_FOUND, "Not Found")
    }

    fn redirect(status: StatusCode, location: String) -> Reply {
        Reply::new(status).with(header::LOCATION, location)
    }
}

/// Who the request authenticated as.
enum Auth {
    Anonymous,
    Password(String),
    Token(String),
    Invalid,
}

impl Auth {
    fn user(&self) -> Option<String> {
        match self {
            Auth::Password(u) | Auth::Token(u) => Some(u.clone()),
            Auth::Anonymous | Auth::Invalid => None,
        }
    }
}

/// The parts of a request the routes need.
struct Request<'a> {
    method: Method,
    /// Decoded item path from the `/job/<name>` pairs.
    item: Vec<String>,
    /// Remaining decoded segments; a trailing slash leaves an empty last segment.
    rest: Vec<String>,
    query: Vec<(String, String)>,
    headers: &'a HeaderMap,
    body: &'a Bytes,
    /// `http://host/prefix/`
    base: String,
    user: String,
    session: Option<String>,
}

impl Request<'_> {
    fn rest(&self) -> Vec<&str> {
        self.rest.iter().map(String::as_str).collect()
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn item_url(&self, path: &[String]) -> String {
        let mut url = self.base.clone();
        for name in path {
            url.push_str("job/");
            url.push_str(&encode_segment(name));
            url.push('/');
        }
        url
    }
}

fn encode_segment(name: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(name, SEGMENT).to_string()
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Held responses wait here; a dropped client connection drops the request with them.
    let mut paused = shared.paused.subscribe();
    let _ = paused.wait_for(|p| !*p).await;
    let latency = shared.state.lock().map(|s| s.latency).unwrap_or_default();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    // A held request was received: like Jenkins, which finishes a request whatever became of
    // its client, it is processed once released even if the client gave up long before.
    let held = {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.hold(uri.path())
    };
    let Some(generation) = held else {
        return process(&shared, &method, &uri, &headers, &body);
    };
    let processing = tokio::spawn(async move {
        let mut released = shared.released.subscribe();
        let _ = released.wait_for(|g| *g > generation).await;
        process(&shared, &method, &uri, &headers, &body)
    });
    processing.await.unwrap_or_else(|_| {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}

/// Answers a request and records it in the request log.
fn process(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    state.tick();
    let auth = authenticate(&state, headers);
    let reply = answer(&mut state, method, uri, headers, body, &auth);
    let reply = apply_tree(reply, method, uri);
    let reply = reply.with(
        header::HeaderName::from_static("x-jenkins"),
        state.config.version.clone(),
    );
    state.requests.push(RequestRecord {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        user: auth.user(),
        status: reply.status.as_u16(),
    });
    drop(state);

    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = reply.status;
    for (name, value) in reply.headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// Prunes a successful `api/json` answer to the properties its `tree` parameter names, as
/// Jenkins' Stapler does (see [`Tree`]); a malformed tree is a 500.
fn apply_tree(reply: Reply, method: &Method, uri: &Uri) -> Reply {
    if *method != Method::GET
        || reply.status != StatusCode::OK
        || !uri.path().ends_with("/api/json")
    {
        return reply;
    }
    let query = uri.query().unwrap_or_default();
    let Some(spec) = url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "tree")
        .map(|(_, value)| value.into_owned())
    else {
        return reply;
    };
    let tree = match Tree::parse(&spec) {
        Ok(tree) => tree,
        Err(error) => {
            return Reply::html(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("Malformed tree expression: {error}"),
            );
        }
    };
    match serde_json::from_slice::<Value>(&reply.body) {
        Ok(value) => Reply::json(tree.prune(&value)),
        Err(_) => reply,
    }
}

fn authenticate(state: &State, headers: &HeaderMap) -> Auth {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Auth::Anonymous;
    };
    let Some(encoded) = value.to_str().ok().and_then(|v| v.strip_prefix("Basic ")) else {
        return Auth::Invalid;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return Auth::Invalid;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return Auth::Invalid;
    };
    let Some((name, secret)) = decoded.split_once(':') else {
        return Auth::Invalid;
    };
    match state.users.get(name) {
        Some(user) if user.tokens.iter().any(|t| t == secret) => Auth::Token(name.into()),
        Some(user) if user.password == secret => Auth::Password(name.into()),
        _ => Auth::Invalid,
    }
}

fn session_of(state: &State, headers: &HeaderMap) -> Option<String> {
    let wanted = format!("{}=", state.cookie_name);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&wanted).map(str::to_string))
        .filter(|id| state.sessions.contains_key(id))
}

fn answer(
    state: &mut State,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    auth: &Auth,
) -> Reply {
    // The context path.
    let prefix = format!("/{}", state.config.prefix.trim_matches('/'));
    let path = if prefix == "/" {
        uri.path()
    } else {
        match uri.path().strip_prefix(&prefix) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            _ => return Reply::not_found(),
        }
    };

    if state.starting {
        return Reply::html(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please wait while Jenkins is getting ready to work",
        );
    }

    // Injected failures.
    if let Some(failure) = state
        .failures
        .iter_mut()
        .find(|f| f.count > 0 && path.starts_with(&f.prefix))
    {
        failure.count -= 1;
        let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::BAD_GATEWAY);
        return Reply::html(status, "injected failure");
    }

    // Parse the URL space: `/job/<name>` pairs, then the rest.
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let mut item = Vec::new();
    let mut i = 0;
    while i + 1 < segments.len() && segments[i] == "job" {
        item.push(segments[i + 1].clone());
        i += 2;
    }
    let rest = segments[i..].to_vec();
    let query = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let base = format!(
        "http://{host}{}",
        if prefix == "/" {
            "/".into()
        } else {
            prefix + "/"
        }
    );
    let mut request = Request {
        method: method.clone(),
        item,
        rest,
        query,
        headers,
        body,
        base,
        user: auth.user().unwrap_or_default(),
        session: session_of(state, headers),
    };

    // The JCasC token endpoint is open to anonymous callers and exempt from crumbs.
    if request.item.is_empty()
        && request.method == Method::POST
        && request.rest.first().map(String::as_str) == Some("reload-configuration-as-code")
    {
        return casc_token_reload(state, &request);
    }

    // Authentication: bad credentials 401, none 403.
    match auth {
        Auth::Invalid => {
            return Reply::html(StatusCode::UNAUTHORIZED, "Invalid password/token for user")
                .with(header::WWW_AUTHENTICATE, "Basic realm=\"Jenkins\"");
        }
        Auth::Anonymous => {
            return Reply::html(
                StatusCode::FORBIDDEN,
                "Authentication required: please log in",
            );
        }
        Auth::Password(_) | Auth::Token(_) => {}
    }

    // CSRF: password POSTs need a crumb matching their session.
    if request.method == Method::POST && state.csrf && matches!(auth, Auth::Password(_)) {
        let sent = headers.get("jenkins-crumb").and_then(|v| v.to_str().ok());
        let expected = request.session.as_ref().and_then(|s| state.sessions.get(s));
        if sent.is_none() || sent != expected.map(String::as_str) {
            return Reply::html(
                StatusCode::FORBIDDEN,
                "No valid crumb was included in the request",
            );
        }
    }

    if request.item.is_empty() {
        top_level(state, &mut request)
    } else {
        item_level(state, &request)
    }
}

fn top_level(state: &mut State, request: &mut Request<'_>) -> Reply {
    let get = request.method == Method::GET;
    let post = request.method == Method::POST;
    let rest = request.rest.clone();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match rest.as_slice() {
        [""] | [] if get => Reply::text(StatusCode::OK, "text/html", "<html>Dashboard</html>"),
        ["api", "json"] if get => folder_json(state, request, &[]),
        ["crumbIssuer", "api", "json"] if get => crumb(state, request),
        ["whoAmI", "api", "json"] if get => Reply::json(json!({
            "_class": "hudson.security.WhoAmI",
            "anonymous": false,
            "authenticated": true,
            "authorities": ["authenticated"],
            "name": request.user,
        })),
        ["pluginManager", "api", "json"] if get => Reply::json(json!({
            "_class": "hudson.LocalPluginManager",
            "plugins": state.plugins.iter().map(|p| json!({
                "active": p.active,
                "enabled": p.enabled,
                "shortName": p.short_name,
                "version": p.version,
            })).collect::<Vec<_>>(),
        })),
        ["createItem"] if post => create_item(state, request, &[]),
        ["queue", "api", "json"] if get => queue_json(state, request),
        ["queue", "item", id, "api", "json"] if get => queue_item(state, request, id),
        ["queue", "cancelItem"] if post => cancel_item(state, request),
        ["configuration-as-code", "reload"] if post => {
            state.casc_reload_count += 1;
            match &state.casc_reload {
                CascReload::Applied => {
                    Reply::redirect(StatusCode::FOUND, format!("{}manage/", request.base))
                }
                CascReload::Fails(message) => Reply::html(StatusCode::OK, message),
            }
        }
        _ => Reply::not_found(),
    }
}

fn crumb(state: &mut State, request: &mut Request<'_>) -> Reply {
    if !state.csrf {
        return Reply::not_found();
    }
    let mut reply_cookie = None;
    let session = match &request.session {
        Some(session) => session.clone(),
        None => {
            let session = model::random_hex(12);
            reply_cookie = Some(format!("{}={session}; Path=/; HttpOnly", state.cookie_name));
            session
        }
    };
    let crumb = state
        .sessions
        .entry(session)
        .or_insert_with(|| model::random_hex(32))
        .clone();
    let reply = Reply::json(json!({
        "_class": "hudson.security.csrf.DefaultCrumbIssuer",
        "crumb": crumb,
        "crumbRequestField": "Jenkins-Crumb",
    }));
    match reply_cookie {
        Some(cookie) => reply.with(header::SET_COOKIE, cookie),
        None => reply,
    }
}

fn casc_token_reload(state: &mut State, request: &Request<'_>) -> Reply {
    let Some(token) = state.casc_token.clone() else {
        return Reply::not_found();
    };
    if request.param("casc-reload-token") != Some(token.as_str()) {
        return Reply::html(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    state.casc_reload_count += 1;
    match &state.casc_reload {
        CascReload::Applied => {
            state.load_casc_source();
            Reply::new(StatusCode::OK)
        }
        CascReload::Fails(message) => Reply::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain;charset=utf-8",
            format!("io.jenkins.plugins.casc.ConfiguratorException: {message}"),
        ),
    }
}

/// Jenkins.checkGoodName.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("No name is specified".into());
    }
    if name == "." || name == ".." {
        return Err(format!("“{name}” is not an allowed name"));
    }
    if name.ends_with('.') {
        return Err("A name cannot end with ‘.’".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || "?*/\\%!@#$^&|<>[]:;".contains(*c))
    {
        return Err(format!("‘{c}’ is an unsafe character"));
    }
    Ok(())
}

fn is_xml_content_type(headers: &HeaderMap) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    content_type.is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("application/xml") || t.starts_with("text/xml")
    })
}

fn create_item(state: &mut State, request: &Request<'_>, parent: &[String]) -> Reply {
    let Some(name) = request.param("name") else {
        return Reply::failure("Query parameter 'name' is required");
    };
    let name = name.trim().to_string();
    if let Err(message) = check_name(&name) {
        return Reply::failure(&message);
    }
    let Some(folder) = state.folder(parent) else {
        return Reply::not_found();
    };
    if folder.get(&name).is_some() {
        return Reply::failure(&format!("A job already exists with the name ‘{name}’"));
    }
    if !is_xml_content_type(request.headers) {
        return Reply::failure("No mode given: requires a config.xml body");
    }
    let Ok(text) = std::str::from_utf8(request.body) else {
        return Reply::html(StatusCode::INTERNAL_SERVER_ERROR, "Invalid byte sequence");
    };
    let parsed = match model::parse_config(text) {
        Ok(parsed) => parsed,
        Err(error) => return Reply::html(StatusCode::INTERNAL_SERVER_ERROR, &error),
    };
    let item = if parsed.root_element == FOLDER_ROOT || parsed.root_element == MULTIBRANCH_ROOT {
        Item::Folder(Folder {
            name: name.clone(),
            config: model::jenkins_prologue(text),
            root_element: parsed.root_element,
            children: Default::default(),
        })
    } else {
        Item::Job(Job::from_config(&name, text, parsed))
    };
    if let Some(folder) = state.folder_mut(parent) {
        folder.children.insert(name.to_lowercase(), item);
    }
    Reply::new(StatusCode::OK)
}

fn item_level(state: &mut State, request: &Request<'_>) -> Reply {
    let Some(path) = state.canonical(&request.item) else {
        return Reply::not_found();
    };
    let is_job = state.job(&path).is_some();
    let get = request.method == Method::GET;
    let post = request.method == Method::POST;
    let rest = request.rest();
    match rest.as_slice() {
        [] if get => Reply::redirect(StatusCode::FOUND, request.item_url(&path)),
        [""] if get => Reply::text(StatusCode::OK, "text/html", "<html>item</html>"),
        [""] if request.method == Method::DELETE => delete(state, &path, None),
        ["doDelete"] if post => delete(state, &path, Some(request)),
        ["api", "json"] if get && is_job => job_json(state, request, &path),
        ["api", "json"] if get => folder_json(state, request, &path),
        ["config.xml"] if get => match state.item(&path) {
            Some(item) => Reply::text(StatusCode::OK, "application/xml", item.config()),
            None => Reply::not_found(),
        },
        ["config.xml"] if post => update_config(state, request, &path),
        ["createItem"] if post && !is_job => create_item(state, request, &path),
        ["disable"] | ["enable"] if post && is_job => {
            let disabled = rest[0] == "disable";
            if let Some(job) = state.job_mut(&path) {
                job.disabled = disabled;
                job.config = model::with_disabled(&job.config, disabled);
            }
            Reply::redirect(StatusCode::FOUND, request.item_url(&path))
        }
        ["build"] if post && is_job => build(state, request, &path, false),
        ["buildWithParameters"] if post && is_job => build(state, request, &path, true),
        [number, tail @ ..] if is_job => build_level(state, request, &path, number, tail),
        _ => Reply::not_found(),
    }
}

fn delete(state: &mut State, path: &[String], request: Option<&Request<'_>>) -> Reply {
    let Some((name, parent)) = path.split_last() else {
        return Reply::not_found();
    };
    if let Some(folder) = state.folder_mut(parent) {
        folder.children.remove(&name.to_lowercase());
    }
    // Queue items of the deleted items are cancelled.
    let now = Instant::now();
    for entry in state.queue.iter_mut().filter(|e| e.left.is_none()) {
        if entry.job.starts_with(path) {
            entry.left = Some(model::Left {
                at: now,
                cancelled: true,
                executable: None,
                null_polls: 0,
            });
        }
    }
    match request {
        Some(request) => Reply::redirect(StatusCode::FOUND, request.item_url(parent)),
        None => Reply::new(StatusCode::NO_CONTENT),
    }
}

fn update_config(state: &mut State, request: &Request<'_>, path: &[String]) -> Reply {
    if request.body.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Reply::html(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Content is not allowed in prolog.",
        );
    }
    // The body is decoded with the Content-Type's charset; the servlet default is ISO-8859-1.
    let content_type = request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text = if content_type.replace(' ', "").contains("charset=utf-8") {
        match std::str::from_utf8(request.body) {
            Ok(text) => text.to_string(),
            Err(_) => {
                return Reply::html(StatusCode::INTERNAL_SERVER_ERROR, "Invalid byte sequence");
            }
        }
    } else {
        request.body.iter().map(|b| char::from(*b)).collect()
    };
    let parsed = match model::parse_config(&text) {
        Ok(parsed) => parsed,
        Err(error) => return Reply::html(StatusCode::INTERNAL_SERVER_ERROR, &error),
    };
    let Some(item) = state.item_mut(path) else {
        return Reply::not_found();
    };
    if parsed.root_element != item.root_element() {
        return Reply::html(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Expecting class but got a different item type",
        );
    }
    match item {
        Item::Job(job) => job.apply_config(&text, parsed),
        Item::Folder(folder) => folder.config = model::jenkins_prologue(&text),
    }
    Reply::new(StatusCode::OK)
}

fn job_class(root: &str) -> &'static str {
    match root {
        "project" => "hudson.model.FreeStyleProject",
        _ => "org.jenkinsci.plugins.workflow.job.WorkflowJob",
    }
}

fn run_class(root: &str) -> &'static str {
    match root {
        "project" => "hudson.model.FreeStyleBuild",
        _ => "org.jenkinsci.plugins.workflow.job.WorkflowRun",
    }
}

fn job_json(state: &State, request: &Request<'_>, path: &[String]) -> Reply {
    let Some(job) = state.job(path) else {
        return Reply::not_found();
    };
    let url = request.item_url(path);
    let in_queue = state
        .queue
        .iter()
        .any(|e| e.left.is_none() && e.job == path);
    let build_ref = |b: &Build| {
        json!({"_class": run_class(&job.root_element), "number": b.number,
               "url": format!("{url}{}/", b.number)})
    };
    // Without a tree, builds are references; with one, everything a build exports, for the
    // tree to choose from (`apply_tree` prunes the answer).
    let with_tree = request.param("tree").is_some();
    let entry = |b: &Build| {
        let mut value = build_ref(b);
        if with_tree {
            value["queueId"] = json!(b.queue_id);
            value["building"] = json!(b.building);
            value["result"] = json!(b.result.map(BuildResult::as_str));
            value["timestamp"] = json!(b.timestamp_ms);
            value["duration"] = json!(if b.building { 0 } else { b.duration_ms });
            value["actions"] = json!([parameters_action(&b.params)]);
        }
        value
    };
    // `builds` is the newest 100 (`Job.getNewBuilds`); `allBuilds` lists every build but
    // only when a tree names it (it is exported with visibility -2).
    let builds: Vec<Value> = job.builds.iter().rev().take(100).map(&entry).collect();
    let all_builds: Option<Vec<Value>> =
        with_tree.then(|| job.builds.iter().rev().map(&entry).collect());
    let mut properties = Vec::new();
    if !job.params.is_empty() {
        let definitions: Vec<Value> = job
            .params
            .iter()
            .map(|p| {
                let (class, kind, value) = match &p.kind {
                    ParamKind::String => ("String", "StringParameterDefinition", json!(p.default)),
                    ParamKind::Choice(_) => {
                        ("Choice", "ChoiceParameterDefinition", json!(p.default))
                    }
                    ParamKind::Boolean => (
                        "Boolean",
                        "BooleanParameterDefinition",
                        json!(p.default == "true"),
                    ),
                };
                let mut definition = json!({
                    "_class": format!("hudson.model.{class}ParameterDefinition"),
                    "defaultParameterValue": {
                        "_class": format!("hudson.model.{class}ParameterValue"),
                        "name": p.name,
                        "value": value,
                    },
                    "description": p.description,
                    "name": p.name,
                    "type": kind,
                });
                if let ParamKind::Choice(choices) = &p.kind {
                    definition["choices"] = json!(choices);
                }
                definition
            })
            .collect();
        properties.push(json!({
            "_class": "hudson.model.ParametersDefinitionProperty",
            "parameterDefinitions": definitions,
        }));
    }
    let last = |pred: &dyn Fn(&Build) -> bool| {
        job.builds
            .iter()
            .rev()
            .find(|b| pred(b))
            .map(build_ref)
            .unwrap_or(Value::Null)
    };
    let mut value = json!({
        "_class": job_class(&job.root_element),
        "name": job.name,
        "fullName": path.join("/"),
        "url": url,
        "description": job.description,
        "buildable": !job.disabled,
        "disabled": job.disabled,
        "inQueue": in_queue,
        "nextBuildNumber": job.next_build_number,
        "color": job.color(),
        "builds": builds,
        "lastBuild": last(&|_| true),
        "lastCompletedBuild": last(&|b| !b.building),
        "lastSuccessfulBuild": last(&|b| b.result == Some(BuildResult::Success) && !b.building),
        "property": properties,
        "concurrentBuild": job.concurrent,
    });
    if let Some(all_builds) = all_builds {
        value["allBuilds"] = json!(all_builds);
    }
    Reply::json(value)
}

fn folder_json(state: &State, request: &Request<'_>, path: &[String]) -> Reply {
    let Some(folder) = state.folder(path) else {
        return Reply::not_found();
    };
    let jobs: Vec<Value> = folder
        .children
        .values()
        .map(|item| {
            let mut child = path.to_vec();
            child.push(item.name().to_string());
            let (class, color) = match item {
                Item::Folder(f) if f.root_element == MULTIBRANCH_ROOT => (MULTIBRANCH_ROOT, None),
                Item::Folder(_) => (FOLDER_ROOT, None),
                Item::Job(j) => (job_class(&j.root_element), Some(j.color())),
            };
            json!({"_class": class, "name": item.name(), "url": request.item_url(&child),
                   "color": color})
        })
        .collect();
    let class = if path.is_empty() {
        "hudson.model.Hudson"
    } else {
        FOLDER_ROOT
    };
    Reply::json(json!({
        "_class": class,
        "name": path.last().cloned().unwrap_or_default(),
        "fullName": path.join("/"),
        "url": request.item_url(path),
        "jobs": jobs,
        "mode": "NORMAL",
        "description": (!state.system_message.is_empty()).then(|| state.system_message.clone()),
        "numExecutors": state.config.executors,
        "useCrumbs": state.csrf,
    }))
}

fn build(state: &mut State, request: &Request<'_>, path: &[String], with_params: bool) -> Reply {
    let Some(job) = state.job(path) else {
        return Reply::not_found();
    };
    let full_name = path.join("/");
    if job.disabled {
        return Reply::html(
            StatusCode::CONFLICT,
            &format!("{full_name} is not buildable"),
        );
    }
    let parameterized = !job.params.is_empty();
    if with_params && !parameterized {
        return Reply::html(
            StatusCode::BAD_REQUEST,
            &format!("{full_name} is not parameterized"),
        );
    }
    if !with_params && parameterized && request.param("json").is_none() {
        return Reply::html(StatusCode::BAD_REQUEST, "Nothing is submitted");
    }

    // Parameter values: defaults, then what was sent; undefined names are ignored.
    let mut params = Vec::new();
    if with_params {
        for definition in &job.params {
            let value = request.param(&definition.name).map(str::to_string);
            let value = match (&definition.kind, value) {
                (_, None) => definition.default.clone(),
                (ParamKind::Choice(choices), Some(v)) if !choices.contains(&v) => {
                    return Reply::html(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("Illegal choice for parameter {}: {v}", definition.name),
                    );
                }
                (ParamKind::Boolean, Some(v)) => (v == "true" || v == "on").to_string(),
                (_, Some(v)) => v,
            };
            params.push((definition.name.clone(), value));
        }
    }

    // An identical item already waiting is reused.
    let existing = state
        .queue
        .iter()
        .find(|e| e.left.is_none() && e.job == path && e.params == params);
    if let Some(existing) = existing {
        let location = format!("{}queue/item/{}/", request.base, existing.id);
        let status = if with_params {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::CREATED
        };
        return Reply::redirect(status, location);
    }
    let id = state.next_queue_id;
    state.next_queue_id += 1;
    let quiet = request
        .param("delay")
        .and_then(|d| d.trim_end_matches("sec").parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(state.config.quiet_period);
    state.queue.push(QueueEntry {
        id,
        job: path.to_vec(),
        params,
        since_ms: model::now_ms(),
        ready_at: Instant::now() + quiet,
        left: None,
    });
    state.tick();
    Reply::redirect(
        StatusCode::CREATED,
        format!("{}queue/item/{id}/", request.base),
    )
}

/// A `ParametersAction` as the JSON API shows it (an empty object without parameters).
fn parameters_action(params: &[(String, String)]) -> Value {
    if params.is_empty() {
        return json!({});
    }
    let parameters: Vec<Value> = params
        .iter()
        .map(|(name, value)| {
            json!({"_class": "hudson.model.StringParameterValue", "name": name, "value": value})
        })
        .collect();
    json!({"_class": "hudson.model.ParametersAction", "parameters": parameters})
}

/// `GET queue/api/json`: the items still in the queue (left items are not listed).
fn queue_json(state: &mut State, request: &Request<'_>) -> Reply {
    let items: Vec<Value> = state
        .queue
        .iter()
        .filter(|e| e.left.is_none())
        .map(|entry| {
            let (kind, why) = state.waiting_state(entry);
            let params: String = entry
                .params
                .iter()
                .map(|(k, v)| format!("\n{k}={v}"))
                .collect();
            json!({
                "_class": format!("hudson.model.Queue${kind}"),
                "id": entry.id,
                "params": params,
                "why": why,
                "actions": [parameters_action(&entry.params)],
                "task": {
                    "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
                    "name": entry.job.last(),
                    "url": request.item_url(&entry.job),
                },
            })
        })
        .collect();
    Reply::json(json!({"_class": "hudson.model.Queue", "items": items}))
}

fn queue_item(state: &mut State, request: &Request<'_>, id: &str) -> Reply {
    let Ok(id) = id.parse::<u64>() else {
        return Reply::not_found();
    };
    let Some(index) = state.queue.iter().position(|e| e.id == id) else {
        return Reply::not_found();
    };
    let entry = &state.queue[index];
    let task = json!({
        "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
        "name": entry.job.last(),
        "url": request.item_url(&entry.job),
    });
    let params: String = entry
        .params
        .iter()
        .map(|(k, v)| format!("\n{k}={v}"))
        .collect();
    let mut value = json!({
        "id": entry.id,
        "inQueueSince": entry.since_ms,
        "params": params,
        "task": task,
        "url": format!("queue/item/{}/", entry.id),
    });
    match &entry.left {
        None => {
            let (kind, why) = state.waiting_state(entry);
            value["_class"] = json!(format!("hudson.model.Queue${kind}"));
            value["why"] = json!(why);
            value["blocked"] = json!(kind == "BlockedItem");
            value["buildable"] = json!(kind == "BuildableItem");
            value["stuck"] = json!(false);
        }
        Some(left) => {
            let job_url = request.item_url(&entry.job);
            value["_class"] = json!("hudson.model.Queue$LeftItem");
            value["cancelled"] = json!(left.cancelled);
            value["why"] = Value::Null;
            value["executable"] = match left.executable {
                Some(number) if left.null_polls == 0 => json!({
                    "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                    "number": number,
                    "url": format!("{job_url}{number}/"),
                }),
                _ => Value::Null,
            };
        }
    }
    if let Some(left) = state.queue[index].left.as_mut() {
        left.null_polls = left.null_polls.saturating_sub(1);
    }
    Reply::json(value)
}

/// `Queue.doCancelItem`: a waiting item is cancelled (204); an item that already left the
/// queue, while Jenkins still remembers it, cannot be cancelled (500 "Could not cancel run");
/// an unknown or forgotten item is 404.
fn cancel_item(state: &mut State, request: &Request<'_>) -> Reply {
    let id = request.param("id").and_then(|id| id.parse::<u64>().ok());
    let Some(entry) = state.queue.iter_mut().find(|e| Some(e.id) == id) else {
        return Reply::html(StatusCode::NOT_FOUND, "Provided id not found");
    };
    if entry.left.is_some() {
        let message = format!("Could not cancel run for id {}", entry.id);
        return Reply::html(StatusCode::INTERNAL_SERVER_ERROR, &message);
    }
    entry.left = Some(model::Left {
        at: Instant::now(),
        cancelled: true,
        executable: None,
        null_polls: 0,
    });
    Reply::new(StatusCode::NO_CONTENT)
}

fn build_level(
    state: &mut State,
    request: &Request<'_>,
    path: &[String],
    number: &str,
    tail: &[&str],
) -> Reply {
    let Some(job) = state.job_mut(path) else {
        return Reply::not_found();
    };
    let number = match number {
        "lastBuild" => job.builds.last().map(|b| b.number),
        "lastCompletedBuild" => job
            .builds
            .iter()
            .rev()
            .find(|b| !b.building)
            .map(|b| b.number),
        "lastSuccessfulBuild" => job
            .builds
            .iter()
            .rev()
            .find(|b| !b.building && b.result == Some(BuildResult::Success))
            .map(|b| b.number),
        "lastFailedBuild" => job
            .builds
            .iter()
            .rev()
            .find(|b| !b.building && b.result == Some(BuildResult::Failure))
            .map(|b| b.number),
        n => n.parse::<u64>().ok(),
    };
    let root = job.root_element.clone();
    let Some(build) = number.and_then(|n| job.build_mut(n)) else {
        return Reply::not_found();
    };
    let get = request.method == Method::GET;
    let url = format!("{}{}/", request.item_url(path), build.number);
    match tail {
        ["api", "json"] if get => {
            build.observe();
            let parameters: Vec<Value> = build
                .params
                .iter()
                .map(|(name, value)| {
                    json!({"_class": "hudson.model.StringParameterValue", "name": name,
                           "value": value})
                })
                .collect();
            let mut actions = vec![json!({
                "_class": "hudson.model.CauseAction",
                "causes": [{"_class": "hudson.model.Cause$UserIdCause",
                            "userId": request.user}],
            })];
            if !parameters.is_empty() {
                actions.insert(
                    0,
                    json!({"_class": "hudson.model.ParametersAction", "parameters": parameters}),
                );
            }
            Reply::json(json!({
                "_class": run_class(&root),
                "number": build.number,
                "id": build.number.to_string(),
                "queueId": build.queue_id,
                "building": build.building,
                "result": build.result.map(BuildResult::as_str),
                "duration": if build.building { 0 } else { build.duration_ms },
                "timestamp": build.timestamp_ms,
                "url": url,
                "fullDisplayName": format!("{} #{}", path.join(" » "), build.number),
                "actions": actions,
            }))
        }
        ["consoleText"] if get => Reply::text(
            StatusCode::OK,
            "text/plain;charset=utf-8",
            build.log.clone(),
        ),
        ["logText", "progressiveText"] if get => {
            let start = request
                .param("start")
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            let offset = if start >= CURSOR_BASE {
                start - CURSOR_BASE
            } else {
                start
            };
            let offset = (offset as usize).min(build.log.len());
            let text = build.log.get(offset..).unwrap_or("").to_string();
            let cursor = CURSOR_BASE + build.log.len() as u64;
            let reply = Reply::text(StatusCode::OK, "text/plain;charset=utf-8", text).with(
                header::HeaderName::from_static("x-text-size"),
                cursor.to_string(),
            );
            // The log is complete once the result is written, even if `building` lingers.
            if build.result.is_none() {
                reply.with(header::HeaderName::from_static("x-more-data"), "true")
            } else {
                reply
            }
        }
        ["stop"] if request.method == Method::POST => {
            if build.result.is_none() {
                build.abort_requested = true;
            }
            Reply::redirect(StatusCode::FOUND, url)
        }
        _ => Reply::not_found(),
    }
}

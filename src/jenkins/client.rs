//! The HTTP core of the client: configuration, authentication, crumbs, retries and the mapping
//! of answers to errors. Typed operations live in `system`, `jobs`, `builds` and `queue`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, header};
use tokio::sync::Semaphore;
use url::Url;

use super::JenkinsError;
use super::crumb::{Crumb, CrumbCache};

/// The secret half of the credentials: an API token or a password. Never printed.
#[derive(Clone)]
pub struct Credential {
    secret: String,
    kind: CredentialKind,
}

/// Whether a [`Credential`] is an API token or a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// An API token: exempt from CSRF crumbs.
    ApiToken,
    /// A password: POSTs need a crumb bound to the session cookie.
    Password,
}

impl Credential {
    /// An API token (preferred: no crumb round trip).
    pub fn api_token(token: impl Into<String>) -> Credential {
        Credential {
            secret: token.into(),
            kind: CredentialKind::ApiToken,
        }
    }

    /// A password.
    pub fn password(password: impl Into<String>) -> Credential {
        Credential {
            secret: password.into(),
            kind: CredentialKind::Password,
        }
    }

    /// Which kind of secret this is.
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    pub(crate) fn expose(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where Jenkins is and how to talk to it.
#[derive(Debug, Clone)]
pub struct JenkinsConfig {
    /// Jenkins' root URL, possibly with a context path (`http://host:8080/jenkins/`).
    pub base_url: Url,
    /// User name sent in basic auth.
    pub username: String,
    /// API token or password.
    pub secret: Credential,
    /// Time allowed to open a connection (default 5 s).
    pub connect_timeout: Duration,
    /// Time allowed for a whole request (default 30 s).
    pub request_timeout: Duration,
    /// Extra attempts for idempotent calls on connection errors and 5xx (default 3).
    pub retries: u32,
    /// First backoff delay; doubled after each attempt (default 100 ms).
    pub retry_backoff: Duration,
    /// Told about every request sent (for metrics); none by default.
    pub observer: Option<Arc<dyn RequestObserver>>,
    /// Bounds the requests in flight: each HTTP exchange (one attempt, body included) holds
    /// one permit. Clients that share the semaphore share the bound, so that one operator
    /// cannot overload a Jenkins whatever its controllers do at once. None: unbounded.
    pub permits: Option<Arc<Semaphore>>,
}

/// Receives the endpoint, outcome and duration of every request a client sends, for example
/// to count them. Endpoint and outcome are from small fixed sets, so they make good metric
/// labels.
pub trait RequestObserver: Send + Sync {
    /// One request: `took` runs from sending it to its response headers (or its failure),
    /// without the wait for a permit.
    fn observe(&self, endpoint: &'static str, outcome: &'static str, took: Duration);

    /// The wait for a permit before a request (only with [`JenkinsConfig::permits`]).
    fn permit_wait(&self, _waited: Duration) {}
}

impl fmt::Debug for dyn RequestObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestObserver")
    }
}

/// The kind of endpoint a request path addresses, named by its last segment(s); job and folder
/// names never appear.
pub fn endpoint(path: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "whoAmI/api/json",
        "pluginManager/api/json",
        "crumbIssuer/api/json",
        "reload-configuration-as-code/",
        "configuration-as-code/reload",
        "queue/cancelItem",
        "queue/api/json",
        "logText/progressiveText",
        "consoleText",
        "config.xml",
        "createItem",
        "doDelete",
        "buildWithParameters",
        "build",
        "stop",
        "disable",
        "enable",
        "api/json",
    ];
    let trimmed = path.trim_end_matches('/');
    if trimmed.contains("/queue/item/") || trimmed.starts_with("queue/item/") {
        return "queue/item";
    }
    KNOWN
        .iter()
        .find(|known| trimmed.ends_with(known.trim_end_matches('/')))
        .copied()
        .unwrap_or("other")
}

impl JenkinsConfig {
    /// A configuration with the default timeouts and retries.
    pub fn new(base_url: Url, username: impl Into<String>, secret: Credential) -> JenkinsConfig {
        JenkinsConfig {
            base_url,
            username: username.into(),
            secret,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retries: 3,
            retry_backoff: Duration::from_millis(100),
            observer: None,
            permits: None,
        }
    }
}

/// A Jenkins REST client. Cheap to clone; clones share the cookie store and the crumb.
///
/// A client belongs to the tokio runtime it first sends on (its pooled connections do).
#[derive(Clone)]
pub struct JenkinsClient {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for JenkinsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JenkinsClient")
            .field("base_url", &self.inner.base.as_str())
            .field("username", &self.inner.username)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    http: reqwest::Client,
    base: Url,
    username: String,
    secret: Credential,
    retries: u32,
    retry_backoff: Duration,
    crumbs: CrumbCache,
    observer: Option<Arc<dyn RequestObserver>>,
    permits: Option<Arc<Semaphore>>,
}

/// Whether a call may be repeated after a connection error or a 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Safe to repeat (reads, deletes, enable/disable, config updates).
    Idempotent,
    /// Creates something: never repeated blindly.
    Never,
}

/// One HTTP call as the operations describe it.
pub(crate) struct Call {
    pub operation: String,
    pub method: Method,
    /// Path relative to the base URL, already encoded (`job/a%20b/api/json`).
    pub path: String,
    /// Query pairs, form-encoded when sent.
    pub query: Vec<(String, String)>,
    /// A config.xml body.
    pub xml: Option<String>,
    pub retry: Retry,
    /// POSTs send a crumb unless the endpoint is exempt.
    pub crumb: bool,
}

impl Call {
    pub fn get(operation: String, path: String) -> Call {
        Call {
            operation,
            method: Method::GET,
            path,
            query: Vec::new(),
            xml: None,
            retry: Retry::Idempotent,
            crumb: false,
        }
    }

    pub fn post(operation: String, path: String, retry: Retry) -> Call {
        Call {
            method: Method::POST,
            retry,
            crumb: true,
            ..Call::get(operation, path)
        }
    }

    pub fn query(mut self, name: &str, value: &str) -> Call {
        self.query.push((name.to_string(), value.to_string()));
        self
    }

    pub fn xml(mut self, body: String) -> Call {
        self.xml = Some(body);
        self
    }
}

/// Jenkins' answer, read whole.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self, operation: &str) -> Result<T, JenkinsError> {
        serde_json::from_slice(&self.body).map_err(|e| JenkinsError::InvalidResponse {
            operation: operation.to_string(),
            detail: format!("bad JSON: {e}"),
        })
    }

    fn is_crumb_rejection(&self) -> bool {
        self.status == StatusCode::FORBIDDEN && self.text().contains("No valid crumb")
    }
}

/// One TLS configuration for every client. Each client building its own would load and parse
/// the system's CA certificates again, for every Jenkins: about 300 KiB of resident memory per
/// cluster (docs/benchmarks.md). `None` if the platform verifier cannot be built; the client
/// then builds its own and reports the error.
fn shared_tls() -> Option<rustls::ClientConfig> {
    use rustls_platform_verifier::ConfigVerifierExt;
    static TLS: std::sync::OnceLock<Option<rustls::ClientConfig>> = std::sync::OnceLock::new();
    TLS.get_or_init(|| {
        let mut config = rustls::ClientConfig::with_platform_verifier().ok()?;
        // What reqwest offers by itself with the http2 feature.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Some(config)
    })
    .clone()
}

impl JenkinsClient {
    /// Builds a client. Installs rustls' `ring` provider as the process default if none is.
    pub fn new(config: JenkinsConfig) -> Result<JenkinsClient, JenkinsError> {
        // Another provider may already be installed; either way one is available afterwards.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder();
        if let Some(tls) = shared_tls() {
            builder = builder.tls_backend_preconfigured(tls);
        }
        let http = builder
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("jenkins-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| JenkinsError::Client { source })?;
        let mut base = config.base_url;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let token = config.secret.kind() == CredentialKind::ApiToken;
        Ok(JenkinsClient {
            inner: Arc::new(Inner {
                http,
                base,
                username: config.username,
                secret: config.secret,
                retries: config.retries,
                retry_backoff: config.retry_backoff,
                crumbs: CrumbCache::new(token),
                observer: config.observer,
                permits: config.permits,
            }),
        })
    }

    /// Jenkins' root URL as configured (with a trailing slash).
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    fn url(&self, call: &Call) -> Result<Url, JenkinsError> {
        let mut url =
            self.inner
                .base
                .join(&call.path)
                .map_err(|e| JenkinsError::InvalidRequest {
                    operation: call.operation.clone(),
                    reason: format!("cannot build the URL: {e}"),
                })?;
        if !call.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &call.query {
                pairs.append_pair(name, value);
            }
        }
        Ok(url)
    }

    /// Sends a call with crumb handling and retries; any HTTP status comes back as an answer.
    pub(crate) async fn execute(&self, call: &Call) -> Result<Answer, JenkinsError> {
        let url = self.url(call)?;
        let mut attempt = 0;
        let mut crumb_refreshed = false;
        loop {
            let crumb = if call.method == Method::POST && call.crumb {
                self.crumb(&call.operation).await?
            } else {
                None
            };
            match self.send_once(call, &url, crumb.as_ref(), attempt).await {
                Err(error) => {
                    let transient = error.is_connect() || error.is_timeout();
                    if call.retry == Retry::Idempotent && transient && attempt < self.inner.retries
                    {
                        self.backoff(attempt).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(transport_error(&call.operation, error));
                }
                Ok(answer) if answer.is_crumb_rejection() && call.crumb && !crumb_refreshed => {
                    // The crumb or its session expired: fetch a new pair once and resend.
                    tracing::debug!(operation = %call.operation, "crumb rejected, fetching anew");
                    self.inner.crumbs.invalidate().await;
                    crumb_refreshed = true;
                }
                Ok(answer) => {
                    if call.retry == Retry::Idempotent
                        && is_retryable(&call.method, answer.status)
                        && attempt < self.inner.retries
                    {
                        self.backoff(attempt).await;
                        attempt += 1;
                        continue;
                    }
                    return Ok(answer);
                }
            }
        }
    }

    async fn backoff(&self, attempt: u32) {
        let delay = self
            .inner
            .retry_backoff
            .saturating_mul(2u32.saturating_pow(attempt));
        tokio::time::sleep(delay).await;
    }

    async fn send_once(
        &self,
        call: &Call,
        url: &Url,
        crumb: Option<&Crumb>,
        attempt: u32,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), url.clone())
            .basic_auth(&self.inner.username, Some(self.inner.secret.expose()));
        if let Some(crumb) = crumb {
            request = request.header(crumb.field.as_str(), crumb.value.as_str());
        }
        if let Some(xml) = &call.xml {
            request = request
                .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
                .body(xml.clone());
        }
        let waiting = Instant::now();
        // The semaphore is never closed; were it, the request would go ahead unbounded.
        let _permit = match &self.inner.permits {
            Some(permits) => permits.acquire().await.ok(),
            None => None,
        };
        if let (Some(observer), Some(_)) = (&self.inner.observer, &self.inner.permits) {
            observer.permit_wait(waiting.elapsed());
        }
        let sent = Instant::now();
        let result = request.send().await;
        if let Some(observer) = &self.inner.observer {
            let outcome = match &result {
                Ok(r) if r.status().is_success() || r.status().is_redirection() => "success",
                Ok(r) if r.status().is_client_error() => "client_error",
                Ok(_) => "server_error",
                Err(e) if e.is_timeout() => "timeout",
                Err(_) => "connection_error",
            };
            observer.observe(endpoint(url.path()), outcome, sent.elapsed());
        }
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(
                    operation = %call.operation,
                    method = %call.method,
                    path = url.path(),
                    attempt,
                    error = %error,
                    "jenkins request failed"
                );
                return Err(error);
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        tracing::debug!(
            operation = %call.operation,
            method = %call.method,
            path = url.path(),
            status = status.as_u16(),
            attempt,
            "jenkins request"
        );
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// The crumb to send with a POST, fetched on first need.
    async fn crumb(&self, operation: &str) -> Result<Option<Crumb>, JenkinsError> {
        let mut state = self.inner.crumbs.lock().await;
        if let Some(known) = state.known() {
            return Ok(known);
        }
        let call = Call::get(
            format!("fetch a CSRF crumb for {operation}"),
            "crumbIssuer/api/json".into(),
        );
        let answer = Box::pin(self.execute(&call)).await?;
        let crumb = match answer.status {
            StatusCode::OK => {
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Issued {
                    crumb: String,
                    crumb_request_field: String,
                }
                let issued: Issued = answer.json(&call.operation)?;
                Some(Crumb {
                    field: issued.crumb_request_field,
                    value: issued.crumb,
                })
            }
            // CSRF protection is off.
            StatusCode::NOT_FOUND => None,
            _ => return Err(self.error(&call.operation, &answer)),
        };
        state.set(crumb.clone());
        Ok(crumb)
    }

    /// Maps an answer this call did not expect to the closest error.
    pub(crate) fn error(&self, operation: &str, answer: &Answer) -> JenkinsError {
        let operation = operation.to_string();
        match answer.status {
            StatusCode::UNAUTHORIZED => JenkinsError::Unauthorized { operation },
            StatusCode::FORBIDDEN if answer.is_crumb_rejection() => {
                JenkinsError::CrumbRejected { operation }
            }
            StatusCode::FORBIDDEN => JenkinsError::Forbidden {
                operation,
                excerpt: self.excerpt(answer),
            },
            StatusCode::NOT_FOUND => JenkinsError::NotFound { operation },
            StatusCode::SERVICE_UNAVAILABLE => JenkinsError::Starting { operation },
            status => JenkinsError::Unexpected {
                operation,
                status: status.as_u16(),
                excerpt: self.excerpt(answer),
            },
        }
    }

    /// A short, single-line excerpt of an answer (`X-Error` first), with the secret removed.
    pub(crate) fn excerpt(&self, answer: &Answer) -> String {
        let raw = match answer.header("x-error") {
            Some(message) => message.to_string(),
            None => strip_markup(&answer.text()),
        };
        let mut excerpt: String = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        let secret = self.inner.secret.expose();
        if !secret.is_empty() {
            excerpt = excerpt.replace(secret, "***");
        }
        if excerpt.chars().count() > 200 {
            excerpt = excerpt.chars().take(200).collect::<String>() + "…";
        }
        excerpt
    }
}

/// Reads are retried on any 5xx; writes only on gateway and availability errors, since a 500
/// on a write is Jenkins rejecting the content and would fail the same way again.
fn is_retryable(method: &Method, status: StatusCode) -> bool {
    match status.as_u16() {
        502..=504 => true,
        500..=599 => *method == Method::GET,
        _ => false,
    }
}

fn transport_error(operation: &str, source: reqwest::Error) -> JenkinsError {
    let operation = operation.to_string();
    if source.is_timeout() {
        JenkinsError::Timeout {
            operation,
            source: Some(source),
        }
    } else if source.is_connect() {
        JenkinsError::ConnectionRefused { operation, source }
    } else {
        JenkinsError::Transport { operation, source }
    }
}

/// Drops HTML tags so an error page reads as its text.
fn strip_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod endpoint_tests {
    use super::endpoint;

    #[test]
    fn endpoints_name_the_kind_of_request_never_the_job() {
        assert_eq!(endpoint("/job/team%20a/job/web/config.xml"), "config.xml");
        assert_eq!(
            endpoint("/jenkins/job/web/buildWithParameters"),
            "buildWithParameters"
        );
        assert_eq!(endpoint("/job/web/build"), "build");
        assert_eq!(endpoint("/queue/item/42/api/json"), "queue/item");
        assert_eq!(
            endpoint("/job/web/7/logText/progressiveText"),
            "logText/progressiveText"
        );
        assert_eq!(endpoint("/whoAmI/api/json"), "whoAmI/api/json");
        assert_eq!(endpoint("/job/web/api/json"), "api/json");
        assert_eq!(
            endpoint("/reload-configuration-as-code/"),
            "reload-configuration-as-code/"
        );
        assert_eq!(endpoint("/some/thing/else"), "other");
    }
}

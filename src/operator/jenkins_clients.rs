//! How the operator reaches each cluster's Jenkins: the in-cluster Service URL (or an override
//! given on the command line, for an operator running outside the cluster), as the
//! administrator whose credentials are in the cluster's admin Secret. Clients are kept per
//! cluster so that the session cookie and CSRF crumb are reused between reconciles.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use url::Url;

use crate::api::JenkinsCluster;
use crate::cluster::secrets::{PASSWORD_KEY, USERNAME_KEY};
use crate::cluster::{admin_secret_name, cluster_namespace, jenkins_url};
use crate::jenkins::{Credential, JenkinsClient, JenkinsConfig, JenkinsError, RequestObserver};

/// Why the operator cannot talk to a cluster's Jenkins yet.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("failed to read the admin Secret {secret}: {source}")]
    ReadSecret {
        secret: String,
        #[source]
        source: kube::Error,
    },

    #[error("the admin Secret {secret} {problem}")]
    BadSecret { secret: String, problem: String },

    #[error("the Jenkins URL {url} is not valid: {reason}")]
    BadUrl { url: String, reason: String },

    #[error(transparent)]
    Client(#[from] JenkinsError),
}

/// Timeouts and retries of the operator's Jenkins clients.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retries: u32,
    pub retry_backoff: Duration,
    /// Requests every controller together may have in flight towards one Jenkins.
    pub concurrency: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retries: 2,
            retry_backoff: Duration::from_millis(200),
            concurrency: 8,
        }
    }
}

/// The Jenkins clients of every cluster.
pub struct JenkinsClients {
    overrides: BTreeMap<String, Url>,
    settings: ClientSettings,
    observer: Option<Arc<dyn RequestObserver>>,
    cache: Mutex<HashMap<String, Cached>>,
    permits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

struct Cached {
    /// Digest of the URL and credentials the client was built with.
    key: [u8; 32],
    url: Url,
    client: JenkinsClient,
}

/// The administrator's user name and password, as read from the admin Secret.
pub struct AdminCredentials {
    pub username: String,
    pub password: Credential,
}

impl JenkinsClients {
    /// `overrides` maps JenkinsCluster names to the URL the operator uses instead of the
    /// in-cluster Service URL.
    pub fn new(overrides: BTreeMap<String, Url>, settings: ClientSettings) -> Self {
        Self {
            overrides,
            settings,
            observer: None,
            cache: Mutex::new(HashMap::new()),
            permits: Mutex::new(HashMap::new()),
        }
    }

    /// Tells `observer` about every request the clients send (the operator's metrics).
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The permits that bound the requests in flight towards one cluster's Jenkins. Every
    /// client made for the cluster holds one around each request, so that a thousand
    /// JenkinsJobs resyncing at once, and the builds and the cluster's own checks beside them,
    /// queue here rather than in Jenkins' request threads. They outlive the clients: a client
    /// made anew (another password) shares the bound with the one it replaces.
    fn permits(&self, cluster: &str) -> Arc<Semaphore> {
        let mut permits = self.permits.lock().unwrap_or_else(|e| e.into_inner());
        permits
            .entry(cluster.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.concurrency.max(1))))
            .clone()
    }

    /// The URL the operator uses for a cluster's Jenkins.
    pub fn url(&self, cluster: &JenkinsCluster) -> Result<Url, AccessError> {
        if let Some(url) = self.overrides.get(&cluster.name_any()) {
            return Ok(url.clone());
        }
        let url = jenkins_url(cluster);
        Url::parse(&url).map_err(|e| AccessError::BadUrl {
            url,
            reason: e.to_string(),
        })
    }

    /// A client for the cluster's Jenkins, logged in as its administrator, and the
    /// administrator's user name.
    pub async fn client(
        &self,
        kube: &Client,
        cluster: &JenkinsCluster,
    ) -> Result<(JenkinsClient, String), AccessError> {
        let credentials = read_admin_credentials(kube, cluster).await?;
        let url = self.url(cluster)?;
        let key = fingerprint(&url, &credentials);
        let name = cluster.name_any();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let username = credentials.username.clone();
        if let Some(cached) = cache.get(&name)
            && cached.key == key
        {
            return Ok((cached.client.clone(), username));
        }
        let mut config =
            JenkinsConfig::new(url.clone(), credentials.username, credentials.password);
        config.connect_timeout = self.settings.connect_timeout;
        config.request_timeout = self.settings.request_timeout;
        config.retries = self.settings.retries;
        config.retry_backoff = self.settings.retry_backoff;
        config.observer = self.observer.clone();
        config.permits = Some(self.permits(&name));
        let client = JenkinsClient::new(config)?;
        cache.insert(
            name,
            Cached {
                key,
                url,
                client: client.clone(),
            },
        );
        Ok((client, username))
    }

    /// The cluster's client as last made by [`Self::client`], without reading the admin
    /// Secret again; made anew when there is none or the URL changed. The cluster reconciler
    /// calls [`Self::client`] on every reconcile, so a changed Secret is picked up there; a
    /// caller whose request Jenkins refuses with 401 calls [`Self::forget`] so that the next
    /// call reads the Secret again.
    pub async fn cached_client(
        &self,
        kube: &Client,
        cluster: &JenkinsCluster,
    ) -> Result<JenkinsClient, AccessError> {
        let url = self.url(cluster)?;
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(cached) = cache.get(&cluster.name_any())
                && cached.url == url
            {
                return Ok(cached.client.clone());
            }
        }
        Ok(self.client(kube, cluster).await?.0)
    }

    /// Forgets a deleted cluster's client.
    pub fn forget(&self, cluster: &JenkinsCluster) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.remove(&cluster.name_any());
    }
}

fn fingerprint(url: &Url, credentials: &AdminCredentials) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(url.as_str());
    hasher.update([0]);
    hasher.update(&credentials.username);
    hasher.update([0]);
    hasher.update(credentials.password.expose());
    hasher.finalize().into()
}

/// Reads the administrator's credentials from the cluster's admin Secret.
pub async fn read_admin_credentials(
    kube: &Client,
    cluster: &JenkinsCluster,
) -> Result<AdminCredentials, AccessError> {
    let namespace = cluster_namespace(cluster);
    let name = admin_secret_name(cluster);
    let secret_ref = format!("{namespace}/{name}");
    let api: Api<Secret> = Api::namespaced(kube.clone(), &namespace);
    let secret = api
        .get_opt(&name)
        .await
        .map_err(|source| AccessError::ReadSecret {
            secret: secret_ref.clone(),
            source,
        })?
        .ok_or_else(|| AccessError::BadSecret {
            secret: secret_ref.clone(),
            problem: "does not exist".into(),
        })?;
    let value = |key: &str| -> Result<String, AccessError> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|s| s.clone().into_bytes())
            })
            .ok_or_else(|| AccessError::BadSecret {
                secret: secret_ref.clone(),
                problem: format!("has no key {key}"),
            })?;
        String::from_utf8(bytes).map_err(|_| AccessError::BadSecret {
            secret: secret_ref.clone(),
            problem: format!("key {key} is not UTF-8 text"),
        })
    };
    Ok(AdminCredentials {
        username: value(USERNAME_KEY)?,
        password: Credential::password(value(PASSWORD_KEY)?),
    })
}

//! Jenkins as a whole: version, identity, plugins and configuration-as-code reloads.

use reqwest::StatusCode;
use serde::Deserialize;

use super::client::{Call, Retry};
use super::{JenkinsClient, JenkinsError};

/// What Jenkins says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// Version from the `X-Jenkins` header, e.g. `2.516.1`.
    pub version: String,
    /// The system message shown on the dashboard (JCasC `jenkins.systemMessage`); empty when
    /// none is set.
    pub system_message: String,
}

/// The user Jenkins sees the client as.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WhoAmI {
    /// User id.
    pub name: String,
    /// True once credentials were accepted.
    pub authenticated: bool,
    /// True when Jenkins treats the caller as anonymous.
    #[serde(default)]
    pub anonymous: bool,
}

/// An installed plugin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plugin {
    /// Plugin id, e.g. `configuration-as-code`.
    pub short_name: String,
    /// Installed version.
    pub version: String,
    /// Loaded and running now.
    pub active: bool,
    /// Enabled for the next start.
    pub enabled: bool,
}

impl JenkinsClient {
    /// Jenkins' version, read from the `X-Jenkins` header of the root API, and its system
    /// message (the root API's `description`).
    pub async fn server_info(&self) -> Result<ServerInfo, JenkinsError> {
        #[derive(Deserialize)]
        struct Root {
            description: Option<String>,
        }
        let call = Call::get("read the Jenkins version".into(), "api/json".into())
            .query("tree", "mode,description");
        let answer = self.execute(&call).await?;
        if answer.status != StatusCode::OK {
            return Err(self.error(&call.operation, &answer));
        }
        let version = answer
            .header("x-jenkins")
            .ok_or_else(|| JenkinsError::InvalidResponse {
                operation: call.operation.clone(),
                detail: "no X-Jenkins header: is this Jenkins?".into(),
            })?;
        let version = version.to_string();
        let root: Root = answer.json(&call.operation)?;
        Ok(ServerInfo {
            version,
            system_message: root.description.unwrap_or_default(),
        })
    }

    /// The user the credentials authenticate as.
    pub async fn who_am_i(&self) -> Result<WhoAmI, JenkinsError> {
        let call = Call::get("ask Jenkins who we are".into(), "whoAmI/api/json".into());
        let answer = self.execute(&call).await?;
        if answer.status != StatusCode::OK {
            return Err(self.error(&call.operation, &answer));
        }
        answer.json(&call.operation)
    }

    /// The installed plugins.
    pub async fn plugins(&self) -> Result<Vec<Plugin>, JenkinsError> {
        #[derive(Deserialize)]
        struct Plugins {
            plugins: Vec<Plugin>,
        }
        let call = Call::get("list plugins".into(), "pluginManager/api/json".into())
            .query("tree", "plugins[shortName,version,active,enabled]");
        let answer = self.execute(&call).await?;
        if answer.status != StatusCode::OK {
            return Err(self.error(&call.operation, &answer));
        }
        Ok(answer.json::<Plugins>(&call.operation)?.plugins)
    }

    /// Reloads configuration as code through the token endpoint.
    ///
    /// 401 means a wrong token, 404 that Jenkins has no reload token configured; a
    /// configuration that fails to apply is [`JenkinsError::CascReloadFailed`] with Jenkins'
    /// message. Not retried: a reload that timed out may still be running.
    pub async fn reload_casc(&self, token: &str) -> Result<(), JenkinsError> {
        let mut call = Call::post(
            "reload configuration as code".into(),
            "reload-configuration-as-code/".into(),
            Retry::Never,
        )
        .query("casc-reload-token", token);
        // The token endpoint is excluded from CSRF protection.
        call.crumb = false;
        let answer = self.execute(&call).await?;
        match answer.status {
            StatusCode::OK => Ok(()),
            StatusCode::INTERNAL_SERVER_ERROR | StatusCode::BAD_REQUEST => {
                Err(JenkinsError::CascReloadFailed {
                    message: self.excerpt(&answer),
                    operation: call.operation,
                })
            }
            _ => Err(self.error(&call.operation, &answer)),
        }
    }

    /// Reloads configuration as code through the admin endpoint (needs Overall/Administer).
    ///
    /// Jenkins answers 302 on success and 200 with an error page when the configuration is
    /// wrong, so a 200 is a failure here.
    pub async fn reload_casc_as_admin(&self) -> Result<(), JenkinsError> {
        let call = Call::post(
            "reload configuration as code".into(),
            "configuration-as-code/reload".into(),
            Retry::Never,
        );
        let answer = self.execute(&call).await?;
        match answer.status {
            StatusCode::FOUND | StatusCode::SEE_OTHER => Ok(()),
            StatusCode::OK => Err(JenkinsError::CascReloadFailed {
                message: self.excerpt(&answer),
                operation: call.operation,
            }),
            _ => Err(self.error(&call.operation, &answer)),
        }
    }
}

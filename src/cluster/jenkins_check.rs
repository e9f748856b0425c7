//! Whether the Jenkins of a cluster really works, and whether it runs the current
//! configuration-as-code: the last steps before a JenkinsCluster is Ready.

use crate::jenkins::{JenkinsClient, JenkinsError};

/// What Jenkins said when asked as the administrator.
#[derive(Debug, PartialEq, Eq)]
pub enum Health {
    /// Answers as the administrator, with every pinned plugin active.
    Up {
        version: String,
        system_message: String,
    },
    /// Answers 503: still starting (loading plugins, running JCasC).
    Starting,
    /// Does not answer at all.
    Unreachable(String),
    /// Answers, but refuses the administrator's credentials or knows them as someone else.
    Refused(String),
    /// Answers, but some pinned plugins are missing or inactive.
    PluginsMissing(Vec<String>),
}

/// Asks Jenkins who we are, which version it runs and whether `expected` plugins are active.
pub async fn check(jenkins: &JenkinsClient, admin: &str, expected: &[&str]) -> Health {
    let info = match jenkins.server_info().await {
        Ok(info) => info,
        Err(error) => return classify(error),
    };
    match jenkins.who_am_i().await {
        Ok(me) if me.authenticated && !me.anonymous && me.name == admin => {}
        Ok(me) => {
            return Health::Refused(format!(
                "Jenkins knows the operator's credentials as {:?}, not as the administrator \
                 {admin}",
                me.name
            ));
        }
        Err(error) => return classify(error),
    }
    let plugins = match jenkins.plugins().await {
        Ok(plugins) => plugins,
        Err(error) => return classify(error),
    };
    let missing: Vec<String> = expected
        .iter()
        .filter(|name| !plugins.iter().any(|p| p.short_name == **name && p.active))
        .map(|name| name.to_string())
        .collect();
    if !missing.is_empty() {
        return Health::PluginsMissing(missing);
    }
    Health::Up {
        version: info.version,
        system_message: info.system_message,
    }
}

fn classify(error: JenkinsError) -> Health {
    match error {
        JenkinsError::Starting { .. } => Health::Starting,
        JenkinsError::Unauthorized { .. } | JenkinsError::Forbidden { .. } => {
            Health::Refused(error.to_string())
        }
        other => Health::Unreachable(other.to_string()),
    }
}

/// The outcome of bringing Jenkins to the current configuration.
#[derive(Debug, PartialEq, Eq)]
pub enum Configuration {
    /// Jenkins already runs it.
    Current,
    /// A reload just applied it.
    Reloaded,
    /// The reload ran but read older files: the kubelet has not updated the mounted
    /// ConfigMaps yet. Try again shortly.
    Pending,
    /// Jenkins refused the configuration; the message is Jenkins'.
    Rejected(String),
}

/// Makes Jenkins load the configuration whose marker is `marker`, through the JCasC reload
/// endpoint, unless its system message shows it already has. No restart is involved.
pub async fn ensure_configuration(
    jenkins: &JenkinsClient,
    system_message: &str,
    marker: &str,
    reload_token: &str,
) -> Result<Configuration, JenkinsError> {
    if system_message.contains(marker) {
        return Ok(Configuration::Current);
    }
    match jenkins.reload_casc(reload_token).await {
        Ok(()) => {}
        Err(JenkinsError::CascReloadFailed { message, .. }) => {
            return Ok(Configuration::Rejected(message));
        }
        Err(error) => return Err(error),
    }
    let after = jenkins.server_info().await?;
    if after.system_message.contains(marker) {
        Ok(Configuration::Reloaded)
    } else {
        Ok(Configuration::Pending)
    }
}

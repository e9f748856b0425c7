//! The Secrets the operator generates: the administrator's credentials and the token that
//! authorizes configuration-as-code reloads. Their random values are inputs, so the builders
//! stay pure; [`GeneratedSecrets::random`] draws them from the operating system.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::labels::{Component, Ownership, child_meta};
use super::{admin_secret_name, casc_reload_secret_name, cluster_namespace};
use crate::api::JenkinsCluster;

/// User name of the administrator account the operator creates.
pub const ADMIN_USERNAME: &str = "admin";

/// Key of the user name in an admin Secret (generated or `admin.existingSecret`).
pub const USERNAME_KEY: &str = "username";

/// Key of the password in an admin Secret (generated or `admin.existingSecret`).
pub const PASSWORD_KEY: &str = "password";

/// Key of the token in the casc reload Secret.
pub const TOKEN_KEY: &str = "token";

/// Random bytes in each generated value: 192 bits, far beyond guessing.
const RANDOM_BYTES: usize = 24;

/// Values the operator generates once per cluster. The Secrets that hold them are created once
/// and never overwritten, so a value drawn on a later reconcile is simply not used.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedSecrets {
    /// Password of the `admin` user (when `admin.existingSecret` is unset).
    pub admin_password: String,
    /// Token for `POST <jenkins>/reload-configuration-as-code/?casc-reload-token=...`.
    pub casc_reload_token: String,
}

// Secrets never reach logs, not even through `{:?}`.
impl std::fmt::Debug for GeneratedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GeneratedSecrets { .. }")
    }
}

impl GeneratedSecrets {
    /// Fresh values from the OS CSPRNG, hex encoded (48 characters each, safe in URLs, shell
    /// and YAML without quoting).
    pub fn random() -> Result<Self, getrandom::Error> {
        Ok(Self {
            admin_password: random_hex()?,
            casc_reload_token: random_hex()?,
        })
    }
}

fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Secret `<name>-admin` with `username` and `password`, or `None` when the user brings
/// `admin.existingSecret`. Written as `stringData` because it is only ever created.
pub fn admin_secret(cluster: &JenkinsCluster, secrets: &GeneratedSecrets) -> Option<Secret> {
    if cluster.spec.admin.existing_secret.is_some() {
        return None;
    }
    let namespace = cluster_namespace(cluster);
    Some(opaque(
        cluster,
        &admin_secret_name(cluster),
        &namespace,
        BTreeMap::from([
            (USERNAME_KEY.to_string(), ADMIN_USERNAME.to_string()),
            (PASSWORD_KEY.to_string(), secrets.admin_password.clone()),
        ]),
    ))
}

/// Secret `<name>-casc-reload` with the `token` that enables the JCasC reload endpoint.
pub fn casc_reload_secret(cluster: &JenkinsCluster, secrets: &GeneratedSecrets) -> Secret {
    let namespace = cluster_namespace(cluster);
    opaque(
        cluster,
        &casc_reload_secret_name(cluster),
        &namespace,
        BTreeMap::from([(TOKEN_KEY.to_string(), secrets.casc_reload_token.clone())]),
    )
}

fn opaque(
    cluster: &JenkinsCluster,
    name: &str,
    namespace: &str,
    data: BTreeMap<String, String>,
) -> Secret {
    Secret {
        metadata: child_meta(
            cluster,
            name,
            Some(namespace),
            Component::Credentials,
            Ownership::Owned,
        ),
        type_: Some("Opaque".into()),
        string_data: Some(data),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster;

    fn fixed() -> GeneratedSecrets {
        GeneratedSecrets {
            admin_password: "pw".into(),
            casc_reload_token: "tok".into(),
        }
    }

    #[test]
    fn random_values_are_48_hex_characters_and_differ() {
        let a = GeneratedSecrets::random().expect("OS random source");
        let b = GeneratedSecrets::random().expect("OS random source");
        assert_eq!(a.admin_password.len(), 48);
        assert!(a.admin_password.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.admin_password, b.admin_password);
        assert_ne!(a.admin_password, a.casc_reload_token);
        assert_eq!(format!("{a:?}"), "GeneratedSecrets { .. }");
    }

    #[test]
    fn the_admin_secret_holds_admin_and_the_generated_password() {
        let cluster = test_cluster("metadata: {name: ci, uid: u}\nspec: {namespace: tools}\n");
        let secret = admin_secret(&cluster, &fixed()).expect("no existing secret");
        assert_eq!(secret.metadata.name.as_deref(), Some("ci-admin"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("tools"));
        let data = secret.string_data.expect("string data");
        assert_eq!(data["username"], "admin");
        assert_eq!(data["password"], "pw");
    }

    #[test]
    fn an_existing_admin_secret_replaces_the_generated_one() {
        let cluster = test_cluster("metadata: {name: ci}\nspec: {admin: {existingSecret: mine}}\n");
        assert_eq!(admin_secret(&cluster, &fixed()), None);
        assert_eq!(admin_secret_name(&cluster), "mine");
    }

    #[test]
    fn the_reload_secret_holds_the_token() {
        let cluster = test_cluster("metadata: {name: ci}\nspec: {}\n");
        let secret = casc_reload_secret(&cluster, &fixed());
        assert_eq!(secret.metadata.name.as_deref(), Some("ci-casc-reload"));
        assert_eq!(secret.string_data.expect("data")["token"], "tok");
    }
}

//! The Jenkins credential of a JenkinsJob: the team's git Secret, copied into the cluster's
//! namespace in the shape the kubernetes-credentials-provider plugin reads.
//!
//! The plugin turns every Secret of Jenkins' namespace that carries the label
//! `jenkins.io/credentials-type` into a credential whose id is the Secret's name. The copy is
//! named with the credential id the generated config.xml refers to ([`super::names`]), so
//! config.xml only ever holds the id. Key mapping:
//!
//! - `ssh-privatekey` (with optional `username`, `passphrase`) becomes a
//!   `basicSSHUserPrivateKey` with `privateKey`, `username` (default `git`) and `passphrase`;
//! - `username` with `password` (or `token`) becomes a `usernamePassword` with `username`
//!   and `password`.
//!
//! The copy is owned by the JenkinsCluster (garbage collected with it) and labelled with the
//! source namespace; the JenkinsJob's finalizer deletes it (a namespaced JenkinsJob cannot own
//! an object in another namespace).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::plan::CredentialRef;
use crate::api::JenkinsCluster;
use crate::cluster::cluster_namespace;
use crate::cluster::labels::{Component, Ownership, child_meta};

/// The plugin's label naming the credential type.
pub const CREDENTIALS_TYPE_LABEL: &str = "jenkins.io/credentials-type";
/// The plugin's annotation with the credential's description.
pub const CREDENTIALS_DESCRIPTION: &str = "jenkins.io/credentials-description";
/// Label with the namespace of the Secret a credential was copied from.
pub const SOURCE_NAMESPACE_LABEL: &str = "jenkins.ci/source-namespace";
/// Annotation with `namespace/name` of the Secret a credential was copied from.
pub const SOURCE_ANNOTATION: &str = "jenkins.ci/source-secret";

/// User name of an SSH credential whose Secret names none (what git hosts expect).
pub const DEFAULT_SSH_USER: &str = "git";

/// Why a Secret cannot become a credential. Messages name keys, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "Secret {secret} has neither an ssh-privatekey key nor username and password (or token) \
     keys; it has: {keys}"
)]
pub struct UnusableSecret {
    pub secret: String,
    pub keys: String,
}

/// The credential Secret for `credential`, built from the team's `source` Secret.
pub fn credential_secret(
    cluster: &JenkinsCluster,
    credential: &CredentialRef,
    source: &Secret,
) -> Result<Secret, UnusableSecret> {
    let data = source.data.clone().unwrap_or_default();
    let (kind, copied) = match data.get("ssh-privatekey") {
        Some(key) => {
            let mut copied = BTreeMap::from([
                ("privateKey".to_string(), key.clone()),
                (
                    "username".to_string(),
                    data.get("username")
                        .cloned()
                        .unwrap_or_else(|| ByteString(DEFAULT_SSH_USER.as_bytes().to_vec())),
                ),
            ]);
            if let Some(passphrase) = data.get("passphrase") {
                copied.insert("passphrase".into(), passphrase.clone());
            }
            ("basicSSHUserPrivateKey", copied)
        }
        None => {
            let password = data.get("password").or_else(|| data.get("token"));
            match (data.get("username"), password) {
                (Some(user), Some(password)) => (
                    "usernamePassword",
                    BTreeMap::from([
                        ("username".to_string(), user.clone()),
                        ("password".to_string(), password.clone()),
                    ]),
                ),
                _ => {
                    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
                    return Err(UnusableSecret {
                        secret: format!("{}/{}", credential.namespace, credential.secret),
                        keys: if keys.is_empty() {
                            "none".into()
                        } else {
                            keys.join(", ")
                        },
                    });
                }
            }
        }
    };

    let namespace = cluster_namespace(cluster);
    let mut metadata = child_meta(
        cluster,
        &credential.id,
        Some(&namespace),
        Component::Credentials,
        Ownership::Owned,
    );
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(CREDENTIALS_TYPE_LABEL.into(), kind.into());
    labels.insert(SOURCE_NAMESPACE_LABEL.into(), credential.namespace.clone());
    let source_name = format!("{}/{}", credential.namespace, credential.secret);
    metadata.annotations = Some(BTreeMap::from([
        (
            CREDENTIALS_DESCRIPTION.to_string(),
            format!("Secret {source_name}, copied by jenkins-operator"),
        ),
        (SOURCE_ANNOTATION.to_string(), source_name),
    ]));
    Ok(Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(copied),
        ..Secret::default()
    })
}

/// Whether the live copy already says what `desired` says: same data, and our labels and
/// annotations present. Compared directly, so no digest of a secret value is ever stored.
pub fn up_to_date(live: &Secret, desired: &Secret) -> bool {
    let contains = |have: &Option<BTreeMap<String, String>>,
                    want: &Option<BTreeMap<String, String>>| {
        want.iter()
            .flatten()
            .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    };
    live.data == desired.data
        && contains(&live.metadata.labels, &desired.metadata.labels)
        && contains(&live.metadata.annotations, &desired.metadata.annotations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential() -> CredentialRef {
        CredentialRef {
            namespace: "team-web".into(),
            secret: "git".into(),
            id: "k8s.team-web.git".into(),
        }
    }

    fn source(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    fn text(secret: &Secret, key: &str) -> String {
        let bytes = secret.data.as_ref().expect("data")[key].0.clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn a_basic_auth_secret_becomes_a_username_password_credential() {
        let cluster = crate::cluster::test_cluster("metadata: {name: ci, uid: u}\nspec: {}\n");
        let copy = credential_secret(
            &cluster,
            &credential(),
            &source(&[("username", "bot"), ("token", "s3cret")]),
        )
        .expect("usable");
        assert_eq!(copy.metadata.name.as_deref(), Some("k8s.team-web.git"));
        assert_eq!(copy.metadata.namespace.as_deref(), Some("ci"));
        let labels = copy.metadata.labels.clone().expect("labels");
        assert_eq!(labels[CREDENTIALS_TYPE_LABEL], "usernamePassword");
        assert_eq!(labels[SOURCE_NAMESPACE_LABEL], "team-web");
        assert_eq!(labels["jenkins.ci/cluster"], "ci");
        assert_eq!(text(&copy, "username"), "bot");
        assert_eq!(text(&copy, "password"), "s3cret");
        let owner = &copy.metadata.owner_references.clone().expect("owner")[0];
        assert_eq!(owner.kind, "JenkinsCluster");
        assert!(up_to_date(&copy, &copy));
    }

    #[test]
    fn an_ssh_secret_becomes_an_ssh_credential_with_a_default_user() {
        let cluster = crate::cluster::test_cluster("metadata: {name: ci}\nspec: {}\n");
        let copy = credential_secret(
            &cluster,
            &credential(),
            &source(&[("ssh-privatekey", "KEY"), ("passphrase", "pp")]),
        )
        .expect("usable");
        let labels = copy.metadata.labels.clone().expect("labels");
        assert_eq!(labels[CREDENTIALS_TYPE_LABEL], "basicSSHUserPrivateKey");
        assert_eq!(text(&copy, "privateKey"), "KEY");
        assert_eq!(text(&copy, "username"), "git");
        assert_eq!(text(&copy, "passphrase"), "pp");
    }

    #[test]
    fn an_unusable_secret_names_its_keys_but_no_value() {
        let cluster = crate::cluster::test_cluster("metadata: {name: ci}\nspec: {}\n");
        let error = credential_secret(&cluster, &credential(), &source(&[("user", "hunter2")]))
            .expect_err("unusable");
        let message = error.to_string();
        assert!(message.contains("team-web/git"), "{message}");
        assert!(message.contains("user"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_changed_value_makes_the_copy_stale() {
        let cluster = crate::cluster::test_cluster("metadata: {name: ci}\nspec: {}\n");
        let a = credential_secret(
            &cluster,
            &credential(),
            &source(&[("username", "u"), ("password", "1")]),
        )
        .expect("usable");
        let b = credential_secret(
            &cluster,
            &credential(),
            &source(&[("username", "u"), ("password", "2")]),
        )
        .expect("usable");
        assert!(!up_to_date(&a, &b));
    }
}

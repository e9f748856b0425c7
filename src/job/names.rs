//! Names on the Jenkins side: which item names Jenkins accepts, and the ids of the credentials
//! the generated jobs refer to.

/// Characters Jenkins refuses in an item name (`Jenkins.checkGoodName`).
const FORBIDDEN_IN_ITEM_NAMES: &[char] = &[
    '?', '*', '/', '\\', '%', '!', '@', '#', '$', '^', '&', '|', '<', '>', '[', ']', ':', ';',
];

/// Longest item name in bytes: Jenkins keeps each item in a directory of that name, and common
/// file systems allow 255 bytes per path segment.
pub const MAX_ITEM_NAME_BYTES: usize = 255;

/// Checks a job or folder name against Jenkins' rules for item names; `Err` says what is wrong.
///
/// Jenkins refuses, with a 400, names that are empty, `.` or `..`, end with `.`, hold control
/// characters or any of `? * / \ % ! @ # $ ^ & | < > [ ] : ;`. Spaces, Unicode and
/// `+ = , ' " ( ) { } ~ -` are fine.
pub fn check_item_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty name is not a valid Jenkins item name".into());
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid Jenkins item name"));
    }
    if name.ends_with('.') {
        return Err(format!("Jenkins item names cannot end with '.': {name:?}"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "Jenkins item names cannot hold control characters (U+{:04X}): {name:?}",
            u32::from(c)
        ));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN_IN_ITEM_NAMES.contains(c)) {
        return Err(format!(
            "Jenkins item names cannot hold '{c}' (nor any of ? * / \\ % ! @ # $ ^ & | < > [ ] \
             : ;): {name:?}"
        ));
    }
    if name.len() > MAX_ITEM_NAME_BYTES {
        return Err(format!(
            "{name:?} is {} bytes long; Jenkins item names can have at most {MAX_ITEM_NAME_BYTES}",
            name.len()
        ));
    }
    Ok(())
}

/// Longest credential id, so that it can also name the Secret that carries it in the Jenkins
/// namespace (a DNS subdomain).
pub const MAX_CREDENTIALS_ID: usize = 253;

/// The id of the Jenkins credential made from the Secret `secret` of namespace `namespace`:
/// `k8s.<namespace>.<secret>`.
///
/// The reconciler makes the credential exist under this id: it copies the Secret into the
/// Jenkins namespace under this name for the kubernetes-credentials-provider plugin (which uses
/// a Secret's name as the credential id), or declares it in JCasC. Generated config.xml only
/// ever holds the id, never a secret value.
///
/// The id is deterministic and unambiguous: a namespace is a DNS label and holds no `.`, so the
/// first `.` after `k8s.` always ends it and two teams' Secrets can never share an id (with
/// `-` as separator, namespace `a-b` + Secret `c` and namespace `a` + Secret `b-c` would).
/// Jenkins accepts letters, digits, `_`, `-` and `.` in credential ids.
pub fn credentials_id(namespace: &str, secret: &str) -> String {
    format!("k8s.{namespace}.{secret}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jenkins_item_names_follow_jenkins_rules() {
        for good in [
            "web",
            "web-release-1.x",
            "Web App",
            "é+=,'\"(){}~-",
            "日本語",
        ] {
            assert_eq!(check_item_name(good), Ok(()), "{good}");
        }
        for bad in [
            "", ".", "..", "web.", "a/b", "a?b", "a%b", "a;b", "a\u{1}b", "a\tb",
        ] {
            assert!(check_item_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_item_name(&"a".repeat(256)).is_err());
        assert_eq!(check_item_name(&"a".repeat(255)), Ok(()));
    }

    #[test]
    fn credential_ids_of_different_teams_never_collide() {
        assert_eq!(
            credentials_id("team-web", "git-creds"),
            "k8s.team-web.git-creds"
        );
        assert_ne!(credentials_id("a-b", "c"), credentials_id("a", "b-c"));
    }
}

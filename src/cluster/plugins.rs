//! The pinned plugin list (`plugins.txt`) the init container installs with
//! `jenkins-plugin-cli`: the operator's base plugins merged with the user's.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::labels::{Component, Ownership, child_meta};
use super::{cluster_namespace, plugins_config_map_name};
use crate::api::JenkinsCluster;

/// Key of the plugin list in the plugins ConfigMap.
pub const PLUGINS_KEY: &str = "plugins.txt";

/// Plugins the operator's configuration needs, pinned. This is the set the jenkinsci Helm chart
/// pins for current LTS releases: kubernetes (agents), workflow-aggregator (Pipeline, which
/// brings workflow-multibranch, cloudbees-folder and credentials along), git (SCM checkout) and
/// configuration-as-code (everything the operator configures), plus kubernetes-credentials-provider
/// (JenkinsJobs' git Secrets become credentials; the version is the current release on
/// plugins.jenkins.io at the time of writing, needing Jenkins 2.504.3 or later; it has not
/// been installed on a real Jenkins by the tests). Their dependencies are resolved
/// by `jenkins-plugin-cli --latest false` to the lowest version that satisfies them, so the
/// installed set is the same on every start.
pub const BASE_PLUGINS: &[(&str, &str)] = &[
    ("configuration-as-code", "2065.v7a_20a_b_d84088"),
    ("git", "5.10.1"),
    ("kubernetes", "4423.vb_59f230b_ce53"),
    ("kubernetes-credentials-provider", "1.303.vdfcf47fb_b_fef"),
    ("workflow-aggregator", "608.v67378e9d3db_1"),
];

/// `name:version` lines sorted by name; a user's version of a base plugin replaces ours.
/// Duplicates in the user's list are a validation error, so the map loses nothing.
pub fn plugins_txt(cluster: &JenkinsCluster) -> String {
    pinned_plugins(cluster)
        .into_iter()
        .map(|(name, version)| format!("{name}:{version}\n"))
        .collect()
}

/// Every plugin the cluster pins, by name: the base plugins with the user's merged over them.
pub fn pinned_plugins(cluster: &JenkinsCluster) -> BTreeMap<&str, &str> {
    let mut merged: BTreeMap<&str, &str> = BASE_PLUGINS.iter().copied().collect();
    for plugin in &cluster.spec.plugins {
        merged.insert(&plugin.name, &plugin.version);
    }
    merged
}

/// ConfigMap `<name>-plugins` with `plugins.txt`.
pub fn plugins_config_map(cluster: &JenkinsCluster) -> ConfigMap {
    let namespace = cluster_namespace(cluster);
    ConfigMap {
        metadata: child_meta(
            cluster,
            &plugins_config_map_name(cluster),
            Some(&namespace),
            Component::Plugins,
            Ownership::Owned,
        ),
        data: Some(BTreeMap::from([(
            PLUGINS_KEY.to_string(),
            plugins_txt(cluster),
        )])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster;

    #[test]
    fn base_plugins_are_pinned_and_sorted() {
        let cluster = test_cluster("metadata: {name: ci}\nspec: {}\n");
        assert_eq!(
            plugins_txt(&cluster),
            "configuration-as-code:2065.v7a_20a_b_d84088\n\
             git:5.10.1\n\
             kubernetes:4423.vb_59f230b_ce53\n\
             kubernetes-credentials-provider:1.303.vdfcf47fb_b_fef\n\
             workflow-aggregator:608.v67378e9d3db_1\n"
        );
    }

    #[test]
    fn user_plugins_are_merged_and_the_users_version_wins() {
        let cluster = test_cluster(
            "metadata: {name: ci}\nspec:\n  plugins:\n\
             \x20 - {name: timestamper, version: '1.30'}\n\
             \x20 - {name: git, version: 5.7.0}\n\
             \x20 - {name: ansicolor, version: 1.0.6}\n",
        );
        let txt = plugins_txt(&cluster);
        let lines: Vec<&str> = txt.lines().collect();
        assert_eq!(lines[0], "ansicolor:1.0.6");
        assert_eq!(lines[2], "git:5.7.0");
        assert_eq!(
            lines.last(),
            Some(&"workflow-aggregator:608.v67378e9d3db_1")
        );
        assert_eq!(lines.len(), 7);
        assert!(!txt.contains("git:5.10.1"));
    }

    #[test]
    fn the_config_map_carries_plugins_txt() {
        let cluster = test_cluster("metadata: {name: ci}\nspec: {}\n");
        let cm = plugins_config_map(&cluster);
        assert_eq!(cm.metadata.name.as_deref(), Some("ci-plugins"));
        assert_eq!(cm.data.expect("data")["plugins.txt"], plugins_txt(&cluster));
    }
}

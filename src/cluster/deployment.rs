//! The Deployment that runs the Jenkins master: one replica, replaced (never doubled) on
//! change, plugins installed by an init container, configuration from JCasC, probes that give
//! a slow start its time, and a pod that passes the `restricted` Pod Security Standard.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SecretKeySelector, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::casc::{
    ADMIN_PASSWORD_ENV, ADMIN_USER_ENV, CASC_KEY, restricted_container_security, runtime_default,
};
use super::labels::{Component, Ownership, child_meta, cluster_name, labels, selector_labels};
use super::plugins::plugins_txt;
use super::secrets::{PASSWORD_KEY, TOKEN_KEY, USERNAME_KEY};
use super::{
    AGENT_PORT, HTTP_PORT, JENKINS_UID, admin_secret_name, casc_config_map_name,
    casc_reload_secret_name, cluster_namespace, home_claim_name, plugins_config_map_name,
    tcp_agents,
};
use crate::api::JenkinsCluster;
use crate::api::cluster::DEFAULT_JENKINS_IMAGE;

/// Pod-template annotation with the hash of everything that needs a restart to take effect.
pub const RESTART_HASH_ANNOTATION: &str = "jenkins.ci/restart-hash";

/// JENKINS_HOME in the official image.
pub const JENKINS_HOME: &str = "/var/jenkins_home";

/// Where the operator's JCasC ConfigMap is mounted.
pub const CASC_DIR: &str = "/var/jenkins_casc/operator";

/// Where each user JCasC ConfigMap is mounted, one directory per ConfigMap.
pub const USER_CASC_DIR: &str = "/var/jenkins_casc/user";

/// Where the plugins ConfigMap is mounted.
pub const PLUGINS_DIR: &str = "/var/jenkins_plugins";

/// Startup budget when `startupTimeoutSeconds` is unset.
pub const DEFAULT_STARTUP_TIMEOUT_SECONDS: i32 = 600;

/// Seconds between probes.
const PROBE_PERIOD_SECONDS: i32 = 10;

/// Environment variable the configuration-as-code plugin reads the reload token from (it takes
/// precedence over the `casc.reload.token` system property, and stays out of `ps` output).
pub const CASC_RELOAD_TOKEN_ENV: &str = "CASC_RELOAD_TOKEN";

/// How the configuration-as-code plugin merges its documents. Its default, `errorOnConflict`,
/// refuses to start Jenkins when a user document sets a value the operator's also sets (the
/// system message aside, nearly everything under `jenkins:`); `override` lets the later
/// document win, which is what "applied after the operator's" promises. Lists are appended
/// under both strategies.
pub const CASC_MERGE_STRATEGY: &str = "override";

/// Environment variables the operator sets on the Jenkins container; `master.env` may not.
pub const RESERVED_ENV: &[&str] = &[
    "JAVA_OPTS",
    "JENKINS_OPTS",
    "JENKINS_HOME",
    "CASC_JENKINS_CONFIG",
    "CASC_MERGE_STRATEGY",
    ADMIN_USER_ENV,
    ADMIN_PASSWORD_ENV,
    CASC_RELOAD_TOKEN_ENV,
];

/// Installs the pinned plugins into JENKINS_HOME unless the set there is the one pinned now
/// (a checksum of plugins.txt in a marker file), so that a restart needs no network. Plugins
/// are downloaded to a staging directory and swapped in whole: a failed download leaves the
/// previous set in place, and a plugin removed from the list disappears. `--latest false`
/// pins dependencies to the lowest version that satisfies them instead of whatever is newest.
const INSTALL_PLUGINS_SCRIPT: &str = r#"set -eu
plugins_txt=/var/jenkins_plugins/plugins.txt
target="$JENKINS_HOME/plugins"
marker=.jenkins-operator-plugins.sha256
wanted="$(sha256sum "$plugins_txt" | cut -d ' ' -f 1)"
if [ -f "$target/$marker" ] && [ "$(cat "$target/$marker")" = "$wanted" ]; then
  echo "plugins.txt $wanted is installed: nothing to download"
  exit 0
fi
staging="$JENKINS_HOME/.jenkins-operator-plugins-staging"
rm -rf "$staging"
mkdir -p "$staging"
jenkins-plugin-cli --plugin-file "$plugins_txt" --plugin-download-directory "$staging" \
  --latest false
echo "$wanted" > "$staging/$marker"
rm -rf "$target"
mv "$staging" "$target"
echo "installed plugins.txt $wanted"
"#;

/// The Jenkins image of a cluster.
pub fn image(cluster: &JenkinsCluster) -> &str {
    cluster
        .spec
        .master
        .image
        .as_deref()
        .unwrap_or(DEFAULT_JENKINS_IMAGE)
}

/// The master's resources: the spec's, or requests of 1 CPU and 2Gi with a 4Gi memory limit
/// (no CPU limit: throttling a JVM makes it slow, not safe).
pub fn resources(cluster: &JenkinsCluster) -> ResourceRequirements {
    cluster.spec.master.resources.clone().unwrap_or_else(|| {
        let q = |s: &str| Quantity(s.to_string());
        ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), q("1")),
                ("memory".to_string(), q("2Gi")),
            ])),
            limits: Some(BTreeMap::from([("memory".to_string(), q("4Gi"))])),
            ..ResourceRequirements::default()
        }
    })
}

/// Hex SHA-256 over what Jenkins only picks up on a restart: image, plugins, JVM and Jenkins
/// options, environment, resources, scheduling, the admin Secret, the storage and the list of
/// user JCasC ConfigMaps (each is a mount). JCasC content (agent templates, environments, the
/// content of user ConfigMaps) is hot-reloaded and deliberately left out.
pub fn restart_hash(cluster: &JenkinsCluster) -> String {
    let master = &cluster.spec.master;
    let inputs = json!({
        "image": image(cluster),
        "pluginsTxt": plugins_txt(cluster),
        "javaOpts": master.java_opts,
        "prefix": master.prefix,
        "env": master.env,
        "resources": resources(cluster),
        "startupTimeoutSeconds": master.startup_timeout_seconds,
        "nodeSelector": master.node_selector,
        "tolerations": master.tolerations,
        "affinity": master.affinity,
        "priorityClassName": master.priority_class_name,
        "adminSecret": admin_secret_name(cluster),
        "homeClaim": home_claim_name(cluster),
        "cascConfigMaps": cluster.spec.configuration_as_code.config_maps,
    });
    hex::encode(Sha256::digest(inputs.to_string()))
}

/// `CASC_JENKINS_CONFIG`: the operator's document first, then each user ConfigMap directory.
pub fn casc_jenkins_config(cluster: &JenkinsCluster) -> String {
    std::iter::once(format!("{CASC_DIR}/{CASC_KEY}"))
        .chain(
            cluster
                .spec
                .configuration_as_code
                .config_maps
                .iter()
                .map(|name| format!("{USER_CASC_DIR}/{name}")),
        )
        .collect::<Vec<_>>()
        .join(",")
}

fn login_path(cluster: &JenkinsCluster) -> String {
    format!(
        "{}/login",
        cluster.spec.master.prefix.as_deref().unwrap_or("")
    )
}

fn probe(cluster: &JenkinsCluster, failure_threshold: i32, timeout_seconds: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(login_path(cluster)),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(PROBE_PERIOD_SECONDS),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(timeout_seconds),
        ..Probe::default()
    }
}

/// Failures the startup probe tolerates: the startup budget in probe periods, rounded up.
pub fn startup_failure_threshold(cluster: &JenkinsCluster) -> i32 {
    let budget = cluster
        .spec
        .master
        .startup_timeout_seconds
        .unwrap_or(DEFAULT_STARTUP_TIMEOUT_SECONDS)
        .max(PROBE_PERIOD_SECONDS);
    (budget + PROBE_PERIOD_SECONDS - 1) / PROBE_PERIOD_SECONDS
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn plain_env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn jenkins_env(cluster: &JenkinsCluster) -> Vec<EnvVar> {
    let master = &cluster.spec.master;
    let java_opts = match master.java_opts.as_deref().map(str::trim) {
        Some(extra) if !extra.is_empty() => {
            format!("-Djenkins.install.runSetupWizard=false {extra}")
        }
        _ => "-Djenkins.install.runSetupWizard=false".to_string(),
    };
    let admin = admin_secret_name(cluster);
    let mut env = vec![plain_env("JAVA_OPTS", java_opts)];
    if let Some(prefix) = &master.prefix {
        env.push(plain_env("JENKINS_OPTS", format!("--prefix={prefix}")));
    }
    env.extend([
        plain_env("CASC_JENKINS_CONFIG", casc_jenkins_config(cluster)),
        plain_env("CASC_MERGE_STRATEGY", CASC_MERGE_STRATEGY),
        secret_env(ADMIN_USER_ENV, &admin, USERNAME_KEY),
        secret_env(ADMIN_PASSWORD_ENV, &admin, PASSWORD_KEY),
        secret_env(
            CASC_RELOAD_TOKEN_ENV,
            &casc_reload_secret_name(cluster),
            TOKEN_KEY,
        ),
    ]);
    env.extend(master.env.iter().cloned());
    env
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn config_map_volume(name: &str, config_map: &str) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.into(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// Volume names of user ConfigMaps are by position: ConfigMap names may be longer than the
/// 63 characters a volume name allows.
fn user_casc_volume(index: usize) -> String {
    format!("casc-user-{index}")
}

fn volumes(cluster: &JenkinsCluster) -> Vec<Volume> {
    let mut volumes = vec![
        Volume {
            name: "jenkins-home".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: home_claim_name(cluster),
                read_only: None,
            }),
            ..Volume::default()
        },
        config_map_volume("casc", &casc_config_map_name(cluster)),
        config_map_volume("plugins", &plugins_config_map_name(cluster)),
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let user = &cluster.spec.configuration_as_code.config_maps;
    volumes.extend(
        user.iter()
            .enumerate()
            .map(|(i, name)| config_map_volume(&user_casc_volume(i), name)),
    );
    volumes
}

fn jenkins_mounts(cluster: &JenkinsCluster) -> Vec<VolumeMount> {
    let mut mounts = vec![
        mount("jenkins-home", JENKINS_HOME, false),
        mount("casc", CASC_DIR, true),
        mount("tmp", "/tmp", false),
    ];
    let user = &cluster.spec.configuration_as_code.config_maps;
    mounts.extend(user.iter().enumerate().map(|(i, name)| {
        mount(
            &user_casc_volume(i),
            &format!("{USER_CASC_DIR}/{name}"),
            true,
        )
    }));
    mounts
}

fn plugin_installer(cluster: &JenkinsCluster) -> Container {
    Container {
        name: "install-plugins".into(),
        image: Some(image(cluster).into()),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            INSTALL_PLUGINS_SCRIPT.into(),
        ]),
        // The user's env reaches the installer too: proxies (HTTPS_PROXY) and update-center
        // mirrors (JENKINS_UC, JENKINS_UC_DOWNLOAD) matter most there.
        env: Some(
            std::iter::once(plain_env("JENKINS_HOME", JENKINS_HOME))
                .chain(cluster.spec.master.env.iter().cloned())
                .collect(),
        ),
        // jenkins-plugin-cli is a JVM too; an init container's resources do not add to the
        // pod's, so it may as well have the master's.
        resources: Some(resources(cluster)),
        volume_mounts: Some(vec![
            mount("jenkins-home", JENKINS_HOME, false),
            mount("plugins", PLUGINS_DIR, true),
            mount("tmp", "/tmp", false),
        ]),
        security_context: Some(restricted_container_security()),
        ..Container::default()
    }
}

fn jenkins_container(cluster: &JenkinsCluster) -> Container {
    let port = |name: &str, number: i32| ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    };
    // The agent port is declared only where Jenkins listens on it (see casc.rs); the Service
    // targets it by name.
    let mut ports = vec![port("http", HTTP_PORT)];
    if tcp_agents(cluster) {
        ports.push(port("agent", AGENT_PORT));
    }
    Container {
        name: "jenkins".into(),
        image: Some(image(cluster).into()),
        ports: Some(ports),
        env: Some(jenkins_env(cluster)),
        resources: Some(resources(cluster)),
        startup_probe: Some(probe(cluster, startup_failure_threshold(cluster), 5)),
        // Generous: a master busy with a big reload or a GC pause must not be killed.
        liveness_probe: Some(probe(cluster, 5, 10)),
        readiness_probe: Some(probe(cluster, 3, 5)),
        volume_mounts: Some(jenkins_mounts(cluster)),
        security_context: Some(restricted_container_security()),
        ..Container::default()
    }
}

/// Deployment `<name>`.
pub fn deployment(cluster: &JenkinsCluster) -> Deployment {
    let master = &cluster.spec.master;
    let namespace = cluster_namespace(cluster);
    let pod_spec = PodSpec {
        service_account_name: Some(cluster_name(cluster).into()),
        // Service environment variables of every Service in the namespace slow Jenkins'
        // start down and are never used.
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_user: Some(JENKINS_UID),
            run_as_group: Some(JENKINS_UID),
            fs_group: Some(JENKINS_UID),
            run_as_non_root: Some(true),
            // A large JENKINS_HOME is not re-chowned on every start.
            fs_group_change_policy: Some("OnRootMismatch".into()),
            seccomp_profile: Some(runtime_default()),
            ..PodSecurityContext::default()
        }),
        init_containers: Some(vec![plugin_installer(cluster)]),
        containers: vec![jenkins_container(cluster)],
        volumes: Some(volumes(cluster)),
        node_selector: (!master.node_selector.is_empty()).then(|| master.node_selector.clone()),
        tolerations: (!master.tolerations.is_empty()).then(|| master.tolerations.clone()),
        affinity: master.affinity.clone(),
        priority_class_name: master.priority_class_name.clone(),
        ..PodSpec::default()
    };
    Deployment {
        metadata: child_meta(
            cluster,
            cluster_name(cluster),
            Some(&namespace),
            Component::Master,
            Ownership::Owned,
        ),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            // Two masters on one JENKINS_HOME corrupt it: the old pod goes before the new one.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
            selector: LabelSelector {
                match_labels: Some(selector_labels(cluster, Component::Master)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(cluster, Component::Master)),
                    annotations: Some(BTreeMap::from([(
                        RESTART_HASH_ANNOTATION.to_string(),
                        restart_hash(cluster),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster;

    const PREFIXED: &str = r#"
metadata: {name: ci, uid: u}
spec:
  namespace: tools
  master:
    image: jenkins/jenkins:2.541.1-lts-jdk21
    javaOpts: -Xmx2g
    prefix: /jenkins
    startupTimeoutSeconds: 905
    env: [{name: TZ, value: Europe/Paris}]
    nodeSelector: {pool: ci}
    priorityClassName: high
  configurationAsCode: {configMaps: [extra-casc, more]}
  agents:
    templates:
      - name: maven
        label: maven
        containers: [{name: maven, image: "maven:3.9"}]
"#;

    fn pod(cluster: &JenkinsCluster) -> PodSpec {
        deployment(cluster)
            .spec
            .expect("spec")
            .template
            .spec
            .expect("pod spec")
    }

    fn env_value(container: &Container, name: &str) -> Option<String> {
        let env = container.env.as_ref()?;
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    }

    #[test]
    fn the_plugin_installer_gets_the_users_env_for_proxies_and_mirrors() {
        let spec = pod(&test_cluster(PREFIXED));
        let installer = &spec.init_containers.expect("init containers")[0];
        let names: Vec<&str> = installer
            .env
            .iter()
            .flatten()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["JENKINS_HOME", "TZ"]);
    }

    #[test]
    fn one_master_replaced_never_doubled() {
        let cluster = test_cluster(PREFIXED);
        let spec = deployment(&cluster).spec.expect("spec");
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(
            spec.strategy.expect("strategy").type_.as_deref(),
            Some("Recreate")
        );
        let selector = spec.selector.match_labels.expect("match labels");
        let template_labels = spec
            .template
            .metadata
            .expect("meta")
            .labels
            .expect("labels");
        for (k, v) in &selector {
            assert_eq!(
                template_labels.get(k),
                Some(v),
                "the selector selects the pod"
            );
        }
    }

    #[test]
    fn the_pod_passes_the_restricted_pod_security_standard() {
        let spec = pod(&test_cluster(PREFIXED));
        let security = spec.security_context.expect("pod security");
        assert_eq!(security.run_as_user, Some(1000));
        assert_eq!(security.run_as_group, Some(1000));
        assert_eq!(security.fs_group, Some(1000));
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(
            security.fs_group_change_policy.as_deref(),
            Some("OnRootMismatch")
        );
        assert_eq!(
            security.seccomp_profile.expect("seccomp").type_,
            "RuntimeDefault"
        );
        let init = spec.init_containers.expect("init containers");
        for container in init.iter().chain(&spec.containers) {
            let security = container
                .security_context
                .clone()
                .expect("container security");
            assert_eq!(security.allow_privilege_escalation, Some(false));
            let drop = security.capabilities.and_then(|c| c.drop);
            assert_eq!(drop, Some(vec!["ALL".to_string()]));
        }
    }

    #[test]
    fn the_jenkins_container_has_named_ports_and_probes_under_the_prefix() {
        let spec = pod(&test_cluster(PREFIXED));
        let jenkins = &spec.containers[0];
        assert_eq!(jenkins.name, "jenkins");
        let ports: Vec<_> = jenkins
            .ports
            .clone()
            .expect("ports")
            .into_iter()
            .map(|p| (p.name.expect("named"), p.container_port))
            .collect();
        assert_eq!(
            ports,
            [("http".to_string(), 8080), ("agent".to_string(), 50000)]
        );

        let websocket =
            test_cluster("metadata: {name: ci}\nspec: {agents: {connection: websocket}}\n");
        let ports: Vec<_> = pod(&websocket).containers[0]
            .ports
            .clone()
            .expect("ports")
            .into_iter()
            .map(|p| p.name.expect("named"))
            .collect();
        assert_eq!(
            ports,
            ["http"],
            "no agent port where Jenkins does not listen"
        );

        let startup = jenkins.startup_probe.clone().expect("startup probe");
        let get = startup.http_get.expect("http get");
        assert_eq!(get.path.as_deref(), Some("/jenkins/login"));
        assert_eq!(get.port, IntOrString::String("http".into()));
        assert_eq!(startup.period_seconds, Some(10));
        assert_eq!(
            startup.failure_threshold,
            Some(91),
            "905 s rounded up to periods"
        );

        let liveness = jenkins.liveness_probe.clone().expect("liveness probe");
        assert_eq!(liveness.failure_threshold, Some(5));
        assert_eq!(liveness.timeout_seconds, Some(10));
        let readiness = jenkins.readiness_probe.clone().expect("readiness probe");
        let path = readiness.http_get.expect("http get").path;
        assert_eq!(path.as_deref(), Some("/jenkins/login"));
    }

    #[test]
    fn the_default_startup_budget_is_600_seconds_and_the_probe_path_is_login() {
        let spec = pod(&test_cluster("metadata: {name: ci}\nspec: {}\n"));
        let startup = spec.containers[0]
            .startup_probe
            .clone()
            .expect("startup probe");
        assert_eq!(startup.failure_threshold, Some(60));
        assert_eq!(
            startup.http_get.expect("get").path.as_deref(),
            Some("/login")
        );
    }

    #[test]
    fn the_environment_configures_jenkins_and_jcasc() {
        let spec = pod(&test_cluster(PREFIXED));
        let jenkins = &spec.containers[0];
        assert_eq!(
            env_value(jenkins, "JAVA_OPTS").as_deref(),
            Some("-Djenkins.install.runSetupWizard=false -Xmx2g")
        );
        assert_eq!(
            env_value(jenkins, "JENKINS_OPTS").as_deref(),
            Some("--prefix=/jenkins")
        );
        assert_eq!(
            env_value(jenkins, "CASC_JENKINS_CONFIG").as_deref(),
            Some(
                "/var/jenkins_casc/operator/jenkins.yaml,\
                 /var/jenkins_casc/user/extra-casc,/var/jenkins_casc/user/more"
            )
        );
        // User documents override the operator's values instead of failing Jenkins' start.
        assert_eq!(
            env_value(jenkins, "CASC_MERGE_STRATEGY").as_deref(),
            Some("override")
        );
        assert_eq!(env_value(jenkins, "TZ").as_deref(), Some("Europe/Paris"));
        let env = jenkins.env.clone().expect("env");
        let from_secret = |name: &str| {
            let var = env
                .iter()
                .find(|e| e.name == name)
                .expect("variable is set");
            let source = var.value_from.clone().and_then(|v| v.secret_key_ref);
            source.map(|s| (s.name, s.key)).expect("from a secret")
        };
        assert_eq!(
            from_secret("JENKINS_ADMIN_USER"),
            ("ci-admin".into(), "username".into())
        );
        assert_eq!(
            from_secret("JENKINS_ADMIN_PASSWORD"),
            ("ci-admin".into(), "password".into())
        );
        assert_eq!(
            from_secret("CASC_RELOAD_TOKEN"),
            ("ci-casc-reload".into(), "token".into())
        );
    }

    #[test]
    fn without_a_prefix_there_are_no_jenkins_opts() {
        let spec = pod(&test_cluster("metadata: {name: ci}\nspec: {}\n"));
        assert_eq!(env_value(&spec.containers[0], "JENKINS_OPTS"), None);
        assert_eq!(
            env_value(&spec.containers[0], "JAVA_OPTS").as_deref(),
            Some("-Djenkins.install.runSetupWizard=false")
        );
    }

    #[test]
    fn default_resources_request_one_cpu_and_2gi_with_a_4gi_limit() {
        let spec = pod(&test_cluster("metadata: {name: ci}\nspec: {}\n"));
        let resources = spec.containers[0].resources.clone().expect("resources");
        let requests = resources.requests.expect("requests");
        assert_eq!(requests["cpu"].0, "1");
        assert_eq!(requests["memory"].0, "2Gi");
        let limits = resources.limits.expect("limits");
        assert_eq!(limits["memory"].0, "4Gi");
        assert_eq!(limits.get("cpu"), None);
    }

    #[test]
    fn volumes_mount_home_casc_user_casc_plugins_and_tmp() {
        let spec = pod(&test_cluster(PREFIXED));
        let volumes = spec.volumes.expect("volumes");
        let find = |name: &str| volumes.iter().find(|v| v.name == name).expect(name).clone();
        assert_eq!(
            find("jenkins-home")
                .persistent_volume_claim
                .expect("pvc")
                .claim_name,
            "ci-home"
        );
        assert_eq!(find("casc").config_map.expect("cm").name, "ci-casc");
        assert_eq!(find("plugins").config_map.expect("cm").name, "ci-plugins");
        assert_eq!(
            find("casc-user-0").config_map.expect("cm").name,
            "extra-casc"
        );
        assert_eq!(find("casc-user-1").config_map.expect("cm").name, "more");
        assert!(find("tmp").empty_dir.is_some());
        let mounts = spec.containers[0].volume_mounts.clone().expect("mounts");
        let path = |name: &str| {
            mounts
                .iter()
                .find(|m| m.name == name)
                .map(|m| m.mount_path.clone())
        };
        assert_eq!(path("jenkins-home").as_deref(), Some("/var/jenkins_home"));
        assert_eq!(
            path("casc-user-0").as_deref(),
            Some("/var/jenkins_casc/user/extra-casc")
        );
        assert_eq!(path("tmp").as_deref(), Some("/tmp"));
    }

    #[test]
    fn an_existing_claim_backs_jenkins_home() {
        let cluster =
            test_cluster("metadata: {name: ci}\nspec: {persistence: {existingClaim: data}}\n");
        let volumes = pod(&cluster).volumes.expect("volumes");
        let home = volumes
            .iter()
            .find(|v| v.name == "jenkins-home")
            .expect("home");
        let claim = home.persistent_volume_claim.as_ref().expect("pvc");
        assert_eq!(claim.claim_name, "data");
    }

    #[test]
    fn the_init_container_installs_pinned_plugins_unless_already_installed() {
        let spec = pod(&test_cluster(PREFIXED));
        let init = &spec.init_containers.expect("init containers")[0];
        assert_eq!(
            init.image.as_deref(),
            Some("jenkins/jenkins:2.541.1-lts-jdk21")
        );
        let command = init.command.clone().expect("command");
        assert_eq!(command[..2], ["sh".to_string(), "-c".to_string()]);
        let script = &command[2];
        assert!(script.contains(
            "jenkins-plugin-cli --plugin-file \"$plugins_txt\" --plugin-download-directory"
        ));
        assert!(script.contains("--latest false"));
        assert!(script.contains("sha256sum"));
        assert!(script.contains("nothing to download"));
        let mounts = init.volume_mounts.clone().expect("mounts");
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == "/var/jenkins_plugins")
        );
        assert!(mounts.iter().any(|m| m.mount_path == "/var/jenkins_home"));
    }

    #[test]
    fn scheduling_comes_from_the_spec() {
        let spec = pod(&test_cluster(PREFIXED));
        assert_eq!(spec.node_selector.expect("node selector")["pool"], "ci");
        assert_eq!(spec.priority_class_name.as_deref(), Some("high"));
        assert_eq!(spec.service_account_name.as_deref(), Some("ci"));
    }

    fn hash_of(yaml: &str) -> String {
        let d = deployment(&test_cluster(yaml));
        let meta = d.spec.expect("spec").template.metadata.expect("meta");
        meta.annotations.expect("annotations")[RESTART_HASH_ANNOTATION].clone()
    }

    #[test]
    fn changing_only_an_agent_template_keeps_the_restart_hash() {
        let before = hash_of(PREFIXED);
        assert_eq!(before.len(), 64);
        let after = hash_of(&PREFIXED.replace("maven:3.9", "maven:3.8"));
        assert_eq!(before, after);
        let with_env = format!("{PREFIXED}  environments: [{{name: dev, namespace: app-dev}}]\n");
        assert_eq!(before, hash_of(&with_env));
    }

    #[test]
    fn changing_the_image_or_the_plugins_changes_the_restart_hash() {
        let before = hash_of(PREFIXED);
        let image = PREFIXED.replace("2.541.1-lts-jdk21", "2.541.2-lts-jdk21");
        assert_ne!(before, hash_of(&image));
        let plugins = format!("{PREFIXED}  plugins: [{{name: timestamper, version: '1.30'}}]\n");
        assert_ne!(before, hash_of(&plugins));
        let java = PREFIXED.replace("-Xmx2g", "-Xmx3g");
        assert_ne!(before, hash_of(&java));
    }
}

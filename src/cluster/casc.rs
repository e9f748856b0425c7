//! The operator's configuration-as-code (JCasC) document: the security realm with the admin
//! account, the authorization strategy, no executors on the master, CSRF protection, the
//! Jenkins URL, and the kubernetes cloud with one pod template per agent template and per
//! environment. Jenkins hot-reloads it, so nothing here is part of the restart hash.
//!
//! The document is built as a tree of values and serialized, never pasted together from user
//! text. JCasC expands `${...}` in every string it reads; user text has that sequence escaped
//! (`^${`) so that a label or an environment value cannot read the master's environment
//! (which holds the admin password).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, EnvVar, Pod, PodSecurityContext, PodSpec,
    ResourceRequirements, SeccompProfile, SecurityContext,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::environments::{deploy_account_name, deploy_image, deploy_template_name};
use super::labels::{Component, Ownership, child_meta, cluster_name};
use super::{
    AGENT_PORT, DEFAULT_CONTAINER_CAP, JENKINS_UID, agent_namespace, casc_config_map_name,
    cluster_namespace, jenkins_url, root_url, service_host, tcp_agents,
};
use crate::api::JenkinsCluster;
use crate::api::cluster::{AgentConnection, AgentContainer, AgentTemplate, EnvironmentSpec};

/// Key of the document in the casc ConfigMap.
pub const CASC_KEY: &str = "jenkins.yaml";

/// Environment variable holding the admin user name, from the admin Secret.
pub const ADMIN_USER_ENV: &str = "JENKINS_ADMIN_USER";

/// Environment variable holding the admin password, from the admin Secret.
pub const ADMIN_PASSWORD_ENV: &str = "JENKINS_ADMIN_PASSWORD";

/// Name of the kubernetes cloud in Jenkins.
pub const CLOUD_NAME: &str = "kubernetes";

/// Name of the container of `deploy-<env>` agents.
pub const DEPLOY_CONTAINER: &str = "kubectl";

/// ConfigMap `<name>-casc` with `jenkins.yaml`. `user_casc_digest` summarizes the user's JCasC
/// ConfigMaps (empty when there are none or they are unknown, as in `render`); it goes into the
/// configuration marker.
pub fn casc_config_map(cluster: &JenkinsCluster, user_casc_digest: &str) -> ConfigMap {
    let namespace = cluster_namespace(cluster);
    ConfigMap {
        metadata: child_meta(
            cluster,
            &casc_config_map_name(cluster),
            Some(&namespace),
            Component::Casc,
            Ownership::Owned,
        ),
        data: Some(BTreeMap::from([(
            CASC_KEY.to_string(),
            marked_casc_yaml(cluster, user_casc_digest),
        )])),
        ..ConfigMap::default()
    }
}

/// The JCasC document as YAML.
pub fn casc_yaml(cluster: &JenkinsCluster) -> String {
    to_yaml(&casc_document(cluster))
}

/// Text of the system message before the marker.
pub const MARKER_PREFIX: &str = "Managed by jenkins-operator; configuration ";

/// A short digest of all the JCasC content Jenkins should have loaded: the operator's document
/// and the user's ConfigMaps. Jenkins shows it in its system message, so the operator can tell
/// whether a reload read the current files (the kubelet updates mounted ConfigMaps a minute or
/// so after they change) and reload again if not.
pub fn configuration_marker(cluster: &JenkinsCluster, user_casc_digest: &str) -> String {
    let digest = Sha256::digest(format!("{}\n{user_casc_digest}", casc_yaml(cluster)));
    hex::encode(&digest[..8])
}

/// The operator's JCasC document with the configuration marker as the system message.
fn marked_casc_yaml(cluster: &JenkinsCluster, user_casc_digest: &str) -> String {
    let mut document = casc_document(cluster);
    let marker = configuration_marker(cluster, user_casc_digest);
    document["jenkins"]["systemMessage"] = Value::String(format!("{MARKER_PREFIX}{marker}"));
    to_yaml(&document)
}

/// The JCasC document as a value tree.
pub fn casc_document(cluster: &JenkinsCluster) -> Value {
    let mut document = json!({
        "jenkins": {
            // Builds never run on the master: it holds the credentials and the job history.
            "numExecutors": 0,
            "crumbIssuer": "standard",
            "authorizationStrategy": {
                "loggedInUsersCanDoAnything": {"allowAnonymousRead": false}
            },
            "clouds": [{"kubernetes": kubernetes_cloud(cluster)}],
            // The inbound TCP listener, set here rather than by the image's default so that it
            // follows the connection on every reload: open on the port the Service routes for
            // TCP agents, closed (-1) for websocket agents, which come in over HTTP.
            "slaveAgentPort": if tcp_agents(cluster) { AGENT_PORT } else { -1 },
        },
        // Jenkins' URL for people (links, notifications); the cloud above keeps agents on the
        // in-cluster URL whatever this says.
        "unclassified": {"location": {"url": root_url(cluster)}},
    });
    escape_variables(&mut document);

    // Inserted after escaping: these two are meant to be expanded by JCasC, from environment
    // variables the Deployment fills from the admin Secret.
    document["jenkins"]["securityRealm"] = json!({
        "local": {
            "allowsSignup": false,
            "users": [{
                "id": format!("${{{ADMIN_USER_ENV}}}"),
                "password": format!("${{{ADMIN_PASSWORD_ENV}}}"),
            }],
        }
    });
    document
}

fn kubernetes_cloud(cluster: &JenkinsCluster) -> Value {
    let agents = &cluster.spec.agents;
    let mut cloud = Map::new();
    cloud.insert("name".into(), CLOUD_NAME.into());
    // Empty: the plugin uses the in-cluster API server and the pod's ServiceAccount.
    cloud.insert("serverUrl".into(), "".into());
    cloud.insert("namespace".into(), agent_namespace(cluster).into());
    cloud.insert("jenkinsUrl".into(), jenkins_url(cluster).into());
    match agents.connection {
        AgentConnection::Tcp => {
            let tunnel = format!("{}:{AGENT_PORT}", service_host(cluster));
            cloud.insert("jenkinsTunnel".into(), tunnel.into());
        }
        AgentConnection::Websocket => {
            cloud.insert("webSocket".into(), true.into());
        }
    }
    let cap = agents.container_cap.unwrap_or(DEFAULT_CONTAINER_CAP);
    cloud.insert("containerCapStr".into(), cap.to_string().into());

    let mut templates: Vec<Value> = agents
        .templates
        .iter()
        .map(|template| agent_pod_template(cluster, template))
        .collect();
    templates.extend(
        cluster
            .spec
            .environments
            .iter()
            .map(|env| deploy_pod_template(cluster, env)),
    );
    cloud.insert("templates".into(), templates.into());
    Value::Object(cloud)
}

/// A pod template id derived from the cluster and template names. The kubernetes plugin keys
/// templates by id; a stable one makes a reload update the template instead of adding a copy.
pub fn template_id(cluster: &JenkinsCluster, template: &str) -> String {
    let digest = Sha256::digest(format!("jenkins.ci/{}/{template}", cluster_name(cluster)));
    let hex = hex::encode(&digest[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn agent_pod_template(cluster: &JenkinsCluster, template: &AgentTemplate) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), template.name.clone().into());
    out.insert("id".into(), template_id(cluster, &template.name).into());
    out.insert("label".into(), template.label.clone().into());
    out.insert("namespace".into(), agent_namespace(cluster).into());
    out.insert(
        "idleMinutes".into(),
        template.idle_minutes.unwrap_or(0).into(),
    );
    if !template.node_selector.is_empty() {
        out.insert(
            "nodeSelector".into(),
            node_selector(&template.node_selector).into(),
        );
    }
    if let Some(account) = &template.service_account {
        out.insert("serviceAccount".into(), account.clone().into());
    }
    let containers: Vec<Value> = template.containers.iter().map(container_template).collect();
    out.insert("containers".into(), containers.into());
    let names = template.containers.iter().map(|c| c.name.as_str());
    out.insert("yamlMergeStrategy".into(), "merge".into());
    out.insert("yaml".into(), restricted_pod_yaml(names).into());
    Value::Object(out)
}

fn deploy_pod_template(cluster: &JenkinsCluster, env: &EnvironmentSpec) -> Value {
    let name = deploy_template_name(env);
    let container = AgentContainer {
        name: DEPLOY_CONTAINER.into(),
        image: deploy_image(env).into(),
        command: Vec::new(),
        args: Vec::new(),
        env: vec![
            plain_env("ENVIRONMENT", &env.name),
            plain_env("TARGET_NAMESPACE", &env.namespace),
        ],
        resources: None,
    };
    json!({
        "name": name,
        "id": template_id(cluster, &name),
        "label": name,
        "namespace": agent_namespace(cluster),
        "idleMinutes": 0,
        "serviceAccount": deploy_account_name(cluster, env),
        "containers": [container_template(&container)],
        "yamlMergeStrategy": "merge",
        "yaml": restricted_pod_yaml([DEPLOY_CONTAINER].into_iter()),
    })
}

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// JCasC's string form of a node selector: `key=value,key2=value2`.
fn node_selector(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn container_template(container: &AgentContainer) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), container.name.clone().into());
    out.insert("image".into(), container.image.clone().into());
    // Steps exec into the container, so it must outlive its entrypoint.
    let (command, args) = if container.command.is_empty() && container.args.is_empty() {
        (vec!["sleep".to_string()], vec!["infinity".to_string()])
    } else {
        (container.command.clone(), container.args.clone())
    };
    if !command.is_empty() {
        out.insert("command".into(), command_line(&command).into());
    }
    if !args.is_empty() {
        out.insert("args".into(), command_line(&args).into());
    }
    out.insert("ttyEnabled".into(), true.into());
    if let Some(resources) = &container.resources {
        insert_resources(&mut out, resources);
    }
    let env: Vec<Value> = container.env.iter().filter_map(template_env).collect();
    if !env.is_empty() {
        out.insert("envVars".into(), env.into());
    }
    Value::Object(out)
}

/// The plugin takes command and args as one string each and splits it on whitespace, keeping
/// quoted runs together. Validation refuses items with both kinds of quote.
pub fn command_line(items: &[String]) -> String {
    items
        .iter()
        .map(|item| {
            let plain = !item.is_empty()
                && !item
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '\'');
            if plain {
                item.clone()
            } else if !item.contains('"') {
                format!("\"{item}\"")
            } else {
                format!("'{item}'")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn insert_resources(out: &mut Map<String, Value>, resources: &ResourceRequirements) {
    let fields = [
        ("cpu", "Cpu"),
        ("memory", "Memory"),
        ("ephemeral-storage", "EphemeralStorage"),
    ];
    for (kind, map) in [
        ("Request", &resources.requests),
        ("Limit", &resources.limits),
    ] {
        let Some(map) = map else { continue };
        for (resource, suffix) in fields {
            if let Some(quantity) = map.get(resource) {
                out.insert(format!("resource{kind}{suffix}"), quantity.0.clone().into());
            }
        }
    }
}

/// Plain values and Secret references are what the plugin's container templates offer;
/// validation refuses other sources.
fn template_env(env: &EnvVar) -> Option<Value> {
    if let Some(secret) = env
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
    {
        return Some(json!({"secretEnvVar": {
            "key": env.name,
            "secretName": secret.name,
            "secretKey": secret.key,
            "optional": secret.optional.unwrap_or(false),
        }}));
    }
    if env.value_from.is_some() {
        return None;
    }
    Some(json!({"envVar": {"key": env.name, "value": env.value.clone().unwrap_or_default()}}))
}

/// The container security context the `restricted` Pod Security Standard requires.
pub fn restricted_container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        run_as_non_root: Some(true),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

/// `seccompProfile: {type: RuntimeDefault}`.
pub fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    }
}

/// The pod the kubernetes plugin merges into every agent pod (`yamlMergeStrategy: merge`):
/// uid 1000 (the `jenkins` user of the inbound-agent image), no privilege escalation, no
/// capabilities, the runtime's seccomp profile, on the `jnlp` container and every other one.
pub fn restricted_pod<'a>(containers: impl Iterator<Item = &'a str>) -> Pod {
    let names = std::iter::once("jnlp").chain(containers);
    Pod {
        spec: Some(PodSpec {
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(JENKINS_UID),
                run_as_group: Some(JENKINS_UID),
                fs_group: Some(JENKINS_UID),
                seccomp_profile: Some(runtime_default()),
                ..PodSecurityContext::default()
            }),
            containers: names
                .map(|name| Container {
                    name: name.into(),
                    security_context: Some(restricted_container_security()),
                    ..Container::default()
                })
                .collect(),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn restricted_pod_yaml<'a>(containers: impl Iterator<Item = &'a str>) -> String {
    let pod = serde_json::to_value(restricted_pod(containers))
        .unwrap_or_else(|_| unreachable!("a Pod always serializes to JSON"));
    to_yaml(&pod)
}

fn to_yaml(value: &Value) -> String {
    serde_saphyr::to_string(value)
        .unwrap_or_else(|_| unreachable!("a JSON value always serializes to YAML"))
}

/// Escapes JCasC variable expansion (`${` becomes `^${`) in every string of the tree.
fn escape_variables(value: &mut Value) {
    match value {
        Value::String(s) if s.contains("${") => *s = s.replace("${", "^${"),
        Value::Array(items) => items.iter_mut().for_each(escape_variables),
        Value::Object(map) => map.values_mut().for_each(escape_variables),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster;

    const AGENTS: &str = r#"
metadata: {name: ci, uid: u}
spec:
  namespace: tools
  master: {prefix: /jenkins}
  agents:
    namespace: builds
    containerCap: 7
    templates:
      - name: maven
        label: maven java
        idleMinutes: 5
        nodeSelector: {disk: ssd, arch: amd64}
        serviceAccount: builder
        containers:
          - name: maven
            image: maven:3.9-eclipse-temurin-21
            command: [sh, -c]
            args: ["echo ${HOME} && sleep infinity"]
            env:
              - {name: MAVEN_OPTS, value: "-Xmx1g"}
              - name: TOKEN
                valueFrom: {secretKeyRef: {name: creds, key: token}}
            resources:
              requests: {cpu: 500m, memory: 1Gi}
              limits: {memory: 2Gi}
  environments:
    - {name: dev, namespace: app-dev}
"#;

    fn document(yaml: &str) -> Value {
        let cluster = test_cluster(yaml);
        let text = casc_yaml(&cluster);
        serde_saphyr::from_str(&text).expect("the document is valid YAML")
    }

    #[test]
    fn the_master_has_no_executors_a_crumb_issuer_and_a_local_admin() {
        let doc = document("metadata: {name: ci}\nspec: {}\n");
        let jenkins = &doc["jenkins"];
        assert_eq!(jenkins["numExecutors"], 0);
        assert_eq!(jenkins["crumbIssuer"], "standard");
        assert_eq!(
            jenkins["authorizationStrategy"]["loggedInUsersCanDoAnything"]["allowAnonymousRead"],
            false
        );
        let user = &jenkins["securityRealm"]["local"]["users"][0];
        assert_eq!(user["id"], "${JENKINS_ADMIN_USER}");
        assert_eq!(user["password"], "${JENKINS_ADMIN_PASSWORD}");
        assert_eq!(jenkins["securityRealm"]["local"]["allowsSignup"], false);
        assert_eq!(
            doc["unclassified"]["location"]["url"],
            "http://ci.ci.svc:8080/"
        );
    }

    #[test]
    fn the_cloud_reaches_the_master_through_the_service_and_the_prefix() {
        let doc = document(AGENTS);
        let cloud = &doc["jenkins"]["clouds"][0]["kubernetes"];
        assert_eq!(cloud["name"], "kubernetes");
        assert_eq!(cloud["serverUrl"], "");
        assert_eq!(cloud["namespace"], "builds");
        assert_eq!(cloud["jenkinsUrl"], "http://ci.tools.svc:8080/jenkins/");
        assert_eq!(cloud["jenkinsTunnel"], "ci.tools.svc:50000");
        assert_eq!(cloud.get("webSocket"), None);
        assert_eq!(cloud["containerCapStr"], "7");
    }

    #[test]
    fn jenkins_url_is_the_external_one_while_agents_stay_inside() {
        let doc = document(
            "metadata: {name: ci}\nspec: {ingress: {host: ci.example.com, tls: {secretName: t}}}\n",
        );
        assert_eq!(
            doc["unclassified"]["location"]["url"],
            "https://ci.example.com/"
        );
        let cloud = &doc["jenkins"]["clouds"][0]["kubernetes"];
        assert_eq!(cloud["jenkinsUrl"], "http://ci.ci.svc:8080/");
        assert_eq!(cloud["jenkinsTunnel"], "ci.ci.svc:50000");
    }

    #[test]
    fn websocket_agents_get_no_tunnel_and_jenkins_no_tcp_listener() {
        let doc = document("metadata: {name: ci}\nspec: {agents: {connection: websocket}}\n");
        let cloud = &doc["jenkins"]["clouds"][0]["kubernetes"];
        assert_eq!(cloud["webSocket"], true);
        assert_eq!(cloud.get("jenkinsTunnel"), None);
        assert_eq!(cloud["jenkinsUrl"], "http://ci.ci.svc:8080/");
        assert_eq!(cloud["containerCapStr"], "10");
        assert_eq!(doc["jenkins"]["slaveAgentPort"], -1);
    }

    #[test]
    fn tcp_agents_get_the_listener_on_the_port_the_tunnel_names() {
        let doc = document("metadata: {name: ci}\nspec: {}\n");
        assert_eq!(doc["jenkins"]["slaveAgentPort"], 50000);
        let cloud = &doc["jenkins"]["clouds"][0]["kubernetes"];
        assert_eq!(cloud["jenkinsTunnel"], "ci.ci.svc:50000");
        assert_eq!(cloud.get("webSocket"), None);
    }

    #[test]
    fn an_agent_template_carries_its_settings_in_the_plugins_vocabulary() {
        let doc = document(AGENTS);
        let template = &doc["jenkins"]["clouds"][0]["kubernetes"]["templates"][0];
        assert_eq!(template["name"], "maven");
        assert_eq!(template["label"], "maven java");
        assert_eq!(template["namespace"], "builds");
        assert_eq!(template["idleMinutes"], 5);
        assert_eq!(template["nodeSelector"], "arch=amd64,disk=ssd");
        assert_eq!(template["serviceAccount"], "builder");
        assert_eq!(template["yamlMergeStrategy"], "merge");
        let container = &template["containers"][0];
        assert_eq!(container["image"], "maven:3.9-eclipse-temurin-21");
        assert_eq!(container["command"], "sh -c");
        assert_eq!(container["args"], "\"echo ^${HOME} && sleep infinity\"");
        assert_eq!(container["ttyEnabled"], true);
        assert_eq!(container["resourceRequestCpu"], "500m");
        assert_eq!(container["resourceRequestMemory"], "1Gi");
        assert_eq!(container["resourceLimitMemory"], "2Gi");
        assert_eq!(container.get("resourceLimitCpu"), None);
        assert_eq!(container["envVars"][0]["envVar"]["key"], "MAVEN_OPTS");
        assert_eq!(container["envVars"][0]["envVar"]["value"], "-Xmx1g");
        let secret = &container["envVars"][1]["secretEnvVar"];
        assert_eq!(secret["secretName"], "creds");
        assert_eq!(secret["secretKey"], "token");
    }

    #[test]
    fn agent_pods_pass_the_restricted_pod_security_standard() {
        let doc = document(AGENTS);
        let template = &doc["jenkins"]["clouds"][0]["kubernetes"]["templates"][0];
        let yaml = template["yaml"].as_str().expect("pod yaml is a string");
        let pod: Pod = serde_saphyr::from_str(yaml).expect("the pod yaml is a Pod");
        let spec = pod.spec.expect("spec");
        let pod_security = spec.security_context.expect("pod security context");
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(pod_security.run_as_user, Some(1000));
        assert_eq!(
            pod_security.seccomp_profile.expect("seccomp").type_,
            "RuntimeDefault"
        );
        let names: Vec<_> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["jnlp", "maven"]);
        for container in &spec.containers {
            let security = container
                .security_context
                .as_ref()
                .expect("container security");
            assert_eq!(security.allow_privilege_escalation, Some(false));
            let caps = security.capabilities.as_ref().and_then(|c| c.drop.clone());
            assert_eq!(caps, Some(vec!["ALL".to_string()]));
        }
    }

    #[test]
    fn template_ids_are_stable_and_distinct() {
        let cluster = test_cluster(AGENTS);
        let id = template_id(&cluster, "maven");
        assert_eq!(id, template_id(&cluster, "maven"));
        assert_ne!(id, template_id(&cluster, "node"));
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        let doc = document(AGENTS);
        assert_eq!(
            doc["jenkins"]["clouds"][0]["kubernetes"]["templates"][0]["id"],
            id.as_str()
        );
    }

    #[test]
    fn each_environment_gets_a_deploy_template_running_as_its_account() {
        let doc = document(AGENTS);
        let template = &doc["jenkins"]["clouds"][0]["kubernetes"]["templates"][1];
        assert_eq!(template["name"], "deploy-dev");
        assert_eq!(template["label"], "deploy-dev");
        assert_eq!(template["serviceAccount"], "ci-deploy-dev");
        assert_eq!(template["namespace"], "builds");
        let container = &template["containers"][0];
        assert_eq!(container["name"], "kubectl");
        assert_eq!(container["image"], "alpine/k8s:1.33.4");
        assert_eq!(container["command"], "sleep");
        assert_eq!(container["args"], "infinity");
        assert_eq!(container["envVars"][0]["envVar"]["key"], "ENVIRONMENT");
        assert_eq!(container["envVars"][0]["envVar"]["value"], "dev");
        assert_eq!(container["envVars"][1]["envVar"]["key"], "TARGET_NAMESPACE");
        assert_eq!(container["envVars"][1]["envVar"]["value"], "app-dev");
    }

    #[test]
    fn command_items_with_spaces_or_quotes_are_quoted_for_the_plugin() {
        let items = ["a", "b c", "it's", "say \"hi\"", ""].map(String::from);
        assert_eq!(command_line(&items), "a \"b c\" \"it's\" 'say \"hi\"' \"\"");
    }
}

//! The `JenkinsCluster` custom resource: one Jenkins master and the agents it launches.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Jenkins image used when `spec.master.image` is not set: a pinned LTS tag, never `latest`.
pub const DEFAULT_JENKINS_IMAGE: &str = "jenkins/jenkins:2.541.1-lts-jdk21";

/// Size of JENKINS_HOME when neither `size` nor `existingClaim` is given.
pub const DEFAULT_HOME_SIZE: &str = "20Gi";

/// Longest JenkinsCluster name: child names append up to 12 characters (`-casc-reload`) and the
/// name is also a Service name and a label value, both limited to 63 characters.
pub const MAX_CLUSTER_NAME: usize = 40;

/// A Jenkins master with persistent storage, pinned plugins and agents that run every build in
/// its own pod. The operator creates and owns the objects that make it up in `spec.namespace`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "jenkins.ci",
    version = "v1alpha1",
    kind = "JenkinsCluster",
    shortname = "jc",
    category = "jenkins",
    doc = "A Jenkins master with persistent storage, pinned plugins and pod-per-build agents.",
    status = "JenkinsClusterStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.version"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("self.metadata.name.size() <= 40")
        .message(concat!(
            "metadata.name must be at most 40 characters: it prefixes the names of ",
            "the objects the operator creates",
        )),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS label that starts with a letter (it names a Service)")
)]
#[serde(rename_all = "camelCase")]
// `namespace` is a CEL keyword: a property of that name is `__namespace__` in a rule (a rule
// saying `self.namespace` does not compile, and the API server refuses the CRD).
#[x_kube(validation = Rule::new(concat!(
    "has(self.__namespace__) == has(oldSelf.__namespace__) && ",
    "(!has(self.__namespace__) || self.__namespace__ == oldSelf.__namespace__)"
)).message(concat!(
    "spec.namespace cannot change: JENKINS_HOME and the admin Secret live ",
    "in the old namespace; create a new JenkinsCluster instead",
)))]
pub struct JenkinsClusterSpec {
    /// Namespace the master and its objects live in. Defaults to the resource's name. Created
    /// when missing; a namespace that existed before is never deleted by the operator. Cannot
    /// change after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,

    /// The Jenkins master: image, JVM, resources and scheduling.
    #[serde(default)]
    pub master: MasterSpec,

    /// Where JENKINS_HOME is stored.
    #[serde(default)]
    pub persistence: PersistenceSpec,

    /// Plugins to install, each pinned to a version. They are merged with the plugins the
    /// operator needs (kubernetes, configuration-as-code, workflow-aggregator, git, ...); a
    /// version given here wins over the operator's. Changing this list restarts the master.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub plugins: Vec<PluginSpec>,

    /// The Jenkins administrator account the operator uses.
    #[serde(default)]
    pub admin: AdminSpec,

    /// Your own configuration-as-code (JCasC) documents, applied after the operator's.
    #[serde(default)]
    pub configuration_as_code: ConfigurationAsCodeSpec,

    /// Build agents: every build runs in its own pod, launched by the kubernetes plugin from
    /// these templates. Builds never run on the master.
    #[serde(default)]
    pub agents: AgentsSpec,

    /// Deployment targets. For each one the operator creates the target namespace, a
    /// ServiceAccount allowed to manage workloads there, and an agent template
    /// `deploy-<name>` that runs as that ServiceAccount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub environments: Vec<EnvironmentSpec>,

    /// Namespaces whose JenkinsJobs may target this cluster. Unset: only JenkinsJobs in the
    /// cluster's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_namespaces: Option<LabelSelector>,

    /// How people reach Jenkins from outside the Kubernetes cluster: an Ingress `<name>` to the
    /// Service's HTTP port, and Jenkins' own URL (links in the UI and in notifications) set to
    /// `http(s)://<host><prefix>/`. Unset: no Ingress, and Jenkins' URL is the in-cluster one.
    /// Agents and the operator keep using the in-cluster URL either way. Removing it deletes
    /// the Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
}

/// The Jenkins master container and its pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MasterSpec {
    /// Jenkins container image. Defaults to a pinned LTS release chosen by the operator.
    /// Changing it restarts the master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// CPU and memory for the Jenkins container. Defaults to requests of 1 CPU and 2Gi, and a
    /// 4Gi memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Extra JVM options (for example `-Xmx2g`), appended after the operator's own
    /// (`-Djenkins.install.runSetupWizard=false`). Changing them restarts the master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub java_opts: Option<String>,

    /// Extra environment variables for the Jenkins container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub env: Vec<EnvVar>,

    /// URL path prefix Jenkins is served under, for example `/jenkins`. Probes, the agents'
    /// Jenkins URL and the operator's API calls all use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128), regex(pattern = r"^(/[A-Za-z0-9._~-]+)+$"))]
    pub prefix: Option<String>,

    /// How long Jenkins may take to start before Kubernetes restarts it (startup probe
    /// budget). Defaults to 600 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 7200))]
    pub startup_timeout_seconds: Option<i32>,

    /// Node labels the master pod must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of the master pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity rules of the master pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Priority class of the master pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
}

/// Storage of JENKINS_HOME.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.existingClaim) && has(self.size))")
        .message(concat!(
            "set either persistence.size or persistence.existingClaim, not both: ",
            "the size of an existing claim is not ours to choose",
        )),
    validation = Rule::new("!(has(self.existingClaim) && has(self.storageClassName))")
        .message("set either persistence.storageClassName or persistence.existingClaim, not both")
)]
pub struct PersistenceSpec {
    /// Size of the PersistentVolumeClaim the operator creates (`<name>-home`). Defaults to
    /// 20Gi. Not allowed together with `existingClaim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,

    /// StorageClass of the claim the operator creates. Defaults to the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,

    /// Use this existing PersistentVolumeClaim (in the cluster's namespace) for JENKINS_HOME
    /// instead of creating one. The operator never deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub existing_claim: Option<String>,

    /// What happens to the claim the operator created when the JenkinsCluster is deleted:
    /// `Retain` (default) keeps it and the Jenkins data in it; `Delete` removes it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What happens to JENKINS_HOME when its JenkinsCluster is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the PersistentVolumeClaim and the data in it.
    #[default]
    Retain,
    /// Delete the PersistentVolumeClaim with the cluster.
    Delete,
}

/// A Jenkins plugin pinned to one version.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PluginSpec {
    /// Plugin short name, as in the Jenkins update center (for example `git`).
    #[schemars(
        length(min = 1, max = 100),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    )]
    pub name: String,

    /// Exact plugin version (for example `5.7.0`). `latest` and `experimental` are refused:
    /// every plugin is pinned so that a restart installs the same set.
    #[schemars(
        length(min = 1, max = 100),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    )]
    #[x_kube(validation = Rule::new("self != 'latest' && self != 'experimental'")
        .message("pin an exact plugin version; latest and experimental are not allowed"))]
    pub version: String,
}

/// The administrator account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdminSpec {
    /// Name of a Secret in the cluster's namespace holding `username` and `password` keys for
    /// the Jenkins administrator. When unset, the operator creates `<name>-admin` once with a
    /// random password and never changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub existing_secret: Option<String>,
}

/// Your own Jenkins configuration-as-code.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationAsCodeSpec {
    /// ConfigMaps in the cluster's namespace whose YAML keys are JCasC documents, applied after
    /// the operator's configuration: a value set in both wins here, lists (clouds, users) are
    /// appended to the operator's. Changes are hot-reloaded without restarting Jenkins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[schemars(inner(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    ))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub config_maps: Vec<String>,
}

/// How agents are launched.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentsSpec {
    /// How agents connect back to the master: `tcp` (default; the inbound agent port 50000
    /// through the Service) or `websocket` (over the HTTP port only: Jenkins closes its TCP
    /// agent port and neither the master pod nor the Service exposes 50000). Changing it
    /// restarts the master, whose declared ports change.
    #[serde(default)]
    pub connection: AgentConnection,

    /// Namespace agent pods run in. Defaults to the cluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,

    /// Most agent pods that may run at once. Defaults to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub container_cap: Option<i32>,

    /// Agent pod templates. Pipelines pick one with `agent { label '<label>' }`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("self.all(t, self.exists_one(u, u.label == t.label))")
            .message("each agent template needs its own label: two templates share a label")
    )]
    pub templates: Vec<AgentTemplate>,
}

/// How agents reach the master.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AgentConnection {
    /// Inbound TCP agent protocol on port 50000.
    #[default]
    Tcp,
    /// WebSocket over the HTTP port; port 50000 is closed.
    Websocket,
}

/// One kind of agent pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentTemplate {
    /// Template name, unique in the cluster. `deploy-` is reserved for environments.
    #[schemars(
        length(min = 1, max = 50),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("!self.startsWith('deploy-')")
        .message("template names starting with deploy- are reserved for environments"))]
    pub name: String,

    /// Jenkins label(s) of the template, separated by spaces. Pipelines select the template
    /// with `agent { label '...' }`. Must differ from every other template's label.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z0-9_.-]+( [A-Za-z0-9_.-]+)*$")
    )]
    pub label: String,

    /// Containers of the agent pod, besides the `jnlp` container the kubernetes plugin adds.
    /// Steps run in them with `container('<name>') { ... }`.
    #[schemars(length(min = 1, max = 10))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub containers: Vec<AgentContainer>,

    /// Minutes an idle agent pod is kept for reuse. 0 (default) deletes it after each build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1440))]
    pub idle_minutes: Option<i32>,

    /// Node labels the agent pods must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// ServiceAccount the agent pods run as, in the agent namespace. Defaults to the
    /// namespace's `default` ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub service_account: Option<String>,
}

/// A container of an agent pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentContainer {
    /// Container name. `jnlp` is reserved for the agent's own container.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("self != 'jnlp'")
        .message("the container name jnlp is reserved for the Jenkins agent"))]
    pub name: String,

    /// Container image, for example `maven:3.9-eclipse-temurin-21`.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// Entrypoint. Tool containers must keep running while steps exec into them: when both
    /// `command` and `args` are empty the operator uses `sleep infinity`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub command: Vec<String>,

    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub args: Vec<String>,

    /// Environment variables of the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub env: Vec<EnvVar>,

    /// CPU and memory requests and limits: each build is isolated by them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// A deployment target of pipelines.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSpec {
    /// Environment name, for example `dev` or `prod`. Names the agent template `deploy-<name>`.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Namespace the environment deploys to. Created when missing, never deleted.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,

    /// Image of the `kubectl` container in the `deploy-<name>` agent, which needs a shell and
    /// kubectl. Defaults to a pinned `alpine/k8s` release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
}

/// The annotation older ingress controllers read the class from; the API server refuses an
/// Ingress that sets it together with `spec.ingressClassName`.
pub const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Most annotations `ingress.annotations` may hold.
pub const MAX_INGRESS_ANNOTATIONS: usize = 50;

/// A lowercase DNS name (RFC 1123 subdomain) of labels of at most 63 characters; no wildcard.
pub const INGRESS_HOST_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$";

// NB: the operator, not a CEL rule, refuses `ingressClassName` together with the annotation
// `kubernetes.io/ingress.class`: the emulator's CEL library (kube-cel 0.6.1) escapes the keys of
// maps like property names, so a rule testing for that key cannot be tested there (README,
// Known limits).
/// External access to Jenkins through an Ingress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name people reach Jenkins at, for example `jenkins.example.com`: a lowercase DNS
    /// name, without wildcard, port or trailing dot, and not an IP address (an Ingress cannot
    /// route by IP). It becomes Jenkins' URL.
    #[schemars(length(min = 1, max = 253), regex(pattern = INGRESS_HOST_PATTERN))]
    // A dotted quad is also a DNS name; Kubernetes' IP library tells them apart.
    #[x_kube(validation = Rule::new("!isIP(self)").message(concat!(
        "ingress.host must be a DNS name, not an IP address: ",
        "an Ingress routes by host name",
    )))]
    pub host: String,

    /// IngressClass that serves the Ingress. Unset: the cluster's default IngressClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub ingress_class_name: Option<String>,

    /// Serve Jenkins over HTTPS: the Ingress terminates TLS for `host` and Jenkins' URL starts
    /// with `https://`. `tls: {}` uses the ingress controller's default certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTlsSpec>,

    /// Annotations of the Ingress, for the ingress controller or cert-manager (for example
    /// `nginx.ingress.kubernetes.io/proxy-body-size: 50m`). Keys under `jenkins.ci/` are the
    /// operator's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = MAX_INGRESS_ANNOTATIONS))]
    pub annotations: BTreeMap<String, String>,
}

/// TLS of the Ingress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngressTlsSpec {
    /// Secret of type `kubernetes.io/tls` in the cluster's namespace with the certificate for
    /// `host` (yours, or the one cert-manager creates from an annotation). Unset: the ingress
    /// controller's default certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: Option<String>,
}

/// What the operator observed of the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JenkinsClusterStatus {
    /// `Ready`, `Reconciling` and `Stalled` conditions (kstatus conventions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// URL of Jenkins inside the Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Jenkins version, as Jenkins reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// Secret in the cluster's namespace with the administrator's `username` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_secret: Option<String>,

    /// The namespace the operator installed Jenkins in. A spec that names another one is
    /// refused, so that an installation is never left behind half-moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

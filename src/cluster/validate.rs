//! Validation of a JenkinsCluster spec before anything is built.
//!
//! The CRD schema rejects most bad input at `kubectl apply` time. This module checks it again,
//! because `render` and clusters stored under an older schema never went through it, and adds
//! what a schema cannot express: quantities that parse, unique plugins, template names and
//! labels, environment namespaces kept apart from Jenkins' own. Every problem names the field
//! (`spec.plugins[3].name`) and says what to change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::deployment::RESERVED_ENV;
use super::environments::deploy_template_name;
use super::{agent_namespace, cluster_namespace};
use crate::api::JenkinsCluster;
use crate::api::cluster::{
    AgentTemplate, INGRESS_CLASS_ANNOTATION, MAX_CLUSTER_NAME, MAX_INGRESS_ANNOTATIONS,
};

/// One thing wrong with a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Path of the offending field, for example `spec.plugins[3].name`.
    pub path: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A spec the operator cannot build, with every problem found (not just the first).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidSpec {
    /// The problems, in the order of the spec's fields.
    pub problems: Vec<Problem>,
}

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.problems.iter().map(Problem::to_string).collect();
        write!(f, "invalid JenkinsCluster: {}", all.join("; "))
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn dns_label(&mut self, path: &str, value: &str, max: usize) {
        if !is_dns_label(value, max) {
            self.add(
                path,
                format!(
                    "{value:?} is not a valid name: use at most {max} lowercase letters, digits \
                     and '-', starting and ending with a letter or digit"
                ),
            );
        }
    }

    fn dns_subdomain(&mut self, path: &str, value: &str) {
        if !is_dns_subdomain(value) {
            self.add(
                path,
                format!(
                    "{value:?} is not a valid object name: use at most 253 lowercase letters, \
                     digits, '-' and '.'"
                ),
            );
        }
    }

    fn max_items(&mut self, path: &str, len: usize, max: usize) {
        if len > max {
            self.add(
                path,
                format!("has {len} entries; at most {max} are allowed"),
            );
        }
    }

    fn range(&mut self, path: &str, value: Option<i32>, min: i32, max: i32) {
        if let Some(v) = value.filter(|v| !(min..=max).contains(v)) {
            self.add(path, format!("{v} is out of range: use {min} to {max}"));
        }
    }
}

/// Checks a JenkinsCluster; `Err` lists every problem found.
pub fn validate(cluster: &JenkinsCluster) -> Result<(), InvalidSpec> {
    let mut p = Problems::default();
    check_name(&mut p, cluster);
    let spec = &cluster.spec;
    if let Some(ns) = &spec.namespace {
        p.dns_label("spec.namespace", ns, 63);
        check_not_system("spec.namespace", ns, &mut p);
    }
    if let Some(ns) = &spec.agents.namespace {
        check_not_system("spec.agents.namespace", ns, &mut p);
    }
    check_master(&mut p, cluster);
    check_persistence(&mut p, cluster);
    check_plugins(&mut p, cluster);
    if let Some(secret) = &spec.admin.existing_secret {
        p.dns_subdomain("spec.admin.existingSecret", secret);
    }
    check_casc(&mut p, cluster);
    check_agents(&mut p, cluster);
    check_environments(&mut p, cluster);
    check_ingress(&mut p, cluster);
    if p.0.is_empty() {
        Ok(())
    } else {
        Err(InvalidSpec { problems: p.0 })
    }
}

/// Jenkins, and the pods it may create and exec into, never go into Kubernetes' own namespaces.
fn check_not_system(path: &str, namespace: &str, p: &mut Problems) {
    if namespace.starts_with("kube-") {
        p.add(
            path,
            format!(
                "{namespace} is a Kubernetes system namespace: Jenkins and its agents get rights \
                 to create and exec into pods there; choose a namespace of their own"
            ),
        );
    }
}

fn check_name(p: &mut Problems, cluster: &JenkinsCluster) {
    let Some(name) = cluster.metadata.name.as_deref() else {
        p.add("metadata.name", "is missing: name the JenkinsCluster");
        return;
    };
    if name.len() > MAX_CLUSTER_NAME {
        p.add(
            "metadata.name",
            format!(
                "{name:?} has {} characters; at most {MAX_CLUSTER_NAME} are allowed because it \
                 prefixes the names of the objects the operator creates",
                name.len()
            ),
        );
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) || !is_dns_label(name, 63) {
        p.add(
            "metadata.name",
            format!(
                "{name:?} must be lowercase letters, digits and '-', start with a letter and end \
                 with a letter or digit (it names a Service)"
            ),
        );
    }
}

fn check_master(p: &mut Problems, cluster: &JenkinsCluster) {
    let master = &cluster.spec.master;
    if let Some(image) = &master.image {
        check_image(p, "spec.master.image", image);
    }
    if let Some(resources) = &master.resources {
        check_resources(p, "spec.master.resources", resources, None);
    }
    if let Some(opts) = &master.java_opts
        && opts.len() > 4096
    {
        p.add("spec.master.javaOpts", "is longer than 4096 characters");
    }
    check_env(p, "spec.master.env", &master.env, 100);
    for (i, var) in master.env.iter().enumerate() {
        if RESERVED_ENV.contains(&var.name.as_str()) {
            p.add(
                format!("spec.master.env[{i}].name"),
                format!(
                    "{} is set by the operator; use spec.master.javaOpts for JVM options or \
                     choose another name",
                    var.name
                ),
            );
        }
    }
    if let Some(prefix) = &master.prefix
        && !is_prefix(prefix)
    {
        p.add(
            "spec.master.prefix",
            format!(
                "{prefix:?} must be a path such as /jenkins: segments of letters, digits, \
                 '.', '_', '~' and '-', each after a '/', no trailing '/', at most 128 characters"
            ),
        );
    }
    p.range(
        "spec.master.startupTimeoutSeconds",
        master.startup_timeout_seconds,
        60,
        7200,
    );
    check_node_selector(p, "spec.master.nodeSelector", &master.node_selector);
    if let Some(class) = &master.priority_class_name {
        p.dns_subdomain("spec.master.priorityClassName", class);
    }
}

/// The smallest JENKINS_HOME accepted: Jenkins with its plugins alone needs several hundred MiB.
const MIN_HOME_BYTES: f64 = 1024.0 * 1024.0 * 1024.0;

fn check_persistence(p: &mut Problems, cluster: &JenkinsCluster) {
    let persistence = &cluster.spec.persistence;
    if let Some(size) = &persistence.size {
        match parse_quantity(size) {
            // A unit-less number is bytes: `size: 20` is 20 bytes, never what was meant.
            Some(v) if v >= MIN_HOME_BYTES => {}
            Some(v) => p.add(
                "spec.persistence.size",
                format!(
                    "{:?} is {v} bytes; JENKINS_HOME needs at least 1Gi: write a size with a \
                     unit, such as 20Gi",
                    size.0
                ),
            ),
            None => p.add(
                "spec.persistence.size",
                format!(
                    "{:?} is not a Kubernetes quantity; write a size such as 20Gi",
                    size.0
                ),
            ),
        }
    }
    if let Some(claim) = &persistence.existing_claim {
        p.dns_subdomain("spec.persistence.existingClaim", claim);
        if persistence.size.is_some() {
            p.add(
                "spec.persistence.existingClaim",
                "is set together with spec.persistence.size: remove size, the size of an \
                 existing claim is not the operator's to choose",
            );
        }
        if persistence.storage_class_name.is_some() {
            p.add(
                "spec.persistence.existingClaim",
                "is set together with spec.persistence.storageClassName: remove \
                 storageClassName, the existing claim already has its class",
            );
        }
    }
    if let Some(class) = &persistence.storage_class_name {
        p.dns_subdomain("spec.persistence.storageClassName", class);
    }
}

fn check_plugins(p: &mut Problems, cluster: &JenkinsCluster) {
    let plugins = &cluster.spec.plugins;
    p.max_items("spec.plugins", plugins.len(), 500);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, plugin) in plugins.iter().enumerate() {
        if !is_plugin_token(&plugin.name) {
            p.add(
                format!("spec.plugins[{i}].name"),
                format!(
                    "{:?} is not a plugin short name (letters, digits, '_', '.', '-'), e.g. git",
                    plugin.name
                ),
            );
        }
        if plugin.version == "latest" || plugin.version == "experimental" {
            p.add(
                format!("spec.plugins[{i}].version"),
                format!(
                    "{} is not a version: pin an exact version so every restart installs the \
                     same plugins",
                    plugin.version
                ),
            );
        } else if !is_plugin_token(&plugin.version) || plugin.version.contains('/') {
            p.add(
                format!("spec.plugins[{i}].version"),
                format!("{:?} is not a plugin version, e.g. 5.7.0", plugin.version),
            );
        }
        if let Some(first) = seen.insert(&plugin.name, i) {
            p.add(
                format!("spec.plugins[{i}].name"),
                format!(
                    "plugin {} is already listed at spec.plugins[{first}]: keep one entry",
                    plugin.name
                ),
            );
        }
    }
}

fn check_casc(p: &mut Problems, cluster: &JenkinsCluster) {
    let maps = &cluster.spec.configuration_as_code.config_maps;
    p.max_items("spec.configurationAsCode.configMaps", maps.len(), 20);
    let mut seen = BTreeSet::new();
    for (i, name) in maps.iter().enumerate() {
        let path = format!("spec.configurationAsCode.configMaps[{i}]");
        p.dns_subdomain(&path, name);
        if !seen.insert(name) {
            p.add(path, format!("ConfigMap {name} is listed twice"));
        }
    }
}

fn check_agents(p: &mut Problems, cluster: &JenkinsCluster) {
    let agents = &cluster.spec.agents;
    if let Some(ns) = &agents.namespace {
        p.dns_label("spec.agents.namespace", ns, 63);
    }
    p.range("spec.agents.containerCap", agents.container_cap, 1, 10000);
    p.max_items("spec.agents.templates", agents.templates.len(), 50);

    let deploy_labels: BTreeSet<String> = cluster
        .spec
        .environments
        .iter()
        .map(deploy_template_name)
        .collect();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut label_owners: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, template) in agents.templates.iter().enumerate() {
        let path = format!("spec.agents.templates[{i}]");
        check_template(p, &path, template);
        if let Some(first) = names.insert(&template.name, i) {
            p.add(
                format!("{path}.name"),
                format!(
                    "template {} is already defined at spec.agents.templates[{first}]",
                    template.name
                ),
            );
        }
        for label in template.label.split_whitespace() {
            if let Some(&first) = label_owners.get(label).filter(|&&first| first != i) {
                p.add(
                    format!("{path}.label"),
                    format!(
                        "label {label} is also a label of spec.agents.templates[{first}]: each \
                         template needs its own labels, or Jenkins picks either"
                    ),
                );
            }
            label_owners.entry(label).or_insert(i);
            if deploy_labels.contains(label) {
                p.add(
                    format!("{path}.label"),
                    format!(
                        "label {label} is the label of environment {}'s deploy agent; choose \
                         another",
                        label.trim_start_matches("deploy-")
                    ),
                );
            }
        }
    }
}

fn check_template(p: &mut Problems, path: &str, template: &AgentTemplate) {
    p.dns_label(&format!("{path}.name"), &template.name, 50);
    if template.name.starts_with("deploy-") {
        p.add(
            format!("{path}.name"),
            "names starting with deploy- are reserved for the agents of spec.environments",
        );
    }
    if !is_template_label(&template.label) {
        p.add(
            format!("{path}.label"),
            format!(
                "{:?} must be labels of letters, digits, '_', '.' and '-' separated by single \
                 spaces, at most 63 characters",
                template.label
            ),
        );
    }
    p.range(
        &format!("{path}.idleMinutes"),
        template.idle_minutes,
        0,
        1440,
    );
    check_node_selector(p, &format!("{path}.nodeSelector"), &template.node_selector);
    if let Some(account) = &template.service_account {
        p.dns_subdomain(&format!("{path}.serviceAccount"), account);
    }
    if template.containers.is_empty() {
        p.add(format!("{path}.containers"), "needs at least one container");
    }
    p.max_items(&format!("{path}.containers"), template.containers.len(), 10);
    let mut names = BTreeSet::new();
    for (j, container) in template.containers.iter().enumerate() {
        let path = format!("{path}.containers[{j}]");
        p.dns_label(&format!("{path}.name"), &container.name, 63);
        if container.name == "jnlp" {
            p.add(
                format!("{path}.name"),
                "jnlp is the agent's own container; choose another name",
            );
        }
        if !names.insert(&container.name) {
            p.add(
                format!("{path}.name"),
                format!(
                    "container {} is defined twice in this template",
                    container.name
                ),
            );
        }
        check_image(p, &format!("{path}.image"), &container.image);
        p.max_items(&format!("{path}.command"), container.command.len(), 20);
        p.max_items(&format!("{path}.args"), container.args.len(), 50);
        let items = (container.command.iter().map(|c| ("command", c)))
            .chain(container.args.iter().map(|a| ("args", a)));
        for (field, item) in items {
            if item.contains('\n') || (item.contains('"') && item.contains('\'')) {
                p.add(
                    format!("{path}.{field}"),
                    format!(
                        "{item:?} cannot be passed to the kubernetes plugin, which takes one \
                         line and quotes with either ' or \": use a script file or `sh -c`"
                    ),
                );
            }
        }
        check_env(p, &format!("{path}.env"), &container.env, 100);
        for (k, var) in container.env.iter().enumerate() {
            let source = var.value_from.as_ref();
            if source.is_some_and(|s| s.secret_key_ref.is_none()) {
                p.add(
                    format!("{path}.env[{k}].valueFrom"),
                    "agent containers take plain values or secretKeyRef only",
                );
            }
        }
        if let Some(resources) = &container.resources {
            let allowed = ["cpu", "memory", "ephemeral-storage"];
            check_resources(p, &format!("{path}.resources"), resources, Some(&allowed));
        }
    }
}

fn check_environments(p: &mut Problems, cluster: &JenkinsCluster) {
    let envs = &cluster.spec.environments;
    p.max_items("spec.environments", envs.len(), 20);
    let own = cluster_namespace(cluster);
    let agents = agent_namespace(cluster);
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut namespaces: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, env) in envs.iter().enumerate() {
        let path = format!("spec.environments[{i}]");
        p.dns_label(&format!("{path}.name"), &env.name, 40);
        p.dns_label(&format!("{path}.namespace"), &env.namespace, 63);
        if let Some(first) = names.insert(&env.name, i) {
            p.add(
                format!("{path}.name"),
                format!(
                    "environment {} is already defined at spec.environments[{first}]",
                    env.name
                ),
            );
        }
        if let Some(first) = namespaces.insert(&env.namespace, i) {
            p.add(
                format!("{path}.namespace"),
                format!(
                    "namespace {} is already the target of spec.environments[{first}]: give \
                     each environment its own namespace",
                    env.namespace
                ),
            );
        }
        // Deploy agents get `edit` in their namespace: there, that would reach the admin
        // Secret, the master's Deployment or other builds' pods.
        if env.namespace == own || env.namespace == agents {
            p.add(
                format!("{path}.namespace"),
                format!(
                    "{} is where Jenkins or its agents run; deploy to a namespace of its own",
                    env.namespace
                ),
            );
        }
        if env.namespace == "default" || env.namespace.starts_with("kube-") {
            p.add(
                format!("{path}.namespace"),
                format!(
                    "{} is a system namespace; deploy to a namespace of its own",
                    env.namespace
                ),
            );
        }
        if let Some(image) = &env.image {
            check_image(p, &format!("{path}.image"), image);
        }
    }
}

/// The most bytes the API server accepts in all annotations of one object, keys included.
const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

fn check_ingress(p: &mut Problems, cluster: &JenkinsCluster) {
    let Some(ingress) = &cluster.spec.ingress else {
        return;
    };
    let host = &ingress.host;
    if host.starts_with("*.") {
        p.add(
            "spec.ingress.host",
            format!(
                "{host:?} is a wildcard: Jenkins needs one host name for its URL; name it, \
                 e.g. jenkins.example.com"
            ),
        );
    } else if !is_ingress_host(host) {
        p.add(
            "spec.ingress.host",
            format!(
                "{host:?} is not a host name an Ingress can route: use a lowercase DNS name \
                 such as jenkins.example.com (no IP address, port, scheme or trailing dot)"
            ),
        );
    }
    if let Some(class) = &ingress.ingress_class_name {
        p.dns_subdomain("spec.ingress.ingressClassName", class);
        if ingress.annotations.contains_key(INGRESS_CLASS_ANNOTATION) {
            p.add(
                "spec.ingress.ingressClassName",
                format!(
                    "is set together with the annotation {INGRESS_CLASS_ANNOTATION}, which the \
                     API server refuses: keep one"
                ),
            );
        }
    }
    if let Some(secret) = ingress.tls.as_ref().and_then(|t| t.secret_name.as_ref()) {
        p.dns_subdomain("spec.ingress.tls.secretName", secret);
    }
    let annotations = &ingress.annotations;
    p.max_items(
        "spec.ingress.annotations",
        annotations.len(),
        MAX_INGRESS_ANNOTATIONS,
    );
    for key in annotations.keys() {
        let path = format!("spec.ingress.annotations.{key}");
        if !is_label_key(key) {
            p.add(
                path,
                format!(
                    "{key:?} is not a valid annotation key: an optional DNS prefix and '/', then \
                     at most 63 letters, digits, '-', '_' and '.'"
                ),
            );
        } else if key.starts_with("jenkins.ci/") {
            p.add(
                path,
                "keys under jenkins.ci/ are the operator's own; choose another prefix",
            );
        }
    }
    let bytes: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_ANNOTATION_BYTES {
        p.add(
            "spec.ingress.annotations",
            format!("hold {bytes} bytes; the API server accepts at most 256 KiB"),
        );
    }
}

fn check_image(p: &mut Problems, path: &str, image: &str) {
    if image.is_empty() || image.len() > 512 || image.chars().any(char::is_whitespace) {
        p.add(
            path,
            format!("{image:?} is not an image reference, e.g. maven:3.9"),
        );
    }
}

fn check_env(p: &mut Problems, path: &str, env: &[EnvVar], max: usize) {
    p.max_items(path, env.len(), max);
    let mut seen = BTreeSet::new();
    for (i, var) in env.iter().enumerate() {
        if var.name.is_empty() || var.name.contains('=') {
            p.add(
                format!("{path}[{i}].name"),
                "must be non-empty and contain no '='",
            );
        }
        if !seen.insert(&var.name) {
            p.add(
                format!("{path}[{i}].name"),
                format!("{} is set twice; keep one", var.name),
            );
        }
    }
}

fn check_resources(
    p: &mut Problems,
    path: &str,
    resources: &ResourceRequirements,
    allowed: Option<&[&str]>,
) {
    let mut parsed: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for (kind, map) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        for (name, quantity) in map.iter().flatten() {
            let field = format!("{path}.{kind}.{name}");
            if let Some(allowed) = allowed
                && !allowed.contains(&name.as_str())
            {
                p.add(
                    &field,
                    format!("only {} can be set here", allowed.join(", ")),
                );
                continue;
            }
            match parse_quantity(quantity) {
                Some(v) if v >= 0.0 => {
                    parsed.insert((kind, name), v);
                }
                Some(_) => p.add(field, "must not be negative"),
                None => p.add(
                    field,
                    format!(
                        "{:?} is not a Kubernetes quantity, e.g. 500m or 2Gi",
                        quantity.0
                    ),
                ),
            }
        }
    }
    for (&(kind, name), request) in &parsed {
        if kind == "requests"
            && let Some(limit) = parsed.get(&("limits", name))
            && request > limit
        {
            p.add(
                format!("{path}.requests.{name}"),
                format!("is more than the limit {path}.limits.{name}; raise the limit"),
            );
        }
    }
}

fn check_node_selector(p: &mut Problems, path: &str, selector: &BTreeMap<String, String>) {
    for (key, value) in selector {
        if !is_label_key(key) {
            p.add(format!("{path}.{key}"), "is not a valid label key");
        }
        if !(value.is_empty() || is_label_name(value)) {
            p.add(
                format!("{path}.{key}"),
                format!("{value:?} is not a valid label value"),
            );
        }
    }
}

/// The value of a Kubernetes quantity (`<number><suffix>`: binary `Ki`..`Ei`, decimal
/// `n u m k M G T P E`, or an exponent `e3`), or `None` when it does not parse.
pub fn parse_quantity(quantity: &Quantity) -> Option<f64> {
    let s = quantity.0.as_str();
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let digits_ok = match number.split_once('.') {
        None => !number.is_empty(),
        Some((int, frac)) => (!int.is_empty() || !frac.is_empty()) && !frac.contains('.'),
    };
    if !digits_ok {
        return None;
    }
    let mut value: f64 = number.parse().ok()?;
    if s.starts_with('-') {
        value = -value;
    }
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            10f64.powi(digits.parse().ok()?)
        }
    };
    Some(value * factor)
}

/// RFC 1123 label of at most `max` characters.
pub fn is_dns_label(s: &str, max: usize) -> bool {
    let bytes = s.as_bytes();
    !s.is_empty()
        && s.len() <= max.min(63)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(|label| is_dns_label(label, 63))
}

/// A label value (or the name part of a label key): at most 63 alphanumerics, '-', '_', '.',
/// starting and ending with an alphanumeric.
pub fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    !s.is_empty()
        && s.len() <= 63
        && bytes.iter().all(inner)
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

/// A host an Ingress rule can name and Jenkins' URL can carry: a DNS subdomain that is not an
/// IP address, no wildcard.
pub fn is_ingress_host(s: &str) -> bool {
    is_dns_subdomain(s) && s.parse::<std::net::IpAddr>().is_err()
}

fn is_plugin_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-+".contains(c))
}

fn is_template_label(s: &str) -> bool {
    s.len() <= 63
        && !s.is_empty()
        && s.split(' ').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        })
}

fn is_prefix(s: &str) -> bool {
    s.len() <= 128
        && s.starts_with('/')
        && s[1..].split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_cluster;

    fn problems(yaml: &str) -> Vec<String> {
        match validate(&test_cluster(yaml)) {
            Ok(()) => Vec::new(),
            Err(invalid) => invalid.problems.iter().map(Problem::to_string).collect(),
        }
    }

    fn paths(yaml: &str) -> Vec<String> {
        match validate(&test_cluster(yaml)) {
            Ok(()) => Vec::new(),
            Err(invalid) => invalid.problems.into_iter().map(|p| p.path).collect(),
        }
    }

    #[test]
    fn jenkins_and_its_agents_stay_out_of_kubernetes_system_namespaces() {
        let yaml = "metadata: {name: ci}\nspec: {namespace: kube-system, agents: \
                    {namespace: kube-public}}\n";
        assert_eq!(paths(yaml), ["spec.namespace", "spec.agents.namespace"]);
    }

    #[test]
    fn a_size_without_a_unit_is_refused_as_bytes() {
        let found = problems("metadata: {name: ci}\nspec: {persistence: {size: 20}}\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("20 bytes") && found[0].contains("20Gi"),
            "{found:?}"
        );
        assert!(problems("metadata: {name: ci}\nspec: {persistence: {size: 1Gi}}\n").is_empty());
    }

    #[test]
    fn a_minimal_cluster_is_valid() {
        assert_eq!(
            problems("metadata: {name: ci}\nspec: {}\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_name_too_long_is_refused_with_its_length() {
        let name = "a".repeat(41);
        let found = problems(&format!("metadata: {{name: {name}}}\nspec: {{}}\n"));
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("metadata.name: "), "{found:?}");
        assert!(found[0].contains("41 characters; at most 40"), "{found:?}");
    }

    #[test]
    fn a_name_must_be_a_dns_label_starting_with_a_letter() {
        assert_eq!(
            paths("metadata: {name: 1ci}\nspec: {}\n"),
            ["metadata.name"]
        );
        assert_eq!(paths("metadata: {name: Ci}\nspec: {}\n"), ["metadata.name"]);
        assert_eq!(paths("metadata: {}\nspec: {}\n"), ["metadata.name"]);
    }

    #[test]
    fn duplicate_plugins_are_refused_at_the_second_entry() {
        let found = problems(
            "metadata: {name: ci}\nspec:\n  plugins:\n\
             \x20 - {name: git, version: 5.7.0}\n\
             \x20 - {name: timestamper, version: '1.30'}\n\
             \x20 - {name: git, version: 5.8.0}\n",
        );
        assert_eq!(
            found,
            [
                "spec.plugins[2].name: plugin git is already listed at spec.plugins[0]: keep one \
              entry"
            ]
        );
    }

    #[test]
    fn unpinned_plugin_versions_are_refused() {
        let found =
            paths("metadata: {name: ci}\nspec: {plugins: [{name: git, version: latest}]}\n");
        assert_eq!(found, ["spec.plugins[0].version"]);
    }

    #[test]
    fn an_existing_claim_with_a_size_is_refused() {
        let found = problems(
            "metadata: {name: ci}\nspec: {persistence: {existingClaim: data, size: 10Gi}}\n",
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("spec.persistence.existingClaim: is set together with"));
        assert!(found[0].contains("remove size"));
    }

    #[test]
    fn sizes_and_resources_must_be_quantities() {
        let found = paths(
            "metadata: {name: ci}\nspec:\n  persistence: {size: banana}\n  master:\n\
             \x20   resources: {requests: {cpu: lots, memory: 2Gi}, limits: {memory: 1Gi}}\n",
        );
        assert_eq!(
            found,
            [
                "spec.master.resources.requests.cpu",
                "spec.master.resources.requests.memory",
                "spec.persistence.size",
            ]
        );
    }

    #[test]
    fn duplicate_template_names_and_shared_labels_are_refused() {
        let found = problems(
            "metadata: {name: ci}\nspec:\n  agents:\n    templates:\n\
             \x20     - {name: maven, label: java maven, containers: [{name: m, image: maven}]}\n\
             \x20     - {name: gradle, label: java, containers: [{name: g, image: gradle}]}\n\
             \x20     - {name: maven, label: mvn, containers: [{name: m, image: maven}]}\n",
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("spec.agents.templates[1].label: label java is also"));
        assert!(found[1].starts_with("spec.agents.templates[2].name: template maven is already"));
    }

    #[test]
    fn reserved_template_and_container_names_are_refused() {
        let found = paths(
            "metadata: {name: ci}\nspec:\n  agents:\n    templates:\n\
             \x20     - {name: deploy-x, label: x, containers: [{name: jnlp, image: a}]}\n",
        );
        assert_eq!(
            found,
            [
                "spec.agents.templates[0].name",
                "spec.agents.templates[0].containers[0].name"
            ]
        );
    }

    #[test]
    fn environments_need_their_own_unique_namespaces() {
        let found = paths(
            "metadata: {name: ci}\nspec:\n  namespace: tools\n  environments:\n\
             \x20 - {name: dev, namespace: tools}\n\
             \x20 - {name: dev, namespace: app}\n\
             \x20 - {name: prod, namespace: app}\n\
             \x20 - {name: sys, namespace: kube-system}\n",
        );
        assert_eq!(
            found,
            [
                "spec.environments[0].namespace",
                "spec.environments[1].name",
                "spec.environments[2].namespace",
                "spec.environments[3].namespace",
            ]
        );
    }

    #[test]
    fn the_operators_own_variables_cannot_be_overridden() {
        let found =
            paths("metadata: {name: ci}\nspec: {master: {env: [{name: JAVA_OPTS, value: x}]}}\n");
        assert_eq!(found, ["spec.master.env[0].name"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let found = paths(
            "metadata: {name: ci}\nspec:\n  namespace: Bad_NS\n  master: {prefix: jenkins/}\n\
             \x20 agents: {containerCap: 0}\n",
        );
        assert_eq!(
            found,
            [
                "spec.namespace",
                "spec.master.prefix",
                "spec.agents.containerCap"
            ]
        );
    }

    #[test]
    fn an_ingress_host_must_be_a_dns_name() {
        let host = |h: &str| {
            paths(&format!(
                "metadata: {{name: ci}}\nspec: {{ingress: {{host: '{h}'}}}}\n"
            ))
        };
        for good in ["jenkins.example.com", "jenkins", "ci-1.example.io"] {
            assert_eq!(host(good), Vec::<String>::new(), "{good}");
        }
        for bad in [
            "*.example.com",
            "10.0.0.1",
            "Jenkins.example.com",
            "jenkins.example.com.",
            "jenkins.example.com:443",
            "https://jenkins.example.com",
            "",
        ] {
            assert_eq!(host(bad), ["spec.ingress.host"], "{bad}");
        }
        let found = problems("metadata: {name: ci}\nspec: {ingress: {host: '*.example.com'}}\n");
        assert!(found[0].contains("wildcard"), "{found:?}");
    }

    #[test]
    fn ingress_annotations_are_checked_and_the_operators_own_refused() {
        let found = paths(
            "metadata: {name: ci}\nspec:\n  ingress:\n    host: ci.example.com\n\
             \x20   ingressClassName: nginx\n    tls: {secretName: Bad_Secret}\n\
             \x20   annotations:\n      kubernetes.io/ingress.class: nginx\n\
             \x20     jenkins.ci/applied-hash: x\n      'bad key': x\n",
        );
        assert_eq!(
            found,
            [
                "spec.ingress.ingressClassName",
                "spec.ingress.tls.secretName",
                "spec.ingress.annotations.bad key",
                "spec.ingress.annotations.jenkins.ci/applied-hash",
            ]
        );
    }

    #[test]
    fn quantities_follow_the_kubernetes_grammar() {
        let q = |s: &str| parse_quantity(&Quantity(s.into()));
        assert_eq!(q("500m"), Some(0.5));
        assert_eq!(q("2Gi"), Some(2.0 * 1024f64.powi(3)));
        assert_eq!(q("1.5"), Some(1.5));
        assert_eq!(q(".5k"), Some(500.0));
        assert_eq!(q("1e3"), Some(1000.0));
        assert_eq!(q("-1"), Some(-1.0));
        for bad in ["", "Gi", "1.2.3", "1Gb", "1 Gi", "banana", "1e", "."] {
            assert_eq!(q(bad), None, "{bad:?}");
        }
    }
}

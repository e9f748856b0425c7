//! The resource kinds the emulator serves: built-in ones and those registered by CRDs.

use std::sync::Arc;

use serde_json::Value;

use crate::cel_rules::Rules;

/// One served resource (a plural under a group), with what the server needs to know about it.
#[derive(Clone, Debug)]
pub struct ResourceKind {
    pub group: String,
    /// Served versions; the first one is the storage version.
    pub versions: Vec<String>,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub status_subresource: bool,
    /// Whether the server maintains `metadata.generation` for this kind.
    pub generation: bool,
    /// Custom resources carry their CRD's `openAPIV3Schema` (of the storage version), shared:
    /// every request clones its kind.
    pub schema: Option<Arc<Value>>,
    /// The schema writes are validated against ([`crate::validation::root_schema`]).
    pub root_schema: Option<Arc<Value>>,
    /// The schema's compiled `x-kubernetes-validations` rules.
    pub rules: Option<Arc<Rules>>,
    pub short_names: Vec<String>,
}

impl ResourceKind {
    pub fn is_custom(&self) -> bool {
        self.schema.is_some()
    }

    /// `apiVersion` for a version of this kind.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn storage_version(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }
}

fn builtin(
    group: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    status_subresource: bool,
    generation: bool,
) -> ResourceKind {
    ResourceKind {
        group: group.to_string(),
        versions: vec!["v1".to_string()],
        kind: kind.to_string(),
        plural: plural.to_string(),
        singular: kind.to_lowercase(),
        namespaced,
        status_subresource,
        generation,
        schema: None,
        root_schema: None,
        rules: None,
        short_names: Vec::new(),
    }
}

/// The built-in kinds, served from the start.
pub fn builtins() -> Vec<ResourceKind> {
    vec![
        builtin("", "Namespace", "namespaces", false, true, false),
        builtin("", "ConfigMap", "configmaps", true, false, false),
        builtin("", "Secret", "secrets", true, false, false),
        builtin("", "ServiceAccount", "serviceaccounts", true, false, false),
        builtin("", "Service", "services", true, true, false),
        builtin(
            "",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            true,
            false,
        ),
        builtin("", "Pod", "pods", true, true, false),
        builtin("", "Event", "events", true, false, false),
        builtin("events.k8s.io", "Event", "events", true, false, false),
        builtin("apps", "Deployment", "deployments", true, true, true),
        builtin(
            "networking.k8s.io",
            "Ingress",
            "ingresses",
            true,
            true,
            true,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "Role",
            "roles",
            true,
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            "rolebindings",
            true,
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "clusterroles",
            false,
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            false,
            false,
        ),
        builtin("coordination.k8s.io", "Lease", "leases", true, false, false),
        builtin(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            true,
            true,
        ),
    ]
}

/// The kind a CRD object defines, or `None` when its spec is not usable.
pub fn from_crd(crd: &Value) -> Option<ResourceKind> {
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    let versions = spec.get("versions")?.as_array()?;
    let served: Vec<&Value> = versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .collect();
    // The storage version goes first, then the other served versions.
    let mut ordered: Vec<&Value> = served
        .iter()
        .copied()
        .filter(|v| v["storage"] == true)
        .collect();
    ordered.extend(served.iter().copied().filter(|v| v["storage"] != true));
    let storage = ordered.first()?;
    let schema = storage
        .pointer("/schema/openAPIV3Schema")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    let kind = names.get("kind")?.as_str()?.to_string();
    Some(ResourceKind {
        group: spec.get("group")?.as_str()?.to_string(),
        versions: ordered
            .iter()
            .filter_map(|v| v["name"].as_str().map(String::from))
            .collect(),
        plural: names.get("plural")?.as_str()?.to_string(),
        singular: names["singular"]
            .as_str()
            .map(String::from)
            .unwrap_or(kind.to_lowercase()),
        kind,
        namespaced: spec["scope"].as_str() != Some("Cluster"),
        status_subresource: storage.pointer("/subresources/status").is_some(),
        generation: true,
        rules: Rules::compile(&schema).map(Arc::new),
        root_schema: Some(Arc::new(crate::validation::root_schema(&schema))),
        schema: Some(Arc::new(schema)),
        short_names: names["shortNames"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

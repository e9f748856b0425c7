//! `jenkins-operator render`: a JenkinsCluster YAML file in, every object the operator would
//! create out, as a multi-document YAML stream, with no cluster involved.
//!
//! Input is checked the way the API server and the operator would check it, and every error
//! points at a line and column: YAML syntax, `apiVersion`/`kind`, fields the CRD schema does
//! not know (the API server would prune or refuse them; here they are typos to report), field
//! types, then [`validate`](super::validate). Errors about a field also name its path
//! (`spec.plugins[0].version`). Unknown fields are found by walking the input
//! against the generated CRD schema rather than with `deny_unknown_fields`, which would make
//! the operator itself reject objects written by a newer CRD version.

use std::fmt;

use kube::CustomResourceExt;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::secrets::GeneratedSecrets;
use super::{Child, desired};
use crate::api::JenkinsCluster;

/// The owner uid written into rendered objects when the input has none: the API server assigns
/// the real one when the JenkinsCluster is created.
pub const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// What rendered Secrets hold instead of values: the operator draws them from the OS random
/// source when it creates the Secret, and printing a fresh random password that will never be
/// used would mislead.
pub const SECRET_PLACEHOLDER: &str = "<generated at apply time>";

/// One thing wrong with the input, with its position when known (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Line and column of the offending node.
    pub position: Option<(u64, u64)>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{line}:{column}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why an input cannot be rendered: one or more diagnostics, one per line when displayed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct RenderError {
    /// Everything found, in input order where possible.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.diagnostics.iter().map(Diagnostic::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl RenderError {
    fn one(position: Option<(u64, u64)>, message: impl Into<String>) -> Self {
        Self {
            diagnostics: vec![Diagnostic {
                position,
                message: message.into(),
            }],
        }
    }
}

/// Renders a JenkinsCluster YAML document into the YAML stream of its children.
pub fn render(yaml: &str) -> Result<String, RenderError> {
    // Syntax, with the position of every node for the messages below.
    let tree: Spanned<Node> = serde_saphyr::from_str(yaml).map_err(|e| yaml_error(&e))?;
    let Node::Map(top) = &tree.value else {
        return Err(RenderError::one(
            position(&tree.referenced),
            "expected a JenkinsCluster: a mapping with apiVersion, kind, metadata and spec",
        ));
    };

    // apiVersion and kind, before anything that would make no sense for another kind.
    check_scalar(&tree, top, "apiVersion", "jenkins.ci/v1alpha1")?;
    check_scalar(&tree, top, "kind", "JenkinsCluster")?;

    // Fields the schema does not know: typos, or fields of another version.
    let mut unknown = Vec::new();
    let schema = crd_schema();
    find_unknown_fields(&tree, &schema, "", &mut unknown);
    if !unknown.is_empty() {
        return Err(RenderError {
            diagnostics: unknown,
        });
    }

    // Types, then the operator's own validation.
    let mut cluster = typed(yaml, &tree)?;
    if cluster.metadata.uid.is_none() {
        cluster.metadata.uid = Some(PLACEHOLDER_UID.into());
    }
    let placeholders = GeneratedSecrets {
        admin_password: SECRET_PLACEHOLDER.into(),
        casc_reload_token: SECRET_PLACEHOLDER.into(),
    };
    let children = desired(&cluster, &placeholders, "").map_err(|invalid| RenderError {
        diagnostics: invalid
            .problems
            .iter()
            .map(|problem| Diagnostic {
                position: locate(&tree, &problem.path),
                message: problem.to_string(),
            })
            .collect(),
    })?;
    print_stream(&children)
}

fn print_stream(children: &[Child]) -> Result<String, RenderError> {
    let mut out = String::new();
    for child in children {
        out.push_str("---\n");
        if child.resource.kind == "Secret" {
            out.push_str(
                "# Created once by the operator with values from the OS random source; \
                 never overwritten.\n",
            );
        }
        let yaml = serde_saphyr::to_string(&child.object).map_err(|e| {
            RenderError::one(None, format!("failed to print {}: {e}", child.describe()))
        })?;
        out.push_str(&yaml);
    }
    Ok(out)
}

fn position(location: &Location) -> Option<(u64, u64)> {
    (location.line() > 0).then(|| (location.line(), location.column()))
}

fn yaml_error(error: &serde_saphyr::Error) -> RenderError {
    let position = error.location().and_then(|l| position(&l));
    let message = error.without_snippet().to_string();
    let message = message.lines().next().unwrap_or_default();
    // The library appends its own position; ours is in front already.
    let message = match message.rfind(" at line ") {
        Some(at) if position.is_some() => &message[..at],
        _ => message,
    };
    // The library's advice for a second document names its own API; say it in the user's terms.
    let message = if message.starts_with("multiple YAML documents") {
        "a second YAML document: render reads one JenkinsCluster per file"
    } else {
        message
    };
    RenderError::one(position, message)
}

/// The input as a JenkinsCluster. A value of the wrong type (a string where a number goes, a
/// list where a map goes, an unknown enum value, a missing required field) is reported with the
/// path of its field, as validation problems are, in front of the parser's message.
fn typed(yaml: &str, tree: &Spanned<Node>) -> Result<JenkinsCluster, RenderError> {
    let mut path = None;
    let parsed = serde_saphyr::with_deserializer_from_str(yaml, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            path = Some(error.path().to_string());
            error.into_inner()
        })
    });
    parsed.map_err(|error| {
        let mut rendered = yaml_error(&error);
        // `.` is the path of the document itself: nothing to add.
        if let Some(path) = path.filter(|p| p != ".")
            && let Some(diagnostic) = rendered.diagnostics.first_mut()
        {
            // The parser notices a missing field where the mapping ends; point at the mapping.
            if diagnostic.message.starts_with("missing field") {
                diagnostic.position = locate(tree, &path).or(diagnostic.position);
            }
            diagnostic.message = format!("{path}: {}", plain_types(&diagnostic.message));
        }
        rendered
    })
}

/// The parser's messages name Rust types and parser events (`invalid i32`, `expected mapping
/// start`); say what a YAML author writes instead. Other messages are kept as they are.
fn plain_types(message: &str) -> String {
    const PLAIN: &[(&str, &str)] = &[
        ("invalid i8", "expected an integer"),
        ("invalid i16", "expected an integer"),
        ("invalid i32", "expected an integer"),
        ("invalid i64", "expected an integer"),
        ("invalid u8", "expected a non-negative integer"),
        ("invalid u16", "expected a non-negative integer"),
        ("invalid u32", "expected a non-negative integer"),
        ("invalid u64", "expected a non-negative integer"),
        ("invalid f32", "expected a number"),
        ("invalid f64", "expected a number"),
        ("invalid bool", "expected true or false"),
        ("expected string scalar", "expected a string"),
        ("expected sequence start", "expected a list"),
        (
            "expected mapping start",
            "expected a mapping of keys to values",
        ),
        (
            "expected Quantity",
            "expected a quantity such as 2Gi or 500m",
        ),
    ];
    PLAIN
        .iter()
        .find_map(|(parser, plain)| {
            message
                .strip_suffix(parser)
                .map(|before| format!("{before}{plain}"))
        })
        .unwrap_or_else(|| message.to_string())
}

fn check_scalar(
    tree: &Spanned<Node>,
    top: &[(Spanned<String>, Spanned<Node>)],
    key: &str,
    expected: &str,
) -> Result<(), RenderError> {
    match top.iter().find(|(k, _)| k.value == key) {
        None => Err(RenderError::one(
            position(&tree.referenced),
            format!("{key} is missing: expected {key}: {expected}"),
        )),
        Some((_, value)) => match &value.value {
            Node::Scalar(found) if found == expected => Ok(()),
            Node::Scalar(found) => Err(RenderError::one(
                position(&value.referenced),
                format!("{key} is {found:?}: render only reads {key}: {expected}"),
            )),
            _ => Err(RenderError::one(
                position(&value.referenced),
                format!("{key} must be {expected}"),
            )),
        },
    }
}

/// The openAPIV3 schema of the JenkinsCluster CRD.
fn crd_schema() -> Value {
    let crd = serde_json::to_value(JenkinsCluster::crd()).unwrap_or_default();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Top-level fields of a JenkinsCluster.
const TOP_LEVEL_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

/// Fields of `metadata` the API server knows; the CRD schema leaves them unspecified.
const METADATA_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
];

fn find_unknown_fields(
    node: &Spanned<Node>,
    schema: &Value,
    path: &str,
    out: &mut Vec<Diagnostic>,
) {
    if schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true) {
        return;
    }
    match &node.value {
        Node::Map(entries) => {
            let properties = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, value) in entries {
                let child_path = if path.is_empty() {
                    key.value.clone()
                } else {
                    format!("{path}.{}", key.value)
                };
                // The generated schema describes spec and status; the object's envelope and
                // metadata are the API server's.
                let envelope = match path {
                    "" => Some(TOP_LEVEL_FIELDS),
                    "metadata" => Some(METADATA_FIELDS),
                    _ => None,
                };
                if let Some(known) = envelope
                    && !known.contains(&key.value.as_str())
                {
                    out.push(unknown_field(key, path, known.iter().copied()));
                    continue;
                }
                if path.is_empty() && key.value == "metadata" {
                    find_unknown_fields(value, &Value::Null, "metadata", out);
                    continue;
                }
                let envelope_only = path == "metadata"
                    || (path.is_empty() && !matches!(key.value.as_str(), "spec" | "status"));
                if envelope_only {
                    continue;
                }
                match (properties.and_then(|p| p.get(&key.value)), additional) {
                    (Some(sub), _) | (None, Some(sub)) => {
                        find_unknown_fields(value, sub, &child_path, out)
                    }
                    (None, None) if let Some(known) = properties => {
                        out.push(unknown_field(key, path, known.keys().map(String::as_str)))
                    }
                    // An object the schema leaves open.
                    (None, None) => {}
                }
            }
        }
        Node::Seq(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    find_unknown_fields(item, item_schema, &format!("{path}[{i}]"), out);
                }
            }
        }
        Node::Scalar(_) => {}
    }
}

/// A field the schema does not have, at `parent` (a field path; empty at the top): points at
/// the parent's `kubectl explain` and suggests the known field it is closest to, if one is
/// within two edits (a typo rather than another word).
fn unknown_field<'a>(
    key: &Spanned<String>,
    parent: &str,
    known: impl Iterator<Item = &'a str>,
) -> Diagnostic {
    let path = if parent.is_empty() {
        key.value.clone()
    } else {
        format!("{parent}.{}", key.value)
    };
    let explain: String = std::iter::once("jenkinscluster")
        .chain(
            parent
                .split('.')
                .filter(|segment| !segment.is_empty())
                .map(|segment| segment.split('[').next().unwrap_or_default()),
        )
        .collect::<Vec<_>>()
        .join(".");
    let closest = known
        .map(|name| (strsim::levenshtein(name, &key.value), name))
        .filter(|(distance, _)| *distance <= 2)
        .min();
    let hint = match closest {
        Some((_, name)) => format!(" (did you mean `{name}`?)"),
        None => String::new(),
    };
    Diagnostic {
        position: position(&key.referenced),
        message: format!(
            "unknown field {path}{hint}: check its spelling and indentation against `kubectl \
             explain {explain}`"
        ),
    }
}

/// The position of a field path such as `spec.plugins[3].name`, or of the deepest part of it
/// that exists (a problem about a missing field points at its parent).
fn locate(tree: &Spanned<Node>, path: &str) -> Option<(u64, u64)> {
    let mut node = tree;
    for segment in path.split('.') {
        let (key, indexes) = match segment.split_once('[') {
            Some((key, rest)) => (key, Some(rest)),
            None => (segment, None),
        };
        let Node::Map(entries) = &node.value else {
            break;
        };
        let Some((_, value)) = entries.iter().find(|(k, _)| k.value == key) else {
            break;
        };
        node = value;
        for index in indexes.into_iter().flat_map(|rest| rest.split('[')) {
            let Ok(i) = index.trim_end_matches(']').parse::<usize>() else {
                break;
            };
            let Node::Seq(items) = &node.value else { break };
            let Some(item) = items.get(i) else { break };
            node = item;
        }
    }
    position(&node.referenced)
}

/// A YAML node shape with the positions of keys and values, for messages.
#[derive(Debug)]
enum Node {
    Scalar(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(String::new()))
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(String::new()))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value()?;
            let key = Spanned::new(key.value.0, key.referenced, key.defined);
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key as text, whatever its scalar type.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Node::deserialize(deserializer)? {
            Node::Scalar(text) => Ok(KeyText(text)),
            _ => Err(de::Error::custom("mapping keys must be scalars")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "apiVersion: jenkins.ci/v1alpha1\nkind: JenkinsCluster\n\
                           metadata:\n  name: ci\nspec: {}\n";

    fn error(yaml: &str) -> RenderError {
        render(yaml).expect_err("the input is bad")
    }

    #[test]
    fn a_minimal_cluster_renders_every_child_as_a_yaml_stream() {
        let out = render(MINIMAL).expect("renders");
        assert_eq!(out.matches("---\n").count(), 13);
        assert!(out.contains("kind: Deployment"));
        assert!(out.contains(PLACEHOLDER_UID));
        assert!(out.contains("password: <generated at apply time>"));
        assert!(out.contains("# Created once by the operator"));
    }

    #[test]
    fn malformed_yaml_is_reported_with_line_and_column() {
        let err = error("apiVersion: jenkins.ci/v1alpha1\nkind: [JenkinsCluster\nspec: {}\n");
        let first = &err.diagnostics[0];
        assert!(first.position.is_some(), "{err}");
        assert!(!first.message.is_empty());
    }

    #[test]
    fn an_unknown_field_is_reported_at_its_key() {
        let yaml = MINIMAL.replace("spec: {}", "spec:\n  master:\n    imagee: jenkins\n");
        let err = error(&yaml);
        assert_eq!(err.diagnostics.len(), 1, "{err}");
        assert_eq!(err.diagnostics[0].position, Some((7, 5)));
        assert!(
            err.diagnostics[0]
                .message
                .starts_with("unknown field spec.master.imagee")
        );
    }

    #[test]
    fn unknown_fields_inside_kubernetes_types_and_metadata_are_reported() {
        let yaml = MINIMAL
            .replace("name: ci", "name: ci\n  labelz: {}")
            .replace(
                "spec: {}",
                "spec:\n  master:\n    tolerations: [{key: a, efect: NoSchedule}]\n",
            );
        let messages: Vec<String> = error(&yaml)
            .diagnostics
            .into_iter()
            .map(|d| d.message)
            .collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].starts_with("unknown field metadata.labelz"));
        assert!(messages[1].starts_with("unknown field spec.master.tolerations[0].efect"));
    }

    #[test]
    fn open_maps_accept_any_key() {
        let yaml = MINIMAL.replace(
            "spec: {}",
            "spec:\n  master:\n    nodeSelector: {kubernetes.io/arch: amd64}\n\
             \x20   resources: {requests: {cpu: '1'}}\n",
        );
        assert!(render(&yaml).is_ok());
    }

    #[test]
    fn another_kind_is_refused() {
        let err = error(&MINIMAL.replace("kind: JenkinsCluster", "kind: JenkinsJob"));
        assert_eq!(err.diagnostics[0].position, Some((2, 7)));
        assert!(err.diagnostics[0].message.contains("JenkinsCluster"));
    }

    #[test]
    fn a_wrong_type_is_reported_with_its_position() {
        let yaml = MINIMAL.replace("spec: {}", "spec:\n  agents:\n    containerCap: ten\n");
        let err = error(&yaml);
        assert_eq!(err.diagnostics[0].position.map(|p| p.0), Some(7), "{err}");
    }

    #[test]
    fn wrong_types_name_their_field() {
        let cases = [
            (
                "spec:\n  agents:\n    containerCap: ten\n",
                (7, 19),
                "spec.agents.containerCap: expected an integer",
            ),
            (
                "spec:\n  plugins: {git: 5.7.0}\n",
                (6, 12),
                "spec.plugins: expected a list",
            ),
            (
                "spec:\n  master:\n    nodeSelector: [ssd]\n",
                (7, 19),
                "spec.master.nodeSelector: expected a mapping of keys to values",
            ),
            (
                "spec:\n  persistence: {deletionPolicy: Keep}\n",
                (6, 33),
                "spec.persistence.deletionPolicy: unknown variant `Keep`, expected one of Retain, \
                 Delete",
            ),
            (
                "spec:\n  agents:\n    templates:\n      - {name: a, label: a}\n",
                (8, 9),
                "spec.agents.templates[0]: missing field `containers`",
            ),
            (
                "spec:\n  master: {tolerations: [{key: a, tolerationSeconds: soon}]}\n",
                (6, 54),
                "spec.master.tolerations[0].tolerationSeconds: expected an integer",
            ),
            (
                "spec:\n  persistence: {size: [20Gi]}\n",
                (6, 17),
                "spec.persistence.size: invalid type: sequence, expected a quantity such as 2Gi \
                 or 500m",
            ),
        ];
        for (spec, position, expected) in cases {
            let err = error(&MINIMAL.replace("spec: {}\n", spec));
            assert_eq!(err.diagnostics.len(), 1, "{err}");
            assert_eq!(err.diagnostics[0].message, expected);
            assert_eq!(err.diagnostics[0].position, Some(position), "{expected}");
        }
    }

    #[test]
    fn validation_problems_point_at_the_field() {
        let yaml = MINIMAL.replace(
            "spec: {}",
            "spec:\n  plugins:\n    - {name: git, version: 5.7.0}\n\
             \x20   - {name: git, version: 5.8.0}\n",
        );
        let err = error(&yaml);
        assert_eq!(err.diagnostics.len(), 1, "{err}");
        assert_eq!(err.diagnostics[0].position.map(|p| p.0), Some(8));
        assert!(
            err.diagnostics[0]
                .message
                .starts_with("spec.plugins[1].name: plugin git")
        );
    }

    #[test]
    fn empty_and_non_mapping_input_is_refused() {
        assert!(render("").is_err());
        assert!(render("- a\n- b\n").is_err());
        assert!(render("just text").is_err());
    }
}

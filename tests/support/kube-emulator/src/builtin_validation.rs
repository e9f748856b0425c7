//! Validation the API server applies besides CRD schemas: label syntax on every object, and the
//! rules of built-in kinds that controllers most often break (Deployment selectors, immutable
//! fields, Service and Namespace names).

use serde_json::Value;

use crate::status::Cause;

fn cause(reason: &str, field: &str, message: impl Into<String>) -> Cause {
    Cause {
        reason: reason.into(),
        message: message.into(),
        field: field.into(),
    }
}

/// Causes for an object of a kind (with its previous version on updates).
pub fn validate(group: &str, plural: &str, old: Option<&Value>, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    labels(
        new.pointer("/metadata/labels"),
        "metadata.labels",
        &mut causes,
    );
    match (group, plural) {
        ("apps", "deployments") => deployment(old, new, &mut causes),
        ("", "services") => {
            dns_label_name(new, &mut causes);
            immutable(old, new, "/spec/clusterIP", "spec.clusterIP", &mut causes);
        }
        ("", "namespaces") => dns_label_name(new, &mut causes),
        ("", "persistentvolumeclaims") => {
            for (pointer, field) in [
                ("/spec/accessModes", "spec.accessModes"),
                ("/spec/storageClassName", "spec.storageClassName"),
                ("/spec/volumeMode", "spec.volumeMode"),
                ("/spec/selector", "spec.selector"),
            ] {
                immutable(old, new, pointer, field, &mut causes);
            }
        }
        ("", "configmaps" | "secrets") if old.is_some_and(|o| o["immutable"] == true) => {
            for field in ["data", "binaryData", "immutable"] {
                immutable(old, new, &format!("/{field}"), field, &mut causes);
            }
        }
        _ => {}
    }
    causes
}

fn immutable(
    old: Option<&Value>,
    new: &Value,
    pointer: &str,
    field: &str,
    causes: &mut Vec<Cause>,
) {
    if let Some(old) = old
        && old.pointer(pointer) != new.pointer(pointer)
    {
        causes.push(cause(
            "FieldValueInvalid",
            field,
            "Invalid value: field is immutable",
        ));
    }
}

/// Services and Namespaces are named by DNS labels: no dots, at most 63 characters.
fn dns_label_name(object: &Value, causes: &mut Vec<Cause>) {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.len() > 63 || name.contains('.') {
        causes.push(cause(
            "FieldValueInvalid",
            "metadata.name",
            format!(
                "Invalid value: {name:?}: a lowercase RFC 1123 label must be at most 63 \
                 characters and contain no dots"
            ),
        ));
    }
}

/// Label keys are `[prefix/]name`, values at most 63 characters of `[A-Za-z0-9-_.]` starting
/// and ending alphanumeric.
pub fn labels(labels: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    let Some(labels) = labels.and_then(Value::as_object) else {
        return;
    };
    for (key, value) in labels {
        let (prefix, name) = match key.split_once('/') {
            Some((prefix, name)) => (Some(prefix), name),
            None => (None, key.as_str()),
        };
        let prefix_ok = prefix.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 253
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        });
        if !prefix_ok || !label_value_ok(name) || name.is_empty() {
            causes.push(cause(
                "FieldValueInvalid",
                field,
                format!("Invalid value: {key:?}: {LABEL_SYNTAX}"),
            ));
        }
        let text = value.as_str().unwrap_or_default();
        if !label_value_ok(text) {
            causes.push(cause(
                "FieldValueInvalid",
                field,
                format!("Invalid value: {text:?}: {LABEL_SYNTAX}"),
            ));
        }
    }
}

const LABEL_SYNTAX: &str = "a valid label must be an empty string or consist of alphanumeric \
     characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most \
     63 characters)";

fn label_value_ok(text: &str) -> bool {
    text.is_empty()
        || (text.len() <= 63
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && text.starts_with(|c: char| c.is_ascii_alphanumeric())
            && text.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn deployment(old: Option<&Value>, new: &Value, causes: &mut Vec<Cause>) {
    let spec = &new["spec"];
    let selector = spec
        .pointer("/selector/matchLabels")
        .and_then(Value::as_object);
    let expressions = spec
        .pointer("/selector/matchExpressions")
        .and_then(Value::as_array);
    if selector.is_none_or(|s| s.is_empty()) && expressions.is_none_or(|e| e.is_empty()) {
        causes.push(cause(
            "FieldValueRequired",
            "spec.selector",
            "Required value",
        ));
    }
    let template_labels = spec
        .pointer("/template/metadata/labels")
        .and_then(Value::as_object);
    if let Some(selector) = selector {
        let matches = selector
            .iter()
            .all(|(k, v)| template_labels.and_then(|l| l.get(k)) == Some(v));
        if !matches {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.template.metadata.labels",
                "Invalid value: `selector` does not match template `labels`",
            ));
        }
    }
    labels(
        spec.pointer("/template/metadata/labels"),
        "spec.template.metadata.labels",
        causes,
    );
    let containers = spec
        .pointer("/template/spec/containers")
        .and_then(Value::as_array);
    match containers {
        None => causes.push(cause(
            "FieldValueRequired",
            "spec.template.spec.containers",
            "Required value",
        )),
        Some(containers) => {
            let mut names: Vec<&str> = Vec::new();
            for (index, container) in containers.iter().enumerate() {
                let path = format!("spec.template.spec.containers[{index}]");
                let name = container["name"].as_str().unwrap_or_default();
                if name.is_empty() {
                    causes.push(cause(
                        "FieldValueRequired",
                        &format!("{path}.name"),
                        "Required value",
                    ));
                } else if names.contains(&name) {
                    causes.push(cause(
                        "FieldValueDuplicate",
                        &format!("{path}.name"),
                        format!("Duplicate value: {name:?}"),
                    ));
                }
                names.push(name);
                if container["image"].as_str().is_none_or(str::is_empty) {
                    causes.push(cause(
                        "FieldValueRequired",
                        &format!("{path}.image"),
                        "Required value",
                    ));
                }
            }
        }
    }
    immutable(old, new, "/spec/selector", "spec.selector", causes);
}

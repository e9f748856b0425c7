//! Validation the API server applies besides CRD schemas: label syntax on every object, and the
//! rules of built-in kinds that controllers most often break (Deployment selectors, immutable
//! fields, Service and Namespace names, Ingress hosts, paths and class).

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
        ("networking.k8s.io", "ingresses") => ingress(new, &mut causes),
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

/// The API server's Ingress rules that a generated Ingress can break: a class given both ways,
/// hosts that are not DNS names (a leading `*.` allowed) or are IP addresses, and paths without
/// a supported `pathType` or not starting with `/`.
fn ingress(new: &Value, causes: &mut Vec<Cause>) {
    const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
    let annotated = new
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(CLASS_ANNOTATION))
        .and_then(Value::as_str);
    if let (Some(value), Some(_)) = (annotated, new.pointer("/spec/ingressClassName")) {
        causes.push(cause(
            "FieldValueInvalid",
            &format!("metadata.annotations[{CLASS_ANNOTATION}]"),
            format!("Invalid value: {value:?}: can not be set when the class field is also set"),
        ));
    }
    let rules = new.pointer("/spec/rules").and_then(Value::as_array);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        if let Some(host) = rule["host"].as_str() {
            let field = format!("spec.rules[{i}].host");
            let name = host.strip_prefix("*.").unwrap_or(host);
            if host.parse::<std::net::IpAddr>().is_ok() {
                causes.push(cause(
                    "FieldValueInvalid",
                    &field,
                    format!("Invalid value: {host:?}: must be a DNS name, not an IP address"),
                ));
            } else if !dns_subdomain_ok(name) {
                causes.push(cause(
                    "FieldValueInvalid",
                    &field,
                    format!(
                        "Invalid value: {host:?}: a lowercase RFC 1123 subdomain must consist of \
                         lower case alphanumeric characters, '-' or '.'"
                    ),
                ));
            }
        }
        let paths = rule.pointer("/http/paths").and_then(Value::as_array);
        for (j, path) in paths.into_iter().flatten().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            match path["pathType"].as_str() {
                None => causes.push(cause(
                    "FieldValueRequired",
                    &format!("{field}.pathType"),
                    "Required value: pathType must be specified",
                )),
                Some("Exact" | "Prefix" | "ImplementationSpecific") => {}
                Some(other) => causes.push(cause(
                    "FieldValueNotSupported",
                    &format!("{field}.pathType"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"Exact\", \
                         \"ImplementationSpecific\", \"Prefix\""
                    ),
                )),
            }
            let text = path["path"].as_str().unwrap_or_default();
            if path["pathType"] != "ImplementationSpecific" && !text.starts_with('/') {
                causes.push(cause(
                    "FieldValueInvalid",
                    &format!("{field}.path"),
                    format!("Invalid value: {text:?}: must be an absolute path"),
                ));
            }
        }
    }
}

fn dns_subdomain_ok(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
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

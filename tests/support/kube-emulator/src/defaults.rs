//! Server-side defaults of built-in kinds that matter to a controller comparing live objects.

use serde_json::{Map, Value, json};

/// Applies the defaults of a built-in kind in place. `cluster_ip` is the address a new Service
/// gets when it has none.
pub fn apply(group: &str, plural: &str, object: &mut Value, cluster_ip: &str) {
    match (group, plural) {
        ("apps", "deployments") => deployment(object),
        ("", "pods") => {
            if let Some(spec) = object.get_mut("spec") {
                pod_spec(spec);
            }
        }
        ("", "services") => service(object, cluster_ip),
        ("", "persistentvolumeclaims") => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                insert_missing(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("", "secrets") => secret(object),
        ("", "namespaces") => namespace(object),
        _ => {}
    }
}

fn insert_missing(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key.to_string()).or_insert(value);
}

/// Secrets default to `Opaque`; `stringData` is write-only and lands base64-encoded in `data`.
fn secret(object: &mut Value) {
    use base64::Engine;
    let Some(map) = object.as_object_mut() else {
        return;
    };
    insert_missing(map, "type", json!("Opaque"));
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (key, value) in strings {
            let text = value.as_str().unwrap_or_default();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(key, json!(encoded));
        }
    }
}

fn deployment(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    insert_missing(spec, "replicas", json!(1));
    insert_missing(spec, "revisionHistoryLimit", json!(10));
    insert_missing(spec, "progressDeadlineSeconds", json!(600));
    let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
    if let Some(strategy) = strategy.as_object_mut() {
        insert_missing(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
            if let Some(rolling) = rolling.as_object_mut() {
                insert_missing(rolling, "maxUnavailable", json!("25%"));
                insert_missing(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    if let Some(pod) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        pod_spec(pod);
    }
}

fn pod_spec(spec: &mut Value) {
    let Some(map) = spec.as_object_mut() else {
        return;
    };
    insert_missing(map, "restartPolicy", json!("Always"));
    insert_missing(map, "dnsPolicy", json!("ClusterFirst"));
    insert_missing(map, "schedulerName", json!("default-scheduler"));
    insert_missing(map, "terminationGracePeriodSeconds", json!(30));
    insert_missing(map, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = map.get_mut(list).and_then(Value::as_array_mut) {
            containers.iter_mut().for_each(container);
        }
    }
    if let Some(volumes) = map.get_mut("volumes").and_then(Value::as_array_mut) {
        for volume in volumes {
            for source in ["configMap", "secret"] {
                if let Some(source) = volume.get_mut(source).and_then(Value::as_object_mut) {
                    insert_missing(source, "defaultMode", json!(420));
                }
            }
        }
    }
}

fn container(container: &mut Value) {
    let Some(map) = container.as_object_mut() else {
        return;
    };
    insert_missing(map, "terminationMessagePath", json!("/dev/termination-log"));
    insert_missing(map, "terminationMessagePolicy", json!("File"));
    let image = map.get("image").and_then(Value::as_str).unwrap_or_default();
    let latest =
        image.ends_with(":latest") || !image.rsplit('/').next().unwrap_or("").contains(':');
    let policy = if latest && !image.contains('@') {
        "Always"
    } else {
        "IfNotPresent"
    };
    insert_missing(map, "imagePullPolicy", json!(policy));
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = map.get_mut(probe).and_then(Value::as_object_mut) {
            insert_missing(probe, "periodSeconds", json!(10));
            insert_missing(probe, "timeoutSeconds", json!(1));
            insert_missing(probe, "successThreshold", json!(1));
            insert_missing(probe, "failureThreshold", json!(3));
            if let Some(http) = probe.get_mut("httpGet").and_then(Value::as_object_mut) {
                insert_missing(http, "scheme", json!("HTTP"));
            }
        }
    }
    if let Some(ports) = map.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            insert_missing(port, "protocol", json!("TCP"));
        }
    }
    if let Some(env) = map.get_mut("env").and_then(Value::as_array_mut) {
        for variable in env {
            let field_ref = variable
                .pointer_mut("/valueFrom/fieldRef")
                .and_then(Value::as_object_mut);
            if let Some(field_ref) = field_ref {
                insert_missing(field_ref, "apiVersion", json!("v1"));
            }
        }
    }
}

fn service(object: &mut Value, cluster_ip: &str) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    insert_missing(spec, "type", json!("ClusterIP"));
    insert_missing(spec, "sessionAffinity", json!("None"));
    if spec
        .get("clusterIP")
        .is_none_or(|ip| ip.as_str() == Some(""))
    {
        spec.insert("clusterIP".into(), json!(cluster_ip));
    }
    let ip = spec["clusterIP"].clone();
    insert_missing(spec, "clusterIPs", json!([ip]));
    insert_missing(spec, "ipFamilies", json!(["IPv4"]));
    insert_missing(spec, "ipFamilyPolicy", json!("SingleStack"));
    insert_missing(spec, "internalTrafficPolicy", json!("Cluster"));
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            insert_missing(port, "protocol", json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                insert_missing(port, "targetPort", number);
            }
        }
    }
}

fn namespace(object: &mut Value) {
    let name = object
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or_default();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = metadata.entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert("kubernetes.io/metadata.name".into(), name);
        }
    }
    if let Some(map) = object.as_object_mut() {
        let spec = map.entry("spec").or_insert_with(|| json!({}));
        if let Some(spec) = spec.as_object_mut() {
            insert_missing(spec, "finalizers", json!(["kubernetes"]));
        }
        let status = map.entry("status").or_insert_with(|| json!({}));
        if let Some(status) = status.as_object_mut() {
            insert_missing(status, "phase", json!("Active"));
        }
    }
}

//! What the controller manager would do: garbage collection by ownerReferences, namespace
//! termination, and Deployments becoming ready.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::store::{ObjectKey, Store, finalizers, is_namespace};

/// Owner references of an object as (uid, blockOwnerDeletion).
fn owner_refs(object: &Value) -> Vec<(String, bool)> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| {
                    let uid = r["uid"].as_str()?.to_string();
                    Some((uid, r["blockOwnerDeletion"] == true))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_deleting(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some()
}

fn uid(object: &Value) -> String {
    object["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

impl Store {
    /// Runs garbage collection to a fixed point. Synchronous: dependents are gone (or marked
    /// deleting, when they have finalizers) by the time the request that triggered it returns.
    pub(crate) fn collect_garbage(&mut self) {
        // Each round changes at least one object, and there are finitely many.
        for _ in 0..10_000 {
            if !self.collect_once() {
                return;
            }
        }
    }

    /// One round; returns whether anything changed.
    fn collect_once(&mut self) -> bool {
        let owners: HashMap<String, (ObjectKey, bool)> = self
            .objects
            .iter()
            .map(|(key, object)| {
                let foreground = is_deleting(object)
                    && finalizers(object).iter().any(|f| f == "foregroundDeletion");
                (uid(object), (key.clone(), foreground))
            })
            .collect();

        // Dependents whose owners are all gone, or whose owner is deleted in the foreground.
        for (key, object) in &self.objects {
            let refs = owner_refs(object);
            if refs.is_empty() || is_deleting(object) {
                continue;
            }
            let all_gone = refs.iter().all(|(uid, _)| !owners.contains_key(uid));
            let foreground_owner = refs
                .iter()
                .any(|(uid, _)| owners.get(uid).is_some_and(|o| o.1));
            if all_gone || foreground_owner {
                let key = key.clone();
                let policy = if foreground_owner {
                    "Foreground"
                } else {
                    "Background"
                };
                self.delete_object(&key, policy);
                return true;
            }
        }

        // Foreground owners whose blocking dependents are all gone lose their finalizer.
        for (key, object) in &self.objects {
            if !(is_deleting(object)
                && finalizers(object).iter().any(|f| f == "foregroundDeletion"))
            {
                continue;
            }
            let owner_uid = uid(object);
            let blocked = self.objects.values().any(|d| {
                owner_refs(d)
                    .iter()
                    .any(|(uid, block)| *block && *uid == owner_uid)
            });
            if !blocked {
                let (key, old) = (key.clone(), object.clone());
                let mut new = old.clone();
                let remaining: Vec<String> = finalizers(&old)
                    .into_iter()
                    .filter(|f| f != "foregroundDeletion")
                    .collect();
                new["metadata"]["finalizers"] = json!(remaining);
                if remaining.is_empty()
                    && let Some(metadata) = new["metadata"].as_object_mut()
                {
                    metadata.remove("finalizers");
                }
                self.commit_server_state(&key, old, new);
                return true;
            }
        }

        // Terminating namespaces: delete what is inside, then the namespace itself.
        let terminating: Vec<(ObjectKey, Value)> = self
            .objects
            .iter()
            .filter(|(key, object)| is_namespace(key) && is_deleting(object))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        for (key, namespace) in terminating {
            let inside: Vec<(ObjectKey, bool)> = self
                .objects
                .iter()
                .filter(|(k, _)| k.namespace == key.name)
                .map(|(k, o)| (k.clone(), is_deleting(o)))
                .collect();
            if let Some((content, _)) = inside.iter().find(|(_, deleting)| !deleting) {
                let content = content.clone();
                self.delete_object(&content, "Background");
                return true;
            }
            if inside.is_empty() && finalizers(&namespace).is_empty() {
                let version = self.resource_version + 1;
                self.resource_version = version;
                let mut gone = namespace.clone();
                if let Some(spec) = gone.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("finalizers".into(), json!([]));
                }
                self.remove(&key, gone, version);
                return true;
            }
        }
        false
    }

    /// Orphan propagation: dependents lose their ownerReferences to this owner.
    pub(crate) fn orphan_dependents(&mut self, owner: &Value) {
        let owner_uid = uid(owner);
        let dependents: Vec<(ObjectKey, Value)> = self
            .objects
            .iter()
            .filter(|(_, d)| owner_refs(d).iter().any(|(uid, _)| *uid == owner_uid))
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect();
        for (key, old) in dependents {
            let mut new = old.clone();
            if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"].as_str() != Some(owner_uid.as_str()));
                if refs.is_empty()
                    && let Some(metadata) = new["metadata"].as_object_mut()
                {
                    metadata.remove("ownerReferences");
                }
            }
            self.commit_server_state(&key, old, new);
        }
    }

    /// The Deployment controller, reduced to "all replicas are ready": fills in the status of
    /// every Deployment whose status does not describe its current generation yet.
    pub(crate) fn make_deployments_ready(&mut self) {
        if !self.deployments_become_ready {
            return;
        }
        // Keys sort by group and plural first: the Deployments are one range, and this runs
        // after every request without walking every other object.
        let first = ObjectKey {
            group: "apps".into(),
            plural: "deployments".into(),
            namespace: String::new(),
            name: String::new(),
        };
        let stale: Vec<(ObjectKey, Value)> = self
            .objects
            .range(first..)
            .take_while(|(k, _)| k.group == "apps" && k.plural == "deployments")
            .filter(|(_, d)| {
                !is_deleting(d)
                    && d.pointer("/status/observedGeneration") != d.pointer("/metadata/generation")
            })
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect();
        for (key, deployment) in stale {
            let replicas = deployment
                .pointer("/spec/replicas")
                .cloned()
                .unwrap_or(json!(1));
            let since = deployment["metadata"]["creationTimestamp"].clone();
            let condition = |kind: &str, reason: &str, message: &str| {
                json!({"type": kind, "status": "True", "reason": reason, "message": message,
                       "lastUpdateTime": since, "lastTransitionTime": since})
            };
            let mut new = deployment.clone();
            new["status"] = json!({
                "observedGeneration": deployment["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": [
                    condition("Available", "MinimumReplicasAvailable",
                              "Deployment has minimum availability."),
                    condition("Progressing", "NewReplicaSetAvailable",
                              "ReplicaSet has successfully progressed."),
                ],
            });
            self.server_update(&key, new, Some("status"));
        }
    }
}

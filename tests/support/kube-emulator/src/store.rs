//! The object store: objects by resource and name, the global resourceVersion counter, the
//! bounded watch-event history, and every write path (create, update, patch, apply, delete).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::apply::{self, ApplyRequest, ManagedEntry};
use crate::kinds::{self, ResourceKind};
use crate::patch::{self, ListRules};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, Cause};
use crate::{builtin_validation, cel_rules, clock, defaults, validation};

/// Where an object lives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub plural: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

/// ADDED, MODIFIED or DELETED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as kept in the history and sent to watchers.
#[derive(Clone, Debug)]
pub struct ChangeEvent {
    pub resource_version: u64,
    pub key: ObjectKey,
    pub event_type: EventType,
    pub object: Value,
    /// The object before a modification (to tell watchers with selectors it left their view).
    pub previous: Option<Value>,
}

/// What a write request carries besides the object.
#[derive(Clone, Debug, Default)]
pub struct WriteContext {
    pub manager: String,
    pub dry_run: bool,
    /// The `apiVersion` the client used.
    pub api_version: String,
}

/// How a PATCH body is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply { force: bool },
}

/// Options of a DELETE.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

/// The whole server state, behind one mutex.
pub struct Store {
    pub kinds: Vec<ResourceKind>,
    pub objects: BTreeMap<ObjectKey, Value>,
    pub resource_version: u64,
    pub history: VecDeque<Arc<ChangeEvent>>,
    pub history_limit: usize,
    /// Events up to this resourceVersion are no longer in the history.
    pub compacted: u64,
    pub events: broadcast::Sender<Arc<ChangeEvent>>,
    pub deployments_become_ready: bool,
    next_cluster_ip: u32,
}

impl Store {
    /// A store with the built-in kinds and the namespaces every cluster has.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(8192);
        let mut store = Store {
            kinds: kinds::builtins(),
            objects: BTreeMap::new(),
            resource_version: 0,
            history: VecDeque::new(),
            history_limit: 10_000,
            compacted: 0,
            events,
            deployments_become_ready: true,
            next_cluster_ip: 10,
        };
        let namespaces = store
            .kind("", "namespaces")
            .expect("namespaces are built in");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            let context = WriteContext {
                manager: "kube-apiserver".into(),
                ..Default::default()
            };
            // Creating the well-known namespaces in an empty store cannot fail.
            let _ = store.create(&namespaces, "", body, &context);
        }
        store
    }

    /// The kind served under a group and plural.
    pub fn kind(&self, group: &str, plural: &str) -> Option<ResourceKind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.plural == plural)
            .cloned()
    }

    fn key(kind: &ResourceKind, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            group: kind.group.clone(),
            plural: kind.plural.clone(),
            namespace: if kind.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    /// Sets the retained history length (events beyond it are compacted).
    pub fn set_history_limit(&mut self, limit: usize) {
        self.history_limit = limit.max(1);
        self.trim_history();
    }

    fn trim_history(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(event) = self.history.pop_front() {
                self.compacted = event.resource_version;
            }
        }
    }

    fn record(&mut self, event: ChangeEvent) {
        let event = Arc::new(event);
        self.history.push_back(event.clone());
        self.trim_history();
        // No receiver just means no open watch.
        let _ = self.events.send(event);
    }

    fn next_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    // ----- reads -----

    pub fn get(&self, kind: &ResourceKind, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(kind, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&kind.plural, &kind.group, name))
    }

    /// Objects of a kind (in one namespace, or all when `namespace` is `None`) matching selectors,
    /// in name order.
    pub fn list(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(key, _)| key.group == kind.group && key.plural == kind.plural)
            .filter(|(key, _)| namespace.is_none_or(|ns| key.namespace == ns))
            .filter(|(_, object)| labels.matches(object) && fields.matches(object))
            .map(|(_, object)| object.clone())
            .collect()
    }

    // ----- writes -----

    /// POST: creates an object (with `generateName` support).
    pub fn create(
        &mut self,
        kind: &ResourceKind,
        namespace: &str,
        mut body: Value,
        context: &WriteContext,
    ) -> Result<Value, ApiError> {
        check_type(kind, &body)?;
        let metadata = body
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::bad_request("the object has no metadata"))?;
        let mut name = metadata
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let prefix = metadata
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if prefix.is_empty() {
                let cause = Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                };
                return Err(ApiError::invalid(&kind.kind, &kind.group, "", vec![cause]));
            }
            name = format!("{prefix}{}", clock::name_suffix());
            metadata.insert("name".into(), json!(name));
        }
        if let Some(ns) = metadata.get("namespace").and_then(Value::as_str)
            && kind.namespaced
            && ns != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the \
                 request",
            ));
        }
        self.check_namespace(kind, namespace)?;
        let key = Self::key(kind, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&kind.plural, &kind.group, &name));
        }
        self.finish_write(kind, key, None, body, None, context, None)
    }

    fn check_namespace(&self, kind: &ResourceKind, namespace: &str) -> Result<(), ApiError> {
        if !kind.namespaced {
            return Ok(());
        }
        let key = ObjectKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: namespace.to_string(),
        };
        match self.objects.get(&key) {
            None => Err(ApiError::not_found("namespaces", "", namespace)),
            Some(ns) if ns.pointer("/metadata/deletionTimestamp").is_some() => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} is forbidden: unable to create new content in namespace {namespace} \
                     because it is being terminated",
                    kind.plural
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// PUT: replaces an object (or its status), with optimistic concurrency.
    pub fn replace(
        &mut self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        subresource: Option<&str>,
        body: Value,
        context: &WriteContext,
    ) -> Result<Value, ApiError> {
        check_type(kind, &body)?;
        if body.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let key = Self::key(kind, namespace, name);
        let old = self.get(kind, namespace, name)?;
        let wanted = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if wanted.is_some_and(|v| {
            !v.is_empty() && Some(v) != old["metadata"]["resourceVersion"].as_str()
        }) {
            return Err(ApiError::stale(&kind.plural, &kind.group, name));
        }
        self.finish_write(kind, key, Some(old), body, subresource, context, None)
    }

    /// PATCH: merge, JSON, strategic merge, or server-side apply.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        subresource: Option<&str>,
        patch_type: PatchType,
        body: &Value,
        context: &WriteContext,
    ) -> Result<Value, ApiError> {
        let key = Self::key(kind, namespace, name);
        if let PatchType::Apply { force } = patch_type {
            return self.server_side_apply(kind, key, subresource, body, force, context);
        }
        let old = self.get(kind, namespace, name)?;
        let mut new = old.clone();
        match patch_type {
            PatchType::Merge => patch::merge_patch(&mut new, body),
            PatchType::Strategic => patch::strategic_merge_patch(&mut new, body),
            PatchType::Json => patch::json_patch(&mut new, body)?,
            PatchType::Apply { .. } => unreachable!("handled above"),
        }
        if new["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"] {
            return Err(ApiError::stale(&kind.plural, &kind.group, name));
        }
        if new.pointer("/metadata/name") != old.pointer("/metadata/name") {
            return Err(ApiError::bad_request(
                "the name of an object cannot be patched",
            ));
        }
        self.finish_write(kind, key, Some(old), new, subresource, context, None)
    }

    fn server_side_apply(
        &mut self,
        kind: &ResourceKind,
        key: ObjectKey,
        subresource: Option<&str>,
        body: &Value,
        force: bool,
        context: &WriteContext,
    ) -> Result<Value, ApiError> {
        if context.manager.is_empty() {
            return Err(ApiError::bad_request(
                "PATCH, fieldManager is required for apply requests",
            ));
        }
        check_type(kind, body)?;
        // As on the API server, the name is checked on the merged object: an apply to an
        // existing object may leave metadata.name out (it keeps the live name); one that
        // creates the object must carry it.
        match body.pointer("/metadata/name").and_then(Value::as_str) {
            Some(name) if name != key.name => {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            None if !self.objects.contains_key(&key) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({} based on URL) was undeterminable: name must be \
                     provided",
                    key.name
                )));
            }
            _ => {}
        }
        let mut applied = body.clone();
        // An apply to the main resource does not touch status, one to /status only status.
        if subresource == Some("status") {
            if let Some(map) = applied.as_object_mut() {
                map.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "status"));
            }
        } else if kind.status_subresource
            && let Some(map) = applied.as_object_mut()
        {
            map.remove("status");
        }
        let existing = self.objects.get(&key).cloned();
        if existing.is_none() {
            if subresource.is_some() {
                return Err(ApiError::not_found(&kind.plural, &kind.group, &key.name));
            }
            self.check_namespace(kind, &key.namespace)?;
        }
        let live = existing.clone().unwrap_or_else(
            || json!({"apiVersion": body["apiVersion"], "kind": kind.kind, "metadata": {}}),
        );
        if let Some(wanted) = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && Some(wanted)
                != live
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(ApiError::stale(&kind.plural, &kind.group, &key.name));
        }
        let mut entries = apply::read_managed(&live);
        let request = ApplyRequest {
            manager: &context.manager,
            api_version: &context.api_version,
            subresource,
            force,
            now: &clock::now_rfc3339(),
        };
        let rules = ListRules::root(kind.schema.as_deref());
        let mut merged = apply::apply(&live, &mut entries, &applied, &request, rules)
            .map_err(|e| e.about(&key.name, &kind.group, &kind.plural))?;
        if let Some(metadata) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("name".into(), json!(key.name));
        }
        self.finish_write(
            kind,
            key,
            existing,
            merged,
            subresource,
            context,
            Some(entries),
        )
    }

    /// The common end of every write: status subresource rules, server metadata, defaults,
    /// validation, managedFields, generation, no-op detection, and the commit.
    #[allow(clippy::too_many_arguments)]
    fn finish_write(
        &mut self,
        kind: &ResourceKind,
        key: ObjectKey,
        old: Option<Value>,
        mut new: Value,
        subresource: Option<&str>,
        context: &WriteContext,
        applied_entries: Option<Vec<ManagedEntry>>,
    ) -> Result<Value, ApiError> {
        if !new.is_object() || !new.get("metadata").is_some_and(Value::is_object) {
            return Err(ApiError::bad_request(
                "the object must be a map with metadata",
            ));
        }

        // Identity is the server's.
        new["apiVersion"] = json!(kind.api_version(kind.storage_version()));
        new["kind"] = json!(kind.kind);
        new["metadata"]["name"] = json!(key.name);
        if let Some(metadata) = new["metadata"].as_object_mut() {
            if kind.namespaced {
                metadata.insert("namespace".into(), json!(key.namespace));
            } else {
                metadata.remove("namespace");
            }
        }

        // The status subresource splits who may write what.
        match (subresource, &old) {
            (Some("status"), Some(old)) => {
                let status = new.get("status").cloned();
                new = old.clone();
                match status {
                    Some(status) => new["status"] = status,
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            (Some(other), _) => {
                return Err(ApiError::not_found(
                    &format!("{}/{other}", kind.plural),
                    &kind.group,
                    &key.name,
                ));
            }
            (None, _) if kind.status_subresource => {
                if let Some(map) = new.as_object_mut() {
                    match old.as_ref().and_then(|o| o.get("status")) {
                        Some(status) => {
                            map.insert("status".into(), status.clone());
                        }
                        None => {
                            map.remove("status");
                        }
                    }
                }
            }
            (None, _) => {}
        }

        // Server-owned metadata.
        let now = clock::now_rfc3339();
        {
            let metadata = new["metadata"]
                .as_object_mut()
                .expect("checked to be a map above");
            match &old {
                Some(old) => {
                    for field in [
                        "uid",
                        "creationTimestamp",
                        "deletionTimestamp",
                        "deletionGracePeriodSeconds",
                        "generation",
                    ] {
                        match old["metadata"].get(field) {
                            Some(value) => metadata.insert(field.into(), value.clone()),
                            None => metadata.remove(field),
                        };
                    }
                }
                None => {
                    metadata.insert("uid".into(), json!(clock::uuid()));
                    metadata.insert("creationTimestamp".into(), json!(now));
                    metadata.remove("deletionTimestamp");
                    metadata.remove("deletionGracePeriodSeconds");
                    if kind.generation {
                        metadata.insert("generation".into(), json!(1));
                    } else {
                        metadata.remove("generation");
                    }
                }
            }
            metadata.remove("selfLink");
        }

        // No new finalizers on an object being deleted.
        if let Some(old) = &old
            && old.pointer("/metadata/deletionTimestamp").is_some()
        {
            let before = finalizers(old);
            if finalizers(&new).iter().any(|f| !before.contains(f)) {
                let cause = Cause {
                    reason: "FieldValueForbidden".into(),
                    message:
                        "Forbidden: no new finalizers can be added if the object is being deleted"
                            .into(),
                    field: "metadata.finalizers".into(),
                };
                return Err(ApiError::invalid(
                    &kind.kind,
                    &kind.group,
                    &key.name,
                    vec![cause],
                ));
            }
        }

        // Names, defaults and schema validation.
        if old.is_none() {
            validate_name(kind, &key.name)?;
        }
        match (&kind.schema, &kind.root_schema) {
            (Some(schema), Some(root_schema)) => {
                validation::prune_and_default(&mut new, schema);
                let mut causes = validation::validate(&new, root_schema);
                if let Some(rules) = &kind.rules {
                    // Like the API server, no rule runs on an object of the wrong shape.
                    if causes.iter().any(|c| BLOCKING.contains(&c.reason.as_str())) {
                        causes.push(Cause {
                            reason: "FieldValueInvalid".into(),
                            message: "Invalid value: \"null\": some validation rules were not \
                                      checked because the object was invalid; correct the \
                                      existing errors to complete validation"
                                .into(),
                            field: "<nil>".into(),
                        });
                    } else {
                        causes.extend(cel_rules::evaluate(rules, &new, old.as_ref()));
                    }
                }
                if !causes.is_empty() {
                    return Err(ApiError::invalid(
                        &kind.kind,
                        &kind.group,
                        &key.name,
                        causes,
                    ));
                }
            }
            // Built-in kinds: no schema (a kind with a schema always has its root schema).
            _ => {
                // Like the Service registry, an update that leaves out allocated values keeps them.
                if kind.plural == "services"
                    && kind.group.is_empty()
                    && let Some(old_spec) = old.as_ref().and_then(|o| o.get("spec"))
                    && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
                {
                    for field in ["clusterIP", "clusterIPs"] {
                        let missing = spec.get(field).is_none_or(|v| v.as_str() == Some(""));
                        if missing && let Some(value) = old_spec.get(field) {
                            spec.insert(field.into(), value.clone());
                        }
                    }
                }
                let ip = format!(
                    "10.96.{}.{}",
                    self.next_cluster_ip / 250,
                    self.next_cluster_ip % 250 + 1
                );
                defaults::apply(&kind.group, &kind.plural, &mut new, &ip);
                if new.pointer("/spec/clusterIP").and_then(Value::as_str) == Some(ip.as_str()) {
                    self.next_cluster_ip += 1;
                }
            }
        }
        let causes = builtin_validation::validate(&kind.group, &kind.plural, old.as_ref(), &new);
        if !causes.is_empty() {
            return Err(ApiError::invalid(
                &kind.kind,
                &kind.group,
                &key.name,
                causes,
            ));
        }
        if kind.plural == "customresourcedefinitions" {
            crd_status(&mut new, &now)?;
        }

        // managedFields.
        let rules = ListRules::root(kind.schema.as_deref());
        let mut entries = match applied_entries {
            Some(entries) => entries,
            None => {
                let mut entries = old.as_ref().map(apply::read_managed).unwrap_or_default();
                let manager = if context.manager.is_empty() {
                    "unknown"
                } else {
                    &context.manager
                };
                let request = ApplyRequest {
                    manager,
                    api_version: &context.api_version,
                    subresource,
                    force: false,
                    now: &now,
                };
                let before = old.clone().unwrap_or_else(|| json!({}));
                apply::record_update(&mut entries, &before, &new, &request, rules);
                entries
            }
        };
        apply::forget_missing(&mut entries, &new);
        apply::write_managed(&mut new, &entries);

        // A write that changes nothing is not a write.
        if let Some(old) = &old
            && comparable(old) == comparable(&new)
        {
            return Ok(old.clone());
        }

        // Generation follows changes outside metadata (and status, when it is a subresource).
        if kind.generation
            && let Some(old) = &old
            && spec_changed(old, &new, kind.status_subresource)
        {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(generation);
        }

        if context.dry_run {
            return Ok(new);
        }
        let version = self.next_version();
        new["metadata"]["resourceVersion"] = json!(version.to_string());

        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        // Only a removal, a deletion in progress or an object with owners can give the
        // garbage collector work; skipping it otherwise keeps a write independent of how
        // many objects the store holds (the collector scans them all).
        let collect = deleting || new.pointer("/metadata/ownerReferences").is_some();
        if deleting && finalizers(&new).is_empty() && !is_namespace(&key) {
            self.remove(&key, new.clone(), version);
        } else {
            self.objects.insert(key.clone(), new.clone());
            let (event_type, previous) = match old {
                Some(old) => (EventType::Modified, Some(old)),
                None => (EventType::Added, None),
            };
            self.record(ChangeEvent {
                resource_version: version,
                key: key.clone(),
                event_type,
                object: new.clone(),
                previous,
            });
            if kind.plural == "customresourcedefinitions"
                && let Some(defined) = kinds::from_crd(&new)
            {
                self.kinds
                    .retain(|k| !(k.group == defined.group && k.plural == defined.plural));
                self.kinds.push(defined);
            }
        }
        if collect {
            self.collect_garbage();
        }
        Ok(new)
    }

    /// Removes an object for good, announcing it with the given resourceVersion.
    pub(crate) fn remove(&mut self, key: &ObjectKey, mut object: Value, version: u64) {
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        self.objects.remove(key);
        if key.plural == "customresourcedefinitions"
            && let Some(defined) = kinds::from_crd(&object)
        {
            // The custom resources go first, each with its DELETED event, as the CRD's cleanup
            // finalizer does on a real server.
            let instances: Vec<ObjectKey> = self
                .objects
                .keys()
                .filter(|k| k.group == defined.group && k.plural == defined.plural)
                .cloned()
                .collect();
            for instance in instances {
                if let Some(object) = self.objects.get(&instance).cloned() {
                    let version = self.next_version();
                    self.remove(&instance, object, version);
                }
            }
            self.kinds
                .retain(|k| !(k.group == defined.group && k.plural == defined.plural));
        }
        self.record(ChangeEvent {
            resource_version: version,
            key: key.clone(),
            event_type: EventType::Deleted,
            object,
            previous: None,
        });
    }

    /// Writes an object as the server itself (garbage collector, controllers), skipping
    /// request-level checks.
    pub(crate) fn server_update(&mut self, key: &ObjectKey, new: Value, subresource: Option<&str>) {
        let Some(kind) = self.kind(&key.group, &key.plural) else {
            return;
        };
        let Some(old) = self.objects.get(key).cloned() else {
            return;
        };
        let manager = if subresource.is_some() {
            "kube-controller-manager"
        } else {
            "kube-apiserver"
        };
        let context = WriteContext {
            manager: manager.into(),
            api_version: kind.api_version(kind.storage_version()),
            dry_run: false,
        };
        // A server write of a well-formed stored object cannot fail validation it already passed.
        let _ = self.finish_write(
            &kind,
            key.clone(),
            Some(old),
            new,
            subresource,
            &context,
            None,
        );
    }

    /// DELETE of one object, honouring finalizers and the propagation policy.
    pub fn delete(
        &mut self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let key = Self::key(kind, namespace, name);
        let object = self.get(kind, namespace, name)?;
        if let Some(uid) = &options.precondition_uid
            && object["metadata"]["uid"].as_str() != Some(uid.as_str())
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    object["metadata"]["uid"].as_str().unwrap_or_default()
                ),
            )
            .about(name, &kind.group, &kind.plural));
        }
        if let Some(version) = &options.precondition_resource_version
            && object["metadata"]["resourceVersion"].as_str() != Some(version.as_str())
        {
            return Err(ApiError::stale(&kind.plural, &kind.group, name));
        }
        if options.dry_run {
            return Ok(object);
        }
        let policy = options.propagation.as_deref().unwrap_or("Background");
        if !matches!(policy, "Background" | "Foreground" | "Orphan") {
            return Err(ApiError::bad_request(format!(
                "unknown propagationPolicy {policy:?}"
            )));
        }
        Ok(self.delete_object(&key, policy))
    }

    /// Deletes an object as a request or the garbage collector does: objects with finalizers
    /// (and foreground deletions) get a deletionTimestamp, others are removed.
    pub(crate) fn delete_object(&mut self, key: &ObjectKey, policy: &str) -> Value {
        let Some(object) = self.objects.get(key).cloned() else {
            return Value::Null;
        };
        if policy == "Orphan" {
            self.orphan_dependents(&object);
        }
        let mut deleting = object.clone();
        let already = object.pointer("/metadata/deletionTimestamp").is_some();
        let namespace = is_namespace(key);
        if policy == "Foreground" && !already {
            let mut list = finalizers(&object);
            if !list.iter().any(|f| f == "foregroundDeletion") {
                list.push("foregroundDeletion".into());
            }
            deleting["metadata"]["finalizers"] = json!(list);
        }
        if namespace {
            if !deleting["status"].is_object() {
                deleting["status"] = json!({});
            }
            deleting["status"]["phase"] = json!("Terminating");
        }
        if finalizers(&deleting).is_empty() && !namespace {
            let version = self.next_version();
            self.remove(key, deleting.clone(), version);
            self.collect_garbage();
            deleting["metadata"]["resourceVersion"] = json!(version.to_string());
            return deleting;
        }
        if already {
            return object;
        }
        deleting["metadata"]["deletionTimestamp"] = json!(clock::now_rfc3339());
        deleting["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        // Like the API server (markAsDeleting): the first deletionTimestamp bumps a tracked
        // generation, so controllers that only look at generation changes see the deletion.
        if let Some(generation) = object["metadata"]["generation"].as_i64().filter(|g| *g > 0) {
            deleting["metadata"]["generation"] = json!(generation + 1);
        }
        self.commit_server_state(key, object, deleting)
    }

    /// Stores a server-made change (deletionTimestamp, finalizers) without the write pipeline,
    /// which would refuse to set server-owned fields.
    pub(crate) fn commit_server_state(
        &mut self,
        key: &ObjectKey,
        old: Value,
        mut new: Value,
    ) -> Value {
        let version = self.next_version();
        new["metadata"]["resourceVersion"] = json!(version.to_string());
        let gone = new.pointer("/metadata/deletionTimestamp").is_some()
            && finalizers(&new).is_empty()
            && !is_namespace(key);
        if gone {
            self.remove(key, new.clone(), version);
        } else {
            self.objects.insert(key.clone(), new.clone());
            self.record(ChangeEvent {
                resource_version: version,
                key: key.clone(),
                event_type: EventType::Modified,
                object: new.clone(),
                previous: Some(old),
            });
        }
        self.collect_garbage();
        new
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a key names a Namespace (which the namespace controller, not finalizers, removes).
pub fn is_namespace(key: &ObjectKey) -> bool {
    key.group.is_empty() && key.plural == "namespaces"
}

/// The finalizers of an object.
pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The object with what does not count as a change removed (resourceVersion, managedFields times).
fn comparable(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
        if let Some(entries) = metadata
            .get_mut("managedFields")
            .and_then(Value::as_array_mut)
        {
            for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                entry.remove("time");
            }
        }
    }
    copy
}

fn spec_changed(old: &Value, new: &Value, status_is_subresource: bool) -> bool {
    let strip = |object: &Value| {
        let mut copy = object.clone();
        if let Some(map) = copy.as_object_mut() {
            map.remove("metadata");
            if status_is_subresource {
                map.remove("status");
            }
        }
        copy
    };
    strip(old) != strip(new)
}

fn check_type(kind: &ResourceKind, body: &Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body must be a JSON or YAML object",
        ));
    }
    let api_version = body["apiVersion"].as_str().unwrap_or_default();
    let known = kind
        .versions
        .iter()
        .any(|v| kind.api_version(v) == api_version);
    if !api_version.is_empty() && !known {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version"
        )));
    }
    let object_kind = body["kind"].as_str().unwrap_or_default();
    if !object_kind.is_empty() && object_kind != kind.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({object_kind}) does not match the expected kind ({})",
            kind.kind
        )));
    }
    Ok(())
}

/// Object names must be DNS subdomains (RFC 1123), at most 253 characters.
fn validate_name(kind: &ResourceKind, name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        return Ok(());
    }
    let cause = Cause {
        reason: "FieldValueInvalid".into(),
        message: format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case \
             alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
             character"
        ),
        field: "metadata.name".into(),
    };
    Err(ApiError::invalid(
        &kind.kind,
        &kind.group,
        name,
        vec![cause],
    ))
}

/// A CRD is accepted and Established as soon as it is stored.
/// Schema errors after which the API server evaluates no CEL rule.
const BLOCKING: &[&str] = &[
    "FieldValueNotSupported",
    "FieldValueRequired",
    "FieldValueTooLong",
    "FieldValueTooMany",
    "FieldValueTypeInvalid",
];

fn crd_status(crd: &mut Value, now: &str) -> Result<(), ApiError> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(defined) = kinds::from_crd(crd) else {
        let cause = Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value: group, names, scope and versions are required".into(),
            field: "spec".into(),
        };
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            &name,
            vec![cause],
        ));
    };
    if name != format!("{}.{}", defined.plural, defined.group) {
        let cause = Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
            field: "metadata.name".into(),
        };
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            &name,
            vec![cause],
        ));
    }
    let causes = cel_rules::check_crd(crd);
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            &name,
            causes,
        ));
    }
    let since = crd
        .pointer("/metadata/creationTimestamp")
        .cloned()
        .unwrap_or(json!(now));
    let condition = |kind: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": "True", "lastTransitionTime": since,
               "reason": reason, "message": message})
    };
    crd["status"] = json!({
        "acceptedNames": crd["spec"]["names"],
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition(
                "Established",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            ),
        ],
        "storedVersions": [defined.storage_version()],
    });
    Ok(())
}

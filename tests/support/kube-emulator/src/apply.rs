//! Server-side apply and `managedFields`: field sets in the `fieldsV1` format (`f:` fields,
//! `k:` keyed list items, `.` for an item owned as a whole), conflicts between managers, and the
//! removal of fields a manager stops applying.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::patch::{ListRules, item_key};
use crate::status::{ApiError, Cause};

/// A path in an object, as `fieldsV1` tokens (`f:spec`, `k:{"name":"jenkins"}`).
pub type FieldPath = Vec<String>;
/// The set of fields a manager owns.
pub type FieldSet = BTreeSet<FieldPath>;

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

/// Metadata fields the server owns; they never appear in a field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Reads `metadata.managedFields` of an object.
pub fn read_managed(object: &Value) -> Vec<ManagedEntry> {
    let Some(entries) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|entry| ManagedEntry {
            manager: entry["manager"].as_str().unwrap_or_default().to_string(),
            operation: entry["operation"].as_str().unwrap_or("Update").to_string(),
            api_version: entry["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: entry["time"].as_str().unwrap_or_default().to_string(),
            subresource: entry["subresource"].as_str().map(String::from),
            fields: entry
                .get("fieldsV1")
                .map(fields_from_json)
                .unwrap_or_default(),
        })
        .collect()
}

/// Writes entries into `metadata.managedFields` (removed when there are none).
pub fn write_managed(object: &mut Value, entries: &[ManagedEntry]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut entry = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_to_json(&e.fields),
            });
            if let Some(subresource) = &e.subresource {
                entry["subresource"] = json!(subresource);
            }
            entry
        })
        .collect();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if rendered.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert("managedFields".into(), Value::Array(rendered));
        }
    }
}

/// Renders a field set as `fieldsV1` JSON.
pub fn fields_to_json(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for token in path {
            let child = node.entry(token.clone()).or_insert_with(|| json!({}));
            let Value::Object(child) = child else {
                unreachable!("nodes are objects")
            };
            node = child;
        }
    }
    // A member that also has members below it is marked with ".".
    fn mark(node: &mut Map<String, Value>, path: &[String]) {
        match path.split_first() {
            None => {
                if !node.is_empty() && !node.contains_key(".") {
                    node.insert(".".into(), json!({}));
                }
            }
            Some((token, rest)) => {
                if let Some(Value::Object(child)) = node.get_mut(token) {
                    mark(child, rest);
                }
            }
        }
    }
    for path in set {
        mark(&mut root, path);
    }
    Value::Object(root)
}

/// Parses `fieldsV1` JSON into a field set.
pub fn fields_from_json(value: &Value) -> FieldSet {
    fn walk(value: &Value, path: &mut FieldPath, set: &mut FieldSet) {
        let Some(map) = value.as_object() else { return };
        for (token, child) in map {
            if token == "." {
                set.insert(path.clone());
                continue;
            }
            path.push(token.clone());
            if child.as_object().is_some_and(Map::is_empty) {
                set.insert(path.clone());
            } else {
                walk(child, path, set);
            }
            path.pop();
        }
    }
    let mut set = FieldSet::new();
    walk(value, &mut Vec::new(), &mut set);
    set
}

/// The fields an applied configuration (or any object) sets.
pub fn field_set_of(object: &Value, rules: ListRules) -> FieldSet {
    let mut set = FieldSet::new();
    collect(object, rules, &mut Vec::new(), &mut set);
    set
}

fn collect(value: &Value, rules: ListRules, path: &mut FieldPath, set: &mut FieldSet) {
    let Some(map) = value.as_object() else { return };
    let at_root = path.is_empty();
    let in_metadata = path.len() == 1 && path[0] == "f:metadata";
    for (name, child) in map {
        if (at_root && (name == "apiVersion" || name == "kind"))
            || (in_metadata && SERVER_METADATA.contains(&name.as_str()))
            || child.is_null()
        {
            continue;
        }
        let child_rules = rules.field(name, at_root);
        path.push(format!("f:{name}"));
        match child {
            Value::Object(inner) if !inner.is_empty() => collect(child, child_rules, path, set),
            Value::Array(items) if child_rules.list_keys(name).is_some() => {
                let keys = child_rules.list_keys(name).unwrap_or_default();
                let mut keyed_all = true;
                for item in items {
                    match item_key(item, &keys) {
                        Some(key) => {
                            path.push(key_token(&key));
                            set.insert(path.clone());
                            collect(item, child_rules.items(), path, set);
                            path.pop();
                        }
                        None => keyed_all = false,
                    }
                }
                if !keyed_all || items.is_empty() {
                    set.insert(path.clone());
                }
            }
            _ => {
                set.insert(path.clone());
            }
        }
        path.pop();
    }
}

fn key_token(key: &Map<String, Value>) -> String {
    // serde_json maps are sorted by key, as the API server sorts key fields.
    let sorted: std::collections::BTreeMap<&String, &Value> = key.iter().collect();
    format!("k:{}", serde_json::to_string(&sorted).unwrap_or_default())
}

/// The value at a field path, if present.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = object;
    for token in path {
        current = step(current, token)?;
    }
    Some(current)
}

fn step<'a>(value: &'a Value, token: &str) -> Option<&'a Value> {
    if let Some(name) = token.strip_prefix("f:") {
        return value.get(name);
    }
    let key: Map<String, Value> = serde_json::from_str(token.strip_prefix("k:")?).ok()?;
    value
        .as_array()?
        .iter()
        .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))
}

/// Removes the field or list item at a path.
pub fn remove_path(object: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut current = object;
    for token in parent_path {
        let next = if let Some(name) = token.strip_prefix("f:") {
            current.get_mut(name)
        } else {
            let key: Option<Map<String, Value>> = token
                .strip_prefix("k:")
                .and_then(|k| serde_json::from_str(k).ok());
            match (key, current.as_array_mut()) {
                (Some(key), Some(items)) => items
                    .iter_mut()
                    .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v))),
                _ => None,
            }
        };
        match next {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(map) = current.as_object_mut() {
            map.remove(name);
        }
    } else if let Some(key) = last.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
        if let Some(items) = current.as_array_mut() {
            items.retain(|item| !key.iter().all(|(k, v)| item.get(k) == Some(v)));
        }
    }
}

/// Merges an applied configuration into the live object: maps field by field, keyed lists item
/// by item, everything else replaced.
pub fn merge_applied(live: &mut Value, applied: &Value, rules: ListRules, at_root: bool) {
    let (Some(live_map), Some(applied_map)) = (live.as_object_mut(), applied.as_object()) else {
        *live = applied.clone();
        return;
    };
    for (name, value) in applied_map {
        if value.is_null() {
            continue;
        }
        let child_rules = rules.field(name, at_root);
        let keys = child_rules.list_keys(name);
        match (live_map.get_mut(name), value, keys) {
            (Some(existing @ Value::Object(_)), Value::Object(_), _) => {
                merge_applied(existing, value, child_rules, false)
            }
            (Some(Value::Array(existing)), Value::Array(items), Some(keys)) => {
                for item in items {
                    let key = item_key(item, &keys);
                    let found = key.as_ref().and_then(|key| {
                        existing
                            .iter_mut()
                            .find(|l| item_key(l, &keys).as_ref() == Some(key))
                    });
                    match found {
                        Some(live_item) => {
                            merge_applied(live_item, item, child_rules.items(), false)
                        }
                        None => existing.push(item.clone()),
                    }
                }
            }
            _ => {
                live_map.insert(name.clone(), value.clone());
            }
        }
    }
}

/// `.spec.containers[name="jenkins"].image` for a field path, as conflict messages show it.
pub fn display_path(path: &[String]) -> String {
    let mut text = String::new();
    for token in path {
        if let Some(name) = token.strip_prefix("f:") {
            text.push('.');
            text.push_str(name);
        } else if let Some(key) = token.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            text.push_str(&format!("[{}]", parts.join(",")));
        }
    }
    text
}

/// What an apply request asks for.
pub struct ApplyRequest<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
    pub force: bool,
    pub now: &'a str,
}

/// Applies `applied` over `live` for a manager: checks conflicts with other managers (moving
/// ownership when forced), merges, removes fields the manager no longer applies and nobody else
/// owns, and records the manager's new field set in `entries`.
pub fn apply(
    live: &Value,
    entries: &mut Vec<ManagedEntry>,
    applied: &Value,
    request: &ApplyRequest,
    rules: ListRules,
) -> Result<Value, ApiError> {
    let applied_set = field_set_of(applied, rules);
    let subresource = request.subresource.map(String::from);
    let is_own = |e: &ManagedEntry| {
        e.manager == request.manager && e.operation == "Apply" && e.subresource == subresource
    };

    // Conflicts: another manager owns a field this apply sets to a different value.
    let mut conflicts: Vec<(String, String, FieldPath)> = Vec::new();
    for entry in entries.iter().filter(|e| e.manager != request.manager) {
        for path in applied_set.intersection(&entry.fields) {
            if path.last().is_some_and(|t| t.starts_with("k:")) {
                continue;
            }
            if value_at(applied, path) != value_at(live, path) {
                conflicts.push((
                    entry.manager.clone(),
                    entry.api_version.clone(),
                    path.clone(),
                ));
            }
        }
    }
    if !conflicts.is_empty() {
        if !request.force {
            return Err(conflict_error(&conflicts));
        }
        for entry in entries.iter_mut().filter(|e| e.manager != request.manager) {
            entry
                .fields
                .retain(|p| !conflicts.iter().any(|(_, _, c)| c == p));
        }
    }

    let mut merged = live.clone();
    merge_applied(&mut merged, applied, rules, true);

    // Fields this manager applied before, does not apply now, and nobody else owns go away.
    let previous = entries
        .iter()
        .find(|e| is_own(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !is_own(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut dropped: Vec<&FieldPath> = previous
        .iter()
        .filter(|p| !applied_set.contains(*p) && !others.contains(*p))
        .filter(|p| {
            let below = |q: &FieldPath| q.len() > p.len() && q.starts_with(p);
            !applied_set.iter().any(below) && !others.iter().any(below)
        })
        .filter(|p| !is_key_field(p))
        .collect();
    // Items before their fields: once an item is gone, removing its fields is a no-op.
    dropped.sort_by_key(|p| p.len());
    for path in dropped {
        remove_path(&mut merged, path);
    }

    let entry = ManagedEntry {
        manager: request.manager.to_string(),
        operation: "Apply".into(),
        api_version: request.api_version.to_string(),
        time: request.now.to_string(),
        subresource: subresource.clone(),
        fields: applied_set,
    };
    // Keep the entry's place, so an unchanged apply leaves managedFields unchanged.
    match entries.iter().position(is_own) {
        Some(index) => entries[index] = entry,
        None => entries.push(entry),
    }
    Ok(merged)
}

/// Whether a path is a key field of a list item (`k:{"name":"a"}` then `f:name`): it stays
/// as long as the item does.
fn is_key_field(path: &[String]) -> bool {
    let [.., item, field] = path else {
        return false;
    };
    let (Some(key), Some(name)) = (item.strip_prefix("k:"), field.strip_prefix("f:")) else {
        return false;
    };
    serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|k| k.contains_key(name))
}

fn conflict_error(conflicts: &[(String, String, FieldPath)]) -> ApiError {
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|(manager, api_version, path)| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with \"{manager}\" using {api_version}"),
            field: display_path(path),
        })
        .collect();
    let listed: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.message, c.field))
        .collect();
    let plural = if conflicts.len() == 1 { "" } else { "s" };
    let message = format!(
        "Apply failed with {} conflict{plural}: {}",
        conflicts.len(),
        listed.join("\n")
    );
    let mut error = ApiError::new(409, "Conflict", message);
    error.causes = causes;
    error
}

/// Records a non-apply write (create, update, patch) for a manager: the fields it changed become
/// its own (taken from other managers, as updates never conflict).
pub fn record_update(
    entries: &mut Vec<ManagedEntry>,
    old: &Value,
    new: &Value,
    request: &ApplyRequest,
    rules: ListRules,
) {
    let changed: FieldSet = field_set_of(new, rules)
        .into_iter()
        .filter(|p| {
            // A list item is "changed" when it is new; other fields when their value differs.
            if p.last().is_some_and(|t| t.starts_with("k:")) {
                value_at(old, p).is_none()
            } else {
                value_at(old, p) != value_at(new, p)
            }
        })
        .collect();
    let subresource = request.subresource.map(String::from);
    if !changed.is_empty() {
        for entry in entries.iter_mut() {
            entry.fields.retain(|p| !changed.contains(p));
        }
        match entries.iter_mut().find(|e| {
            e.manager == request.manager && e.operation == "Update" && e.subresource == subresource
        }) {
            Some(entry) => {
                entry.fields.extend(changed);
                entry.time = request.now.to_string();
                entry.api_version = request.api_version.to_string();
            }
            None => entries.push(ManagedEntry {
                manager: request.manager.to_string(),
                operation: "Update".into(),
                api_version: request.api_version.to_string(),
                time: request.now.to_string(),
                subresource,
                fields: changed,
            }),
        }
    }
    forget_missing(entries, new);
}

/// Drops owned paths that no longer exist in the object, and entries left empty.
pub fn forget_missing(entries: &mut Vec<ManagedEntry>, object: &Value) {
    for entry in entries.iter_mut() {
        entry.fields.retain(|p| value_at(object, p).is_some());
    }
    entries.retain(|e| !e.fields.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_v1_round_trips_with_dot_markers_for_owned_items() {
        let fields = json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"main\"}": {".": {}, "f:image": {}}}},
        });
        let set = fields_from_json(&fields);
        assert_eq!(set.len(), 3);
        assert_eq!(fields_to_json(&set), fields);
    }

    #[test]
    fn display_paths_name_list_items_by_key() {
        let path: FieldPath = vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"a\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(display_path(&path), ".spec.containers[name=\"a\"].image");
    }
}

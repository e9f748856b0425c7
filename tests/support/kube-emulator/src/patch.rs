//! Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch
//! (simplified), and the list-merge rules shared with server-side apply.

use serde_json::{Map, Value};

use crate::status::ApiError;

/// Where list-merge rules come from while walking an object.
#[derive(Clone, Copy, Debug)]
pub enum ListRules<'a> {
    /// Built-in kinds: lists known to be keyed (containers by name, conditions by type, ...).
    Builtin,
    /// Custom resources: only `x-kubernetes-list-type: map` in the schema makes a list keyed.
    Schema(Option<&'a Value>),
}

impl<'a> ListRules<'a> {
    /// The rules for the root of an object of a kind (with its schema for custom resources).
    pub fn root(schema: Option<&'a Value>) -> Self {
        match schema {
            Some(schema) => ListRules::Schema(Some(schema)),
            None => ListRules::Builtin,
        }
    }

    /// The rules below field `name` of an object at this level.
    pub fn field(self, name: &str, at_root: bool) -> Self {
        match self {
            ListRules::Builtin => ListRules::Builtin,
            // Object metadata follows the built-in rules even in custom resources.
            ListRules::Schema(_) if at_root && name == "metadata" => ListRules::Builtin,
            ListRules::Schema(None) => ListRules::Schema(None),
            ListRules::Schema(Some(schema)) => ListRules::Schema(
                schema
                    .pointer(&format!("/properties/{}", escape_pointer(name)))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object())),
            ),
        }
    }

    /// The rules for the items of a list at this level.
    pub fn items(self) -> Self {
        match self {
            ListRules::Schema(Some(schema)) => ListRules::Schema(schema.get("items")),
            other => other,
        }
    }

    /// Candidate key fields of the list found under field `name`, or `None` for atomic lists.
    pub fn list_keys(self, name: &str) -> Option<Vec<String>> {
        match self {
            ListRules::Builtin => {
                let keys: &[&str] = match name {
                    "containers"
                    | "initContainers"
                    | "ephemeralContainers"
                    | "env"
                    | "volumes"
                    | "volumeMounts"
                    | "imagePullSecrets" => &["name"],
                    "conditions" => &["type"],
                    "ownerReferences" => &["uid"],
                    "ports" => &["containerPort", "port"],
                    _ => return None,
                };
                Some(keys.iter().map(|k| k.to_string()).collect())
            }
            ListRules::Schema(Some(schema))
                if schema["x-kubernetes-list-type"].as_str() == Some("map") =>
            {
                let keys = schema["x-kubernetes-list-map-keys"].as_array()?;
                Some(
                    keys.iter()
                        .filter_map(|k| k.as_str().map(String::from))
                        .collect(),
                )
            }
            ListRules::Schema(_) => None,
        }
    }
}

/// Escapes a key for use in a JSON pointer.
pub fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The key of a keyed-list item: the candidate key fields it carries, or `None` if it has none.
pub fn item_key(item: &Value, keys: &[String]) -> Option<Map<String, Value>> {
    let object = item.as_object()?;
    let key: Map<String, Value> = keys
        .iter()
        .filter_map(|k| object.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    (!key.is_empty()).then_some(key)
}

/// Applies an RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Applies a strategic merge patch, simplified: a merge patch where keyed lists (see
/// [`ListRules::Builtin`]) merge item by item, `$patch: delete` removes an item, and other
/// `$` directives are ignored.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            target.remove(key);
            continue;
        }
        let keys = ListRules::Builtin.list_keys(key);
        match (target.get_mut(key), value, keys) {
            (Some(Value::Array(live)), Value::Array(items), Some(keys)) => {
                merge_keyed_items(live, items, &keys)
            }
            (Some(existing), _, _) => strategic_merge_patch(existing, value),
            (None, _, _) => {
                let mut fresh = Value::Null;
                strategic_merge_patch(&mut fresh, value);
                target.insert(key.clone(), fresh);
            }
        }
    }
}

fn merge_keyed_items(live: &mut Vec<Value>, items: &[Value], keys: &[String]) {
    for item in items {
        let key = item_key(item, keys);
        let position = key.as_ref().and_then(|key| {
            live.iter()
                .position(|l| item_key(l, keys).as_ref() == Some(key))
        });
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                live.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge_patch(&mut live[i], item),
            (None, false) => {
                let mut fresh = Value::Null;
                strategic_merge_patch(&mut fresh, item);
                live.push(fresh);
            }
        }
    }
}

/// Applies an RFC 6902 JSON patch; a failed `test` or a bad path is 422 like the real server.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let operations: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    // The API server's JSON patch library lets `test` with a null value pass when the path is
    // missing; kube's finalizer helper relies on it to add the first finalizer.
    let operations = json_patch::Patch(
        operations
            .0
            .into_iter()
            .filter(|op| match op {
                json_patch::PatchOperation::Test(test) => {
                    !(test.value.is_null() && target.pointer(test.path.as_str()).is_none())
                }
                _ => true,
            })
            .collect(),
    );
    json_patch::patch(target, &operations).map_err(|e| {
        // A failed `test` and a path that does not resolve are both the client's mistake.
        let message =
            format!("the server rejected our request due to an error in our request: {e}");
        ApiError::new(422, "Invalid", message)
    })
}

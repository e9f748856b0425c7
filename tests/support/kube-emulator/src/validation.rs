//! Custom resources against their CRD's structural `openAPIV3Schema`: pruning of unknown fields,
//! defaulting, and validation with field causes like the API server's.
//!
//! `x-kubernetes-validations` (CEL) rules are evaluated in `cel_rules`.

use serde_json::{Map, Value};

use crate::patch::escape_pointer;
use crate::status::Cause;

/// Prunes unknown fields (and nulls of non-nullable fields), then applies defaults, in place.
/// `apiVersion`, `kind` and `metadata` at the root are kept as they are.
pub fn prune_and_default(object: &mut Value, schema: &Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let root_keys: Vec<String> = map.keys().cloned().collect();
    for key in root_keys {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match property_schema(schema, &key) {
            Some(child_schema) => {
                if map[&key].is_null() && child_schema["nullable"] != true {
                    map.remove(&key);
                } else if let Some(child) = map.get_mut(&key) {
                    prune(child, child_schema);
                }
            }
            None if preserves_unknown(schema) => {}
            None => {
                map.remove(&key);
            }
        }
    }
    apply_defaults(object, schema, true);
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == true
}

fn property_schema<'a>(schema: &'a Value, key: &str) -> Option<&'a Value> {
    schema
        .pointer(&format!("/properties/{}", escape_pointer(key)))
        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
}

fn prune(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            let has_structure =
                schema.get("properties").is_some() || schema.get("additionalProperties").is_some();
            if !has_structure && preserves_unknown(schema) {
                return;
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let embedded_meta = schema["x-kubernetes-embedded-resource"] == true
                    && matches!(key.as_str(), "apiVersion" | "kind" | "metadata");
                match property_schema(schema, &key) {
                    Some(child_schema) => {
                        if map[&key].is_null() && child_schema["nullable"] != true {
                            map.remove(&key);
                        } else if let Some(child) = map.get_mut(&key) {
                            prune(child, child_schema);
                        }
                    }
                    None if schema["additionalProperties"] == true => {}
                    None if preserves_unknown(schema) || embedded_meta => {}
                    None => {
                        map.remove(&key);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn apply_defaults(value: &mut Value, schema: &Value, at_root: bool) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = schema.get("properties") {
                for (key, child_schema) in properties {
                    if at_root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if !map.contains_key(key)
                        && let Some(default) = child_schema.get("default")
                    {
                        map.insert(key.clone(), default.clone());
                    }
                    if let Some(child) = map.get_mut(key) {
                        apply_defaults(child, child_schema, false);
                    }
                }
            } else if let Some(additional) =
                schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for child in map.values_mut() {
                    apply_defaults(child, additional, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item, item_schema, false);
                }
            }
        }
        _ => {}
    }
}

/// Validates an object (already pruned and defaulted) against its schema.
/// The part of a CRD's schema a write is checked against: root-level constraints on
/// `apiVersion`, `kind` and `metadata` are the server's, not the CRD's. Computed once per kind
/// (every write of a custom resource is checked against it).
pub fn root_schema(schema: &Value) -> Value {
    let mut root_schema = schema.clone();
    if let Some(required) = root_schema
        .get_mut("required")
        .and_then(Value::as_array_mut)
    {
        required.retain(|r| !matches!(r.as_str(), Some("apiVersion" | "kind" | "metadata")));
    }
    if let Some(properties) = root_schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
    {
        for key in ["apiVersion", "kind", "metadata"] {
            properties.remove(key);
        }
    }
    root_schema
}

/// The causes for which the object does not match `root_schema` (see [`root_schema`]).
pub fn validate(object: &Value, root_schema: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(map) = object.as_object() else {
        causes.push(cause(
            "FieldValueInvalid",
            "",
            "Invalid value: the object must be a map",
        ));
        return causes;
    };
    let mut root = Map::new();
    for (key, value) in map {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            root.insert(key.clone(), value.clone());
        }
    }
    check(&Value::Object(root), root_schema, "", &mut causes);
    causes
}

fn cause(reason: &str, field: &str, message: impl Into<String>) -> Cause {
    Cause {
        reason: reason.into(),
        message: message.into(),
        field: field.into(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn check(value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() {
        if schema["nullable"] != true {
            causes.push(cause(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: \"null\": {path} in body must be of type {}",
                    schema_type(schema)
                ),
            ));
        }
        return;
    }

    // Type.
    let int_or_string = schema["x-kubernetes-int-or-string"] == true;
    let actual = type_name(value);
    let type_ok = if int_or_string {
        matches!(actual, "integer" | "string")
    } else {
        match schema["type"].as_str() {
            None => true,
            Some("number") => matches!(actual, "integer" | "number"),
            Some(expected) => expected == actual,
        }
    };
    if !type_ok {
        let expected = if int_or_string {
            "integer or string"
        } else {
            schema_type(schema)
        };
        causes.push(cause(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: \"{actual}\": {path} in body must be of type {expected}: \
                 \"{actual}\""
            ),
        ));
        return;
    }

    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let listed: Vec<String> = allowed.iter().map(short).collect();
        causes.push(cause(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                short(value),
                listed.join(", ")
            ),
        ));
    }

    match value {
        Value::String(text) => check_string(text, schema, path, causes),
        Value::Number(number) => check_number(
            number.as_f64().unwrap_or_default(),
            value,
            schema,
            path,
            causes,
        ),
        Value::Array(items) => check_array(items, schema, path, causes),
        Value::Object(map) => check_object(map, schema, path, causes),
        _ => {}
    }
    check_combinators(value, schema, path, causes);
}

fn schema_type(schema: &Value) -> &str {
    schema["type"].as_str().unwrap_or("object")
}

fn check_string(text: &str, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let length = text.chars().count() as u64;
    if let Some(max) = schema["maxLength"].as_u64()
        && length > max
    {
        causes.push(cause(
            "FieldValueTooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema["minLength"].as_u64()
        && length < min
    {
        causes.push(cause(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {text:?}: {path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(text) => causes.push(cause(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {text:?}: {path} in body should match '{pattern}'"),
            )),
            Ok(_) => {}
            Err(_) => causes.push(cause(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {pattern:?}: the schema pattern does not compile"),
            )),
        }
    }
}

fn check_number(number: f64, value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let exclusive_min = schema["exclusiveMinimum"] == true;
    let exclusive_max = schema["exclusiveMaximum"] == true;
    if let Some(min) = schema["minimum"].as_f64()
        && (number < min || (exclusive_min && number == min))
    {
        let relation = if exclusive_min {
            "greater than"
        } else {
            "greater than or equal to"
        };
        causes.push(cause(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: {value}: {path} in body should be {relation} {}",
                schema["minimum"]
            ),
        ));
    }
    if let Some(max) = schema["maximum"].as_f64()
        && (number > max || (exclusive_max && number == max))
    {
        let relation = if exclusive_max {
            "less than"
        } else {
            "less than or equal to"
        };
        causes.push(cause(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: {value}: {path} in body should be {relation} {}",
                schema["maximum"]
            ),
        ));
    }
}

fn check_array(items: &[Value], schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let count = items.len() as u64;
    if let Some(max) = schema["maxItems"].as_u64()
        && count > max
    {
        causes.push(cause(
            "FieldValueTooMany",
            path,
            format!("Too many: {count}: must have at most {max} items"),
        ));
    }
    if let Some(min) = schema["minItems"].as_u64()
        && count < min
    {
        causes.push(cause(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {count}: {path} in body should have at least {min} items"),
        ));
    }
    if let Some(item_schema) = schema.get("items") {
        for (index, item) in items.iter().enumerate() {
            check(item, item_schema, &format!("{path}[{index}]"), causes);
        }
    }
    // Keyed and set lists must not repeat keys or values.
    let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
        .as_array()
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let identity = |item: &Value| -> Value {
        match schema["x-kubernetes-list-type"].as_str() {
            Some("map") => Value::Object(
                keys.iter()
                    .map(|k| (k.to_string(), item.get(*k).cloned().unwrap_or_default()))
                    .collect(),
            ),
            _ => item.clone(),
        }
    };
    if matches!(
        schema["x-kubernetes-list-type"].as_str(),
        Some("map" | "set")
    ) {
        let mut seen: Vec<Value> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let id = identity(item);
            if seen.contains(&id) {
                causes.push(cause(
                    "FieldValueDuplicate",
                    &format!("{path}[{index}]"),
                    format!("Duplicate value: {id}"),
                ));
            }
            seen.push(id);
        }
    }
}

fn check_object(map: &Map<String, Value>, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                causes.push(cause(
                    "FieldValueRequired",
                    &join(path, name),
                    "Required value",
                ));
            }
        }
    }
    let count = map.len() as u64;
    if let Some(max) = schema["maxProperties"].as_u64()
        && count > max
    {
        causes.push(cause(
            "FieldValueTooMany",
            path,
            format!("Too many: {count}: must have at most {max} items"),
        ));
    }
    if let Some(min) = schema["minProperties"].as_u64()
        && count < min
    {
        causes.push(cause(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {count}: {path} in body should have at least {min} properties"),
        ));
    }
    for (key, child) in map {
        if let Some(child_schema) = property_schema(schema, key) {
            check(child, child_schema, &join(path, key), causes);
        }
    }
}

fn check_combinators(value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let passes = |sub: &Value| {
        let mut inner = Vec::new();
        check(value, sub, path, &mut inner);
        inner.is_empty()
    };
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(value, sub, path, causes);
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(passes)
    {
        causes.push(cause(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: {}: {path} in body must match at least one schema in anyOf",
                short(value)
            ),
        ));
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && one.iter().filter(|s| passes(s)).count() != 1
    {
        causes.push(cause(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: {}: {path} in body must match exactly one schema in oneOf",
                short(value)
            ),
        ));
    }
    if let Some(not) = schema.get("not")
        && passes(not)
    {
        causes.push(cause(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: {}: {path} in body must not match the schema in not",
                short(value)
            ),
        ));
    }
}

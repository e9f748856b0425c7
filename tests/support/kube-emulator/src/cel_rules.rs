//! `x-kubernetes-validations`: the CEL rules of custom resources.
//!
//! Writing a CRD compiles every rule of every version's schema ([`check_crd`]); a rule that does
//! not compile refuses the CRD with 422, as on a real server. Compiling is kube-cel's parse plus
//! the part of the API server's type check that catches most mistakes: every variable is `self`,
//! `oldSelf` or a macro's own, every field selected from a schema object is one of its
//! (escaped) properties, and `oldSelf` only appears where the old value can be correlated.
//!
//! Every write of a custom resource then evaluates the rules ([`evaluate`]) with kube-cel, `self`
//! bound to the node's value and, on updates, `oldSelf` to the old value at the same path;
//! failures become `FieldValueInvalid` causes shaped like the API server's.

use std::fmt;

use kube_cel::cel::Program;
use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr};
use kube_cel::{CompiledSchema, ErrorKind, Rule, ValidationError};
use serde_json::{Map, Value, json};

use crate::status::Cause;

/// The compiled rules of a custom resource kind's schema.
pub struct Rules(CompiledSchema);

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rules")
    }
}

impl Rules {
    /// Compiles the rules of a schema already accepted by [`check_crd`]; `None` when it has none
    /// (the server then has no CEL validator for the kind).
    pub fn compile(schema: &Value) -> Option<Rules> {
        has_rules(schema).then(|| Rules(kube_cel::compile_schema(schema)))
    }
}

fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => map.iter().any(|(key, value)| {
            (key == "x-kubernetes-validations" && value.as_array().is_some_and(|a| !a.is_empty()))
                || has_rules(value)
        }),
        Value::Array(items) => items.iter().any(has_rules),
        _ => false,
    }
}

/// The causes for which a real API server refuses the CRD: rules that do not compile, in the
/// schema of any version.
pub fn check_crd(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (index, version) in versions.iter().enumerate() {
        if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
            let path = format!("spec.versions[{index}].schema.openAPIV3Schema");
            let root = root_view(schema);
            check_node(&root, true, &path, &mut causes);
        }
    }
    causes
}

/// kube-cel's cost heuristic on every rule of a CRD: one line per rule whose estimate exceeds
/// its budget of 1,000,000 (the API server's per-call limit; its static per-rule limit is ten
/// times that) or that walks a list without `maxItems`. It is a coarse estimate, not the API
/// server's cost model: an empty answer does not prove that a real server accepts the CRD.
pub fn cost_warnings(crd: &Value) -> Vec<String> {
    let mut warnings = Vec::new();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for version in versions {
        if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
            cost_of_node(schema, &mut warnings);
        }
    }
    warnings
}

fn cost_of_node(schema: &Value, warnings: &mut Vec<String>) {
    let rules = schema["x-kubernetes-validations"].as_array();
    if let Some(rules) = rules.filter(|r| !r.is_empty()) {
        let compiled = kube_cel::compile_schema(schema);
        for rule in rules.iter().filter_map(|r| r["rule"].as_str()) {
            for warning in kube_cel::estimate_rule_cost(rule, &compiled) {
                warnings.push(format!("{rule}: {}", warning.message));
            }
        }
    }
    let children = schema["properties"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
        .chain(schema.get("items"))
        .chain(schema.get("additionalProperties").filter(|a| a.is_object()));
    for child in children {
        cost_of_node(child, warnings);
    }
}

/// The root schema as CEL sees it: `apiVersion` and `kind` strings, and `metadata` with only
/// `name` and `generateName`.
fn root_view(schema: &Value) -> Value {
    let mut root = schema.clone();
    if let Some(map) = root.as_object_mut() {
        let properties = map
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(properties) = properties {
            for key in ["apiVersion", "kind"] {
                properties
                    .entry(key)
                    .or_insert_with(|| json!({"type": "string"}));
            }
            properties.insert(
                "metadata".into(),
                json!({"type": "object", "properties": {
                    "name": {"type": "string"}, "generateName": {"type": "string"},
                }}),
            );
        }
    }
    root
}

fn check_node(schema: &Value, correlatable: bool, path: &str, causes: &mut Vec<Cause>) {
    let rules = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (index, raw) in rules.iter().enumerate() {
        let field = format!("{path}.x-kubernetes-validations[{index}].rule");
        if let Err(problem) = check_rule(raw, schema, correlatable) {
            let shown = raw["rule"].as_str().unwrap_or_default();
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {shown:?}: {problem}"),
                field,
            });
        }
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            let child_path = format!("{path}.properties[{name}]");
            check_node(child, correlatable, &child_path, causes);
        }
    }
    if let Some(items) = schema.get("items") {
        let keyed = schema["x-kubernetes-list-type"] == "map";
        let items_path = format!("{path}.items");
        check_node(items, correlatable && keyed, &items_path, causes);
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        let additional_path = format!("{path}.additionalProperties");
        check_node(additional, correlatable, &additional_path, causes);
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        for (index, branch) in schema[keyword].as_array().into_iter().flatten().enumerate() {
            let branch_path = format!("{path}.{keyword}[{index}]");
            check_node(branch, correlatable, &branch_path, causes);
        }
    }
}

/// Why a rule does not compile at this node, if it does not.
fn check_rule(raw: &Value, schema: &Value, correlatable: bool) -> Result<(), String> {
    let rule: Rule =
        serde_json::from_value(raw.clone()).map_err(|e| format!("invalid rule: {e}"))?;
    let program = Program::compile(&rule.rule).map_err(|e| format!("compilation failed: {e}"))?;
    let mut checker = TypeCheck::default();
    checker.bind("self", Some(schema));
    checker.bind("oldSelf", Some(schema));
    checker.check(program.expression());
    if let Some(problem) = checker.problems.first() {
        return Err(format!("compilation failed: {problem}"));
    }
    let transition = program.references().has_variable("oldSelf");
    if transition && !correlatable {
        return Err("oldSelf cannot be used on the uncorrelatable portion of the schema".into());
    }
    if rule.optional_old_self == Some(true) && !transition {
        return Err("optionalOldSelf may only be set on a rule that uses oldSelf".into());
    }
    if let Some(expression) = &rule.message_expression {
        let program = Program::compile(expression)
            .map_err(|e| format!("messageExpression compilation failed: {e}"))?;
        let mut checker = TypeCheck::default();
        checker.bind("self", Some(schema));
        checker.bind("oldSelf", Some(schema));
        checker.check(program.expression());
        if let Some(problem) = checker.problems.first() {
            return Err(format!("messageExpression compilation failed: {problem}"));
        }
    }
    Ok(())
}

/// The part of CEL's type check that follows the schema: variables in scope, and fields of
/// objects whose properties are known.
#[derive(Default)]
struct TypeCheck<'a> {
    scope: Vec<(String, Option<&'a Value>)>,
    problems: Vec<String>,
}

impl<'a> TypeCheck<'a> {
    fn bind(&mut self, name: &str, schema: Option<&'a Value>) {
        self.scope.push((name.to_string(), schema));
    }

    /// Checks an expression; its schema when known.
    fn check(&mut self, expression: &IdedExpr) -> Option<&'a Value> {
        match &expression.expr {
            Expr::Ident(name) => {
                if name.starts_with('@') {
                    return None;
                }
                match self.scope.iter().rev().find(|(bound, _)| bound == name) {
                    Some((_, schema)) => *schema,
                    None => {
                        self.problems
                            .push(format!("undeclared reference to '{name}'"));
                        None
                    }
                }
            }
            Expr::Select(select) => {
                let operand = self.check(&select.operand)?;
                self.field(operand, &select.field)
            }
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    self.check(target);
                }
                let args: Vec<Option<&'a Value>> =
                    call.args.iter().map(|a| self.check(a)).collect();
                if call.func_name == "_[_]" && call.target.is_none() && args.len() == 2 {
                    let container = args[0]?;
                    return container
                        .get("items")
                        .or_else(|| container.get("additionalProperties"))
                        .filter(|s| s.is_object());
                }
                None
            }
            Expr::Comprehension(comprehension) => {
                let range = self.check(&comprehension.iter_range);
                // Over a list, the variable is an item; over a map, a key (a string).
                let element = range.and_then(|r| r.get("items")).filter(|s| s.is_object());
                self.check(&comprehension.accu_init);
                let depth = self.scope.len();
                self.bind(&comprehension.iter_var, element);
                if let Some(second) = &comprehension.iter_var2 {
                    self.bind(second, None);
                }
                self.bind(&comprehension.accu_var, None);
                self.check(&comprehension.loop_cond);
                self.check(&comprehension.loop_step);
                self.check(&comprehension.result);
                self.scope.truncate(depth);
                None
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.check(element);
                }
                None
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(entry) => {
                            self.check(&entry.key);
                            self.check(&entry.value);
                        }
                        EntryExpr::StructField(field) => {
                            self.check(&field.value);
                        }
                    }
                }
                None
            }
            Expr::Struct(structure) => {
                for entry in &structure.entries {
                    if let EntryExpr::StructField(field) = &entry.expr {
                        self.check(&field.value);
                    }
                }
                None
            }
            Expr::Literal(_) | Expr::Unspecified => None,
        }
    }

    /// The schema of `field` selected from a value of `schema`, as the API server's type check
    /// sees it: properties by their escaped names, map values, or unknown.
    fn field(&mut self, schema: &'a Value, field: &str) -> Option<&'a Value> {
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            let found = properties
                .iter()
                .find(|(name, _)| escape(name).as_deref() == Some(field));
            if let Some((_, child)) = found {
                return Some(child);
            }
        }
        if let Some(additional) = schema.get("additionalProperties") {
            return additional.as_object().map(|_| additional);
        }
        if schema["x-kubernetes-preserve-unknown-fields"] == true
            || schema["x-kubernetes-int-or-string"] == true
        {
            return None;
        }
        match schema["type"].as_str() {
            Some("object") if schema.get("properties").is_some() => {
                let hint = match unescaped_keyword(field) {
                    Some(escaped) => format!(" (a property named {field} is {escaped} in CEL)"),
                    None => String::new(),
                };
                self.problems
                    .push(format!("undefined field '{field}'{hint}"));
                None
            }
            Some(scalar @ ("string" | "integer" | "number" | "boolean" | "array")) => {
                let shown = match scalar {
                    "integer" => "int",
                    "number" => "double",
                    "boolean" => "bool",
                    "array" => "list",
                    other => other,
                };
                self.problems
                    .push(format!("type '{shown}' does not support field selection"));
                None
            }
            _ => None,
        }
    }
}

/// CEL's reserved words: a property with one of these names is `__<word>__` in a rule.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

fn unescaped_keyword(field: &str) -> Option<String> {
    RESERVED.contains(&field).then(|| format!("__{field}__"))
}

/// A property name as a CEL identifier, escaped as the API server escapes it; `None` when CEL
/// cannot reach the property.
fn escape(name: &str) -> Option<String> {
    let first = name.chars().next()?;
    if first.is_ascii_digit() {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut escaped = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                escaped.push_str("__underscores__");
            }
            '.' => escaped.push_str("__dot__"),
            '-' => escaped.push_str("__dash__"),
            '/' => escaped.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => escaped.push(c),
            _ => return None,
        }
    }
    Some(escaped)
}

/// Evaluates the rules against a custom resource (pruned and defaulted) and, on updates, its
/// stored previous state.
pub fn evaluate(rules: &Rules, object: &Value, old: Option<&Value>) -> Vec<Cause> {
    let view = cel_view(object);
    let old_view = old.map(cel_view);
    kube_cel::validate_compiled(&rules.0, &view, old_view.as_ref())
        .into_iter()
        .map(|error| cause(&view, error))
        .collect()
}

/// The object as the rules see it: the root's `metadata` reduced to `name` and `generateName`,
/// and null values left out (the server evaluates no rule on a null value).
fn cel_view(object: &Value) -> Value {
    let mut view = without_nulls(object);
    if let Some(metadata) = view.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.retain(|key, _| matches!(key.as_str(), "name" | "generateName"));
    }
    view
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn cause(view: &Value, error: ValidationError) -> Cause {
    let field = if error.field_path.is_empty() {
        "<nil>".to_string()
    } else {
        error.field_path.clone()
    };
    let shown_type = type_at(view, &error.field_path);
    let detail = match error.kind {
        ErrorKind::ValidationFailure => error.message,
        _ => format!("failed rule: {}: {}", error.rule, error.message),
    };
    let reason = error
        .reason
        .filter(|_| error.kind == ErrorKind::ValidationFailure)
        .unwrap_or_else(|| "FieldValueInvalid".into());
    let message = match reason.as_str() {
        "FieldValueForbidden" => format!("Forbidden: {detail}"),
        "FieldValueRequired" => format!("Required value: {detail}"),
        "FieldValueDuplicate" => format!("Duplicate value: \"{shown_type}\": {detail}"),
        _ => format!("Invalid value: \"{shown_type}\": {detail}"),
    };
    Cause {
        reason,
        message,
        field,
    }
}

/// The JSON type of the value at a kube-cel field path (`spec.items[0].name`), as the server
/// names the schema type in an `Invalid value` message.
fn type_at(view: &Value, path: &str) -> &'static str {
    let mut current = Some(view);
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (key, indexes) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        current = current.and_then(|v| v.get(key));
        for index in indexes
            .split(['[', ']'])
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse::<usize>().ok())
        {
            current = current.and_then(|v| v.get(index));
        }
    }
    match current {
        Some(Value::String(_)) => "string",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(n)) if n.is_f64() => "number",
        Some(Value::Number(_)) => "integer",
        Some(Value::Array(_)) => "array",
        _ => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_names_escape_as_on_the_api_server() {
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(escape("x-prop").as_deref(), Some("x__dash__prop"));
        assert_eq!(
            escape("redact__d").as_deref(),
            Some("redact__underscores__d")
        );
        assert_eq!(escape("my_field").as_deref(), Some("my_field"));
        assert_eq!(escape("a.b/c").as_deref(), Some("a__dot__b__slash__c"));
        assert_eq!(escape("1st"), None);
        assert_eq!(escape("with space"), None);
    }

    #[test]
    fn the_type_at_a_path_follows_fields_and_indexes() {
        let view = json!({"spec": {"items": [{"name": "a"}], "size": 3}});
        assert_eq!(type_at(&view, ""), "object");
        assert_eq!(type_at(&view, "spec.items"), "array");
        assert_eq!(type_at(&view, "spec.items[0].name"), "string");
        assert_eq!(type_at(&view, "spec.size"), "integer");
    }
}

//! The `tree` query parameter of Jenkins' remote API: which properties an `api/json` answer
//! keeps, level by level, and which part of each list (`{M,N}` ranges).
//!
//! The grammar is Stapler's: a comma-separated list of property names, each optionally followed
//! by `[...]` (the properties kept inside it) and `{...}` (a range of a list: `{M,N}` keeps the
//! items from index M up to, not including, N; `{M,}` from M on; `{,N}` the first N; `{N}` the
//! item at N). `*` stands for any property. `_class` is always kept. A property named without a
//! `[...]` keeps only the `_class` of an object. A tree that does not parse is a 500
//! ("Malformed tree expression"), as Jenkins answers.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One level of a tree: the properties kept here and the range of this property's list.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tree {
    children: BTreeMap<String, Tree>,
    range: Option<(usize, usize)>,
}

impl Tree {
    /// Parses a `tree` parameter.
    pub fn parse(spec: &str) -> Result<Tree, String> {
        let tokens = tokenize(spec);
        let mut at = 0;
        let mut tree = Tree::default();
        list(&tokens, &mut at, &mut tree)?;
        match tokens.get(at) {
            None => Ok(tree),
            Some(token) => Err(format!("expected the end at {token:?}")),
        }
    }

    /// The JSON object `value` with only the properties this tree names.
    pub fn prune(&self, value: &Value) -> Value {
        let Value::Object(map) = value else {
            return value.clone();
        };
        let mut kept = Map::new();
        if let Some(class) = map.get("_class") {
            kept.insert("_class".into(), class.clone());
        }
        for (name, child) in map {
            if name == "_class" {
                continue;
            }
            let Some(subtree) = self.children.get(name).or_else(|| self.children.get("*")) else {
                continue;
            };
            kept.insert(name.clone(), subtree.value(child));
        }
        Value::Object(kept)
    }

    /// A property's value as this (its own) level of the tree shows it.
    fn value(&self, value: &Value) -> Value {
        match value {
            Value::Array(items) => {
                let (min, max) = self.range.unwrap_or((0, usize::MAX));
                let items = items
                    .iter()
                    .take(max)
                    .skip(min)
                    .map(|item| self.value(item));
                Value::Array(items.collect())
            }
            Value::Object(_) => self.prune(value),
            other => other.clone(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Comma,
    Open,
    Close,
    OpenRange,
    CloseRange,
    Name(String),
}

fn tokenize(spec: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut name = String::new();
    for c in spec.chars() {
        let token = match c {
            ',' => Token::Comma,
            '[' => Token::Open,
            ']' => Token::Close,
            '{' => Token::OpenRange,
            '}' => Token::CloseRange,
            other => {
                name.push(other);
                continue;
            }
        };
        if !name.is_empty() {
            tokens.push(Token::Name(std::mem::take(&mut name)));
        }
        tokens.push(token);
    }
    if !name.is_empty() {
        tokens.push(Token::Name(name));
    }
    tokens
}

fn list(tokens: &[Token], at: &mut usize, tree: &mut Tree) -> Result<(), String> {
    loop {
        node(tokens, at, tree)?;
        if tokens.get(*at) != Some(&Token::Comma) {
            return Ok(());
        }
        *at += 1;
    }
}

fn node(tokens: &[Token], at: &mut usize, tree: &mut Tree) -> Result<(), String> {
    let Some(Token::Name(name)) = tokens.get(*at) else {
        return Err(format!("expected a name at token {at}"));
    };
    *at += 1;
    let mut subtree = Tree::default();
    if tokens.get(*at) == Some(&Token::Open) {
        *at += 1;
        list(tokens, at, &mut subtree)?;
        expect(tokens, at, &Token::Close)?;
    }
    if tokens.get(*at) == Some(&Token::OpenRange) {
        *at += 1;
        subtree.range = Some(range(tokens, at)?);
        expect(tokens, at, &Token::CloseRange)?;
    }
    tree.children.insert(name.clone(), subtree);
    Ok(())
}

fn range(tokens: &[Token], at: &mut usize) -> Result<(usize, usize), String> {
    if tokens.get(*at) == Some(&Token::Comma) {
        *at += 1;
        return Ok((0, number(tokens, at)?));
    }
    let min = number(tokens, at)?;
    if tokens.get(*at) == Some(&Token::CloseRange) {
        return Ok((min, min.saturating_add(1)));
    }
    expect(tokens, at, &Token::Comma)?;
    if tokens.get(*at) == Some(&Token::CloseRange) {
        return Ok((min, usize::MAX));
    }
    Ok((min, number(tokens, at)?))
}

fn number(tokens: &[Token], at: &mut usize) -> Result<usize, String> {
    match tokens.get(*at) {
        Some(Token::Name(text)) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            *at += 1;
            text.parse()
                .map_err(|_| format!("number out of range at token {at}"))
        }
        _ => Err(format!("expected a number at token {at}")),
    }
}

fn expect(tokens: &[Token], at: &mut usize, wanted: &Token) -> Result<(), String> {
    if tokens.get(*at) == Some(wanted) {
        *at += 1;
        Ok(())
    } else {
        Err(format!("expected {wanted:?} at token {at}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> Value {
        let builds: Vec<Value> = (1..=5)
            .rev()
            .map(|n| {
                json!({"_class": "Run", "number": n, "url": format!("u/{n}/"),
                            "actions": [{"_class": "A", "parameters": [{"name": "P"}]}]})
            })
            .collect();
        json!({"_class": "Job", "name": "j", "color": "blue", "builds": builds,
               "lastBuild": {"_class": "Run", "number": 5}})
    }

    #[test]
    fn only_the_named_properties_and_the_class_are_kept() {
        let tree = Tree::parse("name,lastBuild").expect("parses");
        assert_eq!(
            tree.prune(&job()),
            json!({"_class": "Job", "name": "j", "lastBuild": {"_class": "Run"}})
        );
        let tree = Tree::parse("builds[number,actions[parameters[name]]]{1,3}").expect("parses");
        let pruned = tree.prune(&job());
        let numbers: Vec<&Value> = pruned["builds"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|b| &b["number"])
            .collect();
        assert_eq!(numbers, [&json!(4), &json!(3)]);
        assert_eq!(
            pruned["builds"][0]["actions"],
            json!([{"_class": "A", "parameters": [{"name": "P"}]}])
        );
        assert!(pruned["builds"][0].get("url").is_none());
    }

    #[test]
    fn ranges_take_every_form_stapler_accepts() {
        let numbers = |spec: &str| -> Vec<u64> {
            let tree = Tree::parse(spec).expect("parses");
            tree.prune(&job())["builds"]
                .as_array()
                .expect("a list")
                .iter()
                .filter_map(|b| b["number"].as_u64())
                .collect()
        };
        assert_eq!(numbers("builds[number]"), [5, 4, 3, 2, 1]);
        assert_eq!(numbers("builds[number]{,2}"), [5, 4]);
        assert_eq!(numbers("builds[number]{3,}"), [2, 1]);
        assert_eq!(numbers("builds[number]{1}"), [4]);
        assert_eq!(numbers("builds[number]{4,100}"), [1]);
        assert!(numbers("builds[number]{9,12}").is_empty());
        assert_eq!(numbers("*[number]{0,1}"), [5]);
    }

    #[test]
    fn malformed_trees_are_refused() {
        for bad in ["", "a[b", "a{1,x}", "a{}", "a,,b", "a]b", "a{1,2"] {
            assert!(Tree::parse(bad).is_err(), "{bad:?}");
        }
    }
}

//! JSON Schemas as OpenAI clients write them, cut down to the OpenAPI 3.0
//! subset Gemini accepts for `functionDeclarations[].parameters` and
//! `generationConfig.responseSchema`.
//!
//! Gemini refuses a whole request over one keyword it does not know, so
//! this keeps an allow-list instead of a deny-list: `type`, `format`,
//! `title`, `description`, `nullable`, `enum`, `properties`, `required`,
//! `items`, `anyOf`, `minItems`/`maxItems`, `minLength`/`maxLength`,
//! `pattern`, `minimum`/`maximum`, `minProperties`/`maxProperties`,
//! `default` and `example`. The rest is adapted where the meaning survives
//! and dropped where it cannot:
//!
//! - `type: ["string", "null"]` becomes `type: "string", nullable: true`;
//!   several non-null types become an `anyOf`;
//! - `oneOf` becomes `anyOf`; an `anyOf` member `{"type": "null"}` becomes
//!   `nullable`; `allOf` members are merged into one schema;
//! - local `$ref`s (`#/$defs/..`, `#/definitions/..`) are inlined, up to a
//!   depth that also stops recursive schemas; other `$ref`s are dropped;
//! - a string `const` becomes a one-value `enum`; `enum`s of non-strings are
//!   dropped (Gemini enums are strings), `null` in an enum means `nullable`;
//! - `format` is kept only where Gemini knows it (`enum`, `date-time` for
//!   strings; `int32`, `int64`, `float`, `double` for numbers);
//! - `required` keeps only names listed in `properties`, and an empty
//!   `properties` is left out (Gemini refuses an empty one);
//! - `additionalProperties`, `patternProperties`, `$schema`, `$id`, `not`,
//!   `if`/`then`/`else`, `exclusiveMinimum`/`exclusiveMaximum`,
//!   `multipleOf`, `uniqueItems`, `contains`, `examples`, `strict` and any
//!   other keyword are dropped. The model sees a looser schema; the
//!   client's own validation of the answer is unchanged.
//!
//! It never fails: any JSON value gives some schema.

use serde_json::{Map, Value};

/// Deeper than this only by mistake or recursion through `$ref`.
const MAX_DEPTH: usize = 16;
/// Schema nodes converted at most: several self-references would
/// otherwise multiply at each level of inlining.
const MAX_NODES: usize = 4096;

/// Keywords whose values pass through unchanged.
const PASS: &[&str] = &[
    "title",
    "description",
    "nullable",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "minProperties",
    "maxProperties",
    "default",
    "example",
];

/// `schema` in the form Gemini accepts.
pub(crate) fn adapt(schema: &Value) -> Value {
    let mut budget = MAX_NODES;
    Value::Object(convert(schema, schema, 0, &mut budget))
}

/// Whether an adapted schema is an object that declares no property: for
/// Gemini that is better left out than sent.
pub(crate) fn is_empty_object(schema: &Value) -> bool {
    let declares = schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    !declares
        && matches!(
            schema.get("type").and_then(Value::as_str),
            Some("object") | None
        )
        && schema.get("anyOf").is_none()
}

fn convert(node: &Value, root: &Value, depth: usize, budget: &mut usize) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(node) = node.as_object() else {
        // `true`, `{}` and non-schemas: anything goes.
        return out;
    };
    if depth > MAX_DEPTH || *budget == 0 {
        return out;
    }
    *budget -= 1;

    // `$ref` and `allOf` first: sibling keywords then refine the result.
    if let Some(target) = node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| resolve(r, root))
    {
        merge(&mut out, convert(target, root, depth + 1, budget));
    }
    if let Some(all) = node.get("allOf").and_then(Value::as_array) {
        for member in all {
            merge(&mut out, convert(member, root, depth + 1, budget));
        }
    }

    for (key, value) in node {
        match key.as_str() {
            "type" => match value {
                Value::String(t) => {
                    out.insert("type".into(), t.as_str().into());
                }
                Value::Array(types) => {
                    let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
                    let real: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
                    if real.len() < names.len() {
                        out.insert("nullable".into(), true.into());
                    }
                    match real.as_slice() {
                        [] => {}
                        [one] => {
                            out.insert("type".into(), (*one).into());
                        }
                        many => {
                            let any: Vec<Value> = many
                                .iter()
                                .map(|t| {
                                    Value::Object(Map::from_iter([("type".into(), (*t).into())]))
                                })
                                .collect();
                            out.insert("anyOf".into(), Value::Array(any));
                        }
                    }
                }
                _ => {}
            },
            "enum" => {
                if let Some(values) = value.as_array() {
                    if values.iter().any(Value::is_null) {
                        out.insert("nullable".into(), true.into());
                    }
                    let values: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
                    if !values.is_empty() && values.iter().all(|v| v.is_string()) {
                        out.insert(
                            "enum".into(),
                            Value::Array(values.into_iter().cloned().collect()),
                        );
                    }
                }
            }
            "const" if value.is_string() => {
                out.insert("enum".into(), Value::Array(vec![value.clone()]));
            }
            "properties" => {
                if let Some(properties) = value.as_object() {
                    let converted: Map<String, Value> = properties
                        .iter()
                        .map(|(name, schema)| {
                            (
                                name.clone(),
                                Value::Object(convert(schema, root, depth + 1, budget)),
                            )
                        })
                        .collect();
                    let slot = out
                        .entry("properties")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Some(slot) = slot.as_object_mut() {
                        slot.extend(converted);
                    }
                }
            }
            "required" => {
                if let Some(names) = value.as_array() {
                    let slot = out
                        .entry("required")
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Some(slot) = slot.as_array_mut() {
                        for name in names.iter().filter(|n| n.is_string()) {
                            if !slot.contains(name) {
                                slot.push(name.clone());
                            }
                        }
                    }
                }
            }
            "items" => {
                // A tuple (`items: [..]`) keeps the first position's schema.
                let items = match value {
                    Value::Array(tuple) => tuple.first().unwrap_or(&Value::Null),
                    single => single,
                };
                out.insert(
                    "items".into(),
                    Value::Object(convert(items, root, depth + 1, budget)),
                );
            }
            "anyOf" | "oneOf" => {
                if let Some(members) = value.as_array() {
                    let mut any = Vec::with_capacity(members.len());
                    for member in members {
                        if member.get("type").and_then(Value::as_str) == Some("null") {
                            out.insert("nullable".into(), true.into());
                        } else {
                            any.push(Value::Object(convert(member, root, depth + 1, budget)));
                        }
                    }
                    match any.len() {
                        0 => {}
                        1 => {
                            if let Some(Value::Object(only)) = any.pop() {
                                merge(&mut out, only);
                            }
                        }
                        _ => {
                            out.insert("anyOf".into(), Value::Array(any));
                        }
                    }
                }
            }
            "format" => {
                if let Some(format) = value.as_str() {
                    out.insert("format".into(), format.into());
                }
            }
            key if PASS.contains(&key) => {
                out.insert(key.to_owned(), value.clone());
            }
            _ => {}
        }
    }

    // Formats Gemini does not know make it refuse the request.
    let format_ok = match (
        out.get("type").and_then(Value::as_str),
        out.get("format").and_then(Value::as_str),
    ) {
        (_, None) => true,
        (Some("string"), Some(f)) => matches!(f, "enum" | "date-time"),
        (Some("integer" | "number"), Some(f)) => {
            matches!(f, "int32" | "int64" | "float" | "double")
        }
        _ => false,
    };
    if !format_ok {
        out.remove("format");
    }
    if out
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        out.remove("properties");
    }
    let declared: Vec<String> = out
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(Value::Array(required)) = out.get_mut("required") {
        required.retain(|name| {
            name.as_str()
                .is_some_and(|n| declared.iter().any(|d| d == n))
        });
    }
    if out
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        out.remove("required");
    }
    out
}

/// The schema a local `$ref` points at.
fn resolve<'a>(reference: &str, root: &'a Value) -> Option<&'a Value> {
    if reference == "#" {
        return Some(root);
    }
    let path = reference.strip_prefix("#/")?;
    let mut node = root;
    for segment in path.split('/') {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        node = node.get(segment.as_str())?;
    }
    Some(node)
}

/// Merges `from` into `into`: properties and required lists are joined,
/// other keywords already in `into` win.
fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (key.as_str(), into.get_mut(&key), value) {
            ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                for (name, schema) in theirs {
                    mine.entry(name).or_insert(schema);
                }
            }
            ("required", Some(Value::Array(mine)), Value::Array(theirs)) => {
                for name in theirs {
                    if !mine.contains(&name) {
                        mine.push(name);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, value) => {
                into.insert(key, value);
            }
        }
    }
}

//! Tool calls the emulator makes instead of answering in text: which tools
//! to call (the forced `tool_choice`, else the first tool, or every tool for
//! the `[[tools:all]]` directive), arguments synthesized from each tool's
//! JSON schema, and deterministic `call_…` ids. It reads the request loosely
//! as `serde_json::Value`, never through the gateway's typed structs, so it
//! stays an independent fake upstream.

use crate::seed::{Fnv, SplitMix};
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Directive in the last user message asking for every tool at once.
const ALL_TOOLS_DIRECTIVE: &str = "[[tools:all]]";

/// Schemas nest deeper than this only by mistake; stop instead of recursing on.
const MAX_SCHEMA_DEPTH: usize = 32;

#[derive(Debug, Clone)]
pub(crate) struct ToolCall {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) arguments: String,
}

/// What the emulator is asked about tools, read from the request body.
pub(crate) struct ToolRequest<'a> {
    pub(crate) tools: &'a [Value],
    pub(crate) tool_choice: Option<&'a Value>,
    pub(crate) parallel: bool,
}

impl<'a> ToolRequest<'a> {
    pub(crate) fn from_body(body: &'a Map<String, Value>) -> Option<Self> {
        let tools = body.get("tools")?.as_array()?;
        if tools.is_empty() {
            return None;
        }
        let tool_choice = body.get("tool_choice").filter(|choice| !choice.is_null());
        if tool_choice.and_then(Value::as_str) == Some("none") {
            return None;
        }
        Some(Self {
            tools,
            tool_choice,
            parallel: body.get("parallel_tool_calls").and_then(Value::as_bool) != Some(false),
        })
    }

    /// The calls to make for this request; never empty.
    pub(crate) fn calls(
        &self,
        host: &str,
        last_user_text: &str,
        content_seed: u64,
    ) -> Vec<ToolCall> {
        let forced = self.tool_choice.and_then(forced_name);
        let chosen: Vec<(&str, Option<&Value>)> = match forced {
            Some(name) => {
                let schema = self
                    .tools
                    .iter()
                    .map(function_of)
                    .find(|(tool_name, _)| *tool_name == name)
                    .and_then(|(_, schema)| schema);
                vec![(name, schema)]
            }
            None if self.parallel && last_user_text.contains(ALL_TOOLS_DIRECTIVE) => {
                self.tools.iter().map(function_of).collect()
            }
            None => self.tools.iter().take(1).map(function_of).collect(),
        };
        chosen
            .into_iter()
            .enumerate()
            .map(|(index, (name, schema))| ToolCall {
                id: call_id(host, name, index, content_seed),
                name: name.to_owned(),
                arguments: arguments_for(schema),
            })
            .collect()
    }
}

/// `{"type":"function","function":{"name":X}}` (or the flat `{"name":X}` form).
fn forced_name(choice: &Value) -> Option<&str> {
    choice
        .get("function")
        .unwrap_or(choice)
        .get("name")
        .and_then(Value::as_str)
}

/// A tool's name and parameter schema, in the nested Chat Completions form
/// or the flat form some clients send.
fn function_of(tool: &Value) -> (&str, Option<&Value>) {
    let function = tool.get("function").unwrap_or(tool);
    let name = function.get("name").and_then(Value::as_str).unwrap_or("");
    (name, function.get("parameters"))
}

fn call_id(host: &str, name: &str, index: usize, content_seed: u64) -> String {
    let seed = Fnv::new()
        .field(host.as_bytes())
        .field(name.as_bytes())
        .field(&index.to_le_bytes())
        .field(&content_seed.to_le_bytes())
        .finish();
    let mut rng = SplitMix::new(seed);
    let (high, low) = (rng.next_u64(), rng.next_u64() >> 32);
    let mut id = String::with_capacity(29);
    id.push_str("call_");
    // Writing to a String cannot fail.
    let _ = write!(id, "{high:016x}{low:08x}");
    id
}

/// The arguments JSON string for a schema; `{}` when there is none.
fn arguments_for(schema: Option<&Value>) -> String {
    let value = match schema {
        Some(schema) => value_for(schema, 0),
        None => Value::Object(Map::new()),
    };
    let value = if value.is_object() {
        value
    } else {
        Value::Object(Map::new())
    };
    value.to_string()
}

/// The value the emulator puts where `schema` asks for one.
fn value_for(schema: &Value, depth: usize) -> Value {
    if depth > MAX_SCHEMA_DEPTH {
        return Value::Null;
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|values| values.first())
    {
        return first.clone();
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    match schema_type(schema) {
        Some("string") => Value::from("emulated"),
        Some("integer") => Value::from(1),
        Some("number") => Value::from(1.5),
        Some("boolean") => Value::Bool(true),
        Some("array") => Value::Array(Vec::new()),
        Some("object") => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let object = properties
                .into_iter()
                .flatten()
                .map(|(key, property)| (key.clone(), value_for(property, depth + 1)))
                .collect();
            Value::Object(object)
        }
        Some(_) => Value::Null,
        None => ["anyOf", "oneOf", "allOf"]
            .iter()
            .find_map(|key| schema.get(*key)?.as_array()?.first())
            .map_or(Value::Null, |first| value_for(first, depth + 1)),
    }
}

/// The declared type (first non-null one for `["string","null"]`), or one
/// implied by `properties` / `items`.
fn schema_type(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(kind)) => Some(kind),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null"),
        _ if schema.get("properties").is_some() => Some("object"),
        _ if schema.get("items").is_some() => Some("array"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "ratio": {"type": "number"},
                "exact": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "near": {"type": "object", "properties": {"lat": {"type": "number"}}},
                "maybe": {"type": ["null", "string"]}
            }
        });
        let arguments: Value = serde_json::from_str(&arguments_for(Some(&schema))).unwrap();
        assert_eq!(
            arguments,
            json!({
                "city": "emulated", "unit": "celsius", "days": 1, "ratio": 1.5,
                "exact": true, "tags": [], "near": {"lat": 1.5}, "maybe": "emulated"
            })
        );
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = call_id("h", "f", 0, 1);
        assert_eq!(a, call_id("h", "f", 0, 1));
        assert_ne!(a, call_id("h", "f", 1, 1));
        assert_eq!(a.len(), 29);
        assert!(a["call_".len()..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}

//! `POST /v1/responses` request bodies: parsing, validation and the
//! normalised list of this turn's input items.
//!
//! Validation refuses what Treaty cannot honour (hosted tools, background
//! mode) with a 400 that names the parameter, rather than accepting the
//! request and quietly doing something else.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::items::{ContentPart, Item, ItemStatus, MessageItem, Role};
use super::new_id;

/// A `POST /v1/responses` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateResponseRequest {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationRef>,
    /// Absent means `true`, as at OpenAI; see [`CreateResponseRequest::store`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ResponseTool>,
    /// `"auto"`, `"none"`, `"required"` or `{"type":"function","name":…}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Up to 16 string values, as OpenAI allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", …}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
    // The fields below are echoed in the response object, not acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<Value>,
    /// Only `false` is served; `validate()` refuses `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<Value>,
    /// Everything else; kept so a stored request round-trips, never
    /// forwarded upstream.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `input`: a string (one user message) or a list of items.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Input {
    /// One user message.
    Text(String),
    /// Messages, function calls and function call outputs, in order.
    Items(Vec<Item>),
}

/// Hand-written so that a wrong type says what is expected and an item's
/// error keeps its index (`input[2]`), which untagged enums lose.
impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Input;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of input items")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Input, E> {
                Ok(Input::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Input, E> {
                Ok(Input::Text(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Input, A::Error> {
                Vec::<Item>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(Input::Items)
            }
        }
        d.deserialize_any(V)
    }
}

/// `conversation`: an id, or `{"id": …}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ConversationRef {
    /// `"conv_…"`.
    Id(String),
    /// `{"id": "conv_…"}`.
    Object {
        /// The conversation id.
        id: String,
    },
}

/// Hand-written so that a wrong type says what is expected, where
/// serde's untagged enums only say "data did not match any variant".
impl<'de> Deserialize<'de> for ConversationRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The object form; other keys are ignored, as at OpenAI.
        #[derive(Deserialize)]
        struct ById {
            id: String,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ConversationRef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a conversation id or an object with its 'id'")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ConversationRef, E> {
                Ok(ConversationRef::Id(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ConversationRef, A::Error> {
                ById::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|c| ConversationRef::Object { id: c.id })
            }
        }
        d.deserialize_any(V)
    }
}

impl ConversationRef {
    /// The conversation id, whichever form was sent.
    pub fn id(&self) -> &str {
        match self {
            ConversationRef::Id(id) | ConversationRef::Object { id } => id,
        }
    }
}

/// A tool as the Responses API spells it (flat, no `function` wrapper).
///
/// Any `type` parses, so that `validate()` can refuse hosted tools with a
/// message that says why instead of a serde variant error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseTool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

type Invalid = (String, String);

fn invalid(message: impl Into<String>, param: impl Into<String>) -> Invalid {
    (message.into(), param.into())
}

impl CreateResponseRequest {
    /// Whether the response is stored (absent means yes).
    pub fn store(&self) -> bool {
        self.store.unwrap_or(true)
    }

    /// Whether the client asked for server-sent events.
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Checks what serde cannot express; returns (message, param).
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.model.is_empty() {
            return Err(invalid("'model' must not be empty.", "model"));
        }
        if self.previous_response_id.is_some() && self.conversation.is_some() {
            return Err(invalid(
                "'previous_response_id' and 'conversation' cannot be used together: a \
                 response continues either a previous response or a conversation.",
                "conversation",
            ));
        }
        if self.input.is_none()
            && self.previous_response_id.is_none()
            && self.conversation.is_none()
        {
            return Err(invalid("'input' is required.", "input"));
        }
        if self.background == Some(true) {
            return Err(invalid(
                "Background responses are not supported by this gateway; send the request \
                 without 'background' (optionally with 'stream': true).",
                "background",
            ));
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(invalid(
                format!("'temperature' must be between 0 and 2, got {t}."),
                "temperature",
            ));
        }
        if let Some(p) = self.top_p
            && !(0.0..=1.0).contains(&p)
        {
            return Err(invalid(
                format!("'top_p' must be between 0 and 1, got {p}."),
                "top_p",
            ));
        }
        if self.max_output_tokens == Some(0) {
            return Err(invalid(
                "'max_output_tokens' must be at least 1.",
                "max_output_tokens",
            ));
        }
        validate_top_logprobs(self.top_logprobs.as_ref())?;
        self.validate_tools()?;
        if let Some(choice) = &self.tool_choice {
            validate_tool_choice(choice)?;
        }
        if let Some(text) = &self.text {
            validate_text(text)?;
        }
        if let Some(Input::Items(items)) = &self.input {
            validate_items(items, "input")?;
        }
        if let Some(metadata) = &self.metadata {
            validate_metadata(metadata, "metadata")?;
        }
        Ok(())
    }

    fn validate_tools(&self) -> Result<(), Invalid> {
        for (i, tool) in self.tools.iter().enumerate() {
            if tool.kind != "function" {
                return Err(invalid(
                    format!(
                        "Tools of type '{}' are not supported: only function tools are \
                         served; hosted tools such as web_search, file_search or \
                         code_interpreter are not.",
                        tool.kind
                    ),
                    format!("tools[{i}].type"),
                ));
            }
            if tool.name.as_deref().is_none_or(str::is_empty) {
                return Err(invalid(
                    "Function tools need a non-empty 'name'.",
                    format!("tools[{i}].name"),
                ));
            }
        }
        Ok(())
    }
}

fn validate_tool_choice(choice: &Value) -> Result<(), Invalid> {
    let ok = match choice {
        Value::String(s) => matches!(s.as_str(), "auto" | "none" | "required"),
        Value::Object(o) => {
            o.get("type").and_then(Value::as_str) == Some("function")
                && o.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty())
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "'tool_choice' must be \"auto\", \"none\", \"required\" or \
             {\"type\": \"function\", \"name\": \"…\"}.",
            "tool_choice",
        ))
    }
}

fn validate_text(text: &Value) -> Result<(), Invalid> {
    let Some(format) = text.get("format") else {
        return Ok(());
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text" | "json_object") => Ok(()),
        Some("json_schema") => {
            if format.get("name").and_then(Value::as_str).is_none() {
                return Err(invalid(
                    "A json_schema text format needs a 'name'.",
                    "text.format.name",
                ));
            }
            if !format.get("schema").is_some_and(Value::is_object) {
                return Err(invalid(
                    "A json_schema text format needs a 'schema' object.",
                    "text.format.schema",
                ));
            }
            Ok(())
        }
        _ => Err(invalid(
            "'text.format.type' must be 'text', 'json_object' or 'json_schema'.",
            "text.format.type",
        )),
    }
}

/// `top_logprobs`, when given, is an integer from 0 to 20 (Chat
/// Completions and Responses alike).
pub fn validate_top_logprobs(value: Option<&Value>) -> Result<(), Invalid> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_u64().is_some_and(|n| n <= 20) => Ok(()),
        Some(v) => Err(invalid(
            format!("'top_logprobs' must be an integer from 0 to 20, got {v}."),
            "top_logprobs",
        )),
    }
}

/// Checks the references serde had to leave optional; `param` is the
/// array's name (`input`, `items`).
pub(crate) fn validate_items(items: &[Item], param: &str) -> Result<(), Invalid> {
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::FunctionCallOutput(o) if o.call_id.is_empty() => {
                return Err(invalid(
                    "A function_call_output item needs the 'call_id' of the call it answers.",
                    format!("{param}[{i}].call_id"),
                ));
            }
            Item::FunctionCall(c) if c.call_id.is_empty() => {
                return Err(invalid(
                    "A function_call item needs a 'call_id'.",
                    format!("{param}[{i}].call_id"),
                ));
            }
            Item::FunctionCall(c) if c.name.is_empty() => {
                return Err(invalid(
                    "A function_call item needs a 'name'.",
                    format!("{param}[{i}].name"),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// OpenAI's metadata limits: at most 16 keys of up to 64 characters, with
/// string values of up to 512 characters.
pub fn validate_metadata(metadata: &Map<String, Value>, param: &str) -> Result<(), Invalid> {
    if metadata.len() > 16 {
        return Err(invalid(
            format!(
                "'{param}' may hold at most 16 keys, got {}.",
                metadata.len()
            ),
            param,
        ));
    }
    for (key, value) in metadata {
        if key.chars().count() > 64 {
            return Err(invalid(
                format!("'{param}' keys may be at most 64 characters long."),
                format!("{param}.{key}"),
            ));
        }
        match value {
            Value::String(s) if s.chars().count() <= 512 => {}
            Value::String(_) => {
                return Err(invalid(
                    format!("'{param}' values may be at most 512 characters long."),
                    format!("{param}.{key}"),
                ));
            }
            _ => {
                return Err(invalid(
                    format!("'{param}' values must be strings."),
                    format!("{param}.{key}"),
                ));
            }
        }
    }
    Ok(())
}

/// This turn's input as items: a string becomes one user message; every
/// item gets a fresh id when it has none (`msg_`, `fc_`, `fco_`) and the
/// status `completed`.
pub fn input_items(req: &CreateResponseRequest) -> Vec<Item> {
    match &req.input {
        None => Vec::new(),
        Some(Input::Text(text)) => vec![Item::Message(MessageItem {
            id: new_id("msg"),
            role: Role::User,
            content: vec![ContentPart::InputText { text: text.clone() }],
            status: Some(ItemStatus::Completed),
        })],
        Some(Input::Items(items)) => items.iter().cloned().map(with_id_and_status).collect(),
    }
}

/// Gives an item a fresh id if it has none and marks it completed.
pub(crate) fn with_id_and_status(mut item: Item) -> Item {
    if item.id().is_empty() {
        *item.id_mut() = new_id(item.id_prefix());
    }
    item.set_status(ItemStatus::Completed);
    item
}

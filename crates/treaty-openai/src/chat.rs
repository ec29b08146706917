//! `POST /v1/chat/completions` request bodies.
//!
//! Responses and stream chunks are not modelled here: OpenAI-family hosts
//! answer in this very format, so their bodies pass through as bytes, and
//! translating providers build them with `serde_json::json!` against the
//! documented shape.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    /// Parameters Treaty does not interpret (`logit_bias`, `logprobs`,
    /// `metadata`, `reasoning_effort`, vLLM's `top_k`, ...), forwarded to
    /// OpenAI-family hosts as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatCompletionRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The output token cap, whichever of the two names the client used.
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Checks what serde cannot express; returns (message, param).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.model.is_empty() {
            return Err(("'model' must not be empty.".into(), "model".into()));
        }
        if self.messages.is_empty() {
            return Err((
                "'messages' must contain at least one message.".into(),
                "messages".into(),
            ));
        }
        if let Some(n) = self.n
            && !(1..=128).contains(&n)
        {
            return Err((
                format!("'n' must be between 1 and 128, got {n}."),
                "n".into(),
            ));
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err((
                format!("'temperature' must be between 0 and 2, got {t}."),
                "temperature".into(),
            ));
        }
        if let Some(p) = self.top_p
            && !(0.0..=1.0).contains(&p)
        {
            return Err((
                format!("'top_p' must be between 0 and 1, got {p}."),
                "top_p".into(),
            ));
        }
        for (param, value) in [
            ("max_tokens", self.max_tokens),
            ("max_completion_tokens", self.max_completion_tokens),
        ] {
            if value == Some(0) {
                return Err((
                    format!("'{param}' must be at least 1, got 0."),
                    param.into(),
                ));
            }
        }
        for (param, value) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if let Some(v) = value
                && !(-2.0..=2.0).contains(&v)
            {
                return Err((
                    format!("'{param}' must be between -2 and 2, got {v}."),
                    param.into(),
                ));
            }
        }
        crate::responses::validate_top_logprobs(self.extra.get("top_logprobs"))?;
        if let Some(Stop::Many(stops)) = &self.stop
            && stops.len() > 4
        {
            return Err(("'stop' may hold at most 4 sequences.".into(), "stop".into()));
        }
        if self.stream_options.is_some() && !self.is_stream() {
            return Err((
                "'stream_options' is only allowed when 'stream' is true.".into(),
                "stream_options".into(),
            ));
        }
        if let Some(tools) = &self.tools {
            for (i, tool) in tools.iter().enumerate() {
                if tool.function.name.is_empty() {
                    return Err((
                        "Tool function names must not be empty.".into(),
                        format!("tools[{i}].function.name"),
                    ));
                }
            }
        }
        for (i, m) in self.messages.iter().enumerate() {
            if let ChatMessage::Tool { tool_call_id, .. } = m
                && tool_call_id.is_empty()
            {
                return Err((
                    "Tool messages need a 'tool_call_id'.".into(),
                    format!("messages[{i}].tool_call_id"),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One message of the conversation, by role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    System {
        content: MessageContent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Developer {
        content: MessageContent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    User {
        content: MessageContent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Assistant {
        #[serde(default)]
        content: Option<MessageContent>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_calls: Option<Vec<ToolCall>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refusal: Option<String>,
    },
    Tool {
        content: MessageContent,
        tool_call_id: String,
    },
}

impl ChatMessage {
    pub fn role(&self) -> &'static str {
        match self {
            ChatMessage::System { .. } => "system",
            ChatMessage::Developer { .. } => "developer",
            ChatMessage::User { .. } => "user",
            ChatMessage::Assistant { .. } => "assistant",
            ChatMessage::Tool { .. } => "tool",
        }
    }
}

/// Message content: a plain string or an array of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// Hand-written so a wrong type says what is expected, where serde's
/// untagged enums only say "data did not match any variant".
impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MessageContent;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<MessageContent, A::Error> {
                Vec::<ContentPart>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(MessageContent::Parts)
            }
        }
        d.deserialize_any(V)
    }
}

impl MessageContent {
    /// The text parts joined, for providers and classifiers that need text.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            MessageContent::Text(t) => std::borrow::Cow::Borrowed(t),
            MessageContent::Parts(parts) => {
                let mut out = String::new();
                for p in parts {
                    if let ContentPart::Text { text } = p {
                        out.push_str(text);
                    }
                }
                std::borrow::Cow::Owned(out)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
    InputAudio { input_audio: Value },
    File { file: Value },
    Refusal { refusal: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// An `https:` URL or a `data:` URL with base64 bytes.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `function` today.
    #[serde(rename = "type")]
    pub kind: ToolKind,
    pub function: FunctionDefinition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    Function,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ToolKind,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON-encoded arguments, as a string.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(ToolChoiceMode),
    Named(NamedToolChoice),
}

/// Hand-written so that a wrong mode or a wrong object says what is
/// expected, where serde's untagged enums only say "data did not match".
impl<'de> Deserialize<'de> for ToolChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ToolChoice;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"none\", \"auto\", \"required\" or an object naming a function")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ToolChoice, E> {
                let mode: serde::de::value::StrDeserializer<'_, E> =
                    serde::de::IntoDeserializer::into_deserializer(v);
                ToolChoiceMode::deserialize(mode).map(ToolChoice::Mode)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ToolChoice, A::Error> {
                NamedToolChoice::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ToolChoice::Named)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoiceMode {
    None,
    Auto,
    Required,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedToolChoice {
    #[serde(rename = "type")]
    pub kind: ToolKind,
    pub function: NamedFunction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: Value },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// Hand-written for the same reason as [`ToolChoice`]'s.
impl<'de> Deserialize<'de> for Stop {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Stop;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Stop, E> {
                Ok(Stop::One(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Stop, E> {
                Ok(Stop::One(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Stop, A::Error> {
                Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(Stop::Many)
            }
        }
        d.deserialize_any(V)
    }
}

impl Stop {
    pub fn as_slice(&self) -> &[String] {
        match self {
            Stop::One(s) => std::slice::from_ref(s),
            Stop::Many(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_json;

    #[test]
    fn parses_a_full_request_and_keeps_unknown_fields() {
        let body = br#"{
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ],
            "stream": true, "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_object"},
            "n": 2, "stop": ["x"], "seed": 7, "user": "u1",
            "logit_bias": {"50256": -100}, "top_k": 5
        }"#;
        let req: ChatCompletionRequest = parse_json(body).unwrap();
        assert!(req.is_stream() && req.include_usage());
        assert_eq!(req.messages.len(), 4);
        assert_eq!(req.messages[1].role(), "user");
        assert_eq!(req.extra.get("top_k"), Some(&serde_json::json!(5)));
        assert!(req.validate().is_ok());
        // Forwarding keeps the unknown fields and the client's choices.
        let out = serde_json::to_value(&req).unwrap();
        assert_eq!(out["logit_bias"]["50256"], -100);
        assert_eq!(out["tool_choice"]["function"]["name"], "f");
        assert_eq!(out["messages"][2]["content"], Value::Null);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = parse_json::<ChatCompletionRequest>(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":"two"}"#,
        )
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("n"));
        let err = parse_json::<ChatCompletionRequest>(br#"{"model":"m"}"#).unwrap_err();
        assert!(err.message.contains("messages"), "{}", err.message);
    }

    #[test]
    fn malformed_json_and_bad_utf8_have_no_param() {
        let err = parse_json::<ChatCompletionRequest>(b"{\"model\":").unwrap_err();
        assert!(err.message.contains("not valid JSON"));
        assert_eq!(err.param, None);
        let err = parse_json::<ChatCompletionRequest>(b"{\"model\":\"\xff\"}").unwrap_err();
        assert!(err.message.contains("UTF-8"));
        let err =
            parse_json::<ChatCompletionRequest>(br#"{"model":"m","messages":[]} x"#).unwrap_err();
        assert!(err.message.contains("not valid JSON"));
    }

    #[test]
    fn content_of_the_wrong_type_says_what_is_expected() {
        let err = parse_json::<ChatCompletionRequest>(
            br#"{"model":"m","messages":[{"role":"user","content":42}]}"#,
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("a string or an array of content parts"),
            "{}",
            err.message
        );
        let ok = parse_json::<ChatCompletionRequest>(
            br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            ok.messages[0],
            ChatMessage::User {
                content: MessageContent::Parts(vec![ContentPart::Text { text: "a".into() }]),
                name: None
            }
        );
    }

    #[test]
    fn validation_catches_what_types_cannot() {
        let mut req: ChatCompletionRequest =
            parse_json(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert!(req.validate().is_ok());
        req.n = Some(0);
        assert_eq!(req.validate().unwrap_err().1, "n");
        req.n = None;
        req.stream_options = Some(StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        });
        assert_eq!(req.validate().unwrap_err().1, "stream_options");
    }
}

//! OpenAI chat requests as Bedrock Converse requests.
//!
//! System and developer messages become `system` text blocks; the rest
//! becomes strictly alternating `user`/`assistant` messages (consecutive
//! same-role messages merged, tool results as `toolResult` blocks of one
//! user message, tool calls as `toolUse` blocks); `tools` and `tool_choice`
//! become `toolConfig`; sampling limits become `inferenceConfig`. The model
//! is in the URL, not the body.
//!
//! `tool_choice: "none"` has no Converse counterpart: the tools are left
//! out so the model cannot call them. When the conversation already holds
//! tool calls, Bedrock insists on a `toolConfig`; then the tools (or, when
//! the client sent none, minimal specs named after the calls in the
//! history) are sent without a `toolChoice`, and the model could call one.
//! Parameters with no counterpart that do not change what a correct
//! answer is (`seed`, penalties, `user`, `parallel_tool_calls`, ...) are
//! dropped; ones that would (`n > 1`, JSON mode, audio or file parts,
//! image URLs Bedrock cannot fetch) are refused with a 400-class error.

use serde_json::{Map, Value, json};
use treaty_openai::{
    ChatCompletionRequest, ChatMessage, ContentPart, MessageContent, ResponseFormat, ToolChoice,
    ToolChoiceMode,
};

use super::untranslatable;
use crate::UpstreamError;

/// The Converse request body for `req`.
pub(crate) fn translate(req: &ChatCompletionRequest) -> Result<Value, UpstreamError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(untranslatable(
            "This host (Bedrock) returns one choice per request; 'n' must be 1.",
        ));
    }
    if matches!(
        req.response_format,
        Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })
    ) {
        return Err(untranslatable(
            "This host (Bedrock Converse) has no JSON mode; 'response_format' must be 'text'.",
        ));
    }
    let mut system = Vec::new();
    let mut turns = Turns::default();
    for message in &req.messages {
        match message {
            ChatMessage::System { content, .. } | ChatMessage::Developer { content, .. } => {
                let text = content.text();
                if !text.is_empty() {
                    system.push(json!({ "text": text }));
                }
            }
            ChatMessage::User { content, .. } => turns.push("user", blocks(content)?),
            ChatMessage::Assistant {
                content,
                tool_calls,
                ..
            } => {
                let mut out = match content {
                    Some(content) => blocks(content)?,
                    None => Vec::new(),
                };
                for call in tool_calls.iter().flatten() {
                    turns.tool_names.push(call.function.name.clone());
                    out.push(json!({"toolUse": {
                        "toolUseId": call.id,
                        "name": call.function.name,
                        "input": parse_arguments(&call.function.arguments)?,
                    }}));
                }
                turns.push("assistant", out);
            }
            ChatMessage::Tool {
                content,
                tool_call_id,
            } => {
                turns.has_tool_blocks = true;
                let block = json!({"toolResult": {
                    "toolUseId": tool_call_id,
                    "content": tool_result_content(content)?,
                }});
                turns.push("user", vec![block]);
            }
        }
    }

    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(turns.messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    if let Some(max) = req.max_output_tokens() {
        inference.insert("maxTokens".into(), max.into());
    }
    if let Some(t) = req.temperature {
        inference.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        inference.insert("topP".into(), json!(p));
    }
    if let Some(stop) = &req.stop {
        let stops: Vec<&String> = stop.as_slice().iter().filter(|s| !s.is_empty()).collect();
        if !stops.is_empty() {
            inference.insert("stopSequences".into(), json!(stops));
        }
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    let tools = req.tools.as_deref().unwrap_or_default();
    let none = matches!(
        req.tool_choice,
        Some(ToolChoice::Mode(ToolChoiceMode::None))
    );
    let history_has_tools = turns.has_tool_blocks || !turns.tool_names.is_empty();
    if !tools.is_empty() && (!none || history_has_tools) {
        let specs: Vec<Value> = tools
            .iter()
            .map(|t| {
                // Bedrock requires a schema; OpenAI's default is "no
                // parameters".
                let schema = t
                    .function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                tool_spec(&t.function.name, t.function.description.as_deref(), schema)
            })
            .collect();
        let mut config = Map::new();
        config.insert("tools".into(), Value::Array(specs));
        if !none && let Some(choice) = tool_choice(req) {
            config.insert("toolChoice".into(), choice);
        }
        body.insert("toolConfig".into(), Value::Object(config));
    } else if tools.is_empty() && history_has_tools {
        let mut names = turns.tool_names;
        names.sort();
        names.dedup();
        if names.is_empty() {
            // Only tool results, no call: any name satisfies Bedrock.
            names.push("tool".to_owned());
        }
        let specs: Vec<Value> = names
            .iter()
            .map(|n| tool_spec(n, None, json!({"type": "object"})))
            .collect();
        body.insert("toolConfig".into(), json!({ "tools": specs }));
    }
    Ok(Value::Object(body))
}

fn tool_spec(name: &str, description: Option<&str>, schema: Value) -> Value {
    let mut spec = Map::new();
    spec.insert("name".into(), name.into());
    if let Some(d) = description {
        spec.insert("description".into(), d.into());
    }
    spec.insert("inputSchema".into(), json!({ "json": schema }));
    json!({ "toolSpec": spec })
}

fn tool_choice(req: &ChatCompletionRequest) -> Option<Value> {
    match &req.tool_choice {
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => Some(json!({"auto": {}})),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => Some(json!({"any": {}})),
        Some(ToolChoice::Named(named)) => Some(json!({"tool": {"name": named.function.name}})),
        Some(ToolChoice::Mode(ToolChoiceMode::None)) | None => None,
    }
}

/// Messages being built, merging a message into the previous one when the
/// roles match (Converse requires alternation).
#[derive(Default)]
struct Turns {
    messages: Vec<Value>,
    tool_names: Vec<String>,
    has_tool_blocks: bool,
}

impl Turns {
    fn push(&mut self, role: &str, blocks: Vec<Value>) {
        // Converse refuses a message without content; it says nothing.
        if blocks.is_empty() {
            return;
        }
        if let Some(last) = self.messages.last_mut()
            && last.get("role").and_then(Value::as_str) == Some(role)
            && let Some(Value::Array(content)) = last.get_mut("content")
        {
            content.extend(blocks);
            return;
        }
        self.messages.push(json!({"role": role, "content": blocks}));
    }
}

/// Content blocks for OpenAI message content. Empty text is dropped:
/// Converse refuses blank text blocks.
fn blocks(content: &MessageContent) -> Result<Vec<Value>, UpstreamError> {
    match content {
        MessageContent::Text(text) if text.is_empty() => Ok(Vec::new()),
        MessageContent::Text(text) => Ok(vec![json!({ "text": text })]),
        MessageContent::Parts(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                match part {
                    ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => {
                        if !text.is_empty() {
                            out.push(json!({ "text": text }));
                        }
                    }
                    ContentPart::ImageUrl { image_url } => out.push(image(&image_url.url)?),
                    ContentPart::InputAudio { .. } => {
                        return Err(untranslatable(
                            "This host (Bedrock Converse) does not accept audio input.",
                        ));
                    }
                    ContentPart::File { .. } => {
                        return Err(untranslatable(
                            "This host (Bedrock) does not accept file parts through Treaty.",
                        ));
                    }
                }
            }
            Ok(out)
        }
    }
}

/// A tool message's content: a JSON object as a `json` block (models read
/// it as data), anything else as text. An empty result is an empty list.
fn tool_result_content(content: &MessageContent) -> Result<Value, UpstreamError> {
    let text = content.text();
    if text.is_empty() {
        return Ok(json!([]));
    }
    if let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(&text) {
        return Ok(json!([{ "json": value }]));
    }
    Ok(Value::Array(blocks(content)?))
}

/// An image block from a base64 `data:` URL. Bedrock does not fetch URLs.
fn image(url: &str) -> Result<Value, UpstreamError> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(untranslatable(
            "This host (Bedrock) cannot fetch image URLs; send the image as a base64 data URL \
             (data:image/png;base64,...).",
        ));
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| untranslatable("An image data URL has no ',' before its data."))?;
    let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
        untranslatable("Image data URLs must be base64 (data:<type>;base64,<data>).")
    })?;
    let format = match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => {
            return Err(untranslatable(
                "This host (Bedrock) accepts png, jpeg, gif and webp images only.",
            ));
        }
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

/// A tool call's arguments as the `input` document Converse wants.
fn parse_arguments(arguments: &str) -> Result<Value, UpstreamError> {
    // Some clients send "" for a call without arguments.
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(untranslatable(
            "An assistant tool call's 'arguments' is not a JSON object; this host (Bedrock) needs one.",
        )),
    }
}

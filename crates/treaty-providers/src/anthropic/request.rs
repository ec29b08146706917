//! OpenAI chat requests as Anthropic Messages requests.
//!
//! System and developer messages become `system`; the rest becomes strictly
//! alternating `user`/`assistant` messages of content blocks (consecutive
//! same-role messages merged, tool results as `tool_result` blocks in a user
//! message, tool calls as `tool_use` blocks). Parameters Anthropic has no
//! counterpart for (`seed`, penalties, `logit_bias`, ...) are dropped, as
//! they do not change what a correct answer is; parameters that would change
//! the answer's shape (`n > 1`, JSON mode, audio or file parts) are refused
//! with a 400-class error instead of being silently ignored.

use serde_json::{Map, Value, json};
use treaty_openai::{
    ChatCompletionRequest, ChatMessage, ContentPart, MessageContent, ResponseFormat, ToolChoice,
    ToolChoiceMode,
};

use super::untranslatable;
use crate::UpstreamError;

/// `max_tokens` is required by Anthropic and optional in OpenAI's API.
/// 4096 is the largest output every current Claude model accepts, so a
/// client that names no limit gets a full answer on any of them.
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The Messages request body for `req`, sent to the model `target`.
pub(crate) fn translate(req: &ChatCompletionRequest, target: &str) -> Result<Value, UpstreamError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(untranslatable(
            "This host (Anthropic) returns one choice per request; 'n' must be 1.",
        ));
    }
    if matches!(
        req.response_format,
        Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })
    ) {
        return Err(untranslatable(
            "This host (Anthropic) has no JSON mode; 'response_format' must be 'text'.",
        ));
    }
    let mut system: Vec<String> = Vec::new();
    let mut messages = Turns::default();
    for message in &req.messages {
        match message {
            ChatMessage::System { content, .. } | ChatMessage::Developer { content, .. } => {
                let text = content.text();
                if !text.is_empty() {
                    system.push(text.into_owned());
                }
            }
            ChatMessage::User { content, .. } => {
                messages.push("user", blocks(content)?);
            }
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
                    let input = parse_arguments(&call.function.arguments)?;
                    out.push(json!({
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.function.name,
                        "input": input,
                    }));
                }
                messages.push("assistant", out);
            }
            ChatMessage::Tool {
                content,
                tool_call_id,
            } => {
                let mut block = Map::new();
                block.insert("type".into(), "tool_result".into());
                block.insert("tool_use_id".into(), tool_call_id.as_str().into());
                let inner = blocks(content)?;
                if !inner.is_empty() {
                    block.insert("content".into(), Value::Array(inner));
                }
                messages.push("user", vec![Value::Object(block)]);
            }
        }
    }

    let mut body = Map::new();
    body.insert("model".into(), target.into());
    body.insert(
        "max_tokens".into(),
        req.max_output_tokens().unwrap_or(DEFAULT_MAX_TOKENS).into(),
    );
    if !system.is_empty() {
        body.insert("system".into(), system.join("\n\n").into());
    }
    body.insert("messages".into(), Value::Array(messages.0));
    if let Some(stop) = &req.stop {
        let stops: Vec<&String> = stop.as_slice().iter().filter(|s| !s.is_empty()).collect();
        if !stops.is_empty() {
            body.insert("stop_sequences".into(), json!(stops));
        }
    }
    if let Some(t) = req.temperature {
        // OpenAI accepts 0-2, Anthropic 0-1: the top of both ranges means
        // "most random", so clamping keeps the intent instead of failing.
        body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    if req.is_stream() {
        body.insert("stream".into(), true.into());
    }
    let tools = req.tools.as_deref().unwrap_or_default();
    if !tools.is_empty() {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut tool = Map::new();
                tool.insert("name".into(), t.function.name.as_str().into());
                if let Some(d) = &t.function.description {
                    tool.insert("description".into(), d.as_str().into());
                }
                // Anthropic requires a schema; OpenAI's default is "no
                // parameters".
                let schema = t
                    .function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                tool.insert("input_schema".into(), schema);
                Value::Object(tool)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice(req) {
            body.insert("tool_choice".into(), choice);
        }
    }
    Ok(Value::Object(body))
}

/// `tool_choice`, carrying `parallel_tool_calls: false` as
/// `disable_parallel_tool_use`. Only sent when tools are.
fn tool_choice(req: &ChatCompletionRequest) -> Option<Value> {
    let single = req.parallel_tool_calls == Some(false);
    let mut choice = match &req.tool_choice {
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => return Some(json!({"type": "none"})),
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => json!({"type": "auto"}),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => json!({"type": "any"}),
        Some(ToolChoice::Named(named)) => json!({"type": "tool", "name": named.function.name}),
        None if single => json!({"type": "auto"}),
        None => return None,
    };
    if single && let Some(map) = choice.as_object_mut() {
        map.insert("disable_parallel_tool_use".into(), true.into());
    }
    Some(choice)
}

/// Messages being built, merging a message into the previous one when the
/// roles match (Anthropic requires alternation).
#[derive(Default)]
struct Turns(Vec<Value>);

impl Turns {
    fn push(&mut self, role: &str, blocks: Vec<Value>) {
        // A message with no content is refused by Anthropic and says
        // nothing; dropping it keeps the rest valid.
        if blocks.is_empty() {
            return;
        }
        if let Some(last) = self.0.last_mut()
            && last.get("role").and_then(Value::as_str) == Some(role)
            && let Some(Value::Array(content)) = last.get_mut("content")
        {
            content.extend(blocks);
            return;
        }
        self.0.push(json!({"role": role, "content": blocks}));
    }
}

/// Content blocks for OpenAI message content. Empty text is dropped:
/// Anthropic refuses empty text blocks.
fn blocks(content: &MessageContent) -> Result<Vec<Value>, UpstreamError> {
    match content {
        MessageContent::Text(text) if text.is_empty() => Ok(Vec::new()),
        MessageContent::Text(text) => Ok(vec![json!({"type": "text", "text": text})]),
        MessageContent::Parts(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                match part {
                    ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => {
                        if !text.is_empty() {
                            out.push(json!({"type": "text", "text": text}));
                        }
                    }
                    ContentPart::ImageUrl { image_url } => out.push(image(&image_url.url)?),
                    ContentPart::InputAudio { .. } => {
                        return Err(untranslatable(
                            "This host (Anthropic) does not accept audio input.",
                        ));
                    }
                    ContentPart::File { .. } => {
                        return Err(untranslatable(
                            "This host (Anthropic) does not accept file parts through Treaty.",
                        ));
                    }
                }
            }
            Ok(out)
        }
    }
}

/// An image block: `data:` URLs become base64 sources, http(s) URLs are
/// fetched by Anthropic itself.
fn image(url: &str) -> Result<Value, UpstreamError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| untranslatable("An image data URL has no ',' before its data."))?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
            untranslatable("Image data URLs must be base64 (data:<type>;base64,<data>).")
        })?;
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(untranslatable(
        "Image URLs must be http(s) or base64 data URLs.",
    ))
}

/// A tool call's arguments as the `input` object Anthropic wants.
fn parse_arguments(arguments: &str) -> Result<Value, UpstreamError> {
    // Some clients send "" for a call without arguments.
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(untranslatable(
            "An assistant tool call's 'arguments' is not a JSON object; this host (Anthropic) needs one.",
        )),
    }
}

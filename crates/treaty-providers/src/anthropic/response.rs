//! Whole Anthropic Messages replies as OpenAI `chat.completion` bodies.
//!
//! Text blocks are joined into `content`, `tool_use` blocks become
//! `tool_calls` (the id kept, `input` re-encoded as the `arguments` string),
//! `stop_reason` becomes `finish_reason` and usage is summed the way OpenAI
//! counts it (cache reads and writes are prompt tokens). Other block kinds
//! (thinking, server tools) are not forwarded.

use serde::Deserialize;
use serde_json::{Value, json};
use treaty_openai::Usage;

use super::finish_reason;
use crate::UpstreamError;

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// Anthropic's usage; every field is optional on `message_delta`.
#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub(crate) input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) output_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Prompt tokens as OpenAI counts them: everything read, cached or not.
    pub(crate) fn prompt(&self) -> Option<u64> {
        let parts = [
            self.input_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        ];
        parts.iter().any(Option::is_some).then(|| {
            parts
                .iter()
                .flatten()
                .fold(0u64, |a, b| a.saturating_add(*b))
        })
    }
}

pub(crate) fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens.saturating_add(completion_tokens),
    }
}

/// The `chat.completion` body and its usage for a Messages reply body.
pub(crate) fn translate(body: &[u8], created: u64) -> Result<(Vec<u8>, Usage), UpstreamError> {
    let message: Message = serde_json::from_slice(body).map_err(|e| {
        UpstreamError::Protocol(format!(
            "reply body is not an Anthropic message ({})",
            json_problem(&e)
        ))
    })?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::ToolUse { id, name, input } => {
                let input = if input.is_null() {
                    Value::Object(Default::default())
                } else {
                    input
                };
                tool_calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            Block::Other => {}
        }
    }
    let wire = message.usage.unwrap_or_default();
    let usage = usage(wire.prompt().unwrap_or(0), wire.output_tokens.unwrap_or(0));
    let mut reply = json!({
        "role": "assistant",
        // OpenAI sends null content next to tool calls, "" for an empty answer.
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null,
    });
    if !tool_calls.is_empty()
        && let Some(map) = reply.as_object_mut()
    {
        map.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    let completion = json!({
        "id": message.id,
        "object": "chat.completion",
        "created": created,
        "model": message.model,
        "choices": [{
            "index": 0,
            "message": reply,
            "logprobs": null,
            "finish_reason": finish_reason(message.stop_reason.as_deref()),
        }],
        "usage": usage,
    });
    let body = serde_json::to_vec(&completion)
        .map_err(|_| UpstreamError::Protocol("the reply could not be re-encoded".into()))?;
    Ok((body, usage))
}

/// What is wrong with some JSON, without quoting it.
pub(crate) fn json_problem(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "ends early",
    }
}

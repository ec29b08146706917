//! Whole Converse replies as OpenAI `chat.completion` bodies.
//!
//! Text blocks are joined into `content`, `toolUse` blocks become
//! `tool_calls` (the `toolUseId` kept as the call id, `input` re-encoded as
//! the `arguments` string), `stopReason` becomes `finish_reason` and usage
//! is counted the way OpenAI counts it: cache reads and writes are prompt
//! tokens, cache reads also reported as `cached_tokens`. Reasoning and
//! other block kinds are not forwarded. Converse names neither the reply
//! nor the model, so the caller supplies the id and the model.

use serde::Deserialize;
use serde_json::{Value, json};
use treaty_openai::Usage;

use super::finish_reason;
use crate::UpstreamError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reply {
    #[serde(default)]
    output: Option<Output>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Vec<Block>,
}

/// A content block is an object with one member naming its kind.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Block {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolUse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUse {
    tool_use_id: String,
    name: String,
    #[serde(default)]
    input: Value,
}

/// Converse's token usage (on the reply and on the stream's `metadata`).
#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub(crate) input_tokens: u64,
    #[serde(default)]
    pub(crate) output_tokens: u64,
    #[serde(default)]
    pub(crate) cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_write_input_tokens: Option<u64>,
}

impl WireUsage {
    pub(crate) fn openai(&self) -> Usage {
        let prompt = self
            .input_tokens
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
            .saturating_add(self.cache_write_input_tokens.unwrap_or(0));
        Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output_tokens,
            total_tokens: prompt.saturating_add(self.output_tokens),
        }
    }

    /// The usage object as OpenAI writes it, with `cached_tokens` when
    /// Bedrock reported cache reads.
    pub(crate) fn openai_json(&self) -> Value {
        let mut usage = json!(self.openai());
        if let Some(cached) = self.cache_read_input_tokens
            && let Some(map) = usage.as_object_mut()
        {
            map.insert(
                "prompt_tokens_details".into(),
                json!({ "cached_tokens": cached }),
            );
        }
        usage
    }
}

/// The `chat.completion` body and its usage for a Converse reply body.
pub(crate) fn translate(
    body: &[u8],
    id: &str,
    model: &str,
    created: u64,
) -> Result<(Vec<u8>, Usage), UpstreamError> {
    let reply: Reply = serde_json::from_slice(body).map_err(|e| {
        UpstreamError::Protocol(format!(
            "reply body is not a Converse reply ({})",
            super::json_problem(&e)
        ))
    })?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let blocks = reply
        .output
        .and_then(|o| o.message)
        .map(|m| m.content)
        .unwrap_or_default();
    for block in blocks {
        if let Some(t) = block.text {
            text.push_str(&t);
        }
        if let Some(call) = block.tool_use {
            let input = if call.input.is_null() {
                Value::Object(Default::default())
            } else {
                call.input
            };
            tool_calls.push(json!({
                "id": call.tool_use_id,
                "type": "function",
                "function": {"name": call.name, "arguments": input.to_string()},
            }));
        }
    }
    let wire = reply.usage.unwrap_or_default();
    let mut message = json!({
        "role": "assistant",
        // OpenAI sends null content next to tool calls, "" for an empty answer.
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null,
    });
    if !tool_calls.is_empty()
        && let Some(map) = message.as_object_mut()
    {
        map.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    let completion = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(reply.stop_reason.as_deref()),
        }],
        "usage": wire.openai_json(),
    });
    let body = serde_json::to_vec(&completion)
        .map_err(|_| UpstreamError::Protocol("the reply could not be re-encoded".into()))?;
    Ok((body, wire.openai()))
}

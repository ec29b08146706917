//! Whole Gemini `GenerateContentResponse`s as OpenAI `chat.completion`
//! bodies, and the wire types the stream decoder shares.
//!
//! Each candidate becomes a choice (its `index`, 0 when omitted): text parts
//! are joined into `content`, `functionCall` parts become `tool_calls` with
//! ids from [`CallIds`] and `args` re-encoded as the `arguments` string,
//! and `finishReason` becomes `finish_reason` ([`finish_reason`]). Thought
//! summaries and other part kinds (code execution, inline output data) are
//! not forwarded. A prompt blocked before any candidate
//! (`promptFeedback.blockReason`) is one empty `content_filter` choice.
//! `usageMetadata` becomes OpenAI usage: tool-use prompt tokens count as
//! prompt tokens and thinking tokens as completion tokens (both are billed
//! so), with cached and reasoning counts in the usual detail fields.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use treaty_openai::Usage;

use super::{CallIds, WireError, finish_reason};
use crate::UpstreamError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireResponse {
    #[serde(default)]
    pub(crate) candidates: Vec<Candidate>,
    #[serde(default)]
    pub(crate) prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub(crate) usage_metadata: Option<WireUsage>,
    #[serde(default)]
    pub(crate) model_version: Option<String>,
    #[serde(default)]
    pub(crate) response_id: Option<String>,
    /// Only inside streams: an error after the 200.
    #[serde(default)]
    pub(crate) error: Option<WireError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    #[serde(default)]
    pub(crate) content: Option<Content>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
    /// Omitted for 0, as protobuf JSON omits defaults.
    #[serde(default)]
    pub(crate) index: Option<u32>,
}

#[derive(Deserialize, Default)]
pub(crate) struct Content {
    #[serde(default)]
    pub(crate) parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Part {
    #[serde(default)]
    pub(crate) text: Option<String>,
    /// A thought summary, not part of the answer.
    #[serde(default)]
    pub(crate) thought: bool,
    #[serde(default)]
    pub(crate) function_call: Option<FunctionCall>,
}

#[derive(Deserialize)]
pub(crate) struct FunctionCall {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) args: Value,
}

impl FunctionCall {
    /// The OpenAI `arguments` string: the args object, `{}` when absent.
    pub(crate) fn arguments(&self) -> String {
        match &self.args {
            Value::Null => "{}".to_owned(),
            args => args.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    #[serde(default)]
    pub(crate) block_reason: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub(crate) prompt_token_count: Option<u64>,
    #[serde(default)]
    pub(crate) candidates_token_count: Option<u64>,
    #[serde(default)]
    pub(crate) cached_content_token_count: Option<u64>,
    #[serde(default)]
    pub(crate) thoughts_token_count: Option<u64>,
    #[serde(default)]
    pub(crate) tool_use_prompt_token_count: Option<u64>,
}

impl WireUsage {
    pub(crate) fn usage(&self) -> Usage {
        let n = |v: Option<u64>| v.unwrap_or(0);
        let prompt = n(self.prompt_token_count).saturating_add(n(self.tool_use_prompt_token_count));
        let completion =
            n(self.candidates_token_count).saturating_add(n(self.thoughts_token_count));
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
        }
    }

    /// The OpenAI `usage` object, with detail fields when Gemini gave them.
    pub(crate) fn body(&self) -> Value {
        let usage = self.usage();
        let mut body = json!({
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        });
        if let Some(map) = body.as_object_mut() {
            if let Some(cached) = self.cached_content_token_count {
                map.insert(
                    "prompt_tokens_details".into(),
                    json!({ "cached_tokens": cached }),
                );
            }
            if let Some(thoughts) = self.thoughts_token_count {
                map.insert(
                    "completion_tokens_details".into(),
                    json!({ "reasoning_tokens": thoughts }),
                );
            }
        }
        body
    }
}

/// The `chat.completion` body and its usage for a reply body.
pub(crate) fn translate(
    body: &[u8],
    target: &str,
    created: u64,
) -> Result<(Vec<u8>, Usage), UpstreamError> {
    let reply: WireResponse = serde_json::from_slice(body).map_err(|e| {
        UpstreamError::Protocol(format!(
            "reply body is not a Gemini GenerateContentResponse ({})",
            json_problem(&e)
        ))
    })?;
    let ids = CallIds::new(reply.response_id.as_deref());
    let mut choices = Vec::with_capacity(reply.candidates.len().max(1));
    for (position, candidate) in reply.candidates.into_iter().enumerate() {
        let index = candidate.index.unwrap_or(position as u32);
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for part in candidate.content.unwrap_or_default().parts {
            if part.thought {
                continue;
            }
            if let Some(t) = part.text {
                text.push_str(&t);
            }
            if let Some(call) = part.function_call {
                tool_calls.push(json!({
                    "id": ids.id(index, tool_calls.len() as u32),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments()},
                }));
            }
        }
        let finish = finish_reason(candidate.finish_reason.as_deref(), !tool_calls.is_empty())?;
        choices.push(choice(index, text, tool_calls, finish));
    }
    if choices.is_empty() {
        // No candidate: only a blocked prompt explains that.
        let blocked = reply.prompt_feedback.and_then(|f| f.block_reason).is_some();
        if !blocked {
            return Err(UpstreamError::Protocol(
                "reply has neither candidates nor a block reason".into(),
            ));
        }
        choices.push(choice(0, String::new(), Vec::new(), "content_filter"));
    }
    let wire = reply.usage_metadata.unwrap_or_default();
    let completion = json!({
        "id": ids.completion_id(reply.response_id.as_deref()),
        "object": "chat.completion",
        "created": created,
        "model": reply.model_version.as_deref().unwrap_or(target),
        "choices": choices,
        "usage": wire.body(),
    });
    let body = serde_json::to_vec(&completion)
        .map_err(|_| UpstreamError::Protocol("the reply could not be re-encoded".into()))?;
    Ok((body, wire.usage()))
}

fn choice(index: u32, text: String, tool_calls: Vec<Value>, finish: &str) -> Value {
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    // OpenAI sends null content next to tool calls, "" for an empty answer.
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    message.insert("content".into(), content);
    message.insert("refusal".into(), Value::Null);
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    json!({
        "index": index,
        "message": message,
        "logprobs": null,
        "finish_reason": finish,
    })
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

//! A Chat Completions reply turned into Responses output items, usage and
//! status.
//!
//! Upstream hosts differ in small ways (missing tool call ids, null usage
//! details, arguments sent as objects); this module absorbs them so the
//! client always sees well-formed items with unique `call_id`s, which the
//! SDKs' stream accumulators insist on.

use serde::Deserialize;
use serde_json::Value;

use super::items::{ContentPart, FunctionCallItem, Item, ItemStatus, MessageItem, Role};
use super::new_id;
use super::object::{
    IncompleteDetails, InputTokensDetails, OutputTokensDetails, ResponseStatus, ResponseUsage,
};

/// What one model step produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatOutput {
    /// A `message` item when there is text or a refusal, then one
    /// `function_call` item per tool call.
    pub items: Vec<Item>,
    /// Zero when the host sent none.
    pub usage: ResponseUsage,
    /// The chat `finish_reason` (`stop`, `length`, `tool_calls`, …).
    pub finish_reason: String,
}

/// The response status a chat `finish_reason` implies: `length` and
/// `content_filter` make it `incomplete` (with the reason OpenAI gives),
/// anything else `completed`.
pub fn status_for(finish_reason: &str) -> (ResponseStatus, Option<IncompleteDetails>) {
    let reason = match finish_reason {
        "length" => "max_output_tokens",
        "content_filter" => "content_filter",
        _ => return (ResponseStatus::Completed, None),
    };
    (
        ResponseStatus::Incomplete,
        Some(IncompleteDetails {
            reason: reason.to_owned(),
        }),
    )
}

/// Reads a non-streaming `chat.completion` body (first choice only).
pub fn output_from_chat(body: &[u8]) -> Result<ChatOutput, String> {
    let reply: ChatReply = serde_json::from_slice(body)
        .map_err(|e| format!("the upstream reply is not a chat completion: {e}"))?;
    let choice = reply
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| "the upstream reply has no choices".to_owned())?;
    let finish_reason = choice.finish_reason.unwrap_or_else(|| "stop".to_owned());
    let message = choice.message;

    let mut items = Vec::with_capacity(1 + message.tool_calls.as_ref().map_or(0, Vec::len));
    let mut content = Vec::new();
    let text = message.content.as_ref().map(text_of).unwrap_or_default();
    if !text.is_empty() {
        content.push(ContentPart::output_text(text));
    }
    if let Some(refusal) = message.refusal.filter(|r| !r.is_empty()) {
        content.push(ContentPart::Refusal { refusal });
    }
    if !content.is_empty() {
        items.push(Item::Message(MessageItem {
            id: new_id("msg"),
            role: Role::Assistant,
            content,
            status: Some(ItemStatus::Completed),
        }));
    }
    let mut call_ids = CallIds::default();
    for call in message.tool_calls.unwrap_or_default() {
        let arguments = match call.function.arguments {
            Value::String(s) => s,
            Value::Null => String::new(),
            // Some hosts send the arguments as an object, not a string.
            other => other.to_string(),
        };
        items.push(Item::FunctionCall(FunctionCallItem {
            id: new_id("fc"),
            call_id: call_ids.claim(call.id.as_deref()),
            name: call.function.name.unwrap_or_default(),
            arguments,
            status: Some(ItemStatus::Completed),
        }));
    }
    // A cut-off reply ends in a cut-off item, as OpenAI marks it.
    if status_for(&finish_reason).0 == ResponseStatus::Incomplete
        && let Some(last) = items.last_mut()
    {
        last.set_status(ItemStatus::Incomplete);
    }
    Ok(ChatOutput {
        items,
        usage: reply
            .usage
            .map(ChatUsage::into_response)
            .unwrap_or_default(),
        finish_reason,
    })
}

/// Chat content is usually a string; some hosts send text parts.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Hands out the `call_id`s of one response: the host's id when it gave a
/// new one, else a fresh `call_…` (the SDKs reject empty or repeated ids).
#[derive(Debug, Default)]
pub(crate) struct CallIds {
    seen: Vec<String>,
}

impl CallIds {
    pub(crate) fn claim(&mut self, upstream: Option<&str>) -> String {
        let id = match upstream {
            Some(id) if !id.is_empty() && !self.seen.iter().any(|s| s == id) => id.to_owned(),
            _ => new_id("call"),
        };
        self.seen.push(id.clone());
        id
    }
}

#[derive(Deserialize)]
struct ChatReply {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ReplyMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ReplyMessage {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ReplyToolCall>>,
}

#[derive(Deserialize)]
struct ReplyToolCall {
    #[serde(default)]
    id: Option<String>,
    function: ReplyFunction,
}

#[derive(Deserialize)]
struct ReplyFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Value,
}

/// Chat usage with the details Treaty's `Usage` leaves out; shared with the
/// stream translator.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ChatUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl ChatUsage {
    pub(crate) fn into_response(self) -> ResponseUsage {
        let input = self.prompt_tokens.unwrap_or(0);
        let output = self.completion_tokens.unwrap_or(0);
        ResponseUsage {
            input_tokens: input,
            input_tokens_details: InputTokensDetails {
                cached_tokens: self
                    .prompt_tokens_details
                    .and_then(|d| d.cached_tokens)
                    .unwrap_or(0),
            },
            output_tokens: output,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: self
                    .completion_tokens_details
                    .and_then(|d| d.reasoning_tokens)
                    .unwrap_or(0),
            },
            total_tokens: self.total_tokens.unwrap_or(input.saturating_add(output)),
        }
    }
}

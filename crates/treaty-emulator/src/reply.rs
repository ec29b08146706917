//! Deterministic chat answers. A [`ChatView`] reads the request body loosely
//! (as `serde_json::Value`, never through the gateway's typed structs) and
//! [`ChatView::reply`] decides what the emulated model says: an echo of the
//! last user text naming the host and model, tool calls, a summary of tool
//! results, or a JSON object for JSON mode, then cut by `stop` and
//! `max_tokens`. Token counts are whitespace-separated words so tests can
//! predict them. Nothing here touches the network or a clock other than the
//! `created` timestamp.

use crate::error::ApiError;
use crate::seed::{Fnv, SplitMix};
use crate::tools::{ToolCall, ToolRequest};
use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Fixed per-message overhead counted into `prompt_tokens`, as OpenAI does.
const TOKENS_PER_MESSAGE: u64 = 3;
/// Directive in the last user message asking the model to list every
/// earlier user message it was given (to check conversation state).
const RECALL_DIRECTIVE: &str = "[[recall]]";

/// Counted into `completion_tokens` for each tool call on top of its argument words.
const TOKENS_PER_TOOL_CALL: u64 = 5;
/// OpenAI's upper bound for `n`.
const MAX_CHOICES: u64 = 128;

/// The parts of a chat request the emulator reads, borrowed from the body.
pub(crate) struct ChatView<'a> {
    body: &'a Map<String, Value>,
    messages: &'a [Value],
    pub(crate) model: &'a str,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    pub(crate) n: u32,
    pub(crate) last_user_text: Cow<'a, str>,
}

/// The body as an object and the model it names: the Azure deployment from
/// the path when there is one, else the body's non-empty `model`.
pub(crate) fn object_and_model<'a>(
    body: &'a Value,
    deployment: Option<&'a str>,
) -> Result<(&'a serde_json::Map<String, Value>, &'a str), ApiError> {
    let body = body
        .as_object()
        .ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object."))?;
    let model = match deployment {
        Some(deployment) => deployment,
        None => body
            .get("model")
            .and_then(Value::as_str)
            .filter(|model| !model.is_empty())
            .ok_or_else(|| {
                ApiError::invalid_param("model", "you must provide a model parameter")
            })?,
    };
    Ok((body, model))
}

impl<'a> ChatView<'a> {
    /// `deployment` (Azure deployment routes) names the model instead of the body.
    pub(crate) fn parse(body: &'a Value, deployment: Option<&'a str>) -> Result<Self, ApiError> {
        let (body, model) = object_and_model(body, deployment)?;
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .filter(|messages| !messages.is_empty())
            .ok_or_else(|| {
                ApiError::invalid_param("messages", "'messages' must be a non-empty array")
            })?;
        let n = match body.get("n") {
            None | Some(Value::Null) => 1,
            Some(n) => n
                .as_u64()
                .filter(|n| (1..=MAX_CHOICES).contains(n))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ApiError::invalid_param("n", "'n' must be between 1 and 128"))?,
        };
        let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
        let include_usage = body
            .get("stream_options")
            .and_then(|options| options.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);
        let last_user_text = messages
            .iter()
            .rev()
            .find(|message| role_of(message) == "user")
            .map_or(Cow::Borrowed(""), text_of);
        Ok(Self {
            body,
            messages,
            model,
            stream,
            include_usage,
            n,
            last_user_text,
        })
    }

    /// What the emulated `host` answers.
    pub(crate) fn reply(&self, host: &str) -> Reply {
        let (prompt_tokens, seed) = self.prompt();
        let last_role = self.messages.last().map_or("", role_of);
        let tools = (last_role == "user")
            .then(|| ToolRequest::from_body(self.body))
            .flatten();
        let n = u64::from(self.n);
        if let Some(tools) = tools {
            let calls = tools.calls(host, &self.last_user_text, seed.finish());
            let per_choice: u64 = calls
                .iter()
                .map(|call| words(&call.arguments) + TOKENS_PER_TOOL_CALL)
                .sum();
            return Reply {
                content: Content::ToolCalls(calls),
                finish_reason: "tool_calls",
                usage: Usage::new(prompt_tokens, per_choice * n),
            };
        }
        let mut text = if self.json_mode() {
            let object = serde_json::json!({
                "emulated": true,
                "host": host,
                "model": self.model,
                "echo": self.last_user_text,
            });
            object.to_string()
        } else if last_role == "tool" {
            let results: Vec<Cow<'_, str>> = {
                let mut trailing: Vec<_> = self
                    .messages
                    .iter()
                    .rev()
                    .take_while(|message| role_of(message) == "tool")
                    .map(text_of)
                    .collect();
                trailing.reverse();
                trailing
            };
            format!(
                "Emulated reply from {host} ({}): tool results: {}",
                self.model,
                results.join("; ")
            )
        } else if self.last_user_text.contains(RECALL_DIRECTIVE) {
            // Shows what context the model was given: every earlier user
            // message, so chained turns can be checked end to end.
            let earlier: Vec<Cow<'_, str>> = self
                .messages
                .iter()
                .filter(|m| role_of(m) == "user")
                .map(text_of)
                .filter(|t| !t.contains(RECALL_DIRECTIVE))
                .collect();
            format!(
                "Emulated reply from {host} ({}): earlier user messages: {}",
                self.model,
                earlier.join(" | ")
            )
        } else {
            format!(
                "Emulated reply from {host} ({}): {}",
                self.model, self.last_user_text
            )
        };
        if let Some(at) = self.stop_at(&text) {
            text.truncate(at);
        }
        let mut finish_reason = "stop";
        if let Some(at) = self
            .max_tokens()
            .and_then(|limit| word_limit_end(&text, limit))
        {
            text.truncate(at);
            finish_reason = "length";
        }
        let completion = words(&text) * n;
        Reply {
            content: Content::Text(text),
            finish_reason,
            usage: Usage::new(prompt_tokens, completion),
        }
    }

    /// `prompt_tokens` for this request.
    pub(crate) fn prompt_tokens(&self) -> u64 {
        self.prompt().0
    }

    /// Prompt words plus per-message overhead, and a seed over every
    /// message's role and text for deterministic tool call ids.
    fn prompt(&self) -> (u64, Fnv) {
        let mut tokens = 0;
        let mut seed = Fnv::new();
        for message in self.messages {
            let text = text_of(message);
            tokens += words(&text) + TOKENS_PER_MESSAGE;
            seed = seed
                .field(role_of(message).as_bytes())
                .field(text.as_bytes());
        }
        (tokens, seed)
    }

    fn json_mode(&self) -> bool {
        let kind = self
            .body
            .get("response_format")
            .and_then(|format| format.get("type"))
            .and_then(Value::as_str);
        matches!(kind, Some("json_object" | "json_schema"))
    }

    /// Byte offset of the earliest `stop` string in `text`.
    fn stop_at(&self, text: &str) -> Option<usize> {
        let find = |stop: &Value| {
            stop.as_str()
                .filter(|stop| !stop.is_empty())
                .and_then(|stop| text.find(stop))
        };
        match self.body.get("stop")? {
            Value::Array(stops) => stops.iter().filter_map(find).min(),
            stop => find(stop),
        }
    }

    fn max_tokens(&self) -> Option<u64> {
        ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|key| self.body.get(*key)?.as_u64())
    }
}

/// The emulated answer, the same for every one of the `n` choices.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) content: Content,
    pub(crate) finish_reason: &'static str,
    pub(crate) usage: Usage,
}

#[derive(Debug)]
pub(crate) enum Content {
    Text(String),
    ToolCalls(Vec<ToolCall>),
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) total_tokens: u64,
}

impl Usage {
    pub(crate) fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// Whitespace-separated words: the emulator's notion of a token.
pub(crate) fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Where to cut `text` so it keeps at most `limit` words, if it has more.
fn word_limit_end(text: &str, limit: u64) -> Option<usize> {
    let mut count = 0;
    let mut last_word_end = 0;
    let mut in_word = false;
    for (at, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                in_word = false;
                last_word_end = at;
            }
        } else if !in_word {
            in_word = true;
            count += 1;
            if count > limit {
                return Some(last_word_end);
            }
        }
    }
    None
}

fn role_of(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or("")
}

/// A message's text: the string content, or its text parts joined by spaces
/// (image and audio parts carry no text).
pub(crate) fn text_of(message: &Value) -> Cow<'_, str> {
    match message.get("content") {
        Some(Value::String(text)) => Cow::Borrowed(text),
        Some(Value::Array(parts)) => {
            let mut texts = parts.iter().filter_map(|part| {
                let is_text = matches!(
                    part.get("type").and_then(Value::as_str),
                    None | Some("text" | "input_text")
                );
                is_text
                    .then(|| part.get("text").and_then(Value::as_str))
                    .flatten()
            });
            let Some(first) = texts.next() else {
                return Cow::Borrowed("");
            };
            match texts.next() {
                None => Cow::Borrowed(first),
                Some(second) => {
                    let mut joined = format!("{first} {second}");
                    for text in texts {
                        joined.push(' ');
                        joined.push_str(text);
                    }
                    Cow::Owned(joined)
                }
            }
        }
        _ => Cow::Borrowed(""),
    }
}

/// `chatcmpl-emu-<16 hex>`, unique per response within a process.
pub(crate) fn completion_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut rng = SplitMix::new(NEXT.fetch_add(1, Ordering::Relaxed));
    format!("chatcmpl-emu-{:016x}", rng.next_u64())
}

/// Unix seconds for `created`; 0 if the clock is before 1970.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(body: Value) -> Reply {
        ChatView::parse(&body, None).unwrap().reply("h")
    }

    fn text(reply: &Reply) -> &str {
        match &reply.content {
            Content::Text(text) => text,
            Content::ToolCalls(_) => panic!("expected text"),
        }
    }

    #[test]
    fn echoes_last_user_text_with_parts() {
        let reply = reply(json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"},
                {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "world"}]}
        ]}));
        assert_eq!(text(&reply), "Emulated reply from h (m): hello world");
        assert_eq!(reply.usage.prompt_tokens, 2 + 2 + 6);
        assert_eq!(reply.usage.completion_tokens, 7);
    }

    proptest::proptest! {
        #[test]
        fn word_limit_keeps_a_prefix_of_at_most_limit_words(text in "[a-z \\t\\n]{0,40}", limit in 0u64..8) {
            let kept = match word_limit_end(&text, limit) {
                Some(at) => &text[..at],
                None => text.as_str(),
            };
            proptest::prop_assert!(text.starts_with(kept));
            proptest::prop_assert_eq!(words(kept), words(&text).min(limit));
        }
    }

    #[test]
    fn recall_lists_earlier_user_messages() {
        let reply = reply(json!({"model": "m", "messages": [
            {"role": "user", "content": "my name is Ada"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "[[recall]] who am I?"}]}));
        assert_eq!(
            text(&reply),
            "Emulated reply from h (m): earlier user messages: my name is Ada"
        );
    }

    #[test]
    fn max_tokens_keeps_whole_words() {
        assert_eq!(word_limit_end("a  bb c", 2), Some(5));
        assert_eq!(word_limit_end("a bb ", 2), None);
        assert_eq!(word_limit_end(" a", 0), Some(0));
        let reply = reply(json!({"model": "m", "max_tokens": 3,
            "messages": [{"role": "user", "content": "x"}]}));
        assert_eq!(text(&reply), "Emulated reply from");
        assert_eq!(reply.finish_reason, "length");
    }
}

//! The emulated Anthropic Messages API: `POST /v1/messages`, plain and
//! streamed (`stream: true`, with the real event sequence `message_start`,
//! `ping`, `content_block_start/delta/stop`, `message_delta`,
//! `message_stop`), and the model list for `x-api-key` callers.
//!
//! It checks `x-api-key` and `anthropic-version` as Anthropic does, reads
//! the body loosely as `serde_json::Value`, restates it in the Chat
//! Completions shape and asks [`ChatView::reply`] for the answer, so every
//! emulated provider says the same deterministic thing (`Emulated reply
//! from {host} ({model}): {last user text}`, tool calls when tools are
//! given and the last message is the user's, tool results echoed). Faults
//! come from the `x-emulator-fault` header, a `[[fault:..]]` directive or
//! the host's queue, as for the OpenAI routes; errors use Anthropic's
//! `{"type":"error","error":{type,message}}` shape (429 `rate_limit_error`,
//! 529 `overloaded_error`, ...). It never echoes the presented key.

use crate::app::{ApiRequest, Shared};
use crate::auth::Flavor;
use crate::faults::Fault;
use crate::openai::{self, Endpoint};
use crate::reply::{ChatView, Content, Reply, completion_id};
use crate::stream::Truncated;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

static HOST_HEADER: HeaderName = HeaderName::from_static("x-emulator-host");
const FAULT_HEADER: &str = "x-emulator-fault";
const API_KEY: &str = "x-api-key";
const VERSION: &str = "anthropic-version";

static MODELS: &[u8] = br#"{"data":[{"type":"model","id":"emulated-model","display_name":"Emulated model","created_at":"2025-01-01T00:00:00Z"}],"has_more":false,"first_id":"emulated-model","last_id":"emulated-model"}"#;

/// An Anthropic-shaped error response.
#[derive(Debug)]
pub(crate) struct AnthropicError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    retry_after: Option<u32>,
}

impl AnthropicError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// The error type Anthropic uses for `status`.
    fn injected(status: StatusCode, retry_after: Option<u32>, host: &str) -> Self {
        let kind = match status.as_u16() {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        let mut error = Self::new(
            status,
            kind,
            format!(
                "Emulated fault: host {host} answered {} as requested by the fault spec.",
                status.as_u16()
            ),
        );
        error.retry_after = retry_after;
        error
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let body = json!({"type": "error", "error": {"type": self.kind, "message": self.message}});
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body.to_string(),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// `POST /v1/messages`.
pub(crate) async fn messages(State(shared): State<Arc<Shared>>, request: ApiRequest) -> Response {
    shared.stats.hit(&request.host);
    let mut response = answer(&shared, &request)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    if let Ok(host) = HeaderValue::from_str(&request.host) {
        response.headers_mut().insert(HOST_HEADER.clone(), host);
    }
    response
}

/// `GET /v1/models`: Anthropic's list for `x-api-key` callers, the OpenAI
/// list for everyone else (both clouds use the same path).
pub(crate) async fn models_any(State(shared): State<Arc<Shared>>, request: ApiRequest) -> Response {
    if !request.headers.contains_key(API_KEY) {
        return openai::handle(shared, Endpoint::Models, Flavor::OpenAi, request).await;
    }
    shared.stats.hit(&request.host);
    let result = async {
        check_headers(&shared, &request.headers)?;
        let fault = pick_fault(&shared, &request, None)?;
        before_answer(&fault, &request, false).await?;
        Ok::<_, AnthropicError>(json_response(Bytes::from_static(MODELS), &fault))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn answer(shared: &Shared, request: &ApiRequest) -> Result<Response, AnthropicError> {
    if !shared.config.latency.is_zero() {
        tokio::time::sleep(shared.config.latency).await;
    }
    check_headers(shared, &request.headers)?;
    let body: Value = serde_json::from_slice(&request.body).map_err(|error| {
        AnthropicError::invalid(format!(
            "Emulated Anthropic: the request body is not valid JSON ({error})."
        ))
    })?;
    let (openai_body, stop_sequences) = to_chat_shape(&body)?;
    let view = ChatView::parse(&openai_body, None)
        .map_err(|_| AnthropicError::invalid("Emulated Anthropic: messages: field required"))?;
    let directive = Fault::from_directive(&view.last_user_text);
    let fault = pick_fault(shared, request, directive)?;
    before_answer(&fault, request, view.stream).await?;

    let host = request.host.as_str();
    let reply = view.reply(host);
    // Which stop sequence cut the text, if any: Anthropic names it.
    let stop_sequence = match (&reply.content, reply.finish_reason) {
        (Content::Text(text), "stop") if !stop_sequences.is_empty() => {
            let mut uncut = openai_body.clone();
            if let Some(map) = uncut.as_object_mut() {
                map.remove("stop");
                map.remove("max_tokens");
            }
            ChatView::parse(&uncut, None)
                .ok()
                .map(|v| v.reply(host))
                .and_then(|full| match full.content {
                    Content::Text(full) => stop_sequences
                        .iter()
                        .find(|s| {
                            full.get(text.len()..)
                                .is_some_and(|rest| rest.starts_with(s.as_str()))
                        })
                        .cloned(),
                    Content::ToolCalls(_) => None,
                })
        }
        _ => None,
    };
    let message = Message::new(view.model, reply, stop_sequence);
    if view.stream {
        return Ok(stream_response(shared, &message, &fault));
    }
    Ok(json_response(
        Bytes::from(message.body().to_string()),
        &fault,
    ))
}

/// `x-api-key` (compared with the configured key, if any) and
/// `anthropic-version`, in the order Anthropic checks them.
fn check_headers(shared: &Shared, headers: &HeaderMap) -> Result<(), AnthropicError> {
    let key = headers
        .get(API_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return Err(AnthropicError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "Emulated Anthropic: x-api-key header is required",
        ));
    };
    if shared
        .config
        .api_key
        .as_deref()
        .is_some_and(|expected| expected != key)
    {
        return Err(AnthropicError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "Emulated Anthropic: invalid x-api-key",
        ));
    }
    if headers
        .get(VERSION)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim().is_empty())
    {
        return Err(AnthropicError::invalid(
            "Emulated Anthropic: anthropic-version: header is required",
        ));
    }
    Ok(())
}

/// The request restated as a Chat Completions body for [`ChatView`], and
/// its stop sequences.
fn to_chat_shape(body: &Value) -> Result<(Value, Vec<String>), AnthropicError> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| AnthropicError::invalid("Emulated Anthropic: model: field required"))?;
    let max_tokens = body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| AnthropicError::invalid("Emulated Anthropic: max_tokens: field required"))?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| AnthropicError::invalid("Emulated Anthropic: messages: field required"))?;

    let mut out = Vec::with_capacity(messages.len() + 1);
    let system = match body.get("system") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => texts(blocks).join(" "),
        _ => String::new(),
    };
    if !system.is_empty() {
        out.push(json!({"role": "system", "content": system}));
    }
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        let blocks = match message.get("content") {
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            Some(Value::Array(blocks)) => blocks.clone(),
            _ => {
                return Err(AnthropicError::invalid(format!(
                    "Emulated Anthropic: messages.{i}.content: field required"
                )));
            }
        };
        match role {
            "user" => {
                for block in &blocks {
                    if block.get("type").and_then(Value::as_str) == Some("tool_result") {
                        let content = match block.get("content") {
                            Some(Value::String(s)) => s.clone(),
                            Some(Value::Array(inner)) => texts(inner).join(" "),
                            _ => String::new(),
                        };
                        out.push(json!({
                            "role": "tool",
                            "tool_call_id": block.get("tool_use_id").cloned().unwrap_or(Value::Null),
                            "content": content,
                        }));
                    }
                }
                let parts = texts(&blocks);
                if !parts.is_empty() {
                    let parts: Vec<Value> = parts
                        .into_iter()
                        .map(|t| json!({"type": "text", "text": t}))
                        .collect();
                    out.push(json!({"role": "user", "content": parts}));
                }
            }
            "assistant" => {
                let calls: Vec<Value> = blocks
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
                    .map(|b| {
                        json!({"id": b.get("id"), "type": "function", "function": {
                            "name": b.get("name"),
                            "arguments": b.get("input").map(Value::to_string).unwrap_or_default(),
                        }})
                    })
                    .collect();
                let mut m = json!({"role": "assistant", "content": texts(&blocks).join("")});
                if !calls.is_empty()
                    && let Some(map) = m.as_object_mut()
                {
                    map.insert("tool_calls".into(), Value::Array(calls));
                }
                out.push(m);
            }
            _ => {
                return Err(AnthropicError::invalid(format!(
                    "Emulated Anthropic: messages.{i}.role: Input should be 'user' or 'assistant'"
                )));
            }
        }
    }

    let mut chat = Map::new();
    chat.insert("model".into(), model.into());
    chat.insert("messages".into(), Value::Array(out));
    chat.insert("max_tokens".into(), max_tokens.into());
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        chat.insert("stream".into(), true.into());
    }
    let stop_sequences: Vec<String> = body
        .get("stop_sequences")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if !stop_sequences.is_empty() {
        chat.insert("stop".into(), json!(stop_sequences));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        // The flat `{name, parameters}` form the tool emulation reads.
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| json!({"name": t.get("name"), "parameters": t.get("input_schema")}))
            .collect();
        chat.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = body.get("tool_choice") {
        match choice.get("type").and_then(Value::as_str) {
            Some("none") => {
                chat.insert("tool_choice".into(), "none".into());
            }
            Some("tool") => {
                chat.insert("tool_choice".into(), json!({"name": choice.get("name")}));
            }
            _ => {}
        }
        if choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true)
        {
            chat.insert("parallel_tool_calls".into(), false.into());
        }
    }
    Ok((Value::Object(chat), stop_sequences))
}

/// The text of `text` blocks (images and tool blocks carry none).
fn texts(blocks: &[Value]) -> Vec<&str> {
    blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect()
}

fn pick_fault(
    shared: &Shared,
    request: &ApiRequest,
    directive: Option<Result<Fault, crate::FaultParseError>>,
) -> Result<Fault, AnthropicError> {
    if let Some(value) = request.headers.get(FAULT_HEADER) {
        let spec = value
            .to_str()
            .map_err(|_| AnthropicError::invalid("The x-emulator-fault header must be ASCII."))?;
        return Fault::parse(spec).map_err(|e| AnthropicError::invalid(e.to_string()));
    }
    if let Some(directive) = directive {
        return directive.map_err(|e| AnthropicError::invalid(e.to_string()));
    }
    Ok(shared.faults.take(&request.host).unwrap_or_default())
}

/// Faults that act before any response bytes, as on the OpenAI routes.
async fn before_answer(
    fault: &Fault,
    request: &ApiRequest,
    stream: bool,
) -> Result<(), AnthropicError> {
    if let Some(delay) = fault.delay {
        tokio::time::sleep(delay).await;
    }
    if fault.reset {
        let Some(kill) = &request.kill else {
            return Err(AnthropicError::invalid(
                "Emulated fault: reset needs the emulator's own server (Emulator::start or serve).",
            ));
        };
        kill.trigger();
        return std::future::pending().await;
    }
    if let Some(status) = fault.status {
        return Err(AnthropicError::injected(
            status,
            fault.retry_after,
            &request.host,
        ));
    }
    if let Some(stall) = fault.stall
        && !(stream && fault.stall_after.is_some())
    {
        tokio::time::sleep(stall).await;
    }
    Ok(())
}

/// The emulated answer in Anthropic's terms.
struct Message {
    id: String,
    model: String,
    blocks: Vec<Block>,
    stop_reason: &'static str,
    stop_sequence: Option<String>,
    input_tokens: u64,
    output_tokens: u64,
}

enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

impl Message {
    fn new(model: &str, reply: Reply, stop_sequence: Option<String>) -> Self {
        let blocks = match reply.content {
            Content::Text(text) => vec![Block::Text(text)],
            Content::ToolCalls(calls) => calls
                .into_iter()
                .map(|c| Block::ToolUse {
                    id: format!("toolu_{}", c.id.trim_start_matches("call_")),
                    name: c.name,
                    input: serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({})),
                })
                .collect(),
        };
        let stop_reason = match reply.finish_reason {
            "length" => "max_tokens",
            "tool_calls" => "tool_use",
            _ if stop_sequence.is_some() => "stop_sequence",
            _ => "end_turn",
        };
        Self {
            id: completion_id().replace("chatcmpl-emu-", "msg_emu_"),
            model: model.to_owned(),
            blocks,
            stop_reason,
            stop_sequence,
            input_tokens: reply.usage.prompt_tokens,
            output_tokens: reply.usage.completion_tokens,
        }
    }

    fn body(&self) -> Value {
        let content: Vec<Value> = self
            .blocks
            .iter()
            .map(|b| match b {
                Block::Text(text) => json!({"type": "text", "text": text}),
                Block::ToolUse { id, name, input } => {
                    json!({"type": "tool_use", "id": id, "name": name, "input": input})
                }
            })
            .collect();
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
        })
    }

    /// The SSE events, in order, each flagged when it carries content
    /// (what `truncate=N` counts).
    fn events(&self) -> Vec<(bool, Bytes)> {
        let mut out = Vec::new();
        let mut push = |content: bool, data: Value| {
            let kind = data.get("type").and_then(Value::as_str).unwrap_or("");
            out.push((
                content,
                Bytes::from(format!("event: {kind}\ndata: {data}\n\n")),
            ));
        };
        push(
            false,
            json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
            }}),
        );
        push(false, json!({"type": "ping"}));
        for (index, block) in self.blocks.iter().enumerate() {
            match block {
                Block::Text(text) => {
                    push(
                        false,
                        json!({"type": "content_block_start", "index": index,
                            "content_block": {"type": "text", "text": ""}}),
                    );
                    for piece in word_pieces(text) {
                        push(
                            true,
                            json!({"type": "content_block_delta", "index": index,
                                "delta": {"type": "text_delta", "text": piece}}),
                        );
                    }
                }
                Block::ToolUse { id, name, input } => {
                    push(
                        false,
                        json!({"type": "content_block_start", "index": index,
                            "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                    );
                    // Real streams cut the JSON anywhere; halves show that.
                    let json = input.to_string();
                    let mid = (0..=json.len() / 2)
                        .rev()
                        .find(|&i| json.is_char_boundary(i))
                        .unwrap_or(0);
                    for piece in [&json[..mid], &json[mid..]] {
                        push(
                            true,
                            json!({"type": "content_block_delta", "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": piece}}),
                        );
                    }
                }
            }
            push(false, json!({"type": "content_block_stop", "index": index}));
        }
        push(
            false,
            json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
                "usage": {"output_tokens": self.output_tokens}}),
        );
        push(false, json!({"type": "message_stop"}));
        out
    }
}

/// `text` in word-sized pieces, each keeping its trailing whitespace.
fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            pieces.push(&text[start..i]);
            start = i;
            in_space = false;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

struct Paced {
    events: std::vec::IntoIter<(bool, Bytes)>,
    sent: u32,
    content_sent: u32,
    delay: Duration,
    stall: Option<(u32, Duration)>,
    truncate: Option<u32>,
    malformed: bool,
    done: bool,
}

fn stream_response(shared: &Shared, message: &Message, fault: &Fault) -> Response {
    let state = Paced {
        events: message.events().into_iter(),
        sent: 0,
        content_sent: 0,
        delay: fault.slow.unwrap_or(shared.config.chunk_delay),
        stall: fault.stall_after.zip(fault.stall),
        truncate: fault.truncate,
        malformed: fault.malformed,
        done: false,
    };
    let body = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match st.stall {
            Some((after, stall)) if after == st.sent => tokio::time::sleep(stall).await,
            _ if st.sent > 0 && !st.delay.is_zero() => tokio::time::sleep(st.delay).await,
            _ => {}
        }
        if st.truncate.is_some_and(|limit| st.content_sent >= limit) && st.sent > 0 {
            st.done = true;
            return Some((Truncated::after_flush::<Bytes>().await, st));
        }
        if st.malformed && st.sent == 1 {
            st.malformed = false;
            st.sent += 1;
            let bad = Bytes::from_static(b"event: content_block_delta\ndata: {\"type\": \n\n");
            return Some((Ok(bad), st));
        }
        let (content, bytes) = st.events.next()?;
        st.sent += 1;
        if content {
            st.content_sent += 1;
        }
        Some((Ok(bytes), st))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A finished JSON body, unless a fault spoils it (as on the OpenAI routes).
fn json_response(body: Bytes, fault: &Fault) -> Response {
    let json = |body: Body| {
        let mut response = Response::new(body);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    if fault.malformed {
        return json(Body::from(Bytes::from_static(b"{\"id\": ")));
    }
    if fault.truncate.is_some() {
        let full = body.len();
        let half = body.slice(..full / 2);
        let parts = futures_util::stream::iter([Ok(half)])
            .chain(futures_util::stream::once(Truncated::after_flush()));
        let mut response = json(Body::from_stream(parts));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(full));
        return response;
    }
    json(Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_restate_as_chat_bodies() {
        let body = json!({"model": "c", "max_tokens": 5, "system": [{"type": "text", "text": "s"}],
        "stop_sequences": ["X"],
        "tools": [{"name": "w", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "w", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"a": 1}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "text", "text": "and?"}]}
        ]});
        let (chat, stops) = to_chat_shape(&body).unwrap();
        assert_eq!(stops, ["X"]);
        assert_eq!(
            chat,
            json!({"model": "c", "max_tokens": 5, "stop": ["X"],
            "tools": [{"name": "w", "parameters": {"type": "object"}}],
            "tool_choice": {"name": "w"}, "parallel_tool_calls": false,
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "toolu_1", "type": "function",
                    "function": {"name": "w", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                {"role": "user", "content": [{"type": "text", "text": "and?"}]}
            ]})
        );
        assert!(to_chat_shape(&json!({"model": "c", "messages": []})).is_err());
        assert!(
            to_chat_shape(&json!({"model": "c", "messages": [{"role": "user", "content": "x"}]}))
                .is_err()
        );
    }

    #[test]
    fn the_stream_has_the_real_event_sequence() {
        let view_body = json!({"model": "c", "messages": [{"role": "user", "content": "a b"}]});
        let view = ChatView::parse(&view_body, None).unwrap();
        let message = Message::new("c", view.reply("h"), None);
        let kinds: Vec<String> = message
            .events()
            .iter()
            .map(|(_, b)| {
                let text = std::str::from_utf8(b).unwrap();
                text.lines()
                    .next()
                    .unwrap()
                    .trim_start_matches("event: ")
                    .to_owned()
            })
            .collect();
        assert_eq!(kinds.first().map(String::as_str), Some("message_start"));
        assert_eq!(kinds[1], "ping");
        assert_eq!(kinds[2], "content_block_start");
        assert!(
            kinds[3..kinds.len() - 3]
                .iter()
                .all(|k| k == "content_block_delta")
        );
        assert_eq!(
            &kinds[kinds.len() - 3..],
            ["content_block_stop", "message_delta", "message_stop"]
        );
        assert_eq!(word_pieces("a  b c"), ["a  ", "b ", "c"]);
    }
}

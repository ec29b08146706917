//! Converse and ConverseStream: the request restated for [`ChatView`],
//! the answer in Converse's JSON or as event-stream frames.

use super::{
    BedrockError, BedrockRequest, before_answer, json_response, pick_fault, request_id_value,
};
use crate::app::Shared;
use crate::faults::Fault;
use crate::reply::{ChatView, Content, Reply};
use crate::stream::Truncated;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue as FrameValue, Message};
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::time::Duration;

pub(super) async fn converse(
    shared: &Shared,
    request: &BedrockRequest,
    stream: bool,
) -> Result<Response, BedrockError> {
    if !shared.config.latency.is_zero() {
        tokio::time::sleep(shared.config.latency).await;
    }
    super::sigv4::verify(shared, request)?;
    let body: Value = serde_json::from_slice(&request.body).map_err(|_| {
        BedrockError::validation("Emulated Bedrock: the request body is not valid JSON.")
    })?;
    let chat = to_chat_shape(&body, &request.model)?;
    let view = ChatView::parse(&chat, None)
        .map_err(|_| BedrockError::validation("Emulated Bedrock: messages: field required"))?;
    let directive = Fault::from_directive(&view.last_user_text);
    let fault = pick_fault(shared, request, directive)?;
    before_answer(&fault, request).await?;

    let host = request.host.as_str();
    let reply = view.reply(host);
    let has_stops = chat.get("stop").is_some();
    let stopped_by_sequence = has_stops
        && reply.finish_reason == "stop"
        && matches!(&reply.content, Content::Text(cut) if {
            let mut uncut = chat.clone();
            if let Some(map) = uncut.as_object_mut() {
                map.remove("stop");
                map.remove("max_tokens");
            }
            ChatView::parse(&uncut, None)
                .ok()
                .map(|v| v.reply(host))
                .is_some_and(|full| matches!(full.content, Content::Text(full) if full.len() > cut.len()))
        });
    let answer = Answer::new(reply, stopped_by_sequence);
    if stream {
        return Ok(stream_response(shared, &answer, &fault));
    }
    Ok(json_response(answer.body().to_string(), &fault))
}

/// The Converse request restated as a Chat Completions body for
/// [`ChatView`].
fn to_chat_shape(body: &Value, model: &str) -> Result<Value, BedrockError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            BedrockError::validation(
                "Emulated Bedrock: A conversation must start with a user message. Try again with a conversation that starts with a user message.",
            )
        })?;
    let mut out = Vec::with_capacity(messages.len() + 1);
    if let Some(system) = body.get("system").and_then(Value::as_array) {
        let text = texts(system).join(" ");
        if !text.is_empty() {
            out.push(json!({"role": "system", "content": text}));
        }
    }
    for (i, message) in messages.iter().enumerate() {
        let blocks = message
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                BedrockError::validation(format!(
                    "Emulated Bedrock: messages.{i}.content: field required"
                ))
            })?;
        match message.get("role").and_then(Value::as_str) {
            Some("user") => {
                for result in blocks.iter().filter_map(|b| b.get("toolResult")) {
                    let content = result
                        .get("content")
                        .and_then(Value::as_array)
                        .map(|inner| {
                            inner
                                .iter()
                                .filter_map(|c| {
                                    c.get("text")
                                        .and_then(Value::as_str)
                                        .map(str::to_owned)
                                        .or_else(|| c.get("json").map(Value::to_string))
                                })
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default();
                    out.push(json!({
                        "role": "tool",
                        "tool_call_id": result.get("toolUseId").cloned().unwrap_or(Value::Null),
                        "content": content,
                    }));
                }
                let parts: Vec<Value> = texts(blocks)
                    .into_iter()
                    .map(|t| json!({"type": "text", "text": t}))
                    .collect();
                if !parts.is_empty() {
                    out.push(json!({"role": "user", "content": parts}));
                }
            }
            Some("assistant") => {
                let calls: Vec<Value> = blocks
                    .iter()
                    .filter_map(|b| b.get("toolUse"))
                    .map(|t| {
                        json!({"id": t.get("toolUseId"), "type": "function", "function": {
                            "name": t.get("name"),
                            "arguments": t.get("input").map(Value::to_string).unwrap_or_default(),
                        }})
                    })
                    .collect();
                let mut m = json!({"role": "assistant", "content": texts(blocks).join("")});
                if !calls.is_empty()
                    && let Some(map) = m.as_object_mut()
                {
                    map.insert("tool_calls".into(), Value::Array(calls));
                }
                out.push(m);
            }
            _ => {
                return Err(BedrockError::validation(format!(
                    "Emulated Bedrock: messages.{i}.role must be 'user' or 'assistant'"
                )));
            }
        }
    }
    let mut chat = Map::new();
    chat.insert("model".into(), model.into());
    chat.insert("messages".into(), Value::Array(out));
    if let Some(config) = body.get("inferenceConfig") {
        if let Some(max) = config.get("maxTokens").and_then(Value::as_u64) {
            chat.insert("max_tokens".into(), max.into());
        }
        if let Some(stops) = config.get("stopSequences").and_then(Value::as_array)
            && !stops.is_empty()
        {
            chat.insert("stop".into(), Value::Array(stops.clone()));
        }
    }
    if let Some(tool_config) = body.get("toolConfig") {
        let tools: Vec<Value> = tool_config
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| t.get("toolSpec"))
                    .map(|spec| {
                        json!({"name": spec.get("name"),
                            "parameters": spec.get("inputSchema").and_then(|s| s.get("json"))})
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !tools.is_empty() {
            chat.insert("tools".into(), Value::Array(tools));
        }
        if let Some(name) = tool_config
            .get("toolChoice")
            .and_then(|c| c.get("tool"))
            .and_then(|t| t.get("name"))
        {
            chat.insert("tool_choice".into(), json!({ "name": name }));
        }
    }
    Ok(Value::Object(chat))
}

/// The text of `{"text": ..}` blocks (images and tool blocks carry none).
fn texts(blocks: &[Value]) -> Vec<&str> {
    blocks
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect()
}

struct Answer {
    blocks: Vec<Block>,
    stop_reason: &'static str,
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

impl Answer {
    fn new(reply: Reply, stopped_by_sequence: bool) -> Self {
        let blocks = match reply.content {
            Content::Text(text) => vec![Block::Text(text)],
            Content::ToolCalls(calls) => calls
                .into_iter()
                .map(|c| Block::ToolUse {
                    id: format!("tooluse_{}", c.id.trim_start_matches("call_")),
                    name: c.name,
                    input: serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({})),
                })
                .collect(),
        };
        let stop_reason = match reply.finish_reason {
            "length" => "max_tokens",
            "tool_calls" => "tool_use",
            _ if stopped_by_sequence => "stop_sequence",
            _ => "end_turn",
        };
        Self {
            blocks,
            stop_reason,
            input_tokens: reply.usage.prompt_tokens,
            output_tokens: reply.usage.completion_tokens,
        }
    }

    fn usage(&self) -> Value {
        json!({
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.output_tokens,
        })
    }

    fn body(&self) -> Value {
        let content: Vec<Value> = self
            .blocks
            .iter()
            .map(|b| match b {
                Block::Text(text) => json!({ "text": text }),
                Block::ToolUse { id, name, input } => {
                    json!({"toolUse": {"toolUseId": id, "name": name, "input": input}})
                }
            })
            .collect();
        json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self.stop_reason,
            "usage": self.usage(),
            "metrics": {"latencyMs": 0},
        })
    }

    /// The stream's events in order, each flagged when it carries content
    /// (what `truncate=N` counts).
    fn events(&self) -> Vec<(bool, &'static str, Value)> {
        let mut out = vec![(false, "messageStart", json!({"role": "assistant"}))];
        for (index, block) in self.blocks.iter().enumerate() {
            match block {
                Block::Text(text) => {
                    // Bedrock starts text blocks with their first delta.
                    for piece in word_pieces(text) {
                        out.push((
                            true,
                            "contentBlockDelta",
                            json!({"contentBlockIndex": index, "delta": {"text": piece}}),
                        ));
                    }
                }
                Block::ToolUse { id, name, input } => {
                    out.push((
                        false,
                        "contentBlockStart",
                        json!({"contentBlockIndex": index,
                            "start": {"toolUse": {"toolUseId": id, "name": name}}}),
                    ));
                    // Real streams cut the JSON anywhere; halves show that.
                    let json = input.to_string();
                    let mid = (0..=json.len() / 2)
                        .rev()
                        .find(|&i| json.is_char_boundary(i))
                        .unwrap_or(0);
                    for piece in [&json[..mid], &json[mid..]] {
                        out.push((
                            true,
                            "contentBlockDelta",
                            json!({"contentBlockIndex": index,
                                "delta": {"toolUse": {"input": piece}}}),
                        ));
                    }
                }
            }
            out.push((
                false,
                "contentBlockStop",
                json!({ "contentBlockIndex": index }),
            ));
        }
        out.push((
            false,
            "messageStop",
            json!({ "stopReason": self.stop_reason }),
        ));
        out.push((
            false,
            "metadata",
            json!({"usage": self.usage(), "metrics": {"latencyMs": 0}}),
        ));
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

/// One event-stream frame: `:event-type`, `:content-type`, `:message-type`
/// headers and a JSON payload.
pub(crate) fn frame(
    message_type: &'static str,
    kind_header: (&'static str, &str),
    payload: &Value,
) -> Bytes {
    let message = Message::new(Bytes::from(payload.to_string()))
        .add_header(Header::new(
            kind_header.0,
            FrameValue::String(kind_header.1.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            FrameValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            FrameValue::String(message_type.into()),
        ));
    let mut out = Vec::new();
    // Header names and values here are short constants; writing cannot fail.
    if write_message_to(&message, &mut out).is_err() {
        return Bytes::new();
    }
    Bytes::from(out)
}

fn event_frame(event_type: &str, payload: &Value) -> Bytes {
    frame("event", (":event-type", event_type), payload)
}

struct Paced {
    frames: std::vec::IntoIter<(bool, Bytes)>,
    sent: u32,
    content_sent: u32,
    delay: Duration,
    stall: Option<(u32, Duration)>,
    truncate: Option<u32>,
    malformed: bool,
    done: bool,
}

fn stream_response(shared: &Shared, answer: &Answer, fault: &Fault) -> Response {
    let frames: Vec<(bool, Bytes)> = answer
        .events()
        .into_iter()
        .map(|(content, kind, payload)| (content, event_frame(kind, &payload)))
        .collect();
    let state = Paced {
        frames: frames.into_iter(),
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
        let (content, bytes) = st.frames.next()?;
        st.sent += 1;
        if content {
            st.content_sent += 1;
        }
        if st.malformed && st.sent == 2 {
            // The second frame, its message CRC flipped: a client must
            // refuse it rather than trust its length or payload.
            st.malformed = false;
            let mut bad = bytes.to_vec();
            if let Some(last) = bad.last_mut() {
                *last ^= 0xff;
            }
            return Some((Ok(Bytes::from(bad)), st));
        }
        Some((Ok(bytes), st))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    headers.insert("x-amzn-requestid", request_id_value());
    response
}

/// A finished JSON body, unless a fault spoils it.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converse_requests_restate_as_chat_bodies() {
        let body = json!({
        "system": [{"text": "s"}],
        "inferenceConfig": {"maxTokens": 5, "stopSequences": ["X"]},
        "toolConfig": {"tools": [{"toolSpec": {"name": "w", "inputSchema": {"json": {"type": "object"}}}}],
            "toolChoice": {"tool": {"name": "w"}}},
        "messages": [
            {"role": "user", "content": [{"text": "hi"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "w", "input": {"a": 1}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
                {"text": "and?"}]}
        ]});
        let chat = to_chat_shape(&body, "m").unwrap();
        assert_eq!(
            chat,
            json!({"model": "m", "max_tokens": 5, "stop": ["X"],
            "tools": [{"name": "w", "parameters": {"type": "object"}}],
            "tool_choice": {"name": "w"},
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "t1", "type": "function",
                    "function": {"name": "w", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
                {"role": "user", "content": [{"type": "text", "text": "and?"}]}
            ]})
        );
        assert!(to_chat_shape(&json!({"messages": []}), "m").is_err());
    }

    #[test]
    fn frames_round_trip_through_the_sdk_codec() {
        let bytes = event_frame("messageStart", &json!({"role": "assistant"}));
        let message = aws_smithy_eventstream::frame::read_message_from(bytes.clone()).unwrap();
        assert_eq!(message.payload().as_ref(), br#"{"role":"assistant"}"#);
        let mut bad = bytes.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(aws_smithy_eventstream::frame::read_message_from(Bytes::from(bad)).is_err());
    }
}

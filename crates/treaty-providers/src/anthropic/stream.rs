//! Anthropic Messages SSE events as OpenAI `chat.completion.chunk` payloads.
//!
//! Each event is translated as soon as the SSE layer ([`crate::sse`])
//! yields it, so nothing is buffered beyond one event: `message_start`
//! becomes the `role: assistant` chunk, text deltas content chunks,
//! `tool_use` blocks a chunk naming the call (`index`, `id`, name) followed
//! by argument fragments, `message_delta` records the stop reason and
//! usage, and `message_stop` yields the `finish_reason` chunk, the usage
//! event and (if the client asked) the usage chunk, then ends. `ping` and
//! unknown event types are skipped, as Anthropic asks of clients. An
//! `error` event, malformed JSON, the deadline or a body that ends before
//! `message_stop` yields one error and ends the stream.

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};
use treaty_config::Secret;

use super::response::{WireUsage, json_problem, usage};
use super::{finish_reason, in_stream_error, total_timeout};
use crate::{ChunkStream, StreamEvent, UpstreamError};

/// One event's `data`, read by its `type`. Fields are optional so that a
/// new field or an omitted one never fails a stream.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: BlockStart,
    },
    ContentBlockDelta {
        index: u64,
        delta: Delta,
    },
    ContentBlockStop {},
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop {},
    Ping {},
    Error {
        error: ErrorDetail,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta {
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

struct Decoder<E> {
    events: E,
    deadline: Instant,
    forward_usage: bool,
    secret: Option<Secret>,
    id: String,
    model: String,
    created: u64,
    /// Anthropic block index → OpenAI tool call index, for `tool_use` blocks.
    tool_blocks: Vec<(u64, u64)>,
    stop_reason: Option<String>,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// Events produced by the last upstream event, not yet yielded.
    pending: VecDeque<StreamEvent>,
    finished: bool,
}

/// Turns an Anthropic SSE body into [`StreamEvent`]s.
pub(crate) fn decode<S>(
    body: S,
    forward_usage: bool,
    deadline: Instant,
    secret: Option<Secret>,
) -> ChunkStream
where
    S: Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static,
{
    let decoder = Decoder {
        events: Box::pin(crate::sse::events(body)),
        deadline,
        forward_usage,
        secret,
        id: String::new(),
        model: String::new(),
        created: super::unix_now(),
        tool_blocks: Vec::new(),
        stop_reason: None,
        prompt_tokens: 0,
        completion_tokens: 0,
        pending: VecDeque::new(),
        finished: false,
    };
    Box::pin(futures_util::stream::unfold(decoder, |mut d| async move {
        let item = d.next_event().await?;
        Some((item, d))
    }))
}

impl<E> Decoder<E>
where
    E: Stream<Item = Result<eventsource_stream::Event, UpstreamError>> + Unpin,
{
    async fn next_event(&mut self) -> Option<Result<StreamEvent, UpstreamError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            let event = match timeout_at(self.deadline, self.events.next()).await {
                Err(_) => return self.fail(total_timeout()),
                Ok(None) => return self.fail(UpstreamError::Truncated),
                Ok(Some(Err(e))) => return self.fail(e),
                Ok(Some(Ok(event))) => event,
            };
            // Anthropic repeats the type in `data`; the `event:` field is
            // not needed.
            let parsed = match serde_json::from_str::<Event>(&event.data) {
                Ok(parsed) => parsed,
                Err(e) => {
                    return self.fail(UpstreamError::Protocol(format!(
                        "stream event is not an Anthropic event ({})",
                        json_problem(&e)
                    )));
                }
            };
            if let Err(e) = self.apply(parsed) {
                return self.fail(e);
            }
        }
    }

    /// Queues what one upstream event means for the client.
    fn apply(&mut self, event: Event) -> Result<(), UpstreamError> {
        match event {
            Event::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                if let Some(u) = message.usage {
                    self.record(u);
                }
                self.chunk(json!({"role": "assistant", "content": ""}), None)?;
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                BlockStart::Text { text } if !text.is_empty() => {
                    self.chunk(json!({ "content": text }), None)?;
                }
                BlockStart::ToolUse { id, name } => {
                    let call = self.tool_blocks.len() as u64;
                    self.tool_blocks.push((index, call));
                    self.chunk(
                        json!({"tool_calls": [{
                            "index": call,
                            "id": id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }]}),
                        None,
                    )?;
                }
                BlockStart::Text { .. } | BlockStart::Other => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                Delta::Text { text } => {
                    if !text.is_empty() {
                        self.chunk(json!({ "content": text }), None)?;
                    }
                }
                Delta::InputJson { partial_json } => {
                    let call = self
                        .tool_blocks
                        .iter()
                        .find(|(block, _)| *block == index)
                        .map(|(_, call)| *call)
                        .ok_or_else(|| {
                            UpstreamError::Protocol(
                                "tool input for a block that is not a tool call".into(),
                            )
                        })?;
                    if !partial_json.is_empty() {
                        self.chunk(
                            json!({"tool_calls": [{
                                "index": call,
                                "function": {"arguments": partial_json},
                            }]}),
                            None,
                        )?;
                    }
                }
                Delta::Other => {}
            },
            Event::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                if let Some(u) = usage {
                    self.record(u);
                }
            }
            Event::MessageStop {} => {
                let reason = finish_reason(self.stop_reason.as_deref());
                self.chunk(json!({}), Some(reason))?;
                let usage = usage(self.prompt_tokens, self.completion_tokens);
                self.pending.push_back(StreamEvent::Usage(usage));
                if self.forward_usage {
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage,
                    });
                    self.pending.push_back(StreamEvent::Chunk(encode(&chunk)?));
                }
                self.finished = true;
            }
            Event::Error { error } => {
                let secret = self.secret.as_ref().map(Secret::expose);
                return Err(in_stream_error(
                    error.kind.as_deref(),
                    error.message.as_deref(),
                    secret,
                ));
            }
            Event::ContentBlockStop {} | Event::Ping {} | Event::Unknown => {}
        }
        Ok(())
    }

    /// Usage counts are cumulative on each event that carries them.
    fn record(&mut self, u: WireUsage) {
        if let Some(prompt) = u.prompt() {
            self.prompt_tokens = prompt;
        }
        if let Some(out) = u.output_tokens {
            self.completion_tokens = out;
        }
    }

    fn chunk(&mut self, delta: Value, finish: Option<&str>) -> Result<(), UpstreamError> {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish,
            }],
        });
        self.pending.push_back(StreamEvent::Chunk(encode(&chunk)?));
        Ok(())
    }

    fn fail(&mut self, e: UpstreamError) -> Option<Result<StreamEvent, UpstreamError>> {
        self.finished = true;
        self.pending.clear();
        tracing::debug!(error = %e, "upstream stream failed");
        Some(Err(e))
    }
}

fn encode(value: &Value) -> Result<Bytes, UpstreamError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|_| UpstreamError::Protocol("a chunk could not be encoded".into()))
}

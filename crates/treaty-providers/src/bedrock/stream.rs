//! ConverseStream replies (`application/vnd.amazon.eventstream`) as OpenAI
//! `chat.completion.chunk` payloads, translated as bytes arrive.
//!
//! Framing: each message is `total length | headers length | prelude CRC |
//! headers | payload | message CRC`. This module only cuts the byte stream
//! at the announced lengths (refusing absurd ones, so garbage cannot make
//! it buffer without bound); `aws-smithy-eventstream`, the AWS SDK's own
//! codec, parses each whole frame and checks both CRCs.
//!
//! Events: `messageStart` becomes the `role: assistant` chunk, text deltas
//! content chunks, a `toolUse` block start a chunk naming the call
//! (`index`, `id` = `toolUseId`, name) followed by its input fragments,
//! `messageStop` the `finish_reason` chunk, and `metadata` (which Bedrock
//! sends after `messageStop`) the usage event and, when the client asked,
//! the usage chunk; then the stream ends. Unknown events are skipped.
//! An exception message (`:message-type: exception`, e.g.
//! `throttlingException`), a CRC mismatch, malformed JSON, the deadline or
//! a body that ends before `messageStop` yields one error and ends the
//! stream. Nothing here panics or waits past the deadline.

use std::collections::VecDeque;

use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::Message;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};

use super::response::WireUsage;
use super::{finish_reason, json_problem, stream_exception, total_timeout};
use crate::redact::redact;
use crate::{ChunkStream, StreamEvent, UpstreamError};

/// Prelude (12 bytes) plus the message CRC (4).
const MIN_FRAME: usize = 16;
/// AWS caps event-stream messages at 16 MiB of payload plus headers; a
/// larger announced length is corruption, not a big event.
const MAX_FRAME: usize = (16 << 20) + (128 << 10);

/// Cuts the next whole frame off `buf` and decodes it; `Ok(None)` when
/// more bytes are needed.
pub(crate) fn next_frame(buf: &mut BytesMut) -> Result<Option<Message>, UpstreamError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let total = (&buf[..4]).get_u32() as usize;
    if !(MIN_FRAME..=MAX_FRAME).contains(&total) {
        return Err(UpstreamError::Protocol(format!(
            "event-stream frame length {total} is out of range"
        )));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let frame = buf.split_to(total).freeze();
    read_message_from(frame)
        .map(Some)
        .map_err(|e| UpstreamError::Protocol(format!("bad event-stream frame: {e}")))
}

/// The value of string header `name`.
pub(crate) fn header<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    #[serde(default)]
    content_block_index: u64,
    #[serde(default)]
    start: Option<Start>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Start {
    #[serde(default)]
    tool_use: Option<ToolUseStart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart {
    tool_use_id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    #[serde(default)]
    content_block_index: u64,
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delta {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolUseDelta>,
}

#[derive(Deserialize)]
struct ToolUseDelta {
    #[serde(default)]
    input: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct ExceptionBody {
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

struct Decoder<B> {
    body: B,
    buf: BytesMut,
    deadline: Instant,
    forward_usage: bool,
    secrets: Vec<String>,
    id: String,
    model: String,
    created: u64,
    /// Converse block index → OpenAI tool call index, for `toolUse` blocks.
    tool_blocks: Vec<(u64, u64)>,
    /// `messageStop` was seen: the answer is complete.
    stopped: bool,
    usage: Option<WireUsage>,
    pending: VecDeque<StreamEvent>,
    finished: bool,
}

/// Turns a ConverseStream body into [`StreamEvent`]s. `id` and `model`
/// name the chunks (Bedrock's stream names neither); `secrets` are
/// scrubbed from exception messages.
pub(crate) fn decode<S>(
    body: S,
    forward_usage: bool,
    deadline: Instant,
    id: String,
    model: String,
    secrets: Vec<String>,
) -> ChunkStream
where
    S: Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static,
{
    let decoder = Decoder {
        body: Box::pin(body),
        buf: BytesMut::new(),
        deadline,
        forward_usage,
        secrets,
        id,
        model,
        created: super::unix_now(),
        tool_blocks: Vec::new(),
        stopped: false,
        usage: None,
        pending: VecDeque::new(),
        finished: false,
    };
    Box::pin(futures_util::stream::unfold(decoder, |mut d| async move {
        let item = d.next_event().await?;
        Some((item, d))
    }))
}

impl<B> Decoder<B>
where
    B: Stream<Item = Result<Bytes, UpstreamError>> + Unpin,
{
    async fn next_event(&mut self) -> Option<Result<StreamEvent, UpstreamError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            match next_frame(&mut self.buf) {
                Err(e) => return self.fail(e),
                Ok(Some(message)) => {
                    if let Err(e) = self.apply(&message) {
                        return self.fail(e);
                    }
                    continue;
                }
                Ok(None) => {}
            }
            match timeout_at(self.deadline, self.body.next()).await {
                Err(_) => return self.fail(total_timeout()),
                Ok(Some(Err(e))) => return self.fail(e),
                Ok(Some(Ok(bytes))) => self.buf.extend_from_slice(&bytes),
                Ok(None) => {
                    if self.stopped && self.buf.is_empty() {
                        // Complete, only without `metadata`: no usage to report.
                        self.finished = true;
                    } else {
                        return self.fail(UpstreamError::Truncated);
                    }
                }
            }
        }
    }

    /// Queues what one event-stream message means for the client.
    fn apply(&mut self, message: &Message) -> Result<(), UpstreamError> {
        match header(message, ":message-type") {
            Some("event") => {}
            Some("exception") => {
                let kind = header(message, ":exception-type").unwrap_or("exception");
                let text = serde_json::from_slice::<ExceptionBody>(message.payload())
                    .ok()
                    .and_then(|b| b.message)
                    .unwrap_or_default();
                return Err(stream_exception(kind, &self.scrub(&text)));
            }
            Some("error") => {
                let code = header(message, ":error-code").map(|c| self.scrub(c));
                let text = header(message, ":error-message").unwrap_or_default();
                return Err(UpstreamError::InStream {
                    message: self.scrub(text),
                    code,
                });
            }
            _ => {
                return Err(UpstreamError::Protocol(
                    "event-stream message without a known :message-type".into(),
                ));
            }
        }
        let payload = message.payload();
        match header(message, ":event-type") {
            Some("messageStart") => {
                self.chunk(json!({"role": "assistant", "content": ""}), None)?;
            }
            Some("contentBlockStart") => {
                let start: BlockStart = parse(payload)?;
                if let Some(tool) = start.start.and_then(|s| s.tool_use) {
                    let call = self.tool_blocks.len() as u64;
                    self.tool_blocks.push((start.content_block_index, call));
                    self.chunk(
                        json!({"tool_calls": [{
                            "index": call,
                            "id": tool.tool_use_id,
                            "type": "function",
                            "function": {"name": tool.name, "arguments": ""},
                        }]}),
                        None,
                    )?;
                }
            }
            Some("contentBlockDelta") => {
                let delta: BlockDelta = parse(payload)?;
                let Some(d) = delta.delta else {
                    return Ok(());
                };
                if let Some(text) = d.text.filter(|t| !t.is_empty()) {
                    self.chunk(json!({ "content": text }), None)?;
                }
                if let Some(tool) = d.tool_use {
                    let call = self
                        .tool_blocks
                        .iter()
                        .find(|(block, _)| *block == delta.content_block_index)
                        .map(|(_, call)| *call)
                        .ok_or_else(|| {
                            UpstreamError::Protocol(
                                "tool input for a block that is not a tool call".into(),
                            )
                        })?;
                    if !tool.input.is_empty() {
                        self.chunk(
                            json!({"tool_calls": [{
                                "index": call,
                                "function": {"arguments": tool.input},
                            }]}),
                            None,
                        )?;
                    }
                }
            }
            Some("messageStop") => {
                let stop: MessageStop = parse(payload)?;
                let reason = finish_reason(stop.stop_reason.as_deref());
                self.chunk(json!({}), Some(reason))?;
                self.stopped = true;
                if self.usage.is_some() {
                    self.emit_usage()?;
                }
            }
            Some("metadata") => {
                let meta: Metadata = parse(payload)?;
                self.usage = Some(meta.usage.unwrap_or_default());
                if self.stopped {
                    self.emit_usage()?;
                }
            }
            // contentBlockStop and events added after this was written.
            _ => {}
        }
        Ok(())
    }

    /// The usage event (and chunk, if asked for); the stream is complete.
    fn emit_usage(&mut self) -> Result<(), UpstreamError> {
        let wire = self.usage.unwrap_or_default();
        self.pending.push_back(StreamEvent::Usage(wire.openai()));
        if self.forward_usage {
            let chunk = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": wire.openai_json(),
            });
            self.pending.push_back(StreamEvent::Chunk(encode(&chunk)?));
        }
        self.finished = true;
        Ok(())
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

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            out = redact(&out, Some(secret));
        }
        redact(&out, None)
    }

    fn fail(&mut self, e: UpstreamError) -> Option<Result<StreamEvent, UpstreamError>> {
        self.finished = true;
        self.pending.clear();
        tracing::debug!(error = %e, "upstream stream failed");
        Some(Err(e))
    }
}

fn parse<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, UpstreamError> {
    serde_json::from_slice(payload).map_err(|e| {
        UpstreamError::Protocol(format!(
            "stream event is not a Converse event ({})",
            json_problem(&e)
        ))
    })
}

fn encode(value: &Value) -> Result<Bytes, UpstreamError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|_| UpstreamError::Protocol("a chunk could not be encoded".into()))
}

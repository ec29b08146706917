//! Gemini `streamGenerateContent?alt=sse` events as OpenAI
//! `chat.completion.chunk` payloads.
//!
//! Every SSE `data:` is a whole `GenerateContentResponse` holding the next
//! piece of each candidate. It is translated as soon as the SSE layer
//! ([`crate::sse`]) yields it, so nothing is buffered beyond one event: the
//! first piece of a candidate is preceded by its `role: assistant` chunk,
//! text becomes content deltas, each `functionCall` (Gemini sends them
//! whole) one tool call delta with its `index`, id, name and complete
//! arguments, and a `finishReason` the candidate's `finish_reason` chunk.
//! `usageMetadata` is cumulative; the last one seen is reported when the
//! body ends, as a [`StreamEvent::Usage`] and, if the client asked, a usage
//! chunk.
//!
//! Gemini's stream has no terminator: it is complete when every candidate
//! has finished and the body ends. A body that ends earlier is
//! [`UpstreamError::Truncated`]; an `error` object, malformed JSON, an
//! unusable finish reason or the deadline yields one error and ends the
//! stream.

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};
use treaty_config::Secret;

use super::response::{Candidate, WireResponse, WireUsage, json_problem};
use super::{CallIds, finish_reason, in_stream_error, total_timeout};
use crate::{ChunkStream, StreamEvent, UpstreamError};

/// What the decoder needs to know beyond the bytes.
pub(crate) struct Options {
    /// Send the usage chunk to the client (`stream_options.include_usage`).
    pub(crate) forward_usage: bool,
    /// The model asked for, named in chunks when Gemini sends no
    /// `modelVersion`.
    pub(crate) model: String,
    pub(crate) deadline: Instant,
    /// The credential, scrubbed from in-stream error messages.
    pub(crate) secret: Option<Secret>,
}

/// One OpenAI choice being streamed.
struct Choice {
    index: u32,
    /// Tool calls sent so far (the next call's `index`).
    calls: u32,
    finished: bool,
}

struct Decoder<E> {
    events: E,
    options: Options,
    /// Set from the first event.
    id: Option<String>,
    ids: CallIds,
    created: u64,
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
    /// Chunks produced by the last upstream event, not yet yielded.
    pending: VecDeque<StreamEvent>,
    finished: bool,
}

/// Turns a Gemini SSE body into [`StreamEvent`]s.
pub(crate) fn decode<S>(body: S, options: Options) -> ChunkStream
where
    S: Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static,
{
    let decoder = Decoder {
        events: Box::pin(crate::sse::events(body)),
        options,
        id: None,
        ids: CallIds::new(None),
        created: super::unix_now(),
        choices: Vec::new(),
        usage: None,
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
            let event = match timeout_at(self.options.deadline, self.events.next()).await {
                Err(_) => return self.fail(total_timeout()),
                Ok(None) => {
                    if let Err(e) = self.end() {
                        return self.fail(e);
                    }
                    continue;
                }
                Ok(Some(Err(e))) => return self.fail(e),
                Ok(Some(Ok(event))) => event,
            };
            let parsed = match serde_json::from_str::<WireResponse>(&event.data) {
                Ok(parsed) => parsed,
                Err(e) => {
                    return self.fail(UpstreamError::Protocol(format!(
                        "stream event is not a Gemini GenerateContentResponse ({})",
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
    fn apply(&mut self, event: WireResponse) -> Result<(), UpstreamError> {
        if let Some(error) = event.error {
            let secret = self.options.secret.as_ref().map(Secret::expose);
            return Err(in_stream_error(error, secret));
        }
        if self.id.is_none() {
            self.ids = CallIds::new(event.response_id.as_deref());
            self.id = Some(self.ids.completion_id(event.response_id.as_deref()));
            if let Some(model) = event.model_version.filter(|m| !m.is_empty()) {
                self.options.model = model;
            }
        }
        if let Some(usage) = event.usage_metadata {
            self.usage = Some(usage);
        }
        let blocked = event.prompt_feedback.and_then(|f| f.block_reason).is_some();
        if event.candidates.is_empty() && blocked {
            let slot = self.choice(0)?;
            if !self.choices[slot].finished {
                self.choices[slot].finished = true;
                self.chunk(0, json!({}), Some("content_filter"))?;
            }
            return Ok(());
        }
        for (position, candidate) in event.candidates.into_iter().enumerate() {
            self.candidate(position, candidate)?;
        }
        Ok(())
    }

    fn candidate(&mut self, position: usize, candidate: Candidate) -> Result<(), UpstreamError> {
        let index = candidate.index.unwrap_or(position as u32);
        let slot = self.choice(index)?;
        // Nothing may follow a choice's finish_reason for an OpenAI client;
        // a trailing piece (an empty part, a repeated reason) is dropped.
        if self.choices[slot].finished {
            tracing::debug!(
                index,
                "candidate continued after its finish reason; ignored"
            );
            return Ok(());
        }
        let mut text = String::new();
        for part in candidate.content.unwrap_or_default().parts {
            if part.thought {
                continue;
            }
            if let Some(t) = part.text {
                text.push_str(&t);
            }
            if let Some(call) = part.function_call {
                if !text.is_empty() {
                    self.chunk(index, json!({ "content": std::mem::take(&mut text) }), None)?;
                }
                let n = self.choices[slot].calls;
                self.choices[slot].calls += 1;
                self.chunk(
                    index,
                    json!({"tool_calls": [{
                        "index": n,
                        "id": self.ids.id(index, n),
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments()},
                    }]}),
                    None,
                )?;
            }
        }
        if !text.is_empty() {
            self.chunk(index, json!({ "content": text }), None)?;
        }
        if let Some(reason) = candidate.finish_reason {
            let has_calls = self.choices[slot].calls > 0;
            let finish = finish_reason(Some(&reason), has_calls)?;
            self.choices[slot].finished = true;
            self.chunk(index, json!({}), Some(finish))?;
        }
        Ok(())
    }

    /// The state of choice `index`, opened (with its role chunk) on first
    /// sight.
    fn choice(&mut self, index: u32) -> Result<usize, UpstreamError> {
        if let Some(slot) = self.choices.iter().position(|c| c.index == index) {
            return Ok(slot);
        }
        // OpenAI allows 128 choices; more is a broken stream, not a reply.
        if self.choices.len() >= 128 {
            return Err(UpstreamError::Protocol("too many candidates".into()));
        }
        self.choices.push(Choice {
            index,
            calls: 0,
            finished: false,
        });
        self.chunk(index, json!({"role": "assistant", "content": ""}), None)?;
        Ok(self.choices.len() - 1)
    }

    /// The body ended: complete if every candidate finished.
    fn end(&mut self) -> Result<(), UpstreamError> {
        if self.choices.is_empty() || self.choices.iter().any(|c| !c.finished) {
            return Err(UpstreamError::Truncated);
        }
        self.finished = true;
        let Some(wire) = self.usage else {
            return Ok(());
        };
        self.pending.push_back(StreamEvent::Usage(wire.usage()));
        if self.options.forward_usage {
            let chunk = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.options.model,
                "choices": [],
                "usage": wire.body(),
            });
            self.pending.push_back(StreamEvent::Chunk(encode(&chunk)?));
        }
        Ok(())
    }

    fn chunk(
        &mut self,
        index: u32,
        delta: Value,
        finish: Option<&str>,
    ) -> Result<(), UpstreamError> {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.options.model,
            "choices": [{
                "index": index,
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

//! Server-sent event streams of `chat.completion.chunk`s, generated lazily:
//! each frame is built only when hyper asks for it, so the first chunk is on
//! the wire before later ones exist and a 10 MB stream never sits in memory.
//! Stream faults live here too: slow drip, a stall after N chunks, a
//! malformed frame, and truncation (the body yields an error, so hyper
//! drops the connection without the terminating chunk and no `[DONE]`).

use crate::bulk::filler_slice;
use crate::reply::Usage;
use crate::tools::ToolCall;
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::{BufMut as _, Bytes, BytesMut};
use serde::Serialize;
use std::time::Duration;

/// Tool call arguments are streamed in fragments of about this many bytes.
const ARGUMENT_FRAGMENT: usize = 8;

/// How long a truncated body waits before failing. hyper drops its write
/// buffer when a body fails, so without this pause the bytes "sent" before
/// the cut would never reach the socket.
const FLUSH_BEFORE_TRUNCATION: Duration = Duration::from_millis(10);

/// The error a truncated body yields; hyper then aborts the connection.
#[derive(Debug, thiserror::Error)]
#[error("emulated truncation: the emulator cut this response on purpose")]
pub(crate) struct Truncated;

impl Truncated {
    /// Fails the body once what was already written has had time to go out.
    pub(crate) async fn after_flush<T>() -> Result<T, Self> {
        tokio::time::sleep(FLUSH_BEFORE_TRUNCATION).await;
        Err(Self)
    }
}

/// What the stream says.
pub(crate) enum StreamContent {
    Text(String),
    ToolCalls(Vec<ToolCall>),
    /// `stream_bytes=N`: N bytes of filler text in ~1 KiB chunks.
    Filler(u64),
}

/// How the stream misbehaves, if at all.
#[derive(Default)]
pub(crate) struct Pacing {
    pub(crate) chunk_delay: Duration,
    /// Stall for the duration once this many chunks are out.
    pub(crate) stall: Option<(u32, Duration)>,
    /// Abort once this many content chunks are out.
    pub(crate) truncate: Option<u32>,
    pub(crate) malformed: bool,
}

pub(crate) struct StreamPlan {
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
    pub(crate) n: u32,
    pub(crate) content: StreamContent,
    pub(crate) finish_reason: &'static str,
    /// `Some` when the client asked for `stream_options.include_usage`.
    pub(crate) usage: Option<Usage>,
    pub(crate) pacing: Pacing,
}

impl StreamPlan {
    pub(crate) fn into_response(self) -> Response {
        let streamer = Streamer {
            step: Step::Role,
            sent: 0,
            content_sent: 0,
            buf: BytesMut::with_capacity(512),
            plan: self,
        };
        let frames = futures_util::stream::unfold(streamer, |mut streamer| async move {
            let frame = streamer.next().await?;
            Some((frame, streamer))
        });
        let mut response = Response::new(Body::from_stream(frames));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

enum Step {
    Role,
    Malformed,
    Text { at: usize },
    ToolStart { call: usize },
    ToolArguments { call: usize, at: usize },
    Filler { left: u64 },
    Finish,
    Usage,
    Done,
    End,
}

struct Streamer {
    plan: StreamPlan,
    step: Step,
    /// Units (one frame per choice) sent so far.
    sent: u32,
    /// Of those, units that carried content or argument text.
    content_sent: u32,
    buf: BytesMut,
}

impl Streamer {
    async fn next(&mut self) -> Option<Result<Bytes, Truncated>> {
        if matches!(self.step, Step::End) {
            return None;
        }
        let pacing = &self.plan.pacing;
        match pacing.stall {
            Some((after, stall)) if after == self.sent => tokio::time::sleep(stall).await,
            _ if self.sent > 0 && !pacing.chunk_delay.is_zero() => {
                tokio::time::sleep(pacing.chunk_delay).await;
            }
            _ => {}
        }
        if let Some(limit) = self.plan.pacing.truncate {
            let content_over = matches!(self.step, Step::Finish | Step::Usage | Step::Done);
            if !matches!(self.step, Step::Role) && (self.content_sent >= limit || content_over) {
                self.step = Step::End;
                return Some(Truncated::after_flush().await);
            }
        }
        self.sent += 1;
        Some(Ok(self.unit()))
    }

    /// Writes the frames of the current step and advances to the next one.
    fn unit(&mut self) -> Bytes {
        loop {
            match self.step {
                Step::Role => {
                    let content = match self.plan.content {
                        StreamContent::ToolCalls(_) => None,
                        _ => Some(""),
                    };
                    let delta = Delta {
                        role: Some("assistant"),
                        content: Some(content),
                        tool_calls: None,
                    };
                    write_frames(&mut self.buf, &self.plan, &delta, None);
                    self.step = if self.plan.pacing.malformed {
                        Step::Malformed
                    } else {
                        self.first_content_step()
                    };
                    break;
                }
                Step::Malformed => {
                    self.buf.extend_from_slice(b"data: {not json\n\n");
                    self.step = self.first_content_step();
                    break;
                }
                Step::Text { at } => {
                    let StreamContent::Text(text) = &self.plan.content else {
                        self.step = Step::Finish;
                        continue;
                    };
                    if at >= text.len() {
                        self.step = Step::Finish;
                        continue;
                    }
                    let end = piece_end(text, at);
                    let delta = Delta {
                        role: None,
                        content: Some(text.get(at..end)),
                        tool_calls: None,
                    };
                    write_frames(&mut self.buf, &self.plan, &delta, None);
                    self.content_sent += 1;
                    self.step = Step::Text { at: end };
                    break;
                }
                Step::ToolStart { call } => {
                    let StreamContent::ToolCalls(calls) = &self.plan.content else {
                        self.step = Step::Finish;
                        continue;
                    };
                    let Some(tool) = calls.get(call) else {
                        self.step = Step::Finish;
                        continue;
                    };
                    let delta = ToolCallDelta {
                        index: call,
                        id: Some(&tool.id),
                        kind: Some("function"),
                        function: FunctionDelta {
                            name: Some(&tool.name),
                            arguments: "",
                        },
                    };
                    write_frames(&mut self.buf, &self.plan, &tool_delta(delta), None);
                    self.step = Step::ToolArguments { call, at: 0 };
                    break;
                }
                Step::ToolArguments { call, at } => {
                    let StreamContent::ToolCalls(calls) = &self.plan.content else {
                        self.step = Step::Finish;
                        continue;
                    };
                    let Some(tool) = calls.get(call) else {
                        self.step = Step::Finish;
                        continue;
                    };
                    if at >= tool.arguments.len() {
                        self.step = Step::ToolStart { call: call + 1 };
                        continue;
                    }
                    let end = tool.arguments.ceil_char_boundary(at + ARGUMENT_FRAGMENT);
                    let delta = ToolCallDelta {
                        index: call,
                        id: None,
                        kind: None,
                        function: FunctionDelta {
                            name: None,
                            arguments: tool.arguments.get(at..end).unwrap_or_default(),
                        },
                    };
                    write_frames(&mut self.buf, &self.plan, &tool_delta(delta), None);
                    self.content_sent += 1;
                    self.step = Step::ToolArguments { call, at: end };
                    break;
                }
                Step::Filler { left } => {
                    if left == 0 {
                        self.step = Step::Finish;
                        continue;
                    }
                    let slice = filler_slice(left);
                    let delta = Delta {
                        role: None,
                        content: Some(Some(slice)),
                        tool_calls: None,
                    };
                    write_frames(&mut self.buf, &self.plan, &delta, None);
                    self.content_sent += 1;
                    self.step = Step::Filler {
                        left: left - slice.len() as u64,
                    };
                    break;
                }
                Step::Finish => {
                    let finish = Some(self.plan.finish_reason);
                    write_frames(&mut self.buf, &self.plan, &Delta::default(), finish);
                    self.step = if self.plan.usage.is_some() {
                        Step::Usage
                    } else {
                        Step::Done
                    };
                    break;
                }
                Step::Usage => {
                    let chunk = Chunk {
                        id: &self.plan.id,
                        object: "chat.completion.chunk",
                        created: self.plan.created,
                        model: &self.plan.model,
                        system_fingerprint: "emulator",
                        choices: &[],
                        usage: Some(self.plan.usage.as_ref()),
                    };
                    write_frame(&mut self.buf, &chunk);
                    self.step = Step::Done;
                    break;
                }
                Step::Done | Step::End => {
                    self.buf.extend_from_slice(b"data: [DONE]\n\n");
                    self.step = Step::End;
                    break;
                }
            }
        }
        self.buf.split().freeze()
    }

    fn first_content_step(&self) -> Step {
        match self.plan.content {
            StreamContent::Text(_) => Step::Text { at: 0 },
            StreamContent::ToolCalls(_) => Step::ToolStart { call: 0 },
            StreamContent::Filler(bytes) => Step::Filler { left: bytes },
        }
    }
}

fn tool_delta(call: ToolCallDelta<'_>) -> Delta<'_> {
    Delta {
        role: None,
        content: None,
        tool_calls: Some([call]),
    }
}

/// One `data:` frame per choice, all carrying the same delta.
fn write_frames(
    buf: &mut BytesMut,
    plan: &StreamPlan,
    delta: &Delta<'_>,
    finish_reason: Option<&'static str>,
) {
    for index in 0..plan.n {
        let choice = [ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason,
        }];
        let chunk = Chunk {
            id: &plan.id,
            object: "chat.completion.chunk",
            created: plan.created,
            model: &plan.model,
            system_fingerprint: "emulator",
            choices: &choice,
            usage: plan.usage.map(|_| None),
        };
        write_frame(buf, &chunk);
    }
}

fn write_frame(buf: &mut BytesMut, chunk: &Chunk<'_>) {
    buf.extend_from_slice(b"data: ");
    // Serializing these plain structs into memory cannot fail.
    let _ = serde_json::to_writer(buf.writer(), chunk);
    buf.extend_from_slice(b"\n\n");
}

/// End of the piece starting at `at`: one word plus the whitespace after it,
/// so the pieces concatenate back to the text exactly.
fn piece_end(text: &str, at: usize) -> usize {
    let rest = text.get(at..).unwrap_or_default();
    let word_start = rest
        .find(|c: char| !c.is_whitespace())
        .unwrap_or(rest.len());
    let word_end = rest[word_start..]
        .find(char::is_whitespace)
        .map_or(rest.len(), |end| word_start + end);
    let space_end = rest[word_end..]
        .find(|c: char| !c.is_whitespace())
        .map_or(rest.len(), |end| word_end + end);
    at + space_end
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent unless usage was asked for; then `null` on every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: &'a Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// `Some(None)` serializes as `"content": null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_to_the_text() {
        let text = " a  bb\tc ";
        let mut at = 0;
        let mut pieces = Vec::new();
        while at < text.len() {
            let end = piece_end(text, at);
            pieces.push(&text[at..end]);
            at = end;
        }
        assert_eq!(pieces, [" a  ", "bb\t", "c "]);
        assert_eq!(pieces.concat(), text);
    }

    proptest::proptest! {
        /// Streamed deltas must add up to exactly the non-streamed text.
        #[test]
        fn any_text_splits_into_pieces_that_concatenate_back(text in "\\PC*") {
            let mut at = 0;
            let mut joined = String::new();
            while at < text.len() {
                let end = piece_end(&text, at);
                proptest::prop_assert!(end > at);
                joined.push_str(&text[at..end]);
                at = end;
            }
            proptest::prop_assert_eq!(joined, text);
        }
    }
}

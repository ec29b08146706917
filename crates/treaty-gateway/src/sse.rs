//! The client-facing SSE body of a streamed chat completion.
//!
//! Each upstream chunk is framed as `data: {json}\n\n` and written as soon
//! as it arrives: nothing is buffered beyond one chunk. The body ends with
//! `data: [DONE]`, or, when the upstream fails mid-stream, with an
//! OpenAI-shaped error event and no `[DONE]`, which the official SDKs
//! raise as an error. When the body is dropped before its end (the client
//! went away), the upstream stream is dropped with it, which cancels the
//! upstream request, and the outcome says so.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use treaty_openai::Usage;
use treaty_providers::{ChunkStream, StreamEvent, UpstreamError};

/// How a stream ended, reported once when the body finishes or is dropped.
#[derive(Debug, Clone, Default)]
pub struct StreamSummary {
    pub usage: Option<Usage>,
    pub chunks: u64,
    pub completed: bool,
    pub error: Option<String>,
    pub client_cancelled: bool,
}

pub(crate) struct SseBody {
    first: Option<StreamEvent>,
    inner: ChunkStream,
    summary: StreamSummary,
    finished: bool,
    on_end: Option<Box<dyn FnOnce(StreamSummary) + Send>>,
    host: treaty_domain::HostId,
    /// The public model name every chunk is rewritten to carry.
    model: String,
    /// Batched durability: the decision record's commit, awaited before
    /// `[DONE]`.
    gate: Option<treaty_ledger::Appended>,
    /// The upstream stream has ended; it must not be polled again (the
    /// providers' streams are not fused), even while the gate is pending.
    inner_done: bool,
}

impl SseBody {
    pub(crate) fn new(
        first: StreamEvent,
        inner: ChunkStream,
        host: treaty_domain::HostId,
        model: String,
        gate: Option<treaty_ledger::Appended>,
        on_end: impl FnOnce(StreamSummary) + Send + 'static,
    ) -> Self {
        SseBody {
            first: Some(first),
            inner,
            summary: StreamSummary::default(),
            finished: false,
            on_end: Some(Box::new(on_end)),
            host,
            model,
            gate,
            inner_done: false,
        }
    }

    fn frame(payload: &[u8]) -> Bytes {
        let mut buf = BytesMut::with_capacity(payload.len() + 8);
        buf.put_slice(b"data: ");
        buf.put_slice(payload);
        buf.put_slice(b"\n\n");
        buf.freeze()
    }

    /// Frames a chunk with its model rewritten, in one buffer.
    fn frame_chunk(&self, payload: &[u8]) -> Bytes {
        let mut buf = Vec::with_capacity(payload.len() + self.model.len() + 8);
        buf.extend_from_slice(b"data: ");
        if !treaty_openai::write_with_model(payload, &self.model, &mut buf) {
            buf.extend_from_slice(payload);
        }
        buf.extend_from_slice(b"\n\n");
        Bytes::from(buf)
    }

    /// Handles one event; `None` means "nothing to write, poll again".
    fn on_event(&mut self, event: StreamEvent) -> Option<Bytes> {
        match event {
            StreamEvent::Chunk(data) => {
                self.summary.chunks += 1;
                Some(self.frame_chunk(&data))
            }
            StreamEvent::Usage(usage) => {
                self.summary.usage = Some(usage);
                None
            }
        }
    }

    fn on_error(&mut self, err: &UpstreamError) -> Bytes {
        let api = crate::upstream::client_facing(err, &self.host);
        let message = format!("The upstream stream failed: {}", api.message);
        self.summary.error = Some(err.to_string());
        let mut body = api.body();
        body.error.message = message;
        let json = serde_json::to_vec(&body).unwrap_or_default();
        self.finish();
        Self::frame(&json)
    }

    fn finish(&mut self) {
        self.finished = true;
        if let Some(f) = self.on_end.take() {
            f(std::mem::take(&mut self.summary));
        }
    }
}

impl Stream for SseBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take()
            && let Some(bytes) = this.on_event(first)
        {
            return Poll::Ready(Some(Ok(bytes)));
        }
        while !this.inner_done {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(event))) => {
                    if let Some(bytes) = this.on_event(event) {
                        return Poll::Ready(Some(Ok(bytes)));
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    return Poll::Ready(Some(Ok(this.on_error(&err))));
                }
                Poll::Ready(None) => this.inner_done = true,
            }
        }
        // The upstream has ended; with batched durability the commit may
        // still be in flight, and this is polled again when it lands.
        if let Some(gate) = this.gate.as_mut() {
            match std::pin::Pin::new(gate).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(_)) => this.gate = None,
                Poll::Ready(Err(e)) => {
                    this.gate = None;
                    let api = crate::pipeline::ledger_unavailable(e);
                    this.summary.error = Some(api.message.clone());
                    let json = serde_json::to_vec(&api.body()).unwrap_or_default();
                    this.finish();
                    return Poll::Ready(Some(Ok(Self::frame(&json))));
                }
            }
        }
        this.summary.completed = true;
        this.finish();
        Poll::Ready(Some(Ok(Bytes::from_static(b"data: [DONE]\n\n"))))
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if !self.finished {
            self.summary.client_cancelled = true;
            self.finish();
        }
    }
}

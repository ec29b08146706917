//! A model call answered as a stream: its chunks, then its end, with the
//! decision's durability and the outcome record handled on the way.
//!
//! [`CallStream`] yields the host's chunks as they arrive (nothing is
//! buffered beyond one chunk) and ends with exactly one of
//! [`StreamItem::Done`] (the host finished and the decision is durable)
//! or [`StreamItem::Failed`] (the host cut or corrupted the stream, or the
//! decision could not be made durable). Usage events are kept, not
//! yielded. The outcome is recorded once, when the stream ends, when the
//! consumer ends it early ([`CallStream::end`]), or when it is dropped
//! (the client went away: the upstream request is dropped with it, and
//! the outcome says the client cancelled).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;
use treaty_domain::RequestContext;
use treaty_ledger::Appended;
use treaty_openai::Usage;
use treaty_providers::{ChunkStream, StreamEvent, UpstreamError};

use crate::call::Placed;
use crate::call::{Evidence, Reserved};
use crate::dispatch::{Attempt, client_facing};
use crate::engine::Engine;
use crate::error::Error;
use crate::outcome::Outcome;

/// What a [`CallStream`] yields.
#[derive(Debug)]
pub enum StreamItem {
    /// One chunk as the host sent it (an OpenAI `chat.completion.chunk`).
    Chunk(Bytes),
    /// The stream failed; nothing follows.
    Failed(Error),
    /// The host finished and the decision is durable; nothing follows.
    Done,
}

/// How a consumer ends a stream before it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The client asked to cancel it.
    Cancelled,
    /// The client went away.
    ClientGone,
    /// The consumer found the stream unusable (the code says why).
    Failed(String),
}

/// A streamed model call.
pub struct CallStream {
    engine: Arc<Engine>,
    ctx: RequestContext,
    placed: Placed,
    first: Option<StreamEvent>,
    rest: ChunkStream,
    /// Batched durability: the decision record's commit, awaited before
    /// the stream may end well.
    gate: Option<Appended>,
    /// The decision as appended and, once durable, its sequence number.
    evidence: Evidence,
    /// The signed receipt, made when the stream ends well.
    receipt: Option<String>,
    /// The call's budget, rate-limit and host-quota reservation, settled
    /// at the end.
    reserved: Option<Reserved>,
    attempts: Vec<Attempt>,
    started: Instant,
    /// When the first event arrived, from the start.
    first_token: std::time::Duration,
    usage: Option<Usage>,
    /// The upstream stream has ended; it must not be polled again (the
    /// providers' streams are not fused), even while the gate is pending.
    inner_done: bool,
    finished: bool,
}

impl std::fmt::Debug for CallStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallStream")
            .field("request_id", &self.ctx.request_id)
            .field("host", &self.placed.host.id)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl CallStream {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        engine: Arc<Engine>,
        ctx: RequestContext,
        placed: Placed,
        first: StreamEvent,
        rest: ChunkStream,
        gate: Option<Appended>,
        evidence: Evidence,
        reserved: Reserved,
        attempts: Vec<Attempt>,
        started: Instant,
    ) -> CallStream {
        CallStream {
            engine,
            ctx,
            placed,
            first: Some(first),
            rest,
            gate,
            evidence,
            receipt: None,
            reserved: Some(reserved),
            attempts,
            first_token: started.elapsed(),
            started,
            usage: None,
            inner_done: false,
            finished: false,
        }
    }

    /// Where the stream runs and why it may.
    pub fn placed(&self) -> &Placed {
        &self.placed
    }

    /// The signed placement receipt, once the stream has ended well
    /// (after [`StreamItem::Done`]).
    pub fn receipt(&self) -> Option<&str> {
        self.receipt.as_deref()
    }

    /// The usage the host reported so far.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Ends the stream before it is done: the upstream request is dropped,
    /// the decision's durability is awaited (an answer's end never leaves
    /// before its evidence), and the outcome is recorded. `Err` when the
    /// decision could not be made durable.
    pub async fn end(mut self, end: End) -> Result<(), Error> {
        self.inner_done = true;
        let durable = match self.gate.take() {
            Some(gate) => gate.await.map(|_| ()).map_err(Error::ledger_withheld),
            None => Ok(()),
        };
        let (cancelled, error, host_failed) = match end {
            End::Cancelled => (true, Some("cancelled".to_owned()), false),
            End::ClientGone => (true, Some("client_disconnected".to_owned()), false),
            End::Failed(code) => (false, Some(code), true),
        };
        let error = match &durable {
            Err(e) => Some(e.code.as_str().to_owned()),
            Ok(()) => error,
        };
        self.finish(cancelled, error, host_failed);
        durable
    }

    /// Records the outcome, once. `host_failed`: the host cut or corrupted
    /// the stream, so its attempt failed though it had started to serve.
    fn finish(&mut self, client_cancelled: bool, error: Option<String>, host_failed: bool) {
        if self.finished {
            return;
        }
        self.finished = true;
        let cost = self.engine.spend(
            &self.ctx,
            &self.placed,
            self.usage,
            self.reserved.take(),
            self.started,
            Some(self.first_token),
        );
        let mut attempts = std::mem::take(&mut self.attempts);
        if let (true, Some(error), Some(last)) = (host_failed, &error, attempts.last_mut()) {
            last.error = Some(error.clone());
        }
        self.engine.record_outcome(
            &self.ctx,
            &Outcome {
                status: 200,
                served_by: Some(self.placed.host.id.clone()),
                attempts,
                usage: self.usage,
                cost,
                latency: self.started.elapsed(),
                client_cancelled,
                error,
            },
        );
    }

    fn on_upstream_error(&mut self, err: &UpstreamError) -> Error {
        let mut e = client_facing(err, &self.placed.host.id);
        e.message = format!("The upstream stream failed: {}", e.message);
        self.finish(false, Some(err.to_string()), true);
        e
    }
}

impl Stream for CallStream {
    type Item = StreamItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take() {
            match first {
                StreamEvent::Chunk(bytes) => return Poll::Ready(Some(StreamItem::Chunk(bytes))),
                StreamEvent::Usage(u) => this.usage = Some(u),
            }
        }
        while !this.inner_done {
            match this.rest.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(StreamEvent::Chunk(bytes)))) => {
                    return Poll::Ready(Some(StreamItem::Chunk(bytes)));
                }
                Poll::Ready(Some(Ok(StreamEvent::Usage(u)))) => this.usage = Some(u),
                Poll::Ready(Some(Err(err))) => {
                    this.inner_done = true;
                    let e = this.on_upstream_error(&err);
                    return Poll::Ready(Some(StreamItem::Failed(e)));
                }
                Poll::Ready(None) => this.inner_done = true,
            }
        }
        // The host has finished; with batched durability the commit may
        // still be in flight, and this is polled again when it lands.
        if let Some(gate) = this.gate.as_mut() {
            match Pin::new(gate).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(seq)) => {
                    this.gate = None;
                    this.evidence.seq = Some(seq);
                }
                Poll::Ready(Err(e)) => {
                    this.gate = None;
                    let err = Error::ledger_withheld(e);
                    this.finish(false, Some(err.code.as_str().to_owned()), false);
                    return Poll::Ready(Some(StreamItem::Failed(err)));
                }
            }
        }
        this.finish(false, None, false);
        this.receipt = this
            .engine
            .receipt(&this.evidence, Some(this.placed.host.id.as_str()));
        Poll::Ready(Some(StreamItem::Done))
    }
}

impl Drop for CallStream {
    fn drop(&mut self) {
        // Dropped before its end: the client went away.
        self.finish(true, None, false);
    }
}

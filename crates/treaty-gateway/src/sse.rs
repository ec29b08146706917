//! The client-facing SSE body of a streamed chat completion.
//!
//! Each chunk of the model call's stream is framed as `data: {json}\n\n`,
//! its model rewritten to the public name, and written as soon as it
//! arrives: nothing is buffered beyond one chunk. The body ends with the
//! signed placement receipt as an SSE comment (`: x-treaty-receipt ...`,
//! skipped by every SSE parser) and `data: [DONE]`, or, when the stream fails, with an OpenAI-shaped error
//! event and no `[DONE]`, which the official SDKs raise as an error.
//! Dropping the body (the client went away) drops the call's stream, which
//! cancels the upstream request and records the cancel.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use treaty_engine::{CallStream, StreamItem};

/// The receipt's line before `[DONE]`: an SSE comment, which every SSE
/// parser skips. A `data:` event would reach the official SDKs as one
/// more chunk (without `choices`, breaking the common
/// `chunk.choices[0]`), so the receipt rides where only a reader looking
/// for it sees it.
const RECEIPT_COMMENT: &[u8] = b": x-treaty-receipt ";

pub(crate) struct ChatSse {
    inner: Box<CallStream>,
    /// The public model name every chunk is rewritten to carry.
    model: String,
    ended: bool,
}

impl ChatSse {
    pub(crate) fn new(inner: Box<CallStream>, model: String) -> Self {
        ChatSse {
            inner,
            model,
            ended: false,
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
}

impl Stream for ChatSse {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut *this.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(StreamItem::Chunk(bytes))) => {
                Poll::Ready(Some(Ok(this.frame_chunk(&bytes))))
            }
            Poll::Ready(Some(StreamItem::Failed(e))) => {
                this.ended = true;
                let json = serde_json::to_vec(&e.body()).unwrap_or_default();
                Poll::Ready(Some(Ok(Self::frame(&json))))
            }
            Poll::Ready(Some(StreamItem::Done)) => {
                this.ended = true;
                Poll::Ready(Some(Ok(match this.inner.receipt() {
                    Some(receipt) => {
                        let mut buf = BytesMut::with_capacity(receipt.len() + 48);
                        buf.put_slice(RECEIPT_COMMENT);
                        buf.put_slice(receipt.as_bytes());
                        buf.put_slice(b"\n\ndata: [DONE]\n\n");
                        buf.freeze()
                    }
                    None => Bytes::from_static(b"data: [DONE]\n\n"),
                })))
            }
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
        }
    }
}

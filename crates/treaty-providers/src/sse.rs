//! Server-sent events from an upstream byte stream.
//!
//! Framing (fields, multi-line `data:`, comments, CRLF) is left to
//! `eventsource-stream`. This module only feeds it whole, UTF-8-checked
//! lines, so that a multi-byte character split across reads is never an
//! error, invalid UTF-8 fails at once instead of piling up, and a host that
//! never ends a line cannot make Treaty buffer without bound. It knows
//! nothing of what the events mean (that is each provider's business) and
//! never buffers more than one line beyond what the parser holds.

use bytes::{Bytes, BytesMut};
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};

use crate::UpstreamError;

/// Longest SSE line accepted: far above any real chunk, far below harm.
const MAX_LINE_BYTES: usize = 8 << 20;

/// Decodes `body` into SSE events. After the first `Err` the stream ends.
pub(crate) fn events<S>(body: S) -> impl Stream<Item = Result<Event, UpstreamError>> + Send
where
    S: Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static,
{
    whole_lines(body)
        .eventsource()
        .map(|item| {
            item.map_err(|e| match e {
                EventStreamError::Transport(e) => e,
                // Unreachable in practice: `whole_lines` already checked.
                EventStreamError::Utf8(_) => UpstreamError::Protocol("SSE is not UTF-8".into()),
                EventStreamError::Parser(_) => {
                    UpstreamError::Protocol("malformed SSE framing".into())
                }
            })
        })
        .scan(false, |failed, item| {
            // Stop after the first error rather than parse on from a broken
            // position.
            if *failed {
                return std::future::ready(None);
            }
            *failed = item.is_err();
            std::future::ready(Some(item))
        })
}

struct Lines<S> {
    body: S,
    /// The bytes after the last line terminator seen.
    partial: BytesMut,
    done: bool,
}

/// Re-chunks `body` at line terminators and checks each piece is UTF-8.
///
/// Pieces end in `\n` or `\r`; a terminator can never fall inside a UTF-8
/// sequence, so each piece is valid on its own. The common case (a read
/// that ends on a line end, nothing pending) passes the `Bytes` through
/// without copying.
fn whole_lines<S>(body: S) -> impl Stream<Item = Result<Bytes, UpstreamError>> + Send
where
    S: Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static,
{
    let state = Lines {
        body: Box::pin(body),
        partial: BytesMut::new(),
        done: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let item = st.next_piece().await?;
        st.done = item.is_err();
        Some((item, st))
    })
}

impl<S> Lines<std::pin::Pin<Box<S>>>
where
    S: Stream<Item = Result<Bytes, UpstreamError>>,
{
    async fn next_piece(&mut self) -> Option<Result<Bytes, UpstreamError>> {
        loop {
            match self.body.next().await {
                Some(Ok(chunk)) => {
                    let Some(last) = memchr::memrchr2(b'\n', b'\r', &chunk) else {
                        self.partial.extend_from_slice(&chunk);
                        if self.partial.len() > MAX_LINE_BYTES {
                            return Some(Err(line_too_long()));
                        }
                        continue;
                    };
                    let head = chunk.slice(..=last);
                    let piece = if self.partial.is_empty() {
                        head
                    } else {
                        self.partial.extend_from_slice(&head);
                        self.partial.split().freeze()
                    };
                    self.partial.extend_from_slice(&chunk[last + 1..]);
                    if self.partial.len() > MAX_LINE_BYTES {
                        return Some(Err(line_too_long()));
                    }
                    return Some(checked(piece));
                }
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    self.done = true;
                    if self.partial.is_empty() {
                        return None;
                    }
                    // An unterminated last line: the parser will not
                    // dispatch it, but it must see it to know.
                    return Some(checked(self.partial.split().freeze()));
                }
            }
        }
    }
}

fn checked(piece: Bytes) -> Result<Bytes, UpstreamError> {
    match std::str::from_utf8(&piece) {
        Ok(_) => Ok(piece),
        Err(_) => Err(UpstreamError::Protocol("SSE is not UTF-8".into())),
    }
}

fn line_too_long() -> UpstreamError {
    UpstreamError::Protocol(format!("an SSE line is longer than {MAX_LINE_BYTES} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(pieces: &[&[u8]]) -> Vec<Result<String, UpstreamError>> {
        let body = futures_util::stream::iter(
            pieces
                .iter()
                .map(|p| Ok(Bytes::copy_from_slice(p)))
                .collect::<Vec<_>>(),
        );
        events(body).map(|r| r.map(|e| e.data)).collect().await
    }

    #[tokio::test]
    async fn events_split_anywhere_come_out_whole() {
        let text = "data: {\"a\":\"é😀\"}\n\ndata: two\r\n\r\n: comment\n\ndata: x\ndata: y\n\n";
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let (a, b) = bytes.split_at(cut);
            let got = collect(&[a, b]).await;
            let want: Vec<Result<String, UpstreamError>> = vec![
                Ok("{\"a\":\"é😀\"}".into()),
                Ok("two".into()),
                Ok("x\ny".into()),
            ];
            assert_eq!(got, want, "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn a_character_split_over_three_reads_is_fine() {
        let smile = "😀".as_bytes();
        let got = collect(&[b"data: ", &smile[..1], &smile[1..3], &smile[3..], b"\n\n"]).await;
        assert_eq!(got, vec![Ok("😀".to_string())]);
    }

    #[tokio::test]
    async fn invalid_utf8_fails_once_and_ends() {
        let got = collect(&[b"data: a\n\n", b"data: \xff\n\n", b"data: b\n\n"]).await;
        assert_eq!(got.len(), 2);
        assert!(matches!(got[1], Err(UpstreamError::Protocol(_))));
    }

    #[tokio::test]
    async fn a_transport_error_is_passed_on_and_ends_the_stream() {
        let body = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"data: a\n\n")),
            Err(UpstreamError::Io("reset".into())),
            Ok(Bytes::from_static(b"data: b\n\n")),
        ]);
        let got: Vec<_> = events(body).collect().await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Err(UpstreamError::Io("reset".into())));
    }

    #[tokio::test]
    async fn an_endless_line_is_refused() {
        let big = vec![b'a'; MAX_LINE_BYTES / 2 + 1];
        let got = collect(&[b"data: ", &big, &big, &big]).await;
        assert!(matches!(got.last(), Some(Err(UpstreamError::Protocol(_)))));
    }
}

//! Reading OpenAI-format replies: whole bodies and `chat.completion.chunk`
//! streams.
//!
//! Bodies pass through as the host sent them; this module only checks they
//! are JSON and picks out `usage`, deserializing into small probe structs
//! that skip everything else (no `serde_json::Value` per chunk). It decides
//! which chunks reach the client (the usage-only chunk only if the client
//! asked for it) and when a stream is over. It must never rewrite a chunk
//! nor forward an upstream error object.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::time::{Instant, timeout_at};
use treaty_config::Secret;
use treaty_openai::Usage;

use crate::exchange::ErrorField;
use crate::redact::redact;
use crate::{ChunkStream, StreamEvent, TimeoutPhase, UpstreamError};

/// `usage` as hosts send it: fields may be missing or null, and extra
/// details (`prompt_tokens_details`, ...) are ignored.
#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(w: WireUsage) -> Usage {
        let prompt_tokens = w.prompt_tokens.unwrap_or(0);
        let completion_tokens = w.completion_tokens.unwrap_or(0);
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: w
                .total_tokens
                .unwrap_or(prompt_tokens.saturating_add(completion_tokens)),
        }
    }
}

/// Checks a whole reply body is one JSON object and returns its usage.
///
/// The transport already delivered the body in full (a short read is an
/// error there), so JSON that ends early is malformed, not truncated.
pub(crate) fn probe_body(body: &[u8]) -> Result<Option<Usage>, UpstreamError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        usage: Option<WireUsage>,
    }
    match serde_json::from_slice::<Probe>(body) {
        Ok(p) => Ok(p.usage.map(Usage::from)),
        Err(e) => Err(UpstreamError::Protocol(format!(
            "reply body is not a JSON object ({})",
            json_problem(&e)
        ))),
    }
}

/// What is wrong with some JSON, without quoting it.
fn json_problem(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "ends early",
    }
}

/// What each streamed `data:` payload is checked for.
#[derive(Deserialize)]
struct ChunkProbe {
    /// Counted, not kept: `Vec` of a zero-sized type does not allocate.
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<ErrorField>,
}

struct Decoder<E> {
    events: E,
    deadline: Instant,
    /// Whether the client asked for the usage chunk itself.
    forward_usage: bool,
    secret: Option<Secret>,
    /// A second event produced by the last payload.
    pending: Option<StreamEvent>,
    finished: bool,
}

/// Turns an upstream SSE body into [`StreamEvent`]s.
///
/// Ends after `data: [DONE]`; any error (read failure, malformed payload,
/// missing `[DONE]`, deadline) is yielded once and ends the stream.
pub(crate) fn decode_chat_stream<S>(
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
        pending: None,
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
        if let Some(event) = self.pending.take() {
            return Some(Ok(event));
        }
        if self.finished {
            return None;
        }
        let event = match timeout_at(self.deadline, self.events.next()).await {
            Err(_) => {
                return self.fail(UpstreamError::Timeout {
                    phase: TimeoutPhase::Total,
                });
            }
            Ok(None) => return self.fail(UpstreamError::Truncated),
            Ok(Some(Err(e))) => return self.fail(e),
            Ok(Some(Ok(event))) => event,
        };
        let data = event.data;
        if data.trim() == "[DONE]" {
            self.finished = true;
            return None;
        }
        let probe = match serde_json::from_str::<ChunkProbe>(&data) {
            Ok(probe) => probe,
            Err(e) => {
                return self.fail(UpstreamError::Protocol(format!(
                    "stream chunk is not a JSON object ({})",
                    json_problem(&e)
                )));
            }
        };
        if let Some(error) = probe.error {
            let secret = self.secret.as_ref().map(Secret::expose);
            let (message, code) = match error {
                ErrorField::Detail(d) => (d.message, d.code.and_then(|c| c.into_string())),
                ErrorField::Text(t) => (Some(t), None),
                ErrorField::Other(_) => (None, None),
            };
            return self.fail(UpstreamError::InStream {
                message: redact(&message.unwrap_or_default(), secret),
                code: code.map(|c| redact(&c, secret)),
            });
        }
        let chunk = StreamEvent::Chunk(Bytes::from(data));
        let Some(usage) = probe.usage else {
            return Some(Ok(chunk));
        };
        // Usage goes first: if the client is gone by the time the chunk
        // is written, the tokens are still accounted.
        let has_choices = probe.choices.is_some_and(|c| !c.is_empty());
        if self.forward_usage || has_choices {
            self.pending = Some(chunk);
        }
        Some(Ok(StreamEvent::Usage(usage.into())))
    }

    fn fail(&mut self, e: UpstreamError) -> Option<Result<StreamEvent, UpstreamError>> {
        self.finished = true;
        tracing::debug!(error = %e, "upstream stream failed");
        Some(Err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    /// A deadline far enough away never to matter.
    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    fn body(pieces: Vec<Vec<u8>>) -> impl Stream<Item = Result<Bytes, UpstreamError>> + Send {
        futures_util::stream::iter(pieces.into_iter().map(|p| Ok(Bytes::from(p))))
    }

    async fn run(
        pieces: Vec<Vec<u8>>,
        forward_usage: bool,
    ) -> Vec<Result<StreamEvent, UpstreamError>> {
        decode_chat_stream(
            body(pieces),
            forward_usage,
            far(),
            Some(Secret::new("k-secret")),
        )
        .collect()
        .await
    }

    const CONTENT_1: &str = r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hé"}}],"usage":null}"#;
    const CONTENT_2: &str = r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"llo"},"finish_reason":"stop"}],"usage":null}"#;
    const USAGE: &str = r#"{"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}}}"#;

    fn sse(payloads: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"\n\n");
        }
        out
    }

    fn chunk(s: &str) -> Result<StreamEvent, UpstreamError> {
        Ok(StreamEvent::Chunk(Bytes::copy_from_slice(s.as_bytes())))
    }

    fn usage() -> Result<StreamEvent, UpstreamError> {
        Ok(StreamEvent::Usage(Usage {
            prompt_tokens: 5,
            completion_tokens: 2,
            total_tokens: 7,
        }))
    }

    #[tokio::test]
    async fn chunks_pass_through_and_done_ends_the_stream() {
        let bytes = sse(&[CONTENT_1, CONTENT_2, USAGE, "[DONE]"]);
        // Split at every byte boundary, so events and the two-byte `é` are
        // cut everywhere.
        for cut in 0..bytes.len() {
            let pieces = vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()];
            let got = run(pieces, false).await;
            assert_eq!(
                got,
                vec![chunk(CONTENT_1), chunk(CONTENT_2), usage()],
                "cut {cut}"
            );
        }
    }

    #[tokio::test]
    async fn one_byte_reads_work() {
        let bytes = sse(&[CONTENT_1, USAGE, "[DONE]"]);
        let pieces = bytes.iter().map(|b| vec![*b]).collect();
        assert_eq!(
            run(pieces, true).await,
            vec![chunk(CONTENT_1), usage(), chunk(USAGE)]
        );
    }

    #[tokio::test]
    async fn the_usage_chunk_is_forwarded_only_when_the_client_asked() {
        let bytes = sse(&[CONTENT_1, USAGE, "[DONE]"]);
        assert_eq!(
            run(vec![bytes.clone()], true).await,
            vec![chunk(CONTENT_1), usage(), chunk(USAGE)]
        );
        assert_eq!(
            run(vec![bytes], false).await,
            vec![chunk(CONTENT_1), usage()]
        );
    }

    #[tokio::test]
    async fn usage_on_a_content_chunk_never_drops_the_content() {
        let both = r#"{"choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        let got = run(vec![sse(&[both, "[DONE]"])], false).await;
        assert_eq!(got, vec![usage(), chunk(both)]);
    }

    #[tokio::test]
    async fn nothing_after_done_is_read() {
        let mut bytes = sse(&[CONTENT_1, "[DONE]"]);
        bytes.extend_from_slice(b"data: not json\n\n");
        assert_eq!(run(vec![bytes], false).await, vec![chunk(CONTENT_1)]);
    }

    #[tokio::test]
    async fn a_missing_done_is_truncation() {
        let got = run(vec![sse(&[CONTENT_1])], false).await;
        assert_eq!(got, vec![chunk(CONTENT_1), Err(UpstreamError::Truncated)]);
        // Cut inside an event, too.
        let bytes = sse(&[CONTENT_1, CONTENT_2]);
        let got = run(vec![bytes[..bytes.len() - 10].to_vec()], false).await;
        assert_eq!(got, vec![chunk(CONTENT_1), Err(UpstreamError::Truncated)]);
    }

    #[tokio::test]
    async fn bad_json_is_a_protocol_error_and_ends_the_stream() {
        let got = run(
            vec![sse(&[CONTENT_1, "{\"choices\":[", CONTENT_2, "[DONE]"])],
            false,
        )
        .await;
        assert_eq!(got.len(), 2);
        assert!(matches!(got[1], Err(UpstreamError::Protocol(_))), "{got:?}");
        let got = run(vec![sse(&["42", "[DONE]"])], false).await;
        assert!(matches!(got[0], Err(UpstreamError::Protocol(_))), "{got:?}");
    }

    #[tokio::test]
    async fn read_errors_are_passed_on() {
        let body = futures_util::stream::iter(vec![
            Ok(Bytes::from(sse(&[CONTENT_1]))),
            Err(UpstreamError::Io("connection reset".into())),
        ]);
        let got: Vec<_> = decode_chat_stream(body, false, far(), None).collect().await;
        assert_eq!(
            got,
            vec![
                chunk(CONTENT_1),
                Err(UpstreamError::Io("connection reset".into()))
            ]
        );
    }

    #[tokio::test]
    async fn an_error_object_in_the_stream_is_not_forwarded() {
        let err = r#"{"error":{"message":"CUDA OOM on http://10.0.0.3:8000 with key k-secret","code":"oom"}}"#;
        let got = run(vec![sse(&[CONTENT_1, err, "[DONE]"])], false).await;
        assert_eq!(got.len(), 2);
        match &got[1] {
            Err(UpstreamError::InStream { message, code }) => {
                assert!(
                    !message.contains("10.0.0.3") && !message.contains("k-secret"),
                    "{message}"
                );
                assert_eq!(code.as_deref(), Some("oom"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_deadline_ends_a_stalled_stream() {
        let first = futures_util::stream::iter(vec![Ok(Bytes::from(sse(&[CONTENT_1])))]);
        let body = first.chain(futures_util::stream::pending());
        let deadline = Instant::now() + Duration::from_millis(100);
        let got: Vec<_> = decode_chat_stream(body, false, deadline, None)
            .collect()
            .await;
        assert_eq!(
            got,
            vec![
                chunk(CONTENT_1),
                Err(UpstreamError::Timeout {
                    phase: TimeoutPhase::Total
                })
            ]
        );
    }

    #[test]
    fn whole_bodies_are_checked_and_their_usage_read() {
        let body = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        assert_eq!(
            probe_body(body).unwrap(),
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7
            })
        );
        assert_eq!(probe_body(br#"{"data":[]}"#).unwrap(), None);
        assert!(matches!(
            probe_body(br#"{"data":[1,"#),
            Err(UpstreamError::Protocol(_))
        ));
        assert!(matches!(
            probe_body(b"<html>"),
            Err(UpstreamError::Protocol(_))
        ));
        assert!(matches!(
            probe_body(b"{} trailing"),
            Err(UpstreamError::Protocol(_))
        ));
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// Arbitrary bytes, or a real stream cut short and split anywhere.
    fn pieces() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let real = sse(&[CONTENT_1, CONTENT_2, USAGE, "[DONE]"]);
        let len = real.len();
        prop_oneof![
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            proptest::collection::vec(
                proptest::sample::select(vec![
                    b"data: ".to_vec(),
                    b"data: [DONE]".to_vec(),
                    b"\n".to_vec(),
                    b"\r".to_vec(),
                    b"\r\n".to_vec(),
                    b":c\n".to_vec(),
                    b"{\"choices\":[]}".to_vec(),
                    USAGE.as_bytes().to_vec(),
                    "é".as_bytes()[..1].to_vec(),
                    b"\xff".to_vec(),
                    b"event: x\n".to_vec(),
                ]),
                0..24
            ),
            (0..=len, 0..=len).prop_map(move |(a, b)| {
                let (cut, end) = (a.min(b), a.max(b));
                vec![real[..cut].to_vec(), real[cut..end].to_vec()]
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_bytes_end_in_oks_then_at_most_one_error(pieces in pieces()) {
            let rt = runtime();
            let got = rt.block_on(async {
                let stream = decode_chat_stream(body(pieces), false, far(), None);
                // A hang would trip this rather than the test runner.
                tokio::time::timeout(Duration::from_secs(5), stream.collect::<Vec<_>>()).await
            });
            let got = got.map_err(|_| TestCaseError::fail("the decoder hung"))?;
            let errors = got.iter().filter(|r| r.is_err()).count();
            prop_assert!(errors <= 1);
            if errors == 1 {
                prop_assert!(got.last().is_some_and(|r| r.is_err()));
            }
        }
    }
}

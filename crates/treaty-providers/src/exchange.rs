//! One HTTP exchange with a host: sending under deadlines, reading bounded
//! bodies, and turning failures into [`UpstreamError`]s.
//!
//! Shared by every provider whatever its wire format. It owns the timeout
//! rules (first byte, then the total deadline), `Retry-After` parsing and the
//! reading of error bodies, which are parsed as JSON error objects and
//! redacted, or dropped. It must never put a URL, a key or a raw body into
//! an error.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::time::{Instant, timeout_at};

use crate::redact::redact;
use crate::{CallOptions, TimeoutPhase, UpstreamError};

/// Largest successful reply read into memory (2048 embeddings of 3072
/// floats as JSON are about 130 MB).
pub(crate) const MAX_REPLY_BYTES: usize = 256 << 20;
/// Error bodies are read only for their message.
const MAX_ERROR_BYTES: usize = 64 << 10;

/// Sends `request`; the first-byte timeout and the deadline bound the wait
/// for response headers.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    call: &CallOptions,
) -> Result<reqwest::Response, UpstreamError> {
    let first_byte = Instant::now() + call.first_byte_timeout;
    let (until, phase) = if call.deadline <= first_byte {
        (call.deadline, TimeoutPhase::Total)
    } else {
        (first_byte, TimeoutPhase::FirstByte)
    };
    match timeout_at(until, request.send()).await {
        Err(_) => Err(UpstreamError::Timeout { phase }),
        Ok(Err(e)) => Err(send_error(e)),
        Ok(Ok(response)) => Ok(response),
    }
}

/// A failure before any response: for the gateway all of these mean "the
/// host could not be reached", whatever the layer (DNS, TCP, TLS, reset).
fn send_error(e: reqwest::Error) -> UpstreamError {
    UpstreamError::Connect(describe(e))
}

/// A failure while reading a body.
pub(crate) fn body_error(e: reqwest::Error) -> UpstreamError {
    let early_eof = {
        let mut source = std::error::Error::source(&e);
        let mut found = false;
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::UnexpectedEof
            {
                found = true;
                break;
            }
            source = s.source();
        }
        found
    };
    if early_eof {
        UpstreamError::Truncated
    } else {
        UpstreamError::Io(describe(e))
    }
}

/// The error and its causes, without the URL reqwest attaches.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    redact(&text, None)
}

/// Reads a whole successful body within the deadline, refusing bodies
/// larger than `limit`.
pub(crate) async fn read_body(
    response: reqwest::Response,
    deadline: Instant,
    limit: usize,
) -> Result<Bytes, UpstreamError> {
    match timeout_at(deadline, read_capped(response, limit)).await {
        Err(_) => Err(UpstreamError::Timeout {
            phase: TimeoutPhase::Total,
        }),
        Ok(Ok(Some(body))) => Ok(body),
        Ok(Ok(None)) => Err(UpstreamError::Protocol(format!(
            "reply larger than {limit} bytes"
        ))),
        Ok(Err(e)) => Err(e),
    }
}

/// `Ok(None)` when the body is larger than `limit`.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<Bytes>, UpstreamError> {
    let hint = response.content_length().unwrap_or(0).min(limit as u64) as usize;
    let mut buf = BytesMut::with_capacity(hint.max(8 << 10));
    while let Some(chunk) = response.chunk().await.map_err(body_error)? {
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

/// Builds the error for a non-success response, reading at most 64 KiB of
/// its body. `secret` is the key sent to this host, removed from messages.
pub(crate) async fn status_error(
    response: reqwest::Response,
    call: &CallOptions,
    secret: Option<&str>,
) -> UpstreamError {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    // An error body is worth a short wait, not the whole deadline.
    let until = call.deadline.min(Instant::now() + call.first_byte_timeout);
    let body = match timeout_at(until, read_capped(response, MAX_ERROR_BYTES)).await {
        Ok(Ok(Some(body))) => body,
        _ => Bytes::new(),
    };
    let (message, code) = parse_error_body(&body);
    UpstreamError::Status {
        status,
        retry_after,
        message: redact(&message.unwrap_or_default(), secret),
        code: code.map(|c| redact(&c, secret)),
    }
}

/// `(message, code)` from an OpenAI-style error body: `{"error": {...}}`,
/// `{"error": "text"}` (Ollama) or a top-level `message` (vLLM). Anything
/// that is not such JSON yields nothing: raw bodies are never passed on.
pub(crate) fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        error: Option<ErrorField>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        code: Option<Code>,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(env) => match env.error {
            Some(ErrorField::Detail(d)) => (d.message, d.code.and_then(Code::into_string)),
            Some(ErrorField::Text(t)) => (Some(t), None),
            Some(ErrorField::Other(_)) | None => {
                (env.message, env.code.and_then(Code::into_string))
            }
        },
        Err(_) => (None, None),
    }
}

/// The `error` member of an error body, in the shapes hosts use.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum ErrorField {
    Detail(ErrorDetail),
    Text(String),
    Other(IgnoredAny),
}

#[derive(Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) code: Option<Code>,
}

/// Error codes are strings at OpenAI and numbers at some others.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Code {
    Text(String),
    Number(i64),
    Other(IgnoredAny),
}

impl Code {
    pub(crate) fn into_string(self) -> Option<String> {
        match self {
            Code::Text(t) => Some(t),
            Code::Number(n) => Some(n.to_string()),
            Code::Other(_) => None,
        }
    }
}

/// `retry-after-ms` (Azure), else `Retry-After` in seconds or as an
/// HTTP date.
pub(crate) fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && let Ok(d) = Duration::try_from_secs_f64(ms / 1000.0)
    {
        return Some(d);
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = when - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_in_the_shapes_hosts_use() {
        let openai = br#"{"error":{"message":"Invalid 'messages'","type":"invalid_request_error","param":"messages","code":"invalid_value"}}"#;
        assert_eq!(
            parse_error_body(openai),
            (
                Some("Invalid 'messages'".into()),
                Some("invalid_value".into())
            )
        );
        let azure = br#"{"error":{"code":"429","message":"Rate limit is exceeded."}}"#;
        assert_eq!(parse_error_body(azure).1.as_deref(), Some("429"));
        let vllm = br#"{"object":"error","message":"model x does not exist","type":"NotFoundError","code":404}"#;
        assert_eq!(
            parse_error_body(vllm),
            (Some("model x does not exist".into()), Some("404".into()))
        );
        let ollama = br#"{"error":"model 'x' not found"}"#;
        assert_eq!(
            parse_error_body(ollama).0.as_deref(),
            Some("model 'x' not found")
        );
    }

    #[test]
    fn non_json_error_bodies_are_dropped() {
        for body in [
            &b"<html><body>502 Bad Gateway nginx at 10.1.2.3</body></html>"[..],
            b"upstream connect error or disconnect/reset before headers",
            b"",
            b"[1,2]",
        ] {
            assert_eq!(parse_error_body(body), (None, None));
        }
    }

    #[test]
    fn retry_after_in_its_three_forms() {
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", http::HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", http::HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = http::HeaderMap::new();
        h.insert(
            "retry-after",
            http::HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", http::HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}

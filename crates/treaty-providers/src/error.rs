//! What can go wrong talking to a host, and what the client is told.
//!
//! [`UpstreamError`] is the one failure type every provider returns; the
//! gateway asks it whether another host may be tried ([`retryable`]) and
//! what to answer ([`client_facing`]). Messages held here are redacted when
//! the error is built, so `Display` and `Debug` are safe to log; this module
//! must never carry a key, a full URL or a raw upstream body.
//!
//! [`retryable`]: UpstreamError::retryable
//! [`client_facing`]: UpstreamError::client_facing

use std::time::Duration;

use treaty_domain::{HostId, ProviderKind};

use crate::redact::redact;

/// Which deadline ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// No response headers within the first-byte timeout.
    FirstByte,
    /// The total deadline of the exchange, streamed body included.
    Total,
}

/// A failed upstream exchange.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    /// No response: refused, reset or unresolvable before any header came.
    #[error("could not reach the host: {0}")]
    Connect(String),
    #[error("the host did not answer in time ({phase:?})")]
    Timeout { phase: TimeoutPhase },
    /// The host answered with a non-success status. `message` and `code`
    /// come from its OpenAI-style error body, already redacted; they are
    /// empty/`None` when the body was not such JSON.
    #[error("the host answered {status}: {message}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
        message: String,
        code: Option<String>,
    },
    /// The host sent an error object inside a successful stream.
    #[error("the host reported an error mid-stream: {message}")]
    InStream {
        message: String,
        code: Option<String>,
    },
    /// Malformed JSON or SSE.
    #[error("the host sent a malformed reply: {0}")]
    Protocol(String),
    /// The body ended before the host said it was complete.
    #[error("the host's reply ended early")]
    Truncated,
    /// A read error in the middle of the body.
    #[error("reading the host's reply failed: {0}")]
    Io(String),
}

impl UpstreamError {
    /// Whether another attempt (on this or another host) may succeed.
    ///
    /// Only meaningful before anything was forwarded to the client: once a
    /// stream chunk went out, the gateway must not retry whatever this says.
    pub fn retryable(&self) -> bool {
        match self {
            UpstreamError::Connect(_) | UpstreamError::Truncated | UpstreamError::Io(_) => true,
            UpstreamError::Timeout { phase } => *phase == TimeoutPhase::FirstByte,
            UpstreamError::Status { status, .. } => {
                // 529 is Anthropic's "overloaded"; harmless for the others.
                matches!(status, 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529)
            }
            UpstreamError::InStream { .. } | UpstreamError::Protocol(_) => false,
        }
    }

    /// How long the host asked to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What the gateway's client sees: HTTP status, message and `code`.
    ///
    /// The client's own request and key were fine by the time an upstream
    /// is called, so upstream credential problems become 502 and only
    /// request-shaped errors (400, 404, 413, 422) keep their status and the
    /// host's (redacted) message.
    pub fn client_facing(&self, host: &HostId) -> (u16, String, &'static str) {
        match self {
            UpstreamError::Status {
                status,
                message,
                retry_after,
                ..
            } => match *status {
                400 | 404 | 413 | 422 => {
                    let message = redact(message, None);
                    let message = if message.is_empty() {
                        format!("Host {host} rejected the request (HTTP {status}).")
                    } else {
                        message
                    };
                    let code = match *status {
                        404 => "upstream_not_found",
                        413 => "upstream_request_too_large",
                        _ => "upstream_bad_request",
                    };
                    (*status, message, code)
                }
                // 403, not 401: the client's own key was fine; Treaty's
                // credentials for this host were refused.
                401 | 403 => (
                    403,
                    format!("Host {host} rejected Treaty's credentials."),
                    "upstream_auth_failed",
                ),
                429 => {
                    let message = match retry_after {
                        Some(d) => format!(
                            "Host {host} is rate limiting requests; retry after {} s.",
                            d.as_secs().max(1)
                        ),
                        None => format!("Host {host} is rate limiting requests."),
                    };
                    (429, message, "upstream_rate_limited")
                }
                408 | 504 => (
                    504,
                    format!("Host {host} did not answer in time."),
                    "upstream_timeout",
                ),
                _ => (
                    502,
                    format!("Host {host} failed to answer (HTTP {status})."),
                    "upstream_error",
                ),
            },
            UpstreamError::Connect(_) => (
                502,
                format!("Host {host} could not be reached."),
                "upstream_unreachable",
            ),
            UpstreamError::Timeout { .. } => (
                504,
                format!("Host {host} did not answer in time."),
                "upstream_timeout",
            ),
            UpstreamError::InStream { .. } => (
                502,
                format!("Host {host} reported an error while answering."),
                "upstream_error",
            ),
            UpstreamError::Protocol(_) => (
                502,
                format!("Host {host} sent a malformed reply."),
                "upstream_protocol_error",
            ),
            UpstreamError::Truncated | UpstreamError::Io(_) => (
                502,
                format!("Host {host}'s reply was cut off."),
                "upstream_truncated",
            ),
        }
    }
}

/// A host that cannot be set up from its configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("host {host}: {kind} hosts need an API key (set `api_key_env` or `api_key_file`)")]
    MissingKey { host: HostId, kind: ProviderKind },
    #[error("host {host}: the API key contains characters not allowed in an HTTP header")]
    InvalidKey { host: HostId },
    #[error("host {host}: azure_openai hosts need their Azure settings (api style and auth)")]
    MissingAzureSettings { host: HostId },
    #[error("host {host}: base_url is not a usable http(s) URL: {reason}")]
    InvalidBaseUrl { host: HostId, reason: String },
    #[error("host {host}: bedrock hosts need `aws_region` (the SigV4 signing region)")]
    MissingAwsSettings { host: HostId },
    /// No usable AWS credentials; `reason` names the sources tried, never
    /// a value.
    #[error("host {host}: no usable AWS credentials: {reason}")]
    AwsCredentials { host: HostId, reason: String },
    #[error("host {host}: provider {kind} is not supported yet")]
    Unsupported { host: HostId, kind: ProviderKind },
    #[error("cannot build the upstream HTTP client: {0}")]
    HttpClient(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, message: &str) -> UpstreamError {
        UpstreamError::Status {
            status,
            retry_after: None,
            message: message.into(),
            code: None,
        }
    }

    #[test]
    fn retryable_follows_the_table() {
        for s in [408, 409, 429, 500, 502, 503, 504] {
            assert!(status(s, "").retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(!status(s, "").retryable(), "{s}");
        }
        assert!(UpstreamError::Connect("refused".into()).retryable());
        assert!(
            UpstreamError::Timeout {
                phase: TimeoutPhase::FirstByte
            }
            .retryable()
        );
        assert!(
            !UpstreamError::Timeout {
                phase: TimeoutPhase::Total
            }
            .retryable()
        );
        assert!(!UpstreamError::Protocol("x".into()).retryable());
    }

    #[test]
    fn client_facing_maps_each_kind() {
        let host = HostId::new("azure-eastus").unwrap();
        let cases: Vec<(UpstreamError, u16, &str)> = vec![
            (status(400, "bad 'messages'"), 400, "upstream_bad_request"),
            (status(404, "no such deployment"), 404, "upstream_not_found"),
            (status(422, "unprocessable"), 422, "upstream_bad_request"),
            (
                status(401, "Incorrect API key"),
                403,
                "upstream_auth_failed",
            ),
            (status(403, "forbidden"), 403, "upstream_auth_failed"),
            (status(429, "slow down"), 429, "upstream_rate_limited"),
            (status(500, "boom"), 502, "upstream_error"),
            (status(503, "overloaded"), 502, "upstream_error"),
            (status(504, "gateway timeout"), 504, "upstream_timeout"),
            (
                UpstreamError::Connect("x".into()),
                502,
                "upstream_unreachable",
            ),
            (
                UpstreamError::Timeout {
                    phase: TimeoutPhase::FirstByte,
                },
                504,
                "upstream_timeout",
            ),
            (
                UpstreamError::Protocol("x".into()),
                502,
                "upstream_protocol_error",
            ),
            (UpstreamError::Truncated, 502, "upstream_truncated"),
        ];
        for (err, want_status, want_code) in cases {
            let (s, message, code) = err.client_facing(&host);
            assert_eq!((s, code), (want_status, want_code), "{err:?}");
            assert!(!message.is_empty());
        }
        let (_, message, _) = status(400, "bad 'messages'").client_facing(&host);
        assert_eq!(message, "bad 'messages'");
        let (_, message, _) = status(401, "Incorrect API key sk-abc").client_facing(&host);
        assert_eq!(message, "Host azure-eastus rejected Treaty's credentials.");
        let (_, message, _) = status(503, "pod vllm-7 at 10.0.0.3 died").client_facing(&host);
        assert!(message.contains("azure-eastus") && !message.contains("10.0.0.3"));
    }

    #[test]
    fn client_facing_redacts_passed_through_messages() {
        let host = HostId::new("h").unwrap();
        let err = status(
            400,
            "key sk-proj-abcdef1234567890abcdef is bad, see https://internal.example/x",
        );
        let (_, message, _) = err.client_facing(&host);
        assert!(!message.contains("sk-proj"), "{message}");
        assert!(!message.contains("internal.example"), "{message}");
    }

    #[test]
    fn rate_limit_mentions_the_wait() {
        let host = HostId::new("h").unwrap();
        let err = UpstreamError::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(3)),
            message: String::new(),
            code: None,
        };
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert!(err.client_facing(&host).1.contains("3 s"));
    }
}

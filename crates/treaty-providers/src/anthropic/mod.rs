//! Anthropic's Messages API (`POST {base}/v1/messages`) behind the OpenAI
//! [`Provider`] trait.
//!
//! This module owns the Anthropic exchange: the URL, the `x-api-key` and
//! `anthropic-version` headers, translation of OpenAI chat requests into
//! Messages requests ([`request`]), of whole Messages replies into
//! `chat.completion` bodies ([`response`]) and of Messages SSE events into
//! `chat.completion.chunk` payloads as bytes arrive ([`stream`]), and the
//! mapping of Anthropic's error bodies (`{"type":"error","error":{..}}`,
//! including 429 `rate_limit_error` and 529 `overloaded_error`) to
//! [`UpstreamError`]. Anthropic has no embeddings API: embeddings requests
//! fail as a client error without a network call.
//!
//! It must never put the key anywhere but its header, never pass an
//! upstream body or message on unredacted, and never retry (the gateway
//! decides). A request that cannot be expressed in Anthropic's format fails
//! with a 400-class error rather than being silently changed in meaning.

mod request;
pub(crate) mod response;
pub(crate) mod stream;

#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderName, HeaderValue};
use reqwest::Url;
use serde::Deserialize;
use tokio::time::Instant;
use treaty_config::{Endpoint, Secret};
use treaty_domain::{HostId, ModelDeployment, ProviderKind};
use treaty_openai::{ChatCompletionRequest, EmbeddingsRequest};

use crate::exchange::{self, MAX_REPLY_BYTES};
use crate::redact::redact;
use crate::{
    CallOptions, ChatReply, EmbeddingsReply, Provider, ProviderError, TimeoutPhase, UpstreamError,
};

/// The API version Treaty's translation is written against. Anthropic keeps
/// old versions working, so this changes only with the translation.
const API_VERSION: &str = "2023-06-01";
/// Error bodies are read only for their message.
const MAX_ERROR_BYTES: usize = 64 << 10;

static API_KEY: HeaderName = HeaderName::from_static("x-api-key");
static VERSION: HeaderName = HeaderName::from_static("anthropic-version");

pub(crate) struct Anthropic {
    host: HostId,
    messages: Url,
    models: Url,
    /// The `x-api-key` value, marked sensitive.
    key_header: HeaderValue,
    /// The key, for scrubbing it out of upstream messages.
    secret: Secret,
    http: reqwest::Client,
}

impl std::fmt::Debug for Anthropic {
    // Only what identifies the provider: no URLs, no headers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anthropic")
            .field("host", &self.host)
            .finish()
    }
}

impl Anthropic {
    /// Checks the endpoint once: an http(s) base URL (a trailing `/v1` is
    /// tolerated) and a key usable as a header value.
    pub(crate) fn new(
        host: HostId,
        endpoint: &Endpoint,
        http: reqwest::Client,
    ) -> Result<Self, ProviderError> {
        let key = endpoint
            .api_key
            .as_ref()
            .ok_or_else(|| ProviderError::MissingKey {
                host: host.clone(),
                kind: ProviderKind::Anthropic,
            })?;
        let mut key_header = HeaderValue::from_str(key.expose())
            .map_err(|_| ProviderError::InvalidKey { host: host.clone() })?;
        key_header.set_sensitive(true);
        let base = base_url(&host, &endpoint.base_url)?;
        let at = |segments: &[&str]| {
            let mut url = base.clone();
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty().extend(segments);
            }
            url
        };
        Ok(Anthropic {
            messages: at(&["v1", "messages"]),
            models: at(&["v1", "models"]),
            host,
            key_header,
            secret: key.clone(),
            http,
        })
    }

    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .header(API_KEY.clone(), self.key_header.clone())
            .header(VERSION.clone(), HeaderValue::from_static(API_VERSION))
    }

    /// The upstream request: URL, auth, version, `x-request-id`, JSON body.
    fn request(&self, body: Vec<u8>, stream: bool, call: &CallOptions) -> reqwest::RequestBuilder {
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut request = self
            .authed(self.http.post(self.messages.clone()))
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .body(body);
        match HeaderValue::from_str(&call.request_id) {
            Ok(id) => request = request.header("x-request-id", id),
            Err(_) => tracing::debug!("request id is not a valid header value; not sent upstream"),
        }
        if let Some(tp) = &call.traceparent {
            request = request.header("traceparent", tp.clone());
        }
        request
    }

    /// The error for a non-success response, from Anthropic's error body.
    async fn status_error(&self, response: reqwest::Response, call: &CallOptions) -> UpstreamError {
        let status = response.status().as_u16();
        let retry_after = exchange::retry_after(response.headers());
        // An error body is worth a short wait, not the whole deadline.
        let until = call.deadline.min(Instant::now() + call.first_byte_timeout);
        let body = exchange::read_body(response, until, MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        let (message, kind) = parse_error_body(&body);
        let secret = Some(self.secret.expose());
        UpstreamError::Status {
            status,
            retry_after,
            message: redact(&message.unwrap_or_default(), secret),
            code: kind.map(|k| redact(&k, secret)),
        }
    }
}

/// `(message, type)` from `{"type":"error","error":{"type":..,"message":..}}`,
/// falling back to the OpenAI shapes a proxy in front of Anthropic might
/// answer with. Anything else yields nothing: raw bodies are never passed on.
pub(crate) fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct Envelope {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(env) => (env.error.message, env.error.kind),
        Err(_) => exchange::parse_error_body(body),
    }
}

/// A request this provider cannot express: the client's to fix, never
/// retried elsewhere by status alone.
pub(crate) fn untranslatable(message: impl Into<String>) -> UpstreamError {
    UpstreamError::Status {
        status: 400,
        retry_after: None,
        message: message.into(),
        code: Some("unsupported_by_host".into()),
    }
}

fn base_url(host: &HostId, text: &str) -> Result<Url, ProviderError> {
    let invalid = |reason: &str| ProviderError::InvalidBaseUrl {
        host: host.clone(),
        reason: reason.to_owned(),
    };
    // The message of a parse error never contains the URL itself.
    let mut url = Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not have a query or fragment"));
    }
    let segments: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    if segments.last().map(String::as_str) == Some("v1") {
        let keep = &segments[..segments.len() - 1];
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear().extend(keep);
        }
    }
    Ok(url)
}

#[async_trait::async_trait]
impl Provider for Anthropic {
    fn host_id(&self) -> &HostId {
        &self.host
    }

    async fn chat(
        &self,
        req: &ChatCompletionRequest,
        deployment: &ModelDeployment,
        call: &CallOptions,
    ) -> Result<ChatReply, UpstreamError> {
        let body = request::translate(req, &deployment.target)?;
        let body = serde_json::to_vec(&body)
            .map_err(|_| UpstreamError::Protocol("the request could not be encoded".into()))?;
        let stream = req.is_stream();
        let response = exchange::send(self.request(body, stream, call), call).await?;
        if !response.status().is_success() {
            let err = self.status_error(response, call).await;
            tracing::debug!(host = %self.host, error = %err, "upstream refused the request");
            return Err(err);
        }
        if stream {
            let bytes = response
                .bytes_stream()
                .map(|r: Result<Bytes, reqwest::Error>| r.map_err(exchange::body_error));
            return Ok(ChatReply::Stream(stream::decode(
                bytes,
                req.include_usage(),
                call.deadline,
                Some(self.secret.clone()),
            )));
        }
        let body = exchange::read_body(response, call.deadline, MAX_REPLY_BYTES).await?;
        let (body, usage) = response::translate(&body, unix_now())?;
        Ok(ChatReply::Full {
            body: Bytes::from(body),
            usage: Some(usage),
        })
    }

    async fn embeddings(
        &self,
        _req: &EmbeddingsRequest,
        _deployment: &ModelDeployment,
        _call: &CallOptions,
    ) -> Result<EmbeddingsReply, UpstreamError> {
        Err(untranslatable(
            "Anthropic has no embeddings API; route embeddings models to another host.",
        ))
    }

    async fn probe(&self, timeout: Duration) -> Result<(), UpstreamError> {
        let call = CallOptions {
            first_byte_timeout: timeout,
            deadline: Instant::now() + timeout,
            request_id: "health-probe".to_owned(),
            traceparent: None,
        };
        let request = self.authed(self.http.get(self.models.clone()));
        let response = exchange::send(request, &call).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(response, &call).await)
        }
    }
}

/// Unix seconds for `created`; 0 if the clock is before 1970.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Anthropic's stop reasons as OpenAI finish reasons. Unknown future
/// reasons read as `stop`: the answer did end, for a reason we cannot name.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, null and the unknown.
        _ => "stop",
    }
}

/// An Anthropic error object met inside a stream. Overload and rate limits
/// are given their HTTP statuses so the gateway may still retry them when
/// nothing was forwarded yet; anything else is an in-stream failure.
pub(crate) fn in_stream_error(
    kind: Option<&str>,
    message: Option<&str>,
    secret: Option<&str>,
) -> UpstreamError {
    let message = redact(message.unwrap_or_default(), secret);
    let status = match kind {
        Some("overloaded_error") => Some(529),
        Some("rate_limit_error") => Some(429),
        _ => None,
    };
    match status {
        Some(status) => UpstreamError::Status {
            status,
            retry_after: None,
            message,
            code: kind.map(str::to_owned),
        },
        None => UpstreamError::InStream {
            message,
            code: kind.map(|k| redact(k, secret)),
        },
    }
}

/// The deadline error, shared by the stream decoder.
pub(crate) fn total_timeout() -> UpstreamError {
    UpstreamError::Timeout {
        phase: TimeoutPhase::Total,
    }
}

//! Amazon Bedrock's runtime API behind the OpenAI [`Provider`] trait:
//! Converse (`POST {base}/model/{modelId}/converse`), ConverseStream
//! (`.../converse-stream`, binary event stream) and InvokeModel for
//! embeddings (`.../invoke`, Titan and Cohere bodies).
//!
//! This module owns the Bedrock exchange: URLs (the model id
//! percent-encoded as one path segment, so ARNs and `:0` versions survive),
//! SigV4 signing of every request ([`sign`]) with credentials from the host
//! config or the standard AWS chain ([`credentials`]), translation of
//! OpenAI chat requests ([`request`]), of Converse replies ([`response`]) and
//! of event streams as bytes arrive ([`stream`]), embeddings
//! ([`embeddings`]), and the mapping of Bedrock's errors (`x-amzn-ErrorType`
//! and a `{"message"}` body) to [`UpstreamError`]: throttling is 429 and
//! retryable, unavailable or not-ready models 503 and retryable, validation
//! errors 400, signature and permission errors 401/403 naming the host.
//!
//! It must never put a credential anywhere but the signature headers, never
//! pass an upstream message on unredacted, and never retry (the gateway
//! decides). A request that Bedrock cannot express fails with a 400-class
//! error rather than being silently changed in meaning.
//!
//! The health probe is a signed Converse call with no messages to the
//! host's first model (the one IAM policies scoped to model ARNs allow;
//! `treaty-health-probe` for a host without models): Bedrock checks the
//! signature and the permission before validating the body, so an answer
//! of 2xx, 400 (`ValidationException`) or 404 proves the host is up and
//! accepts Treaty's credentials, and costs no tokens; 401/403, 429 and 5xx
//! fail the probe. (The model list, `GET /foundation-models`, is on the
//! control-plane endpoint, not the runtime one a host's `base_url` names.)

mod credentials;
mod embeddings;
mod request;
pub(crate) mod response;
mod sign;
pub(crate) mod stream;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{ACCEPT, CONTENT_TYPE};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;
use serde::Deserialize;
use tokio::time::Instant;
use treaty_config::{Endpoint, Env};
use treaty_domain::{HostId, ModelDeployment};
use treaty_openai::{ChatCompletionRequest, EmbeddingsRequest};

pub(crate) use credentials::CredentialChain;

use crate::exchange::{self, MAX_REPLY_BYTES};
use crate::redact::redact;
use crate::{
    CallOptions, ChatReply, EmbeddingsReply, Provider, ProviderError, TimeoutPhase, UpstreamError,
};

/// RFC 3986 unreserved characters stay; everything else is encoded (what
/// the AWS SDKs do for a model id label, so `:` and `/` in ARNs encode).
pub(crate) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Error bodies are read only for their message.
const MAX_ERROR_BYTES: usize = 64 << 10;
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";
const JSON: &str = "application/json";
/// The model id the health probe names when the host has no models.
const PROBE_MODEL: &str = "treaty-health-probe";

pub(crate) struct Bedrock {
    host: HostId,
    /// The base URL without a trailing slash.
    base: String,
    region: String,
    /// The model id the health probe names; see the module docs.
    probe_model: String,
    credentials: Arc<CredentialChain>,
    /// Static credentials, scrubbed from upstream messages.
    secrets: Vec<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Bedrock {
    // Only what identifies the provider: no URLs, no credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bedrock")
            .field("host", &self.host)
            .field("region", &self.region)
            .field("credentials", &self.credentials.origin())
            .finish()
    }
}

impl Bedrock {
    /// Checks the endpoint once (an http(s) base URL and the AWS settings)
    /// and resolves where credentials come from, reading the environment
    /// through `env`.
    pub(crate) fn new(
        host: HostId,
        endpoint: &Endpoint,
        probe_model: Option<&str>,
        http: reqwest::Client,
        env: &dyn Env,
    ) -> Result<Self, ProviderError> {
        let aws = endpoint
            .aws
            .as_ref()
            .ok_or_else(|| ProviderError::MissingAwsSettings { host: host.clone() })?;
        let base = base_url(&host, &endpoint.base_url)?;
        let credentials = CredentialChain::resolve(&host, aws, env)?;
        tracing::debug!(host = %host, source = credentials.origin(), "bedrock credentials resolved");
        Ok(Bedrock {
            secrets: credentials.static_secrets(),
            credentials: Arc::new(credentials),
            region: aws.region.clone(),
            probe_model: probe_model.unwrap_or(PROBE_MODEL).to_owned(),
            base,
            host,
            http,
        })
    }

    /// `{base}/model/{modelId}/{action}` with the model id encoded as one
    /// segment.
    fn url(&self, model: &str, action: &str) -> Result<Url, UpstreamError> {
        let text = format!(
            "{}/model/{}/{action}",
            self.base,
            utf8_percent_encode(model, UNRESERVED)
        );
        Url::parse(&text)
            .map_err(|_| UpstreamError::Protocol("the model id does not make a valid URL".into()))
    }

    /// Signs and sends `POST url` with a JSON body.
    async fn send(
        &self,
        url: Url,
        body: Vec<u8>,
        accept: &'static str,
        call: &CallOptions,
    ) -> Result<reqwest::Response, UpstreamError> {
        let credentials = self.credentials.get(&self.http, call.deadline).await?;
        let signed = sign::signature_headers(
            "POST",
            url.as_str(),
            &[("content-type", JSON), ("accept", accept)],
            &body,
            &credentials,
            &self.region,
            SystemTime::now(),
        )?;
        let mut request = self
            .http
            .post(url)
            .header(CONTENT_TYPE, JSON)
            .header(ACCEPT, accept);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        // Unsigned, as AWS SDKs send it: a tracing header, not content.
        if let Some(tp) = &call.traceparent {
            request = request.header("traceparent", tp.clone());
        }
        exchange::send(request.body(body), call).await
    }

    /// The error for a non-success response, from Bedrock's error type
    /// header and body.
    async fn status_error(&self, response: reqwest::Response, call: &CallOptions) -> UpstreamError {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // An error body is worth a short wait, not the whole deadline.
        let until = call.deadline.min(Instant::now() + call.first_byte_timeout);
        let body = exchange::read_body(response, until, MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        error_from_parts(&self.host, status, &headers, &body, &self.secrets)
    }

    /// `x-amzn-requestid` as a completion id, else a time-based one.
    fn completion_id(headers: &http::HeaderMap) -> String {
        let id = headers
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned);
        match id {
            Some(id) => format!("chatcmpl-{id}"),
            None => format!(
                "chatcmpl-bedrock-{}",
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
        }
    }
}

/// The `UpstreamError` for a Bedrock error response.
pub(crate) fn error_from_parts(
    host: &HostId,
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
    secrets: &[String],
) -> UpstreamError {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default, alias = "Message")]
        message: Option<String>,
        #[serde(default, rename = "__type")]
        kind: Option<String>,
    }
    let parsed = serde_json::from_slice::<Body>(body).ok();
    // `ThrottlingException:http://internal.amazon.com/coral/...` or
    // `com.amazon.coral.service#ThrottlingException`.
    let kind = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parsed.as_ref().and_then(|b| b.kind.clone()))
        .map(|k| {
            let k = k.split(':').next().unwrap_or_default();
            k.rsplit('#').next().unwrap_or_default().to_owned()
        })
        .filter(|k| !k.is_empty());
    let mut message = parsed.and_then(|b| b.message).unwrap_or_default();
    for secret in secrets {
        message = redact(&message, Some(secret));
    }
    let message = redact(&message, None);
    let status = match kind.as_deref() {
        Some("ThrottlingException" | "TooManyRequestsException") => 429,
        Some("ServiceUnavailableException" | "ModelNotReadyException") => 503,
        Some("ModelTimeoutException") => 408,
        Some("ValidationException") => 400,
        Some("ResourceNotFoundException") => 404,
        Some("InternalServerException") => 500,
        Some(
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "MissingAuthenticationTokenException"
            | "ExpiredTokenException"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch",
        ) if !matches!(status, 401 | 403) => 403,
        _ => status,
    };
    let message = if matches!(status, 401 | 403) {
        format!(
            "Host {host}: AWS refused Treaty's credentials ({}): {message}",
            kind.as_deref().unwrap_or("no error type")
        )
    } else {
        message
    };
    UpstreamError::Status {
        status,
        retry_after: exchange::retry_after(headers),
        message,
        code: kind,
    }
}

/// An exception message met inside a ConverseStream. Throttling and
/// unavailability keep their HTTP statuses so the gateway may still retry
/// them when nothing was forwarded yet; the rest are in-stream failures.
pub(crate) fn stream_exception(kind: &str, message: &str) -> UpstreamError {
    let status = match kind {
        "throttlingException" => Some(429),
        "serviceUnavailableException" | "modelNotReadyException" => Some(503),
        "internalServerException" => Some(500),
        "validationException" => Some(400),
        _ => None,
    };
    match status {
        Some(status) => UpstreamError::Status {
            status,
            retry_after: None,
            message: message.to_owned(),
            code: Some(kind.to_owned()),
        },
        None => UpstreamError::InStream {
            message: message.to_owned(),
            code: Some(kind.to_owned()),
        },
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

fn base_url(host: &HostId, text: &str) -> Result<String, ProviderError> {
    let invalid = |reason: &str| ProviderError::InvalidBaseUrl {
        host: host.clone(),
        reason: reason.to_owned(),
    };
    // The message of a parse error never contains the URL itself.
    let url = Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[async_trait::async_trait]
impl Provider for Bedrock {
    fn host_id(&self) -> &HostId {
        &self.host
    }

    async fn chat(
        &self,
        req: &ChatCompletionRequest,
        deployment: &ModelDeployment,
        call: &CallOptions,
    ) -> Result<ChatReply, UpstreamError> {
        let body = request::translate(req)?;
        let body = serde_json::to_vec(&body)
            .map_err(|_| UpstreamError::Protocol("the request could not be encoded".into()))?;
        let stream = req.is_stream();
        let (action, accept) = if stream {
            ("converse-stream", EVENT_STREAM)
        } else {
            ("converse", JSON)
        };
        let url = self.url(&deployment.target, action)?;
        let response = self.send(url, body, accept, call).await?;
        if !response.status().is_success() {
            let err = self.status_error(response, call).await;
            tracing::debug!(host = %self.host, error = %err, "upstream refused the request");
            return Err(err);
        }
        let id = Self::completion_id(response.headers());
        if stream {
            let bytes = response
                .bytes_stream()
                .map(|r: Result<Bytes, reqwest::Error>| r.map_err(exchange::body_error));
            return Ok(ChatReply::Stream(stream::decode(
                bytes,
                req.include_usage(),
                call.deadline,
                id,
                deployment.target.clone(),
                self.secrets.clone(),
            )));
        }
        let body = exchange::read_body(response, call.deadline, MAX_REPLY_BYTES).await?;
        let (body, usage) = response::translate(&body, &id, &deployment.target, unix_now())?;
        Ok(ChatReply::Full {
            body: Bytes::from(body),
            usage: Some(usage),
        })
    }

    async fn embeddings(
        &self,
        req: &EmbeddingsRequest,
        deployment: &ModelDeployment,
        call: &CallOptions,
    ) -> Result<EmbeddingsReply, UpstreamError> {
        embeddings::embed(self, req, deployment, call).await
    }

    async fn probe(&self, timeout: Duration) -> Result<(), UpstreamError> {
        let call = CallOptions {
            first_byte_timeout: timeout,
            deadline: Instant::now() + timeout,
            request_id: "health-probe".to_owned(),
            traceparent: None,
        };
        let url = self.url(&self.probe_model, "converse")?;
        let response = self
            .send(url, br#"{"messages":[]}"#.to_vec(), JSON, &call)
            .await?;
        let status = response.status().as_u16();
        if response.status().is_success() || matches!(status, 400 | 404) {
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

/// Converse stop reasons as OpenAI finish reasons. Unknown future reasons
/// read as `stop`: the answer did end, for a reason we cannot name.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened" | "content_filtered") => "content_filter",
        // end_turn, stop_sequence, malformed_*, null and the unknown.
        _ => "stop",
    }
}

/// The deadline error, shared by the stream decoder.
pub(crate) fn total_timeout() -> UpstreamError {
    UpstreamError::Timeout {
        phase: TimeoutPhase::Total,
    }
}

/// What is wrong with some JSON, without quoting it.
pub(crate) fn json_problem(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "ends early",
    }
}

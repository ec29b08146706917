//! Google Gemini behind the OpenAI [`Provider`] trait, through either of
//! Google's two doors to the same models: the Gemini API
//! (`{base}/v1beta/models/{model}:generateContent`, key in
//! `x-goog-api-key`) and Vertex AI
//! (`{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent`,
//! OAuth access token as `Authorization: Bearer`).
//!
//! This module owns that exchange: the URLs, the credential header,
//! translation of OpenAI chat requests into `GenerateContentRequest`s
//! ([`request`], with JSON Schemas cut down to what Gemini accepts in
//! [`schema`]), of whole replies into `chat.completion` bodies
//! ([`response`]), of `streamGenerateContent?alt=sse` events into
//! `chat.completion.chunk` payloads as bytes arrive ([`stream`]), of
//! embeddings both ways ([`embeddings`]), and the mapping of Google's error
//! bodies (`{"error":{code,message,status,details}}`) to [`UpstreamError`].
//!
//! It must never put the credential anywhere but its header (never in the
//! URL, although the Gemini API accepts `?key=`), never pass an upstream
//! body or message on unredacted, and never retry (the gateway decides). A
//! request that cannot be expressed for Gemini fails with a 400-class error
//! rather than being silently changed in meaning.
//!
//! The Vertex token is used as configured: Treaty does not mint or refresh
//! OAuth tokens, so a short-lived token must be renewed outside (and the
//! config reloaded) before it expires.

mod embeddings;
mod request;
pub(crate) mod response;
mod schema;
pub(crate) mod stream;

#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use treaty_config::{Endpoint, GeminiApi, Secret};
use treaty_domain::{HostId, ModelDeployment, ProviderKind};
use treaty_openai::{ChatCompletionRequest, EmbeddingsRequest};

use crate::exchange::{self, MAX_REPLY_BYTES};
use crate::redact::redact;
use crate::{
    CallOptions, ChatReply, EmbeddingsReply, Provider, ProviderError, TimeoutPhase, UpstreamError,
};

/// Error bodies are read only for their message.
const MAX_ERROR_BYTES: usize = 64 << 10;

static API_KEY: HeaderName = HeaderName::from_static("x-goog-api-key");

/// Which of Google's two APIs a host is; they differ in URL, credential and
/// a few accepted inputs (Vertex fetches `https:`/`gs:` image URLs itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Door {
    GeminiApi,
    Vertex,
}

impl Door {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Door::GeminiApi => "Gemini API",
            Door::Vertex => "Vertex AI",
        }
    }
}

pub(crate) struct Gemini {
    host: HostId,
    door: Door,
    /// The collection model methods hang off: `.../v1beta/models` or
    /// `.../publishers/google/models`.
    models: Url,
    /// The credential header, its value marked sensitive.
    auth: (HeaderName, HeaderValue),
    /// The credential, for scrubbing it out of upstream messages.
    secret: Secret,
    /// Vertex has no cheap model list per project: the probe counts tokens
    /// (free) on this model, the host's first.
    probe_model: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Gemini {
    // Only what identifies the provider: no URLs, no headers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gemini")
            .field("host", &self.host)
            .field("api", &self.door.name())
            .finish()
    }
}

impl Gemini {
    /// Checks the endpoint once: an http(s) base URL (a trailing API
    /// version segment is tolerated), a credential usable as a header, and
    /// for Vertex the project and location from the config.
    pub(crate) fn new(
        host: HostId,
        endpoint: &Endpoint,
        probe_model: Option<&str>,
        http: reqwest::Client,
    ) -> Result<Self, ProviderError> {
        let key = endpoint
            .api_key
            .as_ref()
            .ok_or_else(|| ProviderError::MissingKey {
                host: host.clone(),
                kind: ProviderKind::Gemini,
            })?;
        let base = base_url(&host, &endpoint.base_url)?;
        let at = |segments: &[&str]| {
            let mut url = base.clone();
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty().extend(segments);
            }
            url
        };
        let invalid_key = || ProviderError::InvalidKey { host: host.clone() };
        let (door, models, auth) = match endpoint.gemini.as_ref().unwrap_or(&GeminiApi::Gemini) {
            GeminiApi::Gemini => {
                let mut value = HeaderValue::from_str(key.expose()).map_err(|_| invalid_key())?;
                value.set_sensitive(true);
                (
                    Door::GeminiApi,
                    at(&["v1beta", "models"]),
                    (API_KEY.clone(), value),
                )
            }
            GeminiApi::Vertex { project, location } => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| invalid_key())?;
                value.set_sensitive(true);
                let models = at(&[
                    "v1",
                    "projects",
                    project,
                    "locations",
                    location,
                    "publishers",
                    "google",
                    "models",
                ]);
                (Door::Vertex, models, (AUTHORIZATION, value))
            }
        };
        Ok(Gemini {
            host,
            door,
            models,
            auth,
            secret: key.clone(),
            probe_model: probe_model.map(str::to_owned),
            http,
        })
    }

    /// `{models}/{model}:{method}`. A model given as a resource name
    /// (`models/x`, `publishers/google/models/x`) is reduced to its id.
    fn method_url(&self, model: &str, method: &str, sse: bool) -> Url {
        let model = model.rsplit_once("models/").map_or(model, |(_, id)| id);
        let mut url = self.models.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.push(&format!("{model}:{method}"));
        }
        if sse {
            url.set_query(Some("alt=sse"));
        }
        url
    }

    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.header(self.auth.0.clone(), self.auth.1.clone())
    }

    /// A POST of `body` with auth, `x-request-id` and JSON headers.
    fn post(
        &self,
        url: Url,
        body: Vec<u8>,
        sse: bool,
        call: &CallOptions,
    ) -> reqwest::RequestBuilder {
        let accept = if sse {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut request = self
            .authed(self.http.post(url))
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

    /// Sends `body` to `model:method` and returns the successful response.
    async fn exchange(
        &self,
        model: &str,
        method: &str,
        body: &Value,
        sse: bool,
        call: &CallOptions,
    ) -> Result<reqwest::Response, UpstreamError> {
        let body = serde_json::to_vec(body)
            .map_err(|_| UpstreamError::Protocol("the request could not be encoded".into()))?;
        let url = self.method_url(model, method, sse);
        let response = exchange::send(self.post(url, body, sse, call), call).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let err = self.status_error(response, call).await;
        tracing::debug!(host = %self.host, error = %err, "upstream refused the request");
        Err(err)
    }

    /// The error for a non-success response, from Google's error body.
    async fn status_error(&self, response: reqwest::Response, call: &CallOptions) -> UpstreamError {
        let mut status = response.status().as_u16();
        let header_wait = exchange::retry_after(response.headers());
        // An error body is worth a short wait, not the whole deadline.
        let until = call.deadline.min(Instant::now() + call.first_byte_timeout);
        let body = exchange::read_body(response, until, MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        let error = parse_error_body(&body);
        // The Gemini API answers a wrong key with 400 INVALID_ARGUMENT; it
        // is a credential problem, not the client's request.
        if error.key_invalid {
            status = 401;
        }
        let secret = Some(self.secret.expose());
        UpstreamError::Status {
            status,
            retry_after: header_wait.or(error.retry_delay),
            message: redact(&error.message.unwrap_or_default(), secret),
            code: error.code.map(|c| redact(&c, secret)),
        }
    }
}

/// What Treaty reads from a Google error body.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct GoogleError {
    pub(crate) message: Option<String>,
    /// The canonical status name (`RESOURCE_EXHAUSTED`, ...).
    pub(crate) code: Option<String>,
    /// The HTTP-like code inside the body.
    pub(crate) http: Option<u16>,
    /// `google.rpc.RetryInfo.retryDelay`, when the body carries one.
    pub(crate) retry_delay: Option<Duration>,
    /// `google.rpc.ErrorInfo.reason == API_KEY_INVALID`.
    pub(crate) key_invalid: bool,
}

#[derive(Deserialize)]
pub(crate) struct WireError {
    /// A number from Google; anything else is ignored rather than failing
    /// the parse of the whole error.
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

impl WireError {
    pub(crate) fn read(self) -> GoogleError {
        let mut out = GoogleError {
            message: self.message,
            code: self.status,
            http: self
                .code
                .as_ref()
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok()),
            ..GoogleError::default()
        };
        for detail in &self.details {
            let kind = detail.get("@type").and_then(Value::as_str).unwrap_or("");
            if kind.ends_with("google.rpc.RetryInfo") {
                out.retry_delay = detail
                    .get("retryDelay")
                    .and_then(Value::as_str)
                    .and_then(proto_duration);
            } else if kind.ends_with("google.rpc.ErrorInfo")
                && detail.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID")
            {
                out.key_invalid = true;
            }
        }
        out
    }
}

/// Google's error body: `{"error":{..}}`, or the same in a one-element
/// array (what the streaming method answers with), falling back to the
/// OpenAI shapes a proxy in front might use. Anything else yields nothing:
/// raw bodies are never passed on.
pub(crate) fn parse_error_body(body: &[u8]) -> GoogleError {
    #[derive(Deserialize)]
    struct Envelope {
        error: WireError,
    }
    // `Many` first: a derived struct also reads from a sequence.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Many([Envelope; 1]),
        One(Envelope),
    }
    match serde_json::from_slice::<Shape>(body) {
        Ok(Shape::One(env) | Shape::Many([env])) => env.error.read(),
        Err(_) => {
            let (message, code) = exchange::parse_error_body(body);
            GoogleError {
                message,
                code,
                ..GoogleError::default()
            }
        }
    }
}

/// A protobuf JSON duration (`"37s"`, `"1.5s"`).
fn proto_duration(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// A Google error object met inside a stream. Overload, rate limits and
/// internal errors keep their HTTP status so the gateway may still retry
/// them when nothing was forwarded yet; anything else is an in-stream
/// failure.
pub(crate) fn in_stream_error(error: WireError, secret: Option<&str>) -> UpstreamError {
    let error = error.read();
    let message = redact(&error.message.unwrap_or_default(), secret);
    let code = error.code.map(|c| redact(&c, secret));
    match error.http {
        Some(status @ (429 | 500 | 503 | 504)) => UpstreamError::Status {
            status,
            retry_after: error.retry_delay,
            message,
            code,
        },
        _ => UpstreamError::InStream { message, code },
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
    if matches!(
        segments.last().map(String::as_str),
        Some("v1" | "v1beta" | "v1beta1")
    ) {
        let keep = &segments[..segments.len() - 1];
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear().extend(keep);
        }
    }
    Ok(url)
}

#[async_trait::async_trait]
impl Provider for Gemini {
    fn host_id(&self) -> &HostId {
        &self.host
    }

    async fn chat(
        &self,
        req: &ChatCompletionRequest,
        deployment: &ModelDeployment,
        call: &CallOptions,
    ) -> Result<ChatReply, UpstreamError> {
        let body = request::translate(req, self.door)?;
        let target = deployment.target.as_str();
        if req.is_stream() {
            let response = self
                .exchange(target, "streamGenerateContent", &body, true, call)
                .await?;
            let bytes = response
                .bytes_stream()
                .map(|r: Result<Bytes, reqwest::Error>| r.map_err(exchange::body_error));
            return Ok(ChatReply::Stream(stream::decode(
                bytes,
                stream::Options {
                    forward_usage: req.include_usage(),
                    model: target.to_owned(),
                    deadline: call.deadline,
                    secret: Some(self.secret.clone()),
                },
            )));
        }
        let response = self
            .exchange(target, "generateContent", &body, false, call)
            .await?;
        let body = exchange::read_body(response, call.deadline, MAX_REPLY_BYTES).await?;
        let (body, usage) = response::translate(&body, target, unix_now())?;
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
        let target = deployment.target.as_str();
        let plan = embeddings::Plan::new(req, target, self.door)?;
        let response = self
            .exchange(target, plan.method(), &plan.body, false, call)
            .await?;
        let body = exchange::read_body(response, call.deadline, MAX_REPLY_BYTES).await?;
        let (body, usage) = plan.translate(&body)?;
        Ok(EmbeddingsReply {
            body: Bytes::from(body),
            usage: Some(usage),
        })
    }

    async fn probe(&self, timeout: Duration) -> Result<(), UpstreamError> {
        let call = CallOptions {
            first_byte_timeout: timeout,
            deadline: Instant::now() + timeout,
            request_id: "health-probe".to_owned(),
            traceparent: None,
        };
        let request = match self.door {
            Door::GeminiApi => {
                let mut url = self.models.clone();
                url.set_query(Some("pageSize=1"));
                self.authed(self.http.get(url))
            }
            Door::Vertex => {
                // A host with no model is never routed to; nothing to check.
                let Some(model) = &self.probe_model else {
                    return Ok(());
                };
                let body = json!({"contents": [{"role": "user", "parts": [{"text": "ping"}]}]});
                self.post(
                    self.method_url(model, "countTokens", false),
                    body.to_string().into_bytes(),
                    false,
                    &call,
                )
            }
        };
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

/// Gemini's finish reasons as OpenAI finish reasons.
///
/// Safety and policy stops are `content_filter`; a stop with function
/// calls is `tool_calls`. `MALFORMED_FUNCTION_CALL` and
/// `UNEXPECTED_TOOL_CALL` leave no usable answer (the candidate is empty),
/// so instead of an empty `stop` that a client would take for a finished
/// turn they are an error: a 502 (the host's answer was unusable), which the
/// gateway may retry before anything reached the client, since the next
/// sample usually succeeds. Unknown and future reasons read as `stop`.
pub(crate) fn finish_reason(
    reason: Option<&str>,
    has_calls: bool,
) -> Result<&'static str, UpstreamError> {
    match reason {
        Some("MAX_TOKENS") => Ok("length"),
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "LANGUAGE"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION"
            | "IMAGE_OTHER",
        ) => Ok("content_filter"),
        Some(bad @ ("MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL")) => {
            Err(UpstreamError::Status {
                status: 502,
                retry_after: None,
                message: format!(
                    "The model produced an unusable function call (finishReason {bad})."
                ),
                code: Some(bad.to_owned()),
            })
        }
        // STOP, OTHER, FINISH_REASON_UNSPECIFIED, null and the unknown.
        _ if has_calls => Ok("tool_calls"),
        _ => Ok("stop"),
    }
}

/// The deadline error, shared by the stream decoder.
pub(crate) fn total_timeout() -> UpstreamError {
    UpstreamError::Timeout {
        phase: TimeoutPhase::Total,
    }
}

/// Tool call ids for one reply. Gemini's function calls carry no id Treaty
/// can rely on, so ids are made from the reply's `responseId` (or, without
/// one, a process-unique seed), the choice and the call's position: the
/// same call gets the same id wherever it is mentioned, and every id has
/// OpenAI's shape (`call_` and 24 hex digits), short enough for any host a
/// later turn of the conversation might be routed to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallIds {
    seed: u64,
}

impl CallIds {
    pub(crate) fn new(response_id: Option<&str>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let hasher = BuildHasherDefault::<DefaultHasher>::default();
        let seed = match response_id.filter(|id| !id.is_empty()) {
            Some(id) => hasher.hash_one(id),
            None => hasher.hash_one((
                NEXT.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            )),
        };
        CallIds { seed }
    }

    pub(crate) fn id(self, choice: u32, call: u32) -> String {
        let hasher = BuildHasherDefault::<DefaultHasher>::default();
        let high = hasher.hash_one((self.seed, choice, call));
        let low = hasher.hash_one((call, choice, self.seed)) >> 32;
        format!("call_{high:016x}{low:08x}")
    }

    /// The completion id when the reply has no `responseId`.
    pub(crate) fn completion_id(self, response_id: Option<&str>) -> String {
        match response_id.filter(|id| !id.is_empty()) {
            Some(id) => format!("chatcmpl-{id}"),
            None => format!("chatcmpl-gemini-{:016x}", self.seed),
        }
    }
}

//! The emulated Amazon Bedrock runtime: `POST /model/{modelId}/converse`,
//! `/converse-stream` (binary `application/vnd.amazon.eventstream` frames:
//! `messageStart`, `contentBlockStart/Delta/Stop`, `messageStop`,
//! `metadata`) and `/invoke` for Titan and Cohere embeddings, with or
//! without a leading host label; plus `POST /sts` (and `/{host}/sts`), an
//! STS `AssumeRoleWithWebIdentity` stand-in that hands out the emulator's
//! key pair with a session token.
//!
//! Every Bedrock request must carry a valid SigV4 signature for service
//! `bedrock` made with the configured key pair
//! ([`EmulatorConfig::aws_access_key_id`](crate::EmulatorConfig)): the
//! emulator re-signs the request as received with `aws-sigv4` (the
//! signer the AWS SDKs use) and compares, answering as Bedrock does (403
//! with `x-amzn-ErrorType: InvalidSignatureException`,
//! `UnrecognizedClientException` for an unknown key id). It never echoes a
//! key or a signature.
//!
//! The body is read loosely as `serde_json::Value`, restated in the Chat
//! Completions shape and answered by
//! [`ChatView::reply`](crate::reply::ChatView::reply), so every emulated
//! provider says the same deterministic thing. Faults come from
//! `x-emulator-fault`, a `[[fault:..]]` directive or the host's queue:
//! statuses in Bedrock's error shape (429 `ThrottlingException`, 503
//! `ServiceUnavailableException`, ...), `reset`, `delay`, `stall`, and for
//! streams `slow=MS` (per frame), `truncate=N` (cut after N content
//! frames) and `malformed` (a frame whose CRC does not match).

mod converse;
mod invoke;
mod sigv4;
mod sts;

use crate::app::Shared;
use crate::faults::Fault;
use crate::server::KillSwitch;
use crate::stream::Truncated;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static HOST_HEADER: HeaderName = HeaderName::from_static("x-emulator-host");
const FAULT_HEADER: &str = "x-emulator-fault";
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Adds the Bedrock and STS routes under `prefix` (`""` or `"/{host}"`).
pub(crate) fn routes(router: Router<Arc<Shared>>, prefix: &str) -> Router<Arc<Shared>> {
    router
        .route(
            &format!("{prefix}/model/{{model}}/converse"),
            post(|s: State<Arc<Shared>>, r: Request| handle(s, r, Action::Converse)),
        )
        .route(
            &format!("{prefix}/model/{{model}}/converse-stream"),
            post(|s: State<Arc<Shared>>, r: Request| handle(s, r, Action::ConverseStream)),
        )
        .route(
            &format!("{prefix}/model/{{model}}/invoke"),
            post(|s: State<Arc<Shared>>, r: Request| handle(s, r, Action::Invoke)),
        )
        .route(&format!("{prefix}/sts"), post(sts::sts))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Converse,
    ConverseStream,
    Invoke,
}

/// A Bedrock-shaped error: `{"message"}` and `x-amzn-ErrorType`.
#[derive(Debug)]
pub(crate) struct BedrockError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    retry_after: Option<u32>,
}

impl BedrockError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    fn signature(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "InvalidSignatureException", message)
    }

    /// The exception Bedrock answers `status` with.
    fn injected(status: StatusCode, retry_after: Option<u32>, host: &str) -> Self {
        let kind = match status.as_u16() {
            400 => "ValidationException",
            403 => "AccessDeniedException",
            404 => "ResourceNotFoundException",
            408 => "ModelTimeoutException",
            424 => "ModelErrorException",
            429 => "ThrottlingException",
            503 => "ServiceUnavailableException",
            _ => "InternalServerException",
        };
        let mut error = Self::new(
            status,
            kind,
            format!(
                "Emulated fault: host {host} answered {} as requested by the fault spec.",
                status.as_u16()
            ),
        );
        error.retry_after = retry_after;
        error
    }
}

impl IntoResponse for BedrockError {
    fn into_response(self) -> Response {
        let body = json!({ "message": self.message });
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body.to_string(),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        headers.insert("x-amzn-requestid", request_id_value());
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// What one Bedrock request carries.
struct BedrockRequest {
    host: String,
    model: String,
    method: Method,
    /// Path and query exactly as received (still percent-encoded).
    target: String,
    headers: HeaderMap,
    kill: Option<KillSwitch>,
    body: Bytes,
}

async fn read(shared: &Arc<Shared>, request: Request) -> Result<BedrockRequest, Response> {
    let (mut parts, body) = request.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, shared)
        .await
        .map_err(IntoResponse::into_response)?;
    let mut host = None;
    let mut model = String::new();
    for (key, value) in &params {
        match key {
            "host" => host = Some(value.to_owned()),
            "model" => model = value.to_owned(),
            _ => {}
        }
    }
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
    Ok(BedrockRequest {
        host: host.unwrap_or_else(|| "default".to_owned()),
        model,
        method: parts.method.clone(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        kill: parts.extensions.remove::<KillSwitch>(),
        headers: parts.headers,
        body,
    })
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request, action: Action) -> Response {
    let request = match read(&shared, request).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    shared.stats.hit(&request.host);
    let result = match action {
        Action::Converse | Action::ConverseStream => {
            converse::converse(&shared, &request, action == Action::ConverseStream).await
        }
        Action::Invoke => invoke::invoke(&shared, &request).await,
    };
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if let Ok(host) = HeaderValue::from_str(&request.host) {
        response.headers_mut().insert(HOST_HEADER.clone(), host);
    }
    response
}

fn pick_fault(
    shared: &Shared,
    request: &BedrockRequest,
    directive: Option<Result<Fault, crate::FaultParseError>>,
) -> Result<Fault, BedrockError> {
    if let Some(value) = request.headers.get(FAULT_HEADER) {
        let spec = value
            .to_str()
            .map_err(|_| BedrockError::validation("The x-emulator-fault header must be ASCII."))?;
        return Fault::parse(spec).map_err(|e| BedrockError::validation(e.to_string()));
    }
    if let Some(directive) = directive {
        return directive.map_err(|e| BedrockError::validation(e.to_string()));
    }
    Ok(shared.faults.take(&request.host).unwrap_or_default())
}

/// Faults that act before any response bytes.
async fn before_answer(fault: &Fault, request: &BedrockRequest) -> Result<(), BedrockError> {
    if let Some(delay) = fault.delay {
        tokio::time::sleep(delay).await;
    }
    if fault.reset {
        let Some(kill) = &request.kill else {
            return Err(BedrockError::validation(
                "Emulated fault: reset needs the emulator's own server (Emulator::start or serve).",
            ));
        };
        kill.trigger();
        return std::future::pending().await;
    }
    if let Some(status) = fault.status {
        return Err(BedrockError::injected(
            status,
            fault.retry_after,
            &request.host,
        ));
    }
    if let Some(stall) = fault.stall
        && fault.stall_after.is_none()
    {
        tokio::time::sleep(stall).await;
    }
    Ok(())
}

/// The emulated answer in Converse's terms.
fn json_response(body: String, fault: &Fault) -> Response {
    let json = |body: Body| {
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-amzn-requestid", request_id_value());
        response
    };
    if fault.malformed {
        return json(Body::from(Bytes::from_static(b"{\"output\": ")));
    }
    let body = Bytes::from(body);
    if fault.truncate.is_some() {
        let full = body.len();
        let half = body.slice(..full / 2);
        let parts = futures_util::stream::iter([Ok(half)])
            .chain(futures_util::stream::once(Truncated::after_flush()));
        let mut response = json(Body::from_stream(parts));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(full));
        return response;
    }
    json(Body::from(body))
}

/// A fresh, UUID-shaped request id (deterministic sequence, not random).
fn request_id_value() -> HeaderValue {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let text = format!("00000000-0000-4000-8000-{n:012x}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("emulated"))
}

//! The API pipeline behind every emulated route (OpenAI, OpenAI-compatible,
//! Azure deployment and Azure v1): count the request for its host label,
//! wait out the configured latency, check `api-version` and credentials,
//! read the body, pick the fault (header, then `[[fault:..]]` directive, then
//! the host's queue), apply it, and answer chat, embeddings or models. It
//! holds no lock across an await and logs nothing per request above debug.

use crate::app::{ApiRequest, Shared};
use crate::auth::{self, Flavor};
use crate::bulk;
use crate::completion;
use crate::embeddings::EmbeddingView;
use crate::error::ApiError;
use crate::faults::Fault;
use crate::reply::{ChatView, Content, Usage, completion_id, unix_now};
use crate::stream::{Pacing, StreamContent, StreamPlan, Truncated};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::Value;
use std::sync::Arc;

/// Names the emulated host that answered, on every API response.
static HOST_HEADER: HeaderName = HeaderName::from_static("x-emulator-host");
/// A per-request fault spec; wins over directives and queued faults.
const FAULT_HEADER: &str = "x-emulator-fault";

static MODELS: &[u8] = br#"{"object":"list","data":[{"id":"emulated-model","object":"model","created":0,"owned_by":"treaty-emulator"}]}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Embeddings,
    Models,
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    flavor: Flavor,
    request: ApiRequest,
) -> Response {
    shared.stats.hit(&request.host);
    let mut response = answer(&shared, endpoint, flavor, &request)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    if let Ok(host) = HeaderValue::from_str(&request.host) {
        response.headers_mut().insert(HOST_HEADER.clone(), host);
    }
    response
}

async fn answer(
    shared: &Shared,
    endpoint: Endpoint,
    flavor: Flavor,
    request: &ApiRequest,
) -> Result<Response, ApiError> {
    if !shared.config.latency.is_zero() {
        tokio::time::sleep(shared.config.latency).await;
    }
    if flavor == Flavor::AzureDeployment && !request.has_api_version {
        return Err(ApiError::azure_not_found());
    }
    auth::check(flavor, &request.headers, shared.config.api_key.as_deref())?;
    let header_fault = match request.headers.get(FAULT_HEADER) {
        None => None,
        Some(value) => {
            let spec = value.to_str().map_err(|_| {
                ApiError::invalid_request("The x-emulator-fault header must be ASCII.")
            })?;
            Some(Fault::parse(spec).map_err(|error| ApiError::invalid_request(error.to_string()))?)
        }
    };
    let host = request.host.as_str();
    let deployment = request.deployment.as_deref();
    match endpoint {
        Endpoint::Models => {
            let fault = pick_fault(shared, host, header_fault, None)?;
            before_answer(&fault, request, false).await?;
            Ok(json_response(Bytes::from_static(MODELS), &fault))
        }
        Endpoint::Embeddings => {
            let body = parse_json(&request.body)?;
            let view = EmbeddingView::parse(&body, deployment)?;
            let fault = pick_fault(shared, host, header_fault, None)?;
            before_answer(&fault, request, false).await?;
            let rendered = view.render().map_err(internal)?;
            Ok(json_response(Bytes::from(rendered), &fault))
        }
        Endpoint::Chat => {
            let body = parse_json(&request.body)?;
            let view = ChatView::parse(&body, deployment)?;
            let directive = Fault::from_directive(&view.last_user_text);
            let fault = pick_fault(shared, host, header_fault, directive)?;
            before_answer(&fault, request, view.stream).await?;
            chat(shared, host, &view, &fault)
        }
    }
}

fn chat(
    shared: &Shared,
    host: &str,
    view: &ChatView<'_>,
    fault: &Fault,
) -> Result<Response, ApiError> {
    let id = completion_id();
    let created = unix_now();
    if let Some(bytes) = fault.stream_bytes {
        let prompt_tokens = view.prompt_tokens();
        if !view.stream {
            return Ok(json_type(Response::new(bulk::completion_body(
                view.model,
                bytes,
                prompt_tokens,
            ))));
        }
        let usage = Usage::new(prompt_tokens, bulk::filler_words(bytes));
        return Ok(StreamPlan {
            id,
            created,
            model: view.model.to_owned(),
            n: 1,
            content: StreamContent::Filler(bytes),
            finish_reason: "stop",
            usage: view.include_usage.then_some(usage),
            pacing: pacing(shared, fault),
        }
        .into_response());
    }
    let reply = view.reply(host);
    if !view.stream {
        let body =
            completion::render(&id, created, view.model, view.n, &reply).map_err(internal)?;
        return Ok(json_response(Bytes::from(body), fault));
    }
    let content = match reply.content {
        Content::Text(text) => StreamContent::Text(text),
        Content::ToolCalls(calls) => StreamContent::ToolCalls(calls),
    };
    Ok(StreamPlan {
        id,
        created,
        model: view.model.to_owned(),
        n: view.n,
        content,
        finish_reason: reply.finish_reason,
        usage: view.include_usage.then_some(reply.usage),
        pacing: pacing(shared, fault),
    }
    .into_response())
}

fn pacing(shared: &Shared, fault: &Fault) -> Pacing {
    Pacing {
        chunk_delay: fault.slow.unwrap_or(shared.config.chunk_delay),
        stall: fault.stall_after.zip(fault.stall),
        truncate: fault.truncate,
        malformed: fault.malformed,
    }
}

/// The fault for this request: the header's, else the directive's, else one
/// use of the host's queued fault, else none. A higher source leaves the
/// queue untouched.
fn pick_fault(
    shared: &Shared,
    host: &str,
    header: Option<Fault>,
    directive: Option<Result<Fault, crate::FaultParseError>>,
) -> Result<Fault, ApiError> {
    if let Some(fault) = header {
        return Ok(fault);
    }
    if let Some(directive) = directive {
        return directive.map_err(|error| ApiError::invalid_request(error.to_string()));
    }
    Ok(shared.faults.take(host).unwrap_or_default())
}

/// The faults that act before any response bytes: extra delay, connection
/// reset, injected status, and a stall (unless a stream stalls mid-way).
async fn before_answer(fault: &Fault, request: &ApiRequest, stream: bool) -> Result<(), ApiError> {
    if let Some(delay) = fault.delay {
        tokio::time::sleep(delay).await;
    }
    if fault.reset {
        let Some(kill) = &request.kill else {
            return Err(ApiError::invalid_request(
                "Emulated fault: reset needs the emulator's own server (Emulator::start or serve).",
            ));
        };
        kill.trigger();
        // The connection task drops this future with the connection.
        return std::future::pending().await;
    }
    if let Some(status) = fault.status {
        return Err(ApiError::injected(status, fault.retry_after, &request.host));
    }
    if let Some(stall) = fault.stall
        && !(stream && fault.stall_after.is_some())
    {
        tokio::time::sleep(stall).await;
    }
    Ok(())
}

/// A finished JSON body, unless a fault spoils it: `malformed` sends invalid
/// JSON; `truncate` promises the full Content-Length, sends half, and aborts.
fn json_response(body: Bytes, fault: &Fault) -> Response {
    if fault.malformed {
        return json_type(Response::new(Body::from(Bytes::from_static(b"{\"id\": "))));
    }
    if fault.truncate.is_some() {
        let full = body.len();
        let half = body.slice(..full / 2);
        let parts = futures_util::stream::iter([Ok(half)])
            .chain(futures_util::stream::once(Truncated::after_flush()));
        let mut response = json_type(Response::new(Body::from_stream(parts)));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(full));
        return response;
    }
    json_type(Response::new(Body::from(body)))
}

fn json_type(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::invalid_request(format!(
            "We could not parse the JSON body of your request (emulator: {error})."
        ))
    })
}

fn internal(error: serde_json::Error) -> ApiError {
    ApiError::internal(format!(
        "The emulator could not render its response: {error}"
    ))
}

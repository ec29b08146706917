//! The middleware every request passes first: its id, and one log line
//! for a failed request.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use tracing::Instrument as _;

use crate::error::{Code, LoggedError};
use crate::headers::RequestId;

/// Gives each request an id, returns it as `x-request-id`, and logs
/// failed requests once, here, with their error code (never a secret: no
/// header or body is logged).
pub(crate) async fn request_envelope(mut req: Request, next: Next) -> Response {
    let id = format!("req_{}", uuid::Uuid::now_v7().simple());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let span = request_span(&req, &id);
    let mut res = next.run(req).instrument(span.clone()).await;
    if !span.is_none() {
        span.record("http.response.status_code", res.status().as_u16());
    }
    if let Some(err) = res.extensions().get::<LoggedError>() {
        let status = res.status().as_u16();
        // Server faults, and a host refusing Treaty's credentials (the
        // operator's to fix), are warnings; the client's mistakes are not.
        if status >= 500 || err.code == Code::UpstreamRejected {
            tracing::warn!(request_id = %id, %method, %path, status, code = ?err.code, message = %err.message, "request failed");
        } else {
            tracing::debug!(request_id = %id, %method, %path, status, code = ?err.code, message = %err.message, "request refused");
        }
    } else {
        tracing::trace!(request_id = %id, %method, %path, status = res.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

/// The request's server span, a child of the client's `traceparent` when
/// it sent one; `Span::none()` when spans are not exported, so tracing
/// off costs nothing per request.
fn request_span(req: &Request, id: &str) -> tracing::Span {
    if !treaty_telemetry::span::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {}", req.method(), req.uri().path()),
        otel.kind = "server",
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
        http.response.status_code = tracing::field::Empty,
        treaty.request_id = %id,
    );
    treaty_telemetry::span::follow_client(&span, req.headers());
    span
}

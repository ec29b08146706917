//! The middleware every request passes first: its id, and one log line
//! for a failed request.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

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
    let mut res = next.run(req).await;
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

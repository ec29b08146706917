//! The `/_emulator` control API: queue faults for a host's next requests,
//! clear them, and read or reset per-host request counts. Control routes
//! need no credential, are never counted, and never see injected faults.

use crate::app::Shared;
use crate::error::ApiError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// `POST /_emulator/faults` body: `{"host":"azure-eastus","fault":"status=503","count":2}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueFault {
    #[serde(default)]
    host: Option<String>,
    fault: String,
    /// Requests the fault applies to; absent or null means until cleared.
    #[serde(default)]
    count: Option<u32>,
}

pub(crate) async fn queue_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: QueueFault = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return ApiError::invalid_request(format!(
                "Expected {{\"host\":\"azure-eastus\",\"fault\":\"status=503\",\"count\":2}} \
                 (count optional): {error}"
            ))
            .into_response();
        }
    };
    let host = request.host.as_deref().unwrap_or("default");
    match shared.queue_fault(host, &request.fault, request.count) {
        Ok(()) => Json(serde_json::json!({
            "queued": {"host": host, "fault": request.fault, "count": request.count}
        }))
        .into_response(),
        Err(error) => ApiError::invalid_request(error.to_string()).into_response(),
    }
}

pub(crate) async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.faults.clear();
    StatusCode::NO_CONTENT
}

pub(crate) async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(serde_json::json!({ "requests": shared.stats.snapshot() })).into_response()
}

pub(crate) async fn reset_stats(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.stats.reset();
    StatusCode::NO_CONTENT
}

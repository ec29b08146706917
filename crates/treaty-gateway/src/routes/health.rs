//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::{ApiError, Code};
use crate::gateway::Gateway;

/// The process is up.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The process can serve: the store answers and hosts are configured.
pub(crate) async fn ready(State(gw): State<Gateway>) -> Result<Json<Value>, ApiError> {
    let engine = &gw.engine;
    engine.store.ping().await.map_err(|e| {
        ApiError::new(
            Code::StoreUnavailable,
            format!("The store is not ready: {e}"),
        )
    })?;
    if engine.config.hosts.is_empty() {
        return Err(ApiError::new(
            Code::NoHostAvailable,
            "No hosts are configured.",
        ));
    }
    Ok(Json(
        json!({"status": "ready", "hosts": engine.config.hosts.len()}),
    ))
}

/// Prometheus metrics (OpenMetrics text). Unauthenticated like `/health`:
/// no tenant or key ids unless `telemetry.tenant_labels` is on.
pub(crate) async fn metrics(State(gw): State<Gateway>) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            treaty_telemetry::CONTENT_TYPE,
        )],
        gw.engine.render_metrics(),
    )
        .into_response()
}

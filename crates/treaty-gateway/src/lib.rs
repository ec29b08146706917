//! Treaty's HTTP API: the OpenAI-compatible gateway and the admin API.
//!
//! [`app`] builds the whole axum application from a [`Gateway`]; tests call
//! it in-process and the CLI serves it. A request flows: request id and
//! logging middleware → body limit → handler (authenticate the virtual
//! key, parse and validate the body, build the [`treaty_domain::
//! RequestContext`], let the router plan hosts, walk the plan in
//! [`upstream`], answer plainly or as SSE) → outcome record. Every error
//! leaves through [`error::ApiError`] in the OpenAI shape.
//!
//! Nothing here holds a lock across an await or touches disk per request
//! except the key store on a cache miss.

mod auth;
mod body;
pub mod error;
pub mod outcome;
mod pipeline;
pub mod policy;
pub(crate) mod routes;
pub mod runtime;
mod sse;
mod state;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
pub use sse::StreamSummary;
pub use state::{BuildError, Gateway};
use tokio::net::TcpListener;

use crate::error::{ApiError, Code, LoggedError};

/// The id of one request, made by the middleware and returned to the
/// client as `x-request-id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Builds the HTTP application.
pub fn app(gw: std::sync::Arc<Gateway>) -> Router {
    let limit = gw.config.server.max_body_bytes;
    Router::new()
        .route("/v1/chat/completions", post(routes::chat::chat_completions))
        .route("/v1/embeddings", post(routes::embeddings::embeddings))
        .route("/v1/responses", post(runtime::responses::create))
        .route(
            "/v1/responses/{id}",
            get(runtime::responses::retrieve).delete(runtime::responses::delete),
        )
        .route(
            "/v1/responses/{id}/cancel",
            post(runtime::responses::cancel),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(runtime::responses::input_items_list),
        )
        .route("/v1/conversations", post(runtime::conversations::create))
        .route(
            "/v1/conversations/{id}",
            get(runtime::conversations::retrieve)
                .post(runtime::conversations::update)
                .delete(runtime::conversations::delete),
        )
        .route(
            "/v1/conversations/{id}/items",
            get(runtime::conversations::list_items).post(runtime::conversations::create_items),
        )
        .route(
            "/v1/conversations/{id}/items/{item_id}",
            get(runtime::conversations::retrieve_item).delete(runtime::conversations::delete_item),
        )
        .route(
            "/v1/agents",
            post(runtime::agents::create).get(runtime::agents::list),
        )
        .route(
            "/v1/agents/{id}",
            get(runtime::agents::retrieve)
                .post(runtime::agents::update)
                .delete(runtime::agents::delete),
        )
        .route("/v1/agents/{id}/runs", post(runtime::runs::create))
        .route("/v1/runs", get(runtime::runs::list))
        .route("/v1/runs/{id}", get(runtime::runs::retrieve))
        .route("/v1/runs/{id}/cancel", post(runtime::runs::cancel))
        .route(
            "/v1/runs/{id}/submit_tool_outputs",
            post(runtime::runs::submit_tool_outputs),
        )
        .route("/v1/runs/{id}/approve", post(runtime::runs::approve))
        .route("/v1/runs/{id}/events", get(runtime::runs::events))
        .route("/v1/models", get(routes::models::list))
        .route("/v1/models/{model}", get(routes::models::retrieve))
        .route("/health", get(routes::health::health))
        .route("/ready", get(routes::health::ready))
        .route("/openapi.json", get(routes::openapi::document))
        .route(
            "/admin/keys",
            post(routes::admin::create_key).get(routes::admin::list_keys),
        )
        .route("/admin/keys/{id}", delete(routes::admin::revoke_key))
        .route("/admin/explain", post(routes::admin::explain))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(request_envelope))
        .with_state(gw)
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        Code::UnknownUrl,
        format!("Unknown request URL: {method} {}.", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        format!("Method {method} is not allowed on {}.", uri.path()),
    )
}

/// Gives each request an id, returns it as `x-request-id`, and logs
/// failed requests once, here, with their error code (never a secret: no
/// header or body is logged).
async fn request_envelope(mut req: Request, next: Next) -> Response {
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
        if status >= 500 || err.code == crate::error::Code::UpstreamRejected {
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

/// Serves `app` on `listener` until `shutdown` resolves, then finishes
/// in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Streamed chunks are small writes: without TCP_NODELAY, Nagle's
    // algorithm and the client's delayed ACK add ~40 ms stalls.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

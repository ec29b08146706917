//! The route table: every path Treaty answers, and the fallbacks that
//! answer the rest in the OpenAI error shape.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware;
use axum::routing::{delete, get, post};

use crate::error::{ApiError, Code};
use crate::gateway::Gateway;
use crate::head::{HeadLimits, within_limits};
use crate::routes;

/// Builds the HTTP application.
pub fn app(gw: Gateway) -> Router {
    let limit = gw.engine.config.server.max_body_bytes;
    let ui = treaty_ui::router(
        gw.engine.clone(),
        gw.runtime.clone(),
        treaty_ui::Settings {
            session_idle: gw.engine.config.server.ui_session_idle,
        },
    );
    let head = HeadLimits::from_config(&gw.engine.config.server);
    Router::new()
        // The admin web UI: its own pages, sessions and errors (HTML).
        .nest_service("/ui", ui)
        .route("/v1/chat/completions", post(routes::chat::chat_completions))
        .route("/v1/embeddings", post(routes::embeddings::embeddings))
        .route("/v1/responses", post(routes::responses::create))
        .route(
            "/v1/responses/{id}",
            get(routes::responses::retrieve).delete(routes::responses::delete),
        )
        .route("/v1/responses/{id}/cancel", post(routes::responses::cancel))
        .route(
            "/v1/responses/{id}/input_items",
            get(routes::responses::input_items),
        )
        .route("/v1/conversations", post(routes::conversations::create))
        .route(
            "/v1/conversations/{id}",
            get(routes::conversations::retrieve)
                .post(routes::conversations::update)
                .delete(routes::conversations::delete),
        )
        .route(
            "/v1/conversations/{id}/items",
            get(routes::conversations::list_items).post(routes::conversations::create_items),
        )
        .route(
            "/v1/conversations/{id}/items/{item_id}",
            get(routes::conversations::retrieve_item).delete(routes::conversations::delete_item),
        )
        .route(
            "/v1/agents",
            post(routes::agents::create).get(routes::agents::list),
        )
        .route(
            "/v1/agents/{id}",
            get(routes::agents::retrieve)
                .post(routes::agents::update)
                .delete(routes::agents::delete),
        )
        .route("/v1/agents/{id}/runs", post(routes::agents::run))
        .route("/v1/runs", get(routes::runs::list))
        .route("/v1/runs/{id}", get(routes::runs::retrieve))
        .route("/v1/runs/{id}/cancel", post(routes::runs::cancel))
        .route(
            "/v1/runs/{id}/submit_tool_outputs",
            post(routes::runs::submit_tool_outputs),
        )
        .route("/v1/runs/{id}/approve", post(routes::runs::approve))
        .route("/v1/runs/{id}/events", get(routes::runs::events))
        .route("/v1/ledger/proofs/{request_id}", get(routes::ledger::proof))
        .route("/v1/models", get(routes::models::list))
        .route("/v1/models/{model}", get(routes::models::retrieve))
        .route("/health", get(routes::health::health))
        .route("/ready", get(routes::health::ready))
        .route("/metrics", get(routes::health::metrics))
        .route("/openapi.json", get(routes::openapi::document))
        .route(
            "/admin/keys",
            post(routes::admin::create_key).get(routes::admin::list_keys),
        )
        .route("/admin/keys/{id}", delete(routes::admin::revoke_key))
        .route(
            "/admin/budgets",
            post(routes::admin::set_budget).get(routes::admin::list_budgets),
        )
        .route("/admin/budgets/{id}", delete(routes::admin::remove_budget))
        .route("/admin/explain", post(routes::admin::explain))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(head, within_limits))
        .layer(middleware::from_fn(crate::envelope::request_envelope))
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

//! `GET /openapi.json`: the OpenAPI 3.1 description of this HTTP API.
//!
//! The document is `openapi.json` at the crate's root, embedded at build
//! time so the binary serves exactly the API it was built with;
//! `tests/openapi.rs` checks it against the router and real responses.
//! Like `/health`, it needs no key: it describes the API, not any tenant.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

static DOCUMENT: &str = include_str!("../../openapi.json");

pub(crate) async fn document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT,
    )
        .into_response()
}

//! The one public error contract, rendered.
//!
//! Every HTTP error Treaty returns leaves through [`ApiError`]'s
//! `IntoResponse`, in OpenAI's shape `{"error":{"message","type","param",
//! "code"}}`, so the official SDKs raise the right exception class. The
//! status, type and code come from the engine's one table
//! ([`treaty_engine::Code`]). Errors are logged by the middleware in
//! `lib.rs`, not here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
pub use treaty_engine::{Code, Error};

/// An engine [`Error`] on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError(Error::new(code, message))
    }

    pub fn invalid(message: impl Into<String>, param: Option<String>) -> Self {
        ApiError(Error::invalid(message, param))
    }
}

/// Put in the response's extensions so the logging middleware can say
/// what failed without parsing the body.
#[derive(Debug, Clone)]
pub struct LoggedError {
    pub code: Code,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&e.body()).unwrap_or_default();
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = e.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(clauses) = &e.clauses
            && let Ok(v) = HeaderValue::from_str(clauses)
        {
            h.insert("x-treaty-clauses", v);
        }
        if let Some(receipt) = &e.receipt
            && let Ok(v) = HeaderValue::from_str(receipt)
        {
            h.insert(crate::headers::RECEIPT, v);
        }
        if let Some(rate) = &e.rate {
            crate::headers::rate_limits(h, rate);
        }
        res.extensions_mut().insert(LoggedError {
            code: e.code,
            message: e.message,
        });
        res
    }
}

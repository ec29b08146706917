//! Reading and parsing request bodies into typed requests.
//!
//! The size limit is enforced by axum's `DefaultBodyLimit` while the body
//! is read; this module turns that and every parse failure into the
//! OpenAI-shaped 413 or 400, before anything else happens.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Code};

pub(crate) fn parse<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                Code::RequestTooLarge,
                format!("The request body is larger than the limit of {limit} bytes."),
            )
        } else {
            ApiError::invalid(
                format!("Could not read the request body: {rejection}."),
                None,
            )
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(
            "The request body is empty; send a JSON object.",
            None,
        ));
    }
    treaty_openai::parse_json(&bytes).map_err(|e| ApiError::invalid(e.message, e.param))
}

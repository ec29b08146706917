//! Reading and parsing request bodies (and query strings and path
//! parameters) into typed requests.
//!
//! The size limit is enforced by axum's `DefaultBodyLimit` while the body
//! is read, and the whole body must arrive within
//! `server.body_read_timeout`; this module turns those and every parse
//! failure into the OpenAI-shaped 413, 408 or 400, before anything else
//! happens.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Code};
use crate::gateway::Gateway;

/// A JSON body parsed into `T`, or the OpenAI-shaped 413 or 400. Being a
/// body extractor it runs after the caller's key was checked.
#[derive(Debug)]
pub(crate) struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Gateway> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, gw: &Gateway) -> Result<Self, ApiError> {
        let server = &gw.engine.config.server;
        let limit = server.max_body_bytes;
        let wait = server.body_read_timeout;
        let read = tokio::time::timeout(wait, Bytes::from_request(req, gw))
            .await
            .map_err(|_| {
                ApiError::new(
                    Code::RequestTimeout,
                    format!(
                        "The request body did not arrive within {}s.",
                        wait.as_secs_f64()
                    ),
                )
            })?;
        let bytes = read.map_err(|rejection| {
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
        treaty_openai::parse_json(&bytes)
            .map(Json)
            .map_err(|e| ApiError::invalid(e.message, e.param))
    }
}

/// axum's `Query`, refusing a query string it cannot read with the
/// OpenAI-shaped 400 instead of axum's plain-text one.
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(q)) => Ok(Query(q)),
            Err(rejection) => Err(ApiError::invalid(
                format!("Invalid query string: {}.", rejection.body_text()),
                None,
            )),
        }
    }
}

/// axum's `Path`, refusing a path segment it cannot read (invalid UTF-8
/// after percent-decoding, say) with the OpenAI-shaped 400.
pub(crate) struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(p)) => Ok(Path(p)),
            Err(rejection) => Err(ApiError::invalid(
                format!("Invalid URL path: {}.", rejection.body_text()),
                None,
            )),
        }
    }
}

//! Reading and parsing request bodies (and query strings and path
//! parameters) into typed requests.
//!
//! A body must be declared `application/json` and sent without a content
//! coding (415 otherwise: Treaty does not decompress, so a compressed body
//! can never expand past the size limit). The size limit is enforced by
//! axum's `DefaultBodyLimit` while the body is read, and the whole body
//! must arrive within `server.body_read_timeout`; this module turns those
//! and every parse failure into the OpenAI-shaped 415, 413, 408 or 400,
//! before anything else happens.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Code};
use crate::gateway::Gateway;

/// A JSON body parsed into `T`, or the OpenAI-shaped 415, 413, 408 or
/// 400. Being a body extractor it runs after the caller's key was checked.
#[derive(Debug)]
pub(crate) struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Gateway> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, gw: &Gateway) -> Result<Self, ApiError> {
        json_declared(req.headers())?;
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

/// Refuses a body not declared as JSON, or sent with a content coding,
/// with 415: parsing form data or text as JSON would answer a confusing
/// 400, and a compressed body would be read as bytes of garbage.
fn json_declared(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(declared) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported(
            "Request bodies must be JSON, sent with 'Content-Type: application/json'; \
             the request has no Content-Type.",
        ));
    };
    let essence = declared
        .to_str()
        .ok()
        .and_then(|t| t.split(';').next())
        .map(str::trim);
    if !essence.is_some_and(|t| t.eq_ignore_ascii_case("application/json")) {
        return Err(unsupported(format!(
            "Request bodies must be JSON, sent with 'Content-Type: application/json'; got '{}'.",
            String::from_utf8_lossy(declared.as_bytes())
        )));
    }
    for coding in headers.get_all(header::CONTENT_ENCODING) {
        let identity = coding.to_str().is_ok_and(|c| {
            c.split(',')
                .all(|c| c.trim().eq_ignore_ascii_case("identity"))
        });
        if !identity {
            return Err(unsupported(format!(
                "Content-Encoding '{}' is not supported: send the body uncompressed.",
                String::from_utf8_lossy(coding.as_bytes()).trim()
            )));
        }
    }
    Ok(())
}

fn unsupported(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::UnsupportedMediaType, message)
}

/// A query string parsed into `T`, or the OpenAI-shaped 400 naming the
/// parameter.
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        treaty_openai::parse_query(parts.uri.query().unwrap_or_default())
            .map(Query)
            .map_err(|e| ApiError::invalid(e.message, e.param))
    }
}

/// axum's `Path`, refusing a path segment it cannot read (invalid UTF-8
/// after percent-decoding, say) with the OpenAI-shaped 400.
pub(crate) struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(p)) => Ok(Path(p)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let message = match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key } => format!(
                        "Invalid URL path: the '{key}' segment is not valid UTF-8 once \
                         percent-decoded."
                    ),
                    _ => "Invalid URL path.".to_owned(),
                };
                Err(ApiError::invalid(message, None))
            }
            Err(_) => Err(ApiError::invalid("Invalid URL path.", None)),
        }
    }
}

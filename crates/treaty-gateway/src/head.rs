//! The request head's size limits: a URL longer than
//! `server.max_uri_bytes` is refused with 414, a header block larger than
//! `server.max_header_bytes` with 431, both in the OpenAI shape.
//!
//! hyper would answer both itself, with empty bodies the SDKs cannot read,
//! so [`crate::serve`] gives it room for a head past these limits (see
//! its `HEAD_BUFFER`) and the limits are enforced here instead. This runs
//! before the key is checked: a client learns the head is too large
//! whoever it is, and nothing else about the request is read.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Code};

/// The two limits, read from the config once when the app is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
}

impl HeadLimits {
    pub fn from_config(server: &treaty_config::ServerConfig) -> HeadLimits {
        HeadLimits {
            max_uri_bytes: server.max_uri_bytes,
            max_header_bytes: server.max_header_bytes,
        }
    }
}

/// Refuses a request whose URL or header block is over the limits.
pub(crate) async fn within_limits(
    State(limits): State<HeadLimits>,
    req: Request,
    next: Next,
) -> Response {
    let uri = req.uri();
    let uri_bytes = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if uri_bytes > limits.max_uri_bytes {
        return ApiError::new(
            Code::UriTooLong,
            format!(
                "The request URL is {uri_bytes} bytes long, over this gateway's limit of {} bytes.",
                limits.max_uri_bytes
            ),
        )
        .into_response();
    }
    // As on the wire: `name: value` and a line break per header.
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        return ApiError::new(
            Code::HeadersTooLarge,
            format!(
                "The request headers are {header_bytes} bytes, over this gateway's limit of {} bytes.",
                limits.max_header_bytes
            ),
        )
        .into_response();
    }
    next.run(req).await
}

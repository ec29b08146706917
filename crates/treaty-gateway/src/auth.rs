//! Who is calling: the virtual key from `Authorization: Bearer` (or the
//! Azure-style `api-key` header, which some SDKs send).

use std::sync::Arc;

use axum::http::HeaderMap;
use treaty_keys::{AuthError, VerifiedKey};

use crate::error::{ApiError, Code};
use crate::state::Gateway;

/// The secret the client presented, or "" when none.
pub(crate) fn presented_key(headers: &HeaderMap) -> &str {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION)
        && let Ok(v) = v.to_str()
    {
        let v = v.trim();
        if let Some(rest) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return rest.trim();
        }
        return "";
    }
    headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("")
}

pub(crate) async fn authenticate(
    gw: &Gateway,
    headers: &HeaderMap,
) -> Result<Arc<VerifiedKey>, ApiError> {
    gw.keys
        .check(presented_key(headers))
        .await
        .map_err(|e| match e {
            AuthError::Store(_) => ApiError::new(Code::StoreUnavailable, e.to_string()),
            other => ApiError::new(Code::InvalidApiKey, other.to_string()),
        })
}

//! Who is calling, read from the request: the virtual key from
//! `Authorization: Bearer` (or the Azure-style `api-key` header, which some
//! SDKs send), checked by the engine, with the client's hints from
//! `x-treaty-*` headers; and the admin token for the admin API.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use treaty_engine::{Caller, Code};
use treaty_policy::Hints;

use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::headers::{DATA_CLASSIFICATION, DECLARED_CLASS, PREFER_HOST, RequestId};

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

/// A header's value as text; a value that is not text is kept as "" so it
/// is refused as unknown rather than ignored.
fn hint(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("").to_owned())
}

/// The client's hints beside its body.
pub(crate) fn hints(headers: &HeaderMap) -> Hints {
    Hints {
        declared_class: hint(headers, DECLARED_CLASS),
        data_classification: hint(headers, DATA_CLASSIFICATION),
        prefer_host: hint(headers, PREFER_HOST),
    }
}

/// The client's address, when the server was started with connection
/// info (it always is by [`crate::serve`]).
fn client_addr(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// An authenticated caller: 401 in the OpenAI shape otherwise.
#[derive(Debug)]
pub(crate) struct ApiKey(pub Caller);

impl FromRequestParts<Gateway> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, ApiError> {
        let key = gw
            .engine
            .authenticate_from(presented_key(&parts.headers), client_addr(parts))
            .await?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        Ok(ApiKey(Caller {
            key,
            request_id,
            hints: hints(&parts.headers),
        }))
    }
}

/// The admin token: 403 when the admin API is disabled, 401 when the
/// token is wrong. Carries who is acting, for the ledger's admin records:
/// the token holder at the client's address.
#[derive(Debug)]
pub(crate) struct Admin {
    pub actor: String,
}

impl FromRequestParts<Gateway> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, ApiError> {
        let engine = &gw.engine;
        if !engine.admin_enabled() {
            return Err(ApiError::new(
                Code::AdminDisabled,
                format!(
                    "The admin API is disabled: set {} to enable it.",
                    engine.config.server.admin_token_env
                ),
            ));
        }
        let guard = engine.limits.auth().zip(client_addr(parts));
        if let Some((guard, addr)) = guard
            && let Err(wait) = guard.check(addr)
        {
            return Err(too_many_failures(wait));
        }
        if !engine.admin_token_matches(presented_key(&parts.headers)) {
            if let Some((guard, addr)) = guard
                && let Err(wait) = guard.failed(addr)
            {
                return Err(too_many_failures(wait));
            }
            return Err(ApiError::new(
                Code::AdminUnauthorized,
                "Invalid admin token.",
            ));
        }
        let actor = match client_addr(parts) {
            Some(addr) => format!("admin-api@{addr}"),
            None => "admin-api".to_owned(),
        };
        Ok(Admin { actor })
    }
}

fn too_many_failures(wait: std::time::Duration) -> ApiError {
    let secs = wait.as_millis().div_ceil(1000).max(1) as u64;
    let mut e = treaty_engine::Error::new(
        Code::AuthFailuresLimited,
        format!(
            "Too many failed authentication attempts from this address. Please try again in {secs}s."
        ),
    );
    e.retry_after = Some(secs);
    ApiError(e)
}

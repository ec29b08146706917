//! Credentials as each emulated provider expects them: OpenAI and
//! OpenAI-compatible hosts take `Authorization: Bearer K`; Azure OpenAI takes
//! an `api-key` header or a bearer (Entra) token. Any non-empty key passes
//! unless the emulator was configured with one. Rejections never echo the
//! presented key.

use crate::error::ApiError;
use axum::http::{HeaderMap, header};

/// Which provider's wire conventions a route follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `/v1/...`: OpenAI and OpenAI-compatible hosts.
    OpenAi,
    /// `/openai/deployments/{deployment}/...?api-version=...`
    AzureDeployment,
    /// `/openai/v1/...` with the model in the body.
    AzureV1,
}

pub(crate) fn check(
    flavor: Flavor,
    headers: &HeaderMap,
    expected: Option<&str>,
) -> Result<(), ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    let presented = match flavor {
        Flavor::OpenAi => bearer,
        Flavor::AzureDeployment | Flavor::AzureV1 => headers
            .get("api-key")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .or(bearer),
    };
    let Some(presented) = presented else {
        return Err(ApiError::unauthorized(match flavor {
            Flavor::OpenAi => {
                "Emulated provider: you didn't provide an API key. Send it in an \
                 Authorization header using Bearer auth (Authorization: Bearer YOUR_KEY)."
            }
            Flavor::AzureDeployment | Flavor::AzureV1 => {
                "Emulated Azure OpenAI: access denied because the api-key header \
                 or an Authorization: Bearer token is missing."
            }
        }));
    };
    match expected {
        Some(expected) if presented != expected => Err(ApiError::unauthorized(
            "Emulated provider: incorrect API key provided.",
        )),
        _ => Ok(()),
    }
}

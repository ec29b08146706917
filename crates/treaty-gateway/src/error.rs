//! The one public error contract.
//!
//! Every HTTP error Treaty returns leaves through [`ApiError`]'s
//! `IntoResponse`, in OpenAI's shape `{"error":{"message","type","param",
//! "code"}}`, so the official SDKs raise the right exception class. The
//! table in [`Code`] is the only place a failure is given its status, type
//! and code. Errors are logged by the middleware in `lib.rs`, not here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use treaty_openai::{ErrorBody, ErrorObject};

/// What went wrong, as a client can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidRequest,
    RequestTooLarge,
    InvalidApiKey,
    ModelNotFound,
    UnknownUrl,
    MethodNotAllowed,
    NotFound,
    AdminDisabled,
    AdminUnauthorized,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamError,
    UpstreamTimeout,
    NoHostAvailable,
    ContractRefused,
    ClassDeclarationRefused,
    AllowedHostsUnavailable,
    StoreUnavailable,
    LedgerUnavailable,
    Internal,
}

impl Code {
    /// (HTTP status, OpenAI `type`, `code`).
    fn table(self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Code::InvalidRequest => (S::BAD_REQUEST, "invalid_request_error", "invalid_request"),
            Code::RequestTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
            ),
            Code::InvalidApiKey => (S::UNAUTHORIZED, "invalid_request_error", "invalid_api_key"),
            Code::ModelNotFound => (S::NOT_FOUND, "invalid_request_error", "model_not_found"),
            Code::UnknownUrl => (S::NOT_FOUND, "invalid_request_error", "unknown_url"),
            Code::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
            ),
            Code::NotFound => (S::NOT_FOUND, "invalid_request_error", "not_found"),
            Code::AdminDisabled => (S::FORBIDDEN, "permission_error", "admin_disabled"),
            Code::AdminUnauthorized => (
                S::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_admin_token",
            ),
            Code::UpstreamRateLimited => (
                S::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "upstream_rate_limited",
            ),
            Code::UpstreamRejected => (S::FORBIDDEN, "permission_error", "upstream_auth_failed"),
            Code::UpstreamError => (S::BAD_GATEWAY, "upstream_error", "upstream_error"),
            Code::UpstreamTimeout => (S::GATEWAY_TIMEOUT, "upstream_error", "upstream_timeout"),
            Code::NoHostAvailable => (
                S::SERVICE_UNAVAILABLE,
                "upstream_error",
                "no_host_available",
            ),
            Code::ContractRefused => (S::FORBIDDEN, "permission_error", "contract_refused"),
            Code::ClassDeclarationRefused => (
                S::FORBIDDEN,
                "permission_error",
                "class_declaration_refused",
            ),
            Code::AllowedHostsUnavailable => (
                S::SERVICE_UNAVAILABLE,
                "upstream_error",
                "allowed_hosts_unavailable",
            ),
            Code::StoreUnavailable => (S::SERVICE_UNAVAILABLE, "server_error", "store_unavailable"),
            Code::LedgerUnavailable => {
                (S::SERVICE_UNAVAILABLE, "server_error", "ledger_unavailable")
            }
            Code::Internal => (S::INTERNAL_SERVER_ERROR, "server_error", "internal_error"),
        }
    }

    pub fn status(self) -> StatusCode {
        self.table().0
    }

    /// The OpenAI-style `code` string.
    pub fn as_str(self) -> &'static str {
        self.table().2
    }
}

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub param: Option<String>,
    /// Seconds, for 429s and 503s.
    pub retry_after: Option<u64>,
    /// An upstream status passed on as-is (a 400 from the host about the
    /// request's content), overriding the table's status.
    pub status_override: Option<StatusCode>,
    /// Clause ids behind a contract refusal, sent as `x-treaty-clauses`.
    pub clauses: Option<String>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            status_override: None,
            clauses: None,
        }
    }

    pub fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }

    pub fn with_clauses(mut self, clauses: String) -> Self {
        self.clauses = Some(clauses);
        self
    }

    pub fn invalid(message: impl Into<String>, param: Option<String>) -> Self {
        ApiError {
            param,
            ..ApiError::new(Code::InvalidRequest, message)
        }
    }

    pub fn model_not_found(model: &str) -> Self {
        ApiError {
            param: Some("model".into()),
            ..ApiError::new(
                Code::ModelNotFound,
                format!("The model '{model}' does not exist or you do not have access to it."),
            )
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status_override.unwrap_or(self.code.status())
    }

    pub fn body(&self) -> ErrorBody {
        let (_, kind, code) = self.code.table();
        ErrorBody {
            error: ErrorObject {
                message: self.message.clone(),
                kind: kind.to_owned(),
                param: self.param.clone(),
                code: Some(code.to_owned()),
            },
        }
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
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut res = (self.status(), body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(clauses) = &self.clauses
            && let Ok(v) = HeaderValue::from_str(clauses)
        {
            res.headers_mut().insert("x-treaty-clauses", v);
        }
        res.extensions_mut().insert(LoggedError {
            code: self.code,
            message: self.message,
        });
        res
    }
}

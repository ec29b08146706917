//! The one place emulated API errors leave: an [`ApiError`] names the HTTP
//! status and the wire shape (OpenAI's `{"error":{message,type,param,code}}`
//! or Azure's terse `{"error":{code,message}}`) and renders it. Messages say
//! they come from the emulator and never echo a credential back.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::borrow::Cow;

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: Cow<'static, str>,
    shape: Shape,
    retry_after: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    OpenAi {
        kind: &'static str,
        code: Option<&'static str>,
        param: Option<&'static str>,
    },
    Azure {
        code: &'static str,
    },
}

impl ApiError {
    /// 400 `invalid_request_error`, the answer to anything the emulator cannot read.
    pub(crate) fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::openai(
            StatusCode::BAD_REQUEST,
            message,
            "invalid_request_error",
            None,
        )
    }

    /// 400 naming the offending request field in `param`.
    pub(crate) fn invalid_param(
        param: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        let mut error = Self::invalid_request(message);
        if let Shape::OpenAi { param: slot, .. } = &mut error.shape {
            *slot = Some(param);
        }
        error
    }

    /// 401 `invalid_api_key`.
    pub(crate) fn unauthorized(message: &'static str) -> Self {
        Self::openai(
            StatusCode::UNAUTHORIZED,
            message,
            "invalid_request_error",
            Some("invalid_api_key"),
        )
    }

    /// 401 for a webhook call whose signature does not verify.
    pub(crate) fn bad_signature() -> Self {
        Self::openai(
            StatusCode::UNAUTHORIZED,
            "Emulated webhook: missing, stale or invalid X-Treaty-Signature.",
            "invalid_request_error",
            Some("invalid_signature"),
        )
    }

    /// 500 `server_error` for a failure inside the emulator itself.
    pub(crate) fn internal(message: String) -> Self {
        Self::openai(
            StatusCode::INTERNAL_SERVER_ERROR,
            message,
            "server_error",
            None,
        )
    }

    /// 404 for a path no emulated provider serves.
    pub(crate) fn not_found() -> Self {
        Self::openai(
            StatusCode::NOT_FOUND,
            "Emulated provider: no such route. Try /v1/chat/completions, /v1/embeddings, \
             /v1/models or /openai/deployments/{deployment}/chat/completions?api-version=...",
            "invalid_request_error",
            Some("unknown_url"),
        )
    }

    /// Azure's answer when the `api-version` query parameter is missing.
    pub(crate) fn azure_not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: Cow::Borrowed("Resource not found"),
            shape: Shape::Azure { code: "404" },
            retry_after: None,
        }
    }

    /// A status injected by a fault spec, typed the way OpenAI types that status.
    pub(crate) fn injected(status: StatusCode, retry_after: Option<u32>, host: &str) -> Self {
        let (kind, code) = if status == StatusCode::TOO_MANY_REQUESTS {
            ("rate_limit_error", Some("rate_limit_exceeded"))
        } else if status.is_server_error() {
            ("server_error", None)
        } else {
            ("invalid_request_error", None)
        };
        let message = format!(
            "Emulated fault: host {host} answered {} as requested by the fault spec.",
            status.as_u16()
        );
        let mut error = Self::openai(status, message, kind, code);
        error.retry_after = retry_after;
        error
    }

    fn openai(
        status: StatusCode,
        message: impl Into<Cow<'static, str>>,
        kind: &'static str,
        code: Option<&'static str>,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            shape: Shape::OpenAi {
                kind,
                code,
                param: None,
            },
            retry_after: None,
        }
    }
}

#[derive(Serialize)]
struct Envelope<T> {
    error: T,
}

#[derive(Serialize)]
struct OpenAiBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

#[derive(Serialize)]
struct AzureBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.shape {
            Shape::OpenAi { kind, code, param } => serde_json::to_vec(&Envelope {
                error: OpenAiBody {
                    message: &self.message,
                    kind,
                    param,
                    code,
                },
            }),
            Shape::Azure { code } => serde_json::to_vec(&Envelope {
                error: AzureBody {
                    code,
                    message: &self.message,
                },
            }),
        }
        // Serializing plain strings cannot fail; an empty body is the safe fallback.
        .unwrap_or_default();
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

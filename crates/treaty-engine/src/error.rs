//! The one table of failures: every error Treaty answers a client with is
//! an [`Error`] whose [`Code`] gives its HTTP status, OpenAI `type` and
//! `code`. The HTTP edge renders it in OpenAI's shape; the runtime stores
//! its code in a failed run; the ledger records its status.

use treaty_openai::{ErrorBody, ErrorObject};

/// What went wrong, as a client can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidRequest,
    RequestTooLarge,
    UnsupportedMediaType,
    RequestTimeout,
    UriTooLong,
    HeadersTooLarge,
    InvalidApiKey,
    ModelNotFound,
    UnknownUrl,
    MethodNotAllowed,
    NotFound,
    ProofNotReady,
    AdminDisabled,
    AdminUnauthorized,
    AdminForbidden,
    InsufficientQuota,
    RateLimitedRequests,
    RateLimitedTokens,
    AuthFailuresLimited,
    BudgetsUnavailable,
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
    Overloaded,
    Internal,
}

impl Code {
    /// (HTTP status, OpenAI `type`, `code`).
    pub fn table(self) -> (u16, &'static str, &'static str) {
        const INVALID: &str = "invalid_request_error";
        match self {
            Code::InvalidRequest => (400, INVALID, "invalid_request"),
            Code::RequestTooLarge => (413, INVALID, "request_too_large"),
            Code::UnsupportedMediaType => (415, INVALID, "unsupported_media_type"),
            Code::RequestTimeout => (408, INVALID, "request_timeout"),
            Code::UriTooLong => (414, INVALID, "uri_too_long"),
            Code::HeadersTooLarge => (431, INVALID, "headers_too_large"),
            Code::InvalidApiKey => (401, INVALID, "invalid_api_key"),
            Code::ModelNotFound => (404, INVALID, "model_not_found"),
            Code::UnknownUrl => (404, INVALID, "unknown_url"),
            Code::MethodNotAllowed => (405, INVALID, "method_not_allowed"),
            Code::NotFound => (404, INVALID, "not_found"),
            Code::ProofNotReady => (409, INVALID, "proof_not_ready"),
            Code::AdminDisabled => (403, "permission_error", "admin_disabled"),
            Code::AdminUnauthorized => (401, INVALID, "invalid_admin_token"),
            Code::AdminForbidden => (403, "permission_error", "admin_forbidden"),
            // What the official SDKs know: `insufficient_quota` is not
            // retried, `rate_limit_exceeded` is, after `Retry-After`.
            Code::InsufficientQuota => (429, "insufficient_quota", "insufficient_quota"),
            Code::RateLimitedRequests => (429, "requests", "rate_limit_exceeded"),
            Code::RateLimitedTokens => (429, "tokens", "rate_limit_exceeded"),
            Code::AuthFailuresLimited => {
                (429, "rate_limit_error", "too_many_failed_authentications")
            }
            Code::BudgetsUnavailable => (503, "server_error", "budgets_unavailable"),
            Code::UpstreamRateLimited => (429, "rate_limit_error", "upstream_rate_limited"),
            Code::UpstreamRejected => (403, "permission_error", "upstream_auth_failed"),
            Code::UpstreamError => (502, "upstream_error", "upstream_error"),
            Code::UpstreamTimeout => (504, "upstream_error", "upstream_timeout"),
            Code::NoHostAvailable => (503, "upstream_error", "no_host_available"),
            Code::ContractRefused => (403, "permission_error", "contract_refused"),
            Code::ClassDeclarationRefused => (403, "permission_error", "class_declaration_refused"),
            Code::AllowedHostsUnavailable => (503, "upstream_error", "allowed_hosts_unavailable"),
            Code::StoreUnavailable => (503, "server_error", "store_unavailable"),
            Code::LedgerUnavailable => (503, "server_error", "ledger_unavailable"),
            Code::Overloaded => (503, "server_error", "overloaded"),
            Code::Internal => (500, "server_error", "internal_error"),
        }
    }

    pub fn status(self) -> u16 {
        self.table().0
    }

    /// The OpenAI-style `type`.
    pub fn kind(self) -> &'static str {
        self.table().1
    }

    /// The OpenAI-style `code` string.
    pub fn as_str(self) -> &'static str {
        self.table().2
    }
}

/// An error on its way to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub message: String,
    pub param: Option<String>,
    /// Seconds, for 429s and 503s.
    pub retry_after: Option<u64>,
    /// An upstream status passed on as-is (a 400 from the host about the
    /// request's content), overriding the table's status.
    pub status_override: Option<u16>,
    /// Clause ids behind a contract refusal, sent as `x-treaty-clauses`.
    pub clauses: Option<String>,
    /// The caller's `x-ratelimit-*` numbers, for a rate-limit refusal.
    pub rate: Option<Box<treaty_limits::RateHeaders>>,
    /// The signed receipt of a contract refusal (`x-treaty-receipt`).
    pub receipt: Option<Box<str>>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            status_override: None,
            clauses: None,
            rate: None,
            receipt: None,
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
        Error {
            param,
            ..Error::new(Code::InvalidRequest, message)
        }
    }

    pub fn model_not_found(model: &str) -> Self {
        Error {
            param: Some("model".into()),
            ..Error::new(
                Code::ModelNotFound,
                format!("The model '{model}' does not exist or you do not have access to it."),
            )
        }
    }

    /// An object that does not exist, or that the caller may not see
    /// (another tenant's, or another product's): the same answer, so ids
    /// do not leak.
    pub fn not_found(what: &str, id: &str) -> Self {
        Error::new(Code::NotFound, format!("{what} with id '{id}' not found."))
    }

    /// The store failed; logged here, once, with its cause.
    pub fn store(e: treaty_store::StoreError) -> Self {
        tracing::error!(error = %e, "the store failed a query");
        Error::new(
            Code::StoreUnavailable,
            "The state store is unavailable; nothing was changed.",
        )
    }

    /// The decision could not be committed to the ledger.
    pub fn ledger(e: treaty_ledger::LedgerError) -> Self {
        tracing::error!(error = %e, "the ledger could not commit a decision record");
        Error::new(
            Code::LedgerUnavailable,
            "The decision could not be recorded durably, so the request was not sent to any host.",
        )
    }

    /// The decision's commit failed after the host answered: the answer is
    /// withheld (batched durability; see the model-call path's docs).
    pub fn ledger_withheld(e: treaty_ledger::LedgerError) -> Self {
        tracing::error!(error = %e, "the ledger could not commit a decision record after its host answered");
        Error::new(
            Code::LedgerUnavailable,
            "The host answered, but the decision could not be recorded durably, so the answer was withheld.",
        )
    }

    pub fn status(&self) -> u16 {
        self.status_override.unwrap_or(self.code.status())
    }

    /// The OpenAI-shaped body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                message: self.message.clone(),
                kind: self.code.kind().to_owned(),
                param: self.param.clone(),
                code: Some(self.code.as_str().to_owned()),
            },
        }
    }
}

impl From<treaty_policy::AskError> for Error {
    fn from(e: treaty_policy::AskError) -> Self {
        use treaty_policy::AskError as A;
        let code = match &e {
            A::ClassDeclarationRefused(_) => Code::ClassDeclarationRefused,
            A::UnconfiguredProduct => Code::InvalidApiKey,
            A::UnknownDataClassification { .. }
            | A::UnknownDeclaredClass(_)
            | A::UnknownPreferredHost(_)
            | A::PreferredHostDoesNotServe { .. } => Code::InvalidRequest,
        };
        Error::new(code, e.to_string())
    }
}

impl From<&treaty_policy::Refusal> for Error {
    fn from(r: &treaty_policy::Refusal) -> Self {
        Error::new(Code::ContractRefused, r.message.clone()).with_clauses(r.clause_list())
    }
}

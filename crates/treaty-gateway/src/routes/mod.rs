//! HTTP handlers, one module per API surface.

pub(crate) mod admin;
pub(crate) mod chat;
pub(crate) mod embeddings;
pub(crate) mod health;
pub(crate) mod models;
pub mod openapi;

use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use treaty_domain::{RequestContext, Route};
use treaty_keys::VerifiedKey;

use crate::error::ApiError;
use crate::state::Gateway;

pub(crate) static X_TREATY_HOST: HeaderName = HeaderName::from_static("x-treaty-host");

/// Builds the request context once the key and the model are known, and
/// checks that the key may use the model. Unknown and forbidden models
/// get the same 404, as OpenAI answers, so model names do not leak.
pub(crate) fn context(
    gw: &Gateway,
    key: &VerifiedKey,
    request_id: String,
    route: Route,
    model: &str,
) -> Result<RequestContext, ApiError> {
    let allowed = gw.router.serves(model)
        && key.allows_model(model)
        && gw
            .config
            .product(key.product.as_str())
            .is_some_and(|p| p.allows_model(model));
    if !allowed {
        return Err(ApiError::model_not_found(model));
    }
    Ok(RequestContext {
        request_id,
        key_id: key.id.clone(),
        tenant: key.tenant.clone(),
        channel: key.channel.clone(),
        product: key.product.clone(),
        route,
        model: model.to_owned(),
        workload_class: None,
        classified_by: None,
    })
}

/// The placement headers: which host served, the workload class, and the
/// clauses behind that host's verdict.
pub(crate) fn placed_headers(
    res: &mut axum::response::Response,
    host: &treaty_domain::Host,
    class: treaty_domain::WorkloadClass,
    clauses: &str,
) {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(host.id.as_str()) {
        h.insert(X_TREATY_HOST.clone(), v);
    }
    h.insert("x-treaty-class", HeaderValue::from_static(class.as_str()));
    if !clauses.is_empty()
        && let Ok(v) = HeaderValue::from_str(clauses)
    {
        h.insert("x-treaty-clauses", v);
    }
}

/// Body features of routes that never hold state: chat completions'
/// `store` keeps a completion for evals, not agent state.
pub fn stateless() -> treaty_classify::Features {
    treaty_classify::Features {
        store: Some(false),
        previous_response_id: false,
        conversation: false,
    }
}

pub(crate) type Shared = Arc<Gateway>;

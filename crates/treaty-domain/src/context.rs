//! The context a request carries through the pipeline.

use serde::Serialize;

use crate::{ChannelId, ProductId, TenantId, WorkloadClass};

/// The API surface a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    ChatCompletions,
    Embeddings,
    Models,
    Responses,
    /// The Conversations API (state only, no model call).
    Conversations,
    /// The agents API: agents, their runs and the runs' model steps.
    Agents,
    Runs,
}

impl Route {
    pub fn path(self) -> &'static str {
        match self {
            Route::ChatCompletions => "/v1/chat/completions",
            Route::Embeddings => "/v1/embeddings",
            Route::Models => "/v1/models",
            Route::Responses => "/v1/responses",
            Route::Conversations => "/v1/conversations",
            Route::Agents => "/v1/agents",
            Route::Runs => "/v1/runs",
        }
    }
}

/// Who is asking, through whom, for what. Built by authentication, then
/// extended by classification and the contract decision; read by the
/// router, the providers' logging and the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct RequestContext {
    /// Unique per request; returned to the client as `x-request-id`.
    pub request_id: String,
    /// The virtual key's public id (never the secret).
    pub key_id: String,
    pub tenant: TenantId,
    pub channel: ChannelId,
    pub product: ProductId,
    pub route: Route,
    /// The public model name the client asked for.
    pub model: String,
    /// Set by classification; `None` until then.
    pub workload_class: Option<WorkloadClass>,
    /// The id of the classification rule that set the class.
    pub classified_by: Option<String>,
}

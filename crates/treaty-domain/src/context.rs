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

/// The kinds of state Treaty's runtime holds for a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    Response,
    Conversation,
    Agent,
    Run,
}

impl StateKind {
    /// The route the state lives under, which classification reads.
    pub fn route(self) -> Route {
        match self {
            StateKind::Response => Route::Responses,
            StateKind::Conversation => Route::Conversations,
            StateKind::Agent => Route::Agents,
            StateKind::Run => Route::Runs,
        }
    }

    /// How the API names one of them in messages ("Agent with id ...").
    pub fn noun(self) -> &'static str {
        match self {
            StateKind::Response => "Response",
            StateKind::Conversation => "Conversation",
            StateKind::Agent => "Agent",
            StateKind::Run => "Run",
        }
    }
}

/// One operation on stored state. Every one of them passes the contract
/// gate (the tenant owns the object, the key's product is the object's,
/// the channel may sell it, this instance may hold it) and is named in
/// its ledger record by [`StateOp::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateOp {
    ResponseCreate,
    ResponseRetrieve,
    ResponseDelete,
    ResponseCancel,
    ResponseInputItems,
    ConversationCreate,
    ConversationRetrieve,
    ConversationUpdate,
    ConversationDelete,
    ConversationItemsCreate,
    ConversationItemsList,
    ConversationItemRetrieve,
    ConversationItemDelete,
    AgentCreate,
    AgentRetrieve,
    AgentUpdate,
    AgentDelete,
    AgentList,
    RunCreate,
    RunRetrieve,
    RunList,
    RunCancel,
    RunSubmitToolOutputs,
    RunApprove,
    RunEvents,
    /// A run worker taking a run up again (after a restart, or on another
    /// instance): may this instance hold it now?
    RunResume,
}

impl StateOp {
    /// The operation's name in ledger records, e.g. `agents.update`.
    pub fn as_str(self) -> &'static str {
        match self {
            StateOp::ResponseCreate => "responses.create",
            StateOp::ResponseRetrieve => "responses.retrieve",
            StateOp::ResponseDelete => "responses.delete",
            StateOp::ResponseCancel => "responses.cancel",
            StateOp::ResponseInputItems => "responses.input_items",
            StateOp::ConversationCreate => "conversations.create",
            StateOp::ConversationRetrieve => "conversations.retrieve",
            StateOp::ConversationUpdate => "conversations.update",
            StateOp::ConversationDelete => "conversations.delete",
            StateOp::ConversationItemsCreate => "conversations.items.create",
            StateOp::ConversationItemsList => "conversations.items.list",
            StateOp::ConversationItemRetrieve => "conversations.items.retrieve",
            StateOp::ConversationItemDelete => "conversations.items.delete",
            StateOp::AgentCreate => "agents.create",
            StateOp::AgentRetrieve => "agents.retrieve",
            StateOp::AgentUpdate => "agents.update",
            StateOp::AgentDelete => "agents.delete",
            StateOp::AgentList => "agents.list",
            StateOp::RunCreate => "runs.create",
            StateOp::RunRetrieve => "runs.retrieve",
            StateOp::RunList => "runs.list",
            StateOp::RunCancel => "runs.cancel",
            StateOp::RunSubmitToolOutputs => "runs.submit_tool_outputs",
            StateOp::RunApprove => "runs.approve",
            StateOp::RunEvents => "runs.events",
            StateOp::RunResume => "runs.resume",
        }
    }

    /// The kind of state the operation touches.
    pub fn kind(self) -> StateKind {
        use StateOp::*;
        match self {
            ResponseCreate | ResponseRetrieve | ResponseDelete | ResponseCancel
            | ResponseInputItems => StateKind::Response,
            ConversationCreate
            | ConversationRetrieve
            | ConversationUpdate
            | ConversationDelete
            | ConversationItemsCreate
            | ConversationItemsList
            | ConversationItemRetrieve
            | ConversationItemDelete => StateKind::Conversation,
            AgentCreate | AgentRetrieve | AgentUpdate | AgentDelete | AgentList => StateKind::Agent,
            RunCreate | RunRetrieve | RunList | RunCancel | RunSubmitToolOutputs | RunApprove
            | RunEvents | RunResume => StateKind::Run,
        }
    }

    /// Whether the operation changes state (as opposed to reading it).
    pub fn changes_state(self) -> bool {
        use StateOp::*;
        !matches!(
            self,
            ResponseRetrieve
                | ResponseInputItems
                | ConversationRetrieve
                | ConversationItemsList
                | ConversationItemRetrieve
                | AgentRetrieve
                | AgentList
                | RunRetrieve
                | RunList
                | RunEvents
        )
    }

    /// Every operation, for tests and documentation.
    pub const ALL: [StateOp; 26] = [
        StateOp::ResponseCreate,
        StateOp::ResponseRetrieve,
        StateOp::ResponseDelete,
        StateOp::ResponseCancel,
        StateOp::ResponseInputItems,
        StateOp::ConversationCreate,
        StateOp::ConversationRetrieve,
        StateOp::ConversationUpdate,
        StateOp::ConversationDelete,
        StateOp::ConversationItemsCreate,
        StateOp::ConversationItemsList,
        StateOp::ConversationItemRetrieve,
        StateOp::ConversationItemDelete,
        StateOp::AgentCreate,
        StateOp::AgentRetrieve,
        StateOp::AgentUpdate,
        StateOp::AgentDelete,
        StateOp::AgentList,
        StateOp::RunCreate,
        StateOp::RunRetrieve,
        StateOp::RunList,
        StateOp::RunCancel,
        StateOp::RunSubmitToolOutputs,
        StateOp::RunApprove,
        StateOp::RunEvents,
        StateOp::RunResume,
    ];
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

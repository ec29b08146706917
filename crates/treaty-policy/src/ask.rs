//! What is asked of the decision core: typed, with nothing of HTTP.

use treaty_classify::Features;
use treaty_contracts::ToolRef;
use treaty_domain::{ChannelId, ProductId, Route, StateOp, TenantId, WorkloadClass};

/// Who is asking: a virtual key and what it is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The key's public id (never its secret).
    pub key_id: &'a str,
    pub tenant: &'a TenantId,
    pub channel: &'a ChannelId,
    pub product: &'a ProductId,
    /// The classes the key may declare.
    pub may_declare: &'a [WorkloadClass],
}

/// What is being decided.
#[derive(Debug, Clone, Copy)]
pub enum What<'a> {
    /// A model call on a route: a client's request, or a model step of the
    /// runtime (see [`Ask::model_step`]). Decided with `admit` and `host`.
    Call { route: Route, model: &'a str },
    /// An operation on state this instance holds (a stored response, a
    /// conversation, an agent, a run). Decided with `admit` and `hold`.
    /// `model` is the model the state's steps use ("" for none).
    State { op: StateOp, model: &'a str },
    /// A webhook or MCP call of an agent run. Decided with `admit` and
    /// `use`; classified `stateful_agent` (it acts for held state).
    Tool {
        tool: ToolRef<'a>,
        call_id: &'a str,
        model: &'a str,
    },
}

impl What<'_> {
    pub fn model(&self) -> &str {
        match self {
            What::Call { model, .. } | What::State { model, .. } | What::Tool { model, .. } => {
                model
            }
        }
    }

    /// The route classification reads.
    pub fn route(&self) -> Route {
        match self {
            What::Call { route, .. } => *route,
            What::State { op, .. } => op.kind().route(),
            What::Tool { .. } => Route::Runs,
        }
    }
}

/// What the client said about its request beside the body: a declared
/// class, a data classification and a preferred host. The HTTP edge reads
/// them from `x-treaty-workload-class`, `x-treaty-data-classification` and
/// `x-treaty-prefer-host`; a run worker from the stored run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    pub declared_class: Option<String>,
    pub data_classification: Option<String>,
    pub prefer_host: Option<String>,
}

/// One request, as the decision core sees it.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The ledger's id for the decision: the HTTP request id, or for a
    /// model step `{run or response id}.{step}`, for a tool call
    /// `{run id}.tool.{call id}`.
    pub request_id: &'a str,
    pub subject: Subject<'a>,
    pub what: What<'a>,
    /// The body features classification reads.
    pub features: Features,
    pub hints: &'a Hints,
    /// The run or stored response the decision is for: a model step's, a
    /// tool call's, or the object a state operation touches.
    pub run_id: Option<&'a str>,
    /// A model step the runtime makes for a run or a stored response.
    pub model_step: bool,
    /// Unix milliseconds: clause windows are evaluated at this instant.
    pub at_ms: i64,
}

/// A request the core cannot decide because of what it says about
/// itself: nothing is decided or recorded. The messages are the client's
/// words (the header names are what the client sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    #[error("Unknown data classification '{given}'; expected one of: {expected}.")]
    UnknownDataClassification { given: String, expected: String },
    #[error("Unknown workload class '{0}' in x-treaty-workload-class.")]
    UnknownDeclaredClass(String),
    #[error("This API key may not declare the workload class '{0}'.")]
    ClassDeclarationRefused(WorkloadClass),
    #[error("Unknown host '{0}' in x-treaty-prefer-host.")]
    UnknownPreferredHost(String),
    #[error("Host '{host}' in x-treaty-prefer-host does not serve model '{model}'.")]
    PreferredHostDoesNotServe { host: String, model: String },
    #[error("This API key's product is not configured.")]
    UnconfiguredProduct,
}

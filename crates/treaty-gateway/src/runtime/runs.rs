//! Runs of an agent on a conversation: `POST /v1/agents/{id}/runs`, and
//! `/v1/runs/...` to read, cancel, answer tool calls, approve, and follow
//! a run's events over SSE.
//!
//! A run's lifecycle: `queued` → `in_progress` ⇄ `requires_action` →
//! `completed` | `failed` | `cancelled` | `expired`. The API only moves a
//! run between the states a client may (tool outputs and approvals queue
//! it again, cancel ends it); everything else is the worker's
//! ([`super::worker`]). Each of these changes is logged in the run's
//! events with the change itself, in one transaction, and not at all
//! when the change loses a race.

use std::time::Duration;

use crate::body::{Path, Query};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use treaty_domain::Route;
use treaty_keys::VerifiedKey;
use treaty_openai::responses::{CreateResponseRequest, Input, input_items, new_id};
use treaty_store::{ConversationRow, Order, RunChange, RunEvent, RunRow};

use super::agents::owned as owned_agent;
use super::{
    Page, PageQuery, from_json, invalid, item_row, json, not_found, now_ms, store_error, to_json,
};
use crate::RequestId;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::pipeline::{StateAsk, hold_state};
use crate::policy::DATA_CLASSIFICATION_HEADER;
use crate::routes::Shared;
use crate::state::Gateway;

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunObject {
    pub id: String,
    pub object: String,
    pub agent_id: String,
    pub conversation_id: String,
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
    pub model: String,
    /// Extra instructions for this run, after the agent's.
    pub instructions: Option<String>,
    /// Set in `requires_action`: what the client must do.
    pub required_action: Option<RequiredAction>,
    pub last_error: Option<RunError>,
    pub usage: RunUsage,
    /// Model steps made so far.
    pub steps: u32,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RequiredAction {
    /// `submit_tool_outputs` (function tools) or `approve_tool_calls`.
    #[serde(rename = "type")]
    pub kind: String,
    pub tool_calls: Vec<ActionCall>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ActionCall {
    pub call_id: String,
    pub name: String,
    pub arguments: String,
    /// `function`, `webhook` or `mcp`.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// A tool call of the last model step, until its output is in the
/// conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PendingCall {
    pub call_id: String,
    pub name: String,
    pub arguments: String,
    /// `function`, `webhook`, `mcp`, or `unknown` (a name no tool has).
    pub kind: String,
    #[serde(default)]
    pub connector: Option<String>,
    /// `required`, `approved` or `denied`; `None` when no approval applies.
    #[serde(default)]
    pub approval: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The call's result, recorded before anything else happens: a call
    /// with an output is never made again.
    #[serde(default)]
    pub output: Option<String>,
}

/// Everything the worker needs to resume a run, stored as its body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunState {
    #[serde(flatten)]
    pub public: RunObject,
    pub key_id: String,
    #[serde(default)]
    pub data_classification: Option<String>,
    #[serde(default)]
    pub pending: Vec<PendingCall>,
    /// Items of the last model step not yet known to be in the
    /// conversation (appended idempotently, by item id).
    #[serde(default)]
    pub turn: Vec<Value>,
    /// Times a worker has taken the run.
    #[serde(default)]
    pub claims: u32,
}

/// The run as the API shows it; the row's status wins (expiry and
/// cancellation change only the row's column first).
pub(crate) fn public(row: &RunRow) -> Result<RunObject, ApiError> {
    let state: RunState = from_json(&row.body)?;
    let mut obj = state.public;
    obj.status = row.status.clone();
    if obj.status != "requires_action" {
        obj.required_action = None;
    }
    Ok(obj)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunCreate {
    /// Continue this conversation; a new one is created when absent.
    #[serde(default)]
    conversation: Option<String>,
    /// New input for the conversation: a string or Responses input items.
    #[serde(default)]
    input: Option<Input>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    /// Answer with the run's events over SSE instead of the run object.
    #[serde(default)]
    stream: bool,
}

async fn owned(gw: &Gateway, key: &VerifiedKey, id: &str) -> Result<RunRow, ApiError> {
    gw.store
        .run(key.tenant.as_str(), id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found("Run", id))
}

fn run_features() -> treaty_classify::Features {
    treaty_classify::Features {
        store: Some(true),
        previous_response_id: false,
        conversation: true,
    }
}

pub(crate) async fn create(
    State(gw): State<Shared>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    Path(agent_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let req: RunCreate = crate::body::parse(body, gw.config.server.max_body_bytes)?;
    let agent = owned_agent(&gw, &key, &agent_id).await?;
    if let Some(c) = &req.conversation
        && gw
            .store
            .conversation(key.tenant.as_str(), c)
            .await
            .map_err(store_error)?
            .is_none()
    {
        return Err(not_found("Conversation", c).with_param("conversation"));
    }
    // The input, normalised as the Responses API does.
    let items = match &req.input {
        None => Vec::new(),
        Some(input) => {
            let as_response: CreateResponseRequest = serde_json::from_value(
                serde_json::json!({"model": agent.model, "input": input, "store": false}),
            )
            .map_err(|e| {
                ApiError::invalid(format!("Invalid 'input': {e}"), Some("input".into()))
            })?;
            as_response.validate().map_err(invalid)?;
            input_items(&as_response)
        }
    };
    if items.is_empty() && req.conversation.is_none() {
        return Err(ApiError::invalid(
            "A run needs 'input', or a 'conversation' to continue.",
            Some("input".into()),
        ));
    }
    let id = new_id("run");
    hold_state(
        &gw,
        &key,
        &request_id,
        &headers,
        StateAsk {
            route: Route::Runs,
            model: &agent.model,
            features: run_features(),
            state_id: &id,
        },
    )
    .await?;
    let rows = items.iter().map(item_row).collect::<Result<Vec<_>, _>>()?;
    let conversation_id = match &req.conversation {
        Some(c) => {
            gw.store
                .append_conversation_items(c, &rows, now_ms())
                .await
                .map_err(store_error)?;
            c.clone()
        }
        None => {
            let conv = ConversationRow {
                id: new_id("conv"),
                tenant: key.tenant.to_string(),
                created_at: now_ms(),
                metadata: "{}".into(),
            };
            gw.store
                .insert_conversation(&conv, &rows)
                .await
                .map_err(store_error)?;
            conv.id
        }
    };
    let state = RunState {
        public: RunObject {
            id: id.clone(),
            object: "run".into(),
            agent_id: agent.id.clone(),
            conversation_id: conversation_id.clone(),
            status: "queued".into(),
            created_at: now_ms() / 1000,
            model: agent.model.clone(),
            instructions: req.instructions,
            required_action: None,
            last_error: None,
            usage: RunUsage::default(),
            steps: 0,
            metadata: req.metadata,
        },
        key_id: key.id.clone(),
        data_classification: headers
            .get(DATA_CLASSIFICATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        pending: Vec::new(),
        turn: Vec::new(),
        claims: 0,
    };
    let row = RunRow {
        id: id.clone(),
        tenant: key.tenant.to_string(),
        agent_id: agent.id,
        conversation_id,
        status: "queued".into(),
        created_at: now_ms(),
        updated_at: now_ms(),
        lease_owner: None,
        lease_until: 0,
        body: to_json(&state)?,
    };
    let created = RunEvent {
        kind: "run.created",
        at_ms: row.created_at,
        body: &to_json(&state.public)?,
    };
    gw.store
        .insert_run(&row, created)
        .await
        .map_err(store_error)?;
    gw.runtime.wake.notify_one();
    if req.stream {
        return Ok(event_stream(gw.clone(), id, 0));
    }
    json(&public(&row)?)
}

pub(crate) async fn retrieve(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    json(&public(&owned(&gw, &key, &id).await?)?)
}

/// The tenant's runs (of one agent with `?agent_id=`), newest first.
pub(crate) async fn list(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let limit = q.limit()?;
    let order = q.order(Order::Desc)?;
    let rows = gw
        .store
        .list_runs(
            key.tenant.as_str(),
            q.agent_id.as_deref(),
            q.after.as_deref(),
            order,
            limit + 1,
        )
        .await
        .map_err(store_error)?;
    let runs = rows.iter().map(public).collect::<Result<Vec<_>, _>>()?;
    json(&Page::new(runs, limit, |r| r.id.clone()))
}

pub(crate) async fn cancel(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let row = owned(&gw, &key, &id).await?;
    let mut state: RunState = from_json(&row.body)?;
    state.public.status = "cancelled".into();
    state.public.required_action = None;
    let now = now_ms();
    let changed = gw
        .store
        .transition_run(
            key.tenant.as_str(),
            &id,
            &["queued", "requires_action", "in_progress"],
            RunChange {
                status: "cancelled",
                body: &to_json(&state)?,
                at_ms: now,
            },
            Some(RunEvent {
                kind: "run.cancelled",
                at_ms: now,
                body: &to_json(&state.public)?,
            }),
        )
        .await
        .map_err(store_error)?;
    if !changed {
        return Err(ApiError::invalid(
            format!(
                "Run '{id}' has ended ({}) and cannot be cancelled.",
                row.status
            ),
            None,
        ));
    }
    json(&public(&owned(&gw, &key, &id).await?)?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolOutputs {
    tool_outputs: Vec<ToolOutput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolOutput {
    call_id: String,
    output: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Approvals {
    approvals: Vec<ApprovalAnswer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalAnswer {
    call_id: String,
    approve: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// Loads a run waiting for `kind` of action, applies `answer` to its
/// pending calls, and queues it again.
async fn answer_action(
    gw: &Gateway,
    key: &VerifiedKey,
    id: &str,
    kind: &str,
    answer: impl FnOnce(&mut RunState) -> Result<(), ApiError>,
) -> Result<Response, ApiError> {
    let row = owned(gw, key, id).await?;
    let mut state: RunState = from_json(&row.body)?;
    let waiting = row.status == "requires_action"
        && state
            .public
            .required_action
            .as_ref()
            .is_some_and(|a| a.kind == kind);
    if !waiting {
        return Err(ApiError::invalid(
            format!(
                "Run '{id}' is {} and is not waiting for {kind}.",
                row.status
            ),
            None,
        ));
    }
    answer(&mut state)?;
    state.public.status = "queued".into();
    state.public.required_action = None;
    let now = now_ms();
    let changed = gw
        .store
        .transition_run(
            key.tenant.as_str(),
            id,
            &["requires_action"],
            RunChange {
                status: "queued",
                body: &to_json(&state)?,
                at_ms: now,
            },
            Some(RunEvent {
                kind: "run.queued",
                at_ms: now,
                body: &to_json(&state.public)?,
            }),
        )
        .await
        .map_err(store_error)?;
    if !changed {
        return Err(ApiError::invalid(
            format!("Run '{id}' changed meanwhile; read it again."),
            None,
        ));
    }
    gw.runtime.wake.notify_one();
    json(&public(&owned(gw, key, id).await?)?)
}

pub(crate) async fn submit_tool_outputs(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let req: ToolOutputs = crate::body::parse(body, gw.config.server.max_body_bytes)?;
    answer_action(&gw, &key, &id, "submit_tool_outputs", |state| {
        for (i, out) in req.tool_outputs.iter().enumerate() {
            let Some(call) = state
                .pending
                .iter_mut()
                .find(|c| c.call_id == out.call_id && c.kind == "function")
            else {
                return Err(ApiError::invalid(
                    format!("No function call '{}' is waiting for output.", out.call_id),
                    Some(format!("tool_outputs[{i}].call_id")),
                ));
            };
            call.output = Some(out.output.clone());
        }
        if let Some(missing) = state
            .pending
            .iter()
            .find(|c| c.kind == "function" && c.output.is_none())
        {
            return Err(ApiError::invalid(
                format!("The output of call '{}' is missing.", missing.call_id),
                Some("tool_outputs".into()),
            ));
        }
        Ok(())
    })
    .await
}

pub(crate) async fn approve(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let req: Approvals = crate::body::parse(body, gw.config.server.max_body_bytes)?;
    answer_action(&gw, &key, &id, "approve_tool_calls", |state| {
        for (i, a) in req.approvals.iter().enumerate() {
            let Some(call) = state
                .pending
                .iter_mut()
                .find(|c| c.call_id == a.call_id && c.approval.as_deref() == Some("required"))
            else {
                return Err(ApiError::invalid(
                    format!("No call '{}' is waiting for approval.", a.call_id),
                    Some(format!("approvals[{i}].call_id")),
                ));
            };
            call.approval = Some(if a.approve { "approved" } else { "denied" }.into());
            call.reason = a.reason.clone();
        }
        if let Some(missing) = state
            .pending
            .iter()
            .find(|c| c.approval.as_deref() == Some("required"))
        {
            return Err(ApiError::invalid(
                format!("Call '{}' still needs an answer.", missing.call_id),
                Some("approvals".into()),
            ));
        }
        Ok(())
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    after: Option<i64>,
}

/// `GET /v1/runs/{id}/events`: the run's events over SSE from `?after=`,
/// live until the run ends or waits for the client.
pub(crate) async fn events(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    owned(&gw, &key, &id).await?;
    Ok(event_stream(gw.clone(), id, q.after.unwrap_or(0)))
}

fn event_stream(gw: Shared, run_id: String, after: i64) -> Response {
    let state = (gw, run_id, after, false);
    let stream = futures_util::stream::unfold(state, |(gw, run_id, mut after, done)| async move {
        if done {
            return None;
        }
        loop {
            let events = gw.store.run_events(&run_id, after).await.ok()?;
            if let Some(last) = events.last() {
                after = last.seq;
                let mut out = String::new();
                // The stream ends with the run, or when it waits for the
                // client *now*: a `requires_action` already answered (the
                // run queued again after it) does not end it.
                let mut ended = matches!(last.kind.as_str(), "run.requires_action");
                for e in &events {
                    out.push_str("id: ");
                    out.push_str(&e.seq.to_string());
                    out.push_str("\nevent: ");
                    out.push_str(&e.kind);
                    out.push_str("\ndata: ");
                    out.push_str(&e.body);
                    out.push_str("\n\n");
                    ended |= matches!(
                        e.kind.as_str(),
                        "run.completed" | "run.failed" | "run.cancelled" | "run.expired"
                    );
                }
                return Some((
                    Ok::<Bytes, std::convert::Infallible>(Bytes::from(out)),
                    (gw, run_id, after, ended),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

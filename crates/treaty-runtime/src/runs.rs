//! Runs of an agent on a conversation: `POST /v1/agents/{id}/runs`, and
//! `/v1/runs/...` to read, list, cancel, answer tool calls, approve, and
//! follow a run's events over SSE. Each is an operation on state held by
//! this instance, so each passes the state gate and is recorded.
//!
//! A run's lifecycle: `queued` → `in_progress` ⇄ `requires_action` →
//! `completed` | `failed` | `cancelled` | `expired`. The API only moves a
//! run between the states a client may (tool outputs and approvals queue
//! it again, cancel ends it); everything else is the worker's
//! ([`crate::worker`]). Each of these changes is logged in the run's
//! events with the change itself, in one transaction, and not at all
//! when the change loses a race.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use treaty_domain::StateOp;
use treaty_engine::{Caller, Error, Held, Owner, StateAsk};
use treaty_openai::responses::{CreateResponseRequest, Input, input_items, new_id};
use treaty_store::{ConversationRow, Order, RunChange, RunEvent, RunRow};

use crate::page::{Page, PageQuery};
use crate::stored::{from_json, invalid, item_row, json, now_ms, to_json};
use crate::{Events, Reply, Runtime, settled};

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunObject {
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
pub struct RequiredAction {
    /// `submit_tool_outputs` (function tools) or `approve_tool_calls`.
    #[serde(rename = "type")]
    pub kind: String,
    pub tool_calls: Vec<ActionCall>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionCall {
    pub call_id: String,
    pub name: String,
    pub arguments: String,
    /// `function`, `webhook` or `mcp`.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RunUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// A tool call of the last model step, until its output is in the
/// conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCall {
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
pub struct RunState {
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
pub fn public(row: &RunRow) -> Result<RunObject, Error> {
    let state: RunState = from_json(&row.body)?;
    let mut obj = state.public;
    obj.status = row.status.clone();
    if obj.status != "requires_action" {
        obj.required_action = None;
    }
    Ok(obj)
}

/// `POST /v1/agents/{id}/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCreate {
    /// Continue this conversation; a new one is created when absent.
    #[serde(default)]
    pub conversation: Option<String>,
    /// New input for the conversation: a string or Responses input items.
    #[serde(default)]
    pub input: Option<Input>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Answer with the run's events over SSE instead of the run object.
    #[serde(default)]
    pub stream: bool,
}

/// `POST /v1/runs/{id}/submit_tool_outputs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolOutputs {
    pub tool_outputs: Vec<ToolOutput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolOutput {
    pub call_id: String,
    pub output: String,
}

/// `POST /v1/runs/{id}/approve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    pub approvals: Vec<ApprovalAnswer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswer {
    pub call_id: String,
    pub approve: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

async fn row(rt: &Runtime, caller: &Caller, id: &str) -> Result<RunRow, Error> {
    rt.engine
        .store
        .run(caller.key.tenant.as_str(), id)
        .await
        .map_err(Error::store)?
        .ok_or_else(|| Error::not_found("Run", id))
}

/// Reads a run and passes `op` on it through the state gate.
async fn gated(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    op: StateOp,
) -> Result<(RunRow, Held), Error> {
    let row = row(rt, caller, id).await?;
    let model = from_json::<RunState>(&row.body)
        .map(|s| s.public.model)
        .unwrap_or_default();
    let held = rt
        .engine
        .gate_state(
            caller,
            StateAsk {
                op,
                id,
                model: &model,
                features: treaty_policy::conversation(),
                owner: Some(Owner {
                    tenant: &row.tenant,
                    product: &row.product,
                }),
            },
        )
        .await?;
    Ok((row, held))
}

pub async fn create(
    rt: &std::sync::Arc<Runtime>,
    caller: &Caller,
    agent_id: &str,
    req: RunCreate,
) -> Result<Reply, Error> {
    let key = &caller.key;
    // The agent and the conversation must be the caller's tenant's and
    // product's: another product's are unknown here.
    let agent_row = crate::agents::row(rt, caller, agent_id).await?;
    if agent_row.product != key.product.as_str() {
        return Err(Error::not_found("Agent", agent_id));
    }
    let agent: crate::agents::Agent = from_json(&agent_row.body)?;
    if let Some(instructions) = &req.instructions {
        crate::agents::at_most(
            instructions,
            crate::agents::MAX_INSTRUCTIONS,
            "instructions",
        )?;
    }
    crate::agents::check_metadata(&req.metadata)?;
    if let Some(c) = &req.conversation {
        let conv = crate::conversations::row(rt, caller, c)
            .await
            .map_err(|e| e.with_param("conversation"))?;
        crate::conversations::same_product(caller, &conv)
            .map_err(|e| e.with_param("conversation"))?;
    }
    // The input, normalised as the Responses API does.
    let items = match &req.input {
        None => Vec::new(),
        Some(input) => {
            let as_response: CreateResponseRequest = serde_json::from_value(
                serde_json::json!({"model": agent.model, "input": input, "store": false}),
            )
            .map_err(|e| Error::invalid(format!("Invalid 'input': {e}"), Some("input".into())))?;
            as_response.validate().map_err(invalid)?;
            let mut items = input_items(&as_response);
            crate::references::resolve(rt, caller, &mut items, "input").await?;
            items
        }
    };
    if items.is_empty() && req.conversation.is_none() {
        return Err(Error::invalid(
            "A run needs 'input', or a 'conversation' to continue.",
            Some("input".into()),
        ));
    }
    let id = new_id("run");
    let held = rt
        .engine
        .gate_state(
            caller,
            StateAsk {
                op: StateOp::RunCreate,
                id: &id,
                model: &agent.model,
                features: treaty_policy::conversation(),
                owner: None,
            },
        )
        .await?;
    let result = async {
        let store = &rt.engine.store;
        let rows = items.iter().map(item_row).collect::<Result<Vec<_>, _>>()?;
        let conversation_id = match &req.conversation {
            Some(c) => {
                store
                    .append_conversation_items(c, &rows, now_ms())
                    .await
                    .map_err(Error::store)?;
                c.clone()
            }
            None => {
                let conv = ConversationRow {
                    id: new_id("conv"),
                    tenant: key.tenant.to_string(),
                    channel: key.channel.to_string(),
                    product: key.product.to_string(),
                    created_at: now_ms(),
                    metadata: "{}".into(),
                };
                store
                    .insert_conversation(&conv, &rows)
                    .await
                    .map_err(Error::store)?;
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
                instructions: req.instructions.clone(),
                required_action: None,
                last_error: None,
                usage: RunUsage::default(),
                steps: 0,
                metadata: req.metadata.clone(),
            },
            key_id: key.id.clone(),
            data_classification: caller.hints.data_classification.clone(),
            pending: Vec::new(),
            turn: Vec::new(),
            claims: 0,
        };
        let row = RunRow {
            id: id.clone(),
            tenant: key.tenant.to_string(),
            channel: key.channel.to_string(),
            product: key.product.to_string(),
            agent_id: agent.id.clone(),
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
        store
            .insert_run(&row, created)
            .await
            .map_err(Error::store)?;
        rt.changed.raise();
        rt.wake.notify_one();
        if req.stream {
            return Ok(Reply::Events {
                events: event_stream(rt.clone(), id.clone(), 0),
                placed: None,
            });
        }
        json(&public(&row)?)
    }
    .await;
    settled(held, result)
}

pub async fn retrieve(rt: &Runtime, caller: &Caller, id: &str) -> Result<Reply, Error> {
    let (row, held) = gated(rt, caller, id, StateOp::RunRetrieve).await?;
    settled(held, public(&row).and_then(|r| json(&r)))
}

/// The tenant's runs of the key's product (of one agent with
/// `?agent_id=`), newest first.
pub async fn list(rt: &Runtime, caller: &Caller, q: &PageQuery) -> Result<Reply, Error> {
    let limit = q.limit()?;
    let order = q.order(Order::Desc)?;
    let held = rt
        .engine
        .gate_state(
            caller,
            StateAsk {
                op: StateOp::RunList,
                id: "",
                model: "",
                features: treaty_policy::conversation(),
                owner: None,
            },
        )
        .await?;
    let result = async {
        let rows = rt
            .engine
            .store
            .list_runs(
                caller.key.tenant.as_str(),
                caller.key.product.as_str(),
                q.agent_id.as_deref(),
                q.after.as_deref(),
                order,
                limit + 1,
            )
            .await
            .map_err(Error::store)?;
        let runs = rows.iter().map(public).collect::<Result<Vec<_>, _>>()?;
        json(&Page::new(runs, limit, |r| r.id.clone()))
    }
    .await;
    settled(held, result)
}

pub async fn cancel(rt: &Runtime, caller: &Caller, id: &str) -> Result<Reply, Error> {
    let (row, held) = gated(rt, caller, id, StateOp::RunCancel).await?;
    let result = async {
        let mut state: RunState = from_json(&row.body)?;
        state.public.status = "cancelled".into();
        state.public.required_action = None;
        let now = now_ms();
        let tenant = caller.key.tenant.as_str();
        let changed = rt
            .engine
            .store
            .transition_run(
                tenant,
                id,
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
            .map_err(Error::store)?;
        if !changed {
            return Err(Error::invalid(
                format!(
                    "Run '{id}' has ended ({}) and cannot be cancelled.",
                    row.status
                ),
                None,
            ));
        }
        rt.changed.raise();
        json(&public(&self::row(rt, caller, id).await?)?)
    }
    .await;
    settled(held, result)
}

/// Applies `answer` to the pending calls of a run waiting for `kind` of
/// action, and queues it again.
async fn answer_action(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    op: StateOp,
    kind: &str,
    answer: impl FnOnce(&mut RunState) -> Result<(), Error>,
) -> Result<Reply, Error> {
    let (row, held) = gated(rt, caller, id, op).await?;
    let result = async {
        let mut state: RunState = from_json(&row.body)?;
        let waiting = row.status == "requires_action"
            && state
                .public
                .required_action
                .as_ref()
                .is_some_and(|a| a.kind == kind);
        if !waiting {
            return Err(Error::invalid(
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
        let changed = rt
            .engine
            .store
            .transition_run(
                caller.key.tenant.as_str(),
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
            .map_err(Error::store)?;
        if !changed {
            return Err(Error::invalid(
                format!("Run '{id}' changed meanwhile; read it again."),
                None,
            ));
        }
        rt.changed.raise();
        rt.wake.notify_one();
        json(&public(&self::row(rt, caller, id).await?)?)
    }
    .await;
    settled(held, result)
}

pub async fn submit_tool_outputs(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    req: ToolOutputs,
) -> Result<Reply, Error> {
    answer_action(
        rt,
        caller,
        id,
        StateOp::RunSubmitToolOutputs,
        "submit_tool_outputs",
        |state| {
            for (i, out) in req.tool_outputs.iter().enumerate() {
                let Some(call) = state
                    .pending
                    .iter_mut()
                    .find(|c| c.call_id == out.call_id && c.kind == "function")
                else {
                    return Err(Error::invalid(
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
                return Err(Error::invalid(
                    format!("The output of call '{}' is missing.", missing.call_id),
                    Some("tool_outputs".into()),
                ));
            }
            Ok(())
        },
    )
    .await
}

pub async fn approve(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    req: Approvals,
) -> Result<Reply, Error> {
    answer_action(
        rt,
        caller,
        id,
        StateOp::RunApprove,
        "approve_tool_calls",
        |state| {
            for (i, a) in req.approvals.iter().enumerate() {
                let Some(call) = state
                    .pending
                    .iter_mut()
                    .find(|c| c.call_id == a.call_id && c.approval.as_deref() == Some("required"))
                else {
                    return Err(Error::invalid(
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
                return Err(Error::invalid(
                    format!("Call '{}' still needs an answer.", missing.call_id),
                    Some("approvals".into()),
                ));
            }
            Ok(())
        },
    )
    .await
}

/// `GET /v1/runs/{id}/events`: the run's events over SSE from `after` (an
/// event sequence number), live until the run ends or waits for the
/// client.
pub async fn events(
    rt: &std::sync::Arc<Runtime>,
    caller: &Caller,
    id: &str,
    after: i64,
) -> Result<Reply, Error> {
    let (_, held) = gated(rt, caller, id, StateOp::RunEvents).await?;
    settled(
        held,
        Ok(Reply::Events {
            events: event_stream(rt.clone(), id.to_owned(), after),
            placed: None,
        }),
    )
}

/// How often a reader re-checks a run that no event of this instance has
/// touched: the run may be worked on by another replica.
const ELSEWHERE_RECHECK: Duration = Duration::from_secs(1);

fn ends_stream(kind: &str) -> bool {
    matches!(
        kind,
        "run.completed" | "run.failed" | "run.cancelled" | "run.expired"
    )
}

/// The run's events after `after`, then each new one as it is written,
/// until the run ends or waits for the client. A reader waits on this
/// instance's run signal, not on a timer; a run already over (or already
/// waiting) with nothing new to say ends the stream at once.
fn event_stream(rt: std::sync::Arc<Runtime>, run_id: String, after: i64) -> Events {
    let signal = rt.changed.subscribe();
    let state = (rt, run_id, after, signal, false);
    Box::pin(futures_util::stream::unfold(
        state,
        |(rt, run_id, mut after, mut signal, done)| async move {
            if done {
                return None;
            }
            loop {
                // Marked before reading, so a change written while this
                // reads is not missed.
                signal.borrow_and_update();
                let store = &rt.engine.store;
                // The status first: a run's status and the event telling
                // of it are written in one transaction, so a status read
                // here has its event among those read next.
                let status = store.run_status(&run_id).await.ok()??;
                let events = store.run_events(&run_id, after).await.ok()?;
                if let Some(last) = events.last() {
                    after = last.seq;
                    let mut out = String::new();
                    // The stream ends with the run, or when it waits for
                    // the client *now*: a `requires_action` already
                    // answered (the run queued again after it) does not
                    // end it.
                    let mut ended = last.kind == "run.requires_action";
                    for e in &events {
                        out.push_str("id: ");
                        out.push_str(&e.seq.to_string());
                        out.push_str("\nevent: ");
                        out.push_str(&e.kind);
                        out.push_str("\ndata: ");
                        out.push_str(&e.body);
                        out.push_str("\n\n");
                        ended |= ends_stream(&e.kind);
                    }
                    return Some((Bytes::from(out), (rt, run_id, after, signal, ended)));
                }
                // Nothing new: a run that had ended or was waiting for the
                // client before its events were read will say nothing more.
                if matches!(
                    status.as_str(),
                    "completed" | "failed" | "cancelled" | "expired" | "requires_action"
                ) {
                    return None;
                }
                let _ = tokio::time::timeout(ELSEWHERE_RECHECK, signal.changed()).await;
            }
        },
    ))
}

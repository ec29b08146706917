//! The run worker: takes runs from the queue in the store and moves each
//! through its steps, saving the run after every one.
//!
//! Durability rests on three rules:
//! * a worker holds a run by a lease in the store, renewed while it works;
//!   when a worker dies (kill -9, a crash, a lost replica) its runs are
//!   taken over once their lease runs out, from their last saved state;
//! * a model step's output is saved in the run before it is added to the
//!   conversation, and added by item id, so a step is never half-applied;
//! * a tool call's output is saved in the run as soon as it is known, and
//!   a call with a saved output is never made again. A webhook interrupted
//!   before its output was saved is made again with the same
//!   `Idempotency-Key` (`{run}:{call}`), so its receiver applies it once.
//!
//! Every event of a run's log (`GET /v1/runs/{id}/events`) is written
//! with the save it announces, in one transaction, and only if the save
//! holds: the log never tells of a step the run does not have, nor misses
//! one it has, and it is in the order of the run's changes.
//!
//! Each claim after the first asks the contracts again whether this
//! instance may hold the run (a restarted instance may be elsewhere, or
//! under another reading), and each model step is decided on its own.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use treaty_contracts::ToolRef;
use treaty_domain::{Route, StateOp};
use treaty_engine::{Answer, Call, Caller, Error, ModelRequest, Owner, StateAsk, ToolAsk};
use treaty_openai::responses::{CreateResponseRequest, Item, output_from_chat, to_chat_request};
use treaty_policy::Hints;
use treaty_store::{ItemRow, RunChange, RunEvent, RunRow};
use treaty_tools::{Invocation, WebhookTool, call_webhook};

use crate::Runtime;
use crate::agents::{Agent, AgentTool};
use crate::runs::{ActionCall, PendingCall, RequiredAction, RunError, RunState};
use crate::stored::{from_json, invalid, now_ms, to_json};

/// Starts `agents.workers` workers and the expiry sweep; they stop when
/// the runtime is dropped or the handles are aborted.
pub fn spawn_workers(rt: &Arc<Runtime>) -> Vec<tokio::task::JoinHandle<()>> {
    let n = rt.engine.config.agents.workers;
    let mut handles: Vec<_> = (0..n)
        .map(|_| {
            let weak = Arc::downgrade(rt);
            tokio::spawn(async move {
                loop {
                    let Some(rt) = weak.upgrade() else { return };
                    let poll = rt.engine.config.agents.poll_interval;
                    let worked = match claim(&rt).await {
                        Some(row) => {
                            work(&rt, row).await;
                            true
                        }
                        None => false,
                    };
                    if !worked {
                        let wake = rt.clone();
                        drop(rt);
                        let _ = tokio::time::timeout(poll, wake.wake.notified()).await;
                    }
                }
            })
        })
        .collect();
    let weak = Arc::downgrade(rt);
    handles.push(tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let Some(rt) = weak.upgrade() else { return };
            let before = now_ms() - ACTION_TIMEOUT.as_millis() as i64;
            let expired = rt
                .engine
                .store
                .expire_runs(before, now_ms(), "run.expired", |id| {
                    json!({"id": id, "status": "expired"}).to_string()
                })
                .await;
            match expired {
                Ok(_) => rt.changed.raise(),
                Err(e) => tracing::warn!(error = %e, "cannot expire runs"),
            }
        }
    }));
    handles
}

/// How long a run waits for the client in `requires_action`.
const ACTION_TIMEOUT: Duration = Duration::from_secs(600);

async fn claim(rt: &Runtime) -> Option<RunRow> {
    let lease = rt.engine.config.agents.lease.as_millis() as i64;
    match rt
        .engine
        .store
        .claim_run(&rt.owner, now_ms(), now_ms() + lease)
        .await
    {
        Ok(row) => row,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim a run");
            None
        }
    }
}

/// Why a run stops being worked on.
enum Stop {
    /// Saved in a state the worker leaves (`requires_action`, an end).
    Parked,
    /// The lease was lost or the run was cancelled meanwhile.
    Lost,
}

struct Job<'g> {
    rt: &'g Runtime,
    row: RunRow,
    state: RunState,
    /// The key that created the run, with the data classification the run
    /// was created with: each model step and tool call is decided for it.
    caller: Caller,
    agent: Agent,
}

async fn work(rt: &Runtime, row: RunRow) {
    let run_id = row.id.clone();
    let owner = rt.owner.clone();
    // Keeps the lease while a step takes long (a slow webhook).
    let lease = rt.engine.config.agents.lease;
    let store = rt.engine.store.clone();
    let renew_id = run_id.clone();
    let renewer = tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease / 3).await;
            let until = now_ms() + lease.as_millis() as i64;
            if !matches!(
                store.renew_run_lease(&renew_id, &owner, until).await,
                Ok(true)
            ) {
                return;
            }
        }
    });
    if let Err(e) = run(rt, row).await {
        tracing::warn!(run = %run_id, error = %e.message, "run worker error");
    }
    renewer.abort();
}

async fn run(rt: &Runtime, row: RunRow) -> Result<Stop, Error> {
    let mut state: RunState = from_json(&row.body)?;
    state.claims += 1;
    state.public.status = "in_progress".into();
    let key = match rt.engine.key_by_id(&state.key_id).await {
        Ok(k) => k,
        Err(e) => {
            return fail_raw(rt, &row, state, "invalid_api_key", &e.message).await;
        }
    };
    let agent = match rt.engine.store.agent(&row.tenant, &row.agent_id).await {
        Ok(Some(a)) => from_json::<Agent>(&a.body)?,
        Ok(None) => {
            return fail_raw(
                rt,
                &row,
                state,
                "agent_not_found",
                "The run's agent was deleted.",
            )
            .await;
        }
        Err(e) => return Err(Error::store(e)),
    };
    let caller = Caller {
        key,
        request_id: format!("{}.claim{}", row.id, state.claims),
        hints: Hints {
            data_classification: state.data_classification.clone(),
            ..Hints::default()
        },
    };
    let mut job = Job {
        rt,
        row,
        state,
        caller,
        agent,
    };
    if job.state.claims > 1 {
        // Continuing the run: may this instance hold it, now?
        let gate = rt
            .engine
            .gate_state(
                &job.caller,
                StateAsk {
                    op: StateOp::RunResume,
                    id: &job.row.id,
                    model: &job.agent.model,
                    features: treaty_policy::conversation(),
                    owner: Some(Owner {
                        tenant: &job.row.tenant,
                        product: &job.row.product,
                    }),
                },
            )
            .await;
        match gate {
            Ok(held) => held.finish::<()>(&Ok(())),
            Err(e) => return job.fail(e.code.as_str(), &e.message).await,
        }
    }
    if !job
        .save_logged("in_progress", "run.in_progress", None)
        .await?
    {
        return Ok(Stop::Lost);
    }
    job.steps().await
}

async fn fail_raw(
    rt: &Runtime,
    row: &RunRow,
    mut state: RunState,
    code: &str,
    message: &str,
) -> Result<Stop, Error> {
    state.public.status = "failed".into();
    state.public.last_error = Some(RunError {
        code: code.into(),
        message: message.into(),
    });
    let body = to_json(&state)?;
    let data = to_json(&state.public)?;
    let now = now_ms();
    let saved = rt
        .engine
        .store
        .save_run(
            &row.id,
            &rt.owner,
            RunChange {
                status: "failed",
                body: &body,
                at_ms: now,
            },
            0,
            Some(RunEvent {
                kind: "run.failed",
                at_ms: now,
                body: &data,
            }),
        )
        .await
        .map_err(Error::store)?;
    rt.changed.raise();
    Ok(if saved { Stop::Parked } else { Stop::Lost })
}

impl Job<'_> {
    /// Saves the run; false when the lease was lost or it was cancelled.
    async fn save(&mut self, status: &str) -> Result<bool, Error> {
        self.save_with(status, None).await
    }

    /// Saves the run and logs `kind` with the save (nothing when the save
    /// is refused). The event's data is `data`, or by default the run as
    /// saved.
    async fn save_logged(
        &mut self,
        status: &str,
        kind: &str,
        data: Option<&Value>,
    ) -> Result<bool, Error> {
        self.save_with(status, Some((kind, data))).await
    }

    async fn save_with(
        &mut self,
        status: &str,
        event: Option<(&str, Option<&Value>)>,
    ) -> Result<bool, Error> {
        self.state.public.status = status.into();
        let body = to_json(&self.state)?;
        let data = match event {
            Some((_, Some(data))) => Some(to_json(data)?),
            Some((_, None)) => Some(to_json(&self.state.public)?),
            None => None,
        };
        let now = now_ms();
        let lease = self.rt.engine.config.agents.lease.as_millis() as i64;
        let event = event
            .zip(data.as_deref())
            .map(|((kind, _), body)| RunEvent {
                kind,
                at_ms: now,
                body,
            });
        let logged = event.is_some();
        let saved = self
            .rt
            .engine
            .store
            .save_run(
                &self.row.id,
                &self.rt.owner,
                RunChange {
                    status,
                    body: &body,
                    at_ms: now,
                },
                now + lease,
                event,
            )
            .await
            .map_err(Error::store)?;
        if saved && logged {
            self.rt.changed.raise();
        }
        Ok(saved)
    }

    async fn fail(&mut self, code: &str, message: &str) -> Result<Stop, Error> {
        self.state.public.last_error = Some(RunError {
            code: code.into(),
            message: message.into(),
        });
        self.state.public.required_action = None;
        if !self.save_logged("failed", "run.failed", None).await? {
            return Ok(Stop::Lost);
        }
        Ok(Stop::Parked)
    }

    /// The run's loop: settle the last step's tool calls, then make the
    /// next model step, until the run ends or waits for the client.
    async fn steps(&mut self) -> Result<Stop, Error> {
        loop {
            if !self.append_turn().await? {
                return Ok(Stop::Lost);
            }
            if !self.state.pending.is_empty() {
                match self.settle_calls().await? {
                    Some(stop) => return Ok(stop),
                    None => continue,
                }
            }
            if self.state.public.steps >= self.rt.engine.config.agents.max_steps {
                let max = self.rt.engine.config.agents.max_steps;
                return self
                    .fail(
                        "max_steps_exceeded",
                        &format!("The run made {max} model steps without finishing."),
                    )
                    .await;
            }
            let step = match self.model_step().await {
                Ok(s) => s,
                Err(e) => return self.fail(e.code.as_str(), &e.message).await,
            };
            if let Some(stop) = step {
                return Ok(stop);
            }
        }
    }

    /// Adds the saved items of the last step to the conversation (those
    /// not there yet), then forgets them.
    async fn append_turn(&mut self) -> Result<bool, Error> {
        if self.state.turn.is_empty() {
            return Ok(true);
        }
        let store = &self.rt.engine.store;
        let conv = &self.row.conversation_id;
        let mut rows = Vec::new();
        for item in &self.state.turn {
            let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
            let present = store
                .conversation_item(conv, id)
                .await
                .map_err(Error::store)?
                .is_some();
            if !present {
                rows.push(ItemRow {
                    item_id: id.to_owned(),
                    body: to_json(item)?,
                });
            }
        }
        store
            .append_conversation_items(conv, &rows, now_ms())
            .await
            .map_err(Error::store)?;
        self.state.turn.clear();
        self.save("in_progress").await
    }

    /// Makes the calls the model asked for, or parks the run for the
    /// client. `None`: every call has its output, carry on.
    async fn settle_calls(&mut self) -> Result<Option<Stop>, Error> {
        let needs_approval: Vec<ActionCall> = self
            .state
            .pending
            .iter()
            .filter(|c| c.output.is_none() && c.approval.as_deref() == Some("required"))
            .map(action_call)
            .collect();
        if !needs_approval.is_empty() {
            return self
                .park("approve_tool_calls", needs_approval)
                .await
                .map(Some);
        }
        for i in 0..self.state.pending.len() {
            let call = self.state.pending[i].clone();
            if call.output.is_some() || call.kind == "function" {
                continue;
            }
            let output = self.call_tool(&call).await;
            self.state.pending[i].output = Some(output);
            // The output is durable before anything else happens, and
            // logged with it: an output saved is never made again, so an
            // event left for later could be lost for good.
            let done = json!({"call_id": call.call_id, "name": call.name, "kind": call.kind});
            if !self
                .save_logged("in_progress", "tool_call.completed", Some(&done))
                .await?
            {
                return Ok(Some(Stop::Lost));
            }
        }
        let needs_client: Vec<ActionCall> = self
            .state
            .pending
            .iter()
            .filter(|c| c.output.is_none())
            .map(action_call)
            .collect();
        if !needs_client.is_empty() {
            return self
                .park("submit_tool_outputs", needs_client)
                .await
                .map(Some);
        }
        // Every call answered: their outputs join the conversation.
        for call in std::mem::take(&mut self.state.pending) {
            let item = json!({
                "type": "function_call_output",
                "id": output_item_id(&self.row.id, &call.call_id),
                "call_id": call.call_id,
                "output": call.output.unwrap_or_default(),
                "status": "completed",
            });
            self.state.turn.push(item);
        }
        if !self.save("in_progress").await? {
            return Ok(Some(Stop::Lost));
        }
        Ok(None)
    }

    async fn park(&mut self, kind: &str, calls: Vec<ActionCall>) -> Result<Stop, Error> {
        self.state.public.required_action = Some(RequiredAction {
            kind: kind.into(),
            tool_calls: calls,
        });
        // Logged with the status: a client that sees this event finds the
        // run waiting, and its answer is logged after it.
        if !self
            .save_logged("requires_action", "run.requires_action", None)
            .await?
        {
            return Ok(Stop::Lost);
        }
        Ok(Stop::Parked)
    }

    /// Makes one webhook or MCP call; its answer, or why it could not be
    /// made, is the output the model sees.
    async fn call_tool(&self, call: &PendingCall) -> String {
        if call.approval.as_deref() == Some("denied") {
            return format!(
                "The call was not approved{}.",
                call.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
        }
        if call.kind == "unknown" {
            return format!("There is no tool named '{}'.", call.name);
        }
        let connector = call.connector.as_deref().unwrap_or(call.name.as_str());
        match self.may_use(call, connector).await {
            Ok(None) => {}
            Ok(Some(refused)) => return refused,
            Err(e) => return format!("The tool was not called: {}", e.message),
        }
        let agents = &self.rt.engine.config.agents;
        let result = match call.kind.as_str() {
            "webhook" => {
                let Some(hook) = agents.webhook(&call.name) else {
                    return format!("The webhook tool '{}' is no longer configured.", call.name);
                };
                let secret = agents
                    .webhook_secret
                    .as_ref()
                    .map(|s| s.expose().as_bytes().to_vec())
                    .unwrap_or_default();
                call_webhook(
                    &self.rt.engine.http,
                    &WebhookTool {
                        name: hook.name.clone(),
                        url: hook.url.clone(),
                        timeout: hook.timeout,
                        max_attempts: hook.max_attempts,
                    },
                    &secret,
                    &Invocation {
                        run_id: &self.row.id,
                        call_id: &call.call_id,
                        name: &call.name,
                        arguments: &call.arguments,
                    },
                )
                .await
            }
            _ => {
                let timeout = agents
                    .connector(connector)
                    .map_or(Duration::from_secs(10), |c| c.timeout);
                self.rt
                    .mcp
                    .call_tool(connector, &call.name, &call.arguments, timeout)
                    .await
            }
        };
        result.unwrap_or_else(|e| format!("The tool failed: {e}"))
    }

    /// The contracts' `use` verdict for one call, decided and recorded
    /// by the engine's tool gate (durably, before the call is made);
    /// `Some(message)` when refused.
    async fn may_use(&self, call: &PendingCall, connector: &str) -> Result<Option<String>, Error> {
        self.rt
            .engine
            .gate_tool(
                &self.caller,
                ToolAsk {
                    run_id: &self.row.id,
                    model: &self.state.public.model,
                    call_id: &call.call_id,
                    tool: ToolRef {
                        kind: &call.kind,
                        connector,
                        name: &call.name,
                    },
                },
            )
            .await
    }

    /// One model step on the conversation so far. `Some` when the run
    /// stopped (completed, or lost).
    async fn model_step(&mut self) -> Result<Option<Stop>, Error> {
        let engine = &self.rt.engine;
        let mut history = Vec::new();
        let mut cursor = None;
        loop {
            let page = engine
                .store
                .conversation_items(
                    &self.row.conversation_id,
                    cursor,
                    treaty_store::Order::Asc,
                    500,
                )
                .await
                .map_err(Error::store)?;
            for row in &page {
                history.push(from_json::<Item>(&row.body)?);
            }
            cursor = page.last().map(|r| r.seq);
            if page.len() < 500 {
                break;
            }
        }
        let (tools, kinds) = self.tools().await;
        let instructions = match (&self.agent.instructions, &self.state.public.instructions) {
            (Some(a), Some(r)) => Some(format!("{a}\n\n{r}")),
            (a, r) => a.clone().or_else(|| r.clone()),
        };
        let req: CreateResponseRequest = serde_json::from_value(json!({
            "model": self.agent.model,
            "instructions": instructions,
            "tools": tools,
            "store": false,
        }))
        .map_err(|e| Error::invalid(format!("The agent's tools are invalid: {e}"), None))?;
        let chat = to_chat_request(&req, &history, false).map_err(invalid)?;
        let n = self.state.public.steps + 1;
        let step_id = format!("{}.{n}", self.row.id);
        let answer = engine
            .call(Call {
                caller: &self.caller,
                request_id: &step_id,
                // A step is a chat completion made for the run: classified
                // on that route, so a reading's rules for stateless routes
                // reach it.
                route: Route::ChatCompletions,
                features: treaty_policy::stateless(),
                run_id: Some(&self.row.id),
                request: ModelRequest::Chat(&chat),
            })
            .await?;
        let Answer::Full(full) = answer else {
            return Err(Error::new(
                treaty_engine::Code::UpstreamError,
                "The host streamed a reply that was asked for in full.",
            ));
        };
        let output = output_from_chat(&full.body).map_err(|e| {
            Error::new(
                treaty_engine::Code::UpstreamError,
                format!("The host's reply could not be read: {e}"),
            )
        })?;
        let placed = full.placed;
        let usage = output.usage;
        let u = &mut self.state.public.usage;
        u.input_tokens += usage.input_tokens;
        u.output_tokens += usage.output_tokens;
        u.total_tokens += usage.input_tokens + usage.output_tokens;
        self.state.public.steps = n;
        let mut pending = Vec::new();
        for item in &output.items {
            if let Item::FunctionCall(fc) = item {
                let (kind, connector) = kinds
                    .iter()
                    .find(|(name, _, _)| *name == fc.name)
                    .map(|(_, k, c)| (k.clone(), c.clone()))
                    .unwrap_or(("unknown".into(), None));
                let approval = (kind != "function"
                    && kind != "unknown"
                    && self.agent.approval.required_for(&fc.name))
                .then(|| "required".to_owned());
                pending.push(PendingCall {
                    call_id: fc.call_id.clone(),
                    name: fc.name.clone(),
                    arguments: fc.arguments.clone(),
                    kind,
                    connector,
                    approval,
                    reason: None,
                    output: None,
                });
            }
            self.state
                .turn
                .push(serde_json::to_value(item).map_err(|e| Error::invalid(e.to_string(), None))?);
        }
        let done = pending.is_empty();
        self.state.pending = pending;
        // Logged with the step's saved result: a step lost with the lease
        // is made again by the next worker and logged once, then.
        let completed = json!({
            "step": n,
            "host": placed.host.id.as_str(),
            "cloud": placed.host.cloud.as_str(),
            "workload_class": placed.class.as_str(),
            "clauses": placed.clauses,
            "tool_calls": self.state.pending.len(),
        });
        if !self
            .save_logged("in_progress", "run.step.completed", Some(&completed))
            .await?
        {
            return Ok(Some(Stop::Lost));
        }
        if !done {
            return Ok(None);
        }
        if !self.append_turn().await? {
            return Ok(Some(Stop::Lost));
        }
        if !self.save_logged("completed", "run.completed", None).await? {
            return Ok(Some(Stop::Lost));
        }
        Ok(Some(Stop::Parked))
    }

    /// The agent's tools as Responses function tools, and for each name
    /// its kind and connector.
    async fn tools(&self) -> (Vec<Value>, Vec<(String, String, Option<String>)>) {
        let mut tools = Vec::new();
        let mut kinds = Vec::new();
        for tool in &self.agent.tools {
            match tool {
                AgentTool::Function {
                    name,
                    description,
                    parameters,
                } => {
                    tools.push(json!({"type": "function", "name": name, "description": description, "parameters": parameters}));
                    kinds.push((name.clone(), "function".into(), None));
                }
                AgentTool::Webhook { name } => {
                    if let Some(hook) = self.rt.engine.config.agents.webhook(name) {
                        tools.push(json!({"type": "function", "name": name, "description": hook.description, "parameters": hook.parameters}));
                        kinds.push((name.clone(), "webhook".into(), Some(name.clone())));
                    }
                }
                AgentTool::Mcp {
                    connector,
                    allowed_tools,
                } => match self.rt.mcp.list_tools(connector).await {
                    Ok(defs) => {
                        for d in defs {
                            if allowed_tools.as_ref().is_some_and(|a| !a.contains(&d.name)) {
                                continue;
                            }
                            tools.push(json!({"type": "function", "name": d.name, "description": d.description, "parameters": d.input_schema}));
                            kinds.push((d.name, "mcp".into(), Some(connector.clone())));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(connector = %connector, error = %e, "cannot list an MCP connector's tools");
                    }
                },
            }
        }
        (tools, kinds)
    }
}

fn action_call(c: &PendingCall) -> ActionCall {
    ActionCall {
        call_id: c.call_id.clone(),
        name: c.name.clone(),
        arguments: c.arguments.clone(),
        kind: c.kind.clone(),
    }
}

/// The id of a call's output item: derived from the run and call, so the
/// same output is never added to a conversation twice.
fn output_item_id(run_id: &str, call_id: &str) -> String {
    let digest = Sha256::digest(format!("{run_id}\n{call_id}").as_bytes());
    format!("fco_{}", hex_prefix(&digest))
}

fn hex_prefix(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(32);
    for b in bytes.iter().take(16) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

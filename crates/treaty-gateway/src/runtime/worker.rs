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

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use treaty_contracts::{Query as ContractQuery, ToolRef};
use treaty_domain::{Route, WorkloadClass};
use treaty_keys::VerifiedKey;
use treaty_ledger::{DecisionRecord, Entry, OutcomeRecord, RequestFeatures, ToolVerdict};
use treaty_openai::responses::{CreateResponseRequest, Item, to_chat_request};
use treaty_store::{ItemRow, RunChange, RunEvent, RunRow};
use treaty_tools::{Invocation, McpConnector, McpPool, McpTransport, WebhookTool, call_webhook};

use super::agents::{Agent, AgentTool};
use super::runs::{ActionCall, PendingCall, RequiredAction, RunError, RunState};
use super::{from_json, invalid, now_ms, to_json};
use crate::RequestId;
use crate::error::ApiError;
use crate::pipeline::{Ask, StateAsk, hold_state};
use crate::policy::DATA_CLASSIFICATION_HEADER;
use crate::state::Gateway;

/// The runtime's shared parts, built with the gateway.
pub struct Runtime {
    pub(crate) mcp: McpPool,
    pub(crate) http: reqwest::Client,
    /// Wakes an idle worker when a run is queued by this instance.
    pub(crate) wake: tokio::sync::Notify,
    /// This instance's worker identity, for leases.
    pub(crate) owner: String,
    /// Responses being streamed by this instance, so a cancel stops them.
    pub(crate) live: super::responses::Live,
}

impl Runtime {
    pub(crate) fn new(config: &treaty_config::Config, http: reqwest::Client) -> Runtime {
        let connectors = config.agents.connectors.iter().map(|c| McpConnector {
            id: c.id.clone(),
            transport: match &c.transport {
                treaty_config::ConnectorTransport::Http { url } => McpTransport::Http {
                    url: url.clone(),
                    headers: Vec::new(),
                },
                treaty_config::ConnectorTransport::Stdio { command, args } => McpTransport::Stdio {
                    command: command.clone(),
                    args: args.clone(),
                    env: Vec::new(),
                },
            },
        });
        Runtime {
            mcp: McpPool::new(http.clone(), connectors),
            http,
            wake: tokio::sync::Notify::new(),
            owner: format!("{}:{}", config.instance.id, uuid::Uuid::now_v7().simple()),
            live: super::responses::Live::default(),
        }
    }

    /// Ends MCP sessions (stdio servers are stopped).
    pub async fn shutdown(&self) {
        self.mcp.shutdown().await;
    }
}

/// Starts `agents.workers` workers and the expiry sweep; they stop when
/// the gateway is dropped or the handles are aborted.
pub fn spawn_workers(gw: &Arc<Gateway>) -> Vec<tokio::task::JoinHandle<()>> {
    let n = gw.config.agents.workers;
    let mut handles: Vec<_> = (0..n)
        .map(|_| {
            let weak = Arc::downgrade(gw);
            tokio::spawn(async move {
                loop {
                    let Some(gw) = weak.upgrade() else { return };
                    let poll = gw.config.agents.poll_interval;
                    let worked = match claim(&gw).await {
                        Some(row) => {
                            work(&gw, row).await;
                            true
                        }
                        None => false,
                    };
                    if !worked {
                        let wake = gw.clone();
                        drop(gw);
                        let _ = tokio::time::timeout(poll, wake.runtime.wake.notified()).await;
                    }
                }
            })
        })
        .collect();
    let weak = Arc::downgrade(gw);
    handles.push(tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let Some(gw) = weak.upgrade() else { return };
            let before = now_ms() - ACTION_TIMEOUT.as_millis() as i64;
            let expired = gw
                .store
                .expire_runs(before, now_ms(), "run.expired", |id| {
                    json!({"id": id, "status": "expired"}).to_string()
                })
                .await;
            if let Err(e) = expired {
                tracing::warn!(error = %e, "cannot expire runs");
            }
        }
    }));
    handles
}

/// How long a run waits for the client in `requires_action`.
const ACTION_TIMEOUT: Duration = Duration::from_secs(600);

async fn claim(gw: &Gateway) -> Option<RunRow> {
    let lease = gw.config.agents.lease.as_millis() as i64;
    match gw
        .store
        .claim_run(&gw.runtime.owner, now_ms(), now_ms() + lease)
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
    gw: &'g Gateway,
    row: RunRow,
    state: RunState,
    key: Arc<VerifiedKey>,
    agent: Agent,
    headers: HeaderMap,
}

async fn work(gw: &Gateway, row: RunRow) {
    let run_id = row.id.clone();
    let owner = gw.runtime.owner.clone();
    // Keeps the lease while a step takes long (a slow webhook).
    let lease = gw.config.agents.lease;
    let store = gw.store.clone();
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
    if let Err(e) = run(gw, row).await {
        tracing::warn!(run = %run_id, error = %e.message, "run worker error");
    }
    renewer.abort();
}

async fn run(gw: &Gateway, row: RunRow) -> Result<Stop, ApiError> {
    let mut state: RunState = from_json(&row.body)?;
    state.claims += 1;
    state.public.status = "in_progress".into();
    let mut headers = HeaderMap::new();
    if let Some(dc) = state
        .data_classification
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(DATA_CLASSIFICATION_HEADER, dc);
    }
    let key = match gw.keys.by_id(&state.key_id).await {
        Ok(k) => k,
        Err(e) => {
            return fail_raw(gw, &row, state, "invalid_api_key", &e.to_string()).await;
        }
    };
    let agent = match gw.store.agent(&row.tenant, &row.agent_id).await {
        Ok(Some(a)) => from_json::<Agent>(&a.body)?,
        Ok(None) => {
            return fail_raw(
                gw,
                &row,
                state,
                "agent_not_found",
                "The run's agent was deleted.",
            )
            .await;
        }
        Err(e) => return Err(super::store_error(e)),
    };
    let mut job = Job {
        gw,
        row,
        state,
        key,
        agent,
        headers,
    };
    if job.state.claims > 1 {
        // Continuing the run: may this instance hold it, now?
        let rid = RequestId(format!("{}.claim{}", job.row.id, job.state.claims));
        if let Err(e) = hold_state(
            gw,
            &job.key,
            &rid,
            &job.headers,
            StateAsk {
                route: Route::Runs,
                model: &job.agent.model,
                features: treaty_classify::Features {
                    store: Some(true),
                    previous_response_id: false,
                    conversation: true,
                },
                state_id: &job.row.id,
            },
        )
        .await
        {
            return job.fail(e.code.as_str(), &e.message).await;
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
    gw: &Gateway,
    row: &RunRow,
    mut state: RunState,
    code: &str,
    message: &str,
) -> Result<Stop, ApiError> {
    state.public.status = "failed".into();
    state.public.last_error = Some(RunError {
        code: code.into(),
        message: message.into(),
    });
    let body = to_json(&state)?;
    let data = to_json(&state.public)?;
    let now = now_ms();
    let saved = gw
        .store
        .save_run(
            &row.id,
            &gw.runtime.owner,
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
        .map_err(super::store_error)?;
    Ok(if saved { Stop::Parked } else { Stop::Lost })
}

impl Job<'_> {
    /// Saves the run; false when the lease was lost or it was cancelled.
    async fn save(&mut self, status: &str) -> Result<bool, ApiError> {
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
    ) -> Result<bool, ApiError> {
        self.save_with(status, Some((kind, data))).await
    }

    async fn save_with(
        &mut self,
        status: &str,
        event: Option<(&str, Option<&Value>)>,
    ) -> Result<bool, ApiError> {
        self.state.public.status = status.into();
        let body = to_json(&self.state)?;
        let data = match event {
            Some((_, Some(data))) => Some(to_json(data)?),
            Some((_, None)) => Some(to_json(&self.state.public)?),
            None => None,
        };
        let now = now_ms();
        let lease = self.gw.config.agents.lease.as_millis() as i64;
        let event = event
            .zip(data.as_deref())
            .map(|((kind, _), body)| RunEvent {
                kind,
                at_ms: now,
                body,
            });
        self.gw
            .store
            .save_run(
                &self.row.id,
                &self.gw.runtime.owner,
                RunChange {
                    status,
                    body: &body,
                    at_ms: now,
                },
                now + lease,
                event,
            )
            .await
            .map_err(super::store_error)
    }

    async fn fail(&mut self, code: &str, message: &str) -> Result<Stop, ApiError> {
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
    async fn steps(&mut self) -> Result<Stop, ApiError> {
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
            if self.state.public.steps >= self.gw.config.agents.max_steps {
                let max = self.gw.config.agents.max_steps;
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
    async fn append_turn(&mut self) -> Result<bool, ApiError> {
        if self.state.turn.is_empty() {
            return Ok(true);
        }
        let store = &self.gw.store;
        let conv = &self.row.conversation_id;
        let mut rows = Vec::new();
        for item in &self.state.turn {
            let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
            let present = store
                .conversation_item(conv, id)
                .await
                .map_err(super::store_error)?
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
            .map_err(super::store_error)?;
        self.state.turn.clear();
        self.save("in_progress").await
    }

    /// Makes the calls the model asked for, or parks the run for the
    /// client. `None`: every call has its output, carry on.
    async fn settle_calls(&mut self) -> Result<Option<Stop>, ApiError> {
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

    async fn park(&mut self, kind: &str, calls: Vec<ActionCall>) -> Result<Stop, ApiError> {
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
        let agents = &self.gw.config.agents;
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
                    &self.gw.runtime.http,
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
                self.gw
                    .runtime
                    .mcp
                    .call_tool(connector, &call.name, &call.arguments, timeout)
                    .await
            }
        };
        result.unwrap_or_else(|e| format!("The tool failed: {e}"))
    }

    /// The contracts' `use` verdict for one call, recorded in the ledger
    /// (durably, before the call is made, like every decision);
    /// `Some(message)` when refused. Without contracts, or when no clause
    /// of the reading names `use`, every call is allowed and nothing is
    /// recorded beyond the run's own decisions.
    async fn may_use(
        &self,
        call: &PendingCall,
        connector: &str,
    ) -> Result<Option<String>, ApiError> {
        let Some(contracts) = self.gw.policy.contracts.as_ref() else {
            return Ok(None);
        };
        let dc = self
            .state
            .data_classification
            .clone()
            .unwrap_or_else(|| self.gw.policy.default_data_classification().to_owned());
        let at_ms = now_ms();
        let query = ContractQuery {
            tenant: &self.key.tenant,
            channel: &self.key.channel,
            product: &self.key.product,
            class: WorkloadClass::StatefulAgent,
            data_classification: &dc,
            at_unix_ms: at_ms,
        };
        let verdict = contracts.may_use(
            &query,
            &ToolRef {
                kind: &call.kind,
                connector,
                name: &call.name,
            },
        );
        if verdict.unrestricted {
            return Ok(None);
        }
        let clauses: Vec<String> = verdict
            .clauses
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        let request_id = format!("{}.tool.{}", self.row.id, call.call_id);
        let admission = contracts.decide(&query);
        self.gw
            .ledger
            .append(Entry::Decision(DecisionRecord {
                request_id: request_id.clone(),
                at_ms,
                key_id: self.key.id.clone(),
                tenant: self.key.tenant.to_string(),
                channel: self.key.channel.to_string(),
                product: self.key.product.to_string(),
                route: Route::Runs.path().to_owned(),
                model: self.state.public.model.clone(),
                workload_class: WorkloadClass::StatefulAgent.as_str().to_owned(),
                classified_by: "tool_call".into(),
                data_classification: dc.clone(),
                declared_class: None,
                reading: Some(contracts.reading().to_owned()),
                admitted: admission.admitted,
                admit_clauses: admission
                    .admit_clauses
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
                hosts: Vec::new(),
                chosen: None,
                features: RequestFeatures {
                    store: Some(true),
                    previous_response_id: false,
                    conversation: true,
                },
                model_step: false,
                run_id: Some(self.row.id.clone()),
                refused: (!verdict.allowed).then(|| "contract_refused".to_owned()),
                runtime: None,
                tool: Some(ToolVerdict {
                    call_id: call.call_id.clone(),
                    kind: call.kind.clone(),
                    connector: connector.to_owned(),
                    name: call.name.clone(),
                    allowed: verdict.allowed,
                    clauses: clauses.clone(),
                }),
            }))
            .await
            .map_err(crate::pipeline::ledger_unavailable)?;
        // The decision's outcome: made (its result is the run's business)
        // or refused. Not awaited, as for every outcome.
        self.gw.ledger.record(Entry::Outcome(OutcomeRecord {
            request_id,
            at_ms: now_ms(),
            served_by: None,
            attempts: Vec::new(),
            status: if verdict.allowed { 200 } else { 403 },
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_micros: 0,
            latency_us: 0,
            client_cancelled: false,
            error: (!verdict.allowed).then(|| "contract_refused".to_owned()),
        }));
        if verdict.allowed {
            return Ok(None);
        }
        Ok(Some(format!(
            "Refused by contract (reading {}): tool '{}' may not be used by this tenant's agents [clauses: {}].",
            contracts.reading(),
            call.name,
            clauses.join(",")
        )))
    }

    /// One model step on the conversation so far. `Some` when the run
    /// stopped (completed, or lost).
    async fn model_step(&mut self) -> Result<Option<Stop>, ApiError> {
        let gw = self.gw;
        let mut history = Vec::new();
        let mut cursor = None;
        loop {
            let page = gw
                .store
                .conversation_items(
                    &self.row.conversation_id,
                    cursor,
                    treaty_store::Order::Asc,
                    500,
                )
                .await
                .map_err(super::store_error)?;
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
        .map_err(|e| ApiError::invalid(format!("The agent's tools are invalid: {e}"), None))?;
        let chat = to_chat_request(&req, &history, false).map_err(invalid)?;
        let n = self.state.public.steps + 1;
        let step = super::step::full(
            gw,
            &self.key,
            &self.headers,
            Ask {
                request_id: format!("{}.{n}", self.row.id),
                // A step is a chat completion made for the run: classified
                // on that route, so a reading's rules for stateless routes
                // reach it.
                route: Route::ChatCompletions,
                model: &self.agent.model,
                features: crate::routes::stateless(),
                run_id: Some(&self.row.id),
            },
            &chat,
        )
        .await?;
        let usage = step.output.usage;
        let u = &mut self.state.public.usage;
        u.input_tokens += usage.input_tokens;
        u.output_tokens += usage.output_tokens;
        u.total_tokens += usage.input_tokens + usage.output_tokens;
        self.state.public.steps = n;
        let mut pending = Vec::new();
        for item in &step.output.items {
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
            self.state.turn.push(
                serde_json::to_value(item).map_err(|e| ApiError::invalid(e.to_string(), None))?,
            );
        }
        let done = pending.is_empty();
        self.state.pending = pending;
        // Logged with the step's saved result: a step lost with the lease
        // is made again by the next worker and logged once, then.
        let completed = json!({
            "step": n,
            "host": step.placed.host.id.as_str(),
            "cloud": step.placed.host.cloud.as_str(),
            "workload_class": step.placed.class.as_str(),
            "clauses": step.placed.clauses,
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
                    if let Some(hook) = self.gw.config.agents.webhook(name) {
                        tools.push(json!({"type": "function", "name": name, "description": hook.description, "parameters": hook.parameters}));
                        kinds.push((name.clone(), "webhook".into(), Some(name.clone())));
                    }
                }
                AgentTool::Mcp {
                    connector,
                    allowed_tools,
                } => match self.gw.runtime.mcp.list_tools(connector).await {
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

//! From an authenticated key to a plan, with the evidence written first.
//!
//! [`prepare`] is the part every model route shares: build the request
//! context (model access), classify and decide ([`crate::policy`]), rank
//! the allowed hosts ([`treaty_router`]), and append the decision record
//! to the ledger. Its durability is the ledger's promise:
//!
//! * strict (default): the decision record is committed before this
//!   returns, so before any upstream call; if it cannot be committed the
//!   request fails closed (503) and no host is contacted;
//! * batched: the commit is handed back as a [`Gate`] that the handler
//!   awaits before the response completes (for streams, before `[DONE]`).
//!
//! A contract refusal is a decision too: it is recorded (durably, in
//! strict mode) before the 403 leaves. This is the one place on the hot
//! path that waits on disk, and only for the group commit's batch.

use axum::http::HeaderMap;
use treaty_classify::Features;
use treaty_domain::{RequestContext, Route};
use treaty_keys::VerifiedKey;
use treaty_ledger::{Appended, DecisionRecord, Durability, Entry, HostVerdict, RequestFeatures};
use treaty_router::{HostMask, Plan};

use crate::RequestId;
use crate::error::{ApiError, Code};
use crate::outcome::{Outcome, record};
use crate::policy::{Placement, place};
use crate::routes::context;
use crate::state::Gateway;

/// A decision record's commit, still to be awaited (batched mode).
pub(crate) type Gate = Option<Appended>;

pub(crate) struct Prepared<'g> {
    pub ctx: RequestContext,
    pub placement: Placement<'g>,
    pub plan: Plan,
    pub gate: Gate,
}

pub(crate) fn ledger_unavailable(e: treaty_ledger::LedgerError) -> ApiError {
    tracing::error!(error = %e, "the ledger could not commit a decision record");
    ApiError::new(
        Code::LedgerUnavailable,
        "The decision could not be recorded durably, so the request was not sent to any host.",
    )
}

/// What is being decided.
pub(crate) struct Ask<'a> {
    /// The ledger's id for this decision: the HTTP request id, or for a
    /// model step of the runtime, `{run or response id}.{step}`.
    pub request_id: String,
    pub route: Route,
    pub model: &'a str,
    pub features: Features,
    /// Set for a model step of the agent runtime: the run (or stored
    /// response) it is made for.
    pub run_id: Option<&'a str>,
}

impl<'a> Ask<'a> {
    /// A client's request on a stateless route.
    pub fn request(request_id: &RequestId, route: Route, model: &'a str) -> Ask<'a> {
        Ask {
            request_id: request_id.0.clone(),
            route,
            model,
            features: crate::routes::stateless(),
            run_id: None,
        }
    }
}

pub(crate) async fn prepare<'g>(
    gw: &'g Gateway,
    key: &VerifiedKey,
    headers: &HeaderMap,
    ask: Ask<'_>,
) -> Result<Prepared<'g>, ApiError> {
    let started = std::time::Instant::now();
    let model = ask.model;
    let mut ctx = context(gw, key, ask.request_id, ask.route, model)?;
    let placement = place(
        gw,
        key,
        &mut ctx,
        headers,
        ask.route.path(),
        ask.features,
        ask.run_id.is_some(),
    )?;
    let plan = match placement.refusal {
        Some(_) => Plan {
            hosts: Vec::new(),
            candidates: HostMask::EMPTY,
            down: HostMask::EMPTY,
        },
        None => gw
            .router
            .plan(model, placement.allowed, placement.preferred),
    };
    let mut decided = decision_record(gw, &ctx, &placement, &plan);
    decided.model_step = ask.run_id.is_some();
    decided.run_id = ask.run_id.map(str::to_owned);
    let appended = gw.ledger.append(Entry::Decision(decided));
    let strict = gw.ledger.durability() == Durability::Strict;
    if let Some(refusal) = placement.refusal.clone() {
        if strict {
            appended.await.map_err(ledger_unavailable)?;
        }
        record(gw, &ctx, &Outcome::refused(&refusal, started.elapsed()));
        return Err(refusal);
    }
    let gate = if strict {
        appended.await.map_err(ledger_unavailable)?;
        None
    } else {
        Some(appended)
    };
    Ok(Prepared {
        ctx,
        placement,
        plan,
        gate,
    })
}

/// Decides whether this instance may hold the state a request creates or
/// continues (`route` is the stateful route, `state_id` the response or
/// run id), and records the decision, with the instance and its `hold`
/// verdict, durably whatever the ledger mode: state is only created once
/// the evidence for it is committed. A refusal is recorded, then returned
/// (403 naming the clauses).
pub(crate) async fn hold_state(
    gw: &Gateway,
    key: &VerifiedKey,
    request_id: &RequestId,
    headers: &HeaderMap,
    state: StateAsk<'_>,
) -> Result<(), ApiError> {
    let StateAsk {
        route,
        model,
        features,
        state_id,
    } = state;
    let started = std::time::Instant::now();
    // No model check here: holding state is about the instance, and the
    // model steps check their model themselves.
    let mut ctx = RequestContext {
        request_id: request_id.0.clone(),
        key_id: key.id.clone(),
        tenant: key.tenant.clone(),
        channel: key.channel.clone(),
        product: key.product.clone(),
        route,
        model: model.to_owned(),
        workload_class: None,
        classified_by: None,
    };
    let placement = crate::policy::hold(gw, key, &mut ctx, headers, route.path(), features)?;
    let empty = Plan {
        hosts: Vec::new(),
        candidates: HostMask::EMPTY,
        down: HostMask::EMPTY,
    };
    let mut decided = decision_record(gw, &ctx, &placement, &empty);
    decided.run_id = Some(state_id.to_owned());
    let instance = &gw.config.instance;
    decided.runtime = Some(treaty_ledger::RuntimeVerdict {
        instance: instance.id.clone(),
        cloud: instance.cloud.clone(),
        region: instance.region.clone(),
        allowed: placement.refusal.is_none(),
        clauses: placement
            .decision
            .as_ref()
            .map(|d| {
                let ids = if d.admitted {
                    d.runtime_clauses
                } else {
                    d.admit_clauses
                };
                ids.iter().map(|c| c.as_str().to_owned()).collect()
            })
            .unwrap_or_default(),
    });
    gw.ledger
        .append(Entry::Decision(decided))
        .await
        .map_err(ledger_unavailable)?;
    if let Some(refusal) = placement.refusal {
        record(gw, &ctx, &Outcome::refused(&refusal, started.elapsed()));
        return Err(refusal);
    }
    // The decision's outcome: the state may be held here. What happens to
    // the state next is recorded by the model steps, each on its own.
    record(
        gw,
        &ctx,
        &Outcome {
            status: 200,
            served_by: None,
            attempts: Vec::new(),
            usage: None,
            cost: None,
            latency: started.elapsed(),
            client_cancelled: false,
            error: None,
        },
    );
    Ok(())
}

/// The state a request creates or continues, for [`hold_state`].
pub(crate) struct StateAsk<'a> {
    pub route: Route,
    /// The model the state's steps use; empty for a conversation.
    pub model: &'a str,
    pub features: Features,
    /// The response, conversation, agent or run id.
    pub state_id: &'a str,
}

/// Waits for a batched decision record before the response completes.
pub(crate) async fn pass_gate(gate: Gate) -> Result<(), ApiError> {
    match gate {
        Some(appended) => appended.await.map(|_| ()).map_err(ledger_unavailable),
        None => Ok(()),
    }
}

/// What the ledger keeps of a decision: everything needed to decide the
/// request again under another reading, and nothing of its content.
fn decision_record(
    gw: &Gateway,
    ctx: &RequestContext,
    p: &Placement<'_>,
    plan: &Plan,
) -> DecisionRecord {
    let hosts = gw
        .config
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let (allowed, clauses) = match &p.decision {
                Some(d) => (
                    d.admitted && d.allowed_hosts.contains(i),
                    d.clauses_for_host(i)
                        .iter()
                        .map(|c| c.as_str().to_owned())
                        .collect(),
                ),
                None => (true, Vec::new()),
            };
            HostVerdict {
                host: h.id().to_string(),
                allowed,
                clauses,
            }
        })
        .collect();
    DecisionRecord {
        request_id: ctx.request_id.clone(),
        at_ms: treaty_keys::now_ms(),
        key_id: ctx.key_id.clone(),
        tenant: ctx.tenant.to_string(),
        channel: ctx.channel.to_string(),
        product: ctx.product.to_string(),
        route: ctx.route.path().to_owned(),
        model: ctx.model.clone(),
        workload_class: p.class.as_str().to_owned(),
        classified_by: ctx.classified_by.clone().unwrap_or_default(),
        data_classification: p.data_classification.to_owned(),
        declared_class: p.declared.map(|c| c.as_str().to_owned()),
        reading: gw.policy.reading().map(str::to_owned),
        admitted: p.decision.as_ref().is_none_or(|d| d.admitted),
        admit_clauses: p
            .decision
            .as_ref()
            .map(|d| {
                d.admit_clauses
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
        hosts,
        chosen: plan
            .hosts
            .first()
            .map(|&i| gw.router.host(i).id.to_string()),
        features: RequestFeatures {
            store: p.features.store,
            previous_response_id: p.features.previous_response_id,
            conversation: p.features.conversation,
        },
        model_step: false,
        run_id: None,
        refused: p.refusal.as_ref().map(|e| e.code.as_str().to_owned()),
        runtime: None,
        tool: None,
    }
}

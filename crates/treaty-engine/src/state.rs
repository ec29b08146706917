//! The gate every operation on stored state passes.
//!
//! A stored response, conversation, agent or run remembers the tenant,
//! channel and product it was created under. Before an operation touches
//! one (create, read, list, update, delete, cancel, continue, run, submit
//! tool outputs, approve, stream events, a worker resuming it):
//!
//! 1. the key's tenant must own it and the key's product must be its
//!    product, else **404**, exactly as for an id that does not exist, so
//!    ids never leak across tenants or products; nothing is decided or
//!    recorded (there is nothing the caller may know of);
//! 2. the decision core decides with the key's channel and product
//!    (`admit`: may the channel still sell the product, e.g. C4) and this
//!    instance (`hold`: may it hold the product's state, e.g. C2); the
//!    decision is recorded, durably in either ledger mode (state is only
//!    touched once its evidence is committed), naming the operation;
//! 3. a refusal is a **403** naming the clauses, with its outcome recorded;
//!    otherwise the operation runs and [`Held::finish`] records its outcome
//!    (its status, or the client going away).
//!
//! Every operation is recorded, reads included: a read that returns
//! stored state is the instance using held state, which the contracts
//! govern as much as a write.

use std::time::Instant;

use treaty_classify::Features;
use treaty_domain::{RequestContext, StateOp};
use treaty_ledger::Entry;
use treaty_policy::{Ask, Picks, What};

use crate::caller::Caller;
use crate::engine::Engine;
use crate::error::Error;
use crate::outcome::Outcome;

/// Whose a stored object is.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub tenant: &'a str,
    pub product: &'a str,
}

/// One operation on stored state.
#[derive(Debug, Clone, Copy)]
pub struct StateAsk<'a> {
    pub op: StateOp,
    /// The object's id (the new id, for a create; "" for a list).
    pub id: &'a str,
    /// The model the object's steps use ("" for none).
    pub model: &'a str,
    pub features: Features,
    /// The stored object's owner; `None` for a create or a list.
    pub owner: Option<Owner<'a>>,
}

/// The right to go on with an operation, held until its outcome is
/// recorded.
#[must_use = "an operation's outcome must be recorded with Held::finish"]
pub struct Held {
    ledger: treaty_ledger::Ledger,
    metrics: std::sync::Arc<treaty_telemetry::Metrics>,
    ctx: Option<RequestContext>,
    started: Instant,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").finish_non_exhaustive()
    }
}

impl Held {
    /// Records the operation's outcome: 200, or the error's status.
    pub fn finish<T>(mut self, result: &Result<T, Error>) {
        let outcome = match result {
            Ok(_) => Outcome::ok(self.started.elapsed()),
            Err(e) => Outcome::error(e, self.started.elapsed()),
        };
        self.record(&outcome);
    }

    fn record(&mut self, outcome: &Outcome) {
        if let Some(ctx) = self.ctx.take() {
            crate::outcome::record(&self.ledger, &self.metrics, &ctx, outcome);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Dropped unfinished: the client went away mid-operation.
        let outcome = Outcome {
            client_cancelled: true,
            ..Outcome::ok(self.started.elapsed())
        };
        self.record(&outcome);
    }
}

impl Engine {
    /// Passes one operation on stored state through the gate (see the
    /// module docs). `Ok` carries the right to go on; its outcome is
    /// recorded by [`Held::finish`].
    pub async fn gate_state(&self, caller: &Caller, ask: StateAsk<'_>) -> Result<Held, Error> {
        let started = Instant::now();
        let key = &caller.key;
        if let Some(owner) = ask.owner
            && (owner.tenant != key.tenant.as_str() || owner.product != key.product.as_str())
        {
            return Err(Error::not_found(ask.op.kind().noun(), ask.id));
        }
        let decision_ask = Ask {
            request_id: &caller.request_id,
            subject: caller.subject(),
            what: What::State {
                op: ask.op,
                model: ask.model,
            },
            features: ask.features,
            hints: &caller.hints,
            run_id: (!ask.id.is_empty()).then_some(ask.id),
            model_step: false,
            at_ms: treaty_domain::now_ms(),
        };
        let decided = self.policy.decide(&decision_ask)?;
        self.count_decision(&decided);
        let ctx = RequestContext {
            request_id: caller.request_id.clone(),
            key_id: key.id.clone(),
            tenant: key.tenant.clone(),
            channel: key.channel.clone(),
            product: key.product.clone(),
            route: ask.op.kind().route(),
            model: ask.model.to_owned(),
            workload_class: Some(decided.class),
            classified_by: Some(decided.rule.to_owned()),
        };
        let record = decided.record(&self.policy, &decision_ask, Picks::default());
        self.ledger
            .append(Entry::Decision(record))
            .await
            .map_err(Error::ledger)?;
        let held = Held {
            ledger: self.ledger.clone(),
            metrics: self.metrics.clone(),
            ctx: Some(ctx),
            started,
        };
        if let Some(refusal) = &decided.refusal {
            let err = Error::from(refusal);
            held.finish::<()>(&Err(err.clone()));
            return Err(err);
        }
        Ok(held)
    }
}

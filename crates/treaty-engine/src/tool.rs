//! The gate every tool call of a run passes: the `use` decision.
//!
//! Before a webhook or MCP call is made, the decision core decides
//! whether the run's key may still be sold its product (`admit`) and may
//! use the tool (`use`); the decision is recorded durably, through the
//! same builder as every decision, before the call. Every tool call is
//! recorded, also when no clause of the reading governs `use` (then it is
//! allowed with no clauses), so the ledger lists each call a run made.

use std::time::Instant;

use treaty_contracts::ToolRef;
use treaty_domain::{RequestContext, Route};
use treaty_ledger::Entry;
use treaty_policy::{Ask, Picks, What};

use crate::caller::Caller;
use crate::engine::Engine;
use crate::error::Error;
use crate::outcome::Outcome;

/// One tool call a run wants to make.
#[derive(Debug, Clone, Copy)]
pub struct ToolAsk<'a> {
    pub run_id: &'a str,
    /// The run's model.
    pub model: &'a str,
    /// The model's id for the call.
    pub call_id: &'a str,
    pub tool: ToolRef<'a>,
}

impl Engine {
    /// Decides and records one tool call. `Ok(None)`: make the call;
    /// `Ok(Some(message))`: the contracts refused it, and the message says
    /// so for the model; `Err`: the decision could not be recorded.
    pub async fn gate_tool(
        &self,
        caller: &Caller,
        ask: ToolAsk<'_>,
    ) -> Result<Option<String>, Error> {
        let started = Instant::now();
        let request_id = format!("{}.tool.{}", ask.run_id, ask.call_id);
        let decision_ask = Ask {
            request_id: &request_id,
            subject: caller.subject(),
            what: What::Tool {
                tool: ask.tool,
                call_id: ask.call_id,
                model: ask.model,
            },
            features: treaty_policy::stored(),
            hints: &caller.hints,
            run_id: Some(ask.run_id),
            model_step: false,
            at_ms: treaty_domain::now_ms(),
        };
        let decided = self.policy.decide(&decision_ask)?;
        let record = decided.record(&self.policy, &decision_ask, Picks::default());
        self.ledger
            .append(Entry::Decision(record))
            .await
            .map_err(Error::ledger)?;
        let key = &caller.key;
        let ctx = RequestContext {
            request_id,
            key_id: key.id.clone(),
            tenant: key.tenant.clone(),
            channel: key.channel.clone(),
            product: key.product.clone(),
            route: Route::Runs,
            model: ask.model.to_owned(),
            workload_class: Some(decided.class),
            classified_by: Some(decided.rule.to_owned()),
        };
        // The decision's outcome: made (its result is the run's business)
        // or refused.
        match &decided.refusal {
            None => {
                self.record_outcome(&ctx, &Outcome::ok(started.elapsed()));
                Ok(None)
            }
            Some(refusal) => {
                let err = Error::from(refusal);
                self.record_outcome(&ctx, &Outcome::error(&err, started.elapsed()));
                Ok(Some(refusal.message.clone()))
            }
        }
    }
}

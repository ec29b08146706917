//! The decision core: what Treaty decides about a request, and the one
//! builder of the ledger's decision records.
//!
//! Input is an [`Ask`]: who is asking (tenant, channel, product, key), what
//! (a model call on a route, an operation on stored state, or a tool call
//! of a run), the body features classification reads, the client's hints
//! (a declared class, a data classification, a preferred host) and the
//! instant. Output is a [`Decided`]: the workload class and the rule that
//! set it, admission, every host's verdict with its clauses, the `hold`
//! verdict for this instance, the `use` verdict for a tool, the refusal
//! when there is one, and the same request under each shadow reading.
//! [`Decided::record`] turns it into the [`treaty_ledger::DecisionRecord`]:
//! no other code builds one.
//!
//! Everything here is a table lookup over contracts loaded once (see
//! `treaty-contracts`). This crate never reads HTTP, never routes (the
//! caller passes the router's picks to [`Decided::record`]), never touches
//! the store or the network, and never writes the ledger.

mod ask;
mod decide;
mod explain;
mod policy;
mod record;
mod redecide;

pub use ask::{Ask, AskError, Hints, Subject, What};
pub use decide::{Decided, Hold, Refusal, RefusalKind, Shadow, Tool, join_clauses};
pub use explain::{ExplainError, ExplainRequest, explain, features_of};
pub use policy::{Policy, PolicyError, Reading, load_rules};
pub use record::Picks;
pub use redecide::{reading_clauses, redecide};

/// Body features of routes that never hold state: chat completions'
/// `store` keeps a completion for evals, not agent state.
pub fn stateless() -> treaty_classify::Features {
    treaty_classify::Features {
        store: Some(false),
        previous_response_id: false,
        conversation: false,
    }
}

/// Body features of stored state (a stored response, a conversation, an
/// agent or a run): it is held, so it is `stateful_agent` under the
/// default rules.
pub fn stored() -> treaty_classify::Features {
    treaty_classify::Features {
        store: Some(true),
        previous_response_id: false,
        conversation: false,
    }
}

/// Body features of stored state that continues a conversation (a
/// conversation, or a run on one).
pub fn conversation() -> treaty_classify::Features {
    treaty_classify::Features {
        conversation: true,
        ..stored()
    }
}

#[cfg(test)]
mod tests;

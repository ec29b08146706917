//! Treaty's ledger: the evidence of where every request ran, under which
//! clause.
//!
//! Every request leaves a [`DecisionRecord`] (durable before it reaches a
//! host) and an [`OutcomeRecord`] (what happened). Records are kept in one
//! append-only SHA-256 hash chain per deployment and, over the same
//! records, an RFC 9162 Merkle tree ([`merkle`]), committed in groups by
//! one writer task per [`Ledger`] (so a burst costs one sync, not one per
//! request), with sequence numbers allocated under a single head-row lock
//! so several gateway replicas on PostgreSQL still build one log. A key
//! kept *outside* the store ([`Signer`]) signs C2SP checkpoints ([`note`]),
//! which leave the store ([`PublishSettings`]: a directory, HTTP, and
//! witnesses that cosign only consistent growth, [`witness`]); receipts
//! ([`Receipt`]) and inclusion proofs ([`InclusionProof`]) let a client
//! prove its own records to anyone.
//!
//! Around the chain: [`verify`] recomputes it and names the first bad
//! sequence number, [`report`] / [`export`] / [`html_report`] read it for
//! people (by key, host, channel, product, clause, tenant, class, time
//! bucket, and where the shadow readings recorded beside each decision
//! part from the reading in force), and [`simulate`] replays recorded
//! decisions under two readings of the contracts and names what separates
//! them (decided by closures the caller passes, so this crate depends
//! neither on the gateway nor on Cedar).
//!
//! The writer, the publisher and the witness's HTTP server are behind the
//! `net` feature: the decision core depends on this crate for its record
//! types and must not pull in an HTTP stack.
//!
//! The ledger never stores prompts, completions or secrets, never decides
//! or routes, and never edits or deletes a record once written: the only
//! writes are appends, the head, and checkpoints.

mod buckets;
mod chain;
mod divergence;
mod export;
mod html;
mod key;
pub mod merkle;
pub mod note;
mod proof;
#[cfg(feature = "net")]
mod publish;
mod receipt;
mod record;
mod report;
mod scan;
mod signer;
mod simulate;
pub mod svg;
mod verify;
pub mod witness;
#[cfg(feature = "net")]
mod writer;

use std::sync::Arc;

pub use buckets::auto_bucket;
pub use chain::{CHECKPOINT_DOMAIN, GENESIS, checkpoint_message, link};
pub use divergence::{Divergence, Parting, divergence_summary};
pub use export::{Format, export, export_with_progress};
pub use html::html_report;
pub use key::{PublicKey, active_key, log_keys, pubkey};
pub use proof::{InclusionProof, ProofError, ProvenRecord, prove_request, prove_seq};
#[cfg(feature = "net")]
pub use publish::{PublishSettings, WitnessTarget};
pub use receipt::{RECEIPT_DOMAIN, Receipt, ReceiptError, decision_leaf};
pub use record::{
    AdminRecord, AttemptRecord, DecisionRecord, Entry, HostVerdict, KeyRecord, Kind, OutcomeRecord,
    RequestFeatures, RuntimeVerdict, ShadowVerdict, ToolVerdict,
};
pub use report::{Dimension, ReportRow, report, report_cells, report_columns, write_report_csv};
pub use scan::{
    Fate, NO_HOST, TimeRange, clause_roles, decode, each_request, fate, host_of, refusal_causes,
};
pub use signer::{
    KeySigner, Signer, SignerSource, default_origin, keygen, signer_for, write_key_file,
};
pub use simulate::{
    ClauseCount, ClauseImpact, GroupImpact, HostMove, Impact, ReadingClauses, Redecision,
    RuleChange, ScopedClause, Simulation, SimulationReport, Verdicts, simulate, simulate_in,
};
pub use verify::{
    Anchor, AnchorKind, KeySource, Problem, ProblemKind, VerifyOptions, VerifyReport, verify,
};
#[cfg(feature = "net")]
pub use writer::{Appended, BatchObserver, Durability, Ledger, LedgerSettings, LedgerStats};

/// What can go wrong in the ledger. Verification findings are not errors:
/// they are the [`VerifyReport`]'s `problem`.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] treaty_store::StoreError),
    /// The batch holding the record failed to commit; every record of the
    /// batch gets the same cause.
    #[error("the ledger could not commit the record's batch: {0}")]
    Commit(#[source] Arc<treaty_store::StoreError>),
    #[error("the ledger is shut down")]
    Closed,
    #[error("the ledger writer stopped abnormally: {0}")]
    Writer(String),
    #[error("cannot encode a ledger record: {0}")]
    Encode(String),
    #[error("ledger record {seq} cannot be read: {detail}")]
    Corrupt { seq: i64, detail: String },
    #[error("ledger key: {0}")]
    Key(String),
    #[error("invalid range: {0}")]
    Range(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot write CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("cannot publish checkpoints: {0}")]
    Publish(String),
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;

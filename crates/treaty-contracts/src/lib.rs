//! Treaty's contract engine: contracts as Cedar policies, decided by table.
//!
//! A *reading* is a directory of `.cedar` files; each policy is a clause
//! annotated with `@id`, `@title`, `@source`, optionally `@effective_from` /
//! `@effective_until` (whole UTC days, both ends included) and
//! `@kind("preference")`. Policies are validated against Treaty's schema
//! ([`SCHEMA`], documented in the `schema` module) when they load; an invalid
//! contract is an error naming the file, line and reason.
//!
//! Semantics are Cedar's: a matching forbid refuses, else a matching permit
//! allows, else refused. Exceptions (C6 to C1) live in the `unless` of the
//! forbid they relax and are also permits of their own so explanations name
//! them. Preferences rank the allowed hosts and never widen them.
//!
//! Loading computes, with Cedar, the verdict of every request shape the
//! configured entities allow, so [`Contracts::decide`] is a table lookup
//! with no allocation and no Cedar call. [`Contracts::check`] finds dead
//! zones by enumeration and, with cvc5, clauses that never apply, shadowed
//! permits and conflicting pairs symbolically.
//!
//! Tool use (action `use`) is the exception to the table: tools are not
//! configured entities and calls are rare, so [`Contracts::may_use`] asks
//! Cedar per call. Until a clause names `use`, tool use is unrestricted.
//!
//! This crate decides; it never routes, classifies, or touches the network.

mod check;
mod clause;
mod contracts;
mod decision;
mod entities;
mod error;
mod schema;
mod source;
mod table;
mod tools;

pub use check::{CheckOptions, CheckReport, Finding, FindingKind, Severity, SymbolicStatus};
pub use clause::{Clause, ClauseId, ClauseKind, ContractAction, Effect, Window};
pub use contracts::Contracts;
pub use decision::{
    Decision, Explanation, HostSet, HostVerdict, Query, RuntimeVerdict, ToolRef, ToolVerdict,
};
pub use entities::{Entities, MAX_HOSTS, NO_CLOUD};
pub use error::{ContractError, SourceError};
pub use schema::SCHEMA;

/// Whether cvc5 is available for the symbolic checks, and if not, why.
pub fn solver_available(opts: &CheckOptions) -> Result<(), String> {
    check::probe(opts).map(|_| ())
}

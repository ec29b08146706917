//! Treaty's Cedar schema, shipped in the binary.
//!
//! Entity types and attributes (all attributes required):
//!
//! | type | attributes |
//! |---|---|
//! | `Tenant` | `segment: String`, `data_region: String` |
//! | `Channel` | `kind: String` (`first_party`, `third_party_cloud`, `reseller`), `cloud: String` (`"none"` when no marketplace) |
//! | `Product` | `kind: String` (`api`, `first_party`, `non_api`) |
//! | `Host` | `cloud`, `region`, `geography` (region prefix: `us`, `eu`), `provider: String`, `certifications: Set<String>` |
//! | `Instance` | `cloud`, `region`, `geography: String` |
//! | `Tool` | `kind: String` (`function`, `webhook`, `mcp`), `connector: String` (the MCP connector id; a webhook tool's name; `"client"` for function tools), `name: String` (as the model calls it) |
//!
//! A `Tool` entity's id is `"<connector>/<name>"` (e.g.
//! `Tool::"github/create_issue"`), but clauses should read its attributes.
//!
//! Actions, all with principal `Tenant` and context `{class: String,
//! channel: Channel, product: Product, data_classification: String}`:
//!
//! - `admit` (resource `Product`): may this channel sell this product to
//!   this tenant?
//! - `host` (resource `Host`): may this request run on this host?
//! - `hold` (resource `Instance`): may this instance hold the stateful
//!   runtime for this request's product?
//! - `prefer` (resource `Host`): preference clauses; they rank allowed hosts
//!   and never widen the set.
//! - `use` (resource `Tool`): may this tenant's agents call this tool (a
//!   client function tool, an HTTP webhook tool, a tool of an MCP
//!   connector)?
//!
//! `use` is the one action that is not in the verdict table: tools are not
//! configured entities and calls are rare (a few per agent run), so
//! [`crate::Contracts::may_use`] asks Cedar at call time, with the clauses in
//! force at the call's instant. Its default differs too, so that readings
//! written before `use` existed keep working:
//!
//! - if no clause of the reading names `Action::"use"` in its action scope,
//!   tool use is unrestricted: every call is allowed and no clause is named;
//! - once one does, `use` is decided like every other action: a matching
//!   forbid refuses, else a matching permit allows, else refused (so a
//!   reading that restricts tools also needs a permit such as
//!   `permit (principal, action == Action::"use", resource);`).
//!
//! A clause whose scope leaves the action open (`permit (principal, action,
//! resource)`) applies to `use` calls once the reading governs them, but does
//! not by itself make the reading govern them: it was not written with tools
//! in mind, and counting it would refuse every tool call of a reading that
//! has only such a forbid.
//!
//! Time is not in the context: a clause's effective window is its
//! `@effective_from` / `@effective_until` annotations, so the engine can
//! precompute verdicts per time segment.

use cedar_policy::Schema;

use crate::error::ContractError;

/// The schema source, `treaty.cedarschema`.
pub const SCHEMA: &str = include_str!("treaty.cedarschema");

pub(crate) fn schema() -> Result<Schema, ContractError> {
    let (schema, _warnings) = Schema::from_cedarschema_str(SCHEMA)
        .map_err(|e| ContractError::Internal(format!("Treaty's own schema: {e}")))?;
    Ok(schema)
}

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

//! The parties and resources of a deal, and the context a request carries.
//!
//! This crate owns the vocabulary every other part of Treaty speaks: tenants
//! (who buys), channels (who sold), products (what was sold), hosts (where a
//! request runs), Treaty instances (where state is held), workload classes,
//! and the [`RequestContext`] that travels with a request through
//! authentication, classification, the contract decision, routing and the
//! ledger. It holds plain data only: no I/O, no configuration parsing.

pub mod clock;
mod context;
mod entities;
mod ids;

pub use clock::now_ms;
pub use context::{RequestContext, Route, StateKind, StateOp};
pub use entities::{
    Channel, ChannelKind, Geography, Host, Instance, ModelDeployment, Product, ProductKind,
    ProviderKind, Tenant, WorkloadClass,
};
pub use ids::{ChannelId, HostId, IdError, ProductId, TenantId};

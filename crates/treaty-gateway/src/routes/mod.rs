//! HTTP handlers, one module per API surface. Each reads the request into
//! typed values (the caller through [`crate::extract`], the body through
//! [`crate::body`]), calls the engine or the runtime, and writes the
//! answer; none decides, routes or records anything itself.

pub(crate) mod admin;
pub(crate) mod agents;
pub(crate) mod chat;
pub(crate) mod conversations;
pub(crate) mod embeddings;
pub(crate) mod health;
pub(crate) mod ledger;
pub(crate) mod models;
pub mod openapi;
pub(crate) mod responses;
pub(crate) mod runs;

//! Treaty's HTTP edge: the OpenAI-compatible API, the runtime's APIs and
//! the admin API, over the engine and the runtime.
//!
//! [`app`] builds the whole axum application from a [`Gateway`]; tests
//! call it in-process and the CLI serves it with [`serve`]. A request
//! flows: request id and logging middleware → request head limits
//! ([`head`]) → body limit → handler, whose extractors check the caller's
//! key ([`extract`]) and parse the body ([`body`]) → the engine's one
//! model-call path or the runtime → the answer (JSON, or SSE). Every error leaves through [`error::ApiError`]
//! in the OpenAI shape.
//!
//! This crate only translates between HTTP and typed calls: it never
//! decides, routes or records anything itself, and holds no lock across an
//! await.

mod app;
pub mod body;
mod envelope;
pub mod error;
mod extract;
mod gateway;
mod head;
pub mod headers;
mod reply;
pub(crate) mod routes;
mod serve;
mod sse;
pub mod tls;

pub use app::app;
pub use gateway::Gateway;
pub use headers::RequestId;
pub use serve::{Edge, raise_open_files_limit, serve, serve_with};

//! The engine every request passes: who is calling, the one model-call
//! path, and the gates for stored state and tool calls.
//!
//! [`Engine`] holds what requests share (config, store, key checker, the
//! decision core, router, ledger, one provider per host). Its three entry
//! points are the only ways Treaty acts for a client:
//!
//! * [`Engine::call`]: a model call (a chat completion, an embedding, a
//!   stateless Responses call, a model step of a response or a run):
//!   decide, record, route among the allowed hosts only, dispatch with
//!   failover, account, gate, record the outcome ([`call`]);
//! * [`Engine::gate_state`]: an operation on stored state: ownership,
//!   admission and this instance's right to hold it, recorded ([`state`]);
//! * [`Engine::gate_tool`]: a tool call of a run, recorded ([`tool`]).
//!
//! Each records its decision through the decision core's one builder
//! ([`treaty_policy::Decided::record`]) and its outcome through
//! [`outcome`]. Failures are [`Error`]s from one table ([`error`]).
//!
//! Nothing here speaks HTTP to clients (the gateway crate is the edge),
//! holds a lock across an await, or touches disk per request except the
//! ledger's commit where its durability promise says so.

mod admission;
pub mod call;
mod caller;
mod dispatch;
mod engine;
pub mod error;
pub mod outcome;
pub mod state;
pub mod stream;
pub mod tool;

pub use call::{Answer, Call, Full, ModelRequest, Placed};
pub use caller::Caller;
pub use dispatch::{Attempt, client_facing};
pub use engine::{BuildError, Engine, digest_matches, ledger_settings};
pub use error::{Code, Error};
pub use state::{Held, Owner, StateAsk};
pub use stream::{CallStream, End, StreamItem};
pub use tool::ToolAsk;

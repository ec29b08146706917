//! The stateful runtime: the Responses API with stored state, the
//! Conversations API, agents and their durable runs.
//!
//! Treaty holds the state itself, in its store, and only where the
//! contracts let this instance hold the product's runtime. Every
//! operation on stored state, reads included, passes the engine's state
//! gate ([`treaty_engine::Engine::gate_state`]): the key's tenant must own
//! the object and the key's product must be its product (else 404, as for
//! an unknown id), the channel must still be admitted for the product and
//! this instance must be allowed to hold it (else 403 naming the
//! clauses), and the decision is in the ledger. Every model call the
//! runtime makes is a model step through the one model-call path
//! ([`treaty_engine::Engine::call`]), and every tool call passes the `use`
//! gate ([`treaty_engine::Engine::gate_tool`]).
//!
//! The functions here take typed requests from the HTTP edge and give
//! back a [`Reply`]; they never read HTTP headers or write HTTP responses.

pub mod agents;
pub mod conversations;
mod live;
pub mod page;
mod references;
pub mod responses;
pub mod runs;
mod stored;
pub mod worker;

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use treaty_engine::{Engine, Placed};
use treaty_tools::{McpConnector, McpPool, McpTransport};

pub use page::PageQuery;

/// Server-sent events, each already framed (`event:`/`data:` lines).
pub type Events = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// What a runtime operation answers.
pub enum Reply {
    /// A JSON object, and where its model step ran (if it made one).
    Json {
        body: String,
        placed: Option<Placed>,
    },
    /// An event stream.
    Events {
        events: Events,
        placed: Option<Placed>,
    },
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Json { body, .. } => f.debug_struct("Json").field("len", &body.len()).finish(),
            Reply::Events { .. } => f.write_str("Events"),
        }
    }
}

/// The runtime's shared parts: the engine, tool clients, and this
/// instance's worker identity and signals.
pub struct Runtime {
    pub engine: Arc<Engine>,
    pub(crate) mcp: McpPool,
    /// Wakes an idle worker when a run is queued by this instance.
    pub(crate) wake: tokio::sync::Notify,
    /// This instance's worker identity, for leases.
    pub(crate) owner: String,
    /// Responses being streamed by this instance, so a cancel stops them.
    pub(crate) live: live::Live,
    /// Tells run-event readers that a run changed on this instance.
    pub(crate) changed: live::RunSignals,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// Records a gated operation's outcome and hands its result on.
pub(crate) fn settled<T>(
    held: treaty_engine::Held,
    result: Result<T, treaty_engine::Error>,
) -> Result<T, treaty_engine::Error> {
    held.finish(&result);
    result
}

impl Runtime {
    pub fn new(engine: Arc<Engine>) -> Arc<Runtime> {
        let config = &engine.config;
        let connectors = config.agents.connectors.iter().map(|c| McpConnector {
            id: c.id.clone(),
            transport: match &c.transport {
                treaty_config::ConnectorTransport::Http { url } => McpTransport::Http {
                    url: url.clone(),
                    headers: Vec::new(),
                },
                treaty_config::ConnectorTransport::Stdio { command, args } => McpTransport::Stdio {
                    command: command.clone(),
                    args: args.clone(),
                    env: Vec::new(),
                },
            },
        });
        let owner = format!("{}:{}", config.instance.id, uuid::Uuid::now_v7().simple());
        Arc::new(Runtime {
            mcp: McpPool::new(engine.http.clone(), connectors),
            wake: tokio::sync::Notify::new(),
            owner,
            live: live::Live::default(),
            changed: live::RunSignals::default(),
            engine,
        })
    }

    /// Ends MCP sessions (stdio servers are stopped).
    pub async fn shutdown(&self) {
        self.mcp.shutdown().await;
    }
}

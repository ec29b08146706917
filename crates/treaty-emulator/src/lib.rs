//! Treaty's emulated upstream LLM providers: a real HTTP server that speaks
//! the OpenAI, Azure OpenAI and OpenAI-compatible wire protocols with
//! deterministic answers, streaming, tool calls, embeddings, usage,
//! configurable latency and per-request faults. Tests, the demo and load
//! benchmarks point Treaty at it instead of real clouds; everything it says
//! calls itself an emulation. It shares no types with the gateway, so a
//! gateway bug cannot hide behind a matching bug here.
//!
//! It also emulates the tools an agent calls: an MCP server with two
//! deterministic tools at `/mcp` (Streamable HTTP) or on stdio
//! ([`serve_mcp_stdio`]), and webhook receivers at `/webhooks/{name}` that
//! check signatures and apply each `Idempotency-Key` once.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use treaty_emulator::{Emulator, EmulatorConfig};
//! let emulator = Emulator::start(EmulatorConfig::default(), ([127, 0, 0, 1], 0).into()).await?;
//! let base = format!("{}/azure-eastus/v1", emulator.url());
//! # let _ = base;
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod anthropic;
mod app;
mod auth;
mod bedrock;
mod bulk;
mod completion;
mod control;
mod embeddings;
mod error;
mod faults;
mod gemini;
mod mcp;
mod openai;
mod reply;
mod seed;
mod server;
mod stats;
mod stream;
mod tools;
mod webhooks;

pub use faults::FaultParseError;
pub use mcp::serve_mcp_stdio;

use app::Shared;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The webhook signing secret when none is configured.
pub const DEFAULT_WEBHOOK_SECRET: &[u8] = b"treaty-emulator-webhook-secret";

/// The access key id emulated Bedrock accepts when none is configured.
pub const DEFAULT_AWS_ACCESS_KEY_ID: &str = "AKIDEMULATOR";
/// Its secret access key (a test value, public by design).
pub const DEFAULT_AWS_SECRET_ACCESS_KEY: &str = "emulator/secret/access/key/EXAMPLEKEY00000";

/// How the emulated providers behave when no fault is asked for.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The only key accepted; `None` accepts any non-empty key.
    pub api_key: Option<String>,
    /// Waited before every API response.
    pub latency: Duration,
    /// Waited between streamed chunks.
    pub chunk_delay: Duration,
    /// The secret webhook calls must be signed with (HMAC-SHA256);
    /// [`DEFAULT_WEBHOOK_SECRET`] by default.
    pub webhook_secret: Vec<u8>,
    /// The AWS key pair emulated Bedrock requests must be SigV4-signed
    /// with (and the emulated STS hands out);
    /// [`DEFAULT_AWS_ACCESS_KEY_ID`] and [`DEFAULT_AWS_SECRET_ACCESS_KEY`]
    /// by default.
    pub aws_access_key_id: String,
    pub aws_secret_access_key: String,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            latency: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            webhook_secret: DEFAULT_WEBHOOK_SECRET.to_vec(),
            aws_access_key_id: DEFAULT_AWS_ACCESS_KEY_ID.to_owned(),
            aws_secret_access_key: DEFAULT_AWS_SECRET_ACCESS_KEY.to_owned(),
        }
    }
}

impl EmulatorConfig {
    /// Sets the secret webhook calls must be signed with.
    #[must_use]
    pub fn webhook_secret(mut self, secret: Vec<u8>) -> Self {
        self.webhook_secret = secret;
        self
    }
}

/// Entry points that run the emulator.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves in a spawned tokio task
    /// until the handle is dropped or [`EmulatorHandle::shutdown`] is called.
    pub async fn start(
        config: EmulatorConfig,
        addr: SocketAddr,
    ) -> std::io::Result<EmulatorHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(shared.clone(), listener, async move {
            // Resolves on send or when the handle (and so the sender) is dropped.
            let _ = stopped.await;
        }));
        Ok(EmulatorHandle {
            addr,
            shared,
            _stop: stop,
            task,
        })
    }

    /// Serves on an already bound listener until `shutdown` resolves (for `treaty emulate`).
    pub async fn serve(
        config: EmulatorConfig,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        server::serve(Arc::new(Shared::new(config)), listener, shutdown).await
    }
}

/// A running emulator; dropping it stops the server.
#[derive(Debug)]
pub struct EmulatorHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping this sender is the shutdown signal.
    _stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl EmulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// API requests received under `host` (control routes are not counted).
    pub fn requests_for(&self, host: &str) -> u64 {
        self.shared.stats.requests_for(host)
    }

    /// Queues `fault` for `host`'s next `count` requests (`None`: until
    /// cleared), exactly like `POST /_emulator/faults`.
    pub fn set_fault(
        &self,
        host: &str,
        fault: &str,
        count: Option<u32>,
    ) -> Result<(), FaultParseError> {
        self.shared.queue_fault(host, fault, count)
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Distinct `Idempotency-Key`s applied by webhook `name`, as
    /// `GET /webhooks/{name}/effects` reports them.
    pub fn webhook_effects(&self, name: &str) -> u64 {
        self.shared.webhooks.effects(name)
    }

    /// Requests webhook `name` received, refused and repeated ones included.
    pub fn webhook_calls(&self, name: &str) -> u64 {
        self.shared.webhooks.calls(name)
    }

    /// Stops accepting, drops open connections, and waits for the server task.
    pub async fn shutdown(self) {
        let Self {
            _stop: stop, task, ..
        } = self;
        drop(stop);
        let _ = task.await;
    }
}

//! Treaty's emulated upstream LLM providers: a real HTTP server that speaks
//! the OpenAI, Azure OpenAI and OpenAI-compatible wire protocols with
//! deterministic answers, streaming, tool calls, embeddings, usage,
//! configurable latency and per-request faults. Tests, the demo and load
//! benchmarks point Treaty at it instead of real clouds; everything it says
//! calls itself an emulation. It shares no types with the gateway, so a
//! gateway bug cannot hide behind a matching bug here.
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
mod bulk;
mod completion;
mod control;
mod embeddings;
mod error;
mod faults;
mod openai;
mod reply;
mod seed;
mod server;
mod stats;
mod stream;
mod tools;

pub use faults::FaultParseError;

use app::Shared;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How the emulated providers behave when no fault is asked for.
#[derive(Debug, Clone, Default)]
pub struct EmulatorConfig {
    /// The only key accepted; `None` accepts any non-empty key.
    pub api_key: Option<String>,
    /// Waited before every API response.
    pub latency: Duration,
    /// Waited between streamed chunks.
    pub chunk_delay: Duration,
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

    /// Stops accepting, drops open connections, and waits for the server task.
    pub async fn shutdown(self) {
        let Self {
            _stop: stop, task, ..
        } = self;
        drop(stop);
        let _ = task.await;
    }
}

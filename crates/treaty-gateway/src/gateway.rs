//! What the HTTP edge serves: the engine and the runtime, built together.

use std::sync::Arc;

use treaty_config::{Config, Env};
use treaty_engine::{BuildError, Engine};
use treaty_runtime::Runtime;
use treaty_store::Store;

/// What the HTTP edge serves: the engine and the runtime over it.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub engine: Arc<Engine>,
    pub runtime: Arc<Runtime>,
}

impl Gateway {
    /// Opens the engine (and its ledger) on `store`, with the runtime
    /// over it.
    pub async fn open(config: Config, store: Store, env: &dyn Env) -> Result<Gateway, BuildError> {
        Ok(Gateway::new(Engine::open(config, store, env).await?))
    }

    pub fn new(engine: Arc<Engine>) -> Gateway {
        Gateway {
            runtime: Runtime::new(engine.clone()),
            engine,
        }
    }
}

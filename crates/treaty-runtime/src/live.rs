//! What this instance is doing right now that others may need to stop or
//! follow: the responses it is streaming (so a cancel stops them) and a
//! signal raised whenever it changes a run (so event readers wake up
//! instead of polling). Locks here are never held across an await.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

/// The responses this instance is streaming, each with the signal that
/// stops it when its client cancels it.
#[derive(Debug, Default)]
pub(crate) struct Live {
    streams: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Live {
    pub(crate) fn watch(&self, id: &str) -> Arc<Notify> {
        let signal = Arc::new(Notify::new());
        if let Ok(mut streams) = self.streams.lock() {
            streams.insert(id.to_owned(), signal.clone());
        }
        signal
    }

    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.remove(id);
        }
    }

    /// Stops the stream making `id`, if this instance is making it. A
    /// stream on another replica finds out when it stores its end (the
    /// stored status stays `cancelled`).
    pub(crate) fn cancel(&self, id: &str) {
        let signal = self.streams.lock().ok().and_then(|s| s.get(id).cloned());
        if let Some(signal) = signal {
            // A permit: the stream sees it even if it is not waiting yet.
            signal.notify_one();
        }
    }
}

/// Raised whenever this instance writes a run event. Readers re-read
/// their run's events when it moves; runs changed by another replica are
/// noticed by a slow re-check (see `runs::events`).
#[derive(Debug)]
pub(crate) struct RunSignals {
    tx: watch::Sender<u64>,
}

impl Default for RunSignals {
    fn default() -> Self {
        RunSignals {
            tx: watch::Sender::new(0),
        }
    }
}

impl RunSignals {
    pub(crate) fn raise(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

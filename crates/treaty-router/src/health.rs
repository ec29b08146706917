//! Per-host health: a circuit breaker and a latency average, in atomics.
//!
//! Closed: requests flow; `failures` consecutive failures open it. Open:
//! the host is skipped until `cooldown` has passed; then one request at a
//! time may probe it (half-open). A success closes it; a failure opens it
//! for another cool-down. Active health checks report through the same
//! `observe`, so a host that recovers is found without client traffic.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long an open circuit keeps the host out.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failures: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
pub struct HostHealth {
    settings: BreakerSettings,
    consecutive_failures: AtomicU32,
    /// Micros since `epoch` when the circuit opened; 0 when closed.
    opened_at: AtomicU64,
    /// Micros since `epoch` of the last half-open probe admitted.
    probe_at: AtomicU64,
    /// Latency EWMA in micros; 0 until measured.
    ewma: AtomicU64,
    epoch: Instant,
}

impl HostHealth {
    pub fn new(settings: BreakerSettings) -> Self {
        HostHealth {
            settings,
            consecutive_failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probe_at: AtomicU64::new(0),
            ewma: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        (self.epoch.elapsed().as_micros() as u64).max(1)
    }

    pub fn state(&self) -> HostState {
        let opened = self.opened_at.load(Ordering::Acquire);
        if opened == 0 {
            HostState::Closed
        } else if self.now().saturating_sub(opened) >= self.settings.cooldown.as_micros() as u64 {
            HostState::HalfOpen
        } else {
            HostState::Open
        }
    }

    /// Whether a request may be sent now. In half-open state only one
    /// probe per cool-down is admitted.
    pub fn admits(&self) -> bool {
        match self.state() {
            HostState::Closed => true,
            HostState::Open => false,
            HostState::HalfOpen => {
                let now = self.now();
                let last = self.probe_at.load(Ordering::Acquire);
                let gap = (self.settings.cooldown.as_micros() as u64).max(1);
                now.saturating_sub(last) >= gap
                    && self
                        .probe_at
                        .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
            }
        }
    }

    /// Feeds one outcome (a request attempt or a health probe).
    pub fn observe(&self, ok: bool, latency: Duration) {
        if ok {
            self.consecutive_failures.store(0, Ordering::Release);
            self.opened_at.store(0, Ordering::Release);
            let sample = latency.as_micros().max(1) as u64;
            let old = self.ewma.load(Ordering::Relaxed);
            // alpha = 1/5: recent enough to follow a slowing host, smooth
            // enough to ignore one slow answer.
            let new = if old == 0 {
                sample
            } else {
                (old * 4 + sample) / 5
            };
            self.ewma.store(new, Ordering::Relaxed);
        } else {
            let n = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
            let opened = self.opened_at.load(Ordering::Acquire);
            if n >= self.settings.failures || opened != 0 {
                // Open, or re-open after a failed half-open probe.
                self.opened_at.store(self.now(), Ordering::Release);
            }
        }
    }

    pub fn ewma_micros(&self) -> u64 {
        self.ewma.load(Ordering::Relaxed)
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }
}

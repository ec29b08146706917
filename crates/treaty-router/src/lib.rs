//! Choosing which hosts a request is tried on, and in what order.
//!
//! Routing is one separate step of the pipeline. It receives the set of
//! hosts the contracts allow (and the subset a preference clause prefers)
//! and returns an ordered plan; it can only narrow that set, never widen
//! it: a host outside `allowed` is never planned, whatever the health or
//! strategy. Within the allowed hosts serving the model it ranks:
//!
//! 1. hosts whose circuit is open are left out (their cool-down not over);
//! 2. preferred hosts first, while their cloud's commitment has budget;
//! 3. then by strategy: weighted round robin, least latency (an EWMA of
//!    observed latencies) or cost (the deployment's token prices).
//!
//! Health is passive (every attempt's outcome feeds a per-host circuit
//! breaker and the latency EWMA) and active (the gateway probes hosts and
//! reports here). All state is atomics: no lock, nothing awaited.

mod health;
mod plan;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use health::{BreakerSettings, HostHealth, HostState};
pub use plan::{HostMask, Plan};
use treaty_domain::Host;

/// Index of a host in the configured host list.
pub type HostIndex = usize;

/// How allowed hosts of equal preference are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Weighted round robin by each host's `weight`.
    #[default]
    Weighted,
    /// Lowest observed latency (EWMA) first; unmeasured hosts first.
    LeastLatency,
    /// Cheapest deployment for the model first.
    Cost,
}

impl std::str::FromStr for Strategy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "weighted" => Ok(Strategy::Weighted),
            "least_latency" => Ok(Strategy::LeastLatency),
            "cost" => Ok(Strategy::Cost),
            _ => Err(()),
        }
    }
}

/// Committed spend on a cloud: while it lasts, preferred hosts on that
/// cloud rank first.
#[derive(Debug)]
pub struct Commitment {
    pub clause: String,
    pub cloud: String,
    /// Budget for the period, in cost units.
    pub amount: f64,
    /// Spent so far this period, in micro-units.
    spent_micros: AtomicU64,
}

impl Commitment {
    pub fn new(clause: &str, cloud: &str, amount: f64) -> Self {
        Commitment {
            clause: clause.to_owned(),
            cloud: cloud.to_owned(),
            amount,
            spent_micros: AtomicU64::new(0),
        }
    }

    pub fn spent(&self) -> f64 {
        self.spent_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    pub fn exhausted(&self) -> bool {
        self.spent() >= self.amount
    }

    /// Sets the spend so far (restored from the ledger at start).
    pub fn set_spent(&self, spent: f64) {
        self.spent_micros
            .store((spent.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }
}

/// Ranks hosts for requests; shared by all requests.
#[derive(Debug)]
pub struct Router {
    hosts: Vec<Arc<Host>>,
    health: Vec<HostHealth>,
    strategy: Strategy,
    commitments: Vec<Commitment>,
    /// Weighted round-robin cursor.
    cursor: AtomicU64,
}

impl Router {
    pub fn new(
        hosts: Vec<Arc<Host>>,
        strategy: Strategy,
        breaker: BreakerSettings,
        commitments: Vec<Commitment>,
    ) -> Self {
        let health = hosts.iter().map(|_| HostHealth::new(breaker)).collect();
        Router {
            hosts,
            health,
            strategy,
            commitments,
            cursor: AtomicU64::new(0),
        }
    }

    pub fn host(&self, index: HostIndex) -> &Arc<Host> {
        &self.hosts[index]
    }

    pub fn hosts(&self) -> &[Arc<Host>] {
        &self.hosts
    }

    pub fn health(&self, index: HostIndex) -> &HostHealth {
        &self.health[index]
    }

    pub fn commitments(&self) -> &[Commitment] {
        &self.commitments
    }

    /// Whether any host serves `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.hosts.iter().any(|h| h.deployment(model).is_some())
    }

    /// Hosts serving `model`, as a mask.
    pub fn serving(&self, model: &str) -> HostMask {
        let mut m = HostMask::EMPTY;
        for (i, h) in self.hosts.iter().enumerate() {
            if h.deployment(model).is_some() {
                m.insert(i);
            }
        }
        m
    }

    /// Records the outcome of one attempt on a host.
    pub fn observe(&self, index: HostIndex, ok: bool, latency: Duration) {
        self.health[index].observe(ok, latency);
    }

    /// Accounts spend on a host's cloud against its commitment, if any.
    pub fn spend(&self, index: HostIndex, cost: f64) {
        let cloud = &self.hosts[index].cloud;
        for c in self.commitments.iter().filter(|c| &c.cloud == cloud) {
            c.spent_micros
                .fetch_add((cost.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        }
    }

    fn commitment_open(&self, index: HostIndex) -> bool {
        let cloud = &self.hosts[index].cloud;
        self.commitments
            .iter()
            .filter(|c| &c.cloud == cloud)
            .all(|c| !c.exhausted())
    }

    /// Orders the hosts to try for `model`: only hosts in `allowed` that
    /// serve it. See the module docs for the ranking.
    pub fn plan(&self, model: &str, allowed: HostMask, preferred: HostMask) -> Plan {
        let candidates = self.serving(model).intersect(allowed);
        let mut ready: Vec<HostIndex> = Vec::with_capacity(candidates.len());
        let mut down = HostMask::EMPTY;
        for i in candidates.iter() {
            if self.health[i].admits() {
                ready.push(i);
            } else {
                down.insert(i);
            }
        }
        self.rank(model, &mut ready, preferred);
        Plan {
            hosts: ready,
            candidates,
            down,
        }
    }

    /// The host [`Router::plan`] would put first, without ranking a
    /// whole plan or moving the weighted round-robin: what a shadow
    /// reading's decision records as "the host the router would pick".
    /// Allocates nothing.
    pub fn pick(&self, model: &str, allowed: HostMask, preferred: HostMask) -> Option<HostIndex> {
        let mut ready = [0 as HostIndex; plan::MAX_HOSTS];
        let mut n = 0;
        for i in self.serving(model).intersect(allowed).iter() {
            if self.health[i].admits() && n < ready.len() {
                ready[n] = i;
                n += 1;
            }
        }
        let ready = &mut ready[..n];
        if ready.len() > 1 && self.strategy == Strategy::Weighted {
            // Where the round-robin stands, without taking a ticket.
            let first = self.weighted_position(ready, self.cursor.load(Ordering::Relaxed));
            ready.rotate_left(first);
            ready.sort_by_key(|&i| !(preferred.contains(i) && self.commitment_open(i)));
        } else {
            self.rank(model, ready, preferred);
        }
        ready.first().copied()
    }

    fn rank(&self, model: &str, hosts: &mut [HostIndex], preferred: HostMask) {
        if hosts.len() < 2 {
            return;
        }
        match self.strategy {
            Strategy::Weighted => {
                let first = self.weighted_pick(hosts);
                hosts.rotate_left(first);
            }
            Strategy::LeastLatency => {
                hosts.sort_by_key(|&i| self.health[i].ewma_micros());
            }
            Strategy::Cost => {
                hosts.sort_by(|&a, &b| {
                    let price = |i: HostIndex| {
                        self.hosts[i]
                            .deployment(model)
                            .map(|d| d.input_cost_per_mtok + d.output_cost_per_mtok)
                            .unwrap_or(f64::MAX)
                    };
                    price(a).total_cmp(&price(b))
                });
            }
        }
        // Stable: preferred hosts with budget first, strategy order kept.
        hosts.sort_by_key(|&i| !(preferred.contains(i) && self.commitment_open(i)));
    }

    /// Position in `candidates` of the weighted round-robin choice.
    fn weighted_pick(&self, candidates: &[HostIndex]) -> usize {
        let ticket = self.cursor.fetch_add(1, Ordering::Relaxed);
        self.weighted_position(candidates, ticket)
    }

    /// Position in `candidates` that round-robin ticket `ticket` falls on.
    fn weighted_position(&self, candidates: &[HostIndex], ticket: u64) -> usize {
        let total: u64 = candidates
            .iter()
            .map(|&i| u64::from(self.hosts[i].weight))
            .sum();
        if total == 0 {
            return 0;
        }
        let mut ticket = ticket % total;
        for (pos, &i) in candidates.iter().enumerate() {
            let w = u64::from(self.hosts[i].weight);
            if ticket < w {
                return pos;
            }
            ticket -= w;
        }
        0
    }
}

/// Pause before retrying attempt number `attempt` (1-based count of
/// failures so far): exponential from 50 ms with full jitter, capped at
/// 2 s, and never shorter than an upstream's `Retry-After`.
pub fn backoff(attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let base = Duration::from_millis(50).saturating_mul(1 << attempt.min(6));
    let capped = base.min(Duration::from_secs(2));
    let jittered = capped.mul_f64(jitter.clamp(0.0, 1.0));
    match retry_after {
        Some(ra) => ra.max(jittered),
        None => jittered,
    }
}

#[cfg(test)]
mod tests;

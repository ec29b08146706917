//! Choosing which hosts a request is tried on, and in what order.
//!
//! Routing is one separate step of the pipeline: it receives the request
//! context and returns an ordered plan of hosts, and nothing else in the
//! gateway picks a host. The contract engine will narrow the candidate set
//! before this step ranks it; the router must never add a host that was
//! not offered to it.
//!
//! Today the plan is every host that serves the requested model, starting
//! at a weighted round-robin position so load spreads across equals, then
//! the others in configured order as failover targets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use treaty_domain::Host;

/// Index of a host in the configured host list.
pub type HostIndex = usize;

/// Ranks hosts for a request.
#[derive(Debug)]
pub struct Router {
    hosts: Vec<Arc<Host>>,
    /// Weighted round-robin cursor, shared by all requests.
    cursor: AtomicU64,
}

impl Router {
    pub fn new(hosts: Vec<Arc<Host>>) -> Self {
        Router {
            hosts,
            cursor: AtomicU64::new(0),
        }
    }

    pub fn host(&self, index: HostIndex) -> &Arc<Host> {
        &self.hosts[index]
    }

    /// Whether any host serves `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.hosts.iter().any(|h| h.deployment(model).is_some())
    }

    /// The hosts to try for `model`, first choice first. Empty when no host
    /// serves it.
    pub fn plan(&self, model: &str) -> Vec<HostIndex> {
        let mut candidates: Vec<HostIndex> = (0..self.hosts.len())
            .filter(|&i| self.hosts[i].deployment(model).is_some())
            .collect();
        if candidates.len() > 1 {
            let first = self.weighted_pick(&candidates);
            candidates.rotate_left(first);
        }
        candidates
    }

    /// Position in `candidates` of the weighted round-robin choice.
    fn weighted_pick(&self, candidates: &[HostIndex]) -> usize {
        let total: u64 = candidates
            .iter()
            .map(|&i| u64::from(self.hosts[i].weight))
            .sum();
        if total == 0 {
            return 0;
        }
        let mut ticket = self.cursor.fetch_add(1, Ordering::Relaxed) % total;
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
mod tests {
    use super::*;
    use treaty_domain::{HostId, ModelDeployment, ProviderKind};

    fn host(id: &str, weight: u32, models: &[&str]) -> Arc<Host> {
        Arc::new(Host {
            id: HostId::new(id).unwrap(),
            cloud: "c".into(),
            region: "us-east".into(),
            provider: ProviderKind::OpenaiCompatible,
            certifications: vec![],
            models: models
                .iter()
                .map(|m| ModelDeployment {
                    name: (*m).into(),
                    target: (*m).into(),
                    input_cost_per_mtok: 0.0,
                    output_cost_per_mtok: 0.0,
                })
                .collect(),
            weight,
        })
    }

    #[test]
    fn plans_only_hosts_serving_the_model_each_once() {
        let r = Router::new(vec![
            host("a", 1, &["m"]),
            host("b", 1, &["other"]),
            host("c", 1, &["m"]),
        ]);
        for _ in 0..5 {
            let mut p = r.plan("m");
            p.sort();
            assert_eq!(p, vec![0, 2]);
        }
        assert!(r.plan("nope").is_empty());
        assert!(!r.serves("nope"));
    }

    #[test]
    fn first_choice_follows_weights() {
        let r = Router::new(vec![host("a", 3, &["m"]), host("b", 1, &["m"])]);
        let firsts: Vec<usize> = (0..8).map(|_| r.plan("m")[0]).collect();
        assert_eq!(firsts.iter().filter(|&&i| i == 0).count(), 6);
        assert_eq!(firsts.iter().filter(|&&i| i == 1).count(), 2);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        assert_eq!(backoff(1, None, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(10, None, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(1, None, 0.0), Duration::ZERO);
        assert_eq!(
            backoff(1, Some(Duration::from_secs(3)), 1.0),
            Duration::from_secs(3)
        );
    }
}

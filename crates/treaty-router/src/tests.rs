use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use treaty_domain::{Host, HostId, ModelDeployment, ProviderKind};

use super::*;
use crate::Strategy;

fn host(id: &str, cloud: &str, weight: u32, models: &[(&str, f64)]) -> Arc<Host> {
    Arc::new(Host {
        id: HostId::new(id).unwrap(),
        cloud: cloud.into(),
        region: "us-east".into(),
        provider: ProviderKind::OpenaiCompatible,
        certifications: vec![],
        models: models
            .iter()
            .map(|(m, price)| ModelDeployment {
                name: (*m).into(),
                target: (*m).into(),
                input_cost_per_mtok: *price,
                output_cost_per_mtok: *price,
            })
            .collect(),
        weight,
    })
}

fn router(strategy: Strategy, commitments: Vec<Commitment>) -> Router {
    Router::new(
        vec![
            host("a", "azure", 1, &[("m", 3.0)]),
            host("b", "aws", 1, &[("other", 1.0)]),
            host("c", "aws", 1, &[("m", 2.0)]),
            host("d", "gcp", 1, &[("m", 1.0)]),
        ],
        strategy,
        BreakerSettings {
            failures: 2,
            cooldown: Duration::from_millis(50),
        },
        commitments,
    )
}

const ALL: HostMask = HostMask(u64::MAX);

#[test]
fn plans_only_allowed_hosts_serving_the_model() {
    let r = router(Strategy::Weighted, vec![]);
    let mut p = r.plan("m", ALL, HostMask::EMPTY).hosts;
    p.sort();
    assert_eq!(p, vec![0, 2, 3]);
    let only_c = HostMask(1 << 2);
    assert_eq!(r.plan("m", only_c, HostMask::EMPTY).hosts, vec![2]);
    assert!(
        r.plan("m", HostMask(1 << 1), HostMask::EMPTY)
            .hosts
            .is_empty(),
        "b does not serve m"
    );
    assert!(r.plan("nope", ALL, HostMask::EMPTY).hosts.is_empty());
}

#[test]
fn weighted_spreads_by_weight() {
    let r = Router::new(
        vec![
            host("a", "x", 3, &[("m", 1.0)]),
            host("b", "x", 1, &[("m", 1.0)]),
        ],
        Strategy::Weighted,
        BreakerSettings::default(),
        vec![],
    );
    let firsts: Vec<usize> = (0..8)
        .map(|_| r.plan("m", ALL, HostMask::EMPTY).hosts[0])
        .collect();
    assert_eq!(firsts.iter().filter(|&&i| i == 0).count(), 6);
}

#[test]
fn cost_and_latency_strategies_order_hosts() {
    let r = router(Strategy::Cost, vec![]);
    assert_eq!(r.plan("m", ALL, HostMask::EMPTY).hosts, vec![3, 2, 0]);
    let r = router(Strategy::LeastLatency, vec![]);
    r.observe(0, true, Duration::from_millis(5));
    r.observe(2, true, Duration::from_millis(50));
    r.observe(3, true, Duration::from_millis(20));
    assert_eq!(r.plan("m", ALL, HostMask::EMPTY).hosts, vec![0, 3, 2]);
}

#[test]
fn preferred_hosts_come_first_until_the_commitment_is_spent() {
    let r = router(Strategy::Cost, vec![Commitment::new("P1", "aws", 10.0)]);
    let aws = HostMask(1 << 2);
    assert_eq!(r.plan("m", ALL, aws).hosts, vec![2, 3, 0]);
    r.spend(2, 9.0);
    assert_eq!(r.plan("m", ALL, aws).hosts[0], 2);
    r.spend(2, 1.5);
    assert!(r.commitments()[0].exhausted());
    assert_eq!(
        r.plan("m", ALL, aws).hosts,
        vec![3, 2, 0],
        "back to cost order"
    );
}

#[test]
fn a_failing_host_is_skipped_then_probed_after_the_cooldown() {
    let r = router(Strategy::Cost, vec![]);
    r.observe(3, false, Duration::ZERO);
    assert_eq!(
        r.health(3).state(),
        HostState::Closed,
        "one failure is not enough"
    );
    r.observe(3, false, Duration::ZERO);
    assert_eq!(r.health(3).state(), HostState::Open);
    let p = r.plan("m", ALL, HostMask::EMPTY);
    assert_eq!(p.hosts, vec![2, 0]);
    assert!(p.down.contains(3) && p.candidates.contains(3));

    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(r.health(3).state(), HostState::HalfOpen);
    assert_eq!(
        r.plan("m", ALL, HostMask::EMPTY).hosts,
        vec![3, 2, 0],
        "one probe"
    );
    assert_eq!(
        r.plan("m", ALL, HostMask::EMPTY).hosts,
        vec![2, 0],
        "only one"
    );
    r.observe(3, true, Duration::from_millis(1));
    assert_eq!(r.health(3).state(), HostState::Closed);
    assert_eq!(r.plan("m", ALL, HostMask::EMPTY).hosts, vec![3, 2, 0]);
}

#[test]
fn a_failed_probe_reopens_the_circuit() {
    let r = router(Strategy::Cost, vec![]);
    r.observe(0, false, Duration::ZERO);
    r.observe(0, false, Duration::ZERO);
    std::thread::sleep(Duration::from_millis(60));
    assert!(r.health(0).admits());
    r.observe(0, false, Duration::ZERO);
    assert_eq!(r.health(0).state(), HostState::Open);
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

proptest! {
    /// Whatever the health, strategy or preference, a plan never holds a
    /// host outside the allowed set, nor one that does not serve the model,
    /// and holds each host at most once.
    #[test]
    fn plans_never_leave_the_allowed_set(
        allowed in any::<u64>(), preferred in any::<u64>(),
        failures in prop::collection::vec(0u8..4, 4),
        strategy in prop::sample::select(vec![Strategy::Weighted, Strategy::LeastLatency, Strategy::Cost]),
    ) {
        let r = router(strategy, vec![Commitment::new("P1", "aws", 1.0)]);
        for (i, n) in failures.iter().enumerate() {
            for _ in 0..*n { r.observe(i, false, Duration::ZERO); }
        }
        let plan = r.plan("m", HostMask(allowed), HostMask(preferred));
        let mut seen = std::collections::HashSet::new();
        for &i in &plan.hosts {
            prop_assert!(HostMask(allowed).contains(i));
            prop_assert!(r.host(i).deployment("m").is_some());
            prop_assert!(seen.insert(i));
        }
    }
}

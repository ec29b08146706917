//! Property: whatever the estimates, real costs and interleaving of
//! concurrent calls, settled spend plus reservations in flight never pass
//! a budget by more than what calls cost beyond their estimates; and a
//! refused call always met a budget with no room for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use proptest::prelude::*;
use treaty_limits::{
    BudgetSpec, Clock, Estimate, Limits, Period, Refusal, Scope, Settings, Subject, Usage,
};
use treaty_store::Store;

const WHO: Subject<'static> = Subject {
    key: "key_00000000000000ee",
    tenant: "acme",
    channel: "direct",
    product: "api",
};

#[derive(Debug, Clone)]
struct Call {
    estimate: i64,
    /// Real cost in percent of the estimate (up to 150: estimates can be
    /// wrong).
    cost_percent: i64,
    /// Yield this many times before settling, to interleave.
    hold: u8,
}

fn calls() -> impl Strategy<Value = Vec<Vec<Call>>> {
    let call =
        (1i64..200_000, 0i64..=150, 0u8..4).prop_map(|(estimate, cost_percent, hold)| Call {
            estimate,
            cost_percent,
            hold,
        });
    prop::collection::vec(prop::collection::vec(call, 1..25), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn spend_and_reservations_stay_within_the_budget(limit in 100_000i64..3_000_000, tasks in calls()) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(limit, tasks));
    }
}

async fn run(limit: i64, tasks: Vec<Vec<Call>>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("p.db").display()))
        .await
        .unwrap();
    let settings = Settings {
        budgets: vec![BudgetSpec {
            scope: Scope::Key(WHO.key.into()),
            period: Period::Total,
            limit_micros: limit,
            soft_percents: vec![],
        }],
        ..Settings::default()
    };
    let limits = Limits::start(settings, Some(store), Clock::System)
        .await
        .unwrap();
    let settled = Arc::new(AtomicI64::new(0));
    let in_flight = Arc::new(AtomicI64::new(0));
    let excess = Arc::new(AtomicI64::new(0));
    let mut handles = Vec::new();
    for calls in tasks {
        let (limits, settled, in_flight, excess) = (
            limits.clone(),
            Arc::clone(&settled),
            Arc::clone(&in_flight),
            Arc::clone(&excess),
        );
        handles.push(tokio::spawn(async move {
            for c in calls {
                let estimate = Estimate {
                    tokens: 0,
                    cost_micros: c.estimate,
                };
                match limits.admit(&WHO, estimate).await {
                    Ok(permit) => {
                        in_flight.fetch_add(c.estimate, Ordering::SeqCst);
                        let committed =
                            settled.load(Ordering::SeqCst) + in_flight.load(Ordering::SeqCst);
                        let allowed = limit + excess.load(Ordering::SeqCst);
                        assert!(
                            committed <= allowed,
                            "{committed} spent or reserved > {limit} + {} beyond estimates",
                            allowed - limit
                        );
                        for _ in 0..c.hold {
                            tokio::task::yield_now().await;
                        }
                        let cost = c.estimate * c.cost_percent / 100;
                        // In this order an observer may undercount for a
                        // moment, never double count.
                        in_flight.fetch_sub(c.estimate, Ordering::SeqCst);
                        excess.fetch_add((cost - c.estimate).max(0), Ordering::SeqCst);
                        settled.fetch_add(cost, Ordering::SeqCst);
                        permit.settle(Usage::default(), cost);
                    }
                    Err(Refusal::Budget(b)) => {
                        assert!(
                            b.used_micros + c.estimate > b.limit_micros,
                            "refused with room: {b:?}"
                        );
                    }
                    Err(other) => panic!("{other:?}"),
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    limits.shutdown().await.unwrap();
}

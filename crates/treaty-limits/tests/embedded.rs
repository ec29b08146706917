//! One replica on SQLite: rate limits, budgets, their resets and their
//! persistence across a restart, as the model-call path sees them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use treaty_limits::{
    BudgetSpec, Clock, Estimate, LimitKind, LimitScope, Limits, Period, RateSpec, Refusal, Scope,
    Settings, Subject, Usage,
};
use treaty_store::Store;

const ACME: Subject<'static> = Subject {
    key: "key_00000000000000aa",
    tenant: "acme",
    channel: "direct",
    product: "api",
};

// 2027-01-15T12:00:00Z
const MID_JANUARY: i64 = 1_800_014_400_000;

async fn sqlite() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url).await.unwrap();
    (dir, store)
}

fn budget(scope: Scope, period: Period, usd: i64) -> BudgetSpec {
    BudgetSpec {
        scope,
        period,
        limit_micros: usd * 1_000_000,
        soft_percents: vec![50],
    }
}

fn cost(micros: i64) -> Estimate {
    Estimate {
        tokens: 0,
        cost_micros: micros,
    }
}

#[tokio::test]
async fn requests_per_minute_refuse_the_one_too_many_with_the_wait_and_headers() {
    let clock = Clock::manual(MID_JANUARY);
    let settings = Settings {
        key: RateSpec {
            requests_per_minute: Some(3),
            tokens_per_minute: Some(1_000),
        },
        ..Settings::default()
    };
    let limits = Limits::start(settings, None, clock.clone()).await.unwrap();
    let est = Estimate {
        tokens: 100,
        cost_micros: 0,
    };
    let first = limits.admit(&ACME, est).await.unwrap();
    let mut names = Vec::new();
    first
        .headers()
        .for_each(|n, v| names.push(format!("{n}: {v}")));
    assert_eq!(
        names,
        [
            "x-ratelimit-limit-requests: 3",
            "x-ratelimit-remaining-requests: 2",
            "x-ratelimit-reset-requests: 20s",
            "x-ratelimit-limit-tokens: 1000",
            "x-ratelimit-remaining-tokens: 900",
            "x-ratelimit-reset-tokens: 6s",
        ]
    );
    // Fewer tokens used than estimated: the difference comes back.
    first.settle(Usage { tokens: 40 }, 0);
    limits
        .admit(&ACME, est)
        .await
        .unwrap()
        .settle(Usage { tokens: 100 }, 0);
    limits
        .admit(&ACME, est)
        .await
        .unwrap()
        .settle(Usage { tokens: 100 }, 0);
    let Err(Refusal::RateLimited(r)) = limits.admit(&ACME, est).await else {
        panic!("the fourth request in a minute is refused");
    };
    assert_eq!(
        (r.scope, r.kind, r.per_minute),
        (LimitScope::Key, LimitKind::Requests, 3)
    );
    assert_eq!(r.retry_after, Some(Duration::from_secs(20)));
    assert_eq!(r.headers.requests.unwrap().remaining, 0);
    assert_eq!(r.headers.tokens.unwrap().remaining, 760);
    // Another key of the same tenant is not limited by this one.
    let other = Subject {
        key: "key_00000000000000bb",
        ..ACME
    };
    assert!(limits.admit(&other, est).await.is_ok());
    // Twenty seconds later one more request fits.
    clock.advance(20_000);
    assert!(limits.admit(&ACME, est).await.is_ok());
    // A request needing more tokens than a minute allows never fits.
    let Err(Refusal::RateLimited(r)) = limits
        .admit(
            &other,
            Estimate {
                tokens: 5_000,
                cost_micros: 0,
            },
        )
        .await
    else {
        panic!("too large");
    };
    assert_eq!((r.kind, r.retry_after), (LimitKind::Tokens, None));
    assert_eq!(limits.stats().refused_rate, 2);
}

#[tokio::test]
async fn a_tenant_limit_spans_its_keys_and_a_refusal_takes_nothing() {
    let clock = Clock::manual(MID_JANUARY);
    let settings = Settings {
        tenant: RateSpec {
            requests_per_minute: Some(2),
            tokens_per_minute: None,
        },
        key: RateSpec {
            requests_per_minute: Some(1),
            tokens_per_minute: None,
        },
        ..Settings::default()
    };
    let limits = Limits::start(settings, None, clock.clone()).await.unwrap();
    let keys = [
        "key_0000000000000001",
        "key_0000000000000002",
        "key_0000000000000003",
    ];
    for key in &keys[..2] {
        assert!(
            limits
                .admit(&Subject { key, ..ACME }, Estimate::default())
                .await
                .is_ok()
        );
    }
    let third = Subject {
        key: keys[2],
        ..ACME
    };
    let Err(Refusal::RateLimited(r)) = limits.admit(&third, Estimate::default()).await else {
        panic!("the tenant's two requests a minute are used");
    };
    assert_eq!(r.scope, LimitScope::Tenant);
    // Thirty seconds refill one tenant request. The third key's own
    // bucket (one a minute) was given back its request when the tenant
    // refused it, so it is admitted now.
    clock.advance(30_000);
    assert!(limits.admit(&third, Estimate::default()).await.is_ok());
}

#[tokio::test]
async fn a_budget_refuses_insufficient_quota_naming_itself_and_resets_next_month() {
    let (_dir, store) = sqlite().await;
    let clock = Clock::manual(MID_JANUARY);
    let settings = Settings {
        budgets: vec![budget(Scope::Key(ACME.key.into()), Period::Month, 1)],
        ..Settings::default()
    };
    let limits = Limits::start(settings, Some(store), clock.clone())
        .await
        .unwrap();
    // Three calls estimated at 0.30 USD fit in 1 USD; a fourth does not.
    let permits: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(limits.admit(&ACME, cost(300_000)).await.unwrap());
        }
        v
    };
    let Err(refused) = limits.admit(&ACME, cost(300_000)).await else {
        panic!("over budget");
    };
    assert_eq!(
        (refused.status(), refused.code()),
        (429, "insufficient_quota")
    );
    let Refusal::Budget(b) = &refused else {
        panic!()
    };
    assert_eq!(b.budget, "key/key_00000000000000aa/month");
    assert_eq!(b.resets_at, Some(1_801_440_000_000), "2027-02-01T00:00:00Z");
    assert!(
        refused
            .to_string()
            .contains("key/key_00000000000000aa/month"),
        "{refused}"
    );
    // They cost less than estimated: what is left admits another call.
    for p in permits {
        p.settle(Usage::default(), 100_000);
    }
    let p = limits.admit(&ACME, cost(300_000)).await.unwrap();
    p.settle(Usage::default(), 300_000);
    let spent = limits.budgets()[0].spent_micros;
    assert_eq!(spent, 600_000);
    assert_eq!(limits.stats().soft_crossings, 1, "50% crossed once");
    // A permit dropped without settling gives its reservation back.
    drop(limits.admit(&ACME, cost(400_000)).await.unwrap());
    limits
        .admit(&ACME, cost(400_000))
        .await
        .unwrap()
        .settle(Usage::default(), 400_000);
    assert!(limits.admit(&ACME, cost(1)).await.is_err(), "all spent");
    // February: a new period.
    clock.advance(17 * 86_400_000);
    assert!(limits.admit(&ACME, cost(900_000)).await.is_ok());
}

#[tokio::test]
async fn a_budget_refusal_takes_no_request_from_the_rate_limit() {
    let (_dir, store) = sqlite().await;
    let settings = Settings {
        key: RateSpec {
            requests_per_minute: Some(2),
            tokens_per_minute: None,
        },
        budgets: vec![budget(Scope::Key(ACME.key.into()), Period::Total, 1)],
        ..Settings::default()
    };
    let limits = Limits::start(settings, Some(store), Clock::manual(MID_JANUARY))
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(matches!(
            limits.admit(&ACME, cost(2_000_000)).await,
            Err(Refusal::Budget(_))
        ));
    }
    // Two requests a minute are still both there.
    limits
        .admit(&ACME, cost(1))
        .await
        .unwrap()
        .settle(Usage::default(), 1);
    limits
        .admit(&ACME, cost(1))
        .await
        .unwrap()
        .settle(Usage::default(), 1);
}

#[tokio::test]
async fn spend_survives_a_restart_and_cli_changes_reach_a_running_replica() {
    let (_dir, store) = sqlite().await;
    let clock = Clock::manual(MID_JANUARY);
    let tenant = budget(Scope::Tenant("acme".into()), Period::Day, 2);
    let settings = Settings {
        budgets: vec![tenant.clone()],
        ..Settings::default()
    };
    let limits = Limits::start(settings.clone(), Some(store.clone()), clock.clone())
        .await
        .unwrap();
    limits
        .admit(&ACME, cost(1_500_000))
        .await
        .unwrap()
        .settle(Usage::default(), 1_500_000);
    limits.shutdown().await.unwrap();
    assert_eq!(
        store
            .budget_spent(&tenant.id(), Period::Day.start(MID_JANUARY))
            .await
            .unwrap(),
        1_500_000
    );

    let limits = Limits::start(settings, Some(store.clone()), clock.clone())
        .await
        .unwrap();
    assert!(
        matches!(
            limits.admit(&ACME, cost(600_000)).await,
            Err(Refusal::Budget(_))
        ),
        "1.5 of 2 USD were spent before the restart"
    );
    let p = limits.admit(&ACME, cost(400_000)).await.unwrap();
    p.settle(Usage::default(), 400_000);
    // `treaty budgets set` on another process raises the budget.
    let raised = BudgetSpec {
        limit_micros: 5_000_000,
        ..tenant.clone()
    };
    store
        .put_budget(&raised.to_row("cli", MID_JANUARY))
        .await
        .unwrap();
    limits.sync_now().await.unwrap();
    assert!(limits.admit(&ACME, cost(2_000_000)).await.is_ok());
    // And a budget set only through the store applies as well.
    let offer = budget(
        Scope::Offer {
            tenant: "acme".into(),
            channel: "direct".into(),
            product: "api".into(),
        },
        Period::Total,
        1,
    );
    store
        .put_budget(&offer.to_row("cli", MID_JANUARY))
        .await
        .unwrap();
    limits.sync_now().await.unwrap();
    let Err(Refusal::Budget(b)) = limits.admit(&ACME, cost(1_100_000)).await else {
        panic!("the offer's budget applies");
    };
    assert_eq!(b.budget, "tenant/acme/channel/direct/product/api/total");
    assert_eq!(b.resets_at, None);
}

#[tokio::test]
async fn a_host_at_its_quota_has_no_capacity_until_it_refills() {
    let clock = Clock::manual(MID_JANUARY);
    let settings = Settings {
        hosts: vec![
            (
                "azure-eastus".into(),
                RateSpec {
                    requests_per_minute: Some(2),
                    tokens_per_minute: None,
                },
            ),
            ("azure-westus".into(), RateSpec::default()),
        ],
        ..Settings::default()
    };
    let limits = Limits::start(settings, None, clock.clone()).await.unwrap();
    assert!(limits.host_has_capacity(0));
    limits.acquire_host(0, 10).await.unwrap().settle(12);
    limits.acquire_host(0, 10).await.unwrap().settle(12);
    assert!(!limits.host_has_capacity(0), "skipped like an open breaker");
    let Err(Refusal::RateLimited(r)) = limits.acquire_host(0, 10).await else {
        panic!("the host's quota is used");
    };
    assert_eq!(r.scope, LimitScope::Host);
    assert!(
        limits.host_has_capacity(1),
        "hosts without limits always have room"
    );
    assert!(limits.host_has_capacity(7), "unknown hosts too");
    clock.advance(30_000);
    assert!(limits.host_has_capacity(0));
}

//! What budgets and rate limits add to one model call: `admit` then
//! `settle`, on the paths requests take.
//!
//! * `none`: no limit configured (the floor: two map lookups);
//! * `embedded`: requests and tokens per minute for the key and the
//!   tenant, and a key budget and a tenant budget, one process on SQLite;
//! * `postgres` / `redis`: the same limits shared through the store (and
//!   Redis for the buckets), from a replica's leases; the leases' round
//!   trips happen a few times a second in the background and on the
//!   rare call that finds its lease empty, which this loop includes as
//!   they fall;
//! * `lease`: one round trip that takes tokens from the shared bucket
//!   (what a call waits for when its replica's lease runs out).
//!
//! `cargo bench -p treaty-limits --bench admit`; PostgreSQL and Redis
//! parts are skipped when those do not answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::future::Future as _;
use std::time::Duration;

use criterion::Criterion;
use treaty_limits::{
    BudgetSpec, Clock, Estimate, Limits, Period, RateSpec, Scope, Settings, Sharing, Subject, Usage,
};
use treaty_store::Store;

const WHO: Subject<'static> = Subject {
    key: "key_00000000000000be",
    tenant: "acme",
    channel: "direct",
    product: "api",
};

fn limited(sharing: Sharing, replica: &str) -> Settings {
    let rate = RateSpec {
        requests_per_minute: Some(4_000_000_000),
        tokens_per_minute: Some(4_000_000_000),
    };
    let budget = |scope| BudgetSpec {
        scope,
        period: Period::Month,
        limit_micros: 1_000_000_000_000,
        soft_percents: vec![50, 80],
    };
    Settings {
        replica: replica.into(),
        sharing,
        key: rate,
        tenant: rate,
        budgets: vec![
            budget(Scope::Key(WHO.key.into())),
            budget(Scope::Tenant(WHO.tenant.into())),
        ],
        ..Settings::default()
    }
}

/// Runs `admit` + `settle` to completion; on the fast path that is one
/// poll, so no executor round trip is measured.
fn call(limits: &Limits, rt: &tokio::runtime::Runtime) {
    let est = Estimate {
        tokens: 300,
        cost_micros: 50,
    };
    let mut admit = std::pin::pin!(limits.admit(&WHO, est));
    let waker = std::task::Waker::noop();
    let permit = match admit
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
    {
        std::task::Poll::Ready(p) => p,
        // A lease ran out: finish on the runtime, as a request would.
        std::task::Poll::Pending => rt.block_on(admit),
    };
    permit.unwrap().settle(Usage { tokens: 250 }, 40);
}

async fn pg() -> Option<String> {
    treaty_store::test_pg::fresh_database("limits_bench").await
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Store futures polled on this thread need the runtime's context.
    let _context = rt.enter();
    let mut g = c.benchmark_group("admit_settle");
    g.measurement_time(Duration::from_secs(3));

    let none = rt
        .block_on(Limits::start(Settings::default(), None, Clock::System))
        .unwrap();
    g.bench_function("none", |b| b.iter(|| call(&none, &rt)));

    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("b.db").display());
    let store = rt.block_on(Store::open(&sqlite)).unwrap();
    let embedded = rt
        .block_on(Limits::start(
            limited(Sharing::Embedded, "bench"),
            Some(store),
            Clock::System,
        ))
        .unwrap();
    call(&embedded, &rt);
    g.bench_function("embedded", |b| b.iter(|| call(&embedded, &rt)));

    let pg_url = rt.block_on(pg());
    if let Some(url) = &pg_url {
        let store = rt.block_on(Store::open(url)).unwrap();
        let shared = rt
            .block_on(Limits::start(
                limited(Sharing::Store, "bench-pg"),
                Some(store.clone()),
                Clock::System,
            ))
            .unwrap();
        call(&shared, &rt);
        g.bench_function("postgres", |b| b.iter(|| call(&shared, &rt)));
        g.bench_function("lease/postgres", |b| {
            b.iter(|| rt.block_on(shared.probe()).unwrap())
        });
        if let Ok(redis) = std::env::var("TREATY_TEST_REDIS")
            .or_else(|_| Ok::<_, ()>("redis://127.0.0.1:6379".into()))
        {
            let sharing = Sharing::Redis {
                url: redis,
                prefix: format!("treaty-bench:{}:", std::process::id()),
            };
            match rt.block_on(Limits::start(
                limited(sharing, "bench-redis"),
                Some(store),
                Clock::System,
            )) {
                Ok(with_redis) => {
                    call(&with_redis, &rt);
                    g.bench_function("redis", |b| b.iter(|| call(&with_redis, &rt)));
                    g.bench_function("lease/redis", |b| {
                        b.iter(|| rt.block_on(with_redis.probe()).unwrap())
                    });
                }
                Err(e) => eprintln!("SKIPPED: redis bench: {e}"),
            }
        }
    } else {
        eprintln!("SKIPPED: PostgreSQL benches: no server");
    }
    g.finish();

    let guard = treaty_limits::AuthGuard::new(20, Clock::System);
    let addr: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    c.bench_function("auth_guard/check", |b| b.iter(|| guard.check(addr)));

    if let Some(url) = pg_url {
        rt.block_on(treaty_store::test_pg::drop_database(&url));
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}

//! The whole per-request decision as the model-call path runs it, on the
//! shipped Frontier example: the decision core (classification, the
//! contract decision, admission and every host's verdict), the router's
//! plan among the allowed hosts, and the decision record built by the one
//! builder. With no shadow reading, and with two.
//!
//! cargo bench -p treaty-engine --bench decision

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use treaty_config::{Config, MapEnv};
use treaty_domain::{ChannelId, ProductId, Route, TenantId};
use treaty_policy::{Ask, Hints, Picks, Policy, Subject, What};
use treaty_router::{BreakerSettings, HostMask, Router, Strategy};

fn bench(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/treaty.toml");
    let config = Config::load(&path, &MapEnv::new()).unwrap();
    let router = Router::new(
        config.hosts.iter().map(|h| h.host.clone()).collect(),
        Strategy::Weighted,
        BreakerSettings::default(),
        vec![],
    );
    let (tenant, channel, product) = (
        TenantId::new("dod").unwrap(),
        ChannelId::new("aws-marketplace").unwrap(),
        ProductId::new("frontier").unwrap(),
    );
    let hints = Hints::default();
    let ask = Ask {
        request_id: "req_0193a1b2c3d4e5f6a7b8c9d0e1f2a3b4",
        subject: Subject {
            key_id: "key_0193a1b2c3d4e5f6a7b8c9d0",
            tenant: &tenant,
            channel: &channel,
            product: &product,
            may_declare: &[],
        },
        what: What::Call {
            route: Route::ChatCompletions,
            model: "gpt-4o",
        },
        features: treaty_policy::stateless(),
        hints: &hints,
        run_id: None,
        model_step: false,
        at_ms: 1_790_000_000_000,
    };
    for (name, shadow) in [
        ("decide + plan + record (frontier example)", vec![]),
        (
            "decide + plan + record, two shadow readings",
            vec!["reading-aws".to_owned(), "reading-microsoft".to_owned()],
        ),
    ] {
        let mut config = config.clone();
        if let Some(c) = config.contracts.as_mut() {
            c.shadow = shadow;
        }
        let policy = Policy::load(Arc::new(config)).unwrap();
        c.bench_function(name, |b| {
            b.iter(|| {
                let d = policy.decide(black_box(&ask)).unwrap();
                let plan = router.plan(
                    "gpt-4o",
                    HostMask(d.allowed.bits()),
                    HostMask(d.preferred.bits()),
                );
                let picks: Vec<Option<usize>> = d
                    .shadows
                    .iter()
                    .map(|s| {
                        router.pick(
                            "gpt-4o",
                            HostMask(s.allowed.bits()),
                            HostMask(s.preferred.bits()),
                        )
                    })
                    .collect();
                let record = d.record(
                    &policy,
                    &ask,
                    Picks {
                        chosen: plan.hosts.first().copied(),
                        shadows: &picks,
                    },
                );
                black_box(record)
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

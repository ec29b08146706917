//! The whole per-request decision as the gateway runs it: classification,
//! the contract decision (admission plus every host's verdict) and the
//! router's ranking of the allowed hosts, on the shipped Frontier example.
//!
//! cargo bench -p treaty-gateway --bench decision

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use treaty_classify::{Features, Input};
use treaty_config::{Config, MapEnv};
use treaty_contracts::Query;
use treaty_domain::{ChannelId, ProductId, TenantId};
use treaty_gateway::policy::Policy;
use treaty_router::{BreakerSettings, HostMask, Router, Strategy};

fn bench(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/treaty.toml");
    let config = Config::load(&path, &MapEnv::new()).unwrap();
    let policy = Policy::load(&config).unwrap();
    let contracts = policy.contracts.as_ref().unwrap();
    let router = Router::new(
        config.hosts.iter().map(|h| h.host.clone()).collect(),
        Strategy::Weighted,
        BreakerSettings::default(),
        vec![],
    );
    let kind = config.product("frontier").unwrap().kind;
    let (tenant, channel, product) = (
        TenantId::new("dod").unwrap(),
        ChannelId::new("aws-marketplace").unwrap(),
        ProductId::new("frontier").unwrap(),
    );
    let now = 1_790_000_000_000;
    c.bench_function("classify + decide + rank (frontier example)", |b| {
        b.iter(|| {
            let classified = policy.classifier.classify(&Input {
                route: "/v1/chat/completions",
                product: "frontier",
                product_kind: kind,
                features: Features {
                    store: Some(false),
                    ..Features::default()
                },
                declared: None,
                model_step: false,
            });
            let d = contracts.decide(&Query {
                tenant: &tenant,
                channel: &channel,
                product: &product,
                class: classified.class,
                data_classification: "internal",
                at_unix_ms: black_box(now),
            });
            let plan = router.plan(
                "gpt-4o",
                HostMask(d.allowed_hosts.bits()),
                HostMask(d.preferred_hosts.bits()),
            );
            black_box((d.admitted, plan))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

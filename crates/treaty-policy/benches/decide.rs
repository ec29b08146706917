//! One decision of the decision core on the Frontier example, alone and
//! with two shadow readings (the MISSION's budget: under 1 µs p99 with
//! two shadow readings). `cargo bench -p treaty-policy --bench decide`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use treaty_config::{Config, MapEnv};
use treaty_domain::{ChannelId, ProductId, Route, TenantId};
use treaty_policy::{Ask, Hints, Policy, Subject, What};

fn policy(shadow: &[&str]) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/treaty.toml");
    let mut config = Config::load(&path, &MapEnv::new()).unwrap();
    if let Some(c) = config.contracts.as_mut() {
        c.shadow = shadow.iter().map(|s| (*s).to_owned()).collect();
    }
    Policy::load(Arc::new(config)).unwrap()
}

fn decide(c: &mut Criterion) {
    let tenant: TenantId = "acme".parse().unwrap();
    let channel: ChannelId = "aws-marketplace".parse().unwrap();
    let product: ProductId = "frontier".parse().unwrap();
    let hints = Hints::default();
    let ask = Ask {
        request_id: "req_1",
        subject: Subject {
            key_id: "key_1",
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
        at_ms: treaty_domain::now_ms(),
    };
    let alone = policy(&[]);
    c.bench_function("decide/in_force_only", |b| {
        b.iter(|| black_box(alone.decide(black_box(&ask)).unwrap().allowed))
    });
    let shadowed = policy(&["reading-aws", "reading-microsoft"]);
    c.bench_function("decide/two_shadow_readings", |b| {
        b.iter(|| black_box(shadowed.decide(black_box(&ask)).unwrap().shadows.len()))
    });
}

criterion_group!(benches, decide);
criterion_main!(benches);

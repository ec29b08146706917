//! The contract decision on the hot path, and contract loading.
//!
//! `cargo bench -p treaty-contracts` runs criterion's measurements, then
//! prints per-call percentiles (criterion reports means and medians; the
//! target is a p99) from individually timed decisions.
//!
//! - `decide/example`: the Frontier example (6 hosts, 13 clauses, 3 tenants).
//! - `decide/synthetic`: 8 hosts x 30 clauses x 1,000 tenants, with windows,
//!   named tenants and hosts, data classifications and preferences.
//! - `load/synthetic`: parsing, validating and tabulating the synthetic set.
//!
//! A "decision" is [`Contracts::decide`] plus reading everything it returns:
//! admission, every host's verdict and clauses, the preference set and the
//! runtime verdict.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use treaty_contracts::{Contracts, Entities, Query};
use treaty_domain::{
    Channel, ChannelId, ChannelKind, Host, HostId, Instance, Product, ProductId, ProductKind,
    ProviderKind, Tenant, TenantId, WorkloadClass,
};

struct World {
    tenants: Vec<Tenant>,
    channels: Vec<Channel>,
    products: Vec<Product>,
    hosts: Vec<Arc<Host>>,
    instance: Instance,
    data_classifications: Vec<String>,
}

impl World {
    fn entities(&self) -> Entities<'_> {
        Entities {
            tenants: &self.tenants,
            channels: &self.channels,
            products: &self.products,
            hosts: &self.hosts,
            instance: &self.instance,
            data_classifications: &self.data_classifications,
        }
    }
}

fn host(id: &str, cloud: &str, region: &str, provider: ProviderKind, certs: &[&str]) -> Arc<Host> {
    Arc::new(Host {
        id: HostId::new(id).unwrap(),
        cloud: cloud.into(),
        region: region.into(),
        provider,
        certifications: certs.iter().map(|c| c.to_string()).collect(),
        models: vec![],
        weight: 1,
    })
}

fn channel(id: &str, kind: ChannelKind, cloud: Option<&str>) -> Channel {
    Channel {
        id: ChannelId::new(id).unwrap(),
        kind,
        cloud: cloud.map(str::to_owned),
    }
}

fn product(id: &str, kind: ProductKind) -> Product {
    Product {
        id: ProductId::new(id).unwrap(),
        kind,
        models: None,
    }
}

fn tenant(id: &str, segment: &str, data_region: &str) -> Tenant {
    Tenant {
        id: TenantId::new(id).unwrap(),
        segment: segment.into(),
        data_region: data_region.into(),
    }
}

fn channels() -> Vec<Channel> {
    vec![
        channel("direct", ChannelKind::FirstParty, None),
        channel("aws-marketplace", ChannelKind::ThirdPartyCloud, Some("aws")),
        channel(
            "azure-marketplace",
            ChannelKind::ThirdPartyCloud,
            Some("azure"),
        ),
        channel("gcp-marketplace", ChannelKind::ThirdPartyCloud, Some("gcp")),
    ]
}

fn products() -> Vec<Product> {
    vec![
        product("api", ProductKind::Api),
        product("frontier", ProductKind::FirstParty),
        product("chat", ProductKind::NonApi),
    ]
}

fn example() -> (World, Contracts) {
    let world = World {
        tenants: vec![
            tenant("acme", "enterprise", "us"),
            tenant("dod", "national_security", "us"),
            tenant("eurobank", "enterprise", "eu"),
        ],
        channels: channels(),
        products: products(),
        hosts: vec![
            host(
                "azure-eastus",
                "azure",
                "us-east",
                ProviderKind::AzureOpenai,
                &[],
            ),
            host(
                "azure-westus",
                "azure",
                "us-west",
                ProviderKind::AzureOpenai,
                &[],
            ),
            host(
                "azure-westeurope",
                "azure",
                "eu-west",
                ProviderKind::AzureOpenai,
                &[],
            ),
            host(
                "bedrock-useast1",
                "aws",
                "us-east",
                ProviderKind::Bedrock,
                &[],
            ),
            host(
                "gemini-uscentral1",
                "gcp",
                "us-central",
                ProviderKind::Gemini,
                &[],
            ),
            host(
                "onprem-vllm",
                "onprem",
                "us-east",
                ProviderKind::OpenaiCompatible,
                &[],
            ),
        ],
        instance: Instance {
            id: "treaty-azure-eastus".into(),
            cloud: "azure".into(),
            region: "us-east".into(),
        },
        data_classifications: vec![],
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/frontier/contracts/reading-openai");
    let contracts = Contracts::load(&dir, world.entities()).unwrap();
    (world, contracts)
}

/// 8 hosts, 1,000 tenants (4 segments x 3 data regions, 5 of them named by
/// clauses), 5 channels, 3 products, 4 data classifications.
fn synthetic_world() -> World {
    let segments = [
        "enterprise",
        "national_security",
        "public_sector",
        "startup",
    ];
    let regions = ["us", "eu", "ap"];
    let mut channels = channels();
    channels.push(channel("partner", ChannelKind::Reseller, None));
    World {
        tenants: (0..1000)
            .map(|i| {
                tenant(
                    &format!("tenant-{i:04}"),
                    segments[i % 4],
                    regions[(i / 4) % 3],
                )
            })
            .collect(),
        channels,
        products: products(),
        hosts: vec![
            host(
                "h0",
                "azure",
                "us-east",
                ProviderKind::AzureOpenai,
                &["soc2", "hipaa", "fedramp"],
            ),
            host(
                "h1",
                "azure",
                "us-west",
                ProviderKind::AzureOpenai,
                &["soc2", "hipaa"],
            ),
            host(
                "h2",
                "azure",
                "eu-west",
                ProviderKind::AzureOpenai,
                &["soc2", "gdpr"],
            ),
            host(
                "h3",
                "aws",
                "us-east",
                ProviderKind::Bedrock,
                &["soc2", "hipaa", "fedramp"],
            ),
            host(
                "h4",
                "aws",
                "eu-west",
                ProviderKind::Bedrock,
                &["soc2", "gdpr"],
            ),
            host("h5", "gcp", "us-central", ProviderKind::Gemini, &["soc2"]),
            host("h6", "gcp", "ap-south", ProviderKind::Gemini, &[]),
            host(
                "h7",
                "onprem",
                "us-east",
                ProviderKind::OpenaiCompatible,
                &[],
            ),
        ],
        instance: Instance {
            id: "i-azure".into(),
            cloud: "azure".into(),
            region: "us-east".into(),
        },
        data_classifications: ["public", "internal", "confidential", "phi"]
            .map(String::from)
            .to_vec(),
    }
}

/// 30 clauses in the shapes real contracts take.
const SYNTHETIC: &str = r#"
@id("A0") @title("open-distribution") @source("s")
permit (principal, action == Action::"admit", resource);
@id("H0") @title("open-hosting") @source("s")
permit (principal, action in [Action::"host", Action::"hold"], resource);
@id("S01") @title("stateless-exclusive") @source("s") @effective_from("2025-10-28")
forbid (principal, action == Action::"host", resource)
when { context.class == "stateless_api" || context.class == "embeddings" }
unless { resource.cloud == "azure" || (principal.segment == "national_security" && resource.geography == "us") };
@id("S02") @title("first-party-runtime") @source("s") @effective_from("2025-10-28")
forbid (principal, action == Action::"hold", resource)
when { context.product.kind == "first_party" } unless { resource.cloud == "azure" };
@id("S03") @title("frontier-distribution") @source("s") @effective_from("2026-02-27")
forbid (principal, action == Action::"admit", resource == Product::"frontier")
when { context.channel.kind == "third_party_cloud" } unless { context.channel == Channel::"aws-marketplace" };
@id("S04") @title("eu-residency") @source("s")
forbid (principal, action in [Action::"host", Action::"hold"], resource)
when { principal.data_region == "eu" } unless { resource.geography == "eu" };
@id("S05") @title("us-national-security") @source("s")
forbid (principal, action in [Action::"host", Action::"hold"], resource)
when { principal.segment == "national_security" } unless { resource.geography == "us" };
@id("S06") @title("ap-residency") @source("s") @effective_from("2025-01-01")
forbid (principal, action in [Action::"host", Action::"hold"], resource)
when { principal.data_region == "ap" } unless { resource.geography == "ap" || resource.geography == "us" };
@id("S07") @title("phi-needs-baa") @source("s")
forbid (principal, action == Action::"host", resource)
when { context.data_classification == "phi" } unless { resource.certifications.contains("hipaa") };
@id("S08") @title("confidential-needs-soc2") @source("s")
forbid (principal, action == Action::"host", resource)
when { context.data_classification == "confidential" } unless { resource.certifications.contains("soc2") };
@id("S09") @title("onprem-only-customer") @source("s")
forbid (principal, action == Action::"host", resource)
when { principal == Tenant::"tenant-0007" } unless { resource.cloud == "onprem" };
@id("S10") @title("non-api-anywhere") @source("s") @effective_from("2025-10-28")
permit (principal, action == Action::"host", resource) when { context.class == "non_api_product" };
@id("S11") @title("training-anywhere") @source("s") @effective_from("2025-10-28")
permit (principal, action == Action::"host", resource)
when { context.class == "training" || context.class == "fine_tune" };
@id("S12") @title("national-security") @source("s") @effective_from("2025-10-28")
permit (principal, action == Action::"host", resource)
when { principal.segment == "national_security" && resource.geography == "us" };
@id("S13") @title("no-first-party-via-resellers") @source("s")
forbid (principal, action == Action::"admit", resource)
when { context.channel.kind == "reseller" && resource.kind == "first_party" };
@id("S14") @title("direct-only-customer") @source("s")
forbid (principal, action == Action::"admit", resource)
when { principal == Tenant::"tenant-0013" && context.channel.kind != "first_party" };
@id("S15") @title("all-azure") @source("s") @effective_from("2023-01-23") @effective_until("2025-10-27")
forbid (principal, action in [Action::"host", Action::"hold"], resource) unless { resource.cloud == "azure" };
@id("S16") @title("batch-on-managed") @source("s") @effective_from("2025-01-01")
forbid (principal, action == Action::"host", resource)
when { context.class == "batch" } unless { resource.provider == "azure_openai" || resource.provider == "bedrock" };
@id("S17") @title("gcp-marketplace-stateless") @source("s") @effective_from("2024-06-01") @effective_until("2026-12-31")
forbid (principal, action == Action::"host", resource)
when { context.channel.cloud == "gcp" && context.class == "stateless_api" }
unless { resource.cloud == "azure" || resource.cloud == "gcp" };
@id("S18") @title("public-sector-fedramp") @source("s")
forbid (principal, action == Action::"host", resource)
when { principal.segment == "public_sector" }
unless { resource.certifications.contains("fedramp") || principal == Tenant::"tenant-0021" };
@id("S19") @title("public-sector-pilot") @source("s")
permit (principal, action == Action::"host", resource) when { principal == Tenant::"tenant-0021" };
@id("S20") @title("no-api-via-partner") @source("s") @effective_from("2026-06-01")
forbid (principal, action == Action::"admit", resource == Product::"api")
when { context.channel == Channel::"partner" };
@id("S21") @title("no-embeddings-onprem") @source("s") @effective_from("2025-03-01")
forbid (principal, action == Action::"host", resource)
when { context.class == "embeddings" && resource.cloud == "onprem" };
@id("S22") @title("eu-only-customer") @source("s")
forbid (principal, action in [Action::"host", Action::"hold"], resource)
when { principal == Tenant::"tenant-0042" && resource.geography != "eu" };
@id("S23") @title("h7-no-training") @source("s") @effective_until("2025-12-31")
forbid (principal, action == Action::"host", resource == Host::"h7") when { context.class == "training" };
@id("S24") @title("onprem-customer") @source("s")
permit (principal, action == Action::"host", resource)
when { principal == Tenant::"tenant-0099" && resource.cloud == "onprem" };
@id("S25") @title("startup-frontier-later") @source("s") @effective_until("2025-12-31")
forbid (principal, action == Action::"admit", resource == Product::"frontier")
when { principal.segment == "startup" };
@id("S26") @title("aws-commitment") @source("s") @kind("preference")
permit (principal, action == Action::"prefer", resource) when { resource.cloud == "aws" };
@id("S27") @title("public-on-prem-is-cheapest") @source("s") @kind("preference")
permit (principal, action == Action::"prefer", resource)
when { context.data_classification == "public" && resource.cloud == "onprem" };
@id("S28") @title("west-is-full") @source("s") @kind("preference") @effective_from("2026-01-01")
forbid (principal, action == Action::"prefer", resource) when { resource.region == "us-west" };
"#;

fn synthetic(world: &World) -> Contracts {
    Contracts::from_sources(
        "synthetic",
        &[("synthetic.cedar".into(), SYNTHETIC.into())],
        world.entities(),
    )
    .unwrap()
}

struct Owned {
    tenant: TenantId,
    channel: ChannelId,
    product: ProductId,
    class: WorkloadClass,
    data_classification: String,
    at: i64,
}

/// Deterministic pseudo-random queries over a world's ids and instants
/// around every window edge.
fn queries(world: &World, n: usize) -> Vec<Owned> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |m: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % m as u64) as usize
    };
    // 2023-06-01, 2025-10-28, 2026-03-01, 2027-01-01 (ms)
    let instants = [
        1_685_577_600_000_i64,
        1_761_609_600_000,
        1_772_323_200_000,
        1_798_761_600_000,
    ];
    let dcs: Vec<String> = if world.data_classifications.is_empty() {
        vec!["unclassified".into()]
    } else {
        world.data_classifications.clone()
    };
    (0..n)
        .map(|_| Owned {
            tenant: world.tenants[next(world.tenants.len())].id.clone(),
            channel: world.channels[next(world.channels.len())].id.clone(),
            product: world.products[next(world.products.len())].id.clone(),
            class: WorkloadClass::ALL[next(7)],
            data_classification: dcs[next(dcs.len())].clone(),
            at: instants[next(instants.len())],
        })
        .collect()
}

fn query(o: &Owned) -> Query<'_> {
    Query {
        tenant: &o.tenant,
        channel: &o.channel,
        product: &o.product,
        class: o.class,
        data_classification: &o.data_classification,
        at_unix_ms: o.at,
    }
}

/// One full decision, consumed the way the gateway consumes it.
#[inline]
fn decide_all(c: &Contracts, q: &Query<'_>) -> usize {
    let d = c.decide(q);
    let mut n = d.admitted as usize + d.admit_clauses.len() + d.runtime_allowed as usize;
    for (i, clauses) in d.host_clauses.iter().enumerate() {
        n += d.allowed_hosts.contains(i) as usize + clauses.len();
    }
    n + d.preferred_hosts.iter().count() + d.runtime_clauses.len()
}

fn bench(c: &mut Criterion) {
    let (ex_world, ex) = example();
    let sy_world = synthetic_world();
    let sy = synthetic(&sy_world);
    for (name, contracts, world) in [("example", &ex, &ex_world), ("synthetic", &sy, &sy_world)] {
        let qs = queries(world, 4096);
        let mut i = 0;
        c.bench_function(&format!("decide/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(decide_all(contracts, &query(&qs[i])))
            })
        });
    }
    let mut group = c.benchmark_group("load");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("synthetic", |b| b.iter(|| black_box(synthetic(&sy_world))));
    group.finish();
}

/// p50/p99/max of individually timed decisions (each timed over a batch of
/// 16 to stay above the clock's resolution).
fn percentiles() {
    let (ex_world, ex) = example();
    let sy_world = synthetic_world();
    let started = Instant::now();
    let sy = synthetic(&sy_world);
    println!("load/synthetic (one cold load): {:?}", started.elapsed());
    for (name, contracts, world) in [("example", &ex, &ex_world), ("synthetic", &sy, &sy_world)] {
        let qs = queries(world, 4096);
        let mut samples = Vec::with_capacity(200_000);
        for round in 0..200_000usize {
            let start = Instant::now();
            for k in 0..16 {
                black_box(decide_all(contracts, &query(&qs[(round * 16 + k) & 4095])));
            }
            samples.push(start.elapsed().as_nanos() as f64 / 16.0);
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
        println!(
            "decide/{name}: p50 {:.0} ns, p99 {:.0} ns, p99.9 {:.0} ns, max {:.0} ns (per decision, batches of 16)",
            at(0.50),
            at(0.99),
            at(0.999),
            samples[samples.len() - 1]
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
    percentiles();
}

//! The Frontier example's clauses, checked case by case against the clause
//! texts of the scenario (not against the engine's own output).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod common;

use std::collections::BTreeSet;

use common::*;
use treaty_contracts::{ClauseKind, Effect, Explanation};
use treaty_domain::WorkloadClass::{self, *};

const AE: &str = "azure-eastus";
const AW: &str = "azure-westus";
const AEU: &str = "azure-westeurope";
const BR: &str = "bedrock-useast1";
const GE: &str = "gemini-uscentral1";
const OP: &str = "onprem-vllm";
const ALL: &[&str] = &[AE, AW, AEU, BR, GE, OP];
const AZURE: &[&str] = &[AE, AW, AEU];
const US: &[&str] = &[AE, AW, BR, GE, OP];

/// The last millisecond of C0 (2025-10-27 is included).
fn c0_last() -> i64 {
    at("2025-10-28", -1)
}
/// The first millisecond of C1, C2, C3, C5, C6, C7, C4m.
fn c1_first() -> i64 {
    at("2025-10-28", 0)
}
fn c4_first() -> i64 {
    at("2026-02-27", 0)
}
fn before_c4() -> i64 {
    at("2026-02-27", -1)
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn allowed(e: &Explanation) -> BTreeSet<String> {
    e.hosts
        .iter()
        .filter(|h| h.allowed)
        .map(|h| h.id.to_string())
        .collect()
}

fn host_clauses(e: &Explanation, host: &str) -> BTreeSet<String> {
    let h = e.hosts.iter().find(|h| h.id.as_str() == host).unwrap();
    h.clauses.iter().map(|c| c.to_string()).collect()
}

fn ids(list: &[treaty_contracts::ClauseId]) -> BTreeSet<String> {
    list.iter().map(|c| c.to_string()).collect()
}

/// One placement case: tenant, channel, product, class, time; the hosts the
/// clause texts allow; and for some hosts the clauses that must be named.
struct Placement {
    why: &'static str,
    tenant: &'static str,
    channel: &'static str,
    product: &'static str,
    class: WorkloadClass,
    at: fn() -> i64,
    allowed: &'static [&'static str],
    named: &'static [(&'static str, &'static [&'static str])],
    preferred: Option<&'static [&'static str]>,
}

const PLACEMENTS: &[Placement] = &[
    Placement {
        why: "C0 on its last day: Azure hosts every workload",
        tenant: "acme",
        channel: "direct",
        product: "api",
        class: StatelessApi,
        at: c0_last,
        allowed: AZURE,
        named: &[(BR, &["C0"]), (AE, &["H0"])],
        preferred: Some(&[]),
    },
    Placement {
        why: "C1 from its first day: stateless calls only on Azure",
        tenant: "acme",
        channel: "direct",
        product: "api",
        class: StatelessApi,
        at: c1_first,
        allowed: AZURE,
        named: &[(BR, &["C1"]), (GE, &["C1"]), (OP, &["C1"]), (AEU, &["H0"])],
        preferred: Some(&[]),
    },
    Placement {
        why: "C1 covers embeddings",
        tenant: "acme",
        channel: "direct",
        product: "api",
        class: Embeddings,
        at: c1_first,
        allowed: AZURE,
        named: &[(BR, &["C1"])],
        preferred: None,
    },
    Placement {
        why: "C1 does not cover batch: open hosting",
        tenant: "acme",
        channel: "direct",
        product: "api",
        class: Batch,
        at: c1_first,
        allowed: ALL,
        named: &[(BR, &["H0"])],
        preferred: Some(&[BR]),
    },
    Placement {
        why: "C6: national security on any US host, notwithstanding C1; R2 keeps it out of the EU",
        tenant: "dod",
        channel: "direct",
        product: "api",
        class: StatelessApi,
        at: c1_first,
        allowed: US,
        named: &[
            (BR, &["H0", "C6"]),
            (GE, &["H0", "C6"]),
            (OP, &["H0", "C6"]),
            (AE, &["H0", "C6"]),
            (AEU, &["R2"]),
        ],
        preferred: Some(&[BR]),
    },
    Placement {
        why: "C6 notwithstanding C3 too (third-party channel)",
        tenant: "dod",
        channel: "aws-marketplace",
        product: "api",
        class: Embeddings,
        at: c1_first,
        allowed: US,
        named: &[(BR, &["H0", "C6"]), (AEU, &["R2"])],
        preferred: Some(&[BR]),
    },
    Placement {
        why: "before C6 (C0 in force): national security only on Azure in the US",
        tenant: "dod",
        channel: "direct",
        product: "api",
        class: StatelessApi,
        at: c0_last,
        allowed: &[AE, AW],
        named: &[(BR, &["C0"]), (AEU, &["R2"])],
        preferred: Some(&[]),
    },
    Placement {
        why: "R2: national security training stays in the US even where C7 allows anywhere",
        tenant: "dod",
        channel: "direct",
        product: "api",
        class: Training,
        at: c1_first,
        allowed: US,
        named: &[(AEU, &["R2"]), (GE, &["H0", "C6", "C7"])],
        preferred: None,
    },
    Placement {
        why: "R1: EU tenant only on the EU host",
        tenant: "eurobank",
        channel: "direct",
        product: "api",
        class: StatelessApi,
        at: c1_first,
        allowed: &[AEU],
        named: &[(AE, &["R1"]), (BR, &["C1", "R1"]), (AEU, &["H0"])],
        preferred: Some(&[]),
    },
    Placement {
        why: "nothing overrides R1: not C5",
        tenant: "eurobank",
        channel: "direct",
        product: "chat",
        class: NonApiProduct,
        at: c1_first,
        allowed: &[AEU],
        named: &[(BR, &["R1"]), (AEU, &["H0", "C5"])],
        preferred: Some(&[]),
    },
    Placement {
        why: "nothing overrides R1: not C7",
        tenant: "eurobank",
        channel: "aws-marketplace",
        product: "api",
        class: FineTune,
        at: c1_first,
        allowed: &[AEU],
        named: &[(GE, &["R1"]), (AEU, &["H0", "C7"])],
        preferred: None,
    },
    Placement {
        why: "R1 before 2025-10-28 too, with C0",
        tenant: "eurobank",
        channel: "direct",
        product: "api",
        class: StatelessApi,
        at: c0_last,
        allowed: &[AEU],
        named: &[(BR, &["C0", "R1"])],
        preferred: None,
    },
    Placement {
        why: "C3: stateless calls via a third-party channel only on Azure",
        tenant: "acme",
        channel: "aws-marketplace",
        product: "api",
        class: StatelessApi,
        at: c1_first,
        allowed: AZURE,
        named: &[(BR, &["C1", "C3"]), (AE, &["H0"])],
        preferred: Some(&[]),
    },
    Placement {
        why: "C3 is about stateless calls: a non-API product via a marketplace runs anywhere (C5)",
        tenant: "acme",
        channel: "gcp-marketplace",
        product: "chat",
        class: NonApiProduct,
        at: c1_first,
        allowed: ALL,
        named: &[(GE, &["H0", "C5"])],
        preferred: Some(&[BR]),
    },
    Placement {
        why: "C7: training anywhere",
        tenant: "acme",
        channel: "direct",
        product: "api",
        class: Training,
        at: c1_first,
        allowed: ALL,
        named: &[(OP, &["H0", "C7"])],
        preferred: Some(&[BR]),
    },
    Placement {
        why: "C7: fine_tune anywhere",
        tenant: "acme",
        channel: "azure-marketplace",
        product: "api",
        class: FineTune,
        at: c1_first,
        allowed: ALL,
        named: &[(BR, &["H0", "C7"])],
        preferred: Some(&[BR]),
    },
    Placement {
        why: "C0: training only on Azure before C7",
        tenant: "acme",
        channel: "direct",
        product: "api",
        class: Training,
        at: c0_last,
        allowed: AZURE,
        named: &[(BR, &["C0"])],
        preferred: Some(&[]),
    },
    Placement {
        why: "C5: non-API products anywhere",
        tenant: "acme",
        channel: "direct",
        product: "chat",
        class: NonApiProduct,
        at: c4_first,
        allowed: ALL,
        named: &[(OP, &["H0", "C5"])],
        preferred: Some(&[BR]),
    },
    Placement {
        why: "reading-aws's frontier steps are non_api_product: C5 reaches them in every reading's clauses",
        tenant: "acme",
        channel: "aws-marketplace",
        product: "frontier",
        class: NonApiProduct,
        at: c4_first,
        allowed: ALL,
        named: &[(BR, &["H0", "C5"])],
        preferred: Some(&[BR]),
    },
    Placement {
        why: "frontier's stateless model steps are C1-bound where classified stateless_api",
        tenant: "acme",
        channel: "aws-marketplace",
        product: "frontier",
        class: StatelessApi,
        at: c4_first,
        allowed: AZURE,
        named: &[(BR, &["C1", "C3"])],
        preferred: Some(&[]),
    },
    Placement {
        why: "before C0 only the defaults and residency hold",
        tenant: "acme",
        channel: "direct",
        product: "api",
        class: StatelessApi,
        at: || at("2022-06-01", 0),
        allowed: ALL,
        named: &[(BR, &["H0"])],
        preferred: Some(&[BR]),
    },
];

#[test]
fn placements_follow_the_clause_texts_in_every_reading() {
    let world = frontier();
    for reading in READINGS {
        let c = load(reading, &world);
        for case in PLACEMENTS {
            let ctx = format!(
                "{reading}: {} ({} {} {} {})",
                case.why, case.tenant, case.channel, case.product, case.class
            );
            let e = explain(
                &c,
                case.tenant,
                case.channel,
                case.product,
                case.class,
                (case.at)(),
            );
            assert!(
                e.admitted || case.channel != "direct",
                "{ctx}: direct must admit"
            );
            assert_eq!(allowed(&e), set(case.allowed), "{ctx}: allowed hosts");
            for (host, clauses) in case.named {
                assert_eq!(
                    host_clauses(&e, host),
                    set(clauses),
                    "{ctx}: clauses for {host}"
                );
            }
            if let Some(preferred) = case.preferred {
                let got: BTreeSet<String> =
                    e.preferred_hosts.iter().map(|h| h.to_string()).collect();
                assert_eq!(got, set(preferred), "{ctx}: preferred hosts");
            }
        }
    }
}

/// Frontier admission per reading: (reading, channel, time, admitted, clauses).
#[test]
fn frontier_distribution_per_reading() {
    let world = frontier();
    type Row = (
        &'static str,
        &'static str,
        fn() -> i64,
        bool,
        &'static [&'static str],
    );
    let rows: &[Row] = &[
        // direct may always sell it
        ("reading-openai", "direct", c4_first, true, &["A0"]),
        ("reading-aws", "direct", c4_first, true, &["A0"]),
        ("reading-microsoft", "direct", c4_first, true, &["A0"]),
        ("reading-microsoft", "direct", c1_first, true, &["A0"]),
        // openai / aws: only aws-marketplace among third-party channels, from 2026-02-27
        ("reading-openai", "aws-marketplace", c4_first, true, &["A0"]),
        ("reading-aws", "aws-marketplace", c4_first, true, &["A0"]),
        (
            "reading-openai",
            "gcp-marketplace",
            before_c4,
            true,
            &["A0"],
        ),
        (
            "reading-openai",
            "gcp-marketplace",
            c4_first,
            false,
            &["C4"],
        ),
        ("reading-aws", "gcp-marketplace", c4_first, false, &["C4"]),
        (
            "reading-openai",
            "azure-marketplace",
            c4_first,
            false,
            &["C4"],
        ),
        // microsoft: no third-party cloud channel from 2025-10-28
        (
            "reading-microsoft",
            "aws-marketplace",
            c0_last,
            true,
            &["A0"],
        ),
        (
            "reading-microsoft",
            "aws-marketplace",
            c1_first,
            false,
            &["C4m"],
        ),
        (
            "reading-microsoft",
            "aws-marketplace",
            c4_first,
            false,
            &["C4m"],
        ),
        (
            "reading-microsoft",
            "gcp-marketplace",
            c1_first,
            false,
            &["C4m"],
        ),
        (
            "reading-microsoft",
            "azure-marketplace",
            c1_first,
            false,
            &["C4m"],
        ),
    ];
    for (reading, channel, when, admitted, clauses) in rows {
        let c = load(reading, &world);
        for tenant in ["acme", "dod", "eurobank"] {
            for class in [StatefulAgent, StatelessApi, NonApiProduct] {
                let e = explain(&c, tenant, channel, "frontier", class, when());
                assert_eq!(
                    e.admitted, *admitted,
                    "{reading} {channel} {tenant} {class}"
                );
                assert_eq!(
                    ids(&e.admit_clauses),
                    set(clauses),
                    "{reading} {channel} {tenant}"
                );
            }
        }
        // C4 and C4m are about frontier only.
        let e = explain(&c, "acme", channel, "api", StatelessApi, when());
        assert!(e.admitted, "{reading} {channel}: api is always sold");
    }
}

#[test]
fn runtime_holding_per_reading() {
    let on_azure = frontier();
    let mut on_aws = frontier();
    on_aws.instance.id = "treaty-aws-useast1".into();
    on_aws.instance.cloud = "aws".into();
    on_aws.instance.region = "us-east".into();
    for reading in READINGS {
        let c = load(reading, &on_azure);
        let e = explain(&c, "acme", "direct", "frontier", StatefulAgent, c4_first());
        assert!(
            e.runtime.allowed,
            "{reading}: an Azure instance holds frontier"
        );
        assert_eq!(ids(&e.runtime.clauses), set(&["H0"]));
        // "placed by the same clauses as a host": R1 keeps an EU tenant's
        // runtime off a US instance.
        let e = explain(
            &c,
            "eurobank",
            "direct",
            "frontier",
            StatefulAgent,
            c4_first(),
        );
        assert!(!e.runtime.allowed, "{reading}: R1 on the runtime");
        assert_eq!(ids(&e.runtime.clauses), set(&["R1"]));

        let c = load(reading, &on_aws);
        let e = explain(&c, "acme", "direct", "frontier", StatefulAgent, c1_first());
        if reading == "reading-aws" {
            assert!(e.runtime.allowed, "{reading}: C2a lets AWS hold frontier");
            assert_eq!(ids(&e.runtime.clauses), set(&["H0"]));
        } else {
            assert!(!e.runtime.allowed, "{reading}: C2 keeps frontier on Azure");
            assert_eq!(ids(&e.runtime.clauses), set(&["C2"]));
        }
        // Before 2025-10-28, C0: Azure holds everything, in every reading.
        let e = explain(&c, "acme", "direct", "frontier", StatefulAgent, c0_last());
        assert!(!e.runtime.allowed, "{reading}: C0 on the runtime");
        assert_eq!(ids(&e.runtime.clauses), set(&["C0"]));
        // C2 and C2a are about first-party products only.
        let e = explain(&c, "acme", "direct", "api", StatefulAgent, c1_first());
        assert!(
            e.runtime.allowed,
            "{reading}: an API product's state may be anywhere"
        );
    }
}

#[test]
fn unknown_ids_are_refused_without_panicking() {
    let c = load("reading-openai", &frontier());
    for (tenant, channel, product) in [
        ("nobody", "direct", "api"),
        ("acme", "nowhere", "api"),
        ("acme", "direct", "nothing"),
    ] {
        let e = explain(&c, tenant, channel, product, StatelessApi, c1_first());
        assert!(!e.admitted && e.admit_clauses.is_empty());
        assert_eq!(e.hosts.len(), 6, "every host listed");
        assert!(e.hosts.iter().all(|h| !h.allowed && h.clauses.is_empty()));
        assert!(!e.runtime.allowed && e.preferred_hosts.is_empty());
    }
}

#[test]
fn explanation_has_exactly_the_documented_shape() {
    let c = load("reading-openai", &frontier());
    let e = explain(&c, "dod", "direct", "api", StatelessApi, c1_first());
    let v = serde_json::to_value(&e).unwrap();
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "admit_clauses",
            "admitted",
            "hosts",
            "preferred_hosts",
            "runtime"
        ]
        .iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(v["admitted"], true);
    assert_eq!(v["admit_clauses"], serde_json::json!(["A0"]));
    let hosts: Vec<&str> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ALL, "every configured host, in config order");
    assert_eq!(
        v["hosts"][2],
        serde_json::json!({"id": "azure-westeurope", "allowed": false, "clauses": ["R2"]})
    );
    assert_eq!(
        v["runtime"],
        serde_json::json!({"allowed": true, "clauses": ["H0"]})
    );
    assert_eq!(v["preferred_hosts"], serde_json::json!(["bedrock-useast1"]));
    let back: Explanation = serde_json::from_value(v).unwrap();
    assert_eq!(back, e);
}

#[test]
fn clauses_carry_their_annotations() {
    let c = load("reading-microsoft", &frontier());
    assert_eq!(c.reading(), "reading-microsoft");
    let ids: Vec<&str> = c.clauses().iter().map(|c| c.id.as_str()).collect();
    for id in [
        "A0", "H0", "C0", "C1", "C2", "C3", "C4m", "C5", "C6", "C7", "R1", "R2", "P1",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert!(!ids.contains(&"C4"));
    assert!(ids.iter().all(|id| !id.starts_with("policy")));
    let c0 = c.clauses().iter().find(|c| c.id.as_str() == "C0").unwrap();
    assert_eq!(c0.window.to_string(), "2023-01-23 to 2025-10-27");
    assert_eq!(c0.effect, Effect::Forbid);
    assert_eq!(c0.kind, ClauseKind::Placement);
    assert!(c0.file.ends_with("hosting.cedar"));
    assert!(c0.line > 1);
    assert!(c0.source.contains("Azure hosts every workload"));
    let p1 = c.clauses().iter().find(|c| c.id.as_str() == "P1").unwrap();
    assert_eq!(p1.kind, ClauseKind::Preference);
    let c2 = c.clauses().iter().find(|c| c.id.as_str() == "C2").unwrap();
    assert_eq!(c2.kind, ClauseKind::Holding);
    let a0 = c.clauses().iter().find(|c| c.id.as_str() == "A0").unwrap();
    assert_eq!(a0.kind, ClauseKind::Admission);
    assert!(a0.window.is_always());
}

#[test]
fn decide_agrees_with_explain() {
    let world = frontier();
    let c = load("reading-openai", &world);
    let tenant = treaty_domain::TenantId::new("dod").unwrap();
    let channel = treaty_domain::ChannelId::new("direct").unwrap();
    let product = treaty_domain::ProductId::new("api").unwrap();
    let q = treaty_contracts::Query {
        tenant: &tenant,
        channel: &channel,
        product: &product,
        class: StatelessApi,
        data_classification: "",
        at_unix_ms: c1_first(),
    };
    let d = c.decide(&q);
    assert_eq!(d.host_clauses.len(), 6);
    assert_eq!(d.allowed_hosts.len(), 5);
    assert!(!d.allowed_hosts.contains(2));
    assert!(d.preferred_hosts.is_subset(d.allowed_hosts));
    assert_eq!(d.preferred_hosts.iter().collect::<Vec<_>>(), vec![3]);
}

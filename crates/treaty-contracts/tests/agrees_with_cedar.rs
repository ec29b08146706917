//! The key property of the engine: the precomputed table answers exactly
//! what Cedar answers when asked directly, for random entities, random
//! clause sets and random requests.
//!
//! The reference here is independent of the engine: entities and contexts
//! are built from JSON, the policy set holds the clauses in force at the
//! query's instant with their real effects, and every verdict is one
//! `is_authorized` call.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod common;

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, EntityUid, Policy, PolicyId, PolicySet,
    Request, Schema,
};
use common::*;
use proptest::prelude::*;
use serde_json::json;
use treaty_contracts::{Contracts, Query};
use treaty_domain::{
    ChannelId, ChannelKind, Instance, ProductId, ProductKind, ProviderKind, TenantId, WorkloadClass,
};

const CLOUDS: [&str; 4] = ["azure", "aws", "gcp", "onprem"];
const REGIONS: [&str; 4] = ["us-east", "us-west", "eu-west", "ap-south"];
const GEOS: [&str; 3] = ["us", "eu", "ap"];
const SEGMENTS: [&str; 3] = ["enterprise", "national_security", "public_sector"];
const DATA_REGIONS: [&str; 3] = ["us", "eu", "ap"];
const CERTS: [&str; 3] = ["soc2", "hipaa", "gdpr"];
const PROVIDERS: [ProviderKind; 3] = [
    ProviderKind::AzureOpenai,
    ProviderKind::Bedrock,
    ProviderKind::OpenaiCompatible,
];
const CHANNEL_KINDS: [&str; 3] = ["first_party", "third_party_cloud", "reseller"];
const PRODUCT_KINDS: [&str; 3] = ["api", "first_party", "non_api"];
const CHANNELS: [&str; 5] = [
    "direct",
    "aws-marketplace",
    "azure-marketplace",
    "gcp-marketplace",
    "partner",
];
const PRODUCTS: [&str; 3] = ["api", "frontier", "chat"];
const DATES: [&str; 4] = ["2024-01-01", "2025-06-15", "2025-10-28", "2026-02-27"];
const DATA_CLASSES: [&str; 2] = ["public", "secret"];

/// What a clause is scoped to.
#[derive(Debug, Clone, Copy)]
enum Scope {
    Admit,
    Host,
    HostHold,
    Hold,
    Prefer,
}

/// One atomic condition, rendered for a scope (resource atoms that do not
/// exist on the scope's resource fall back to a principal atom).
#[derive(Debug, Clone)]
struct Atom(u8, usize);

fn atom(a: &Atom, scope: Scope) -> String {
    let i = a.1;
    let common = |k: u8| -> String {
        match k % 10 {
            0 => format!("principal.segment == \"{}\"", SEGMENTS[i % 3]),
            1 => format!("principal.data_region == \"{}\"", DATA_REGIONS[i % 3]),
            2 => format!("principal == Tenant::\"t{}\"", i % 7),
            3 => format!(
                "context.class == \"{}\"",
                WorkloadClass::ALL[i % 7].as_str()
            ),
            4 => format!("context.channel.kind == \"{}\"", CHANNEL_KINDS[i % 3]),
            5 => format!("context.channel == Channel::\"{}\"", CHANNELS[i % 5]),
            6 => format!("context.product.kind == \"{}\"", PRODUCT_KINDS[i % 3]),
            7 => format!("context.product == Product::\"{}\"", PRODUCTS[i % 3]),
            8 => format!("context.data_classification == \"{}\"", DATA_CLASSES[i % 2]),
            _ => format!(
                "context.channel.cloud == \"{}\"",
                ["aws", "azure", "none"][i % 3]
            ),
        }
    };
    let k = a.0;
    if k < 10 {
        return common(k);
    }
    match scope {
        Scope::Admit => match k % 2 {
            0 => format!("resource.kind == \"{}\"", PRODUCT_KINDS[i % 3]),
            _ => format!("resource == Product::\"{}\"", PRODUCTS[i % 3]),
        },
        Scope::HostHold | Scope::Hold => match k % 3 {
            0 => format!("resource.cloud == \"{}\"", CLOUDS[i % 4]),
            1 => format!("resource.geography == \"{}\"", GEOS[i % 3]),
            _ => format!("resource.region == \"{}\"", REGIONS[i % 4]),
        },
        Scope::Host | Scope::Prefer => match k % 6 {
            0 => format!("resource.cloud == \"{}\"", CLOUDS[i % 4]),
            1 => format!("resource.geography == \"{}\"", GEOS[i % 3]),
            2 => format!("resource.region == \"{}\"", REGIONS[i % 4]),
            3 => format!("resource.certifications.contains(\"{}\")", CERTS[i % 3]),
            4 => format!("resource.provider == \"{}\"", PROVIDERS[i % 3].as_str()),
            _ => format!("resource == Host::\"h{}\"", i % 9),
        },
    }
}

#[derive(Debug, Clone)]
enum Cond {
    One(Atom),
    And(Atom, Atom),
    Or(Atom, Atom),
    Not(Atom),
}

fn cond(c: &Cond, scope: Scope) -> String {
    match c {
        Cond::One(a) => atom(a, scope),
        Cond::And(a, b) => format!("({}) && ({})", atom(a, scope), atom(b, scope)),
        Cond::Or(a, b) => format!("({}) || ({})", atom(a, scope), atom(b, scope)),
        Cond::Not(a) => format!("!({})", atom(a, scope)),
    }
}

#[derive(Debug, Clone)]
struct ClauseSpec {
    forbid: bool,
    scope: Scope,
    when: Option<Cond>,
    unless: Option<Cond>,
    from: Option<usize>,
    until: Option<usize>,
}

fn render(i: usize, c: &ClauseSpec) -> String {
    let (action, kind) = match c.scope {
        Scope::Admit => ("action == Action::\"admit\"", ""),
        Scope::Host => ("action == Action::\"host\"", ""),
        Scope::HostHold => ("action in [Action::\"host\", Action::\"hold\"]", ""),
        Scope::Hold => ("action == Action::\"hold\"", ""),
        Scope::Prefer => ("action == Action::\"prefer\"", " @kind(\"preference\")"),
    };
    let mut window = String::new();
    // A window whose end comes before its start is an invalid contract;
    // swap so every generated clause loads.
    let (from, until) = match (c.from, c.until) {
        (Some(f), Some(u)) if f > u => (Some(u), Some(f)),
        other => other,
    };
    if let Some(f) = from {
        window.push_str(&format!(" @effective_from(\"{}\")", DATES[f]));
    }
    if let Some(u) = until {
        window.push_str(&format!(" @effective_until(\"{}\")", DATES[u]));
    }
    let mut text = format!(
        "@id(\"K{i}\") @title(\"clause {i}\") @source(\"generated\"){window}{kind}\n{} (principal, {action}, resource)",
        // Preference forbids only now and then, so some hosts get preferred.
        if c.forbid && (!matches!(c.scope, Scope::Prefer) || i.is_multiple_of(3)) {
            "forbid"
        } else {
            "permit"
        }
    );
    if let Some(w) = &c.when {
        text.push_str(&format!("\nwhen {{ {} }}", cond(w, c.scope)));
    }
    if let Some(u) = &c.unless {
        text.push_str(&format!("\nunless {{ {} }}", cond(u, c.scope)));
    }
    text.push_str(";\n");
    text
}

fn atom_strategy() -> impl Strategy<Value = Atom> {
    (0u8..16, 0usize..12).prop_map(|(k, i)| Atom(k, i))
}

fn cond_strategy() -> impl Strategy<Value = Cond> {
    prop_oneof![
        3 => atom_strategy().prop_map(Cond::One),
        1 => (atom_strategy(), atom_strategy()).prop_map(|(a, b)| Cond::And(a, b)),
        1 => (atom_strategy(), atom_strategy()).prop_map(|(a, b)| Cond::Or(a, b)),
        1 => atom_strategy().prop_map(Cond::Not),
    ]
}

fn clause_strategy() -> impl Strategy<Value = ClauseSpec> {
    (
        any::<bool>(),
        prop_oneof![
            Just(Scope::Admit),
            Just(Scope::Host),
            Just(Scope::HostHold),
            Just(Scope::Hold),
            Just(Scope::Prefer)
        ],
        proptest::option::weighted(0.8, cond_strategy()),
        proptest::option::weighted(0.4, cond_strategy()),
        proptest::option::weighted(0.3, 0usize..4),
        proptest::option::weighted(0.3, 0usize..4),
    )
        .prop_map(|(forbid, scope, when, unless, from, until)| ClauseSpec {
            forbid,
            scope,
            when,
            unless,
            from,
            until,
        })
}

#[derive(Debug, Clone)]
struct Scenario {
    hosts: Vec<(usize, usize, usize, u8)>,
    tenants: Vec<(usize, usize)>,
    instance: (usize, usize),
    defaults: bool,
    clauses: Vec<ClauseSpec>,
    queries: Vec<(usize, usize, usize, usize, usize, usize, i64)>,
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    (
        proptest::collection::vec((0usize..4, 0usize..4, 0usize..3, 0u8..8), 1..=8),
        proptest::collection::vec((0usize..3, 0usize..3), 1..=6),
        (0usize..4, 0usize..4),
        any::<bool>(),
        proptest::collection::vec(clause_strategy(), 1..=12),
        proptest::collection::vec(
            (
                0usize..8,
                0usize..6,
                0usize..4,
                0usize..7,
                0usize..3,
                0usize..4,
                -1i64..=1,
            ),
            24,
        ),
    )
        .prop_map(
            |(hosts, tenants, instance, defaults, clauses, queries)| Scenario {
                hosts,
                tenants,
                instance,
                defaults,
                clauses,
                queries,
            },
        )
}

fn world(s: &Scenario) -> World {
    let mut w = frontier();
    w.hosts = s
        .hosts
        .iter()
        .enumerate()
        .map(|(i, &(cloud, region, provider, certs))| {
            let mut h = (*host(
                &format!("h{i}"),
                CLOUDS[cloud],
                REGIONS[region],
                PROVIDERS[provider],
            ))
            .clone();
            h.certifications = CERTS
                .iter()
                .enumerate()
                .filter(|(b, _)| certs & (1 << b) != 0)
                .map(|(_, c)| c.to_string())
                .collect();
            Arc::new(h)
        })
        .collect();
    w.tenants = s
        .tenants
        .iter()
        .enumerate()
        .map(|(i, &(seg, dr))| tenant(&format!("t{i}"), SEGMENTS[seg], DATA_REGIONS[dr]))
        .collect();
    w.channels
        .push(channel("partner", ChannelKind::Reseller, None));
    w.instance = Instance {
        id: "i0".into(),
        cloud: CLOUDS[s.instance.0].into(),
        region: REGIONS[s.instance.1].into(),
    };
    w.data_classifications = DATA_CLASSES.iter().map(|s| s.to_string()).collect();
    w
}

fn sources(s: &Scenario) -> (String, Vec<(usize, String)>) {
    let mut text = String::new();
    let mut each = Vec::new();
    if s.defaults {
        let d = "@id(\"A0\") @title(\"a\") @source(\"s\")\npermit (principal, action == Action::\"admit\", resource);\n@id(\"H0\") @title(\"h\") @source(\"s\")\npermit (principal, action in [Action::\"host\", Action::\"hold\"], resource);\n";
        text.push_str(d);
    }
    for (i, c) in s.clauses.iter().enumerate() {
        let t = render(i, c);
        text.push_str(&t);
        each.push((i, t));
    }
    (text, each)
}

/// Cedar, asked directly.
struct Reference {
    schema: Schema,
    entities: cedar_policy::Entities,
    policies: Vec<(String, Policy, treaty_contracts::Window)>,
}

impl Reference {
    fn new(w: &World, c: &Contracts, text: &str) -> Reference {
        let schema = Schema::from_cedarschema_str(treaty_contracts::SCHEMA)
            .unwrap()
            .0;
        let mut entities = Vec::new();
        for t in &w.tenants {
            entities.push(json!({"uid": {"type": "Tenant", "id": t.id.as_str()}, "attrs": {"segment": t.segment, "data_region": t.data_region}, "parents": []}));
        }
        for ch in &w.channels {
            entities.push(json!({"uid": {"type": "Channel", "id": ch.id.as_str()}, "attrs": {"kind": ch.kind.as_str(), "cloud": ch.cloud.clone().unwrap_or_else(|| "none".into())}, "parents": []}));
        }
        for p in &w.products {
            entities.push(json!({"uid": {"type": "Product", "id": p.id.as_str()}, "attrs": {"kind": p.kind.as_str()}, "parents": []}));
        }
        for h in &w.hosts {
            entities.push(json!({"uid": {"type": "Host", "id": h.id.as_str()}, "attrs": {
                "cloud": h.cloud, "region": h.region, "geography": h.region.split('-').next().unwrap(),
                "provider": h.provider.as_str(), "certifications": h.certifications}, "parents": []}));
        }
        entities.push(json!({"uid": {"type": "Instance", "id": w.instance.id}, "attrs": {
            "cloud": w.instance.cloud, "region": w.instance.region, "geography": w.instance.region.split('-').next().unwrap()}, "parents": []}));
        let entities =
            cedar_policy::Entities::from_json_value(json!(entities), Some(&schema)).unwrap();
        // Parse the clauses again, straight from the text.
        let set = PolicySet::from_str(text).unwrap();
        let mut policies = Vec::new();
        for p in set.policies() {
            let id = p.annotation("id").unwrap().to_owned();
            let window = c
                .clauses()
                .iter()
                .find(|c| c.id.as_str() == id)
                .unwrap()
                .window;
            policies.push((id.clone(), p.new_id(PolicyId::new(&id)), window));
        }
        Reference {
            schema,
            entities,
            policies,
        }
    }

    fn ask(
        &self,
        at: i64,
        principal: &str,
        action: &str,
        resource: (&str, &str),
        ctx: &serde_json::Value,
    ) -> (bool, BTreeSet<String>) {
        let set = PolicySet::from_policies(
            self.policies
                .iter()
                .filter(|(_, _, w)| w.contains(at))
                .map(|(_, p, _)| p.clone()),
        )
        .unwrap();
        let uid = |t: &str, id: &str| EntityUid::from_str(&format!("{t}::{}", json!(id))).unwrap();
        let action = uid("Action", action);
        let context = Context::from_json_value(ctx.clone(), Some((&self.schema, &action))).unwrap();
        let request = Request::new(
            uid("Tenant", principal),
            action,
            uid(resource.0, resource.1),
            context,
            Some(&self.schema),
        )
        .unwrap();
        let response = Authorizer::new().is_authorized(&request, &set, &self.entities);
        let reasons = response
            .diagnostics()
            .reason()
            .map(|p| p.to_string())
            .collect();
        (response.decision() == CedarDecision::Allow, reasons)
    }
}

fn ids(list: &[treaty_contracts::ClauseId]) -> BTreeSet<String> {
    list.iter().map(|c| c.to_string()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_table_agrees_with_cedar(s in scenario_strategy()) {
        let w = world(&s);
        let (text, _) = sources(&s);
        let c = Contracts::from_sources("random", &[("random.cedar".into(), text.clone())], w.entities())
            .unwrap_or_else(|e| panic!("generated contract did not load: {e}\n{text}"));
        let reference = Reference::new(&w, &c, &text);
        let reads_dc = text.contains("data_classification");
        let all_dc = ["public", "secret", "other"];
        for &(t, ch, pr, cl, dc, d, off) in &s.queries {
            let tenant = TenantId::new(&format!("t{t}")).unwrap();
            let channel = ChannelId::new(CHANNELS[ch % CHANNELS.len()]).unwrap_or_else(|_| ChannelId::new("direct").unwrap());
            let channel = if ch == 5 { ChannelId::new("nowhere").unwrap() } else { channel };
            let product = ProductId::new(PRODUCTS[pr % 3]).unwrap();
            let class = WorkloadClass::ALL[cl];
            let data_classification = all_dc[dc];
            let at_ms = at(DATES[d], off);
            let q = Query { tenant: &tenant, channel: &channel, product: &product, class, data_classification, at_unix_ms: at_ms };
            let decision = c.decide(&q);

            // Invariants that hold for every answer.
            prop_assert!(decision.preferred_hosts.is_subset(decision.allowed_hosts));
            prop_assert_eq!(decision.host_clauses.len(), w.hosts.len());
            if decision.allowed_hosts.is_empty() {
                prop_assert!(decision.preferred_hosts.is_empty());
            }

            let known = t < w.tenants.len() && ch < CHANNELS.len() && (!reads_dc || dc < 2);
            if !known {
                prop_assert!(!decision.admitted && decision.admit_clauses.is_empty());
                prop_assert!(decision.allowed_hosts.is_empty() && !decision.runtime_allowed);
                prop_assert!(decision.host_clauses.iter().all(|l| l.is_empty()));
                continue;
            }
            let ctx = json!({
                "class": class.as_str(),
                "channel": {"__entity": {"type": "Channel", "id": channel.as_str()}},
                "product": {"__entity": {"type": "Product", "id": product.as_str()}},
                // Where no clause reads it, the engine ignores the value.
                "data_classification": data_classification,
            });
            let what = format!("query t{t} {channel} {product} {class} {data_classification} at {at_ms}\n{text}");
            let (admitted, why) = reference.ask(at_ms, tenant.as_str(), "admit", ("Product", product.as_str()), &ctx);
            prop_assert_eq!(decision.admitted, admitted, "admit: {}", what);
            prop_assert_eq!(ids(decision.admit_clauses), why, "admit clauses: {}", what);
            let (held, why) = reference.ask(at_ms, tenant.as_str(), "hold", ("Instance", "i0"), &ctx);
            prop_assert_eq!(decision.runtime_allowed, held, "hold: {}", what);
            prop_assert_eq!(ids(decision.runtime_clauses), why, "hold clauses: {}", what);
            for (i, h) in w.hosts.iter().enumerate() {
                let (allowed, why) = reference.ask(at_ms, tenant.as_str(), "host", ("Host", h.id.as_str()), &ctx);
                prop_assert_eq!(decision.allowed_hosts.contains(i), allowed, "host {}: {}", h.id, what);
                prop_assert_eq!(ids(&decision.host_clauses[i]), why, "host {} clauses: {}", h.id, what);
                let (preferred, _) = reference.ask(at_ms, tenant.as_str(), "prefer", ("Host", h.id.as_str()), &ctx);
                prop_assert_eq!(decision.preferred_hosts.contains(i), allowed && preferred, "prefer {}: {}", h.id, what);
            }
        }
    }
}

#[test]
fn reference_sanity_on_the_example() {
    // The reference itself agrees with a hand-checked case: dod may use
    // bedrock (C6) from 2025-10-28.
    let w = frontier();
    let c = load("reading-openai", &w);
    let mut text = String::new();
    for f in ["distribution", "hosting", "residency", "preferences"] {
        text.push_str(
            &std::fs::read_to_string(
                contracts_dir()
                    .join("reading-openai")
                    .join(format!("{f}.cedar")),
            )
            .unwrap(),
        );
    }
    let r = Reference::new(&w, &c, &text);
    let ctx = json!({"class": "stateless_api", "channel": {"__entity": {"type": "Channel", "id": "direct"}},
        "product": {"__entity": {"type": "Product", "id": "api"}}, "data_classification": ""});
    let (allowed, why) = r.ask(
        at("2025-10-28", 0),
        "dod",
        "host",
        ("Host", "bedrock-useast1"),
        &ctx,
    );
    assert!(allowed);
    assert_eq!(why, ["C6", "H0"].iter().map(|s| s.to_string()).collect());
    let _ = ProductKind::Api;
}

//! `/metrics` as Prometheus reads it: every metric of the catalogue is
//! there after one of everything is recorded, parsed by a Prometheus
//! text-format parser, with the values recorded; no tenant label unless
//! switched on; and the README lists every metric.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prometheus_parse::{Scrape, Value};
use treaty_telemetry::{BreakerState, CATALOGUE, Kind, Metrics, ModelCall, RequestDone};

fn record_everything(m: &Metrics) {
    for status in [200, 200, 429] {
        m.request(&RequestDone {
            route: "/v1/chat/completions",
            host: (status == 200).then_some("azure-eastus"),
            class: "stateless_api",
            status,
            tenant: "acme",
            total_seconds: 0.25,
            added_seconds: 0.000_08,
        });
    }
    m.decision("stateless_api", true, &[]);
    m.decision("stateless_api", false, &["C1", "R1"]);
    m.attempt("azure-westus", "upstream_timeout", 1.5, true);
    m.attempt("azure-eastus", "ok", 0.2, false);
    m.breaker_state("azure-westus", BreakerState::Open);
    m.ledger_queue_depth(3);
    m.ledger_batch(12, 0.0004);
    m.spend("acme", 1_250_000);
    m.budgets([
        ("tenant/acme/month", 10_000_000, 10_000_000),
        ("key/key_0123456789abcdef/day", 5_000_000, 1_000_000),
    ]);
    m.limits_counters(2, 1);
    m.rate_limited("key", "requests");
    m.auth_failure_limited();
    m.model_call(&ModelCall {
        operation: "chat",
        provider: "azure.ai.openai",
        request_model: "gpt-4o",
        input_tokens: Some(12),
        output_tokens: Some(30),
        seconds: 0.2,
        first_token_seconds: Some(0.05),
        error_type: None,
    });
}

trait Num {
    fn num(&self) -> f64;
}

impl Num for Value {
    fn num(&self) -> f64 {
        match self {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("not a number: {other:?}"),
        }
    }
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn samples<'a>(s: &'a Scrape, name: &str) -> Vec<&'a prometheus_parse::Sample> {
    s.samples.iter().filter(|x| x.metric == name).collect()
}

#[test]
fn every_metric_of_the_catalogue_is_scraped_with_its_values() {
    let m = Metrics::new(true);
    record_everything(&m);
    let text = m.render();
    let scrape = parse(&text);
    for def in CATALOGUE {
        let family = def.name;
        assert!(
            scrape.docs.contains_key(family),
            "# HELP of {family} missing:\n{text}"
        );
        let name = match def.kind {
            Kind::Counter => format!("{family}_total"),
            Kind::Gauge | Kind::Histogram => family.to_owned(),
        };
        let found = samples(&scrape, &name);
        assert!(!found.is_empty(), "no sample of {name}:\n{text}");
        for s in &found {
            let ok = match def.kind {
                Kind::Histogram => matches!(s.value, Value::Histogram(_)),
                Kind::Gauge => matches!(s.value, Value::Gauge(_)),
                Kind::Counter => matches!(s.value, Value::Counter(_) | Value::Untyped(_)),
            };
            assert!(ok, "{name} parsed as {:?}", s.value);
            for label in s.labels.keys() {
                assert!(
                    def.labels.contains(&label.as_str()) || label == "le",
                    "{name} has label {label} the catalogue does not list"
                );
            }
        }
    }
    // The values recorded come back.
    let requests = samples(&scrape, "treaty_requests_total");
    let ok: f64 = requests
        .iter()
        .filter(|s| s.labels.get("status") == Some("200"))
        .map(|s| s.value.num())
        .sum();
    assert_eq!(ok, 2.0);
    let refused = requests
        .iter()
        .find(|s| s.labels.get("status") == Some("429"))
        .unwrap();
    assert_eq!(refused.labels.get("host"), Some("none"));
    assert_eq!(refused.labels.get("tenant"), Some("acme"));
    let by_clause: Vec<_> = samples(&scrape, "treaty_refusals_total")
        .iter()
        .map(|s| s.labels.get("clause").unwrap().to_owned())
        .collect();
    assert_eq!(by_clause.len(), 2);
    let spend = samples(&scrape, "treaty_spend_usd_total")[0].value.num();
    assert!((spend - 1.25).abs() < 1e-9, "{spend}");
    assert_eq!(
        samples(&scrape, "treaty_budgets_exhausted")[0].value.num(),
        1.0
    );
    let remaining = samples(&scrape, "treaty_budget_remaining_usd");
    assert_eq!(remaining.len(), 2);
    let Value::Histogram(tokens) = &samples(&scrape, "gen_ai_client_token_usage")
        .iter()
        .find(|s| s.labels.get("gen_ai_token_type") == Some("output"))
        .unwrap()
        .value
    else {
        panic!("token usage is a histogram");
    };
    let at_64 = tokens.iter().find(|b| b.less_than == 64.0).unwrap();
    assert_eq!(at_64.count, 1.0, "30 output tokens fall under 64");
    assert_eq!(samples(&scrape, "treaty_breaker_state")[0].value.num(), 2.0);
}

#[test]
fn no_tenant_or_budget_ids_without_the_switch() {
    let m = Metrics::new(false);
    record_everything(&m);
    let text = m.render();
    assert!(
        !text.contains("acme") && !text.contains("tenant="),
        "{text}"
    );
    assert!(!text.contains("key_0123456789abcdef"), "{text}");
    let scrape = parse(&text);
    assert!(samples(&scrape, "treaty_budget_remaining_usd").is_empty());
    assert_eq!(
        samples(&scrape, "treaty_budgets_exhausted")[0].value.num(),
        1.0
    );
}

#[test]
fn the_readme_lists_every_metric() {
    let readme = include_str!("../../../README.md");
    for def in CATALOGUE {
        assert!(
            readme.contains(def.name),
            "README does not list {}",
            def.name
        );
    }
}

#[test]
fn names_follow_prometheus_conventions() {
    for def in CATALOGUE {
        let n = def.name;
        assert!(
            n.starts_with("treaty_") || n.starts_with("gen_ai_"),
            "{n}: one prefix, or an OpenTelemetry GenAI name"
        );
        assert!(!n.ends_with("_total"), "{n}: the text format adds _total");
        if !def.unit.is_empty() {
            assert!(
                n.ends_with(&format!("_{}", def.unit)),
                "{n}: base unit in the name"
            );
        }
        assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    }
}

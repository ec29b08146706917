//! Contract-safe routing through the real gateway, on the shipped
//! Frontier example (reading-openai unless said), against the emulator.
//! Cases are written from the clause texts in the scenario, not from the
//! engine's output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;
use treaty_config::{Config, MapEnv};
use treaty_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use treaty_gateway::Gateway;
use treaty_keys::KeyRequest;

const HOSTS: [&str; 6] = [
    "azure-eastus",
    "azure-westus",
    "azure-westeurope",
    "bedrock-useast1",
    "gemini-uscentral1",
    "onprem-vllm",
];

struct Frontier {
    app: axum::Router,
    gateway: Gateway,
    emulator: EmulatorHandle,
    keys: HashMap<(String, String, String), String>,
    trainer: String,
    _dir: tempfile::TempDir,
}

async fn frontier(reading: &str, tweak: impl Fn(&mut Config)) -> Frontier {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let env = MapEnv::new().with("TREATY_EMULATOR_URL", &emulator.url());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/treaty.toml");
    let mut config = Config::load(&path, &env).unwrap();
    config.contracts.as_mut().unwrap().reading = reading.to_owned();
    config.routing.health_check_interval = std::time::Duration::ZERO;
    tweak(&mut config);
    let dir = tempfile::tempdir().unwrap();
    let store =
        treaty_store::Store::open(&format!("sqlite://{}", dir.path().join("c.db").display()))
            .await
            .unwrap();
    let mut keys = HashMap::new();
    for t in ["acme", "dod", "eurobank"] {
        for c in [
            "direct",
            "aws-marketplace",
            "azure-marketplace",
            "gcp-marketplace",
        ] {
            for p in ["api", "frontier", "chat"] {
                let (m, _) = treaty_keys::issue(&store, request(t, c, p, None))
                    .await
                    .unwrap();
                keys.insert((t.into(), c.into(), p.into()), m.secret);
            }
        }
    }
    let (m, _) = treaty_keys::issue(
        &store,
        request(
            "acme",
            "direct",
            "api",
            Some(vec![treaty_domain::WorkloadClass::Training]),
        ),
    )
    .await
    .unwrap();
    let gateway = Gateway::open(config, store, &env).await.unwrap();
    Frontier {
        app: treaty_gateway::app(gateway.clone()),
        gateway,
        emulator,
        keys,
        trainer: m.secret,
        _dir: dir,
    }
}

fn request(
    t: &str,
    c: &str,
    p: &str,
    classes: Option<Vec<treaty_domain::WorkloadClass>>,
) -> KeyRequest {
    KeyRequest {
        tenant: t.into(),
        channel: c.into(),
        product: p.into(),
        name: None,
        models: None,
        declare_classes: classes,
        expires_at: None,
    }
}

struct Answer {
    status: u16,
    host: Option<String>,
    class: Option<String>,
    clauses: Option<String>,
    receipt: Option<String>,
    body: Value,
}

impl Frontier {
    fn key(&self, t: &str, c: &str, p: &str) -> String {
        self.keys[&(t.to_owned(), c.to_owned(), p.to_owned())].clone()
    }

    async fn send(&self, key: &str, path: &str, body: Value, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .app
            .clone()
            .oneshot(
                req.body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let h = |n: &str| res.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
        let (status, host, class, clauses, receipt) = (
            res.status().as_u16(),
            h("x-treaty-host"),
            h("x-treaty-class"),
            h("x-treaty-clauses"),
            h("x-treaty-receipt"),
        );
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            host,
            class,
            clauses,
            receipt,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn chat(&self, t: &str, c: &str, p: &str, headers: &[(&str, &str)]) -> Answer {
        let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
        self.send(&self.key(t, c, p), "/v1/chat/completions", body, headers)
            .await
    }

    /// The hosts that served `n` requests of this shape.
    async fn placements(&self, t: &str, c: &str, p: &str, n: usize) -> Vec<String> {
        let mut hosts = Vec::new();
        for _ in 0..n {
            let a = self.chat(t, c, p, &[]).await;
            assert_eq!(a.status, 200, "{t}/{c}/{p}: {}", a.body);
            hosts.push(a.host.unwrap());
        }
        hosts.sort();
        hosts.dedup();
        hosts
    }

    fn upstream_requests(&self, hosts: &[&str]) -> u64 {
        hosts.iter().map(|h| self.emulator.requests_for(h)).sum()
    }
}

#[tokio::test]
async fn stateless_calls_stay_on_azure_and_name_their_class() {
    let f = frontier("reading-openai", |_| {}).await;
    // C1: stateless API calls only on Azure hosts (acme's data is in the US,
    // but no clause keeps an enterprise tenant out of Azure's EU region).
    let hosts = f.placements("acme", "direct", "api", 9).await;
    assert!(hosts.iter().all(|h| h.starts_with("azure-")), "{hosts:?}");
    let a = f.chat("acme", "direct", "api", &[]).await;
    assert_eq!(a.class.as_deref(), Some("stateless_api"));
    assert!(a.clauses.unwrap().contains("H0"));
}

#[tokio::test]
async fn national_security_may_leave_azure_but_not_the_us() {
    let f = frontier("reading-openai", |_| {}).await;
    // C6 relaxes C1/C3 for U.S. regions; R2 keeps dod in the U.S.; P1
    // prefers the AWS host while its commitment lasts.
    let hosts = f.placements("dod", "aws-marketplace", "api", 6).await;
    assert_eq!(
        hosts,
        ["bedrock-useast1"],
        "P1 prefers AWS among allowed hosts"
    );
    let a = f
        .chat(
            "dod",
            "direct",
            "api",
            &[("x-treaty-prefer-host", "azure-westeurope")],
        )
        .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.clauses.as_deref(), Some("R2"), "{}", a.body);
    let a = f
        .chat(
            "dod",
            "direct",
            "api",
            &[("x-treaty-prefer-host", "onprem-vllm")],
        )
        .await;
    assert_eq!((a.status, a.host.as_deref()), (200, Some("onprem-vllm")));
}

#[tokio::test]
async fn eu_data_stays_in_the_eu_whatever_else_applies() {
    let f = frontier("reading-openai", |_| {}).await;
    for (c, p) in [
        ("direct", "api"),
        ("aws-marketplace", "frontier"),
        ("gcp-marketplace", "chat"),
    ] {
        let hosts = f.placements("eurobank", c, p, 4).await;
        assert_eq!(hosts, ["azure-westeurope"], "R1 for eurobank via {c}/{p}");
    }
}

#[tokio::test]
async fn non_api_products_may_run_anywhere_allowed() {
    let f = frontier("reading-openai", |_| {}).await;
    // C5: non-API products on any host; P1 then prefers AWS.
    let a = f.chat("acme", "gcp-marketplace", "chat", &[]).await;
    assert_eq!(a.class.as_deref(), Some("non_api_product"));
    assert_eq!(a.host.as_deref(), Some("bedrock-useast1"));
    let a = f
        .chat(
            "acme",
            "direct",
            "chat",
            &[("x-treaty-prefer-host", "gemini-uscentral1")],
        )
        .await;
    assert_eq!(
        (a.status, a.host.as_deref()),
        (200, Some("gemini-uscentral1"))
    );
}

#[tokio::test]
async fn frontier_distribution_differs_by_reading() {
    let openai = frontier("reading-openai", |_| {}).await;
    // C4 (from 2026-02-27): only aws-marketplace among third-party clouds.
    assert_eq!(
        openai
            .chat("acme", "aws-marketplace", "frontier", &[])
            .await
            .status,
        200
    );
    let refused = openai
        .chat("acme", "gcp-marketplace", "frontier", &[])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["error"]["code"], "contract_refused");
    assert_eq!(refused.clauses.as_deref(), Some("C4"));
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("C4")
    );
    assert_eq!(
        openai.chat("acme", "direct", "frontier", &[]).await.status,
        200
    );

    let microsoft = frontier("reading-microsoft", |_| {}).await;
    let refused = microsoft
        .chat("acme", "aws-marketplace", "frontier", &[])
        .await;
    assert_eq!(
        (refused.status, refused.clauses.as_deref()),
        (403, Some("C4m"))
    );
    assert_eq!(
        microsoft
            .chat("acme", "direct", "frontier", &[])
            .await
            .status,
        200
    );

    let aws = frontier("reading-aws", |_| {}).await;
    // reading-aws: Frontier calls are non_api_product, so C1/C3 do not
    // reach them and they may leave Azure.
    let a = aws.chat("acme", "aws-marketplace", "frontier", &[]).await;
    assert_eq!(a.class.as_deref(), Some("non_api_product"));
    assert_eq!(a.host.as_deref(), Some("bedrock-useast1"));
}

#[tokio::test]
async fn prefer_host_is_never_a_way_around_a_clause() {
    let f = frontier("reading-openai", |_| {}).await;
    let before = f.upstream_requests(&HOSTS);
    let a = f
        .chat(
            "acme",
            "direct",
            "api",
            &[("x-treaty-prefer-host", "bedrock-useast1")],
        )
        .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body["error"]["type"], "permission_error");
    assert!(a.clauses.unwrap().contains("C1"));
    assert_eq!(
        f.upstream_requests(&HOSTS),
        before,
        "a refused request reaches no host"
    );
    for _ in 0..3 {
        let a = f
            .chat(
                "acme",
                "direct",
                "api",
                &[("x-treaty-prefer-host", "azure-westus")],
            )
            .await;
        assert_eq!(a.host.as_deref(), Some("azure-westus"));
    }
    let a = f
        .chat(
            "acme",
            "direct",
            "api",
            &[("x-treaty-prefer-host", "nowhere")],
        )
        .await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn declaring_a_class_needs_a_key_that_may() {
    let f = frontier("reading-openai", |_| {}).await;
    let a = f
        .chat(
            "acme",
            "direct",
            "api",
            &[("x-treaty-workload-class", "training")],
        )
        .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body["error"]["code"], "class_declaration_refused");
    // C7: training may run on any host (acme has no residency clause).
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let a = f
        .send(
            &f.trainer.clone(),
            "/v1/chat/completions",
            body,
            &[
                ("x-treaty-workload-class", "training"),
                ("x-treaty-prefer-host", "gemini-uscentral1"),
            ],
        )
        .await;
    assert_eq!(
        (a.status, a.class.as_deref()),
        (200, Some("training")),
        "{}",
        a.body
    );
    assert!(a.clauses.unwrap().contains("C7"));
}

#[tokio::test]
async fn allowed_hosts_failing_end_in_503_and_forbidden_hosts_see_nothing() {
    let f = frontier("reading-openai", |c| c.upstream.max_attempts = 6).await;
    let forbidden = ["bedrock-useast1", "gemini-uscentral1", "onprem-vllm"];
    f.emulator
        .set_fault("azure-eastus", "status=503", None)
        .unwrap();
    f.emulator.set_fault("azure-westus", "reset", None).unwrap();
    // The last allowed host works at first, then fails too.
    for _ in 0..3 {
        assert_eq!(
            f.chat("acme", "direct", "api", &[]).await.host.as_deref(),
            Some("azure-westeurope")
        );
    }
    f.emulator
        .set_fault("azure-westeurope", "status=500", None)
        .unwrap();
    let a = f.chat("acme", "direct", "api", &[]).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "allowed_hosts_unavailable");
    let msg = a.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("reading-openai") && msg.contains("No other host was tried"),
        "{msg}"
    );
    assert_eq!(
        f.upstream_requests(&forbidden),
        0,
        "no forbidden host was ever tried"
    );
}

#[tokio::test]
async fn open_circuits_fail_fast_without_touching_any_host() {
    let f = frontier("reading-openai", |c| {
        c.routing.breaker_failures = 1;
        c.routing.breaker_cooldown = std::time::Duration::from_secs(60);
    })
    .await;
    for h in ["azure-eastus", "azure-westus", "azure-westeurope"] {
        f.emulator.set_fault(h, "status=503", None).unwrap();
    }
    assert_eq!(f.chat("acme", "direct", "api", &[]).await.status, 503);
    let before = f.upstream_requests(&HOSTS);
    let a = f.chat("acme", "direct", "api", &[]).await;
    assert_eq!(a.status, 503);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is down"),
        "{}",
        a.body
    );
    assert_eq!(
        f.upstream_requests(&HOSTS),
        before,
        "every allowed circuit is open"
    );
}

#[tokio::test]
async fn explain_api_matches_the_gateway() {
    let f = frontier("reading-openai", |_| {}).await;
    let body = json!({"tenant": "dod", "channel": "direct", "product": "api",
                      "route": "/v1/chat/completions", "at": "2026-06-01T00:00:00Z"});
    let req = Request::builder()
        .method("POST")
        .uri("/admin/explain")
        .header("authorization", "Bearer nope")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let res = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 403, "admin API disabled without a token");
    let v = treaty_policy::explain(
        &f.gateway.engine.policy,
        &serde_json::from_value(body).unwrap(),
    )
    .unwrap();
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "admit_clauses",
            "admitted",
            "classified_by",
            "hosts",
            "reading",
            "runtime",
            "workload_class"
        ]
    );
    let allowed: Vec<&str> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["allowed"] == true)
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        allowed,
        [
            "azure-eastus",
            "azure-westus",
            "bedrock-useast1",
            "gemini-uscentral1",
            "onprem-vllm"
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Whatever the request, the faults and the reading: the host that
    /// answered is one the contracts allow for it, and a refused request
    /// reaches no upstream at all.
    #[test]
    fn the_host_chosen_is_always_allowed(
        reading in prop::sample::select(vec!["reading-openai", "reading-microsoft", "reading-aws"]),
        requests in prop::collection::vec((0usize..3, 0usize..4, 0usize..3, prop::option::of(0usize..6), any::<bool>()), 1..6),
        faulty in prop::collection::vec(any::<bool>(), 6),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let f = frontier(reading, |_| {}).await;
            for (i, bad) in faulty.iter().enumerate() {
                if *bad { f.emulator.set_fault(HOSTS[i], "status=503", None).unwrap(); }
            }
            for (t, c, p, prefer, embed) in requests {
                let (t, c, p) = (["acme", "dod", "eurobank"][t], ["direct", "aws-marketplace", "azure-marketplace", "gcp-marketplace"][c], ["api", "frontier", "chat"][p]);
                let (route, body) = if embed {
                    ("/v1/embeddings", json!({"model": "text-embedding-3-small", "input": "x"}))
                } else {
                    ("/v1/chat/completions", json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}))
                };
                let headers: Vec<(&str, &str)> = prefer.map(|h| ("x-treaty-prefer-host", HOSTS[h])).into_iter().collect();
                let before = f.upstream_requests(&HOSTS);
                let a = f.send(&f.key(t, c, p), route, body, &headers).await;
                let explained = treaty_policy::explain(
                    &f.gateway.engine.policy,
                    &serde_json::from_value(json!({"tenant": t, "channel": c, "product": p, "route": route})).unwrap(),
                ).unwrap();
                let allowed: Vec<String> = explained["hosts"].as_array().unwrap().iter()
                    .filter(|h| h["allowed"] == true && explained["admitted"] == true)
                    .map(|h| h["id"].as_str().unwrap().to_owned()).collect();
                if let Some(host) = &a.host {
                    prop_assert!(allowed.contains(host), "{t}/{c}/{p} {route} served by {host}, allowed {allowed:?}");
                }
                if a.status == 403 {
                    prop_assert_eq!(f.upstream_requests(&HOSTS), before, "a refused request reached a host");
                }
                if a.status == 404 {
                    prop_assert_eq!(f.upstream_requests(&HOSTS), before);
                }
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_refusal_carries_a_signed_receipt_naming_its_clause() {
    let f = frontier("reading-openai", |_| {}).await;
    let refused = f.chat("acme", "gcp-marketplace", "frontier", &[]).await;
    assert_eq!(refused.status, 403);
    let wire = refused.receipt.expect("a refusal carries x-treaty-receipt");
    let key = f.gateway.engine.ledger.signer().verifier().clone();
    let receipt = treaty_ledger::Receipt::verify(&wire, &[key]).unwrap();
    assert_eq!(receipt.tenant, "acme");
    assert_eq!(receipt.host, None);
    assert_eq!(receipt.refused.as_deref(), Some("contract_refused"));
    assert_eq!(receipt.reading.as_deref(), Some("reading-openai"));
    assert!(receipt.clauses.iter().any(|c| c == "C4"), "{receipt:?}");
    // An admitted call's receipt names the host that served and its clauses.
    let served = f.chat("acme", "direct", "api", &[]).await;
    let key = f.gateway.engine.ledger.signer().verifier().clone();
    let receipt =
        treaty_ledger::Receipt::verify(served.receipt.as_deref().unwrap(), &[key]).unwrap();
    assert_eq!(receipt.host, served.host);
    assert!(receipt.clauses.iter().any(|c| c == "H0"), "{receipt:?}");
    assert!(receipt.seq > 0);
}

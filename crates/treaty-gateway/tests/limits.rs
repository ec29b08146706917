//! Budgets, rate limits and the failed-authentication limiter as a client
//! meets them on the model-call path, and `/metrics` as Prometheus reads
//! it. The limits' arithmetic across replicas is tested in
//! `treaty-limits`; this is the wiring: what status, code, headers and
//! message a client gets, that nothing reaches a host when a limit says
//! no, and that spend is settled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::{ADMIN_TOKEN, Harness, harness_with_sections};
use serde_json::json;

/// Model calls both hosts received.
fn upstream(h: &Harness) -> u64 {
    h.emulator.requests_for("azure-a") + h.emulator.requests_for("vllm-b")
}

fn chat(max_tokens: u32) -> serde_json::Value {
    json!({
        "model": "gpt-4o",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Say hello."}]
    })
}

const ON_AZURE: &[(&str, &str)] = &[("x-treaty-prefer-host", "azure-a")];

#[tokio::test]
async fn a_call_that_could_pass_the_budget_is_refused_with_insufficient_quota_before_any_host() {
    // $0.001 for acme: 100 output tokens at azure-a's $10/Mtok is
    // already $0.001, plus the prompt, so the bound does not fit.
    let h = harness_with_sections(
        "[[budgets]]\ntenant = \"acme\"\namount_usd = 0.001\nperiod = \"month\"\n",
    )
    .await;
    let r = h
        .post_with("/v1/chat/completions", ON_AZURE, chat(100))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["code"], "insufficient_quota");
    assert_eq!(e["type"], "insufficient_quota");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("tenant/acme"),
        "names the budget: {message}"
    );
    assert!(message.contains("resets at"), "{message}");
    assert!(
        r.headers.get("retry-after").is_none(),
        "the SDKs must not retry a budget refusal"
    );
    assert_eq!(upstream(&h), 0, "nothing reached a host");

    // A smaller call fits, and is served.
    let ok = h
        .post_with("/v1/chat/completions", ON_AZURE, chat(10))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
}

#[tokio::test]
async fn spend_is_settled_and_the_budget_holds() {
    // Each call is bounded at ~$0.000125 and costs less; a $0.001 budget
    // takes a handful, then refuses, and the settled spend never passes it.
    let h = harness_with_sections(
        "[[budgets]]\ntenant = \"acme\"\namount_usd = 0.001\nperiod = \"day\"\n",
    )
    .await;
    let mut served = 0;
    let mut refused = None;
    for _ in 0..200 {
        let r = h
            .post_with("/v1/chat/completions", ON_AZURE, chat(10))
            .await;
        match r.status {
            StatusCode::OK => served += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused = Some(r.json());
                break;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    let refused = refused.expect("the budget must run out within 200 calls");
    assert_eq!(refused["error"]["code"], "insufficient_quota");
    assert!(
        served >= 2,
        "calls within the budget were served ({served})"
    );
    let budgets = h.gateway.engine.limits.budgets();
    let b = budgets.iter().find(|b| b.id.contains("acme")).unwrap();
    assert!(b.spent_micros > 0, "spend was settled: {b:?}");
    assert!(
        b.spent_micros <= b.limit_micros,
        "spend within the budget: {b:?}"
    );
    assert_eq!(b.reserved_micros, 0, "nothing left reserved: {b:?}");
}

#[tokio::test]
async fn requests_per_minute_answer_openai_headers_then_429_with_retry_after() {
    let h = harness_with_sections("[rate_limits]\nkey = { requests_per_minute = 3 }\n").await;
    for n in 0..3 {
        let r = h.post_with("/v1/chat/completions", &[], chat(10)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let header = |name: &str| r.headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("x-ratelimit-limit-requests"), "3");
        assert_eq!(
            header("x-ratelimit-remaining-requests"),
            (2 - n).to_string()
        );
        assert!(header("x-ratelimit-reset-requests").ends_with('s'));
    }
    let before = upstream(&h);
    let r = h.post_with("/v1/chat/completions", &[], chat(10)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["code"], "rate_limit_exceeded");
    assert_eq!(e["type"], "requests");
    assert!(e["message"].as_str().unwrap().contains("try again in"));
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.headers["x-ratelimit-remaining-requests"], "0");
    assert_eq!(upstream(&h), before, "the refused call reached no host");
}

#[tokio::test]
async fn failed_authentications_from_one_address_turn_into_429() {
    let h = harness_with_sections("[rate_limits]\nauth_failures_per_minute = 5\n").await;
    let from = |addr: &str, key: &str| {
        let mut req = Request::builder()
            .method("GET")
            .uri("/v1/models")
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
        req
    };
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            h.send(from("10.0.0.7:5000", "sk-treaty-wrong"))
                .await
                .status,
        );
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        5,
        "{statuses:?}"
    );
    let limited = h.send(from("10.0.0.7:5001", "sk-treaty-wrong")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        limited.json()["error"]["code"],
        "too_many_failed_authentications"
    );
    assert!(limited.headers.contains_key("retry-after"));
    // Even the right key waits: the address is out of attempts.
    let right = h.send(from("10.0.0.7:5002", &h.key)).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    // Another address is not affected.
    let other = h.send(from("10.0.0.8:5000", &h.key)).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text());
}

#[tokio::test]
async fn metrics_count_requests_decisions_and_limits_in_prometheus_text() {
    let h = harness_with_sections("[rate_limits]\nkey = { requests_per_minute = 1 }\n").await;
    assert_eq!(
        h.post_with("/v1/chat/completions", ON_AZURE, chat(10))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.post_with("/v1/chat/completions", ON_AZURE, chat(10))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let r = h.call("GET", "/metrics", None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    let has = |prefix: &str, parts: &[&str]| {
        lines
            .iter()
            .any(|l| l.starts_with(prefix) && parts.iter().all(|p| l.contains(p)))
    };
    assert!(
        has(
            "treaty_requests_total{",
            &[
                "route=\"/v1/chat/completions\"",
                "status=\"200\"",
                "host=\"azure-a\""
            ]
        ),
        "{text}"
    );
    assert!(has("treaty_requests_total{", &["status=\"429\""]), "{text}");
    assert!(
        has(
            "treaty_rate_limited_total{",
            &["scope=\"key\"", "kind=\"requests\""]
        ),
        "{text}"
    );
    assert!(
        has("treaty_decisions_total{", &["verdict=\"admitted\""]),
        "{text}"
    );
    assert!(
        has(
            "treaty_upstream_attempts_total{",
            &["host=\"azure-a\"", "outcome=\"ok\""]
        ),
        "{text}"
    );
    assert!(
        has(
            "gen_ai_client_token_usage_bucket{",
            &["gen_ai_provider_name=\"azure.ai.openai\""]
        ),
        "{text}"
    );
    assert!(has("treaty_ledger_batch_size_count", &[]), "{text}");
    assert!(!text.contains("acme"), "no tenant label by default");
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn budgets_set_through_the_admin_api_apply_and_every_change_is_in_the_ledger() {
    let h = harness_with_sections("").await;
    let set = h
        .call(
            "POST",
            "/admin/budgets",
            Some(ADMIN_TOKEN),
            serde_json::to_vec(
                &json!({"tenant": "acme", "budget": "0.001usd/month", "soft": [50]}),
            )
            .unwrap(),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    assert_eq!(set.json()["id"], "tenant/acme/month");
    // A bad one changes nothing and says what is wrong.
    let bad = h
        .call(
            "POST",
            "/admin/budgets",
            Some(ADMIN_TOKEN),
            serde_json::to_vec(&json!({"tenant": "nobody", "budget": "1usd/month"})).unwrap(),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nobody")
    );
    // Without the admin token: refused.
    let anon = h
        .call("GET", "/admin/budgets", Some(&h.key), Body::empty())
        .await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);

    // The running gateway picks the budget up (it reloads every 5 s).
    h.gateway.engine.limits.sync_now().await.unwrap();
    let mut refused = false;
    for _ in 0..60 {
        let r = h
            .post_with("/v1/chat/completions", ON_AZURE, chat(100))
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.json()["error"]["code"], "insufficient_quota");
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "the budget set through the API applies");

    let list = h
        .call("GET", "/admin/budgets", Some(ADMIN_TOKEN), Body::empty())
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json()["data"][0]["id"], "tenant/acme/month");
    let removed = h
        .call(
            "DELETE",
            "/admin/budgets/tenant%2Facme%2Fmonth",
            Some(ADMIN_TOKEN),
            Body::empty(),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text());

    let mut out = Vec::new();
    treaty_ledger::export(
        &h.gateway.engine.store,
        treaty_ledger::Format::Jsonl,
        &mut out,
    )
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    let admin: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "admin")
        .collect();
    let actions: Vec<&str> = admin
        .iter()
        .map(|v| v["record"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["budgets.set", "budgets.remove"], "{text}");
    assert!(
        admin[0]["record"]["actor"]
            .as_str()
            .unwrap()
            .starts_with("admin-api")
    );
    assert_eq!(admin[0]["record"]["target"], "tenant/acme/month");
}

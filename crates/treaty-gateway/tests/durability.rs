#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What a client gets when the ledger cannot commit a request's decision,
//! in both durability modes.
//!
//! The ledger is broken from outside, as a failing disk or a lost database
//! would break it: its records table is renamed away under the running
//! gateway, so every commit fails, and renamed back afterwards.
//!
//! * strict: the decision must be durable before any host is called, so
//!   the client gets 503 `ledger_unavailable` and no host sees the
//!   request;
//! * batched: the decision's commit runs while the host works, and fails;
//!   the host's answer is withheld (503, or for a stream an error event
//!   instead of `[DONE]`), and the outcome record names the host, the
//!   usage, the cost and `ledger_unavailable`, because the host did serve
//!   and its cost is real.

mod common;

use std::path::Path;

use serde_json::{Value, json};
use sqlx::{Connection, Executor, SqliteConnection};

use common::{Harness, chat};

async fn harness(durability: &str) -> Harness {
    use treaty_config::{Config, MapEnv};
    use treaty_emulator::{Emulator, EmulatorConfig};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = Emulator::start(
        EmulatorConfig {
            api_key: Some(common::UPSTREAM_KEY.into()),
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let env = MapEnv::new()
        .with("EMU", &emulator.url())
        .with("UPSTREAM_KEY", common::UPSTREAM_KEY);
    let text = format!(
        "{}\n[ledger]\ndurability = \"{durability}\"\n",
        common::config_text("")
    );
    let config = Config::from_toml(&text, Path::new("."), &env).unwrap();
    Harness::open(config, &env, emulator).await
}

/// Renames the ledger's records table away (`broken`) or back.
async fn set_ledger_broken(h: &Harness, broken: bool) {
    let db = h._dir.path().join("gw.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let sql = if broken {
        "ALTER TABLE ledger_records RENAME TO ledger_records_away"
    } else {
        "ALTER TABLE ledger_records_away RENAME TO ledger_records"
    };
    conn.execute(sql).await.unwrap();
    conn.close().await.unwrap();
}

async fn records(h: &Harness) -> Vec<Value> {
    let engine = &h.gateway.engine;
    engine.ledger.flush().await.unwrap();
    let mut out = Vec::new();
    treaty_ledger::export(&engine.store, treaty_ledger::Format::Jsonl, &mut out)
        .await
        .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect()
}

fn of(records: &[Value], request_id: &str, kind: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["kind"] == kind && r["record"]["request_id"] == request_id)
        .map(|r| r["record"].clone())
        .collect()
}

fn upstream(h: &Harness) -> u64 {
    h.emulator.requests_for("azure-a") + h.emulator.requests_for("vllm-b")
}

const PIN: [(&str, &str); 1] = [("x-treaty-prefer-host", "azure-a")];

#[tokio::test]
async fn strict_a_decision_that_cannot_be_recorded_reaches_no_host() {
    let h = harness("strict").await;
    set_ledger_broken(&h, true).await;
    let before = upstream(&h);
    let r = h
        .post_with("/v1/chat/completions", &PIN, chat("hello"))
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    let body = r.json();
    assert_eq!(body["error"]["code"], "ledger_unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not sent to any host"),
        "{body}"
    );
    assert_eq!(upstream(&h), before, "no host was contacted");
    let id = r.headers["x-request-id"].to_str().unwrap().to_owned();

    set_ledger_broken(&h, false).await;
    let ok = h
        .post_with("/v1/chat/completions", &PIN, chat("again"))
        .await;
    assert_eq!(ok.status, 200, "the gateway recovers: {}", ok.text());
    let all = records(&h).await;
    assert!(of(&all, &id, "decision").is_empty());
    assert!(of(&all, &id, "outcome").is_empty());
}

#[tokio::test]
async fn batched_an_answer_whose_decision_is_not_durable_is_withheld_and_its_cost_recorded() {
    let h = harness("batched").await;
    set_ledger_broken(&h, true).await;
    let before = upstream(&h);
    let r = h
        .post_with("/v1/chat/completions", &PIN, chat("hello"))
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    let body = r.json();
    assert_eq!(body["error"]["code"], "ledger_unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("withheld"),
        "{body}"
    );
    assert!(body.get("choices").is_none(), "the answer is not delivered");
    assert_eq!(upstream(&h), before + 1, "the host answered");
    let id = r.headers["x-request-id"].to_str().unwrap().to_owned();

    // A stream ends with the error event instead of [DONE].
    let mut streamed = chat("stream it");
    streamed["stream"] = json!(true);
    let s = h.post_with("/v1/chat/completions", &PIN, streamed).await;
    assert_eq!(s.status, 200);
    let text = s.text();
    assert!(text.contains("chat.completion.chunk"), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(text.contains("ledger_unavailable"), "{text}");
    let stream_id = s.headers["x-request-id"].to_str().unwrap().to_owned();

    set_ledger_broken(&h, false).await;
    let ok = h
        .post_with("/v1/chat/completions", &PIN, chat("again"))
        .await;
    assert_eq!(ok.status, 200, "the gateway recovers: {}", ok.text());
    let all = records(&h).await;
    assert!(
        of(&all, &id, "decision").is_empty(),
        "the decision was lost with its batch"
    );
    let outcome = of(&all, &id, "outcome");
    assert_eq!(outcome.len(), 1, "{all:?}");
    let o = &outcome[0];
    assert_eq!(o["status"], 503, "{o}");
    assert_eq!(o["error"], "ledger_unavailable", "{o}");
    assert_eq!(o["served_by"], "azure-a", "{o}");
    assert!(o["prompt_tokens"].as_u64().unwrap() > 0, "{o}");
    assert!(
        o["cost_micros"].as_i64().unwrap() > 0,
        "the cost is real: {o}"
    );
    assert_eq!(
        o["attempts"][0]["error"],
        Value::Null,
        "the host's attempt succeeded: {o}"
    );
    let streamed = of(&all, &stream_id, "outcome");
    assert_eq!(streamed.len(), 1, "{all:?}");
    assert_eq!(streamed[0]["error"], "ledger_unavailable");
    assert_eq!(streamed[0]["served_by"], "azure-a");
}

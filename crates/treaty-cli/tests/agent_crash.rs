//! A run interrupted by kill -9 in the middle of a webhook call finishes
//! after a restart, and the webhook's side effect happened exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, http, write_example};
use treaty_emulator::{Emulator, EmulatorConfig};

/// A webhook that holds its answer 4 s after applying its side effect (the
/// emulator's `delay_ms`), and a short lease so the restarted gateway
/// takes the run over quickly.
fn slow_webhook(config: &std::path::Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replace("lease = \"30s\"", "lease = \"2s\"");
    assert!(
        text.contains("lease = \"2s\""),
        "the example sets agents.lease"
    );
    let text = format!(
        "{text}\n[[agents.webhooks]]\nname = \"slow_ticket\"\n\
         url = \"${{TREATY_EMULATOR_URL:-http://127.0.0.1:4010}}/webhooks/slow_ticket\"\n\
         parameters = {{ type = \"object\", properties = {{ delay_ms = {{ type = \"integer\", const = 4000 }} }} }}\n\
         timeout = \"10s\"\n"
    );
    std::fs::write(config, text).unwrap();
}

async fn get(url: &str, key: &str) -> Value {
    http()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_tool_call_finishes_after_restart_without_repeating_it() {
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_example(dir.path());
    slow_webhook(&config);
    let key = support::create_key(&config, "acme", "direct", "frontier");

    let server = Server::start(&config, &emulator.url());
    let client = http();
    let agent: Value = client
        .post(format!("{}/v1/agents", server.url))
        .bearer_auth(&key)
        .json(&json!({"name": "filer", "model": "gpt-4o",
            "tools": [{"type": "webhook", "name": "slow_ticket"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run: Value = client
        .post(format!(
            "{}/v1/agents/{}/runs",
            server.url,
            agent["id"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .json(&json!({"input": "file a ticket"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = run["id"].as_str().unwrap().to_owned();

    // Wait until the webhook has applied its side effect and is holding
    // its answer, then kill the gateway.
    let deadline = Instant::now() + Duration::from_secs(20);
    while emulator.webhook_effects("slow_ticket") == 0 {
        assert!(
            Instant::now() < deadline,
            "the run never called its webhook"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut child = server.kill_hard();
    let _ = child.wait();

    let server = Server::start(&config, &emulator.url());
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let r = get(&format!("{}/v1/runs/{run_id}", server.url), &key).await;
        if r["status"] == "completed" || r["status"] == "failed" {
            break r;
        }
        assert!(Instant::now() < deadline, "the run did not resume: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        emulator.webhook_effects("slow_ticket"),
        1,
        "the side effect happened once"
    );
    assert!(
        emulator.webhook_calls("slow_ticket") >= 2,
        "the interrupted call was delivered again, with the same idempotency key"
    );
    let items = get(
        &format!(
            "{}/v1/conversations/{}/items?limit=100",
            server.url,
            done["conversation_id"].as_str().unwrap()
        ),
        &key,
    )
    .await;
    let outputs = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "function_call_output")
        .count();
    assert_eq!(outputs, 1, "one tool result in the conversation: {items}");
    let _ = server.terminate();

    // The ledger shows the run's state held on this instance and each of
    // its model steps decided on its own, with the run id.
    let db = format!("sqlite://{}", dir.path().join("treaty.db").display());
    let store = treaty_store::Store::open(&db).await.unwrap();
    let mut out = Vec::new();
    treaty_ledger::export(&store, treaty_ledger::Format::Jsonl, &mut out)
        .await
        .unwrap();
    let records: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "decision" && v["record"]["run_id"] == run_id.as_str())
        .map(|v| v["record"].clone())
        .collect();
    let held = records
        .iter()
        .filter(|r| r["runtime"]["allowed"] == true)
        .count();
    let steps = records.iter().filter(|r| r["model_step"] == true).count();
    assert!(
        held >= 2,
        "created, then resumed after the restart: {records:?}"
    );
    assert!(
        steps >= 2,
        "a step before the tool call and one after: {records:?}"
    );
}

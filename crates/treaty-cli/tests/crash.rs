//! kill -9 under load in strict mode loses no decision record of any
//! request that got a response, and the chain still verifies; a restarted
//! gateway extends the same chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, http, write_example};
use treaty_emulator::{Emulator, EmulatorConfig};

async fn recorded_decisions(db: &str) -> HashSet<String> {
    let store = treaty_store::Store::open(db).await.unwrap();
    let mut out = Vec::new();
    treaty_ledger::export(&store, treaty_ledger::Format::Jsonl, &mut out)
        .await
        .unwrap();
    store.close().await;
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "decision")
        .map(|v| v["record"]["request_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn verifies(db: &str) -> u64 {
    let store = treaty_store::Store::open(db).await.unwrap();
    let report = treaty_ledger::verify(&store, treaty_ledger::VerifyOptions::default(), |_, _| {})
        .await
        .unwrap();
    store.close().await;
    assert!(
        report.ok,
        "the chain does not verify after kill -9: {:?}",
        report.problem
    );
    report.records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_decision() {
    let emulator = Emulator::start(
        EmulatorConfig {
            latency: Duration::from_millis(2),
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_example(dir.path());
    let db = format!("sqlite://{}", dir.path().join("treaty.db").display());
    let key = support::create_key(&config, "acme", "direct", "api");

    let mut answered_total = 0;
    let mut previous = 0;
    for round in 0..3 {
        let server = Server::start(&config, &emulator.url());
        let answered = Arc::new(Mutex::new(Vec::<String>::new()));
        let client = http();
        let mut workers = Vec::new();
        for _ in 0..16 {
            let (client, url, key, answered) = (
                client.clone(),
                server.url.clone(),
                key.clone(),
                answered.clone(),
            );
            workers.push(tokio::spawn(async move {
                let body =
                    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
                loop {
                    let Ok(res) = client
                        .post(format!("{url}/v1/chat/completions"))
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    let id = res
                        .headers()
                        .get("x-request-id")
                        .map(|v| v.to_str().unwrap().to_owned());
                    // Acknowledged: the whole response arrived.
                    if res.status() == 200 && res.bytes().await.is_ok() {
                        answered.lock().unwrap().push(id.unwrap());
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut child = server.kill_hard();
        let _ = child.wait();
        for w in workers {
            let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
        }

        let answered = answered.lock().unwrap().clone();
        assert!(
            answered.len() > 20,
            "round {round}: too little load ({})",
            answered.len()
        );
        let records = verifies(&db).await;
        assert!(records > previous, "round {round}: the chain grew");
        previous = records;
        let decisions = recorded_decisions(&db).await;
        let missing: Vec<&String> = answered
            .iter()
            .filter(|id| !decisions.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} answered requests have no decision record: {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        answered_total += answered.len();
    }
    assert!(answered_total > 60);
}

//! `treaty ledger verify|pubkey|report|export` and `treaty report --html`
//! on the ledger the demo writes, and tampering caught through the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use sqlx::Connection;
use support::treaty;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_ledger_verifies_reports_and_catches_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let demo = treaty(&["demo", "--dir", d]);
    assert!(demo.status.success(), "{}", text(&demo));
    let config = dir.path().join("treaty.toml");
    let cfg = config.to_str().unwrap();

    let ok = treaty(&["ledger", "verify", "--config", cfg]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("ledger ok"), "{}", text(&ok));

    let key = treaty(&["ledger", "pubkey", "--config", cfg]);
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    assert_eq!(key.len(), 64, "hex ed25519 public key: {key}");

    let export = treaty(&["ledger", "export", "--config", cfg, "--format", "jsonl"]);
    let lines: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 20, "{} records", lines.len());
    assert!(
        lines
            .iter()
            .all(|l| l["hash"].as_str().is_some_and(|h| h.len() == 64))
    );
    assert!(
        !String::from_utf8_lossy(&export.stdout).contains("Emulated reply"),
        "no completions are stored"
    );

    let report = treaty(&[
        "ledger", "report", "--config", cfg, "--by", "channel", "--format", "json",
    ]);
    let rows: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert!(rows.to_string().contains("aws-marketplace"), "{rows}");

    let html = dir.path().join("report.html");
    let r = treaty(&["report", "--config", cfg, "--html", html.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && !page.contains("<script src") && !page.contains("<link"));

    // Edit one stored payload: verification names that record.
    let url = format!("sqlite://{}", dir.path().join("treaty.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE ledger_records SET payload = replace(payload, '\"acme\"', '\"evil\"') WHERE seq = 3")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let bad = treaty(&["ledger", "verify", "--config", cfg]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let out = text(&bad);
    assert!(
        out.contains("seq 3") || out.contains("record 3"),
        "names the first bad record: {out}"
    );
}

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
    // name+hexid+base64 (the base64 may itself hold '+').
    let parts: Vec<&str> = key.splitn(3, '+').collect();
    assert!(
        parts.len() == 3 && parts[1].len() == 8 && parts[1].chars().all(|c| c.is_ascii_hexdigit()),
        "a C2SP verifier key: {key}"
    );
    let pubkey = dir.path().join("log.pub");
    std::fs::write(&pubkey, &key).unwrap();
    let pubkey = pubkey.to_str().unwrap();
    // The key file was created beside the store, readable by its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(dir.path().join("treaty.ledger.key")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    // The auditor holds the latest checkpoint, out of the store.
    let status = treaty(&["ledger", "status", "--config", cfg, "--format", "json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let held = dir.path().join("held.checkpoint");
    std::fs::write(&held, status["latest_checkpoint"]["note"].as_str().unwrap()).unwrap();
    let held = held.to_str().unwrap();
    let pinned = treaty(&[
        "ledger",
        "verify",
        "--config",
        cfg,
        "--pubkey",
        pubkey,
        "--checkpoint",
        held,
    ]);
    assert!(pinned.status.success(), "{}", text(&pinned));
    assert!(
        text(&pinned).contains("held outside the store match"),
        "{}",
        text(&pinned)
    );

    // A receipt re-issued for a served request verifies offline; an
    // altered one does not.
    let lines: Vec<Value> = String::from_utf8_lossy(
        &treaty(&["ledger", "export", "--config", cfg, "--format", "jsonl"]).stdout,
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let rid = lines
        .iter()
        .find(|l| l["kind"] == "outcome" && l["record"]["served_by"].is_string())
        .map(|l| l["record"]["request_id"].as_str().unwrap().to_owned())
        .unwrap();
    let receipt = treaty(&["receipt", "issue", "--config", cfg, &rid]);
    assert!(receipt.status.success(), "{}", text(&receipt));
    let receipt = String::from_utf8_lossy(&receipt.stdout).trim().to_owned();
    let proof = treaty(&["ledger", "proof", "--config", cfg, &rid]);
    let proof_file = dir.path().join("proof.json");
    std::fs::write(&proof_file, &proof.stdout).unwrap();
    let checked = treaty(&[
        "receipt",
        "verify",
        &receipt,
        "--pubkey",
        pubkey,
        "--proof",
        proof_file.to_str().unwrap(),
        "--checkpoint",
        held,
    ]);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(text(&checked).contains("in the log"), "{}", text(&checked));
    let (body, sig) = receipt.split_once('.').unwrap();
    let altered = format!("{}A.{sig}", &body[..body.len() - 1]);
    let refused = treaty(&["receipt", "verify", &altered, "--pubkey", pubkey]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));

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
    // Spend by key: one row per key the demo minted, with its cost.
    let by_key = treaty(&[
        "ledger", "report", "--config", cfg, "--by", "key", "--format", "json",
    ]);
    let by_key: Vec<Value> = serde_json::from_slice(&by_key.stdout).unwrap();
    assert!(by_key.len() > 1, "{by_key:?}");
    assert!(
        by_key
            .iter()
            .all(|r| r["key"].as_str().unwrap().starts_with("key_") || r["key"] == "")
    );
    assert!(
        by_key
            .iter()
            .any(|r| r["cost_micros"].as_i64().unwrap() > 0),
        "{by_key:?}"
    );

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

    // Cut the tail and move the head back: only the checkpoint held
    // outside the store shows it.
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE ledger_records SET payload = replace(payload, '\"evil\"', '\"acme\"') WHERE seq = 3")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM ledger_records WHERE seq > 10")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM ledger_checkpoints WHERE seq > 10")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE ledger_head SET seq = 10, hash = (SELECT hash FROM ledger_records WHERE seq = 10) WHERE id = 1",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let cut = treaty(&[
        "ledger",
        "verify",
        "--config",
        cfg,
        "--pubkey",
        pubkey,
        "--checkpoint",
        held,
    ]);
    assert_eq!(cut.status.code(), Some(1), "{}", text(&cut));
    assert!(text(&cut).contains("truncated"), "{}", text(&cut));
}

/// The demo with reading-aws and reading-microsoft in the shadow: where
/// they part on its live traffic, traffic per time bucket, agent
/// operations counted as state, and what separates the readings in a
/// replay, all through the binary.
#[test]
fn the_demo_ledger_reports_divergence_time_state_and_what_separates_readings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let demo = treaty(&[
        "demo",
        "--dir",
        d,
        "--shadow",
        "reading-aws",
        "--shadow",
        "reading-microsoft",
    ]);
    assert!(demo.status.success(), "{}", text(&demo));
    let said = text(&demo);
    assert!(said.contains("Where the shadow readings part"), "{said}");
    assert!(
        said.contains("reading-aws would have sent") && said.contains("to bedrock-useast1"),
        "{said}"
    );
    assert!(
        said.contains("reading-microsoft would have refused"),
        "{said}"
    );
    let cfg = dir.path().join("treaty.toml");
    let cfg = cfg.to_str().unwrap();
    let json = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["ledger", "report", "--config", cfg, "--format", "json"];
        all.extend(args);
        let out = treaty(&all);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // Divergence: every decision once per shadow reading.
    let rows = json(&["--by", "divergence"]);
    let total: u64 = rows.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    let by_host = json(&["--by", "host"]);
    let decisions: u64 = by_host
        .iter()
        .map(|r| r["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 2 * decisions, "{rows:#?}");
    let moved = rows
        .iter()
        .find(|r| r["shadow"] == "reading-aws" && r["shadow_host"] == "bedrock-useast1")
        .unwrap_or_else(|| panic!("{rows:#?}"));
    assert_eq!(moved["reading"], "reading-openai");
    assert_eq!(moved["shadow_class"], "non_api_product");
    let clauses: Vec<&str> = moved["clauses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(clauses.contains(&"C1"), "{moved}");
    assert!(
        rows.iter()
            .any(|r| r["shadow"] == "reading-microsoft" && r["parting"] == "would_refuse"),
        "{rows:#?}"
    );
    let table = treaty(&["ledger", "report", "--config", cfg, "--by", "divergence"]);
    assert!(
        text(&table).contains("reading-aws agrees with reading-openai on"),
        "{}",
        text(&table)
    );
    let csv = treaty(&[
        "ledger",
        "report",
        "--config",
        cfg,
        "--by",
        "divergence",
        "--format",
        "csv",
    ]);
    assert!(
        String::from_utf8_lossy(&csv.stdout)
            .starts_with("shadow,reading,parting,host,shadow_host,class,shadow_class,clauses,shadow_clauses,requests,"),
        "{}",
        text(&csv)
    );

    // State: the agent's operations and tool calls went through on this
    // instance; none is a failure on "(none)".
    let instance = by_host
        .iter()
        .find(|r| r["key"] == "(instance treaty-azure-eastus)")
        .unwrap_or_else(|| panic!("{by_host:#?}"));
    assert!(instance["state"].as_u64().unwrap() >= 4, "{instance}");
    assert_eq!(instance["failed"], 0, "{instance}");
    for row in &by_host {
        if row["key"] == "(none)" {
            assert_eq!(row["requests"], row["refused"], "{row}");
        }
    }

    // Time: hour buckets on the hour, adding up to every decision.
    let hours = json(&["--by", "time", "--bucket", "1h"]);
    assert!(!hours.is_empty());
    assert!(
        hours
            .iter()
            .all(|r| r["key"].as_str().unwrap().ends_with(":00:00Z")),
        "{hours:#?}"
    );
    let in_buckets: u64 = hours.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    assert_eq!(in_buckets, decisions);
    let auto = treaty(&["ledger", "report", "--config", cfg, "--by", "time"]);
    assert!(text(&auto).contains("time buckets of"), "{}", text(&auto));
    let wrong = treaty(&[
        "ledger", "report", "--config", cfg, "--by", "host", "--bucket", "1h",
    ]);
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("--by time"), "{}", text(&wrong));

    // The HTML report shows the partings too.
    let html = dir.path().join("report.html");
    let r = treaty(&["report", "--config", cfg, "--html", html.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Where the shadow readings part"));
    assert!(page.contains("would have sent"));

    // A replay names what separates the readings: C1 and C3 against C5.
    let sim = treaty(&[
        "contracts",
        "simulate",
        "--config",
        cfg,
        "--from",
        "reading-openai",
        "--to",
        "reading-aws",
    ]);
    assert!(sim.status.success(), "{}", text(&sim));
    let out = text(&sim);
    assert!(
        out.contains("acme/aws-marketplace/frontier stateless_api")
            && out.contains("stop applying:  C1 (3), C3 (3)")
            && out.contains("start applying: C5 (3)"),
        "{out}"
    );
    assert!(
        out.contains(
            "stateless-api (stateless_api) -> aws-frontier-stateless-routes (non_api_product)"
        ),
        "{out}"
    );
}

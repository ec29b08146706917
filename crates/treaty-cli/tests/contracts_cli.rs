//! `treaty contracts check|explain` and contract validation at start, on
//! the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::treaty;

/// The example with its contracts, in a scratch directory.
fn example_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    support::write_example(dir.path());
    dir
}

fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn explain(config: &Path, reading: &str, req: Value) -> Value {
    let file = config.parent().unwrap().join("req.json");
    std::fs::write(&file, serde_json::to_vec(&req).unwrap()).unwrap();
    let o = treaty(&[
        "contracts",
        "explain",
        "--config",
        config.to_str().unwrap(),
        "--reading",
        reading,
        "--request",
        file.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn allowed(v: &Value) -> Vec<&str> {
    v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["allowed"] == true)
        .map(|h| h["id"].as_str().unwrap())
        .collect()
}

#[test]
fn check_passes_on_the_shipped_example() {
    let dir = example_dir();
    let config = dir.path().join("treaty.toml");
    for reading in ["reading-openai", "reading-microsoft", "reading-aws"] {
        let o = treaty(&[
            "contracts",
            "check",
            "--config",
            config.to_str().unwrap(),
            "--reading",
            reading,
            "--format",
            "json",
        ]);
        assert!(o.status.success(), "{reading}: {}", out(&o));
        let report: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["reading"], reading);
        assert!(
            report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["severity"] != "error")
        );
    }
}

#[test]
fn check_reports_a_dead_zone_with_a_counterexample() {
    let dir = example_dir();
    let config = dir.path().join("treaty.toml");
    // No EU host: eurobank is admitted but R1 leaves it nowhere to run.
    let text = std::fs::read_to_string(&config).unwrap();
    let start = text.find("[[hosts]]\nid = \"azure-westeurope\"").unwrap();
    let end = start + text[start + 1..].find("[[hosts]]").unwrap() + 1;
    std::fs::write(&config, format!("{}{}", &text[..start], &text[end..])).unwrap();

    let o = treaty(&[
        "contracts",
        "check",
        "--config",
        config.to_str().unwrap(),
        "--no-solver",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let text = out(&o);
    assert!(
        text.contains("eurobank") && text.to_lowercase().contains("dead zone"),
        "{text}"
    );
    assert!(text.contains("counterexample"), "{text}");
}

#[test]
fn explain_follows_the_clause_texts_in_each_reading() {
    let dir = example_dir();
    let config = dir.path().join("treaty.toml");
    let req = |t: &str, c: &str, p: &str, at: &str| json!({"tenant": t, "channel": c, "product": p, "route": "/v1/chat/completions", "body": {}, "at": at});
    // Exactly the documented shape.
    let v = explain(
        &config,
        "reading-openai",
        req("acme", "direct", "api", "2026-06-01T00:00:00Z"),
    );
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
    assert_eq!(
        v["hosts"].as_array().unwrap().len(),
        6,
        "every configured host is listed"
    );
    assert_eq!(
        allowed(&v),
        ["azure-eastus", "azure-westus", "azure-westeurope"]
    );

    // C0 (to 2025-10-27) vs C1/C3 (from 2025-10-28): Azure only, either way;
    // before C1 even dod is Azure-only, from C1 on C6 opens the U.S.
    let v = explain(
        &config,
        "reading-openai",
        req("dod", "direct", "api", "2025-10-27T23:59:59Z"),
    );
    assert_eq!(allowed(&v), ["azure-eastus", "azure-westus"], "C0 and R2");
    let v = explain(
        &config,
        "reading-openai",
        req("dod", "direct", "api", "2025-10-28T00:00:00Z"),
    );
    assert_eq!(
        allowed(&v),
        [
            "azure-eastus",
            "azure-westus",
            "bedrock-useast1",
            "gemini-uscentral1",
            "onprem-vllm"
        ]
    );
    let bedrock = &v["hosts"][3];
    assert!(
        bedrock["clauses"]
            .as_array()
            .unwrap()
            .contains(&json!("C6")),
        "{bedrock}"
    );

    // C4 from 2026-02-27: gcp-marketplace may no longer sell frontier.
    let v = explain(
        &config,
        "reading-openai",
        req(
            "acme",
            "gcp-marketplace",
            "frontier",
            "2026-02-26T12:00:00Z",
        ),
    );
    assert_eq!(v["admitted"], true);
    let v = explain(
        &config,
        "reading-openai",
        req(
            "acme",
            "gcp-marketplace",
            "frontier",
            "2026-02-27T00:00:00Z",
        ),
    );
    assert_eq!(
        (v["admitted"].clone(), v["admit_clauses"].clone()),
        (json!(false), json!(["C4"]))
    );

    // reading-microsoft: no third-party cloud channel sells frontier.
    let v = explain(
        &config,
        "reading-microsoft",
        req(
            "acme",
            "aws-marketplace",
            "frontier",
            "2026-06-01T00:00:00Z",
        ),
    );
    assert_eq!(
        (v["admitted"].clone(), v["admit_clauses"].clone()),
        (json!(false), json!(["C4m"]))
    );

    // reading-aws: frontier model steps are non-API and may leave Azure;
    // an AWS instance may hold the frontier runtime (C2a).
    let v = explain(
        &config,
        "reading-aws",
        json!({"tenant": "acme", "channel": "aws-marketplace", "product": "frontier",
        "route": "/v1/chat/completions", "model_step": true, "at": "2026-06-01T00:00:00Z"}),
    );
    assert_eq!(v["workload_class"], "non_api_product");
    assert_eq!(v["classified_by"], "aws-frontier-stateless-routes");
    assert!(allowed(&v).contains(&"bedrock-useast1"));

    // The stateful runtime: this instance is on Azure, so every reading lets
    // it hold acme's frontier state.
    for reading in ["reading-openai", "reading-microsoft", "reading-aws"] {
        let v = explain(
            &config,
            reading,
            json!({"tenant": "acme", "channel": "direct", "product": "frontier",
            "route": "/v1/responses", "body": {"store": true}, "at": "2026-06-01T00:00:00Z"}),
        );
        assert_eq!(v["workload_class"], "stateful_agent");
        assert_eq!(v["runtime"]["allowed"], true, "{reading}: {v}");
    }
}

#[test]
fn an_aws_instance_holds_frontier_state_only_under_reading_aws() {
    let dir = example_dir();
    let config = dir.path().join("treaty.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "id = \"treaty-azure-eastus\"\ncloud = \"azure\"",
        "id = \"treaty-aws-useast1\"\ncloud = \"aws\"",
    );
    std::fs::write(&config, text).unwrap();
    let req = json!({"tenant": "acme", "channel": "aws-marketplace", "product": "frontier",
        "route": "/v1/responses", "body": {"store": true}, "at": "2026-06-01T00:00:00Z"});
    let v = explain(&config, "reading-openai", req.clone());
    assert_eq!(
        (
            v["runtime"]["allowed"].clone(),
            v["runtime"]["clauses"].clone()
        ),
        (json!(false), json!(["C2"]))
    );
    let v = explain(
        &config,
        "reading-microsoft",
        json!({"tenant": "acme", "channel": "direct", "product": "frontier",
        "route": "/v1/responses", "body": {"store": true}, "at": "2026-06-01T00:00:00Z"}),
    );
    assert_eq!(v["runtime"]["allowed"], false);
    let v = explain(&config, "reading-aws", req);
    assert_eq!(v["runtime"]["allowed"], true, "{v}");
}

#[test]
fn an_invalid_contract_stops_serve_naming_file_and_line() {
    let dir = example_dir();
    let config = dir.path().join("treaty.toml");
    let hosting: PathBuf = dir.path().join("contracts/reading-openai/hosting.cedar");
    let text =
        std::fs::read_to_string(&hosting)
            .unwrap()
            .replacen("resource.cloud", "resource.colud", 1);
    std::fs::write(&hosting, text).unwrap();
    let o = treaty(&["serve", "--config", config.to_str().unwrap(), "--check"]);
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(
        text.contains("hosting.cedar:") && text.contains("colud"),
        "{text}"
    );
}

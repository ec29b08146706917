//! `treaty budgets set|list|remove` and `treaty keys create --budget` on
//! the example's configuration, as an operator would type them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use support::{treaty, write_example};

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn budgets_are_set_listed_and_removed_and_keys_can_carry_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_example(dir.path());
    let cfg = config.to_str().unwrap();

    let key = treaty(&[
        "keys",
        "create",
        "--config",
        cfg,
        "--tenant",
        "acme",
        "--channel",
        "direct",
        "--product",
        "api",
        "--budget",
        "10usd/month",
        "--format",
        "json",
    ]);
    assert!(key.status.success(), "{}", text(&key));
    let key: Value = serde_json::from_slice(&key.stdout).unwrap();
    let id = key["id"].as_str().unwrap();
    assert_eq!(key["budget"]["id"], format!("key/{id}/month"));
    assert_eq!(key["budget"]["limit_micros"], 10_000_000);

    let set = treaty(&[
        "budgets",
        "set",
        "--config",
        cfg,
        "--tenant",
        "acme",
        "--channel",
        "aws-marketplace",
        "--product",
        "frontier",
        "250.50usd/day",
        "--soft",
        "80,50",
    ]);
    assert!(set.status.success(), "{}", text(&set));
    assert!(
        text(&set)
            .contains("tenant/acme/channel/aws-marketplace/product/frontier/day: $250.50 per day"),
        "{}",
        text(&set)
    );

    let list = treaty(&["budgets", "list", "--config", cfg, "--format", "json"]);
    assert!(list.status.success(), "{}", text(&list));
    let rows: Vec<Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let offer = rows.iter().find(|r| r["period"] == "day").unwrap();
    assert_eq!(offer["limit_micros"], 250_500_000);
    assert_eq!(offer["spent_micros"], 0);
    assert_eq!(offer["soft_thresholds"], serde_json::json!([50, 80]));
    assert!(offer["resets_at"].as_str().unwrap().ends_with("T00:00:00Z"));
    let table = treaty(&["budgets", "list", "--config", cfg]);
    assert!(text(&table).contains("$10.00"), "{}", text(&table));

    // Mistakes are named and change nothing.
    for (args, says) in [
        (vec!["--tenant", "nobody", "1usd/day"], "unknown tenant"),
        (
            vec!["--tenant", "acme", "1usd/week"],
            "periods: day, month, total",
        ),
        (
            vec!["--tenant", "acme", "1.0000001usd/day"],
            "not an amount",
        ),
        (
            vec!["--key", "key_0000000000000000", "1usd/day"],
            "no key with id",
        ),
        (
            vec!["--tenant", "acme", "1usd/day", "--soft", "150"],
            "between 1 and 100",
        ),
    ] {
        let mut argv = vec!["budgets", "set", "--config", cfg];
        argv.extend(args);
        let out = treaty(&argv);
        assert!(!out.status.success(), "{argv:?} succeeded");
        assert!(text(&out).contains(says), "{argv:?}: {}", text(&out));
    }
    let bad_key = treaty(&[
        "keys",
        "create",
        "--config",
        cfg,
        "--tenant",
        "acme",
        "--channel",
        "direct",
        "--product",
        "api",
        "--budget",
        "lots",
    ]);
    assert!(!bad_key.status.success());
    let keys = treaty(&["keys", "list", "--config", cfg, "--format", "json"]);
    let keys: Vec<Value> = serde_json::from_slice(&keys.stdout).unwrap();
    assert_eq!(keys.len(), 1, "a bad --budget mints no key");

    let removed = treaty(&[
        "budgets",
        "remove",
        "--config",
        cfg,
        &format!("key/{id}/month"),
    ]);
    assert!(removed.status.success(), "{}", text(&removed));
    let list = treaty(&["budgets", "list", "--config", cfg, "--format", "json"]);
    let rows: Vec<Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows.len(), 1);
    let again = treaty(&[
        "budgets",
        "remove",
        "--config",
        cfg,
        &format!("key/{id}/month"),
    ]);
    assert!(!again.status.success());

    // Each change is in the ledger with who made it; the mistakes are not.
    let export = treaty(&["ledger", "export", "--config", cfg, "--format", "jsonl"]);
    assert!(export.status.success(), "{}", text(&export));
    let admin: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "admin")
        .map(|v| v["record"].clone())
        .collect();
    let actions: Vec<(&str, &str)> = admin
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["target"].as_str().unwrap()))
        .collect();
    let budget_id = format!("key/{id}/month");
    assert_eq!(
        actions,
        [
            ("keys.create", id),
            (
                "budgets.set",
                "tenant/acme/channel/aws-marketplace/product/frontier/day"
            ),
            ("budgets.remove", budget_id.as_str()),
        ],
        "{admin:?}"
    );
    assert!(
        admin
            .iter()
            .all(|r| r["actor"].as_str().unwrap().starts_with("cli:"))
    );
    let verify = treaty(&["ledger", "verify", "--config", cfg]);
    assert!(verify.status.success(), "{}", text(&verify));
}

//! Reports, exports and the HTML report on a small fixture.

use treaty_store::Store;

use super::{Db, on_both, settings};
use crate::{
    AttemptRecord, DecisionRecord, Dimension, Entry, Format, HostVerdict, Ledger, OutcomeRecord,
    ReportRow, RequestFeatures, export, html_report, report, write_report_csv,
};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const MIN: i64 = 60_000;

#[allow(clippy::too_many_arguments)]
pub(crate) fn req(
    id: &str,
    minute: i64,
    (tenant, channel, product): (&str, &str, &str),
    class: &str,
    admitted: bool,
    admit_clauses: &[&str],
    hosts: &[(&str, bool, &[&str])],
    chosen: Option<&str>,
    refused: Option<&str>,
) -> DecisionRecord {
    DecisionRecord {
        request_id: id.into(),
        at_ms: T0 + minute * MIN,
        key_id: format!("key_{tenant}"),
        tenant: tenant.into(),
        channel: channel.into(),
        product: product.into(),
        route: "/v1/chat/completions".into(),
        model: "gpt-4o".into(),
        workload_class: class.into(),
        classified_by: "rule".into(),
        data_classification: "internal".into(),
        declared_class: None,
        reading: Some("reading-a".into()),
        admitted,
        admit_clauses: admit_clauses.iter().map(|c| (*c).into()).collect(),
        hosts: hosts
            .iter()
            .map(|(h, allowed, clauses)| HostVerdict {
                host: (*h).into(),
                allowed: *allowed,
                clauses: clauses.iter().map(|c| (*c).into()).collect(),
            })
            .collect(),
        chosen: chosen.map(Into::into),
        features: RequestFeatures::default(),
        model_step: false,
        run_id: None,
        refused: refused.map(Into::into),
        runtime: None,
        tool: None,
        ..Default::default()
    }
}

pub(crate) fn out(
    id: &str,
    minute: i64,
    served_by: Option<&str>,
    status: u16,
    tokens: (u64, u64),
    cost_micros: i64,
) -> OutcomeRecord {
    OutcomeRecord {
        request_id: id.into(),
        at_ms: T0 + minute * MIN + 250,
        served_by: served_by.map(Into::into),
        attempts: served_by
            .map(|h| AttemptRecord {
                host: h.into(),
                error: None,
                latency_us: 1000,
            })
            .into_iter()
            .collect(),
        status,
        prompt_tokens: tokens.0,
        completion_tokens: tokens.1,
        cost_micros,
        latency_us: 1200,
        client_cancelled: false,
        error: None,
    }
}

const AZ_BED: &[(&str, bool, &[&str])] = &[("az", true, &["C1"]), ("bed", false, &["C4"])];

/// Six requests over 100 minutes: served, failed, not admitted, no host
/// allowed, another host, and one still in flight.
pub(crate) fn fixture() -> Vec<Entry> {
    use Entry::{Decision as D, Outcome as O};
    vec![
        D(req(
            "r1",
            0,
            ("acme", "direct", "api"),
            "stateless_api",
            true,
            &["C2"],
            AZ_BED,
            Some("az"),
            None,
        )),
        O(out("r1", 0, Some("az"), 200, (10, 20), 100)),
        D(req(
            "r2",
            30,
            ("acme", "aws-marketplace", "frontier"),
            "stateless_api",
            true,
            &["C3"],
            AZ_BED,
            Some("az"),
            None,
        )),
        O(out("r2", 30, None, 503, (0, 0), 0)),
        D(req(
            "r3",
            45,
            ("gov", "aws-marketplace", "api"),
            "stateless_api",
            false,
            &["C9"],
            AZ_BED,
            None,
            Some("contract_refused"),
        )),
        O(out("r3", 45, None, 403, (0, 0), 0)),
        D(req(
            "r4",
            60,
            ("gov", "direct", "api"),
            "training",
            true,
            &["C2"],
            &[("az", false, &["C5"]), ("bed", false, &["C4"])],
            None,
            Some("contract_refused"),
        )),
        D(req(
            "r5",
            90,
            ("eu-bank", "direct", "chat"),
            "non_api_product",
            true,
            &["C6"],
            &[("gem", true, &["C7"])],
            Some("gem"),
            None,
        )),
        O(out("r5", 90, Some("gem"), 200, (5, 5), 50)),
        D(req(
            "r6",
            100,
            ("acme", "direct", "api"),
            "stateless_api",
            true,
            &["C2"],
            AZ_BED,
            Some("az"),
            None,
        )),
    ]
}

pub(crate) async fn load_fixture(store: &Store) {
    let ledger = Ledger::open(store.clone(), settings(1000)).await.unwrap();
    for e in fixture() {
        ledger.append(e).await.unwrap();
    }
    ledger.shutdown().await.unwrap();
}

fn row(key: &str, n: [u64; 7], cost: i64) -> ReportRow {
    ReportRow {
        key: key.into(),
        requests: n[0],
        admitted: n[1],
        refused: n[2],
        served: n[3],
        failed: n[4],
        prompt_tokens: n[5],
        completion_tokens: n[6],
        cost_micros: cost,
        permitting: None,
        refusing: None,
    }
}

async fn reports_group_requests(db: Db) {
    let store = db.store().await;
    load_fixture(&store).await;

    let by_host = report(&store, Dimension::Host, None, None).await.unwrap();
    assert_eq!(
        by_host,
        vec![
            row("(none)", [2, 1, 2, 0, 0, 0, 0], 0),
            row("az", [3, 3, 0, 1, 1, 10, 20], 100),
            row("gem", [1, 1, 0, 1, 0, 5, 5], 50),
        ]
    );
    let by_channel = report(&store, Dimension::Channel, None, None)
        .await
        .unwrap();
    assert_eq!(
        by_channel,
        vec![
            row("aws-marketplace", [2, 1, 1, 0, 1, 0, 0], 0),
            row("direct", [4, 4, 1, 2, 0, 15, 25], 150),
        ]
    );
    let by_class = report(&store, Dimension::Class, None, None).await.unwrap();
    let keys: Vec<(&str, u64)> = by_class
        .iter()
        .map(|r| (r.key.as_str(), r.requests))
        .collect();
    assert_eq!(
        keys,
        [
            ("non_api_product", 1),
            ("stateless_api", 4),
            ("training", 1)
        ]
    );
    let by_tenant = report(&store, Dimension::Tenant, None, None).await.unwrap();
    let keys: Vec<(&str, u64)> = by_tenant
        .iter()
        .map(|r| (r.key.as_str(), r.requests))
        .collect();
    assert_eq!(keys, [("acme", 3), ("eu-bank", 1), ("gov", 2)]);
    // The fixture's tenants each use one key (`key_{tenant}`): spend by
    // key is spend by tenant under the key's id.
    let by_key = report(&store, Dimension::Key, None, None).await.unwrap();
    let renamed: Vec<ReportRow> = by_tenant
        .iter()
        .map(|r| ReportRow {
            key: format!("key_{}", r.key),
            ..r.clone()
        })
        .collect();
    assert_eq!(by_key, renamed);
    assert!(by_key.iter().any(|r| r.cost_micros > 0));
    let by_product = report(&store, Dimension::Product, None, None)
        .await
        .unwrap();
    assert_eq!(by_product.len(), 3);

    let by_clause = report(&store, Dimension::Clause, None, None).await.unwrap();
    let roles: Vec<(&str, u64, u64, u64)> = by_clause
        .iter()
        .map(|r| {
            (
                r.key.as_str(),
                r.requests,
                r.permitting.unwrap(),
                r.refusing.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("C1", 4, 4, 0),
            ("C2", 3, 3, 0),
            ("C3", 1, 1, 0),
            ("C4", 5, 0, 5),
            ("C5", 1, 0, 1),
            ("C6", 1, 1, 0),
            ("C7", 1, 1, 0),
            ("C9", 1, 0, 1),
        ]
    );

    // A time window: decisions from minute 40 to 95.
    let window = report(
        &store,
        Dimension::Tenant,
        Some(T0 + 40 * MIN),
        Some(T0 + 95 * MIN),
    )
    .await
    .unwrap();
    let keys: Vec<(&str, u64)> = window
        .iter()
        .map(|r| (r.key.as_str(), r.requests))
        .collect();
    assert_eq!(keys, [("eu-bank", 1), ("gov", 2)]);

    let mut csv = Vec::new();
    write_report_csv(Dimension::Clause, &by_clause, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with(
        "clause,requests,admitted,refused,served,failed,prompt_tokens,completion_tokens,cost_micros,permitting,refusing\n"
    ));
    assert!(csv.contains("\nC4,5,4,2,1,1,10,20,100,0,5\n"), "{csv}");
    db.finish().await;
}
on_both!(reports_group_requests);

async fn exports_hold_every_record(db: Db) {
    let store = db.store().await;
    load_fixture(&store).await;

    let mut jsonl = Vec::new();
    assert_eq!(export(&store, Format::Jsonl, &mut jsonl).await.unwrap(), 10);
    let text = String::from_utf8(jsonl).unwrap();
    let stored = store.ledger_records(0, 100, 100).await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10);
    for (line, row) in lines.iter().zip(&stored) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["seq"], row.seq);
        assert_eq!(v["kind"], row.kind.as_str());
        assert_eq!(v["hash"], hex::encode(&row.hash));
        // The record is the stored payload byte for byte: it can be
        // re-hashed by anyone.
        let record = line
            .split_once(",\"record\":")
            .map(|(_, r)| &r[..r.len() - 1])
            .unwrap();
        assert_eq!(record, row.payload);
    }

    let mut csv = Vec::new();
    assert_eq!(export(&store, Format::Csv, &mut csv).await.unwrap(), 10);
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let headers = reader.headers().unwrap().clone();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 10);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let first = &records[0];
    assert_eq!(&first[col("kind")], "decision");
    assert_eq!(&first[col("at")], "2026-01-01T00:00:00Z");
    assert_eq!(&first[col("hosts")], "az=allowed(C1);bed=refused(C4)");
    assert_eq!(&first[col("served_by")], "");
    let second = &records[1];
    assert_eq!(&second[col("kind")], "outcome");
    assert_eq!(&second[col("served_by")], "az");
    assert_eq!(&second[col("cost_micros")], "100");
    assert_eq!(&second[col("tenant")], "");
    db.finish().await;
}
on_both!(exports_hold_every_record);

async fn html_report_is_one_self_contained_file(db: Db) {
    let store = db.store().await;
    load_fixture(&store).await;
    let html = html_report(&store, None, None).await.unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert!(html.matches("<svg").count() >= 4, "four charts");
    for section in [
        "Traffic per host over time",
        "Traffic per channel over time",
        "Refusals per clause",
        "Share of each workload class per host",
    ] {
        assert!(html.contains(section), "{section}");
    }
    // Nothing fetched from anywhere: no script, no link, no URL.
    let lower = html.to_lowercase();
    for banned in [
        "<script", "<link", "http:", "https:", "@import", "url(", "src=",
    ] {
        assert!(!lower.contains(banned), "found {banned}");
    }
    // Refusals name their clauses; class shares name their classes.
    assert!(html.contains("C9: 1"));
    assert!(html.contains("non_api_product"));
    let empty = Db::sqlite().await;
    let html = html_report(&empty.store().await, None, None).await.unwrap();
    assert!(html.contains("<svg"));
    db.finish().await;
}
on_both!(html_report_is_one_self_contained_file);

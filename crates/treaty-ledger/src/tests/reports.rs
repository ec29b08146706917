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
        state: 0,
        failed: n[4],
        prompt_tokens: n[5],
        completion_tokens: n[6],
        cost_micros: cost,
        permitting: None,
        refusing: None,
        divergence: None,
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
        "clause,requests,admitted,refused,served,state,failed,prompt_tokens,completion_tokens,cost_micros,permitting,refusing\n"
    ));
    assert!(csv.contains("\nC4,5,4,2,1,0,1,10,20,100,0,5\n"), "{csv}");
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

/// Operations on held state and tool calls of runs: no host by nature.
fn state_fixture() -> Vec<Entry> {
    use Entry::{Decision as D, Outcome as O};
    let hold = |allowed: bool, clause: &str| crate::RuntimeVerdict {
        instance: "treaty-azure-eastus".into(),
        cloud: "azure".into(),
        region: "us-east".into(),
        allowed,
        clauses: vec![clause.into()],
    };
    let op = |id: &str, minute: i64, op: &str, allowed: bool, clause: &str| DecisionRecord {
        route: "/v1/agents".into(),
        operation: Some(op.into()),
        runtime: Some(hold(allowed, clause)),
        instance: Some("treaty-azure-eastus".into()),
        ..req(
            id,
            minute,
            ("acme", "direct", "frontier"),
            "stateful_agent",
            true,
            &["A0"],
            AZ_BED,
            None,
            (!allowed).then_some("contract_refused"),
        )
    };
    let tool = |id: &str, minute: i64, allowed: bool| DecisionRecord {
        route: "/v1/runs".into(),
        tool: Some(crate::ToolVerdict {
            call_id: "call_1".into(),
            kind: "webhook".into(),
            connector: "create_ticket".into(),
            name: "create_ticket".into(),
            allowed,
            clauses: vec!["T1".into()],
        }),
        instance: Some("treaty-azure-eastus".into()),
        hosts: Vec::new(),
        ..req(
            id,
            minute,
            ("acme", "direct", "frontier"),
            "stateful_agent",
            true,
            &["A0"],
            &[],
            None,
            (!allowed).then_some("contract_refused"),
        )
    };
    vec![
        // An agent created, read and run: done, on this instance.
        D(op("s1", 0, "agents.create", true, "H0")),
        O(out("s1", 0, None, 200, (0, 0), 0)),
        D(op("s2", 1, "agents.get", true, "H0")),
        O(out("s2", 1, None, 200, (0, 0), 0)),
        D(op("s3", 2, "runs.create", true, "H0")),
        O(out("s3", 2, None, 200, (0, 0), 0)),
        // Refused by C2: nothing held, no host.
        D(op("s4", 3, "agents.update", false, "C2")),
        O(out("s4", 3, None, 403, (0, 0), 0)),
        // Admitted, then the store failed.
        D(op("s5", 4, "agents.delete", true, "H0")),
        O(OutcomeRecord {
            error: Some("store_unavailable".into()),
            ..out("s5", 4, None, 503, (0, 0), 0)
        }),
        // A tool call made, and one refused.
        D(tool("s6", 5, true)),
        O(out("s6", 5, None, 200, (0, 0), 0)),
        D(tool("s7", 6, false)),
        O(out("s7", 6, None, 403, (0, 0), 0)),
        // A model step of the run, served.
        D(req(
            "s8",
            7,
            ("acme", "direct", "frontier"),
            "stateless_api",
            true,
            &["A0"],
            AZ_BED,
            Some("az"),
            None,
        )),
        O(out("s8", 7, Some("az"), 200, (10, 20), 100)),
    ]
}

async fn state_decisions_count_as_what_they_are(db: Db) {
    let store = db.store().await;
    let ledger = Ledger::open(store.clone(), settings(1000)).await.unwrap();
    for e in state_fixture() {
        ledger.append(e).await.unwrap();
    }
    ledger.shutdown().await.unwrap();

    let by_host = report(&store, Dimension::Host, None, None).await.unwrap();
    let rows: Vec<(&str, u64, u64, u64, u64)> = by_host
        .iter()
        .map(|r| (r.key.as_str(), r.requests, r.refused, r.served, r.failed))
        .collect();
    // Refused decisions ran nowhere: "(none)". Operations that went
    // through were carried out by the instance, not a host, and are not
    // failures; the one the store failed is.
    assert_eq!(
        rows,
        [
            ("(instance treaty-azure-eastus)", 5, 0, 0, 1),
            ("(none)", 2, 2, 0, 0),
            ("az", 1, 0, 1, 0),
        ]
    );
    assert_eq!(by_host[0].state, 4, "three operations and a tool call");
    let by_product = report(&store, Dimension::Product, None, None)
        .await
        .unwrap();
    let f = &by_product[0];
    assert_eq!(
        (f.requests, f.refused, f.served, f.state, f.failed),
        (8, 2, 1, 4, 1)
    );
    let json = serde_json::to_value(f).unwrap();
    assert_eq!(
        (json["state"].as_u64(), json["failed"].as_u64()),
        (Some(4), Some(1))
    );

    // The HTML report counts them the same way.
    let html = html_report(&store, None, None).await.unwrap();
    assert!(html.contains("<b>4</b><span>state</span>"), "state card");
    assert!(html.contains("<b>1</b><span>failed</span>"), "failed card");
    assert!(html.contains(
        "<td>(instance treaty-azure-eastus)</td><td>5</td><td>0</td><td>4</td><td>1</td>"
    ));
    db.finish().await;
}
on_both!(state_decisions_count_as_what_they_are);

async fn reports_bucket_requests_by_time(db: Db) {
    let store = db.store().await;
    load_fixture(&store).await;
    let by = |bucket_ms| Dimension::Time { bucket_ms };
    let counts = |rows: &[ReportRow]| -> Vec<(String, u64, u64)> {
        rows.iter()
            .map(|r| (r.key.clone(), r.requests, r.served))
            .collect()
    };
    // Decisions at minutes 0, 30, 45, 60, 90 and 100.
    let hourly = report(&store, by(60 * MIN), None, None).await.unwrap();
    assert_eq!(
        counts(&hourly),
        [
            ("2026-01-01T00:00:00Z".to_owned(), 3, 1),
            ("2026-01-01T01:00:00Z".to_owned(), 3, 1),
        ]
    );
    // Buckets with no request between the first and the last are rows
    // of zeros, so a series has no holes.
    let quarters = report(&store, by(15 * MIN), None, None).await.unwrap();
    let keys: Vec<(&str, u64)> = quarters
        .iter()
        .map(|r| (&r.key[11..16], r.requests))
        .collect();
    assert_eq!(
        keys,
        [
            ("00:00", 1),
            ("00:15", 0),
            ("00:30", 1),
            ("00:45", 1),
            ("01:00", 1),
            ("01:15", 0),
            ("01:30", 2),
        ]
    );
    assert_eq!(
        quarters[1],
        ReportRow {
            key: quarters[1].key.clone(),
            ..ReportRow::default()
        }
    );
    // Costs and tokens land in their bucket.
    assert_eq!((hourly[0].cost_micros, hourly[1].cost_micros), (100, 50));
    // A range keeps its buckets aligned to the epoch, not to --since.
    let late = report(&store, by(60 * MIN), Some(T0 + 50 * MIN), None)
        .await
        .unwrap();
    assert_eq!(counts(&late), [("2026-01-01T01:00:00Z".to_owned(), 3, 1)]);
    // Without a width: about 60 buckets at most (100 minutes: 5 minutes).
    assert_eq!(
        crate::auto_bucket(&store, None, None).await.unwrap(),
        5 * MIN
    );
    // Absurd widths are refused, saying why.
    let err = report(&store, by(1), None, None).await.unwrap_err();
    assert!(err.to_string().contains("wider bucket"), "{err}");
    assert!(report(&store, by(0), None, None).await.is_err());

    let mut csv = Vec::new();
    write_report_csv(by(60 * MIN), &hourly, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(
        csv.starts_with("time,requests,admitted,refused,served,state,failed,"),
        "{csv}"
    );
    assert!(
        csv.contains("\n2026-01-01T00:00:00Z,3,2,1,1,0,1,10,20,100\n"),
        "{csv}"
    );
    // No decision in the range: no rows.
    let none = report(&store, by(60 * MIN), Some(T0 + 1000 * MIN), None)
        .await
        .unwrap();
    assert!(none.is_empty());
    db.finish().await;
}
on_both!(reports_bucket_requests_by_time);

fn shadow(
    reading: &str,
    class: &str,
    admitted: bool,
    allowed: &[&str],
    chosen: Option<&str>,
    clauses: &[&str],
) -> crate::ShadowVerdict {
    crate::ShadowVerdict {
        reading: reading.into(),
        workload_class: class.into(),
        classified_by: "rule".into(),
        admitted,
        allowed: allowed.iter().map(|h| (*h).into()).collect(),
        chosen: chosen.map(Into::into),
        held: None,
        tool_allowed: None,
        clauses: clauses.iter().map(|c| (*c).into()).collect(),
    }
}

/// Decisions made under reading-openai with reading-aws and
/// reading-microsoft in the shadow, as the Frontier case has them.
fn shadow_fixture() -> Vec<Entry> {
    use Entry::{Decision as D, Outcome as O};
    const FRONTIER: &[(&str, bool, &[&str])] = &[
        ("azure-eastus", true, &["H0"]),
        ("bedrock-useast1", false, &["C1", "C3"]),
    ];
    let frontier_step = |id: &str, minute: i64| DecisionRecord {
        reading: Some("reading-openai".into()),
        shadow: vec![
            shadow(
                "reading-aws",
                "non_api_product",
                true,
                &["azure-eastus", "bedrock-useast1"],
                Some("bedrock-useast1"),
                &["C5", "H0"],
            ),
            shadow(
                "reading-microsoft",
                "stateless_api",
                false,
                &[],
                None,
                &["C4m"],
            ),
        ],
        ..req(
            id,
            minute,
            ("acme", "aws-marketplace", "frontier"),
            "stateless_api",
            true,
            &["A0"],
            FRONTIER,
            Some("azure-eastus"),
            None,
        )
    };
    let api_call = DecisionRecord {
        reading: Some("reading-openai".into()),
        shadow: vec![
            shadow(
                "reading-aws",
                "stateless_api",
                true,
                &["azure-eastus"],
                Some("azure-eastus"),
                &["H0"],
            ),
            shadow(
                "reading-microsoft",
                "stateless_api",
                true,
                &["azure-eastus"],
                Some("azure-eastus"),
                &["H0"],
            ),
        ],
        ..req(
            "d4",
            3,
            ("acme", "direct", "api"),
            "stateless_api",
            true,
            &["A0"],
            FRONTIER,
            Some("azure-eastus"),
            None,
        )
    };
    // An agent created on an AWS instance: C2 refuses it, C2a would not.
    let hold = DecisionRecord {
        reading: Some("reading-openai".into()),
        operation: Some("agents.create".into()),
        runtime: Some(crate::RuntimeVerdict {
            instance: "treaty-aws".into(),
            cloud: "aws".into(),
            region: "us-east".into(),
            allowed: false,
            clauses: vec!["C2".into()],
        }),
        shadow: vec![
            crate::ShadowVerdict {
                held: Some(true),
                ..shadow("reading-aws", "stateful_agent", true, &[], None, &["C2a"])
            },
            crate::ShadowVerdict {
                held: Some(false),
                ..shadow(
                    "reading-microsoft",
                    "stateful_agent",
                    true,
                    &[],
                    None,
                    &["C2"],
                )
            },
        ],
        ..req(
            "d5",
            4,
            ("acme", "direct", "frontier"),
            "stateful_agent",
            true,
            &["A0"],
            FRONTIER,
            None,
            Some("contract_refused"),
        )
    };
    // reading-aws would not allow the host in force at all.
    let elsewhere = DecisionRecord {
        reading: Some("reading-openai".into()),
        shadow: vec![shadow(
            "reading-aws",
            "stateless_api",
            true,
            &["azure-westus"],
            Some("azure-westus"),
            &["X7"],
        )],
        ..req(
            "d6",
            5,
            ("acme", "direct", "api"),
            "stateless_api",
            true,
            &["A0"],
            &[
                ("azure-eastus", true, &["H0"]),
                ("azure-westus", true, &["H0"]),
            ],
            Some("azure-eastus"),
            None,
        )
    };
    // Two picks among hosts both readings allow: the router's choice.
    let routed = DecisionRecord {
        reading: Some("reading-openai".into()),
        shadow: vec![shadow(
            "reading-aws",
            "stateless_api",
            true,
            &["azure-eastus", "azure-westus"],
            Some("azure-westus"),
            &["H0"],
        )],
        ..req(
            "d8",
            7,
            ("acme", "direct", "api"),
            "stateless_api",
            true,
            &["A0"],
            &[
                ("azure-eastus", true, &["H0"]),
                ("azure-westus", true, &["H0"]),
            ],
            Some("azure-eastus"),
            None,
        )
    };
    // Refused in force for its preferred-host hint (a host the reading
    // refuses), while the host the shadow picks is allowed in force too.
    let hinted = DecisionRecord {
        reading: Some("reading-openai".into()),
        shadow: vec![shadow(
            "reading-aws",
            "stateless_api",
            true,
            &["azure-eastus"],
            Some("azure-eastus"),
            &["H0"],
        )],
        ..req(
            "d9",
            8,
            ("acme", "direct", "api"),
            "stateless_api",
            true,
            &["A0"],
            FRONTIER,
            None,
            Some("contract_refused"),
        )
    };
    // A Frontier step placed on azure-westus in force: reading-aws sends it
    // to Bedrock too, and the summary says so in one sentence.
    let westus_step = DecisionRecord {
        hosts: vec![
            crate::HostVerdict {
                host: "azure-westus".into(),
                allowed: true,
                clauses: vec!["H0".into()],
            },
            crate::HostVerdict {
                host: "bedrock-useast1".into(),
                allowed: false,
                clauses: vec!["C1".into(), "C3".into()],
            },
        ],
        chosen: Some("azure-westus".into()),
        shadow: vec![shadow(
            "reading-aws",
            "non_api_product",
            true,
            &["azure-westus", "bedrock-useast1"],
            Some("bedrock-useast1"),
            &["C5", "H0"],
        )],
        ..frontier_step("d10", 9)
    };
    vec![
        D(routed),
        D(hinted),
        D(westus_step),
        O(out("d10", 9, Some("azure-westus"), 200, (0, 0), 0)),
        D(frontier_step("d1", 0)),
        O(out("d1", 0, Some("azure-eastus"), 200, (10, 20), 100)),
        D(frontier_step("d2", 1)),
        O(out("d2", 1, Some("azure-eastus"), 200, (10, 20), 100)),
        D(frontier_step("d3", 2)),
        O(out("d3", 2, Some("azure-eastus"), 200, (10, 20), 100)),
        D(api_call),
        O(out("d4", 3, Some("azure-eastus"), 200, (1, 1), 10)),
        D(hold),
        O(out("d5", 4, None, 403, (0, 0), 0)),
        D(elsewhere),
        O(out("d6", 5, Some("azure-eastus"), 200, (1, 1), 10)),
        // No shadow reading configured: not in the report.
        D(req(
            "d7",
            6,
            ("acme", "direct", "api"),
            "stateless_api",
            true,
            &["A0"],
            FRONTIER,
            Some("azure-eastus"),
            None,
        )),
    ]
}

async fn divergence_report_shows_where_shadow_readings_part(db: Db) {
    let store = db.store().await;
    let ledger = Ledger::open(store.clone(), settings(1000)).await.unwrap();
    for e in shadow_fixture() {
        ledger.append(e).await.unwrap();
    }
    ledger.shutdown().await.unwrap();

    let rows = report(&store, Dimension::Divergence, None, None)
        .await
        .unwrap();
    // Shadow, parting, host in force, shadow host, shadow class, requests.
    type Group<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        u64,
    );
    let groups: Vec<Group> = rows
        .iter()
        .map(|r| {
            let v = r.divergence.as_ref().unwrap();
            assert_eq!(
                (r.key.as_str(), v.reading.as_str()),
                (v.shadow.as_str(), "reading-openai")
            );
            (
                v.shadow.as_str(),
                v.parting.as_str(),
                v.host.as_deref(),
                v.shadow_host.as_deref(),
                v.shadow_class.as_str(),
                r.requests,
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("reading-aws", "agrees", None, None, "stateless_api", 3),
            (
                "reading-aws",
                "host_not_allowed",
                Some("azure-eastus"),
                Some("azure-westus"),
                "stateless_api",
                1
            ),
            (
                "reading-aws",
                "other_host",
                Some("azure-eastus"),
                Some("bedrock-useast1"),
                "non_api_product",
                3
            ),
            (
                "reading-aws",
                "other_host",
                Some("azure-westus"),
                Some("bedrock-useast1"),
                "non_api_product",
                1
            ),
            (
                "reading-aws",
                "would_admit",
                None,
                None,
                "stateful_agent",
                1
            ),
            (
                "reading-microsoft",
                "agrees",
                None,
                None,
                "stateful_agent",
                1
            ),
            (
                "reading-microsoft",
                "agrees",
                None,
                None,
                "stateless_api",
                1
            ),
            (
                "reading-microsoft",
                "would_refuse",
                Some("azure-eastus"),
                None,
                "stateless_api",
                3
            ),
        ]
    );
    // The clauses on each side: what refused bedrock in force (C1, C3)
    // against what allows it in the shadow (C5); C2 against C2a; A0
    // against C4m.
    let clauses = |shadow: &str, parting: &str| {
        let v = rows
            .iter()
            .filter_map(|r| r.divergence.as_ref())
            .find(|v| v.shadow == shadow && v.parting.as_str() == parting)
            .unwrap();
        (v.clauses.join(","), v.shadow_clauses.join(","))
    };
    assert_eq!(
        clauses("reading-aws", "other_host"),
        ("C1,C3".into(), "C5,H0".into())
    );
    assert_eq!(
        clauses("reading-aws", "would_admit"),
        ("C2".into(), "C2a".into())
    );
    assert_eq!(
        clauses("reading-microsoft", "would_refuse"),
        ("A0".into(), "C4m".into())
    );
    // The requests' own counts come along: what would have moved.
    let moved = &rows[2];
    assert_eq!(
        (moved.served, moved.prompt_tokens, moved.cost_micros),
        (3, 30, 300)
    );

    let summary = crate::divergence_summary(&rows);
    assert_eq!(
        summary,
        [
            "reading-aws agrees with reading-openai on 3 of 9 decisions",
            "reading-aws would have sent 1 request to azure-westus instead of azure-eastus, which it does not allow (reading-openai: H0; reading-aws: X7)",
            "reading-aws would have sent 4 requests to bedrock-useast1 instead of azure-eastus (3) and azure-westus (1) (classed non_api_product, not stateless_api; reading-openai: C1, C3; reading-aws: C5, H0)",
            "reading-aws would have let through 1 request that reading-openai refused (reading-openai: C2; reading-aws: C2a)",
            "reading-microsoft agrees with reading-openai on 2 of 5 decisions",
            "reading-microsoft would have refused 3 requests that reading-openai let through to azure-eastus (reading-openai: A0; reading-microsoft: C4m)",
        ]
    );

    let mut csv = Vec::new();
    write_report_csv(Dimension::Divergence, &rows, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with(
        "shadow,reading,parting,host,shadow_host,class,shadow_class,clauses,shadow_clauses,requests,admitted,refused,served,state,failed,prompt_tokens,completion_tokens,cost_micros\n"
    ), "{csv}");
    assert!(csv.contains(
        "\nreading-aws,reading-openai,other_host,azure-eastus,bedrock-useast1,stateless_api,non_api_product,C1;C3,C5;H0,3,3,0,3,0,0,30,60,300\n"
    ), "{csv}");
    let json = serde_json::to_value(&rows[2]).unwrap();
    assert_eq!(json["parting"], "other_host");
    assert_eq!(json["shadow_host"], "bedrock-useast1");
    assert_eq!(json["requests"], 3);

    // The HTML report says the same.
    let html = html_report(&store, None, None).await.unwrap();
    assert!(html.contains("Where the shadow readings part"));
    assert!(html.contains(
        "reading-aws would have sent 4 requests to bedrock-useast1 instead of azure-eastus (3) and azure-westus (1)"
    ));
    // And without shadow readings, says how to get them.
    let plain = Db::sqlite().await;
    let plain_store = plain.store().await;
    load_fixture(&plain_store).await;
    assert!(
        report(&plain_store, Dimension::Divergence, None, None)
            .await
            .unwrap()
            .is_empty()
    );
    let html = html_report(&plain_store, None, None).await.unwrap();
    assert!(html.contains("contracts.shadow"));
    db.finish().await;
}
on_both!(divergence_report_shows_where_shadow_readings_part);

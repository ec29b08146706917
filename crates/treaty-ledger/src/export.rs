//! `export`: every record, in seq order, as JSON lines or CSV.
//!
//! JSONL keeps each record exactly as stored and hashed (the `record`
//! value is the stored canonical payload, byte for byte, next to its `seq`,
//! `kind` and `hash`), so an export can be re-verified elsewhere. CSV is
//! for spreadsheets: one row per record, decision and outcome columns side
//! by side (the other kind's left empty), lists joined with `;`, each host
//! verdict written `host=allowed(C1,C2)` or `host=refused(C4)`. Export only
//! reads; memory stays one page of records.

use serde::Serialize;
use serde_json::value::RawValue;
use treaty_store::Store;

use crate::LedgerError;
use crate::record::Entry;
use crate::scan::{self, TimeRange};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    seq: i64,
    kind: &'a str,
    hash: String,
    record: &'a RawValue,
}

const CSV_COLUMNS: [&str; 34] = [
    "seq",
    "kind",
    "hash",
    "request_id",
    "at",
    "at_ms",
    "key_id",
    "tenant",
    "channel",
    "product",
    "route",
    "model",
    "workload_class",
    "classified_by",
    "data_classification",
    "declared_class",
    "reading",
    "admitted",
    "admit_clauses",
    "hosts",
    "chosen",
    "model_step",
    "run_id",
    "refused",
    "served_by",
    "attempts",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cost_micros",
    "latency_us",
    "client_cancelled",
    "error",
    "features",
];

/// Writes every record; returns how many.
pub async fn export<W: std::io::Write + Send>(
    store: &Store,
    format: Format,
    out: W,
) -> Result<u64, LedgerError> {
    export_with_progress(store, format, out, |_, _| {}).await
}

/// [`export`], calling `progress(done, total)` after each page.
pub async fn export_with_progress<W: std::io::Write + Send>(
    store: &Store,
    format: Format,
    mut out: W,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, LedgerError> {
    let (lo, hi) = store.ledger_seq_bounds().await?;
    let total = match (lo, hi) {
        (Some(lo), Some(hi)) => (hi - lo + 1).max(0) as u64,
        _ => 0,
    };
    let n = match format {
        Format::Jsonl => {
            scan::each_row(
                store,
                None,
                TimeRange::default(),
                |row| {
                    let record: &RawValue =
                        serde_json::from_str(&row.payload).map_err(|e| LedgerError::Corrupt {
                            seq: row.seq,
                            detail: e.to_string(),
                        })?;
                    let line = JsonLine {
                        seq: row.seq,
                        kind: &row.kind,
                        hash: hex::encode(&row.hash),
                        record,
                    };
                    serde_json::to_writer(&mut out, &line)
                        .map_err(|e| LedgerError::Encode(e.to_string()))?;
                    out.write_all(b"\n")?;
                    Ok(())
                },
                |done| progress(done, total),
            )
            .await?
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(CSV_COLUMNS)?;
            let n = scan::each_row(
                store,
                None,
                TimeRange::default(),
                |row| {
                    let mut cells: Vec<String> = vec![
                        row.seq.to_string(),
                        row.kind.clone(),
                        hex::encode(&row.hash),
                        row.request_id.clone(),
                        rfc3339(row.at_ms),
                        row.at_ms.to_string(),
                    ];
                    cells.extend(csv_cells(&scan::decode(row)?));
                    w.write_record(&cells)?;
                    Ok(())
                },
                |done| progress(done, total),
            )
            .await?;
            w.flush()?;
            n
        }
    };
    out.flush()?;
    Ok(n)
}

/// The columns after `at_ms`, in [`CSV_COLUMNS`] order.
fn csv_cells(entry: &Entry) -> Vec<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut cells = vec![String::new(); CSV_COLUMNS.len() - 6];
    match entry {
        Entry::Decision(d) => {
            let hosts: Vec<String> = d
                .hosts
                .iter()
                .map(|h| {
                    format!(
                        "{}={}({})",
                        h.host,
                        if h.allowed { "allowed" } else { "refused" },
                        h.clauses.join(",")
                    )
                })
                .collect();
            let features = format!(
                "store={};previous_response_id={};conversation={}",
                d.features
                    .store
                    .map_or("absent".to_owned(), |s| s.to_string()),
                d.features.previous_response_id,
                d.features.conversation
            );
            cells[..18].clone_from_slice(&[
                d.key_id.clone(),
                d.tenant.clone(),
                d.channel.clone(),
                d.product.clone(),
                d.route.clone(),
                d.model.clone(),
                d.workload_class.clone(),
                d.classified_by.clone(),
                d.data_classification.clone(),
                opt(&d.declared_class),
                opt(&d.reading),
                d.admitted.to_string(),
                d.admit_clauses.join(";"),
                hosts.join(";"),
                opt(&d.chosen),
                d.model_step.to_string(),
                opt(&d.run_id),
                opt(&d.refused),
            ]);
            if let Some(last) = cells.last_mut() {
                *last = features;
            }
        }
        Entry::Outcome(o) => {
            let attempts: Vec<String> = o
                .attempts
                .iter()
                .map(|a| match &a.error {
                    None => format!("{}:ok:{}us", a.host, a.latency_us),
                    Some(e) => format!("{}:{e}:{}us", a.host, a.latency_us),
                })
                .collect();
            cells[18..27].clone_from_slice(&[
                opt(&o.served_by),
                attempts.join(";"),
                o.status.to_string(),
                o.prompt_tokens.to_string(),
                o.completion_tokens.to_string(),
                o.cost_micros.to_string(),
                o.latency_us.to_string(),
                o.client_cancelled.to_string(),
                opt(&o.error),
            ]);
        }
        Entry::Key(k) => {
            // The key change goes where a refusal's reason would.
            cells[17] = format!(
                "key {} replaces {}: {}",
                k.key,
                k.previous.as_deref().unwrap_or("none"),
                k.reason
            );
        }
        Entry::Admin(a) => {
            cells[17] = format!("{} {} by {}: {}", a.action, a.target, a.actor, a.detail);
        }
    }
    cells
}

pub(crate) fn rfc3339(at_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at_ms.to_string())
}

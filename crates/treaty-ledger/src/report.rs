//! `report`: requests, outcomes, tokens and cost, grouped by one dimension.
//!
//! Counts follow the request (decision joined with outcome, see `scan`):
//! `refused` means refused before any host (not admitted, no host allowed,
//! or another refusal); `served` means a host answered; `failed` means it
//! reached hosts and none answered. For [`Dimension::Host`] a request is
//! counted under the host that served it, else the one chosen, else
//! `(none)`. For [`Dimension::Clause`] each clause id gets the requests
//! whose decision names it, and how many of those name it as permitting
//! and as refusing (a decision naming a clause for several hosts counts
//! once per role). Reports only read.

use std::collections::BTreeMap;

use serde::Serialize;
use treaty_store::Store;

use crate::LedgerError;
use crate::record::{DecisionRecord, OutcomeRecord};
use crate::scan::{self, TimeRange};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// The virtual key's id: spend by key.
    Key,
    Host,
    Channel,
    Product,
    Clause,
    Tenant,
    Class,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Key => "key",
            Dimension::Host => "host",
            Dimension::Channel => "channel",
            Dimension::Product => "product",
            Dimension::Clause => "clause",
            Dimension::Tenant => "tenant",
            Dimension::Class => "class",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportRow {
    /// The key id, host, channel, product, clause id, tenant or class.
    pub key: String,
    pub requests: u64,
    pub admitted: u64,
    pub refused: u64,
    pub served: u64,
    pub failed: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_micros: i64,
    /// Clause reports only: decisions naming the clause as permitting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permitting: Option<u64>,
    /// Clause reports only: decisions naming the clause as refusing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusing: Option<u64>,
}

impl ReportRow {
    fn add(&mut self, d: &DecisionRecord, o: Option<&OutcomeRecord>) {
        let fate = scan::fate(d, o);
        self.requests += 1;
        self.admitted += u64::from(fate.admitted);
        self.refused += u64::from(fate.refused);
        self.served += u64::from(fate.served);
        self.failed += u64::from(fate.failed);
        if let Some(o) = o {
            self.prompt_tokens += o.prompt_tokens;
            self.completion_tokens += o.completion_tokens;
            self.cost_micros += o.cost_micros;
        }
    }
}

/// Groups the requests decided in `[since, until)` (unix ms) by `by`,
/// sorted by key.
pub async fn report(
    store: &Store,
    by: Dimension,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<Vec<ReportRow>, LedgerError> {
    let mut rows: BTreeMap<String, ReportRow> = BTreeMap::new();
    fn row<'a>(rows: &'a mut BTreeMap<String, ReportRow>, key: &str) -> &'a mut ReportRow {
        rows.entry(key.to_owned()).or_insert_with(|| ReportRow {
            key: key.to_owned(),
            ..ReportRow::default()
        })
    }
    scan::each_request(store, TimeRange::new(since, until), |d, o| {
        let key = match by {
            Dimension::Key => &d.key_id,
            Dimension::Host => scan::host_of(d, o),
            Dimension::Channel => &d.channel,
            Dimension::Product => &d.product,
            Dimension::Tenant => &d.tenant,
            Dimension::Class => &d.workload_class,
            Dimension::Clause => {
                let (permitting, refusing) = scan::clause_roles(d);
                let mut named: Vec<&str> = permitting.iter().chain(&refusing).copied().collect();
                named.sort_unstable();
                named.dedup();
                for id in named {
                    let r = row(&mut rows, id);
                    r.add(d, o);
                    *r.permitting.get_or_insert(0) += u64::from(permitting.contains(&id));
                    *r.refusing.get_or_insert(0) += u64::from(refusing.contains(&id));
                }
                return;
            }
        };
        row(&mut rows, key).add(d, o);
    })
    .await?;
    Ok(rows.into_values().collect())
}

/// The column names of a report of `by`, in [`report_cells`] order.
pub fn report_columns(by: Dimension) -> Vec<&'static str> {
    let mut cols = vec![
        by.as_str(),
        "requests",
        "admitted",
        "refused",
        "served",
        "failed",
        "prompt_tokens",
        "completion_tokens",
        "cost_micros",
    ];
    if by == Dimension::Clause {
        cols.extend(["permitting", "refusing"]);
    }
    cols
}

/// One row as text cells, in [`report_columns`] order.
pub fn report_cells(by: Dimension, row: &ReportRow) -> Vec<String> {
    let mut cells = vec![
        row.key.clone(),
        row.requests.to_string(),
        row.admitted.to_string(),
        row.refused.to_string(),
        row.served.to_string(),
        row.failed.to_string(),
        row.prompt_tokens.to_string(),
        row.completion_tokens.to_string(),
        row.cost_micros.to_string(),
    ];
    if by == Dimension::Clause {
        cells.push(row.permitting.unwrap_or(0).to_string());
        cells.push(row.refusing.unwrap_or(0).to_string());
    }
    cells
}

/// Writes a report as CSV with a header line.
pub fn write_report_csv(
    by: Dimension,
    rows: &[ReportRow],
    out: impl std::io::Write,
) -> Result<(), LedgerError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(report_columns(by))?;
    for row in rows {
        w.write_record(report_cells(by, row))?;
    }
    w.flush()?;
    Ok(())
}

//! `report`: requests, outcomes, tokens and cost, grouped by one dimension.
//!
//! Counts follow the request (decision joined with outcome, see `scan`):
//! `refused` means refused before any host (not admitted, no host allowed,
//! a hold or a tool use refused); `served` means a host answered; `state`
//! means an operation on held state (an agent, a conversation, a stored
//! response, a run) or a tool call of a run went through: such a decision
//! runs on no host by nature, so it is neither served nor failed; `failed`
//! means it went through the gate and did not succeed (no host answered,
//! or the operation ended in an error).
//!
//! For [`Dimension::Host`] a request is counted under the host that
//! served it, else the one chosen; an operation on state or a tool call
//! under `(instance ID)`, the Treaty instance that carried it out; a
//! request that ran nowhere under `(none)`. For [`Dimension::Clause`] each
//! clause id gets the requests whose decision names it, and how many of
//! those name it as permitting and as refusing (a decision naming a clause
//! for several hosts counts once per role). [`Dimension::Time`] keys rows
//! by the RFC 3339 start of each time bucket (see `buckets`), empty
//! buckets between the first and the last included so a series has no
//! holes. [`Dimension::Divergence`] groups by how each shadow reading
//! parts from the reading in force (see `divergence`). Reports only read.

use std::collections::BTreeMap;

use serde::Serialize;
use treaty_store::Store;

use crate::LedgerError;
use crate::buckets;
use crate::divergence::{Divergence, Partings};
use crate::export::rfc3339;
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
    /// Buckets of `bucket_ms` milliseconds, aligned to the Unix epoch.
    Time {
        bucket_ms: i64,
    },
    /// How each shadow reading parts from the reading in force.
    Divergence,
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
            Dimension::Time { .. } => "time",
            Dimension::Divergence => "divergence",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportRow {
    /// The key id, host, channel, product, clause id, tenant, class, the
    /// RFC 3339 start of a time bucket, or the shadow reading.
    pub key: String,
    pub requests: u64,
    pub admitted: u64,
    pub refused: u64,
    pub served: u64,
    /// Operations on held state and tool calls that went through (no host
    /// by nature: neither served nor failed).
    pub state: u64,
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
    /// Divergence reports only: the group (shadow reading, parting, hosts,
    /// classes and clauses on each side).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<Divergence>,
}

impl ReportRow {
    pub(crate) fn add(&mut self, d: &DecisionRecord, o: Option<&OutcomeRecord>) {
        let fate = scan::fate(d, o);
        self.requests += 1;
        self.admitted += u64::from(fate.admitted);
        self.refused += u64::from(fate.refused);
        self.served += u64::from(fate.served);
        self.state += u64::from(fate.state);
        self.failed += u64::from(fate.failed);
        if let Some(o) = o {
            self.prompt_tokens += o.prompt_tokens;
            self.completion_tokens += o.completion_tokens;
            self.cost_micros += o.cost_micros;
        }
    }
}

/// Groups the requests decided in `[since, until)` (unix ms) by `by`,
/// sorted by key (by time for [`Dimension::Time`]; agreements first, then
/// the biggest partings, for [`Dimension::Divergence`]).
pub async fn report(
    store: &Store,
    by: Dimension,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<Vec<ReportRow>, LedgerError> {
    let range = TimeRange::new(since, until);
    match by {
        Dimension::Time { bucket_ms } => return by_time(store, range, bucket_ms).await,
        Dimension::Divergence => {
            let mut partings = Partings::default();
            scan::each_request(store, range, |d, o| partings.add(d, o)).await?;
            return Ok(partings.rows());
        }
        _ => {}
    }
    let mut rows: BTreeMap<String, ReportRow> = BTreeMap::new();
    fn row<'a>(rows: &'a mut BTreeMap<String, ReportRow>, key: &str) -> &'a mut ReportRow {
        rows.entry(key.to_owned()).or_insert_with(|| ReportRow {
            key: key.to_owned(),
            ..ReportRow::default()
        })
    }
    scan::each_request(store, range, |d, o| {
        let host;
        let key = match by {
            Dimension::Key => &d.key_id,
            Dimension::Host => {
                host = scan::host_of(d, o);
                host.as_ref()
            }
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
            Dimension::Time { .. } | Dimension::Divergence => return,
        };
        row(&mut rows, key).add(d, o);
    })
    .await?;
    Ok(rows.into_values().collect())
}

/// One row per bucket from the first decision's to the last's, empty
/// buckets included.
async fn by_time(
    store: &Store,
    range: TimeRange,
    width: i64,
) -> Result<Vec<ReportRow>, LedgerError> {
    if width <= 0 {
        return Err(LedgerError::Range(format!(
            "a time bucket must be at least 1 ms, not {width} ms"
        )));
    }
    let Some((lo, hi)) = buckets::decision_span(store, range).await? else {
        return Ok(Vec::new());
    };
    let (first, last) = (buckets::start_of(lo, width), buckets::start_of(hi, width));
    let count = (last - first) / width + 1;
    if count > buckets::MAX_ROWS {
        return Err(LedgerError::Range(format!(
            "{count} buckets of {width} ms between the first and the last decision: \
             choose a wider bucket or a shorter range (at most {} rows)",
            buckets::MAX_ROWS
        )));
    }
    let mut rows: BTreeMap<i64, ReportRow> = (0..count)
        .map(|i| {
            let start = first + i * width;
            let row = ReportRow {
                key: rfc3339(start),
                ..ReportRow::default()
            };
            (start, row)
        })
        .collect();
    scan::each_request(store, range, |d, o| {
        if let Some(row) = rows.get_mut(&buckets::start_of(d.at_ms, width)) {
            row.add(d, o);
        }
    })
    .await?;
    Ok(rows.into_values().collect())
}

/// The counts every report has, after its key column(s).
const COUNTS: [&str; 9] = [
    "requests",
    "admitted",
    "refused",
    "served",
    "state",
    "failed",
    "prompt_tokens",
    "completion_tokens",
    "cost_micros",
];

/// The column names of a report of `by`, in [`report_cells`] order.
pub fn report_columns(by: Dimension) -> Vec<&'static str> {
    let mut cols = match by {
        Dimension::Divergence => vec![
            "shadow",
            "reading",
            "parting",
            "host",
            "shadow_host",
            "class",
            "shadow_class",
            "clauses",
            "shadow_clauses",
        ],
        _ => vec![by.as_str()],
    };
    cols.extend(COUNTS);
    if by == Dimension::Clause {
        cols.extend(["permitting", "refusing"]);
    }
    cols
}

/// One row as text cells, in [`report_columns`] order (lists of clauses
/// joined with `;`, an absent host empty).
pub fn report_cells(by: Dimension, row: &ReportRow) -> Vec<String> {
    let mut cells = vec![row.key.clone()];
    if by == Dimension::Divergence {
        match &row.divergence {
            Some(v) => cells.extend([
                v.reading.clone(),
                v.parting.as_str().to_owned(),
                v.host.clone().unwrap_or_default(),
                v.shadow_host.clone().unwrap_or_default(),
                v.class.clone(),
                v.shadow_class.clone(),
                v.clauses.join(";"),
                v.shadow_clauses.join(";"),
            ]),
            None => cells.extend(std::iter::repeat_n(String::new(), 8)),
        }
    }
    cells.extend([
        row.requests.to_string(),
        row.admitted.to_string(),
        row.refused.to_string(),
        row.served.to_string(),
        row.state.to_string(),
        row.failed.to_string(),
        row.prompt_tokens.to_string(),
        row.completion_tokens.to_string(),
        row.cost_micros.to_string(),
    ]);
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

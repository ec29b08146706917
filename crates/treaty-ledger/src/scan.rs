//! Reading the ledger back, a page at a time, for reports, exports and
//! replays.
//!
//! Records come in seq order; a *request* is a decision joined with its
//! outcome (by request id). A request belongs to a time range when its
//! decision does; its outcome is looked for in the same range, so a
//! request whose outcome was written after `until` counts as unfinished.
//! Only decisions still waiting for their outcome are held in memory.
//! Scanning never writes and never checks hashes (that is `verify`'s job):
//! a report on a tampered ledger reports what is stored.

use std::borrow::Cow;
use std::collections::HashMap;

use treaty_store::{LedgerRow, Store};

use crate::LedgerError;
use crate::record::{DecisionRecord, Entry, Kind, OutcomeRecord};

const PAGE: i64 = 2_000;

/// A half-open time range in unix milliseconds; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl TimeRange {
    pub fn new(since_ms: Option<i64>, until_ms: Option<i64>) -> TimeRange {
        TimeRange { since_ms, until_ms }
    }

    pub(crate) fn bounds(self) -> (i64, i64) {
        (
            self.since_ms.unwrap_or(i64::MIN),
            self.until_ms.unwrap_or(i64::MAX),
        )
    }
}

/// Decodes a stored row, naming it when it cannot be read.
pub fn decode(row: &LedgerRow) -> Result<Entry, LedgerError> {
    let kind = Kind::parse(&row.kind).ok_or_else(|| LedgerError::Corrupt {
        seq: row.seq,
        detail: format!("unknown kind {:?}", row.kind),
    })?;
    Entry::decode(kind, &row.payload).map_err(|e| LedgerError::Corrupt {
        seq: row.seq,
        detail: e.to_string(),
    })
}

/// Calls `f` with every record of `kind` (all kinds when `None`) in the
/// range, in seq order, then `page_done(records so far)` after each page.
pub(crate) async fn each_row(
    store: &Store,
    kind: Option<Kind>,
    range: TimeRange,
    mut f: impl FnMut(&LedgerRow) -> Result<(), LedgerError>,
    mut page_done: impl FnMut(u64),
) -> Result<u64, LedgerError> {
    let (since, until) = range.bounds();
    let mut after = 0i64;
    let mut n = 0u64;
    loop {
        let page = store
            .ledger_records_in(kind.map(Kind::as_str), after, since, until, PAGE)
            .await?;
        for row in &page {
            f(row)?;
        }
        n += page.len() as u64;
        page_done(n);
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.seq,
            _ => return Ok(n),
        }
    }
}

/// Calls `f` once per request whose decision is in the range, with its
/// outcome when the range holds it. Returns the number of requests.
pub async fn each_request(
    store: &Store,
    range: TimeRange,
    mut f: impl FnMut(&DecisionRecord, Option<&OutcomeRecord>),
) -> Result<u64, LedgerError> {
    let mut pending: HashMap<String, DecisionRecord> = HashMap::new();
    let mut requests = 0u64;
    each_row(
        store,
        None,
        range,
        |row| {
            match decode(row)? {
                Entry::Decision(d) => {
                    requests += 1;
                    if let Some(earlier) = pending.insert(d.request_id.clone(), d) {
                        // A request id decided twice: the first never got
                        // its outcome.
                        f(&earlier, None);
                    }
                }
                Entry::Outcome(o) => {
                    if let Some(d) = pending.remove(&o.request_id) {
                        f(&d, Some(&o));
                    }
                }
                Entry::Key(_) | Entry::Admin(_) => {}
            }
            Ok(())
        },
        |_| {},
    )
    .await?;
    let mut rest: Vec<DecisionRecord> = pending.into_values().collect();
    rest.sort_by(|a, b| (a.at_ms, &a.request_id).cmp(&(b.at_ms, &b.request_id)));
    for d in &rest {
        f(d, None);
    }
    Ok(requests)
}

/// How a request ended, as reports count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fate {
    /// The contracts admitted it (channel × product × tenant).
    pub admitted: bool,
    /// Refused before any host: not admitted, no host allowed, or another
    /// refusal code.
    pub refused: bool,
    /// A host served it.
    pub served: bool,
    /// An operation on held state or a tool call (see [`hostless`]) that
    /// went through: done by the instance, no host by nature.
    pub state: bool,
    /// It went through the gate and then did not succeed: no host served
    /// it, or the operation on state or the tool call ended in an error.
    pub failed: bool,
}

/// A decision no host serves by nature: an operation on held state (an
/// agent, a conversation, a stored response, a run) or a tool call of a
/// run. Its outcome names no host even when it succeeded.
pub(crate) fn hostless(d: &DecisionRecord) -> bool {
    d.operation.is_some() || d.tool.is_some()
}

pub fn fate(d: &DecisionRecord, o: Option<&OutcomeRecord>) -> Fate {
    let refused = !d.admitted || d.refused.is_some();
    let (served, state) = match o {
        None => (false, false),
        Some(_) if refused => (false, false),
        Some(o) if hostless(d) => (false, o.error.is_none() && o.status < 400),
        Some(o) => (o.served_by.is_some(), false),
    };
    Fate {
        admitted: d.admitted,
        refused,
        served,
        state,
        failed: !refused && !served && !state && o.is_some(),
    }
}

/// The host a request is counted under: the one that served, else the
/// one chosen; for an operation on state or a tool call that was not
/// refused, the instance that carried it out, as `(instance ID)`; else
/// `(none)`, which is only ever a request that ran nowhere.
pub fn host_of<'a>(d: &'a DecisionRecord, o: Option<&'a OutcomeRecord>) -> Cow<'a, str> {
    if let Some(host) = o.and_then(|o| o.served_by.as_deref()) {
        return Cow::Borrowed(host);
    }
    if fate(d, o).refused {
        return Cow::Borrowed(NO_HOST);
    }
    if hostless(d) {
        let instance = d
            .runtime
            .as_ref()
            .map(|r| &r.instance)
            .or(d.instance.as_ref());
        return Cow::Owned(match instance {
            Some(id) => format!("(instance {id})"),
            None => "(instance)".to_owned(),
        });
    }
    Cow::Borrowed(d.chosen.as_deref().unwrap_or(NO_HOST))
}

pub const NO_HOST: &str = "(none)";

/// The clauses a decision names as permitting and as refusing (each id
/// once per role).
pub fn clause_roles(d: &DecisionRecord) -> (Vec<&str>, Vec<&str>) {
    let mut permitting: Vec<&str> = Vec::new();
    let mut refusing: Vec<&str> = Vec::new();
    let admit = d.admit_clauses.iter().map(String::as_str);
    if d.admitted {
        permitting.extend(admit);
    } else {
        refusing.extend(admit);
    }
    for h in &d.hosts {
        let list = if h.allowed {
            &mut permitting
        } else {
            &mut refusing
        };
        list.extend(h.clauses.iter().map(String::as_str));
    }
    permitting.sort_unstable();
    permitting.dedup();
    refusing.sort_unstable();
    refusing.dedup();
    (permitting, refusing)
}

/// What refused a refused request: the refusing clauses behind the
/// refusal, else a label saying why none is named.
pub fn refusal_causes(d: &DecisionRecord) -> Vec<String> {
    if !d.admitted {
        if d.admit_clauses.is_empty() {
            return vec!["(no permitting clause)".into()];
        }
        return d.admit_clauses.clone();
    }
    let mut ids: Vec<String> = d
        .hosts
        .iter()
        .filter(|h| !h.allowed)
        .flat_map(|h| h.clauses.iter().cloned())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() || d.hosts.iter().any(|h| h.allowed) {
        // Some host was allowed, so the refusal was not the contracts'.
        return vec![format!("({})", d.refused.as_deref().unwrap_or("refused"))];
    }
    ids
}

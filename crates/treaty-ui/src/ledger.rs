//! `/ui/ledger`: the ledger browser, and `/ui/ledger/{request_id}`, one
//! request's records.
//!
//! A page lists decisions newest first, read backwards from a cursor
//! (`before`, a sequence number) along the primary key: a page never
//! counts or scans the whole ledger. Filters are applied to the records
//! read; a page reads at most [`SCAN_LIMIT`] decisions and, when the
//! filters matched fewer than a page in them, offers to continue from
//! where it stopped, so a rare filter costs the same per page on any
//! ledger size. A request id goes straight to its indexed records.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use treaty_ledger::{DecisionRecord, Entry, OutcomeRecord};
use treaty_store::LedgerRow;

use crate::Ui;
use crate::auth::Session;
use crate::page;

/// Rows on a page.
const PAGE: usize = 50;
/// Decisions read per database round trip.
const BATCH: i64 = 500;
/// Decisions read at most for one page.
const SCAN_LIMIT: u64 = 10_000;

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Filters {
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub product: String,
    #[serde(default)]
    pub class: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub clause: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub request_id: String,
    /// The cursor: list decisions with a smaller sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
}

/// How a request ended, as the browser's status filter and the overview
/// name it. A hold or a tool call reaches no host, so the ledger's
/// `fate` (which reports share) counts it as failed; here it is served
/// when its outcome says so (a success status and no error).
pub fn status_of(d: &DecisionRecord, o: Option<&OutcomeRecord>) -> &'static str {
    let fate = treaty_ledger::fate(d, o);
    if fate.refused {
        "refused"
    } else if fate.served {
        "served"
    } else if let Some(o) = o {
        if o.status < 400 && o.error.is_none() {
            "served"
        } else {
            "failed"
        }
    } else {
        "pending"
    }
}

impl Filters {
    /// Whether the decision alone can still match (before its outcome is
    /// read).
    fn decision_matches(&self, d: &DecisionRecord, since: Option<i64>, until: Option<i64>) -> bool {
        let eq = |want: &str, got: &str| want.is_empty() || want == got;
        since.is_none_or(|s| d.at_ms >= s)
            && until.is_none_or(|u| d.at_ms < u)
            && eq(&self.tenant, &d.tenant)
            && eq(&self.channel, &d.channel)
            && eq(&self.product, &d.product)
            && eq(&self.class, &d.workload_class)
            && (self.clause.is_empty()
                || d.admit_clauses.contains(&self.clause)
                || d.hosts.iter().any(|h| h.clauses.contains(&self.clause)))
    }

    fn outcome_matches(&self, d: &DecisionRecord, o: Option<&OutcomeRecord>) -> bool {
        (self.status.is_empty() || self.status == status_of(d, o))
            && (self.host.is_empty() || self.host == treaty_ledger::host_of(d, o))
    }

    fn query_string(&self, before: Option<i64>) -> String {
        let next = Filters {
            before,
            ..self.clone()
        };
        serde_json::to_value(&next)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        let v = match v {
                            serde_json::Value::String(s) if !s.is_empty() => s.clone(),
                            serde_json::Value::Number(n) => n.to_string(),
                            _ => return None,
                        };
                        Some(format!("{k}={}", encode(&v)))
                    })
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .unwrap_or_default()
    }
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One listed request.
struct Listed {
    seq: i64,
    decision: DecisionRecord,
    outcome: Option<OutcomeRecord>,
}

fn decision_of(row: &LedgerRow) -> Option<DecisionRecord> {
    match treaty_ledger::decode(row) {
        Ok(Entry::Decision(d)) => Some(d),
        _ => None,
    }
}

fn outcome_of(rows: &[LedgerRow]) -> Option<OutcomeRecord> {
    rows.iter().find_map(|r| match treaty_ledger::decode(r) {
        Ok(Entry::Outcome(o)) => Some(o),
        _ => None,
    })
}

/// A page of requests matching `f`, and the cursor to continue from
/// (`None` at the ledger's start), and how many decisions were read.
async fn find(ui: &Ui, f: &Filters) -> Result<(Vec<Listed>, Option<i64>, u64), String> {
    let store = &ui.engine.store;
    let err = |e: treaty_store::StoreError| e.to_string();
    if !f.request_id.trim().is_empty() {
        let rows = store
            .ledger_records_of_request(f.request_id.trim())
            .await
            .map_err(err)?;
        let outcome = outcome_of(&rows);
        let listed = rows
            .iter()
            .filter_map(|r| {
                decision_of(r).map(|d| Listed {
                    seq: r.seq,
                    decision: d,
                    outcome: outcome.clone(),
                })
            })
            .collect();
        return Ok((listed, None, 1));
    }
    let since = page::parse_time(&f.since);
    let until = page::parse_time(&f.until);
    let mut cursor = f.before.unwrap_or(i64::MAX);
    let mut listed = Vec::new();
    let mut read = 0u64;
    loop {
        let rows = store
            .ledger_records_before("decision", cursor, BATCH)
            .await
            .map_err(err)?;
        let Some(last) = rows.last() else {
            return Ok((listed, None, read));
        };
        let exhausted = (rows.len() as i64) < BATCH;
        let mut older_than_since = false;
        for row in &rows {
            read += 1;
            cursor = row.seq;
            let Some(d) = decision_of(row) else { continue };
            // Times follow sequence numbers, give or take the replicas'
            // clocks: a minute older than `since` ends the listing.
            if since.is_some_and(|s| d.at_ms < s - 60_000) {
                older_than_since = true;
                break;
            }
            if !f.decision_matches(&d, since, until) {
                continue;
            }
            // A refusal is known from its decision alone (status
            // `refused`, host `(none)`): filter before reading outcomes,
            // which cost a lookup each.
            let refused = !d.admitted || d.refused.is_some();
            if (f.status == "refused" && !refused)
                || (refused && !f.status.is_empty() && f.status != "refused")
                || (refused && !f.host.is_empty() && f.host != treaty_ledger::NO_HOST)
            {
                continue;
            }
            let outcome = outcome_of(
                &store
                    .ledger_records_of_request(&d.request_id)
                    .await
                    .map_err(err)?,
            );
            if !f.outcome_matches(&d, outcome.as_ref()) {
                continue;
            }
            listed.push(Listed {
                seq: row.seq,
                decision: d,
                outcome,
            });
            if listed.len() == PAGE {
                return Ok((listed, Some(row.seq), read));
            }
        }
        if older_than_since || (exhausted && cursor <= last.seq) {
            return Ok((listed, None, read));
        }
        if read >= SCAN_LIMIT {
            return Ok((listed, Some(cursor), read));
        }
    }
}

pub async fn list(
    State(ui): State<Arc<Ui>>,
    session: Session,
    Query(f): Query<Filters>,
) -> Response {
    let (listed, next, read) = match find(&ui, &f).await {
        Ok(found) => found,
        Err(e) => return page::store_error(&e),
    };
    let config = &ui.engine.config;
    let opt = |name: &str, current: &str, values: Vec<String>| -> Markup {
        html! {
            label { (name)
                select name=(name) {
                    option value="" { "any" }
                    @for v in &values { option value=(v) selected[v == current] { (v) } }
                }
            }
        }
    };
    let clauses = ui
        .engine
        .policy
        .contracts()
        .map(|c| {
            c.clauses()
                .iter()
                .map(|c| c.id.as_str().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/ui/ledger" aria-label="Filters" {
            label { "since (UTC)" input type="datetime-local" name="since" value=(f.since); }
            label { "until (UTC)" input type="datetime-local" name="until" value=(f.until); }
            (opt("tenant", &f.tenant, config.tenants.iter().map(|t| t.id.to_string()).collect()))
            (opt("channel", &f.channel, config.channels.iter().map(|c| c.id.to_string()).collect()))
            (opt("product", &f.product, config.products.iter().map(|p| p.id.to_string()).collect()))
            (opt("class", &f.class, treaty_domain::WorkloadClass::ALL.iter().map(|c| c.as_str().to_owned()).collect()))
            (opt("host", &f.host, config.hosts.iter().map(|h| h.id().to_string()).collect()))
            (opt("clause", &f.clause, clauses))
            (opt("status", &f.status, ["served", "refused", "failed", "pending"].map(String::from).to_vec()))
            label { "request id" input type="search" name="request_id" value=(f.request_id) placeholder="req_…"; }
            button type="submit" { "Filter" }
            a href="/ui/ledger" { "Clear" }
        }
        section.verify aria-labelledby="verify-h" {
            h2 #verify-h { "Verify the chain" }
            form method="post" action="/ui/verify" {
                (page::csrf_field(&session))
                button type="submit" #verify { "Verify the whole ledger" }
                span.hint { " Recomputes every hash, the Merkle tree and every checkpoint signature." }
            }
        }
        h2 { "Requests, newest first" }
        @if listed.is_empty() {
            p #empty { "No request matches these filters"
                @if next.is_some() { " in the " (read) " most recent decisions read" } "." }
        } @else {
            div.table-wrap { table #ledger-table {
                thead { tr { th.num { "seq" } th { "time (UTC)" } th { "request" } th { "tenant / channel / product" } th { "class" } th { "host" } th { "status" } th { "clauses" } } }
                tbody {
                    @for l in &listed {
                        @let d = &l.decision;
                        @let status = status_of(d, l.outcome.as_ref());
                        tr data-status=(status) {
                            td.num { (l.seq) }
                            td { (page::time(d.at_ms)) }
                            td { a.mono href=(format!("/ui/ledger/{}", d.request_id)) { (d.request_id) } }
                            td { (d.tenant) " / " (d.channel) " / " (d.product) }
                            td { (d.workload_class) }
                            td { (treaty_ledger::host_of(d, l.outcome.as_ref())) }
                            td class=(if status == "refused" || status == "failed" { "refused" } else { "" }) { (status) }
                            td { (clause_list(d)) }
                        }
                    }
                }
            } }
        }
        @if let Some(next) = next {
            nav.pager aria-label="Pages" {
                a #older href=(format!("/ui/ledger?{}", f.query_string(Some(next)))) rel="next" { "Older →" }
                span.hint { "(" (read) " decisions read for this page)" }
            }
        }
    };
    page::layout("Ledger", &session, "/ui/ledger", body).into_response()
}

fn clause_list(d: &DecisionRecord) -> String {
    let (permitting, refusing) = treaty_ledger::clause_roles(d);
    let mut ids: Vec<&str> = permitting.into_iter().chain(refusing).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.join(", ")
}

/// A verdict as a word with its colour.
pub fn verdict(allowed: bool) -> Markup {
    html! { @if allowed { span.allowed { "allowed" } } @else { span.refused { "refused" } } }
}

pub async fn record(
    State(ui): State<Arc<Ui>>,
    session: Session,
    Path(request_id): Path<String>,
) -> Response {
    let store = &ui.engine.store;
    let rows = match store.ledger_records_of_request(&request_id).await {
        Ok(rows) => rows,
        Err(e) => return page::store_error(&e),
    };
    let Some((dseq, d)) = rows.iter().find_map(|r| decision_of(r).map(|d| (r.seq, d))) else {
        return page::error_page(
            StatusCode::NOT_FOUND,
            &format!("No decision is recorded for request {request_id}."),
        );
    };
    let outcome = outcome_of(&rows);
    let proof = treaty_ledger::prove_seq(store, dseq as u64).await;
    let contracts = ui.engine.policy.contracts();
    let title = |id: &str| -> String {
        contracts
            .and_then(|c| c.clause(id))
            .map(|c| format!("{id} ({})", c.title))
            .unwrap_or_else(|| id.to_owned())
    };
    let body = html! {
        p { a href=(format!("/ui/explain/{}", d.request_id)) #explain { "Why did this request go there? Explain it →" }
            @if let Some(run) = &d.run_id { " · " a href=(format!("/ui/runs/{run}")) { "its run " (run) } } }
        h2 { "Decision" }
        dl.facts {
            dt { "request" } dd.mono { (d.request_id) }
            dt { "time" } dd { (page::time(d.at_ms)) " UTC" }
            dt { "tenant / channel / product" } dd { (d.tenant) " / " (d.channel) " / " (d.product) }
            dt { "key" } dd.mono { (d.key_id) }
            dt { "route, model" } dd { code { (d.route) } " " (d.model) }
            dt { "workload class" } dd { (d.workload_class) " (rule " code { (d.classified_by) } ")" }
            dt { "data classification" } dd { (d.data_classification) }
            dt { "reading" } dd { (d.reading.as_deref().unwrap_or("(none)")) }
            dt { "admission" } dd { (verdict(d.admitted)) " " @for c in &d.admit_clauses { code { (title(c)) } " " } }
            dt { "chosen host" } dd { (d.chosen.as_deref().unwrap_or("(none)")) }
            @if let Some(r) = &d.refused { dt { "refused" } dd.refused { (r) } }
            @if let Some(i) = &d.instance { dt { "instance" } dd { (i) } }
        }
        h3 { "Every host's verdict" }
        table #hosts { thead { tr { th { "host" } th { "verdict" } th { "clauses" } } }
            tbody { @for h in &d.hosts { tr { td { (h.host) } td { (verdict(h.allowed)) } td { @for c in &h.clauses { code { (title(c)) } " " } } } } } }
        @if let Some(hold) = &d.runtime {
            h3 { "Hold verdict" }
            p { "State held on " (hold.instance) " (" (hold.cloud) "/" (hold.region) "): " (verdict(hold.allowed)) " "
                @for c in &hold.clauses { code { (title(c)) } " " } }
        }
        @if let Some(tool) = &d.tool {
            h3 { "Tool verdict" }
            p { (tool.kind) " " code { (tool.connector) "/" (tool.name) } ": " (verdict(tool.allowed)) " "
                @for c in &tool.clauses { code { (title(c)) } " " } }
        }
        @if !d.shadow.is_empty() {
            h3 { "Shadow readings (recorded, not enforced)" }
            table { thead { tr { th { "reading" } th { "class" } th { "admitted" } th { "allowed hosts" } th { "chosen" } th { "clauses" } } }
                tbody { @for s in &d.shadow { tr { td { (s.reading) } td { (s.workload_class) } td { (verdict(s.admitted)) } td { (s.allowed.join(", ")) } td { (s.chosen.as_deref().unwrap_or("–")) } td { (s.clauses.join(", ")) } } } } }
        }
        h2 { "Outcome" }
        @match &outcome {
            None => p { "No outcome is recorded (yet)." },
            Some(o) => {
                dl.facts {
                    dt { "status" } dd { (o.status) }
                    dt { "served by" } dd { (o.served_by.as_deref().unwrap_or("(none)")) }
                    dt { "tokens" } dd { (o.prompt_tokens) " in, " (o.completion_tokens) " out" }
                    dt { "cost" } dd { (page::usd(o.cost_micros)) }
                    dt { "latency" } dd { (format!("{:.1} ms", o.latency_us as f64 / 1000.0)) }
                    @if o.client_cancelled { dt { "client" } dd { "cancelled" } }
                    @if let Some(e) = &o.error { dt { "error" } dd.refused { code { (e) } } }
                }
                h3 { "Attempts" }
                table #attempts { thead { tr { th { "#" } th { "host" } th { "result" } th.num { "latency" } } }
                    tbody { @for (i, a) in o.attempts.iter().enumerate() { tr {
                        td { (i + 1) } td { (a.host) }
                        td { @match &a.error { None => span.ok { "answered" }, Some(e) => span.refused { "failed over: " code { (e) } } } }
                        td.num { (format!("{:.1} ms", a.latency_us as f64 / 1000.0)) }
                    } } } }
            }
        }
        h2 { "In the chain" }
        table #chain { thead { tr { th.num { "seq" } th { "kind" } th { "hash (SHA-256 over the previous hash, seq, kind and record)" } } }
            tbody { @for r in &rows { tr { td.num { (r.seq) } td { (r.kind) } td.mono { (hex::encode(&r.hash)) } } } } }
        h3 { "Inclusion proof of the decision" }
        @match &proof {
            Ok(p) => {
                dl.facts {
                    dt { "leaf index" } dd { (p.leaf_index) }
                    dt { "leaf hash" } dd.mono { (p.leaf_hash) }
                    dt { "tree size" } dd { (p.tree_size) }
                    dt { "audit path" } dd { ol { @for h in &p.hashes { li.mono { (h) } } } }
                }
                p { "Signed checkpoint:" }
                pre #checkpoint { (p.checkpoint) }
                p.hint { "Clients fetch the same proof from " code { "GET /v1/ledger/proofs/" (d.request_id) } " and check it offline with " code { "treaty receipt verify" } "." }
            }
            Err(treaty_ledger::ProofError::NotYetCheckpointed) => p #proof-pending { "Not under a signed checkpoint yet: the next checkpoint (every " (ui.engine.config.ledger.checkpoint_every) " records or " (format!("{:?}", ui.engine.config.ledger.checkpoint_interval)) ") will cover it." },
            Err(e) => p.refused { (e.to_string()) },
        }
    };
    page::layout(
        &format!("Request {}", d.request_id),
        &session,
        "/ui/ledger",
        body,
    )
    .into_response()
}

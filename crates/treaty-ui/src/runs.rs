//! `/ui/runs` and `/ui/runs/{id}`: agents' runs and a run's timeline.
//!
//! The timeline joins the run's events (created, model steps, tool calls,
//! approvals, completion) with the ledger's decisions about it: for each
//! model step the host that ran it, for each tool call its verdict, for
//! each hold of the run's state the instance (cloud, region) that held
//! it. Decisions are found by reading the ledger backwards from its head
//! to the run's start, at most [`SCAN_LIMIT`] decisions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use treaty_ledger::{DecisionRecord, Entry};

use crate::Ui;
use crate::auth::Session;
use crate::ledger::verdict;
use crate::page;

const BATCH: i64 = 1_000;
const SCAN_LIMIT: u64 = 100_000;
/// Runs listed on `/ui/runs`, found among the most recent decisions.
const RECENT: u64 = 5_000;

/// Decisions newer than `since_ms` (a minute of clock slack) that
/// `keep`, newest first, reading at most `limit`.
async fn recent_decisions(
    ui: &Ui,
    since_ms: i64,
    limit: u64,
    keep: impl Fn(&DecisionRecord) -> bool,
) -> Result<Vec<(i64, DecisionRecord)>, String> {
    let mut cursor = i64::MAX;
    let mut read = 0u64;
    let mut out = Vec::new();
    loop {
        let rows = ui
            .engine
            .store
            .ledger_records_before("decision", cursor, BATCH)
            .await
            .map_err(|e| e.to_string())?;
        for row in &rows {
            read += 1;
            cursor = row.seq;
            let Ok(Entry::Decision(d)) = treaty_ledger::decode(row) else {
                continue;
            };
            if d.at_ms < since_ms - 60_000 {
                return Ok(out);
            }
            if keep(&d) {
                out.push((row.seq, d));
            }
        }
        if (rows.len() as i64) < BATCH || read >= limit {
            return Ok(out);
        }
    }
}

pub async fn list(State(ui): State<Arc<Ui>>, session: Session) -> Response {
    let found = match recent_decisions(&ui, i64::MIN + 60_000, RECENT, |d| d.run_id.is_some()).await
    {
        Ok(f) => f,
        Err(e) => return page::store_error(&e),
    };
    // State ids (runs and agents) by their latest decision.
    let mut runs: BTreeMap<String, (i64, DecisionRecord, u64)> = BTreeMap::new();
    for (seq, d) in found {
        let Some(id) = d.run_id.clone() else { continue };
        let entry = runs.entry(id).or_insert((seq, d, 0));
        entry.2 += 1;
    }
    let mut runs: Vec<_> = runs.into_iter().collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.1.0));
    let body = html! {
        p.hint { "Agents and runs named by the " (RECENT) " most recent decisions." }
        @if runs.is_empty() { p { "No agent or run in the recent ledger." } }
        @else {
            table #runs { thead { tr { th { "id" } th { "tenant / channel / product" } th { "last decision" } th.num { "decisions" } } }
                tbody { @for (id, (_, d, n)) in &runs { tr {
                    td { a.mono href=(format!("/ui/runs/{id}")) { (id) } }
                    td { (d.tenant) " / " (d.channel) " / " (d.product) }
                    td { (page::time(d.at_ms)) }
                    td.num { (n) }
                } } } }
        }
    };
    page::layout("Agents and runs", &session, "/ui/runs", body).into_response()
}

pub async fn page(State(ui): State<Arc<Ui>>, session: Session, Path(id): Path<String>) -> Response {
    let store = &ui.engine.store;
    let mut run = None;
    for t in &ui.engine.config.tenants {
        match store.run(t.id.as_str(), &id).await {
            Ok(Some(r)) => {
                run = Some(r);
                break;
            }
            Ok(None) => {}
            Err(e) => return page::store_error(&e),
        }
    }
    let since = run.as_ref().map_or(i64::MIN + 60_000, |r| r.created_at);
    let mut decisions = match recent_decisions(&ui, since, SCAN_LIMIT, |d| {
        d.run_id.as_deref() == Some(id.as_str())
    })
    .await
    {
        Ok(f) => f,
        Err(e) => return page::store_error(&e),
    };
    decisions.reverse();
    if run.is_none() && decisions.is_empty() {
        return page::error_page(
            StatusCode::NOT_FOUND,
            &format!("No run or agent {id} is known."),
        );
    }
    let events = match &run {
        Some(_) => match store.run_events(&id, 0).await {
            Ok(e) => e,
            Err(e) => return page::store_error(&e),
        },
        None => Vec::new(),
    };
    // One timeline: events and decisions by time.
    enum Step<'a> {
        Event(&'a treaty_store::RunEventRow),
        Decision(i64, &'a DecisionRecord),
    }
    let mut steps: Vec<(i64, Step<'_>)> =
        events.iter().map(|e| (e.at_ms, Step::Event(e))).collect();
    steps.extend(
        decisions
            .iter()
            .map(|(seq, d)| (d.at_ms, Step::Decision(*seq, d))),
    );
    steps.sort_by_key(|(at, _)| *at);
    let config = &ui.engine.config;
    let place = |host: &str| {
        config
            .hosts
            .iter()
            .find(|h| h.id().as_str() == host)
            .map(|h| format!("{host} ({}/{})", h.host.cloud, h.host.region))
            .unwrap_or_else(|| host.to_owned())
    };
    let body = html! {
        @if let Some(r) = &run {
            dl.facts #run {
                dt { "status" } dd { (r.status) }
                dt { "agent" } dd { a.mono href=(format!("/ui/runs/{}", r.agent_id)) { (r.agent_id) } }
                dt { "tenant / channel / product" } dd { (r.tenant) " / " (r.channel) " / " (r.product) }
                dt { "created, updated" } dd { (page::time(r.created_at)) ", " (page::time(r.updated_at)) " UTC" }
            }
        }
        h2 { "Timeline" }
        ol.timeline #timeline {
            @for (at, step) in &steps {
                li {
                    span.hint { (page::time(*at)) " " }
                    @match step {
                        Step::Event(e) => { strong { (e.kind.replace('_', " ")) } },
                        Step::Decision(seq, d) => {
                            @if let Some(tool) = &d.tool {
                                strong { "tool call " } code { (tool.connector) "/" (tool.name) } " (" (tool.kind) "): " (verdict(tool.allowed)) " " (tool.clauses.join(", "))
                            } @else if let Some(hold) = &d.runtime {
                                strong { (d.operation.as_deref().unwrap_or("state")) } ": state held on " (hold.instance) " (" (hold.cloud) "/" (hold.region) "): " (verdict(hold.allowed)) " " (hold.clauses.join(", "))
                            } @else {
                                strong { @if d.model_step { "model step" } @else { "model call" } } " " (d.model) " ran on "
                                strong { (d.chosen.as_deref().map(place).unwrap_or_else(|| "no host (refused)".into())) }
                                " (" (d.workload_class) ")"
                            }
                            " · " a href=(format!("/ui/ledger/{}", d.request_id)) { "record " (seq) }
                        },
                    }
                }
            }
        }
    };
    page::layout(&format!("Run {id}"), &session, "/ui/runs", body).into_response()
}

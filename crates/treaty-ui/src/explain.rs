//! `/ui/explain/{request_id}`: why a recorded request went where it did.
//! Admission, class and the rule that set it, every host's verdict with
//! each clause's title, source text and place in the contract files, and
//! the hold verdict, as recorded; then the same request decided again
//! under another reading (`?reading=`), with what would change marked.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use treaty_contracts::Contracts;
use treaty_ledger::{DecisionRecord, Entry, Redecision};

use crate::Ui;
use crate::auth::Session;
use crate::ledger::verdict;
use crate::page;

/// A serialised enum's name (`forbid`, `placement`, ...).
pub fn name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub struct ReadingQuery {
    #[serde(default)]
    reading: String,
}

/// The clauses named, each with its title, source and file.
fn clause_cells(contracts: Option<&Contracts>, ids: &[String]) -> Markup {
    html! {
        @if ids.is_empty() { span.hint { "no clause" } }
        @for id in ids {
            @match contracts.and_then(|c| c.clause(id)) {
                Some(c) => div.clause data-clause=(id) {
                    strong { (id) } " " (c.title) " "
                    span.hint { "(" (name(&c.effect)) ", " (c.window) ", " (c.file) ":" (c.line) ")" }
                    @if !c.source.is_empty() { blockquote { (c.source) } }
                },
                None => div.clause data-clause=(id) { strong { (id) } },
            }
        }
    }
}

pub async fn page(
    State(ui): State<Arc<Ui>>,
    session: Session,
    Path(request_id): Path<String>,
    Query(q): Query<ReadingQuery>,
) -> Response {
    let rows = match ui.engine.store.ledger_records_of_request(&request_id).await {
        Ok(rows) => rows,
        Err(e) => return page::store_error(&e),
    };
    let Some(d) = rows.iter().find_map(|r| match treaty_ledger::decode(r) {
        Ok(Entry::Decision(d)) => Some(d),
        _ => None,
    }) else {
        return page::error_page(
            StatusCode::NOT_FOUND,
            &format!("No decision is recorded for request {request_id}."),
        );
    };
    let names = ui.readings.names();
    let recorded_reading = d.reading.clone().unwrap_or_default();
    // The clauses' text comes from the reading the decision was made
    // under, when it is still on disk.
    let recorded_policy = ui.readings.policy(&recorded_reading).ok();
    let recorded_contracts = recorded_policy
        .as_ref()
        .and_then(|p| p.contracts())
        .or(ui.engine.policy.contracts());
    let other = (!q.reading.is_empty()).then(|| {
        ui.readings
            .policy(&q.reading)
            .map(|p| (treaty_policy::redecide(&p, &d), p))
    });
    let body = html! {
        p { a href=(format!("/ui/ledger/{}", d.request_id)) { "← the request's records" } }
        h2 { "As recorded, under reading " code { (recorded_reading) } }
        dl.facts #recorded {
            dt { "request" } dd { (d.tenant) " / " (d.channel) " / " (d.product) ", " code { (d.route) } " " (d.model) ", " (page::time(d.at_ms)) " UTC" }
            dt { "admission" } dd { (verdict(d.admitted)) (clause_cells(recorded_contracts, &d.admit_clauses)) }
            dt { "workload class" } dd { strong { (d.workload_class) } ", set by rule " code { (d.classified_by) } }
            dt { "data classification" } dd { (d.data_classification) }
            dt { "host chosen" } dd { (d.chosen.as_deref().unwrap_or("(none)")) }
        }
        h3 { "Every host's verdict" }
        div.table-wrap { table #verdicts {
            thead { tr { th { "host" } th { "cloud / region" } th { "verdict" } th { "clauses" } } }
            tbody { @for h in &d.hosts {
                @let place = ui.engine.config.hosts.iter().find(|c| c.id().as_str() == h.host).map(|c| format!("{} / {}", c.host.cloud, c.host.region)).unwrap_or_default();
                tr { td { (h.host) @if d.chosen.as_deref() == Some(h.host.as_str()) { " ★" } } td { (place) } td { (verdict(h.allowed)) } td { (clause_cells(recorded_contracts, &h.clauses)) } }
            } }
        } }
        h3 { "Hold verdict" }
        @match &d.runtime {
            Some(hold) => p #hold { "May " (hold.instance) " (" (hold.cloud) "/" (hold.region) ") hold this state? " (verdict(hold.allowed)) (clause_cells(recorded_contracts, &hold.clauses)) },
            None => p #hold { "This request holds no state (a stateless call): no hold verdict." },
        }
        @if let Some(tool) = &d.tool {
            h3 { "Tool verdict" }
            p { (tool.kind) " " code { (tool.connector) "/" (tool.name) } ": " (verdict(tool.allowed)) (clause_cells(recorded_contracts, &tool.clauses)) }
        }
        h2 { "Under another reading" }
        form.filters method="get" action=(format!("/ui/explain/{}", d.request_id)) {
            label for="reading" { "reading"
                select #reading name="reading" data-autosubmit {
                    option value="" { "choose…" }
                    @for n in &names { option value=(n) selected[*n == q.reading] { (n) @if Some(n.as_str()) == ui.readings.in_force() { " (in force)" } } }
                }
            }
            noscript { button type="submit" { "Decide again" } }
        }
        @match &other {
            None => p.hint { "Pick a reading to decide this request again under it." },
            Some(Err(e)) => p.error role="alert" { (e) },
            Some(Ok((r, p))) => (compare(&d, r, &q.reading, p.contracts())),
        }
    };
    page::layout(
        &format!("Explain {}", d.request_id),
        &session,
        "/ui/ledger",
        body,
    )
    .into_response()
}

/// The recorded decision beside the same request decided under `reading`.
fn compare(
    d: &DecisionRecord,
    r: &Redecision,
    reading: &str,
    contracts: Option<&Contracts>,
) -> Markup {
    let changed = |a: bool| if a { "changed" } else { "" };
    let was_runs = d.admitted && d.refused.is_none();
    html! {
        section #redecided data-reading=(reading) {
            p #summary { @if r.admitted == d.admitted && r.chosen == d.chosen && r.workload_class == d.workload_class
                && r.hosts.iter().zip(&d.hosts).all(|(a, b)| a.allowed == b.allowed) {
                    "Nothing changes under " code { (reading) } "."
                } @else {
                    "Under " code { (reading) } ": "
                    @if !r.admitted && was_runs { strong.refused { "it would be refused" } }
                    @else if r.admitted && !d.admitted { strong.allowed { "it would be admitted" } }
                    @else if r.chosen != d.chosen { "it would run on " strong { (r.chosen.as_deref().unwrap_or("no host")) } " instead of " (d.chosen.as_deref().unwrap_or("no host")) }
                    @else { "the verdicts change (below)" }
                    "."
                }
            }
            table {
                thead { tr { th { "" } th { "recorded" } th { "under " (reading) } } }
                tbody {
                    tr class=(changed(d.admitted != r.admitted)) { th { "admission" } td { (verdict(d.admitted)) } td { (verdict(r.admitted)) (clause_cells(contracts, &r.admit_clauses)) } }
                    tr class=(changed(d.workload_class != r.workload_class)) { th { "class" } td { (d.workload_class) } td { (r.workload_class) } }
                    tr class=(changed(d.chosen != r.chosen)) { th { "host" } td { (d.chosen.as_deref().unwrap_or("(none)")) } td { (r.chosen.as_deref().unwrap_or("(none)")) } }
                    @for h in &r.hosts {
                        @let before = d.hosts.iter().find(|b| b.host == h.host);
                        tr class=(changed(before.is_none_or(|b| b.allowed != h.allowed))) {
                            th { (h.host) }
                            td { @if let Some(b) = before { (verdict(b.allowed)) " " (b.clauses.join(", ")) } }
                            td { (verdict(h.allowed)) (clause_cells(contracts, &h.clauses)) }
                        }
                    }
                    @if let Some(hold) = &r.runtime {
                        tr class=(changed(d.runtime.as_ref().is_none_or(|b| b.allowed != hold.allowed))) {
                            th { "hold" }
                            td { @if let Some(b) = &d.runtime { (verdict(b.allowed)) } }
                            td { (verdict(hold.allowed)) (clause_cells(contracts, &hold.clauses)) }
                        }
                    }
                }
            }
        }
    }
}

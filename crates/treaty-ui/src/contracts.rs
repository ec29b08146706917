//! `/ui/contracts`: every reading's clauses with their effective windows
//! and the findings of `treaty contracts check` (dead zones, clauses
//! that never apply, shadowed clauses with their counterexamples),
//! without the external solver, which a page must not wait for.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use treaty_contracts::CheckOptions;

use crate::Ui;
use crate::auth::Session;
use crate::explain::name;
use crate::page;

pub async fn page(State(ui): State<Arc<Ui>>, session: Session) -> Response {
    let names = ui.readings.names();
    let body = html! {
        @if names.is_empty() {
            p { "No contracts are configured: every host is allowed." }
        }
        nav aria-label="Readings" { ul { @for n in &names { li { a href=(format!("#reading-{n}")) { (n) } } } } }
        @for n in &names {
            section id=(format!("reading-{n}")) aria-labelledby=(format!("h-{n}")) {
                h2 id=(format!("h-{n}")) { "Reading " code { (n) }
                    @if Some(n.as_str()) == ui.readings.in_force() { " (in force)" } }
                @match ui.readings.policy(n) {
                    Err(e) => p.error { (e) },
                    Ok(p) => @match p.contracts() {
                        None => p { "No clauses." },
                        Some(c) => {
                            div.table-wrap { table.clauses {
                                thead { tr { th { "clause" } th { "title" } th { "effect" } th { "kind" } th { "actions" } th { "in effect" } th { "source" } th { "file" } } }
                                tbody { @for cl in c.clauses() { tr data-clause=(cl.id.as_str()) {
                                    td { strong { (cl.id.as_str()) } }
                                    td { (cl.title) }
                                    td { (name(&cl.effect)) }
                                    td { (name(&cl.kind)) }
                                    td { (cl.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")) }
                                    td { (cl.window) }
                                    td { (cl.source) }
                                    td.mono { (cl.file) ":" (cl.line) }
                                } } }
                            } }
                            @let report = c.check(&CheckOptions { use_solver: false, ..CheckOptions::default() });
                            h3 { "Check: " (report.errors().count()) " errors, " (report.warnings().count()) " warnings" }
                            @if report.findings.is_empty() { p.ok { "No finding." } }
                            @else {
                                ul.findings { @for f in &report.findings {
                                    li class=(if f.severity == treaty_contracts::Severity::Error { "refused" } else { "" }) {
                                        strong { (f.severity) } " " (name(&f.kind)) " "
                                        @if !f.clauses.is_empty() { "(" (f.clauses.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")) ") " }
                                        (f.message)
                                        @if let Some(cx) = &f.counterexample { pre { (serde_json::to_string_pretty(cx).unwrap_or_default()) } }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    page::layout("Contracts", &session, "/ui/contracts", body).into_response()
}

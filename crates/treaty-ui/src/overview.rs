//! `/ui`: traffic over time by host and by channel, refusals by clause,
//! latency percentiles, errors, spend against budgets and the circuit
//! breakers, over a picked time range; the live part is a fragment the
//! page fetches again every few seconds.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use treaty_ledger::svg;
use treaty_router::HostState;

use crate::Ui;
use crate::auth::Session;
use crate::page;

/// Columns in the time charts.
const BUCKETS: usize = 24;

#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    #[serde(default = "default_range")]
    range: String,
}

fn default_range() -> String {
    "1h".into()
}

pub async fn page(
    State(ui): State<Arc<Ui>>,
    session: Session,
    Query(q): Query<RangeQuery>,
) -> Response {
    let live = match fragment_markup(&ui, &q.range).await {
        Ok(m) => m,
        Err(e) => return page::store_error(&e),
    };
    let body = html! {
        form.filters method="get" action="/ui" {
            label for="range" { "Time range" (page::range_select("range", &q.range)) }
            noscript { button type="submit" { "Show" } }
        }
        div #live data-refresh=(format!("/ui/overview/fragment?range={}", q.range)) data-every="5" aria-live="polite" {
            (live)
        }
    };
    page::layout("Overview", &session, "/ui", body).into_response()
}

pub async fn fragment(
    State(ui): State<Arc<Ui>>,
    _: Session,
    Query(q): Query<RangeQuery>,
) -> Response {
    match fragment_markup(&ui, &q.range).await {
        Ok(m) => Html(m.into_string()).into_response(),
        Err(e) => page::store_error(&e),
    }
}

/// What the range's requests add up to.
#[derive(Default)]
struct Tally {
    requests: u64,
    served: u64,
    refused: u64,
    failed: u64,
    by_host: BTreeMap<String, Vec<u64>>,
    by_channel: BTreeMap<String, Vec<u64>>,
    refusals: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    latencies_us: Vec<u64>,
    cost_micros: i64,
}

async fn fragment_markup(ui: &Ui, range: &str) -> Result<Markup, String> {
    let engine = &ui.engine;
    let now = treaty_domain::now_ms();
    // Outcomes are written after their decisions: flush so a request just
    // answered is counted.
    let since = page::range_since(range, now);
    let (start, span) = match since {
        Some(s) => (s, (now - s).max(1)),
        None => {
            let first = engine
                .store
                .ledger_span("decision", i64::MIN, i64::MAX)
                .await
                .map_err(|e| e.to_string())?
                .1
                .unwrap_or(now);
            (first, (now - first).max(1) + 1)
        }
    };
    let width = (span as f64 / BUCKETS as f64).ceil().max(1.0) as i64;
    let bucket = |at: i64| (((at - start) / width).clamp(0, BUCKETS as i64 - 1)) as usize;
    let mut t = Tally::default();
    treaty_ledger::each_request(
        &engine.store,
        treaty_ledger::TimeRange::new(since, None),
        |d, o| {
            let fate = treaty_ledger::fate(d, o);
            let status = crate::ledger::status_of(d, o);
            t.requests += 1;
            t.served += u64::from(status == "served");
            t.refused += u64::from(status == "refused");
            t.failed += u64::from(status == "failed");
            let b = bucket(d.at_ms);
            let host = treaty_ledger::host_of(d, o).into_owned();
            t.by_host.entry(host).or_insert_with(|| vec![0; BUCKETS])[b] += 1;
            t.by_channel
                .entry(d.channel.clone())
                .or_insert_with(|| vec![0; BUCKETS])[b] += 1;
            if fate.refused {
                for c in treaty_ledger::refusal_causes(d) {
                    *t.refusals.entry(c).or_default() += 1;
                }
            }
            if let Some(o) = o {
                t.cost_micros += o.cost_micros;
                if fate.served {
                    t.latencies_us.push(o.latency_us);
                }
                if status == "failed" {
                    let what = o
                        .error
                        .clone()
                        .unwrap_or_else(|| format!("status {}", o.status));
                    *t.errors.entry(what).or_default() += 1;
                }
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    t.latencies_us.sort_unstable();
    let pct = |p: f64| -> String {
        if t.latencies_us.is_empty() {
            return "–".into();
        }
        let i = ((t.latencies_us.len() - 1) as f64 * p).round() as usize;
        format!("{:.1} ms", t.latencies_us[i] as f64 / 1000.0)
    };
    let labels: Vec<String> = (0..BUCKETS)
        .map(|b| page::time(start + width * b as i64)[11..16].to_owned())
        .collect();
    let series = |m: &BTreeMap<String, Vec<u64>>| -> Vec<svg::Series> {
        m.iter()
            .map(|(name, values)| svg::Series {
                name: name.clone(),
                values: values.clone(),
            })
            .collect()
    };
    let names = |m: &BTreeMap<String, Vec<u64>>| m.keys().cloned().collect::<Vec<_>>();
    let mut refusals: Vec<(String, u64)> = t.refusals.into_iter().collect();
    refusals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let budgets = treaty_limits::list_budgets(&engine.store, now)
        .await
        .map_err(|e| e.to_string())?;
    Ok(html! {
        div.cards {
            div.card { "Requests" b data-metric="requests" { (t.requests) } }
            div.card { "Served" b.ok { (t.served) } }
            div.card { "Refused" b.refused { (t.refused) } }
            div.card { "Failed" b.bad { (t.failed) } }
            div.card { "Cost" b { (page::usd(t.cost_micros)) } }
            div.card { "Latency p50 / p90 / p99" b { (pct(0.5)) } span { (pct(0.9)) " / " (pct(0.99)) } }
        }
        div.grid {
            section aria-labelledby="by-host" {
                h2 #by-host { "Requests over time by host" }
                (page::trusted(svg::stacked_columns(&labels, &series(&t.by_host))))
                (page::trusted(svg::legend(&names(&t.by_host))))
            }
            section aria-labelledby="by-channel" {
                h2 #by-channel { "Requests over time by channel" }
                (page::trusted(svg::stacked_columns(&labels, &series(&t.by_channel))))
                (page::trusted(svg::legend(&names(&t.by_channel))))
            }
        }
        div.grid {
            section aria-labelledby="refusals" {
                h2 #refusals { "Refusals by clause" }
                (page::trusted(svg::bars(&refusals, "#e15759")))
            }
            section aria-labelledby="errors" {
                h2 #errors { "Errors" }
                @if t.errors.is_empty() { p { "No request failed in this range." } }
                @else {
                    table { thead { tr { th { "error" } th.num { "requests" } } }
                        tbody { @for (e, n) in &t.errors { tr { td { code { (e) } } td.num { (n) } } } } }
                }
            }
        }
        div.grid {
            section aria-labelledby="budgets" {
                h2 #budgets { "Spend against budgets" }
                @if budgets.is_empty() {
                    p { "No budget is set. Budgets come from " code { "[[budgets]]" } " in the config, " code { "treaty budgets set" } " or " code { "POST /admin/budgets" } "." }
                } @else {
                    (budget_table(&budgets))
                }
            }
            section aria-labelledby="breakers" {
                h2 #breakers { "Circuit breakers" }
                table { thead { tr { th { "host" } th { "cloud / region" } th { "state" } th.num { "failures in a row" } th.num { "latency (EWMA)" } } }
                    tbody {
                        @for (i, h) in engine.router.hosts().iter().enumerate() {
                            @let health = engine.router.health(i);
                            tr {
                                td { (h.id.as_str()) }
                                td { (h.cloud) " / " (h.region) }
                                td data-breaker=(h.id.as_str()) { @match health.state() {
                                    HostState::Closed => span.ok { "closed" },
                                    HostState::HalfOpen => span.refused { "half-open" },
                                    HostState::Open => span.bad { "open" },
                                } }
                                td.num { (health.consecutive_failures()) }
                                td.num { (format!("{:.1} ms", health.ewma_micros() as f64 / 1000.0)) }
                            }
                        }
                    }
                }
            }
        }
        p.hint { "Updated " (page::time(now)) " UTC." }
    })
}

pub fn budget_table(budgets: &[treaty_limits::BudgetView]) -> Markup {
    html! {
        table { thead { tr { th { "budget" } th.num { "spent" } th.num { "limit" } th { "use" } th { "resets" } } }
            tbody {
                @for b in budgets {
                    @let used = if b.limit_micros > 0 { (b.spent_micros as f64 / b.limit_micros as f64 * 100.0).min(100.0) } else { 0.0 };
                    tr {
                        td { code { (b.id) } }
                        td.num { (b.spent_usd) }
                        td.num { (b.limit_usd) }
                        td { meter min="0" max="100" value=(format!("{used:.0}")) aria-label=(format!("{used:.0}% of {}", b.id)) {} " " (format!("{used:.0}%")) }
                        td { (b.resets_at.as_deref().unwrap_or("never")) }
                    }
                }
            }
        }
    }
}

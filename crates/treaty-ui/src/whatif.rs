//! `/ui/whatif`: `treaty contracts simulate` between two readings over a
//! time range, shown as flows: where each recorded request runs under the
//! first reading against where it would run under the second (kept,
//! moved from host to host, refused, admitted), then per clause and per
//! tenant × channel × product × class.
//!
//! It only reads: a GET, so any role may run it. The replay runs while
//! the page waits, which suits the demo's and a day's ledger; a whole
//! large ledger belongs to the CLI (`treaty contracts simulate`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use treaty_ledger::{HostMove, Impact, Redecision, svg};

use crate::Ui;
use crate::auth::Session;
use crate::page;

#[derive(Debug, Deserialize)]
pub struct WhatIfQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default = "all")]
    range: String,
}

fn all() -> String {
    "all".into()
}

/// Where a decision leaves a request: its host, the state it holds or
/// the tool it calls, or refused.
fn place(r: &Redecision) -> String {
    if !r.runs() {
        return "refused".into();
    }
    if r.tool.is_some() {
        return "(tool call)".into();
    }
    if let Some(hold) = &r.runtime {
        return format!("(held on {})", hold.instance);
    }
    r.chosen.clone().unwrap_or_else(|| "refused".into())
}

pub async fn page(
    State(ui): State<Arc<Ui>>,
    session: Session,
    Query(q): Query<WhatIfQuery>,
) -> Response {
    let names = ui.readings.names();
    let in_force = ui.readings.in_force().unwrap_or_default().to_owned();
    let from = if q.from.is_empty() {
        in_force.clone()
    } else {
        q.from.clone()
    };
    let picker = |field: &str, current: &str| -> Markup {
        html! {
            label { (field) " reading"
                select name=(field) { @for n in &names { option value=(n) selected[*n == current] { (n) } } }
            }
        }
    };
    let result = if q.to.is_empty() {
        None
    } else {
        Some(run(&ui, &from, &q.to, &q.range).await)
    };
    let body = html! {
        form.filters #whatif-form method="get" action="/ui/whatif" {
            (picker("from", &from))
            (picker("to", &q.to))
            label for="range" { "recorded in" (page::range_select("range", &q.range)) }
            button type="submit" { "Simulate" }
        }
        @match &result {
            None => p.hint { "Pick the reading to compare with: every recorded decision in the range is decided again under both." },
            Some(Err(e)) => p.error role="alert" { (e) },
            Some(Ok(m)) => (m),
        }
    };
    page::layout("What-if", &session, "/ui/whatif", body).into_response()
}

async fn run(ui: &Ui, from: &str, to: &str, range: &str) -> Result<Markup, String> {
    let a = ui.readings.policy(from)?;
    let b = ui.readings.policy(to)?;
    let since = page::range_since(range, treaty_domain::now_ms());
    let flows: Mutex<BTreeMap<(String, String), u64>> = Mutex::default();
    let decide_from = |d: &treaty_ledger::DecisionRecord| treaty_policy::redecide(&a, d);
    // The flows need both verdicts of one request together; the replay
    // hands them over one side at a time, so the `to` side decides the
    // `from` side again to pair them.
    let decide_to = |d: &treaty_ledger::DecisionRecord| {
        let before = treaty_policy::redecide(&a, d);
        let after = treaty_policy::redecide(&b, d);
        if let Ok(mut f) = flows.lock() {
            *f.entry((place(&before), place(&after))).or_default() += 1;
        }
        after
    };
    let report = treaty_ledger::simulate_in(
        &ui.engine.store,
        treaty_ledger::TimeRange::new(since, None),
        &decide_from,
        &decide_to,
        |_, _| {},
    )
    .await
    .map_err(|e| e.to_string())?;
    let flows = flows.into_inner().unwrap_or_default();
    let t = &report.total;
    Ok(html! {
        section #whatif-result {
            div.cards {
                div.card { "Requests" b #wi-requests { (t.requests) } }
                div.card { "Keep their host" b.ok { (t.keep) } }
                div.card { "Move" b { (t.moved) } }
                div.card { "Become refused" b.refused { (t.became_refused) } }
                div.card { "Become admitted" b.allowed { (t.became_admitted) } }
                div.card { "Stay refused" b { (t.stayed_refused) } }
            }
            h2 { "Flows: " code { (from) } " → " code { (to) } }
            (page::trusted(flow_chart(&flows)))
            h2 { "Per clause" }
            (impact_table("clause", report.by_clause.iter().map(|c| (c.clause.clone(), &c.impact, c.moves.as_slice()))))
            h2 { "Per tenant × channel × product × class" }
            (impact_table("tenant / channel / product / class", report.by_group.iter().map(|g| (format!("{} / {} / {} / {}", g.tenant, g.channel, g.product, g.class), &g.impact, g.moves.as_slice()))))
        }
    })
}

fn impact_table<'a>(
    what: &str,
    rows: impl Iterator<Item = (String, &'a Impact, &'a [HostMove])>,
) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr { th { (what) } th.num { "requests" } th.num { "keep" } th.num { "move" } th.num { "become refused" } th.num { "become admitted" } th.num { "stay refused" } th { "moves" } } }
            tbody { @for (key, i, moves) in rows {
                tr class=(if i.changed() > 0 { "changed" } else { "" }) {
                    td { (key) } td.num { (i.requests) } td.num { (i.keep) } td.num { (i.moved) }
                    td.num { (i.became_refused) } td.num { (i.became_admitted) } td.num { (i.stayed_refused) }
                    td { @for m in moves { (m.from) " → " (m.to) ": " (m.requests) br; } }
                }
            } }
        } }
    }
}

/// Two columns of places (before, after) joined by bands as wide as the
/// requests that go from one to the other.
fn flow_chart(flows: &BTreeMap<(String, String), u64>) -> String {
    const W: f64 = 960.0;
    const NODE: f64 = 14.0;
    const GAP: f64 = 14.0;
    const LEFT: f64 = 220.0;
    const RIGHT: f64 = 220.0;
    let total: u64 = flows.values().sum();
    if total == 0 {
        return r#"<p>No recorded decision in this range.</p>"#.into();
    }
    let mut lefts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut rights: BTreeMap<&str, u64> = BTreeMap::new();
    for ((a, b), n) in flows {
        *lefts.entry(a).or_default() += n;
        *rights.entry(b).or_default() += n;
    }
    let gaps = lefts.len().max(rights.len()) as f64 * GAP;
    let h = 360.0f64.max(gaps + 60.0);
    let scale = (h - gaps - 20.0) / total as f64;
    let layout = |nodes: &BTreeMap<&str, u64>| -> BTreeMap<String, f64> {
        let mut y = 10.0;
        nodes
            .iter()
            .map(|(k, n)| {
                let at = y;
                y += *n as f64 * scale + GAP;
                ((*k).to_owned(), at)
            })
            .collect()
    };
    let ly = layout(&lefts);
    let ry = layout(&rights);
    let colour: BTreeMap<&str, &str> = lefts
        .keys()
        .chain(rights.keys())
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            (
                k,
                if k == "refused" {
                    "#a4161a"
                } else {
                    svg::color(i)
                },
            )
        })
        .collect();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart flows" viewBox="0 0 {W} {h}" role="img" aria-label="Where recorded requests run under each reading">"#
    );
    let mut lo: BTreeMap<String, f64> = ly.clone();
    let mut ro: BTreeMap<String, f64> = ry.clone();
    let x0 = LEFT;
    let x1 = W - RIGHT;
    for ((a, b), n) in flows {
        let band = *n as f64 * scale;
        let (Some(ya), Some(yb)) = (lo.get_mut(a), ro.get_mut(b)) else {
            continue;
        };
        let (y0, y1) = (*ya + band / 2.0, *yb + band / 2.0);
        *ya += band;
        *yb += band;
        let mid = (x0 + x1) / 2.0;
        let kept = a == b;
        let _ = write!(
            s,
            r#"<path d="M{:.1},{y0:.1} C{mid:.1},{y0:.1} {mid:.1},{y1:.1} {:.1},{y1:.1}" stroke="{}" stroke-opacity="{}" stroke-width="{:.1}" fill="none"><title>{} → {}: {n}</title></path>"#,
            x0 + NODE,
            x1,
            colour.get(a.as_str()).copied().unwrap_or("#888"),
            if kept { "0.25" } else { "0.6" },
            band.max(1.0),
            svg::esc(a),
            svg::esc(b)
        );
    }
    for (nodes, ys, x, anchor, tx) in [
        (&lefts, &ly, x0, "end", x0 - 6.0),
        (&rights, &ry, x1, "start", x1 + NODE + 6.0),
    ] {
        for (k, n) in nodes {
            let y = ys.get(*k).copied().unwrap_or(0.0);
            let hh = (*n as f64 * scale).max(1.0);
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{NODE}" height="{hh:.1}" fill="{}"><title>{}: {n}</title></rect><text x="{tx:.1}" y="{:.1}" class="label" text-anchor="{anchor}">{} ({n})</text>"#,
                colour.get(k).copied().unwrap_or("#888"),
                svg::esc(k),
                y + hh / 2.0 + 4.0,
                svg::esc(k)
            );
        }
    }
    s.push_str("</svg>");
    s
}

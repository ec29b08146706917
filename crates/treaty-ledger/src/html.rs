//! `html_report`: one self-contained HTML page with charts of the ledger.
//!
//! The page holds traffic per host and per channel over time (stacked
//! columns), refusals per clause, the share of each workload class per
//! host, a table per host (operations on held state and tool calls under
//! the instance that carried them out, counted as `state`, not as served
//! or failed), and, when decisions carry shadow readings
//! (`contracts.shadow`), where each parts from the reading in force, with
//! the chain's head and the checkpoint key at the bottom so a reader knows
//! which ledger state it describes.
//! It is one file with inline CSS and inline SVG drawn by `svg`: no
//! script, no stylesheet link, no font or image fetched from anywhere, so
//! it opens the same offline, in a mail attachment or in an audit folder.
//! The time buckets are chosen so a chart has at most about 60 columns.
//! Building it only reads the ledger.

use std::collections::BTreeMap;
use std::fmt::Write;

use treaty_store::Store;

use crate::LedgerError;
use crate::buckets::{self, MAX_BUCKETS};
use crate::divergence::{self, Partings};
use crate::export::rfc3339;
use crate::report::ReportRow;
use crate::scan::{self, TimeRange};
use crate::svg::{self, Series, esc};

/// Series beyond this many are summed into "other".
const MAX_SERIES: usize = 9;

#[derive(Default)]
struct Data {
    total: ReportRow,
    /// bucket -> host -> requests
    by_host: BTreeMap<String, BTreeMap<i64, u64>>,
    by_channel: BTreeMap<String, BTreeMap<i64, u64>>,
    refusals: BTreeMap<String, u64>,
    /// host -> class -> requests
    classes: BTreeMap<String, BTreeMap<String, u64>>,
    hosts: BTreeMap<String, ReportRow>,
    partings: Partings,
}

/// Renders the report for requests decided in `[since, until)` (unix ms).
pub async fn html_report(
    store: &Store,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<String, LedgerError> {
    let range = TimeRange::new(since, until);
    let (lo, hi) = buckets::decision_span(store, range)
        .await?
        .unwrap_or((0, 0));
    let (width, width_name) = buckets::width_for_span(lo, hi);
    let start = buckets::start_of(lo, width);
    let buckets = ((hi - start) / width + 1).clamp(1, 10 * MAX_BUCKETS) as usize;

    let mut data = Data::default();
    scan::each_request(store, range, |d, o| {
        let bucket = ((d.at_ms - start) / width).clamp(0, buckets as i64 - 1);
        let host = scan::host_of(d, o).into_owned();
        let fate = scan::fate(d, o);
        data.total.add(d, o);
        data.hosts.entry(host.clone()).or_default().add(d, o);
        data.partings.add(d, o);
        *data
            .by_host
            .entry(host.clone())
            .or_default()
            .entry(bucket)
            .or_default() += 1;
        *data
            .by_channel
            .entry(d.channel.clone())
            .or_default()
            .entry(bucket)
            .or_default() += 1;
        if fate.refused {
            for cause in scan::refusal_causes(d) {
                *data.refusals.entry(cause).or_default() += 1;
            }
        } else {
            *data
                .classes
                .entry(host)
                .or_default()
                .entry(d.workload_class.clone())
                .or_default() += 1;
        }
    })
    .await?;

    let labels: Vec<String> = (0..buckets)
        .map(|b| bucket_label(start + b as i64 * width, width))
        .collect();
    let head = store.ledger_head().await?;
    let key = crate::key::active_key(store)
        .await?
        .map(|k| crate::PublicKey(k.key));
    Ok(page(&data, &labels, width_name, range, &head, key))
}

fn bucket_label(at_ms: i64, width: i64) -> String {
    let text = rfc3339(at_ms);
    // "2026-01-01T10:15:00Z": the date for day buckets, else date and time.
    if width >= 86_400_000 {
        text.chars().take(10).collect()
    } else {
        text.chars()
            .skip(5)
            .take(11)
            .collect::<String>()
            .replace('T', " ")
    }
}

/// The biggest series first, the rest summed into "other".
fn series(by: &BTreeMap<String, BTreeMap<i64, u64>>, buckets: usize) -> Vec<Series> {
    let mut all: Vec<(u64, Series)> = by
        .iter()
        .map(|(name, counts)| {
            let mut values = vec![0u64; buckets];
            for (&b, &n) in counts {
                if let Some(v) = values.get_mut(b as usize) {
                    *v += n;
                }
            }
            (
                values.iter().sum(),
                Series {
                    name: name.clone(),
                    values,
                },
            )
        })
        .collect();
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.name.cmp(&b.1.name)));
    let mut out: Vec<Series> = Vec::new();
    for (i, (_, s)) in all.into_iter().enumerate() {
        if i < MAX_SERIES {
            out.push(s);
        } else if i == MAX_SERIES {
            out.push(Series {
                name: "other".into(),
                values: s.values,
            });
        } else if let Some(other) = out.last_mut() {
            for (o, v) in other.values.iter_mut().zip(s.values) {
                *o += v;
            }
        }
    }
    out
}

fn money(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2733;background:#f6f7f9}
main{max-width:1040px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.sub{color:#5b6573;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:10px 14px;min-width:110px}
.card b{display:block;font-size:20px}.card span{color:#5b6573;font-size:12px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:12px 16px}
.chart{width:100%;height:auto;display:block}
.axis{font-size:11px;fill:#5b6573}.label{font-size:12px;fill:#1d2733}.inbar{font-size:11px;fill:#fff}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin-top:6px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:right;padding:4px 8px;border-bottom:1px solid #eceef1}
th:first-child,td:first-child{text-align:left}
footer{color:#5b6573;font-size:12px;margin-top:24px;word-break:break-all}
";

/// Partings listed in the page's table; the rest are counted and left to
/// `treaty ledger report --by divergence`.
const MAX_PARTINGS: usize = 50;

/// Where each shadow reading parts from the reading in force: the
/// sentences, then the groups.
fn shadows(h: &mut String, partings: &Partings) {
    h.push_str("<h2>Where the shadow readings part</h2><section>");
    if partings.is_empty() {
        h.push_str(
            "<p>No decision in this range carries a shadow reading. Set \
             <code>contracts.shadow</code> to decide each request under other readings too.</p>\
             </section>",
        );
        return;
    }
    let rows = partings.rows();
    h.push_str("<ul>");
    for line in divergence::divergence_summary(&rows)
        .iter()
        .take(MAX_PARTINGS)
    {
        let _ = write!(h, "<li>{}</li>", esc(line));
    }
    h.push_str(
        "</ul><table><tr><th>shadow</th><th>in force</th><th>parting</th><th>host</th>\
         <th>shadow host</th><th>class</th><th>clauses</th><th>shadow clauses</th>\
         <th>requests</th><th>cost</th></tr>",
    );
    for row in rows.iter().take(MAX_PARTINGS) {
        let Some(v) = &row.divergence else {
            continue;
        };
        let class = if v.class == v.shadow_class {
            v.class.clone()
        } else {
            format!("{} / {}", v.class, v.shadow_class)
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&v.shadow),
            esc(&v.reading),
            v.parting.as_str(),
            esc(v.host.as_deref().unwrap_or("-")),
            esc(v.shadow_host.as_deref().unwrap_or("-")),
            esc(&class),
            esc(&v.clauses.join(", ")),
            esc(&v.shadow_clauses.join(", ")),
            row.requests,
            money(row.cost_micros)
        );
    }
    h.push_str("</table>");
    if rows.len() > MAX_PARTINGS {
        let _ = write!(
            h,
            "<p>{} more groups: <code>treaty ledger report --by divergence</code> lists them all.</p>",
            rows.len() - MAX_PARTINGS
        );
    }
    h.push_str("</section>");
}

fn page(
    data: &Data,
    labels: &[String],
    width_name: &str,
    range: TimeRange,
    head: &treaty_store::LedgerHead,
    key: Option<crate::PublicKey>,
) -> String {
    let t = &data.total;
    let span = match (range.since_ms, range.until_ms) {
        (None, None) => "all recorded requests".to_owned(),
        (Some(s), None) => format!("requests decided since {}", rfc3339(s)),
        (None, Some(u)) => format!("requests decided before {}", rfc3339(u)),
        (Some(s), Some(u)) => format!("requests decided from {} to {}", rfc3339(s), rfc3339(u)),
    };
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Treaty ledger report</title><style>{STYLE}</style></head><body><main>\
         <h1>Treaty ledger report</h1><p class=\"sub\">{} · generated {} · time buckets of {}</p>",
        esc(&span),
        rfc3339(crate::now_ms()),
        width_name
    );
    h.push_str(r#"<div class="cards">"#);
    for (label, value) in [
        ("requests", t.requests.to_string()),
        ("admitted", t.admitted.to_string()),
        ("refused", t.refused.to_string()),
        ("served", t.served.to_string()),
        ("state", t.state.to_string()),
        ("failed", t.failed.to_string()),
        (
            "tokens",
            (t.prompt_tokens + t.completion_tokens).to_string(),
        ),
        ("cost", money(t.cost_micros)),
    ] {
        let _ = write!(
            h,
            r#"<div class="card"><b>{value}</b><span>{label}</span></div>"#
        );
    }
    h.push_str("</div>");

    for (title, by) in [
        ("Traffic per host over time", &data.by_host),
        ("Traffic per channel over time", &data.by_channel),
    ] {
        let s = series(by, labels.len());
        let names: Vec<String> = s.iter().map(|s| s.name.clone()).collect();
        let _ = write!(
            h,
            "<h2>{title}</h2><section>{}{}</section>",
            svg::stacked_columns(labels, &s),
            svg::legend(&names)
        );
    }

    let mut refusals: Vec<(String, u64)> =
        data.refusals.iter().map(|(k, v)| (k.clone(), *v)).collect();
    refusals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let _ = write!(
        h,
        "<h2>Refusals per clause</h2><section>{}</section>",
        svg::bars(&refusals, "#e15759")
    );

    let mut classes: Vec<String> = data
        .classes
        .values()
        .flat_map(|c| c.keys().cloned())
        .collect();
    classes.sort();
    classes.dedup();
    let rows: Vec<(String, Vec<u64>)> = data
        .classes
        .iter()
        .map(|(host, counts)| {
            (
                host.clone(),
                classes
                    .iter()
                    .map(|c| counts.get(c).copied().unwrap_or(0))
                    .collect(),
            )
        })
        .collect();
    let _ = write!(
        h,
        "<h2>Share of each workload class per host</h2><section>{}{}</section>",
        svg::shares(&classes, &rows),
        svg::legend(&classes)
    );

    h.push_str(
        "<h2>Per host</h2><section><table><tr><th>host</th><th>requests</th><th>served</th>\
         <th>state</th><th>failed</th><th>refused</th><th>prompt tokens</th><th>completion tokens</th><th>cost</th></tr>",
    );
    for (host, r) in &data.hosts {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(host),
            r.requests,
            r.served,
            r.state,
            r.failed,
            r.refused,
            r.prompt_tokens,
            r.completion_tokens,
            money(r.cost_micros)
        );
    }
    h.push_str("</table></section>");
    shadows(&mut h, &data.partings);
    let _ = writeln!(
        h,
        "<footer>Ledger head: seq {} · hash {} · checkpoint key {}. Check it with <code>treaty ledger verify</code>.</footer></main></body></html>",
        head.seq,
        hex::encode(&head.hash),
        key.map_or("(none yet)".to_owned(), |k| k.to_hex())
    );
    h
}

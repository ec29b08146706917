//! Three small chart kinds drawn as inline SVG for the HTML report and
//! the web UI (crate treaty-ui).
//!
//! Hand-drawn because the report must be one file that opens offline: no
//! charting script, no web font, no external reference of any kind. Each
//! function returns a complete `<svg>` element sized by its `viewBox` so it
//! scales with the page; hovering a bar shows its exact value through a
//! native SVG `<title>`. Every text that comes from data is escaped here.

use std::fmt::Write;

pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Escapes text for HTML and SVG content and attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One named series of values, one per bucket.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub values: Vec<u64>,
}

/// A round axis maximum at or above `max`.
fn nice_max(max: u64) -> u64 {
    if max <= 4 {
        return 4;
    }
    let mut step = 1u64;
    while step.saturating_mul(10) <= max {
        step *= 10;
    }
    for m in [1, 2, 5, 10] {
        let top = step.saturating_mul(m);
        if top >= max {
            return top;
        }
    }
    max
}

/// Stacked columns over time: one column per bucket, one colour per series.
pub fn stacked_columns(labels: &[String], series: &[Series]) -> String {
    const W: f64 = 960.0;
    const H: f64 = 260.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 10.0;
    const BOTTOM: f64 = 36.0;
    let n = labels.len().max(1);
    let totals: Vec<u64> = (0..n)
        .map(|b| {
            series
                .iter()
                .map(|s| s.values.get(b).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let top = nice_max(totals.iter().copied().max().unwrap_or(0));
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let slot = plot_w / n as f64;
    let bar = (slot * 0.8).max(1.0);
    let y = |v: u64| TOP + plot_h - plot_h * v as f64 / top as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" preserveAspectRatio="xMidYMid meet">"#
    );
    for i in 0..=4u64 {
        let v = top * i / 4;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e3e3e3"/><text x="{:.1}" y="{:.1}" class="axis" text-anchor="end">{v}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    for b in 0..n {
        let x = LEFT + slot * b as f64 + (slot - bar) / 2.0;
        let mut acc = 0u64;
        for (i, se) in series.iter().enumerate() {
            let v = se.values.get(b).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let y0 = y(acc);
            acc += v;
            let y1 = y(acc);
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y1:.1}" width="{bar:.1}" height="{:.1}" fill="{}"><title>{} · {}: {v}</title></rect>"#,
                (y0 - y1).max(0.5),
                color(i),
                esc(labels.get(b).map_or("", String::as_str)),
                esc(&se.name)
            );
        }
    }
    // At most ~8 time labels, evenly spread.
    let every = n.div_ceil(8).max(1);
    for (b, label) in labels.iter().enumerate() {
        if b % every != 0 {
            continue;
        }
        let x = LEFT + slot * b as f64 + slot / 2.0;
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text>"#,
            H - BOTTOM + 16.0,
            esc(label)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888"/></svg>"##,
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h
    );
    s
}

/// Horizontal bars, one per labelled value, longest first as given.
pub fn bars(rows: &[(String, u64)], fill: &str) -> String {
    const W: f64 = 960.0;
    const ROW: f64 = 24.0;
    const LEFT: f64 = 240.0;
    const RIGHT: f64 = 70.0;
    let h = ROW * rows.len().max(1) as f64 + 8.0;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {h}" role="img" preserveAspectRatio="xMidYMid meet">"#
    );
    if rows.is_empty() {
        s.push_str(r#"<text x="8" y="20" class="axis">none</text>"#);
    }
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let w = (W - LEFT - RIGHT) * *v as f64 / max as f64;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="label" text-anchor="end">{}</text><rect x="{LEFT}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}"><title>{}: {v}</title></rect><text x="{:.1}" y="{:.1}" class="axis">{v}</text>"#,
            LEFT - 8.0,
            y + ROW * 0.65,
            esc(label),
            y + 3.0,
            w.max(1.0),
            ROW - 6.0,
            esc(label),
            LEFT + w + 6.0,
            y + ROW * 0.65
        );
    }
    s.push_str("</svg>");
    s
}

/// 100 % stacked horizontal bars: for each row, the share of each part.
/// `parts` names the parts (one colour each); `rows` gives, per row, a
/// count per part in `parts` order.
pub fn shares(parts: &[String], rows: &[(String, Vec<u64>)]) -> String {
    const W: f64 = 960.0;
    const ROW: f64 = 26.0;
    const LEFT: f64 = 240.0;
    const RIGHT: f64 = 16.0;
    let h = ROW * rows.len().max(1) as f64 + 8.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {h}" role="img" preserveAspectRatio="xMidYMid meet">"#
    );
    if rows.is_empty() {
        s.push_str(r#"<text x="8" y="20" class="axis">none</text>"#);
    }
    let plot = W - LEFT - RIGHT;
    for (i, (label, counts)) in rows.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let total: u64 = counts.iter().sum();
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="label" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + ROW * 0.65,
            esc(label)
        );
        let mut x = LEFT;
        for (p, &n) in counts.iter().enumerate() {
            if n == 0 || total == 0 {
                continue;
            }
            let w = plot * n as f64 / total as f64;
            let pct = 100.0 * n as f64 / total as f64;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{} · {}: {n} ({pct:.1}%)</title></rect>"#,
                y + 3.0,
                ROW - 6.0,
                color(p),
                esc(label),
                esc(parts.get(p).map_or("", String::as_str))
            );
            if w > 44.0 {
                let _ = write!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" class="inbar" text-anchor="middle">{pct:.0}%</text>"#,
                    x + w / 2.0,
                    y + ROW * 0.65
                );
            }
            x += w;
        }
    }
    s.push_str("</svg>");
    s
}

/// A legend as HTML: one coloured swatch per name.
pub fn legend(names: &[String]) -> String {
    let mut s = String::from(r#"<div class="legend">"#);
    for (i, n) in names.iter().enumerate() {
        let _ = write!(
            s,
            r#"<span><i style="background:{}"></i>{}</span>"#,
            color(i),
            esc(n)
        );
    }
    s.push_str("</div>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(0), 4);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(13), 20);
        assert_eq!(nice_max(420), 500);
        assert_eq!(nice_max(1000), 1000);
    }

    #[test]
    fn data_text_is_escaped() {
        let svg = bars(&[("<script>&\"".into(), 3)], "#000");
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;&amp;&quot;"));
    }
}

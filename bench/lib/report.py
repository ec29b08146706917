"""Turn one bench/run directory into latest.json, latest.md and latency.svg.

    report.py RUN_DIR RESULTS_DIR

RUN_DIR holds meta.json and raw/*.json as bench/run writes them:
  c1__GW__plain|stream.json  concurrency 1, zero-delay upstream
  c1u__GW__plain.json        concurrency 1, loaded upstream (20 ms)
  load__GW__rRATE.json       open loop at RATE, loaded upstream
  search__GW__rRATE.json     throughput-search steps; search__GW.json the result
  idle__GW.json              process tree after the concurrency-1 runs
  loaded__GW.json            process tree after the highest fixed rate
  streamsload__GW__rRATE.json  the highest rate again, with streams held open
  streams__GW.json           those streams (first-byte times) with the tree's
                             peak RSS and open files sampled meanwhile
Standard library only.
"""
import json
import math
import os
import sys

NAMES = {
    "direct": "direct (no gateway)",
    "treaty-batched": "Treaty, batched ledger",
    "treaty-strict": "Treaty, strict ledger",
    "litellm": "LiteLLM",
    "portkey": "Portkey",
}
COLORS = {
    "direct": "#7f7f7f",
    "treaty-batched": "#1f77b4",
    "treaty-strict": "#17becf",
    "litellm": "#d62728",
    "portkey": "#ff7f0e",
}
TREATY = "treaty-batched"
PEERS = ["litellm", "portkey"]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def pct(run, hist, q):
    """Percentile q of histogram hist in a run report, in µs, or None."""
    if not run or not isinstance(run.get(hist), dict):
        return None
    return run[hist].get(q)


def minus(a, b):
    return None if a is None or b is None else a - b


def collect(run_dir, meta):
    raw = os.path.join(run_dir, "raw")
    gws = meta["gateways"]
    out = {"meta": meta, "gateways": {}}
    for gw in gws:
        g = {"name": NAMES.get(gw, gw)}
        for kind in ("plain", "stream"):
            g[f"c1_{kind}"] = load(os.path.join(raw, f"c1__{gw}__{kind}.json"))
        g["c1_loaded_plain"] = load(os.path.join(raw, f"c1u__{gw}__plain.json"))
        g["load"] = {
            str(r): load(os.path.join(raw, f"load__{gw}__r{r}.json")) for r in meta["rates"]
        }
        g["search"] = load(os.path.join(raw, f"search__{gw}.json"))
        g["idle"] = load(os.path.join(raw, f"idle__{gw}.json"))
        g["loaded"] = load(os.path.join(raw, f"loaded__{gw}.json"))
        top = max(meta["rates"])
        g["streams_load"] = load(os.path.join(raw, f"streamsload__{gw}__r{top}.json"))
        g["streams"] = load(os.path.join(raw, f"streams__{gw}.json"))
        out["gateways"][gw] = g
    derive(out)
    return out


def cpu_per_1000(run):
    """Gateway CPU seconds per 1,000 requests sent over a run (warm-up
    included: the gateway served those too)."""
    if not run or not run.get("proc_before") or not run.get("proc_after"):
        return None
    sent = run.get("scheduled_with_warmup") or run.get("requests")
    if not sent:
        return None
    return (run["proc_after"]["cpu_s"] - run["proc_before"]["cpu_s"]) / sent * 1000


def derive(out):
    """Add the figures the table shows: each gateway's latency minus the
    direct path's at the same percentile, rate and mode."""
    gws = out["gateways"]
    d = gws.get("direct")
    qs = ("p50", "p90", "p99", "p999")
    for gw, g in gws.items():
        fig = {}
        for key, hist in (
            ("c1_plain", "latency_us"),
            ("c1_stream", "ttfb_us"),
            ("c1_stream", "latency_us"),
            ("c1_loaded_plain", "latency_us"),
        ):
            label = f"{key}.{hist}"
            fig[label] = {q: pct(g[key], hist, q) for q in qs}
            fig[label + ".added"] = {
                q: minus(pct(g[key], hist, q), pct(d and d[key], hist, q)) for q in qs
            }
        for r, run in g["load"].items():
            base = d and d["load"].get(r)
            fig[f"load.{r}"] = {
                **{q: pct(run, "latency_us", q) for q in qs},
                **{f"added_{q}": minus(pct(run, "latency_us", q), pct(base, "latency_us", q)) for q in qs},
                "error_rate": run.get("error_rate") if run else None,
                "errors_by_kind": run.get("errors_by_kind") if run else None,
                "achieved_rps": run.get("achieved_rps") if run else None,
                "cpu_s_per_1000": cpu_per_1000(run),
                "dispatch_lag_p99": pct(run, "dispatch_lag_us", "p99"),
            }
        fig["sustained_rps"] = g["search"]["sustained_rps"] if g.get("search") else None
        fig["first_failing_rps"] = g["search"]["failed_at_rps"] if g.get("search") else None
        fig["idle_rss_mb"] = mb(g["idle"], "rss_kb")
        fig["idle_pss_mb"] = mb(g["idle"], "pss_kb")
        fig["peak_rss_mb"] = mb(g["loaded"], "hwm_kb")
        fig["loaded_pss_mb"] = mb(g["loaded"], "pss_kb")
        fig["procs"] = g["idle"]["procs"] if g.get("idle") else None
        sl, st = g.get("streams_load"), g.get("streams")
        base_sl, base_st = (d and d.get("streams_load")), (d and d.get("streams"))
        fig["streams"] = {
            "added_p50": minus(pct(sl, "latency_us", "p50"), pct(base_sl, "latency_us", "p50")),
            "added_p99": minus(pct(sl, "latency_us", "p99"), pct(base_sl, "latency_us", "p99")),
            "error_rate": sl.get("error_rate") if sl else None,
            "ttfb_p50": pct(st, "ttfb_us", "p50"),
            "ttfb_p99": pct(st, "ttfb_us", "p99"),
            "ttfb_added_p99": minus(pct(st, "ttfb_us", "p99"), pct(base_st, "ttfb_us", "p99")),
            "stream_error_rate": st.get("error_rate") if st else None,
            "peak_rss_mb": (st["peak_rss_kb"] / 1024) if st and st.get("peak_rss_kb") else None,
            "peak_fds": st.get("peak_fds") if st else None,
        }
        g["figures"] = fig


def mb(p, key):
    if not p or not p.get("procs"):
        return None
    return p[key] / 1024


# ------------------------------------------------------------ formatting

def us(v):
    if v is None:
        return "–"
    if abs(v) < 1000:
        return f"{v:.0f} µs"
    if abs(v) < 100_000:
        return f"{v / 1000:.2f} ms"
    return f"{v / 1000:.0f} ms"


def num(v, fmt="{:.0f}", unit=""):
    return "–" if v is None else fmt.format(v) + unit


def ratio(t, p, lower_is_better=True):
    """Treaty / peer, with how many times better Treaty is."""
    if t is None or p is None:
        return "–"
    if not lower_is_better and p <= 0 < t:
        return "peer: none"
    if t <= 0 or p <= 0:
        return "n/a (≤ 0)"
    r = t / p

    def times(x):
        return f"{x:.1f}×" if x < 10 else f"{x:.0f}×"

    if lower_is_better:
        return f"{r:.3f} ({times(1 / r)} lower)" if r < 1 else f"{r:.2f} ({times(r)} higher)"
    return f"{r:.2f} ({times(r)} higher)" if r >= 1 else f"{r:.2f} ({times(1 / r)} lower)"


def markdown(out):
    meta = out["meta"]
    gws = [g for g in meta["gateways"] if g in out["gateways"]]
    F = {gw: out["gateways"][gw]["figures"] for gw in gws}
    peers = [p for p in PEERS if p in F] if TREATY in F else []
    head = ["figure"] + [NAMES.get(g, g) for g in gws] + [f"Treaty / {NAMES[p]}" for p in peers]
    rows = []

    def row(label, get, fmt=us, lower_is_better=True, ratio_ok=True):
        vals = [get(F[g]) for g in gws]
        cells = [fmt(v) for v in vals]
        for p in peers:
            cells.append(
                ratio(get(F[TREATY]), get(F[p]), lower_is_better) if ratio_ok else "")
        rows.append([label] + cells)

    def sub(title):
        rows.append([f"**{title}**"] + [""] * (len(head) - 1))

    sub("concurrency 1, zero-delay upstream, non-streamed")
    for q in ("p50", "p99", "p999"):
        row(f"latency {q}", lambda f, q=q: f["c1_plain.latency_us"][q], ratio_ok=False)
    for q in ("p50", "p99"):
        row(f"added {q}", lambda f, q=q: f["c1_plain.latency_us.added"][q])
    sub("concurrency 1, zero-delay upstream, streamed")
    for q in ("p50", "p99"):
        row(f"time to first byte {q}", lambda f, q=q: f["c1_stream.ttfb_us"][q], ratio_ok=False)
    for q in ("p50", "p99"):
        row(f"added to first byte {q}", lambda f, q=q: f["c1_stream.ttfb_us.added"][q])
    row("added to last byte p99", lambda f: f["c1_stream.latency_us.added"]["p99"])
    sub(f"concurrency 1, {meta['upstream_ms']} ms upstream, non-streamed")
    row("latency p50", lambda f: f["c1_loaded_plain.latency_us"]["p50"], ratio_ok=False)
    for q in ("p50", "p99"):
        row(f"added {q}", lambda f, q=q: f["c1_loaded_plain.latency_us.added"][q])
    for r in meta["rates"]:
        sub(f"open loop {r} req/s, {meta['upstream_ms']} ms upstream, non-streamed")
        for q in ("p50", "p99", "p999"):
            row(f"latency {q}", lambda f, q=q, r=r: f[f"load.{r}"][q], ratio_ok=False)
        row("added p99", lambda f, r=r: f[f"load.{r}"]["added_p99"])
        row("errors", lambda f, r=r: f[f"load.{r}"]["error_rate"],
            fmt=lambda v: "–" if v is None else f"{v * 100:.2f} %", ratio_ok=False)
        row("achieved req/s", lambda f, r=r: f[f"load.{r}"]["achieved_rps"],
            fmt=lambda v: num(v), ratio_ok=False)
        row("gateway CPU s / 1,000 req", lambda f, r=r: f[f"load.{r}"]["cpu_s_per_1000"],
            fmt=lambda v: num(v, "{:.3f}"))
    sub(f"sustained throughput (p99 < {meta['p99_limit_ms']} ms, errors ≤ 0.1 %, {meta['upstream_ms']} ms upstream)")
    row("highest rate sustained, req/s", lambda f: f["sustained_rps"],
        fmt=lambda v: num(v), lower_is_better=False)
    row("first rate not sustained, req/s", lambda f: f["first_failing_rps"],
        fmt=lambda v: num(v), ratio_ok=False)
    sub("memory (whole process tree)")
    row("processes", lambda f: f["procs"], fmt=lambda v: num(v), ratio_ok=False)
    row("RSS idle, MB", lambda f: f["idle_rss_mb"], fmt=lambda v: num(v, "{:.1f}"))
    row("PSS idle, MB", lambda f: f["idle_pss_mb"], fmt=lambda v: num(v, "{:.1f}"))
    top = max(meta["rates"])
    row(f"peak RSS through {top} req/s, MB", lambda f: f["peak_rss_mb"], fmt=lambda v: num(v, "{:.1f}"))

    streams = meta.get("open_streams")
    if streams:
        sub(f"open loop {top} req/s with {streams} streams held open, {meta['upstream_ms']} ms upstream")
        row("added p50, non-streamed", lambda f: f["streams"]["added_p50"])
        row("added p99, non-streamed", lambda f: f["streams"]["added_p99"])
        row("errors, non-streamed", lambda f: f["streams"]["error_rate"],
            fmt=lambda v: "–" if v is None else f"{v * 100:.2f} %", ratio_ok=False)
        row("streams: time to first byte p50", lambda f: f["streams"]["ttfb_p50"], ratio_ok=False)
        row("streams: time to first byte p99", lambda f: f["streams"]["ttfb_p99"], ratio_ok=False)
        row("streams: added to first byte p99", lambda f: f["streams"]["ttfb_added_p99"])
        row("streams: errors", lambda f: f["streams"]["stream_error_rate"],
            fmt=lambda v: "–" if v is None else f"{v * 100:.2f} %", ratio_ok=False)
        row("peak open files (≈ 2 per open stream)", lambda f: f["streams"]["peak_fds"],
            fmt=lambda v: num(v), ratio_ok=False)
        row("peak RSS, MB", lambda f: f["streams"]["peak_rss_mb"], fmt=lambda v: num(v, "{:.1f}"))

    lines = [
        "# Load: Treaty beside LiteLLM and Portkey",
        "",
        f"- date: {meta['date']} (run {meta['run']}, commit {meta['commit']})",
        f"- machine: {meta['machine']}; load average at the end {meta['loadavg_at_end']}",
        f"- command: `{meta['command']}`" + (" (quick smoke run: short durations, noisy)" if meta["quick"] else ""),
        f"- durations: {meta['durations']}",
        f"- peers: LiteLLM {meta['litellm']} (gunicorn, one uvicorn worker per core), "
        f"Portkey gateway {meta['portkey']} (Node, one process)",
        "- method: bench/README.md. Latency is measured from each request's scheduled send time; "
        "'added' is the gateway's percentile minus the direct path's at the same percentile, "
        "upstream and rate; ratios are Treaty (batched ledger) / peer.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    errs = []
    for gw in gws:
        for r in meta["rates"]:
            kinds = F[gw][f"load.{r}"]["errors_by_kind"]
            if kinds:
                errs.append(f"{NAMES.get(gw, gw)} at {r} req/s: " + ", ".join(f"{k} {n}" for k, n in kinds.items()))
    if errs:
        lines += ["", "Errors by kind: " + "; ".join(errs) + "."]
    lag = [F[gw][f"load.{top}"]["dispatch_lag_p99"] for gw in gws]
    lag = [x for x in lag if x is not None]
    if lag:
        lines += ["", f"The generator's own dispatch lag at {top} req/s (p99, worst of the runs): {us(max(lag))}; "
                      "it is inside every figure above, the direct path's included."]
    lines += ["", "![p50 and p99 latency against rate](latency.svg)", ""]
    return "\n".join(lines)


# ------------------------------------------------------------ the plot

def svg(out):
    meta = out["meta"]
    rates = sorted(meta["rates"])
    gws = [g for g in meta["gateways"] if g in out["gateways"]]
    W, H, L, R, T, B = 760, 440, 70, 190, 40, 55
    pw, ph = W - L - R, H - T - B
    series = []
    for gw in gws:
        f = out["gateways"][gw]["figures"]
        for q, dash in (("p99", ""), ("p50", "5,4")):
            pts = []
            for r in rates:
                v = f[f"load.{r}"][q]
                err = f[f"load.{r}"]["error_rate"] or 0
                if v:
                    pts.append((r, v / 1000, err > 0.01))
            series.append((gw, q, dash, pts))
    vals = [v for *_, pts in series for _, v, _ in pts]
    if not vals:
        vals = [1, 100]
    lo = 10 ** math.floor(math.log10(max(min(vals), 0.01)))
    hi = 10 ** math.ceil(math.log10(max(vals) * 1.05))
    if hi <= lo:
        hi = lo * 10
    x0, x1 = rates[0] * 0.8, rates[-1] * 1.1

    def X(r):
        return L + (math.log(r) - math.log(x0)) / (math.log(x1) - math.log(x0)) * pw

    def Y(v):
        return T + ph - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph

    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="22" font-size="14" font-weight="bold">Latency vs arrival rate, '
         f'{meta["upstream_ms"]} ms upstream (open loop, non-streamed)</text>']
    d = lo
    while d <= hi * 1.0001:
        y = Y(d)
        s.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        s.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{d:g}</text>')
        d *= 10
    for r in rates:
        x = X(r)
        s.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{T + ph}" stroke="#f0f0f0"/>')
        s.append(f'<text x="{x:.1f}" y="{T + ph + 16}" text-anchor="middle">{r}</text>')
    s.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    s.append(f'<text x="{L + pw / 2}" y="{H - 14}" text-anchor="middle">requests per second (log scale)</text>')
    s.append(f'<text transform="translate(18,{T + ph / 2}) rotate(-90)" text-anchor="middle">'
             f'latency, ms (log scale)</text>')
    for gw, q, dash, pts in series:
        c = COLORS.get(gw, "#000")
        if len(pts) > 1:
            path = " ".join(f"{X(r):.1f},{Y(v):.1f}" for r, v, _ in pts)
            s.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2" '
                     f'stroke-dasharray="{dash}"/>')
        for r, v, bad in pts:
            fill = "white" if bad else c
            s.append(f'<circle cx="{X(r):.1f}" cy="{Y(v):.1f}" r="3.5" fill="{fill}" stroke="{c}" stroke-width="1.5"/>')
    ly = T + 8
    for gw in gws:
        c = COLORS.get(gw, "#000")
        s.append(f'<line x1="{L + pw + 15}" y1="{ly}" x2="{L + pw + 40}" y2="{ly}" stroke="{c}" stroke-width="2"/>')
        s.append(f'<text x="{L + pw + 46}" y="{ly + 4}">{NAMES.get(gw, gw)}</text>')
        ly += 20
    ly += 10
    for label, dash in (("p99", ""), ("p50", "5,4")):
        s.append(f'<line x1="{L + pw + 15}" y1="{ly}" x2="{L + pw + 40}" y2="{ly}" stroke="#333" '
                 f'stroke-width="2" stroke-dasharray="{dash}"/>')
        s.append(f'<text x="{L + pw + 46}" y="{ly + 4}">{label}</text>')
        ly += 20
    s.append(f'<circle cx="{L + pw + 27}" cy="{ly}" r="3.5" fill="white" stroke="#333" stroke-width="1.5"/>')
    s.append(f'<text x="{L + pw + 46}" y="{ly + 4}">over 1 % errors</text>')
    s.append(f'<text x="{L}" y="{H - 2}" font-size="10" fill="#666">{meta["date"]}, {meta["machine"]}, '
             f'`{meta["command"]}`</text>')
    s.append("</svg>")
    return "\n".join(s) + "\n"


def main():
    run_dir, results = sys.argv[1], sys.argv[2]
    meta = load(os.path.join(run_dir, "meta.json"))
    if meta is None:
        sys.exit(f"no meta.json in {run_dir}")
    out = collect(run_dir, meta)
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, "latest.json"), "w") as f:
        json.dump(out, f, indent=1)
    with open(os.path.join(results, "latest.md"), "w") as f:
        f.write(markdown(out))
    with open(os.path.join(results, "latency.svg"), "w") as f:
        f.write(svg(out))
    # A copy beside the raw data, so an older run can be read again.
    for name in ("latest.md", "latency.svg"):
        with open(os.path.join(results, name)) as src, open(os.path.join(run_dir, name), "w") as dst:
            dst.write(src.read())


if __name__ == "__main__":
    main()

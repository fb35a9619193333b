"""The benchmark's report: medians over rounds, the printed table, the
targets of issue #12 checked against the run, and the PNG chart."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from specs import NO_CURL, REF, SRC, ClientSpec, Workload, applies


def _median(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def summarize(runs: list[Any], workloads: list[Workload],
              clients: list[ClientSpec]) -> dict[str, dict[str, Any]]:
    """Per workload and client: medians over rounds, ratio to the reference."""
    out: dict[str, dict[str, Any]] = {}
    for w in workloads:
        rows: dict[str, Any] = {}
        for c in clients:
            if not applies(w, c):
                continue
            mine = [r for r in runs if r.workload == w.key and r.client == c.key]
            good = [r.result for r in mine if r.result is not None]
            row: dict[str, Any] = {"label": c.label, "group": c.group, "rounds": len(good),
                                   "attempts": len(mine)}
            if good:
                row["rps"] = statistics.median(g["rps"] for g in good)
                row["rps_min"] = min(g["rps"] for g in good)
                row["rps_max"] = max(g["rps"] for g in good)
                for k in ("p50_us", "p99_us", "cpu_us", "cpu_us_proc"):
                    row[k] = _median([g[k] for g in good if g.get(k) is not None])
                row["errors"] = sum(g["errors"] for g in good)
                row["requests"] = sum(g["requests"] for g in good)
                row["libcurl"] = sorted({str(g.get("libcurl") or NO_CURL) for g in good})[-1]
                notes = sorted({str(g["note"]) for g in good if g.get("note")})
                notes += sorted({r.note for r in mine if r.note})
                if notes:
                    row["notes"] = notes
            errors = sorted({r.error for r in mine if r.error})
            if errors:
                row["failures"] = errors
            rows[c.key] = row
        ref = rows.get(REF, {}).get("rps")
        for row in rows.values():
            row["ratio"] = round(row["rps"] / ref, 3) if ref and "rps" in row else None
        out[w.key] = rows
    return out


def fmt_ms(us: float | None) -> str:
    return "n/a" if us is None else f"{us / 1000:.2f}"


def _cpu(us: float | None) -> str:
    return "n/a" if us is None else f"{us:.1f}"


HEAD = (f"{'client':<38} {'libcurl':>8} {'req/s':>9} {'x ours':>7} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU us':>7} {'errors':>7} {'rounds':>6}")


def table(summary: dict[str, dict[str, Any]], workloads: list[Workload],
          clients: list[ClientSpec]) -> str:
    """The printed table: one group of rows per workload.  CPU us = CPU time
    of the client process (all its threads) per completed request."""
    lines: list[str] = []
    # (workload, text) -> clients: one line per note however many rows share it
    notes: dict[tuple[str, str], list[str]] = {}

    def note(w: str, c: str, text: str) -> None:
        if not text.startswith("skipped: unavailable earlier"):  # said once already
            notes.setdefault((w, text), []).append(c)

    for w in workloads:
        lines.append("")
        lines.append(f"== {w.title}  [{w.key}: {w.server} {w.path}]")
        lines.append(HEAD)
        for c in clients:
            if c.key not in summary[w.key]:
                continue
            row = summary[w.key][c.key]
            if "rps" not in row:
                why = (row.get("failures") or ["not run"])[0]
                lines.append(f"{c.label:<38} {'n/a':>8} {'n/a':>9} {'n/a':>7} {'n/a':>8} {'n/a':>8} "
                             f"{'n/a':>7} {'':>7} {row['rounds']}/{row['attempts']:<4}")
                note(w.key, c.key, why[:200])
                continue
            ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}"
            lines.append(
                f"{c.label:<38} {row.get('libcurl', NO_CURL):>8} {row['rps']:>9,.0f} {ratio:>7} "
                f"{fmt_ms(row.get('p50_us')):>8} {fmt_ms(row.get('p99_us')):>8} {_cpu(row.get('cpu_us')):>7} "
                f"{row['errors']:>7} {row['rounds']}/{row['attempts']:<4}"
            )
            for n in row.get("notes", []):
                note(w.key, c.key, n)
            for f in row.get("failures", []):
                note(w.key, c.key + " (some rounds)", f[:200])
    if notes:
        lines.append("")
        lines.append("notes:")
        lines += [f"  - {w} / {', '.join(cs)}: {text}" for (w, text), cs in notes.items()]
    return "\n".join(lines)


# ---------------------------------------------------------------- targets
def _get(summary: dict[str, dict[str, Any]], w: str, c: str, k: str) -> float | None:
    v = summary.get(w, {}).get(c, {}).get(k)
    return None if v is None else float(v)


def _ratio(summary: dict[str, dict[str, Any]], w: str, a: str, b: str,
           k: str = "rps") -> float | None:
    """Client a / client b on workload w."""
    x, y = _get(summary, w, a, k), _get(summary, w, b, k)
    return None if x is None or not y else x / y


def _across(summary: dict[str, dict[str, Any]], c: str, w1: str, w2: str, k: str) -> float | None:
    """Client c on workload w1 / on workload w2."""
    x, y = _get(summary, w1, c, k), _get(summary, w2, c, k)
    return None if x is None or not y else x / y


def targets(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue #12's targets as measured in this run: one entry per check
    (what, value, goal, met: True/False/None when a row is missing)."""
    out: list[dict[str, Any]] = []

    def add(what: str, value: float | None, goal: str, ok: bool | None, fmt: str = "{:.2f}x") -> None:
        out.append({"target": what, "value": None if value is None else round(value, 3),
                    "shown": "n/a" if value is None else fmt.format(value), "goal": goal,
                    "met": None if value is None else ok})

    # the reference on the system's libcurl, and the same client on the
    # libcurl its wheel bundles (what `pip install` of each gives)
    for ours, what in ((REF, "completions()"), (SRC, "completions(), wheel's libcurl")):
        for w in ("get", "post", "get64k", "slow", "https"):
            r = _ratio(summary, w, ours, "pycurl-multi")
            add(f"{what} / pycurl wheel, {w}", r, ">= 1.0x", r is not None and r >= 1.0)
    for w in ("get", "post"):
        for ours, ceil in ((REF, "ceiling"), ("ours-cq-w1-curl7", "ceiling-curl7"), (SRC, "ceiling-src")):
            r = _ratio(summary, w, ours, ceil)
            add(f"{ours} / {ceil} (same libcurl), {w}", r, ">= 1.0x", r is not None and r >= 1.0)
    for ours, what in ((REF, "completions()"), (SRC, "completions(), wheel's libcurl")):
        for w in summary:
            a, b = _get(summary, w, ours, "cpu_us"), _get(summary, w, "pycurl-multi", "cpu_us")
            d = None if a is None or b is None else a - b
            add(f"CPU us/request, {what} - pycurl wheel, {w}", d, "<= 0", d is not None and d <= 0,
                "{:+.1f} us")
    a, b = _get(summary, "serial", REF, "p50_us"), _get(summary, "serial", "pycurl-multi", "p50_us")
    d = None if a is None or b is None else a - b
    add("c=1 p50, completions() - pycurl wheel", d, "<= 0", d is not None and d <= 0, "{:+.1f} us")
    for ours, ceil in ((REF, "ceiling"), ("ours-cq-w1-curl7", "ceiling-curl7"), (SRC, "ceiling-src")):
        a, b = _get(summary, "serial", ours, "p50_us"), _get(summary, "serial", ceil, "p50_us")
        d = None if a is None or b is None else a - b
        add(f"c=1 p50, {ours} - {ceil}", d, "<= +10 us", d is not None and d <= 10, "{:+.1f} us")
    for ours in ("ours-aio-w1", "ours-aio-uv-w1"):
        r = _ratio(summary, "get", ours, "aiohttp-uvloop")
        add(f"{ours} / aiohttp+uvloop, get", r, ">= 4.0x", r is not None and r >= 4.0)
    for wv, what in (("tlsnew", "private CA"), ("tlsnew-bundle", "system bundle")):
        for c in ("ours-cq-w1", "ours-cq-w1-curl7", SRC, "pycurl-multi",
                  "ceiling", "ceiling-src", "ceiling-nocapath"):
            # time for N verified connections / time for N unverified = rps(nv) / rps(verified);
            # CPU per connection, the same ratio less exposed to a stall in a short run
            r = _across(summary, c, "tlsnew-nv", wv, "rps")
            cpu = _across(summary, c, wv, "tlsnew-nv", "cpu_us")
            add(f"new TLS conns, verified ({what}) / unverified, {c}", r, "<= 2.0x",
                r is not None and r <= 2.0,
                "{:.2f}x" + ("" if cpu is None else f" (CPU {cpu:.2f}x)"))
    return out


def targets_text(items: list[dict[str, Any]]) -> str:
    lines = ["", "targets (issue #12; ratios within this run):"]
    for t in items:
        mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        lines.append(f"  {t['target']:<72} {t['shown']:>18}  goal {t['goal']:<9} {mark}")
    return "\n".join(lines)


# ------------------------------------------------------------------- plot
def plot(summary: dict[str, dict[str, Any]], workloads: list[Workload], clients: list[ClientSpec],
         path: Path, subtitle: str) -> str:
    """A PNG bar chart (requests/s per client, one panel per workload)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"no PNG: matplotlib is not importable ({exc})"
    colors = {"ours": "#1f77b4", "peer": "#ff7f0e", "ceiling": "#7f7f7f"}
    n = len(workloads)
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 0.33 * len(clients) * rows + 1.6 * rows),
                             squeeze=False)
    for ax, w in zip(list(axes.flat)[:n], workloads, strict=True):
        shown = [c for c in clients if c.key in summary[w.key]]
        labels, vals, errs_lo, errs_hi, cs = [], [], [], [], []
        for c in shown:
            row = summary[w.key][c.key]
            labels.append(f"{c.label} [{row.get('libcurl', NO_CURL)}]")
            v = row.get("rps", 0.0) or 0.0
            vals.append(v)
            errs_lo.append(max(0.0, v - row.get("rps_min", v)))
            errs_hi.append(max(0.0, row.get("rps_max", v) - v))
            cs.append(colors[c.group])
        ypos = list(range(len(labels)))
        ax.barh(ypos, vals, color=cs, xerr=[errs_lo, errs_hi], capsize=2)
        ax.set_yticks(ypos)
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(w.title, fontsize=9)
        ax.set_xlabel("requests/s (median of rounds; bars: min-max)", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        top = max(v + h for v, h in zip(vals, errs_hi, strict=True)) if vals else 1.0
        top = top if top > 0 else 1.0
        for y, (c, v, hi) in enumerate(zip(shown, vals, errs_hi, strict=True)):
            row = summary[w.key][c.key]
            text = ("n/a" if "rps" not in row else
                    f"{v:,.0f}  p50 {fmt_ms(row.get('p50_us'))} ms  {_cpu(row.get('cpu_us'))} us CPU")
            ax.text(v + hi + top * 0.015, y, text, va="center", fontsize=6)
        ax.set_xlim(0, top * 1.45)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"http_async_client benchmarks - {subtitle}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.975))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"

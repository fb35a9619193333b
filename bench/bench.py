"""Benchmark harness: our client against Python peers and two ceilings.

usage: bench.py [--quick] [--rounds N] [--seconds S] [--workloads a,b]
                [--clients a,b] [--out DIR] [--no-png]

Servers (harness.py) run on core 0: nginx with one worker, and for the
10 ms delay workload a small asyncio server (nginx-light has no echo
module).  Every client run is a separate process pinned to core 1
(``taskset -c 1``): runner.py for the Python clients, bench/.build/ceiling
(C: libcurl + libev, no Python) and wrk.

Rounds are interleaved (round 1 runs every client once per workload, then
round 2, ...; the client order rotates each round) and the table shows the
median over rounds of requests/s and of p50/p99 latency, with each client's
requests/s as a ratio to ours (completions() with workers=1 = 1.00) in the
same run.  Results go to results/latest.json and results/latest.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import CLIENT_CORE, HERE, Servers, pinned, pinning_available

REF = "ours-cq-w1"
RESULTS = HERE / "results"


@dataclass(frozen=True)
class Workload:
    """One row group: what to request, from which server, how many at once."""

    key: str
    title: str
    server: str  # "http", "https" or "slow"
    path: str
    concurrency: int
    body_bytes: int = 0
    expect_bytes: int = 2
    max_rate: int = 150_000  # requests cap = max_rate * seconds (time binds first)


WORKLOADS = [
    Workload("get", "GET 2 B body, c=64", "http", "/", 64),
    Workload("post", "POST 1 KiB, c=64", "http", "/post", 64, body_bytes=1024),
    Workload("get64k", "GET 64 KiB body, c=64", "http", "/64k", 64, expect_bytes=65536),
    Workload("serial", "GET 2 B, one at a time (c=1)", "http", "/", 1, max_rate=50_000),
    Workload("slow", "GET, server delay 10 ms, c=256", "slow", "/", 256, max_rate=60_000),
    Workload("https", "HTTPS GET 2 B, keep-alive, c=64", "https", "/", 64),
]


@dataclass(frozen=True)
class ClientSpec:
    """A client variant: how to run it and how to label it."""

    key: str
    label: str
    group: str  # "ours", "peer" or "ceiling"
    kind: str = "py"  # "py" (runner.py), "ceiling" or "wrk"
    pythonpath: str = ""


CLIENTS = [
    ClientSpec("ours-cq-w1", "ours completions() w=1 [ref]", "ours"),
    ClientSpec("ours-cq-w2", "ours completions() w=2", "ours"),
    ClientSpec("ours-aio-w1", "ours asyncio await w=1", "ours"),
    ClientSpec("ours-aio-w2", "ours asyncio await w=2", "ours"),
    ClientSpec("ours-aio-uv-w1", "ours asyncio await w=1 (uvloop)", "ours"),
    ClientSpec("ours-thr-w1", "ours threads http_async_query w=1", "ours"),
    ClientSpec("ours-thr-w2", "ours threads http_async_query w=2", "ours"),
    ClientSpec("pycurl-multi", "pycurl CurlMulti (wheel's libcurl)", "peer"),
    ClientSpec("pycurl-multi-sys", "pycurl CurlMulti (Debian libcurl)", "peer",
               pythonpath=str(HERE / ".venv" / "pycurl-syslib")),
    ClientSpec("aiohttp", "aiohttp (asyncio loop)", "peer"),
    ClientSpec("aiohttp-uvloop", "aiohttp (uvloop)", "peer"),
    ClientSpec("httpx", "httpx AsyncClient", "peer"),
    ClientSpec("curl_cffi", "curl_cffi AsyncSession", "peer"),
    ClientSpec("pyreqwest", "pyreqwest async Client", "peer"),
    ClientSpec("ceiling", "C ceiling (libcurl+libev)", "ceiling", kind="ceiling"),
    ClientSpec("wrk", "wrk -t1", "ceiling", kind="wrk"),
]


@dataclass
class Run:
    """One measured run (or its failure)."""

    round: int
    workload: str
    client: str
    result: dict[str, Any] | None = None
    error: str | None = None
    note: str | None = None
    unavailable: bool = False
    wall: float = 0.0
    loadavg: float = 0.0


@dataclass
class Options:
    rounds: int
    seconds: float
    workloads: list[Workload]
    clients: list[ClientSpec]
    ceiling: str
    wrk: str | None
    python: str
    out: Path
    png: bool
    quick: bool
    plot_only: bool = False
    tmp: Path = field(default_factory=lambda: Path("/tmp"))


# ------------------------------------------------------------------ runs
def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _tail(text: str, n: int = 300) -> str:
    text = " | ".join(ln.strip() for ln in text.strip().splitlines()[-4:] if ln.strip())
    return text[-n:]


_UNITS = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def _wrk_us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"bad wrk time {text!r}")
    if m.group(2) == "m":
        return float(m.group(1)) * 60_000_000.0
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    """requests, errors, seconds, rps (good replies), p50_us, p99_us from
    ``wrk --latency`` output."""
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if not m:
        raise ValueError("no 'N requests in T' line in wrk output")
    requests = int(m.group(1))
    seconds = _wrk_us(m.group(2) + m.group(3)) / 1e6
    pct = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, re.M))
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    good = max(0, requests - (int(non2xx.group(1)) if non2xx else 0))
    return {
        "requests": requests,
        "errors": errors,
        "seconds": round(seconds, 4),
        "rps": round(good / seconds, 1) if seconds else 0.0,
        "p50_us": round(_wrk_us(pct["50"]), 1) if "50" in pct else None,
        "p99_us": round(_wrk_us(pct["99"]), 1) if "99" in pct else None,
    }


def command(o: Options, srv: Servers, w: Workload, c: ClientSpec) -> tuple[list[str], dict[str, str]]:
    """argv (pinned to the client core) and environment of one run."""
    base = {"http": srv.http, "https": srv.https, "slow": srv.slow}[w.server]
    url = base + w.path
    total = int(w.max_rate * o.seconds)
    env = dict(os.environ)
    if c.kind == "ceiling":
        argv = [o.ceiling, url, str(total), str(w.concurrency), f"{o.seconds:g}"]
        if w.body_bytes:
            argv.append(str(w.body_bytes))
        if w.server == "https":
            env["CEILING_INSECURE"] = "1"
    elif c.kind == "wrk":
        assert o.wrk is not None
        secs = max(1, round(o.seconds))
        argv = [o.wrk, "-t1", f"-c{w.concurrency}", f"-d{secs}s", "--timeout", "10s", "--latency"]
        if w.body_bytes:
            script = o.tmp / f"post{w.body_bytes}.lua"
            script.write_text(
                'wrk.method = "POST"\n'
                f'wrk.body = string.rep("x", {w.body_bytes})\n'
                'wrk.headers["Content-Type"] = "application/octet-stream"\n'
            )
            argv += ["-s", str(script)]
        argv.append(url)
    else:
        argv = [
            o.python, str(HERE / "runner.py"), c.key, url,
            "--requests", str(total), "--concurrency", str(w.concurrency),
            "--seconds", f"{o.seconds:g}", "--expect-bytes", str(w.expect_bytes),
        ]
        if w.body_bytes:
            argv += ["--body-bytes", str(w.body_bytes)]
        if w.server == "https":
            argv.append("--insecure")
        if c.pythonpath:
            env["PYTHONPATH"] = c.pythonpath
    return pinned(CLIENT_CORE, argv), env


def run_one(o: Options, srv: Servers, rnd: int, w: Workload, c: ClientSpec) -> Run:
    """Run one client on one workload in its own process; never raises."""
    run = Run(rnd, w.key, c.key, loadavg=os.getloadavg()[0])
    if c.kind == "wrk" and o.wrk is None:
        run.error, run.unavailable = "wrk not installed", True
        return run
    if c.kind == "ceiling" and not os.access(o.ceiling, os.X_OK):
        run.error, run.unavailable = f"{o.ceiling} not built", True
        return run
    argv, env = command(o, srv, w, c)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                              timeout=o.seconds + 60)
    except subprocess.TimeoutExpired:
        run.error = f"killed after {o.seconds + 60:.0f} s"
        run.wall = time.monotonic() - t0
        return run
    except OSError as exc:
        run.error, run.unavailable = f"cannot start: {exc}", True
        return run
    run.wall = time.monotonic() - t0
    try:
        if c.kind == "wrk":
            if proc.returncode != 0:
                raise ValueError(_tail(proc.stderr or proc.stdout))
            run.result = parse_wrk(proc.stdout)
        else:
            data = _last_json(proc.stdout)
            if data is None:
                raise ValueError(f"exit {proc.returncode}: {_tail(proc.stderr or proc.stdout)}")
            if "error" in data:
                run.unavailable = proc.returncode == 3
                raise ValueError(str(data["error"]))
            if c.kind == "ceiling":  # rps over good replies, as the runners count it
                ok = data["requests"] - data["errors"]
                data["rps"] = round(ok / data["seconds"], 1) if data["seconds"] else 0.0
            run.result = data
            if proc.returncode != 0:
                run.note = f"exit {proc.returncode} after printing its result: {_tail(proc.stderr, 160)}"
    except (ValueError, KeyError) as exc:
        run.error = str(exc) or type(exc).__name__
    return run


# ---------------------------------------------------------------- report
def summarize(runs: list[Run], o: Options) -> dict[str, dict[str, Any]]:
    """Per workload and client: medians over rounds, ratio to the reference."""
    out: dict[str, dict[str, Any]] = {}
    for w in o.workloads:
        rows: dict[str, Any] = {}
        for c in o.clients:
            mine = [r for r in runs if r.workload == w.key and r.client == c.key]
            good = [r.result for r in mine if r.result is not None]
            row: dict[str, Any] = {"label": c.label, "group": c.group, "rounds": len(good),
                                   "attempts": len(mine)}
            if good:
                row["rps"] = statistics.median(g["rps"] for g in good)
                row["rps_min"] = min(g["rps"] for g in good)
                row["rps_max"] = max(g["rps"] for g in good)
                for k in ("p50_us", "p99_us"):
                    vals = [g[k] for g in good if g.get(k) is not None]
                    row[k] = statistics.median(vals) if vals else None
                row["errors"] = sum(g["errors"] for g in good)
                row["requests"] = sum(g["requests"] for g in good)
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


def _ms(us: float | None) -> str:
    return "n/a" if us is None else f"{us / 1000:.2f}"


def table(summary: dict[str, dict[str, Any]], o: Options) -> str:
    """The printed table: one group of rows per workload."""
    lines: list[str] = []
    head = f"{'client':<36} {'req/s':>9} {'x ours':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'rounds':>6}"
    notes: list[str] = []
    for w in o.workloads:
        lines.append("")
        lines.append(f"== {w.title}  [{w.key}: {w.server} {w.path}]")
        lines.append(head)
        for c in o.clients:
            row = summary[w.key][c.key]
            if "rps" not in row:
                why = (row.get("failures") or ["not run"])[0]
                lines.append(f"{c.label:<36} {'n/a':>9} {'n/a':>7} {'n/a':>8} {'n/a':>8} {'':>7} "
                             f"{row['rounds']}/{row['attempts']:<4}")
                notes.append(f"{w.key} / {c.key}: {why[:200]}")
                continue
            ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}"
            lines.append(
                f"{c.label:<36} {row['rps']:>9,.0f} {ratio:>7} {_ms(row.get('p50_us')):>8} "
                f"{_ms(row.get('p99_us')):>8} {row['errors']:>7} {row['rounds']}/{row['attempts']:<4}"
            )
            for n in row.get("notes", []):
                notes.append(f"{w.key} / {c.key}: {n}")
            for f in row.get("failures", []):
                notes.append(f"{w.key} / {c.key} (some rounds): {f[:200]}")
    if notes:
        lines.append("")
        lines.append("notes:")
        lines += [f"  - {n}" for n in notes]
    return "\n".join(lines)


def plot(summary: dict[str, dict[str, Any]], o: Options, path: Path, subtitle: str) -> str:
    """A PNG bar chart (requests/s per client, one panel per workload)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"no PNG: matplotlib is not importable ({exc})"
    colors = {"ours": "#1f77b4", "peer": "#ff7f0e", "ceiling": "#7f7f7f"}
    n = len(o.workloads)
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 0.33 * len(o.clients) * rows + 1.6 * rows),
                             squeeze=False)
    for ax, w in zip(list(axes.flat)[:n], o.workloads, strict=True):
        labels, vals, errs_lo, errs_hi, cs = [], [], [], [], []
        for c in o.clients:
            row = summary[w.key][c.key]
            labels.append(c.label)
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
        for y, (c, v, hi) in enumerate(zip(o.clients, vals, errs_hi, strict=True)):
            row = summary[w.key][c.key]
            text = "n/a" if "rps" not in row else f"{v:,.0f}  p50 {_ms(row.get('p50_us'))} ms"
            ax.text(v + hi + top * 0.015, y, text, va="center", fontsize=6)
        ax.set_xlim(0, top * 1.35)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"http_async_client benchmarks - {subtitle}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.975))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"


# ------------------------------------------------------------------ meta
def _version_of(argv: list[str], env: dict[str, str] | None = None) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
        return (p.stdout.strip() or p.stderr.strip()).splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "n/a"


def meta(o: Options) -> dict[str, Any]:
    """Machine, versions and settings, recorded in the JSON."""
    from importlib import metadata

    versions: dict[str, str] = {}
    for dist in ("http_async_client", "pycurl", "aiohttp", "uvloop", "httpx", "httpcore",
                 "curl_cffi", "pyreqwest", "matplotlib", "cffi"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE / ".venv" / "pycurl-syslib")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "pinning": "servers on core 0, clients on core 1" if pinning_available() else "none (fewer than 2 cores)",
        "versions": versions,
        "our_libcurl": _version_of(
            [o.python, "-c", "from http_async_client._ffi import CURL_VERSION; print(CURL_VERSION)"]),
        "pycurl_wheel": _version_of([o.python, "-c", "import pycurl; print(pycurl.version)"]),
        "pycurl_sys": _version_of([o.python, "-c", "import pycurl; print(pycurl.version)"], env),
        "nginx": _version_of([shutil.which("nginx") or "/usr/sbin/nginx", "-v"]),
        "wrk": _version_of([o.wrk, "-v"]) if o.wrk else "not installed",
        "mode": "quick" if o.quick else "full",
        "rounds": o.rounds,
        "seconds_per_run": o.seconds,
        "reference": REF,
        "slow_server": "bench/slow_server.py (asyncio Protocol, uvloop if importable), core 0",
        "tls": ("HTTPS port is HTTP/1.1 only (no http2 on the listener); ECDSA P-256 server "
                "certificate from the tests' throw-away CA; every client runs with verification off"),
        "latency": "submit -> whole reply in the client's hands, per request; wrk: its own --latency distribution",
        "rps": "good replies (status 200, expected body size) per second",
        "wrk_note": "runs -t1 for whole seconds (at least 1 s); no request-count bound, the time bounds it",
    }


# ------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round, 0.5 s per run")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default 3; quick 1)")
    p.add_argument("--seconds", type=float, default=None, help="time bound per run (default 3; quick 0.5)")
    p.add_argument("--workloads", default="", help=f"subset of {','.join(w.key for w in WORKLOADS)}")
    p.add_argument("--clients", default="", help=f"subset of {','.join(c.key for c in CLIENTS)}")
    p.add_argument("--ceiling", default=str(HERE / ".build" / "ceiling"))
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--no-png", action="store_true")
    p.add_argument("--plot-only", action="store_true", help="redraw latest.png from latest.json")
    a = p.parse_args(argv)
    rounds = a.rounds if a.rounds is not None else (1 if a.quick else 3)
    seconds = a.seconds if a.seconds is not None else (0.5 if a.quick else 3.0)
    if rounds < 1 or not 0 < seconds <= 60:
        p.error("rounds must be >= 1 and 0 < seconds <= 60")

    def pick(spec: str, items: list[Any]) -> list[Any]:
        if not spec:
            return items
        keys = spec.split(",")
        unknown = set(keys) - {i.key for i in items}
        if unknown:
            p.error(f"unknown: {', '.join(sorted(unknown))}")
        return [i for i in items if i.key in keys]

    clients = pick(a.clients, CLIENTS)
    if REF not in {c.key for c in clients}:
        clients = [c for c in CLIENTS if c.key == REF] + clients
    return Options(
        rounds=rounds, seconds=seconds, workloads=pick(a.workloads, WORKLOADS), clients=clients,
        ceiling=a.ceiling, wrk=shutil.which("wrk"), python=sys.executable, out=Path(a.out),
        png=not a.no_png, quick=a.quick, plot_only=a.plot_only,
    )


def main(argv: list[str] | None = None) -> int:
    o = parse_args(argv)
    o.out.mkdir(parents=True, exist_ok=True)
    if o.plot_only:
        doc = json.loads((o.out / "latest.json").read_text())
        keys_w = [w["key"] for w in doc["workloads"]]
        keys_c = [c["key"] for c in doc["clients"]]
        o.workloads = [w for w in WORKLOADS if w.key in keys_w]
        o.clients = [c for c in CLIENTS if c.key in keys_c]
        m = doc["meta"]
        sub = (f"{m['mode']} run, median of {m['rounds']} round(s), "
               f"{m['seconds_per_run']:g} s per run, {m['date']}")
        print(plot(doc["summary"], o, o.out / "latest.png", sub))
        return 0
    runs: list[Run] = []
    skip: set[str] = set()
    n_runs = o.rounds * len(o.workloads) * len(o.clients)
    print(f"bench: {o.rounds} round(s) x {len(o.workloads)} workloads x {len(o.clients)} clients "
          f"= {n_runs} runs of <= {o.seconds:g} s; "
          f"{'servers core 0, clients core 1' if pinning_available() else 'NO PINNING'}",
          file=sys.stderr, flush=True)
    t_start = time.monotonic()
    info = meta(o)
    info["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    with Servers() as srv:
        assert srv.directory is not None
        o.tmp = srv.directory
        for rnd in range(1, o.rounds + 1):
            for w in o.workloads:
                k = (rnd - 1) % len(o.clients)
                order = o.clients[k:] + o.clients[:k]
                for c in order:
                    if c.key in skip:
                        runs.append(Run(rnd, w.key, c.key, error="skipped: unavailable earlier",
                                        unavailable=True))
                        continue
                    r = run_one(o, srv, rnd, w, c)
                    runs.append(r)
                    if r.unavailable:
                        skip.add(c.key)
                    shown = (f"{r.result['rps']:>10,.0f} req/s  p50 {_ms(r.result.get('p50_us'))} ms"
                             if r.result else f"n/a ({(r.error or '')[:100]})")
                    print(f"[round {rnd}] {w.key:<7} {c.key:<17} {shown}", file=sys.stderr, flush=True)
    info["total_seconds"] = round(time.monotonic() - t_start, 1)
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    summary = summarize(runs, o)
    title = (f"{'quick' if o.quick else 'full'} run, median of {o.rounds} round(s), "
             f"{o.seconds:g} s per run, {info['date']}")
    text = table(summary, o)
    print(f"\n{title}; requests/s = good replies/s; x ours = req/s / {REF}")
    print(f"servers on core 0, clients on core 1; load average 1 min at start {info['loadavg_start'][0]}, "
          f"at end {info['loadavg_end'][0]}; wrk runs whole seconds ({max(1, round(o.seconds))} s)")
    print(text)
    doc = {
        "meta": info,
        "workloads": [asdict(w) for w in o.workloads],
        "clients": [asdict(c) for c in o.clients],
        "summary": summary,
        "runs": [asdict(r) for r in runs],
        "table": text,
    }
    out_json = o.out / "latest.json"
    out_json.write_text(json.dumps(doc, indent=1))
    print(f"\nwrote {out_json}")
    if o.png:
        print(plot(summary, o, o.out / "latest.png", title))
    print(f"total {info['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

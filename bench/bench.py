"""Benchmark harness: our client against Python peers and two ceilings.

usage: bench.py [--quick] [--rounds N] [--seconds S] [--workloads a,b]
                [--clients a,b] [--out DIR] [--no-png] [--plot-only]

Servers (harness.py) run on core 0: nginx with one worker, and for the
10 ms delay workload a small asyncio server (nginx-light has no echo
module).  Every client run is a separate process pinned to core 1
(``taskset -c 1``): runner.py for the Python clients, the C ceiling
(libcurl + libev, no Python; one build per libcurl) and wrk.  What runs is
in specs.py (workloads, client variants), the report in report.py.

Rounds are interleaved (round 1 runs every client once per workload, then
round 2, ...; the client order rotates each round) and the table shows the
median over rounds of requests/s, p50/p99 latency and CPU time per request
of the client process (all threads), with the libcurl version each client
ran on and its requests/s as a ratio to ours (completions() with
workers=1 = 1.00) in the same run, then issue #12's targets checked
against the run.  Results go to results/latest.json and results/latest.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import CLIENT_CORE, HERE, SYSTEM_BUNDLE, Servers, pinned, pinning_available
from report import fmt_ms, plot, summarize, table, targets, targets_text
from specs import CLIENTS, REF, WORKLOADS, ClientSpec, Workload, applies

RESULTS = HERE / "results"


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
    wrk: str | None
    python: str
    out: Path
    png: bool
    quick: bool
    subset: bool = False  # --workloads or --clients given
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
    base = {"http": srv.http, "https": srv.https, "https-close": srv.https_close,
            "slow": srv.slow}[w.server]
    url = base + w.path
    total = int(w.max_rate * o.seconds)
    env = dict(os.environ)
    env.update(c.env)
    tls = w.server.startswith("https")
    if c.kind == "ceiling":
        argv = [c.binary, url, str(total), str(w.concurrency), f"{o.seconds:g}"]
        if w.body_bytes:
            argv.append(str(w.body_bytes))
        if tls and w.verify:
            env["CEILING_CAFILE"] = str(srv.ca_bundle if w.bundle else srv.ca_file)
        elif tls:
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
            o.python, str(HERE / "runner.py"), c.runner_name, url,
            "--requests", str(total), "--concurrency", str(w.concurrency),
            "--seconds", f"{o.seconds:g}", "--expect-bytes", str(w.expect_bytes),
        ]
        if w.body_bytes:
            argv += ["--body-bytes", str(w.body_bytes)]
        if tls and w.verify and w.bundle:
            argv += ["--cafile", str(srv.ca_bundle)]  # no CA directory: its lookups are lazy
        elif tls and w.verify:
            argv += ["--cafile", str(srv.ca_file), "--capath", str(srv.ca_dir)]
        elif tls:
            argv.append("--insecure")
        if c.pythonpath:
            env["PYTHONPATH"] = c.pythonpath
    return pinned(CLIENT_CORE, argv), env


def spawn(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str, float, bool]:
    """Run ``argv`` to its end: (exit status, stdout, stderr, CPU seconds of
    the process with all its threads (wait4's ru_utime + ru_stime), timed
    out).  taskset execs the client, so the pid waited for is the client's."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            proc.kill()

        watchdog = threading.Timer(timeout, kill)
        watchdog.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)  # blocks: no polling beside the client
        finally:
            watchdog.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"), ru.ru_utime + ru.ru_stime, killed.is_set())


def run_one(o: Options, srv: Servers, rnd: int, w: Workload, c: ClientSpec) -> Run:
    """Run one client on one workload in its own process; never raises."""
    run = Run(rnd, w.key, c.key, loadavg=os.getloadavg()[0])
    if c.kind == "wrk" and o.wrk is None:
        run.error, run.unavailable = "wrk not installed", True
        return run
    if c.kind == "ceiling" and not os.access(c.binary, os.X_OK):
        run.error, run.unavailable = f"{c.binary} not built (bench/run.sh builds it)", True
        return run
    if c.pythonpath and not Path(c.pythonpath).is_dir():
        run.error, run.unavailable = f"{c.pythonpath} not installed (bench/run.sh builds it)", True
        return run
    if w.bundle and srv.ca_bundle is None:
        run.error = f"no system CA bundle ({SYSTEM_BUNDLE})"
        return run
    argv, env = command(o, srv, w, c)
    t0 = time.monotonic()
    try:
        code, stdout, stderr, cpu, killed = spawn(argv, env, o.seconds + 60)
    except OSError as exc:
        run.error, run.unavailable = f"cannot start: {exc}", True
        return run
    run.wall = time.monotonic() - t0
    if killed:
        run.error = f"killed after {o.seconds + 60:.0f} s"
        return run
    try:
        if c.kind == "wrk":
            if code != 0:
                raise ValueError(_tail(stderr or stdout))
            data = parse_wrk(stdout)
        else:
            got = _last_json(stdout)
            if got is None:
                raise ValueError(f"exit {code}: {_tail(stderr or stdout)}")
            data = got
            if "error" in data:
                run.unavailable = code == 3
                raise ValueError(str(data["error"]))
            if c.kind == "ceiling":  # rps over good replies, as the runners count it
                ok = data["requests"] - data["errors"]
                data["rps"] = round(ok / data["seconds"], 1) if data["seconds"] else 0.0
            if code != 0:
                run.note = f"exit {code} after printing its result: {_tail(stderr, 160)}"
        if data["requests"]:
            # the whole process, start-up included; cpu_us (the runner's and
            # the ceiling's own) covers the measured window only
            data["cpu_us_proc"] = round(cpu * 1e6 / data["requests"], 2)
            data.setdefault("cpu_us", data["cpu_us_proc"])  # wrk: its whole process
        run.result = data
    except (ValueError, KeyError) as exc:
        run.error = str(exc) or type(exc).__name__
    return run


# ------------------------------------------------------------------ meta
def mode(o: Options) -> str:
    return ("quick" if o.quick else "full") + (" subset" if o.subset else "")


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
    by_key = {c.key: c for c in CLIENTS}

    def libcurl_of(key: str, code: str) -> str:
        env = dict(os.environ)
        if by_key[key].pythonpath:
            env["PYTHONPATH"] = by_key[key].pythonpath
        return _version_of([o.python, "-c", code], env)

    ours = "import http_async_client as h; print(h.CURL_VERSION)"
    pyc = "import pycurl; print(pycurl.version)"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "pinning": "servers on core 0, clients on core 1" if pinning_available() else "none (fewer than 2 cores)",
        "versions": versions,
        "libcurl": {
            "ours-cq-w1": libcurl_of("ours-cq-w1", ours),
            "ours-cq-w1-curl7": libcurl_of("ours-cq-w1-curl7", ours),
            "ours-cq-w1-src": libcurl_of("ours-cq-w1-src", ours),
            "pycurl-multi": libcurl_of("pycurl-multi", pyc),
            "pycurl-multi-sys": libcurl_of("pycurl-multi-sys", pyc),
            "pycurl-multi-curl7": libcurl_of("pycurl-multi-curl7", pyc),
        },
        "nginx": _version_of([shutil.which("nginx") or "/usr/sbin/nginx", "-v"]),
        "wrk": _version_of([o.wrk, "-v"]) if o.wrk else "not installed",
        "mode": mode(o),
        "rounds": o.rounds,
        "seconds_per_run": o.seconds,
        "reference": REF,
        "slow_server": "bench/slow_server.py (asyncio Protocol, uvloop if importable), core 0",
        "tls": ("HTTPS ports are HTTP/1.1 only (no http2 on the listener); ECDSA P-256 server "
                "certificate from the tests' throw-away CA; 'https': keep-alive, verification off; "
                "'tlsnew'/'tlsnew-nv': keepalive_timeout 0 (a new connection per request; nginx's "
                "session cache and tickets on), verification on with the private CA file "
                "(ours: tls_ca_file when the client has it, else a hashed tls_ca_path) / off"),
        "cpu_us": ("CPU time of the client process, all threads, per completed request: "
                   "runner.py and the ceiling measure CLOCK_PROCESS_CPUTIME_ID over the measured "
                   "window; wrk: wait4() ru_utime+ru_stime of its whole process. cpu_us_proc: "
                   "wait4() of the whole process (start-up and imports included) for every row"),
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
        wrk=shutil.which("wrk"), python=sys.executable, out=Path(a.out),
        png=not a.no_png, quick=a.quick, plot_only=a.plot_only,
        subset=bool(a.workloads or a.clients),
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
        print(plot(doc["summary"], o.workloads, o.clients, o.out / "latest.png", sub))
        return 0
    runs: list[Run] = []
    skip: set[str] = set()
    n_runs = o.rounds * sum(applies(w, c) for w in o.workloads for c in o.clients)
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
                    if not applies(w, c):
                        continue
                    if c.key in skip:
                        runs.append(Run(rnd, w.key, c.key, error="skipped: unavailable earlier",
                                        unavailable=True))
                        continue
                    r = run_one(o, srv, rnd, w, c)
                    runs.append(r)
                    if r.unavailable:
                        skip.add(c.key)
                    shown = (f"{r.result['rps']:>10,.0f} req/s  p50 {fmt_ms(r.result.get('p50_us'))} ms  "
                             f"{r.result.get('cpu_us', 0):.1f} us CPU  libcurl {r.result.get('libcurl', '-')}"
                             if r.result else f"n/a ({(r.error or '')[:100]})")
                    print(f"[round {rnd}] {w.key:<9} {c.key:<18} {shown}", file=sys.stderr, flush=True)
    info["total_seconds"] = round(time.monotonic() - t_start, 1)
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    summary = summarize(runs, o.workloads, o.clients)
    checks = targets(summary)
    title = (f"{mode(o)} run, median of {o.rounds} round(s), "
             f"{o.seconds:g} s per run, {info['date']}")
    text = table(summary, o.workloads, o.clients) + "\n" + targets_text(checks)
    print(f"\n{title}; requests/s = good replies/s; x ours = req/s / {REF}; "
          "CPU us = CPU time of the client process (all threads) per request")
    print(f"servers on core 0, clients on core 1; load average 1 min at start {info['loadavg_start'][0]}, "
          f"at end {info['loadavg_end'][0]}; wrk runs whole seconds ({max(1, round(o.seconds))} s)")
    print(text)
    doc = {
        "meta": info,
        "workloads": [asdict(w) for w in o.workloads],
        "clients": [asdict(c) for c in o.clients],
        "summary": summary,
        "targets": checks,
        "runs": [asdict(r) for r in runs],
        "table": text,
    }
    out_json = o.out / "latest.json"
    out_json.write_text(json.dumps(doc, indent=1))
    print(f"\nwrote {out_json}")
    if o.png:
        print(plot(summary, o.workloads, o.clients, o.out / "latest.png", title))
    print(f"total {info['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Locust worker throughput and CPU: CurlUser against FastHttpUser.

Both run, alternately and in the same invocation, as a standalone headless
Locust process (one worker) pinned to core 1 against the benchmarks' nginx
pinned to core 0 (bench/harness.py), ``wait_time = constant(0)``, the same
``GET /`` task (2-byte body, keep-alive).  The locustfile
(bench/locust_users.py) samples, inside the Locust process, requests and
process CPU time (all threads) over a window that starts after every user
is spawned plus a warm-up, so start-up costs are out of it.

    bench/.venv/bin/python bench/locust_compare.py --users 32 --seconds 8 --rounds 3

Prints one line per run and a summary: requests/s and µs of CPU per
request, median over the rounds, and CurlUser's ratios to FastHttpUser.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import shutil
import tempfile
from pathlib import Path

from harness import CLIENT_CORE, Servers, pinned

HERE = Path(__file__).resolve().parent
CLASSES = ("CurlBench", "FastBench")


def run_one(cls: str, url: str, users: int, seconds: float, warm: float,
            work: Path) -> dict[str, float]:
    sample = work / f"{cls}.json"
    sample.unlink(missing_ok=True)
    env = dict(os.environ, HAC_SAMPLE=str(sample), HAC_WARM_S=str(warm),
               HAC_MEASURE_S=str(seconds))
    total = warm + seconds + 2  # the run outlasts the sampling window
    argv = [sys.executable, "-m", "locust", "-f", str(HERE / "locust_users.py"), "--headless",
            "-u", str(users), "-r", str(users * 10), "-t", f"{total:g}s", "--host", url,
            "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "1", cls]
    proc = subprocess.run(pinned(CLIENT_CORE, argv), capture_output=True, text=True,
                          env=env, timeout=total + 60)
    if not sample.exists():
        raise SystemExit(f"{cls}: no sample (rc {proc.returncode})\n{proc.stderr[-3000:]}")
    got: dict[str, float] = json.loads(sample.read_text())
    got["rps"] = got["requests"] / got["seconds"]
    got["cpu_us"] = got["cpu_s"] / got["requests"] * 1e6 if got["requests"] else float("nan")
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=8.0, help="sampling window per run")
    ap.add_argument("--warm", type=float, default=2.0, help="warm-up after spawning, s")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, list[dict[str, float]]] = {c: [] for c in CLASSES}
    tmp = tempfile.mkdtemp(prefix="hac-locust-")
    servers = Servers().start(slow=False)
    try:
        for r in range(args.rounds):
            order = CLASSES if r % 2 == 0 else CLASSES[::-1]
            for cls in order:
                got = run_one(cls, servers.http, args.users, args.seconds, args.warm, Path(tmp))
                results[cls].append(got)
                print(f"round {r + 1} {cls:9s} {got['rps']:8.0f} req/s  "
                      f"{got['cpu_us']:6.1f} µs CPU/req  CPU {got['cpu_s'] / got['seconds']:.2f}  "
                      f"failures {got['failures']:.0f}", flush=True)
    finally:
        servers.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    med = {c: (statistics.median(g["rps"] for g in results[c]),
               statistics.median(g["cpu_us"] for g in results[c])) for c in CLASSES}
    print(f"\nmedian of {args.rounds} rounds, -u {args.users}, {args.seconds:g} s windows:")
    for c in CLASSES:
        print(f"  {c:9s} {med[c][0]:8.0f} req/s  {med[c][1]:6.1f} µs CPU/req")
    (crps, ccpu), (frps, fcpu) = med["CurlBench"], med["FastBench"]
    print(f"  CurlUser / FastHttpUser: {crps / frps:.2f}x req/s, {ccpu / fcpu:.2f}x CPU per request")


if __name__ == "__main__":
    main()

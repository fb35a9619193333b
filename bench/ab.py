"""Two builds of this package against pycurl, in one run.

Each row is ``LABEL=DIR:CLIENT``: runner.py's CLIENT with DIR first on
PYTHONPATH (a build made with ``pip install --target DIR``; an empty DIR is
the interpreter's own install).  Every row does the same keep-alive GETs of
2 bytes against the bench nginx (``harness.Servers``, core 0), pinned to
core 1, in interleaved rounds; the table gives the medians and each row's
requests/s as a ratio to the first row (pycurl, by default).

usage: python bench/ab.py --row before=/tmp/hac-before:ours-cq-caller \\
           --row after=bench/.venv/hac-curlsrc:ours-cq-caller [--conc 1,64]
           [--rounds 5] [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import CLIENT_CORE, Servers, pinned  # noqa: E402


def run(row: str, url: str, conc: int, seconds: float) -> dict[str, float]:
    label, _, rest = row.partition("=")
    path, _, client = rest.rpartition(":")
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = os.path.abspath(path)
    cmd = [sys.executable, str(HERE / "runner.py"), client, url, "--requests", "10000000",
           "--concurrency", str(conc), "--seconds", str(seconds)]
    out = subprocess.run(pinned(CLIENT_CORE, cmd), capture_output=True, text=True, env=env,
                         timeout=seconds * 10 + 60)
    got: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    if "error" in got or got.get("errors"):
        raise SystemExit(f"{label}: {out.stdout}{out.stderr}")
    return got


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--row", action="append", default=[], help="LABEL=DIR:CLIENT")
    p.add_argument("--conc", default="1,64")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=2.0)
    a = p.parse_args()
    rows = ["pycurl=:pycurl-multi", *a.row]
    srv = Servers().start(slow=False)
    try:
        url = srv.http + "/"
        for conc in (int(c) for c in a.conc.split(",")):
            got: dict[str, list[dict[str, float]]] = {r: [] for r in rows}
            for _ in range(a.rounds):  # interleaved: the machine's noise hits all rows alike
                for r in rows:
                    got[r].append(run(r, url, conc, a.seconds))
            med = {r: {k: statistics.median(g[k] for g in got[r]) for k in ("rps", "cpu_us", "p50_us")}
                   for r in rows}
            ref = med[rows[0]]["rps"]
            print(f"c={conc}, median of {a.rounds} rounds, {a.seconds} s each")
            print(f"{'row':<12} {'req/s':>9} {'ratio':>6} {'CPU us':>7} {'p50 us':>7}  libcurl")
            for r in rows:
                m = med[r]
                print(f"{r.partition('=')[0]:<12} {m['rps']:9,.0f} {m['rps'] / ref:6.2f} "
                      f"{m['cpu_us']:7.1f} {m['p50_us']:7.1f}  {got[r][0].get('libcurl', '?')}", flush=True)
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

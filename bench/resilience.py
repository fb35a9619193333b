"""Hedging and failover, measured (issue #15).

1. A slow tail: a server on 127.0.0.1 answers at once except every 20th
   request, which it holds 200 ms (5%).  The same bounded load (N GETs,
   C at a time) runs without hedging, with ``hedge_after=20`` and with
   ``hedge_after="p95"`` (budget 10%), interleaved for ROUNDS rounds; the
   report gives p50/p90/p99/p99.9 of each (from the replies' own totals
   plus the wait, i.e. the time from submit to reply, measured in Python)
   and the hedges sent.
2. Failover: a round-robin set of three destinations; after a third of the
   run one of them is stopped (its port refuses); the report gives the
   failed requests, how many went to it after it was marked down, and the
   attempts of the rest.  With ``retries=1`` the failures are retried on
   another destination.

    .venv-3.11/bin/python bench/resilience.py [--requests 3000] [--concurrency 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import harness  # noqa: F401  (puts tests/ on sys.path)

import http_async_client as hac
from support.scripted import Answer, ScriptedServer, Seen


def tail_script(seen: Seen, index: int) -> Answer:
    return Answer(delay=0.2 if index % 20 == 19 else 0.0)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s))) - 1))]


def tail_run(url: str, n: int, conc: int, hedge: int | str | None) -> tuple[list[float], int]:
    with hac.Client(connection_timeout=5000, hedge_after=hedge, hedge_budget=0.1) as c:
        for _ in range(100):  # warm: connections and the origin's histogram
            c.query(url + "/warm", hedge_after=None).result()
        lat: list[float] = []
        i = 0
        while i < n:  # a batch of conc, each timed from submit to its reply
            batch = min(conc, n - i)
            t0 = time.perf_counter()
            for _ in range(batch):
                c.query(url + "/t")
            for r in c.completions(timeout=10):
                assert r.ok, r.err
                lat.append((time.perf_counter() - t0) * 1e3)
            i += batch
        return lat, c.stats()["hedges"]


def failover_run(n: int, conc: int, retries: int) -> dict[str, float]:
    ss = [ScriptedServer() for _ in range(3)]
    try:
        with hac.Client(connection_timeout=3000, retries=retries, retry_backoff=1) as c:
            c.destinations("bench", [s.url for s in ss], max_failures=3, down_for=30)
            failed = 0
            attempts = 0
            marked_at = None
            sent_after = 0
            for i in range(0, n, conc):
                if i >= n // 3 and ss[1]._listener is not None:
                    ss[1].stop()
                hs = [c.query("dest://bench/f") for _ in range(conc)]
                for h in hs:
                    r = h.result()
                    failed += not r.ok
                    attempts += r.attempts
                st = c.destination_state("bench")[1]
                if st["state"] == "down" and marked_at is None:
                    marked_at = st["requests"]
            sent_after = c.destination_state("bench")[1]["requests"] - (marked_at or 0)
            return {"failed": failed, "attempts_per_request": attempts / n,
                    "sent_to_dead_after_marked": sent_after}
    finally:
        for s in ss:
            s.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    server = ScriptedServer(tail_script)
    modes: list[tuple[str, int | str | None]] = [("no hedging", None), ("hedge_after=20", 20),
                                                 ('hedge_after="p95"', "p95")]
    got: dict[str, list[tuple[list[float], int]]] = {m: [] for m, _ in modes}
    try:
        for _ in range(a.rounds):
            for name, h in modes:
                got[name].append(tail_run(server.url, a.requests, a.concurrency, h))
    finally:
        server.stop()
    print(f"slow tail: 5% of requests held 200 ms; {a.requests} GETs, {a.concurrency} at a time, "
          f"median of {a.rounds} rounds (ms, submit to reply)")
    print(f"{'mode':<20} {'p50':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'hedges':>8}")
    for name, _ in modes:
        rows = got[name]
        med = {q: statistics.median(pct(lat, q) for lat, _ in rows) for q in (50, 90, 99, 99.9)}
        hedges = statistics.median(h for _, h in rows)
        print(f"{name:<20} {med[50]:8.2f} {med[90]:8.2f} {med[99]:8.2f} {med[99.9]:8.2f} "
              f"{hedges / a.requests:8.1%}")
    for retries in (0, 1):
        f = failover_run(a.requests, a.concurrency, retries)
        print(f"failover, retries={retries}: one of 3 destinations stopped after a third of "
              f"{a.requests}: failed {f['failed']}, sent to it after it was marked down "
              f"{f['sent_to_dead_after_marked']}, attempts/request {f['attempts_per_request']:.3f}")


if __name__ == "__main__":
    main()

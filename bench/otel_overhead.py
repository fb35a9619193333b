"""What contrib.otel costs per request, and that it costs nothing when off.

    bench/.venv/bin/python bench/otel_overhead.py --requests 20000 --rounds 5

Against the bench nginx (core 0, this process on core 1), each round sends
``--requests`` GETs (concurrency 64: ``query()`` then ``completions()``)
on three clients, in turn: never instrumented; instrumented and then
uninstrumented (the instance is the plain client again); instrumented with
an SDK TracerProvider that has no span processor (span objects are made,
nothing is exported).  Prints process CPU µs per request (all threads) and
requests/s, medians over the rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from harness import CLIENT_CORE, Servers, pinning_available

import http_async_client as hac
from http_async_client.contrib.otel import instrument, uninstrument


def run(client: hac.Client, url: str, n: int, conc: int = 64) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    sent = 0
    for _ in range(min(conc, n)):
        client.query(url)
        sent += 1
    for reply in client.completions(timeout=10):
        if reply.status != 200:
            raise SystemExit(f"failed: {reply.err or reply.status}")
        if sent < n:
            client.query(url)
            sent += 1
    c1, t1 = time.process_time(), time.perf_counter()
    return (c1 - c0) / n * 1e6, n / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if pinning_available():
        os.sched_setaffinity(0, {CLIENT_CORE})
    from opentelemetry.sdk.trace import TracerProvider

    servers = Servers().start(slow=False)
    try:
        url = servers.http + "/"
        plain = hac.Client(workers=1, connection_timeout=5000)
        undone = hac.Client(workers=1, connection_timeout=5000)
        instrument(undone, tracer_provider=TracerProvider())
        uninstrument(undone)
        traced = hac.Client(workers=1, connection_timeout=5000)
        instrument(traced, tracer_provider=TracerProvider())
        clients = {"plain": plain, "uninstrumented": undone, "instrumented": traced}
        for c in clients.values():
            run(c, url, 2000)  # warm: connections made, caches filled
        got: dict[str, list[tuple[float, float]]] = {k: [] for k in clients}
        for r in range(args.rounds):
            names = list(clients) if r % 2 == 0 else list(clients)[::-1]
            for name in names:
                got[name].append(run(clients[name], url, args.requests))
        for c in clients.values():
            c.close()
    finally:
        servers.stop()
    print(f"median of {args.rounds} rounds x {args.requests} GETs, concurrency 64:")
    for name, rows in got.items():
        cpu = statistics.median(r[0] for r in rows)
        rps = statistics.median(r[1] for r in rows)
        print(f"  {name:15s} {cpu:6.2f} µs CPU/request  {rps:8.0f} req/s")


if __name__ == "__main__":
    main()

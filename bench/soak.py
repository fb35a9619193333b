"""Soak: a long run of mixed requests; RSS must stay flat.

    python bench/soak.py [TOTAL] [--max-seconds S]
    python bench/soak.py --faults [--seconds 3600] [--switch 4] [--window 96]

Plain: successes, HTTP errors, refused connections and deadline misses
against the package's loopback server (a child process), keeping 256 in
flight.  Prints RSS after 50,000 requests and at the end; exits 1 if it grew
by 5 % or more or if any reply went missing.  Bounded in count and in time.

``--faults``: HTTP/1.1, HTTPS and HTTP/2 against servers in a network
namespace while the fault rig switches faults every few seconds (root
needed; soak_faults.py says what is checked).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import http_async_client as hac


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--faults" in argv:
        # imported here: the plain soak needs neither root nor the test rig
        import soak_faults
        return soak_faults.main([a for a in argv if a != "--faults"])
    p = argparse.ArgumentParser()
    p.add_argument("total", nargs="?", type=int, default=1_000_000)
    p.add_argument("--max-seconds", type=float, default=1800.0)
    p.add_argument("--concurrency", type=int, default=256)
    args = p.parse_args(argv)
    server = subprocess.Popen(
        [sys.executable, "-m", "http_async_client._loopback", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    base = f"http://127.0.0.1:{int(server.stdout.readline())}"
    kinds = [f"{base}/", f"{base}/bytes/2000", f"{base}/", "http://127.0.0.1:9/", f"{base}/delay/200"]
    checkpoint = min(50_000, args.total)
    rss_at_checkpoint = 0
    series: list[tuple[int, int]] = []
    step = max(1, args.total // 10)
    seen = sent = 0
    limit = time.monotonic() + args.max_seconds
    t0 = time.monotonic()
    try:
        with hac.Client(connection_timeout=100) as client:
            def submit() -> None:
                nonlocal sent
                client.query(kinds[sent % len(kinds)], b"p" if sent % 7 == 0 else None)
                sent += 1

            for _ in range(min(args.concurrency, args.total)):
                submit()
            for _reply in client.completions(timeout=30):
                seen += 1
                if seen == checkpoint:
                    rss_at_checkpoint = rss_kib()
                if seen % step == 0:
                    series.append((seen, rss_kib()))
                if sent < args.total and time.monotonic() < limit:
                    submit()
            stats = client.stats()
        rss_end = rss_kib()
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    growth = (rss_end - rss_at_checkpoint) / rss_at_checkpoint * 100 if rss_at_checkpoint else 0.0
    report = {
        "requests": seen,
        "seconds": round(time.monotonic() - t0, 1),
        "rss_kib_at_50k": rss_at_checkpoint,
        "rss_kib_end": rss_end,
        "growth_percent": round(growth, 2),
        "rss_kib_series": series,
        "stats": stats,
    }
    print(json.dumps(report))
    accounted = stats["replies"] + stats["errors"] + stats["timeouts"] + stats["cancelled"]
    ok = seen == sent and accounted == sent and growth < 5.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

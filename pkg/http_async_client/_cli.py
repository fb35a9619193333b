"""Command line: fetch URLs concurrently, or load-test a loopback server.

``python -m http_async_client URL...`` fetches each URL once, all at once,
and prints status, time and size.  With no URL it starts an embedded
loopback HTTP server in a child process and runs a short bounded load
against it, printing requests/s and latency percentiles.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Sequence

from ._client import Client
from ._exceptions import HttpAsyncClientError
from ._ffi import CURL_VERSION
from ._version import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="http-async-client",
        description="Fetch URLs concurrently; with no URL, load-test an "
        "embedded loopback server.",
    )
    p.add_argument("urls", nargs="*", metavar="URL")
    p.add_argument("-X", "--method", default=None)
    p.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'")
    p.add_argument("-d", "--data", default=None, help="request body (POST by default)")
    p.add_argument("--timeout", type=int, default=5000, help="deadline per request, ms")
    p.add_argument("-k", "--insecure", action="store_true", help="no TLS verification")
    p.add_argument("-n", "--requests", type=int, default=50000, help="load: total requests")
    p.add_argument("-c", "--concurrency", type=int, default=64, help="load: in flight")
    p.add_argument("-z", "--duration", type=float, default=5.0, help="load: max seconds")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__} ({CURL_VERSION})")
    return p


def _client(args: argparse.Namespace) -> Client:
    verify = 0 if args.insecure else 1
    return Client(
        workers=args.workers,
        connection_timeout=args.timeout,
        tls_verify_host=2 if verify else 0,
        tls_verify_peer=verify,
    )


def fetch(args: argparse.Namespace) -> int:
    failed = 0
    with _client(args) as client:
        started = {}
        for url in args.urls:
            h = client.query(url, args.data, method=args.method, headers=args.header)
            started[h.id] = time.perf_counter()
        for reply in client.completions():
            ms = (time.perf_counter() - started[reply.id]) * 1000
            if reply.ok:
                print(f"{reply.status:<4} {ms:8.1f} ms {reply.bs:>10} B  {reply.url}")
            else:
                failed += 1
                print(f"ERR  {ms:8.1f} ms {'-':>10}    {reply.url}  {reply.err}")
    return 1 if failed else 0


def _percentile(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return 0.0
    k = min(len(sorted_ns) - 1, int(round(q / 100 * (len(sorted_ns) - 1))))
    return sorted_ns[k] / 1000.0


def load(client: Client, url: str, args: argparse.Namespace) -> dict[str, float]:
    """Keep ``concurrency`` queries in flight until ``requests`` are done or
    ``duration`` seconds have passed; measure submit-to-reply latency."""
    perf = time.perf_counter_ns
    total = max(1, args.requests)
    limit = time.perf_counter() + args.duration
    starts: dict[int, int] = {}
    lat: list[int] = []
    ok = errors = sent = 0
    t0 = time.perf_counter()
    for _ in range(min(args.concurrency, total)):
        h = client.query(url)
        starts[h.id] = perf()
        sent += 1
    for reply in client.completions():
        lat.append(perf() - starts.pop(reply.id))
        if reply.ok and reply.status == 200:
            ok += 1
        else:
            errors += 1
        if sent < total and time.perf_counter() < limit:
            h = client.query(url)
            starts[h.id] = perf()
            sent += 1
    elapsed = time.perf_counter() - t0
    lat.sort()
    return {
        "requests": len(lat),
        "ok": ok,
        "errors": errors,
        "seconds": elapsed,
        "rps": len(lat) / elapsed if elapsed else 0.0,
        "p50_us": _percentile(lat, 50),
        "p90_us": _percentile(lat, 90),
        "p99_us": _percentile(lat, 99),
        "max_us": lat[-1] / 1000.0 if lat else 0.0,
    }


def demo(args: argparse.Namespace) -> int:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cmd = [sys.executable, "-m", "http_async_client._loopback", "0"]
    if len(cpus) >= 2:
        server_cmd.append(str(cpus[0]))
    server = subprocess.Popen(server_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/"
        if len(cpus) >= 2:
            os.sched_setaffinity(0, {cpus[1]})  # before the workers start
        print(f"http_async_client {__version__}, {CURL_VERSION.split()[0]}")
        print(
            f"embedded loopback server {url} (pid {server.pid}); "
            f"{args.requests} requests max, {args.duration:g} s max, "
            f"concurrency {args.concurrency}, workers {args.workers}"
        )
        with _client(args) as client:
            res = load(client, url, args)
            stats = client.stats()
        print(
            f"{res['requests']:.0f} requests in {res['seconds']:.2f} s: "
            f"{res['rps']:.0f} requests/s, {res['ok']:.0f} ok, {res['errors']:.0f} errors"
        )
        print(
            f"latency p50 {res['p50_us']:.0f} us  p90 {res['p90_us']:.0f} us  "
            f"p99 {res['p99_us']:.0f} us  max {res['max_us']:.0f} us"
        )
        print(
            "stats: " + ", ".join(f"{k}={stats[k]}" for k in ("requests", "replies", "errors", "timeouts"))
        )
        return 0 if res["errors"] == 0 else 1
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.urls:
            return fetch(args)
        return demo(args)
    except HttpAsyncClientError as exc:
        print(f"http-async-client: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""100,000 queries at once to one client: completion, wall time, memory.

usage: many.py [-n 100000] [--protocol h2|h1|h2c] [--limit SECONDS] [--out FILE]

One Client (workers=1, connection_timeout=60000 ms) against the bench nginx
on 127.0.0.1.  All N queries are submitted in one burst, then drained with
``completions()``.  Memory is sampled

- before: the client created, its worker idle (no connection yet),
- peak: right after the last ``query()`` returned (most requests are still
  queued for the worker or in flight),
- after: once every reply has been drained (the client still open),
- closed: after ``close()``,

as ``stats()["mem_in_use"]`` (the accounted allocator) and the process RSS.
To count the memory *beyond libcurl's own*, libcurl is initialised first
(``curl_global_init`` through ctypes, plain malloc), so the accounted
allocator holds only the C core's allocations (queued request blobs,
request records, reply buffers); ``--account-libcurl`` skips that and lets
libcurl allocate through it too (the package's default "shm" mode).  RSS
counts everything: Python's handles, the core and libcurl.  The figure of
merit, as the benchmark issue words it ("memory per in-flight request
beyond libcurl's own", target < 2 KiB), is (peak - before) / N of the
accounted C core plus Python's own objects (tracemalloc); RSS per request
is printed beside it: it also holds libcurl's per-transfer state (the peak
sample says how many requests the worker had already handed to libcurl)
and the allocators' slack.

Default protocol h2: HTTPS with HTTP/2 negotiated by ALPN, so the burst is
multiplexed over a few connections (nginx allows 1000 streams each).  N
concurrent HTTP/1.1 transfers would need N sockets to one address and port
(more than the ~28k ephemeral ports and the open-file limit), and h2c with
prior knowledge trips libcurl 7.88's connection-reuse bug (curl issue 10634)
under this load.  The run is bounded: ``--limit`` seconds (default 60) for
the burst, after which the client is closed (the rest is cancelled), and a
watchdog ends the process 120 s later if ``close()`` has not returned.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import ctypes.util
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from harness import CLIENT_CORE, HERE, Servers, pinning_available, raise_nofile
from support import fds  # tests/support: harness puts tests/ on sys.path

TARGET = 2048


_STATM = os.open("/proc/self/statm", os.O_RDONLY)  # opened once: the burst may exhaust fds
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process."""
    return int(os.pread(_STATM, 256, 0).split()[1]) * _PAGE


class FdWatch:
    """Samples this process's open file descriptors every 0.25 s (max kept)."""

    def __init__(self) -> None:
        self.max = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.max = max(self.max, fds.count())
            except OSError:  # out of descriptors right now: that is the max
                self.max = max(self.max, -1)

    def __enter__(self) -> FdWatch:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def sample(client: Any) -> dict[str, int]:
    """mem_in_use, mem_peak, queued, requests handed to libcurl, RSS."""
    s = client.stats()
    return {
        "mem_in_use": s["mem_in_use"],
        "mem_peak": s["mem_peak"],
        "queued": s["queued"],
        "handed_to_libcurl": s["requests"],
        "inflight": s["inflight"],
        "rss": rss_bytes(),
    }


class Watchdog:
    """Bounds the whole check: past ``seconds`` it writes what it has, stops
    the servers and ends the process (a close() of a stuck burst can take
    minutes in C)."""

    def __init__(self, seconds: float, out: dict[str, Any], path: Path, srv: Servers) -> None:
        self._done = threading.Event()
        self._t = threading.Thread(target=self._loop, args=(seconds, out, path, srv), daemon=True)

    def _loop(self, seconds: float, out: dict[str, Any], path: Path, srv: Servers) -> None:
        if self._done.wait(seconds):
            return
        out["watchdog"] = f"ended by the watchdog after {seconds:.0f} s (client.close() still running)"
        print(f"many.py: {out['watchdog']}; partial results: {json.dumps(out)[:2000]}", flush=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(out, indent=1))
        finally:
            srv.stop()
            os._exit(2)

    def __enter__(self) -> Watchdog:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()


def run(n: int, protocol: str, limit: float, account_libcurl: bool, pin: bool,
        path: Path) -> dict[str, Any]:
    """Submit n queries at once, drain them, return the measurements."""
    import http_async_client as hac
    from http_async_client._ffi import CURL_VERSION

    nofile = raise_nofile()
    out: dict[str, Any] = {"n": n, "protocol": protocol, "libcurl": CURL_VERSION,
                           "nofile": nofile, "workers": 1, "connection_timeout_ms": 60000,
                           "libcurl_accounted": account_libcurl, "pinned": pin,
                           "limit_seconds": limit, "target_bytes": TARGET}
    if not account_libcurl:
        # libcurl initialised first with malloc: the accounted allocator then
        # holds the C core's own allocations only ("beyond libcurl's own")
        ctypes.CDLL(ctypes.util.find_library("curl") or "libcurl.so.4").curl_global_init(3)
    if pin and pinning_available():  # before the worker thread starts: it inherits core 1
        os.sched_setaffinity(0, {CLIENT_CORE})
    with Servers() as srv, Watchdog(limit + 120, out, path, srv):
        url = {"h2": srv.h2, "h1": srv.http, "h2c": srv.h2c}[protocol] + "/"
        kw: dict[str, Any] = {"http_version": 2} if protocol == "h2c" else {}
        out["url"] = url
        client = hac.Client(workers=1, connection_timeout=60000, tls_verify_peer=0, tls_verify_host=0)
        ok = 0
        errors: collections.Counter[str] = collections.Counter()
        versions: collections.Counter[str] = collections.Counter()
        try:
            time.sleep(0.2)  # the worker thread is up and idle
            before = out["before"] = sample(client)
            query = client.query
            with FdWatch() as watch:
                tracemalloc.start()
                t0 = time.perf_counter()
                for _ in range(n):
                    query(url, **kw)
                out["submit_seconds"] = round(time.perf_counter() - t0, 3)
                py_bytes = tracemalloc.get_traced_memory()[0]
                tracemalloc.stop()
                peak = out["peak"] = sample(client)
                out["per_request_accounted"] = round((peak["mem_in_use"] - before["mem_in_use"]) / n, 1)
                out["per_request_rss"] = round((peak["rss"] - before["rss"]) / n, 1)
                out["per_request_python"] = round(py_bytes / n, 1)
                deadline = t0 + limit
                stopped = False
                while True:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        stopped = True
                        break
                    try:
                        r = next(client.completions(timeout=remaining))
                    except StopIteration:
                        break
                    except hac.WaitTimeout:
                        stopped = True
                        break
                    if r.ok and r.status == 200:
                        ok += 1
                        versions[r.http_version] += 1
                    else:
                        errors[(r.err or f"status {r.status}")[:120]] += 1
                wall = time.perf_counter() - t0
                out["after"] = sample(client)
            out["max_open_fds"] = watch.max
            out.update(ok=ok, errors=sum(errors.values()), error_kinds=errors.most_common(5),
                       http_versions=dict(versions), stopped_at_limit=stopped,
                       wall_seconds=round(wall, 3), rps=round(ok / wall, 1) if wall else 0.0)
        finally:
            t_close = time.perf_counter()
            client.close()
            out["close_seconds"] = round(time.perf_counter() - t_close, 3)
        out["closed"] = {"mem_in_use": client.stats().get("mem_in_use", 0), "rss": rss_bytes()}
    out["per_request_mem_peak"] = round((out["after"]["mem_peak"] - before["mem_in_use"]) / n, 1)
    out["completed"] = ok == n
    out["per_request_beyond_libcurl"] = round(
        out["per_request_accounted"] + out["per_request_python"], 1
    )
    out["memory_ok"] = out["per_request_beyond_libcurl"] < TARGET
    out["pass"] = out["completed"] and out["memory_ok"]
    return out


def report(r: dict[str, Any]) -> str:
    """Human-readable summary."""
    mib = 1024 * 1024

    def row(name: str, s: dict[str, int]) -> str:
        extra = ""
        if "queued" in s:
            extra = f"  queued {s['queued']:>6}  handed to libcurl {s['handed_to_libcurl']:>6}"
        return (f"  {name:<8} accounted {s['mem_in_use'] / mib:9.1f} MiB  "
                f"RSS {s['rss'] / mib:9.1f} MiB{extra}")

    acc = "core + libcurl" if r["libcurl_accounted"] else "C core only"
    lines = [
        f"many.py: {r['n']:,} queries at once, one client (workers=1), {r['protocol']} {r['url']}",
        f"  {r['libcurl'].split()[0]}; completed ok {r['ok']:,} of {r['n']:,}, errors {r['errors']}"
        + (f" (stopped at the {r['limit_seconds']:g} s limit)" if r["stopped_at_limit"] else "")
        + (": COMPLETE" if r["completed"] else ": NOT COMPLETE"),
        f"  submit {r['submit_seconds']:.2f} s, wall {r['wall_seconds']:.2f} s ({r['rps']:,.0f} replies/s), "
        f"close {r['close_seconds']:.1f} s; open fds max {r['max_open_fds']:,} (limit {r['nofile']:,})",
        row("before", r["before"]),
        row("peak", r["peak"]),
        row("after", r["after"]),
        row("closed", r["closed"]),
        f"  per request at the submit peak: accounted ({acc}) {r['per_request_accounted']:,.0f} B "
        f"+ Python objects (tracemalloc) {r['per_request_python']:,.0f} B "
        f"= {r['per_request_beyond_libcurl']:,.0f} B beyond libcurl's own, "
        f"target < {r['target_bytes']} B: " + ("PASS" if r["memory_ok"] else "FAIL"),
        f"  RSS per request (everything, libcurl's per-transfer state included): "
        f"{r['per_request_rss']:,.0f} B",
        f"  accounted high-water mark ({acc}): {r['per_request_mem_peak']:,.0f} B per request",
    ]
    for err, count in r["error_kinds"]:
        lines.append(f"  error x{count}: {err}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=100_000)
    p.add_argument("--protocol", choices=("h2", "h1", "h2c"), default="h2")
    p.add_argument("--limit", type=float, default=60.0, help="max seconds for the whole burst")
    p.add_argument("--account-libcurl", action="store_true",
                   help="let libcurl allocate through the accounted allocator too")
    p.add_argument("--pin", action="store_true", help="run the client on core 1 only")
    p.add_argument("--out", default=str(HERE / "results" / "many.json"))
    a = p.parse_args(argv)
    if a.n < 1 or a.n > 1_000_000:
        p.error("-n must be in 1..1000000")
    out = Path(a.out)
    r = run(a.n, a.protocol, a.limit, a.account_libcurl, a.pin, out)
    print(report(r))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=1))
    print(f"wrote {out}")
    return 0 if r["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())

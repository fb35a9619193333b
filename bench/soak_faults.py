"""Soak under network faults (issue #17): a mixed load while the rig
switches faults every few seconds.

    python bench/soak.py --faults [--seconds 3600] [--switch 4] [--window 96]

The servers run in a network namespace of the rig (tests/support/netns.py,
faults.py; root needed): the Python HTTP/1.1 server and nginx (HTTPS/1.1,
HTTP/2 over TLS, h2c).  The client keeps WINDOW requests in flight, a mix
of GETs and POSTs over the four protocols, each with a 2 s deadline and
``retries=1``, while every SWITCH seconds the next fault of the cycle is
applied: none, 5% loss both ways, a black hole, the server's sockets
killed (``ss -K``), the link down.  Every request must be answered exactly
once (ok, a failed reply or a deadline miss; none lost, none twice); RSS
after the warm-up (a tenth of the run, at least ten switches, at most
half the run) must not grow by 5% or more by the end (both read after
``malloc_trim(0)``; the untrimmed figures and a series of RSS, the core's
bytes, glibc's heap in use and free, and Python's blocks are printed); the client's fds and threads must be back
to their baseline once it is closed.  Exits 1 on any miss.  Bounded in
time (``--seconds``) and by the window.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import itertools
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import harness  # noqa: F401  (puts tests/ on sys.path)

import http_async_client as hac
from support.certs import make_certs
from support.fds import FdBaseline
from support.faultrun import os_threads, wait_threads
from support.faults import Faults
from support.netns import ServerHost
from support.nsservers import H1Server, NsNginx, issue_ip_cert

from soak import rss_kib


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def heap_kib() -> tuple[int, int]:
    """glibc's heap: KiB allocated (incl. mmapped blocks) and KiB free but
    kept; tells a leak from fragmentation when RSS grows (0, 0 off glibc)."""
    try:
        f = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return 0, 0
    f.restype = _Mallinfo2
    m = f()
    return (m.uordblks + m.hblkhd) // 1024, m.fordblks // 1024


def trimmed_rss_kib() -> tuple[int, int]:
    """RSS before and after ``malloc_trim(0)``: glibc keeps freed heap pages
    (measured: up to ~6 MB after a few minutes of faults, flat after that,
    while the bytes in use stay flat), so RSS after the trim is what the
    process really holds; a leak grows both."""
    before = rss_kib()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return before, rss_kib()


def fault_cycle(faults: Faults, ports: list[int]) -> Iterator[tuple[str, contextlib.AbstractContextManager[object]]]:
    for k in itertools.count():
        kind = k % 5
        if kind == 0:
            yield "none", contextlib.nullcontext()
        elif kind == 1:
            yield "loss 5%", faults.loss(5)
        elif kind == 2:
            yield "black hole", faults.blackhole()
        elif kind == 3:
            @contextlib.contextmanager
            def killed() -> Iterator[None]:
                for p in ports:
                    faults.kill_connections(p)
                yield
            yield "sockets killed", killed()
        else:
            yield "link down", faults.link_outage()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3600.0)
    p.add_argument("--switch", type=float, default=4.0)
    p.add_argument("--window", type=int, default=96)
    a = p.parse_args(argv)
    fds = FdBaseline(collect=True)
    threads = os_threads()
    tmp = Path(tempfile.mkdtemp(prefix="soakf"))
    certs = make_certs(tmp / "certs")
    outcome: collections.Counter[str] = collections.Counter()
    missing = dupes = 0
    with ServerHost() as host:
        faults = Faults(host)
        h1 = H1Server(host, tmp)
        h1.start()
        cert, key = issue_ip_cert(certs, host.ip, tmp / "pki")
        ngx = NsNginx(host, tmp / "nginx", cert, key, h2c_port=8082, tls1_port=8444)
        ngx.start()
        assert ngx.h2c_port is not None and ngx.tls1_port is not None
        targets = [(h1.url, {}), (ngx.tls1_url, {}), (ngx.tls_url, {}),
                   (ngx.h2c_url, {"http_version": 2})]
        ports = [h1.port, ngx.tls1_port, ngx.tls_port, ngx.h2c_port]
        t0 = time.monotonic()
        end = t0 + a.seconds
        # warm: two whole cycles of faults (each makes new connections, TLS
        # sessions, buffers) or a tenth of the run
        # (never past the middle: a short run must still measure growth)
        warm_until = t0 + min(max(10 * a.switch, a.seconds / 10), a.seconds / 2)
        rss_warm = raw_warm = 0
        mem_warm = 0
        # (seconds, RSS KiB, C core KiB in use, malloc KiB in use, malloc
        # KiB free, Python blocks): where growth comes from
        series: list[tuple[int, ...]] = []
        sample_every = max(5 * a.switch, a.seconds / 12)
        sample_at = t0 + sample_every
        pending: dict[int, float] = {}
        sent = 0
        name: str = "done"
        cm: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        try:
            with hac.Client(workers=2, connection_timeout=2000, connect_timeout=500,
                            retries=1, retry_backoff=10, tls_ca_file=str(certs.ca_cert)) as c:
                cycle = fault_cycle(faults, ports)
                name, cm = next(cycle)
                cm.__enter__()
                switch_at = t0 + a.switch
                while time.monotonic() < end or pending:
                    now = time.monotonic()
                    if now >= switch_at and now < end:
                        cm.__exit__(None, None, None)
                        name, cm = next(cycle)
                        cm.__enter__()
                        switch_at = now + a.switch
                    if now >= end and name != "done":
                        cm.__exit__(None, None, None)
                        name, cm = "done", contextlib.nullcontext()
                    while now < end and len(pending) < a.window:
                        base, opts = targets[sent % len(targets)]
                        body = b"p" * 100 if sent % 3 == 0 else None
                        h = c.query(f"{base}/{'post' if body else 'get'}/{sent}", body, **opts)
                        pending[h.id] = now
                        sent += 1
                    for batch in c.completions(timeout=5, batch=True):
                        for r in batch:
                            if pending.pop(r.id, None) is None:
                                dupes += 1  # ids are unique: a second reply
                                continue
                            outcome["ok" if r.ok else "timeout" if r.timed_out else "error"] += 1
                        break
                    if not rss_warm and time.monotonic() >= warm_until:
                        raw_warm, rss_warm = trimmed_rss_kib()
                        mem_warm = c.stats()["mem_in_use"]
                    if time.monotonic() >= sample_at:
                        series.append((round(time.monotonic() - t0), rss_kib(),
                                       c.stats()["mem_in_use"] // 1024, *heap_kib(),
                                       sys.getallocatedblocks()))
                        sample_at += sample_every
                    if time.monotonic() > end + 30:
                        missing = len(pending)
                        break
                raw_end, rss_end = trimmed_rss_kib()
                st = c.stats()
        finally:
            # the fault in force when the loop ended (e.g. its last requests
            # answered before it saw the end) is lifted before the rig goes
            if name != "done":
                cm.__exit__(None, None, None)
            faults.close()
            ngx.stop()
            h1.stop()
    fds.assert_back(what="after the soak's client closed")
    now_threads = wait_threads(threads)
    growth = (rss_end - rss_warm) / rss_warm * 100 if rss_warm else 0.0
    raw_growth = (raw_end - raw_warm) / raw_warm * 100 if raw_warm else 0.0
    took = time.monotonic() - t0
    print(f"soak under faults: {sent} requests in {took:.0f} s ({sent / took:.0f}/s), "
          f"outcomes {dict(outcome)}, missing {missing}, answered twice {dupes}, "
          f"retries {st['retries']}, resent {st['resent']}, dead connections "
          f"{st['dead_connections']}; C memory in use {mem_warm} -> {st['mem_in_use']} B; RSS after malloc_trim {rss_warm} -> {rss_end} KiB ({growth:+.1f}%), "
          f"before it {raw_warm} -> {raw_end} KiB ({raw_growth:+.1f}%); "
          f"threads {threads} -> {now_threads}")
    print("  s: RSS KiB / C core KiB / malloc in use KiB / malloc free KiB / Python blocks")
    for row in series:
        print("  " + " / ".join(str(v) for v in row))
    ok = (missing == 0 and dupes == 0 and sum(outcome.values()) == sent and rss_warm > 0 and growth < 5.0
          and now_threads <= threads and outcome["ok"] > 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Micro-benchmarks of the Python per-request costs of http_async_client.

    python -m pytest bench/test_micro.py --benchmark-only

Not part of the main test suite (pytest's testpaths is tests/).  Queries go
to the bench nginx on 127.0.0.1 (harness.py); replies are waited for and
drained in pytest-benchmark's ``setup`` hook, outside the timed region, so
each measurement covers only the Python (and cffi) work named in the test:

- ``query()`` of one request (the worker is idle: the call includes the
  eventfd write that wakes it, and on a busy machine the context switch
  that may follow),
- ``query()`` of a batch of 100 requests,
- ``query_many()`` of 100 URLs (one blob, one call into the core), and
  100 ``query()`` calls inside ``with client.batch():``,
- ``_drain_c()`` of 256 finished replies (white-box: the core's results are
  turned into Reply objects; the test waits until ``completed_pending``
  reaches 256 first),
- ``drain()`` of 256 finished replies (the drain above plus settling them
  and handing them out as one list), and the same 256 taken one by one
  through ``completions()``,
- building one ``Reply`` from realistic arguments.

Divide a batch's figure by its size for the per-request cost.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterator

import pytest

import http_async_client as hac
from http_async_client._ffi import lib

from harness import Servers

pytest.importorskip("pytest_benchmark")

BATCH = 100
DRAIN = 256


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """The bench nginx's 2-byte endpoint."""
    srv = Servers()
    if not os.access(srv.nginx, os.X_OK):
        pytest.skip("nginx is not installed")
    srv.start(slow=False)
    try:
        yield srv.http + "/"
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[hac.Client]:
    """One client for the module (workers=1)."""
    with hac.Client(workers=1, connection_timeout=5000) as c:
        yield c


def settle_all(client: hac.Client) -> None:
    """Wait for every reply still in flight and consume it (bounded)."""
    for reply in client.completions(timeout=10):
        if not (reply.ok and reply.status == 200):
            raise AssertionError(f"query failed: {reply.err or reply.status}")


def wait_pending(client: hac.Client, count: int, timeout: float = 10.0) -> None:
    """Poll until the core holds ``count`` finished, undrained results."""
    deadline = time.monotonic() + timeout
    while client.stats()["completed_pending"] < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} replies after {timeout} s: {client.stats()}")
        time.sleep(0.0005)


def test_submit_one(benchmark: Any, client: hac.Client, url: str) -> None:
    """client.query(url): validation, request blob, handle, hac_submit."""
    settle_all(client)
    benchmark.pedantic(client.query, args=(url,), setup=lambda: settle_all(client),
                       rounds=2000, iterations=1, warmup_rounds=20)
    settle_all(client)


def test_submit_batch_100(benchmark: Any, client: hac.Client, url: str) -> None:
    """100 client.query(url) calls in a row."""
    query = client.query

    def submit() -> None:
        for _ in range(BATCH):
            query(url)

    settle_all(client)
    benchmark.pedantic(submit, setup=lambda: settle_all(client), rounds=200, iterations=1,
                       warmup_rounds=3)
    settle_all(client)
    benchmark.extra_info["per_request_note"] = f"divide by {BATCH} for one request"


def test_query_many_100(benchmark: Any, client: hac.Client, url: str) -> None:
    """client.query_many([url] * 100): one blob, one hac_submit."""
    urls = [url] * BATCH
    settle_all(client)
    benchmark.pedantic(client.query_many, args=(urls,), setup=lambda: settle_all(client),
                       rounds=200, iterations=1, warmup_rounds=3)
    settle_all(client)
    benchmark.extra_info["per_request_note"] = f"divide by {BATCH} for one request"


def test_batch_block_100(benchmark: Any, client: hac.Client, url: str) -> None:
    """100 client.query(url) calls inside ``with client.batch():``."""
    query = client.query

    def submit() -> None:
        with client.batch():
            for _ in range(BATCH):
                query(url)

    settle_all(client)
    benchmark.pedantic(submit, setup=lambda: settle_all(client), rounds=200, iterations=1,
                       warmup_rounds=3)
    settle_all(client)
    benchmark.extra_info["per_request_note"] = f"divide by {BATCH} for one request"


def _finished(client: hac.Client, url: str) -> None:
    """Setup: DRAIN queries finished in the core, not yet drained."""
    settle_all(client)
    client.query_many([url] * DRAIN)
    wait_pending(client, DRAIN)


def test_drain_list_256(benchmark: Any, client: hac.Client, url: str) -> None:
    """client.drain(): 256 finished results drained, settled and handed
    out as one list (no routes)."""
    got: list[int] = []

    def drain() -> None:
        got.append(len(client.drain()))

    benchmark.pedantic(drain, setup=lambda: _finished(client, url), rounds=100, iterations=1,
                       warmup_rounds=2)
    assert got and all(n == DRAIN for n in got)
    benchmark.extra_info["per_request_note"] = f"divide by {DRAIN} for one reply"


def test_completions_256(benchmark: Any, client: hac.Client, url: str) -> None:
    """The same 256 through ``for r in client.completions()`` one by one."""
    got: list[int] = []

    def take() -> None:
        n = 0
        for _ in client.completions(timeout=10):
            n += 1
        got.append(n)

    benchmark.pedantic(take, setup=lambda: _finished(client, url), rounds=100, iterations=1,
                       warmup_rounds=2)
    assert got and all(n == DRAIN for n in got)
    benchmark.extra_info["per_request_note"] = f"divide by {DRAIN} for one reply"


def test_drain_256(benchmark: Any, client: hac.Client, url: str) -> None:
    """client._drain_c() turning 256 finished results into Reply objects."""
    drained: list[list[hac.Reply]] = []

    def forget() -> None:
        # the timed drain took results out of the core without settling
        # them: drop their handles so the client is clean again
        while drained:
            for reply in drained.pop():
                client._pending.pop(reply.id, None)

    def setup() -> None:
        forget()
        settle_all(client)
        for _ in range(DRAIN):
            client.query(url)
        wait_pending(client, DRAIN)

    def drain() -> None:
        replies = client._drain_c()
        drained.append(replies)

    benchmark.pedantic(drain, setup=setup, rounds=100, iterations=1, warmup_rounds=2)
    assert drained and len(drained[-1]) == DRAIN
    forget()
    assert client.stats()["inflight"] == 0
    benchmark.extra_info["per_request_note"] = f"divide by {DRAIN} for one reply"


_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: nginx/1.22.1\r\n"
    b"Date: Thu, 26 Nov 2026 06:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\n"
)
_RAW = _HEAD + b"ok"
_TIMES = (412, 3, 35, 0, 41, 380, 0)


def test_build_reply(benchmark: Any) -> None:
    """http_async_client.Reply(...) as the drain builds it for a 200 "ok"."""
    flags = lib.HAC_R_OK
    body_off = len(_HEAD)

    # the unpacked hac_rec: id, raw_off, raw_len, body_off, reason_off,
    # reason_len, err_off, err_len, times[7], status, curl_code, flags, version
    rec = (1234, 0, len(_RAW), body_off, 13, 2, -1, 0, *_TIMES, 200, 0, flags, 2)

    def build() -> hac.Reply:
        return hac.Reply(rec, _RAW, None)

    reply = benchmark(build)
    assert reply.ok and reply.status == 200 and reply.body == b"ok" and reply.reason == "OK"

"""One client, one load run, one JSON line.  bench.py starts this script
once per (round, workload, client) under ``taskset -c 1`` so no state (event
loops, connection pools, libcurl's global init, allocator) leaks between
runs.

usage: runner.py CLIENT URL [--body-bytes B] [--expect-bytes E]
                 [--requests N] [--concurrency C] [--seconds S]
                 [--insecure | --cafile PEM [--capath DIR]]

Every runner keeps C requests in flight until N are done or S seconds have
passed (no new request starts after that; those in flight finish), and
measures each request from just before it is submitted to when its reply
(status and whole body) is in Python's hands.  A reply counts as an error
unless its status is 200 and its body has E bytes.  Output:

  {"requests": .., "errors": .., "seconds": .., "rps": .., "p50_us": .., "p99_us": ..,
   "cpu_us": .., "libcurl": ..}

``rps`` counts good replies only; ``cpu_us`` is the CPU time of this
process, all its threads (CLOCK_PROCESS_CPUTIME_ID), over the measured
window, per request; ``libcurl`` the version the client library runs on
("-" for clients without libcurl).  Exit status 3 with {"error": ...} means
the client library is not importable (bench.py then skips it); 1 means the
run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import ssl
import sys
import threading
import time
import traceback
from typing import Any, Awaitable, Callable, Coroutine, Iterator

perf_ns = time.perf_counter_ns
THREAD_CAP = 64


class Unavailable(Exception):
    """The client's library cannot be imported."""


class Load:
    """The parameters of one run and the measurements it collects."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.url: str = a.url
        self.body: bytes | None = b"x" * a.body_bytes if a.body_bytes else None
        self.expect: int = a.expect_bytes
        self.total: int = max(1, a.requests)
        self.conc: int = max(1, min(a.concurrency, self.total))
        self.seconds: float = a.seconds
        self.insecure: bool = a.insecure
        self.cafile: str | None = a.cafile
        self.capath: str | None = a.capath
        self.libcurl = "-"
        self.cpu0 = 0
        self.cpu_ns = 0
        self.lat: list[int] = []
        self.errors = 0
        self.t0 = 0.0
        self.deadline = 0.0
        self.elapsed = 0.0
        self.note = ""

    def begin(self) -> None:
        self.cpu0 = time.process_time_ns()
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + self.seconds

    def end(self) -> None:
        self.elapsed = time.perf_counter() - self.t0
        self.cpu_ns = time.process_time_ns() - self.cpu0

    def ssl_context(self) -> ssl.SSLContext | bool:
        """For the asyncio peers: False (no verification) or a context
        that trusts the bench's CA file."""
        if self.insecure or self.cafile is None:
            return False
        return ssl.create_default_context(cafile=self.cafile)

    def tickets(self) -> Iterator[int]:
        """Shared bounded iterator: one item per request still allowed."""
        return iter(range(self.total))

    def good(self, status: int, nbytes: int) -> bool:
        return status == 200 and nbytes == self.expect

    def result(self) -> dict[str, Any]:
        lat = sorted(self.lat)
        n = len(lat)

        def pct(q: float) -> float:
            return lat[int(q * (n - 1))] / 1000.0 if n else 0.0

        ok = n - self.errors
        out: dict[str, Any] = {
            "requests": n,
            "errors": self.errors,
            "seconds": round(self.elapsed, 4),
            "rps": round(ok / self.elapsed, 1) if self.elapsed > 0 else 0.0,
            "p50_us": round(pct(0.50), 1),
            "p99_us": round(pct(0.99), 1),
            "cpu_us": round(self.cpu_ns / 1000.0 / n, 2) if n else None,
            "libcurl": self.libcurl,
        }
        if self.note:
            out["note"] = self.note
        return out


def run_async(coro: Coroutine[Any, Any, None], uv: bool = False) -> None:
    """Run ``coro`` on a fresh event loop (uvloop's when ``uv``)."""
    if uv:
        try:
            import uvloop
        except ImportError as exc:
            raise Unavailable(f"uvloop: {exc}") from exc
        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    else:
        factory = None
    if hasattr(asyncio, "Runner"):
        with asyncio.Runner(loop_factory=factory) as r:
            r.run(coro)
    else:  # Python 3.10
        loop = factory() if factory else asyncio.new_event_loop()
        try:
            loop.run_until_complete(coro)
        finally:
            loop.close()


async def drive(load: Load, one: Callable[[], Awaitable[bool]]) -> None:
    """``load.conc`` tasks, each awaiting ``one()`` in a loop."""
    tickets = load.tickets()
    lat = load.lat

    async def task() -> None:
        for _ in tickets:
            if time.perf_counter() >= load.deadline:
                break
            t = perf_ns()
            try:
                good = await one()
            except Exception:
                good = False
            lat.append(perf_ns() - t)
            if not good:
                load.errors += 1

    load.begin()
    await asyncio.gather(*(task() for _ in range(load.conc)))
    load.end()


# ----------------------------------------------------------------- ours
# the CA-file option of our Client, first name that exists wins (the core
# had only tls_ca_path, a hashed directory, until issue #12)
CA_FILE_PARAMS = ("tls_ca_file", "tls_ca_info", "tls_cainfo")


def _our_client(load: Load, workers: int, driver: str = "thread") -> Any:
    try:
        import http_async_client as hac
    except ImportError as exc:
        raise Unavailable(f"http_async_client: {exc}") from exc
    # builds before curl_version() (an older checkout measured for a
    # before/after) have only CURL_VERSION, "libcurl/8.14.1 ..."
    load.libcurl = (hac.curl_version() if hasattr(hac, "curl_version")
                    else hac.CURL_VERSION.split()[0].partition("/")[2])
    verify = 0 if load.insecure else 1
    base: dict[str, Any] = {"workers": workers, "connection_timeout": 10000,
                            "tls_verify_host": 2 if verify else 0, "tls_verify_peer": verify}
    if driver != "thread":  # builds before driver= know only threads
        base["driver"] = driver
    if not verify or load.cafile is None:
        return hac.Client(**base)
    for name in CA_FILE_PARAMS:
        try:
            return hac.Client(**{**base, name: load.cafile})
        except TypeError:  # no such parameter in this version
            continue
    if load.capath is None:  # a failure of this run only, not "not installed"
        raise RuntimeError("this client has no CA-file parameter (tried " + ", ".join(CA_FILE_PARAMS) + ")")
    load.note = "CA given as a hashed tls_ca_path directory (no CA-file parameter)"
    return hac.Client(**base, tls_ca_path=load.capath)


def ours_cq(load: Load, workers: int, driver: str = "thread") -> None:
    """Completion queue: keep C queries in flight, resubmit as replies come."""
    client = _our_client(load, workers, driver)
    with client:
        query, url, body, expect = client.query, load.url, load.body, load.expect
        starts: dict[int, int] = {}
        lat = load.lat
        sent = errors = 0
        load.begin()
        deadline = load.deadline
        for _ in range(load.conc):
            t = perf_ns()
            starts[query(url, body).id] = t
            sent += 1
        for r in client.completions():
            lat.append(perf_ns() - starts.pop(r.id))
            if not (r.ok and r.status == 200 and len(r.body) == expect):
                errors += 1
            if sent < load.total and time.perf_counter() < deadline:
                t = perf_ns()
                starts[query(url, body).id] = t
                sent += 1
        load.end()
        load.errors = errors


# ---- the batch API (issue #12 item 4), whichever form the client has.
# Submit: client.query_many(list) or a ``with client.batch():`` block;
# completions: client.completions(batch=True) yielding lists.  Adapt here
# when the names settle; with neither, the row reports n/a.
def _batch_submit(client: Any, url: str, body: bytes | None) -> tuple[str, Callable[[int], list[int]]]:
    """(name of the API used, submit(n) -> the ids of n new queries)."""
    query = client.query

    def ids(pendings: Any) -> list[int]:
        return [getattr(q, "id", q) for q in pendings]

    if hasattr(client, "query_many"):
        qm = client.query_many
        item: Any = url if body is None else (url, body)
        return "query_many", lambda n: ids(qm([item] * n))
    if hasattr(client, "batch"):
        def in_block(n: int) -> list[int]:
            with client.batch():
                return [query(url, body).id for _ in range(n)]
        return "batch()", in_block
    return "", lambda n: [query(url, body).id for _ in range(n)]


def _batch_completions(client: Any) -> tuple[str, Callable[[], Iterator[list[Any]]]]:
    """(name of the API used, a generator of lists of replies)."""
    try:
        params = inspect.signature(client.completions).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    if "batch" in params:
        return "completions(batch=True)", lambda: client.completions(batch=True)

    def one_by_one() -> Iterator[list[Any]]:
        for r in client.completions():
            yield [r]
    return "", one_by_one


def ours_cq_batch(load: Load, workers: int, driver: str = "thread") -> None:
    """Completion queue through the batch API: each batch of completions
    is resubmitted with one batch submit."""
    client = _our_client(load, workers, driver)
    with client:
        url, body, expect = load.url, load.body, load.expect
        sub_name, submit = _batch_submit(client, url, body)
        done_name, batches = _batch_completions(client)
        if not sub_name and not done_name:
            raise Unavailable("no batch API (query_many / batch() / completions(batch=True))")
        load.note = " + ".join(n for n in (sub_name, done_name) if n)
        starts: dict[int, int] = {}
        lat = load.lat
        errors = 0
        load.begin()
        deadline = load.deadline
        t = perf_ns()
        for i in submit(load.conc):
            starts[i] = t
        sent = load.conc
        for replies in batches():
            now = perf_ns()
            for r in replies:
                lat.append(now - starts.pop(r.id))
                if not (r.ok and r.status == 200 and len(r.body) == expect):
                    errors += 1
            n = min(len(replies), load.total - sent)
            if n > 0 and time.perf_counter() < deadline:
                t = perf_ns()
                for i in submit(n):
                    starts[i] = t
                sent += n
            elif not starts:
                break
        load.end()
        load.errors = errors


def ours_asyncio(load: Load, workers: int, uv: bool = False) -> None:
    """asyncio: C tasks, each awaiting ``client.query()`` in a loop (on
    uvloop's loop when ``uv``, as aiohttp's uvloop row)."""
    client = _our_client(load, workers)

    async def main() -> None:
        query, url, body, expect = client.query, load.url, load.body, load.expect

        async def one() -> bool:
            r = await query(url, body)
            return bool(r.ok and r.status == 200 and len(r.body) == expect)

        await drive(load, one)

    with client:
        run_async(main(), uv)


def ours_threads(load: Load, workers: int) -> None:
    """Blocking seed-style ``http_async_query(url, route)`` from
    min(C, 64) threads; each call returns 0 after the route ran."""
    client = _our_client(load, workers)
    nthreads = min(load.conc, THREAD_CAP)
    if nthreads < load.conc:
        load.note = f"{nthreads} threads (cap), not {load.conc}"
    tickets = load.tickets()
    lats: list[list[int]] = []
    errs = [0] * nthreads
    url, body, expect = load.url, load.body, load.expect
    gate = threading.Event()

    def worker(k: int) -> None:
        mine: list[int] = []
        lats.append(mine)
        got: list[bool] = []

        def route(reply: Any) -> None:
            got.append(reply.ok and reply.status == 200 and len(reply.body) == expect)

        haq = client.http_async_query
        gate.wait()
        for _ in tickets:
            if time.perf_counter() >= load.deadline:
                break
            t = perf_ns()
            rc = haq(url, route) if body is None else haq(url, body, route)
            mine.append(perf_ns() - t)
            if rc != 0 or not (got and got.pop()):
                errs[k] += 1

    with client:
        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(nthreads)]
        for th in threads:
            th.start()
        load.begin()
        gate.set()
        for th in threads:
            th.join()
        load.end()
    for mine in lats:
        load.lat.extend(mine)
    load.errors = sum(errs)


# ---------------------------------------------------------------- peers
def pycurl_multi(load: Load) -> None:
    """pycurl CurlMulti: a tight perform()/info_read()/select() loop over
    C reused easy handles."""
    try:
        import io

        import pycurl
    except ImportError as exc:
        raise Unavailable(f"pycurl: {exc}") from exc
    load.libcurl = pycurl.version_info()[1]
    m = pycurl.CurlMulti()
    handles: list[Any] = []
    bufs: dict[Any, io.BytesIO] = {}
    starts: dict[Any, int] = {}
    for _ in range(load.conc):
        c = pycurl.Curl()
        buf = io.BytesIO()
        c.setopt(pycurl.URL, load.url)
        c.setopt(pycurl.WRITEDATA, buf)
        c.setopt(pycurl.NOSIGNAL, 1)
        c.setopt(pycurl.TIMEOUT_MS, 10000)
        if load.body is not None:
            c.setopt(pycurl.POSTFIELDS, load.body)
            c.setopt(pycurl.HTTPHEADER, ["Expect:"])
        if load.insecure:
            c.setopt(pycurl.SSL_VERIFYPEER, 0)
            c.setopt(pycurl.SSL_VERIFYHOST, 0)
        elif load.cafile:
            c.setopt(pycurl.CAINFO, load.cafile)
        handles.append(c)
        bufs[c] = buf
    lat = load.lat
    sent = 0

    def add(c: Any) -> None:
        nonlocal sent
        b = bufs[c]
        b.seek(0)
        b.truncate()
        starts[c] = perf_ns()
        m.add_handle(c)
        sent += 1

    load.begin()
    deadline = load.deadline
    for c in handles:
        add(c)
    active = len(handles)
    while active:
        while True:
            ret, _ = m.perform()
            if ret != pycurl.E_CALL_MULTI_PERFORM:
                break
        readded = False
        while True:
            queued, ok_list, err_list = m.info_read()
            for c in ok_list:
                lat.append(perf_ns() - starts[c])
                m.remove_handle(c)
                if not load.good(c.getinfo(pycurl.RESPONSE_CODE), bufs[c].tell()):
                    load.errors += 1
                active -= 1
                if sent < load.total and time.perf_counter() < deadline:
                    add(c)
                    active += 1
                    readded = True
            for c, _errno, _msg in err_list:
                lat.append(perf_ns() - starts[c])
                m.remove_handle(c)
                load.errors += 1
                active -= 1
                if sent < load.total and time.perf_counter() < deadline:
                    add(c)
                    active += 1
                    readded = True
            if not queued:
                break
        if readded or not active:
            continue  # kick the new transfers before waiting
        wait = m.timeout()
        if wait != 0:
            m.select(1.0 if wait < 0 else min(wait / 1000.0, 1.0))
    load.end()
    for c in handles:
        c.close()
    m.close()


def aiohttp_run(load: Load, uv: bool) -> None:
    """aiohttp: one ClientSession, TCPConnector(limit=C), C tasks."""
    try:
        import aiohttp
    except ImportError as exc:
        raise Unavailable(f"aiohttp: {exc}") from exc

    async def main() -> None:
        conn = aiohttp.TCPConnector(limit=load.conc, ssl=load.ssl_context())
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:
            url, body = load.url, load.body

            async def one() -> bool:
                if body is None:
                    async with s.get(url) as r:
                        data = await r.read()
                else:
                    async with s.post(url, data=body) as r:
                        data = await r.read()
                return load.good(r.status, len(data))

            await drive(load, one)

    run_async(main(), uv=uv)


def httpx_run(load: Load) -> None:
    """httpx AsyncClient with limits = C connections."""
    try:
        import httpx
    except ImportError as exc:
        raise Unavailable(f"httpx: {exc}") from exc

    async def main() -> None:
        limits = httpx.Limits(max_connections=load.conc, max_keepalive_connections=load.conc)
        async with httpx.AsyncClient(limits=limits, verify=load.ssl_context(), timeout=10.0) as c:
            url, body = load.url, load.body

            async def one() -> bool:
                r = await (c.get(url) if body is None else c.post(url, content=body))
                return load.good(r.status_code, len(r.content))

            await drive(load, one)

    run_async(main())


def curl_cffi_run(load: Load) -> None:
    """curl_cffi AsyncSession (max_clients = C)."""
    try:
        import curl_cffi
        from curl_cffi.requests import AsyncSession
    except ImportError as exc:
        raise Unavailable(f"curl_cffi: {exc}") from exc
    load.libcurl = str(getattr(curl_cffi, "__curl_version__", "?")).split()[0].partition("/")[2].partition("-")[0]
    verify: Any = False if load.insecure or not load.cafile else load.cafile  # bool or CA path

    async def main() -> None:
        async with AsyncSession(max_clients=load.conc, verify=verify, timeout=10) as s:
            url, body = load.url, load.body

            async def one() -> bool:
                r = await (s.get(url) if body is None else s.post(url, data=body))
                return load.good(r.status_code, len(r.content))

            await drive(load, one)

    run_async(main())


def pyreqwest_run(load: Load) -> None:
    """pyreqwest's async Client (Rust reqwest on its Tokio runtime)."""
    try:
        from datetime import timedelta

        from pyreqwest.client import ClientBuilder
    except ImportError as exc:
        raise Unavailable(f"pyreqwest: {exc}") from exc

    async def main() -> None:
        builder = ClientBuilder().max_connections(load.conc).timeout(timedelta(seconds=10))
        if load.insecure:
            builder = builder.danger_accept_invalid_certs(True)
        elif load.cafile:
            with open(load.cafile, "rb") as f:
                builder = builder.add_root_certificate_pem(f.read())
        async with builder.build() as c:
            url, body = load.url, load.body

            async def one() -> bool:
                if body is None:
                    r = await c.get(url).build().send()
                else:
                    r = await c.post(url).body_bytes(body).build().send()
                data = await r.bytes()
                return load.good(r.status, len(data))

            await drive(load, one)

    run_async(main())


CLIENTS: dict[str, Callable[[Load], None]] = {
    "ours-cq-w1": lambda ld: ours_cq(ld, 1),
    "ours-cq-w2": lambda ld: ours_cq(ld, 2),
    "ours-cq-batch": lambda ld: ours_cq_batch(ld, 1),
    # driver="caller": no worker thread, the waiting thread runs the loop
    "ours-cq-caller": lambda ld: ours_cq(ld, 1, "caller"),
    "ours-cq-batch-caller": lambda ld: ours_cq_batch(ld, 1, "caller"),
    "ours-aio-w1": lambda ld: ours_asyncio(ld, 1),
    "ours-aio-w2": lambda ld: ours_asyncio(ld, 2),
    "ours-aio-uv-w1": lambda ld: ours_asyncio(ld, 1, True),
    "ours-thr-w1": lambda ld: ours_threads(ld, 1),
    "ours-thr-w2": lambda ld: ours_threads(ld, 2),
    "pycurl-multi": pycurl_multi,
    "aiohttp": lambda ld: aiohttp_run(ld, False),
    "aiohttp-uvloop": lambda ld: aiohttp_run(ld, True),
    "httpx": httpx_run,
    "curl_cffi": curl_cffi_run,
    "pyreqwest": pyreqwest_run,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("client", choices=sorted(CLIENTS))
    p.add_argument("url")
    p.add_argument("--body-bytes", type=int, default=0, help="POST a body of this size")
    p.add_argument("--expect-bytes", type=int, default=2, help="expected response body size")
    p.add_argument("--requests", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--insecure", action="store_true", help="no TLS verification")
    p.add_argument("--cafile", default=None, help="verify against this CA (PEM file)")
    p.add_argument("--capath", default=None, help="the same CA as a hashed directory")
    a = p.parse_args(argv)
    if not a.url.startswith(("http://127.0.0.1", "https://127.0.0.1")):
        p.error("only 127.0.0.1 is a valid target")
    load = Load(a)
    try:
        CLIENTS[a.client](load)
    except Unavailable as exc:
        print(json.dumps({"error": f"not installed: {exc}"}))
        return 3
    except Exception as exc:
        traceback.print_exc()
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(load.result()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-origin latency histograms (hist.c): ``client.latency()`` against
exact percentiles of a recorded run, phases of new connections only,
Prometheus histograms, the bound on origins, origin keys."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

import http_async_client as hac
from support.certs import Certs
from support.clients import MakeClient
from support.servers import HTTPTestServer
from support.transport_servers import UnixHTTPServer

SCALE = float(os.environ.get("HAC_TEST_SCALE", "1"))
WAIT = 20.0  # bound of each wait for a reply, s
QUANTS = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p999": 0.999}


@pytest.fixture(scope="module")
def delay_server() -> Iterator[str]:
    """The package's asyncio loopback server in its own process (no GIL
    shared with the client): ``/delay/MS`` answers after MS ms."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "http_async_client._loopback", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    port = int(proc.stdout.readline())
    yield f"http://127.0.0.1:{port}"
    proc.stdin.close()
    proc.wait(10)


def _nearest_rank(sorted_values: list[int], q: float) -> int:
    k = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[k - 1]


def _delay_ms(rng: random.Random) -> int:
    """The server's delay, from a known mixture: 80 % none, 15 % 1-5 ms,
    4 % 10-20 ms, 1 % 40-60 ms (a slow tail)."""
    u = rng.random()
    if u < 0.80:
        return 0
    if u < 0.95:
        return rng.randint(1, 5)
    if u < 0.99:
        return rng.randint(10, 20)
    return rng.randint(40, 60)


def test_percentiles_within_2_percent_of_exact(make_client: MakeClient, delay_server: str) -> None:
    """100,000 requests (scaled under sanitizers) of known delay mixture:
    every percentile of every phase latency() gives is within 2 % of the
    exact nearest-rank one of the times the replies carry."""
    n = max(2000, int(100_000 * SCALE))
    conc = 256
    rng = random.Random(15)
    client = make_client(workers=2, connection_timeout=30_000)
    totals: list[int] = []
    ttfbs: list[int] = []
    sent = 0
    t0 = time.monotonic()
    while sent < min(conc, n):
        client.query(f"{delay_server}/delay/{_delay_ms(rng)}")
        sent += 1
    for reply in client.completions(WAIT):
        assert reply.ok and reply.status == 200, reply.err
        totals.append(reply.times["total"])
        ttfbs.append(reply.times["starttransfer"])
        if sent < n:
            client.query(f"{delay_server}/delay/{_delay_ms(rng)}")
            sent += 1
        assert time.monotonic() - t0 < 120, "the run is bounded"
    assert len(totals) == n
    lat = client.latency(delay_server)
    assert lat["origin"] == delay_server
    assert lat["count"] == n and lat["ttfb"]["count"] == n
    assert lat["sum"] == sum(totals) and lat["ttfb"]["sum"] == sum(ttfbs)
    for values, got in ((sorted(totals), lat), (sorted(ttfbs), lat["ttfb"])):
        for name, q in QUANTS.items():
            exact = _nearest_rank(values, q)
            value = got[name]  # type: ignore[literal-required]
            assert value is not None
            assert abs(value - exact) <= 0.02 * exact, (name, value, exact)
    # the slow tail shows (the 1 % of 40-60 ms delays)
    assert lat["p999"] is not None and lat["p999"] >= 40_000
    # every connection was new once: at most one connect sample per connection
    assert 0 < lat["connect"]["count"] <= client.stats()["started"]
    assert lat["tls"]["count"] == 0


def test_phases_only_for_new_connections(make_client: MakeClient, https_server: HTTPTestServer,
                                         certs: Certs) -> None:
    """Over one kept-alive HTTPS connection: connect and TLS have one
    sample (the first transfer's), ttfb and total one per request."""
    client = make_client(workers=1, connection_timeout=10_000)
    for _ in range(5):
        r = client.query(f"{https_server.url}/echo", tls_ca_path=certs.capath).result(WAIT)
        assert r.ok, r.err
    lat = client.latency(https_server.url)
    assert lat["count"] == 5 and lat["ttfb"]["count"] == 5
    assert lat["connect"]["count"] == 1
    assert lat["tls"]["count"] == 1
    tls = lat["tls"]
    assert tls["p50"] is not None and tls["p50"] > 0 and tls["mean"] == tls["sum"]


def test_failed_transfers_are_not_recorded(make_client: MakeClient) -> None:
    """A refused connection is no sample; an unknown origin has count 0."""
    from support.ports import free_port

    url = f"http://127.0.0.1:{free_port()}/"
    client = make_client(workers=1, connection_timeout=20_000)
    assert not client.query(url).result(WAIT).ok
    lat = client.latency(url)
    assert lat["count"] == 0 and lat["p50"] is None and lat["ttfb"]["p99"] is None
    assert client.latency_origins() == []
    assert client.latency() == {}


def test_origin_keys_normalized(make_client: MakeClient, http_server: HTTPTestServer) -> None:
    """Origins as C keeps them: lowercased, default port filled in, the
    path and user info dropped; a full URL names its origin."""
    assert hac.origin_key("HTTP://User:pw@LocalHost/x?y#z") == "http://localhost:80"
    assert hac.origin_key("https://[::1]/") == "https://[::1]:443"
    assert hac.origin_key("http://127.0.0.1:08080/a") == "http://127.0.0.1:8080"
    for bad in ("127.0.0.1:80", "http://", "http://[::1", "http://h:99999/"):
        with pytest.raises(hac.InvalidOption):
            hac.origin_key(bad)
    with pytest.raises(hac.InvalidOptionType):
        hac.origin_key(80)  # type: ignore[arg-type]
    client = make_client(workers=2, connection_timeout=20_000)
    port = http_server.port
    for path in ("/echo", "/echo?x=1"):
        assert client.query(f"http://LOCALHOST:{port}{path}").result(WAIT).ok
    key = f"http://localhost:{port}"
    assert client.latency_origins() == [key]
    assert client.latency(f"http://localhost:{port}/anything")["count"] == 2
    assert set(client.latency()) == {key}


def test_prometheus_histograms_parse(make_client: MakeClient, http_server: HTTPTestServer) -> None:
    """stats_prometheus() has one histogram family per phase, with an
    origin label, cumulative buckets ending at +Inf == _count, and the
    prometheus-client parser reads it all."""
    client = make_client(workers=2, connection_timeout=20_000)
    for _ in range(30):
        client.query(f"{http_server.url}/echo")
    assert len(list(client.completions(WAIT))) == 30
    text = client.stats_prometheus({"client": "a\"b"})
    families = {f.name: f for f in text_string_to_metric_families(text)}
    origin = hac.origin_key(http_server.url)
    for name in ("request_duration_seconds", "ttfb_seconds", "connect_duration_seconds",
                 "tls_duration_seconds"):
        fam = families["http_async_client_" + name]
        assert fam.type == "histogram"
        buckets = [s for s in fam.samples if s.name.endswith("_bucket")]
        assert buckets and all(s.labels["origin"] == origin for s in fam.samples)
        assert all(s.labels["client"] == 'a"b' for s in fam.samples)
        counts = [s.value for s in buckets]
        assert counts == sorted(counts)  # cumulative
        count = [s.value for s in fam.samples if s.name.endswith("_count")][0]
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == count
        if name in ("request_duration_seconds", "ttfb_seconds"):
            assert count == 30
            total = [s.value for s in fam.samples if s.name.endswith("_sum")][0]
            assert 0 < total < 30 * 5.0
    assert families["http_async_client_requests"].samples[0].value == 30


def test_origins_bounded_per_worker(make_client: MakeClient) -> None:
    """Past 1,024 origins a worker puts the rest under "other": 1,100
    hosts (through one Unix socket) give 1,024 origins plus "other"."""
    with UnixHTTPServer() as server:
        client = make_client(workers=1, unix_socket=str(server.path), connection_timeout=20_000)
        n = 1100
        done = 0
        for start in range(0, n, 100):
            hs = [client.query(f"http://o{i}.test/") for i in range(start, min(n, start + 100))]
            for h in hs:
                assert h.result(WAIT).ok
                done += 1
        origins = client.latency_origins()
        assert len(origins) == 1025 and "other" in origins
        assert client.latency("other")["count"] == n - 1024
        assert client.latency("http://o5.test")["count"] == 1
        assert sum(lat["count"] for lat in client.latency().values()) == done


def test_latency_read_while_workers_write(make_client: MakeClient, http_server: HTTPTestServer) -> None:
    """Readers on other threads while the workers record (TSan runs this):
    counts only grow and end at the number of replies."""
    client = make_client(workers=2, connection_timeout=20_000)
    url = f"{http_server.url}/echo"
    n = max(200, int(2000 * SCALE))
    stop = threading.Event()
    seen: list[int] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(client.latency(url)["count"])
            client.stats_prometheus()
            time.sleep(0.001)  # leaves the GIL to the in-process server

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for start in range(0, n, 100):
            for h in [client.query(url) for _ in range(min(100, n - start))]:
                assert h.result(WAIT).ok
    finally:
        stop.set()
        for t in readers:
            t.join(WAIT)
    assert client.latency(url)["count"] == n
    assert all(0 <= c <= n for c in seen)

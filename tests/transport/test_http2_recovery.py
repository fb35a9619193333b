"""HTTP/2 keeps working: with prior knowledge (h2c), a deadline miss, a burst
past the stream limit, a reset connection or the server closing the idle
one does not break the origin; an HTTP/2 burst over TLS shares few
connections.  Against the private nginx and support.rawhttp's h2c server."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import http_async_client as hac
from support.certs import Certs
from support.nginx import Nginx
from support.rawhttp import Ledger, h2c_handler
from support.servers import RawServerFactory

WAIT = 10.0  # bound of every single wait for a reply, s


def test_h2c_deadline_miss_does_not_break_origin(nginx: Nginx) -> None:
    """One request that misses its deadline (300 ms against a 2 s answer)
    leaves the h2c origin usable: 6 sequential and 6 concurrent requests
    after it succeed over HTTP/2."""
    base = nginx.h2c_slow_url
    marker = uuid.uuid4().hex
    with hac.Client(workers=1, connection_timeout=5000) as client:
        # control: the slow location answers when given the time
        control = client.query(f"{base}/slow/50?m={marker}", http_version=2).result(timeout=WAIT)
        assert (control.ok, control.status, control.body) == (True, 200, b"slow"), control.err
        assert control.http_version == "2"
        missed = client.query(
            f"{base}/slow/2000?m={marker}", http_version=2, timeout=300
        ).result(timeout=WAIT)
        assert not missed.ok and missed.timed_out, missed.err
        later = [
            client.query(f"{base}/?m={marker}-later&i={i}", http_version=2).result(timeout=WAIT)
            for i in range(6)
        ]
        handles = [client.query(f"{base}/?m={marker}-later&j={i}", http_version=2) for i in range(6)]
        later += [h.result(timeout=WAIT) for h in handles]
    failed = [r.err for r in later if not r.ok]
    print(f"\nh2c after one deadline miss: {len(failed)} of {len(later)} later requests failed")
    assert not failed, f"{len(failed)} of {len(later)} failed after one deadline miss: {failed[0]}"
    for r in later:
        assert (r.status, r.body, r.http_version) == (200, b"ok", "2")
    lines = nginx.wait_log(f"{marker}-later", len(later))
    assert len(lines) == len(later)
    assert {ln.protocol for ln in lines} == {"HTTP/2.0"}


def test_h2c_burst_of_300(nginx: Nginx) -> None:
    """300 concurrent h2c requests (one client, one worker) all succeed over
    HTTP/2 and at most 3 connections (libcurl: 100 streams per connection);
    5 later requests succeed too."""
    n = 300
    marker = uuid.uuid4().hex
    with hac.Client(workers=1, connection_timeout=10000) as client:
        handles = [
            client.query(f"{nginx.h2c_url}/?m={marker}-burst&i={i}", http_version=2)
            for i in range(n)
        ]
        replies = [h.result(timeout=30) for h in handles]
        later = [
            client.query(f"{nginx.h2c_url}/?m={marker}-later&i={i}", http_version=2).result(
                timeout=WAIT
            )
            for i in range(5)
        ]
    failed = [r.err for r in replies if not r.ok]
    later_failed = [r.err for r in later if not r.ok]
    lines = nginx.wait_log(f"{marker}-burst", n - len(failed), timeout=5.0)
    conns = {ln.connection for ln in lines}
    print(
        f"\nh2c burst: {len(failed)} of {n} failed, {len(conns)} connection(s), "
        f"{len(later_failed)} of 5 later failed"
    )
    assert not failed, f"{len(failed)} of {n} failed: {Counter(failed).most_common(2)}"
    assert not later_failed, f"{len(later_failed)} of 5 later requests failed: {later_failed[0]}"
    for r in replies + later:
        assert (r.status, r.body, r.http_version) == (200, b"ok", "2")
    assert len(lines) == n  # nginx never logs libcurl's HTTP/1.1 Upgrade attempts
    assert Counter(ln.protocol for ln in lines) == Counter({"HTTP/2.0": n})
    assert len(conns) <= 3, f"{len(conns)} connections for {n} requests"


def test_h2c_origin_recovers_after_connection_reset(raw_server_factory: RawServerFactory) -> None:
    """After the h2c connection is reset while idle (RST), concurrent and
    sequential requests to the origin succeed over HTTP/2; so do they after
    a reset in the middle of a request (a GET: re-sent)."""
    ledger = Ledger()
    server = raw_server_factory(h2c_handler(ledger))
    with hac.Client(workers=1, connection_timeout=5000) as client:

        def get(path: str) -> hac.Reply:
            return client.query(server.url + path, http_version=2).result(timeout=WAIT)

        def together(prefix: str) -> list[hac.Reply]:
            handles = [client.query(f"{server.url}{prefix}{i}", http_version=2) for i in range(6)]
            return [h.result(timeout=WAIT) for h in handles]

        assert get("/first").ok
        assert get("/reset-after/1").ok  # answered, then the idle connection reset
        time.sleep(0.2)  # the RST has arrived before the next requests
        later = together("/after-idle/together/")
        later += [get(f"/after-idle/{i}") for i in range(6)]
        victim = get("/victim/GET/1")  # reset mid-request on a reused connection
        later += [get(f"/after-victim/{i}") for i in range(6)]
        later += together("/after-victim/together/")
    assert not ledger.errors, ledger.errors
    failed = [(r.url.split("/", 3)[-1], r.err) for r in later if not (r.ok and r.status == 200)]
    print(f"\nh2c after a reset: {len(failed)} of {len(later)} later requests failed")
    assert not failed, f"{len(failed)} of {len(later)} failed after a reset: {failed[:2]}"
    assert [r.http_version for r in later] == ["2"] * len(later)
    assert victim.ok and victim.status == 200, victim.err  # GET: re-sent


def test_h2c_origin_recovers_after_server_closed_idle_connection(nginx: Nginx) -> None:
    """nginx closes the idle h2c connection (keepalive_timeout 1 s): 6
    concurrent then 6 sequential requests after it succeed over HTTP/2."""
    url = nginx.h2c_idle_url
    marker = uuid.uuid4().hex
    with hac.Client(workers=1, connection_timeout=5000) as client:
        first = client.query(f"{url}/?m={marker}-first", http_version=2).result(timeout=WAIT)
        assert first.ok and first.http_version == "2", first.err
        time.sleep(1.6)  # nginx closes the idle connection after 1 s
        handles = [client.query(f"{url}/?m={marker}-later&j={i}", http_version=2) for i in range(6)]
        later = [h.result(timeout=WAIT) for h in handles]
        later += [
            client.query(f"{url}/?m={marker}-later&i={i}", http_version=2).result(timeout=WAIT)
            for i in range(6)
        ]
    failed = [r.err for r in later if not r.ok]
    print(f"\nh2c after nginx closed the idle connection: {len(failed)} of {len(later)} failed")
    assert not failed, f"{len(failed)} of {len(later)} failed: {failed[0]}"
    for r in later:
        assert (r.status, r.body, r.http_version) == (200, b"ok", "2")
    lines = nginx.wait_log(f"{marker}-later", len(later))
    assert [ln.protocol for ln in lines] == ["HTTP/2.0"] * len(later)


def test_tls_h2_burst_of_200_shares_connections(nginx: Nginx, certs: Certs) -> None:
    """ASSERTS THE ISSUE'S ITEM 2(d): 200 concurrent HTTP/2-over-TLS requests
    (ALPN) to one origin share at most 3 connections (transfers started
    before the first handshake finished used to open one each)."""
    n = 200
    marker = uuid.uuid4().hex
    with hac.Client(workers=1, connection_timeout=10000, tls_ca_path=certs.capath) as client:
        handles = [client.query(f"{nginx.tls_url}/?m={marker}&i={i}") for i in range(n)]
        replies = [h.result(timeout=30) for h in handles]
    failed = [r.err for r in replies if not r.ok]
    lines = nginx.wait_log(marker, n - len(failed), timeout=5.0)
    conns = {ln.connection for ln in lines}
    print(f"\nTLS h2 burst: {n} requests, {len(failed)} failed, {len(conns)} connection(s)")
    assert not failed, f"{len(failed)} of {n} failed: {failed[0]}"
    assert {r.http_version for r in replies} == {"2"}
    assert len(lines) == n
    assert len(conns) <= 3, f"{len(conns)} TLS connections for {n} concurrent HTTP/2 requests"

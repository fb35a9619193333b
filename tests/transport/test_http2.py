"""HTTP/2 (6.2): upgrade offered, prior knowledge (h2c), ALPN over TLS,
multiplexing, and h2c after the server closed the idle connection;
against the private nginx on 127.0.0.1 (support.nginx)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

import http_async_client as hac
from support.certs import Certs
from support.clients import Fetch
from support.nginx import Nginx
from support.servers import HTTPTestServer, header

WAIT = 10.0  # bound of every single wait for a reply, s


def test_http2_prior_knowledge(nginx: Nginx, fetch: Fetch) -> None:
    """http_version=2 against the h2c listener speaks HTTP/2."""
    marker = uuid.uuid4().hex
    reply = fetch(f"{nginx.h2c_url}/?m={marker}", http_version=2)
    assert reply.ok, reply.err
    assert (reply.status, reply.body) == (200, b"ok")
    assert reply.http_version == "2"
    lines = nginx.wait_log(marker, 1)
    assert [ln.protocol for ln in lines] == ["HTTP/2.0"]


def test_http2_prior_knowledge_reuses_connection(nginx: Nginx, fetch: Fetch) -> None:
    """Successive http_version=2 queries reuse the one h2c connection."""
    marker = uuid.uuid4().hex
    replies = [fetch(f"{nginx.h2c_url}/?m={marker}&i={i}", http_version=2) for i in range(3)]
    for r in replies:
        assert r.ok, r.err
        assert (r.status, r.http_version) == (200, "2")
    lines = nginx.wait_log(marker, 3)
    assert len({ln.connection for ln in lines}) == 1


def test_http2_http_req_key(
    client: hac.Client, nginx: Nginx, fresh_http_server: HTTPTestServer, fetch: Fetch
) -> None:
    """http_req["http_version"] applies to the next query only."""
    client.http_req["http_version"] = 2
    reply = fetch(f"{nginx.h2c_url}/")
    assert reply.ok and reply.http_version == "2"
    client.http_req["http_version"] = 1
    assert fetch(f"{fresh_http_server.url}/echo").http_version == "1.1"
    assert fetch(f"{fresh_http_server.url}/echo").ok
    first, second = fresh_http_server.requests[0], fresh_http_server.requests[1]
    assert (header(first, "Upgrade") or "").lower() == "h2c"
    assert header(second, "Upgrade") is None  # reset after the query


@pytest.mark.parametrize("version", [0, 1, 2])
def test_https_negotiates_http2_with_alpn(
    nginx: Nginx, certs: Certs, version: int, fetch: Fetch
) -> None:
    """Over TLS HTTP/2 is negotiated with ALPN, also by default."""
    reply = fetch(f"{nginx.tls_url}/", tls_ca_path=certs.capath, http_version=version)
    assert reply.ok, reply.err
    assert (reply.status, reply.body) == (200, b"ok")
    assert reply.http_version == "2"
    assert reply.time("appconnect") > 0


def test_http1_listener_stays_http11(nginx: Nginx, fetch: Fetch) -> None:
    """Default and upgrade requests to an HTTP/1.1-only server stay 1.1."""
    assert fetch(f"{nginx.h1_url}/").http_version == "1.1"
    assert fetch(f"{nginx.h1_url}/", http_version=1).http_version == "1.1"


def test_http2_upgrade_offered(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """http_version=1 over cleartext offers Upgrade: h2c; an HTTP/1.1
    server ignores it and the reply is 1.1."""
    reply = fetch(f"{fresh_http_server.url}/echo", http_version=1)
    assert reply.ok, reply.err
    assert reply.status == 200
    assert reply.http_version == "1.1"
    req = fresh_http_server.requests[0]
    assert (header(req, "Upgrade") or "").lower() == "h2c"
    assert header(req, "HTTP2-Settings") is not None
    # the default sends no upgrade
    plain = fetch(f"{fresh_http_server.url}/echo")
    assert plain.http_version == "1.1"
    assert header(fresh_http_server.requests[1], "Upgrade") is None


# --------------------------------------------------------- multiplexing


N_CONCURRENT = 100


def _burst(client: hac.Client, nginx: Nginx, base: str, label: str, **options: Any) -> int:
    """N_CONCURRENT queries submitted before any wait; all must succeed.
    Prints and returns how many distinct nginx connections served them."""
    marker = uuid.uuid4().hex
    handles = [client.query(f"{base}/?m={marker}&i={i}", **options) for i in range(N_CONCURRENT)]
    replies = [h.result(timeout=WAIT) for h in handles]
    failed = [r for r in replies if not r.ok]
    lines = nginx.wait_log(marker, N_CONCURRENT - len(failed), timeout=5.0 if not failed else 1.0)
    conns = len({ln.connection for ln in lines})
    print(
        f"\n{label}: {N_CONCURRENT} concurrent queries, {len(replies) - len(failed)} ok, "
        f"{len(lines)} logged by nginx, {conns} distinct connection(s)"
    )
    assert not failed, f"{len(failed)} failed, first: {failed[0].err}"
    for r in replies:
        assert (r.status, r.body) == (200, b"ok")
    assert len(lines) == N_CONCURRENT
    assert len({r.id for r in replies}) == N_CONCURRENT
    return conns


def test_http2_multiplexing_h2c(client: hac.Client, nginx: Nginx) -> None:
    """100 concurrent HTTP/2 queries to one origin share one connection."""
    assert _burst(client, nginx, nginx.h2c_url, "h2c", http_version=2) == 1


def test_http2_multiplexing_tls(nginx: Nginx, certs: Certs) -> None:
    """The same over TLS (ALPN h2, default http_version)."""
    with hac.Client(connection_timeout=5000, tls_ca_path=certs.capath) as c:
        assert _burst(c, nginx, nginx.tls_url, "TLS") == 1


def test_http11_burst_uses_several_connections(client: hac.Client, nginx: Nginx) -> None:
    """Control for the counter above: HTTP/1.1 cannot multiplex, so a burst
    needs more than one connection."""
    assert _burst(client, nginx, nginx.h1_url, "HTTP/1.1") > 1


# -------------------------------- the server closes the idle connection


def test_http2_prior_knowledge_after_server_closed_connection(nginx: Nginx) -> None:
    """libcurl 7.88 workaround (csrc/mux.c): after the server closed the
    idle h2c connection, the next http_version=2 query opens a new one with
    prior knowledge and succeeds over HTTP/2, and so do the ones after it."""
    url = f"{nginx.h2c_idle_url}/"
    with hac.Client(connection_timeout=5000) as client:
        first = client.query(url, http_version=2).result(timeout=5)
        assert first.ok and first.http_version == "2", first.err
        time.sleep(1.6)  # nginx closes the idle connection after 1 s
        again = [client.query(url, http_version=2).result(timeout=5) for _ in range(3)]
        assert all(r.ok and r.status == 200 and r.http_version == "2" for r in again), [
            r.err for r in again
        ]
        assert client.stats()["errors"] == 0
